"""The admin API of freight templates: CRUD, one default per tenant, validation codes,
permissions, tenant isolation, audit entries, and the quote endpoint."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from siyu.kit.audit import AuditEntry
from tests.shipping._helpers import ADMIN, TEMPLATES, rule

WEIGHT: dict[str, Any] = {
    "name": "全国快递", "mode": "per_weight", "default_rule": rule(1000, 800, 1000, 400),
    "region_rules": [rule(1000, 500, 1000, 200, ["31", "32", "33"]), rule(1000, 2000, 1000, 1500, ["54", "65"])],
    "free_threshold_fen": 9900,
}


async def _create(owner, body: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = await owner.post(TEMPLATES, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_crud_and_exactly_one_default(runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    first = await _create(owner, WEIGHT)
    assert first["is_default"] is True, "the first template becomes the default"
    assert first["default_rule"] == rule(1000, 800, 1000, 400) and first["flat_fee_fen"] is None
    assert [r["provinces"] for r in first["region_rules"]] == [["31", "32", "33"], ["54", "65"]]
    flat = await _create(owner, {"name": "统一运费", "mode": "flat", "flat_fee_fen": 1000, "default_rule": rule(1, 1, 1, 1)})
    assert flat["is_default"] is False and flat["default_rule"] is None, "fields of other modes are ignored"

    # Making another the default moves the mark; there is always exactly one.
    third = await _create(owner, {"name": "包邮", "mode": "free", "is_default": True})
    listed = (await owner.get(TEMPLATES)).json()
    assert [x["id"] for x in listed if x["is_default"]] == [third["id"]] and listed[0]["id"] == third["id"]
    r = await owner.post(f"{TEMPLATES}/{first['id']}/default")
    assert r.status_code == 200 and r.json()["is_default"]
    assert [x["id"] for x in (await owner.get(TEMPLATES)).json() if x["is_default"]] == [first["id"]]

    # The default cannot be deleted or un-marked.
    r = await owner.delete(f"{TEMPLATES}/{first['id']}")
    assert r.status_code == 409 and r.json()["code"] == "default_template"
    r = await owner.request("PUT", f"{TEMPLATES}/{first['id']}", json={**WEIGHT, "is_default": False})
    assert r.status_code == 409 and r.json()["code"] == "default_template"
    # Replacing keeps the default when asked to, and may change the mode.
    r = await owner.request("PUT", f"{TEMPLATES}/{first['id']}", json={**WEIGHT, "name": "全国快递 2", "is_default": True})
    assert r.status_code == 200 and r.json()["name"] == "全国快递 2" and r.json()["is_default"]
    r = await owner.request("PUT", f"{TEMPLATES}/{flat['id']}", json={"name": "改成按件", "mode": "per_piece",
                                                                     "default_rule": rule(1, 600, 1, 200)})
    assert r.status_code == 200 and r.json()["mode"] == "per_piece" and r.json()["flat_fee_fen"] is None
    assert (await owner.get(f"{TEMPLATES}/{flat['id']}")).json()["default_rule"] == rule(1, 600, 1, 200)

    # A template that is not the default can go.
    assert (await owner.delete(f"{TEMPLATES}/{third['id']}")).status_code == 204
    assert (await owner.get(f"{TEMPLATES}/{third['id']}")).status_code == 404

    async with runtime.db.uow(readonly=True) as s:
        actions = list((await s.execute(select(AuditEntry.action).where(AuditEntry.tenant_id == t.id,
                                                                        AuditEntry.object_type == "freight_template")
                                        .order_by(AuditEntry.id))).scalars())
    assert actions.count("shipping.template.create") == 3 and "shipping.template.default" in actions
    assert "shipping.template.update" in actions and actions[-1] == "shipping.template.delete"


async def test_validation_errors_have_stable_codes(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "mode": "flat"}, "flat_fee_required"),
        ({"name": "x", "mode": "per_piece"}, "default_rule_required"),
        ({**WEIGHT, "region_rules": [rule(1, 1, 1, 1, ["33"]), rule(1, 1, 1, 1, ["11", "33"])]}, "province_repeated"),
        ({**WEIGHT, "region_rules": [rule(1, 1, 1, 1, ["33", "33"])]}, "province_repeated"),
        ({**WEIGHT, "region_rules": [rule(1, 1, 1, 1, ["99"])]}, "unknown_province"),
        ({**WEIGHT, "default_rule": rule(1000, -1, 1000, 400)}, "validation_error"),   # fees ≥ 0
        ({**WEIGHT, "default_rule": rule(0, 800, 1000, 400)}, "validation_error"),     # units ≥ 1
        ({**WEIGHT, "default_rule": rule(1000, 800, 0, 400)}, "validation_error"),
        ({**WEIGHT, "default_rule": {**rule(1000, 800, 1000, 400), "first_fee_fen": 8.5}}, "validation_error"),  # ints
        ({**WEIGHT, "region_rules": [rule(1, 1, 1, 1, [])]}, "validation_error"),
        ({**WEIGHT, "free_threshold_fen": -1}, "validation_error"),
        ({**WEIGHT, "mode": "by_volume"}, "validation_error"),
        ({**WEIGHT, "name": "  "}, "validation_error"),
        ({**WEIGHT, "tenant_id": 1}, "validation_error"),
    ]
    for body, code in cases:
        r = await owner.post(TEMPLATES, json=body)
        assert r.status_code == 422 and r.json()["code"] == code, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await owner.get(TEMPLATES)).json() == []


async def test_permissions_and_tenant_isolation(runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    tpl = await _create(owner, WEIGHT)
    guide = await login_as(t, role="store_guide")
    assert (await guide.get(TEMPLATES)).status_code == 200, "orders.read may read"
    for method, url, body in (("POST", TEMPLATES, WEIGHT), ("PUT", f"{TEMPLATES}/{tpl['id']}", WEIGHT),
                              ("POST", f"{TEMPLATES}/{tpl['id']}/default", None), ("DELETE", f"{TEMPLATES}/{tpl['id']}", None)):
        r = await guide.request(method, url, json=body)
        assert r.status_code == 403 and r.json()["code"] == "permission_denied", (method, url)
    other = await login_as(await tenant_factory())
    for method, url, body in (("GET", f"{TEMPLATES}/{tpl['id']}", None), ("PUT", f"{TEMPLATES}/{tpl['id']}", WEIGHT),
                              ("POST", f"{TEMPLATES}/{tpl['id']}/default", None), ("DELETE", f"{TEMPLATES}/{tpl['id']}", None)):
        r = await other.request(method, url, json=body)
        assert r.status_code == 404 and r.json()["code"] == "freight_template_not_found", (method, url)
    assert (await other.get(TEMPLATES)).json() == []
    # Another tenant's template id in a quote is simply unknown: its lines use the caller's default (none: free).
    r = await other.post(f"{ADMIN}/quote", json={"province_code": "33", "lines": [
        {"sku_id": 1, "quantity": 3, "weight_g": 900, "goods_fen": 3000, "template_id": tpl["id"]}]})
    assert r.status_code == 200 and r.json()["freight_fen"] == 0


async def test_quote_endpoint(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    owner = await login_as(t)
    await _create(owner, WEIGHT)
    body = {"province_code": "33", "lines": [
        {"sku_id": 1, "quantity": 2, "weight_g": 800, "goods_fen": 5000},
        {"sku_id": 2, "quantity": 1, "goods_fen": 20000, "requires_shipping": False},
    ]}
    guide = await login_as(t, role="store_guide")
    r = await guide.post(f"{ADMIN}/quote", json=body)
    assert r.status_code == 200, r.text
    q = r.json()
    # 浙江: 1600 g → 500 + one started 1000 g block × 200; the voucher line neither ships nor counts.
    assert q["freight_fen"] == 700 and q["free_shipping"] is False
    assert q["per_template"][0]["units"] == 1600 and q["per_template"][0]["goods_fen"] == 5000
    r = await owner.post(f"{ADMIN}/quote", json={**body, "province_code": "00"})
    assert r.status_code == 422 and r.json()["code"] == "unknown_province"
