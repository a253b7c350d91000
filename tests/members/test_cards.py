"""Paid membership cards through the API and the services (SQLite and PostgreSQL).

Plans: CRUD with its validation, delete only while nobody bought, another tenant's plan is a
404, the read-only role gets 403. Buying: the Idempotency-Key (201, 200 for the same request,
409 for the key with another plan), paying through the sandbox (the card is set, gift points
once, the effective level lifted), a renewal starting where the card ends, a card of another
level refused (and, when two purchases race, the second payment sent back), unpaid
purchases closed at their deadline, a late and a duplicate payment refunded. Staff refunds:
pro-rata with the card shortened and gift points taken back in proportion, a renewal's
refund keeping the earlier time, a failed refund sent again. The expiry notice once, a
merged customer's card moving to the survivor, another member's purchase a 404.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from siyu.kit import clock
from siyu.kit.runtime import Runtime
from siyu.members import cards, levels
from siyu.members import service as members_service
from siyu.members.models import Member, MemberCardPurchase, MemberNotice, PointsEntry
from siyu.payments.models import Payment, Refund
from tests.conftest import drain_outbox
from tests.orders import _lifecycle as lc
from tests.orders.conftest import Buyer, OrderShop, make_order_shop

ADMIN = "/api/admin/v1/members/cards"


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


# -- helpers (the page and birthday tests use them too) ----------------------------------------------------


async def level_ids(shop: OrderShop) -> dict[int, int]:
    """rank → level id of the shop's levels (the defaults, written on first use)."""
    async with shop.runtime.db.uow() as s:
        return {lv.rank: lv.id for lv in await levels.ensure_levels(s, shop.scope)}


async def make_plan(shop: OrderShop, *, rank: int = 3, days: int = 30, price_fen: int = 3000, gift_points: int = 0,
                    name: str = "黑金月卡", on_sale: bool = True) -> int:
    ids = await level_ids(shop)
    async with shop.runtime.db.uow() as s:
        plan = await cards.create_plan(s, shop.scope, cards.PlanData(name=name, level_id=ids[rank], days=days,
                                                                       price_fen=price_fen, gift_points=gift_points,
                                                                       on_sale=on_sale))
        return plan.id


async def buy(shop: OrderShop, plan_id: int, buyer: Buyer | None = None, key: str | None = None) -> httpx.Response:
    who = buyer or shop.buyer
    return await shop.client.post(shop.url("/member/card/purchases"), json={"plan_id": plan_id},
                                  headers={**who.headers, "Idempotency-Key": key or secrets.token_hex(8)})


async def start(shop: OrderShop, purchase_id: int, buyer: Buyer | None = None) -> str:
    """Open the purchase's payment; returns its out_trade_no."""
    who = buyer or shop.buyer
    async with shop.runtime.db.uow() as s:
        started = await cards.start_payment(s, shop.scope, customer_id=who.customer_id, purchase_id=purchase_id)
        return started.payment.out_trade_no


async def pay(shop: OrderShop, purchase_id: int, buyer: Buyer | None = None) -> None:
    """Pay a purchase end to end through the sandbox."""
    await lc.sandbox_pay(shop.runtime, await start(shop, purchase_id, buyer))
    await drain_outbox(shop.runtime)


async def bought(shop: OrderShop, plan_id: int, buyer: Buyer | None = None) -> MemberCardPurchase:
    """A purchase made through the service (shopper sessions last a day; tests travel further) and paid."""
    who = buyer or shop.buyer
    async with shop.runtime.db.uow() as s:
        placed = await cards.create_purchase(s, shop.scope, customer_id=who.customer_id, plan_id=plan_id,
                                             idempotency_key=secrets.token_hex(8))
    await pay(shop, placed.purchase.id, buyer)
    p = await purchase(shop, placed.purchase.id)
    assert p.status == "paid", p.status
    return p


async def purchase(shop: OrderShop, purchase_id: int) -> MemberCardPurchase:
    async with shop.runtime.db.uow(readonly=True) as s:
        row = (await s.execute(select(MemberCardPurchase).where(MemberCardPurchase.id == purchase_id))).scalar_one()
        s.expunge(row)
        return row


async def member(shop: OrderShop, customer_id: int) -> Member:
    async with shop.runtime.db.uow() as s:
        row = await members_service.ensure_member(s, shop.scope, customer_id)
        await s.refresh(row)
        s.expunge(row)
        return row


async def points_of(shop: OrderShop, customer_id: int, prefix: str = "card:") -> list[tuple[str, int, str]]:
    """(kind, amount, source key) of the member's points entries whose key starts with ``prefix``
    (sign-up points and the like left out), oldest first."""
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(PointsEntry.kind, PointsEntry.amount, PointsEntry.source_key).where(
            PointsEntry.tenant_id == shop.scope.id, PointsEntry.customer_id == customer_id,
            PointsEntry.source_key.startswith(prefix)).order_by(PointsEntry.id))).all()
    return [(a, int(b), c) for a, b, c in rows]


async def refunds_of(shop: OrderShop, purchase_id: int) -> list[Refund]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = list((await s.execute(select(Refund).where(Refund.source_type == "member_card",
                                                          Refund.source_id == str(purchase_id))
                                     .order_by(Refund.id))).scalars())
        for r in rows:
            s.expunge(r)
        return rows


def close_to(a: Any, b: Any, seconds: int = 5) -> bool:
    return abs((a - b).total_seconds()) <= seconds


# -- plans ---------------------------------------------------------------------------------------------------


async def test_plans_crud_with_validation(order_shop: OrderShop, login_as: Any) -> None:
    shop = order_shop
    ids = await level_ids(shop)
    staff = await login_as(shop.tenant)
    body = {"name": " 黑金年卡 ", "level_id": ids[3], "days": 365, "price_fen": 19900, "gift_points": 2000,
            "description": "全场 8.8 折"}
    r = await staff.post(ADMIN + "/plans", json=body)
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["name"] == "黑金年卡" and plan["level_name"] == "黑金会员" and plan["on_sale"] and plan["paid_count"] == 0
    for bad in ({"days": 0}, {"price_fen": 0}, {"gift_points": -1}, {"name": ""}, {"price_fen": 19900.5},
                {"days": 3661}, {"extra": 1}):
        r = await staff.post(ADMIN + "/plans", json={**body, **bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await staff.post(ADMIN + "/plans", json={**body, "level_id": 9_999_999})
    assert r.status_code == 422 and r.json()["code"] == "card_level_not_found"
    r = await staff.patch(f"{ADMIN}/plans/{plan['id']}", json={"price_fen": 16800, "on_sale": False})
    assert r.status_code == 200 and r.json()["price_fen"] == 16800 and r.json()["on_sale"] is False
    assert r.json()["days"] == 365
    r = await staff.get(ADMIN + "/plans")
    assert [p["id"] for p in r.json()] == [plan["id"]]
    # Bought once: it can only go off sale.
    await staff.patch(f"{ADMIN}/plans/{plan['id']}", json={"on_sale": True})
    await bought(shop, plan["id"])
    r = await staff.delete(f"{ADMIN}/plans/{plan['id']}")
    assert r.status_code == 409 and r.json()["code"] == "card_plan_in_use"
    assert (await staff.get(f"{ADMIN}/plans/{plan['id']}")).json()["paid_count"] == 1
    unused = await make_plan(shop, name="试用卡")
    assert (await staff.delete(f"{ADMIN}/plans/{unused}")).status_code == 204
    assert (await staff.get(f"{ADMIN}/plans/{unused}")).status_code == 404


async def test_plans_of_another_tenant_and_read_only_staff(order_shop: OrderShop, login_as: Any, runtime: Runtime,
                                                           client: httpx.AsyncClient, tenant_factory: Any) -> None:
    shop = order_shop
    plan = await make_plan(shop)
    other = await make_order_shop(runtime, client, tenant_factory, "别家")
    them = await login_as(other.tenant)
    assert (await them.get(f"{ADMIN}/plans/{plan}")).status_code == 404
    assert (await them.patch(f"{ADMIN}/plans/{plan}", json={"on_sale": False})).status_code == 404
    assert (await them.delete(f"{ADMIN}/plans/{plan}")).status_code == 404
    # The other shop's shopper cannot buy it either.
    r = await buy(other, plan)
    assert r.status_code == 404 and r.json()["code"] == "card_plan_not_found"
    desk = await login_as(shop.tenant, "customer_service")  # members.read only
    assert (await desk.get(ADMIN + "/plans")).status_code == 200
    r = await desk.patch(f"{ADMIN}/plans/{plan}", json={"on_sale": False})
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"


# -- buying and paying ---------------------------------------------------------------------------------------


async def test_buy_with_an_idempotency_key_then_pay(order_shop: OrderShop) -> None:
    shop = order_shop
    plan = await make_plan(shop, days=30, price_fen=3000, gift_points=500)
    other = await make_plan(shop, name="黑金季卡", days=90, price_fen=8000)
    r = await shop.client.post(shop.url("/member/card/purchases"), json={"plan_id": plan}, headers=shop.buyer.headers)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"
    r = await buy(shop, plan, key="bad key!")
    assert r.status_code == 422 and r.json()["code"] == "invalid_idempotency_key"
    r = await buy(shop, plan, key="k-1")
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["status"] == "pending_payment" and first["price_fen"] == 3000 and first["actions"] == ["pay"]
    again = await buy(shop, plan, key="k-1")
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    clash = await buy(shop, other, key="k-1")
    assert clash.status_code == 409 and clash.json()["code"] == "idempotency_key_reused"

    r = await shop.client.post(shop.url(f"/member/card/purchases/{first['id']}/pay"), json={"channel": "sandbox"},
                               headers=shop.buyer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["amount_fen"] == 3000 and r.json()["pay_url"]
    await lc.sandbox_pay(shop.runtime, r.json()["out_trade_no"])
    await drain_outbox(shop.runtime)
    p = await purchase(shop, first["id"])
    assert p.status == "paid" and p.payment_id is not None and p.starts_at is not None
    assert p.ends_at == p.starts_at + timedelta(days=30)
    m = await member(shop, shop.buyer.customer_id)
    ids = await level_ids(shop)
    assert m.card_level_id == ids[3] and m.card_plan_id == plan and m.card_expires_at == p.ends_at
    assert await points_of(shop, shop.buyer.customer_id) == [("card_gift", 500, f"card:{p.id}:gift")]
    async with shop.runtime.db.uow(readonly=True) as s:
        level = await levels.effective_level(s, shop.scope, shop.buyer.customer_id)
    assert level.id == ids[3] and level.via == "card"
    # The event again (a replay) changes nothing.
    async with shop.runtime.db.uow() as s:
        outcome = await cards.apply_payment(s, shop.scope, purchase_id=p.id, payment_id=p.payment_id, amount_fen=3000,
                                            out_trade_no="x")
    assert outcome == "replay"
    assert len(await points_of(shop, shop.buyer.customer_id)) == 1
    # The store API shows it.
    mine = (await shop.client.get(shop.url("/member/card"), headers=shop.buyer.headers)).json()
    assert mine["card"]["active"] and mine["card"]["level_id"] == ids[3] and mine["card"]["days_left"] == 30
    assert {pl["id"]: pl["action"] for pl in mine["plans"]} == {plan: "renew", other: "renew"}
    listed = (await shop.client.get(shop.url("/member/card/purchases"), headers=shop.buyer.headers)).json()
    assert [x["id"] for x in listed["items"]] == [first["id"]] and listed["items"][0]["status"] == "paid"
    # Paid: no second payment.
    r = await shop.client.post(shop.url(f"/member/card/purchases/{first['id']}/pay"), json={},
                               headers=shop.buyer.headers)
    assert r.status_code == 409 and r.json()["code"] == "card_purchase_not_payable"


async def test_a_renewal_starts_where_the_card_ends(order_shop: OrderShop) -> None:
    shop = order_shop
    month = await make_plan(shop, days=30)
    quarter = await make_plan(shop, name="黑金季卡", days=90, price_fen=8000)
    first = await bought(shop, month)
    clock.travel(timedelta(days=10))
    second = await bought(shop, quarter)
    assert second.starts_at == first.ends_at
    assert second.ends_at == first.ends_at + timedelta(days=90)
    assert (await member(shop, shop.buyer.customer_id)).card_expires_at == second.ends_at
    # After the card ended, a new purchase starts when it is paid.
    clock.travel(timedelta(days=200))
    third = await bought(shop, month)
    assert third.starts_at is not None and close_to(third.starts_at, clock.now())


async def test_a_card_of_another_level_is_refused_and_a_racing_payment_goes_back(order_shop: OrderShop) -> None:
    shop = order_shop
    black = await make_plan(shop, rank=3, name="黑金月卡")
    gold = await make_plan(shop, rank=2, name="金卡月卡", price_fen=1500)
    # Two purchases opened before either is paid.
    r1, r2 = await buy(shop, black), await buy(shop, gold)
    assert r1.status_code == r2.status_code == 201
    await pay(shop, r1.json()["id"])
    r = await buy(shop, gold)
    assert r.status_code == 409 and r.json()["code"] == "card_level_conflict"
    trade = await start(shop, r2.json()["id"])
    await lc.sandbox_pay(shop.runtime, trade)
    await drain_outbox(shop.runtime)
    p = await purchase(shop, r2.json()["id"])
    assert p.status == "closed" and p.payment_id is None
    refunds = await refunds_of(shop, p.id)
    assert [(r.amount_fen, r.out_refund_no, r.status) for r in refunds] == [(1500, f"LC{trade}", "succeeded")]
    assert (await member(shop, shop.buyer.customer_id)).card_plan_id == black


async def test_unpaid_purchases_close_at_their_deadline(order_shop: OrderShop) -> None:
    shop = order_shop
    plan = await make_plan(shop)
    r = await buy(shop, plan)
    trade = await start(shop, r.json()["id"])
    async with shop.runtime.db.uow() as s:
        assert await cards.close_overdue(s) == 0
    clock.travel(timedelta(minutes=31))
    async with shop.runtime.db.uow() as s:
        assert await cards.close_overdue(s) == 1
    async with shop.runtime.db.uow() as s:
        assert await cards.close_overdue(s) == 0
    p = await purchase(shop, r.json()["id"])
    assert p.status == "closed"
    async with shop.runtime.db.uow(readonly=True) as s:
        pay_row = (await s.execute(select(Payment).where(Payment.out_trade_no == trade))).scalar_one()
    assert pay_row.status == "closed"
    r = await shop.client.post(shop.url(f"/member/card/purchases/{p.id}/pay"), json={}, headers=shop.buyer.headers)
    assert r.status_code == 409 and r.json()["code"] == "card_purchase_not_payable"


async def test_late_and_duplicate_payments_are_refunded(order_shop: OrderShop) -> None:
    from tests.orders.test_payment_events import gateway_took_money

    shop = order_shop
    plan = await make_plan(shop, price_fen=2000)
    # Late: the gateway takes the money after the purchase closed.
    r = await buy(shop, plan)
    trade = await start(shop, r.json()["id"])
    clock.travel(timedelta(minutes=31))
    async with shop.runtime.db.uow() as s:
        await cards.close_overdue(s)
    await gateway_took_money(shop.runtime, trade)
    await drain_outbox(shop.runtime)
    p = await purchase(shop, r.json()["id"])
    assert p.status == "closed"
    assert [(x.out_refund_no, x.amount_fen, x.status) for x in await refunds_of(shop, p.id)] == [
        (f"LC{trade}", 2000, "succeeded")]
    assert (await member(shop, shop.buyer.customer_id)).card_level_id is None
    # Duplicate: a second payment of a paid purchase.
    clock.reset()
    r = await buy(shop, plan)
    first_trade = await start(shop, r.json()["id"])
    await lc.sandbox_pay(shop.runtime, first_trade)
    await drain_outbox(shop.runtime)
    p = await purchase(shop, r.json()["id"])
    assert p.status == "paid"
    # A second succeeded payment of the same purchase (what a gateway reports for a payer who paid twice).
    async with shop.runtime.db.uow() as s:
        from siyu.payments import service as payments_service

        dup = Payment(tenant_id=shop.scope.id, source_type="member_card", source_id=str(p.id),
                      out_trade_no="PDUP" + secrets.token_hex(6), amount_fen=2000, currency="CNY", gateway="sandbox",
                      channel="sandbox", description="dup", status="succeeded", refunded_fen=0,
                      paid_at=clock.now())
        s.add(dup)
        await s.flush()
        outcome = await cards.apply_payment(s, shop.scope, purchase_id=p.id, payment_id=dup.id, amount_fen=2000,
                                            out_trade_no=dup.out_trade_no)
        assert outcome == "refunded"
        again = await cards.apply_payment(s, shop.scope, purchase_id=p.id, payment_id=dup.id, amount_fen=2000,
                                          out_trade_no=dup.out_trade_no)
        assert again == "refunded"  # the same refund (same out_refund_no), not a second one
        refunds = list((await s.execute(select(Refund).where(Refund.payment_id == dup.id))).scalars())
        assert [(x.out_refund_no, x.amount_fen) for x in refunds] == [(f"LC{dup.out_trade_no}", 2000)]
        assert (await payments_service.get_payment(s, shop.scope, dup.id)).refunded_fen == 2000
    assert (await purchase(shop, p.id)).status == "paid"


# -- staff refunds -----------------------------------------------------------------------------------------------


async def test_prorata_refund_shortens_the_card_and_takes_gift_points_back(order_shop: OrderShop,
                                                                           login_as: Any) -> None:
    shop = order_shop
    plan = await make_plan(shop, days=30, price_fen=3000, gift_points=300)
    p = await bought(shop, plan)
    clock.travel(timedelta(days=10))
    staff = await login_as(shop.tenant)
    d = (await staff.get(f"{ADMIN}/purchases/{p.id}")).json()
    assert d["can_refund"] and d["gift_points"] == 300
    assert d["refund_quote"]["full_fen"] == 3000 and 1999 <= d["refund_quote"]["prorata_fen"] <= 2000
    r = await staff.post(f"{ADMIN}/purchases/{p.id}/refund", json={"mode": "prorata", "reason": "顾客申请退卡"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "refunded" and not out["can_refund"]
    fen = out["refunds"][0]["amount_fen"]
    assert 1999 <= fen <= 2000 and out["refunds"][0]["out_refund_no"] == f"MC{p.purchase_no}"
    m = await member(shop, shop.buyer.customer_id)
    assert m.card_expires_at is not None and close_to(m.card_expires_at, clock.now())  # the only purchase: ends now
    back = 300 * fen // 3000
    assert (await points_of(shop, shop.buyer.customer_id))[-1] == ("refund_takeback", -back, f"card:{p.id}:gift:back")
    await drain_outbox(shop.runtime)
    assert [x.status for x in await refunds_of(shop, p.id)] == ["succeeded"]
    r = await staff.post(f"{ADMIN}/purchases/{p.id}/refund", json={"mode": "full"})
    assert r.status_code == 409 and r.json()["code"] == "card_purchase_not_refundable"
    r = await staff.post(f"{ADMIN}/purchases/{p.id}/retry-refund")
    assert r.status_code == 409 and r.json()["code"] == "card_refund_not_retryable"
    async with shop.runtime.db.uow(readonly=True) as s:
        level = await levels.effective_level(s, shop.scope, shop.buyer.customer_id)
    assert level.via == "growth"


async def test_refunding_a_renewal_keeps_the_earlier_time(order_shop: OrderShop, login_as: Any) -> None:
    shop = order_shop
    plan = await make_plan(shop, days=30, price_fen=3000)
    first = await bought(shop, plan)
    second = await bought(shop, plan)
    assert second.starts_at == first.ends_at
    staff = await login_as(shop.tenant)
    r = await staff.post(f"{ADMIN}/purchases/{second.id}/refund", json={"mode": "full"})
    assert r.status_code == 200, r.text
    assert r.json()["refunds"][0]["amount_fen"] == 3000
    assert (await member(shop, shop.buyer.customer_id)).card_expires_at == first.ends_at
    bad = await staff.post(f"{ADMIN}/purchases/{first.id}/refund", json={"mode": "amount", "amount_fen": 3001})
    assert bad.status_code == 422 and bad.json()["code"] == "card_refund_invalid"
    # An amount of 0 ends the card's time without sending money.
    r = await staff.post(f"{ADMIN}/purchases/{first.id}/refund", json={"mode": "amount", "amount_fen": 0,
                                                                       "reason": "违规收回"})
    assert r.status_code == 200 and r.json()["status"] == "refunded" and r.json()["refunds"] == []
    m = await member(shop, shop.buyer.customer_id)
    assert m.card_expires_at is not None and close_to(m.card_expires_at, clock.now())


async def test_a_failed_refund_is_sent_again(order_shop: OrderShop, login_as: Any) -> None:
    shop = order_shop
    p = await bought(shop, await make_plan(shop, price_fen=3000))
    staff = await login_as(shop.tenant)
    r = await staff.post(f"{ADMIN}/purchases/{p.id}/refund", json={"mode": "full", "reason": "[sandbox:fail]"})
    assert r.status_code == 200, r.text
    await drain_outbox(shop.runtime)
    assert [x.status for x in await refunds_of(shop, p.id)] == ["failed"]
    d = (await staff.get(f"{ADMIN}/purchases/{p.id}")).json()
    assert d["can_retry_refund"]
    r = await staff.post(f"{ADMIN}/purchases/{p.id}/retry-refund")
    assert r.status_code == 200, r.text
    # The retry keeps the failing reason in the sandbox, so it fails again; what matters is a new refund number.
    refunds = await refunds_of(shop, p.id)
    assert [x.out_refund_no for x in refunds] == [f"MC{p.purchase_no}", f"MC{p.purchase_no}R2"]
    assert refunds[1].amount_fen == 3000


# -- notices, merges, isolation -------------------------------------------------------------------------------------


async def test_the_expiry_notice_is_sent_once_per_expiry(order_shop: OrderShop) -> None:
    shop = order_shop
    plan = await make_plan(shop, days=30)
    await bought(shop, plan)
    async with shop.runtime.db.uow() as s:
        seen, written, _last = await cards.notify_expiring(s)
    assert written == 0 or seen >= 1  # other tests' cards may be due; ours is not yet
    clock.travel(timedelta(days=24))
    for _ in range(2):
        async with shop.runtime.db.uow() as s:
            await cards.notify_expiring(s)
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(MemberNotice.kind, MemberNotice.body).where(
            MemberNotice.tenant_id == shop.scope.id, MemberNotice.customer_id == shop.buyer.customer_id))).all()
    assert [k for k, _b in rows if k == "card_expiring"] == ["card_expiring"]
    # Renewed: the new expiry gets its own notice when it comes near.
    await bought(shop, plan)
    clock.travel(timedelta(days=30))
    async with shop.runtime.db.uow() as s:
        await cards.notify_expiring(s)
    async with shop.runtime.db.uow(readonly=True) as s:
        kinds = (await s.execute(select(MemberNotice.kind).where(
            MemberNotice.tenant_id == shop.scope.id, MemberNotice.customer_id == shop.buyer.customer_id))).scalars().all()
    assert list(kinds).count("card_expiring") == 2


async def test_a_merged_customers_card_moves_to_the_survivor(order_shop: OrderShop) -> None:
    from siyu.kit import outbox

    shop = order_shop
    plan = await make_plan(shop, days=30)
    loser = await shop.new_buyer()
    await bought(shop, plan, loser)
    survivor = shop.buyer
    await bought(shop, plan, survivor)
    async with shop.runtime.db.uow() as s:
        outbox.publish(s, "customer.merged", {"tenant_id": shop.scope.id, "survivor_id": survivor.customer_id,
                                              "merged_id": loser.customer_id}, tenant_id=shop.scope.id)
    await drain_outbox(shop.runtime)
    kept = await member(shop, survivor.customer_id)
    gone = await member(shop, loser.customer_id)
    assert gone.card_level_id is None and gone.card_expires_at is None
    assert kept.card_expires_at is not None and close_to(kept.card_expires_at, clock.now() + timedelta(days=60), 30)


async def test_another_members_purchase_is_404(order_shop: OrderShop) -> None:
    shop = order_shop
    plan = await make_plan(shop)
    r = await buy(shop, plan)
    other = await shop.new_buyer()
    for method, path in (("GET", f"/member/card/purchases/{r.json()['id']}"),
                         ("POST", f"/member/card/purchases/{r.json()['id']}/pay")):
        resp = await shop.client.request(method, shop.url(path), headers=other.headers, json={} if method == "POST" else None)
        assert resp.status_code == 404 and resp.json()["code"] == "card_purchase_not_found", (path, resp.text)
    # An off-sale plan cannot be bought.
    off = await make_plan(shop, name="下架卡", on_sale=False)
    r = await buy(shop, off)
    assert r.status_code == 409 and r.json()["code"] == "card_plan_off_sale"
    assert (await shop.client.get(shop.url("/member/card"))).status_code == 401


async def test_the_demo_sells_cards_through_the_sandbox(order_shop: OrderShop) -> None:
    import random

    from siyu.kit.outbox import OutboxEvent
    from siyu.members import birthday, demo_cards

    shop = order_shop
    buyers = [(await shop.new_buyer(province_code=None)).customer_id for _ in range(4)]
    async with shop.runtime.db.uow() as s:
        marker = int((await s.execute(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1))).scalar_one())
        made = await demo_cards.seed_demo(s, shop.scope, random.Random(7), buyers)
    assert made["plans"] == 3 and made["purchases"] >= 1
    async with shop.runtime.db.uow(readonly=True) as s:
        plans = await cards.list_plans(s, shop.scope)
        rows, total = await cards.list_purchases(s, shop.scope, limit=100)
        left = (await s.execute(select(OutboxEvent.topic).where(OutboxEvent.id > marker,
                                                                OutboxEvent.status == "pending"))).scalars().all()
        conf = await birthday.birthday_settings(s, shop.scope)
    assert [p.name for p in plans] == ["黑金年卡", "黑金季卡", "金卡月卡"]
    assert total == made["purchases"] and all(p.status == "paid" for p in rows)
    assert "payment.succeeded" not in left and "payments.sandbox.notify" not in left
    assert conf.enabled and conf.mode == "day"
    for p in rows:
        m = await member(shop, p.customer_id)
        assert m.card_expires_at is not None and m.card_expires_at >= p.ends_at  # type: ignore[operator]
