"""The order state machine: every transition of the table allowed, everything else a 409
``order_illegal_transition`` (through the service and over HTTP), the happy path end to end,
cancellation by shopper and staff, and the order settings."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from siyu.kit import clock
from siyu.kit.audit import AuditEntry
from siyu.kit.errors import Conflict
from siyu.kit.runtime import Runtime
from siyu.orders import aftersales, service
from siyu.orders.models import Order
from siyu.orders.states import (
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    ensure_order_transition,
    move_order,
)
from tests.conftest import StaffClient
from tests.orders import _lifecycle as lc
from tests.orders._lifecycle import ADMIN
from tests.orders.conftest import OrderShop


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _notify(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


@pytest.fixture
async def staff(order_shop: OrderShop, login_as: Any) -> StaffClient:
    return await login_as(order_shop.tenant)


ALL_PAIRS = list(itertools.product(ORDER_STATUSES, ORDER_STATUSES))


@given(st.sampled_from(ORDER_STATUSES), st.sampled_from(ORDER_STATUSES))
@settings(max_examples=200, deadline=None)
def test_the_table_decides_every_pair(src: str, dst: str) -> None:
    if dst in ORDER_TRANSITIONS[src]:
        ensure_order_transition(src, dst)
    else:
        with pytest.raises(Conflict) as exc:
            ensure_order_transition(src, dst)
        assert exc.value.code == "order_illegal_transition" and exc.value.status == 409
        assert exc.value.extra == {"from_status": src, "to_status": dst}


def test_the_table_is_the_documented_one() -> None:
    assert {s: set(t) for s, t in ORDER_TRANSITIONS.items()} == {
        "pending_payment": {"paid", "cancelled"},
        "paid": {"partially_shipped", "shipped", "completed", "closed"},
        "partially_shipped": {"shipped", "closed"},
        "shipped": {"delivered", "completed", "closed"},
        "delivered": {"completed", "closed"},
        "completed": {"closed"},
        "cancelled": set(),
        "closed": set(),
    }


async def test_move_order_applies_exactly_the_table(order_shop: OrderShop) -> None:
    """Every (from, to) pair on a stored order: the legal ones move it and leave a timeline
    row, the others are refused with nothing written."""
    order = await order_shop.place()
    for src, dst in ALL_PAIRS:
        async with order_shop.runtime.db.uow() as s:
            await s.execute(update(Order).where(Order.id == order.id).values(status=src))
            row = (await s.execute(select(Order).where(Order.id == order.id))).scalar_one()
            if dst in ORDER_TRANSITIONS[src]:
                assert await move_order(s, row, dst, "test") is True, (src, dst)
                assert row.status == dst
            else:
                with pytest.raises(Conflict) as exc:
                    await move_order(s, row, dst, "test")
                assert exc.value.code == "order_illegal_transition", (src, dst)
                assert row.status == src
    moves = [t for t in await lc.timeline(order_shop.runtime, order.id) if t[2] == "test"]
    assert sorted(moves) == sorted((a, b, "test") for a, b in ALL_PAIRS if b in ORDER_TRANSITIONS[a])


async def test_a_stale_move_loses_and_writes_nothing(order_shop: OrderShop) -> None:
    order = await order_shop.place()
    async with order_shop.runtime.db.uow() as s:
        row = (await s.execute(select(Order).where(Order.id == order.id))).scalar_one()
        # Another transaction cancels it; this one still holds the row it read before.
        await s.execute(update(Order).where(Order.id == order.id).values(status="cancelled")
                        .execution_options(synchronize_session=False))
        assert row.status == "pending_payment"
        assert await move_order(s, row, "paid", "pay") is False
        assert row.status == "cancelled"
    assert [t for t in await lc.timeline(order_shop.runtime, order.id) if t[2] == "pay"] == []


async def test_the_whole_way_over_http(order_shop: OrderShop, staff: StaffClient, client: httpx.AsyncClient) -> None:
    shop = order_shop
    r = await shop.place_api([(shop.skus[0], 1)])
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    h = shop.buyer.headers
    mine = (await client.get(shop.url(f"/orders/{order_id}"), headers=h)).json()
    assert mine["status"] == "pending_payment" and mine["actions"] == ["cancel", "pay"]
    assert "seller_note" not in mine and "transitions" not in mine

    start = (await client.post(shop.url(f"/orders/{order_id}/pay"), json={}, headers=h)).json()
    await lc.sandbox_pay(shop.runtime, start["out_trade_no"])
    from tests.conftest import drain_outbox

    await drain_outbox(shop.runtime)
    assert (await client.get(shop.url(f"/orders/{order_id}"), headers=h)).json()["status"] == "paid"
    r = await staff.post(f"{ADMIN}/{order_id}/ship", json={"carrier_code": "YTO", "tracking_no": "YT9988776655"})
    assert r.status_code == 200 and r.json()["order_status"] == "shipped"
    r = await client.post(shop.url(f"/orders/{order_id}/confirm"), headers=h)
    assert r.status_code == 200 and r.json()["status"] == "completed"

    detail = (await staff.get(f"{ADMIN}/{order_id}")).json()
    assert [(t["from_status"], t["to_status"], t["action"]) for t in detail["transitions"]] == [
        ("new", "pending_payment", "place"), ("pending_payment", "paid", "pay"), ("paid", "shipped", "ship"),
        ("shipped", "delivered", "deliver"), ("delivered", "completed", "confirm")]
    actors = [t["actor_type"] for t in detail["transitions"]]
    assert actors == ["customer", "gateway", "staff", "customer", "customer"]
    assert detail["transitions"][2]["actor_name"] and detail["transitions"][2]["note"] == "圆通 YT9988776655"
    assert detail["actions"] == ["note"]


async def test_illegal_moves_over_http_are_409(order_shop: OrderShop, staff: StaffClient, client: httpx.AsyncClient) -> None:
    shop = order_shop
    h = shop.buyer.headers
    unpaid = await shop.place()
    paid = await lc.paid_order(shop)

    def code(r: httpx.Response) -> tuple[int, str]:
        return r.status_code, r.json().get("code", "")

    illegal = (409, "order_illegal_transition")
    assert code(await staff.post(f"{ADMIN}/{unpaid.id}/ship", json={"carrier_code": "SF", "tracking_no": "SF12345678"})) == illegal
    assert code(await client.post(shop.url(f"/orders/{paid.id}/confirm"), headers=h)) == illegal
    assert code(await client.post(shop.url(f"/orders/{unpaid.id}/confirm"), headers=h)) == illegal
    assert code(await client.post(shop.url(f"/orders/{paid.id}/cancel"), json={}, headers=h)) == illegal
    assert code(await staff.post(f"{ADMIN}/{paid.id}/cancel", json={"reason": "缺货"})) == illegal
    assert code(await staff.post(f"{ADMIN}/{paid.id}/delivered")) == illegal
    assert code(await staff.post(f"{ADMIN}/{unpaid.id}/delivered")) == illegal
    assert (await shop.order(unpaid.id)).status == "pending_payment"
    assert (await shop.order(paid.id)).status == "paid"


async def test_a_shopper_cancels_an_unpaid_order(order_shop: OrderShop, client: httpx.AsyncClient) -> None:
    shop = order_shop
    sku = shop.skus[1]
    before = await lc.level(shop, sku)
    order = await shop.place([(sku, 4)])
    start = await lc.start_payment(shop, order.id)
    assert await lc.level(shop, sku) == (before[0], before[1] + 4)

    r = await client.post(shop.url(f"/orders/{order.id}/cancel"), json={"reason": "地址填错了"}, headers=shop.buyer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["cancel_reason"] == "地址填错了" and r.json()["actions"] == []
    assert await lc.level(shop, sku) == before
    assert (await lc.payment(shop.runtime, start.payment.id)).status == "closed"
    assert [p.status for p in await lc.parts(shop.runtime, order.id)] == ["cancelled"]
    [ev] = await lc.events(shop.runtime, shop.scope.id, "order.cancelled", order_id=order.id)
    assert ev["by"] == "customer" and ev["reason"] == "地址填错了"

    r = await client.post(shop.url(f"/orders/{order.id}/cancel"), json={}, headers=shop.buyer.headers)
    assert (r.status_code, r.json()["code"]) == (409, "order_illegal_transition")
    assert [m[0] for m in await lc.movements(shop, order.id)] == ["reserve", "release"]
    r = await client.post(shop.url(f"/orders/{order.id}/cancel"), json={"reason": "x" * 81}, headers=shop.buyer.headers)
    assert r.status_code == 422


async def test_money_taken_as_the_shopper_cancels_refuses_the_cancel(order_shop: OrderShop, runtime: Runtime) -> None:
    shop = order_shop
    order = await shop.place()
    start = await lc.start_payment(shop, order.id)
    runtime.extras["http_client"] = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    await lc.sandbox_pay(runtime, start.payment.out_trade_no)  # paid; the notification is lost for now
    with pytest.raises(Conflict) as exc:
        async with runtime.db.uow() as s:
            await service.cancel_order(s, shop.scope, order.id, by="customer", customer_id=shop.buyer.customer_id)
    assert exc.value.code == "order_already_paid"
    assert (await shop.order(order.id)).status == "pending_payment"


async def test_staff_cancel_is_audited(order_shop: OrderShop, staff: StaffClient) -> None:
    shop = order_shop
    order = await shop.place()
    r = await staff.post(f"{ADMIN}/{order.id}/cancel", json={"reason": "客户电话要求取消"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["transitions"][-1]["actor_type"] == "staff"
    async with shop.runtime.db.uow(readonly=True) as s:
        entry = (await s.execute(select(AuditEntry).where(AuditEntry.tenant_id == shop.scope.id,
                                                          AuditEntry.action == "orders.cancel"))).scalar_one()
    assert entry.object_id == str(order.id) and entry.after == {"status": "cancelled", "reason": "客户电话要求取消"}
    [ev] = await lc.events(shop.runtime, shop.scope.id, "order.cancelled", order_id=order.id)
    assert ev["by"] == "staff"
    bare = await shop.place()
    r = await staff.post(f"{ADMIN}/{bare.id}/cancel")  # no body: the default reason
    assert r.status_code == 200 and r.json()["cancel_reason"] == "商家取消"


async def test_order_settings(order_shop: OrderShop, staff: StaffClient, login_as: Any) -> None:
    shop = order_shop
    r = await staff.get(f"{ADMIN}/settings")
    assert r.json() == {"pay_timeout_minutes": 30, "auto_confirm_days": 10, "after_sale_days": 15, "return_address": ""}
    for body in ({"pay_timeout_minutes": 4}, {"pay_timeout_minutes": 1441}, {"auto_confirm_days": 0},
                 {"auto_confirm_days": 31}, {"after_sale_days": -1}, {"after_sale_days": 91}, {"unknown": 1},
                 {"pay_timeout_minutes": "abc"}, {"return_address": "x" * 201}, {"return_address": "a\u0000b"}):
        assert (await staff.request("PUT", f"{ADMIN}/settings", json=body)).status_code == 422, body
    r = await staff.request("PUT", f"{ADMIN}/settings", json={"pay_timeout_minutes": 15, "auto_confirm_days": 7})
    assert r.status_code == 200
    assert r.json() == {"pay_timeout_minutes": 15, "auto_confirm_days": 7, "after_sale_days": 15, "return_address": ""}
    r = await staff.request("PUT", f"{ADMIN}/settings", json={"return_address": "  沈青山 0571-87961188  杭州市龙井路 18 号 "})
    assert r.json()["return_address"] == "沈青山 0571-87961188 杭州市龙井路 18 号"
    # Changing one setting keeps the others, the return address included.
    r = await staff.request("PUT", f"{ADMIN}/settings", json={"after_sale_days": 0})
    assert r.json() == {"pay_timeout_minutes": 15, "auto_confirm_days": 7, "after_sale_days": 0,
                        "return_address": "沈青山 0571-87961188 杭州市龙井路 18 号"}
    async with shop.runtime.db.uow(readonly=True) as s:
        assert await aftersales.return_address(s, shop.scope) == "沈青山 0571-87961188 杭州市龙井路 18 号"
    async with shop.runtime.db.uow(readonly=True) as s:
        entries = (await s.execute(select(AuditEntry).where(AuditEntry.tenant_id == shop.scope.id,
                                                            AuditEntry.action == "orders.settings.update")
                                   .order_by(AuditEntry.id))).scalars().all()
    assert [e.after for e in entries][-1] == {"pay_timeout_minutes": 15, "auto_confirm_days": 7, "after_sale_days": 0,
                                              "return_address": "沈青山 0571-87961188 杭州市龙井路 18 号"}

    # New orders follow the settings.
    order = await shop.place()
    assert order.pay_deadline is not None
    assert abs(order.pay_deadline - order.created_at - timedelta(minutes=15)) < timedelta(seconds=2)
    paid = await lc.paid_order(shop)
    res = await lc.ship(shop, paid.id, "SF5566778899")
    assert res.order.auto_confirm_at is not None and res.order.shipped_at is not None
    assert abs(res.order.auto_confirm_at - res.order.shipped_at - timedelta(days=7)) < timedelta(seconds=2)

    # Settings need the settings permissions; operators may not change them.
    operator = await login_as(shop.tenant, "operator")
    assert (await operator.request("PUT", f"{ADMIN}/settings", json={"auto_confirm_days": 3})).status_code == 403
