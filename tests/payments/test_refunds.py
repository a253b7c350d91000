"""Refunds: never more than what was paid (also under concurrent requests), idempotent on
``out_refund_no``, submitted after commit, settled by the gateway's asynchronous
notification, recorded once however often it is notified, and released when refused."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from siyu.kit.errors import Conflict, DomainError, ValidationFailed
from siyu.kit.runtime import Runtime
from siyu.payments.gateways import sandbox as sandbox_gw
from tests.conftest import TenantInfo, drain_outbox, unique
from tests.payments._helpers import (
    do_refund,
    events,
    new_payment,
    outcomes,
    paid_payment,
    payment,
    post_notification,
    refund_row,
    sandbox_deliveries,
    sandbox_headers,
)


async def test_partial_refunds_add_up_to_at_most_the_paid_amount(runtime: Runtime, shop: TenantInfo) -> None:
    p = await paid_payment(runtime, shop, 1000)
    refunds = [await do_refund(runtime, shop, p.id, 300) for _ in range(3)]
    assert all(r.status == "pending" for r in refunds)
    assert (await payment(runtime, p.id)).refunded_fen == 900, "pending refunds hold their amount"

    with pytest.raises(Conflict) as exc:
        await do_refund(runtime, shop, p.id, 200)
    assert exc.value.code == "refund_exceeds_paid" and exc.value.extra["refundable_fen"] == 100

    await drain_outbox(runtime)  # submitted to the gateway, which notifies asynchronously
    for r in refunds:
        done = await refund_row(runtime, r.id)
        assert done.status == "succeeded" and done.gateway_refund_id and done.succeeded_at
    assert (await payment(runtime, p.id)).refunded_fen == 900
    assert (await payment(runtime, p.id)).status == "succeeded", "a refunded payment stays succeeded"
    got = await events(runtime, shop.id, "refund.succeeded", payment_id=p.id)
    assert sorted(e["refund_id"] for e in got) == sorted(r.id for r in refunds)
    assert {(e["amount_fen"], e["source_type"], e["payment_source_type"]) for e in got} == {(300, "aftersale", "testorder")}

    last = await do_refund(runtime, shop, p.id, 100)
    await drain_outbox(runtime)
    assert (await refund_row(runtime, last.id)).status == "succeeded"
    assert (await payment(runtime, p.id)).refunded_fen == 1000
    with pytest.raises(Conflict):
        await do_refund(runtime, shop, p.id, 1)


async def test_concurrent_refund_requests_never_exceed_the_paid_amount(runtime: Runtime, shop: TenantInfo) -> None:
    p = await paid_payment(runtime, shop, 1000)

    async def one(i: int) -> str:
        try:
            await do_refund(runtime, shop, p.id, 130, out_refund_no=unique(f"C{i}-"))
            return "ok"
        except Conflict as exc:
            return exc.code

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results.count("ok") == 7, results  # 7 × 130 = 910; an 8th would be 1040
    assert set(results) == {"ok", "refund_exceeds_paid"}
    assert (await payment(runtime, p.id)).refunded_fen == 910
    await drain_outbox(runtime)
    after = await payment(runtime, p.id)
    assert after.refunded_fen == 910
    assert len(await events(runtime, shop.id, "refund.succeeded", payment_id=p.id)) == 7


async def test_a_refund_notification_sent_twice_is_recorded_once(runtime: Runtime, shop: TenantInfo,
                                                                 client: httpx.AsyncClient) -> None:
    p = await paid_payment(runtime, shop, 800)
    r = await do_refund(runtime, shop, p.id, 500)
    await drain_outbox(runtime)  # submit → the sandbox queues its notification → delivered
    [body] = await sandbox_deliveries(runtime, r.out_refund_no)
    assert (await refund_row(runtime, r.id)).status == "succeeded"
    for _ in range(2):
        resp = await post_notification(client, "sandbox", body, sandbox_headers(runtime, body))
        assert resp.status_code == 204
    await drain_outbox(runtime)
    assert await outcomes(runtime, r.out_refund_no) == {"processed": 1, "duplicate": 2}
    assert len(await events(runtime, shop.id, "refund.succeeded", refund_id=r.id)) == 1
    assert (await payment(runtime, p.id)).refunded_fen == 500


async def test_a_tampered_refund_notification_is_refused(runtime: Runtime, shop: TenantInfo,
                                                         client: httpx.AsyncClient) -> None:
    paid = await paid_payment(runtime, shop, 800)
    # From here the sandbox's notifications get lost, so the refund waits for ours.
    runtime.extras["http_client"] = httpx.AsyncClient(transport=httpx.MockTransport(lambda req: httpx.Response(503)))
    r = await do_refund(runtime, shop, paid.id, 300)
    await drain_outbox(runtime)
    [body] = await sandbox_deliveries(runtime, r.out_refund_no)
    assert (await refund_row(runtime, r.id)).status == "pending"
    headers = sandbox_headers(runtime, body)
    forged = body.replace(b'"refund":300', b'"refund":800')
    resp = await post_notification(client, "sandbox", forged, headers)
    assert resp.status_code == 401
    wrong = body.replace(b'"refund":300', b'"refund":299')
    resp = await post_notification(client, "sandbox", wrong, sandbox_headers(runtime, wrong))
    assert resp.status_code == 400 and resp.json()["code"] == "notification_wrong_amount"
    assert (await refund_row(runtime, r.id)).status == "pending"
    resp = await post_notification(client, "sandbox", body, sandbox_headers(runtime, body))
    assert resp.status_code == 204
    assert (await refund_row(runtime, r.id)).status == "succeeded"


async def test_the_same_out_refund_no_is_the_same_refund(runtime: Runtime, shop: TenantInfo) -> None:
    from siyu.payments import service
    from tests.payments._helpers import scope

    p = await paid_payment(runtime, shop, 1000)
    key = unique("AS-")
    async with runtime.db.uow() as s:
        a = await service.refund(s, scope(shop), payment_id=p.id, amount_fen=400, out_refund_no=key, reason="破损",
                                 source_type="aftersale", source_id="as-1")
    async with runtime.db.uow() as s:
        b = await service.refund(s, scope(shop), payment_id=p.id, amount_fen=400, out_refund_no=key, reason="破损",
                                 source_type="aftersale", source_id="as-1")
    assert a.id == b.id
    assert (await payment(runtime, p.id)).refunded_fen == 400
    with pytest.raises(Conflict) as exc:
        async with runtime.db.uow() as s:
            await service.refund(s, scope(shop), payment_id=p.id, amount_fen=300, out_refund_no=key, reason=None,
                                 source_type="aftersale", source_id="as-1")
    assert exc.value.code == "refund_no_conflict"
    await drain_outbox(runtime)
    assert len(await events(runtime, shop.id, "refund.succeeded", refund_id=a.id)) == 1


async def test_a_refused_refund_releases_its_amount(runtime: Runtime, shop: TenantInfo) -> None:
    p = await paid_payment(runtime, shop, 1000)
    r = await do_refund(runtime, shop, p.id, 1000, reason=f"测试 {sandbox_gw.FAIL_MARKER}")
    assert (await payment(runtime, p.id)).refunded_fen == 1000
    await drain_outbox(runtime)
    assert (await refund_row(runtime, r.id)).status == "failed"
    assert (await payment(runtime, p.id)).refunded_fen == 0
    [ev] = await events(runtime, shop.id, "refund.failed", refund_id=r.id)
    assert ev["amount_fen"] == 1000 and ev["payment_id"] == p.id
    again = await do_refund(runtime, shop, p.id, 1000)
    await drain_outbox(runtime)
    assert (await refund_row(runtime, again.id)).status == "succeeded"
    assert (await payment(runtime, p.id)).refunded_fen == 1000


async def test_only_a_succeeded_payment_can_be_refunded(runtime: Runtime, shop: TenantInfo, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    start = await new_payment(runtime, shop, 500)
    with pytest.raises(Conflict) as exc:
        await do_refund(runtime, shop, start.payment.id, 100)
    assert exc.value.code == "payment_not_refundable"
    p = await paid_payment(runtime, shop, 500)
    for amount in (0, -1, 501):
        with pytest.raises((ValidationFailed, Conflict)):
            await do_refund(runtime, shop, p.id, amount)
    with pytest.raises(ValidationFailed):
        await do_refund(runtime, shop, p.id, 100, out_refund_no="bad no!")
    other = await tenant_factory()
    with pytest.raises(DomainError) as nf:
        await do_refund(runtime, other, p.id, 100)
    assert nf.value.status == 404, "another tenant's payment is not found"
    assert (await payment(runtime, p.id)).refunded_fen == 0
