"""The points mall under contention: many members for the last units, one member past the
limit with many requests at once, and one key retried at once.

Every request is a real HTTP request to the in-process app with its own unit of work, all
started together with ``asyncio.gather``; on PostgreSQL they truly overlap, on SQLite the
writers queue on the database lock. The invariants must hold exactly on both: never more
exchanged than the stock, never more per member than the limit, and points, stock, claims and
exchanges agreeing with each other.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

from sqlalchemy import func, select

from siyu.members import points
from siyu.members.models import PointsEntry, PointsMallClaim, PointsRedemption
from siyu.orders.models import Order
from tests.conftest import drain_outbox, unique
from tests.members.test_mall import (  # noqa: F401
    FakeCoupons,
    coupons,
    exchange_api,
    item_of,
    make_item,
    points_of,
)
from tests.orders.conftest import Buyer, OrderShop
from tests.orders.test_checkout_concurrency import many_buyers


async def fund(shop: OrderShop, buyers: list[Buyer], amount: int) -> None:
    """Each buyer holds exactly ``amount`` points (sign-up points, if any, run first and count in)."""
    await drain_outbox(shop.runtime)
    async with shop.runtime.db.uow() as s:
        for b in buyers:
            have = (await points.balance(s, shop.scope, b.customer_id)).points
            if amount > have:
                await points.earn(s, shop.scope, b.customer_id, amount - have, kind="earn", source_key=unique("fund:"))


async def spent_by(shop: OrderShop, item_id: int) -> tuple[int, int]:
    """(points spent by the item's exchanges, their units) from the ledger and the exchange rows."""
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(PointsRedemption).where(PointsRedemption.item_id == item_id))).scalars().all()
        keys = [f"order:{r.order_id}:mall" if r.order_id else f"mall:{r.redemption_no}" for r in rows]
        spent = (await s.execute(select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            PointsEntry.tenant_id == shop.scope.id, PointsEntry.source_key.in_(keys or [""])))).scalar_one()
    assert sum(r.points for r in rows) == -int(spent)
    return -int(spent), sum(r.quantity for r in rows)


async def claims(shop: OrderShop, item_id: int) -> dict[int, int]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(PointsMallClaim.customer_id, PointsMallClaim.quantity).where(
            PointsMallClaim.item_id == item_id))).all()
    return {int(c): int(q) for c, q in rows if q}


async def test_many_members_for_the_last_units(order_shop: OrderShop) -> None:
    shop = order_shop
    item = await make_item(shop, points=300, cash_fen=0, stock=5, per_member_limit=1)
    buyers = await many_buyers(shop, 40)
    await fund(shop, buyers, 1000)

    async def go(b: Buyer) -> tuple[int, str]:
        r = await exchange_api(shop, item.id, buyer=b)
        return r.status_code, r.json().get("code", "") if r.status_code != 201 else ""

    results = await asyncio.gather(*(go(b) for b in buyers))
    counts = Counter(results)
    assert counts[(201, "")] == 5, counts
    assert set(counts) <= {(201, ""), (409, "mall_sold_out")}, counts
    fresh = await item_of(shop, item.id)
    assert (fresh.stock, fresh.sold) == (0, 5)
    assert await spent_by(shop, item.id) == (1500, 5)
    held = await claims(shop, item.id)
    assert len(held) == 5 and set(held.values()) == {1}
    winners = [b for b, r in zip(buyers, results, strict=True) if r[0] == 201]
    for b in buyers:
        assert await points_of(shop, b.customer_id) == (700 if b in winners else 1000)
    async with shop.runtime.db.uow(readonly=True) as s:
        orders = (await s.execute(select(Order.customer_id, Order.status).where(
            Order.tenant_id == shop.scope.id, Order.customer_id.in_([b.customer_id for b in buyers])))).all()
    assert sorted(c for c, _s in orders) == sorted(b.customer_id for b in winners)
    assert {st for _c, st in orders} == {"paid"}


async def test_one_member_cannot_pass_the_limit_with_parallel_requests(order_shop: OrderShop) -> None:
    shop = order_shop
    item = await make_item(shop, points=100, cash_fen=100, stock=50, per_member_limit=3)
    (b,) = await many_buyers(shop, 1)
    await fund(shop, [b], 10_000)
    results = await asyncio.gather(*(exchange_api(shop, item.id, buyer=b) for _ in range(12)))
    codes = Counter((r.status_code, r.json().get("code", "") if r.status_code != 201 else "") for r in results)
    assert codes[(201, "")] == 3, codes
    assert set(codes) <= {(201, ""), (409, "mall_limit_reached")}, codes
    assert (await item_of(shop, item.id)).sold == 3
    assert await claims(shop, item.id) == {b.customer_id: 3}
    assert await spent_by(shop, item.id) == (300, 3)
    assert await points_of(shop, b.customer_id) == 9_700


async def test_points_run_out_before_the_stock_under_contention(order_shop: OrderShop) -> None:
    """One member, enough points for two, five parallel exchanges of different items: two win."""
    shop = order_shop
    items = [await make_item(shop, points=400, stock=5) for _ in range(5)]
    (b,) = await many_buyers(shop, 1)
    await fund(shop, [b], 800)
    results = await asyncio.gather(*(exchange_api(shop, i.id, buyer=b) for i in items))
    codes = Counter((r.status_code, r.json().get("code", "") if r.status_code != 201 else "") for r in results)
    assert codes == Counter({(201, ""): 2, (409, "insufficient_points"): 3}), codes
    assert await points_of(shop, b.customer_id) == 0
    sold = [(await item_of(shop, i.id)).sold for i in items]
    held = [sum((await claims(shop, i.id)).values()) for i in items]
    assert sum(sold) == 2 and held == sold


async def test_one_coupon_key_retried_at_once_exchanges_once(order_shop: OrderShop, coupons: FakeCoupons) -> None:  # noqa: F811
    shop = order_shop
    item = await make_item(shop, kind="coupon", sku_id=None, coupon_id=7, points=100, stock=20)
    (b,) = await many_buyers(shop, 1)
    await fund(shop, [b], 1000)
    key = secrets.token_hex(8)
    results = await asyncio.gather(*(exchange_api(shop, item.id, buyer=b, key=key, quantity=2) for _ in range(8)))
    statuses = Counter(r.status_code for r in results)
    assert statuses[201] == 1 and statuses[201] + statuses[200] == 8, [(r.status_code, r.text[:200]) for r in results]
    assert len({r.json()["redemption"]["id"] for r in results}) == 1
    assert await points_of(shop, b.customer_id) == 800
    assert len(coupons.issued) == 2
    assert (await item_of(shop, item.id)).sold == 2
