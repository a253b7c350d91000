"""Shipping, delivery and completion of paid orders.

Contract
--------

``CARRIERS`` / ``carrier_for(text) -> Carrier | None``
    The carriers a parcel can be handed to (code, Chinese and English name); lookups take a
    code or a Chinese name.
``ship(session, scope, order_id, *, fulfilment_id=None, items=None, carrier_code, tracking_no) -> ShipResult``
    One parcel of a ``paid`` or ``partially_shipped`` order. ``items`` are ``(line_id, qty)``
    pairs; ``None`` ships everything still shippable in the part ``fulfilment_id`` or, without
    a part, in the whole order. Units move by conditional updates
    (``shipped_qty + cancelled_qty + q <= quantity`` on the line, ``shipped_qty + q <=
    quantity`` on the part's item) and the reserved stock is committed with the shipment as
    ref. The same carrier and tracking number on the same order again returns the existing
    parcel (``created=False``), whatever the order's status by then. The order becomes
    ``partially_shipped``, or ``shipped`` once every unit not cancelled has shipped (then
    ``auto_confirm_at`` = now + the tenant's ``auto_confirm_days``).
``refresh_shipping_status(session, order) -> bool``
    After units were cancelled (a refund before shipping): an order whose every unit not
    cancelled has shipped becomes ``shipped``.
``bulk_ship_csv(session, scope, data) -> BulkShipReport``
    Columns 订单号, 物流公司, 运单号; one row ships everything shippable in its order. Each
    row is its own savepoint and gets a result: ``shipped``, ``already_shipped`` or ``error``.
``confirm_receipt(session, scope, order_id, customer_id) -> Order``
    The shopper's 确认收货: ``shipped → delivered → completed`` (or ``delivered → completed``).
``mark_delivered(session, scope, order_id) -> Order``
    Staff: ``shipped → delivered``.
``auto_confirm_due(session, *, now=None, limit=200) -> int``
    Completes shipped or delivered orders whose ``auto_confirm_at`` has passed, every tenant.

Virtual goods (a part of kind ``virtual``) need no parcel: they count as delivered when the
order is paid (:func:`deliver_virtual`), and an order of only virtual goods completes then.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.inventory import service as inventory_service
from siyu.inventory.service import ReservedLine
from siyu.kit import audit, clock, outbox
from siyu.kit.context import Actor, current_actor
from siyu.kit.errors import Conflict, DomainError, NotFound, ValidationFailed
from siyu.kit.tenancy import TenantScope
from siyu.orders import service
from siyu.orders.models import FulfilmentItem, Order, OrderFulfilment, OrderLine, Shipment
from siyu.orders.repository import Deadlines, Fulfilments, Orders, Shipments
from siyu.orders.states import ensure_order_transition, log_order_event, move_order

log = logging.getLogger("siyu.orders")


# -- carriers ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Carrier:
    code: str
    name: str
    name_en: str
    aliases: tuple[str, ...] = ()


CARRIERS: tuple[Carrier, ...] = (
    Carrier("SF", "顺丰", "SF Express", ("顺丰速运", "顺丰快递")),
    Carrier("ZTO", "中通", "ZTO Express", ("中通快递",)),
    Carrier("YTO", "圆通", "YTO Express", ("圆通速递", "圆通快递")),
    Carrier("YD", "韵达", "Yunda Express", ("韵达快递", "韵达速递", "YUNDA")),
    Carrier("STO", "申通", "STO Express", ("申通快递",)),
    Carrier("JD", "京东", "JD Logistics", ("京东物流", "京东快递")),
    Carrier("EMS", "EMS", "China Post EMS", ("邮政EMS", "中国邮政", "邮政", "邮政快递包裹")),
    Carrier("JT", "极兔", "J&T Express", ("极兔速递", "极兔快递", "J&T")),
    Carrier("DBL", "德邦", "Deppon", ("德邦快递", "德邦物流")),
    Carrier("OTHER", "其他", "Other", ("其它",)),
)
_CARRIER_LOOKUP: dict[str, Carrier] = {}
for _c in CARRIERS:
    for _key in (_c.code, _c.name, *_c.aliases):
        _CARRIER_LOOKUP[_key.upper()] = _c
TRACKING_NO = re.compile(r"^[A-Za-z0-9-]{6,40}$")


def carrier_for(text: str | None) -> Carrier | None:
    """The carrier named by a code (any case) or a Chinese name."""
    return _CARRIER_LOOKUP.get((text or "").strip().upper())


def _carrier(text: str | None) -> Carrier:
    c = carrier_for(text)
    if c is None:
        raise ValidationFailed("carrier_unknown", "物流公司无效", "Unknown carrier",
                               fields=[{"field": "carrier_code", "message": "one of " + ", ".join(x.code for x in CARRIERS)}])
    return c


def _tracking(text: str | None) -> str:
    value = (text or "").strip()
    if not TRACKING_NO.match(value):
        raise ValidationFailed("tracking_no_invalid", "运单号需为 6–40 位字母、数字或 -",
                               "A tracking number is 6–40 of A-Z a-z 0-9 -",
                               fields=[{"field": "tracking_no", "message": "6–40 of A-Z a-z 0-9 -"}])
    return value


# -- shipping ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Step:
    part: OrderFulfilment
    item: FulfilmentItem
    line: OrderLine
    qty: int


@dataclass(frozen=True)
class ShipResult:
    shipment: Shipment
    order: Order
    #: False when the same carrier and tracking number had already shipped on this order.
    created: bool


def _bad_items(message_zh: str, message_en: str, code: str = "ship_items_invalid") -> ValidationFailed:
    return ValidationFailed(code, message_zh, message_en, fields=[{"field": "items", "message": message_en}])


def _plan(lines: Sequence[OrderLine], parts: Sequence[OrderFulfilment], items: Sequence[FulfilmentItem],
          fulfilment_id: int | None, wanted: Sequence[tuple[int, int]] | None,
          held: dict[tuple[int, int], int] | None = None) -> list[_Step]:
    """Which units of which part items go into the parcel. ``held`` caps each part by what
    the stock reservation still holds at its location (units refunded before shipping leave
    the reservation from the last-allocated location first)."""
    by_line = {ln.id: ln for ln in lines}
    if fulfilment_id is not None:
        found = [p for p in parts if p.id == fulfilment_id]
        if not found:
            raise NotFound("fulfilment_not_found", "发货单不存在", "Fulfilment part not found")
        if found[0].kind == "virtual":
            raise ValidationFailed("fulfilment_virtual", "虚拟商品无需发货", "Virtual goods need no parcel",
                                   fields=[{"field": "fulfilment_id", "message": "a virtual part"}])
        candidates = found
    else:
        candidates = [p for p in parts if p.kind != "virtual"]
    rank = {p.id: i for i, p in enumerate(candidates)}
    part_of = {p.id: p for p in candidates}
    cand_items = sorted((it for it in items if it.fulfilment_id in rank), key=lambda it: (rank[it.fulfilment_id], it.id))
    left = {ln.id: ln.quantity - ln.shipped_qty - ln.cancelled_qty for ln in lines}
    room: dict[int, int] = {}
    stock = dict(held) if held is not None else None
    for it in cand_items:
        q = it.quantity - it.shipped_qty
        loc = part_of[it.fulfilment_id].location_id
        if stock is not None and loc is not None:
            q = min(q, stock.get((it.sku_id, loc), 0))
            stock[(it.sku_id, loc)] = stock.get((it.sku_id, loc), 0) - max(q, 0)
        room[it.id] = max(q, 0)
    steps: list[_Step] = []
    if wanted is None:
        for it in cand_items:
            q = min(room[it.id], left.get(it.order_line_id, 0))
            if q > 0:
                steps.append(_Step(part_of[it.fulfilment_id], it, by_line[it.order_line_id], q))
                left[it.order_line_id] -= q
        return steps
    merged: dict[int, int] = defaultdict(int)
    for pair in wanted:
        try:
            line_id, qty = pair
        except (TypeError, ValueError):
            raise _bad_items("每行需为（订单行、数量）", "Each item is a (line_id, qty) pair") from None
        if isinstance(line_id, bool) or isinstance(qty, bool) or not isinstance(line_id, int) or not isinstance(qty, int):
            raise _bad_items("订单行与数量需为整数", "line_id and qty are whole numbers")
        if line_id not in by_line:
            raise _bad_items("发货商品不属于该订单", "An item names a line of another order", "ship_line_not_in_order")
        if qty < 1:
            raise _bad_items("发货数量至少为 1", "qty must be at least 1")
        merged[line_id] += qty
    if not merged:
        raise _bad_items("请选择要发货的商品", "Choose at least one item")
    problems: list[dict[str, int]] = []
    for line_id in sorted(merged):
        q = merged[line_id]
        can = min(left[line_id], sum(room[it.id] for it in cand_items if it.order_line_id == line_id))
        if q > can:
            problems.append({"line_id": line_id, "requested": q, "shippable": max(can, 0)})
            continue
        for it in cand_items:
            if it.order_line_id != line_id or q == 0:
                continue
            take = min(q, room[it.id])
            if take > 0:
                steps.append(_Step(part_of[it.fulfilment_id], it, by_line[line_id], take))
                q -= take
    if problems:
        raise _exceeds(problems)
    return steps


def _exceeds(problems: list[dict[str, int]]) -> Conflict:
    return Conflict("ship_exceeds_shippable", "发货数量超过可发货数量", "More units than are left to ship",
                    extra={"lines": problems})


async def _refresh_parts(session: AsyncSession, scope: TenantScope, order_id: int, lines: Sequence[OrderLine]) -> None:
    """Each part's status from its items: shipped, partly shipped, pending, or cancelled when
    its units were all refunded before anything shipped. Derived afresh each time, since
    cancelled units come back when their after-sales case is withdrawn or rejected."""
    repo = Fulfilments(session, scope.id)
    items = await repo.items_of_order(order_id)
    left = {ln.id: ln.quantity - ln.shipped_qty - ln.cancelled_qty for ln in lines}
    for part in await repo.of_order(order_id):
        its = [it for it in items if it.fulfilment_id == part.id]
        shipped_any = any(it.shipped_qty > 0 for it in its)
        remaining = any(it.quantity > it.shipped_qty and left.get(it.order_line_id, 0) > 0 for it in its)
        if remaining:
            status = "partially_shipped" if shipped_any else "pending"
        else:
            status = "shipped" if shipped_any else "cancelled"
        if status != part.status:
            await repo.set_status(part.id, status)


def _all_shipped(lines: Sequence[OrderLine]) -> bool:
    return any(ln.shipped_qty > 0 for ln in lines) and all(ln.shipped_qty + ln.cancelled_qty >= ln.quantity for ln in lines)


async def _move_to_shipped(session: AsyncSession, scope: TenantScope, order: Order, *, note: str | None,
                           actor: Actor | None = None) -> bool:
    settings = await service.order_settings(session, scope)
    now = clock.now()
    return await move_order(session, order, "shipped", "ship", actor=actor, note=note, shipped_at=now,
                            auto_confirm_at=now + timedelta(days=settings.auto_confirm_days))


def _publish_shipped(session: AsyncSession, order: Order, shipment: Shipment | None) -> None:
    outbox.publish(session, "order.shipped", {
        "order_id": order.id, "tenant_id": order.tenant_id, "customer_id": order.customer_id, "status": order.status,
        "shipment_id": shipment.id if shipment else None, "carrier_code": shipment.carrier_code if shipment else None,
        "tracking_no": shipment.tracking_no if shipment else None,
    }, tenant_id=order.tenant_id)


async def ship(session: AsyncSession, scope: TenantScope, order_id: int, *, fulfilment_id: int | None = None,
               items: Sequence[tuple[int, int]] | None = None, carrier_code: str, tracking_no: str) -> ShipResult:
    """Hand units of a paid order to a carrier; see the module docstring."""
    carrier = _carrier(carrier_code)
    tracking = _tracking(tracking_no)
    orders = Orders(session, scope.id)
    order = await orders.fresh(order_id, for_update=True)
    if order is None:
        raise service.order_not_found()
    parcels = Shipments(session, scope.id)
    existing = await parcels.by_tracking(order.id, carrier.code, tracking)
    if existing is not None:
        return ShipResult(existing, order, False)
    if order.status not in ("paid", "partially_shipped"):
        ensure_order_transition(order.status, "shipped")
        raise Conflict("order_illegal_transition", "订单当前不能发货", "The order cannot be shipped now")
    fulfilments = Fulfilments(session, scope.id)
    lines = await orders.lines(order.id, fresh=True)
    plan = _plan(lines, await fulfilments.of_order(order.id), await fulfilments.items_of_order(order.id),
                 fulfilment_id, items, await _held_at(session, scope, order.id))
    if not plan:
        raise Conflict("nothing_to_ship", "没有可发货的商品", "Nothing is left to ship")
    now = clock.now()
    try:
        async with session.begin_nested():
            shipment = Shipment(
                tenant_id=scope.id, order_id=order.id, fulfilment_id=plan[0].part.id, carrier_code=carrier.code,
                carrier_name=carrier.name, tracking_no=tracking, status="in_transit",
                shipped_by=(current_actor().name or "")[:100] or None, shipped_at=now,
                items=[{"line_id": s.line.id, "sku_id": s.line.sku_id, "qty": s.qty, "fulfilment_id": s.part.id,
                        "title": s.line.title, "spec_text": s.line.spec_text} for s in plan],
            )
            session.add(shipment)
            await session.flush()
            for s in sorted(plan, key=lambda s: (s.line.id, s.item.id)):
                if not await orders.ship_line_units(s.line.id, s.qty) or not await fulfilments.ship_item_units(s.item.id, s.qty):
                    raise _exceeds([{"line_id": s.line.id, "requested": s.qty, "shippable": 0}])
            stock: dict[tuple[int, int], int] = defaultdict(int)
            for s in plan:
                if s.part.location_id is not None:
                    stock[(s.line.sku_id, s.part.location_id)] += s.qty
            if stock:
                await inventory_service.commit(session, scope, f"order:{order.id}",
                                               [ReservedLine(sku, loc, q) for (sku, loc), q in sorted(stock.items())],
                                               ref=f"shp:{shipment.id}")
    except IntegrityError:
        again = await parcels.by_tracking(order.id, carrier.code, tracking)
        if again is None:
            raise
        return ShipResult(again, await orders.fresh(order.id) or order, False)
    lines = await orders.lines(order.id, fresh=True)
    await _refresh_parts(session, scope, order.id, lines)
    note = f"{carrier.name} {tracking}"
    if _all_shipped(lines):
        moved = await _move_to_shipped(session, scope, order, note=note)
    elif order.status == "paid":
        moved = await move_order(session, order, "partially_shipped", "ship", note=note)
    else:
        log_order_event(session, order, "ship", note=note)
        moved = True
    if not moved:  # the row lock makes this unreachable on PostgreSQL; SQLite serialises writers
        raise Conflict("order_changed", "订单状态已变化，请刷新后重试", "The order changed meanwhile; reload and try again")
    _publish_shipped(session, order, shipment)
    audit.record(session, tenant_id=scope.id, action="orders.ship", object_type="order", object_id=order.id,
                 after={"shipment_id": shipment.id, "carrier": carrier.code, "tracking_no": tracking,
                        "items": [[s.line.id, s.qty] for s in plan], "status": order.status})
    return ShipResult(shipment, order, True)


async def refresh_shipping_status(session: AsyncSession, order: Order) -> bool:
    """Call after units of ``order`` were cancelled: if every unit not cancelled has shipped
    and the order is paid or partly shipped, it becomes ``shipped``. Returns whether it moved."""
    scope = await service.scope_for(session, order.tenant_id)
    orders = Orders(session, scope.id)
    fresh = await orders.fresh(order.id)
    if fresh is None:
        return False
    lines = await orders.lines(order.id, fresh=True)
    await _refresh_parts(session, scope, order.id, lines)
    if fresh.status not in ("paid", "partially_shipped") or not _all_shipped(lines):
        return False
    if not await _move_to_shipped(session, scope, fresh, note="其余商品已退款"):
        return False
    _publish_shipped(session, fresh, None)
    return True


async def _held_at(session: AsyncSession, scope: TenantScope, order_id: int) -> dict[tuple[int, int], int] | None:
    """Units per (SKU, location) the order's reservation still holds; None without a reservation."""
    found = await inventory_service.reservation_by_key(session, scope, f"order:{order_id}")
    if found is None:
        return None
    held: dict[tuple[int, int], int] = defaultdict(int)
    if found[0].status == "active":
        for ln in found[1]:
            held[(ln.sku_id, ln.location_id)] += ln.quantity - ln.committed
    return dict(held)


async def _still_reserved(session: AsyncSession, scope: TenantScope, order_id: int) -> dict[int, int]:
    """Units per SKU the order's reservation still holds (not committed, not released)."""
    found = await inventory_service.reservation_by_key(session, scope, f"order:{order_id}")
    if found is None or found[0].status != "active":
        return {}
    held: dict[int, int] = defaultdict(int)
    for ln in found[1]:
        held[ln.sku_id] += ln.quantity - ln.committed
    return held


async def deliver_virtual(session: AsyncSession, scope: TenantScope, order: Order, *, actor: Actor | None = None) -> None:
    """Virtual goods are delivered the moment the order is paid: their units count as
    shipped, their reserved stock is committed, and an order of nothing else completes."""
    orders = Orders(session, scope.id)
    fulfilments = Fulfilments(session, scope.id)
    parts = [p for p in await fulfilments.of_order(order.id) if p.kind == "virtual" and p.status == "pending"]
    if parts:
        ids = {p.id for p in parts}
        left = {ln.id: ln.quantity - ln.shipped_qty - ln.cancelled_qty for ln in await orders.lines(order.id, fresh=True)}
        stock: dict[int, int] = defaultdict(int)
        for it in await fulfilments.items_of_order(order.id):
            q = min(it.quantity - it.shipped_qty, left.get(it.order_line_id, 0))
            if it.fulfilment_id not in ids or q <= 0:
                continue
            if await orders.ship_line_units(it.order_line_id, q) and await fulfilments.ship_item_units(it.id, q):
                stock[it.sku_id] += q
        held = await _still_reserved(session, scope, order.id)
        commit = [(sku, min(q, held.get(sku, 0))) for sku, q in sorted(stock.items())]
        commit = [(sku, q) for sku, q in commit if q > 0]
        if commit:
            await inventory_service.commit(session, scope, f"order:{order.id}", commit, ref=f"virtual:{order.id}")
        for p in parts:
            await fulfilments.set_status(p.id, "shipped")
    lines = await orders.lines(order.id, fresh=True)
    if lines and all(not ln.requires_shipping for ln in lines) and order.status == "paid":
        now = clock.now()
        if await move_order(session, order, "completed", "complete", actor=actor, note="虚拟商品无需发货",
                            delivered_at=now, completed_at=now):
            _publish_completed(session, order, "virtual")


# -- bulk shipping -------------------------------------------------------------------------------------

MAX_BULK_ROWS = 5000
_HEADERS = {
    "order_no": ("订单号", "订单编号", "order_no"),
    "carrier": ("物流公司", "快递公司", "carrier", "carrier_code"),
    "tracking_no": ("运单号", "快递单号", "物流单号", "tracking_no"),
}


@dataclass
class BulkShipRow:
    row: int
    order_no: str
    carrier: str
    tracking_no: str
    result: str  # shipped | already_shipped | error
    code: str | None = None
    message: str | None = None
    shipment_id: int | None = None


@dataclass
class BulkShipReport:
    rows: int = 0
    shipped: int = 0
    already_shipped: int = 0
    errors: int = 0
    results: list[BulkShipRow] = field(default_factory=list)


def _decode(data: bytes) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise ValidationFailed("bulk_ship_encoding", "文件需为 UTF-8 或 GBK 编码的 CSV", "The file must be CSV in UTF-8 or GBK")


def _uncell(text: str | None) -> str:
    value = (text or "").strip().strip("\t")
    if len(value) > 1 and value[0] == "'":
        value = value[1:]
    return value.strip()


def _columns(header: list[str]) -> dict[str, int]:
    names = [_uncell(h).lower() for h in header]
    out: dict[str, int] = {}
    for key, options in _HEADERS.items():
        for i, name in enumerate(names):
            if name in {o.lower() for o in options}:
                out[key] = i
                break
    missing = [_HEADERS[k][0] for k in _HEADERS if k not in out]
    if missing:
        raise ValidationFailed("bulk_ship_header", "表头需包含：订单号、物流公司、运单号（缺少 " + "、".join(missing) + "）",
                               "The header row needs the columns 订单号, 物流公司, 运单号")
    return out


async def bulk_ship_csv(session: AsyncSession, scope: TenantScope, data: bytes) -> BulkShipReport:
    """Ship many orders from a CSV file; see the module docstring."""
    reader = csv.reader(io.StringIO(_decode(data)))
    try:
        rows = [r for r in reader]
    except csv.Error as exc:
        raise ValidationFailed("bulk_ship_unreadable", "无法读取 CSV 文件", f"The CSV cannot be read: {exc}") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ValidationFailed("bulk_ship_empty", "文件是空的", "The file is empty")
    cols = _columns(rows[0])
    body = rows[1:]
    if len(body) > MAX_BULK_ROWS:
        raise ValidationFailed("bulk_ship_too_many", f"一次最多 {MAX_BULK_ROWS} 行", f"At most {MAX_BULK_ROWS} rows at once")
    report = BulkShipReport(rows=len(body))
    for n, raw in enumerate(body, start=2):
        def cell(key: str, raw: list[str] = raw) -> str:
            i = cols[key]
            return _uncell(raw[i]) if i < len(raw) else ""

        res = BulkShipRow(row=n, order_no=cell("order_no")[:40], carrier=cell("carrier")[:40],
                          tracking_no=cell("tracking_no")[:60], result="error")
        try:
            if not res.order_no:
                raise ValidationFailed("order_no_missing", "缺少订单号", "The order number is missing")
            if "E+" in res.order_no.upper() or not res.order_no.isdigit():
                raise ValidationFailed("order_no_invalid", "订单号格式不正确（请将该列设为文本格式）",
                                       "The order number is malformed (format the column as text)")
            carrier = carrier_for(res.carrier)
            if carrier is None:
                raise ValidationFailed("carrier_unknown", f"物流公司「{res.carrier}」无效", f"Unknown carrier {res.carrier!r}")
            async with session.begin_nested():
                order = await service.order_by_no(session, scope, res.order_no)
                out = await ship(session, scope, order.id, carrier_code=carrier.code, tracking_no=res.tracking_no)
            res.shipment_id = out.shipment.id
            res.result = "shipped" if out.created else "already_shipped"
        except DomainError as exc:
            res.code, res.message = exc.code, exc.message_zh
        if res.result == "shipped":
            report.shipped += 1
        elif res.result == "already_shipped":
            report.already_shipped += 1
        else:
            report.errors += 1
        report.results.append(res)
    return report


# -- delivery and completion -------------------------------------------------------------------------------


def _publish_completed(session: AsyncSession, order: Order, how: str) -> None:
    outbox.publish(session, "order.completed", {"order_id": order.id, "tenant_id": order.tenant_id,
                                                "customer_id": order.customer_id, "how": how}, tenant_id=order.tenant_id)


async def _deliver(session: AsyncSession, scope: TenantScope, order: Order, action: str, actor: Actor | None,
                   note: str | None = None) -> bool:
    now = clock.now()
    if not await move_order(session, order, "delivered", action, actor=actor, note=note, delivered_at=now):
        return False
    await Shipments(session, scope.id).mark_delivered(order.id, now)
    outbox.publish(session, "order.delivered", {"order_id": order.id, "tenant_id": order.tenant_id,
                                                "customer_id": order.customer_id}, tenant_id=order.tenant_id)
    return True


async def _complete(session: AsyncSession, scope: TenantScope, order: Order, *, how: str, actor: Actor | None) -> bool:
    """shipped → delivered → completed, or delivered → completed. False if another
    transaction moved the order first."""
    if order.status == "shipped" and not await _deliver(session, scope, order, "deliver", actor):
        return False
    now = clock.now()
    note = "买家确认收货" if how == "confirm" else "超时自动确认收货"
    if not await move_order(session, order, "completed", "confirm" if how == "confirm" else "auto_confirm",
                            actor=actor, note=note, completed_at=now):
        return False
    _publish_completed(session, order, how)
    return True


async def confirm_receipt(session: AsyncSession, scope: TenantScope, order_id: int, customer_id: int) -> Order:
    """The shopper's 确认收货; 409 ``order_illegal_transition`` unless shipped or delivered."""
    order = await service.customer_order(session, scope, customer_id, order_id)
    if order.status not in ("shipped", "delivered"):
        ensure_order_transition(order.status, "delivered")
    if not await _complete(session, scope, order, how="confirm", actor=None) and order.status != "completed":
        raise Conflict("order_changed", "订单状态已变化，请刷新后重试", "The order changed meanwhile; reload and try again")
    return order


async def mark_delivered(session: AsyncSession, scope: TenantScope, order_id: int) -> Order:
    """Staff record that the parcel arrived (``shipped → delivered``)."""
    order = await service.get_order(session, scope, order_id)
    ensure_order_transition(order.status, "delivered")
    if not await _deliver(session, scope, order, "deliver", None, note="商家标记已送达"):
        raise Conflict("order_changed", "订单状态已变化，请刷新后重试", "The order changed meanwhile; reload and try again")
    audit.record(session, tenant_id=scope.id, action="orders.deliver", object_type="order", object_id=order.id,
                 before={"status": "shipped"}, after={"status": order.status})
    return order


async def auto_confirm_due(session: AsyncSession, *, now: datetime | None = None, limit: int = 200) -> int:
    """Complete shipped or delivered orders past ``auto_confirm_at`` in every tenant; returns
    how many. Each order in its own savepoint; two sweepers complete each order once."""
    now = now or clock.now()
    scopes: dict[int, TenantScope] = {}
    done = 0
    for order_id, tenant_id in await Deadlines(session).confirm_due(now, limit):
        try:
            async with session.begin_nested():
                if tenant_id not in scopes:
                    scopes[tenant_id] = await service.scope_for(session, tenant_id)
                order = await Orders(session, tenant_id).fresh(order_id)
                if (order is None or order.status not in ("shipped", "delivered") or order.auto_confirm_at is None
                        or order.auto_confirm_at > now):
                    continue
                done += await _complete(session, scopes[tenant_id], order, how="auto", actor=service.SYSTEM_ACTOR)
        except Exception:
            log.exception("order not auto-confirmed", extra={"order_id": order_id})
    return done


def carriers() -> list[dict[str, Any]]:
    return [{"code": c.code, "name": c.name, "name_en": c.name_en} for c in CARRIERS]
