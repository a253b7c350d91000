"""JSON endpoints of the order lifecycle.

* Store (``/api/store/v1/{shop}/orders``, signed-in shopper): my orders with a status
  filter, one order with its parcels, pay, cancel an unpaid order, confirm receipt. Another
  shopper's order is a 404. (Placing an order, ``POST`` on the collection, is in ``api_cart``.)
* Admin (``/api/admin/v1/orders``): list with filters, CSV export, detail with timeline and
  payments, cancel, ship, bulk ship from CSV, mark delivered, seller note, carriers
  (``orders.read`` / ``orders.write``), and the order settings (``settings.read`` /
  ``settings.write``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Body, File, Query, Request, Response, UploadFile

from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit.context import current_language
from siyu.kit.errors import DomainError
from siyu.kit.pagination import Page, Pages
from siyu.kit.security import mask_phone
from siyu.kit.types import MAX_ID, FilterText, PathId
from siyu.kit.web import ADMIN_ERRORS, UoW, client_ip, problem_responses
from siyu.orders import fulfilment, service
from siyu.orders.models import Order, OrderLine
from siyu.orders.schemas import (
    AdminOrderOut,
    AdminOrderRow,
    AfterSaleSummaryOut,
    BulkShipReportOut,
    CancelIn,
    CarrierOut,
    FulfilmentItemOut,
    FulfilmentOut,
    LineCard,
    LineOut,
    NoteIn,
    OrderPaymentOut,
    OrderSettingsIn,
    OrderSettingsOut,
    OrderStatus,
    PayIn,
    PayStartOut,
    ShipIn,
    ShipmentOut,
    ShipOut,
    StoreOrderCard,
    StoreOrderOut,
    TransitionOut,
)
from siyu.orders.states import ORDER_STATUS_EN, ORDER_STATUS_ZH
from siyu.staff.access import StaffPrincipal, require

store = APIRouter(prefix="/api/store/v1/{shop}/orders", tags=["store: orders"],
                  responses=problem_responses(400, 401, 403, 404, 409, 422, 429))
admin = APIRouter(prefix="/api/admin/v1/orders", tags=["admin: orders"], responses=ADMIN_ERRORS)

#: Every router of this part; ``orders.api`` gathers them.
routers: list[APIRouter] = [store, admin]

Reader = Annotated[StaffPrincipal, require("orders.read")]
Writer = Annotated[StaffPrincipal, require("orders.write")]
SettingsReader = Annotated[StaffPrincipal, require("settings.read")]
SettingsWriter = Annotated[StaffPrincipal, require("settings.write")]
DateFilter = Annotated[date | None, Query(description="A day in the shop's time zone (YYYY-MM-DD)")]
MAX_BULK_BYTES = 2 * 1024 * 1024
#: A cancel body is optional (no reason given).
NoBody = Annotated[CancelIn, Body()]
_EMPTY = CancelIn()


# -- shaping -------------------------------------------------------------------------------------------


def status_label(status: str) -> str:
    labels = ORDER_STATUS_EN if current_language().startswith("en") else ORDER_STATUS_ZH
    return labels.get(status, status)


def _base(o: Order) -> dict[str, object]:
    return {
        "id": o.id, "order_no": o.order_no, "status": o.status, "status_label": status_label(o.status),
        "goods_fen": o.goods_fen, "discount_fen": o.discount_fen, "freight_fen": o.freight_fen,
        "payable_fen": o.payable_fen, "paid_fen": o.paid_fen, "refunded_fen": o.refunded_fen, "item_count": o.item_count,
        "requires_shipping": o.requires_shipping, "created_at": o.created_at, "pay_deadline": o.pay_deadline,
        "paid_at": o.paid_at, "shipped_at": o.shipped_at, "completed_at": o.completed_at,
    }


def store_card(o: Order, lines: list[OrderLine]) -> StoreOrderCard:
    return StoreOrderCard(**_base(o), lines=[LineCard.model_validate(ln) for ln in lines],
                          actions=sorted(service.shopper_actions(o)))


def _detail_fields(d: service.OrderDetail) -> dict[str, object]:
    o = d.order
    return {
        **_base(o), "address": dict(o.address or {}), "buyer_note": o.buyer_note, "pricing": dict(o.pricing or {}),
        "delivered_at": o.delivered_at, "auto_confirm_at": o.auto_confirm_at, "cancelled_at": o.cancelled_at,
        "cancel_reason": o.cancel_reason, "closed_at": o.closed_at,
        "lines": [LineOut.model_validate(ln) for ln in d.lines],
        "shipments": [ShipmentOut.model_validate(s) for s in d.shipments],
        "after_sales": [AfterSaleSummaryOut.model_validate(c) for c in d.after_sales],
        "after_sale_until": d.after_sale_until, "actions": sorted(d.actions),
    }


def store_detail(d: service.OrderDetail) -> StoreOrderOut:
    return StoreOrderOut(**_detail_fields(d))


def admin_detail(d: service.OrderDetail) -> AdminOrderOut:
    o = d.order
    return AdminOrderOut(
        **_detail_fields(d),
        customer_id=o.customer_id, customer_name=d.customer.nickname if d.customer else None,
        customer_phone=mask_phone(d.customer.phone if d.customer else None) or None, channel=o.channel,
        seller_note=o.seller_note, payment_id=o.payment_id,
        fulfilments=[FulfilmentOut(id=f.fulfilment.id, seq=f.fulfilment.seq, location_id=f.fulfilment.location_id,
                                   kind=f.fulfilment.kind, status=f.fulfilment.status,
                                   items=[FulfilmentItemOut.model_validate(it) for it in f.items]) for f in d.fulfilments],
        transitions=[TransitionOut.model_validate(t) for t in d.transitions],
        payments=[OrderPaymentOut.model_validate(p) for p in d.payments],
    )


def admin_row(item: service.OrderListItem) -> AdminOrderRow:
    o = item.order
    return AdminOrderRow(
        **_base(o),
        customer_id=o.customer_id, customer_name=item.customer_name,
        customer_phone=mask_phone(item.customer_phone) or None,
        receiver_name=(o.address or {}).get("receiver_name"), items_summary=service.items_summary(item.lines),
        channel=o.channel,
    )


def _me(shopper: ShopperSession) -> int:
    assert shopper.customer is not None
    return shopper.customer.id


# -- store ---------------------------------------------------------------------------------------------


@store.get("", response_model=Page[StoreOrderCard], summary="My orders, newest first")
async def my_orders(shopper: CurrentShopper, session: UoW, pages: Pages,
                    status: Annotated[OrderStatus | None, Query()] = None) -> Page[StoreOrderCard]:
    filters = service.OrderFilters(status=status, customer_id=_me(shopper))
    rows, total = await service.list_orders(session, shopper.shop.scope, filters, offset=pages.offset,
                                            limit=pages.page_size)
    return Page(items=[store_card(r.order, r.lines) for r in rows], total=total, page=pages.page,
                page_size=pages.page_size)


@store.get("/{order_id}", response_model=StoreOrderOut, summary="One of my orders with its parcels")
async def my_order(order_id: PathId, shopper: CurrentShopper, session: UoW) -> StoreOrderOut:
    return store_detail(await service.order_detail(session, shopper.shop.scope, order_id, customer_id=_me(shopper)))


@store.post("/{order_id}/pay", response_model=PayStartOut,
            summary="Pay an unpaid order: opens (or reuses) its payment; the amount is the order's")
async def pay(order_id: PathId, body: PayIn, request: Request, shopper: CurrentShopper, session: UoW) -> PayStartOut:
    scope = shopper.shop.scope
    me = _me(shopper)
    openid = None
    if body.channel == "jsapi":
        ids = await customers_service.identities_of(session, scope, me)
        openid = next((i.value for i in ids if i.kind == "openid"), None)
    start = await service.start_payment(session, scope, customer_id=me, order_id=order_id, channel=body.channel,
                                        return_url=body.return_url, payer_openid=openid, payer_client_ip=client_ip(request))
    if start is None:
        order = await service.customer_order(session, scope, me, order_id)
        return PayStartOut(order_id=order.id, paid=True, out_trade_no=None, amount_fen=0, channel=None, pay_url=None,
                           code_url=None, pay_params=None, expires_at=None, reused=False)
    p = start.payment
    return PayStartOut(order_id=order_id, paid=False, out_trade_no=p.out_trade_no, amount_fen=p.amount_fen,
                       channel=p.channel, pay_url=start.pay_url, code_url=start.code_url, pay_params=start.pay_params,
                       expires_at=p.expires_at, reused=start.reused)


@store.post("/{order_id}/cancel", response_model=StoreOrderOut, summary="Cancel my unpaid order")
async def cancel_mine(order_id: PathId, shopper: CurrentShopper, session: UoW, body: NoBody = _EMPTY) -> StoreOrderOut:
    scope = shopper.shop.scope
    await service.cancel_order(session, scope, order_id, by="customer", customer_id=_me(shopper),
                               reason=body.reason)
    return store_detail(await service.order_detail(session, scope, order_id, customer_id=_me(shopper)))


@store.post("/{order_id}/confirm", response_model=StoreOrderOut, summary="Confirm receipt (确认收货): the order completes")
async def confirm(order_id: PathId, shopper: CurrentShopper, session: UoW) -> StoreOrderOut:
    scope = shopper.shop.scope
    await fulfilment.confirm_receipt(session, scope, order_id, _me(shopper))
    return store_detail(await service.order_detail(session, scope, order_id, customer_id=_me(shopper)))


# -- admin ---------------------------------------------------------------------------------------------


def _filters(status: str | None, created_from: date | None, created_to: date | None, customer_id: int | None,
             customer: str | None, order_no: str | None, product: str | None) -> service.OrderFilters:
    return service.OrderFilters(status=status, created_from=created_from, created_to=created_to,
                                customer_id=customer_id, customer=customer, order_no=order_no, product=product)


@admin.get("", response_model=Page[AdminOrderRow], summary="Orders: status, dates, customer, number, product")
async def list_orders(
    session: UoW, pages: Pages, me: Reader,
    status: Annotated[OrderStatus | None, Query()] = None,
    created_from: DateFilter = None,
    created_to: DateFilter = None,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    customer: Annotated[FilterText, Query(description="Phone (exact) or nickname (part)")] = None,
    order_no: Annotated[FilterText, Query(description="Order number (part)")] = None,
    product: Annotated[FilterText, Query(description="Product title (part) or SKU code")] = None,
) -> Page[AdminOrderRow]:
    filters = _filters(status, created_from, created_to, customer_id, customer, order_no, product)
    rows, total = await service.list_orders(session, me.scope, filters, offset=pages.offset, limit=pages.page_size,
                                            with_customers=True)
    return Page(items=[admin_row(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@admin.get("/export.csv", summary="The filtered orders as CSV (UTF-8 with BOM; one row per order)",
           response_class=Response, responses={200: {"content": {"text/csv": {}}, "description": "CSV file"}})
async def export_orders(
    session: UoW, me: Reader,
    status: Annotated[OrderStatus | None, Query()] = None,
    created_from: DateFilter = None,
    created_to: DateFilter = None,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    customer: FilterText = None,
    order_no: FilterText = None,
    product: FilterText = None,
) -> Response:
    filters = _filters(status, created_from, created_to, customer_id, customer, order_no, product)
    body = await service.export_csv(session, me.scope, filters)
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="orders.csv"', "Cache-Control": "no-store"})


@admin.get("/carriers", response_model=list[CarrierOut], summary="Carriers a parcel can be shipped with")
async def list_carriers(me: Reader) -> list[CarrierOut]:
    return [CarrierOut(**c) for c in fulfilment.carriers()]


@admin.get("/settings", response_model=OrderSettingsOut, summary="Order settings: pay timeout, auto-confirm, after-sales window")
async def get_settings(session: UoW, me: SettingsReader) -> OrderSettingsOut:
    s = await service.order_settings(session, me.scope)
    return OrderSettingsOut(pay_timeout_minutes=s.pay_timeout_minutes, auto_confirm_days=s.auto_confirm_days,
                            after_sale_days=s.after_sale_days, return_address=s.return_address)


@admin.put("/settings", response_model=OrderSettingsOut, summary="Change order settings (fields left out keep their value)")
async def put_settings(body: OrderSettingsIn, session: UoW, me: SettingsWriter) -> OrderSettingsOut:
    s = await service.update_order_settings(session, me.scope, pay_timeout_minutes=body.pay_timeout_minutes,
                                            auto_confirm_days=body.auto_confirm_days, after_sale_days=body.after_sale_days,
                                            return_address=body.return_address)
    return OrderSettingsOut(pay_timeout_minutes=s.pay_timeout_minutes, auto_confirm_days=s.auto_confirm_days,
                            after_sale_days=s.after_sale_days, return_address=s.return_address)


@admin.post("/bulk-ship", response_model=BulkShipReportOut, responses=problem_responses(413),
            summary="Ship many orders from a CSV (订单号, 物流公司, 运单号); each row reports its result")
async def bulk_ship(session: UoW, me: Writer, file: Annotated[UploadFile, File(description="CSV file")]) -> BulkShipReportOut:
    data = await file.read(MAX_BULK_BYTES + 1)
    if len(data) > MAX_BULK_BYTES:
        raise DomainError("file_too_large", f"文件不能超过 {MAX_BULK_BYTES // (1024 * 1024)} MB",
                          f"The file may be at most {MAX_BULK_BYTES // (1024 * 1024)} MB", status=413)
    return BulkShipReportOut.model_validate(await fulfilment.bulk_ship_csv(session, me.scope, data))


@admin.get("/{order_id}", response_model=AdminOrderOut, summary="One order with lines, parts, parcels, timeline and payments")
async def get_order(order_id: PathId, session: UoW, me: Reader) -> AdminOrderOut:
    return admin_detail(await service.order_detail(session, me.scope, order_id))


@admin.post("/{order_id}/cancel", response_model=AdminOrderOut, summary="Cancel an unpaid order")
async def cancel(order_id: PathId, session: UoW, me: Writer, body: NoBody = _EMPTY) -> AdminOrderOut:
    await service.cancel_order(session, me.scope, order_id, by="staff", reason=body.reason)
    return admin_detail(await service.order_detail(session, me.scope, order_id))


@admin.post("/{order_id}/ship", response_model=ShipOut,
            summary="Ship a parcel (repeating the same carrier and tracking number returns the same parcel)")
async def ship(order_id: PathId, body: ShipIn, session: UoW, me: Writer) -> ShipOut:
    items = [(i.line_id, i.quantity) for i in body.items] if body.items else None
    res = await fulfilment.ship(session, me.scope, order_id, fulfilment_id=body.fulfilment_id, items=items,
                                carrier_code=body.carrier_code, tracking_no=body.tracking_no)
    return ShipOut(created=res.created, order_status=res.order.status,
                   shipment=ShipmentOut.model_validate(res.shipment))


@admin.post("/{order_id}/delivered", response_model=AdminOrderOut, summary="Mark a shipped order delivered")
async def delivered(order_id: PathId, session: UoW, me: Writer) -> AdminOrderOut:
    await fulfilment.mark_delivered(session, me.scope, order_id)
    return admin_detail(await service.order_detail(session, me.scope, order_id))


@admin.post("/{order_id}/note", response_model=AdminOrderOut, summary="Set the seller note (empty clears it)")
async def note(order_id: PathId, body: NoteIn, session: UoW, me: Writer) -> AdminOrderOut:
    await service.set_seller_note(session, me.scope, order_id, body.note)
    return admin_detail(await service.order_detail(session, me.scope, order_id))
