"""Payments: the contract other modules (orders, recharges, after-sales) call.

Every function takes the caller's session and never commits; the caller's unit of work does.
Amounts are integer fen and always come from the caller's **server-side** total, never from
a client.

Contract
--------

``create_payment(session, scope, *, source_type, source_id, amount_fen, description,
channel="sandbox", gateway=None, payer_openid=None, return_url=None, expires_at=None,
payer_client_ip=None) -> PaymentStart``
    Opens a payment for a source (``source_type`` like ``"order"``, ``source_id`` its id as a
    string) and registers it at the gateway. ``channel`` is ``sandbox`` (the default gateway),
    or WeChat Pay's ``jsapi`` (needs ``payer_openid``), ``h5`` (needs ``payer_client_ip``) or
    ``native``; ``gateway`` defaults to the channel's gateway. The :class:`PaymentStart` holds
    the :class:`Payment` (``out_trade_no`` is unique across the installation) and what the
    payer's client needs: ``pay_url`` (sandbox hosted page, WeChat H5), ``code_url`` (Native
    QR code) or ``pay_params`` (``wx.requestPayment``). Calling it again for the same source,
    channel and amount while the payment is pending returns the same payment
    (``reused=True``); a different channel closes the earlier pending payment first, so one
    source never has two payable payments. A source that already has a succeeded payment is
    refused (409 ``payment_source_paid``). ``expires_at`` defaults to 30 minutes from now;
    the sweeper closes payments still unpaid then.

``get_payment(session, scope, payment_id)``, ``get_payment_by_out_trade_no(...)``,
``payments_for_source(session, scope, source_type, source_id)``
    Reads; another tenant's payment is a 404.

``close_payment(session, scope, payment_id, *, cause="user_cancel") -> Payment``
    Closes a pending payment at the gateway, then here. Closing a closed payment is a no-op.
    If the gateway says it was paid in the meantime, the payment becomes ``succeeded``
    instead and is returned so: **check ``payment.status``**. Closing a succeeded or failed
    payment is a 409 ``payment_illegal_transition``.

``refund(session, scope, *, payment_id, amount_fen, out_refund_no, reason, source_type,
source_id) -> Refund``
    Reserves ``amount_fen`` of a succeeded payment by a conditional update
    (``refunded_fen + amount <= amount_fen``), so concurrent refunds can never exceed what was
    paid (409 ``refund_exceeds_paid``), and records a ``pending`` refund that is submitted to
    the gateway after commit. ``out_refund_no`` is the caller's idempotency key: the same key
    with the same payment and amount returns the same refund; with anything else it is a 409
    ``refund_no_conflict``. A refund that fails gives its amount back. ``refunded_fen``
    therefore counts pending and succeeded refunds; once none is pending it equals the sum of
    succeeded refunds.

``handle_notification(session, gateway_name, headers, raw_body) -> NotificationResult``
    Verifies a gateway notification on the raw body before parsing it, records it in
    ``gateway_notifications`` (processed | duplicate | rejected | ignored) and applies it.

``register_source_owner(source_type, resolver)``
    The module owning a source type registers ``resolver(session, scope, source_id) ->
    customer_id | None`` so the store API can show a shopper the payments of their own
    sources (orders: ``register_source_owner("order", ...)``).

``available_channels(session, scope) -> list[str]``
    Channels the tenant can take payments on now (for checkout).

State machines
--------------

Payments: ``pending → succeeded | failed | closed``. A succeeded payment stays succeeded
(refunds are tracked in ``refunded_fen``). ``closed`` and ``failed`` may still become
``succeeded`` when the gateway itself reports money taken (a payer who paid as the order was
being closed): the gateway's word about money wins, the event carries ``"late": true``, and
the source owner decides (usually: refund). Refunds: ``pending → succeeded | failed``. Any
other change is a 409 with code ``payment_illegal_transition`` / ``refund_illegal_transition``.
Every payment change is a ``payment_transitions`` row.

Events (outbox, written in the same transaction as the change)
--------------------------------------------------------------

``payment.succeeded`` / ``payment.failed`` / ``payment.closed``:
    ``{payment_id, tenant_id, source_type, source_id, amount_fen, out_trade_no, gateway,
    channel, transaction_id, cause}``; ``payment.succeeded`` adds ``paid_at``, ``late`` and
    ``duplicate_of`` (the id of an earlier succeeded payment of the same source, else null:
    the owner should refund the duplicate).
``refund.succeeded`` / ``refund.failed``:
    ``{refund_id, payment_id, tenant_id, source_type, source_id, amount_fen, out_refund_no,
    out_trade_no, payment_source_type, payment_source_id, cause}`` where ``source_*`` is what
    asked for the refund (an after-sales case) and ``payment_source_*`` what was paid.

Handlers must be idempotent (outbox delivery is at least once).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import audit, clock, metrics, outbox
from siyu.kit.errors import Conflict, DomainError, NotFound, ValidationFailed
from siyu.kit.runtime import get_runtime
from siyu.kit.tenancy import TenantScope
from siyu.payments import gateways as gw_mod
from siyu.payments.gateways import (
    CHANNEL_GATEWAY,
    CreateRequest,
    Gateway,
    GatewayError,
    GatewayNotConfigured,
    GatewayRefused,
    Notification,
    NotificationRejected,
    RefundRequest,
    RefundState,
    TradeState,
)
from siyu.payments.gateways.wechat import (
    CHANNELS as WECHAT_CHANNELS,
)
from siyu.payments.gateways.wechat import (
    WeChatCredentials,
    WeChatPay,
    cert_serial,
    load_certificate,
    normalize_serial,
)
from siyu.payments.models import (
    GatewayConfig,
    GatewayNotification,
    Payment,
    PaymentTransition,
    Refund,
)
from siyu.payments.repository import (
    GatewayConfigs,
    Lookups,
    NotificationLog,
    Payments,
    Refunds,
    TenantNotifications,
)

log = logging.getLogger("siyu.payments")

notifications_total = Counter("siyu_payment_notifications_total", "Gateway notifications by outcome",
                              ["gateway", "outcome"], registry=metrics.registry)

PAYMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"succeeded", "failed", "closed"}),
    # Only a gateway reporting money taken moves these (see the module docstring).
    "failed": frozenset({"succeeded"}),
    "closed": frozenset({"succeeded"}),
    "succeeded": frozenset(),
}
REFUND_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"succeeded", "failed"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
}
GATEWAY_NAMES = ("sandbox", "wechat")
CHANNELS = tuple(CHANNEL_GATEWAY)
DEFAULT_EXPIRY = timedelta(minutes=30)
MAX_AMOUNT_FEN = 10**10
MAX_NOTIFICATION_BYTES = 64 * 1024
_SOURCE_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,29}$")
_OUT_REFUND_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Trade states that mean the payer's money was taken.
PAID_STATES = ("SUCCESS", "REFUND")
_TRADE_TO_STATUS = {"SUCCESS": "succeeded", "REFUND": "succeeded", "PAYERROR": "failed", "CLOSED": "closed",
                    "REVOKED": "closed"}
_REFUND_TO_STATUS = {"SUCCESS": "succeeded", "CLOSED": "failed", "ABNORMAL": "failed"}


# -- values ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentStart:
    """A payment and what the payer's client needs to pay it."""

    payment: Payment
    pay_url: str | None = None
    code_url: str | None = None
    pay_params: dict[str, str] | None = None
    reused: bool = False


@dataclass(frozen=True)
class NotificationResult:
    outcome: str  # processed | duplicate | ignored | rejected
    reason: str | None
    status_code: int
    body: dict[str, Any] | None
    notification_id: str | None = None


SourceOwner = Callable[[AsyncSession, TenantScope, str], Awaitable[int | None]]
_source_owners: dict[str, SourceOwner] = {}


def register_source_owner(source_type: str, resolver: SourceOwner) -> None:
    """Let shoppers see the payments of ``source_type`` sources they own (see the docstring)."""
    _source_owners[source_type] = resolver


# -- state machines -------------------------------------------------------------------------------


def ensure_payment_transition(from_status: str, to_status: str) -> None:
    if to_status not in PAYMENT_TRANSITIONS.get(from_status, frozenset()):
        raise Conflict("payment_illegal_transition",
                       f"支付单状态为「{STATUS_ZH.get(from_status, from_status)}」，不能变为「{STATUS_ZH.get(to_status, to_status)}」",
                       f"A {from_status} payment cannot become {to_status}",
                       extra={"from_status": from_status, "to_status": to_status})


def ensure_refund_transition(from_status: str, to_status: str) -> None:
    if to_status not in REFUND_TRANSITIONS.get(from_status, frozenset()):
        raise Conflict("refund_illegal_transition",
                       f"退款状态为「{REFUND_STATUS_ZH.get(from_status, from_status)}」，不能变为「{REFUND_STATUS_ZH.get(to_status, to_status)}」",
                       f"A {from_status} refund cannot become {to_status}",
                       extra={"from_status": from_status, "to_status": to_status})


STATUS_ZH = {"pending": "待支付", "succeeded": "支付成功", "failed": "支付失败", "closed": "已关闭"}
REFUND_STATUS_ZH = {"pending": "退款中", "succeeded": "退款成功", "failed": "退款失败"}


def _payment_event(p: Payment, cause: str) -> dict[str, Any]:
    return {"payment_id": p.id, "tenant_id": p.tenant_id, "source_type": p.source_type, "source_id": p.source_id,
            "amount_fen": p.amount_fen, "out_trade_no": p.out_trade_no, "gateway": p.gateway, "channel": p.channel,
            "transaction_id": p.transaction_id, "cause": cause}


async def _move_payment(session: AsyncSession, p: Payment, to_status: str, cause: str, **values: Any) -> bool:
    """Apply one transition with a conditional update; False if the row had already moved
    (a replay or a racing worker), in which case nothing is written."""
    from_status = p.status
    if from_status == to_status:
        return False
    ensure_payment_transition(from_status, to_status)
    repo = Payments(session, p.tenant_id)
    if not await repo.change_status(p.id, from_status, to_status, **values):
        await repo.reload(p)
        return False
    await repo.reload(p)
    session.add(PaymentTransition(tenant_id=p.tenant_id, payment_id=p.id, from_status=from_status, to_status=to_status,
                                  cause=cause[:40]))
    payload = _payment_event(p, cause)
    if to_status == "succeeded":
        others = [o.id for o in await repo.for_source(p.source_type, p.source_id) if o.id != p.id and o.status == "succeeded"]
        payload.update(paid_at=p.paid_at.isoformat() if p.paid_at else None, late=from_status != "pending",
                       duplicate_of=min(others) if others else None)
        if others:
            log.warning("a source was paid twice", extra={"payment_id": p.id, "duplicate_of": min(others)})
    outbox.publish(session, f"payment.{to_status}", payload, tenant_id=p.tenant_id)
    log.info("payment %s", to_status, extra={"payment_id": p.id, "out_trade_no": p.out_trade_no, "cause": cause})
    return True


async def _move_refund(session: AsyncSession, r: Refund, to_status: str, cause: str, *,
                       gateway_refund_id: str | None = None, succeeded_at: datetime | None = None) -> bool:
    from_status = r.status
    if from_status == to_status:
        return False
    ensure_refund_transition(from_status, to_status)
    values: dict[str, Any] = {}
    if gateway_refund_id and not r.gateway_refund_id:
        values["gateway_refund_id"] = gateway_refund_id
    if to_status == "succeeded":
        values["succeeded_at"] = succeeded_at or clock.now()
    refunds = Refunds(session, r.tenant_id)
    if not await refunds.change_status(r.id, to_status, **values):
        await session.refresh(r)
        return False
    await session.refresh(r)
    payment = await Lookups(session).payment(r.payment_id)
    assert payment is not None
    if to_status == "failed":
        # The reserved amount becomes refundable again.
        await Payments(session, r.tenant_id).release_refund(payment.id, r.amount_fen)
        await session.refresh(payment)
    outbox.publish(session, f"refund.{to_status}", {
        "refund_id": r.id, "payment_id": r.payment_id, "tenant_id": r.tenant_id, "source_type": r.source_type,
        "source_id": r.source_id, "amount_fen": r.amount_fen, "out_refund_no": r.out_refund_no,
        "out_trade_no": payment.out_trade_no, "payment_source_type": payment.source_type,
        "payment_source_id": payment.source_id, "cause": cause,
    }, tenant_id=r.tenant_id)
    log.info("refund %s", to_status, extra={"refund_id": r.id, "out_refund_no": r.out_refund_no, "cause": cause})
    return True


# -- gateways per tenant ---------------------------------------------------------------------------


async def sandbox_enabled(session: AsyncSession, tenant_id: int) -> bool:
    """The sandbox takes payments unless the tenant switched it off; in production it is
    off until the tenant switches it on (it would let anyone "pay" without money)."""
    cfg = await GatewayConfigs(session, tenant_id).for_gateway("sandbox")
    if cfg is not None:
        return bool(cfg.enabled)
    return get_runtime().settings.env != "production"


async def gateway_for(session: AsyncSession, tenant_id: int, name: str, *, for_new_payment: bool = False) -> Gateway:
    """The gateway ``name`` as tenant ``tenant_id`` has it configured.

    Existing payments (queries, refunds, closing) keep working when a gateway is disabled;
    ``for_new_payment`` also requires it to be enabled."""
    rt = get_runtime()
    if name == "sandbox":
        if for_new_payment and not await sandbox_enabled(session, tenant_id):
            raise Conflict("payment_gateway_disabled", "沙箱支付未启用", "The sandbox gateway is disabled for this shop")
        return gw_mod.sandbox_gateway(rt)
    if name == "wechat":
        cfg = await GatewayConfigs(session, tenant_id).for_gateway("wechat")
        if for_new_payment and (cfg is None or not cfg.enabled):
            raise Conflict("payment_gateway_disabled", "微信支付未启用", "WeChat Pay is not enabled for this shop")
        if cfg is None:
            raise GatewayNotConfigured("WeChat Pay is not configured")
        try:
            return gw_mod.wechat_gateway(rt, dict(cfg.config or {}), tenant_id)
        except GatewayNotConfigured:
            if for_new_payment:
                raise Conflict("payment_gateway_not_configured", "微信支付配置不完整", "WeChat Pay is not fully configured") from None
            raise
    raise NotFound("payment_gateway_unknown", "支付渠道不存在", f"No payment gateway {name}")


async def available_channels(session: AsyncSession, scope: TenantScope) -> list[str]:
    out: list[str] = []
    if await sandbox_enabled(session, scope.id):
        out.append("sandbox")
    cfg = await GatewayConfigs(session, scope.id).for_gateway("wechat")
    if cfg is not None and cfg.enabled and not WeChatCredentials.missing(cfg.config or {}):
        out.extend(c for c in (cfg.config.get("channels") or WECHAT_CHANNELS) if c in WECHAT_CHANNELS)
    return out


# -- payments ----------------------------------------------------------------------------------------


def _bad(field: str, code: str, zh: str, en: str) -> ValidationFailed:
    return ValidationFailed(code, zh, en, fields=[{"field": field, "message": en}])


def _new_out_trade_no() -> str:
    # 27 characters of [0-9A-Z]: within WeChat Pay's 6–32 and sortable by time.
    return "P" + clock.now().strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**12):012d}"


def _check_source(source_type: str, source_id: str, prefix: str = "source") -> None:
    if not isinstance(source_type, str) or not _SOURCE_TYPE.match(source_type):
        raise _bad(f"{prefix}_type", "payment_source_invalid", "来源类型无效", "source_type must be 1–30 lower-case letters, digits, _ . -")
    if not isinstance(source_id, str) or not 1 <= len(source_id) <= 64 or _CONTROL.search(source_id):
        raise _bad(f"{prefix}_id", "payment_source_invalid", "来源编号无效", "source_id must be 1–64 printable characters")


def _return_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    base = get_runtime().settings.public_base_url
    if value.startswith("/") and not value.startswith("//") and "\\" not in value and not _CONTROL.search(value) and len(value) <= 400:
        return base + value
    if value.startswith(base + "/") and not _CONTROL.search(value) and len(value) <= 500:
        return value
    raise _bad("return_url", "payment_return_url_invalid", "返回地址必须是本站地址", "return_url must be a path or a URL of this site")


async def create_payment(
    session: AsyncSession,
    scope: TenantScope,
    *,
    source_type: str,
    source_id: str,
    amount_fen: int,
    description: str,
    channel: str = "sandbox",
    gateway: str | None = None,
    payer_openid: str | None = None,
    return_url: str | None = None,
    expires_at: datetime | None = None,
    payer_client_ip: str | None = None,
) -> PaymentStart:
    """Open a payment for a source; see the module docstring."""
    _check_source(source_type, source_id)
    if channel not in CHANNEL_GATEWAY:
        raise _bad("channel", "payment_channel_invalid", "支付方式无效", f"channel must be one of {', '.join(CHANNELS)}")
    gateway = gateway or CHANNEL_GATEWAY[channel]
    if gateway != CHANNEL_GATEWAY[channel]:
        raise _bad("gateway", "payment_channel_invalid", "支付方式与支付渠道不匹配", f"channel {channel} is not served by {gateway}")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise _bad("amount_fen", "payment_amount_invalid", "支付金额必须大于 0", "amount_fen must be a positive integer (fen)")
    description = (description or "").strip()
    if not description or len(description) > 127 or _CONTROL.search(description):
        raise _bad("description", "payment_description_invalid", "支付描述需为 1–127 个字符", "description must be 1–127 characters")
    if channel == "jsapi" and not payer_openid:
        raise _bad("payer_openid", "payment_openid_required", "JSAPI 支付需要付款人 openid", "jsapi payments need payer_openid")
    if channel == "h5" and not payer_client_ip:
        raise _bad("payer_client_ip", "payment_client_ip_required", "H5 支付需要付款人 IP", "h5 payments need payer_client_ip")
    now = clock.now()
    if expires_at is None:
        expires_at = now + DEFAULT_EXPIRY
    elif expires_at.tzinfo is None or expires_at <= now + timedelta(seconds=60):
        raise _bad("expires_at", "payment_expiry_invalid", "支付截止时间必须在一分钟之后", "expires_at must be timezone-aware and at least a minute ahead")
    ret = _return_url(return_url)
    gw = await gateway_for(session, scope.id, gateway, for_new_payment=True)
    if channel not in gw.channels:
        raise _bad("channel", "payment_channel_disabled", "该支付方式未开通", f"channel {channel} is not enabled")

    repo = Payments(session, scope.id)
    existing = await repo.for_source(source_type, source_id)
    if any(p.status == "succeeded" for p in existing):
        raise Conflict("payment_source_paid", "该订单已支付", "This source has already been paid")
    reuse: Payment | None = None
    for p in existing:
        if p.status != "pending":
            continue
        if (reuse is None and p.channel == channel and p.amount_fen == amount_fen and p.payer_openid == payer_openid
                and (p.expires_at is None or p.expires_at > now + timedelta(seconds=60))):
            reuse = p
            continue
        closed = await close_payment(session, scope, p.id, cause="superseded")
        if closed.status == "succeeded":
            raise Conflict("payment_source_paid", "该订单已支付", "This source has already been paid")
    rt = get_runtime()
    if reuse is not None:
        payment = reuse
    else:
        payment = repo.add(Payment(
            source_type=source_type, source_id=source_id, out_trade_no=_new_out_trade_no(), amount_fen=amount_fen,
            currency="CNY", gateway=gateway, channel=channel, description=description, status="pending",
            payer_openid=payer_openid, refunded_fen=0, expires_at=expires_at,
        ))
        await session.flush()
        session.add(PaymentTransition(tenant_id=scope.id, payment_id=payment.id, from_status="new", to_status="pending",
                                      cause="created"))
    req = CreateRequest(out_trade_no=payment.out_trade_no, amount_fen=payment.amount_fen, description=payment.description,
                        channel=channel, notify_url=gw_mod.notify_url(rt, gateway), expires_at=payment.expires_at,
                        payer_openid=payer_openid, payer_client_ip=payer_client_ip, return_url=ret)
    try:
        prepay = await gw.create(session, req)
    except GatewayRefused as exc:
        raise DomainError("payment_gateway_refused", "支付渠道拒绝了该支付，请稍后重试或更换支付方式",
                          f"The gateway refused the payment ({exc.code})", status=502, extra={"gateway_code": exc.code}) from exc
    except GatewayError as exc:
        log.warning("gateway unavailable on create", extra={"gateway": gateway, "error": str(exc)})
        raise DomainError("payment_gateway_unavailable", "支付渠道暂时不可用，请稍后重试",
                          "The payment gateway is unavailable; try again later", status=502) from exc
    return PaymentStart(payment=payment, pay_url=prepay.pay_url, code_url=prepay.code_url, pay_params=prepay.pay_params,
                        reused=reuse is not None)


async def get_payment(session: AsyncSession, scope: TenantScope, payment_id: int) -> Payment:
    return await Payments(session, scope.id).get_or_404(payment_id)


async def get_payment_by_out_trade_no(session: AsyncSession, scope: TenantScope, out_trade_no: str) -> Payment:
    p = await Payments(session, scope.id).by_out_trade_no(out_trade_no)
    if p is None:
        raise NotFound("payment_not_found", "支付单不存在", "Payment not found")
    return p


async def payments_for_source(session: AsyncSession, scope: TenantScope, source_type: str, source_id: str) -> Sequence[Payment]:
    return await Payments(session, scope.id).for_source(source_type, source_id)


async def payment_for_customer(session: AsyncSession, scope: TenantScope, out_trade_no: str, customer_id: int) -> Payment:
    """A payment the shopper may see: its source must be theirs (404 otherwise)."""
    p = await Payments(session, scope.id).by_out_trade_no(out_trade_no)
    resolver = _source_owners.get(p.source_type) if p is not None else None
    if p is None or resolver is None or await resolver(session, scope, p.source_id) != customer_id:
        raise NotFound("payment_not_found", "支付单不存在", "Payment not found")
    return p


async def close_payment(session: AsyncSession, scope: TenantScope, payment_id: int, *, cause: str = "user_cancel") -> Payment:
    """Close a pending payment at the gateway and here; see the module docstring."""
    p = await Payments(session, scope.id).get_or_404(payment_id)
    if p.status == "closed":
        return p
    ensure_payment_transition(p.status, "closed")
    gw = await _gateway_or_502(session, p)
    try:
        state = await gw.close(session, p.out_trade_no)
    except GatewayError as exc:
        raise DomainError("payment_gateway_unavailable", "支付渠道暂时不可用，无法关闭支付单，请稍后重试",
                          "The gateway is unavailable; the payment could not be closed", status=502) from exc
    if state.state in PAID_STATES:
        await apply_trade_state(session, p, state, cause="query")
        return p
    await _move_payment(session, p, "closed", cause)
    return p


async def _gateway_or_502(session: AsyncSession, p: Payment) -> Gateway:
    try:
        return await gateway_for(session, p.tenant_id, p.gateway)
    except GatewayNotConfigured as exc:
        raise DomainError("payment_gateway_not_configured", "支付渠道配置缺失，请检查支付设置",
                          "The payment gateway is not configured", status=502) from exc


class AmountMismatch(Exception):
    pass


async def apply_trade_state(session: AsyncSession, p: Payment, state: TradeState, *, cause: str) -> bool:
    """Apply what the gateway says about a payment (from a notification or a query).

    Idempotent: applying the same state twice changes nothing the second time. Raises
    :class:`AmountMismatch` when a paid state names another amount."""
    to = _TRADE_TO_STATUS.get(state.state)
    if to is None:
        return False  # NOTPAY, USERPAYING, NOT_FOUND: nothing happened yet
    if state.amount_fen is not None and state.amount_fen != p.amount_fen:
        raise AmountMismatch(f"gateway says {state.amount_fen} fen, payment is {p.amount_fen}")
    if to == "succeeded":
        if p.status == "succeeded":
            return False
        return await _move_payment(session, p, "succeeded", cause, transaction_id=state.transaction_id or p.transaction_id,
                                   paid_at=state.paid_at or clock.now(), payer_openid=p.payer_openid or state.payer_openid)
    if p.status != "pending":
        return False  # a late failure or close after another outcome changes nothing
    return await _move_payment(session, p, to, cause)


# -- refunds -----------------------------------------------------------------------------------------


async def refund(
    session: AsyncSession,
    scope: TenantScope,
    *,
    payment_id: int,
    amount_fen: int,
    out_refund_no: str,
    reason: str | None,
    source_type: str,
    source_id: str,
) -> Refund:
    """Refund part or all of a succeeded payment; see the module docstring."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise _bad("amount_fen", "refund_amount_invalid", "退款金额必须大于 0", "amount_fen must be a positive integer (fen)")
    if not isinstance(out_refund_no, str) or not _OUT_REFUND_NO.match(out_refund_no):
        raise _bad("out_refund_no", "refund_no_invalid", "退款单号无效", "out_refund_no must be 1–64 of A-Z a-z 0-9 _ - | * @")
    _check_source(source_type, source_id)
    reason = (reason or "").strip() or None
    if reason is not None and (len(reason) > 80 or _CONTROL.search(reason)):
        raise _bad("reason", "refund_reason_invalid", "退款原因最多 80 个字符", "reason must be at most 80 characters")
    payments = Payments(session, scope.id)
    payment = await payments.get_or_404(payment_id)
    same = await Lookups(session).refund_by_out_refund_no(out_refund_no)
    if same is not None:
        if (same.tenant_id == scope.id and same.payment_id == payment_id and same.amount_fen == amount_fen
                and same.source_type == source_type and same.source_id == source_id):
            return same
        raise Conflict("refund_no_conflict", "退款单号已被另一笔退款使用", "out_refund_no is already used by another refund")
    if payment.status != "succeeded":
        raise Conflict("payment_not_refundable", "只有支付成功的支付单可以退款", "Only a succeeded payment can be refunded",
                       extra={"status": payment.status})
    if not await payments.reserve_refund(payment.id, amount_fen):
        await payments.reload(payment)
        left = payment.amount_fen - payment.refunded_fen
        raise Conflict("refund_exceeds_paid", f"退款金额超出可退金额（剩余可退 {left / 100:.2f} 元）",
                       f"The refund exceeds the refundable amount ({left} fen left)", extra={"refundable_fen": left})
    await payments.reload(payment)
    r = Refunds(session, scope.id).add(Refund(
        payment_id=payment.id, out_refund_no=out_refund_no, amount_fen=amount_fen, reason=reason,
        source_type=source_type, source_id=source_id, status="pending",
    ))
    await session.flush()
    outbox.publish(session, "payments.refund.submit", {"refund_id": r.id}, tenant_id=scope.id)
    return r


async def get_refund(session: AsyncSession, scope: TenantScope, refund_id: int) -> Refund:
    return await Refunds(session, scope.id).get_or_404(refund_id)


async def submit_refund(session: AsyncSession, refund_id: int) -> str:
    """Send a pending refund to its gateway (outbox handler and sweeper). Idempotent: a
    refund the gateway already accepted is not sent again, and gateways treat a repeated
    ``out_refund_no`` as the same refund. Raises :class:`GatewayError` to be retried."""
    lookups = Lookups(session)
    r = await lookups.refund(refund_id, for_update=True)
    if r is None or r.status != "pending" or r.gateway_refund_id:
        return "skipped"
    p = await lookups.payment(r.payment_id)
    assert p is not None
    gw = await gateway_for(session, p.tenant_id, p.gateway)
    req = RefundRequest(out_trade_no=p.out_trade_no, transaction_id=p.transaction_id, out_refund_no=r.out_refund_no,
                        amount_fen=r.amount_fen, total_fen=p.amount_fen, reason=r.reason,
                        notify_url=gw_mod.notify_url(get_runtime(), p.gateway))
    try:
        state = await gw.refund(session, req)
    except GatewayRefused as exc:
        log.warning("refund refused by the gateway", extra={"refund_id": r.id, "code": exc.code, "error": str(exc)})
        await _move_refund(session, r, "failed", f"refused:{exc.code}"[:40])
        return "failed"
    await Refunds(session, r.tenant_id).set_gateway_id(r.id, state.gateway_refund_id or "accepted")
    await session.refresh(r)
    await apply_refund_state(session, r, state, cause="gateway")
    return r.status


async def apply_refund_state(session: AsyncSession, r: Refund, state: RefundState, *, cause: str) -> bool:
    to = _REFUND_TO_STATUS.get(state.state)
    if to is None:
        return False  # PROCESSING, NOT_FOUND
    if state.amount_fen is not None and state.amount_fen != r.amount_fen:
        raise AmountMismatch(f"gateway says {state.amount_fen} fen, refund is {r.amount_fen}")
    if r.status != "pending":
        if r.status != to:
            log.error("gateway reports a refund outcome contradicting ours",
                      extra={"refund_id": r.id, "ours": r.status, "gateway": state.state})
        return False
    return await _move_refund(session, r, to, cause, gateway_refund_id=state.gateway_refund_id,
                              succeeded_at=state.succeeded_at)


@outbox.on("payments.refund.submit")
async def _submit_refund_handler(session: AsyncSession, event: outbox.Event) -> None:
    await submit_refund(session, int(event.payload["refund_id"]))


# -- notifications ----------------------------------------------------------------------------------


_KEEP_HEADERS = ("content-type", "content-length", "user-agent", "request-id")


def _clean(value: str, limit: int) -> str:
    return _CONTROL.sub("", value)[:limit]


def _stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers.items():
        k = k.lower()
        if k in _KEEP_HEADERS or k.startswith(("wechatpay-", "sandbox-")):
            out[_clean(k, 60)] = _clean(v, 400)
    return out


def _stored_body(raw: bytes) -> str:
    return raw[:20000].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _local_id(kind: str) -> str:
    return f"{kind}-{clock.now().strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(8)}"


async def _verify(session: AsyncSession, gateway_name: str, headers: Mapping[str, str], raw_body: bytes,
                  body_size: int) -> Notification:
    if body_size > MAX_NOTIFICATION_BYTES:
        raise NotificationRejected("too_large", f"the body has more than {MAX_NOTIFICATION_BYTES} bytes")
    rt = get_runtime()
    if gateway_name == "sandbox":
        return await gw_mod.sandbox_gateway(rt).verify_notification(session, headers, raw_body)
    # WeChat Pay: the notify URL carries no tenant, so the key named by Wechatpay-Serial
    # (a platform certificate or a public key id) picks the merchant configurations to try.
    serial = headers.get("wechatpay-serial", "").strip()
    if not serial:
        raise NotificationRejected("missing_headers", "Wechatpay-Serial is missing")
    wanted = normalize_serial(serial)
    candidates: list[WeChatPay] = []
    for cfg in await Lookups(session).gateway_configs("wechat"):
        conf = cfg.config or {}
        serials = {normalize_serial(str(s)) for s in (conf.get("platform_certs") or {})}
        if conf.get("public_key_id"):
            serials.add(str(conf["public_key_id"]))
        if wanted not in serials:
            continue
        try:
            candidates.append(gw_mod.wechat_gateway(rt, dict(conf), cfg.tenant_id))
        except GatewayNotConfigured:
            continue
    if not candidates:
        raise NotificationRejected("unknown_serial", f"no merchant has a platform certificate or public key {serial[:64]}")
    first: NotificationRejected | None = None
    for gw in candidates:
        try:
            note = await gw.verify_notification(session, headers, raw_body)
        except NotificationRejected as exc:
            first = first or exc
            continue
        same_merchant = {c.tenant_id for c in candidates if c.creds.mchid == gw.creds.mchid}
        note.extra["tenants"] = same_merchant
        return note
    assert first is not None
    raise first


async def handle_notification(session: AsyncSession, gateway_name: str, headers: Mapping[str, str],
                              raw_body: bytes, *, body_size: int | None = None) -> NotificationResult:
    """Verify, record and apply one gateway notification; see the module docstring.

    The answer follows the gateway's expectation: 204 when accepted (also for a replay),
    4xx with ``{code, message}`` when rejected, so a genuine gateway retries and a forger
    learns nothing useful."""
    if gateway_name not in GATEWAY_NAMES:
        raise NotFound("payment_gateway_unknown", "支付渠道不存在", "No such payment gateway")
    hdrs = {k.lower(): v for k, v in headers.items()}
    log_repo = NotificationLog(session)
    size = len(raw_body) if body_size is None else body_size
    stored = _stored_body(raw_body) if size <= MAX_NOTIFICATION_BYTES else f"<{size}+ bytes, not stored>"
    base = {"gateway": gateway_name, "headers": _stored_headers(hdrs), "body": stored, "received_at": clock.now()}
    try:
        note = await _verify(session, gateway_name, hdrs, raw_body, size)
        target = await _target(session, note)
    except NotificationRejected as rej:
        log_repo.add(GatewayNotification(
            notification_id=_local_id("rejected"), event_type=rej.event_type, tenant_id=rej.tenant_id,
            reference=rej.reference, outcome="rejected", reason=f"{rej.reason}: {rej.detail}"[:200],
            **base,
        ))
        notifications_total.labels(gateway_name, "rejected").inc()
        log.warning("payment notification rejected", extra={"gateway": gateway_name, "reason": rej.reason,
                                                            "detail": rej.detail, "notification_id": rej.notification_id})
        code = f"notification_{rej.reason}"
        message = "通知验证失败" if rej.status in (401, 413) else f"通知被拒绝：{rej.reason}"
        return NotificationResult("rejected", rej.reason, rej.status, {
            "type": f"https://siyu.dev/problems/{code}", "title": "Notification rejected", "status": rej.status,
            "code": code, "message": message, "detail": rej.detail if rej.status not in (401, 413) else "verification failed",
        })
    payment, refund_row = target
    row_id = await log_repo.insert_once({
        "notification_id": note.notification_id, "event_type": note.event_type, "tenant_id": payment.tenant_id,
        "reference": note.reference, "outcome": "processed", "reason": None, **base,
    })
    if row_id is None:
        log_repo.add(GatewayNotification(
            notification_id=_local_id("duplicate"), event_type=note.event_type, tenant_id=payment.tenant_id,
            reference=note.reference, outcome="duplicate", reason=f"replay of {note.notification_id}"[:200], **base,
        ))
        notifications_total.labels(gateway_name, "duplicate").inc()
        return NotificationResult("duplicate", "replay", 204, None, note.notification_id)
    outcome, reason = "processed", None
    try:
        if refund_row is not None and note.refund is not None:
            changed = await apply_refund_state(session, refund_row, note.refund, cause="notification")
            if not changed:
                outcome, reason = ("duplicate", f"refund already {refund_row.status}") if refund_row.status != "pending" \
                    else ("ignored", f"refund state {note.refund.state}")
        else:
            assert note.trade is not None
            before = payment.status
            changed = await apply_trade_state(session, payment, note.trade, cause="notification")
            if not changed:
                outcome, reason = ("duplicate", f"payment already {payment.status}") if payment.status != "pending" \
                    else ("ignored", f"trade state {note.trade.state}")
                if before == "succeeded" and note.trade.state not in PAID_STATES:
                    outcome, reason = "ignored", f"{note.trade.state} for a succeeded payment"
    except Conflict as exc:  # an illegal transition requested by the gateway: keep ours, say so
        outcome, reason = "ignored", exc.message_en[:200]
    if outcome != "processed":
        await log_repo.set_outcome(row_id, outcome, reason)
    notifications_total.labels(gateway_name, outcome).inc()
    return NotificationResult(outcome, reason, 204, None, note.notification_id)


async def _target(session: AsyncSession, note: Notification) -> tuple[Payment, Refund | None]:
    """The payment (and refund) a verified notification is about; raises NotificationRejected."""
    lookups = Lookups(session)
    payment = await lookups.payment_by_out_trade_no(note.out_trade_no)
    tenants = note.extra.get("tenants")
    if payment is None or payment.gateway != note.gateway or (tenants is not None and payment.tenant_id not in tenants):
        raise NotificationRejected("unknown_trade", f"no {note.gateway} payment {note.out_trade_no[:40]}",
                                   tenant_id=note.tenant_id, notification_id=note.notification_id,
                                   event_type=note.event_type, reference=note.reference)
    if note.kind == "refund":
        assert note.refund is not None
        r = await lookups.refund_by_out_refund_no(note.refund.out_refund_no)
        if r is None or r.payment_id != payment.id:
            raise NotificationRejected("unknown_trade", f"no refund {note.refund.out_refund_no[:40]} of this payment",
                                       tenant_id=payment.tenant_id, notification_id=note.notification_id,
                                       event_type=note.event_type, reference=note.reference)
        if note.refund.amount_fen is not None and note.refund.amount_fen != r.amount_fen:
            raise NotificationRejected("wrong_amount", f"refund of {note.refund.amount_fen} fen, ours is {r.amount_fen}",
                                       tenant_id=payment.tenant_id, notification_id=note.notification_id,
                                       event_type=note.event_type, reference=note.reference)
        return payment, r
    assert note.trade is not None
    if note.trade.amount_fen is None or note.trade.amount_fen != payment.amount_fen:
        raise NotificationRejected("wrong_amount", f"amount {note.trade.amount_fen} fen, ours is {payment.amount_fen}",
                                   tenant_id=payment.tenant_id, notification_id=note.notification_id,
                                   event_type=note.event_type, reference=note.reference)
    return payment, None


# -- sweeps (called by payments.tasks, each in its own unit of work) ----------------------------------


async def payments_to_reconcile(session: AsyncSession, *, query_after: timedelta, requery_every: timedelta,
                                limit: int = 100, after_id: int = 0) -> list[tuple[int, int]]:
    now = clock.now()
    return await Lookups(session).payments_to_reconcile(now=now, created_before=now - query_after,
                                                       queried_before=now - requery_every, limit=limit, after_id=after_id)


async def refunds_to_reconcile(session: AsyncSession, *, query_after: timedelta, limit: int = 100,
                               after_id: int = 0) -> list[tuple[int, int]]:
    return await Lookups(session).refunds_to_reconcile(created_before=clock.now() - query_after, limit=limit,
                                                       after_id=after_id)


async def payment_for_job(session: AsyncSession, payment_id: int) -> Payment | None:
    return await Lookups(session).payment(payment_id)


async def refund_for_job(session: AsyncSession, refund_id: int) -> Refund | None:
    return await Lookups(session).refund(refund_id)


async def apply_query_result(session: AsyncSession, payment_id: int, state: TradeState, *, expired: bool) -> str:
    """What the query fallback learnt about one pending payment: apply it; close it locally
    when the gateway never saw it and its time is up; otherwise remember we asked."""
    p = await Lookups(session).payment(payment_id)
    if p is None or p.status != "pending":
        return "skipped"
    try:
        if await apply_trade_state(session, p, state, cause="timeout" if expired and state.state == "CLOSED" else "query"):
            return p.status
    except AmountMismatch as exc:
        log.error("query result names another amount; not applied", extra={"payment_id": p.id, "error": str(exc)})
    if expired and state.state == "NOT_FOUND":
        await _move_payment(session, p, "closed", "timeout")
        return "closed"
    await Payments(session, p.tenant_id).mark_queried(p.id)
    return "unchanged"


async def apply_refund_query(session: AsyncSession, refund_id: int, state: RefundState | None) -> str:
    r = await Lookups(session).refund(refund_id)
    if r is None or r.status != "pending":
        return "skipped"
    if state is None or state.state == "NOT_FOUND":
        return await submit_refund(session, refund_id) if not r.gateway_refund_id else "unchanged"
    try:
        await apply_refund_state(session, r, state, cause="query")
    except AmountMismatch as exc:
        log.error("refund query names another amount; not applied", extra={"refund_id": r.id, "error": str(exc)})
    return r.status


# -- admin reads -------------------------------------------------------------------------------------


async def list_payments(session: AsyncSession, scope: TenantScope, *, status: str | None = None, gateway: str | None = None,
                        source_type: str | None = None, q: str | None = None, created_from: datetime | None = None,
                        created_to: datetime | None = None, offset: int = 0, limit: int = 20) -> tuple[Sequence[Payment], int]:
    return await Payments(session, scope.id).search(status=status, gateway=gateway, source_type=source_type, q=q,
                                                    created_from=created_from, created_to=created_to, offset=offset, limit=limit)


@dataclass(frozen=True)
class PaymentDetail:
    payment: Payment
    transitions: Sequence[PaymentTransition]
    refunds: Sequence[Refund]
    notifications: Sequence[GatewayNotification]


async def payment_detail(session: AsyncSession, scope: TenantScope, payment_id: int) -> PaymentDetail:
    repo = Payments(session, scope.id)
    p = await repo.get_or_404(payment_id)
    refunds = await repo.refunds(p.id)
    notes, _total = await TenantNotifications(session, scope.id).search(
        references=[p.out_trade_no, *(r.out_refund_no for r in refunds)], limit=200)
    return PaymentDetail(p, await repo.transitions(p.id), refunds, notes)


async def list_notifications(session: AsyncSession, scope: TenantScope, *, gateway: str | None = None,
                             outcome: str | None = None, reference: str | None = None, offset: int = 0,
                             limit: int = 20) -> tuple[Sequence[GatewayNotification], int]:
    return await TenantNotifications(session, scope.id).search(gateway=gateway, outcome=outcome, reference=reference,
                                                               offset=offset, limit=limit)


# -- gateway configuration -----------------------------------------------------------------------------


def _cert_infos(conf: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for serial, pem in (conf.get("platform_certs") or {}).items():
        try:
            cert = load_certificate(str(pem))
            out.append({"serial": str(serial), "not_before": cert.not_valid_before_utc, "not_after": cert.not_valid_after_utc})
        except ValueError:
            out.append({"serial": str(serial), "not_before": None, "not_after": None})
    return out


def wechat_view(cfg: GatewayConfig | None) -> dict[str, Any]:
    """A WeChat Pay configuration without its secrets: what the API and console may show."""
    conf: Mapping[str, Any] = (cfg.config or {}) if cfg else {}
    return {
        "enabled": bool(cfg.enabled) if cfg else False,
        "mchid": conf.get("mchid") or None,
        "appid": conf.get("appid") or None,
        "merchant_serial_no": conf.get("merchant_serial_no") or None,
        "private_key_set": bool(conf.get("private_key_pem")),
        "apiv3_key_set": bool(conf.get("apiv3_key")),
        "platform_certificates": _cert_infos(conf),
        "public_key_id": conf.get("public_key_id") or None,
        "public_key_set": bool(conf.get("public_key_pem")),
        "channels": [c for c in (conf.get("channels") or WECHAT_CHANNELS) if c in WECHAT_CHANNELS],
        "missing": WeChatCredentials.missing(conf),
        "notify_url": gw_mod.notify_url(get_runtime(), "wechat"),
        "updated_at": cfg.updated_at if cfg else None,
    }


async def gateway_settings(session: AsyncSession, scope: TenantScope) -> dict[str, Any]:
    configs = GatewayConfigs(session, scope.id)
    sandbox_cfg = await configs.for_gateway("sandbox")
    return {
        "sandbox": {"enabled": await sandbox_enabled(session, scope.id), "explicit": sandbox_cfg is not None,
                    "notify_url": gw_mod.notify_url(get_runtime(), "sandbox"),
                    "production": get_runtime().settings.env == "production"},
        "wechat": wechat_view(await configs.for_gateway("wechat")),
    }


async def _config_row(session: AsyncSession, scope: TenantScope, gateway: str) -> GatewayConfig:
    configs = GatewayConfigs(session, scope.id)
    cfg = await configs.for_gateway(gateway)
    if cfg is None:
        cfg = configs.add(GatewayConfig(gateway=gateway, enabled=False, config={}))
        await session.flush()
    return cfg


def _audit_view(view: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in view.items() if k not in ("notify_url", "updated_at", "platform_certificates", "missing")}
    out["platform_certificates"] = [c["serial"] for c in view.get("platform_certificates", [])]
    return out


async def set_sandbox_enabled(session: AsyncSession, scope: TenantScope, enabled: bool) -> dict[str, Any]:
    before = await sandbox_enabled(session, scope.id)
    cfg = await _config_row(session, scope, "sandbox")
    cfg.enabled = enabled
    cfg.updated_at = clock.now()
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="payments.gateway.update", object_type="payment_gateway",
                 object_id="sandbox", before={"enabled": before}, after={"enabled": enabled})
    return (await gateway_settings(session, scope))["sandbox"]


WECHAT_FIELDS = ("mchid", "appid", "merchant_serial_no", "public_key_id")
WECHAT_SECRETS = ("private_key_pem", "apiv3_key")


async def update_wechat_config(session: AsyncSession, scope: TenantScope, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply validated changes (``schemas.WechatConfigIn`` fields set by the caller).

    A field left out keeps its value; ``""`` clears an optional one; secrets are replaced only
    when a new value is given. ``platform_certificates`` (PEMs) replaces the certificate set,
    ``add_platform_certificates`` adds to it; serials are read from the certificates."""
    cfg = await _config_row(session, scope, "wechat")
    before = wechat_view(cfg)
    conf: dict[str, Any] = dict(cfg.config or {})
    for key in (*WECHAT_FIELDS, "public_key_pem"):
        if key in changes and changes[key] is not None:
            conf[key] = changes[key] or None
    for key in WECHAT_SECRETS:
        if changes.get(key):
            conf[key] = changes[key]
    certs: dict[str, str] = dict(conf.get("platform_certs") or {})
    try:
        if changes.get("platform_certificates") is not None:
            certs = {}
            for pem in changes["platform_certificates"]:
                certs[cert_serial(load_certificate(pem))] = pem
        for pem in changes.get("add_platform_certificates") or []:
            certs[cert_serial(load_certificate(pem))] = pem
    except ValueError as exc:
        raise ValidationFailed("wechat_certificate_invalid", "平台证书无法解析", f"A platform certificate cannot be read: {exc}",
                               fields=[{"field": "platform_certificates", "message": "not a PEM certificate"}]) from exc
    for serial in changes.get("remove_platform_certificates") or []:
        certs = {s: p for s, p in certs.items() if normalize_serial(s) != normalize_serial(serial)}
    conf["platform_certs"] = certs
    if changes.get("channels") is not None:
        conf["channels"] = [c for c in WECHAT_CHANNELS if c in changes["channels"]]
    if bool(conf.get("public_key_id")) != bool(conf.get("public_key_pem")):
        raise ValidationFailed("wechat_public_key_incomplete", "微信支付公钥 ID 与公钥需同时填写",
                               "public_key_id and public_key_pem go together",
                               fields=[{"field": "public_key_id", "message": "set both or neither"}])
    enabled = bool(changes["enabled"]) if changes.get("enabled") is not None else bool(cfg.enabled)
    if enabled:
        missing = WeChatCredentials.missing(conf)
        if missing:
            raise ValidationFailed("wechat_config_incomplete", "启用微信支付前请补全：" + "、".join(missing),
                                   "Complete these before enabling WeChat Pay: " + ", ".join(missing),
                                   fields=[{"field": m.split("|")[0], "message": "required to enable"} for m in missing])
        try:
            gw_mod.wechat_gateway(get_runtime(), conf, scope.id)
        except GatewayNotConfigured as exc:
            raise ValidationFailed("wechat_config_invalid", "微信支付配置无法使用，请检查密钥与证书",
                                   f"The WeChat Pay configuration is unusable: {exc}") from exc
    cfg.config = conf
    cfg.enabled = enabled
    cfg.updated_at = clock.now()
    await session.flush()
    after = wechat_view(cfg)
    changed_secrets = sorted(k for k in WECHAT_SECRETS if changes.get(k))
    audit.record(session, tenant_id=scope.id, action="payments.gateway.update", object_type="payment_gateway",
                 object_id="wechat", before=_audit_view(before),
                 after={**_audit_view(after), "replaced": changed_secrets})
    return after


async def refresh_wechat_certificates(session: AsyncSession, scope: TenantScope) -> dict[str, Any]:
    """Download the platform certificates from WeChat Pay (``GET /v3/certificates``) and
    add them to the configuration (certificates mode; the public-key mode needs none)."""
    cfg = await GatewayConfigs(session, scope.id).for_gateway("wechat")
    conf = dict((cfg.config if cfg else None) or {})
    missing = [k for k in WeChatCredentials.REQUIRED if not conf.get(k)]
    if cfg is None or missing:
        raise ValidationFailed("wechat_config_incomplete", "请先填写商户号、AppID、证书序列号、API 私钥与 APIv3 密钥",
                               "Fill in mchid, appid, merchant serial, private key and APIv3 key first")
    creds = WeChatCredentials(
        mchid=str(conf["mchid"]), appid=str(conf["appid"]), merchant_serial_no=str(conf["merchant_serial_no"]),
        private_key_pem=str(conf["private_key_pem"]), apiv3_key=str(conf["apiv3_key"]),
    )
    try:
        gw = gw_mod.wechat_gateway_for(get_runtime(), creds, scope.id)
        certs = await gw.download_certificates()
    except GatewayNotConfigured as exc:
        raise ValidationFailed("wechat_config_invalid", "微信支付配置无法使用，请检查密钥", f"Unusable configuration: {exc}") from exc
    except GatewayError as exc:
        raise DomainError("payment_gateway_unavailable", "下载平台证书失败，请稍后重试",
                          f"Could not download the platform certificates: {exc}", status=502) from exc
    merged = {**(conf.get("platform_certs") or {}), **certs}
    return await update_wechat_config(session, scope, {"platform_certificates": list(merged.values())})


def notification_summary(row: GatewayNotification) -> dict[str, Any]:
    """The headline fields of a stored notification body (the sandbox's are plain; WeChat's
    resource stays encrypted at rest, so only its envelope is shown)."""
    try:
        data = json.loads(row.body)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    res = data.get("resource") if isinstance(data.get("resource"), dict) else {}
    assert isinstance(res, dict)
    return {"id": data.get("id"), "event_type": data.get("event_type"), "summary": data.get("summary"),
            "trade_state": res.get("trade_state") or res.get("refund_status"), "encrypted": "ciphertext" in res}
