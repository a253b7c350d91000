"""The double-entry money ledger: accounts, journals and entries.

Every movement of money that the platform owes or holds is a **journal** of two or more
**entries** whose amounts add up to zero (debits positive, credits negative). A journal
carries a ``source_key`` that is unique per tenant, so posting the same business event
twice (a retried handler, a replayed notification) posts it once: the second call finds
the first journal and returns it.

Accounts keep a running ``balance_fen`` on their *normal* side: debit-normal kinds
(``asset``, ``expense``) grow with debits, credit-normal kinds (``liability``, ``income``,
``equity``) with credits. A customer's wallet is a liability (the shop owes it), so a
recharge credits it and its balance goes up. The running balance is changed by a
conditional update in account-id order, and an account that may not go negative
(``allow_negative=False``) refuses a posting that would take it below zero — under any
number of concurrent posters, because the check is part of the ``UPDATE``. The balance
always equals the signed sum of the account's entries; ``check_account`` proves it.

Entries are never edited or deleted: a correction is another journal (:func:`reverse`
posts the mirror image of a journal under its own source key).

This module holds the mechanism only. Chart-of-accounts codes belong to the modules that
post (members: ``wallet.principal:<customer>``; finance extends the chart).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, BigID, IdMixin, TenantMixin, dialect_insert
from siyu.kit.errors import Conflict

KINDS = ("asset", "liability", "income", "expense", "equity")
DEBIT_NORMAL = frozenset({"asset", "expense"})


class LedgerAccount(IdMixin, TenantMixin, Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code", name="uq_ledger_accounts_code"),
        Index("ix_ledger_accounts_owner", "tenant_id", "owner_type", "owner_id"),
    )

    #: Stable name in the chart of accounts, e.g. ``wallet.principal:42`` or ``cash.gateway``.
    code: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(12))  # asset | liability | income | expense | equity
    name: Mapped[str] = mapped_column(String(80), default="")
    owner_type: Mapped[str | None] = mapped_column(String(20), nullable=True)
    owner_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    #: Running balance on the account's normal side (see the module docstring).
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    allow_negative: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class LedgerJournal(IdMixin, TenantMixin, Base):
    __tablename__ = "ledger_journals"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_key", name="uq_ledger_journals_source"),
        Index("ix_ledger_journals_created", "tenant_id", "created_at"),
    )

    #: What caused it, unique per tenant (``recharge:17``, ``order:88:balance``...).
    source_key: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(String(200), default="")
    #: The journal this one reverses, if any.
    reverses_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("ledger_journals.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class LedgerEntry(IdMixin, TenantMixin, Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_account", "tenant_id", "account_id", "id"),
        Index("ix_ledger_entries_journal", "journal_id"),
    )

    journal_id: Mapped[int] = mapped_column(BigID, ForeignKey("ledger_journals.id"))
    account_id: Mapped[int] = mapped_column(BigID, ForeignKey("ledger_accounts.id"))
    #: Debit positive, credit negative; a journal's entries sum to zero.
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    #: The account's normal-side balance right after this entry (for statements).
    balance_after_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """An account to post to, created on first use."""

    code: str
    kind: str
    name: str = ""
    owner_type: str | None = None
    owner_id: int | None = None
    allow_negative: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown account kind {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg: ``amount_fen`` > 0 debits the account, < 0 credits it."""

    account: AccountSpec
    amount_fen: int


def debit(account: AccountSpec, fen: int) -> Posting:
    return Posting(account, fen)


def credit(account: AccountSpec, fen: int) -> Posting:
    return Posting(account, -fen)


class InsufficientBalance(Conflict):
    """A posting would take an account that may not go negative below zero."""

    def __init__(self, account_code: str, available_fen: int, needed_fen: int) -> None:
        super().__init__("insufficient_balance", "余额不足", "Insufficient balance",
                         extra={"account": account_code, "available_fen": available_fen, "needed_fen": needed_fen})
        self.account_code = account_code
        self.available_fen = available_fen
        self.needed_fen = needed_fen


def normal_delta(kind: str, amount_fen: int) -> int:
    """How a signed entry amount moves an account's normal-side balance."""
    return amount_fen if kind in DEBIT_NORMAL else -amount_fen


async def ensure_account(session: AsyncSession, tenant_id: int, spec: AccountSpec) -> LedgerAccount:
    """The account with ``spec.code``, created if missing (safe when two create it at once)."""
    found = await _account_by_code(session, tenant_id, spec.code)
    if found is not None:
        return found
    values = {"tenant_id": tenant_id, "code": spec.code, "kind": spec.kind, "name": spec.name[:80],
              "owner_type": spec.owner_type, "owner_id": spec.owner_id, "balance_fen": 0,
              "allow_negative": spec.allow_negative, "created_at": clock.now()}
    await session.execute(dialect_insert(session, LedgerAccount).values(**values).on_conflict_do_nothing())
    found = await _account_by_code(session, tenant_id, spec.code)
    assert found is not None
    return found


async def _account_by_code(session: AsyncSession, tenant_id: int, code: str) -> LedgerAccount | None:
    stmt = select(LedgerAccount).where(LedgerAccount.tenant_id == tenant_id, LedgerAccount.code == code)
    return (await session.execute(stmt)).scalar_one_or_none()


async def journal_by_source(session: AsyncSession, tenant_id: int, source_key: str) -> LedgerJournal | None:
    stmt = select(LedgerJournal).where(LedgerJournal.tenant_id == tenant_id, LedgerJournal.source_key == source_key)
    return (await session.execute(stmt)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Posted:
    journal: LedgerJournal
    #: False when a journal with this source key already existed (nothing was posted now).
    created: bool


async def post(session: AsyncSession, tenant_id: int, *, source_key: str, kind: str, postings: Sequence[Posting],
               memo: str = "", reverses_id: int | None = None) -> Posted:
    """Post one balanced journal, once per ``source_key``.

    Raises :class:`InsufficientBalance` (409 ``insufficient_balance``) when an account that
    may not go negative would; nothing of the journal stays behind then (such postings run in
    a savepoint), even if the caller catches the error. Postings of zero are dropped; several
    postings to one account are netted.
    """
    if not source_key or len(source_key) > 120:
        raise ValueError("a journal needs a source key of 1–120 characters")
    if sum(p.amount_fen for p in postings) != 0:
        raise ValueError(f"journal {source_key!r} does not balance: {[(p.account.code, p.amount_fen) for p in postings]}")
    existing = await journal_by_source(session, tenant_id, source_key)
    if existing is not None:
        return Posted(existing, False)
    net: dict[str, int] = {}
    specs: dict[str, AccountSpec] = {}
    for p in postings:
        net[p.account.code] = net.get(p.account.code, 0) + p.amount_fen
        specs.setdefault(p.account.code, p.account)
    legs = {code: amt for code, amt in net.items() if amt != 0}
    now = clock.now()
    # Accounts first (creating one is harmless if this journal turns out to be a repeat).
    accounts = {code: await ensure_account(session, tenant_id, specs[code]) for code in legs}
    refusable = any(not accounts[c].allow_negative and normal_delta(accounts[c].kind, legs[c]) < 0 for c in legs)
    if refusable:
        # A refusal must take the journal row and any balance already moved back with it,
        # even when the caller catches the error and carries on with its transaction.
        async with session.begin_nested():
            inserted = await _insert_journal(session, tenant_id, source_key, kind, memo, reverses_id, now)
            if inserted is not None:
                await _apply(session, tenant_id, inserted, accounts, legs, now)
    else:
        inserted = await _insert_journal(session, tenant_id, source_key, kind, memo, reverses_id, now)
        if inserted is not None:
            await _apply(session, tenant_id, inserted, accounts, legs, now)
    if inserted is None:
        winner = await journal_by_source(session, tenant_id, source_key)
        assert winner is not None
        return Posted(winner, False)
    journal = await session.get(LedgerJournal, inserted)
    assert journal is not None
    # The running balances changed under the ORM's feet: drop any cached account rows.
    for acct in accounts.values():
        session.expire(acct)
    return Posted(journal, True)


async def _insert_journal(session: AsyncSession, tenant_id: int, source_key: str, kind: str, memo: str,
                          reverses_id: int | None, now: datetime) -> int | None:
    """The journal row, before any balance moves: the unique source key decides a race between
    two posters, and the loser (``None``) stops before it touched a balance."""
    stmt = (dialect_insert(session, LedgerJournal)
            .values(tenant_id=tenant_id, source_key=source_key, kind=kind[:40], memo=memo[:200],
                    reverses_id=reverses_id, created_at=now)
            .on_conflict_do_nothing().returning(LedgerJournal.id))
    value = (await session.execute(stmt)).scalar_one_or_none()
    return int(value) if value is not None else None


async def _apply(session: AsyncSession, tenant_id: int, journal_id: int, accounts: dict[str, LedgerAccount],
                 legs: dict[str, int], now: datetime) -> None:
    """Move the running balances (account-id order) and write the entries."""
    entries = []
    for code in sorted(legs, key=lambda c: accounts[c].id):  # lock rows in primary-key order
        acct = accounts[code]
        delta = normal_delta(acct.kind, legs[code])
        stmt = (update(LedgerAccount)
                .where(LedgerAccount.id == acct.id, LedgerAccount.tenant_id == tenant_id)
                .values(balance_fen=LedgerAccount.balance_fen + delta)
                .returning(LedgerAccount.balance_fen))
        if not acct.allow_negative and delta < 0:
            stmt = stmt.where(LedgerAccount.balance_fen + delta >= 0)
        after = (await session.execute(stmt)).scalar_one_or_none()
        if after is None:
            current = (await session.execute(
                select(LedgerAccount.balance_fen).where(LedgerAccount.id == acct.id))).scalar_one()
            raise InsufficientBalance(code, int(current), -delta)
        entries.append({"tenant_id": tenant_id, "journal_id": journal_id, "account_id": acct.id,
                        "amount_fen": legs[code], "balance_after_fen": int(after), "created_at": now})
    if entries:
        await session.execute(insert(LedgerEntry), entries)


async def reverse(session: AsyncSession, tenant_id: int, journal: LedgerJournal, *, source_key: str,
                  memo: str = "") -> Posted:
    """Post the mirror image of ``journal`` (every entry with its sign flipped)."""
    rows = (await session.execute(
        select(LedgerEntry, LedgerAccount).join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.journal_id == journal.id))).all()
    postings = [Posting(AccountSpec(a.code, a.kind, a.name, a.owner_type, a.owner_id, a.allow_negative), -e.amount_fen)
                for e, a in rows]
    return await post(session, tenant_id, source_key=source_key, kind=f"{journal.kind}.reversal"[:40],
                      postings=postings, memo=memo or f"冲销 {journal.source_key}"[:200], reverses_id=journal.id)


async def balance(session: AsyncSession, tenant_id: int, code: str) -> int:
    """An account's normal-side balance (0 for an account never posted to)."""
    stmt = select(LedgerAccount.balance_fen).where(LedgerAccount.tenant_id == tenant_id, LedgerAccount.code == code)
    value = (await session.execute(stmt)).scalar_one_or_none()
    return int(value or 0)


async def entries_of(session: AsyncSession, tenant_id: int, code: str, *, limit: int = 50,
                     before_id: int | None = None) -> list[tuple[LedgerEntry, LedgerJournal]]:
    """An account's statement, newest first (keyset pagination on the entry id)."""
    stmt = (select(LedgerEntry, LedgerJournal).join(LedgerJournal, LedgerJournal.id == LedgerEntry.journal_id)
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .where(LedgerEntry.tenant_id == tenant_id, LedgerAccount.code == code))
    if before_id is not None:
        stmt = stmt.where(LedgerEntry.id < before_id)
    rows = (await session.execute(stmt.order_by(LedgerEntry.id.desc()).limit(limit))).all()
    return [(e, j) for e, j in rows]


async def check_account(session: AsyncSession, tenant_id: int, code: str) -> bool:
    """Does the running balance equal the signed sum of the account's entries?"""
    acct = await _account_by_code(session, tenant_id, code)
    if acct is None:
        return True
    total = (await session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
                                   .where(LedgerEntry.account_id == acct.id))).scalar_one()
    return normal_delta(acct.kind, int(total)) == acct.balance_fen


async def trial_balance(session: AsyncSession, tenant_id: int) -> int:
    """The sum of every entry of the tenant: zero when every journal balances."""
    total = (await session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
                                   .where(LedgerEntry.tenant_id == tenant_id))).scalar_one()
    return int(total)
