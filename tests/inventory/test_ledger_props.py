"""Property: whatever sequence of stock operations runs, the counters and the ledger agree.

Random sequences of receive, adjust, reserve, release, commit (whole or partial), restock
and stocktakes run against fresh SKUs and locations, each step in its own unit of work.
Steps the rules refuse (out of stock, illegal transitions...) must be refused with their
domain error and change nothing. After every step, for every level:

* ``on_hand`` == Σ ``delta_on_hand`` of its movements and ``reserved`` == Σ ``delta_reserved``;
* ``0 <= reserved <= on_hand``;
* ``reserved`` == what the active reservations still hold there (quantity − committed);
* ``available()`` == Σ (on_hand − reserved) over the active locations.
"""

from __future__ import annotations

import secrets
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.inventory import service
from siyu.inventory.models import StockLevel, StockReservation, StockReservationLine
from siyu.inventory.service import ReservedLine
from siyu.kit.errors import DomainError
from siyu.kit.runtime import Runtime
from tests.inventory._helpers import Shop, add_location, make_skus

EXPECTED_REFUSALS = {
    "out_of_stock", "insufficient_stock", "illegal_reservation_transition", "commit_exceeds_reservation",
    "reservation_key_reused", "source_key_reused", "stocktake_below_reserved", "reservation_not_found",
}

sku_i = st.integers(0, 2)
loc_i = st.integers(0, 1)
key_i = st.integers(0, 2)
receive = st.tuples(st.just("receive"), sku_i, loc_i, st.integers(1, 6))
adjust = st.tuples(st.just("adjust"), sku_i, loc_i, st.sampled_from([-4, -3, -2, -1, 1, 2, 3, 4]))
reserve = st.tuples(st.just("reserve"), key_i, st.lists(st.tuples(sku_i, st.integers(1, 4)), min_size=1, max_size=3),
                    st.one_of(st.none(), loc_i))
#: release and commit name the n-th key that reserved (3: a key that never did); a partial
#: commit names a line of that reservation by index, by SKU or by exact location.
pick_i = st.integers(0, 3)
release = st.tuples(st.just("release"), pick_i)
commit = st.tuples(st.just("commit"), pick_i,
                   st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(1, 3), st.booleans())))
restock = st.tuples(st.just("restock"), st.integers(0, 3), sku_i, loc_i, st.integers(1, 3))
stocktake = st.tuples(st.just("stocktake"), loc_i, st.lists(st.tuples(sku_i, st.integers(0, 8)), min_size=1, max_size=3))
deactivate = st.tuples(st.just("deactivate"), loc_i, st.booleans())
#: Reservation steps are drawn more often than the rest, so that keys get reserved,
#: partly committed and released in many orders.
ops = st.lists(
    st.one_of(reserve, reserve, commit, commit, release, release, receive, adjust, restock, stocktake, deactivate),
    min_size=4,
    max_size=30,
)


async def _check(runtime: Runtime, shop: Shop, skus: list[int], locs: list[int], step: object) -> None:
    async with runtime.db.uow(readonly=True) as s:
        levels = (await s.execute(select(StockLevel).where(StockLevel.tenant_id == shop.scope.id,
                                                           StockLevel.sku_id.in_(skus)))).scalars().all()
        sums = await service.ledger_sums(s, shop.scope)
        held: dict[tuple[int, int], int] = defaultdict(int)
        rows = (await s.execute(
            select(StockReservationLine.sku_id, StockReservationLine.location_id,
                   StockReservationLine.quantity - StockReservationLine.committed)
            .join(StockReservation, StockReservation.id == StockReservationLine.reservation_id)
            .where(StockReservation.tenant_id == shop.scope.id, StockReservation.status == "active",
                   StockReservationLine.sku_id.in_(skus)))).all()
        for sku, loc, left in rows:
            held[(sku, loc)] += left
        available = await service.available(s, shop.scope, skus)
        active = {loc.id for loc in await service.list_locations(s, shop.scope, status="active")}
    expect_available: dict[int, int] = {sku: 0 for sku in skus}
    for lv in levels:
        pair = (lv.sku_id, lv.location_id)
        assert (lv.on_hand, lv.reserved) == sums.get(pair, (0, 0)), (step, pair, lv.on_hand, lv.reserved, sums.get(pair))
        assert 0 <= lv.reserved <= lv.on_hand, (step, pair)
        assert lv.reserved == held.get(pair, 0), (step, pair, lv.reserved, held.get(pair))
        if lv.location_id in active:
            expect_available[lv.sku_id] += lv.on_hand - lv.reserved
    assert available == expect_available, step
    assert {p for p in sums if p[0] in skus} <= {(lv.sku_id, lv.location_id) for lv in levels}


def _pick(reserved: list[str], i: int, run: str) -> str:
    return reserved[i % len(reserved)] if reserved and i < 3 else f"{run}:never-reserved"


async def _partial(s, shop: Shop, key: str, pick: tuple[int, int, bool]) -> list[object] | None:  # type: ignore[no-untyped-def]
    found = await service.reservation_by_key(s, shop.scope, key)
    if found is None or not found[1]:
        return None
    line = found[1][pick[0] % len(found[1])]
    if pick[2]:
        return [ReservedLine(line.sku_id, line.location_id, pick[1])]
    return [(line.sku_id, pick[1])]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=ops)
async def test_counters_always_equal_the_ledger(runtime, shop, steps) -> None:  # type: ignore[no-untyped-def]
    from siyu.inventory.schemas import LocationUpdate

    run = secrets.token_hex(3)
    skus = await make_skus(runtime, shop.tenant.id, 3)
    locs = [await add_location(runtime, shop, f"仓{run}a", priority=10), await add_location(runtime, shop, f"仓{run}b", priority=20)]
    async with runtime.db.uow() as s:  # opening stock, so that reservations mostly succeed
        for sku in skus:
            for loc in locs:
                await service.receive(s, shop.scope, sku, loc, 4)
    reserved: list[str] = []  # keys that reserved: release and commit mostly aim at them
    opening = [("reserve", 0, [(0, 2), (1, 1)], None), ("reserve", 1, [(0, 3), (2, 2)], 1)]
    for step in [*opening, *steps]:
        kind = step[0]
        try:
            async with runtime.db.uow() as s:
                sc = shop.scope
                if kind == "receive":
                    await service.receive(s, sc, skus[step[1]], locs[step[2]], step[3])
                elif kind == "adjust":
                    await service.adjust(s, sc, skus[step[1]], locs[step[2]], step[3], "property test")
                elif kind == "reserve":
                    preferred = [locs[step[3]]] if step[3] is not None else None
                    key = f"{run}:order:{step[1]}"
                    await service.reserve(s, sc, key, [(skus[i], q) for i, q in step[2]], preferred)
                    reserved.append(key)
                elif kind == "release":
                    await service.release(s, sc, _pick(reserved, step[1], run))
                elif kind == "commit":
                    key = _pick(reserved, step[1], run)
                    lines = await _partial(s, shop, key, step[2]) if step[2] else None
                    await service.commit(s, sc, key, lines)
                elif kind == "restock":
                    await service.restock(s, sc, f"{run}:return:{step[1]}", [(skus[step[2]], step[4])], location_id=locs[step[3]])
                elif kind == "stocktake":
                    take = await service.create_stocktake(s, sc, locs[step[1]])
                    await service.record_counts(s, sc, take.id, [(skus[i], n) for i, n in step[2]])
                    await service.apply_stocktake(s, sc, take.id)
                elif kind == "deactivate":
                    await service.update_location(s, sc, locs[step[1]], LocationUpdate(status="inactive" if step[2] else "active"))
        except DomainError as exc:
            assert exc.code in EXPECTED_REFUSALS, (step, exc.code, exc.message_en)
        await _check(runtime, shop, skus, locs, step)
