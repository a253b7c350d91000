"""Points and orders: the ``points`` pricing step and its cap, spending at placement (and
never twice the same points under concurrent orders), the give-back on cancellation,
earning on completion with the level multiplier and the first-order award, and refunds
reversing spent and earned points exactly over several partial cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from siyu.kit import clock
from siyu.kit.context import Actor, actor_var
from siyu.kit.errors import Conflict
from siyu.kit.runtime import Runtime
from siyu.members import points
from siyu.orders import aftersales, checkout, fulfilment, pricing, service
from siyu.orders.models import Order
from tests.conftest import drain_outbox
from tests.members._points import PointsShop, ledger
from tests.orders import _aftersales as asc
from tests.orders import _lifecycle as lc
from tests.orders.conftest import Buyer, OrderShop


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _notify(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


@pytest.fixture
async def shop(order_shop: OrderShop) -> OrderShop:
    """The orders' shop with the sign-up award off (so the sums below are only what they test)."""
    await PointsShop(order_shop.runtime, order_shop.scope, order_shop.tenant.id).save_rules(awards={"signup": 0})
    await drain_outbox(order_shop.runtime)
    return order_shop


def pshop(shop: OrderShop) -> PointsShop:
    return PointsShop(shop.runtime, shop.scope, shop.tenant.id)


async def give(shop: OrderShop, amount: int, buyer: Buyer | None = None) -> None:
    who = buyer or shop.buyer
    async with shop.runtime.db.uow() as s:
        await points.earn(s, shop.scope, who.customer_id, amount, kind="adjust", source_key=f"gift:{who.customer_id}:{amount}",
                          expires_at=None)


async def quote(shop: OrderShop, lines: list[tuple[int, int]], options: dict[str, Any] | None = None,
                customer_id: int | str | None = "buyer") -> pricing.Quote:
    cid = shop.buyer.customer_id if customer_id == "buyer" else customer_id
    async with shop.runtime.db.uow(readonly=True) as s:
        return await pricing.price(s, shop.scope, customer_id=cid if isinstance(cid, int) else None, lines=lines,
                                   options=options)


def points_offer(q: pricing.Quote) -> pricing.AppliedOffer:
    found = [o for o in q.offers if o.step == "points"]
    assert len(found) == 1, q.offers
    return found[0]


async def balance(shop: OrderShop, buyer: Buyer | None = None) -> int:
    st = await ledger(shop.runtime, shop.scope, (buyer or shop.buyer).customer_id)
    st.check()
    return st.member_points


async def complete(shop: OrderShop, order_id: int, buyer: Buyer | None = None) -> None:
    """Ship everything still to ship and confirm receipt as the shopper."""
    who = buyer or shop.buyer
    o = await shop.order(order_id)
    if o.status in ("paid", "partially_shipped"):
        await lc.ship(shop, order_id, f"SF{order_id:010d}")
    token = actor_var.set(Actor("customer", who.customer_id, "buyer", shop.scope.id))
    try:
        async with shop.runtime.db.uow() as s:
            await fulfilment.confirm_receipt(s, shop.scope, order_id, who.customer_id)
    finally:
        actor_var.reset(token)
    await drain_outbox(shop.runtime)


async def entries(shop: OrderShop, buyer: Buyer | None = None) -> list[tuple[str, int, str]]:
    st = await ledger(shop.runtime, shop.scope, (buyer or shop.buyer).customer_id)
    return [(e.kind, e.amount, e.source_key) for e in st.entries]


# -- pricing ---------------------------------------------------------------------------------------------


async def test_offer_shows_availability_and_caps(shop: OrderShop) -> None:
    await pshop(shop).save_rules(points_per_yuan=100, max_share_bp=5000)
    lines = [(shop.skus[0], 1)]  # ¥128.00
    q = await quote(shop, lines)
    o = points_offer(q)
    assert not o.applied and o.data["available"] == 0 and o.data["max_points"] == 0
    await give(shop, 10000)
    o = points_offer(await quote(shop, lines))
    assert not o.applied and o.data == {"available": 10000, "max_points": 6400, "max_fen": 6400, "points_per_yuan": 100,
                                        "min_points": 0}
    q = await quote(shop, lines, {"points": 3000})
    o = points_offer(q)
    assert o.applied and o.fen == 3000 and o.data["points"] == 3000 and q.payable_fen == 12800 - 3000
    # More than the cap uses the cap; True means as many as allowed.
    for ask in (8000, True):
        o = points_offer(await quote(shop, lines, {"points": ask}))
        assert o.fen == 6400 and o.data["points"] == 6400
    # More than the member has is a 409; a bad value a 422; a visitor sees no points offer.
    with pytest.raises(Conflict) as exc:
        await quote(shop, lines, {"points": 10001})
    assert exc.value.code == "insufficient_points"
    with pytest.raises(Exception) as bad:
        await quote(shop, lines, {"points": -1})
    assert getattr(bad.value, "code", None) == "points_invalid"
    assert not [o for o in (await quote(shop, lines, customer_id=None)).offers if o.step == "points"]


async def test_only_points_that_buy_whole_fen_are_used(shop: OrderShop) -> None:
    await pshop(shop).save_rules(points_per_yuan=1000, max_share_bp=10000)
    await give(shop, 1234)
    o = points_offer(await quote(shop, [(shop.skus[1], 1)], {"points": 1234}))
    assert o.fen == 123 and o.data["points"] == 1230


async def test_disabled_minimum_and_mall_orders(shop: OrderShop) -> None:
    await give(shop, 500)
    await pshop(shop).save_rules(min_redeem_points=1000)
    o = points_offer(await quote(shop, [(shop.skus[0], 1)], {"points": 100}))
    assert not o.applied and "1000" in o.reason_zh
    await pshop(shop).save_rules(min_redeem_points=0, redeem_enabled=False)
    o = points_offer(await quote(shop, [(shop.skus[0], 1)], {"points": 100}))
    assert not o.applied and o.reason_en == "The shop does not take points"


# -- placement and cancellation -----------------------------------------------------------------------------


async def test_placement_spends_and_cancel_gives_back(shop: OrderShop) -> None:
    await give(shop, 5000)
    order = await shop.place([(shop.skus[0], 1)], options={"points": 3000})
    assert (order.points_used, order.points_fen, order.payable_fen) == (3000, 3000, 9800)
    assert await balance(shop) == 2000
    assert (await entries(shop))[-1] == ("spend", -3000, f"order:{order.id}:points")
    async with shop.runtime.db.uow() as s:
        await service.cancel_order(s, shop.scope, order.id, by="customer", customer_id=shop.buyer.customer_id)
    await drain_outbox(shop.runtime)
    await drain_outbox(shop.runtime)
    assert await balance(shop) == 5000
    assert (await entries(shop))[-1] == ("cancel_return", 3000, f"order:{order.id}:points:cancel")


async def test_concurrent_orders_never_spend_the_same_points(shop: OrderShop) -> None:
    await give(shop, 5000)

    async def attempt() -> Order | Exception:
        try:
            return await shop.place([(shop.skus[0], 1)], options={"points": 5000})
        except Exception as exc:
            return exc

    results = await asyncio.gather(*(attempt() for _ in range(4)))
    placed = [r for r in results if isinstance(r, Order)]
    failed = [r for r in results if not isinstance(r, Order)]
    assert len(placed) == 1, results
    assert all(isinstance(r, Conflict) and r.code == "insufficient_points" for r in failed), failed
    assert await balance(shop) == 0


async def test_a_shortfall_at_placement_undoes_the_order(shop: OrderShop, monkeypatch: Any) -> None:
    """Points gone between pricing and the hook (a concurrent spend): 409 and no order."""
    await give(shop, 3000)
    real_spend = points.spend

    async def spend_after_someone_else(session: Any, scope: Any, customer_id: int, amount: int, **kw: Any) -> Any:
        await real_spend(session, scope, customer_id, 3000, kind="redeem", source_key=f"elsewhere:{customer_id}")
        return await real_spend(session, scope, customer_id, amount, **kw)

    monkeypatch.setattr(points, "spend", spend_after_someone_else)
    before = await lc.level(shop, shop.skus[0])
    with pytest.raises(Conflict) as exc:
        await shop.place([(shop.skus[0], 1)], options={"points": 3000})
    assert exc.value.code == "insufficient_points"
    assert await lc.level(shop, shop.skus[0]) == before
    assert await balance(shop) == 3000


# -- earning on completion ----------------------------------------------------------------------------------------


async def test_completion_earns_per_yuan_paid_once_with_first_order_award(shop: OrderShop) -> None:
    await pshop(shop).save_rules(earn_per_yuan=2)
    await give(shop, 1000)
    # Virtual goods complete on payment: ¥50 × 2, less the ¥10 the points paid → 80 points.
    order = await shop.place([(shop.virtual_sku, 1)], options={"points": 1000})
    await lc.pay(shop, order.id)
    await drain_outbox(shop.runtime)
    assert (await shop.order(order.id)).status == "completed"
    got = [(k, a) for k, a, _key in await entries(shop)]
    assert got == [("adjust", 1000), ("spend", -1000), ("earn", 80), ("first_order", 200)]
    # A second order earns but gets no second first-order award.
    second = await lc.paid_order(shop, [(shop.virtual_sku, 2)])
    await drain_outbox(shop.runtime)
    assert (await entries(shop))[-1] == ("earn", 200, f"order:{second.id}:earn")
    assert await balance(shop) == 80 + 200 + 200


async def test_level_multiplier_applies(shop: OrderShop, monkeypatch: Any) -> None:

    class View:
        points_multiplier_bp = 15000

    async def effective_level(session: Any, scope: Any, customer_id: int) -> View:
        return View()

    real = points._levels_attr
    monkeypatch.setattr(points, "_levels_attr",
                        lambda name: effective_level if name == "effective_level" else real(name))
    order = await lc.paid_order(shop, [(shop.virtual_sku, 1)])
    await drain_outbox(shop.runtime)
    assert ("earn", 75, f"order:{order.id}:earn") in await entries(shop)


# -- refunds -------------------------------------------------------------------------------------------------------


async def staff_refund(shop: OrderShop, order_id: int, lines: list[tuple[int, int]]) -> int:
    case = await asc.open_case(shop, order_id, lines, staff=True, reason=aftersales.STAFF_REASONS[1])
    await asc.settle(shop)
    await drain_outbox(shop.runtime)
    return case.id


def expected_share(total: int, weights: list[int], lines: list[Any], done: dict[int, int], now: dict[int, int]) -> int:
    return points.case_share(total, weights, lines, done, now)


async def test_refunds_reverse_points_exactly_over_partial_cases(shop: OrderShop) -> None:
    await pshop(shop).save_rules(earn_per_yuan=1, max_share_bp=5000)
    await give(shop, 20000)
    # 3 × ¥128 + 2 × ¥39.90 = ¥463.80; 7,777 points pay ¥77.77.
    order = await shop.place([(shop.skus[0], 3), (shop.skus[1], 2)], options={"points": 7777})
    assert order.points_used == 7777
    await lc.pay(shop, order.id)
    await complete(shop, order.id)
    earned = [a for k, a, key in await entries(shop) if k == "earn"]
    assert earned == [(46380 - 7777) // 100]
    lines = await lc.lines(shop.runtime, order.id)
    a, b = lines
    after_earn = await balance(shop)
    returned_total = taken_total = 0
    for case_lines in ([(a.id, 1)], [(b.id, 1), (a.id, 1)], [(a.id, 1)], [(b.id, 1)]):
        before = await balance(shop)
        case_id = await staff_refund(shop, order.id, case_lines)
        got = {k: amt for k, amt, key in await entries(shop) if key.startswith(f"after_sale:{case_id}:")}
        returned_total += got.get("refund_return", 0)
        taken_total += -got.get("refund_takeback", 0)
        assert await balance(shop) == before + got.get("refund_return", 0) + got.get("refund_takeback", 0)
    assert returned_total == 7777 and taken_total == earned[0]
    assert await balance(shop) == after_earn + 7777 - earned[0]
    # Events replayed change nothing.
    await drain_outbox(shop.runtime)
    assert returned_total == sum(a for k, a, _ in await entries(shop) if k == "refund_return")


async def test_refund_before_completion_is_taken_back_at_completion(shop: OrderShop) -> None:
    await give(shop, 5000)
    order = await shop.place([(shop.skus[0], 2)], options={"points": 2000})
    await lc.pay(shop, order.id)
    line = (await lc.lines(shop.runtime, order.id))[0]
    case_id = await staff_refund(shop, order.id, [(line.id, 1)])  # one unit refunded before it shipped
    got = {k: amt for k, amt, key in await entries(shop) if key.startswith(f"after_sale:{case_id}:")}
    assert got == {"refund_return": 1000}  # nothing earned yet: nothing taken back
    await complete(shop, order.id)
    earn = [(k, a, key) for k, a, key in await entries(shop) if key.startswith((f"order:{order.id}:earn", "after_sale:"))]
    # Earned on the whole order ((25600 − 2000) // 100 = 236), half taken back for the refunded unit.
    assert earn == [("refund_return", 1000, f"after_sale:{case_id}:points"), ("earn", 236, f"order:{order.id}:earn"),
                    ("refund_takeback", -118, f"after_sale:{case_id}:earn")]
    st = await ledger(shop.runtime, shop.scope, shop.buyer.customer_id)
    st.check()


def test_case_share_adds_up_over_any_case_order() -> None:
    class L:
        def __init__(self, id: int, quantity: int) -> None:
            self.id, self.quantity = id, quantity

    lines = [L(1, 3), L(2, 7), L(3, 1)]
    weights = [300, 123, 57]
    total = 1001
    done: dict[int, int] = {1: 0, 2: 0, 3: 0}
    got = 0
    for units in ({2: 3}, {1: 1, 3: 1}, {2: 4, 1: 2}):
        got += points.case_share(total, weights, lines, dict(done), units)
        for k, v in units.items():
            done[k] += v
    assert got == total


async def test_preview_through_checkout(shop: OrderShop) -> None:
    await give(shop, 900)
    async with shop.runtime.db.uow(readonly=True) as s:
        q = await checkout.preview(s, shop.scope, customer_id=shop.buyer.customer_id, lines=[(shop.skus[1], 1)],
                                   options={"points": 900})
    o = points_offer(q)
    assert o.applied and o.data["points"] == 900 and q.payable_fen == 3990 - 900


async def test_the_real_level_multiplier(shop: OrderShop) -> None:
    """Through the levels part: the base level at 1.5× makes ¥50 earn 75 points."""
    from siyu.members import levels

    async with shop.runtime.db.uow() as s:
        rows = await levels.ensure_levels(s, shop.scope)
        base = min(rows, key=lambda lv: lv.rank)
        values = {k: getattr(base, k) for k in levels.LEVEL_FIELDS}
        values["points_multiplier_bp"] = 15000
        await levels.update_level(s, shop.scope, base.id, levels.LevelData(**values))
    order = await lc.paid_order(shop, [(shop.virtual_sku, 1)])
    await drain_outbox(shop.runtime)
    assert ("earn", 75, f"order:{order.id}:earn") in await entries(shop)


async def test_after_a_merge_refunds_follow_the_points(shop: OrderShop) -> None:
    """A shopper's two accounts merged: the points moved, and the old account's refund and
    completion land on the survivor."""
    from siyu.customers import service as customers_service

    other = await shop.new_buyer()
    await drain_outbox(shop.runtime)
    await give(shop, 3000)
    order = await shop.place([(shop.skus[0], 2)], options={"points": 2000})
    await lc.pay(shop, order.id)
    async with shop.runtime.db.uow() as s:
        survivor = await customers_service.get_customer(s, shop.scope, other.customer_id)
        loser = await customers_service.get_customer(s, shop.scope, shop.buyer.customer_id)
        await customers_service.merge_customers(s, shop.scope, survivor, loser)
    await drain_outbox(shop.runtime)
    assert await balance(shop) == 0 and await balance(shop, other) == 1000
    line = (await lc.lines(shop.runtime, order.id))[0]
    await staff_refund(shop, order.id, [(line.id, 1)])
    assert await balance(shop) == 0 and await balance(shop, other) == 2000
    # Completion after the merge earns for the survivor, and the refunded unit is taken back there.
    await complete(shop, order.id)
    earned = (25600 - 2000) // 100
    first_order = 200
    assert await balance(shop) == 0 and await balance(shop, other) == 2000 + earned - earned // 2 + first_order
