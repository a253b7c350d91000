"""The transactional outbox: an event exists only if its transaction committed, and it is
handled exactly once in effect however many relays race for it.

Every test uses its own topic (the ``topic`` fixture), so handlers never see another test's
events, and the relays here also process whatever other tests left due, which is harmless.
"""

from __future__ import annotations

import asyncio
import collections
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import InMemoryBroker

from siyu.kit import audit, clock, jobs, outbox
from siyu.kit.audit import AuditEntry
from siyu.kit.outbox import MAX_ATTEMPTS, OutboxEvent, OutboxRelay, process_event
from siyu.kit.runtime import Runtime, set_runtime
from tests.conftest import drain_outbox


class Boom(Exception):
    pass


def _recording_handler(topic: str, calls: list[int], *, fail: list[bool] | None = None) -> None:
    """Register a handler that records the event id and writes one audit row per call.

    While ``fail[0]`` is true it raises *after* writing, so its write must be rolled back.
    """

    @outbox.on(topic)
    async def _handler(session: AsyncSession, event: outbox.Event) -> None:
        await asyncio.sleep(0)  # give racing relays a chance to interleave
        audit.record(session, tenant_id=None, action=topic, object_type="outbox-test", object_id=event.id)
        await session.flush()
        calls.append(event.id)
        if fail and fail[0]:
            raise Boom("handler refused")


async def _publish(runtime: Runtime, topic: str, n: int = 1, **kw: Any) -> list[int]:
    async with runtime.db.uow() as s:
        events = [outbox.publish(s, topic, {"i": i}, **kw) for i in range(n)]
        await s.flush()
        return [e.id for e in events]


async def _event(runtime: Runtime, event_id: int) -> OutboxEvent:
    async with runtime.db.uow(readonly=True) as s:
        row = (await s.execute(select(OutboxEvent).where(OutboxEvent.id == event_id))).scalar_one()
        s.expunge(row)  # keep the loaded state readable after the block
        return row


async def _audit_counts(runtime: Runtime, topic: str) -> dict[str, int]:
    async with runtime.db.uow(readonly=True) as s:
        rows = await s.execute(
            select(AuditEntry.object_id, func.count()).where(AuditEntry.action == topic).group_by(AuditEntry.object_id)
        )
        return {str(oid): n for oid, n in rows.all()}


async def test_rolled_back_event_is_never_stored_or_dispatched(backend: str, runtime: Runtime, topic: str) -> None:
    calls: list[int] = []
    _recording_handler(topic, calls)
    outbox._wake.clear()
    with pytest.raises(Boom):
        async with runtime.db.uow() as s:
            outbox.publish(s, topic, {"x": 1})
            await s.flush()
            raise Boom
    assert not outbox._wake.is_set(), "a rolled-back publish must not wake the relays"
    await drain_outbox(runtime)
    assert calls == []
    async with runtime.db.uow(readonly=True) as s:
        assert await s.scalar(select(func.count()).where(OutboxEvent.topic == topic)) == 0
    assert await _audit_counts(runtime, topic) == {}


async def test_committed_event_wakes_relays_and_is_dispatched_once(backend: str, runtime: Runtime, topic: str) -> None:
    calls: list[int] = []
    _recording_handler(topic, calls)
    outbox._wake.clear()
    [event_id] = await _publish(runtime, topic, tenant_id=None)
    assert outbox._wake.is_set()
    await drain_outbox(runtime)
    await drain_outbox(runtime)
    assert calls == [event_id]
    row = await _event(runtime, event_id)
    assert (row.status, row.attempts, row.last_error) == ("done", 1, None)
    assert row.done_at is not None
    assert await _audit_counts(runtime, topic) == {str(event_id): 1}


async def test_delayed_event_waits_until_due(backend: str, runtime: Runtime, topic: str) -> None:
    calls: list[int] = []
    _recording_handler(topic, calls)
    [event_id] = await _publish(runtime, topic, delay=timedelta(minutes=10))
    await drain_outbox(runtime)
    assert calls == []
    clock.travel(timedelta(minutes=11))
    await drain_outbox(runtime)
    assert calls == [event_id]


async def test_two_racing_relays_dispatch_each_event_exactly_once(backend: str, runtime: Runtime, topic: str) -> None:
    calls: list[int] = []
    _recording_handler(topic, calls)
    ids = await _publish(runtime, topic, 40)
    a = OutboxRelay(runtime.db, worker_id="relay-a")
    b = OutboxRelay(runtime.db, worker_id="relay-b")
    for _ in range(4):
        await asyncio.gather(*(r.run_once() for r in (a, b, a, b, a, b)))
    await drain_outbox(runtime)

    counts = collections.Counter(calls)
    assert set(counts) == set(ids)
    assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n != 1}
    assert await _audit_counts(runtime, topic) == {str(i): 1 for i in ids}
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OutboxEvent.status, OutboxEvent.attempts).where(OutboxEvent.id.in_(ids)))).all()
    assert sorted(rows) == [("done", 1)] * len(ids)


async def test_relays_racing_with_publishers_lose_and_repeat_nothing(backend: str, runtime: Runtime, topic: str) -> None:
    """Publishers commit while two relays poll: every committed event is handled exactly once."""
    calls: list[int] = []
    _recording_handler(topic, calls)
    published: list[int] = []

    async def publisher() -> None:
        for _ in range(5):
            published.extend(await _publish(runtime, topic, 3))
            await asyncio.sleep(0)

    relays = [OutboxRelay(runtime.db, worker_id=f"relay-{i}") for i in range(2)]
    done = asyncio.Event()

    async def relay_loop(r: OutboxRelay) -> None:
        while not done.is_set():
            await r.run_once()
            await asyncio.sleep(0)

    loops = [asyncio.create_task(relay_loop(r)) for r in relays for _ in range(2)]
    try:
        await asyncio.gather(*(publisher() for _ in range(4)))
    finally:
        done.set()
        await asyncio.gather(*loops)
    await drain_outbox(runtime)

    assert len(published) == 4 * 5 * 3
    assert sorted(calls) == sorted(published)
    assert await _audit_counts(runtime, topic) == {str(i): 1 for i in published}


async def test_failing_handler_keeps_event_pending_with_backoff_then_retries(
    backend: str, runtime: Runtime, topic: str
) -> None:
    calls: list[int] = []
    fail = [True]
    _recording_handler(topic, calls, fail=fail)
    [event_id] = await _publish(runtime, topic)

    before = clock.now()
    await drain_outbox(runtime)
    assert calls == [event_id]
    row = await _event(runtime, event_id)
    assert row.status == "pending"
    assert row.attempts == 1
    assert row.last_error is not None and "Boom" in row.last_error and "handler refused" in row.last_error
    assert row.available_at > before, "a failed event must not be retried at once"
    assert row.locked_by is None and row.locked_until is None
    assert await _audit_counts(runtime, topic) == {}, "the failed handler's write must be rolled back"

    await drain_outbox(runtime)  # not due yet: nothing happens
    assert calls == [event_id]

    fail[0] = False
    clock.travel(row.available_at - clock.now() + timedelta(seconds=1))
    await drain_outbox(runtime)
    assert calls == [event_id, event_id]
    row = await _event(runtime, event_id)
    assert (row.status, row.attempts) == ("done", 2)
    assert await _audit_counts(runtime, topic) == {str(event_id): 1}


async def test_event_is_dead_after_max_attempts(backend: str, runtime: Runtime, topic: str) -> None:
    calls: list[int] = []
    _recording_handler(topic, calls, fail=[True])
    [event_id] = await _publish(runtime, topic)

    last_available = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        await drain_outbox(runtime)
        row = await _event(runtime, event_id)
        assert row.attempts == attempt
        assert len(calls) == attempt
        if attempt < MAX_ATTEMPTS:
            assert row.status == "pending"
            if last_available is not None:
                # back-off grows: the gap to the next try is never shorter than the last one
                assert row.available_at - clock.now() >= last_available - timedelta(seconds=1)
            last_available = row.available_at - clock.now()
            clock.travel(row.available_at - clock.now() + timedelta(seconds=1))
    row = await _event(runtime, event_id)
    assert row.status == "dead"
    assert row.last_error and "Boom" in row.last_error

    clock.travel(timedelta(days=2))
    await drain_outbox(runtime)
    assert len(calls) == MAX_ATTEMPTS, "a dead event is never retried"
    assert await _audit_counts(runtime, topic) == {}


async def test_expired_lease_is_taken_over_and_the_old_token_does_nothing(
    backend: str, runtime: Runtime, topic: str
) -> None:
    calls: list[int] = []
    _recording_handler(topic, calls)
    await drain_outbox(runtime)
    [event_id] = await _publish(runtime, topic)
    a = OutboxRelay(runtime.db, worker_id="relay-a")
    b = OutboxRelay(runtime.db, worker_id="relay-b")

    leased_a = dict(await a.lease_due())
    token_a = leased_a[event_id]
    assert event_id not in dict(await b.lease_due()), "a live lease must not be taken"

    clock.travel(timedelta(seconds=outbox.LEASE_SECONDS + 1))
    leased_b = dict(await b.lease_due())
    token_b = leased_b[event_id]
    assert token_b != token_a

    assert await process_event(runtime.db, event_id, token_a) is False
    assert calls == []
    row = await _event(runtime, event_id)
    assert (row.status, row.attempts, row.locked_by) == ("pending", 0, token_b)

    assert await process_event(runtime.db, event_id, token_b) is True
    assert await process_event(runtime.db, event_id, token_a) is False
    assert await process_event(runtime.db, event_id, token_b) is False, "a done event is not processed twice"
    assert calls == [event_id]
    assert (await _event(runtime, event_id)).status == "done"
    assert await _audit_counts(runtime, topic) == {str(event_id): 1}
    # Whatever else the two relays leased while the clock was moved is handled now, so no
    # other test finds events locked far into the future.
    for other, token in leased_b.items():
        if other != event_id:
            await process_event(runtime.db, other, token)


async def test_lease_lost_while_handler_runs_rolls_back_its_work(backend: str, runtime: Runtime, topic: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite serialises writers: no relay can lease while a handler holds the write transaction")
    calls: list[int] = []
    b = OutboxRelay(runtime.db, worker_id="relay-b")
    taken: dict[int, str] = {}

    @outbox.on(topic)
    async def _handler(session: AsyncSession, event: outbox.Event) -> None:
        calls.append(event.id)
        audit.record(session, tenant_id=None, action=topic, object_type="outbox-test", object_id=event.id)
        await session.flush()
        if len(calls) == 1:  # the first run stalls past its lease and relay B takes over
            clock.travel(timedelta(seconds=outbox.LEASE_SECONDS + 1))
            taken.update(await b.lease_due())

    await drain_outbox(runtime)
    [event_id] = await _publish(runtime, topic)
    a = OutboxRelay(runtime.db, worker_id="relay-a")
    token_a = dict(await a.lease_due())[event_id]
    assert await process_event(runtime.db, event_id, token_a) is False
    assert await _audit_counts(runtime, topic) == {}, "the stale run's writes must be rolled back"
    row = await _event(runtime, event_id)
    assert (row.status, row.locked_by) == ("pending", taken[event_id])

    assert await process_event(runtime.db, event_id, taken[event_id]) is True
    assert calls == [event_id, event_id]
    assert await _audit_counts(runtime, topic) == {str(event_id): 1}
    for other, token in taken.items():
        if other != event_id:
            await process_event(runtime.db, other, token)


async def test_event_without_handlers_is_marked_done(backend: str, runtime: Runtime, topic: str) -> None:
    [event_id] = await _publish(runtime, topic)
    await drain_outbox(runtime)
    row = await _event(runtime, event_id)
    assert (row.status, row.attempts) == ("done", 1)


@pytest.mark.parametrize("kick_to_broker", [True, False], ids=["taskiq", "in-process"])
async def test_background_loops_process_events(
    backend: str, runtime: Runtime, topic: str, monkeypatch: pytest.MonkeyPatch, kick_to_broker: bool
) -> None:
    if not isinstance(jobs.broker, InMemoryBroker):
        pytest.skip("the jobs broker is not taskiq's in-memory broker (SIYU_REDIS_URL is set)")
    calls: list[int] = []
    _recording_handler(topic, calls)
    kicked: list[str] = []
    real_kick = jobs.broker.kick

    async def spy_kick(message: Any) -> None:
        kicked.append(message.task_name)
        await real_kick(message)

    monkeypatch.setattr(jobs.broker, "kick", spy_kick)
    set_runtime(runtime)
    await jobs.broker.startup()
    loops = jobs.BackgroundLoops(runtime, kick_to_broker=kick_to_broker)
    loops.start()
    try:
        [event_id] = await _publish(runtime, topic)
        for _ in range(400):  # bounded: at most ~20 s
            if (await _event(runtime, event_id)).status == "done":
                break
            await asyncio.sleep(0.05)
    finally:
        await loops.stop()
        await jobs.broker.wait_all()
    if kick_to_broker:
        assert "siyu.outbox.process" in kicked
    else:
        assert kicked == []
    assert calls == [event_id]
    row = await _event(runtime, event_id)
    assert (row.status, row.attempts) == ("done", 1)
    assert await _audit_counts(runtime, topic) == {str(event_id): 1}
