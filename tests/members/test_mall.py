"""The points mall: items, exchanging products (as orders) and coupons, and what happens to an
exchange when its order is paid, cancelled or refunded.

Orders come from the shared ``order_shop``; points are earned through the points service and
read back from the ledger; payments and refunds travel through the sandbox gateway and the
outbox as in production. The helpers at the top are shared with the concurrency and page
tests of the mall.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from siyu.kit.audit import AuditEntry
from siyu.kit.context import Actor, actor_var
from siyu.kit.errors import DomainError
from siyu.kit.runtime import Runtime
from siyu.members import levels, mall, points, rewards
from siyu.members import service as members_service
from siyu.members.models import (
    Member,
    PointsEntry,
    PointsMallClaim,
    PointsMallItem,
    PointsRedemption,
)
from siyu.orders.models import Order
from tests.conftest import drain_outbox, unique
from tests.orders import _aftersales as af
from tests.orders import _lifecycle as lc
from tests.orders.conftest import Buyer, OrderShop, make_buyer, make_order_shop

ADMIN = "/api/admin/v1/members/mall"


# -- helpers (shared with test_mall_concurrency and test_mall_pages) --------------------------------------------


async def give_points(shop: OrderShop, customer_id: int, amount: int) -> None:
    """Exactly ``amount`` points: events waiting (sign-up points of a new customer) run first and
    are cancelled out, so tests count from ``amount``."""
    await drain_outbox(shop.runtime)
    async with shop.runtime.db.uow() as s:
        have = (await points.balance(s, shop.scope, customer_id)).points
        if have:
            await points.adjust(s, shop.scope, customer_id, -have, reason="测试清零")
        await points.earn(s, shop.scope, customer_id, amount, kind="earn", source_key=unique("test-points:"))


async def points_of(shop: OrderShop, customer_id: int) -> int:
    async with shop.runtime.db.uow(readonly=True) as s:
        value = (await s.execute(select(Member.points).where(Member.tenant_id == shop.scope.id,
                                                             Member.customer_id == customer_id))).scalar_one_or_none()
        total = (await s.execute(select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            PointsEntry.tenant_id == shop.scope.id, PointsEntry.customer_id == customer_id))).scalar_one()
    assert int(value or 0) == int(total), "Member.points must equal the sum of its ledger"
    return int(value or 0)


async def make_item(shop: OrderShop, sku_id: int | None = None, **kw: Any) -> PointsMallItem:
    values: dict[str, Any] = {"kind": "product", "sku_id": sku_id or shop.skus[1], "points": 1000, "stock": 10,
                              "on_sale": True}
    values.update(kw)
    async with shop.runtime.db.uow() as s:
        item = await mall.create_item(s, shop.scope, mall.ItemData(**values))
        s.expunge(item)
        return item


async def item_of(shop: OrderShop, item_id: int) -> PointsMallItem:
    async with shop.runtime.db.uow(readonly=True) as s:
        item = (await s.execute(select(PointsMallItem).where(PointsMallItem.id == item_id))).scalar_one()
        s.expunge(item)
        return item


async def claim_of(shop: OrderShop, item_id: int, customer_id: int) -> int:
    async with shop.runtime.db.uow(readonly=True) as s:
        return await mall.claimed(s, shop.scope, item_id, customer_id)


async def redemptions_of(shop: OrderShop, customer_id: int) -> list[PointsRedemption]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(PointsRedemption).where(
            PointsRedemption.tenant_id == shop.scope.id, PointsRedemption.customer_id == customer_id)
            .order_by(PointsRedemption.id))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def exchange(shop: OrderShop, item_id: int, *, buyer: Buyer | None = None, quantity: int = 1,
                   key: str | None = None, **kw: Any) -> mall.Exchanged:
    """An exchange through the service, as the buyer, in its own unit of work."""
    who = buyer or shop.buyer
    token = actor_var.set(Actor("customer", who.customer_id, f"customer:{who.customer_id}", shop.scope.id))
    try:
        async with shop.runtime.db.uow() as s:
            done = await mall.exchange(s, shop.scope, customer_id=who.customer_id, item_id=item_id, quantity=quantity,
                                       address_id=kw.pop("address_id", who.address_id), idempotency_key=key, **kw)
            s.expunge(done.redemption)
            if done.order is not None:
                s.expunge(done.order)
            return done
    finally:
        actor_var.reset(token)


async def refused(shop: OrderShop, item_id: int, code: str, **kw: Any) -> DomainError:
    with pytest.raises(DomainError) as info:
        await exchange(shop, item_id, **kw)
    assert info.value.code == code, (info.value.code, info.value.message_en)
    return info.value


async def exchange_api(shop: OrderShop, item_id: int, *, buyer: Buyer | None = None, key: str | None = None,
                       **body: Any) -> httpx.Response:
    who = buyer or shop.buyer
    payload: dict[str, Any] = {"quantity": 1, "address_id": who.address_id}
    payload.update(body)
    return await shop.client.post(shop.url(f"/member/mall/items/{item_id}/exchange"), json=payload,
                                  headers={**who.headers, "Idempotency-Key": key or secrets.token_hex(8)})


class FakeCoupons:
    """A coupon granter standing in for the marketing module: records what it issued (once per source key)."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.issued: dict[str, tuple[int, int]] = {}
        self.refuse = refuse

    async def grant(self, session: Any, scope: Any, customer_id: int, coupon_id: int, *, source_key: str,
                    reason: str, **_: Any) -> bool:
        if self.refuse:
            return False
        self.issued.setdefault(source_key, (customer_id, coupon_id))
        return True

    async def choices(self, session: Any, scope: Any) -> list[tuple[int, str]]:
        return [(7, "满 100 减 10 券"), (8, "无门槛 5 元券")]


@pytest.fixture
def coupons() -> Iterator[FakeCoupons]:
    fake = FakeCoupons()
    rewards.register_coupon_granter(fake.grant, fake.choices)
    try:
        yield fake
    finally:
        rewards.unregister_coupon_granter()


@pytest.fixture
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


# -- items --------------------------------------------------------------------------------------------------------


async def test_staff_manage_items_through_the_api(order_shop: OrderShop, login_as: Any) -> None:
    shop = order_shop
    staff = await login_as(shop.tenant)
    r = await staff.post(f"{ADMIN}/items", json={"kind": "product", "sku_id": shop.skus[1], "points": 1200, "cash_fen": 990,
                                                 "stock": 20, "per_member_limit": 2, "on_sale": True})
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["title"].startswith("白茶饼") and item["stock"] == 20 and item["sold"] == 0 and item["on_sale"] is True
    # The cash part may not exceed the SKU's price; a coupon item needs coupons; a product needs its SKU.
    r = await staff.post(f"{ADMIN}/items", json={"kind": "product", "sku_id": shop.skus[1], "points": 1, "cash_fen": 4000})
    assert r.status_code == 422 and r.json()["code"] == "mall_item_invalid" and r.json()["errors"][0]["field"] == "cash_fen"
    r = await staff.post(f"{ADMIN}/items", json={"kind": "coupon", "coupon_id": 7, "points": 100})
    assert r.status_code == 409 and r.json()["code"] == "mall_coupon_unavailable"
    r = await staff.post(f"{ADMIN}/items", json={"kind": "product", "points": 100})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "sku_id"
    r = await staff.post(f"{ADMIN}/items", json={"kind": "product", "sku_id": 2**40, "points": 100})
    assert r.status_code == 422
    r = await staff.post(f"{ADMIN}/items", json={"kind": "product", "sku_id": shop.skus[1], "points": 0})
    assert r.status_code == 422
    # Change, stock by delta, list, read.
    r = await staff.patch(f"{ADMIN}/items/{item['id']}", json={"points": 1500, "title": "白茶饼 · 积分兑"})
    assert r.status_code == 200 and r.json()["points"] == 1500 and r.json()["title"] == "白茶饼 · 积分兑"
    assert r.json()["cash_fen"] == 990 and r.json()["per_member_limit"] == 2
    r = await staff.post(f"{ADMIN}/items/{item['id']}/stock", json={"delta": -25})
    assert r.status_code == 409 and r.json()["code"] == "mall_stock_invalid"
    r = await staff.post(f"{ADMIN}/items/{item['id']}/stock", json={"delta": 0})
    assert r.status_code == 422
    r = await staff.post(f"{ADMIN}/items/{item['id']}/stock", json={"delta": -5})
    assert r.status_code == 200 and r.json()["stock"] == 15
    r = await staff.get(f"{ADMIN}/items", params={"on_sale": "true"})
    assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == [item["id"]]
    r = await staff.get(f"{ADMIN}/items", params={"on_sale": "false"})
    assert r.json()["total"] == 0
    r = await staff.get(f"{ADMIN}/items/{item['id']}")
    assert r.status_code == 200 and r.json()["stock"] == 15
    # Every write was audited.
    async with shop.runtime.db.uow(readonly=True) as s:
        actions = (await s.execute(select(AuditEntry.action).where(AuditEntry.tenant_id == shop.scope.id,
                                                                   AuditEntry.object_type == "points_mall_item")
                                   .order_by(AuditEntry.id))).scalars().all()
    assert actions == ["members.mall.create", "members.mall.update", "members.mall.stock"]
    # Deleting: fine while nobody exchanged it.
    r = await staff.delete(f"{ADMIN}/items/{item['id']}")
    assert r.status_code == 204
    r = await staff.get(f"{ADMIN}/items/{item['id']}")
    assert r.status_code == 404 and r.json()["code"] == "mall_item_not_found"


async def test_items_belong_to_their_tenant_and_need_permissions(runtime: Runtime, order_shop: OrderShop,
                                                                 client: httpx.AsyncClient, tenant_factory: Any,
                                                                 login_as: Any) -> None:
    item = await make_item(order_shop)
    other = await make_order_shop(runtime, client, tenant_factory, "另一家")
    stranger = await login_as(other.tenant)
    for method, path, body in (("GET", f"/items/{item.id}", None), ("PATCH", f"/items/{item.id}", {"points": 5}),
                               ("POST", f"/items/{item.id}/stock", {"delta": 5}), ("DELETE", f"/items/{item.id}", None)):
        r = await stranger.request(method, ADMIN + path, json=body)
        assert r.status_code == 404, (method, path, r.text)
    r = await stranger.post(f"{ADMIN}/items", json={"kind": "product", "sku_id": order_shop.skus[1], "points": 5})
    assert r.status_code == 422  # another shop's SKU does not exist here
    r = await other.client.get(other.url(f"/member/mall/items/{item.id}"), headers=other.buyer.headers)
    assert r.status_code == 404
    # Customer service may read members but not manage the mall.
    cs = await login_as(order_shop.tenant, role="customer_service")
    assert (await cs.get(f"{ADMIN}/items")).status_code == 200
    r = await cs.post(f"{ADMIN}/items", json={"kind": "product", "sku_id": order_shop.skus[1], "points": 5})
    assert r.status_code == 403


# -- exchanging products --------------------------------------------------------------------------------------------


async def test_a_points_only_exchange_is_an_order_paid_at_once_and_ships_free(order_shop: OrderShop) -> None:
    shop = order_shop
    await shop.flat_freight(1000)
    item = await make_item(shop, points=1000, stock=3, per_member_limit=2)
    await give_points(shop, shop.buyer.customer_id, 2500)
    done = await exchange(shop, item.id)
    order = done.order
    assert order is not None and done.created and not done.needs_payment
    assert order.status == "paid" and order.payable_fen == 0 and order.freight_fen == 0
    assert order.goods_fen == shop.prices[shop.skus[1]] and order.discount_fen == order.goods_fen
    offers = [o for o in order.pricing["offers"] if o["applied"]]
    assert [(o["step"], o["label_zh"], o["fen"]) for o in offers] == [("promotion", "积分兑换", order.goods_fen)]
    assert order.pricing["freight"]["reason_zh"] == "积分兑换包邮"
    assert done.redemption.status == "completed" and done.redemption.redemption_no == order.order_no
    assert (done.redemption.points, done.redemption.quantity, done.redemption.cash_fen) == (1000, 1, 0)
    assert await points_of(shop, shop.buyer.customer_id) == 1500
    fresh = await item_of(shop, item.id)
    assert (fresh.stock, fresh.sold) == (2, 1)
    assert await claim_of(shop, item.id, shop.buyer.customer_id) == 1
    async with shop.runtime.db.uow(readonly=True) as s:
        spent = await points.entry_by_key(s, shop.scope, f"order:{order.id}:mall")
    assert spent is not None and spent.amount == -1000 and spent.kind == "redeem"
    # The order.paid event arrives later and changes nothing; no points are earned on an exchange.
    await drain_outbox(shop.runtime)
    assert (await redemptions_of(shop, shop.buyer.customer_id))[0].status == "completed"
    assert await points_of(shop, shop.buyer.customer_id) == 1500


async def test_points_plus_cash_waits_for_payment(order_shop: OrderShop, _notifications: Any) -> None:
    shop = order_shop
    item = await make_item(shop, points=300, cash_fen=990, stock=5)
    await give_points(shop, shop.buyer.customer_id, 1000)
    done = await exchange(shop, item.id, quantity=2)
    assert done.order is not None and done.needs_payment
    assert done.order.status == "pending_payment" and done.order.payable_fen == 1980
    assert done.redemption.status == "pending_payment" and done.redemption.points == 600
    assert done.redemption.cash_fen == 1980
    assert await points_of(shop, shop.buyer.customer_id) == 400
    await lc.pay(shop, done.order.id)
    assert (await shop.order(done.order.id)).status == "paid"
    assert (await redemptions_of(shop, shop.buyer.customer_id))[0].status == "completed"


async def test_cancelling_the_unpaid_order_returns_points_stock_and_limit_once(order_shop: OrderShop) -> None:
    shop = order_shop
    item = await make_item(shop, points=400, cash_fen=500, stock=4, per_member_limit=2)
    await give_points(shop, shop.buyer.customer_id, 1000)
    done = await exchange(shop, item.id, quantity=2)
    assert done.order is not None
    await refused(shop, item.id, "mall_limit_reached")
    token = af.as_customer(shop)
    try:
        async with shop.runtime.db.uow() as s:
            from siyu.orders import service as orders_service

            await orders_service.cancel_order(s, shop.scope, done.order.id, by="customer",
                                              customer_id=shop.buyer.customer_id)
    finally:
        actor_var.reset(token)
    await drain_outbox(shop.runtime)
    assert await points_of(shop, shop.buyer.customer_id) == 1000
    fresh = await item_of(shop, item.id)
    assert (fresh.stock, fresh.sold) == (4, 0)
    assert await claim_of(shop, item.id, shop.buyer.customer_id) == 0
    assert (await redemptions_of(shop, shop.buyer.customer_id))[0].status == "cancelled"
    # The event delivered again changes nothing.
    async with shop.runtime.db.uow() as s:
        assert await mall.on_order_cancelled(s, shop.scope, done.order.id) is False
    assert await points_of(shop, shop.buyer.customer_id) == 1000
    assert (await item_of(shop, item.id)).stock == 4
    # The limit counts again from zero: two more may be exchanged.
    again = await exchange(shop, item.id, quantity=2)
    assert again.redemption.status == "pending_payment"


async def test_refunds_give_back_the_points_of_the_refunded_units(order_shop: OrderShop, _notifications: Any) -> None:
    shop = order_shop
    item = await make_item(shop, points=700, cash_fen=100, stock=10)
    await give_points(shop, shop.buyer.customer_id, 3000)
    done = await exchange(shop, item.id, quantity=3)
    assert done.order is not None
    await lc.pay(shop, done.order.id)
    assert await points_of(shop, shop.buyer.customer_id) == 900
    (line,) = await lc.lines(shop.runtime, done.order.id)
    first = await af.open_case(shop, done.order.id, [(line.id, 1)])
    await af.act(shop, "approve", first.id)
    await af.settle(shop)
    assert await points_of(shop, shop.buyer.customer_id) == 1600
    assert (await redemptions_of(shop, shop.buyer.customer_id))[0].status == "completed"
    second = await af.open_case(shop, done.order.id, [(line.id, 2)])
    await af.act(shop, "approve", second.id)
    await af.settle(shop)
    assert await points_of(shop, shop.buyer.customer_id) == 3000
    assert (await redemptions_of(shop, shop.buyer.customer_id))[0].status == "refunded"
    # Replaying the refund events returns nothing more; stock and the claim stay taken.
    async with shop.runtime.db.uow() as s:
        assert await mall.on_refunded(s, shop.scope, order_id=done.order.id, case_id=second.id,
                                      lines=[{"order_line_id": line.id, "quantity": 2}]) == 0
    assert await points_of(shop, shop.buyer.customer_id) == 3000
    assert (await item_of(shop, item.id)).sold == 3
    assert await claim_of(shop, item.id, shop.buyer.customer_id) == 3


async def test_a_points_only_order_refunds_its_points_without_money(order_shop: OrderShop, _notifications: Any) -> None:
    shop = order_shop
    item = await make_item(shop, points=500, stock=5)
    await give_points(shop, shop.buyer.customer_id, 1000)
    done = await exchange(shop, item.id, quantity=2)
    assert done.order is not None and done.order.status == "paid"
    (line,) = await lc.lines(shop.runtime, done.order.id)
    case = await af.open_case(shop, done.order.id, [(line.id, 2)])
    await af.act(shop, "approve", case.id)
    await af.settle(shop)
    assert (await af.case(shop, case.id)).status == "refunded"
    assert await points_of(shop, shop.buyer.customer_id) == 1000
    assert (await redemptions_of(shop, shop.buyer.customer_id))[0].status == "refunded"


async def test_what_stops_an_exchange(order_shop: OrderShop) -> None:
    shop = order_shop
    me = shop.buyer.customer_id
    item = await make_item(shop, points=1000, stock=2, per_member_limit=3)
    await refused(shop, item.id, "insufficient_points")
    await give_points(shop, me, 5000)
    await refused(shop, item.id, "mall_sold_out", quantity=3)
    await refused(shop, item.id, "mall_quantity_invalid", quantity=0)
    await refused(shop, item.id, "mall_quantity_invalid", quantity=100)
    await refused(shop, item.id, "address_required", address_id=None)
    off = await make_item(shop, on_sale=False)
    await refused(shop, off.id, "mall_item_off_sale")
    await refused(shop, 2**40, "mall_item_not_found")
    async with shop.runtime.db.uow() as s:
        ranks = {lv.rank: lv.id for lv in await levels.ensure_levels(s, shop.scope)}
    gold = await make_item(shop, points=100, min_level_rank=2)
    err = await refused(shop, gold.id, "mall_level_required")
    assert "金卡会员" in err.message_zh
    # A paid card of 金卡 lifts the member's level: now it may.
    from datetime import timedelta

    from siyu.kit import clock

    async with shop.runtime.db.uow() as s:
        await members_service.set_card(s, shop.scope, me, level_id=ranks[2], plan_id=None,
                                       expires_at=clock.now() + timedelta(days=30))
    assert (await exchange(shop, gold.id)).redemption.status == "completed"
    # Nothing was written by the refusals: only the one exchange.
    assert len(await redemptions_of(shop, me)) == 1
    assert (await item_of(shop, item.id)).stock == 2
    async with shop.runtime.db.uow(readonly=True) as s:
        n = (await s.execute(select(func.count()).select_from(Order).where(Order.customer_id == me))).scalar_one()
    assert n == 1


async def test_the_mall_option_cannot_price_other_lines(order_shop: OrderShop) -> None:
    shop = order_shop
    item = await make_item(shop, points=10, stock=5)
    await give_points(shop, shop.buyer.customer_id, 1000)
    # Ordinary orders carrying the option: more lines, another SKU, a bad value — all refused.
    r = await shop.place_api([(shop.skus[1], 1), (shop.skus[0], 1)], options={"mall_item_id": item.id})
    assert r.status_code == 422 and r.json()["code"] == "mall_lines_invalid"
    r = await shop.place_api([(shop.skus[0], 1)], options={"mall_item_id": item.id})
    assert r.status_code == 422 and r.json()["code"] == "mall_lines_invalid"
    r = await shop.place_api([(shop.skus[1], 1)], options={"mall_item_id": "abc"})
    assert r.status_code == 422 and r.json()["code"] == "mall_item_invalid"
    r = await shop.place_api([(shop.skus[1], 1)], options={"mall_item_id": 2**50})
    assert r.status_code == 404
    # Through the ordinary order endpoint the option still takes points and stock, exactly like an exchange.
    r = await shop.place_api([(shop.skus[1], 2)], options={"mall_item_id": item.id})
    assert r.status_code == 201, r.text
    assert r.json()["payable_fen"] == 0
    assert await points_of(shop, shop.buyer.customer_id) == 980
    assert (await item_of(shop, item.id)).stock == 3
    # Points cannot be used on top of an exchange, and the member step leaves it alone.
    r = await shop.client.post(shop.url("/checkout/preview"), headers=shop.buyer.headers, json={
        "lines": [{"sku_id": shop.skus[1], "quantity": 1}], "options": {"mall_item_id": item.id, "points": 100}})
    assert r.status_code == 200, r.text
    assert [o["step"] for o in r.json()["offers"] if o["applied"]] == ["promotion"]


async def test_exchanges_are_idempotent_by_key(order_shop: OrderShop) -> None:
    shop = order_shop
    item = await make_item(shop, points=100, cash_fen=100, stock=5)
    other = await make_item(shop, points=100, stock=5)
    await give_points(shop, shop.buyer.customer_id, 1000)
    key = secrets.token_hex(8)
    r1 = await exchange_api(shop, item.id, key=key)
    r2 = await exchange_api(shop, item.id, key=key)
    assert (r1.status_code, r2.status_code) == (201, 200), (r1.text, r2.text)
    assert r1.json()["redemption"]["id"] == r2.json()["redemption"]["id"]
    assert r1.json()["order_id"] == r2.json()["order_id"] and r1.json()["needs_payment"] is True
    assert r1.json()["payable_fen"] == 100
    r3 = await exchange_api(shop, other.id, key=key)
    assert r3.status_code == 409 and r3.json()["code"] == "idempotency_key_reused"
    r4 = await exchange_api(shop, item.id, key=key, quantity=2)
    assert r4.status_code == 409 and r4.json()["code"] == "idempotency_key_reused"
    # A key already used for an ordinary order cannot make an exchange.
    plain = secrets.token_hex(8)
    assert (await shop.place_api([(shop.skus[0], 1)], key=plain)).status_code == 201
    r5 = await exchange_api(shop, item.id, key=plain)
    assert r5.status_code == 409
    r6 = await shop.client.post(shop.url(f"/member/mall/items/{item.id}/exchange"), json={"quantity": 1},
                                headers=shop.buyer.headers)
    assert r6.status_code == 400 and r6.json()["code"] == "idempotency_key_required"
    assert await points_of(shop, shop.buyer.customer_id) == 900
    assert (await item_of(shop, item.id)).sold == 1


# -- coupons --------------------------------------------------------------------------------------------------------


async def test_coupon_items_grant_through_the_registered_granter(order_shop: OrderShop, coupons: FakeCoupons,
                                                                 login_as: Any) -> None:
    shop = order_shop
    staff = await login_as(shop.tenant)
    r = await staff.get(f"{ADMIN}/coupon-choices")
    assert r.json() == {"available": True, "choices": [{"coupon_id": 7, "name": "满 100 减 10 券"},
                                                       {"coupon_id": 8, "name": "无门槛 5 元券"}]}
    r = await staff.post(f"{ADMIN}/items", json={"kind": "coupon", "coupon_id": 99, "points": 200})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "coupon_id"
    r = await staff.post(f"{ADMIN}/items", json={"kind": "coupon", "coupon_id": 7, "points": 200, "stock": 3,
                                                 "per_member_limit": 2, "on_sale": True})
    assert r.status_code == 201 and r.json()["title"] == "满 100 减 10 券"
    item_id = r.json()["id"]
    me = shop.buyer.customer_id
    await give_points(shop, me, 1000)
    key = secrets.token_hex(8)
    first = await exchange_api(shop, item_id, key=key, quantity=2)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["order_id"] is None and body["needs_payment"] is False and body["redemption"]["status"] == "completed"
    no = body["redemption"]["redemption_no"]
    assert sorted(coupons.issued) == [f"mall:{no}:1", f"mall:{no}:2"]
    assert set(coupons.issued.values()) == {(me, 7)}
    again = await exchange_api(shop, item_id, key=key, quantity=2)
    assert again.status_code == 200 and again.json()["redemption"]["id"] == body["redemption"]["id"]
    assert await points_of(shop, me) == 600 and len(coupons.issued) == 2
    r = await exchange_api(shop, item_id)
    assert r.status_code == 409 and r.json()["code"] == "mall_limit_reached"
    # A granter that refuses undoes the whole exchange.
    coupons.refuse = True
    other = await make_order_shop_buyer(shop)
    await give_points(shop, other.customer_id, 1000)
    r = await exchange_api(shop, item_id, buyer=other)
    assert r.status_code == 409 and r.json()["code"] == "mall_coupon_unavailable"
    assert await points_of(shop, other.customer_id) == 1000
    assert (await item_of(shop, item_id)).stock == 1
    assert await redemptions_of(shop, other.customer_id) == []
    # Without a granter coupon items cannot be exchanged nor put on sale.
    rewards.unregister_coupon_granter()
    r = await exchange_api(shop, item_id, buyer=other)
    assert r.status_code == 409 and r.json()["code"] == "mall_coupon_unavailable"
    r = await staff.patch(f"{ADMIN}/items/{item_id}", json={"points": 300})
    assert r.status_code == 409  # changing a coupon item needs coupons
    r = await staff.patch(f"{ADMIN}/items/{item_id}", json={"on_sale": False})
    assert r.status_code == 200 and r.json()["on_sale"] is False  # but it can always be taken off sale
    r = await staff.patch(f"{ADMIN}/items/{item_id}", json={"on_sale": True})
    assert r.status_code == 409 and r.json()["code"] == "mall_coupon_unavailable"


async def make_order_shop_buyer(shop: OrderShop) -> Buyer:
    return await make_buyer(shop.runtime, shop.scope)


# -- store API and records ------------------------------------------------------------------------------------------


async def test_store_api_lists_items_with_what_i_may_do(order_shop: OrderShop) -> None:
    shop = order_shop
    cheap = await make_item(shop, points=100, stock=5, per_member_limit=1, sort=1)
    dear = await make_item(shop, points=10_000, stock=5, sort=2)
    await make_item(shop, points=100, stock=5, on_sale=False)
    gold = await make_item(shop, points=100, stock=5, min_level_rank=2, sort=3)
    empty = await make_item(shop, points=100, stock=0, sort=4)
    await give_points(shop, shop.buyer.customer_id, 500)
    r = await shop.client.get(shop.url("/member/mall/items"), headers=shop.buyer.headers)
    assert r.status_code == 200, r.text
    rows = {i["id"]: i for i in r.json()["items"]}
    assert list(rows) == [cheap.id, dear.id, gold.id, empty.id]
    assert rows[cheap.id]["mine"] == {"can_exchange": True, "reason": "", "reason_text": "", "held": 0, "max_quantity": 1,
                                      "points": 500}
    assert rows[dear.id]["mine"]["reason"] == "points"
    assert rows[gold.id]["mine"]["reason"] == "level" and rows[gold.id]["min_level_name"] == "金卡会员"
    assert rows[empty.id]["mine"]["reason"] == "sold_out"
    anonymous = await shop.client.get(shop.url("/member/mall/items"))
    assert anonymous.status_code == 200 and all(i["mine"] is None for i in anonymous.json()["items"])
    await exchange(shop, cheap.id)
    r = await shop.client.get(shop.url(f"/member/mall/items/{cheap.id}"), headers=shop.buyer.headers)
    assert r.json()["mine"]["reason"] == "limit" and r.json()["mine"]["held"] == 1
    r = await shop.client.get(shop.url("/member/mall/redemptions"), headers=shop.buyer.headers)
    assert r.status_code == 200 and r.json()["total"] == 1
    mine = r.json()["items"][0]
    assert mine["status"] == "completed" and mine["status_label"] == "已兑换"
    r = await shop.client.get(shop.url(f"/member/mall/redemptions/{mine['id']}"), headers=shop.buyer.headers)
    assert r.status_code == 200
    stranger = await make_order_shop_buyer(shop)
    r = await shop.client.get(shop.url(f"/member/mall/redemptions/{mine['id']}"), headers=stranger.headers)
    assert r.status_code == 404
    assert (await shop.client.get(shop.url("/member/mall/redemptions"))).status_code == 401


async def test_admin_lists_exchanges(order_shop: OrderShop, login_as: Any) -> None:
    shop = order_shop
    item = await make_item(shop, points=100, stock=5)
    await give_points(shop, shop.buyer.customer_id, 500)
    await exchange(shop, item.id)
    staff = await login_as(shop.tenant)
    r = await staff.get(f"{ADMIN}/redemptions", params={"item_id": item.id})
    assert r.status_code == 200 and r.json()["total"] == 1
    row = r.json()["items"][0]
    assert row["customer_id"] == shop.buyer.customer_id and row["points"] == 100
    assert (await staff.get(f"{ADMIN}/redemptions", params={"status": "cancelled"})).json()["total"] == 0
    r = await staff.delete(f"{ADMIN}/items/{item.id}")
    assert r.status_code == 409 and r.json()["code"] == "mall_item_in_use"
    r = await staff.patch(f"{ADMIN}/items/{item.id}", json={"sku_id": shop.skus[0]})
    assert r.status_code == 409 and r.json()["code"] == "mall_item_in_use"


async def test_merged_customers_keep_counting_against_the_limit(order_shop: OrderShop) -> None:
    shop = order_shop
    item = await make_item(shop, points=100, stock=9, per_member_limit=2)
    loser = await make_order_shop_buyer(shop)
    await give_points(shop, loser.customer_id, 500)
    await give_points(shop, shop.buyer.customer_id, 500)
    await exchange(shop, item.id, buyer=loser)
    await exchange(shop, item.id)
    async with shop.runtime.db.uow() as s:
        await mall.on_customer_merged(s, shop.scope, shop.buyer.customer_id, loser.customer_id)
    assert await claim_of(shop, item.id, shop.buyer.customer_id) == 2
    assert await claim_of(shop, item.id, loser.customer_id) == 0
    assert len(await redemptions_of(shop, shop.buyer.customer_id)) == 2
    await refused(shop, item.id, "mall_limit_reached")
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(PointsMallClaim).where(PointsMallClaim.item_id == item.id))).scalars().all()
    assert [(c.customer_id, c.quantity) for c in rows] == [(shop.buyer.customer_id, 2)]


async def test_demo_data(order_shop: OrderShop) -> None:
    import random

    from siyu.members import demo_mall

    shop = order_shop
    await give_points(shop, shop.buyer.customer_id, 5000)
    async with shop.runtime.db.uow() as s:
        made = await demo_mall.seed_demo(s, shop.scope, random.Random(7), [shop.buyer.customer_id])
    assert made["items"] == 2  # one per shipping SKU on sale (the shop has two)
    assert made["exchanges"] == 1
    async with shop.runtime.db.uow(readonly=True) as s:
        items, total = await mall.list_items(s, shop.scope)
    assert total == 2 and all(i.kind == "product" for i in items)
    (red,) = await redemptions_of(shop, shop.buyer.customer_id)
    assert red.status == "completed" and red.points in (800, 1500)
