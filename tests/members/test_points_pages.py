"""The points pages: the console's 积分规则 (figures, saving the rules with errors shown on the
form, the latest entries), the manual adjustment posted from a member's page, who may do
what, and the storefront's 我的积分 (balance, expiring soon, check-in once a day, history
pages) — in Chinese and in English, with no 5xx anywhere."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from siyu.kit import clock
from siyu.kit.runtime import Runtime
from siyu.members import points
from tests._pages import Browser, browsers, chinese_left, field_error, make_staff, staff_sign_in
from tests.members._points import PointsShop, ledger
from tests.orders.conftest import OrderShop, make_order_shop

_LOGIN_IP_KEYS = ("login-ip:staff:127.0.0.1", "login-ip:platform:127.0.0.1")


@pytest.fixture(autouse=True)
async def _open_login_window(runtime: Runtime) -> None:
    await runtime.kv.delete(*_LOGIN_IP_KEYS)


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make


async def staff(runtime: Runtime, browser: Callable[[], Browser], shop: OrderShop, role: str = "owner") -> Browser:
    b = browser()
    if role == "owner":
        await staff_sign_in(b, shop.tenant.owner_username, shop.tenant.owner_password)
    else:
        _id, username, password = await make_staff(runtime, shop.tenant, role)
        await staff_sign_in(b, username, password)
    return b


async def shopper(browser: Callable[[], Browser], shop: OrderShop) -> Browser:
    b = browser()
    b.c.cookies.set("siyu_customer", shop.buyer.token)
    r = await b.get(f"/m/{shop.tenant.code}/me")
    assert r.status_code == 200 and b.csrf
    return b


def flash_of(page: str) -> str:
    import html

    m = re.search(r'<div class="flash flash-\w+" role="\w+">(.*?)</div>', page, re.S)
    return html.unescape(m.group(1).strip()) if m else ""


def pshop(shop: OrderShop) -> PointsShop:
    return PointsShop(shop.runtime, shop.scope, shop.tenant.id)


def rules_form(**over: str) -> dict[str, str]:
    form = {"earn_per_yuan": "2", "award_signup": "50", "award_first_order": "300", "award_review": "10",
            "checkin_points": "5", "checkin_streak_days": "7", "checkin_streak_bonus": "30", "redeem_enabled": "1",
            "points_per_yuan": "100", "max_share_pct": "30", "min_redeem_points": "0", "expiry_mode": "rolling",
            "expiry_days": "180", "notice_days": "15"}
    form.update(over)
    return form


# -- console -----------------------------------------------------------------------------------------------------


async def test_rules_page_saves_and_shows_errors(runtime: Runtime, order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    b = await staff(runtime, browser, shop)
    page = await b.get("/admin/members/points")
    assert page.status_code == 200 and 'id="points-rules"' in page.text and 'aria-current="page">积分规则' in page.text
    r = await b.post("/admin/members/points", rules_form(points_per_yuan="0", max_share_pct="101", expiry_mode="weekly",
                                                         award_review="x"))
    assert r.status_code == 422
    assert field_error(r.text, "points_per_yuan") == "需为 1–100000 的整数"
    assert field_error(r.text, "max_share_pct") == "需为 0–100 的数字，最多两位小数"
    assert field_error(r.text, "award_review") == "需为 0–10000000 的整数"
    assert field_error(r.text, "expiry_mode") == "请选择积分有效期"
    assert 'value="x"' in r.text  # what was typed stays in the form
    r = await b.post("/admin/members/points", rules_form())
    assert r.status_code == 303
    page = await b.follow(r)
    assert flash_of(page.text) == "已保存积分规则"
    async with runtime.db.uow(readonly=True) as s:
        saved = await points.rules(s, shop.scope)
    assert (saved.earn_per_yuan, saved.max_share_bp, saved.expiry_mode, saved.expiry_days, saved.notice_days) == (
        2, 3000, "rolling", 180, 15)
    assert saved.award_points("first_order") == 300 and saved.redeem_enabled
    r = await b.post("/admin/members/points", {k: v for k, v in rules_form(max_share_pct="25.5").items()
                                               if k != "redeem_enabled"})
    async with runtime.db.uow(readonly=True) as s:
        saved = await points.rules(s, shop.scope)
    assert not saved.redeem_enabled and saved.max_share_bp == 2550
    assert 'value="25.5"' in (await b.get("/admin/members/points")).text


async def test_adjust_from_the_member_page(runtime: Runtime, order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    cid = shop.buyer.customer_id
    b = await staff(runtime, browser, shop)
    url = f"/admin/members/{cid}/points/adjust"
    r = await b.post(url, {"amount": "300", "reason": "线下活动补发"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/members/{cid}#points"
    r = await b.post(url, {"amount": "-500", "reason": "扣多了", "next": f"/admin/members/{cid}?tab=points"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/members/{cid}?tab=points"
    r = await b.post(url, {"amount": "-500", "reason": "扣多了", "next": "https://evil.example/"})
    assert r.headers["location"] == f"/admin/members/{cid}#points"
    r = await b.post(url, {"amount": "-500", "reason": "扣多了", "next": "/admin/members/999"})
    assert r.headers["location"] == f"/admin/members/{cid}#points"
    r = await b.post(url, {"amount": "100", "reason": "扣回", "direction": "subtract"})
    assert r.status_code == 303
    for bad in ({"amount": "abc", "reason": "x"}, {"amount": "0", "reason": "x"}, {"amount": "5", "reason": " "}):
        assert (await b.post(url, bad)).status_code == 303
    st = await ledger(runtime, shop.scope, cid)
    st.check()
    assert [e.amount for e in st.entries if e.kind == "adjust"] == [300, -100]
    page = await b.get("/admin/members/points")
    assert "线下活动补发" in page.text and "扣回" in page.text


async def test_who_may_read_and_change(runtime: Runtime, order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    cs = await staff(runtime, browser, shop, "customer_service")  # members.read only
    page = await cs.get("/admin/members/points")
    assert page.status_code == 200 and "修改积分规则需要" in page.text
    assert (await cs.post("/admin/members/points", rules_form())).status_code == 403
    assert (await cs.post(f"/admin/members/{shop.buyer.customer_id}/points/adjust",
                          {"amount": "5", "reason": "x"})).status_code == 403
    fin = await staff(runtime, browser, shop, "finance")  # no members permission at all
    assert (await fin.get("/admin/members/points")).status_code == 403
    op = await staff(runtime, browser, shop, "operator")  # members.*
    assert (await op.post(f"/admin/members/{shop.buyer.customer_id}/points/adjust",
                          {"amount": "5", "reason": "运营补发"})).status_code == 303
    # a forged form is refused
    r = await op.post("/admin/members/points", rules_form(), csrf=False)
    assert r.status_code == 403


async def test_another_tenants_member_is_404(runtime: Runtime, client: Any, tenant_factory: Any, order_shop: OrderShop,
                                             browser: Any) -> None:
    other = await make_order_shop(runtime, client, tenant_factory, name="别家店")
    b = await staff(runtime, browser, order_shop)
    r = await b.post(f"/admin/members/{other.buyer.customer_id}/points/adjust", {"amount": "5", "reason": "跨店"})
    assert r.status_code == 404
    assert (await ledger(runtime, other.scope, other.buyer.customer_id)).entries == []


# -- storefront ----------------------------------------------------------------------------------------------------


async def test_my_points_checkin_and_history(runtime: Runtime, order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    await pshop(shop).save_rules(checkin_points=7, awards={"signup": 0}, notice_days=30)
    cid = shop.buyer.customer_id
    async with runtime.db.uow() as s:
        await points.earn(s, shop.scope, cid, 40, kind="earn", source_key=f"p:{cid}:1", expires_at=clock.now() + timedelta(days=9))
        for i in range(25):
            await points.earn(s, shop.scope, cid, 1, kind="review", source_key=f"p:{cid}:r{i}")
    b = await shopper(browser, shop)
    base = f"/m/{shop.tenant.code}/member/points"
    page = await b.get(base)
    assert page.status_code == 200
    assert '<div class="pt-balance">65</div>' in page.text
    assert "40 积分将于" in page.text and 'id="checkin-button"' in page.text and "今天签到可得 7 积分" in page.text
    r = await b.post(f"{base}/checkin")
    assert r.status_code == 303
    page = await b.follow(r)
    assert flash_of(page.text) == "签到成功，连续 1 天，获得 7 积分"
    assert "今日已签到，已连续签到 1 天" in page.text and 'id="checkin-button"' not in page.text
    r = await b.post(f"{base}/checkin")
    assert flash_of((await b.follow(r)).text) == "今天已经签到过了，明天再来吧"
    assert (await ledger(runtime, shop.scope, cid)).member_points == 72
    # 27 entries: 20 on the first page, the rest behind "older"
    assert page.text.count('<li data-kind="') == 20
    m = re.search(r'href="([^"]*\?before_id=\d+)"', page.text)
    assert m
    older = await b.get(m.group(1).replace("&amp;", "&"))
    assert older.status_code == 200 and older.text.count('<li data-kind="') == 7 and "回到最新" in older.text
    # signed out: the sign-in page, not the points
    anon = browser()
    r = await anon.get(base)
    assert r.status_code in (302, 303, 401) or "登录" in r.text


async def test_pages_in_english(runtime: Runtime, order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    cid = shop.buyer.customer_id
    async with runtime.db.uow() as s:
        await points.earn(s, shop.scope, cid, 40, kind="earn", source_key=f"e:{cid}", expires_at=clock.now() + timedelta(days=5),
                          note="")
        await points.spend(s, shop.scope, cid, 10, kind="spend", source_key=f"s:{cid}", note="")
    b = await staff(runtime, browser, shop)
    async with runtime.db.uow(readonly=True) as s:
        from siyu.customers import service as customers_service

        nickname = (await customers_service.get_customer(s, shop.scope, cid)).nickname or ""
    data = (nickname, shop.tenant.name, "店主", "店")  # (the avatar shows the first character of a name)
    with b.language("en"):
        r = await b.post(f"/admin/members/{cid}/points/adjust", {"amount": "3", "reason": "fix"})
        assert r.status_code == 303
        page = await b.get("/admin/members/points")
        assert "3 points added" in page.text
        assert page.status_code == 200 and "Points rules" in page.text
        left = chinese_left(page.text, *data)
        assert not left, (" ".join(sorted(left)), [ln for ln in page.text.splitlines() if any(x in ln for x in left)][:5])
        r = await b.post("/admin/members/points", rules_form(points_per_yuan="0"))
        assert r.status_code == 422 and "A whole number from 1 to 100000" in r.text
    s_b = await shopper(browser, shop)
    with s_b.language("en"):
        page = await s_b.get(f"/m/{shop.tenant.code}/member/points")
        assert page.status_code == 200 and "My points" in page.text
        left = chinese_left(page.text, *data)
        assert not left, " ".join(sorted(left))
