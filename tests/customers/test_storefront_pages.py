"""The H5 storefront (``/m/{shop}/...``) and the console's customer pages, driven through
their HTML forms like a browser would.

Home, category and cart; sign-in by SMS code (with the sandbox SMS page a tester reads the
code from) and by the WeChat sandbox; "我的" with its nickname and bind-phone forms (binding a
phone that belongs to an older member merges the two); sign-out; and, in the console, the
customer list and detail, blocking, and masked phone numbers for staff who may not see them.
Each test works in a fresh tenant; every response is checked to be below 500 by the
:class:`~tests._pages.Browser` hook.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from siyu.kit.runtime import Runtime
from tests._pages import (
    FOREIGN_ORIGIN,
    SAME_ORIGIN,
    Browser,
    browsers,
    chinese_left,
    field_error,
    make_staff,
    owner_browser,
    staff_sign_in,
)
from tests.conftest import TenantInfo, unique, unique_phone
from tests.customers._helpers import clear_cooldown, latest_code, request_code, store_url


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make



def masked(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]


async def _shop(runtime: Runtime, tenant_factory: Any, *, welcome: str | None = "Fresh leaves every spring",
                service_phone: str | None = "400-820-1688") -> TenantInfo:
    """A fresh tenant with an English name and its storefront settings filled in."""
    from siyu.tenants import service as tenants_service
    from siyu.tenants.schemas import TenantSettingsUpdate

    t = await tenant_factory("Green Hill Tea")
    async with runtime.db.uow() as s:
        tenant = await tenants_service.get_tenant(s, t.id)
        await tenants_service.update_settings(s, tenants_service.scope_of(tenant), TenantSettingsUpdate(
            name=t.name, welcome_text=welcome, service_phone=service_phone))
    return t


async def _import_customer(runtime: Runtime, t: TenantInfo, phone: str, nickname: str) -> int:
    from siyu.customers import service as customers_service
    from siyu.tenants import service as tenants_service

    async with runtime.db.uow() as s:
        tenant = await tenants_service.get_tenant(s, t.id)
        c = await customers_service.import_customer(s, tenants_service.scope_of(tenant), phone=phone, nickname=nickname)
        return c.id


async def _suspend(runtime: Runtime, t: TenantInfo, reason: str) -> None:
    from siyu.tenants import service as tenants_service

    async with runtime.db.uow() as s:
        await tenants_service.change_status(s, t.id, "suspend", reason)


async def _sandbox_code(b: Browser, t: TenantInfo, phone: str) -> str:
    """Read the code the way the sign-in page's sandbox box does."""
    r = await b.get(f"/m/{t.code}/sandbox-sms", params={"phone": phone})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["found"] and re.fullmatch(r"\d{6}", body["code"]), body
    return str(body["code"])


async def shopper_sign_in(b: Browser, t: TenantInfo, phone: str) -> httpx.Response:
    """Sign in at ``t``'s storefront through the sign-in form (code read from the sandbox page)."""
    r = await b.get(f"/m/{t.code}/login")
    assert r.status_code == 200
    assert (await request_code(b.c, t, phone)).status_code == 200
    code = await _sandbox_code(b, t, phone)
    r = await b.post(f"/m/{t.code}/login", {"phone": phone, "code": code}, csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == f"/m/{t.code}/me", r.text[:500]
    me = await b.follow(r)
    assert me.status_code == 200 and b.csrf
    return me



# -- browsing -----------------------------------------------------------------------------------


async def test_storefront_root_sends_to_a_shop(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    b = browser()
    for path in ("/m", "/m/"):
        r = await b.get(path)
        assert r.status_code == 307 and re.fullmatch(r"/m/[a-z0-9_-]+/", r.headers["location"]), path
        assert (await b.follow(r)).status_code == 200
    r = await b.get(f"/m/{t.code}")
    assert r.status_code in (307, 308) and r.headers["location"].endswith(f"/m/{t.code}/")


async def test_home_category_and_cart(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    b = browser()
    r = await b.get(f"/m/{t.code}/")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    for text in ("Green Hill Tea", "Fresh leaves every spring", "400-820-1688", "商城即将上线", "登录成为会员"):
        assert text in r.text, text
    assert f'class="tab active" href="/m/{t.code}/"' in r.text
    assert f'href="/m/{t.code}/login"' in r.text
    for page, words in (("category", "商品分类即将上线"), ("cart", "购物车空空如也")):
        r = await b.get(f"/m/{t.code}/{page}")
        assert r.status_code == 200 and words in r.text, page
        assert f'class="tab active" href="/m/{t.code}/{page}"' in r.text
    # Without a welcome text or service phone the home page says something sensible.
    bare = await _shop(runtime, tenant_factory, welcome=None, service_phone=None)
    r = await b.get(f"/m/{bare.code}/")
    assert r.status_code == 200 and "感谢您的关注" in r.text and "tel:" not in r.text


async def test_an_unknown_shop_is_404(browser) -> None:  # type: ignore[no-untyped-def]
    b = browser()
    for path in ("/m/nosuchshop/", "/m/nosuchshop/login", "/m/nosuchshop/me", "/m/nosuchshop/category",
                 "/m/nosuchshop/sandbox-sms?phone=13800138000"):
        r = await b.get(path)
        assert r.status_code == 404, path
    r = await b.get("/m/nosuchshop/")
    assert "店铺不存在" in r.text and 'href="/m/nosuchshop/"' in r.text
    r = await b.post("/m/nosuchshop/login", {"phone": "13800138000", "code": "123456"}, csrf=False)
    assert r.status_code == 404


async def test_a_suspended_shop_is_closed(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    phone = unique_phone()
    b = browser()
    await shopper_sign_in(b, t, phone)
    await _suspend(runtime, t, "Contract ended")
    r = await b.get(f"/m/{t.code}/")
    assert r.status_code == 403 and "暂停服务" in r.text and "Contract ended" in r.text
    for path in ("/login", "/me", "/category", f"/sandbox-sms?phone={phone}"):
        assert (await b.get(f"/m/{t.code}{path}")).status_code == 403, path
    r = await b.post(f"/m/{t.code}/login", {"phone": phone, "code": "123456"}, csrf=False)
    assert r.status_code == 403
    r = await b.post(f"/m/{t.code}/me/nickname", {"nickname": "x"})
    assert r.status_code == 403


# -- sign-in ------------------------------------------------------------------------------------


async def test_sign_in_with_an_sms_code(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    base = f"/m/{t.code}"
    b = browser()
    r = await b.get(f"{base}/me")
    assert r.status_code == 303 and r.headers["location"] == f"{base}/login?next={base}/me"
    r = await b.get(f"{base}/login?next={base}/me")
    assert r.status_code == 200
    for text in ("获取验证码", "沙箱短信", "微信一键登录", f'value="{base}/me"', f'"sandboxUrl": "{base}/sandbox-sms"'):
        assert text in r.text, text
    r = await b.get(f"{base}/login", params={"next": "https://evil.example/x"})
    assert 'name="next" value=""' in r.text

    phone = unique_phone()
    r = await request_code(b.c, t, phone)
    assert r.status_code == 200
    r = await request_code(b.c, t, phone)
    assert r.status_code == 429 and r.json()["code"] == "sms_too_frequent"

    # The sandbox SMS page: the newest text to that phone, from this shop only.
    r = await b.get(f"{base}/sandbox-sms", params={"phone": phone})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["found"] is True and body["phone"] == masked(phone) and body["template"] == "verify_login"
    assert "Green Hill Tea" in body["content"] and body["code"] in body["content"]
    code = body["code"]
    assert code == await latest_code(runtime, t.id, phone)
    assert (await b.get(f"{base}/sandbox-sms", params={"phone": "+86" + phone})).json()["code"] == code
    assert (await b.get(f"{base}/sandbox-sms", params={"phone": unique_phone()})).json() == {"found": False}
    assert (await b.get(f"{base}/sandbox-sms", params={"phone": "12345"})).json() == {"found": False}
    assert (await b.get(f"{base}/sandbox-sms")).json() == {"found": False}
    other = await _shop(runtime, tenant_factory)
    assert (await b.get(f"/m/{other.code}/sandbox-sms", params={"phone": phone})).json() == {"found": False}

    r = await b.post(f"{base}/login", {"phone": "123", "code": "1", "next": f"{base}/me"}, csrf=False)
    assert r.status_code == 422 and field_error(r.text, "phone") == "请输入正确的 11 位手机号"
    r = await b.post(f"{base}/login", {"phone": phone, "code": "", "next": f"{base}/me"}, csrf=False)
    assert r.status_code == 422 and field_error(r.text, "code") == "请输入短信验证码"
    wrong = "000000" if code != "000000" else "111111"
    r = await b.post(f"{base}/login", {"phone": phone, "code": wrong, "next": f"{base}/me"}, csrf=False)
    assert r.status_code == 400 and "验证码错误" in field_error(r.text, "code")
    assert f'value="{phone}"' in r.text and f'value="{base}/me"' in r.text
    r = await b.post(f"{base}/login", {"phone": phone, "code": code}, csrf=False, headers=FOREIGN_ORIGIN)
    assert r.status_code == 403 and "siyu_customer" not in b.cookies
    r = await b.post(f"{base}/login", {"phone": phone, "code": code, "next": "https://evil.example/x"},
                     csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == f"{base}/me"
    assert "siyu_customer" in b.cookies

    me = await b.follow(r)
    assert me.status_code == 200 and b.csrf
    assert masked(phone) in me.text and phone not in me.text
    assert "欢迎加入" in me.text and f"用户{phone[-4:]}" in me.text
    assert "我的订单" in me.text and "收货地址" in me.text and "即将上线" in me.text
    assert 'id="bind"' not in me.text  # signed in by phone: nothing to bind
    assert "欢迎加入" not in (await b.get(f"{base}/me")).text  # the flash is shown once
    r = await b.get(f"{base}/login")
    assert r.status_code == 303 and r.headers["location"] == f"{base}/me"
    r = await b.get(f"{base}/login", params={"next": f"{base}/cart"})
    assert r.status_code == 303 and r.headers["location"] == f"{base}/cart"
    r = await b.get(f"{base}/login", params={"next": "//evil.example"})
    assert r.status_code == 303 and r.headers["location"] == f"{base}/me"
    home = await b.get(f"{base}/")
    assert f"您好，用户{phone[-4:]}" in home.text and f'href="{base}/login"' not in home.text

    # The same phone signs in again (a code is single use) as the same member, "登录成功".
    again = browser()
    await clear_cooldown(runtime, t, phone)
    r = await again.post(f"{base}/login", {"phone": phone, "code": code}, csrf=False)
    assert r.status_code == 400
    await request_code(again.c, t, phone)
    code2 = await _sandbox_code(again, t, phone)
    r = await again.post(f"{base}/login", {"phone": phone, "code": code2}, csrf=False)
    assert r.status_code == 303
    assert "登录成功" in (await again.follow(r)).text


async def test_a_shopper_signed_in_at_one_shop_is_a_guest_at_another(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    other = await _shop(runtime, tenant_factory)
    phone = unique_phone()
    b = browser()
    await shopper_sign_in(b, t, phone)
    r = await b.get(f"/m/{other.code}/me")
    assert r.status_code == 303 and r.headers["location"].startswith(f"/m/{other.code}/login")
    home = await b.get(f"/m/{other.code}/")
    assert home.status_code == 200 and f"用户{phone[-4:]}" not in home.text and f'href="/m/{other.code}/login"' in home.text
    r = await b.post(f"/m/{other.code}/me/nickname", {"nickname": "Intruder"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/m/{other.code}/login")
    # Still signed in at the first shop.
    assert (await b.get(f"/m/{t.code}/me")).status_code == 200


async def test_the_sandbox_sms_page_is_gone_when_codes_may_not_be_revealed(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    phone = unique_phone()
    b = browser()
    assert (await request_code(b.c, t, phone)).status_code == 200
    before = runtime.settings.sms_sandbox_reveal
    runtime.settings.sms_sandbox_reveal = False
    try:
        assert runtime.settings.reveal_sandbox_codes is False
        code = await latest_code(runtime, t.id, phone)
        r = await b.get(f"/m/{t.code}/sandbox-sms", params={"phone": phone})
        assert r.status_code == 404 and code not in r.text
        r = await b.get(f"/m/{t.code}/login")
        assert r.status_code == 200 and "沙箱短信" not in r.text and '"sandboxUrl": ""' in r.text
        # Signing in still works, with the code from the text message itself.
        r = await b.post(f"/m/{t.code}/login", {"phone": phone, "code": code}, csrf=False)
        assert r.status_code == 303
    finally:
        runtime.settings.sms_sandbox_reveal = before
    assert (await b.get(f"/m/{t.code}/sandbox-sms", params={"phone": phone})).status_code == 200


# -- 我的 ----------------------------------------------------------------------------------------


async def test_change_the_nickname_and_sign_out(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    base = f"/m/{t.code}"
    b = browser()
    await shopper_sign_in(b, t, unique_phone())
    r = await b.post(f"{base}/me/nickname", {"nickname": "Xiao Qing"}, csrf=False)
    assert r.status_code == 403
    r = await b.post(f"{base}/me/nickname", {"nickname": "Xiao Qing", "_csrf": "forged"})
    assert r.status_code == 403
    r = await b.post(f"{base}/me/nickname", {"nickname": "   "})
    assert r.status_code == 422 and field_error(r.text, "nickname") == "昵称需为 1–100 个字符"
    r = await b.post(f"{base}/me/nickname", {"nickname": "Qing<b>"})
    assert r.status_code == 303 and r.headers["location"] == f"{base}/me"
    me = await b.follow(r)
    assert "Qing&lt;b&gt;" in me.text and "Qing<b>" not in me.text and "昵称已更新" in me.text

    r = await b.post(f"{base}/logout", {"_csrf": "nope"})
    assert r.status_code == 403
    r = await b.post(f"{base}/logout", csrf=False)
    assert r.status_code == 403
    r = await b.post(f"{base}/logout")
    assert r.status_code == 303 and r.headers["location"] == f"{base}/"
    home = await b.follow(r)
    assert "已退出登录" in home.text and f'href="{base}/login"' in home.text
    r = await b.get(f"{base}/me")
    assert r.status_code == 303 and r.headers["location"].startswith(f"{base}/login")


async def test_wechat_sign_in_then_binding_an_existing_phone_merges(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    base = f"/m/{t.code}"
    older_phone = unique_phone()
    older_id = await _import_customer(runtime, t, older_phone, "Old Friend")
    w = browser()
    await w.get(f"{base}/login")
    r = await w.post(f"{base}/login/wechat", {"code": "   "}, csrf=False)
    assert r.status_code == 422 and "请填写沙箱微信身份标识" in r.text
    r = await w.post(f"{base}/login/wechat", {"code": unique("wx-")}, csrf=False, headers=FOREIGN_ORIGIN)
    assert r.status_code == 403
    r = await w.post(f"{base}/login/wechat", {"code": unique("wx-"), "next": "//evil.example"}, csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == f"{base}/me"
    me = await w.follow(r)
    assert me.status_code == 200 and 'id="bind"' in me.text and "微信小程序" in me.text and "未绑定手机号" in me.text
    wx_id = (await w.get(store_url(t, "/me"))).json()["id"]
    assert wx_id != older_id

    r = await w.post(f"{base}/me/phone", {"phone": "123", "code": "1"})
    assert r.status_code == 422 and field_error(r.text, "bind-phone") == "请输入正确的 11 位手机号"
    r = await w.post(f"{base}/me/phone", {"phone": older_phone, "code": "123456"}, csrf=False)
    assert r.status_code == 403
    assert (await request_code(w.c, t, older_phone, "bind")).status_code == 200
    code = await _sandbox_code(w, t, older_phone)
    wrong = "999999" if code != "999999" else "888888"
    r = await w.post(f"{base}/me/phone", {"phone": older_phone, "code": wrong})
    assert r.status_code == 400 and "验证码错误" in field_error(r.text, "bind-code") and 'id="bind"' in r.text
    r = await w.post(f"{base}/me/phone", {"phone": older_phone, "code": code})
    assert r.status_code == 303 and r.headers["location"] == f"{base}/me"
    assert "siyu_customer" in r.headers.get("set-cookie", "")  # now signed in as the older member
    me = await w.follow(r)
    assert me.status_code == 200 and "Old Friend" in me.text and "合并" in me.text and 'id="bind"' not in me.text
    who = (await w.get(store_url(t, "/me"))).json()
    assert who["id"] == older_id
    assert sorted(i["kind"] for i in who["identities"]) == ["openid", "phone"]

    # The console shows the merge both ways, and a merged customer's status cannot change.
    owner = await owner_browser(browser, t)
    page = await owner.get(f"/admin/customers/{wx_id}")
    assert page.status_code == 200 and "已合并" in page.text and f'href="/admin/customers/{older_id}"' in page.text
    r = await owner.post(f"/admin/customers/{wx_id}/status", {"status": "blocked"})
    assert r.status_code == 303 and "已合并到其他客户" in (await owner.follow(r)).text
    page = await owner.get(f"/admin/customers/{older_id}")
    assert "微信小程序" in page.text and older_phone in page.text


async def test_binding_a_new_phone(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    base = f"/m/{t.code}"
    w = browser()
    r = await w.post(f"{base}/login/wechat", {"code": unique("wx-")}, csrf=False)
    assert r.status_code == 303
    await w.follow(r)
    me_id = (await w.get(store_url(t, "/me"))).json()["id"]
    phone = unique_phone()
    assert (await request_code(w.c, t, phone, "bind")).status_code == 200
    r = await w.post(f"{base}/me/phone", {"phone": phone, "code": await _sandbox_code(w, t, phone)})
    assert r.status_code == 303
    me = await w.follow(r)
    assert "手机号已绑定" in me.text and "合并" not in me.text and masked(phone) in me.text
    assert (await w.get(store_url(t, "/me"))).json()["id"] == me_id


# -- console ------------------------------------------------------------------------------------


async def test_console_customer_list_and_detail(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    phones = [unique_phone() for _ in range(22)]
    ids = [await _import_customer(runtime, t, p, f"Member {i:02d}") for i, p in enumerate(phones)]
    anon = browser()
    r = await anon.get("/admin/customers")
    assert r.status_code == 303 and r.headers["location"] == "/admin/login?next=/admin/customers"

    b = await owner_browser(browser, t)
    r = await b.get("/admin/customers")
    assert r.status_code == 200
    assert sum(p in r.text for p in phones) == 20  # a full first page, full numbers for the owner
    assert "已脱敏" not in r.text
    r = await b.get("/admin/customers?page=2")
    assert r.status_code == 200 and "第 2 / 2 页" in r.text and sum(p in r.text for p in phones) == 2
    r = await b.get(f"/admin/customers?q={phones[5]}")
    assert "Member 05" in r.text and set(re.findall(r'href="/admin/customers/(\d+)"', r.text)) == {str(ids[5])}
    r = await b.get("/admin/customers?q=Member 07")
    assert f'href="/admin/customers/{ids[7]}"' in r.text
    for path in ("/admin/customers?status=bogus&page=99999", "/admin/customers?q=" + "长" * 100):
        assert (await b.get(path)).status_code == 200, path
    r = await b.get("/admin/customers?q=%00")  # PostgreSQL cannot store NUL: a 422 page there
    assert r.status_code in (200, 422) and r.headers["content-type"].startswith("text/html")

    page = await b.get(f"/admin/customers/{ids[0]}")
    assert page.status_code == 200 and "客户画像" in page.text and "Member 00" in page.text and phones[0] in page.text
    assert "停用客户" in page.text
    r = await b.post(f"/admin/customers/{ids[0]}/status", {"status": "blocked"}, csrf=False)
    assert r.status_code == 403
    r = await b.post(f"/admin/customers/{ids[0]}/status", {"status": "bogus"})
    assert r.status_code == 303 and "未知的客户状态" in (await b.follow(r)).text
    r = await b.post(f"/admin/customers/{ids[0]}/status", {"status": "blocked"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/customers/{ids[0]}"
    page = await b.follow(r)
    assert "已停用该客户" in page.text and "恢复客户" in page.text
    assert f'href="/admin/customers/{ids[0]}"' in (await b.get("/admin/customers?status=blocked")).text
    assert f'href="/admin/customers/{ids[0]}"' not in (await b.get("/admin/customers?status=active&q=Member 00")).text
    r = await b.post(f"/admin/customers/{ids[0]}/status", {"status": "active"})
    assert r.status_code == 303 and "已恢复该客户" in (await b.follow(r)).text

    assert (await b.get("/admin/customers/999999999")).status_code == 404
    assert (await b.post("/admin/customers/999999999/status", {"status": "blocked"})).status_code == 404
    other = await _shop(runtime, tenant_factory)
    foreign = await _import_customer(runtime, other, unique_phone(), "Someone Else")
    assert (await b.get(f"/admin/customers/{foreign}")).status_code == 404
    assert (await b.post(f"/admin/customers/{foreign}/status", {"status": "blocked"})).status_code == 404


async def test_blocking_a_customer_ends_their_storefront_session(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    phone = unique_phone()
    shopper = browser()
    await shopper_sign_in(shopper, t, phone)
    customer_id = (await shopper.get(store_url(t, "/me"))).json()["id"]
    owner = await owner_browser(browser, t)
    await owner.get(f"/admin/customers/{customer_id}")
    r = await owner.post(f"/admin/customers/{customer_id}/status", {"status": "blocked"})
    assert r.status_code == 303
    r = await shopper.get(f"/m/{t.code}/me")
    assert r.status_code == 303 and r.headers["location"].startswith(f"/m/{t.code}/login")
    await clear_cooldown(runtime, t, phone)
    await request_code(shopper.c, t, phone)
    code = await _sandbox_code(shopper, t, phone)
    r = await shopper.post(f"/m/{t.code}/login", {"phone": phone, "code": code}, csrf=False)
    assert r.status_code == 403 and "账号已被停用" in r.text


async def test_staff_without_phone_permission_see_masked_numbers(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    phone = unique_phone()
    cid = await _import_customer(runtime, t, phone, "Masked Member")
    for role in ("customer_service", "store_guide"):
        _sid, username, password = await make_staff(runtime, t, role)
        b = browser()
        await staff_sign_in(b, username, password)
        r = await b.get("/admin/customers")
        assert r.status_code == 200, role
        assert masked(phone) in r.text and phone not in r.text and "已脱敏" in r.text, role
        assert re.search(r">1\d{10}<", r.text) is None
        r = await b.get(f"/admin/customers/{cid}")
        assert r.status_code == 200 and "Masked Member" in r.text
        assert phone not in r.text and masked(phone) in r.text, role
        assert "停用客户" not in r.text and "恢复客户" not in r.text, role
        r = await b.post(f"/admin/customers/{cid}/status", {"status": "blocked"})
        assert r.status_code == 403, role
        # Searching by the full number still finds the member; the number shows only where the
        # staff member typed it (the search box, and the page address the language switch keeps).
        r = await b.get(f"/admin/customers?q={phone}")
        assert "Masked Member" in r.text and phone not in re.sub(r'value="[^"]*"', "", r.text), role
    # A role without customers.read neither sees the page nor the navigation entry.
    _sid, username, password = await make_staff(runtime, t, "finance")
    f = browser()
    page = await staff_sign_in(f, username, password)
    assert 'href="/admin/customers"' not in page.text.split("<main", 1)[0]
    assert (await f.get("/admin/customers")).status_code == 403
    assert (await f.get(f"/admin/customers/{cid}")).status_code == 403


# -- English --------------------------------------------------------------------------------------


async def test_storefront_and_customer_pages_render_in_english(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await _shop(runtime, tenant_factory)
    base = f"/m/{t.code}"
    b = browser()
    with b.language("en"):
        expected = {
            "/": ("Shop opening soon", "Member perks", "Home", "Cart", "Me"),
            "/category": ("Categories",),
            "/cart": ("Cart",),
            "/login": ("Sandbox SMS", "Sign in with WeChat", "Get code"),
            "/nosuch": (),
        }
        for path, words in expected.items():
            r = await b.get(base + path)
            assert r.status_code == (404 if path == "/nosuch" else 200), path
            assert '<html lang="en">' in r.text, path
            for word in words:
                assert word in r.text, (path, word)
            for chinese in ("首页", "购物车", "我的", "登录", "底部导航"):
                assert chinese not in r.text, (path, chinese)
            assert not chinese_left(r.text), (path, sorted(chinese_left(r.text)))
        r = await b.post(f"{base}/login", {"phone": "123", "code": "1"}, csrf=False)
        assert r.status_code == 422 and not chinese_left(r.text), sorted(chinese_left(r.text))
        me = await shopper_sign_in(b, t, unique_phone())
        # The default nickname 用户1234 is data the product chose at sign-up; rename to English.
        r = await b.post(f"{base}/me/nickname", {"nickname": "Lin"})
        assert r.status_code == 303
        me = await b.follow(r)
        assert "Sign out" in me.text and not chinese_left(me.text), sorted(chinese_left(me.text))
        home = await b.get(f"{base}/")
        assert not chinese_left(home.text), sorted(chinese_left(home.text))
    customer_id = (await b.get(store_url(t, "/me"))).json()["id"]

    owner = await owner_browser(browser, t)
    await owner.get(f"/admin/customers/{customer_id}")
    r = await owner.post(f"/admin/customers/{customer_id}/status", {"status": "blocked"})
    await owner.follow(r)
    with owner.language("en"):
        for path in ("/admin/customers", f"/admin/customers/{customer_id}"):
            r = await owner.get(path)
            assert r.status_code == 200 and "Sign out" in r.text and "Customers" in r.text, path
            # The owner's default name 店主 is data (the avatar shows its first character).
            left = chinese_left(r.text, "店主", "店")
            assert not left, (path, sorted(left))
        r = await owner.get(f"/admin/customers/{customer_id}")
        assert "Customer profile" in r.text and "Unblock customer" in r.text
