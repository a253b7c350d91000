"""Stock per SKU per location, reservations and the movement ledger.

``on_hand`` is what is physically there; ``reserved`` is promised to unpaid or unshipped
orders; ``on_hand - reserved`` is what can be sold. Both change only by conditional
updates, and every change writes one append-only movement row with a unique source key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, BigID, IdMixin, TenantMixin

LOCATION_KINDS = ("warehouse", "store")
REASONS = ("receive", "adjust", "stocktake", "reserve", "release", "commit", "return")


class StockLocation(IdMixin, TenantMixin, Base):
    __tablename__ = "stock_locations"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), default="warehouse")
    store_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("stores.id"), nullable=True)
    #: Lower ships first when an order can be served from several locations.
    priority: Mapped[int] = mapped_column(default=100)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | inactive
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class StockLevel(IdMixin, TenantMixin, Base):
    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("sku_id", "location_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_nonneg"),
        CheckConstraint("reserved >= 0", name="reserved_nonneg"),
        CheckConstraint("reserved <= on_hand", name="reserved_le_on_hand"),
        Index("ix_stock_levels_tenant_location", "tenant_id", "location_id"),
    )

    sku_id: Mapped[int] = mapped_column(BigID, ForeignKey("skus.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[int] = mapped_column(BigID, ForeignKey("stock_locations.id"))
    on_hand: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)
    low_stock_threshold: Mapped[int | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class StockMovement(IdMixin, TenantMixin, Base):
    """The inventory ledger: never updated, never deleted; a correction is a new row."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_key"),
        Index("ix_stock_movements_sku", "tenant_id", "sku_id", "created_at"),
    )

    sku_id: Mapped[int] = mapped_column(BigID)
    location_id: Mapped[int] = mapped_column(BigID)
    delta_on_hand: Mapped[int] = mapped_column(default=0)
    delta_reserved: Mapped[int] = mapped_column(default=0)
    on_hand_after: Mapped[int] = mapped_column()
    reserved_after: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(String(20))
    source_type: Mapped[str] = mapped_column(String(30))
    source_id: Mapped[str] = mapped_column(String(64))
    #: Unique per tenant: the same business fact can never be posted twice.
    source_key: Mapped[str] = mapped_column(String(160))
    note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    actor_kind: Mapped[str] = mapped_column(String(16), default="system")
    actor_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    actor_name: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class StockReservation(IdMixin, TenantMixin, Base):
    __tablename__ = "stock_reservations"
    __table_args__ = (UniqueConstraint("tenant_id", "source_key"),)

    #: e.g. "order:1234"; one reservation per business object.
    source_key: Mapped[str] = mapped_column(String(160))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | released | committed
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class StockReservationLine(IdMixin, TenantMixin, Base):
    __tablename__ = "stock_reservation_lines"

    reservation_id: Mapped[int] = mapped_column(BigID, ForeignKey("stock_reservations.id", ondelete="CASCADE"), index=True)
    sku_id: Mapped[int] = mapped_column(BigID)
    location_id: Mapped[int] = mapped_column(BigID)
    quantity: Mapped[int] = mapped_column()
    #: Shipped so far (partial shipments commit part of a line).
    committed: Mapped[int] = mapped_column(default=0)


class Stocktake(IdMixin, TenantMixin, Base):
    """A count of one location; applying it posts one ``stocktake`` movement per difference."""

    __tablename__ = "stocktakes"

    location_id: Mapped[int] = mapped_column(BigID, ForeignKey("stock_locations.id"))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | applied | cancelled
    note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    applied_at: Mapped[datetime | None] = mapped_column(nullable=True)


class StocktakeLine(IdMixin, TenantMixin, Base):
    __tablename__ = "stocktake_lines"
    __table_args__ = (UniqueConstraint("stocktake_id", "sku_id"),)

    stocktake_id: Mapped[int] = mapped_column(BigID, ForeignKey("stocktakes.id", ondelete="CASCADE"), index=True)
    sku_id: Mapped[int] = mapped_column(BigID)
    counted: Mapped[int] = mapped_column()
    #: Filled when applied: what the system had, and the difference posted.
    system_on_hand: Mapped[int | None] = mapped_column(nullable=True)
    delta: Mapped[int | None] = mapped_column(nullable=True)
