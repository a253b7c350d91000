"""Queries of the order lifecycle: reads, lists with filters, counters and deadline scans.

:class:`Orders` and :class:`Fulfilments` are tenant repositories (every statement carries the
tenant). :class:`Deadlines` works installation-wide, because the unpaid-timeout and
auto-confirm sweeps visit every tenant's orders; it hands ids to the service, which carries
on in the order's own tenant.

Counters change only by conditional updates whose ``WHERE`` states the limit, so two
parcels (or a parcel and a refund) racing for the last unit cannot both win.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import clock
from siyu.kit.tenancy import Repository, TenantRepository
from siyu.orders.models import (
    AfterSale,
    FulfilmentItem,
    Order,
    OrderFulfilment,
    OrderLine,
    OrderTransition,
    Shipment,
)
from siyu.orders.states import OPEN_CASE_STATUSES


def _rowcount(res: Any) -> int:
    return int(res.rowcount)


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """Filters of an order list; ``None`` means "any". Times are UTC bounds ``[from, to)``."""

    status: str | None = None
    statuses: tuple[str, ...] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    customer_id: int | None = None
    #: Orders of any of these customers (a phone or nickname search resolved by the service).
    customer_ids: tuple[int, ...] | None = None
    order_no: str | None = None
    product: str | None = None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Orders(TenantRepository[Order]):
    model = Order
    not_found_zh = "订单"
    not_found_en = "Order"
    not_found_code = "order_not_found"

    async def fresh(self, order_id: int, *, for_update: bool = False) -> Order | None:
        """The order as the database has it now (refreshing an object already in the session)."""
        stmt = self.select().where(Order.id == order_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_no(self, order_no: str) -> Order | None:
        return (await self.session.execute(self.select().where(Order.order_no == order_no))).scalar_one_or_none()

    def _search(self, q: OrderQuery) -> Select[Any]:
        stmt = self.select()
        if q.status:
            stmt = stmt.where(Order.status == q.status)
        if q.statuses is not None:
            stmt = stmt.where(Order.status.in_(q.statuses))
        if q.created_from is not None:
            stmt = stmt.where(Order.created_at >= q.created_from)
        if q.created_to is not None:
            stmt = stmt.where(Order.created_at < q.created_to)
        if q.customer_id is not None:
            stmt = stmt.where(Order.customer_id == q.customer_id)
        if q.customer_ids is not None:
            stmt = stmt.where(Order.customer_id.in_(q.customer_ids or (-1,)))
        if q.order_no:
            stmt = stmt.where(Order.order_no.like(_like(q.order_no), escape="\\"))
        if q.product:
            stmt = stmt.where(exists().where(
                OrderLine.order_id == Order.id, OrderLine.tenant_id == self.tenant_id,
                or_(OrderLine.title.ilike(_like(q.product), escape="\\"), OrderLine.sku_code == q.product),
            ))
        return stmt

    async def search(self, q: OrderQuery, offset: int, limit: int) -> tuple[Sequence[Order], int]:
        stmt = self._search(q)
        total = await self.count(stmt)
        rows = await self.list(stmt.order_by(Order.created_at.desc(), Order.id.desc()).offset(offset).limit(limit))
        return rows, total

    async def batches(self, q: OrderQuery, size: int = 500) -> AsyncIterator[Sequence[Order]]:
        """The whole filtered list, newest first, ``size`` orders at a time (exports)."""
        last: tuple[datetime, int] | None = None
        base = self._search(q).order_by(Order.created_at.desc(), Order.id.desc())
        while True:
            stmt = base
            if last is not None:
                stmt = stmt.where(or_(Order.created_at < last[0], (Order.created_at == last[0]) & (Order.id < last[1])))
            rows = await self.list(stmt.limit(size))
            if not rows:
                return
            yield rows
            last = (rows[-1].created_at, rows[-1].id)

    async def lines(self, order_id: int, *, fresh: bool = False) -> list[OrderLine]:
        stmt = (select(OrderLine).where(OrderLine.tenant_id == self.tenant_id, OrderLine.order_id == order_id)
                .order_by(OrderLine.id))
        if fresh:
            stmt = stmt.execution_options(populate_existing=True)
        return list((await self.session.execute(stmt)).scalars().all())

    async def lines_of(self, order_ids: Iterable[int]) -> dict[int, list[OrderLine]]:
        ids = sorted(set(order_ids))
        out: dict[int, list[OrderLine]] = defaultdict(list)
        if not ids:
            return out
        rows = (await self.session.execute(
            select(OrderLine).where(OrderLine.tenant_id == self.tenant_id, OrderLine.order_id.in_(ids)).order_by(OrderLine.id)
        )).scalars().all()
        for ln in rows:
            out[ln.order_id].append(ln)
        return out

    async def transitions(self, order_id: int) -> list[OrderTransition]:
        return list((await self.session.execute(
            select(OrderTransition).where(OrderTransition.tenant_id == self.tenant_id, OrderTransition.order_id == order_id)
            .order_by(OrderTransition.created_at, OrderTransition.id)
        )).scalars().all())

    async def has_event(self, order_id: int, action: str, note: str) -> bool:
        found = (await self.session.execute(
            select(OrderTransition.id).where(OrderTransition.tenant_id == self.tenant_id,
                                             OrderTransition.order_id == order_id, OrderTransition.action == action,
                                             OrderTransition.note == note).limit(1)
        )).first()
        return found is not None

    async def cases(self, order_id: int) -> list[AfterSale]:
        return list((await self.session.execute(
            select(AfterSale).where(AfterSale.tenant_id == self.tenant_id, AfterSale.order_id == order_id)
            .order_by(AfterSale.id)
        )).scalars().all())

    async def set_seller_note(self, order_id: int, note: str | None) -> None:
        await self.session.execute(
            update(Order).where(Order.tenant_id == self.tenant_id, Order.id == order_id)
            .values(seller_note=note, updated_at=clock.now()).execution_options(synchronize_session=False)
        )

    async def ship_line_units(self, line_id: int, qty: int) -> bool:
        """``shipped_qty += qty`` if the line still has ``qty`` units neither shipped nor cancelled."""
        res = await self.session.execute(
            update(OrderLine)
            .where(OrderLine.tenant_id == self.tenant_id, OrderLine.id == line_id,
                   OrderLine.shipped_qty + OrderLine.cancelled_qty + qty <= OrderLine.quantity)
            .values(shipped_qty=OrderLine.shipped_qty + qty)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1


class Fulfilments(TenantRepository[OrderFulfilment]):
    model = OrderFulfilment
    not_found_zh = "发货单"
    not_found_en = "Fulfilment part"
    not_found_code = "fulfilment_not_found"

    async def of_order(self, order_id: int) -> list[OrderFulfilment]:
        return list(await self.list(self.select().where(OrderFulfilment.order_id == order_id)
                                    .order_by(OrderFulfilment.seq, OrderFulfilment.id)
                                    .execution_options(populate_existing=True)))

    async def items_of_order(self, order_id: int) -> list[FulfilmentItem]:
        return list((await self.session.execute(
            select(FulfilmentItem).where(FulfilmentItem.tenant_id == self.tenant_id, FulfilmentItem.order_id == order_id)
            .order_by(FulfilmentItem.fulfilment_id, FulfilmentItem.id).execution_options(populate_existing=True)
        )).scalars().all())

    async def ship_item_units(self, item_id: int, qty: int) -> bool:
        res = await self.session.execute(
            update(FulfilmentItem)
            .where(FulfilmentItem.tenant_id == self.tenant_id, FulfilmentItem.id == item_id,
                   FulfilmentItem.shipped_qty + qty <= FulfilmentItem.quantity)
            .values(shipped_qty=FulfilmentItem.shipped_qty + qty)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1

    async def set_status(self, fulfilment_id: int, status: str) -> None:
        await self.session.execute(
            update(OrderFulfilment)
            .where(OrderFulfilment.tenant_id == self.tenant_id, OrderFulfilment.id == fulfilment_id,
                   OrderFulfilment.status != status)
            .values(status=status, updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )

    async def cancel_open(self, order_id: int) -> None:
        """Every part of an order that has not shipped anything becomes ``cancelled``."""
        await self.session.execute(
            update(OrderFulfilment)
            .where(OrderFulfilment.tenant_id == self.tenant_id, OrderFulfilment.order_id == order_id,
                   OrderFulfilment.status == "pending")
            .values(status="cancelled", updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )


class Shipments(TenantRepository[Shipment]):
    model = Shipment
    not_found_zh = "包裹"
    not_found_en = "Shipment"
    not_found_code = "shipment_not_found"

    async def of_order(self, order_id: int) -> list[Shipment]:
        return list(await self.list(self.select().where(Shipment.order_id == order_id)
                                    .order_by(Shipment.shipped_at, Shipment.id)))

    async def of_orders(self, order_ids: Iterable[int]) -> dict[int, list[Shipment]]:
        ids = sorted(set(order_ids))
        out: dict[int, list[Shipment]] = defaultdict(list)
        if not ids:
            return out
        for s in await self.list(self.select().where(Shipment.order_id.in_(ids)).order_by(Shipment.id)):
            out[s.order_id].append(s)
        return out

    async def by_tracking(self, order_id: int, carrier_code: str, tracking_no: str) -> Shipment | None:
        return (await self.session.execute(
            self.select().where(Shipment.order_id == order_id, Shipment.carrier_code == carrier_code,
                                Shipment.tracking_no == tracking_no)
        )).scalar_one_or_none()

    async def mark_delivered(self, order_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Shipment)
            .where(Shipment.tenant_id == self.tenant_id, Shipment.order_id == order_id, Shipment.status == "in_transit")
            .values(status="delivered", delivered_at=at)
            .execution_options(synchronize_session=False)
        )


class Deadlines(Repository):
    """Installation-wide scans for the sweeps; ``(order_id, tenant_id)`` in due order."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)

    async def unpaid_overdue(self, now: datetime, limit: int) -> list[tuple[int, int]]:
        rows = (await self.session.execute(
            select(Order.id, Order.tenant_id)
            .where(Order.status == "pending_payment", Order.pay_deadline.is_not(None), Order.pay_deadline < now)
            .order_by(Order.pay_deadline, Order.id)
            .limit(limit)
        )).all()
        return [(int(a), int(b)) for a, b in rows]

    async def confirm_due(self, now: datetime, limit: int) -> list[tuple[int, int]]:
        rows = (await self.session.execute(
            select(Order.id, Order.tenant_id)
            .where(Order.status.in_(("shipped", "delivered")), Order.auto_confirm_at.is_not(None),
                   Order.auto_confirm_at <= now,
                   # A receipt is not confirmed for the shopper while an after-sales case is
                   # open (a parcel reported lost must not complete on its own); it completes
                   # at the first sweep after the case ends.
                   ~exists().where(AfterSale.order_id == Order.id, AfterSale.status.in_(OPEN_CASE_STATUSES)))
            .order_by(Order.auto_confirm_at, Order.id)
            .limit(limit)
        )).all()
        return [(int(a), int(b)) for a, b in rows]

    async def order(self, order_id: int) -> Order | None:
        return (await self.session.execute(
            select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
        )).scalar_one_or_none()
