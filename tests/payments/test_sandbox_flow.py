"""The sandbox gateway end to end: a payment is created, the payer opens the hosted cashier
and chooses an outcome, the sandbox sends its signed notification asynchronously through the
outbox and over HTTP into the app, and the payment moves exactly once with its event."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from siyu.kit import clock
from siyu.kit.errors import Conflict, ValidationFailed
from siyu.kit.runtime import Runtime
from siyu.payments import service
from siyu.payments.gateways import sandbox as sandbox_gw
from siyu.payments.gateways import sandbox_gateway
from tests.conftest import TenantInfo, drain_outbox, unique
from tests.payments._helpers import (
    events,
    new_payment,
    notifications,
    outcomes,
    payment,
    sandbox_choose,
    scope,
    transitions,
)

ORIGIN = {"origin": "http://testserver"}


def _token(page: str) -> str:
    m = re.search(r'name="token" value="([0-9a-f]+)"', page)
    assert m, page[:500]
    return m.group(1)


async def test_pay_on_the_cashier_then_the_signed_notification_moves_the_payment_once(
        runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient) -> None:
    start = await new_payment(runtime, shop, 1234, description="明前龙井 250g", return_url="/m/shop/orders/1")
    p = start.payment
    assert start.pay_url == f"/pay/sandbox/{p.out_trade_no}"
    assert (p.status, p.gateway, p.channel, p.amount_fen) == ("pending", "sandbox", "sandbox", 1234)
    assert re.fullmatch(r"P\d{26}", p.out_trade_no)

    page = await client.get(start.pay_url)
    assert page.status_code == 200
    assert "¥12.34" in page.text and "明前龙井 250g" in page.text
    for label in ("确认支付", "支付失败", "取消"):
        assert label in page.text
    assert page.headers["cache-control"] == "no-store"
    # (With "no-referrer", browsers post the form with "Origin: null", which is refused.)
    assert page.headers["referrer-policy"] == "same-origin"

    r = await client.post(start.pay_url, data={"outcome": "pay", "token": _token(page.text)}, headers=ORIGIN)
    assert r.status_code == 303

    # The gateway has taken the money but has not told us yet: notifications are asynchronous.
    assert (await payment(runtime, p.id)).status == "pending"
    assert await events(runtime, shop.id, "payment.succeeded", payment_id=p.id) == []

    await drain_outbox(runtime)
    paid = await payment(runtime, p.id)
    assert paid.status == "succeeded"
    assert paid.transaction_id and paid.transaction_id.startswith("SBXT")
    assert paid.paid_at is not None
    assert await transitions(runtime, p.id) == [("new", "pending", "created"), ("pending", "succeeded", "notification")]
    [ev] = await events(runtime, shop.id, "payment.succeeded", payment_id=p.id)
    assert {k: ev[k] for k in ("payment_id", "tenant_id", "source_type", "source_id", "amount_fen", "out_trade_no")} == {
        "payment_id": p.id, "tenant_id": shop.id, "source_type": "testorder", "source_id": p.source_id,
        "amount_fen": 1234, "out_trade_no": p.out_trade_no}
    assert ev["duplicate_of"] is None and ev["late"] is False
    [note] = await notifications(runtime, p.out_trade_no)
    assert (note.outcome, note.event_type, note.tenant_id) == ("processed", "TRANSACTION.SUCCESS", shop.id)
    assert note.headers["sandbox-signature"] and note.notification_id.startswith("SBXN")

    await drain_outbox(runtime)  # nothing more happens
    assert len(await events(runtime, shop.id, "payment.succeeded", payment_id=p.id)) == 1

    done = await client.get(start.pay_url)
    assert "支付成功" in done.text and "确认支付" not in done.text
    assert 'href="http://127.0.0.1:8000/m/shop/orders/1"' in done.text, "the way back to the shop"


@pytest.mark.parametrize(("outcome", "status", "topic"), [("fail", "failed", "payment.failed"),
                                                          ("cancel", "closed", "payment.closed")])
async def test_fail_and_cancel_on_the_cashier(runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient,
                                              outcome: str, status: str, topic: str) -> None:
    start = await new_payment(runtime, shop, 990)
    page = await client.get(start.pay_url or "")
    r = await client.post(start.pay_url or "", data={"outcome": outcome, "token": _token(page.text)}, headers=ORIGIN)
    assert r.status_code == 303
    await drain_outbox(runtime)
    p = await payment(runtime, start.payment.id)
    assert p.status == status
    assert len(await events(runtime, shop.id, topic, payment_id=p.id)) == 1
    assert await events(runtime, shop.id, "payment.succeeded", payment_id=p.id) == []


async def test_the_cashier_refuses_forged_posts_and_second_choices(runtime: Runtime, shop: TenantInfo,
                                                                   client: httpx.AsyncClient) -> None:
    start = await new_payment(runtime, shop, 500)
    url = start.pay_url or ""
    page = await client.get(url)
    token = _token(page.text)
    other = await new_payment(runtime, shop, 500)

    for data, headers in [({"outcome": "pay"}, ORIGIN),                                   # no token
                          ({"outcome": "pay", "token": "0" * 40}, ORIGIN),                # wrong token
                          ({"outcome": "pay", "token": token}, {"origin": "https://evil.example"}),  # cross-site
                          ]:
        r = await client.post(url, data=data, headers=headers)
        assert r.status_code == 403, (data, headers, r.text[:200])
    # A token is bound to its order.
    r = await client.post(other.pay_url or "", data={"outcome": "pay", "token": token}, headers=ORIGIN)
    assert r.status_code == 403
    await drain_outbox(runtime)
    assert (await payment(runtime, start.payment.id)).status == "pending"

    assert (await client.post(url, data={"outcome": "pay", "token": token}, headers=ORIGIN)).status_code == 303
    again = await client.post(url, data={"outcome": "fail", "token": token}, headers=ORIGIN)
    assert again.status_code == 409 and "已处理" in again.text
    await drain_outbox(runtime)
    assert (await payment(runtime, start.payment.id)).status == "succeeded"
    assert await outcomes(runtime, start.payment.out_trade_no) == {"processed": 1}

    assert (await client.get("/pay/sandbox/P00000000000000000000000000")).status_code == 404
    assert (await client.get("/pay/sandbox/" + sandbox_gw.refund_book_no("x"))).status_code == 404


async def test_same_source_reuses_the_pending_payment_and_a_paid_source_is_refused(runtime: Runtime, shop: TenantInfo) -> None:
    source = unique("o")
    first = await new_payment(runtime, shop, 800, source_id=source)
    again = await new_payment(runtime, shop, 800, source_id=source)
    assert again.reused and again.payment.id == first.payment.id and again.pay_url == first.pay_url

    # Another amount (the order changed) supersedes the earlier payment: it is closed first.
    changed = await new_payment(runtime, shop, 900, source_id=source)
    assert not changed.reused and changed.payment.id != first.payment.id
    assert (await payment(runtime, first.payment.id)).status == "closed"
    assert (await transitions(runtime, first.payment.id))[-1] == ("pending", "closed", "superseded")
    async with runtime.db.uow(readonly=True) as s:
        at_gateway = await sandbox_gateway(runtime).query(s, first.payment.out_trade_no)
    assert at_gateway.state == "CLOSED", "closed at the gateway too: it can no longer be paid"

    await sandbox_choose(runtime, changed.payment.out_trade_no)
    await drain_outbox(runtime)
    with pytest.raises(Conflict) as exc:
        await new_payment(runtime, shop, 900, source_id=source)
    assert exc.value.code == "payment_source_paid"


async def test_the_amount_and_the_inputs_are_checked(runtime: Runtime, shop: TenantInfo) -> None:
    bad: list[dict[str, Any]] = [
        {"amount_fen": 0}, {"amount_fen": -5}, {"amount_fen": 10**11}, {"channel": "alipay"},
        {"channel": "jsapi"},  # needs an openid (and WeChat Pay is not configured)
        {"description": ""}, {"description": "x" * 128}, {"source_type": "Order!"},
        {"expires_at": clock.now() - timedelta(minutes=1)}, {"return_url": "https://evil.example/"},
        {"return_url": "//evil.example/"},
    ]
    for over in bad:
        kw: dict[str, Any] = {"amount_fen": 100, "description": "ok", "source_type": "testorder", "channel": "sandbox"}
        kw.update(over)
        with pytest.raises((ValidationFailed, Conflict)):
            async with runtime.db.uow() as s:
                await service.create_payment(s, scope(shop), source_id=unique("o"), **kw)


async def test_an_undelivered_notification_is_retried_on_the_gateway_schedule(
        runtime: Runtime, shop: TenantInfo, drop_notifications: list[httpx.Request], notify_client: httpx.AsyncClient) -> None:
    start = await new_payment(runtime, shop, 321)
    no = start.payment.out_trade_no.encode()

    def mine() -> list[httpx.Request]:  # (other tests' retries may fall due when the clock moves)
        return [r for r in drop_notifications if no in r.content]

    await sandbox_choose(runtime, start.payment.out_trade_no)
    await drain_outbox(runtime)
    assert len(mine()) == 1
    first = mine()[0]
    assert first.url.path == "/api/pay/notify/sandbox"
    assert {"sandbox-timestamp", "sandbox-nonce", "sandbox-signature"} <= set(first.headers)
    assert (await payment(runtime, start.payment.id)).status == "pending"

    await drain_outbox(runtime)  # the retry is not due yet
    assert len(mine()) == 1
    clock.travel(timedelta(seconds=sandbox_gw.RETRY_SCHEDULE[0] + 1))
    await drain_outbox(runtime)
    assert len(mine()) == 2
    assert mine()[1].content == first.content, "a retry sends the same notification"
    assert mine()[1].headers["sandbox-nonce"] != first.headers["sandbox-nonce"], "…signed afresh"

    runtime.extras["http_client"] = notify_client  # the merchant's server is back
    clock.travel(timedelta(seconds=sandbox_gw.RETRY_SCHEDULE[1] + 1))
    await drain_outbox(runtime)
    assert (await payment(runtime, start.payment.id)).status == "succeeded"
    assert len(await events(runtime, shop.id, "payment.succeeded", payment_id=start.payment.id)) == 1


async def test_the_cashier_speaks_english(runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient) -> None:
    from tests._pages import chinese_left

    start = await new_payment(runtime, shop, 100, description="Spring tea")
    page = await client.get(start.pay_url or "", headers={"accept-language": "en"})
    assert page.status_code == 200
    assert "Pay now" in page.text
    assert chinese_left(page.text) == set()
