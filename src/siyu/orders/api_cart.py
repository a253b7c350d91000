"""Store API: the cart, the checkout price preview and placing an order.

Every request body refuses unknown fields (``extra="forbid"``), so a client that sends a
price, a discount or a total gets a 422 instead of having it silently ignored: amounts are
computed on the server only.

``POST /orders`` needs an ``Idempotency-Key`` header (1–64 of ``[A-Za-z0-9_-]``). The first
request with a key answers **201** with the new order; repeating it with the same body
answers **200** with that same order (nothing is placed twice); the same key with another
body is ``409 idempotency_key_reused``. A missing key is ``400 idempotency_key_required``,
a malformed one ``422 invalid_idempotency_key``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit.errors import BadRequest
from siyu.kit.types import ObjectId, PathId, ShortText
from siyu.kit.web import UoW, problem_responses
from siyu.orders import cart, checkout, pricing
from siyu.orders.models import CartItem, FulfilmentItem, Order

store = APIRouter(prefix="/api/store/v1/{shop}", tags=["store: cart & checkout"],
                  responses=problem_responses(400, 401, 403, 404, 409, 422))

Quantity = Annotated[int, Field(ge=1, le=pricing.MAX_QUANTITY, description=f"Units, 1–{pricing.MAX_QUANTITY}")]
OptionKey = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
OptionValue = StrictBool | Annotated[StrictInt, Field(ge=-(2**53), le=2**53)] | ShortText | None


def _cid(me: ShopperSession) -> int:
    assert me.customer is not None  # CurrentShopper guarantees a signed-in customer
    return me.customer.id


# -- schemas ---------------------------------------------------------------------------------------


class CartAddIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"sku_id": 1, "quantity": 2}]})

    sku_id: ObjectId = Field(description="The SKU to add; must be on sale")
    quantity: Quantity = 1


class CartItemUpdate(BaseModel):
    """Only the fields sent change; ``quantity`` replaces the line's quantity."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"quantity": 3}, {"selected": False}]})

    quantity: Quantity | None = None
    selected: bool | None = Field(default=None, description="Ticked for checkout")


class CartItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"item_ids": [1, 2]}]})

    item_ids: list[ObjectId] = Field(min_length=1, max_length=cart.MAX_LINES, description="Cart item ids")


class CartSelectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"selected": True},
                                                                             {"item_ids": [1], "selected": False}]})

    item_ids: list[ObjectId] | None = Field(default=None, max_length=cart.MAX_LINES,
                                            description="Cart item ids; omitted or null: every line")
    selected: bool = Field(description="Tick (true) or untick (false)")


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku_id: ObjectId
    quantity: Quantity


class CheckoutIn(BaseModel):
    """Either ``lines`` (buy now) or ``from_cart: true`` (the selected cart lines)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"lines": [{"sku_id": 1, "quantity": 2}], "address_id": 1},
        {"from_cart": True, "address_id": 1, "options": {"coupon_id": 12}},
    ]})

    lines: list[LineIn] | None = Field(default=None, max_length=pricing.MAX_LINES, description="What to buy")
    from_cart: bool = Field(default=False, description="Buy the selected cart lines instead of ``lines``")
    address_id: ObjectId | None = Field(default=None, description="One of the shopper's addresses; needed to quote "
                                                                 "freight, and to order goods that ship")
    options: dict[OptionKey, OptionValue] = Field(default_factory=dict, max_length=20,
                                                  description="Choices for offers (coupon_id, points, use_balance...)")

    @model_validator(mode="after")
    def _one_source(self) -> CheckoutIn:
        if self.from_cart == bool(self.lines):
            raise ValueError("send either a non-empty lines list or from_cart: true")
        return self

    def pairs(self) -> list[tuple[int, int]] | None:
        return [(ln.sku_id, ln.quantity) for ln in self.lines] if self.lines else None


class PlaceOrderIn(CheckoutIn):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"lines": [{"sku_id": 1, "quantity": 2}], "address_id": 1, "buyer_note": "请周末送达"},
        {"from_cart": True, "address_id": 1, "options": {"coupon_id": 12}},
    ]})

    buyer_note: ShortText | None = Field(default=None, description="买家留言, at most 200 characters")


class LineDiscountOut(BaseModel):
    code: str
    label: str
    label_en: str
    fen: int = Field(description="What this offer took off this line")


class QuoteLineOut(BaseModel):
    sku_id: int
    product_id: int
    title: str
    spec_text: str
    image: str | None
    kind: str
    requires_shipping: bool
    unit_price_fen: int
    quantity: int
    subtotal_fen: int = Field(description="unit_price_fen × quantity")
    discount_fen: int
    freight_fen: int
    paid_fen: int = Field(description="subtotal_fen − discount_fen + freight_fen")
    discounts: list[LineDiscountOut]


class OfferOut(BaseModel):
    step: str = Field(description="member | promotion | coupon | points | balance")
    code: str
    label: str
    label_en: str
    applied: bool
    reason: str = Field(description="Why (not) applied, e.g. 还差 ¥20 可减 ¥30")
    reason_en: str
    fen: int = Field(description="What it took off the order")
    data: dict[str, Any] = Field(default_factory=dict, description=(
        "What the offer's module tells the page, e.g. points: available, max_points, max_fen; "
        "balance: available_fen; member: level_id, free_shipping"))


class FreightOut(BaseModel):
    fen: int
    reason: str
    reason_en: str
    quoted: bool = Field(description="False until an address is chosen")


class QuoteOut(BaseModel):
    lines: list[QuoteLineOut]
    goods_fen: int
    discount_fen: int
    freight_fen: int
    payable_fen: int = Field(description="goods_fen − discount_fen + freight_fen")
    item_count: int
    requires_shipping: bool
    offers: list[OfferOut]
    freight: FreightOut


class CartItemBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku_id: int
    quantity: int
    selected: bool


class CartItemOut(CartItemBrief):
    product_id: int | None
    title: str | None
    spec_text: str | None
    image: str | None
    price_fen: int | None = Field(description="Current price (None once the SKU is gone)")
    market_price_fen: int | None
    available: int = Field(description="Units in stock now")
    state: str = Field(description="ok | short | out_of_stock | off_sale | gone")
    state_label: str
    buyable: bool


class CartOut(BaseModel):
    items: list[CartItemOut] = Field(description="Newest first")
    quantity: int = Field(description="Units in the cart")
    selected_quantity: int = Field(description="Selected units that can be bought")
    quote: QuoteOut | None = Field(description="Price of the selected buyable lines (freight once an address is chosen)")


class CartCountOut(BaseModel):
    lines: int
    quantity: int


class OrderLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku_id: int
    title: str
    spec_text: str
    image: str | None
    unit_price_fen: int
    quantity: int
    subtotal_fen: int
    discount_fen: int
    freight_fen: int
    paid_fen: int


class FulfilmentItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    order_line_id: int
    sku_id: int
    quantity: int


class FulfilmentOut(BaseModel):
    id: int
    seq: int
    kind: str = Field(description="ship | virtual")
    location_id: int | None
    items: list[FulfilmentItemOut]


class PlacedOrderOut(BaseModel):
    id: int
    order_no: str
    status: str
    goods_fen: int
    discount_fen: int
    freight_fen: int
    payable_fen: int
    item_count: int
    requires_shipping: bool
    pay_deadline: datetime | None
    created_at: datetime
    lines: list[OrderLineOut]
    fulfilments: list[FulfilmentOut]


# -- mapping -----------------------------------------------------------------------------------------


def quote_out(q: pricing.Quote) -> QuoteOut:
    return QuoteOut(
        lines=[QuoteLineOut(
            sku_id=ln.sku_id, product_id=ln.sku.product_id, title=ln.sku.title, spec_text=ln.sku.spec_text,
            image=ln.sku.image, kind=ln.sku.kind, requires_shipping=ln.requires_shipping,
            unit_price_fen=ln.unit_price_fen, quantity=ln.quantity, subtotal_fen=ln.subtotal_fen,
            discount_fen=ln.discount_fen, freight_fen=ln.freight_fen, paid_fen=ln.paid_fen,
            discounts=[LineDiscountOut(**d) for d in ln.discounts]) for ln in q.lines],
        goods_fen=q.goods_fen, discount_fen=q.discount_fen, freight_fen=q.freight_fen, payable_fen=q.payable_fen,
        item_count=q.item_count, requires_shipping=q.requires_shipping,
        offers=[OfferOut(step=o.step, code=o.code, label=o.label_zh, label_en=o.label_en, applied=o.applied,
                         reason=o.reason_zh, reason_en=o.reason_en, fen=o.fen, data=o.data) for o in q.offers],
        freight=FreightOut(fen=q.freight.fen, reason=q.freight.reason_zh, reason_en=q.freight.reason_en,
                           quoted=q.freight.quoted),
    )


def _cart_out(v: cart.CartView) -> CartOut:
    items = []
    for ln in v.lines:
        sku = ln.sku
        items.append(CartItemOut(
            id=ln.item.id, sku_id=ln.item.sku_id, quantity=ln.item.quantity, selected=ln.item.selected,
            product_id=sku.product_id if sku else None, title=sku.title if sku else None,
            spec_text=sku.spec_text if sku else None, image=sku.image if sku else None,
            price_fen=sku.price_fen if sku else None, market_price_fen=sku.market_price_fen if sku else None,
            available=ln.available, state=ln.state, state_label=ln.state_zh, buyable=ln.buyable))
    return CartOut(items=items, quantity=v.quantity, selected_quantity=v.selected_count,
                   quote=quote_out(v.quote) if v.quote else None)


def placed_out(order: Order, lines: Any, parts: Any, items: Any) -> PlacedOrderOut:
    by_part: dict[int, list[FulfilmentItem]] = {}
    for it in items:
        by_part.setdefault(it.fulfilment_id, []).append(it)
    return PlacedOrderOut(
        id=order.id, order_no=order.order_no, status=order.status, goods_fen=order.goods_fen,
        discount_fen=order.discount_fen, freight_fen=order.freight_fen, payable_fen=order.payable_fen,
        item_count=order.item_count, requires_shipping=order.requires_shipping, pay_deadline=order.pay_deadline,
        created_at=order.created_at,
        lines=[OrderLineOut.model_validate(ln) for ln in lines],
        fulfilments=[FulfilmentOut(id=p.id, seq=p.seq, kind=p.kind, location_id=p.location_id,
                                   items=[FulfilmentItemOut.model_validate(i) for i in by_part.get(p.id, [])])
                     for p in parts],
    )


# -- cart --------------------------------------------------------------------------------------------


@store.get("/cart", response_model=CartOut, summary="My cart: every line with current price and stock, the selected lines priced")
async def get_cart(session: UoW, me: CurrentShopper) -> CartOut:
    return _cart_out(await cart.view(session, me.shop.scope, _cid(me)))


@store.get("/cart/count", response_model=CartCountOut, summary="Lines and units in my cart (for the badge)")
async def cart_count(session: UoW, me: CurrentShopper) -> CartCountOut:
    lines, qty = await cart.count(session, me.shop.scope, _cid(me))
    return CartCountOut(lines=lines, quantity=qty)


@store.post("/cart/items", response_model=CartItemBrief, status_code=201,
            summary="Add a SKU to my cart (adds to the quantity already there; 409 cart_full, cart_quantity_limit, "
                    "sku_not_on_sale)")
async def add_to_cart(body: CartAddIn, session: UoW, me: CurrentShopper) -> CartItem:
    return await cart.add_item(session, me.shop.scope, _cid(me), body.sku_id, body.quantity)


@store.patch("/cart/items/{item_id}", response_model=CartItemBrief, summary="Change a line's quantity or selection")
async def update_cart_item(item_id: PathId, body: CartItemUpdate, session: UoW, me: CurrentShopper) -> CartItem:
    return await cart.update_item(session, me.shop.scope, _cid(me), item_id, quantity=body.quantity, selected=body.selected)


@store.delete("/cart/items/{item_id}", status_code=204, summary="Remove a line from my cart")
async def delete_cart_item(item_id: PathId, session: UoW, me: CurrentShopper) -> Response:
    await cart.get_item(session, me.shop.scope, _cid(me), item_id)
    await cart.remove_items(session, me.shop.scope, _cid(me), [item_id])
    return Response(status_code=204)


@store.post("/cart/remove", response_model=CartCountOut, summary="Remove several lines (ids not in my cart are ignored)")
async def remove_cart_items(body: CartItemsIn, session: UoW, me: CurrentShopper) -> CartCountOut:
    await cart.remove_items(session, me.shop.scope, _cid(me), body.item_ids)
    lines, qty = await cart.count(session, me.shop.scope, _cid(me))
    return CartCountOut(lines=lines, quantity=qty)


@store.post("/cart/select", response_model=CartOut, summary="Tick or untick lines (all lines when item_ids is omitted)")
async def select_cart_items(body: CartSelectIn, session: UoW, me: CurrentShopper) -> CartOut:
    await cart.select_items(session, me.shop.scope, _cid(me), body.item_ids, body.selected)
    return _cart_out(await cart.view(session, me.shop.scope, _cid(me)))


# -- checkout ------------------------------------------------------------------------------------------


@store.post("/checkout/preview", response_model=QuoteOut,
            summary="Price lines or the selected cart lines: goods, offers, freight (once an address is given), payable")
async def checkout_preview(body: CheckoutIn, session: UoW, me: CurrentShopper) -> QuoteOut:
    q = await checkout.preview(session, me.shop.scope, customer_id=_cid(me), lines=body.pairs(), address_id=body.address_id,
                               from_cart=body.from_cart, options=dict(body.options))
    return quote_out(q)


@store.post("/orders", response_model=PlacedOrderOut, status_code=201,
            responses={200: {"model": PlacedOrderOut, "description": "The order an earlier request with this "
                                                                    "Idempotency-Key and body placed"}},
            summary="Place an order (Idempotency-Key header required): 201 new, 200 a repeat of the same request")
async def place_order(
    body: PlaceOrderIn, session: UoW, me: CurrentShopper, response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                                  description="1–64 of A-Z a-z 0-9 _ -; repeat it to retry safely")] = None,
) -> PlacedOrderOut:
    if idempotency_key is None or not idempotency_key.strip():
        raise BadRequest("idempotency_key_required", "下单请求需带请求头 Idempotency-Key",
                         "Placing an order needs an Idempotency-Key header")
    key = checkout.check_idempotency_key(idempotency_key)
    placed = await checkout.place(
        session, me.shop.scope, customer_id=_cid(me), lines=body.pairs(), address_id=body.address_id,
        buyer_note=body.buyer_note, idempotency_key=key, request_hash=checkout.request_hash(body.model_dump(mode="json")),
        channel="h5" if me.via == "cookie" else "api", from_cart=body.from_cart, options=dict(body.options))
    if not placed.created:
        response.status_code = 200
    lines, parts, items = await checkout.order_contents(session, me.shop.scope, placed.order.id)
    return placed_out(placed.order, lines, parts, items)


routers: list[APIRouter] = [store]
