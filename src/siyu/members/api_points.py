"""JSON endpoints of members: points.

* Store (``/api/store/v1/{shop}/member/points``, signed-in shopper): my balance with what
  expires soon, the check-in status and the rules a shopper needs (how many points pay ¥1,
  how many a yuan earns); my history, newest first (``before_id`` pages); check in today.
* Admin (``/api/admin/v1/members/points``): the points rules (``members.read`` to read,
  ``members.write`` to change; fields left out keep their value) and the tenant's latest
  entries; per member (``/api/admin/v1/members/{customer_id}/points``): balance and history,
  and a manual adjustment with a reason (``members.write``, audited). Another tenant's
  customer is a 404.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit.context import current_language
from siyu.kit.types import MAX_ID, PathId, no_control
from siyu.kit.web import ADMIN_ERRORS, UoW, problem_responses
from siyu.members import points
from siyu.members.models import PointsEntry
from siyu.staff.access import StaffPrincipal, require

store = APIRouter(prefix="/api/store/v1/{shop}/member/points", tags=["store: points"],
                  responses=problem_responses(400, 401, 403, 404, 409, 422))
admin = APIRouter(prefix="/api/admin/v1/members/points", tags=["admin: points"], responses=ADMIN_ERRORS)
admin_member = APIRouter(prefix="/api/admin/v1/members", tags=["admin: points"], responses=ADMIN_ERRORS)

#: Every router of this part; ``members.api`` gathers them.
routers: list[APIRouter] = [store, admin, admin_member]

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]
BeforeId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="The id of the last entry of the previous page")]
Limit = Annotated[int, Query(ge=1, le=100, description="Entries, at most 100")]
Kind = Annotated[str | None, Query(max_length=24, pattern=r"^[a-z_]+$", description="Only entries of this kind")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=points.REASON_MAX),
                   AfterValidator(no_control)]


# -- inputs -------------------------------------------------------------------------------------------------------


class AdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": 500, "reason": "线下活动补发积分"}, {"amount": -200, "reason": "误发扣回"}]})

    amount: int = Field(ge=-points.ADJUST_MAX, le=points.ADJUST_MAX, description="Points to add (negative: take away); not 0")
    reason: Reason


class RulesPatch(BaseModel):
    """Fields left out keep their value; ``awards`` replaces the amounts it names."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"earn_per_yuan": 1, "points_per_yuan": 100, "max_share_bp": 5000, "expiry_mode": "yearly"},
        {"awards": {"signup": 100, "review": 20}, "checkin_points": 10, "notice_days": 30}]})

    earn_per_yuan: int | None = Field(default=None, ge=0, le=1000)
    awards: dict[Annotated[str, StringConstraints(max_length=40)], Annotated[int, Field(ge=0, le=10_000_000)]] | None = None
    checkin_points: int | None = Field(default=None, ge=0, le=100_000)
    checkin_streak_days: int | None = Field(default=None, ge=0, le=365)
    checkin_streak_bonus: int | None = Field(default=None, ge=0, le=100_000)
    redeem_enabled: bool | None = None
    points_per_yuan: int | None = Field(default=None, ge=1, le=100_000)
    max_share_bp: int | None = Field(default=None, ge=0, le=10000)
    min_redeem_points: int | None = Field(default=None, ge=0, le=10_000_000)
    expiry_mode: Literal["never", "yearly", "rolling"] | None = None
    expiry_days: int | None = Field(default=None, ge=1, le=3650)
    notice_days: int | None = Field(default=None, ge=0, le=90)


# -- outputs ------------------------------------------------------------------------------------------------------


class EntryOut(BaseModel):
    id: int
    amount: int = Field(description="Positive: earned or returned; negative: spent, expired or taken back")
    balance_after: int
    kind: str
    kind_label: str
    note: str
    created_at: datetime


class AdminEntryOut(EntryOut):
    customer_id: int
    source_key: str
    staff_id: int | None


class HistoryOut(BaseModel):
    items: list[EntryOut]
    #: Pass as ``before_id`` for the next page (``None``: no more).
    next_before_id: int | None


class AdminHistoryOut(BaseModel):
    items: list[AdminEntryOut]
    next_before_id: int | None


class CheckinStatusOut(BaseModel):
    today: date
    checked_today: bool
    streak: int = Field(description="Days in a row up to today (or yesterday while today is still open)")
    points_today: int = Field(description="What checking in today gives, streak bonus included")


class CheckinOut(BaseModel):
    checked_in: bool = Field(description="False: already checked in today, nothing added")
    points: int
    bonus: int
    streak: int
    balance: int


class RulesSummaryOut(BaseModel):
    earn_per_yuan: int
    points_per_yuan: int
    max_share_bp: int
    redeem_enabled: bool
    checkin_points: int
    expiry_mode: str


class MyPointsOut(BaseModel):
    points: int
    available: int
    expiring: int = Field(description="Points expiring within the notice window")
    expiring_at: datetime | None
    checkin: CheckinStatusOut
    rules: RulesSummaryOut


class AwardRuleOut(BaseModel):
    name: str
    label: str
    points: int


class RulesOut(BaseModel):
    earn_per_yuan: int
    awards: dict[str, int]
    award_rules: list[AwardRuleOut]
    checkin_points: int
    checkin_streak_days: int
    checkin_streak_bonus: int
    redeem_enabled: bool
    points_per_yuan: int
    max_share_bp: int
    min_redeem_points: int
    expiry_mode: str
    expiry_days: int
    notice_days: int


class MemberPointsOut(BaseModel):
    customer_id: int
    points: int
    available: int
    expiring: int
    expiring_at: datetime | None
    history: AdminHistoryOut


# -- shaping ------------------------------------------------------------------------------------------------------


def _en() -> bool:
    return current_language().startswith("en")


def _entry_fields(e: PointsEntry) -> dict[str, object]:
    return {"id": e.id, "amount": e.amount, "balance_after": e.balance_after, "kind": e.kind,
            "kind_label": points.kind_label(e.kind, _en()), "note": e.note, "created_at": e.created_at}


def entry_out(e: PointsEntry) -> EntryOut:
    return EntryOut(**_entry_fields(e))


def admin_entry_out(e: PointsEntry) -> AdminEntryOut:
    return AdminEntryOut(**_entry_fields(e), customer_id=e.customer_id, source_key=e.source_key,
                         staff_id=e.staff_id)


def _next(rows: list[PointsEntry], limit: int) -> int | None:
    return rows[-1].id if len(rows) == limit and rows else None


def rules_out(r: points.PointsRules) -> RulesOut:
    data = r.as_dict()
    return RulesOut(**data, award_rules=[AwardRuleOut(name=a.name, label=a.label_en if _en() else a.label_zh,
                                                      points=r.award_points(a.name)) for a in points.award_rules()])


def _me(shopper: ShopperSession) -> int:
    assert shopper.customer is not None
    return shopper.customer.id


# -- store ----------------------------------------------------------------------------------------------------------


@store.get("", response_model=MyPointsOut, summary="My points: balance, expiring soon, check-in and the rules")
async def my_points(shopper: CurrentShopper, session: UoW) -> MyPointsOut:
    scope = shopper.shop.scope
    r = await points.rules(session, scope)
    b = await points.balance(session, scope, _me(shopper), r=r)
    c = await points.checkin_status(session, scope, _me(shopper), r=r)
    return MyPointsOut(points=b.points, available=b.available, expiring=b.expiring, expiring_at=b.expiring_at,
                       checkin=CheckinStatusOut(today=c.today, checked_today=c.checked_today, streak=c.streak,
                                                points_today=c.points_today),
                       rules=RulesSummaryOut(earn_per_yuan=r.earn_per_yuan, points_per_yuan=r.points_per_yuan,
                                             max_share_bp=r.max_share_bp, redeem_enabled=r.redeem_enabled,
                                             checkin_points=r.checkin_points, expiry_mode=r.expiry_mode))


@store.get("/history", response_model=HistoryOut, summary="My points history, newest first")
async def my_history(shopper: CurrentShopper, session: UoW, before_id: BeforeId = None, limit: Limit = 20) -> HistoryOut:
    rows = await points.history(session, shopper.shop.scope, _me(shopper), limit=limit, before_id=before_id)
    return HistoryOut(items=[entry_out(e) for e in rows], next_before_id=_next(rows, limit))


@store.post("/checkin", response_model=CheckinOut, summary="Check in for today (once a day, in the shop's time zone)")
async def check_in(shopper: CurrentShopper, session: UoW) -> CheckinOut:
    scope = shopper.shop.scope
    res = await points.checkin(session, scope, _me(shopper))
    b = await points.balance(session, scope, _me(shopper))
    return CheckinOut(checked_in=res.checked_in, points=res.points, bonus=res.bonus, streak=res.streak, balance=b.points)


# -- admin ----------------------------------------------------------------------------------------------------------


@admin.get("/rules", response_model=RulesOut, summary="The points rules: earning, check-in, checkout and expiry")
async def get_rules(session: UoW, me: Reader) -> RulesOut:
    return rules_out(await points.rules(session, me.scope))


@admin.put("/rules", response_model=RulesOut, summary="Change the points rules (fields left out keep their value)")
async def put_rules(body: RulesPatch, session: UoW, me: Writer) -> RulesOut:
    current = (await points.rules(session, me.scope)).as_dict()
    patch = body.model_dump(exclude_none=True)
    if "awards" in patch:
        patch["awards"] = {**current["awards"], **patch["awards"]}
    saved = await points.save_rules(session, me.scope, points.PointsRulesIn(**{**current, **patch}))
    return rules_out(saved)


@admin.get("/entries", response_model=list[AdminEntryOut], summary="The latest points entries of every member")
async def latest_entries(session: UoW, me: Reader, kind: Kind = None, limit: Limit = 50) -> list[AdminEntryOut]:
    return [admin_entry_out(e) for e in await points.recent_entries(session, me.scope, limit=limit, kind=kind)]


@admin_member.get("/{customer_id}/points", response_model=MemberPointsOut,
                  summary="A member's points: balance, expiring soon and history")
async def member_points(customer_id: PathId, session: UoW, me: Reader, before_id: BeforeId = None,
                        limit: Limit = 20) -> MemberPointsOut:
    await customers_service.get_customer(session, me.scope, customer_id)
    b = await points.balance(session, me.scope, customer_id)
    rows = await points.history(session, me.scope, customer_id, limit=limit, before_id=before_id)
    return MemberPointsOut(customer_id=customer_id, points=b.points, available=b.available, expiring=b.expiring,
                           expiring_at=b.expiring_at,
                           history=AdminHistoryOut(items=[admin_entry_out(e) for e in rows], next_before_id=_next(rows, limit)))


@admin_member.post("/{customer_id}/points/adjust", response_model=AdminEntryOut, status_code=201,
                   summary="Add or take away points by hand, with a reason (audited)")
async def adjust(customer_id: PathId, body: AdjustIn, session: UoW, me: Writer) -> AdminEntryOut:
    return admin_entry_out(await points.adjust(session, me.scope, customer_id, body.amount, reason=body.reason))
