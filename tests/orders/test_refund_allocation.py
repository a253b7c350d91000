"""Refunds add up to what was paid, to the fen.

Pure properties of :func:`siyu.orders.aftersales.line_refund_fen` over carts built the way
checkout builds them (discounts and freight spread over the lines by largest remainder), and
the same property through the service and the sandbox gateway: random partial cases, some
rejected, then everything refunded — the order gets back exactly what it paid.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.kit.money import allocate
from siyu.kit.runtime import Runtime
from siyu.orders.aftersales import line_refund_fen
from tests.orders import _aftersales as h
from tests.orders import _lifecycle as lc
from tests.orders.conftest import make_order_shop

# -- carts as checkout builds them -------------------------------------------------------------------


@dataclass
class Line:
    quantity: int
    paid_fen: int
    claimed: int = 0
    claimed_fen: int = 0
    refunded_fen: int = 0
    #: The open case on this line: (units, fen), or None.
    open: tuple[int, int] | None = None
    cases: list[int] = field(default_factory=list)


carts = st.lists(st.tuples(st.integers(1, 200_000), st.integers(1, 30)), min_size=1, max_size=6)


@st.composite
def priced_cart(draw: st.DrawFn) -> list[Line]:
    """Lines with price and quantity, an order discount and a points discount spread by what
    each line still costs, and freight spread by goods — ``paid = subtotal − discounts + freight``."""
    raw = draw(carts)
    subtotals = [p * q for p, q in raw]
    goods = sum(subtotals)
    discount = draw(st.integers(0, goods))
    left = [s - d for s, d in zip(subtotals, allocate(discount, subtotals), strict=True)]
    points = draw(st.integers(0, sum(left)))
    left = [x - d for x, d in zip(left, allocate(points, left), strict=True)]
    freight = draw(st.sampled_from([0, 1, 600, 1001, 99_999]))
    paid = [x + f for x, f in zip(left, allocate(freight, left), strict=True)]
    assert all(p >= 0 for p in paid)
    assert sum(paid) == goods - discount - points + freight
    return [Line(q, p) for (_price, q), p in zip(raw, paid, strict=True)]


#: ("open", line index, units) | ("refund", line index) | ("reject", line index)
ops = st.lists(st.one_of(
    st.tuples(st.just("open"), st.integers(0, 5), st.integers(1, 30)),
    st.tuples(st.just("refund"), st.integers(0, 5)),
    st.tuples(st.just("reject"), st.integers(0, 5)),
), max_size=40)


def _open(line: Line, k: int) -> int | None:
    """Open a case for ``k`` units as the service does; None when the rules refuse it."""
    if line.open is not None or line.claimed + k > line.quantity:
        return None
    fen = line_refund_fen(line.paid_fen, line.quantity, line.claimed, k)
    line.claimed += k
    line.claimed_fen += fen
    line.open = (k, fen)
    return fen


@settings(max_examples=500, deadline=None)
@given(cart=priced_cart(), steps=ops)
def test_any_sequence_of_cases_refunds_exactly_what_was_paid(cart: list[Line], steps: list[tuple[Any, ...]]) -> None:
    order_paid = sum(ln.paid_fen for ln in cart)
    for op in steps:
        line = cart[op[1] % len(cart)]
        if op[0] == "open":
            fen = _open(line, op[2])
            if fen is not None:
                assert fen >= 0
        elif line.open is not None:
            k, fen = line.open
            line.open = None
            if op[0] == "refund":
                line.refunded_fen += fen
                line.cases.append(fen)
            else:  # rejected or withdrawn: units and fen go back
                line.claimed -= k
                line.claimed_fen -= fen
        assert 0 <= line.refunded_fen <= line.claimed_fen <= line.paid_fen
        assert line.claimed_fen == line.paid_fen * line.claimed // line.quantity, "claims stay on the exact cut points"
    # Refund whatever is left, one case per line.
    for line in cart:
        if line.open is not None:
            line.refunded_fen += line.open[1]
            line.open = None
        rest = line.quantity - line.claimed
        if rest:
            fen = _open(line, rest)
            assert fen is not None and fen >= 0
            line.refunded_fen += fen
            line.open = None
        assert line.refunded_fen == line.paid_fen
    assert sum(ln.refunded_fen for ln in cart) == order_paid


@settings(max_examples=500, deadline=None)
@given(paid=st.integers(0, 10**9), parts=st.lists(st.integers(1, 50), min_size=1, max_size=12))
def test_a_line_split_into_any_cases_adds_up_to_its_paid_amount(paid: int, parts: list[int]) -> None:
    n = sum(parts)
    total, claimed = 0, 0
    amounts = []
    for k in parts:
        fen = line_refund_fen(paid, n, claimed, k)
        amounts.append(fen)
        claimed += k
        total += fen
    assert total == paid
    assert all(a >= 0 for a in amounts)
    # Each case is within one fen per unit of the even share.
    assert all(abs(a * n - paid * k) < n * k + n for a, k in zip(amounts, parts, strict=True))


def test_the_formula_on_examples() -> None:
    # ¥10.00 for three units: 333 + 333 + 334, in any grouping.
    assert [line_refund_fen(1000, 3, r, 1) for r in range(3)] == [333, 333, 334]
    assert line_refund_fen(1000, 3, 0, 2) + line_refund_fen(1000, 3, 2, 1) == 1000
    assert line_refund_fen(1, 3, 0, 2) == 0 and line_refund_fen(1, 3, 2, 1) == 1
    assert line_refund_fen(0, 5, 1, 4) == 0
    with pytest.raises(ValueError):
        line_refund_fen(100, 3, 2, 2)


# -- through the service ---------------------------------------------------------------------------------


@pytest.fixture
async def notify(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


#: Per line (price fen, quantity); then a list of (line index, units, rejected?) cases.
db_carts = st.lists(st.tuples(st.integers(1, 99_999), st.integers(1, 5)), min_size=1, max_size=3)
db_cases = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 5), st.booleans()), max_size=4)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cart=db_carts, cases=db_cases, freight=st.sampled_from([0, 1000, 1001]))
async def test_partial_cases_then_the_rest_refund_the_order_exactly(notify: Any, runtime: Runtime, client: httpx.AsyncClient,
                                                                   tenant_factory: Any, cart: list[tuple[int, int]],
                                                                   cases: list[tuple[int, int, bool]], freight: int) -> None:
    shop = await make_order_shop(runtime, client, tenant_factory)  # a fresh shop: its freight is this example's
    if freight:
        await shop.flat_freight(freight)
    skus = [await shop.make_sku(price_fen=price, stock=10) for price, _q in cart]
    order = await lc.paid_order(shop, [(sku, q) for sku, (_p, q) in zip(skus, cart, strict=True)])
    assert order.paid_fen == sum(p * q for p, q in cart) + freight
    lines = await h.order_lines(shop, order.id)
    assert sum(ln.paid_fen for ln in lines) == order.paid_fen
    refunded = 0
    for idx, k, rejected in cases:
        line = next(ln for ln in await h.order_lines(shop, order.id) if ln.id == lines[idx % len(lines)].id)
        if line.refund_qty + k > line.quantity:
            continue
        if rejected:
            c = await h.open_case(shop, order.id, [(line.id, k)])
            await h.act(shop, "reject", c.id, reason="与买家协商一致")
        else:
            c = await h.open_case(shop, order.id, [(line.id, k)], staff=True, reason="商家协商退款")
            await h.settle(shop)
            done = await h.case(shop, c.id)
            assert done.status == "refunded" and done.refund_fen >= 0
            refunded += done.refund_fen
        mid = await shop.order(order.id)
        assert mid.refunded_fen == refunded
    rest = [(ln.id, ln.quantity - ln.refund_qty) for ln in await h.order_lines(shop, order.id) if ln.quantity > ln.refund_qty]
    if rest:
        await h.open_case(shop, order.id, rest, staff=True, reason="商家协商退款")
        await h.settle(shop)
    final = await shop.order(order.id)
    assert final.refunded_fen == final.paid_fen
    assert final.status == "closed" and final.closed_at is not None
    for ln in await h.order_lines(shop, order.id):
        assert (ln.refunded_qty, ln.refunded_fen) == (ln.quantity, ln.paid_fen)
    assert (await lc.payment(shop.runtime, final.payment_id or 0)).refunded_fen == final.paid_fen
    for sku in skus:
        assert await lc.level(shop, sku) == (10, 0), "nothing shipped: every unit is back on sale"
