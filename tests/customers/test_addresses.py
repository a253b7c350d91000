"""The shopper's address book: the store API (default handling, the limit of 20, region
validation, another customer's or tenant's address is 404) and the storefront pages
(``/m/{shop}/me/addresses``) driven through their forms."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from siyu.customers.schemas import PROVINCES
from siyu.kit import clock
from tests._pages import Browser, browsers, chinese_left, field_error
from tests.conftest import unique_phone
from tests.customers._helpers import sms_login, store_url
from tests.customers.test_storefront_pages import shopper_sign_in

ADDRESS: dict[str, Any] = {"receiver_name": "王小明", "phone": "13800138000", "province_code": "33", "city": "杭州市",
                           "district": "西湖区", "detail": "龙井路 18 号 3 幢 201", "postal_code": "310013"}


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make


@pytest.fixture(autouse=True)
def _real_time() -> Any:
    clock.reset()
    yield
    clock.reset()


async def _add(client, t, shopper, **changes: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = await client.post(store_url(t, "/me/addresses"), json={**ADDRESS, **changes}, headers=shopper.auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _list(client, t, shopper) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    r = await client.get(store_url(t, "/me/addresses"), headers=shopper.auth)
    assert r.status_code == 200, r.text
    return list(r.json())


def _defaults(rows: list[dict[str, Any]]) -> list[int]:
    return [a["id"] for a in rows if a["is_default"]]


async def test_the_default_address_is_always_exactly_one(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    me = await sms_login(client, runtime, t, unique_phone())
    assert await _list(client, t, me) == []
    first = await _add(client, t, me)
    assert first["is_default"] and first["province"] == "浙江省" and first["phone"] == "13800138000"
    second = await _add(client, t, me, receiver_name="李四", province_code="上海市", city="上海市", district="静安区")
    assert second["province_code"] == "31" and not second["is_default"], "a province may be given by its name"
    third = await _add(client, t, me, receiver_name="张三", is_default=True)
    rows = await _list(client, t, me)
    assert _defaults(rows) == [third["id"]] and [a["id"] for a in rows] == [third["id"], second["id"], first["id"]]

    r = await client.post(store_url(t, f"/me/addresses/{second['id']}/default"), headers=me.auth)
    assert r.status_code == 200 and r.json()["is_default"]
    assert _defaults(await _list(client, t, me)) == [second["id"]]
    # Un-marking the default changes nothing: a default always remains.
    r = await client.patch(store_url(t, f"/me/addresses/{second['id']}"), json={"is_default": False, "detail": "新地址 1 号"},
                           headers=me.auth)
    assert r.status_code == 200 and r.json()["is_default"] and r.json()["detail"] == "新地址 1 号"
    r = await client.patch(store_url(t, f"/me/addresses/{first['id']}"), json={"is_default": True, "postal_code": None},
                           headers=me.auth)
    assert r.status_code == 200 and r.json()["postal_code"] is None
    assert _defaults(await _list(client, t, me)) == [first["id"]]

    # Deleting the default promotes the newest remaining address.
    assert (await client.delete(store_url(t, f"/me/addresses/{first['id']}"), headers=me.auth)).status_code == 204
    assert _defaults(await _list(client, t, me)) == [third["id"]]
    assert (await client.delete(store_url(t, f"/me/addresses/{second['id']}"), headers=me.auth)).status_code == 204
    assert _defaults(await _list(client, t, me)) == [third["id"]]
    assert (await client.delete(store_url(t, f"/me/addresses/{third['id']}"), headers=me.auth)).status_code == 204
    assert await _list(client, t, me) == []
    assert (await _add(client, t, me))["is_default"], "after emptying the book, the next address is the default again"


async def test_at_most_twenty_addresses(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    me = await sms_login(client, runtime, t, unique_phone())
    for i in range(20):
        await _add(client, t, me, detail=f"测试路 {i} 号")
    r = await client.post(store_url(t, "/me/addresses"), json=ADDRESS, headers=me.auth)
    assert r.status_code == 409 and r.json()["code"] == "address_limit"
    rows = await _list(client, t, me)
    assert len(rows) == 20 and len(_defaults(rows)) == 1


async def test_region_and_field_validation(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    me = await sms_login(client, runtime, t, unique_phone())
    bad: list[dict[str, Any]] = [
        {"province_code": "99"}, {"province_code": "火星省"}, {"province_code": ""}, {"province_code": 33},
        {"city": ""}, {"district": "   "}, {"city": "x" * 41}, {"detail": "a"}, {"detail": "龙井路\n18 号"},
        {"phone": "12345"}, {"receiver_name": ""}, {"postal_code": "31001"}, {"postal_code": "abcdef"},
        {"tenant_id": 1}, {"customer_id": 1},
    ]
    for change in bad:
        r = await client.post(store_url(t, "/me/addresses"), json={**ADDRESS, **change}, headers=me.auth)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (change, r.text)
    assert await _list(client, t, me) == []
    a = await _add(client, t, me, phone="+86 13900139000", postal_code="")
    assert a["phone"] == "13900139000" and a["postal_code"] is None
    r = await client.patch(store_url(t, f"/me/addresses/{a['id']}"), json={"province_code": "00"}, headers=me.auth)
    assert r.status_code == 422
    r = await client.get(store_url(t, "/regions/provinces"))
    assert r.status_code == 200 and len(r.json()) == 34
    assert {"code": "11", "name": "北京市"} in r.json() and {"code": "82", "name": "澳门特别行政区"} in r.json()


async def test_another_customers_or_tenants_address_is_404(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    alice = await sms_login(client, runtime, t, unique_phone())
    bob = await sms_login(client, runtime, t, unique_phone())
    addr = await _add(client, t, alice)
    for method, path, body in (("GET", "", None), ("PATCH", "", {"city": "宁波市"}), ("DELETE", "", None),
                               ("POST", "/default", None)):
        r = await client.request(method, store_url(t, f"/me/addresses/{addr['id']}{path}"), json=body, headers=bob.auth)
        assert r.status_code == 404 and r.json()["code"] == "address_not_found", (method, path)
    assert await _list(client, t, bob) == []
    # The same phone at another shop is another customer: still 404.
    other = await tenant_factory()
    carol = await sms_login(client, runtime, other, unique_phone())
    r = await client.get(store_url(other, f"/me/addresses/{addr['id']}"), headers=carol.auth)
    assert r.status_code == 404
    # Alice's token is not signed in at the other shop.
    r = await client.get(store_url(other, "/me/addresses"), headers=alice.auth)
    assert r.status_code == 401
    assert (await client.get(store_url(t, "/me/addresses"))).status_code == 401
    assert (await _list(client, t, alice))[0]["city"] == "杭州市", "nothing of Alice's changed"


# -- storefront pages ---------------------------------------------------------------------------


FORM = {**ADDRESS, "province_code": "33"}


async def test_address_pages(browser, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory("Green Hill Tea")
    base = f"/m/{t.code}"
    b = browser()
    r = await b.get(f"{base}/me/addresses")
    assert r.status_code == 303 and "/login" in r.headers["location"], "signed-out shoppers sign in first"
    me = await shopper_sign_in(b, t, unique_phone())
    assert f'href="{base}/me/addresses"' in me.text, "我的 links to the address book"

    r = await b.get(f"{base}/me/addresses")
    assert r.status_code == 200 and "还没有收货地址" in r.text and f'href="{base}/me/addresses/new"' in r.text
    r = await b.get(f"{base}/me/addresses/new")
    assert r.status_code == 200 and 'name="province_code"' in r.text and '<option value="82">澳门特别行政区</option>' in r.text

    # Bad input: the form again with the messages, nothing saved.
    r = await b.post(f"{base}/me/addresses", {**FORM, "phone": "123", "province_code": "99", "city": ""})
    assert r.status_code == 422
    assert field_error(r.text, "phone") == "请输入正确的 11 位手机号" and field_error(r.text, "province_code") == "请选择省份"
    assert field_error(r.text, "city") and 'value="龙井路 18 号 3 幢 201"' in r.text

    r = await b.post(f"{base}/me/addresses", FORM)
    assert r.status_code == 303 and r.headers["location"] == f"{base}/me/addresses"
    page = await b.follow(r)
    assert "收货地址已保存" in page.text and "王小明" in page.text and "138****8000" in page.text
    assert "浙江省 杭州市 西湖区 龙井路 18 号 3 幢 201" in page.text and "默认" in page.text
    r = await b.post(f"{base}/me/addresses", {**FORM, "receiver_name": "李四", "province_code": "44", "city": "广州市",
                                             "district": "天河区", "postal_code": ""})
    assert r.status_code == 303
    async with runtime.db.uow(readonly=True) as s:
        from siyu.customers import service
        from siyu.tenants import service as tenants_service

        scope = tenants_service.scope_of(await tenants_service.get_tenant(s, t.id))
        customer_id = (await service.list_customers(s, scope))[0][0].id
        rows = await service.list_addresses(s, scope, customer_id)
    wang, li = next(a for a in rows if a.receiver_name == "王小明"), next(a for a in rows if a.receiver_name == "李四")
    assert wang.is_default and not li.is_default

    # Edit: the form is filled in; saving changes it and may take over the default.
    r = await b.get(f"{base}/me/addresses/{li.id}")
    assert r.status_code == 200 and 'value="李四"' in r.text and '<option value="44" selected>' in r.text
    r = await b.post(f"{base}/me/addresses/{li.id}", {**FORM, "receiver_name": "李四", "detail": "天河路 208 号",
                                                      "province_code": "44", "is_default": "1"})
    assert r.status_code == 303
    page = await b.follow(r)
    assert page.text.index("李四") < page.text.index("王小明"), "the default comes first"
    assert "天河路 208 号" in page.text
    # Set default, delete: plain forms with _csrf; without it the post is refused.
    assert (await b.post(f"{base}/me/addresses/{wang.id}/default", csrf=False)).status_code == 403
    r = await b.post(f"{base}/me/addresses/{wang.id}/default")
    assert r.status_code == 303 and "已设为默认地址" in (await b.follow(r)).text
    r = await b.post(f"{base}/me/addresses/{wang.id}/delete")
    assert r.status_code == 303
    page = await b.follow(r)
    assert "收货地址已删除" in page.text and "王小明" not in page.text
    assert "默认" in page.text, "the remaining address became the default"

    # Another shopper's address is a 404 page, for reading and for every form.
    b2 = browser()
    await shopper_sign_in(b2, t, unique_phone())
    assert (await b2.get(f"{base}/me/addresses/{li.id}")).status_code == 404
    for path in (f"/me/addresses/{li.id}", f"/me/addresses/{li.id}/default", f"/me/addresses/{li.id}/delete"):
        assert (await b2.post(base + path, FORM)).status_code == 404, path

    # English.
    with b.language("en"):
        for path in ("/me/addresses", "/me/addresses/new", f"/me/addresses/{li.id}"):
            r = await b.get(base + path)
            assert r.status_code == 200
            # What the shopper typed and the province names (what goes on the parcel) stay as they are.
            left = chinese_left(r.text, "Green Hill Tea", "李四", "杭州市", "西湖区", "天河路 208 号", *PROVINCES.values())
            assert not left, (path, left)
