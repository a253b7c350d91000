"""The inventory console pages, driven through their HTML forms like a browser would.

Every page renders for the owner; receive, adjust, threshold, location and stocktake forms
work and show their errors next to the form; a store guide (catalog.read) sees the pages
without the write forms and is refused a post; a form without the CSRF token is refused;
the English rendering leaves no Chinese behind. The :class:`~tests._pages.Browser` hook
fails the test on any 5xx.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest

from siyu.inventory import service
from tests._pages import (
    Browser,
    browsers,
    chinese_left,
    field_error,
    make_staff,
    make_store,
    staff_sign_in,
)
from tests.inventory._helpers import Shop, add_location, level, receive


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make


async def _owner(browser: Callable[[], Browser], shop: Shop) -> Browser:
    b = browser()
    await staff_sign_in(b, shop.tenant.owner_username, shop.tenant.owner_password)
    return b


def _flash(page: str) -> str:
    m = re.search(r'<div class="flash flash-\w+" role="\w+">(.*?)</div>', page, re.S)
    return m.group(1).strip() if m else ""


async def test_every_page_renders(runtime, shop, browser) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    wh = await add_location(runtime, shop, "中心仓", priority=10)
    await receive(runtime, shop, a, wh, 3)
    async with runtime.db.uow() as s:
        await service.set_threshold(s, shop.scope, a, wh, 5)
        await service.reserve(s, shop.scope, "order:1", [(a, 1)])
        st = await service.create_stocktake(s, shop.scope, wh, "月末")
    b = await _owner(browser, shop)
    pages = ["/admin/inventory", "/admin/inventory?stock=low", f"/admin/inventory?sku={a}&location={wh}",
             "/admin/inventory/locations", f"/admin/inventory/locations/{wh}", "/admin/inventory/movements",
             f"/admin/inventory/movements?sku={a}&reason=reserve&date_from=2020-01-01&date_to=2099-12-31",
             "/admin/inventory/movements?source=order:1", "/admin/inventory/low-stock", "/admin/inventory/stocktakes",
             f"/admin/inventory/stocktakes/{st.id}"]
    for url in pages:
        r = await b.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        assert 'name="csrf-token"' in r.text
    r = await b.get("/admin/inventory")
    assert "明前龙井 · 50g" in r.text  # SKU names come from the catalog
    assert "低库存" in r.text and "中心仓" in r.text
    r = await b.get("/admin/inventory/low-stock")
    assert f"SKU #{a}" in r.text
    r = await b.get("/admin/inventory/movements?date_from=yesterday")
    assert r.status_code == 200 and "日期格式不正确" in r.text
    for url in ("/admin/inventory/locations/999999999", "/admin/inventory/stocktakes/999999999"):
        assert (await b.get(url)).status_code == 404


async def test_receive_adjust_and_threshold_forms(runtime, shop, browser) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    b = await _owner(browser, shop)
    page = await b.get("/admin/inventory")
    assert "首次入库时会自动创建" in page.text
    # receive without a location: the default warehouse is created
    r = await b.post("/admin/inventory/receive", {"sku_id": str(a), "location_id": "", "qty": "12", "note": "到货"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/inventory?sku={a}"
    page = await b.follow(r)
    assert "已入库 12 件，在库 12 件" in _flash(page.text)
    async with runtime.db.uow() as s:
        default = await service.default_location(s, shop.scope)
    assert default.name == "默认仓库"
    assert await level(runtime, shop, a, default.id) == (12, 0)

    # bad input: the dialog opens again with the field's error
    r = await b.post("/admin/inventory/receive", {"sku_id": str(a), "qty": "0"})
    assert r.status_code == 422 and "data-open-on-load" in r.text
    assert field_error(r.text, "qty") == "数量需为 1–100000000 的整数"
    r = await b.post("/admin/inventory/receive", {"sku_id": "999999999", "qty": "1"})
    assert r.status_code == 422 and "商品规格不存在" in field_error(r.text, "sku_id")

    # adjust beyond what is available: 409 next to the field, nothing changes
    async with runtime.db.uow() as s:
        await service.reserve(s, shop.scope, "order:1", [(a, 10)])
    r = await b.post("/admin/inventory/adjust", {"sku_id": str(a), "location_id": str(default.id), "delta": "-3", "reason": "破损"})
    assert r.status_code == 409 and "可用库存不足" in field_error(r.text, "delta")
    r = await b.post("/admin/inventory/adjust", {"sku_id": str(a), "location_id": str(default.id), "delta": "-2", "reason": ""})
    assert r.status_code == 422 and field_error(r.text, "reason")
    r = await b.post("/admin/inventory/adjust", {"sku_id": str(a), "location_id": str(default.id), "delta": "-2", "reason": "破损"})
    assert r.status_code == 303
    assert "已调整库存 -2 件，在库 10 件" in _flash((await b.follow(r)).text)
    assert await level(runtime, shop, a, default.id) == (10, 10)

    # a row's 入库 action opens the form prefilled
    page = await b.get(f"/admin/inventory?sku={a}&location={default.id}&open=receive")
    dialog = page.text.split('id="dlg-receive"', 1)[1].split("</dialog>", 1)[0]
    assert "data-open-on-load" in dialog and f'value="{a}"' in dialog
    assert f'<option value="{default.id}" selected>' in dialog

    # threshold, inline per level
    page = await b.get("/admin/inventory")
    level_id = int(re.search(r'action="/admin/inventory/levels/(\d+)/threshold"', page.text).group(1))  # type: ignore[union-attr]
    r = await b.post(f"/admin/inventory/levels/{level_id}/threshold", {"threshold": "4", "back": "/admin/inventory?stock=low"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/inventory?stock=low"
    page = await b.follow(r)
    assert "已设置低库存预警值为 4" in _flash(page.text) and "缺货" in page.text
    r = await b.post(f"/admin/inventory/levels/{level_id}/threshold", {"threshold": "lots", "back": "https://evil.example/"})
    assert r.headers["location"] == "/admin/inventory"
    assert "预警值需为" in _flash((await b.follow(r)).text)
    r = await b.post(f"/admin/inventory/levels/{level_id}/threshold", {"threshold": ""})
    assert "已关闭" in _flash((await b.follow(r)).text)


async def test_location_forms(runtime, shop, browser) -> None:  # type: ignore[no-untyped-def]
    store_id = await make_store(runtime, shop.tenant, name="西湖店")
    b = await _owner(browser, shop)
    r = await b.post("/admin/inventory/locations", {"code": "hz-central", "name": "杭州中心仓", "kind": "warehouse",
                                                     "priority": "10", "status": "active"})
    assert r.status_code == 303
    assert "已新建库存点 杭州中心仓" in _flash((await b.follow(r)).text)
    r = await b.post("/admin/inventory/locations", {"code": "xihu", "name": "西湖店库存", "kind": "store", "store_id": str(store_id),
                                                     "priority": "50", "status": "active"})
    assert r.status_code == 303
    r = await b.post("/admin/inventory/locations", {"code": "hz-central", "name": "重复", "kind": "warehouse"})
    assert r.status_code == 409 and "已存在" in field_error(r.text, "code")
    r = await b.post("/admin/inventory/locations", {"code": "Bad Code", "name": "", "kind": "warehouse"})
    assert r.status_code == 422 and field_error(r.text, "code") and field_error(r.text, "name")
    r = await b.post("/admin/inventory/locations", {"code": "md2", "name": "没选门店", "kind": "store"})
    assert r.status_code == 422 and field_error(r.text, "store_id")
    page = await b.get("/admin/inventory/locations")
    assert "西湖店" in page.text and "线下门店" in page.text
    async with runtime.db.uow() as s:
        locs = {loc.code: loc.id for loc in await service.list_locations(s, shop.scope)}
    r = await b.post(f"/admin/inventory/locations/{locs['xihu']}", {"name": "西湖店仓", "priority": "40", "status": "inactive"})
    assert r.status_code == 303
    page = await b.follow(r)
    assert "已保存库存点 西湖店仓" in _flash(page.text)
    r = await b.post(f"/admin/inventory/locations/{locs['xihu']}", {"name": "", "priority": "x"})
    assert r.status_code == 422 and field_error(r.text, "priority")


async def test_stocktake_forms(runtime, shop, browser) -> None:  # type: ignore[no-untyped-def]
    a, b_sku, c = shop.skus[:3]
    wh = await add_location(runtime, shop, "中心仓")
    await receive(runtime, shop, a, wh, 10)
    await receive(runtime, shop, b_sku, wh, 5)
    b = await _owner(browser, shop)
    r = await b.post("/admin/inventory/stocktakes", {"location_id": "", "note": ""})
    assert r.status_code == 422 and field_error(r.text, "location_id")
    r = await b.post("/admin/inventory/stocktakes", {"location_id": str(wh), "note": "月末盘点"})
    assert r.status_code == 303
    url = r.headers["location"]
    page = await b.follow(r)
    assert f"SKU #{a}" in page.text and f"SKU #{b_sku}" in page.text  # rows for what the location holds
    # counts for a and for c (an extra SKU typed in), b left blank
    r = await b.post(f"{url}/counts", {"sku_id": [str(a), str(b_sku), str(c), ""], "counted": ["8", "", "3", ""]})
    assert r.status_code == 303
    assert "已保存盘点数" in _flash((await b.follow(r)).text)
    r = await b.post(f"{url}/counts", {"sku_id": [str(a)], "counted": ["-1"]})
    assert r.status_code == 422 and "实盘数量需为" in r.text
    r = await b.post(f"{url}/apply", {})
    assert r.status_code == 303
    page = await b.follow(r)
    assert "盘点已生效" in _flash(page.text) and "已生效" in page.text
    assert await level(runtime, shop, a, wh) == (8, 0)
    assert await level(runtime, shop, b_sku, wh) == (5, 0)
    assert await level(runtime, shop, c, wh) == (3, 0)
    r = await b.post(f"{url}/apply", {})
    assert "不能生效" in _flash((await b.follow(r)).text)
    # a second stocktake, cancelled
    r = await b.post("/admin/inventory/stocktakes", {"location_id": str(wh)})
    url2 = r.headers["location"]
    r = await b.post(f"{url2}/cancel", {})
    assert "已取消盘点单" in _flash((await b.follow(r)).text)


async def test_store_guide_reads_but_cannot_write_and_csrf_is_checked(runtime, shop, browser) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    wh = await add_location(runtime, shop, "中心仓")
    await receive(runtime, shop, a, wh, 3)
    _id, username, password = await make_staff(runtime, shop.tenant, "store_guide")
    g = browser()
    await staff_sign_in(g, username, password)
    page = await g.get("/admin/inventory")
    assert page.status_code == 200
    assert 'action="/admin/inventory/receive"' not in page.text and "/threshold" not in page.text
    r = await g.post("/admin/inventory/receive", {"sku_id": str(a), "location_id": str(wh), "qty": "5"})
    assert r.status_code == 403
    assert await level(runtime, shop, a, wh) == (3, 0)
    # customer service has no catalog permission at all
    _id, username, password = await make_staff(runtime, shop.tenant, "customer_service")
    cs = browser()
    await staff_sign_in(cs, username, password)
    assert (await cs.get("/admin/inventory")).status_code == 403
    # a forged form (no CSRF token) is refused
    owner = await _owner(browser, shop)
    await owner.get("/admin/inventory")
    r = await owner.post("/admin/inventory/receive", {"sku_id": str(a), "location_id": str(wh), "qty": "5"}, csrf=False)
    assert r.status_code == 403
    assert await level(runtime, shop, a, wh) == (3, 0)


async def test_pages_in_english_leave_no_chinese(runtime, shop, browser) -> None:  # type: ignore[no-untyped-def]
    a = shop.skus[0]
    wh = await add_location(runtime, shop, "中心仓", priority=10)
    store_id = await make_store(runtime, shop.tenant, name="Riverside")
    async with runtime.db.uow() as s:
        from siyu.inventory.schemas import LocationIn

        await service.create_location(s, shop.scope, LocationIn(code="river", name="River stock", kind="store",
                                                                 store_id=store_id, status="inactive"))
    await receive(runtime, shop, a, wh, 3, note="到货")
    async with runtime.db.uow() as s:
        await service.set_threshold(s, shop.scope, a, wh, 5)
        await service.reserve(s, shop.scope, "order:1", [(a, 1)])
        await service.adjust(s, shop.scope, a, wh, -1, "破损")
        draft = await service.create_stocktake(s, shop.scope, wh, "盘点备注")
        done = await service.create_stocktake(s, shop.scope, wh)
        await service.record_counts(s, shop.scope, done.id, [(a, 2)])
        await service.apply_stocktake(s, shop.scope, done.id)
    b = await _owner(browser, shop)
    data = ("中心仓", "明前龙井", "50g", "到货", "破损", "盘点备注", shop.tenant.name, "店主", "店")  # the owner is named 店主 (avatar: 店)
    with b.language("en"):
        for url in ("/admin/inventory", "/admin/inventory/locations", f"/admin/inventory/locations/{wh}",
                    "/admin/inventory/movements", "/admin/inventory/low-stock", "/admin/inventory/stocktakes",
                    f"/admin/inventory/stocktakes/{draft.id}", f"/admin/inventory/stocktakes/{done.id}"):
            r = await b.get(url)
            assert r.status_code == 200, url
            left = chinese_left(r.text, *data)
            assert not left, (url, left)
        r = await b.post("/admin/inventory/adjust", {"sku_id": str(a), "location_id": str(wh), "delta": "-9", "reason": "x"})
        assert r.status_code == 409 and "Not enough available stock" in r.text
        assert not chinese_left(r.text, *data)


async def test_a_stocktake_form_with_many_rows_saves(runtime, shop, browser) -> None:  # type: ignore[no-untyped-def]
    """(Regression: a length limit on the repeated form fields capped the rows at 30.)"""
    from tests.inventory._helpers import make_skus

    skus = await make_skus(runtime, shop.tenant.id, 60)
    wh = await add_location(runtime, shop, "大仓")
    async with runtime.db.uow() as s:
        st = await service.create_stocktake(s, shop.scope, wh)
    b = await _owner(browser, shop)
    await b.get(f"/admin/inventory/stocktakes/{st.id}")
    r = await b.post(f"/admin/inventory/stocktakes/{st.id}/counts", {"sku_id": [str(x) for x in skus], "counted": ["1"] * 60})
    assert r.status_code == 303, r.text[:300]
    async with runtime.db.uow(readonly=True) as s:
        _st, lines = await service.get_stocktake(s, shop.scope, st.id)
    assert len(lines) == 60
    r = await b.post(f"/admin/inventory/stocktakes/{st.id}/counts", {"sku_id": ["1" * 31], "counted": ["1"]})
    assert r.status_code == 422
