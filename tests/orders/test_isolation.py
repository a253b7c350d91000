"""Orders belong to one tenant and, in the store, to one shopper: anyone else gets the same
404 as for an order that does not exist, never the order or a 403."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from siyu.kit.errors import NotFound
from siyu.kit.runtime import Runtime
from siyu.orders import fulfilment, service
from tests.conftest import drain_outbox
from tests.orders import _lifecycle as lc
from tests.orders._lifecycle import ADMIN
from tests.orders.conftest import OrderShop, make_order_shop


@pytest.fixture(autouse=True)
async def _notify(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


@pytest.fixture
async def other_shop(runtime: Runtime, client: httpx.AsyncClient, tenant_factory: Any) -> OrderShop:
    return await make_order_shop(runtime, client, tenant_factory, name="隔壁商家")


async def test_staff_of_another_tenant_get_404(order_shop: OrderShop, other_shop: OrderShop, login_as: Any) -> None:
    paid = await lc.paid_order(order_shop)
    unpaid = await order_shop.place()
    theirs = await login_as(other_shop.tenant)
    mine = await login_as(order_shop.tenant)
    for method, path, body in (
        ("GET", f"{ADMIN}/{paid.id}", None),
        ("POST", f"{ADMIN}/{paid.id}/ship", {"carrier_code": "SF", "tracking_no": "SF1234567890"}),
        ("POST", f"{ADMIN}/{unpaid.id}/cancel", {}),
        ("POST", f"{ADMIN}/{paid.id}/note", {"note": "看看"}),
        ("POST", f"{ADMIN}/{paid.id}/delivered", None),
    ):
        r = await theirs.request(method, path, json=body)
        assert (r.status_code, r.json()["code"]) == (404, "order_not_found"), path
    listed = (await theirs.get(ADMIN)).json()
    assert paid.id not in [x["id"] for x in listed["items"]]
    assert (await theirs.get(ADMIN, params={"order_no": paid.order_no})).json()["total"] == 0
    export = (await theirs.get(f"{ADMIN}/export.csv")).content.decode("utf-8-sig")
    assert paid.order_no not in export

    csv_body = f"订单号,物流公司,运单号\r\n{paid.order_no},SF,SF1234567890\r\n".encode()
    report = (await theirs.post(f"{ADMIN}/bulk-ship", files={"file": ("s.csv", csv_body, "text/csv")})).json()
    assert report["results"][0]["code"] == "order_not_found"

    assert (await order_shop.order(paid.id)).status == "paid"
    assert (await order_shop.order(unpaid.id)).status == "pending_payment"
    assert (await mine.get(f"{ADMIN}/{paid.id}")).json()["seller_note"] is None

    async with order_shop.runtime.db.uow() as s:
        with pytest.raises(NotFound):
            await service.order_detail(s, other_shop.scope, paid.id)
        with pytest.raises(NotFound):
            await fulfilment.ship(s, other_shop.scope, paid.id, carrier_code="SF", tracking_no="SF1234567890")


async def test_a_shopper_sees_only_their_own_orders(order_shop: OrderShop, client: httpx.AsyncClient) -> None:
    shop = order_shop
    mine = await shop.place()
    other = await shop.new_buyer()
    theirs = await shop.place(buyer=other)
    start = await lc.start_payment(shop, mine.id)

    listed = (await client.get(shop.url("/orders"), headers=other.headers)).json()
    assert [x["id"] for x in listed["items"]] == [theirs.id]
    for method, path in (("GET", f"/orders/{mine.id}"), ("POST", f"/orders/{mine.id}/pay"),
                         ("POST", f"/orders/{mine.id}/cancel"), ("POST", f"/orders/{mine.id}/confirm")):
        r = await client.request(method, shop.url(path), json={} if method == "POST" else None, headers=other.headers)
        assert (r.status_code, r.json()["code"]) == (404, "order_not_found"), path
    r = await client.get(shop.url(f"/payments/{start.payment.out_trade_no}"), headers=other.headers)
    assert r.status_code == 404
    assert (await client.get(shop.url(f"/payments/{start.payment.out_trade_no}"), headers=shop.buyer.headers)).status_code == 200
    assert (await shop.order(mine.id)).status == "pending_payment"
    assert (await client.get(shop.url(f"/orders/{mine.id}"))).status_code == 401


async def test_a_shopper_of_another_shop_is_not_signed_in_here(order_shop: OrderShop, other_shop: OrderShop,
                                                               client: httpx.AsyncClient) -> None:
    mine = await order_shop.place()
    r = await client.get(order_shop.url(f"/orders/{mine.id}"), headers=other_shop.buyer.headers)
    assert r.status_code == 401
    r = await client.get(other_shop.url(f"/orders/{mine.id}"), headers=other_shop.buyer.headers)
    assert (r.status_code, r.json()["code"]) == (404, "order_not_found")


async def test_the_store_list_filters_by_status(order_shop: OrderShop, client: httpx.AsyncClient) -> None:
    shop = order_shop
    unpaid = await shop.place()
    paid = await lc.paid_order(shop)
    await drain_outbox(shop.runtime)

    async def ids(status: str | None = None) -> list[int]:
        r = await client.get(shop.url("/orders"), params={"status": status} if status else None, headers=shop.buyer.headers)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    assert await ids() == [paid.id, unpaid.id]
    assert await ids("paid") == [paid.id]
    assert await ids("pending_payment") == [unpaid.id]
    card = (await client.get(shop.url("/orders"), headers=shop.buyer.headers)).json()["items"][1]
    assert card["actions"] == ["cancel", "pay"] and card["lines"][0]["title"] == "明前龙井"
    assert (await client.get(shop.url("/orders"), params={"status": "lost"}, headers=shop.buyer.headers)).status_code == 422
