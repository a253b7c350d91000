"""WeChat Pay API v3 (微信支付 APIv3), direct-merchant mode, on ``cryptography`` and httpx.

What it does, following the official protocol:

* **Request signing.** Every call carries ``Authorization: WECHATPAY2-SHA256-RSA2048
  mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"`` where the signature is
  SHA256withRSA (PKCS#1 v1.5) with the merchant API private key over
  ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n`` (URL = path and query string).
* **Response and notification verification** on the raw bytes: SHA256withRSA over
  ``timestamp\\nnonce\\nbody\\n``, checked with the key named by ``Wechatpay-Serial``: a
  platform certificate (serial = the certificate's serial number in hex) or the WeChat Pay
  public key (serial = its ``PUB_KEY_ID_…``). Both may be configured at once, which is how a
  merchant switches from certificates to the public key without dropping notifications.
  The timestamp may differ from our clock by at most five minutes.
* **AEAD_AES_256_GCM** decryption of notification resources and downloaded certificates with
  the APIv3 key.
* JSAPI (公众号 / 小程序), H5 and Native prepay; ``wx.requestPayment`` parameters signed
  with the merchant key; order query and close; refunds and refund query; platform
  certificate download.

We do not use the ``wechatpayv3`` package; docs/decisions/0004-wechat-pay.md says why.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession

from siyu import __version__
from siyu.kit import clock
from siyu.payments.gateways.base import (
    MAX_SKEW_SECONDS,
    CreateRequest,
    GatewayError,
    GatewayNotConfigured,
    GatewayRefused,
    Notification,
    NotificationRejected,
    PrepayResult,
    RefundRequest,
    RefundState,
    TradeState,
)

WECHAT_API = "https://api.mch.weixin.qq.com"
AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
CHANNELS = ("jsapi", "h5", "native")
_PREPAY_PATHS = {"jsapi": "/v3/pay/transactions/jsapi", "h5": "/v3/pay/transactions/h5", "native": "/v3/pay/transactions/native"}
#: Error codes that mean "try again later" even when they come with a 4xx status.
_TRANSIENT_CODES = {"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "BANK_ERROR"}
_SHANGHAI = ZoneInfo("Asia/Shanghai")


# -- keys and primitives ---------------------------------------------------------------------------


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the merchant API key must be an RSA private key")
    if key.key_size < 2048:
        raise ValueError("the merchant API key must be at least 2048 bits")
    return key


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the WeChat Pay public key must be an RSA public key")
    return key


def load_certificate(pem: str) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(pem.encode())
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise ValueError("the platform certificate must carry an RSA key")
    return cert


def cert_serial(cert: x509.Certificate) -> str:
    """A certificate's serial as WeChat Pay writes it: upper-case hex."""
    return format(cert.serial_number, "X")


def normalize_serial(serial: str) -> str:
    """Compare serials as WeChat means them: hex case and leading zeros do not matter; a
    public key id is compared as it is."""
    serial = serial.strip()
    if serial.startswith(PUBLIC_KEY_ID_PREFIX):
        return serial
    return serial.upper().lstrip("0") or "0"


def split_certificates(bundle: str) -> list[str]:
    """Every ``-----BEGIN CERTIFICATE-----`` block of a pasted bundle."""
    out: list[str] = []
    marker_end = "-----END CERTIFICATE-----"
    rest = bundle
    while True:
        start = rest.find("-----BEGIN CERTIFICATE-----")
        if start < 0:
            break
        end = rest.find(marker_end, start)
        if end < 0:
            raise ValueError("a certificate is not terminated")
        out.append(rest[start:end + len(marker_end)] + "\n")
        rest = rest[end + len(marker_end):]
    return out


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def request_message(method: str, url: str, timestamp: str, nonce: str, body: str) -> bytes:
    """What a request signature covers: ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n``."""
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n{body}\n".encode()


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a response or notification signature covers: ``timestamp\\nnonce\\nbody\\n`` (raw body bytes)."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


def authorization(mchid: str, serial_no: str, private_key: rsa.RSAPrivateKey, method: str, url: str, body: str,
                  *, timestamp: str | None = None, nonce: str | None = None) -> str:
    """The ``Authorization`` header of one request."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    signature = rsa_sign(private_key, request_message(method, url, timestamp, nonce, body))
    return (f'{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def parse_authorization(header: str) -> dict[str, str]:
    """``WECHATPAY2-SHA256-RSA2048 k="v",...`` → {k: v} (for tests and diagnostics)."""
    scheme, _, rest = header.partition(" ")
    if scheme != AUTH_SCHEME:
        raise ValueError("not a WeChat Pay v3 authorization")
    out: dict[str, str] = {}
    for part in rest.split(","):
        k, _, v = part.strip().partition("=")
        out[k] = v.strip('"')
    return out


def aead_decrypt(apiv3_key: str, nonce: str, ciphertext_b64: str, associated_data: str) -> bytes:
    """AEAD_AES_256_GCM with the 32-byte APIv3 key; raises InvalidTag when anything was altered."""
    return AESGCM(apiv3_key.encode()).decrypt(nonce.encode(), base64.b64decode(ciphertext_b64),
                                              associated_data.encode() if associated_data else None)


def jsapi_pay_params(appid: str, prepay_id: str, private_key: rsa.RSAPrivateKey, *, timestamp: str | None = None,
                     nonce: str | None = None) -> dict[str, str]:
    """Parameters for ``wx.requestPayment`` (mini program) / ``WeixinJSBridge`` (公众号):
    paySign is SHA256withRSA over ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    package = f"prepay_id={prepay_id}"
    message = f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode()
    return {"appId": appid, "timeStamp": timestamp, "nonceStr": nonce, "package": package, "signType": "RSA",
            "paySign": rsa_sign(private_key, message)}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=_SHANGHAI)


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(_SHANGHAI).isoformat(timespec="seconds")


def _truncate_utf8(text: str, limit: int) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[:limit].decode(errors="ignore")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- credentials -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeChatCredentials:
    """One merchant's credentials, as stored in ``GatewayConfig.config`` for gateway ``wechat``."""

    mchid: str
    appid: str
    merchant_serial_no: str
    private_key_pem: str
    apiv3_key: str
    platform_certs: dict[str, str] = field(default_factory=dict)  # serial → PEM
    public_key_id: str | None = None
    public_key_pem: str | None = None
    channels: tuple[str, ...] = CHANNELS

    REQUIRED = ("mchid", "appid", "merchant_serial_no", "private_key_pem", "apiv3_key")

    @classmethod
    def missing(cls, cfg: Mapping[str, Any]) -> list[str]:
        """What a configuration still lacks before it can take payments."""
        out = [k for k in cls.REQUIRED if not cfg.get(k)]
        if not cfg.get("platform_certs") and not (cfg.get("public_key_id") and cfg.get("public_key_pem")):
            out.append("platform_certs|public_key")
        return out

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> WeChatCredentials:
        missing = cls.missing(cfg)
        if missing:
            raise GatewayNotConfigured("WeChat Pay is missing: " + ", ".join(missing))
        channels = tuple(c for c in (cfg.get("channels") or CHANNELS) if c in CHANNELS)
        return cls(
            mchid=str(cfg["mchid"]), appid=str(cfg["appid"]), merchant_serial_no=str(cfg["merchant_serial_no"]),
            private_key_pem=str(cfg["private_key_pem"]), apiv3_key=str(cfg["apiv3_key"]),
            platform_certs={str(k): str(v) for k, v in (cfg.get("platform_certs") or {}).items()},
            public_key_id=cfg.get("public_key_id") or None, public_key_pem=cfg.get("public_key_pem") or None,
            channels=channels,
        )


# -- the adapter ---------------------------------------------------------------------------------------


class WeChatPay:
    """The WeChat Pay gateway for one merchant. ``client`` is any ``httpx.AsyncClient``
    (tests pass one on ``httpx.MockTransport``); requests go to ``base_url``."""

    name = "wechat"

    def __init__(self, creds: WeChatCredentials, client: httpx.AsyncClient, *, notify_url: str,
                 tenant_id: int | None = None, base_url: str = WECHAT_API) -> None:
        self.creds = creds
        self.client = client
        self.notify_url = notify_url
        self.tenant_id = tenant_id
        self.base_url = base_url.rstrip("/")
        self.channels = creds.channels
        try:
            self._private_key = load_private_key(creds.private_key_pem)
        except ValueError as exc:
            raise GatewayNotConfigured(f"the merchant private key cannot be loaded: {exc}") from exc
        if len(creds.apiv3_key.encode()) != 32:
            raise GatewayNotConfigured("the APIv3 key must be 32 bytes")
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        for serial, pem in creds.platform_certs.items():
            try:
                key = load_certificate(pem).public_key()
            except ValueError:
                continue
            assert isinstance(key, rsa.RSAPublicKey)
            self._keys[normalize_serial(serial)] = key
        if creds.public_key_id and creds.public_key_pem:
            with contextlib.suppress(ValueError):
                self._keys[creds.public_key_id] = load_public_key(creds.public_key_pem)

    # -- signatures ---------------------------------------------------------------------------------

    def knows_serial(self, serial: str) -> bool:
        return normalize_serial(serial) in self._keys

    def check_signature(self, headers: Mapping[str, str], body: bytes, *, what: str = "notification") -> None:
        """Verify ``Wechatpay-*`` headers over the raw ``body``; raise NotificationRejected."""
        h = {k.lower(): v for k, v in headers.items()}
        timestamp = h.get("wechatpay-timestamp", "")
        nonce = h.get("wechatpay-nonce", "")
        signature = h.get("wechatpay-signature", "")
        serial = h.get("wechatpay-serial", "")
        if not (timestamp and nonce and signature and serial):
            raise NotificationRejected("missing_headers", f"the {what} lacks Wechatpay-Timestamp/Nonce/Signature/Serial",
                                       tenant_id=self.tenant_id)
        sig_type = h.get("wechatpay-signature-type")
        if sig_type and sig_type != AUTH_SCHEME:
            raise NotificationRejected("bad_signature", f"unsupported signature type {sig_type[:40]}", tenant_id=self.tenant_id)
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise NotificationRejected("stale", "the timestamp is not a Unix time", tenant_id=self.tenant_id)
        skew = abs(int(clock.now().timestamp()) - int(timestamp))
        if skew > MAX_SKEW_SECONDS:
            raise NotificationRejected("stale", f"the timestamp is {skew} s away from our clock (at most {MAX_SKEW_SECONDS})",
                                       tenant_id=self.tenant_id)
        key = self._keys.get(normalize_serial(serial))
        if key is None:
            raise NotificationRejected("unknown_serial", f"no platform certificate or public key {serial[:64]}",
                                       tenant_id=self.tenant_id)
        if not rsa_verify(key, response_message(timestamp, nonce, body), signature):
            raise NotificationRejected("bad_signature", f"the signature does not verify (forged or tampered {what})",
                                       tenant_id=self.tenant_id)

    def pay_params(self, prepay_id: str) -> dict[str, str]:
        return jsapi_pay_params(self.creds.appid, prepay_id, self._private_key)

    # -- HTTP -----------------------------------------------------------------------------------------

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None, *,
                    verify: bool = True) -> tuple[int, dict[str, Any]]:
        """Signed request; returns (status, JSON body) for 2xx and 404; raises otherwise."""
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")) if body is not None else ""
        headers = {
            "Authorization": authorization(self.creds.mchid, self.creds.merchant_serial_no, self._private_key,
                                           method, url, payload),
            "Accept": "application/json",
            "User-Agent": f"siyu/{__version__} (+https://siyu.dev)",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.creds.public_key_id:
            # Ask WeChat Pay to sign its answer with the public-key pair we can verify.
            headers["Wechatpay-Serial"] = self.creds.public_key_id
        try:
            resp = await self.client.request(method, self.base_url + url, content=payload.encode() if payload else None,
                                             headers=headers)
            raw = await resp.aread()
        except httpx.HTTPError as exc:
            raise GatewayError(f"WeChat Pay unreachable: {type(exc).__name__}: {exc}") from exc
        data: dict[str, Any] = {}
        if raw:
            try:
                parsed = json.loads(raw)
                data = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                data = {}
        if 200 <= resp.status_code < 300:
            if verify:
                try:
                    self.check_signature(resp.headers, raw, what="response")
                except NotificationRejected as exc:
                    raise GatewayError(f"WeChat Pay response failed verification: {exc}", code="bad_response") from exc
            return resp.status_code, data
        code = str(data.get("code") or f"HTTP_{resp.status_code}")
        message = str(data.get("message") or resp.reason_phrase or "")[:300]
        if resp.status_code == 404:
            return 404, data
        if resp.status_code >= 500 or resp.status_code == 429 or code in _TRANSIENT_CODES:
            raise GatewayError(f"WeChat Pay {resp.status_code} {code}: {message}", code=code)
        raise GatewayRefused(f"WeChat Pay {resp.status_code} {code}: {message}", code=code)

    # -- payments -------------------------------------------------------------------------------------

    async def create(self, session: AsyncSession, req: CreateRequest) -> PrepayResult:
        if req.channel not in _PREPAY_PATHS:
            raise GatewayRefused(f"WeChat Pay has no channel {req.channel}", code="PARAM_ERROR")
        body: dict[str, Any] = {
            "appid": self.creds.appid,
            "mchid": self.creds.mchid,
            "description": _truncate_utf8(req.description, 127),
            "out_trade_no": req.out_trade_no,
            "notify_url": self.notify_url,
            "amount": {"total": req.amount_fen, "currency": "CNY"},
        }
        if req.expires_at is not None:
            body["time_expire"] = _rfc3339(req.expires_at)
        if req.channel == "jsapi":
            if not req.payer_openid:
                raise GatewayRefused("JSAPI payments need the payer's openid", code="PARAM_ERROR")
            body["payer"] = {"openid": req.payer_openid}
        elif req.channel == "h5":
            body["scene_info"] = {"payer_client_ip": req.payer_client_ip or "127.0.0.1", "h5_info": {"type": "Wap"}}
        elif req.payer_client_ip:
            body["scene_info"] = {"payer_client_ip": req.payer_client_ip}
        status, data = await self._call("POST", _PREPAY_PATHS[req.channel], body)
        if status == 404:
            raise GatewayRefused("WeChat Pay answered 404 to a prepay request", code="NOT_FOUND")
        if req.channel == "jsapi":
            prepay_id = data.get("prepay_id")
            if not isinstance(prepay_id, str) or not prepay_id:
                raise GatewayError("WeChat Pay returned no prepay_id", code="bad_response")
            return PrepayResult(pay_params=self.pay_params(prepay_id))
        if req.channel == "h5":
            h5_url = data.get("h5_url")
            if not isinstance(h5_url, str) or not h5_url:
                raise GatewayError("WeChat Pay returned no h5_url", code="bad_response")
            if req.return_url:
                h5_url += ("&" if "?" in h5_url else "?") + "redirect_url=" + quote(req.return_url, safe="")
            return PrepayResult(pay_url=h5_url)
        code_url = data.get("code_url")
        if not isinstance(code_url, str) or not code_url:
            raise GatewayError("WeChat Pay returned no code_url", code="bad_response")
        return PrepayResult(code_url=code_url)

    def _trade_state(self, out_trade_no: str, data: Mapping[str, Any]) -> TradeState:
        amount = data.get("amount") if isinstance(data.get("amount"), dict) else {}
        payer = data.get("payer") if isinstance(data.get("payer"), dict) else {}
        assert isinstance(amount, dict) and isinstance(payer, dict)
        return TradeState(
            out_trade_no=str(data.get("out_trade_no") or out_trade_no),
            state=str(data.get("trade_state") or "NOTPAY"),
            transaction_id=str(data["transaction_id"]) if data.get("transaction_id") else None,
            amount_fen=_int(amount.get("total")),
            paid_at=_parse_time(data.get("success_time")),
            payer_openid=str(payer["openid"]) if payer.get("openid") else None,
            appid=str(data["appid"]) if data.get("appid") else None,
            mchid=str(data["mchid"]) if data.get("mchid") else None,
        )

    async def query(self, session: AsyncSession, out_trade_no: str) -> TradeState:
        url = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}?mchid={quote(self.creds.mchid, safe='')}"
        status, data = await self._call("GET", url)
        if status == 404:
            return TradeState(out_trade_no=out_trade_no, state="NOT_FOUND")
        state = self._trade_state(out_trade_no, data)
        if state.mchid and state.mchid != self.creds.mchid:
            raise GatewayError("WeChat Pay answered about another merchant", code="bad_response")
        return state

    async def close(self, session: AsyncSession, out_trade_no: str) -> TradeState:
        url = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close"
        with contextlib.suppress(GatewayRefused):  # already paid or closed: the query below tells which
            await self._call("POST", url, {"mchid": self.creds.mchid})
        return await self.query(session, out_trade_no)

    # -- refunds ----------------------------------------------------------------------------------------

    def _refund_state(self, out_refund_no: str, data: Mapping[str, Any]) -> RefundState:
        amount = data.get("amount") if isinstance(data.get("amount"), dict) else {}
        assert isinstance(amount, dict)
        return RefundState(
            out_refund_no=str(data.get("out_refund_no") or out_refund_no),
            state=str(data.get("status") or data.get("refund_status") or "PROCESSING"),
            gateway_refund_id=str(data["refund_id"]) if data.get("refund_id") else None,
            amount_fen=_int(amount.get("refund")),
            out_trade_no=str(data["out_trade_no"]) if data.get("out_trade_no") else None,
            succeeded_at=_parse_time(data.get("success_time")),
            mchid=str(data["mchid"]) if data.get("mchid") else None,
        )

    async def refund(self, session: AsyncSession, req: RefundRequest) -> RefundState:
        body: dict[str, Any] = {
            "out_refund_no": req.out_refund_no,
            "notify_url": self.notify_url,
            "amount": {"refund": req.amount_fen, "total": req.total_fen, "currency": "CNY"},
        }
        if req.transaction_id:
            body["transaction_id"] = req.transaction_id
        else:
            body["out_trade_no"] = req.out_trade_no
        if req.reason:
            body["reason"] = _truncate_utf8(req.reason, 80)
        status, data = await self._call("POST", "/v3/refund/domestic/refunds", body)
        if status == 404:
            raise GatewayRefused("WeChat Pay does not know the order to refund", code="ORDER_NOT_EXIST")
        return self._refund_state(req.out_refund_no, data)

    async def query_refund(self, session: AsyncSession, out_refund_no: str) -> RefundState:
        status, data = await self._call("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}")
        if status == 404:
            return RefundState(out_refund_no=out_refund_no, state="NOT_FOUND")
        return self._refund_state(out_refund_no, data)

    # -- platform certificates ------------------------------------------------------------------------

    async def download_certificates(self) -> dict[str, str]:
        """``GET /v3/certificates``: the platform certificates, decrypted with the APIv3 key.

        The answer is not signature-checked (we may not hold a certificate yet); the AEAD
        decryption with the APIv3 key, which only WeChat Pay and the merchant know, is what
        proves the certificates genuine.
        """
        status, data = await self._call("GET", "/v3/certificates", verify=False)
        items = data.get("data") if status == 200 else None
        if not isinstance(items, list):
            raise GatewayError("WeChat Pay returned no certificates", code="bad_response")
        out: dict[str, str] = {}
        for item in items:
            enc = item.get("encrypt_certificate") if isinstance(item, dict) else None
            if not isinstance(enc, dict) or enc.get("algorithm") != "AEAD_AES_256_GCM":
                continue
            try:
                pem = aead_decrypt(self.creds.apiv3_key, str(enc.get("nonce", "")), str(enc.get("ciphertext", "")),
                                   str(enc.get("associated_data", ""))).decode()
                cert = load_certificate(pem)
            except (InvalidTag, ValueError) as exc:
                raise GatewayError(f"a downloaded certificate does not decrypt with the APIv3 key: {exc}",
                                   code="bad_response") from exc
            out[cert_serial(cert)] = pem
        if not out:
            raise GatewayError("WeChat Pay returned no usable certificate", code="bad_response")
        return out

    # -- notifications ------------------------------------------------------------------------------

    async def verify_notification(self, session: AsyncSession, headers: Mapping[str, str], raw_body: bytes) -> Notification:
        self.check_signature(headers, raw_body)
        tid = self.tenant_id
        try:
            data = json.loads(raw_body)
        except ValueError:
            raise NotificationRejected("malformed", "the body is not JSON", tenant_id=tid) from None
        if not isinstance(data, dict):
            raise NotificationRejected("malformed", "the body is not a JSON object", tenant_id=tid)
        nid = data.get("id")
        event_type = data.get("event_type")
        resource = data.get("resource")
        if not isinstance(nid, str) or not nid or len(nid) > 100 or not isinstance(event_type, str) or not isinstance(resource, dict):
            raise NotificationRejected("malformed", "id, event_type or resource is missing", tenant_id=tid)
        event_type = event_type[:60]
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise NotificationRejected("malformed", "the resource is not AEAD_AES_256_GCM", tenant_id=tid,
                                       notification_id=nid, event_type=event_type)
        try:
            plain = aead_decrypt(self.creds.apiv3_key, str(resource.get("nonce", "")), str(resource.get("ciphertext", "")),
                                 str(resource.get("associated_data") or ""))
            obj = json.loads(plain)
        except (InvalidTag, ValueError, TypeError):
            raise NotificationRejected("decrypt_failed", "the resource does not decrypt with the APIv3 key",
                                       tenant_id=tid, notification_id=nid, event_type=event_type) from None
        if not isinstance(obj, dict):
            raise NotificationRejected("malformed", "the decrypted resource is not an object", tenant_id=tid,
                                       notification_id=nid, event_type=event_type)
        out_trade_no = str(obj.get("out_trade_no") or "")[:64]
        if str(obj.get("mchid") or "") != self.creds.mchid:
            raise NotificationRejected("wrong_mchid", f"mchid {str(obj.get('mchid'))[:20]} is not ours", tenant_id=tid,
                                       notification_id=nid, event_type=event_type, reference=out_trade_no or None)
        if event_type.startswith("TRANSACTION."):
            if str(obj.get("appid") or "") != self.creds.appid:
                raise NotificationRejected("wrong_appid", f"appid {str(obj.get('appid'))[:32]} is not ours", tenant_id=tid,
                                           notification_id=nid, event_type=event_type, reference=out_trade_no or None)
            trade = self._trade_state(out_trade_no, obj)
            if not trade.out_trade_no:
                raise NotificationRejected("malformed", "out_trade_no is missing", tenant_id=tid, notification_id=nid,
                                           event_type=event_type)
            return Notification(gateway=self.name, notification_id=nid, event_type=event_type, kind="payment",
                                out_trade_no=trade.out_trade_no, trade=trade, tenant_id=tid)
        if event_type.startswith("REFUND."):
            refund = self._refund_state(str(obj.get("out_refund_no") or ""), obj)
            if not refund.out_refund_no or not out_trade_no:
                raise NotificationRejected("malformed", "out_refund_no or out_trade_no is missing", tenant_id=tid,
                                           notification_id=nid, event_type=event_type)
            return Notification(gateway=self.name, notification_id=nid, event_type=event_type, kind="refund",
                                out_trade_no=out_trade_no, refund=refund, tenant_id=tid)
        raise NotificationRejected("unsupported_event", f"event type {event_type} is not handled", tenant_id=tid,
                                   notification_id=nid, event_type=event_type)
