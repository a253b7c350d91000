"""JSON endpoints of the points mall (积分商城).

* Admin (``/api/admin/v1/members/mall``): items (list, create, read, change, stock delta,
  delete), every exchange with filters, and the coupon templates an item may offer
  (``members.read`` to read, ``members.write`` to change; writes are audited).
* Store (``/api/store/v1/{shop}/member/mall``): the items on sale with what the signed-in
  member may do with each, one item, exchanging (``Idempotency-Key`` header required: 201
  new, 200 a repeat of the same request, 409 ``idempotency_key_reused`` with another body),
  and my exchanges. Another member's exchange is a 404.

A product exchange answers with its order: ``needs_payment`` says the cash part is still to
pay (``POST /api/store/v1/{shop}/orders/{order_id}/pay``); an exchange with nothing to pay is
already paid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Header, Query, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from siyu.customers.access import CurrentShopper, OptionalShopper, ShopperSession
from siyu.kit.context import current_language
from siyu.kit.errors import BadRequest
from siyu.kit.pagination import Page, Pages
from siyu.kit.types import MAX_ID, PathId, SearchText, ShortText, no_control
from siyu.kit.web import ADMIN_ERRORS, UoW, problem_responses
from siyu.members import mall, rewards
from siyu.members.models import PointsMallItem, PointsRedemption
from siyu.staff.access import StaffPrincipal, require

admin = APIRouter(prefix="/api/admin/v1/members/mall", tags=["admin: points mall"], responses=ADMIN_ERRORS)
store = APIRouter(prefix="/api/store/v1/{shop}/member/mall", tags=["store: points mall"],
                  responses=problem_responses(400, 401, 403, 404, 409, 422))

#: Every router of this part; ``members.api`` gathers them.
routers: list[APIRouter] = [admin, store]

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]
Kind = Literal["product", "coupon"]
Status = Literal["pending_payment", "completed", "cancelled", "refunded"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=mall.MAX_TITLE), AfterValidator(no_control)]
Description = Annotated[str, StringConstraints(max_length=mall.MAX_DESCRIPTION), AfterValidator(no_control)]
ImageUrl = Annotated[str, StringConstraints(strip_whitespace=True, max_length=mall.MAX_IMAGE), AfterValidator(no_control)]
Points = Annotated[int, Field(ge=1, le=mall.MAX_POINTS, description="Points per unit")]
CashFen = Annotated[int, Field(ge=0, le=mall.MAX_CASH_FEN, description="Cash per unit in fen (0: points only)")]
Stock = Annotated[int, Field(ge=0, le=mall.MAX_STOCK)]
Limit = Annotated[int, Field(ge=0, le=mall.MAX_LIMIT, description="Units per member over the item's life; 0: no limit")]
Rank = Annotated[int, Field(ge=0, le=mall.MAX_RANK, description="Lowest level rank allowed (0: everyone)")]
Sort = Annotated[int, Field(ge=0, le=mall.MAX_SORT, description="Smaller first")]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _en() -> bool:
    return current_language().startswith("en")


# -- schemas -----------------------------------------------------------------------------------------


class ItemIn(BaseModel):
    """A new item. A product names its SKU (``sku_id``), a coupon its template (``coupon_id``,
    one of ``GET .../coupon-choices``). Title and image default to the SKU's."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "product", "sku_id": 12, "points": 2000, "cash_fen": 990, "stock": 50, "per_member_limit": 2,
         "on_sale": True},
        {"kind": "coupon", "coupon_id": 3, "title": "满 100 减 10 券", "points": 500, "stock": 1000, "per_member_limit": 5,
         "min_level_rank": 1, "on_sale": True},
    ]})

    kind: Kind
    sku_id: Id | None = None
    coupon_id: Id | None = None
    title: Title = ""
    image: ImageUrl | None = None
    description: Description = ""
    points: Points
    cash_fen: CashFen = 0
    stock: Stock = 0
    per_member_limit: Limit = 0
    min_level_rank: Rank = 0
    on_sale: bool = False
    sort: Sort = 0


class ItemUpdate(BaseModel):
    """Fields left out keep their value. Stock changes by ``POST .../stock``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"points": 1800, "cash_fen": 0}, {"on_sale": False}, {"per_member_limit": 1, "min_level_rank": 2}]})

    kind: Kind | None = None
    sku_id: Id | None = None
    coupon_id: Id | None = None
    title: Title | None = None
    image: ImageUrl | None = None
    description: Description | None = None
    points: Points | None = None
    cash_fen: CashFen | None = None
    per_member_limit: Limit | None = None
    min_level_rank: Rank | None = None
    on_sale: bool | None = None
    sort: Sort | None = None


class StockIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"delta": 20}, {"delta": -5}]})

    delta: int = Field(ge=-mall.MAX_STOCK, le=mall.MAX_STOCK, description="Units to add (negative: remove); not 0")


class ExchangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"quantity": 1, "address_id": 5}, {"quantity": 2}, {"quantity": 1, "address_id": 5, "use_balance": True}]})

    quantity: int = Field(default=1, ge=1, le=mall.MAX_QUANTITY)
    address_id: Id | None = Field(default=None, description="Needed for a product that ships")
    buyer_note: ShortText | None = Field(default=None, description="买家留言 of the order")
    use_balance: bool = Field(default=False, description="Pay the cash part with stored value first")


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    sku_id: int | None
    coupon_id: int | None
    title: str
    image: str | None
    description: str
    points: int
    cash_fen: int
    stock: int
    per_member_limit: int
    min_level_rank: int


class AdminItemOut(ItemOut):
    sold: int
    on_sale: bool
    sort: int
    created_at: datetime
    updated_at: datetime


class MineOut(BaseModel):
    can_exchange: bool
    reason: str = Field(description="off_sale | coupon | sold_out | level | limit | points; empty when allowed")
    reason_text: str
    held: int = Field(description="Units of this item I have exchanged (what counts against the limit)")
    max_quantity: int = Field(description="Units I may exchange now")
    points: int = Field(description="My points balance")


class StoreItemOut(ItemOut):
    min_level_name: str | None
    mine: MineOut | None = Field(description="Only when signed in")


class RedemptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    redemption_no: str
    item_id: int
    title: str
    quantity: int
    points: int
    cash_fen: int
    status: str
    status_label: str = ""
    order_id: int | None
    created_at: datetime


class AdminRedemptionOut(RedemptionOut):
    customer_id: int


class ExchangeOut(BaseModel):
    redemption: RedemptionOut
    order_id: int | None
    order_no: str | None
    payable_fen: int = Field(description="Cash still to pay (0: nothing)")
    needs_payment: bool = Field(description="Pay the order to complete the exchange")


class CouponChoiceOut(BaseModel):
    coupon_id: int
    name: str


class CouponChoicesOut(BaseModel):
    available: bool = Field(description="False until the marketing module registers coupons")
    choices: list[CouponChoiceOut]


R = TypeVar("R", bound=RedemptionOut)


# -- shaping -----------------------------------------------------------------------------------------


def _redemption(r: PointsRedemption, model: type[R] = RedemptionOut) -> R:  # type: ignore[assignment]
    out = model.model_validate(r)
    out.status_label = (mall.STATUS_EN if _en() else mall.STATUS_ZH).get(r.status, r.status)
    return out


def _data(body: ItemIn) -> mall.ItemData:
    return mall.ItemData(kind=body.kind, sku_id=body.sku_id, coupon_id=body.coupon_id, title=body.title,
                         image=body.image, description=body.description, points=body.points, cash_fen=body.cash_fen,
                         stock=body.stock, per_member_limit=body.per_member_limit, min_level_rank=body.min_level_rank,
                         on_sale=body.on_sale, sort=body.sort)


def _merged(item: PointsMallItem, body: ItemUpdate) -> mall.ItemData:
    sent = body.model_dump(exclude_unset=True)
    current = {k: getattr(item, k) for k in ("kind", "sku_id", "coupon_id", "title", "image", "description", "points",
                                             "cash_fen", "per_member_limit", "min_level_rank", "on_sale", "sort")}
    for k, v in sent.items():
        if v is not None or k in ("sku_id", "coupon_id", "image"):
            current[k] = v
    return mall.ItemData(stock=item.stock, **current)


async def _store_items(session: UoW, shopper: ShopperSession, items: list[PointsMallItem]) -> list[StoreItemOut]:
    scope = shopper.shop.scope
    names = await mall.level_names(session, scope)
    mine: dict[int, MineOut] = {}
    if shopper.customer is not None:
        cid = shopper.customer.id
        rank = await mall.member_rank(session, scope, cid)
        have = await mall.points_balance(session, scope, cid)
        held = await mall.claims_of(session, scope, cid, [i.id for i in items])
        for i in items:
            e = await mall.eligibility(session, scope, i, cid, rank=rank, points=have, held=held.get(i.id, 0),
                                       level_name=names.get(i.min_level_rank))
            mine[i.id] = MineOut(can_exchange=e.ok, reason=e.reason, reason_text=e.reason_en if _en() else e.reason_zh,
                                 held=e.held, max_quantity=e.max_quantity, points=e.points)
    return [StoreItemOut(**ItemOut.model_validate(i).model_dump(),
                         min_level_name=names.get(i.min_level_rank) if i.min_level_rank else None, mine=mine.get(i.id))
            for i in items]


def _me(shopper: ShopperSession) -> int:
    assert shopper.customer is not None  # CurrentShopper guarantees it
    return shopper.customer.id


# -- admin -------------------------------------------------------------------------------------------


@admin.get("/items", response_model=Page[AdminItemOut], summary="Points-mall items in display order")
async def list_items(session: UoW, pages: Pages, me: Reader, on_sale: Annotated[bool | None, Query()] = None,
                     kind: Annotated[Kind | None, Query()] = None, q: SearchText = None) -> Page[AdminItemOut]:
    rows, total = await mall.list_items(session, me.scope, on_sale=on_sale, kind=kind, q=q, offset=pages.offset,
                                        limit=pages.page_size)
    return Page(items=[AdminItemOut.model_validate(r) for r in rows], total=total, page=pages.page,
                page_size=pages.page_size)


@admin.post("/items", response_model=AdminItemOut, status_code=201,
            summary="Add an item: a product SKU or (when coupons exist) a coupon")
async def create_item(body: ItemIn, session: UoW, me: Writer) -> AdminItemOut:
    return AdminItemOut.model_validate(await mall.create_item(session, me.scope, _data(body)))


@admin.get("/items/{item_id}", response_model=AdminItemOut, summary="One points-mall item")
async def get_item(item_id: PathId, session: UoW, me: Reader) -> AdminItemOut:
    return AdminItemOut.model_validate(await mall.get_item(session, me.scope, item_id))


@admin.patch("/items/{item_id}", response_model=AdminItemOut, summary="Change an item (fields left out keep their value)")
async def update_item(item_id: PathId, body: ItemUpdate, session: UoW, me: Writer) -> AdminItemOut:
    item = await mall.get_item(session, me.scope, item_id)
    sent = body.model_dump(exclude_unset=True)
    if set(sent) == {"on_sale"} and sent["on_sale"] is not None:
        # 上架 / 下架 alone: an item whose coupons went away can still be taken off sale.
        return AdminItemOut.model_validate(await mall.set_on_sale(session, me.scope, item.id, sent["on_sale"]))
    return AdminItemOut.model_validate(await mall.update_item(session, me.scope, item.id, _merged(item, body)))


@admin.post("/items/{item_id}/stock", response_model=AdminItemOut,
            summary="Add or remove stock by a delta (never below 0, whatever is exchanged meanwhile)")
async def adjust_stock(item_id: PathId, body: StockIn, session: UoW, me: Writer) -> AdminItemOut:
    return AdminItemOut.model_validate(await mall.adjust_stock(session, me.scope, item_id, body.delta))


@admin.delete("/items/{item_id}", status_code=204, summary="Delete an item nobody has exchanged (409 otherwise)")
async def delete_item(item_id: PathId, session: UoW, me: Writer) -> Response:
    await mall.delete_item(session, me.scope, item_id)
    return Response(status_code=204)


@admin.get("/redemptions", response_model=Page[AdminRedemptionOut], summary="Exchanges, newest first")
async def list_redemptions(session: UoW, pages: Pages, me: Reader, status: Annotated[Status | None, Query()] = None,
                           item_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                           customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Page[AdminRedemptionOut]:
    rows, total = await mall.list_redemptions(session, me.scope, status=status, item_id=item_id, customer_id=customer_id,
                                              offset=pages.offset, limit=pages.page_size)
    return Page(items=[_redemption(r, AdminRedemptionOut) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@admin.get("/coupon-choices", response_model=CouponChoicesOut, summary="Coupon templates an item may offer")
async def coupon_choices(session: UoW, me: Reader) -> CouponChoicesOut:
    choices = await rewards.coupon_choices(session, me.scope)
    return CouponChoicesOut(available=rewards.coupons_available(),
                            choices=[CouponChoiceOut(coupon_id=c, name=n) for c, n in choices])


# -- store -------------------------------------------------------------------------------------------


@store.get("/items", response_model=Page[StoreItemOut], summary="Items on sale, with what I may do with each")
async def store_items(session: UoW, shopper: OptionalShopper, pages: Pages) -> Page[StoreItemOut]:
    rows, total = await mall.list_items(session, shopper.shop.scope, on_sale=True, offset=pages.offset,
                                        limit=pages.page_size)
    return Page(items=await _store_items(session, shopper, rows), total=total, page=pages.page, page_size=pages.page_size)


@store.get("/items/{item_id}", response_model=StoreItemOut, summary="One item on sale")
async def store_item(item_id: PathId, session: UoW, shopper: OptionalShopper) -> StoreItemOut:
    item = await mall.get_item(session, shopper.shop.scope, item_id)
    if not item.on_sale:
        raise mall.item_not_found()
    return (await _store_items(session, shopper, [item]))[0]


@store.post("/items/{item_id}/exchange", response_model=ExchangeOut, status_code=201,
            responses={200: {"model": ExchangeOut, "description": "What an earlier request with this Idempotency-Key made"}},
            summary="Exchange points for an item (Idempotency-Key header required): 201 new, 200 a repeat")
async def exchange(
    item_id: PathId, body: ExchangeIn, session: UoW, shopper: CurrentShopper, response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                                  description="1–64 of A-Z a-z 0-9 _ -; repeat it to retry safely")] = None,
) -> ExchangeOut:
    if idempotency_key is None or not idempotency_key.strip():
        raise BadRequest("idempotency_key_required", "兑换请求需带请求头 Idempotency-Key",
                         "An exchange needs an Idempotency-Key header")
    done = await mall.exchange(session, shopper.shop.scope, customer_id=_me(shopper), item_id=item_id,
                               quantity=body.quantity, address_id=body.address_id, buyer_note=body.buyer_note,
                               idempotency_key=idempotency_key.strip(), use_balance=body.use_balance,
                               channel="h5" if shopper.via == "cookie" else "api")
    if not done.created:
        response.status_code = 200
    o = done.order
    return ExchangeOut(redemption=_redemption(done.redemption), order_id=o.id if o else None,
                       order_no=o.order_no if o else None,
                       payable_fen=o.payable_fen if o is not None and o.status == "pending_payment" else 0,
                       needs_payment=done.needs_payment)


@store.get("/redemptions", response_model=Page[RedemptionOut], summary="My exchanges, newest first")
async def my_redemptions(session: UoW, shopper: CurrentShopper, pages: Pages) -> Page[RedemptionOut]:
    rows, total = await mall.list_redemptions(session, shopper.shop.scope, customer_id=_me(shopper),
                                              offset=pages.offset, limit=pages.page_size)
    return Page(items=[_redemption(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@store.get("/redemptions/{redemption_id}", response_model=RedemptionOut, summary="One of my exchanges")
async def my_redemption(redemption_id: PathId, session: UoW, shopper: CurrentShopper) -> RedemptionOut:
    return _redemption(await mall.get_redemption(session, shopper.shop.scope, redemption_id, customer_id=_me(shopper)))
