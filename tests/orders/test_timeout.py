"""The unpaid-order timeout: overdue orders are cancelled once, their stock goes back once,
even with two sweepers at the same moment; money that still arrives goes back too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from siyu.kit import clock
from siyu.kit.errors import DomainError
from siyu.kit.runtime import Runtime
from siyu.orders import service, tasks
from siyu.payments import service as payments_service
from tests.conftest import drain_outbox
from tests.orders import _lifecycle as lc
from tests.orders.conftest import OrderShop
from tests.orders.test_payment_events import gateway_took_money


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _notify(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


async def sweep(runtime: Runtime) -> int:
    """One sweeper's pass, every batch its own unit of work (like the job)."""
    total = 0
    while True:
        async with runtime.db.uow() as s:
            n = await service.cancel_overdue(s, limit=500)
        total += n
        if n < 500:
            return total


async def test_two_sweepers_cancel_an_overdue_order_once_and_release_its_stock_once(order_shop: OrderShop) -> None:
    shop = order_shop
    a, b = shop.skus
    before = (await lc.level(shop, a), await lc.level(shop, b))
    order = await shop.place([(a, 3), (b, 2)])
    start = await lc.start_payment(shop, order.id)  # a payment is open: it must be closed too
    assert await lc.level(shop, a) == (before[0][0], before[0][1] + 3)
    assert order.pay_deadline is not None
    clock.travel(order.pay_deadline - clock.now() + timedelta(seconds=1))

    results = await asyncio.gather(sweep(shop.runtime), sweep(shop.runtime))
    assert sum(results) >= 1

    cancelled = await shop.order(order.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    assert cancelled.cancel_reason == service.TIMEOUT_REASON
    assert [t for t in await lc.timeline(shop.runtime, order.id) if t[1] == "cancelled"] == [
        ("pending_payment", "cancelled", "cancel")]
    moves = await lc.movements(shop, order.id)
    assert sorted(m for m in moves if m[0] == "release") == [("release", 0, -3), ("release", 0, -2)]
    assert len([m for m in moves if m[0] == "release"]) == 2, "one release movement per reserved line, once"
    assert (await lc.level(shop, a), await lc.level(shop, b)) == before
    assert (await lc.payment(shop.runtime, start.payment.id)).status == "closed"
    assert [p.status for p in await lc.parts(shop.runtime, order.id)] == ["cancelled"]
    [ev] = await lc.events(shop.runtime, shop.scope.id, "order.cancelled", order_id=order.id)
    assert ev["by"] == "system"

    assert await sweep(shop.runtime) == 0 or (await shop.order(order.id)).status == "cancelled"
    assert len(await lc.movements(shop, order.id)) == len(moves), "a later pass posts nothing"


async def test_an_order_within_its_deadline_is_left_alone(order_shop: OrderShop) -> None:
    order = await order_shop.place()
    assert order.pay_deadline is not None
    clock.travel(order.pay_deadline - clock.now() - timedelta(seconds=5))
    await sweep(order_shop.runtime)
    assert (await order_shop.order(order.id)).status == "pending_payment"


async def test_the_job_cancels_overdue_orders(order_shop: OrderShop) -> None:
    order = await order_shop.place()
    assert order.pay_deadline is not None
    clock.travel(order.pay_deadline - clock.now() + timedelta(minutes=1))
    assert await tasks.cancel_unpaid(order_shop.runtime) >= 1
    assert (await order_shop.order(order.id)).status == "cancelled"


async def test_money_taken_before_the_timeout_wins_over_the_sweeper(order_shop: OrderShop,
                                                                    runtime: Runtime) -> None:
    """The payer paid, but the notification is still on its way when the deadline passes: the
    sweeper asks the gateway while closing, learns of the money, and leaves the order to be paid."""
    shop = order_shop
    order = await shop.place()
    start = await lc.start_payment(shop, order.id)
    lost: list[httpx.Request] = []
    runtime.extras["http_client"] = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: (lost.append(r), httpx.Response(503))[1]), base_url="http://testserver")
    await lc.sandbox_pay(runtime, start.payment.out_trade_no)
    await drain_outbox(runtime)
    assert lost and (await shop.order(order.id)).status == "pending_payment"

    assert order.pay_deadline is not None
    clock.travel(order.pay_deadline - clock.now() + timedelta(seconds=1))
    await sweep(runtime)
    assert (await lc.payment(runtime, start.payment.id)).status == "succeeded"
    await drain_outbox(runtime)
    paid = await shop.order(order.id)
    assert paid.status == "paid" and paid.payment_id == start.payment.id
    assert await lc.refunds_of(runtime, start.payment.id) == []


async def test_a_payment_arriving_after_the_timeout_is_refunded(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await shop.place([(shop.skus[0], 2)])
    start = await lc.start_payment(shop, order.id)
    assert order.pay_deadline is not None
    clock.travel(order.pay_deadline - clock.now() + timedelta(seconds=1))
    await sweep(shop.runtime)
    assert (await shop.order(order.id)).status == "cancelled"

    await gateway_took_money(shop.runtime, start.payment.out_trade_no)
    await drain_outbox(shop.runtime)
    p = await lc.payment(shop.runtime, start.payment.id)
    assert p.status == "succeeded" and p.refunded_fen == p.amount_fen == order.payable_fen
    [refund] = await lc.refunds_of(shop.runtime, p.id)
    assert refund.out_refund_no == f"LP{p.out_trade_no}" and refund.status == "succeeded"
    assert (await shop.order(order.id)).status == "cancelled"


async def test_one_failing_order_does_not_stop_the_batch(order_shop: OrderShop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = order_shop
    stuck = await shop.place()
    fine = await shop.place()
    await lc.start_payment(shop, stuck.id)
    real = payments_service.close_payment

    async def flaky(session: Any, scope: Any, payment_id: int, **kw: Any) -> Any:
        p = await payments_service.get_payment(session, scope, payment_id)
        if p.source_id == str(stuck.id):
            raise DomainError("payment_gateway_unavailable", "支付渠道暂时不可用", "The gateway is unavailable", status=502)
        return await real(session, scope, payment_id, **kw)

    monkeypatch.setattr(payments_service, "close_payment", flaky)
    assert fine.pay_deadline is not None
    clock.travel(fine.pay_deadline - clock.now() + timedelta(seconds=1))
    await sweep(shop.runtime)
    assert (await shop.order(fine.id)).status == "cancelled"
    assert (await shop.order(stuck.id)).status == "pending_payment"
    assert await lc.movements(shop, stuck.id) == [("reserve", 0, 1)], "nothing half-done for the failed one"

    monkeypatch.setattr(payments_service, "close_payment", real)
    await sweep(shop.runtime)
    assert (await shop.order(stuck.id)).status == "cancelled"
