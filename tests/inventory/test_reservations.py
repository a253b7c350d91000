"""Reservations: never oversell, all or nothing, idempotent per source key, and explicit
status transitions (active → released | committed).

Concurrency tests run each caller in its own unit of work (``runtime.db.uow()``) at the same
time, as separate requests would; on SQLite the writers queue on ``BEGIN IMMEDIATE``, on
PostgreSQL they race on row locks and conditional updates.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select

from siyu.inventory import service
from siyu.inventory.models import StockMovement, StockReservation
from siyu.inventory.service import ReservedLine
from siyu.kit.errors import Conflict, DomainError, NotFound
from siyu.kit.runtime import Runtime
from tests.inventory._helpers import Shop, add_location, assert_ledger_consistent, level, receive


async def _reserve(runtime: Runtime, shop: Shop, key: str, lines: list[tuple[int, int]], **kw) -> list[ReservedLine]:  # type: ignore[no-untyped-def]
    async with runtime.db.uow() as s:
        return await service.reserve(s, shop.scope, key, lines, **kw)


async def _count(runtime: Runtime, shop: Shop, model, **where) -> int:  # type: ignore[no-untyped-def]
    async with runtime.db.uow(readonly=True) as s:
        stmt = select(func.count()).select_from(model).where(model.tenant_id == shop.scope.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return int((await s.execute(stmt)).scalar_one())


# -- never oversell ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", [(10,), (6, 4), (3, 3, 4)], ids=["one location", "two locations", "three locations"])
async def test_100_concurrent_reservers_for_10_units_exactly_10_succeed(runtime, shop, layout) -> None:  # type: ignore[no-untyped-def]
    sku = shop.skus[0]
    for i, qty in enumerate(layout):
        loc = await add_location(runtime, shop, f"仓{i}", priority=10 * (i + 1))
        await receive(runtime, shop, sku, loc, qty)

    async def buyer(i: int) -> list[ReservedLine] | DomainError:
        try:
            return await _reserve(runtime, shop, f"order:{i}", [(sku, 1)])
        except DomainError as exc:
            return exc

    results = await asyncio.gather(*(buyer(i) for i in range(100)))
    won = [r for r in results if isinstance(r, list)]
    lost = [r for r in results if not isinstance(r, list)]
    assert len(won) == 10
    assert all(isinstance(e, Conflict) and e.code == "out_of_stock" for e in lost), {getattr(e, "code", e) for e in lost}
    assert all(e.extra["lines"] == [{"sku_id": sku, "requested": 1, "available": 0}] for e in lost)  # type: ignore[union-attr]
    for i, _qty in enumerate(layout):
        on_hand, reserved = await level(runtime, shop, sku, shop.locations[f"仓{i}"])
        assert reserved == on_hand  # every unit everywhere is promised, none twice
    async with runtime.db.uow(readonly=True) as s:
        assert (await service.available(s, shop.scope, [sku])) == {sku: 0}
    assert await _count(runtime, shop, StockReservation) == 10
    assert await _count(runtime, shop, StockMovement, reason="reserve") == 10
    await assert_ledger_consistent(runtime, shop)


async def test_concurrent_multi_line_reservers_never_oversell_any_line(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    """Buyers of overlapping baskets lock rows in the same order: no deadlock, no oversell."""
    a, b, c = shop.skus[:3]
    w1 = await add_location(runtime, shop, "一号仓", priority=10)
    w2 = await add_location(runtime, shop, "二号仓", priority=20)
    for sku, loc, qty in ((a, w1, 5), (a, w2, 3), (b, w2, 6), (c, w1, 7)):
        await receive(runtime, shop, sku, loc, qty)
    baskets = [[(a, 1), (b, 1)], [(b, 2), (c, 1)], [(c, 2), (a, 1)], [(a, 2), (b, 1), (c, 1)]]

    async def buyer(i: int) -> list[ReservedLine] | None:
        try:
            return await _reserve(runtime, shop, f"o:{i}", baskets[i % len(baskets)])
        except Conflict as exc:
            assert exc.code == "out_of_stock"
            return None

    results = await asyncio.gather(*(buyer(i) for i in range(60)))
    taken: Counter[int] = Counter()
    for r in results:
        for line in r or []:
            taken[line.sku_id] += line.qty
    assert taken[a] <= 8 and taken[b] <= 6 and taken[c] <= 7
    async with runtime.db.uow(readonly=True) as s:
        avail = await service.available(s, shop.scope, [a, b, c])
    assert avail == {a: 8 - taken[a], b: 6 - taken[b], c: 7 - taken[c]}
    await assert_ledger_consistent(runtime, shop)


# -- all or nothing ------------------------------------------------------------------------------------


async def test_out_of_stock_lists_every_short_line_and_changes_nothing(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b, c, d = shop.skus
    wh = await add_location(runtime, shop, "仓", priority=10)
    st = await add_location(runtime, shop, "店", priority=50)
    await receive(runtime, shop, a, wh, 2)
    await receive(runtime, shop, a, st, 1)
    await receive(runtime, shop, c, wh, 5)
    # d has never been stocked at all
    async with runtime.db.uow(readonly=True) as s:
        before_levels = await service.levels_for(s, shop.scope, shop.skus)
    movements_before = await _count(runtime, shop, StockMovement)

    with pytest.raises(Conflict) as info:
        await _reserve(runtime, shop, "order:short", [(a, 5), (b, 1), (c, 2), (d, 3)])
    err = info.value
    assert err.code == "out_of_stock" and err.status == 409
    assert err.extra["lines"] == [
        {"sku_id": a, "requested": 5, "available": 3},
        {"sku_id": b, "requested": 1, "available": 0},
        {"sku_id": d, "requested": 3, "available": 0},
    ]
    async with runtime.db.uow(readonly=True) as s:
        assert await service.levels_for(s, shop.scope, shop.skus) == before_levels
    assert await _count(runtime, shop, StockMovement) == movements_before
    assert await _count(runtime, shop, StockReservation) == 0
    # The key was not used up: the same order can reserve once the stock is there.
    await receive(runtime, shop, a, wh, 10)
    await receive(runtime, shop, b, wh, 1)
    await receive(runtime, shop, d, wh, 3)
    lines = await _reserve(runtime, shop, "order:short", [(a, 5), (b, 1), (c, 2), (d, 3)])
    assert sorted(lines, key=lambda x: x.sku_id) == [ReservedLine(a, wh, 5), ReservedLine(b, wh, 1), ReservedLine(c, wh, 2),
                                                     ReservedLine(d, wh, 3)]


async def test_a_refused_reservation_leaves_the_callers_transaction_usable(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    """The order flow may catch out_of_stock and go on in the same unit of work."""
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓")
    await receive(runtime, shop, a, wh, 1)
    async with runtime.db.uow() as s:
        with pytest.raises(Conflict):
            await service.reserve(s, shop.scope, "order:1", [(a, 1), (b, 1)])
        got = await service.reserve(s, shop.scope, "order:2", [(a, 1)])
    assert got == [ReservedLine(a, wh, 1)]
    assert await level(runtime, shop, a, wh) == (1, 1)
    assert await _count(runtime, shop, StockReservation) == 1


# -- idempotency ---------------------------------------------------------------------------------------


async def test_reserve_is_idempotent_per_source_key(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓")
    await receive(runtime, shop, a, wh, 10)
    await receive(runtime, shop, b, wh, 10)
    first = await _reserve(runtime, shop, "order:7", [(a, 2), (b, 3)])
    again = await _reserve(runtime, shop, "order:7", [(b, 3), (a, 1), (a, 1)])  # same lines, other shape
    assert again == first
    assert await level(runtime, shop, a, wh) == (10, 2)
    with pytest.raises(Conflict) as info:
        await _reserve(runtime, shop, "order:7", [(a, 3), (b, 3)])
    assert info.value.code == "reservation_key_reused"

    # Concurrent retries of one key: one reservation, reserved once.
    results = await asyncio.gather(*(_reserve(runtime, shop, "order:8", [(a, 4)]) for _ in range(20)))
    assert all(r == results[0] for r in results)
    assert await level(runtime, shop, a, wh) == (10, 6)
    assert await _count(runtime, shop, StockReservation, source_key="order:8") == 1
    await assert_ledger_consistent(runtime, shop)


async def test_release_returns_units_once_even_when_racing(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓", priority=10)
    st = await add_location(runtime, shop, "店", priority=20)
    await receive(runtime, shop, a, wh, 3)
    await receive(runtime, shop, a, st, 3)
    await receive(runtime, shop, b, st, 2)
    lines = await _reserve(runtime, shop, "order:9", [(a, 5), (b, 2)])
    assert sorted(lines, key=lambda x: (x.sku_id, x.location_id)) == [
        ReservedLine(a, wh, 3), ReservedLine(a, st, 2), ReservedLine(b, st, 2)]

    async def releaser() -> list[ReservedLine]:
        async with runtime.db.uow() as s:
            return await service.release(s, shop.scope, "order:9")

    results = await asyncio.gather(*(releaser() for _ in range(10)))
    released = [r for r in results if r]
    assert len(released) == 1
    assert sum(line.qty for line in released[0]) == 7
    assert await level(runtime, shop, a, wh) == (3, 0)
    assert await level(runtime, shop, a, st) == (3, 0)
    assert await level(runtime, shop, b, st) == (2, 0)
    assert await _count(runtime, shop, StockMovement, reason="release") == 3
    async with runtime.db.uow() as s:
        assert await service.release(s, shop.scope, "order:9") == []
        assert await service.release(s, shop.scope, "order:unknown") == []
        found = await service.reservation_by_key(s, shop.scope, "order:9")
        assert found is not None and found[0].status == "released" and found[0].closed_at is not None
    # released → active is not a transition: the key cannot reserve again, nor commit.
    with pytest.raises(Conflict) as info:
        await _reserve(runtime, shop, "order:9", [(a, 5), (b, 2)])
    assert info.value.code == "illegal_reservation_transition"
    async with runtime.db.uow() as s:
        with pytest.raises(Conflict) as info:
            await service.commit(s, shop.scope, "order:9")
    assert info.value.code == "illegal_reservation_transition"
    await assert_ledger_consistent(runtime, shop)


# -- commit (shipment) -----------------------------------------------------------------------------------


async def test_partial_commit_then_the_rest(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓", priority=10)
    st = await add_location(runtime, shop, "店", priority=20)
    await receive(runtime, shop, a, wh, 4)
    await receive(runtime, shop, a, st, 4)
    await receive(runtime, shop, b, wh, 5)
    await _reserve(runtime, shop, "order:10", [(a, 6), (b, 3)])  # a: 4 @ wh + 2 @ st

    async with runtime.db.uow() as s:
        shipped = await service.commit(s, shop.scope, "order:10", [(a, 5)], ref="parcel-1")
    assert shipped == [ReservedLine(a, wh, 4), ReservedLine(a, st, 1)]
    assert await level(runtime, shop, a, wh) == (0, 0)
    assert await level(runtime, shop, a, st) == (3, 1)
    assert await level(runtime, shop, b, wh) == (5, 3)
    async with runtime.db.uow() as s:
        # A retried shipment (same ref) ships nothing more.
        assert await service.commit(s, shop.scope, "order:10", [(a, 5)], ref="parcel-1") == shipped
        res, res_lines = await service.reservation_by_key(s, shop.scope, "order:10") or (None, [])
        assert res is not None and res.status == "active"
        assert {(ln.sku_id, ln.location_id): ln.committed for ln in res_lines} == {(a, wh): 4, (a, st): 1, (b, wh): 0}
        with pytest.raises(Conflict) as info:
            await service.commit(s, shop.scope, "order:10", [(a, 2)])
        assert info.value.code == "commit_exceeds_reservation"
        assert info.value.extra["lines"] == [{"sku_id": a, "requested": 2, "reserved": 1}]
        with pytest.raises(Conflict) as info:
            await service.commit(s, shop.scope, "order:10", [ReservedLine(b, st, 1)])
        assert info.value.code == "commit_exceeds_reservation"
        # Exact location, then everything left.
        assert await service.commit(s, shop.scope, "order:10", [ReservedLine(b, wh, 1)]) == [ReservedLine(b, wh, 1)]
        rest = await service.commit(s, shop.scope, "order:10")
    assert sorted(rest, key=lambda x: x.sku_id) == [ReservedLine(a, st, 1), ReservedLine(b, wh, 2)]
    assert await level(runtime, shop, a, st) == (2, 0)
    assert await level(runtime, shop, b, wh) == (2, 0)
    async with runtime.db.uow() as s:
        res, _lines = await service.reservation_by_key(s, shop.scope, "order:10") or (None, [])
        assert res is not None and res.status == "committed"
        assert await service.commit(s, shop.scope, "order:10") == []  # idempotent
        assert await service.release(s, shop.scope, "order:10") == []  # releasing a committed one does nothing
        with pytest.raises(Conflict) as info:
            await service.commit(s, shop.scope, "order:10", [(a, 1)])
        assert info.value.code == "illegal_reservation_transition"
        with pytest.raises(NotFound):
            await service.commit(s, shop.scope, "order:nope")
    await assert_ledger_consistent(runtime, shop)


async def test_partial_commit_then_cancel_releases_only_the_remainder(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    wh = await add_location(runtime, shop, "仓")
    await receive(runtime, shop, a, wh, 10)
    await _reserve(runtime, shop, "order:11", [(a, 6)])
    async with runtime.db.uow() as s:
        await service.commit(s, shop.scope, "order:11", [(a, 2)])
        assert await service.release(s, shop.scope, "order:11") == [ReservedLine(a, wh, 4)]
    assert await level(runtime, shop, a, wh) == (8, 0)
    await assert_ledger_consistent(runtime, shop)


# -- allocation rule -------------------------------------------------------------------------------------


async def test_locations_are_chosen_by_the_documented_rule(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b, c = shop.skus[:3]
    central = await add_location(runtime, shop, "中心仓", priority=10)
    south = await add_location(runtime, shop, "华南仓", priority=20)
    store = await add_location(runtime, shop, "门店", priority=50)
    closed = await add_location(runtime, shop, "停用仓", priority=1, status="inactive")
    for sku, loc, qty in ((a, central, 5), (a, south, 5), (a, store, 5), (b, south, 5), (b, store, 1),
                          (c, central, 1), (c, store, 1), (a, closed, 100), (b, closed, 100), (c, closed, 100)):
        await receive(runtime, shop, sku, loc, qty)

    # (1) one location for the whole basket beats a higher-priority partial one
    assert await _reserve(runtime, shop, "r1", [(a, 2), (b, 2)]) == [ReservedLine(a, south, 2), ReservedLine(b, south, 2)]
    # (2) else one location per line, in priority order
    assert await _reserve(runtime, shop, "r2", [(a, 1), (c, 1), (b, 1)]) == [
        ReservedLine(a, store, 1), ReservedLine(b, store, 1), ReservedLine(c, store, 1)]
    # (3) else split in priority order; the inactive location never serves
    assert await _reserve(runtime, shop, "r3", [(a, 9)]) == [ReservedLine(a, central, 5), ReservedLine(a, south, 3),
                                                             ReservedLine(a, store, 1)]
    # preferred locations first; only_preferred restricts (store pickup)
    await receive(runtime, shop, a, store, 4)
    assert await _reserve(runtime, shop, "r4", [(a, 2)], preferred_location_ids=[store]) == [ReservedLine(a, store, 2)]
    with pytest.raises(Conflict) as info:
        await _reserve(runtime, shop, "r5", [(c, 1)], preferred_location_ids=[south], only_preferred=True)
    assert info.value.extra["lines"] == [{"sku_id": c, "requested": 1, "available": 0}]
    assert await level(runtime, shop, a, closed) == (100, 0)
    await assert_ledger_consistent(runtime, shop)


def test_allocate_is_a_pure_function() -> None:
    from siyu.inventory.repository import Candidate

    cands = [Candidate(1, 10, 3, 1, 5), Candidate(1, 20, 9, 0, 1), Candidate(2, 10, 4, 0, 5)]
    # location 20 has priority 1 but lacks SKU 2: location 10 serves the whole basket.
    assert service.allocate({1: 2, 2: 1}, cands) == ([ReservedLine(1, 10, 2), ReservedLine(2, 10, 1)], [])
    assert service.allocate({1: 3}, cands) == ([ReservedLine(1, 20, 3)], [])
    assert service.allocate({1: 10}, cands) == ([ReservedLine(1, 20, 9), ReservedLine(1, 10, 1)], [])
    assert service.allocate({1: 12, 2: 5}, cands) == ([], [{"sku_id": 1, "requested": 12, "available": 11},
                                                           {"sku_id": 2, "requested": 5, "available": 4}])


# -- restock (after-sales) and bad input -------------------------------------------------------------------


async def test_restock_is_idempotent_per_source_key(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓", priority=10)
    st = await add_location(runtime, shop, "店", priority=20)
    await receive(runtime, shop, a, wh, 2)
    await _reserve(runtime, shop, "order:20", [(a, 2)])
    async with runtime.db.uow() as s:
        await service.commit(s, shop.scope, "order:20")
    lines = [(a, 1), ReservedLine(b, st, 2)]
    results = await asyncio.gather(*(_restock(runtime, shop, "aftersale:5", lines) for _ in range(8)))
    assert all(sorted(r, key=lambda x: x.sku_id) == [ReservedLine(a, wh, 1), ReservedLine(b, st, 2)] for r in results)
    assert await level(runtime, shop, a, wh) == (1, 0)
    assert await level(runtime, shop, b, st) == (2, 0)
    assert await _count(runtime, shop, StockMovement, reason="return") == 2
    with pytest.raises(Conflict) as info:
        await _restock(runtime, shop, "aftersale:5", [(a, 2)])
    assert info.value.code == "source_key_reused"
    await assert_ledger_consistent(runtime, shop)


async def _restock(runtime: Runtime, shop: Shop, key: str, lines: list) -> list[ReservedLine]:  # type: ignore[type-arg]
    async with runtime.db.uow() as s:
        return await service.restock(s, shop.scope, key, lines)


@pytest.mark.parametrize(("key", "lines", "code"), [
    ("", [(1, 1)], "invalid_source_key"),
    ("x" * 65, [(1, 1)], "invalid_source_key"),
    ("order 1", [(1, 1)], "invalid_source_key"),
    ("order:1", [], "invalid_lines"),
    ("order:1", [(1, 0)], "invalid_quantity"),
    ("order:1", [(1, -3)], "invalid_quantity"),
    ("order:1", [(1, True)], "invalid_quantity"),
    ("order:1", [(0, 1)], "invalid_id"),
    ("order:1", [(1, 10**9)], "invalid_quantity"),
    ("order:1", [(1,)], "invalid_lines"),
])
async def test_bad_reservation_input_is_a_422(runtime, shop, key, lines, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        await _reserve(runtime, shop, key, lines)
    assert info.value.status == 422 and info.value.code == code
