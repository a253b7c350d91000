"""The WeChat Pay v3 adapter on its own, against keys and certificates the tests generate
and a fake WeChat Pay on ``httpx.MockTransport``: request signing, response and notification
verification in platform-certificate and public-key modes, AES-256-GCM decryption, the
prepay request shapes of JSAPI, H5 and Native, queries, close, refunds, certificates."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from siyu.kit import clock
from siyu.payments.gateways import (
    CreateRequest,
    GatewayError,
    GatewayRefused,
    NotificationRejected,
    RefundRequest,
)
from siyu.payments.gateways.wechat import (
    WeChatCredentials,
    WeChatPay,
    aead_decrypt,
    authorization,
    parse_authorization,
    request_message,
    split_certificates,
)
from tests.payments._helpers import (
    FakeWeChat,
    WxKeys,
    encrypt_resource,
    make_cert,
    wx_keys,
    wx_notification,
    wx_signed_headers,
    wx_transaction,
)

NOTIFY = "https://shop.example.com/api/pay/notify/wechat"


@pytest.fixture
def keys() -> WxKeys:
    return wx_keys()


@pytest.fixture
async def fake(keys: WxKeys) -> AsyncIterator[FakeWeChat]:
    yield FakeWeChat(keys)


def _gateway(keys: WxKeys, fake: FakeWeChat | None = None, **conf: Any) -> WeChatPay:
    client = fake.client() if fake else httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    return WeChatPay(WeChatCredentials.from_config(keys.config(**conf)), client, notify_url=NOTIFY, tenant_id=1)


def _verify_rsa(key: rsa.RSAPublicKey, message: bytes, signature: str) -> None:
    key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())


# -- request signing ---------------------------------------------------------------------------------


def test_request_signature_verifies_with_the_merchant_public_key(keys: WxKeys) -> None:
    body = '{"mchid":"1900000109"}'
    header = authorization(keys.mchid, keys.merchant_serial, keys.merchant_key, "POST", "/v3/pay/transactions/native",
                           body, timestamp="1554208460", nonce="593BEC0C930BF1AFEB40B4A08C8FB242")
    assert header.startswith("WECHATPAY2-SHA256-RSA2048 ")
    parts = parse_authorization(header)
    assert parts["mchid"] == keys.mchid and parts["serial_no"] == keys.merchant_serial
    assert (parts["timestamp"], parts["nonce_str"]) == ("1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242")
    message = request_message("POST", "/v3/pay/transactions/native", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", body)
    assert message == b'POST\n/v3/pay/transactions/native\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{"mchid":"1900000109"}\n'
    _verify_rsa(keys.merchant_key.public_key(), message, parts["signature"])
    with pytest.raises(Exception):  # noqa: B017 - any InvalidSignature
        _verify_rsa(keys.merchant_key.public_key(), message.replace(b"native", b"jsapi"), parts["signature"])


async def test_get_requests_sign_the_path_with_its_query_and_an_empty_body(keys: WxKeys, fake: FakeWeChat) -> None:
    gw = _gateway(keys, fake)
    state = await gw.query(None, "P2024")  # type: ignore[arg-type]
    assert state.state == "NOT_FOUND"
    [req] = fake.requests
    assert req.method == "GET" and req.url.raw_path == b"/v3/pay/transactions/out-trade-no/P2024?mchid=1900000109"
    assert req.content == b"" and req.headers["accept"] == "application/json" and "user-agent" in req.headers
    # FakeWeChat verified the signature over "GET\n<path?query>\nts\nnonce\n\n" before answering.


# -- prepay ---------------------------------------------------------------------------------------------


async def test_jsapi_prepay_request_shape_and_pay_sign(keys: WxKeys, fake: FakeWeChat) -> None:
    gw = _gateway(keys, fake)
    expires = clock.now() + timedelta(minutes=30)
    result = await gw.create(None, CreateRequest(  # type: ignore[arg-type]
        out_trade_no="P20260101120000000000000001", amount_fen=1234, description="明前龙井" * 40, channel="jsapi",
        notify_url=NOTIFY, expires_at=expires, payer_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))
    [req] = fake.requests
    assert req.method == "POST" and req.url.path == "/v3/pay/transactions/jsapi"
    assert req.url.host == "api.mch.weixin.qq.com" and req.headers["content-type"] == "application/json"
    sent = json.loads(req.content)
    assert set(sent) == {"appid", "mchid", "description", "out_trade_no", "notify_url", "amount", "time_expire", "payer"}
    assert sent["appid"] == keys.appid and sent["mchid"] == keys.mchid and sent["notify_url"] == NOTIFY
    assert sent["amount"] == {"total": 1234, "currency": "CNY"}
    assert sent["payer"] == {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}
    assert len(sent["description"].encode()) <= 127, "WeChat Pay takes at most 127 bytes"
    assert sent["time_expire"].endswith("+08:00")
    assert req.headers["wechatpay-serial"] == keys.pub_key_id, "answers are asked for in public-key mode"

    params = result.pay_params
    assert params is not None and result.pay_url is None and result.code_url is None
    assert params["appId"] == keys.appid and params["signType"] == "RSA"
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100"
    message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    _verify_rsa(keys.merchant_key.public_key(), message, params["paySign"])


async def test_h5_and_native_prepay_request_shapes(keys: WxKeys, fake: FakeWeChat) -> None:
    gw = _gateway(keys, fake)
    h5 = await gw.create(None, CreateRequest(  # type: ignore[arg-type]
        out_trade_no="PH5", amount_fen=100, description="h5", channel="h5", notify_url=NOTIFY,
        payer_client_ip="203.0.113.9", return_url="https://shop.example.com/m/t/orders/1"))
    sent = json.loads(fake.requests[-1].content)
    assert fake.requests[-1].url.path == "/v3/pay/transactions/h5"
    assert sent["scene_info"] == {"payer_client_ip": "203.0.113.9", "h5_info": {"type": "Wap"}}
    assert "payer" not in sent
    assert h5.pay_url and h5.pay_url.startswith("https://wx.tenpay.com/")
    assert h5.pay_url.endswith("&redirect_url=https%3A%2F%2Fshop.example.com%2Fm%2Ft%2Forders%2F1")

    native = await gw.create(None, CreateRequest(  # type: ignore[arg-type]
        out_trade_no="PNATIVE", amount_fen=100, description="native", channel="native", notify_url=NOTIFY))
    assert fake.requests[-1].url.path == "/v3/pay/transactions/native"
    assert "scene_info" not in json.loads(fake.requests[-1].content)
    assert native.code_url == "weixin://wxpay/bizpayurl?pr=p4lpSuKzz" and native.pay_params is None

    with pytest.raises(GatewayRefused):
        await gw.create(None, CreateRequest(out_trade_no="PJ", amount_fen=1, description="x",  # type: ignore[arg-type]
                                            channel="jsapi", notify_url=NOTIFY))


async def test_responses_must_carry_a_valid_signature(keys: WxKeys, fake: FakeWeChat) -> None:
    gw = _gateway(keys, fake)
    fake.sign_responses = False
    with pytest.raises(GatewayError) as exc:
        await gw.create(None, CreateRequest(out_trade_no="PX", amount_fen=1, description="x",  # type: ignore[arg-type]
                                            channel="native", notify_url=NOTIFY))
    assert exc.value.code == "bad_response"

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def forged(request: httpx.Request) -> httpx.Response:
        raw = b'{"code_url":"weixin://evil"}'
        return httpx.Response(200, content=raw, headers=wx_signed_headers(keys, raw, signer=other))

    gw2 = WeChatPay(gw.creds, httpx.AsyncClient(transport=httpx.MockTransport(forged)), notify_url=NOTIFY)
    with pytest.raises(GatewayError):
        await gw2.create(None, CreateRequest(out_trade_no="PX", amount_fen=1, description="x",  # type: ignore[arg-type]
                                             channel="native", notify_url=NOTIFY))


async def test_errors_are_transient_or_definitive(keys: WxKeys, fake: FakeWeChat) -> None:
    gw = _gateway(keys, fake)
    fake.fail_with = 500
    with pytest.raises(GatewayError) as e1:
        await gw.query(None, "P1")  # type: ignore[arg-type]
    assert not isinstance(e1.value, GatewayRefused)
    fake.fail_with = 400
    with pytest.raises(GatewayError) as e2:  # SYSTEM_ERROR is transient whatever the status
        await gw.query(None, "P1")  # type: ignore[arg-type]
    assert not isinstance(e2.value, GatewayRefused)

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"code": "NOT_ENOUGH", "message": "基本账户余额不足"})

    gw2 = WeChatPay(gw.creds, httpx.AsyncClient(transport=httpx.MockTransport(refuse)), notify_url=NOTIFY)
    with pytest.raises(GatewayRefused) as e3:
        await gw2.refund(None, RefundRequest(out_trade_no="P1", transaction_id="42", out_refund_no="R1",  # type: ignore[arg-type]
                                             amount_fen=1, total_fen=2, reason=None, notify_url=NOTIFY))
    assert e3.value.code == "NOT_ENOUGH"

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    gw3 = WeChatPay(gw.creds, httpx.AsyncClient(transport=httpx.MockTransport(down)), notify_url=NOTIFY)
    with pytest.raises(GatewayError):
        await gw3.query(None, "P1")  # type: ignore[arg-type]


# -- query, close, refund -----------------------------------------------------------------------------------


async def test_query_close_refund_and_refund_query(keys: WxKeys, fake: FakeWeChat) -> None:
    gw = _gateway(keys, fake)
    await gw.create(None, CreateRequest(out_trade_no="PQ1", amount_fen=880, description="q",  # type: ignore[arg-type]
                                        channel="native", notify_url=NOTIFY))
    state = await gw.query(None, "PQ1")  # type: ignore[arg-type]
    assert (state.state, state.amount_fen, state.transaction_id) == ("NOTPAY", 880, None)
    closed = await gw.close(None, "PQ1")  # type: ignore[arg-type]
    assert closed.state == "CLOSED"
    close_req = fake.requests[-2]
    assert close_req.url.path == "/v3/pay/transactions/out-trade-no/PQ1/close"
    assert json.loads(close_req.content) == {"mchid": keys.mchid}

    await gw.create(None, CreateRequest(out_trade_no="PQ2", amount_fen=880, description="q",  # type: ignore[arg-type]
                                        channel="native", notify_url=NOTIFY))
    fake.pay("PQ2")
    paid = await gw.close(None, "PQ2")  # type: ignore[arg-type]  # too late: it was paid
    assert paid.state == "SUCCESS" and paid.transaction_id

    r = await gw.refund(None, RefundRequest(out_trade_no="PQ2", transaction_id=paid.transaction_id,  # type: ignore[arg-type]
                                            out_refund_no="RQ2", amount_fen=300, total_fen=880, reason="质量问题",
                                            notify_url=NOTIFY))
    sent = json.loads(fake.requests[-1].content)
    assert fake.requests[-1].url.path == "/v3/refund/domestic/refunds"
    assert sent == {"out_refund_no": "RQ2", "notify_url": NOTIFY, "transaction_id": paid.transaction_id, "reason": "质量问题",
                    "amount": {"refund": 300, "total": 880, "currency": "CNY"}}
    assert (r.state, r.amount_fen) == ("PROCESSING", 300) and r.gateway_refund_id
    fake.refunds["RQ2"]["status"] = "SUCCESS"
    assert (await gw.query_refund(None, "RQ2")).state == "SUCCESS"  # type: ignore[arg-type]
    assert (await gw.query_refund(None, "NOPE")).state == "NOT_FOUND"  # type: ignore[arg-type]


async def test_platform_certificates_download_and_decrypt(keys: WxKeys, fake: FakeWeChat) -> None:
    creds = WeChatCredentials(mchid=keys.mchid, appid=keys.appid, merchant_serial_no=keys.merchant_serial,
                              private_key_pem=keys.merchant_pem, apiv3_key=keys.apiv3_key)
    gw = WeChatPay(creds, fake.client(), notify_url=NOTIFY)
    certs = await gw.download_certificates()
    assert certs == {keys.platform_serial: keys.platform_cert_pem}


# -- notifications ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cert", "pubkey"])
async def test_notification_verified_in_both_modes_and_decrypted(keys: WxKeys, mode: str) -> None:
    gw = _gateway(keys)  # both the platform certificate and the public key configured: a switch in progress
    body, headers = wx_notification(keys, wx_transaction(keys, "PN1", 990), mode=mode, nid="EV-018370")
    note = await gw.verify_notification(None, headers, body)  # type: ignore[arg-type]
    assert (note.notification_id, note.event_type, note.kind, note.out_trade_no) == ("EV-018370", "TRANSACTION.SUCCESS", "payment", "PN1")
    assert note.trade is not None and (note.trade.state, note.trade.amount_fen) == ("SUCCESS", 990)
    assert note.trade.transaction_id and note.trade.paid_at is not None and note.trade.payer_openid


async def test_each_mode_alone_accepts_only_its_own_key(keys: WxKeys) -> None:
    certs_only = _gateway(keys, public_key=False)
    pub_only = _gateway(keys, certs=False)
    body, by_cert = wx_notification(keys, wx_transaction(keys, "PN2", 10), mode="cert")
    _body2, by_pub = wx_notification(keys, wx_transaction(keys, "PN2", 10), mode="pubkey")
    await certs_only.verify_notification(None, by_cert, body)  # type: ignore[arg-type]
    with pytest.raises(NotificationRejected) as e1:
        await certs_only.verify_notification(None, by_pub, _body2)  # type: ignore[arg-type]
    assert e1.value.reason == "unknown_serial"
    await pub_only.verify_notification(None, by_pub, _body2)  # type: ignore[arg-type]
    with pytest.raises(NotificationRejected) as e2:
        await pub_only.verify_notification(None, by_cert, body)  # type: ignore[arg-type]
    assert e2.value.reason == "unknown_serial"


async def test_serials_compare_as_hex_numbers(keys: WxKeys) -> None:
    gw = _gateway(keys, public_key=False)
    body, headers = wx_notification(keys, wx_transaction(keys, "PN3", 10), mode="cert")
    headers["Wechatpay-Serial"] = "00" + keys.platform_serial.lower()
    await gw.verify_notification(None, headers, body)  # type: ignore[arg-type]


# Margins of ten seconds either side of the five-minute limit: the clock moves while a test runs.
@pytest.mark.parametrize(("offset", "ok"), [(-290, True), (290, True), (-310, False), (310, False), (-86400, False)])
async def test_timestamp_skew_of_at_most_five_minutes(keys: WxKeys, offset: int, ok: bool) -> None:
    gw = _gateway(keys)
    ts = int(clock.now().timestamp()) + offset
    body, headers = wx_notification(keys, wx_transaction(keys, "PN4", 10), timestamp=ts)
    if ok:
        await gw.verify_notification(None, headers, body)  # type: ignore[arg-type]
    else:
        with pytest.raises(NotificationRejected) as exc:
            await gw.verify_notification(None, headers, body)  # type: ignore[arg-type]
        assert exc.value.reason == "stale"


async def test_forged_and_tampered_notifications(keys: WxKeys) -> None:
    gw = _gateway(keys)
    body, headers = wx_notification(keys, wx_transaction(keys, "PN5", 10))
    # tampered: one byte of the raw body changed after signing
    with pytest.raises(NotificationRejected) as e1:
        await gw.verify_notification(None, headers, body.replace(b"PN5", b"PN5", 1) + b" ")  # type: ignore[arg-type]
    assert e1.value.reason == "bad_signature"
    # forged: signed by someone else's key under our serial
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = wx_signed_headers(keys, body, signer=other)
    with pytest.raises(NotificationRejected) as e2:
        await gw.verify_notification(None, forged, body)  # type: ignore[arg-type]
    assert e2.value.reason == "bad_signature"
    # WeChat Pay's signature probes ("WECHATPAY/SIGNTEST/...") must fail too
    probe = dict(headers, **{"Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"][:40]})
    with pytest.raises(NotificationRejected):
        await gw.verify_notification(None, probe, body)  # type: ignore[arg-type]
    # missing headers
    with pytest.raises(NotificationRejected) as e3:
        await gw.verify_notification(None, {"Content-Type": "application/json"}, body)  # type: ignore[arg-type]
    assert e3.value.reason == "missing_headers"


async def test_resource_encrypted_with_another_key_is_refused(keys: WxKeys) -> None:
    gw = _gateway(keys)
    body, headers = wx_notification(keys, wx_transaction(keys, "PN6", 10), apiv3_key="X" * 32)
    with pytest.raises(NotificationRejected) as exc:
        await gw.verify_notification(None, headers, body)  # type: ignore[arg-type]
    assert exc.value.reason == "decrypt_failed"


def test_aead_round_trip_and_tamper_detection(keys: WxKeys) -> None:
    res = encrypt_resource(keys.apiv3_key, {"a": 1}, associated_data="transaction")
    assert json.loads(aead_decrypt(keys.apiv3_key, res["nonce"], res["ciphertext"], "transaction")) == {"a": 1}
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):
        aead_decrypt(keys.apiv3_key, res["nonce"], res["ciphertext"], "certificate")  # associated data is authenticated
    raw = bytearray(base64.b64decode(res["ciphertext"]))
    raw[0] ^= 1
    with pytest.raises(InvalidTag):
        aead_decrypt(keys.apiv3_key, res["nonce"], base64.b64encode(bytes(raw)).decode(), "transaction")


@pytest.mark.parametrize(("field", "value", "reason"), [("mchid", "1900000999", "wrong_mchid"),
                                                         ("appid", "wx0000000000000000", "wrong_appid")])
async def test_notifications_for_another_merchant_or_app_are_refused(keys: WxKeys, field: str, value: str, reason: str) -> None:
    gw = _gateway(keys)
    body, headers = wx_notification(keys, wx_transaction(keys, "PN7", 10, **{field: value}))
    with pytest.raises(NotificationRejected) as exc:
        await gw.verify_notification(None, headers, body)  # type: ignore[arg-type]
    assert exc.value.reason == reason


async def test_refund_notifications_are_parsed(keys: WxKeys) -> None:
    gw = _gateway(keys)
    resource = {"mchid": keys.mchid, "out_trade_no": "PN8", "transaction_id": "4200", "out_refund_no": "RN8",
                "refund_id": "50000", "refund_status": "SUCCESS", "success_time": "2026-01-01T10:00:00+08:00",
                "user_received_account": "招商银行信用卡0403", "amount": {"total": 999, "refund": 500, "payer_total": 999,
                                                                    "payer_refund": 500}}
    body, headers = wx_notification(keys, resource, event_type="REFUND.SUCCESS")
    note = await gw.verify_notification(None, headers, body)  # type: ignore[arg-type]
    assert note.kind == "refund" and note.refund is not None
    assert (note.refund.out_refund_no, note.refund.state, note.refund.amount_fen, note.refund.gateway_refund_id) == (
        "RN8", "SUCCESS", 500, "50000")
    assert note.reference == "RN8" and note.out_trade_no == "PN8"


def test_credentials_report_what_is_missing(keys: WxKeys) -> None:
    assert WeChatCredentials.missing({}) == ["mchid", "appid", "merchant_serial_no", "private_key_pem", "apiv3_key",
                                             "platform_certs|public_key"]
    assert WeChatCredentials.missing(keys.config(certs=False)) == []
    assert WeChatCredentials.missing(keys.config(public_key=False)) == []


def test_certificate_bundles_split(keys: WxKeys) -> None:
    other = make_cert(keys.pub_key, 12345)
    assert split_certificates("junk\n" + keys.platform_cert_pem + "\n\n" + other) == [keys.platform_cert_pem, other]
