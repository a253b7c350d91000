"""CSV export and import: a round trip changes nothing, planted bad rows are reported
exactly (row, column) while the good rows are applied, and no file makes a 500."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.catalog._helpers import ADMIN, create, matrix_body, single_body
from tests.conftest import StaffClient, unique

HEADER = ["product_id", "product_title", "subtitle", "category", "kind", "insert_card_type", "status", "spec", "sku_code",
          "price", "market_price", "cost_price", "weight_g", "barcode", "sku_status", "main_image"]


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def to_csv(rows: list[list[Any]], header: list[str] | None = None, encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header or HEADER)
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


async def export(owner: StaffClient, **params: Any) -> str:
    r = await owner.get(f"{ADMIN}/export", params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())
    return r.content.decode("utf-8")


async def do_import(owner: StaffClient, data: bytes, dry_run: bool = False, name: str = "p.csv") -> dict[str, Any]:
    r = await owner.post(f"{ADMIN}/import", params={"dry_run": str(dry_run).lower()}, files={"file": (name, data, "text/csv")})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _catalogue(owner: StaffClient) -> dict[str, Any]:
    r = await owner.post(f"{ADMIN}/categories", json={"name": "茶叶"})
    tea = r.json()
    r = await owner.post(f"{ADMIN}/categories", json={"name": "绿茶", "parent_id": tea["id"]})
    green = r.json()
    body = matrix_body("=SUM(A1) 龙井", category_id=green["id"], subtitle="明前")
    body["skus"][0].update(market_price_fen=19900, cost_price_fen=5000, barcode="6901234567890")
    lj = await create(owner, body)
    card = await create(owner, single_body("包裹卡·好评返现", kind="insert_card", insert_card_type="marketing", price_fen=0))
    # A disabled SKU travels too.
    keep = ("id", "spec_values", "code", "price_fen", "market_price_fen", "cost_price_fen", "weight_g", "barcode")
    skus = [{**{k: s[k] for k in keep}, "enabled": i != 3} for i, s in enumerate(lj["skus"])]
    r = await owner.patch(f"{ADMIN}/products/{lj['id']}", json={"skus": skus})
    return {"lj": r.json(), "card": card, "green": green}


async def test_export_then_import_changes_nothing(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    made = await _catalogue(owner)
    text = await export(owner)
    rows = rows_of(text)
    assert list(rows[0].keys()) == HEADER
    lj_rows = [r for r in rows if r["product_id"] == str(made["lj"]["id"])]
    assert len(lj_rows) == 4 and len(rows) == 5
    first = lj_rows[0]
    assert first["product_title"] == "'=SUM(A1) 龙井"  # formula-looking cells are defused for spreadsheets
    assert first["category"] == "茶叶/绿茶" and first["spec"] == "规格:50g|包装:罐装" and first["price"] == "100.00"
    assert first["market_price"] == "199.00" and first["cost_price"] == "50.00" and first["barcode"] == "6901234567890"
    assert [r["sku_status"] for r in lj_rows] == ["active", "active", "active", "disabled"]
    card_row = next(r for r in rows if r["product_id"] == str(made["card"]["id"]))
    assert card_row["kind"] == "insert_card" and card_row["insert_card_type"] == "marketing" and card_row["spec"] == ""

    before = [(await owner.get(f"{ADMIN}/products/{p['id']}")).json() for p in (made["lj"], made["card"])]
    report = await do_import(owner, text.encode("utf-8"))
    assert report["errors"] == [] and report["rows"] == 5 and report["applied_rows"] == 5
    assert report["created_products"] == 0 and report["created_skus"] == 0 and report["updated_skus"] == 5
    after = [(await owner.get(f"{ADMIN}/products/{p['id']}")).json() for p in (made["lj"], made["card"])]
    for b, a in zip(before, after, strict=True):
        for key in ("title", "subtitle", "category_id", "kind", "insert_card_type", "specs", "price_min_fen", "price_max_fen"):
            assert a[key] == b[key], key
        assert [(s["id"], s["code"], s["price_fen"], s["market_price_fen"], s["status"]) for s in a["skus"]] == \
               [(s["id"], s["code"], s["price_fen"], s["market_price_fen"], s["status"]) for s in b["skus"]]
    assert a["title"] == made["card"]["title"] and before[0]["title"] == "=SUM(A1) 龙井"
    # Exporting again gives the same file.
    assert rows_of(await export(owner)) == rows
    # Filters apply to the export.
    assert len(rows_of(await export(owner, kind="insert_card"))) == 1


async def test_an_import_with_planted_bad_rows_reports_exactly_them(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    made = await _catalogue(owner)
    lj = made["lj"]
    code0 = lj["skus"][0]["code"]
    new_title = unique("凤凰单丛")
    dup_code = unique("DC")
    data = to_csv([
        # row 2: update a price by code (good)
        ["", "", "", "", "", "", "", "", code0, "88.80", "", "", "", "", "", ""],
        # row 3: a new product with two SKUs (good, good)
        ["", new_title, "蜜兰香", "茶叶", "physical", "", "", "规格:50g", "", "128", "168", "60", "80", "", "active", ""],
        # row 4
        ["", new_title, "蜜兰香", "茶叶", "physical", "", "", "规格:100g", dup_code, "228.5", "", "", "150", "", "", ""],
        # row 5: bad price
        ["", new_title, "", "茶叶", "", "", "", "规格:250g", "", "12.345", "", "", "", "", "", ""],
        # row 6: unknown category
        ["", unique("无名茶"), "", "不存在的分类", "", "", "", "", "", "10", "", "", "", "", "", ""],
        # row 7: market price below price
        ["", unique("岩茶"), "", "", "", "", "", "", "", "100", "99", "", "", "", "", ""],
        # row 8: unknown product id
        ["999999999", "幽灵", "", "", "", "", "", "", "", "10", "", "", "", "", "", ""],
        # row 9: bad kind and bad weight
        ["", unique("白茶"), "", "", "car", "", "", "", "", "10", "", "", "-5", "", "", ""],
        # row 10: spec in a bad format
        ["", unique("红茶"), "", "", "", "", "", "50g", "", "10", "", "", "", "", "", ""],
        # row 11: the code of row 4 used again for another new product
        ["", unique("黑茶"), "", "", "", "", "", "", dup_code, "10", "", "", "", "", "", ""],
        # row 12: insert card without a type
        ["", unique("包裹卡"), "", "", "insert_card", "", "", "", "", "0", "", "", "", "", "", ""],
        # row 13: a good one-SKU product with a GBK-friendly title
        ["", unique("茉莉花茶"), "", "绿茶", "", "", "", "", "", "39.9", "", "", "", "", "", ""],
        # row 14: blank (skipped, not counted)
        ["", "", "", "", "", "", "", "", "", "", "", "", "", "", "", ""],
    ])
    report = await do_import(owner, data)
    errors = {(e["row"], e["field"]) for e in report["errors"]}
    assert errors == {(5, "price"), (6, "category"), (7, "market_price"), (8, "product_id"), (9, "kind"), (9, "weight_g"),
                      (10, "spec"), (11, "sku_code"), (12, "insert_card_type")}, report["errors"]
    assert all(e["message"] for e in report["errors"])
    assert report["rows"] == 12 and report["applied_rows"] == 4
    assert report["created_products"] == 2 and report["updated_products"] == 1
    # The good rows took effect.
    r = await owner.get(f"{ADMIN}/products/{lj['id']}")
    assert r.json()["skus"][0]["price_fen"] == 8880
    r = await owner.get(f"{ADMIN}/products", params={"q": new_title})
    (item,) = r.json()["items"]
    p = (await owner.get(f"{ADMIN}/products/{item['id']}")).json()
    assert p["status"] == "draft" and p["subtitle"] == "蜜兰香"
    assert [(s["spec_key"], s["price_fen"], s["market_price_fen"], s["weight_g"]) for s in p["skus"]] == [
        ("规格:50g", 12800, 16800, 80), ("规格:100g", 22850, None, 150)]
    assert p["skus"][1]["code"] == dup_code
    # The bad rows did not.
    r = await owner.get(f"{ADMIN}/products", params={"q": "黑茶"})
    assert r.json()["total"] == 0


async def test_import_adds_values_to_an_existing_product_and_reports_spec_mismatches(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    p = await create(owner, matrix_body(packs=None))  # 规格 50g / 100g
    data = to_csv([
        [p["id"], p["title"], "", "", "", "", "", "规格:250g", "", "300", "", "", "250", "", "", ""],
        [p["id"], p["title"], "", "", "", "", "", "包装:罐装", "", "300", "", "", "", "", "", ""],
        [p["id"], p["title"], "", "", "", "", "", "规格:100g", p["skus"][0]["code"], "1", "", "", "", "", "", ""],
    ])
    report = await do_import(owner, data)
    assert {(e["row"], e["field"]) for e in report["errors"]} == {(3, "spec"), (4, "spec")}
    after = (await owner.get(f"{ADMIN}/products/{p['id']}")).json()
    assert after["specs"] == [{"name": "规格", "values": ["50g", "100g", "250g"]}]
    assert [s["spec_key"] for s in after["skus"]] == ["规格:50g", "规格:100g", "规格:250g"]
    assert [s["id"] for s in after["skus"][:2]] == [s["id"] for s in p["skus"]]


async def test_dry_run_gbk_and_only_the_columns_given(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    p = await create(owner, single_body("碧螺春", price_fen=5000, subtitle="洞庭山"))
    code = p["skus"][0]["code"]
    # A price-only file in GBK (Excel in China): only the price changes.
    data = to_csv([[code, "66"]], header=["sku_code", "price"], encoding="gb18030")
    report = await do_import(owner, data, dry_run=True)
    assert report["dry_run"] is True and report["applied_rows"] == 1 and report["errors"] == []
    assert (await owner.get(f"{ADMIN}/products/{p['id']}")).json()["price_min_fen"] == 5000  # nothing kept
    report = await do_import(owner, data)
    after = (await owner.get(f"{ADMIN}/products/{p['id']}")).json()
    assert after["price_min_fen"] == 6600 and after["subtitle"] == "洞庭山" and after["title"] == "碧螺春"
    # Unknown code without a title column: reported, not created.
    report = await do_import(owner, to_csv([["NOPE-1", "5"]], header=["sku_code", "price"]))
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(2, "sku_code")]
    r = await owner.get("/api/admin/v1/audit-log", params={"action": "product.import"})
    assert r.json()["total"] == 1  # the dry run and the import that applied nothing wrote none


async def test_no_file_makes_a_500(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    cases: list[tuple[bytes, int, str | None]] = [
        (b"", 422, "csv_empty"),
        (b"\xff\xfe\x00\x00garbage\x80\x81", 422, None),
        (b"just,some,words\r\n1,2,3\r\n", 422, "csv_missing_columns"),
        (b"sku_code,price\r\n\"unterminated,1\r\n", 200, None),
        (b"sku_code,price\r\nA\x00B,1\r\n", 200, None),
        (("sku_code,price\r\n" + "X,1\r\n" * 5001).encode(), 422, "csv_too_many_rows"),
        (b"product_title,price\r\n" + ("x" * 500).encode() + b",1\r\n", 200, None),
        (b"product_title,price,spec\r\nA,1,a:1|a:2\r\n", 200, None),
        (b"product_title,price,spec\r\nA,1,a:1|b:2|c:3|d:4\r\n", 200, None),
        (b"product_title,price\r\n" + b"=cmd|' /C calc'!A0,1\r\n", 200, None),
        (b"product_title,price,weight_g\r\nT,99999999999,1\r\n", 200, None),
        (b"product_title,price,product_id\r\nT,1,99999999999999999999999\r\n", 200, None),
    ]
    for data, status, code in cases:
        r = await owner.post(f"{ADMIN}/import", files={"file": ("x.csv", data, "text/csv")})
        assert r.status_code == status, (data[:60], r.status_code, r.text)
        if code:
            assert r.json()["code"] == code
    big = b"product_title,price\r\n" + b"x" * (2 * 1024 * 1024 + 10)
    r = await owner.post(f"{ADMIN}/import", files={"file": ("big.csv", big, "text/csv")})
    assert r.status_code == 413 and r.json()["code"] == "file_too_large"
