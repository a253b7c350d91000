"""Property: whatever sequence of refund requests, refusals, notifications and replays
happens to a payment, ``refunded_fen`` never exceeds the paid amount, and once no refund is
pending it equals the sum of the succeeded refunds.

Each example pays a fresh sandbox payment, then runs random steps, each in its own unit of
work: refund requests of random amounts (some of which the sandbox's "bank" refuses, some
reusing an earlier ``out_refund_no``), deliveries of whatever the gateway queued, and replays
of refund notifications already delivered. The invariants are checked after every step.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.kit.errors import Conflict
from siyu.kit.runtime import Runtime
from siyu.payments import service
from siyu.payments.gateways import sandbox as sandbox_gw
from siyu.payments.models import Refund
from tests.conftest import drain_outbox, unique
from tests.payments._helpers import (
    paid_payment,
    payment,
    post_notification,
    sandbox_deliveries,
    sandbox_headers,
    scope,
)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("refund"), st.integers(1, 700), st.booleans(), st.integers(0, 3)),
        st.tuples(st.just("deliver")),
        st.tuples(st.just("replay"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=12,
)


async def _check(runtime: Runtime, payment_id: int, amount: int, *, settled: bool) -> None:
    p = await payment(runtime, payment_id)
    assert 0 <= p.refunded_fen <= amount, (p.refunded_fen, amount)
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(Refund.status, Refund.amount_fen).where(Refund.payment_id == payment_id))).all()
    held = sum(a for st_, a in rows if st_ in ("pending", "succeeded"))
    assert p.refunded_fen == held, (p.refunded_fen, rows)
    if settled:
        assert all(st_ != "pending" for st_, _a in rows), rows
        assert p.refunded_fen == sum(a for st_, a in rows if st_ == "succeeded")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.integers(1, 1500), plan=steps)
async def test_refunds_never_exceed_the_payment_and_add_up(runtime, tenant_factory, client, amount, plan) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    p = await paid_payment(runtime, t, amount)
    keys: list[tuple[str, int]] = []
    for step in plan:
        if step[0] == "refund":
            _kind, value, refused, reuse = step
            if keys and reuse == 0:
                key, value = keys[-1]  # the caller retries its last request
            else:
                key = unique("PR")
                keys.append((key, value))
            try:
                async with runtime.db.uow() as s:
                    await service.refund(s, scope(t), payment_id=p.id, amount_fen=value, out_refund_no=key,
                                         reason=sandbox_gw.FAIL_MARKER if refused else "prop",
                                         source_type="aftersale", source_id="prop")
            except Conflict as exc:
                assert exc.code in ("refund_exceeds_paid", "refund_no_conflict"), exc.code
        elif step[0] == "deliver":
            await drain_outbox(runtime)
        else:
            delivered = [b for key, _v in keys for b in await sandbox_deliveries(runtime, key)]
            if delivered:
                body = delivered[step[1] % len(delivered)]
                r = await client.post("/api/pay/notify/sandbox", content=body, headers=sandbox_headers(runtime, body))
                assert r.status_code == 204, r.text
        await _check(runtime, p.id, amount, settled=False)
    await drain_outbox(runtime)
    await _check(runtime, p.id, amount, settled=True)


async def test_a_refund_notification_for_another_payments_refund_is_unknown(runtime, shop, client) -> None:  # type: ignore[no-untyped-def]
    a = await paid_payment(runtime, shop, 500)
    b = await paid_payment(runtime, shop, 500)
    async with runtime.db.uow() as s:
        ra = await service.refund(s, scope(shop), payment_id=a.id, amount_fen=100, out_refund_no=unique("X"), reason=None,
                                  source_type="aftersale", source_id="1")
    await drain_outbox(runtime)
    [body] = await sandbox_deliveries(runtime, ra.out_refund_no)
    moved = body.replace(a.out_trade_no.encode(), b.out_trade_no.encode())
    r = await post_notification(client, "sandbox", moved, sandbox_headers(runtime, moved))
    assert r.status_code == 404 and r.json()["code"] == "notification_unknown_trade"
