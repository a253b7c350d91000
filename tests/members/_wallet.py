"""Helpers of the stored-value tests: recharge and pay through the sandbox like a member would,
read balances and the ledger, and check its invariants.

Recharges travel the real way: the service makes the recharge and opens its payment, the
member presses 确认支付 on the sandbox cashier, the signed notification comes back through
the outbox into the app, and ``payment.succeeded`` credits the wallet — all by draining the
outbox (the ``notifications`` fixture routes the sandbox's HTTP calls into the app).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from siyu.kit import ledger
from siyu.kit.context import Actor, actor_var
from siyu.kit.ledger import LedgerAccount
from siyu.members import wallet
from siyu.members.models import BalanceRefund, Recharge
from tests.conftest import drain_outbox
from tests.orders import _lifecycle as lc
from tests.orders.conftest import Buyer, OrderShop


def as_customer(shop: OrderShop, buyer: Buyer | None = None) -> Any:
    who = buyer or shop.buyer
    return actor_var.set(Actor("customer", who.customer_id, f"customer:{who.customer_id}", shop.scope.id))


def as_staff(shop: OrderShop) -> Any:
    return actor_var.set(Actor("staff", 1, "测试店长", shop.scope.id))


async def package(shop: OrderShop, pay_fen: int, bonus_fen: int = 0, *, name: str | None = None,
                  on_sale: bool = True) -> int:
    async with shop.runtime.db.uow() as s:
        p = await wallet.create_package(s, shop.scope, name=name or f"充{pay_fen // 100}送{bonus_fen // 100}",
                                        pay_fen=pay_fen, bonus_fen=bonus_fen, on_sale=on_sale)
        return p.id


async def settings(shop: OrderShop, **changes: Any) -> wallet.WalletSettings:
    async with shop.runtime.db.uow() as s:
        return await wallet.update_settings(s, shop.scope, **changes)


async def start(shop: OrderShop, buyer: Buyer | None = None, *, package_id: int | None = None,
                amount_fen: int | None = None, key: str | None = None) -> tuple[Recharge, str]:
    """A recharge and its open payment; returns (recharge, out_trade_no)."""
    who = buyer or shop.buyer
    token = as_customer(shop, who)
    try:
        async with shop.runtime.db.uow() as s:
            made = await wallet.create_recharge(s, shop.scope, who.customer_id, package_id=package_id,
                                                amount_fen=amount_fen, idempotency_key=key or secrets.token_hex(8))
            started = await wallet.pay_recharge(s, shop.scope, who.customer_id, made.recharge.id)
            s.expunge(made.recharge)
            return made.recharge, started.payment.out_trade_no
    finally:
        actor_var.reset(token)


async def recharge(shop: OrderShop, buyer: Buyer | None = None, *, package_id: int | None = None,
                   amount_fen: int | None = None) -> Recharge:
    """Recharge and pay through the sandbox; returns the recharge as stored afterwards."""
    r, out_trade_no = await start(shop, buyer, package_id=package_id, amount_fen=amount_fen)
    await lc.sandbox_pay(shop.runtime, out_trade_no)
    await drain_outbox(shop.runtime)
    got = await stored_recharge(shop, r.id)
    assert got.status == "paid", got.status
    return got


async def stored_recharge(shop: OrderShop, recharge_id: int) -> Recharge:
    async with shop.runtime.db.uow(readonly=True) as s:
        row = (await s.execute(select(Recharge).where(Recharge.id == recharge_id))).scalar_one()
        s.expunge(row)
        return row


async def stored_refund(shop: OrderShop, refund_id: int) -> BalanceRefund:
    async with shop.runtime.db.uow(readonly=True) as s:
        row = (await s.execute(select(BalanceRefund).where(BalanceRefund.id == refund_id))).scalar_one()
        s.expunge(row)
        return row


async def balance(shop: OrderShop, customer_id: int | None = None) -> wallet.WalletBalance:
    async with shop.runtime.db.uow(readonly=True) as s:
        return await wallet.balances(s, shop.scope, customer_id or shop.buyer.customer_id)


async def history(shop: OrderShop, customer_id: int | None = None, **kw: Any) -> list[wallet.WalletEntry]:
    async with shop.runtime.db.uow(readonly=True) as s:
        return await wallet.history(s, shop.scope, customer_id or shop.buyer.customer_id, **kw)


async def gift(shop: OrderShop, amount_fen: int, *, bucket: str = "principal", buyer: Buyer | None = None) -> None:
    """Put money in a wallet by a staff adjustment (no payment needed)."""
    token = as_staff(shop)
    try:
        async with shop.runtime.db.uow() as s:
            await wallet.adjust(s, shop.scope, (buyer or shop.buyer).customer_id, amount_fen, bucket=bucket,
                                reason="测试充值")
    finally:
        actor_var.reset(token)


async def journal(shop: OrderShop, source_key: str) -> ledger.LedgerJournal | None:
    async with shop.runtime.db.uow(readonly=True) as s:
        return await ledger.journal_by_source(s, shop.scope.id, source_key)


async def assert_ledger_sound(shop: OrderShop) -> None:
    """Every account of the shop equals the sum of its entries, none that may not go negative
    is, and the journals balance (the trial balance is zero)."""
    async with shop.runtime.db.uow(readonly=True) as s:
        accounts = (await s.execute(select(LedgerAccount).where(LedgerAccount.tenant_id == shop.scope.id))).scalars().all()
        for a in accounts:
            assert await ledger.check_account(s, shop.scope.id, a.code), a.code
            if not a.allow_negative:
                assert a.balance_fen >= 0, (a.code, a.balance_fen)
        assert await ledger.trial_balance(s, shop.scope.id) == 0
