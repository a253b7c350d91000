"""The JSON API of levels, growth, member prices and members (SQLite and PostgreSQL).

Admin: levels CRUD (the defaults saved on the first read; 422 / 409 / 404 answers as
problem+json), growth settings, member prices per SKU, the member list with filters, a
member's detail, profile (audited), growth history and adjustments; permissions
(``members.read`` reads, ``members.write`` writes); another tenant's objects are 404; a
member path that is not a number belongs to the other parts' routes. Store: my member centre,
the levels, my growth, my profile (birthday once), my notices.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from siyu.kit.runtime import Runtime
from tests.conftest import drain_outbox
from tests.members.test_levels import give_growth, level_ids, settled_buyer
from tests.orders import _lifecycle as lc
from tests.orders.conftest import OrderShop, make_order_shop

ADMIN = "/api/admin/v1/members"


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


def problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    if code is not None:
        assert body["code"] == code, body
    return body


async def test_levels_crud_and_settings(order_shop: OrderShop, login_as: Any) -> None:
    owner = await login_as(order_shop.tenant)
    r = await owner.get(f"{ADMIN}/levels")
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [(x["rank"], x["name"], x["growth_threshold"]) for x in rows] == [
        (0, "普通会员", 0), (1, "银卡会员", 1000), (2, "金卡会员", 5000), (3, "黑金会员", 20000)]
    assert all(x["id"] > 0 for x in rows)
    assert rows[2]["benefits"] == ["1.5 倍积分", "生日赠 300 积分"]
    body = {"name": "至尊会员", "rank": 4, "growth_threshold": 50000, "price_rate_bp": 9000, "free_shipping": True,
            "priority_shipping": True, "points_multiplier_bp": 30000, "color": "#112233", "description": "顶级"}
    r = await owner.post(f"{ADMIN}/levels", json=body)
    assert r.status_code == 201, r.text
    top = r.json()
    assert top["benefits"] == ["全场9折", "包邮", "3 倍积分", "优先发货"]
    r = await owner.get(f"{ADMIN}/levels/{top['id']}", headers={"accept-language": "en"})
    assert r.json()["benefits"] == ["10% off", "Free shipping", "3× points", "Priority shipping"]
    r = await owner.request("PUT", f"{ADMIN}/levels/{top['id']}", json={**body, "price_rate_bp": 8850})
    assert r.status_code == 200 and r.json()["benefits"][0] == "全场8.85折"
    problem(await owner.post(f"{ADMIN}/levels", json={**body, "name": "L5", "rank": 5, "growth_threshold": 100}), 422,
            "level_threshold_order")
    problem(await owner.post(f"{ADMIN}/levels", json={**body, "rank": -1}), 422)
    problem(await owner.post(f"{ADMIN}/levels", json={**body, "extra": 1}), 422)
    problem(await owner.request("DELETE", f"{ADMIN}/levels/{rows[0]['id']}"), 409, "level_base")
    assert (await owner.request("DELETE", f"{ADMIN}/levels/{top['id']}")).status_code == 204
    problem(await owner.get(f"{ADMIN}/levels/{top['id']}"), 404, "level_not_found")

    r = await owner.get(f"{ADMIN}/level-settings")
    assert r.json() == {"growth_per_yuan": 1, "signup": 10, "first_order": 20, "checkin": 1, "review": 5,
                        "review_policy": "never", "window_days": 365, "coupons_available": False}
    r = await owner.request("PUT", f"{ADMIN}/level-settings", json={"review_policy": "yearly", "growth_per_yuan": 2})
    assert r.status_code == 200 and (r.json()["review_policy"], r.json()["growth_per_yuan"]) == ("yearly", 2)
    problem(await owner.request("PUT", f"{ADMIN}/level-settings", json={"window_days": 7}), 422)
    problem(await owner.request("PUT", f"{ADMIN}/level-settings", json={"review_policy": "weekly"}), 422)


async def test_member_prices(order_shop: OrderShop, login_as: Any) -> None:
    owner = await login_as(order_shop.tenant)
    ids = await level_ids(order_shop)
    sku = order_shop.skus[1]
    r = await owner.request("PUT", f"{ADMIN}/member-prices/{sku}", json={"prices": [
        {"level_id": ids["银卡会员"], "price_fen": 3800}, {"level_id": ids["金卡会员"], "price_fen": 3500}]})
    assert r.status_code == 200, r.text
    assert r.json()["prices"] == {str(ids["银卡会员"]): 3800, str(ids["金卡会员"]): 3500}
    r = await owner.request("PUT", f"{ADMIN}/member-prices/{sku}", json={"prices": [
        {"level_id": ids["银卡会员"], "price_fen": None}]})
    assert r.json()["prices"] == {str(ids["金卡会员"]): 3500}
    r = await owner.get(f"{ADMIN}/member-prices")
    assert r.json()["total"] == 1 and r.json()["items"][0]["sku_id"] == sku
    problem(await owner.request("PUT", f"{ADMIN}/member-prices/{sku}", json={"prices": [
        {"level_id": ids["金卡会员"], "price_fen": 3991}]}), 422, "member_price_invalid")
    problem(await owner.request("PUT", f"{ADMIN}/member-prices/{sku}", json={"prices": [
        {"level_id": 10**15, "price_fen": 100}]}), 404, "level_not_found")
    problem(await owner.get(f"{ADMIN}/member-prices/{10**15}"), 404, "sku_not_found")


async def test_members_list_detail_profile_and_growth(order_shop: OrderShop, login_as: Any, runtime: Runtime,
                                                      client: httpx.AsyncClient, tenant_factory: Any) -> None:
    shop = order_shop
    owner = await login_as(shop.tenant)
    ids = await level_ids(shop)
    buyer = await settled_buyer(shop)
    await give_growth(shop, buyer.customer_id, 1000)
    r = await owner.get(ADMIN, params={"level_id": ids["银卡会员"]})
    assert r.status_code == 200, r.text
    (row,) = r.json()["items"]
    assert row["customer_id"] == buyer.customer_id and row["level"]["name"] == "银卡会员" and row["growth"] == 1010
    assert "*" in row["phone"]
    assert (await owner.get(ADMIN, params={"birthday_month": 13})).status_code == 422

    r = await owner.get(f"{ADMIN}/{buyer.customer_id}")
    detail = r.json()
    assert (detail["level"]["name"], detail["level"]["via"], detail["growth"], detail["next_level"]["name"],
            detail["to_next"]) == ("银卡会员", "growth", 1010, "金卡会员", 3990)
    assert detail["profile"]["birthday"] is None
    r = await owner.patch(f"{ADMIN}/{buyer.customer_id}/profile", json={"birthday": "1991-07-08", "gender": "male"})
    assert r.status_code == 200 and r.json()["profile"]["birthday"] == "1991-07-08"
    r = await owner.patch(f"{ADMIN}/{buyer.customer_id}/profile", json={"birthday": None})
    assert r.json()["profile"]["birthday"] is None  # staff may clear it
    problem(await owner.patch(f"{ADMIN}/{buyer.customer_id}/profile", json={"gender": "robot"}), 422)

    r = await owner.post(f"{ADMIN}/{buyer.customer_id}/growth/adjust", json={"amount": 4000, "reason": "线下消费补录"})
    assert r.status_code == 201 and r.json()["balance_after"] == 5010
    problem(await owner.post(f"{ADMIN}/{buyer.customer_id}/growth/adjust", json={"amount": -9999, "reason": "x"}),
            409, "insufficient_growth")
    problem(await owner.post(f"{ADMIN}/{buyer.customer_id}/growth/adjust", json={"amount": 0, "reason": "x"}), 422)
    problem(await owner.post(f"{ADMIN}/{buyer.customer_id}/growth/adjust", json={"amount": 5}), 422)
    once = [await owner.post(f"{ADMIN}/{buyer.customer_id}/growth/adjust", json={"amount": 1, "reason": "重试"},
                             headers={"Idempotency-Key": "retry-1"}) for _ in range(2)]
    assert [x.status_code for x in once] == [201, 201] and once[0].json() == once[1].json()
    problem(await owner.post(f"{ADMIN}/{buyer.customer_id}/growth/adjust", json={"amount": 1, "reason": "x"},
                             headers={"Idempotency-Key": "no spaces"}), 422, "invalid_idempotency_key")
    await owner.post(f"{ADMIN}/{buyer.customer_id}/growth/adjust", json={"amount": -1, "reason": "撤回重试"})
    r = await owner.get(f"{ADMIN}/{buyer.customer_id}/growth", params={"limit": 4})
    assert [e["amount"] for e in r.json()[:2]] == [-1, 1]
    r = await owner.get(f"{ADMIN}/{buyer.customer_id}/growth", params={"before_id": r.json()[1]["id"], "limit": 2})
    assert [(e["kind"], e["amount"]) for e in r.json()] == [("adjust", 4000), ("adjust", 1000)]
    r2 = await owner.get(f"{ADMIN}/{buyer.customer_id}/growth", params={"before_id": r.json()[-1]["id"]})
    assert [e["kind"] for e in r2.json()] == ["signup"]
    assert (await owner.get(f"{ADMIN}/{buyer.customer_id}")).json()["level"]["name"] == "金卡会员"

    # Another tenant's customer is a 404; a path that is not a number is not a member.
    other = await make_order_shop(runtime, client, tenant_factory, "别家")
    for path in (f"{ADMIN}/{other.buyer.customer_id}", f"{ADMIN}/{other.buyer.customer_id}/growth"):
        problem(await owner.get(path), 404)
    problem(await owner.post(f"{ADMIN}/{other.buyer.customer_id}/growth/adjust", json={"amount": 5, "reason": "x"}), 404)
    problem(await owner.patch(f"{ADMIN}/{other.buyer.customer_id}/profile", json={"gender": "male"}), 404)
    r = await owner.get(f"{ADMIN}/not-a-number")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


async def test_reading_needs_members_read_and_writing_members_write(order_shop: OrderShop, login_as: Any) -> None:
    service = await login_as(order_shop.tenant, "customer_service")
    assert (await service.get(f"{ADMIN}/levels")).status_code == 200
    assert (await service.get(ADMIN)).status_code == 200
    problem(await service.post(f"{ADMIN}/levels", json={"name": "X", "rank": 9}), 403)
    problem(await service.post(f"{ADMIN}/{order_shop.buyer.customer_id}/growth/adjust",
                               json={"amount": 5, "reason": "x"}), 403)
    problem(await service.request("PUT", f"{ADMIN}/level-settings", json={"signup": 1}), 403)
    guide = await login_as(order_shop.tenant, "store_guide")
    problem(await guide.get(ADMIN), 403)


async def test_store_member_centre(order_shop: OrderShop) -> None:
    shop = order_shop
    buyer = await settled_buyer(shop)
    await give_growth(shop, buyer.customer_id, 1200)
    url = shop.url("/member")
    r = await shop.client.get(url, headers=buyer.headers)
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["level"]["name"], me["growth"], me["counted_growth"], me["to_next"]) == ("银卡会员", 1210, 1210, 3790)
    assert me["progress_bp"] == 210 * 10000 // 4000 and me["unread_notices"] == 1 and not me["birthday_locked"]
    r = await shop.client.get(shop.url("/member/notices"), headers=buyer.headers)
    assert [n["kind"] for n in r.json()] == ["level_up"]
    assert (await shop.client.post(shop.url("/member/notices/read"), headers=buyer.headers)).status_code == 204
    assert (await shop.client.get(url, headers=buyer.headers)).json()["unread_notices"] == 0
    r = await shop.client.get(shop.url("/member/levels"), headers=buyer.headers)
    assert [lv["name"] for lv in r.json()] == ["普通会员", "银卡会员", "金卡会员", "黑金会员"]
    r = await shop.client.get(shop.url("/member/growth"), headers=buyer.headers)
    assert [(e["kind"], e["amount"]) for e in r.json()] == [("adjust", 1200), ("signup", 10)]

    r = await shop.client.patch(shop.url("/member/profile"), headers=buyer.headers,
                                json={"birthday": "1995-12-24", "gender": "female", "region": "上海"})
    assert r.status_code == 200 and r.json()["birthday_locked"] and r.json()["profile"]["region"] == "上海"
    problem(await shop.client.patch(shop.url("/member/profile"), headers=buyer.headers, json={"birthday": "1996-01-01"}),
            409, "birthday_locked")
    r = await shop.client.patch(shop.url("/member/profile"), headers=buyer.headers, json={"region": "北京"})
    assert r.status_code == 200 and r.json()["profile"]["birthday"] == "1995-12-24"
    problem(await shop.client.patch(shop.url("/member/profile"), headers=buyer.headers, json={"birthday": "2999-01-01"}),
            422)
    problem(await shop.client.get(url), 401)

    # A shopper whose registration has not been handled yet reads as a fresh member.
    fresh = await shop.new_buyer()
    r = await shop.client.get(url, headers=fresh.headers)
    assert r.status_code == 200 and (r.json()["level"]["name"], r.json()["growth"]) == ("普通会员", 0)
    await drain_outbox(shop.runtime)
