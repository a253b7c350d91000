"""Demo data of the points mall: a few items a tea brand would offer for points — a sample
tin for points only, a gift box for points plus cash, a members-only item for 金卡 and above,
one item off sale, and a coupon when coupons exist — then exchanges by the demo members who
already hold enough points and have an address (points-only items, so they are paid at once).
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.customers import service as customers_service
from siyu.kit.errors import DomainError
from siyu.kit.tenancy import TenantScope
from siyu.members import mall, rewards
from siyu.members.models import PointsMallItem

#: (points, cash per unit in fen, stock, per-member limit, lowest level rank, on sale, description)
PLAN: list[tuple[int, int, int, int, int, bool, str]] = [
    (800, 0, 200, 2, 0, True, "纯积分兑换，每人限兑 2 件，兑换包邮。"),
    (1500, 1990, 60, 1, 0, True, "积分加 ¥19.90 换购，数量有限，兑完即止。"),
    (3000, 0, 30, 1, 2, True, "金卡及以上会员专享。"),
    (5000, 0, 10, 1, 0, False, "春茶季再上架。"),
]
MAX_EXCHANGES = 8


async def _skus(session: AsyncSession, scope: TenantScope) -> list[catalog_service.SkuForSale]:
    """SKUs on sale that ship, cheapest first (the mall offers the small things)."""
    products, _total = await catalog_service.list_products(
        session, scope, catalog_service.ProductQuery(storefront=True, sort="sort"), limit=100)
    by_product = await catalog_service.skus_of_products(session, scope, [p.id for p in products])
    ids = [s.id for p in products for s in by_product.get(p.id, []) if s.status == "active"]
    found = await catalog_service.skus_for_sale(session, scope, ids)
    usable = [s for s in found.values() if s.on_sale and s.requires_shipping and s.price_fen > 0]
    return sorted(usable, key=lambda s: (s.price_fen, s.sku_id))


async def seed_demo(session: AsyncSession, scope: TenantScope, rng: random.Random, customer_ids: list[int]) -> dict[str, Any]:
    skus = await _skus(session, scope)
    made: list[PointsMallItem] = []
    for (points, cash, stock, limit, rank, on_sale, text), sku in zip(PLAN, skus, strict=False):
        made.append(await mall.create_item(session, scope, mall.ItemData(
            kind="product", sku_id=sku.sku_id, points=points, cash_fen=min(cash, sku.price_fen), stock=stock,
            per_member_limit=limit, min_level_rank=rank, on_sale=on_sale, description=text, sort=len(made) * 10)))
    if rewards.coupons_available():
        choices = await rewards.coupon_choices(session, scope)
        if choices:
            coupon_id, name = choices[0]
            made.append(await mall.create_item(session, scope, mall.ItemData(
                kind="coupon", coupon_id=coupon_id, title=name, points=500, stock=500, per_member_limit=3, on_sale=True,
                description="兑换后放入「我的优惠券」。", sort=5)))
    exchanges = 0
    free = [i for i in made if i.on_sale and i.kind == "product" and i.cash_fen == 0 and i.min_level_rank == 0]
    for cid in rng.sample(customer_ids, len(customer_ids)):
        if exchanges >= MAX_EXCHANGES or not free:
            break
        item = rng.choice(free)
        if await mall.points_balance(session, scope, cid) < item.points:
            continue
        address = await customers_service.default_address(session, scope, cid)
        if address is None:
            continue
        try:
            async with session.begin_nested():
                await mall.exchange(session, scope, customer_id=cid, item_id=item.id, address_id=address.id,
                                    channel="demo")
        except DomainError:
            continue
        exchanges += 1
    return {"items": len(made), "exchanges": exchanges}
