"""The gateway interface every payment adapter implements, and the values it trades in.

A gateway is the remote side of a payment: it takes our order (``create``), tells us what
became of it (``query``, and asynchronous notifications that ``verify_notification`` turns
into a :class:`Notification` after checking them on the raw body), closes it, refunds it and
reports on refunds. Adapters speak the gateway's protocol and nothing else: no business
rules, no writes to our tables. The payments service decides what a state means for us.

Methods take the caller's session because the sandbox keeps its books in the same database;
the WeChat Pay adapter ignores it and talks HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

#: Trade states as gateways report them (WeChat Pay's vocabulary; the sandbox uses the same).
#: ``NOT_FOUND`` is ours: the gateway has never heard of the order.
TRADE_STATES = ("SUCCESS", "REFUND", "NOTPAY", "USERPAYING", "CLOSED", "REVOKED", "PAYERROR", "NOT_FOUND")
#: Refund states (WeChat Pay's vocabulary) plus our ``NOT_FOUND``.
REFUND_STATES = ("SUCCESS", "PROCESSING", "CLOSED", "ABNORMAL", "NOT_FOUND")
#: Maximum clock difference accepted between a signed notification and us.
MAX_SKEW_SECONDS = 300


@dataclass(frozen=True, slots=True)
class CreateRequest:
    out_trade_no: str
    amount_fen: int
    description: str
    channel: str  # sandbox | jsapi | h5 | native
    notify_url: str
    expires_at: datetime | None = None
    payer_openid: str | None = None
    payer_client_ip: str | None = None
    return_url: str | None = None


@dataclass(frozen=True, slots=True)
class PrepayResult:
    """What the payer's client needs to pay: one of a URL to open, a QR code URL, or
    parameters for ``wx.requestPayment`` / ``WeixinJSBridge``."""

    pay_url: str | None = None
    code_url: str | None = None
    pay_params: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class TradeState:
    out_trade_no: str
    state: str  # one of TRADE_STATES
    transaction_id: str | None = None
    amount_fen: int | None = None
    paid_at: datetime | None = None
    payer_openid: str | None = None
    appid: str | None = None
    mchid: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RefundRequest:
    out_trade_no: str
    transaction_id: str | None
    out_refund_no: str
    amount_fen: int
    total_fen: int
    reason: str | None
    notify_url: str


@dataclass(frozen=True, slots=True)
class RefundState:
    out_refund_no: str
    state: str  # one of REFUND_STATES
    gateway_refund_id: str | None = None
    amount_fen: int | None = None
    out_trade_no: str | None = None
    succeeded_at: datetime | None = None
    mchid: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification that passed signature, freshness and decryption checks. Whether it
    names a payment we know, with the right amount, is the service's question."""

    gateway: str
    notification_id: str
    event_type: str
    kind: str  # payment | refund
    out_trade_no: str
    trade: TradeState | None = None
    refund: RefundState | None = None
    #: The tenant whose credentials verified it (WeChat); None when one key serves all (sandbox).
    tenant_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        if self.refund is not None:
            return self.refund.out_refund_no
        return self.out_trade_no


class NotificationRejected(Exception):
    """A notification we refuse. ``reason`` is a stable code, ``detail`` says what was wrong.

    Reasons: ``missing_headers``, ``stale``, ``unknown_serial``, ``bad_signature`` (forged or
    tampered), ``malformed``, ``decrypt_failed``, ``wrong_mchid``, ``wrong_appid``,
    ``unknown_trade``, ``wrong_amount``, ``unsupported_event``, ``too_large``.
    """

    STATUS: ClassVar[dict[str, int]] = {
        "missing_headers": 401, "stale": 401, "unknown_serial": 401, "bad_signature": 401,
        "malformed": 400, "decrypt_failed": 400, "wrong_mchid": 400, "wrong_appid": 400,
        "wrong_amount": 400, "unsupported_event": 400, "unknown_trade": 404, "too_large": 413,
    }

    def __init__(self, reason: str, detail: str, *, tenant_id: int | None = None, notification_id: str | None = None,
                 event_type: str | None = None, reference: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.tenant_id = tenant_id
        self.notification_id = notification_id
        self.event_type = event_type
        self.reference = reference

    @property
    def status(self) -> int:
        return self.STATUS.get(self.reason, 400)


class GatewayError(Exception):
    """The gateway could not be reached or answered with something we cannot trust
    (network error, 5xx, rate limit, bad response signature): worth trying again later."""

    def __init__(self, message: str, *, code: str = "unavailable") -> None:
        super().__init__(message)
        self.code = code


class GatewayRefused(GatewayError):
    """The gateway answered and said no (bad parameters, insufficient balance...): trying
    the same request again will not help."""


class GatewayNotConfigured(GatewayError):
    """The tenant has no usable credentials for this gateway."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_configured")


class Gateway(Protocol):
    """What the payments service needs from a gateway."""

    name: str
    channels: tuple[str, ...]

    async def create(self, session: AsyncSession, req: CreateRequest) -> PrepayResult:
        """Register the order at the gateway; idempotent for the same ``out_trade_no``."""

    async def query(self, session: AsyncSession, out_trade_no: str) -> TradeState:
        """The gateway's view of one order (``NOT_FOUND`` when it has none)."""

    async def close(self, session: AsyncSession, out_trade_no: str) -> TradeState:
        """Close an unpaid order; returns the state afterwards (``SUCCESS`` if it was paid first)."""

    async def refund(self, session: AsyncSession, req: RefundRequest) -> RefundState:
        """Ask for a refund; idempotent for the same ``out_refund_no``."""

    async def query_refund(self, session: AsyncSession, out_refund_no: str) -> RefundState:
        """The gateway's view of one refund (``NOT_FOUND`` when it has none)."""

    async def verify_notification(self, session: AsyncSession, headers: Mapping[str, str], raw_body: bytes) -> Notification:
        """Verify on the raw body, then parse; raise :class:`NotificationRejected`."""
