"""The points-mall pages, driven through their HTML forms like a browser would.

Console: the item list with its tabs, adding a product item through the form (with the
product search and the errors a form shows), editing, stock in and out, on and off sale,
deleting, the exchange records, and what a member of staff without ``members.write`` sees.
Storefront: the mall signed out and in, an item's page, 立即兑换 (points only → my exchanges;
points + cash → the order's pay page; a double submit exchanging once; a refusal on the page
with its 4xx), my exchanges, and every page in English without Chinese left. Every response
is checked to be below 500 by the :class:`~tests._pages.Browser` hook.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests._pages import (
    Browser,
    browsers,
    chinese_left,
    field_error,
    make_staff,
    owner_browser,
    staff_sign_in,
)
from tests.members.test_mall import give_points, item_of, make_item, points_of, redemptions_of
from tests.orders.conftest import OrderShop


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make


def base(shop: OrderShop) -> str:
    return f"/m/{shop.tenant.code}"


async def shopper(browser: Callable[[], Browser], shop: OrderShop) -> Browser:
    b = browser()
    b.c.cookies.set("siyu_customer", shop.buyer.token)
    r = await b.get(f"{base(shop)}/me")
    assert r.status_code == 200 and b.csrf, r.text[:300]
    return b


def hidden(page: str, name: str) -> str:
    m = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', page)
    assert m, name
    return html.unescape(m.group(1))


def select_block(page: str, name: str) -> str:
    m = re.search(rf'<select id="f-{name}".*?</select>', page, re.S)
    assert m, name
    return m.group(0)


def item_form(**override: Any) -> dict[str, Any]:
    form = {"kind": "product", "sku_id": "", "title": "", "image": "", "description": "", "points": "800", "cash": "0",
            "stock": "20", "per_member_limit": "2", "min_level_rank": "0", "sort": "0", "on_sale": "1"}
    form.update({k: str(v) for k, v in override.items()})
    return form


# -- console ------------------------------------------------------------------------------------------------------


async def test_console_adds_edits_and_stocks_an_item(order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    b = await owner_browser(browser, shop.tenant)
    r = await b.get("/admin/members/mall")
    assert r.status_code == 200 and "积分商城还没有商品" in r.text and 'id="mall-new"' in r.text
    r = await b.get("/admin/members/mall/new", params={"sku_q": "白茶"})
    assert r.status_code == 200
    skus = select_block(r.text, "sku_id")
    assert f'<option value="{shop.skus[1]}"' in skus and f'<option value="{shop.skus[0]}"' not in skus
    assert "优惠券（开通优惠券后可用）" in r.text
    # Errors stay on the form with what was typed.
    r = await b.post("/admin/members/mall/new", item_form(sku_id=shop.skus[1], points="abc", cash="x"))
    assert r.status_code == 422
    assert field_error(r.text, "points") == "所需积分需为 1–10000000 的整数"
    assert field_error(r.text, "cash") == "加价金额需为最多两位小数的金额"
    r = await b.post("/admin/members/mall/new", item_form(sku_id=shop.skus[1], cash="99"))
    assert r.status_code == 422 and "加价金额不能高于商品售价" in field_error(r.text, "cash")
    r = await b.post("/admin/members/mall/new", item_form())
    assert r.status_code == 422 and field_error(r.text, "sku_id") == "请选择要兑换的商品规格"
    r = await b.post("/admin/members/mall/new", item_form(sku_id=shop.skus[1], cash="9.9", title="白茶饼 · 会员兑"))
    assert r.status_code == 303, r.text[:500]
    page = await b.follow(r)
    item_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert page.status_code == 200 and "已添加积分商城商品" in page.text and "白茶饼 · 会员兑" in page.text
    item = await item_of(shop, item_id)
    assert (item.points, item.cash_fen, item.stock, item.per_member_limit, item.on_sale) == (800, 990, 20, 2, True)
    # Edit: the stock field is not on the edit form; stock moves by a delta.
    r = await b.post(f"/admin/members/mall/{item_id}", item_form(sku_id=shop.skus[1], points="900", cash="0", title="白茶饼"))
    assert r.status_code == 303
    item = await item_of(shop, item_id)
    assert (item.points, item.cash_fen, item.stock, item.title) == (900, 0, 20, "白茶饼")
    r = await b.post(f"/admin/members/mall/{item_id}/stock", {"delta": "-30"})
    assert r.status_code == 409 and "调整后库存需在" in field_error(r.text, "delta")
    r = await b.post(f"/admin/members/mall/{item_id}/stock", {"delta": "abc"})
    assert r.status_code == 422
    r = await b.post(f"/admin/members/mall/{item_id}/stock", {"delta": "+15"})
    assert r.status_code == 303 and (await item_of(shop, item_id)).stock == 35
    # Off sale from the list, back on from the item page.
    r = await b.post(f"/admin/members/mall/{item_id}/status", {"on_sale": "", "next": "/admin/members/mall?tab=on"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/members/mall?tab=on"
    assert (await item_of(shop, item_id)).on_sale is False
    page = await b.get("/admin/members/mall", params={"tab": "off"})
    assert f'data-item-id="{item_id}"' in page.text
    r = await b.post(f"/admin/members/mall/{item_id}/status", {"on_sale": "1"})
    assert r.status_code == 303 and (await item_of(shop, item_id)).on_sale is True
    # Exchanged once: the records show it, and the item can no longer be deleted or change its product.
    await give_points(shop, shop.buyer.customer_id, 1000)
    from tests.members.test_mall import exchange

    await exchange(shop, item_id)
    page = await b.get("/admin/members/mall/redemptions", params={"item_id": item_id})
    assert page.status_code == 200 and (await redemptions_of(shop, shop.buyer.customer_id))[0].redemption_no in page.text
    page = await b.get(f"/admin/members/mall/{item_id}")
    assert "已有会员兑换过这个商品" in page.text and f"/admin/members/mall/{item_id}/delete" not in page.text
    r = await b.post(f"/admin/members/mall/{item_id}/delete")
    assert r.status_code == 303
    assert "不能删除" in (await b.follow(r)).text
    other = await make_item(shop, points=10)
    r = await b.post(f"/admin/members/mall/{other.id}/delete")
    assert r.status_code == 303 and r.headers["location"] == "/admin/members/mall"
    assert (await b.get(f"/admin/members/mall/{other.id}")).status_code == 404


async def test_staff_without_write_only_read(runtime: Any, order_shop: OrderShop, browser: Any) -> None:
    item = await make_item(order_shop)
    _sid, username, password = await make_staff(runtime, order_shop.tenant, "customer_service")
    b = browser()
    await staff_sign_in(b, username, password)
    r = await b.get("/admin/members/mall")
    assert r.status_code == 200 and 'id="mall-new"' not in r.text and "/status" not in r.text
    r = await b.get(f"/admin/members/mall/{item.id}")
    assert r.status_code == 200 and "调整库存" not in r.text and 'type="submit" class="btn btn-primary"' not in r.text
    assert (await b.get("/admin/members/mall/new")).status_code == 403
    assert (await b.post(f"/admin/members/mall/{item.id}/stock", {"delta": "5"})).status_code == 403
    assert (await b.post(f"/admin/members/mall/{item.id}/status", {"on_sale": ""})).status_code == 403
    assert (await item_of(order_shop, item.id)).on_sale is True


# -- storefront ---------------------------------------------------------------------------------------------------


async def test_storefront_browse_and_exchange(order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    free = await make_item(shop, points=500, stock=3, per_member_limit=1, description="纯积分兑换", sort=1)
    paid = await make_item(shop, points=200, cash_fen=990, stock=3, sort=2)
    dear = await make_item(shop, points=90_000, stock=3, sort=3)
    visitor = browser()
    r = await visitor.get(f"{base(shop)}/member/mall")
    assert r.status_code == 200 and "登录后查看积分并兑换" in r.text and f'data-item-id="{free.id}"' in r.text
    r = await visitor.get(f"{base(shop)}/member/mall/{free.id}")
    assert r.status_code == 200 and 'id="mall-exchange"' not in r.text
    b = await shopper(browser, shop)
    await give_points(shop, shop.buyer.customer_id, 1000)
    r = await b.get(f"{base(shop)}/member/mall")
    assert r.status_code == 200 and '<span class="pts" id="mall-points">1000</span>' in r.text
    page = await b.get(f"{base(shop)}/member/mall/{free.id}")
    assert page.status_code == 200 and 'id="mall-exchange"' in page.text and "兑换包邮" in page.text
    key = hidden(page.text, "idempotency_key")
    form = {"idempotency_key": key, "quantity": "1", "address_id": str(shop.buyer.address_id)}
    r = await b.post(f"{base(shop)}/member/mall/{free.id}/exchange", form)
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/member/mall/orders"
    listing = await b.follow(r)
    assert "兑换成功，商品将尽快为您发货" in listing.text and "纯积分兑换" not in listing.text
    (red,) = await redemptions_of(shop, shop.buyer.customer_id)
    assert red.redemption_no in listing.text and f"/orders/{red.order_id}" in listing.text
    # The same form again (a double tap) exchanges nothing more.
    r = await b.post(f"{base(shop)}/member/mall/{free.id}/exchange", form)
    assert r.status_code == 303
    assert len(await redemptions_of(shop, shop.buyer.customer_id)) == 1
    assert await points_of(shop, shop.buyer.customer_id) == 500
    # The limit is reached: the item page says so and the button is off.
    page = await b.get(f"{base(shop)}/member/mall/{free.id}")
    assert "每人限兑 1 件，已兑完" in page.text and 'id="mall-submit" disabled' in page.text
    # Points + cash goes on to the order's pay page.
    page = await b.get(f"{base(shop)}/member/mall/{paid.id}")
    r = await b.post(f"{base(shop)}/member/mall/{paid.id}/exchange", {
        "idempotency_key": hidden(page.text, "idempotency_key"), "quantity": "2", "address_id": str(shop.buyer.address_id)})
    assert r.status_code == 303 and re.fullmatch(rf"{base(shop)}/orders/\d+/pay", r.headers["location"]), r.headers
    assert await points_of(shop, shop.buyer.customer_id) == 100
    # A refusal comes back on the page with its status.
    page = await b.get(f"{base(shop)}/member/mall/{dear.id}")
    assert "积分不足" in page.text
    r = await b.post(f"{base(shop)}/member/mall/{dear.id}/exchange", {
        "idempotency_key": hidden(page.text, "idempotency_key"), "quantity": "1", "address_id": str(shop.buyer.address_id)})
    assert r.status_code == 409 and 'id="mall-error"' in r.text and "积分不足" in r.text
    r = await b.post(f"{base(shop)}/member/mall/{dear.id}/exchange", {"quantity": "1"})
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/member/mall/{dear.id}"
    assert (await b.get(f"{base(shop)}/member/mall/999999999")).status_code == 404
    off = await make_item(shop, on_sale=False)
    assert (await b.get(f"{base(shop)}/member/mall/{off.id}")).status_code == 404
    # Signed out, my exchanges lead to the sign-in page.
    r = await visitor.get(f"{base(shop)}/member/mall/orders")
    assert r.status_code in (302, 303) and "/login" in r.headers["location"]


async def test_the_pages_in_english_leave_no_chinese(order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    item = await make_item(shop, points=500, cash_fen=100, stock=3, per_member_limit=2, min_level_rank=1,
                           title="Tea cake", description="Limited")
    plain = await make_item(shop, points=100, stock=3, title="Sample tin")
    await give_points(shop, shop.buyer.customer_id, 1000)
    from tests.members.test_mall import exchange

    await exchange(shop, plain.id)
    staff = await owner_browser(browser, shop.tenant)
    data = (shop.tenant.name, "店主", "白茶饼", "明前龙井", "张三", "杭州市", "西湖区", "文三路 1 号", "浙江省", "白", "明", "店",
            "普通会员", "银卡会员", "金卡会员", "黑金会员", "品鉴课兑换券", "买家")  # (shop data: level names, avatar letters)
    with staff.language("en"):
        for url in ("/admin/members/mall", "/admin/members/mall?tab=off", "/admin/members/mall/new",
                    "/admin/members/mall/new?sku_q=x", f"/admin/members/mall/{item.id}", f"/admin/members/mall/{plain.id}",
                    "/admin/members/mall/redemptions"):
            r = await staff.get(url)
            assert r.status_code == 200, url
            left = chinese_left(r.text, *data)
            assert not left, (url, " ".join(sorted(left)))
        r = await staff.post("/admin/members/mall/new", item_form(sku_id=shop.skus[1], points="0"))
        assert r.status_code == 422 and not chinese_left(r.text, *data)
    b = await shopper(browser, shop)
    with b.language("en"):
        for url in ("/member/mall", f"/member/mall/{item.id}", f"/member/mall/{plain.id}", "/member/mall/orders"):
            r = await b.get(base(shop) + url)
            assert r.status_code == 200, url
            left = chinese_left(r.text, *data)
            assert not left, (url, " ".join(sorted(left)))
