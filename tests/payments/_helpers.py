"""Helpers of the payments tests: payments made through the service, signed sandbox
notifications, generated WeChat Pay keys and certificates, and a fake WeChat Pay server on
``httpx.MockTransport`` that checks our request signatures and signs its answers."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from siyu.kit import clock
from siyu.kit.outbox import OutboxEvent
from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope
from siyu.payments import service
from siyu.payments.gateways import sandbox as sandbox_gw
from siyu.payments.gateways.wechat import (
    PUBLIC_KEY_ID_PREFIX,
    parse_authorization,
    request_message,
    response_message,
)
from siyu.payments.models import GatewayNotification, Payment, PaymentTransition, Refund
from tests.conftest import TenantInfo, unique

# -- reading state ---------------------------------------------------------------------------------


def scope(t: TenantInfo) -> TenantScope:
    return TenantScope(id=t.id, code=t.code)


async def payment(runtime: Runtime, payment_id: int) -> Payment:
    async with runtime.db.uow(readonly=True) as s:
        p = (await s.execute(select(Payment).where(Payment.id == payment_id))).scalar_one()
        s.expunge(p)
        return p


async def refund_row(runtime: Runtime, refund_id: int) -> Refund:
    async with runtime.db.uow(readonly=True) as s:
        r = (await s.execute(select(Refund).where(Refund.id == refund_id))).scalar_one()
        s.expunge(r)
        return r


async def transitions(runtime: Runtime, payment_id: int) -> list[tuple[str, str, str]]:
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(PaymentTransition.from_status, PaymentTransition.to_status, PaymentTransition.cause)
                                .where(PaymentTransition.payment_id == payment_id).order_by(PaymentTransition.id))).all()
    return [(a, b, c) for a, b, c in rows]


async def events(runtime: Runtime, tenant_id: int, topic: str, **match: Any) -> list[dict[str, Any]]:
    """Outbox events of ``topic`` for a tenant whose payload has the ``match`` values."""
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OutboxEvent.payload).where(OutboxEvent.tenant_id == tenant_id,
                                                                  OutboxEvent.topic == topic))).scalars().all()
    return [dict(p) for p in rows if all(p.get(k) == v for k, v in match.items())]


async def notifications(runtime: Runtime, reference: str) -> list[GatewayNotification]:
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(GatewayNotification).where(GatewayNotification.reference == reference)
                                .order_by(GatewayNotification.id))).scalars().all()
        for r in rows:
            s.expunge(r)
    return list(rows)


async def outcomes(runtime: Runtime, reference: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in await notifications(runtime, reference):
        out[n.outcome] = out.get(n.outcome, 0) + 1
    return out


async def notification_count(runtime: Runtime) -> int:
    async with runtime.db.uow(readonly=True) as s:
        return int((await s.execute(select(func.count()).select_from(GatewayNotification))).scalar_one())


async def sandbox_deliveries(runtime: Runtime, reference: str) -> list[bytes]:
    """The bodies the sandbox queued for delivery about ``reference`` (first attempts only)."""
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OutboxEvent.payload).where(OutboxEvent.topic == sandbox_gw.NOTIFY_TOPIC)
                                .order_by(OutboxEvent.id))).scalars().all()
    return [str(p["body"]).encode() for p in rows if reference in str(p["body"]) and p.get("attempt") == 1]


# -- acting ----------------------------------------------------------------------------------------


async def new_payment(runtime: Runtime, t: TenantInfo, amount_fen: int = 1234, *, source_type: str = "testorder",
                      source_id: str | None = None, channel: str = "sandbox", **kw: Any) -> service.PaymentStart:
    async with runtime.db.uow() as s:
        return await service.create_payment(s, scope(t), source_type=source_type, source_id=source_id or unique("o"),
                                            amount_fen=amount_fen, description=kw.pop("description", "测试订单"),
                                            channel=channel, **kw)


async def sandbox_choose(runtime: Runtime, out_trade_no: str, outcome: str = "pay") -> None:
    async with runtime.db.uow() as s:
        await sandbox_gw.choose_outcome(s, out_trade_no, outcome)


async def paid_payment(runtime: Runtime, t: TenantInfo, amount_fen: int = 1000, **kw: Any) -> Payment:
    """A succeeded sandbox payment (paid on the cashier, notification delivered)."""
    from tests.conftest import drain_outbox

    start = await new_payment(runtime, t, amount_fen, **kw)
    await sandbox_choose(runtime, start.payment.out_trade_no)
    await drain_outbox(runtime)
    p = await payment(runtime, start.payment.id)
    assert p.status == "succeeded", p.status
    return p


async def do_refund(runtime: Runtime, t: TenantInfo, payment_id: int, amount_fen: int, *,
                    out_refund_no: str | None = None, reason: str | None = "七天无理由") -> Refund:
    async with runtime.db.uow() as s:
        return await service.refund(s, scope(t), payment_id=payment_id, amount_fen=amount_fen,
                                    out_refund_no=out_refund_no or unique("R"), reason=reason,
                                    source_type="aftersale", source_id=unique("as"))


def sandbox_body(out_trade_no: str, amount_fen: int, *, state: str = "SUCCESS", nid: str | None = None,
                 transaction_id: str = "SBXT-TEST") -> bytes:
    body = {"id": nid or unique("SBXN"), "create_time": clock.now().isoformat(), "event_type": f"TRANSACTION.{state}",
            "resource_type": "plain",
            "resource": {"out_trade_no": out_trade_no, "transaction_id": transaction_id, "trade_state": state,
                         "success_time": clock.now().isoformat(timespec="seconds"),
                         "amount": {"total": amount_fen, "currency": "CNY"}}}
    return json.dumps(body, separators=(",", ":")).encode()


def sandbox_headers(runtime: Runtime, body: bytes, *, timestamp: int | None = None, key: bytes | None = None) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(clock.now().timestamp()))
    return sandbox_gw.signed_headers(key or sandbox_gw.sandbox_key(runtime.secret_key), body, timestamp=ts)


async def post_notification(client: httpx.AsyncClient, gateway: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post(f"/api/pay/notify/{gateway}", content=body, headers=headers)


# -- WeChat Pay keys --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WxKeys:
    merchant_key: rsa.RSAPrivateKey
    merchant_pem: str
    merchant_serial: str
    platform_key: rsa.RSAPrivateKey
    platform_cert_pem: str
    platform_serial: str
    pub_key: rsa.RSAPrivateKey  # the WeChat Pay public key's private half (WeChat's secret)
    pub_key_pem: str
    pub_key_id: str
    apiv3_key: str
    mchid: str = "1900000109"
    appid: str = "wx8888888888888888"

    def config(self, *, certs: bool = True, public_key: bool = True, **extra: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {"mchid": self.mchid, "appid": self.appid, "merchant_serial_no": self.merchant_serial,
                                "private_key_pem": self.merchant_pem, "apiv3_key": self.apiv3_key,
                                "channels": ["jsapi", "h5", "native"]}
        conf["platform_certs"] = {self.platform_serial: self.platform_cert_pem} if certs else {}
        if public_key:
            conf.update(public_key_id=self.pub_key_id, public_key_pem=self.pub_key_pem)
        conf.update(extra)
        return conf


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_public(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def make_cert(key: rsa.RSAPrivateKey, serial: int, *, cn: str = "Tenpay.com Root CA", days: int = 365) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenpay")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@lru_cache(maxsize=1)
def wx_keys() -> WxKeys:
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    platform = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    serial = 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1
    return WxKeys(
        merchant_key=merchant, merchant_pem=_pem_private(merchant), merchant_serial="444F4864EA9B34415A1B2C3D4E5F60718293A4B5",
        platform_key=platform, platform_cert_pem=make_cert(platform, serial), platform_serial=format(serial, "X"),
        pub_key=pub, pub_key_pem=_pem_public(pub.public_key()), pub_key_id=PUBLIC_KEY_ID_PREFIX + "0114232019" + "2024101100",
        apiv3_key="Abcdefghijklmnopqrstuvwxyz012345",
    )


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def wx_signed_headers(keys: WxKeys, body: bytes, *, mode: str = "pubkey", timestamp: int | None = None,
                      nonce: str | None = None, signer: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
    """Headers WeChat Pay puts on a notification or response: signed with the platform
    certificate's key (mode "cert") or the WeChat Pay public key's (mode "pubkey")."""
    ts = str(timestamp if timestamp is not None else int(clock.now().timestamp()))
    nonce = nonce or secrets.token_hex(16)
    if mode == "cert":
        key, serial = keys.platform_key, keys.platform_serial
    else:
        key, serial = keys.pub_key, keys.pub_key_id
    return {"Content-Type": "application/json", "Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Wechatpay-Signature": rsa_sign(signer or key, response_message(ts, nonce, body))}


def encrypt_resource(apiv3_key: str, obj: dict[str, Any], *, associated_data: str = "transaction",
                     original_type: str = "transaction") -> dict[str, str]:
    nonce = secrets.token_hex(6)
    ct = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), json.dumps(obj).encode(), associated_data.encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ct).decode(), "associated_data": associated_data,
            "original_type": original_type, "nonce": nonce}


def wx_transaction(keys: WxKeys, out_trade_no: str, amount_fen: int, *, state: str = "SUCCESS", **over: Any) -> dict[str, Any]:
    obj = {"appid": keys.appid, "mchid": keys.mchid, "out_trade_no": out_trade_no, "transaction_id": "4200000" + unique("")[:15],
           "trade_type": "JSAPI", "trade_state": state, "trade_state_desc": "支付成功", "bank_type": "CMC", "attach": "",
           "success_time": clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds"),
           "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
           "amount": {"total": amount_fen, "payer_total": amount_fen, "currency": "CNY", "payer_currency": "CNY"}}
    obj.update(over)
    return obj


def wx_notification(keys: WxKeys, resource_obj: dict[str, Any], *, event_type: str = "TRANSACTION.SUCCESS",
                    mode: str = "pubkey", nid: str | None = None, apiv3_key: str | None = None,
                    timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    original = "refund" if event_type.startswith("REFUND") else "transaction"
    body = {"id": nid or ("EV-" + unique("")), "create_time": clock.now().isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource", "event_type": event_type, "summary": "支付成功",
            "resource": encrypt_resource(apiv3_key or keys.apiv3_key, resource_obj, associated_data=original,
                                         original_type=original)}
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return raw, wx_signed_headers(keys, raw, mode=mode, timestamp=timestamp)


# -- a fake WeChat Pay ----------------------------------------------------------------------------------


@dataclass
class FakeWeChat:
    """WeChat Pay's API as far as we use it. Every request must carry a valid merchant
    signature; every answer is signed like WeChat Pay's (public-key mode when the request
    names the public key id in ``Wechatpay-Serial``, else the platform certificate)."""

    keys: WxKeys
    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_with: int | None = None
    sign_responses: bool = True

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

    def pay(self, out_trade_no: str) -> None:
        o = self.orders[out_trade_no]
        o.update(trade_state="SUCCESS", transaction_id="4200" + unique("")[:16],
                 success_time=clock.now().isoformat(timespec="seconds"))

    def _answer(self, request: httpx.Request, status: int, data: dict[str, Any] | None) -> httpx.Response:
        raw = json.dumps(data, separators=(",", ":")).encode() if data is not None else b""
        headers: dict[str, str] = {}
        if self.sign_responses and status < 300:
            mode = "pubkey" if request.headers.get("wechatpay-serial") == self.keys.pub_key_id else "cert"
            headers = wx_signed_headers(self.keys, raw, mode=mode)
        elif data is not None:
            headers = {"Content-Type": "application/json"}
        return httpx.Response(status, content=raw, headers=headers)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = urlsplit(str(request.url))
        path_q = url.path + (f"?{url.query}" if url.query else "")
        auth = parse_authorization(request.headers["authorization"])
        body = request.content.decode()
        message = request_message(request.method, path_q, auth["timestamp"], auth["nonce_str"], body)
        self.keys.merchant_key.public_key().verify(base64.b64decode(auth["signature"]), message, padding.PKCS1v15(),
                                                   hashes.SHA256())
        assert auth["mchid"] == self.keys.mchid and auth["serial_no"] == self.keys.merchant_serial
        data = json.loads(body) if body else {}
        self.bodies.append(data)
        if self.fail_with:
            return httpx.Response(self.fail_with, json={"code": "SYSTEM_ERROR", "message": "系统错误"})
        p = url.path
        if request.method == "POST" and p.startswith("/v3/pay/transactions/") and p.count("/") == 4:
            kind = p.rsplit("/", 1)[1]
            self.orders.setdefault(data["out_trade_no"], {
                "appid": data["appid"], "mchid": data["mchid"], "out_trade_no": data["out_trade_no"], "trade_state": "NOTPAY",
                "amount": {"total": data["amount"]["total"], "payer_total": data["amount"]["total"], "currency": "CNY"},
                "trade_type": kind.upper(),
            })
            if kind == "jsapi":
                return self._answer(request, 200, {"prepay_id": "wx201410272009395522657a690389285100"})
            if kind == "h5":
                return self._answer(request, 200, {"h5_url": "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016&package=1"})
            return self._answer(request, 200, {"code_url": "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"})
        if p.startswith("/v3/pay/transactions/out-trade-no/"):
            no = p.split("/")[5]
            if p.endswith("/close"):
                o = self.orders.get(no)
                if o is None:
                    return self._answer(request, 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
                if o["trade_state"] == "NOTPAY":
                    o["trade_state"] = "CLOSED"
                return self._answer(request, 204, None)
            assert parse_qs(url.query).get("mchid") == [self.keys.mchid]
            o = self.orders.get(no)
            if o is None:
                return httpx.Response(404, json={"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
            return self._answer(request, 200, o)
        if request.method == "POST" and p == "/v3/refund/domestic/refunds":
            r = self.refunds.setdefault(data["out_refund_no"], {
                "refund_id": "50000" + unique("")[:15], "out_refund_no": data["out_refund_no"],
                "transaction_id": data.get("transaction_id"), "out_trade_no": data.get("out_trade_no"),
                "status": "PROCESSING", "amount": {"refund": data["amount"]["refund"], "total": data["amount"]["total"]},
            })
            return self._answer(request, 200, r)
        if p.startswith("/v3/refund/domestic/refunds/"):
            r = self.refunds.get(p.rsplit("/", 1)[1])
            if r is None:
                return httpx.Response(404, json={"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"})
            return self._answer(request, 200, r)
        if p == "/v3/certificates":
            enc = encrypt_resource(self.keys.apiv3_key, {}, associated_data="certificate")
            nonce = enc["nonce"]
            ct = AESGCM(self.keys.apiv3_key.encode()).encrypt(nonce.encode(), self.keys.platform_cert_pem.encode(),
                                                              b"certificate")
            return self._answer(request, 200, {"data": [{
                "serial_no": self.keys.platform_serial, "effective_time": "2024-01-01T00:00:00+08:00",
                "expire_time": "2029-01-01T00:00:00+08:00",
                "encrypt_certificate": {"algorithm": "AEAD_AES_256_GCM", "nonce": nonce, "associated_data": "certificate",
                                        "ciphertext": base64.b64encode(ct).decode()},
            }]})
        return httpx.Response(404, json={"code": "NOT_FOUND", "message": "no such API"})
