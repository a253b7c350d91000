"""The order lifecycle after checkout: settings, reads, payment, cancellation and timeouts.

Every function takes the caller's session and never commits. Status changes go only
through :func:`siyu.orders.states.move_order` (a conditional update plus a timeline row), so
a shopper, staff, a sweeper and a payment event racing on one order apply a change once.
Shipping, receipt and auto-confirm live in :mod:`siyu.orders.fulfilment`.

Contract
--------

Settings
    ``order_settings(session, scope) -> OrderSettings`` (``pay_timeout_minutes`` 5–1440,
    default 30; ``auto_confirm_days`` 1–30, default 10; ``after_sale_days`` 0–90, default 15:
    how long after completion after-sales may still open), kept in
    ``Tenant.settings["orders"]``; ``update_order_settings(session, scope, **changes)`` (staff,
    audited).
Reads
    ``get_order(session, scope, order_id) -> Order`` (404 ``order_not_found``),
    ``customer_order(session, scope, customer_id, order_id) -> Order`` (another shopper's
    order is the same 404), ``list_orders(session, scope, filters, *, offset, limit,
    with_customers=False) -> (list[OrderListItem], total)``, ``order_detail(session, scope,
    order_id, *, customer_id=None) -> OrderDetail``, ``export_csv(session, scope, filters) -> str``.
Payment
    ``start_payment(session, scope, *, customer_id, order_id, channel="sandbox",
    return_url=None, payer_openid=None, payer_client_ip=None) -> PaymentStart | None``: the
    amount is the order's ``payable_fen`` and the payment expires with the order's
    ``pay_deadline``; ``None`` means there was nothing to pay (a fully discounted order) and
    the order is paid now. ``payment.succeeded`` events for orders move them to ``paid``; a
    payment that arrives for a cancelled order, or a second payment of a paid order, is
    refunded in full automatically (``out_refund_no = "LP" + out_trade_no``).
Cancellation
    ``cancel_order(session, scope, order_id, *, by, customer_id=None, reason) -> Order`` from
    ``pending_payment`` only; ``cancel_overdue(session, *, now=None, limit=200) -> int`` (the
    unpaid-timeout sweep over every tenant).
Seller note
    ``set_seller_note(session, scope, order_id, note) -> Order`` (staff, audited).

Events (outbox): ``order.paid`` {order_id, tenant_id, customer_id, paid_fen, payment_id},
``order.cancelled`` {order_id, tenant_id, customer_id, by, reason}, and from fulfilment
``order.shipped``, ``order.delivered``, ``order.completed``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.customers import service as customers_service
from siyu.customers.models import Customer
from siyu.inventory import service as inventory_service
from siyu.kit import audit, clock, outbox
from siyu.kit.context import Actor, current_actor
from siyu.kit.errors import Conflict, DomainError, NotFound, ValidationFailed
from siyu.kit.money import yuan
from siyu.kit.security import mask_phone
from siyu.kit.tenancy import TenantScope
from siyu.orders.models import (
    AfterSale,
    FulfilmentItem,
    Order,
    OrderFulfilment,
    OrderLine,
    OrderTransition,
    Shipment,
)
from siyu.orders.repository import Deadlines, Fulfilments, OrderQuery, Orders, Shipments
from siyu.orders.states import (
    ORDER_STATUS_ZH,
    PAID_STATUSES,
    ensure_order_transition,
    log_order_event,
    move_order,
)
from siyu.payments import service as payments_service
from siyu.payments.models import Payment
from siyu.payments.service import PaymentStart
from siyu.tenants import service as tenants_service

log = logging.getLogger("siyu.orders")

SYSTEM_ACTOR = Actor("system", None, "system")
TIMEOUT_REASON = "超时未支付，系统自动取消"
#: A payment must stay payable at least this long, or the payer cannot finish it.
MIN_PAY_WINDOW = timedelta(seconds=60)
MAX_REASON = 80
MAX_NOTE = 200

audit.describe(
    actions={
        "orders.cancel": "取消订单", "orders.ship": "订单发货", "orders.deliver": "标记送达",
        "orders.note": "修改卖家备注", "orders.settings.update": "修改订单设置",
    },
    objects={"order": "订单", "order_settings": "订单设置"},
)


# -- settings ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSettings:
    pay_timeout_minutes: int = 30
    auto_confirm_days: int = 10
    after_sale_days: int = 15
    #: Where shoppers send returns (退货地址): receiver, phone and address in one line;
    #: empty means "ask the shop" (the after-sales page then shows the shop name).
    return_address: str = ""


RETURN_ADDRESS_MAX = 200
#: field → (lowest, highest)
SETTING_RANGES: dict[str, tuple[int, int]] = {
    "pay_timeout_minutes": (5, 1440),
    "auto_confirm_days": (1, 30),
    "after_sale_days": (0, 90),
}
_SETTING_LABELS = {"pay_timeout_minutes": "支付超时（分钟）", "auto_confirm_days": "自动确认收货（天）",
                   "after_sale_days": "售后期限（天）"}


def _settings_from(raw: Any) -> OrderSettings:
    """Stored values outside their range (an older release, a hand edit) fall back to the default."""
    defaults = OrderSettings()
    values: dict[str, int] = {}
    data = raw if isinstance(raw, dict) else {}
    for key, (lo, hi) in SETTING_RANGES.items():
        v = data.get(key)
        values[key] = v if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi else getattr(defaults, key)
    addr = data.get("return_address")
    text = addr.strip() if isinstance(addr, str) and len(addr) <= RETURN_ADDRESS_MAX else ""
    return OrderSettings(**values, return_address=text)


async def order_settings(session: AsyncSession, scope: TenantScope) -> OrderSettings:
    tenant = await tenants_service.get_tenant(session, scope.id)
    return _settings_from((tenant.settings or {}).get("orders"))


def _settings_dict(s: OrderSettings) -> dict[str, Any]:
    return {"pay_timeout_minutes": s.pay_timeout_minutes, "auto_confirm_days": s.auto_confirm_days,
            "after_sale_days": s.after_sale_days, "return_address": s.return_address}


async def update_order_settings(session: AsyncSession, scope: TenantScope, *, pay_timeout_minutes: int | None = None,
                                auto_confirm_days: int | None = None, after_sale_days: int | None = None,
                                return_address: str | None = None) -> OrderSettings:
    """Change some settings (``None`` keeps a value). They apply to orders from now on: an
    order keeps the pay deadline and auto-confirm time it was given."""
    changes = {"pay_timeout_minutes": pay_timeout_minutes, "auto_confirm_days": auto_confirm_days,
               "after_sale_days": after_sale_days}
    errors = []
    for key, value in changes.items():
        if value is None:
            continue
        lo, hi = SETTING_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            errors.append({"field": key, "message": f"must be a whole number from {lo} to {hi}"})
    if errors:
        zh = "、".join(f"{_SETTING_LABELS[e['field']]}需为 {SETTING_RANGES[e['field']][0]}–{SETTING_RANGES[e['field']][1]}"
                      for e in errors)
        raise ValidationFailed("order_settings_invalid", zh, "Some order settings are out of range", fields=errors)
    if return_address is not None:
        return_address = " ".join(return_address.split())
        if len(return_address) > RETURN_ADDRESS_MAX or any(ord(c) < 32 or ord(c) == 127 for c in return_address):
            raise ValidationFailed("order_settings_invalid", f"退货地址最多 {RETURN_ADDRESS_MAX} 个字符",
                                   f"The return address is at most {RETURN_ADDRESS_MAX} characters",
                                   fields=[{"field": "return_address", "message": f"at most {RETURN_ADDRESS_MAX} characters"}])
    tenant = await tenants_service.get_tenant(session, scope.id)
    # Lock the tenant row: the settings dict is read, changed and written back whole.
    await session.refresh(tenant, with_for_update=True)
    before = _settings_from((tenant.settings or {}).get("orders"))
    new_values: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    if return_address is not None:
        new_values["return_address"] = return_address
    after = replace(before, **new_values)
    tenant.settings = {**(tenant.settings or {}), "orders": _settings_dict(after)}
    await session.flush()
    if after != before:
        audit.record(session, tenant_id=scope.id, action="orders.settings.update", object_type="order_settings",
                     object_id=scope.id, before=_settings_dict(before), after=_settings_dict(after))
    return after


def after_sale_deadline(order: Order, settings: OrderSettings) -> datetime | None:
    """Until when after-sales may open: ``after_sale_days`` after completion; no limit
    before the order completes (``None``)."""
    if order.completed_at is None:
        return None
    return order.completed_at + timedelta(days=settings.after_sale_days)


# -- reads --------------------------------------------------------------------------------------------


def order_not_found() -> NotFound:
    return NotFound("order_not_found", "订单不存在", "Order not found")


async def get_order(session: AsyncSession, scope: TenantScope, order_id: int) -> Order:
    order = await Orders(session, scope.id).fresh(order_id)
    if order is None:
        raise order_not_found()
    return order


async def customer_order(session: AsyncSession, scope: TenantScope, customer_id: int, order_id: int, *,
                         for_update: bool = False) -> Order:
    """A shopper's own order; anyone else's is the same 404 as a missing one."""
    order = await Orders(session, scope.id).fresh(order_id, for_update=for_update)
    if order is None or order.customer_id != customer_id:
        raise order_not_found()
    return order


async def order_by_no(session: AsyncSession, scope: TenantScope, order_no: str) -> Order:
    order = await Orders(session, scope.id).by_no(order_no.strip())
    if order is None:
        raise order_not_found()
    return order


async def order_lines(session: AsyncSession, scope: TenantScope, order_id: int) -> list[OrderLine]:
    return await Orders(session, scope.id).lines(order_id)


@dataclass(frozen=True, slots=True)
class OrderFilters:
    """What a list or an export is narrowed to. Dates are days in the tenant's time zone
    (both ends included); ``customer`` matches a customer's phone exactly or nickname in part."""

    status: str | None = None
    statuses: tuple[str, ...] | None = None
    created_from: date | None = None
    created_to: date | None = None
    customer_id: int | None = None
    customer: str | None = None
    order_no: str | None = None
    product: str | None = None


def day_bounds(scope: TenantScope, start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """``[start 00:00, end + 1 day 00:00)`` in the tenant's time zone, as aware datetimes."""
    tz = ZoneInfo(scope.timezone)
    lo = datetime.combine(start, time.min, tz) if start else None
    hi = datetime.combine(end, time.min, tz) + timedelta(days=1) if end and end < date.max else None
    return lo, hi


async def _query(session: AsyncSession, scope: TenantScope, f: OrderFilters) -> OrderQuery:
    lo, hi = day_bounds(scope, f.created_from, f.created_to)
    customer_ids: tuple[int, ...] | None = None
    text = (f.customer or "").strip()
    if text:
        rows, _total = await customers_service.list_customers(session, scope, q=text, limit=500)
        customer_ids = tuple(c.id for c in rows)
    return OrderQuery(status=f.status or None, statuses=f.statuses, created_from=lo, created_to=hi,
                      customer_id=f.customer_id, customer_ids=customer_ids, order_no=(f.order_no or "").strip() or None,
                      product=(f.product or "").strip() or None)


@dataclass(frozen=True, slots=True)
class OrderListItem:
    order: Order
    lines: list[OrderLine]
    customer_name: str | None = None
    customer_phone: str | None = None


async def _customers(session: AsyncSession, scope: TenantScope, ids: Sequence[int],
                     cache: dict[int, Customer | None] | None = None) -> dict[int, Customer | None]:
    cache = {} if cache is None else cache
    for cid in sorted(set(ids)):
        if cid in cache:
            continue
        try:
            cache[cid] = await customers_service.get_customer(session, scope, cid)
        except NotFound:
            cache[cid] = None
    return cache


async def list_orders(session: AsyncSession, scope: TenantScope, filters: OrderFilters | None = None, *,
                      offset: int = 0, limit: int = 20, with_customers: bool = False) -> tuple[list[OrderListItem], int]:
    """Newest first. ``with_customers`` adds each order's customer nickname and phone (raw:
    mask it when showing a list)."""
    repo = Orders(session, scope.id)
    rows, total = await repo.search(await _query(session, scope, filters or OrderFilters()), offset, limit)
    lines = await repo.lines_of(o.id for o in rows)
    people = await _customers(session, scope, [o.customer_id for o in rows]) if with_customers else {}
    out = []
    for o in rows:
        c = people.get(o.customer_id)
        out.append(OrderListItem(o, lines.get(o.id, []), c.nickname if c else None, c.phone if c else None))
    return out, total


@dataclass(frozen=True, slots=True)
class FulfilmentView:
    fulfilment: OrderFulfilment
    items: list[FulfilmentItem]


@dataclass(frozen=True)
class OrderDetail:
    order: Order
    lines: list[OrderLine]
    fulfilments: list[FulfilmentView]
    shipments: list[Shipment]
    #: Oldest first, each with its actor's type and name.
    transitions: list[OrderTransition]
    after_sales: list[AfterSale]
    payments: list[Payment]
    customer: Customer | None
    settings: OrderSettings
    #: Until when after-sales may open (None: no limit yet, the order has not completed).
    after_sale_until: datetime | None
    #: What the audience may do now: pay, cancel, confirm (shopper); cancel, ship, deliver, note (staff).
    actions: frozenset[str] = field(default_factory=frozenset)


def shopper_actions(order: Order, now: datetime | None = None) -> frozenset[str]:
    now = now or clock.now()
    out: set[str] = set()
    if order.status == "pending_payment":
        out.add("cancel")
        if order.pay_deadline is not None and order.pay_deadline > now + MIN_PAY_WINDOW:
            out.add("pay")
    if order.status in ("shipped", "delivered"):
        out.add("confirm")
    return frozenset(out)


def staff_actions(order: Order) -> frozenset[str]:
    out: set[str] = {"note"}
    if order.status == "pending_payment":
        out.add("cancel")
    if order.status in ("paid", "partially_shipped") and order.requires_shipping:
        out.add("ship")
    if order.status == "shipped":
        out.add("deliver")
    return frozenset(out)


async def order_detail(session: AsyncSession, scope: TenantScope, order_id: int, *,
                       customer_id: int | None = None) -> OrderDetail:
    """Everything a detail page shows. With ``customer_id`` the order must be that shopper's
    (404 otherwise) and ``actions`` are the shopper's; without, the staff's."""
    order = (await customer_order(session, scope, customer_id, order_id) if customer_id is not None
             else await get_order(session, scope, order_id))
    repo = Orders(session, scope.id)
    fulfilments = Fulfilments(session, scope.id)
    parts = await fulfilments.of_order(order.id)
    items = await fulfilments.items_of_order(order.id)
    by_part: dict[int, list[FulfilmentItem]] = defaultdict(list)
    for it in items:
        by_part[it.fulfilment_id].append(it)
    settings = await order_settings(session, scope)
    customer = None
    if customer_id is None:
        customer = (await _customers(session, scope, [order.customer_id])).get(order.customer_id)
    return OrderDetail(
        order=order,
        lines=await repo.lines(order.id),
        fulfilments=[FulfilmentView(p, by_part.get(p.id, [])) for p in parts],
        shipments=await Shipments(session, scope.id).of_order(order.id),
        transitions=await repo.transitions(order.id),
        after_sales=await repo.cases(order.id),
        payments=list(await payments_service.payments_for_source(session, scope, "order", str(order.id))),
        customer=customer,
        settings=settings,
        after_sale_until=after_sale_deadline(order, settings),
        actions=shopper_actions(order) if customer_id is not None else staff_actions(order),
    )


# -- export -------------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = ("订单号", "下单时间", "状态", "客户", "客户手机", "商品", "件数", "商品金额", "优惠", "运费", "应付", "实付",
                  "已退款", "收货人", "收货电话", "收货地址", "物流单号", "买家备注", "卖家备注")


def _cell(value: Any) -> str:
    """A cell Excel shows as text: a leading = + - @ would otherwise run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def address_text(address: dict[str, Any] | None) -> str:
    a = address or {}
    return "".join(str(a.get(k) or "") for k in ("province", "city", "district", "detail"))


def items_summary(lines: Sequence[OrderLine]) -> str:
    parts = []
    for ln in lines:
        spec = f"（{ln.spec_text}）" if ln.spec_text else ""
        parts.append(f"{ln.title}{spec}×{ln.quantity}")
    return "；".join(parts)


def local_time(scope: TenantScope, at: datetime | None) -> str:
    return at.astimezone(ZoneInfo(scope.timezone)).strftime("%Y-%m-%d %H:%M:%S") if at else ""


async def export_csv(session: AsyncSession, scope: TenantScope, filters: OrderFilters | None = None) -> str:
    """The filtered list as CSV, one row per order, UTF-8 with a BOM so Excel reads the Chinese."""
    query = await _query(session, scope, filters or OrderFilters())
    repo = Orders(session, scope.id)
    shipments_repo = Shipments(session, scope.id)
    people: dict[int, Customer | None] = {}
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(EXPORT_COLUMNS)
    async for batch in repo.batches(query):
        ids = [o.id for o in batch]
        lines = await repo.lines_of(ids)
        parcels = await shipments_repo.of_orders(ids)
        await _customers(session, scope, [o.customer_id for o in batch], people)
        for o in batch:
            c = people.get(o.customer_id)
            addr = o.address or {}
            w.writerow([_cell(v) for v in (
                o.order_no, local_time(scope, o.created_at), ORDER_STATUS_ZH.get(o.status, o.status),
                (c.nickname if c else None) or f"#{o.customer_id}", mask_phone(c.phone if c else None),
                items_summary(lines.get(o.id, [])), o.item_count, yuan(o.goods_fen), yuan(o.discount_fen),
                yuan(o.freight_fen), yuan(o.payable_fen), yuan(o.paid_fen), yuan(o.refunded_fen),
                addr.get("receiver_name") or "", addr.get("phone") or "", address_text(addr),
                "；".join(f"{s.carrier_name} {s.tracking_no}" for s in parcels.get(o.id, [])),
                o.buyer_note or "", o.seller_note or "",
            )])
    return out.getvalue()


# -- seller note ----------------------------------------------------------------------------------------


async def set_seller_note(session: AsyncSession, scope: TenantScope, order_id: int, note: str | None) -> Order:
    order = await get_order(session, scope, order_id)
    text = (note or "").strip() or None
    if text is not None and len(text) > MAX_NOTE:
        raise ValidationFailed("seller_note_too_long", f"卖家备注最多 {MAX_NOTE} 个字符",
                               f"The seller note may be at most {MAX_NOTE} characters",
                               fields=[{"field": "note", "message": f"at most {MAX_NOTE} characters"}])
    before = order.seller_note
    if text == before:
        return order
    await Orders(session, scope.id).set_seller_note(order.id, text)
    audit.record(session, tenant_id=scope.id, action="orders.note", object_type="order", object_id=order.id,
                 before={"seller_note": before}, after={"seller_note": text})
    return await get_order(session, scope, order.id)


# -- payment --------------------------------------------------------------------------------------------


def _not_payable(order: Order) -> Conflict:
    return Conflict("order_not_payable", "订单已不能支付", "The order can no longer be paid",
                    extra={"status": order.status})


async def start_payment(session: AsyncSession, scope: TenantScope, *, customer_id: int, order_id: int,
                        channel: str = "sandbox", return_url: str | None = None, payer_openid: str | None = None,
                        payer_client_ip: str | None = None) -> PaymentStart | None:
    """Open (or reuse) the payment of a shopper's unpaid order; see the module docstring."""
    # The row lock makes a cancel in progress finish first, so no payment opens for an
    # order that is being cancelled.
    order = await customer_order(session, scope, customer_id, order_id, for_update=True)
    now = clock.now()
    if order.status != "pending_payment" or order.pay_deadline is None or order.pay_deadline <= now + MIN_PAY_WINDOW:
        raise _not_payable(order)
    if order.payable_fen == 0:
        await _mark_paid(session, scope, order, payment_id=None, amount_fen=0, paid_at=now,
                         actor=current_actor(), note="无需支付")
        return None
    tenant = await tenants_service.get_tenant(session, scope.id)
    description = f"{tenant.name} 订单 {order.order_no}"
    if len(description) > 127:
        description = f"订单 {order.order_no}"
    return await payments_service.create_payment(
        session, scope, source_type="order", source_id=str(order.id), amount_fen=order.payable_fen,
        description=description, channel=channel, payer_openid=payer_openid, return_url=return_url,
        expires_at=order.pay_deadline, payer_client_ip=payer_client_ip,
    )


async def _order_owner(session: AsyncSession, scope: TenantScope, source_id: str) -> int | None:
    try:
        order_id = int(source_id)
    except ValueError:
        return None
    order = await Orders(session, scope.id).get(order_id)
    return order.customer_id if order is not None else None


payments_service.register_source_owner("order", _order_owner)


async def _mark_paid(session: AsyncSession, scope: TenantScope, order: Order, *, payment_id: int | None,
                     amount_fen: int, paid_at: datetime, actor: Actor, note: str | None) -> bool:
    if not await move_order(session, order, "paid", "pay", actor=actor, note=note, paid_at=paid_at, paid_fen=amount_fen,
                            payment_id=payment_id, auto_confirm_at=None):
        return False
    lines = await Orders(session, scope.id).lines(order.id, fresh=True)
    sold: dict[int, int] = defaultdict(int)
    for ln in lines:
        sold[ln.product_id] += ln.quantity
    await catalog_service.record_sales(session, scope, dict(sold))
    outbox.publish(session, "order.paid", {"order_id": order.id, "tenant_id": order.tenant_id,
                                           "customer_id": order.customer_id, "paid_fen": amount_fen,
                                           "payment_id": payment_id}, tenant_id=order.tenant_id)
    from siyu.orders import fulfilment  # (fulfilment imports this module)

    await fulfilment.deliver_virtual(session, scope, order, actor=actor)
    return True


async def apply_payment(session: AsyncSession, scope: TenantScope, *, order_id: int, payment_id: int, amount_fen: int,
                        out_trade_no: str, paid_at: datetime | None = None, gateway: str | None = None) -> str:
    """What a succeeded payment means for its order. Returns ``paid``, ``refunded`` (a late or
    duplicate payment sent back), ``replay`` or ``unknown_order``. Idempotent."""
    repo = Orders(session, scope.id)
    order = await repo.fresh(order_id, for_update=True)
    if order is None:
        log.error("a payment names an order that does not exist", extra={"payment_id": payment_id, "order_id": order_id})
        return "unknown_order"
    if order.payment_id == payment_id:
        return "replay"
    actor = Actor("gateway", None, gateway or "gateway", scope.id)
    if order.status == "pending_payment" and amount_fen == order.payable_fen:
        if await _mark_paid(session, scope, order, payment_id=payment_id, amount_fen=amount_fen,
                            paid_at=paid_at or clock.now(), actor=actor, note=out_trade_no):
            return "paid"
        order = await repo.fresh(order_id) or order  # moved meanwhile: judge again below
        if order.payment_id == payment_id:
            return "replay"
    if order.status == "pending_payment":
        why_zh, why_en = "支付金额与订单应付不符，已原路退回", "amount differs from the order's payable"
    elif order.status in PAID_STATUSES or order.status == "closed":
        why_zh, why_en = "订单已由另一笔支付付款，重复支付已原路退回", "duplicate payment"
    else:
        why_zh, why_en = "订单已取消，迟到的支付已原路退回", "late payment for a cancelled order"
    note = f"{why_zh}（{out_trade_no}）"
    if await repo.has_event(order.id, "payment_refund", note):
        return "replay"
    await payments_service.refund(session, scope, payment_id=payment_id, amount_fen=amount_fen,
                                  out_refund_no=f"LP{out_trade_no}", reason=why_zh[:80], source_type="order",
                                  source_id=str(order.id))
    log_order_event(session, order, "payment_refund", actor=actor, note=note)
    log.warning("payment refunded automatically", extra={"order_id": order.id, "payment_id": payment_id, "why": why_en})
    return "refunded"


async def scope_for(session: AsyncSession, tenant_id: int) -> TenantScope:
    return tenants_service.scope_of(await tenants_service.get_tenant(session, tenant_id))


@outbox.on("payment.succeeded")
async def _on_payment_succeeded(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    if p.get("source_type") != "order":
        return
    try:
        order_id = int(p["source_id"])
    except (TypeError, ValueError):
        log.error("an order payment names no order id", extra={"payment_id": p.get("payment_id")})
        return
    scope = await scope_for(session, int(p["tenant_id"]))
    paid_at = datetime.fromisoformat(p["paid_at"]) if p.get("paid_at") else None
    await apply_payment(session, scope, order_id=order_id, payment_id=int(p["payment_id"]), amount_fen=int(p["amount_fen"]),
                        out_trade_no=str(p["out_trade_no"]), paid_at=paid_at, gateway=p.get("gateway"))


# -- cancellation ------------------------------------------------------------------------------------------


def _already_paid() -> Conflict:
    return Conflict("order_already_paid", "订单已支付，不能取消", "The order has been paid and can no longer be cancelled")


async def _cancel(session: AsyncSession, scope: TenantScope, order: Order, *, by: str, reason: str,
                  actor: Actor | None = None) -> str:
    """Cancel one unpaid order: ``cancelled``, ``already_paid`` (money was taken: the payment
    event will pay the order) or ``raced`` (someone else moved it first)."""
    ensure_order_transition(order.status, "cancelled")
    # Lock the order before looking at its payments: a payment being opened or applied at
    # this moment finishes first (or waits for us), so none slips past the close below.
    if await Orders(session, scope.id).fresh(order.id, for_update=True) is None:
        raise order_not_found()
    if order.status != "pending_payment":
        if order.status == "cancelled":
            return "raced"
        ensure_order_transition(order.status, "cancelled")
    for p in await payments_service.payments_for_source(session, scope, "order", str(order.id)):
        if p.status == "succeeded":
            return "already_paid"
        if p.status == "pending":
            closed = await payments_service.close_payment(session, scope, p.id, cause="order_cancelled")
            if closed.status == "succeeded":
                return "already_paid"
    now = clock.now()
    if not await move_order(session, order, "cancelled", "cancel", actor=actor, note=reason, cancelled_at=now,
                            cancel_reason=reason[:MAX_REASON]):
        if order.status != "cancelled":
            ensure_order_transition(order.status, "cancelled")
        return "raced"
    # Only the transaction that moved the order gets here, so the stock goes back once.
    await inventory_service.release(session, scope, f"order:{order.id}")
    await Fulfilments(session, scope.id).cancel_open(order.id)
    outbox.publish(session, "order.cancelled", {"order_id": order.id, "tenant_id": order.tenant_id,
                                                "customer_id": order.customer_id, "by": by, "reason": reason},
                   tenant_id=order.tenant_id)
    return "cancelled"


def _reason(reason: str | None, by: str) -> str:
    text = " ".join((reason or "").split())
    if len(text) > MAX_REASON:
        raise ValidationFailed("cancel_reason_too_long", f"取消原因最多 {MAX_REASON} 个字符",
                               f"The reason may be at most {MAX_REASON} characters",
                               fields=[{"field": "reason", "message": f"at most {MAX_REASON} characters"}])
    return text or {"customer": "买家取消", "staff": "商家取消", "system": TIMEOUT_REASON}[by]


async def cancel_order(session: AsyncSession, scope: TenantScope, order_id: int, *, by: str,
                       customer_id: int | None = None, reason: str | None = None) -> Order:
    """Cancel an unpaid order (shopper, staff or system); see the module docstring.

    409 ``order_illegal_transition`` unless it is ``pending_payment``; 409
    ``order_already_paid`` when the gateway reports the money taken as we close the payment."""
    if by not in ("customer", "staff", "system"):
        raise ValueError(f"unknown canceller {by!r}")
    if by == "customer":
        if customer_id is None:
            raise ValueError("a customer cancel needs customer_id")
        order = await customer_order(session, scope, customer_id, order_id)
    else:
        order = await get_order(session, scope, order_id)
    text = _reason(reason, by)
    before = order.status
    outcome = await _cancel(session, scope, order, by=by, reason=text, actor=SYSTEM_ACTOR if by == "system" else None)
    if outcome == "already_paid":
        raise _already_paid()
    if by == "staff" and outcome == "cancelled":
        audit.record(session, tenant_id=scope.id, action="orders.cancel", object_type="order", object_id=order.id,
                     before={"status": before}, after={"status": order.status, "reason": text})
    return order


async def cancel_overdue(session: AsyncSession, *, now: datetime | None = None, limit: int = 200) -> int:
    """Cancel unpaid orders past their pay deadline, in every tenant; returns how many.

    Each order is cancelled in its own savepoint, so one that fails (a gateway that cannot
    be reached to close its payment) is logged and retried next time without stopping the
    batch. Two sweepers running at once cancel each order once: the status move is a
    conditional update and only its winner releases the stock."""
    now = now or clock.now()
    scopes: dict[int, TenantScope] = {}
    done = 0
    for order_id, tenant_id in await Deadlines(session).unpaid_overdue(now, limit):
        try:
            async with session.begin_nested():
                if tenant_id not in scopes:
                    scopes[tenant_id] = await scope_for(session, tenant_id)
                scope = scopes[tenant_id]
                order = await Orders(session, tenant_id).fresh(order_id)
                if (order is None or order.status != "pending_payment" or order.pay_deadline is None
                        or order.pay_deadline >= now):
                    continue
                outcome = await _cancel(session, scope, order, by="system", reason=TIMEOUT_REASON, actor=SYSTEM_ACTOR)
                done += outcome == "cancelled"
        except DomainError as exc:
            log.warning("unpaid order not cancelled", extra={"order_id": order_id, "code": exc.code, "error": str(exc)})
        except Exception:
            log.exception("unpaid order not cancelled", extra={"order_id": order_id})
    return done
