"""Stored value through its services: recharges paid through the sandbox (packages, custom
amounts, idempotency, late and duplicate payments, the unpaid timeout), the spending ratio,
paying orders with the balance (alone or with the gateway; freight too), cancellation and
after-sales refunds giving back exactly what was spent, principal refunds through the
recharges (success and a refused refund restoring the principal), staff adjustments, merged
customers and tenancy. After every scenario the ledger is checked: each account equals its
entries, no wallet account is negative, and the trial balance is zero.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.kit import clock, outbox
from siyu.kit.audit import AuditEntry
from siyu.kit.context import actor_var
from siyu.kit.errors import DomainError
from siyu.kit.runtime import Runtime
from siyu.members import wallet
from siyu.members.models import BalanceRefundPart
from siyu.orders import checkout
from siyu.orders import service as orders_service
from siyu.payments import service as payments_service
from siyu.payments.gateways.base import TradeState
from siyu.payments.models import Payment
from tests.conftest import drain_outbox
from tests.members import _wallet as w
from tests.orders import _aftersales as af
from tests.orders import _lifecycle as lc
from tests.orders.conftest import OrderShop, make_order_shop


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


async def _fails(coro: Any) -> DomainError:
    with pytest.raises(DomainError) as exc:
        await coro
    return exc.value


# -- recharges ------------------------------------------------------------------------------------------------


async def test_a_package_recharge_credits_principal_and_bonus_once(order_shop: OrderShop) -> None:
    pkg = await w.package(order_shop, 100_000, 10_000)
    r = await w.recharge(order_shop, package_id=pkg)
    assert (r.pay_fen, r.bonus_fen, r.payment_id is not None) == (100_000, 10_000, True)
    assert await w.balance(order_shop) == wallet.WalletBalance(100_000, 10_000, 110_000, 0)
    j = await w.journal(order_shop, f"recharge:{r.id}")
    assert j is not None and j.kind == "recharge"
    # The same notification delivered again (a replayed event) credits nothing more.
    async with order_shop.runtime.db.uow() as s:
        outcome = await wallet.apply_recharge_payment(s, order_shop.scope, recharge_id=r.id, payment_id=r.payment_id or 0,
                                                      amount_fen=r.pay_fen, out_trade_no="x")
    assert outcome == "replay"
    assert (await w.balance(order_shop)).total_fen == 110_000
    [entry] = await w.history(order_shop)
    assert (entry.kind, entry.principal_fen, entry.bonus_fen, entry.balance_after_fen) == ("recharge", 100_000, 10_000,
                                                                                         110_000)
    await w.assert_ledger_sound(order_shop)


async def test_custom_amounts_respect_the_settings_and_packages_must_be_on_sale(order_shop: OrderShop) -> None:
    await w.settings(order_shop, custom_min_fen=1000, custom_max_fen=50_000)
    r = await w.recharge(order_shop, amount_fen=20_000)
    assert (r.pay_fen, r.bonus_fen) == (20_000, 0)
    for bad in (999, 50_001):
        err = await _fails(w.start(order_shop, amount_fen=bad))
        assert (err.status, err.code) == (422, "recharge_amount_invalid")
    off = await w.package(order_shop, 5000, 500, on_sale=False)
    assert (await _fails(w.start(order_shop, package_id=off))).code == "recharge_package_off_sale"
    assert (await _fails(w.start(order_shop, package_id=999_999_999))).status == 404
    await w.settings(order_shop, custom_enabled=False)
    assert (await _fails(w.start(order_shop, amount_fen=20_000))).code == "recharge_custom_disabled"
    await w.settings(order_shop, recharge_enabled=False)
    pkg = await w.package(order_shop, 5000)
    assert (await _fails(w.start(order_shop, package_id=pkg))).code == "recharge_disabled"
    with pytest.raises(DomainError) as exc:
        await w.settings(order_shop, custom_min_fen=60_000, custom_max_fen=50_000)
    assert exc.value.code == "wallet_settings_invalid"


async def test_an_idempotency_key_makes_one_recharge(order_shop: OrderShop) -> None:
    pkg = await w.package(order_shop, 10_000, 1000)
    other = await w.package(order_shop, 20_000)
    cid = order_shop.buyer.customer_id
    async with order_shop.runtime.db.uow() as s:
        a = await wallet.create_recharge(s, order_shop.scope, cid, package_id=pkg, idempotency_key="same-key-1")
        b = await wallet.create_recharge(s, order_shop.scope, cid, package_id=pkg, idempotency_key="same-key-1")
    assert (a.created, b.created, a.recharge.id) == (True, False, b.recharge.id)
    with pytest.raises(DomainError) as exc:
        async with order_shop.runtime.db.uow() as s:
            await wallet.create_recharge(s, order_shop.scope, cid, package_id=other, idempotency_key="same-key-1")
    assert exc.value.code == "idempotency_key_reused"


async def test_late_and_duplicate_recharge_payments_are_refunded(order_shop: OrderShop) -> None:
    pkg = await w.package(order_shop, 10_000, 1000)
    r, out_trade_no = await w.start(order_shop, package_id=pkg)
    # The deadline passes: the sweeper closes the payment and the recharge.
    async with order_shop.runtime.db.uow() as s:
        n = await wallet.close_overdue(s, now=clock.now() + timedelta(minutes=wallet.PAY_MINUTES + 1))
    assert n >= 1
    assert (await w.stored_recharge(order_shop, r.id)).status == "closed"
    # The gateway then reports the money taken after all (the payer paid as it closed): it goes back in full.
    async with order_shop.runtime.db.uow() as s:
        payment = (await s.execute(select(Payment).where(Payment.out_trade_no == out_trade_no))).scalar_one()
        assert payment.status == "closed"
        await payments_service.apply_trade_state(s, payment, TradeState(out_trade_no, "SUCCESS", "T-late", 10_000),
                                                 cause="query")
    await drain_outbox(order_shop.runtime)
    assert (await w.stored_recharge(order_shop, r.id)).status == "closed"
    assert (await w.balance(order_shop)).total_fen == 0
    refunds = await lc.refunds_of(order_shop.runtime, payment.id)
    assert [(x.out_refund_no, x.amount_fen) for x in refunds] == [(f"LP{out_trade_no}", 10_000)]
    # A recharge already paid that a second payment names: the duplicate goes back too.
    paid = await w.recharge(order_shop, package_id=pkg)
    async with order_shop.runtime.db.uow() as s:
        outcome = await wallet.apply_recharge_payment(s, order_shop.scope, recharge_id=paid.id, payment_id=payment.id,
                                                      amount_fen=10_000, out_trade_no="DUP123")
    assert outcome == "refunded"
    assert (await w.balance(order_shop)).total_fen == 11_000
    await w.assert_ledger_sound(order_shop)


# -- the spending ratio -----------------------------------------------------------------------------------------


@given(amount=st.integers(0, 10**7), principal=st.integers(0, 10**7), bonus=st.integers(0, 10**7),
       share=st.integers(0, 10000))
def test_a_spend_splits_within_both_buckets(amount: int, principal: int, bonus: int, share: int) -> None:
    if amount > principal + bonus:
        with pytest.raises(ValueError):
            wallet.split_spend(amount, principal, bonus, share)
        return
    p, b = wallet.split_spend(amount, principal, bonus, share)
    assert p + b == amount and 0 <= p <= principal and 0 <= b <= bonus
    want = (amount * share + 5000) // 10000
    # The bonus pays its share while it lasts; the other bucket pays what one cannot.
    assert b == min(bonus, max(want, amount - principal))


def test_the_spending_ratio_examples() -> None:
    assert wallet.split_spend(10_000, 100_000, 10_000, 0) == (10_000, 0)  # principal first
    assert wallet.split_spend(10_000, 100_000, 10_000, 10000) == (0, 10_000)  # bonus first
    assert wallet.split_spend(10_000, 100_000, 10_000, 2000) == (8000, 2000)
    assert wallet.split_spend(10_000, 100_000, 1000, 2000) == (9000, 1000)  # the bonus ran out
    assert wallet.split_spend(10_000, 3000, 10_000, 0) == (3000, 7000)  # the principal ran out


# -- paying orders -----------------------------------------------------------------------------------------------


def _offer(quote: Any, step: str = "balance") -> Any:
    return next(o for o in quote.offers if o.step == step)


async def _preview(shop: OrderShop, lines: list[tuple[int, int]], **options: Any) -> Any:
    async with shop.runtime.db.uow(readonly=True) as s:
        return await checkout.preview(s, shop.scope, customer_id=shop.buyer.customer_id, lines=lines,
                                      address_id=shop.buyer.address_id, options=options)


async def test_the_preview_always_offers_the_balance_and_applies_it_on_request(order_shop: OrderShop) -> None:
    sku = order_shop.skus[0]  # ¥128
    q = await _preview(order_shop, [(sku, 1)])
    o = _offer(q)
    assert (o.applied, o.data) == (False, {"available_fen": 0})
    await w.gift(order_shop, 5000)
    o = _offer(await _preview(order_shop, [(sku, 1)]))
    assert (o.applied, o.data["available_fen"], o.fen) == (False, 5000, 0)
    q = await _preview(order_shop, [(sku, 1)], use_balance=True)
    o = _offer(q)
    assert (o.applied, o.fen, o.data) == (True, 5000, {"available_fen": 5000, "principal_fen": 5000, "bonus_fen": 0})
    assert q.payable_fen == 12_800 - 5000


async def test_an_order_paid_by_balance_alone_is_paid_without_the_gateway_and_cancel_returns_it(
        order_shop: OrderShop) -> None:
    await order_shop.flat_freight(1000)
    pkg = await w.package(order_shop, 100_000, 10_000)
    await w.recharge(order_shop, package_id=pkg)
    await w.settings(order_shop, bonus_share_bp=5000)
    sku = order_shop.skus[0]
    order = await order_shop.place([(sku, 2)], options={"use_balance": True})
    # Goods 2 × ¥128 and ¥10 freight, all paid by the balance: half bonus while it lasts.
    assert (order.payable_fen, order.balance_fen, order.freight_fen) == (0, 26_600, 1000)
    assert await w.balance(order_shop) == wallet.WalletBalance(100_000 - 16_600, 0, 83_400, 0)
    assert (await w.journal(order_shop, f"order:{order.id}:balance")) is not None
    async with order_shop.runtime.db.uow() as s:
        assert await orders_service.start_payment(s, order_shop.scope, customer_id=order_shop.buyer.customer_id,
                                              order_id=order.id) is None
    assert (await order_shop.order(order.id)).status == "paid"
    # A second order that uses the balance and is cancelled gives it back.
    second = await order_shop.place([(sku, 1)], options={"use_balance": True})
    assert (await w.balance(order_shop)).total_fen == 83_400 - 13_800
    async with order_shop.runtime.db.uow() as s:
        await orders_service.cancel_order(s, order_shop.scope, second.id, by="customer",
                                      customer_id=order_shop.buyer.customer_id)
    await drain_outbox(order_shop.runtime)
    await drain_outbox(order_shop.runtime)  # an event twice gives back once
    assert (await w.balance(order_shop)).total_fen == 83_400
    kinds = [e.kind for e in await w.history(order_shop)]
    assert kinds == ["order_spend.reversal", "order_spend", "order_spend", "recharge"]
    await w.assert_ledger_sound(order_shop)


async def test_a_balance_short_of_the_order_pays_part_and_the_gateway_the_rest(order_shop: OrderShop) -> None:
    await w.gift(order_shop, 3000, bucket="bonus")
    order = await order_shop.place([(order_shop.skus[1], 1)], options={"use_balance": True})  # ¥39.90
    assert (order.balance_fen, order.payable_fen) == (3000, 990)
    await lc.pay(order_shop, order.id)
    fresh = await order_shop.order(order.id)
    assert (fresh.status, fresh.paid_fen) == ("paid", 990)
    assert (await w.balance(order_shop)).total_fen == 0


async def test_a_spend_the_wallet_no_longer_covers_undoes_the_order(order_shop: OrderShop) -> None:
    await w.gift(order_shop, 20_000)
    sku = order_shop.skus[0]
    stock_before = await lc.level(order_shop, sku)
    # Priced with ¥200 available, but the wallet is emptied before the hook spends it.
    original = wallet.balance_adjuster

    async def stale(session: Any, ctx: Any) -> Any:
        offers = await original(session, ctx)
        await wallet.spend(session, ctx.scope, ctx.customer_id, principal_fen=20_000, bonus_fen=0,
                           source_key="test:drain", memo="")
        return offers

    from siyu.orders import pricing

    pricing.unregister_adjuster("balance", original)
    pricing.register_adjuster("balance", stale)
    try:
        with pytest.raises(DomainError) as exc:
            await order_shop.place([(sku, 1)], options={"use_balance": True})
    finally:
        pricing.unregister_adjuster("balance", stale)
        pricing.register_adjuster("balance", original)
    assert (exc.value.status, exc.value.code) == (409, "insufficient_balance")
    assert await lc.level(order_shop, sku) == stock_before
    assert (await w.balance(order_shop)).total_fen == 20_000
    await w.assert_ledger_sound(order_shop)


# -- refunds of orders paid by balance ------------------------------------------------------------------------------


async def test_partial_refunds_give_back_exactly_what_was_spent(order_shop: OrderShop) -> None:
    await order_shop.flat_freight(1000)
    await w.gift(order_shop, 50_000, bucket="principal")
    await w.gift(order_shop, 7_777, bucket="bonus")
    await w.settings(order_shop, bonus_share_bp=3333)
    a, b = order_shop.skus
    before = await w.balance(order_shop)
    order = await order_shop.place([(a, 3), (b, 2)], options={"use_balance": True})  # 3×128 + 2×39.90 + 10 = 473.80
    assert (order.payable_fen, order.balance_fen) == (0, 47_380)
    async with order_shop.runtime.db.uow() as s:
        await orders_service.start_payment(s, order_shop.scope, customer_id=order_shop.buyer.customer_id, order_id=order.id)
    lines = {ln.sku_id: ln for ln in await lc.lines(order_shop.runtime, order.id)}
    la, lb = lines[a], lines[b]
    for case_lines in ([(la.id, 1)], [(la.id, 1), (lb.id, 1)], [(lb.id, 1)], [(la.id, 1)]):
        case = await af.open_case(order_shop, order.id, case_lines)
        await af.act(order_shop, "approve", case.id)
        await af.settle(order_shop)
        await drain_outbox(order_shop.runtime)
        assert (await af.case(order_shop, case.id)).status == "refunded"
    assert await w.balance(order_shop) == before
    assert (await order_shop.order(order.id)).status == "closed"
    await w.assert_ledger_sound(order_shop)


async def test_refunds_of_an_order_paid_by_balance_and_gateway_return_both_parts(order_shop: OrderShop) -> None:
    await w.gift(order_shop, 10_001)
    a, b = order_shop.skus
    order = await order_shop.place([(a, 2), (b, 3)], options={"use_balance": True})
    assert order.balance_fen == 10_001
    payment = await lc.pay(order_shop, order.id)
    lines = {ln.sku_id: ln for ln in await lc.lines(order_shop.runtime, order.id)}
    for case_lines in ([(lines[b].id, 2)], [(lines[a].id, 2), (lines[b].id, 1)]):
        case = await af.open_case(order_shop, order.id, case_lines)
        await af.act(order_shop, "approve", case.id)
        await af.settle(order_shop)
        await drain_outbox(order_shop.runtime)
    refunded = sum(r.amount_fen for r in await lc.refunds_of(order_shop.runtime, payment.id) if r.status == "succeeded")
    assert refunded == payment.amount_fen
    assert (await w.balance(order_shop)).total_fen == 10_001
    await w.assert_ledger_sound(order_shop)


# -- principal refunds --------------------------------------------------------------------------------------------


async def _request(shop: OrderShop, amount_fen: int | None = None, reason: str = "") -> Any:
    token = w.as_customer(shop)
    try:
        async with shop.runtime.db.uow() as s:
            r = await wallet.request_refund(s, shop.scope, shop.buyer.customer_id, amount_fen=amount_fen, reason=reason)
            s.expunge(r)
            return r
    finally:
        actor_var.reset(token)


async def _staff(shop: OrderShop, fn: Any, *args: Any) -> Any:
    token = w.as_staff(shop)
    try:
        async with shop.runtime.db.uow() as s:
            r = await fn(s, shop.scope, *args)
            s.expunge(r)
            return r
    finally:
        actor_var.reset(token)


async def test_principal_goes_back_through_the_recharges_newest_first(order_shop: OrderShop) -> None:
    first = await w.recharge(order_shop, package_id=await w.package(order_shop, 30_000, 3000))
    second = await w.recharge(order_shop, package_id=await w.package(order_shop, 20_000, 2000))
    await order_shop.place([(order_shop.skus[1], 1)], options={"use_balance": True})  # spends ¥39.90 of principal
    left = 50_000 - 3990
    async with order_shop.runtime.db.uow(readonly=True) as s:
        assert await wallet.refundable_fen(s, order_shop.scope, order_shop.buyer.customer_id) == left
    err = await _fails(_request(order_shop, left + 1))
    assert err.code == "balance_refund_exceeds"  # the bonus is never refunded
    req = await _request(order_shop, None, "不再需要")
    assert (req.amount_fen, req.status) == (left, "pending")
    assert (await _fails(_request(order_shop, 100))).code == "balance_refund_open"
    done = await _staff(order_shop, wallet.approve_refund, req.id)
    assert done.status == "refunding"
    held = await w.balance(order_shop)
    assert (held.principal_fen, held.bonus_fen, held.held_fen) == (0, 5000, left)
    await af.settle(order_shop)
    await drain_outbox(order_shop.runtime)
    assert (await w.stored_refund(order_shop, req.id)).status == "refunded"
    assert (await w.stored_recharge(order_shop, second.id)).refunded_fen == 20_000
    assert (await w.stored_recharge(order_shop, first.id)).refunded_fen == left - 20_000
    assert await w.balance(order_shop) == wallet.WalletBalance(0, 5000, 5000, 0)
    await w.assert_ledger_sound(order_shop)


async def test_a_refused_gateway_refund_restores_the_principal(order_shop: OrderShop) -> None:
    r = await w.recharge(order_shop, package_id=await w.package(order_shop, 30_000, 3000))
    req = await _request(order_shop, 10_000, "[sandbox:fail] 测试")
    await _staff(order_shop, wallet.approve_refund, req.id)
    assert (await w.balance(order_shop)).held_fen == 10_000
    await af.settle(order_shop)
    await drain_outbox(order_shop.runtime)
    assert (await w.stored_refund(order_shop, req.id)).status == "failed"
    assert await w.balance(order_shop) == wallet.WalletBalance(30_000, 3000, 33_000, 0)
    assert (await w.stored_recharge(order_shop, r.id)).refunded_fen == 0
    async with order_shop.runtime.db.uow(readonly=True) as s:
        parts = (await s.execute(select(BalanceRefundPart).where(BalanceRefundPart.balance_refund_id == req.id))).scalars()
        assert [p.status for p in parts] == ["failed"]
    # The member can ask again.
    again = await _request(order_shop, 10_000)
    assert again.status == "pending"
    await w.assert_ledger_sound(order_shop)


async def test_rejecting_a_request_moves_nothing_and_approving_twice_is_refused(order_shop: OrderShop) -> None:
    await w.recharge(order_shop, package_id=await w.package(order_shop, 10_000))
    req = await _request(order_shop, 5000)
    with pytest.raises(DomainError):
        await _staff(order_shop, wallet.reject_refund, req.id, "  ")
    rejected = await _staff(order_shop, wallet.reject_refund, req.id, "请到店办理")
    assert (rejected.status, rejected.reject_reason) == ("rejected", "请到店办理")
    assert (await _fails(_staff(order_shop, wallet.approve_refund, req.id))).code == "balance_refund_illegal_transition"
    assert (await w.balance(order_shop)).principal_fen == 10_000
    # Principal spent after the request no longer covers it: approval is refused and nothing moves.
    req = await _request(order_shop, 10_000)
    await order_shop.place([(order_shop.skus[1], 1)], options={"use_balance": True})
    assert (await _fails(_staff(order_shop, wallet.approve_refund, req.id))).code == "balance_refund_exceeds"
    assert (await w.stored_refund(order_shop, req.id)).status == "pending"
    await w.assert_ledger_sound(order_shop)


async def test_adjusted_principal_without_a_recharge_cannot_be_refunded(order_shop: OrderShop) -> None:
    await w.gift(order_shop, 5000, bucket="principal")
    assert (await _fails(_request(order_shop))).code == "balance_refund_nothing"
    await w.settings(order_shop, refund_enabled=False)
    assert (await _fails(_request(order_shop))).code == "balance_refund_disabled"


# -- staff adjustments ----------------------------------------------------------------------------------------------


async def test_adjustments_are_audited_idempotent_and_never_overdraw(order_shop: OrderShop) -> None:
    cid = order_shop.buyer.customer_id
    token = w.as_staff(order_shop)
    try:
        async with order_shop.runtime.db.uow() as s:
            a = await wallet.adjust(s, order_shop.scope, cid, 5000, bucket="bonus", reason="活动补偿", token="form-token-1")
            b = await wallet.adjust(s, order_shop.scope, cid, 5000, bucket="bonus", reason="活动补偿", token="form-token-1")
            assert (a.created, b.created, a.journal.id) == (True, False, b.journal.id)
        for bad in ({"amount_fen": 0, "reason": "x"}, {"amount_fen": 10, "reason": " "},
                    {"amount_fen": 10, "reason": "x", "bucket": "cash"}, {"amount_fen": -6000, "reason": "扣回"}):
            with pytest.raises(DomainError):  # (the unit of work rolls back what a refused posting began)
                async with order_shop.runtime.db.uow() as s:
                    await wallet.adjust(s, order_shop.scope, cid, **bad)
        async with order_shop.runtime.db.uow() as s:
            await wallet.adjust(s, order_shop.scope, cid, -2000, bucket="bonus", reason="扣回")
    finally:
        actor_var.reset(token)
    assert await w.balance(order_shop) == wallet.WalletBalance(0, 3000, 3000, 0)
    async with order_shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(AuditEntry).where(AuditEntry.tenant_id == order_shop.scope.id,
                                                         AuditEntry.action == "members.wallet.adjust"))).scalars().all()
    assert [r.after["amount_fen"] for r in rows] == [5000, -2000]
    assert rows[0].actor_name == "测试店长"
    await w.assert_ledger_sound(order_shop)


async def test_history_pages_newest_first_with_running_balances(order_shop: OrderShop) -> None:
    for n in range(1, 6):
        await w.gift(order_shop, n * 100, bucket="bonus" if n % 2 else "principal")
    rows = await w.history(order_shop, limit=2)
    assert [(e.total_fen, e.balance_after_fen) for e in rows] == [(500, 1500), (400, 1000)]
    more = await w.history(order_shop, limit=10, before_id=rows[-1].id)
    assert [(e.total_fen, e.balance_after_fen) for e in more] == [(300, 600), (200, 300), (100, 100)]
    assert rows[0].label() == "人工调整" and rows[0].label(True) == "Manual adjustment"


# -- merged customers and tenancy ----------------------------------------------------------------------------------


async def test_a_merged_customer_brings_the_balance_along(order_shop: OrderShop) -> None:
    other = await order_shop.new_buyer()
    await w.gift(order_shop, 1000, buyer=other)
    await w.gift(order_shop, 500, bucket="bonus", buyer=other)
    await w.gift(order_shop, 200)
    # (The customers module's event names the tenant on the event, not in its payload.)
    event = outbox.Event(0, order_shop.scope.id, "customer.merged", {"survivor_id": order_shop.buyer.customer_id,
                                                                     "merged_id": other.customer_id}, 1)
    for _twice in range(2):
        async with order_shop.runtime.db.uow() as s:
            for handler in outbox.handlers_for("customer.merged"):
                if handler.__module__ == wallet.__name__:
                    await handler(s, event)
    assert await w.balance(order_shop) == wallet.WalletBalance(1200, 500, 1700, 0)
    assert (await w.balance(order_shop, other.customer_id)).total_fen == 0
    await w.assert_ledger_sound(order_shop)


async def test_another_tenants_recharges_and_requests_are_not_found(runtime: Runtime, order_shop: OrderShop,
                                                                    client: httpx.AsyncClient, tenant_factory: Any) -> None:
    r = await w.recharge(order_shop, package_id=await w.package(order_shop, 10_000))
    req = await _request(order_shop, 1000)
    other = await make_order_shop(runtime, client, tenant_factory, "别家")
    async with runtime.db.uow() as s:
        for call in (wallet.get_recharge(s, other.scope, r.id), wallet.get_refund(s, other.scope, req.id),
                     wallet.get_package(s, other.scope, r.package_id or 0)):
            with pytest.raises(DomainError) as exc:
                await call
            assert exc.value.status == 404
        # Nor another member's, in the same shop.
        with pytest.raises(DomainError) as exc:
            await wallet.get_recharge(s, order_shop.scope, r.id, customer_id=other.buyer.customer_id)
        assert exc.value.status == 404


async def test_an_order_of_a_merged_customer_returns_its_balance_to_the_survivor(order_shop: OrderShop) -> None:
    from siyu.customers import service as customers_service

    loser = await order_shop.new_buyer()
    survivor = order_shop.buyer
    await w.gift(order_shop, 20_000, buyer=loser)
    order = await order_shop.place([(order_shop.skus[0], 1)], buyer=loser, options={"use_balance": True})
    assert order.balance_fen == 12_800
    async with order_shop.runtime.db.uow() as s:
        a = await customers_service.get_customer(s, order_shop.scope, survivor.customer_id)
        b = await customers_service.get_customer(s, order_shop.scope, loser.customer_id)
        await customers_service.merge_customers(s, order_shop.scope, a, b)
    await drain_outbox(order_shop.runtime)
    assert await w.balance(order_shop) == wallet.WalletBalance(7_200, 0, 7_200, 0)
    # The loser's unpaid order is cancelled afterwards: what it spent goes to the survivor.
    async with order_shop.runtime.db.uow() as s:
        await orders_service.cancel_order(s, order_shop.scope, order.id, by="staff")
    await drain_outbox(order_shop.runtime)
    assert await w.balance(order_shop) == wallet.WalletBalance(20_000, 0, 20_000, 0)
    assert (await w.balance(order_shop, loser.customer_id)).total_fen == 0
    await w.assert_ledger_sound(order_shop)
