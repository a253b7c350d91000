"""The query fallback: payments and refunds whose notification never came reach their final
state by asking the gateway, with the same idempotent transitions; unpaid payments are
closed when their time is up, at the gateway first."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from siyu.kit import clock
from siyu.kit.jobs import registered_sweepers, run_sweeper
from siyu.kit.runtime import Runtime
from siyu.payments import tasks
from siyu.payments.gateways import sandbox_gateway
from tests.conftest import TenantInfo, drain_outbox
from tests.payments._helpers import (
    FakeWeChat,
    do_refund,
    events,
    new_payment,
    paid_payment,
    payment,
    refund_row,
    sandbox_choose,
    transitions,
)


async def test_a_paid_payment_whose_notification_never_came_is_settled_by_query(
        runtime: Runtime, shop: TenantInfo, drop_notifications: list[httpx.Request]) -> None:
    start = await new_payment(runtime, shop, 4321)
    await sandbox_choose(runtime, start.payment.out_trade_no)
    await drain_outbox(runtime)
    assert any(start.payment.out_trade_no.encode() in r.content for r in drop_notifications), "the sandbox tried"
    assert (await payment(runtime, start.payment.id)).status == "pending"

    await tasks.reconcile_payments(runtime)  # too early: notifications get their chance first
    assert (await payment(runtime, start.payment.id)).last_queried_at is None

    clock.travel(tasks.QUERY_AFTER + timedelta(seconds=1))
    await tasks.reconcile_payments(runtime)
    p = await payment(runtime, start.payment.id)
    assert p.status == "succeeded" and p.transaction_id and p.transaction_id.startswith("SBXT")
    assert (await transitions(runtime, p.id))[-1] == ("pending", "succeeded", "query")
    assert len(await events(runtime, shop.id, "payment.succeeded", payment_id=p.id)) == 1

    clock.travel(timedelta(hours=8))
    await tasks.reconcile_payments(runtime)  # a settled payment is not asked about again
    assert (await payment(runtime, p.id)).last_queried_at is None
    assert len(await events(runtime, shop.id, "payment.succeeded", payment_id=p.id)) == 1


async def test_the_late_notification_after_a_query_is_a_duplicate(runtime: Runtime, shop: TenantInfo,
                                                                   notify_client: httpx.AsyncClient) -> None:
    lost = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    runtime.extras["http_client"] = lost
    start = await new_payment(runtime, shop, 1500)
    await sandbox_choose(runtime, start.payment.out_trade_no)
    await drain_outbox(runtime)
    clock.travel(tasks.QUERY_AFTER + timedelta(seconds=1))
    await tasks.reconcile_payments(runtime)
    assert (await payment(runtime, start.payment.id)).status == "succeeded"

    runtime.extras["http_client"] = notify_client  # the merchant's server is reachable again
    clock.travel(timedelta(minutes=1))  # past the first retry delays
    await drain_outbox(runtime)
    from tests.payments._helpers import outcomes

    assert await outcomes(runtime, start.payment.out_trade_no) == {"duplicate": 1}
    assert len(await events(runtime, shop.id, "payment.succeeded", payment_id=start.payment.id)) == 1


async def test_an_unpaid_payment_is_closed_when_its_time_is_up(runtime: Runtime, shop: TenantInfo,
                                                               client: httpx.AsyncClient) -> None:
    start = await new_payment(runtime, shop, 250, expires_at=clock.now() + timedelta(minutes=15))
    clock.travel(timedelta(minutes=6))
    await tasks.reconcile_payments(runtime)
    p = await payment(runtime, start.payment.id)
    assert p.status == "pending" and p.last_queried_at is not None, "asked, still unpaid, remembered"

    clock.travel(timedelta(minutes=10))
    await tasks.reconcile_payments(runtime)
    p = await payment(runtime, start.payment.id)
    assert p.status == "closed"
    assert (await transitions(runtime, p.id))[-1] == ("pending", "closed", "timeout")
    [ev] = await events(runtime, shop.id, "payment.closed", payment_id=p.id)
    assert ev["cause"] == "timeout"
    async with runtime.db.uow(readonly=True) as s:
        assert (await sandbox_gateway(runtime).query(s, p.out_trade_no)).state == "CLOSED"
    page = await client.get(start.pay_url or "")
    assert "确认支付" not in page.text and "已关闭" in page.text


async def test_an_expired_payment_paid_at_the_last_moment_is_not_closed(
        runtime: Runtime, shop: TenantInfo, drop_notifications: list[httpx.Request]) -> None:
    start = await new_payment(runtime, shop, 250, expires_at=clock.now() + timedelta(minutes=2))
    await sandbox_choose(runtime, start.payment.out_trade_no)
    clock.travel(timedelta(minutes=3))
    await tasks.reconcile_payments(runtime)
    assert (await payment(runtime, start.payment.id)).status == "succeeded"
    assert await events(runtime, shop.id, "payment.closed", payment_id=start.payment.id) == []


async def test_two_sweepers_at_once_move_a_payment_once(runtime: Runtime, shop: TenantInfo,
                                                        drop_notifications: list[httpx.Request]) -> None:
    starts = [await new_payment(runtime, shop, 100 + i) for i in range(5)]
    for s in starts:
        await sandbox_choose(runtime, s.payment.out_trade_no)
    clock.travel(tasks.QUERY_AFTER + timedelta(seconds=1))
    await asyncio.gather(tasks.reconcile_payments(runtime), tasks.reconcile_payments(runtime))
    for s in starts:
        assert (await payment(runtime, s.payment.id)).status == "succeeded"
        assert len(await events(runtime, shop.id, "payment.succeeded", payment_id=s.payment.id)) == 1
        assert [t for t in await transitions(runtime, s.payment.id) if t[1] == "succeeded"] == [
            ("pending", "succeeded", "query")]


async def test_a_refund_whose_notification_never_came_is_settled_by_query(runtime: Runtime, shop: TenantInfo) -> None:
    p = await paid_payment(runtime, shop, 900)
    runtime.extras["http_client"] = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    r = await do_refund(runtime, shop, p.id, 400)
    await drain_outbox(runtime)
    assert (await refund_row(runtime, r.id)).status == "pending"
    clock.travel(tasks.REFUND_QUERY_AFTER + timedelta(seconds=1))
    assert await tasks.reconcile_refunds(runtime) >= 1
    assert (await refund_row(runtime, r.id)).status == "succeeded"
    assert len(await events(runtime, shop.id, "refund.succeeded", refund_id=r.id)) == 1
    assert (await payment(runtime, p.id)).refunded_fen == 400


async def test_a_refund_never_submitted_is_submitted_by_the_sweeper(runtime: Runtime, shop: TenantInfo) -> None:
    """The submit event was lost (say, dead after a long outage): the refund sweeper asks the
    gateway, which knows nothing, and submits it again."""
    from sqlalchemy import update

    from siyu.kit.outbox import OutboxEvent

    p = await paid_payment(runtime, shop, 900)
    r = await do_refund(runtime, shop, p.id, 900)
    async with runtime.db.uow() as s:
        await s.execute(update(OutboxEvent).where(OutboxEvent.topic == "payments.refund.submit",
                                                  OutboxEvent.status == "pending").values(status="dead"))
    clock.travel(tasks.REFUND_QUERY_AFTER + timedelta(seconds=1))
    await tasks.reconcile_refunds(runtime)
    row = await refund_row(runtime, r.id)
    assert row.gateway_refund_id, "submitted"
    await drain_outbox(runtime)  # the sandbox's refund notification
    assert (await refund_row(runtime, r.id)).status == "succeeded"


async def test_wechat_query_fallback_and_timeout_close(runtime: Runtime, wechat_shop: TenantInfo,
                                                       fake_wechat: FakeWeChat) -> None:
    paid = await new_payment(runtime, wechat_shop, 700, channel="native")
    unpaid = await new_payment(runtime, wechat_shop, 800, channel="native", expires_at=clock.now() + timedelta(minutes=10))
    fake_wechat.pay(paid.payment.out_trade_no)
    clock.travel(timedelta(minutes=11))
    await tasks.reconcile_payments(runtime)
    p = await payment(runtime, paid.payment.id)
    assert p.status == "succeeded" and p.transaction_id == fake_wechat.orders[p.out_trade_no]["transaction_id"]
    u = await payment(runtime, unpaid.payment.id)
    assert u.status == "closed"
    assert fake_wechat.orders[u.out_trade_no]["trade_state"] == "CLOSED"
    closes = [req for req in fake_wechat.requests if req.url.path.endswith("/close")]
    assert [c.url.path.split("/")[5] for c in closes] == [u.out_trade_no]


async def test_a_gateway_outage_leaves_payments_pending_and_remembered(runtime: Runtime, wechat_shop: TenantInfo,
                                                                      fake_wechat: FakeWeChat) -> None:
    start = await new_payment(runtime, wechat_shop, 700, channel="native")
    fake_wechat.fail_with = 503
    clock.travel(tasks.QUERY_AFTER + timedelta(seconds=1))
    await tasks.reconcile_payments(runtime)
    p = await payment(runtime, start.payment.id)
    assert p.status == "pending" and p.last_queried_at is not None


def test_the_sweepers_are_registered() -> None:
    names = {sw.name for sw in registered_sweepers()}
    assert {"payments.reconcile_payments", "payments.reconcile_refunds"} <= names


async def test_run_through_the_job_runner(runtime: Runtime, shop: TenantInfo, drop_notifications: list[httpx.Request]) -> None:
    start = await new_payment(runtime, shop, 100)
    await sandbox_choose(runtime, start.payment.out_trade_no)
    clock.travel(tasks.QUERY_AFTER + timedelta(seconds=1))
    [sw] = [s for s in registered_sweepers() if s.name == "payments.reconcile_payments"]
    assert await run_sweeper(runtime, sw) is not None
    assert (await payment(runtime, start.payment.id)).status == "succeeded"
