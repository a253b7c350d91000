"""Every query of the payments module.

Tenant repositories filter on the tenant by construction. :class:`Lookups` and
:class:`NotificationLog` work installation-wide, because a gateway notification or a sweep
arrives before any tenant is known; they hand rows to the service, which carries on with the
row's own tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from siyu.kit import clock
from siyu.kit.tenancy import Repository, TenantRepository
from siyu.payments.models import (
    GatewayConfig,
    GatewayNotification,
    Payment,
    PaymentTransition,
    Refund,
)


def _rowcount(res: Any) -> int:
    return int(res.rowcount)


class Payments(TenantRepository[Payment]):
    model = Payment
    not_found_zh = "支付单"
    not_found_en = "Payment"
    not_found_code = "payment_not_found"

    async def by_out_trade_no(self, out_trade_no: str) -> Payment | None:
        return (await self.session.execute(self.select().where(Payment.out_trade_no == out_trade_no))).scalar_one_or_none()

    async def for_source(self, source_type: str, source_id: str) -> Sequence[Payment]:
        return await self.list(self.select().where(Payment.source_type == source_type, Payment.source_id == source_id)
                               .order_by(Payment.id))

    def _search(self, *, status: str | None, gateway: str | None, source_type: str | None, q: str | None,
                created_from: datetime | None, created_to: datetime | None) -> Select[Any]:
        stmt = self.select()
        if status:
            stmt = stmt.where(Payment.status == status)
        if gateway:
            stmt = stmt.where(Payment.gateway == gateway)
        if source_type:
            stmt = stmt.where(Payment.source_type == source_type)
        if q:
            stmt = stmt.where(or_(Payment.out_trade_no.ilike(f"%{q}%"), Payment.transaction_id == q, Payment.source_id == q,
                                  Payment.description.ilike(f"%{q}%")))
        if created_from:
            stmt = stmt.where(Payment.created_at >= created_from)
        if created_to:
            stmt = stmt.where(Payment.created_at < created_to)
        return stmt

    async def search(self, *, status: str | None = None, gateway: str | None = None, source_type: str | None = None,
                     q: str | None = None, created_from: datetime | None = None, created_to: datetime | None = None,
                     offset: int = 0, limit: int = 20) -> tuple[Sequence[Payment], int]:
        stmt = self._search(status=status, gateway=gateway, source_type=source_type, q=q, created_from=created_from,
                            created_to=created_to)
        total = await self.count(stmt)
        return await self.list(stmt.order_by(Payment.id.desc()).offset(offset).limit(limit)), total

    async def transitions(self, payment_id: int) -> Sequence[PaymentTransition]:
        return (await self.session.execute(
            select(PaymentTransition).where(PaymentTransition.tenant_id == self.tenant_id,
                                            PaymentTransition.payment_id == payment_id)
            .order_by(PaymentTransition.id)
        )).scalars().all()

    async def refunds(self, payment_id: int) -> Sequence[Refund]:
        return (await self.session.execute(
            select(Refund).where(Refund.tenant_id == self.tenant_id, Refund.payment_id == payment_id).order_by(Refund.id)
        )).scalars().all()

    async def change_status(self, payment_id: int, from_status: str, to_status: str, **values: Any) -> bool:
        """``pending → x`` only if the row is still ``from_status``: the guard that makes a
        replayed notification, a racing sweeper and a late query change it at most once."""
        res = await self.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.tenant_id == self.tenant_id, Payment.status == from_status)
            .values(status=to_status, updated_at=clock.now(), **values)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1

    async def reserve_refund(self, payment_id: int, amount_fen: int) -> bool:
        """``refunded_fen += amount`` only while it stays within the paid amount."""
        res = await self.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.tenant_id == self.tenant_id, Payment.status == "succeeded",
                   Payment.refunded_fen + amount_fen <= Payment.amount_fen)
            .values(refunded_fen=Payment.refunded_fen + amount_fen, updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1

    async def release_refund(self, payment_id: int, amount_fen: int) -> bool:
        res = await self.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.tenant_id == self.tenant_id, Payment.refunded_fen >= amount_fen)
            .values(refunded_fen=Payment.refunded_fen - amount_fen, updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1

    async def mark_queried(self, payment_id: int) -> None:
        await self.session.execute(
            update(Payment).where(Payment.id == payment_id, Payment.tenant_id == self.tenant_id)
            .values(last_queried_at=clock.now()).execution_options(synchronize_session=False)
        )

    async def reload(self, payment: Payment) -> Payment:
        await self.session.refresh(payment)
        return payment


class Refunds(TenantRepository[Refund]):
    model = Refund
    not_found_zh = "退款"
    not_found_en = "Refund"
    not_found_code = "refund_not_found"

    async def change_status(self, refund_id: int, to_status: str, **values: Any) -> bool:
        res = await self.session.execute(
            update(Refund)
            .where(Refund.id == refund_id, Refund.tenant_id == self.tenant_id, Refund.status == "pending")
            .values(status=to_status, **values)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1

    async def set_gateway_id(self, refund_id: int, gateway_refund_id: str | None) -> bool:
        res = await self.session.execute(
            update(Refund)
            .where(Refund.id == refund_id, Refund.tenant_id == self.tenant_id, Refund.gateway_refund_id.is_(None))
            .values(gateway_refund_id=gateway_refund_id)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1

    async def succeeded_total(self, payment_id: int) -> int:
        rows = (await self.session.execute(
            select(Refund.amount_fen).where(Refund.tenant_id == self.tenant_id, Refund.payment_id == payment_id,
                                            Refund.status == "succeeded")
        )).scalars().all()
        return sum(rows)


class GatewayConfigs(TenantRepository[GatewayConfig]):
    model = GatewayConfig

    async def for_gateway(self, gateway: str) -> GatewayConfig | None:
        return (await self.session.execute(self.select().where(GatewayConfig.gateway == gateway))).scalar_one_or_none()


class Lookups(Repository):
    """Installation-wide lookups for notifications and sweeps (out_trade_no and
    out_refund_no are unique across the installation, since a gateway sees one namespace)."""

    async def payment(self, payment_id: int, *, for_update: bool = False) -> Payment | None:
        stmt = select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def payment_by_out_trade_no(self, out_trade_no: str) -> Payment | None:
        return (await self.session.execute(
            select(Payment).where(Payment.out_trade_no == out_trade_no).execution_options(populate_existing=True)
        )).scalar_one_or_none()

    async def refund(self, refund_id: int, *, for_update: bool = False) -> Refund | None:
        stmt = select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def refund_by_out_refund_no(self, out_refund_no: str) -> Refund | None:
        return (await self.session.execute(
            select(Refund).where(Refund.out_refund_no == out_refund_no).execution_options(populate_existing=True)
        )).scalar_one_or_none()

    async def payments_to_reconcile(self, *, now: datetime, created_before: datetime, queried_before: datetime,
                                    limit: int, after_id: int = 0) -> list[tuple[int, int]]:
        """Pending payments whose notification is overdue (and not asked about recently),
        or whose time is up; in id order from ``after_id``."""
        rows = (await self.session.execute(
            select(Payment.id, Payment.tenant_id)
            .where(Payment.status == "pending", Payment.id > after_id)
            .where(or_(
                and_(Payment.created_at < created_before,
                     or_(Payment.last_queried_at.is_(None), Payment.last_queried_at < queried_before)),
                Payment.expires_at < now,
            ))
            .order_by(Payment.id)
            .limit(limit)
        )).all()
        return [(int(pid), int(tid)) for pid, tid in rows]

    async def refunds_to_reconcile(self, *, created_before: datetime, limit: int, after_id: int = 0) -> list[tuple[int, int]]:
        rows = (await self.session.execute(
            select(Refund.id, Refund.tenant_id)
            .where(Refund.status == "pending", Refund.created_at < created_before, Refund.id > after_id)
            .order_by(Refund.id)
            .limit(limit)
        )).all()
        return [(int(rid), int(tid)) for rid, tid in rows]

    async def gateway_configs(self, gateway: str) -> Sequence[GatewayConfig]:
        return (await self.session.execute(
            select(GatewayConfig).where(GatewayConfig.gateway == gateway).order_by(GatewayConfig.id)
        )).scalars().all()


class NotificationLog(Repository):
    """The append-only record of gateway notifications."""

    async def insert_once(self, values: dict[str, Any]) -> int | None:
        """Insert unless (gateway, notification_id) exists; the new id, or None for a replay.

        ``ON CONFLICT DO NOTHING`` rather than catching an IntegrityError, so a replay neither
        aborts the transaction (PostgreSQL) nor needs a savepoint; a concurrent replay waits
        on the unique index until the first commits, then inserts nothing."""
        dialect = self.session.get_bind().dialect.name
        ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (ins(GatewayNotification).values(**values)
                .on_conflict_do_nothing(index_elements=["gateway", "notification_id"])
                .returning(GatewayNotification.id))
        row = (await self.session.execute(stmt)).first()
        return int(row[0]) if row else None

    def add(self, row: GatewayNotification) -> GatewayNotification:
        self.session.add(row)
        return row

    async def set_outcome(self, row_id: int, outcome: str, reason: str | None) -> None:
        await self.session.execute(
            update(GatewayNotification).where(GatewayNotification.id == row_id)
            .values(outcome=outcome, reason=reason).execution_options(synchronize_session=False)
        )


class TenantNotifications(TenantRepository[GatewayNotification]):
    model = GatewayNotification

    async def search(self, *, gateway: str | None = None, outcome: str | None = None, reference: str | None = None,
                     references: Sequence[str] | None = None, offset: int = 0,
                     limit: int = 20) -> tuple[Sequence[GatewayNotification], int]:
        stmt = self.select()
        if gateway:
            stmt = stmt.where(GatewayNotification.gateway == gateway)
        if outcome:
            stmt = stmt.where(GatewayNotification.outcome == outcome)
        if reference:
            stmt = stmt.where(GatewayNotification.reference == reference)
        if references is not None:
            stmt = stmt.where(GatewayNotification.reference.in_(list(references)))
        total = await self.count(stmt)
        return await self.list(stmt.order_by(GatewayNotification.id.desc()).offset(offset).limit(limit)), total
