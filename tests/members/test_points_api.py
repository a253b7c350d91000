"""The points JSON endpoints: the shopper's balance, history and check-in; the admin's rules
(partial updates, validation as problem+json), a member's points and manual adjustments
(permissions, audit, another tenant's customer a 404)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from siyu.kit import clock
from siyu.kit.runtime import Runtime
from siyu.members import points
from tests.members._points import ledger
from tests.orders.conftest import OrderShop, make_order_shop

ADMIN = "/api/admin/v1/members"


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


async def test_my_points_history_and_checkin(order_shop: OrderShop) -> None:
    shop = order_shop
    c, h = shop.client, shop.buyer.headers
    cid = shop.buyer.customer_id
    async with shop.runtime.db.uow() as s:
        for i in range(3):
            await points.earn(s, shop.scope, cid, 10 * (i + 1), kind="earn", source_key=f"api:{cid}:{i}")
    r = await c.get(shop.url("/member/points"), headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["points"] == 60 and body["available"] == 60 and body["checkin"]["checked_today"] is False
    assert body["rules"]["points_per_yuan"] == 100
    r = await c.post(shop.url("/member/points/checkin"), headers=h)
    assert r.status_code == 200 and r.json()["checked_in"] is True and r.json()["balance"] == 70
    r = await c.post(shop.url("/member/points/checkin"), headers=h)
    assert r.json()["checked_in"] is False and r.json()["balance"] == 70
    r = await c.get(shop.url("/member/points/history?limit=2"), headers=h)
    page = r.json()
    assert [e["amount"] for e in page["items"]] == [10, 30] and page["items"][0]["kind_label"] == "每日签到"
    r = await c.get(shop.url(f"/member/points/history?limit=2&before_id={page['next_before_id']}"), headers=h)
    assert [e["amount"] for e in r.json()["items"]] == [20, 10] and r.json()["next_before_id"] is not None
    r = await c.get(shop.url("/member/points/history"), headers={**h, "accept-language": "en"})
    assert r.json()["items"][0]["kind_label"] == "Daily check-in"
    # signed out
    r = await c.get(shop.url("/member/points"))
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


async def test_admin_rules_member_points_and_adjust(order_shop: OrderShop, login_as: Any, runtime: Runtime,
                                                    client: Any, tenant_factory: Any) -> None:
    shop = order_shop
    owner = await login_as(shop.tenant)
    r = await owner.get(f"{ADMIN}/points/rules")
    assert r.status_code == 200 and r.json()["expiry_mode"] == "yearly"
    assert {a["name"] for a in r.json()["award_rules"]} >= {"signup", "first_order", "review"}
    r = await owner.request("PUT", f"{ADMIN}/points/rules", json={"points_per_yuan": 50, "awards": {"review": 5}})
    assert r.status_code == 200 and r.json()["points_per_yuan"] == 50 and r.json()["awards"]["review"] == 5
    assert r.json()["max_share_bp"] == 5000  # left out: kept
    for bad in ({"points_per_yuan": 0}, {"awards": {"nope": 5}}, {"expiry_mode": "weekly"}, {"extra": 1}):
        r = await owner.request("PUT", f"{ADMIN}/points/rules", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")

    cid = shop.buyer.customer_id
    r = await owner.post(f"{ADMIN}/{cid}/points/adjust", json={"amount": 120, "reason": "补发"})
    assert r.status_code == 201 and r.json()["amount"] == 120 and r.json()["staff_id"] == owner.staff_id
    r = await owner.post(f"{ADMIN}/{cid}/points/adjust", json={"amount": -500, "reason": "扣减"})
    assert r.status_code == 409 and r.json()["code"] == "insufficient_points"
    for bad in ({"amount": 0, "reason": "x"}, {"amount": 5, "reason": ""}, {"amount": 5}):
        assert (await owner.post(f"{ADMIN}/{cid}/points/adjust", json=bad)).status_code == 422, bad
    r = await owner.get(f"{ADMIN}/{cid}/points")
    assert r.status_code == 200 and r.json()["points"] == 120
    assert r.json()["history"]["items"][0]["source_key"].startswith(f"adjust:{cid}:")
    r = await owner.get(f"{ADMIN}/points/entries?kind=adjust")
    assert [e["amount"] for e in r.json()] == [120]

    cs = await login_as(shop.tenant, role="customer_service")
    assert (await cs.get(f"{ADMIN}/{cid}/points")).status_code == 200
    assert (await cs.post(f"{ADMIN}/{cid}/points/adjust", json={"amount": 1, "reason": "x"})).status_code == 403
    assert (await cs.request("PUT", f"{ADMIN}/points/rules", json={"points_per_yuan": 10})).status_code == 403

    other = await make_order_shop(runtime, client, tenant_factory, name="别家店")
    theirs = other.buyer.customer_id
    assert (await owner.get(f"{ADMIN}/{theirs}/points")).status_code == 404
    assert (await owner.post(f"{ADMIN}/{theirs}/points/adjust", json={"amount": 5, "reason": "x"})).status_code == 404
    st = await ledger(runtime, other.scope, theirs)
    assert st.entries == []
