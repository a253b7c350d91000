"""The paid-card pages, driven through their HTML forms like a browser would.

Console: the plan list and editor (form errors on the page with a 422, create, edit, delete
refused once bought), the purchases list with its filters, a purchase's page with the
refund form (errors, a pro-rata refund); read-only staff see no forms and get 403; another
tenant's plan and purchase answer 404; the pages in English leave no Chinese. Storefront:
the card page, 立即开通 through the sandbox cashier back to the purchase page, 立即续费, a
double tap answered with the same purchase. Every response is checked to be below 500.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from siyu.kit import clock
from siyu.kit.runtime import Runtime
from siyu.members.models import MemberCardPlan, MemberCardPurchase
from tests._pages import (
    SAME_ORIGIN,
    Browser,
    browsers,
    chinese_left,
    field_error,
    make_staff,
    staff_sign_in,
)
from tests.conftest import drain_outbox
from tests.members.test_cards import bought, level_ids, make_plan, member, purchase
from tests.orders import _lifecycle as lc
from tests.orders.conftest import Buyer, OrderShop, make_order_shop

_LOGIN_IP_KEYS = ("login-ip:staff:127.0.0.1", "login-ip:platform:127.0.0.1")


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _open_login_window(runtime: Runtime) -> None:
    await runtime.kv.delete(*_LOGIN_IP_KEYS)


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make


async def owner(browser: Callable[[], Browser], shop: OrderShop) -> Browser:
    b = browser()
    await staff_sign_in(b, shop.tenant.owner_username, shop.tenant.owner_password)
    return b


async def plan_count(shop: OrderShop) -> int:
    async with shop.runtime.db.uow(readonly=True) as s:
        return int((await s.execute(select(func.count()).select_from(MemberCardPlan).where(
            MemberCardPlan.tenant_id == shop.scope.id))).scalar_one())


# -- console ---------------------------------------------------------------------------------------------------


async def test_create_edit_and_delete_plans_through_the_forms(order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    b = await owner(browser, shop)
    page = await b.get("/admin/members/cards")
    assert page.status_code == 200 and "还没有付费会员卡" in page.text
    page = await b.get("/admin/members/cards/new")
    assert page.status_code == 200
    ids = await level_ids(shop)  # written by the editor on first use
    assert f'value="{ids[3]}"' in page.text
    form = {"name": "", "level_id": str(ids[3]), "days": "0", "price": "12.345", "gift_points": "-1",
            "description": "", "sort": "0", "on_sale": "1"}
    r = await b.post("/admin/members/cards", form)
    assert r.status_code == 422
    for field in ("name", "days", "price", "gift_points"):
        assert field_error(r.text, field), field
    assert await plan_count(shop) == 0
    form.update(name="黑金年卡", days="365", price="199", gift_points="2000", description="全场 8.8 折")
    r = await b.post("/admin/members/cards", form)
    assert r.status_code == 303, r.text[:500]
    page = await b.follow(r)
    assert "黑金年卡" in page.text and "¥199.00" in page.text
    async with shop.runtime.db.uow(readonly=True) as s:
        plan = (await s.execute(select(MemberCardPlan).where(MemberCardPlan.tenant_id == shop.scope.id))).scalar_one()
    assert (plan.price_fen, plan.days, plan.gift_points, plan.on_sale) == (19900, 365, 2000, True)
    page = await b.get(f"/admin/members/cards/{plan.id}")
    assert page.status_code == 200 and 'value="199.00"' in page.text
    r = await b.post(f"/admin/members/cards/{plan.id}", {**form, "price": "168.8", "on_sale": ""})
    assert r.status_code == 303
    async with shop.runtime.db.uow(readonly=True) as s:
        again = (await s.execute(select(MemberCardPlan).where(MemberCardPlan.id == plan.id))).scalar_one()
    assert again.price_fen == 16880 and again.on_sale is False
    r = await b.post(f"/admin/members/cards/{plan.id}", {**form, "level_id": "999999999"})
    assert r.status_code == 422 and field_error(r.text, "level_id")
    # Bought once: delete is refused with a message.
    sold = await make_plan(shop, name="已售卡")
    await bought(shop, sold)
    r = await b.post(f"/admin/members/cards/{sold}/delete", {})
    assert r.status_code == 303
    page = await b.follow(r)
    assert "不能删除" in page.text
    r = await b.post(f"/admin/members/cards/{plan.id}/delete", {})
    assert r.status_code == 303
    assert await plan_count(shop) == 1


async def test_purchases_and_a_refund_from_the_purchase_page(order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    plan = await make_plan(shop, days=30, price_fen=3000, gift_points=90)
    p = await bought(shop, plan)
    other = await shop.new_buyer()
    await bought(shop, await make_plan(shop, name="黑金季卡", days=90, price_fen=8000), other)
    clock.travel(timedelta(days=15))
    b = await owner(browser, shop)
    page = await b.get("/admin/members/cards/purchases")
    assert page.status_code == 200 and p.purchase_no in page.text
    page = await b.get(f"/admin/members/cards/purchases?plan={plan}&status=paid")
    assert p.purchase_no in page.text and page.text.count('href="/admin/members/cards/purchases/') == 1
    page = await b.get(f"/admin/members/cards/purchases?no={p.purchase_no}")
    assert page.text.count('href="/admin/members/cards/purchases/') == 1
    page = await b.get("/admin/members/cards/purchases?status=bogus&plan=abc&page=999")
    assert page.status_code == 200
    page = await b.get(f"/admin/members/cards/purchases/{p.id}")
    assert page.status_code == 200 and 'id="refund-submit"' in page.text
    assert "¥15.00" in page.text or "¥14.99" in page.text  # the unused half (a few seconds went by)
    r = await b.post(f"/admin/members/cards/purchases/{p.id}/refund", {"mode": "amount", "amount": "x", "reason": ""})
    assert r.status_code == 422 and field_error(r.text, "amount")
    r = await b.post(f"/admin/members/cards/purchases/{p.id}/refund", {"mode": "amount", "amount": "31", "reason": ""})
    assert r.status_code == 422 and field_error(r.text, "amount")
    r = await b.post(f"/admin/members/cards/purchases/{p.id}/refund", {"mode": "prorata", "reason": "顾客申请"})
    assert r.status_code == 303, r.text[:800]
    page = await b.follow(r)
    assert "已退款" in page.text and 'id="refund-list"' in page.text and 'id="refund-submit"' not in page.text
    assert (await purchase(shop, p.id)).status == "refunded"
    m = await member(shop, shop.buyer.customer_id)
    assert m.card_expires_at is not None and abs((m.card_expires_at - clock.now()).total_seconds()) < 5
    await drain_outbox(shop.runtime)
    page = await b.get(f"/admin/members/cards/purchases/{p.id}")
    assert "退款成功" in page.text


async def test_read_only_staff_and_another_tenant(order_shop: OrderShop, browser: Any, runtime: Runtime,
                                                  client: httpx.AsyncClient, tenant_factory: Any) -> None:
    shop = order_shop
    plan = await make_plan(shop)
    p = await bought(shop, plan)
    _sid, user, password = await make_staff(runtime, shop.tenant, "customer_service")
    desk = browser()
    await staff_sign_in(desk, user, password)
    page = await desk.get("/admin/members/cards")
    assert page.status_code == 200 and "/admin/members/cards/new" not in page.text
    page = await desk.get(f"/admin/members/cards/{plan}")
    assert page.status_code == 200 and 'type="submit"' not in page.text.split('id="plan-form"')[1].split("</form>")[0]
    page = await desk.get(f"/admin/members/cards/purchases/{p.id}")
    assert page.status_code == 200 and 'id="refund-submit"' not in page.text
    assert (await desk.get("/admin/members/cards/new")).status_code == 403
    assert (await desk.post(f"/admin/members/cards/{plan}", {"name": "x"})).status_code == 403
    assert (await desk.post(f"/admin/members/cards/purchases/{p.id}/refund", {"mode": "full"})).status_code == 403
    other = await make_order_shop(runtime, client, tenant_factory, "别家")
    them = await owner(browser, other)
    for url in (f"/admin/members/cards/{plan}", f"/admin/members/cards/purchases/{p.id}"):
        assert (await them.get(url)).status_code == 404, url
    assert (await them.post(f"/admin/members/cards/purchases/{p.id}/refund", {"mode": "full"})).status_code == 404
    assert (await them.post(f"/admin/members/cards/{plan}/delete", {})).status_code == 404
    for url in ("/admin/members/cards/abc", "/admin/members/cards/0", "/admin/members/cards/purchases/abc"):
        assert (await them.get(url)).status_code in (404, 422), url


async def test_the_console_pages_in_english_leave_no_chinese(order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    plan = await make_plan(shop, name="Black annual", days=30, price_fen=3000, gift_points=10)
    p = await bought(shop, plan)
    b = await owner(browser, shop)
    async with shop.runtime.db.uow(readonly=True) as s:
        from siyu.customers import service as customers_service

        nick = (await customers_service.get_customer(s, shop.scope, shop.buyer.customer_id)).nickname or ""
    data = ("普通会员", "银卡会员", "金卡会员", "黑金会员", shop.tenant.name, "店主", "店", nick)
    with b.language("en"):
        for url in ("/admin/members/cards", "/admin/members/cards/new", f"/admin/members/cards/{plan}",
                    "/admin/members/cards/purchases", "/admin/members/cards/purchases?status=paid",
                    f"/admin/members/cards/purchases/{p.id}"):
            r = await b.get(url)
            assert r.status_code == 200, url
            left = chinese_left(r.text, *data)
            assert not left, (url, " ".join(sorted(left)))
        r = await b.post("/admin/members/cards", {"name": "", "level_id": "", "days": "", "price": "", "gift_points": "",
                                                  "description": "", "sort": ""})
        assert r.status_code == 422 and "Enter a card name" in r.text
        assert not chinese_left(r.text, *data)
        r = await b.post(f"/admin/members/cards/purchases/{p.id}/refund", {"mode": "", "reason": ""})
        assert r.status_code == 422 and "Choose how to refund" in r.text
        assert not chinese_left(r.text, *data)


# -- storefront ----------------------------------------------------------------------------------------------


async def test_buy_a_card_in_the_storefront_through_the_sandbox(order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    code = shop.tenant.code
    month = await make_plan(shop, name="黑金月卡", days=30, price_fen=3000, gift_points=100)
    await make_plan(shop, rank=2, name="金卡月卡", days=30, price_fen=1500)
    b = browser()
    cid = await _store_login(b, shop)
    page = await b.get(f"/m/{code}/member/card")
    assert page.status_code == 200 and 'data-active="false"' in page.text and "黑金月卡" in page.text
    key = re.search(r'name="key" value="([^"]+)"', page.text)
    assert key is not None
    form = {"plan_id": str(month), "key": key.group(1).rsplit("-", 1)[0] + f"-{month}"}
    r = await b.post(f"/m/{code}/member/card/buy", form, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"].endswith("/pay")
    again = await b.post(f"/m/{code}/member/card/buy", form, headers=SAME_ORIGIN)  # a double tap
    assert again.headers["location"] == r.headers["location"]
    r = await b.follow(r)
    assert r.status_code == 303 and r.headers["location"].startswith("/pay/sandbox/"), r.text[:500]
    cashier = r.headers["location"]
    page = await b.get(cashier)
    assert page.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    r = await b.post(cashier, {"token": token.group(1), "outcome": "pay"}, csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303
    done = await b.follow(r)
    assert f"/m/{code}/member/card/purchases/" in done.text  # 返回商户 goes back to the purchase
    await drain_outbox(shop.runtime)
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(MemberCardPurchase).where(MemberCardPurchase.customer_id == cid))).scalars())
    assert len(rows) == 1 and rows[0].status == "paid"
    page = await b.get(f"/m/{code}/member/card/purchases/{rows[0].id}?paid=1")
    assert page.status_code == 200 and 'data-status="paid"' in page.text and "hx-get" not in page.text
    page = await b.get(f"/m/{code}/member/card")
    assert 'data-active="true"' in page.text and "立即续费" in page.text and "到期后可购买" in page.text
    with b.language("en"):
        page = await b.get(f"/m/{code}/member/card")
        left = chinese_left(page.text, "黑金月卡", "金卡月卡", "黑金会员", "金卡会员", shop.tenant.name)
        assert not left, " ".join(sorted(left))
        page = await b.get(f"/m/{code}/member/card/purchases/{rows[0].id}")
        left = chinese_left(page.text, "黑金月卡", shop.tenant.name)
        assert not left, " ".join(sorted(left))
    other = browser()
    await _store_login(other, shop, await shop.new_buyer())
    assert (await other.get(f"/m/{code}/member/card/purchases/{rows[0].id}")).status_code == 404
    assert (await b.get(f"/m/{code}/member/card/purchases/999999999")).status_code == 404
    r = await b.post(f"/m/{code}/member/card/buy", {"plan_id": "abc"}, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == f"/m/{code}/member/card"


async def _store_login(b: Browser, shop: OrderShop, buyer: Buyer | None = None) -> int:
    """Carry ``buyer``'s session cookie (the sign-in pages have their own tests); returns the customer id."""
    who = buyer or shop.buyer
    b.c.cookies.set("siyu_customer", who.token)
    page = await b.get(f"/m/{shop.tenant.code}/me")
    assert page.status_code == 200 and b.csrf, page.text[:300]
    return who.customer_id
