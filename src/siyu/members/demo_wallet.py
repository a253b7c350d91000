"""Demo data of stored value: recharge packages (one retired), the settings, members who
recharged over the last months (some twice, some a custom amount), a staff goodwill credit
and a principal refund request waiting in the console's queue.

Everything goes through the services, as a shopper and staff would, with the clock set to
when each step happened: a recharge is made, its payment opened at the sandbox gateway, the
payer presses 确认支付, and the signed notification and the events it raises are handled in
this unit of work the way the relay would handle them after commit (and then marked done,
so the relay does not run them again). The ledger therefore holds real journals: cash in,
principal and bonus out to the members, the bonus as an expense.
"""

from __future__ import annotations

import random
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import clock, outbox
from siyu.kit.context import SYSTEM, Actor, actor_var
from siyu.kit.errors import DomainError
from siyu.kit.outbox import OutboxEvent
from siyu.kit.tenancy import TenantScope
from siyu.members import wallet

#: (name, pay fen, bonus fen, on sale, sort)
PACKAGES: tuple[tuple[str, int, int, bool, int], ...] = (
    ("充 200 送 10", 20_000, 1_000, True, 40),
    ("充 500 送 40", 50_000, 4_000, True, 30),
    ("充 1000 送 100", 100_000, 10_000, True, 20),
    ("充 2000 送 260", 200_000, 26_000, True, 10),
    ("双 11 充 3000 送 450", 300_000, 45_000, False, 0),
)
#: About this share of the demo customers hold stored value.
RECHARGER_SHARE = 0.25
MAX_RECHARGERS = 40
#: Recharges happen within this many days back.
DAYS = 150


async def seed_demo(session: AsyncSession, scope: TenantScope, rng: random.Random, customer_ids: list[int]) -> dict[str, Any]:
    await wallet.update_settings(session, scope, recharge_enabled=True, custom_enabled=True, custom_min_fen=1000,
                                 custom_max_fen=2_000_000, bonus_share_bp=0, refund_enabled=True)
    existing = {p.name for p in await wallet.list_packages(session, scope)}
    packages = []
    for name, pay, bonus, on_sale, sort in PACKAGES:
        if name not in existing:
            packages.append(await wallet.create_package(session, scope, name=name, pay_fen=pay, bonus_fen=bonus,
                                                        on_sale=on_sale, sort=sort))
    if not packages or not customer_ids:
        return {"packages": len(packages), "recharges": 0}
    count = min(MAX_RECHARGERS, max(1, round(len(customer_ids) * RECHARGER_SHARE)))
    members = rng.sample(customer_ids, min(count, len(customer_ids)))
    now = clock.now()
    plan: list[tuple[Any, int, int | None, int | None]] = []  # (when, customer, package id, custom amount)
    for i, cid in enumerate(members):
        for _n in range(2 if i % 4 == 0 else 1):
            when = now - timedelta(days=rng.uniform(1, DAYS), minutes=rng.randrange(0, 600))
            if i % 7 == 3:
                plan.append((when, cid, None, rng.choice([5_000, 8_800, 30_000])))
            else:
                pkg = rng.choices(packages[:4], weights=[5, 4, 2, 1])[0] if len(packages) >= 4 else packages[0]
                plan.append((when, cid, pkg.id, None))
    plan.sort(key=lambda p: p[0])
    from siyu.orders.demo import historical

    paid = 0
    credited = 0
    for when, cid, package_id, amount in plan:
        with historical(when):
            r = await _recharge(session, scope, cid, package_id, amount)
            await session.flush()
        if r is not None and r.status == "paid":
            paid += 1
            credited += r.pay_fen + r.bonus_fen
    # A goodwill credit from the shop, and one member asking for part of the principal back.
    token = actor_var.set(Actor("staff", None, "青山店主", scope.id))
    try:
        with historical(now - timedelta(days=3)):
            await wallet.adjust(session, scope, members[0], 2_000, bucket="bonus", reason="门店茶会缺货补偿")
            await session.flush()
    finally:
        actor_var.reset(token)
    requests = 0
    asker = members[-1]
    if await wallet.refundable_fen(session, scope, asker) >= 5_000:
        token = actor_var.set(Actor("customer", asker, f"customer:{asker}", scope.id))
        try:
            with historical(now - timedelta(hours=5)):
                await wallet.request_refund(session, scope, asker, amount_fen=5_000, reason="下个月出国工作，先退一部分")
                await session.flush()
                requests = 1
        finally:
            actor_var.reset(token)
    return {"packages": len(packages), "recharges": paid, "credited_fen": credited, "refund_requests": requests}


async def _recharge(session: AsyncSession, scope: TenantScope, customer_id: int, package_id: int | None,
                    amount_fen: int | None) -> Any:
    """One recharge paid at the sandbox cashier (None if the shop refused it)."""
    from siyu.payments.gateways import sandbox

    marker = int((await session.execute(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1)))
                 .scalar_one_or_none() or 0)
    token = actor_var.set(Actor("customer", customer_id, f"customer:{customer_id}", scope.id))
    try:
        try:
            made = await wallet.create_recharge(session, scope, customer_id, package_id=package_id, amount_fen=amount_fen,
                                                idempotency_key=f"demo-{secrets.token_hex(8)}")
        except DomainError:
            return None
        started = await wallet.pay_recharge(session, scope, customer_id, made.recharge.id,
                                            return_url=f"/m/{scope.code}/member/wallet/recharges/{made.recharge.id}?paid=1")
        await sandbox.choose_outcome(session, started.payment.out_trade_no, "pay")
    finally:
        actor_var.reset(token)
    await _drain(session, marker)
    return await wallet.get_recharge(session, scope, made.recharge.id)


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
