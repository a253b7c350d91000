"""Pricing: server-side prices, offers in their documented order, freight, exact totals."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast
from unittest import mock

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog.service import SkuForSale
from siyu.kit.errors import Conflict, ValidationFailed
from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope
from siyu.orders import pricing
from siyu.orders.pricing import Offer, PricingContext
from siyu.shipping import service as shipping_service
from tests.conftest import unique
from tests.orders.conftest import OrderShop, make_order_shop


@pytest.fixture(autouse=True)
def _engine_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the engine: the adjusters other modules register (member prices,
    points, balance...) step aside, and each test registers the ones it needs."""
    monkeypatch.setattr(pricing, "_adjusters", {step: [] for step in pricing.STEPS})


@contextmanager
def adjusters(*pairs: tuple[str, Any]) -> Iterator[None]:
    """Register adjusters for the duration of a block (they are process-wide)."""
    for step, fn in pairs:
        pricing.register_adjuster(step, fn)
    try:
        yield
    finally:
        for step, fn in pairs:
            pricing.unregister_adjuster(step, fn)


async def price(shop: OrderShop, lines: Sequence[tuple[int, int]], **kw: Any) -> pricing.Quote:
    async with shop.runtime.db.uow(readonly=True) as s:
        return await pricing.price(s, shop.scope, customer_id=shop.buyer.customer_id, lines=lines, **kw)


def assert_exact(q: pricing.Quote) -> None:
    assert q.goods_fen == sum(ln.subtotal_fen for ln in q.lines)
    assert q.discount_fen == sum(ln.discount_fen for ln in q.lines)
    assert q.freight_fen == sum(ln.freight_fen for ln in q.lines)
    assert q.payable_fen == q.goods_fen - q.discount_fen + q.freight_fen
    assert q.payable_fen == sum(ln.paid_fen for ln in q.lines)
    assert q.freight.fen == q.freight_fen
    for ln in q.lines:
        assert ln.subtotal_fen == ln.unit_price_fen * ln.quantity
        # Every step but stored value stops at the goods; stored value may pay the freight too.
        by_balance = sum(o.line_fen.get(ln.sku_id, 0) for o in q.offers if o.step in pricing.STEPS_PAYING_FREIGHT)
        assert 0 <= ln.discount_fen - by_balance <= ln.subtotal_fen
        assert 0 <= ln.discount_fen <= ln.subtotal_fen + ln.freight_fen
        assert ln.freight_fen >= 0
        assert ln.paid_fen == ln.subtotal_fen - ln.discount_fen + ln.freight_fen >= 0
        assert sum(d["fen"] for d in ln.discounts) == ln.discount_fen
    assert sum(o.fen for o in q.offers) == q.discount_fen


# -- lines -----------------------------------------------------------------------------------------


async def test_prices_come_from_the_catalog_and_lines_merge(order_shop: OrderShop) -> None:
    a, b = order_shop.skus
    q = await price(order_shop, [(a, 2), (b, 1), (a, 1)])
    assert [(ln.sku_id, ln.quantity, ln.unit_price_fen) for ln in q.lines] == [(a, 3, 12800), (b, 1, 3990)]
    assert (q.goods_fen, q.discount_fen, q.freight_fen, q.payable_fen) == (3 * 12800 + 3990, 0, 0, 3 * 12800 + 3990)
    assert q.item_count == 4 and q.requires_shipping
    assert not q.freight.quoted and q.freight.reason_zh == pricing.NO_ADDRESS_ZH
    assert_exact(q)


async def test_every_bad_line_is_listed_at_once(order_shop: OrderShop) -> None:
    off = await order_shop.make_sku(on_sale=False)
    a = order_shop.skus[0]
    with pytest.raises(ValidationFailed) as e:
        await price(order_shop, [(a, 1), (999_999_999, 1), (off, 2)])
    assert e.value.code == "invalid_lines"
    assert e.value.extra["lines"] == [{"sku_id": 999_999_999, "reason": "not_found"}, {"sku_id": off, "reason": "not_on_sale"}]
    with pytest.raises(Conflict) as c:
        await price(order_shop, [(off, 1), (a, 1)])
    assert c.value.code == "sku_not_on_sale" and c.value.extra["lines"] == [{"sku_id": off, "reason": "not_on_sale"}]
    with pytest.raises(ValidationFailed) as e:
        await price(order_shop, [(a, 0), (order_shop.skus[1], 1000)])
    assert e.value.code == "invalid_lines" and [x["reason"] for x in e.value.extra["lines"]] == ["bad_quantity"] * 2
    with pytest.raises(ValidationFailed) as e:
        await price(order_shop, [(a, 600), (a, 400)])  # 1000 once merged
    assert e.value.code == "invalid_lines"
    with pytest.raises(ValidationFailed) as e:
        await price(order_shop, [])
    assert e.value.code == "invalid_lines"


async def test_another_shops_sku_is_unknown(order_shop: OrderShop, runtime: Runtime, client: httpx.AsyncClient,
        tenant_factory: Any) -> None:
    other = await make_order_shop(runtime, client, tenant_factory, "另一家店")
    with pytest.raises(ValidationFailed) as e:
        await price(order_shop, [(other.skus[0], 1)])
    assert e.value.extra["lines"] == [{"sku_id": other.skus[0], "reason": "not_found"}]


# -- freight ---------------------------------------------------------------------------------------


async def test_freight_is_spread_over_shipping_lines_by_goods_amount(order_shop: OrderShop) -> None:
    await order_shop.flat_freight(1001)
    a, b = order_shop.skus
    q = await price(order_shop, [(a, 1), (b, 1), (order_shop.virtual_sku, 1)], province_code="33")
    assert q.freight.quoted and q.freight_fen == 1001
    by = {ln.sku_id: ln.freight_fen for ln in q.lines}
    assert by[order_shop.virtual_sku] == 0
    assert by[a] + by[b] == 1001 and by[a] > by[b]  # 12800 vs 3990 of goods
    assert_exact(q)
    # Only virtual goods: nothing to ship, nothing to pay for shipping, even without an address.
    q = await price(order_shop, [(order_shop.virtual_sku, 2)])
    assert q.freight_fen == 0 and q.freight.quoted and not q.requires_shipping


async def test_unknown_province_is_refused(order_shop: OrderShop) -> None:
    with pytest.raises(ValidationFailed) as e:
        await price(order_shop, [(order_shop.skus[0], 1)], province_code="99")
    assert e.value.code == "unknown_province"


async def test_free_shipping_threshold_counts_goods_after_discounts(order_shop: OrderShop) -> None:
    await order_shop.flat_freight(800, free_threshold_fen=12000)
    a = order_shop.skus[0]
    q = await price(order_shop, [(a, 1)], province_code="33")
    assert q.freight_fen == 0  # 128.00 ≥ 120.00

    async def promo(session: AsyncSession, ctx: PricingContext) -> list[Offer]:
        return [Offer("promo", "立减 10 元", "¥10 off", total_fen=1000)]

    async def points(session: AsyncSession, ctx: PricingContext) -> list[Offer]:
        return [Offer("points", "积分抵扣", "Points", total_fen=5000)]

    with adjusters(("promotion", promo)):
        q = await price(order_shop, [(a, 1)], province_code="33")
    assert (q.discount_fen, q.freight_fen, q.payable_fen) == (1000, 800, 12800 - 1000 + 800)
    with adjusters(("points", points)):  # points come after freight: the goods stay above the threshold
        q = await price(order_shop, [(a, 1)], province_code="33")
    assert (q.discount_fen, q.freight_fen, q.payable_fen) == (5000, 0, 7800)
    assert_exact(q)


# -- adjusters ------------------------------------------------------------------------------------


async def test_adjusters_run_in_the_documented_order_and_see_earlier_offers(order_shop: OrderShop) -> None:
    seen: list[tuple[str, int, int | None, dict[str, Any]]] = []

    def make(step: str, fen: int) -> Any:
        async def fn(session: AsyncSession, ctx: PricingContext) -> list[Offer]:
            seen.append((ctx.step, ctx.amount_fen, ctx.freight_fen, dict(ctx.options)))
            assert ctx.customer_id == order_shop.buyer.customer_id and ctx.scope == order_shop.scope
            return [Offer(f"{step}-offer", f"{step} 优惠", f"{step} offer", total_fen=fen)]
        return fn

    await order_shop.flat_freight(600)
    pairs = [(step, make(step, 100 * (i + 1))) for i, step in enumerate(reversed(pricing.STEPS))]
    with adjusters(*pairs):
        q = await price(order_shop, [(order_shop.skus[0], 1)], province_code="11", options={"coupon_id": 7})
    assert [s[0] for s in seen] == list(pricing.STEPS)
    # member 500, promotion 400, coupon 300, points 200, balance 100 (registered in reverse, run in order)
    assert [s[1] for s in seen] == [12800, 12300, 11900, 11600, 11400]
    assert [s[2] for s in seen] == [None, None, None, 600, 600]
    assert all(s[3] == {"coupon_id": 7} for s in seen)
    assert [(o.step, o.fen) for o in q.offers] == [("member", 500), ("promotion", 400), ("coupon", 300), ("points", 200),
                                                   ("balance", 100)]
    assert q.payable_fen == 12800 - 1500 + 600
    assert q.lines[0].discounts[0] == {"code": "member-offer", "label": "member 优惠", "label_en": "member offer", "fen": 500}
    assert_exact(q)
    # Unregistered: gone.
    q = await price(order_shop, [(order_shop.skus[0], 1)])
    assert q.offers == [] and q.discount_fen == 0


async def test_offers_not_applied_show_their_reason_and_take_nothing(order_shop: OrderShop) -> None:
    async def full_reduction(session: AsyncSession, ctx: PricingContext) -> list[Offer]:
        if ctx.amount_fen >= 30000:
            return [Offer("mj300", "满 300 减 30", "¥30 off ¥300", total_fen=3000)]
        short = 30000 - ctx.amount_fen
        return [Offer("mj300", "满 300 减 30", "¥30 off ¥300", applied=False, total_fen=3000,
                      reason_zh=f"还差 ¥{short // 100} 可减 ¥30", reason_en=f"¥{short // 100} more for ¥30 off")]

    with adjusters(("promotion", full_reduction)):
        q = await price(order_shop, [(order_shop.skus[0], 2)])
        assert [(o.applied, o.fen, o.reason_zh) for o in q.offers] == [(False, 0, "还差 ¥44 可减 ¥30")]
        assert q.discount_fen == 0
        q = await price(order_shop, [(order_shop.skus[0], 3)])
        assert [(o.applied, o.fen) for o in q.offers] == [(True, 3000)]
    assert_exact(q)


async def test_discounts_never_exceed_the_goods(order_shop: OrderShop) -> None:
    a, b = order_shop.skus

    async def huge(session: AsyncSession, ctx: PricingContext) -> list[Offer]:
        return [Offer("huge", "大额券", "Big coupon", total_fen=10**9),
                Offer("more", "再减", "More", line_fen={a: 10**9, b: -5})]

    await order_shop.flat_freight(500)
    with adjusters(("coupon", huge)):
        q = await price(order_shop, [(a, 1), (b, 2)], province_code="33")
    assert q.discount_fen == q.goods_fen == 12800 + 2 * 3990
    assert q.payable_fen == q.freight_fen == 500
    assert [o.fen for o in q.offers] == [q.goods_fen, 0]
    assert not q.offers[1].applied
    assert_exact(q)


async def test_offers_limited_to_some_lines(order_shop: OrderShop) -> None:
    a, b = order_shop.skus

    async def only_b(session: AsyncSession, ctx: PricingContext) -> list[Offer]:
        return [Offer("tea", "白茶专享", "White tea only", total_fen=1000, sku_ids=[b]),
                Offer("line", "单品立减", "Item discount", line_fen={a: 333})]

    with adjusters(("promotion", only_b)):
        q = await price(order_shop, [(a, 1), (b, 3)])
    by = {ln.sku_id: ln.discount_fen for ln in q.lines}
    assert by == {a: 333, b: 1000}
    assert_exact(q)


def test_register_refuses_unknown_steps() -> None:
    async def fn(session: AsyncSession, ctx: PricingContext) -> list[Offer]:
        return []

    with pytest.raises(ValueError):
        pricing.register_adjuster("cashback", fn)


# -- property: totals are exact whatever the prices, offers and freight --------------------------------


def _sku(i: int, price_fen: int, ships: bool) -> SkuForSale:
    return SkuForSale(sku_id=i + 1, product_id=i + 1, code=f"S{i}", title=f"商品{i}", spec_text="", price_fen=price_fen,
                      market_price_fen=None, kind="physical" if ships else "virtual", requires_shipping=ships,
                      weight_g=100, image=None, on_sale=True)


offer_st = st.tuples(
    st.sampled_from(pricing.STEPS),
    st.booleans(),  # applied
    st.one_of(st.integers(-1000, 2_000_000), st.just(0)),  # total
    st.one_of(st.none(), st.lists(st.integers(0, 5), min_size=1, max_size=3)),  # eligible line indexes
    st.one_of(st.none(), st.dictionaries(st.integers(0, 5), st.integers(-100, 500_000), max_size=3)),  # per line
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.tuples(st.integers(0, 1_000_000), st.integers(1, 999), st.booleans()), min_size=1, max_size=6),
    offers=st.lists(offer_st, max_size=6),
    freight=st.one_of(st.none(), st.lists(st.integers(0, 50_000), min_size=1, max_size=3)),
)
async def test_totals_are_exact_and_never_negative(lines: list[tuple[int, int, bool]], offers: list[Any],
                                                   freight: list[int] | None) -> None:
    skus = {i + 1: _sku(i, p, ships) for i, (p, _q, ships) in enumerate(lines)}
    pairs = [(i + 1, q) for i, (_p, q, _s) in enumerate(lines)]

    def offer(o: Any) -> Offer:
        _step, applied, total, eligible, per_line = o
        if per_line is not None:
            return Offer("L", "单品", "Line", applied=applied, line_fen={k + 1: v for k, v in per_line.items()})
        return Offer("T", "满减", "Total", applied=applied, total_fen=total,
                     sku_ids=None if eligible is None else [k + 1 for k in eligible])

    by_step: dict[str, list[Offer]] = {}
    for o in offers:
        by_step.setdefault(o[0], []).append(offer(o))
    freight_before: list[int] = []

    def make(step: str) -> Any:
        async def fn(session: AsyncSession, ctx: PricingContext) -> list[Offer]:
            if step == "points":
                freight_before.append(ctx.amount_fen)
            return by_step.get(step, [])
        return fn

    async def fake_quote(session: Any, scope: Any, *, lines: Any, province_code: str) -> shipping_service.FreightQuote:
        shipping = [ln for ln in lines if ln.requires_shipping]
        assert shipping, "no quote is asked for when nothing ships"
        groups = [(shipping[t::len(fees)], fee) for t, fee in enumerate(fees)]
        charges = [shipping_service.TemplateCharge(t, None, "flat", [ln.sku_id for ln in group], 1, 0, fee, fee == 0, "", "")
                   for t, (group, fee) in enumerate(groups) if group]
        total = sum(c.freight_fen for c in charges)
        quoted.append(total)
        return shipping_service.FreightQuote(total, total == 0, "运费", "Freight", charges)

    fees = freight or []
    quoted: list[int] = []
    fns = [(step, make(step)) for step in pricing.STEPS]
    with adjusters(*fns), mock.patch.object(shipping_service, "quote", fake_quote):
        # No session: the SKUs are handed in and the freight quote is replaced.
        q = await pricing.price(cast(AsyncSession, None), TenantScope(id=1, code=unique("t")), customer_id=None,
                                lines=pairs, province_code="33" if freight is not None else None, skus=skus)
    assert_exact(q)
    assert q.payable_fen >= 0
    assert q.discount_fen <= q.goods_fen + q.freight_fen  # stored value may pay the freight too
    goods_after_coupon = freight_before[0]
    assert q.goods_fen - q.discount_fen <= goods_after_coupon
    assert q.freight_fen == sum(quoted)
    assert all(ln.freight_fen == 0 for ln in q.lines if not ln.requires_shipping)
