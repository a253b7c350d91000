"""Levels, growth and member prices through the service (SQLite and PostgreSQL).

The default levels (written once, even by two first uses at once); the level editor's rules;
growth from sign-up, paid orders (stored value counts, points do not) and actions, once per
source key, also under concurrency; the upgrade at payment with its notice; refunds taking
growth back exactly over several partial cases (and the level down at once); merges moving
growth to the survivor; the paid card lifting the effective level until it expires; the
scheduled review; the member price step (member price beats the rate, free shipping, the
priority flag, none for points-mall orders); the profile (birthday once for the shopper);
the member list filters; settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import clock
from siyu.kit.errors import Conflict, DomainError, NotFound, ValidationFailed
from siyu.kit.money import allocate
from siyu.kit.runtime import Runtime
from siyu.members import levels
from siyu.members import service as members_service
from siyu.members.models import GrowthEntry, Member, MemberLevel, MemberNotice, SkuMemberPrice
from siyu.orders import pricing
from tests.conftest import drain_outbox
from tests.orders import _aftersales as af
from tests.orders import _lifecycle as lc
from tests.orders.conftest import Buyer, OrderShop


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


# -- helpers (the API and page tests use them too) -------------------------------------------------


async def run(shop: OrderShop, fn: Any) -> Any:
    """``await fn(session)`` in a write unit of work of its own."""
    async with shop.runtime.db.uow() as s:
        return await fn(s)


async def member(shop: OrderShop, customer_id: int) -> Member:
    async with shop.runtime.db.uow(readonly=True) as s:
        row = (await s.execute(select(Member).where(Member.tenant_id == shop.scope.id,
                                                    Member.customer_id == customer_id))).scalar_one()
        s.expunge(row)
        return row


async def entries(shop: OrderShop, customer_id: int) -> list[tuple[str, int, int, str]]:
    """(kind, amount, balance_after, source_key), oldest first."""
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(GrowthEntry.kind, GrowthEntry.amount, GrowthEntry.balance_after,
                                       GrowthEntry.source_key).where(
            GrowthEntry.tenant_id == shop.scope.id, GrowthEntry.customer_id == customer_id).order_by(GrowthEntry.id))).all()
    return [(a, int(b), int(c), d) for a, b, c, d in rows]


async def notices(shop: OrderShop, customer_id: int) -> list[tuple[str, str]]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(MemberNotice.kind, MemberNotice.title).where(
            MemberNotice.tenant_id == shop.scope.id, MemberNotice.customer_id == customer_id)
            .order_by(MemberNotice.id))).all()
    return [(a, b) for a, b in rows]


async def level_ids(shop: OrderShop) -> dict[str, int]:
    """Level name → id (writing the defaults if needed)."""
    rows = await run(shop, lambda s: levels.ensure_levels(s, shop.scope))
    return {r.name: r.id for r in rows}


async def set_level(shop: OrderShop, name: str, **changes: Any) -> int:
    ids = await level_ids(shop)

    async def go(s: AsyncSession) -> int:
        row = await levels.get_level(s, shop.scope, ids[name])
        data = levels.LevelData(**{**{k: getattr(row, k) for k in levels.LEVEL_FIELDS}, **changes})
        return (await levels.update_level(s, shop.scope, row.id, data)).id

    return int(await run(shop, go))


async def give_growth(shop: OrderShop, customer_id: int, amount: int, reason: str = "测试") -> None:
    await run(shop, lambda s: levels.adjust_growth(s, shop.scope, customer_id, amount, reason=reason))


async def checked_ledger(shop: OrderShop, customer_id: int) -> int:
    """Member.growth equals the ledger's sum and every balance_after its running total; returns it."""
    m = await member(shop, customer_id)
    total = 0
    for _kind, amount, after, _key in await entries(shop, customer_id):
        total += amount
        assert after == total >= 0
    assert m.growth == total
    return total


def member_offers(q: pricing.Quote) -> list[pricing.AppliedOffer]:
    """The member step's offers (other steps may always offer something, applied or not)."""
    return [o for o in q.offers if o.step == "member"]


async def settled_buyer(shop: OrderShop) -> Buyer:
    """A new buyer whose registration event has run (member row, sign-up growth)."""
    buyer = await shop.new_buyer()
    await drain_outbox(shop.runtime)
    return buyer


# -- levels ------------------------------------------------------------------------------------------


async def test_default_levels_are_read_unsaved_then_written_once(order_shop: OrderShop) -> None:
    shop = order_shop
    async with shop.runtime.db.uow(readonly=True) as s:
        unsaved = await levels.list_levels(s, shop.scope)
    assert [(lv.id, lv.name, lv.growth_threshold) for lv in unsaved] == [
        (0, "普通会员", 0), (0, "银卡会员", 1000), (0, "金卡会员", 5000), (0, "黑金会员", 20000)]
    assert all(not lv.has_price_benefit and not lv.free_shipping for lv in unsaved)

    async def first_use() -> int:
        async with shop.runtime.db.uow() as s:
            return len(await levels.ensure_levels(s, shop.scope))

    assert await asyncio.gather(*(first_use() for _ in range(4))) == [4, 4, 4, 4]
    async with shop.runtime.db.uow(readonly=True) as s:
        n = (await s.execute(select(func.count()).select_from(MemberLevel).where(
            MemberLevel.tenant_id == shop.scope.id))).scalar_one()
        saved = await levels.list_levels(s, shop.scope)
    assert n == 4 and all(lv.id > 0 for lv in saved)


async def test_level_editor_rules(order_shop: OrderShop) -> None:
    shop = order_shop
    ids = await level_ids(shop)

    async def attempt(fn: Any) -> DomainError:
        with pytest.raises(DomainError) as exc:
            await run(shop, fn)
        return exc.value

    def data(**kw: Any) -> levels.LevelData:
        return levels.LevelData(**{"name": "至尊会员", "rank": 4, "growth_threshold": 50_000, **kw})

    err = await attempt(lambda s: levels.create_level(s, shop.scope, data(growth_threshold=20_000)))
    assert err.code == "level_threshold_order" and err.status == 422
    assert (await attempt(lambda s: levels.create_level(s, shop.scope, data(rank=3)))).code == "level_rank_taken"
    assert (await attempt(lambda s: levels.create_level(s, shop.scope, data(name="金卡会员")))).code == "level_name_taken"
    assert (await attempt(lambda s: levels.create_level(s, shop.scope, data(name=" ")))).code == "level_name_invalid"
    assert (await attempt(lambda s: levels.create_level(s, shop.scope, data(price_rate_bp=900)))).code == "level_rate_invalid"
    assert (await attempt(lambda s: levels.create_level(s, shop.scope, data(color="red")))).code == "level_color_invalid"
    assert (await attempt(lambda s: levels.create_level(s, shop.scope, data(birthday_coupon_id=5)))).code == "level_coupon_invalid"
    assert (await attempt(lambda s: levels.create_level(s, shop.scope, data(points_multiplier_bp=5000)))).code == \
        "level_multiplier_invalid"

    top = await run(shop, lambda s: levels.create_level(s, shop.scope, data(price_rate_bp=8800, color="#AA0000")))
    assert (top.name, top.rank, top.growth_threshold, top.price_rate_bp, top.color) == ("至尊会员", 4, 50_000, 8800, "#aa0000")
    # A paid-only level ignores the threshold and does not count in the threshold order.
    paid = await run(shop, lambda s: levels.create_level(s, shop.scope, data(name="付费会员", rank=10, paid_only=True,
                                                                              growth_threshold=1)))
    assert paid.growth_threshold == 0

    base = ids["普通会员"]
    base_data = levels.LevelData(name="普通会员", rank=0, growth_threshold=10)
    assert (await attempt(lambda s: levels.update_level(s, shop.scope, base, base_data))).code == "level_base_threshold"
    assert (await attempt(lambda s: levels.update_level(
        s, shop.scope, base, levels.LevelData(name="普通会员", rank=0, paid_only=True)))).code == "level_base_paid_only"
    assert (await attempt(lambda s: levels.update_level(
        s, shop.scope, base, levels.LevelData(name="普通会员", rank=5)))).code == "level_base_rank"
    assert (await attempt(lambda s: levels.delete_level(s, shop.scope, base))).code == "level_base"

    # Held levels cannot go, nor become paid-only; a free one goes with its member prices.
    buyer = await settled_buyer(shop)
    await give_growth(shop, buyer.customer_id, 1000)
    assert (await member(shop, buyer.customer_id)).level_id == ids["银卡会员"]
    assert (await attempt(lambda s: levels.delete_level(s, shop.scope, ids["银卡会员"]))).code == "level_in_use"
    silver = await run(shop, lambda s: levels.get_level(s, shop.scope, ids["银卡会员"]))
    silver_paid = levels.LevelData(**{**{k: getattr(silver, k) for k in levels.LEVEL_FIELDS}, "paid_only": True})
    assert (await attempt(lambda s: levels.update_level(s, shop.scope, silver.id, silver_paid))).code == "level_in_use"
    await run(shop, lambda s: levels.set_member_prices(s, shop.scope, shop.skus[0], {top.id: 9900}))
    await run(shop, lambda s: levels.delete_level(s, shop.scope, top.id))
    async with shop.runtime.db.uow(readonly=True) as s:
        left = (await s.execute(select(func.count()).select_from(SkuMemberPrice).where(
            SkuMemberPrice.tenant_id == shop.scope.id))).scalar_one()
    assert left == 0

    # Too many levels.
    for rank in range(11, 11 + levels.MAX_LEVELS):
        try:
            await run(shop, lambda s, r=rank: levels.create_level(
                s, shop.scope, levels.LevelData(name=f"L{r}", rank=r, paid_only=True)))
        except Conflict as exc:
            assert exc.code == "too_many_levels"
            break
    else:
        raise AssertionError("the level count is capped")


async def test_another_tenants_level_is_not_found(order_shop: OrderShop, runtime: Runtime, client: Any,
                                                  tenant_factory: Any) -> None:
    from tests.orders.conftest import make_order_shop

    other = await make_order_shop(runtime, client, tenant_factory, "另一家")
    theirs = (await level_ids(other))["金卡会员"]
    with pytest.raises(NotFound):
        await run(order_shop, lambda s: levels.get_level(s, order_shop.scope, theirs))
    with pytest.raises(NotFound):
        await run(order_shop, lambda s: levels.delete_level(s, order_shop.scope, theirs))
    with pytest.raises(NotFound):
        await run(order_shop, lambda s: levels.set_member_prices(s, order_shop.scope, order_shop.skus[0], {theirs: 100}))
    with pytest.raises(NotFound):  # their SKU
        await run(order_shop, lambda s: levels.set_member_prices(s, order_shop.scope, other.skus[0], {}))


# -- growth ---------------------------------------------------------------------------------------


async def test_registration_makes_a_member_with_sign_up_growth_once(order_shop: OrderShop) -> None:
    shop = order_shop
    buyer = await shop.new_buyer()
    await drain_outbox(shop.runtime)
    m = await member(shop, buyer.customer_id)
    assert m.growth == 10 and m.level_id == (await level_ids(shop))["普通会员"]
    assert await entries(shop, buyer.customer_id) == [("signup", 10, 10, f"signup:{buyer.customer_id}")]
    again = await run(shop, lambda s: levels.award_action(s, shop.scope, buyer.customer_id, "signup",
                                                          source_key=f"signup:{buyer.customer_id}"))
    assert again == 0
    assert await run(shop, lambda s: levels.award_action(s, shop.scope, buyer.customer_id, "review",
                                                         source_key="review:1")) == 5
    with pytest.raises(ValueError):
        await run(shop, lambda s: levels.award_action(s, shop.scope, buyer.customer_id, "dance", source_key="x"))
    assert await checked_ledger(shop, buyer.customer_id) == 15


async def test_paying_an_order_earns_growth_and_upgrades_at_once(order_shop: OrderShop) -> None:
    shop = order_shop
    buyer = await settled_buyer(shop)
    ids = await level_ids(shop)
    small = await lc.paid_order(shop, [(shop.skus[1], 1)], buyer=buyer)  # ¥39.90 → 39 growth
    big = await lc.paid_order(shop, [(shop.skus[0], 8)], buyer=buyer)  # ¥1,024 → 1,024 growth
    await drain_outbox(shop.runtime)
    assert [(k, a) for k, a, _b, _s in await entries(shop, buyer.customer_id)] == [
        ("signup", 10), ("order", 39), ("first_order", 20), ("order", 1024)]
    assert [s for _k, _a, _b, s in await entries(shop, buyer.customer_id)][1:] == [
        f"order:{small.id}", f"first_order:{buyer.customer_id}", f"order:{big.id}"]
    m = await member(shop, buyer.customer_id)
    assert m.growth == 1093 and m.level_id == ids["银卡会员"] and m.level_changed_at is not None
    assert m.level_review_at is None  # review policy "never"
    assert await notices(shop, buyer.customer_id) == [("level_up", "恭喜升级为银卡会员")]
    # An event handled twice counts once.
    async with shop.runtime.db.uow() as s:
        from siyu.kit.outbox import Event

        await levels._on_order_paid(s, Event(0, shop.scope.id, "order.paid", {
            "order_id": big.id, "tenant_id": shop.scope.id, "customer_id": buyer.customer_id}, 1))
    assert await checked_ledger(shop, buyer.customer_id) == 1093
    async with shop.runtime.db.uow(readonly=True) as s:
        view = await levels.effective_level(s, shop.scope, buyer.customer_id)
        over = await levels.overview(s, shop.scope, buyer.customer_id)
    assert (view.name, view.via) == ("银卡会员", "growth")
    assert over.next_level is not None and over.next_level.name == "金卡会员"
    assert over.to_next == 5000 - 1093 and over.progress_bp == (1093 - 1000) * 10000 // 4000


async def _balance_step(_s: AsyncSession, ctx: pricing.PricingContext) -> Sequence[pricing.Offer]:
    want = ctx.options.get("balance_fen")
    if not want:
        return []
    fen = ctx.due_fen if want == "all" else int(want)
    return [pricing.Offer("test_balance", "余额支付", "Balance", total_fen=fen, data={"principal_fen": fen})]


async def _points_step(_s: AsyncSession, ctx: pricing.PricingContext) -> Sequence[pricing.Offer]:
    pts = int(ctx.options.get("points_fen") or 0)
    if not pts:
        return []
    return [pricing.Offer("test_points", "积分抵扣", "Points", total_fen=pts, data={"points": pts})]


@pytest.fixture
def payment_steps() -> Any:
    """Stand-ins for the points and stored-value steps (their own codes, so the real parts'
    placement hooks leave them alone): what matters here is only what the order records."""
    pricing.register_adjuster("points", _points_step)
    pricing.register_adjuster("balance", _balance_step)
    yield
    pricing.unregister_adjuster("points", _points_step)
    pricing.unregister_adjuster("balance", _balance_step)


async def test_stored_value_counts_as_money_and_points_do_not(order_shop: OrderShop, payment_steps: None) -> None:
    shop = order_shop
    buyer = await settled_buyer(shop)
    # ¥128 goods: ¥10 paid by points, ¥50 by stored value, ¥68 through the gateway → 118 growth.
    order = await shop.place([(shop.skus[0], 1)], buyer=buyer, options={"points_fen": 1000, "balance_fen": 5000})
    assert (order.points_fen, order.balance_fen, order.payable_fen) == (1000, 5000, 6800)
    await lc.pay(shop, order.id, buyer)
    # Paid by stored value alone: payable 0, paid at once.
    alone = await shop.place([(shop.skus[1], 1)], buyer=buyer, options={"balance_fen": "all"})
    assert alone.payable_fen == 0
    async with shop.runtime.db.uow() as s:
        assert await lc.service.start_payment(s, shop.scope, customer_id=buyer.customer_id, order_id=alone.id) is None
    await drain_outbox(shop.runtime)
    got = {s: a for k, a, _b, s in await entries(shop, buyer.customer_id) if k == "order"}
    assert got == {f"order:{order.id}": 118, f"order:{alone.id}": 39}


async def test_growth_per_yuan_and_actions_follow_the_settings(order_shop: OrderShop) -> None:
    shop = order_shop
    await run(shop, lambda s: levels.update_growth_settings(s, shop.scope, growth_per_yuan=3, first_order=0, signup=0))
    buyer = await settled_buyer(shop)
    await lc.paid_order(shop, [(shop.skus[1], 1)], buyer=buyer)
    await drain_outbox(shop.runtime)
    assert [(k, a) for k, a, _b, _s in await entries(shop, buyer.customer_id)] == [("order", 3990 * 3 // 100)]
    with pytest.raises(ValidationFailed) as exc:
        await run(shop, lambda s: levels.update_growth_settings(s, shop.scope, growth_per_yuan=101, window_days=5))
    assert exc.value.code == "level_settings_invalid"
    assert {f["field"] for f in exc.value.fields} == {"growth_per_yuan", "window_days"}
    with pytest.raises(ValidationFailed):
        await run(shop, lambda s: levels.update_growth_settings(s, shop.scope, review_policy="weekly"))
    async with shop.runtime.db.uow(readonly=True) as s:
        assert (await levels.growth_settings(s, shop.scope)).growth_per_yuan == 3


async def test_concurrent_growth_is_counted_once_per_source_and_exactly(order_shop: OrderShop) -> None:
    shop = order_shop
    buyer = await settled_buyer(shop)
    cid = buyer.customer_id

    async def add(key: str, amount: int) -> bool:
        async with shop.runtime.db.uow() as s:
            return await levels.add_growth(s, shop.scope, cid, amount, kind="test", source_key=key) is not None

    same = await asyncio.gather(*(add("same-key", 7) for _ in range(12)))
    assert sum(same) == 1
    distinct = await asyncio.gather(*(add(f"key-{i}", i + 1) for i in range(12)))
    assert all(distinct)
    assert await checked_ledger(shop, cid) == 10 + 7 + sum(range(1, 13))
    # A take-back takes at most what is there; a staff adjustment refuses instead.
    await run(shop, lambda s: levels.add_growth(s, shop.scope, cid, -10_000, kind="test", source_key="big-take"))
    assert await checked_ledger(shop, cid) == 0
    with pytest.raises(Conflict) as exc:
        await give_growth(shop, cid, -1)
    assert exc.value.code == "insufficient_growth"
    with pytest.raises(ValidationFailed):
        await give_growth(shop, cid, 0)
    with pytest.raises(ValidationFailed):
        await give_growth(shop, cid, 5, reason=" ")


# -- refunds -----------------------------------------------------------------------------------------


async def refund(shop: OrderShop, order_id: int, lines: list[tuple[int, int]], buyer: Buyer) -> None:
    case = await af.open_case(shop, order_id, lines, buyer=buyer)
    await af.act(shop, "approve", case.id)
    await af.settle(shop)
    assert (await af.case(shop, case.id)).status == "refunded"


async def test_partial_refunds_take_the_growth_back_exactly_and_the_level_down(order_shop: OrderShop) -> None:
    shop = order_shop
    buyer = await settled_buyer(shop)
    ids = await level_ids(shop)
    a, b = shop.skus
    order = await lc.paid_order(shop, [(a, 7), (b, 3)], buyer=buyer)  # 89,600 + 11,970 fen → 1,015 growth
    await drain_outbox(shop.runtime)
    before = await member(shop, buyer.customer_id)
    assert before.growth == 10 + 1015 + 20 and before.level_id == ids["银卡会员"]
    la, lb = sorted(await af.order_lines(shop, order.id), key=lambda ln: ln.sku_id != a)
    await refund(shop, order.id, [(la.id, 2)], buyer)
    shares = allocate(1015, [la.paid_fen, lb.paid_fen])
    first = shares[0] * 2 // 7
    m = await member(shop, buyer.customer_id)
    assert m.growth == before.growth - first
    assert m.level_id == ids["普通会员"]  # 1,045 − 256 < 1,000: down at once
    assert ("level_down", "会员等级调整为普通会员") in await notices(shop, buyer.customer_id)
    await refund(shop, order.id, [(lb.id, 1)], buyer)
    await refund(shop, order.id, [(la.id, 5), (lb.id, 2)], buyer)
    await drain_outbox(shop.runtime)
    assert await checked_ledger(shop, buyer.customer_id) == 10 + 20  # every unit back: all its growth back
    took = [a for k, a, _b, s in await entries(shop, buyer.customer_id) if k == "refund"]
    assert len(took) == 3 and sum(took) == -1015


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(total=st.integers(0, 50_000),
       lines=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 20)), min_size=1, max_size=6),
       data=st.data())
def test_growth_owed_grows_with_each_refund_and_ends_exact(total: int, lines: list[tuple[int, int]], data: Any) -> None:
    money = [m for m, _n in lines]
    qty = [n for _m, n in lines]
    refunded = [0] * len(lines)
    owed = 0
    while any(r < n for r, n in zip(refunded, qty, strict=True)):
        i = data.draw(st.sampled_from([j for j in range(len(lines)) if refunded[j] < qty[j]]))
        refunded[i] += data.draw(st.integers(1, qty[i] - refunded[i]))
        now = levels.growth_owed(total, money, qty, refunded)
        assert owed <= now <= total
        owed = now
    assert owed == total


# -- merge, cards, review ---------------------------------------------------------------------------------


async def test_a_merge_moves_growth_to_the_survivor_once(order_shop: OrderShop) -> None:
    from siyu.customers import service as customers_service

    shop = order_shop
    keep, gone = await settled_buyer(shop), await settled_buyer(shop)
    await give_growth(shop, keep.customer_id, 600)
    await give_growth(shop, gone.customer_id, 500)
    await run(shop, lambda s: levels.update_profile(s, shop.scope, gone.customer_id, birthday=date(1990, 5, 20),
                                                    region="杭州"))

    async def merge(s: AsyncSession) -> None:
        survivor = await customers_service.get_customer(s, shop.scope, keep.customer_id)
        loser = await customers_service.get_customer(s, shop.scope, gone.customer_id)
        await customers_service.merge_customers(s, shop.scope, survivor, loser)

    await run(shop, merge)
    await drain_outbox(shop.runtime)
    survivor, loser = await member(shop, keep.customer_id), await member(shop, gone.customer_id)
    assert (survivor.growth, loser.growth) == (1120, 0)
    assert survivor.level_id == (await level_ids(shop))["银卡会员"]
    assert (survivor.birthday, survivor.birthday_md, survivor.region) == (date(1990, 5, 20), "05-20", "杭州")
    assert [(k, a) for k, a, _b, _s in await entries(shop, gone.customer_id)][-1] == ("merge_out", -510)
    assert [(k, a) for k, a, _b, _s in await entries(shop, keep.customer_id)][-1] == ("merge_in", 510)
    await run(shop, lambda s: levels.merge_members(s, shop.scope, survivor_id=keep.customer_id,
                                                   merged_id=gone.customer_id))
    assert await checked_ledger(shop, keep.customer_id) == 1120
    assert await checked_ledger(shop, gone.customer_id) == 0
    # Growth for the merged-away customer now goes to the survivor; staff cannot adjust it.
    with pytest.raises(Conflict):
        await give_growth(shop, gone.customer_id, 5)


async def test_a_paid_card_lifts_the_effective_level_until_it_ends(order_shop: OrderShop) -> None:
    shop = order_shop
    buyer = await settled_buyer(shop)
    ids = await level_ids(shop)
    ends = clock.now() + timedelta(days=1)
    await run(shop, lambda s: members_service.set_card(s, shop.scope, buyer.customer_id, level_id=ids["金卡会员"],
                                                       plan_id=None, expires_at=ends))
    async with shop.runtime.db.uow(readonly=True) as s:
        view = await levels.effective_level(s, shop.scope, buyer.customer_id)
    assert (view.name, view.via, view.card_expires_at) == ("金卡会员", "card", ends)
    # A card below the growth level changes nothing.
    await give_growth(shop, buyer.customer_id, 20_000)
    async with shop.runtime.db.uow(readonly=True) as s:
        assert (await levels.effective_level(s, shop.scope, buyer.customer_id)).name == "黑金会员"
    await give_growth(shop, buyer.customer_id, -20_000)
    clock.travel(timedelta(days=2))
    try:
        async with shop.runtime.db.uow(readonly=True) as s:
            view = await levels.effective_level(s, shop.scope, buyer.customer_id)
    finally:
        clock.reset()
    assert (view.name, view.via) == ("普通会员", "growth")  # taken back at once, and the card has ended


async def test_the_review_moves_members_to_the_level_of_recent_growth(order_shop: OrderShop) -> None:
    shop = order_shop
    ids = await level_ids(shop)
    await run(shop, lambda s: levels.update_growth_settings(s, shop.scope, review_policy="monthly", window_days=30))
    old, busy = await settled_buyer(shop), await settled_buyer(shop)
    await give_growth(shop, old.customer_id, 5_000)
    await give_growth(shop, busy.customer_id, 1_500)
    due = (await member(shop, old.customer_id)).level_review_at
    assert due is not None and due == levels.next_review_at("monthly", shop.scope.timezone)
    assert (await member(shop, old.customer_id)).level_id == ids["金卡会员"]
    clock.travel(timedelta(days=40))
    try:
        await give_growth(shop, busy.customer_id, 1_200)  # recent: 1,200 → still 银卡 after review
        async with shop.runtime.db.uow() as s:
            reviewed = await levels.review_due(s, limit=10_000)
        async with shop.runtime.db.uow() as s:
            again = await levels.review_due(s, limit=10_000)
        assert reviewed >= 2
        m_old, m_busy = await member(shop, old.customer_id), await member(shop, busy.customer_id)
        assert m_old.level_id == ids["普通会员"] and m_old.level_review_at is None
        assert m_busy.level_id == ids["银卡会员"]
        assert m_busy.level_review_at == levels.next_review_at("monthly", shop.scope.timezone)
        assert m_busy.level_review_at is not None and m_busy.level_review_at > clock.now()
        assert [k for k, _t in await notices(shop, old.customer_id)] == ["level_up", "level_down"]
        assert [k for k, _t in await notices(shop, busy.customer_id)] == ["level_up"]
        assert again >= 0  # (other tests' members may be due too; ours were moved on)
    finally:
        clock.reset()
    # Back to "never": deadlines are cleared.
    await run(shop, lambda s: levels.update_growth_settings(s, shop.scope, review_policy="never"))
    assert (await member(shop, busy.customer_id)).level_review_at is None


def test_review_dates_follow_the_tenant_calendar() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)  # 2026-04-01 01:00 in Shanghai
    tz = "Asia/Shanghai"
    assert levels.next_review_at("monthly", tz, at) == datetime(2026, 4, 30, 16, 0, tzinfo=UTC)
    assert levels.next_review_at("quarterly", tz, at) == datetime(2026, 6, 30, 16, 0, tzinfo=UTC)
    assert levels.next_review_at("yearly", tz, at) == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert levels.next_review_at("never", tz, at) is None
    assert levels.next_review_at("quarterly", tz, datetime(2026, 11, 5, tzinfo=UTC)) == datetime(2026, 12, 31, 16, 0,
                                                                                                tzinfo=UTC)


# -- the member price step --------------------------------------------------------------------------------


async def test_member_prices_beat_the_level_rate_and_the_level_ships_free(order_shop: OrderShop) -> None:
    shop = order_shop
    a, b = shop.skus
    gold = await set_level(shop, "金卡会员", price_rate_bp=9500, free_shipping=True, priority_shipping=True)
    await run(shop, lambda s: levels.set_member_prices(s, shop.scope, b, {gold: 3500}))
    await shop.flat_freight(1200)
    buyer = await settled_buyer(shop)
    plain = await shop.new_buyer()

    async def quote(who: int | None, **options: Any) -> pricing.Quote:
        async with shop.runtime.db.uow(readonly=True) as s:
            return await pricing.price(s, shop.scope, customer_id=who, lines=[(a, 1), (b, 2)], province_code="33",
                                       options=options)

    assert member_offers(await quote(buyer.customer_id)) == []  # 普通会员: no benefit, no offer
    await give_growth(shop, buyer.customer_id, 5_000)
    q = await quote(buyer.customer_id)
    (offer,) = member_offers(q)
    assert (offer.step, offer.code, offer.label_zh) == ("member", "member_level", "金卡会员")
    assert offer.line_fen == {a: 12800 - 9500 * 12800 // 10000, b: (3990 - 3500) * 2}
    assert offer.data == {"level_id": gold, "level_name": "金卡会员", "via": "growth", "free_shipping": True,
                          "priority_shipping": True}
    assert q.freight_fen == 0 and q.freight.reason_zh == "金卡会员包邮"
    assert q.payable_fen == 12160 + 7000
    assert member_offers(await quote(None)) == [] and member_offers(await quote(plain.customer_id)) == []
    async with shop.runtime.db.uow(readonly=True) as s:  # a points-mall order: the step stays out
        skus = await pricing.load_skus(s, shop.scope, [(a, 1)])
        ctx = pricing.PricingContext(scope=shop.scope, customer_id=buyer.customer_id, step="member",
                                     lines=[pricing.ContextLine(skus[a], 1, 12800)], options={"mall_item_id": 5}, offers=[])
        assert await levels.member_price_step(s, ctx) == []
        ctx.options = {}
        assert len(await levels.member_price_step(s, ctx)) == 1
    order = await shop.place([(a, 1)], buyer=buyer)
    assert order.payable_fen == 12160 and levels.priority_shipping(order.pricing)
    assert not levels.priority_shipping((await shop.place([(a, 1)], buyer=plain)).pricing)

    # Only free shipping / priority: an offer that takes nothing but says why.
    await set_level(shop, "金卡会员", price_rate_bp=10000)
    await run(shop, lambda s: levels.set_member_prices(s, shop.scope, b, {gold: None}))
    (offer,) = member_offers(await quote(buyer.customer_id))
    assert not offer.applied and offer.fen == 0 and offer.reason_zh == "包邮 · 优先发货"
    # Member prices: 1 fen up to the price.
    with pytest.raises(ValidationFailed):
        await run(shop, lambda s: levels.set_member_prices(s, shop.scope, b, {gold: 3991}))
    with pytest.raises(ValidationFailed):
        await run(shop, lambda s: levels.set_member_prices(s, shop.scope, b, {gold: 0}))


# -- profile and the list ---------------------------------------------------------------------------------


async def test_the_shopper_sets_the_birthday_once_and_staff_may_change_it(order_shop: OrderShop) -> None:
    from siyu.kit.audit import AuditEntry

    shop = order_shop
    buyer = await settled_buyer(shop)
    cid = buyer.customer_id
    await run(shop, lambda s: levels.update_profile(s, shop.scope, cid, birthday=date(1992, 2, 29), gender="female",
                                                    region=" 浙江  杭州 "))
    m = await member(shop, cid)
    assert (m.birthday, m.birthday_md, m.gender, m.region) == (date(1992, 2, 29), "02-29", "female", "浙江 杭州")
    with pytest.raises(Conflict) as exc:
        await run(shop, lambda s: levels.update_profile(s, shop.scope, cid, birthday=date(1993, 1, 1)))
    assert exc.value.code == "birthday_locked"
    await run(shop, lambda s: levels.update_profile(s, shop.scope, cid, gender="male"))  # the rest stays editable
    for bad in ({"birthday": date(2999, 1, 1)}, {"gender": "x"}, {"region": "x" * 61}):
        with pytest.raises(ValidationFailed):
            await run(shop, lambda s, kw=bad: levels.update_profile(s, shop.scope, cid, **kw))
    await run(shop, lambda s: levels.update_profile(s, shop.scope, cid, birthday=date(1993, 1, 1), by_staff=True))
    assert (await member(shop, cid)).birthday_md == "01-01"
    async with shop.runtime.db.uow(readonly=True) as s:
        actions = (await s.execute(select(AuditEntry.action).where(
            AuditEntry.tenant_id == shop.scope.id, AuditEntry.object_type == "member",
            AuditEntry.object_id == str(cid)))).scalars().all()
    assert list(actions) == ["members.profile.update"]


async def test_the_member_list_filters(order_shop: OrderShop) -> None:
    from siyu.customers import service as customers_service

    shop = order_shop
    ids = await level_ids(shop)
    a, b, c = await settled_buyer(shop), await settled_buyer(shop), await settled_buyer(shop)
    await give_growth(shop, b.customer_id, 1000)
    await run(shop, lambda s: levels.update_profile(s, shop.scope, c.customer_id, birthday=date(1988, 11, 3)))
    points = pytest.importorskip("siyu.members.points")
    await run(shop, lambda s: points.earn(s, shop.scope, a.customer_id, 50_000, kind="adjust", source_key="list-test"))
    async with shop.runtime.db.uow(readonly=True) as s:
        nick = (await customers_service.get_customer(s, shop.scope, c.customer_id)).nickname

    async def find(**kw: Any) -> set[int]:
        async with shop.runtime.db.uow(readonly=True) as s:
            rows, total = await levels.list_members(s, shop.scope, levels.MemberFilters(**kw), limit=100)
        assert total == len(rows)
        return {r.member.customer_id for r in rows}

    everyone = await find()
    assert {a.customer_id, b.customer_id, c.customer_id} <= everyone
    assert await find(level_id=ids["银卡会员"]) == {b.customer_id}
    assert b.customer_id not in await find(level_id=ids["普通会员"])
    assert await find(birthday_month=11) == {c.customer_id}
    assert await find(points_min=50_000) == {a.customer_id}
    assert a.customer_id not in await find(points_max=49_999)
    assert await find(q=nick) == {c.customer_id}
    today = clock.local_today(shop.scope.timezone)
    assert await find(registered_from=today, registered_to=today) == everyone
    assert await find(registered_to=today - timedelta(days=1)) == set()


async def test_demo_data(order_shop: OrderShop) -> None:
    import random

    from siyu.members import demo_levels

    shop = order_shop
    buyers = [await shop.new_buyer() for _ in range(12)]
    ids = [b.customer_id for b in buyers]
    made = await run(shop, lambda s: demo_levels.seed_demo(s, shop.scope, random.Random(7), ids))
    assert made["levels"] == 4 and made["members"] == 12 and made["member_prices"] >= 1
    gold = await set_level(shop, "金卡会员")
    async with shop.runtime.db.uow(readonly=True) as s:
        lv = await levels.get_level(s, shop.scope, gold)
        assert (lv.price_rate_bp, lv.free_shipping) == (9500, True)
        assert (await levels.growth_settings(s, shop.scope)).review_policy == "yearly"
    for cid in ids:
        assert await checked_ledger(shop, cid) >= 10
    # Run twice (a demo re-seeded): nothing is counted twice.
    before = [await checked_ledger(shop, cid) for cid in ids]
    await drain_outbox(shop.runtime)
    assert [await checked_ledger(shop, cid) for cid in ids] == before


async def test_a_refund_after_a_merge_takes_growth_from_the_survivor(order_shop: OrderShop) -> None:
    from siyu.customers import service as customers_service

    shop = order_shop
    keep, gone = await settled_buyer(shop), await settled_buyer(shop)
    order = await lc.paid_order(shop, [(shop.skus[0], 2)], buyer=gone)  # 256 growth on the loser
    await drain_outbox(shop.runtime)

    async def merge(s: AsyncSession) -> None:
        survivor = await customers_service.get_customer(s, shop.scope, keep.customer_id)
        loser = await customers_service.get_customer(s, shop.scope, gone.customer_id)
        await customers_service.merge_customers(s, shop.scope, survivor, loser)

    await run(shop, merge)
    await drain_outbox(shop.runtime)
    assert await checked_ledger(shop, keep.customer_id) == 10 + 10 + 256 + 20
    (line,) = await af.order_lines(shop, order.id)
    await refund(shop, order.id, [(line.id, 1)], gone)
    await refund(shop, order.id, [(line.id, 1)], gone)
    await drain_outbox(shop.runtime)
    assert await checked_ledger(shop, keep.customer_id) == 10 + 10 + 20
    assert await checked_ledger(shop, gone.customer_id) == 0
