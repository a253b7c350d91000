"""The order and after-sales state machines: one transition table each, one way to move.

Every change goes through :func:`move_order` / :func:`move_case`: a conditional
``UPDATE ... WHERE id = :id AND status = :from`` (so two workers, two sweepers or a shopper
and a sweeper racing can never both apply it) plus an ``order_transitions`` row with the
actor and time. An illegal transition is a 409 with code ``order_illegal_transition`` /
``after_sale_illegal_transition``; losing a race returns ``False`` and writes nothing.

Orders::

    pending_payment ──pay──▶ paid ──ship (some)──▶ partially_shipped ──ship (rest)──▶ shipped
         │                   │  └──ship (all)──────────────────────────────────────────▶ shipped
         │                   └──(virtual goods only)──▶ completed
         └──cancel (shopper / staff / unpaid timeout)──▶ cancelled
    shipped ──confirm (shopper, or automatically after N days)──▶ delivered ──▶ completed
    paid / partially_shipped / shipped / delivered / completed ──full refund──▶ closed

``delivered`` means the goods arrived (carrier or shopper says so); ``completed`` ends the
after-sales-free part of the lifecycle (the shopper confirmed receipt, or the auto-confirm
deadline passed). A shopper's "确认收货" moves a shipped order through delivered to
completed in one request.

After-sales cases::

    requested ──approve──▶ approved ──(refund only)────────────────────▶ refunding ──▶ refunded
        │                     └──(return)──shopper ships back──▶ returning ──receive──▶ refunding
        ├──reject──▶ rejected
        └──withdraw (shopper)──▶ withdrawn
    approved / returning ──withdraw (shopper) or reject (staff)──▶ withdrawn / rejected
    refunding ──refund failed──▶ approved (staff may retry)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import clock
from siyu.kit.context import Actor, current_actor
from siyu.kit.errors import Conflict
from siyu.orders.models import AfterSale, Order, OrderTransition

ORDER_STATUSES = ("pending_payment", "paid", "partially_shipped", "shipped", "delivered", "completed", "cancelled",
                  "closed")
#: from → allowed targets.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending_payment": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"partially_shipped", "shipped", "completed", "closed"}),
    "partially_shipped": frozenset({"shipped", "closed"}),
    "shipped": frozenset({"delivered", "completed", "closed"}),
    "delivered": frozenset({"completed", "closed"}),
    "completed": frozenset({"closed"}),
    "cancelled": frozenset(),
    "closed": frozenset(),
}
ORDER_STATUS_ZH = {
    "pending_payment": "待付款", "paid": "待发货", "partially_shipped": "部分发货", "shipped": "已发货",
    "delivered": "已送达", "completed": "已完成", "cancelled": "已取消", "closed": "已关闭",
}
ORDER_STATUS_EN = {
    "pending_payment": "Awaiting payment", "paid": "To ship", "partially_shipped": "Partly shipped", "shipped": "Shipped",
    "delivered": "Delivered", "completed": "Completed", "cancelled": "Cancelled", "closed": "Closed",
}
#: Statuses in which money was taken and the order is still live (after-sales may open).
PAID_STATUSES = frozenset({"paid", "partially_shipped", "shipped", "delivered", "completed"})

CASE_STATUSES = ("requested", "approved", "returning", "refunding", "refunded", "rejected", "withdrawn")
CASE_TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"approved", "refunding", "rejected", "withdrawn"}),
    "approved": frozenset({"returning", "refunding", "rejected", "withdrawn"}),
    "returning": frozenset({"refunding", "rejected", "withdrawn"}),
    "refunding": frozenset({"refunded", "approved"}),
    "refunded": frozenset(),
    "rejected": frozenset(),
    "withdrawn": frozenset(),
}
CASE_STATUS_ZH = {
    "requested": "待审核", "approved": "已同意", "returning": "退货中", "refunding": "退款中", "refunded": "已退款",
    "rejected": "已拒绝", "withdrawn": "已撤销",
}
CASE_STATUS_EN = {
    "requested": "Awaiting review", "approved": "Approved", "returning": "Return in transit", "refunding": "Refunding",
    "refunded": "Refunded", "rejected": "Rejected", "withdrawn": "Withdrawn",
}
#: Cases that still hold units and fen of their lines.
OPEN_CASE_STATUSES = frozenset({"requested", "approved", "returning", "refunding"})


def ensure_order_transition(from_status: str, to_status: str) -> None:
    if to_status not in ORDER_TRANSITIONS.get(from_status, frozenset()):
        raise Conflict(
            "order_illegal_transition",
            f"订单状态为「{ORDER_STATUS_ZH.get(from_status, from_status)}」，不能变为「{ORDER_STATUS_ZH.get(to_status, to_status)}」",
            f"An order that is {ORDER_STATUS_EN.get(from_status, from_status).lower()} cannot become "
            f"{ORDER_STATUS_EN.get(to_status, to_status).lower()}",
            extra={"from_status": from_status, "to_status": to_status},
        )


def ensure_case_transition(from_status: str, to_status: str) -> None:
    if to_status not in CASE_TRANSITIONS.get(from_status, frozenset()):
        raise Conflict(
            "after_sale_illegal_transition",
            f"售后单状态为「{CASE_STATUS_ZH.get(from_status, from_status)}」，不能变为「{CASE_STATUS_ZH.get(to_status, to_status)}」",
            f"An after-sales case that is {CASE_STATUS_EN.get(from_status, from_status).lower()} cannot become "
            f"{CASE_STATUS_EN.get(to_status, to_status).lower()}",
            extra={"from_status": from_status, "to_status": to_status},
        )


def _log(session: AsyncSession, order_id: int, tenant_id: int, from_status: str, to_status: str, action: str,
         actor: Actor | None, note: str | None, after_sale_id: int | None = None) -> None:
    who = actor or current_actor()
    session.add(OrderTransition(
        tenant_id=tenant_id, order_id=order_id, after_sale_id=after_sale_id, from_status=from_status,
        to_status=to_status, action=action[:30], actor_type=who.kind[:16], actor_id=who.id,
        actor_name=(who.name or "")[:100] or None, note=(note or "")[:200] or None,
    ))


async def _move(session: AsyncSession, model: type[Order] | type[AfterSale], row: Order | AfterSale, to_status: str,
                values: dict[str, Any]) -> bool:
    """The conditional update shared by both machines; refreshes ``row`` either way."""
    result = await session.execute(
        update(model)
        .where(model.id == row.id, model.tenant_id == row.tenant_id, model.status == row.status)
        .values(status=to_status, updated_at=clock.now(), **values)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(row)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def move_order(session: AsyncSession, order: Order, to_status: str, action: str, *, actor: Actor | None = None,
                     note: str | None = None, **values: Any) -> bool:
    """Move ``order`` to ``to_status`` if it is still in the status we read.

    Raises 409 for a transition the table forbids; returns ``False`` (writing nothing) when
    another transaction moved the order first. ``values`` are extra columns set in the same
    statement (``paid_at=...``). The ORM object is refreshed either way.
    """
    from_status = order.status
    ensure_order_transition(from_status, to_status)
    if not await _move(session, Order, order, to_status, values):
        return False
    _log(session, order.id, order.tenant_id, from_status, to_status, action, actor, note)
    return True


async def move_case(session: AsyncSession, case: AfterSale, to_status: str, action: str, *, actor: Actor | None = None,
                    note: str | None = None, **values: Any) -> bool:
    """:func:`move_order` for an after-sales case; the transition row names the case and its order."""
    from_status = case.status
    ensure_case_transition(from_status, to_status)
    if not await _move(session, AfterSale, case, to_status, values):
        return False
    _log(session, case.order_id, case.tenant_id, from_status, to_status, action, actor, note, after_sale_id=case.id)
    return True


def log_order_event(session: AsyncSession, order: Order, action: str, *, actor: Actor | None = None,
                    note: str | None = None) -> None:
    """A timeline entry that is not a status change (a partial shipment, a seller note...)."""
    _log(session, order.id, order.tenant_id, order.status, order.status, action, actor, note)


def log_creation(session: AsyncSession, order: Order, *, actor: Actor | None = None, note: str | None = None) -> None:
    """The first timeline entry of an order: ``new → pending_payment``, action ``place``.

    Creation is an insert, not a move, so it has no conditional update; the row exists
    exactly when the order does (same transaction)."""
    _log(session, order.id, order.tenant_id, "new", order.status, "place", actor, note)


def log_case_creation(session: AsyncSession, case: AfterSale, *, actor: Actor | None = None,
                      note: str | None = None) -> None:
    """The first timeline entry of an after-sales case: ``new → requested``, action ``open``.

    Like :func:`log_creation`, an insert in the same transaction as the case row."""
    _log(session, case.order_id, case.tenant_id, "new", case.status, "open", actor, note, after_sale_id=case.id)
