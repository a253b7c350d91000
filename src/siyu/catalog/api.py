"""JSON endpoints of the catalog: the admin API (``/api/admin/v1/catalog/...``: categories,
products and SKUs, status changes, image upload, CSV export and import) and the store API
(``/api/store/v1/{shop}/catalog/...``: categories, on-sale products, product detail with
SKUs and availability)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service
from siyu.catalog.models import Product, Sku
from siyu.catalog.repository import ProductQuery
from siyu.catalog.schemas import (
    CategoryIn,
    CategoryOut,
    CategoryUpdate,
    ImageOut,
    ImportReportOut,
    ImportRowError,
    Kind,
    ProductIn,
    ProductOut,
    ProductSummaryOut,
    ProductUpdate,
    SkuOut,
    SpecOut,
    Status,
    StatusChange,
    StoreCategoryOut,
    StoreProductCard,
    StoreProductOut,
    StoreSkuOut,
)
from siyu.catalog.schemas import Sort as SortName
from siyu.customers.access import CurrentShop
from siyu.kit.errors import DomainError
from siyu.kit.pagination import Page, Pages
from siyu.kit.storage import MAX_IMAGE_BYTES
from siyu.kit.tenancy import TenantScope
from siyu.kit.types import MAX_ID, PathId, SearchText
from siyu.kit.web import ADMIN_ERRORS, UoW, problem_responses, runtime
from siyu.staff.access import StaffPrincipal, require

admin = APIRouter(prefix="/api/admin/v1/catalog", tags=["admin: catalog"], responses=ADMIN_ERRORS)
store = APIRouter(prefix="/api/store/v1/{shop}/catalog", tags=["store: catalog"],
                  responses=problem_responses(400, 403, 404, 422, 429))

#: Every router of this module; app.py includes them all.
routers: list[APIRouter] = [admin, store]

Reader = Annotated[StaffPrincipal, require("catalog.read")]
Writer = Annotated[StaffPrincipal, require("catalog.write")]
OptId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
OptFen = Annotated[int | None, Query(ge=0, le=1_000_000_000, description="Amount in fen")]
MAX_IMPORT_BYTES = service.MAX_IMPORT_BYTES


# -- shaping -----------------------------------------------------------------------------------


def sku_out(s: Sku, specs: list[Any]) -> SkuOut:
    return SkuOut(id=s.id, product_id=s.product_id, code=s.code, spec_values=dict(s.spec_values or {}), spec_key=s.spec_key,
                  spec_text=service.spec_text(s, specs), price_fen=s.price_fen, market_price_fen=s.market_price_fen,
                  cost_price_fen=s.cost_price_fen, weight_g=s.weight_g, barcode=s.barcode, image_url=s.image_url,
                  status="active" if s.status == "active" else "disabled")


def _summary_fields(p: Product, sku_count: int) -> dict[str, Any]:
    return {"id": p.id, "title": p.title, "subtitle": p.subtitle, "category_id": p.category_id, "kind": p.kind,
            "insert_card_type": p.insert_card_type, "status": p.status, "on_sale_at": p.on_sale_at,
            "main_image": p.main_image, "price_min_fen": p.price_min_fen, "price_max_fen": p.price_max_fen,
            "sales_count": p.sales_count, "sort": p.sort, "sku_count": sku_count, "created_at": p.created_at,
            "updated_at": p.updated_at}


async def product_out(session: AsyncSession, scope: TenantScope, p: Product) -> ProductOut:
    skus = await service.product_skus(session, scope, p.id)
    specs = list(p.specs or [])
    return ProductOut(
        **_summary_fields(p, sum(1 for s in skus if s.status == "active")),
        specs=[SpecOut(name=s["name"], values=list(s["values"])) for s in specs],
        description_html=p.description_html, images=list(p.images or []), requires_shipping=service.requires_shipping(p.kind),
        skus=[sku_out(s, specs) for s in skus],
    )


def _query(q: str | None, category_ids: frozenset[int] | None, status: str | None, kind: str | None,
           price_from: int | None, price_to: int | None, sort: str, storefront: bool = False) -> ProductQuery:
    return ProductQuery(q=(q or "").strip() or None, category_ids=category_ids, status=status, kind=kind,
                        price_from=price_from, price_to=price_to, sort=sort, storefront=storefront)


async def _categories(session: AsyncSession, scope: TenantScope, category_id: int | None) -> frozenset[int] | None:
    return None if category_id is None else await service.category_and_descendants(session, scope, category_id)


# -- admin: categories ---------------------------------------------------------------------------------


def _category_out(c: service.CategoryInfo) -> CategoryOut:
    return CategoryOut(id=c.id, parent_id=c.parent_id, name=c.name, path=c.path, depth=c.depth, sort=c.sort,
                       is_visible=c.is_visible, icon_url=c.icon_url, product_count=c.product_count)


@admin.get("/categories", response_model=list[CategoryOut], summary="Every category, in tree order")
async def list_categories(session: UoW, me: Reader) -> list[CategoryOut]:
    return [_category_out(c) for c in await service.list_categories(session, me.scope)]


@admin.post("/categories", response_model=CategoryOut, status_code=201, summary="Create a category (at most 3 levels)")
async def create_category(body: CategoryIn, session: UoW, me: Writer) -> CategoryOut:
    cat = await service.create_category(session, me.scope, body)
    return _category_out(await service.category_info(session, me.scope, cat.id))


@admin.get("/categories/{category_id}", response_model=CategoryOut, summary="One category")
async def get_category(category_id: PathId, session: UoW, me: Reader) -> CategoryOut:
    return _category_out(await service.category_info(session, me.scope, category_id))


@admin.patch("/categories/{category_id}", response_model=CategoryOut,
             summary="Rename, move, reorder or hide a category (no cycles, at most 3 levels)")
async def update_category(category_id: PathId, body: CategoryUpdate, session: UoW, me: Writer) -> CategoryOut:
    await service.update_category(session, me.scope, category_id, body)
    return _category_out(await service.category_info(session, me.scope, category_id))


@admin.delete("/categories/{category_id}", status_code=204,
              summary="Delete an empty category (409 while it has sub-categories or products)")
async def delete_category(category_id: PathId, session: UoW, me: Writer) -> Response:
    await service.delete_category(session, me.scope, category_id)
    return Response(status_code=204)


# -- admin: products ------------------------------------------------------------------------------------


@admin.get("/products", response_model=Page[ProductSummaryOut], summary="Search and filter products")
async def list_products(
    session: UoW, pages: Pages, me: Reader,
    q: SearchText = None,
    category_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Includes its sub-categories")] = None,
    status: Status | None = None,
    kind: Kind | None = None,
    price_from: OptFen = None,
    price_to: OptFen = None,
    sort: SortName = "newest",
) -> Page[ProductSummaryOut]:
    query = _query(q, await _categories(session, me.scope, category_id), status, kind, price_from, price_to, sort)
    rows, total = await service.list_products(session, me.scope, query, offset=pages.offset, limit=pages.page_size)
    stats = await service.active_stats(session, me.scope, [p.id for p in rows])
    items = [ProductSummaryOut(**_summary_fields(p, stats.get(p.id, (0, None))[0])) for p in rows]
    return Page(items=items, total=total, page=pages.page, page_size=pages.page_size)


@admin.post("/products", response_model=ProductOut, status_code=201, summary="Create a product (a draft) with its SKUs")
async def create_product(body: ProductIn, session: UoW, me: Writer) -> ProductOut:
    product = await service.create_product(session, me.scope, body)
    return await product_out(session, me.scope, product)


@admin.get("/products/{product_id}", response_model=ProductOut, summary="One product with every SKU")
async def get_product(product_id: PathId, session: UoW, me: Reader) -> ProductOut:
    return await product_out(session, me.scope, await service.get_product(session, me.scope, product_id))


@admin.patch("/products/{product_id}", response_model=ProductOut,
             summary="Change a product; specs and SKUs keep SKU ids and disable removed combinations")
async def update_product(product_id: PathId, body: ProductUpdate, session: UoW, me: Writer) -> ProductOut:
    product = await service.update_product(session, me.scope, product_id, body)
    return await product_out(session, me.scope, product)


@admin.post("/products/{product_id}/status", response_model=ProductOut,
            summary="Publish, schedule or unpublish a product (409 illegal_product_transition)")
async def change_status(product_id: PathId, body: StatusChange, session: UoW, me: Writer) -> ProductOut:
    product = await service.change_status(session, me.scope, product_id, body.action, body.on_sale_at)
    return await product_out(session, me.scope, product)


@admin.get("/skus/{sku_id}", response_model=SkuOut, summary="One SKU")
async def get_sku(sku_id: PathId, session: UoW, me: Reader) -> SkuOut:
    found = await service.skus_for_sale(session, me.scope, [sku_id])
    if sku_id not in found:
        raise DomainError("sku_not_found", "商品规格不存在", "SKU not found", status=404)
    product = await service.get_product(session, me.scope, found[sku_id].product_id)
    sku = next(s for s in await service.product_skus(session, me.scope, product.id) if s.id == sku_id)
    return sku_out(sku, list(product.specs or []))


async def _read_upload(file: UploadFile, limit: int, what_zh: str, what_en: str) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise DomainError("file_too_large", f"{what_zh}不能超过 {limit // (1024 * 1024)} MB",
                          f"{what_en} may be at most {limit // (1024 * 1024)} MB", status=413)
    return data


@admin.post("/images", response_model=ImageOut, status_code=201,
            summary="Upload a product image (PNG, JPEG, GIF or WebP, at most 5 MB; 413 when larger)",
            responses=problem_responses(413))
async def upload_image(request: Request, session: UoW, me: Writer,
                       file: Annotated[UploadFile, File(description="The image")]) -> ImageOut:
    data = await _read_upload(file, MAX_IMAGE_BYTES, "图片", "Images")
    stored = await service.upload_image(session, runtime(request).media, me.scope, data, uploaded_by=me.staff_id)
    return ImageOut(id=stored.id, url=stored.url, content_type=stored.content_type, size=stored.size)


@admin.get("/export", summary="Products and SKUs as CSV (UTF-8 with BOM; one row per SKU)",
           response_class=Response, responses={200: {"content": {"text/csv": {}}, "description": "CSV file"}})
async def export_products(
    session: UoW, me: Reader,
    q: SearchText = None,
    category_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status: Status | None = None,
    kind: Kind | None = None,
) -> Response:
    query = _query(q, await _categories(session, me.scope, category_id), status, kind, None, None, "newest")
    body = await service.export_csv(session, me.scope, query)
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="products.csv"', "Cache-Control": "no-store"})


def report_out(report: service.ImportReport) -> ImportReportOut:
    return ImportReportOut(
        rows=report.rows, applied_rows=report.applied_rows, created_products=report.created_products,
        updated_products=report.updated_products, created_skus=report.created_skus, updated_skus=report.updated_skus,
        dry_run=report.dry_run, errors=[ImportRowError(row=e.row, field=e.field, message=e.message) for e in report.errors],
    )


@admin.post("/import", response_model=ImportReportOut,
            summary="Create or update products and SKUs from CSV; valid rows are applied, the others reported",
            responses=problem_responses(413))
async def import_products(session: UoW, me: Writer, file: Annotated[UploadFile, File(description="CSV file")],
                          dry_run: Annotated[bool, Query(description="Check only; change nothing")] = False) -> ImportReportOut:
    data = await _read_upload(file, MAX_IMPORT_BYTES, "导入文件", "The import file")
    return report_out(await service.import_csv(session, me.scope, data, dry_run=dry_run))


# -- store ---------------------------------------------------------------------------------------------------


def _store_category(c: service.CategoryInfo) -> StoreCategoryOut:
    return StoreCategoryOut(id=c.id, name=c.name, icon_url=c.icon_url, children=[_store_category(k) for k in c.children])


@store.get("/categories", response_model=list[StoreCategoryOut], summary="Visible categories as a tree")
async def store_categories(shop: CurrentShop, session: UoW) -> list[StoreCategoryOut]:
    return [_store_category(c) for c in await service.store_category_tree(session, shop.scope)]


async def store_cards(session: AsyncSession, scope: TenantScope, rows: list[Product]) -> list[StoreProductCard]:
    stats = await service.active_stats(session, scope, [p.id for p in rows])
    return [StoreProductCard(id=p.id, title=p.title, subtitle=p.subtitle, kind=p.kind, main_image=p.main_image,
                             price_min_fen=p.price_min_fen, price_max_fen=p.price_max_fen,
                             market_price_fen=stats.get(p.id, (0, None))[1], sales_count=p.sales_count) for p in rows]


@store.get("/products", response_model=Page[StoreProductCard], summary="On-sale products: search, category, price, sort")
async def store_products(
    shop: CurrentShop, session: UoW, pages: Pages,
    q: SearchText = None,
    category_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Includes its sub-categories")] = None,
    price_from: OptFen = None,
    price_to: OptFen = None,
    sort: SortName = "sort",
) -> Page[StoreProductCard]:
    query = _query(q, await _categories(session, shop.scope, category_id), None, None, price_from, price_to, sort,
                   storefront=True)
    rows, total = await service.list_products(session, shop.scope, query, offset=pages.offset, limit=pages.page_size)
    return Page(items=await store_cards(session, shop.scope, list(rows)), total=total, page=pages.page,
                page_size=pages.page_size)


async def store_product_detail(session: AsyncSession, scope: TenantScope, product_id: int) -> StoreProductOut:
    """A product a shopper may see (on sale, not a 包裹卡) with its active SKUs; 404 otherwise."""
    product = await service.get_product(session, scope, product_id)
    if product.status != "on_sale" or product.kind == "insert_card":
        raise DomainError("product_not_found", "商品不存在或已下架", "Product not found or no longer on sale", status=404)
    skus = [s for s in await service.product_skus(session, scope, product.id) if s.status == "active"]
    stock = await service.stock_of(session, scope, [s.id for s in skus])
    specs = list(product.specs or [])
    used = {(k, v) for s in skus for k, v in (s.spec_values or {}).items()}
    shown_specs = [SpecOut(name=sp["name"], values=[v for v in sp["values"] if (sp["name"], v) in used]) for sp in specs]
    gallery = list(dict.fromkeys([u for u in [product.main_image, *(product.images or [])] if u]))
    return StoreProductOut(
        id=product.id, title=product.title, subtitle=product.subtitle, kind=product.kind, category_id=product.category_id,
        main_image=product.main_image, images=gallery, description_html=product.description_html, specs=shown_specs,
        price_min_fen=product.price_min_fen, price_max_fen=product.price_max_fen, sales_count=product.sales_count,
        requires_shipping=service.requires_shipping(product.kind),
        skus=[StoreSkuOut(id=s.id, spec_values=dict(s.spec_values or {}), spec_text=service.spec_text(s, specs),
                          price_fen=s.price_fen, market_price_fen=s.market_price_fen, image_url=s.image_url,
                          stock=None if stock is None else int(stock.get(s.id, 0)),
                          available=stock is None or stock.get(s.id, 0) > 0) for s in skus],
    )


@store.get("/products/{product_id}", response_model=StoreProductOut,
           summary="One on-sale product with its SKUs, prices and availability")
async def store_product(product_id: PathId, shop: CurrentShop, session: UoW) -> StoreProductOut:
    return await store_product_detail(session, shop.scope, product_id)

