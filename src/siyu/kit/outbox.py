"""Transactional outbox: events are rows written in the business transaction.

An event exists only if its transaction committed, so a rolled-back request can never
trigger a job. Delivery is at-least-once to the relay and exactly-once in effect: a handler
runs in the same transaction that marks the event done, guarded by a conditional update on
the lease the relay took, so two relays or two workers can race and only one wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, String, Text, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock, metrics
from siyu.kit.db import Base, BigID, Database, IdMixin, after_commit

log = logging.getLogger("siyu.outbox")

LEASE_SECONDS = 60
MAX_ATTEMPTS = 10


class OutboxEvent(IdMixin, Base):
    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_due", "status", "available_at"),)

    tenant_id: Mapped[int | None] = mapped_column(BigID, nullable=True, index=True)
    topic: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | dead
    attempts: Mapped[int] = mapped_column(default=0)
    available_at: Mapped[datetime] = mapped_column(default=clock.now)
    locked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    done_at: Mapped[datetime | None] = mapped_column(nullable=True)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    tenant_id: int | None
    topic: str
    payload: dict[str, Any]
    attempts: int


Handler = Callable[[AsyncSession, Event], Awaitable[None]]
_handlers: dict[str, list[Handler]] = {}
_wake = asyncio.Event()


def on(topic: str) -> Callable[[Handler], Handler]:
    """Register an idempotent handler for ``topic``; it runs inside the event's transaction."""

    def deco(fn: Handler) -> Handler:
        _handlers.setdefault(topic, []).append(fn)
        return fn

    return deco


def handlers_for(topic: str) -> list[Handler]:
    return list(_handlers.get(topic, []))


def publish(
    session: AsyncSession,
    topic: str,
    payload: dict[str, Any],
    *,
    tenant_id: int | None = None,
    delay: timedelta | None = None,
) -> OutboxEvent:
    """Write an event in the caller's transaction; relays are woken only after commit."""
    ev = OutboxEvent(
        tenant_id=tenant_id,
        topic=topic,
        payload=payload,
        available_at=clock.now() + (delay or timedelta(0)),
    )
    session.add(ev)
    if not session.info.get("outbox_wake"):
        session.info["outbox_wake"] = True
        after_commit(session, wake)
    return ev


def wake() -> None:
    _wake.set()


async def wait_for_wake(seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_wake.wait(), seconds)
    _wake.clear()


class OutboxRelay:
    """Finds due events, leases them and hands each to ``dispatch`` (a job kick or a call)."""

    def __init__(self, db: Database, *, worker_id: str | None = None) -> None:
        self.db = db
        self.worker_id = worker_id or f"{os.getpid()}-{secrets.token_hex(4)}"

    async def lease_due(self, limit: int = 100) -> list[tuple[int, str]]:
        now = clock.now()
        async with self.db.uow(readonly=True) as s:
            ids = (
                await s.execute(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.status == "pending", OutboxEvent.available_at <= now)
                    .where(or_(OutboxEvent.locked_until.is_(None), OutboxEvent.locked_until < now))
                    .order_by(OutboxEvent.id)
                    .limit(limit)
                )
            ).scalars().all()
        leased: list[tuple[int, str]] = []
        for event_id in ids:
            token = f"{self.worker_id}:{secrets.token_hex(4)}"
            async with self.db.uow() as s:
                res = await s.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id == event_id, OutboxEvent.status == "pending")
                    .where(or_(OutboxEvent.locked_until.is_(None), OutboxEvent.locked_until < now))
                    .values(locked_by=token, locked_until=now + timedelta(seconds=LEASE_SECONDS))
                )
            if res.rowcount == 1:  # type: ignore[attr-defined]
                leased.append((event_id, token))
        return leased

    async def run_once(self, dispatch: Callable[[int, str], Awaitable[None]] | None = None) -> int:
        leased = await self.lease_due()
        for event_id, token in leased:
            if dispatch is None:
                await process_event(self.db, event_id, token)
            else:
                await dispatch(event_id, token)
        return len(leased)


async def process_event(db: Database, event_id: int, token: str) -> bool:
    """Run the handlers of one leased event and mark it done, all in one transaction.

    Returns False when the lease was lost (another worker took over or finished it), in
    which case nothing the handlers did is kept.
    """
    try:
        async with db.uow() as s:
            row = (
                await s.execute(select(OutboxEvent).where(OutboxEvent.id == event_id))
            ).scalar_one_or_none()
            if row is None or row.status != "pending" or row.locked_by != token:
                return False
            event = Event(row.id, row.tenant_id, row.topic, dict(row.payload), row.attempts + 1)
            for handler in handlers_for(event.topic):
                await handler(s, event)
            res = await s.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == event_id, OutboxEvent.locked_by == token, OutboxEvent.status == "pending")
                .values(status="done", done_at=clock.now(), attempts=OutboxEvent.attempts + 1, locked_until=None)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise _LeaseLost
        metrics.outbox_processed.labels(event.topic, "done").inc()
        return True
    except _LeaseLost:
        return False
    except Exception as exc:
        log.exception("outbox handler failed", extra={"event_id": event_id})
        metrics.outbox_processed.labels("unknown", "failed").inc()
        await _record_failure(db, event_id, token, exc)
        return False


class _LeaseLost(Exception):
    pass


async def _record_failure(db: Database, event_id: int, token: str, exc: Exception) -> None:
    async with db.uow() as s:
        row = (await s.execute(select(OutboxEvent).where(OutboxEvent.id == event_id))).scalar_one_or_none()
        if row is None or row.locked_by != token:
            return
        attempts = row.attempts + 1
        backoff = timedelta(seconds=min(3600, 2**attempts))
        await s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == event_id, OutboxEvent.locked_by == token)
            .values(
                attempts=attempts,
                status="dead" if attempts >= MAX_ATTEMPTS else "pending",
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
                locked_until=None,
                locked_by=None,
                available_at=clock.now() + backoff,
            )
        )
