"""Staff reads of orders: filters, paging, the detail with its timeline and payments, the
seller note, the CSV export, and who may do what."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from siyu.kit import clock
from siyu.kit.audit import AuditEntry
from siyu.kit.runtime import Runtime
from siyu.orders.models import Order
from tests.conftest import StaffClient
from tests.orders import _lifecycle as lc
from tests.orders._lifecycle import ADMIN
from tests.orders.conftest import OrderShop


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _notify(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


@pytest.fixture
async def staff(order_shop: OrderShop, login_as: Any) -> StaffClient:
    return await login_as(order_shop.tenant)


async def _set_created(shop: OrderShop, order_id: int, at: datetime) -> None:
    async with shop.runtime.db.uow() as s:
        await s.execute(update(Order).where(Order.id == order_id).values(created_at=at))


async def _phone(shop: OrderShop, customer_id: int) -> str:
    from siyu.customers.models import Customer

    async with shop.runtime.db.uow(readonly=True) as s:
        return str((await s.execute(select(Customer.phone).where(Customer.id == customer_id))).scalar_one())


async def test_filters_and_paging(order_shop: OrderShop, staff: StaffClient) -> None:
    shop = order_shop
    a, b = shop.skus
    other = await shop.new_buyer()
    o1 = await shop.place([(a, 1)])
    o2 = await lc.paid_order(shop, [(b, 2)])
    o3 = await shop.place([(a, 1), (b, 1)], buyer=other)
    tz = ZoneInfo("Asia/Shanghai")
    # o1 late in the evening of 1 March (Shanghai time), which is still 1 March there but 15:30 UTC.
    await _set_created(shop, o1.id, datetime(2025, 3, 1, 23, 30, tzinfo=tz))
    await _set_created(shop, o2.id, datetime(2025, 3, 2, 0, 10, tzinfo=tz))
    await _set_created(shop, o3.id, datetime(2025, 3, 3, 12, 0, tzinfo=tz))

    async def ids(**params: Any) -> list[int]:
        r = await staff.get(ADMIN, params=params)
        assert r.status_code == 200, r.text
        return [row["id"] for row in r.json()["items"]]

    assert await ids() == [o3.id, o2.id, o1.id]
    assert await ids(status="paid") == [o2.id]
    assert await ids(status="pending_payment") == [o3.id, o1.id]
    assert await ids(created_from="2025-03-01", created_to="2025-03-01") == [o1.id]
    assert await ids(created_from="2025-03-02") == [o3.id, o2.id]
    assert await ids(created_to="2025-03-02") == [o2.id, o1.id]
    assert await ids(customer_id=other.customer_id) == [o3.id]
    assert await ids(customer=await _phone(shop, other.customer_id)) == [o3.id]
    assert await ids(customer="没有这个人") == []
    assert await ids(order_no=o2.order_no) == [o2.id]
    assert await ids(order_no=o2.order_no[-6:]) == [o2.id]
    assert await ids(product="白茶") == [o3.id, o2.id]
    assert await ids(product="%") == []

    r = await staff.get(ADMIN, params={"page": 2, "page_size": 2})
    body = r.json()
    assert (body["total"], body["page"], body["page_size"], [x["id"] for x in body["items"]]) == (3, 2, 2, [o1.id])
    row = (await staff.get(ADMIN, params={"order_no": o3.order_no})).json()["items"][0]
    assert row["status_label"] == "待付款" and row["receiver_name"] == "张三"
    assert row["customer_phone"] and "****" in row["customer_phone"]
    assert "明前龙井×1" in row["items_summary"] and "白茶饼×1" in row["items_summary"]

    for params in ({"status": "lost"}, {"created_from": "2025-13-01"}, {"customer_id": 0}, {"page_size": 500},
                   {"order_no": "x\x00y"}):
        assert (await staff.get(ADMIN, params=params)).status_code == 422, params


async def test_the_detail_shows_everything_staff_need(order_shop: OrderShop, staff: StaffClient) -> None:
    shop = order_shop
    order = await lc.paid_order(shop, [(shop.skus[0], 2)])
    await lc.ship(shop, order.id, "SF0011223344", items=[((await lc.lines(shop.runtime, order.id))[0].id, 1)])
    r = await staff.get(f"{ADMIN}/{order.id}")
    assert r.status_code == 200
    d = r.json()
    assert d["status"] == "partially_shipped" and d["customer_id"] == shop.buyer.customer_id
    assert d["customer_phone"] and "****" in d["customer_phone"]
    assert d["address"]["receiver_name"] == "张三"
    assert [(ln["quantity"], ln["shipped_qty"]) for ln in d["lines"]] == [(2, 1)]
    [part] = d["fulfilments"]
    assert part["status"] == "partially_shipped" and part["items"][0]["shipped_qty"] == 1
    [parcel] = d["shipments"]
    assert parcel["tracking_no"] == "SF0011223344" and parcel["status"] == "in_transit"
    [pay] = d["payments"]
    assert pay["status"] == "succeeded" and pay["amount_fen"] == order.payable_fen
    assert [t["action"] for t in d["transitions"]] == ["place", "pay", "ship"]
    times = [t["created_at"] for t in d["transitions"]]
    assert times == sorted(times), "oldest first, newest last"
    assert d["actions"] == ["note", "ship"]
    assert (await staff.get(f"{ADMIN}/99999999")).json()["code"] == "order_not_found"


async def test_the_seller_note(order_shop: OrderShop, staff: StaffClient, client: httpx.AsyncClient) -> None:
    shop = order_shop
    order = await shop.place()
    r = await staff.post(f"{ADMIN}/{order.id}/note", json={"note": "顺丰加急"})
    assert r.status_code == 200 and r.json()["seller_note"] == "顺丰加急"
    mine = (await client.get(shop.url(f"/orders/{order.id}"), headers=shop.buyer.headers)).json()
    assert "seller_note" not in mine, "shoppers never see the seller's note"
    assert (await staff.post(f"{ADMIN}/{order.id}/note", json={"note": "x" * 201})).status_code == 422
    assert (await staff.post(f"{ADMIN}/{order.id}/note", json={"note": "a\x07b"})).status_code == 422
    r = await staff.post(f"{ADMIN}/{order.id}/note", json={"note": ""})
    assert r.json()["seller_note"] is None
    async with shop.runtime.db.uow(readonly=True) as s:
        entries = (await s.execute(select(AuditEntry).where(AuditEntry.tenant_id == shop.scope.id,
                                                            AuditEntry.action == "orders.note")
                                   .order_by(AuditEntry.id))).scalars().all()
    assert [(e.before, e.after) for e in entries] == [
        ({"seller_note": None}, {"seller_note": "顺丰加急"}), ({"seller_note": "顺丰加急"}, {"seller_note": None})]


async def test_the_csv_export(order_shop: OrderShop, staff: StaffClient) -> None:
    shop = order_shop
    await shop.flat_freight(800)
    paid = await lc.paid_order(shop, [(shop.skus[0], 2), (shop.skus[1], 1)])
    await lc.ship(shop, paid.id, "ZT1234567890", carrier="ZTO")
    tricky = await shop.place([(shop.skus[1], 1)], buyer_note="=HYPERLINK(\"http://evil\")")
    async with shop.runtime.db.uow() as s:
        await s.execute(update(Order).where(Order.id == tricky.id).values(seller_note="+1 加急", address={
            **tricky.address, "receiver_name": "@张三"}))

    r = await staff.get(f"{ADMIN}/export.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv") and "orders.csv" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["订单号", "下单时间", "状态"] and len(rows) == 3
    by_no = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    p = by_no[paid.order_no]
    assert p["状态"] == "已发货" and p["件数"] == "3"
    assert p["商品"] == "明前龙井×2；白茶饼×1"
    assert (p["商品金额"], p["优惠"], p["运费"], p["应付"], p["实付"], p["已退款"]) == (
        "295.90", "0.00", "8.00", "303.90", "303.90", "0.00")
    assert p["物流单号"] == "中通 ZT1234567890"
    assert p["收货人"] == "张三" and p["收货地址"].endswith("文三路 1 号")
    assert "****" in p["客户手机"]
    created = datetime.strptime(p["下单时间"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert abs(created - paid.created_at) < timedelta(seconds=1), "times are in the shop's time zone"
    t = by_no[tricky.order_no]
    assert t["状态"] == "待付款"
    assert t["买家备注"] == "'=HYPERLINK(\"http://evil\")" and t["卖家备注"] == "'+1 加急" and t["收货人"] == "'@张三"

    only = await staff.get(f"{ADMIN}/export.csv", params={"status": "shipped"})
    assert [row[0] for row in list(csv.reader(io.StringIO(only.content.decode("utf-8-sig"))))[1:]] == [paid.order_no]


async def test_permissions(order_shop: OrderShop, login_as: Any, client: httpx.AsyncClient) -> None:
    shop = order_shop
    order = await lc.paid_order(shop)
    guide = await login_as(shop.tenant, "store_guide")
    assert (await guide.get(ADMIN)).status_code == 200
    assert (await guide.get(f"{ADMIN}/{order.id}")).status_code == 200
    assert (await guide.get(f"{ADMIN}/export.csv")).status_code == 200
    for path, body in ((f"{ADMIN}/{order.id}/ship", {"carrier_code": "SF", "tracking_no": "SF12345678"}),
                       (f"{ADMIN}/{order.id}/note", {"note": "x"}), (f"{ADMIN}/{order.id}/cancel", {}),
                       (f"{ADMIN}/{order.id}/delivered", None)):
        r = await guide.post(path, json=body)
        assert (r.status_code, r.json()["code"]) == (403, "permission_denied"), path
    assert (await guide.get(f"{ADMIN}/settings")).status_code == 403
    assert (await client.get(ADMIN)).status_code == 401
    service_desk = await login_as(shop.tenant, "customer_service")
    r = await service_desk.post(f"{ADMIN}/{order.id}/ship", json={"carrier_code": "SF", "tracking_no": "SF12345678"})
    assert r.status_code == 200
