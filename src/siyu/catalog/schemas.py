"""Input and output shapes of the catalog, per audience.

Admin inputs refuse unknown fields (no mass assignment: ``status``, ``price_min_fen`` or
``tenant_id`` can never be set through them). Money is integer fen everywhere in the API;
only the console forms and the CSV file speak yuan (``12.50``), converted exactly by
:func:`siyu.catalog.service.parse_yuan`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from siyu.kit.types import ObjectId, no_control

MAX_PRICE_FEN = 1_000_000_000
MAX_WEIGHT_G = 1_000_000
MAX_SPECS = 3
MAX_SPEC_VALUES = 30
MAX_SKUS = 200
MAX_IMAGES = 9
MAX_DESCRIPTION = 100_000
MAX_SORT = 1_000_000

Kind = Literal["physical", "virtual", "voucher", "service", "insert_card"]
InsertCardType = Literal["notice", "brand", "marketing", "trending"]
Status = Literal["draft", "on_sale", "off_sale", "scheduled"]
Action = Literal["publish", "schedule", "unpublish"]
Sort = Literal["newest", "sort", "price_asc", "price_desc", "sales"]

def _spec_text(v: str) -> str:
    no_control(v)
    if ":" in v or "|" in v or "\n" in v or "\t" in v:
        raise ValueError("must not contain ':', '|' or line breaks")
    return v


def _category_name(v: str) -> str:
    no_control(v)
    if "/" in v or "\n" in v:
        raise ValueError("must not contain '/' or line breaks")
    return v


def _blank_none(v: Any) -> Any:
    if isinstance(v, str) and not v.strip():
        return None
    return v


def _image_url(v: str) -> str:
    no_control(v)
    if not (v.startswith("/") or v.startswith("https://") or v.startswith("http://")) or v.startswith("//"):
        raise ValueError("must be an uploaded image URL")
    return v


Fen = Annotated[int, Field(ge=0, le=MAX_PRICE_FEN, description="Amount in fen (1/100 yuan)")]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120), AfterValidator(no_control)]
Subtitle = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(no_control)]
CategoryName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60), AfterValidator(_category_name)]
SpecName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20), AfterValidator(_spec_text)]
SpecValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=30), AfterValidator(_spec_text)]
_Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                         pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
_Barcode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")]
SkuCode = Annotated[_Code | None, BeforeValidator(_blank_none)]
Barcode = Annotated[_Barcode | None, BeforeValidator(_blank_none)]
ImageUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), AfterValidator(_image_url)]
SortValue = Annotated[int, Field(ge=-MAX_SORT, le=MAX_SORT, description="Smaller shows first")]


# -- categories --------------------------------------------------------------------------------


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "绿茶", "parent_id": None, "sort": 10, "is_visible": True},
    ]})

    name: CategoryName
    parent_id: ObjectId | None = None
    sort: SortValue = 0
    is_visible: bool = True
    icon_url: Annotated[ImageUrl | None, BeforeValidator(_blank_none)] = None


class CategoryUpdate(BaseModel):
    """Only the fields sent change; ``"parent_id": null`` moves the category to the top level."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "明前绿茶", "sort": 5}]})

    name: CategoryName | None = None
    parent_id: ObjectId | None = None
    sort: SortValue | None = None
    is_visible: bool | None = None
    icon_url: Annotated[ImageUrl | None, BeforeValidator(_blank_none)] = None


class CategoryOut(BaseModel):
    id: int
    parent_id: int | None
    name: str
    path: str = Field(description="Names from the top level down, joined by '/' (as in the CSV file)")
    depth: int = Field(description="1 for a top-level category; at most 3")
    sort: int
    is_visible: bool
    icon_url: str | None
    product_count: int = Field(description="Products directly in this category")


class StoreCategoryOut(BaseModel):
    id: int
    name: str
    icon_url: str | None
    children: list[StoreCategoryOut] = Field(default_factory=list)


# -- products ------------------------------------------------------------------------------------


class SpecIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SpecName
    values: list[SpecValue] = Field(min_length=1, max_length=MAX_SPEC_VALUES)

    @model_validator(mode="after")
    def _unique_values(self) -> SpecIn:
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"the values of spec {self.name} repeat")
        return self


class SkuIn(BaseModel):
    """One sellable combination. ``spec_values`` names one value of every spec of the
    product (``{}`` for a product without specs). Send ``id`` to keep editing a known SKU;
    without it the SKU is matched by its spec values. A blank ``code`` is generated."""

    model_config = ConfigDict(extra="forbid")

    id: ObjectId | None = None
    spec_values: dict[SpecName, SpecValue] = Field(default_factory=dict, max_length=MAX_SPECS)
    code: SkuCode = None
    price_fen: Fen
    market_price_fen: Fen | None = Field(default=None, description="划线价: shown struck through; not below price_fen")
    cost_price_fen: Fen | None = Field(default=None, description="Cost, for margin reports; never shown to shoppers")
    weight_g: int = Field(default=0, ge=0, le=MAX_WEIGHT_G)
    barcode: Barcode = None
    image_url: Annotated[ImageUrl | None, BeforeValidator(_blank_none)] = None
    enabled: bool = Field(default=True, description="A disabled SKU is kept (orders may name it) but not sold")

    @model_validator(mode="after")
    def _market_not_below_price(self) -> SkuIn:
        if self.market_price_fen is not None and self.market_price_fen < self.price_fen:
            raise ValueError("market_price_fen must not be below price_fen")
        return self


def _check_specs(specs: list[SpecIn]) -> None:
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("spec names repeat")
    combos = 1
    for s in specs:
        combos *= len(s.values)
    if combos > MAX_SKUS:
        raise ValueError(f"the specs make {combos} combinations; at most {MAX_SKUS}")


_PRODUCT_EXAMPLE: dict[str, Any] = {
    "title": "明前龙井 2026 新茶",
    "subtitle": "西湖产区 · 头采嫩芽",
    "category_id": None,
    "kind": "physical",
    "specs": [{"name": "规格", "values": ["50g", "100g"]}, {"name": "包装", "values": ["罐装", "袋装"]}],
    "skus": [
        {"spec_values": {"规格": "50g", "包装": "罐装"}, "price_fen": 12800, "market_price_fen": 16800, "weight_g": 120},
        {"spec_values": {"规格": "50g", "包装": "袋装"}, "price_fen": 11800, "weight_g": 70},
        {"spec_values": {"规格": "100g", "包装": "罐装"}, "price_fen": 23800, "weight_g": 180},
        {"spec_values": {"规格": "100g", "包装": "袋装"}, "price_fen": 21800, "weight_g": 120},
    ],
    "description_html": "<p>清明前采摘，<strong>豆香</strong>馥郁。</p>",
    "images": [],
    "sort": 0,
}


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_PRODUCT_EXAMPLE]})

    title: Title
    subtitle: Annotated[Subtitle | None, BeforeValidator(_blank_none)] = None
    category_id: ObjectId | None = None
    kind: Kind = "physical"
    insert_card_type: InsertCardType | None = Field(default=None, description="Required for kind insert_card (包裹卡)")
    specs: list[SpecIn] = Field(default_factory=list, max_length=MAX_SPECS)
    skus: list[SkuIn] = Field(min_length=1, max_length=MAX_SKUS)
    description_html: str = Field(default="", max_length=MAX_DESCRIPTION, description="Sanitised on save")
    images: list[ImageUrl] = Field(default_factory=list, max_length=MAX_IMAGES, description="URLs returned by the image upload")
    main_image: Annotated[ImageUrl | None, BeforeValidator(_blank_none)] = Field(default=None, description="Defaults to the first image")
    sort: SortValue = 0

    @model_validator(mode="after")
    def _check(self) -> ProductIn:
        _check_specs(self.specs)
        if (self.kind == "insert_card") != (self.insert_card_type is not None):
            raise ValueError("insert_card_type is required for kind insert_card and only for it")
        return self


class ProductUpdate(BaseModel):
    """Only the fields sent change. Specs and SKUs travel together: sending ``specs`` needs
    ``skus``; sending ``skus`` alone keeps the current specs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "明前龙井 2026 头采", "sort": 1}]})

    title: Title | None = None
    subtitle: Annotated[Subtitle | None, BeforeValidator(_blank_none)] = None
    category_id: ObjectId | None = None
    kind: Kind | None = None
    insert_card_type: InsertCardType | None = None
    specs: list[SpecIn] | None = Field(default=None, max_length=MAX_SPECS)
    skus: list[SkuIn] | None = Field(default=None, min_length=1, max_length=MAX_SKUS)
    description_html: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    images: list[ImageUrl] | None = Field(default=None, max_length=MAX_IMAGES)
    main_image: Annotated[ImageUrl | None, BeforeValidator(_blank_none)] = None
    sort: SortValue | None = None

    @model_validator(mode="after")
    def _check(self) -> ProductUpdate:
        if self.specs is not None:
            _check_specs(self.specs)
            if self.skus is None:
                raise ValueError("skus are required when specs change")
        return self


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"action": "publish"}, {"action": "schedule", "on_sale_at": "2026-05-01T10:00:00+08:00"}, {"action": "unpublish"},
    ]})

    action: Action
    on_sale_at: AwareDatetime | None = Field(default=None, description="Required for schedule; in the future")

    @model_validator(mode="after")
    def _check(self) -> StatusChange:
        if self.action == "schedule" and self.on_sale_at is None:
            raise ValueError("on_sale_at is required to schedule")
        return self


class SkuOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    product_id: int
    code: str
    spec_values: dict[str, str]
    spec_key: str
    spec_text: str = Field(description='Values joined for display, e.g. "50g / 罐装"')
    price_fen: int
    market_price_fen: int | None
    cost_price_fen: int | None
    weight_g: int
    barcode: str | None
    image_url: str | None
    status: Literal["active", "disabled"]


class SpecOut(BaseModel):
    name: str
    values: list[str]


class ProductSummaryOut(BaseModel):
    id: int
    title: str
    subtitle: str | None
    category_id: int | None
    kind: str
    insert_card_type: str | None
    status: str
    on_sale_at: datetime | None
    main_image: str | None
    price_min_fen: int
    price_max_fen: int
    sales_count: int
    sort: int
    sku_count: int = Field(description="Active SKUs")
    created_at: datetime
    updated_at: datetime


class ProductOut(ProductSummaryOut):
    specs: list[SpecOut]
    description_html: str
    images: list[str]
    requires_shipping: bool
    skus: list[SkuOut] = Field(description="Every SKU, disabled ones included")


class ImageOut(BaseModel):
    id: int
    url: str
    content_type: str
    size: int


class ImportRowError(BaseModel):
    row: int = Field(description="Line in the file; the header is line 1")
    field: str
    message: str


class ImportReportOut(BaseModel):
    rows: int
    applied_rows: int
    created_products: int
    updated_products: int
    created_skus: int
    updated_skus: int
    dry_run: bool
    errors: list[ImportRowError]


# -- storefront ------------------------------------------------------------------------------------


class StoreProductCard(BaseModel):
    id: int
    title: str
    subtitle: str | None
    kind: str
    main_image: str | None
    price_min_fen: int
    price_max_fen: int
    market_price_fen: int | None = Field(description="划线价 of the cheapest active SKU, when above its price")
    sales_count: int


class StoreSkuOut(BaseModel):
    id: int
    spec_values: dict[str, str]
    spec_text: str
    price_fen: int
    market_price_fen: int | None
    image_url: str | None
    stock: int | None = Field(description="Units available now; null while stock is not known")
    available: bool


class StoreProductOut(BaseModel):
    id: int
    title: str
    subtitle: str | None
    kind: str
    category_id: int | None
    main_image: str | None
    images: list[str]
    description_html: str
    specs: list[SpecOut]
    price_min_fen: int
    price_max_fen: int
    sales_count: int
    requires_shipping: bool
    skus: list[StoreSkuOut]
