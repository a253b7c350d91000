"""Demo data of levels: the four default levels with benefits a tea brand would give (银卡
9.8 折; 金卡 9.5 折 and free shipping; 黑金 9 折, free shipping and priority shipping), a
yearly level review over the last 365 days, member prices on a few teas for 金卡 and 黑金,
and every demo customer as a member — sign-up growth, a birthday, gender and region for
most, and for some the growth of purchases made before the shop moved to Siyu (so every
level has members before the demo orders add their own growth).
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.customers import service as customers_service
from siyu.kit import clock
from siyu.kit.errors import DomainError
from siyu.kit.money import apply_rate
from siyu.kit.tenancy import TenantScope
from siyu.members import levels
from siyu.members import service as members_service

#: level name → benefits changed from the defaults.
BENEFITS: dict[str, dict[str, Any]] = {
    "银卡会员": {"price_rate_bp": 9800},
    "金卡会员": {"price_rate_bp": 9500, "free_shipping": True},
    "黑金会员": {"price_rate_bp": 9000, "free_shipping": True, "priority_shipping": True},
}
#: level name → member price as a share of the price (bp), for the priced SKUs.
MEMBER_PRICE_BP = {"金卡会员": 9000, "黑金会员": 8500}
PRICED_SKUS = 4
REGIONS = ("浙江 杭州", "浙江 宁波", "上海", "江苏 苏州", "江苏 南京", "北京", "广东 深圳", "广东 广州", "四川 成都",
           "福建 福州", "安徽 黄山", "湖北 武汉")
#: (share of customers in ‰, growth imported from before) — the rest start from sign-up only.
IMPORTED = ((20, 21_000), (60, 6_000), (150, 1_500))


async def seed_demo(session: AsyncSession, scope: TenantScope, rng: random.Random,
                    customer_ids: list[int]) -> dict[str, Any]:
    rows = await levels.ensure_levels(session, scope)
    by_name = {r.name: r for r in rows}
    for name, changes in BENEFITS.items():
        row = by_name.get(name)
        if row is None:
            continue
        data = levels.LevelData(**{**{k: getattr(row, k) for k in levels.LEVEL_FIELDS}, **changes})
        await levels.update_level(session, scope, row.id, data)
    await levels.update_growth_settings(session, scope, review_policy="yearly", window_days=365)

    priced = 0
    products, _total = await catalog_service.list_products(
        session, scope, catalog_service.ProductQuery(storefront=True, sort="sort"), limit=20)
    by_product = await catalog_service.skus_of_products(session, scope, [p.id for p in products])
    sku_ids = [s.id for p in products for s in by_product.get(p.id, [])[:1] if s.status == "active"]
    skus = await catalog_service.skus_for_sale(session, scope, sku_ids)
    for sku in [s for s in skus.values() if s.on_sale and s.price_fen >= 1000][:PRICED_SKUS]:
        prices = {by_name[n].id: max(1, apply_rate(sku.price_fen, bp)) for n, bp in MEMBER_PRICE_BP.items()
                  if n in by_name}
        await levels.set_member_prices(session, scope, sku.sku_id, prices)
        priced += 1

    birthdays = 0
    imported = 0
    today = clock.local_today(scope.timezone)
    for cid in customer_ids:
        try:
            customer = await customers_service.get_customer(session, scope, cid)
        except DomainError:
            continue
        await members_service.ensure_member(session, scope, cid, registered_at=customer.created_at)
        await levels.award_action(session, scope, cid, "signup", source_key=f"signup:{cid}")
        if rng.random() < 0.7:
            year = rng.randint(today.year - 55, today.year - 18)
            month = rng.randint(1, 12)
            day = rng.randint(1, 28)
            await levels.update_profile(session, scope, cid, birthday=date(year, month, day),
                                        gender=rng.choice(("female", "female", "male")), region=rng.choice(REGIONS))
            birthdays += 1
        draw = rng.randrange(1000)
        floor = 0
        for share, growth in IMPORTED:
            floor += share
            if draw < floor:
                amount = growth + rng.randrange(growth // 5)
                await levels.add_growth(session, scope, cid, amount, kind="adjust", source_key=f"import:{cid}",
                                        note="历史消费导入")
                imported += 1
                break
    return {"levels": len(rows), "member_prices": priced, "members": len(customer_ids), "birthdays": birthdays,
            "imported_growth": imported}
