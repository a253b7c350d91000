"""Shipping paid orders: partial then full, parts per stock location, the same parcel twice,
racing parcels, bulk shipping from CSV, receipt confirmation and the auto-confirm sweep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from siyu.kit import clock
from siyu.kit.errors import Conflict, ValidationFailed
from siyu.kit.runtime import Runtime
from siyu.orders import fulfilment, tasks
from siyu.orders.models import OrderLine
from tests.conftest import StaffClient, unique
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


def tracking() -> str:
    return "SF" + unique("")[:12].upper().replace("_", "0")


async def test_a_partial_shipment_then_the_rest(order_shop: OrderShop, staff: StaffClient) -> None:
    shop = order_shop
    a, b = shop.skus
    start_a, start_b = await lc.level(shop, a), await lc.level(shop, b)
    order = await lc.paid_order(shop, [(a, 3), (b, 2)])
    la, lb = await lc.lines(shop.runtime, order.id)

    first = tracking()
    r = await staff.post(f"{ADMIN}/{order.id}/ship", json={"carrier_code": "SF", "tracking_no": first,
                                                           "items": [{"line_id": la.id, "quantity": 2}]})
    assert r.status_code == 200, r.text
    assert r.json()["created"] is True and r.json()["order_status"] == "partially_shipped"
    assert r.json()["shipment"]["carrier_name"] == "顺丰"
    assert [(ln.shipped_qty, ln.quantity) for ln in await lc.lines(shop.runtime, order.id)] == [(2, 3), (0, 2)]
    assert await lc.level(shop, a) == (start_a[0] - 2, start_a[1] + 1), "two units left the shelf; one is still held"
    partial = await shop.order(order.id)
    assert partial.shipped_at is None and partial.auto_confirm_at is None
    assert [p.status for p in await lc.parts(shop.runtime, order.id)] == ["partially_shipped"]

    # The same parcel reported again is the same parcel: nothing ships twice.
    r = await staff.post(f"{ADMIN}/{order.id}/ship", json={"carrier_code": "sf", "tracking_no": first,
                                                           "items": [{"line_id": la.id, "quantity": 1}]})
    assert r.status_code == 200 and r.json()["created"] is False
    assert await lc.level(shop, a) == (start_a[0] - 2, start_a[1] + 1)

    r = await staff.post(f"{ADMIN}/{order.id}/ship", json={"carrier_code": "ZTO", "tracking_no": tracking()})
    assert r.status_code == 200, r.text
    assert r.json()["order_status"] == "shipped"
    assert {i["line_id"]: i["qty"] for i in r.json()["shipment"]["items"]} == {la.id: 1, lb.id: 2}
    shipped = await shop.order(order.id)
    assert shipped.shipped_at is not None and shipped.auto_confirm_at is not None
    assert abs((shipped.auto_confirm_at - shipped.shipped_at) - timedelta(days=10)) < timedelta(seconds=1)
    assert await lc.level(shop, a) == (start_a[0] - 3, start_a[1])
    assert await lc.level(shop, b) == (start_b[0] - 2, start_b[1])
    assert [p.status for p in await lc.parts(shop.runtime, order.id)] == ["shipped"]
    assert [t[:3] for t in await lc.timeline(shop.runtime, order.id)][-2:] == [
        ("paid", "partially_shipped", "ship"), ("partially_shipped", "shipped", "ship")]
    assert len(await lc.events(shop.runtime, shop.scope.id, "order.shipped", order_id=order.id)) == 2
    assert len(await lc.shipments(shop.runtime, order.id)) == 2

    # Nothing is left: another parcel is refused, and so is more than was ordered.
    r = await staff.post(f"{ADMIN}/{order.id}/ship", json={"carrier_code": "SF", "tracking_no": tracking()})
    assert (r.status_code, r.json()["code"]) == (409, "order_illegal_transition")


async def test_more_than_is_left_is_refused_and_changes_nothing(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await lc.paid_order(shop, [(shop.skus[0], 2)])
    [line] = await lc.lines(shop.runtime, order.id)
    with pytest.raises(Conflict) as exc:
        await lc.ship(shop, order.id, tracking(), items=[(line.id, 3)])
    assert exc.value.code == "ship_exceeds_shippable"
    with pytest.raises(ValidationFailed):
        await lc.ship(shop, order.id, tracking(), items=[(line.id + 100000, 1)])
    with pytest.raises(ValidationFailed):
        await lc.ship(shop, order.id, tracking(), carrier="UPS")
    with pytest.raises(ValidationFailed):
        await lc.ship(shop, order.id, "12 34")
    assert (await lc.lines(shop.runtime, order.id))[0].shipped_qty == 0
    assert await lc.shipments(shop.runtime, order.id) == []
    assert (await shop.order(order.id)).status == "paid"


async def test_bad_parcels_over_the_api(order_shop: OrderShop, staff: StaffClient) -> None:
    order = await lc.paid_order(order_shop)
    for body in ({"carrier_code": "SF", "tracking_no": "12"}, {"carrier_code": "SF", "tracking_no": "ABC 12345"},
                 {"carrier_code": "UPS", "tracking_no": "1234567890"}, {"tracking_no": "1234567890"},
                 {"carrier_code": "SF", "tracking_no": "1234567890", "items": []},
                 {"carrier_code": "SF", "tracking_no": "1234567890", "amount_fen": 1}):
        r = await staff.post(f"{ADMIN}/{order.id}/ship", json=body)
        assert r.status_code == 422, (body, r.text)
    r = await staff.get(f"{ADMIN}/carriers")
    assert r.status_code == 200
    assert [c["code"] for c in r.json()] == ["SF", "ZTO", "YTO", "YD", "STO", "JD", "EMS", "JT", "DBL", "OTHER"]


async def test_parts_from_two_locations_ship_separately(order_shop: OrderShop) -> None:
    shop = order_shop
    north = await shop.add_location("北仓", priority=300)
    sku = await shop.make_sku(price_fen=2000, stock=2)
    await shop.receive(sku, 3, north)  # neither location can serve all four
    order = await lc.paid_order(shop, [(sku, 4)])
    ps = await lc.parts(shop.runtime, order.id)
    assert [(p.location_id, p.kind) for p in ps] == [(shop.location_id, "ship"), (north, "ship")]

    res = await lc.ship(shop, order.id, tracking(), fulfilment_id=ps[1].id)
    assert res.order.status == "partially_shipped" and res.shipment.fulfilment_id == ps[1].id
    assert [i["qty"] for i in res.shipment.items] == [2]
    assert await lc.level(shop, sku, north) == (1, 0), "shipped from where it was held"
    assert await lc.level(shop, sku) == (2, 2)
    res = await lc.ship(shop, order.id, tracking(), fulfilment_id=ps[0].id)
    assert res.order.status == "shipped"
    assert await lc.level(shop, sku) == (0, 0)
    assert [p.status for p in await lc.parts(shop.runtime, order.id)] == ["shipped", "shipped"]


async def test_two_parcels_racing_for_the_last_units(order_shop: OrderShop) -> None:
    shop = order_shop
    sku = shop.skus[1]
    start = await lc.level(shop, sku)
    order = await lc.paid_order(shop, [(sku, 2)])

    async def one() -> str:
        try:
            res = await lc.ship(shop, order.id, tracking())
        except Conflict as exc:
            return exc.code
        return res.order.status

    outcomes = sorted(await asyncio.gather(one(), one()))
    assert outcomes[1] == "shipped" and outcomes[0] in ("order_illegal_transition", "nothing_to_ship", "ship_exceeds_shippable")
    assert (await lc.lines(shop.runtime, order.id))[0].shipped_qty == 2
    assert len(await lc.shipments(shop.runtime, order.id)) == 1
    assert await lc.level(shop, sku) == (start[0] - 2, start[1])
    assert [m[0] for m in await lc.movements(shop, order.id)].count("commit") == 1


async def test_the_same_tracking_number_twice_at_once_is_one_parcel(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await lc.paid_order(shop, [(shop.skus[0], 1)])
    no = tracking()
    a, b = await asyncio.gather(lc.ship(shop, order.id, no), lc.ship(shop, order.id, no))
    assert a.shipment.id == b.shipment.id and {a.created, b.created} == {True, False}
    assert len(await lc.shipments(shop.runtime, order.id)) == 1


async def test_units_refunded_before_shipping_complete_the_shipment(order_shop: OrderShop) -> None:
    """After-sales cancels the units it refunds before they ship, then asks whether the order
    is now fully shipped."""
    shop = order_shop
    a, b = shop.skus
    order = await lc.paid_order(shop, [(a, 1), (b, 2)])
    la, lb = await lc.lines(shop.runtime, order.id)
    await lc.ship(shop, order.id, tracking(), items=[(la.id, 1)])
    async with shop.runtime.db.uow() as s:
        await s.execute(update(OrderLine).where(OrderLine.id == lb.id).values(cancelled_qty=2))
        fresh = await fulfilment.service.get_order(s, shop.scope, order.id)
        assert await fulfilment.refresh_shipping_status(s, fresh) is True
    done = await shop.order(order.id)
    assert done.status == "shipped" and done.auto_confirm_at is not None
    assert [p.status for p in await lc.parts(shop.runtime, order.id)] == ["shipped"]
    async with shop.runtime.db.uow() as s:
        assert await fulfilment.refresh_shipping_status(s, done) is False


async def test_confirming_receipt_completes_the_order(order_shop: OrderShop, client: httpx.AsyncClient) -> None:
    shop = order_shop
    order = await lc.paid_order(shop)
    r = await client.post(shop.url(f"/orders/{order.id}/confirm"), headers=shop.buyer.headers)
    assert (r.status_code, r.json()["code"]) == (409, "order_illegal_transition"), "nothing has shipped yet"
    await lc.ship(shop, order.id, tracking())
    detail = (await client.get(shop.url(f"/orders/{order.id}"), headers=shop.buyer.headers)).json()
    assert detail["actions"] == ["confirm"] and detail["shipments"][0]["carrier_code"] == "SF"
    other = await shop.new_buyer()
    assert (await client.post(shop.url(f"/orders/{order.id}/confirm"), headers=other.headers)).status_code == 404

    r = await client.post(shop.url(f"/orders/{order.id}/confirm"), headers=shop.buyer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed" and r.json()["after_sale_until"] is not None
    done = await shop.order(order.id)
    assert done.delivered_at is not None and done.completed_at is not None
    assert [t for t in await lc.timeline(shop.runtime, order.id)][-2:] == [
        ("shipped", "delivered", "deliver"), ("delivered", "completed", "confirm")]
    assert [s.status for s in await lc.shipments(shop.runtime, order.id)] == ["delivered"]
    assert len(await lc.events(shop.runtime, shop.scope.id, "order.completed", order_id=order.id)) == 1
    r = await client.post(shop.url(f"/orders/{order.id}/confirm"), headers=shop.buyer.headers)
    assert (r.status_code, r.json()["code"]) == (409, "order_illegal_transition")


async def test_staff_mark_delivered_then_auto_confirm_completes(order_shop: OrderShop, staff: StaffClient) -> None:
    shop = order_shop
    order = await lc.paid_order(shop)
    r = await staff.post(f"{ADMIN}/{order.id}/delivered")
    assert (r.status_code, r.json()["code"]) == (409, "order_illegal_transition")
    await lc.ship(shop, order.id, tracking())
    r = await staff.post(f"{ADMIN}/{order.id}/delivered")
    assert r.status_code == 200 and r.json()["status"] == "delivered"

    shipped = await shop.order(order.id)
    assert shipped.auto_confirm_at is not None
    clock.travel(shipped.auto_confirm_at - clock.now() + timedelta(seconds=1))
    assert await tasks.auto_confirm(shop.runtime) >= 1
    done = await shop.order(order.id)
    assert done.status == "completed"
    assert (await lc.timeline(shop.runtime, order.id))[-1] == ("delivered", "completed", "auto_confirm")


async def test_two_auto_confirm_sweepers_complete_an_order_once(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await lc.paid_order(shop)
    await lc.ship(shop, order.id, tracking())
    early = await shop.order(order.id)
    assert early.auto_confirm_at is not None
    clock.travel(early.auto_confirm_at - clock.now() - timedelta(minutes=1))

    async def sweep() -> int:
        async with shop.runtime.db.uow() as s:
            return await fulfilment.auto_confirm_due(s, limit=10_000)

    await sweep()
    assert (await shop.order(order.id)).status == "shipped", "not yet due"
    clock.travel(timedelta(minutes=2))
    await asyncio.gather(sweep(), sweep())
    done = await shop.order(order.id)
    assert done.status == "completed"
    assert [t for t in await lc.timeline(shop.runtime, order.id)][-2:] == [
        ("shipped", "delivered", "deliver"), ("delivered", "completed", "auto_confirm")]
    assert len(await lc.events(shop.runtime, shop.scope.id, "order.completed", order_id=order.id)) == 1


def _csv(rows: list[list[str]], encoding: str = "utf-8-sig") -> bytes:
    text = "\r\n".join(",".join(r) for r in [["订单号", "物流公司", "运单号"], *rows]) + "\r\n"
    return text.encode(encoding)


async def test_bulk_shipping_from_csv(order_shop: OrderShop, staff: StaffClient) -> None:
    shop = order_shop
    one = await lc.paid_order(shop, [(shop.skus[0], 2)])
    two = await lc.paid_order(shop, [(shop.skus[1], 1)])
    unpaid = await shop.place()
    t1, t2 = tracking(), tracking()
    rows = [
        [one.order_no, "顺丰", t1],
        [two.order_no, "ZTO", t2],
        [one.order_no, "SF", t1],                 # the same row again: already shipped
        ["99999999999999", "SF", tracking()],     # no such order
        [unpaid.order_no, "SF", tracking()],      # not paid
        [two.order_no, "天天快递", tracking()],     # unknown carrier
        [two.order_no, "SF", "bad no"],            # malformed tracking number
        ["2.61123E+13", "SF", tracking()],        # a number Excel turned into a float
    ]
    r = await staff.post(f"{ADMIN}/bulk-ship", files={"file": ("ship.csv", _csv(rows), "text/csv")})
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["rows"], report["shipped"], report["already_shipped"], report["errors"]) == (8, 2, 1, 5)
    results = [(x["row"], x["result"], x["code"]) for x in report["results"]]
    assert results == [
        (2, "shipped", None), (3, "shipped", None), (4, "already_shipped", None), (5, "error", "order_not_found"),
        (6, "error", "order_illegal_transition"), (7, "error", "carrier_unknown"), (8, "error", "tracking_no_invalid"),
        (9, "error", "order_no_invalid"),
    ]
    assert all(x["message"] for x in report["results"] if x["result"] == "error")
    assert (await shop.order(one.id)).status == "shipped" and (await shop.order(two.id)).status == "shipped"
    assert (await shop.order(unpaid.id)).status == "pending_payment"
    [parcel] = await lc.shipments(shop.runtime, one.id)
    assert (parcel.carrier_code, parcel.tracking_no) == ("SF", t1)

    # Uploading the same file again ships nothing more; a GBK file from Excel is read as well.
    again = (await staff.post(f"{ADMIN}/bulk-ship", files={"file": ("ship.csv", _csv(rows[:2], "gb18030"), "text/csv")})).json()
    assert (again["shipped"], again["already_shipped"], again["errors"]) == (0, 2, 0)


async def test_bulk_shipping_refuses_files_it_cannot_read(order_shop: OrderShop, staff: StaffClient) -> None:
    for data in (b"", b"a,b,c\r\n1,2,3\r\n", "订单号,运单号\r\n1,2\r\n".encode()):
        r = await staff.post(f"{ADMIN}/bulk-ship", files={"file": ("ship.csv", data, "text/csv")})
        assert r.status_code == 422, (data, r.text)
    r = await staff.post(f"{ADMIN}/bulk-ship", files={"file": ("ship.csv", b"x" * (3 * 1024 * 1024), "text/csv")})
    assert r.status_code == 413


async def test_units_refunded_from_a_split_line_ship_from_where_stock_is_still_held(order_shop: OrderShop) -> None:
    """After-sales gives back refunded units from the last-allocated location first; the
    parcels then come from where the rest is still held."""
    from siyu.inventory import service as inventory_service

    shop = order_shop
    north = await shop.add_location("北仓", priority=300)
    sku = await shop.make_sku(price_fen=2000, stock=2)
    await shop.receive(sku, 3, north)
    order = await lc.paid_order(shop, [(sku, 4)])
    [line] = await lc.lines(shop.runtime, order.id)
    main_part, north_part = await lc.parts(shop.runtime, order.id)
    async with shop.runtime.db.uow() as s:  # what after-sales does for two units refunded before shipping
        await s.execute(update(OrderLine).where(OrderLine.id == line.id).values(cancelled_qty=2))
        await inventory_service.release(s, shop.scope, f"order:{order.id}", [(sku, 2)], ref="after_sale:test")
    assert await lc.level(shop, sku, north) == (3, 0)

    with pytest.raises(Conflict) as exc:
        await lc.ship(shop, order.id, tracking(), fulfilment_id=north_part.id)
    assert exc.value.code == "nothing_to_ship"
    res = await lc.ship(shop, order.id, tracking())
    assert res.order.status == "shipped" and res.shipment.fulfilment_id == main_part.id
    assert [i["qty"] for i in res.shipment.items] == [2]
    assert await lc.level(shop, sku) == (0, 0)
    assert [p.status for p in await lc.parts(shop.runtime, order.id)] == ["shipped", "cancelled"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(qty=st.lists(st.integers(1, 4), min_size=1, max_size=2),
       parcels=st.lists(st.tuples(st.integers(0, 1), st.integers(1, 5)), max_size=5))
async def test_any_sequence_of_parcels_keeps_units_and_stock_exact(order_shop: OrderShop, qty: list[int],
                                                                   parcels: list[tuple[int, int]]) -> None:
    """Whatever parcels staff try, a line never ships more than was ordered, every unit that
    shipped left the shelf exactly once, and the order's status says how much has shipped."""
    shop = order_shop
    skus = shop.skus[:len(qty)]
    start = {s: await lc.level(shop, s) for s in skus}
    order = await lc.paid_order(shop, list(zip(skus, qty, strict=True)))
    ids = [ln.id for ln in await lc.lines(shop.runtime, order.id)]
    shipped = [0] * len(qty)
    accepted = 0
    for idx, k in parcels:
        i = idx % len(qty)
        try:
            await lc.ship(shop, order.id, tracking(), items=[(ids[i], k)])
        except Conflict:
            assert shipped[i] + k > qty[i] or shipped == qty
            continue
        shipped[i] += k
        accepted += 1
        assert shipped[i] <= qty[i]
    got = await lc.lines(shop.runtime, order.id)
    assert [ln.shipped_qty for ln in got] == shipped
    for s, n, q in zip(skus, shipped, qty, strict=True):
        on_hand, reserved = await lc.level(shop, s)
        assert (on_hand, reserved) == (start[s][0] - n, start[s][1] + q - n)
    status = (await shop.order(order.id)).status
    assert status == ("shipped" if shipped == qty else "partially_shipped" if any(shipped) else "paid")
    assert len(await lc.shipments(shop.runtime, order.id)) == accepted


async def test_auto_confirm_waits_for_an_open_after_sales_case(order_shop: OrderShop) -> None:
    from tests.orders import _aftersales as asx

    shop = order_shop
    order = await lc.paid_order(shop, [(shop.skus[0], 2)])
    await lc.ship(shop, order.id, tracking())
    line = (await lc.lines(shop.runtime, order.id))[0]
    case = await asx.open_case(shop, order.id, [(line.id, 1)], kind="refund_only")
    shipped = await shop.order(order.id)
    assert shipped.auto_confirm_at is not None
    clock.travel(shipped.auto_confirm_at - clock.now() + timedelta(minutes=1))
    async with shop.runtime.db.uow() as s:
        await fulfilment.auto_confirm_due(s, limit=10_000)
    assert (await shop.order(order.id)).status == "shipped", "the open case holds the receipt"
    await asx.act(shop, "reject", case.id, reason="已与顾客沟通，商品完好")
    async with shop.runtime.db.uow() as s:
        await fulfilment.auto_confirm_due(s, limit=10_000)
    assert (await shop.order(order.id)).status == "completed"
