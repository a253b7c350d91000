"""Placing orders: snapshots, fulfilment parts, idempotency, validation, isolation."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.inventory import service as inventory_service
from siyu.inventory.models import StockLevel
from siyu.kit import clock
from siyu.kit.errors import Conflict, NotFound, ValidationFailed
from siyu.kit.outbox import OutboxEvent
from siyu.kit.runtime import Runtime
from siyu.orders import checkout, pricing
from siyu.orders.models import FulfilmentItem, Order, OrderFulfilment, OrderLine, OrderTransition
from siyu.orders.pricing import Offer, PricingContext
from siyu.tenants.models import Tenant
from tests.orders.conftest import OrderShop, make_order_shop


async def contents(shop: OrderShop, order_id: int) -> tuple[list[OrderLine], list[tuple[OrderFulfilment, list[FulfilmentItem]]]]:
    async with shop.runtime.db.uow(readonly=True) as s:
        lines = list((await s.execute(select(OrderLine).where(OrderLine.order_id == order_id)
                                      .order_by(OrderLine.id))).scalars())
        parts = list((await s.execute(select(OrderFulfilment).where(OrderFulfilment.order_id == order_id)
                                      .order_by(OrderFulfilment.seq))).scalars())
        items = list((await s.execute(select(FulfilmentItem).where(FulfilmentItem.order_id == order_id)
                                      .order_by(FulfilmentItem.id))).scalars())
    return lines, [(p, [i for i in items if i.fulfilment_id == p.id]) for p in parts]


async def count_rows(shop: OrderShop, model: Any, **where: Any) -> int:
    async with shop.runtime.db.uow(readonly=True) as s:
        stmt = select(func.count()).select_from(model).where(model.tenant_id == shop.scope.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return int((await s.execute(stmt)).scalar_one())


async def stock(shop: OrderShop, sku_id: int) -> list[tuple[int, int, int]]:
    """(location, on_hand, reserved) of a SKU."""
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(StockLevel.location_id, StockLevel.on_hand, StockLevel.reserved).where(
            StockLevel.tenant_id == shop.scope.id, StockLevel.sku_id == sku_id).order_by(StockLevel.location_id))).all()
    return [(int(a), int(b), int(c)) for a, b, c in rows]


# -- the order -------------------------------------------------------------------------------------


async def test_an_order_keeps_what_was_bought(order_shop: OrderShop) -> None:
    a, b = order_shop.skus
    await order_shop.flat_freight(1000)
    before = clock.now()
    order = await order_shop.place([(a, 2), (b, 1), (a, 1)], buyer_note=" 请尽快发货 ")
    assert order.status == "pending_payment"
    assert re.fullmatch(r"\d{14}", order.order_no)
    assert order.order_no[:6] == before.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%y%m%d")
    assert (order.goods_fen, order.discount_fen, order.freight_fen) == (3 * 12800 + 3990, 0, 1000)
    assert order.payable_fen == 3 * 12800 + 3990 + 1000 and order.paid_fen == 0
    assert order.item_count == 4 and order.requires_shipping
    assert order.buyer_note == "请尽快发货"
    assert order.address["province_code"] == "33" and order.address["receiver_name"] == "张三"
    assert order.address["address_id"] == order_shop.buyer.address_id
    assert order.pay_deadline is not None
    assert timedelta(minutes=29) < order.pay_deadline - before < timedelta(minutes=31)
    assert order.pricing["payable_fen"] == order.payable_fen and order.pricing["freight"]["quoted"] is True
    lines, parts = await contents(order_shop, order.id)
    assert [(ln.sku_id, ln.quantity, ln.unit_price_fen, ln.title) for ln in lines] == [(a, 3, 12800, "明前龙井"),
                                                                                        (b, 1, 3990, "白茶饼")]
    assert sum(ln.paid_fen for ln in lines) == order.payable_fen
    assert sum(ln.freight_fen for ln in lines) == 1000
    assert all(ln.kind == "physical" and ln.requires_shipping and ln.sku_code for ln in lines)
    assert [(p.kind, p.location_id, p.seq, p.status) for p, _ in parts] == [("ship", order_shop.location_id, 1, "pending")]
    assert sorted((i.sku_id, i.quantity) for i in parts[0][1]) == [(a, 3), (b, 1)]
    # stock held under the order's key
    assert await stock(order_shop, a) == [(order_shop.location_id, 100, 3)]
    async with order_shop.runtime.db.uow(readonly=True) as s:
        res = await inventory_service.reservation_by_key(s, order_shop.scope, f"order:{order.id}")
        assert res is not None and res[0].status == "active"
        trans = (await s.execute(select(OrderTransition).where(OrderTransition.order_id == order.id))).scalars().all()
        events = (await s.execute(select(OutboxEvent.payload).where(
            OutboxEvent.tenant_id == order_shop.scope.id, OutboxEvent.topic == "order.placed"))).scalars().all()
    assert [(t.from_status, t.to_status, t.action, t.actor_type, t.actor_id) for t in trans] == [
        ("new", "pending_payment", "place", "customer", order_shop.buyer.customer_id)]
    assert {"order_id": order.id, "tenant_id": order_shop.scope.id, "customer_id": order_shop.buyer.customer_id,
            "payable_fen": order.payable_fen} in [dict(e) for e in events]


async def test_pay_timeout_follows_the_shop_setting(order_shop: OrderShop) -> None:
    async with order_shop.runtime.db.uow() as s:
        tenant = await s.get(Tenant, order_shop.scope.id)
        assert tenant is not None
        tenant.settings = {**(tenant.settings or {}), "orders": {"pay_timeout_minutes": 90}}
    before = clock.now()
    order = await order_shop.place()
    assert order.pay_deadline is not None
    assert timedelta(minutes=89) < order.pay_deadline - before < timedelta(minutes=91)


async def test_a_line_spread_over_two_locations_is_in_both_parts(order_shop: OrderShop) -> None:
    sku = await order_shop.make_sku(price_fen=1000, stock=3)
    second = await order_shop.add_location("二号仓", priority=50)
    await order_shop.receive(sku, 4, second)
    a = order_shop.skus[0]
    order = await order_shop.place([(sku, 5), (a, 1), (order_shop.virtual_sku, 2)])
    lines, parts = await contents(order_shop, order.id)
    line_of = {ln.sku_id: ln.id for ln in lines}
    shape = [(p.kind, p.location_id, sorted((i.sku_id, i.quantity) for i in items)) for p, items in parts]
    # sku: 3 at the main location (priority 10) and 2 at the second; a: whole at the main location.
    assert shape == [("ship", order_shop.location_id, sorted([(sku, 3), (a, 1)])), ("ship", second, [(sku, 2)]),
                     ("virtual", None, [(order_shop.virtual_sku, 2)])]
    assert [p.seq for p, _ in parts] == [1, 2, 3]
    assert all(i.order_line_id == line_of[i.sku_id] for _p, items in parts for i in items)
    assert await stock(order_shop, sku) == sorted([(order_shop.location_id, 3, 3), (second, 4, 2)])
    vline = next(ln for ln in lines if ln.sku_id == order_shop.virtual_sku)
    assert (vline.kind, vline.requires_shipping, vline.freight_fen) == ("virtual", False, 0)


async def test_virtual_goods_need_no_address(order_shop: OrderShop) -> None:
    buyer = await order_shop.new_buyer(province_code=None)
    await order_shop.flat_freight(800)
    order = await order_shop.place([(order_shop.virtual_sku, 3)], buyer=buyer, address_id=None)
    assert (order.requires_shipping, order.address, order.freight_fen, order.payable_fen) == (False, {}, 0, 15000)
    _lines, parts = await contents(order_shop, order.id)
    assert [(p.kind, p.location_id) for p, _ in parts] == [("virtual", None)]
    with pytest.raises(ValidationFailed) as e:
        await order_shop.place([(order_shop.skus[0], 1)], buyer=buyer, address_id=None)
    assert e.value.code == "address_required"


async def test_addresses_must_be_the_shoppers_own(order_shop: OrderShop, runtime: Runtime, client: httpx.AsyncClient,
        tenant_factory: Any) -> None:
    other = await order_shop.new_buyer()
    assert other.address_id is not None
    with pytest.raises(NotFound) as e:
        await order_shop.place(address_id=other.address_id)
    assert e.value.code == "address_not_found"
    shop_b = await make_order_shop(runtime, client, tenant_factory, "B 店")
    r = await order_shop.place_api(address_id=shop_b.buyer.address_id)
    assert r.status_code == 404 and r.json()["code"] == "address_not_found"
    assert await count_rows(order_shop, Order, customer_id=order_shop.buyer.customer_id) == 0


async def test_a_shortage_writes_nothing(order_shop: OrderShop) -> None:
    few = await order_shop.make_sku(price_fen=500, stock=2)
    none = await order_shop.make_sku(price_fen=500, stock=0)
    a = order_shop.skus[0]
    r = await order_shop.place_api([(a, 1), (few, 3), (none, 1)])
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "out_of_stock"
    assert body["lines"] == [{"sku_id": few, "requested": 3, "available": 2}, {"sku_id": none, "requested": 1, "available": 0}]
    assert await count_rows(order_shop, Order) == 0
    assert await count_rows(order_shop, OrderLine) == 0
    assert await count_rows(order_shop, OrderTransition) == 0
    assert await stock(order_shop, a) == [(order_shop.location_id, 100, 0)]
    assert await stock(order_shop, few) == [(order_shop.location_id, 2, 0)]
    # The same key works once the shopper asks for what there is.
    r = await order_shop.place_api([(a, 1), (few, 2)])
    assert r.status_code == 201, r.text


async def test_offers_are_kept_on_the_order_lines(order_shop: OrderShop) -> None:
    a, b = order_shop.skus

    async def coupon(session: AsyncSession, ctx: PricingContext) -> list[Offer]:
        if ctx.options.get("coupon_id") != 5:
            return []
        return [Offer("coupon:5", "满 100 减 20", "¥20 off", total_fen=2000, data={"coupon_id": 5})]

    pricing.register_adjuster("coupon", coupon)
    try:
        r = await order_shop.place_api([(a, 1), (b, 1)], options={"coupon_id": 5})
    finally:
        pricing.unregister_adjuster("coupon", coupon)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["goods_fen"], body["discount_fen"], body["payable_fen"]) == (16790, 2000, 14790)
    assert sum(ln["discount_fen"] for ln in body["lines"]) == 2000
    lines, _ = await contents(order_shop, body["id"])
    assert [d["code"] for ln in lines for d in ln.discounts] == ["coupon:5", "coupon:5"]
    order = await order_shop.order(body["id"])
    assert order.pricing["offers"][0]["data"] == {"coupon_id": 5} and order.pricing["offers"][0]["step"] == "coupon"


async def test_a_taken_order_number_is_drawn_again(order_shop: OrderShop, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await order_shop.place()
    drawn = iter([first.order_no, first.order_no, "26010112345678"])
    monkeypatch.setattr(checkout, "new_order_no", lambda scope: next(drawn))
    second = await order_shop.place()
    assert second.order_no == "26010112345678" and second.id != first.id
    lines, parts = await contents(order_shop, second.id)
    assert len(lines) == 1 and len(parts) == 1


# -- the endpoint ----------------------------------------------------------------------------------


async def test_place_and_preview_over_http(order_shop: OrderShop) -> None:
    a, b = order_shop.skus
    await order_shop.flat_freight(1200)
    r = await order_shop.client.post(order_shop.url("/checkout/preview"), headers=order_shop.buyer.headers,
                                     json={"lines": [{"sku_id": a, "quantity": 1}]})
    assert r.status_code == 200, r.text
    q = r.json()
    assert (q["goods_fen"], q["freight_fen"], q["payable_fen"], q["freight"]["quoted"]) == (12800, 0, 12800, False)
    assert q["freight"]["reason"] == "选择收货地址后计算运费"
    r = await order_shop.client.post(order_shop.url("/checkout/preview"), headers=order_shop.buyer.headers,
                                     json={"lines": [{"sku_id": a, "quantity": 1}, {"sku_id": b, "quantity": 2}],
                                           "address_id": order_shop.buyer.address_id})
    q = r.json()
    assert (q["freight_fen"], q["payable_fen"], q["freight"]["quoted"]) == (1200, 12800 + 2 * 3990 + 1200, True)
    assert sum(ln["paid_fen"] for ln in q["lines"]) == q["payable_fen"]
    r = await order_shop.place_api([(a, 1), (b, 2)], buyer_note="周末送")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["payable_fen"] == q["payable_fen"] and body["status"] == "pending_payment"
    assert [(ln["sku_id"], ln["quantity"], ln["paid_fen"]) for ln in body["lines"]] == [
        (ln["sku_id"], ln["quantity"], ln["paid_fen"]) for ln in q["lines"]]
    assert [(p["kind"], p["location_id"]) for p in body["fulfilments"]] == [("ship", order_shop.location_id)]
    order = await order_shop.order(body["id"])
    assert order.channel == "api" and order.buyer_note == "周末送" and order.idempotency_key


async def test_same_key_same_body_is_the_same_order(order_shop: OrderShop) -> None:
    lines = [(order_shop.skus[0], 2)]
    r1 = await order_shop.place_api(lines, key="retry-1")
    r2 = await order_shop.place_api(lines, key="retry-1")
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r1.json() == r2.json()
    assert await count_rows(order_shop, Order) == 1
    assert await stock(order_shop, order_shop.skus[0]) == [(order_shop.location_id, 100, 2)]
    r3 = await order_shop.place_api([(order_shop.skus[0], 3)], key="retry-1")
    assert r3.status_code == 409 and r3.json()["code"] == "idempotency_key_reused"
    r4 = await order_shop.place_api(lines, key="retry-1", buyer_note="改了留言")
    assert r4.status_code == 409
    # Keys belong to one customer: another shopper's identical key is their own order.
    other = await order_shop.new_buyer()
    r5 = await order_shop.place_api(lines, key="retry-1", buyer=other)
    assert r5.status_code == 201 and r5.json()["id"] != r1.json()["id"]


async def test_same_key_through_the_service(order_shop: OrderShop) -> None:
    o1 = await order_shop.place(key="svc-1")
    o2 = await order_shop.place(key="svc-1")
    assert o1.id == o2.id
    with pytest.raises(Conflict) as e:
        await order_shop.place([(order_shop.skus[1], 1)], key="svc-1")
    assert e.value.code == "idempotency_key_reused"
    with pytest.raises(ValidationFailed):
        await order_shop.place(key="bad key!")


@pytest.mark.parametrize("key, status, code", [
    (None, 400, "idempotency_key_required"),
    ("", 400, "idempotency_key_required"),
    ("has space", 422, "invalid_idempotency_key"),
    ("x" * 65, 422, "invalid_idempotency_key"),
    ("dots.are.not.allowed", 422, "invalid_idempotency_key"),
])
async def test_the_key_is_required_and_checked(order_shop: OrderShop, key: str | None, status: int, code: str) -> None:
    headers = dict(order_shop.buyer.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    r = await order_shop.client.post(order_shop.url("/orders"), headers=headers, json={
        "lines": [{"sku_id": order_shop.skus[0], "quantity": 1}], "address_id": order_shop.buyer.address_id})
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await count_rows(order_shop, Order) == 0


@pytest.mark.parametrize("body", [
    {"lines": [{"sku_id": 0, "quantity": 1, "unit_price_fen": 1}]},
    {"payable_fen": 1},
    {"discount_fen": 100000},
    {"lines": [{"sku_id": 0, "quantity": 1, "price_fen": 1}]},
    {"goods_fen": 1, "freight_fen": 0},
])
async def test_amounts_from_the_client_are_refused(order_shop: OrderShop, body: dict[str, Any]) -> None:
    payload: dict[str, Any] = {"lines": [{"sku_id": order_shop.skus[0], "quantity": 1}],
                               "address_id": order_shop.buyer.address_id, **body}
    for ln in payload["lines"]:
        if ln["sku_id"] == 0:
            ln["sku_id"] = order_shop.skus[0]
    for path in ("/orders", "/checkout/preview"):
        r = await order_shop.client.post(order_shop.url(path), json=payload,
                                         headers={**order_shop.buyer.headers, "Idempotency-Key": "amount-test"})
        assert r.status_code == 422, r.text
    assert await count_rows(order_shop, Order) == 0


@pytest.mark.parametrize("body, code", [
    ({}, "validation_error"),
    ({"lines": []}, "validation_error"),
    ({"lines": [{"sku_id": 1, "quantity": 1}], "from_cart": True}, "validation_error"),
    ({"lines": [{"sku_id": 1, "quantity": 0}]}, "validation_error"),
    ({"lines": [{"sku_id": 1, "quantity": 1000}]}, "validation_error"),
    ({"lines": [{"sku_id": 1, "quantity": 1}], "options": {"Bad Key": 1}}, "validation_error"),
    ({"lines": [{"sku_id": 1, "quantity": 1}], "buyer_note": "x" * 201}, "validation_error"),
])
async def test_malformed_bodies(order_shop: OrderShop, body: dict[str, Any], code: str) -> None:
    r = await order_shop.client.post(order_shop.url("/orders"), json=body,
                                     headers={**order_shop.buyer.headers, "Idempotency-Key": "malformed"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code


async def test_unknown_and_off_sale_skus(order_shop: OrderShop) -> None:
    off = await order_shop.make_sku(on_sale=False)
    r = await order_shop.place_api([(off, 1)])
    assert r.status_code == 409 and r.json()["code"] == "sku_not_on_sale"
    assert r.json()["lines"] == [{"sku_id": off, "reason": "not_on_sale"}]
    r = await order_shop.place_api([(order_shop.skus[0], 1), (987_654_321, 2)])
    assert r.status_code == 422 and r.json()["code"] == "invalid_lines"
    assert r.json()["lines"] == [{"sku_id": 987_654_321, "reason": "not_found"}]
    assert await count_rows(order_shop, Order) == 0


async def test_shops_are_isolated(order_shop: OrderShop, runtime: Runtime, client: httpx.AsyncClient,
        tenant_factory: Any) -> None:
    shop_b = await make_order_shop(runtime, client, tenant_factory, "B 店")
    # A's shopper ordering B's SKU at A: unknown there.
    r = await order_shop.place_api([(shop_b.skus[0], 1)])
    assert r.status_code == 422 and r.json()["lines"] == [{"sku_id": shop_b.skus[0], "reason": "not_found"}]
    # A's shopper at B's shop: not signed in there.
    r = await client.post(shop_b.url("/orders"), json={"lines": [{"sku_id": shop_b.skus[0], "quantity": 1}]},
                          headers={**order_shop.buyer.headers, "Idempotency-Key": "iso-1"})
    assert r.status_code == 401
    r = await client.post(shop_b.url("/checkout/preview"), json={"lines": [{"sku_id": shop_b.skus[0], "quantity": 1}]},
                          headers=order_shop.buyer.headers)
    assert r.status_code == 401
    assert await stock(shop_b, shop_b.skus[0]) == [(shop_b.location_id, 100, 0)]
    assert await count_rows(shop_b, Order) == 0 and await count_rows(order_shop, Order) == 0


async def test_anonymous_shoppers_cannot_order(order_shop: OrderShop) -> None:
    r = await order_shop.client.post(order_shop.url("/orders"), json={"lines": [{"sku_id": order_shop.skus[0], "quantity": 1}]},
                                     headers={"Idempotency-Key": "anon"})
    assert r.status_code == 401
