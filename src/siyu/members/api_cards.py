"""JSON endpoints of paid membership cards and birthday perks.

* Store (``/api/store/v1/{shop}/member/card``, signed-in shopper): my card and the plans on
  sale; buy or renew (``POST /purchases`` with an ``Idempotency-Key`` header: 201 new, 200
  the same request again, 409 ``idempotency_key_reused`` for the key with another plan); my
  purchases; pay a purchase (opens or reuses its payment). Another member's purchase is a 404.
* Admin (``/api/admin/v1/members/cards``): plans CRUD, purchases with filters, one purchase
  with its refunds, refund (full, pro-rata or an amount) and retry a failed refund.
* Admin (``/api/admin/v1/members/birthday``): settings, the grants given, run today's grants now.

Reading needs ``members.read``; every change ``members.write``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit import clock
from siyu.kit.context import current_language
from siyu.kit.errors import BadRequest, DomainError
from siyu.kit.pagination import Page, Pages
from siyu.kit.security import mask_phone
from siyu.kit.types import MAX_ID, ObjectId, PathId, no_control
from siyu.kit.web import ADMIN_ERRORS, UoW, client_ip, problem_responses
from siyu.members import birthday, cards, rewards
from siyu.members.models import MemberCardPlan, MemberCardPurchase
from siyu.orders.schemas import PayIn
from siyu.payments.models import Refund
from siyu.staff.access import StaffPrincipal, require

store = APIRouter(prefix="/api/store/v1/{shop}/member/card", tags=["store: member card"],
                  responses=problem_responses(400, 401, 403, 404, 409, 422))
admin = APIRouter(prefix="/api/admin/v1/members/cards", tags=["admin: member cards"], responses=ADMIN_ERRORS)
admin_birthday = APIRouter(prefix="/api/admin/v1/members/birthday", tags=["admin: birthday perks"],
                           responses=ADMIN_ERRORS)

#: Every router of this part; ``members.api`` gathers them.
routers: list[APIRouter] = [store, admin, admin_birthday]

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]

PlanName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=cards.MAX_NAME),
                     AfterValidator(no_control)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=cards.MAX_DESCRIPTION),
                        AfterValidator(no_control)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=cards.MAX_REASON), AfterValidator(no_control)]
Days = Annotated[int, Field(ge=1, le=cards.MAX_DAYS, description=f"Validity in days, 1–{cards.MAX_DAYS}")]
Price = Annotated[int, Field(ge=1, le=cards.MAX_PRICE_FEN, description="Price in fen")]
GiftPoints = Annotated[int, Field(ge=0, le=cards.MAX_GIFT_POINTS, description="Points given with each purchase")]
Sort = Annotated[int, Field(ge=0, le=cards.MAX_SORT, description="Lower first")]
PurchaseStatus = Literal["pending_payment", "paid", "closed", "refunded"]


def _english() -> bool:
    return current_language().startswith("en")


def status_label(status: str) -> str:
    return (cards.STATUS_EN if _english() else cards.STATUS_ZH).get(status, status)


# -- schemas -----------------------------------------------------------------------------------------------


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "黑金年卡", "level_id": 4, "days": 365, "price_fen": 19900, "gift_points": 2000,
         "description": "全场 8.8 折、包邮、优先发货", "on_sale": True, "sort": 0}]})

    name: PlanName
    level_id: ObjectId = Field(description="The level the card lifts its holder to (a paid-only level or any)")
    days: Days
    price_fen: Price
    gift_points: GiftPoints = 0
    description: Description = ""
    on_sale: StrictBool = True
    sort: Sort = 0


class PlanPatch(BaseModel):
    """Only the fields sent change. Purchases already made keep their price, days and level."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"price_fen": 16800}, {"on_sale": False}]})

    name: PlanName | None = None
    level_id: ObjectId | None = None
    days: Days | None = None
    price_fen: Price | None = None
    gift_points: GiftPoints | None = None
    description: Description | None = None
    on_sale: StrictBool | None = None
    sort: Sort | None = None


class PlanOut(BaseModel):
    id: int
    name: str
    level_id: int
    level_name: str | None
    days: int
    price_fen: int
    gift_points: int
    description: str
    on_sale: bool
    sort: int
    paid_count: int = Field(description="Paid purchases of this plan (renewals included)")
    created_at: datetime
    updated_at: datetime


class StorePlanOut(BaseModel):
    id: int
    name: str
    level_id: int
    level_name: str | None
    days: int
    price_fen: int
    gift_points: int
    description: str
    #: What buying it would do now: ``buy``, ``renew`` (extends the card held) or ``blocked``
    #: (a card of another level is valid).
    action: Literal["buy", "renew", "blocked"]


class CardOut(BaseModel):
    level_id: int | None
    level_name: str | None
    plan_id: int | None
    expires_at: datetime | None
    active: bool
    days_left: int


class MyCardOut(BaseModel):
    card: CardOut
    plans: list[StorePlanOut]


class PurchaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"plan_id": 1}]})

    plan_id: ObjectId


class PurchaseOut(BaseModel):
    id: int
    purchase_no: str
    plan_id: int
    plan_name: str
    level_id: int
    days: int
    price_fen: int
    status: PurchaseStatus
    status_label: str
    pay_deadline: datetime | None
    paid_at: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    actions: list[str]


class RefundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    payment_id: int
    out_refund_no: str
    amount_fen: int
    reason: str | None
    status: str
    created_at: datetime
    succeeded_at: datetime | None


class RefundQuoteOut(BaseModel):
    full_fen: int
    prorata_fen: int
    unused_seconds: int
    total_seconds: int


class AdminPurchaseOut(PurchaseOut):
    customer_id: int
    customer_name: str | None
    customer_phone: str | None
    payment_id: int | None
    updated_at: datetime


class AdminPurchaseDetailOut(AdminPurchaseOut):
    refunds: list[RefundOut]
    refund_quote: RefundQuoteOut | None = Field(description="What a refund may return now (paid purchases only)")
    gift_points: int = Field(description="Points the purchase gave")
    can_refund: bool
    can_retry_refund: bool


class RefundIn(BaseModel):
    """``full``: the price; ``prorata``: the price × unused time ÷ bought time; ``amount``: ``amount_fen``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"mode": "prorata", "reason": "顾客申请退卡"}, {"mode": "amount", "amount_fen": 5000, "reason": "协商退款"}]})

    mode: Literal["full", "prorata", "amount"] = "full"
    amount_fen: Annotated[int, Field(ge=0, le=cards.MAX_PRICE_FEN)] | None = None
    reason: Reason | None = None


class CardPayOut(BaseModel):
    purchase_id: int
    out_trade_no: str
    amount_fen: int
    channel: str
    pay_url: str | None
    code_url: str | None
    pay_params: dict[str, str] | None
    expires_at: datetime | None
    reused: bool


class BirthdaySettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"enabled": True, "mode": "day", "points": None, "coupon_id": None},
        {"enabled": True, "mode": "month", "points": 500}]})

    enabled: StrictBool
    mode: Literal["day", "month"] = Field(description="day: on the birthday; month: from the first of the birthday month")
    points: Annotated[int, Field(ge=0, le=birthday.MAX_POINTS)] | None = Field(
        default=None, description="null: each level's own birthday points; a number: everyone gets that many")
    coupon_id: ObjectId | None = Field(default=None, description="Coupon for levels without their own birthday coupon "
                                                                 "(only when coupons can be granted)")


class CouponChoiceOut(BaseModel):
    id: int
    name: str


class LevelGiftOut(BaseModel):
    level_id: int
    name: str
    rank: int
    points: int
    coupon_id: int | None


class BirthdaySettingsOut(BaseModel):
    enabled: StrictBool
    mode: Literal["day", "month"]
    points: int | None
    coupon_id: int | None
    coupons_available: bool
    coupon_choices: list[CouponChoiceOut]
    levels: list[LevelGiftOut]


class GrantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    year: int
    level_id: int | None
    points: int
    coupon_id: int | None
    granted_at: datetime


class BirthdayRunOut(BaseModel):
    granted: int = Field(description="Members given their gift by this run")


# -- shaping ---------------------------------------------------------------------------------------------------


def plan_out(p: MemberCardPlan, names: dict[int, str], counts: dict[int, int]) -> PlanOut:
    return PlanOut(id=p.id, name=p.name, level_id=p.level_id, level_name=names.get(p.level_id), days=p.days,
                   price_fen=p.price_fen, gift_points=p.gift_points, description=p.description, on_sale=p.on_sale,
                   sort=p.sort, paid_count=counts.get(p.id, 0), created_at=p.created_at, updated_at=p.updated_at)


def _purchase_fields(p: MemberCardPurchase) -> dict[str, object]:
    return {"id": p.id, "purchase_no": p.purchase_no, "plan_id": p.plan_id, "plan_name": p.plan_name,
            "level_id": p.level_id, "days": p.days, "price_fen": p.price_fen, "status": p.status,
            "status_label": status_label(p.status), "pay_deadline": p.pay_deadline, "paid_at": p.paid_at,
            "starts_at": p.starts_at, "ends_at": p.ends_at, "created_at": p.created_at,
            "actions": sorted(cards.shopper_actions(p))}


def purchase_out(p: MemberCardPurchase) -> PurchaseOut:
    return PurchaseOut(**_purchase_fields(p))


async def _customer(session: UoW, me: StaffPrincipal, customer_id: int) -> tuple[str | None, str | None]:
    try:
        c = await customers_service.get_customer(session, me.scope, customer_id)
    except DomainError:
        return None, None
    return c.nickname, mask_phone(c.phone) or None


async def admin_purchase(session: UoW, me: StaffPrincipal, p: MemberCardPurchase) -> AdminPurchaseOut:
    name, phone = await _customer(session, me, p.customer_id)
    return AdminPurchaseOut(**_purchase_fields(p), customer_id=p.customer_id, customer_name=name,
                            customer_phone=phone, payment_id=p.payment_id, updated_at=p.updated_at)


async def admin_detail(session: UoW, me: StaffPrincipal, p: MemberCardPurchase) -> AdminPurchaseDetailOut:
    base = await admin_purchase(session, me, p)
    refunds: list[Refund] = await cards.purchase_refunds(session, me.scope, p)
    quote = None
    if p.status == "paid":
        q = cards.refund_quote(p)
        quote = RefundQuoteOut(full_fen=q.full_fen, prorata_fen=q.prorata_fen,
                               unused_seconds=int(q.unused.total_seconds()), total_seconds=int(q.total.total_seconds()))
    return AdminPurchaseDetailOut(**base.model_dump(), refunds=[RefundOut.model_validate(r) for r in refunds],
                                  refund_quote=quote, gift_points=await cards.gift_points_of(session, me.scope, p),
                                  can_refund=p.status == "paid", can_retry_refund=cards.can_retry_refund(p, refunds))


def _me(shopper: ShopperSession) -> int:
    assert shopper.customer is not None
    return shopper.customer.id


def card_out(v: cards.CardView) -> CardOut:
    return CardOut(level_id=v.level_id, level_name=v.level_name, plan_id=v.plan_id, expires_at=v.expires_at,
                   active=v.active, days_left=v.days_left)


def plan_action(plan: MemberCardPlan, card: cards.CardView) -> Literal["buy", "renew", "blocked"]:
    if not card.active:
        return "buy"
    return "renew" if card.level_id == plan.level_id else "blocked"


# -- store -----------------------------------------------------------------------------------------------------


@store.get("", response_model=MyCardOut, summary="My paid card and the plans on sale")
async def my_card(shopper: CurrentShopper, session: UoW) -> MyCardOut:
    scope = shopper.shop.scope
    card = await cards.card_of(session, scope, _me(shopper))
    names = await cards.level_names(session, scope)
    plans = [StorePlanOut(id=p.id, name=p.name, level_id=p.level_id, level_name=names.get(p.level_id), days=p.days,
                          price_fen=p.price_fen, gift_points=p.gift_points, description=p.description,
                          action=plan_action(p, card))
             for p in await cards.list_plans(session, scope, on_sale_only=True)]
    return MyCardOut(card=card_out(card), plans=plans)


@store.post("/purchases", response_model=PurchaseOut, status_code=201,
            responses={200: {"model": PurchaseOut, "description": "The purchase an earlier request with this "
                                                                  "Idempotency-Key and plan made"}},
            summary="Buy or renew a card (Idempotency-Key header required): 201 new, 200 a repeat")
async def buy(
    body: PurchaseIn, shopper: CurrentShopper, session: UoW, response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                                  description="1–64 of A-Z a-z 0-9 _ -; repeat it to retry safely")] = None,
) -> PurchaseOut:
    if idempotency_key is None or not idempotency_key.strip():
        raise BadRequest("idempotency_key_required", "购买请求需带请求头 Idempotency-Key",
                         "Buying a card needs an Idempotency-Key header")
    placed = await cards.create_purchase(session, shopper.shop.scope, customer_id=_me(shopper), plan_id=body.plan_id,
                                         idempotency_key=idempotency_key)
    if not placed.created:
        response.status_code = 200
    return purchase_out(placed.purchase)


@store.get("/purchases", response_model=Page[PurchaseOut], summary="My card purchases, newest first")
async def my_purchases(shopper: CurrentShopper, session: UoW, pages: Pages) -> Page[PurchaseOut]:
    rows, total = await cards.list_purchases(session, shopper.shop.scope, customer_id=_me(shopper),
                                             offset=pages.offset, limit=pages.page_size)
    return Page(items=[purchase_out(p) for p in rows], total=total, page=pages.page, page_size=pages.page_size)


@store.get("/purchases/{purchase_id}", response_model=PurchaseOut, summary="One of my card purchases")
async def my_purchase(purchase_id: PathId, shopper: CurrentShopper, session: UoW) -> PurchaseOut:
    return purchase_out(await cards.customer_purchase(session, shopper.shop.scope, _me(shopper), purchase_id))


@store.post("/purchases/{purchase_id}/pay", response_model=CardPayOut,
            summary="Pay an unpaid purchase: opens (or reuses) its payment; the amount is the purchase's")
async def pay(purchase_id: PathId, body: PayIn, request: Request, shopper: CurrentShopper, session: UoW) -> CardPayOut:
    scope = shopper.shop.scope
    me = _me(shopper)
    openid = None
    if body.channel == "jsapi":
        ids = await customers_service.identities_of(session, scope, me)
        openid = next((i.value for i in ids if i.kind == "openid"), None)
    start = await cards.start_payment(session, scope, customer_id=me, purchase_id=purchase_id, channel=body.channel,
                                      return_url=body.return_url, payer_openid=openid, payer_client_ip=client_ip(request))
    p = start.payment
    return CardPayOut(purchase_id=purchase_id, out_trade_no=p.out_trade_no, amount_fen=p.amount_fen, channel=p.channel,
                      pay_url=start.pay_url, code_url=start.code_url, pay_params=start.pay_params,
                      expires_at=p.expires_at, reused=start.reused)


# -- admin: plans ------------------------------------------------------------------------------------------------


@admin.get("/plans", response_model=list[PlanOut], summary="Card plans, in their display order")
async def list_plans(session: UoW, me: Reader) -> list[PlanOut]:
    names = await cards.level_names(session, me.scope)
    counts = await cards.purchase_counts(session, me.scope)
    return [plan_out(p, names, counts) for p in await cards.list_plans(session, me.scope)]


@admin.post("/plans", response_model=PlanOut, status_code=201, summary="Create a card plan")
async def create_plan(body: PlanIn, session: UoW, me: Writer) -> PlanOut:
    plan = await cards.create_plan(session, me.scope, cards.PlanData(**body.model_dump()))
    return plan_out(plan, await cards.level_names(session, me.scope), {})


@admin.get("/plans/{plan_id}", response_model=PlanOut, summary="One card plan")
async def get_plan(plan_id: PathId, session: UoW, me: Reader) -> PlanOut:
    plan = await cards.get_plan(session, me.scope, plan_id)
    return plan_out(plan, await cards.level_names(session, me.scope), await cards.purchase_counts(session, me.scope))


@admin.patch("/plans/{plan_id}", response_model=PlanOut, summary="Change a card plan (fields left out keep their value)")
async def update_plan(plan_id: PathId, body: PlanPatch, session: UoW, me: Writer) -> PlanOut:
    plan = await cards.update_plan(session, me.scope, plan_id, body.model_dump(exclude_unset=True, exclude_none=True))
    return plan_out(plan, await cards.level_names(session, me.scope), await cards.purchase_counts(session, me.scope))


@admin.delete("/plans/{plan_id}", status_code=204, response_class=Response,
              summary="Delete a plan nobody bought (409 card_plan_in_use otherwise: take it off sale)")
async def delete_plan(plan_id: PathId, session: UoW, me: Writer) -> Response:
    await cards.delete_plan(session, me.scope, plan_id)
    return Response(status_code=204)


# -- admin: purchases ---------------------------------------------------------------------------------------------


@admin.get("/purchases", response_model=Page[AdminPurchaseOut], summary="Card purchases, newest first")
async def list_purchases(
    session: UoW, pages: Pages, me: Reader,
    status: Annotated[PurchaseStatus | None, Query()] = None,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    plan_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    purchase_no: Annotated[str | None, Query(max_length=24, pattern=r"^[A-Za-z0-9]+$")] = None,
) -> Page[AdminPurchaseOut]:
    rows, total = await cards.list_purchases(session, me.scope, customer_id=customer_id, status=status, plan_id=plan_id,
                                             purchase_no=purchase_no, offset=pages.offset, limit=pages.page_size)
    return Page(items=[await admin_purchase(session, me, p) for p in rows], total=total, page=pages.page,
                page_size=pages.page_size)


@admin.get("/purchases/{purchase_id}", response_model=AdminPurchaseDetailOut,
           summary="One purchase with its refunds and what a refund may return now")
async def get_purchase(purchase_id: PathId, session: UoW, me: Reader) -> AdminPurchaseDetailOut:
    return await admin_detail(session, me, await cards.get_purchase(session, me.scope, purchase_id))


@admin.post("/purchases/{purchase_id}/refund", response_model=AdminPurchaseDetailOut,
            summary="Refund a paid purchase: the card loses its unused time; gift points go back in proportion")
async def refund(purchase_id: PathId, body: RefundIn, session: UoW, me: Writer) -> AdminPurchaseDetailOut:
    p = await cards.refund_purchase(session, me.scope, purchase_id, mode=body.mode, amount_fen=body.amount_fen,
                                    reason=body.reason)
    return await admin_detail(session, me, p)


@admin.post("/purchases/{purchase_id}/retry-refund", response_model=AdminPurchaseDetailOut,
            summary="Send a failed refund again")
async def retry_refund(purchase_id: PathId, session: UoW, me: Writer) -> AdminPurchaseDetailOut:
    await cards.retry_refund(session, me.scope, purchase_id)
    return await admin_detail(session, me, await cards.get_purchase(session, me.scope, purchase_id))


# -- admin: birthday ------------------------------------------------------------------------------------------------


async def _birthday_out(session: UoW, me: StaffPrincipal, s: birthday.BirthdaySettings) -> BirthdaySettingsOut:
    choices = await rewards.coupon_choices(session, me.scope)
    gifts = await birthday.level_gifts(session, me.scope)
    return BirthdaySettingsOut(
        enabled=s.enabled, mode=s.mode, points=s.points, coupon_id=s.coupon_id,
        coupons_available=rewards.coupons_available(),
        coupon_choices=[CouponChoiceOut(id=i, name=n) for i, n in choices],
        levels=[LevelGiftOut(level_id=g.level_id, name=g.name, rank=g.rank, points=g.points, coupon_id=g.coupon_id)
                for g in gifts])


@admin_birthday.get("/settings", response_model=BirthdaySettingsOut, summary="Birthday perk settings")
async def get_birthday_settings(session: UoW, me: Reader) -> BirthdaySettingsOut:
    return await _birthday_out(session, me, await birthday.birthday_settings(session, me.scope))


@admin_birthday.put("/settings", response_model=BirthdaySettingsOut, summary="Replace the birthday perk settings")
async def put_birthday_settings(body: BirthdaySettingsIn, session: UoW, me: Writer) -> BirthdaySettingsOut:
    s = await birthday.save_settings(session, me.scope, enabled=body.enabled, mode=body.mode, points=body.points,
                                     coupon_id=body.coupon_id)
    return await _birthday_out(session, me, s)


@admin_birthday.get("/grants", response_model=Page[GrantOut], summary="Birthday gifts given, newest first")
async def list_grants(session: UoW, pages: Pages, me: Reader,
                      year: Annotated[int | None, Query(ge=2000, le=2200)] = None,
                      customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Page[GrantOut]:
    rows, total = await birthday.list_grants(session, me.scope, year=year, customer_id=customer_id,
                                             offset=pages.offset, limit=pages.page_size)
    return Page(items=[GrantOut.model_validate(g) for g in rows], total=total, page=pages.page, page_size=pages.page_size)


@admin_birthday.post("/run", response_model=BirthdayRunOut,
                     summary="Give today's due birthday gifts now (the job does this every 15 minutes)")
async def run_now(session: UoW, me: Writer) -> BirthdayRunOut:
    granted, after = 0, 0
    today = clock.local_today(me.scope.timezone)
    while True:
        result = await birthday.grant_due(session, me.scope, today=today, after_customer_id=after, limit=200)
        granted += result.granted
        after = result.last_customer_id
        if result.seen < 200:
            return BirthdayRunOut(granted=granted)


