"""Jobs of the payments module: the query fallback and the expiry of unpaid payments.

Notifications can be lost (a gateway outage, our outage longer than the gateway's retries,
a firewall). Two sweepers make every payment and refund reach a final state anyway:

* ``payments.reconcile_payments`` (every minute): each payment still pending
  :data:`QUERY_AFTER` after creation is asked about at the gateway (again every
  :data:`REQUERY_EVERY`; ``last_queried_at`` remembers when), and whatever the gateway says
  is applied with the same idempotent transitions a notification uses. A payment whose
  ``expires_at`` has passed is closed at the gateway and then here (cause ``timeout``) unless
  the gateway says it was paid after all.
* ``payments.reconcile_refunds`` (every five minutes): each refund still pending after
  :data:`REFUND_QUERY_AFTER` is asked about; one the gateway never received is submitted again
  (gateways treat a repeated ``out_refund_no`` as the same refund).

Each payment is handled in its own units of work, and the gateway is asked outside any write
transaction, so a slow gateway never holds the database. The outbox handler submitting new
refunds lives with the service (``payments.refund.submit``); the sandbox's notification
delivery with the sandbox (``payments.sandbox.notify``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from siyu.kit import clock
from siyu.kit.jobs import sweeper
from siyu.kit.runtime import Runtime
from siyu.payments import service
from siyu.payments.gateways import GatewayError, RefundState, TradeState
from siyu.payments.gateways import sandbox as _sandbox  # noqa: F401  (registers the sandbox's delivery handler)

log = logging.getLogger("siyu.payments.tasks")

QUERY_AFTER = timedelta(minutes=5)
REQUERY_EVERY = timedelta(minutes=3)
REFUND_QUERY_AFTER = timedelta(minutes=10)
BATCH = 100
MAX_BATCHES = 20


async def reconcile_payment(rt: Runtime, payment_id: int) -> str:
    """Ask the gateway about one pending payment and apply the answer."""
    async with rt.db.uow(readonly=True) as s:
        p = await service.payment_for_job(s, payment_id)
        if p is None or p.status != "pending":
            return "skipped"
        gw = await service.gateway_for(s, p.tenant_id, p.gateway)
        state: TradeState = await gw.query(s, p.out_trade_no)
    expired = p.expires_at is not None and p.expires_at <= clock.now()
    if expired and state.state in ("NOTPAY", "USERPAYING"):
        async with rt.db.uow() as s:
            state = await gw.close(s, p.out_trade_no)
    async with rt.db.uow() as s:
        return await service.apply_query_result(s, payment_id, state, expired=expired)


async def reconcile_refund(rt: Runtime, refund_id: int) -> str:
    async with rt.db.uow(readonly=True) as s:
        r = await service.refund_for_job(s, refund_id)
        if r is None or r.status != "pending":
            return "skipped"
        p = await service.payment_for_job(s, r.payment_id)
        assert p is not None
        state: RefundState | None = None
        if r.gateway_refund_id:
            gw = await service.gateway_for(s, p.tenant_id, p.gateway)
            state = await gw.query_refund(s, r.out_refund_no)
    async with rt.db.uow() as s:
        return await service.apply_refund_query(s, refund_id, state)


async def _mark_queried(rt: Runtime, payment_id: int) -> None:
    from siyu.payments.repository import Payments

    async with rt.db.uow() as s:
        p = await service.payment_for_job(s, payment_id)
        if p is not None:
            await Payments(s, p.tenant_id).mark_queried(p.id)


@sweeper("payments.reconcile_payments", every_seconds=60)
async def reconcile_payments(rt: Runtime) -> int:
    """Query fallback for pending payments and expiry of unpaid ones; returns how many changed.

    Walks the due payments in id order, :data:`BATCH` at a time, at most :data:`MAX_BATCHES`
    batches per run; one that fails (gateway down) is logged, remembered in
    ``last_queried_at`` and tried again on a later run."""
    changed = 0
    cursor = 0
    for _batch in range(MAX_BATCHES):
        async with rt.db.uow(readonly=True) as s:
            due = await service.payments_to_reconcile(s, query_after=QUERY_AFTER, requery_every=REQUERY_EVERY,
                                                      limit=BATCH, after_id=cursor)
        if not due:
            break
        for payment_id, tenant_id in due:
            cursor = payment_id
            try:
                result = await reconcile_payment(rt, payment_id)
            except GatewayError as exc:
                log.warning("payment query failed", extra={"payment_id": payment_id, "tenant_id": tenant_id, "error": str(exc)})
                await _mark_queried(rt, payment_id)
                continue
            except Exception:
                log.exception("payment reconcile failed", extra={"payment_id": payment_id, "tenant_id": tenant_id})
                await _mark_queried(rt, payment_id)
                continue
            if result not in ("skipped", "unchanged"):
                changed += 1
    return changed


@sweeper("payments.reconcile_refunds", every_seconds=300)
async def reconcile_refunds(rt: Runtime) -> int:
    """Query fallback for pending refunds (and resubmission of lost ones)."""
    changed = 0
    cursor = 0
    for _batch in range(MAX_BATCHES):
        async with rt.db.uow(readonly=True) as s:
            due = await service.refunds_to_reconcile(s, query_after=REFUND_QUERY_AFTER, limit=BATCH, after_id=cursor)
        if not due:
            break
        for refund_id, tenant_id in due:
            cursor = refund_id
            try:
                result = await reconcile_refund(rt, refund_id)
            except Exception as exc:
                log.warning("refund reconcile failed", extra={"refund_id": refund_id, "tenant_id": tenant_id, "error": str(exc)})
                continue
            if result in ("succeeded", "failed"):
                changed += 1
    return changed
