"""The demo catalogue of 青山茶社: categories, about thirty products with specs and images,
the four 包裹卡, and SKU ids a shopper can buy."""

from __future__ import annotations

import random
from collections import Counter

from siyu.catalog import service
from siyu.catalog.demo import INSERT_CARDS, PRODUCTS, product_image, seed_catalog
from siyu.catalog.repository import ProductQuery
from tests.catalog._helpers import ADMIN, scope_of, store


async def test_seed_catalog_builds_a_believable_tea_shop(runtime, client, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory("青山茶社")
    scope = await scope_of(runtime, t)
    async with runtime.db.uow() as s:
        sku_ids = await seed_catalog(s, scope, random.Random(2026), storage=runtime.media)
    owner = await login_as(t)
    cats = (await owner.get(f"{ADMIN}/categories")).json()
    top = [c["name"] for c in cats if c["depth"] == 1]
    assert top == ["绿茶", "红茶", "乌龙茶", "白茶", "普洱", "花草茶", "茶器", "礼盒"]
    assert {c["path"] for c in cats if c["depth"] == 2} == {"茶器/茶壶", "茶器/茶杯", "茶器/茶具套装"}
    r = await owner.get(f"{ADMIN}/products", params={"page_size": 100})
    products = r.json()["items"]
    assert r.json()["total"] == len(PRODUCTS) + len(INSERT_CARDS) and 30 <= len(PRODUCTS) <= 35
    assert all(p["main_image"] and p["main_image"].startswith("/media/") for p in products)
    statuses = Counter(p["status"] for p in products)
    assert statuses["on_sale"] >= 28 and statuses["draft"] == 2 and statuses["scheduled"] == 1 and statuses["off_sale"] == 1
    cards = [p for p in products if p["kind"] == "insert_card"]
    assert sorted(p["insert_card_type"] for p in cards) == ["brand", "marketing", "notice", "trending"]
    assert {p["kind"] for p in products} == {"physical", "voucher", "service", "insert_card"}
    # Specs make several SKUs; prices are whole fen within bounds.
    lj = next(p for p in products if p["title"].startswith("西湖龙井"))
    detail = (await owner.get(f"{ADMIN}/products/{lj['id']}")).json()
    assert [s["name"] for s in detail["specs"]] == ["规格", "包装"] and len(detail["skus"]) == 6
    assert detail["price_min_fen"] == 11800 and all(s["price_fen"] % 100 == 0 for s in detail["skus"])
    # The images are real PNGs, served from the media folder.
    served = await owner.get(lj["main_image"])
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
    # The returned SKUs are exactly what shoppers can buy.
    async with runtime.db.uow(readonly=True) as s:
        for_sale = await service.skus_for_sale(s, scope, sku_ids)
        rows, total = await service.list_products(s, scope, ProductQuery(storefront=True), limit=200)
    assert len(sku_ids) > 50 and set(for_sale) == set(sku_ids) and all(v.on_sale for v in for_sale.values())
    assert {v.product_id for v in for_sale.values()} == {p.id for p in rows}
    assert (await client.get(store(t, "/products"), params={"page_size": 100})).json()["total"] == total == statuses["on_sale"] - 4


def test_product_images_differ_and_are_small() -> None:
    rng = random.Random(1)
    images = {motif: product_image((94, 140, 76), motif, rng, size=320) for motif in ("leaf", "cup", "box", "card")}
    assert len(set(images.values())) == 4
    for data in images.values():
        assert data.startswith(b"\x89PNG") and len(data) < 200_000
