"""After-sales (售后): refund-only and return-and-refund cases, and their refunds.

A shopper (or staff, from the order page) opens a case for some units of some lines of a
paid order. The case holds those units and their money on the order lines at once, by
conditional update, so concurrent cases can never claim more than was bought or paid:

* ``refund_qty + k <= quantity`` on every line (``refund_qty`` / ``refund_fen`` count the
  units and fen of open and refunded cases);
* a refund-only case takes the line's **unshipped** units first: they become
  ``cancelled_qty`` (``shipped_qty + cancelled_qty + u <= quantity``), so they can no longer
  be shipped while the case is open; the rest, and every unit of a return case, must be
  shipped units no other case holds (``refund_qty − cancelled_qty <= shipped_qty``).

Each order line has at most one open case at a time (``409 after_sale_open``): the rule
shoppers know from Youzan, and what makes giving units back exact (the open case is always
the last claim on its lines).

Money
    With a line's ``paid_fen = P``, ``quantity = n`` and ``r`` units already claimed, a case
    for ``k`` more units refunds ``P·(r+k)//n − P·r//n`` (:func:`line_refund_fen`). The claims
    of a line telescope, so refunding every unit — in any number of cases, in any order —
    returns exactly ``P``, and all lines exactly what the order paid (discounts and freight
    are already spread into each line's ``paid_fen``). A rejected or withdrawn case gives its
    units and fen back by conditional decrement.

Workflow (the table is :data:`siyu.orders.states.CASE_TRANSITIONS`; every change goes
through :func:`siyu.orders.states.move_case`)::

    open (shopper) ─▶ requested ─approve─▶ refunding (refund only: the refund is requested)
                              └─approve─▶ approved ─submit_return (shopper)─▶ returning
                                                     receive_return (staff) ─▶ refunding
    refunding ─refund.succeeded─▶ refunded      refunding ─refund.failed─▶ approved ─retry─▶ refunding
    requested / approved / returning ─reject (staff)─▶ rejected, ─withdraw (shopper)─▶ withdrawn

Staff-opened cases (the console's 退款 on an order) are approved at once. Returned goods are
restocked when staff receive them (``inventory.restock``, source ``after_sale:{case id}``).

Refund outcome (outbox ``refund.succeeded`` / ``refund.failed`` of ``source_type
"after_sale"``): succeeded moves the case to ``refunded`` once — the conditional move is the
guard against a gateway notifying twice —, adds ``refunded_qty`` / ``refunded_fen`` to the
lines and ``refunded_fen`` to the order, releases the reservation of units cancelled before
shipping, closes the order when everything paid went back (releasing whatever is still
reserved), or asks fulfilment to re-check whether every remaining unit has shipped; then
publishes ``after_sale.refunded`` ``{case_id, case_no, order_id, tenant_id, customer_id, kind,
refund_fen, lines: [{order_line_id, sku_id, quantity, refund_fen}]}`` for the modules that
take back points and commission. Failed returns the case to ``approved`` with a timeline
note; staff retry with a new refund number ``AS{case_no}R{n}``.

Contract (pages and the API call these)
    ``open_case(session, scope, order_id, *, customer_id=None, kind, lines, reason,
    description=None, images=(), opened_by=None) -> AfterSale``
    ``approve(session, scope, case_id, *, note=None)``, ``reject(session, scope, case_id, reason)``,
    ``receive_return(session, scope, case_id)``, ``retry_refund(session, scope, case_id)`` (staff);
    ``withdraw(session, scope, case_id, *, customer_id)``, ``submit_return(session, scope, case_id, *,
    customer_id, carrier, tracking_no)`` (shopper) — each returns the case.
    ``case_detail(session, scope, case_id, *, customer_id=None) -> CaseDetail``,
    ``list_cases(session, scope, CaseQuery, offset, limit) -> (list[CaseRow], total)``,
    ``customer_cases(session, scope, customer_id, *, status=None, offset=0, limit=20)``,
    ``cases_for_order(session, scope, order_id) -> list[AfterSale]``,
    ``refundable_lines(session, scope, order) -> Refundable``, ``reasons(kind)``,
    ``return_address(session, scope) -> str``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.inventory import service as inventory_service
from siyu.inventory.service import ReservedLine
from siyu.kit import audit, clock, outbox
from siyu.kit.context import Actor, current_actor
from siyu.kit.errors import Conflict, NotFound, ValidationFailed
from siyu.kit.tenancy import TenantRepository, TenantScope
from siyu.kit.types import no_control
from siyu.orders import states
from siyu.orders.models import (
    AfterSale,
    AfterSaleLine,
    FulfilmentItem,
    Order,
    OrderFulfilment,
    OrderLine,
    OrderTransition,
)
from siyu.payments import service as payments_service

log = logging.getLogger("siyu.orders.aftersales")

SOURCE_TYPE = "after_sale"
REFUNDED_TOPIC = "after_sale.refunded"
KINDS = ("refund_only", "return_refund")
KIND_ZH = {"refund_only": "仅退款", "return_refund": "退货退款"}
KIND_EN = {"refund_only": "Refund only", "return_refund": "Return and refund"}
#: What a shopper may give as the reason, per kind (stored as the Chinese text, as shown).
REASONS: dict[str, tuple[str, ...]] = {
    "refund_only": ("不想要了", "拍错了/多拍了", "未按约定时间发货", "快递一直未送达", "商品破损", "少件漏发", "质量问题",
                    "与描述不符", "其他"),
    "return_refund": ("七天无理由退货", "不想要了", "拍错了/多拍了", "商品破损", "质量问题", "与描述不符", "发错货", "其他"),
}
#: Reasons only staff give (a refund the shop decides on, e.g. an item it cannot ship).
STAFF_REASONS: tuple[str, ...] = ("缺货无法发货", "商家协商退款")
REASON_EN = {
    "不想要了": "No longer wanted", "拍错了/多拍了": "Ordered by mistake", "未按约定时间发货": "Not shipped on time",
    "快递一直未送达": "Parcel never arrived", "商品破损": "Damaged", "少件漏发": "Items missing", "质量问题": "Quality problem",
    "与描述不符": "Not as described", "其他": "Other", "七天无理由退货": "7-day no-reason return", "发错货": "Wrong item sent",
    "缺货无法发货": "Out of stock, cannot ship", "商家协商退款": "Refund agreed with the shop",
}
MAX_IMAGES = 6
MAX_LINES = 99
DESCRIPTION_MAX = 500
#: An uploaded image: a site path (``/media/...``) or an http(s) URL, without spaces or quotes.
_IMAGE = re.compile(r"^(https?://[A-Za-z0-9.-]+(:\d{1,5})?)?/[A-Za-z0-9._~%/+=,@!-]*$")
_TRACKING = re.compile(r"^[A-Za-z0-9-]{4,40}$")
#: Order statuses in which a case may be opened (``completed`` only within the after-sales window).
OPENABLE_STATUSES = frozenset({"paid", "partially_shipped", "shipped", "delivered", "completed"})
GATEWAY_ACTOR = Actor(kind="gateway", id=None, name="支付网关")

audit.describe(
    actions={
        "orders.after_sale.open": "发起售后（商家）", "orders.after_sale.approve": "同意售后",
        "orders.after_sale.reject": "拒绝售后", "orders.after_sale.receive": "确认收到退货",
        "orders.after_sale.retry_refund": "重新发起退款",
    },
    objects={"after_sale": "售后单"},
)


def reasons(kind: str, *, staff: bool = False) -> tuple[str, ...]:
    """The reasons offered for ``kind`` (staff may also give :data:`STAFF_REASONS`)."""
    return REASONS.get(kind, ()) + (STAFF_REASONS if staff else ())


def line_refund_fen(paid_fen: int, quantity: int, claimed: int, k: int) -> int:
    """Fen for ``k`` more units of a line that paid ``paid_fen`` for ``quantity`` units, of
    which ``claimed`` are already in cases: ``P·(r+k)//n − P·r//n`` (exact over all units)."""
    if quantity <= 0 or k < 0 or claimed < 0 or claimed + k > quantity:
        raise ValueError("claimed + k must lie within 0..quantity")
    return paid_fen * (claimed + k) // quantity - paid_fen * claimed // quantity


# -- errors ------------------------------------------------------------------------------------------


def _bad(field_name: str, code: str, zh: str, en: str) -> ValidationFailed:
    return ValidationFailed(code, zh, en, fields=[{"field": field_name, "message": en}])


def _case_not_found() -> NotFound:
    return NotFound("after_sale_not_found", "售后单不存在", "After-sales case not found")


def _order_not_found() -> NotFound:
    return NotFound("order_not_found", "订单不存在", "Order not found")


def _illegal(case: AfterSale, to_status: str) -> Conflict:
    try:
        states.ensure_case_transition(case.status, to_status)
    except Conflict as exc:
        return exc
    return Conflict("after_sale_illegal_transition", "售后单当前状态不能进行该操作",
                    "The after-sales case cannot do that in its current status",
                    extra={"from_status": case.status, "to_status": to_status})


def _lost_race() -> Conflict:
    return Conflict("after_sale_changed", "售后单状态已变化，请刷新后重试", "The case changed meanwhile; reload and try again")


# -- queries -------------------------------------------------------------------------------------------


def _rowcount(res: Any) -> int:
    return int(res.rowcount)


class _Cases(TenantRepository[AfterSale]):
    model = AfterSale
    not_found_zh = "售后单"
    not_found_en = "After-sales case"
    not_found_code = "after_sale_not_found"

    async def fresh(self, case_id: int, *, for_update: bool = False) -> AfterSale | None:
        stmt = self.select().where(AfterSale.id == case_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_no(self, case_no: str) -> AfterSale | None:
        return (await self.session.execute(self.select().where(AfterSale.case_no == case_no))).scalar_one_or_none()

    async def lines(self, case_id: int) -> list[AfterSaleLine]:
        stmt = (select(AfterSaleLine).where(AfterSaleLine.tenant_id == self.tenant_id, AfterSaleLine.after_sale_id == case_id)
                .order_by(AfterSaleLine.order_line_id).execution_options(populate_existing=True))
        return list((await self.session.execute(stmt)).scalars().all())

    async def lines_of(self, case_ids: Sequence[int]) -> dict[int, list[AfterSaleLine]]:
        out: dict[int, list[AfterSaleLine]] = {cid: [] for cid in case_ids}
        if not case_ids:
            return out
        stmt = (select(AfterSaleLine).where(AfterSaleLine.tenant_id == self.tenant_id,
                                            AfterSaleLine.after_sale_id.in_(list(case_ids)))
                .order_by(AfterSaleLine.after_sale_id, AfterSaleLine.order_line_id))
        for line in (await self.session.execute(stmt)).scalars():
            out[line.after_sale_id].append(line)
        return out

    async def open_on_lines(self, line_ids: Iterable[int]) -> dict[int, AfterSale]:
        """{order_line_id: its open case} among ``line_ids``."""
        ids = sorted(set(line_ids))
        if not ids:
            return {}
        stmt = (select(AfterSaleLine.order_line_id, AfterSale)
                .join(AfterSale, AfterSale.id == AfterSaleLine.after_sale_id)
                .where(AfterSale.tenant_id == self.tenant_id, AfterSaleLine.order_line_id.in_(ids),
                       AfterSale.status.in_(sorted(states.OPEN_CASE_STATUSES))))
        return {int(lid): case for lid, case in (await self.session.execute(stmt)).all()}

    async def for_order(self, order_id: int) -> list[AfterSale]:
        stmt = self.select().where(AfterSale.order_id == order_id).order_by(AfterSale.id)
        return list(await self.list(stmt))

    async def insert(self, case: AfterSale) -> bool:
        """Insert with its number; False when the number is taken (the caller draws another)."""
        try:
            async with self.session.begin_nested():
                self.add(case)
                await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def set_refund(self, case_id: int, refund_id: int) -> None:
        await self.session.execute(
            update(AfterSale).where(AfterSale.tenant_id == self.tenant_id, AfterSale.id == case_id)
            .values(refund_id=refund_id, updated_at=clock.now()).execution_options(synchronize_session=False))

    async def timeline(self, case_id: int) -> list[OrderTransition]:
        stmt = (select(OrderTransition).where(OrderTransition.tenant_id == self.tenant_id,
                                              OrderTransition.after_sale_id == case_id)
                .order_by(OrderTransition.id))
        return list((await self.session.execute(stmt)).scalars().all())

    async def count_actions(self, case_id: int, action: str) -> int:
        stmt = (select(func.count()).select_from(OrderTransition)
                .where(OrderTransition.tenant_id == self.tenant_id, OrderTransition.after_sale_id == case_id,
                       OrderTransition.action == action))
        return int((await self.session.execute(stmt)).scalar_one())

    def search_stmt(self, q: CaseQuery) -> Select[Any]:
        stmt: Any = select(AfterSale, Order.order_no).join(Order, Order.id == AfterSale.order_id).where(
            AfterSale.tenant_id == self.tenant_id, Order.tenant_id == self.tenant_id)
        if q.status == "open":
            stmt = stmt.where(AfterSale.status.in_(sorted(states.OPEN_CASE_STATUSES)))
        elif q.status:
            stmt = stmt.where(AfterSale.status == q.status)
        if q.kind:
            stmt = stmt.where(AfterSale.kind == q.kind)
        if q.customer_id:
            stmt = stmt.where(AfterSale.customer_id == q.customer_id)
        if q.order_id:
            stmt = stmt.where(AfterSale.order_id == q.order_id)
        if q.order_no:
            stmt = stmt.where(Order.order_no == q.order_no.strip())
        if q.case_no:
            stmt = stmt.where(AfterSale.case_no == q.case_no.strip())
        if q.q:
            like = "%" + q.q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(AfterSale.case_no.like(like, escape="\\"), Order.order_no.like(like, escape="\\")))
        if q.created_from:
            stmt = stmt.where(AfterSale.created_at >= q.created_from)
        if q.created_to:
            stmt = stmt.where(AfterSale.created_at < q.created_to)
        return stmt

    async def search(self, q: CaseQuery, offset: int, limit: int) -> tuple[list[tuple[AfterSale, str]], int]:
        stmt = self.search_stmt(q)
        total = await self.count(stmt)
        rows = (await self.session.execute(stmt.order_by(AfterSale.created_at.desc(), AfterSale.id.desc())
                                           .offset(offset).limit(limit))).all()
        return [(case, str(no)) for case, no in rows], total


class _Lines(TenantRepository[OrderLine]):
    """The after-sales counters of order lines; every change is one conditional update."""

    model = OrderLine

    async def of_order(self, order_id: int, *, lock: bool = False) -> list[OrderLine]:
        stmt = (self.select().where(OrderLine.order_id == order_id).order_by(OrderLine.id)
                .execution_options(populate_existing=True))
        if lock:
            stmt = stmt.with_for_update()
        return list(await self.list(stmt))

    async def claim(self, line: OrderLine, k: int, u: int, fen: int) -> bool:
        """Hold ``k`` units (``u`` of them unshipped, now cancelled) and ``fen`` for a case."""
        L = OrderLine
        res = await self.session.execute(
            update(L).where(
                L.tenant_id == self.tenant_id, L.id == line.id,
                L.refund_qty == line.refund_qty,  # the amount was computed from this count
                L.refund_qty + k <= L.quantity,
                L.shipped_qty + L.cancelled_qty + u <= L.quantity,
                L.refund_qty + k - (L.cancelled_qty + u) <= L.shipped_qty,
                L.refund_fen + fen <= L.paid_fen,
            ).values(refund_qty=L.refund_qty + k, cancelled_qty=L.cancelled_qty + u, refund_fen=L.refund_fen + fen)
            .execution_options(synchronize_session=False))
        return _rowcount(res) == 1

    async def give_back(self, line_id: int, k: int, u: int, fen: int) -> bool:
        L = OrderLine
        res = await self.session.execute(
            update(L).where(L.tenant_id == self.tenant_id, L.id == line_id, L.refund_qty >= k, L.cancelled_qty >= u,
                            L.refund_fen >= fen)
            .values(refund_qty=L.refund_qty - k, cancelled_qty=L.cancelled_qty - u, refund_fen=L.refund_fen - fen)
            .execution_options(synchronize_session=False))
        return _rowcount(res) == 1

    async def mark_refunded(self, line_id: int, k: int, fen: int) -> bool:
        L = OrderLine
        res = await self.session.execute(
            update(L).where(L.tenant_id == self.tenant_id, L.id == line_id, L.refunded_qty + k <= L.refund_qty,
                            L.refunded_fen + fen <= L.refund_fen)
            .values(refunded_qty=L.refunded_qty + k, refunded_fen=L.refunded_fen + fen)
            .execution_options(synchronize_session=False))
        return _rowcount(res) == 1

    async def shipped_from(self, line_ids: Sequence[int]) -> dict[int, int]:
        """{order_line_id: the stock location its first shipped fulfilment part ships from}."""
        if not line_ids:
            return {}
        stmt = (select(FulfilmentItem.order_line_id, OrderFulfilment.location_id)
                .join(OrderFulfilment, OrderFulfilment.id == FulfilmentItem.fulfilment_id)
                .where(FulfilmentItem.tenant_id == self.tenant_id, FulfilmentItem.order_line_id.in_(list(line_ids)),
                       FulfilmentItem.shipped_qty > 0, OrderFulfilment.location_id.is_not(None))
                .order_by(FulfilmentItem.order_line_id, OrderFulfilment.seq))
        out: dict[int, int] = {}
        for line_id, loc in (await self.session.execute(stmt)).all():
            out.setdefault(int(line_id), int(loc or 0))
        return out

    async def unshipped_parts(self, line_ids: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
        """{order_line_id: [(location_id, units not yet shipped)] from the last part to the first}."""
        if not line_ids:
            return {}
        stmt = (select(FulfilmentItem.order_line_id, OrderFulfilment.location_id,
                       FulfilmentItem.quantity - FulfilmentItem.shipped_qty)
                .join(OrderFulfilment, OrderFulfilment.id == FulfilmentItem.fulfilment_id)
                .where(FulfilmentItem.tenant_id == self.tenant_id, FulfilmentItem.order_line_id.in_(list(line_ids)),
                       OrderFulfilment.location_id.is_not(None))
                .order_by(FulfilmentItem.order_line_id, OrderFulfilment.seq.desc()))
        out: dict[int, list[tuple[int, int]]] = {}
        for line_id, loc, left in (await self.session.execute(stmt)).all():
            out.setdefault(int(line_id), []).append((int(loc or 0), int(left or 0)))
        return out


class _Orders(TenantRepository[Order]):
    model = Order

    async def fresh(self, order_id: int, *, for_update: bool = False) -> Order | None:
        stmt = self.select().where(Order.id == order_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add_refunded(self, order_id: int, fen: int) -> bool:
        res = await self.session.execute(
            update(Order).where(Order.tenant_id == self.tenant_id, Order.id == order_id,
                                Order.refunded_fen + fen <= Order.paid_fen)
            .values(refunded_fen=Order.refunded_fen + fen, updated_at=clock.now())
            .execution_options(synchronize_session=False))
        return _rowcount(res) == 1


# -- values --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseQuery:
    """Filters of the staff queue. ``status="open"`` means every status that still holds units."""

    status: str | None = None
    kind: str | None = None
    customer_id: int | None = None
    order_id: int | None = None
    order_no: str | None = None
    case_no: str | None = None
    q: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class CaseRow:
    case: AfterSale
    order_no: str
    lines: list[AfterSaleLine]


@dataclass(frozen=True, slots=True)
class CaseLineView:
    """A line of a case with what the order line says about the goods."""

    id: int
    order_line_id: int
    sku_id: int
    title: str
    spec_text: str
    image: str | None
    unit_price_fen: int
    line_quantity: int
    quantity: int
    cancelled_qty: int
    refund_fen: int


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    from_status: str
    to_status: str
    action: str
    actor_type: str
    actor_name: str | None
    note: str | None


@dataclass(frozen=True)
class CaseDetail:
    case: AfterSale
    order: Order
    lines: list[CaseLineView]
    timeline: list[TimelineEntry]
    #: Where the shopper sends goods back (return cases once approved), else None.
    return_address: str | None
    #: The payments module's refund status (pending | succeeded | failed) of the latest attempt.
    refund_status: str | None
    #: What the staff member (``staff_actions``) and the shopper (``shopper_actions``) can do now.
    staff_actions: list[str] = field(default_factory=list)
    shopper_actions: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RefundableLine:
    """What can still be asked for on one line, per kind, and the fen it would refund."""

    line: OrderLine
    refund_only_qty: int
    refund_only_fen: int
    return_refund_qty: int
    return_refund_fen: int
    #: Units not yet shipped (refund only takes these first).
    unshipped_qty: int
    open_case_id: int | None

    def fen_for(self, qty: int) -> int:
        """The refund for ``qty`` more units of this line."""
        return line_refund_fen(self.line.paid_fen, self.line.quantity, self.line.refund_qty, qty)


@dataclass(frozen=True)
class Refundable:
    order: Order
    #: Whether a case may be opened now; if not, why (zh / en).
    allowed: bool
    reason_zh: str | None
    reason_en: str | None
    lines: list[RefundableLine]
    #: The last moment a case may be opened for a completed order (None: not completed yet).
    window_ends_at: datetime | None = None


# -- settings -------------------------------------------------------------------------------------------


async def _tenant(session: AsyncSession, scope: TenantScope) -> Any:
    from siyu.tenants import service as tenants_service

    return await tenants_service.get_tenant(session, scope.id)


async def return_address(session: AsyncSession, scope: TenantScope) -> str:
    """Where returns go: ``Tenant.settings["orders"]["return_address"]`` if set, else the shop name."""
    tenant = await _tenant(session, scope)
    conf = (tenant.settings or {}).get("orders") or {}
    text = conf.get("return_address") if isinstance(conf, dict) else None
    return str(text).strip() if isinstance(text, str) and text.strip() else str(tenant.name)




# -- validation -------------------------------------------------------------------------------------------


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 2**63 - 1


def _requested_lines(lines: Any) -> dict[int, int]:
    if not isinstance(lines, list | tuple) or not lines:
        raise _bad("lines", "after_sale_lines_invalid", "请选择要售后的商品和数量", "Choose the items and quantities")
    if len(lines) > MAX_LINES:
        raise _bad("lines", "after_sale_lines_invalid", f"一次最多 {MAX_LINES} 行", f"At most {MAX_LINES} lines at once")
    merged: dict[int, int] = {}
    for item in lines:
        try:
            line_id, qty = item
        except (TypeError, ValueError):
            raise _bad("lines", "after_sale_lines_invalid", "每行需为（订单行、数量）", "Each line is (order_line_id, qty)") from None
        if not _positive_int(line_id) or not _positive_int(qty) or qty > 100_000:
            raise _bad("lines", "after_sale_lines_invalid", "商品或数量无效", "Invalid line or quantity")
        merged[line_id] = merged.get(line_id, 0) + qty
    return dict(sorted(merged.items()))


def _clean_text(value: str | None, limit: int, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(field_name, "after_sale_text_invalid", "内容无效", f"{field_name} must be text")
    value = value.strip()
    try:
        no_control(value)
    except ValueError:
        raise _bad(field_name, "after_sale_text_invalid", "内容含有不允许的字符", f"{field_name} contains control characters") from None
    if len(value) > limit:
        raise _bad(field_name, "after_sale_text_invalid", f"最多 {limit} 个字", f"{field_name} is at most {limit} characters")
    return value or None


def _clean_images(images: Any) -> list[str]:
    if images is None:
        return []
    if not isinstance(images, list | tuple) or len(images) > MAX_IMAGES:
        raise _bad("images", "after_sale_images_invalid", f"最多上传 {MAX_IMAGES} 张图片", f"At most {MAX_IMAGES} images")
    out: list[str] = []
    for img in images:
        if not isinstance(img, str) or len(img) > 500 or img.startswith("//") or not _IMAGE.match(img) or ".." in img:
            raise _bad("images", "after_sale_images_invalid", "图片地址无效", "An image must be a site path or an http(s) URL")
        out.append(img)
    return out


def _check_reason(kind: str, reason: Any, staff: bool) -> str:
    if kind not in KINDS:
        raise _bad("kind", "after_sale_kind_invalid", "售后类型无效", "kind must be refund_only or return_refund")
    if not isinstance(reason, str) or reason.strip() not in reasons(kind, staff=staff):
        raise ValidationFailed("after_sale_reason_invalid", "请选择售后原因", "Choose one of the listed reasons",
                               fields=[{"field": "reason", "message": "not one of the listed reasons"}],
                               extra={"reasons": list(reasons(kind, staff=staff))})
    return reason.strip()


# -- case numbers ------------------------------------------------------------------------------------------


def new_case_no(scope: TenantScope) -> str:
    """``yymmdd`` in the tenant's time zone + 8 random digits (unique per tenant by constraint)."""
    day = clock.now().astimezone(ZoneInfo(scope.timezone)).strftime("%y%m%d")
    return f"{day}{secrets.randbelow(10**8):08d}"


# -- opening a case ------------------------------------------------------------------------------------------


async def _openable(session: AsyncSession, scope: TenantScope, order: Order) -> tuple[bool, str | None, str | None, datetime | None]:
    """(may a case open now, why not in zh / en, the end of the after-sales window)."""
    from siyu.orders import service as order_service

    if order.status not in OPENABLE_STATUSES:
        zh = {"pending_payment": "订单未付款，可直接取消订单", "cancelled": "订单已取消", "closed": "订单已关闭"}
        return False, zh.get(order.status, "订单当前状态不能申请售后"), f"An order that is {order.status} has no after-sales", None
    settings = await order_service.order_settings(session, scope)
    ends = order_service.after_sale_deadline(order, settings)
    if order.status == "completed" and ends is not None and clock.now() > ends:
        days = settings.after_sale_days
        return False, f"已超过售后期限（确认收货后 {days} 天）", f"The after-sales period ({days} days after completion) is over", ends
    return True, None, None, ends


def _split(line: OrderLine, kind: str, k: int) -> tuple[int, int] | None:
    """(unshipped units taken, shipped units taken) for ``k`` units, or None if too many."""
    unshipped = max(0, line.quantity - line.shipped_qty - line.cancelled_qty)
    shipped_free = max(0, line.shipped_qty - (line.refund_qty - line.cancelled_qty))
    if kind == "refund_only":
        u = min(k, unshipped)
        return (u, k - u) if k - u <= shipped_free else None
    return (0, k) if k <= shipped_free and line.requires_shipping else None


async def open_case(
    session: AsyncSession,
    scope: TenantScope,
    order_id: int,
    *,
    customer_id: int | None = None,
    kind: str,
    lines: Sequence[tuple[int, int]] | None,
    reason: str,
    description: str | None = None,
    images: Sequence[str] | None = (),
    opened_by: str | None = None,
) -> AfterSale:
    """Open a case for ``lines`` (``(order_line_id, qty)``) of an order; see the module docstring.

    ``lines=None`` takes every unit the order can still claim with this kind, skipping lines
    that have an open case (409 ``after_sale_nothing_left`` when that is nothing).
    ``customer_id`` is the shopper opening it (the order must be theirs, else 404); ``None``
    means staff, whose cases are approved at once (refund only: the refund is requested in
    the same transaction)."""
    staff = customer_id is None
    opened_by = opened_by or ("staff" if staff else "customer")
    reason = _check_reason(kind, reason, staff)
    wanted = _requested_lines(list(lines)) if lines is not None else None
    description = _clean_text(description, DESCRIPTION_MAX, "description")
    imgs = _clean_images(list(images) if images is not None else None)
    # Lock the order, then its lines (the order shipping takes too), so the open-case check
    # and the claims below see every case and parcel committed before us.
    order = await _Orders(session, scope.id).fresh(order_id, for_update=True)
    if order is None or (customer_id is not None and order.customer_id != customer_id):
        raise _order_not_found()
    ok, zh, en, _ends = await _openable(session, scope, order)
    if not ok:
        raise Conflict("after_sale_not_allowed", zh or "不能申请售后", en or "No after-sales for this order",
                       extra={"order_status": order.status})
    async with session.begin_nested():
        order_lines = {ln.id: ln for ln in await _Lines(session, scope.id).of_order(order.id, lock=True)}
        if wanted is None:
            busy_now = await _Cases(session, scope.id).open_on_lines(order_lines)
            wanted = {ln.id: _available(ln, kind) for ln in order_lines.values() if ln.id not in busy_now}
            wanted = {lid: q for lid, q in wanted.items() if q > 0}
            if not wanted:
                raise Conflict("after_sale_nothing_left", "没有可以再申请售后的商品", "Nothing is left to refund on this order")
        unknown = [lid for lid in wanted if lid not in order_lines]
        if unknown:
            raise ValidationFailed("after_sale_lines_invalid", "订单中没有这些商品", "These lines are not in the order",
                                   fields=[{"field": "lines", "message": "not a line of this order"}],
                                   extra={"order_line_ids": unknown})
        busy = await _Cases(session, scope.id).open_on_lines(wanted)
        if busy:
            raise Conflict("after_sale_open", "该商品已有进行中的售后，请等待处理完成", "These items already have an after-sales case in progress",
                           extra={"order_line_ids": sorted(busy), "case_ids": sorted({c.id for c in busy.values()})})
        plan: list[tuple[OrderLine, int, int, int]] = []
        too_many: list[dict[str, int]] = []
        for lid, k in wanted.items():
            line = order_lines[lid]
            split = _split(line, kind, k)
            if split is None:
                too_many.append({"order_line_id": lid, "requested": k, "available": _available(line, kind)})
                continue
            plan.append((line, k, split[0], line_refund_fen(line.paid_fen, line.quantity, line.refund_qty, k)))
        if too_many:
            raise Conflict("after_sale_quantity_exceeded", "申请数量超过可售后数量", "More units than can still be claimed",
                           extra={"lines": too_many})
        case = AfterSale(
            order_id=order.id, customer_id=order.customer_id, kind=kind, status="requested", reason=reason,
            description=description, images=imgs, refund_fen=sum(p[3] for p in plan), opened_by=opened_by[:16],
            created_at=clock.now(), updated_at=clock.now(),
        )
        repo = _Cases(session, scope.id)
        for _attempt in range(8):
            case.case_no = new_case_no(scope)
            if await repo.insert(case):
                break
        else:  # pragma: no cover - eight collisions of 10^8 random numbers in one day
            raise Conflict("after_sale_no_busy", "请稍后重试", "Try again in a moment")
        line_repo = _Lines(session, scope.id)
        for line, k, u, fen in plan:
            if not await line_repo.claim(line, k, u, fen):
                raise Conflict("after_sale_quantity_exceeded", "申请数量超过可售后数量", "More units than can still be claimed",
                               extra={"lines": [{"order_line_id": line.id, "requested": k}]})
            session.add(AfterSaleLine(tenant_id=scope.id, after_sale_id=case.id, order_line_id=line.id, sku_id=line.sku_id,
                                      quantity=k, cancelled_qty=u, refund_fen=fen))
        await session.flush()
        states.log_case_creation(session, case, note=f"{KIND_ZH[kind]}：{reason}")
        if staff:
            audit.record(session, tenant_id=scope.id, action="orders.after_sale.open", object_type="after_sale",
                         object_id=case.id, after={"case_no": case.case_no, "order_id": order.id, "kind": kind,
                                                   "reason": reason, "refund_fen": case.refund_fen,
                                                   "lines": {str(ln.id): k for ln, k, _u, _f in plan}})
            await _approve(session, scope, case, order)
    return case


def _available(line: OrderLine, kind: str) -> int:
    unshipped = max(0, line.quantity - line.shipped_qty - line.cancelled_qty)
    shipped_free = max(0, line.shipped_qty - (line.refund_qty - line.cancelled_qty))
    if kind == "refund_only":
        return unshipped + shipped_free
    return shipped_free if line.requires_shipping else 0


# -- workflow ---------------------------------------------------------------------------------------------


async def _case(session: AsyncSession, scope: TenantScope, case_id: int, *, customer_id: int | None = None,
                for_update: bool = False) -> AfterSale:
    case = await _Cases(session, scope.id).fresh(case_id, for_update=for_update)
    if case is None or (customer_id is not None and case.customer_id != customer_id):
        raise _case_not_found()
    return case


async def _order_of(session: AsyncSession, scope: TenantScope, case: AfterSale, *, for_update: bool = False) -> Order:
    order = await _Orders(session, scope.id).fresh(case.order_id, for_update=for_update)
    assert order is not None
    return order


async def _move(session: AsyncSession, case: AfterSale, to: str, action: str, *, actor: Actor | None = None,
                note: str | None = None, **values: Any) -> None:
    """Move or raise: 409 for a move the table forbids, 409 ``after_sale_changed`` when
    another request moved the case first."""
    if not await states.move_case(session, case, to, action, actor=actor, note=note, **values):
        raise _lost_race()


async def _approve(session: AsyncSession, scope: TenantScope, case: AfterSale, order: Order, note: str | None = None) -> None:
    if case.kind == "refund_only":
        await _move(session, case, "refunding", "approve", note=note)
        await _request_refund(session, scope, case, order)
    else:
        address = await return_address(session, scope)
        await _move(session, case, "approved", "approve", note=(note or f"退货地址：{address}")[:200])


async def approve(session: AsyncSession, scope: TenantScope, case_id: int, *, note: str | None = None) -> AfterSale:
    """Staff agree: refund-only cases go to refunding (the refund is requested), return cases
    wait for the shopper's parcel (the timeline shows the return address)."""
    note = _clean_text(note, 200, "note")
    case = await _case(session, scope, case_id)
    if case.status != "requested":
        raise _illegal(case, "refunding" if case.kind == "refund_only" else "approved")
    async with session.begin_nested():
        await _approve(session, scope, case, await _order_of(session, scope, case), note)
        audit.record(session, tenant_id=scope.id, action="orders.after_sale.approve", object_type="after_sale",
                     object_id=case.id, after={"case_no": case.case_no, "status": case.status})
    return case


async def _give_back(session: AsyncSession, scope: TenantScope, case: AfterSale) -> None:
    """Return the case's units and fen to its lines (cancelled units become shippable again)."""
    repo = _Lines(session, scope.id)
    for cl in await _Cases(session, scope.id).lines(case.id):
        if not await repo.give_back(cl.order_line_id, cl.quantity, cl.cancelled_qty, cl.refund_fen):
            raise Conflict("after_sale_counters_mismatch", "售后数量与订单不一致", "The case does not match its order lines",
                           extra={"order_line_id": cl.order_line_id})


def _ensure_not_refunding(case: AfterSale, to: str) -> None:
    """Once money was asked back the shopper can no longer withdraw, and goods that came back
    keep their case: such a case ends only by a (retried) refund."""
    if case.refund_id is not None and (to == "withdrawn" or case.kind == "return_refund"):
        raise Conflict("after_sale_refund_started", "退款已发起，不能撤销或拒绝，请重新发起退款",
                       "A refund was already started for this case; retry the refund instead",
                       extra={"from_status": case.status, "to_status": to})


async def reject(session: AsyncSession, scope: TenantScope, case_id: int, reason: str) -> AfterSale:
    """Staff refuse (with a reason the shopper sees); the units and fen go back to the order."""
    text = _clean_text(reason, 200, "reason")
    if not text:
        raise _bad("reason", "after_sale_reject_reason_required", "请填写拒绝原因", "Give the reason for rejecting")
    case = await _case(session, scope, case_id)
    states.ensure_case_transition(case.status, "rejected")
    _ensure_not_refunding(case, "rejected")
    async with session.begin_nested():
        await _move(session, case, "rejected", "reject", note=text, reject_reason=text, resolved_at=clock.now())
        await _give_back(session, scope, case)
        audit.record(session, tenant_id=scope.id, action="orders.after_sale.reject", object_type="after_sale",
                     object_id=case.id, after={"case_no": case.case_no, "reason": text})
    return case


async def withdraw(session: AsyncSession, scope: TenantScope, case_id: int, *, customer_id: int) -> AfterSale:
    """The shopper takes the request back; the units and fen go back to the order."""
    case = await _case(session, scope, case_id, customer_id=customer_id)
    states.ensure_case_transition(case.status, "withdrawn")
    _ensure_not_refunding(case, "withdrawn")
    async with session.begin_nested():
        await _move(session, case, "withdrawn", "withdraw", resolved_at=clock.now())
        await _give_back(session, scope, case)
    return case


async def submit_return(session: AsyncSession, scope: TenantScope, case_id: int, *, customer_id: int, carrier: str,
                        tracking_no: str) -> AfterSale:
    """The shopper sent the goods back: carrier name and tracking number."""
    carrier_text = _clean_text(carrier, 40, "carrier")
    if not carrier_text:
        raise _bad("carrier", "after_sale_carrier_required", "请填写快递公司", "Give the carrier")
    tracking = (tracking_no or "").strip() if isinstance(tracking_no, str) else ""
    if not _TRACKING.match(tracking):
        raise _bad("tracking_no", "after_sale_tracking_invalid", "快递单号为 4–40 位字母、数字或 -",
                   "The tracking number is 4–40 letters, digits or -")
    case = await _case(session, scope, case_id, customer_id=customer_id)
    if case.kind != "return_refund" or case.refund_id is not None or case.status != "approved":
        raise _illegal(case, "returning")
    await _move(session, case, "returning", "submit_return", note=f"{carrier_text} {tracking}",
                return_carrier=carrier_text, return_tracking_no=tracking)
    return case


async def receive_return(session: AsyncSession, scope: TenantScope, case_id: int) -> AfterSale:
    """Staff got the goods back: restock them where they shipped from, then refund."""
    case = await _case(session, scope, case_id)
    if case.kind != "return_refund" or case.status not in ("approved", "returning") or case.refund_id is not None:
        raise _illegal(case, "refunding")
    order = await _order_of(session, scope, case)
    async with session.begin_nested():
        await _move(session, case, "refunding", "receive_return")
        lines = await _Cases(session, scope.id).lines(case.id)
        where = await _Lines(session, scope.id).shipped_from([cl.order_line_id for cl in lines])
        items: list[Any] = []
        for cl in lines:
            loc = where.get(cl.order_line_id)
            items.append(ReservedLine(cl.sku_id, loc, cl.quantity) if loc is not None else (cl.sku_id, cl.quantity))
        await inventory_service.restock(session, scope, f"after_sale:{case.id}", items, note=f"售后退货 {case.case_no}")
        audit.record(session, tenant_id=scope.id, action="orders.after_sale.receive", object_type="after_sale",
                     object_id=case.id, after={"case_no": case.case_no, "restocked": [[cl.sku_id, cl.quantity] for cl in lines]})
        await _request_refund(session, scope, case, order)
    return case


async def retry_refund(session: AsyncSession, scope: TenantScope, case_id: int) -> AfterSale:
    """After a failed refund (the case is back in ``approved``) send the money again under a
    new refund number ``AS{case_no}R{n}``."""
    case = await _case(session, scope, case_id)
    if case.status != "approved" or case.refund_id is None:
        raise Conflict("after_sale_illegal_transition", "只有退款失败的售后单可以重新退款", "Only a case whose refund failed can retry it",
                       extra={"from_status": case.status, "to_status": "refunding"})
    order = await _order_of(session, scope, case)
    async with session.begin_nested():
        await _move(session, case, "refunding", "retry_refund")
        attempt = await _Cases(session, scope.id).count_actions(case.id, "retry_refund")
        await _request_refund(session, scope, case, order, suffix=f"R{attempt}")
        audit.record(session, tenant_id=scope.id, action="orders.after_sale.retry_refund", object_type="after_sale",
                     object_id=case.id, after={"case_no": case.case_no, "attempt": attempt})
    return case


def _refund_reason(case: AfterSale) -> str:
    return f"售后退款 {case.case_no}：{case.reason}"[:80]


async def _request_refund(session: AsyncSession, scope: TenantScope, case: AfterSale, order: Order, *,
                          suffix: str = "") -> None:
    """Ask the payments module for the case's money (the case is ``refunding``). A case worth
    0 fen (the order paid nothing for those units) is settled at once."""
    if case.refund_fen == 0:
        await _settle(session, scope, case, actor=current_actor())
        return
    if order.payment_id is None:
        raise Conflict("order_not_refundable", "订单没有可退款的支付记录", "The order has no payment to refund")
    refund = await payments_service.refund(
        session, scope, payment_id=order.payment_id, amount_fen=case.refund_fen, out_refund_no=f"AS{case.case_no}{suffix}",
        reason=_refund_reason(case), source_type=SOURCE_TYPE, source_id=str(case.id),
    )
    await _Cases(session, scope.id).set_refund(case.id, refund.id)
    await session.refresh(case)


# -- refund outcome ---------------------------------------------------------------------------------------


async def _scope_of(session: AsyncSession, tenant_id: int) -> TenantScope:
    from siyu.tenants import service as tenants_service

    return tenants_service.scope_of(await tenants_service.get_tenant(session, tenant_id))


def _fully_refunded(order: Order, lines: Sequence[OrderLine]) -> bool:
    if order.paid_fen > 0 and order.refunded_fen >= order.paid_fen:
        return True
    return bool(lines) and all(ln.refunded_qty >= ln.quantity for ln in lines)


async def _release_cancelled(session: AsyncSession, scope: TenantScope, order: Order, case: AfterSale,
                             case_lines: Sequence[AfterSaleLine]) -> None:
    """Units refunded before they shipped will never ship: give their stock back, from the
    fulfilment parts that have not shipped them (last part first)."""
    cancelled = [cl for cl in case_lines if cl.cancelled_qty > 0]
    if not cancelled:
        return
    parts = await _Lines(session, scope.id).unshipped_parts([cl.order_line_id for cl in cancelled])
    items: list[Any] = []
    for cl in cancelled:
        left = cl.cancelled_qty
        for loc, open_units in parts.get(cl.order_line_id, []):
            take = min(left, open_units)
            if take > 0:
                items.append(ReservedLine(cl.sku_id, loc, take))
                left -= take
        if left > 0:
            items.append((cl.sku_id, left))
    await inventory_service.release(session, scope, f"order:{order.id}", items, ref=f"after_sale:{case.id}")


async def _settle(session: AsyncSession, scope: TenantScope, case: AfterSale, *, actor: Actor) -> bool:
    """The money went back: record it once (the conditional move is the guard)."""
    if not await states.move_case(session, case, "refunded", "refunded", actor=actor, resolved_at=clock.now()):
        return False
    orders = _Orders(session, scope.id)
    order = await orders.fresh(case.order_id, for_update=True)
    assert order is not None
    case_lines = await _Cases(session, scope.id).lines(case.id)
    line_repo = _Lines(session, scope.id)
    for cl in case_lines:
        if not await line_repo.mark_refunded(cl.order_line_id, cl.quantity, cl.refund_fen):
            raise Conflict("after_sale_counters_mismatch", "售后数量与订单不一致", "The case does not match its order lines",
                           extra={"order_line_id": cl.order_line_id})
    if case.refund_fen and not await orders.add_refunded(order.id, case.refund_fen):
        raise Conflict("refund_exceeds_paid", "退款金额超过订单实付金额", "Refunds would exceed what the order paid")
    await _release_cancelled(session, scope, order, case, case_lines)
    order = await orders.fresh(order.id)
    assert order is not None
    lines = await line_repo.of_order(order.id)
    if _fully_refunded(order, lines):
        if order.status in states.PAID_STATUSES:
            await states.move_order(session, order, "closed", "refund", actor=actor, note=f"全额退款（售后单 {case.case_no}）",
                                    closed_at=clock.now())
        await inventory_service.release(session, scope, f"order:{order.id}")
    elif any(cl.cancelled_qty for cl in case_lines) and order.status in ("paid", "partially_shipped"):
        from siyu.orders import fulfilment

        await fulfilment.refresh_shipping_status(session, order)
    outbox.publish(session, REFUNDED_TOPIC, {
        "case_id": case.id, "case_no": case.case_no, "order_id": order.id, "tenant_id": scope.id,
        "customer_id": case.customer_id, "kind": case.kind, "refund_fen": case.refund_fen,
        "lines": [{"order_line_id": cl.order_line_id, "sku_id": cl.sku_id, "quantity": cl.quantity,
                   "refund_fen": cl.refund_fen} for cl in case_lines],
    }, tenant_id=scope.id)
    return True


async def _case_for_event(session: AsyncSession, event: outbox.Event) -> tuple[TenantScope, AfterSale] | None:
    p = event.payload
    if p.get("source_type") != SOURCE_TYPE or not str(p.get("source_id", "")).isdigit() or not p.get("tenant_id"):
        return None
    scope = await _scope_of(session, int(p["tenant_id"]))
    case = await _Cases(session, scope.id).fresh(int(p["source_id"]), for_update=True)
    if case is None:
        log.error("a refund names an after-sales case that does not exist", extra={"refund_id": p.get("refund_id")})
        return None
    if case.refund_id != p.get("refund_id"):
        log.warning("a refund outcome of an earlier attempt", extra={"case_id": case.id, "refund_id": p.get("refund_id")})
        return None
    return scope, case


@outbox.on("refund.succeeded")
async def on_refund_succeeded(session: AsyncSession, event: outbox.Event) -> None:
    found = await _case_for_event(session, event)
    if found is None:
        return
    scope, case = found
    if case.status == "refunding":
        await _settle(session, scope, case, actor=GATEWAY_ACTOR)


@outbox.on("refund.failed")
async def on_refund_failed(session: AsyncSession, event: outbox.Event) -> None:
    found = await _case_for_event(session, event)
    if found is None:
        return
    _scope, case = found
    if case.status == "refunding":
        cause = str(event.payload.get("cause") or "")[:60]
        await states.move_case(session, case, "approved", "refund_failed", actor=GATEWAY_ACTOR,
                               note=f"退款失败（{cause}），请重新发起退款" if cause else "退款失败，请重新发起退款")


# -- reads ---------------------------------------------------------------------------------------------------


def staff_actions(case: AfterSale) -> list[str]:
    """Buttons the console shows for a case: approve, reject, receive, retry_refund."""
    out: list[str] = []
    if case.status == "requested":
        out += ["approve", "reject"]
    elif case.status in ("approved", "returning"):
        if case.refund_id is not None:
            out.append("retry_refund")
            if case.kind == "refund_only":
                out.append("reject")
        else:
            if case.kind == "return_refund":
                out.append("receive")
            out.append("reject")
    return out


def shopper_actions(case: AfterSale) -> list[str]:
    """Buttons the storefront shows: submit_return, withdraw."""
    out: list[str] = []
    if case.refund_id is None and case.status in ("requested", "approved", "returning"):
        if case.kind == "return_refund" and case.status == "approved":
            out.append("submit_return")
        out.append("withdraw")
    return out


async def case_detail(session: AsyncSession, scope: TenantScope, case_id: int, *,
                      customer_id: int | None = None) -> CaseDetail:
    """A case with its lines (titles and amounts), timeline, return address and refund status;
    ``customer_id`` limits it to that shopper's cases (another's is a 404)."""
    case = await _case(session, scope, case_id, customer_id=customer_id)
    order = await _order_of(session, scope, case)
    repo = _Cases(session, scope.id)
    order_lines = {ln.id: ln for ln in await _Lines(session, scope.id).of_order(order.id)}
    views = []
    for cl in await repo.lines(case.id):
        ol = order_lines[cl.order_line_id]
        views.append(CaseLineView(cl.id, cl.order_line_id, cl.sku_id, ol.title, ol.spec_text, ol.image, ol.unit_price_fen,
                                  ol.quantity, cl.quantity, cl.cancelled_qty, cl.refund_fen))
    timeline = [TimelineEntry(t.created_at, t.from_status, t.to_status, t.action, t.actor_type, t.actor_name, t.note)
                for t in await repo.timeline(case.id)]
    address = await return_address(session, scope) if case.kind == "return_refund" and case.status in (
        "approved", "returning") else None
    refund_status = None
    if case.refund_id is not None:
        refund_status = (await payments_service.get_refund(session, scope, case.refund_id)).status
    return CaseDetail(case, order, views, timeline, address, refund_status, staff_actions(case), shopper_actions(case))


async def list_cases(session: AsyncSession, scope: TenantScope, query: CaseQuery, offset: int = 0,
                     limit: int = 20) -> tuple[list[CaseRow], int]:
    """The staff queue, newest first."""
    repo = _Cases(session, scope.id)
    rows, total = await repo.search(query, offset, limit)
    lines = await repo.lines_of([c.id for c, _no in rows])
    return [CaseRow(c, no, lines[c.id]) for c, no in rows], total


async def customer_cases(session: AsyncSession, scope: TenantScope, customer_id: int, *, status: str | None = None,
                         offset: int = 0, limit: int = 20) -> tuple[list[CaseRow], int]:
    """A shopper's own cases, newest first."""
    return await list_cases(session, scope, CaseQuery(status=status, customer_id=customer_id), offset, limit)


async def cases_for_order(session: AsyncSession, scope: TenantScope, order_id: int) -> list[AfterSale]:
    return await _Cases(session, scope.id).for_order(order_id)


async def refundable_lines(session: AsyncSession, scope: TenantScope, order: Order) -> Refundable:
    """For the request page: per line, the units that can still be asked for with each kind
    and what they would refund, and whether the order takes a case at all now."""
    ok, zh, en, ends = await _openable(session, scope, order)
    lines = await _Lines(session, scope.id).of_order(order.id)
    busy = await _Cases(session, scope.id).open_on_lines([ln.id for ln in lines])
    out = []
    for ln in lines:
        case = busy.get(ln.id)
        ro = 0 if case is not None or not ok else _available(ln, "refund_only")
        rr = 0 if case is not None or not ok else _available(ln, "return_refund")
        out.append(RefundableLine(
            line=ln, refund_only_qty=ro, refund_only_fen=line_refund_fen(ln.paid_fen, ln.quantity, ln.refund_qty, ro),
            return_refund_qty=rr, return_refund_fen=line_refund_fen(ln.paid_fen, ln.quantity, ln.refund_qty, rr),
            unshipped_qty=max(0, ln.quantity - ln.shipped_qty - ln.cancelled_qty), open_case_id=case.id if case else None,
        ))
    return Refundable(order, ok, zh, en, out, ends)


async def order_for_customer(session: AsyncSession, scope: TenantScope, order_id: int, customer_id: int | None) -> Order:
    """An order of this tenant (and of this shopper when ``customer_id`` is given), else 404."""
    order = await _Orders(session, scope.id).fresh(order_id)
    if order is None or (customer_id is not None and order.customer_id != customer_id):
        raise _order_not_found()
    return order
