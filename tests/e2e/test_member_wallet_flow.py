"""A member recharges and pays an order with the balance alone, in a real browser.

The shopper signs in, opens 我的余额, taps a recharge package, pays on the sandbox cashier and
comes back to the recharge page, which re-reads itself until the gateway's notification has
credited the wallet. Then they buy a product (adding a delivery address on the way), switch
on 使用余额 at 确认订单 — the total to pay drops to ¥0.00 — and place the order, which is
paid at once without the gateway. 我的余额 then shows the spend against that order.

The payment result reaches the wallet the way it does in production: the sandbox sends a
signed notification through the outbox to ``/api/pay/notify/sandbox``. Every step waits for
what the page shows, never for a fixed time."""

from __future__ import annotations

import re
import secrets

import pytest

pytestmark = pytest.mark.browser

SHOP = "/m/qingshan"
PACKAGE = "充 2000 送 260"  # a demo package: ¥2,260 in the wallet, more than any demo product costs


def _fen(text: str) -> int:
    """"-¥1,234.50" → -123450."""
    t = text.strip()
    sign = -1 if t.startswith("-") else 1
    whole, _sep, frac = t.lstrip("-").lstrip("¥").replace(",", "").partition(".")
    return sign * (int(whole) * 100 + int((frac + "00")[:2]))


async def _sign_in(page, base: str, next_path: str) -> None:  # type: ignore[no-untyped-def]
    phone = "135" + f"{secrets.randbelow(10**8):08d}"
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


async def test_recharge_then_pay_an_order_by_balance(phone_page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page = phone_page
    await _sign_in(page, live_server, f"{SHOP}/member/wallet")
    hero = page.locator("#wallet-balance")
    await hero.wait_for()
    assert await hero.get_attribute("data-total") == "0"

    # Tap a package → the sandbox cashier → 确认支付 → back to the recharge, which waits for the credit.
    await page.locator("button.wl-package", has_text=PACKAGE).click()
    await page.wait_for_url(re.compile(r"/pay/sandbox/\w+"))
    await page.get_by_text("¥2,000.00").first.wait_for()
    await page.get_by_role("button", name="确认支付").click()
    await page.get_by_role("link", name="返回商户").click()
    await page.wait_for_url(re.compile(r"/member/wallet/recharges/\d+\?paid=1"))
    await page.locator('#recharge-status[data-status="paid"]').wait_for(timeout=45000)
    await page.locator("#recharge-status", has_text="¥2,260.00").wait_for()
    await page.locator("#back-to-wallet").click()
    await page.wait_for_url(re.compile(r"/member/wallet$"))
    assert await hero.get_attribute("data-total") == "226000"

    # Buy a product: 立即购买 on its page.
    await page.goto(f"{live_server}{SHOP}/category")
    await page.locator(".cat-side a", has_text="红茶").first.click()
    await page.wait_for_url(re.compile(r"/category\?c=\d+"))
    await page.locator(".pc-row").first.click()
    await page.wait_for_url(re.compile(r"/m/qingshan/p/\d+$"))
    buy = page.locator("#buy-now button[type=submit]")
    if await buy.is_disabled():  # the preselected SKU is sold out: pick one in stock
        for value in await page.locator(".pd-value:not([disabled])").all():
            await value.click()
            if not await buy.is_disabled():
                break
    assert not await buy.is_disabled()
    await buy.click()
    await page.wait_for_url(re.compile(r"/m/qingshan/checkout\?"))

    # A new shopper has no address yet: add one and come back to the checkout.
    await page.locator("#add-address").click()
    await page.wait_for_url(re.compile(r"/checkout/address\?next="))
    await page.fill("#f-receiver_name", "储值买家")
    await page.fill("#f-phone", "13800138000")
    await page.select_option("#f-province_code", "33")
    await page.fill("#f-city", "杭州市")
    await page.fill("#f-district", "西湖区")
    await page.fill("#f-detail", "龙井路 18 号")
    await page.get_by_role("button", name="保存并使用").click()
    await page.wait_for_url(re.compile(r"/m/qingshan/checkout\?.*address_id=\d+"))
    total = _fen(await page.locator("#checkout-payable").inner_text())
    assert 0 < total <= 226000

    # 使用余额: the balance pays everything, freight included.
    switch = page.locator("#use-balance")
    assert await switch.get_attribute("aria-checked") == "false"
    await switch.click()
    await page.wait_for_url(re.compile(r"use_balance=1"))
    await page.locator('#use-balance[aria-checked="true"]').wait_for()
    assert (await page.locator("#checkout-payable").inner_text()).strip() == "¥0.00"
    assert _fen(await page.locator("#checkout-balance").inner_text()) == -total

    # 提交订单: nothing left to pay, so the order is paid at once — no cashier.
    await page.locator("#place-order").click()
    await page.wait_for_url(re.compile(r"/m/qingshan/orders/\d+$"))
    order_id = re.search(r"/orders/(\d+)", page.url).group(1)  # type: ignore[union-attr]
    await page.locator('#order-status[data-status="paid"]').wait_for()
    await page.locator("#order-status", has_text="待发货").wait_for()

    # 我的余额: the spend, against that order.
    await page.goto(f"{live_server}{SHOP}/member/wallet")
    assert await hero.get_attribute("data-total") == str(226000 - total)
    row = page.locator("#history li").first
    await row.locator("text=余额支付").wait_for()
    assert await row.locator(f'a[href$="/orders/{order_id}"]').count() == 1
