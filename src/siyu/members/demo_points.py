"""Demo data of points: the shop's points rules, the sign-up award for every demo customer,
a fortnight of daily check-ins by the keen ones (streaks, with the bonus on the seventh day),
a few review awards, and a few staff adjustments with their reasons (points migrated from
the old membership system, goodwill after a late parcel).

Everything goes through :mod:`siyu.members.points`, so the ledger, the lots and their expiry
are what real use would leave. Check-ins are made on their own days by moving the clock back
for each one (and always forward again). The demo orders placed afterwards earn points on
completion and spend them at checkout like any order.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import clock
from siyu.kit.tenancy import TenantScope
from siyu.members import points

RULES = points.PointsRulesIn(
    earn_per_yuan=1, awards={"signup": 100, "first_order": 200, "review": 20}, checkin_points=10, checkin_streak_days=7,
    checkin_streak_bonus=30, redeem_enabled=True, points_per_yuan=100, max_share_bp=3000, min_redeem_points=100,
    expiry_mode="yearly", expiry_days=365, notice_days=30,
)
#: About this share of customers check in, each over the last ``CHECKIN_DAYS`` days.
CHECKIN_SHARE = 0.2
CHECKIN_DAYS = 14
REVIEW_SHARE = 0.15
ADJUSTMENTS = (
    (1500, "老会员卡积分迁移"), (800, "老会员卡积分迁移"), (200, "快递延误补偿"), (100, "社群活动奖励"),
)


async def seed_demo(session: AsyncSession, scope: TenantScope, rng: random.Random, customer_ids: list[int]) -> dict[str, Any]:
    await points.save_rules(session, scope, RULES)
    made = {"signup": 0, "checkins": 0, "reviews": 0, "adjustments": 0}
    for cid in customer_ids:
        # The same key as the customer.registered handler's: whichever comes first gives it.
        if await points.award(session, scope, cid, "signup", source_key=f"signup:{cid}"):
            made["signup"] += 1
    if not customer_ids:
        return made
    keen = rng.sample(customer_ids, max(1, round(len(customer_ids) * CHECKIN_SHARE)))
    for days_ago in range(CHECKIN_DAYS, -1, -1):
        back = timedelta(days=days_ago)
        clock.travel(-back)
        try:
            for cid in keen:
                # Most keep their streak; some skip a day now and then.
                if rng.random() < 0.8:
                    made["checkins"] += (await points.checkin(session, scope, cid)).checked_in
        finally:
            clock.travel(back)
    for cid in rng.sample(customer_ids, max(1, round(len(customer_ids) * REVIEW_SHARE))):
        if await points.award(session, scope, cid, "review", source_key=f"review:demo:{cid}"):
            made["reviews"] += 1
    for (amount, reason), cid in zip(ADJUSTMENTS, rng.sample(customer_ids, min(len(ADJUSTMENTS), len(customer_ids))),
                                     strict=False):
        await points.adjust(session, scope, cid, amount, reason=reason)
        made["adjustments"] += 1
    return made
