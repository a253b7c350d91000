"""Customers of a tenant, the identities (phone, openid, unionid, ...) that find them, and
their address books."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
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


class CustomerAddress(IdMixin, TenantMixin, Base):
    """One entry of a customer's address book (收货地址).

    ``province_code`` is the 2-digit code of a provincial-level division (see
    :data:`siyu.customers.schemas.PROVINCES`); ``province`` keeps its name for display and
    for orders that copy the address. A customer has exactly one default address while it
    has any: the partial unique index backs up the service's rule.
    """

    __tablename__ = "customer_addresses"
    __table_args__ = (
        Index("ix_customer_addresses_owner", "tenant_id", "customer_id"),
        Index("uq_customer_addresses_default", "tenant_id", "customer_id", unique=True,
              sqlite_where=text("is_default"), postgresql_where=text("is_default")),
    )

    customer_id: Mapped[int] = mapped_column(BigID, ForeignKey("customers.id", ondelete="CASCADE"))
    receiver_name: Mapped[str] = mapped_column(String(50))
    phone: Mapped[str] = mapped_column(String(20))
    province_code: Mapped[str] = mapped_column(String(2))
    province: Mapped[str] = mapped_column(String(20))
    city: Mapped[str] = mapped_column(String(40))
    district: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
