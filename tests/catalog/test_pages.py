"""The catalog's pages, driven through their HTML forms like a browser would: the console's
product list, editor (spec matrix posted as the editor's hidden JSON field, images, status),
categories and import/export; the storefront's home, category, search and product pages;
read-only staff; and the English rendering. Every response is checked to be below 500 by
the :class:`~tests._pages.Browser` hook."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

from siyu.kit import clock
from tests._pages import Browser, chinese_left, make_staff, owner_browser, staff_sign_in
from tests.catalog._helpers import ADMIN, create, matrix_body, png, publish, single_body
from tests.conftest import TenantInfo, unique


def editor_state(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="catalog-editor-data">(.*?)</script>', page, re.S)
    assert m, "the editor's data"
    return dict(json.loads(m.group(1)))


def matrix_field(page: str) -> dict[str, Any]:
    m = re.search(r'<input type="hidden" name="matrix" value="([^"]*)"', page)
    assert m
    return dict(json.loads(html.unescape(m.group(1))))


def form_of(values: dict[str, Any], matrix: dict[str, Any], images: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"title": "", "subtitle": "", "category_id": "", "kind": "physical", "insert_card_type": "",
                            "sort": "0", "description_html": "", **values, "matrix": json.dumps(matrix, ensure_ascii=False)}
    if images:
        data["images"] = images
    return data


def row(values: dict[str, str], price: str, **extra: Any) -> dict[str, Any]:
    return {"id": None, "spec_values": values, "code": "", "price": price, "market_price": "", "cost_price": "",
            "weight_g": "", "barcode": "", "enabled": True, **extra}


async def test_the_editor_creates_and_edits_a_product_keeping_sku_ids(browser, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    b = await owner_browser(browser, t)
    r = await b.get("/admin/catalog")
    assert r.status_code == 200 and "还没有商品" in r.text and 'href="/admin/catalog/new"' in r.text
    r = await b.get("/admin/catalog/new")
    assert r.status_code == 200 and 'id="product-form"' in r.text and "catalogEditor" in r.text
    assert editor_state(r.text)["skus"][0]["price"] == ""

    specs = [{"name": "规格", "values": ["50g", "100g"]}]
    matrix = {"specs": specs, "skus": [row({"规格": "50g"}, "128.00", market_price="168", weight_g="120"),
                                       row({"规格": "100g"}, "238.5")]}
    title = unique("明前龙井")
    r = await b.post("/admin/catalog/new", form_of({"title": title, "subtitle": "头采", "description_html": "<p>豆香<script>x</script></p>"},
                                                   matrix))
    assert r.status_code == 303, r.text[:2000]
    page = await b.follow(r)
    assert page.status_code == 200 and title in page.text and "商品已创建" in page.text
    pid = int(r.headers["location"].rsplit("/", 1)[1])
    state = editor_state(page.text)
    assert [(s["spec_values"], s["price"], s["market_price"], s["weight_g"]) for s in state["skus"]] == [
        ({"规格": "50g"}, "128.00", "168.00", "120"), ({"规格": "100g"}, "238.50", "", "")]
    assert matrix_field(page.text)["skus"] == state["skus"]  # the no-JavaScript copy of the state
    ids = [s["id"] for s in state["skus"]]
    assert all(ids) and "<script>x</script>" not in page.text

    # Edit: a new spec value and a price change; the known rows carry their ids as the editor posts them.
    rows = [dict(s) for s in state["skus"]]
    rows[0]["price"] = "99.9"
    rows.append(row({"规格": "250g"}, "520"))
    r = await b.post(f"/admin/catalog/{pid}", form_of({"title": title}, {"specs": [{"name": "规格", "values": ["50g", "100g", "250g"]}],
                                                                          "skus": rows}))
    assert r.status_code == 303, r.text[:2000]
    state = editor_state((await b.follow(r)).text)
    assert [s["id"] for s in state["skus"]][:2] == ids and len(state["skus"]) == 3
    assert state["skus"][0]["price"] == "99.90"

    # A switched-off row without a price is left out; with a price it is kept, disabled.
    rows = [dict(s) for s in state["skus"]]
    rows[2].update(enabled=False)
    r = await b.post(f"/admin/catalog/{pid}", form_of({"title": title}, {"specs": [{"name": "规格", "values": ["50g", "100g", "250g"]}],
                                                                          "skus": rows}))
    assert r.status_code == 303
    page = (await b.follow(r)).text
    assert [s["enabled"] for s in editor_state(page)["skus"]] == [True, True, False]

    # Bad input comes back with messages and the posted state, nothing saved.
    rows = [dict(s) for s in editor_state(page)["skus"]]
    rows[1]["price"] = "12.345"
    bad = {"specs": [{"name": "规格", "values": ["50g", "100g", "250g"]}], "skus": rows}
    r = await b.post(f"/admin/catalog/{pid}", form_of({"title": title}, bad))
    assert r.status_code == 422 and "第 2 行（100g）" in r.text and "售价需为" in r.text
    assert editor_state(r.text)["skus"][1]["price"] == "12.345"
    r = await b.post(f"/admin/catalog/{pid}", form_of({"title": ""}, matrix_field(page)))
    assert r.status_code == 422 and "请填写商品名称" in r.text
    r = await b.post(f"/admin/catalog/{pid}", {"title": title, "matrix": "{not json"})
    assert r.status_code == 422 and "规格数据有误" in r.text
    rows = [dict(s) for s in editor_state(page)["skus"]]
    rows[0]["market_price"] = "1"
    r = await b.post(f"/admin/catalog/{pid}", form_of({"title": title}, {"specs": bad["specs"], "skus": rows}))
    assert r.status_code == 422 and "划线价不能低于售价" in r.text
    other = await b.post("/admin/catalog/new", form_of({"title": unique("另一个")}, {"specs": [], "skus": [
        row({}, "1", code=editor_state(page)["skus"][0]["code"])]}))
    assert other.status_code == 409 and "已被其他 SKU 使用" in other.text
    # No-JavaScript save: the server's own copy of the matrix goes back unchanged.
    r = await b.post(f"/admin/catalog/{pid}", form_of({"title": title + " 新", "sort": "3"}, matrix_field(page)))
    assert r.status_code == 303
    assert [s["id"] for s in editor_state((await b.follow(r)).text)["skus"]][:2] == ids


async def test_status_images_and_list_actions(browser, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    p = await create(owner, matrix_body(title=unique("铁观音")))
    b = await owner_browser(browser, t)
    r = await b.get(f"/admin/catalog/{p['id']}")
    assert r.status_code == 200 and "立即上架" in r.text and 'name="on_sale_at"' in r.text
    r = await b.post(f"/admin/catalog/{p['id']}/status", {"action": "publish"})
    assert r.status_code == 303 and "商品已上架" in (await b.follow(r)).text
    r = await b.post(f"/admin/catalog/{p['id']}/status", {"action": "publish"})
    page = await b.follow(r)
    assert "不能执行该操作" in page.text  # illegal: shown as an error flash
    r = await b.post(f"/admin/catalog/{p['id']}/status", {"action": "unpublish", "next": "/admin/catalog?status=off_sale"})
    assert r.headers["location"] == "/admin/catalog?status=off_sale"
    listing = await b.follow(r)
    assert p["title"] in listing.text and "商品已下架" in listing.text
    when = (clock.now() + timedelta(days=1)).astimezone().strftime("%Y-%m-%dT%H:%M")
    r = await b.post(f"/admin/catalog/{p['id']}/status", {"action": "schedule", "on_sale_at": when})
    assert "已设置定时上架" in (await b.follow(r)).text
    assert (await owner.get(f"{ADMIN}/products/{p['id']}")).json()["status"] == "scheduled"
    r = await b.post(f"/admin/catalog/{p['id']}/status", {"action": "schedule", "on_sale_at": "not a time"})
    assert "请填写定时上架时间" in (await b.follow(r)).text
    r = await b.post(f"/admin/catalog/{p['id']}/status", {"action": "schedule"}, csrf=False)
    assert r.status_code == 403  # CSRF

    # Upload without JavaScript: the image joins the product at once; a bad file is a flash.
    r = await b.c.post(f"/admin/catalog/{p['id']}/images", data={"_csrf": b.csrf}, files={"file": ("a.png", png(), "image/png")})
    assert r.status_code == 303
    page = await b.follow(r)
    assert "图片已上传" in page.text
    images = editor_state(page.text)["images"]
    assert len(images) == 1 and images[0].startswith("/media/")
    r = await b.c.post(f"/admin/catalog/{p['id']}/images", data={"_csrf": b.csrf}, files={"file": ("a.png", b"not an image", "image/png")})
    assert "只支持 PNG" in (await b.follow(r)).text

    # The list: filters, tabs and counts.
    r = await b.get("/admin/catalog", params={"q": p["title"]})
    assert p["title"] in r.text and images[0] in r.text
    r = await b.get("/admin/catalog", params={"status": "on_sale"})
    assert p["title"] not in r.text
    for params in ({"q": "\x00"}, {"price_from": "abc"}, {"category": "x"}, {"sort": "nope"}, {"status": "nope"},
                   {"price_from": "10", "price_to": "1000"}):
        assert (await b.get("/admin/catalog", params=params)).status_code == 200, params


async def test_categories_and_import_export_pages(browser, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    b = await owner_browser(browser, t)
    r = await b.get("/admin/catalog/categories")
    assert r.status_code == 200 and "还没有商品分类" in r.text
    r = await b.post("/admin/catalog/categories/new", {"name": "绿茶", "sort": "1", "is_visible": "1"})
    assert r.status_code == 303 and "已添加分类 绿茶" in (await b.follow(r)).text
    r = await b.post("/admin/catalog/categories/new", {"name": "绿茶", "sort": "1"})
    assert r.status_code == 409 and "同级已有" in r.text
    r = await b.post("/admin/catalog/categories/new", {"name": "a/b"})
    assert r.status_code == 422 and "不能包含 /" in r.text
    owner = await login_as(t)
    cat_id = (await owner.get(f"{ADMIN}/categories")).json()[0]["id"]
    await create(owner, single_body(unique("安吉白茶"), category_id=cat_id))
    r = await b.post(f"/admin/catalog/categories/{cat_id}", {"name": "名优绿茶", "sort": "2", "parent_id": ""})
    assert "已保存分类 名优绿茶" in (await b.follow(r)).text
    r = await b.post(f"/admin/catalog/categories/{cat_id}/delete", {})
    assert "请先把商品移到其他分类" in (await b.follow(r)).text
    assert (await b.post("/admin/catalog/categories/999999999/delete", {})).status_code == 404

    r = await b.get("/admin/catalog/transfer")
    assert r.status_code == 200 and "sku_code" in r.text and 'action="/admin/catalog/import"' in r.text
    r = await b.get("/admin/catalog/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv") and "安吉白茶" in r.content.decode()
    bad = "product_title,price\r\n好茶,abc\r\n好茶二,12\r\n".encode()
    r = await b.c.post("/admin/catalog/import", data={"_csrf": b.csrf}, files={"file": ("x.csv", bad, "text/csv")})
    assert r.status_code == 200 and 'id="import-errors"' in r.text
    assert re.search(r'<td class="num">2</td><td class="mono">price</td>', r.text)
    r = await b.c.post("/admin/catalog/import", data={"_csrf": b.csrf}, files={"file": ("x.csv", b"", "text/csv")})
    assert r.status_code == 422 and "文件为空" in r.text


async def test_read_only_staff_see_pages_but_cannot_post(browser, runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    p = await create(owner, single_body(unique("大红袍")))
    _id, username, password = await make_staff(runtime, t, "store_guide")
    g = browser()
    await staff_sign_in(g, username, password)
    r = await g.get("/admin/catalog")
    assert r.status_code == 200 and p["title"] in r.text and 'href="/admin/catalog/new"' not in r.text
    r = await g.get(f"/admin/catalog/{p['id']}")
    assert r.status_code == 200 and 'type="submit" form="product-form"' not in r.text
    for url, data in ((f"/admin/catalog/{p['id']}", {"title": "x"}), (f"/admin/catalog/{p['id']}/status", {"action": "publish"}),
                      ("/admin/catalog/categories/new", {"name": "x"}), ("/admin/catalog/new", {"title": "x"})):
        assert (await g.post(url, data)).status_code == 403, url
    assert (await g.get("/admin/catalog/new")).status_code == 403
    assert (await g.get("/admin/catalog/transfer")).status_code == 200
    # Another tenant's product is a 404 page.
    other = await tenant_factory()
    theirs = await create(await login_as(other), single_body())
    assert (await g.get(f"/admin/catalog/{theirs['id']}")).status_code == 404


async def _shop_with_products(tenant_factory, login_as, **names: str) -> tuple[TenantInfo, dict[str, Any]]:  # type: ignore[no-untyped-def]
    t = await tenant_factory("Green Hill Tea")
    owner = await login_as(t)
    tea = (await owner.post(f"{ADMIN}/categories", json={"name": names.get("tea", "Tea")})).json()
    green = (await owner.post(f"{ADMIN}/categories", json={"name": names.get("green", "Green tea"), "parent_id": tea["id"]})).json()
    ware = (await owner.post(f"{ADMIN}/categories", json={"name": names.get("ware", "Teaware")})).json()
    img = (await owner.post(f"{ADMIN}/images", files={"file": ("a.png", png(), "image/png")})).json()["url"]
    body = {"title": names.get("lj", "Dragon Well"), "subtitle": "First flush", "category_id": green["id"], "images": [img],
            "specs": [{"name": "Size", "values": ["50g", "100g"]}, {"name": "Pack", "values": ["Tin", "Bag"]}],
            "skus": [{"spec_values": {"Size": s, "Pack": k}, "price_fen": 10000 + i * 1000 + j * 100, "market_price_fen": 20000}
                     for i, s in enumerate(("50g", "100g")) for j, k in enumerate(("Tin", "Bag"))],
            "description_html": "<p>Chestnut aroma</p>"}
    lj = await create(owner, body)
    await publish(owner, lj["id"])
    cup = await create(owner, single_body(names.get("cup", "Celadon cup"), price_fen=3900, category_id=ware["id"], kind="physical"))
    await publish(owner, cup["id"])
    draft = await create(owner, single_body(names.get("draft", "Secret blend")))
    return t, {"lj": lj, "cup": cup, "draft": draft, "tea": tea, "green": green, "ware": ware, "img": img}


async def test_storefront_browse_search_and_product_page(browser, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t, made = await _shop_with_products(tenant_factory, login_as)
    base = f"/m/{t.code}"
    b: Browser = browser()
    home = await b.get(f"{base}/")
    assert home.status_code == 200 and "Dragon Well" in home.text and "Celadon cup" in home.text
    assert "Secret blend" not in home.text and "商城即将上线" not in home.text
    assert f'href="{base}/p/{made["lj"]["id"]}"' in home.text and made["img"] in home.text

    r = await b.get(f"{base}/category")
    assert r.status_code == 200 and f'class="tab active" href="{base}/category"' in r.text
    assert "Tea" in r.text and "Teaware" in r.text and "Dragon Well" in r.text  # first top category with its children
    assert "Celadon cup" not in r.text
    r = await b.get(f"{base}/category", params={"c": made["ware"]["id"]})
    assert "Celadon cup" in r.text and "Dragon Well" not in r.text
    r = await b.get(f"{base}/category", params={"c": made["green"]["id"]})
    assert "Dragon Well" in r.text and 'class="chip active"' in r.text
    r = await b.get(f"{base}/category", params={"q": "dragon"})
    assert "Dragon Well" in r.text and "Celadon cup" not in r.text
    r = await b.get(f"{base}/search", params={"q": "secret"})
    assert r.status_code == 200 and "Secret blend" not in r.text and "没有找到相关商品" in r.text
    for params in ({"c": "abc"}, {"c": "999999999"}, {"sort": "zzz"}, {"q": "\x00"}, {"page": "2"}, {"sort": "price_desc"}):
        assert (await b.get(f"{base}/category", params=params)).status_code in (200, 422), params

    r = await b.get(f"{base}/p/{made['lj']['id']}")
    assert r.status_code == 200 and "Dragon Well" in r.text and "Chestnut aroma" in r.text
    m = re.search(r'<script type="application/json" id="sku-picker-data">(.*?)</script>', r.text, re.S)
    assert m
    picker = json.loads(m.group(1))
    assert [s["name"] for s in picker["specs"]] == ["Size", "Pack"] and len(picker["skus"]) == 4
    assert {s["price"] for s in picker["skus"]} == {10000, 10100, 11000, 11100}
    assert all("cost" not in s for s in picker["skus"])
    assert 'name="viewport" content="width=device-width' in r.text
    for pid in (made["draft"]["id"], 999999999):
        assert (await b.get(f"{base}/p/{pid}")).status_code == 404
    # A shop with nothing on sale says so honestly.
    empty = await tenant_factory()
    r = await b.get(f"/m/{empty.code}/category")
    assert r.status_code == 200 and "商品分类即将上线" in r.text
    assert "商城即将上线" in (await b.get(f"/m/{empty.code}/")).text


async def test_pages_render_in_english(browser, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t, made = await _shop_with_products(tenant_factory, login_as)
    owner = await login_as(t)
    card = await create(owner, single_body("Review card", kind="insert_card", insert_card_type="marketing"))
    b = await owner_browser(browser, t)
    await b.get(f"/admin/catalog/{made['lj']['id']}")
    r = await b.post(f"/admin/catalog/{made['lj']['id']}", form_of({"title": "Dragon Well"}, {"specs": [], "skus": [row({}, "bad")]}))
    assert r.status_code == 422
    data = ("店主", "店", "Size", "Pack", "Tin", "Bag")
    with b.language("en"):
        for path in ("/admin/catalog", "/admin/catalog?status=draft", f"/admin/catalog/{made['lj']['id']}",
                     f"/admin/catalog/{card['id']}", "/admin/catalog/new", "/admin/catalog/categories", "/admin/catalog/transfer"):
            r = await b.get(path)
            assert r.status_code == 200 and '<html lang="en">' in r.text, path
            left = chinese_left(r.text, *data)
            assert not left, (path, sorted(left))
        r = await b.post(f"/admin/catalog/{made['lj']['id']}", form_of({"title": "Dragon Well"}, {"specs": [], "skus": [row({}, "bad")]}))
        assert r.status_code == 422 and not chinese_left(r.text, *data), sorted(chinese_left(r.text, *data))
        bad = b"product_title,price,kind\r\nA,abc,car\r\n"
        r = await b.c.post("/admin/catalog/import", data={"_csrf": b.csrf}, files={"file": ("x.csv", bad, "text/csv")})
        assert r.status_code == 200 and not chinese_left(r.text, *data), sorted(chinese_left(r.text, *data))
    shopper = browser()
    base = f"/m/{t.code}"
    with shopper.language("en"):
        for path in ("/", "/category", f"/category?c={made['ware']['id']}", "/category?q=none", f"/p/{made['lj']['id']}"):
            r = await shopper.get(base + path)
            assert r.status_code == 200, path
            left = chinese_left(r.text, *data)
            assert not left, (path, sorted(left))
