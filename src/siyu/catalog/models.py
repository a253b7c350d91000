"""Categories, products (SPU) and their SKUs.

A product declares its specs (e.g. 颜色 × 规格); each combination of spec values is one SKU
with its own code, prices in fen and weight. Stock lives in the inventory module, keyed by
SKU id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, BigID, IdMixin, TenantMixin

#: Product kinds. Everything except ``physical`` needs no shipping address or freight.
KINDS = ("physical", "virtual", "voucher", "service", "insert_card")
#: 包裹卡 types (package insert cards), recorded as virtual SKUs so their stock is tracked.
INSERT_CARD_TYPES = ("notice", "brand", "marketing", "trending")
STATUSES = ("draft", "on_sale", "off_sale", "scheduled")


class Category(IdMixin, TenantMixin, Base):
    __tablename__ = "categories"

    parent_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("categories.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[str] = mapped_column(String(60))
    sort: Mapped[int] = mapped_column(default=0)
    icon_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    is_visible: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class Product(IdMixin, TenantMixin, Base):
    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_tenant_status", "tenant_id", "status"),
        Index("ix_products_tenant_category", "tenant_id", "category_id"),
    )

    category_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("categories.id", ondelete="SET NULL"), nullable=True)
    title: Mapped[str] = mapped_column(String(120))
    subtitle: Mapped[str | None] = mapped_column(String(200), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="physical")
    insert_card_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    on_sale_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: [{"name": "颜色", "values": ["红", "蓝"]}, ...] in display order.
    specs: Mapped[list[Any]] = mapped_column(default=list)
    description_html: Mapped[str] = mapped_column(Text, default="")
    main_image: Mapped[str | None] = mapped_column(String(500), nullable=True)
    images: Mapped[list[str]] = mapped_column(default=list)
    #: Cached from the active SKUs so lists can sort and filter by price.
    price_min_fen: Mapped[int] = mapped_column(default=0)
    price_max_fen: Mapped[int] = mapped_column(default=0)
    sales_count: Mapped[int] = mapped_column(default=0)
    sort: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class Sku(IdMixin, TenantMixin, Base):
    __tablename__ = "skus"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("product_id", "spec_key"),
    )

    product_id: Mapped[int] = mapped_column(BigID, ForeignKey("products.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    #: {"颜色": "红", "规格": "50g"}; empty for a product without specs (one SKU).
    spec_values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Canonical "颜色:红|规格:50g" (spec order of the product) for uniqueness and lookups.
    spec_key: Mapped[str] = mapped_column(String(300), default="")
    price_fen: Mapped[int] = mapped_column()
    market_price_fen: Mapped[int | None] = mapped_column(nullable=True)
    cost_price_fen: Mapped[int | None] = mapped_column(nullable=True)
    weight_g: Mapped[int] = mapped_column(default=0)
    barcode: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
