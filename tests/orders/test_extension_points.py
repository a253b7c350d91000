"""The hooks other modules plug into checkout: a free-shipping offer waives the freight, stored
value may pay the freight too (so an order can be paid by balance alone), and a placement
hook that refuses undoes the whole order, stock included."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.inventory import service as inventory_service
from siyu.kit.errors import Conflict
from siyu.kit.tenancy import TenantScope
from siyu.orders import checkout, pricing
from siyu.orders.models import Order, OrderLine
from tests.orders.conftest import OrderShop


async def _waive(_s: AsyncSession, ctx: pricing.PricingContext) -> Sequence[pricing.Offer]:
    if not ctx.options.get("vip"):
        return []
    return [pricing.Offer("level", "金卡会员", "Gold member", applied=False, data={"free_shipping": True})]


async def _pay_all(_s: AsyncSession, ctx: pricing.PricingContext) -> Sequence[pricing.Offer]:
    if not ctx.options.get("use_balance"):
        return []
    return [pricing.Offer("balance", "余额支付", "Balance", total_fen=ctx.due_fen, data={"principal_fen": ctx.due_fen})]


@pytest.fixture(autouse=True)
def _only_these_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The members module's own adjusters and hooks step aside: these tests register theirs."""
    monkeypatch.setattr(pricing, "_adjusters", {step: [] for step in pricing.STEPS})
    monkeypatch.setattr(checkout, "_placement_hooks", [])


@pytest.fixture
def adjusters():  # type: ignore[no-untyped-def]
    pricing.register_adjuster("member", _waive)
    pricing.register_adjuster("balance", _pay_all)
    yield
    pricing.unregister_adjuster("member", _waive)
    pricing.unregister_adjuster("balance", _pay_all)


async def test_a_free_shipping_offer_waives_the_freight(order_shop: OrderShop, adjusters: None) -> None:
    await order_shop.flat_freight(1200)
    a = order_shop.skus[0]
    async with order_shop.runtime.db.uow(readonly=True) as s:
        plain = await pricing.price(s, order_shop.scope, customer_id=order_shop.buyer.customer_id, lines=[(a, 1)],
                                    province_code="33")
        vip = await pricing.price(s, order_shop.scope, customer_id=order_shop.buyer.customer_id, lines=[(a, 1)],
                                  province_code="33", options={"vip": True})
    assert plain.freight_fen == 1200 and plain.payable_fen == 12800 + 1200
    assert vip.freight_fen == 0 and vip.payable_fen == 12800
    assert vip.freight.reason_zh == "金卡会员包邮"


async def test_stored_value_can_pay_goods_and_freight_alone(order_shop: OrderShop, adjusters: None) -> None:
    await order_shop.flat_freight(1000)
    a, b = order_shop.skus
    order = await order_shop.place([(a, 1), (b, 2)], options={"use_balance": True})
    assert order.payable_fen == 0
    assert order.balance_fen == 12800 + 2 * 3990 + 1000 == order.discount_fen
    assert order.freight_fen == 1000 and order.points_used == 0 and order.points_fen == 0
    async with order_shop.runtime.db.uow(readonly=True) as s:
        lines = (await s.execute(select(OrderLine).where(OrderLine.order_id == order.id))).scalars().all()
    assert all(ln.paid_fen == 0 for ln in lines)
    assert sum(ln.discount_fen for ln in lines) == order.balance_fen


async def test_a_placement_hook_that_refuses_undoes_the_order_and_its_stock(order_shop: OrderShop) -> None:
    sku = await order_shop.make_sku(price_fen=900, stock=5)
    seen: list[int] = []

    async def refuse(session: AsyncSession, scope: TenantScope, order: Order, quote: pricing.Quote,
                     lines: list[OrderLine]) -> None:
        seen.append(order.id)
        assert [ln.sku_id for ln in lines] == [sku] and quote.payable_fen == 900 * 2
        raise Conflict("insufficient_points", "积分不足", "Not enough points")

    checkout.register_placement_hook(refuse)
    try:
        with pytest.raises(Conflict):
            await order_shop.place([(sku, 2)])
    finally:
        checkout.unregister_placement_hook(refuse)
    assert len(seen) == 1
    async with order_shop.runtime.db.uow(readonly=True) as s:
        assert (await s.execute(select(func.count()).select_from(Order).where(Order.id == seen[0]))).scalar_one() == 0
        available = await inventory_service.available(s, order_shop.scope, [sku])
    assert available[sku] == 5
    order = await order_shop.place([(sku, 2)])  # without the hook the same order goes through
    assert order.status == "pending_payment"
