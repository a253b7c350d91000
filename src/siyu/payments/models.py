"""Payments, refunds, gateway notifications and per-tenant gateway configuration.

A payment belongs to a source (an order, a recharge...) named by ``source_type`` and
``source_id``; the payments module never reads those tables. It announces outcomes through
outbox events (``payment.succeeded``, ``refund.succeeded``...) that the owning module
handles idempotently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, BigID, IdMixin, TenantMixin

GATEWAYS = ("sandbox", "wechat")
PAYMENT_STATUSES = ("pending", "succeeded", "failed", "closed")
REFUND_STATUSES = ("pending", "succeeded", "failed")


class Payment(IdMixin, TenantMixin, Base):
    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_source", "tenant_id", "source_type", "source_id"),)

    source_type: Mapped[str] = mapped_column(String(30))
    source_id: Mapped[str] = mapped_column(String(64))
    #: Our id at the gateway; unique across the installation (gateways see one merchant).
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    amount_fen: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    gateway: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20))  # sandbox | jsapi | h5 | native
    description: Mapped[str] = mapped_column(String(127))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payer_openid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    refunded_fen: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: When the query-order fallback last asked the gateway about this payment.
    last_queried_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class PaymentTransition(IdMixin, TenantMixin, Base):
    __tablename__ = "payment_transitions"

    payment_id: Mapped[int] = mapped_column(BigID, ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(String(40))  # notification | query | user_cancel | timeout ...
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class Refund(IdMixin, TenantMixin, Base):
    __tablename__ = "payment_refunds"

    payment_id: Mapped[int] = mapped_column(BigID, ForeignKey("payments.id"), index=True)
    out_refund_no: Mapped[str] = mapped_column(String(64), unique=True)
    amount_fen: Mapped[int] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(80), nullable=True)
    #: What asked for it (an after-sales case, a staff action...).
    source_type: Mapped[str] = mapped_column(String(30))
    source_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    gateway_refund_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    succeeded_at: Mapped[datetime | None] = mapped_column(nullable=True)


class GatewayNotification(IdMixin, Base):
    """Every notification that reached us, accepted or not: an append-only record for
    support and for spotting forgery attempts. The unique id makes replays harmless."""

    __tablename__ = "gateway_notifications"
    __table_args__ = (UniqueConstraint("gateway", "notification_id"),)

    gateway: Mapped[str] = mapped_column(String(20))
    #: The gateway's notification id; for rejected ones a local random id (never unique-clashes).
    notification_id: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str | None] = mapped_column(String(60), nullable=True)
    tenant_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)  # out_trade_no / out_refund_no
    outcome: Mapped[str] = mapped_column(String(16))  # processed | duplicate | rejected | ignored
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=clock.now)


class GatewayConfig(IdMixin, TenantMixin, Base):
    """A tenant's merchant credentials for one gateway (secrets never leave the server)."""

    __tablename__ = "payment_gateway_configs"
    __table_args__ = (UniqueConstraint("tenant_id", "gateway"),)

    gateway: Mapped[str] = mapped_column(String(20))
    enabled: Mapped[bool] = mapped_column(default=False)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class SandboxGatewayOrder(IdMixin, Base):
    """The sandbox gateway's own books: it plays the remote side, so it keeps its state
    apart from ours and talks to us only through signed notifications and queries."""

    __tablename__ = "sandbox_gateway_orders"

    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    amount_fen: Mapped[int] = mapped_column()
    description: Mapped[str] = mapped_column(String(127))
    notify_url: Mapped[str] = mapped_column(String(500))
    return_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="NOTPAY")  # NOTPAY | SUCCESS | PAYERROR | CLOSED | REFUND
    transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    refunded_fen: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    paid_at: Mapped[datetime | None] = mapped_column(nullable=True)
