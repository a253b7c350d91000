"""Products and their SKU matrix through the admin API: generation, edits that keep SKU ids,
codes, prices, kinds and 包裹卡, the sanitised description and the audit trail."""

from __future__ import annotations

from typing import Any

import pytest

from tests.catalog._helpers import ADMIN, create, matrix_body, single_body
from tests.conftest import unique


def _by_spec(product: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["spec_key"]: s for s in product["skus"]}


async def test_a_spec_matrix_makes_one_sku_per_combination(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    p = await create(owner, matrix_body())
    assert p["status"] == "draft" and p["kind"] == "physical" and p["requires_shipping"] is True
    assert [s["spec_key"] for s in p["skus"]] == ["规格:50g|包装:罐装", "规格:50g|包装:袋装", "规格:100g|包装:罐装", "规格:100g|包装:袋装"]
    assert [s["spec_text"] for s in p["skus"]] == ["50g / 罐装", "50g / 袋装", "100g / 罐装", "100g / 袋装"]
    assert (p["price_min_fen"], p["price_max_fen"]) == (10000, 11100)
    assert p["sku_count"] == 4
    # Blank codes are generated, unique per tenant.
    codes = [s["code"] for s in p["skus"]]
    assert len(set(codes)) == 4 and all(c.startswith(f"P{p['id']}-") for c in codes)
    # A product without specs has one SKU with empty spec values.
    one = await create(owner, single_body(price_fen=3900))
    assert len(one["skus"]) == 1 and one["skus"][0]["spec_values"] == {} and one["skus"][0]["spec_text"] == ""
    assert one["price_min_fen"] == one["price_max_fen"] == 3900


async def test_editing_specs_keeps_sku_ids_and_disables_removed_combinations(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    p = await create(owner, matrix_body(sizes=("50g", "100g"), packs=("罐装", "袋装")))
    before = _by_spec(p)
    url = f"{ADMIN}/products/{p['id']}"

    # Add a value (250g) and drop one (袋装): survivors keep their ids, 袋装 SKUs are disabled, not deleted.
    body = matrix_body(sizes=("50g", "100g", "250g"), packs=("罐装",), base=20000)
    r = await owner.patch(url, json={"specs": body["specs"], "skus": body["skus"]})
    assert r.status_code == 200, r.text
    after = _by_spec(r.json())
    assert after["规格:50g|包装:罐装"]["id"] == before["规格:50g|包装:罐装"]["id"]
    assert after["规格:100g|包装:罐装"]["id"] == before["规格:100g|包装:罐装"]["id"]
    assert after["规格:50g|包装:罐装"]["price_fen"] == 20000
    assert after["规格:50g|包装:罐装"]["code"] == before["规格:50g|包装:罐装"]["code"]
    assert after["规格:250g|包装:罐装"]["status"] == "active" and after["规格:250g|包装:罐装"]["id"] not in {
        s["id"] for s in before.values()}
    for key in ("规格:50g|包装:袋装", "规格:100g|包装:袋装"):
        assert after[key]["id"] == before[key]["id"] and after[key]["status"] == "disabled"
    assert len(r.json()["skus"]) == 5 and r.json()["sku_count"] == 3
    assert (r.json()["price_min_fen"], r.json()["price_max_fen"]) == (20000, 22000)

    # Bring 袋装 back: the disabled SKUs come back to life with their old ids.
    body = matrix_body(sizes=("50g", "100g", "250g"), packs=("罐装", "袋装"))
    r = await owner.patch(url, json={"specs": body["specs"], "skus": body["skus"]})
    again = _by_spec(r.json())
    assert again["规格:50g|包装:袋装"]["id"] == before["规格:50g|包装:袋装"]["id"]
    assert again["规格:50g|包装:袋装"]["status"] == "active"
    assert len(r.json()["skus"]) == 6

    # Reordering the specs keeps every id (the key follows the new order).
    specs = list(reversed(body["specs"]))
    r = await owner.patch(url, json={"specs": specs, "skus": body["skus"]})
    assert r.status_code == 200, r.text
    reordered = {frozenset(s["spec_values"].items()): s["id"] for s in r.json()["skus"]}
    assert reordered == {frozenset(s["spec_values"].items()): s["id"] for s in again.values()}
    assert r.json()["skus"][0]["spec_key"].startswith("包装:")

    # Sending only SKUs (prices) keeps the specs.
    skus = [{"id": s["id"], "spec_values": s["spec_values"], "price_fen": 999} for s in r.json()["skus"]]
    r = await owner.patch(url, json={"skus": skus})
    assert r.status_code == 200 and {s["price_fen"] for s in r.json()["skus"]} == {999}
    assert [s["name"] for s in r.json()["specs"]] == ["包装", "规格"]


async def test_adding_and_removing_a_spec_dimension_carries_skus_over(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    p = await create(owner, single_body(price_fen=5000))
    only = p["skus"][0]
    url = f"{ADMIN}/products/{p['id']}"
    # No specs → 规格 50g/100g: the single SKU continues as the first combination.
    body = matrix_body(sizes=("50g", "100g"), packs=None)
    r = await owner.patch(url, json={"specs": body["specs"], "skus": body["skus"]})
    skus = _by_spec(r.json())
    assert skus["规格:50g"]["id"] == only["id"] and skus["规格:50g"]["code"] == only["code"]
    assert skus["规格:100g"]["id"] != only["id"]
    # Add 包装: each 规格 SKU continues as its first 包装 value.
    body = matrix_body(sizes=("50g", "100g"), packs=("罐装", "袋装"))
    r = await owner.patch(url, json={"specs": body["specs"], "skus": body["skus"]})
    grown = _by_spec(r.json())
    assert grown["规格:50g|包装:罐装"]["id"] == only["id"]
    assert grown["规格:100g|包装:罐装"]["id"] == skus["规格:100g"]["id"]
    assert len(r.json()["skus"]) == 4
    # Drop 规格 again: each 包装 keeps the oldest matching SKU, the rest are disabled.
    body = {"specs": [{"name": "包装", "values": ["罐装", "袋装"]}],
            "skus": [{"spec_values": {"包装": "罐装"}, "price_fen": 1}, {"spec_values": {"包装": "袋装"}, "price_fen": 2}]}
    r = await owner.patch(url, json=body)
    shrunk = r.json()["skus"]
    active = {s["spec_key"]: s["id"] for s in shrunk if s["status"] == "active"}
    assert active == {"包装:罐装": only["id"], "包装:袋装": grown["规格:50g|包装:袋装"]["id"]}
    assert len(shrunk) == 4 and sum(s["status"] == "disabled" for s in shrunk) == 2


async def test_sku_codes_are_unique_per_tenant_and_may_be_swapped(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    code = unique("LJ-")
    body = matrix_body(packs=None)
    body["skus"][0]["code"] = code
    p = await create(owner, body)
    assert p["skus"][0]["code"] == code
    # The same code on another product of this tenant: 409 with the field.
    other = single_body()
    other["skus"][0]["code"] = code
    r = await owner.post(f"{ADMIN}/products", json=other)
    assert r.status_code == 409 and r.json()["code"] == "sku_code_taken"
    assert r.json()["errors"][0]["field"] == "skus.0.code"
    # Twice in one body.
    twice = matrix_body(packs=None)
    twice["skus"][0]["code"] = twice["skus"][1]["code"] = unique("DUP-")
    r = await owner.post(f"{ADMIN}/products", json=twice)
    assert r.status_code == 409 and r.json()["code"] == "sku_code_taken"
    # Another tenant may use it.
    owner2 = await login_as(await tenant_factory())
    assert (await owner2.post(f"{ADMIN}/products", json=other)).status_code == 201
    # Swapping the codes of two SKUs of one product works (no unique clash half-way).
    a, b = p["skus"]
    swapped = [{"id": a["id"], "spec_values": a["spec_values"], "price_fen": 1, "code": b["code"]},
               {"id": b["id"], "spec_values": b["spec_values"], "price_fen": 2, "code": a["code"]}]
    r = await owner.patch(f"{ADMIN}/products/{p['id']}", json={"skus": swapped})
    assert r.status_code == 200, r.text
    assert {s["id"]: s["code"] for s in r.json()["skus"]} == {a["id"]: b["code"], b["id"]: a["code"]}
    # A disabled SKU keeps its code: another SKU cannot take it.
    r = await owner.patch(f"{ADMIN}/products/{p['id']}", json={"specs": [{"name": "规格", "values": ["50g"]}],
                                                              "skus": [{"spec_values": {"规格": "50g"}, "price_fen": 1}]})
    disabled = next(s for s in r.json()["skus"] if s["status"] == "disabled")
    fresh = single_body()
    fresh["skus"][0]["code"] = disabled["code"]
    r = await owner.post(f"{ADMIN}/products", json=fresh)
    assert r.status_code == 409 and r.json()["code"] == "sku_code_taken"


@pytest.mark.parametrize("sku, field", [
    ({"price_fen": -1}, "price_fen"),
    ({"price_fen": 1_000_000_001}, "price_fen"),
    ({"price_fen": 12.5}, "price_fen"),
    ({"price_fen": "12.50"}, "price_fen"),
    ({"price_fen": 100, "market_price_fen": 99}, ""),
    ({"price_fen": 100, "cost_price_fen": -5}, "cost_price_fen"),
    ({"price_fen": 100, "weight_g": -1}, "weight_g"),
    ({"price_fen": 100, "code": "bad code!"}, "code"),
    ({"price_fen": 100, "barcode": "69 01"}, "barcode"),
    ({}, "price_fen"),
])
async def test_prices_and_sku_fields_are_validated(tenant_factory, login_as, sku, field) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    r = await owner.post(f"{ADMIN}/products", json={"title": "坏价格", "skus": [sku]})
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    assert any(e["field"].startswith("skus.0" + ("." + field if field else "")) for e in r.json()["errors"]), r.json()


async def test_limits_on_prices_hold_at_the_edges(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    p = await create(owner, {"title": "边界", "skus": [{"price_fen": 0, "market_price_fen": 1_000_000_000,
                                                         "cost_price_fen": 1_000_000_000}]})
    assert p["skus"][0]["price_fen"] == 0 and p["skus"][0]["market_price_fen"] == 1_000_000_000


async def test_spec_values_must_fit_the_specs(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    bad = [
        {"specs": [{"name": "规格", "values": ["50g"]}], "skus": [{"spec_values": {"规格": "75g"}, "price_fen": 1}]},
        {"specs": [{"name": "规格", "values": ["50g"]}], "skus": [{"spec_values": {}, "price_fen": 1}]},
        {"specs": [], "skus": [{"spec_values": {"规格": "50g"}, "price_fen": 1}]},
        {"specs": [{"name": "规格", "values": ["50g"]}],
         "skus": [{"spec_values": {"规格": "50g"}, "price_fen": 1}, {"spec_values": {"规格": "50g"}, "price_fen": 2}]},
    ]
    for body in bad:
        r = await owner.post(f"{ADMIN}/products", json={"title": "规格", **body})
        assert r.status_code == 422 and r.json()["code"] == "invalid_sku", (body, r.text)
    # Malformed specs are refused by the schema: repeated names or values, separators, too many combinations.
    for specs in ([{"name": "规格", "values": ["a", "a"]}], [{"name": "a", "values": ["1"]}, {"name": "a", "values": ["2"]}],
                  [{"name": "颜色:红", "values": ["1"]}], [{"name": "x", "values": ["a|b"]}],
                  [{"name": n, "values": [str(i) for i in range(30)]} for n in ("a", "b")]):
        r = await owner.post(f"{ADMIN}/products", json={"title": "规格", "specs": specs, "skus": [{"price_fen": 1}]})
        assert r.status_code == 422, specs
    # A SKU id of another product is refused.
    p1 = await create(owner, single_body())
    p2 = await create(owner, single_body())
    r = await owner.patch(f"{ADMIN}/products/{p2['id']}", json={"skus": [{"id": p1["skus"][0]["id"], "price_fen": 1}]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "skus.0.id"


async def test_kinds_and_insert_cards(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    for kind in ("virtual", "voucher", "service"):
        p = await create(owner, single_body(kind=kind))
        assert p["kind"] == kind and p["requires_shipping"] is False
    card = await create(owner, single_body("包裹卡 · 品牌故事", kind="insert_card", insert_card_type="brand", price_fen=0))
    assert card["insert_card_type"] == "brand" and card["requires_shipping"] is False
    r = await owner.post(f"{ADMIN}/products", json=single_body(kind="insert_card"))
    assert r.status_code == 422
    r = await owner.post(f"{ADMIN}/products", json=single_body(kind="physical", insert_card_type="notice"))
    assert r.status_code == 422
    r = await owner.post(f"{ADMIN}/products", json=single_body(kind="insert_card", insert_card_type="gossip"))
    assert r.status_code == 422
    # Turning a card into a physical product clears its card type.
    r = await owner.patch(f"{ADMIN}/products/{card['id']}", json={"kind": "physical"})
    assert r.status_code == 200 and r.json()["insert_card_type"] is None
    r = await owner.patch(f"{ADMIN}/products/{card['id']}", json={"kind": "insert_card"})
    assert r.status_code == 422 and r.json()["code"] == "insert_card_type_required"


async def test_description_is_sanitised(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    html = ('<p onclick="x()">好茶<script>alert(1)</script><strong>香</strong></p>'
            '<a href="javascript:alert(1)">a</a><a href="https://tea.example/">b</a><img src="x" onerror="y()">'
            '<style>body{}</style><iframe src="https://evil.example"></iframe>')
    p = await create(owner, single_body(description_html=html))
    out = p["description_html"]
    for bad in ("onclick", "<script", "javascript:", "onerror", "<style", "<iframe", "alert(1)"):
        assert bad not in out, (bad, out)
    assert "<strong>香</strong>" in out and 'href="https://tea.example/"' in out and "noopener" in out
    r = await owner.patch(f"{ADMIN}/products/{p['id']}", json={"description_html": "<p>新<b>描述</b><svg onload=1>"})
    assert r.json()["description_html"] == "<p>新<b>描述</b></p>"


async def test_unknown_fields_and_categories_are_refused(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    for extra in ({"status": "on_sale"}, {"price_min_fen": 1}, {"tenant_id": 1}, {"sales_count": 5}):
        r = await owner.post(f"{ADMIN}/products", json={**single_body(), **extra})
        assert r.status_code == 422, extra
    r = await owner.post(f"{ADMIN}/products", json=single_body(category_id=987654321))
    assert r.status_code == 422 and r.json()["code"] == "category_not_found"


async def test_writes_are_audited(runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    p = await create(owner, matrix_body())
    await owner.patch(f"{ADMIN}/products/{p['id']}", json={"title": "新名字"})
    await owner.post(f"{ADMIN}/products/{p['id']}/status", json={"action": "publish"})
    r = await owner.get("/api/admin/v1/audit-log", params={"object_type": "product"})
    actions = [e["action"] for e in r.json()["items"]]
    assert actions[:3] == ["product.status", "product.update", "product.create"]
    update = r.json()["items"][1]
    assert update["before"]["title"] == p["title"] and update["after"]["title"] == "新名字"
    assert update["actor_kind"] == "staff"
    # A save that changes nothing writes nothing.
    await owner.patch(f"{ADMIN}/products/{p['id']}", json={"title": "新名字"})
    r = await owner.get("/api/admin/v1/audit-log", params={"object_type": "product"})
    assert len(r.json()["items"]) == 3
