"""Checkout under contention: many buyers for a little stock, one key retried at once.

Every request is a real HTTP request to the in-process app with its own unit of work, all
started together with ``asyncio.gather``; on PostgreSQL they truly overlap, on SQLite the
writers queue on the database lock. The invariants must hold exactly on both.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from sqlalchemy import func, select

from siyu.customers import service as customers_service
from siyu.customers.schemas import AddressIn
from siyu.inventory import service as inventory_service
from siyu.inventory.models import StockLevel, StockReservation
from siyu.kit.errors import Conflict
from siyu.kit.sessions import create_session
from siyu.orders import checkout
from siyu.orders.models import Order, OrderLine
from tests.conftest import unique, unique_phone
from tests.orders.conftest import Buyer, OrderShop


async def many_buyers(shop: OrderShop, n: int) -> list[Buyer]:
    """``n`` signed-in customers with an address, made in one unit of work."""
    out: list[Buyer] = []
    async with shop.runtime.db.uow() as s:
        for _ in range(n):
            c = await customers_service.import_customer(s, shop.scope, phone=unique_phone(), nickname=unique("抢购"))
            await s.flush()
            token, _row = await create_session(s, kind="customer", principal_id=c.id, tenant_id=shop.scope.id, days=1)
            addr = await customers_service.create_address(s, shop.scope, c.id, AddressIn(
                receiver_name="李四", phone=unique_phone(), province_code="44", city="深圳市", district="南山区",
                detail="科技园 1 号"))
            out.append(Buyer(c.id, token, addr.id))
    return out


async def assert_stock_consistent(shop: OrderShop, sku_id: int, on_hand: int, reserved: int) -> None:
    async with shop.runtime.db.uow(readonly=True) as s:
        levels = (await s.execute(select(StockLevel).where(StockLevel.tenant_id == shop.scope.id,
                                                           StockLevel.sku_id == sku_id))).scalars().all()
        sums = await inventory_service.ledger_sums(s, shop.scope)
    assert sum(lv.on_hand for lv in levels) == on_hand
    assert sum(lv.reserved for lv in levels) == reserved
    for lv in levels:
        assert 0 <= lv.reserved <= lv.on_hand
        assert sums[(lv.sku_id, lv.location_id)] == (lv.on_hand, lv.reserved)


async def test_100_buyers_for_10_units(order_shop: OrderShop) -> None:
    sku = await order_shop.make_sku(price_fen=9900, stock=10, title="限量礼盒")
    buyers = await many_buyers(order_shop, 100)

    async def buy(b: Buyer) -> tuple[int, str]:
        r = await order_shop.client.post(
            order_shop.url("/orders"), json={"lines": [{"sku_id": sku, "quantity": 1}], "address_id": b.address_id},
            headers={**b.headers, "Idempotency-Key": secrets.token_hex(8)})
        return r.status_code, r.json().get("code", "") if r.status_code != 201 else ""

    results = await asyncio.gather(*(buy(b) for b in buyers))
    assert sorted(results).count((201, "")) == 10, sorted(set(results))
    assert all(r == (409, "out_of_stock") for r in results if r[0] != 201), sorted(set(results))
    async with order_shop.runtime.db.uow(readonly=True) as s:
        orders = (await s.execute(select(Order).where(Order.tenant_id == order_shop.scope.id, Order.id.in_(
            select(OrderLine.order_id).where(OrderLine.sku_id == sku))))).scalars().all()
        held = int((await s.execute(select(func.count()).select_from(StockReservation).where(
            StockReservation.tenant_id == order_shop.scope.id, StockReservation.status == "active",
            StockReservation.source_key.in_([f"order:{o.id}" for o in orders])))).scalar_one())
    assert len(orders) == 10 and len({o.customer_id for o in orders}) == 10
    assert len({o.order_no for o in orders}) == 10
    assert held == 10
    await assert_stock_consistent(order_shop, sku, on_hand=10, reserved=10)
    async with order_shop.runtime.db.uow(readonly=True) as s:
        assert (await inventory_service.available(s, order_shop.scope, [sku]))[sku] == 0


async def test_one_key_retried_at_once_places_one_order(order_shop: OrderShop) -> None:
    sku = order_shop.skus[0]
    body = {"lines": [{"sku_id": sku, "quantity": 3}], "address_id": order_shop.buyer.address_id}
    headers = {**order_shop.buyer.headers, "Idempotency-Key": "double-tap-" + secrets.token_hex(4)}
    rs = await asyncio.gather(*(order_shop.client.post(order_shop.url("/orders"), json=body, headers=headers)
                                for _ in range(12)))
    codes = sorted(r.status_code for r in rs)
    assert codes == [200] * 11 + [201], [r.text for r in rs if r.status_code not in (200, 201)]
    assert len({r.json()["id"] for r in rs}) == 1
    async with order_shop.runtime.db.uow(readonly=True) as s:
        n = int((await s.execute(select(func.count()).select_from(Order).where(
            Order.tenant_id == order_shop.scope.id))).scalar_one())
    assert n == 1
    await assert_stock_consistent(order_shop, sku, on_hand=100, reserved=3)


async def test_one_key_with_different_bodies_at_once(order_shop: OrderShop) -> None:
    """Racing requests that reuse a key with other bodies: one order, the others 409 or the same order."""
    key = "mixed-" + secrets.token_hex(4)
    a, b = order_shop.skus
    skus = [a if i % 2 else b for i in range(10)]
    bodies = [{"lines": [{"sku_id": sku, "quantity": 1}], "address_id": order_shop.buyer.address_id} for sku in skus]
    rs = await asyncio.gather(*(order_shop.client.post(order_shop.url("/orders"), json=body,
                                                       headers={**order_shop.buyer.headers, "Idempotency-Key": key})
                                for body in bodies))
    created = [r for r in rs if r.status_code == 201]
    assert len(created) == 1
    winner = created[0].json()
    for r, sku in zip(rs, skus, strict=True):
        if r.status_code == 201:
            continue
        if sku == winner["lines"][0]["sku_id"]:
            assert r.status_code == 200 and r.json()["id"] == winner["id"]
        else:
            assert r.status_code == 409 and r.json()["code"] == "idempotency_key_reused"
    total_reserved = 0
    for sku in (a, b):
        async with order_shop.runtime.db.uow(readonly=True) as s:
            total_reserved += sum(lv.reserved for lv in (await s.execute(select(StockLevel).where(
                StockLevel.tenant_id == order_shop.scope.id, StockLevel.sku_id == sku))).scalars())
    assert total_reserved == 1


async def test_the_loser_of_a_key_race_returns_the_winner_and_holds_nothing(order_shop: OrderShop,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected race: the second attempt's first look-up misses the winner (as when the winner
    had not committed yet), so it reaches the insert, loses on the unique key and must answer
    with the winner's order without reserving anything."""
    sku = order_shop.skus[1]
    winner = await order_shop.place([(sku, 2)], key="race-key")
    real = checkout.Orders.by_idempotency_key
    calls = {"n": 0}

    async def late(self: checkout.Orders, customer_id: int, key: str) -> Order | None:
        calls["n"] += 1
        return None if calls["n"] == 1 else await real(self, customer_id, key)

    monkeypatch.setattr(checkout.Orders, "by_idempotency_key", late)
    again = await order_shop.place([(sku, 2)], key="race-key")
    assert again.id == winner.id and calls["n"] == 2
    calls["n"] = 0
    with pytest.raises(Conflict) as e:
        await order_shop.place([(sku, 5)], key="race-key")
    assert e.value.code == "idempotency_key_reused"
    await assert_stock_consistent(order_shop, sku, on_hand=100, reserved=2)
    async with order_shop.runtime.db.uow(readonly=True) as s:
        n = int((await s.execute(select(func.count()).select_from(Order).where(
            Order.tenant_id == order_shop.scope.id))).scalar_one())
    assert n == 1
