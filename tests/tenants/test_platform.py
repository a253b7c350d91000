"""Platform operators onboard, suspend and resume tenants (商家管理)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import unique, unique_phone
from tests.customers._helpers import sms_login, store_url
from tests.tenants._helpers import PLATFORM, PlatformClient, make_platform_user, platform_login

ADMIN = "/api/admin/v1"


@pytest.fixture
async def ops(app, runtime) -> AsyncIterator[PlatformClient]:  # type: ignore[no-untyped-def]
    p = await platform_login(app, runtime)
    yield p
    await p.c.aclose()


def _tenant_body(**over: Any) -> dict[str, Any]:
    body = {"code": unique("shop"), "name": "青山茶社", "owner_username": unique("boss."),
            "owner_password": "boss-pass-123", "owner_name": "王店主", "contact_phone": "13800138000"}
    body.update(over)
    return body


async def _staff_login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    r = await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": password})
    return r


async def test_platform_sign_in(app, runtime, client) -> None:  # type: ignore[no-untyped-def]
    _uid, username, password = await make_platform_user(runtime)
    r = await client.post(f"{PLATFORM}/auth/login", json={"username": username, "password": "wrong-pass"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    r = await client.post(f"{PLATFORM}/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200 and r.json()["csrf_token"] and "siyu_platform" in r.cookies
    assert (await client.get(f"{PLATFORM}/tenants")).status_code == 200
    r = await client.post(f"{PLATFORM}/auth/logout", headers={"x-csrf-token": r.json()["csrf_token"]})
    assert r.status_code == 204
    client.cookies.clear()
    assert (await client.get(f"{PLATFORM}/tenants")).status_code == 401


async def test_onboard_a_tenant(ops, client) -> None:  # type: ignore[no-untyped-def]
    body = _tenant_body()
    r = await ops.post(f"{PLATFORM}/tenants", json=body)
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["code"] == body["code"] and t["status"] == "active" and t["timezone"] == "Asia/Shanghai"
    assert "owner_password" not in t and "boss-pass-123" not in r.text
    assert (await ops.get(f"{PLATFORM}/tenants/{t['id']}")).json()["code"] == body["code"]
    listed = (await ops.get(f"{PLATFORM}/tenants", params={"q": body["code"]})).json()
    assert [x["id"] for x in listed["items"]] == [t["id"]]

    # The owner can sign in at once and holds every permission.
    r = await _staff_login(client, body["owner_username"], body["owner_password"])
    assert r.status_code == 200 and r.json()["tenant_id"] == t["id"]
    me = (await client.get(f"{ADMIN}/me")).json()
    assert me["role"] == "owner" and me["name"] == "王店主"
    roles = (await client.get(f"{ADMIN}/roles")).json()
    assert {r["code"] for r in roles} >= {"owner", "admin", "operator", "customer_service", "finance", "store_guide"}
    client.cookies.clear()
    # And the shop is open.
    r = await client.post(store_url(t["code"], "/auth/sms-code"), json={"phone": unique_phone()})
    assert r.status_code == 200, r.text


async def test_duplicate_code_and_owner_username_are_409(ops) -> None:  # type: ignore[no-untyped-def]
    first = _tenant_body()
    assert (await ops.post(f"{PLATFORM}/tenants", json=first)).status_code == 201
    r = await ops.post(f"{PLATFORM}/tenants", json=_tenant_body(code=first["code"]))
    assert r.status_code == 409 and r.json()["code"] == "tenant_code_taken"
    second = _tenant_body(owner_username=first["owner_username"])
    r = await ops.post(f"{PLATFORM}/tenants", json=second)
    assert r.status_code == 409 and r.json()["code"] == "username_taken"
    # Nothing half-made was left behind by either refusal.
    listed = (await ops.get(f"{PLATFORM}/tenants", params={"q": second["code"]})).json()
    assert listed["total"] == 0
    r = await ops.post(f"{PLATFORM}/tenants", json=_tenant_body(timezone="Mars/Olympus"))
    assert r.status_code == 422 and r.json()["code"] == "invalid_timezone"


@pytest.fixture
async def live_tenant(ops, client, runtime, tenant_factory, login_as):  # type: ignore[no-untyped-def]
    """A tenant with a signed-in owner, an API token and a signed-in shopper."""
    t = await tenant_factory()
    owner = await login_as(t)
    r = await owner.post(f"{ADMIN}/api-tokens", json={"name": "ERP", "role_id": t.roles["admin"]})
    token = {"authorization": f"Bearer {r.json()['token']}"}
    shopper = await sms_login(client, runtime, t, unique_phone())
    return t, owner, token, shopper


async def test_suspend_cuts_everyone_off_and_resume_restores(ops, client, live_tenant) -> None:  # type: ignore[no-untyped-def]
    t, owner, token, shopper = live_tenant
    assert (await owner.get(f"{ADMIN}/me")).status_code == 200

    r = await ops.post(f"{PLATFORM}/tenants/{t.id}/suspend", json={"reason": "欠费"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "suspended" and r.json()["suspended_reason"] == "欠费"

    def suspended(resp: httpx.Response) -> None:
        assert resp.status_code == 403, (resp.request.url.path, resp.status_code, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["code"] == "tenant_suspended"

    # Staff: existing session, reads and writes, API tokens and new sign-ins.
    suspended(await owner.get(f"{ADMIN}/me"))
    suspended(await owner.get(f"{ADMIN}/staff"))
    suspended(await owner.post(f"{ADMIN}/stores", json={"code": unique("s"), "name": "停业期间开店"}))
    suspended(await client.get(f"{ADMIN}/customers", headers=token))
    suspended(await _staff_login(client, t.owner_username, t.owner_password))
    assert "siyu_staff" not in client.cookies
    # The storefront: sending codes, signing in, and the signed-in shopper.
    suspended(await client.post(store_url(t, "/auth/sms-code"), json={"phone": unique_phone()}))
    suspended(await client.post(store_url(t, "/auth/login/wechat"), json={"code": "alice"}))
    suspended(await client.get(store_url(t, "/me"), headers=shopper.auth))
    r = await ops.post(f"{PLATFORM}/tenants/{t.id}/suspend", json={"reason": "again"})
    assert r.status_code == 409 and r.json()["code"] == "illegal_tenant_transition"

    r = await ops.post(f"{PLATFORM}/tenants/{t.id}/resume", json={})
    assert r.status_code == 200 and r.json()["status"] == "active" and r.json()["suspended_reason"] is None
    r = await ops.post(f"{PLATFORM}/tenants/{t.id}/resume", json={})
    assert r.status_code == 409 and r.json()["code"] == "illegal_tenant_transition"

    # The same session, token and shopper work again; nobody had to sign in anew.
    assert (await owner.get(f"{ADMIN}/me")).status_code == 200
    assert (await client.get(f"{ADMIN}/customers", headers=token)).status_code == 200
    assert (await client.get(store_url(t, "/me"), headers=shopper.auth)).status_code == 200
    stores = (await owner.get(f"{ADMIN}/stores")).json()
    assert stores["total"] == 0
    assert (await _staff_login(client, t.owner_username, t.owner_password)).status_code == 200
    client.cookies.clear()
    assert (await client.post(store_url(t, "/auth/sms-code"), json={"phone": unique_phone()})).status_code == 200


async def test_suspending_one_tenant_leaves_others_alone(ops, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    a, b = await tenant_factory(), await tenant_factory()
    owner_b = await login_as(b)
    await ops.post(f"{PLATFORM}/tenants/{a.id}/suspend", json={})
    assert (await owner_b.get(f"{ADMIN}/me")).status_code == 200
    listed = (await ops.get(f"{PLATFORM}/tenants", params={"status": "suspended", "page_size": 200})).json()
    ids = {x["id"] for x in listed["items"]}
    assert a.id in ids and b.id not in ids


async def test_unknown_tenant_is_404(ops) -> None:  # type: ignore[no-untyped-def]
    for method, url, body in (("GET", f"{PLATFORM}/tenants/999999999", None),
                              ("POST", f"{PLATFORM}/tenants/999999999/suspend", {}),
                              ("POST", f"{PLATFORM}/tenants/999999999/resume", {})):
        r = await (ops.get(url) if method == "GET" else ops.post(url, json=body))
        assert r.status_code == 404 and r.json()["code"] == "tenant_not_found"


async def test_platform_api_refuses_everyone_else(ops, client, live_tenant) -> None:  # type: ignore[no-untyped-def]
    t, owner, token, shopper = live_tenant
    for who, kw in (("staff session", {}), ("api token", {"headers": token}), ("shopper", {"headers": shopper.auth})):
        http = owner if who == "staff session" else client
        r = await http.get(f"{PLATFORM}/tenants", **kw)
        assert r.status_code == 401, (who, r.text)
        r = await (owner.post(f"{PLATFORM}/tenants/{t.id}/suspend", json={}) if who == "staff session"
                   else client.post(f"{PLATFORM}/tenants/{t.id}/suspend", json={}, **kw))
        assert r.status_code == 401, (who, r.text)
    # The staff session cookie presented under the platform cookie's name is no platform session.
    r = await client.get(f"{PLATFORM}/tenants", headers={"cookie": f"siyu_platform={owner.c.cookies.get('siyu_staff')}"})
    assert r.status_code == 401
    r = await ops.get(f"{PLATFORM}/tenants/{t.id}")
    assert r.json()["status"] == "active"


async def test_platform_session_is_no_staff_session(ops) -> None:  # type: ignore[no-untyped-def]
    r = await ops.get(f"{ADMIN}/me")
    assert r.status_code == 401
    token = ops.c.cookies.get("siyu_platform")
    r = await ops.get(f"{ADMIN}/me", headers={"cookie": f"siyu_staff={token}"})
    assert r.status_code == 401


async def test_platform_writes_need_csrf(ops, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    r = await ops.c.post(f"{PLATFORM}/tenants/{t.id}/suspend", json={})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = await ops.c.post(f"{PLATFORM}/tenants", json=_tenant_body(), headers={"x-csrf-token": "nope"})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    assert (await ops.get(f"{PLATFORM}/tenants/{t.id}")).json()["status"] == "active"


async def test_platform_login_lockout(runtime, client) -> None:  # type: ignore[no-untyped-def]
    _uid, username, password = await make_platform_user(runtime)
    for _ in range(runtime.settings.login_max_failures):
        r = await client.post(f"{PLATFORM}/auth/login", json={"username": username, "password": "bad-password"})
        assert r.status_code == 401
    r = await client.post(f"{PLATFORM}/auth/login", json={"username": username, "password": password})
    assert r.status_code == 423 and r.json()["code"] == "login_locked"


async def test_disabled_platform_user_is_signed_out(app, runtime, ops) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from siyu.tenants.models import PlatformUser

    async with runtime.db.uow() as s:
        await s.execute(update(PlatformUser).where(PlatformUser.id == ops.user_id).values(status="disabled"))
    assert (await ops.get(f"{PLATFORM}/tenants")).status_code == 401
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await c.post(f"{PLATFORM}/auth/login", json={"username": ops.username, "password": "platform-pass-123"})
        assert r.status_code == 401
