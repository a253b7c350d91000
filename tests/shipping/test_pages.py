"""Console pages of freight templates, driven through their forms: list, editor (the rule
rows travel as JSON in the hidden ``rules`` field, as the Alpine editor posts them), make
default, delete (the default is refused), read-only staff, English."""

from __future__ import annotations

import json

from siyu.customers.schemas import PROVINCES
from tests._pages import chinese_left, field_error, make_staff, nav_of, owner_browser, staff_sign_in
from tests.shipping._helpers import TEMPLATES

BASE = "/admin/shipping/freight-templates"
RULES = {"default": {"first": "1000", "first_fee": "8", "additional": "1000", "additional_fee": "4.00"},
         "regions": [{"provinces": ["31", "32", "33"], "first": "1000", "first_fee": "5", "additional": "1000",
                      "additional_fee": "2"}]}


def _form(**changes: str) -> dict[str, str]:
    form = {"name": "全国快递", "mode": "per_weight", "flat_fee": "", "free_threshold": "99", "is_default": "",
            "rules": json.dumps(RULES)}
    form.update(changes)
    return form


async def test_list_create_edit_default_delete(browser, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory("Green Hill Tea")
    b = await owner_browser(browser, t)
    r = await b.get(BASE)
    assert r.status_code == 200 and "还没有运费模板" in r.text
    assert f'href="{BASE}"' in nav_of(r.text) and "运费模板" in nav_of(r.text)
    r = await b.get(f"{BASE}/new")
    assert r.status_code == 200 and 'id="freight-editor-data"' in r.text and 'name="rules"' in r.text

    # Refused input comes back with messages next to the fields.
    r = await b.post(BASE, _form(name="", free_threshold="abc"))
    assert r.status_code == 422 and field_error(r.text, "name") and field_error(r.text, "free_threshold")
    bad_rules = {**RULES, "default": {**RULES["default"], "first": "0"}}
    r = await b.post(BASE, _form(rules=json.dumps(bad_rules)))
    assert r.status_code == 422 and "运费规则有误" in r.text
    repeated = {**RULES, "regions": [*RULES["regions"], {**RULES["regions"][0], "provinces": ["33"]}]}
    r = await b.post(BASE, _form(rules=json.dumps(repeated)))
    assert r.status_code == 422 and "浙江省出现在多条地区规则中" in r.text
    r = await b.post(BASE, _form(mode="flat", flat_fee=""))
    assert r.status_code == 422 and field_error(r.text, "flat_fee")
    r = await b.post(BASE, _form(rules="not json"))
    assert r.status_code == 422

    r = await b.post(BASE, _form())
    assert r.status_code == 303 and r.headers["location"] == BASE
    page = await b.follow(r)
    assert "已保存运费模板 全国快递" in page.text and "首重 1000 克 ¥8.00，续重 1000 克 ¥4.00" in page.text
    assert "另有 1 条地区规则" in page.text and "满 ¥99.00 包邮" in page.text
    r = await b.post(BASE, _form(name="统一运费", mode="flat", flat_fee="12.5", free_threshold=""))
    assert r.status_code == 303
    owner = await login_as(t)
    templates = {x["name"]: x for x in (await owner.get(TEMPLATES)).json()}
    weight, flat = templates["全国快递"], templates["统一运费"]
    assert weight["is_default"] and weight["free_threshold_fen"] == 9900
    assert weight["default_rule"] == {"first": 1000, "first_fee_fen": 800, "additional": 1000, "additional_fee_fen": 400}
    assert weight["region_rules"][0]["provinces"] == ["31", "32", "33"]
    assert flat["flat_fee_fen"] == 1250 and not flat["is_default"] and flat["free_threshold_fen"] is None

    # The editor shows the saved rules in yuan.
    r = await b.get(f"{BASE}/{weight['id']}")
    assert r.status_code == 200 and 'value="99.00"' in r.text and '"first_fee": "5.00"' in r.text
    r = await b.post(f"{BASE}/{weight['id']}", _form(name="全国快递 2", is_default="1", free_threshold=""))
    assert r.status_code == 303
    assert (await owner.get(f"{TEMPLATES}/{weight['id']}")).json()["free_threshold_fen"] is None

    # The default cannot be deleted: the list again with the reason.
    r = await b.post(f"{BASE}/{weight['id']}/delete")
    assert r.status_code == 409 and "默认运费模板不能删除" in r.text
    r = await b.post(f"{BASE}/{flat['id']}/default")
    assert r.status_code == 303 and "已将 统一运费 设为默认运费模板" in (await b.follow(r)).text
    r = await b.post(f"{BASE}/{weight['id']}/delete")
    assert r.status_code == 303 and "已删除运费模板 全国快递 2" in (await b.follow(r)).text
    assert [x["name"] for x in (await owner.get(TEMPLATES)).json()] == ["统一运费"]
    # Forms need the CSRF token; another tenant's template is a 404 page.
    assert (await b.post(f"{BASE}/{flat['id']}/default", csrf=False)).status_code == 403
    other = await owner_browser(browser, await tenant_factory())
    assert (await other.get(f"{BASE}/{flat['id']}")).status_code == 404
    assert (await other.post(f"{BASE}/{flat['id']}", _form())).status_code == 404
    assert (await other.post(f"{BASE}/{flat['id']}/delete")).status_code == 404

    with b.language("en"):
        r = await b.get(BASE)
        assert r.status_code == 200 and "Freight templates" in r.text and "¥12.50 per order" in r.text
        assert not chinese_left(r.text, "统一运费", "店主", "店"), chinese_left(r.text, "统一运费", "店主", "店")
        r = await b.get(f"{BASE}/new")
        assert not chinese_left(r.text, "店主", "店", *PROVINCES.values()), chinese_left(r.text, "店主", "店", *PROVINCES.values())


async def test_read_only_staff(browser, runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    r = await owner.post(TEMPLATES, json={"name": "包邮", "mode": "free"})
    tid = r.json()["id"]
    _id, username, password = await make_staff(runtime, t, "store_guide")
    b = browser()
    await staff_sign_in(b, username, password)
    r = await b.get(BASE)
    assert r.status_code == 200 and "包邮" in r.text and f"{BASE}/new" not in r.text and "设为默认" not in r.text
    r = await b.get(f"{BASE}/{tid}")
    assert r.status_code == 200 and 'type="submit"' not in r.text.split('id="freight-editor-data"')[0].split("<main")[1]
    assert (await b.get(f"{BASE}/new")).status_code == 403
    assert (await b.post(BASE, _form())).status_code == 403
    assert (await b.post(f"{BASE}/{tid}/delete")).status_code == 403
