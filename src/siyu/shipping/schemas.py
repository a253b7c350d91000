"""Input and output shapes of freight templates and the freight quote (admin API).

Inputs refuse unknown fields. Amounts are integer fen, units are pieces (``per_piece``) or
grams (``per_weight``). Checks that need the whole template — the rule a mode needs, known
province codes, a province in at most one region rule — are made by the service and answer
422 with their own codes (``flat_fee_required``, ``default_rule_required``,
``region_rules_not_allowed``, ``unknown_province``, ``province_repeated``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from siyu.kit.types import ObjectId, no_control

MAX_FEE_FEN = 100_000_000          # ¥1,000,000: far above any parcel
MAX_THRESHOLD_FEN = 1_000_000_000
MAX_UNITS = 10_000_000             # pieces, or grams (10 t)
MAX_REGION_RULES = 34

Mode = Literal["free", "flat", "per_piece", "per_weight"]
Fee = Annotated[int, Field(ge=0, le=MAX_FEE_FEN, description="Fee in fen (1/100 yuan)")]
Units = Annotated[int, Field(ge=1, le=MAX_UNITS, description="Pieces (per_piece) or grams (per_weight)")]
TemplateName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60), AfterValidator(no_control)]
ProvinceCode = Annotated[str, StringConstraints(pattern=r"^\d{2}$"), Field(description="2-digit code, e.g. 33 for 浙江省")]


class ChargeRule(BaseModel):
    """The first ``first`` units cost ``first_fee_fen``; each further started block of
    ``additional`` units costs ``additional_fee_fen``."""

    model_config = ConfigDict(extra="forbid")

    first: Units
    first_fee_fen: Fee
    additional: Units = 1
    additional_fee_fen: Fee = 0


class RegionRule(ChargeRule):
    provinces: list[ProvinceCode] = Field(min_length=1, max_length=34)


_EXAMPLE: dict[str, Any] = {
    "name": "全国包邮满 99（按重量）",
    "mode": "per_weight",
    "default_rule": {"first": 1000, "first_fee_fen": 800, "additional": 1000, "additional_fee_fen": 400},
    "region_rules": [
        {"provinces": ["31", "32", "33"], "first": 1000, "first_fee_fen": 500, "additional": 1000, "additional_fee_fen": 200},
        {"provinces": ["54", "65"], "first": 1000, "first_fee_fen": 2000, "additional": 1000, "additional_fee_fen": 1500},
    ],
    "free_threshold_fen": 9900,
    "is_default": True,
}


class FreightTemplateIn(BaseModel):
    """A whole template (create, or replace with PUT). Fields another mode uses are ignored:
    ``flat_fee_fen`` is for ``flat``; ``default_rule`` and ``region_rules`` are for
    ``per_piece`` and ``per_weight``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        _EXAMPLE,
        {"name": "统一运费 8 元", "mode": "flat", "flat_fee_fen": 800, "free_threshold_fen": None},
        {"name": "包邮", "mode": "free"},
    ]})

    name: TemplateName
    mode: Mode
    flat_fee_fen: Fee | None = Field(default=None, description="Mode flat: the fee of every parcel")
    default_rule: ChargeRule | None = Field(default=None, description="Mode per_piece / per_weight: provinces without a region rule")
    region_rules: list[RegionRule] = Field(default_factory=list, max_length=MAX_REGION_RULES,
                                           description="Mode per_piece / per_weight: each province in at most one rule")
    free_threshold_fen: Annotated[int, Field(ge=0, le=MAX_THRESHOLD_FEN)] | None = Field(
        default=None, description="Goods amount (fen) at or above which the lines of this template ship free")
    is_default: bool = Field(default=False, description="The tenant's default template (the first template always is)")


class FreightTemplateOut(BaseModel):
    id: int
    name: str
    mode: Mode
    flat_fee_fen: int | None
    default_rule: ChargeRule | None
    region_rules: list[RegionRule]
    free_threshold_fen: int | None
    is_default: bool
    created_at: datetime
    updated_at: datetime


class QuoteLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku_id: ObjectId
    quantity: int = Field(ge=1, le=100_000)
    weight_g: int = Field(default=0, ge=0, le=1_000_000, description="Weight of one unit, in grams")
    goods_fen: int = Field(ge=0, le=MAX_THRESHOLD_FEN, description="Goods amount of the whole line, in fen")
    requires_shipping: bool = True
    template_id: ObjectId | None = Field(default=None, description="None: the tenant's default template")


class QuoteIn(BaseModel):
    """Try the templates on a cart: the same calculation checkout uses."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "province_code": "33",
        "lines": [{"sku_id": 1, "quantity": 2, "weight_g": 300, "goods_fen": 5600, "requires_shipping": True}],
    }]})

    province_code: ProvinceCode
    lines: list[QuoteLineIn] = Field(min_length=1, max_length=200)


class TemplateChargeOut(BaseModel):
    template_id: int | None
    template_name: str | None
    mode: str
    sku_ids: list[int]
    units: int
    goods_fen: int
    freight_fen: int
    free_shipping: bool
    reason_zh: str
    reason_en: str


class FreightQuoteOut(BaseModel):
    freight_fen: int
    free_shipping: bool
    reason_zh: str
    reason_en: str
    per_template: list[TemplateChargeOut]
