"""The storefront's order pages, driven through their HTML forms like a browser would.

购物车 (add from the product page, stepper, ticks, remove, unavailable lines), 确认订单 (from
the cart and "buy now", choosing and adding an address, the idempotency key surviving a double
submit, no address and out-of-stock errors on the page with a 4xx), paying through the sandbox
cashier, 我的订单 and the order page (countdown, cancel, parcels with tracking numbers,
确认收货), after-sales (request, return parcel, withdraw, the list), another shopper's objects
answering 404, and the English pages. Every response is checked to be below 500 by the
:class:`~tests._pages.Browser` hook.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from siyu.kit.runtime import Runtime
from siyu.orders.models import AfterSale, CartItem, Order
from tests._pages import SAME_ORIGIN, Browser, browsers, chinese_left, field_error
from tests.conftest import drain_outbox
from tests.orders._lifecycle import sandbox_notifications_into, ship
from tests.orders.conftest import Buyer, OrderShop, make_buyer, make_order_shop


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in sandbox_notifications_into(app, runtime):
        yield c


# -- helpers --------------------------------------------------------------------------------------------


def base(shop: OrderShop) -> str:
    return f"/m/{shop.tenant.code}"


async def signed_in(browser: Callable[[], Browser], shop: OrderShop, buyer: Buyer | None = None) -> Browser:
    """A browser carrying ``buyer``'s session cookie (the sign-in pages have their own tests)."""
    b = browser()
    b.c.cookies.set("siyu_customer", (buyer or shop.buyer).token)
    r = await b.get(f"{base(shop)}/me")
    assert r.status_code == 200 and b.csrf, r.text[:300]
    return b


async def product_id(shop: OrderShop, sku_id: int) -> int:
    from siyu.catalog import service as catalog_service

    async with shop.runtime.db.uow(readonly=True) as s:
        return (await catalog_service.get_sku(s, shop.scope, sku_id)).product_id


async def add(b: Browser, shop: OrderShop, sku_id: int, qty: int = 1) -> httpx.Response:
    pid = await product_id(shop, sku_id)
    r = await b.post(f"{base(shop)}/cart/add", {"sku_id": sku_id, "quantity": qty, "next": f"{base(shop)}/p/{pid}"})
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/p/{pid}", r.text[:300]
    return r


async def cart_items(shop: OrderShop, buyer: Buyer | None = None) -> dict[int, tuple[int, bool]]:
    """sku_id → (quantity, selected) of the buyer's cart."""
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(CartItem.sku_id, CartItem.quantity, CartItem.selected).where(
            CartItem.customer_id == (buyer or shop.buyer).customer_id))).all()
    return {int(a): (int(b), bool(c)) for a, b, c in rows}


async def item_id(shop: OrderShop, sku_id: int, buyer: Buyer | None = None) -> int:
    async with shop.runtime.db.uow(readonly=True) as s:
        return int((await s.execute(select(CartItem.id).where(
            CartItem.customer_id == (buyer or shop.buyer).customer_id, CartItem.sku_id == sku_id))).scalar_one())


async def order_count(shop: OrderShop, buyer: Buyer | None = None) -> int:
    async with shop.runtime.db.uow(readonly=True) as s:
        return int((await s.execute(select(func.count()).select_from(Order).where(
            Order.customer_id == (buyer or shop.buyer).customer_id))).scalar_one())


def hidden(page: str, name: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(rf'<input type="hidden" name="{name}" value="([^"]*)"', page)]


def checkout_form(page: str, **override: Any) -> dict[str, Any]:
    """The fields 提交订单 posts (hidden ones as rendered, buyer_note empty)."""
    form: dict[str, Any] = {"idempotency_key": hidden(page, "idempotency_key")[0], "line": hidden(page, "line"),
                            "from_cart": hidden(page, "from_cart")[0], "address_id": hidden(page, "address_id")[0],
                            "buyer_note": ""}
    form.update(override)
    return form


async def place_through_pages(b: Browser, shop: OrderShop, sku_id: int, qty: int = 1, note: str = "") -> int:
    """Buy now → 提交订单; returns the order id (the browser stops at the pay redirect)."""
    page = await b.get(f"{base(shop)}/checkout", params={"sku_id": sku_id, "qty": qty})
    assert page.status_code == 200, page.text[:500]
    r = await b.post(f"{base(shop)}/checkout", checkout_form(page.text, buyer_note=note))
    assert r.status_code == 303, r.text[:800]
    m = re.fullmatch(rf"{base(shop)}/orders/(\d+)/pay", r.headers["location"])
    assert m, r.headers["location"]
    return int(m.group(1))


async def pay_on_cashier(b: Browser, shop: OrderShop, order_id: int, outcome: str = "pay") -> str:
    """Follow 去支付 to the sandbox cashier and press a button there; returns the cashier URL."""
    r = await b.get(f"{base(shop)}/orders/{order_id}/pay")
    assert r.status_code == 303 and r.headers["location"].startswith("/pay/sandbox/"), r.text[:500]
    cashier = r.headers["location"]
    page = await b.get(cashier)
    assert page.status_code == 200
    assert f'href="http://testserver{base(shop)}/orders/{order_id}?paid=1"' not in page.text  # shown after paying
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    r = await b.post(cashier, {"token": token.group(1), "outcome": outcome}, csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303
    done = await b.follow(r)
    assert f"{base(shop)}/orders/{order_id}?paid=1" in done.text  # 返回商户 goes back to the order
    await drain_outbox(shop.runtime)
    return cashier


async def paid_order(b: Browser, shop: OrderShop, sku_id: int | None = None, qty: int = 1) -> int:
    oid = await place_through_pages(b, shop, sku_id or shop.skus[0], qty)
    await pay_on_cashier(b, shop, oid)
    assert (await shop.order(oid)).status == "paid"
    return oid


def flash_text(page: str) -> str:
    m = re.search(r'<div class="flash flash-\w+" role="\w+"[^>]*>(.*?)</div>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", m.group(1))).strip() if m else ""


# -- 购物车 ------------------------------------------------------------------------------------------------


async def test_cart_for_a_visitor_and_an_empty_cart(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    b = browser()
    r = await b.get(f"{base(shop)}/cart")
    assert r.status_code == 200 and "购物车空空如也" in r.text and "登录后可以查看购物车里的商品" in r.text
    assert f'href="{base(shop)}/login?next={base(shop)}/cart"' in r.text
    assert f'class="tab active" href="{base(shop)}/cart"' in r.text
    # A visitor's 加入购物车 goes to sign-in and then back to the product.
    pid = await product_id(shop, shop.skus[0])
    r = await b.post(f"{base(shop)}/cart/add", {"sku_id": shop.skus[0], "next": f"{base(shop)}/p/{pid}"}, csrf=False)
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/login?next={base(shop)}/p/{pid}"

    me = await signed_in(browser, shop)
    r = await me.get(f"{base(shop)}/cart")
    assert r.status_code == 200 and "去挑几件喜欢的商品吧" in r.text and "cart-form" not in r.text


async def test_product_page_buttons_reach_the_cart_and_checkout(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    b = await signed_in(browser, shop)
    pid = await product_id(shop, shop.skus[0])
    page = await b.get(f"{base(shop)}/p/{pid}")
    assert page.status_code == 200
    assert "购物车与下单即将开放" not in page.text
    assert f'action="{base(shop)}/cart/add"' in page.text and f'action="{base(shop)}/checkout"' in page.text
    assert f'name="sku_id" value="{shop.skus[0]}"' in page.text
    r = await b.post(f"{base(shop)}/cart/add", {"sku_id": shop.skus[0], "quantity": 2, "next": f"{base(shop)}/p/{pid}"})
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/p/{pid}"
    back = await b.follow(r)
    assert "已加入购物车" in flash_text(back.text)
    assert await cart_items(shop) == {shop.skus[0]: (2, True)}
    # Adding again adds to the line; a bad SKU or quantity comes back as a message.
    await add(b, shop, shop.skus[0], 1)
    assert await cart_items(shop) == {shop.skus[0]: (3, True)}
    r = await b.post(f"{base(shop)}/cart/add", {"sku_id": "x", "next": f"{base(shop)}/p/{pid}"})
    assert "请先选择商品规格" in flash_text((await b.follow(r)).text)
    r = await b.post(f"{base(shop)}/cart/add", {"sku_id": 10**12, "next": f"{base(shop)}/p/{pid}"})
    assert "商品规格不存在" in flash_text((await b.follow(r)).text)
    r = await b.post(f"{base(shop)}/cart/add", {"sku_id": shop.skus[0], "quantity": 0, "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/cart"
    # The cart page shows the line with its price, and the total of the ticked lines.
    r = await b.get(f"{base(shop)}/cart")
    assert r.status_code == 200 and f'id="cart-item-{await item_id(shop, shop.skus[0])}"' in r.text
    assert '<span class="price" id="cart-total">384.00</span>' in r.text  # 3 × ¥128.00
    assert "去结算 (3)" in r.text


async def test_cart_stepper_ticks_and_remove(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    b = await signed_in(browser, shop)
    a, w = shop.skus
    await add(b, shop, a)
    await add(b, shop, w, 2)
    ia, iw = await item_id(shop, a), await item_id(shop, w)
    cart = await b.get(f"{base(shop)}/cart")
    form = {"selection": "1", "selected": [ia, iw], f"qty_{ia}": 1, f"qty_{iw}": 2}

    r = await b.post(f"{base(shop)}/cart/update", {**form, "op": f"inc:{ia}"})
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/cart"
    assert (await cart_items(shop))[a] == (2, True)
    r = await b.post(f"{base(shop)}/cart/update", {**form, f"qty_{ia}": 2, "op": f"dec:{iw}"})
    assert (await cart_items(shop))[w] == (1, True)
    # A typed quantity is saved by any button (Enter submits the plain update).
    await b.post(f"{base(shop)}/cart/update", {**form, f"qty_{ia}": 7, f"qty_{iw}": 1, "op": "update"})
    assert (await cart_items(shop))[a] == (7, True)
    # Unticking a line takes it out of the total.
    await b.post(f"{base(shop)}/cart/update", {"selection": "1", "selected": [iw], f"qty_{ia}": 7, f"qty_{iw}": 1})
    assert await cart_items(shop) == {a: (7, False), w: (1, True)}
    cart = await b.get(f"{base(shop)}/cart")
    assert '<span class="price" id="cart-total">39.90</span>' in cart.text
    # Another shopper's item id changes nothing; dec below 1 does nothing.
    await b.post(f"{base(shop)}/cart/update", {"op": "remove:999999999"})
    await b.post(f"{base(shop)}/cart/update", {"op": f"dec:{iw}", f"qty_{iw}": 1})
    assert await cart_items(shop) == {a: (7, False), w: (1, True)}
    # 去结算 with nothing ticked says so; remove takes the line out.
    await b.post(f"{base(shop)}/cart/update", {"selection": "1", f"qty_{ia}": 7, f"qty_{iw}": 1})
    r = await b.post(f"{base(shop)}/cart/update", {"op": "checkout"})
    assert r.headers["location"] == f"{base(shop)}/checkout?from=cart"
    page = await b.follow(r)
    assert page.status_code == 303 and page.headers["location"] == f"{base(shop)}/cart"
    assert "请先勾选要结算的商品" in flash_text((await b.follow(page)).text)
    r = await b.post(f"{base(shop)}/cart/update", {"op": f"remove:{ia}"})
    assert "已从购物车删除" in flash_text((await b.follow(r)).text)
    assert await cart_items(shop) == {w: (1, False)}
    # Posting the cart form needs the page's CSRF token.
    r = await b.post(f"{base(shop)}/cart/update", {"op": f"remove:{iw}"}, csrf=False)
    assert r.status_code == 403


async def test_unavailable_lines_are_greyed_and_can_be_cleared(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    from siyu.catalog import service as catalog_service

    shop = order_shop
    b = await signed_in(browser, shop)
    gone = await shop.make_sku(price_fen=1000, stock=5, title="Off the shelf")
    short = await shop.make_sku(price_fen=2000, stock=2, title="Nearly gone")
    await add(b, shop, gone)
    await add(b, shop, short, 2)
    await add(b, shop, shop.skus[0])
    async with shop.runtime.db.uow() as s:
        await catalog_service.change_status(s, shop.scope, await product_id(shop, gone), "unpublish")
    await shop.place([(short, 1)], buyer=await shop.new_buyer())  # one of the two left is now held
    r = await b.get(f"{base(shop)}/cart")
    ig, ish = await item_id(shop, gone), await item_id(shop, short)
    item = re.search(rf'<div class="cart-item off" id="cart-item-{ig}".*?</div>\s*</div>\s*</div>', r.text, re.S)
    assert item and "已下架" in item.group(0) and "disabled" in item.group(0)
    item = re.search(rf'<div class="cart-item off" id="cart-item-{ish}".*?</div>\s*</div>\s*</div>', r.text, re.S)
    assert item and "库存不足，仅剩 1 件" in item.group(0)
    assert '<span class="price" id="cart-total">128.00</span>' in r.text  # only the buyable line counts
    # Lowering the short line's quantity makes it buyable again.
    await b.post(f"{base(shop)}/cart/update", {f"qty_{ish}": 1})
    r = await b.get(f"{base(shop)}/cart")
    assert f'<div class="cart-item" id="cart-item-{ish}"' in r.text
    r = await b.post(f"{base(shop)}/cart/update", {"op": "clear_off"})
    assert "已清除失效商品" in flash_text((await b.follow(r)).text)
    assert set(await cart_items(shop)) == {short, shop.skus[0]}


# -- 确认订单 ----------------------------------------------------------------------------------------------


async def test_checkout_from_the_cart(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    await shop.flat_freight(800)
    b = await signed_in(browser, shop)
    a, w = shop.skus
    await add(b, shop, a)
    await add(b, shop, w, 2)
    # Through htmx (the cart form is boosted) 去结算 is a full-page redirect.
    r = await b.post(f"{base(shop)}/cart/update", {"op": "checkout"}, headers={"hx-request": "true"})
    assert r.status_code == 204 and r.headers["hx-redirect"] == f"{base(shop)}/checkout?from=cart"
    r = await b.post(f"{base(shop)}/cart/update", {"op": "checkout"})
    page = await b.follow(r)
    assert page.status_code == 200, page.text[:500]
    for text in ("确认订单", "张三", "文三路 1 号", "¥207.80", "¥8.00", "¥215.80", "提交订单", "明前龙井", "白茶饼"):
        assert text in page.text, text
    assert sorted(hidden(page.text, "line")) == sorted([f"{a}:1", f"{w}:2"])
    assert hidden(page.text, "from_cart") == ["1"] and hidden(page.text, "address_id") == [str(shop.buyer.address_id)]
    key = hidden(page.text, "idempotency_key")[0]
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,64}", key)
    assert hidden((await b.get(f"{base(shop)}/checkout?from=cart")).text, "idempotency_key")[0] != key

    form = checkout_form(page.text, buyer_note="  请尽快发货  ")
    r = await b.post(f"{base(shop)}/checkout", form)
    assert r.status_code == 303, r.text[:800]
    oid = int(r.headers["location"].split("/")[-2])
    order = await shop.order(oid)
    assert (order.status, order.payable_fen, order.freight_fen, order.buyer_note) == ("pending_payment", 21580, 800, "请尽快发货")
    assert await cart_items(shop) == {}  # the ordered lines left the cart
    # A double submit (same page, same key) answers with the same order.
    r = await b.post(f"{base(shop)}/checkout", form)
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/orders/{oid}/pay"
    assert await order_count(shop) == 1
    # Going to pay lands on the sandbox cashier, which returns to the order.
    r = await b.get(f"{base(shop)}/orders/{oid}/pay")
    assert r.status_code == 303 and r.headers["location"].startswith("/pay/sandbox/")
    cashier = await b.follow(r)
    assert "¥215.80" in cashier.text and "确认支付" in cashier.text


async def test_buy_now_and_choosing_an_address(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    from siyu.customers import service as customers_service
    from siyu.customers.schemas import AddressIn

    shop = order_shop
    async with shop.runtime.db.uow() as s:
        other = await customers_service.create_address(s, shop.scope, shop.buyer.customer_id, AddressIn(
            receiver_name="李四", phone="13900001111", province_code="11", city="北京市", district="海淀区", detail="中关村大街 5 号"))
    b = await signed_in(browser, shop)
    url = f"{base(shop)}/checkout?sku_id={shop.skus[1]}&qty=3"
    page = await b.get(url)
    assert page.status_code == 200 and "张三" in page.text and "更换收货地址" in page.text
    assert hidden(page.text, "line") == [f"{shop.skus[1]}:3"] and hidden(page.text, "from_cart") == [""]
    assert f'href="{base(shop)}/checkout?sku_id={shop.skus[1]}&amp;qty=3&amp;address_id={other.id}"' in page.text
    page = await b.get(f"{url}&address_id={other.id}")
    assert "中关村大街 5 号" in page.text and hidden(page.text, "address_id") == [str(other.id)]
    r = await b.post(f"{base(shop)}/checkout", checkout_form(page.text))
    oid = int(r.headers["location"].split("/")[-2])
    order = await shop.order(oid)
    assert order.address["detail"] == "中关村大街 5 号" and order.payable_fen == 3 * 3990
    assert await cart_items(shop) == {}  # buy now never touched the cart
    # Nonsense in the query falls back to the cart with a message.
    r = await b.get(f"{base(shop)}/checkout?sku_id=abc")
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/cart"


async def test_checkout_without_an_address(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    buyer = await shop.new_buyer(province_code=None)
    b = await signed_in(browser, shop, buyer)
    url = f"{base(shop)}/checkout?sku_id={shop.skus[0]}&qty=1"
    page = await b.get(url)
    assert page.status_code == 200 and "还没有收货地址，添加后才能下单" in page.text
    assert re.search(r'id="place-order"\s+disabled', page.text)
    r = await b.post(f"{base(shop)}/checkout", checkout_form(page.text, buyer_note="放门口"))
    assert r.status_code == 422 and "请选择收货地址" in r.text
    assert 'value="放门口"' in r.text  # nothing typed is lost
    assert hidden(r.text, "idempotency_key") == hidden(page.text, "idempotency_key")
    assert await order_count(shop, buyer) == 0
    # 新增收货地址 from the checkout comes back to it with the new address chosen.
    add_url = re.search(r'href="([^"]*/checkout/address\?next=[^"]+)"', page.text)
    assert add_url
    form_page = await b.get(html.unescape(add_url.group(1)))
    assert form_page.status_code == 200 and hidden(form_page.text, "next") == [url]
    r = await b.post(f"{base(shop)}/checkout/address", {"next": url, "receiver_name": "王五", "phone": "123"})
    assert r.status_code == 422 and "请输入正确的 11 位手机号" in r.text
    r = await b.post(f"{base(shop)}/checkout/address", {
        "next": url, "receiver_name": "王五", "phone": "13700001234", "province_code": "31", "city": "上海市",
        "district": "静安区", "detail": "南京西路 1266 号", "is_default": "1"})
    assert r.status_code == 303 and r.headers["location"].startswith(url + "&address_id="), r.headers["location"]
    page = await b.follow(r)
    assert "南京西路 1266 号" in page.text and "收货地址已保存" in flash_text(page.text)
    assert not re.search(r'id="place-order"\s+disabled', page.text)
    # Only this shop's pages are places to go back to.
    r = await b.post(f"{base(shop)}/checkout/address", {"next": "https://evil.example/", "receiver_name": "王五"})
    assert 'name="next" value="/m/' in r.text


async def test_out_of_stock_at_checkout(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    scarce = await shop.make_sku(price_fen=990, stock=1, title="Last One")
    b = await signed_in(browser, shop)
    page = await b.get(f"{base(shop)}/checkout?sku_id={scarce}&qty=2")
    assert page.status_code == 200 and "库存不足，仅剩 1 件" in page.text
    r = await b.post(f"{base(shop)}/checkout", checkout_form(page.text, buyer_note="gift wrap"))
    assert r.status_code == 409, r.text[:500]
    assert 'id="checkout-error"' in r.text and "Last One：库存不足，仅剩 1 件" in html.unescape(r.text)
    assert 'value="gift wrap"' in r.text
    assert await order_count(shop) == 0
    # An SKU taken off sale between the page and the submit: the page says which.
    from siyu.catalog import service as catalog_service

    page = await b.get(f"{base(shop)}/checkout?sku_id={scarce}&qty=1")
    async with shop.runtime.db.uow() as s:
        await catalog_service.change_status(s, shop.scope, await product_id(shop, scarce), "unpublish")
    r = await b.post(f"{base(shop)}/checkout", checkout_form(page.text))
    assert r.status_code == 409 and "Last One：已下架" in html.unescape(r.text)
    assert await order_count(shop) == 0
    # A tampered form goes back to the cart; a control character in the note is refused.
    r = await b.post(f"{base(shop)}/checkout", {"line": "x:y", "idempotency_key": "k"})
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/cart"
    page = await b.get(f"{base(shop)}/checkout?sku_id={shop.skus[0]}&qty=1")
    r = await b.post(f"{base(shop)}/checkout", checkout_form(page.text, buyer_note="a\x07b"))
    assert r.status_code == 422 and "订单备注不能包含特殊字符" in r.text


# -- paying and 我的订单 -------------------------------------------------------------------------------------


async def test_pay_through_the_sandbox_and_see_the_order(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    b = await signed_in(browser, shop)
    oid = await place_through_pages(b, shop, shop.skus[0], 2)
    page = await b.get(f"{base(shop)}/orders/{oid}")
    assert page.status_code == 200
    for text in ("待付款", "剩余支付时间", 'id="pay-order"', 'id="cancel-order"', "提交订单", "明前龙井"):
        assert text in page.text, text
    order = await shop.order(oid)
    assert order.pay_deadline is not None and order.pay_deadline.isoformat() in page.text

    cashier = await pay_on_cashier(b, shop, oid)
    assert cashier.startswith("/pay/sandbox/")
    page = await b.get(f"{base(shop)}/orders/{oid}?paid=1")
    assert 'data-status="paid"' in page.text and "待发货" in page.text and "支付成功" in page.text
    assert "hx-trigger" not in page.text  # paid: nothing left to wait for
    assert 'id="pay-order"' not in page.text and 'id="cancel-order"' not in page.text
    # 我的订单: in 全部 and 待发货, not in 待付款; the 我的 page counts it.
    for tab, present in (("", True), ("?tab=to_ship", True), ("?tab=pending_payment", False), ("?tab=nonsense", True)):
        r = await b.get(f"{base(shop)}/orders{tab}")
        assert r.status_code == 200 and (f'data-order-no="{order.order_no}"' in r.text) is present, tab
    me = await b.get(f"{base(shop)}/me")
    assert re.search(r'data-key="to_ship"><strong>1</strong>', me.text) and f'href="{base(shop)}/orders"' in me.text
    # Paying twice is refused with a message on the order page.
    r = await b.post(f"{base(shop)}/orders/{oid}/pay")
    assert r.status_code == 303 and "订单已不能支付" in flash_text((await b.follow(r)).text)


async def test_the_order_page_waits_for_the_payment_result(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    from tests.orders._lifecycle import sandbox_pay

    shop = order_shop
    b = await signed_in(browser, shop)
    oid = await place_through_pages(b, shop, shop.skus[0])
    r = await b.get(f"{base(shop)}/orders/{oid}/pay")
    out_trade_no = r.headers["location"].rsplit("/", 1)[1]
    await sandbox_pay(shop.runtime, out_trade_no)  # paid at the gateway; the notification is still on its way
    page = await b.get(f"{base(shop)}/orders/{oid}?paid=1")
    assert "正在确认支付结果" in page.text
    assert f'hx-get="{base(shop)}/orders/{oid}?paid=1&amp;n=1"' in page.text
    assert "hx-trigger" not in (await b.get(f"{base(shop)}/orders/{oid}?paid=1&n=30")).text  # it gives up in the end
    await drain_outbox(shop.runtime)
    page = await b.get(f"{base(shop)}/orders/{oid}?paid=1&n=1")
    assert 'data-status="paid"' in page.text and "hx-trigger" not in page.text


async def test_cancel_an_unpaid_order(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    b = await signed_in(browser, shop)
    oid = await place_through_pages(b, shop, shop.skus[1])
    await b.get(f"{base(shop)}/orders/{oid}")
    r = await b.post(f"{base(shop)}/orders/{oid}/cancel")
    assert r.status_code == 303
    page = await b.follow(r)
    assert "订单已取消" in flash_text(page.text) and 'data-status="cancelled"' in page.text and "买家取消" in page.text
    assert (await shop.order(oid)).status == "cancelled"
    r = await b.post(f"{base(shop)}/orders/{oid}/cancel")
    assert "不能变为" in flash_text((await b.follow(r)).text)
    r = await b.get(f"{base(shop)}/orders/{oid}/pay")
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/orders/{oid}"


async def test_parcels_tracking_and_confirm_receipt(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    b = await signed_in(browser, shop)
    oid = await paid_order(b, shop, shop.skus[0], 2)
    await ship(shop, oid, "SF1234567890")
    page = await b.get(f"{base(shop)}/orders/{oid}")
    assert 'data-status="shipped"' in page.text and "待收货" in page.text
    assert "顺丰" in page.text and "SF1234567890" in page.text and "明前龙井 ×2" in page.text
    assert 'id="confirm-receipt"' in page.text
    r = await b.get(f"{base(shop)}/orders?tab=to_receive")
    assert f'action="{base(shop)}/orders/{oid}/confirm"' in r.text
    r = await b.post(f"{base(shop)}/orders/{oid}/confirm")
    page = await b.follow(r)
    assert "已确认收货，交易完成" in flash_text(page.text) and 'data-status="completed"' in page.text
    assert 'id="confirm-receipt"' not in page.text and "买家确认收货" in page.text
    r = await b.post(f"{base(shop)}/orders/{oid}/confirm")
    assert r.status_code == 303 and flash_text((await b.follow(r)).text)
    assert f'data-order-no="{(await shop.order(oid)).order_no}"' in (await b.get(f"{base(shop)}/orders?tab=completed")).text


# -- 售后 ---------------------------------------------------------------------------------------------------


async def test_request_a_return_send_it_back_and_list_it(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    from siyu.orders import aftersales

    shop = order_shop
    b = await signed_in(browser, shop)
    oid = await paid_order(b, shop, shop.skus[0], 2)
    await ship(shop, oid, "YT9876543210", carrier="YTO")
    page = await b.get(f"{base(shop)}/orders/{oid}")
    link = re.search(rf'href="({base(shop)}/orders/{oid}/after-sales/new\?line=(\d+))"', page.text)
    assert link, page.text
    line_id = int(link.group(2))
    form = await b.get(html.unescape(link.group(1)))
    assert form.status_code == 200 and "退货退款" in form.text and "七天无理由退货" in form.text
    assert re.search(r'<option value="2" selected', form.text)  # the line's units are chosen
    # Nothing chosen: the form says so, with a 422.
    r = await b.post(f"{base(shop)}/orders/{oid}/after-sales/new", {"kind": "return_refund", "reason": "质量问题",
                                                                    f"qty_{line_id}": "0"})
    assert r.status_code == 422 and "请至少选择一件商品" in r.text
    r = await b.post(f"{base(shop)}/orders/{oid}/after-sales/new", {"kind": "return_refund", "reason": "Nope",
                                                                    f"qty_{line_id}": "1"})
    assert r.status_code == 422
    r = await b.post(f"{base(shop)}/orders/{oid}/after-sales/new", {
        "kind": "return_refund", "reason": "质量问题", "description": "茶叶受潮", f"qty_{line_id}": "1"})
    assert r.status_code == 303, r.text[:800]
    case_url = r.headers["location"]
    case_id = int(case_url.rsplit("/", 1)[1])
    page = await b.follow(r)
    assert "售后申请已提交" in flash_text(page.text) and 'data-status="requested"' in page.text
    assert "¥128.00" in page.text and "茶叶受潮" in page.text and 'id="withdraw-case"' in page.text
    assert 'id="return-form"' not in page.text
    # The order page now links the line to its open case.
    assert f'href="{case_url}"' in (await b.get(f"{base(shop)}/orders/{oid}")).text

    async with shop.runtime.db.uow() as s:
        await aftersales.approve(s, shop.scope, case_id)
    page = await b.get(case_url)
    assert 'data-status="approved"' in page.text and 'id="return-form"' in page.text
    assert 'id="return-address"' in page.text
    r = await b.post(f"{case_url}/return", {"carrier": "", "tracking_no": ""})
    assert r.status_code == 422 and "请选择物流公司" in r.text
    r = await b.post(f"{case_url}/return", {"carrier": "Pigeon Post", "tracking_no": "SF5550001"})
    assert r.status_code == 422 and field_error(r.text, "carrier") == "请选择物流公司"
    r = await b.post(f"{case_url}/return", {"carrier": "SF", "tracking_no": "bad no!"})
    assert r.status_code == 422 and "快递单号为 4–40 位字母、数字或 -" in r.text
    r = await b.post(f"{case_url}/return", {"carrier": "SF", "tracking_no": "SF5550001"})
    page = await b.follow(r)
    assert 'data-status="returning"' in page.text and "顺丰 <span" in page.text and "SF5550001" in page.text and 'id="return-form"' not in page.text

    listing = await b.get(f"{base(shop)}/after-sales")
    case_no = (await _case(shop, case_id)).case_no
    assert listing.status_code == 200 and f'data-case-no="{case_no}"' in listing.text and "退货中" in listing.text
    assert f'href="{base(shop)}/after-sales" aria-current="page"' in listing.text
    assert (await b.get(f"{base(shop)}/orders?tab=after_sales")).headers["location"] == f"{base(shop)}/after-sales"
    me = await b.get(f"{base(shop)}/me")
    assert re.search(r'data-key="after_sales"><strong>1</strong>', me.text)


async def test_refund_only_and_withdraw(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    b = await signed_in(browser, shop)
    oid = await paid_order(b, shop, shop.skus[1], 1)
    page = await b.get(f"{base(shop)}/orders/{oid}")
    link = re.search(rf'href="{base(shop)}/orders/{oid}/after-sales/new\?line=(\d+)"', page.text)
    assert link
    form = await b.get(f"{base(shop)}/orders/{oid}/after-sales/new?line={link.group(1)}")
    assert 'value="refund_only" checked' in form.text and 'value="return_refund"' not in form.text  # nothing shipped yet
    r = await b.post(f"{base(shop)}/orders/{oid}/after-sales/new", {"kind": "refund_only", "reason": "不想要了",
                                                                    f"qty_{link.group(1)}": "1"})
    case_url = r.headers["location"]
    page = await b.get(case_url)
    assert "仅退款" in page.text and "¥39.90" in page.text
    # While it is open the line offers no second request.
    r = await b.post(f"{base(shop)}/orders/{oid}/after-sales/new", {"kind": "refund_only", "reason": "不想要了",
                                                                    f"qty_{link.group(1)}": "1"})
    assert r.status_code == 409 and "已有进行中的售后" in r.text
    r = await b.post(f"{case_url}/withdraw")
    page = await b.follow(r)
    assert "售后申请已撤销" in flash_text(page.text) and 'data-status="withdrawn"' in page.text
    assert 'id="withdraw-case"' not in page.text
    r = await b.post(f"{case_url}/withdraw")
    assert r.status_code == 303 and flash_text((await b.follow(r)).text)
    # An unpaid order takes no request.
    unpaid = await place_through_pages(b, shop, shop.skus[0])
    r = await b.get(f"{base(shop)}/orders/{unpaid}/after-sales/new")
    assert r.status_code == 303 and r.headers["location"] == f"{base(shop)}/orders/{unpaid}"


async def _case(shop: OrderShop, case_id: int) -> AfterSale:
    async with shop.runtime.db.uow(readonly=True) as s:
        c = (await s.execute(select(AfterSale).where(AfterSale.id == case_id))).scalar_one()
        s.expunge(c)
        return c


# -- isolation and sign-in --------------------------------------------------------------------------------


async def test_another_shoppers_orders_and_cases_are_404(browser, order_shop: OrderShop, runtime, client,  # type: ignore[no-untyped-def]
                                                         tenant_factory) -> None:
    shop = order_shop
    owner = await signed_in(browser, shop)
    oid = await paid_order(owner, shop, shop.skus[0])
    line_id = re.search(r"after-sales/new\?line=(\d+)", (await owner.get(f"{base(shop)}/orders/{oid}")).text)
    assert line_id
    r = await owner.post(f"{base(shop)}/orders/{oid}/after-sales/new", {"kind": "refund_only", "reason": "不想要了",
                                                                        f"qty_{line_id.group(1)}": "1"})
    case_id = int(r.headers["location"].rsplit("/", 1)[1])

    other = await signed_in(browser, shop, await shop.new_buyer())
    for path in (f"/orders/{oid}", f"/orders/{oid}/pay", f"/orders/{oid}/after-sales/new", f"/after-sales/{case_id}"):
        r = await other.get(base(shop) + path)
        assert r.status_code == 404, path
    for path in (f"/orders/{oid}/pay", f"/orders/{oid}/cancel", f"/orders/{oid}/confirm", f"/orders/{oid}/after-sales/new",
                 f"/after-sales/{case_id}/withdraw", f"/after-sales/{case_id}/return"):
        r = await other.post(base(shop) + path, {"kind": "refund_only", "reason": "不想要了", "carrier": "顺丰",
                                                 "tracking_no": "SF000111"})
        assert r.status_code == 404, path
    assert f'data-order-no="{(await shop.order(oid)).order_no}"' not in (await other.get(f"{base(shop)}/orders")).text
    # Another shop's session is not signed in here.
    second = await make_order_shop(runtime, client, tenant_factory)
    stranger = browser()
    stranger.c.cookies.set("siyu_customer", second.buyer.token)
    r = await stranger.get(f"{base(shop)}/orders/{oid}")
    assert r.status_code == 303 and r.headers["location"].startswith(f"{base(shop)}/login?next=")


async def test_pages_ask_visitors_to_sign_in(browser, order_shop: OrderShop) -> None:  # type: ignore[no-untyped-def]
    shop = order_shop
    b = browser()
    for path in ("/orders", "/orders/1", "/after-sales", "/after-sales/1", f"/checkout?sku_id={shop.skus[0]}&qty=2"):
        r = await b.get(base(shop) + path)
        assert r.status_code == 303 and r.headers["location"].startswith(f"{base(shop)}/login?next="), path
    r = await b.get(f"{base(shop)}/checkout?sku_id={shop.skus[0]}&qty=2")
    assert r.headers["location"] == f"{base(shop)}/login?next={base(shop)}/checkout%3Fsku_id%3D{shop.skus[0]}%26qty%3D2"


# -- English -----------------------------------------------------------------------------------------------


async def test_order_pages_render_in_english(browser, order_shop: OrderShop, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    from siyu.catalog import service as catalog_service
    from siyu.customers import service as customers_service
    from siyu.customers.schemas import AddressIn
    from siyu.orders import aftersales

    shop = order_shop
    buyer = await make_buyer(runtime, shop.scope, province_code=None)
    async with runtime.db.uow() as s:
        await customers_service.update_nickname(s, shop.scope, buyer.customer_id, "Lin")
        await customers_service.create_address(s, shop.scope, buyer.customer_id, AddressIn(
            receiver_name="Lin", phone="13700009999", province_code="33", city="Hangzhou", district="Xihu",
            detail="1 Wensan Road", is_default=True))
    tea = await shop.make_sku(price_fen=2500, title="Dragon Well")
    gone = await shop.make_sku(price_fen=1500, title="Old Tea")
    await shop.flat_freight(600)
    b = await signed_in(browser, shop, buyer)
    data = ("Dragon Well", "Old Tea", "Lin", "Hangzhou", "Xihu", "1 Wensan Road", "浙江省", tenant_name(shop))
    with b.language("en"):
        await add(b, shop, tea, 2)
        await add(b, shop, gone)
        async with runtime.db.uow() as s:
            await catalog_service.change_status(s, shop.scope, await product_id(shop, gone), "unpublish")
        for path in ("/cart", "/checkout?from=cart", "/orders", "/after-sales", "/me"):
            r = await b.get(base(shop) + path)
            assert r.status_code == 200 and '<html lang="en">' in r.text, path
            assert not chinese_left(r.text, *data), (path, sorted(chinese_left(r.text, *data)))
        oid = await place_through_pages(b, shop, tea, 1, note="Leave at the door")
        await pay_on_cashier(b, shop, oid)
        await ship(shop, oid, "ZT1234567", carrier="ZTO")
        page = await b.get(f"{base(shop)}/orders/{oid}")
        assert "To receive" in page.text and "ZTO Express" in page.text and "Confirm receipt" in page.text
        # Timeline notes (the gateway's and the shop's words) are data.
        notes = re.findall(r'<span class="muted"> · (.*?)</span>', page.text)
        assert not chinese_left(page.text, *data, *notes), sorted(chinese_left(page.text, *data, *notes))
        line_id = re.search(r"after-sales/new\?line=(\d+)", page.text)
        assert line_id
        form = await b.get(f"{base(shop)}/orders/{oid}/after-sales/new?line={line_id.group(1)}")
        assert "Return and refund" in form.text and "Quality problem" in form.text
        # The reasons' values are what the case stores (Chinese); their labels are English.
        stored = [r for k in aftersales.KINDS for r in aftersales.reasons(k)]
        assert ">No longer wanted</option>" in form.text
        left = chinese_left(form.text, *data, *stored)
        assert not left, sorted(left)
        r = await b.post(f"{base(shop)}/orders/{oid}/after-sales/new", {"kind": "return_refund", "reason": "质量问题",
                                                                        f"qty_{line_id.group(1)}": "1"})
        case_url = r.headers["location"]
        async with runtime.db.uow() as s:
            await aftersales.approve(s, shop.scope, int(case_url.rsplit("/", 1)[1]))
        page = await b.get(case_url)
        assert "Send the goods back" in page.text and "SF Express" in page.text
        notes = re.findall(r'<span class="muted"> · (.*?)</span>', page.text)
        address = re.findall(r'id="return-address"[^>]*>(.*?)</span>', page.text)
        left = chinese_left(page.text, *data, *notes, *address)
        assert not left, sorted(left)
        for path in ("/orders", "/after-sales"):
            r = await b.get(base(shop) + path)
            assert not chinese_left(r.text, *data), (path, sorted(chinese_left(r.text, *data)))


def tenant_name(shop: OrderShop) -> str:
    return shop.tenant.name
