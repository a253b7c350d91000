"""The points ledger: earn, spend, give back, take back, adjust, expiry by lot, check-in,
award rules, account merges and expiry notices — each against the invariants
``Member.points = Σ entries = Σ lot remaining ≥ 0`` and one entry per source key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from siyu.kit import clock
from siyu.kit.audit import AuditEntry
from siyu.kit.context import Actor, actor_var
from siyu.kit.errors import Conflict, NotFound, ValidationFailed
from siyu.kit.runtime import Runtime
from siyu.kit.sms import SmsMessage
from siyu.kit.tenancy import TenantScope
from siyu.members import points
from siyu.members.models import MemberNotice, PointsLot
from tests.members._points import PointsShop, lot_uses, make_points_shop


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
async def shop(runtime: Runtime, tenant_factory: Any) -> PointsShop:
    return await make_points_shop(runtime, tenant_factory)


# -- rules -----------------------------------------------------------------------------------------------


def test_expiry_yearly_rolling_never() -> None:
    scope = TenantScope(1, "t", "Asia/Shanghai")
    # 2024-12-31 20:00 Shanghai is 12:00 UTC: earned in 2024, valid through 2025-12-31 (local).
    at = datetime(2024, 12, 31, 12, 0, tzinfo=UTC)
    yearly = points.expiry_for(scope, points.PointsRules(expiry_mode="yearly"), at)
    assert yearly == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)
    # 2024-12-31 17:00 UTC is already 2025-01-01 in Shanghai: valid through 2026-12-31.
    late = points.expiry_for(scope, points.PointsRules(expiry_mode="yearly"), datetime(2024, 12, 31, 17, 0, tzinfo=UTC))
    assert late == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    rolling = points.expiry_for(scope, points.PointsRules(expiry_mode="rolling", expiry_days=30), at)
    assert rolling == datetime(2025, 1, 30, 16, 0, tzinfo=UTC)  # valid through 2025-01-30 local
    assert points.expiry_for(scope, points.PointsRules(expiry_mode="never"), at) is None


def test_points_and_fen() -> None:
    r = points.PointsRules(points_per_yuan=100)
    assert r.fen_for(150) == 150 and r.points_for(150) == 150
    r = points.PointsRules(points_per_yuan=1000)
    assert r.fen_for(1234) == 123 and r.points_for(123) == 1230
    r = points.PointsRules(points_per_yuan=3)
    assert r.fen_for(1) == 33 and r.points_for(33) == 1 and r.points_for(34) == 2


async def test_rules_default_save_and_refuse_unknown_awards(shop: PointsShop, runtime: Runtime) -> None:
    r = await shop.run(points.rules)
    assert r.points_per_yuan == 100 and r.expiry_mode == "yearly" and r.award_points("signup") == 100
    r = await shop.save_rules(earn_per_yuan=2, awards={"signup": 5}, expiry_mode="never")
    assert r.earn_per_yuan == 2 and r.award_points("signup") == 5 and r.award_points("review") == 20
    with pytest.raises(ValidationFailed) as exc:
        await shop.save_rules(awards={"no_such_rule": 5})
    assert exc.value.code == "points_award_invalid"
    async with runtime.db.uow(readonly=True) as s:
        audit_rows = (await s.execute(select(AuditEntry).where(AuditEntry.tenant_id == shop.tenant_id,
                                                               AuditEntry.action == "members.settings.points"))).scalars().all()
    assert len(audit_rows) == 1


# -- earn / spend ---------------------------------------------------------------------------------------------


async def test_earn_once_per_key_with_a_lot(shop: PointsShop) -> None:
    cid = await shop.customer()
    e = await shop.run(points.earn, cid, 100, kind="earn", source_key=f"t:{cid}:1", note="订单")
    assert e is not None and e.amount == 100 and e.balance_after == 100
    assert await shop.run(points.earn, cid, 100, kind="earn", source_key=f"t:{cid}:1") is None
    st = await shop.state(cid)
    st.check()
    assert st.member_points == 100 and len(st.lots) == 1 and st.lots[0].expires_at is not None
    with pytest.raises(ValidationFailed):
        await shop.run(points.earn, cid, 0, kind="earn", source_key=f"t:{cid}:2")
    with pytest.raises(ValidationFailed):
        await shop.run(points.earn, cid, -5, kind="earn", source_key=f"t:{cid}:3")


async def test_spend_draws_nearest_expiry_first_never_last(shop: PointsShop) -> None:
    cid = await shop.customer()
    now = clock.now()
    forever = await shop.run(points.earn, cid, 50, kind="adjust", source_key=f"a:{cid}", expires_at=None)
    late = await shop.run(points.earn, cid, 30, kind="earn", source_key=f"b:{cid}", expires_at=now + timedelta(days=60))
    soon = await shop.run(points.earn, cid, 20, kind="earn", source_key=f"c:{cid}", expires_at=now + timedelta(days=5))
    assert forever and late and soon
    spent = await shop.run(points.spend, cid, 45, kind="spend", source_key=f"s:{cid}")
    assert spent is not None and spent.amount == -45 and spent.balance_after == 55
    st = await shop.state(cid)
    st.check()
    by_entry = {lot.entry_id: lot.remaining for lot in st.lots}
    assert by_entry == {soon.id: 0, late.id: 5, forever.id: 50}
    assert sorted((await lot_uses(shop.runtime, shop.scope, spent.id)).values()) == [20, 25]
    # A replay changes nothing; more than there is is a 409 that changes nothing either.
    assert await shop.run(points.spend, cid, 45, kind="spend", source_key=f"s:{cid}") is None
    with pytest.raises(Conflict) as exc:
        await shop.run(points.spend, cid, 56, kind="spend", source_key=f"s2:{cid}")
    assert exc.value.code == "insufficient_points" and exc.value.extra == {"available": 55, "needed": 56}
    (await shop.state(cid)).check()


async def test_give_back_whole_restores_every_lot(shop: PointsShop) -> None:
    cid = await shop.customer()
    now = clock.now()
    await shop.run(points.earn, cid, 20, kind="earn", source_key=f"a:{cid}", expires_at=now + timedelta(days=5))
    await shop.run(points.earn, cid, 30, kind="earn", source_key=f"b:{cid}", expires_at=now + timedelta(days=50))
    before = (await shop.state(cid)).remaining()
    await shop.run(points.spend, cid, 40, kind="spend", source_key=f"s:{cid}")
    # Partial: the latest expiry gets its points back first.
    part = await shop.run(points.give_back, cid, spent_source_key=f"s:{cid}", amount=15, source_key=f"g1:{cid}",
                          kind="refund_return")
    assert part is not None and part.amount == 15
    st = await shop.state(cid)
    st.check()
    lots = sorted(st.lots, key=lambda lot: lot.id)
    assert [lot.remaining for lot in lots] == [0, 25]
    # The rest (asking for more than is left gives back what is left), then nothing is left.
    rest = await shop.run(points.give_back, cid, spent_source_key=f"s:{cid}", amount=999, source_key=f"g2:{cid}",
                          kind="cancel_return")
    assert rest is not None and rest.amount == 25
    assert (await shop.state(cid)).remaining() == before
    assert await shop.run(points.give_back, cid, spent_source_key=f"s:{cid}", amount=1, source_key=f"g3:{cid}",
                          kind="refund_return") is None
    # Unknown spend, another member's spend, a used key: None, nothing changes.
    other = await shop.customer()
    assert await shop.run(points.give_back, other, spent_source_key=f"s:{cid}", amount=1, source_key=f"g4:{cid}",
                          kind="refund_return") is None
    assert await shop.run(points.give_back, cid, spent_source_key="nope", amount=1, source_key=f"g5:{cid}",
                          kind="refund_return") is None
    (await shop.state(cid)).check()


async def test_give_back_forfeits_the_share_of_an_expired_lot(shop: PointsShop) -> None:
    cid = await shop.customer()
    now = clock.now()
    await shop.run(points.earn, cid, 20, kind="earn", source_key=f"a:{cid}", expires_at=now + timedelta(days=1))
    await shop.run(points.earn, cid, 30, kind="earn", source_key=f"b:{cid}", expires_at=None)
    await shop.run(points.spend, cid, 40, kind="spend", source_key=f"s:{cid}")  # 20 from a, 20 from b
    clock.travel(timedelta(days=2))
    back = await shop.run(points.give_back, cid, spent_source_key=f"s:{cid}", amount=40, source_key=f"g:{cid}",
                          kind="refund_return", note="退款")
    assert back is not None and back.amount == 20 and "20 积分已过期" in back.note
    st = await shop.state(cid)
    st.check()
    assert st.member_points == 30
    # Nothing is left to give back: the forfeited share counts as given.
    assert await shop.run(points.give_back, cid, spent_source_key=f"s:{cid}", amount=1, source_key=f"g2:{cid}",
                          kind="refund_return") is None


async def test_take_back_at_most_the_balance(shop: PointsShop) -> None:
    cid = await shop.customer()
    await shop.run(points.earn, cid, 30, kind="earn", source_key=f"a:{cid}")
    e = await shop.run(points.take_back, cid, 20, source_key=f"t1:{cid}", kind="refund_takeback")
    assert e is not None and e.amount == -20
    e = await shop.run(points.take_back, cid, 50, source_key=f"t2:{cid}", kind="refund_takeback")
    assert e is not None and e.amount == -10 and "实扣 10" in e.note
    e = await shop.run(points.take_back, cid, 5, source_key=f"t3:{cid}", kind="refund_takeback")
    assert e is not None and e.amount == 0
    assert await shop.run(points.take_back, cid, 5, source_key=f"t3:{cid}", kind="refund_takeback") is None
    st = await shop.state(cid)
    st.check()
    assert st.member_points == 0


# -- staff adjustments -------------------------------------------------------------------------------------------


async def test_adjust_needs_a_reason_stays_non_negative_and_is_audited(shop: PointsShop, runtime: Runtime) -> None:
    cid = await shop.customer()
    token = actor_var.set(Actor("staff", 7, "店长", shop.tenant_id))
    try:
        e = await shop.run(points.adjust, cid, 80, reason="活动补发")
        assert e.amount == 80 and e.staff_id == 7 and e.kind == "adjust"
        e = await shop.run(points.adjust, cid, -30, reason="误发扣回")
        assert e.amount == -30
        with pytest.raises(Conflict) as exc:
            await shop.run(points.adjust, cid, -51, reason="超额")
        assert exc.value.code == "insufficient_points"
        for bad in (0, True, 10**9):
            with pytest.raises(ValidationFailed):
                await shop.run(points.adjust, cid, bad, reason="x")
        with pytest.raises(ValidationFailed) as exc2:
            await shop.run(points.adjust, cid, 5, reason="   ")
        assert exc2.value.code == "points_reason_invalid"
        with pytest.raises(NotFound):
            await shop.run(points.adjust, 10**12, 5, reason="无此顾客")
    finally:
        actor_var.reset(token)
    st = await shop.state(cid)
    st.check()
    assert st.member_points == 50
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(AuditEntry).where(AuditEntry.tenant_id == shop.tenant_id,
                                                         AuditEntry.action == "members.points.adjust"))).scalars().all()
    assert [r.after["amount"] for r in rows] == [80, -30]
    assert rows[0].actor_kind == "staff" and rows[0].after["reason"] == "活动补发"


async def test_another_tenants_customer_is_404(shop: PointsShop, runtime: Runtime, tenant_factory: Any) -> None:
    other = await make_points_shop(runtime, tenant_factory)
    cid = await other.customer()
    with pytest.raises(NotFound):
        await shop.run(points.adjust, cid, 5, reason="跨租户")


# -- expiry ---------------------------------------------------------------------------------------------------


async def test_expired_lots_are_not_spendable_and_expire_once(shop: PointsShop) -> None:
    cid = await shop.customer()
    now = clock.now()
    await shop.run(points.earn, cid, 20, kind="earn", source_key=f"a:{cid}", expires_at=now + timedelta(days=1))
    await shop.run(points.earn, cid, 5, kind="earn", source_key=f"a2:{cid}", expires_at=now + timedelta(days=1))
    await shop.run(points.earn, cid, 30, kind="earn", source_key=f"b:{cid}", expires_at=now + timedelta(days=10))
    clock.travel(timedelta(days=2))
    bal = await shop.run(points.balance, cid)
    assert bal.points == 55 and bal.available == 30 and bal.expiring == 30
    with pytest.raises(Conflict):
        await shop.run(points.spend, cid, 31, kind="spend", source_key=f"s:{cid}")
    # The failed spend rolled back with its unit of work; the sweeper expires both lots in one entry.
    async with shop.runtime.db.uow() as s:
        assert await points.expire_batch(s) >= 1
    async with shop.runtime.db.uow() as s:
        await points.expire_batch(s)
    st = await shop.state(cid)
    st.check()
    expired = [e for e in st.entries if e.kind == "expire"]
    assert [e.amount for e in expired] == [-25]
    assert st.member_points == 30
    e = await shop.run(points.spend, cid, 30, kind="spend", source_key=f"s2:{cid}")
    assert e is not None
    (await shop.state(cid)).check()


async def test_spending_expires_what_is_due_first(shop: PointsShop) -> None:
    cid = await shop.customer()
    now = clock.now()
    await shop.run(points.earn, cid, 20, kind="earn", source_key=f"a:{cid}", expires_at=now + timedelta(hours=1))
    await shop.run(points.earn, cid, 30, kind="earn", source_key=f"b:{cid}", expires_at=None)
    clock.travel(timedelta(hours=2))
    e = await shop.run(points.spend, cid, 10, kind="spend", source_key=f"s:{cid}")
    assert e is not None and e.balance_after == 20
    st = await shop.state(cid)
    st.check()
    assert [x.kind for x in st.entries] == ["earn", "earn", "expire", "spend"]


async def test_notice_once_per_lot_with_sms(shop: PointsShop, runtime: Runtime) -> None:
    await shop.save_rules(notice_days=10)
    cid = await shop.customer()
    now = clock.now()
    await shop.run(points.earn, cid, 20, kind="earn", source_key=f"a:{cid}", expires_at=now + timedelta(days=5))
    await shop.run(points.earn, cid, 7, kind="earn", source_key=f"a2:{cid}", expires_at=now + timedelta(days=5))
    await shop.run(points.earn, cid, 30, kind="earn", source_key=f"b:{cid}", expires_at=now + timedelta(days=40))
    async with runtime.db.uow() as s:
        await points.notice_batch(s)
    async with runtime.db.uow() as s:
        await points.notice_batch(s)
    async with runtime.db.uow(readonly=True) as s:
        notices = (await s.execute(select(MemberNotice).where(MemberNotice.tenant_id == shop.tenant_id,
                                                              MemberNotice.customer_id == cid))).scalars().all()
        lots = (await s.execute(select(PointsLot).where(PointsLot.tenant_id == shop.tenant_id,
                                                        PointsLot.customer_id == cid).order_by(PointsLot.id))).scalars().all()
        sms = (await s.execute(select(SmsMessage).where(SmsMessage.tenant_id == shop.tenant_id,
                                                        SmsMessage.template == "points_expiring"))).scalars().all()
    assert len(notices) == 1 and notices[0].kind == "points_expiring" and notices[0].title.startswith("27 积分")
    assert [lot.notified_at is not None for lot in lots] == [True, True, False]
    assert len(sms) == 1 and "27 积分" in sms[0].content
    # 40 days out comes into the window later and is told once as well.
    clock.travel(timedelta(days=35))
    async with runtime.db.uow() as s:
        await points.notice_batch(s)
    async with runtime.db.uow(readonly=True) as s:
        n = len((await s.execute(select(MemberNotice).where(MemberNotice.tenant_id == shop.tenant_id,
                                                            MemberNotice.customer_id == cid))).scalars().all())
    assert n == 2


# -- history -----------------------------------------------------------------------------------------------------


async def test_history_pages_newest_first(shop: PointsShop) -> None:
    cid = await shop.customer()
    for i in range(5):
        await shop.run(points.earn, cid, i + 1, kind="earn", source_key=f"h:{cid}:{i}")
    first = await shop.run(points.history, cid, limit=3)
    assert [e.amount for e in first] == [5, 4, 3]
    more = await shop.run(points.history, cid, limit=3, before_id=first[-1].id)
    assert [e.amount for e in more] == [2, 1]


# -- check-in and awards -------------------------------------------------------------------------------------------


async def test_checkin_once_a_day_with_streak_bonus(shop: PointsShop) -> None:
    await shop.save_rules(checkin_points=5, checkin_streak_days=3, checkin_streak_bonus=20)
    cid = await shop.customer()
    got = []
    for _day in range(4):
        r1 = await shop.run(points.checkin, cid)
        r2 = await shop.run(points.checkin, cid)
        assert r1.checked_in and not r2.checked_in
        got.append((r1.points, r1.bonus, r1.streak))
        clock.travel(timedelta(days=1))
    assert got == [(5, 0, 1), (5, 0, 2), (5, 20, 3), (5, 0, 4)]
    clock.travel(timedelta(days=1))  # a day missed: the streak starts again
    status = await shop.run(points.checkin_status, cid)
    assert not status.checked_today and status.streak == 0 and status.points_today == 5
    r = await shop.run(points.checkin, cid)
    assert r.streak == 1
    st = await shop.state(cid)
    st.check()
    assert st.member_points == 5 * 5 + 20


async def test_award_rules(shop: PointsShop) -> None:
    cid = await shop.customer()
    with pytest.raises(ValidationFailed) as exc:
        await shop.run(points.award, cid, "no_such", source_key="x")
    assert exc.value.code == "points_rule_unknown"
    e = await shop.run(points.award, cid, "review", source_key=f"review:{cid}:1")
    assert e is not None and e.amount == 20 and e.kind == "review"
    assert await shop.run(points.award, cid, "review", source_key=f"review:{cid}:1") is None
    points.register_rule("share_poster", label_zh="分享海报", label_en="Shared a poster", default_points=15)
    try:
        e = await shop.run(points.award, cid, "share_poster", source_key=f"poster:{cid}")
        assert e is not None and e.amount == 15 and e.kind == "campaign"
        e = await shop.run(points.award, cid, "share_poster", source_key=f"poster2:{cid}", points=3)
        assert e is not None and e.amount == 3
        await shop.save_rules(awards={"share_poster": 0})
        assert await shop.run(points.award, cid, "share_poster", source_key=f"poster3:{cid}") is None
    finally:
        points._award_rules.pop("share_poster", None)
    (await shop.state(cid)).check()


async def test_merge_moves_lots_with_their_expiry(shop: PointsShop) -> None:
    a, b = await shop.customer(), await shop.customer()
    now = clock.now()
    await shop.run(points.earn, a, 20, kind="earn", source_key=f"a:{a}", expires_at=now + timedelta(days=5))
    await shop.run(points.earn, a, 30, kind="earn", source_key=f"b:{a}", expires_at=None)
    await shop.run(points.earn, b, 7, kind="earn", source_key=f"c:{b}")
    moved = await shop.run(points.move_points, a, b)
    assert moved == 50
    assert await shop.run(points.move_points, a, b) == 0
    sa, sb = await shop.state(a), await shop.state(b)
    sa.check()
    sb.check()
    assert sa.member_points == 0 and sb.member_points == 57
    assert sorted((lot.remaining, lot.expires_at is None) for lot in sb.lots if lot.remaining) == [
        (7, False), (20, False), (30, True)]


async def test_demo_seed_keeps_the_ledger_whole(shop: PointsShop) -> None:
    import random

    from siyu.members import demo_points

    customers = [await shop.customer() for _ in range(6)]
    async with shop.runtime.db.uow() as s:
        made = await demo_points.seed_demo(s, shop.scope, random.Random(7), customers)
    assert made["signup"] == 6 and made["checkins"] > 0 and made["adjustments"] == 4
    async with shop.runtime.db.uow() as s:
        again = await demo_points.seed_demo(s, shop.scope, random.Random(7), customers)
    assert again["signup"] == 0  # the sign-up award is once per customer
    for cid in customers:
        (await shop.state(cid)).check()
    assert (await shop.run(points.rules)).max_share_bp == 3000


# -- concurrency ---------------------------------------------------------------------------------------------------


async def test_concurrent_spends_never_overdraw(shop: PointsShop) -> None:
    import asyncio

    cid = await shop.customer()
    await shop.run(points.earn, cid, 50, kind="earn", source_key=f"c:{cid}")

    async def one(i: int) -> bool:
        try:
            return await shop.run(points.spend, cid, 10, kind="spend", source_key=f"cs:{cid}:{i}") is not None
        except Conflict as exc:
            assert exc.code == "insufficient_points"
            return False

    results = await asyncio.gather(*(one(i) for i in range(12)))
    assert sum(results) == 5
    st = await shop.state(cid)
    st.check()
    assert st.member_points == 0


async def test_concurrent_checkins_check_in_once(shop: PointsShop) -> None:
    import asyncio

    cid = await shop.customer()
    results = await asyncio.gather(*(shop.run(points.checkin, cid) for _ in range(6)))
    assert sum(r.checked_in for r in results) == 1
    st = await shop.state(cid)
    st.check()
    assert st.member_points == 10


async def test_the_same_key_at_once_earns_once(shop: PointsShop) -> None:
    import asyncio

    cid = await shop.customer()
    results = await asyncio.gather(*(shop.run(points.earn, cid, 7, kind="earn", source_key=f"same:{cid}") for _ in range(6)))
    assert sum(r is not None for r in results) == 1
    assert (await shop.state(cid)).member_points == 7


async def test_the_sweepers_expire_and_notify(shop: PointsShop, runtime: Runtime) -> None:
    from siyu.kit.jobs import registered_sweepers
    from siyu.members import tasks_points

    assert {"members.points_expire", "members.points_notice"} <= {sw.name for sw in registered_sweepers()}
    cid = await shop.customer()
    now = clock.now()
    await shop.run(points.earn, cid, 9, kind="earn", source_key=f"sw:{cid}:1", expires_at=now + timedelta(days=2))
    await shop.run(points.earn, cid, 4, kind="earn", source_key=f"sw:{cid}:2", expires_at=now + timedelta(days=400))
    assert await tasks_points.notify_expiring_points(runtime) >= 1
    clock.travel(timedelta(days=3))
    assert await tasks_points.expire_points(runtime) >= 1
    await tasks_points.expire_points(runtime)  # a second pass finds nothing more of this member
    st = await shop.state(cid)
    st.check()
    assert st.member_points == 4 and [e.amount for e in st.entries if e.kind == "expire"] == [-9]
