"""One contract, two implementations: MemoryKV (embedded default) and RedisKV (many processes).

Every test runs against both. The Redis run is skipped unless SIYU_TEST_REDIS_URL is set;
each Redis test uses its own key prefix and deletes its keys afterwards. Expiry is real
time on both (MemoryKV uses a monotonic clock), so expiry tests use short TTLs and poll
with a bounded wait instead of asserting a duration.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from siyu.kit.kv import KV, MemoryKV, RedisKV

REDIS_URL = os.environ.get("SIYU_TEST_REDIS_URL", "")


@pytest.fixture(params=["memory", "redis"])
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KV]:
    if request.param == "memory":
        store = MemoryKV()
        yield store
        await store.close()
        return
    if not REDIS_URL:
        pytest.skip("RedisKV contract skipped: set SIYU_TEST_REDIS_URL to run it")
    prefix = f"siyu-kvtest-{secrets.token_hex(6)}:"
    store = RedisKV(REDIS_URL, prefix=prefix)
    yield store
    keys = [k async for k in store.redis.scan_iter(match=prefix + "*")]
    if keys:
        await store.redis.delete(*keys)
    await store.close()


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> bool:
    """Poll ``check`` until it is true or ``seconds`` have passed (bounded, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return await check()


async def test_hit_counts_up_to_the_limit_then_refuses_with_retry_after(kv: KV) -> None:
    for n in range(1, 4):
        r = await kv.hit("rate:a", limit=3, window_seconds=60)
        assert (r.allowed, r.count, r.limit, r.retry_after) == (True, n, 3, 0)
    r = await kv.hit("rate:a", limit=3, window_seconds=60)
    assert not r.allowed
    assert r.count == 4
    assert 1 <= r.retry_after <= 60
    r = await kv.hit("rate:a", limit=3, window_seconds=60)
    assert not r.allowed and r.count == 5
    # another key has its own window
    r = await kv.hit("rate:b", limit=3, window_seconds=60)
    assert (r.allowed, r.count) == (True, 1)
    # the window's TTL is set once, by the first hit
    assert 0 < await kv.ttl("rate:a") <= 60


async def test_hit_window_resets_after_it_expires(kv: KV) -> None:
    assert (await kv.hit("rate:w", limit=1, window_seconds=1)).allowed
    blocked = await kv.hit("rate:w", limit=1, window_seconds=1)
    assert not blocked.allowed and blocked.retry_after == 1

    async def allowed_again() -> bool:
        r = await kv.hit("rate:w", limit=1, window_seconds=1)
        return r.allowed and r.count == 1

    assert await _eventually(allowed_again), "a new window must start once the old one expired"


async def test_incr_get_set_and_ttl(kv: KV) -> None:
    assert await kv.get_int("n:missing") == 0
    assert await kv.ttl("n:missing") == -2
    assert await kv.incr("n:plain") == 1
    assert await kv.incr("n:plain", 5) == 6
    assert await kv.incr("n:plain", -2) == 4
    assert await kv.get_int("n:plain") == 4
    assert await kv.ttl("n:plain") == -1, "incr without ttl leaves the key persistent"

    assert await kv.incr("n:ttl", 1, ttl_seconds=100) == 1
    assert 0 < await kv.ttl("n:ttl") <= 100
    assert await kv.incr("n:ttl", 1, ttl_seconds=5) == 2
    assert await kv.ttl("n:ttl") > 5, "a later incr does not shorten (or reset) an existing ttl"

    await kv.set_int("n:set", 10, ttl_seconds=50)
    assert await kv.get_int("n:set") == 10
    assert 0 < await kv.ttl("n:set") <= 50
    await kv.set_int("n:set", 11)
    assert await kv.get_int("n:set") == 11
    assert await kv.ttl("n:set") == -1, "set without ttl makes the key persistent"


async def test_incr_with_ttl_expires(kv: KV) -> None:
    assert await kv.incr("n:short", 3, ttl_seconds=1) == 3

    async def gone() -> bool:
        return await kv.get_int("n:short") == 0 and await kv.ttl("n:short") == -2

    assert await _eventually(gone)
    assert await kv.incr("n:short", 1) == 1, "after expiry the counter starts again"


async def test_take_never_goes_below_zero_under_contention(kv: KV) -> None:
    await kv.set_int("stock", 10)
    results = await asyncio.gather(*(kv.take("stock") for _ in range(200)))
    assert sum(results) == 10
    assert await kv.get_int("stock") == 0
    assert await kv.take("stock") is False
    assert await kv.get_int("stock") == 0


async def test_take_amounts(kv: KV) -> None:
    assert await kv.take("absent") is False
    assert await kv.get_int("absent") == 0
    await kv.set_int("units", 5, ttl_seconds=100)
    assert await kv.take("units", 3) is True
    assert await kv.take("units", 3) is False, "never takes more than is left"
    assert await kv.get_int("units") == 2
    assert await kv.take("units", 2) is True
    assert await kv.get_int("units") == 0
    assert 0 < await kv.ttl("units") <= 100, "take keeps the key's ttl"


async def test_lock_is_exclusive_and_released_only_by_its_owner(kv: KV) -> None:
    token = await kv.acquire_lock("job", ttl_seconds=30)
    assert token
    assert await kv.acquire_lock("job", ttl_seconds=30) is None
    assert await kv.release_lock("job", "not-the-token") is False
    assert await kv.acquire_lock("job", ttl_seconds=30) is None, "a wrong token must not release the lock"
    assert await kv.acquire_lock("other-job", ttl_seconds=30), "locks are per key"
    assert await kv.release_lock("job", token) is True
    assert await kv.release_lock("job", token) is False, "releasing twice is a no-op"
    again = await kv.acquire_lock("job", ttl_seconds=30)
    assert again and again != token


async def test_lock_expires_and_the_old_owner_cannot_release_the_new_one(kv: KV) -> None:
    old = await kv.acquire_lock("lease", ttl_seconds=0.2)
    assert old
    new: list[str] = []

    async def acquired() -> bool:
        t = await kv.acquire_lock("lease", ttl_seconds=30)
        if t:
            new.append(t)
        return bool(t)

    assert await _eventually(acquired), "an expired lock must be free again"
    assert new[0] != old
    assert await kv.release_lock("lease", old) is False
    assert await kv.acquire_lock("lease", ttl_seconds=30) is None, "the new holder keeps the lock"
    assert await kv.release_lock("lease", new[0]) is True


async def test_lock_does_not_collide_with_a_plain_key_of_the_same_name(kv: KV) -> None:
    await kv.set_int("shared-name", 7)
    token = await kv.acquire_lock("shared-name", ttl_seconds=30)
    assert token
    assert await kv.get_int("shared-name") == 7
    await kv.delete("shared-name")
    assert await kv.acquire_lock("shared-name", ttl_seconds=30) is None


async def test_delete(kv: KV) -> None:
    await kv.set_int("d:a", 1)
    await kv.set_int("d:b", 2, ttl_seconds=60)
    await kv.incr("d:c", 3)
    await kv.delete("d:a", "d:b", "d:missing")
    assert await kv.get_int("d:a") == 0
    assert await kv.get_int("d:b") == 0
    assert await kv.ttl("d:b") == -2
    assert await kv.get_int("d:c") == 3
    await kv.delete()  # nothing to delete is fine
    r = await kv.hit("d:c", limit=10, window_seconds=60)
    assert r.count == 4
    await kv.delete("d:c")
    assert (await kv.hit("d:c", limit=10, window_seconds=60)).count == 1, "deleting a window resets it"


async def test_ping(kv: KV) -> None:
    assert await kv.ping() is True
