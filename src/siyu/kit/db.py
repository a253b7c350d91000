"""Engines, the declarative base and the unit of work.

One code path serves SQLite and PostgreSQL. On SQLite the driver's own transaction handling
is switched off and we emit ``BEGIN`` ourselves: ``BEGIN IMMEDIATE`` for writers so that two
writers queue on ``busy_timeout`` instead of one failing with "database is locked" when it
tries to upgrade a read lock, and a plain deferred ``BEGIN`` for read-only units of work so
readers never wait for the writer (WAL).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from siyu.kit import sqlite_driver
from siyu.kit.clock import now as utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Integer primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigID = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases.

    SQLite has no time zones; we store naive UTC and hand back aware UTC so comparisons in
    Python never mix naive and aware values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(), dict[str, Any]: JSONType, list[str]: JSONType, list[Any]: JSONType,
    }


class IdMixin:
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class TenantMixin:
    """Every tenant-owned row carries ``tenant_id``; repositories filter on it."""

    tenant_id: Mapped[int] = mapped_column(BigID, index=True, nullable=False)


AfterCommit = Callable[[], Awaitable[None] | None]


class Database:
    """Owns the engine (and a read-only view of it) and hands out units of work."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        db_path = make_url(url).database if self.is_sqlite else None
        on_disk = bool(db_path) and db_path != ":memory:" and not (db_path or "").startswith("file:")
        if self.is_sqlite:
            if on_disk:
                Path(str(db_path)).parent.mkdir(parents=True, exist_ok=True)
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size * 2
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine
        self.read_engine: AsyncEngine
        if self.is_sqlite and on_disk:
            # One writer connection per process, on the event loop's thread (see
            # siyu.kit.sqlite_driver): SQLite runs one write transaction at a time anyway, so
            # writers queue in order on the pool instead of polling the file lock, and their
            # statements skip the thread hand-over. Readers keep their own threaded pool.
            self.engine = create_async_engine(url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=30,
                                              async_creator=sqlite_driver.connector(str(db_path)))
            _install_sqlite_hooks(self.engine, writer=True)
            reader = create_async_engine(url, **kwargs)
            _install_sqlite_hooks(reader, writer=False)
            self.read_engine = reader.execution_options(siyu_readonly=True)
            self._engines = [self.engine, reader]
        else:
            self.engine = create_async_engine(url, **kwargs)
            if self.is_sqlite:
                _install_sqlite_hooks(self.engine, writer=None)
            self.read_engine = self.engine.execution_options(siyu_readonly=True)
            self._engines = [self.engine]
        self._write_sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False, autoflush=True)

    async def dispose(self) -> None:
        for engine in self._engines:
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def uow(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """One transaction: committed if the block finishes, rolled back if it raises.

        Callbacks registered with :func:`after_commit` run only once the commit succeeded,
        which is how outbox dispatch learns of new rows without ever seeing rolled-back ones.
        """
        maker = self._read_sessions if readonly else self._write_sessions
        async with maker() as session:
            session.info["after_commit"] = []
            try:
                yield session
                if readonly:
                    # Detach first: a rollback expires loaded objects, which would make
                    # everything read here unusable after the block (a commit does not,
                    # since expire_on_commit=False).
                    session.expunge_all()
                    await session.rollback()
                else:
                    await session.commit()
            except BaseException:
                await session.rollback()
                raise
            if readonly:
                return  # rolled back: nothing was committed, so nothing runs "after commit"
            for cb in session.info["after_commit"]:
                res = cb()
                if res is not None:
                    await res


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` after the unit of work owning ``session`` commits (never on rollback)."""
    session.info.setdefault("after_commit", []).append(callback)


#: How long a writer waits for another process's write transaction (as busy_timeout did).
WRITE_LOCK_WAIT_SECONDS = 30.0


def _install_sqlite_hooks(engine: AsyncEngine, *, writer: bool | None = None) -> None:
    """Pragmas and ``BEGIN``. ``writer``: True for the in-loop writer connection, False for
    the reader pool, None for a single engine serving both (in-memory databases)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # WAL + NORMAL: a commit is durable once the log is synced at the next checkpoint;
        # a power cut may lose the last transactions but never corrupts the database.
        cur.execute("PRAGMA synchronous=NORMAL")
        if writer:
            # The in-loop writer must never block the event loop in SQLite's busy handler;
            # it waits for the write lock in _begin_immediate instead (the pragmas above may
            # still wait, once per process, when the connection opens).
            cur.execute("PRAGMA busy_timeout=0")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if writer is False or (writer is None and conn.get_execution_options().get("siyu_readonly")):
            conn.exec_driver_sql("BEGIN")
        elif writer:
            _begin_immediate(conn)
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_immediate(conn: Any) -> None:
    """``BEGIN IMMEDIATE``, waiting without blocking the event loop while another process writes."""
    import asyncio
    import time

    from sqlalchemy.exc import OperationalError
    from sqlalchemy.util import await_

    deadline = time.monotonic() + WRITE_LOCK_WAIT_SECONDS
    pause = 0.0005
    while True:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or time.monotonic() >= deadline:
                raise
        await_(asyncio.sleep(pause))
        pause = min(pause * 2, 0.02)


def dialect_insert(session: AsyncSession, model: Any) -> Any:
    """The database's own INSERT for ``model``: both PostgreSQL's and SQLite's have
    ``on_conflict_do_nothing``, which lets a unique constraint decide a race without an error
    (nothing aborts, so no savepoint is needed)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model)
