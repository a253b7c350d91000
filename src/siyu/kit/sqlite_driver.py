"""An aiosqlite-shaped SQLite connection that runs every call on the event loop's own thread.

aiosqlite gives each connection a thread and moves every call (cursor, execute, fetch,
close, commit) there and back through a queue: five or six thread switches per statement,
each waiting on the GIL. For the short statements of a web request that hand-over costs
far more than SQLite's own work, and under load it dominates a request's time.

This class offers the same awaitable interface to SQLAlchemy's aiosqlite dialect but calls
:mod:`sqlite3` directly. That is only safe where a call can never wait on a lock, since a
waiting call would stall the whole event loop. :class:`siyu.kit.db.Database` therefore uses
it for the one connection per process that serves write transactions, with
``busy_timeout=0`` once the connection is set up: the only statement that waits is
``BEGIN IMMEDIATE`` (another process holds the write lock), and the database retries that
with ``asyncio.sleep`` between tries instead of SQLite's blocking busy handler. Once a transaction holds the write lock no
statement of it waits (WAL: readers never block the writer, and a commit only appends to
the log). Read-only units of work keep aiosqlite, so a long report query runs in its own
thread and does not stall anyone.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any


class _Result:
    """What ``connection.cursor()`` returns: awaitable and an async context manager, like aiosqlite's."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Any:
        return self._ready().__await__()

    async def _ready(self) -> Cursor:
        return self._cursor

    async def __aenter__(self) -> Cursor:
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close_now()


class Cursor:
    __slots__ = ("_cur",)

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self._cur = cur

    async def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        self._cur.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Any]) -> Cursor:
        self._cur.executemany(sql, seq)
        return self

    async def fetchone(self) -> Any:
        return self._cur.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cur.fetchmany(size if size is not None else self._cur.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    async def close(self) -> None:
        self._cur.close()

    def close_now(self) -> None:
        self._cur.close()

    @property
    def description(self) -> Any:
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cur.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cur.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cur.arraysize = value


class _Now:
    """Stands in for aiosqlite's request queue: SQLAlchemy sets the isolation level through it."""

    __slots__ = ()

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, fn = item
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)


class Connection:
    """The subset of :class:`aiosqlite.Connection` that SQLAlchemy's aiosqlite dialect uses."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = conn
        self._tx = _Now()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def cursor(self) -> _Result:
        return _Result(Cursor(self._conn.cursor()))

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            conn, self._connection = self._connection, None
            conn.close()

    def stop(self) -> None:
        if self._connection is not None:
            conn, self._connection = self._connection, None
            conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction


def connector(path: str) -> Callable[[], Any]:
    """An ``async_creator`` for :func:`sqlalchemy.ext.asyncio.create_async_engine`."""

    async def connect() -> Connection:
        # check_same_thread=False: the pool may close a connection from the garbage collector.
        return Connection(sqlite3.connect(path, isolation_level=None, check_same_thread=False))

    return connect
