"""购物车: one cart per customer, kept as the customer's ``cart_items`` rows (one per SKU).

Adding a SKU that is already in the cart adds to its quantity. The add is one
``INSERT ... ON CONFLICT (tenant_id, customer_id, sku_id) DO UPDATE SET quantity = quantity + :q
WHERE quantity + :q <= 999`` statement on both databases, so two taps on "加入购物车" racing
each other end as one line with both quantities, never as a unique-constraint error.

Limits: at most :data:`MAX_LINES` different SKUs (checked before a new line is inserted) and
:data:`~siyu.orders.pricing.MAX_QUANTITY` units per line. Only SKUs on sale can be added; a
line whose SKU later goes off sale or out of stock stays in the cart, marked, so the shopper
sees why it cannot be bought (see :class:`CartLine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.catalog.service import SkuForSale
from siyu.inventory import service as inventory_service
from siyu.kit import clock
from siyu.kit.errors import Conflict, NotFound, ValidationFailed
from siyu.kit.tenancy import TenantRepository, TenantScope
from siyu.orders import pricing
from siyu.orders.models import CartItem

MAX_LINES = 99
MAX_QUANTITY = pricing.MAX_QUANTITY

#: Line states shown by the cart page.
LINE_STATES = {
    "ok": ("", ""),
    "short": ("库存不足", "Not enough stock"),
    "out_of_stock": ("已售罄", "Sold out"),
    "off_sale": ("已下架", "No longer for sale"),
    "gone": ("商品已失效", "This item no longer exists"),
}


class CartItems(TenantRepository[CartItem]):
    model = CartItem
    not_found_zh = "购物车商品"
    not_found_en = "Cart item"
    not_found_code = "cart_item_not_found"

    def of(self, customer_id: int) -> Any:
        return self.select().where(CartItem.customer_id == customer_id)

    async def items(self, customer_id: int) -> Sequence[CartItem]:
        return await self.list(self.of(customer_id).order_by(CartItem.created_at.desc(), CartItem.id.desc()))

    async def find(self, customer_id: int, sku_id: int) -> CartItem | None:
        stmt = self.of(customer_id).where(CartItem.sku_id == sku_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def line_count(self, customer_id: int) -> int:
        stmt = select(func.count()).select_from(CartItem).where(CartItem.tenant_id == self.tenant_id,
                                                                CartItem.customer_id == customer_id)
        return int((await self.session.execute(stmt)).scalar_one())

    async def totals(self, customer_id: int) -> tuple[int, int]:
        stmt = select(func.count(), func.coalesce(func.sum(CartItem.quantity), 0)).where(
            CartItem.tenant_id == self.tenant_id, CartItem.customer_id == customer_id)
        lines, qty = (await self.session.execute(stmt)).one()
        return int(lines), int(qty)

    async def upsert_add(self, customer_id: int, sku_id: int, quantity: int) -> tuple[int, int] | None:
        """Insert or add to the line; ``None`` when the sum would pass the per-line limit."""
        if self.session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(CartItem)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(CartItem)
        now = clock.now()
        stmt = stmt.values(tenant_id=self.tenant_id, customer_id=customer_id, sku_id=sku_id, quantity=quantity,
                           selected=True, created_at=now, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[CartItem.tenant_id, CartItem.customer_id, CartItem.sku_id],
            set_={"quantity": CartItem.quantity + stmt.excluded.quantity, "selected": True, "updated_at": now},
            where=(CartItem.quantity + stmt.excluded.quantity) <= MAX_QUANTITY,
        ).returning(CartItem.id, CartItem.quantity)
        row = (await self.session.execute(stmt)).first()
        return (int(row[0]), int(row[1])) if row is not None else None

    async def change(self, customer_id: int, item_ids: Sequence[int] | None, **values: Any) -> int:
        stmt = update(CartItem).where(CartItem.tenant_id == self.tenant_id, CartItem.customer_id == customer_id)
        if item_ids is not None:
            stmt = stmt.where(CartItem.id.in_(list(item_ids)))
        result = await self.session.execute(stmt.values(updated_at=clock.now(), **values)
                                            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def remove(self, customer_id: int, *, item_ids: Sequence[int] | None = None,
                     sku_ids: Sequence[int] | None = None) -> int:
        stmt = delete(CartItem).where(CartItem.tenant_id == self.tenant_id, CartItem.customer_id == customer_id)
        if item_ids is not None:
            stmt = stmt.where(CartItem.id.in_(list(item_ids)))
        if sku_ids is not None:
            stmt = stmt.where(CartItem.sku_id.in_(list(sku_ids)))
        result = await self.session.execute(stmt.execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]


def _bad_quantity(quantity: int) -> ValidationFailed:
    return ValidationFailed("invalid_quantity", f"数量需为 1–{MAX_QUANTITY} 的整数",
                            f"Quantity must be a whole number from 1 to {MAX_QUANTITY}",
                            fields=[{"field": "quantity", "message": f"1–{MAX_QUANTITY}, got {quantity}"}])


def _check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise _bad_quantity(quantity)


async def _sku_for_sale(session: AsyncSession, scope: TenantScope, sku_id: int) -> SkuForSale:
    sku = await catalog_service.get_sku(session, scope, sku_id)  # 404 sku_not_found for unknown / other tenants'
    if not sku.on_sale:
        raise Conflict("sku_not_on_sale", "该商品已下架或不可购买", "This item is not for sale", extra={"sku_id": sku_id})
    return sku


async def add_item(session: AsyncSession, scope: TenantScope, customer_id: int, sku_id: int, quantity: int = 1) -> CartItem:
    """Put ``quantity`` units of a SKU in the cart (added to what is there); the line is selected."""
    _check_quantity(quantity)
    await _sku_for_sale(session, scope, sku_id)
    repo = CartItems(session, scope.id)
    if await repo.find(customer_id, sku_id) is None and await repo.line_count(customer_id) >= MAX_LINES:
        raise Conflict("cart_full", f"购物车最多放 {MAX_LINES} 种商品，请先清理", f"A cart holds at most {MAX_LINES} different items")
    row = await repo.upsert_add(customer_id, sku_id, quantity)
    if row is None:
        raise Conflict("cart_quantity_limit", f"每种商品最多购买 {MAX_QUANTITY} 件",
                       f"At most {MAX_QUANTITY} units of one item", extra={"sku_id": sku_id})
    item = await session.get(CartItem, row[0], populate_existing=True)
    assert item is not None
    return item


async def get_item(session: AsyncSession, scope: TenantScope, customer_id: int, item_id: int) -> CartItem:
    item = await CartItems(session, scope.id).get(item_id)
    if item is None or item.customer_id != customer_id:
        raise NotFound("cart_item_not_found", "购物车中没有这件商品", "Cart item not found")
    return item


async def update_item(session: AsyncSession, scope: TenantScope, customer_id: int, item_id: int, *,
                      quantity: int | None = None, selected: bool | None = None) -> CartItem:
    """Set a line's quantity and/or selection (the quantity replaces, it does not add)."""
    values: dict[str, Any] = {}
    if quantity is not None:
        _check_quantity(quantity)
        values["quantity"] = quantity
    if selected is not None:
        values["selected"] = selected
    item = await get_item(session, scope, customer_id, item_id)
    if values:
        await CartItems(session, scope.id).change(customer_id, [item_id], **values)
        await session.refresh(item)
    return item


async def remove_items(session: AsyncSession, scope: TenantScope, customer_id: int, item_ids: Sequence[int]) -> int:
    """Remove lines; ids that are not in this customer's cart are ignored. Returns how many went."""
    if not item_ids:
        return 0
    return await CartItems(session, scope.id).remove(customer_id, item_ids=sorted(set(item_ids)))


async def select_items(session: AsyncSession, scope: TenantScope, customer_id: int, item_ids: Sequence[int] | None,
                       selected: bool) -> int:
    """Tick or untick lines (``item_ids=None``: every line)."""
    return await CartItems(session, scope.id).change(customer_id, None if item_ids is None else sorted(set(item_ids)),
                                                     selected=selected)


async def remove_skus(session: AsyncSession, scope: TenantScope, customer_id: int, sku_ids: Sequence[int]) -> int:
    """Take SKUs out of the cart (after they were ordered)."""
    if not sku_ids:
        return 0
    return await CartItems(session, scope.id).remove(customer_id, sku_ids=sorted(set(sku_ids)))


async def count(session: AsyncSession, scope: TenantScope, customer_id: int) -> tuple[int, int]:
    """(lines, units) in the cart, for the storefront badge."""
    return await CartItems(session, scope.id).totals(customer_id)


async def selected_lines(session: AsyncSession, scope: TenantScope, customer_id: int) -> list[tuple[int, int]]:
    """``(sku_id, quantity)`` of the selected lines, oldest first (what "去结算" buys)."""
    items = [i for i in await CartItems(session, scope.id).items(customer_id) if i.selected]
    if not items:
        raise ValidationFailed("cart_empty", "购物车中没有选中的商品", "No items are selected in the cart",
                               fields=[{"field": "from_cart", "message": "no selected items"}])
    return [(i.sku_id, i.quantity) for i in reversed(items)]


@dataclass(slots=True)
class CartLine:
    item: CartItem
    sku: SkuForSale | None
    available: int
    #: ok | short | out_of_stock | off_sale | gone (see :data:`LINE_STATES`).
    state: str

    @property
    def buyable(self) -> bool:
        return self.state == "ok"

    @property
    def state_zh(self) -> str:
        return LINE_STATES[self.state][0]

    @property
    def state_en(self) -> str:
        return LINE_STATES[self.state][1]


@dataclass(slots=True)
class CartView:
    lines: list[CartLine]
    #: The price of the selected buyable lines (no address yet: freight not quoted), or None.
    quote: pricing.Quote | None

    @property
    def quantity(self) -> int:
        return sum(ln.item.quantity for ln in self.lines)

    @property
    def selected_count(self) -> int:
        return sum(ln.item.quantity for ln in self.lines if ln.item.selected and ln.buyable)


def _state(sku: SkuForSale | None, quantity: int, available: int) -> str:
    if sku is None:
        return "gone"
    if not sku.on_sale:
        return "off_sale"
    if available <= 0:
        return "out_of_stock"
    if available < quantity:
        return "short"
    return "ok"


async def view(session: AsyncSession, scope: TenantScope, customer_id: int, *, options: dict[str, Any] | None = None) -> CartView:
    """The cart with current SKU facts and stock, newest line first, and the selected lines priced."""
    items = await CartItems(session, scope.id).items(customer_id)
    ids = [i.sku_id for i in items]
    skus = await catalog_service.skus_for_sale(session, scope, ids) if ids else {}
    stock = await inventory_service.available(session, scope, ids) if ids else {}
    lines = [CartLine(i, skus.get(i.sku_id), stock.get(i.sku_id, 0), _state(skus.get(i.sku_id), i.quantity,
                                                                           stock.get(i.sku_id, 0))) for i in items]
    chosen = [ln for ln in reversed(lines) if ln.item.selected and ln.buyable]
    quote = None
    if chosen:
        quote = await pricing.price(session, scope, customer_id=customer_id, options=options,
                                    lines=[(ln.item.sku_id, ln.item.quantity) for ln in chosen],
                                    skus={ln.item.sku_id: ln.sku for ln in chosen if ln.sku is not None})
    return CartView(lines, quote)
