"""The pages of levels and members, driven through their HTML forms like a browser would.

Console: 会员列表 with its filters, a member's page with its ledger tabs, growth adjustment
and profile forms (errors on the page with a 4xx), 会员等级 with the editor and the rules,
会员价, the 优先发货 badge on orders, permissions, another tenant's member answering 404, the
English pages. Storefront: 我的 links the member centre; the member centre with the level
card, the profile (birthday once), notices; 等级权益 and 成长值明细; English. Every response
is checked to be below 500 by the :class:`~tests._pages.Browser` hook.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from siyu.kit.runtime import Runtime
from siyu.members import levels
from tests._pages import Browser, browsers, chinese_left, field_error, make_staff, staff_sign_in
from tests.members.test_levels import give_growth, level_ids, member, set_level, settled_buyer
from tests.orders import _lifecycle as lc
from tests.orders.conftest import Buyer, OrderShop, make_order_shop

_LOGIN_IP_KEYS = ("login-ip:staff:127.0.0.1", "login-ip:platform:127.0.0.1")
LEVEL_NAMES = ("普通会员", "银卡会员", "金卡会员", "黑金会员")


@pytest.fixture(autouse=True)
async def _open_login_window(runtime: Runtime) -> None:
    await runtime.kv.delete(*_LOGIN_IP_KEYS)


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[Callable[[], Browser]]:
    async with browsers(app) as make:
        yield make


async def owner(browser: Callable[[], Browser], shop: OrderShop) -> Browser:
    b = browser()
    await staff_sign_in(b, shop.tenant.owner_username, shop.tenant.owner_password)
    return b


async def shopper(browser: Callable[[], Browser], shop: OrderShop, buyer: Buyer) -> Browser:
    b = browser()
    b.c.cookies.set("siyu_customer", buyer.token)
    r = await b.get(f"/m/{shop.tenant.code}/me")
    assert r.status_code == 200 and b.csrf, r.text[:300]
    return b


def flash_of(page: str) -> str:
    m = re.search(r'<div class="flash flash-\w+" role="\w+">(.*?)</div>', page, re.S)
    return html.unescape(m.group(1).strip()) if m else ""


async def nickname(shop: OrderShop, customer_id: int) -> str:
    from siyu.customers import service as customers_service

    async with shop.runtime.db.uow(readonly=True) as s:
        return (await customers_service.get_customer(s, shop.scope, customer_id)).nickname or ""


# -- console ---------------------------------------------------------------------------------------------


async def test_member_list_and_a_members_page(browser: Any, order_shop: OrderShop, runtime: Runtime,
                                              client: httpx.AsyncClient, tenant_factory: Any) -> None:
    shop = order_shop
    ids = await level_ids(shop)
    buyer, other = await settled_buyer(shop), await settled_buyer(shop)
    await give_growth(shop, buyer.customer_id, 1000, reason="门店消费补录")
    name = await nickname(shop, buyer.customer_id)
    b = await owner(browser, shop)
    r = await b.get("/admin/members")
    assert r.status_code == 200
    assert f'data-customer="{buyer.customer_id}"' in r.text and f'data-customer="{other.customer_id}"' in r.text
    r = await b.get(f"/admin/members?level={ids['银卡会员']}")
    assert f'data-customer="{buyer.customer_id}"' in r.text and f'data-customer="{other.customer_id}"' not in r.text
    r = await b.get("/admin/members", params={"q": name, "birthday_month": "13", "points_min": "x", "page": "1"})
    assert r.status_code == 200 and f'data-customer="{buyer.customer_id}"' in r.text
    r = await b.get("/admin/members?birthday_month=2")
    assert "没有符合条件的会员" in r.text

    url = f"/admin/members/{buyer.customer_id}"
    r = await b.get(url)
    assert r.status_code == 200 and "银卡会员" in r.text and "门店消费补录" in r.text
    assert f'action="/admin/members/{buyer.customer_id}/growth/adjust"' in r.text
    for tab in ("growth", "points", "balance", "cards", "bogus"):
        assert (await b.get(f"{url}?tab={tab}")).status_code == 200

    r = await b.post(f"{url}/growth/adjust", {"amount": "abc", "reason": ""})
    assert r.status_code == 422 and field_error(r.text, "amount") and field_error(r.text, "reason") == "请填写调整原因"
    r = await b.post(f"{url}/growth/adjust", {"amount": "-99999", "reason": "扣回"})
    assert r.status_code == 409 and "成长值不足" in field_error(r.text, "amount")
    r = await b.post(f"{url}/growth/adjust", {"amount": "4000", "reason": "活动奖励", "token": "tap-1"})
    assert r.status_code == 303
    again = await b.post(f"{url}/growth/adjust", {"amount": "4000", "reason": "活动奖励", "token": "tap-1"})
    assert again.status_code == 303  # a double tap adjusts once
    page = await b.follow(r)
    assert flash_of(page.text) == "已调整成长值 +4,000" and "金卡会员" in page.text
    assert (await member(shop, buyer.customer_id)).growth == 5010

    r = await b.post(f"{url}/profile", {"birthday": "2020-13-01", "gender": "x", "region": ""})
    assert r.status_code == 422 and field_error(r.text, "birthday") and field_error(r.text, "gender")
    r = await b.post(f"{url}/profile", {"birthday": "1990-02-03", "gender": "female", "region": "苏州"})
    assert r.status_code == 303
    assert (await member(shop, buyer.customer_id)).birthday_md == "02-03"

    # Another tenant's member is a 404 page, for reading and writing alike.
    theirs = await make_order_shop(runtime, client, tenant_factory, "别家")
    assert (await b.get(f"/admin/members/{theirs.buyer.customer_id}")).status_code == 404
    assert (await b.post(f"/admin/members/{theirs.buyer.customer_id}/growth/adjust",
                         {"amount": "5", "reason": "x"})).status_code == 404

    with b.language("en"):
        for path in ("/admin/members", url, f"{url}?tab=cards", "/admin/members?birthday_month=2"):
            r = await b.get(path)
            assert r.status_code == 200
            # Data: level names, nicknames (the fixture's 买家…), notes and the region typed here, the shop,
            # the owner's role name and the avatar's first character.
            left = chinese_left(r.text, *LEVEL_NAMES, name, "门店消费补录", "活动奖励", "苏州", shop.tenant.name, "买家",
                                "店主", "店")
            assert not left, (path, left)


async def test_levels_editor_and_rules(browser: Any, order_shop: OrderShop) -> None:
    shop = order_shop
    b = await owner(browser, shop)
    r = await b.get("/admin/members/levels")
    assert r.status_code == 200 and all(n in r.text for n in LEVEL_NAMES)
    r = await b.get("/admin/members/levels/new")
    assert r.status_code == 200 and 'name="rank" value="4"' in r.text
    form = {"name": "", "rank": "4", "growth_threshold": "50000", "price_rate": "9.55", "points_multiplier": "2",
            "birthday_points": "1000", "color": "#aa0000", "description": "顶级", "free_shipping": "1",
            "priority_shipping": "1"}
    r = await b.post("/admin/members/levels", form)
    assert r.status_code == 422 and field_error(r.text, "name") == "请填写等级名称（1–20 个字符）"
    r = await b.post("/admin/members/levels", {**form, "name": "至尊会员", "price_rate": "12"})
    assert r.status_code == 422 and field_error(r.text, "price_rate")
    r = await b.post("/admin/members/levels", {**form, "name": "至尊会员", "growth_threshold": "10"})
    assert r.status_code == 422 and "成长值门槛需随等级升高而增加" in field_error(r.text, "growth_threshold")
    r = await b.post("/admin/members/levels", {**form, "name": "至尊会员"})
    assert r.status_code == 303 and flash_of((await b.follow(r)).text) == "已保存会员等级「至尊会员」"
    async with shop.runtime.db.uow(readonly=True) as s:
        top = next(lv for lv in await levels.list_levels(s, shop.scope) if lv.name == "至尊会员")
    assert (top.price_rate_bp, top.points_multiplier_bp, top.free_shipping, top.priority_shipping, top.birthday_points) == (
        9550, 20000, True, True, 1000)
    r = await b.get(f"/admin/members/levels/{top.id}")
    assert r.status_code == 200 and 'value="9.55"' in r.text
    r = await b.post(f"/admin/members/levels/{top.id}", {**form, "name": "至尊会员", "price_rate": ""})
    assert r.status_code == 303
    async with shop.runtime.db.uow(readonly=True) as s:
        assert (await levels.get_level(s, shop.scope, top.id)).price_rate_bp == 10000
    r = await b.post(f"/admin/members/levels/{top.id}/delete")
    assert r.status_code == 303 and flash_of((await b.follow(r)).text) == "已删除会员等级「至尊会员」"
    assert (await b.get(f"/admin/members/levels/{top.id}")).status_code == 404
    base = (await level_ids(shop))["普通会员"]
    r = await b.post(f"/admin/members/levels/{base}/delete")
    assert flash_of((await b.follow(r)).text) == "最低等级不能删除"

    r = await b.post("/admin/members/levels/settings", {"growth_per_yuan": "1000", "signup": "x", "first_order": "20",
                                                         "checkin": "1", "review": "5", "review_policy": "weekly",
                                                         "window_days": "365"})
    assert r.status_code == 422 and field_error(r.text, "growth_per_yuan") and field_error(r.text, "review_policy")
    r = await b.post("/admin/members/levels/settings", {"growth_per_yuan": "2", "signup": "0", "first_order": "20",
                                                         "checkin": "1", "review": "5", "review_policy": "quarterly",
                                                         "window_days": "180"})
    assert r.status_code == 303
    async with shop.runtime.db.uow(readonly=True) as s:
        got = await levels.growth_settings(s, shop.scope)
    assert (got.growth_per_yuan, got.signup, got.review_policy, got.window_days) == (2, 0, "quarterly", 180)

    with b.language("en"):
        for path in ("/admin/members/levels", "/admin/members/levels/new", f"/admin/members/levels/{base}"):
            r = await b.get(path)
            left = chinese_left(r.text, *LEVEL_NAMES, "注册即成为会员", "成长值达到 1,000", "成长值达到 5,000",
                                "成长值达到 20,000", shop.tenant.name, "店主", "店")
            assert not left, (path, left)


async def test_member_prices_page(browser: Any, order_shop: OrderShop) -> None:
    shop = order_shop
    ids = await level_ids(shop)
    await set_level(shop, "金卡会员", price_rate_bp=9000)
    b = await owner(browser, shop)
    r = await b.get("/admin/members/levels/prices")
    assert r.status_code == 200 and "还没有设置会员价" in r.text
    r = await b.get("/admin/members/levels/prices?q=白茶饼")
    sku = shop.skus[1]
    assert f'id="sku-{sku}"' in r.text and "折后 ¥35.91" in r.text
    r = await b.post(f"/admin/members/levels/prices/{sku}", {f"price_{ids['金卡会员']}": "40.00", "q": "白茶饼"})
    assert r.status_code == 422 and "会员价需为 0.01 至售价 39.90 元" in r.text
    r = await b.post(f"/admin/members/levels/prices/{sku}", {f"price_{ids['金卡会员']}": "35", "q": "白茶饼"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/members/levels/prices?q=%E7%99%BD%E8%8C%B6%E9%A5%BC"
    async with shop.runtime.db.uow(readonly=True) as s:
        assert await levels.member_prices(s, shop.scope, [sku]) == {sku: {ids["金卡会员"]: 3500}}
    r = await b.get("/admin/members/levels/prices")
    assert f'id="sku-{sku}"' in r.text and 'value="35.00"' in r.text
    assert (await b.post(f"/admin/members/levels/prices/{10**12}", {})).status_code == 404


async def test_priority_shipping_badge_on_orders(browser: Any, order_shop: OrderShop) -> None:
    shop = order_shop
    await set_level(shop, "金卡会员", priority_shipping=True)
    vip, plain = await settled_buyer(shop), await settled_buyer(shop)
    await give_growth(shop, vip.customer_id, 5000)
    fast = await lc.paid_order(shop, [(shop.skus[1], 1)], buyer=vip)
    slow = await lc.paid_order(shop, [(shop.skus[1], 1)], buyer=plain)
    b = await owner(browser, shop)
    r = await b.get("/admin/orders")
    rows = {m.group(1): m.group(2) for m in re.finditer(r'href="/admin/orders/(\d+)">\d+</a>(.*?)</tr>', r.text, re.S)}
    assert "优先发货" in rows[str(fast.id)] and "优先发货" not in rows[str(slow.id)]
    assert "priority-badge" in (await b.get(f"/admin/orders/{fast.id}")).text
    assert "priority-badge" not in (await b.get(f"/admin/orders/{slow.id}")).text
    with b.language("en"):
        assert "Priority shipping" in (await b.get(f"/admin/orders/{fast.id}")).text


async def test_read_only_staff_see_no_forms_and_cannot_post(browser: Any, order_shop: OrderShop) -> None:
    shop = order_shop
    _id, username, password = await make_staff(shop.runtime, shop.tenant, "customer_service")
    b = browser()
    await staff_sign_in(b, username, password)
    url = f"/admin/members/{shop.buyer.customer_id}"
    r = await b.get(url)
    assert r.status_code == 200 and "/growth/adjust" not in r.text and "dlg-profile" not in r.text
    assert (await b.post(f"{url}/growth/adjust", {"amount": "5", "reason": "x"})).status_code == 403
    r = await b.get("/admin/members/levels")
    assert r.status_code == 200 and "/admin/members/levels/new" not in r.text
    assert (await b.post("/admin/members/levels", {"name": "x"})).status_code == 403


# -- storefront --------------------------------------------------------------------------------------------


async def test_the_member_centre(browser: Any, order_shop: OrderShop) -> None:
    shop = order_shop
    buyer = await settled_buyer(shop)
    await give_growth(shop, buyer.customer_id, 1500)
    b = await shopper(browser, shop, buyer)
    base = f"/m/{shop.tenant.code}"
    me = await b.get(f"{base}/me")
    assert f'href="{base}/member"' in me.text
    r = await b.get(f"{base}/member")
    assert r.status_code == 200
    assert 'data-level="银卡会员"' in r.text and "再获得 3,490 升级为金卡会员" in r.text
    assert "恭喜升级为银卡会员" in r.text and f'href="{base}/member/points"' in r.text
    r = await b.post(f"{base}/member/notices/read")
    assert r.status_code == 303
    assert "全部已读" not in (await b.get(f"{base}/member")).text

    r = await b.post(f"{base}/member/profile", {"birthday": "not-a-day", "gender": "female", "region": "杭州"})
    assert r.status_code == 422 and field_error(r.text, "birthday") == "请选择正确的日期"
    r = await b.post(f"{base}/member/profile", {"birthday": "1994-06-18", "gender": "female", "region": "杭州"})
    assert r.status_code == 303 and r.headers["location"] == f"{base}/member#profile"
    page = await b.follow(r)
    assert flash_of(page.text) == "资料已保存" and "生日设置后不能修改" in page.text
    r = await b.post(f"{base}/member/profile", {"birthday": "1994-06-19", "gender": "male", "region": "杭州"})
    assert r.status_code == 409 and "生日设置后不能修改" in field_error(r.text, "birthday")
    r = await b.post(f"{base}/member/profile", {"gender": "male", "region": "宁波"})  # the rest stays editable
    assert r.status_code == 303
    m = await member(shop, buyer.customer_id)
    assert (m.birthday_md, m.gender, m.region) == ("06-18", "male", "宁波")

    r = await b.get(f"{base}/member/levels")
    assert r.status_code == 200 and all(n in r.text for n in LEVEL_NAMES) and 'aria-current="true"' in r.text
    r = await b.get(f"{base}/member/growth")
    assert r.status_code == 200 and "+1,500" in r.text and "人工调整" in r.text
    assert (await b.get(f"{base}/member/growth?before=1")).status_code == 200

    with b.language("en"):
        for path in ("/member", "/member/levels", "/member/growth", "/me"):
            r = await b.get(base + path)
            assert r.status_code == 200
            left = chinese_left(r.text, *LEVEL_NAMES, shop.tenant.name, await nickname(shop, buyer.customer_id), "宁波",
                                "恭喜升级为银卡会员", "您的成长值达到", "已升级为银卡会员", "可享", "倍积分", "生日赠",
                                "积分", "测试", "注册即成为会员", "成长值达到", "普", "银", "金", "黑", "买")
            assert not left, (path, left)


async def test_signed_out_shoppers_are_sent_to_sign_in(browser: Any, order_shop: OrderShop) -> None:
    b = browser()
    r = await b.get(f"/m/{order_shop.tenant.code}/member")
    assert r.status_code == 303 and "/login?next=" in r.headers["location"]
