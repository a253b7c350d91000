"""WeChat Pay through the service and the notify endpoint: a tenant's stored credentials,
prepay, the signed and encrypted notification (either key, chosen by ``Wechatpay-Serial``),
refunds with their notification, and what is refused."""

from __future__ import annotations

import httpx
import pytest

from siyu.kit import clock
from siyu.kit.errors import Conflict
from siyu.kit.runtime import Runtime
from tests.conftest import TenantInfo, drain_outbox, unique
from tests.payments._helpers import (
    FakeWeChat,
    do_refund,
    events,
    new_payment,
    notifications,
    outcomes,
    payment,
    post_notification,
    refund_row,
    transitions,
    wx_keys,
    wx_notification,
    wx_signed_headers,
    wx_transaction,
)

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


async def _jsapi(runtime: Runtime, t: TenantInfo, amount: int = 2990) -> tuple[int, str]:
    start = await new_payment(runtime, t, amount, channel="jsapi", payer_openid=OPENID)
    assert start.pay_params and start.pay_params["package"].startswith("prepay_id=")
    return start.payment.id, start.payment.out_trade_no


@pytest.mark.parametrize("mode", ["pubkey", "cert"])
async def test_jsapi_payment_settled_by_a_wechat_notification(runtime: Runtime, wechat_shop: TenantInfo,
                                                              fake_wechat: FakeWeChat, client: httpx.AsyncClient,
                                                              mode: str) -> None:
    pid, no = await _jsapi(runtime, wechat_shop)
    sent = fake_wechat.bodies[-1]
    assert sent["notify_url"] == "http://127.0.0.1:8000/api/pay/notify/wechat"
    assert sent["out_trade_no"] == no and sent["amount"]["total"] == 2990

    keys = wx_keys()
    body, headers = wx_notification(keys, wx_transaction(keys, no, 2990), mode=mode)
    r = await post_notification(client, "wechat", body, headers)
    assert r.status_code == 204, r.text
    p = await payment(runtime, pid)
    assert p.status == "succeeded" and p.transaction_id and p.transaction_id.startswith("4200000")
    [ev] = await events(runtime, wechat_shop.id, "payment.succeeded", payment_id=pid)
    assert ev["gateway"] == "wechat" and ev["channel"] == "jsapi" and ev["amount_fen"] == 2990
    [note] = await notifications(runtime, no)
    assert note.outcome == "processed" and note.tenant_id == wechat_shop.id
    assert "ciphertext" in note.body and OPENID not in note.body, "the resource is stored encrypted, as received"

    for _ in range(3):  # WeChat Pay retries with the same id, signed afresh
        again = await post_notification(client, "wechat", body, wx_signed_headers(keys, body, mode=mode))
        assert again.status_code == 204
    assert await outcomes(runtime, no) == {"processed": 1, "duplicate": 3}
    assert len(await events(runtime, wechat_shop.id, "payment.succeeded", payment_id=pid)) == 1


async def test_wechat_notifications_refused_with_code_and_message(runtime: Runtime, wechat_shop: TenantInfo,
                                                                  fake_wechat: FakeWeChat, client: httpx.AsyncClient) -> None:
    pid, no = await _jsapi(runtime, wechat_shop, 1000)
    keys = wx_keys()
    cases = [
        (wx_transaction(keys, no, 999), {}, 400, "wrong_amount"),
        (wx_transaction(keys, no, 1000, appid="wx0000000000000000"), {}, 400, "wrong_appid"),
        (wx_transaction(keys, no, 1000, mchid="1900000999"), {}, 400, "wrong_mchid"),
        (wx_transaction(keys, "P00000000000000000000000000", 1000), {}, 404, "unknown_trade"),
        (wx_transaction(keys, no, 1000), {"timestamp": int(clock.now().timestamp()) - 600}, 401, "stale"),
    ]
    for resource, kw, status, reason in cases:
        body, headers = wx_notification(keys, resource, **kw)  # type: ignore[arg-type]
        r = await post_notification(client, "wechat", body, headers)
        assert r.status_code == status, (reason, r.text)
        data = r.json()
        assert data["code"] == f"notification_{reason}" and isinstance(data["message"], str) and data["message"]
    body, headers = wx_notification(keys, wx_transaction(keys, no, 1000))
    r = await post_notification(client, "wechat", body, dict(headers, **{"Wechatpay-Serial": "ABCDEF0123"}))
    assert r.status_code == 401 and r.json()["code"] == "notification_unknown_serial"
    r = await post_notification(client, "wechat", body[:-2] + b" }", headers)
    assert r.status_code == 401 and r.json()["code"] == "notification_bad_signature"

    assert (await payment(runtime, pid)).status == "pending"
    assert await transitions(runtime, pid) == [("new", "pending", "created")]
    assert await events(runtime, wechat_shop.id, "payment.succeeded", payment_id=pid) == []
    ours = {n.reason.split(":")[0] for n in await notifications(runtime, no) if n.reason}
    assert {"wrong_amount", "wrong_appid", "wrong_mchid"} <= ours


async def test_wechat_refund_submitted_after_commit_and_settled_by_notification(
        runtime: Runtime, wechat_shop: TenantInfo, fake_wechat: FakeWeChat, client: httpx.AsyncClient) -> None:
    pid, no = await _jsapi(runtime, wechat_shop, 5000)
    keys = wx_keys()
    body, headers = wx_notification(keys, wx_transaction(keys, no, 5000, transaction_id="4200000999"))
    assert (await post_notification(client, "wechat", body, headers)).status_code == 204

    calls = len(fake_wechat.requests)
    r = await do_refund(runtime, wechat_shop, pid, 1200)
    assert len(fake_wechat.requests) == calls, "nothing is sent to the gateway before the transaction commits"
    await drain_outbox(runtime)
    sent = fake_wechat.bodies[-1]
    assert fake_wechat.requests[-1].url.path == "/v3/refund/domestic/refunds"
    assert sent["out_refund_no"] == r.out_refund_no and sent["transaction_id"] == "4200000999"
    assert sent["amount"] == {"refund": 1200, "total": 5000, "currency": "CNY"}
    row = await refund_row(runtime, r.id)
    assert row.status == "pending" and row.gateway_refund_id  # WeChat Pay said PROCESSING

    refund_res = {"mchid": keys.mchid, "out_trade_no": no, "transaction_id": "4200000999", "out_refund_no": r.out_refund_no,
                  "refund_id": row.gateway_refund_id, "refund_status": "SUCCESS", "success_time": "2026-01-02T10:00:00+08:00",
                  "amount": {"total": 5000, "refund": 1200, "payer_total": 5000, "payer_refund": 1200}}
    body, headers = wx_notification(keys, refund_res, event_type="REFUND.SUCCESS", mode="cert")
    for _ in range(2):
        assert (await post_notification(client, "wechat", body, headers)).status_code == 204
    assert (await refund_row(runtime, r.id)).status == "succeeded"
    assert await outcomes(runtime, r.out_refund_no) == {"processed": 1, "duplicate": 1}
    assert len(await events(runtime, wechat_shop.id, "refund.succeeded", refund_id=r.id)) == 1
    assert (await payment(runtime, pid)).refunded_fen == 1200


async def test_h5_and_native_through_the_service(runtime: Runtime, wechat_shop: TenantInfo, fake_wechat: FakeWeChat) -> None:
    h5 = await new_payment(runtime, wechat_shop, 100, channel="h5", payer_client_ip="198.51.100.7", return_url="/m/x/orders/9")
    assert h5.pay_url and "redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fm%2Fx%2Forders%2F9" in h5.pay_url
    assert fake_wechat.bodies[-1]["scene_info"]["payer_client_ip"] == "198.51.100.7"
    native = await new_payment(runtime, wechat_shop, 100, channel="native")
    assert native.code_url and native.code_url.startswith("weixin://")


async def test_a_gateway_outage_on_create_is_a_502_and_leaves_nothing(runtime: Runtime, wechat_shop: TenantInfo,
                                                                      fake_wechat: FakeWeChat) -> None:
    from siyu.kit.errors import DomainError

    fake_wechat.fail_with = 503
    source = unique("o")
    with pytest.raises(DomainError) as exc:
        await new_payment(runtime, wechat_shop, 100, channel="native", source_id=source)
    assert exc.value.status == 502 and exc.value.code == "payment_gateway_unavailable"
    from siyu.payments import service
    from tests.payments._helpers import scope

    async with runtime.db.uow(readonly=True) as s:
        assert list(await service.payments_for_source(s, scope(wechat_shop), "testorder", source)) == []


async def test_wechat_must_be_enabled_for_new_payments(runtime: Runtime, shop: TenantInfo) -> None:
    with pytest.raises(Conflict) as exc:
        await new_payment(runtime, shop, 100, channel="native")
    assert exc.value.code == "payment_gateway_disabled"
