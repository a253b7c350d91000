"""Paid membership cards (付费会员卡): plans staff sell, purchases shoppers pay, the validity
they buy, and refunds.

A plan sells ``days`` at one level for ``price_fen`` (plus ``gift_points``). A purchase is
paid like an order: it is a payments source ``member_card`` whose amount is the plan's price
at the moment of purchase (kept on the purchase, so a later price change never alters what
an open purchase costs). Every function takes the caller's session and never commits.

Contract
--------

Plans
    ``list_plans(session, scope, *, on_sale_only=False)``, ``get_plan(...)`` (404
    ``card_plan_not_found``), ``create_plan(session, scope, data: PlanData)``,
    ``update_plan(session, scope, plan_id, changes: Mapping)`` (only the keys given change),
    ``delete_plan(...)`` (409 ``card_plan_in_use`` once anyone bought it: take it off sale
    instead), ``level_choices(session, scope)``. Staff writes are audited.
Purchases
    ``create_purchase(session, scope, *, customer_id, plan_id, idempotency_key) ->
    PurchasePlaced`` — the same key and plan answer the purchase made first (``created``
    False); the same key with another plan is 409 ``idempotency_key_reused``. A member whose
    card at *another* level is still valid is refused (409 ``card_level_conflict``): one
    card at a time, renewals extend it. ``start_payment(...) -> PaymentStart`` opens (or
    reuses) the payment until the purchase's ``pay_deadline`` (the shop's unpaid-order
    timeout).
Paying
    ``payment.succeeded`` for a ``member_card`` source → :func:`apply_payment`: the purchase
    becomes ``paid``; its validity starts now, or where the member's card of the same level
    ends if it is still valid (a renewal), and lasts ``days`` × 24 h;
    ``service.set_card`` records the card on the member; gift points are earned once
    (``points.earn``, kind ``card_gift``, source ``card:<purchase>:gift``); event
    ``member_card.paid``. A payment for a purchase that no longer wants it (closed at its
    deadline, already paid by another payment, a card of another level bought meanwhile, or
    a different amount) is refunded in full at once (``out_refund_no = "LC" + out_trade_no``).
Timeouts
    ``close_overdue(session, *, now=None, limit=200)`` closes purchases unpaid at their
    deadline (their payment is closed at the gateway first; money taken at that moment wins
    and pays the purchase).
Staff refunds
    ``refund_quote(purchase, now)`` and ``refund_purchase(session, scope, purchase_id, *,
    mode, amount_fen=None, reason)`` with ``mode`` ``full`` (the price), ``prorata``
    (price × unused time ÷ bought time, rounded down to the fen) or ``amount`` (0 … price).
    The purchase becomes ``refunded`` and the card loses the purchase's unused time: the
    member's expiry moves back by ``ends_at − max(now, starts_at)``, never before now (so
    refunding the only or the last purchase ends the card now). Gift points are taken back
    in proportion to the money returned (``gift × refund ÷ price``, rounded down; at most
    the member's balance). A failed refund can be sent again with :func:`retry_refund`.
    Event ``member_card.refunded``.
Reads
    ``get_purchase``, ``customer_purchase`` (another member's purchase is the same 404),
    ``list_purchases``, ``purchase_refunds``, ``card_of(session, scope, customer_id) ->
    CardView``.
Notices
    ``notify_expiring(session, *, now=None, days=EXPIRY_NOTICE_DAYS)``: a ``card_expiring``
    member notice once per card expiry, ``days`` before it.
"""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import audit, clock, outbox
from siyu.kit.errors import Conflict, NotFound, ValidationFailed
from siyu.kit.tenancy import TenantScope
from siyu.members import service
from siyu.members.models import (
    Member,
    MemberCardPlan,
    MemberCardPurchase,
    MemberLevel,
    MemberNotice,
)
from siyu.payments import service as payments_service
from siyu.payments.models import Refund
from siyu.payments.service import PaymentStart
from siyu.tenants import service as tenants_service

log = logging.getLogger("siyu.members.cards")

SOURCE_TYPE = "member_card"
PURCHASE_STATUSES = ("pending_payment", "paid", "closed", "refunded")
STATUS_ZH = {"pending_payment": "待支付", "paid": "已支付", "closed": "已关闭", "refunded": "已退款"}
STATUS_EN = {"pending_payment": "Awaiting payment", "paid": "Paid", "closed": "Closed", "refunded": "Refunded"}
REFUND_MODES = ("full", "prorata", "amount")

MAX_NAME = 40
MAX_DESCRIPTION = 500
MAX_DAYS = 3660
MAX_PRICE_FEN = 100_000_000
MAX_GIFT_POINTS = 10_000_000
MAX_SORT = 99_999
MAX_REASON = 80
#: A payment must stay payable at least this long, or the payer cannot finish it.
MIN_PAY_WINDOW = timedelta(seconds=60)
#: How long before a card ends its holder is told.
EXPIRY_NOTICE_DAYS = 7
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")

audit.describe(
    actions={
        "members.card_plan.create": "新建付费会员卡", "members.card_plan.update": "修改付费会员卡",
        "members.card_plan.delete": "删除付费会员卡", "members.card.refund": "付费会员卡退款",
        "members.card.retry_refund": "付费会员卡重新退款",
    },
    objects={"member_card_plan": "付费会员卡", "member_card_purchase": "会员卡购买记录"},
)


# -- errors ----------------------------------------------------------------------------------------------


def plan_not_found() -> NotFound:
    return NotFound("card_plan_not_found", "会员卡不存在", "Membership card plan not found")


def purchase_not_found() -> NotFound:
    return NotFound("card_purchase_not_found", "会员卡购买记录不存在", "Membership card purchase not found")


def _invalid(field: str, zh: str, en: str, code: str = "card_plan_invalid") -> ValidationFailed:
    return ValidationFailed(code, zh, en, fields=[{"field": field, "message": en}])


# -- plans ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanData:
    """What staff fill in for a plan; checked by :func:`create_plan` / :func:`update_plan`."""

    name: str
    level_id: int
    days: int
    price_fen: int
    gift_points: int = 0
    description: str = ""
    on_sale: bool = True
    sort: int = 0


PLAN_FIELDS = tuple(f.name for f in fields(PlanData))


def _int_in(value: Any, field: str, lo: int, hi: int, zh: str, en: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _invalid(field, zh, en)
    return value


def _clean_plan(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalise plan fields (only those present)."""
    out: dict[str, Any] = {}
    if "name" in values:
        name = " ".join(str(values["name"] or "").split())
        if (not name or len(name) > MAX_NAME or _CONTROL.search(name)
                or not any(unicodedata.category(ch) != "Cf" for ch in name)):
            raise _invalid("name", f"会员卡名称需为 1–{MAX_NAME} 个字符", f"The name must be 1–{MAX_NAME} characters")
        out["name"] = name
    if "level_id" in values:
        out["level_id"] = _int_in(values["level_id"], "level_id", 1, 2**63 - 1, "请选择会员等级", "Choose a level")
    if "days" in values:
        out["days"] = _int_in(values["days"], "days", 1, MAX_DAYS, f"有效天数需为 1–{MAX_DAYS} 的整数",
                              f"Days must be a whole number from 1 to {MAX_DAYS}")
    if "price_fen" in values:
        out["price_fen"] = _int_in(values["price_fen"], "price_fen", 1, MAX_PRICE_FEN, "售价需在 0.01–1,000,000 元之间",
                                   "The price must be from 0.01 to 1,000,000 yuan")
    if "gift_points" in values:
        out["gift_points"] = _int_in(values["gift_points"], "gift_points", 0, MAX_GIFT_POINTS,
                                     f"赠送积分需为 0–{MAX_GIFT_POINTS} 的整数",
                                     f"Gift points must be a whole number from 0 to {MAX_GIFT_POINTS}")
    if "description" in values:
        text = str(values["description"] or "").strip()
        if len(text) > MAX_DESCRIPTION or re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
            raise _invalid("description", f"权益说明最多 {MAX_DESCRIPTION} 个字符",
                           f"The description is at most {MAX_DESCRIPTION} characters")
        out["description"] = text
    if "on_sale" in values:
        if not isinstance(values["on_sale"], bool):
            raise _invalid("on_sale", "上架状态无效", "on_sale must be true or false")
        out["on_sale"] = values["on_sale"]
    if "sort" in values:
        out["sort"] = _int_in(values["sort"], "sort", 0, MAX_SORT, f"排序需为 0–{MAX_SORT} 的整数",
                              f"Sort must be a whole number from 0 to {MAX_SORT}")
    return out


async def level_choices(session: AsyncSession, scope: TenantScope) -> list[MemberLevel]:
    """The levels a plan may sell, lowest first (the tenant's default levels are made first
    if it has none yet)."""
    from siyu.members import levels

    return list(await levels.ensure_levels(session, scope))


async def _level(session: AsyncSession, scope: TenantScope, level_id: int) -> MemberLevel:
    found = (await session.execute(select(MemberLevel).where(MemberLevel.tenant_id == scope.id,
                                                             MemberLevel.id == level_id))).scalar_one_or_none()
    if found is None:
        raise _invalid("level_id", "会员等级不存在", "No such level", code="card_level_not_found")
    return found


async def level_names(session: AsyncSession, scope: TenantScope) -> dict[int, str]:
    rows = (await session.execute(select(MemberLevel.id, MemberLevel.name).where(MemberLevel.tenant_id == scope.id))).all()
    return {int(i): str(n) for i, n in rows}


async def list_plans(session: AsyncSession, scope: TenantScope, *, on_sale_only: bool = False) -> list[MemberCardPlan]:
    stmt = select(MemberCardPlan).where(MemberCardPlan.tenant_id == scope.id)
    if on_sale_only:
        stmt = stmt.where(MemberCardPlan.on_sale.is_(True))
    return list((await session.execute(stmt.order_by(MemberCardPlan.sort, MemberCardPlan.id))).scalars())


async def get_plan(session: AsyncSession, scope: TenantScope, plan_id: int, *, for_update: bool = False) -> MemberCardPlan:
    stmt = select(MemberCardPlan).where(MemberCardPlan.tenant_id == scope.id, MemberCardPlan.id == plan_id)
    if for_update:
        stmt = stmt.with_for_update()
    plan = (await session.execute(stmt)).scalar_one_or_none()
    if plan is None:
        raise plan_not_found()
    return plan


def _plan_snapshot(p: MemberCardPlan) -> dict[str, Any]:
    return {k: getattr(p, k) for k in PLAN_FIELDS}


async def create_plan(session: AsyncSession, scope: TenantScope, data: PlanData) -> MemberCardPlan:
    values = _clean_plan({k: getattr(data, k) for k in PLAN_FIELDS})
    await _level(session, scope, values["level_id"])
    now = clock.now()
    plan = MemberCardPlan(tenant_id=scope.id, created_at=now, updated_at=now, **values)
    session.add(plan)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="members.card_plan.create", object_type="member_card_plan",
                 object_id=plan.id, after=_plan_snapshot(plan))
    return plan


async def update_plan(session: AsyncSession, scope: TenantScope, plan_id: int, changes: Mapping[str, Any]) -> MemberCardPlan:
    """Change some fields of a plan. Purchases already made keep the price, days and level
    they were made with."""
    unknown = set(changes) - set(PLAN_FIELDS)
    if unknown:
        raise ValueError(f"unknown plan fields {sorted(unknown)}")
    values = _clean_plan({k: v for k, v in changes.items() if v is not None or k == "description"})
    plan = await get_plan(session, scope, plan_id, for_update=True)
    if "level_id" in values:
        await _level(session, scope, values["level_id"])
    before = _plan_snapshot(plan)
    for k, v in values.items():
        setattr(plan, k, v)
    after = _plan_snapshot(plan)
    if after != before:
        plan.updated_at = clock.now()
        await session.flush()
        audit.record(session, tenant_id=scope.id, action="members.card_plan.update", object_type="member_card_plan",
                     object_id=plan.id, before=before, after=after)
    return plan


async def delete_plan(session: AsyncSession, scope: TenantScope, plan_id: int) -> None:
    plan = await get_plan(session, scope, plan_id, for_update=True)
    used = (await session.execute(select(func.count()).select_from(MemberCardPurchase).where(
        MemberCardPurchase.tenant_id == scope.id, MemberCardPurchase.plan_id == plan.id))).scalar_one()
    if used:
        raise Conflict("card_plan_in_use", "已有顾客购买过这张会员卡，不能删除，可以下架",
                       "Members have bought this plan; take it off sale instead of deleting it")
    before = _plan_snapshot(plan)
    await session.delete(plan)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="members.card_plan.delete", object_type="member_card_plan",
                 object_id=plan_id, before=before)


async def purchase_counts(session: AsyncSession, scope: TenantScope) -> dict[int, int]:
    """plan id → paid purchases (renewals included)."""
    rows = (await session.execute(
        select(MemberCardPurchase.plan_id, func.count()).where(MemberCardPurchase.tenant_id == scope.id,
                                                               MemberCardPurchase.status == "paid")
        .group_by(MemberCardPurchase.plan_id))).all()
    return {int(p): int(n) for p, n in rows}


# -- the card a member holds -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardView:
    """The paid card of a member as the member centre shows it."""

    level_id: int | None
    level_name: str | None
    plan_id: int | None
    expires_at: datetime | None
    #: True while the card lifts the member's level (it has not expired).
    active: bool
    #: Whole days left, counting a part day as a day (0 when not active).
    days_left: int


def _valid(member: Member | None, now: datetime) -> bool:
    return (member is not None and member.card_level_id is not None and member.card_expires_at is not None
            and member.card_expires_at > now)


async def card_of(session: AsyncSession, scope: TenantScope, customer_id: int) -> CardView:
    member = await service.get_member(session, scope, customer_id)
    now = clock.now()
    if member is None or member.card_level_id is None:
        return CardView(None, None, None, None, False, 0)
    names = await level_names(session, scope)
    active = _valid(member, now)
    left = 0
    if active and member.card_expires_at is not None:
        left = -(-int((member.card_expires_at - now).total_seconds()) // 86400)
    return CardView(member.card_level_id, names.get(member.card_level_id), member.card_plan_id, member.card_expires_at,
                    active, left)


# -- purchases ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurchasePlaced:
    purchase: MemberCardPurchase
    #: False when an earlier request with the same Idempotency-Key made it.
    created: bool


def check_idempotency_key(key: str | None) -> str:
    if key is None or not _KEY.match(key):
        raise ValidationFailed("invalid_idempotency_key", "请求头 Idempotency-Key 需为 1–64 位字母、数字、_ 或 -",
                               "The Idempotency-Key header must be 1–64 of A-Z a-z 0-9 _ -",
                               fields=[{"field": "Idempotency-Key", "message": "1–64 of [A-Za-z0-9_-]"}])
    return key


def _new_purchase_no(scope: TenantScope) -> str:
    day = clock.now().astimezone(ZoneInfo(scope.timezone)).strftime("%y%m%d")
    return f"MC{day}{secrets.randbelow(10**8):08d}"


def _insert_ignore(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(MemberCardPurchase).on_conflict_do_nothing().returning(MemberCardPurchase.id)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(MemberCardPurchase).on_conflict_do_nothing().returning(MemberCardPurchase.id)


async def _by_key(session: AsyncSession, scope: TenantScope, customer_id: int, key: str) -> MemberCardPurchase | None:
    return (await session.execute(select(MemberCardPurchase).where(
        MemberCardPurchase.tenant_id == scope.id, MemberCardPurchase.customer_id == customer_id,
        MemberCardPurchase.idempotency_key == key))).scalar_one_or_none()


def _same_request(existing: MemberCardPurchase, plan_id: int) -> PurchasePlaced:
    if existing.plan_id != plan_id:
        raise Conflict("idempotency_key_reused", "该 Idempotency-Key 已用于另一笔不同的购买请求",
                       "This Idempotency-Key was already used with a different request",
                       extra={"purchase_id": existing.id})
    return PurchasePlaced(existing, False)


def _level_conflict(scope: TenantScope, member: Member, names: Mapping[int, str]) -> Conflict:
    until = member.card_expires_at.astimezone(ZoneInfo(scope.timezone)).strftime("%Y-%m-%d") \
        if member.card_expires_at else ""
    name = names.get(member.card_level_id or 0, "")
    return Conflict("card_level_conflict", f"您的{name}会员卡有效期至 {until}，到期后才能购买其他等级的会员卡",
                    f"Your {name} card is valid until {until}; cards of another level can be bought once it ends",
                    extra={"card_level_id": member.card_level_id, "card_expires_at": member.card_expires_at.isoformat()
                           if member.card_expires_at else None})


async def create_purchase(session: AsyncSession, scope: TenantScope, *, customer_id: int, plan_id: int,
                          idempotency_key: str) -> PurchasePlaced:
    """Start buying (or renewing) a card; see the module docstring."""
    key = check_idempotency_key(idempotency_key)
    existing = await _by_key(session, scope, customer_id, key)
    if existing is not None:
        return _same_request(existing, plan_id)
    plan = await get_plan(session, scope, plan_id)
    if not plan.on_sale:
        raise Conflict("card_plan_off_sale", "这张会员卡已停止售卖", "This membership card is no longer on sale")
    member = await service.ensure_member(session, scope, customer_id)
    now = clock.now()
    if _valid(member, now) and member.card_level_id != plan.level_id:
        raise _level_conflict(scope, member, await level_names(session, scope))
    from siyu.orders import service as orders_service

    minutes = (await orders_service.order_settings(session, scope)).pay_timeout_minutes
    values = {"tenant_id": scope.id, "customer_id": customer_id, "plan_id": plan.id, "plan_name": plan.name,
              "level_id": plan.level_id, "days": plan.days, "price_fen": plan.price_fen, "status": "pending_payment",
              "idempotency_key": key, "pay_deadline": now + timedelta(minutes=minutes), "created_at": now,
              "updated_at": now}
    stmt = _insert_ignore(session)
    for _attempt in range(5):
        values["purchase_no"] = _new_purchase_no(scope)
        new_id = (await session.execute(stmt, [values])).scalar_one_or_none()
        if new_id is not None:
            return PurchasePlaced(await get_purchase(session, scope, int(new_id)), True)
        winner = await _by_key(session, scope, customer_id, key)
        if winner is not None:
            return _same_request(winner, plan_id)
    raise Conflict("purchase_no_exhausted", "购买单号生成失败，请重试", "Could not draw a free purchase number; retry")


async def get_purchase(session: AsyncSession, scope: TenantScope, purchase_id: int, *,
                       for_update: bool = False) -> MemberCardPurchase:
    stmt = select(MemberCardPurchase).where(MemberCardPurchase.tenant_id == scope.id,
                                            MemberCardPurchase.id == purchase_id)
    if for_update:
        stmt = stmt.with_for_update()
    found = (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
    if found is None:
        raise purchase_not_found()
    return found


async def customer_purchase(session: AsyncSession, scope: TenantScope, customer_id: int, purchase_id: int, *,
                            for_update: bool = False) -> MemberCardPurchase:
    """A member's own purchase; anyone else's is the same 404 as a missing one."""
    p = await get_purchase(session, scope, purchase_id, for_update=for_update)
    if p.customer_id != customer_id:
        raise purchase_not_found()
    return p


async def list_purchases(session: AsyncSession, scope: TenantScope, *, customer_id: int | None = None,
                         status: str | None = None, plan_id: int | None = None, purchase_no: str | None = None,
                         offset: int = 0, limit: int = 20) -> tuple[list[MemberCardPurchase], int]:
    """Newest first."""
    stmt = select(MemberCardPurchase).where(MemberCardPurchase.tenant_id == scope.id)
    if customer_id is not None:
        stmt = stmt.where(MemberCardPurchase.customer_id == customer_id)
    if status:
        stmt = stmt.where(MemberCardPurchase.status == status)
    if plan_id is not None:
        stmt = stmt.where(MemberCardPurchase.plan_id == plan_id)
    if purchase_no:
        stmt = stmt.where(MemberCardPurchase.purchase_no == purchase_no.strip())
    total = int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())
    if limit <= 0:
        return [], total
    rows = (await session.execute(stmt.order_by(MemberCardPurchase.id.desc()).offset(offset).limit(limit))).scalars()
    return list(rows), total


def shopper_actions(p: MemberCardPurchase, now: datetime | None = None) -> frozenset[str]:
    now = now or clock.now()
    if p.status == "pending_payment" and p.pay_deadline is not None and p.pay_deadline > now + MIN_PAY_WINDOW:
        return frozenset({"pay"})
    return frozenset()


async def start_payment(session: AsyncSession, scope: TenantScope, *, customer_id: int, purchase_id: int,
                        channel: str = "sandbox", return_url: str | None = None, payer_openid: str | None = None,
                        payer_client_ip: str | None = None) -> PaymentStart:
    """Open (or reuse) the payment of a member's unpaid purchase."""
    # The row lock makes a close in progress finish first, so no payment opens for a
    # purchase that is being closed.
    p = await customer_purchase(session, scope, customer_id, purchase_id, for_update=True)
    if "pay" not in shopper_actions(p):
        raise Conflict("card_purchase_not_payable", "这笔会员卡订单已不能支付", "This card purchase can no longer be paid",
                       extra={"status": p.status})
    tenant = await tenants_service.get_tenant(session, scope.id)
    description = f"{tenant.name} {p.plan_name}"
    if len(description) > 127:
        description = p.plan_name
    return await payments_service.create_payment(
        session, scope, source_type=SOURCE_TYPE, source_id=str(p.id), amount_fen=p.price_fen, description=description,
        channel=channel, payer_openid=payer_openid, return_url=return_url, expires_at=p.pay_deadline,
        payer_client_ip=payer_client_ip)


async def _purchase_owner(session: AsyncSession, scope: TenantScope, source_id: str) -> int | None:
    try:
        purchase_id = int(source_id)
    except ValueError:
        return None
    try:
        return (await get_purchase(session, scope, purchase_id)).customer_id
    except NotFound:
        return None


payments_service.register_source_owner(SOURCE_TYPE, _purchase_owner)


async def _move(session: AsyncSession, p: MemberCardPurchase, to_status: str, **values: Any) -> bool:
    """``from → to`` by a conditional update on the status we read; False when someone moved it first."""
    res = await session.execute(
        update(MemberCardPurchase)
        .where(MemberCardPurchase.id == p.id, MemberCardPurchase.tenant_id == p.tenant_id,
               MemberCardPurchase.status == p.status)
        .values(status=to_status, updated_at=clock.now(), **values)
        .execution_options(synchronize_session=False))
    await session.refresh(p)
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


async def _locked_member(session: AsyncSession, scope: TenantScope, customer_id: int) -> Member:
    await service.ensure_member(session, scope, customer_id)
    member = await service.get_member(session, scope, customer_id, for_update=True)
    assert member is not None
    await session.refresh(member)
    return member


async def apply_payment(session: AsyncSession, scope: TenantScope, *, purchase_id: int, payment_id: int,
                        amount_fen: int, out_trade_no: str) -> str:
    """What a succeeded payment means for its purchase: ``paid``, ``refunded`` (money sent
    back), ``replay`` or ``unknown_purchase``. Idempotent."""
    try:
        p = await get_purchase(session, scope, purchase_id, for_update=True)
    except NotFound:
        log.error("a payment names a card purchase that does not exist",
                  extra={"payment_id": payment_id, "purchase_id": purchase_id})
        return "unknown_purchase"
    if p.payment_id == payment_id:
        return "replay"
    why_zh = why_en = ""
    if p.status == "pending_payment" and amount_fen == p.price_fen:
        member = await _locked_member(session, scope, p.customer_id)
        now = clock.now()
        if _valid(member, now) and member.card_level_id != p.level_id:
            why_zh, why_en = "已持有其他等级的会员卡，支付款已原路退回", "a card of another level is held"
        else:
            start = member.card_expires_at if _valid(member, now) and member.card_expires_at else now
            end = start + timedelta(days=p.days)
            if await _move(session, p, "paid", payment_id=payment_id, paid_at=now, starts_at=start, ends_at=end):
                await service.set_card(session, scope, p.customer_id, level_id=p.level_id, plan_id=p.plan_id,
                                       expires_at=end)
                await _gift_points(session, scope, p)
                outbox.publish(session, "member_card.paid", {
                    "purchase_id": p.id, "tenant_id": scope.id, "customer_id": p.customer_id, "plan_id": p.plan_id,
                    "level_id": p.level_id, "price_fen": p.price_fen, "starts_at": start.isoformat(),
                    "ends_at": end.isoformat()}, tenant_id=scope.id)
                return "paid"
            if p.payment_id == payment_id:
                return "replay"
    if not why_zh:
        if p.status == "pending_payment":
            why_zh, why_en = "支付金额与会员卡售价不符，已原路退回", "amount differs from the price"
        elif p.status in ("paid", "refunded"):
            why_zh, why_en = "会员卡已由另一笔支付付款，重复支付已原路退回", "duplicate payment"
        else:
            why_zh, why_en = "会员卡订单已关闭，迟到的支付已原路退回", "late payment for a closed purchase"
    if p.status == "pending_payment" and amount_fen == p.price_fen:
        # The member holds a card of another level now: this purchase can never apply, so it
        # closes with its money sent back (a wrong amount leaves it payable).
        await _move(session, p, "closed")
    await payments_service.refund(session, scope, payment_id=payment_id, amount_fen=amount_fen,
                                  out_refund_no=f"LC{out_trade_no}", reason=why_zh[:80], source_type=SOURCE_TYPE,
                                  source_id=str(p.id))
    log.warning("card payment refunded automatically", extra={"purchase_id": p.id, "payment_id": payment_id, "why": why_en})
    return "refunded"


async def _gift_points(session: AsyncSession, scope: TenantScope, p: MemberCardPurchase) -> None:
    plan = (await session.execute(select(MemberCardPlan.gift_points).where(
        MemberCardPlan.tenant_id == scope.id, MemberCardPlan.id == p.plan_id))).scalar_one_or_none()
    gift = int(plan or 0)
    if gift <= 0:
        return
    from siyu.members import points

    await points.earn(session, scope, p.customer_id, gift, kind="card_gift", source_key=f"card:{p.id}:gift",
                      note=p.plan_name[:100])


async def gift_points_of(session: AsyncSession, scope: TenantScope, purchase: MemberCardPurchase) -> int:
    """The points the purchase's payment gave (0 when none, or not paid)."""
    from siyu.members.models import PointsEntry

    got = (await session.execute(select(PointsEntry.amount).where(
        PointsEntry.tenant_id == scope.id, PointsEntry.source_key == f"card:{purchase.id}:gift"))).scalar_one_or_none()
    return int(got or 0)


async def _scope_for(session: AsyncSession, tenant_id: int) -> TenantScope:
    return tenants_service.scope_of(await tenants_service.get_tenant(session, tenant_id))


@outbox.on("payment.succeeded")
async def _on_payment_succeeded(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    if p.get("source_type") != SOURCE_TYPE:
        return
    try:
        purchase_id = int(p["source_id"])
    except (TypeError, ValueError):
        log.error("a card payment names no purchase id", extra={"payment_id": p.get("payment_id")})
        return
    scope = await _scope_for(session, int(p["tenant_id"]))
    await apply_payment(session, scope, purchase_id=purchase_id, payment_id=int(p["payment_id"]),
                        amount_fen=int(p["amount_fen"]), out_trade_no=str(p["out_trade_no"]))


@outbox.on("refund.failed")
async def _on_refund_failed(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    if p.get("payment_source_type") == SOURCE_TYPE:
        log.warning("a card refund failed; staff may send it again",
                    extra={"refund_id": p.get("refund_id"), "purchase_id": p.get("payment_source_id")})


# -- timeouts ---------------------------------------------------------------------------------------------


async def close_overdue(session: AsyncSession, *, now: datetime | None = None, limit: int = 200) -> int:
    """Close purchases still unpaid after their deadline, in every tenant; returns how many.

    Each in its own savepoint: one whose payment cannot be closed (gateway down) is retried
    next time. A payment the gateway reports taken while we close it is left to its
    ``payment.succeeded`` event, which pays the purchase."""
    now = now or clock.now()
    due = (await session.execute(
        select(MemberCardPurchase.id, MemberCardPurchase.tenant_id)
        .where(MemberCardPurchase.status == "pending_payment", MemberCardPurchase.pay_deadline < now)
        .order_by(MemberCardPurchase.pay_deadline).limit(limit))).all()
    scopes: dict[int, TenantScope] = {}
    done = 0
    for purchase_id, tenant_id in due:
        try:
            async with session.begin_nested():
                if tenant_id not in scopes:
                    scopes[tenant_id] = await _scope_for(session, tenant_id)
                done += await _close_one(session, scopes[tenant_id], int(purchase_id), now)
        except Exception:
            log.exception("unpaid card purchase not closed", extra={"purchase_id": purchase_id})
    return done


async def _close_one(session: AsyncSession, scope: TenantScope, purchase_id: int, now: datetime) -> int:
    p = await get_purchase(session, scope, purchase_id, for_update=True)
    if p.status != "pending_payment" or p.pay_deadline is None or p.pay_deadline >= now:
        return 0
    for pay in await payments_service.payments_for_source(session, scope, SOURCE_TYPE, str(p.id)):
        if pay.status == "succeeded":
            return 0
        if pay.status == "pending":
            closed = await payments_service.close_payment(session, scope, pay.id, cause="purchase_timeout")
            if closed.status == "succeeded":
                return 0
    return int(await _move(session, p, "closed"))


# -- staff refunds ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundQuote:
    full_fen: int
    prorata_fen: int
    #: The part of the purchase's validity not used yet.
    unused: timedelta
    total: timedelta


def refund_quote(p: MemberCardPurchase, now: datetime | None = None) -> RefundQuote:
    """What a refund of a paid purchase may return: the price, or its unused share."""
    now = now or clock.now()
    if p.starts_at is None or p.ends_at is None:
        return RefundQuote(p.price_fen, p.price_fen, timedelta(0), timedelta(0))
    total = p.ends_at - p.starts_at
    unused = max(timedelta(0), p.ends_at - max(now, p.starts_at))
    total_s = int(total.total_seconds())
    prorata = p.price_fen * int(unused.total_seconds()) // total_s if total_s > 0 else 0
    return RefundQuote(p.price_fen, prorata, unused, total)


def _refund_no(p: MemberCardPurchase, n: int) -> str:
    return f"MC{p.purchase_no}" if n <= 1 else f"MC{p.purchase_no}R{n}"


async def purchase_refunds(session: AsyncSession, scope: TenantScope, p: MemberCardPurchase) -> list[Refund]:
    """Refunds of the purchase's payments, oldest first: staff refunds and automatic ones."""
    out: list[Refund] = []
    for pay in await payments_service.payments_for_source(session, scope, SOURCE_TYPE, str(p.id)):
        if pay.status != "succeeded":
            continue
        out.extend((await payments_service.payment_detail(session, scope, pay.id)).refunds)
    return sorted(out, key=lambda r: r.id)


def _staff_refunds(p: MemberCardPurchase, refunds: Sequence[Refund]) -> list[Refund]:
    return [r for r in refunds if r.payment_id == p.payment_id and r.out_refund_no.startswith(f"MC{p.purchase_no}")]


def _reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if len(text) > MAX_REASON or _CONTROL.search(text):
        raise ValidationFailed("card_refund_invalid", f"退款原因最多 {MAX_REASON} 个字符",
                               f"The reason is at most {MAX_REASON} characters",
                               fields=[{"field": "reason", "message": f"at most {MAX_REASON} characters"}])
    return text or "商家退款"


async def refund_purchase(session: AsyncSession, scope: TenantScope, purchase_id: int, *, mode: str = "full",
                          amount_fen: int | None = None, reason: str | None = None) -> MemberCardPurchase:
    """Staff refund of a paid purchase; see the module docstring."""
    if mode not in REFUND_MODES:
        raise ValidationFailed("card_refund_invalid", "退款方式无效", "mode must be full, prorata or amount",
                               fields=[{"field": "mode", "message": "full | prorata | amount"}])
    text = _reason(reason)
    p = await get_purchase(session, scope, purchase_id, for_update=True)
    if p.status != "paid" or p.payment_id is None:
        raise Conflict("card_purchase_not_refundable", "只有已支付的会员卡可以退款", "Only a paid card purchase can be refunded",
                       extra={"status": p.status})
    now = clock.now()
    quote = refund_quote(p, now)
    if mode == "full":
        fen = quote.full_fen
    elif mode == "prorata":
        fen = quote.prorata_fen
    else:
        if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or not 0 <= amount_fen <= p.price_fen:
            raise ValidationFailed("card_refund_invalid", f"退款金额需在 0–{p.price_fen / 100:.2f} 元之间",
                                   f"The amount must be from 0 to {p.price_fen} fen",
                                   fields=[{"field": "amount_fen", "message": f"0 to {p.price_fen}"}])
        fen = amount_fen
    if not await _move(session, p, "refunded"):
        raise Conflict("card_purchase_not_refundable", "只有已支付的会员卡可以退款", "Only a paid card purchase can be refunded",
                       extra={"status": p.status})
    member = await _locked_member(session, scope, p.customer_id)
    before_card = {"card_level_id": member.card_level_id, "card_expires_at": member.card_expires_at}
    if member.card_level_id == p.level_id and member.card_expires_at is not None and quote.unused > timedelta(0):
        expires = max(now, member.card_expires_at - quote.unused)
        await service.set_card(session, scope, p.customer_id, level_id=member.card_level_id,
                               plan_id=member.card_plan_id, expires_at=expires)
    gift = await gift_points_of(session, scope, p)
    back = gift * fen // p.price_fen if p.price_fen else 0
    if back > 0:
        from siyu.members import points

        await points.take_back(session, scope, p.customer_id, back, source_key=f"card:{p.id}:gift:back",
                               kind="refund_takeback", note=f"会员卡退款 {p.purchase_no}")
    if fen > 0:
        await payments_service.refund(session, scope, payment_id=p.payment_id, amount_fen=fen,
                                      out_refund_no=_refund_no(p, 1), reason=text, source_type=SOURCE_TYPE,
                                      source_id=str(p.id))
    await session.refresh(member)
    audit.record(session, tenant_id=scope.id, action="members.card.refund", object_type="member_card_purchase",
                 object_id=p.id, before={"status": "paid", **before_card},
                 after={"status": p.status, "mode": mode, "refund_fen": fen, "points_taken_back": back,
                        "card_expires_at": member.card_expires_at, "reason": text})
    outbox.publish(session, "member_card.refunded", {
        "purchase_id": p.id, "tenant_id": scope.id, "customer_id": p.customer_id, "refund_fen": fen,
        "card_expires_at": member.card_expires_at.isoformat() if member.card_expires_at else None},
        tenant_id=scope.id)
    return p


async def retry_refund(session: AsyncSession, scope: TenantScope, purchase_id: int) -> Refund:
    """Send a failed staff refund again (a new refund number, the same amount)."""
    p = await get_purchase(session, scope, purchase_id, for_update=True)
    mine = _staff_refunds(p, await purchase_refunds(session, scope, p)) if p.status == "refunded" else []
    if not mine or mine[-1].status != "failed":
        raise Conflict("card_refund_not_retryable", "没有需要重新发起的退款", "There is no failed refund to send again")
    assert p.payment_id is not None
    last = mine[-1]
    r = await payments_service.refund(session, scope, payment_id=p.payment_id, amount_fen=last.amount_fen,
                                      out_refund_no=_refund_no(p, len(mine) + 1), reason=last.reason,
                                      source_type=SOURCE_TYPE, source_id=str(p.id))
    audit.record(session, tenant_id=scope.id, action="members.card.retry_refund", object_type="member_card_purchase",
                 object_id=p.id, after={"refund_fen": last.amount_fen, "out_refund_no": r.out_refund_no})
    return r


def can_retry_refund(p: MemberCardPurchase, refunds: Sequence[Refund]) -> bool:
    mine = _staff_refunds(p, refunds) if p.status == "refunded" else []
    return bool(mine) and mine[-1].status == "failed"


# -- notices ------------------------------------------------------------------------------------------------


def _notice_insert(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(MemberNotice).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(MemberNotice).on_conflict_do_nothing()


async def add_notice(session: AsyncSession, tenant_id: int, customer_id: int, *, kind: str, key: str, title: str,
                     body: str = "") -> bool:
    """Write a member notice once per ``key`` (True when written now)."""
    res = await session.execute(_notice_insert(session).values(
        tenant_id=tenant_id, customer_id=customer_id, kind=kind, notice_key=key[:120], title=title[:80],
        body=body[:300], created_at=clock.now()))
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


async def notify_expiring(session: AsyncSession, *, now: datetime | None = None, days: int = EXPIRY_NOTICE_DAYS,
                          limit: int = 500, after_id: int = 0) -> tuple[int, int, int]:
    """Tell members whose card ends within ``days`` (once per expiry). Returns (members
    looked at, notices written, last member id looked at: pass it as ``after_id`` to go on)."""
    now = now or clock.now()
    rows = (await session.execute(
        select(Member.id, Member.tenant_id, Member.customer_id, Member.card_expires_at)
        .where(Member.card_expires_at > now, Member.card_expires_at <= now + timedelta(days=days),
               Member.card_level_id.is_not(None), Member.id > after_id)
        .order_by(Member.id).limit(limit))).all()
    zones: dict[int, str] = {}
    written = 0
    for _mid, tenant_id, customer_id, expires in rows:
        if expires is None:
            continue
        if tenant_id not in zones:
            zones[tenant_id] = (await tenants_service.get_tenant(session, tenant_id)).timezone
        day = expires.astimezone(ZoneInfo(zones[tenant_id])).strftime("%Y-%m-%d")
        written += await add_notice(
            session, tenant_id, customer_id, kind="card_expiring",
            key=f"card_expiring:{customer_id}:{expires.strftime('%Y%m%d%H%M%S')}",
            title="会员卡即将到期", body=f"您的付费会员卡将于 {day} 到期，续费后权益不中断。")
    return len(rows), written, int(rows[-1][0]) if rows else after_id


# -- merged customers -------------------------------------------------------------------------------------


@outbox.on("customer.merged")
async def _on_customer_merged(session: AsyncSession, event: outbox.Event) -> None:
    """The survivor keeps the card time the merged account bought: the loser's valid card
    moves over when the survivor holds none or one of the same level (its remaining time is
    added); a card of another level stays with the merged account (logged)."""
    p = event.payload
    try:
        tenant_id, survivor_id, loser_id = int(p["tenant_id"]), int(p["survivor_id"]), int(p["merged_id"])
    except (KeyError, TypeError, ValueError):
        return
    scope = await _scope_for(session, tenant_id)
    loser = await service.get_member(session, scope, loser_id)
    now = clock.now()
    if not _valid(loser, now):
        return
    first, second = sorted((survivor_id, loser_id))
    a = await _locked_member(session, scope, first)
    b = await _locked_member(session, scope, second)
    survivor, loser = (a, b) if first == survivor_id else (b, a)
    if not _valid(loser, now) or loser.card_expires_at is None:
        return
    remaining = loser.card_expires_at - now
    if _valid(survivor, now) and survivor.card_level_id != loser.card_level_id:
        log.warning("merged account's card kept apart: another level", extra={"survivor_id": survivor_id,
                                                                             "merged_id": loser_id})
        return
    if _valid(survivor, now) and survivor.card_expires_at is not None:
        expires = survivor.card_expires_at + remaining
        plan_id = survivor.card_plan_id
    else:
        expires, plan_id = loser.card_expires_at, loser.card_plan_id
    await service.set_card(session, scope, survivor_id, level_id=loser.card_level_id, plan_id=plan_id, expires_at=expires)
    await service.set_card(session, scope, loser_id, level_id=None, plan_id=None, expires_at=None)
