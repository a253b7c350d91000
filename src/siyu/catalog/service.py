"""商品管理: categories, products (SPU) with a spec matrix of SKUs, statuses, images, CSV.

Services never commit: the caller's unit of work does. Every staff write leaves an audit
entry in the same transaction.

Read contract (for orders, cart, checkout, marketing; import this module, never the
repository or the tables):

``await skus_for_sale(session, scope, sku_ids) -> dict[int, SkuForSale]``
    One :class:`SkuForSale` per SKU id of this tenant (unknown ids and other tenants'
    SKUs are simply absent): ``sku_id, product_id, code, title, spec_text`` (values in
    the product's spec order joined by " / ", e.g. ``"50g / 罐装"``; ``""`` without specs),
    ``price_fen`` (the server's price: never trust a client's), ``market_price_fen``,
    ``kind``, ``requires_shipping`` (only ``physical`` ships), ``weight_g``, ``image`` (the
    SKU's image or the product's main image), ``on_sale`` (the product is on sale, the SKU
    active and the product not a 包裹卡: only then may a shopper buy it).
``await get_sku(session, scope, sku_id) -> SkuForSale``
    The same for one SKU; 404 ``sku_not_found`` otherwise.
``await list_products(session, scope, query: ProductQuery, offset, limit) -> (products, total)``
``await get_product(session, scope, product_id) -> Product`` (404 ``product_not_found``)
``await product_skus(session, scope, product_id) -> list[Sku]`` (every SKU, disabled ones too)
``await record_sales(session, scope, {product_id: quantity})``
    Adds to ``sales_count`` (negative quantities for refunds) by conditional update.

Rules worth knowing:

* Categories form a tree at most three levels deep, without cycles. A category that
  still has sub-categories or products cannot be deleted (409 ``category_has_children`` /
  ``category_has_products``): move them first; nothing is re-parented silently.
* The SKUs of a product are combinations of its spec values. Saving specs and SKUs keeps
  every existing SKU that still matches (by id, by its spec values, by its code, or, when
  a spec is added or removed, by the values it shares with a new combination) and
  disables — never deletes — the SKUs whose combination is gone: orders may name them.
* Status moves only along :data:`TRANSITIONS`; anything else is 409
  ``illegal_product_transition``. A product goes on sale (now or scheduled) only with at
  least one active SKU. The ``catalog.publish_scheduled`` sweeper publishes due scheduled
  products with a conditional update, so two sweepers publish each product once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import nh3
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog.models import INSERT_CARD_TYPES, KINDS, Category, Product, Sku
from siyu.catalog.repository import (
    Categories,
    DueSchedules,
    MediaFiles,
    ProductQuery,
    Products,
    Skus,
)
from siyu.catalog.schemas import (
    MAX_PRICE_FEN,
    MAX_WEIGHT_G,
    CategoryIn,
    CategoryUpdate,
    ProductIn,
    ProductUpdate,
    SkuIn,
    SpecIn,
)
from siyu.kit import audit, clock
from siyu.kit.context import current_language
from siyu.kit.errors import Conflict, DomainError, NotFound, ValidationFailed
from siyu.kit.money import yuan
from siyu.kit.storage import MAX_IMAGE_BYTES, Storage, Stored, save_image, sniff_image
from siyu.kit.tenancy import TenantScope

__all__ = [
    "TRANSITIONS", "CategoryInfo", "ImportReport", "ProductQuery", "SkuForSale", "change_status", "create_category",
    "create_product", "delete_category", "export_csv", "get_product", "get_sku", "import_csv", "list_products",
    "product_skus", "publish_due", "record_sales", "skus_for_sale", "update_category", "update_product",
    "upload_image",
]

MAX_DEPTH = 3
STATUSES = ("draft", "on_sale", "off_sale", "scheduled")
#: (status, action) → new status. Everything else is an illegal transition.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("draft", "publish"): "on_sale",
    ("draft", "schedule"): "scheduled",
    ("scheduled", "publish"): "on_sale",
    ("scheduled", "schedule"): "scheduled",
    ("scheduled", "unpublish"): "off_sale",
    ("on_sale", "unpublish"): "off_sale",
    ("off_sale", "publish"): "on_sale",
    ("off_sale", "schedule"): "scheduled",
}
MAX_SCHEDULE_AHEAD = timedelta(days=366)

_PRODUCT_FIELDS = ["title", "subtitle", "category_id", "kind", "insert_card_type", "status", "main_image", "sort",
                   "price_min_fen", "price_max_fen"]
_CATEGORY_FIELDS = ["name", "parent_id", "sort", "is_visible", "icon_url"]

_ALLOWED_TAGS = {"p", "br", "strong", "b", "em", "i", "u", "s", "h2", "h3", "h4", "ul", "ol", "li", "blockquote",
                 "a", "img", "span", "div", "hr", "table", "thead", "tbody", "tr", "th", "td", "figure", "figcaption"}
_ALLOWED_ATTRS = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "td": {"colspan", "rowspan"},
                  "th": {"colspan", "rowspan"}}


def sanitize_html(raw: str) -> str:
    """Keep formatting, images and links; drop scripts, styles, event handlers and odd URLs."""
    return nh3.clean(raw or "", tags=_ALLOWED_TAGS, attributes=_ALLOWED_ATTRS, url_schemes={"http", "https"},
                     link_rel="noopener noreferrer nofollow", strip_comments=True).strip()


def requires_shipping(kind: str) -> bool:
    return kind == "physical"


def spec_key(values: dict[str, Any], specs: Sequence[dict[str, Any]]) -> str:
    """Canonical ``名:值|名:值`` in the product's spec order."""
    return "|".join(f"{s['name']}:{values[s['name']]}" for s in specs if s["name"] in values)


def spec_text(sku: Sku, specs: Sequence[dict[str, Any]] | None = None) -> str:
    values = sku.spec_values or {}
    if specs:
        ordered = [str(values[s["name"]]) for s in specs if s["name"] in values]
        if len(ordered) == len(values):
            return " / ".join(ordered)
    return " / ".join(str(v) for v in values.values())


# -- read contract ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkuForSale:
    sku_id: int
    product_id: int
    code: str
    title: str
    spec_text: str
    price_fen: int
    market_price_fen: int | None
    kind: str
    requires_shipping: bool
    weight_g: int
    image: str | None
    on_sale: bool


def _for_sale(sku: Sku, product: Product) -> SkuForSale:
    return SkuForSale(
        sku_id=sku.id, product_id=product.id, code=sku.code, title=product.title,
        spec_text=spec_text(sku, product.specs), price_fen=sku.price_fen, market_price_fen=sku.market_price_fen,
        kind=product.kind, requires_shipping=requires_shipping(product.kind), weight_g=sku.weight_g,
        image=sku.image_url or product.main_image,
        on_sale=product.status == "on_sale" and sku.status == "active" and product.kind != "insert_card",
    )


async def skus_for_sale(session: AsyncSession, scope: TenantScope, sku_ids: Iterable[int]) -> dict[int, SkuForSale]:
    skus = await Skus(session, scope.id).by_ids(sku_ids)
    products = await Products(session, scope.id).by_ids(s.product_id for s in skus.values())
    return {sid: _for_sale(s, products[s.product_id]) for sid, s in skus.items() if s.product_id in products}


async def get_sku(session: AsyncSession, scope: TenantScope, sku_id: int) -> SkuForSale:
    found = await skus_for_sale(session, scope, [sku_id])
    if sku_id not in found:
        raise NotFound("sku_not_found", "商品规格不存在", "SKU not found")
    return found[sku_id]


async def list_products(session: AsyncSession, scope: TenantScope, query: ProductQuery | None = None, *,
                        offset: int = 0, limit: int = 20) -> tuple[Sequence[Product], int]:
    return await Products(session, scope.id).search(query or ProductQuery(), offset, limit)


async def get_product(session: AsyncSession, scope: TenantScope, product_id: int) -> Product:
    return await Products(session, scope.id).get_or_404(product_id)


async def product_skus(session: AsyncSession, scope: TenantScope, product_id: int) -> list[Sku]:
    return await Skus(session, scope.id).of_product(product_id)


async def skus_of_products(session: AsyncSession, scope: TenantScope, product_ids: Iterable[int]) -> dict[int, list[Sku]]:
    return await Skus(session, scope.id).of_products(product_ids)


async def active_stats(session: AsyncSession, scope: TenantScope,
                       product_ids: Iterable[int]) -> dict[int, tuple[int, int | None]]:
    """product id → (active SKU count, 划线价 of the cheapest active SKU when above its price)."""
    return await Skus(session, scope.id).active_stats(product_ids)


async def record_sales(session: AsyncSession, scope: TenantScope, quantities: dict[int, int]) -> None:
    repo = Products(session, scope.id)
    for product_id in sorted(quantities):
        if quantities[product_id]:
            await repo.add_sales(product_id, quantities[product_id])


async def stock_of(session: AsyncSession, scope: TenantScope, sku_ids: list[int]) -> dict[int, int] | None:
    """Sellable units per SKU from the inventory module, or None while it cannot tell."""
    if not sku_ids:
        return {}
    from siyu.inventory import service as inventory_service

    try:
        return await inventory_service.available(session, scope, sku_ids)
    except NotImplementedError:
        return None


# -- categories -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    id: int
    parent_id: int | None
    name: str
    path: str
    depth: int
    sort: int
    is_visible: bool
    icon_url: str | None
    product_count: int
    children: list[CategoryInfo] = field(default_factory=list)


class _Tree:
    def __init__(self, cats: Sequence[Category]) -> None:
        self.by_id = {c.id: c for c in cats}
        self.children: dict[int | None, list[Category]] = {}
        for c in cats:  # already ordered by sort, id
            parent = c.parent_id if c.parent_id in self.by_id else None
            self.children.setdefault(parent, []).append(c)

    def ancestors(self, cat_id: int) -> list[Category]:
        """From the category itself up to its top-level ancestor."""
        out: list[Category] = []
        cur = self.by_id.get(cat_id)
        while cur is not None and len(out) <= MAX_DEPTH + 2:
            out.append(cur)
            cur = self.by_id.get(cur.parent_id) if cur.parent_id is not None else None
        return out

    def depth(self, cat_id: int) -> int:
        return len(self.ancestors(cat_id))

    def path(self, cat_id: int) -> str:
        return "/".join(c.name for c in reversed(self.ancestors(cat_id)))

    def descendants(self, cat_id: int) -> set[int]:
        out: set[int] = set()
        todo = [cat_id]
        while todo:
            cur = todo.pop()
            if cur in out:
                continue
            out.add(cur)
            todo.extend(c.id for c in self.children.get(cur, []))
        return out

    def height(self, cat_id: int) -> int:
        """Levels in the subtree under and including ``cat_id``."""
        kids = self.children.get(cat_id, [])
        return 1 + max((self.height(k.id) for k in kids), default=0)

    def walk(self, parent: int | None = None) -> Iterable[Category]:
        for c in self.children.get(parent, []):
            yield c
            yield from self.walk(c.id)


async def _tree(session: AsyncSession, scope: TenantScope) -> _Tree:
    return _Tree(await Categories(session, scope.id).all())


async def list_categories(session: AsyncSession, scope: TenantScope) -> list[CategoryInfo]:
    """Every category in tree order (parents before their children)."""
    repo = Categories(session, scope.id)
    tree = _Tree(await repo.all())
    counts = await repo.product_counts()
    return [_info(tree, c, counts) for c in tree.walk()]


def _info(tree: _Tree, c: Category, counts: dict[int, int]) -> CategoryInfo:
    return CategoryInfo(c.id, c.parent_id, c.name, tree.path(c.id), tree.depth(c.id), c.sort, c.is_visible, c.icon_url,
                        counts.get(c.id, 0))


async def category_info(session: AsyncSession, scope: TenantScope, category_id: int) -> CategoryInfo:
    repo = Categories(session, scope.id)
    c = await repo.get_or_404(category_id)
    tree = _Tree(await repo.all())
    return _info(tree, c, await repo.product_counts())


async def store_category_tree(session: AsyncSession, scope: TenantScope) -> list[CategoryInfo]:
    """Visible categories whose ancestors are visible too, as a tree."""
    tree = await _tree(session, scope)

    def build(parent: int | None, depth: int) -> list[CategoryInfo]:
        out = []
        for c in tree.children.get(parent, []):
            if not c.is_visible:
                continue
            out.append(CategoryInfo(c.id, c.parent_id, c.name, tree.path(c.id), depth, c.sort, True, c.icon_url, 0,
                                    build(c.id, depth + 1) if depth < MAX_DEPTH else []))
        return out

    return build(None, 1)


async def category_and_descendants(session: AsyncSession, scope: TenantScope, category_id: int) -> frozenset[int]:
    """The category and every category under it (only the category itself if unknown)."""
    tree = await _tree(session, scope)
    if category_id not in tree.by_id:
        return frozenset({category_id})
    return frozenset(tree.descendants(category_id))


def _name_taken(tree: _Tree, parent_id: int | None, name: str, exclude: int | None = None) -> bool:
    return any(c.name == name and c.id != exclude for c in tree.children.get(parent_id, []))


def _too_deep() -> ValidationFailed:
    return ValidationFailed("category_too_deep", f"分类最多 {MAX_DEPTH} 级", f"Categories nest at most {MAX_DEPTH} levels deep",
                            fields=[{"field": "parent_id", "message": f"at most {MAX_DEPTH} levels"}])


async def create_category(session: AsyncSession, scope: TenantScope, data: CategoryIn) -> Category:
    repo = Categories(session, scope.id)
    tree = _Tree(await repo.all())
    if data.parent_id is not None:
        if data.parent_id not in tree.by_id:
            raise ValidationFailed("category_not_found", "上级分类不存在", "The parent category does not exist",
                                   fields=[{"field": "parent_id", "message": "no such category"}])
        if tree.depth(data.parent_id) >= MAX_DEPTH:
            raise _too_deep()
    if _name_taken(tree, data.parent_id, data.name):
        raise Conflict("category_name_taken", f"同级已有名为「{data.name}」的分类", f"A sibling category is already named {data.name}",
                       fields=[{"field": "name", "message": "already used by a sibling"}])
    if data.icon_url:
        await _check_images(session, scope, [data.icon_url], "icon_url")
    cat = repo.add(Category(name=data.name, parent_id=data.parent_id, sort=data.sort, is_visible=data.is_visible,
                            icon_url=data.icon_url))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="category.create", object_type="category", object_id=cat.id,
                 after=audit.snapshot(cat, _CATEGORY_FIELDS))
    return cat


async def update_category(session: AsyncSession, scope: TenantScope, category_id: int, data: CategoryUpdate) -> Category:
    repo = Categories(session, scope.id)
    cat = await repo.get_or_404(category_id)
    tree = _Tree(await repo.all())
    sent = data.model_fields_set
    parent_id = data.parent_id if "parent_id" in sent else cat.parent_id
    name = data.name if data.name is not None else cat.name
    if "parent_id" in sent and parent_id != cat.parent_id and parent_id is not None:
        if parent_id not in tree.by_id:
            raise ValidationFailed("category_not_found", "上级分类不存在", "The parent category does not exist",
                                   fields=[{"field": "parent_id", "message": "no such category"}])
        if parent_id in tree.descendants(cat.id):
            raise ValidationFailed("category_cycle", "不能把分类移到它自己或它的下级分类之下",
                                   "A category cannot move under itself or one of its sub-categories",
                                   fields=[{"field": "parent_id", "message": "would make a cycle"}])
        if tree.depth(parent_id) + tree.height(cat.id) > MAX_DEPTH:
            raise _too_deep()
    if (name != cat.name or parent_id != cat.parent_id) and _name_taken(tree, parent_id, name, exclude=cat.id):
        raise Conflict("category_name_taken", f"同级已有名为「{name}」的分类", f"A sibling category is already named {name}",
                       fields=[{"field": "name", "message": "already used by a sibling"}])
    if "icon_url" in sent and data.icon_url:
        await _check_images(session, scope, [data.icon_url], "icon_url")
    before = audit.snapshot(cat, _CATEGORY_FIELDS)
    cat.name = name
    cat.parent_id = parent_id
    if data.sort is not None:
        cat.sort = data.sort
    if data.is_visible is not None:
        cat.is_visible = data.is_visible
    if "icon_url" in sent:
        cat.icon_url = data.icon_url
    await session.flush()
    after = audit.snapshot(cat, _CATEGORY_FIELDS)
    if after != before:
        audit.record(session, tenant_id=scope.id, action="category.update", object_type="category", object_id=cat.id,
                     before=before, after=after)
    return cat


async def delete_category(session: AsyncSession, scope: TenantScope, category_id: int) -> None:
    repo = Categories(session, scope.id)
    cat = await repo.get_or_404(category_id)
    if await repo.has_children(cat.id):
        raise Conflict("category_has_children", "该分类下还有子分类，请先移走或删除子分类",
                       "The category still has sub-categories; move or delete them first")
    if await repo.has_products(cat.id):
        raise Conflict("category_has_products", "该分类下还有商品，请先把商品移到其他分类",
                       "Products are still in this category; move them to another category first")
    before = audit.snapshot(cat, _CATEGORY_FIELDS)
    await session.delete(cat)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="category.delete", object_type="category", object_id=category_id,
                 before=before)


# -- images ---------------------------------------------------------------------------------------


async def upload_image(session: AsyncSession, storage: Storage, scope: TenantScope, data: bytes, *,
                       uploaded_by: int | None = None, purpose: str = "product") -> Stored:
    """Store a product image after checking its size, its real type (by its bytes, not its
    name) and that it decodes as an image. 413 ``file_too_large``; 422 otherwise."""
    if not data:
        raise ValidationFailed("empty_file", "文件为空", "The file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise DomainError("file_too_large", f"图片不能超过 {MAX_IMAGE_BYTES // (1024 * 1024)} MB",
                          f"Images may be at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB", status=413)
    sniff_image(data)
    _verify_image(data)
    stored = await save_image(session, storage, tenant_id=scope.id, data=data, purpose=purpose, uploaded_by=uploaded_by)
    audit.record(session, tenant_id=scope.id, action="media.upload", object_type="media", object_id=stored.id,
                 after={"url": stored.url, "content_type": stored.content_type, "size": stored.size})
    return stored


def _verify_image(data: bytes) -> None:
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
    except Exception as exc:
        raise ValidationFailed("invalid_image", "图片文件已损坏或无法识别", "The image is damaged or cannot be read") from exc


async def _check_images(session: AsyncSession, scope: TenantScope, urls: Iterable[str], field_name: str) -> None:
    wanted = {u for u in urls if u}
    if not wanted:
        return
    unknown = sorted(wanted - await MediaFiles(session, scope.id).known_urls(wanted))
    if unknown:
        raise ValidationFailed("image_not_found", "图片不存在，请先上传图片", "Unknown image; upload it first",
                               fields=[{"field": field_name, "message": f"not an uploaded image: {unknown[0][:100]}"}])


# -- products -------------------------------------------------------------------------------------


async def _check_category(session: AsyncSession, scope: TenantScope, category_id: int | None) -> None:
    if category_id is not None and await Categories(session, scope.id).get(category_id) is None:
        raise ValidationFailed("category_not_found", "商品分类不存在", "Category not found",
                               fields=[{"field": "category_id", "message": "no such category"}])


def _kind_check(kind: str, card_type: str | None) -> None:
    if kind not in KINDS:
        raise ValidationFailed("invalid_kind", "商品类型无效", "Unknown product kind", fields=[{"field": "kind", "message": "unknown"}])
    if kind == "insert_card" and card_type not in INSERT_CARD_TYPES:
        raise ValidationFailed("insert_card_type_required", "包裹卡需要选择类型：通知提醒、品牌、营销或热点",
                               "An insert card needs a type: notice, brand, marketing or trending",
                               fields=[{"field": "insert_card_type", "message": "required for insert cards"}])


def _snapshot(product: Product) -> dict[str, Any]:
    return audit.snapshot(product, _PRODUCT_FIELDS)


async def create_product(session: AsyncSession, scope: TenantScope, data: ProductIn) -> Product:
    await _check_category(session, scope, data.category_id)
    _kind_check(data.kind, data.insert_card_type)
    images = list(dict.fromkeys(data.images))
    main = data.main_image or (images[0] if images else None)
    await _check_images(session, scope, [*images, *([main] if main else [])], "images")
    product = Products(session, scope.id).add(Product(
        title=data.title, subtitle=data.subtitle, category_id=data.category_id, kind=data.kind,
        insert_card_type=data.insert_card_type if data.kind == "insert_card" else None, status="draft", specs=[],
        description_html=sanitize_html(data.description_html), main_image=main, images=images, sort=data.sort,
    ))
    await session.flush()
    skus = await _apply_matrix(session, scope, product, data.specs, data.skus, existing=[])
    audit.record(session, tenant_id=scope.id, action="product.create", object_type="product", object_id=product.id,
                 after={**_snapshot(product), "skus": _sku_brief(skus)})
    return product


async def update_product(session: AsyncSession, scope: TenantScope, product_id: int, data: ProductUpdate) -> Product:
    product = await Products(session, scope.id).get_or_404(product_id)
    sent = data.model_fields_set
    skus_repo = Skus(session, scope.id)
    existing = await skus_repo.of_product(product.id)
    before = {**_snapshot(product), "skus": _sku_brief(existing)}
    if "category_id" in sent and data.category_id != product.category_id:
        await _check_category(session, scope, data.category_id)
        product.category_id = data.category_id
    kind = data.kind if data.kind is not None else product.kind
    card_type = data.insert_card_type if "insert_card_type" in sent else product.insert_card_type
    if kind != "insert_card":
        card_type = None
    _kind_check(kind, card_type)
    product.kind, product.insert_card_type = kind, card_type
    if data.title is not None:
        product.title = data.title
    if "subtitle" in sent:
        product.subtitle = data.subtitle
    if data.description_html is not None:
        product.description_html = sanitize_html(data.description_html)
    if data.sort is not None:
        product.sort = data.sort
    if data.images is not None or "main_image" in sent:
        images = list(dict.fromkeys(data.images)) if data.images is not None else list(product.images or [])
        if "main_image" in sent:
            main = data.main_image or (images[0] if images else None)
        else:
            main = product.main_image if product.main_image in images else (images[0] if images else None)
        known = {*(product.images or []), product.main_image}
        await _check_images(session, scope, [u for u in [*images, main] if u and u not in known], "images")
        product.images, product.main_image = images, main
    skus = existing
    if data.skus is not None:
        specs = data.specs if data.specs is not None else [SpecIn.model_validate(s) for s in product.specs or []]
        skus = await _apply_matrix(session, scope, product, specs, data.skus, existing=existing)
    await session.flush()
    after = {**_snapshot(product), "skus": _sku_brief(skus)}
    if after != before:
        audit.record(session, tenant_id=scope.id, action="product.update", object_type="product", object_id=product.id,
                     before=before, after=after)
    return product


def _sku_brief(skus: Sequence[Sku]) -> list[dict[str, Any]]:
    return [{"id": s.id, "code": s.code, "spec": s.spec_key, "price_fen": s.price_fen, "status": s.status} for s in skus]


def _vset(values: dict[str, Any]) -> frozenset[tuple[str, str]]:
    return frozenset((str(k), str(v)) for k, v in values.items())


def _sku_error(index: int, name: str, zh: str, en: str, code: str = "invalid_sku", status: int = 422) -> DomainError:
    return DomainError(code, zh, en, status=status, fields=[{"field": f"skus.{index}.{name}", "message": en}])


async def _apply_matrix(session: AsyncSession, scope: TenantScope, product: Product, specs: Sequence[SpecIn],
                        inputs: Sequence[SkuIn], *, existing: list[Sku]) -> list[Sku]:
    """Make the product's SKUs match ``specs`` and ``inputs``; return every SKU (by id).

    Each input is matched to an existing SKU — by ``id``, then by its spec values, then by
    its code, then (a spec added or removed) by an unmatched SKU whose values it contains
    or that contains its values — so SKU ids survive edits. Unmatched existing SKUs are
    disabled, never deleted.
    """
    spec_dicts: list[dict[str, Any]] = [{"name": s.name, "values": list(s.values)} for s in specs]
    allowed = {s.name: set(s.values) for s in specs}
    names = set(allowed)
    seen_vsets: set[frozenset[tuple[str, str]]] = set()
    seen_codes: dict[str, int] = {}
    for i, inp in enumerate(inputs):
        values = inp.spec_values
        if set(values) != names or any(values[n] not in allowed[n] for n in names):
            want = " × ".join(s.name for s in specs) or "无规格"
            raise _sku_error(i, "spec_values", f"第 {i + 1} 个 SKU 的规格值与商品规格（{want}）不符",
                             f"SKU {i + 1}: spec values must name one value of each spec ({want})")
        vs = _vset(values)
        if vs in seen_vsets:
            raise _sku_error(i, "spec_values", f"第 {i + 1} 个 SKU 的规格组合重复", f"SKU {i + 1}: the same combination twice")
        seen_vsets.add(vs)
        if inp.code:
            if inp.code in seen_codes:
                raise _sku_error(i, "code", f"SKU 编码 {inp.code} 重复", f"SKU code {inp.code} is used twice", code="sku_code_taken",
                                 status=409)
            seen_codes[inp.code] = i

    by_id = {s.id: s for s in existing}
    by_vset = {_vset(s.spec_values or {}): s for s in existing}
    by_code = {s.code: s for s in existing}
    matched: dict[int, Sku] = {}
    used: set[int] = set()

    def take(i: int, sku: Sku) -> None:
        matched[i] = sku
        used.add(sku.id)

    for i, inp in enumerate(inputs):
        if inp.id is not None:
            sku = by_id.get(inp.id)
            if sku is None or sku.id in used:
                raise _sku_error(i, "id", f"第 {i + 1} 个 SKU 不属于该商品", f"SKU {i + 1}: id {inp.id} is not a SKU of this product")
            take(i, sku)
    for i, inp in enumerate(inputs):
        if i not in matched:
            sku = by_vset.get(_vset(inp.spec_values))
            if sku is not None and sku.id not in used:
                take(i, sku)
    for i, inp in enumerate(inputs):
        if i not in matched and inp.code:
            sku = by_code.get(inp.code)
            if sku is not None and sku.id not in used:
                take(i, sku)
    for i, inp in enumerate(inputs):
        if i in matched:
            continue
        vs = _vset(inp.spec_values)
        candidates = [s for s in existing if s.id not in used
                      and (_vset(s.spec_values or {}) <= vs or vs <= _vset(s.spec_values or {}))]
        if candidates:
            take(i, min(candidates, key=lambda s: (s.status != "active", s.id)))

    # Codes are unique per tenant. A code may move to another SKU of this product only when
    # that SKU gets a new code in the same save; disabled SKUs keep theirs.
    wanted = {inp.code: i for i, inp in enumerate(inputs) if inp.code}
    holders = await Skus(session, scope.id).by_codes(wanted) if wanted else {}
    owner_of = {sku.id: j for j, sku in matched.items()}
    for code, i in wanted.items():
        holder = holders.get(code)
        if holder is None or (i in matched and matched[i].id == holder.id):
            continue
        j = owner_of.get(holder.id)
        if j is not None and inputs[j].code and inputs[j].code != code:
            continue
        raise _sku_error(i, "code", f"SKU 编码 {code} 已被其他 SKU 使用（含已停用的 SKU）",
                         f"SKU code {code} is already used by another SKU (disabled ones included)",
                         code="sku_code_taken", status=409)

    # Phase 1: park changing codes and spec keys on unique temporary values, so that swaps
    # between SKUs never collide with the unique constraints half-way.
    final_keys: dict[int, str] = {}
    for i, inp in enumerate(inputs):
        if i in matched:
            final_keys[i] = spec_key(inp.spec_values, spec_dicts)
    parked = False
    for i, sku in matched.items():
        if final_keys[i] != sku.spec_key or (inputs[i].code and inputs[i].code != sku.code):
            sku.spec_key = f"~{sku.id}"
            if inputs[i].code and inputs[i].code != sku.code:
                sku.code = f"~{sku.id}"
            parked = True
    new_keys = {spec_key(inp.spec_values, spec_dicts) for inp in inputs}
    for s in existing:
        if s.id not in used:
            s.status = "disabled"
            if s.spec_key in new_keys:
                s.spec_key = f"~{s.id}:{s.spec_key}"[:300]
                parked = True
    if parked:
        await session.flush()

    repo = Skus(session, scope.id)
    result: list[Sku] = []
    pending_codes: list[Sku] = []
    for i, inp in enumerate(inputs):
        sku = matched.get(i)
        if sku is None:
            sku = repo.add(Sku(product_id=product.id, code=inp.code or f"~new-{product.id}-{i}", spec_values={},
                               spec_key=f"~new-{i}", price_fen=inp.price_fen))
            if not inp.code:
                pending_codes.append(sku)
        elif inp.code:
            sku.code = inp.code
        sku.spec_values = {s["name"]: inp.spec_values[s["name"]] for s in spec_dicts}
        sku.spec_key = spec_key(inp.spec_values, spec_dicts)
        sku.price_fen = inp.price_fen
        sku.market_price_fen = inp.market_price_fen
        sku.cost_price_fen = inp.cost_price_fen
        sku.weight_g = inp.weight_g
        sku.barcode = inp.barcode
        sku.image_url = inp.image_url
        sku.status = "active" if inp.enabled else "disabled"
        result.append(sku)
    sku_images = [inp.image_url for inp in inputs if inp.image_url and inp.image_url not in {s.image_url for s in existing}]
    await _check_images(session, scope, sku_images, "skus")
    if pending_codes:
        prefix = f"P{product.id}-"
        taken = await repo.codes_with_prefix(prefix) | {s.code for s in result}
        n = 1
        for sku in pending_codes:
            while f"{prefix}{n:02d}" in taken:
                n += 1
            sku.code = f"{prefix}{n:02d}"
            taken.add(sku.code)
    product.specs = spec_dicts
    active = [s.price_fen for s in result if s.status == "active"]
    product.price_min_fen = min(active) if active else 0
    product.price_max_fen = max(active) if active else 0
    product.updated_at = clock.now()
    if product.status in ("on_sale", "scheduled") and not active:
        raise Conflict("product_needs_sku", "在售或定时上架的商品至少需要一个启用的 SKU",
                       "A product on sale or scheduled needs at least one active SKU")
    await session.flush()
    every = {s.id: s for s in existing}
    every.update({s.id: s for s in result})
    return [every[k] for k in sorted(every)]


# -- status -----------------------------------------------------------------------------------------


async def change_status(session: AsyncSession, scope: TenantScope, product_id: int, action: str,
                        on_sale_at: datetime | None = None) -> Product:
    repo = Products(session, scope.id)
    product = await repo.get_or_404(product_id)
    current = product.status
    target = TRANSITIONS.get((current, action))
    if target is None:
        raise Conflict("illegal_product_transition", f"商品当前状态（{_STATUS_ZH.get(current, current)}）不能执行该操作",
                       f"A product that is {current} cannot {action}", extra={"product_status": current, "action": action})
    now = clock.now()
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if target in ("on_sale", "scheduled"):
        count, _market = (await Skus(session, scope.id).active_stats([product.id])).get(product.id, (0, None))
        if count == 0:
            raise Conflict("product_needs_sku", "商品至少需要一个启用的 SKU 才能上架",
                           "A product needs at least one active SKU to go on sale")
    if target == "scheduled":
        if on_sale_at is None or on_sale_at <= now:
            raise ValidationFailed("on_sale_at_in_past", "定时上架时间需晚于当前时间", "The on-sale time must be in the future",
                                   fields=[{"field": "on_sale_at", "message": "must be in the future"}])
        if on_sale_at > now + MAX_SCHEDULE_AHEAD:
            raise ValidationFailed("on_sale_at_too_far", "定时上架时间最多为一年之内", "The on-sale time must be within a year",
                                   fields=[{"field": "on_sale_at", "message": "within a year"}])
        values["on_sale_at"] = on_sale_at
    elif target == "on_sale":
        values["on_sale_at"] = now
    elif current == "scheduled":
        values["on_sale_at"] = None
    before = _snapshot(product)
    if not await repo.transition(product.id, current, values):
        raise Conflict("product_status_changed", "商品状态刚刚被修改，请刷新后重试", "The product changed meanwhile; reload and retry")
    await session.refresh(product)
    audit.record(session, tenant_id=scope.id, action="product.status", object_type="product", object_id=product.id,
                 before={"status": before["status"]}, after={"status": product.status, "action": action,
                                                             "on_sale_at": product.on_sale_at})
    return product


_STATUS_ZH = {"draft": "草稿", "on_sale": "在售", "off_sale": "已下架", "scheduled": "定时上架"}


async def publish_due(session: AsyncSession, *, now: datetime | None = None, limit: int = 500) -> int:
    """Publish scheduled products whose time has come (every tenant). Idempotent: each is
    published by a conditional update, so a product is published once however many
    sweepers run."""
    now = now or clock.now()
    repo = DueSchedules(session)
    published = 0
    for product_id, tenant_id in await repo.due(now, limit):
        if await repo.publish_if_due(product_id, now):
            published += 1
            audit.record(session, tenant_id=tenant_id, action="product.status", object_type="product", object_id=product_id,
                         before={"status": "scheduled"}, after={"status": "on_sale", "action": "scheduled_publish"})
    return published


# -- CSV export and import ----------------------------------------------------------------------------

#: Columns of the CSV file, in order. One row per SKU.
CSV_COLUMNS = ["product_id", "product_title", "subtitle", "category", "kind", "insert_card_type", "status", "spec",
               "sku_code", "price", "market_price", "cost_price", "weight_g", "barcode", "sku_status", "main_image"]
MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_ROWS = 5000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_YUAN = re.compile(r"^\d{1,8}(?:\.\d{1,2})?$")
_KIND_ALIASES = {"实物": "physical", "虚拟": "virtual", "卡券": "voucher", "服务": "service", "包裹卡": "insert_card"}
_CARD_ALIASES = {"通知提醒": "notice", "品牌": "brand", "营销": "marketing", "热点": "trending"}
_SKU_STATUS_ALIASES = {"启用": "active", "停用": "disabled", "active": "active", "disabled": "disabled"}
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def parse_yuan(text: str) -> int:
    """``"12.5"`` → 1250 fen, exactly (no floats). ValueError for anything else."""
    t = text.strip().replace(",", "").removeprefix("¥").removeprefix("￥").strip()
    if not _YUAN.match(t):
        raise ValueError("not an amount in yuan with at most two decimals")
    whole, _sep, frac = t.partition(".")
    fen = int(whole) * 100 + int((frac + "00")[:2])
    if fen > MAX_PRICE_FEN:
        raise ValueError("too large")
    return fen


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _uncell(text: str) -> str:
    text = text.strip()
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
        return text[1:]
    return text


async def export_csv(session: AsyncSession, scope: TenantScope, query: ProductQuery | None = None) -> str:
    """Products and SKUs (disabled ones included) as CSV text with a BOM for Excel."""
    query = query or ProductQuery()
    tree = await _tree(session, scope)
    products_repo, skus_repo = Products(session, scope.id), Skus(session, scope.id)
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    offset = 0
    while True:
        rows, _total = await products_repo.search(query, offset, 500)
        if not rows:
            break
        skus = await skus_repo.of_products(p.id for p in rows)
        for p in rows:
            category = tree.path(p.category_id) if p.category_id in tree.by_id else ""
            for s in skus.get(p.id, []):
                w.writerow([_cell(v) for v in (
                    p.id, p.title, p.subtitle or "", category, p.kind, p.insert_card_type or "", p.status, s.spec_key, s.code,
                    yuan(s.price_fen), "" if s.market_price_fen is None else yuan(s.market_price_fen),
                    "" if s.cost_price_fen is None else yuan(s.cost_price_fen), s.weight_g, s.barcode or "", s.status,
                    p.main_image or "",
                )])
        offset += len(rows)
    return out.getvalue()


@dataclass
class RowError:
    row: int
    field: str
    message_zh: str
    message_en: str

    @property
    def message(self) -> str:
        return self.message_en if current_language().startswith("en") else self.message_zh


@dataclass
class ImportReport:
    rows: int = 0
    applied_rows: int = 0
    created_products: int = 0
    updated_products: int = 0
    created_skus: int = 0
    updated_skus: int = 0
    dry_run: bool = False
    errors: list[RowError] = field(default_factory=list)


@dataclass
class _Row:
    line: int
    cells: dict[str, str]
    product_id: int | None = None
    title: str | None = None
    subtitle: str | None = None
    category_id: int | None = None
    kind: str | None = None
    card_type: str | None = None
    spec: list[tuple[str, str]] | None = None
    code: str | None = None
    price_fen: int | None = None
    market_fen: int | None = None
    cost_fen: int | None = None
    weight_g: int | None = None
    barcode: str | None = None
    enabled: bool | None = None
    main_image: str | None = None
    errors: list[RowError] = field(default_factory=list)

    def has(self, column: str) -> bool:
        return column in self.cells

    def err(self, column: str, zh: str, en: str) -> None:
        self.errors.append(RowError(self.line, column, zh, en))


class _Rollback(Exception):
    pass


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValidationFailed("csv_encoding", "无法识别文件编码，请保存为 UTF-8 或 GBK 编码的 CSV",
                           "Cannot read the file; save it as CSV in UTF-8 or GBK")


def _read_rows(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(lower-cased header, [(row number, cells)]); the header is row 1, blank rows are skipped."""
    if len(data) > MAX_IMPORT_BYTES:
        raise DomainError("file_too_large", "导入文件不能超过 2 MB", "The import file may be at most 2 MB", status=413)
    if not data.strip():
        raise ValidationFailed("csv_empty", "文件为空", "The file is empty")
    text = _decode(data).replace("\x00", "")
    reader = csv.reader(io.StringIO(text, newline=""))
    number = 1
    try:
        header = next(reader, None)
        rows: list[tuple[int, list[str]]] = []
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            rows.append((number, cells))
            if len(rows) > MAX_IMPORT_ROWS:
                raise ValidationFailed("csv_too_many_rows", f"一次最多导入 {MAX_IMPORT_ROWS} 行",
                                       f"At most {MAX_IMPORT_ROWS} rows per import")
    except csv.Error as exc:
        raise ValidationFailed("csv_malformed", f"CSV 格式有误（第 {number} 行附近）",
                               f"Malformed CSV near row {number}") from exc
    columns = [h.strip().lstrip("\ufeff").lower() for h in (header or [])]
    if "sku_code" not in columns and "product_title" not in columns:
        raise ValidationFailed("csv_missing_columns", "表头至少需要 sku_code 或 product_title 列，请以导出的文件为模板",
                               "The header needs a sku_code or product_title column; start from an exported file")
    return columns, rows


def _parse_row(line: int, columns: list[str], cells: list[str], cat_paths: dict[str, int | None]) -> _Row:
    values = {col: _uncell(cells[i]) if i < len(cells) else "" for i, col in enumerate(columns) if col in CSV_COLUMNS}
    r = _Row(line, values)

    def text(col: str, max_len: int) -> str | None:
        v = values.get(col, "")
        if len(v) > max_len:
            r.err(col, f"最多 {max_len} 个字符", f"At most {max_len} characters")
            return None
        if _CONTROL.search(v):
            r.err(col, "包含控制字符", "Contains control characters")
            return None
        return v or None

    if values.get("product_id"):
        v = values["product_id"]
        if v.isdigit() and 0 < int(v) < 2**63:
            r.product_id = int(v)
        else:
            r.err("product_id", "商品 ID 需为正整数", "The product id must be a positive whole number")
    r.title = text("product_title", 120)
    r.subtitle = text("subtitle", 200)
    if values.get("category"):
        path = "/".join(p.strip() for p in values["category"].split("/"))
        if path not in cat_paths:
            r.err("category", f"分类「{path[:60]}」不存在", f"No category {path[:60]}")
        elif cat_paths[path] is None:
            r.err("category", f"有多个名为「{path[:60]}」的分类，请写完整路径",
                  f"Several categories are named {path[:60]}; write the full path")
        else:
            r.category_id = cat_paths[path]
    if values.get("kind"):
        kind = _KIND_ALIASES.get(values["kind"], values["kind"].lower())
        if kind in KINDS:
            r.kind = kind
        else:
            r.err("kind", "类型需为 physical、virtual、voucher、service 或 insert_card",
                  "The kind must be physical, virtual, voucher, service or insert_card")
    if values.get("insert_card_type"):
        ct = _CARD_ALIASES.get(values["insert_card_type"], values["insert_card_type"].lower())
        if ct in INSERT_CARD_TYPES:
            r.card_type = ct
        else:
            r.err("insert_card_type", "包裹卡类型需为 notice、brand、marketing 或 trending",
                  "The insert card type must be notice, brand, marketing or trending")
    if r.kind == "insert_card" and r.card_type is None:
        r.err("insert_card_type", "包裹卡需要填写类型：notice、brand、marketing 或 trending",
              "An insert card needs a type: notice, brand, marketing or trending")
    if r.has("spec"):
        pairs: list[tuple[str, str]] = []
        for part in (p for p in values["spec"].split("|") if p.strip()):
            name, sep, value = part.replace("：", ":").partition(":")
            name, value = name.strip(), value.strip()
            if not sep or not name or not value or len(name) > 20 or len(value) > 30 or _CONTROL.search(part):
                r.err("spec", "规格格式为 名称:值|名称:值，如 规格:50g|包装:罐装",
                      "Write specs as name:value|name:value, e.g. Size:50g|Pack:Tin")
                break
            pairs.append((name, value))
        else:
            if len({n for n, _v in pairs}) != len(pairs) or len(pairs) > 3:
                r.err("spec", "规格名称重复或超过 3 个", "Spec names repeat or there are more than 3")
        r.spec = pairs
    if values.get("sku_code"):
        if _CODE.fullmatch(values["sku_code"]):
            r.code = values["sku_code"]
        else:
            r.err("sku_code", "SKU 编码为 1–64 位字母、数字、_ . -，以字母或数字开头",
                  "A SKU code is 1–64 letters, digits, _ . or -, starting with a letter or digit")
    for col, attr in (("price", "price_fen"), ("market_price", "market_fen"), ("cost_price", "cost_fen")):
        if values.get(col):
            try:
                setattr(r, attr, parse_yuan(values[col]))
            except ValueError:
                r.err(col, "金额需为 0–10000000 元，最多两位小数", "An amount in yuan from 0 to 10000000 with at most two decimals")
    if r.market_fen is not None and r.price_fen is not None and r.market_fen < r.price_fen:
        r.err("market_price", "划线价不能低于售价", "The market price must not be below the price")
    if values.get("weight_g"):
        w = values["weight_g"]
        if w.isdigit() and int(w) <= MAX_WEIGHT_G:
            r.weight_g = int(w)
        else:
            r.err("weight_g", f"重量需为 0–{MAX_WEIGHT_G} 的整数（克）", f"Weight in grams, a whole number from 0 to {MAX_WEIGHT_G}")
    if values.get("barcode"):
        if re.fullmatch(r"[A-Za-z0-9\-]{1,64}", values["barcode"]):
            r.barcode = values["barcode"]
        else:
            r.err("barcode", "条码为 1–64 位字母、数字或 -", "A barcode is 1–64 letters, digits or -")
    if values.get("sku_status"):
        st = _SKU_STATUS_ALIASES.get(values["sku_status"].lower())
        if st is None:
            r.err("sku_status", "SKU 状态需为 active 或 disabled", "The SKU status must be active or disabled")
        else:
            r.enabled = st == "active"
    if values.get("main_image"):
        r.main_image = text("main_image", 500)
    return r


def _sku_in_from(sku: Sku) -> dict[str, Any]:
    return {"id": sku.id, "spec_values": dict(sku.spec_values or {}), "code": sku.code, "price_fen": sku.price_fen,
            "market_price_fen": sku.market_price_fen, "cost_price_fen": sku.cost_price_fen, "weight_g": sku.weight_g,
            "barcode": sku.barcode, "image_url": sku.image_url, "enabled": sku.status == "active"}


def _overlay(target: dict[str, Any], r: _Row) -> None:
    """Copy the SKU columns present in the file onto ``target`` (a SkuIn dict)."""
    if r.price_fen is not None:
        target["price_fen"] = r.price_fen
    if r.has("market_price"):
        target["market_price_fen"] = r.market_fen
    if r.has("cost_price"):
        target["cost_price_fen"] = r.cost_fen
    if r.has("weight_g"):
        target["weight_g"] = r.weight_g or 0
    if r.has("barcode"):
        target["barcode"] = r.barcode
    if r.enabled is not None:
        target["enabled"] = r.enabled
    if r.code:
        target["code"] = r.code


_COLUMN_OF = {"price_fen": "price", "market_price_fen": "market_price", "cost_price_fen": "cost_price",
              "weight_g": "weight_g", "barcode": "barcode", "code": "sku_code", "spec_values": "spec", "enabled": "sku_status",
              "id": "sku_code", "title": "product_title", "subtitle": "subtitle", "category_id": "category", "kind": "kind",
              "insert_card_type": "insert_card_type", "main_image": "main_image", "images": "main_image", "specs": "spec",
              "skus": "spec", "image_url": "main_image"}


class _GroupFailed(Exception):
    """A product of the import failed; ``sku_rows`` maps SKU positions to file rows."""

    def __init__(self, cause: DomainError | ValidationError, sku_rows: dict[int, _Row]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sku_rows = sku_rows


def _errors_for(exc: DomainError | ValidationError, rows: list[_Row], sku_rows: dict[int, _Row]) -> list[RowError]:
    """Turn a validation or domain error of one product into row errors: on the SKU's row
    when it names a SKU, on every row of the product otherwise."""
    out: list[RowError] = []
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ())]
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            if len(loc) >= 2 and loc[0] == "skus" and loc[1].isdigit() and int(loc[1]) in sku_rows:
                out.append(RowError(sku_rows[int(loc[1])].line, _COLUMN_OF.get(loc[2] if len(loc) > 2 else "", "spec"), msg, msg))
            else:
                out.extend(RowError(r.line, _COLUMN_OF.get(loc[0] if loc else "", "product_title"), msg, msg) for r in rows)
        return out
    fld = exc.fields[0]["field"] if exc.fields else ""
    parts = fld.split(".")
    if len(parts) >= 2 and parts[0] == "skus" and parts[1].isdigit() and int(parts[1]) in sku_rows:
        return [RowError(sku_rows[int(parts[1])].line, _COLUMN_OF.get(parts[2] if len(parts) > 2 else "", "spec"),
                         exc.message_zh, exc.message_en)]
    column = _COLUMN_OF.get(parts[0], "product_title") if fld else "product_title"
    return [RowError(r.line, column, exc.message_zh, exc.message_en) for r in rows]


def _category_paths(tree: _Tree) -> dict[str, int | None]:
    """Full paths ("茶器/茶杯") and, where unambiguous, bare names → category id (None: ambiguous)."""
    paths: dict[str, int | None] = {tree.path(c.id): c.id for c in tree.by_id.values()}
    by_name: dict[str, list[int]] = {}
    for c in tree.by_id.values():
        by_name.setdefault(c.name, []).append(c.id)
    for name, ids in by_name.items():
        if name not in paths:
            paths[name] = ids[0] if len(ids) == 1 else None
    return paths


async def import_csv(session: AsyncSession, scope: TenantScope, data: bytes, *, dry_run: bool = False) -> ImportReport:
    """Create or update products and SKUs from CSV (columns: :data:`CSV_COLUMNS`, see
    ``docs/catalog.md``).

    Every row is checked on its own; a row with errors is left out and reported (row,
    column, message) and the other rows are applied. Rows are grouped by product and each
    product is saved in its own savepoint: when saving names one row's SKU, that row is
    reported and the product is saved again without it; an error of the product as a whole
    is reported on each of its rows. Only the columns present in the file change anything.
    With ``dry_run`` everything is checked and nothing is kept.
    """
    columns, raw_rows = _read_rows(data)
    report = ImportReport(rows=len(raw_rows), dry_run=dry_run)
    cat_paths = _category_paths(await _tree(session, scope))
    parsed = [_parse_row(line, columns, cells, cat_paths) for line, cells in raw_rows]

    ok = [r for r in parsed if not r.errors]
    known_products = await Products(session, scope.id).by_ids(r.product_id for r in ok if r.product_id)
    known_codes = await Skus(session, scope.id).by_codes(r.code for r in ok if r.code)
    known_images = await MediaFiles(session, scope.id).known_urls(r.main_image for r in ok if r.main_image)

    groups: dict[tuple[str, Any], list[_Row]] = {}
    for r in ok:
        if r.main_image and r.main_image not in known_images:
            r.err("main_image", "图片不存在，请先在商品编辑页上传", "Unknown image; upload it in the product editor first")
        if r.product_id is not None and r.product_id not in known_products:
            r.err("product_id", "商品不存在", "No such product")
        holder = known_codes.get(r.code) if r.code else None
        if holder is not None and r.product_id is not None and holder.product_id != r.product_id:
            r.err("sku_code", "该 SKU 编码属于另一个商品", "This SKU code belongs to another product")
        if r.errors:
            continue
        if r.product_id is not None:
            groups.setdefault(("product", r.product_id), []).append(r)
        elif holder is not None:
            groups.setdefault(("product", holder.product_id), []).append(r)
        elif r.title:
            groups.setdefault(("new", r.title), []).append(r)
        elif "product_title" in columns:
            r.err("product_title", "新商品需要填写商品名称", "A new product needs a title")
        else:
            r.err("sku_code", "找不到该 SKU 编码；新建商品需要 product_title 列",
                  "Unknown SKU code; a new product needs the product_title column")

    async def apply_group(kind: str, key: Any, rows: list[_Row]) -> None:
        for _attempt in range(len(rows) + 1):
            todo = [r for r in rows if not r.errors]
            if not todo:
                return
            try:
                async with session.begin_nested():
                    if kind == "product":
                        await _import_existing(session, scope, int(key), todo, report)
                    else:
                        await _import_new(session, scope, str(key), todo, report)
            except _GroupFailed as exc:
                errors = _errors_for(exc.cause, todo, exc.sku_rows)
                lines = {e.row for e in errors}
                for r in todo:
                    r.errors.extend(e for e in errors if e.row == r.line)
                if len(lines) >= len({r.line for r in todo}):
                    return  # the product as a whole failed: all its rows are reported
                continue  # one SKU's rows failed: save the product again without them
            except IntegrityError:
                for r in todo:
                    r.err("sku_code", "与已有数据冲突（如 SKU 编码重复），请检查后重试",
                      "Conflicts with existing data (a SKU code used twice?)")
                return
            report.applied_rows += len([r for r in todo if not r.errors])
            return

    async def run() -> None:
        for (kind, key), rows in groups.items():
            await apply_group(kind, key, rows)

    if dry_run:
        try:
            async with session.begin_nested():
                await run()
                raise _Rollback
        except _Rollback:
            pass
    else:
        await run()
    seen: set[tuple[int, str, str]] = set()
    for e in sorted((e for r in parsed for e in r.errors), key=lambda e: (e.row, e.field)):
        if (e.row, e.field, e.message_zh) not in seen:
            seen.add((e.row, e.field, e.message_zh))
            report.errors.append(e)
    if not dry_run and report.applied_rows:
        audit.record(session, tenant_id=scope.id, action="product.import", object_type="product",
                     after={"rows": report.rows, "applied_rows": report.applied_rows,
                            "created_products": report.created_products, "updated_products": report.updated_products,
                            "created_skus": report.created_skus, "updated_skus": report.updated_skus,
                            "errors": len(report.errors)})
    return report


async def _import_existing(session: AsyncSession, scope: TenantScope, product_id: int, rows: list[_Row],
                           report: ImportReport) -> None:
    product = await Products(session, scope.id).get_or_404(product_id)
    skus = await Skus(session, scope.id).of_product(product.id)
    specs = [{"name": s["name"], "values": list(s["values"])} for s in product.specs or []]
    spec_names = [s["name"] for s in specs]
    desired = [_sku_in_from(s) for s in skus]
    by_code = {d["code"]: i for i, d in enumerate(desired)}
    by_vset = {_vset(d["spec_values"]): i for i, d in enumerate(desired)}
    sku_rows: dict[int, _Row] = {}
    created = updated = 0
    for r in rows:
        idx = by_code.get(r.code) if r.code else None
        if idx is None and r.spec is not None and not r.code:
            idx = by_vset.get(_vset(dict(r.spec)))
        if idx is not None:
            if r.spec and _vset(dict(r.spec)) != _vset(desired[idx]["spec_values"]):
                r.err("spec", "规格与该 SKU 现有规格不一致（增删规格请在商品编辑页进行）",
                      "The spec differs from this SKU's; change specs in the product editor")
                continue
            if idx in sku_rows:
                r.err("sku_code", f"与第 {sku_rows[idx].line} 行是同一个 SKU", f"The same SKU as row {sku_rows[idx].line}")
                continue
            _overlay(desired[idx], r)
            sku_rows[idx] = r
            updated += 1
            continue
        spec = r.spec or []
        taken = by_vset.get(_vset(dict(spec)))
        if taken is not None:
            code = desired[taken].get("code") or ""
            r.err("sku_code", f"该规格已有 SKU（编码 {code}），请用该编码更新", f"This combination already has a SKU (code {code}); update it by that code")
            continue
        if sorted(n for n, _v in spec) != sorted(spec_names):
            r.err("spec", f"规格名称需为：{' | '.join(spec_names) or '（无规格）'}",
                  f"The spec names must be: {' | '.join(spec_names) or '(no specs)'}")
            continue
        if r.price_fen is None:
            r.err("price", "新 SKU 需要填写售价", "A new SKU needs a price")
            continue
        for name, value in spec:
            s = next(s for s in specs if s["name"] == name)
            if value not in s["values"]:
                s["values"].append(value)
        new: dict[str, Any] = {"spec_values": dict(spec), "price_fen": r.price_fen, "weight_g": 0, "enabled": True}
        _overlay(new, r)
        desired.append(new)
        by_vset[_vset(new["spec_values"])] = len(desired) - 1
        if r.code:
            by_code[r.code] = len(desired) - 1
        sku_rows[len(desired) - 1] = r
        created += 1
    applied = [r for r in rows if not r.errors]
    if not applied:
        return
    first = applied[0]
    changes: dict[str, Any] = {"specs": specs, "skus": desired}
    if first.title:
        changes["title"] = first.title
    if first.has("subtitle"):
        changes["subtitle"] = first.subtitle
    if first.has("category"):
        changes["category_id"] = first.category_id
    if first.kind:
        changes["kind"] = first.kind
    if first.has("insert_card_type") and (first.kind or product.kind) == "insert_card":
        changes["insert_card_type"] = first.card_type
    if first.main_image and first.main_image != product.main_image:
        changes["images"] = [first.main_image, *[u for u in product.images or [] if u != first.main_image]][:9]
        changes["main_image"] = first.main_image
    try:
        await update_product(session, scope, product.id, ProductUpdate.model_validate(changes))
    except (DomainError, ValidationError) as exc:
        raise _GroupFailed(exc, sku_rows) from None
    report.updated_products += 1
    report.created_skus += created
    report.updated_skus += updated


async def _import_new(session: AsyncSession, scope: TenantScope, title: str, rows: list[_Row], report: ImportReport) -> None:
    names = [n for n, _v in (rows[0].spec or [])]
    specs: list[dict[str, Any]] = [{"name": n, "values": []} for n in names]
    skus: list[dict[str, Any]] = []
    sku_rows: dict[int, _Row] = {}
    seen: dict[frozenset[tuple[str, str]], int] = {}
    for r in rows:
        spec = r.spec or []
        if [n for n, _v in spec] != names:
            r.err("spec", f"同一商品各行的规格名称需一致：{' | '.join(names) or '（无规格）'}",
                  f"Rows of one product need the same spec names: {' | '.join(names) or '(no specs)'}")
            continue
        vs = _vset(dict(spec))
        if vs in seen:
            r.err("spec", f"与第 {seen[vs]} 行的规格组合重复", f"The same combination as row {seen[vs]}")
            continue
        if r.price_fen is None:
            r.err("price", "新 SKU 需要填写售价", "A new SKU needs a price")
            continue
        seen[vs] = r.line
        for (_name, value), s in zip(spec, specs, strict=True):
            if value not in s["values"]:
                s["values"].append(value)
        new: dict[str, Any] = {"spec_values": dict(spec), "price_fen": r.price_fen, "weight_g": 0, "enabled": True}
        _overlay(new, r)
        skus.append(new)
        sku_rows[len(skus) - 1] = r
    applied = [r for r in rows if not r.errors]
    if not applied:
        return
    first = applied[0]
    data_in: dict[str, Any] = {"title": title, "subtitle": first.subtitle, "category_id": first.category_id,
                               "kind": first.kind or "physical", "specs": specs, "skus": skus}
    if data_in["kind"] == "insert_card":
        data_in["insert_card_type"] = first.card_type
    if first.main_image:
        data_in["images"] = [first.main_image]
    try:
        await create_product(session, scope, ProductIn.model_validate(data_in))
    except (DomainError, ValidationError) as exc:
        raise _GroupFailed(exc, sku_rows) from None
    report.created_products += 1
    report.created_skus += len(skus)
