"""积分: the points ledger with lots, earn rules, check-in, points at checkout and expiry.

Ledger
    ``Member.points`` is the balance. It changes only together with one append-only
    :class:`PointsEntry` whose ``source_key`` is unique per tenant, so an event handled twice
    counts once. Every change first locks the member row (``SELECT ... FOR UPDATE``; on
    SQLite writers are serialised), then inserts the entry with ``ON CONFLICT DO NOTHING``
    (a used key changes nothing and answers ``None``), then moves the balance by a
    conditional update (``points + d >= 0``), so the balance never goes negative, and then
    the lots. At all times ``Member.points`` = Σ entries = Σ ``PointsLot.remaining``.

Lots
    Each positive entry that brings new points (earn, award, check-in, a positive staff
    adjustment, points moved in by an account merge) makes a :class:`PointsLot` with
    ``expires_at`` from the rules: ``never``; ``yearly`` — the end of the year after the year
    earned, in the tenant's time zone (earned 2024-05-01 → valid through 2025-12-31); or
    ``rolling`` — ``expiry_days`` whole days after the day earned. Spending (and taking back,
    and negative adjustments) draws the lots nearest expiry first, lots that never expire
    last, oldest first within one expiry, and records a :class:`PointsLotUse` per lot.
    Lots past ``expires_at`` are not spendable: the spending functions expire them first
    (``expire`` entry), and the expiry sweeper does the same for everyone else.

Reversals
    :func:`give_back` returns part of a spend to the lots it came from, the lots with the
    latest expiry first (so giving back a whole spend restores every lot exactly). The part
    that belongs to a lot that has expired meanwhile is **forfeited**: it is not returned
    (the entry says how many points were forfeited), because returning it would only expire
    it again. What has been given back is recorded as negative uses on the spend itself, so
    a spend can never be given back twice over. :func:`take_back` takes at most what the
    member has (the rest is forgiven) and records what it took, even 0, under its key.

Checkout (pricing step ``points``; option ``points``, the points the shopper wants to use)
    ``points_per_yuan`` points pay ¥1, so ``fen = points × 100 // points_per_yuan`` and only
    the points that buy whole fen are used. The cap is ``max_share_bp`` of what the goods
    still cost after member prices, promotions and coupons (freight apart; points never pay
    freight). The adjuster always answers one offer for a signed-in shopper: unapplied with
    ``data={"available", "max_points", "max_fen"}``, or applied with ``data={"points": used,
    ...}``. Asking for more than the cap uses the cap; asking for more points than the member
    has is a 409 ``insufficient_points`` (``points: true`` means "as many as allowed"). The
    placement hook spends them under ``order:<id>:points``; a shortfall there (a concurrent
    spend) is the same 409 and undoes the whole order.

Orders
    ``order.cancelled`` gives every spent point back (``order:<id>:points:cancel``).
    ``order.completed`` earns ``floor(base / 100) × earn_per_yuan × level multiplier`` where
    ``base`` is what the goods were paid in money (cash and stored value: the subtotal less
    member prices, promotions, coupons and points; freight apart), plus the first-order award.
    ``after_sale.refunded`` gives back spent points and takes back earned points in
    proportion: the order's points are spread over its lines by largest remainder (spent
    points by each line's points discount, earned points by each line's base), and a case
    refunding ``k`` units of a line with ``r`` units already refunded by earlier cases moves
    ``U·(r+k)//n − U·r//n`` of the line's ``U`` points — the formula of
    :func:`siyu.orders.aftersales.line_refund_fen`, so several partial refunds add up exactly
    to the whole. Cases refunded before the order completed are taken back right after the
    earn, under the same keys.

Merges
    ``customer.merged`` moves the merged account's unexpired points (lot by lot, same expiry)
    to the survivor. Its orders stay its own, so later events follow the points: an order
    completed after the merge earns for the survivor, a take-back takes from the survivor, and
    a give-back returns to the spend's lots and then moves on to the survivor.

Contract (others call these; none commits)
    ``earn``, ``spend``, ``give_back``, ``take_back``, ``history``, ``adjust``, ``rules``,
    ``award`` (+ ``register_rule``), ``balance``, ``checkin``, ``checkin_status``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import audit, clock, outbox
from siyu.kit.context import current_actor
from siyu.kit.errors import Conflict, DomainError, NotFound, ValidationFailed
from siyu.kit.money import allocate, yuan
from siyu.kit.tenancy import TenantScope
from siyu.members import service as members_service
from siyu.members.models import Member, PointsEntry, PointsLot, PointsLotUse
from siyu.orders import checkout, pricing
from siyu.tenants import service as tenants_service

log = logging.getLogger("siyu.members.points")

SECTION = "points"
ADJUST_MAX = 10_000_000
#: The most points one entry may move (a guard against nonsense, far above any real order).
MAX_POINTS = 10**12
REASON_MAX = 200
NOTE_MAX = 200

#: What each kind of entry is called (zh-CN; English in ``web/i18n_members_points``).
KIND_ZH: dict[str, str] = {
    "earn": "购物得积分", "signup": "注册奖励", "first_order": "首单奖励", "review": "评价奖励",
    "checkin": "每日签到", "birthday": "生日礼", "card_gift": "开通付费会员赠送", "campaign": "活动奖励",
    "spend": "下单抵扣", "redeem": "积分兑换", "cancel_return": "取消订单退还", "refund_return": "退款退还",
    "refund_takeback": "退款扣回", "expire": "积分过期", "adjust": "人工调整",
    "merge_in": "账号合并转入", "merge_out": "账号合并转出",
}
KIND_EN: dict[str, str] = {
    "earn": "Order completed", "signup": "Sign-up reward", "first_order": "First-order reward", "review": "Review reward",
    "checkin": "Daily check-in", "birthday": "Birthday gift", "card_gift": "Paid membership gift",
    "campaign": "Campaign reward", "spend": "Used at checkout", "redeem": "Points mall exchange",
    "cancel_return": "Returned: order cancelled", "refund_return": "Returned: refund", "refund_takeback": "Taken back: refund",
    "expire": "Expired", "adjust": "Adjusted by staff", "merge_in": "Moved in: accounts merged",
    "merge_out": "Moved out: accounts merged",
}
EXPIRY_MODES = ("never", "yearly", "rolling")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

audit.describe(actions={"members.points.adjust": "调整积分", "members.settings.points": "修改积分规则"},
               objects={"member_points": "会员积分", "member_settings": "会员设置"})


# -- rules ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AwardRule:
    """A named way to earn a fixed number of points (sign-up, review, a campaign's task...)."""

    name: str
    label_zh: str
    label_en: str
    default_points: int = 0
    #: The entry kind written (≤ 24 characters).
    kind: str = "campaign"


_award_rules: dict[str, AwardRule] = {}


def register_rule(name: str, *, label_zh: str, label_en: str, default_points: int = 0, kind: str | None = None) -> AwardRule:
    """Make ``award(..., name, ...)`` known. The tenant sets its points on the points settings
    page (``awards[name]``); until then ``default_points`` apply. Registering again replaces."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
        raise ValueError(f"bad award rule name {name!r}")
    rule = AwardRule(name, label_zh, label_en, default_points, (kind or ("campaign" if name not in KIND_ZH else name))[:24])
    _award_rules[name] = rule
    return rule


def award_rules() -> list[AwardRule]:
    return list(_award_rules.values())


register_rule("signup", label_zh="注册奖励", label_en="Sign-up", default_points=100)
register_rule("first_order", label_zh="首单奖励", label_en="First order", default_points=200)
register_rule("review", label_zh="评价奖励", label_en="Review", default_points=20)


class PointsRulesIn(BaseModel):
    """The tenant's points rules as saved from the settings page or the admin API."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "earn_per_yuan": 1, "awards": {"signup": 100, "first_order": 200, "review": 20}, "checkin_points": 10,
        "checkin_streak_days": 7, "checkin_streak_bonus": 30, "redeem_enabled": True, "points_per_yuan": 100,
        "max_share_bp": 5000, "min_redeem_points": 100, "expiry_mode": "yearly", "expiry_days": 365, "notice_days": 30,
    }]})

    earn_per_yuan: int = Field(1, ge=0, le=1000, description="Points per whole yuan paid on a completed order (× level multiplier)")
    awards: dict[str, int] = Field(default_factory=dict, description="Points per award rule name (signup, first_order, review, ...)")
    checkin_points: int = Field(10, ge=0, le=100_000, description="Points per daily check-in")
    checkin_streak_days: int = Field(7, ge=0, le=365, description="Every Nth day in a row earns the streak bonus (0: none)")
    checkin_streak_bonus: int = Field(0, ge=0, le=100_000, description="Extra points on every Nth day in a row")
    redeem_enabled: bool = Field(True, description="Points may pay at checkout")
    points_per_yuan: int = Field(100, ge=1, le=100_000, description="Points that pay ¥1 at checkout")
    max_share_bp: int = Field(5000, ge=0, le=10000, description="At most this share of the goods (after discounts) paid by points")
    min_redeem_points: int = Field(0, ge=0, le=10_000_000, description="A shopper needs at least this many points to use any")
    expiry_mode: Literal["never", "yearly", "rolling"] = "yearly"
    expiry_days: int = Field(365, ge=1, le=3650, description="Rolling expiry: days a lot stays valid after the day it was earned")
    notice_days: int = Field(30, ge=0, le=90, description="Notify members this many days before points expire (0: never)")


@dataclass(frozen=True, slots=True)
class PointsRules:
    """The tenant's points rules (defaults where it never saved any); see :class:`PointsRulesIn`."""

    earn_per_yuan: int = 1
    awards: Mapping[str, int] = field(default_factory=dict)
    checkin_points: int = 10
    checkin_streak_days: int = 7
    checkin_streak_bonus: int = 0
    redeem_enabled: bool = True
    points_per_yuan: int = 100
    max_share_bp: int = 5000
    min_redeem_points: int = 0
    expiry_mode: str = "yearly"
    expiry_days: int = 365
    notice_days: int = 30

    def award_points(self, rule: str) -> int:
        if rule in self.awards:
            return int(self.awards[rule])
        found = _award_rules.get(rule)
        return found.default_points if found else 0

    def fen_for(self, points: int) -> int:
        """What ``points`` pay at checkout, in whole fen."""
        return max(0, points) * 100 // self.points_per_yuan

    def points_for(self, fen: int) -> int:
        """The fewest points that pay ``fen``."""
        return -(-max(0, fen) * self.points_per_yuan // 100)

    def as_dict(self) -> dict[str, Any]:
        return {"earn_per_yuan": self.earn_per_yuan, "awards": dict(self.awards), "checkin_points": self.checkin_points,
                "checkin_streak_days": self.checkin_streak_days, "checkin_streak_bonus": self.checkin_streak_bonus,
                "redeem_enabled": self.redeem_enabled, "points_per_yuan": self.points_per_yuan,
                "max_share_bp": self.max_share_bp, "min_redeem_points": self.min_redeem_points,
                "expiry_mode": self.expiry_mode, "expiry_days": self.expiry_days, "notice_days": self.notice_days}


def bp_text(bp: int, unit: int = 10000) -> str:
    """``bp / unit`` written without floats: 15000 → "1.5", 10000 → "1", 2550 (unit 100) → "25.5"."""
    whole, part = divmod(max(0, bp), unit)
    digits = len(str(unit)) - 1
    frac = f"{part:0{digits}d}".rstrip("0")
    return f"{whole}.{frac}" if frac else str(whole)


def _rules_from(raw: Mapping[str, Any]) -> PointsRules:
    try:
        data = PointsRulesIn.model_validate(dict(raw))
    except ValidationError:
        # A section written by an older version: keep every value that is still valid.
        good: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                PointsRulesIn.model_validate({key: value})
            except ValidationError:
                continue
            good[key] = value
        data = PointsRulesIn.model_validate(good)
    awards = {k: int(v) for k, v in data.awards.items() if isinstance(v, int) and 0 <= v <= 10_000_000}
    return PointsRules(earn_per_yuan=data.earn_per_yuan, awards=awards, checkin_points=data.checkin_points,
                       checkin_streak_days=data.checkin_streak_days, checkin_streak_bonus=data.checkin_streak_bonus,
                       redeem_enabled=data.redeem_enabled, points_per_yuan=data.points_per_yuan,
                       max_share_bp=data.max_share_bp, min_redeem_points=data.min_redeem_points,
                       expiry_mode=data.expiry_mode, expiry_days=data.expiry_days, notice_days=data.notice_days)


async def rules(session: AsyncSession, scope: TenantScope) -> PointsRules:
    """The tenant's points rules."""
    return _rules_from(await members_service.section(session, scope, SECTION))


async def save_rules(session: AsyncSession, scope: TenantScope, data: PointsRulesIn) -> PointsRules:
    """Replace the tenant's points rules (audited by :func:`siyu.members.service.save_section`).
    Award points of unknown rule names are refused (422), so a typo cannot hide a rule."""
    unknown = sorted(set(data.awards) - set(_award_rules))
    bad = sorted(k for k, v in data.awards.items() if not 0 <= v <= 10_000_000)
    if unknown or bad:
        raise ValidationFailed("points_award_invalid", "奖励规则不存在或积分无效", "Unknown award rule or invalid points",
                               fields=[{"field": f"awards.{k}", "message": "unknown rule" if k in unknown else "0–10000000"}
                                       for k in unknown + bad])
    value = data.model_dump()
    await members_service.save_section(session, scope, SECTION, value)
    return _rules_from(value)


def expiry_for(scope: TenantScope, r: PointsRules, earned_at: datetime) -> datetime | None:
    """When a lot earned at ``earned_at`` expires under ``r`` (see the module docstring)."""
    tz = ZoneInfo(scope.timezone)
    local = earned_at.astimezone(tz).date()
    if r.expiry_mode == "never":
        return None
    if r.expiry_mode == "rolling":
        end = local + timedelta(days=r.expiry_days + 1)
    else:
        end = date(local.year + 2, 1, 1)
    return datetime.combine(end, time(0), tzinfo=tz).astimezone(UTC)


# -- errors ----------------------------------------------------------------------------------------------


def _insufficient(available: int, needed: int) -> Conflict:
    return Conflict("insufficient_points", "积分不足", "Not enough points", extra={"available": available, "needed": needed})


def _bad_amount(field_name: str = "amount") -> ValidationFailed:
    return ValidationFailed("points_amount_invalid", "积分数量需为正整数", "Points must be a positive whole number",
                            fields=[{"field": field_name, "message": f"1–{MAX_POINTS}"}])


def _check_amount(amount: Any) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_POINTS:
        raise _bad_amount()
    return amount


def _check_key(source_key: Any) -> str:
    if not isinstance(source_key, str) or not 0 < len(source_key) <= 120:
        raise ValueError("a points source key is 1–120 characters")
    return source_key


# -- the ledger core --------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _insert_entry_stmt(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(PointsEntry).on_conflict_do_nothing().returning(PointsEntry)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(PointsEntry).on_conflict_do_nothing().returning(PointsEntry)


async def _lock(session: AsyncSession, scope: TenantScope, customer_id: int) -> int:
    """Lock the member row (made if missing) and return its points as stored now."""
    await members_service.ensure_member(session, scope, customer_id)
    stmt = (select(Member.points).where(Member.tenant_id == scope.id, Member.customer_id == customer_id)
            .with_for_update())
    return int((await session.execute(stmt)).scalar_one())


async def _lock_many(session: AsyncSession, scope: TenantScope, customer_ids: Iterable[int]) -> dict[int, int]:
    """Lock several members in customer-id order (so two callers can never deadlock)."""
    return {cid: await _lock(session, scope, cid) for cid in sorted(set(customer_ids))}


async def entry_by_key(session: AsyncSession, scope: TenantScope, source_key: str) -> PointsEntry | None:
    """The entry written under ``source_key``, if any."""
    stmt = select(PointsEntry).where(PointsEntry.tenant_id == scope.id, PointsEntry.source_key == source_key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def _write(session: AsyncSession, scope: TenantScope, customer_id: int, before: int, delta: int, *, kind: str,
                 source_key: str, note: str, staff_id: int | None = None) -> PointsEntry | None:
    """Insert the entry and move the balance; ``None`` (nothing changed) when the key is used.
    The member must be locked by the caller and ``before`` be its points under that lock."""
    if before + delta < 0:
        raise _insufficient(before, -delta)
    now = clock.now()
    stmt = _insert_entry_stmt(session.get_bind().dialect.name)
    entry = (await session.scalars(stmt, [{
        "tenant_id": scope.id, "customer_id": customer_id, "amount": delta, "balance_after": before + delta,
        "kind": kind[:24], "source_key": source_key, "note": (note or "")[:NOTE_MAX], "staff_id": staff_id,
        "created_at": now}])).one_or_none()
    if entry is None:
        return None
    if delta:
        res = await session.execute(
            update(Member).where(Member.tenant_id == scope.id, Member.customer_id == customer_id,
                                 Member.points + delta >= 0)
            .values(points=Member.points + delta, updated_at=now).execution_options(synchronize_session=False))
        if res.rowcount != 1:  # type: ignore[attr-defined]  # only if the caller did not lock
            raise _insufficient(before, -delta)
        await _sync_member(session, scope, customer_id)
    return entry


async def _sync_member(session: AsyncSession, scope: TenantScope, customer_id: int) -> None:
    """Refresh a Member object this session already holds (other parts may read it next)."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Member) and obj.tenant_id == scope.id and obj.customer_id == customer_id:
            await session.refresh(obj, attribute_names=["points", "updated_at"])


def _new_lot(session: AsyncSession, scope: TenantScope, customer_id: int, entry: PointsEntry, amount: int,
             expires_at: datetime | None) -> PointsLot:
    lot = PointsLot(tenant_id=scope.id, customer_id=customer_id, entry_id=entry.id, amount=amount, remaining=amount,
                    expires_at=expires_at, created_at=entry.created_at)
    session.add(lot)
    return lot


def _spend_order() -> tuple[Any, ...]:
    """Nearest expiry first, lots that never expire last, oldest first within one expiry."""
    return (PointsLot.expires_at.is_(None), PointsLot.expires_at, PointsLot.id)


async def _open_lots(session: AsyncSession, scope: TenantScope, customer_id: int, now: datetime) -> list[PointsLot]:
    stmt = (select(PointsLot).where(PointsLot.tenant_id == scope.id, PointsLot.customer_id == customer_id,
                                    PointsLot.remaining > 0,
                                    or_(PointsLot.expires_at.is_(None), PointsLot.expires_at > now))
            .order_by(*_spend_order()).execution_options(populate_existing=True))
    return list((await session.execute(stmt)).scalars())


async def _draw(session: AsyncSession, scope: TenantScope, customer_id: int, entry: PointsEntry, amount: int,
                lots: Sequence[PointsLot]) -> None:
    """Take ``amount`` from ``lots`` in their order and record the uses on ``entry``."""
    left = amount
    for lot in lots:
        if left <= 0:
            break
        take = min(left, lot.remaining)
        if take <= 0:
            continue
        await _move_lot(session, lot, -take)
        session.add(PointsLotUse(tenant_id=scope.id, entry_id=entry.id, lot_id=lot.id, amount=take))
        left -= take
    if left:  # pragma: no cover - the lots always cover the balance under the member lock
        raise RuntimeError(f"points lots of customer {customer_id} are short by {left}")


async def _move_lot(session: AsyncSession, lot: PointsLot, delta: int) -> None:
    res = await session.execute(
        update(PointsLot).where(PointsLot.id == lot.id, PointsLot.remaining + delta >= 0,
                                PointsLot.remaining + delta <= PointsLot.amount)
        .values(remaining=PointsLot.remaining + delta).execution_options(synchronize_session=False))
    if res.rowcount != 1:  # type: ignore[attr-defined]  # pragma: no cover - guarded by the member lock
        raise RuntimeError(f"points lot {lot.id} cannot move by {delta}")
    lot.remaining += delta


async def _expire_locked(session: AsyncSession, scope: TenantScope, customer_id: int, before: int,
                         now: datetime) -> int:
    """Expire this member's lots past due (member locked); returns the points left."""
    stmt = (select(PointsLot).where(PointsLot.tenant_id == scope.id, PointsLot.customer_id == customer_id,
                                    PointsLot.remaining > 0, PointsLot.expires_at.is_not(None),
                                    PointsLot.expires_at <= now)
            .order_by(PointsLot.expires_at, PointsLot.id).execution_options(populate_existing=True))
    groups: dict[datetime, list[PointsLot]] = defaultdict(list)
    for lot in (await session.execute(stmt)).scalars():
        assert lot.expires_at is not None
        groups[lot.expires_at].append(lot)
    points = before
    for expires_at, lots in groups.items():
        total = sum(lot.remaining for lot in lots)
        # One entry per member and expiry moment. A lot expires once (nothing is ever given
        # back into an expired lot), so the first lot's id names the group for good.
        key = f"expire:{customer_id}:{lots[0].id}"
        local = expires_at.astimezone(ZoneInfo(scope.timezone)) - timedelta(seconds=1)
        entry = await _write(session, scope, customer_id, points, -total, kind="expire", source_key=key,
                             note=f"{local:%Y-%m-%d} 到期")
        if entry is None:  # pragma: no cover - the lots would be empty already
            continue
        for lot in lots:
            session.add(PointsLotUse(tenant_id=scope.id, entry_id=entry.id, lot_id=lot.id, amount=lot.remaining))
            await _move_lot(session, lot, -lot.remaining)
        points -= total
    return points


# -- the public ledger functions -----------------------------------------------------------------------------


async def earn(session: AsyncSession, scope: TenantScope, customer_id: int, amount: int, *, kind: str, source_key: str,
               note: str = "", expires_at: datetime | Literal["rules"] | None = "rules") -> PointsEntry | None:
    """Add ``amount`` points as a new lot expiring by the rules (``None`` when ``source_key``
    was used before: nothing changes). ``expires_at`` may override the rules' expiry."""
    amount = _check_amount(amount)
    key = _check_key(source_key)
    before = await _lock(session, scope, customer_id)
    entry = await _write(session, scope, customer_id, before, amount, kind=kind, source_key=key, note=note)
    if entry is None:
        return None
    expiry = expiry_for(scope, await rules(session, scope), entry.created_at) if expires_at == "rules" else expires_at
    _new_lot(session, scope, customer_id, entry, amount, expiry)
    await session.flush()
    return entry


async def spend(session: AsyncSession, scope: TenantScope, customer_id: int, amount: int, *, kind: str, source_key: str,
                note: str = "") -> PointsEntry | None:
    """Take ``amount`` points, lots nearest expiry first; 409 ``insufficient_points`` when the
    member has fewer unexpired points; ``None`` when ``source_key`` was used before."""
    amount = _check_amount(amount)
    key = _check_key(source_key)
    if await entry_by_key(session, scope, key) is not None:
        return None
    now = clock.now()
    points = await _expire_locked(session, scope, customer_id, await _lock(session, scope, customer_id), now)
    if points < amount:
        raise _insufficient(points, amount)
    entry = await _write(session, scope, customer_id, points, -amount, kind=kind, source_key=key, note=note)
    if entry is None:
        return None
    await _draw(session, scope, customer_id, entry, amount, await _open_lots(session, scope, customer_id, now))
    await session.flush()
    return entry


async def outstanding(session: AsyncSession, scope: TenantScope, spend_entry: PointsEntry) -> dict[int, int]:
    """{lot_id: points} of a spend not given back yet."""
    stmt = (select(PointsLotUse.lot_id, func.sum(PointsLotUse.amount))
            .where(PointsLotUse.tenant_id == scope.id, PointsLotUse.entry_id == spend_entry.id)
            .group_by(PointsLotUse.lot_id))
    return {int(lot_id): int(n) for lot_id, n in (await session.execute(stmt)).all() if int(n) > 0}


async def give_back(session: AsyncSession, scope: TenantScope, customer_id: int, *, spent_source_key: str, amount: int,
                    source_key: str, kind: str, note: str = "") -> PointsEntry | None:
    """Return ``amount`` points of the spend made under ``spent_source_key`` to the lots it
    drew (latest expiry first). At most what is still outstanding is returned; the share of
    lots that have expired meanwhile is forfeited (recorded, not returned). ``None`` when
    ``source_key`` was used, the spend does not exist (for this member) or nothing is left."""
    amount = _check_amount(amount)
    key = _check_key(source_key)
    if await entry_by_key(session, scope, key) is not None:
        return None
    before = await _lock(session, scope, customer_id)
    spent = await entry_by_key(session, scope, _check_key(spent_source_key))
    if spent is None or spent.customer_id != customer_id or spent.amount >= 0:
        return None
    left = await outstanding(session, scope, spent)
    if not left:
        return None
    lots = {lot.id: lot for lot in (await session.execute(
        select(PointsLot).where(PointsLot.tenant_id == scope.id, PointsLot.id.in_(sorted(left)))
        .execution_options(populate_existing=True))).scalars()}
    now = clock.now()
    # The reverse of the draw order: never-expiring lots, then the latest expiry, newest first.
    order = sorted(lots.values(), reverse=True,
                   key=lambda lot: (lot.expires_at is None, lot.expires_at or _EPOCH, lot.id))
    plan: list[tuple[PointsLot, int, bool]] = []
    want = min(amount, sum(left.values()))
    for lot in order:
        if want <= 0:
            break
        n = min(want, left[lot.id])
        plan.append((lot, n, lot.expires_at is not None and lot.expires_at <= now))
        want -= n
    returned = sum(n for _lot, n, expired in plan if not expired)
    forfeited = sum(n for _lot, n, expired in plan if expired)
    text = note
    if forfeited:
        text = f"{note}（{forfeited} 积分已过期，不再退还）" if note else f"{forfeited} 积分已过期，不再退还"
    entry = await _write(session, scope, customer_id, before, returned, kind=kind, source_key=key, note=text)
    if entry is None:
        return None
    for lot, n, expired in plan:
        session.add(PointsLotUse(tenant_id=scope.id, entry_id=spent.id, lot_id=lot.id, amount=-n))
        if not expired:
            await _move_lot(session, lot, n)
    await session.flush()
    return entry


async def take_back(session: AsyncSession, scope: TenantScope, customer_id: int, amount: int, *, source_key: str,
                    kind: str, note: str = "") -> PointsEntry | None:
    """Take back up to ``amount`` points (earned ones, on a refund): at most what the member
    has; the rest is forgiven. The entry records what was taken (possibly 0). ``None`` when
    ``source_key`` was used before."""
    amount = _check_amount(amount)
    key = _check_key(source_key)
    if await entry_by_key(session, scope, key) is not None:
        return None
    now = clock.now()
    points = await _expire_locked(session, scope, customer_id, await _lock(session, scope, customer_id), now)
    taken = min(amount, points)
    text = note
    if taken < amount:
        text = f"{note}（应扣 {amount}，积分不足，实扣 {taken}）" if note else f"应扣 {amount}，积分不足，实扣 {taken}"
    entry = await _write(session, scope, customer_id, points, -taken, kind=kind, source_key=key, note=text)
    if entry is None:
        return None
    if taken:
        await _draw(session, scope, customer_id, entry, taken, await _open_lots(session, scope, customer_id, now))
    await session.flush()
    return entry


async def adjust(session: AsyncSession, scope: TenantScope, customer_id: int, amount: int, *, reason: str,
                 source_key: str | None = None) -> PointsEntry:
    """A staff adjustment (positive adds a lot expiring by the rules; negative takes from the
    lots nearest expiry and may not go below zero: 409). Needs a reason; audited. The
    customer must be one of this tenant's (404 otherwise)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0 or abs(amount) > ADJUST_MAX:
        raise ValidationFailed("points_amount_invalid", f"调整积分需为非 0 整数，绝对值不超过 {ADJUST_MAX}",
                               f"The adjustment must be a non-zero whole number within ±{ADJUST_MAX}",
                               fields=[{"field": "amount", "message": f"non-zero, within ±{ADJUST_MAX}"}])
    text = " ".join((reason or "").split())
    if not text or len(text) > REASON_MAX or not text.isprintable():
        raise ValidationFailed("points_reason_invalid", f"请填写调整原因（1–{REASON_MAX} 字）",
                               f"Give a reason (1–{REASON_MAX} characters)",
                               fields=[{"field": "reason", "message": f"1–{REASON_MAX} characters"}])
    await _customer_of_tenant(session, scope, customer_id)
    key = _check_key(source_key or f"adjust:{customer_id}:{secrets.token_hex(8)}")
    actor = current_actor()
    staff_id = actor.id if actor.kind == "staff" else None
    now = clock.now()
    before = await _lock(session, scope, customer_id)
    if amount < 0:
        before = await _expire_locked(session, scope, customer_id, before, now)
    entry = await _write(session, scope, customer_id, before, amount, kind="adjust", source_key=key, note=text,
                         staff_id=staff_id)
    if entry is None:
        existing = await entry_by_key(session, scope, key)
        assert existing is not None
        return existing
    if amount > 0:
        _new_lot(session, scope, customer_id, entry, amount, expiry_for(scope, await rules(session, scope), entry.created_at))
    else:
        await _draw(session, scope, customer_id, entry, -amount, await _open_lots(session, scope, customer_id, now))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="members.points.adjust", object_type="member_points",
                 object_id=customer_id, before={"points": before},
                 after={"points": before + amount, "amount": amount, "reason": text, "entry_id": entry.id})
    return entry


async def _customer_of_tenant(session: AsyncSession, scope: TenantScope, customer_id: int) -> None:
    from siyu.customers import service as customers_service

    await customers_service.get_customer(session, scope, customer_id)


async def history(session: AsyncSession, scope: TenantScope, customer_id: int, *, limit: int = 20,
                  before_id: int | None = None, kinds: Sequence[str] | None = None) -> list[PointsEntry]:
    """A member's entries, newest first; pass the last id as ``before_id`` for the next page."""
    limit = max(1, min(int(limit), 200))
    stmt = select(PointsEntry).where(PointsEntry.tenant_id == scope.id, PointsEntry.customer_id == customer_id)
    if before_id is not None:
        stmt = stmt.where(PointsEntry.id < before_id)
    if kinds:
        stmt = stmt.where(PointsEntry.kind.in_(list(kinds)))
    return list((await session.execute(stmt.order_by(PointsEntry.id.desc()).limit(limit))).scalars())


@dataclass(frozen=True, slots=True)
class PointsBalance:
    #: ``Member.points`` as stored.
    points: int
    #: What can be spent now (lots past expiry awaiting the sweeper do not count).
    available: int
    #: Points expiring within the notice window (``rules.notice_days``, at least 30 days).
    expiring: int
    #: The nearest expiry among those.
    expiring_at: datetime | None


async def balance(session: AsyncSession, scope: TenantScope, customer_id: int, *,
                  r: PointsRules | None = None) -> PointsBalance:
    member = await members_service.get_member(session, scope, customer_id)
    if member is None:
        return PointsBalance(0, 0, 0, None)
    points = int((await session.execute(select(Member.points).where(Member.id == member.id))).scalar_one())
    r = r or await rules(session, scope)
    now = clock.now()
    window = now + timedelta(days=max(r.notice_days, 30))
    rows = (await session.execute(
        select(PointsLot.expires_at, func.sum(PointsLot.remaining))
        .where(PointsLot.tenant_id == scope.id, PointsLot.customer_id == customer_id, PointsLot.remaining > 0,
               PointsLot.expires_at.is_not(None), PointsLot.expires_at <= window)
        .group_by(PointsLot.expires_at).order_by(PointsLot.expires_at))).all()
    due = sum(int(n) for at, n in rows if at is not None and at <= now)
    soon = [(at, int(n)) for at, n in rows if at is not None and at > now]
    return PointsBalance(points, points - due, sum(n for _at, n in soon), soon[0][0] if soon else None)


async def expire_due(session: AsyncSession, scope: TenantScope, customer_id: int) -> int:
    """Expire a member's lots past due now; returns the points that expired."""
    before = await _lock(session, scope, customer_id)
    after = await _expire_locked(session, scope, customer_id, before, clock.now())
    await session.flush()
    return before - after


def kind_label(kind: str, english: bool = False) -> str:
    if english:
        return KIND_EN.get(kind) or (_award_rules[kind].label_en if kind in _award_rules else kind)
    return KIND_ZH.get(kind) or (_award_rules[kind].label_zh if kind in _award_rules else kind)


# -- earn rules -------------------------------------------------------------------------------------------------


async def award(session: AsyncSession, scope: TenantScope, customer_id: int, rule: str, *, source_key: str,
                points: int | None = None, note: str = "") -> PointsEntry | None:
    """Earn the points of award rule ``rule`` (the extension point reviews and campaigns
    call) once per ``source_key``. ``points`` overrides the configured amount. ``None`` when
    the key was used or the rule gives no points."""
    found = _award_rules.get(rule)
    if found is None:
        raise ValidationFailed("points_rule_unknown", "积分奖励规则不存在", "No such points award rule",
                               fields=[{"field": "rule", "message": "unknown rule"}])
    amount = points if points is not None else (await rules(session, scope)).award_points(rule)
    if amount <= 0:
        return None
    return await earn(session, scope, customer_id, amount, kind=found.kind, source_key=source_key,
                      note=note or found.label_zh)


async def multiplier_bp(session: AsyncSession, scope: TenantScope, customer_id: int) -> int:
    """The points multiplier of the member's effective level (1× until levels exist)."""
    fn = _levels_attr("effective_level")
    if fn is None:
        return 10000
    view = await fn(session, scope, customer_id)
    value = getattr(view, "points_multiplier_bp", 10000)
    return int(value) if isinstance(value, int) and value >= 0 else 10000


def _levels_attr(name: str) -> Any:
    try:
        from siyu.members import levels  # type: ignore[attr-defined,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name != "siyu.members.levels":
            raise
        return None
    return getattr(levels, name, None)


# -- check-in ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckinStatus:
    today: date
    checked_today: bool
    #: Days in a row up to today (or up to yesterday while today is not checked in yet).
    streak: int
    #: What checking in today gives (with the streak bonus if today completes a streak).
    points_today: int


@dataclass(frozen=True, slots=True)
class CheckinResult:
    #: False when the member had already checked in today (nothing was added).
    checked_in: bool
    points: int
    bonus: int
    streak: int


def _checkin_key(customer_id: int, day: date) -> str:
    return f"checkin:{customer_id}:{day.isoformat()}"


async def _checkin_days(session: AsyncSession, scope: TenantScope, customer_id: int, since: date) -> set[date]:
    prefix = f"checkin:{customer_id}:"
    stmt = (select(PointsEntry.source_key).where(
        PointsEntry.tenant_id == scope.id, PointsEntry.customer_id == customer_id, PointsEntry.kind == "checkin",
        PointsEntry.source_key >= prefix + since.isoformat(), PointsEntry.source_key <= prefix + "9999"))
    days: set[date] = set()
    for (key,) in (await session.execute(stmt)).all():
        try:
            days.add(date.fromisoformat(str(key)[len(prefix):]))
        except ValueError:
            continue
    return days


def _streak(days: set[date], end: date) -> int:
    n = 0
    while end - timedelta(days=n) in days:
        n += 1
    return n


async def checkin_status(session: AsyncSession, scope: TenantScope, customer_id: int, *,
                         r: PointsRules | None = None) -> CheckinStatus:
    r = r or await rules(session, scope)
    today = clock.local_today(scope.timezone)
    days = await _checkin_days(session, scope, customer_id, today - timedelta(days=400))
    checked = today in days
    streak = _streak(days, today if checked else today - timedelta(days=1))
    nth = streak if checked else streak + 1
    bonus = r.checkin_streak_bonus if r.checkin_streak_days and nth % r.checkin_streak_days == 0 else 0
    return CheckinStatus(today, checked, streak, r.checkin_points + bonus)


async def checkin(session: AsyncSession, scope: TenantScope, customer_id: int) -> CheckinResult:
    """Check in for today (the tenant's day): the rules' points, plus the streak bonus on every
    ``checkin_streak_days``-th day in a row, and the levels' ``checkin`` growth. Twice a day
    checks in once (the key is ``checkin:<customer>:<date>``)."""
    r = await rules(session, scope)
    await _lock(session, scope, customer_id)
    status = await checkin_status(session, scope, customer_id, r=r)
    if status.checked_today:
        return CheckinResult(False, 0, 0, status.streak)
    key = _checkin_key(customer_id, status.today)
    streak = status.streak + 1
    bonus = r.checkin_streak_bonus if r.checkin_streak_days and streak % r.checkin_streak_days == 0 else 0
    if r.checkin_points > 0:
        entry = await earn(session, scope, customer_id, r.checkin_points, kind="checkin", source_key=key,
                           note=f"连续签到 {streak} 天")
    else:  # a check-in worth nothing still counts for the streak and growth
        entry = await _write(session, scope, customer_id, await _lock(session, scope, customer_id), 0, kind="checkin",
                             source_key=key, note=f"连续签到 {streak} 天")
    if entry is None:
        return CheckinResult(False, 0, 0, status.streak)
    if bonus:
        await earn(session, scope, customer_id, bonus, kind="checkin", source_key=f"checkin_bonus:{customer_id}:{status.today}",
                   note=f"连续签到 {streak} 天奖励")
    award_action = _levels_attr("award_action")
    if award_action is not None:
        await award_action(session, scope, customer_id, "checkin", source_key=key)
    return CheckinResult(True, r.checkin_points, bonus, streak)


# -- checkout ---------------------------------------------------------------------------------------------------

OFFER_CODE = "points"
LABEL_ZH = "积分抵扣"
LABEL_EN = "Points"


def _requested_points(raw: Any) -> int:
    if raw is None or raw is False or raw == "":
        return 0
    if raw is True:
        return MAX_POINTS  # "use as many as allowed"
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit() and len(raw.strip()) <= 15:
        raw = int(raw.strip())
    if not isinstance(raw, int) or raw < 0:
        raise ValidationFailed("points_invalid", "使用积分数量需为非负整数", "points must be a whole number of 0 or more",
                               fields=[{"field": "points", "message": "a whole number ≥ 0"}])
    return raw


def _unapplied(reason_zh: str, reason_en: str, data: dict[str, Any]) -> pricing.Offer:
    return pricing.Offer(code=OFFER_CODE, label_zh=LABEL_ZH, label_en=LABEL_EN, applied=False, reason_zh=reason_zh,
                         reason_en=reason_en, data=data)


async def points_adjuster(session: AsyncSession, ctx: pricing.PricingContext) -> list[pricing.Offer]:
    """Step ``points``: see the module docstring."""
    if ctx.customer_id is None:
        return []
    if ctx.placing and not ctx.options.get("points"):
        return []  # not asked for: what could have been used matters only on the checkout page
    wanted = _requested_points(ctx.options.get("points"))
    r = await rules(session, ctx.scope)
    available = (await balance(session, ctx.scope, ctx.customer_id, r=r)).available
    data: dict[str, Any] = {"available": available, "max_points": 0, "max_fen": 0, "points_per_yuan": r.points_per_yuan,
                            "min_points": r.min_redeem_points}
    if ctx.options.get("mall_item_id"):
        return [_unapplied("积分兑换订单不能再用积分抵扣", "Points cannot pay for a points-mall exchange", data)]
    if not r.redeem_enabled:
        return [_unapplied("商家未开启积分抵扣", "The shop does not take points", data)]
    if wanted > available and ctx.options.get("points") is not True:
        # Asking for points the member does not have (spent meanwhile, or a stale page): say
        # so rather than quietly charging more than the shopper was shown.
        raise _insufficient(available, wanted)
    cap_fen = ctx.amount_fen * r.max_share_bp // 10000
    max_points = min(available, r.points_for(cap_fen))
    max_fen = r.fen_for(max_points)
    max_points = r.points_for(max_fen)  # only points that buy whole fen
    if available < r.min_redeem_points:
        return [_unapplied(f"满 {r.min_redeem_points} 积分可用", f"Usable from {r.min_redeem_points} points", data)]
    data.update(max_points=max_points, max_fen=max_fen)
    if max_points <= 0:
        if available <= 0:
            return [_unapplied("暂无可用积分", "No points to use", data)]
        return [_unapplied("本单不可使用积分", "Points cannot be used on this order", data)]
    if wanted <= 0:
        return [_unapplied(f"可用 {max_points} 积分抵 ¥{yuan(max_fen)}", f"{max_points} points can pay ¥{yuan(max_fen)}", data)]
    fen = r.fen_for(min(wanted, max_points))
    used = r.points_for(fen)
    if fen <= 0:
        return [_unapplied(f"至少使用 {r.points_for(1)} 积分", f"Use at least {r.points_for(1)} points", data)]
    data["points"] = used
    return [pricing.Offer(code=OFFER_CODE, label_zh=LABEL_ZH, label_en=LABEL_EN, total_fen=fen, data=data)]


def order_spend_key(order_id: int) -> str:
    return f"order:{order_id}:points"


async def placement_hook(session: AsyncSession, scope: TenantScope, order: Any, quote: pricing.Quote,
                         lines: list[Any]) -> None:
    """Spend the points the order's price used (inside the placement savepoint)."""
    used = sum(int(o.data.get("points", 0)) for o in quote.offers if o.applied and o.step == "points" and o.code == OFFER_CODE)
    if used > 0:
        await spend(session, scope, order.customer_id, used, kind="spend", source_key=order_spend_key(order.id),
                    note=f"订单 {order.order_no}")


pricing.register_adjuster("points", points_adjuster)
checkout.register_placement_hook(placement_hook)


# -- order events -------------------------------------------------------------------------------------------------


def order_earn_key(order_id: int) -> str:
    return f"order:{order_id}:earn"


def _offers(order: Any) -> list[dict[str, Any]]:
    offers = (order.pricing or {}).get("offers") or []
    return [o for o in offers if isinstance(o, dict) and o.get("applied")]


def _is_mall_order(order: Any) -> bool:
    """A points-mall exchange (its offer carries the item, applied or not: an item whose cash
    equals the SKU's price takes nothing off): it earns nothing."""
    offers = (order.pricing or {}).get("offers") or []
    return any(isinstance(o, dict) and (o.get("data") or {}).get("mall_item_id") for o in offers)


def _line_fen(offer: dict[str, Any], line: Any) -> int:
    lines = offer.get("lines") or {}
    return int(lines.get(str(line.sku_id), 0) or 0)


def earn_bases(order: Any, lines: Sequence[Any]) -> list[int]:
    """Per line, what its goods were paid in money: the subtotal less every price cut and
    the points (stored value is money and counts; freight does not)."""
    cuts = [o for o in _offers(order) if o.get("step") != "balance"]
    return [max(0, ln.subtotal_fen - sum(_line_fen(o, ln) for o in cuts)) for ln in lines]


def spent_weights(order: Any, lines: Sequence[Any]) -> list[int]:
    """Per line, the fen its points discount took."""
    used = [o for o in _offers(order) if o.get("step") == "points"]
    return [sum(_line_fen(o, ln) for o in used) for ln in lines]


def case_share(total: int, weights: Sequence[int], lines: Sequence[Any], earlier: Mapping[int, int],
               case_units: Mapping[int, int]) -> int:
    """The points of one refund case: ``total`` spread over ``lines`` by ``weights`` (largest
    remainder), then per line ``U·(r+k)//n − U·r//n`` for ``k`` units of this case with ``r``
    refunded by earlier cases (exact over every case)."""
    if total <= 0 or not lines:
        return 0
    shares = allocate(total, list(weights))
    out = 0
    for ln, u in zip(lines, shares, strict=True):
        k = case_units.get(ln.id, 0)
        if k <= 0 or u <= 0:
            continue
        r = min(earlier.get(ln.id, 0), ln.quantity - k)
        out += u * (r + k) // ln.quantity - u * r // ln.quantity
    return out


async def _scope(session: AsyncSession, tenant_id: int) -> TenantScope:
    return tenants_service.scope_of(await tenants_service.get_tenant(session, tenant_id))


async def _event_order(session: AsyncSession, event: outbox.Event) -> tuple[TenantScope, Any] | None:
    from siyu.orders import service as orders_service

    p = event.payload
    try:
        tenant_id, order_id = int(p["tenant_id"]), int(p["order_id"])
    except (KeyError, TypeError, ValueError):
        log.error("an order event without tenant or order", extra={"event_id": event.id})
        return None
    scope = await _scope(session, tenant_id)
    try:
        return scope, await orders_service.get_order(session, scope, order_id)
    except NotFound:
        log.error("an order event names an unknown order", extra={"event_id": event.id, "order_id": order_id})
        return None


async def _refunded_cases(session: AsyncSession, scope: TenantScope, order_id: int) -> list[tuple[int, dict[int, int]]]:
    """(case id, {order_line_id: units}) of the order's refunded cases, oldest first."""
    from siyu.orders import aftersales

    rows, _total = await aftersales.list_cases(session, scope, aftersales.CaseQuery(order_id=order_id, status="refunded"),
                                               0, 1000)
    out: list[tuple[int, dict[int, int]]] = []
    for row in rows:
        units: dict[int, int] = defaultdict(int)
        for cl in row.lines:
            units[cl.order_line_id] += cl.quantity
        out.append((row.case.id, dict(units)))
    return sorted(out)


def _earlier(cases: Sequence[tuple[int, dict[int, int]]], case_id: int) -> dict[int, int]:
    before: dict[int, int] = defaultdict(int)
    for cid, units in cases:
        if cid < case_id:
            for line_id, k in units.items():
                before[line_id] += k
    return before


async def _guarded(session: AsyncSession, what: str, fn: Any, *args: Any) -> None:
    """Run one handler step in a savepoint; a domain error is logged, not retried forever
    (it would also hold back the other modules' handlers of the same event)."""
    try:
        async with session.begin_nested():
            await fn(*args)
    except DomainError as exc:
        log.error("points: %s failed", what, extra={"code": exc.code, "error": str(exc)})


async def live_customer(session: AsyncSession, scope: TenantScope, customer_id: int) -> int:
    """The customer that stands for ``customer_id`` now: a merged account's survivor (its
    points moved there), else the customer itself."""
    from siyu.customers import service as customers_service

    cid = customer_id
    for _hop in range(8):
        try:
            c = await customers_service.get_customer(session, scope, cid)
        except NotFound:
            return cid
        if c.status != "merged" or c.merged_into_id is None:
            return c.id
        cid = c.merged_into_id
    return cid


async def _give_back_to_live(session: AsyncSession, scope: TenantScope, spent: PointsEntry, amount: int, *,
                             source_key: str, kind: str, note: str) -> None:
    """Give back to the spend's lots; when that account has since been merged into another,
    the returned points follow its other points to the survivor (same expiry)."""
    entry = await give_back(session, scope, spent.customer_id, spent_source_key=spent.source_key, amount=amount,
                            source_key=source_key, kind=kind, note=note)
    live = await live_customer(session, scope, spent.customer_id)
    if entry is not None and entry.amount > 0 and live != spent.customer_id:
        await move_points(session, scope, spent.customer_id, live, key=f"{source_key}:merge")


async def _settle_case(session: AsyncSession, scope: TenantScope, order: Any, lines: Sequence[Any],
                       cases: Sequence[tuple[int, dict[int, int]]], case_id: int) -> None:
    """Give back spent and take back earned points for one refunded case (each once)."""
    units = dict(cases).get(case_id, {})
    earlier = _earlier(cases, case_id)
    spent = await entry_by_key(session, scope, order_spend_key(order.id))
    if spent is not None and spent.amount < 0:
        n = case_share(-spent.amount, spent_weights(order, lines), lines, earlier, units)
        if n > 0:
            await _give_back_to_live(session, scope, spent, n, source_key=f"after_sale:{case_id}:points",
                                     kind="refund_return", note=f"订单 {order.order_no} 退款")
    earned = await entry_by_key(session, scope, order_earn_key(order.id))
    if earned is not None and earned.amount > 0:
        n = case_share(earned.amount, earn_bases(order, lines), lines, earlier, units)
        if n > 0:
            # The earned points live where the member's points live now (a merge moved them).
            await take_back(session, scope, await live_customer(session, scope, earned.customer_id), n,
                            source_key=f"after_sale:{case_id}:earn", kind="refund_takeback",
                            note=f"订单 {order.order_no} 退款")


@outbox.on("order.cancelled")
async def on_order_cancelled(session: AsyncSession, event: outbox.Event) -> None:
    found = await _event_order(session, event)
    if found is None:
        return
    scope, order = found

    async def run() -> None:
        spent = await entry_by_key(session, scope, order_spend_key(order.id))
        if spent is None or spent.amount >= 0:
            return
        left = sum((await outstanding(session, scope, spent)).values())
        if left > 0:
            await _give_back_to_live(session, scope, spent, left, source_key=f"{spent.source_key}:cancel",
                                     kind="cancel_return", note=f"订单 {order.order_no} 取消")

    await _guarded(session, "cancel return", run)


@outbox.on("order.completed")
async def on_order_completed(session: AsyncSession, event: outbox.Event) -> None:
    from siyu.orders import service as orders_service

    found = await _event_order(session, event)
    if found is None:
        return
    scope, order = found
    if _is_mall_order(order):
        return

    async def run() -> None:
        lines = await orders_service.order_lines(session, scope, order.id)
        r = await rules(session, scope)
        base = sum(earn_bases(order, lines))
        who = await live_customer(session, scope, order.customer_id)
        if r.earn_per_yuan > 0 and base >= 100:
            mult = await multiplier_bp(session, scope, who)
            amount = base // 100 * r.earn_per_yuan * mult // 10000
            if amount > 0:
                await earn(session, scope, who, amount, kind="earn", source_key=order_earn_key(order.id),
                           note=f"订单 {order.order_no}" + (f"（{bp_text(mult)} 倍）" if mult != 10000 else ""))
        # Cases refunded before completion: take their share back now (same keys as the event).
        cases = await _refunded_cases(session, scope, order.id)
        for case_id, _units in cases:
            await _settle_case(session, scope, order, lines, cases, case_id)
        await award(session, scope, who, "first_order", source_key=f"first_order:{who}", note=f"订单 {order.order_no}")

    await _guarded(session, "order completed", run)


@outbox.on("after_sale.refunded")
async def on_after_sale_refunded(session: AsyncSession, event: outbox.Event) -> None:
    from siyu.orders import service as orders_service

    found = await _event_order(session, event)
    if found is None:
        return
    scope, order = found
    try:
        case_id = int(event.payload["case_id"])
    except (KeyError, TypeError, ValueError):
        return

    async def run() -> None:
        # Lock the member the earn at completion locks, so one of the two sees the other.
        await _lock(session, scope, await live_customer(session, scope, order.customer_id))
        lines = await orders_service.order_lines(session, scope, order.id)
        cases = await _refunded_cases(session, scope, order.id)
        if case_id not in dict(cases):
            return
        await _settle_case(session, scope, order, lines, cases, case_id)

    await _guarded(session, "refund", run)


@outbox.on("customer.registered")
async def on_customer_registered(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    if not event.tenant_id or not str(p.get("customer_id", "")).isdigit():
        return
    scope = await _scope(session, int(event.tenant_id))
    cid = int(p["customer_id"])
    await _guarded(session, "sign-up award", _award_signup, session, scope, cid)


async def _award_signup(session: AsyncSession, scope: TenantScope, customer_id: int) -> None:
    await award(session, scope, customer_id, "signup", source_key=f"signup:{customer_id}")


@outbox.on("customer.merged")
async def on_customer_merged(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    try:
        survivor, merged = int(p["survivor_id"]), int(p["merged_id"])
    except (KeyError, TypeError, ValueError):
        return
    if not event.tenant_id or survivor == merged:
        return
    scope = await _scope(session, int(event.tenant_id))
    await _guarded(session, "merge", move_points, session, scope, merged, survivor)


async def move_points(session: AsyncSession, scope: TenantScope, from_customer: int, to_customer: int, *,
                      key: str | None = None) -> int:
    """Move every unexpired point of ``from_customer`` to ``to_customer`` (account merge): one
    ``merge_out`` and one ``merge_in`` entry, and the survivor gets a lot per moved lot with
    the same expiry. Once per ``key`` (default: once per pair); returns the points moved."""
    if from_customer == to_customer or await members_service.get_member(session, scope, from_customer) is None:
        return 0
    now = clock.now()
    locked = await _lock_many(session, scope, (from_customer, to_customer))
    src = await _expire_locked(session, scope, from_customer, locked[from_customer], now)
    base = key or f"merge:{from_customer}:{to_customer}"
    out_key, in_key = f"{base}:out", f"{base}:in"
    if src <= 0 or await entry_by_key(session, scope, out_key) is not None:
        return 0
    lots = await _open_lots(session, scope, from_customer, now)
    out = await _write(session, scope, from_customer, src, -src, kind="merge_out", source_key=out_key,
                       note=f"转入顾客 {to_customer}")
    inn = await _write(session, scope, to_customer, locked[to_customer], src, kind="merge_in", source_key=in_key,
                       note=f"来自顾客 {from_customer}")
    if out is None or inn is None:  # pragma: no cover - both keys are new under the lock
        raise Conflict("points_merge_replayed", "积分已合并", "Points were merged already")
    for lot in lots:
        session.add(PointsLotUse(tenant_id=scope.id, entry_id=out.id, lot_id=lot.id, amount=lot.remaining))
        _new_lot(session, scope, to_customer, inn, lot.remaining, lot.expires_at)
        await _move_lot(session, lot, -lot.remaining)
    await session.flush()
    return src


# -- expiry and notices (the sweepers in ``tasks_points`` call these) ---------------------------------------------


async def customers_with_due_lots(session: AsyncSession, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(tenant_id, customer_id) having lots past expiry with points left."""
    stmt = (select(PointsLot.tenant_id, PointsLot.customer_id)
            .where(PointsLot.expires_at <= now, PointsLot.remaining > 0)
            .group_by(PointsLot.tenant_id, PointsLot.customer_id)
            .order_by(PointsLot.tenant_id, PointsLot.customer_id).limit(limit))
    return [(int(t), int(c)) for t, c in (await session.execute(stmt)).all()]


async def expire_batch(session: AsyncSession, *, limit: int = 200) -> int:
    """Expire the lots past due of up to ``limit`` members, each in its own savepoint."""
    now = clock.now()
    scopes: dict[int, TenantScope] = {}
    done = 0
    for tenant_id, customer_id in await customers_with_due_lots(session, now, limit):
        try:
            async with session.begin_nested():
                if tenant_id not in scopes:
                    scopes[tenant_id] = await _scope(session, tenant_id)
                done += await expire_due(session, scopes[tenant_id], customer_id) > 0
        except Exception:
            log.exception("points not expired", extra={"tenant_id": tenant_id, "customer_id": customer_id})
    return done


MAX_NOTICE_DAYS = 90


async def notice_batch(session: AsyncSession, *, limit: int = 500) -> int:
    """Tell members about points expiring within their tenant's ``notice_days``: one
    :class:`MemberNotice` per member and expiry moment (and an SMS when the customer has a
    phone), once per lot (``notified_at``); returns the notices written."""
    now = clock.now()
    tenants = [int(t) for (t,) in (await session.execute(
        select(PointsLot.tenant_id).where(PointsLot.notified_at.is_(None), PointsLot.remaining > 0,
                                          PointsLot.expires_at > now,
                                          PointsLot.expires_at <= now + timedelta(days=MAX_NOTICE_DAYS))
        .group_by(PointsLot.tenant_id))).all()]
    sent = 0
    for tenant_id in tenants:
        try:
            async with session.begin_nested():
                scope = await _scope(session, tenant_id)
                sent += await _notify_tenant(session, scope, now, limit)
        except Exception:
            log.exception("points expiry notices failed", extra={"tenant_id": tenant_id})
    return sent


async def _notify_tenant(session: AsyncSession, scope: TenantScope, now: datetime, limit: int) -> int:
    from siyu.customers import service as customers_service
    from siyu.kit import sms

    r = await rules(session, scope)
    if r.notice_days <= 0:
        return 0
    lots = list((await session.execute(
        select(PointsLot).where(PointsLot.tenant_id == scope.id, PointsLot.notified_at.is_(None), PointsLot.remaining > 0,
                                PointsLot.expires_at > now, PointsLot.expires_at <= now + timedelta(days=r.notice_days))
        .order_by(PointsLot.customer_id, PointsLot.expires_at, PointsLot.id).limit(limit))).scalars())
    groups: dict[tuple[int, datetime], list[PointsLot]] = defaultdict(list)
    for lot in lots:
        assert lot.expires_at is not None
        groups[(lot.customer_id, lot.expires_at)].append(lot)
    tenant = await tenants_service.get_tenant(session, scope.id)
    written = 0
    for (customer_id, expires_at), group in groups.items():
        claimed = (await session.execute(
            update(PointsLot).where(PointsLot.id.in_([lot.id for lot in group]), PointsLot.notified_at.is_(None))
            .values(notified_at=now).execution_options(synchronize_session=False))).rowcount  # type: ignore[attr-defined]
        if not claimed:
            continue
        total = sum(lot.remaining for lot in group)
        day = (expires_at.astimezone(ZoneInfo(scope.timezone)) - timedelta(seconds=1)).date()
        title = f"{total} 积分将于 {day:%Y-%m-%d} 过期"
        body = "积分可在下单时抵扣现金或到积分商城兑换好礼，别让它们过期哦。"
        if await _notice(session, scope, customer_id, "points_expiring", f"points_expiring:{customer_id}:{group[0].id}",
                         title, body):
            written += 1
            customer = await customers_service.active_customer(session, scope, customer_id)
            if customer is not None and customer.phone:
                await sms.queue_and_publish(
                    session, tenant_id=scope.id, phone=customer.phone, template="points_expiring",
                    content=f"【{tenant.name}】您有 {total} 积分将于 {day:%Y-%m-%d} 过期，请及时使用。")
    return written


async def _notice(session: AsyncSession, scope: TenantScope, customer_id: int, kind: str, key: str, title: str,
                  body: str) -> bool:
    """Insert a member notice once per key; True when this call wrote it."""
    from siyu.members.models import MemberNotice

    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(MemberNotice)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(MemberNotice)
    res = await session.execute(stmt.on_conflict_do_nothing().values(
        tenant_id=scope.id, customer_id=customer_id, kind=kind[:24], notice_key=key[:120], title=title[:80],
        body=body[:300], created_at=clock.now()).returning(MemberNotice.id))
    return res.scalar_one_or_none() is not None


# -- reads for pages ------------------------------------------------------------------------------------------------


async def recent_entries(session: AsyncSession, scope: TenantScope, *, limit: int = 20,
                         kind: str | None = None) -> list[PointsEntry]:
    """The tenant's latest entries (the console's 积分流水)."""
    stmt = select(PointsEntry).where(PointsEntry.tenant_id == scope.id)
    if kind:
        stmt = stmt.where(PointsEntry.kind == kind)
    return list((await session.execute(stmt.order_by(PointsEntry.id.desc()).limit(max(1, min(limit, 200))))).scalars())


@dataclass(frozen=True, slots=True)
class PointsTotals:
    members_with_points: int
    outstanding: int
    earned_30d: int
    spent_30d: int


async def totals(session: AsyncSession, scope: TenantScope) -> PointsTotals:
    """Figures for the settings page: points held, and earned/spent in the last 30 days."""
    held = (await session.execute(select(func.count(), func.coalesce(func.sum(Member.points), 0))
                                  .where(Member.tenant_id == scope.id, Member.points > 0))).one()
    since = clock.now() - timedelta(days=30)
    flows = (await session.execute(
        select(func.coalesce(func.sum(PointsEntry.amount).filter(PointsEntry.amount > 0), 0),
               func.coalesce(func.sum(PointsEntry.amount).filter(and_(PointsEntry.amount < 0,
                                                                       PointsEntry.kind.in_(("spend", "redeem")))), 0))
        .where(PointsEntry.tenant_id == scope.id, PointsEntry.created_at >= since))).one()
    return PointsTotals(int(held[0]), int(held[1]), int(flows[0]), -int(flows[1]))
