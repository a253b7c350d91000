"""The stored-value pages, driven through their HTML forms like a browser would.

Console: 储值 (packages: new with errors on the page and a 422, edit, delete; settings with
errors), 充值记录 with filters, 余额退款 (tabs, a request's page, reject with and without a
reason, approve and the refund settling through the sandbox), the 调整余额 form a member's
page posts, a read-only role seeing no forms and getting 403s, another tenant's objects
answering 404, and the pages in English. Storefront: 我的余额 (packages, custom amount,
statement), recharging through the sandbox cashier and the page that waits for the credit,
退还本金, and 确认订单's 使用余额 / 使用积分 switches placing an order paid by balance alone.
Every response is checked to be below 500 by the :class:`~tests._pages.Browser` hook.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from siyu.kit.runtime import Runtime
from siyu.members import wallet
from siyu.members.models import BalanceRefund, Recharge, RechargePackage
from siyu.orders.models import Order
from siyu.payments import service as payments_service
from tests._pages import Browser, browsers, chinese_left, field_error, make_staff, staff_sign_in
from tests.conftest import drain_outbox
from tests.members import _wallet as w
from tests.orders import _aftersales as af
from tests.orders import _lifecycle as lc
from tests.orders.conftest import Buyer, OrderShop, make_order_shop

ADMIN = "/admin/members/wallet"
_LOGIN_IP_KEYS = ("login-ip:staff:127.0.0.1", "login-ip:platform:127.0.0.1")


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


async def shopper(browser: Callable[[], Browser], shop: OrderShop, buyer: Buyer | None = None) -> Browser:
    b = browser()
    b.c.cookies.set("siyu_customer", (buyer or shop.buyer).token)
    r = await b.get(f"/m/{shop.tenant.code}/me")
    assert r.status_code == 200 and b.csrf, r.text[:300]
    return b


def flash_of(page: str) -> str:
    m = re.search(r'<div class="flash flash-\w+" role="\w+"[^>]*>(.*?)</div>', page, re.S)
    return html.unescape(m.group(1).strip()) if m else ""


async def _packages(shop: OrderShop) -> list[RechargePackage]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(RechargePackage).where(RechargePackage.tenant_id == shop.scope.id)
                                     .order_by(RechargePackage.id))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def _recharges(shop: OrderShop) -> list[Recharge]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(Recharge).where(Recharge.tenant_id == shop.scope.id)
                                     .order_by(Recharge.id))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def _pay_sandbox(shop: OrderShop, pay_url: str) -> None:
    """Press 确认支付 on the sandbox cashier the redirect led to, and let the notification in."""
    out_trade_no = urlsplit(pay_url).path.rstrip("/").rsplit("/", 1)[-1]
    await lc.sandbox_pay(shop.runtime, out_trade_no)
    await drain_outbox(shop.runtime)


# -- console ----------------------------------------------------------------------------------------------------


async def test_packages_and_settings_through_the_console(browser: Callable[[], Browser], order_shop: OrderShop) -> None:
    b = await owner(browser, order_shop)
    r = await b.get(ADMIN)
    assert r.status_code == 200 and "还没有储值套餐" in r.text and 'id="wallet-settings"' in r.text
    # Errors come back on the form with a 422.
    r = await b.get(ADMIN + "/packages/new")
    assert r.status_code == 200
    r = await b.post(ADMIN + "/packages/new", {"name": "", "pay": "12.345", "bonus": "-1", "sort": "x", "on_sale": "1"})
    assert r.status_code == 422
    assert field_error(r.text, "name") and field_error(r.text, "pay") and field_error(r.text, "bonus")
    assert field_error(r.text, "sort")
    r = await b.post(ADMIN + "/packages/new", {"name": "充 1000 送 100", "pay": "1,000", "bonus": "100", "sort": "5",
                                               "on_sale": "1"})
    assert r.status_code == 303 and flash_of((await b.follow(r)).text) == "已新建储值套餐"
    [pkg] = await _packages(order_shop)
    assert (pkg.name, pkg.pay_fen, pkg.bonus_fen, pkg.sort, pkg.on_sale) == ("充 1000 送 100", 100_000, 10_000, 5, True)
    r = await b.get(ADMIN)
    assert f'data-package="{pkg.id}"' in r.text and "¥1,100.00" in r.text
    # Edit: take it off sale.
    r = await b.get(f"{ADMIN}/packages/{pkg.id}")
    assert r.status_code == 200 and 'value="1000"' in r.text
    r = await b.post(f"{ADMIN}/packages/{pkg.id}", {"name": "充 1000 送 120", "pay": "1000", "bonus": "120.5", "sort": "5"})
    assert r.status_code == 303
    [pkg] = await _packages(order_shop)
    assert (pkg.name, pkg.bonus_fen, pkg.on_sale) == ("充 1000 送 120", 12_050, False)
    # Settings: errors, then a good save.
    r = await b.post(ADMIN + "/settings", {"recharge_enabled": "1", "custom_enabled": "1", "custom_min": "500",
                                           "custom_max": "100", "bonus_share": "120"})
    assert r.status_code == 422 and field_error(r.text, "custom_max") and field_error(r.text, "bonus_share")
    r = await b.post(ADMIN + "/settings", {"recharge_enabled": "1", "custom_min": "10", "custom_max": "5000",
                                           "bonus_share": "25", "refund_enabled": "1"})
    assert r.status_code == 303 and flash_of((await b.follow(r)).text) == "已保存储值设置"
    async with order_shop.runtime.db.uow(readonly=True) as s:
        got = await wallet.wallet_settings(s, order_shop.scope)
    assert got == wallet.WalletSettings(recharge_enabled=True, custom_enabled=False, custom_min_fen=1000,
                                        custom_max_fen=500_000, bonus_share_bp=2500, refund_enabled=True)
    # Delete.
    r = await b.post(f"{ADMIN}/packages/{pkg.id}/delete", {})
    assert r.status_code == 303 and await _packages(order_shop) == []
    for path in (f"{ADMIN}/packages/{pkg.id}", f"{ADMIN}/packages/999999999"):
        assert (await b.get(path)).status_code == 404


async def test_recharges_list_refund_review_and_adjustments(browser: Callable[[], Browser], order_shop: OrderShop) -> None:
    pkg = await w.package(order_shop, 20_000, 2000)
    rc = await w.recharge(order_shop, package_id=pkg)
    b = await owner(browser, order_shop)
    r = await b.get(ADMIN + "/recharges")
    assert r.status_code == 200 and rc.recharge_no in r.text
    r = await b.get(ADMIN + "/recharges?status=closed")
    assert rc.recharge_no not in r.text
    r = await b.get(ADMIN + f"/recharges?customer={order_shop.buyer.customer_id}&status=paid&page=1")
    assert rc.recharge_no in r.text
    r = await b.get(ADMIN + "/recharges?customer=nobody-like-this")
    assert "没有充值记录" in r.text
    # A member asks for the principal back; staff reject once without a reason, then approve another.
    s = await shopper(browser, order_shop)
    base = f"/m/{order_shop.tenant.code}/member/wallet"
    r = await s.post(base + "/refund", {"amount": "50", "reason": "搬家"})
    assert r.status_code == 303
    async with order_shop.runtime.db.uow(readonly=True) as sess:
        [req] = (await sess.execute(select(BalanceRefund).where(BalanceRefund.tenant_id == order_shop.scope.id))).scalars()
    r = await b.get(ADMIN + "/refunds")
    assert r.status_code == 200 and req.refund_no in r.text
    r = await b.get(f"{ADMIN}/refunds/{req.id}")
    assert r.status_code == 200 and 'id="approve-refund"' in r.text and "¥50.00" in r.text
    r = await b.post(f"{ADMIN}/refunds/{req.id}/reject", {"reason": " "})
    assert r.status_code == 422 and field_error(r.text, "reason") == "请填写拒绝原因"
    r = await b.post(f"{ADMIN}/refunds/{req.id}/reject", {"reason": "请到店办理"})
    assert r.status_code == 303
    r = await b.post(f"{ADMIN}/refunds/{req.id}/approve", {})
    assert r.status_code == 303 and "不能同意" in flash_of((await b.follow(r)).text)
    r = await s.post(base + "/refund", {"amount": "", "reason": ""})
    assert r.status_code == 303
    r = await b.get(ADMIN + "/refunds?status=pending")
    new_id = int(re.findall(r'data-refund="(\d+)"', r.text)[0])
    r = await b.post(f"{ADMIN}/refunds/{new_id}/approve", {})
    assert r.status_code == 303 and flash_of((await b.follow(r)).text) == "已同意退款，本金将原路退回"
    await af.settle(order_shop)
    await drain_outbox(order_shop.runtime)
    r = await b.get(f"{ADMIN}/refunds/{new_id}")
    assert "已退款" in r.text and rc.recharge_no in r.text
    assert await w.balance(order_shop) == wallet.WalletBalance(0, 2000, 2000, 0)
    # The 调整余额 dialog of a member's page posts here and goes back to it.
    cid = order_shop.buyer.customer_id
    back = f"/admin/members/{cid}?tab=balance"
    form = {"amount": "-10", "bucket": "bonus", "reason": "扣回", "token": "tok-12345678", "next": back}
    r = await b.post(f"/admin/members/{cid}/wallet/adjust", form)
    assert r.status_code == 303 and r.headers["location"] == back
    assert (await w.balance(order_shop)).bonus_fen == 1000
    r = await b.post(f"/admin/members/{cid}/wallet/adjust", form)  # the same form twice: once
    assert r.status_code == 303 and (await w.balance(order_shop)).bonus_fen == 1000
    for bad in ({"amount": "0"}, {"amount": "abc"}, {"reason": " "}, {"bucket": "cash"}, {"amount": "-100"}):
        r = await b.post(f"/admin/members/{cid}/wallet/adjust", {**form, "token": "", **bad})
        assert r.status_code == 303
        assert (await w.balance(order_shop)).bonus_fen == 1000
    r = await b.post(f"/admin/members/{cid}/wallet/adjust", {**form, "token": "", "amount": "5", "bucket": "principal",
                                                              "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/members/{cid}"
    assert (await w.balance(order_shop)).principal_fen == 500
    await w.assert_ledger_sound(order_shop)


async def test_a_read_only_role_sees_no_forms_and_cannot_write(runtime: Runtime, browser: Callable[[], Browser],
                                                               order_shop: OrderShop) -> None:
    pkg = await w.package(order_shop, 10_000, 1000)
    _sid, username, password = await make_staff(runtime, order_shop.tenant, "customer_service")
    b = browser()
    await staff_sign_in(b, username, password)
    r = await b.get(ADMIN)
    assert r.status_code == 200 and "修改储值设置需要" in r.text and "/packages/new" not in r.text
    assert (await b.get(f"{ADMIN}/packages/{pkg}")).status_code == 200
    for path, data in ((f"{ADMIN}/settings", {"custom_min": "1", "custom_max": "2", "bonus_share": "0"}),
                       (f"{ADMIN}/packages/new", {"name": "x", "pay": "1"}), (f"{ADMIN}/packages/{pkg}/delete", {}),
                       (f"/admin/members/{order_shop.buyer.customer_id}/wallet/adjust", {"amount": "1", "reason": "x"})):
        r = await b.post(path, data)
        assert r.status_code == 403, path
    assert len(await _packages(order_shop)) == 1


async def test_another_tenants_objects_are_not_found(runtime: Runtime, browser: Callable[[], Browser],
                                                     order_shop: OrderShop, client: httpx.AsyncClient,
                                                     tenant_factory: Any) -> None:
    pkg = await w.package(order_shop, 10_000)
    await w.recharge(order_shop, package_id=pkg)
    async with order_shop.runtime.db.uow() as s:
        req = await wallet.request_refund(s, order_shop.scope, order_shop.buyer.customer_id, amount_fen=100)
    other = await make_order_shop(runtime, client, tenant_factory, "别家茶社")
    b = await owner(browser, other)
    for path in (f"{ADMIN}/packages/{pkg}", f"{ADMIN}/refunds/{req.id}"):
        assert (await b.get(path)).status_code == 404, path
    for path in (f"{ADMIN}/refunds/{req.id}/approve", f"/admin/members/{order_shop.buyer.customer_id}/wallet/adjust"):
        assert (await b.post(path, {"amount": "1", "reason": "x"})).status_code == 404, path
    assert (await w.stored_refund(order_shop, req.id)).status == "pending"


async def test_console_pages_in_english(browser: Callable[[], Browser], order_shop: OrderShop) -> None:
    pkg = await w.package(order_shop, 10_000, 1000, name="Gold 100")
    await w.recharge(order_shop, package_id=pkg)
    async with order_shop.runtime.db.uow() as s:
        req = await wallet.request_refund(s, order_shop.scope, order_shop.buyer.customer_id, amount_fen=100,
                                          reason="moving")
    b = await owner(browser, order_shop)
    with b.language("en"):
        for path in (ADMIN, f"{ADMIN}/packages/new", f"{ADMIN}/packages/{pkg}", f"{ADMIN}/recharges",
                     f"{ADMIN}/refunds", f"{ADMIN}/refunds/{req.id}"):
            r = await b.get(path)
            assert r.status_code == 200 and '<html lang="en">' in r.text, path
            main = r.text.split("<main", 1)[1]
            # The tenant's and the buyer's names are data; the buyer's nickname is Chinese.
            assert not chinese_left(main, "下单测试商家", "买家"), (path, sorted(chinese_left(main, "下单测试商家", "买家")))
        r = await b.post(f"{ADMIN}/packages/new", {"name": "", "pay": "x"})
        assert r.status_code == 422 and field_error(r.text, "pay") == "Enter the amount paid (¥0.01–100,000)"


# -- storefront -------------------------------------------------------------------------------------------------


async def test_recharge_through_the_cashier_and_see_the_balance(browser: Callable[[], Browser],
                                                                order_shop: OrderShop) -> None:
    pkg = await w.package(order_shop, 50_000, 5000, name="充 500 送 50")
    s = await shopper(browser, order_shop)
    base = f"/m/{order_shop.tenant.code}/member/wallet"
    r = await s.get(base)
    assert r.status_code == 200 and 'id="recharge"' in r.text and f'data-package="{pkg}"' in r.text
    assert "还没有余额记录" in r.text
    key = re.search(r'name="key" value="([^"]+)-p', r.text).group(1)  # type: ignore[union-attr]
    r = await s.post(base + "/recharge", {"package_id": str(pkg), "key": f"{key}-p{pkg}"})
    assert r.status_code == 303 and "/pay/sandbox/" in r.headers["location"], r.text[:300]
    # A double tap answers with the same recharge (and the same payment).
    again = await s.post(base + "/recharge", {"package_id": str(pkg), "key": f"{key}-p{pkg}"})
    assert again.headers["location"] == r.headers["location"]
    [rc] = await _recharges(order_shop)
    page = await s.get(f"{base}/recharges/{rc.id}")
    assert 'data-status="pending_payment"' in page.text and 'id="pay-recharge"' in page.text
    await _pay_sandbox(order_shop, r.headers["location"])
    page = await s.get(f"{base}/recharges/{rc.id}?paid=1")
    assert 'data-status="paid"' in page.text and "¥550.00" in page.text and "hx-get" not in page.text
    r = await s.get(base)
    assert 'data-total="55000"' in r.text and "充值" in r.text
    # A custom amount: out of range, then fine.
    r = await s.post(base + "/recharge", {"amount": "0.001", "key": "k-custom-1"})
    assert r.status_code == 422 and "请输入正确的充值金额" in r.text
    r = await s.post(base + "/recharge", {"amount": "999999", "key": "k-custom-2"})
    assert r.status_code == 422 and "充值金额需为" in r.text
    r = await s.post(base + "/recharge", {"amount": "88.8", "key": "k-custom-3"})
    assert r.status_code == 303
    await _pay_sandbox(order_shop, r.headers["location"])
    assert (await w.balance(order_shop)).total_fen == 55_000 + 8880
    # Another member's recharge page is a 404.
    other = await order_shop.new_buyer()
    o = await shopper(browser, order_shop, other)
    assert (await o.get(f"{base}/recharges/{rc.id}")).status_code == 404
    assert (await o.post(f"{base}/recharges/{rc.id}/pay", {})).status_code == 404


async def test_refund_request_page(browser: Callable[[], Browser], order_shop: OrderShop) -> None:
    await w.recharge(order_shop, package_id=await w.package(order_shop, 10_000, 1000))
    s = await shopper(browser, order_shop)
    base = f"/m/{order_shop.tenant.code}/member/wallet"
    r = await s.get(base + "/refund")
    assert r.status_code == 200 and 'id="refund-form"' in r.text and "¥100.00" in r.text
    r = await s.post(base + "/refund", {"amount": "200", "reason": ""})
    assert r.status_code == 409 and "最多可退 ¥100.00" in r.text
    r = await s.post(base + "/refund", {"amount": "x"})
    assert r.status_code == 422
    r = await s.post(base + "/refund", {"amount": "40", "reason": "不常来了"})
    assert r.status_code == 303
    r = await s.follow(r)
    assert 'id="refund-open"' in r.text and "refund-form" not in r.text and "待审核" in r.text


async def test_checkout_switches_pay_by_balance_alone(browser: Callable[[], Browser], order_shop: OrderShop) -> None:
    await order_shop.flat_freight(800)
    sku = order_shop.skus[1]  # ¥39.90
    s = await shopper(browser, order_shop)
    shop = f"/m/{order_shop.tenant.code}"
    r = await s.get(f"{shop}/checkout?sku_id={sku}&qty=2")
    assert r.status_code == 200
    assert 'id="use-balance"' in r.text and 'aria-disabled="true"' in r.text and "余额不足，无法使用" in r.text
    await w.gift(order_shop, 10_000)
    r = await s.get(f"{shop}/checkout?sku_id={sku}&qty=2")
    link = re.search(r'<a class="switch-row" id="use-balance" href="([^"]+)"', r.text)
    assert link and 'aria-checked="false"' in r.text and "可用余额 ¥100.00" in r.text
    r = await s.get(html.unescape(link.group(1)))
    assert 'id="use-balance" href=' in r.text and 'aria-checked="true"' in r.text
    assert re.search(r'id="checkout-balance">-¥87.80<', r.text) and ">¥0.00<" in r.text
    assert 'name="use_balance" value="1"' in r.text
    form = {"line": f"{sku}:2", "address_id": str(order_shop.buyer.address_id), "use_balance": "1", "points": "",
            "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', r.text).group(1)}  # type: ignore[union-attr]
    r = await s.post(f"{shop}/checkout", form)
    assert r.status_code == 303 and r.headers["location"].endswith("/pay")
    r = await s.get(r.headers["location"])
    assert r.status_code == 303  # nothing to pay: paid at once, back to the order
    order_id = int(re.search(r"/orders/(\d+)", r.headers["location"]).group(1))  # type: ignore[union-attr]
    async with order_shop.runtime.db.uow(readonly=True) as sess:
        order = (await sess.execute(select(Order).where(Order.id == order_id))).scalar_one()
    assert (order.status, order.balance_fen, order.payable_fen) == ("paid", 8780, 0)
    assert (await w.balance(order_shop)).total_fen == 10_000 - 8780
    # Switching it off again prices without the balance; the toggle keeps the address and lines.
    r = await s.get(f"{shop}/checkout?sku_id={sku}&qty=1&use_balance=1")
    off = re.search(r'<a class="switch-row" id="use-balance" href="([^"]+)"', r.text)
    assert off and "use_balance" not in html.unescape(off.group(1))
    # The balance spent by another checkout meanwhile: the submit comes back with the new total.
    form["idempotency_key"] = "another-key-123"
    form["line"] = f"{sku}:1"
    await w.gift(order_shop, -(10_000 - 8780), bucket="principal")
    r = await s.post(f"{shop}/checkout", form)
    assert r.status_code == 409 and "余额不足" in r.text
    assert (await w.balance(order_shop)).total_fen == 0
    # The statement on 我的余额 names the order.
    r = await s.get(f"{shop}/member/wallet")
    assert f'href="{shop}/orders/{order_id}"' in r.text


async def test_store_pages_in_english(browser: Callable[[], Browser], order_shop: OrderShop) -> None:
    pkg = await w.package(order_shop, 10_000, 1000, name="Gold 100")
    rc = await w.recharge(order_shop, package_id=pkg)
    await order_shop.place([(order_shop.skus[1], 1)], options={"use_balance": True})
    s = await shopper(browser, order_shop)
    shop = f"/m/{order_shop.tenant.code}"
    with s.language("en"):
        for path in (f"{shop}/member/wallet", f"{shop}/member/wallet/recharges/{rc.id}", f"{shop}/member/wallet/refund",
                     f"{shop}/checkout?sku_id={order_shop.skus[0]}&qty=1&use_balance=1"):
            r = await s.get(path)
            assert r.status_code == 200 and '<html lang="en">' in r.text, path
            # Data: the shop, the product (and its first character, the picture's stand-in), the address.
            left = chinese_left(r.text, "下单测试商家", "明前龙井", "张三", "浙江省", "杭州市", "西湖区", "文三路 1 号", "明")
            assert not left, (path, sorted(left))


async def test_payments_of_recharges_are_visible_to_their_owner_only(order_shop: OrderShop) -> None:
    rc, out_trade_no = await w.start(order_shop, package_id=await w.package(order_shop, 10_000))
    other = await order_shop.new_buyer()
    async with order_shop.runtime.db.uow(readonly=True) as s:
        p = await payments_service.payment_for_customer(s, order_shop.scope, out_trade_no, order_shop.buyer.customer_id)
        assert p.source_id == str(rc.id)
        with pytest.raises(Exception) as exc:
            await payments_service.payment_for_customer(s, order_shop.scope, out_trade_no, other.customer_id)
        assert getattr(exc.value, "status", None) == 404


def test_every_text_has_english() -> None:
    """Every Chinese text the stored-value pages (and 确认订单's switches) can show has English,
    error states and labels included (the pages rendered above cover the common states)."""
    from pathlib import Path

    import siyu.members.views_wallet as views
    from siyu.kit.i18n import gettext

    templates = Path(views.__file__).parents[1] / "web" / "templates"
    files = [*sorted((templates / "console" / "members").glob("wallet_*.html")),
             *sorted((templates / "store" / "members").glob("wallet_*.html")), templates / "store" / "orders" / "checkout.html"]
    patterns = [r'_\("([^"]+)"\)', r'm\.(?:field|select)\("[^"]*",\s*"([^"]+)"', r'(?:placeholder|hint)="([^"]+)"',
                r'm\.badge\("([^"]+)"', r'm\.empty\("([^"]+)"', r'\("(?:points|balance)", "([^"]+)"\)']
    cjk = re.compile(r"[\u3400-\u9fff]")
    texts: set[str] = set()
    for f in files:
        body = f.read_text(encoding="utf-8")
        for p in patterns:
            texts.update(t for t in re.findall(p, body) if cjk.search(t))
    texts.update(t for t in re.findall(r'_\("([^"]+)"\)', Path(views.__file__).read_text(encoding="utf-8")) if cjk.search(t))
    for table in (views.PART_STATUS, views.BUCKET_LABELS, views.PACKAGE_FIELD_MESSAGES, views.SETTING_FIELD_MESSAGES,
                  wallet.RECHARGE_STATUS_ZH, wallet.REFUND_STATUS_ZH, wallet.KIND_ZH):
        texts.update(table.values())
    assert len(texts) > 120
    missing = sorted(t for t in texts if gettext(t, "en") == t)
    assert not missing, missing
    still_chinese = sorted(t for t in texts if cjk.search(gettext(t, "en")))
    assert not still_chinese, still_chinese
