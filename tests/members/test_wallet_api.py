"""Stored value through the JSON API (SQLite and PostgreSQL).

Store: my wallet and the packages on sale, recharging with an Idempotency-Key (201, 200 for
the same request, 409 for the key with another package, 400 without a key, 422 for a bad
body), paying a recharge through the sandbox, my recharges, my statement paged with
``before_id``, asking for the principal back. Admin: settings, packages CRUD with
validation, recharges and refund requests with filters, approve and reject, a member's
wallet, adjustments (with an Idempotency-Key: once), the read-only role getting 403, another
tenant's objects a 404.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from siyu.kit.runtime import Runtime
from tests.conftest import drain_outbox
from tests.members import _wallet as w
from tests.orders import _aftersales as af
from tests.orders import _lifecycle as lc
from tests.orders.conftest import OrderShop, make_order_shop

ADMIN = "/api/admin/v1/members/wallet"


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


async def test_store_recharge_pay_and_statement(order_shop: OrderShop) -> None:
    shop, buyer = order_shop, order_shop.buyer
    pkg = await w.package(shop, 30_000, 3000, name="充 300 送 30")
    await w.package(shop, 1000, name="下架的", on_sale=False)
    r = await shop.client.get(shop.url("/member/wallet"), headers=buyer.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["balance"] == {"principal_fen": 0, "bonus_fen": 0, "total_fen": 0, "held_fen": 0}
    assert [p["id"] for p in body["packages"]] == [pkg] and body["settings"]["recharge_enabled"] is True
    url = shop.url("/member/wallet/recharges")
    assert (await shop.client.post(url, json={"package_id": pkg}, headers=buyer.headers)).json()["code"] == \
        "idempotency_key_required"
    for bad in ({}, {"package_id": pkg, "amount_fen": 100}, {"amount_fen": 0}, {"amount_fen": "10"}, {"x": 1}):
        r = await shop.client.post(url, json=bad, headers={**buyer.headers, "Idempotency-Key": "k-bad"})
        assert r.status_code == 422, bad
    key = secrets.token_hex(8)
    r = await shop.client.post(url, json={"package_id": pkg}, headers={**buyer.headers, "Idempotency-Key": key})
    assert r.status_code == 201 and r.json()["status"] == "pending_payment" and r.json()["payable"] is True
    rid = r.json()["id"]
    r = await shop.client.post(url, json={"package_id": pkg}, headers={**buyer.headers, "Idempotency-Key": key})
    assert (r.status_code, r.json()["id"]) == (200, rid)
    r = await shop.client.post(url, json={"amount_fen": 500}, headers={**buyer.headers, "Idempotency-Key": key})
    assert (r.status_code, r.json()["code"]) == (409, "idempotency_key_reused")
    r = await shop.client.post(f"{url}/{rid}/pay", json={"channel": "sandbox"}, headers=buyer.headers)
    assert r.status_code == 200 and r.json()["amount_fen"] == 30_000 and r.json()["pay_url"]
    await lc.sandbox_pay(shop.runtime, r.json()["out_trade_no"])
    await drain_outbox(shop.runtime)
    r = await shop.client.get(f"{url}/{rid}", headers=buyer.headers)
    assert r.json()["status"] == "paid" and r.json()["status_label"] == "已到账"
    r = await shop.client.post(f"{url}/{rid}/pay", json={}, headers=buyer.headers)
    assert (r.status_code, r.json()["code"]) == (409, "recharge_not_payable")
    r = await shop.client.get(url, headers=buyer.headers)
    assert r.json()["total"] == 1
    # Statement, paged.
    for n in (1, 2, 3):
        await w.gift(shop, n * 100, bucket="bonus")
    r = await shop.client.get(shop.url("/member/wallet/history?limit=2"), headers=buyer.headers)
    rows = r.json()
    assert [(e["kind"], e["total_fen"], e["balance_after_fen"]) for e in rows] == [("adjust", 300, 33_600),
                                                                                   ("adjust", 200, 33_300)]
    r = await shop.client.get(shop.url(f"/member/wallet/history?before_id={rows[-1]['id']}"), headers=buyer.headers)
    assert [(e["kind"], e["principal_fen"], e["bonus_fen"]) for e in r.json()] == [("adjust", 0, 100),
                                                                                    ("recharge", 30_000, 3000)]
    assert r.json()[-1]["label"] == "充值"
    # Another member sees none of it.
    other = await shop.new_buyer()
    assert (await shop.client.get(f"{url}/{rid}", headers=other.headers)).status_code == 404
    assert (await shop.client.post(f"{url}/{rid}/pay", json={}, headers=other.headers)).status_code == 404


async def test_store_refund_request_and_admin_review(order_shop: OrderShop, login_as: Any) -> None:
    shop, buyer = order_shop, order_shop.buyer
    await w.recharge(shop, package_id=await w.package(shop, 20_000, 2000))
    url = shop.url("/member/wallet/refunds")
    r = await shop.client.post(url, json={"amount_fen": 30_000}, headers=buyer.headers)
    assert (r.status_code, r.json()["code"], r.json()["refundable_fen"]) == (409, "balance_refund_exceeds", 20_000)
    r = await shop.client.post(url, json={"reason": "不需要了"}, headers=buyer.headers)
    assert r.status_code == 201 and r.json()["amount_fen"] == 20_000
    first = r.json()["id"]
    r = await shop.client.post(url, json={}, headers=buyer.headers)
    assert r.json()["code"] == "balance_refund_open"
    staff = await login_as(shop.tenant)
    r = await staff.get(f"{ADMIN}/refunds?status=pending")
    assert [x["id"] for x in r.json()["items"]] == [first]
    r = await staff.post(f"{ADMIN}/refunds/{first}/reject", json={"reason": ""})
    assert r.status_code == 422
    r = await staff.post(f"{ADMIN}/refunds/{first}/reject", json={"reason": "请到店办理"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    r = await shop.client.post(url, json={"amount_fen": 5000}, headers=buyer.headers)
    second = r.json()["id"]
    r = await staff.post(f"{ADMIN}/refunds/{second}/approve")
    assert r.status_code == 200 and r.json()["status"] == "refunding" and len(r.json()["parts"]) == 1
    r = await staff.post(f"{ADMIN}/refunds/{second}/approve")
    assert (r.status_code, r.json()["code"]) == (409, "balance_refund_illegal_transition")
    await af.settle(shop)
    await drain_outbox(shop.runtime)
    r = await staff.get(f"{ADMIN}/refunds/{second}")
    assert r.json()["status"] == "refunded" and r.json()["parts"][0]["status"] == "succeeded"
    r = await shop.client.get(url, headers=buyer.headers)
    assert [x["status"] for x in r.json()["items"]] == ["refunded", "rejected"]
    r = await staff.get(f"/api/admin/v1/members/{buyer.customer_id}/wallet")
    assert r.status_code == 200 and r.json()["balance"]["principal_fen"] == 15_000
    assert r.json()["entries"][0]["kind"] == "refund_hold"


async def test_admin_settings_packages_and_adjustments(order_shop: OrderShop, login_as: Any) -> None:
    shop = order_shop
    staff = await login_as(shop.tenant)
    r = await staff.get(f"{ADMIN}/settings")
    assert r.json() == {"recharge_enabled": True, "custom_enabled": True, "custom_min_fen": 100,
                        "custom_max_fen": 5_000_000, "bonus_share_bp": 0, "refund_enabled": True}
    r = await staff.request("PUT", f"{ADMIN}/settings", json={"custom_min_fen": 9_000_000, "custom_max_fen": 100})
    assert (r.status_code, r.json()["code"]) == (422, "wallet_settings_invalid")
    r = await staff.request("PUT", f"{ADMIN}/settings", json={"bonus_share_bp": 10001})
    assert r.status_code == 422
    r = await staff.request("PUT", f"{ADMIN}/settings", json={"bonus_share_bp": 1000, "custom_enabled": False})
    assert r.status_code == 200 and r.json()["bonus_share_bp"] == 1000 and r.json()["custom_enabled"] is False
    r = await staff.post(f"{ADMIN}/packages", json={"name": "充 100", "pay_fen": 10_000})
    assert r.status_code == 201 and r.json()["bonus_fen"] == 0 and r.json()["on_sale"] is True
    pid = r.json()["id"]
    for bad in ({"name": "", "pay_fen": 1}, {"name": "x", "pay_fen": 0}, {"name": "x", "pay_fen": 1, "bonus_fen": -1},
                {"name": "x", "pay_fen": 1, "sort": 10**6}, {"name": "x" * 41, "pay_fen": 1}):
        assert (await staff.post(f"{ADMIN}/packages", json=bad)).status_code == 422, bad
    r = await staff.patch(f"{ADMIN}/packages/{pid}", json={"bonus_fen": 1500, "on_sale": False})
    assert r.json()["bonus_fen"] == 1500 and r.json()["on_sale"] is False
    assert [p["id"] for p in (await staff.get(f"{ADMIN}/packages")).json()] == [pid]
    assert (await staff.delete(f"{ADMIN}/packages/{pid}")).status_code == 204
    assert (await staff.get(f"{ADMIN}/packages/{pid}")).status_code == 404
    # Adjustments: the same key adjusts once.
    cid = shop.buyer.customer_id
    url = f"/api/admin/v1/members/{cid}/wallet/adjust"
    body = {"amount_fen": 2500, "bucket": "principal", "reason": "线下现金充值"}
    r = await staff.post(url, json=body, headers={"Idempotency-Key": "adj-1"})
    assert r.status_code == 201 and r.json()["balance"]["principal_fen"] == 2500
    r = await staff.post(url, json=body, headers={"Idempotency-Key": "adj-1"})
    assert r.status_code == 200 and r.json()["created"] is False and r.json()["balance"]["principal_fen"] == 2500
    r = await staff.post(url, json={**body, "amount_fen": -3000})
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_balance")
    for bad in ({**body, "amount_fen": 0}, {**body, "reason": ""}, {**body, "bucket": "cash"}):
        assert (await staff.post(url, json=bad)).status_code == 422, bad
    assert (await staff.post("/api/admin/v1/members/999999999/wallet/adjust", json=body)).status_code == 404
    r = await staff.get(f"{ADMIN}/recharges?status=paid")
    assert r.status_code == 200 and r.json()["total"] == 0


async def test_read_only_staff_and_other_tenants(order_shop: OrderShop, login_as: Any, runtime: Runtime,
                                                 client: httpx.AsyncClient, tenant_factory: Any) -> None:
    shop = order_shop
    pkg = await w.package(shop, 10_000)
    await w.recharge(shop, package_id=pkg)
    desk = await login_as(shop.tenant, "customer_service")  # members.read only
    assert (await desk.get(f"{ADMIN}/packages")).status_code == 200
    assert (await desk.get(f"/api/admin/v1/members/{shop.buyer.customer_id}/wallet")).status_code == 200
    for method, path, body in (("POST", f"{ADMIN}/packages", {"name": "x", "pay_fen": 1}),
                               ("PATCH", f"{ADMIN}/packages/{pkg}", {"on_sale": False}),
                               ("DELETE", f"{ADMIN}/packages/{pkg}", None), ("PUT", f"{ADMIN}/settings", {}),
                               ("POST", f"/api/admin/v1/members/{shop.buyer.customer_id}/wallet/adjust",
                                {"amount_fen": 1, "reason": "x"})):
        r = await desk.request(method, path, json=body)
        assert r.status_code == 403, (method, path)
    other = await make_order_shop(runtime, client, tenant_factory, "别家")
    them = await login_as(other.tenant)
    assert (await them.get(f"{ADMIN}/packages/{pkg}")).status_code == 404
    assert (await them.patch(f"{ADMIN}/packages/{pkg}", json={"on_sale": False})).status_code == 404
    assert (await them.get(f"/api/admin/v1/members/{shop.buyer.customer_id}/wallet")).status_code == 404
    r = await them.get(f"{ADMIN}/recharges?customer_id={shop.buyer.customer_id}")
    assert r.json()["total"] == 0
