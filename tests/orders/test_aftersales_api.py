"""After-sales over HTTP: the shopper's requests, the staff queue and actions, permissions,
another shopper's and another shop's cases (404), and concurrent requests on one line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from siyu.kit import clock
from siyu.kit.audit import AuditEntry
from siyu.kit.runtime import Runtime
from siyu.payments.gateways import sandbox as sandbox_gw
from tests.orders import _aftersales as h
from tests.orders import _lifecycle as lc
from tests.orders.conftest import OrderShop, make_order_shop

ADMIN = "/api/admin/v1/after-sales"
ORDERS = "/api/admin/v1/orders"


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _notify(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


async def _order(shop: OrderShop, *, shipped: bool = False) -> tuple[Any, list[Any]]:
    order = await lc.paid_order(shop, [(shop.skus[0], 2), (shop.skus[1], 1)])
    if shipped:
        await lc.ship(shop, order.id, "SF7000" + str(order.id).zfill(6))
    return order, await h.order_lines(shop, order.id)


def _body(order_id: int, lines: list[tuple[int, int]], kind: str = "refund_only", reason: str = "不想要了",
          **extra: Any) -> dict[str, Any]:
    return {"order_id": order_id, "kind": kind, "lines": [{"order_line_id": lid, "quantity": q} for lid, q in lines],
            "reason": reason, **extra}


async def _audits(shop: OrderShop, action: str) -> list[AuditEntry]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(AuditEntry).where(AuditEntry.tenant_id == shop.scope.id,
                                                               AuditEntry.action == action))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def test_a_shopper_asks_for_a_refund_and_staff_approve_it(order_shop: OrderShop, client: httpx.AsyncClient,
                                                                login_as: Any) -> None:
    shop = order_shop
    order, (la, lb) = await _order(shop)
    r = await client.get(shop.url(f"/orders/{order.id}/refundable"), headers=shop.buyer.headers)
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["allowed"] and info["reason"] is None
    assert [(x["order_line_id"], x["refund_only_qty"], x["refund_only_fen"], x["return_refund_qty"]) for x in info["lines"]] == [
        (la.id, 2, la.paid_fen, 0), (lb.id, 1, lb.paid_fen, 0)]
    assert info["lines"][0]["unit_refund_fen"] == la.paid_fen // 2
    assert [k["kind"] for k in info["reasons"]["kinds"]] == ["refund_only", "return_refund"]

    r = await client.post(shop.url("/after-sales"), headers=shop.buyer.headers,
                          json=_body(order.id, [(la.id, 1)], reason="拍错了/多拍了", description="选错规格",
                                     images=["/media/after-sales/a.jpg"]))
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["status"] == "requested" and case["status_label"] == "待审核" and case["kind_label"] == "仅退款"
    assert case["refund_fen"] == la.paid_fen // 2 and case["order_no"] == order.order_no
    assert case["lines"] == [{"order_line_id": la.id, "sku_id": la.sku_id, "title": "明前龙井", "spec_text": la.spec_text,
                              "image": la.image, "unit_price_fen": 12800, "line_quantity": 2, "quantity": 1,
                              "cancelled_qty": 1, "refund_fen": la.paid_fen // 2}]
    assert case["actions"] == ["withdraw"] and case["images"] == ["/media/after-sales/a.jpg"]
    assert [t["action"] for t in case["timeline"]] == ["open"]
    r = await client.get(shop.url("/after-sales"), headers=shop.buyer.headers)
    assert r.status_code == 200 and r.json()["total"] == 1 and r.json()["items"][0]["units"] == 1

    staff = await login_as(shop.tenant, "customer_service")
    r = await staff.get(ADMIN, params={"status": "open"})
    assert r.status_code == 200 and [x["id"] for x in r.json()["items"]] == [case["id"]]
    assert r.json()["items"][0]["customer_id"] == shop.buyer.customer_id
    r = await staff.get(f"{ADMIN}/{case['id']}")
    assert r.status_code == 200 and r.json()["actions"] == ["approve", "reject"]
    r = await staff.post(f"{ADMIN}/{case['id']}/approve", json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refunding" and r.json()["refund_status"] == "pending"
    await h.settle(shop)
    r = await client.get(shop.url(f"/after-sales/{case['id']}"), headers=shop.buyer.headers)
    assert r.json()["status"] == "refunded" and r.json()["refund_status"] == "succeeded" and r.json()["resolved_at"]
    assert [t["action"] for t in r.json()["timeline"]] == ["open", "approve", "refunded"]
    assert len(await _audits(shop, "orders.after_sale.approve")) == 1
    r = await staff.get(f"{ADMIN}/{case['id']}")
    assert r.json()["order_refunded_fen"] == la.paid_fen // 2 and r.json()["order_status"] == "paid"


async def test_return_and_refund_over_http(order_shop: OrderShop, client: httpx.AsyncClient, login_as: Any) -> None:
    shop = order_shop
    order, (la, _lb) = await _order(shop, shipped=True)
    r = await client.post(shop.url("/after-sales"), headers=shop.buyer.headers,
                          json=_body(order.id, [(la.id, 2)], kind="return_refund", reason="与描述不符"))
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    staff = await login_as(shop.tenant, "customer_service")
    r = await staff.post(f"{ADMIN}/{case_id}/approve")
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["return_address"] == shop.tenant.name, "no return address set: the shop's name"
    r = await client.get(shop.url(f"/after-sales/{case_id}"), headers=shop.buyer.headers)
    assert r.json()["actions"] == ["submit_return", "withdraw"] and r.json()["return_address"] == shop.tenant.name
    r = await client.post(shop.url(f"/after-sales/{case_id}/return"), headers=shop.buyer.headers,
                          json={"carrier": "顺丰", "tracking_no": "SF9988776655"})
    assert r.status_code == 200 and r.json()["status"] == "returning" and r.json()["return_carrier"] == "顺丰"
    before = await lc.level(shop, shop.skus[0])
    r = await staff.post(f"{ADMIN}/{case_id}/receive")
    assert r.status_code == 200 and r.json()["status"] == "refunding"
    assert await lc.level(shop, shop.skus[0]) == (before[0] + 2, 0)
    await h.settle(shop)
    r = await staff.get(f"{ADMIN}/{case_id}")
    assert r.json()["status"] == "refunded" and r.json()["order_refunded_fen"] == la.paid_fen
    assert len(await _audits(shop, "orders.after_sale.receive")) == 1


async def test_staff_refund_a_whole_unshipped_order(order_shop: OrderShop, login_as: Any) -> None:
    shop = order_shop
    order, _lines = await _order(shop)
    staff = await login_as(shop.tenant, "customer_service")
    r = await staff.get(f"{ORDERS}/{order.id}/refundable")
    assert r.status_code == 200 and sum(x["refund_only_fen"] for x in r.json()["lines"]) == order.paid_fen
    assert "缺货无法发货" in r.json()["reasons"]["kinds"][0]["reasons"][-2]["value"]
    r = await staff.post(f"{ORDERS}/{order.id}/refund", json={"reason": "缺货无法发货"})
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["status"] == "refunding" and case["opened_by"] == "staff" and case["refund_fen"] == order.paid_fen
    await h.settle(shop)
    assert (await shop.order(order.id)).status == "closed"
    assert await lc.level(shop, shop.skus[0]) == (100, 0)
    [entry] = await _audits(shop, "orders.after_sale.open")
    assert entry.object_id == str(case["id"]) and entry.actor_kind == "staff"
    r = await staff.post(f"{ORDERS}/{order.id}/refund", json={})
    assert r.status_code == 409 and r.json()["code"] == "after_sale_not_allowed"


async def test_staff_refund_of_some_units_then_the_rest(order_shop: OrderShop, login_as: Any) -> None:
    shop = order_shop
    order, (la, lb) = await _order(shop)
    staff = await login_as(shop.tenant, "customer_service")
    r = await staff.post(f"{ORDERS}/{order.id}/refund", json={"lines": [{"order_line_id": lb.id, "quantity": 1}]})
    assert r.status_code == 201 and r.json()["refund_fen"] == lb.paid_fen
    # The rest, while the first refund is still on its way: lines with an open case are left out.
    r = await staff.post(f"{ORDERS}/{order.id}/refund", json={})
    assert r.status_code == 201 and [x["order_line_id"] for x in r.json()["lines"]] == [la.id]
    r = await staff.post(f"{ORDERS}/{order.id}/refund", json={})
    assert r.status_code == 409 and r.json()["code"] == "after_sale_nothing_left"
    await h.settle(shop)
    final = await shop.order(order.id)
    assert final.status == "closed" and final.refunded_fen == final.paid_fen


async def test_a_failed_refund_is_retried_over_http(order_shop: OrderShop, login_as: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shop = order_shop
    order, (_la, lb) = await _order(shop)
    staff = await login_as(shop.tenant, "customer_service")
    monkeypatch.setattr(sandbox_gw, "FAIL_MARKER", "售后退款")
    r = await staff.post(f"{ORDERS}/{order.id}/refund", json={"lines": [{"order_line_id": lb.id, "quantity": 1}]})
    case_id = r.json()["id"]
    await h.settle(shop)
    r = await staff.get(f"{ADMIN}/{case_id}")
    assert r.json()["status"] == "approved" and r.json()["refund_status"] == "failed"
    assert r.json()["actions"] == ["retry_refund", "reject"]
    monkeypatch.setattr(sandbox_gw, "FAIL_MARKER", "[sandbox:fail]")
    r = await staff.post(f"{ADMIN}/{case_id}/retry-refund")
    assert r.status_code == 200 and r.json()["status"] == "refunding"
    await h.settle(shop)
    r = await staff.get(f"{ADMIN}/{case_id}")
    assert r.json()["status"] == "refunded" and r.json()["refund_status"] == "succeeded"
    assert len(await _audits(shop, "orders.after_sale.retry_refund")) == 1


async def test_reject_over_http_and_illegal_moves_are_409(order_shop: OrderShop, client: httpx.AsyncClient,
                                                          login_as: Any) -> None:
    shop = order_shop
    order, (la, _lb) = await _order(shop)
    r = await client.post(shop.url("/after-sales"), headers=shop.buyer.headers, json=_body(order.id, [(la.id, 2)]))
    case_id = r.json()["id"]
    staff = await login_as(shop.tenant, "customer_service")
    r = await staff.post(f"{ADMIN}/{case_id}/reject", json={"reason": ""})
    assert r.status_code == 422
    r = await staff.post(f"{ADMIN}/{case_id}/receive")
    assert r.status_code == 409 and r.json()["code"] == "after_sale_illegal_transition"
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await staff.post(f"{ADMIN}/{case_id}/reject", json={"reason": "请先收货再申请"})
    assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["reject_reason"] == "请先收货再申请"
    for url in (f"{ADMIN}/{case_id}/approve", f"{ADMIN}/{case_id}/retry-refund"):
        r = await staff.post(url)
        assert r.status_code == 409 and r.json()["code"] == "after_sale_illegal_transition", url
    r = await client.post(shop.url(f"/after-sales/{case_id}/withdraw"), headers=shop.buyer.headers)
    assert r.status_code == 409 and r.json()["code"] == "after_sale_illegal_transition"
    r = await client.post(shop.url(f"/after-sales/{case_id}/return"), headers=shop.buyer.headers,
                          json={"carrier": "顺丰", "tracking_no": "SF12345678"})
    assert r.status_code == 409
    [entry] = await _audits(shop, "orders.after_sale.reject")
    assert entry.after and entry.after["reason"] == "请先收货再申请"
    assert h.line_counters((await h.order_lines(shop, order.id))[0]) == (0, 0, 0, 0, 0, 0)


async def test_permissions(order_shop: OrderShop, client: httpx.AsyncClient, login_as: Any) -> None:
    shop = order_shop
    order, (la, _lb) = await _order(shop)
    r = await client.post(shop.url("/after-sales"), headers=shop.buyer.headers, json=_body(order.id, [(la.id, 1)]))
    case_id = r.json()["id"]
    guide = await login_as(shop.tenant, "store_guide")  # orders.read only
    assert (await guide.get(ADMIN)).status_code == 200
    assert (await guide.get(f"{ADMIN}/{case_id}")).status_code == 200
    for url in (f"{ADMIN}/{case_id}/approve", f"{ADMIN}/{case_id}/receive", f"{ADMIN}/{case_id}/retry-refund",
                f"{ORDERS}/{order.id}/refund"):
        r = await guide.post(url, json={})
        assert r.status_code == 403, url
    r = await guide.post(f"{ADMIN}/{case_id}/reject", json={"reason": "不行"})
    assert r.status_code == 403
    assert (await client.get(ADMIN)).status_code == 401
    assert (await client.get(shop.url("/after-sales"))).status_code == 401
    assert (await client.post(shop.url("/after-sales"), json=_body(order.id, [(la.id, 1)]))).status_code == 401
    assert (await h.case(shop, case_id)).status == "requested"


async def test_a_shopper_cannot_see_or_act_on_another_shoppers_case(order_shop: OrderShop, client: httpx.AsyncClient) -> None:
    shop = order_shop
    order, (la, _lb) = await _order(shop)
    r = await client.post(shop.url("/after-sales"), headers=shop.buyer.headers, json=_body(order.id, [(la.id, 1)]))
    case_id = r.json()["id"]
    other = await shop.new_buyer()
    assert (await client.get(shop.url(f"/after-sales/{case_id}"), headers=other.headers)).status_code == 404
    assert (await client.post(shop.url(f"/after-sales/{case_id}/withdraw"), headers=other.headers)).status_code == 404
    r = await client.post(shop.url(f"/after-sales/{case_id}/return"), headers=other.headers,
                          json={"carrier": "顺丰", "tracking_no": "SF12345678"})
    assert r.status_code == 404
    assert (await client.get(shop.url(f"/orders/{order.id}/refundable"), headers=other.headers)).status_code == 404
    r = await client.post(shop.url("/after-sales"), headers=other.headers, json=_body(order.id, [(la.id, 1)]))
    assert r.status_code == 404 and r.json()["code"] == "order_not_found"
    assert (await client.get(shop.url("/after-sales"), headers=other.headers)).json()["total"] == 0
    assert (await h.case(shop, case_id)).status == "requested"


async def test_another_shop_sees_none_of_it(order_shop: OrderShop, runtime: Runtime, client: httpx.AsyncClient,
                                            tenant_factory: Any, login_as: Any) -> None:
    shop = order_shop
    order, (la, _lb) = await _order(shop)
    r = await client.post(shop.url("/after-sales"), headers=shop.buyer.headers, json=_body(order.id, [(la.id, 1)]))
    case_id = r.json()["id"]
    other = await make_order_shop(runtime, client, tenant_factory, name="隔壁商家")
    staff = await login_as(other.tenant, "owner")
    assert (await staff.get(f"{ADMIN}/{case_id}")).status_code == 404
    assert (await staff.get(ADMIN)).json()["total"] == 0
    for url in (f"{ADMIN}/{case_id}/approve", f"{ADMIN}/{case_id}/receive", f"{ORDERS}/{order.id}/refund"):
        assert (await staff.post(url, json={})).status_code == 404, url
    assert (await staff.get(f"{ORDERS}/{order.id}/refundable")).status_code == 404
    # The shopper's token of shop A is not signed in at shop B.
    assert (await client.get(other.url(f"/after-sales/{case_id}"), headers=shop.buyer.headers)).status_code == 401
    assert (await client.get(other.url(f"/after-sales/{case_id}"), headers=other.buyer.headers)).status_code == 404
    assert (await h.case(shop, case_id)).status == "requested"


async def test_concurrent_requests_on_one_line_open_one_case(order_shop: OrderShop, client: httpx.AsyncClient) -> None:
    shop = order_shop
    order, (la, _lb) = await _order(shop)

    async def ask(q: int) -> httpx.Response:
        return await client.post(shop.url("/after-sales"), headers=shop.buyer.headers, json=_body(order.id, [(la.id, q)]))

    results = await asyncio.gather(*(ask(1 + i % 2) for i in range(10)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 9, [r.text for r in results]
    assert {r.json()["code"] for r in results if r.status_code == 409} == {"after_sale_open"}
    [line, _] = await h.order_lines(shop, order.id)
    won = next(r.json() for r in results if r.status_code == 201)
    assert line.refund_qty == won["lines"][0]["quantity"] and line.refund_fen == won["refund_fen"]


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"kind": "exchange"}, 422, None),
    ({"extra": 1}, 422, None),
    ({"lines": []}, 422, None),
    ({"lines": [{"order_line_id": 1, "quantity": 0}]}, 422, None),
    ({"images": [f"/media/{i}.jpg" for i in range(7)]}, 422, None),
    ({"images": ["javascript:alert(1)"]}, 422, "after_sale_images_invalid"),
    ({"reason": "想退就退"}, 422, "after_sale_reason_invalid"),
    ({"description": "x\u202ey"}, 422, None),
    ({"refund_fen": 1}, 422, None),
])
async def test_bad_requests_are_422(order_shop: OrderShop, client: httpx.AsyncClient, change: dict[str, Any], status: int,
                                    code: str | None) -> None:
    shop = order_shop
    order, (la, _lb) = await _order(shop)
    body = {**_body(order.id, [(la.id, 1)]), **change}
    r = await client.post(shop.url("/after-sales"), headers=shop.buyer.headers, json=body)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["code"] == code
    assert h.line_counters((await h.order_lines(shop, order.id))[0]) == (0, 0, 0, 0, 0, 0)


async def test_reasons_lists(order_shop: OrderShop, client: httpx.AsyncClient, login_as: Any) -> None:
    shop = order_shop
    r = await client.get(shop.url("/after-sales/reasons"), headers=shop.buyer.headers)
    assert r.status_code == 200
    kinds = {k["kind"]: [x["value"] for x in k["reasons"]] for k in r.json()["kinds"]}
    assert "未按约定时间发货" in kinds["refund_only"] and "七天无理由退货" in kinds["return_refund"]
    assert "缺货无法发货" not in kinds["refund_only"]
    staff = await login_as(shop.tenant, "store_guide")
    r = await staff.get(f"{ADMIN}/reasons", headers={"accept-language": "en"})
    assert r.status_code == 200
    assert "缺货无法发货" in [x["value"] for x in r.json()["kinds"][0]["reasons"]]
