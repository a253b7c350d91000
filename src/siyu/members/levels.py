"""Member levels (会员等级), growth (成长值), member prices and the member profile.

Levels
------
A tenant's levels are ranked (``rank`` 0 is where every member starts). The four defaults —
普通会员 0, 银卡会员 1,000, 金卡会员 5,000, 黑金会员 20,000 growth — are written the first
time a write needs them (:func:`ensure_levels`); reads before that see the same defaults
unsaved (``id`` 0). A level reached by growth is never ``paid_only``; a ``paid_only`` level
is held only through a paid membership card (cards part). Among the levels reached by
growth the thresholds rise strictly with the rank, so "the level of a growth" is one
level: the highest-ranked one whose threshold it reaches.

Benefits of a level: ``price_rate_bp`` (what a member pays, 9500 = 9.5 折), member prices
per SKU (:class:`SkuMemberPrice`, which beat the rate), ``free_shipping``,
``points_multiplier_bp`` (points part), ``priority_shipping`` (a 优先发货 badge on the
order), ``birthday_points`` / ``birthday_coupon_id`` (birthday part).

Effective level = the higher-ranked of the growth level (``Member.level_id``) and the level
of a paid card that has not expired (``Member.card_level_id`` until ``card_expires_at``):
:func:`effective_level`.

Growth
------
An append-only ledger (:class:`GrowthEntry`, unique ``source_key`` per tenant) with the
running total on ``Member.growth``; both change together in :func:`add_growth`, under the
member's row lock, by a conditional update that never lets the total go below zero.

* ``order.paid``: ``(paid_fen + balance_fen) × growth_per_yuan // 100`` (stored value is
  money too; points are not), source ``order:<id>``; the first paid order also earns the
  ``first_order`` action (source ``first_order:<customer>``).
* actions (:func:`award_action`): ``signup`` (``customer.registered``), ``first_order``,
  ``checkin`` (points part calls it), ``review`` — amounts in the settings.
* ``after_sale.refunded``: the growth of the refunded units goes back. The order's growth
  ``G`` is spread over its lines by largest remainder, weighted by the money each line took
  (its ``paid_fen`` plus its share of stored value); a line that earned ``g`` and has
  ``r`` of ``n`` units refunded owes ``g·r // n``. The handler takes back the order's total
  owed minus what earlier refunds of the order took (sources ``order:<id>:refund:<case>``),
  so several partial refunds, in any order, add up exactly, and a full refund takes ``G``.
  A take-back never goes below zero (it takes what is there).
* staff adjustments with a reason (:func:`adjust_growth`, audited; ``409
  insufficient_growth`` rather than going below zero).
* ``customer.merged``: the merged-away customer's growth moves to the survivor (sources
  ``merge:<loser>:out`` / ``merge:<loser>:in``); later events naming the merged-away customer
  (a late payment, a refund of its order) count for the survivor.

Level changes
-------------
The growth that counts (:func:`counted_growth`) is the lifetime total when the review
policy is ``never``, otherwise the growth earned in the last ``window_days`` days.

* Growth added → the member moves **up at once** to the level of the counted growth
  (MemberNotice ``level_up``). It never moves down on a gain.
* Growth taken back (refund, staff) → the member moves down at once if the counted growth no
  longer reaches its level: growth that was taken back was never earned.
* The **review** (policy ``monthly`` / ``quarterly`` / ``yearly``) runs at the start of each
  period in the tenant's time zone: ``Member.level_review_at`` is the deadline, swept by
  ``members.level_review``; the member's level becomes the level of the growth earned in the
  last ``window_days`` days (down or up; MemberNotice ``level_down``/``level_up``). Members
  at the base level have no deadline. Changing the policy reschedules every member at once.

Member price step
-----------------
A pricing adjuster at step ``member``: per line, the member price of the member's effective
level for that SKU (capped at the price) beats the level's ``price_rate_bp``; the offer
carries ``data={"level_id", "level_name", "via", "free_shipping", "priority_shipping"}``
(``free_shipping`` waives the freight). Visitors, members without a benefit and
points-mall orders (``options["mall_item_id"]``) get no offer.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.customers import service as customers_service
from siyu.customers.models import Customer
from siyu.kit import audit, clock, outbox
from siyu.kit.errors import Conflict, DomainError, NotFound, ValidationFailed
from siyu.kit.money import allocate, apply_rate
from siyu.kit.tenancy import TenantScope
from siyu.members import rewards
from siyu.members import service as members_service
from siyu.members.models import (
    GrowthEntry,
    Member,
    MemberCardPlan,
    MemberLevel,
    MemberNotice,
    SkuMemberPrice,
)
from siyu.orders import pricing
from siyu.orders import service as orders_service
from siyu.tenants import service as tenants_service

log = logging.getLogger("siyu.members.levels")

SETTINGS_SECTION = "levels"
MAX_LEVELS = 20
MAX_RANK = 99
MAX_THRESHOLD = 100_000_000
MAX_ADJUST = 1_000_000
MAX_MEMBER_PRICE = 99_999_999
#: What a growth-earning action gives at most.
MAX_ACTION_GROWTH = 10_000
ACTIONS = ("signup", "first_order", "checkin", "review")
REVIEW_POLICIES = ("never", "monthly", "quarterly", "yearly")
GENDERS = ("unknown", "male", "female")
MAX_REGION = 60
OFFER_CODE = "member_level"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")

audit.describe(
    actions={
        "members.level.create": "新建会员等级", "members.level.update": "修改会员等级", "members.level.delete": "删除会员等级",
        "members.growth.adjust": "调整成长值", "members.profile.update": "修改会员资料",
        "members.member_prices.update": "修改会员价", "members.settings.levels": "修改成长值与等级规则",
    },
    objects={"member_level": "会员等级", "member": "会员", "sku": "商品规格", "member_settings": "会员设置"},
)


# -- views ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LevelView:
    """A level and its benefits, as other parts read it (``id`` 0: the tenant's levels are not
    saved yet and this is one of the defaults)."""

    id: int
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
    #: Where a member's effective level comes from: ``growth`` or ``card`` (a paid card).
    via: str = "growth"
    #: The paid card's end, when ``via == "card"``.
    card_expires_at: datetime | None = None

    @property
    def has_price_benefit(self) -> bool:
        return self.price_rate_bp < 10000

    @classmethod
    def of(cls, row: MemberLevel) -> LevelView:
        return cls(id=row.id, rank=row.rank, name=row.name, growth_threshold=row.growth_threshold,
                   paid_only=row.paid_only, price_rate_bp=row.price_rate_bp, free_shipping=row.free_shipping,
                   points_multiplier_bp=row.points_multiplier_bp, priority_shipping=row.priority_shipping,
                   birthday_points=row.birthday_points, birthday_coupon_id=row.birthday_coupon_id, color=row.color,
                   description=row.description)


#: The levels a tenant starts with. Only growth thresholds, points multipliers and birthday
#: points: a price discount or free shipping changes what orders cost, which the merchant
#: decides (in the level editor), not the software.
DEFAULT_LEVELS: tuple[dict[str, Any], ...] = (
    {"rank": 0, "name": "普通会员", "growth_threshold": 0, "color": "#8c8c8c", "points_multiplier_bp": 10000,
     "birthday_points": 0, "description": "注册即成为会员"},
    {"rank": 1, "name": "银卡会员", "growth_threshold": 1_000, "color": "#94a3b8", "points_multiplier_bp": 12000,
     "birthday_points": 100, "description": "成长值达到 1,000"},
    {"rank": 2, "name": "金卡会员", "growth_threshold": 5_000, "color": "#d4a017", "points_multiplier_bp": 15000,
     "birthday_points": 300, "description": "成长值达到 5,000"},
    {"rank": 3, "name": "黑金会员", "growth_threshold": 20_000, "color": "#1f2937", "points_multiplier_bp": 20000,
     "birthday_points": 800, "description": "成长值达到 20,000"},
)


def _default_views() -> list[LevelView]:
    return [LevelView(id=0, rank=d["rank"], name=d["name"], growth_threshold=d["growth_threshold"], paid_only=False,
                      price_rate_bp=10000, free_shipping=False, points_multiplier_bp=d["points_multiplier_bp"],
                      priority_shipping=False, birthday_points=d["birthday_points"], birthday_coupon_id=None,
                      color=d["color"], description=d["description"]) for d in DEFAULT_LEVELS]


def zhe(rate_bp: int) -> str:
    """9500 → "9.5折", 8850 → "8.85折", 10000 → "" (no discount)."""
    if rate_bp >= 10000:
        return ""
    text = f"{rate_bp / 1000:.2f}".rstrip("0").rstrip(".")
    return f"{text}折"


def percent_off(rate_bp: int) -> str:
    """9500 → "5% off" (the English of :func:`zhe`)."""
    if rate_bp >= 10000:
        return ""
    text = f"{(10000 - rate_bp) / 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}% off"


def multiplier_text(bp: int) -> str:
    """15000 → "1.5"."""
    return f"{bp / 10000:.2f}".rstrip("0").rstrip(".")


def benefits(level: LevelView, *, english: bool = False) -> list[str]:
    """The benefits of a level in words, for pages and offers."""
    out: list[str] = []
    if level.has_price_benefit:
        out.append(percent_off(level.price_rate_bp) if english else f"全场{zhe(level.price_rate_bp)}")
    if level.free_shipping:
        out.append("Free shipping" if english else "包邮")
    if level.points_multiplier_bp != 10000:
        m = multiplier_text(level.points_multiplier_bp)
        out.append(f"{m}× points" if english else f"{m} 倍积分")
    if level.priority_shipping:
        out.append("Priority shipping" if english else "优先发货")
    if level.birthday_points:
        out.append(f"{level.birthday_points} birthday points" if english else f"生日赠 {level.birthday_points} 积分")
    if level.birthday_coupon_id:
        out.append("Birthday coupon" if english else "生日优惠券")
    return out


# -- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrowthSettings:
    """``Tenant.settings["members"]["levels"]``."""

    #: Growth per yuan of money paid (paid through the gateway or with stored value).
    growth_per_yuan: int = 1
    signup: int = 10
    first_order: int = 20
    checkin: int = 1
    review: int = 5
    #: never | monthly | quarterly | yearly
    review_policy: str = "never"
    #: With a review policy: growth earned in this many days counts.
    window_days: int = 365

    def action(self, name: str) -> int:
        return int(getattr(self, name))

    def as_dict(self) -> dict[str, Any]:
        return {"growth_per_yuan": self.growth_per_yuan, "signup": self.signup, "first_order": self.first_order,
                "checkin": self.checkin, "review": self.review, "review_policy": self.review_policy,
                "window_days": self.window_days}


SETTING_RANGES: dict[str, tuple[int, int]] = {
    "growth_per_yuan": (0, 100), "signup": (0, MAX_ACTION_GROWTH), "first_order": (0, MAX_ACTION_GROWTH),
    "checkin": (0, MAX_ACTION_GROWTH), "review": (0, MAX_ACTION_GROWTH), "window_days": (30, 1095),
}
SETTING_LABELS = {"growth_per_yuan": "每消费 1 元获得成长值", "signup": "注册", "first_order": "首次下单",
                  "checkin": "每日签到", "review": "评价", "review_policy": "等级评定周期", "window_days": "统计最近天数"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _settings_from(raw: dict[str, Any]) -> GrowthSettings:
    """Stored values out of range (an older release, a hand edit) fall back to the default."""
    d = GrowthSettings()
    values: dict[str, Any] = {}
    for key, (lo, hi) in SETTING_RANGES.items():
        v = raw.get(key)
        values[key] = v if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi else getattr(d, key)
    policy = raw.get("review_policy")
    values["review_policy"] = policy if policy in REVIEW_POLICIES else d.review_policy
    return GrowthSettings(**values)


async def growth_settings(session: AsyncSession, scope: TenantScope) -> GrowthSettings:
    return _settings_from(await members_service.section(session, scope, SETTINGS_SECTION))


async def update_growth_settings(session: AsyncSession, scope: TenantScope, **changes: Any) -> GrowthSettings:
    """Change some settings (``None`` keeps a value); staff, audited. A new review policy
    reschedules every member above the base level at once (or clears their deadline)."""
    errors: list[dict[str, str]] = []
    for key, value in changes.items():
        if value is None:
            continue
        if key == "review_policy":
            if value not in REVIEW_POLICIES:
                errors.append({"field": key, "message": f"one of {', '.join(REVIEW_POLICIES)}"})
        elif key in SETTING_RANGES:
            lo, hi = SETTING_RANGES[key]
            if not _is_int(value) or not lo <= value <= hi:
                errors.append({"field": key, "message": f"must be a whole number from {lo} to {hi}"})
        else:
            raise ValueError(f"unknown growth setting {key!r}")
    if errors:
        zh = "、".join(
            f"{SETTING_LABELS[e['field']]}需为 {SETTING_RANGES[e['field']][0]}–{SETTING_RANGES[e['field']][1]} 的整数"
            if e["field"] in SETTING_RANGES else f"{SETTING_LABELS[e['field']]}无效" for e in errors)
        raise ValidationFailed("level_settings_invalid", zh, "Some growth settings are invalid", fields=errors)
    before = await growth_settings(session, scope)
    after = replace(before, **{k: v for k, v in changes.items() if v is not None})
    await members_service.save_section(session, scope, SETTINGS_SECTION, after.as_dict())
    if after.review_policy != before.review_policy:
        await _reschedule_reviews(session, scope, after)
    return after


# -- levels -----------------------------------------------------------------------------------------


async def _level_rows(session: AsyncSession, scope: TenantScope) -> list[MemberLevel]:
    stmt = select(MemberLevel).where(MemberLevel.tenant_id == scope.id).order_by(MemberLevel.rank)
    return list((await session.execute(stmt)).scalars().all())


def _insert_ignore_levels(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(MemberLevel).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(MemberLevel).on_conflict_do_nothing()


async def ensure_levels(session: AsyncSession, scope: TenantScope) -> list[MemberLevel]:
    """The tenant's levels, writing the defaults first if it has none (two first uses at once
    write them once: ``ON CONFLICT DO NOTHING`` on the rank)."""
    rows = await _level_rows(session, scope)
    if rows:
        return rows
    now = clock.now()
    await session.execute(_insert_ignore_levels(session), [
        {"tenant_id": scope.id, "rank": d["rank"], "name": d["name"], "growth_threshold": d["growth_threshold"],
         "paid_only": False, "price_rate_bp": 10000, "free_shipping": False,
         "points_multiplier_bp": d["points_multiplier_bp"], "priority_shipping": False,
         "birthday_points": d["birthday_points"], "color": d["color"], "description": d["description"],
         "created_at": now, "updated_at": now} for d in DEFAULT_LEVELS])
    return await _level_rows(session, scope)


async def list_levels(session: AsyncSession, scope: TenantScope) -> list[LevelView]:
    """Every level by rank (the unsaved defaults while the tenant has none). Never writes."""
    rows = await _level_rows(session, scope)
    return [LevelView.of(r) for r in rows] if rows else _default_views()


def level_not_found() -> NotFound:
    return NotFound("level_not_found", "会员等级不存在", "Member level not found")


async def get_level(session: AsyncSession, scope: TenantScope, level_id: int) -> MemberLevel:
    row = (await session.execute(select(MemberLevel).where(
        MemberLevel.tenant_id == scope.id, MemberLevel.id == level_id))).scalar_one_or_none()
    if row is None:
        raise level_not_found()
    return row


def base_level(levels: Sequence[LevelView]) -> LevelView:
    return min(levels, key=lambda lv: lv.rank)


def growth_levels(levels: Sequence[LevelView]) -> list[LevelView]:
    """The levels growth reaches, by rank."""
    return sorted((lv for lv in levels if not lv.paid_only), key=lambda lv: lv.rank)


def level_for_growth(levels: Sequence[LevelView], growth: int) -> LevelView:
    """The highest-ranked level reached by growth whose threshold ``growth`` reaches."""
    found = base_level(levels)
    for lv in growth_levels(levels):
        if lv.growth_threshold <= growth and lv.rank >= found.rank:
            found = lv
    return found


def next_level(levels: Sequence[LevelView], current: LevelView) -> LevelView | None:
    """The next level growth leads to after ``current`` (None at the top)."""
    return next((lv for lv in growth_levels(levels) if lv.rank > current.rank), None)


@dataclass(frozen=True, slots=True)
class LevelData:
    """What the level editor sends (API and console alike); checked by the service."""

    name: str
    rank: int
    growth_threshold: int = 0
    paid_only: bool = False
    price_rate_bp: int = 10000
    free_shipping: bool = False
    points_multiplier_bp: int = 10000
    priority_shipping: bool = False
    birthday_points: int = 0
    birthday_coupon_id: int | None = None
    color: str = "#8c8c8c"
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in LEVEL_FIELDS}


LEVEL_FIELDS = ("name", "rank", "growth_threshold", "paid_only", "price_rate_bp", "free_shipping",
                "points_multiplier_bp", "priority_shipping", "birthday_points", "birthday_coupon_id", "color",
                "description")


def _bad(field_name: str, code: str, zh: str, en: str) -> ValidationFailed:
    return ValidationFailed(code, zh, en, fields=[{"field": field_name, "message": en}])


async def _check_level(session: AsyncSession, scope: TenantScope, data: LevelData,
                       others: Sequence[MemberLevel]) -> LevelData:
    """Field and cross-level rules; returns the data as it will be stored."""
    name = " ".join((data.name or "").split())
    if not name or len(name) > 20 or _CONTROL.search(name):
        raise _bad("name", "level_name_invalid", "等级名称需为 1–20 个字符", "The name must be 1–20 characters")
    if any(o.name == name for o in others):
        raise _bad("name", "level_name_taken", "已有同名的会员等级", "Another level has this name")
    if not _is_int(data.rank) or not 0 <= data.rank <= MAX_RANK:
        raise _bad("rank", "level_rank_invalid", f"等级序号需为 0–{MAX_RANK}", f"The rank must be 0–{MAX_RANK}")
    if any(o.rank == data.rank for o in others):
        raise _bad("rank", "level_rank_taken", "已有相同序号的会员等级", "Another level has this rank")
    lowest = min([o.rank for o in others] + [data.rank])
    if data.rank == lowest and data.paid_only:
        raise _bad("paid_only", "level_base_paid_only", "最低等级不能设为仅付费获得",
                   "The base level cannot be paid-only")
    if not _is_int(data.growth_threshold) or not 0 <= data.growth_threshold <= MAX_THRESHOLD:
        raise _bad("growth_threshold", "level_threshold_invalid", f"成长值门槛需为 0–{MAX_THRESHOLD:,}",
                   f"The growth threshold must be 0–{MAX_THRESHOLD:,}")
    threshold = 0 if data.paid_only else data.growth_threshold
    if data.rank == lowest and not data.paid_only and threshold != 0:
        raise _bad("growth_threshold", "level_base_threshold", "最低等级的成长值门槛必须为 0",
                   "The base level's growth threshold must be 0")
    if not data.paid_only:
        for o in others:
            if o.paid_only:
                continue
            if (o.rank < data.rank and o.growth_threshold >= threshold) or (
                    o.rank > data.rank and o.growth_threshold <= threshold):
                raise _bad("growth_threshold", "level_threshold_order",
                           f"成长值门槛需随等级升高而增加（{o.name}：{o.growth_threshold:,}）",
                           f"Thresholds must rise with the rank ({o.name}: {o.growth_threshold:,})")
    if not _is_int(data.price_rate_bp) or not 1000 <= data.price_rate_bp <= 10000:
        raise _bad("price_rate_bp", "level_rate_invalid", "会员折扣需为 1–10 折", "The member rate must be 10%–100% of the price")
    if not _is_int(data.points_multiplier_bp) or not 10000 <= data.points_multiplier_bp <= 100000:
        raise _bad("points_multiplier_bp", "level_multiplier_invalid", "积分倍数需为 1–10 倍",
                   "The points multiplier must be 1–10")
    if not _is_int(data.birthday_points) or not 0 <= data.birthday_points <= 1_000_000:
        raise _bad("birthday_points", "level_birthday_points_invalid", "生日积分需为 0–1,000,000",
                   "Birthday points must be 0–1,000,000")
    coupon = data.birthday_coupon_id
    if coupon is not None:
        choices = {cid for cid, _name in await rewards.coupon_choices(session, scope)}
        if not rewards.coupons_available() or coupon not in choices:
            raise _bad("birthday_coupon_id", "level_coupon_invalid", "所选优惠券不可用", "That coupon cannot be chosen")
    color = (data.color or "").strip()
    if not _COLOR.match(color):
        raise _bad("color", "level_color_invalid", "颜色需为 #RRGGBB 格式", "The colour must be #RRGGBB")
    description = " ".join((data.description or "").split())
    if len(description) > 200 or _CONTROL.search(description):
        raise _bad("description", "level_description_invalid", "说明最多 200 个字符",
                   "The description may be at most 200 characters")
    return replace(data, name=name, growth_threshold=threshold, color=color.lower(), description=description)


async def create_level(session: AsyncSession, scope: TenantScope, data: LevelData) -> MemberLevel:
    rows = await ensure_levels(session, scope)
    if len(rows) >= MAX_LEVELS:
        raise Conflict("too_many_levels", f"最多设置 {MAX_LEVELS} 个会员等级", f"At most {MAX_LEVELS} levels")
    clean = await _check_level(session, scope, data, rows)
    if clean.rank < min(r.rank for r in rows):
        raise _bad("rank", "level_rank_below_base", "新等级的序号不能低于最低等级", "A new level cannot rank below the base level")
    row = MemberLevel(tenant_id=scope.id, **clean.as_dict())
    session.add(row)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="members.level.create", object_type="member_level",
                 object_id=row.id, after=clean.as_dict())
    return row


async def _holders(session: AsyncSession, scope: TenantScope, level_id: int, *, growth_only: bool = False) -> int:
    cond = Member.level_id == level_id if growth_only else (Member.level_id == level_id) | (Member.card_level_id == level_id)
    stmt = select(func.count()).select_from(Member).where(Member.tenant_id == scope.id, cond)
    return int((await session.execute(stmt)).scalar_one())


async def update_level(session: AsyncSession, scope: TenantScope, level_id: int, data: LevelData) -> MemberLevel:
    """Change a level. Members keep their level until their growth next changes or the review
    runs. The base level keeps its rank, a threshold of 0 and stays reachable by growth."""
    await ensure_levels(session, scope)
    row = await get_level(session, scope, level_id)
    rows = await _level_rows(session, scope)
    lowest = min(r.rank for r in rows)
    if row.rank == lowest and data.rank != row.rank:
        raise _bad("rank", "level_base_rank", "最低等级的序号不能修改", "The base level's rank cannot change")
    if row.rank != lowest and data.rank <= lowest:
        raise _bad("rank", "level_rank_below_base", "序号不能低于或等于最低等级", "The rank must be above the base level")
    clean = await _check_level(session, scope, data, [r for r in rows if r.id != row.id])
    if clean.paid_only and not row.paid_only and await _holders(session, scope, row.id, growth_only=True):
        raise Conflict("level_in_use", "已有会员通过成长值达到该等级，不能改为仅付费获得",
                       "Members hold this level by growth; it cannot become paid-only")
    before = {k: getattr(row, k) for k in LEVEL_FIELDS}
    after = clean.as_dict()
    if before == after:
        return row
    for k, v in after.items():
        setattr(row, k, v)
    row.updated_at = clock.now()
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="members.level.update", object_type="member_level",
                 object_id=row.id, before=before, after=after)
    return row


async def delete_level(session: AsyncSession, scope: TenantScope, level_id: int) -> None:
    """Delete a level nobody holds and no card plan sells (its member prices go with it)."""
    row = await get_level(session, scope, level_id)
    rows = await _level_rows(session, scope)
    if row.rank == min(r.rank for r in rows):
        raise Conflict("level_base", "最低等级不能删除", "The base level cannot be deleted")
    if await _holders(session, scope, row.id):
        raise Conflict("level_in_use", "还有会员处于该等级，不能删除", "Members hold this level; it cannot be deleted")
    plans = (await session.execute(select(func.count()).select_from(MemberCardPlan).where(
        MemberCardPlan.tenant_id == scope.id, MemberCardPlan.level_id == row.id))).scalar_one()
    if plans:
        raise Conflict("level_in_use", "有付费会员卡使用该等级，不能删除", "A paid card plan uses this level; it cannot be deleted")
    before = {k: getattr(row, k) for k in LEVEL_FIELDS}
    await session.execute(delete(SkuMemberPrice).where(SkuMemberPrice.tenant_id == scope.id,
                                                       SkuMemberPrice.level_id == row.id))
    await session.delete(row)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="members.level.delete", object_type="member_level",
                 object_id=level_id, before=before)


# -- member prices ----------------------------------------------------------------------------------


async def member_prices(session: AsyncSession, scope: TenantScope, sku_ids: Sequence[int]) -> dict[int, dict[int, int]]:
    """sku_id → {level_id: price_fen} for the SKUs that have member prices."""
    if not sku_ids:
        return {}
    rows = (await session.execute(select(SkuMemberPrice).where(
        SkuMemberPrice.tenant_id == scope.id, SkuMemberPrice.sku_id.in_(sorted(set(sku_ids)))))).scalars().all()
    out: dict[int, dict[int, int]] = {}
    for r in rows:
        out.setdefault(r.sku_id, {})[r.level_id] = r.price_fen
    return out


async def priced_skus(session: AsyncSession, scope: TenantScope, *, offset: int = 0, limit: int = 20,
                      ) -> tuple[list[int], int]:
    """SKUs that have at least one member price, newest first, and how many there are."""
    base = (select(SkuMemberPrice.sku_id, func.max(SkuMemberPrice.id).label("last"))
            .where(SkuMemberPrice.tenant_id == scope.id).group_by(SkuMemberPrice.sku_id))
    total = int((await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one())
    ids = (await session.execute(base.order_by(func.max(SkuMemberPrice.id).desc()).offset(offset).limit(limit))).all()
    return [int(r[0]) for r in ids], total


async def set_member_prices(session: AsyncSession, scope: TenantScope, sku_id: int,
                            prices: Mapping[int, int | None]) -> dict[int, int]:
    """Set the member prices of one SKU: ``{level_id: price_fen}``; ``None`` removes a level's
    price, levels not named keep theirs. A price must be 1 fen to the SKU's price. Audited."""
    sku = await catalog_service.get_sku(session, scope, sku_id)
    rows = await ensure_levels(session, scope)
    by_id = {r.id: r for r in rows}
    errors: list[dict[str, str]] = []
    for level_id, price in prices.items():
        if level_id not in by_id:
            raise level_not_found()
        if price is not None and (not _is_int(price) or not 1 <= price <= min(sku.price_fen, MAX_MEMBER_PRICE)):
            errors.append({"field": f"price_{level_id}", "message": f"must be 1–{sku.price_fen} fen"})
    if errors:
        raise ValidationFailed("member_price_invalid", f"会员价需为 ¥0.01 至售价 ¥{sku.price_fen / 100:.2f}",
                               f"A member price must be ¥0.01 up to the price ¥{sku.price_fen / 100:.2f}",
                               fields=errors)
    current = (await member_prices(session, scope, [sku_id])).get(sku_id, {})
    after = dict(current)
    now = clock.now()
    for level_id, price in sorted(prices.items()):
        if price is None:
            if level_id in after:
                await session.execute(delete(SkuMemberPrice).where(
                    SkuMemberPrice.tenant_id == scope.id, SkuMemberPrice.sku_id == sku_id,
                    SkuMemberPrice.level_id == level_id))
                del after[level_id]
        elif level_id in after:
            if after[level_id] != price:
                await session.execute(update(SkuMemberPrice).where(
                    SkuMemberPrice.tenant_id == scope.id, SkuMemberPrice.sku_id == sku_id,
                    SkuMemberPrice.level_id == level_id).values(price_fen=price, updated_at=now))
                after[level_id] = price
        else:
            session.add(SkuMemberPrice(tenant_id=scope.id, sku_id=sku_id, level_id=level_id, price_fen=price,
                                       updated_at=now))
            after[level_id] = price
    await session.flush()
    if after != current:
        audit.record(session, tenant_id=scope.id, action="members.member_prices.update", object_type="sku",
                     object_id=sku_id, before={str(k): v for k, v in current.items()},
                     after={str(k): v for k, v in after.items()})
    return after


# -- members ---------------------------------------------------------------------------------------


async def _member_row(session: AsyncSession, scope: TenantScope, customer_id: int, *, lock: bool = False) -> Member | None:
    stmt = (select(Member).where(Member.tenant_id == scope.id, Member.customer_id == customer_id)
            .execution_options(populate_existing=True))
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def _locked_member(session: AsyncSession, scope: TenantScope, customer_id: int) -> Member:
    await members_service.ensure_member(session, scope, customer_id)
    member = await _member_row(session, scope, customer_id, lock=True)
    assert member is not None
    return member


def _growth_level_of(levels: Sequence[LevelView], member: Member | None) -> LevelView:
    """The level a member holds by growth (the base level when it has none yet)."""
    if member is not None and member.level_id is not None:
        found = next((lv for lv in levels if lv.id == member.level_id), None)
        if found is not None and not found.paid_only:
            return found
    return base_level(levels)


def _effective(levels: Sequence[LevelView], member: Member | None, now: datetime | None = None) -> LevelView:
    grown = _growth_level_of(levels, member)
    if member is None or member.card_level_id is None or member.card_expires_at is None:
        return grown
    if member.card_expires_at <= (now or clock.now()):
        return grown
    card = next((lv for lv in levels if lv.id == member.card_level_id), None)
    if card is None or card.rank <= grown.rank:
        return grown
    return replace(card, via="card", card_expires_at=member.card_expires_at)


async def effective_level(session: AsyncSession, scope: TenantScope, customer_id: int) -> LevelView:
    """The level whose benefits a customer enjoys now: the higher of its growth level and an
    unexpired paid card's level (``via`` says which). Never writes."""
    levels = await list_levels(session, scope)
    return _effective(levels, await _member_row(session, scope, customer_id))


async def counted_growth(session: AsyncSession, scope: TenantScope, member: Member, settings: GrowthSettings,
                         *, now: datetime | None = None) -> int:
    """The growth that decides the level: lifetime growth with no review policy, otherwise the
    growth earned in the last ``window_days`` days (never below zero)."""
    if settings.review_policy == "never":
        return max(0, int(member.growth))
    since = (now or clock.now()) - timedelta(days=settings.window_days)
    total = (await session.execute(select(func.coalesce(func.sum(GrowthEntry.amount), 0)).where(
        GrowthEntry.tenant_id == scope.id, GrowthEntry.customer_id == member.customer_id,
        GrowthEntry.created_at > since))).scalar_one()
    return max(0, min(int(total), int(member.growth)))


def next_review_at(policy: str, tz: str, now: datetime | None = None) -> datetime | None:
    """The start of the next month / quarter / year in the tenant's time zone (UTC)."""
    if policy not in ("monthly", "quarterly", "yearly"):
        return None
    local = (now or clock.now()).astimezone(ZoneInfo(tz))
    y, m = local.year, local.month
    if policy == "monthly":
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    elif policy == "quarterly":
        m = ((m - 1) // 3 + 1) * 3 + 1
        if m > 12:
            y, m = y + 1, 1
    else:
        y, m = y + 1, 1
    return datetime.combine(date(y, m, 1), time.min, ZoneInfo(tz)).astimezone(ZoneInfo("UTC"))


async def _reschedule_reviews(session: AsyncSession, scope: TenantScope, settings: GrowthSettings) -> None:
    rows = await _level_rows(session, scope)
    if not rows:
        return
    base_id = min(rows, key=lambda r: r.rank).id
    due = next_review_at(settings.review_policy, scope.timezone)
    await session.execute(update(Member).where(
        Member.tenant_id == scope.id, Member.level_id.is_not(None), Member.level_id != base_id,
    ).values(level_review_at=due))
    if due is None:
        return
    await session.execute(update(Member).where(
        Member.tenant_id == scope.id, (Member.level_id.is_(None)) | (Member.level_id == base_id),
    ).values(level_review_at=None))


def _notice(session: AsyncSession, scope: TenantScope, member: Member, *, kind: str, key: str, title: str,
            body: str) -> None:
    session.add(MemberNotice(tenant_id=scope.id, customer_id=member.customer_id, kind=kind, notice_key=key[:120],
                             title=title[:80], body=body[:300], created_at=clock.now()))


async def _move_level(session: AsyncSession, scope: TenantScope, member: Member, target: LevelView,
                      levels: Sequence[LevelView], settings: GrowthSettings, *, notice_key: str,
                      counted: int) -> bool:
    """Put ``member`` at ``target`` (a level reached by growth), with a notice and the next
    review deadline; False when it already is there."""
    current = _growth_level_of(levels, member)
    now = clock.now()
    is_base = target.rank == base_level(levels).rank
    review = None if is_base else (member.level_review_at or next_review_at(settings.review_policy, scope.timezone))
    if current.id == target.id and member.level_id == target.id:
        if member.level_review_at != review:
            member.level_review_at = review
        return False
    member.level_id = target.id
    member.level_review_at = review
    if current.rank == target.rank:
        return False
    member.level_changed_at = now
    up = target.rank > current.rank
    if up:
        _notice(session, scope, member, kind="level_up", key=f"level_up:{notice_key}",
                title=f"恭喜升级为{target.name}",
                body=f"您的成长值达到 {counted:,}，已升级为{target.name}。" + (
                    f"可享：{'、'.join(benefits(target))}。" if benefits(target) else ""))
    else:
        _notice(session, scope, member, kind="level_down", key=f"level_down:{notice_key}",
                title=f"会员等级调整为{target.name}",
                body=f"按近期成长值 {counted:,} 重新评定，您的会员等级调整为{target.name}。")
    return True


async def _settle_level(session: AsyncSession, scope: TenantScope, member: Member, *, rising: bool,
                        notice_key: str) -> None:
    """After a growth change: up at once on a gain, down at once on a take-back."""
    levels = [LevelView.of(r) for r in await ensure_levels(session, scope)]
    settings = await growth_settings(session, scope)
    counted = await counted_growth(session, scope, member, settings)
    target = level_for_growth(levels, counted)
    current = _growth_level_of(levels, member)
    if rising and target.rank < current.rank:
        target = current
    if not rising and target.rank > current.rank:
        target = current
    await _move_level(session, scope, member, target, levels, settings, notice_key=notice_key, counted=counted)
    await session.flush()


def _insert_entry(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(GrowthEntry).on_conflict_do_nothing().returning(GrowthEntry.id)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(GrowthEntry).on_conflict_do_nothing().returning(GrowthEntry.id)


def insufficient_growth(have: int) -> Conflict:
    return Conflict("insufficient_growth", f"成长值不足（当前 {have:,}）", f"Not enough growth (has {have:,})",
                    extra={"growth": have})


async def add_growth(session: AsyncSession, scope: TenantScope, customer_id: int, amount: int, *, kind: str,
                     source_key: str, note: str = "", strict: bool = False) -> GrowthEntry | None:
    """Add (or, negative, take back) growth once per ``source_key``, then settle the level.

    Returns the entry, or None when the source key was used before or nothing changed. A
    take-back takes at most what the member has (``strict``: 409 ``insufficient_growth``
    instead). The member row is locked for the whole change, so the entry's
    ``balance_after`` and ``Member.growth`` always agree with the sum of the ledger."""
    if not _is_int(amount):
        raise TypeError("growth is an integer")
    if not source_key or len(source_key) > 120:
        raise ValueError("a growth source key is 1–120 characters")
    member = await _locked_member(session, scope, customer_id)
    used = (await session.execute(select(GrowthEntry.id).where(
        GrowthEntry.tenant_id == scope.id, GrowthEntry.source_key == source_key))).scalar_one_or_none()
    if used is not None:
        return None
    have = int(member.growth)
    delta = amount
    if have + amount < 0:
        if strict:
            raise insufficient_growth(have)
        delta = -have
    if delta == 0:
        return None
    now = clock.now()
    entry_id = (await session.execute(_insert_entry(session), [{
        "tenant_id": scope.id, "customer_id": customer_id, "amount": delta, "balance_after": have + delta,
        "kind": kind[:24], "source_key": source_key, "note": (note or "")[:200], "created_at": now}])).scalar_one_or_none()
    if entry_id is None:
        return None
    res = await session.execute(update(Member).where(
        Member.id == member.id, Member.growth == have, Member.growth + delta >= 0,
    ).values(growth=Member.growth + delta, updated_at=now))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        # The lock makes this unreachable; if a driver ever lets it through, undo everything.
        raise Conflict("growth_conflict", "成长值正在变动，请重试", "Growth changed meanwhile; try again")
    fresh = await _member_row(session, scope, customer_id)
    assert fresh is not None
    await _settle_level(session, scope, fresh, rising=delta > 0, notice_key=f"{customer_id}:{entry_id}")
    entry = await session.get(GrowthEntry, entry_id)
    assert entry is not None
    return entry


async def award_action(session: AsyncSession, scope: TenantScope, customer_id: int, action: str, *,
                       source_key: str) -> int:
    """Growth for an action (``signup``, ``first_order``, ``checkin``, ``review``) as the
    settings say, once per ``source_key``; returns what was added (0: nothing)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown growth action {action!r}; actions are {', '.join(ACTIONS)}")
    amount = (await growth_settings(session, scope)).action(action)
    if amount <= 0:
        return 0
    entry = await add_growth(session, scope, customer_id, amount, kind=action, source_key=source_key)
    return entry.amount if entry is not None else 0


def _reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text or len(text) > 100 or _CONTROL.search(text):
        raise _bad("reason", "adjust_reason_invalid", "请填写调整原因（1–100 个字符）",
                   "Give a reason of 1–100 characters")
    return text


async def _require_customer(session: AsyncSession, scope: TenantScope, customer_id: int) -> Customer:
    customer = await customers_service.get_customer(session, scope, customer_id)
    if customer.status == "merged":
        raise Conflict("customer_merged", "该客户已合并到其他客户", "This customer was merged into another one",
                       extra={"merged_into_id": customer.merged_into_id})
    return customer


_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def adjust_growth(session: AsyncSession, scope: TenantScope, customer_id: int, amount: int, *,
                        reason: str, token: str | None = None) -> GrowthEntry:
    """A staff adjustment (signed, non-zero, at most ±1,000,000) with a reason; audited.

    ``token`` (1–64 of ``A-Z a-z 0-9 _ -``: the form's hidden field, the API's
    Idempotency-Key) makes a retried request adjust once: the same token answers the entry
    it made (source ``adjust:<customer>:<token>``)."""
    if not _is_int(amount) or amount == 0 or abs(amount) > MAX_ADJUST:
        raise _bad("amount", "adjust_amount_invalid", f"调整数量需为非零整数，绝对值不超过 {MAX_ADJUST:,}",
                   f"The amount must be a non-zero whole number within ±{MAX_ADJUST:,}")
    text = _reason(reason)
    if token is not None and not _TOKEN.match(token):
        raise _bad("token", "invalid_idempotency_key", "Idempotency-Key 需为 1–64 位字母、数字、_ 或 -",
                   "The Idempotency-Key must be 1–64 of A-Z a-z 0-9 _ -")
    await _require_customer(session, scope, customer_id)
    key = f"adjust:{customer_id}:{token or secrets.token_hex(8)}"
    entry = await add_growth(session, scope, customer_id, amount, kind="adjust", source_key=key, note=text,
                             strict=True)
    if entry is None:  # the same token again: the entry it made
        found = (await session.execute(select(GrowthEntry).where(
            GrowthEntry.tenant_id == scope.id, GrowthEntry.source_key == key))).scalar_one()
        return found
    audit.record(session, tenant_id=scope.id, action="members.growth.adjust", object_type="member",
                 object_id=customer_id, before={"growth": entry.balance_after - entry.amount},
                 after={"growth": entry.balance_after, "amount": amount, "reason": text})
    return entry


async def growth_history(session: AsyncSession, scope: TenantScope, customer_id: int, *, limit: int = 20,
                         before_id: int | None = None) -> list[GrowthEntry]:
    """Newest first; ``before_id`` pages back."""
    stmt = select(GrowthEntry).where(GrowthEntry.tenant_id == scope.id, GrowthEntry.customer_id == customer_id)
    if before_id is not None:
        stmt = stmt.where(GrowthEntry.id < before_id)
    rows = await session.execute(stmt.order_by(GrowthEntry.id.desc()).limit(max(1, min(limit, 200))))
    return list(rows.scalars().all())


# -- the overview a member centre shows ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberOverview:
    customer_id: int
    member: Member | None
    level: LevelView
    growth_level: LevelView
    next_level: LevelView | None
    growth: int
    counted_growth: int
    #: Growth still missing for the next level (0 at the top).
    to_next: int
    #: Progress from the growth level's threshold to the next one, 0–10000.
    progress_bp: int
    points: int
    levels: list[LevelView] = field(default_factory=list)
    settings: GrowthSettings = field(default_factory=GrowthSettings)


async def overview(session: AsyncSession, scope: TenantScope, customer_id: int) -> MemberOverview:
    """Level, growth and progress of one customer (a customer without a member row yet reads
    as a fresh member). Never writes."""
    levels = await list_levels(session, scope)
    settings = await growth_settings(session, scope)
    member = await _member_row(session, scope, customer_id)
    grown = _growth_level_of(levels, member)
    counted = await counted_growth(session, scope, member, settings) if member is not None else 0
    nxt = next_level(levels, grown)
    to_next = max(0, nxt.growth_threshold - counted) if nxt else 0
    if nxt is None:
        progress = 10000
    else:
        span = max(1, nxt.growth_threshold - grown.growth_threshold)
        progress = max(0, min(10000, (counted - grown.growth_threshold) * 10000 // span))
    return MemberOverview(customer_id=customer_id, member=member, level=_effective(levels, member), growth_level=grown,
                          next_level=nxt, growth=int(member.growth) if member else 0, counted_growth=counted,
                          to_next=to_next, progress_bp=progress, points=int(member.points) if member else 0,
                          levels=levels, settings=settings)


# -- profile --------------------------------------------------------------------------------------

UNSET: Any = object()


def birthday_md(birthday: date | None) -> str | None:
    return birthday.strftime("%m-%d") if birthday else None


async def update_profile(session: AsyncSession, scope: TenantScope, customer_id: int, *, birthday: Any = UNSET,
                         gender: str | None = None, region: str | None = None, by_staff: bool = False) -> Member:
    """Birthday, gender and region. A shopper sets the birthday once (``409
    birthday_locked`` after); staff may change it (and every change by staff is audited)."""
    await _require_customer(session, scope, customer_id)
    errors: list[dict[str, str]] = []
    today = clock.local_today(scope.timezone)
    if birthday is not UNSET and birthday is not None and (
            not isinstance(birthday, date) or birthday > today or birthday.year < today.year - 120):
        errors.append({"field": "birthday", "message": "a date in the last 120 years"})
    if gender is not None and gender not in GENDERS:
        errors.append({"field": "gender", "message": f"one of {', '.join(GENDERS)}"})
    if region is not None:
        region = " ".join(region.split())
        if len(region) > MAX_REGION or _CONTROL.search(region):
            errors.append({"field": "region", "message": f"at most {MAX_REGION} characters"})
    if errors:
        zh = {"birthday": "生日需为过去 120 年内的日期", "gender": "性别无效", "region": f"地区最多 {MAX_REGION} 个字符"}
        raise ValidationFailed("profile_invalid", "；".join(zh[e["field"]] for e in errors),
                               "Some profile fields are invalid", fields=errors)
    member = await _locked_member(session, scope, customer_id)
    before = {"birthday": member.birthday.isoformat() if member.birthday else None, "gender": member.gender,
              "region": member.region}
    if birthday is not UNSET and birthday != member.birthday:
        if not by_staff and member.birthday is not None:
            raise Conflict("birthday_locked", "生日设置后不能修改，如需修改请联系客服",
                           "The birthday can be set once; ask the shop to change it")
        if birthday is None and not by_staff:
            raise _bad("birthday", "profile_invalid", "请选择生日", "Choose a birthday")
        member.birthday = birthday
        member.birthday_md = birthday_md(birthday)
    if gender is not None:
        member.gender = gender
    if region is not None:
        member.region = region
    after = {"birthday": member.birthday.isoformat() if member.birthday else None, "gender": member.gender,
             "region": member.region}
    if after != before:
        member.updated_at = clock.now()
        if by_staff:
            audit.record(session, tenant_id=scope.id, action="members.profile.update", object_type="member",
                         object_id=customer_id, before=before, after=after)
    await session.flush()
    return member


# -- the member list ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberFilters:
    level_id: int | None = None
    #: Phone (exact) or nickname (part).
    q: str | None = None
    registered_from: date | None = None
    registered_to: date | None = None
    birthday_month: int | None = None
    points_min: int | None = None
    points_max: int | None = None


@dataclass(frozen=True, slots=True)
class MemberRow:
    member: Member
    customer: Customer | None
    level: LevelView


async def list_members(session: AsyncSession, scope: TenantScope, filters: MemberFilters | None = None, *,
                       offset: int = 0, limit: int = 20) -> tuple[list[MemberRow], int]:
    """Members, newest first. ``level_id`` matches the growth level or an unexpired card's
    level; the keyword finds customers by phone or nickname (as the customer list does)."""
    f = filters or MemberFilters()
    levels = await list_levels(session, scope)
    stmt = select(Member).where(Member.tenant_id == scope.id)
    text = (f.q or "").strip()
    if text:
        found, _total = await customers_service.list_customers(session, scope, q=text, limit=500)
        stmt = stmt.where(Member.customer_id.in_([c.id for c in found] or [0]))
    if f.level_id is not None:
        now = clock.now()
        by_card = (Member.card_level_id == f.level_id) & (Member.card_expires_at > now)
        base = base_level(levels)
        by_growth = Member.level_id == f.level_id
        if base.id == f.level_id:
            by_growth = by_growth | Member.level_id.is_(None)
        stmt = stmt.where(by_growth | by_card)
    lo, hi = orders_service.day_bounds(scope, f.registered_from, f.registered_to)
    if lo is not None:
        stmt = stmt.where(Member.registered_at >= lo)
    if hi is not None:
        stmt = stmt.where(Member.registered_at < hi)
    if f.birthday_month is not None:
        stmt = stmt.where(Member.birthday_md.like(f"{f.birthday_month:02d}-%"))
    if f.points_min is not None:
        stmt = stmt.where(Member.points >= f.points_min)
    if f.points_max is not None:
        stmt = stmt.where(Member.points <= f.points_max)
    total = int((await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))).scalar_one())
    rows = (await session.execute(stmt.order_by(Member.registered_at.desc(), Member.id.desc())
                                  .offset(offset).limit(limit))).scalars().all()
    people: dict[int, Customer | None] = {}
    for m in rows:
        try:
            people[m.customer_id] = await customers_service.get_customer(session, scope, m.customer_id)
        except NotFound:
            people[m.customer_id] = None
    now = clock.now()
    return [MemberRow(m, people.get(m.customer_id), _effective(levels, m, now)) for m in rows], total


# -- event handlers ---------------------------------------------------------------------------------


async def _scope(session: AsyncSession, tenant_id: int) -> TenantScope:
    return tenants_service.scope_of(await tenants_service.get_tenant(session, tenant_id))


async def _merge_chain(session: AsyncSession, scope: TenantScope, customer_id: int) -> list[int]:
    """``customer_id`` and the customers it was merged into, in order; the last one stands
    for it now (empty when the chain leads nowhere)."""
    chain: list[int] = []
    cid: int | None = customer_id
    for _hop in range(8):
        if cid is None or cid in chain:
            return []
        try:
            c = await customers_service.get_customer(session, scope, cid)
        except NotFound:
            return []
        chain.append(c.id)
        if c.status != "merged":
            return chain
        cid = c.merged_into_id
    return []


async def _survivor(session: AsyncSession, scope: TenantScope, customer_id: int) -> int | None:
    """The customer that now stands for ``customer_id`` (merged customers → their survivor)."""
    chain = await _merge_chain(session, scope, customer_id)
    return chain[-1] if chain else None


def order_growth(settings: GrowthSettings, money_fen: int) -> int:
    """Growth of an order that took ``money_fen`` (gateway + stored value)."""
    return max(0, money_fen) * settings.growth_per_yuan // 100


async def _award_order(session: AsyncSession, scope: TenantScope, order_id: int) -> int | None:
    """The growth of a paid order (once; source ``order:<id>``) and the first-order action.
    Returns the order's growth as recorded (None: not paid)."""
    order = await orders_service.get_order(session, scope, order_id)
    if order.paid_at is None:
        return None
    key = f"order:{order.id}"
    recorded = (await session.execute(select(GrowthEntry.amount).where(
        GrowthEntry.tenant_id == scope.id, GrowthEntry.source_key == key))).scalar_one_or_none()
    if recorded is not None:
        return int(recorded)
    who = await _survivor(session, scope, order.customer_id)
    if who is None:
        return None
    settings = await growth_settings(session, scope)
    amount = order_growth(settings, int(order.paid_fen) + int(order.balance_fen))
    entry = await add_growth(session, scope, who, amount, kind="order", source_key=key, note=order.order_no)
    if int(order.paid_fen) + int(order.balance_fen) > 0:  # a purchase, not a points-only exchange
        await award_action(session, scope, who, "first_order", source_key=f"first_order:{who}")
    return entry.amount if entry is not None else 0


@outbox.on("order.paid")
async def _on_order_paid(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    scope = await _scope(session, int(p["tenant_id"]))
    await _award_order(session, scope, int(p["order_id"]))


def line_money(order_pricing: dict[str, Any] | None, lines: Sequence[Any]) -> list[int]:
    """What each line took in money: its ``paid_fen`` plus its share of stored value."""
    balance: dict[int, int] = {}
    for o in (order_pricing or {}).get("offers") or []:
        if o.get("step") in pricing.STEPS_PAYING_FREIGHT and o.get("applied"):
            for sku, fen in (o.get("lines") or {}).items():
                balance[int(sku)] = balance.get(int(sku), 0) + int(fen)
    return [max(0, int(ln.paid_fen) + balance.get(int(ln.sku_id), 0)) for ln in lines]


def growth_owed(order_growth_total: int, money: Sequence[int], quantities: Sequence[int],
                refunded: Sequence[int]) -> int:
    """Growth owed back for the refunded units: the order's growth spread over its lines by
    largest remainder (weighted by money), each line owing ``g·r // n``."""
    if order_growth_total <= 0 or not money:
        return 0
    shares = allocate(order_growth_total, list(money))
    return sum(g * min(max(r, 0), n) // n for g, n, r in zip(shares, quantities, refunded, strict=True) if n > 0)


@outbox.on("after_sale.refunded")
async def _on_refunded(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    scope = await _scope(session, int(p["tenant_id"]))
    order_id, case_id = int(p["order_id"]), int(p["case_id"])
    earned = await _award_order(session, scope, order_id)
    if not earned:
        return
    order = await orders_service.get_order(session, scope, order_id)
    lines = await orders_service.order_lines(session, scope, order_id)
    owed = growth_owed(earned, line_money(order.pricing, lines), [ln.quantity for ln in lines],
                       [ln.refunded_qty for ln in lines])
    prefix = f"order:{order_id}:refund:"
    chain = await _merge_chain(session, scope, order.customer_id)
    who = chain[-1] if chain else None
    # The order's take-backs sit on its customer or, after merges, on a customer it went into.
    owners = sorted({order.customer_id, *chain})
    taken = -int((await session.execute(select(func.coalesce(func.sum(GrowthEntry.amount), 0)).where(
        GrowthEntry.tenant_id == scope.id, GrowthEntry.customer_id.in_(owners),
        GrowthEntry.source_key.like(f"{prefix}%")))).scalar_one())
    due = owed - taken
    if due <= 0 or who is None:
        return
    await add_growth(session, scope, who, -due, kind="refund", source_key=f"{prefix}{case_id}",
                     note=f"{order.order_no} 售后退款")


@outbox.on("customer.registered")
async def _on_registered(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    scope = await _scope(session, int(event.tenant_id or p["tenant_id"]))
    cid = int(p["customer_id"])
    try:
        customer = await customers_service.get_customer(session, scope, cid)
    except NotFound:
        return
    await ensure_levels(session, scope)
    member = await members_service.ensure_member(session, scope, cid, registered_at=customer.created_at)
    if member.registered_at > customer.created_at:  # made earlier by another event of this customer
        member.registered_at = customer.created_at
    if customer.status != "merged":
        await award_action(session, scope, cid, "signup", source_key=f"signup:{cid}")


@outbox.on("customer.merged")
async def _on_merged(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    scope = await _scope(session, int(event.tenant_id or p["tenant_id"]))
    survivor, loser = int(p["survivor_id"]), int(p["merged_id"])
    if survivor == loser:
        return
    await merge_members(session, scope, survivor_id=survivor, merged_id=loser)


async def merge_members(session: AsyncSession, scope: TenantScope, *, survivor_id: int, merged_id: int) -> None:
    """Move the merged-away customer's growth to the survivor (once: the two entries' source
    keys) and fill the survivor's empty profile fields from it."""
    for cid in sorted((survivor_id, merged_id)):
        await _locked_member(session, scope, cid)
    loser = await _member_row(session, scope, merged_id)
    keeper = await _member_row(session, scope, survivor_id)
    assert loser is not None and keeper is not None
    if keeper.birthday is None and loser.birthday is not None:
        keeper.birthday, keeper.birthday_md = loser.birthday, loser.birthday_md
    if keeper.gender == "unknown" and loser.gender != "unknown":
        keeper.gender = loser.gender
    if not keeper.region and loser.region:
        keeper.region = loser.region
    if loser.registered_at < keeper.registered_at:
        keeper.registered_at = loser.registered_at
    await session.flush()
    moving = int(loser.growth)
    if moving <= 0:
        return
    out = await add_growth(session, scope, merged_id, -moving, kind="merge_out", source_key=f"merge:{merged_id}:out",
                           note=f"合并到客户 #{survivor_id}")
    if out is None:
        return
    await add_growth(session, scope, survivor_id, -out.amount, kind="merge_in", source_key=f"merge:{merged_id}:in",
                     note=f"由客户 #{merged_id} 合并")


# -- the review sweep ----------------------------------------------------------------------------------


async def review_due(session: AsyncSession, *, now: datetime | None = None, limit: int = 200) -> int:
    """Re-evaluate members whose review deadline passed (every tenant); returns how many were
    reviewed. Each member runs in its own savepoint, under its row lock, and moves its
    deadline on, so a second sweeper finds nothing left to do."""
    now = now or clock.now()
    due = (await session.execute(select(Member.id, Member.tenant_id, Member.customer_id).where(
        Member.level_review_at.is_not(None), Member.level_review_at <= now,
    ).order_by(Member.level_review_at, Member.id).limit(limit))).all()
    scopes: dict[int, TenantScope] = {}
    reviewed = 0
    for _mid, tenant_id, customer_id in due:
        try:
            async with session.begin_nested():
                if tenant_id not in scopes:
                    scopes[tenant_id] = await _scope(session, tenant_id)
                scope = scopes[tenant_id]
                member = await _member_row(session, scope, customer_id, lock=True)
                if member is None or member.level_review_at is None or member.level_review_at > now:
                    continue
                await _review_one(session, scope, member, now)
                reviewed += 1
        except DomainError as exc:
            log.warning("level review failed", extra={"customer_id": customer_id, "code": exc.code})
        except Exception:
            log.exception("level review failed", extra={"customer_id": customer_id})
    return reviewed


async def _review_one(session: AsyncSession, scope: TenantScope, member: Member, now: datetime) -> int:
    levels = [LevelView.of(r) for r in await ensure_levels(session, scope)]
    settings = await growth_settings(session, scope)
    if settings.review_policy == "never":
        member.level_review_at = None
        await session.flush()
        return 0
    counted = await counted_growth(session, scope, member, settings, now=now)
    target = level_for_growth(levels, counted)
    day = member.level_review_at.astimezone(ZoneInfo(scope.timezone)).date() if member.level_review_at else now.date()
    member.level_review_at = None
    moved = await _move_level(session, scope, member, target, levels, settings,
                              notice_key=f"{member.customer_id}:review:{day.isoformat()}", counted=counted)
    if target.rank != base_level(levels).rank:
        member.level_review_at = next_review_at(settings.review_policy, scope.timezone, now)
    await session.flush()
    return int(moved)


# -- the member price step ----------------------------------------------------------------------------


def offer_reason(level: LevelView, *, english: bool) -> str:
    extras = [b for b in (("Free shipping" if english else "包邮") if level.free_shipping else "",
                          ("Priority shipping" if english else "优先发货") if level.priority_shipping else "") if b]
    return " · ".join(extras)


async def member_price_step(session: AsyncSession, ctx: pricing.PricingContext) -> Sequence[pricing.Offer]:
    """The ``member`` pricing step (see the module docstring)."""
    if ctx.customer_id is None or ctx.options.get("mall_item_id"):
        return []
    level = await effective_level(session, ctx.scope, ctx.customer_id)
    if level.id == 0:
        return []
    prices = await member_prices(session, ctx.scope, [ln.sku_id for ln in ctx.lines])
    line_fen: dict[int, int] = {}
    for ln in ctx.lines:
        fixed = prices.get(ln.sku_id, {}).get(level.id)
        if fixed is not None:
            off = max(0, ln.sku.price_fen - fixed) * ln.quantity
        elif level.has_price_benefit:
            off = ln.subtotal_fen - apply_rate(ln.subtotal_fen, level.price_rate_bp)
        else:
            off = 0
        if off > 0:
            line_fen[ln.sku_id] = off
    if not line_fen and not level.free_shipping and not level.priority_shipping:
        return []
    return [pricing.Offer(
        OFFER_CODE, level.name, f"Member level {level.name}", applied=True, line_fen=line_fen,
        reason_zh=offer_reason(level, english=False), reason_en=offer_reason(level, english=True),
        data={"level_id": level.id, "level_name": level.name, "via": level.via, "free_shipping": level.free_shipping,
              "priority_shipping": level.priority_shipping})]


pricing.register_adjuster("member", member_price_step)


def priority_shipping(order_pricing: dict[str, Any] | None) -> bool:
    """Whether an order's stored pricing carries the member step's 优先发货 flag."""
    return any(o.get("step") == "member" and (o.get("data") or {}).get("priority_shipping")
               for o in (order_pricing or {}).get("offers") or [] if isinstance(o, dict))
