"""The admin and store JSON APIs of payments: permissions, tenant isolation, the
notification log, gateway settings with write-only secrets, and a shopper's own payment."""

from __future__ import annotations

from typing import Any

import httpx

from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope
from siyu.payments import service
from tests.conftest import TenantInfo, drain_outbox, unique, unique_phone
from tests.customers._helpers import sms_login, store_url
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

API = "/api/admin/v1/payments"


async def test_list_and_detail_with_transitions_refunds_and_notifications(runtime: Runtime, shop: TenantInfo,
                                                                          login_as: Any) -> None:
    p = await paid_payment(runtime, shop, 1500, description="白茶礼盒")
    r = await do_refund(runtime, shop, p.id, 500)
    await drain_outbox(runtime)
    pending = await new_payment(runtime, shop, 99)
    owner = await login_as(shop)

    page = (await owner.get(API)).json()
    assert page["total"] == 2 and [i["id"] for i in page["items"]] == [pending.payment.id, p.id]
    assert (await owner.get(API, params={"status": "succeeded"})).json()["total"] == 1
    assert (await owner.get(API, params={"q": p.out_trade_no[-8:]})).json()["items"][0]["id"] == p.id
    assert (await owner.get(API, params={"q": "白茶"})).json()["total"] == 1
    assert (await owner.get(API, params={"gateway": "wechat"})).json()["total"] == 0
    assert (await owner.get(API, params={"created_from": "2000-01-01", "created_to": "2000-01-02"})).json()["total"] == 0
    assert (await owner.get(API, params={"status": "paid"})).status_code == 422

    d = (await owner.get(f"{API}/{p.id}")).json()
    assert (d["status"], d["amount_fen"], d["refunded_fen"]) == ("succeeded", 1500, 500)
    assert [(t["from_status"], t["to_status"], t["cause"]) for t in d["transitions"]] == [
        ("new", "pending", "created"), ("pending", "succeeded", "notification")]
    assert [(x["out_refund_no"], x["status"], x["amount_fen"]) for x in d["refunds"]] == [(r.out_refund_no, "succeeded", 500)]
    assert {n["event_type"] for n in d["notifications"]} == {"TRANSACTION.SUCCESS", "REFUND.SUCCESS"}

    log = (await owner.get(f"{API}/notifications")).json()
    assert log["total"] == 2 and {n["outcome"] for n in log["items"]} == {"processed"}
    assert (await owner.get(f"{API}/notifications", params={"reference": r.out_refund_no})).json()["total"] == 1


async def test_permissions(runtime: Runtime, shop: TenantInfo, login_as: Any, client: httpx.AsyncClient) -> None:
    p = await paid_payment(runtime, shop, 100)
    guide = await login_as(shop, "store_guide")
    for url in (API, f"{API}/{p.id}", f"{API}/notifications", f"{API}/gateways"):
        r = await guide.get(url)
        assert r.status_code == 403 and r.json()["code"] == "permission_denied", url
    finance = await login_as(shop, "finance")
    assert (await finance.get(f"{API}/{p.id}")).status_code == 200
    assert (await finance.get(f"{API}/notifications")).status_code == 200
    assert (await finance.get(f"{API}/gateways")).status_code == 403, "gateway settings need settings.write"
    assert (await finance.request("PUT", f"{API}/gateways/sandbox", json={"enabled": False})).status_code == 403
    assert (await client.get(API)).status_code == 401


async def test_tenant_isolation(runtime: Runtime, shop: TenantInfo, tenant_factory: Any, login_as: Any,
                                client: httpx.AsyncClient) -> None:
    p = await paid_payment(runtime, shop, 100)
    body = sandbox_body(p.out_trade_no, 999)  # a refused one, attributed to shop
    await post_notification(client, "sandbox", body, sandbox_headers(runtime, body))
    other = await tenant_factory("别家")
    them = await login_as(other)
    r = await them.get(f"{API}/{p.id}")
    assert r.status_code == 404 and r.json()["code"] == "payment_not_found"
    assert (await them.get(API)).json()["total"] == 0
    assert (await them.get(f"{API}/notifications")).json()["total"] == 0
    assert (await them.get(f"{API}/notifications", params={"reference": p.out_trade_no})).json()["total"] == 0
    mine = await login_as(shop)
    assert (await mine.get(f"{API}/notifications", params={"outcome": "rejected"})).json()["total"] == 1


async def test_gateway_secrets_are_write_only(runtime: Runtime, shop: TenantInfo, login_as: Any,
                                              fake_wechat: FakeWeChat) -> None:
    keys = wx_keys()
    owner = await login_as(shop)
    got = (await owner.get(f"{API}/gateways")).json()
    assert got["sandbox"]["enabled"] is True and got["wechat"]["enabled"] is False
    assert "private_key_pem" in " ".join(got["wechat"]["missing"])

    r = await owner.request("PUT", f"{API}/gateways/wechat", json={"enabled": True, "mchid": keys.mchid})
    assert r.status_code == 422 and r.json()["code"] == "wechat_config_incomplete"

    body = {"enabled": True, "mchid": keys.mchid, "appid": keys.appid, "merchant_serial_no": keys.merchant_serial,
            "private_key_pem": keys.merchant_pem, "apiv3_key": keys.apiv3_key,
            "platform_certificates": [keys.platform_cert_pem], "public_key_id": keys.pub_key_id,
            "public_key_pem": keys.pub_key_pem, "channels": ["jsapi", "native"]}
    r = await owner.request("PUT", f"{API}/gateways/wechat", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["enabled"] and out["private_key_set"] and out["apiv3_key_set"] and out["public_key_set"]
    assert [c["serial"] for c in out["platform_certificates"]] == [keys.platform_serial]
    assert out["channels"] == ["jsapi", "native"] and out["missing"] == []
    for text in (r.text, (await owner.get(f"{API}/gateways")).text,
                 (await owner.get("/api/admin/v1/audit-log", params={"object_type": "payment_gateway"})).text):
        assert "PRIVATE KEY" not in text and keys.apiv3_key not in text
    audit = (await owner.get("/api/admin/v1/audit-log", params={"object_type": "payment_gateway"})).json()["items"][0]
    assert audit["action"] == "payments.gateway.update" and audit["after"]["replaced"] == ["apiv3_key", "private_key_pem"]

    # Leaving secrets out keeps them; the gateway still works.
    r = await owner.request("PUT", f"{API}/gateways/wechat", json={"appid": keys.appid, "channels": ["jsapi", "h5", "native"]})
    assert r.json()["private_key_set"] and r.json()["enabled"]
    async with runtime.db.uow() as s:
        assert await service.available_channels(s, TenantScope(shop.id, shop.code)) == ["sandbox", "jsapi", "h5", "native"]

    # Bad PEMs and keys are refused at the door.
    for bad in ({"private_key_pem": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"},
                {"apiv3_key": "short"}, {"platform_certificates": ["not a cert"]}, {"public_key_pem": "x"},
                {"mchid": "abc"}, {"secret": "x"}):
        assert (await owner.request("PUT", f"{API}/gateways/wechat", json=bad)).status_code == 422, bad

    # Certificates can also be downloaded from WeChat Pay (they decrypt with the APIv3 key).
    r = await owner.request("PUT", f"{API}/gateways/wechat", json={"platform_certificates": []})
    assert r.json()["platform_certificates"] == []
    r = await owner.post(f"{API}/gateways/wechat/certificates/download")
    assert r.status_code == 200, r.text
    assert [c["serial"] for c in r.json()["platform_certificates"]] == [keys.platform_serial]


async def test_the_sandbox_can_be_switched_off(runtime: Runtime, shop: TenantInfo, login_as: Any) -> None:
    owner = await login_as(shop)
    r = await owner.request("PUT", f"{API}/gateways/sandbox", json={"enabled": False})
    assert r.status_code == 200 and r.json() == {**r.json(), "enabled": False, "explicit": True}
    from siyu.kit.errors import Conflict

    try:
        await new_payment(runtime, shop, 100)
        raise AssertionError("the sandbox took a payment while switched off")
    except Conflict as exc:
        assert exc.code == "payment_gateway_disabled"


async def test_a_shopper_sees_only_their_own_payment(runtime: Runtime, shop: TenantInfo, client: httpx.AsyncClient) -> None:
    alice = await sms_login(client, runtime, shop, unique_phone())
    bob = await sms_login(client, runtime, shop, unique_phone())
    owners = {"A-" + unique(""): alice.customer_id}

    async def owner_of(session: Any, scope: TenantScope, source_id: str) -> int | None:
        return owners.get(source_id)

    service.register_source_owner("shopord", owner_of)
    source = next(iter(owners))
    start = await new_payment(runtime, shop, 880, source_type="shopord", source_id=source)
    url = store_url(shop, f"/payments/{start.payment.out_trade_no}")

    r = await client.get(url, headers=alice.auth)
    assert r.status_code == 200, r.text
    assert r.json() == {**r.json(), "out_trade_no": start.payment.out_trade_no, "status": "pending", "amount_fen": 880}
    assert set(r.json()) == {"out_trade_no", "status", "amount_fen", "channel", "source_type", "source_id", "expires_at", "paid_at"}
    assert (await client.get(url, headers=bob.auth)).status_code == 404
    assert (await client.get(url)).status_code == 401
    # a source type nobody registered is never shown
    plain = await new_payment(runtime, shop, 10)
    assert (await client.get(store_url(shop, f"/payments/{plain.payment.out_trade_no}"), headers=alice.auth)).status_code == 404
