"""After-sales through the service: refund-only before and after shipping, return and refund,
rejection and withdrawal, refunds recorded exactly once, refund failure and retry, and
concurrent cases that can never claim more than was bought.

Refunds travel the real way (outbox → payments → sandbox gateway → signed notification →
``refund.succeeded`` → the after-sales handler), driven by draining the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from siyu.kit import clock, outbox
from siyu.kit.errors import Conflict, DomainError, NotFound, ValidationFailed
from siyu.kit.runtime import Runtime
from siyu.orders import aftersales, fulfilment
from siyu.orders import service as order_service
from siyu.payments.gateways import sandbox as sandbox_gw
from siyu.payments.models import Refund
from tests.orders import _aftersales as h
from tests.orders import _lifecycle as lc
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


async def _refunds(shop: OrderShop, case_id: int) -> list[Refund]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(Refund).where(Refund.source_type == "after_sale",
                                                          Refund.source_id == str(case_id)).order_by(Refund.id))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def _two_line_order(shop: OrderShop) -> tuple[Any, list[Any]]:
    order = await lc.paid_order(shop, [(shop.skus[0], 2), (shop.skus[1], 1)])
    return order, await h.order_lines(shop, order.id)


# -- refund only, before shipping ------------------------------------------------------------------------


async def test_refund_only_before_shipping_releases_the_stock_and_closes_the_order(order_shop: OrderShop) -> None:
    shop = order_shop
    a, b = shop.skus
    order, (la, lb) = await _two_line_order(shop)
    assert await lc.level(shop, a) == (100, 2) and await lc.level(shop, b) == (100, 1)

    case = await h.open_case(shop, order.id, [(la.id, 2), (lb.id, 1)], reason="拍错了/多拍了", description="买重了",
                             images=["/media/as/1.jpg"])
    assert case.status == "requested" and case.refund_fen == order.paid_fen and case.opened_by == "customer"
    assert len(case.case_no) == 14 and case.case_no.isdigit()
    assert [h.line_counters(ln) for ln in await h.order_lines(shop, order.id)] == [
        (2, 2, la.paid_fen, 0, 0, 0), (1, 1, lb.paid_fen, 0, 0, 0)]
    # Cancelled units cannot ship while the case is open.
    with pytest.raises(Conflict) as info:
        await lc.ship(shop, order.id, "SF0000001")
    assert info.value.code == "nothing_to_ship"

    case = await h.act(shop, "approve", case.id)
    assert case.status == "refunding" and case.refund_id is not None
    await h.settle(shop)

    done = await h.case(shop, case.id)
    assert done.status == "refunded" and done.resolved_at is not None
    [refund] = await _refunds(shop, case.id)
    assert refund.status == "succeeded" and refund.out_refund_no == f"AS{case.case_no}" and refund.amount_fen == order.paid_fen
    closed = await shop.order(order.id)
    assert closed.status == "closed" and closed.closed_at is not None and closed.refunded_fen == closed.paid_fen
    assert [h.line_counters(ln) for ln in await h.order_lines(shop, order.id)] == [
        (2, 2, la.paid_fen, 2, la.paid_fen, 0), (1, 1, lb.paid_fen, 1, lb.paid_fen, 0)]
    assert await lc.level(shop, a) == (100, 0) and await lc.level(shop, b) == (100, 0), "the stock is back on sale"
    assert (await lc.payment(shop.runtime, closed.payment_id or 0)).refunded_fen == closed.paid_fen
    assert await h.case_timeline(shop, case.id) == [
        ("new", "requested", "open"), ("requested", "refunding", "approve"), ("refunding", "refunded", "refunded")]
    assert ("paid", "closed", "refund") in await lc.timeline(shop.runtime, order.id)
    [ev] = await lc.events(shop.runtime, shop.scope.id, "after_sale.refunded", case_id=case.id)
    assert ev["order_id"] == order.id and ev["refund_fen"] == order.paid_fen and ev["customer_id"] == shop.buyer.customer_id
    assert sorted((x["order_line_id"], x["quantity"], x["refund_fen"]) for x in ev["lines"]) == [
        (la.id, 2, la.paid_fen), (lb.id, 1, lb.paid_fen)]


async def test_a_staff_refund_of_an_unshipped_order_is_approved_at_once(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, lb) = await _two_line_order(shop)
    case = await h.open_case(shop, order.id, [(la.id, 2), (lb.id, 1)], staff=True, reason="缺货无法发货")
    assert case.status == "refunding" and case.opened_by == "staff" and case.customer_id == shop.buyer.customer_id
    await h.settle(shop)
    assert (await h.case(shop, case.id)).status == "refunded"
    assert (await shop.order(order.id)).status == "closed"
    # Shoppers cannot give the staff-only reasons.
    other = await lc.paid_order(shop)
    [line] = await h.order_lines(shop, other.id)
    with pytest.raises(ValidationFailed) as info:
        await h.open_case(shop, other.id, [(line.id, 1)], reason="缺货无法发货")
    assert info.value.code == "after_sale_reason_invalid" and "不想要了" in info.value.extra["reasons"]


async def test_a_partial_refund_keeps_the_order_open_and_the_rest_still_ships(order_shop: OrderShop) -> None:
    shop = order_shop
    a = shop.skus[0]
    order, (la, lb) = await _two_line_order(shop)
    case = await h.open_case(shop, order.id, [(la.id, 1)])
    await h.act(shop, "approve", case.id)
    await h.settle(shop)
    done = await h.case(shop, case.id)
    assert done.status == "refunded" and done.refund_fen == la.paid_fen // 2
    mid = await shop.order(order.id)
    assert mid.status == "paid" and mid.refunded_fen == la.paid_fen // 2
    assert await lc.level(shop, a) == (100, 1), "one unit released, one still promised"
    result = await lc.ship(shop, order.id, "SF0000002")
    assert sorted((i["line_id"], i["qty"]) for i in result.shipment.items) == [(la.id, 1), (lb.id, 1)]
    assert (await shop.order(order.id)).status == "shipped"
    assert await lc.level(shop, a) == (99, 0)


async def test_cancelling_the_unshipped_rest_makes_a_partly_shipped_order_shipped(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, lb) = await _two_line_order(shop)
    await lc.ship(shop, order.id, "SF0000003", items=[(la.id, 2)])
    assert (await shop.order(order.id)).status == "partially_shipped"
    case = await h.open_case(shop, order.id, [(lb.id, 1)], reason="未按约定时间发货")
    await h.act(shop, "approve", case.id)
    await h.settle(shop)
    after = await shop.order(order.id)
    assert after.status == "shipped" and after.refunded_fen == lb.paid_fen
    assert await lc.level(shop, shop.skus[1]) == (100, 0)


# -- after shipping ----------------------------------------------------------------------------------------


async def test_return_and_refund_restocks_only_when_staff_receive_the_goods(order_shop: OrderShop) -> None:
    shop = order_shop
    a = shop.skus[0]
    order, (la, _lb) = await _two_line_order(shop)
    with pytest.raises(Conflict) as info:
        await h.open_case(shop, order.id, [(la.id, 1)], kind="return_refund")
    assert info.value.code == "after_sale_quantity_exceeded", "nothing shipped yet: nothing to send back"
    await lc.ship(shop, order.id, "SF0000004")
    assert await lc.level(shop, a) == (98, 0)
    async with shop.runtime.db.uow() as s:
        from siyu.tenants import service as tenants_service

        t = await tenants_service.get_tenant(s, shop.scope.id)
        t.settings = {**(t.settings or {}), "orders": {**((t.settings or {}).get("orders") or {}),
                                                       "return_address": "杭州市西湖区文三路 1 号 售后部 0571-1234567"}}

    case = await h.open_case(shop, order.id, [(la.id, 1)], kind="return_refund", reason="质量问题")
    case = await h.act(shop, "approve", case.id)
    assert case.status == "approved"
    async with shop.runtime.db.uow(readonly=True) as s:
        detail = await aftersales.case_detail(s, shop.scope, case.id, customer_id=shop.buyer.customer_id)
    assert detail.return_address == "杭州市西湖区文三路 1 号 售后部 0571-1234567"
    assert detail.shopper_actions == ["submit_return", "withdraw"] and detail.staff_actions == ["receive", "reject"]
    case = await h.act(shop, "submit_return", case.id, carrier="顺丰", tracking_no="SF1234567890")
    assert case.status == "returning" and case.return_tracking_no == "SF1234567890"
    assert await lc.level(shop, a) == (98, 0), "nothing comes back before staff receive it"

    case = await h.act(shop, "receive_return", case.id)
    assert case.status == "refunding"
    assert await lc.level(shop, a) == (99, 0), "exactly the returned unit is back on hand"
    await h.settle(shop)
    assert (await h.case(shop, case.id)).status == "refunded"
    after = await shop.order(order.id)
    assert after.status == "shipped" and after.refunded_fen == la.paid_fen // 2
    assert await lc.level(shop, a) == (99, 0)
    # Receiving again is an illegal transition and restocks nothing.
    with pytest.raises(Conflict) as info:
        await h.act(shop, "receive_return", case.id)
    assert info.value.code == "after_sale_illegal_transition"
    assert await lc.level(shop, a) == (99, 0)
    assert await h.case_timeline(shop, case.id) == [
        ("new", "requested", "open"), ("requested", "approved", "approve"), ("approved", "returning", "submit_return"),
        ("returning", "refunding", "receive_return"), ("refunding", "refunded", "refunded")]


async def test_refund_only_after_shipping_takes_shipped_units_without_restocking(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, lb) = await _two_line_order(shop)
    await lc.ship(shop, order.id, "SF0000005")
    case = await h.open_case(shop, order.id, [(la.id, 1)], reason="商品破损")
    [cl] = await h.case_lines(shop, case.id)
    assert cl.cancelled_qty == 0 and cl.quantity == 1
    await h.act(shop, "approve", case.id)
    await h.settle(shop)
    assert (await h.case(shop, case.id)).status == "refunded"
    assert await lc.level(shop, shop.skus[0]) == (98, 0), "damaged goods not sent back: no restock"
    # Everything else refunded too: the shipped order closes.
    rest = await h.open_case(shop, order.id, [(la.id, 1), (lb.id, 1)], reason="质量问题")
    await h.act(shop, "approve", rest.id)
    await h.settle(shop)
    final = await shop.order(order.id)
    assert final.status == "closed" and final.refunded_fen == final.paid_fen


async def test_a_completed_order_takes_cases_only_within_the_after_sales_window(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await lc.paid_order(shop)
    [line] = await h.order_lines(shop, order.id)
    await lc.ship(shop, order.id, "SF0000006")
    async with shop.runtime.db.uow() as s:
        await fulfilment.confirm_receipt(s, shop.scope, order.id, shop.buyer.customer_id)
        days = (await order_service.order_settings(s, shop.scope)).after_sale_days
    clock.travel(timedelta(days=days) - timedelta(minutes=5))
    async with shop.runtime.db.uow(readonly=True) as s:
        info = await aftersales.refundable_lines(s, shop.scope, await shop.order(order.id))
    assert info.allowed and info.lines[0].return_refund_qty == 1
    clock.travel(timedelta(minutes=10))
    async with shop.runtime.db.uow(readonly=True) as s:
        info = await aftersales.refundable_lines(s, shop.scope, await shop.order(order.id))
    assert not info.allowed and info.reason_zh and info.lines[0].return_refund_qty == 0
    with pytest.raises(Conflict) as exc:
        await h.open_case(shop, order.id, [(line.id, 1)], kind="return_refund")
    assert exc.value.code == "after_sale_not_allowed"


async def test_an_unpaid_order_takes_no_case(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await shop.place()
    [line] = await h.order_lines(shop, order.id)
    with pytest.raises(Conflict) as info:
        await h.open_case(shop, order.id, [(line.id, 1)])
    assert info.value.code == "after_sale_not_allowed"


# -- giving units back ---------------------------------------------------------------------------------------


async def test_reject_and_withdraw_give_the_units_back(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, lb) = await _two_line_order(shop)
    case = await h.open_case(shop, order.id, [(la.id, 2)])
    with pytest.raises(ValidationFailed):
        await h.act(shop, "reject", case.id, reason="  ")
    case = await h.act(shop, "reject", case.id, reason="商品已打包，请收货后再申请")
    assert case.status == "rejected" and case.reject_reason == "商品已打包，请收货后再申请" and case.resolved_at
    assert [h.line_counters(ln) for ln in await h.order_lines(shop, order.id)] == [(0, 0, 0, 0, 0, 0)] * 2

    again = await h.open_case(shop, order.id, [(la.id, 1), (lb.id, 1)])
    assert again.refund_fen == la.paid_fen // 2 + lb.paid_fen
    again = await h.act(shop, "withdraw", again.id)
    assert again.status == "withdrawn"
    assert [h.line_counters(ln) for ln in await h.order_lines(shop, order.id)] == [(0, 0, 0, 0, 0, 0)] * 2
    # The units are shippable again, and no money moved.
    result = await lc.ship(shop, order.id, "SF0000007")
    assert sorted((i["line_id"], i["qty"]) for i in result.shipment.items) == [(la.id, 2), (lb.id, 1)]
    assert await _refunds(shop, case.id) == [] and await _refunds(shop, again.id) == []
    assert (await shop.order(order.id)).refunded_fen == 0


async def test_a_returning_case_can_still_be_withdrawn_but_not_after_the_refund_started(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, _lb) = await _two_line_order(shop)
    await lc.ship(shop, order.id, "SF0000008")
    case = await h.open_case(shop, order.id, [(la.id, 1)], kind="return_refund", reason="七天无理由退货")
    await h.act(shop, "approve", case.id)
    await h.act(shop, "submit_return", case.id, carrier="中通", tracking_no="ZT12345678")
    case = await h.act(shop, "withdraw", case.id)
    assert case.status == "withdrawn"
    assert h.line_counters((await h.order_lines(shop, order.id))[0]) == (0, 0, 0, 0, 0, 2)

    refund_only = await h.open_case(shop, order.id, [(la.id, 1)], reason="商品破损")
    await h.act(shop, "approve", refund_only.id)
    with pytest.raises(Conflict) as info:
        await h.act(shop, "withdraw", refund_only.id)
    assert info.value.code == "after_sale_illegal_transition"


# -- exactly once ------------------------------------------------------------------------------------------


async def test_a_refund_is_recorded_once_even_when_refund_succeeded_arrives_twice(order_shop: OrderShop,
                                                                                client: httpx.AsyncClient) -> None:
    shop = order_shop
    order, (la, _lb) = await _two_line_order(shop)
    case = await h.open_case(shop, order.id, [(la.id, 1)])
    await h.act(shop, "approve", case.id)
    await h.settle(shop)
    done = await h.case(shop, case.id)
    assert done.status == "refunded"
    expected = la.paid_fen // 2
    # The gateway notifies again (the same signed body): a duplicate, nothing recorded twice.
    from tests.payments._helpers import post_notification, sandbox_deliveries, sandbox_headers

    [body] = await sandbox_deliveries(shop.runtime, f"AS{case.case_no}")
    for _ in range(2):
        r = await post_notification(client, "sandbox", body, sandbox_headers(shop.runtime, body))
        assert r.status_code == 204
    await h.settle(shop)
    # The event itself is delivered twice (at-least-once outbox): the handler is idempotent.
    [ev] = await lc.events(shop.runtime, shop.scope.id, "refund.succeeded", refund_id=done.refund_id)
    for _ in range(2):
        async with shop.runtime.db.uow() as s:
            await aftersales.on_refund_succeeded(s, outbox.Event(0, shop.scope.id, "refund.succeeded", ev, 2))
    after = await shop.order(order.id)
    assert after.refunded_fen == expected
    assert h.line_counters((await h.order_lines(shop, order.id))[0])[3:5] == (1, expected)
    assert len(await lc.events(shop.runtime, shop.scope.id, "after_sale.refunded", case_id=case.id)) == 1
    assert [t for t in await h.case_timeline(shop, case.id) if t[2] == "refunded"] == [("refunding", "refunded", "refunded")]
    assert await lc.level(shop, shop.skus[0]) == (100, 1), "released once"


async def test_a_failed_refund_can_be_retried(order_shop: OrderShop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = order_shop
    order, (_la, lb) = await _two_line_order(shop)
    case = await h.open_case(shop, order.id, [(lb.id, 1)], reason="不想要了")
    monkeypatch.setattr(sandbox_gw, "FAIL_MARKER", "售后退款")  # the "bank" refuses our refunds
    await h.act(shop, "approve", case.id)
    await h.settle(shop)
    failed = await h.case(shop, case.id)
    assert failed.status == "approved" and failed.refund_id is not None
    [first] = await _refunds(shop, case.id)
    assert first.status == "failed"
    assert (await shop.order(order.id)).refunded_fen == 0
    async with shop.runtime.db.uow(readonly=True) as s:
        detail = await aftersales.case_detail(s, shop.scope, case.id)
    assert detail.refund_status == "failed" and "retry_refund" in detail.staff_actions and detail.shopper_actions == []
    assert detail.timeline[-1].action == "refund_failed" and "退款失败" in (detail.timeline[-1].note or "")
    with pytest.raises(Conflict) as info:
        await h.act(shop, "withdraw", case.id)
    assert info.value.code == "after_sale_refund_started"
    # The units stay held: no other case can take them meanwhile.
    with pytest.raises(Conflict) as info:
        await h.open_case(shop, order.id, [(lb.id, 1)])
    assert info.value.code == "after_sale_open"

    monkeypatch.setattr(sandbox_gw, "FAIL_MARKER", "[sandbox:fail]")
    case = await h.act(shop, "retry_refund", case.id)
    assert case.status == "refunding"
    await h.settle(shop)
    assert (await h.case(shop, case.id)).status == "refunded"
    first, second = await _refunds(shop, case.id)
    assert second.status == "succeeded" and second.out_refund_no == f"AS{case.case_no}R1"
    assert (await shop.order(order.id)).refunded_fen == lb.paid_fen
    with pytest.raises(Conflict) as info:
        await h.act(shop, "retry_refund", case.id)
    assert info.value.code == "after_sale_illegal_transition"


# -- concurrency ------------------------------------------------------------------------------------------


async def test_concurrent_cases_on_one_line_never_claim_more_than_was_bought(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await lc.paid_order(shop, [(shop.skus[0], 3)])
    [line] = await h.order_lines(shop, order.id)
    buyer = shop.buyer

    async def one(k: int, staff: bool) -> str:
        try:
            await h.open_case(shop, order.id, [(line.id, k)], staff=staff, buyer=buyer,
                              reason="商家协商退款" if staff else None)
            return "ok"
        except DomainError as exc:
            return exc.code

    results = await asyncio.gather(*(one(1 + i % 3, i % 2 == 0) for i in range(12)))
    assert results.count("ok") == 1, results
    assert set(results) <= {"ok", "after_sale_open"}, results
    # The winner may be the shopper's request, which waits for staff: approve it.
    async with shop.runtime.db.uow(readonly=True) as s:
        [winner] = await aftersales.cases_for_order(s, shop.scope, order.id)
    if winner.status == "requested":
        await h.act(shop, "approve", winner.id)
    await h.settle(shop)
    # Round after round, until the line is used up: never more than 3 units or its paid amount.
    for _round in range(4):
        results = await asyncio.gather(*(one(1, True) for _ in range(6)))
        assert results.count("ok") <= 1, results
        await h.settle(shop)
        [now] = await h.order_lines(shop, order.id)
        assert now.refund_qty <= now.quantity and now.refund_fen <= now.paid_fen
    [final] = await h.order_lines(shop, order.id)
    assert (final.refund_qty, final.refunded_qty, final.refunded_fen) == (3, 3, final.paid_fen)
    assert (await shop.order(order.id)).status == "closed"


async def test_shipping_and_a_refund_racing_for_the_same_units_never_both_win(order_shop: OrderShop) -> None:
    shop = order_shop
    for i in range(4):
        order = await lc.paid_order(shop, [(shop.skus[0], 2)])
        [line] = await h.order_lines(shop, order.id)

        async def ship() -> str:
            try:
                await lc.ship(shop, order.id, f"SF{i}99999{i}")  # noqa: B023
                return "shipped"
            except DomainError as exc:
                return exc.code

        async def refund() -> str:
            try:
                await h.open_case(shop, order.id, [(line.id, 2)])  # noqa: B023
                return "case"
            except DomainError as exc:
                return exc.code

        results = await asyncio.gather(ship(), refund())
        [after] = await h.order_lines(shop, order.id)
        assert after.shipped_qty + after.cancelled_qty <= after.quantity, results
        assert after.refund_qty <= after.quantity
        if results[0] == "shipped" and results[1] == "case":
            assert after.shipped_qty == 2 and after.cancelled_qty == 0, "the case took shipped units"


async def test_concurrent_cases_on_different_lines_each_get_their_own(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, lb) = await _two_line_order(shop)
    a, b = await asyncio.gather(h.open_case(shop, order.id, [(la.id, 2)]), h.open_case(shop, order.id, [(lb.id, 1)]))
    assert {a.case_no, b.case_no} and a.case_no != b.case_no
    assert a.refund_fen + b.refund_fen == order.paid_fen


# -- rules and bad input --------------------------------------------------------------------------------------


async def test_one_open_case_per_line(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, lb) = await _two_line_order(shop)
    first = await h.open_case(shop, order.id, [(la.id, 1)])
    with pytest.raises(Conflict) as info:
        await h.open_case(shop, order.id, [(la.id, 1), (lb.id, 1)])
    assert info.value.code == "after_sale_open" and info.value.extra["order_line_ids"] == [la.id]
    assert info.value.extra["case_ids"] == [first.id]
    other = await h.open_case(shop, order.id, [(lb.id, 1)])
    assert other.status == "requested"
    async with shop.runtime.db.uow(readonly=True) as s:
        info2 = await aftersales.refundable_lines(s, shop.scope, await shop.order(order.id))
    assert [(x.line.id, x.open_case_id, x.refund_only_qty) for x in info2.lines] == [(la.id, first.id, 0), (lb.id, other.id, 0)]


async def test_more_units_than_are_left_is_refused(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, lb) = await _two_line_order(shop)
    with pytest.raises(Conflict) as info:
        await h.open_case(shop, order.id, [(la.id, 3), (lb.id, 1)])
    assert info.value.code == "after_sale_quantity_exceeded"
    assert info.value.extra["lines"] == [{"order_line_id": la.id, "requested": 3, "available": 2}]
    assert [h.line_counters(ln) for ln in await h.order_lines(shop, order.id)] == [(0, 0, 0, 0, 0, 0)] * 2


async def test_refundable_lines_per_kind_and_amount(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, lb) = await _two_line_order(shop)
    async with shop.runtime.db.uow(readonly=True) as s:
        info = await aftersales.refundable_lines(s, shop.scope, await shop.order(order.id))
    assert info.allowed and info.window_ends_at is None
    assert [(x.refund_only_qty, x.refund_only_fen, x.return_refund_qty, x.unshipped_qty) for x in info.lines] == [
        (2, la.paid_fen, 0, 2), (1, lb.paid_fen, 0, 1)]
    assert info.lines[0].fen_for(1) == la.paid_fen // 2
    await lc.ship(shop, order.id, "SF0000009", items=[(la.id, 1)])
    case = await h.open_case(shop, order.id, [(lb.id, 1)])
    async with shop.runtime.db.uow(readonly=True) as s:
        info = await aftersales.refundable_lines(s, shop.scope, await shop.order(order.id))
    assert [(x.refund_only_qty, x.return_refund_qty, x.unshipped_qty, x.open_case_id) for x in info.lines] == [
        (2, 1, 1, None), (0, 0, 0, case.id)]


@pytest.mark.parametrize(("changes", "code"), [
    ({"kind": "exchange"}, "after_sale_kind_invalid"),
    ({"reason": "随便"}, "after_sale_reason_invalid"),
    ({"reason": "七天无理由退货"}, "after_sale_reason_invalid"),  # a return reason on a refund-only case
    ({"lines": []}, "after_sale_lines_invalid"),
    ({"lines": [(1, 0)]}, "after_sale_lines_invalid"),
    ({"lines": [(1, True)]}, "after_sale_lines_invalid"),
    ({"lines": [(10**12, 1)]}, "after_sale_lines_invalid"),
    ({"images": ["javascript:alert(1)"]}, "after_sale_images_invalid"),
    ({"images": ["//evil.example/x.png"]}, "after_sale_images_invalid"),
    ({"images": ["/media/a.jpg\" onerror=\"x"]}, "after_sale_images_invalid"),
    ({"images": ["/media/../etc/passwd"]}, "after_sale_images_invalid"),
    ({"images": [f"/media/{i}.jpg" for i in range(7)]}, "after_sale_images_invalid"),
    ({"description": "坏了\x00"}, "after_sale_text_invalid"),
    ({"description": "长" * 501}, "after_sale_text_invalid"),
])
async def test_bad_input_is_a_422(order_shop: OrderShop, changes: dict[str, Any], code: str) -> None:
    shop = order_shop
    order = await lc.paid_order(shop)
    [line] = await h.order_lines(shop, order.id)
    args: dict[str, Any] = {"kind": "refund_only", "lines": [(line.id, 1)], "reason": "不想要了", "description": None,
                            "images": ["/media/after-sales/1.jpg", "https://cdn.example.com/a/b.png"]}
    args.update(changes)
    with pytest.raises(ValidationFailed) as info:
        async with shop.runtime.db.uow() as s:
            await aftersales.open_case(s, shop.scope, order.id, customer_id=shop.buyer.customer_id, **args)
    assert info.value.code == code
    assert h.line_counters((await h.order_lines(shop, order.id))[0]) == (0, 0, 0, 0, 0, 0)


async def test_illegal_transitions_are_409(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, _lb) = await _two_line_order(shop)
    case = await h.open_case(shop, order.id, [(la.id, 1)])
    for action, kw in (("receive_return", {}), ("retry_refund", {}), ("submit_return", {"carrier": "顺丰", "tracking_no": "SF123456"})):
        with pytest.raises(Conflict) as info:
            await h.act(shop, action, case.id, **kw)
        assert info.value.code == "after_sale_illegal_transition", action
    await h.act(shop, "reject", case.id, reason="重复申请")
    for action, kw in (("approve", {}), ("reject", {"reason": "再拒一次"}), ("withdraw", {})):
        with pytest.raises(Conflict) as info:
            await h.act(shop, action, case.id, **kw)
        assert info.value.code == "after_sale_illegal_transition", action
        assert info.value.extra["from_status"] == "rejected"
    assert (await h.case(shop, case.id)).status == "rejected"
    assert h.line_counters((await h.order_lines(shop, order.id))[0]) == (0, 0, 0, 0, 0, 0), "given back once"


async def test_a_shopper_cannot_see_or_touch_another_shoppers_case(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, _lb) = await _two_line_order(shop)
    case = await h.open_case(shop, order.id, [(la.id, 1)])
    stranger = await shop.new_buyer()
    with pytest.raises(NotFound):
        await h.act(shop, "withdraw", case.id, buyer=stranger)
    with pytest.raises(NotFound):
        await h.open_case(shop, order.id, [(la.id, 1)], buyer=stranger)
    async with shop.runtime.db.uow(readonly=True) as s:
        with pytest.raises(NotFound):
            await aftersales.case_detail(s, shop.scope, case.id, customer_id=stranger.customer_id)
        rows, total = await aftersales.customer_cases(s, shop.scope, stranger.customer_id)
        assert (rows, total) == ([], 0)
        mine, total = await aftersales.customer_cases(s, shop.scope, shop.buyer.customer_id)
        assert total == 1 and mine[0].case.id == case.id and mine[0].order_no == order.order_no
    assert (await h.case(shop, case.id)).status == "requested"


async def test_case_detail_and_the_staff_queue(order_shop: OrderShop) -> None:
    shop = order_shop
    order, (la, _lb) = await _two_line_order(shop)
    c1 = await h.open_case(shop, order.id, [(la.id, 2)], reason="质量问题", description="有异味")
    other = await lc.paid_order(shop, [(shop.skus[1], 2)])
    [ol] = await h.order_lines(shop, other.id)
    await lc.ship(shop, other.id, "YT00000010", carrier="YTO")
    c2 = await h.open_case(shop, other.id, [(ol.id, 1)], kind="return_refund", reason="发错货")
    await h.act(shop, "reject", c2.id, reason="已超过七天")
    async with shop.runtime.db.uow(readonly=True) as s:
        d = await aftersales.case_detail(s, shop.scope, c1.id)
        assert d.order.id == order.id and d.case.description == "有异味"
        assert [(v.title, v.quantity, v.cancelled_qty, v.refund_fen, v.line_quantity) for v in d.lines] == [
            ("明前龙井", 2, 2, la.paid_fen, 2)]
        assert [(t.from_status, t.to_status, t.action) for t in d.timeline] == [("new", "requested", "open")]
        assert d.return_address is None and d.refund_status is None
        assert d.staff_actions == ["approve", "reject"] and d.shopper_actions == ["withdraw"]
        Q = aftersales.CaseQuery
        rows, total = await aftersales.list_cases(s, shop.scope, Q())
        assert total == 2 and [r.case.id for r in rows] == [c2.id, c1.id]
        assert [r.case.id for r in (await aftersales.list_cases(s, shop.scope, Q(status="open")))[0]] == [c1.id]
        assert [r.case.id for r in (await aftersales.list_cases(s, shop.scope, Q(status="rejected")))[0]] == [c2.id]
        assert [r.case.id for r in (await aftersales.list_cases(s, shop.scope, Q(kind="return_refund")))[0]] == [c2.id]
        assert [r.case.id for r in (await aftersales.list_cases(s, shop.scope, Q(order_no=order.order_no)))[0]] == [c1.id]
        assert [r.case.id for r in (await aftersales.list_cases(s, shop.scope, Q(q=c2.case_no[-6:])))[0]] == [c2.id]
        assert (await aftersales.list_cases(s, shop.scope, Q(customer_id=shop.buyer.customer_id)))[1] == 2
        later = clock.now() + timedelta(hours=1)
        assert (await aftersales.list_cases(s, shop.scope, Q(created_from=later)))[1] == 0
        assert (await aftersales.list_cases(s, shop.scope, Q(created_to=later)))[1] == 2
        assert [c.id for c in await aftersales.cases_for_order(s, shop.scope, order.id)] == [c1.id]


async def test_cases_belong_to_their_tenant(order_shop: OrderShop, runtime: Runtime, client: httpx.AsyncClient,
                                            tenant_factory: Any) -> None:
    from tests.orders.conftest import make_order_shop

    shop = order_shop
    order, (la, _lb) = await _two_line_order(shop)
    case = await h.open_case(shop, order.id, [(la.id, 1)])
    other = await make_order_shop(runtime, client, tenant_factory, name="另一家")
    async with runtime.db.uow(readonly=True) as s:
        with pytest.raises(NotFound):
            await aftersales.case_detail(s, other.scope, case.id)
        assert (await aftersales.list_cases(s, other.scope, aftersales.CaseQuery()))[1] == 0
    for action, kw in (("approve", {}), ("reject", {"reason": "不行"})):
        with pytest.raises(NotFound):
            await h.act(other, action, case.id, **kw)
    with pytest.raises(NotFound):
        await h.open_case(other, order.id, [(la.id, 1)], staff=True, reason="商家协商退款")
    assert (await h.case(shop, case.id)).status == "requested"


async def test_units_cancelled_from_a_split_line_go_back_where_they_were_not_going_to_ship_from(order_shop: OrderShop) -> None:
    """A line served by two locations: the refunded units leave the last part; the first part
    still ships whole, and the emptied part ends cancelled."""
    shop = order_shop
    second = await shop.add_location("二号仓", priority=200)
    sku = await shop.make_sku(price_fen=1000, stock=3)
    await shop.receive(sku, 3, second)
    order = await lc.paid_order(shop, [(sku, 5)])
    [line] = await h.order_lines(shop, order.id)
    assert [(p.location_id, p.status) for p in await lc.parts(shop.runtime, order.id)] == [
        (shop.location_id, "pending"), (second, "pending")]
    case = await h.open_case(shop, order.id, [(line.id, 2)])
    await h.act(shop, "approve", case.id)
    await h.settle(shop)
    assert await lc.level(shop, sku, shop.location_id) == (3, 3)
    assert await lc.level(shop, sku, second) == (3, 0), "the split-off part's units are on sale again"
    await lc.ship(shop, order.id, "SF0000011")
    assert (await shop.order(order.id)).status == "shipped"
    assert await lc.level(shop, sku, shop.location_id) == (0, 0)
    assert [p.status for p in await lc.parts(shop.runtime, order.id)] == ["shipped", "cancelled"]
