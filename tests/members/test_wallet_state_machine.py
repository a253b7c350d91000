"""A Hypothesis state machine of the stored-value ledger.

Rules recharge (packages with a bonus, credited as ``payment.succeeded`` credits them),
spend in the configured ratio (and overspend: refused), overdraw one bucket on purpose
(refused), give back part of a spend, cancel a whole spend (the ledger's mirror image),
replay a used source key, adjust either bucket either way, change the spending ratio and
merge one member into the other — for two members of one tenant, every step through the real
service in its own unit of work, as separate requests would be. A model predicts each
member's principal and bonus. After every step:

* each member's balances equal the model and are never negative;
* every account of the tenant equals the signed sum of its entries (``check_account``), and
  the trial balance is zero (every journal balances);
* the statement's newest running balance equals the balance, and its rows add up to it;
* a cancelled spend's reversal is the exact mirror of the spend (symmetric reversal).

Hypothesis drives the machine from a worker thread; each step's coroutine runs on the test's
event loop (where the database engine lives) and the thread waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from siyu.customers import service as customers_service
from siyu.kit import ledger
from siyu.kit.errors import DomainError
from siyu.kit.ledger import LedgerAccount, LedgerEntry
from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope
from siyu.members import wallet
from siyu.tenants import service as tenants_service
from tests.conftest import unique, unique_phone

_keys = itertools.count(1)
_payments = itertools.count(10**9)


@dataclass
class MSpend:
    key: str
    customer: int
    principal: int
    bonus: int
    #: What has not been given back yet.
    out_principal: int
    out_bonus: int


@dataclass
class Shop:
    runtime: Runtime
    scope: TenantScope
    customers: list[int]
    packages: list[tuple[int, int, int]]  # (id, pay, bonus)


async def _make_shop(runtime: Runtime, tenant_factory: Any) -> Shop:
    t = await tenant_factory("储值状态机")
    async with runtime.db.uow() as s:
        scope = tenants_service.scope_of(await tenants_service.get_tenant(s, t.id))
        packages = []
        for pay, bonus in ((1000, 100), (3000, 777), (500, 0)):
            p = await wallet.create_package(s, scope, name=f"充{pay}", pay_fen=pay, bonus_fen=bonus)
            packages.append((p.id, pay, bonus))
    return Shop(runtime, scope, [], packages)


async def _customers(shop: Shop) -> list[int]:
    out = []
    async with shop.runtime.db.uow() as s:
        for _ in range(2):
            c = await customers_service.import_customer(s, shop.scope, phone=unique_phone(), nickname=unique("储值"))
            await s.flush()
            out.append(c.id)
    return out


async def _in_uow(shop: Shop, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **kw: Any) -> Any:
    async with shop.runtime.db.uow() as s:
        return await fn(s, shop.scope, *args, **kw)


async def _refused(shop: Shop, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **kw: Any) -> str:
    """Run a step that must be refused; its unit of work rolls back. Returns the error code."""
    try:
        await _in_uow(shop, fn, *args, **kw)
    except DomainError as exc:
        return exc.code
    raise AssertionError(f"{fn.__name__} was not refused")


async def _recharge(session: Any, scope: TenantScope, customer: int, package_id: int) -> None:
    made = await wallet.create_recharge(session, scope, customer, package_id=package_id)
    outcome = await wallet.apply_recharge_payment(session, scope, recharge_id=made.recharge.id, payment_id=next(_payments),
                                                  amount_fen=made.recharge.pay_fen, out_trade_no="SM")
    assert outcome == "paid"


async def _state(shop: Shop, customer: int) -> tuple[wallet.WalletBalance, list[wallet.WalletEntry]]:
    async with shop.runtime.db.uow(readonly=True) as s:
        return await wallet.balances(s, shop.scope, customer), await wallet.history(s, shop.scope, customer, limit=200)


async def _ledger_sound(shop: Shop) -> None:
    async with shop.runtime.db.uow(readonly=True) as s:
        for a in (await s.execute(select(LedgerAccount).where(LedgerAccount.tenant_id == shop.scope.id))).scalars():
            assert await ledger.check_account(s, shop.scope.id, a.code), a.code
            if not a.allow_negative:
                assert a.balance_fen >= 0, (a.code, a.balance_fen)
        assert await ledger.trial_balance(s, shop.scope.id) == 0


async def _entries(shop: Shop, source_key: str) -> dict[str, int]:
    async with shop.runtime.db.uow(readonly=True) as s:
        j = await ledger.journal_by_source(s, shop.scope.id, source_key)
        assert j is not None, source_key
        rows = (await s.execute(select(LedgerAccount.code, LedgerEntry.amount_fen).join(
            LedgerAccount, LedgerAccount.id == LedgerEntry.account_id).where(LedgerEntry.journal_id == j.id))).all()
    return {code: int(fen) for code, fen in rows}


def make_machine(call: Callable[[Coroutine[Any, Any, Any]], Any], shop: Shop) -> type[RuleBasedStateMachine]:
    class WalletLedger(RuleBasedStateMachine):
        spends = Bundle("spends")

        @initialize()
        def start(self) -> None:
            # Two new members per example, so every example (and its replays) starts empty.
            shop.customers = call(_customers(shop))
            self.model: dict[int, list[int]] = {c: [0, 0] for c in shop.customers}
            self.ratio = 0
            call(_in_uow(shop, wallet.update_settings, bonus_share_bp=0))

        @rule(i=st.integers(0, 1), p=st.integers(0, 2))
        def recharge(self, i: int, p: int) -> None:
            c = shop.customers[i]
            package_id, pay, bonus = shop.packages[p]
            call(_in_uow(shop, _recharge, c, package_id))
            self.model[c][0] += pay
            self.model[c][1] += bonus

        @rule(bp=st.sampled_from([0, 2500, 5000, 10000]))
        def set_ratio(self, bp: int) -> None:
            call(_in_uow(shop, wallet.update_settings, bonus_share_bp=bp))
            self.ratio = bp

        @rule(target=spends, i=st.integers(0, 1), amount=st.integers(1, 5000))
        def spend(self, i: int, amount: int) -> MSpend | None:
            c = shop.customers[i]
            p_have, b_have = self.model[c]
            key = f"sm:spend:{next(_keys)}"
            if amount > p_have + b_have:
                # Split as if it could be paid; the bucket that cannot pay its part refuses it.
                p, b = amount, 0
                assert call(_refused(shop, wallet.spend, c, principal_fen=p, bonus_fen=b, source_key=key)) == \
                    "insufficient_balance"
                return None
            p, b = wallet.split_spend(amount, p_have, b_have, self.ratio)
            call(_in_uow(shop, wallet.spend, c, principal_fen=p, bonus_fen=b, source_key=key))
            self.model[c][0] -= p
            self.model[c][1] -= b
            return MSpend(key, c, p, b, p, b)

        @rule(i=st.integers(0, 1), bucket=st.sampled_from(["principal", "bonus"]), more=st.integers(1, 50))
        def overdraw_one_bucket(self, i: int, bucket: str, more: int) -> None:
            c = shop.customers[i]
            p_have, b_have = self.model[c]
            parts = {"principal_fen": p_have + more, "bonus_fen": 0} if bucket == "principal" else \
                {"principal_fen": 0, "bonus_fen": b_have + more}
            code = call(_refused(shop, wallet.spend, c, source_key=f"sm:over:{next(_keys)}", **parts))
            assert code == "insufficient_balance"

        @rule(sp=spends, share=st.integers(1, 100))
        def give_back_part(self, sp: MSpend | None, share: int) -> None:
            if sp is None or sp.out_principal + sp.out_bonus == 0:
                return
            p = sp.out_principal * share // 100
            b = sp.out_bonus * share // 100
            key = f"{sp.key}:back:{next(_keys)}"
            posted = call(_in_uow(shop, wallet.give_back, sp.customer, principal_fen=p, bonus_fen=b, source_key=key))
            assert (posted is None) == (p + b == 0)
            sp.out_principal -= p
            sp.out_bonus -= b
            self.model[sp.customer][0] += p
            self.model[sp.customer][1] += b
            if posted is not None:  # the same key again gives back nothing more
                again = call(_in_uow(shop, wallet.give_back, sp.customer, principal_fen=p, bonus_fen=b, source_key=key))
                assert again is not None and not again.created

        @rule(sp=consumes(spends))
        def cancel_whole_spend(self, sp: MSpend | None) -> None:
            if sp is None or (sp.out_principal, sp.out_bonus) != (sp.principal, sp.bonus):
                return  # only an untouched spend is cancelled whole (as an unpaid order is)

            async def reverse(session: Any, scope: TenantScope) -> ledger.Posted:
                j = await ledger.journal_by_source(session, scope.id, sp.key)
                assert j is not None
                return await ledger.reverse(session, scope.id, j, source_key=f"{sp.key}:cancel")

            call(_in_uow(shop, reverse))
            original = call(_entries(shop, sp.key))
            mirror = call(_entries(shop, f"{sp.key}:cancel"))
            assert mirror == {code: -fen for code, fen in original.items()}
            self.model[sp.customer][0] += sp.principal
            self.model[sp.customer][1] += sp.bonus

        @rule(sp=spends)
        def replay_a_spend(self, sp: MSpend | None) -> None:
            if sp is None:
                return
            posted = call(_in_uow(shop, wallet.spend, sp.customer, principal_fen=sp.principal, bonus_fen=sp.bonus,
                                  source_key=sp.key))
            assert not posted.created

        @rule(i=st.integers(0, 1), bucket=st.sampled_from(["principal", "bonus"]),
              amount=st.integers(-3000, 3000).filter(lambda n: n != 0))
        def adjust(self, i: int, bucket: str, amount: int) -> None:
            c = shop.customers[i]
            slot = 0 if bucket == "principal" else 1
            if self.model[c][slot] + amount < 0:
                assert call(_refused(shop, wallet.adjust, c, amount, bucket=bucket, reason="状态机")) == "insufficient_balance"
                return
            call(_in_uow(shop, wallet.adjust, c, amount, bucket=bucket, reason="状态机"))
            self.model[c][slot] += amount

        @rule()
        def merge_second_into_first(self) -> None:
            survivor, loser = shop.customers
            call(_in_uow(shop, wallet.merge, survivor_id=survivor, merged_id=loser))
            if sum(self.model[loser]):
                self.model[survivor] = [a + b for a, b in zip(self.model[survivor], self.model[loser], strict=True)]
                self.model[loser] = [0, 0]
            # A second merge of the same pair (an event delivered twice) moves nothing.
            call(_in_uow(shop, wallet.merge, survivor_id=survivor, merged_id=loser))

        @invariant()
        def balances_match_the_model_and_the_ledger(self) -> None:
            for c in shop.customers:
                b, rows = call(_state(shop, c))
                assert [b.principal_fen, b.bonus_fen] == self.model[c], (c, b, self.model[c])
                assert b.principal_fen >= 0 and b.bonus_fen >= 0 and b.total_fen == b.principal_fen + b.bonus_fen
                if rows:
                    assert rows[0].balance_after_fen == b.total_fen
                    assert sum(r.total_fen for r in rows) == b.total_fen or len(rows) == 200
            call(_ledger_sound(shop))

    return WalletLedger


async def test_wallet_ledger_state_machine(runtime: Runtime, tenant_factory: Any) -> None:
    shop = await _make_shop(runtime, tenant_factory)
    loop = asyncio.get_running_loop()

    def call(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=120)

    machine = make_machine(call, shop)
    conf = settings(max_examples=25, stateful_step_count=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    await loop.run_in_executor(None, lambda: run_state_machine_as_test(machine, settings=conf))
