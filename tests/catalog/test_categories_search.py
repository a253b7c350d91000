"""The category tree (depth, cycles, sibling names, delete rules) and product search and
filters (text on title and SKU code, category with its descendants, status, kind, price
range, sort, paging)."""

from __future__ import annotations

from typing import Any

from tests.catalog._helpers import ADMIN, create, matrix_body, publish, single_body
from tests.conftest import StaffClient, unique


async def _cat(owner: StaffClient, name: str, parent: int | None = None, **extra: Any) -> dict[str, Any]:
    r = await owner.post(f"{ADMIN}/categories", json={"name": name, "parent_id": parent, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_the_tree_is_at_most_three_levels_and_has_no_cycles(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    tea = await _cat(owner, "茶叶")
    green = await _cat(owner, "绿茶", tea["id"])
    longjing = await _cat(owner, "龙井", green["id"])
    assert (tea["depth"], green["depth"], longjing["depth"]) == (1, 2, 3)
    assert longjing["path"] == "茶叶/绿茶/龙井"
    r = await owner.post(f"{ADMIN}/categories", json={"name": "明前", "parent_id": longjing["id"]})
    assert r.status_code == 422 and r.json()["code"] == "category_too_deep"
    # No cycles: not under itself, not under a descendant.
    for target in (tea["id"], green["id"], longjing["id"]):
        r = await owner.patch(f"{ADMIN}/categories/{tea['id']}", json={"parent_id": target})
        assert r.status_code == 422 and r.json()["code"] == "category_cycle", target
    # Moving a two-level subtree under a second-level category would make four levels.
    other = await _cat(owner, "器具")
    cups = await _cat(owner, "杯", other["id"])
    r = await owner.patch(f"{ADMIN}/categories/{green['id']}", json={"parent_id": cups["id"]})
    assert r.status_code == 422 and r.json()["code"] == "category_too_deep"
    # Moving it under a top-level category is fine; the children follow.
    r = await owner.patch(f"{ADMIN}/categories/{green['id']}", json={"parent_id": other["id"]})
    assert r.status_code == 200 and r.json()["path"] == "器具/绿茶"
    assert (await owner.get(f"{ADMIN}/categories/{longjing['id']}")).json()["path"] == "器具/绿茶/龙井"
    # null moves to the top level.
    r = await owner.patch(f"{ADMIN}/categories/{green['id']}", json={"parent_id": None})
    assert r.status_code == 200 and r.json()["depth"] == 1
    # Tree order: parents before children.
    listed = (await owner.get(f"{ADMIN}/categories")).json()
    order = [c["id"] for c in listed]
    assert order.index(green["id"]) < order.index(longjing["id"]) and order.index(other["id"]) < order.index(cups["id"])


async def test_sibling_names_are_unique_and_deleting_needs_an_empty_category(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    tea = await _cat(owner, "茶叶")
    white = await _cat(owner, "白茶", tea["id"])
    r = await owner.post(f"{ADMIN}/categories", json={"name": "白茶", "parent_id": tea["id"]})
    assert r.status_code == 409 and r.json()["code"] == "category_name_taken"
    assert (await owner.post(f"{ADMIN}/categories", json={"name": "白茶"})).status_code == 201  # another level
    for bad in ("a/b", "", " ", "x" * 61, "a\x00"):
        assert (await owner.post(f"{ADMIN}/categories", json={"name": bad})).status_code == 422, bad
    p = await create(owner, single_body(category_id=white["id"]))
    r = await owner.delete(f"{ADMIN}/categories/{tea['id']}")
    assert r.status_code == 409 and r.json()["code"] == "category_has_children"
    r = await owner.delete(f"{ADMIN}/categories/{white['id']}")
    assert r.status_code == 409 and r.json()["code"] == "category_has_products"
    assert (await owner.get(f"{ADMIN}/categories/{white['id']}")).json()["product_count"] == 1
    r = await owner.patch(f"{ADMIN}/products/{p['id']}", json={"category_id": None})
    assert r.status_code == 200 and r.json()["category_id"] is None
    assert (await owner.delete(f"{ADMIN}/categories/{white['id']}")).status_code == 204
    assert (await owner.delete(f"{ADMIN}/categories/{tea['id']}")).status_code == 204
    assert (await owner.get(f"{ADMIN}/categories/{tea['id']}")).status_code == 404


async def test_search_and_filters(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    tea = await _cat(owner, "茶叶")
    green = await _cat(owner, "绿茶", tea["id"])
    ware = await _cat(owner, "茶器")
    code = unique("QS-")
    lj_body = matrix_body("西湖龙井", base=12800, category_id=green["id"])
    lj_body["skus"][0]["code"] = code
    lj = await create(owner, lj_body)  # 128.00–139.00
    white = await create(owner, single_body("白毫银针", price_fen=26800, category_id=tea["id"]))
    cup = await create(owner, single_body("青瓷品茗杯", price_fen=3900, category_id=ware["id"]))
    card = await create(owner, single_body("包裹卡 · 上新通知", price_fen=0, kind="insert_card", insert_card_type="notice"))
    voucher = await create(owner, single_body("100元_储值%券", price_fen=10000, kind="voucher"))
    await publish(owner, lj["id"])
    await publish(owner, cup["id"])

    async def ids(**params: Any) -> list[int]:
        r = await owner.get(f"{ADMIN}/products", params={"page_size": 50, **params})
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    everything = [voucher["id"], card["id"], cup["id"], white["id"], lj["id"]]
    assert await ids() == everything  # newest first
    assert await ids(q="龙井") == [lj["id"]]
    assert await ids(q=code.lower()) == [lj["id"]]  # SKU code, case-insensitive
    assert await ids(q="%") == [voucher["id"]] and await ids(q="_") == [voucher["id"]]  # wildcards are literal
    assert await ids(q="no such tea") == []
    assert await ids(category_id=tea["id"]) == [white["id"], lj["id"]]  # includes 绿茶
    assert await ids(category_id=green["id"]) == [lj["id"]]
    assert await ids(status="on_sale") == [cup["id"], lj["id"]]
    assert await ids(status="draft", kind="insert_card") == [card["id"]]
    assert await ids(kind="voucher") == [voucher["id"]]
    assert await ids(price_from=13000, price_to=20000) == [lj["id"]]  # its range 128–139 overlaps
    assert await ids(price_from=20000) == [white["id"]]
    assert await ids(price_to=3900) == [card["id"], cup["id"]]
    assert await ids(sort="price_asc") == [card["id"], cup["id"], voucher["id"], lj["id"], white["id"]]
    assert (await ids(sort="price_desc"))[0] == white["id"]
    # Paging.
    r = await owner.get(f"{ADMIN}/products", params={"page": 2, "page_size": 2})
    body = r.json()
    assert body["total"] == 5 and body["page"] == 2 and [p["id"] for p in body["items"]] == everything[2:4]
    # Bad filters are 422, not 500.
    for params in ({"status": "sold"}, {"kind": "car"}, {"price_from": -1}, {"sort": "random"}, {"page_size": 500},
                   {"q": "a\x00b"}, {"category_id": 0}):
        assert (await owner.get(f"{ADMIN}/products", params=params)).status_code == 422, params
