"""JSON endpoints of after-sales (售后).

* Store (``/api/store/v1/{shop}``, signed-in shopper): my cases (``GET /after-sales``), the
  reasons to choose from, open a case for one of my orders (``POST /after-sales``), one case
  with its lines and timeline, the return parcel (``POST /after-sales/{id}/return``), withdraw,
  and what an order can still take (``GET /orders/{order_id}/refundable``). Another shopper's
  case or order is a 404.
* Admin (``/api/admin/v1/after-sales``): the queue with filters and one case
  (``orders.read``); approve, reject, receive the return and retry a failed refund
  (``aftersales.manage``); a staff refund on an order, approved at once
  (``POST /api/admin/v1/orders/{order_id}/refund``) and what it can still take
  (``GET /api/admin/v1/orders/{order_id}/refundable``). Staff writes are audited.

Amounts are always the server's: a request names units, never money.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit.context import current_language
from siyu.kit.pagination import Page, Pages
from siyu.kit.types import FilterText, ObjectId, PathId, SearchText, ShortText, Text, no_control
from siyu.kit.web import ADMIN_ERRORS, UoW, problem_responses
from siyu.orders import aftersales
from siyu.orders.aftersales import CaseDetail, CaseRow, Refundable
from siyu.orders.models import AfterSale
from siyu.orders.states import CASE_STATUS_EN, CASE_STATUS_ZH, CASE_STATUSES
from siyu.staff.access import StaffPrincipal, require

store = APIRouter(prefix="/api/store/v1/{shop}", tags=["store: after-sales"],
                  responses=problem_responses(400, 401, 403, 404, 409, 422, 429))
admin = APIRouter(prefix="/api/admin/v1/after-sales", tags=["admin: after-sales"], responses=ADMIN_ERRORS)
admin_orders = APIRouter(prefix="/api/admin/v1/orders", tags=["admin: after-sales"], responses=ADMIN_ERRORS)

#: Every router of this part; ``orders.api`` gathers them.
routers: list[APIRouter] = [store, admin, admin_orders]

Reader = Annotated[StaffPrincipal, require("orders.read")]
Manager = Annotated[StaffPrincipal, require("aftersales.manage")]
Kind = Literal["refund_only", "return_refund"]
KindFilter = Annotated[Kind | None, Query(description="refund_only | return_refund")]
StatusFilter = Annotated[str | None, Query(pattern="^(open|" + "|".join(CASE_STATUSES) + ")$",
                                           description="A case status, or open (every status still in progress)")]
DateFilter = Annotated[date | None, Query(description="A day in the shop's time zone (YYYY-MM-DD)")]
ImageRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), AfterValidator(no_control)]


# -- input ---------------------------------------------------------------------------------------------


class CaseLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_line_id: ObjectId
    quantity: int = Field(ge=1, le=100_000)


class CaseOpenIn(BaseModel):
    """A shopper's request. ``reason`` is one of ``GET /after-sales/reasons`` for the kind;
    ``images`` are URLs of pictures already uploaded (at most 6)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "order_id": 1024, "kind": "refund_only", "lines": [{"order_line_id": 2048, "quantity": 1}],
        "reason": "商品破损", "description": "外盒压坏，茶饼碎了", "images": ["/media/after-sales/2048-1.jpg"],
    }]})

    order_id: ObjectId
    kind: Kind
    lines: list[CaseLineIn] = Field(min_length=1, max_length=aftersales.MAX_LINES)
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    description: Annotated[Text, StringConstraints(max_length=aftersales.DESCRIPTION_MAX)] | None = None
    images: list[ImageRef] = Field(default_factory=list, max_length=aftersales.MAX_IMAGES)


class StaffRefundIn(BaseModel):
    """A refund staff start on an order (approved at once). Without ``lines`` every unit the
    order can still refund with this kind is taken (the whole order, for a paid one that has
    not shipped)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "缺货无法发货"},
        {"kind": "refund_only", "lines": [{"order_line_id": 2048, "quantity": 1}], "reason": "商家协商退款",
         "description": "与买家电话协商，退一件"},
    ]})

    kind: Kind = "refund_only"
    lines: list[CaseLineIn] | None = Field(default=None, min_length=1, max_length=aftersales.MAX_LINES)
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)] = "商家协商退款"
    description: Annotated[Text, StringConstraints(max_length=aftersales.DESCRIPTION_MAX)] | None = None


class ReturnIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"carrier": "顺丰", "tracking_no": "SF1234567890"}]})

    carrier: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40), AfterValidator(no_control)]
    tracking_no: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9-]{4,40}$")]


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "商品已签收超过七天"}]})

    reason: Annotated[ShortText, StringConstraints(min_length=1)]


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "破损属实，同意退款"}]})

    note: ShortText | None = None


_NO_NOTE = ApproveIn()


# -- output --------------------------------------------------------------------------------------------


class CaseLineOut(BaseModel):
    order_line_id: int
    sku_id: int
    title: str
    spec_text: str
    image: str | None
    unit_price_fen: int
    line_quantity: int
    quantity: int
    cancelled_qty: int = Field(description="Of quantity, units taken before they shipped (they will not ship)")
    refund_fen: int


class TimelineOut(BaseModel):
    at: datetime
    from_status: str
    to_status: str
    action: str
    actor_type: str
    actor_name: str | None
    note: str | None


class CaseCard(BaseModel):
    id: int
    case_no: str
    order_id: int
    order_no: str
    kind: str
    kind_label: str
    status: str
    status_label: str
    reason: str
    reason_label: str
    refund_fen: int
    units: int
    opened_by: str
    created_at: datetime
    resolved_at: datetime | None
    lines: list[dict[str, int]] = Field(description="[{order_line_id, quantity, refund_fen}]")


class AdminCaseRow(CaseCard):
    customer_id: int


class StoreCaseOut(BaseModel):
    id: int
    case_no: str
    order_id: int
    order_no: str
    kind: str
    kind_label: str
    status: str
    status_label: str
    reason: str
    reason_label: str
    description: str | None
    images: list[str]
    refund_fen: int
    opened_by: str
    reject_reason: str | None
    return_carrier: str | None
    return_tracking_no: str | None
    return_address: str | None = Field(description="Where to send the goods (return cases once approved)")
    refund_status: str | None = Field(description="pending | succeeded | failed: the latest refund attempt")
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    lines: list[CaseLineOut]
    timeline: list[TimelineOut]
    actions: list[str] = Field(description="What this audience may do now")


class AdminCaseOut(StoreCaseOut):
    customer_id: int
    refund_id: int | None
    order_status: str
    order_paid_fen: int
    order_refunded_fen: int


class RefundableLineOut(BaseModel):
    order_line_id: int
    sku_id: int
    title: str
    spec_text: str
    image: str | None
    unit_price_fen: int
    quantity: int
    paid_fen: int
    refund_qty: int = Field(description="Units already in cases (open or refunded)")
    unshipped_qty: int
    refund_only_qty: int
    refund_only_fen: int = Field(description="The refund for all refund_only_qty units")
    return_refund_qty: int
    return_refund_fen: int
    unit_refund_fen: int = Field(description="The refund for one more unit")
    open_case_id: int | None


class ReasonsOut(BaseModel):
    kinds: list[dict[str, Any]] = Field(description="[{kind, label, reasons: [{value, label}]}]")


class RefundableOut(BaseModel):
    order_id: int
    order_no: str
    order_status: str
    allowed: bool
    reason: str | None = Field(description="Why no case can be opened now (in the request's language)")
    window_ends_at: datetime | None
    lines: list[RefundableLineOut]
    reasons: ReasonsOut


# -- shaping -------------------------------------------------------------------------------------------


def _en() -> bool:
    return current_language().startswith("en")


def _status_label(status: str) -> str:
    return (CASE_STATUS_EN if _en() else CASE_STATUS_ZH).get(status, status)


def _kind_label(kind: str) -> str:
    return (aftersales.KIND_EN if _en() else aftersales.KIND_ZH).get(kind, kind)


def _reason_label(reason: str) -> str:
    return aftersales.REASON_EN.get(reason, reason) if _en() else reason


def _card_fields(case: AfterSale, order_no: str, lines: list[Any]) -> dict[str, Any]:
    return {
        "id": case.id, "case_no": case.case_no, "order_id": case.order_id, "order_no": order_no, "kind": case.kind,
        "kind_label": _kind_label(case.kind), "status": case.status, "status_label": _status_label(case.status),
        "reason": case.reason, "reason_label": _reason_label(case.reason), "refund_fen": case.refund_fen,
        "units": sum(cl.quantity for cl in lines), "opened_by": case.opened_by, "created_at": case.created_at,
        "resolved_at": case.resolved_at,
        "lines": [{"order_line_id": cl.order_line_id, "quantity": cl.quantity, "refund_fen": cl.refund_fen} for cl in lines],
    }


def store_card(row: CaseRow) -> CaseCard:
    return CaseCard(**_card_fields(row.case, row.order_no, row.lines))


def admin_row(row: CaseRow) -> AdminCaseRow:
    return AdminCaseRow(**_card_fields(row.case, row.order_no, row.lines), customer_id=row.case.customer_id)


def _detail_fields(d: CaseDetail) -> dict[str, Any]:
    c = d.case
    return {
        "id": c.id, "case_no": c.case_no, "order_id": c.order_id, "order_no": d.order.order_no, "kind": c.kind,
        "kind_label": _kind_label(c.kind), "status": c.status, "status_label": _status_label(c.status), "reason": c.reason,
        "reason_label": _reason_label(c.reason), "description": c.description, "images": list(c.images or []),
        "refund_fen": c.refund_fen, "opened_by": c.opened_by, "reject_reason": c.reject_reason,
        "return_carrier": c.return_carrier, "return_tracking_no": c.return_tracking_no, "return_address": d.return_address,
        "refund_status": d.refund_status, "created_at": c.created_at, "updated_at": c.updated_at,
        "resolved_at": c.resolved_at,
        "lines": [CaseLineOut(order_line_id=v.order_line_id, sku_id=v.sku_id, title=v.title, spec_text=v.spec_text,
                              image=v.image, unit_price_fen=v.unit_price_fen, line_quantity=v.line_quantity,
                              quantity=v.quantity, cancelled_qty=v.cancelled_qty, refund_fen=v.refund_fen) for v in d.lines],
        "timeline": [TimelineOut(at=t.at, from_status=t.from_status, to_status=t.to_status, action=t.action,
                                 actor_type=t.actor_type, actor_name=t.actor_name, note=t.note) for t in d.timeline],
    }


def store_detail(d: CaseDetail) -> StoreCaseOut:
    return StoreCaseOut(**_detail_fields(d), actions=d.shopper_actions)


def admin_detail(d: CaseDetail) -> AdminCaseOut:
    return AdminCaseOut(**_detail_fields(d), actions=d.staff_actions, customer_id=d.case.customer_id,
                        refund_id=d.case.refund_id, order_status=d.order.status, order_paid_fen=d.order.paid_fen,
                        order_refunded_fen=d.order.refunded_fen)


def reasons_out(*, staff: bool) -> ReasonsOut:
    return ReasonsOut(kinds=[{
        "kind": kind, "label": _kind_label(kind),
        "reasons": [{"value": r, "label": _reason_label(r)} for r in aftersales.reasons(kind, staff=staff)],
    } for kind in aftersales.KINDS])


def refundable_out(r: Refundable, *, staff: bool) -> RefundableOut:
    o = r.order
    return RefundableOut(
        order_id=o.id, order_no=o.order_no, order_status=o.status, allowed=r.allowed,
        reason=(r.reason_en if _en() else r.reason_zh) if not r.allowed else None, window_ends_at=r.window_ends_at,
        lines=[RefundableLineOut(
            order_line_id=x.line.id, sku_id=x.line.sku_id, title=x.line.title, spec_text=x.line.spec_text,
            image=x.line.image, unit_price_fen=x.line.unit_price_fen, quantity=x.line.quantity, paid_fen=x.line.paid_fen,
            refund_qty=x.line.refund_qty, unshipped_qty=x.unshipped_qty, refund_only_qty=x.refund_only_qty,
            refund_only_fen=x.refund_only_fen, return_refund_qty=x.return_refund_qty, return_refund_fen=x.return_refund_fen,
            unit_refund_fen=x.fen_for(1) if x.line.refund_qty < x.line.quantity else 0, open_case_id=x.open_case_id,
        ) for x in r.lines],
        reasons=reasons_out(staff=staff),
    )


def _me(shopper: ShopperSession) -> int:
    assert shopper.customer is not None
    return shopper.customer.id


def _pairs(lines: list[CaseLineIn]) -> list[tuple[int, int]]:
    return [(ln.order_line_id, ln.quantity) for ln in lines]


# -- store ---------------------------------------------------------------------------------------------


@store.get("/after-sales", response_model=Page[CaseCard], summary="My after-sales cases, newest first")
async def my_cases(session: UoW, pages: Pages, me: CurrentShopper, status: StatusFilter = None) -> Page[CaseCard]:
    rows, total = await aftersales.customer_cases(session, me.shop.scope, _me(me), status=status, offset=pages.offset,
                                                  limit=pages.page_size)
    return Page(items=[store_card(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@store.get("/after-sales/reasons", response_model=ReasonsOut, summary="The kinds of case and the reasons to choose from")
async def store_reasons(me: CurrentShopper) -> ReasonsOut:
    return reasons_out(staff=False)


@store.post("/after-sales", response_model=StoreCaseOut, status_code=201,
            summary="Ask for a refund (仅退款) or a return and refund (退货退款) of some units of my order")
async def open_case(body: CaseOpenIn, session: UoW, me: CurrentShopper) -> StoreCaseOut:
    scope = me.shop.scope
    case = await aftersales.open_case(session, scope, body.order_id, customer_id=_me(me), kind=body.kind,
                                      lines=_pairs(body.lines), reason=body.reason, description=body.description,
                                      images=body.images)
    return store_detail(await aftersales.case_detail(session, scope, case.id, customer_id=_me(me)))


@store.get("/after-sales/{case_id}", response_model=StoreCaseOut, summary="One of my cases with its lines and timeline")
async def my_case(case_id: PathId, session: UoW, me: CurrentShopper) -> StoreCaseOut:
    return store_detail(await aftersales.case_detail(session, me.shop.scope, case_id, customer_id=_me(me)))


@store.post("/after-sales/{case_id}/return", response_model=StoreCaseOut,
            summary="I sent the goods back: carrier and tracking number (an approved return case)")
async def submit_return(case_id: PathId, body: ReturnIn, session: UoW, me: CurrentShopper) -> StoreCaseOut:
    await aftersales.submit_return(session, me.shop.scope, case_id, customer_id=_me(me), carrier=body.carrier,
                                   tracking_no=body.tracking_no)
    return store_detail(await aftersales.case_detail(session, me.shop.scope, case_id, customer_id=_me(me)))


@store.post("/after-sales/{case_id}/withdraw", response_model=StoreCaseOut, summary="Withdraw my request")
async def withdraw(case_id: PathId, session: UoW, me: CurrentShopper) -> StoreCaseOut:
    await aftersales.withdraw(session, me.shop.scope, case_id, customer_id=_me(me))
    return store_detail(await aftersales.case_detail(session, me.shop.scope, case_id, customer_id=_me(me)))


@store.get("/orders/{order_id}/refundable", response_model=RefundableOut,
           summary="What my order can still ask for: units and refund per line and kind")
async def my_refundable(order_id: PathId, session: UoW, me: CurrentShopper) -> RefundableOut:
    order = await aftersales.order_for_customer(session, me.shop.scope, order_id, _me(me))
    return refundable_out(await aftersales.refundable_lines(session, me.shop.scope, order), staff=False)


# -- admin ---------------------------------------------------------------------------------------------


@admin.get("", response_model=Page[AdminCaseRow], summary="The after-sales queue: status, kind, dates, order, customer")
async def queue(
    session: UoW, pages: Pages, me: Reader, status: StatusFilter = None, kind: KindFilter = None,
    created_from: DateFilter = None, created_to: DateFilter = None, order_no: FilterText = None,
    customer_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None, q: SearchText = None,
) -> Page[AdminCaseRow]:
    from siyu.orders import service as order_service

    lo, hi = order_service.day_bounds(me.scope, created_from, created_to)
    query = aftersales.CaseQuery(status=status, kind=kind, customer_id=customer_id, order_no=order_no, q=q,
                                 created_from=lo, created_to=hi)
    rows, total = await aftersales.list_cases(session, me.scope, query, pages.offset, pages.page_size)
    return Page(items=[admin_row(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@admin.get("/reasons", response_model=ReasonsOut, summary="The kinds of case and the reasons staff may give")
async def admin_reasons(me: Reader) -> ReasonsOut:
    return reasons_out(staff=True)


@admin.get("/{case_id}", response_model=AdminCaseOut, summary="One case with lines, timeline and refund status")
async def get_case(case_id: PathId, session: UoW, me: Reader) -> AdminCaseOut:
    return admin_detail(await aftersales.case_detail(session, me.scope, case_id))


@admin.post("/{case_id}/approve", response_model=AdminCaseOut,
            summary="Approve: refund-only cases are refunded, return cases wait for the parcel")
async def approve(case_id: PathId, session: UoW, me: Manager,
                  body: Annotated[ApproveIn, Body(description="Optional; an empty body approves")] = _NO_NOTE) -> AdminCaseOut:
    await aftersales.approve(session, me.scope, case_id, note=body.note)
    return admin_detail(await aftersales.case_detail(session, me.scope, case_id))


@admin.post("/{case_id}/reject", response_model=AdminCaseOut, summary="Reject with a reason the shopper sees")
async def reject(case_id: PathId, body: RejectIn, session: UoW, me: Manager) -> AdminCaseOut:
    await aftersales.reject(session, me.scope, case_id, body.reason)
    return admin_detail(await aftersales.case_detail(session, me.scope, case_id))


@admin.post("/{case_id}/receive", response_model=AdminCaseOut,
            summary="The returned goods arrived: restock them and refund")
async def receive(case_id: PathId, session: UoW, me: Manager) -> AdminCaseOut:
    await aftersales.receive_return(session, me.scope, case_id)
    return admin_detail(await aftersales.case_detail(session, me.scope, case_id))


@admin.post("/{case_id}/retry-refund", response_model=AdminCaseOut, summary="Send a failed refund again")
async def retry_refund(case_id: PathId, session: UoW, me: Manager) -> AdminCaseOut:
    await aftersales.retry_refund(session, me.scope, case_id)
    return admin_detail(await aftersales.case_detail(session, me.scope, case_id))


@admin_orders.post("/{order_id}/refund", response_model=AdminCaseOut, status_code=201,
                   summary="Refund units of an order (退款): a case approved at once")
async def staff_refund(order_id: PathId, body: StaffRefundIn, session: UoW, me: Manager) -> AdminCaseOut:
    case = await aftersales.open_case(session, me.scope, order_id, customer_id=None, kind=body.kind,
                                      lines=_pairs(body.lines) if body.lines is not None else None, reason=body.reason,
                                      description=body.description)
    return admin_detail(await aftersales.case_detail(session, me.scope, case.id))


@admin_orders.get("/{order_id}/refundable", response_model=RefundableOut,
                  summary="What an order can still refund: units and amount per line and kind")
async def refundable(order_id: PathId, session: UoW, me: Reader) -> RefundableOut:
    order = await aftersales.order_for_customer(session, me.scope, order_id, None)
    return refundable_out(await aftersales.refundable_lines(session, me.scope, order), staff=True)
