"""Demo stock for ``siyu demo``: a central and a regional warehouse, one location per store,
opening stock with a few SKUs running low or sold out, a damage write-off and an applied
stocktake, all posted through the service so the ledger tells the story.

Safe to run twice: a tenant that already has the demo's central warehouse is left alone
(and every posting carries a source key besides).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.inventory import service
from siyu.inventory.schemas import LocationIn
from siyu.kit.tenancy import TenantScope

WAREHOUSES = [("hz-central", "杭州中心仓", 10), ("gz-south", "广州华南仓", 20)]


async def _location(session: AsyncSession, scope: TenantScope, existing: dict[str, int], code: str, name: str, *,
                    priority: int, store_id: int | None = None) -> int:
    if code not in existing:
        loc = await service.create_location(session, scope, LocationIn(
            code=code, name=name, kind="store" if store_id else "warehouse", store_id=store_id, priority=priority))
        existing[code] = loc.id
    return existing[code]


async def seed_inventory(session: AsyncSession, scope: TenantScope, sku_ids: list[int], rng: random.Random) -> dict[str, Any]:
    """Create the locations and stock of the demo tenant; returns a summary for the CLI."""
    from siyu.tenants import service as tenants_service

    existing = {loc.code: loc.id for loc in await service.list_locations(session, scope)}
    if WAREHOUSES[0][0] in existing:
        return {"locations": len(existing), "skus": 0, "receipts": 0, "sold_out": 0, "running_low": 0,
                "note": "demo stock already present; left as it is"}
    central = await _location(session, scope, existing, *WAREHOUSES[0][:2], priority=WAREHOUSES[0][2])
    south = await _location(session, scope, existing, *WAREHOUSES[1][:2], priority=WAREHOUSES[1][2])
    stores, _total = await tenants_service.list_stores(session, scope, None, 0, 100)
    store_locs: list[int] = []
    for i, store in enumerate(stores):
        code = f"store-{store.code}"[:40]
        store_locs.append(await _location(session, scope, existing, code, f"{store.name}库存", priority=50 + i,
                                          store_id=store.id))

    skus = sorted(set(sku_ids))
    shuffled = skus[:]
    rng.shuffle(shuffled)
    n_out = max(1, len(skus) // 12) if len(skus) >= 4 else 0
    n_low = max(1, len(skus) // 8) if len(skus) >= 4 else 0
    sold_out = set(shuffled[:n_out])
    running_low = set(shuffled[n_out:n_out + n_low])

    received = 0
    for sku in skus:
        await service.set_threshold(session, scope, sku, central, 20)
        if sku in sold_out:
            continue  # 售罄: the level exists at 0, so it shows as out of stock and low
        if sku in running_low:
            await service.receive(session, scope, sku, central, rng.randint(4, 15), "期初库存", source_key=f"demo-open-{sku}-{central}")
            received += 1
            continue
        await service.receive(session, scope, sku, central, rng.randint(60, 480), "期初库存", source_key=f"demo-open-{sku}-{central}")
        received += 1
        if rng.random() < 0.5:
            await service.receive(session, scope, sku, south, rng.randint(20, 150), "期初库存", source_key=f"demo-open-{sku}-{south}")
            received += 1
        for loc in store_locs:
            if rng.random() < 0.6:
                await service.receive(session, scope, sku, loc, rng.randint(2, 30), "门店铺货", source_key=f"demo-open-{sku}-{loc}")
                await service.set_threshold(session, scope, sku, loc, 3)
                received += 1

    stocked = [s for s in skus if s not in sold_out and s not in running_low]
    if stocked:
        damaged = rng.choice(stocked)
        await service.adjust(session, scope, damaged, central, -2, "运输破损", source_key=f"demo-damage-{damaged}")
    await _demo_stocktake(session, scope, store_locs[0] if store_locs else central, stocked[:4], rng)
    return {"locations": 2 + len(store_locs), "skus": len(skus), "receipts": received, "sold_out": len(sold_out),
            "running_low": len(running_low)}


async def _demo_stocktake(session: AsyncSession, scope: TenantScope, location_id: int, sku_ids: Sequence[int],
                          rng: random.Random) -> None:
    done, _total = await service.list_stocktakes(session, scope, location_id=location_id, limit=1)
    if done or not sku_ids:
        return
    levels = await service.levels_for(session, scope, list(sku_ids))
    counts: list[tuple[int, int | None]] = []
    for sku in sku_ids:
        here = next((lv for lv in levels[sku] if lv.location_id == location_id), None)
        on_hand, reserved = (here.on_hand, here.reserved) if here else (0, 0)
        counts.append((sku, max(reserved, on_hand + rng.choice([0, 0, -1, 1]))))
    st = await service.create_stocktake(session, scope, location_id, "月末盘点")
    await service.record_counts(session, scope, st.id, counts)
    await service.apply_stocktake(session, scope, st.id)
