"""Helpers of the order lifecycle tests (payment, cancellation, shipping, reads).

Orders are placed with the shared ``order_shop`` fixture; these helpers pay them through the
sandbox gateway exactly as a shopper would (start the payment, press 确认支付 on the hosted
page, let the signed notification travel through the outbox into the app), ship them, and
read what the database holds afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import select

from siyu.inventory.models import StockLevel, StockMovement
from siyu.kit.outbox import OutboxEvent
from siyu.kit.runtime import Runtime
from siyu.orders import fulfilment, service
from siyu.orders.models import Order, OrderFulfilment, OrderLine, OrderTransition, Shipment
from siyu.payments.gateways import sandbox as sandbox_gw
from siyu.payments.models import Payment, Refund
from tests.conftest import drain_outbox
from tests.orders.conftest import Buyer, OrderShop

ADMIN = "/api/admin/v1/orders"


async def sandbox_notifications_into(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """Route the sandbox gateway's notifications into the app (use as a fixture body)."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    previous = runtime.extras.get("http_client")
    runtime.extras["http_client"] = client
    yield client
    runtime.extras["http_client"] = previous
    await client.aclose()


async def start_payment(shop: OrderShop, order_id: int, buyer: Buyer | None = None) -> service.PaymentStart:
    who = buyer or shop.buyer
    async with shop.runtime.db.uow() as s:
        start = await service.start_payment(s, shop.scope, customer_id=who.customer_id, order_id=order_id)
    assert start is not None
    return start


async def sandbox_pay(runtime: Runtime, out_trade_no: str, outcome: str = "pay") -> None:
    """The payer presses a button on the sandbox cashier; the notification follows on drain."""
    async with runtime.db.uow() as s:
        await sandbox_gw.choose_outcome(s, out_trade_no, outcome)


async def pay(shop: OrderShop, order_id: int, buyer: Buyer | None = None) -> Payment:
    """Pay an order end to end through the sandbox; returns the payment."""
    start = await start_payment(shop, order_id, buyer)
    await sandbox_pay(shop.runtime, start.payment.out_trade_no)
    await drain_outbox(shop.runtime)
    return await payment(shop.runtime, start.payment.id)


async def paid_order(shop: OrderShop, lines: list[tuple[int, int]] | None = None, buyer: Buyer | None = None) -> Order:
    order = await shop.place(lines, buyer=buyer)
    await pay(shop, order.id, buyer)
    fresh = await shop.order(order.id)
    assert fresh.status in ("paid", "completed"), fresh.status
    return fresh


async def ship(shop: OrderShop, order_id: int, tracking_no: str, *, carrier: str = "SF",
               items: list[tuple[int, int]] | None = None, fulfilment_id: int | None = None) -> fulfilment.ShipResult:
    async with shop.runtime.db.uow() as s:
        return await fulfilment.ship(s, shop.scope, order_id, fulfilment_id=fulfilment_id, items=items,
                                     carrier_code=carrier, tracking_no=tracking_no)


async def payment(runtime: Runtime, payment_id: int) -> Payment:
    async with runtime.db.uow(readonly=True) as s:
        p = (await s.execute(select(Payment).where(Payment.id == payment_id))).scalar_one()
        s.expunge(p)
        return p


async def refunds_of(runtime: Runtime, payment_id: int) -> list[Refund]:
    async with runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.id))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def lines(runtime: Runtime, order_id: int) -> list[OrderLine]:
    async with runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.id))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def parts(runtime: Runtime, order_id: int) -> list[OrderFulfilment]:
    async with runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(OrderFulfilment).where(OrderFulfilment.order_id == order_id)
                                     .order_by(OrderFulfilment.seq))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def shipments(runtime: Runtime, order_id: int) -> list[Shipment]:
    async with runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(Shipment).where(Shipment.order_id == order_id).order_by(Shipment.id))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


async def timeline(runtime: Runtime, order_id: int) -> list[tuple[str, str, str]]:
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OrderTransition.from_status, OrderTransition.to_status, OrderTransition.action)
                                .where(OrderTransition.order_id == order_id).order_by(OrderTransition.id))).all()
    return [(a, b, c) for a, b, c in rows]


async def events(runtime: Runtime, tenant_id: int, topic: str, **match: Any) -> list[dict[str, Any]]:
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OutboxEvent.payload).where(OutboxEvent.tenant_id == tenant_id,
                                                                  OutboxEvent.topic == topic))).scalars().all()
    return [dict(p) for p in rows if all(p.get(k) == v for k, v in match.items())]


async def level(shop: OrderShop, sku_id: int, location_id: int | None = None) -> tuple[int, int]:
    """(on_hand, reserved) of one SKU at one location (the shop's main one by default)."""
    async with shop.runtime.db.uow(readonly=True) as s:
        row = (await s.execute(select(StockLevel.on_hand, StockLevel.reserved).where(
            StockLevel.tenant_id == shop.scope.id, StockLevel.sku_id == sku_id,
            StockLevel.location_id == (location_id or shop.location_id)))).first()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def movements(shop: OrderShop, order_id: int) -> list[tuple[str, int, int]]:
    """(reason, delta_on_hand, delta_reserved) of every ledger movement of an order's reservation."""
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(StockMovement).where(StockMovement.tenant_id == shop.scope.id,
                                                            StockMovement.source_type == "reservation",
                                                            StockMovement.source_id == f"order:{order_id}")
                                .order_by(StockMovement.id))).scalars().all()
        return [(m.reason, m.delta_on_hand, m.delta_reserved) for m in rows]
