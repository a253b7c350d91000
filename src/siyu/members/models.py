"""Members: profile, levels, growth, points (lots and an append-only ledger), the points mall,
stored value (recharges; balances live in :mod:`siyu.kit.ledger`), paid membership cards
and birthday grants.

Points and growth are integers. Every ledger row carries a ``source_key`` unique per tenant,
so an event handled twice counts once. Balances kept on :class:`Member` (``points``,
``growth``) change only by conditional update together with a ledger row, and always equal
the sum of that ledger.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, BigID, IdMixin, TenantMixin


class MemberLevel(IdMixin, TenantMixin, Base):
    """A level (普通 / 银卡 / 金卡 / 黑金) and its benefits.

    ``rank`` orders the levels (0 is the level every member starts at). A member reaches a
    level when its growth reaches ``growth_threshold``; a level with ``paid_only`` is reached
    only through a paid membership card.
    """

    __tablename__ = "member_levels"
    __table_args__ = (UniqueConstraint("tenant_id", "rank", name="uq_member_levels_rank"),)

    rank: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(20))
    growth_threshold: Mapped[int] = mapped_column(default=0)
    paid_only: Mapped[bool] = mapped_column(default=False)
    #: What a member pays of the price, in basis points (9500 = 9.5 折; 10000 = no discount).
    price_rate_bp: Mapped[int] = mapped_column(default=10000)
    free_shipping: Mapped[bool] = mapped_column(default=False)
    #: Points earned are multiplied by this (10000 = 1×, 15000 = 1.5×).
    points_multiplier_bp: Mapped[int] = mapped_column(default=10000)
    priority_shipping: Mapped[bool] = mapped_column(default=False)
    birthday_points: Mapped[int] = mapped_column(default=0)
    #: A coupon template granted on the birthday (marketing module), if any.
    birthday_coupon_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    color: Mapped[str] = mapped_column(String(16), default="#8c8c8c")
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class Member(IdMixin, TenantMixin, Base):
    """The member profile of a customer (one per customer, made on first need)."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("tenant_id", "customer_id", name="uq_members_customer"),
        Index("ix_members_level", "tenant_id", "level_id"),
        Index("ix_members_review", "level_review_at"),
        Index("ix_members_birthday", "tenant_id", "birthday_md"),
        Index("ix_members_card_expiry", "card_expires_at"),
    )

    customer_id: Mapped[int] = mapped_column(BigID, ForeignKey("customers.id"))
    #: The level earned by growth (a valid paid card may lift the effective level above it).
    level_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("member_levels.id"), nullable=True)
    growth: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    birthday: Mapped[date | None] = mapped_column(Date, nullable=True)
    #: ``MM-DD`` of the birthday, for the daily birthday job's lookup.
    birthday_md: Mapped[str | None] = mapped_column(String(5), nullable=True)
    gender: Mapped[str] = mapped_column(String(8), default="unknown")  # unknown | male | female
    region: Mapped[str] = mapped_column(String(60), default="")
    registered_at: Mapped[datetime] = mapped_column(default=clock.now)
    level_changed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: When the downgrade review next looks at this member (a deadline row for the sweeper).
    level_review_at: Mapped[datetime | None] = mapped_column(nullable=True)
    card_level_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("member_levels.id"), nullable=True)
    card_plan_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    card_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class SkuMemberPrice(IdMixin, TenantMixin, Base):
    """A fixed member price of one SKU for one level (beats the level's discount)."""

    __tablename__ = "sku_member_prices"
    __table_args__ = (UniqueConstraint("tenant_id", "sku_id", "level_id", name="uq_sku_member_prices"),)

    sku_id: Mapped[int] = mapped_column(BigID)
    level_id: Mapped[int] = mapped_column(BigID, ForeignKey("member_levels.id", ondelete="CASCADE"))
    price_fen: Mapped[int] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class GrowthEntry(IdMixin, TenantMixin, Base):
    """Append-only growth ledger."""

    __tablename__ = "member_growth_entries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_key", name="uq_member_growth_source"),
        Index("ix_member_growth_customer", "tenant_id", "customer_id", "id"),
    )

    customer_id: Mapped[int] = mapped_column(BigID)
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(24))  # order_paid | refund | action | adjust | ...
    source_key: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class PointsEntry(IdMixin, TenantMixin, Base):
    """Append-only points ledger: every change of a member's points is one row."""

    __tablename__ = "points_entries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_key", name="uq_points_entries_source"),
        Index("ix_points_entries_customer", "tenant_id", "customer_id", "id"),
        Index("ix_points_entries_kind", "tenant_id", "kind", "created_at"),
    )

    customer_id: Mapped[int] = mapped_column(BigID)
    #: Positive earns, negative spends/expires/takes back.
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    #: earn | signup | first_order | review | checkin | birthday | spend | refund_return |
    #: refund_takeback | cancel_return | expire | adjust | redeem
    kind: Mapped[str] = mapped_column(String(24))
    source_key: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(String(200), default="")
    #: Staff member who made a manual adjustment.
    staff_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class PointsLot(IdMixin, TenantMixin, Base):
    """Points earned together, expiring together. Spending takes from the lot nearest expiry."""

    __tablename__ = "points_lots"
    __table_args__ = (
        Index("ix_points_lots_open", "tenant_id", "customer_id", "remaining", "expires_at"),
        Index("ix_points_lots_due", "expires_at", "remaining"),
    )

    customer_id: Mapped[int] = mapped_column(BigID)
    entry_id: Mapped[int] = mapped_column(BigID, ForeignKey("points_entries.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    #: ``None``: never expires.
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: Set once the expiry notice for this lot was sent.
    notified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class PointsLotUse(IdMixin, TenantMixin, Base):
    """Which lots a spending entry drew from (so a reversal can give points back to them)."""

    __tablename__ = "points_lot_uses"
    __table_args__ = (Index("ix_points_lot_uses_entry", "tenant_id", "entry_id"),)

    entry_id: Mapped[int] = mapped_column(BigID, ForeignKey("points_entries.id"))
    lot_id: Mapped[int] = mapped_column(BigID, ForeignKey("points_lots.id"))
    amount: Mapped[int] = mapped_column(BigInteger)


class PointsMallItem(IdMixin, TenantMixin, Base):
    """Something members exchange points (or points + cash) for: a product SKU or a coupon."""

    __tablename__ = "points_mall_items"
    __table_args__ = (Index("ix_points_mall_items_sale", "tenant_id", "on_sale", "sort"),)

    kind: Mapped[str] = mapped_column(String(12))  # product | coupon
    sku_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    coupon_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    title: Mapped[str] = mapped_column(String(120))
    image: Mapped[str | None] = mapped_column(String(500), nullable=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    points: Mapped[int] = mapped_column()
    cash_fen: Mapped[int] = mapped_column(default=0)
    #: Units left to exchange (conditional update); ``sold`` counts the exchanged ones.
    stock: Mapped[int] = mapped_column(default=0)
    sold: Mapped[int] = mapped_column(default=0)
    #: Per member, over the item's life; 0 = no limit.
    per_member_limit: Mapped[int] = mapped_column(default=0)
    #: Lowest level rank allowed to exchange (0: everyone).
    min_level_rank: Mapped[int] = mapped_column(default=0)
    on_sale: Mapped[bool] = mapped_column(default=False)
    sort: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class PointsMallClaim(IdMixin, TenantMixin, Base):
    """How many of an item a member holds (the per-member limit is a conditional update here)."""

    __tablename__ = "points_mall_claims"
    __table_args__ = (UniqueConstraint("tenant_id", "item_id", "customer_id", name="uq_points_mall_claims"),)

    item_id: Mapped[int] = mapped_column(BigID, ForeignKey("points_mall_items.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigID)
    quantity: Mapped[int] = mapped_column(default=0)


class PointsRedemption(IdMixin, TenantMixin, Base):
    """One exchange in the points mall. A product exchange is also an order (``order_id``)
    so it ships, cancels and refunds like one; a coupon exchange completes at once."""

    __tablename__ = "points_redemptions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "redemption_no", name="uq_points_redemptions_no"),
        Index("ix_points_redemptions_customer", "tenant_id", "customer_id", "created_at"),
        Index("ix_points_redemptions_order", "tenant_id", "order_id"),
    )

    redemption_no: Mapped[str] = mapped_column(String(24))
    customer_id: Mapped[int] = mapped_column(BigID)
    item_id: Mapped[int] = mapped_column(BigID, ForeignKey("points_mall_items.id"))
    quantity: Mapped[int] = mapped_column(default=1)
    points: Mapped[int] = mapped_column()
    cash_fen: Mapped[int] = mapped_column(default=0)
    #: pending_payment | completed | cancelled | refunded
    status: Mapped[str] = mapped_column(String(20))
    order_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    title: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class RechargePackage(IdMixin, TenantMixin, Base):
    """储值套餐: pay ``pay_fen``, get ``pay_fen + bonus_fen`` of balance."""

    __tablename__ = "recharge_packages"
    __table_args__ = (Index("ix_recharge_packages_sale", "tenant_id", "on_sale", "sort"),)

    name: Mapped[str] = mapped_column(String(40))
    pay_fen: Mapped[int] = mapped_column(BigInteger)
    bonus_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    on_sale: Mapped[bool] = mapped_column(default=True)
    sort: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class Recharge(IdMixin, TenantMixin, Base):
    """One top-up, paid through the payment gateway (payments source ``recharge``)."""

    __tablename__ = "recharges"
    __table_args__ = (
        UniqueConstraint("tenant_id", "recharge_no", name="uq_recharges_no"),
        UniqueConstraint("tenant_id", "customer_id", "idempotency_key", name="uq_recharges_idempotency"),
        Index("ix_recharges_customer", "tenant_id", "customer_id", "created_at"),
        Index("ix_recharges_status", "tenant_id", "status", "created_at"),
    )

    recharge_no: Mapped[str] = mapped_column(String(24))
    customer_id: Mapped[int] = mapped_column(BigID)
    package_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    pay_fen: Mapped[int] = mapped_column(BigInteger)
    bonus_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    #: pending_payment | paid | closed
    status: Mapped[str] = mapped_column(String(20), default="pending_payment")
    idempotency_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payment_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    #: Principal of this recharge already sent back to the payer.
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    pay_deadline: Mapped[datetime | None] = mapped_column(nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class BalanceRefund(IdMixin, TenantMixin, Base):
    """A member's request to take unspent principal back (bonus is never refunded)."""

    __tablename__ = "balance_refunds"
    __table_args__ = (
        UniqueConstraint("tenant_id", "refund_no", name="uq_balance_refunds_no"),
        Index("ix_balance_refunds_status", "tenant_id", "status", "created_at"),
        Index("ix_balance_refunds_customer", "tenant_id", "customer_id", "created_at"),
        # At most one open request per member.
        Index("uq_balance_refunds_open", "tenant_id", "customer_id", unique=True,
              sqlite_where=text("status IN ('pending', 'refunding')"),
              postgresql_where=text("status IN ('pending', 'refunding')")),
    )

    refund_no: Mapped[str] = mapped_column(String(24))
    customer_id: Mapped[int] = mapped_column(BigID)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    #: pending | refunding | refunded | rejected | failed
    status: Mapped[str] = mapped_column(String(20), default="pending")
    reason: Mapped[str] = mapped_column(String(200), default="")
    reject_reason: Mapped[str] = mapped_column(String(200), default="")
    decided_by: Mapped[int | None] = mapped_column(BigID, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class BalanceRefundPart(IdMixin, TenantMixin, Base):
    """The share of a balance refund sent back through one recharge's payment."""

    __tablename__ = "balance_refund_parts"
    __table_args__ = (Index("ix_balance_refund_parts_refund", "tenant_id", "balance_refund_id"),)

    balance_refund_id: Mapped[int] = mapped_column(BigID, ForeignKey("balance_refunds.id"))
    recharge_id: Mapped[int] = mapped_column(BigID, ForeignKey("recharges.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    #: The payments module's refund, once submitted.
    refund_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | succeeded | failed


class MemberCardPlan(IdMixin, TenantMixin, Base):
    """付费会员卡: pay ``price_fen`` for ``days`` at ``level_id``; renewable."""

    __tablename__ = "member_card_plans"

    name: Mapped[str] = mapped_column(String(40))
    level_id: Mapped[int] = mapped_column(BigID, ForeignKey("member_levels.id"))
    days: Mapped[int] = mapped_column()
    price_fen: Mapped[int] = mapped_column(BigInteger)
    #: Points granted with each purchase.
    gift_points: Mapped[int] = mapped_column(default=0)
    description: Mapped[str] = mapped_column(String(500), default="")
    on_sale: Mapped[bool] = mapped_column(default=True)
    sort: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class MemberCardPurchase(IdMixin, TenantMixin, Base):
    """One purchase or renewal of a paid card (payments source ``member_card``)."""

    __tablename__ = "member_card_purchases"
    __table_args__ = (
        UniqueConstraint("tenant_id", "purchase_no", name="uq_member_card_purchases_no"),
        UniqueConstraint("tenant_id", "customer_id", "idempotency_key", name="uq_member_card_purchases_idempotency"),
        Index("ix_member_card_purchases_customer", "tenant_id", "customer_id", "created_at"),
        Index("ix_member_card_purchases_due", "status", "pay_deadline"),
    )

    purchase_no: Mapped[str] = mapped_column(String(24))
    customer_id: Mapped[int] = mapped_column(BigID)
    plan_id: Mapped[int] = mapped_column(BigID, ForeignKey("member_card_plans.id"))
    plan_name: Mapped[str] = mapped_column(String(40))
    level_id: Mapped[int] = mapped_column(BigID)
    days: Mapped[int] = mapped_column()
    price_fen: Mapped[int] = mapped_column(BigInteger)
    #: pending_payment | paid | closed | refunded
    status: Mapped[str] = mapped_column(String(20), default="pending_payment")
    idempotency_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payment_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    #: The validity this purchase added (set when paid; a renewal starts where the last ends).
    starts_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(nullable=True)
    pay_deadline: Mapped[datetime | None] = mapped_column(nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class BirthdayGrant(IdMixin, TenantMixin, Base):
    """A birthday gift given: once per member per year, whatever runs the job."""

    __tablename__ = "member_birthday_grants"
    __table_args__ = (UniqueConstraint("tenant_id", "customer_id", "year", name="uq_member_birthday_grants"),)

    customer_id: Mapped[int] = mapped_column(BigID)
    year: Mapped[int] = mapped_column()
    level_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    points: Mapped[int] = mapped_column(default=0)
    coupon_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    granted_at: Mapped[datetime] = mapped_column(default=clock.now)


class MemberNotice(IdMixin, TenantMixin, Base):
    """A message to a member shown in the member centre (points about to expire, level up,
    birthday gift...). ``notice_key`` is unique per tenant so a notice is sent once."""

    __tablename__ = "member_notices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "notice_key", name="uq_member_notices_key"),
        Index("ix_member_notices_customer", "tenant_id", "customer_id", "created_at"),
    )

    customer_id: Mapped[int] = mapped_column(BigID)
    kind: Mapped[str] = mapped_column(String(24))  # points_expiring | level_up | level_down | birthday | card_expiring
    notice_key: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(String(300), default="")
    read_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
