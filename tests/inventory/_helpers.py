"""Helpers of the inventory tests.

SKUs are inserted as minimal ``Product``/``Sku`` rows (the catalog module is built in
parallel; tests may write its tables directly, the inventory code never does).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from siyu.inventory import service
from siyu.inventory.models import StockLevel, StockMovement
from siyu.inventory.schemas import LocationIn
from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope
from tests.conftest import TenantInfo, unique


@dataclass
class Shop:
    tenant: TenantInfo
    scope: TenantScope
    skus: list[int]
    locations: dict[str, int] = field(default_factory=dict)


async def make_skus(runtime: Runtime, tenant_id: int, n: int, title: str = "明前龙井") -> list[int]:
    from siyu.catalog.models import Product, Sku

    async with runtime.db.uow() as s:
        product = Product(tenant_id=tenant_id, title=title, kind="physical", status="on_sale", specs=[], images=[],
                          description_html="")
        s.add(product)
        await s.flush()
        skus = [Sku(tenant_id=tenant_id, product_id=product.id, code=unique("sku-"), spec_values={"规格": f"{50 * (i + 1)}g"},
                    spec_key=f"规格:{50 * (i + 1)}g", price_fen=12800 + i * 100) for i in range(n)]
        s.add_all(skus)
        await s.flush()
        return [sku.id for sku in skus]


async def make_shop(runtime: Runtime, tenant_factory: Callable[..., Awaitable[TenantInfo]], skus: int = 4) -> Shop:
    t = await tenant_factory("库存测试商家")
    return Shop(t, TenantScope(id=t.id, code=t.code), await make_skus(runtime, t.id, skus))


async def add_location(runtime: Runtime, shop: Shop, name: str, *, priority: int = 100, code: str | None = None,
                       status: str = "active") -> int:
    async with runtime.db.uow() as s:
        loc = await service.create_location(s, shop.scope, LocationIn(code=code or unique("loc"), name=name,
                                                                       priority=priority, status=status))
        shop.locations[name] = loc.id
        return loc.id


async def receive(runtime: Runtime, shop: Shop, sku_id: int, location_id: int | None, qty: int, **kw: Any) -> StockMovement:
    async with runtime.db.uow() as s:
        return await service.receive(s, shop.scope, sku_id, location_id, qty, **kw)


async def level(runtime: Runtime, shop: Shop, sku_id: int, location_id: int) -> tuple[int, int]:
    """(on_hand, reserved) of one level; (0, 0) if it does not exist."""
    async with runtime.db.uow(readonly=True) as s:
        row = (await s.execute(select(StockLevel.on_hand, StockLevel.reserved).where(
            StockLevel.tenant_id == shop.scope.id, StockLevel.sku_id == sku_id, StockLevel.location_id == location_id))).first()
        return (int(row[0]), int(row[1])) if row else (0, 0)


async def assert_ledger_consistent(runtime: Runtime, shop: Shop) -> None:
    """Every level equals the sum of its movements, and 0 <= reserved <= on_hand."""
    async with runtime.db.uow(readonly=True) as s:
        levels = (await s.execute(select(StockLevel).where(StockLevel.tenant_id == shop.scope.id))).scalars().all()
        sums = await service.ledger_sums(s, shop.scope)
    for lv in levels:
        dh, dr = sums.get((lv.sku_id, lv.location_id), (0, 0))
        assert (lv.on_hand, lv.reserved) == (dh, dr), (lv.sku_id, lv.location_id, lv.on_hand, lv.reserved, dh, dr)
        assert 0 <= lv.reserved <= lv.on_hand, (lv.sku_id, lv.location_id, lv.on_hand, lv.reserved)
    pairs = {(lv.sku_id, lv.location_id) for lv in levels}
    assert set(sums) <= pairs, set(sums) - pairs
