"""Who may do what in the admin API: permissions, roles, sessions, API tokens, CSRF, lockout, audit.

The permission matrix is derived from the routes themselves: every ``/api/admin/v1`` route
(other than sign-in, sign-out, ``/me`` and ``/permissions``) must carry a ``require(...)``
dependency, and for every default role each such route answers 403 ``permission_denied``
exactly when the role lacks the permission.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from siyu.kit import clock
from siyu.kit.runtime import Runtime
from siyu.staff.access import StaffPrincipal, require
from siyu.staff.permissions import ALL_CODES, DEFAULT_ROLES
from tests.conftest import StaffClient, TenantInfo, unique, unique_phone
from tests.customers._helpers import sms_login

ADMIN = "/api/admin/v1"
#: Routes any signed-in staff member may call: no permission needed.
UNGUARDED = {
    ("POST", f"{ADMIN}/auth/login"),
    ("POST", f"{ADMIN}/auth/logout"),
    ("GET", f"{ADMIN}/me"),
    ("GET", f"{ADMIN}/permissions"),
}
_REQUIRE_NAMES = {f"require_{p.replace('.', '_')}": p for p in ALL_CODES}


def _required_permissions(dependant: Any) -> list[str]:
    found: list[str] = []
    for dep in dependant.dependencies:
        name = getattr(dep.call, "__name__", "")
        if name.startswith("require_"):
            assert name in _REQUIRE_NAMES, f"require dependency {name} names no known permission"
            found.append(_REQUIRE_NAMES[name])
        found.extend(_required_permissions(dep))
    return found


def api_routes(app: Any) -> Iterator[tuple[str, set[str], Any]]:
    """(path, methods, dependant) of every FastAPI route, however routers were included.

    Newer FastAPI keeps included routers as lazy wrappers in ``app.routes``; its
    ``iter_route_contexts`` flattens them. Older versions list ``APIRoute`` objects directly.
    """
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in (flatten(app.routes) if flatten else app.routes):
        dependant = getattr(route, "dependant", None)
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if dependant is not None and path and methods:
            yield path, set(methods), dependant


def admin_routes(app: Any, minimum: int = 20) -> dict[tuple[str, str], list[str]]:
    """(method, path) → permissions required, for every admin API route."""
    out: dict[tuple[str, str], list[str]] = {}
    for path, methods, dependant in api_routes(app):
        if path.startswith(f"{ADMIN}/"):
            for method in methods - {"HEAD", "OPTIONS"}:
                out[(method, path)] = _required_permissions(dependant)
    assert len(out) >= minimum, "route discovery found too few admin routes; did FastAPI's routing change?"
    return out


def test_every_admin_route_checks_a_permission(app) -> None:  # type: ignore[no-untyped-def]
    routes = admin_routes(app)
    assert routes.keys() >= UNGUARDED, "an exempt route moved; update UNGUARDED"
    unguarded = sorted(k for k, perms in routes.items() if not perms and k not in UNGUARDED)
    assert not unguarded, f"admin routes without a require(...) permission dependency: {unguarded}"
    doubly = sorted(k for k, perms in routes.items() if len(perms) > 1)
    assert not doubly, f"admin routes with more than one permission dependency (ambiguous): {doubly}"
    exempt_but_guarded = sorted(k for k in UNGUARDED if routes[k])
    assert not exempt_but_guarded


async def _fake_open() -> dict[str, str]:
    return {}


async def _fake_guarded(me: Annotated[StaffPrincipal, require("catalog.read")]) -> dict[str, str]:
    return {}


async def _fake_helper(me: Annotated[StaffPrincipal, require("orders.write")]) -> None:
    return None


async def _fake_deep(_: Annotated[None, Depends(_fake_helper)]) -> dict[str, str]:
    return {}


def test_the_route_walk_sees_through_nested_routers() -> None:
    """The check above would notice a new unguarded route, however deeply it is included."""
    inner = APIRouter(prefix="/things")
    inner.add_api_route("/open", _fake_open, methods=["GET"])
    inner.add_api_route("/guarded", _fake_guarded, methods=["GET"])
    inner.add_api_route("/deep", _fake_deep, methods=["POST"])
    outer = APIRouter(prefix=ADMIN)
    outer.include_router(inner)
    fake = FastAPI()
    fake.include_router(outer)
    assert admin_routes(fake, minimum=3) == {
        ("GET", f"{ADMIN}/things/open"): [],
        ("GET", f"{ADMIN}/things/guarded"): ["catalog.read"],
        ("POST", f"{ADMIN}/things/deep"): ["orders.write"],
    }


# -- the matrix ---------------------------------------------------------------------------


@dataclass
class Ctx:
    """Objects of one tenant the representative requests act on."""

    runtime: Runtime
    tenant: TenantInfo
    owner: StaffClient
    staff_id: int
    store_id: int
    role_id: int
    customer_id: int
    seq: list[int] = field(default_factory=lambda: [0])

    async def fresh_role(self) -> int:
        r = await self.owner.post(f"{ADMIN}/roles", json={"code": unique("tmp"), "name": "临时"})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def fresh_token(self) -> int:
        r = await self.owner.post(f"{ADMIN}/api-tokens", json={"name": "tmp", "role_id": self.tenant.roles["operator"]})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


Builder = Callable[[Ctx], Awaitable[tuple[str, dict[str, Any] | None]]]


def _const(url: str, body: dict[str, Any] | None = None) -> Builder:
    async def build(ctx: Ctx) -> tuple[str, dict[str, Any] | None]:
        return url.format(ctx=ctx), body
    return build


async def _new_staff(ctx: Ctx) -> tuple[str, dict[str, Any] | None]:
    return f"{ADMIN}/staff", {"username": unique("m."), "name": "新员工", "password": "staff-pass-123",
                              "role_id": ctx.tenant.roles["store_guide"]}


async def _new_role(ctx: Ctx) -> tuple[str, dict[str, Any] | None]:
    return f"{ADMIN}/roles", {"code": unique("r"), "name": "新角色", "permissions": ["catalog.read"]}


async def _new_store(ctx: Ctx) -> tuple[str, dict[str, Any] | None]:
    return f"{ADMIN}/stores", {"code": unique("s"), "name": "新门店"}


async def _delete_role(ctx: Ctx) -> tuple[str, dict[str, Any] | None]:
    return f"{ADMIN}/roles/{await ctx.fresh_role()}", None


async def _revoke_token(ctx: Ctx) -> tuple[str, dict[str, Any] | None]:
    return f"{ADMIN}/api-tokens/{await ctx.fresh_token()}/revoke", None


async def _new_token(ctx: Ctx) -> tuple[str, dict[str, Any] | None]:
    return f"{ADMIN}/api-tokens", {"name": "集成", "role_id": ctx.tenant.roles["store_guide"]}


#: A well-formed request for each known guarded route; it succeeds (2xx) for a role holding
#: the permission. Routes added later fall back to a generic request, still checked for 403.
REPRESENTATIVE: dict[tuple[str, str], Builder] = {
    ("GET", f"{ADMIN}/staff"): _const(f"{ADMIN}/staff"),
    ("POST", f"{ADMIN}/staff"): _new_staff,
    ("GET", f"{ADMIN}/staff/{{staff_id}}"): _const(f"{ADMIN}/staff/{{ctx.staff_id}}"),
    ("PATCH", f"{ADMIN}/staff/{{staff_id}}"): _const(f"{ADMIN}/staff/{{ctx.staff_id}}", {"name": "改名"}),
    ("POST", f"{ADMIN}/staff/{{staff_id}}/password"): _const(f"{ADMIN}/staff/{{ctx.staff_id}}/password",
                                                              {"password": "another-pass-1"}),
    ("GET", f"{ADMIN}/roles"): _const(f"{ADMIN}/roles"),
    ("POST", f"{ADMIN}/roles"): _new_role,
    ("GET", f"{ADMIN}/roles/{{role_id}}"): _const(f"{ADMIN}/roles/{{ctx.role_id}}"),
    ("PATCH", f"{ADMIN}/roles/{{role_id}}"): _const(f"{ADMIN}/roles/{{ctx.role_id}}", {"description": "改"}),
    ("DELETE", f"{ADMIN}/roles/{{role_id}}"): _delete_role,
    ("GET", f"{ADMIN}/api-tokens"): _const(f"{ADMIN}/api-tokens"),
    ("POST", f"{ADMIN}/api-tokens"): _new_token,
    ("POST", f"{ADMIN}/api-tokens/{{token_id}}/revoke"): _revoke_token,
    ("GET", f"{ADMIN}/audit-log"): _const(f"{ADMIN}/audit-log"),
    ("GET", f"{ADMIN}/sms-messages"): _const(f"{ADMIN}/sms-messages"),
    ("GET", f"{ADMIN}/settings"): _const(f"{ADMIN}/settings"),
    ("PATCH", f"{ADMIN}/settings"): _const(f"{ADMIN}/settings", {"welcome_text": "欢迎"}),
    ("GET", f"{ADMIN}/stores"): _const(f"{ADMIN}/stores"),
    ("POST", f"{ADMIN}/stores"): _new_store,
    ("GET", f"{ADMIN}/stores/{{store_id}}"): _const(f"{ADMIN}/stores/{{ctx.store_id}}"),
    ("PATCH", f"{ADMIN}/stores/{{store_id}}"): _const(f"{ADMIN}/stores/{{ctx.store_id}}", {"address": "新地址"}),
    ("GET", f"{ADMIN}/customers"): _const(f"{ADMIN}/customers"),
    ("GET", f"{ADMIN}/customers/{{customer_id}}"): _const(f"{ADMIN}/customers/{{ctx.customer_id}}"),
    ("POST", f"{ADMIN}/customers/{{customer_id}}/status"): _const(f"{ADMIN}/customers/{{ctx.customer_id}}/status",
                                                                   {"status": "active"}),
}


def _generic(method: str, path: str) -> Builder:
    async def build(ctx: Ctx) -> tuple[str, dict[str, Any] | None]:
        return re.sub(r"\{[^}]+\}", "1", path), ({} if method in ("POST", "PUT", "PATCH") else None)
    return build


@pytest.fixture
async def ctx(client, runtime, tenant_factory, login_as) -> Ctx:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    r = await owner.post(f"{ADMIN}/stores", json={"code": unique("s"), "name": "总店"})
    store_id = r.json()["id"]
    r = await owner.post(f"{ADMIN}/staff", json={"username": unique("tgt."), "name": "目标", "password": "staff-pass-123",
                                                 "role_id": t.roles["store_guide"]})
    staff_id = r.json()["id"]
    r = await owner.post(f"{ADMIN}/roles", json={"code": unique("c"), "name": "自定义"})
    role_id = r.json()["id"]
    shopper = await sms_login(client, runtime, t, unique_phone())
    return Ctx(runtime, t, owner, staff_id, store_id, role_id, shopper.customer_id)


async def _send(who: StaffClient | tuple[httpx.AsyncClient, dict[str, str]], method: str, url: str,
                body: dict[str, Any] | None) -> httpx.Response:
    kw: dict[str, Any] = {} if body is None else {"json": body}
    if isinstance(who, StaffClient):
        return await who.request(method, url, **kw)
    client, headers = who
    return await client.request(method, url, headers=headers, **kw)


async def _check_matrix(app: Any, ctx: Ctx, who: Any, granted: frozenset[str], label: str) -> None:
    for (method, path), perms in sorted(admin_routes(app).items()):
        if not perms:
            continue
        (perm,) = perms
        build = REPRESENTATIVE.get((method, path)) or _generic(method, path)
        url, body = await build(ctx)
        r = await _send(who, method, url, body)
        where = f"{label}: {method} {url} needs {perm}"
        assert r.status_code < 500, f"{where} → {r.status_code} {r.text}"
        if perm in granted:
            assert r.status_code not in (401, 403), f"{where}; role has it but got {r.status_code} {r.text}"
            if (method, path) in REPRESENTATIVE:
                assert r.status_code < 300, f"{where} → {r.status_code} {r.text}"
        else:
            assert r.status_code == 403, f"{where}; role lacks it but got {r.status_code} {r.text}"
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "permission_denied" and r.json()["permission"] == perm


@pytest.mark.parametrize("role", list(DEFAULT_ROLES))
async def test_default_role_matrix(app, ctx, login_as, role: str) -> None:  # type: ignore[no-untyped-def]
    staff = ctx.owner if role == "owner" else await login_as(ctx.tenant, role)
    granted = ALL_CODES if role == "owner" else frozenset(DEFAULT_ROLES[role][2])
    me = (await staff.get(f"{ADMIN}/me")).json()
    assert me["role"] == role and set(me["permissions"]) == granted
    await _check_matrix(app, ctx, staff, granted, role)


@pytest.mark.parametrize("role", ["operator", "finance"])
async def test_api_token_matrix_follows_its_role(app, client, ctx, role: str) -> None:  # type: ignore[no-untyped-def]
    r = await ctx.owner.post(f"{ADMIN}/api-tokens", json={"name": f"{role} 集成", "role_id": ctx.tenant.roles[role]})
    headers = {"authorization": f"Bearer {r.json()['token']}"}
    await _check_matrix(app, ctx, (client, headers), frozenset(DEFAULT_ROLES[role][2]), f"token:{role}")


async def test_custom_single_permission_role(app, ctx, login_as) -> None:  # type: ignore[no-untyped-def]
    r = await ctx.owner.post(f"{ADMIN}/roles", json={"code": unique("only"), "name": "仅门店", "permissions": ["stores.read"]})
    ctx.tenant.roles["only_stores"] = r.json()["id"]
    staff = await login_as(ctx.tenant, "only_stores")
    await _check_matrix(app, ctx, staff, frozenset({"stores.read"}), "custom")


async def test_unauthenticated_admin_calls_are_401(app, client) -> None:  # type: ignore[no-untyped-def]
    for (method, path) in sorted(admin_routes(app)):
        if (method, path) == ("POST", f"{ADMIN}/auth/login"):
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        r = await client.request(method, url, json={} if method in ("POST", "PATCH", "PUT") else None)
        assert r.status_code == 401, (method, url, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "unauthorized"
        # A made-up session cookie changes nothing.
        r = await client.request(method, url, headers={"cookie": "siyu_staff=forged"})
        assert r.status_code == 401


# -- role editor ----------------------------------------------------------------------------


async def test_role_editor_rules(ctx) -> None:  # type: ignore[no-untyped-def]
    owner, roles = ctx.owner, ctx.tenant.roles
    mine_code = (await owner.get(f"{ADMIN}/roles/{ctx.role_id}")).json()["code"]
    r = await owner.post(f"{ADMIN}/roles", json={"code": unique("bad"), "name": "坏", "permissions": ["catalog.read", "nuke.all"]})
    assert r.status_code == 422 and r.json()["code"] == "unknown_permission"
    assert "nuke.all" in r.text and r.json()["errors"][0]["field"] == "permissions"
    r = await owner.patch(f"{ADMIN}/roles/{ctx.role_id}", json={"permissions": ["staff.read", "root"]})
    assert r.status_code == 422 and r.json()["code"] == "unknown_permission"
    assert (await owner.get(f"{ADMIN}/roles/{ctx.role_id}")).json()["permissions"] == []

    # Duplicate code.
    code = unique("dup")
    assert (await owner.post(f"{ADMIN}/roles", json={"code": code, "name": "甲"})).status_code == 201
    r = await owner.post(f"{ADMIN}/roles", json={"code": code, "name": "乙"})
    assert r.status_code == 409 and r.json()["code"] == "role_code_taken"

    # Permissions are stored de-duplicated and sorted.
    r = await owner.patch(f"{ADMIN}/roles/{ctx.role_id}", json={"permissions": ["staff.read", "audit.read", "staff.read"]})
    assert r.status_code == 200 and r.json()["permissions"] == ["audit.read", "staff.read"]

    # The owner role is locked, even for the owner.
    r = await owner.patch(f"{ADMIN}/roles/{roles['owner']}", json={"permissions": []})
    assert r.status_code == 409 and r.json()["code"] == "owner_role_locked"
    r = await owner.patch(f"{ADMIN}/roles/{roles['owner']}", json={"name": "老板"})
    assert r.status_code == 409
    me = (await owner.get(f"{ADMIN}/me")).json()
    assert set(me["permissions"]) == ALL_CODES

    # System roles cannot be deleted (the owner role included); editing a non-owner system role is allowed.
    for code in DEFAULT_ROLES:
        r = await owner.delete(f"{ADMIN}/roles/{roles[code]}")
        assert r.status_code == 409, (code, r.text)
        assert r.json()["code"] in ("system_role", "owner_role_locked")
    assert len((await owner.get(f"{ADMIN}/roles")).json()) >= len(DEFAULT_ROLES)

    # A custom role in use by a staff member cannot be deleted; once unused it can.
    r = await owner.post(f"{ADMIN}/staff", json={"username": unique("u."), "name": "用户", "password": "staff-pass-123",
                                                 "role_id": ctx.role_id})
    user_id = r.json()["id"]
    r = await owner.delete(f"{ADMIN}/roles/{ctx.role_id}")
    assert r.status_code == 409 and r.json()["code"] == "role_in_use"
    await owner.patch(f"{ADMIN}/staff/{user_id}", json={"role_id": roles["operator"]})
    r = await owner.delete(f"{ADMIN}/roles/{ctx.role_id}")
    assert r.status_code == 204, r.text
    assert (await owner.get(f"{ADMIN}/roles/{ctx.role_id}")).status_code == 404
    r = await owner.get(f"{ADMIN}/audit-log", params={"action": "role.delete"})
    assert [(e["object_id"], e["before"]["code"]) for e in r.json()["items"]] == [(str(ctx.role_id), mine_code)]
    # A role held by a live API token is in use too.
    r = await owner.post(f"{ADMIN}/roles", json={"code": unique("tok"), "name": "令牌角色"})
    token_role = r.json()["id"]
    r = await owner.post(f"{ADMIN}/api-tokens", json={"name": "t", "role_id": token_role})
    assert r.status_code == 201
    r = await owner.delete(f"{ADMIN}/roles/{token_role}")
    assert r.status_code == 409 and r.json()["code"] == "role_in_use"


async def test_role_used_only_by_revoked_tokens_can_be_deleted(ctx) -> None:  # type: ignore[no-untyped-def]
    """(Regression: api_tokens.role_id used to block the delete at commit with a bare 409.)"""
    owner = ctx.owner
    r = await owner.post(f"{ADMIN}/api-tokens", json={"name": "t", "role_id": ctx.role_id})
    token_id = r.json()["id"]
    assert (await owner.delete(f"{ADMIN}/roles/{ctx.role_id}")).json()["code"] == "role_in_use"
    await owner.post(f"{ADMIN}/api-tokens/{token_id}/revoke")
    r = await owner.delete(f"{ADMIN}/roles/{ctx.role_id}")
    assert r.status_code == 204, r.text
    assert (await owner.get(f"{ADMIN}/roles/{ctx.role_id}")).status_code == 404
    tokens = (await owner.get(f"{ADMIN}/api-tokens")).json()
    revoked = next(t for t in tokens if t["id"] == token_id)
    assert revoked["revoked_at"] and revoked["role_id"] is None, "the revoked token stays listed, without a role"


async def test_role_change_applies_to_signed_in_staff_at_once(ctx, login_as) -> None:  # type: ignore[no-untyped-def]
    ctx.tenant.roles["custom"] = ctx.role_id
    staff = await login_as(ctx.tenant, "custom")
    assert (await staff.get(f"{ADMIN}/customers")).status_code == 403
    await ctx.owner.patch(f"{ADMIN}/roles/{ctx.role_id}", json={"permissions": ["customers.read"]})
    assert (await staff.get(f"{ADMIN}/customers")).status_code == 200
    await ctx.owner.patch(f"{ADMIN}/roles/{ctx.role_id}", json={"permissions": []})
    assert (await staff.get(f"{ADMIN}/customers")).status_code == 403


# -- owners, sessions, passwords --------------------------------------------------------------


async def test_last_active_owner_cannot_be_disabled_or_demoted(ctx, login_as) -> None:  # type: ignore[no-untyped-def]
    owner, roles = ctx.owner, ctx.tenant.roles
    me = owner.staff_id
    for change in ({"status": "disabled"}, {"role_id": roles["admin"]}, {"role_id": roles["operator"], "status": "disabled"}):
        r = await owner.patch(f"{ADMIN}/staff/{me}", json=change)
        assert r.status_code == 409 and r.json()["code"] == "last_owner", (change, r.text)
    assert (await owner.get(f"{ADMIN}/me")).json()["role"] == "owner"

    # With a second owner, one may step down; then the remaining one is the last again.
    username = unique("o2.")
    r = await owner.post(f"{ADMIN}/staff", json={"username": username, "name": "二当家", "password": "owner2-pass-1",
                                                 "role_id": roles["owner"]})
    assert r.status_code == 201, r.text
    second_id = r.json()["id"]
    second = await login_as(ctx.tenant, username=username, password="owner2-pass-1")
    r = await owner.patch(f"{ADMIN}/staff/{me}", json={"role_id": roles["admin"]})
    assert r.status_code == 200, r.text
    assert (await owner.get(f"{ADMIN}/me")).json()["role"] == "admin"  # the session follows the new role
    r = await second.patch(f"{ADMIN}/staff/{second_id}", json={"status": "disabled"})
    assert r.status_code == 409 and r.json()["code"] == "last_owner"
    # A disabled owner does not count as an active one.
    r = await second.patch(f"{ADMIN}/staff/{me}", json={"role_id": roles["owner"]})
    assert r.status_code == 200
    r = await second.patch(f"{ADMIN}/staff/{me}", json={"status": "disabled"})
    assert r.status_code == 200
    r = await second.patch(f"{ADMIN}/staff/{second_id}", json={"role_id": roles["operator"]})
    assert r.status_code == 409 and r.json()["code"] == "last_owner"


async def test_only_owners_manage_owners(ctx, login_as) -> None:  # type: ignore[no-untyped-def]
    """An admin holds every permission but is not an owner: owners are out of its reach."""
    owner, roles = ctx.owner, ctx.tenant.roles
    admin = await login_as(ctx.tenant, "admin")
    for method, url, body in (
        ("PATCH", f"{ADMIN}/staff/{owner.staff_id}", {"status": "disabled"}),
        ("PATCH", f"{ADMIN}/staff/{owner.staff_id}", {"name": "改名"}),
        ("POST", f"{ADMIN}/staff/{owner.staff_id}/password", {"password": "taken-over-1"}),
    ):
        r = await admin.request(method, url, json=body)
        assert r.status_code == 403 and r.json()["code"] == "staff_beyond_own", (url, body, r.text)
    r = await admin.patch(f"{ADMIN}/staff/{admin.staff_id}", json={"role_id": roles["owner"]})
    assert r.status_code == 403 and r.json()["code"] == "role_beyond_own"
    r = await admin.post(f"{ADMIN}/staff", json={"username": unique("o."), "name": "新店主", "password": "owner3-pass-1",
                                                 "role_id": roles["owner"]})
    assert r.status_code == 403 and r.json()["code"] == "role_beyond_own"
    r = await admin.post(f"{ADMIN}/api-tokens", json={"name": "店主令牌", "role_id": roles["owner"]})
    assert r.status_code == 403 and r.json()["code"] == "role_beyond_own"
    # The owner is untouched and still signed in.
    me = (await owner.get(f"{ADMIN}/me")).json()
    assert me["role"] == "owner" and me["name"] != "改名"
    # Admins manage everyone else.
    guide = await login_as(ctx.tenant, "store_guide")
    assert (await admin.patch(f"{ADMIN}/staff/{guide.staff_id}", json={"name": "导购甲"})).status_code == 200
    r = await admin.post(f"{ADMIN}/api-tokens", json={"name": "管理员令牌", "role_id": roles["admin"]})
    assert r.status_code == 201


async def test_disabling_staff_ends_their_session_now(ctx, login_as, client) -> None:  # type: ignore[no-untyped-def]
    guide = await login_as(ctx.tenant, "store_guide")
    assert (await guide.get(f"{ADMIN}/me")).status_code == 200
    r = await ctx.owner.patch(f"{ADMIN}/staff/{guide.staff_id}", json={"status": "disabled"})
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    r = await guide.get(f"{ADMIN}/me")
    assert r.status_code == 401
    # Re-enabling does not resurrect the old session; the person signs in again.
    await ctx.owner.patch(f"{ADMIN}/staff/{guide.staff_id}", json={"status": "active"})
    assert (await guide.get(f"{ADMIN}/me")).status_code == 401
    username = (await ctx.owner.get(f"{ADMIN}/staff/{guide.staff_id}")).json()["username"]
    r = await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": "staff-pass-123"})
    assert r.status_code == 200
    client.cookies.clear()


async def test_disabled_staff_cannot_sign_in(ctx, login_as, client) -> None:  # type: ignore[no-untyped-def]
    guide = await login_as(ctx.tenant, "store_guide")
    username = (await ctx.owner.get(f"{ADMIN}/staff/{guide.staff_id}")).json()["username"]
    await ctx.owner.patch(f"{ADMIN}/staff/{guide.staff_id}", json={"status": "disabled"})
    r = await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": "staff-pass-123"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"


async def test_password_reset_revokes_sessions(ctx, login_as, client) -> None:  # type: ignore[no-untyped-def]
    guide = await login_as(ctx.tenant, "store_guide")
    username = (await ctx.owner.get(f"{ADMIN}/staff/{guide.staff_id}")).json()["username"]
    r = await ctx.owner.post(f"{ADMIN}/staff/{guide.staff_id}/password", json={"password": "brand-new-pass-1"})
    assert r.status_code == 204
    assert (await guide.get(f"{ADMIN}/me")).status_code == 401
    r = await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": "staff-pass-123"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    r = await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": "brand-new-pass-1"})
    assert r.status_code == 200
    client.cookies.clear()
    # The audit entry never holds the password.
    log = (await ctx.owner.get(f"{ADMIN}/audit-log", params={"action": "staff.reset_password"})).json()["items"]
    assert log and log[0]["object_id"] == str(guide.staff_id)
    assert "brand-new-pass-1" not in str(log)


async def test_logout_ends_the_session(ctx, login_as) -> None:  # type: ignore[no-untyped-def]
    guide = await login_as(ctx.tenant, "store_guide")
    cookie = guide.c.cookies.get("siyu_staff")
    r = await guide.post(f"{ADMIN}/auth/logout")
    assert r.status_code == 204
    guide.c.cookies.clear()
    r = await guide.c.get(f"{ADMIN}/me", headers={"cookie": f"siyu_staff={cookie}"})
    assert r.status_code == 401


# -- API tokens -------------------------------------------------------------------------------


async def test_api_token_lifecycle(ctx, client) -> None:  # type: ignore[no-untyped-def]
    r = await ctx.owner.post(f"{ADMIN}/api-tokens", json={"name": "ERP 同步", "role_id": ctx.tenant.roles["operator"]})
    assert r.status_code == 201
    created = r.json()
    raw, token_id = created["token"], created["id"]
    assert raw.startswith("sy_") and created["prefix"] == raw[:10]
    auth = {"authorization": f"Bearer {raw}"}
    me = (await client.get(f"{ADMIN}/me", headers=auth)).json()
    assert me["via"] == "token" and me["role"] == "operator" and me["staff_id"] is None
    assert (await client.get(f"{ADMIN}/customers", headers=auth)).status_code == 200
    r = await client.get(f"{ADMIN}/staff", headers=auth)
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    # The raw token is shown once: listings carry only the prefix.
    listed = (await ctx.owner.get(f"{ADMIN}/api-tokens")).json()
    mine = next(t for t in listed if t["id"] == token_id)
    assert "token" not in mine and raw not in str(listed)
    assert mine["last_used_at"] is not None

    r = await ctx.owner.post(f"{ADMIN}/api-tokens/{token_id}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = await client.get(f"{ADMIN}/me", headers=auth)
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    # Revoking twice is harmless.
    assert (await ctx.owner.post(f"{ADMIN}/api-tokens/{token_id}/revoke")).status_code == 200


async def test_expired_and_forged_tokens_are_401(ctx, client) -> None:  # type: ignore[no-untyped-def]
    r = await ctx.owner.post(f"{ADMIN}/api-tokens", json={"name": "短期", "role_id": ctx.tenant.roles["admin"],
                                                          "expires_in_days": 1})
    raw = r.json()["token"]
    auth = {"authorization": f"Bearer {raw}"}
    assert (await client.get(f"{ADMIN}/me", headers=auth)).status_code == 200
    try:
        clock.travel(timedelta(days=1, seconds=1))
        r = await client.get(f"{ADMIN}/me", headers=auth)
        assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    finally:
        clock.reset()
    for bad in ("sy_" + "x" * 43, "not-a-token", "sy_", raw + "x", raw[:-1]):
        r = await client.get(f"{ADMIN}/me", headers={"authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_token", bad


async def test_token_permissions_follow_role_changes(ctx, client) -> None:  # type: ignore[no-untyped-def]
    await ctx.owner.patch(f"{ADMIN}/roles/{ctx.role_id}", json={"permissions": ["customers.read"]})
    r = await ctx.owner.post(f"{ADMIN}/api-tokens", json={"name": "CRM", "role_id": ctx.role_id})
    auth = {"authorization": f"Bearer {r.json()['token']}"}
    assert (await client.get(f"{ADMIN}/customers", headers=auth)).status_code == 200
    assert (await client.get(f"{ADMIN}/staff", headers=auth)).status_code == 403
    await ctx.owner.patch(f"{ADMIN}/roles/{ctx.role_id}", json={"permissions": ["staff.read"]})
    assert (await client.get(f"{ADMIN}/customers", headers=auth)).status_code == 403
    assert (await client.get(f"{ADMIN}/staff", headers=auth)).status_code == 200


# -- CSRF -------------------------------------------------------------------------------------


async def test_csrf_required_for_cookie_writes_only(ctx, client) -> None:  # type: ignore[no-untyped-def]
    raw_client = ctx.owner.c  # carries the session cookie but not the CSRF header
    body = {"code": unique("r"), "name": "无令牌"}
    r = await raw_client.post(f"{ADMIN}/roles", json=body)
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = await raw_client.post(f"{ADMIN}/roles", json=body, headers={"x-csrf-token": "wrong"})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = await raw_client.patch(f"{ADMIN}/settings", json={"welcome_text": "x"})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = await raw_client.delete(f"{ADMIN}/roles/{ctx.role_id}")
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    # A form post may carry the token as _csrf instead.
    r = await raw_client.post(f"{ADMIN}/auth/logout", data={"_csrf": "wrong"})
    assert r.status_code == 403
    # Nothing was written.
    codes = {x["code"] for x in (await ctx.owner.get(f"{ADMIN}/roles")).json()}
    assert body["code"] not in codes
    # Reads need no token, and the right token works.
    assert (await raw_client.get(f"{ADMIN}/roles")).status_code == 200
    assert (await ctx.owner.post(f"{ADMIN}/roles", json=body)).status_code == 201

    # Bearer API tokens are not ambient credentials: no CSRF token needed.
    r = await ctx.owner.post(f"{ADMIN}/api-tokens", json={"name": "bot", "role_id": ctx.tenant.roles["admin"]})
    auth = {"authorization": f"Bearer {r.json()['token']}"}
    r = await client.post(f"{ADMIN}/roles", json={"code": unique("r"), "name": "令牌创建"}, headers=auth)
    assert r.status_code == 201, r.text


# -- sign-in lockout ---------------------------------------------------------------------------


async def test_login_lockout(runtime, ctx, client, login_as) -> None:  # type: ignore[no-untyped-def]
    guide = await login_as(ctx.tenant, "store_guide")
    username = (await ctx.owner.get(f"{ADMIN}/staff/{guide.staff_id}")).json()["username"]
    limit = runtime.settings.login_max_failures
    assert limit == 5
    for _ in range(limit):
        r = await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": "wrong-password"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    r = await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": "staff-pass-123"})
    assert r.status_code == 423, r.text
    assert r.json()["code"] == "login_locked"
    assert int(r.headers["retry-after"]) > 0
    assert "siyu_staff" not in r.cookies
    # The lock is per account (case-insensitively): the owner still signs in.
    r = await client.post(f"{ADMIN}/auth/login", json={"username": username.upper(), "password": "staff-pass-123"})
    assert r.status_code == 423
    r = await client.post(f"{ADMIN}/auth/login", json={"username": ctx.tenant.owner_username,
                                                       "password": ctx.tenant.owner_password})
    assert r.status_code == 200
    client.cookies.clear()
    # Sessions already open are not ended by someone guessing the password.
    assert (await guide.get(f"{ADMIN}/me")).status_code == 200


async def test_failures_below_the_limit_are_forgotten_after_success(runtime, ctx, client) -> None:  # type: ignore[no-untyped-def]
    username, password = ctx.tenant.owner_username, ctx.tenant.owner_password
    for _ in range(runtime.settings.login_max_failures - 1):
        await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": "nope-nope"})
    assert (await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": password})).status_code == 200
    for _ in range(runtime.settings.login_max_failures - 1):
        await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": "nope-nope"})
    assert (await client.post(f"{ADMIN}/auth/login", json={"username": username, "password": password})).status_code == 200
    client.cookies.clear()


# -- audit log ---------------------------------------------------------------------------------


async def test_staff_writes_are_audited(ctx, client) -> None:  # type: ignore[no-untyped-def]
    owner = ctx.owner
    owner_name = (await owner.get(f"{ADMIN}/me")).json()["name"]
    username = unique("aud.")
    r = await owner.post(f"{ADMIN}/staff", json={"username": username, "name": "审计对象", "password": "secret-pass-9",
                                                 "role_id": ctx.tenant.roles["operator"], "phone": "13912345678"})
    staff_id = r.json()["id"]
    await owner.patch(f"{ADMIN}/staff/{staff_id}", json={"name": "改过名", "role_id": ctx.tenant.roles["finance"]})
    await owner.patch(f"{ADMIN}/roles/{ctx.role_id}", json={"permissions": ["orders.read"]})
    r = await owner.post(f"{ADMIN}/api-tokens", json={"name": "审计令牌", "role_id": ctx.tenant.roles["finance"]})
    raw, token_id = r.json()["token"], r.json()["id"]

    async def entry(action: str, object_id: int) -> dict[str, Any]:
        r = await owner.get(f"{ADMIN}/audit-log", params={"action": action, "page_size": 200})
        assert r.status_code == 200
        found = [e for e in r.json()["items"] if e["action"] == action and e["object_id"] == str(object_id)]
        assert len(found) == 1, (action, r.json())
        e = found[0]
        assert e["actor_kind"] == "staff" and e["actor_id"] == owner.staff_id and e["actor_name"] == owner_name
        assert e["request_id"]
        return e

    e = await entry("staff.create", staff_id)
    assert e["object_type"] == "staff" and e["before"] is None
    assert e["after"]["username"] == username and e["after"]["role_id"] == ctx.tenant.roles["operator"]
    assert "secret-pass-9" not in str(e) and "password_hash" not in str(e["after"])

    e = await entry("staff.update", staff_id)
    assert e["before"]["name"] == "审计对象" and e["after"]["name"] == "改过名"
    assert e["before"]["role_id"] == ctx.tenant.roles["operator"] and e["after"]["role_id"] == ctx.tenant.roles["finance"]

    e = await entry("role.update", ctx.role_id)
    assert e["before"]["permissions"] == [] and e["after"]["permissions"] == ["orders.read"]

    e = await entry("token.create", token_id)
    assert e["after"]["name"] == "审计令牌" and e["after"]["role_id"] == ctx.tenant.roles["finance"]
    assert raw not in str(e)

    # Token-made changes name the token as the actor.
    r = await ctx.owner.post(f"{ADMIN}/api-tokens", json={"name": "机器人", "role_id": ctx.tenant.roles["admin"]})
    auth = {"authorization": f"Bearer {r.json()['token']}"}
    r = await client.post(f"{ADMIN}/stores", json={"code": unique("s"), "name": "机器人开的店"}, headers=auth)
    assert r.status_code == 201
    store_id = r.json()["id"]
    log = (await owner.get(f"{ADMIN}/audit-log", params={"action": "store.create"})).json()["items"]
    e = next(x for x in log if x["object_id"] == str(store_id))
    assert e["actor_kind"] == "token" and e["actor_name"] == "token:机器人"

    # The audit log filters by actor.
    r = await owner.get(f"{ADMIN}/audit-log", params={"actor": "机器人"})
    assert r.json()["total"] >= 1 and all("机器人" in x["actor_name"] for x in r.json()["items"])


async def test_staff_phone_is_masked(ctx) -> None:  # type: ignore[no-untyped-def]
    owner = ctx.owner
    r = await owner.post(f"{ADMIN}/staff", json={"username": unique("ph."), "name": "有手机", "password": "staff-pass-123",
                                                 "role_id": ctx.tenant.roles["store_guide"], "phone": "13912345678"})
    assert r.status_code == 201
    assert r.json()["phone"] == "139****5678"
    got = (await owner.get(f"{ADMIN}/staff/{r.json()['id']}")).json()
    assert got["phone"] == "139****5678"


# -- privilege escalation ------------------------------------------------------------------------


@pytest.fixture
async def hr(ctx, login_as) -> StaffClient:  # type: ignore[no-untyped-def]
    """A staff manager who holds staff.read/staff.write/tokens.manage but nothing else."""
    r = await ctx.owner.post(f"{ADMIN}/roles", json={"code": unique("hr"), "name": "人事",
                                                     "permissions": ["staff.read", "staff.write", "tokens.manage"]})
    ctx.tenant.roles["hr"] = r.json()["id"]
    return await login_as(ctx.tenant, "hr")


async def test_staff_manager_cannot_grant_a_role_beyond_their_own(ctx, hr) -> None:  # type: ignore[no-untyped-def]
    roles = ctx.tenant.roles
    for role in ("owner", "admin", "operator"):
        r = await hr.patch(f"{ADMIN}/staff/{hr.staff_id}", json={"role_id": roles[role]})
        assert r.status_code == 403 and r.json()["code"] == "role_beyond_own", (role, r.text)
        r = await hr.post(f"{ADMIN}/staff", json={"username": unique("sock."), "name": "马甲", "password": "sock-pass-123",
                                                  "role_id": roles[role]})
        assert r.status_code == 403 and r.json()["code"] == "role_beyond_own", (role, r.text)
    me = (await hr.get(f"{ADMIN}/me")).json()
    assert set(me["permissions"]) == {"staff.read", "staff.write", "tokens.manage"}
    assert (await ctx.owner.get(f"{ADMIN}/staff/{hr.staff_id}")).json()["role_id"] == roles["hr"]


async def test_token_manager_cannot_mint_a_token_beyond_their_own(ctx, hr) -> None:  # type: ignore[no-untyped-def]
    for role in ("owner", "admin", "finance"):
        r = await hr.post(f"{ADMIN}/api-tokens", json={"name": "越权", "role_id": ctx.tenant.roles[role]})
        assert r.status_code == 403 and r.json()["code"] == "role_beyond_own", (role, r.text)
    assert (await hr.get(f"{ADMIN}/api-tokens")).json() == []


async def test_staff_manager_cannot_manage_someone_above_them(ctx, hr, login_as) -> None:  # type: ignore[no-untyped-def]
    finance = await login_as(ctx.tenant, "finance")
    for target in (ctx.owner.staff_id, finance.staff_id):
        r = await hr.post(f"{ADMIN}/staff/{target}/password", json={"password": "taken-over-1"})
        assert r.status_code == 403 and r.json()["code"] == "staff_beyond_own", r.text
        r = await hr.patch(f"{ADMIN}/staff/{target}", json={"status": "disabled"})
        assert r.status_code == 403 and r.json()["code"] == "staff_beyond_own", r.text
    assert (await finance.get(f"{ADMIN}/me")).status_code == 200


async def test_role_editor_cannot_hand_out_what_they_lack(ctx, login_as) -> None:  # type: ignore[no-untyped-def]
    r = await ctx.owner.post(f"{ADMIN}/roles", json={"code": unique("re"), "name": "角色编辑",
                                                     "permissions": ["roles.write", "staff.read", "catalog.read"]})
    ctx.tenant.roles["editor"] = r.json()["id"]
    editor = await login_as(ctx.tenant, "editor")
    r = await editor.post(f"{ADMIN}/roles", json={"code": unique("x"), "name": "越权", "permissions": ["finance.write"]})
    assert r.status_code == 403 and r.json()["code"] == "permission_beyond_own"
    assert r.json()["missing"] == ["finance.write"]
    r = await editor.patch(f"{ADMIN}/roles/{ctx.role_id}", json={"permissions": ["catalog.read", "orders.write"]})
    assert r.status_code == 403 and r.json()["code"] == "permission_beyond_own"
    # Its own role cannot be widened either (roles.write is not a master key).
    r = await editor.patch(f"{ADMIN}/roles/{ctx.tenant.roles['editor']}", json={"permissions": ["roles.write", "finance.write"]})
    assert r.status_code == 403
    # A role already holding more than the editor is off limits, even for a rename.
    r = await editor.patch(f"{ADMIN}/roles/{ctx.tenant.roles['finance']}", json={"name": "改名"})
    assert r.status_code == 403 and r.json()["code"] == "role_beyond_own"
    # Within its own permissions it works.
    r = await editor.post(f"{ADMIN}/roles", json={"code": unique("ok"), "name": "只读商品", "permissions": ["catalog.read"]})
    assert r.status_code == 201, r.text
    r = await editor.patch(f"{ADMIN}/roles/{ctx.role_id}", json={"permissions": ["catalog.read"]})
    assert r.status_code == 200, r.text


async def test_staff_manager_may_grant_roles_within_their_own(ctx, hr) -> None:  # type: ignore[no-untyped-def]
    """The legitimate half of the rule above, which holds today and must keep holding."""
    r = await hr.post(f"{ADMIN}/staff", json={"username": unique("new."), "name": "新人", "password": "new-pass-1234",
                                              "role_id": ctx.tenant.roles["hr"]})
    assert r.status_code == 201, r.text
