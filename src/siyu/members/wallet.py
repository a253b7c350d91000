"""Stored value (储值): recharges, paying with the balance at checkout, principal refunds and
staff adjustments. Every movement is a journal of the double-entry ledger
(:mod:`siyu.kit.ledger`); the wallet has no balance column of its own.

Chart of accounts (codes are per tenant)
----------------------------------------

=============================  =========  =====================================================
``wallet.principal:<customer>`` liability  本金: what the member paid in, refundable on request
``wallet.bonus:<customer>``     liability  赠送金: what a package added, never refunded
``wallet.hold:<customer>``      liability  principal held while a refund is with the gateway
``cash.gateway``                asset      money the payment gateway took for the shop
``expense.recharge_bonus``      expense    the bonus a recharge package gives away
``sales.stored_value``          income     orders paid with stored value
``expense.wallet_adjustment``   expense    staff adjustments (goodwill credits and corrections)
=============================  =========  =====================================================

The three wallet accounts may not go negative (``allow_negative=False``): the ledger's
conditional ``UPDATE`` refuses a posting that would take one below zero, so a balance never
goes negative however many checkouts spend it at once (409 ``insufficient_balance``).
Spending is income at once (``sales.stored_value``), not a clearing account: the goods are
sold when the order is placed, and a cancellation or refund posts the mirror image.

Journals (source keys are unique per tenant, so an event handled twice posts once)
----------------------------------------------------------------------------------

============================  =============================================================
``recharge:<id>``              Dr cash / Cr principal (paid); Dr bonus expense / Cr bonus
``order:<id>:balance``         Dr principal, Dr bonus / Cr sales (placement)
``order:<id>:balance:cancel``  the mirror image of the spend (``order.cancelled``)
``after_sale:<case>:balance``  Dr sales / Cr principal, Cr bonus: a refunded case's share
``balance_refund:<id>:hold``   Dr principal / Cr hold (staff approved a principal refund)
``balance_refund_part:<id>``   Dr hold / Cr cash (the gateway sent the money back)
``balance_refund_part:<id>:restore``  Dr hold / Cr principal (the gateway refused)
``adjust:<customer>:<token>``  Dr adjustment expense / Cr principal or bonus (or the reverse)
``merge:<loser>:<survivor>:<n>`` the loser's principal and bonus move to the survivor
============================  =============================================================

Spending ratio
--------------

A spend of ``S`` with ``P`` principal and ``B`` bonus available, and the setting
``bonus_share_bp = r``: the bonus part is ``min(B, max(round(S·r / 10000), S − P))`` and the
principal part the rest. So the bonus pays its share while it lasts, and when either runs
out the other pays the remainder (``r = 0``: principal first; ``r = 10000``: bonus first).

Refunds of orders unwind a spend per line: a line's balance share ``F`` (from its
``discounts``) is split into principal and bonus by largest remainder in the spend's own
ratio, and a case for ``k`` more units of a line of ``n`` with ``r`` units refunded in
earlier cases returns ``F_p·(r+k)//n − F_p·r//n`` principal (the same for bonus): the
prefix formula of :func:`siyu.orders.aftersales.line_refund_fen`, so several partial refunds
return the spend exactly.

Contract (others call these)
----------------------------

``balances(session, scope, customer_id) -> WalletBalance``;
``history(session, scope, customer_id, *, limit=20, before_id=None) -> list[WalletEntry]``;
``adjust(session, scope, customer_id, amount_fen, *, bucket, reason, token=None)`` (staff);
``spend`` / ``give_back`` (used by checkout and refunds here; a points-mall or other module
may pay with stored value through them too).
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import audit, clock, ledger, outbox
from siyu.kit.context import Actor, current_actor
from siyu.kit.errors import Conflict, NotFound, ValidationFailed
from siyu.kit.ledger import AccountSpec, LedgerAccount, LedgerEntry, LedgerJournal, credit, debit
from siyu.kit.money import allocate, apply_rate, yuan
from siyu.kit.tenancy import TenantRepository, TenantScope
from siyu.members import service as members_service
from siyu.members.models import (
    BalanceRefund,
    BalanceRefundPart,
    MemberNotice,
    Recharge,
    RechargePackage,
)
from siyu.orders import checkout, pricing
from siyu.orders.models import Order, OrderLine
from siyu.payments import service as payments_service
from siyu.payments.service import PaymentStart

log = logging.getLogger("siyu.members.wallet")

SOURCE_TYPE = "recharge"
REFUND_SOURCE_TYPE = "balance_refund"
SECTION = "wallet"
#: The pricing offer of the ``balance`` step (its code is what order lines' ``discounts`` name).
OFFER_CODE = "balance"
#: An unpaid recharge is closed this long after it was made.
PAY_MINUTES = 30
#: A payment must stay payable at least this long, or the payer cannot finish it.
MIN_PAY_WINDOW = timedelta(seconds=60)
MAX_PACKAGES = 50
MAX_AMOUNT_FEN = 10_000_000  # ¥100,000: one recharge, one package, one adjustment
MAX_REASON = 200

CASH = AccountSpec("cash.gateway", "asset", "支付渠道收款")
BONUS_EXPENSE = AccountSpec("expense.recharge_bonus", "expense", "储值赠送")
SALES = AccountSpec("sales.stored_value", "income", "储值消费")
ADJUST_EXPENSE = AccountSpec("expense.wallet_adjustment", "expense", "储值人工调整")

BUCKETS = ("principal", "bonus")
RECHARGE_STATUS_ZH = {"pending_payment": "待支付", "paid": "已到账", "closed": "已关闭"}
RECHARGE_STATUS_EN = {"pending_payment": "Awaiting payment", "paid": "Credited", "closed": "Closed"}
REFUND_STATUS_ZH = {"pending": "待审核", "refunding": "退款中", "refunded": "已退款", "rejected": "已拒绝", "failed": "退款失败"}
REFUND_STATUS_EN = {"pending": "Awaiting review", "refunding": "Refunding", "refunded": "Refunded", "rejected": "Rejected",
                    "failed": "Refund failed"}
#: What a wallet movement is called, by journal kind.
KIND_ZH = {"recharge": "充值", "order_spend": "余额支付", "order_spend.reversal": "订单取消退回",
           "after_sale_return": "售后退回", "refund_hold": "本金退款", "refund_restore": "退款失败退回",
           "adjust": "人工调整", "merge": "账户合并"}
KIND_EN = {"recharge": "Recharge", "order_spend": "Paid an order", "order_spend.reversal": "Order cancelled: returned",
           "after_sale_return": "Refund: returned", "refund_hold": "Principal refund", "refund_restore": "Refund failed: returned",
           "adjust": "Manual adjustment", "merge": "Accounts merged"}

audit.describe(
    actions={"members.wallet.package.create": "新建储值套餐", "members.wallet.package.update": "修改储值套餐",
             "members.wallet.package.delete": "删除储值套餐", "members.wallet.adjust": "调整储值余额",
             "members.wallet.refund.approve": "同意余额退款", "members.wallet.refund.reject": "拒绝余额退款",
             "members.settings.wallet": "修改储值设置"},
    objects={"recharge_package": "储值套餐", "wallet": "储值账户", "balance_refund": "余额退款"},
)


# -- accounts ------------------------------------------------------------------------------------------


def principal_account(customer_id: int) -> AccountSpec:
    return AccountSpec(f"wallet.principal:{customer_id}", "liability", "储值本金", "customer", customer_id,
                       allow_negative=False)


def bonus_account(customer_id: int) -> AccountSpec:
    return AccountSpec(f"wallet.bonus:{customer_id}", "liability", "储值赠送金", "customer", customer_id,
                       allow_negative=False)


def hold_account(customer_id: int) -> AccountSpec:
    return AccountSpec(f"wallet.hold:{customer_id}", "liability", "储值退款冻结", "customer", customer_id,
                       allow_negative=False)


# -- values --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WalletBalance:
    """What a member holds: principal (refundable), bonus and their sum, plus principal
    held by a refund in progress (not spendable, not in ``total_fen``)."""

    principal_fen: int
    bonus_fen: int
    total_fen: int
    held_fen: int = 0


@dataclass(frozen=True, slots=True)
class WalletEntry:
    """One movement of a member's wallet (one journal), newest first in :func:`history`.

    Amounts are signed from the member's side: + money in, − money out."""

    id: int
    kind: str
    source_key: str
    memo: str
    created_at: datetime
    principal_fen: int
    bonus_fen: int
    total_fen: int
    #: Principal + bonus right after this movement.
    balance_after_fen: int

    def label(self, english: bool = False) -> str:
        return (KIND_EN if english else KIND_ZH).get(self.kind, self.kind)

    @property
    def order_id(self) -> int | None:
        head, _sep, rest = self.source_key.partition(":")
        number = rest.split(":", 1)[0]
        return int(number) if head == "order" and number.isdigit() else None


@dataclass(frozen=True, slots=True)
class WalletSettings:
    """``Tenant.settings["members"]["wallet"]``; see :data:`SETTING_RANGES`."""

    recharge_enabled: bool = True
    custom_enabled: bool = True
    custom_min_fen: int = 100
    custom_max_fen: int = 5_000_000
    #: Share of a spend drawn from the bonus while it lasts (see the module docstring).
    bonus_share_bp: int = 0
    #: Whether members may ask for their principal back.
    refund_enabled: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"recharge_enabled": self.recharge_enabled, "custom_enabled": self.custom_enabled,
                "custom_min_fen": self.custom_min_fen, "custom_max_fen": self.custom_max_fen,
                "bonus_share_bp": self.bonus_share_bp, "refund_enabled": self.refund_enabled}


SETTING_RANGES: dict[str, tuple[int, int]] = {
    "custom_min_fen": (1, MAX_AMOUNT_FEN),
    "custom_max_fen": (1, MAX_AMOUNT_FEN),
    "bonus_share_bp": (0, 10000),
}
SETTING_FLAGS = ("recharge_enabled", "custom_enabled", "refund_enabled")


# -- repositories ---------------------------------------------------------------------------------------


class _Packages(TenantRepository[RechargePackage]):
    model = RechargePackage
    not_found_zh = "储值套餐"
    not_found_en = "Recharge package"
    not_found_code = "recharge_package_not_found"

    async def all(self, *, on_sale_only: bool = False) -> list[RechargePackage]:
        stmt = self.select()
        if on_sale_only:
            stmt = stmt.where(RechargePackage.on_sale.is_(True))
        stmt = stmt.order_by(RechargePackage.sort.desc(), RechargePackage.pay_fen, RechargePackage.id)
        return list((await self.session.execute(stmt)).scalars())

    async def how_many(self) -> int:
        return await self.count(self.select())


class _Recharges(TenantRepository[Recharge]):
    model = Recharge
    not_found_zh = "充值单"
    not_found_en = "Recharge"
    not_found_code = "recharge_not_found"

    async def by_key(self, customer_id: int, key: str) -> Recharge | None:
        stmt = self.select().where(Recharge.customer_id == customer_id, Recharge.idempotency_key == key)
        return (await self.session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()

    async def fresh(self, recharge_id: int, *, for_update: bool = False) -> Recharge | None:
        stmt = self.select().where(Recharge.id == recharge_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def move(self, recharge_id: int, from_status: str, to_status: str, **values: Any) -> bool:
        res = await self.session.execute(
            update(Recharge).where(Recharge.tenant_id == self.tenant_id, Recharge.id == recharge_id,
                                   Recharge.status == from_status)
            .values(status=to_status, updated_at=clock.now(), **values).execution_options(synchronize_session=False))
        return _rowcount(res) == 1

    async def take_refund(self, recharge_id: int, fen: int) -> bool:
        res = await self.session.execute(
            update(Recharge).where(Recharge.tenant_id == self.tenant_id, Recharge.id == recharge_id,
                                   Recharge.status == "paid", Recharge.refunded_fen + fen <= Recharge.pay_fen)
            .values(refunded_fen=Recharge.refunded_fen + fen, updated_at=clock.now())
            .execution_options(synchronize_session=False))
        return _rowcount(res) == 1

    async def give_refund_back(self, recharge_id: int, fen: int) -> bool:
        res = await self.session.execute(
            update(Recharge).where(Recharge.tenant_id == self.tenant_id, Recharge.id == recharge_id,
                                   Recharge.refunded_fen >= fen)
            .values(refunded_fen=Recharge.refunded_fen - fen, updated_at=clock.now())
            .execution_options(synchronize_session=False))
        return _rowcount(res) == 1

    async def refundable(self, customer_id: int) -> list[Recharge]:
        """Paid recharges with principal not yet sent back, newest first."""
        stmt = (self.select().where(Recharge.customer_id == customer_id, Recharge.status == "paid",
                                    Recharge.payment_id.is_not(None), Recharge.refunded_fen < Recharge.pay_fen)
                .order_by(Recharge.paid_at.desc(), Recharge.id.desc()))
        return list((await self.session.execute(stmt)).scalars())

    async def page(self, *, customer_id: int | None, status: str | None, offset: int, limit: int,
                   ) -> tuple[list[Recharge], int]:
        stmt = self.select()
        if customer_id is not None:
            stmt = stmt.where(Recharge.customer_id == customer_id)
        if status:
            stmt = stmt.where(Recharge.status == status)
        total = await self.count(stmt)
        rows = (await self.session.execute(stmt.order_by(Recharge.id.desc()).offset(offset).limit(limit))).scalars()
        return list(rows), total


class _Refunds(TenantRepository[BalanceRefund]):
    model = BalanceRefund
    not_found_zh = "余额退款申请"
    not_found_en = "Balance refund"
    not_found_code = "balance_refund_not_found"

    async def fresh(self, refund_id: int, *, for_update: bool = False) -> BalanceRefund | None:
        stmt = self.select().where(BalanceRefund.id == refund_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def move(self, refund_id: int, from_status: str, to_status: str, **values: Any) -> bool:
        res = await self.session.execute(
            update(BalanceRefund).where(BalanceRefund.tenant_id == self.tenant_id, BalanceRefund.id == refund_id,
                                        BalanceRefund.status == from_status)
            .values(status=to_status, updated_at=clock.now(), **values).execution_options(synchronize_session=False))
        return _rowcount(res) == 1

    async def open_of(self, customer_id: int) -> BalanceRefund | None:
        stmt = self.select().where(BalanceRefund.customer_id == customer_id,
                                   BalanceRefund.status.in_(("pending", "refunding")))
        return (await self.session.execute(stmt)).scalars().first()

    async def page(self, *, customer_id: int | None, status: str | None, offset: int, limit: int,
                   ) -> tuple[list[BalanceRefund], int]:
        stmt = self.select()
        if customer_id is not None:
            stmt = stmt.where(BalanceRefund.customer_id == customer_id)
        if status:
            stmt = stmt.where(BalanceRefund.status == status)
        total = await self.count(stmt)
        rows = (await self.session.execute(stmt.order_by(BalanceRefund.id.desc()).offset(offset).limit(limit))).scalars()
        return list(rows), total

    async def parts(self, refund_id: int) -> list[BalanceRefundPart]:
        stmt = (select(BalanceRefundPart).where(BalanceRefundPart.tenant_id == self.tenant_id,
                                                BalanceRefundPart.balance_refund_id == refund_id)
                .order_by(BalanceRefundPart.id).execution_options(populate_existing=True))
        return list((await self.session.execute(stmt)).scalars())

    async def part(self, part_id: int, *, for_update: bool = False) -> BalanceRefundPart | None:
        stmt = (select(BalanceRefundPart).where(BalanceRefundPart.tenant_id == self.tenant_id,
                                                BalanceRefundPart.id == part_id)
                .execution_options(populate_existing=True))
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def move_part(self, part_id: int, from_status: str, to_status: str) -> bool:
        res = await self.session.execute(
            update(BalanceRefundPart).where(BalanceRefundPart.tenant_id == self.tenant_id, BalanceRefundPart.id == part_id,
                                            BalanceRefundPart.status == from_status)
            .values(status=to_status).execution_options(synchronize_session=False))
        return _rowcount(res) == 1


def _rowcount(res: Any) -> int:
    return int(getattr(res, "rowcount", 0) or 0)


def _insert_ignore(session: AsyncSession, model: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model).on_conflict_do_nothing()


# -- settings ------------------------------------------------------------------------------------------


def _settings_from(raw: dict[str, Any]) -> WalletSettings:
    """Stored values out of range (a hand edit, an older release) fall back to the default."""
    d = WalletSettings()
    values: dict[str, Any] = {}
    for key in SETTING_FLAGS:
        v = raw.get(key)
        values[key] = v if isinstance(v, bool) else getattr(d, key)
    for key, (lo, hi) in SETTING_RANGES.items():
        v = raw.get(key)
        values[key] = v if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi else getattr(d, key)
    out = WalletSettings(**values)
    if out.custom_min_fen > out.custom_max_fen:
        out = replace(out, custom_min_fen=d.custom_min_fen, custom_max_fen=d.custom_max_fen)
    return out


async def wallet_settings(session: AsyncSession, scope: TenantScope) -> WalletSettings:
    return _settings_from(await members_service.section(session, scope, SECTION))


async def update_settings(session: AsyncSession, scope: TenantScope, **changes: Any) -> WalletSettings:
    """Change some settings (``None`` keeps a value); audited by :func:`members_service.save_section`."""
    current = await wallet_settings(session, scope)
    errors: list[dict[str, str]] = []
    values = current.as_dict()
    for key, v in changes.items():
        if v is None:
            continue
        if key in SETTING_FLAGS:
            if not isinstance(v, bool):
                errors.append({"field": key, "message": "must be true or false"})
                continue
        elif key in SETTING_RANGES:
            lo, hi = SETTING_RANGES[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                errors.append({"field": key, "message": f"must be a whole number from {lo} to {hi}"})
                continue
        else:
            raise ValueError(f"unknown wallet setting {key!r}")
        values[key] = v
    if not errors and values["custom_min_fen"] > values["custom_max_fen"]:
        errors.append({"field": "custom_min_fen", "message": "must not exceed custom_max_fen"})
    if errors:
        raise ValidationFailed("wallet_settings_invalid", "储值设置有误：" + "；".join(e["field"] for e in errors),
                               "Some stored-value settings are invalid", fields=errors)
    await members_service.save_section(session, scope, SECTION, values)
    return _settings_from(values)


# -- balances and history --------------------------------------------------------------------------------


async def balances(session: AsyncSession, scope: TenantScope, customer_id: int) -> WalletBalance:
    """What ``customer_id`` holds now (zeros for a member who never recharged)."""
    rows = (await session.execute(
        select(LedgerAccount.code, LedgerAccount.balance_fen).where(
            LedgerAccount.tenant_id == scope.id,
            LedgerAccount.code.in_([principal_account(customer_id).code, bonus_account(customer_id).code,
                                    hold_account(customer_id).code])))).all()
    by_code = {code: int(fen) for code, fen in rows}
    p = by_code.get(principal_account(customer_id).code, 0)
    b = by_code.get(bonus_account(customer_id).code, 0)
    return WalletBalance(principal_fen=p, bonus_fen=b, total_fen=p + b,
                         held_fen=by_code.get(hold_account(customer_id).code, 0))


async def _wallet_account_ids(session: AsyncSession, scope: TenantScope, customer_id: int) -> dict[int, str]:
    """account id → ``principal`` / ``bonus`` for the accounts this member has."""
    codes = {principal_account(customer_id).code: "principal", bonus_account(customer_id).code: "bonus"}
    rows = (await session.execute(select(LedgerAccount.id, LedgerAccount.code).where(
        LedgerAccount.tenant_id == scope.id, LedgerAccount.code.in_(list(codes))))).all()
    return {int(i): codes[c] for i, c in rows}


async def history(session: AsyncSession, scope: TenantScope, customer_id: int, *, limit: int = 20,
                  before_id: int | None = None) -> list[WalletEntry]:
    """A member's wallet statement, newest first, one row per movement; page on with
    ``before_id`` = the last row's ``id``."""
    limit = max(1, min(int(limit), 200))
    accounts = await _wallet_account_ids(session, scope, customer_id)
    if not accounts:
        return []
    ids = list(accounts)
    stmt = (select(LedgerEntry.journal_id).where(LedgerEntry.tenant_id == scope.id, LedgerEntry.account_id.in_(ids))
            .group_by(LedgerEntry.journal_id).order_by(LedgerEntry.journal_id.desc()).limit(limit))
    if before_id is not None:
        stmt = stmt.where(LedgerEntry.journal_id < before_id)
    journal_ids = [int(j) for j in (await session.execute(stmt)).scalars()]
    if not journal_ids:
        return []
    journals = {j.id: j for j in (await session.execute(
        select(LedgerJournal).where(LedgerJournal.id.in_(journal_ids)))).scalars()}
    deltas: dict[int, dict[str, int]] = defaultdict(lambda: {"principal": 0, "bonus": 0})
    for jid, aid, amount in (await session.execute(
            select(LedgerEntry.journal_id, LedgerEntry.account_id, LedgerEntry.amount_fen).where(
                LedgerEntry.tenant_id == scope.id, LedgerEntry.journal_id.in_(journal_ids),
                LedgerEntry.account_id.in_(ids)))).all():
        deltas[int(jid)][accounts[int(aid)]] += -int(amount)  # a liability grows with credits
    # The balance after the newest row: today's balance less every movement after it.
    later = (await session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0)).where(
        LedgerEntry.tenant_id == scope.id, LedgerEntry.account_id.in_(ids),
        LedgerEntry.journal_id > journal_ids[0]))).scalar_one()
    now = await balances(session, scope, customer_id)
    after = now.total_fen + int(later)
    out = []
    for jid in journal_ids:
        j = journals[jid]
        d = deltas[jid]
        total = d["principal"] + d["bonus"]
        out.append(WalletEntry(id=jid, kind=j.kind, source_key=j.source_key, memo=j.memo, created_at=j.created_at,
                               principal_fen=d["principal"], bonus_fen=d["bonus"], total_fen=total,
                               balance_after_fen=after))
        after -= total
    return out


# -- spending --------------------------------------------------------------------------------------------


def split_spend(amount_fen: int, principal_fen: int, bonus_fen: int, bonus_share_bp: int) -> tuple[int, int]:
    """(principal, bonus) paying ``amount_fen`` (see "Spending ratio" in the module docstring).

    Raises ``ValueError`` when the two together cannot pay it."""
    if amount_fen < 0 or principal_fen < 0 or bonus_fen < 0:
        raise ValueError("amounts must not be negative")
    if amount_fen > principal_fen + bonus_fen:
        raise ValueError("the balance does not cover the amount")
    want = apply_rate(amount_fen, max(0, min(10000, bonus_share_bp)))
    bonus = min(bonus_fen, max(want, amount_fen - principal_fen))
    return amount_fen - bonus, bonus


async def spend(session: AsyncSession, scope: TenantScope, customer_id: int, *, principal_fen: int, bonus_fen: int,
                source_key: str, memo: str = "") -> ledger.Posted:
    """Take ``principal_fen`` + ``bonus_fen`` out of the wallet into sales, once per source key.
    409 ``insufficient_balance`` when either part is not there (nothing is posted then)."""
    if principal_fen < 0 or bonus_fen < 0:
        raise ValueError("a spend takes non-negative amounts")
    total = principal_fen + bonus_fen
    return await ledger.post(session, scope.id, source_key=source_key, kind="order_spend", memo=memo, postings=[
        debit(principal_account(customer_id), principal_fen), debit(bonus_account(customer_id), bonus_fen),
        credit(SALES, total)])


async def give_back(session: AsyncSession, scope: TenantScope, customer_id: int, *, principal_fen: int, bonus_fen: int,
                    source_key: str, kind: str = "after_sale_return", memo: str = "") -> ledger.Posted | None:
    """Return part of a spend to the wallet (out of sales), once per source key; None when
    there is nothing to return."""
    if principal_fen < 0 or bonus_fen < 0:
        raise ValueError("a return takes non-negative amounts")
    if principal_fen + bonus_fen == 0:
        return None
    return await ledger.post(session, scope.id, source_key=source_key, kind=kind, memo=memo, postings=[
        debit(SALES, principal_fen + bonus_fen), credit(principal_account(customer_id), principal_fen),
        credit(bonus_account(customer_id), bonus_fen)])


async def _spent_parts(session: AsyncSession, scope: TenantScope, journal: LedgerJournal,
                       customer_id: int) -> tuple[int, int]:
    """(principal, bonus) a spend journal took."""
    rows = (await session.execute(
        select(LedgerAccount.code, LedgerEntry.amount_fen).join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerEntry.tenant_id == scope.id, LedgerEntry.journal_id == journal.id))).all()
    got = {code: int(fen) for code, fen in rows}
    return got.get(principal_account(customer_id).code, 0), got.get(bonus_account(customer_id).code, 0)


def order_spend_key(order_id: int) -> str:
    return f"order:{order_id}:balance"


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "on", "yes")
    return False


async def balance_adjuster(session: AsyncSession, ctx: pricing.PricingContext) -> list[pricing.Offer]:
    """Step ``balance``: pay what is still due (goods and freight) from stored value when the
    shopper asks (``options["use_balance"]``): as much as the wallet holds, the gateway the
    rest. Always answers with one offer, so the checkout page can show the toggle:
    ``data["available_fen"]`` is what the wallet holds; applied, ``data`` adds the
    ``principal_fen`` / ``bonus_fen`` split. Asked for with an empty wallet, the offer says
    ``requested`` and placement refuses the order (409 ``insufficient_balance``)."""
    if ctx.customer_id is None:
        return []
    if ctx.placing and not _truthy(ctx.options.get("use_balance")):
        return []  # not asked for: the balance matters only on the checkout page
    wallet = await balances(session, ctx.scope, ctx.customer_id)
    available = wallet.total_fen
    data: dict[str, Any] = {"available_fen": available}
    label_zh, label_en = "余额支付", "Stored value"
    wanted = _truthy(ctx.options.get("use_balance"))
    if available <= 0:
        if wanted and ctx.due_fen > 0:
            # Asked for, but the wallet is empty: placement refuses the order (see the hook).
            data["requested"] = True
        return [pricing.Offer(OFFER_CODE, label_zh, label_en, applied=False, reason_zh="余额为 0",
                              reason_en="No balance", data=data)]
    if not wanted:
        return [pricing.Offer(OFFER_CODE, label_zh, label_en, applied=False, reason_zh=f"可用余额 ¥{yuan(available)}",
                              reason_en=f"¥{yuan(available)} available", data=data)]
    due = ctx.due_fen
    amount = min(available, due)
    if amount <= 0:
        return [pricing.Offer(OFFER_CODE, label_zh, label_en, applied=False, reason_zh="无需支付", reason_en="Nothing to pay",
                              data=data)]
    settings = await wallet_settings(session, ctx.scope)
    p, b = split_spend(amount, wallet.principal_fen, wallet.bonus_fen, settings.bonus_share_bp)
    return [pricing.Offer(OFFER_CODE, label_zh, label_en, total_fen=amount,
                          data={**data, "principal_fen": p, "bonus_fen": b})]


async def _placement_hook(session: AsyncSession, scope: TenantScope, order: Order, quote: pricing.Quote,
                          lines: list[OrderLine]) -> None:
    """Take the balance an order uses, inside the placement savepoint: a wallet that no longer
    covers it (another checkout spent it) is a 409 that undoes the whole order. So is an
    order that asked to pay by balance when the wallet is already empty: the shopper chose a
    way of paying that is gone, and should see the new total before ordering."""
    mine = [o for o in quote.offers if o.step == "balance" and o.code == OFFER_CODE]
    if any(not o.applied and o.data.get("requested") for o in mine):
        raise ledger.InsufficientBalance(principal_account(order.customer_id).code, 0, order.payable_fen)
    applied = [o for o in mine if o.applied and o.fen > 0]
    if not applied:
        return
    amount = sum(o.fen for o in applied)
    p = sum(int(o.data.get("principal_fen") or 0) for o in applied)
    b = sum(int(o.data.get("bonus_fen") or 0) for o in applied)
    if p + b != amount or p < 0 or b < 0:
        wallet = await balances(session, scope, order.customer_id)
        settings = await wallet_settings(session, scope)
        try:
            p, b = split_spend(amount, wallet.principal_fen, wallet.bonus_fen, settings.bonus_share_bp)
        except ValueError:
            raise ledger.InsufficientBalance(principal_account(order.customer_id).code, wallet.total_fen, amount) from None
    await spend(session, scope, order.customer_id, principal_fen=p, bonus_fen=b, source_key=order_spend_key(order.id),
                memo=f"订单 {order.order_no}")


pricing.register_adjuster("balance", balance_adjuster)
checkout.register_placement_hook(_placement_hook)


# -- order events ----------------------------------------------------------------------------------------


async def _scope_of(session: AsyncSession, tenant_id: int) -> TenantScope:
    from siyu.tenants import service as tenants_service

    return tenants_service.scope_of(await tenants_service.get_tenant(session, tenant_id))


async def owner(session: AsyncSession, scope: TenantScope, customer_id: int) -> int:
    """Whose wallet money returned to ``customer_id`` goes into: the customer, or the one it was
    merged into (an order placed before a merge is refunded to the surviving customer)."""
    from siyu.customers import service as customers_service

    seen = {customer_id}
    current = customer_id
    for _hop in range(8):
        c = await customers_service.active_customer(session, scope, current)
        if c is not None:
            return current
        try:
            row = await customers_service.get_customer(session, scope, current)
        except NotFound:
            return current
        nxt = row.merged_into_id
        if nxt is None or nxt in seen:
            return current
        seen.add(nxt)
        current = nxt
    return current


async def return_cancelled(session: AsyncSession, scope: TenantScope, order_id: int) -> ledger.Posted | None:
    """Give back everything a cancelled order took, once: the mirror image of its spend (to the
    customer it was merged into, if it was merged meanwhile)."""
    spent = await ledger.journal_by_source(session, scope.id, order_spend_key(order_id))
    if spent is None:
        return None
    key = f"{order_spend_key(order_id)}:cancel"
    memo = f"取消 {spent.memo}"[:200]
    customer_id = await _spender(session, scope, spent)
    to = await owner(session, scope, customer_id) if customer_id is not None else None
    if customer_id is None or to is None or to == customer_id:
        return await ledger.reverse(session, scope.id, spent, source_key=key, memo=memo)
    p, b = await _spent_parts(session, scope, spent, customer_id)
    return await ledger.post(session, scope.id, source_key=key, kind=f"{spent.kind}.reversal", memo=memo,
                             reverses_id=spent.id, postings=[debit(SALES, p + b), credit(principal_account(to), p),
                                                             credit(bonus_account(to), b)])


async def _spender(session: AsyncSession, scope: TenantScope, journal: LedgerJournal) -> int | None:
    """The customer whose wallet a spend journal drew from."""
    owner_id = (await session.execute(
        select(LedgerAccount.owner_id).join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
        .where(LedgerEntry.tenant_id == scope.id, LedgerEntry.journal_id == journal.id,
               LedgerAccount.owner_type == "customer").limit(1))).scalar_one_or_none()
    return int(owner_id) if owner_id is not None else None


@outbox.on("order.cancelled")
async def _on_order_cancelled(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    tenant_id = p.get("tenant_id") or event.tenant_id
    if not tenant_id or not p.get("order_id"):
        return
    scope = await _scope_of(session, int(tenant_id))
    await return_cancelled(session, scope, int(p["order_id"]))


def _line_share(line: OrderLine) -> int:
    return sum(int(d.get("fen") or 0) for d in (line.discounts or []) if isinstance(d, dict) and d.get("code") == OFFER_CODE)


async def return_refunded(session: AsyncSession, scope: TenantScope, *, case_id: int, order_id: int,
                          refunded: Sequence[tuple[int, int]]) -> ledger.Posted | None:
    """Return the balance share of a refunded after-sales case (``refunded``: ``(order_line_id,
    units)``), principal and bonus in the spend's ratio, by the prefix formula over the line's
    units refunded in earlier cases (see the module docstring). Once per case."""
    from siyu.orders import aftersales
    from siyu.orders import service as orders_service

    key = f"after_sale:{case_id}:balance"
    spent = await ledger.journal_by_source(session, scope.id, order_spend_key(order_id))
    if spent is None or await ledger.journal_by_source(session, scope.id, key) is not None:
        return None
    if await ledger.journal_by_source(session, scope.id, f"{order_spend_key(order_id)}:cancel") is not None:
        return None
    order = await orders_service.get_order(session, scope, order_id)
    spent_p, spent_b = await _spent_parts(session, scope, spent, order.customer_id)
    lines = await orders_service.order_lines(session, scope, order_id)
    shares = [_line_share(ln) for ln in lines]
    if sum(shares) != spent_p + spent_b:
        log.error("an order's balance shares do not add up to its spend",
                  extra={"order_id": order_id, "shares": sum(shares), "spent": spent_p + spent_b})
        shares = allocate(spent_p + spent_b, [ln.paid_fen + s for ln, s in zip(lines, shares, strict=True)])
    principal_parts = allocate(spent_p, shares) if spent_p else [0] * len(lines)
    per_line = {ln.id: (ln, pp, share - pp) for ln, share, pp in zip(lines, shares, principal_parts, strict=True)}
    earlier: dict[int, int] = defaultdict(int)
    rows, _total = await aftersales.list_cases(session, scope, aftersales.CaseQuery(status="refunded", order_id=order_id),
                                               limit=10_000)
    for row in rows:
        if row.case.id < case_id:
            for cl in row.lines:
                earlier[cl.order_line_id] += cl.quantity
    back_p = back_b = 0
    for line_id, k in refunded:
        if line_id not in per_line or k <= 0:
            continue
        ln, fp, fb = per_line[line_id]
        r = min(earlier[line_id], ln.quantity)
        k = min(k, ln.quantity - r)
        back_p += fp * (r + k) // ln.quantity - fp * r // ln.quantity
        back_b += fb * (r + k) // ln.quantity - fb * r // ln.quantity
    return await give_back(session, scope, await owner(session, scope, order.customer_id), principal_fen=back_p,
                           bonus_fen=back_b, source_key=key, memo=f"订单 {order.order_no} 售后退回")


@outbox.on("after_sale.refunded")
async def _on_after_sale_refunded(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    tenant_id = p.get("tenant_id") or event.tenant_id
    if not tenant_id or not p.get("order_id") or not p.get("case_id"):
        return
    scope = await _scope_of(session, int(tenant_id))
    refunded = [(int(ln["order_line_id"]), int(ln["quantity"])) for ln in p.get("lines") or []
                if isinstance(ln, dict) and "order_line_id" in ln]
    await return_refunded(session, scope, case_id=int(p["case_id"]), order_id=int(p["order_id"]), refunded=refunded)


# -- recharge packages -------------------------------------------------------------------------------------


def _bad(field_name: str, code: str, zh: str, en: str) -> ValidationFailed:
    return ValidationFailed(code, zh, en, fields=[{"field": field_name, "message": en}])


def _check_package(name: str, pay_fen: int, bonus_fen: int, sort: int) -> str:
    name = " ".join(str(name or "").split())
    if not 1 <= len(name) <= 40 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _bad("name", "recharge_package_invalid", "套餐名称需为 1–40 个字", "The name must be 1–40 characters")
    for fname, v, lo in (("pay_fen", pay_fen, 1), ("bonus_fen", bonus_fen, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= MAX_AMOUNT_FEN:
            raise _bad(fname, "recharge_package_invalid", "金额需为 0.01–100000 元" if lo else "赠送金额需为 0–100000 元",
                       f"{fname} must be {lo}–{MAX_AMOUNT_FEN} fen")
    if isinstance(sort, bool) or not isinstance(sort, int) or not -9999 <= sort <= 9999:
        raise _bad("sort", "recharge_package_invalid", "排序需为 -9999–9999", "sort must be -9999–9999")
    return name


async def list_packages(session: AsyncSession, scope: TenantScope, *, on_sale_only: bool = False) -> list[RechargePackage]:
    """Packages, those sorted higher first, then the cheaper."""
    return await _Packages(session, scope.id).all(on_sale_only=on_sale_only)


async def get_package(session: AsyncSession, scope: TenantScope, package_id: int) -> RechargePackage:
    return await _Packages(session, scope.id).get_or_404(package_id)


def _package_view(p: RechargePackage) -> dict[str, Any]:
    return {"name": p.name, "pay_fen": p.pay_fen, "bonus_fen": p.bonus_fen, "on_sale": p.on_sale, "sort": p.sort}


async def create_package(session: AsyncSession, scope: TenantScope, *, name: str, pay_fen: int, bonus_fen: int = 0,
                         on_sale: bool = True, sort: int = 0) -> RechargePackage:
    name = _check_package(name, pay_fen, bonus_fen, sort)
    repo = _Packages(session, scope.id)
    if await repo.how_many() >= MAX_PACKAGES:
        raise Conflict("recharge_package_limit", f"最多 {MAX_PACKAGES} 个储值套餐", f"At most {MAX_PACKAGES} recharge packages")
    pkg = repo.add(RechargePackage(name=name, pay_fen=pay_fen, bonus_fen=bonus_fen, on_sale=bool(on_sale), sort=sort))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="members.wallet.package.create", object_type="recharge_package",
                 object_id=pkg.id, after=_package_view(pkg))
    return pkg


async def update_package(session: AsyncSession, scope: TenantScope, package_id: int, **changes: Any) -> RechargePackage:
    """Change some fields (``None`` keeps one). Recharges already made keep what they were sold."""
    repo = _Packages(session, scope.id)
    pkg = await repo.get_or_404(package_id, for_update=True)
    before = _package_view(pkg)
    values = {**before, **{k: v for k, v in changes.items() if v is not None and k in before}}
    values["name"] = _check_package(values["name"], values["pay_fen"], values["bonus_fen"], values["sort"])
    for k, v in values.items():
        setattr(pkg, k, bool(v) if k == "on_sale" else v)
    pkg.updated_at = clock.now()
    await session.flush()
    after = _package_view(pkg)
    if after != before:
        audit.record(session, tenant_id=scope.id, action="members.wallet.package.update", object_type="recharge_package",
                     object_id=pkg.id, before=before, after=after)
    return pkg


async def delete_package(session: AsyncSession, scope: TenantScope, package_id: int) -> None:
    """Recharges copy what they bought, so a package can go at any time."""
    repo = _Packages(session, scope.id)
    pkg = await repo.get_or_404(package_id, for_update=True)
    before = _package_view(pkg)
    await session.delete(pkg)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="members.wallet.package.delete", object_type="recharge_package",
                 object_id=package_id, before=before)


# -- recharges ---------------------------------------------------------------------------------------------


def _new_no(scope: TenantScope) -> str:
    day = clock.now().astimezone(ZoneInfo(scope.timezone)).strftime("%y%m%d")
    return f"{day}{secrets.randbelow(10**10):010d}"


async def get_recharge(session: AsyncSession, scope: TenantScope, recharge_id: int, *,
                       customer_id: int | None = None) -> Recharge:
    """A recharge; with ``customer_id``, only that member's (anyone else's is the same 404)."""
    r = await _Recharges(session, scope.id).fresh(recharge_id)
    if r is None or (customer_id is not None and r.customer_id != customer_id):
        raise NotFound("recharge_not_found", "充值单不存在", "Recharge not found")
    return r


async def list_recharges(session: AsyncSession, scope: TenantScope, *, customer_id: int | None = None,
                         status: str | None = None, offset: int = 0, limit: int = 20) -> tuple[list[Recharge], int]:
    return await _Recharges(session, scope.id).page(customer_id=customer_id, status=status, offset=offset, limit=limit)


@dataclass(frozen=True, slots=True)
class RechargeStarted:
    recharge: Recharge
    #: False when an earlier request with the same Idempotency-Key made it.
    created: bool


async def create_recharge(session: AsyncSession, scope: TenantScope, customer_id: int, *, package_id: int | None = None,
                          amount_fen: int | None = None, idempotency_key: str | None = None) -> RechargeStarted:
    """A recharge waiting for payment: a package (pay its price, get price + bonus) or a custom
    amount within the shop's range (no bonus). The same ``idempotency_key`` answers the
    recharge it made (409 ``idempotency_key_reused`` for another package or amount)."""
    settings = await wallet_settings(session, scope)
    if not settings.recharge_enabled:
        raise Conflict("recharge_disabled", "本店暂未开放储值充值", "This shop does not take recharges")
    if (package_id is None) == (amount_fen is None):
        raise _bad("package_id", "recharge_choice_invalid", "请选择一个充值套餐或输入充值金额",
                   "Choose a package or enter an amount (one of them)")
    key = checkout.check_idempotency_key(idempotency_key) if idempotency_key is not None else None
    if package_id is not None:
        pkg = await _Packages(session, scope.id).get(package_id)
        if pkg is None:
            raise NotFound("recharge_package_not_found", "储值套餐不存在", "Recharge package not found")
        if not pkg.on_sale:
            raise Conflict("recharge_package_off_sale", "该储值套餐已下架", "This package is no longer offered")
        pay, bonus = pkg.pay_fen, pkg.bonus_fen
    else:
        assert amount_fen is not None
        if not settings.custom_enabled:
            raise Conflict("recharge_custom_disabled", "本店不支持自定义金额充值，请选择套餐",
                           "This shop takes packages only; choose one")
        lo, hi = settings.custom_min_fen, settings.custom_max_fen
        if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or not lo <= amount_fen <= hi:
            raise _bad("amount_fen", "recharge_amount_invalid", f"充值金额需为 {yuan(lo)}–{yuan(hi)} 元",
                       f"The amount must be ¥{yuan(lo)}–¥{yuan(hi)}")
        pay, bonus = amount_fen, 0
    repo = _Recharges(session, scope.id)
    if key is not None:
        found = await repo.by_key(customer_id, key)
        if found is not None:
            return _same_recharge(found, package_id, pay)
    await members_service.ensure_member(session, scope, customer_id)
    now = clock.now()
    values = {"tenant_id": scope.id, "customer_id": customer_id, "package_id": package_id, "pay_fen": pay,
              "bonus_fen": bonus, "status": "pending_payment", "idempotency_key": key, "refunded_fen": 0,
              "pay_deadline": now + timedelta(minutes=PAY_MINUTES), "created_at": now, "updated_at": now}
    stmt = _insert_ignore(session, Recharge).returning(Recharge.id)
    for _attempt in range(8):
        values["recharge_no"] = _new_no(scope)
        new_id = (await session.execute(stmt.values(**values))).scalar_one_or_none()
        if new_id is not None:
            return RechargeStarted(await get_recharge(session, scope, int(new_id)), True)
        if key is not None:
            found = await repo.by_key(customer_id, key)
            if found is not None:
                return _same_recharge(found, package_id, pay)
    raise Conflict("recharge_no_exhausted", "充值单号生成失败，请重试", "Could not draw a free recharge number; retry")


def _same_recharge(found: Recharge, package_id: int | None, pay_fen: int) -> RechargeStarted:
    if found.package_id != package_id or (package_id is None and found.pay_fen != pay_fen):
        raise Conflict("idempotency_key_reused", "该 Idempotency-Key 已用于另一笔充值",
                       "This Idempotency-Key was already used for another recharge", extra={"recharge_id": found.id})
    return RechargeStarted(found, False)


def recharge_payable(r: Recharge, now: datetime | None = None) -> bool:
    now = now or clock.now()
    return r.status == "pending_payment" and r.pay_deadline is not None and r.pay_deadline > now + MIN_PAY_WINDOW


async def pay_recharge(session: AsyncSession, scope: TenantScope, customer_id: int, recharge_id: int, *,
                       channel: str = "sandbox", return_url: str | None = None, payer_openid: str | None = None,
                       payer_client_ip: str | None = None) -> PaymentStart:
    """Open (or reuse) the payment of an unpaid recharge; it expires with the recharge."""
    repo = _Recharges(session, scope.id)
    r = await repo.fresh(recharge_id, for_update=True)
    if r is None or r.customer_id != customer_id:
        raise NotFound("recharge_not_found", "充值单不存在", "Recharge not found")
    if not recharge_payable(r):
        raise Conflict("recharge_not_payable", "该充值单已不能支付，请重新充值", "This recharge can no longer be paid",
                       extra={"status": r.status})
    from siyu.tenants import service as tenants_service

    tenant = await tenants_service.get_tenant(session, scope.id)
    description = f"{tenant.name} 储值充值 {r.recharge_no}"
    if len(description) > 127:
        description = f"储值充值 {r.recharge_no}"
    return await payments_service.create_payment(
        session, scope, source_type=SOURCE_TYPE, source_id=str(r.id), amount_fen=r.pay_fen, description=description,
        channel=channel, payer_openid=payer_openid, return_url=return_url, expires_at=r.pay_deadline,
        payer_client_ip=payer_client_ip)


async def _recharge_owner(session: AsyncSession, scope: TenantScope, source_id: str) -> int | None:
    if not source_id.isdigit():
        return None
    r = await _Recharges(session, scope.id).get(int(source_id))
    return r.customer_id if r is not None else None


payments_service.register_source_owner(SOURCE_TYPE, _recharge_owner)


async def apply_recharge_payment(session: AsyncSession, scope: TenantScope, *, recharge_id: int, payment_id: int,
                                 amount_fen: int, out_trade_no: str, paid_at: datetime | None = None) -> str:
    """What a succeeded payment means for its recharge: ``paid`` (credited now), ``replay``,
    ``refunded`` (a late or duplicate payment sent back in full) or ``unknown``. Idempotent."""
    repo = _Recharges(session, scope.id)
    r = await repo.fresh(recharge_id, for_update=True)
    if r is None:
        log.error("a payment names a recharge that does not exist", extra={"payment_id": payment_id})
        return "unknown"
    if r.payment_id == payment_id:
        return "replay"
    if r.status == "pending_payment" and amount_fen == r.pay_fen:
        if await repo.move(r.id, "pending_payment", "paid", payment_id=payment_id, paid_at=paid_at or clock.now()):
            await _credit(session, scope, r)
            return "paid"
        r = await repo.fresh(recharge_id) or r
        if r.payment_id == payment_id:
            return "replay"
    why = ("充值单已关闭，迟到的支付已原路退回" if r.status == "closed" else
           "充值单已由另一笔支付付款，重复支付已原路退回" if r.status == "paid" else "支付金额与充值单不符，已原路退回")
    await payments_service.refund(session, scope, payment_id=payment_id, amount_fen=amount_fen,
                                  out_refund_no=f"LP{out_trade_no}", reason=why, source_type=SOURCE_TYPE,
                                  source_id=str(r.id))
    log.warning("recharge payment refunded automatically", extra={"recharge_id": r.id, "payment_id": payment_id})
    return "refunded"


async def _credit(session: AsyncSession, scope: TenantScope, r: Recharge) -> None:
    cid = r.customer_id
    await ledger.post(session, scope.id, source_key=f"recharge:{r.id}", kind="recharge", memo=f"充值 {r.recharge_no}",
                      postings=[debit(CASH, r.pay_fen), credit(principal_account(cid), r.pay_fen),
                                debit(BONUS_EXPENSE, r.bonus_fen), credit(bonus_account(cid), r.bonus_fen)])


@outbox.on("payment.succeeded")
async def _on_payment_succeeded(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    if p.get("source_type") != SOURCE_TYPE:
        return
    tenant_id = p.get("tenant_id") or event.tenant_id
    if not str(p.get("source_id", "")).isdigit() or not tenant_id:
        log.error("a recharge payment names no recharge", extra={"payment_id": p.get("payment_id")})
        return
    scope = await _scope_of(session, int(tenant_id))
    paid_at = datetime.fromisoformat(p["paid_at"]) if p.get("paid_at") else None
    await apply_recharge_payment(session, scope, recharge_id=int(p["source_id"]), payment_id=int(p["payment_id"]),
                                 amount_fen=int(p["amount_fen"]), out_trade_no=str(p["out_trade_no"]), paid_at=paid_at)


async def close_overdue(session: AsyncSession, *, now: datetime | None = None, limit: int = 200) -> int:
    """Close unpaid recharges past their deadline, in every tenant; returns how many.

    Each closes its open payment at the gateway first; a payment the gateway says was just
    made leaves the recharge open for its ``payment.succeeded`` to credit. Each recharge in a
    savepoint of its own, so one unreachable gateway stops nothing else; two sweepers close
    each recharge once (conditional update)."""
    now = now or clock.now()
    due = (await session.execute(
        select(Recharge.id, Recharge.tenant_id).where(Recharge.status == "pending_payment", Recharge.pay_deadline < now)
        .order_by(Recharge.pay_deadline).limit(limit))).all()
    scopes: dict[int, TenantScope] = {}
    done = 0
    for recharge_id, tenant_id in due:
        try:
            async with session.begin_nested():
                if tenant_id not in scopes:
                    scopes[tenant_id] = await _scope_of(session, tenant_id)
                scope = scopes[tenant_id]
                paid = False
                for pay in await payments_service.payments_for_source(session, scope, SOURCE_TYPE, str(recharge_id)):
                    if pay.status == "pending":
                        pay = await payments_service.close_payment(session, scope, pay.id, cause="recharge_timeout")
                    paid = paid or pay.status == "succeeded"
                if not paid and await _Recharges(session, tenant_id).move(recharge_id, "pending_payment", "closed"):
                    done += 1
        except Exception:
            log.exception("unpaid recharge not closed", extra={"recharge_id": recharge_id})
    return done


# -- principal refunds ---------------------------------------------------------------------------------------


async def refundable_fen(session: AsyncSession, scope: TenantScope, customer_id: int) -> int:
    """Principal that can go back now: the principal, at most what paid recharges still hold."""
    wallet = await balances(session, scope, customer_id)
    through = sum(r.pay_fen - r.refunded_fen for r in await _Recharges(session, scope.id).refundable(customer_id))
    return max(0, min(wallet.principal_fen, through))


async def get_refund(session: AsyncSession, scope: TenantScope, refund_id: int, *,
                     customer_id: int | None = None) -> BalanceRefund:
    r = await _Refunds(session, scope.id).fresh(refund_id)
    if r is None or (customer_id is not None and r.customer_id != customer_id):
        raise NotFound("balance_refund_not_found", "余额退款申请不存在", "Balance refund not found")
    return r


async def refund_parts(session: AsyncSession, scope: TenantScope, refund_id: int) -> list[BalanceRefundPart]:
    return await _Refunds(session, scope.id).parts(refund_id)


async def list_refunds(session: AsyncSession, scope: TenantScope, *, customer_id: int | None = None,
                       status: str | None = None, offset: int = 0, limit: int = 20) -> tuple[list[BalanceRefund], int]:
    return await _Refunds(session, scope.id).page(customer_id=customer_id, status=status, offset=offset, limit=limit)


async def open_refund(session: AsyncSession, scope: TenantScope, customer_id: int) -> BalanceRefund | None:
    return await _Refunds(session, scope.id).open_of(customer_id)


def _clean_reason(value: str | None, field_name: str = "reason") -> str:
    text = " ".join(str(value or "").split())
    if len(text) > MAX_REASON or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise _bad(field_name, "wallet_reason_invalid", f"原因最多 {MAX_REASON} 个字", f"At most {MAX_REASON} characters")
    return text


async def request_refund(session: AsyncSession, scope: TenantScope, customer_id: int, *, amount_fen: int | None = None,
                         reason: str | None = None) -> BalanceRefund:
    """A member asks for principal back (``None``: all that can go back). One open request at a
    time (409 ``balance_refund_open``); staff approve or reject it."""
    settings = await wallet_settings(session, scope)
    if not settings.refund_enabled:
        raise Conflict("balance_refund_disabled", "本店暂不支持余额退款，请联系客服", "This shop does not refund balances; contact us")
    text = _clean_reason(reason)
    can = await refundable_fen(session, scope, customer_id)
    if amount_fen is None:
        amount_fen = can
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        if can <= 0:
            raise Conflict("balance_refund_nothing", "没有可退的储值本金", "There is no principal to refund")
        raise _bad("amount_fen", "balance_refund_amount_invalid", "退款金额需大于 0", "The amount must be positive")
    if amount_fen > can:
        raise Conflict("balance_refund_exceeds", f"最多可退 ¥{yuan(can)}（赠送金不可退）",
                       f"At most ¥{yuan(can)} can be refunded (bonus is not refundable)", extra={"refundable_fen": can})
    now = clock.now()
    values = {"tenant_id": scope.id, "customer_id": customer_id, "amount_fen": amount_fen, "status": "pending",
              "reason": text, "reject_reason": "", "created_at": now, "updated_at": now}
    stmt = _insert_ignore(session, BalanceRefund).returning(BalanceRefund.id)
    for _attempt in range(8):
        if await open_refund(session, scope, customer_id) is not None:
            raise Conflict("balance_refund_open", "已有一笔处理中的余额退款申请", "A balance refund request is already open")
        values["refund_no"] = _new_no(scope)
        new_id = (await session.execute(stmt.values(**values))).scalar_one_or_none()
        if new_id is not None:
            return await get_refund(session, scope, int(new_id))
    raise Conflict("balance_refund_open", "已有一笔处理中的余额退款申请", "A balance refund request is already open")


def _refund_view(r: BalanceRefund) -> dict[str, Any]:
    return {"refund_no": r.refund_no, "customer_id": r.customer_id, "amount_fen": r.amount_fen, "status": r.status}


async def approve_refund(session: AsyncSession, scope: TenantScope, refund_id: int) -> BalanceRefund:
    """Staff agree: the principal is held (``wallet.hold``) and sent back through the member's
    paid recharges, newest first, one gateway refund per recharge. 409 when the principal
    (or what the recharges can still return) no longer covers the request."""
    repo = _Refunds(session, scope.id)
    r = await repo.fresh(refund_id, for_update=True)
    if r is None:
        raise NotFound("balance_refund_not_found", "余额退款申请不存在", "Balance refund not found")
    if r.status != "pending":
        raise _illegal(r, "refunding")
    staff = current_actor()
    async with session.begin_nested():
        if not await repo.move(r.id, "pending", "refunding", decided_by=_staff_id(staff), decided_at=clock.now()):
            raise _changed()
        try:
            await ledger.post(session, scope.id, source_key=f"balance_refund:{r.id}:hold", kind="refund_hold",
                              memo=f"余额退款 {r.refund_no}",
                              postings=[debit(principal_account(r.customer_id), r.amount_fen),
                                        credit(hold_account(r.customer_id), r.amount_fen)])
        except ledger.InsufficientBalance as exc:
            raise Conflict("balance_refund_exceeds", "储值本金已不足申请的退款金额，请拒绝后让顾客重新申请",
                           "The principal no longer covers this refund; reject it and let the member ask again",
                           extra={"available_fen": exc.available_fen}) from exc
        recharges = _Recharges(session, scope.id)
        left = r.amount_fen
        seq = 0
        for rc in await recharges.refundable(r.customer_id):
            take = min(left, rc.pay_fen - rc.refunded_fen)
            if take <= 0:
                continue
            if not await recharges.take_refund(rc.id, take):
                raise _changed()
            seq += 1
            part = BalanceRefundPart(tenant_id=scope.id, balance_refund_id=r.id, recharge_id=rc.id, amount_fen=take,
                                     status="pending")
            session.add(part)
            await session.flush()
            assert rc.payment_id is not None
            refund = await payments_service.refund(
                session, scope, payment_id=rc.payment_id, amount_fen=take, out_refund_no=f"BR{r.refund_no}{seq:02d}",
                reason=f"余额退款 {r.refund_no}：{r.reason}"[:80] if r.reason else f"余额退款 {r.refund_no}",
                source_type=REFUND_SOURCE_TYPE, source_id=str(part.id))
            part.refund_id = refund.id
            left -= take
            if left == 0:
                break
        if left > 0:
            raise Conflict("balance_refund_exceeds", "可原路退回的充值金额不足，请拒绝后让顾客重新申请",
                           "The member's recharges cannot carry this refund back; reject it",
                           extra={"missing_fen": left})
        await session.flush()
        audit.record(session, tenant_id=scope.id, action="members.wallet.refund.approve", object_type="balance_refund",
                     object_id=r.id, before={"status": "pending"}, after=_refund_view(r) | {"status": "refunding"})
    return await get_refund(session, scope, r.id)


async def reject_refund(session: AsyncSession, scope: TenantScope, refund_id: int, reason: str) -> BalanceRefund:
    """Staff say no, with a reason; nothing was held, so nothing moves."""
    text = _clean_reason(reason, "reject_reason")
    if not text:
        raise _bad("reject_reason", "wallet_reason_required", "请填写拒绝原因", "Give a reason")
    repo = _Refunds(session, scope.id)
    r = await repo.fresh(refund_id, for_update=True)
    if r is None:
        raise NotFound("balance_refund_not_found", "余额退款申请不存在", "Balance refund not found")
    if r.status != "pending":
        raise _illegal(r, "rejected")
    if not await repo.move(r.id, "pending", "rejected", reject_reason=text, decided_by=_staff_id(current_actor()),
                           decided_at=clock.now()):
        raise _changed()
    audit.record(session, tenant_id=scope.id, action="members.wallet.refund.reject", object_type="balance_refund",
                 object_id=r.id, before={"status": "pending"}, after=_refund_view(r) | {"status": "rejected", "reason": text})
    await _notice(session, scope, r.customer_id, f"wallet_refund:{r.id}:rejected", "余额退款申请未通过", f"原因：{text}")
    return await get_refund(session, scope, r.id)


def _staff_id(actor: Actor) -> int | None:
    return actor.id if actor.kind == "staff" else None


def _illegal(r: BalanceRefund, to: str) -> Conflict:
    return Conflict("balance_refund_illegal_transition",
                    f"退款申请状态为「{REFUND_STATUS_ZH.get(r.status, r.status)}」，不能{'同意' if to == 'refunding' else '拒绝'}",
                    f"A {r.status} balance refund cannot become {to}", extra={"from_status": r.status, "to_status": to})


def _changed() -> Conflict:
    return Conflict("balance_refund_changed", "退款申请刚被他人处理，请刷新后重试", "Someone else just handled this; reload")


async def _notice(session: AsyncSession, scope: TenantScope, customer_id: int, key: str, title: str, body: str) -> None:
    await session.execute(_insert_ignore(session, MemberNotice).values(
        tenant_id=scope.id, customer_id=customer_id, kind="wallet", notice_key=key[:120], title=title[:80], body=body[:300],
        created_at=clock.now()))


async def _part_for_event(session: AsyncSession, event: outbox.Event,
                          ) -> tuple[TenantScope, BalanceRefundPart, BalanceRefund] | None:
    p = event.payload
    tenant_id = p.get("tenant_id") or event.tenant_id
    if p.get("source_type") != REFUND_SOURCE_TYPE or not str(p.get("source_id", "")).isdigit() or not tenant_id:
        return None
    scope = await _scope_of(session, int(tenant_id))
    repo = _Refunds(session, scope.id)
    part = await repo.part(int(p["source_id"]), for_update=True)
    if part is None or part.refund_id != p.get("refund_id"):
        log.error("a refund names a balance refund part that does not match", extra={"refund_id": p.get("refund_id")})
        return None
    r = await repo.fresh(part.balance_refund_id, for_update=True)
    assert r is not None
    return scope, part, r


async def _finish_refund(session: AsyncSession, scope: TenantScope, r: BalanceRefund) -> None:
    """Once no part is pending: ``refunded`` when every part went back, else ``failed``."""
    parts = await _Refunds(session, scope.id).parts(r.id)
    if any(pt.status == "pending" for pt in parts):
        return
    sent = sum(pt.amount_fen for pt in parts if pt.status == "succeeded")
    to = "refunded" if all(pt.status == "succeeded" for pt in parts) else "failed"
    if await _Refunds(session, scope.id).move(r.id, "refunding", to):
        if to == "refunded":
            await _notice(session, scope, r.customer_id, f"wallet_refund:{r.id}:refunded", "余额退款已原路退回",
                          f"¥{yuan(sent)} 已退回您的支付账户")
        else:
            await _notice(session, scope, r.customer_id, f"wallet_refund:{r.id}:failed", "余额退款未能完成",
                          f"¥{yuan(sent)} 已退回支付账户，其余 ¥{yuan(r.amount_fen - sent)} 已返还到储值余额")


@outbox.on("refund.succeeded")
async def _on_refund_succeeded(session: AsyncSession, event: outbox.Event) -> None:
    found = await _part_for_event(session, event)
    if found is None:
        return
    scope, part, r = found
    if not await _Refunds(session, scope.id).move_part(part.id, "pending", "succeeded"):
        return
    await ledger.post(session, scope.id, source_key=f"balance_refund_part:{part.id}", kind="refund_paid",
                      memo=f"余额退款 {r.refund_no}", postings=[debit(hold_account(r.customer_id), part.amount_fen),
                                                               credit(CASH, part.amount_fen)])
    await _finish_refund(session, scope, r)


@outbox.on("refund.failed")
async def _on_refund_failed(session: AsyncSession, event: outbox.Event) -> None:
    found = await _part_for_event(session, event)
    if found is None:
        return
    scope, part, r = found
    if not await _Refunds(session, scope.id).move_part(part.id, "pending", "failed"):
        return
    to = await owner(session, scope, r.customer_id)
    await ledger.post(session, scope.id, source_key=f"balance_refund_part:{part.id}:restore", kind="refund_restore",
                      memo=f"余额退款 {r.refund_no} 失败", postings=[debit(hold_account(r.customer_id), part.amount_fen),
                                                                   credit(principal_account(to), part.amount_fen)])
    if not await _Recharges(session, scope.id).give_refund_back(part.recharge_id, part.amount_fen):
        log.error("a failed balance refund could not return its recharge's refunded amount", extra={"part_id": part.id})
    await _finish_refund(session, scope, r)


# -- staff adjustments -----------------------------------------------------------------------------------------


async def adjust(session: AsyncSession, scope: TenantScope, customer_id: int, amount_fen: int, *, bucket: str = "bonus",
                 reason: str, token: str | None = None) -> ledger.Posted:
    """Add (> 0) or take (< 0) ``amount_fen`` of one bucket (``principal`` or ``bonus``), with a
    reason; audited. ``token`` makes a retried form post once (source key
    ``adjust:<customer>:<token>``).
    Taking more than the bucket holds is 409 ``insufficient_balance``."""
    if bucket not in BUCKETS:
        raise _bad("bucket", "wallet_bucket_invalid", "请选择调整本金或赠送金", "bucket must be principal or bonus")
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen == 0 or abs(amount_fen) > MAX_AMOUNT_FEN:
        raise _bad("amount_fen", "wallet_adjust_amount_invalid", "调整金额需为非零金额，最多 100000 元",
                   "The amount must be non-zero and at most ¥100,000")
    text = _clean_reason(reason)
    if not text:
        raise _bad("reason", "wallet_reason_required", "请填写调整原因", "Give a reason")
    if token is not None and (not 8 <= len(token) <= 64 or not token.replace("-", "").replace("_", "").isalnum()):
        raise _bad("token", "wallet_adjust_token_invalid", "请求无效，请刷新页面后重试", "The form token is invalid")
    await members_service.ensure_member(session, scope, customer_id)
    account = principal_account(customer_id) if bucket == "principal" else bonus_account(customer_id)
    legs = ([debit(ADJUST_EXPENSE, amount_fen), credit(account, amount_fen)] if amount_fen > 0
            else [debit(account, -amount_fen), credit(ADJUST_EXPENSE, -amount_fen)])
    key = f"adjust:{customer_id}:{token or secrets.token_hex(12)}"
    before = await balances(session, scope, customer_id)
    posted = await ledger.post(session, scope.id, source_key=key, kind="adjust", memo=text, postings=legs)
    if posted.created:
        after = await balances(session, scope, customer_id)
        audit.record(session, tenant_id=scope.id, action="members.wallet.adjust", object_type="wallet", object_id=customer_id,
                     before={"principal_fen": before.principal_fen, "bonus_fen": before.bonus_fen},
                     after={"principal_fen": after.principal_fen, "bonus_fen": after.bonus_fen, "bucket": bucket,
                            "amount_fen": amount_fen, "reason": text})
    return posted


# -- merged customers ----------------------------------------------------------------------------------------


async def merge(session: AsyncSession, scope: TenantScope, *, survivor_id: int, merged_id: int) -> ledger.Posted | None:
    """Move the merged customer's principal and bonus (and paid recharges, for later principal
    refunds) to the survivor, once. Principal held by a refund in progress stays where it is
    and finishes there."""
    if survivor_id == merged_id:
        return None
    loser = await balances(session, scope, merged_id)
    # The loser's Idempotency-Keys are dropped: they could clash with the survivor's, and no
    # retry of the loser's requests can come any more.
    await session.execute(update(Recharge).where(Recharge.tenant_id == scope.id, Recharge.customer_id == merged_id)
                          .values(customer_id=survivor_id, idempotency_key=None).execution_options(synchronize_session=False))
    if loser.total_fen == 0:
        return None
    # Keyed by the loser's ledger position: a replayed event finds the wallet empty and posts
    # nothing; money that reaches the loser later (a refund of an old order) moves on a new key.
    last = (await session.execute(
        select(func.max(LedgerEntry.id)).join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerEntry.tenant_id == scope.id, LedgerAccount.owner_type == "customer",
               LedgerAccount.owner_id == merged_id))).scalar_one()
    return await ledger.post(session, scope.id, source_key=f"merge:{merged_id}:{survivor_id}:{last}", kind="merge",
                             memo=f"客户 #{merged_id} 合并到 #{survivor_id}", postings=[
                                 debit(principal_account(merged_id), loser.principal_fen),
                                 credit(principal_account(survivor_id), loser.principal_fen),
                                 debit(bonus_account(merged_id), loser.bonus_fen),
                                 credit(bonus_account(survivor_id), loser.bonus_fen)])


@outbox.on("customer.merged")
async def _on_customer_merged(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    tenant_id = p.get("tenant_id") or event.tenant_id
    if not tenant_id or not p.get("survivor_id") or not p.get("merged_id"):
        return
    scope = await _scope_of(session, int(tenant_id))
    await merge(session, scope, survivor_id=int(p["survivor_id"]), merged_id=int(p["merged_id"]))


# -- a member's summary ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalletSummary:
    """What the member centre and the console's member page show about a wallet."""

    balance: WalletBalance
    refundable_fen: int
    open_refund: BalanceRefund | None
    entries: list[WalletEntry] = field(default_factory=list)


async def summary(session: AsyncSession, scope: TenantScope, customer_id: int, *, limit: int = 20) -> WalletSummary:
    return WalletSummary(balance=await balances(session, scope, customer_id),
                         refundable_fen=await refundable_fen(session, scope, customer_id),
                         open_refund=await open_refund(session, scope, customer_id),
                         entries=await history(session, scope, customer_id, limit=limit))
