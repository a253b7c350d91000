"""下单: turn a priced cart into an order in ``pending_payment``, holding its stock.

:func:`place_order` is all or nothing. In one savepoint it

1. answers a repeated ``Idempotency-Key`` with the order it already made (same request
   hash) or ``409 idempotency_key_reused`` (another body);
2. checks the lines and, when anything ships, the customer's own address
   (``422 address_required`` / ``404 address_not_found``);
3. prices the lines with :func:`siyu.orders.pricing.price` (the client never sends a price);
4. inserts the order row **first** (``INSERT ... ON CONFLICT DO NOTHING RETURNING``): the
   unique constraints decide the races. Two attempts with one key: on PostgreSQL the second
   waits on the unique index until the first commits, inserts nothing, and reads the
   winner; on SQLite writers are serialised and the second finds the winner in step 1. An
   order number that is taken (``uq_orders_no``) is drawn again. Because the loser stops
   before it reserved anything, it never holds stock;
5. reserves the stock of every line with :func:`siyu.inventory.service.reserve` under
   ``order:<id>`` (a shortage is one ``409 out_of_stock`` listing the short lines, and the
   savepoint takes the order row back with it);
6. writes the lines (snapshots of title, spec, image, prices and the per-line discounts and
   freight), one fulfilment part per stock location from the reservation plan (a line split
   over two locations has an item in each) and one ``virtual`` part without a location for
   the lines that ship nothing; the transition row ``new → pending_payment`` (``place``);
   the outbox event ``order.placed``; and takes the ordered SKUs out of the cart when the
   order came from it.

Lines, parts and items are each one multi-row ``INSERT ... RETURNING`` and the rows come
back matched by their natural keys (a line's SKU, a part's ``seq``, an item's part and
line), so no database has to return them in order. Placement is one short write
transaction per order, and on SQLite every writer waits for it: each statement saved is
throughput (see ``docs/performance.md``).

Virtual goods are reserved like the others (their stock is counted too); only their
fulfilment part has no location.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog.service import SkuForSale
from siyu.customers import service as customers_service
from siyu.inventory import service as inventory_service
from siyu.kit import clock, outbox
from siyu.kit.errors import Conflict, ValidationFailed
from siyu.kit.tenancy import TenantRepository, TenantScope
from siyu.orders import cart, pricing, states
from siyu.orders.models import FulfilmentItem, Order, OrderFulfilment, OrderLine

PLACED_TOPIC = "order.placed"
CHANNELS = ("h5", "mini_program", "api", "demo")
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_ORDER_NO_ATTEMPTS = 8


# Statements run on every placement, built once (building and fingerprinting a statement
# costs SQLAlchemy more CPU than the database takes to run it).
_BY_KEY = (select(Order).where(Order.tenant_id == bindparam("tenant_id"), Order.customer_id == bindparam("customer_id"),
                               Order.idempotency_key == bindparam("key"))
           .execution_options(populate_existing=True))
_INSERT_LINES = insert(OrderLine).returning(OrderLine)
_INSERT_PARTS = insert(OrderFulfilment).returning(OrderFulfilment)
_INSERT_ITEMS = insert(FulfilmentItem).returning(FulfilmentItem)


class Orders(TenantRepository[Order]):
    model = Order
    not_found_zh = "订单"
    not_found_en = "Order"
    not_found_code = "order_not_found"

    async def by_idempotency_key(self, customer_id: int, key: str) -> Order | None:
        params = {"tenant_id": self.tenant_id, "customer_id": customer_id, "key": key}
        return (await self.session.execute(_BY_KEY, params)).scalar_one_or_none()

    async def contents(self, order_id: int) -> tuple[Sequence[OrderLine], Sequence[OrderFulfilment], Sequence[FulfilmentItem]]:
        lines = (await self.session.execute(select(OrderLine).where(
            OrderLine.tenant_id == self.tenant_id, OrderLine.order_id == order_id).order_by(OrderLine.id))).scalars().all()
        parts = (await self.session.execute(select(OrderFulfilment).where(
            OrderFulfilment.tenant_id == self.tenant_id, OrderFulfilment.order_id == order_id)
            .order_by(OrderFulfilment.seq))).scalars().all()
        items = (await self.session.execute(select(FulfilmentItem).where(
            FulfilmentItem.tenant_id == self.tenant_id, FulfilmentItem.order_id == order_id)
            .order_by(FulfilmentItem.id))).scalars().all()
        return lines, parts, items

    async def no_taken(self, order_no: str) -> bool:
        stmt = select(Order.id).where(Order.tenant_id == self.tenant_id, Order.order_no == order_no)
        return (await self.session.execute(stmt)).first() is not None


@dataclass(frozen=True, slots=True)
class Placed:
    order: Order
    #: False when an earlier request with the same Idempotency-Key made the order.
    created: bool


_JUST_PLACED = "siyu_orders_just_placed"

#: Called inside the placement savepoint once the order and its lines are written, in
#: registration order: the modules whose offers cost the shopper something (points, stored
#: value, points-mall stock, coupons) take it here, so a shortfall (409) undoes the order too.
PlacementHook = Callable[[AsyncSession, TenantScope, Order, "pricing.Quote", list[OrderLine]], Awaitable[None]]
_placement_hooks: list[PlacementHook] = []


def register_placement_hook(fn: PlacementHook) -> PlacementHook:
    """Run ``fn(session, scope, order, quote, lines)`` at every placement (once per function)."""
    if fn not in _placement_hooks:
        _placement_hooks.append(fn)
    return fn


def unregister_placement_hook(fn: PlacementHook) -> None:
    if fn in _placement_hooks:
        _placement_hooks.remove(fn)


def _payment_offers(quote: pricing.Quote) -> dict[str, int]:
    """Points used, what they paid, and what stored value paid (from the applied offers)."""
    points_fen = sum(o.fen for o in quote.offers if o.applied and o.step == "points")
    points_used = sum(int(o.data.get("points", 0)) for o in quote.offers if o.applied and o.step == "points")
    balance_fen = sum(o.fen for o in quote.offers if o.applied and o.step == "balance")
    return {"points_used": points_used, "points_fen": points_fen, "balance_fen": balance_fen}


async def order_contents(session: AsyncSession, scope: TenantScope, order_id: int,
                         ) -> tuple[Sequence[OrderLine], Sequence[OrderFulfilment], Sequence[FulfilmentItem]]:
    """The lines, fulfilment parts and their items of an order just placed (for the placement answer).

    An order this session has just written comes from what the insert returned (once) instead
    of three more queries; anything else is read."""
    cached = session.info.get(_JUST_PLACED, {}).pop((scope.id, order_id), None)
    if cached is not None:
        return cached
    return await Orders(session, scope.id).contents(order_id)


def check_idempotency_key(key: str | None) -> str:
    if key is None or not _KEY.match(key):
        raise ValidationFailed("invalid_idempotency_key", "请求头 Idempotency-Key 需为 1–64 位字母、数字、_ 或 -",
                               "The Idempotency-Key header must be 1–64 of A-Z a-z 0-9 _ -",
                               fields=[{"field": "Idempotency-Key", "message": "1–64 of [A-Za-z0-9_-]"}])
    return key


def request_hash(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a validated request body (sorted keys, no spaces)."""
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def new_order_no(scope: TenantScope) -> str:
    """``yymmdd`` in the tenant's time zone + 8 random digits (unique per tenant; drawn again on a clash)."""
    day = clock.now().astimezone(ZoneInfo(scope.timezone)).strftime("%y%m%d")
    return f"{day}{secrets.randbelow(10**8):08d}"


async def pay_timeout_minutes(session: AsyncSession, scope: TenantScope) -> int:
    """The tenant's unpaid-order timeout (:func:`siyu.orders.service.order_settings`).

    Imported here: the lifecycle service may use the cart and checkout, not the other way round."""
    from siyu.orders import service as order_service

    return int((await order_service.order_settings(session, scope)).pay_timeout_minutes)


def _address_snapshot(addr: Any) -> dict[str, Any]:
    return {"address_id": addr.id, "receiver_name": addr.receiver_name, "phone": addr.phone,
            "province_code": addr.province_code, "province": addr.province, "city": addr.city,
            "district": addr.district, "detail": addr.detail, "postal_code": addr.postal_code}


def _same_request(existing: Order, req_hash: str) -> Placed:
    if existing.request_hash != req_hash:
        raise Conflict("idempotency_key_reused", "该 Idempotency-Key 已用于另一笔不同的下单请求",
                       "This Idempotency-Key was already used with a different request",
                       extra={"order_id": existing.id})
    return Placed(existing, False)


@lru_cache(maxsize=4)
def _insert_order_stmt(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING`` the order (either unique constraint)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(Order).on_conflict_do_nothing().returning(Order)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(Order).on_conflict_do_nothing().returning(Order)


async def _insert_order(session: AsyncSession, scope: TenantScope, values: dict[str, Any], key: str | None,
                        req_hash: str) -> Placed:
    """Insert the order row unless a unique constraint says no; a clash on the key returns
    the winner, a clash on the number draws another. ``ON CONFLICT DO NOTHING`` rather than
    catching the error: nothing is aborted, so no savepoint is needed around the insert."""
    repo = Orders(session, scope.id)
    stmt = _insert_order_stmt(session.get_bind().dialect.name)
    for _attempt in range(_ORDER_NO_ATTEMPTS):
        values["order_no"] = new_order_no(scope)
        order = (await session.scalars(stmt, [values])).one_or_none()
        if order is not None:
            return Placed(order, True)
        if key is not None:
            winner = await repo.by_idempotency_key(values["customer_id"], key)
            if winner is not None:
                return _same_request(winner, req_hash)
    raise Conflict("order_no_exhausted", "订单号生成失败，请重试", "Could not draw a free order number; retry")


async def place(session: AsyncSession, scope: TenantScope, *, customer_id: int, lines: Sequence[tuple[int, int]] | None,
                address_id: int | None, buyer_note: str | None = None, idempotency_key: str | None = None,
                request_hash: str | None = None, channel: str = "h5", from_cart: bool = False,
                options: dict[str, Any] | None = None) -> Placed:
    """:func:`place_order`, also telling whether this call made the order (for 201 vs 200)."""
    if channel not in CHANNELS:
        raise ValidationFailed("invalid_channel", "下单渠道无效", f"channel must be one of {', '.join(CHANNELS)}",
                               fields=[{"field": "channel", "message": "unknown channel"}])
    key = check_idempotency_key(idempotency_key) if idempotency_key is not None else None
    note = (buyer_note or "").strip()[:200] or None
    req_hash = request_hash or _default_hash(lines, address_id, note, from_cart, options)
    repo = Orders(session, scope.id)
    if key is not None:
        existing = await repo.by_idempotency_key(customer_id, key)
        if existing is not None:
            return _same_request(existing, req_hash)

    merged, skus, address, province = await _resolve(session, scope, customer_id, lines, from_cart, address_id,
                                                     require_address=True)
    quote = await pricing.price(session, scope, customer_id=customer_id, lines=merged, province_code=province,
                                options=options, skus=skus, placing=True)
    now = clock.now()
    deadline = now + timedelta(minutes=await pay_timeout_minutes(session, scope))

    async with session.begin_nested():
        placed = await _insert_order(session, scope, {
            "tenant_id": scope.id, "customer_id": customer_id, "status": "pending_payment", "idempotency_key": key,
            "request_hash": req_hash if key is not None else None, "channel": channel, "goods_fen": quote.goods_fen,
            "discount_fen": quote.discount_fen, "freight_fen": quote.freight_fen, "payable_fen": quote.payable_fen,
            "item_count": quote.item_count, "requires_shipping": quote.requires_shipping, "address": address,
            "buyer_note": note, "pricing": quote.breakdown(), "pay_deadline": deadline, "created_at": now,
            "updated_at": now, **_payment_offers(quote),
        }, key, req_hash)
        if not placed.created:
            return placed
        order = placed.order
        plan = await inventory_service.reserve(session, scope, f"order:{order.id}",
                                               [(ln.sku_id, ln.quantity) for ln in quote.lines])
        order_lines = await _lines(session, scope, order, quote)
        parts, items = await _fulfilments(session, scope, order, order_lines, plan)
        for hook in list(_placement_hooks):
            await hook(session, scope, order, quote, order_lines)
        states.log_creation(session, order)
        outbox.publish(session, PLACED_TOPIC, {"order_id": order.id, "tenant_id": scope.id, "customer_id": customer_id,
                                               "payable_fen": order.payable_fen}, tenant_id=scope.id)
        if from_cart:
            await cart.remove_skus(session, scope, customer_id, [ln.sku_id for ln in quote.lines])
        await session.flush()
    session.info.setdefault(_JUST_PLACED, {})[(scope.id, order.id)] = (order_lines, parts, items)
    return placed


async def place_order(session: AsyncSession, scope: TenantScope, *, customer_id: int,
                      lines: Sequence[tuple[int, int]] | None, address_id: int | None, buyer_note: str | None = None,
                      idempotency_key: str | None = None, request_hash: str | None = None, channel: str = "h5",
                      from_cart: bool = False, options: dict[str, Any] | None = None) -> Order:
    """Create an order in ``pending_payment`` (see the module docstring); returns the order
    an earlier request with the same key and body made, if any."""
    placed = await place(session, scope, customer_id=customer_id, lines=lines, address_id=address_id,
                         buyer_note=buyer_note, idempotency_key=idempotency_key, request_hash=request_hash,
                         channel=channel, from_cart=from_cart, options=options)
    return placed.order


async def _resolve(session: AsyncSession, scope: TenantScope, customer_id: int, lines: Sequence[tuple[int, int]] | None,
                   from_cart: bool, address_id: int | None, *, require_address: bool,
                   ) -> tuple[list[tuple[int, int]], dict[int, SkuForSale], dict[str, Any], str | None]:
    """Lines (merged, checked), their SKUs, the address snapshot and its province."""
    if from_cart:
        if lines:
            raise ValidationFailed("lines_with_from_cart", "从购物车下单时不能同时指定商品", "Send either lines or from_cart, not both",
                                   fields=[{"field": "lines", "message": "not allowed with from_cart"}])
        lines = await cart.selected_lines(session, scope, customer_id)
    merged = pricing.merge_lines(list(lines or []))
    skus = await pricing.load_skus(session, scope, merged)
    ships = any(skus[s].requires_shipping for s, _q in merged)
    if address_id is None:
        if ships and require_address:
            raise ValidationFailed("address_required", "请选择收货地址", "Choose a delivery address",
                                   fields=[{"field": "address_id", "message": "required for goods that ship"}])
        return merged, skus, {}, None
    addr = await customers_service.get_address(session, scope, customer_id, address_id)
    if not ships:
        return merged, skus, {}, None
    return merged, skus, _address_snapshot(addr), addr.province_code


async def preview(session: AsyncSession, scope: TenantScope, *, customer_id: int, lines: Sequence[tuple[int, int]] | None,
                  address_id: int | None = None, from_cart: bool = False, options: dict[str, Any] | None = None,
                  ) -> pricing.Quote:
    """What :func:`place_order` would charge now (no address yet: freight not quoted)."""
    merged, skus, _address, province = await _resolve(session, scope, customer_id, lines, from_cart, address_id,
                                                      require_address=False)
    return await pricing.price(session, scope, customer_id=customer_id, lines=merged, province_code=province,
                               options=options, skus=skus)


def _default_hash(lines: Sequence[tuple[int, int]] | None, address_id: int | None, note: str | None, from_cart: bool,
                  options: dict[str, Any] | None) -> str:
    return request_hash({"lines": [[int(s), int(q)] for s, q in (lines or [])], "address_id": address_id,
                         "buyer_note": note, "from_cart": from_cart, "options": options or {}})


async def _lines(session: AsyncSession, scope: TenantScope, order: Order, quote: pricing.Quote) -> list[OrderLine]:
    """The order lines in quote order (one INSERT; a line's SKU is unique within the order)."""
    rows = [{
        "tenant_id": scope.id, "order_id": order.id, "sku_id": ln.sku_id, "product_id": ln.sku.product_id,
        "sku_code": ln.sku.code[:64], "title": ln.sku.title[:120], "spec_text": (ln.sku.spec_text or "")[:200],
        "image": ln.sku.image, "kind": ln.sku.kind, "requires_shipping": ln.requires_shipping,
        "unit_price_fen": ln.unit_price_fen, "quantity": ln.quantity, "subtotal_fen": ln.subtotal_fen,
        "discount_fen": ln.discount_fen, "freight_fen": ln.freight_fen, "paid_fen": ln.paid_fen,
        "discounts": ln.discounts,
    } for ln in quote.lines]
    by_sku = {ln.sku_id: ln for ln in await _insert_all(session, _INSERT_LINES, rows)}
    return sorted((by_sku[ln.sku_id] for ln in quote.lines), key=lambda ln: ln.id)


async def _insert_all(session: AsyncSession, stmt: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert ``rows`` in one statement and return the new objects (in no particular order)."""
    if not rows:
        return []
    return list((await session.scalars(stmt, rows)).all())


async def _fulfilments(session: AsyncSession, scope: TenantScope, order: Order, lines: Sequence[OrderLine],
                       plan: Sequence[inventory_service.ReservedLine],
                       ) -> tuple[list[OrderFulfilment], list[FulfilmentItem]]:
    """One part per location (in the plan's order) for lines that ship, one ``virtual`` part for the rest."""
    by_sku = {ln.sku_id: ln for ln in lines}
    per_location: dict[int, list[tuple[OrderLine, int]]] = defaultdict(list)
    for r in plan:
        ln = by_sku[r.sku_id]
        if ln.requires_shipping:
            per_location[r.location_id].append((ln, r.qty))
    groups: list[tuple[int | None, str, list[tuple[OrderLine, int]]]] = [
        (location_id, "ship", items) for location_id, items in per_location.items()]
    virtual = [(ln, ln.quantity) for ln in lines if not ln.requires_shipping]
    if virtual:
        groups.append((None, "virtual", virtual))
    now = clock.now()
    by_seq = {p.seq: p for p in await _insert_all(session, _INSERT_PARTS, [
        {"tenant_id": scope.id, "order_id": order.id, "seq": seq, "location_id": location_id, "kind": kind,
         "status": "pending", "created_at": now, "updated_at": now}
        for seq, (location_id, kind, _items) in enumerate(groups, start=1)])}
    parts = [by_seq[seq] for seq in range(1, len(groups) + 1)]
    items = await _insert_all(session, _INSERT_ITEMS, [
        {"tenant_id": scope.id, "fulfilment_id": part.id, "order_id": order.id, "order_line_id": ln.id,
         "sku_id": ln.sku_id, "quantity": qty}
        for part, (_loc, _kind, group) in zip(parts, groups, strict=True) for ln, qty in group])
    items.sort(key=lambda it: it.id)
    return parts, items
