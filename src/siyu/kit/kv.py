"""Rate limits, locks and atomic counters behind one interface.

:class:`MemoryKV` serves the embedded single-process default; :class:`RedisKV` serves any
number of processes and machines. Both implement the same operations with the same
semantics, and the test suite runs the same contract tests against each.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class RateResult:
    allowed: bool
    count: int
    limit: int
    retry_after: int  # seconds until the window resets (0 when allowed)


class KV(Protocol):
    name: str

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateResult:
        """Count one event in a fixed window; ``allowed`` is False once ``limit`` is passed."""

    async def incr(self, key: str, amount: int = 1, ttl_seconds: int | None = None) -> int: ...

    async def get_int(self, key: str) -> int: ...

    async def set_int(self, key: str, value: int, ttl_seconds: int | None = None) -> None: ...

    async def take(self, key: str, amount: int = 1) -> bool:
        """Atomically subtract ``amount`` if at least that much is left."""

    async def ttl(self, key: str) -> int: ...

    async def delete(self, *keys: str) -> None: ...

    async def acquire_lock(self, key: str, ttl_seconds: float) -> str | None:
        """Return a token if the lock was free, else None. The lock expires after ``ttl``."""

    async def release_lock(self, key: str, token: str) -> bool: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryKV:
    """In-process implementation: one asyncio lock guards a dict of (value, expiry)."""

    name = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[Any, float | None]] = {}
        self._lock = asyncio.Lock()

    def _get(self, key: str) -> Any:
        item = self._data.get(key)
        if item is None:
            return None
        value, exp = item
        if exp is not None and exp <= time.monotonic():
            del self._data[key]
            return None
        return value

    def _exp(self, key: str) -> float | None:
        item = self._data.get(key)
        return item[1] if item else None

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateResult:
        async with self._lock:
            count = (self._get(key) or 0) + 1
            exp = self._exp(key) if count > 1 else None
            if exp is None:
                exp = time.monotonic() + window_seconds
            self._data[key] = (count, exp)
            retry = max(1, math.ceil(exp - time.monotonic()))
            allowed = count <= limit
            return RateResult(allowed, count, limit, 0 if allowed else retry)

    async def incr(self, key: str, amount: int = 1, ttl_seconds: int | None = None) -> int:
        async with self._lock:
            current = self._get(key)
            value = (current or 0) + amount
            exp = self._exp(key) if current is not None else None
            if exp is None and ttl_seconds:
                exp = time.monotonic() + ttl_seconds
            self._data[key] = (value, exp)
            return int(value)

    async def get_int(self, key: str) -> int:
        async with self._lock:
            return int(self._get(key) or 0)

    async def set_int(self, key: str, value: int, ttl_seconds: int | None = None) -> None:
        async with self._lock:
            self._data[key] = (value, time.monotonic() + ttl_seconds if ttl_seconds else None)

    async def take(self, key: str, amount: int = 1) -> bool:
        async with self._lock:
            current = int(self._get(key) or 0)
            if current < amount:
                return False
            self._data[key] = (current - amount, self._exp(key))
            return True

    async def ttl(self, key: str) -> int:
        async with self._lock:
            if self._get(key) is None:
                return -2
            exp = self._exp(key)
            return -1 if exp is None else max(0, math.ceil(exp - time.monotonic()))

    async def delete(self, *keys: str) -> None:
        async with self._lock:
            for k in keys:
                self._data.pop(k, None)

    async def acquire_lock(self, key: str, ttl_seconds: float) -> str | None:
        async with self._lock:
            if self._get("lock:" + key) is not None:
                return None
            token = secrets.token_hex(8)
            self._data["lock:" + key] = (token, time.monotonic() + ttl_seconds)
            return token

    async def release_lock(self, key: str, token: str) -> bool:
        async with self._lock:
            if self._get("lock:" + key) == token:
                del self._data["lock:" + key]
                return True
            return False

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local t = redis.call('TTL', KEYS[1])
if t < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); t = tonumber(ARGV[1]) end
return {n, t}
"""
_INCR = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return n
"""
_TAKE = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local k = tonumber(ARGV[1])
if v < k then return 0 end
redis.call('DECRBY', KEYS[1], k)
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisKV:
    """Redis implementation; multi-step operations are Lua scripts so each is atomic."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "siyu:", *, max_connections: int = 100) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis

        self.prefix = prefix
        # A blocking pool: a burst of more concurrent calls than connections (a flash sale)
        # waits for a free connection instead of failing with "Too many connections".
        pool = BlockingConnectionPool.from_url(url, decode_responses=True, max_connections=max_connections, timeout=20)
        self.redis = Redis.from_pool(pool)
        self._hit = self.redis.register_script(_HIT)
        self._incr = self.redis.register_script(_INCR)
        self._take = self.redis.register_script(_TAKE)
        self._release = self.redis.register_script(_RELEASE)

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateResult:
        n, t = await self._hit(keys=[self._k(key)], args=[window_seconds])
        allowed = int(n) <= limit
        return RateResult(allowed, int(n), limit, 0 if allowed else max(1, int(t)))

    async def incr(self, key: str, amount: int = 1, ttl_seconds: int | None = None) -> int:
        return int(await self._incr(keys=[self._k(key)], args=[amount, ttl_seconds or 0]))

    async def get_int(self, key: str) -> int:
        v = await self.redis.get(self._k(key))
        return int(v or 0)

    async def set_int(self, key: str, value: int, ttl_seconds: int | None = None) -> None:
        await self.redis.set(self._k(key), value, ex=ttl_seconds)

    async def take(self, key: str, amount: int = 1) -> bool:
        return bool(await self._take(keys=[self._k(key)], args=[amount]))

    async def ttl(self, key: str) -> int:
        return int(await self.redis.ttl(self._k(key)))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self.redis.delete(*(self._k(k) for k in keys))

    async def acquire_lock(self, key: str, ttl_seconds: float) -> str | None:
        token = secrets.token_hex(8)
        ok = await self.redis.set(self._k("lock:" + key), token, nx=True, px=int(ttl_seconds * 1000))
        return token if ok else None

    async def release_lock(self, key: str, token: str) -> bool:
        return bool(await self._release(keys=[self._k("lock:" + key)], args=[token]))

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        await self.redis.aclose()


def make_kv(redis_url: str, prefix: str = "siyu:") -> KV:
    return RedisKV(redis_url, prefix) if redis_url else MemoryKV()
