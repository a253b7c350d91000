"""Input and output shapes of the inventory module (admin audience).

Quantities are whole units. One movement moves at most :data:`MAX_UNITS` units and a stock
level never holds more, so counters stay far inside the database's integer range on both
backends (SQLite would silently turn an overflowing integer into a float).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from siyu.kit.types import Code, Name, ObjectId, ShortText

#: Upper bound of one movement and of one level's on-hand count.
MAX_UNITS = 100_000_000
#: Lower bound is 0; ``None`` switches the alert off.
MAX_THRESHOLD = MAX_UNITS

#: A caller's idempotency key: 1–64 of ``A-Z a-z 0-9 _ . : @ / # -``.
SOURCE_KEY_PATTERN = r"^[A-Za-z0-9_.:@/#-]{1,64}$"
SourceKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=SOURCE_KEY_PATTERN)]
Qty = Annotated[int, Field(ge=1, le=MAX_UNITS, description="Units, 1 to 100,000,000")]
Threshold = Annotated[int, Field(ge=0, le=MAX_THRESHOLD, description="Alert when available ≤ this")]
Priority = Annotated[int, Field(ge=0, le=10_000, description="Lower ships first")]
Reason = Annotated[ShortText, StringConstraints(min_length=1)]

LocationKind = Literal["warehouse", "store"]
LocationStatus = Literal["active", "inactive"]
MovementReason = Literal["receive", "adjust", "stocktake", "reserve", "release", "commit", "return"]


# -- locations ---------------------------------------------------------------------------------


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"code": "hz-central", "name": "杭州中心仓", "kind": "warehouse", "priority": 10},
        {"code": "xihu", "name": "西湖旗舰店", "kind": "store", "store_id": 1, "priority": 50},
    ]})

    code: Code
    name: Name
    kind: LocationKind = "warehouse"
    store_id: ObjectId | None = Field(default=None, description="Required for kind=store, empty for a warehouse")
    priority: Priority = 100
    status: LocationStatus = "active"


class LocationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "杭州中心仓", "priority": 5}]})

    name: Name | None = None
    priority: Priority | None = None
    status: LocationStatus | None = None


class LocationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    kind: str
    store_id: int | None
    priority: int
    status: str
    created_at: datetime


# -- levels and movements ----------------------------------------------------------------------


class ReceiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"sku_id": 1, "location_id": 1, "qty": 120, "note": "采购入库 PO-2026-031", "source_key": "po-2026-031-1"},
    ]})

    sku_id: ObjectId
    location_id: ObjectId | None = Field(default=None, description="Empty: the default location")
    qty: Qty
    note: ShortText | None = None
    source_key: SourceKey | None = Field(
        default=None, description="Idempotency key: a retry with the same key posts nothing and returns the first movement")


class AdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"sku_id": 1, "location_id": 1, "delta": -2, "reason": "运输破损", "source_key": "damage-0612-1"},
    ]})

    sku_id: ObjectId
    location_id: ObjectId | None = Field(default=None, description="Empty: the default location")
    delta: int = Field(ge=-MAX_UNITS, le=MAX_UNITS, description="Units to add (positive) or remove (negative); not 0")
    reason: Reason
    source_key: SourceKey | None = None

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("must not be 0")
        return v


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"sku_id": 1, "location_id": 1, "threshold": 10}]})

    sku_id: ObjectId
    location_id: ObjectId | None = Field(default=None, description="Empty: the default location")
    threshold: Threshold | None = Field(description="Empty switches the low-stock alert off")


class LevelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"low_stock_threshold": 10}]})

    low_stock_threshold: Threshold | None


class LevelOut(BaseModel):
    id: int
    sku_id: int
    location_id: int
    location_name: str
    location_status: str
    on_hand: int = Field(description="Physically there")
    reserved: int = Field(description="Promised to orders not yet shipped")
    available: int = Field(description="on_hand - reserved: what can be sold")
    low_stock_threshold: int | None
    is_low: bool
    updated_at: datetime


class AvailabilityOut(BaseModel):
    sku_id: int
    available: int = Field(description="Sellable units over all active locations")


class MovementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku_id: int
    location_id: int
    delta_on_hand: int
    delta_reserved: int
    on_hand_after: int
    reserved_after: int
    reason: str
    source_type: str
    source_id: str
    source_key: str
    note: str | None
    actor_kind: str
    actor_name: str
    created_at: datetime


class ReservationLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku_id: int
    location_id: int
    quantity: int
    committed: int


class ReservationOut(BaseModel):
    id: int
    source_key: str
    status: str
    created_at: datetime
    closed_at: datetime | None
    lines: list[ReservationLineOut]


# -- stocktakes --------------------------------------------------------------------------------


class StocktakeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"location_id": 1, "note": "6 月月末盘点"}]})

    location_id: ObjectId
    note: ShortText | None = None


class CountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku_id: ObjectId
    counted: Annotated[int, Field(ge=0, le=MAX_UNITS)] | None = Field(description="Units counted; empty removes the line")


class CountsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"counts": [{"sku_id": 1, "counted": 118}, {"sku_id": 2, "counted": 40}]},
    ]})

    counts: list[CountIn] = Field(min_length=1, max_length=500)


class StocktakeLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku_id: int
    counted: int
    system_on_hand: int | None = Field(description="What the system had when the count was applied")
    delta: int | None = Field(description="Posted difference (counted - system_on_hand)")


class StocktakeOut(BaseModel):
    id: int
    location_id: int
    status: str
    note: str | None
    created_by: str
    created_at: datetime
    applied_at: datetime | None
    lines: list[StocktakeLineOut]


class StocktakeSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    location_id: int
    status: str
    note: str | None
    created_by: str
    created_at: datetime
    applied_at: datetime | None
