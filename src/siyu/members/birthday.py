"""Birthday perks (生日礼): points and a coupon for members on their birthday, or in their
birthday month, once a year.

Settings (``Tenant.settings["members"]["birthday"]``, :func:`birthday_settings` /
:func:`save_settings`, audited): ``enabled``; ``mode`` ``day`` (on the birthday) or
``month`` (from the first day of the birthday month); ``points`` — ``None`` gives each member
the ``birthday_points`` of their effective level, a number gives everyone that many instead;
``coupon_id`` — a coupon template for members whose level names no birthday coupon of its
own (only when a coupon granter is registered in :mod:`siyu.members.rewards`).

Granting (:func:`grant_due`, run by the ``members.birthday`` sweeper every 15 minutes for
every tenant with perks on) works in the tenant's time zone. "Today" is the tenant's local
date. In ``day`` mode the members granted are those whose birthday (``MM-DD``) is today or
was one of the :data:`CATCH_UP_DAYS` days before (so a day the job could not run is made up
late, not lost), each for the year of that birthday; a 29 February birthday is celebrated on
28 February in other years. In ``month`` mode: everyone whose birthday falls in the current
month, for the current year.

Once per member per year holds because every grant first inserts a :class:`BirthdayGrant`
row, unique per ``(tenant, customer, year)``, with ``ON CONFLICT DO NOTHING``: the run that
inserts the row gives the gift; a second run — later the same day, after a restart, or in
another worker at the same moment (it waits on the unique index until the first commits) —
inserts nothing and gives nothing. Points are earned with ``points.earn(..., kind="birthday",
source_key="birthday:<customer>:<year>")``, itself idempotent; the coupon goes through
``rewards.grant_coupon`` with the same source key. Members with nothing to receive (no
points configured and no coupon available) get no row, so a gift configured later that year
still reaches them. Blocked or merged customers are skipped. A ``birthday`` member notice
says what was given.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import audit, clock
from siyu.kit.errors import ValidationFailed
from siyu.kit.tenancy import TenantScope
from siyu.members import rewards, service
from siyu.members.cards import add_notice
from siyu.members.models import BirthdayGrant, Member

log = logging.getLogger("siyu.members.birthday")

SECTION = "birthday"
MODES = ("day", "month")
#: In ``day`` mode, birthdays this many days back are still granted (a missed run made up).
CATCH_UP_DAYS = 2
MAX_POINTS = 1_000_000

audit.describe(actions={"members.settings.birthday": "修改生日礼设置"}, objects={"member_settings": "会员设置"})


@dataclass(frozen=True, slots=True)
class BirthdaySettings:
    enabled: bool = False
    mode: str = "day"
    #: ``None``: each level's own birthday points; a number: everyone gets that many.
    points: int | None = None
    #: Coupon template for members whose level has no birthday coupon of its own.
    coupon_id: int | None = None


def _from(raw: dict[str, Any]) -> BirthdaySettings:
    """Stored values that do not make sense (a hand edit, an older release) fall back to the defaults."""
    d = BirthdaySettings()
    enabled = raw.get("enabled")
    mode = raw.get("mode")
    points = raw.get("points")
    coupon = raw.get("coupon_id")
    return BirthdaySettings(
        enabled=enabled if isinstance(enabled, bool) else d.enabled,
        mode=mode if mode in MODES else d.mode,
        points=points if isinstance(points, int) and not isinstance(points, bool) and 0 <= points <= MAX_POINTS else None,
        coupon_id=coupon if isinstance(coupon, int) and not isinstance(coupon, bool) and coupon > 0 else None,
    )


async def birthday_settings(session: AsyncSession, scope: TenantScope) -> BirthdaySettings:
    return _from(await service.section(session, scope, SECTION))


def _bad(field: str, zh: str, en: str) -> ValidationFailed:
    return ValidationFailed("birthday_settings_invalid", zh, en, fields=[{"field": field, "message": en}])


async def save_settings(session: AsyncSession, scope: TenantScope, *, enabled: bool, mode: str, points: int | None,
                        coupon_id: int | None) -> BirthdaySettings:
    """Replace the settings (staff; audited by :func:`siyu.members.service.save_section`)."""
    if not isinstance(enabled, bool):
        raise _bad("enabled", "开关状态无效", "enabled must be true or false")
    if mode not in MODES:
        raise _bad("mode", "发放时间无效", "mode must be day or month")
    if points is not None and (isinstance(points, bool) or not isinstance(points, int) or not 0 <= points <= MAX_POINTS):
        raise _bad("points", f"生日积分需为 0–{MAX_POINTS} 的整数", f"points must be a whole number from 0 to {MAX_POINTS}")
    if coupon_id is not None:
        choices = {cid for cid, _name in await rewards.coupon_choices(session, scope)}
        if coupon_id not in choices:
            raise _bad("coupon_id", "优惠券不可用", "No such coupon can be granted")
    value = BirthdaySettings(enabled=enabled, mode=mode, points=points, coupon_id=coupon_id)
    await service.save_section(session, scope, SECTION, asdict(value))
    return value


# -- who is due -----------------------------------------------------------------------------------------


def birthday_days(today: date, mode: str) -> dict[int, list[str]]:
    """year → the ``MM-DD`` birthdays celebrated ``today`` (day mode, with the catch-up days).
    Month mode is handled by :func:`_due_clause`."""
    out: dict[int, list[str]] = {}
    for back in range(CATCH_UP_DAYS + 1):
        d = today - timedelta(days=back)
        mds = out.setdefault(d.year, [])
        mds.append(d.strftime("%m-%d"))
        if d.month == 2 and d.day == 28 and not calendar.isleap(d.year):
            mds.append("02-29")
    return out


def _not_granted(year: int) -> Any:
    return ~exists().where(BirthdayGrant.tenant_id == Member.tenant_id, BirthdayGrant.customer_id == Member.customer_id,
                           BirthdayGrant.year == year)


def _due_clause(today: date, mode: str) -> tuple[Any, dict[str, int]]:
    """The WHERE clause of members due today, and ``MM-DD`` → the year its grant is for."""
    if mode == "month":
        lo, hi = f"{today.month:02d}-01", f"{today.month:02d}-31"
        return and_(Member.birthday_md >= lo, Member.birthday_md <= hi, _not_granted(today.year)), {}
    parts = []
    years: dict[str, int] = {}
    for year, mds in birthday_days(today, mode).items():
        parts.append(and_(Member.birthday_md.in_(mds), _not_granted(year)))
        for md in mds:
            years.setdefault(md, year)
    return or_(*parts), years


@dataclass(frozen=True, slots=True)
class GrantPass:
    #: Members looked at (due and not yet granted this year).
    seen: int
    granted: int
    #: The last customer id looked at: the next pass starts after it.
    last_customer_id: int


async def grant_due(session: AsyncSession, scope: TenantScope, *, today: date | None = None, after_customer_id: int = 0,
                    limit: int = 200) -> GrantPass:
    """Give this batch of due members their gift (see the module docstring). Call again with
    ``after_customer_id=result.last_customer_id`` while ``seen == limit``."""
    conf = await birthday_settings(session, scope)
    if not conf.enabled:
        return GrantPass(0, 0, after_customer_id)
    today = today or clock.local_today(scope.timezone)
    clause, years = _due_clause(today, conf.mode)
    rows = (await session.execute(
        select(Member.customer_id, Member.birthday_md)
        .where(Member.tenant_id == scope.id, Member.customer_id > after_customer_id, clause)
        .order_by(Member.customer_id).limit(limit))).all()
    granted = 0
    for customer_id, md in rows:
        year = years.get(str(md), today.year)
        try:
            async with session.begin_nested():
                granted += await grant_one(session, scope, int(customer_id), year=year, conf=conf) is not None
        except Exception:
            log.exception("birthday gift not given", extra={"tenant_id": scope.id, "customer_id": customer_id})
    last = int(rows[-1][0]) if rows else after_customer_id
    return GrantPass(len(rows), granted, last)


def _insert_grant(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(BirthdayGrant).on_conflict_do_nothing().returning(BirthdayGrant.id)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(BirthdayGrant).on_conflict_do_nothing().returning(BirthdayGrant.id)


def source_key(customer_id: int, year: int) -> str:
    return f"birthday:{customer_id}:{year}"


async def grant_one(session: AsyncSession, scope: TenantScope, customer_id: int, *, year: int,
                    conf: BirthdaySettings | None = None) -> BirthdayGrant | None:
    """Give ``customer_id`` the gift of ``year`` unless it was given (``None``: nothing given now)."""
    from siyu.customers import service as customers_service
    from siyu.members import levels, points

    conf = conf or await birthday_settings(session, scope)
    if await customers_service.active_customer(session, scope, customer_id) is None:
        return None
    level = await levels.effective_level(session, scope, customer_id)
    level_id = level.id or None  # 0: the tenant's levels are unsaved defaults
    amount = conf.points if conf.points is not None else level.birthday_points
    coupon_id = level.birthday_coupon_id or conf.coupon_id
    if coupon_id is not None and not rewards.coupons_available():
        coupon_id = None
    if amount <= 0 and coupon_id is None:
        return None
    now = clock.now()
    new_id = (await session.execute(_insert_grant(session), [{
        "tenant_id": scope.id, "customer_id": customer_id, "year": year, "level_id": level_id, "points": max(0, amount),
        "coupon_id": coupon_id, "granted_at": now}])).scalar_one_or_none()
    if new_id is None:
        return None  # given before (or by another run at this very moment)
    key = source_key(customer_id, year)
    if amount > 0:
        await points.earn(session, scope, customer_id, amount, kind="birthday", source_key=key, note=f"{year} 生日礼")
    if coupon_id is not None and not await rewards.grant_coupon(session, scope, customer_id, coupon_id, source_key=key,
                                                                reason="生日礼"):
        coupon_id = None
        await session.execute(update(BirthdayGrant).where(BirthdayGrant.id == new_id).values(coupon_id=None)
                              .execution_options(synchronize_session=False))
    gifts = [f"{amount} 积分"] if amount > 0 else []
    if coupon_id is not None:
        gifts.append("一张生日优惠券")
    await add_notice(session, scope.id, customer_id, kind="birthday", key=key, title="生日快乐！",
                     body=f"祝您生日快乐，已为您送上{'和'.join(gifts)}。" if gifts else "祝您生日快乐！")
    grant = (await session.execute(select(BirthdayGrant).where(BirthdayGrant.id == new_id)
                                   .execution_options(populate_existing=True))).scalar_one()
    return grant


# -- reads ----------------------------------------------------------------------------------------------


async def list_grants(session: AsyncSession, scope: TenantScope, *, year: int | None = None,
                      customer_id: int | None = None, offset: int = 0, limit: int = 20) -> tuple[list[BirthdayGrant], int]:
    """Newest first."""
    stmt = select(BirthdayGrant).where(BirthdayGrant.tenant_id == scope.id)
    if year is not None:
        stmt = stmt.where(BirthdayGrant.year == year)
    if customer_id is not None:
        stmt = stmt.where(BirthdayGrant.customer_id == customer_id)
    total = int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())
    if limit <= 0:
        return [], total
    rows = (await session.execute(stmt.order_by(BirthdayGrant.id.desc()).offset(offset).limit(limit))).scalars()
    return list(rows), total


async def birthdays_in_month(session: AsyncSession, scope: TenantScope, month: int) -> int:
    """Members whose birthday falls in ``month`` (1–12)."""
    lo, hi = f"{month:02d}-01", f"{month:02d}-31"
    return int((await session.execute(select(func.count()).select_from(Member).where(
        Member.tenant_id == scope.id, Member.birthday_md >= lo, Member.birthday_md <= hi))).scalar_one())


@dataclass(frozen=True, slots=True)
class LevelGift:
    level_id: int
    name: str
    rank: int
    points: int
    coupon_id: int | None


async def level_gifts(session: AsyncSession, scope: TenantScope) -> list[LevelGift]:
    """Each level's own birthday points and coupon (what ``points=None`` gives)."""
    from siyu.members import levels

    return [LevelGift(lv.id, lv.name, lv.rank, lv.birthday_points, lv.birthday_coupon_id)
            for lv in await levels.list_levels(session, scope)]
