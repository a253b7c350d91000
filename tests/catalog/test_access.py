"""Who sees what: tenant isolation (another tenant's ids are 404, never listed), permissions
(a store guide reads but cannot write), the store API (only on-sale products, never 包裹卡),
and the read contract other modules use (skus_for_sale, get_sku, record_sales)."""

from __future__ import annotations

from typing import Any

import pytest

from siyu.catalog import service
from tests.catalog._helpers import ADMIN, create, matrix_body, publish, scope_of, single_body, store
from tests.conftest import unique


async def test_another_tenants_objects_are_404_and_never_listed(client, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    a, b = await tenant_factory(), await tenant_factory()
    owner_a, owner_b = await login_as(a), await login_as(b)
    cat = (await owner_a.post(f"{ADMIN}/categories", json={"name": "绿茶"})).json()
    p = await create(owner_a, matrix_body(category_id=cat["id"]))
    await publish(owner_a, p["id"])
    sku_id = p["skus"][0]["id"]
    for method, url, body in (
        ("GET", f"{ADMIN}/products/{p['id']}", None),
        ("PATCH", f"{ADMIN}/products/{p['id']}", {"title": "偷改"}),
        ("POST", f"{ADMIN}/products/{p['id']}/status", {"action": "unpublish"}),
        ("GET", f"{ADMIN}/skus/{sku_id}", None),
        ("GET", f"{ADMIN}/categories/{cat['id']}", None),
        ("PATCH", f"{ADMIN}/categories/{cat['id']}", {"name": "偷改"}),
        ("DELETE", f"{ADMIN}/categories/{cat['id']}", None),
    ):
        r = await owner_b.request(method, url, **({"json": body} if body is not None else {}))
        assert r.status_code == 404, (method, url, r.status_code, r.text)
        assert p["title"] not in r.text
    # Using A's category or SKU id inside B's writes is refused too.
    r = await owner_b.post(f"{ADMIN}/products", json=single_body(category_id=cat["id"]))
    assert r.status_code == 422 and r.json()["code"] == "category_not_found"
    r = await owner_b.post(f"{ADMIN}/categories", json={"name": "子", "parent_id": cat["id"]})
    assert r.status_code == 422
    mine = await create(owner_b, single_body())
    r = await owner_b.patch(f"{ADMIN}/products/{mine['id']}", json={"skus": [{"id": sku_id, "price_fen": 1}]})
    assert r.status_code == 422
    # Never listed, searched or exported.
    assert (await owner_b.get(f"{ADMIN}/products", params={"q": p["title"]})).json()["total"] == 0
    assert (await owner_b.get(f"{ADMIN}/products", params={"category_id": cat["id"]})).json()["total"] == 0
    assert cat["id"] not in [c["id"] for c in (await owner_b.get(f"{ADMIN}/categories")).json()]
    assert p["title"] not in (await owner_b.get(f"{ADMIN}/export")).text
    # B's shop does not show A's product.
    assert (await client.get(store(b, f"/products/{p['id']}"))).status_code == 404
    assert (await client.get(store(b, "/products"), params={"q": p["title"]})).json()["total"] == 0
    assert (await client.get(store(a, f"/products/{p['id']}"))).status_code == 200
    # A is untouched.
    assert (await owner_a.get(f"{ADMIN}/products/{p['id']}")).json()["title"] == p["title"]


async def test_the_read_contract_is_tenant_scoped(runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    a, b = await tenant_factory(), await tenant_factory()
    owner_a = await login_as(a)
    p = await create(owner_a, matrix_body(title="西湖龙井"))
    card = await create(owner_a, single_body("包裹卡", kind="insert_card", insert_card_type="notice", price_fen=0))
    ids = [s["id"] for s in p["skus"]]
    scope_a, scope_b = await scope_of(runtime, a), await scope_of(runtime, b)
    async with runtime.db.uow(readonly=True) as s:
        found = await service.skus_for_sale(s, scope_a, [*ids, card["skus"][0]["id"], 10**12])
        other = await service.skus_for_sale(s, scope_b, ids)
    assert other == {}
    assert set(found) == {*ids, card["skus"][0]["id"]}
    first = found[ids[0]]
    assert (first.sku_id, first.product_id, first.title, first.spec_text, first.price_fen) == (ids[0], p["id"], "西湖龙井", "50g / 罐装", 10000)
    assert first.kind == "physical" and first.requires_shipping is True and first.weight_g == 100
    assert first.on_sale is False  # still a draft
    assert found[card["skus"][0]["id"]].requires_shipping is False
    await publish(owner_a, p["id"])
    await publish(owner_a, card["id"])
    async with runtime.db.uow() as s:
        assert (await service.get_sku(s, scope_a, ids[0])).on_sale is True
        assert (await service.get_sku(s, scope_a, card["skus"][0]["id"])).on_sale is False  # cards are never sold
        with pytest.raises(Exception) as exc:
            await service.get_sku(s, scope_b, ids[0])
        assert getattr(exc.value, "status", None) == 404
        await service.record_sales(s, scope_a, {p["id"]: 3})
        await service.record_sales(s, scope_b, {p["id"]: 100})  # another tenant's id: nothing happens
        await service.record_sales(s, scope_a, {p["id"]: -10})  # never below zero
    assert (await owner_a.get(f"{ADMIN}/products/{p['id']}")).json()["sales_count"] == 3


async def test_a_store_guide_reads_but_cannot_write(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    guide = await login_as(t, "store_guide")
    p = await create(owner, single_body())
    assert (await guide.get(f"{ADMIN}/products")).status_code == 200
    assert (await guide.get(f"{ADMIN}/products/{p['id']}")).status_code == 200
    assert (await guide.get(f"{ADMIN}/categories")).status_code == 200
    assert (await guide.get(f"{ADMIN}/export")).status_code == 200
    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", f"{ADMIN}/products", {"json": single_body()}),
        ("PATCH", f"{ADMIN}/products/{p['id']}", {"json": {"title": "改"}}),
        ("POST", f"{ADMIN}/products/{p['id']}/status", {"json": {"action": "publish"}}),
        ("POST", f"{ADMIN}/categories", {"json": {"name": "新"}}),
        ("POST", f"{ADMIN}/images", {"files": {"file": ("a.png", b"x", "image/png")}}),
        ("POST", f"{ADMIN}/import", {"files": {"file": ("a.csv", b"sku_code,price\r\n", "text/csv")}}),
    ]
    for method, url, kw in writes:
        r = await guide.request(method, url, **kw)
        assert r.status_code == 403 and r.json()["code"] == "permission_denied", (method, url, r.text)
        assert r.json()["permission"] == "catalog.write"
    assert (await owner.get(f"{ADMIN}/products/{p['id']}")).json()["status"] == "draft"
    # Finance has no catalog permission at all.
    finance = await login_as(t, "finance")
    r = await finance.get(f"{ADMIN}/products")
    assert r.status_code == 403 and r.json()["permission"] == "catalog.read"


async def test_the_store_api_shows_only_on_sale_products(client, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    tea = (await owner.post(f"{ADMIN}/categories", json={"name": "茶叶", "sort": 2})).json()
    green = (await owner.post(f"{ADMIN}/categories", json={"name": "绿茶", "parent_id": tea["id"]})).json()
    hidden = (await owner.post(f"{ADMIN}/categories", json={"name": "内部", "is_visible": False})).json()
    (await owner.post(f"{ADMIN}/categories", json={"name": "隐藏子类", "parent_id": hidden["id"]})).json()
    ware = (await owner.post(f"{ADMIN}/categories", json={"name": "茶器", "sort": 1})).json()
    title = unique("龙井")
    body = matrix_body(title, category_id=green["id"], description_html="<p>好茶</p>")
    body["skus"][0]["market_price_fen"] = 15000
    body["skus"][2]["market_price_fen"] = 99900  # a dearer SKU's 划线价 is not the card's
    body["skus"][3]["enabled"] = False
    on_sale = await create(owner, body)
    await publish(owner, on_sale["id"])
    draft = await create(owner, single_body(unique("草稿茶"), category_id=green["id"]))
    off = await create(owner, single_body(unique("下架茶")))
    await publish(owner, off["id"])
    await owner.post(f"{ADMIN}/products/{off['id']}/status", json={"action": "unpublish"})
    card = await create(owner, single_body(unique("包裹卡"), kind="insert_card", insert_card_type="brand"))
    await publish(owner, card["id"])
    cup = await create(owner, single_body(unique("品茗杯"), price_fen=3900, category_id=ware["id"]))
    await publish(owner, cup["id"])

    r = await client.get(store(t, "/categories"))
    assert r.status_code == 200
    tree = r.json()
    assert [c["name"] for c in tree] == ["茶器", "茶叶"]  # sort, hidden left out
    assert [c["name"] for c in tree[1]["children"]] == ["绿茶"]
    r = await client.get(store(t, "/products"), params={"page_size": 50})
    listed = {p["id"] for p in r.json()["items"]}
    assert listed == {on_sale["id"], cup["id"]}
    card_of = next(p for p in r.json()["items"] if p["id"] == on_sale["id"])
    assert card_of["market_price_fen"] == 15000 and card_of["price_min_fen"] == 10000 and card_of["price_max_fen"] == 11000
    assert "cost_price_fen" not in r.text and "status" not in card_of
    assert [p["id"] for p in (await client.get(store(t, "/products"), params={"category_id": tea["id"]})).json()["items"]] \
        == [on_sale["id"]]
    assert [p["id"] for p in (await client.get(store(t, "/products"), params={"q": title})).json()["items"]] == [on_sale["id"]]
    assert [p["id"] for p in (await client.get(store(t, "/products"), params={"sort": "price_asc"})).json()["items"]] \
        == [cup["id"], on_sale["id"]]

    r = await client.get(store(t, f"/products/{on_sale['id']}"))
    assert r.status_code == 200
    detail = r.json()
    assert detail["description_html"] == "<p>好茶</p>" and detail["requires_shipping"] is True
    assert len(detail["skus"]) == 3  # the disabled SKU is not offered
    assert {s["spec_text"] for s in detail["skus"]} == {"50g / 罐装", "50g / 袋装", "100g / 罐装"}
    # Availability: stock comes from inventory; without known stock every active SKU is offered.
    for s in detail["skus"]:
        assert s["available"] is (s["stock"] is None or s["stock"] > 0)
        assert "cost_price_fen" not in s and "code" not in s
    for pid in (draft["id"], off["id"], card["id"], 10**12):
        r = await client.get(store(t, f"/products/{pid}"))
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), pid
    assert (await client.get(store("nosuchshop", "/products"))).status_code == 404
