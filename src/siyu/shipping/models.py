"""Freight templates (运费模板) of a tenant.

``rules`` holds the charging rules of the template's mode (validated by
:mod:`siyu.shipping.schemas` before they are stored)::

    {"flat_fee_fen": 800}                                   # mode flat
    {"default": {"first": 1000, "first_fee_fen": 800,        # mode per_piece / per_weight
                 "additional": 1000, "additional_fee_fen": 400},
     "regions": [{"provinces": ["31", "32", "33"], "first": 1000, "first_fee_fen": 500,
                  "additional": 1000, "additional_fee_fen": 200}]}
    {}                                                      # mode free

Units are pieces (per_piece) or grams (per_weight); fees are integer fen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, IdMixin, TenantMixin

MODES = ("free", "flat", "per_piece", "per_weight")


class FreightTemplate(IdMixin, TenantMixin, Base):
    __tablename__ = "freight_templates"
    __table_args__ = (
        # At most one default template per tenant (the service keeps exactly one).
        Index("uq_freight_templates_default", "tenant_id", unique=True,
              sqlite_where=text("is_default"), postgresql_where=text("is_default")),
    )

    name: Mapped[str] = mapped_column(String(60))
    mode: Mapped[str] = mapped_column(String(16))
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    free_threshold_fen: Mapped[int | None] = mapped_column(nullable=True)
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
