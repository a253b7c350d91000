"""Carts, orders, fulfilment parts, shipments, after-sales cases and the transition log.

Money is integer fen. An order keeps a snapshot of everything it was sold with (titles,
specs, prices, the delivery address, the price breakdown), so later catalog or address
edits never change what a customer bought.

Per line, ``subtotal_fen = unit_price_fen × quantity``, and
``paid_fen = subtotal_fen − discount_fen + freight_fen``; the sums over the lines are the
order's ``goods_fen``, ``discount_fen``, ``freight_fen`` and ``payable_fen`` exactly (the
discounts and the freight are spread by largest remainder, :func:`siyu.kit.money.allocate`).
Refunds of a line never exceed its ``paid_fen``; see :mod:`siyu.orders.aftersales`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, BigID, IdMixin, TenantMixin


class CartItem(IdMixin, TenantMixin, Base):
    """One SKU in a customer's cart (the cart is the set of a customer's items)."""

    __tablename__ = "cart_items"
    __table_args__ = (UniqueConstraint("tenant_id", "customer_id", "sku_id", name="uq_cart_items_sku"),)

    customer_id: Mapped[int] = mapped_column(BigID, ForeignKey("customers.id", ondelete="CASCADE"))
    sku_id: Mapped[int] = mapped_column(BigID)
    quantity: Mapped[int] = mapped_column()
    selected: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class Order(IdMixin, TenantMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "order_no", name="uq_orders_no"),
        # Same key + same body → the same order; same key + another body → 409.
        UniqueConstraint("tenant_id", "customer_id", "idempotency_key", name="uq_orders_idempotency"),
        Index("ix_orders_tenant_created", "tenant_id", "created_at"),
        Index("ix_orders_customer", "tenant_id", "customer_id", "created_at"),
        Index("ix_orders_status", "tenant_id", "status", "created_at"),
        Index("ix_orders_pay_deadline", "status", "pay_deadline"),
        Index("ix_orders_auto_confirm", "status", "auto_confirm_at"),
    )

    #: Human-readable, unique per tenant: ``yymmdd`` + 8 random digits.
    order_no: Mapped[str] = mapped_column(String(24))
    customer_id: Mapped[int] = mapped_column(BigID, ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending_payment")
    idempotency_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: SHA-256 of the canonical request body the key was first used with.
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel: Mapped[str] = mapped_column(String(20), default="h5")  # h5 | mini_program | api | demo
    goods_fen: Mapped[int] = mapped_column()
    discount_fen: Mapped[int] = mapped_column(default=0)
    freight_fen: Mapped[int] = mapped_column(default=0)
    #: Of ``discount_fen``: what points paid (``points_used`` points) and what stored value
    #: paid (members module). Both are ways of paying, so sales figures count them as paid.
    points_used: Mapped[int] = mapped_column(default=0)
    points_fen: Mapped[int] = mapped_column(default=0)
    balance_fen: Mapped[int] = mapped_column(default=0)
    payable_fen: Mapped[int] = mapped_column()
    #: What the gateway took (0 until paid).
    paid_fen: Mapped[int] = mapped_column(default=0)
    #: What went back through succeeded refunds.
    refunded_fen: Mapped[int] = mapped_column(default=0)
    item_count: Mapped[int] = mapped_column(default=0)
    requires_shipping: Mapped[bool] = mapped_column(default=True)
    #: Snapshot of the delivery address (receiver_name, phone, province_code, province, city,
    #: district, detail, postal_code); empty for orders that ship nothing.
    address: Mapped[dict[str, Any]] = mapped_column(default=dict)
    buyer_note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    seller_note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: The price breakdown at checkout: offers applied, freight reason (see pricing).
    pricing: Mapped[dict[str, Any]] = mapped_column(default=dict)
    payment_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    pay_deadline: Mapped[datetime | None] = mapped_column(nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    auto_confirm_at: Mapped[datetime | None] = mapped_column(nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(80), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class OrderLine(IdMixin, TenantMixin, Base):
    __tablename__ = "order_lines"

    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    sku_id: Mapped[int] = mapped_column(BigID)
    product_id: Mapped[int] = mapped_column(BigID)
    sku_code: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(120))
    spec_text: Mapped[str] = mapped_column(String(200), default="")
    image: Mapped[str | None] = mapped_column(String(500), nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    requires_shipping: Mapped[bool] = mapped_column(default=True)
    unit_price_fen: Mapped[int] = mapped_column()
    quantity: Mapped[int] = mapped_column()
    subtotal_fen: Mapped[int] = mapped_column()
    discount_fen: Mapped[int] = mapped_column(default=0)
    freight_fen: Mapped[int] = mapped_column(default=0)
    paid_fen: Mapped[int] = mapped_column()
    #: Per offer: ``[{"code": ..., "label": ..., "fen": ...}]`` — what each discount took from this line.
    discounts: Mapped[list[Any]] = mapped_column(default=list)
    shipped_qty: Mapped[int] = mapped_column(default=0)
    #: Units refunded before they shipped: they will never ship (shippable = quantity −
    #: shipped_qty − cancelled_qty; both changed only by conditional updates).
    cancelled_qty: Mapped[int] = mapped_column(default=0)
    #: Units and fen in after-sales cases that are open or done (reserved by conditional update).
    refund_qty: Mapped[int] = mapped_column(default=0)
    refund_fen: Mapped[int] = mapped_column(default=0)
    #: Units and fen actually refunded (refund succeeded).
    refunded_qty: Mapped[int] = mapped_column(default=0)
    refunded_fen: Mapped[int] = mapped_column(default=0)


class OrderFulfilment(IdMixin, TenantMixin, Base):
    """A part of an order shipped from one source (a stock location; none for virtual goods)."""

    __tablename__ = "order_fulfilments"

    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column()  # 1, 2, ... within the order
    location_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="ship")  # ship | virtual
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | partially_shipped | shipped | cancelled
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class FulfilmentItem(IdMixin, TenantMixin, Base):
    __tablename__ = "order_fulfilment_items"
    __table_args__ = (UniqueConstraint("fulfilment_id", "order_line_id", name="uq_fulfilment_items_line"),)

    fulfilment_id: Mapped[int] = mapped_column(BigID, ForeignKey("order_fulfilments.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    order_line_id: Mapped[int] = mapped_column(BigID, ForeignKey("order_lines.id", ondelete="CASCADE"))
    sku_id: Mapped[int] = mapped_column(BigID)
    quantity: Mapped[int] = mapped_column()
    shipped_qty: Mapped[int] = mapped_column(default=0)


class Shipment(IdMixin, TenantMixin, Base):
    """A parcel: some units of a fulfilment part handed to a carrier."""

    __tablename__ = "order_shipments"
    __table_args__ = (
        # Bulk CSV shipping may be uploaded twice: the same tracking number on the same order is one parcel.
        UniqueConstraint("tenant_id", "order_id", "carrier_code", "tracking_no", name="uq_shipments_tracking"),
    )

    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    fulfilment_id: Mapped[int] = mapped_column(BigID, ForeignKey("order_fulfilments.id", ondelete="CASCADE"))
    carrier_code: Mapped[str] = mapped_column(String(20))
    carrier_name: Mapped[str] = mapped_column(String(40))
    tracking_no: Mapped[str] = mapped_column(String(40))
    #: ``[{"line_id": ..., "sku_id": ..., "qty": ...}]``
    items: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="in_transit")  # in_transit | delivered
    shipped_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    shipped_at: Mapped[datetime] = mapped_column(default=clock.now)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AfterSale(IdMixin, TenantMixin, Base):
    """An after-sales case (售后): refund only, or return and refund, for some units of some lines."""

    __tablename__ = "after_sales"
    __table_args__ = (
        UniqueConstraint("tenant_id", "case_no", name="uq_after_sales_no"),
        Index("ix_after_sales_status", "tenant_id", "status", "created_at"),
    )

    case_no: Mapped[str] = mapped_column(String(24))
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("orders.id"), index=True)
    customer_id: Mapped[int] = mapped_column(BigID, ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(20))  # refund_only | return_refund
    status: Mapped[str] = mapped_column(String(20), default="requested")
    reason: Mapped[str] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    images: Mapped[list[Any]] = mapped_column(default=list)
    refund_fen: Mapped[int] = mapped_column()
    #: Who opened it: customer | staff.
    opened_by: Mapped[str] = mapped_column(String(16), default="customer")
    reject_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    return_carrier: Mapped[str | None] = mapped_column(String(40), nullable=True)
    return_tracking_no: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: The payments module's refund (``payment_refunds.id``) once the money is sent back.
    refund_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AfterSaleLine(IdMixin, TenantMixin, Base):
    __tablename__ = "after_sale_lines"
    __table_args__ = (UniqueConstraint("after_sale_id", "order_line_id", name="uq_after_sale_lines_line"),)

    after_sale_id: Mapped[int] = mapped_column(BigID, ForeignKey("after_sales.id", ondelete="CASCADE"), index=True)
    order_line_id: Mapped[int] = mapped_column(BigID, ForeignKey("order_lines.id"))
    sku_id: Mapped[int] = mapped_column(BigID)
    quantity: Mapped[int] = mapped_column()
    #: Of ``quantity``, the units taken before they shipped (refund only): they became the
    #: order line's ``cancelled_qty``, go back to it if the case is rejected or withdrawn, and
    #: their stock reservation is released when the refund succeeds.
    cancelled_qty: Mapped[int] = mapped_column(default=0)
    refund_fen: Mapped[int] = mapped_column()


class OrderTransition(IdMixin, TenantMixin, Base):
    """Every state change of an order or of one of its after-sales cases, with who and why."""

    __tablename__ = "order_transitions"

    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    after_sale_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(30))
    actor_type: Mapped[str] = mapped_column(String(16))  # customer | staff | system | gateway | token
    actor_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    actor_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
