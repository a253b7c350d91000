"""Partial release: units refunded before they ship leave the order's reservation.

``release(session, scope, key, lines, ref=...)`` gives back only the units named, capped at
what is still reserved and not committed; a ref posts once however often it is retried (also
concurrently); the reservation shrinks, so later shipments and a final release see only what
is still promised, and it ends ``committed`` (something shipped) or ``released`` (nothing
did) once it holds nothing.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from siyu.inventory import service
from siyu.inventory.models import StockLevel, StockMovement, StockReservation, StockReservationLine
from siyu.inventory.service import ReservedLine
from siyu.kit.errors import DomainError
from siyu.kit.runtime import Runtime
from tests.inventory._helpers import (
    Shop,
    add_location,
    assert_ledger_consistent,
    level,
    make_skus,
    receive,
)


async def _reserve(runtime: Runtime, shop: Shop, key: str, lines: list[tuple[int, int]], **kw) -> list[ReservedLine]:  # type: ignore[no-untyped-def]
    async with runtime.db.uow() as s:
        return await service.reserve(s, shop.scope, key, lines, **kw)


async def _release(runtime: Runtime, shop: Shop, key: str, lines: list | None = None, ref: str | None = None) -> list[ReservedLine]:  # type: ignore[type-arg]
    async with runtime.db.uow() as s:
        return await service.release(s, shop.scope, key, lines, ref=ref)


async def _commit(runtime: Runtime, shop: Shop, key: str, lines: list | None = None, ref: str | None = None) -> list[ReservedLine]:  # type: ignore[type-arg]
    async with runtime.db.uow() as s:
        return await service.commit(s, shop.scope, key, lines, ref=ref)


async def _status(runtime: Runtime, shop: Shop, key: str) -> tuple[str, dict[tuple[int, int], tuple[int, int]]]:
    """(status, {(sku, location): (quantity, committed)})."""
    async with runtime.db.uow(readonly=True) as s:
        found = await service.reservation_by_key(s, shop.scope, key)
    assert found is not None
    res, lines = found
    held: dict[tuple[int, int], tuple[int, int]] = {}
    for ln in lines:
        q, c = held.get((ln.sku_id, ln.location_id), (0, 0))
        held[(ln.sku_id, ln.location_id)] = (q + ln.quantity, c + ln.committed)
    return res.status, held


async def _release_movements(runtime: Runtime, shop: Shop, key: str) -> int:
    async with runtime.db.uow(readonly=True) as s:
        return int((await s.execute(select(func.count()).select_from(StockMovement).where(
            StockMovement.tenant_id == shop.scope.id, StockMovement.source_id == key,
            StockMovement.reason == "release"))).scalar_one())


async def test_a_partial_release_gives_back_only_the_named_units(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓", priority=10)
    await receive(runtime, shop, a, wh, 10)
    await receive(runtime, shop, b, wh, 10)
    await _reserve(runtime, shop, "order:1", [(a, 4), (b, 2)])

    assert await _release(runtime, shop, "order:1", [(a, 3)], ref="after_sale:1") == [ReservedLine(a, wh, 3)]
    assert await level(runtime, shop, a, wh) == (10, 1)
    assert await level(runtime, shop, b, wh) == (10, 2)
    status, held = await _status(runtime, shop, "order:1")
    assert status == "active" and held == {(a, wh): (1, 0), (b, wh): (2, 0)}
    # Shipping afterwards commits what is left, and the reservation is done.
    assert sorted(await _commit(runtime, shop, "order:1", ref="shp:1"), key=lambda x: x.sku_id) == [
        ReservedLine(a, wh, 1), ReservedLine(b, wh, 2)]
    assert (await _status(runtime, shop, "order:1"))[0] == "committed"
    assert await level(runtime, shop, a, wh) == (9, 0)
    assert await level(runtime, shop, b, wh) == (8, 0)
    await assert_ledger_consistent(runtime, shop)


async def test_the_same_ref_releases_once_even_when_racing(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    wh = await add_location(runtime, shop, "仓", priority=10)
    await receive(runtime, shop, a, wh, 10)
    await _reserve(runtime, shop, "order:2", [(a, 6)])

    results = await asyncio.gather(*(_release(runtime, shop, "order:2", [(a, 2)], ref="after_sale:7") for _ in range(10)))
    assert all(r == [ReservedLine(a, wh, 2)] for r in results), results
    assert await level(runtime, shop, a, wh) == (10, 4)
    assert await _release_movements(runtime, shop, "order:2") == 1
    # A later retry, and another case's release, behave.
    assert await _release(runtime, shop, "order:2", [(a, 2)], ref="after_sale:7") == [ReservedLine(a, wh, 2)]
    assert await _release(runtime, shop, "order:2", [(a, 1)], ref="after_sale:8") == [ReservedLine(a, wh, 1)]
    assert await level(runtime, shop, a, wh) == (10, 3)
    # Without a ref each call is a new release.
    assert await _release(runtime, shop, "order:2", [(a, 1)]) == [ReservedLine(a, wh, 1)]
    assert await _release(runtime, shop, "order:2", [(a, 1)]) == [ReservedLine(a, wh, 1)]
    assert await level(runtime, shop, a, wh) == (10, 1)
    assert (await _status(runtime, shop, "order:2"))[1] == {(a, wh): (1, 0)}
    await assert_ledger_consistent(runtime, shop)


async def test_committed_units_never_go_back_and_the_status_ends_right(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓", priority=10)
    await receive(runtime, shop, a, wh, 10)
    await receive(runtime, shop, b, wh, 10)
    await _reserve(runtime, shop, "order:3", [(a, 3), (b, 1)])
    await _commit(runtime, shop, "order:3", [(a, 2)], ref="shp:1")

    # More than is still held: capped at the one uncommitted unit of a.
    assert await _release(runtime, shop, "order:3", [(a, 5)], ref="after_sale:1") == [ReservedLine(a, wh, 1)]
    assert (await _status(runtime, shop, "order:3"))[0] == "active"  # b still waits to ship
    assert await _release(runtime, shop, "order:3", [(b, 1)], ref="after_sale:2") == [ReservedLine(b, wh, 1)]
    status, held = await _status(runtime, shop, "order:3")
    assert status == "committed", "something shipped, nothing is left to ship"
    assert held == {(a, wh): (2, 2), (b, wh): (0, 0)}
    assert await level(runtime, shop, a, wh) == (8, 0)
    assert await level(runtime, shop, b, wh) == (10, 0)
    # Nothing more to give back, whatever is asked.
    assert await _release(runtime, shop, "order:3", [(a, 1)], ref="after_sale:3") == []
    assert await _release(runtime, shop, "order:3") == []

    # Nothing shipped and everything given back: released.
    await _reserve(runtime, shop, "order:4", [(a, 2)])
    assert await _release(runtime, shop, "order:4", [(a, 2)], ref="after_sale:4") == [ReservedLine(a, wh, 2)]
    assert (await _status(runtime, shop, "order:4"))[0] == "released"
    assert await _release(runtime, shop, "order:4") == []
    await assert_ledger_consistent(runtime, shop)


async def test_units_go_back_from_the_last_allocated_location_or_an_exact_one(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    wh = await add_location(runtime, shop, "仓", priority=10)
    st_ = await add_location(runtime, shop, "店", priority=20)
    await receive(runtime, shop, a, wh, 3)
    await receive(runtime, shop, a, st_, 5)
    assert await _reserve(runtime, shop, "order:5", [(a, 6)]) == [ReservedLine(a, wh, 3), ReservedLine(a, st_, 3)]

    assert await _release(runtime, shop, "order:5", [(a, 2)], ref="after_sale:1") == [ReservedLine(a, st_, 2)]
    assert await _release(runtime, shop, "order:5", [ReservedLine(a, wh, 1)], ref="after_sale:2") == [ReservedLine(a, wh, 1)]
    # Spread when one location is not enough.
    assert sorted(await _release(runtime, shop, "order:5", [(a, 2)], ref="after_sale:3"), key=lambda x: x.location_id) == sorted(
        [ReservedLine(a, wh, 1), ReservedLine(a, st_, 1)], key=lambda x: x.location_id)
    assert (await _status(runtime, shop, "order:5"))[1] == {(a, wh): (1, 0), (a, st_): (0, 0)}
    assert await level(runtime, shop, a, wh) == (3, 1)
    assert await level(runtime, shop, a, st_) == (5, 0)
    # The final release (order cancelled) gives back only the remainder.
    assert await _release(runtime, shop, "order:5") == [ReservedLine(a, wh, 1)]
    assert await level(runtime, shop, a, wh) == (3, 0)
    await assert_ledger_consistent(runtime, shop)


async def test_repeating_the_original_reserve_after_a_partial_release_is_still_the_same_reservation(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓", priority=10)
    await receive(runtime, shop, a, wh, 10)
    await receive(runtime, shop, b, wh, 10)
    await _reserve(runtime, shop, "order:6", [(a, 3), (b, 1)])
    await _release(runtime, shop, "order:6", [(a, 2)], ref="after_sale:1")
    again = await _reserve(runtime, shop, "order:6", [(a, 3), (b, 1)])
    assert sorted(again, key=lambda x: x.sku_id) == [ReservedLine(a, wh, 1), ReservedLine(b, wh, 1)]
    assert await level(runtime, shop, a, wh) == (10, 1), "nothing reserved twice"
    with pytest.raises(DomainError) as info:
        await _reserve(runtime, shop, "order:6", [(a, 1), (b, 1)])
    assert info.value.code == "reservation_key_reused"


@pytest.mark.parametrize(("lines", "ref", "code"), [
    ([], "after_sale:1", "invalid_lines"),
    ([(1, 0)], "after_sale:1", "invalid_quantity"),
    ([(0, 1)], "after_sale:1", "invalid_id"),
    ([(1,)], "after_sale:1", "invalid_lines"),
    ([(1, 1)], "bad ref", "invalid_ref"),
    ([(1, 1)], "x" * 41, "invalid_ref"),
])
async def test_bad_partial_release_input_is_a_422(runtime, shop, lines, ref, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        await _release(runtime, shop, "order:1", lines, ref=ref)
    assert info.value.status == 422 and info.value.code == code


async def test_an_unknown_key_releases_nothing(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    assert await _release(runtime, shop, "order:none", [(shop.skus[0], 1)], ref="after_sale:1") == []


# -- property ----------------------------------------------------------------------------------------------

#: ("commit", sku index, qty) | ("part", sku index, qty, ref index or None) | ("all",)
step = st.one_of(
    st.tuples(st.just("commit"), st.integers(0, 1), st.integers(1, 3)),
    st.tuples(st.just("part"), st.integers(0, 1), st.integers(1, 4), st.one_of(st.none(), st.integers(0, 3))),
    st.tuples(st.just("all")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=12))
async def test_partial_releases_keep_levels_reservations_and_ledger_in_step(runtime, shop, steps) -> None:  # type: ignore[no-untyped-def]
    """Whatever mix of shipments, partial releases (refs repeated or not) and a final release
    runs: the levels equal the ledger, each level's reserved units equal what the active
    reservation still holds, a ref releases at most once, and an active reservation always
    still holds something."""
    run = secrets.token_hex(3)
    skus = await make_skus(runtime, shop.tenant.id, 2)
    locs = [await add_location(runtime, shop, f"仓{run}a", priority=10), await add_location(runtime, shop, f"仓{run}b", priority=20)]
    for sku in skus:
        await receive(runtime, shop, sku, locs[0], 3)
        await receive(runtime, shop, sku, locs[1], 3)
    key = f"order:{run}"
    await _reserve(runtime, shop, key, [(skus[0], 5), (skus[1], 4)])
    seen_refs: dict[str, list[ReservedLine]] = {}
    shipments = 0
    for s in steps:
        try:
            if s[0] == "commit":
                shipments += 1
                await _commit(runtime, shop, key, [(skus[s[1]], s[2])], ref=f"shp:{shipments}")
            elif s[0] == "part":
                ref = f"after_sale:{s[3]}" if s[3] is not None else None
                got = await _release(runtime, shop, key, [(skus[s[1]], s[2])], ref=ref)
                if ref is not None and ref in seen_refs:
                    assert got == seen_refs[ref], (s, got, seen_refs[ref])  # a replay: the earlier result
                else:
                    assert sum(x.qty for x in got) <= s[2], s
                    if ref is not None and got:
                        seen_refs[ref] = got
            else:
                await _release(runtime, shop, key)
        except DomainError as exc:
            assert exc.code in {"commit_exceeds_reservation", "illegal_reservation_transition"}, (s, exc.code)
        async with runtime.db.uow(readonly=True) as db:
            res = (await db.execute(select(StockReservation).where(StockReservation.tenant_id == shop.scope.id,
                                                                   StockReservation.source_key == key))).scalar_one()
            lines = (await db.execute(select(StockReservationLine).where(
                StockReservationLine.reservation_id == res.id))).scalars().all()
            levels = (await db.execute(select(StockLevel).where(StockLevel.tenant_id == shop.scope.id,
                                                                StockLevel.sku_id.in_(skus)))).scalars().all()
        held: dict[tuple[int, int], int] = defaultdict(int)
        for ln in lines:
            assert 0 <= ln.committed <= ln.quantity, s
            if res.status == "active":
                held[(ln.sku_id, ln.location_id)] += ln.quantity - ln.committed
        for lv in levels:
            assert lv.reserved == held.get((lv.sku_id, lv.location_id), 0), (s, lv.sku_id, lv.location_id)
        if res.status == "active":
            assert sum(held.values()) > 0, s
        elif res.status == "committed":
            assert any(ln.committed for ln in lines), s
        await assert_ledger_consistent(runtime, shop)
