"""The console's payment pages, driven like a browser: list with filters, detail with its
timeline, the notification log, and the payment settings form (secrets never echoed), in
Chinese and in English."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from siyu.kit.runtime import Runtime
from tests._pages import Browser, browsers, chinese_left, make_staff, owner_browser, staff_sign_in
from tests.conftest import TenantInfo, drain_outbox
from tests.payments._helpers import (
    FakeWeChat,
    do_refund,
    new_payment,
    paid_payment,
    post_notification,
    sandbox_body,
    sandbox_headers,
    wx_keys,
)


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[Callable[[], Browser]]:
    async with browsers(app) as make:
        yield make


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its cheapest for these sign-in-heavy tests (same code path, lower cost)."""
    from argon2 import PasswordHasher

    from siyu.kit import security

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(security, "_hasher", cheap)
    monkeypatch.setattr(security, "_DUMMY_HASH", cheap.hash("siyu-dummy-password"))


async def _history(runtime: Runtime, shop: TenantInfo, client: Any) -> tuple[Any, Any]:
    p = await paid_payment(runtime, shop, 2680, description="Spring Dragon Well 250g")
    await do_refund(runtime, shop, p.id, 680, reason="damaged")
    await drain_outbox(runtime)
    body = sandbox_body(p.out_trade_no, 1)
    await post_notification(client, "sandbox", body, sandbox_headers(runtime, body))  # a refused one
    pending = await new_payment(runtime, shop, 99, description="Oolong sampler")
    return p, pending


async def test_list_detail_and_notification_log(runtime: Runtime, shop: TenantInfo, browser: Callable[[], Browser],
                                                client: Any) -> None:
    p, pending = await _history(runtime, shop, client)
    b = await owner_browser(browser, shop)

    page = await b.get("/admin/payments")
    assert page.status_code == 200
    assert p.out_trade_no in page.text and pending.payment.out_trade_no in page.text
    assert "¥26.80" in page.text and "¥6.80" in page.text and "支付成功" in page.text and "待支付" in page.text
    filtered = await b.get("/admin/payments?status=pending")
    assert pending.payment.out_trade_no in filtered.text and p.out_trade_no not in filtered.text
    nothing = await b.get("/admin/payments?date_from=2001-01-01&date_to=2001-01-02&gateway=wechat&status=bogus&date_to=x")
    assert nothing.status_code == 200 and "没有符合条件的支付记录" in nothing.text

    detail = await b.get(f"/admin/payments/{p.id}")
    assert detail.status_code == 200
    for text in ("时间线", "创建支付单", "渠道通知", "申请退款", "退款成功", "TRANSACTION.SUCCESS", "REFUND.SUCCESS",
                 "damaged", "¥20.00"):
        assert text in detail.text, text
    assert (await b.get("/admin/payments/999999999")).status_code == 404

    log = await b.get("/admin/payments/notifications")
    assert log.status_code == 200 and "已处理" in log.text and "已拒绝" in log.text and "wrong_amount" in log.text
    only = await b.get("/admin/payments/notifications?outcome=rejected")
    assert "已处理" not in only.text.split("<tbody", 1)[1]

    with b.language("en"):
        for url in ("/admin/payments", f"/admin/payments/{p.id}", "/admin/payments/notifications",
                    "/admin/payments/settings", "/admin/payments?status=closed"):
            en = await b.get(url)
            assert en.status_code == 200, url
            # data, not interface: the shop's and the owner's names
            assert chinese_left(en.text, shop.name, "店主", "店") == set(), url  # ("店": the avatar initial)


async def test_settings_form_saves_without_echoing_secrets(runtime: Runtime, shop: TenantInfo, browser: Callable[[], Browser],
                                                           fake_wechat: FakeWeChat) -> None:
    keys = wx_keys()
    b = await owner_browser(browser, shop)
    page = await b.get("/admin/payments/settings")
    assert page.status_code == 200 and "沙箱支付" in page.text and "微信支付 APIv3" in page.text

    bad = await b.post("/admin/payments/settings/wechat", {"mchid": "abc", "enabled": "1"})
    assert bad.status_code == 422 and "商户号为 6–20 位数字" in bad.text

    incomplete = await b.post("/admin/payments/settings/wechat", {"mchid": keys.mchid, "enabled": "1"})
    assert incomplete.status_code == 422 and "启用微信支付前请补全" in incomplete.text

    r = await b.post("/admin/payments/settings/wechat", {
        "mchid": keys.mchid, "appid": keys.appid, "merchant_serial_no": keys.merchant_serial,
        "private_key_pem": keys.merchant_pem, "apiv3_key": keys.apiv3_key, "add_platform_certificates": keys.platform_cert_pem,
        "public_key_id": keys.pub_key_id, "public_key_pem": keys.pub_key_pem, "channels": ["jsapi", "native"], "enabled": "1",
    })
    assert r.status_code == 303, r.text[:500]
    saved = await b.follow(r)
    assert "已保存微信支付设置" in saved.text
    assert keys.platform_serial in saved.text and keys.pub_key_id in saved.text and "已设置，留空则保持不变" in saved.text
    assert "PRIVATE KEY" not in saved.text and keys.apiv3_key not in saved.text

    # Saving again with the secret fields blank keeps them, and removing a certificate works.
    r = await b.post("/admin/payments/settings/wechat", {
        "mchid": keys.mchid, "appid": keys.appid, "merchant_serial_no": keys.merchant_serial,
        "public_key_id": keys.pub_key_id, "channels": ["jsapi"], "enabled": "1",
        "remove_platform_certificates": [keys.platform_serial],
    })
    assert r.status_code == 303
    again = await b.follow(r)
    assert keys.platform_serial not in again.text and "还没有平台证书" in again.text

    r = await b.post("/admin/payments/settings/wechat/certificates")
    assert r.status_code == 303
    assert keys.platform_serial in (await b.follow(r)).text

    r = await b.post("/admin/payments/settings/sandbox", {"enabled": "0"})
    assert r.status_code == 303 and "启用沙箱支付" in (await b.follow(r)).text

    forged = await b.post("/admin/payments/settings/sandbox", {"enabled": "1"}, csrf=False)
    assert forged.status_code == 403


async def test_pages_need_their_permissions(runtime: Runtime, shop: TenantInfo, browser: Callable[[], Browser]) -> None:
    _id, username, password = await make_staff(runtime, shop, "store_guide")
    b = browser()
    await staff_sign_in(b, username, password)
    for url in ("/admin/payments", "/admin/payments/notifications", "/admin/payments/settings"):
        assert (await b.get(url)).status_code == 403, url
    _id, username, password = await make_staff(runtime, shop, "finance")
    f = browser()
    await staff_sign_in(f, username, password)
    assert (await f.get("/admin/payments")).status_code == 200
    assert (await f.get("/admin/payments/settings")).status_code == 403
    anon = browser()
    r = await anon.get("/admin/payments")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
