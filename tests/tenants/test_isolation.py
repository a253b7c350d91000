"""Tenant isolation: another tenant's object is a 404 (never a 403, never its data).

Tenant B is populated with one of everything (store, custom role, staff member, API token,
customer); tenant A's owner, A's API token and A's shoppers then try to reach it by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from siyu.kit.runtime import Runtime
from tests.conftest import StaffClient, TenantInfo, unique, unique_phone
from tests.customers._helpers import Shopper, sms_login, store_url

ADMIN = "/api/admin/v1"


@dataclass
class World:
    tenant: TenantInfo
    owner: StaffClient
    store_id: int
    role_id: int
    staff_id: int
    staff_username: str
    token_id: int
    token: str
    customer: Shopper
    phone: str


async def _populate(client: httpx.AsyncClient, runtime: Runtime, tenant: TenantInfo, owner: StaffClient) -> World:
    r = await owner.post(f"{ADMIN}/stores", json={"code": unique("s"), "name": "门店"})
    assert r.status_code == 201, r.text
    store_id = r.json()["id"]
    r = await owner.post(f"{ADMIN}/roles", json={"code": unique("r"), "name": "自定义", "permissions": ["customers.read"]})
    assert r.status_code == 201, r.text
    role_id = r.json()["id"]
    username = unique("staff.")
    r = await owner.post(f"{ADMIN}/staff", json={"username": username, "name": "员工", "password": "staff-pass-123",
                                                 "role_id": role_id, "store_id": store_id})
    assert r.status_code == 201, r.text
    staff_id = r.json()["id"]
    r = await owner.post(f"{ADMIN}/api-tokens", json={"name": "ERP", "role_id": tenant.roles["admin"]})
    assert r.status_code == 201, r.text
    token_id, token = r.json()["id"], r.json()["token"]
    phone = unique_phone()
    shopper = await sms_login(client, runtime, tenant, phone)
    return World(tenant, owner, store_id, role_id, staff_id, username, token_id, token, shopper, phone)


@pytest.fixture
async def two(client, runtime, tenant_factory, login_as) -> tuple[World, World]:  # type: ignore[no-untyped-def]
    ta, tb = await tenant_factory("甲商家"), await tenant_factory("乙商家")
    a = await _populate(client, runtime, ta, await login_as(ta))
    b = await _populate(client, runtime, tb, await login_as(tb))
    return a, b


def _foreign_requests(b: World) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every by-id admin request, aimed at tenant B's objects."""
    return [
        ("GET", f"{ADMIN}/staff/{b.staff_id}", None),
        ("PATCH", f"{ADMIN}/staff/{b.staff_id}", {"name": "hijacked", "status": "disabled"}),
        ("POST", f"{ADMIN}/staff/{b.staff_id}/password", {"password": "hijacked-pass-1"}),
        ("GET", f"{ADMIN}/stores/{b.store_id}", None),
        ("PATCH", f"{ADMIN}/stores/{b.store_id}", {"name": "hijacked", "status": "closed"}),
        ("GET", f"{ADMIN}/roles/{b.role_id}", None),
        ("PATCH", f"{ADMIN}/roles/{b.role_id}", {"permissions": ["staff.write"]}),
        ("DELETE", f"{ADMIN}/roles/{b.role_id}", None),
        ("GET", f"{ADMIN}/roles/{b.tenant.roles['admin']}", None),
        ("PATCH", f"{ADMIN}/roles/{b.tenant.roles['operator']}", {"permissions": []}),
        ("POST", f"{ADMIN}/api-tokens/{b.token_id}/revoke", None),
        ("GET", f"{ADMIN}/customers/{b.customer.customer_id}", None),
        ("POST", f"{ADMIN}/customers/{b.customer.customer_id}/status", {"status": "blocked"}),
    ]


async def _assert_b_untouched(client: httpx.AsyncClient, b: World) -> None:
    owner = b.owner
    staff = (await owner.get(f"{ADMIN}/staff/{b.staff_id}")).json()
    assert staff["name"] == "员工" and staff["status"] == "active"
    store = (await owner.get(f"{ADMIN}/stores/{b.store_id}")).json()
    assert store["name"] == "门店" and store["status"] == "open"
    role = (await owner.get(f"{ADMIN}/roles/{b.role_id}")).json()
    assert role["permissions"] == ["customers.read"]
    operator = (await owner.get(f"{ADMIN}/roles/{b.tenant.roles['operator']}")).json()
    assert operator["permissions"], "operator role of B was emptied by A"
    r = await client.get(f"{ADMIN}/me", headers={"authorization": f"Bearer {b.token}"})
    assert r.status_code == 200, "B's API token was revoked by A"
    cust = (await owner.get(f"{ADMIN}/customers/{b.customer.customer_id}")).json()
    assert cust["status"] == "active"
    r = await client.get(store_url(b.tenant, "/me"), headers=b.customer.auth)
    assert r.status_code == 200
    # B's staff member can still sign in with the old password.
    r = await client.post(f"{ADMIN}/auth/login", json={"username": b.staff_username, "password": "staff-pass-123"})
    assert r.status_code == 200, r.text
    client.cookies.clear()


def _assert_not_found(r: httpx.Response, b: World) -> None:
    assert r.status_code == 404, (r.request.method, r.request.url.path, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"].endswith("not_found")
    # The answer says nothing about the foreign object.
    for secret in (b.staff_username, b.tenant.code, b.tenant.name, b.phone):
        assert secret not in r.text


async def test_staff_of_a_gets_404_for_every_object_of_b(client, two) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    for method, url, body in _foreign_requests(b):
        r = await a.owner.request(method, url, json=body) if body is not None else await a.owner.request(method, url)
        _assert_not_found(r, b)
    await _assert_b_untouched(client, b)


async def test_api_token_of_a_gets_404_for_every_object_of_b(client, two) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    auth = {"authorization": f"Bearer {a.token}"}
    me = (await client.get(f"{ADMIN}/me", headers=auth)).json()
    assert me["tenant_id"] == a.tenant.id and me["via"] == "token"
    for method, url, body in _foreign_requests(b):
        r = await client.request(method, url, json=body, headers=auth) if body is not None else \
            await client.request(method, url, headers=auth)
        _assert_not_found(r, b)
    await _assert_b_untouched(client, b)


async def test_a_cannot_point_its_own_objects_at_b(two) -> None:  # type: ignore[no-untyped-def]
    """References inside a body (role_id, store_id) are checked against the caller's tenant too."""
    a, b = two
    r = await a.owner.post(f"{ADMIN}/staff", json={"username": unique("x."), "name": "x", "password": "staff-pass-123",
                                                   "role_id": b.tenant.roles["admin"]})
    assert r.status_code == 422 and r.json()["code"] == "role_not_found"
    r = await a.owner.post(f"{ADMIN}/staff", json={"username": unique("x."), "name": "x", "password": "staff-pass-123",
                                                   "role_id": a.tenant.roles["operator"], "store_id": b.store_id})
    assert r.status_code == 422 and r.json()["code"] == "store_not_found"
    r = await a.owner.patch(f"{ADMIN}/staff/{a.staff_id}", json={"role_id": b.tenant.roles["owner"]})
    assert r.status_code == 422 and r.json()["code"] == "role_not_found"
    r = await a.owner.patch(f"{ADMIN}/staff/{a.staff_id}", json={"store_id": b.store_id})
    assert r.status_code == 422 and r.json()["code"] == "store_not_found"
    r = await a.owner.post(f"{ADMIN}/api-tokens", json={"name": "x", "role_id": b.tenant.roles["owner"]})
    assert r.status_code == 422 and r.json()["code"] == "role_not_found"
    got = (await a.owner.get(f"{ADMIN}/staff/{a.staff_id}")).json()
    assert got["role_id"] == a.role_id and got["store_id"] == a.store_id


async def test_lists_never_show_the_other_tenant(client, runtime, two) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    # B writes a few more things, so B has audit entries and SMS rows of its own after A's.
    await b.owner.patch(f"{ADMIN}/settings", json={"welcome_text": "B only"})
    await sms_login(client, runtime, b.tenant, unique_phone())

    async def items(url: str) -> list[dict[str, Any]]:
        r = await a.owner.get(url, params={"page_size": 200} if "roles" not in url and "api-tokens" not in url else None)
        assert r.status_code == 200, (url, r.text)
        body = r.json()
        return body["items"] if isinstance(body, dict) else body

    staff = await items(f"{ADMIN}/staff")
    assert {s["id"] for s in staff} >= {a.staff_id, a.owner.staff_id}
    assert b.staff_id not in {s["id"] for s in staff} and b.owner.staff_id not in {s["id"] for s in staff}
    assert all(s["username"] != b.staff_username for s in staff)

    stores = await items(f"{ADMIN}/stores")
    assert [s["id"] for s in stores] == [a.store_id]

    roles = await items(f"{ADMIN}/roles")
    assert {r["id"] for r in roles} == {*a.tenant.roles.values(), a.role_id}

    tokens = await items(f"{ADMIN}/api-tokens")
    assert [t["id"] for t in tokens] == [a.token_id]

    customers = await items(f"{ADMIN}/customers")
    assert [c["id"] for c in customers] == [a.customer.customer_id]

    sms = await items(f"{ADMIN}/sms-messages")
    assert len(sms) == 1 and sms[0]["phone"] == a.phone  # the owner may see full numbers
    r = await a.owner.get(f"{ADMIN}/sms-messages", params={"phone": b.phone})
    assert r.json()["items"] == [] and r.json()["total"] == 0

    audit = await items(f"{ADMIN}/audit-log")
    assert audit, "A's own writes are in A's audit log"
    foreign_objects = {("staff", str(b.staff_id)), ("store", str(b.store_id)), ("role", str(b.role_id)),
                       ("api_token", str(b.token_id)), ("tenant", str(b.tenant.id))}
    assert not {(e["object_type"], e["object_id"]) for e in audit} & foreign_objects

    # Searching by B's identifiers finds nothing either.
    r = await a.owner.get(f"{ADMIN}/staff", params={"q": b.staff_username})
    assert r.json()["total"] == 0
    r = await a.owner.get(f"{ADMIN}/customers", params={"q": b.phone})
    assert r.json()["total"] == 0


async def test_customer_session_belongs_to_one_shop(client, two) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    r = await client.get(store_url(a.tenant, "/me"), headers=a.customer.auth)
    assert r.status_code == 200 and r.json()["id"] == a.customer.customer_id
    r = await client.get(store_url(b.tenant, "/me"), headers=a.customer.auth)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    r = await client.patch(store_url(b.tenant, "/me"), headers=a.customer.auth, json={"nickname": "闯入者"})
    assert r.status_code == 401
    # As a cookie, too.
    r = await client.get(store_url(b.tenant, "/me"), headers={"cookie": f"siyu_customer={a.customer.token}"})
    assert r.status_code == 401
    # A shopper's token is no staff credential anywhere.
    r = await client.get(f"{ADMIN}/me", headers=a.customer.auth)
    assert r.status_code == 401


async def test_staff_session_of_a_is_not_a_shopper_or_staff_of_b(client, two) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    # The staff session cookie of A is not accepted as a customer session anywhere.
    staff_cookie = a.owner.c.cookies.get("siyu_staff")
    assert staff_cookie
    for shop in (a.tenant, b.tenant):
        r = await client.get(store_url(shop, "/me"), headers={"authorization": f"Bearer {staff_cookie}"})
        assert r.status_code == 401
    # Nor is it a bearer credential for the admin API (those are API tokens).
    r = await client.get(f"{ADMIN}/me", headers={"authorization": f"Bearer {staff_cookie}"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    # And /me of the admin API always names the caller's own tenant.
    me = (await a.owner.get(f"{ADMIN}/me")).json()
    assert me["tenant_id"] == a.tenant.id and me["tenant_code"] == a.tenant.code
