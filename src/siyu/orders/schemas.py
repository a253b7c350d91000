"""Input and output shapes of the order lifecycle API, per audience.

Shoppers see their orders without the seller's note, the staff timeline or customer data;
staff see everything, with the customer's phone masked in lists. Inputs refuse unknown
fields; amounts are integer fen and never accepted from a client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from siyu.kit.types import ObjectId, no_control

OrderStatus = Literal["pending_payment", "paid", "partially_shipped", "shipped", "delivered", "completed", "cancelled",
                      "closed"]
PayChannel = Literal["sandbox", "jsapi", "h5", "native"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=80), AfterValidator(no_control)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(no_control)]
CarrierCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20), AfterValidator(no_control)]
TrackingNo = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9-]{6,40}$"),
                       Field(description="6–40 of A-Z a-z 0-9 -")]
ReturnUrl = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(no_control)]


# -- inputs ---------------------------------------------------------------------------------------------


class PayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"channel": "sandbox", "return_url": "/m/shop/orders/123"}, {"channel": "jsapi"}]})

    channel: PayChannel = "sandbox"
    return_url: ReturnUrl | None = Field(default=None, description="A path of this site to come back to after paying")


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "不想要了"}]})

    reason: Reason | None = None


class ShipItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_id: ObjectId
    quantity: int = Field(ge=1, le=1_000_000)


class ShipIn(BaseModel):
    """One parcel. Without ``items``, everything still shippable in the part (or, without
    ``fulfilment_id``, in the whole order) goes into it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"carrier_code": "SF", "tracking_no": "SF1234567890123"},
        {"carrier_code": "ZTO", "tracking_no": "78312345678901", "fulfilment_id": 12,
         "items": [{"line_id": 345, "quantity": 1}]},
    ]})

    fulfilment_id: ObjectId | None = None
    items: list[ShipItemIn] | None = Field(default=None, min_length=1, max_length=200)
    carrier_code: CarrierCode = Field(description="SF, ZTO, YTO, YD, STO, JD, EMS, JT, DBL or OTHER (or the Chinese name)")
    tracking_no: TrackingNo


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "顺丰加急，周末不送"}]})

    note: Note | None = None


class OrderSettingsIn(BaseModel):
    """Fields left out keep their value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"pay_timeout_minutes": 15, "auto_confirm_days": 7, "after_sale_days": 15}]})

    pay_timeout_minutes: int | None = Field(default=None, ge=5, le=1440, description="Unpaid orders are cancelled after this")
    auto_confirm_days: int | None = Field(default=None, ge=1, le=30, description="Shipped orders complete after this")
    after_sale_days: int | None = Field(default=None, ge=0, le=90,
                                        description="After-sales may open until this many days after completion")
    return_address: Annotated[str, StringConstraints(max_length=200), AfterValidator(no_control)] | None = Field(
        default=None, description="退货地址 shown to shoppers whose return was approved (empty: the shop name)")


# -- outputs --------------------------------------------------------------------------------------------


class OrderSettingsOut(BaseModel):
    pay_timeout_minutes: int
    auto_confirm_days: int
    after_sale_days: int
    return_address: str


class CarrierOut(BaseModel):
    code: str
    name: str
    name_en: str


class LineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku_id: int
    product_id: int
    sku_code: str
    title: str
    spec_text: str
    image: str | None
    kind: str
    requires_shipping: bool
    unit_price_fen: int
    quantity: int
    subtotal_fen: int
    discount_fen: int
    freight_fen: int
    paid_fen: int
    discounts: list[Any]
    shipped_qty: int
    cancelled_qty: int
    refund_qty: int
    refunded_qty: int
    refunded_fen: int


class LineCard(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    spec_text: str
    image: str | None
    unit_price_fen: int
    quantity: int


class ShipmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    fulfilment_id: int
    carrier_code: str
    carrier_name: str
    tracking_no: str
    items: list[Any]
    status: str
    shipped_at: datetime
    delivered_at: datetime | None


class FulfilmentItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    order_line_id: int
    sku_id: int
    quantity: int
    shipped_qty: int


class FulfilmentOut(BaseModel):
    id: int
    seq: int
    location_id: int | None
    kind: str
    status: str
    items: list[FulfilmentItemOut]


class TransitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: str
    to_status: str
    action: str
    actor_type: str
    actor_name: str | None
    note: str | None
    after_sale_id: int | None
    created_at: datetime


class AfterSaleSummaryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    case_no: str
    kind: str
    status: str
    refund_fen: int
    created_at: datetime


class OrderPaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    out_trade_no: str
    status: str
    amount_fen: int
    refunded_fen: int
    channel: str
    paid_at: datetime | None
    created_at: datetime


class _OrderBase(BaseModel):
    id: int
    order_no: str
    status: OrderStatus
    status_label: str
    goods_fen: int
    discount_fen: int
    freight_fen: int
    payable_fen: int
    paid_fen: int
    refunded_fen: int
    item_count: int
    requires_shipping: bool
    created_at: datetime
    pay_deadline: datetime | None
    paid_at: datetime | None
    shipped_at: datetime | None
    completed_at: datetime | None


class StoreOrderCard(_OrderBase):
    lines: list[LineCard]
    actions: list[str] = Field(description="What the shopper may do now: pay, cancel, confirm")


class StoreOrderOut(_OrderBase):
    address: dict[str, Any]
    buyer_note: str | None
    pricing: dict[str, Any]
    delivered_at: datetime | None
    auto_confirm_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    closed_at: datetime | None
    lines: list[LineOut]
    shipments: list[ShipmentOut]
    after_sales: list[AfterSaleSummaryOut]
    after_sale_until: datetime | None
    actions: list[str] = Field(description="What the shopper may do now: pay, cancel, confirm")


class AdminOrderRow(_OrderBase):
    customer_id: int
    customer_name: str | None
    customer_phone: str | None = Field(description="Masked")
    receiver_name: str | None
    items_summary: str
    channel: str


class AdminOrderOut(StoreOrderOut):
    customer_id: int
    customer_name: str | None
    customer_phone: str | None = Field(description="Masked")
    channel: str
    seller_note: str | None
    payment_id: int | None
    fulfilments: list[FulfilmentOut]
    transitions: list[TransitionOut]
    payments: list[OrderPaymentOut]


class PayStartOut(BaseModel):
    order_id: int
    #: True when nothing was left to pay and the order is paid already.
    paid: bool
    out_trade_no: str | None
    amount_fen: int
    channel: str | None
    pay_url: str | None
    code_url: str | None
    pay_params: dict[str, str] | None
    expires_at: datetime | None
    reused: bool


class ShipOut(BaseModel):
    created: bool = Field(description="False when this carrier and tracking number had already shipped on the order")
    order_status: OrderStatus
    shipment: ShipmentOut


class BulkShipRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    row: int
    order_no: str
    carrier: str
    tracking_no: str
    result: Literal["shipped", "already_shipped", "error"]
    code: str | None
    message: str | None
    shipment_id: int | None


class BulkShipReportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    rows: int
    shipped: int
    already_shipped: int
    errors: int
    results: list[BulkShipRowOut]
