"""Paying an order: the sandbox cashier end to end, replays, and money that arrives when the
order no longer wants it (a late payment after cancellation, a second payment) going back."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from siyu.catalog.models import Product
from siyu.kit import clock
from siyu.kit.runtime import Runtime
from siyu.orders import service
from siyu.payments import service as payments_service
from siyu.payments.gateways import sandbox as sandbox_gw
from siyu.payments.gateways.sandbox import SandboxGatewayOrder
from tests.conftest import drain_outbox
from tests.orders import _lifecycle as lc
from tests.orders.conftest import OrderShop

ORIGIN = {"origin": "http://testserver"}


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _notify(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


def _token(page: str) -> str:
    m = re.search(r'name="token" value="([0-9a-f]+)"', page)
    assert m, page[:300]
    return m.group(1)


async def _sales(shop: OrderShop, sku_id: int) -> int:
    from siyu.catalog.models import Sku

    async with shop.runtime.db.uow(readonly=True) as s:
        product_id = (await s.execute(select(Sku.product_id).where(Sku.id == sku_id))).scalar_one()
        return int((await s.execute(select(Product.sales_count).where(Product.id == product_id))).scalar_one())


async def _delivered_notifications(runtime: Runtime, out_trade_no: str) -> list[bytes]:
    from siyu.kit.outbox import OutboxEvent

    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OutboxEvent.payload).where(OutboxEvent.topic == sandbox_gw.NOTIFY_TOPIC)
                                .order_by(OutboxEvent.id))).scalars().all()
    return [str(p["body"]).encode() for p in rows if out_trade_no in str(p["body"]) and "TRANSACTION" in str(p["body"])]


async def gateway_took_money(runtime: Runtime, out_trade_no: str) -> None:
    """What a real gateway can do: take the payer's money although we closed the payment a
    moment earlier, and tell us so (the sandbox book says SUCCESS and a signed notification
    follows)."""
    async with runtime.db.uow() as s:
        row = (await s.execute(select(SandboxGatewayOrder).where(SandboxGatewayOrder.out_trade_no == out_trade_no))).scalar_one()
        now = clock.now()
        await s.execute(update(SandboxGatewayOrder).where(SandboxGatewayOrder.id == row.id)
                        .values(status="SUCCESS", transaction_id="SBXT-LATE-" + out_trade_no[-8:], paid_at=now))
        sandbox_gw.schedule_notification(s, row.notify_url, {
            "id": "SBXN-LATE-" + out_trade_no, "create_time": now.isoformat(), "event_type": "TRANSACTION.SUCCESS",
            "resource_type": "plain",
            "resource": {"out_trade_no": out_trade_no, "transaction_id": "SBXT-LATE-" + out_trade_no[-8:],
                         "trade_state": "SUCCESS", "success_time": now.isoformat(timespec="seconds"),
                         "amount": {"total": row.amount_fen, "currency": "CNY"}},
        })
    await drain_outbox(runtime)


async def test_paying_on_the_sandbox_cashier_pays_the_order_once(order_shop: OrderShop, client: httpx.AsyncClient) -> None:
    shop = order_shop
    sku = shop.skus[0]
    sold_before = await _sales(shop, sku)
    order = await shop.place([(sku, 2)])
    r = await client.post(shop.url(f"/orders/{order.id}/pay"), json={"channel": "sandbox", "return_url": f"/m/x/orders/{order.id}"},
                          headers=shop.buyer.headers)
    assert r.status_code == 200, r.text
    start = r.json()
    assert start["amount_fen"] == order.payable_fen == 2 * 12800
    assert start["paid"] is False and start["pay_url"] == f"/pay/sandbox/{start['out_trade_no']}"
    assert start["expires_at"] is not None

    # Asking again reuses the payment rather than opening a second one.
    again = (await client.post(shop.url(f"/orders/{order.id}/pay"), json={}, headers=shop.buyer.headers)).json()
    assert again["out_trade_no"] == start["out_trade_no"] and again["reused"] is True

    page = await client.get(start["pay_url"])
    assert page.status_code == 200 and "订单 " + order.order_no in page.text
    r = await client.post(start["pay_url"], data={"outcome": "pay", "token": _token(page.text)}, headers=ORIGIN)
    assert r.status_code == 303
    assert (await shop.order(order.id)).status == "pending_payment", "the notification has not arrived yet"

    await drain_outbox(shop.runtime)
    paid = await shop.order(order.id)
    assert paid.status == "paid"
    assert paid.paid_fen == order.payable_fen and paid.paid_at is not None and paid.auto_confirm_at is None
    assert paid.payment_id is not None
    assert (await lc.timeline(shop.runtime, order.id))[-1] == ("pending_payment", "paid", "pay")
    [ev] = await lc.events(shop.runtime, shop.scope.id, "order.paid", order_id=order.id)
    assert ev == {"order_id": order.id, "tenant_id": shop.scope.id, "customer_id": shop.buyer.customer_id,
                  "paid_fen": order.payable_fen, "payment_id": paid.payment_id}
    assert await _sales(shop, sku) == sold_before + 2

    # The gateway sends the same notification again: recorded as a duplicate, nothing moves.
    [body] = await _delivered_notifications(shop.runtime, start["out_trade_no"])
    headers = sandbox_gw.signed_headers(sandbox_gw.sandbox_key(shop.runtime.secret_key), body)
    assert (await client.post("/api/pay/notify/sandbox", content=body, headers=headers)).status_code == 204
    await drain_outbox(shop.runtime)
    assert len(await lc.events(shop.runtime, shop.scope.id, "order.paid", order_id=order.id)) == 1
    assert await _sales(shop, sku) == sold_before + 2
    assert [t for t in await lc.timeline(shop.runtime, order.id) if t[2] == "pay"] == [("pending_payment", "paid", "pay")]

    # The shopper sees their payment; the store API tells them the order is paid.
    mine = await client.get(shop.url(f"/payments/{start['out_trade_no']}"), headers=shop.buyer.headers)
    assert mine.status_code == 200 and mine.json()["status"] == "succeeded"
    detail = (await client.get(shop.url(f"/orders/{order.id}"), headers=shop.buyer.headers)).json()
    assert detail["status"] == "paid" and detail["actions"] == []


async def test_replaying_the_event_changes_nothing(order_shop: OrderShop) -> None:
    order = await lc.paid_order(order_shop)
    async with order_shop.runtime.db.uow() as s:
        outcome = await service.apply_payment(s, order_shop.scope, order_id=order.id, payment_id=order.payment_id or 0,
                                              amount_fen=order.paid_fen, out_trade_no="P-replay")
    assert outcome == "replay"
    assert len(await lc.events(order_shop.runtime, order_shop.scope.id, "order.paid", order_id=order.id)) == 1


async def test_an_order_that_cannot_be_paid_is_refused(order_shop: OrderShop, client: httpx.AsyncClient) -> None:
    shop = order_shop
    paid = await lc.paid_order(shop)
    r = await client.post(shop.url(f"/orders/{paid.id}/pay"), json={}, headers=shop.buyer.headers)
    assert (r.status_code, r.json()["code"]) == (409, "order_not_payable")

    cancelled = await shop.place()
    assert (await client.post(shop.url(f"/orders/{cancelled.id}/cancel"), json={}, headers=shop.buyer.headers)).status_code == 200
    r = await client.post(shop.url(f"/orders/{cancelled.id}/pay"), json={}, headers=shop.buyer.headers)
    assert (r.status_code, r.json()["code"]) == (409, "order_not_payable")

    # Less than a minute before the deadline there is no time left to pay.
    late = await shop.place()
    assert late.pay_deadline is not None
    clock.travel(late.pay_deadline - clock.now() - timedelta(seconds=30))
    r = await client.post(shop.url(f"/orders/{late.id}/pay"), json={}, headers=shop.buyer.headers)
    assert (r.status_code, r.json()["code"]) == (409, "order_not_payable")

    other = await shop.new_buyer()
    r = await client.post(shop.url(f"/orders/{late.id}/pay"), json={}, headers=other.headers)
    assert (r.status_code, r.json()["code"]) == (404, "order_not_found")
    r = await client.post(shop.url(f"/orders/{late.id}/pay"), json={"channel": "alipay"}, headers=shop.buyer.headers)
    assert r.status_code == 422


async def test_a_late_payment_for_a_cancelled_order_is_refunded_in_full(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await shop.place([(shop.skus[1], 3)])
    start = await lc.start_payment(shop, order.id)
    async with shop.runtime.db.uow() as s:
        await service.cancel_order(s, shop.scope, order.id, by="customer", customer_id=shop.buyer.customer_id,
                                   reason="不想要了")
    assert (await lc.payment(shop.runtime, start.payment.id)).status == "closed"

    await gateway_took_money(shop.runtime, start.payment.out_trade_no)
    await drain_outbox(shop.runtime)  # the refund is submitted, then its notification arrives
    await drain_outbox(shop.runtime)
    p = await lc.payment(shop.runtime, start.payment.id)
    assert p.status == "succeeded" and p.refunded_fen == order.payable_fen
    [refund] = await lc.refunds_of(shop.runtime, p.id)
    assert (refund.out_refund_no, refund.amount_fen, refund.status) == (f"LP{p.out_trade_no}", order.payable_fen, "succeeded")
    assert (refund.source_type, refund.source_id) == ("order", str(order.id))
    after = await shop.order(order.id)
    assert after.status == "cancelled" and after.payment_id is None and after.paid_fen == 0
    notes = [t for t in await lc.timeline(shop.runtime, order.id) if t[2] == "payment_refund"]
    assert notes == [("cancelled", "cancelled", "payment_refund")]
    assert await lc.events(shop.runtime, shop.scope.id, "order.paid", order_id=order.id) == []

    # Handling the same event again neither refunds twice nor writes a second note.
    async with shop.runtime.db.uow() as s:
        again = await service.apply_payment(s, shop.scope, order_id=order.id, payment_id=p.id, amount_fen=p.amount_fen,
                                            out_trade_no=p.out_trade_no)
    assert again == "replay"
    assert len(await lc.refunds_of(shop.runtime, p.id)) == 1


async def test_a_second_payment_of_a_paid_order_is_refunded(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await shop.place()
    first = await lc.start_payment(shop, order.id)
    async with shop.runtime.db.uow() as s:  # the payer switched methods: the first payment is closed
        await payments_service.close_payment(s, shop.scope, first.payment.id)
    second = await lc.pay(shop, order.id)
    assert second.id != first.payment.id
    paid = await shop.order(order.id)
    assert paid.status == "paid" and paid.payment_id == second.id

    await gateway_took_money(shop.runtime, first.payment.out_trade_no)
    await drain_outbox(shop.runtime)
    dup = await lc.payment(shop.runtime, first.payment.id)
    assert dup.status == "succeeded" and dup.refunded_fen == dup.amount_fen
    [refund] = await lc.refunds_of(shop.runtime, dup.id)
    assert refund.out_refund_no == f"LP{dup.out_trade_no}" and refund.status == "succeeded"
    assert await lc.refunds_of(shop.runtime, second.id) == []
    still = await shop.order(order.id)
    assert (still.status, still.payment_id, still.paid_fen) == ("paid", second.id, order.payable_fen)
    assert [t[2] for t in await lc.timeline(shop.runtime, order.id)].count("payment_refund") == 1


async def test_virtual_goods_complete_when_paid(order_shop: OrderShop) -> None:
    shop = order_shop
    before = await lc.level(shop, shop.virtual_sku)
    order = await shop.place([(shop.virtual_sku, 2)], address_id=None)
    await lc.pay(shop, order.id)
    done = await shop.order(order.id)
    assert done.status == "completed" and done.completed_at is not None
    assert [t[:2] for t in await lc.timeline(shop.runtime, order.id)][-2:] == [("pending_payment", "paid"), ("paid", "completed")]
    [line] = await lc.lines(shop.runtime, order.id)
    assert line.shipped_qty == 2
    assert [p.status for p in await lc.parts(shop.runtime, order.id)] == ["shipped"]
    assert await lc.level(shop, shop.virtual_sku) == (before[0] - 2, before[1]), "the units left the stock"
    assert len(await lc.events(shop.runtime, shop.scope.id, "order.completed", order_id=order.id)) == 1


async def test_a_mixed_order_delivers_its_virtual_part_and_waits_for_the_parcel(order_shop: OrderShop) -> None:
    shop = order_shop
    order = await shop.place([(shop.skus[0], 1), (shop.virtual_sku, 1)])
    await lc.pay(shop, order.id)
    paid = await shop.order(order.id)
    assert paid.status == "paid"
    kinds = {p.kind: p.status for p in await lc.parts(shop.runtime, order.id)}
    assert kinds == {"ship": "pending", "virtual": "shipped"}
    res = await lc.ship(shop, order.id, "SF100200300")
    assert res.order.status == "shipped"
    assert [i["sku_id"] for i in res.shipment.items] == [shop.skus[0]]


async def test_an_order_with_nothing_to_pay_is_paid_at_once(order_shop: OrderShop, client: httpx.AsyncClient) -> None:
    from siyu.orders.models import Order

    shop = order_shop
    order = await shop.place()
    async with shop.runtime.db.uow() as s:  # as if offers had covered everything
        await s.execute(update(Order).where(Order.id == order.id).values(payable_fen=0))
    r = await client.post(shop.url(f"/orders/{order.id}/pay"), json={}, headers=shop.buyer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["paid"] is True and r.json()["out_trade_no"] is None
    paid = await shop.order(order.id)
    assert (paid.status, paid.paid_fen, paid.payment_id) == ("paid", 0, None)
    assert len(await lc.events(shop.runtime, shop.scope.id, "order.paid", order_id=order.id)) == 1
