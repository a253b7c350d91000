"""Levels and the ledger: receive and adjust by conditional update with one movement each,
exactly once per source key; the default location; thresholds and the once-per-crossing
low-stock event; stocktakes applied exactly once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from siyu.inventory import service
from siyu.inventory.models import StockLocation, StockMovement
from siyu.inventory.schemas import LocationIn, LocationUpdate
from siyu.kit.audit import AuditEntry
from siyu.kit.context import Actor, actor_var
from siyu.kit.errors import Conflict, DomainError, NotFound
from siyu.kit.outbox import OutboxEvent
from siyu.kit.runtime import Runtime
from tests.conftest import drain_outbox
from tests.inventory._helpers import (
    Shop,
    add_location,
    assert_ledger_consistent,
    level,
    make_shop,
    make_skus,
    receive,
)


async def _movements(runtime: Runtime, shop: Shop, **where) -> list[StockMovement]:  # type: ignore[no-untyped-def]
    async with runtime.db.uow(readonly=True) as s:
        stmt = select(StockMovement).where(StockMovement.tenant_id == shop.scope.id).order_by(StockMovement.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(StockMovement, k) == v)
        return list((await s.execute(stmt)).scalars().all())


async def _low_events(runtime: Runtime, shop: Shop) -> list[dict]:  # type: ignore[type-arg]
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OutboxEvent.payload).where(
            OutboxEvent.tenant_id == shop.scope.id, OutboxEvent.topic == service.LOW_STOCK_TOPIC).order_by(OutboxEvent.id))).scalars()
        return [dict(p) for p in rows]


# -- receive and adjust ---------------------------------------------------------------------------------


async def test_receive_and_adjust_write_one_movement_each(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    wh = await add_location(runtime, shop, "仓")
    actor_var.set(Actor("staff", 42, "王仓管", shop.scope.id))
    mv = await receive(runtime, shop, a, wh, 12, note="采购入库 PO-1")
    assert (mv.delta_on_hand, mv.delta_reserved, mv.on_hand_after, mv.reserved_after) == (12, 0, 12, 0)
    assert (mv.reason, mv.source_type, mv.note, mv.actor_kind, mv.actor_id, mv.actor_name) == (
        "receive", "manual", "采购入库 PO-1", "staff", 42, "王仓管")
    async with runtime.db.uow() as s:
        mv = await service.adjust(s, shop.scope, a, wh, -3, "运输破损")
    assert (mv.delta_on_hand, mv.on_hand_after, mv.reason, mv.note) == (-3, 9, "adjust", "运输破损")
    assert await level(runtime, shop, a, wh) == (9, 0)
    async with runtime.db.uow(readonly=True) as s:
        actions = (await s.execute(select(AuditEntry.action).where(AuditEntry.tenant_id == shop.scope.id,
                                                                   AuditEntry.action.like("inventory.%")))).scalars().all()
    assert {"inventory.location.create", "inventory.receive", "inventory.adjust"} <= set(actions)
    await assert_ledger_consistent(runtime, shop)


async def test_a_decrease_never_touches_reserved_units(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    wh = await add_location(runtime, shop, "仓")
    await receive(runtime, shop, a, wh, 5)
    async with runtime.db.uow() as s:
        await service.reserve(s, shop.scope, "order:1", [(a, 3)])
    async with runtime.db.uow() as s:
        with pytest.raises(Conflict) as info:
            await service.adjust(s, shop.scope, a, wh, -3, "盘亏")
        assert info.value.code == "insufficient_stock"
        assert info.value.extra == {"sku_id": a, "location_id": wh, "on_hand": 5, "reserved": 3, "available": 2}
        await service.adjust(s, shop.scope, a, wh, -2, "盘亏")
    assert await level(runtime, shop, a, wh) == (3, 3)
    await assert_ledger_consistent(runtime, shop)


async def test_a_source_key_posts_once(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓")
    first = await receive(runtime, shop, a, wh, 7, source_key="po-1")
    again = await receive(runtime, shop, a, wh, 7, source_key="po-1")
    assert again.id == first.id
    assert await level(runtime, shop, a, wh) == (7, 0)
    for kw in ({"qty": 8}, {"sku_id": b}):
        with pytest.raises(Conflict) as info:
            await receive(runtime, shop, kw.get("sku_id", a), wh, kw.get("qty", 7), source_key="po-1")
        assert info.value.code == "source_key_reused"
    # Receive and adjust keys live apart: the same caller key may name one of each.
    async with runtime.db.uow() as s:
        await service.adjust(s, shop.scope, a, wh, 1, "盘盈", source_key="po-1")

    # Concurrent retries of one key: one movement, counted once.
    results = await asyncio.gather(*(receive(runtime, shop, b, wh, 5, source_key="po-2") for _ in range(12)))
    assert len({r.id for r in results}) == 1
    assert await level(runtime, shop, b, wh) == (5, 0)
    assert len(await _movements(runtime, shop, sku_id=b)) == 1
    await assert_ledger_consistent(runtime, shop)


async def test_counters_have_an_upper_bound(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    wh = await add_location(runtime, shop, "仓")
    await receive(runtime, shop, a, wh, 100_000_000)
    with pytest.raises(Conflict) as info:
        await receive(runtime, shop, a, wh, 1)
    assert info.value.code == "stock_limit_exceeded"
    with pytest.raises(DomainError) as info2:
        await receive(runtime, shop, a, wh, 100_000_001)
    assert info2.value.code == "invalid_quantity"


async def test_unknown_and_foreign_skus_are_refused(runtime, shop, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    other = await make_shop(runtime, tenant_factory, skus=1)
    wh = await add_location(runtime, shop, "仓")
    for sku in (other.skus[0], 2**62):
        with pytest.raises(DomainError) as info:
            await receive(runtime, shop, sku, wh, 1)
        assert (info.value.status, info.value.code) == (422, "sku_not_found")
    # Another tenant's location is not found, whatever the SKU.
    other_wh = await add_location(runtime, other, "别家仓")
    with pytest.raises(NotFound) as nf:
        await receive(runtime, shop, shop.skus[0], other_wh, 1)
    assert nf.value.code == "location_not_found"
    assert await level(runtime, other, other.skus[0], other_wh) == (0, 0)


# -- locations --------------------------------------------------------------------------------------------


async def test_default_location_is_created_once_on_first_use(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    shop = await make_shop(runtime, tenant_factory, skus=1)

    async def default() -> int:
        async with runtime.db.uow() as s:
            return (await service.default_location(s, shop.scope)).id

    ids = await asyncio.gather(*(default() for _ in range(10)))
    assert len(set(ids)) == 1
    mv = await receive(runtime, shop, shop.skus[0], None, 3)
    assert mv.location_id == ids[0]
    async with runtime.db.uow() as s:
        locs = await service.list_locations(s, shop.scope)
        assert [(loc.code, loc.name, loc.kind) for loc in locs] == [("default", "默认仓库", "warehouse")]
        # A higher-priority active location becomes the default.
        hz = await service.create_location(s, shop.scope, LocationIn(code="hz", name="杭州仓", priority=5))
        assert (await service.default_location(s, shop.scope)).id == hz.id
        # All inactive: no silent new location.
        for loc in [*locs, hz]:
            await service.update_location(s, shop.scope, loc.id, LocationUpdate(status="inactive"))
        with pytest.raises(Conflict) as info:
            await service.default_location(s, shop.scope)
        assert info.value.code == "no_active_location"


async def test_location_rules(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    from tests._pages import make_store

    store_id = await make_store(runtime, shop.tenant, name="西湖店")
    async with runtime.db.uow() as s:
        loc = await service.create_location(s, shop.scope, LocationIn(code="xihu", name="西湖店库存", kind="store",
                                                                       store_id=store_id, priority=50))
        assert (loc.kind, loc.store_id) == ("store", store_id)
    cases = [
        (LocationIn(code="xihu", name="重复"), "location_code_taken"),
        (LocationIn(code="x2", name="第二个", kind="store", store_id=store_id), "store_location_exists"),
        (LocationIn(code="x3", name="无门店", kind="store"), "store_required"),
        (LocationIn(code="x4", name="仓", kind="warehouse", store_id=store_id), "store_not_allowed"),
        (LocationIn(code="x5", name="假门店", kind="store", store_id=2**60), "store_not_found"),
    ]
    for data, code in cases:
        async with runtime.db.uow() as s:
            with pytest.raises(DomainError) as info:
                await service.create_location(s, shop.scope, data)
            assert info.value.code == code, (data, info.value.code)


# -- low stock ---------------------------------------------------------------------------------------------


async def test_low_stock_event_fires_once_per_crossing(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓")
    await receive(runtime, shop, a, wh, 10)
    async with runtime.db.uow() as s:
        await service.set_threshold(s, shop.scope, a, wh, 5)
    steps = [("reserve", "o1", 3), ("reserve", "o2", 2), ("reserve", "o3", 1), ("release", "o3", 0), ("release", "o2", 0),
             ("reserve", "o4", 2), ("commit", "o1", 0)]
    for kind, key, qty in steps:
        async with runtime.db.uow() as s:
            if kind == "reserve":
                await service.reserve(s, shop.scope, key, [(a, qty)])
            elif kind == "release":
                await service.release(s, shop.scope, key)
            else:
                await service.commit(s, shop.scope, key)
    # available: 10 → 7 → 5 (cross) → 4 → 5 → 7 → 5 (cross) → 5 (commit moves both counters)
    events = await _low_events(runtime, shop)
    assert [(e["sku_id"], e["location_id"], e["available"], e["threshold"]) for e in events] == [(a, wh, 5, 5), (a, wh, 5, 5)]
    async with runtime.db.uow() as s:
        await service.adjust(s, shop.scope, a, wh, -1, "破损")  # 4: already low, no new event
        await receive_in(s, shop, b, wh, 1)
        await service.set_threshold(s, shop.scope, b, wh, 0)
        low = await service.low_stock(s, shop.scope)
    assert [(lv.sku_id, lv.available, lv.low_stock_threshold) for lv in low] == [(a, 4, 5)]
    assert len(await _low_events(runtime, shop)) == 2
    async with runtime.db.uow() as s:
        await service.reserve(s, shop.scope, "o5", [(b, 1)])  # b: 1 → 0 with threshold 0
        low = await service.low_stock(s, shop.scope)
    assert [(lv.sku_id, lv.available) for lv in low] == [(b, 0), (a, 4)]  # most urgent first
    assert len(await _low_events(runtime, shop)) == 3
    assert await drain_outbox(runtime) >= 3  # the handler runs (and only logs)
    async with runtime.db.uow() as s:
        lv = await service.set_threshold(s, shop.scope, a, wh, None)
        assert lv.low_stock_threshold is None
        assert [x.sku_id for x in await service.low_stock(s, shop.scope)] == [b]


async def receive_in(s, shop: Shop, sku: int, loc: int, qty: int):  # type: ignore[no-untyped-def]
    return await service.receive(s, shop.scope, sku, loc, qty)


# -- stocktakes --------------------------------------------------------------------------------------------


async def test_stocktake_posts_the_differences_exactly_once(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b, c, d = shop.skus
    wh = await add_location(runtime, shop, "仓")
    await receive(runtime, shop, a, wh, 10)
    await receive(runtime, shop, b, wh, 4)
    await receive(runtime, shop, c, wh, 6)
    async with runtime.db.uow() as s:
        st = await service.create_stocktake(s, shop.scope, wh, "月末盘点")
        await service.record_counts(s, shop.scope, st.id, [(a, 8), (b, 4), (d, 2), (c, 1)])
        await service.record_counts(s, shop.scope, st.id, [(c, None)])  # c was not counted after all
    # Stock moves between the count and its application: the difference is taken then.
    await receive(runtime, shop, a, wh, 1)

    async def apply() -> str:
        try:
            async with runtime.db.uow() as s:
                return (await service.apply_stocktake(s, shop.scope, st.id)).status
        except Conflict as exc:
            return exc.code

    results = await asyncio.gather(*(apply() for _ in range(6)))
    assert sorted(results) == ["applied"] + ["illegal_stocktake_transition"] * 5
    assert await level(runtime, shop, a, wh) == (8, 0)
    assert await level(runtime, shop, b, wh) == (4, 0)
    assert await level(runtime, shop, c, wh) == (6, 0)
    assert await level(runtime, shop, d, wh) == (2, 0)
    moved = await _movements(runtime, shop, reason="stocktake")
    assert sorted((m.sku_id, m.delta_on_hand, m.source_id) for m in moved) == [(a, -3, str(st.id)), (d, 2, str(st.id))]
    async with runtime.db.uow() as s:
        st2, lines = await service.get_stocktake(s, shop.scope, st.id)
        assert st2.status == "applied" and st2.applied_at is not None
        assert [(ln.sku_id, ln.counted, ln.system_on_hand, ln.delta) for ln in lines] == [(a, 8, 11, -3), (b, 4, 4, 0),
                                                                                           (d, 2, 0, 2)]
        for call in (service.cancel_stocktake(s, shop.scope, st.id), service.record_counts(s, shop.scope, st.id, [(a, 1)])):
            with pytest.raises(Conflict) as info:
                await call
            assert info.value.code == "illegal_stocktake_transition"
    await assert_ledger_consistent(runtime, shop)


async def test_a_count_below_reserved_is_refused_and_changes_nothing(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓")
    await receive(runtime, shop, a, wh, 5)
    await receive(runtime, shop, b, wh, 5)
    async with runtime.db.uow() as s:
        await service.reserve(s, shop.scope, "order:1", [(a, 4)])
        st = await service.create_stocktake(s, shop.scope, wh)
        await service.record_counts(s, shop.scope, st.id, [(a, 3), (b, 1)])
    async with runtime.db.uow() as s:
        with pytest.raises(Conflict) as info:
            await service.apply_stocktake(s, shop.scope, st.id)
    assert info.value.code == "stocktake_below_reserved"
    assert info.value.extra["lines"] == [{"sku_id": a, "counted": 3, "reserved": 4}]
    assert await level(runtime, shop, b, wh) == (5, 0)
    async with runtime.db.uow() as s:
        assert (await service.cancel_stocktake(s, shop.scope, st.id)).status == "cancelled"
        empty = await service.create_stocktake(s, shop.scope, wh)
        with pytest.raises(Conflict) as info:
            await service.apply_stocktake(s, shop.scope, empty.id)
        assert info.value.code == "stocktake_empty"


async def test_levels_for_and_available_cover_every_requested_sku(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    a, b = shop.skus[:2]
    wh = await add_location(runtime, shop, "仓", priority=10)
    off = await add_location(runtime, shop, "停用仓", priority=5)
    await receive(runtime, shop, a, wh, 3)
    await receive(runtime, shop, a, off, 4)
    async with runtime.db.uow() as s:
        await service.update_location(s, shop.scope, off, LocationUpdate(status="inactive"))
        assert await service.available(s, shop.scope, [a, b, a]) == {a: 3, b: 0}
        per = await service.levels_for(s, shop.scope, [a, b])
        assert [(lv.location_id, lv.on_hand, lv.location_status) for lv in per[a]] == [(off, 4, "inactive"), (wh, 3, "active")]
        assert per[b] == []
        assert await service.available(s, shop.scope, []) == {}


async def test_every_location_query_is_scoped_to_the_tenant(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    one = await make_shop(runtime, tenant_factory, skus=1)
    two = await make_shop(runtime, tenant_factory, skus=1)
    loc_two = await add_location(runtime, two, "乙仓")
    await receive(runtime, two, two.skus[0], loc_two, 9)
    async with runtime.db.uow() as s:
        with pytest.raises(NotFound):
            await service.get_location(s, one.scope, loc_two)
        assert await service.list_locations(s, one.scope) == []
        assert await service.available(s, one.scope, [two.skus[0]]) == {two.skus[0]: 0}
        assert (await service.search_levels(s, one.scope))[1] == 0
        with pytest.raises(NotFound):
            await service.create_stocktake(s, one.scope, loc_two)
    # SKU ids of another tenant reserve nothing here.
    extra = await make_skus(runtime, one.tenant.id, 1)
    async with runtime.db.uow() as s:
        with pytest.raises(Conflict):
            await service.reserve(s, one.scope, "order:x", [(two.skus[0], 1), (extra[0], 1)])
        count = (await s.execute(select(func.count()).select_from(StockLocation).where(StockLocation.tenant_id == one.scope.id))).scalar_one()
    assert count == 0


async def test_a_lost_race_on_a_source_key_becomes_a_replay(runtime, shop, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Injected race: the duplicate check misses the earlier movement (as when two requests
    check at the same moment); the unique key catches it, the level update is rolled back
    with its savepoint, and the caller gets the earlier movement instead of an error."""
    from siyu.inventory.repository import Movements

    a = shop.skus[0]
    wh = await add_location(runtime, shop, "仓")
    first = await receive(runtime, shop, a, wh, 5, source_key="race-1")
    real = Movements.by_keys
    calls = 0

    async def blind_once(self, keys):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return [] if calls == 1 else await real(self, keys)

    monkeypatch.setattr(Movements, "by_keys", blind_once)
    async with runtime.db.uow() as s:
        again = await service.receive(s, shop.scope, a, wh, 5, source_key="race-1")
        other = await service.receive(s, shop.scope, a, wh, 1)  # the transaction goes on normally
    assert again.id == first.id and calls == 3
    assert other.on_hand_after == 6
    assert await level(runtime, shop, a, wh) == (6, 0)
    await assert_ledger_consistent(runtime, shop)
