"""Gateway notifications: a replay has the effect of one; a forged, tampered, stale,
wrong-amount or unknown one is refused, recorded and changes nothing."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from siyu.kit import clock
from siyu.kit.runtime import Runtime
from tests.conftest import TenantInfo, drain_outbox
from tests.payments._helpers import (
    events,
    new_payment,
    notification_count,
    notifications,
    outcomes,
    payment,
    post_notification,
    sandbox_body,
    sandbox_choose,
    sandbox_deliveries,
    sandbox_headers,
    transitions,
)


async def _paid_and_captured(runtime: Runtime, shop: TenantInfo) -> tuple[int, str, bytes]:
    """A payment paid on the cashier, and the exact notification body the sandbox sent."""
    start = await new_payment(runtime, shop, 2500)
    await sandbox_choose(runtime, start.payment.out_trade_no)
    [body] = await sandbox_deliveries(runtime, start.payment.out_trade_no)
    await drain_outbox(runtime)
    assert (await payment(runtime, start.payment.id)).status == "succeeded"
    return start.payment.id, start.payment.out_trade_no, body


async def test_a_notification_replayed_ten_times_sequentially_counts_once(
        runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient) -> None:
    pid, no, body = await _paid_and_captured(runtime, shop)
    for _ in range(10):
        r = await post_notification(client, "sandbox", body, sandbox_headers(runtime, body))
        assert r.status_code == 204, r.text
    await drain_outbox(runtime)
    assert await transitions(runtime, pid) == [("new", "pending", "created"), ("pending", "succeeded", "notification")]
    assert len(await events(runtime, shop.id, "payment.succeeded", payment_id=pid)) == 1
    assert await outcomes(runtime, no) == {"processed": 1, "duplicate": 10}


async def test_a_notification_replayed_ten_times_concurrently_counts_once(
        runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient) -> None:
    start = await new_payment(runtime, shop, 777)
    no = start.payment.out_trade_no
    body = sandbox_body(no, 777)
    responses = await asyncio.gather(*(post_notification(client, "sandbox", body, sandbox_headers(runtime, body))
                                       for _ in range(10)))
    assert [r.status_code for r in responses] == [204] * 10
    assert (await payment(runtime, start.payment.id)).status == "succeeded"
    assert [t for t in await transitions(runtime, start.payment.id) if t[1] == "succeeded"] == [
        ("pending", "succeeded", "notification")]
    assert len(await events(runtime, shop.id, "payment.succeeded", payment_id=start.payment.id)) == 1
    assert await outcomes(runtime, no) == {"processed": 1, "duplicate": 9}


async def test_distinct_notifications_of_one_success_race_to_one_transition(
        runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient) -> None:
    """Different notification ids for the same success (a gateway re-sending under a new id)
    pass the unique id but meet the conditional status update."""
    start = await new_payment(runtime, shop, 640)
    bodies = [sandbox_body(start.payment.out_trade_no, 640) for _ in range(8)]
    responses = await asyncio.gather(*(post_notification(client, "sandbox", b, sandbox_headers(runtime, b)) for b in bodies))
    assert {r.status_code for r in responses} == {204}
    assert len(await events(runtime, shop.id, "payment.succeeded", payment_id=start.payment.id)) == 1
    assert await outcomes(runtime, start.payment.out_trade_no) == {"processed": 1, "duplicate": 7}


async def _assert_refused(runtime: Runtime, client: httpx.AsyncClient, shop: TenantInfo, pid: int, body: bytes,
                          headers: dict[str, str], status: int, reason: str) -> dict[str, object]:
    before_notes = await notification_count(runtime)
    r = await post_notification(client, "sandbox", body, headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == f"notification_{reason}" and problem["message"] and problem["status"] == status
    await drain_outbox(runtime)
    p = await payment(runtime, pid)
    assert p.status == "pending" and p.transaction_id is None
    assert await transitions(runtime, pid) == [("new", "pending", "created")]
    assert await events(runtime, shop.id, "payment.succeeded", payment_id=pid) == []
    assert await notification_count(runtime) == before_notes + 1, "every refused notification is recorded"
    return problem


async def test_forged_tampered_stale_and_unknown_notifications_change_nothing(
        runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient) -> None:
    start = await new_payment(runtime, shop, 1999)
    pid, no = start.payment.id, start.payment.out_trade_no
    good = sandbox_body(no, 1999, nid="SBXN-GOOD-" + no)

    # forged: signed with a key that is not the sandbox's
    await _assert_refused(runtime, client, shop, pid, good, sandbox_headers(runtime, good, key=b"k" * 32), 401, "bad_signature")
    # tampered: a genuine signature over another body
    headers = sandbox_headers(runtime, good)
    tampered = good.replace(b'"total":1999', b'"total":1')
    await _assert_refused(runtime, client, shop, pid, tampered, headers, 401, "bad_signature")
    tampered_state = sandbox_body(no, 1999, state="PAYERROR", nid="SBXN-GOOD-" + no)
    await _assert_refused(runtime, client, shop, pid, tampered_state, headers, 401, "bad_signature")
    # stale: signed more than five minutes ago (or ahead); ten seconds of margin, as the clock moves while the test runs
    now = int(clock.now().timestamp())
    await _assert_refused(runtime, client, shop, pid, good, sandbox_headers(runtime, good, timestamp=now - 310), 401, "stale")
    await _assert_refused(runtime, client, shop, pid, good, sandbox_headers(runtime, good, timestamp=now + 310), 401, "stale")
    # missing signature headers
    await _assert_refused(runtime, client, shop, pid, good, {"content-type": "application/json"}, 401, "missing_headers")
    # wrong amount, genuinely signed (the gateway never says another amount for our order)
    wrong = sandbox_body(no, 1998)
    problem = await _assert_refused(runtime, client, shop, pid, wrong, sandbox_headers(runtime, wrong), 400, "wrong_amount")
    assert "1998" in str(problem["detail"])
    # a trade we never created
    unknown = sandbox_body("P99999999999999999999999999", 1999)
    await _assert_refused(runtime, client, shop, pid, unknown, sandbox_headers(runtime, unknown), 404, "unknown_trade")
    # not JSON at all (but signed)
    junk = b"hello"
    await _assert_refused(runtime, client, shop, pid, junk, sandbox_headers(runtime, junk), 400, "malformed")

    rejected = [n for n in await notifications(runtime, no) if n.outcome == "rejected"]
    reasons = sorted(n.reason.split(":")[0] for n in rejected if n.reason)
    assert reasons == ["wrong_amount"], "refused notifications that name our payment are attributed to it"
    assert rejected[0].tenant_id == shop.id

    # The genuine notification is still accepted afterwards: refusals never consume its id.
    r = await post_notification(client, "sandbox", good, sandbox_headers(runtime, good))
    assert r.status_code == 204
    assert (await payment(runtime, pid)).status == "succeeded"


async def test_a_stale_replay_of_a_genuine_notification_is_refused(
        runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient) -> None:
    from datetime import timedelta

    _pid, no, body = await _paid_and_captured(runtime, shop)
    old = sandbox_headers(runtime, body)
    clock.travel(timedelta(minutes=6))
    r = await post_notification(client, "sandbox", body, old)
    assert r.status_code == 401 and r.json()["code"] == "notification_stale"
    assert await outcomes(runtime, no) == {"processed": 1}


async def test_a_failure_after_success_is_ignored(runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient) -> None:
    pid, no, _body = await _paid_and_captured(runtime, shop)
    fail = sandbox_body(no, 2500, state="PAYERROR")
    r = await post_notification(client, "sandbox", fail, sandbox_headers(runtime, fail))
    assert r.status_code == 204  # acknowledged so the gateway stops, but…
    assert (await payment(runtime, pid)).status == "succeeded"  # …nothing changes
    assert await events(runtime, shop.id, "payment.failed", payment_id=pid) == []
    last = (await notifications(runtime, no))[-1]
    assert last.outcome == "ignored" and "PAYERROR" in (last.reason or "")


@pytest.mark.parametrize("gateway", ["alipay", "abc"])
async def test_unknown_gateway_is_a_404_problem(client: httpx.AsyncClient, gateway: str) -> None:
    r = await client.post(f"/api/pay/notify/{gateway}", content=b"{}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_an_oversized_body_is_refused_unread(runtime: Runtime, client: httpx.AsyncClient) -> None:
    body = json.dumps({"x": "y" * 70000}).encode()
    r = await post_notification(client, "sandbox", body, sandbox_headers(runtime, body))
    assert r.status_code == 413 and r.json()["code"] == "notification_too_large"
