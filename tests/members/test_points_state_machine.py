"""A Hypothesis state machine of the points ledger.

Rules earn (with lots of different expiries), spend, give back part or all of a spend,
take back, adjust either way, replay a used source key, let time pass and expire what is
due, for two members of one tenant — every step through the real service in its own unit of
work, as separate requests would be. A model predicts every lot: spending draws the lots
nearest expiry first (never-expiring last), a give-back returns to the lots it drew (latest
expiry first) and forfeits the share of lots expired meanwhile, a take-back takes at most
what there is, a refused step (409) changes nothing. After every step:

* ``Member.points`` = Σ entries = Σ lot remaining = the model, never negative, and every
  entry's ``balance_after`` is the running sum;
* every lot holds exactly what the model says;
* a spend given back in full right away restores every lot it drew (symmetric reversal).

Hypothesis drives the machine from a worker thread; each step's coroutine runs on the test's
event loop (where the database engine lives) and the thread waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
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

from siyu.kit import clock
from siyu.kit.errors import Conflict
from siyu.kit.runtime import Runtime
from siyu.members import points
from siyu.members.models import PointsLot
from tests.members._points import PointsShop, ledger, make_points_shop

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_run = itertools.count()


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@dataclass
class MLot:
    id: int
    customer: int
    expires: datetime | None
    remaining: int


@dataclass
class MSpend:
    key: str
    customer: int
    #: lot id → points not given back yet
    out: dict[int, int] = field(default_factory=dict)


def draw_order(lot: MLot) -> tuple[bool, datetime, int]:
    return (lot.expires is None, lot.expires or EPOCH, lot.id)


def make_machine(call: Callable[[Coroutine[Any, Any, Any]], Any], shop: PointsShop) -> type[RuleBasedStateMachine]:
    class PointsLedger(RuleBasedStateMachine):
        spends = Bundle("spends")

        def __init__(self) -> None:
            super().__init__()
            self.prefix = f"sm{next(_run)}{secrets.token_hex(3)}"
            self.seq = itertools.count()
            self.customers: list[int] = []
            self.lots: dict[int, MLot] = {}
            self.model: dict[int, int] = {}
            self.used_keys: list[tuple[str, int]] = []

        # -- helpers --------------------------------------------------------------------------

        def key(self, what: str) -> str:
            return f"{self.prefix}:{what}:{next(self.seq)}"

        def now(self) -> datetime:
            return clock.now()

        def open_lots(self, c: int) -> list[MLot]:
            now = self.now()
            return sorted((lot for lot in self.lots.values() if lot.customer == c and lot.remaining > 0
                           and (lot.expires is None or lot.expires > now)), key=draw_order)

        def expire_model(self, c: int) -> None:
            now = self.now()
            for lot in self.lots.values():
                if lot.customer == c and lot.expires is not None and lot.expires <= now and lot.remaining:
                    self.model[c] -= lot.remaining
                    lot.remaining = 0

        def draw_model(self, c: int, amount: int) -> dict[int, int]:
            drawn: dict[int, int] = {}
            for lot in self.open_lots(c):
                if amount <= 0:
                    break
                n = min(amount, lot.remaining)
                lot.remaining -= n
                drawn[lot.id] = n
                amount -= n
            assert amount == 0
            self.model[c] -= sum(drawn.values())
            return drawn

        def add_lot_of(self, c: int, entry_id: int) -> None:
            async def read() -> PointsLot:
                async with shop.runtime.db.uow(readonly=True) as s:
                    return (await s.execute(select(PointsLot).where(PointsLot.entry_id == entry_id))).scalar_one()

            lot = call(read())
            self.lots[lot.id] = MLot(lot.id, c, lot.expires_at, lot.remaining)
            self.model[c] += lot.remaining

        # -- rules ----------------------------------------------------------------------------

        @initialize()
        def members(self) -> None:
            self.customers = [call(shop.customer()), call(shop.customer())]
            self.model = {c: 0 for c in self.customers}

        @rule(i=st.integers(0, 1), amount=st.integers(1, 500),
              expiry=st.sampled_from([None, timedelta(hours=12), timedelta(days=3), timedelta(days=40), "rules"]))
        def earn(self, i: int, amount: int, expiry: Any) -> None:
            c = self.customers[i]
            key = self.key("earn")
            kw: dict[str, Any] = {} if expiry == "rules" else {"expires_at": None if expiry is None else self.now() + expiry}
            e = call(shop.run(points.earn, c, amount, kind="earn", source_key=key, **kw))
            assert e is not None and e.amount == amount
            self.add_lot_of(c, e.id)
            self.used_keys.append((key, c))

        @rule(target=spends, i=st.integers(0, 1), amount=st.integers(1, 600))
        def spend(self, i: int, amount: int) -> MSpend | None:
            c = self.customers[i]
            key = self.key("spend")
            avail = sum(lot.remaining for lot in self.open_lots(c))
            try:
                e = call(shop.run(points.spend, c, amount, kind="spend", source_key=key))
            except Conflict as exc:
                assert exc.code == "insufficient_points" and amount > avail
                return None
            assert amount <= avail and e is not None and e.amount == -amount
            self.expire_model(c)
            drawn = self.draw_model(c, amount)
            self.used_keys.append((key, c))
            return MSpend(key, c, dict(drawn))

        @rule(sp=spends, amount=st.integers(1, 700))
        def give_back(self, sp: MSpend | None, amount: int) -> None:
            if sp is None:
                return
            key = self.key("back")
            e = call(shop.run(points.give_back, sp.customer, spent_source_key=sp.key, amount=amount, source_key=key,
                              kind="refund_return"))
            left = sum(sp.out.values())
            if left == 0:
                assert e is None
                return
            assert e is not None
            now = self.now()
            want = min(amount, left)
            returned = 0
            for lot_id in sorted(sp.out, key=lambda lid: draw_order(self.lots[lid]), reverse=True):
                if want <= 0:
                    break
                n = min(want, sp.out[lot_id])
                if n <= 0:
                    continue
                sp.out[lot_id] -= n
                want -= n
                lot = self.lots[lot_id]
                if lot.expires is None or lot.expires > now:
                    lot.remaining += n
                    returned += n
            assert e.amount == returned
            self.model[sp.customer] += returned
            self.used_keys.append((key, sp.customer))

        @rule(sp=consumes(spends))
        def give_back_all_at_once(self, sp: MSpend | None) -> None:
            """A whole spend given back before time passes restores exactly what it drew."""
            if sp is None or sum(sp.out.values()) == 0:
                return
            now = self.now()
            if any(self.lots[lid].expires is not None and self.lots[lid].expires <= now for lid, n in sp.out.items() if n):
                return
            before = call(ledger(shop.runtime, shop.scope, sp.customer)).remaining()
            left = sum(sp.out.values())
            e = call(shop.run(points.give_back, sp.customer, spent_source_key=sp.key, amount=left,
                              source_key=self.key("all"), kind="cancel_return"))
            assert e is not None and e.amount == left
            after = call(ledger(shop.runtime, shop.scope, sp.customer)).remaining()
            for lid, n in sp.out.items():
                assert after[lid] - before[lid] == n
                self.lots[lid].remaining += n
            self.model[sp.customer] += left
            sp.out = {lid: 0 for lid in sp.out}

        @rule(i=st.integers(0, 1), amount=st.integers(1, 600))
        def take_back(self, i: int, amount: int) -> None:
            c = self.customers[i]
            e = call(shop.run(points.take_back, c, amount, source_key=self.key("take"), kind="refund_takeback"))
            self.expire_model(c)
            avail = sum(lot.remaining for lot in self.open_lots(c))
            taken = min(amount, avail)
            assert e is not None and e.amount == -taken
            if taken:
                self.draw_model(c, taken)

        @rule(i=st.integers(0, 1), amount=st.integers(-400, 400).filter(lambda n: n != 0))
        def adjust(self, i: int, amount: int) -> None:
            c = self.customers[i]
            avail = sum(lot.remaining for lot in self.open_lots(c))
            try:
                e = call(shop.run(points.adjust, c, amount, reason="状态机调整"))
            except Conflict as exc:
                assert exc.code == "insufficient_points" and -amount > avail
                return
            assert e.amount == amount
            if amount > 0:
                self.add_lot_of(c, e.id)
            else:
                assert -amount <= avail
                self.expire_model(c)
                self.draw_model(c, -amount)

        @rule(j=st.integers(0, 50))
        def replay_a_used_key(self, j: int) -> None:
            if not self.used_keys:
                return
            key, c = self.used_keys[j % len(self.used_keys)]
            assert call(shop.run(points.earn, c, 5, kind="earn", source_key=key)) is None
            assert call(shop.run(points.take_back, c, 5, source_key=key, kind="refund_takeback")) is None

        @rule(hours=st.sampled_from([1, 13, 24 * 4, 24 * 45]))
        def time_passes(self, hours: int) -> None:
            clock.travel(timedelta(hours=hours))

        @rule(i=st.integers(0, 1))
        def sweeper_expires(self, i: int) -> None:
            c = self.customers[i]
            call(shop.run(points.expire_due, c))
            self.expire_model(c)

        # -- invariants -----------------------------------------------------------------------

        @invariant()
        def ledger_matches_model(self) -> None:
            for c in self.customers:
                st_ = call(ledger(shop.runtime, shop.scope, c))
                st_.check()  # points = Σ entries = Σ lots ≥ 0, running balance_after
                assert st_.member_points == self.model[c], (c, st_.member_points, self.model[c])
                for lot in st_.lots:
                    assert lot.remaining == self.lots[lot.id].remaining, (lot.id, lot.remaining, self.lots[lot.id])

        def teardown(self) -> None:
            clock.reset()

    return PointsLedger


async def test_points_ledger_state_machine(runtime: Runtime, tenant_factory: Any) -> None:
    shop = await make_points_shop(runtime, tenant_factory)
    loop = asyncio.get_running_loop()

    def call(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=120)

    machine = make_machine(call, shop)
    conf = settings(max_examples=25, stateful_step_count=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    await loop.run_in_executor(None, lambda: run_state_machine_as_test(machine, settings=conf))
