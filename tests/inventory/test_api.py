"""The admin inventory API: the whole flow as an integration would drive it, problem+json
errors with stable codes, permissions on every endpoint, the audit trail, and tenant
isolation (another tenant's objects are 404 and stay untouched)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from siyu.inventory import service
from siyu.kit.runtime import Runtime
from tests.conftest import StaffClient
from tests.inventory._helpers import Shop, make_skus

INV = "/api/admin/v1/inventory"


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body["code"] == code and body["status"] == status, body
    return body


async def _location(owner: StaffClient, name: str, **kw: Any) -> int:
    from tests.conftest import unique

    r = await owner.post(f"{INV}/locations", json={"code": unique("loc"), "name": name, **kw})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_stock_flow_through_the_api(runtime, shop, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(shop.tenant)
    a, b = shop.skus[:2]
    central = await _location(owner, "中心仓", priority=10)
    store = await _location(owner, "门店仓", priority=50)
    r = await owner.get(f"{INV}/locations")
    assert [(x["id"], x["priority"]) for x in r.json()] == [(central, 10), (store, 50)]

    # receive: idempotent by header (or body) key
    body = {"sku_id": a, "location_id": central, "qty": 30, "note": "采购入库"}
    r1 = await owner.post(f"{INV}/receive", json=body, headers={"Idempotency-Key": "po-77"})
    r2 = await owner.post(f"{INV}/receive", json=body, headers={"Idempotency-Key": "po-77"})
    assert r1.status_code == r2.status_code == 201, r1.text
    assert r1.json()["id"] == r2.json()["id"] and r1.json()["on_hand_after"] == 30
    assert r1.json()["source_key"] == "receive:po-77" and r1.json()["actor_kind"] == "staff"
    r = await owner.post(f"{INV}/receive", json={**body, "qty": 31, "source_key": "po-77"})
    _problem(r, 409, "source_key_reused")
    r = await owner.post(f"{INV}/receive", json={"sku_id": b, "qty": 4})  # no location: the default one
    assert r.status_code == 201 and r.json()["location_id"] == central
    r = await owner.post(f"{INV}/adjust", json={"sku_id": a, "location_id": central, "delta": -5, "reason": "运输破损"})
    assert r.status_code == 201 and r.json()["on_hand_after"] == 25 and r.json()["note"] == "运输破损"

    # levels, thresholds, low stock
    r = await owner.get(f"{INV}/levels", params={"sku_id": a})
    (lv,) = r.json()["items"]
    assert (lv["on_hand"], lv["reserved"], lv["available"], lv["location_name"], lv["is_low"]) == (25, 0, 25, "中心仓", False)
    r = await owner.patch(f"{INV}/levels/{lv['id']}", json={"low_stock_threshold": 30})
    assert r.status_code == 200 and r.json()["is_low"] is True
    r = await owner.request("PUT", f"{INV}/thresholds", json={"sku_id": b, "location_id": store, "threshold": 2})
    assert r.status_code == 200 and (r.json()["on_hand"], r.json()["is_low"]) == (0, True)
    r = await owner.get(f"{INV}/low-stock")
    assert [(x["sku_id"], x["available"]) for x in r.json()["items"]] == [(b, 0), (a, 25)]
    r = await owner.get(f"{INV}/levels", params={"stock": "out"})
    assert [(x["sku_id"], x["location_id"]) for x in r.json()["items"]] == [(b, store)]
    r = await owner.get(f"{INV}/levels", params={"stock": "in", "location_id": central})
    assert r.json()["total"] == 2
    r = await owner.get(f"{INV}/available", params=[("sku_id", a), ("sku_id", b), ("sku_id", 999_999)])
    assert r.json() == [{"sku_id": a, "available": 25}, {"sku_id": b, "available": 4}, {"sku_id": 999_999, "available": 0}]

    # reservations are made by orders through the service; the API shows them and the ledger
    async with runtime.db.uow() as s:
        await service.reserve(s, shop.scope, "order:501", [(a, 3)])
    r = await owner.get(f"{INV}/reservations", params={"status": "active"})
    (res,) = r.json()["items"]
    assert res["source_key"] == "order:501" and res["lines"] == [{"sku_id": a, "location_id": central, "quantity": 3, "committed": 0}]
    assert (await owner.get(f"{INV}/reservations/{res['id']}")).json() == res

    # the ledger: filters and paging
    r = await owner.get(f"{INV}/movements", params={"sku_id": a, "page_size": 2})
    page = r.json()
    assert page["total"] == 3 and [m["reason"] for m in page["items"]] == ["reserve", "adjust"]
    r = await owner.get(f"{INV}/movements", params={"sku_id": a, "page_size": 2, "page": 2})
    assert [m["reason"] for m in r.json()["items"]] == ["receive"]
    r = await owner.get(f"{INV}/movements", params={"source": "order:501"})
    assert [(m["reason"], m["delta_reserved"]) for m in r.json()["items"]] == [("reserve", 3)]
    r = await owner.get(f"{INV}/movements", params={"reason": "adjust", "location_id": central})
    assert r.json()["total"] == 1
    now = datetime.now(UTC)
    r = await owner.get(f"{INV}/movements", params={"created_from": (now - timedelta(hours=1)).isoformat(),
                                                   "created_to": (now + timedelta(hours=1)).isoformat()})
    assert r.json()["total"] == 4
    r = await owner.get(f"{INV}/movements", params={"created_to": "2020-01-01T00:00:00"})
    assert r.json()["total"] == 0

    # stocktakes
    r = await owner.post(f"{INV}/stocktakes", json={"location_id": central, "note": "月末盘点"})
    assert r.status_code == 201 and r.json()["status"] == "draft"
    st_id = r.json()["id"]
    r = await owner.request("PUT", f"{INV}/stocktakes/{st_id}/counts", json={"counts": [{"sku_id": a, "counted": 2}]})
    assert r.status_code == 200
    _problem(await owner.post(f"{INV}/stocktakes/{st_id}/apply"), 409, "stocktake_below_reserved")
    r = await owner.request("PUT", f"{INV}/stocktakes/{st_id}/counts", json={"counts": [{"sku_id": a, "counted": 24}, {"sku_id": b, "counted": 5}]})
    r = await owner.post(f"{INV}/stocktakes/{st_id}/apply")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "applied"
    assert [(x["sku_id"], x["system_on_hand"], x["delta"]) for x in r.json()["lines"]] == [(a, 25, -1), (b, 4, 1)]
    _problem(await owner.post(f"{INV}/stocktakes/{st_id}/apply"), 409, "illegal_stocktake_transition")
    _problem(await owner.post(f"{INV}/stocktakes/{st_id}/cancel"), 409, "illegal_stocktake_transition")
    r = await owner.get(f"{INV}/stocktakes", params={"status": "applied"})
    assert [x["id"] for x in r.json()["items"]] == [st_id]

    # every staff write is in the audit log
    r = await owner.get("/api/admin/v1/audit-log", params={"page_size": 50})
    actions = {e["action"] for e in r.json()["items"]}
    assert {"inventory.location.create", "inventory.receive", "inventory.adjust", "inventory.threshold",
            "inventory.stocktake.create", "inventory.stocktake.count", "inventory.stocktake.apply"} <= actions


async def test_errors_are_problems_with_stable_codes(runtime, shop, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(shop.tenant)
    a = shop.skus[0]
    wh = await _location(owner, "仓")
    await owner.post(f"{INV}/receive", json={"sku_id": a, "location_id": wh, "qty": 2})
    body = _problem(await owner.post(f"{INV}/adjust", json={"sku_id": a, "location_id": wh, "delta": -3, "reason": "丢失"}),
                    409, "insufficient_stock")
    assert body["available"] == 2
    for bad in ({"sku_id": a, "qty": 0}, {"sku_id": a, "qty": 100_000_001}, {"sku_id": a, "qty": "many"},
                {"sku_id": 0, "qty": 1}, {"sku_id": a, "qty": 1, "tenant_id": 1}, {"sku_id": a, "qty": 1, "source_key": "a b"},
                {"qty": 1}):
        _problem(await owner.post(f"{INV}/receive", json=bad), 422, "validation_error")
    for bad in ({"sku_id": a, "delta": 0, "reason": "x"}, {"sku_id": a, "delta": 1, "reason": "   "}):
        _problem(await owner.post(f"{INV}/adjust", json=bad), 422, "validation_error")
    _problem(await owner.post(f"{INV}/receive", json={"sku_id": 2**62, "qty": 1}), 422, "sku_not_found")
    _problem(await owner.post(f"{INV}/receive", json={"sku_id": a, "qty": 1},
                              headers={"Idempotency-Key": "not a key"}), 422, "invalid_source_key")
    r = await owner.get(f"{INV}/locations")
    code = r.json()[0]["code"]
    _problem(await owner.post(f"{INV}/locations", json={"code": code, "name": "重复"}), 409, "location_code_taken")
    _problem(await owner.post(f"{INV}/locations", json={"code": "mendian", "name": "门店", "kind": "store"}), 422, "store_required")
    _problem(await owner.get(f"{INV}/levels", params={"stock": "lots"}), 422, "validation_error")
    _problem(await owner.get(f"{INV}/available"), 422, "validation_error")
    _problem(await owner.get(f"{INV}/levels/999999999"), 404, "level_not_found")
    _problem(await owner.get(f"{INV}/stocktakes/999999999"), 404, "stocktake_not_found")
    _problem(await owner.get(f"{INV}/reservations/999999999"), 404, "reservation_not_found")
    # English on request
    r = await owner.post(f"{INV}/adjust", json={"sku_id": a, "location_id": wh, "delta": -3, "reason": "丢失"},
                         headers={"accept-language": "en"})
    assert r.json()["detail"].startswith("Not enough available stock")


async def test_permissions(runtime, shop, login_as, client) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(shop.tenant)
    wh = await _location(owner, "仓")
    r = await owner.post(f"{INV}/receive", json={"sku_id": shop.skus[0], "location_id": wh, "qty": 3})
    level_id = (await owner.get(f"{INV}/levels")).json()["items"][0]["id"]
    guide = await login_as(shop.tenant, role="store_guide")  # catalog.read only
    for url in (f"{INV}/levels", f"{INV}/locations", f"{INV}/movements", f"{INV}/low-stock", f"{INV}/stocktakes",
                f"{INV}/reservations", f"{INV}/levels/{level_id}"):
        assert (await guide.get(url)).status_code == 200, url
    writes = [
        ("POST", f"{INV}/receive", {"sku_id": shop.skus[0], "location_id": wh, "qty": 1}),
        ("POST", f"{INV}/adjust", {"sku_id": shop.skus[0], "location_id": wh, "delta": -1, "reason": "x"}),
        ("POST", f"{INV}/locations", {"code": "zz", "name": "新仓"}),
        ("PATCH", f"{INV}/locations/{wh}", {"name": "改名"}),
        ("PATCH", f"{INV}/levels/{level_id}", {"low_stock_threshold": 1}),
        ("PUT", f"{INV}/thresholds", {"sku_id": shop.skus[0], "location_id": wh, "threshold": 1}),
        ("POST", f"{INV}/stocktakes", {"location_id": wh}),
    ]
    for method, url, body in writes:
        r = await guide.request(method, url, json=body)
        assert _problem(r, 403, "permission_denied")["permission"] == "catalog.write", url
    service_desk = await login_as(shop.tenant, role="customer_service")  # no catalog permission at all
    _problem(await service_desk.get(f"{INV}/levels"), 403, "permission_denied")
    _problem(await client.get(f"{INV}/levels"), 401, "unauthorized")
    # Nothing the guide tried changed anything.
    r = await owner.get(f"{INV}/levels")
    assert r.json()["items"][0]["on_hand"] == 3 and r.json()["items"][0]["low_stock_threshold"] is None
    # An API token acts with its role and needs no CSRF token.
    r = await owner.post("/api/admin/v1/api-tokens", json={"name": "ERP", "role_id": shop.tenant.roles["operator"]})
    token = r.json()["token"]
    r = await client.post(f"{INV}/receive", json={"sku_id": shop.skus[0], "location_id": wh, "qty": 2, "source_key": "erp-1"},
                          headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 201 and r.json()["actor_kind"] == "token" and r.json()["on_hand_after"] == 5


async def _world(runtime: Runtime, owner: StaffClient, shop: Shop) -> dict[str, int]:
    wh = await _location(owner, "乙方仓")
    await owner.post(f"{INV}/receive", json={"sku_id": shop.skus[0], "location_id": wh, "qty": 9})
    level_id = (await owner.get(f"{INV}/levels")).json()["items"][0]["id"]
    st_id = (await owner.post(f"{INV}/stocktakes", json={"location_id": wh})).json()["id"]
    async with runtime.db.uow() as s:
        await service.reserve(s, shop.scope, "order:b-1", [(shop.skus[0], 2)])
    res_id = (await owner.get(f"{INV}/reservations")).json()["items"][0]["id"]
    return {"location": wh, "level": level_id, "stocktake": st_id, "reservation": res_id}


async def test_another_tenants_objects_are_404_and_untouched(runtime, shop, login_as, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.inventory._helpers import make_shop

    other = await make_shop(runtime, tenant_factory, skus=1)
    b_owner = await login_as(other.tenant)
    b = await _world(runtime, b_owner, other)
    a_owner = await login_as(shop.tenant)
    mine = (await make_skus(runtime, shop.tenant.id, 1))[0]
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"{INV}/locations/{b['location']}", None),
        ("PATCH", f"{INV}/locations/{b['location']}", {"name": "hijacked", "status": "inactive"}),
        ("GET", f"{INV}/levels/{b['level']}", None),
        ("PATCH", f"{INV}/levels/{b['level']}", {"low_stock_threshold": 99}),
        ("PUT", f"{INV}/thresholds", {"sku_id": mine, "location_id": b["location"], "threshold": 1}),
        ("POST", f"{INV}/receive", {"sku_id": mine, "location_id": b["location"], "qty": 1}),
        ("POST", f"{INV}/adjust", {"sku_id": mine, "location_id": b["location"], "delta": -1, "reason": "x"}),
        ("GET", f"{INV}/stocktakes/{b['stocktake']}", None),
        ("PUT", f"{INV}/stocktakes/{b['stocktake']}/counts", {"counts": [{"sku_id": mine, "counted": 0}]}),
        ("POST", f"{INV}/stocktakes/{b['stocktake']}/apply", None),
        ("POST", f"{INV}/stocktakes/{b['stocktake']}/cancel", None),
        ("POST", f"{INV}/stocktakes", {"location_id": b["location"]}),
        ("GET", f"{INV}/reservations/{b['reservation']}", None),
    ]
    for method, url, body in requests:
        r = await a_owner.request(method, url, json=body) if body is not None else await a_owner.request(method, url)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"].endswith("not_found")
        assert "乙方仓" not in r.text and other.tenant.code not in r.text
    # B's SKU cannot be stocked by A either (it is not A's SKU).
    _problem(await a_owner.post(f"{INV}/receive", json={"sku_id": other.skus[0], "qty": 1}), 422, "sku_not_found")
    # Lists and filters show A nothing of B's.
    for url, params in ((f"{INV}/levels", {"location_id": b["location"]}), (f"{INV}/movements", {"location_id": b["location"]}),
                        (f"{INV}/reservations", {"source_key": "order:b-1"}), (f"{INV}/stocktakes", {})):
        r = await a_owner.get(url, params=params)
        assert r.status_code == 200 and r.json()["total"] == 0, (url, r.text)
    r = await a_owner.get(f"{INV}/available", params={"sku_id": other.skus[0]})
    assert r.json() == [{"sku_id": other.skus[0], "available": 0}]
    # B is untouched.
    lv = (await b_owner.get(f"{INV}/levels/{b['level']}")).json()
    assert (lv["on_hand"], lv["reserved"], lv["low_stock_threshold"], lv["location_name"]) == (9, 2, None, "乙方仓")
    st = (await b_owner.get(f"{INV}/stocktakes/{b['stocktake']}")).json()
    assert st["status"] == "draft" and st["lines"] == []
    loc = (await b_owner.get(f"{INV}/locations/{b['location']}")).json()
    assert loc["status"] == "active"


@pytest.mark.parametrize("path", ["/levels/0", "/levels/abc", "/levels/9223372036854775808", "/locations/-1"])
async def test_bad_ids_are_422(login_as, shop, path) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(shop.tenant)
    _problem(await owner.get(INV + path), 422, "validation_error")
