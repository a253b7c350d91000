"""Helpers of the after-sales tests: cases through the service, each call its own unit of work
(as separate requests would be), and reads of what the database holds afterwards.

Orders are placed with the shared ``order_shop`` fixture and paid through the sandbox cashier
(:mod:`tests.orders._lifecycle`); refunds travel the real way: the payments module submits
them from the outbox to the sandbox gateway, which notifies asynchronously over HTTP (routed
into the app), and ``refund.succeeded`` reaches the after-sales handler — all by draining
the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select, update

from siyu.kit.context import Actor, actor_var
from siyu.orders import aftersales
from siyu.orders.models import AfterSale, AfterSaleLine, Order, OrderLine, OrderTransition
from tests.conftest import drain_outbox
from tests.orders import _lifecycle as lc
from tests.orders.conftest import Buyer, OrderShop

STORE = "/after-sales"
ADMIN = "/api/admin/v1/after-sales"


def as_customer(shop: OrderShop, buyer: Buyer | None = None) -> Any:
    who = buyer or shop.buyer
    return actor_var.set(Actor("customer", who.customer_id, f"customer:{who.customer_id}", shop.scope.id))


def as_staff(shop: OrderShop) -> Any:
    return actor_var.set(Actor("staff", None, "测试客服", shop.scope.id))


async def open_case(shop: OrderShop, order_id: int, lines: Sequence[tuple[int, int]], *, kind: str = "refund_only",
                    reason: str | None = None, buyer: Buyer | None = None, staff: bool = False,
                    description: str | None = None, images: Sequence[str] = ()) -> AfterSale:
    """A case opened by the shopper (``buyer`` or the shop's buyer) or, with ``staff=True``, by staff."""
    who = buyer or shop.buyer
    token = as_staff(shop) if staff else as_customer(shop, who)
    try:
        async with shop.runtime.db.uow() as s:
            case = await aftersales.open_case(
                s, shop.scope, order_id, customer_id=None if staff else who.customer_id, kind=kind, lines=list(lines),
                reason=reason or aftersales.REASONS[kind][0], description=description, images=list(images))
            s.expunge(case)
            return case
    finally:
        actor_var.reset(token)


async def act(shop: OrderShop, action: str, case_id: int, *, buyer: Buyer | None = None, **kw: Any) -> AfterSale:
    """Run one workflow step: approve / reject / receive_return / retry_refund as staff;
    withdraw / submit_return as the shopper."""
    fn = getattr(aftersales, action)
    shopper = action in ("withdraw", "submit_return")
    who = buyer or shop.buyer
    token = as_customer(shop, who) if shopper else as_staff(shop)
    try:
        async with shop.runtime.db.uow() as s:
            if shopper:
                case = await fn(s, shop.scope, case_id, customer_id=who.customer_id, **kw)
            else:
                case = await fn(s, shop.scope, case_id, **kw)
            s.expunge(case)
            return case  # type: ignore[no-any-return]
    finally:
        actor_var.reset(token)


async def settle(shop: OrderShop, *, seconds: float = 20.0) -> None:
    """Let refunds travel: submit to the sandbox, its notification back, the handlers.

    A step that failed transiently (a busy database on a loaded machine) is retried by the
    outbox or the sandbox after a delay; rather than wait that long, the pending events of
    this shop are made due again until no refund of the shop is pending."""
    from siyu.kit import clock
    from siyu.kit.outbox import OutboxEvent
    from siyu.payments.models import Refund

    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        await drain_outbox(shop.runtime)
        async with shop.runtime.db.uow() as s:
            pending = (await s.execute(select(Refund.id).where(Refund.tenant_id == shop.scope.id,
                                                               Refund.status == "pending"))).scalars().all()
            if not pending:
                return
            waiting = (await s.execute(
                update(OutboxEvent)
                .where(OutboxEvent.status == "pending",
                       or_(OutboxEvent.tenant_id == shop.scope.id, OutboxEvent.tenant_id.is_(None)))
                .values(available_at=clock.now(), locked_by=None, locked_until=None)
                .returning(OutboxEvent.topic, OutboxEvent.last_error)
            )).all()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"refunds {pending} still pending; outbox: {waiting}")
        await asyncio.sleep(0.05)


async def case(shop: OrderShop, case_id: int) -> AfterSale:
    async with shop.runtime.db.uow(readonly=True) as s:
        row = (await s.execute(select(AfterSale).where(AfterSale.id == case_id))).scalar_one()
        s.expunge(row)
        return row


async def case_lines(shop: OrderShop, case_id: int) -> list[AfterSaleLine]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(AfterSaleLine).where(AfterSaleLine.after_sale_id == case_id)
                                     .order_by(AfterSaleLine.order_line_id))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def case_timeline(shop: OrderShop, case_id: int) -> list[tuple[str, str, str]]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OrderTransition.from_status, OrderTransition.to_status, OrderTransition.action)
                                .where(OrderTransition.after_sale_id == case_id).order_by(OrderTransition.id))).all()
    return [(a, b, c) for a, b, c in rows]


async def order_lines(shop: OrderShop, order_id: int) -> list[OrderLine]:
    return await lc.lines(shop.runtime, order_id)


async def order(shop: OrderShop, order_id: int) -> Order:
    return await shop.order(order_id)


def line_counters(line: OrderLine) -> tuple[int, int, int, int, int, int]:
    """(cancelled_qty, refund_qty, refund_fen, refunded_qty, refunded_fen, shipped_qty)."""
    return (line.cancelled_qty, line.refund_qty, line.refund_fen, line.refunded_qty, line.refunded_fen, line.shipped_qty)
