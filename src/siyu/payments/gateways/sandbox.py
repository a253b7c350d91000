"""The sandbox gateway: a pretend payment provider that behaves like a real one.

It plays the remote side and keeps its own books (``sandbox_gateway_orders``); it talks to
the rest of Siyu only the way a real gateway would:

* ``create`` opens an order in its books and answers with the URL of its hosted pay page,
  ``/pay/sandbox/{out_trade_no}`` (served by ``payments.views``), where the payer chooses
  确认支付 (pay), 支付失败 (fail) or 取消 (cancel);
* the choice is recorded in its books and an **asynchronous, signed notification** is sent
  to ``/api/pay/notify/sandbox``: an outbox event whose handler, once its transaction has
  committed, POSTs the JSON body over HTTP with ``Sandbox-Timestamp``, ``Sandbox-Nonce`` and
  ``Sandbox-Signature`` = base64(HMAC-SHA256(key, ``timestamp\\nnonce\\nbody\\n``)). The key
  is derived from the installation secret. A delivery that is not answered with 2xx is
  retried on WeChat Pay's schedule (15 s, 15 s, 30 s, 3 min, 10 min …, 15 tries);
* refunds are accepted (``PROCESSING``), settled at once in its books and notified
  asynchronously the same way; a refund whose reason contains ``[sandbox:fail]`` is refused
  by the "bank" (``REFUND.CLOSED``) so the failure path can be tried;
* ``query`` / ``query_refund`` answer from its books, which is what the query fallback uses.

Refunds live in the same books as rows keyed ``RF`` + a hash of ``out_refund_no``.

The POST goes through ``runtime.extras["http_client"]`` when set (tests route it to the
ASGI app), otherwise an ``httpx.AsyncClient`` on ``settings.public_base_url``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import clock, outbox
from siyu.kit.db import after_commit
from siyu.kit.errors import Conflict, NotFound
from siyu.kit.runtime import Runtime, get_runtime
from siyu.payments.gateways.base import (
    MAX_SKEW_SECONDS,
    CreateRequest,
    GatewayRefused,
    Notification,
    NotificationRejected,
    PrepayResult,
    RefundRequest,
    RefundState,
    TradeState,
)
from siyu.payments.models import SandboxGatewayOrder

log = logging.getLogger("siyu.payments.sandbox")

NOTIFY_PATH = "/api/pay/notify/sandbox"
PAY_PAGE = "/pay/sandbox/"
REFUND_PREFIX = "RF"
FAIL_MARKER = "[sandbox:fail]"
NOTIFY_TOPIC = "payments.sandbox.notify"
#: Seconds before each retry of an undelivered notification (WeChat Pay's published schedule).
RETRY_SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600)
OUTCOMES = {"pay": "SUCCESS", "fail": "PAYERROR", "cancel": "CLOSED"}


def sandbox_key(secret_key: str) -> bytes:
    """The sandbox's signing key: derived from the installation secret, never stored."""
    return hmac.new(secret_key.encode(), b"siyu.payments.sandbox-gateway.v1", hashlib.sha256).digest()


def signature(key: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def signed_headers(key: bytes, body: bytes, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(clock.now().timestamp()))
    nonce = nonce or secrets.token_hex(16)
    return {
        "Content-Type": "application/json",
        "Sandbox-Timestamp": timestamp,
        "Sandbox-Nonce": nonce,
        "Sandbox-Signature": signature(key, timestamp, nonce, body),
    }


def pay_token(key: bytes, out_trade_no: str) -> str:
    """The hidden field of the hosted pay page: only a page we served can post an outcome."""
    return hmac.new(key, f"pay-page:{out_trade_no}".encode(), hashlib.sha256).hexdigest()[:40]


def refund_book_no(out_refund_no: str) -> str:
    return REFUND_PREFIX + hashlib.sha256(out_refund_no.encode()).hexdigest()[:30]


def _new_id(prefix: str) -> str:
    return prefix + clock.now().strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**10):010d}"


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="seconds") if dt else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _book(session: AsyncSession, out_trade_no: str) -> SandboxGatewayOrder | None:
    return (await session.execute(
        select(SandboxGatewayOrder).where(SandboxGatewayOrder.out_trade_no == out_trade_no)
        .execution_options(populate_existing=True)
    )).scalar_one_or_none()


def _trade(row: SandboxGatewayOrder) -> TradeState:
    return TradeState(out_trade_no=row.out_trade_no, state=row.status, transaction_id=row.transaction_id,
                      amount_fen=row.amount_fen, paid_at=row.paid_at, description=row.description)


class SandboxGateway:
    name = "sandbox"
    channels: tuple[str, ...] = ("sandbox",)

    def __init__(self, key: bytes, *, notify_url: str) -> None:
        self.key = key
        self.notify_url = notify_url

    # -- what we call --------------------------------------------------------------------------

    async def create(self, session: AsyncSession, req: CreateRequest) -> PrepayResult:
        row = await _book(session, req.out_trade_no)
        if row is None:
            session.add(SandboxGatewayOrder(
                out_trade_no=req.out_trade_no, amount_fen=req.amount_fen, description=req.description[:127],
                notify_url=req.notify_url, return_url=req.return_url, status="NOTPAY",
            ))
            await session.flush()
        elif row.amount_fen != req.amount_fen:
            raise GatewayRefused("out_trade_no reused with another amount", code="OUT_TRADE_NO_USED")
        return PrepayResult(pay_url=PAY_PAGE + req.out_trade_no)

    async def query(self, session: AsyncSession, out_trade_no: str) -> TradeState:
        row = await _book(session, out_trade_no)
        if row is None or out_trade_no.startswith(REFUND_PREFIX):
            return TradeState(out_trade_no=out_trade_no, state="NOT_FOUND")
        return _trade(row)

    async def close(self, session: AsyncSession, out_trade_no: str) -> TradeState:
        await session.execute(
            update(SandboxGatewayOrder)
            .where(SandboxGatewayOrder.out_trade_no == out_trade_no, SandboxGatewayOrder.status == "NOTPAY")
            .values(status="CLOSED")
            .execution_options(synchronize_session=False)
        )
        return await self.query(session, out_trade_no)

    async def refund(self, session: AsyncSession, req: RefundRequest) -> RefundState:
        book_no = refund_book_no(req.out_refund_no)
        existing = await _book(session, book_no)
        if existing is not None:  # the same out_refund_no again: the same refund
            return RefundState(out_refund_no=req.out_refund_no, state="PROCESSING", gateway_refund_id=existing.transaction_id,
                               amount_fen=existing.amount_fen, out_trade_no=req.out_trade_no)
        parent = await _book(session, req.out_trade_no)
        if parent is None or req.out_trade_no.startswith(REFUND_PREFIX):
            raise GatewayRefused("the sandbox has no such order", code="ORDER_NOT_EXIST")
        refused = FAIL_MARKER in (req.reason or "")
        res = await session.execute(
            update(SandboxGatewayOrder)
            .where(SandboxGatewayOrder.id == parent.id, SandboxGatewayOrder.status.in_(("SUCCESS", "REFUND")),
                   SandboxGatewayOrder.refunded_fen + req.amount_fen <= SandboxGatewayOrder.amount_fen)
            .values(refunded_fen=SandboxGatewayOrder.refunded_fen + (0 if refused else req.amount_fen),
                    status="REFUND")
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise GatewayRefused("the refund exceeds what was paid or the order is unpaid", code="NOT_ENOUGH")
        now = clock.now()
        refund_id = _new_id("SBXR")
        row = SandboxGatewayOrder(
            out_trade_no=book_no, amount_fen=req.amount_fen, description=f"refund {req.out_refund_no} of {req.out_trade_no}"[:127],
            notify_url=req.notify_url, status="CLOSED" if refused else "SUCCESS", transaction_id=refund_id,
            paid_at=None if refused else now,
        )
        session.add(row)
        await session.flush()
        body = {
            "id": _new_id("SBXN"),
            "create_time": _iso(now),
            "event_type": "REFUND.CLOSED" if refused else "REFUND.SUCCESS",
            "resource_type": "plain",
            "resource": {
                "out_trade_no": req.out_trade_no, "transaction_id": parent.transaction_id,
                "out_refund_no": req.out_refund_no, "refund_id": refund_id,
                "refund_status": "CLOSED" if refused else "SUCCESS", "success_time": None if refused else _iso(now),
                "amount": {"total": parent.amount_fen, "refund": req.amount_fen},
            },
        }
        schedule_notification(session, req.notify_url, body)
        return RefundState(out_refund_no=req.out_refund_no, state="PROCESSING", gateway_refund_id=refund_id,
                           amount_fen=req.amount_fen, out_trade_no=req.out_trade_no)

    async def query_refund(self, session: AsyncSession, out_refund_no: str) -> RefundState:
        row = await _book(session, refund_book_no(out_refund_no))
        if row is None:
            return RefundState(out_refund_no=out_refund_no, state="NOT_FOUND")
        return RefundState(out_refund_no=out_refund_no, state=row.status, gateway_refund_id=row.transaction_id,
                           amount_fen=row.amount_fen, succeeded_at=row.paid_at)

    # -- what it sends us ------------------------------------------------------------------------

    async def verify_notification(self, session: AsyncSession, headers: Mapping[str, str], raw_body: bytes) -> Notification:
        h = {k.lower(): v for k, v in headers.items()}
        timestamp, nonce, sig = h.get("sandbox-timestamp", ""), h.get("sandbox-nonce", ""), h.get("sandbox-signature", "")
        if not (timestamp and nonce and sig):
            raise NotificationRejected("missing_headers", "Sandbox-Timestamp, Sandbox-Nonce or Sandbox-Signature is missing")
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise NotificationRejected("stale", "the timestamp is not a Unix time")
        skew = abs(int(clock.now().timestamp()) - int(timestamp))
        if skew > MAX_SKEW_SECONDS:
            raise NotificationRejected("stale", f"the timestamp is {skew} s away from our clock (at most {MAX_SKEW_SECONDS})")
        if not hmac.compare_digest(signature(self.key, timestamp, nonce, raw_body).encode(), sig.encode()):
            raise NotificationRejected("bad_signature", "the signature does not verify (forged or tampered notification)")
        try:
            data = json.loads(raw_body)
        except ValueError:
            raise NotificationRejected("malformed", "the body is not JSON") from None
        nid, event_type = (data.get("id"), data.get("event_type")) if isinstance(data, dict) else (None, None)
        res = data.get("resource") if isinstance(data, dict) else None
        if not isinstance(nid, str) or not nid or len(nid) > 100 or not isinstance(event_type, str) or not isinstance(res, dict):
            raise NotificationRejected("malformed", "id, event_type or resource is missing")
        amount = res.get("amount") if isinstance(res.get("amount"), dict) else {}
        assert isinstance(amount, dict)
        out_trade_no = str(res.get("out_trade_no") or "")[:64]
        if not out_trade_no:
            raise NotificationRejected("malformed", "out_trade_no is missing", notification_id=nid, event_type=event_type[:60])
        paid_at = _parse(res.get("success_time"))
        if event_type.startswith("TRANSACTION."):
            trade = TradeState(out_trade_no=out_trade_no, state=str(res.get("trade_state") or ""),
                               transaction_id=str(res["transaction_id"]) if res.get("transaction_id") else None,
                               amount_fen=_int(amount.get("total")), paid_at=paid_at)
            return Notification(gateway=self.name, notification_id=nid, event_type=event_type[:60], kind="payment",
                                out_trade_no=out_trade_no, trade=trade)
        if event_type.startswith("REFUND."):
            refund = RefundState(out_refund_no=str(res.get("out_refund_no") or "")[:64], state=str(res.get("refund_status") or ""),
                                 gateway_refund_id=str(res["refund_id"]) if res.get("refund_id") else None,
                                 amount_fen=_int(amount.get("refund")), out_trade_no=out_trade_no, succeeded_at=paid_at)
            if not refund.out_refund_no:
                raise NotificationRejected("malformed", "out_refund_no is missing", notification_id=nid, event_type=event_type[:60])
            return Notification(gateway=self.name, notification_id=nid, event_type=event_type[:60], kind="refund",
                                out_trade_no=out_trade_no, refund=refund)
        raise NotificationRejected("unsupported_event", f"event type {event_type[:60]} is not handled",
                                   notification_id=nid, event_type=event_type[:60])


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt if dt.tzinfo else None


# -- the hosted pay page's side ------------------------------------------------------------------


async def pay_page_order(session: AsyncSession, out_trade_no: str) -> SandboxGatewayOrder:
    row = None if out_trade_no.startswith(REFUND_PREFIX) else await _book(session, out_trade_no)
    if row is None:
        raise NotFound("sandbox_order_not_found", "支付单不存在", "No such sandbox payment")
    return row


async def choose_outcome(session: AsyncSession, out_trade_no: str, outcome: str) -> SandboxGatewayOrder:
    """The payer pressed a button on the hosted page: record it and notify the merchant."""
    if outcome not in OUTCOMES:
        raise NotFound("sandbox_outcome_unknown", "未知的操作", "Unknown outcome")
    row = await pay_page_order(session, out_trade_no)
    now = clock.now()
    state = OUTCOMES[outcome]
    values: dict[str, Any] = {"status": state}
    if state == "SUCCESS":
        values.update(transaction_id=_new_id("SBXT"), paid_at=now)
    res = await session.execute(
        update(SandboxGatewayOrder)
        .where(SandboxGatewayOrder.id == row.id, SandboxGatewayOrder.status == "NOTPAY")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(row)
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("sandbox_order_not_payable", "该支付单已处理，不能再次操作", "This payment was already completed, failed or closed")
    body = {
        "id": _new_id("SBXN"),
        "create_time": _iso(now),
        "event_type": f"TRANSACTION.{state}",
        "resource_type": "plain",
        "resource": {
            "out_trade_no": row.out_trade_no, "transaction_id": row.transaction_id, "trade_state": state,
            "success_time": _iso(row.paid_at), "amount": {"total": row.amount_fen, "currency": "CNY"},
        },
    }
    schedule_notification(session, row.notify_url, body)
    return row


# -- asynchronous delivery -------------------------------------------------------------------------


def schedule_notification(session: AsyncSession, notify_url: str, body: dict[str, Any], *, attempt: int = 1,
                          delay: timedelta | None = None) -> None:
    """Queue a notification in the caller's transaction; it is posted after commit."""
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    outbox.publish(session, NOTIFY_TOPIC, {"notify_url": notify_url, "body": raw, "attempt": attempt}, delay=delay)


def delivery_client(rt: Runtime) -> httpx.AsyncClient:
    client = rt.extras.get("http_client")
    if client is None:
        client = rt.extras.get("_payments_sandbox_client")
        if client is None:
            client = httpx.AsyncClient(base_url=rt.settings.public_base_url, timeout=10.0)
            rt.extras["_payments_sandbox_client"] = client
    assert isinstance(client, httpx.AsyncClient)
    return client


async def deliver(payload: dict[str, Any]) -> bool:
    """POST one notification; on failure queue the next try. Never raises."""
    attempt = int(payload.get("attempt") or 1)
    url = str(payload["notify_url"])
    try:
        rt = get_runtime()
        body = str(payload["body"]).encode()
        headers = signed_headers(sandbox_key(rt.secret_key), body)
        started = time.perf_counter()
        resp = await delivery_client(rt).post(url, content=body, headers=headers)
        ok = 200 <= resp.status_code < 300
        log.info("sandbox notification delivered" if ok else "sandbox notification refused",
                 extra={"url": url, "status": resp.status_code, "attempt": attempt,
                        "ms": round((time.perf_counter() - started) * 1000)})
    except Exception as exc:
        log.warning("sandbox notification failed", extra={"url": url, "attempt": attempt, "error": f"{type(exc).__name__}: {exc}"})
        ok = False
    if not ok and attempt <= len(RETRY_SCHEDULE):
        try:
            async with get_runtime().db.uow() as s:
                outbox.publish(s, NOTIFY_TOPIC, {**payload, "attempt": attempt + 1},
                               delay=timedelta(seconds=RETRY_SCHEDULE[attempt - 1]))
        except Exception:
            log.exception("could not schedule the next sandbox notification attempt")
    return ok


@outbox.on(NOTIFY_TOPIC)
async def _deliver_after_commit(session: AsyncSession, event: outbox.Event) -> None:
    # The POST reaches our own notify endpoint, which writes; it must not run while this
    # handler's transaction still holds the database (SQLite has a single writer).
    payload = dict(event.payload)

    async def _go() -> None:
        await deliver(payload)

    after_commit(session, _go)
