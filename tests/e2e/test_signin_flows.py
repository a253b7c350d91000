"""The two front doors, in a real browser: an operator signs in to the console, and a
shopper signs in on the storefront with the sandbox SMS code and then shows up in the
console's customer list."""

from __future__ import annotations

import re
import secrets

import pytest

pytestmark = pytest.mark.browser


async def _console_sign_in(page, base: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(base + "/admin")
    await page.wait_for_url(re.compile(r"/admin/login"))
    await page.fill("input[name=username]", "demo")
    await page.fill("input[name=password]", "demo-2026")
    await page.click("form button[type=submit]")
    await page.wait_for_url(re.compile(r"/admin/?$"))


async def test_operator_signs_in_to_console(page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(live_server + "/admin/login")
    await page.fill("input[name=username]", "demo")
    await page.fill("input[name=password]", "wrong-password")
    await page.click("form button[type=submit]")
    await page.get_by_text("用户名或密码错误").wait_for()

    await _console_sign_in(page, live_server)
    await page.get_by_text("青山茶社").first.wait_for()
    await page.click("nav >> text=员工")
    await page.wait_for_url(re.compile(r"/admin/staff"))
    await page.get_by_text("王导购").first.wait_for()
    # A module that is not built yet says so instead of showing anything fake.
    await page.goto(live_server + "/admin/coming/marketing")
    await page.get_by_text("即将推出").first.wait_for()


async def test_shopper_signs_in_with_sandbox_code(phone_page, browser, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page = phone_page
    phone = "137" + f"{secrets.randbelow(10**8):08d}"
    await page.goto(live_server + "/m/qingshan/")
    await page.get_by_text("青山茶社").first.wait_for()
    await page.goto(live_server + "/m/qingshan/login")
    await page.fill("#phone", phone)
    await page.get_by_role("button", name="获取验证码").click()
    code_el = page.locator(".sandbox-code strong")
    await code_el.wait_for()
    code = (await code_el.inner_text()).strip()
    assert re.fullmatch(r"\d{6}", code)
    await page.fill("#code", code)
    await page.get_by_role("button", name=re.compile("登录")).first.click()
    await page.wait_for_url(re.compile(r"/m/qingshan/me"))
    masked = phone[:3] + "****" + phone[-4:]
    await page.get_by_text(masked).first.wait_for()

    # The operator now finds this shopper in the console.
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN")
    console = await context.new_page()
    console.set_default_timeout(15000)
    try:
        await _console_sign_in(console, live_server)
        await console.goto(f"{live_server}/admin/customers?q={phone}")
        # The owner may see full phone numbers (customers.phone).
        await console.get_by_text(phone).first.wait_for()
    finally:
        await context.close()
