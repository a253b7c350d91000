"""A shopper buys tea in a real browser: signs in, browses a category, picks a SKU on the
product page, adds it to the cart, checks out (adding a delivery address on the way), pays
on the sandbox cashier, comes back to the order and finds it paid (待发货) in 我的订单.

The payment result reaches the order the way it does in production: the sandbox sends a
signed notification through the outbox to ``/api/pay/notify/sandbox``, and the order page
re-reads itself until the order is paid. Every step waits for what the page shows, never
for a fixed time."""

from __future__ import annotations

import re
import secrets

import pytest

pytestmark = pytest.mark.browser

SHOP = "/m/qingshan"


async def _sign_in(page, base: str, next_path: str) -> None:  # type: ignore[no-untyped-def]
    phone = "136" + f"{secrets.randbelow(10**8):08d}"
    await page.goto(f"{base}{SHOP}/login?next={next_path}")
    await page.fill("#phone", phone)
    await page.get_by_role("button", name="获取验证码").click()
    code_el = page.locator(".sandbox-code strong")
    await code_el.wait_for()
    code = (await code_el.inner_text()).strip()
    assert re.fullmatch(r"\d{6}", code)
    await page.fill("#code", code)
    await page.get_by_role("button", name=re.compile("登录")).first.click()
    await page.wait_for_url(re.compile(re.escape(next_path) + "$"))


async def test_shopper_buys_and_pays(phone_page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page = phone_page
    await _sign_in(page, live_server, f"{SHOP}/category")

    # Browse a category and open a product.
    await page.locator(".cat-side a", has_text="红茶").first.click()
    await page.wait_for_url(re.compile(r"/category\?c=\d+"))
    card = page.locator(".pc-row").first
    title = (await card.locator(".pc-title").inner_text()).strip()
    await card.click()
    await page.wait_for_url(re.compile(r"/m/qingshan/p/\d+$"))
    await page.get_by_text(title).first.wait_for()

    # Pick a SKU: another value of the first spec when there is one in stock.
    add = page.locator("#add-to-cart button[type=submit]")
    other = page.locator(".pd-values").first.locator(".pd-value:not(.selected):not([disabled])")
    if await other.count():
        await other.first.click()
        await page.locator(".pd-values").first.locator(".pd-value.selected").wait_for()
    if await add.is_disabled():  # that value's SKU is sold out: pick the first one in stock
        for value in await page.locator(".pd-value:not([disabled])").all():
            await value.click()
            if not await add.is_disabled():
                break
    chosen = (await page.locator(".pd-chosen span").first.inner_text()).strip()
    assert not await add.is_disabled(), chosen
    await add.click()
    await page.wait_for_url(re.compile(r"/m/qingshan/p/\d+$"))
    await page.locator(".flash", has_text="已加入购物车").wait_for()

    # The cart holds it; 去结算 opens 确认订单.
    await page.locator(".tabbar a[href$='/cart']").click()
    await page.wait_for_url(re.compile(r"/m/qingshan/cart$"))
    item = page.locator(".cart-item", has_text=title)
    await item.wait_for()
    await page.get_by_role("button", name=re.compile("去结算")).click()
    await page.wait_for_url(re.compile(r"/m/qingshan/checkout\?from=cart"))
    await page.get_by_text(title).first.wait_for()

    # A new shopper has no address yet: add one and come back to the checkout.
    await page.locator("#add-address").click()
    await page.wait_for_url(re.compile(r"/checkout/address\?next="))
    await page.fill("#f-receiver_name", "测试买家")
    await page.fill("#f-phone", "13800138000")
    await page.select_option("#f-province_code", "33")
    await page.fill("#f-city", "杭州市")
    await page.fill("#f-district", "西湖区")
    await page.fill("#f-detail", "龙井路 18 号")
    await page.get_by_role("button", name="保存并使用").click()
    await page.wait_for_url(re.compile(r"/m/qingshan/checkout\?from=cart&address_id=\d+"))
    await page.get_by_text("龙井路 18 号").first.wait_for()
    payable = (await page.locator("#checkout-payable").inner_text()).strip()

    # 提交订单 → the sandbox cashier → 确认支付 → back to the order.
    await page.locator("#place-order").click()
    await page.wait_for_url(re.compile(r"/pay/sandbox/\w+"))
    await page.get_by_text(payable).first.wait_for()
    await page.get_by_role("button", name="确认支付").click()
    await page.get_by_role("link", name="返回商户").click()
    await page.wait_for_url(re.compile(r"/m/qingshan/orders/\d+\?paid=1"))
    order_id = re.search(r"/orders/(\d+)", page.url).group(1)  # type: ignore[union-attr]
    # The page re-reads itself until the gateway's notification has paid the order.
    await page.locator('#order-status[data-status="paid"]').wait_for(timeout=45000)
    await page.locator("#order-status", has_text="待发货").wait_for()
    order_no = (await page.locator("#order-no").inner_text()).strip()

    # 我的订单 → 待发货 lists it.
    await page.goto(f"{live_server}{SHOP}/orders")
    await page.locator(".order-tabs a", has_text="待发货").click()
    await page.wait_for_url(re.compile(r"/orders\?tab=to_ship"))
    row = page.locator(f'.order-row[data-order-no="{order_no}"]')
    await row.wait_for()
    await row.locator(".order-status", has_text="待发货").wait_for()
    assert await row.locator(f'a[href$="/orders/{order_id}"]').count() == 1
