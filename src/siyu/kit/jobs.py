"""Background work: the taskiq broker, the outbox loop and periodic sweepers.

By default the broker is taskiq's in-memory broker and everything runs inside ``siyu
serve``. With Redis configured the web process only leases outbox events and kicks jobs onto
a Redis queue; ``siyu worker`` processes consume them. Sweepers handle deadlines stored as
rows with a due time: each run must be idempotent (conditional updates), and a KV lock keeps
two processes from doing the same sweep at the same moment, which saves work but is not
what makes them correct.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from taskiq import AsyncBroker, InMemoryBroker

from siyu.config import get_settings
from siyu.kit import outbox
from siyu.kit.runtime import Runtime, get_runtime

log = logging.getLogger("siyu.jobs")


def _make_broker() -> AsyncBroker:
    settings = get_settings()
    if settings.effective_broker == "redis" and settings.redis_url:
        from taskiq_redis import ListQueueBroker

        # BRPOP blocks until a job arrives; redis-py's default socket timeout would turn an
        # idle queue into an error, so the listening connection has none.
        return ListQueueBroker(settings.redis_url, queue_name="siyu:jobs", socket_timeout=None)
    return InMemoryBroker()


broker: AsyncBroker = _make_broker()


@broker.task(task_name="siyu.outbox.process")
async def process_outbox_event(event_id: int, token: str) -> bool:
    return await outbox.process_event(get_runtime().db, event_id, token)


SweepFn = Callable[[Runtime], Awaitable[int | None]]


@dataclass
class Sweeper:
    name: str
    every_seconds: float
    fn: SweepFn


_sweepers: dict[str, Sweeper] = {}


def sweeper(name: str, every_seconds: float) -> Callable[[SweepFn], SweepFn]:
    """Register a periodic, idempotent job that processes rows whose due time has passed."""

    def deco(fn: SweepFn) -> SweepFn:
        _sweepers[name] = Sweeper(name, every_seconds, fn)
        return fn

    return deco


def registered_sweepers() -> list[Sweeper]:
    return list(_sweepers.values())


async def run_sweeper(rt: Runtime, sw: Sweeper) -> int | None:
    token = await rt.kv.acquire_lock(f"sweep:{sw.name}", ttl_seconds=max(30.0, sw.every_seconds))
    if token is None:
        return None
    try:
        return await sw.fn(rt)
    finally:
        await rt.kv.release_lock(f"sweep:{sw.name}", token)


class BackgroundLoops:
    """The outbox relay and the sweeper scheduler, run as asyncio tasks in one process."""

    def __init__(self, rt: Runtime, *, kick_to_broker: bool) -> None:
        self.rt = rt
        self.kick_to_broker = kick_to_broker
        self.relay = outbox.OutboxRelay(rt.db, worker_id=f"{os.getpid()}")
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    async def _dispatch(self, event_id: int, token: str) -> None:
        if self.kick_to_broker:
            await process_outbox_event.kiq(event_id, token)
        else:
            await outbox.process_event(self.rt.db, event_id, token)

    async def _outbox_loop(self) -> None:
        poll = self.rt.settings.outbox_poll_seconds
        while not self._stop.is_set():
            try:
                n = await self.relay.run_once(self._dispatch)
            except Exception:
                log.exception("outbox relay pass failed")
                n = 0
            if n == 0:
                await outbox.wait_for_wake(poll)

    async def _sweep_loop(self) -> None:
        last: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            now = loop.time()
            for sw in registered_sweepers():
                if now - last.get(sw.name, -1e9) >= sw.every_seconds:
                    last[sw.name] = now
                    try:
                        await run_sweeper(self.rt, sw)
                    except Exception:
                        log.exception("sweeper failed", extra={"sweeper": sw.name})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._outbox_loop(), name="siyu-outbox"),
            asyncio.create_task(self._sweep_loop(), name="siyu-sweepers"),
        ]

    async def stop(self) -> None:
        self._stop.set()
        outbox.wake()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
