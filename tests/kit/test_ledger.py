"""The double-entry ledger: journals balance, a source key posts once, running balances equal
the entries, and an account that may not go negative never does — however many post at once.

Every test works in a tenant id of its own (ledger rows need no tenant row), so tests never
see each other's accounts.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.kit import ledger
from siyu.kit.errors import DomainError
from siyu.kit.ledger import AccountSpec, credit, debit
from siyu.kit.runtime import Runtime

_tenant_ids = itertools.count(900_000_000)

CASH = AccountSpec("cash.gateway", "asset", "收款")
BONUS_EXPENSE = AccountSpec("expense.bonus", "expense", "赠送")


def wallet(customer: int) -> AccountSpec:
    return AccountSpec(f"wallet.principal:{customer}", "liability", "储值本金", "customer", customer, allow_negative=False)


def sales() -> AccountSpec:
    return AccountSpec("income.sales", "income", "销售")


async def _post(runtime: Runtime, tenant: int, key: str, *legs: ledger.Posting) -> ledger.Posted:
    async with runtime.db.uow() as s:
        return await ledger.post(s, tenant, source_key=key, kind="test", postings=list(legs))


async def _balance(runtime: Runtime, tenant: int, code: str) -> int:
    async with runtime.db.uow(readonly=True) as s:
        return await ledger.balance(s, tenant, code)


async def test_a_recharge_and_a_spend_move_the_liability_on_its_normal_side(runtime: Runtime) -> None:
    t = next(_tenant_ids)
    w = wallet(1)
    await _post(runtime, t, "recharge:1", debit(CASH, 100_000), credit(w, 100_000))
    await _post(runtime, t, "order:1", debit(w, 30_000), credit(sales(), 30_000))
    assert await _balance(runtime, t, w.code) == 70_000  # the shop owes ¥700
    assert await _balance(runtime, t, CASH.code) == 100_000
    assert await _balance(runtime, t, "income.sales") == 30_000
    async with runtime.db.uow(readonly=True) as s:
        assert await ledger.trial_balance(s, t) == 0
        for code in (w.code, CASH.code, "income.sales"):
            assert await ledger.check_account(s, t, code)
        statement = await ledger.entries_of(s, t, w.code)
    assert [(e.amount_fen, e.balance_after_fen, j.source_key) for e, j in statement] == [
        (30_000, 70_000, "order:1"), (-100_000, 100_000, "recharge:1")]


async def test_a_source_key_posts_once(runtime: Runtime) -> None:
    t = next(_tenant_ids)
    first = await _post(runtime, t, "recharge:7", debit(CASH, 500), credit(wallet(7), 500))
    again = await _post(runtime, t, "recharge:7", debit(CASH, 500), credit(wallet(7), 500))
    assert first.created and not again.created and again.journal.id == first.journal.id
    assert await _balance(runtime, t, wallet(7).code) == 500


async def test_an_unbalanced_journal_is_refused(runtime: Runtime) -> None:
    t = next(_tenant_ids)
    with pytest.raises(ValueError, match="does not balance"):
        await _post(runtime, t, "bad", debit(CASH, 500), credit(wallet(1), 499))


async def test_overdrawing_is_a_409_and_leaves_nothing_behind(runtime: Runtime) -> None:
    t = next(_tenant_ids)
    w = wallet(3)
    await _post(runtime, t, "recharge:3", debit(CASH, 1_000), credit(w, 1_000))
    with pytest.raises(ledger.InsufficientBalance) as err:
        await _post(runtime, t, "order:3", debit(w, 1_001), credit(sales(), 1_001))
    assert isinstance(err.value, DomainError) and err.value.status == 409 and err.value.code == "insufficient_balance"
    assert err.value.available_fen == 1_000 and err.value.needed_fen == 1_001
    assert await _balance(runtime, t, w.code) == 1_000
    async with runtime.db.uow(readonly=True) as s:
        assert await ledger.journal_by_source(s, t, "order:3") is None
        assert await ledger.trial_balance(s, t) == 0


async def test_a_reversal_mirrors_its_journal(runtime: Runtime) -> None:
    t = next(_tenant_ids)
    w = wallet(4)
    await _post(runtime, t, "recharge:4", debit(CASH, 2_000), credit(w, 2_000))
    spent = await _post(runtime, t, "order:4", debit(w, 1_500), credit(sales(), 1_500))
    async with runtime.db.uow() as s:
        back = await ledger.reverse(s, t, spent.journal, source_key="order:4:cancel")
        again = await ledger.reverse(s, t, spent.journal, source_key="order:4:cancel")
    assert back.created and not again.created and back.journal.reverses_id == spent.journal.id
    assert await _balance(runtime, t, w.code) == 2_000
    assert await _balance(runtime, t, "income.sales") == 0


async def test_fifty_concurrent_spends_against_a_balance_that_covers_one(runtime: Runtime) -> None:
    t = next(_tenant_ids)
    w = wallet(5)
    await _post(runtime, t, "recharge:5", debit(CASH, 10_000), credit(w, 10_000))

    async def spend(i: int) -> bool:
        try:
            await _post(runtime, t, f"order:{i}", debit(w, 8_000), credit(sales(), 8_000))
        except ledger.InsufficientBalance:
            return False
        return True

    results = await asyncio.gather(*(spend(i) for i in range(50)))
    assert sum(results) == 1
    assert await _balance(runtime, t, w.code) == 2_000
    async with runtime.db.uow(readonly=True) as s:
        assert await ledger.check_account(s, t, w.code)
        assert await ledger.trial_balance(s, t) == 0


async def test_the_same_source_key_posted_at_once_by_many_posts_once(runtime: Runtime) -> None:
    t = next(_tenant_ids)
    w = wallet(6)
    posted = await asyncio.gather(*(_post(runtime, t, "recharge:6", debit(CASH, 300), credit(w, 300)) for _ in range(20)))
    assert sum(p.created for p in posted) == 1
    assert await _balance(runtime, t, w.code) == 300


op = st.tuples(st.sampled_from(["recharge", "bonus", "spend", "reverse"]), st.integers(1, 3), st.integers(1, 50_000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=25))
async def test_balances_always_equal_their_entries_and_never_go_negative(runtime: Runtime,
                                                                         ops: list[tuple[str, int, int]]) -> None:
    t = next(_tenant_ids)
    expected: dict[int, int] = {1: 0, 2: 0, 3: 0}
    spends: list[tuple[int, int, ledger.LedgerJournal]] = []
    for n, (kind, customer, fen) in enumerate(ops):
        w = wallet(customer)
        if kind == "recharge":
            await _post(runtime, t, f"r{n}", debit(CASH, fen), credit(w, fen))
            expected[customer] += fen
        elif kind == "bonus":
            await _post(runtime, t, f"b{n}", debit(BONUS_EXPENSE, fen), credit(w, fen))
            expected[customer] += fen
        elif kind == "spend":
            try:
                p = await _post(runtime, t, f"s{n}", debit(w, fen), credit(sales(), fen))
            except ledger.InsufficientBalance:
                assert fen > expected[customer]
            else:
                assert fen <= expected[customer]
                expected[customer] -= fen
                spends.append((customer, fen, p.journal))
        elif spends:
            c, f, journal = spends.pop()
            async with runtime.db.uow() as s:
                await ledger.reverse(s, t, journal, source_key=f"x{n}")
            expected[c] += f
        for c, amount in expected.items():
            assert await _balance(runtime, t, wallet(c).code) == amount >= 0
    async with runtime.db.uow(readonly=True) as s:
        assert await ledger.trial_balance(s, t) == 0
        for c in expected:
            assert await ledger.check_account(s, t, wallet(c).code)


async def test_a_refused_posting_leaves_nothing_even_when_the_caller_carries_on(runtime: Runtime) -> None:
    t = next(_tenant_ids)
    w = wallet(8)
    await _post(runtime, t, "sale:0", debit(CASH, 100), credit(sales(), 100))  # sales gets the lower id
    await _post(runtime, t, "recharge:8", debit(CASH, 1_000), credit(w, 1_000))
    async with runtime.db.uow() as s:
        # Accounts move in id order: sales moves first, then the wallet refuses.
        with pytest.raises(ledger.InsufficientBalance):
            await ledger.post(s, t, source_key="order:8", kind="test",
                              postings=[credit(sales(), 5_000), debit(w, 5_000)])
        await ledger.post(s, t, source_key="order:8b", kind="test", postings=[debit(w, 400), credit(sales(), 400)])
    assert await _balance(runtime, t, w.code) == 600
    assert await _balance(runtime, t, "income.sales") == 500
    async with runtime.db.uow(readonly=True) as s:
        assert await ledger.journal_by_source(s, t, "order:8") is None
        assert await ledger.trial_balance(s, t) == 0
        assert await ledger.check_account(s, t, "income.sales")
