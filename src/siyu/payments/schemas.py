"""Input and output shapes of the payments module, per audience.

Gateway secrets (the merchant private key, the APIv3 key) are write-only: inputs accept
them, no output carries them — outputs say only whether they are set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from siyu.payments.gateways.wechat import (
    load_certificate,
    load_private_key,
    load_public_key,
    split_certificates,
)

PaymentStatus = Literal["pending", "succeeded", "failed", "closed"]
RefundStatus = Literal["pending", "succeeded", "failed"]
Outcome = Literal["processed", "duplicate", "rejected", "ignored"]


# -- outputs ---------------------------------------------------------------------------------------


class PaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    out_trade_no: str = Field(description="Our order number at the gateway (unique)")
    source_type: str = Field(description="What is being paid, e.g. order")
    source_id: str
    amount_fen: int = Field(description="Amount in fen (1 yuan = 100 fen)")
    refunded_fen: int = Field(description="Refunded or being refunded, in fen")
    currency: str
    gateway: str = Field(description="sandbox | wechat")
    channel: str = Field(description="sandbox | jsapi | h5 | native")
    description: str
    status: PaymentStatus
    transaction_id: str | None = Field(description="The gateway's transaction id once paid")
    payer_openid: str | None
    expires_at: datetime | None
    paid_at: datetime | None
    last_queried_at: datetime | None = Field(description="When the query fallback last asked the gateway")
    created_at: datetime
    updated_at: datetime


class TransitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: str
    to_status: str
    cause: str = Field(description="created | notification | query | timeout | user_cancel | superseded ...")
    created_at: datetime


class RefundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    payment_id: int
    out_refund_no: str
    amount_fen: int
    reason: str | None
    source_type: str = Field(description="What asked for the refund, e.g. aftersale")
    source_id: str
    status: RefundStatus
    gateway_refund_id: str | None
    created_at: datetime
    succeeded_at: datetime | None


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    gateway: str
    notification_id: str = Field(description="The gateway's id; rejected and replayed ones get a local id")
    event_type: str | None
    reference: str | None = Field(description="out_trade_no or out_refund_no")
    outcome: Outcome
    reason: str | None
    headers: dict[str, Any]
    body: str = Field(description="The raw body as received (WeChat Pay's resource stays encrypted)")
    received_at: datetime


class PaymentDetailOut(PaymentOut):
    transitions: list[TransitionOut]
    refunds: list[RefundOut]
    notifications: list[NotificationOut]


class StorePaymentOut(BaseModel):
    """What a paying shopper may see of their own payment."""

    out_trade_no: str
    status: PaymentStatus
    amount_fen: int
    channel: str
    source_type: str
    source_id: str
    expires_at: datetime | None
    paid_at: datetime | None


class PaymentStartOut(BaseModel):
    """What a checkout answers so the payer's client can pay (for the modules that create
    payments; exactly one of pay_url, code_url, pay_params is set)."""

    payment_id: int
    out_trade_no: str
    status: PaymentStatus
    amount_fen: int
    channel: str
    expires_at: datetime | None
    pay_url: str | None = Field(default=None, description="Open this page (sandbox cashier, WeChat H5)")
    code_url: str | None = Field(default=None, description="Show as a QR code (WeChat Native)")
    pay_params: dict[str, str] | None = Field(default=None, description="Pass to wx.requestPayment (WeChat JSAPI)")
    reused: bool = False

    @classmethod
    def of(cls, start: Any) -> PaymentStartOut:
        p = start.payment
        return cls(payment_id=p.id, out_trade_no=p.out_trade_no, status=p.status, amount_fen=p.amount_fen, channel=p.channel,
                   expires_at=p.expires_at, pay_url=start.pay_url, code_url=start.code_url, pay_params=start.pay_params,
                   reused=start.reused)


class SandboxSettingsOut(BaseModel):
    enabled: bool
    explicit: bool = Field(description="False while the default applies (on, except in production)")
    notify_url: str
    production: bool


class CertificateInfo(BaseModel):
    serial: str
    not_before: datetime | None
    not_after: datetime | None


class WechatSettingsOut(BaseModel):
    enabled: bool
    mchid: str | None
    appid: str | None
    merchant_serial_no: str | None
    private_key_set: bool = Field(description="The merchant API private key is stored (never shown)")
    apiv3_key_set: bool = Field(description="The APIv3 key is stored (never shown)")
    platform_certificates: list[CertificateInfo]
    public_key_id: str | None
    public_key_set: bool
    channels: list[str]
    missing: list[str] = Field(description="What is still needed before WeChat Pay can be enabled")
    notify_url: str = Field(description="Where WeChat Pay sends notifications (must be https)")
    updated_at: datetime | None


class GatewaySettingsOut(BaseModel):
    sandbox: SandboxSettingsOut
    wechat: WechatSettingsOut


# -- inputs ----------------------------------------------------------------------------------------


def _private_key(v: str | None) -> str | None:
    if not v:
        return v
    try:
        load_private_key(v.strip())
    except Exception as exc:
        raise ValueError(f"not a usable RSA private key in PEM: {exc}") from None
    return v.strip() + "\n"


def _public_key(v: str | None) -> str | None:
    if not v:
        return v
    try:
        load_public_key(v.strip())
    except Exception as exc:
        raise ValueError(f"not an RSA public key in PEM: {exc}") from None
    return v.strip() + "\n"


def _certificates(v: list[str] | None) -> list[str] | None:
    if v is None:
        return None
    out: list[str] = []
    for item in v:
        try:
            pems = split_certificates(item)
            if not pems:
                raise ValueError("no -----BEGIN CERTIFICATE----- block")
            for pem in pems:
                load_certificate(pem)
        except Exception as exc:
            raise ValueError(f"not a PEM certificate: {exc}") from None
        out.extend(pems)
    if len(out) > 10:
        raise ValueError("at most 10 platform certificates")
    return out


PEM = Annotated[str, StringConstraints(max_length=12000)]
PrivateKeyPem = Annotated[PEM | None, AfterValidator(_private_key)]
PublicKeyPem = Annotated[PEM | None, AfterValidator(_public_key)]
Certificates = Annotated[list[PEM] | None, Field(max_length=10), AfterValidator(_certificates)]


class SandboxConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": True}]})

    enabled: bool


class WechatConfigIn(BaseModel):
    """WeChat Pay credentials. A field left out keeps its stored value; ``""`` clears an
    optional one. The private key and APIv3 key are write-only."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "enabled": False, "mchid": "1900000109", "appid": "wx8888888888888888",
        "merchant_serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", "channels": ["jsapi", "native"],
    }]})

    enabled: bool | None = Field(default=None, description="Offer WeChat Pay for new payments (needs complete credentials)")
    mchid: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,20}$")] | None = Field(default=None, description="商户号")
    appid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{4,40}$")] | None = Field(
        default=None, description="The AppID bound to the merchant (mini program or official account)")
    merchant_serial_no: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{6,64}$")] | None = Field(
        default=None, description="Serial number of the merchant API certificate")
    private_key_pem: PrivateKeyPem = Field(default=None, description="apiclient_key.pem (write-only)")
    apiv3_key: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{32}$")] | None = Field(
        default=None, description="The 32-character APIv3 key (write-only)")
    platform_certificates: Certificates = Field(
        default=None, description="Platform certificates in PEM; replaces the stored set ([] removes all)")
    add_platform_certificates: Certificates = Field(default=None, description="Platform certificates to add")
    remove_platform_certificates: list[Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{1,64}$")]] | None = Field(
        default=None, max_length=10, description="Serials of platform certificates to remove")
    public_key_id: Annotated[str, StringConstraints(pattern=r"^(|PUB_KEY_ID_[0-9A-Za-z_]{1,80})$")] | None = Field(
        default=None, description="WeChat Pay public key id, PUB_KEY_ID_…")
    public_key_pem: PublicKeyPem = Field(default=None, description="WeChat Pay public key in PEM")
    channels: list[Literal["jsapi", "h5", "native"]] | None = Field(default=None, max_length=3)

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)
