"""The cart: merging adds, limits, selection, the view with current facts, racing adds."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from siyu.catalog import service as catalog_service
from siyu.kit.runtime import Runtime
from siyu.orders import cart
from siyu.orders.models import CartItem
from tests.orders.conftest import Buyer, OrderShop, make_order_shop


async def call(shop: OrderShop, method: str, path: str, *, buyer: Buyer | None = None, **kw: Any) -> httpx.Response:
    return await shop.client.request(method, shop.url(path), headers=(buyer or shop.buyer).headers, **kw)


async def add(shop: OrderShop, sku_id: int, quantity: int = 1, buyer: Buyer | None = None) -> httpx.Response:
    return await call(shop, "POST", "/cart/items", buyer=buyer, json={"sku_id": sku_id, "quantity": quantity})


async def test_add_merges_and_the_badge_counts(order_shop: OrderShop) -> None:
    a, b = order_shop.skus
    r = await add(order_shop, a, 2)
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["sku_id"], first["quantity"], first["selected"]) == (a, 2, True)
    r = await add(order_shop, a, 3)
    assert r.json() == {**first, "quantity": 5}
    assert (await add(order_shop, b)).status_code == 201
    r = await call(order_shop, "GET", "/cart/count")
    assert r.json() == {"lines": 2, "quantity": 6}
    r = await call(order_shop, "GET", "/cart")
    body = r.json()
    assert [i["sku_id"] for i in body["items"]] == [b, a]  # newest first
    assert body["quantity"] == 6 and body["selected_quantity"] == 6
    assert body["quote"]["goods_fen"] == 5 * 12800 + 3990
    assert body["quote"]["freight"]["quoted"] is False
    item = body["items"][1]
    assert (item["title"], item["price_fen"], item["available"], item["state"], item["buyable"]) == ("明前龙井", 12800, 100, "ok", True)


async def test_quantity_selection_and_removal(order_shop: OrderShop) -> None:
    a, b = order_shop.skus
    ia = (await add(order_shop, a)).json()["id"]
    ib = (await add(order_shop, b)).json()["id"]
    r = await call(order_shop, "PATCH", f"/cart/items/{ia}", json={"quantity": 7})
    assert r.status_code == 200 and r.json()["quantity"] == 7
    r = await call(order_shop, "PATCH", f"/cart/items/{ia}", json={"selected": False})
    assert r.json()["selected"] is False and r.json()["quantity"] == 7
    body = (await call(order_shop, "GET", "/cart")).json()
    assert body["selected_quantity"] == 1 and body["quote"]["goods_fen"] == 3990
    body = (await call(order_shop, "POST", "/cart/select", json={"selected": False})).json()
    assert body["quote"] is None and body["selected_quantity"] == 0
    body = (await call(order_shop, "POST", "/cart/select", json={"item_ids": [ia], "selected": True})).json()
    assert body["selected_quantity"] == 7
    for bad in ({"quantity": 0}, {"quantity": 1000}, {"quantity": 2, "price_fen": 1}):
        r = await call(order_shop, "PATCH", f"/cart/items/{ia}", json=bad)
        assert r.status_code == 422, (bad, r.text)
    r = await call(order_shop, "DELETE", f"/cart/items/{ia}")
    assert r.status_code == 204
    assert (await call(order_shop, "DELETE", f"/cart/items/{ia}")).status_code == 404
    r = await call(order_shop, "POST", "/cart/remove", json={"item_ids": [ib, 987654321]})
    assert r.json() == {"lines": 0, "quantity": 0}


async def test_limits_and_refusals(order_shop: OrderShop, runtime: Runtime, client: httpx.AsyncClient,
        tenant_factory: Any) -> None:
    a, b = order_shop.skus
    assert (await add(order_shop, a, 999)).status_code == 201
    r = await add(order_shop, a, 1)
    assert r.status_code == 409 and r.json()["code"] == "cart_quantity_limit"
    assert (await add(order_shop, a, 1000)).status_code == 422
    off = await order_shop.make_sku(on_sale=False)
    r = await add(order_shop, off)
    assert r.status_code == 409 and r.json()["code"] == "sku_not_on_sale"
    other = await make_order_shop(runtime, client, tenant_factory, "别家")
    r = await add(order_shop, other.skus[0])
    assert r.status_code == 404 and r.json()["code"] == "sku_not_found"
    r = await call(order_shop, "POST", "/cart/items", json={"sku_id": b, "price_fen": 1})
    assert r.status_code == 422
    # 99 different SKUs at most (the rows stand in for 98 more SKUs).
    async with runtime.db.uow() as s:
        s.add_all([CartItem(tenant_id=order_shop.scope.id, customer_id=order_shop.buyer.customer_id, sku_id=10**9 + i,
                            quantity=1) for i in range(98)])
    r = await add(order_shop, b)
    assert r.status_code == 409 and r.json()["code"] == "cart_full"
    assert (await add(order_shop, a, 0)).status_code == 422
    assert (await call(order_shop, "GET", "/cart/count")).json()["lines"] == 99


async def test_lines_that_can_no_longer_be_bought_are_marked(order_shop: OrderShop) -> None:
    a, b = order_shop.skus
    c = await order_shop.make_sku(price_fen=100, stock=2)
    d = await order_shop.make_sku(price_fen=100, stock=1)
    for sku, q in ((a, 1), (b, 1), (c, 5), (d, 1)):
        assert (await add(order_shop, sku, q)).status_code == 201
    async with order_shop.runtime.db.uow() as s:
        product_b = (await catalog_service.get_sku(s, order_shop.scope, b)).product_id
        await catalog_service.change_status(s, order_shop.scope, product_b, "unpublish")
    other = await order_shop.new_buyer()
    await order_shop.place([(d, 1)], buyer=other)  # the last unit of d is now held by an order
    body = (await call(order_shop, "GET", "/cart")).json()
    states = {i["sku_id"]: (i["state"], i["buyable"], i["available"]) for i in body["items"]}
    assert states == {a: ("ok", True, 100), b: ("off_sale", False, 100), c: ("short", False, 2), d: ("out_of_stock", False, 0)}
    assert body["quote"]["goods_fen"] == 12800  # only the buyable selected line is priced
    # Checking out the cart names every line that cannot be bought.
    r = await call(order_shop, "POST", "/checkout/preview", json={"from_cart": True})
    assert r.status_code == 409 and r.json()["code"] == "sku_not_on_sale"
    assert r.json()["lines"] == [{"sku_id": b, "reason": "not_on_sale"}]


async def test_carts_are_per_customer_and_per_shop(order_shop: OrderShop, runtime: Runtime, client: httpx.AsyncClient,
        tenant_factory: Any) -> None:
    item = (await add(order_shop, order_shop.skus[0])).json()["id"]
    other = await order_shop.new_buyer()
    assert (await call(order_shop, "GET", "/cart/count", buyer=other)).json() == {"lines": 0, "quantity": 0}
    r = await call(order_shop, "PATCH", f"/cart/items/{item}", buyer=other, json={"quantity": 3})
    assert r.status_code == 404 and r.json()["code"] == "cart_item_not_found"
    assert (await call(order_shop, "DELETE", f"/cart/items/{item}", buyer=other)).status_code == 404
    await call(order_shop, "POST", "/cart/remove", buyer=other, json={"item_ids": [item]})
    assert (await call(order_shop, "GET", "/cart/count")).json()["lines"] == 1
    shop_b = await make_order_shop(runtime, client, tenant_factory, "B 店")
    r = await client.get(shop_b.url("/cart"), headers=order_shop.buyer.headers)  # A's shopper is not signed in at B
    assert r.status_code == 401
    assert (await client.get(order_shop.url("/cart"))).status_code == 401


async def test_racing_adds_of_one_sku_make_one_line(order_shop: OrderShop) -> None:
    a = order_shop.skus[0]

    async def one() -> None:
        async with order_shop.runtime.db.uow() as s:
            await cart.add_item(s, order_shop.scope, order_shop.buyer.customer_id, a, 2)

    await asyncio.gather(*(one() for _ in range(12)))
    async with order_shop.runtime.db.uow(readonly=True) as s:
        view = await cart.view(s, order_shop.scope, order_shop.buyer.customer_id)
    assert [(ln.item.sku_id, ln.item.quantity) for ln in view.lines] == [(a, 24)]
    # And over HTTP, racing requests of the same shopper.
    rs = await asyncio.gather(*(add(order_shop, order_shop.skus[1], 1) for _ in range(8)))
    assert all(r.status_code == 201 for r in rs), [r.text for r in rs]
    assert (await call(order_shop, "GET", "/cart/count")).json() == {"lines": 2, "quantity": 32}


async def test_ordering_from_the_cart_takes_the_ordered_lines_out(order_shop: OrderShop) -> None:
    a, b = order_shop.skus
    await add(order_shop, a, 2)
    ib = (await add(order_shop, b, 1)).json()["id"]
    await call(order_shop, "PATCH", f"/cart/items/{ib}", json={"selected": False})
    r = await order_shop.place_api(from_cart=True)
    assert r.status_code == 201, r.text
    assert [(ln["sku_id"], ln["quantity"]) for ln in r.json()["lines"]] == [(a, 2)]
    body = (await call(order_shop, "GET", "/cart")).json()
    assert [(i["sku_id"], i["selected"]) for i in body["items"]] == [(b, False)]
    r = await order_shop.place_api(from_cart=True)
    assert r.status_code == 422 and r.json()["code"] == "cart_empty"
