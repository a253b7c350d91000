"""The unit of work, after-commit callbacks, SQLite write serialisation and UTC datetimes."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from siyu.kit import audit
from siyu.kit.audit import AuditEntry
from siyu.kit.db import Database, after_commit
from siyu.kit.runtime import Runtime
from siyu.kit.sessions import AuthSession


class Boom(Exception):
    pass


def _action() -> str:
    return f"test.uow-{secrets.token_hex(6)}"


async def _count(runtime: Runtime, action: str) -> int:
    async with runtime.db.uow(readonly=True) as s:
        return int(await s.scalar(select(func.count()).where(AuditEntry.action == action)) or 0)


async def test_uow_commits_when_the_block_finishes(backend: str, runtime: Runtime) -> None:
    action = _action()
    async with runtime.db.uow() as s:
        audit.record(s, tenant_id=None, action=action, object_type="t")
    assert await _count(runtime, action) == 1


async def test_raise_inside_uow_rolls_back_and_propagates(backend: str, runtime: Runtime) -> None:
    action = _action()
    with pytest.raises(Boom):
        async with runtime.db.uow() as s:
            audit.record(s, tenant_id=None, action=action, object_type="t")
            await s.flush()  # the row reached the database inside the transaction
            assert await s.scalar(select(func.count()).where(AuditEntry.action == action)) == 1
            raise Boom
    assert await _count(runtime, action) == 0


async def test_after_commit_runs_only_after_the_commit_is_visible(backend: str, runtime: Runtime) -> None:
    action = _action()
    seen: list[tuple[str, int]] = []

    async def async_cb() -> None:
        # A separate transaction already sees the row: the callback runs after the commit.
        seen.append(("async", await _count(runtime, action)))

    async with runtime.db.uow() as s:
        audit.record(s, tenant_id=None, action=action, object_type="t")
        after_commit(s, lambda: seen.append(("sync", -1)))
        after_commit(s, async_cb)
        assert seen == []
    assert seen == [("sync", -1), ("async", 1)], "callbacks run once each, in order, after commit"


async def test_after_commit_never_runs_after_a_rollback(backend: str, runtime: Runtime) -> None:
    calls: list[str] = []
    with pytest.raises(Boom):
        async with runtime.db.uow() as s:
            audit.record(s, tenant_id=None, action=_action(), object_type="t")
            after_commit(s, lambda: calls.append("ran"))
            raise Boom
    assert calls == []


async def test_after_commit_never_runs_when_the_commit_itself_fails(backend: str, runtime: Runtime) -> None:
    calls: list[str] = []
    token_hash = secrets.token_hex(32)
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):
        async with runtime.db.uow() as s:
            for _ in range(2):  # same unique token hash twice: the flush at commit fails
                s.add(AuthSession(token_hash=token_hash, kind="staff", principal_id=1, csrf_token="x",
                                  expires_at=now + timedelta(days=1)))
            after_commit(s, lambda: calls.append("ran"))
    assert calls == []
    async with runtime.db.uow(readonly=True) as s:
        assert await s.scalar(select(func.count()).where(AuthSession.token_hash == token_hash)) == 0


async def test_readonly_uow_does_not_persist_writes(backend: str, runtime: Runtime) -> None:
    action = _action()
    calls: list[str] = []
    async with runtime.db.uow(readonly=True) as s:
        audit.record(s, tenant_id=None, action=action, object_type="t")
        await s.flush()
        after_commit(s, lambda: calls.append("ran"))
    assert await _count(runtime, action) == 0
    assert calls == [], "a read-only unit of work never commits, so nothing runs after commit"


async def test_objects_read_in_any_uow_stay_usable_after_it(backend: str, runtime: Runtime) -> None:
    """Loaded attributes survive the end of the block, read-only or not (no lazy refresh)."""
    action = _action()
    async with runtime.db.uow() as s:
        written = audit.record(s, tenant_id=None, action=action, object_type="t", object_id=7)
    assert written.id is not None and written.object_id == "7"
    async with runtime.db.uow(readonly=True) as s:
        row = (await s.execute(select(AuditEntry).where(AuditEntry.action == action))).scalar_one()
    assert (row.id, row.action, row.object_id) == (written.id, action, "7")
    assert row.created_at.tzinfo is not None


async def test_sqlite_concurrent_read_then_update_transactions_serialise(tmp_path: Path) -> None:
    """30 writers each read a counter and write it back conditionally: with BEGIN IMMEDIATE
    none fails with "database is locked", none loses its update, and readers are not blocked."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'counter.db'}", pool_size=10)
    try:
        async with db.uow() as s:
            await s.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
            await s.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))

        async def writer() -> int:
            async with db.uow() as s:
                n = (await s.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar_one()
                await asyncio.sleep(0)  # let every other writer get as far as it can
                res = await s.execute(
                    text("UPDATE counter SET n = :new WHERE id = 1 AND n = :old"), {"new": n + 1, "old": n}
                )
                return int(res.rowcount)  # type: ignore[attr-defined]

        async def reader() -> int:
            async with db.uow(readonly=True) as s:
                return int((await s.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar_one())

        results = await asyncio.gather(*(writer() for _ in range(30)), *(reader() for _ in range(5)))
        assert results[:30] == [1] * 30, "every conditional update found the value it read"
        assert all(0 <= n <= 30 for n in results[30:])
        async with db.uow(readonly=True) as s:
            assert (await s.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar_one() == 30
    finally:
        await db.dispose()


async def test_sqlite_connections_use_wal_and_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'pragmas.db'}")
    try:
        async with db.uow(readonly=True) as s:
            assert (await s.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert int((await s.execute(text("PRAGMA busy_timeout"))).scalar_one()) >= 1000
            assert int((await s.execute(text("PRAGMA foreign_keys"))).scalar_one()) == 1
        assert (tmp_path / "sub" / "pragmas.db").exists(), "the database's folder is created"
    finally:
        await db.dispose()


async def test_utc_datetime_round_trips_as_aware_utc(backend: str, runtime: Runtime) -> None:
    action = _action()
    shanghai = datetime(2024, 3, 1, 8, 30, 15, 123456, tzinfo=ZoneInfo("Asia/Shanghai"))
    expected = datetime(2024, 3, 1, 0, 30, 15, 123456, tzinfo=UTC)
    async with runtime.db.uow() as s:
        audit.record(s, tenant_id=None, action=action, object_type="t").created_at = shanghai
    async with runtime.db.uow(readonly=True) as s:
        got = (await s.execute(select(AuditEntry.created_at).where(AuditEntry.action == action))).scalar_one()
        # comparisons in SQL work with aware values in any zone
        found = await s.scalar(
            select(func.count()).where(AuditEntry.action == action, AuditEntry.created_at == shanghai)
        )
        later = await s.scalar(
            select(func.count()).where(
                AuditEntry.action == action,
                AuditEntry.created_at > expected.astimezone(timezone(timedelta(hours=-5))) - timedelta(microseconds=1),
            )
        )
    assert got == expected
    assert got.utcoffset() == timedelta(0)
    assert got.tzinfo == UTC
    assert (found, later) == (1, 1)


async def test_utc_datetime_rejects_naive_values(backend: str, runtime: Runtime) -> None:
    action = _action()
    with pytest.raises(StatementError, match="naive"):
        async with runtime.db.uow() as s:
            audit.record(s, tenant_id=None, action=action, object_type="t").created_at = datetime(2024, 1, 1, 12, 0)
            await s.flush()
    with pytest.raises(StatementError, match="naive"):
        async with runtime.db.uow(readonly=True) as s:
            await s.execute(select(AuditEntry.id).where(AuditEntry.created_at < datetime(2024, 1, 1)))
    assert await _count(runtime, action) == 0


async def test_sqlite_writer_waits_for_another_process_without_stalling_the_loop(tmp_path: Path) -> None:
    """The writer runs SQLite on the event loop's thread: while another process holds the
    write lock it waits with asyncio sleeps (other tasks keep running), then writes."""
    import sqlite3

    path = tmp_path / "locked.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.uow() as s:
            await s.execute(text("CREATE TABLE t (x INTEGER)"))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # like a second worker process in a write transaction

        async def write() -> None:
            async with db.uow() as s:
                await s.execute(text("INSERT INTO t VALUES (1)"))

        writer = asyncio.create_task(write())
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert not writer.done(), "the writer waits for the lock"
        assert ticks == 20
        async with db.uow(readonly=True) as s:  # readers are not blocked either
            assert await s.scalar(text("SELECT count(*) FROM t")) == 0
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(writer, 5)
        async with db.uow(readonly=True) as s:
            assert await s.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        await db.dispose()


async def test_sqlite_writers_of_one_process_queue_in_order(tmp_path: Path) -> None:
    """One writer connection per process: concurrent write units of work run one after the
    other in arrival order, none fails with "database is locked"."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}")
    try:
        async with db.uow() as s:
            await s.execute(text("CREATE TABLE t (n INTEGER)"))
        order: list[int] = []

        async def write(n: int) -> None:
            async with db.uow() as s:
                await s.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                await asyncio.sleep(0)  # yield inside the transaction: others must wait
                order.append(n)

        await asyncio.gather(*(write(n) for n in range(20)))
        assert order == list(range(20))
        async with db.uow(readonly=True) as s:
            assert await s.scalar(text("SELECT count(*) FROM t")) == 20
    finally:
        await db.dispose()
