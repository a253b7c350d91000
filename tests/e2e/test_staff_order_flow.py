"""An order from payment to refund, in a real browser: the shopper pays on the sandbox cashier;
staff sign in to the console, open the order and ship it; the shopper (a second browser, on a
phone) sees the tracking number on the order page and asks for a refund; staff approve it;
the sandbox refunds asynchronously; both sides see 已退款.

The order itself is placed through the store JSON API with the shopper's own session (the
checkout pages have their own browser test); everything after that goes through the pages.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser

SHOP = "qingshan"


async def _console_sign_in(page: Any, base: str) -> None:
    await page.goto(base + "/admin")
    await page.wait_for_url(re.compile(r"/admin/login"))
    await page.fill("input[name=username]", "demo")
    await page.fill("input[name=password]", "demo-2026")
    await page.click("form button[type=submit]")
    await page.wait_for_url(re.compile(r"/admin/?$"))


async def _shopper_sign_in(page: Any, base: str) -> str:
    """Sign in on the storefront with the sandbox SMS code; returns the session token."""
    phone = "136" + f"{secrets.randbelow(10**8):08d}"
    await page.goto(f"{base}/m/{SHOP}/login")
    await page.fill("#phone", phone)
    await page.get_by_role("button", name="获取验证码").click()
    code_el = page.locator(".sandbox-code strong")
    await code_el.wait_for()
    await page.fill("#code", (await code_el.inner_text()).strip())
    await page.get_by_role("button", name=re.compile("登录")).first.click()
    await page.wait_for_url(re.compile(rf"/m/{SHOP}/me"))
    return next(c["value"] for c in await page.context.cookies() if c["name"] == "siyu_customer")


async def _sku_in_stock(api: httpx.AsyncClient) -> int:
    r = await api.get(f"/api/store/v1/{SHOP}/catalog/products", params={"page_size": 50})
    assert r.status_code == 200, r.text
    for card in r.json()["items"]:
        detail = (await api.get(f"/api/store/v1/{SHOP}/catalog/products/{card['id']}")).json()
        if not detail.get("requires_shipping"):
            continue
        for sku in detail["skus"]:
            if sku["available"] and (sku["stock"] or 0) >= 2:
                return int(sku["id"])
    raise AssertionError("the demo shop has no physical SKU in stock")


async def _until(check: Any, what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def test_staff_ship_and_refund_an_order_the_shopper_follows(page, phone_page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    base, shopper = live_server, phone_page

    # -- the shopper signs in, places an order and pays on the sandbox cashier
    token = await _shopper_sign_in(shopper, base)
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=20) as api:
        r = await api.post(f"/api/store/v1/{SHOP}/me/addresses", json={
            "receiver_name": "林小满", "phone": "13912345678", "province_code": "33", "city": "杭州市", "district": "西湖区",
            "detail": "龙井路 8 号", "is_default": True})
        assert r.status_code == 201, r.text
        address_id = r.json()["id"]
        sku = await _sku_in_stock(api)
        r = await api.post(f"/api/store/v1/{SHOP}/orders", json={"lines": [{"sku_id": sku, "quantity": 1}],
                                                                  "address_id": address_id},
                           headers={"Idempotency-Key": secrets.token_hex(8)})
        assert r.status_code == 201, r.text
        order_id, order_no = r.json()["id"], r.json()["order_no"]
        r = await api.post(f"/api/store/v1/{SHOP}/orders/{order_id}/pay",
                           json={"channel": "sandbox", "return_url": f"/m/{SHOP}/orders/{order_id}"})
        assert r.status_code == 200, r.text
        pay_url = r.json()["pay_url"]

        await shopper.goto(base + pay_url)
        await shopper.get_by_role("button", name="确认支付").click()

        async def paid() -> bool:
            return (await api.get(f"/api/store/v1/{SHOP}/orders/{order_id}")).json()["status"] == "paid"

        await _until(paid, "the sandbox's payment notification")

    # -- staff find the order and ship it
    await _console_sign_in(page, base)
    await page.locator("nav.nav").get_by_role("link", name="订单管理").click()
    await page.wait_for_url(re.compile(r"/admin/orders$"))
    await page.get_by_role("link", name=re.compile("待发货")).first.click()
    await page.get_by_role("link", name=order_no).click()
    await page.wait_for_url(re.compile(rf"/admin/orders/{order_id}$"))
    await page.get_by_text("顾客已付款，请尽快发货。").wait_for()
    tracking = "SF" + f"{secrets.randbelow(10**12):012d}"
    await page.get_by_label("物流公司").select_option("SF")
    await page.get_by_label("运单号").fill(tracking)
    await page.get_by_role("button", name="发货", exact=True).click()
    await page.get_by_text(f"已发货：顺丰 {tracking}").wait_for()
    await page.locator("#shipments").get_by_text(tracking).wait_for()

    # -- the shopper sees the parcel and asks for a refund
    await shopper.goto(f"{base}/m/{SHOP}/orders/{order_id}")
    await shopper.locator("#shipments").get_by_text(tracking).wait_for()
    await shopper.locator("a.after-sale-link").first.click()
    await shopper.wait_for_url(re.compile(r"/after-sales/new"))
    await shopper.get_by_label("仅退款").check()
    await shopper.locator("select[name^=qty_]").first.select_option("1")
    await shopper.locator("#f-reason").select_option(label="不想要了")
    await shopper.get_by_role("button", name="提交申请").click()
    await shopper.wait_for_url(re.compile(rf"/m/{SHOP}/after-sales/\d+$"))
    case_id = int(shopper.url.rsplit("/", 1)[1])

    # -- staff approve it from the after-sales queue
    await page.locator("nav.nav").get_by_role("link", name="售后").click()
    await page.wait_for_url(re.compile(r"/admin/orders/after-sales"))
    await page.locator(f'#case-list a[href="/admin/orders/after-sales/{case_id}"]').first.click()
    await page.wait_for_url(re.compile(rf"/admin/orders/after-sales/{case_id}$"))
    await page.get_by_text("不想要了").first.wait_for()
    await page.get_by_role("button", name="同意退款").click()
    await page.get_by_text("已同意，退款处理中").wait_for()

    async def refunded() -> bool:
        await page.reload()
        return await page.locator(".page-title .badge").inner_text() == "已退款"

    await _until(refunded, "the sandbox's refund notification")
    await page.get_by_text("退款已原路退回顾客。").wait_for()

    # -- the shopper sees the money back
    await shopper.goto(f"{base}/m/{SHOP}/after-sales/{case_id}")
    await shopper.get_by_text("已退款").first.wait_for()
    await shopper.goto(f"{base}/m/{SHOP}/orders/{order_id}")
    await shopper.get_by_text("已退款").first.wait_for()
