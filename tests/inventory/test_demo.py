"""The demo seeder: believable stock through the service, a few SKUs low or sold out, and
safe to run twice."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from siyu.inventory import service
from siyu.inventory.demo import seed_inventory
from siyu.inventory.models import StockMovement
from tests._pages import make_store
from tests.inventory._helpers import Shop, assert_ledger_consistent, make_skus


async def _seed(runtime, shop: Shop, skus: list[int]) -> dict:  # type: ignore[no-untyped-def, type-arg]
    async with runtime.db.uow() as s:
        return await seed_inventory(s, shop.scope, skus, random.Random(7))


async def _movements(runtime, shop: Shop) -> int:  # type: ignore[no-untyped-def]
    async with runtime.db.uow(readonly=True) as s:
        return int((await s.execute(select(func.count()).select_from(StockMovement)
                                    .where(StockMovement.tenant_id == shop.scope.id))).scalar_one())


async def test_seed_inventory(runtime, shop) -> None:  # type: ignore[no-untyped-def]
    for name in ("西湖旗舰店", "南京西路店"):
        await make_store(runtime, shop.tenant, name=name)
    skus = shop.skus + await make_skus(runtime, shop.tenant.id, 20, title="凤凰单丛")
    summary = await _seed(runtime, shop, skus)
    assert summary["locations"] == 4 and summary["sold_out"] >= 1 and summary["running_low"] >= 1
    async with runtime.db.uow(readonly=True) as s:
        locs = await service.list_locations(s, shop.scope)
        assert [loc.kind for loc in locs] == ["warehouse", "warehouse", "store", "store"]
        available = await service.available(s, shop.scope, skus)
        low = await service.low_stock(s, shop.scope)
        stocktakes, _total = await service.list_stocktakes(s, shop.scope)
    assert sum(1 for n in available.values() if n == 0) == summary["sold_out"]
    assert len({lv.sku_id for lv in low if lv.location_id == locs[0].id}) >= summary["sold_out"] + summary["running_low"]
    assert [st.status for st in stocktakes] == ["applied"]
    before = await _movements(runtime, shop)
    assert before > len(skus)
    await _seed(runtime, shop, skus)  # a second run adds nothing
    assert await _movements(runtime, shop) == before
    await assert_ledger_consistent(runtime, shop)
