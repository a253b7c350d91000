"""Stored value under contention: many checkouts spending one wallet at once.

Every request is a real HTTP request to the in-process app with its own unit of work, all
started together with ``asyncio.gather``; on PostgreSQL they truly overlap (the ledger's
conditional ``UPDATE`` decides), on SQLite the writers queue on the database lock. The
invariants must hold exactly on both: the balance never goes negative and pays one order.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from siyu.kit.runtime import Runtime
from siyu.orders.models import Order, OrderLine
from tests.members import _wallet as w
from tests.orders import _lifecycle as lc
from tests.orders.conftest import OrderShop


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


async def _orders_of(shop: OrderShop, sku: int) -> list[Order]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(Order).where(Order.tenant_id == shop.scope.id, Order.id.in_(
            select(OrderLine.order_id).where(OrderLine.sku_id == sku))))).scalars().all()
        for o in rows:
            s.expunge(o)
        return list(rows)


async def test_50_concurrent_balance_payments_against_a_balance_that_covers_one(order_shop: OrderShop) -> None:
    sku = await order_shop.make_sku(price_fen=9900, stock=100, title="储值专享礼盒")
    await w.gift(order_shop, 5000, bucket="principal")
    await w.gift(order_shop, 4900, bucket="bonus")
    await w.settings(order_shop, bonus_share_bp=5000)
    buyer = order_shop.buyer

    async def pay_by_balance() -> tuple[int, str]:
        r = await order_shop.client.post(
            order_shop.url("/orders"),
            json={"lines": [{"sku_id": sku, "quantity": 1}], "address_id": buyer.address_id,
                  "options": {"use_balance": True}},
            headers={**buyer.headers, "Idempotency-Key": secrets.token_hex(8)})
        return r.status_code, r.json().get("code", "") if r.status_code != 201 else ""

    results = Counter(await asyncio.gather(*(pay_by_balance() for _ in range(50))))
    assert results == Counter({(201, ""): 1, (409, "insufficient_balance"): 49}), results
    [order] = await _orders_of(order_shop, sku)
    assert (order.balance_fen, order.payable_fen) == (9900, 0)
    assert await w.balance(order_shop) == w.wallet.WalletBalance(0, 0, 0, 0)
    # The refused orders left nothing behind: no stock held, no journal.
    assert await lc.level(order_shop, sku) == (100, 1)
    await w.assert_ledger_sound(order_shop)


async def test_one_key_retried_at_once_spends_once(order_shop: OrderShop) -> None:
    await w.gift(order_shop, 50_000)
    sku = order_shop.skus[0]
    key = secrets.token_hex(8)
    body = {"lines": [{"sku_id": sku, "quantity": 1}], "address_id": order_shop.buyer.address_id,
            "options": {"use_balance": True}}

    async def place() -> tuple[int, int]:
        r = await order_shop.client.post(order_shop.url("/orders"), json=body,
                                         headers={**order_shop.buyer.headers, "Idempotency-Key": key})
        return r.status_code, r.json()["id"]

    results = await asyncio.gather(*(place() for _ in range(10)))
    assert len({oid for _s, oid in results}) == 1
    assert sorted(code for code, _o in results).count(201) == 1
    assert (await w.balance(order_shop)).total_fen == 50_000 - 12_800
    await w.assert_ledger_sound(order_shop)


async def test_an_empty_wallet_asked_to_pay_refuses_the_order(order_shop: OrderShop) -> None:
    r = await order_shop.place_api([(order_shop.skus[1], 1)], options={"use_balance": True})
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_balance")
    r = await order_shop.place_api([(order_shop.skus[1], 1)], options={"use_balance": False})
    assert r.status_code == 201 and r.json()["payable_fen"] == 3990
