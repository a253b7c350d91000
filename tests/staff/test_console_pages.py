"""The merchant console's pages, driven through their HTML forms like a browser would.

Sign-in (Origin check, safe ``next``, lockout), 工作台, staff, roles, API tokens, audit log and
SMS outbox; the CSRF token on every signed-in form; what a permission-less staff member sees;
and the English rendering. Each test works in a fresh tenant; every response is checked to
be below 500 by the :class:`~tests._pages.Browser` hook.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from siyu.staff.permissions import DEFAULT_ROLES
from tests._pages import (
    FOREIGN_ORIGIN,
    SAME_ORIGIN,
    Browser,
    browsers,
    chinese_left,
    field_error,
    make_staff,
    make_store,
    nav_of,
    owner_browser,
    staff_sign_in,
)
from tests.conftest import TenantInfo, unique, unique_phone
from tests.customers._helpers import request_code


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make



async def _tenant(tenant_factory: Any) -> TenantInfo:
    return await tenant_factory("Acme Tea")


# -- sign-in ------------------------------------------------------------------------------------


async def test_pages_redirect_to_the_sign_in_form_which_keeps_a_safe_next(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    b = browser()
    for path in ("/admin", "/admin/staff", "/admin/roles/1", "/admin/customers", "/admin/orders"):
        r = await b.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"] == f"/admin/login?next={path}"
    r = await b.get("/admin/login?next=/admin/staff")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert 'name="next" value="/admin/staff"' in r.text
    for unsafe in ("//evil.example", "https://evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        r = await b.get("/admin/login", params={"next": unsafe})
        assert r.status_code == 200
        assert 'name="next" value="/admin"' in r.text, unsafe

    t = await _tenant(tenant_factory)
    r = await b.post("/admin/login", {"username": t.owner_username, "password": t.owner_password, "next": "/admin/staff"},
                     csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/admin/staff"
    assert "siyu_staff" in b.cookies
    page = await b.follow(r)
    assert page.status_code == 200 and t.owner_username in page.text
    assert "欢迎回来" in page.text  # the flash of the sign-in
    # Signed in, the form sends you on (to a safe next only).
    r = await b.get("/admin/login?next=/admin/roles")
    assert r.status_code == 303 and r.headers["location"] == "/admin/roles"
    r = await b.get("/admin/login?next=//evil.example")
    assert r.status_code == 303 and r.headers["location"] == "/admin"


async def test_signing_in_returns_to_the_page_asked_for_with_its_query(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = browser()
    r = await b.get("/admin/staff?q=boss&status=active")
    assert r.status_code == 303
    login = await b.follow(r)
    m = re.search(r'name="next" value="([^"]*)"', login.text)
    assert m
    r = await b.post("/admin/login", {"username": t.owner_username, "password": t.owner_password,
                                      "next": html.unescape(m.group(1))}, csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303
    assert r.headers["location"] == "/admin/staff?q=boss&status=active"


async def test_an_unsafe_next_on_the_sign_in_post_is_ignored(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    for unsafe in ("https://evil.example/steal", "//evil.example/x", "/\\evil.example"):
        b = browser()
        r = await b.post("/admin/login", {"username": t.owner_username, "password": t.owner_password, "next": unsafe},
                         csrf=False, headers=SAME_ORIGIN)
        assert r.status_code == 303
        assert r.headers["location"] == "/admin", unsafe


async def test_sign_in_form_errors_re_render_the_form(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = browser()
    r = await b.post("/admin/login", {"username": "", "password": ""}, csrf=False)
    assert r.status_code == 422
    assert field_error(r.text, "username") == "请输入用户名"
    assert field_error(r.text, "password") == "请输入密码"
    r = await b.post("/admin/login", {"username": t.owner_username, "password": "wrong-password"}, csrf=False)
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    assert f'value="{t.owner_username}"' in r.text  # the username is kept, the password is not
    assert "wrong-password" not in r.text
    assert "siyu_staff" not in b.cookies
    r = await b.post("/admin/login", {"username": "nobody-" + unique("x"), "password": "whatever-123"}, csrf=False)
    assert r.status_code == 401 and "用户名或密码错误" in r.text


async def test_a_foreign_origin_on_the_sign_in_form_is_refused(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = browser()
    for origin in (FOREIGN_ORIGIN, {"origin": "null"}, {"origin": "http://testserver.evil.example"}):
        r = await b.post("/admin/login", {"username": t.owner_username, "password": t.owner_password},
                         csrf=False, headers=origin)
        assert r.status_code == 403, origin
        assert "请求来源不受信任" in r.text
        assert "siyu_staff" not in b.cookies
    # A form without an Origin header (older browsers) and one from this site both work.
    r = await b.post("/admin/login", {"username": t.owner_username, "password": t.owner_password}, csrf=False)
    assert r.status_code == 303


async def test_repeated_wrong_passwords_lock_the_account(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    _sid, username, password = await make_staff(runtime, t, "finance")
    b = browser()
    for _i in range(runtime.settings.login_max_failures):
        r = await b.post("/admin/login", {"username": username, "password": "not-the-password"}, csrf=False)
        assert r.status_code == 401
    r = await b.post("/admin/login", {"username": username, "password": password}, csrf=False)
    assert r.status_code == 423 and "锁定" in r.text
    assert "siyu_staff" not in b.cookies
    # Another account is not affected.
    r = await b.post("/admin/login", {"username": t.owner_username, "password": t.owner_password}, csrf=False)
    assert r.status_code == 303


async def test_sign_out(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    r = await b.post("/admin/logout", csrf=False)
    assert r.status_code == 403
    assert (await b.get("/admin")).status_code == 200  # still signed in
    r = await b.post("/admin/logout")
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    page = await b.follow(r)
    assert page.status_code == 200 and "已退出登录" in page.text
    r = await b.get("/admin")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")


# -- every page ---------------------------------------------------------------------------------


async def test_every_console_page_renders_for_the_owner(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    store_id = await make_store(runtime, t)
    staff_id, _u, _p = await make_staff(runtime, t, "store_guide", name="Guide Wang", store_id=store_id)
    b = await owner_browser(browser, t)
    pages = [
        "/admin", "/admin/staff", "/admin/staff?q=Guide&status=active", f"/admin/staff?role={t.roles['store_guide']}&store={store_id}&page=1",
        "/admin/staff?role=abc&store=&status=bogus", "/admin/staff?page=500", "/admin/staff/new", f"/admin/staff/new?store={store_id}",
        f"/admin/staff/{staff_id}", "/admin/roles", "/admin/roles/new", f"/admin/roles/{t.roles['owner']}",
        f"/admin/roles/{t.roles['store_guide']}", "/admin/tokens", "/admin/audit", "/admin/audit?action=staff.create&object_type=staff",
        "/admin/audit?actor=nobody&page=3", "/admin/sms", "/admin/sms?phone=13800138000", "/admin/sms?phone=+86 138",
        "/admin/settings", "/admin/stores", "/admin/stores?q=River", "/admin/stores/new", f"/admin/stores/{store_id}",
        "/admin/customers", "/admin/customers?q=x&status=bogus&page=99999",
        *(f"/admin/coming/{m}" for m in ("marketing", "scrm", "live", "distribution", "finance", "analytics")),
    ]
    for path in pages:
        r = await b.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert b.csrf and f'<meta name="csrf-token" content="{b.csrf}">' in r.text, path
        assert "退出登录" in r.text and "Acme Tea" in r.text, path
    # The page for one staff member shows the right one, its store preselected on "add staff".
    r = await b.get(f"/admin/staff/{staff_id}")
    assert "Guide Wang" in r.text
    r = await b.get(f"/admin/staff/new?store={store_id}")
    assert f'<option value="{store_id}" selected>' in r.text
    # Unknown ids are 404 pages, not errors; so are another tenant's objects.
    other = await tenant_factory("Other Shop")
    other_staff, _u2, _p2 = await make_staff(runtime, other, "finance")
    other_store = await make_store(runtime, other)
    for path in ("/admin/staff/999999999", f"/admin/staff/{other_staff}", "/admin/roles/999999999",
                 f"/admin/roles/{other.roles['finance']}", "/admin/stores/999999999", f"/admin/stores/{other_store}",
                 "/admin/coming/nonsense", "/admin/no-such-page"):
        r = await b.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
    for path in ("/admin/staff/0", "/admin/staff/abc", "/admin/staff/99999999999999999999", "/admin/staff?page=0"):
        r = await b.get(path)
        assert r.status_code in (404, 422), path


async def test_dashboard_shows_what_the_role_may_see(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    r = await b.get("/admin")
    assert r.status_code == 200
    for href in ("/admin/staff/new", "/admin/stores/new", "/admin/settings", "/admin/roles/new", "/admin/tokens",
                 "/admin/sms", "/admin/audit", f"/m/{t.code}/"):
        assert f'href="{href}"' in r.text, href
    assert "员工总数" in r.text and "客户总数" in r.text


# -- staff --------------------------------------------------------------------------------------


async def test_add_edit_and_reset_the_password_of_a_staff_member(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    store_id = await make_store(runtime, t, name="Lakeside")
    b = await owner_browser(browser, t)
    await b.get("/admin/staff/new")

    r = await b.post("/admin/staff/new", {"username": "x", "name": "", "password": "short", "role_id": ""})
    assert r.status_code == 422 and "has-error" in r.text
    assert field_error(r.text, "username") == "用户名需为 3–64 位字母、数字或 _ . @ -"
    assert field_error(r.text, "name") == "请填写姓名（最多 100 字）"
    assert field_error(r.text, "password") == "密码需为 8–128 位"
    assert field_error(r.text, "role_id") == "请选择角色"
    r = await b.post("/admin/staff/new", {"username": "ok.name", "name": "N", "password": "long-enough-1",
                                          "role_id": str(t.roles["finance"]), "phone": "12345", "email": "not-an-email"})
    assert r.status_code == 422
    assert field_error(r.text, "phone") == "请输入正确的 11 位手机号"
    assert field_error(r.text, "email") == "邮箱格式不正确"
    assert 'value="ok.name"' in r.text  # what was typed is kept
    r = await b.post("/admin/staff/new", {"username": t.owner_username, "name": "Dup", "password": "long-enough-1",
                                          "role_id": str(t.roles["finance"])})
    assert r.status_code == 409 and "已被使用" in r.text

    username, phone = unique("new."), unique_phone()
    r = await b.post("/admin/staff/new", csrf=False, data={"username": username, "name": "Forged", "password": "long-enough-1",
                                                           "role_id": str(t.roles["admin"])})
    assert r.status_code == 403
    r = await b.post("/admin/staff/new", {"username": username, "name": "New Colleague", "password": "pass-2026-x",
                                          "role_id": str(t.roles["operator"]), "store_id": str(store_id), "phone": phone,
                                          "email": "new@example.com"})
    assert r.status_code == 303
    m = re.fullmatch(r"/admin/staff/(\d+)", r.headers["location"])
    assert m, r.headers["location"]
    sid = int(m.group(1))
    page = await b.follow(r)
    assert page.status_code == 200 and "New Colleague" in page.text and "已添加员工" in page.text
    masked = phone[:3] + "****" + phone[-4:]
    assert masked in page.text and phone not in page.text
    listing = await b.get("/admin/staff")
    assert f'href="/admin/staff/{sid}"' in listing.text and "New Colleague" in listing.text and "Forged" not in listing.text
    assert "New Colleague" in (await b.get(f"/admin/staff?q={username}")).text
    assert "New Colleague" in (await b.get(f"/admin/staff?store={store_id}")).text
    assert "New Colleague" not in (await b.get("/admin/staff?status=disabled")).text

    r = await b.post(f"/admin/staff/{sid}", {"name": "", "role_id": str(t.roles["operator"]), "phone": "123"})
    assert r.status_code == 422
    assert field_error(r.text, "name") == "请填写姓名（最多 100 字）"
    assert field_error(r.text, "phone") == "请输入正确的 11 位手机号"
    r = await b.post(f"/admin/staff/{sid}", {"name": "Renamed Colleague", "role_id": str(t.roles["finance"]), "store_id": "",
                                             "phone": "", "email": "", "status": "disabled"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/staff/{sid}"
    page = await b.follow(r)
    assert "Renamed Colleague" in page.text and "已禁用" in page.text
    assert "Renamed Colleague" in (await b.get("/admin/staff?status=disabled")).text

    r = await b.post(f"/admin/staff/{sid}/password", {"password": "short", "password2": "short"})
    assert r.status_code == 422 and field_error(r.text, "password") == "密码需为 8–128 位"
    r = await b.post(f"/admin/staff/{sid}/password", {"password": "new-pass-2026", "password2": "different-2026"})
    assert r.status_code == 422 and field_error(r.text, "password2") == "两次输入的密码不一致"
    r = await b.post(f"/admin/staff/{sid}/password", {"password": "new-pass-2026", "password2": "new-pass-2026"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/staff/{sid}"
    # Re-enable, then the new password (and only it) signs in.
    r = await b.post(f"/admin/staff/{sid}", {"name": "Renamed Colleague", "role_id": str(t.roles["finance"]), "status": "active"})
    assert r.status_code == 303
    other = browser()
    r = await other.post("/admin/login", {"username": username, "password": "pass-2026-x"}, csrf=False)
    assert r.status_code == 401
    await staff_sign_in(other, username, "new-pass-2026")


async def test_changing_your_own_password_signs_you_out(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    other_device = await owner_browser(browser, t)
    owner_id = re.search(r'href="/admin/staff/(\d+)"', (await b.get("/admin/staff")).text)
    assert owner_id
    r = await b.post(f"/admin/staff/{owner_id.group(1)}/password", {"password": "brand-new-pass", "password2": "brand-new-pass"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    page = await b.follow(r)
    assert page.status_code == 200 and "密码已修改，请用新密码重新登录" in page.text
    for device in (b, other_device):
        r = await device.get("/admin")
        assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
    r = await b.post("/admin/login", {"username": t.owner_username, "password": t.owner_password}, csrf=False)
    assert r.status_code == 401
    await staff_sign_in(b, t.owner_username, "brand-new-pass")


async def test_the_last_owner_cannot_be_demoted_or_disabled(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    me = await b.get("/admin/staff")
    m = re.search(r'href="/admin/staff/(\d+)"', me.text)
    assert m
    owner_id = m.group(1)
    r = await b.post(f"/admin/staff/{owner_id}", {"name": "Boss", "role_id": str(t.roles["admin"]), "status": "active"})
    assert r.status_code == 409 and "店主" in r.text
    r = await b.post(f"/admin/staff/{owner_id}", {"name": "Boss", "role_id": str(t.roles["owner"]), "status": "disabled"})
    assert r.status_code == 409
    assert (await b.get("/admin")).status_code == 200  # still an owner, still signed in


async def test_disabling_a_staff_member_ends_their_console_session(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    sid, username, password = await make_staff(runtime, t, "operator")
    staff = browser()
    await staff_sign_in(staff, username, password)
    owner = await owner_browser(browser, t)
    r = await owner.post(f"/admin/staff/{sid}", {"name": "Op", "role_id": str(t.roles["operator"]), "status": "disabled"})
    assert r.status_code == 303
    r = await staff.get("/admin")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
    r = await staff.post("/admin/login", {"username": username, "password": password}, csrf=False)
    assert r.status_code in (401, 403)
    assert "siyu_staff" not in r.cookies


# -- roles --------------------------------------------------------------------------------------


async def test_create_edit_and_delete_a_role(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    await b.get("/admin/roles/new")
    r = await b.post("/admin/roles/new", {"code": "Bad Code", "name": "", "permissions": ["catalog.read"]})
    assert r.status_code == 422
    assert field_error(r.text, "code").startswith("编码需为 2–40 位小写字母")
    assert field_error(r.text, "name") == "请填写角色名称（最多 100 字）"
    assert 'value="catalog.read" checked' in r.text  # the ticked boxes are kept
    r = await b.post("/admin/roles/new", {"code": "editor", "name": "Editor", "permissions": ["no.such.permission"]})
    assert r.status_code == 422

    r = await b.post("/admin/roles/new", {"code": "content_editor", "name": "Content editor",
                                          "permissions": ["catalog.read", "catalog.write"]}, csrf=False)
    assert r.status_code == 403
    r = await b.post("/admin/roles/new", {"code": "content_editor", "name": "Content editor",
                                          "permissions": ["catalog.read", "catalog.write"]})
    assert r.status_code == 303 and r.headers["location"] == "/admin/roles"
    listing = await b.follow(r)
    assert "已创建角色" in listing.text
    m = re.search(r'href="/admin/roles/(\d+)">Content editor', listing.text)
    assert m, listing.text
    rid = m.group(1)
    r = await b.post("/admin/roles/new", {"code": "content_editor", "name": "Another"})
    assert r.status_code == 409 and field_error(r.text, "code")

    page = await b.get(f"/admin/roles/{rid}")
    assert 'value="catalog.write" checked' in page.text and 'value="catalog.read" checked' in page.text
    r = await b.post(f"/admin/roles/{rid}", {"name": "", "permissions": ["catalog.read"]})
    assert r.status_code == 422 and field_error(r.text, "name") == "请填写角色名称（最多 100 字）"
    r = await b.post(f"/admin/roles/{rid}", {"name": "Catalog reader", "description": "reads products",
                                             "permissions": ["catalog.read"]})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/roles/{rid}"
    page = await b.follow(r)
    assert "Catalog reader" in page.text and "reads products" in page.text
    assert 'value="catalog.read" checked' in page.text and 'value="catalog.write" checked' not in page.text

    # The owner role is read-only; system roles cannot be deleted.
    r = await b.post(f"/admin/roles/{t.roles['owner']}", {"name": "Owner", "permissions": ["catalog.read"]})
    assert r.status_code == 409
    page = await b.get(f"/admin/roles/{t.roles['owner']}")
    assert "店主角色始终拥有全部权限" in page.text and "disabled" in page.text
    r = await b.post(f"/admin/roles/{t.roles['finance']}/delete")
    assert r.status_code == 303 and r.headers["location"] == f"/admin/roles/{t.roles['finance']}"
    page = await b.follow(r)
    assert "flash-error" in page.text

    r = await b.post(f"/admin/roles/{rid}/delete", csrf=False)
    assert r.status_code == 403
    r = await b.post(f"/admin/roles/{rid}/delete")
    assert r.status_code == 303 and r.headers["location"] == "/admin/roles"
    listing = await b.follow(r)
    assert "已删除角色" in listing.text and f'href="/admin/roles/{rid}"' not in listing.text
    assert (await b.get(f"/admin/roles/{rid}")).status_code == 404


async def test_a_role_in_use_cannot_be_deleted(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    await b.get("/admin/roles/new")
    r = await b.post("/admin/roles/new", {"code": "packer", "name": "Packer", "permissions": ["orders.read"]})
    assert r.status_code == 303
    m = re.search(r'href="/admin/roles/(\d+)">Packer', (await b.follow(r)).text)
    assert m
    rid = m.group(1)
    await b.get("/admin/staff/new")
    r = await b.post("/admin/staff/new", {"username": unique("pack."), "name": "Packer Wu", "password": "pass-2026-x", "role_id": rid})
    assert r.status_code == 303
    page = await b.get(f"/admin/roles/{rid}")
    assert page.status_code == 200
    r = await b.post(f"/admin/roles/{rid}/delete")
    assert r.status_code == 303 and r.headers["location"] == f"/admin/roles/{rid}"
    page = await b.follow(r)
    assert "flash-error" in page.text and "仍有员工或令牌使用该角色" in page.text
    assert f'href="/admin/roles/{rid}"' in (await b.get("/admin/roles")).text


# -- API tokens ---------------------------------------------------------------------------------


async def test_create_use_and_revoke_an_api_token(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    await b.get("/admin/tokens")
    r = await b.post("/admin/tokens", {"name": "", "role_id": ""})
    assert r.status_code == 422 and "data-open-on-load" in r.text
    assert field_error(r.text, "name") == "请填写令牌名称（最多 100 字）"
    assert field_error(r.text, "role_id") == "请选择令牌使用的角色"
    r = await b.post("/admin/tokens", {"name": "ERP sync", "role_id": str(t.roles["finance"])}, csrf=False)
    assert r.status_code == 403

    r = await b.post("/admin/tokens", {"name": "ERP sync", "role_id": str(t.roles["finance"]), "expires_in_days": "365"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    raw = re.search(r'value="(sy_[^"]+)"', r.text)
    assert raw, r.text
    token = raw.group(1)
    me = await b.c.get("/api/admin/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["role"] == "finance"
    listing = await b.get("/admin/tokens")
    assert "ERP sync" in listing.text and token not in listing.text  # shown once, never again
    tid = re.search(r'id="token-(\d+)"', listing.text)
    assert tid
    # htmx revoke: the row comes back, with a toast.
    r = await b.c.post(f"/admin/tokens/{tid.group(1)}/revoke", headers={"hx-request": "true", "x-csrf-token": b.csrf})
    assert r.status_code == 200 and "<tr" in r.text and "已撤销" in r.text and "siyu-toast" in r.headers["hx-trigger"]
    assert (await b.c.get("/api/admin/v1/me", headers={"authorization": f"Bearer {token}"})).status_code == 401

    r = await b.post("/admin/tokens", {"name": "Second", "role_id": str(t.roles["operator"]), "expires_in_days": ""})
    assert r.status_code == 200 and "sy_" in r.text
    listing = await b.get("/admin/tokens")
    ids = re.findall(r'id="token-(\d+)"', listing.text)
    assert len(ids) == 2
    second = next(i for i in ids if i != tid.group(1))
    r = await b.post(f"/admin/tokens/{second}/revoke", csrf=False)
    assert r.status_code == 403
    r = await b.post(f"/admin/tokens/{second}/revoke")
    assert r.status_code == 303 and r.headers["location"] == "/admin/tokens"
    listing = await b.follow(r)
    assert listing.text.count("已撤销") >= 2
    assert (await b.post("/admin/tokens/999999999/revoke")).status_code == 404


# -- audit log and SMS outbox ---------------------------------------------------------------------


async def test_the_audit_log_shows_what_changed(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    await b.get("/admin/staff/new")
    r = await b.post("/admin/staff/new", {"username": unique("aud."), "name": "Audited Person", "password": "pass-2026-x",
                                          "role_id": str(t.roles["operator"])})
    assert r.status_code == 303
    sid = r.headers["location"].rsplit("/", 1)[-1]
    r = await b.post(f"/admin/staff/{sid}", {"name": "Audited Person 2", "role_id": str(t.roles["finance"]), "status": "active"})
    assert r.status_code == 303
    page = await b.get("/admin/audit")
    assert page.status_code == 200
    assert "创建员工" in page.text and "修改员工" in page.text and "变更详情" in page.text
    assert "Audited Person 2" in page.text
    page = await b.get("/admin/audit?action=staff.create")
    assert "Audited Person" in page.text and "修改员工" not in page.text.split("<tbody", 1)[-1]
    page = await b.get("/admin/audit?object_type=role")
    assert "Audited Person" not in page.text
    assert (await b.get("/admin/audit?page=2")).status_code == 200


async def test_the_sms_outbox_lists_sent_codes(browser, runtime, client, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    phone = unique_phone()
    assert (await request_code(client, t, phone)).status_code == 200
    b = await owner_browser(browser, t)
    page = await b.get("/admin/sms")
    assert page.status_code == 200 and phone in page.text  # the owner may see full numbers
    assert "登录验证码" in page.text
    assert phone in (await b.get(f"/admin/sms?phone={phone}")).text
    assert phone not in (await b.get("/admin/sms?phone=13000000000")).text
    # Customer service reads the outbox with masked numbers.
    _sid, username, password = await make_staff(runtime, t, "customer_service")
    cs = browser()
    await staff_sign_in(cs, username, password)
    page = await cs.get("/admin/sms")
    assert page.status_code == 200
    assert phone not in page.text and phone[:3] + "****" + phone[-4:] in page.text


# -- permissions --------------------------------------------------------------------------------


async def test_a_store_guide_sees_only_what_they_may(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    store_id = await make_store(runtime, t, name="Guide Store")
    _sid, username, password = await make_staff(runtime, t, "store_guide", store_id=store_id)
    g = browser()
    page = await staff_sign_in(g, username, password)
    assert page.status_code == 200
    nav = nav_of(page.text)
    for hidden in ("/admin/staff", "/admin/roles", "/admin/tokens", "/admin/settings", "/admin/audit", "/admin/sms",
                   "/admin/payments"):
        assert f'href="{hidden}"' not in nav, hidden
    for shown in ("/admin", "/admin/stores", "/admin/customers", "/admin/catalog", "/admin/orders",
                  "/admin/coming/marketing"):
        assert f'href="{shown}"' in nav, shown
    # Nor does the dashboard offer shortcuts to them.
    for hidden in ("/admin/staff/new", "/admin/stores/new", "/admin/roles/new", "/admin/tokens", "/admin/settings"):
        assert f'href="{hidden}"' not in page.text, hidden

    for path in ("/admin/staff", "/admin/staff/new", f"/admin/staff/{_sid}", "/admin/roles", "/admin/roles/new",
                 f"/admin/roles/{t.roles['owner']}", "/admin/tokens", "/admin/settings", "/admin/audit", "/admin/sms",
                 "/admin/stores/new"):
        r = await g.get(path)
        assert r.status_code == 403, path
        assert r.headers["content-type"].startswith("text/html") and "没有权限" in r.text, path
    r = await g.get("/admin/stores")
    assert r.status_code == 200 and "Guide Store" in r.text and 'href="/admin/stores/new"' not in r.text
    r = await g.get(f"/admin/stores/{store_id}")
    assert r.status_code == 200 and "disabled" in r.text
    assert (await g.get("/admin/customers")).status_code == 200

    writes = [
        (f"/admin/stores/{store_id}", {"name": "Hijacked"}),
        ("/admin/stores/new", {"code": "newstore", "name": "New"}),
        ("/admin/staff/new", {"username": "sneaky.one", "name": "x", "password": "12345678", "role_id": str(t.roles["owner"])}),
        (f"/admin/staff/{_sid}", {"name": "x", "role_id": str(t.roles["owner"])}),
        ("/admin/roles/new", {"code": "sneaky", "name": "Sneaky", "permissions": ["staff.write"]}),
        (f"/admin/roles/{t.roles['store_guide']}", {"name": "Guide", "permissions": ["staff.write"]}),
        ("/admin/tokens", {"name": "mine", "role_id": str(t.roles["admin"])}),
        ("/admin/settings", {"name": "Hijacked", "timezone": "UTC"}),
    ]
    for url, form in writes:
        r = await g.post(url, form)
        assert r.status_code == 403, url
    owner = await owner_browser(browser, t)
    assert "Hijacked" not in (await owner.get(f"/admin/stores/{store_id}")).text
    assert "sneaky.one" not in (await owner.get("/admin/staff")).text


async def test_signed_in_forms_need_the_csrf_token(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    forms = [
        ("/admin/staff/new", {"username": "csrf.victim", "name": "CSRF victim", "password": "long-enough-1",
                              "role_id": str(t.roles["owner"])}),
        ("/admin/roles/new", {"code": "csrfrole", "name": "CSRF role", "permissions": ["staff.write"]}),
        ("/admin/tokens", {"name": "CSRF token", "role_id": str(t.roles["admin"])}),
        ("/admin/settings", {"name": "CSRF shop", "timezone": "UTC"}),
        ("/admin/stores/new", {"code": "csrfstore", "name": "CSRF store"}),
        ("/admin/logout", {}),
    ]
    for url, form in forms:
        r = await b.post(url, form, csrf=False)
        assert r.status_code == 403, url
        assert "页面已过期" in r.text, url
        r = await b.post(url, {**form, "_csrf": "not-the-token"})
        assert r.status_code == 403, url
        r = await b.post(url, form, csrf=False, headers={"x-csrf-token": b.csrf[:-1] + ("A" if b.csrf[-1] != "A" else "B")})
        assert r.status_code == 403, url
    # Nothing was written, and the session survived.
    assert "CSRF victim" not in (await b.get("/admin/staff")).text
    assert "CSRF role" not in (await b.get("/admin/roles")).text
    assert "CSRF token" not in (await b.get("/admin/tokens")).text
    assert "Acme Tea" in (await b.get("/admin/settings")).text
    assert "CSRF store" not in (await b.get("/admin/stores")).text
    # A token from another session of the same staff member does not work either.
    other = await owner_browser(browser, t)
    assert other.csrf != b.csrf
    r = await b.post("/admin/stores/new", {"code": "csrfstore", "name": "CSRF store", "_csrf": other.csrf})
    assert r.status_code == 403


async def test_control_characters_get_a_page_not_a_server_error(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    """NUL bytes (which PostgreSQL cannot store) in search boxes, filters and form fields are
    answered with an HTML page: the results or a 4xx, never a 5xx or a JSON problem."""
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    for path in ("/admin/staff?q=%00", "/admin/staff?status=%00&role=%00", "/admin/stores?q=%00", "/admin/customers?q=%00",
                 "/admin/sms?phone=%00", "/admin/audit?actor=%00", "/admin/audit?action=%00&object_type=%00"):
        r = await b.get(path)
        assert r.status_code in (200, 422), path
        assert r.headers["content-type"].startswith("text/html"), path
    forms = [
        ("/admin/staff/new", {"username": "nul.user", "name": "x\x00", "password": "long-enough-1", "role_id": str(t.roles["admin"])}),
        ("/admin/roles/new", {"code": "nulrole", "name": "x\x00"}),
        ("/admin/tokens", {"name": "x\x00", "role_id": str(t.roles["admin"])}),
    ]
    for url, form in forms:
        r = await b.post(url, form)
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), url
    anon = browser()
    for form in ({"username": "a\x00b", "password": "whatever-123"}, {"username": t.owner_username, "password": "x\x00y"}):
        r = await anon.post("/admin/login", form, csrf=False)
        assert r.status_code in (401, 422) and r.headers["content-type"].startswith("text/html"), form
        assert "siyu_staff" not in anon.cookies


# -- English --------------------------------------------------------------------------------------


async def test_console_pages_render_in_english(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    store_id = await make_store(runtime, t, name="Riverside")
    staff_id, _u, _p = await make_staff(runtime, t, "store_guide", name="Guide Li", store_id=store_id)
    b = await owner_browser(browser, t)
    await b.get("/admin/tokens")
    r = await b.post("/admin/tokens", {"name": "ERP", "role_id": str(t.roles["finance"]), "expires_in_days": "30"})
    assert r.status_code == 200
    # Every name in this tenant is English (the owner's default name 店主 included), so any
    # Chinese left on a page is a label without its English.
    owner_id = re.search(r'href="/admin/staff/(\d+)">店主', (await b.get("/admin/staff")).text)
    assert owner_id
    r = await b.post(f"/admin/staff/{owner_id.group(1)}", {"name": "Boss", "role_id": str(t.roles["owner"]), "status": "active"})
    assert r.status_code == 303
    await b.follow(r)  # shows (and clears) the Chinese flash of that save
    pages = ["/admin", "/admin/staff", "/admin/staff/new", f"/admin/staff/{staff_id}", "/admin/roles", "/admin/roles/new",
             f"/admin/roles/{t.roles['owner']}", f"/admin/roles/{t.roles['store_guide']}", "/admin/tokens", "/admin/audit",
             "/admin/sms", "/admin/settings", "/admin/stores", "/admin/stores/new", f"/admin/stores/{store_id}",
             "/admin/customers", "/admin/coming/scrm"]
    with b.language("en"):
        for path in pages:
            r = await b.get(path)
            assert r.status_code == 200, path
            assert '<html lang="en">' in r.text, path
            for english in ("Sign out", "Dashboard", "Main navigation", "Skip to main content"):
                assert english in r.text, (path, english)
            for chinese in ("退出登录", "工作台", "主导航", "跳到主要内容", "切换语言", "账号菜单", "即将推出", "员工", "设置"):
                assert chinese not in r.text, (path, chinese)
            # Stored names are data: a role's edit form shows its name as the value of an input,
            # and the audit log shows the owner's old name 店主 (before the rename above).
            left = chinese_left(r.text, *(zh for zh, _en, _perms in DEFAULT_ROLES.values())) \
                if path.startswith(("/admin/roles/", "/admin/audit")) else chinese_left(r.text)
            assert not left, (path, sorted(left))
        for path in ("/admin/staff/999999999", "/admin/coming/nonsense"):
            r = await b.get(path)
            assert r.status_code == 404 and '<html lang="en">' in r.text, path
            assert "Something went wrong" in r.text and not chinese_left(r.text), (path, sorted(chinese_left(r.text)))
        # Form errors come back in English too.
        r = await b.post("/admin/staff/new", {"username": "x", "name": "", "password": "short", "role_id": ""})
        assert r.status_code == 422
        assert field_error(r.text, "password") == "A password has 8–128 characters"
        assert not chinese_left(r.text), sorted(chinese_left(r.text))
    anon = browser()
    with anon.language("en"):
        r = await anon.get("/admin/login")
        assert r.status_code == 200 and '<html lang="en">' in r.text
        assert not chinese_left(r.text), sorted(chinese_left(r.text))
        r = await anon.post("/admin/login", {"username": t.owner_username, "password": "wrong-password"}, csrf=False)
        assert r.status_code == 401 and "Wrong username or password" in r.text


async def test_the_language_switch_sets_the_cookie_and_goes_back(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    r = await b.post("/lang", {"lang": "en", "next": "/admin/staff"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/staff"
    assert b.cookies.get("siyu_lang") == "en"
    page = await b.follow(r)
    assert "Sign out" in page.text and "退出登录" not in page.text
    r = await b.post("/lang", {"lang": "zh-CN", "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    assert "退出登录" in (await b.follow(r)).text
    r = await b.post("/lang", {"lang": "xx", "next": "/admin"})
    assert r.status_code == 303 and b.cookies.get("siyu_lang") == "zh-CN"
