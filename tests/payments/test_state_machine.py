"""The payment and refund state machines: the transition tables, and illegal moves refused
with stable codes wherever they are asked for."""

from __future__ import annotations

import itertools

import httpx
import pytest

from siyu.kit.errors import Conflict
from siyu.kit.runtime import Runtime
from siyu.payments import service
from tests.conftest import TenantInfo, drain_outbox
from tests.payments._helpers import (
    do_refund,
    events,
    new_payment,
    paid_payment,
    payment,
    post_notification,
    refund_row,
    sandbox_body,
    sandbox_choose,
    sandbox_headers,
    scope,
    transitions,
)

PAYMENT_STATES = ("pending", "succeeded", "failed", "closed")
LEGAL = {("pending", "succeeded"), ("pending", "failed"), ("pending", "closed"),
         ("failed", "succeeded"), ("closed", "succeeded")}


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(PAYMENT_STATES, PAYMENT_STATES)))
def test_payment_transition_table(frm: str, to: str) -> None:
    if (frm, to) in LEGAL:
        service.ensure_payment_transition(frm, to)
    else:
        with pytest.raises(Conflict) as exc:
            service.ensure_payment_transition(frm, to)
        assert exc.value.code == "payment_illegal_transition" and exc.value.status == 409
        assert exc.value.extra == {"from_status": frm, "to_status": to}


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(("pending", "succeeded", "failed"), repeat=2)))
def test_refund_transition_table(frm: str, to: str) -> None:
    if frm == "pending" and to != "pending":
        service.ensure_refund_transition(frm, to)
    else:
        with pytest.raises(Conflict) as exc:
            service.ensure_refund_transition(frm, to)
        assert exc.value.code == "refund_illegal_transition"


async def test_closing_is_refused_once_paid_or_failed_and_idempotent_once_closed(runtime: Runtime, shop: TenantInfo) -> None:
    p = await paid_payment(runtime, shop, 300)
    with pytest.raises(Conflict) as exc:
        async with runtime.db.uow() as s:
            await service.close_payment(s, scope(shop), p.id)
    assert exc.value.code == "payment_illegal_transition"

    failed = await new_payment(runtime, shop, 300)
    await sandbox_choose(runtime, failed.payment.out_trade_no, "fail")
    await drain_outbox(runtime)
    with pytest.raises(Conflict):
        async with runtime.db.uow() as s:
            await service.close_payment(s, scope(shop), failed.payment.id)

    open_ = await new_payment(runtime, shop, 300)
    for _ in range(2):
        async with runtime.db.uow() as s:
            closed = await service.close_payment(s, scope(shop), open_.payment.id)
        assert closed.status == "closed"
    assert (await transitions(runtime, open_.payment.id))[-1] == ("pending", "closed", "user_cancel")
    assert len(await events(runtime, shop.id, "payment.closed", payment_id=open_.payment.id)) == 1
    with pytest.raises(Conflict):
        await do_refund(runtime, shop, open_.payment.id, 100)


async def test_closing_a_payment_paid_meanwhile_records_the_success(runtime: Runtime, shop: TenantInfo,
                                                                     drop_notifications: list[httpx.Request]) -> None:
    start = await new_payment(runtime, shop, 450)
    await sandbox_choose(runtime, start.payment.out_trade_no)  # paid; the notification is still on its way
    async with runtime.db.uow() as s:
        p = await service.close_payment(s, scope(shop), start.payment.id)
        assert p.status == "succeeded"
    assert (await payment(runtime, start.payment.id)).status == "succeeded"
    assert (await transitions(runtime, p.id))[-1] == ("pending", "succeeded", "query")
    assert await events(runtime, shop.id, "payment.closed", payment_id=p.id) == []


async def test_a_late_success_after_close_is_recorded_and_flagged(runtime: Runtime, shop: TenantInfo,
                                                                   client: httpx.AsyncClient) -> None:
    """The gateway's word about money wins: a success for a payment we closed is recorded as a
    late success for the source owner to refund."""
    start = await new_payment(runtime, shop, 610)
    async with runtime.db.uow() as s:
        await service.close_payment(s, scope(shop), start.payment.id, cause="timeout")
    body = sandbox_body(start.payment.out_trade_no, 610)
    r = await post_notification(client, "sandbox", body, sandbox_headers(runtime, body))
    assert r.status_code == 204
    assert (await payment(runtime, start.payment.id)).status == "succeeded"
    [ev] = await events(runtime, shop.id, "payment.succeeded", payment_id=start.payment.id)
    assert ev["late"] is True
    assert (await transitions(runtime, start.payment.id))[-1] == ("closed", "succeeded", "notification")


async def test_a_second_paid_payment_of_one_source_names_the_first(runtime: Runtime, shop: TenantInfo,
                                                                    client: httpx.AsyncClient) -> None:
    first = await paid_payment(runtime, shop, 100, source_id="dup-src-" + str(shop.id))
    async with runtime.db.uow() as s:  # an old pending payment of the same source, paid after all
        from siyu.payments.models import Payment

        other = Payment(tenant_id=shop.id, source_type="testorder", source_id=first.source_id,
                        out_trade_no="P" + str(first.id).rjust(26, "9"), amount_fen=100, gateway="sandbox",
                        channel="sandbox", description="dup", status="pending")
        s.add(other)
        await s.flush()
        other_id = other.id
    body = sandbox_body(other.out_trade_no, 100)
    assert (await post_notification(client, "sandbox", body, sandbox_headers(runtime, body))).status_code == 204
    [ev] = await events(runtime, shop.id, "payment.succeeded", payment_id=other_id)
    assert ev["duplicate_of"] == first.id


async def test_refund_outcomes_are_final(runtime: Runtime, shop: TenantInfo) -> None:
    from siyu.payments.gateways import RefundState
    from siyu.payments.repository import Lookups

    p = await paid_payment(runtime, shop, 500)
    r = await do_refund(runtime, shop, p.id, 200)
    await drain_outbox(runtime)
    assert (await refund_row(runtime, r.id)).status == "succeeded"
    async with runtime.db.uow() as s:
        row = await Lookups(s).refund(r.id)
        assert row is not None
        changed = await service.apply_refund_state(s, row, RefundState(out_refund_no=r.out_refund_no, state="CLOSED"),
                                                   cause="query")
    assert changed is False
    assert (await refund_row(runtime, r.id)).status == "succeeded"
    assert (await payment(runtime, p.id)).refunded_fen == 200
