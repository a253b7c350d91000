"""JSON endpoints of levels, growth, member prices and members.

* Store (``/api/store/v1/{shop}/member``, signed-in shopper): my member centre (level,
  progress to the next level, growth, points, balance, profile), the levels and their
  benefits, my growth history, my notices, my profile (the birthday can be set once).
* Admin (``/api/admin/v1/members``): the levels (CRUD; the defaults are written on the first
  read), growth and review settings, member prices per SKU, the member list with filters,
  a member's detail, profile (staff may change the birthday; audited), growth history and
  growth adjustments with a reason (audited).

Reading needs ``members.read``; every change ``members.write``. A member is addressed by its
customer id; another tenant's customer, level or SKU is a 404.
"""

from __future__ import annotations

import importlib
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit import clock
from siyu.kit.context import current_language
from siyu.kit.errors import NotFound
from siyu.kit.pagination import Page, Pages
from siyu.kit.security import mask_phone
from siyu.kit.tenancy import TenantScope
from siyu.kit.types import MAX_ID, FilterText, ObjectId, PathId, no_control
from siyu.kit.web import ADMIN_ERRORS, UoW, problem_responses
from siyu.members import levels
from siyu.members.models import GrowthEntry, MemberNotice
from siyu.staff.access import StaffPrincipal, require

store = APIRouter(prefix="/api/store/v1/{shop}/member", tags=["store: member centre"],
                  responses=problem_responses(400, 401, 403, 404, 409, 422))
admin = APIRouter(prefix="/api/admin/v1/members", tags=["admin: members and levels"], responses=ADMIN_ERRORS)

#: Every router of this part; ``members.api`` gathers them.
routers: list[APIRouter] = [store, admin]

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]
#: ``{customer_id:int}``: only digits match, so the other parts' ``/members/points`` and the
#: like are not taken for a customer id.
MEMBER = "/{customer_id:int}"
BeforeId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="The id of the last row of the previous page")]
Limit = Annotated[int, Query(ge=1, le=100, description="Rows, at most 100")]
LevelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20), AfterValidator(no_control)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(no_control)]
Region = Annotated[str, StringConstraints(strip_whitespace=True, max_length=levels.MAX_REGION), AfterValidator(no_control)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(no_control)]
Gender = Literal["unknown", "male", "female"]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                       description="1–64 of A-Z a-z 0-9 _ -; repeat it to retry safely")]
ReviewPolicy = Literal["never", "monthly", "quarterly", "yearly"]


async def _write_request(request: Request) -> None:
    """A GET that may write (the default levels on first use): ask for a write transaction."""
    request.state.needs_write = True


def _english() -> bool:
    return current_language().startswith("en")


# -- inputs ----------------------------------------------------------------------------------------------


class LevelIn(BaseModel):
    """A whole level (PUT replaces every field)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "金卡会员", "rank": 2, "growth_threshold": 5000, "paid_only": False, "price_rate_bp": 9500,
         "free_shipping": True, "points_multiplier_bp": 15000, "priority_shipping": False, "birthday_points": 300,
         "color": "#d4a017", "description": "成长值达到 5,000"}]})

    name: LevelName
    rank: int = Field(ge=0, le=levels.MAX_RANK, description="Order of the levels; the base level is the lowest")
    growth_threshold: int = Field(default=0, ge=0, le=levels.MAX_THRESHOLD, description="Growth that reaches it")
    paid_only: bool = Field(default=False, description="Reached only through a paid membership card")
    price_rate_bp: int = Field(default=10000, ge=1000, le=10000,
                               description="What a member pays, in basis points of the price (9500 = 9.5 折)")
    free_shipping: bool = False
    points_multiplier_bp: int = Field(default=10000, ge=10000, le=100000, description="15000 = 1.5× points")
    priority_shipping: bool = False
    birthday_points: int = Field(default=0, ge=0, le=1_000_000)
    birthday_coupon_id: ObjectId | None = Field(default=None, description="Only when the marketing module offers coupons")
    color: str = Field(default="#8c8c8c", pattern=r"^#[0-9a-fA-F]{6}$")
    description: Description = ""

    def data(self) -> levels.LevelData:
        return levels.LevelData(**self.model_dump())


class GrowthSettingsIn(BaseModel):
    """Fields left out keep their value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"growth_per_yuan": 1, "signup": 10, "first_order": 20, "checkin": 1, "review": 5, "review_policy": "yearly",
         "window_days": 365}]})

    growth_per_yuan: int | None = Field(default=None, ge=0, le=100, description="Growth per yuan paid")
    signup: int | None = Field(default=None, ge=0, le=levels.MAX_ACTION_GROWTH)
    first_order: int | None = Field(default=None, ge=0, le=levels.MAX_ACTION_GROWTH)
    checkin: int | None = Field(default=None, ge=0, le=levels.MAX_ACTION_GROWTH)
    review: int | None = Field(default=None, ge=0, le=levels.MAX_ACTION_GROWTH, description="Growth for a product review")
    review_policy: ReviewPolicy | None = Field(default=None, description="When levels are reviewed (downgrades)")
    window_days: int | None = Field(default=None, ge=30, le=1095, description="Growth of the last N days counts")


class MemberPriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level_id: ObjectId
    price_fen: int | None = Field(ge=1, le=levels.MAX_MEMBER_PRICE, description="null removes this level's price")


class MemberPricesIn(BaseModel):
    """Levels not named keep their price."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prices": [{"level_id": 12, "price_fen": 9900}, {"level_id": 13, "price_fen": None}]}]})

    prices: list[MemberPriceIn] = Field(max_length=levels.MAX_LEVELS)


class StaffProfileIn(BaseModel):
    """Fields left out keep their value; ``birthday: null`` clears it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"birthday": "1990-05-20", "gender": "female", "region": "浙江 杭州"}]})

    birthday: date | None = None
    gender: Gender | None = None
    region: Region | None = None


class ProfileIn(BaseModel):
    """Fields left out keep their value. The birthday can be set once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"birthday": "1990-05-20", "gender": "female", "region": "浙江 杭州"}]})

    birthday: date | None = None
    gender: Gender | None = None
    region: Region | None = None


class GrowthAdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": 500, "reason": "线下门店消费补录"}, {"amount": -200, "reason": "误加扣回"}]})

    amount: int = Field(ge=-levels.MAX_ADJUST, le=levels.MAX_ADJUST, description="Signed, not 0")
    reason: Reason


# -- outputs ------------------------------------------------------------------------------------------------


class LevelOut(BaseModel):
    id: int = Field(description="0: a default not saved yet")
    rank: int
    name: str
    growth_threshold: int
    paid_only: bool
    price_rate_bp: int
    free_shipping: bool
    points_multiplier_bp: int
    priority_shipping: bool
    birthday_points: int
    birthday_coupon_id: int | None
    color: str
    description: str
    benefits: list[str] = Field(description="The benefits in words, in the request's language")


class EffectiveLevelOut(LevelOut):
    via: Literal["growth", "card"]
    card_expires_at: datetime | None


class GrowthSettingsOut(BaseModel):
    growth_per_yuan: int
    signup: int
    first_order: int
    checkin: int
    review: int
    review_policy: ReviewPolicy
    window_days: int
    coupons_available: bool = Field(description="Whether level coupons can be chosen (a coupon module is present)")


class MemberPricesOut(BaseModel):
    sku_id: int
    product_id: int
    title: str
    spec_text: str
    price_fen: int
    prices: dict[str, int] = Field(description="level id → member price in fen")


class GrowthEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    amount: int
    balance_after: int
    kind: str
    note: str
    created_at: datetime


class BalanceOut(BaseModel):
    principal_fen: int
    bonus_fen: int
    total_fen: int


class ProfileOut(BaseModel):
    birthday: date | None
    gender: Gender
    region: str
    registered_at: datetime | None


class MemberRowOut(BaseModel):
    customer_id: int
    nickname: str | None
    phone: str | None = Field(description="Masked")
    customer_status: str | None
    level: EffectiveLevelOut
    growth: int
    points: int
    birthday: date | None
    gender: Gender
    region: str
    registered_at: datetime


class MemberDetailOut(BaseModel):
    customer_id: int
    nickname: str | None
    phone: str | None = Field(description="Masked unless the staff member may see full numbers")
    customer_status: str
    merged_into_id: int | None
    level: EffectiveLevelOut
    growth_level: LevelOut
    next_level: LevelOut | None
    growth: int = Field(description="Lifetime growth (the ledger's sum)")
    counted_growth: int = Field(description="The growth that decides the level (see the review policy)")
    to_next: int
    points: int
    balance: BalanceOut | None = Field(description="null when stored value is not available")
    profile: ProfileOut
    level_changed_at: datetime | None
    level_review_at: datetime | None


class MemberCentreOut(BaseModel):
    customer_id: int
    level: EffectiveLevelOut
    next_level: LevelOut | None
    growth: int
    counted_growth: int
    to_next: int
    progress_bp: int = Field(description="Progress to the next level, 0–10000")
    points: int
    balance: BalanceOut | None
    profile: ProfileOut
    birthday_locked: bool = Field(description="The birthday is set and only staff may change it")
    unread_notices: int


class NoticeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    title: str
    body: str
    read_at: datetime | None
    created_at: datetime


# -- shaping ------------------------------------------------------------------------------------------------


def level_out(lv: levels.LevelView) -> LevelOut:
    return LevelOut(**_level_fields(lv))


def _level_fields(lv: levels.LevelView) -> dict[str, Any]:
    return {"id": lv.id, "rank": lv.rank, "name": lv.name, "growth_threshold": lv.growth_threshold,
            "paid_only": lv.paid_only, "price_rate_bp": lv.price_rate_bp, "free_shipping": lv.free_shipping,
            "points_multiplier_bp": lv.points_multiplier_bp, "priority_shipping": lv.priority_shipping,
            "birthday_points": lv.birthday_points, "birthday_coupon_id": lv.birthday_coupon_id, "color": lv.color,
            "description": lv.description, "benefits": levels.benefits(lv, english=_english())}


def effective_out(lv: levels.LevelView) -> EffectiveLevelOut:
    return EffectiveLevelOut(**_level_fields(lv), via="card" if lv.via == "card" else "growth",
                             card_expires_at=lv.card_expires_at)


def settings_out(s: levels.GrowthSettings) -> GrowthSettingsOut:
    from siyu.members import rewards

    return GrowthSettingsOut(**s.as_dict(), coupons_available=rewards.coupons_available())


async def wallet_balance(session: AsyncSession, scope: TenantScope, customer_id: int) -> BalanceOut | None:
    """The stored-value balance, when the wallet part is installed (None otherwise)."""
    try:
        wallet = importlib.import_module("siyu.members.wallet")
    except ImportError:
        return None
    b = await wallet.balances(session, scope, customer_id)
    return BalanceOut(principal_fen=b.principal_fen, bonus_fen=b.bonus_fen, total_fen=b.total_fen)


def _profile(member: Any) -> ProfileOut:
    if member is None:
        return ProfileOut(birthday=None, gender="unknown", region="", registered_at=None)
    gender = member.gender if member.gender in levels.GENDERS else "unknown"
    return ProfileOut(birthday=member.birthday, gender=gender, region=member.region, registered_at=member.registered_at)


async def member_detail(session: AsyncSession, me: StaffPrincipal, customer_id: int) -> MemberDetailOut:
    scope = me.scope
    customer = await customers_service.get_customer(session, scope, customer_id)
    ov = await levels.overview(session, scope, customer_id)
    m = ov.member
    phone = customer.phone if me.can("customers.phone") else (mask_phone(customer.phone) or None)
    return MemberDetailOut(
        customer_id=customer.id, nickname=customer.nickname, phone=phone or None, customer_status=customer.status,
        merged_into_id=customer.merged_into_id, level=effective_out(ov.level), growth_level=level_out(ov.growth_level),
        next_level=level_out(ov.next_level) if ov.next_level else None, growth=ov.growth,
        counted_growth=ov.counted_growth, to_next=ov.to_next, points=ov.points,
        balance=await wallet_balance(session, scope, customer_id), profile=_profile(m),
        level_changed_at=m.level_changed_at if m else None, level_review_at=m.level_review_at if m else None)


async def unread_notices(session: AsyncSession, scope: TenantScope, customer_id: int) -> int:
    from sqlalchemy import func

    return int((await session.execute(select(func.count()).select_from(MemberNotice).where(
        MemberNotice.tenant_id == scope.id, MemberNotice.customer_id == customer_id,
        MemberNotice.read_at.is_(None)))).scalar_one())


async def member_centre(session: AsyncSession, scope: TenantScope, customer_id: int) -> MemberCentreOut:
    ov = await levels.overview(session, scope, customer_id)
    return MemberCentreOut(
        customer_id=customer_id, level=effective_out(ov.level),
        next_level=level_out(ov.next_level) if ov.next_level else None, growth=ov.growth,
        counted_growth=ov.counted_growth, to_next=ov.to_next, progress_bp=ov.progress_bp, points=ov.points,
        balance=await wallet_balance(session, scope, customer_id), profile=_profile(ov.member),
        birthday_locked=bool(ov.member is not None and ov.member.birthday is not None),
        unread_notices=await unread_notices(session, scope, customer_id))


def _me(shopper: ShopperSession) -> int:
    assert shopper.customer is not None
    return shopper.customer.id


# -- store ---------------------------------------------------------------------------------------------------


@store.get("", response_model=MemberCentreOut, summary="My member centre: level, progress, points, balance, profile")
async def my_member(shopper: CurrentShopper, session: UoW) -> MemberCentreOut:
    return await member_centre(session, shopper.shop.scope, _me(shopper))


@store.get("/levels", response_model=list[LevelOut], summary="The shop's levels and their benefits")
async def shop_levels(shopper: CurrentShopper, session: UoW) -> list[LevelOut]:
    return [level_out(lv) for lv in await levels.list_levels(session, shopper.shop.scope)]


@store.get("/growth", response_model=list[GrowthEntryOut], summary="My growth history, newest first")
async def my_growth(shopper: CurrentShopper, session: UoW, before_id: BeforeId = None, limit: Limit = 20,
                    ) -> list[GrowthEntryOut]:
    rows = await levels.growth_history(session, shopper.shop.scope, _me(shopper), limit=limit, before_id=before_id)
    return [GrowthEntryOut.model_validate(r) for r in rows]


@store.patch("/profile", response_model=MemberCentreOut,
             summary="Change my birthday (once), gender and region; fields left out keep their value")
async def my_profile(body: ProfileIn, shopper: CurrentShopper, session: UoW) -> MemberCentreOut:
    scope, me = shopper.shop.scope, _me(shopper)
    given = body.model_fields_set
    await levels.update_profile(session, scope, me, birthday=body.birthday if "birthday" in given else levels.UNSET,
                                gender=body.gender, region=body.region)
    return await member_centre(session, scope, me)


@store.get("/notices", response_model=list[NoticeOut], summary="My member notices, newest first")
async def my_notices(shopper: CurrentShopper, session: UoW, limit: Limit = 20) -> list[NoticeOut]:
    scope = shopper.shop.scope
    rows = (await session.execute(select(MemberNotice).where(
        MemberNotice.tenant_id == scope.id, MemberNotice.customer_id == _me(shopper))
        .order_by(MemberNotice.id.desc()).limit(limit))).scalars().all()
    return [NoticeOut.model_validate(r) for r in rows]


@store.post("/notices/read", status_code=204, response_class=Response, summary="Mark all my notices read")
async def read_notices(shopper: CurrentShopper, session: UoW) -> Response:
    await mark_notices_read(session, shopper.shop.scope, _me(shopper))
    return Response(status_code=204)


async def mark_notices_read(session: AsyncSession, scope: TenantScope, customer_id: int) -> None:
    await session.execute(update(MemberNotice).where(
        MemberNotice.tenant_id == scope.id, MemberNotice.customer_id == customer_id,
        MemberNotice.read_at.is_(None)).values(read_at=clock.now()))


# -- admin: levels and settings ----------------------------------------------------------------------------


@admin.get("/levels", response_model=list[LevelOut], dependencies=[Depends(_write_request)],
           summary="The levels by rank (the defaults are saved on the first call)")
async def list_levels(session: UoW, me: Reader) -> list[LevelOut]:
    rows = await levels.ensure_levels(session, me.scope)
    return [level_out(levels.LevelView.of(r)) for r in rows]


@admin.post("/levels", response_model=LevelOut, status_code=201, summary="Add a level")
async def create_level(body: LevelIn, session: UoW, me: Writer) -> LevelOut:
    row = await levels.create_level(session, me.scope, body.data())
    return level_out(levels.LevelView.of(row))


@admin.get("/levels/{level_id}", response_model=LevelOut, summary="One level")
async def get_level(level_id: PathId, session: UoW, me: Reader) -> LevelOut:
    return level_out(levels.LevelView.of(await levels.get_level(session, me.scope, level_id)))


@admin.put("/levels/{level_id}", response_model=LevelOut,
           summary="Change a level (every field); members keep their level until their growth changes or the review")
async def put_level(level_id: PathId, body: LevelIn, session: UoW, me: Writer) -> LevelOut:
    row = await levels.update_level(session, me.scope, level_id, body.data())
    return level_out(levels.LevelView.of(row))


@admin.delete("/levels/{level_id}", status_code=204, response_class=Response,
              summary="Delete a level nobody holds and no card plan sells (not the base level)")
async def delete_level(level_id: PathId, session: UoW, me: Writer) -> Response:
    await levels.delete_level(session, me.scope, level_id)
    return Response(status_code=204)


@admin.get("/level-settings", response_model=GrowthSettingsOut, summary="Growth and level review settings")
async def get_settings(session: UoW, me: Reader) -> GrowthSettingsOut:
    return settings_out(await levels.growth_settings(session, me.scope))


@admin.put("/level-settings", response_model=GrowthSettingsOut,
           summary="Change growth and review settings (fields left out keep their value)")
async def put_settings(body: GrowthSettingsIn, session: UoW, me: Writer) -> GrowthSettingsOut:
    return settings_out(await levels.update_growth_settings(session, me.scope, **body.model_dump()))


# -- admin: member prices ------------------------------------------------------------------------------------


async def _prices_out(session: AsyncSession, scope: TenantScope, sku_id: int) -> MemberPricesOut:
    sku = await catalog_service.get_sku(session, scope, sku_id)
    prices = (await levels.member_prices(session, scope, [sku_id])).get(sku_id, {})
    return MemberPricesOut(sku_id=sku.sku_id, product_id=sku.product_id, title=sku.title, spec_text=sku.spec_text,
                           price_fen=sku.price_fen, prices={str(k): v for k, v in sorted(prices.items())})


@admin.get("/member-prices", response_model=Page[MemberPricesOut], summary="SKUs that have member prices, newest first")
async def list_member_prices(session: UoW, pages: Pages, me: Reader) -> Page[MemberPricesOut]:
    ids, total = await levels.priced_skus(session, me.scope, offset=pages.offset, limit=pages.page_size)
    items = []
    for sku_id in ids:
        try:
            items.append(await _prices_out(session, me.scope, sku_id))
        except NotFound:
            continue
    return Page(items=items, total=total, page=pages.page, page_size=pages.page_size)


@admin.get("/member-prices/{sku_id}", response_model=MemberPricesOut, summary="The member prices of one SKU")
async def get_member_prices(sku_id: PathId, session: UoW, me: Reader) -> MemberPricesOut:
    return await _prices_out(session, me.scope, sku_id)


@admin.put("/member-prices/{sku_id}", response_model=MemberPricesOut,
           summary="Set member prices of one SKU per level (null removes one; levels left out keep theirs)")
async def put_member_prices(sku_id: PathId, body: MemberPricesIn, session: UoW, me: Writer) -> MemberPricesOut:
    await levels.set_member_prices(session, me.scope, sku_id, {p.level_id: p.price_fen for p in body.prices})
    return await _prices_out(session, me.scope, sku_id)


# -- admin: members -----------------------------------------------------------------------------------------


DateFilter = Annotated[date | None, Query(description="A day in the shop's time zone (YYYY-MM-DD)")]


@admin.get("", response_model=Page[MemberRowOut],
           summary="Members: level, phone or nickname, registration days, birthday month, points range")
async def list_members(
    session: UoW, pages: Pages, me: Reader,
    level_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    q: Annotated[FilterText, Query(description="Phone (exact) or nickname (part)")] = None,
    registered_from: DateFilter = None,
    registered_to: DateFilter = None,
    birthday_month: Annotated[int | None, Query(ge=1, le=12)] = None,
    points_min: Annotated[int | None, Query(ge=0, le=10**12)] = None,
    points_max: Annotated[int | None, Query(ge=0, le=10**12)] = None,
) -> Page[MemberRowOut]:
    filters = levels.MemberFilters(level_id=level_id, q=q, registered_from=registered_from, registered_to=registered_to,
                                   birthday_month=birthday_month, points_min=points_min, points_max=points_max)
    rows, total = await levels.list_members(session, me.scope, filters, offset=pages.offset, limit=pages.page_size)
    items = [MemberRowOut(
        customer_id=r.member.customer_id, nickname=r.customer.nickname if r.customer else None,
        phone=(mask_phone(r.customer.phone) or None) if r.customer else None,
        customer_status=r.customer.status if r.customer else None, level=effective_out(r.level),
        growth=r.member.growth, points=r.member.points, birthday=r.member.birthday,
        gender=r.member.gender if r.member.gender in levels.GENDERS else "unknown",
        region=r.member.region, registered_at=r.member.registered_at) for r in rows]
    return Page(items=items, total=total, page=pages.page, page_size=pages.page_size)


@admin.get(MEMBER, response_model=MemberDetailOut, summary="One member: level, growth, points, balance, profile")
async def get_member(customer_id: PathId, session: UoW, me: Reader) -> MemberDetailOut:
    return await member_detail(session, me, customer_id)


@admin.patch(MEMBER + "/profile", response_model=MemberDetailOut,
             summary="Change a member's birthday, gender or region (audited); fields left out keep their value")
async def patch_profile(customer_id: PathId, body: StaffProfileIn, session: UoW, me: Writer) -> MemberDetailOut:
    given = body.model_fields_set
    await levels.update_profile(session, me.scope, customer_id,
                                birthday=body.birthday if "birthday" in given else levels.UNSET,
                                gender=body.gender, region=body.region, by_staff=True)
    return await member_detail(session, me, customer_id)


@admin.get(MEMBER + "/growth", response_model=list[GrowthEntryOut], summary="A member's growth history, newest first")
async def growth_history(customer_id: PathId, session: UoW, me: Reader, before_id: BeforeId = None,
                         limit: Limit = 20) -> list[GrowthEntryOut]:
    await customers_service.get_customer(session, me.scope, customer_id)
    rows = await levels.growth_history(session, me.scope, customer_id, limit=limit, before_id=before_id)
    return [GrowthEntryOut.model_validate(r) for r in rows]


@admin.post(MEMBER + "/growth/adjust", response_model=GrowthEntryOut, status_code=201,
            summary="Add or take growth with a reason (audited; never below zero)")
async def adjust_growth(customer_id: PathId, body: GrowthAdjustIn, session: UoW, me: Writer,
                        idempotency_key: IdemKey = None) -> GrowthEntryOut:
    entry: GrowthEntry = await levels.adjust_growth(session, me.scope, customer_id, body.amount, reason=body.reason,
                                                    token=idempotency_key)
    return GrowthEntryOut.model_validate(entry)
