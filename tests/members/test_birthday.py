"""Birthday perks (SQLite and PostgreSQL): the settings and their API, the daily job in the
tenant's time zone (today, a missed day made up, month mode, 29 February), the level's
points or the override, a coupon through the rewards extension point, once per member per
year — run twice the same day, and two runs at the same moment, still give once — blocked
customers skipped, and the console page (also in English).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from siyu.kit import clock
from siyu.kit.runtime import Runtime
from siyu.members import birthday, levels, rewards
from siyu.members.models import BirthdayGrant, MemberNotice, PointsEntry
from siyu.members.tasks_birthday import run_birthday_pass
from tests._pages import Browser, browsers, chinese_left, staff_sign_in
from tests.members.test_cards import bought, make_plan
from tests.orders import _lifecycle as lc
from tests.orders.conftest import OrderShop

ADMIN = "/api/admin/v1/members/birthday"


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
async def _notifications(app: Any, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for c in lc.sandbox_notifications_into(app, runtime):
        yield c


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make


# -- helpers ----------------------------------------------------------------------------------------------------


def at_local(shop: OrderShop, day: date, hour: int = 9) -> None:
    """Move the clock to ``hour`` o'clock of ``day`` in the shop's time zone."""
    from zoneinfo import ZoneInfo

    target = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(shop.scope.timezone))
    clock.travel(target - clock.now())


async def customer(shop: OrderShop, born: date | None) -> int:
    who = await shop.new_buyer(province_code=None)
    if born is not None:
        async with shop.runtime.db.uow() as s:
            await levels.update_profile(s, shop.scope, who.customer_id, birthday=born, by_staff=True)
    return who.customer_id


async def configure(shop: OrderShop, *, enabled: bool = True, mode: str = "day", points: int | None = 200,
                    coupon_id: int | None = None) -> None:
    async with shop.runtime.db.uow() as s:
        await birthday.save_settings(s, shop.scope, enabled=enabled, mode=mode, points=points, coupon_id=coupon_id)


async def run(shop: OrderShop) -> int:
    return await run_birthday_pass(shop.runtime.db, tenant_ids=[shop.scope.id])


async def grants(shop: OrderShop) -> dict[int, list[tuple[int, int, int | None]]]:
    """customer → [(year, points, coupon_id)]."""
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(BirthdayGrant.customer_id, BirthdayGrant.year, BirthdayGrant.points,
                                       BirthdayGrant.coupon_id).where(BirthdayGrant.tenant_id == shop.scope.id)
                                .order_by(BirthdayGrant.id))).all()
    out: dict[int, list[tuple[int, int, int | None]]] = {}
    for cid, year, pts, coupon in rows:
        out.setdefault(int(cid), []).append((int(year), int(pts), coupon))
    return out


async def birthday_points(shop: OrderShop, customer_id: int) -> list[tuple[int, str]]:
    async with shop.runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(PointsEntry.amount, PointsEntry.source_key).where(
            PointsEntry.tenant_id == shop.scope.id, PointsEntry.customer_id == customer_id,
            PointsEntry.kind == "birthday").order_by(PointsEntry.id))).all()
    return [(int(a), str(k)) for a, k in rows]


async def notices(shop: OrderShop, customer_id: int) -> list[str]:
    async with shop.runtime.db.uow(readonly=True) as s:
        return list((await s.execute(select(MemberNotice.body).where(
            MemberNotice.tenant_id == shop.scope.id, MemberNotice.customer_id == customer_id,
            MemberNotice.kind == "birthday"))).scalars())


# -- settings --------------------------------------------------------------------------------------------------


async def test_settings_through_the_api(order_shop: OrderShop, login_as: Any) -> None:
    shop = order_shop
    staff = await login_as(shop.tenant)
    r = await staff.get(ADMIN + "/settings")
    assert r.status_code == 200
    body = r.json()
    assert body["enabled"] is False and body["mode"] == "day" and body["points"] is None
    assert body["coupons_available"] is False and body["coupon_choices"] == []
    assert body["levels"][0]["name"] == "普通会员"
    r = await staff.request("PUT", ADMIN + "/settings", json={"enabled": True, "mode": "month", "points": 300})
    assert r.status_code == 200 and r.json()["mode"] == "month" and r.json()["points"] == 300
    for bad in ({"enabled": True, "mode": "week"}, {"enabled": True, "mode": "day", "points": -1},
                {"enabled": "yes", "mode": "day"}, {"mode": "day"}):
        r = await staff.request("PUT", ADMIN + "/settings", json=bad)
        assert r.status_code == 422, (bad, r.text)
    r = await staff.request("PUT", ADMIN + "/settings", json={"enabled": True, "mode": "day", "coupon_id": 5})
    assert r.status_code == 422 and r.json()["code"] == "birthday_settings_invalid"
    assert (await staff.get(ADMIN + "/settings")).json()["mode"] == "month"
    desk = await login_as(shop.tenant, "customer_service")
    assert (await desk.get(ADMIN + "/grants")).status_code == 200
    r = await desk.request("PUT", ADMIN + "/settings", json={"enabled": False, "mode": "day"})
    assert r.status_code == 403
    assert (await desk.post(ADMIN + "/run")).status_code == 403


# -- the job ---------------------------------------------------------------------------------------------------


async def test_today_and_missed_days_in_the_shops_time_zone(order_shop: OrderShop) -> None:
    shop = order_shop
    # 01:00 on 15 March in Shanghai is still 14 March in UTC: "today" is the shop's.
    clock.travel(datetime(2026, 3, 14, 17, 0, tzinfo=UTC) - clock.now())
    today = clock.local_today(shop.scope.timezone)
    assert today == date(2026, 3, 15)
    on_day = await customer(shop, date(1990, 3, 15))
    yesterday = await customer(shop, date(1985, 3, 14))
    too_late = await customer(shop, date(1985, 3, 12))
    tomorrow = await customer(shop, date(2001, 3, 16))
    nobody = await customer(shop, None)
    await configure(shop, points=None)
    assert await run(shop) == 0  # base level: no birthday points of its own, nothing to give
    await configure(shop, points=200)
    assert await run(shop) == 2
    assert await run(shop) == 0
    g = await grants(shop)
    assert g == {on_day: [(2026, 200, None)], yesterday: [(2026, 200, None)]}
    for cid in (too_late, tomorrow, nobody):
        assert cid not in g
    assert await birthday_points(shop, on_day) == [(200, f"birthday:{on_day}:2026")]
    assert len(await notices(shop, on_day)) == 1 and "200 积分" in (await notices(shop, on_day))[0]
    # The next day the member born tomorrow gets it, once.
    clock.travel(timedelta(days=1))
    assert await run(shop) == 1
    assert await run(shop) == 0
    assert (await grants(shop))[tomorrow] == [(2026, 200, None)]
    # Next year again, once.
    at_local(shop, date(2027, 3, 15))
    assert await run(shop) == 2
    assert (await grants(shop))[on_day] == [(2026, 200, None), (2027, 200, None)]


async def test_month_mode_and_the_level_points(order_shop: OrderShop) -> None:
    shop = order_shop
    at_local(shop, date(2026, 6, 1), hour=0)
    late_june = await customer(shop, date(1992, 6, 28))
    july = await customer(shop, date(1992, 7, 1))
    card_holder = await customer(shop, date(1980, 6, 10))
    from tests.orders.conftest import Buyer

    plan = await make_plan(shop, rank=3, days=365)
    await bought(shop, plan, Buyer(card_holder, "", None))
    await configure(shop, mode="month", points=None)
    assert await run(shop) == 1  # the black-gold card's own 800 points; base-level members get none
    await configure(shop, mode="month", points=50)
    assert await run(shop) == 1
    g = await grants(shop)
    assert g == {card_holder: [(2026, 800, None)], late_june: [(2026, 50, None)]}
    assert july not in g
    at_local(shop, date(2026, 6, 30), hour=23)
    assert await run(shop) == 0
    at_local(shop, date(2026, 7, 1))
    assert await run(shop) == 1 and (await grants(shop))[july] == [(2026, 50, None)]
    # Switching to day mode the same year gives nothing again.
    await configure(shop, mode="day", points=50)
    at_local(shop, date(2026, 7, 1), hour=12)
    assert await run(shop) == 0


async def test_29_february_is_celebrated_on_the_28th_in_other_years(order_shop: OrderShop) -> None:
    shop = order_shop
    leap = await customer(shop, date(2000, 2, 29))
    await configure(shop, points=100)
    at_local(shop, date(2027, 2, 27))
    assert await run(shop) == 0
    at_local(shop, date(2027, 2, 28))
    assert await run(shop) == 1
    at_local(shop, date(2028, 2, 28))
    assert await run(shop) == 0  # 2028 has a 29th
    at_local(shop, date(2028, 2, 29))
    assert await run(shop) == 1
    assert [y for y, _p, _c in (await grants(shop))[leap]] == [2027, 2028]


async def test_two_runs_at_the_same_moment_give_once(order_shop: OrderShop) -> None:
    shop = order_shop
    at_local(shop, date(2026, 9, 9))
    members = [await customer(shop, date(1990 + i, 9, 9)) for i in range(6)]
    await configure(shop, points=120)
    results = await asyncio.gather(run(shop), run(shop), run(shop))
    assert sum(results) == len(members), results
    assert await run(shop) == 0
    g = await grants(shop)
    assert {cid: len(rows) for cid, rows in g.items()} == dict.fromkeys(members, 1)
    for cid in members:
        assert await birthday_points(shop, cid) == [(120, f"birthday:{cid}:2026")]
        assert len(await notices(shop, cid)) == 1
    # One member, two grants racing in two transactions: one gives, the other finds the row.
    extra = await customer(shop, date(1999, 9, 9))

    async def one() -> Any:
        async with shop.runtime.db.uow() as s:
            return await birthday.grant_one(s, shop.scope, extra, year=2026)

    first, second = await asyncio.gather(one(), one())
    assert sorted(x is None for x in (first, second)) == [False, True]
    assert await birthday_points(shop, extra) == [(120, f"birthday:{extra}:2026")]


async def test_a_coupon_through_the_rewards_extension_point(order_shop: OrderShop, browser: Any) -> None:
    shop = order_shop
    issued: list[tuple[int, int, str]] = []

    async def grant(session: Any, scope: Any, customer_id: int, coupon_id: int, *, source_key: str, reason: str,
                    **_: Any) -> bool:
        issued.append((customer_id, coupon_id, source_key))
        return coupon_id != 404

    async def lister(session: Any, scope: Any) -> list[tuple[int, str]]:
        return [(7, "生日 20 元券"), (404, "失效券")]

    rewards.register_coupon_granter(grant, lister)
    try:
        at_local(shop, date(2026, 5, 20))
        fan = await customer(shop, date(1995, 5, 20))
        await configure(shop, points=None, coupon_id=7)  # no points: the coupon alone
        assert await run(shop) == 1
        assert issued == [(fan, 7, f"birthday:{fan}:2026")]
        assert (await grants(shop))[fan] == [(2026, 0, 7)]
        assert await birthday_points(shop, fan) == []
        assert "生日优惠券" in (await notices(shop, fan))[0]
        # A coupon the granter refuses is recorded as not given.
        other = await customer(shop, date(1995, 5, 20))
        await configure(shop, points=10, coupon_id=404)
        assert await run(shop) == 1
        assert (await grants(shop))[other] == [(2026, 10, None)]
        # The console offers the granter's coupons.
        clock.reset()
        b = browser()
        await staff_sign_in(b, shop.tenant.owner_username, shop.tenant.owner_password)
        page = await b.get("/admin/members/birthday")
        assert page.status_code == 200 and 'name="coupon_id"' in page.text and "生日 20 元券" in page.text
        r = await b.post("/admin/members/birthday", {"enabled": "1", "mode": "day", "points": "", "coupon_id": "7"})
        assert r.status_code == 303
        r = await b.post("/admin/members/birthday", {"enabled": "1", "mode": "day", "points": "", "coupon_id": "8"})
        assert r.status_code == 422 and 'id="f-coupon_id-error"' in r.text
    finally:
        rewards.unregister_coupon_granter()


async def test_blocked_customers_and_switched_off_perks_get_nothing(order_shop: OrderShop) -> None:
    from siyu.customers import service as customers_service

    shop = order_shop
    at_local(shop, date(2026, 11, 11))
    blocked = await customer(shop, date(1990, 11, 11))
    fine = await customer(shop, date(1991, 11, 11))
    async with shop.runtime.db.uow() as s:
        await customers_service.set_status(s, shop.scope, blocked, "blocked")
    await configure(shop, enabled=False, points=100)
    assert await run(shop) == 0
    await configure(shop, enabled=True, points=100)
    assert await run(shop) == 1
    assert set(await grants(shop)) == {fine}


# -- console --------------------------------------------------------------------------------------------------


async def test_the_birthday_page_saves_runs_and_reads_in_english(order_shop: OrderShop, browser: Any,
                                                                  login_as: Any) -> None:
    shop = order_shop
    today = clock.local_today(shop.scope.timezone)
    try:
        born = today.replace(year=1990)
    except ValueError:  # 29 February
        born = date(1992, 2, 29)
    cid = await customer(shop, born)
    b = browser()
    await staff_sign_in(b, shop.tenant.owner_username, shop.tenant.owner_password)
    page = await b.get("/admin/members/birthday")
    assert page.status_code == 200 and 'id="birthday-form"' in page.text and "birthday-run" not in page.text
    r = await b.post("/admin/members/birthday", {"enabled": "1", "mode": "week", "points": "x"})
    assert r.status_code == 422 and 'id="f-mode-error"' in r.text and 'id="f-points-error"' in r.text
    r = await b.post("/admin/members/birthday", {"enabled": "1", "mode": "day", "points": "66"})
    assert r.status_code == 303
    page = await b.follow(r)
    assert "birthday-run" in page.text
    r = await b.post("/admin/members/birthday/run", {})
    assert r.status_code == 303
    page = await b.follow(r)
    assert "1" in page.text and f'href="/admin/members/{cid}"' in page.text
    assert (await grants(shop))[cid] == [(today.year, 66, None)]
    data = ("普通会员", "银卡会员", "金卡会员", "黑金会员", shop.tenant.name, "店主", "店")
    async with shop.runtime.db.uow(readonly=True) as s:
        from siyu.customers import service as customers_service

        nick = (await customers_service.get_customer(s, shop.scope, cid)).nickname or ""
    with b.language("en"):
        page = await b.get("/admin/members/birthday")
        assert page.status_code == 200
        left = chinese_left(page.text, *data, nick)
        assert not left, " ".join(sorted(left))
    desk = browser()
    from tests._pages import make_staff

    _sid, user, password = await make_staff(shop.runtime, shop.tenant, "customer_service")
    await staff_sign_in(desk, user, password)
    page = await desk.get("/admin/members/birthday")
    assert page.status_code == 200 and "birthday-run" not in page.text and 'type="submit"' not in page.text.split(
        'id="birthday-form"')[1].split("</form>")[0]
    assert (await desk.post("/admin/members/birthday", {"enabled": "1", "mode": "day"})).status_code == 403
    count = await _grant_count(shop)
    assert count == 1


async def _grant_count(shop: OrderShop) -> int:
    async with shop.runtime.db.uow(readonly=True) as s:
        return int((await s.execute(select(func.count()).select_from(BirthdayGrant).where(
            BirthdayGrant.tenant_id == shop.scope.id))).scalar_one())
