"""Demo data of paid cards and birthday perks: three card plans on the top levels, a few
members who bought (and renewed) a card through the sandbox cashier, and birthday gifts
switched on (each level's own points, given on the day).

Everything goes through the services, as a shopper and staff would: a purchase is made,
its payment opened at the sandbox gateway, the payer presses 确认支付, and the signed
notification and the events it raises are handled in this unit of work the way the relay
would handle them after commit (and then marked done, so the relay does not run them again).
"""

from __future__ import annotations

import random
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import outbox
from siyu.kit.context import SYSTEM, Actor, actor_var
from siyu.kit.outbox import OutboxEvent
from siyu.kit.tenancy import TenantScope
from siyu.members import birthday, cards, levels

#: (name, rank from the top: 0 = highest level, days, price fen, gift points, description, sort)
PLANS: tuple[tuple[str, int, int, int, int, str, int], ...] = (
    ("黑金年卡", 0, 365, 19900, 2000, "一年黑金会员：全场专享折扣、包邮、优先发货，开卡即送 2000 积分", 0),
    ("黑金季卡", 0, 90, 6900, 500, "三个月黑金会员，开卡送 500 积分", 1),
    ("金卡月卡", 1, 30, 1990, 100, "一个月金卡会员，先体验再升级", 2),
)
#: About this share of the demo customers hold a card.
BUYER_SHARE = 0.06
MAX_BUYERS = 12


async def seed_demo(session: AsyncSession, scope: TenantScope, rng: random.Random, customer_ids: list[int]) -> dict[str, Any]:
    rows = await levels.ensure_levels(session, scope)
    top = sorted(rows, key=lambda lv: lv.rank, reverse=True)
    plans = []
    existing = {p.name for p in await cards.list_plans(session, scope)}
    for name, from_top, days, price, gift, description, sort in PLANS:
        if name in existing or from_top >= len(top) or top[from_top].rank == 0:
            continue
        plans.append(await cards.create_plan(session, scope, cards.PlanData(
            name=name, level_id=top[from_top].id, days=days, price_fen=price, gift_points=gift,
            description=description, sort=sort)))
    await birthday.save_settings(session, scope, enabled=True, mode="day", points=None, coupon_id=None)
    if not plans or not customer_ids:
        return {"plans": len(plans), "purchases": 0}
    count = min(MAX_BUYERS, max(1, round(len(customer_ids) * BUYER_SHARE)))
    buyers = rng.sample(customer_ids, min(count, len(customer_ids)))
    paid = 0
    for i, customer_id in enumerate(buyers):
        # Most buy the annual card; a few try a month of gold first, one renews the quarter.
        plan = plans[0] if i % 3 else plans[-1]
        paid += await _buy(session, scope, customer_id, plan.id)
        if i == 1 and len(plans) > 1 and plans[1].level_id == plan.level_id:
            paid += await _buy(session, scope, customer_id, plans[1].id)
    return {"plans": len(plans), "purchases": paid}


async def _buy(session: AsyncSession, scope: TenantScope, customer_id: int, plan_id: int) -> int:
    """One purchase paid at the sandbox cashier; 1 when it is paid."""
    from siyu.payments.gateways import sandbox

    marker = int((await session.execute(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1)))
                 .scalar_one_or_none() or 0)
    token = actor_var.set(Actor("customer", customer_id, f"customer:{customer_id}", scope.id))
    try:
        placed = await cards.create_purchase(session, scope, customer_id=customer_id, plan_id=plan_id,
                                             idempotency_key=f"demo-{secrets.token_hex(8)}")
        started = await cards.start_payment(session, scope, customer_id=customer_id, purchase_id=placed.purchase.id,
                                            return_url=f"/m/{scope.code}/member/card/purchases/{placed.purchase.id}?paid=1")
        await sandbox.choose_outcome(session, started.payment.out_trade_no, "pay")
    finally:
        actor_var.reset(token)
    await _drain(session, marker)
    purchase = await cards.get_purchase(session, scope, placed.purchase.id)
    return int(purchase.status == "paid")


async def _drain(session: AsyncSession, after_id: int) -> None:
    """Handle the events written since ``after_id`` (and those they write), as the relay would."""
    from siyu.kit.runtime import get_runtime
    from siyu.payments import service as payments_service
    from siyu.payments.gateways import sandbox

    token = actor_var.set(SYSTEM)
    try:
        for _ in range(20):
            await session.flush()
            events = list((await session.execute(
                select(OutboxEvent).where(OutboxEvent.id > after_id, OutboxEvent.status == "pending")
                .order_by(OutboxEvent.id))).scalars())
            if not events:
                return
            for ev in events:
                after_id = max(after_id, ev.id)
                if ev.topic == sandbox.NOTIFY_TOPIC:
                    body = str(ev.payload["body"]).encode()
                    headers = sandbox.signed_headers(sandbox.sandbox_key(get_runtime().secret_key), body)
                    await payments_service.handle_notification(session, "sandbox", headers, body)
                else:
                    event = outbox.Event(ev.id, ev.tenant_id, ev.topic, dict(ev.payload), 1)
                    for handler in outbox.handlers_for(ev.topic):
                        await handler(session, event)
                await session.execute(update(OutboxEvent).where(OutboxEvent.id == ev.id, OutboxEvent.status == "pending")
                                      .values(status="done", attempts=1, done_at=OutboxEvent.available_at)
                                      .execution_options(synchronize_session=False))
    finally:
        actor_var.reset(token)
