"""Pages of the tenants module, driven through their HTML forms: the shop settings and stores
of the merchant console (``/admin/settings``, ``/admin/stores``) and the platform operator's
console (``/platform``: sign-in, tenant list, onboarding, suspend and resume).

Each test works in a fresh tenant; every response is checked to be below 500 by the
:class:`~tests._pages.Browser` hook.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests._pages import (
    FOREIGN_ORIGIN,
    SAME_ORIGIN,
    Browser,
    browsers,
    chinese_left,
    field_error,
    make_staff,
    make_store,
    owner_browser,
    staff_sign_in,
)
from tests.conftest import TenantInfo, unique
from tests.tenants._helpers import make_platform_user


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make



async def _tenant(tenant_factory: Any) -> TenantInfo:
    return await tenant_factory("Acme Tea")


async def platform_sign_in(b: Browser, runtime: Any) -> str:
    """Create a platform operator (with an English name) and sign in through the platform
    sign-in form; returns the username."""
    from siyu.tenants import service as tenants_service

    username, password = unique("ops."), "platform-pass-123"
    async with runtime.db.uow() as s:
        await tenants_service.create_platform_user(s, username, password, "Ops Lee")
    r = await b.get("/platform/login")
    assert r.status_code == 200 and 'action="/platform/login"' in r.text
    r = await b.post("/platform/login", {"username": username, "password": password}, csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/platform"
    assert "siyu_platform" in b.cookies
    page = await b.follow(r)
    assert page.status_code == 200 and b.csrf
    return username


@pytest.fixture
async def ops(browser, runtime) -> Browser:  # type: ignore[no-untyped-def]
    b = browser()
    await platform_sign_in(b, runtime)
    return b


# -- shop settings ------------------------------------------------------------------------------


async def test_shop_settings_form(browser, client, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    page = await b.get("/admin/settings")
    assert page.status_code == 200 and 'value="Acme Tea"' in page.text and f"/m/{t.code}/" in page.text

    r = await b.post("/admin/settings", {"name": "", "timezone": "Asia/Shanghai", "contact_phone": "12"})
    assert r.status_code == 422
    assert field_error(r.text, "name") == "请填写店铺名称（最多 100 字）"
    assert field_error(r.text, "contact_phone") == "请输入正确的 11 位手机号"
    r = await b.post("/admin/settings", {"name": "Acme Tea", "timezone": "Mars/Base"})
    assert r.status_code == 422 and "时区" in field_error(r.text, "timezone")
    r = await b.post("/admin/settings", {"name": "Acme Tea", "welcome_text": "x" * 201})
    assert r.status_code == 422 and field_error(r.text, "welcome_text") == "欢迎语最多 200 字"
    r = await b.post("/admin/settings", {"name": "Hijack", "timezone": "UTC"}, csrf=False)
    assert r.status_code == 403

    r = await b.post("/admin/settings", {"name": "Acme Tea · Hangzhou", "timezone": "Asia/Tokyo", "contact_name": "Shen",
                                         "contact_phone": "13800138000", "service_phone": "400-820-1688",
                                         "welcome_text": "New tea is here"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/settings"
    page = await b.follow(r)
    assert "店铺设置已保存" in page.text
    assert "Acme Tea · Hangzhou" in page.text and "400-820-1688" in page.text and "New tea is here" in page.text
    assert '<option value="Asia/Tokyo" selected>' in page.text
    # The new name is on every console page and on the storefront.
    assert "Acme Tea · Hangzhou" in (await b.get("/admin/staff")).text
    home = await client.get(f"/m/{t.code}/")
    assert home.status_code == 200 and "Acme Tea · Hangzhou" in home.text and "New tea is here" in home.text
    assert "Hijack" not in page.text


# -- stores -------------------------------------------------------------------------------------


async def test_create_find_and_edit_a_store(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    existing = await make_store(runtime, t, name="Old Town", code="oldtown")
    b = await owner_browser(browser, t)
    page = await b.get("/admin/stores/new")
    assert page.status_code == 200

    r = await b.post("/admin/stores/new", {"code": "oldtown", "name": "Duplicate"})
    assert r.status_code == 409 and field_error(r.text, "code")
    r = await b.post("/admin/stores/new", {"code": "BAD CODE", "name": ""})
    assert r.status_code == 422
    assert field_error(r.text, "code").startswith("编码需为 2–40 位小写字母")
    assert field_error(r.text, "name") == "请填写门店名称（最多 100 字）"
    r = await b.post("/admin/stores/new", {"code": "binjiang", "name": "Binjiang"}, csrf=False)
    assert r.status_code == 403

    r = await b.post("/admin/stores/new", {"code": "binjiang", "name": "Binjiang", "address": "Binjiang District",
                                           "phone": "0571-1234", "status": "open"})
    assert r.status_code == 303
    m = re.fullmatch(r"/admin/stores/(\d+)", r.headers["location"])
    assert m
    store_id = int(m.group(1))
    page = await b.follow(r)
    assert "已新建门店" in page.text and "Binjiang District" in page.text
    listing = await b.get("/admin/stores")
    assert f'href="/admin/stores/{store_id}"' in listing.text and f'href="/admin/stores/{existing}"' in listing.text
    found = await b.get("/admin/stores?q=binjiang")
    assert f'href="/admin/stores/{store_id}"' in found.text and f'href="/admin/stores/{existing}"' not in found.text

    r = await b.post(f"/admin/stores/{store_id}", {"name": "", "status": "open"})
    assert r.status_code == 422 and field_error(r.text, "name") == "请填写门店名称（最多 100 字）"
    r = await b.post(f"/admin/stores/{store_id}", {"name": "Binjiang", "status": "bogus"})
    assert r.status_code == 422
    r = await b.post(f"/admin/stores/{store_id}", {"name": "Binjiang Riverside", "address": "", "phone": "", "status": "closed"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/stores/{store_id}"
    page = await b.follow(r)
    assert "Binjiang Riverside" in page.text and "已关闭" in page.text
    # A closed store is marked as such where staff are assigned to stores.
    assert "Binjiang Riverside（已关闭）" in (await b.get("/admin/staff/new")).text
    assert (await b.post("/admin/stores/999999999", {"name": "x", "status": "open"})).status_code == 404


async def test_a_store_page_lists_its_staff(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    store_id = await make_store(runtime, t, name="Westlake")
    sid, _u, _p = await make_staff(runtime, t, "store_guide", name="Guide Zhao", store_id=store_id)
    b = await owner_browser(browser, t)
    page = await b.get(f"/admin/stores/{store_id}")
    assert page.status_code == 200 and f'href="/admin/staff/{sid}"' in page.text and "Guide Zhao" in page.text
    assert f'href="/admin/staff/new?store={store_id}"' in page.text
    listing = await b.get("/admin/stores")
    assert re.search(rf'href="/admin/stores/{store_id}".*?\b1\b', listing.text, re.S)


# -- platform console ---------------------------------------------------------------------------


async def test_platform_sign_in_form(browser, runtime) -> None:  # type: ignore[no-untyped-def]
    b = browser()
    for path in ("/platform", "/platform/tenants/new", "/platform/tenants/1"):
        r = await b.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/platform/login", path
    _uid, username, password = await make_platform_user(runtime)
    r = await b.post("/platform/login", {"username": "", "password": ""}, csrf=False)
    assert r.status_code == 422
    assert field_error(r.text, "username") == "请输入用户名" and field_error(r.text, "password") == "请输入密码"
    r = await b.post("/platform/login", {"username": username, "password": "wrong-password"}, csrf=False)
    assert r.status_code == 401 and "用户名或密码错误" in r.text and f'value="{username}"' in r.text
    r = await b.post("/platform/login", {"username": username, "password": password}, csrf=False, headers=FOREIGN_ORIGIN)
    assert r.status_code == 403 and "siyu_platform" not in b.cookies
    r = await b.post("/platform/login", {"username": username, "password": password}, csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/platform"
    r = await b.get("/platform/login")
    assert r.status_code == 303 and r.headers["location"] == "/platform"
    await b.get("/platform")
    # A platform session is not a console session, and the other way round.
    r = await b.get("/admin")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")

    r = await b.post("/platform/logout", csrf=False)
    assert r.status_code == 403
    r = await b.post("/platform/logout")
    assert r.status_code == 303 and r.headers["location"] == "/platform/login"
    page = await b.follow(r)
    assert "已退出登录" in page.text
    assert (await b.get("/platform")).status_code == 303


async def test_a_merchant_owner_cannot_use_the_platform_console(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    b = await owner_browser(browser, t)
    r = await b.get("/platform")
    assert r.status_code == 303 and r.headers["location"] == "/platform/login"
    r = await b.post("/platform/login", {"username": t.owner_username, "password": t.owner_password}, csrf=False)
    assert r.status_code == 401


async def test_every_platform_page_renders(ops, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    for path in ("/platform", "/platform?status=active", "/platform?status=suspended", f"/platform?q={t.code}",
                 "/platform?status=bogus&page=1", "/platform?page=9999", "/platform/tenants/new", f"/platform/tenants/{t.id}"):
        r = await ops.get(path)
        assert r.status_code == 200, path
        assert ops.csrf and "退出登录" in r.text and "商家管理" in r.text, path
    assert f'href="/platform/tenants/{t.id}"' in (await ops.get(f"/platform?q={t.code}")).text
    assert f'href="/platform/tenants/{t.id}"' not in (await ops.get("/platform?status=suspended&q=" + t.code)).text
    r = await ops.get("/platform/tenants/999999999")
    assert r.status_code == 404


async def test_onboard_suspend_and_resume_a_tenant(browser, ops, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    existing = await _tenant(tenant_factory)
    await ops.get("/platform/tenants/new")
    r = await ops.post("/platform/tenants/new", {"code": existing.code, "name": "Dup", "owner_username": unique("boss."),
                                                 "owner_password": "boss-pass-123"})
    assert r.status_code == 409 and field_error(r.text, "code")
    r = await ops.post("/platform/tenants/new", {"code": unique("shop"), "name": "Dup", "owner_username": existing.owner_username,
                                                 "owner_password": "boss-pass-123"})
    assert r.status_code == 409 and field_error(r.text, "owner_username")
    r = await ops.post("/platform/tenants/new", {"code": "", "name": "", "owner_username": "x", "owner_password": "short"})
    assert r.status_code == 422
    assert field_error(r.text, "name") == "请填写商家名称（最多 100 字）"
    assert field_error(r.text, "owner_password") == "密码需为 8–128 位"
    r = await ops.post("/platform/tenants/new", {"code": unique("shop"), "name": "X", "owner_username": unique("boss."),
                                                 "owner_password": "boss-pass-123", "timezone": "Mars/Base"})
    assert r.status_code == 422 and field_error(r.text, "timezone")
    code, owner = unique("shop"), unique("boss.")
    form = {"code": code, "name": "Lanting Books", "owner_username": owner, "owner_password": "lanting-2026",
            "owner_name": "Lanting Owner", "contact_phone": "13700001111", "timezone": "Asia/Shanghai"}
    r = await ops.post("/platform/tenants/new", form, csrf=False)
    assert r.status_code == 403

    r = await ops.post("/platform/tenants/new", form)
    assert r.status_code == 303
    m = re.fullmatch(r"/platform/tenants/(\d+)", r.headers["location"])
    assert m
    tid = m.group(1)
    page = await ops.follow(r)
    assert "已开通商家" in page.text and "Lanting Books" in page.text and code in page.text
    assert f'href="/platform/tenants/{tid}"' in (await ops.get(f"/platform?q={code}")).text
    # The new owner signs in to the console.
    owner_b = browser()
    await staff_sign_in(owner_b, owner, "lanting-2026")

    r = await ops.post(f"/platform/tenants/{tid}/suspend", {"reason": ""})
    assert r.status_code == 422 and "data-open-on-load" in r.text
    assert field_error(r.text, "reason") == "请填写暂停原因，商家员工登录时会看到它"
    r = await ops.post(f"/platform/tenants/{tid}/suspend", {"reason": "x" * 201})
    assert r.status_code == 422 and field_error(r.text, "reason") == "原因最多 200 字"
    r = await ops.post(f"/platform/tenants/{tid}/suspend", {"reason": "Unpaid"}, csrf=False)
    assert r.status_code == 403
    r = await ops.post(f"/platform/tenants/{tid}/suspend", {"reason": "Unpaid"})
    assert r.status_code == 303 and r.headers["location"] == f"/platform/tenants/{tid}"
    page = await ops.follow(r)
    assert "已暂停" in page.text and "Unpaid" in page.text and "暂停服务" in page.text
    assert f'href="/platform/tenants/{tid}"' in (await ops.get(f"/platform?status=suspended&q={code}")).text

    # Suspended: the signed-in owner is shut out, the sign-in form says why, the shop is closed.
    r = await owner_b.get("/admin")
    assert r.status_code == 403 and "暂停" in r.text and "Unpaid" in r.text
    other = browser()
    r = await other.post("/admin/login", {"username": owner, "password": "lanting-2026"}, csrf=False)
    assert r.status_code == 403 and "暂停" in r.text and "Unpaid" in r.text
    assert "siyu_staff" not in other.cookies
    assert (await other.get(f"/m/{code}/")).status_code == 403

    r = await ops.post(f"/platform/tenants/{tid}/suspend", {"reason": "again"})
    assert r.status_code == 303  # not a legal transition: back to the page with an error
    assert "flash-error" in (await ops.follow(r)).text

    r = await ops.post(f"/platform/tenants/{tid}/resume", {"reason": ""})
    assert r.status_code == 303
    page = await ops.follow(r)
    assert "恢复服务" in page.text and "已恢复" in page.text
    assert (await owner_b.get("/admin")).status_code == 200
    assert (await other.get(f"/m/{code}/")).status_code == 200


async def test_platform_pages_render_in_english(browser, ops, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    with ops.language("en"):
        # (The list is filtered to this test's tenant: other tests name theirs in Chinese.)
        for path in (f"/platform?q={t.code}", "/platform/tenants/new", f"/platform/tenants/{t.id}"):
            r = await ops.get(path)
            assert r.status_code == 200 and '<html lang="en">' in r.text, path
            assert "Sign out" in r.text and "Tenants" in r.text, path
            for chinese in ("退出登录", "平台运营", "商家管理", "主导航"):
                assert chinese not in r.text, (path, chinese)
            # The owner's default name 店主, prefilled in the onboarding form, is data, not a label.
            left = chinese_left(r.text, "店主")
            assert not left, (path, sorted(left))
        r = await ops.post(f"/platform/tenants/{t.id}/suspend", {"reason": ""})
        assert r.status_code == 422 and not re.search(r"[\u4e00-\u9fff]", field_error(r.text, "reason"))
    anon = browser()
    with anon.language("en"):
        r = await anon.get("/platform/login")
        assert r.status_code == 200 and '<html lang="en">' in r.text and not chinese_left(r.text), sorted(chinese_left(r.text))
        r = await anon.post("/platform/login", {"username": "nobody", "password": "wrong-password"}, csrf=False)
        assert r.status_code == 401 and "Wrong username or password" in r.text


async def test_settings_and_stores_render_in_english(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _tenant(tenant_factory)
    store_id = await make_store(runtime, t, name="Riverside")
    b = await owner_browser(browser, t)
    with b.language("en"):
        for path in ("/admin/settings", "/admin/stores", "/admin/stores/new", f"/admin/stores/{store_id}"):
            r = await b.get(path)
            assert r.status_code == 200 and '<html lang="en">' in r.text, path
            assert "Sign out" in r.text and "Shop settings" in r.text and "Stores" in r.text, path
            # The owner's default name 店主 is data (the avatar shows its first character).
            left = chinese_left(r.text, "店主", "店")
            assert not left, (path, sorted(left))
        r = await b.post("/admin/stores/new", {"code": "BAD CODE", "name": ""})
        assert r.status_code == 422
        assert field_error(r.text, "name") and not re.search(r"[\u4e00-\u9fff]", field_error(r.text, "name"))
