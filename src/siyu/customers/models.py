"""Customers of a tenant and the identities (phone, openid, unionid, ...) that find them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, BigID, IdMixin, TenantMixin


class Customer(IdMixin, TenantMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_tenant_created", "tenant_id", "created_at"),)

    nickname: Mapped[str | None] = mapped_column(String(100), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    avatar_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | blocked | merged
    merged_into_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("customers.id"), nullable=True)
    registered_via: Mapped[str] = mapped_column(String(20), default="sms")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    last_login_at: Mapped[datetime | None] = mapped_column(nullable=True)


class CustomerIdentity(IdMixin, TenantMixin, Base):
    """One row per way of recognising a customer; unique per tenant, so a phone or openid seen
    again always finds the same customer, even when two sign-ins race."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "value"),)

    customer_id: Mapped[int] = mapped_column(BigID, ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # phone | openid | unionid | wecom_external
    value: Mapped[str] = mapped_column(String(128))
    app_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class SmsCode(IdMixin, TenantMixin, Base):
    __tablename__ = "sms_codes"
    __table_args__ = (Index("ix_sms_codes_lookup", "tenant_id", "phone", "purpose", "created_at"),)

    phone: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(String(20))  # login | bind_phone
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime] = mapped_column()
    consumed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
