"""Pages of the catalog: the console's product list, product editor (spec matrix, images,
status), categories and CSV import/export (``/admin/catalog/...``), and the storefront's
category browsing and search and product page (``/m/{shop}/category``, ``/m/{shop}/p/{id}``).

Same conventions as ``staff/views.py``: console forms are plain posts carrying ``_csrf``,
answered by a 303 redirect with a flash message, or by the page again with its errors and a
4xx status; service calls run in a savepoint (:func:`attempt`). The editor's spec matrix is
an Alpine component that keeps its state in one hidden JSON field (``matrix``), which the
server fills in first, so the form also saves without JavaScript. Prices in forms are yuan
(``12.50``), converted exactly to fen.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service
from siyu.catalog.api import store_cards, store_product_detail
from siyu.catalog.models import INSERT_CARD_TYPES, KINDS, Product
from siyu.catalog.repository import ProductQuery
from siyu.catalog.schemas import CategoryIn, CategoryUpdate, ProductIn, ProductUpdate
from siyu.customers.access import OptionalShopper, Shop, ShopperSession
from siyu.kit import audit
from siyu.kit.errors import DomainError
from siyu.kit.i18n import gettext as _
from siyu.kit.money import yuan
from siyu.kit.storage import MAX_IMAGE_BYTES
from siyu.kit.types import PathId
from siyu.kit.web import UoW, runtime
from siyu.staff.access import StaffPrincipal, require
from siyu.web import i18n_catalog  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import (
    FLASH_COOKIE,
    attempt,
    error_flash,
    query_url,
    safe_next,
    take_flash,
    to_int,
)
from siyu.web.page import console_page, flash
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
STORE_PAGE_SIZE = 20

STATUS_LABELS = {"draft": "草稿", "on_sale": "在售", "scheduled": "定时上架", "off_sale": "已下架"}
STATUS_COLORS = {"draft": "gray", "on_sale": "green", "scheduled": "blue", "off_sale": "orange"}
KIND_LABELS = {"physical": "实物商品", "virtual": "虚拟商品", "voucher": "卡券", "service": "服务", "insert_card": "包裹卡"}
CARD_LABELS = {"notice": "通知提醒", "brand": "品牌", "marketing": "营销", "trending": "热点"}
SORT_LABELS = {"newest": "最新创建", "sort": "排序值", "price_asc": "价格从低到高", "price_desc": "价格从高到低",
               "sales": "销量"}
ACTION_DONE = {"publish": "商品已上架", "schedule": "已设置定时上架", "unpublish": "商品已下架"}

PRODUCT_FIELD_MESSAGES = {
    "title": "请填写商品名称（最多 120 字）",
    "subtitle": "副标题最多 200 字",
    "category_id": "请选择有效的分类",
    "kind": "请选择商品类型",
    "insert_card_type": "包裹卡需要选择类型",
    "specs": "规格有误：名称与规格值不能为空或重复，不能包含 : 或 |，组合数最多 200 个",
    "skus": "请至少填写一个 SKU 的售价",
    "description_html": "商品详情过长",
    "images": "图片有误，请重新上传",
    "main_image": "图片有误，请重新上传",
    "sort": "排序值需为 -1000000 到 1000000 之间的整数",
}
SKU_FIELD_MESSAGES = {
    "price_fen": "售价需为 0–10000000 元，最多两位小数",
    "market_price_fen": "划线价需为 0–10000000 元，最多两位小数",
    "cost_price_fen": "成本价需为 0–10000000 元，最多两位小数",
    "weight_g": "重量需为 0–1000000 克的整数",
    "code": "SKU 编码为 1–64 位字母、数字、_ . -，以字母或数字开头",
    "barcode": "条码为 1–64 位字母、数字或 -",
    "": "划线价不能低于售价",
}
CATEGORY_FIELD_MESSAGES = {"name": "分类名称为 1–60 个字符，不能包含 /", "parent_id": "请选择有效的上级分类",
                           "sort": "排序值需为 -1000000 到 1000000 之间的整数"}


# -- helpers -----------------------------------------------------------------------------------------


def _fen_or_none(text: str) -> int | None:
    """Yuan text → fen; blank → None; ValueError when malformed."""
    text = (text or "").strip()
    return None if not text else service.parse_yuan(text)


def _local_input(value: datetime | None, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M") if value else ""


def _parse_local(text: str, tz: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=ZoneInfo(tz)) if text.strip() else None
    except ValueError:
        return None


async def _category_options(session: AsyncSession, me: StaffPrincipal) -> list[tuple[str, str]]:
    cats = await service.list_categories(session, me.scope)
    return [(str(c.id), "\u3000" * (c.depth - 1) + c.name) for c in cats]


def _product_status_actions(p: Product) -> list[str]:
    return [a for (s, a) in service.TRANSITIONS if s == p.status and a != "schedule"]


# -- console: product list -----------------------------------------------------------------------------


@router.get("/admin/catalog")
async def product_list(
    request: Request, session: UoW, me: Annotated[StaffPrincipal, require("catalog.read")],
    q: Annotated[str, Query(max_length=100)] = "",
    category: Annotated[str, Query(max_length=20)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    kind: Annotated[str, Query(max_length=20)] = "",
    price_from: Annotated[str, Query(max_length=20)] = "",
    price_to: Annotated[str, Query(max_length=20)] = "",
    sort: Annotated[str, Query(max_length=20)] = "newest",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    q = "".join(ch for ch in q if ch.isprintable()).strip()
    status = status if status in STATUS_LABELS else ""
    kind = kind if kind in KIND_LABELS else ""
    sort = sort if sort in SORT_LABELS else "newest"
    category_id = to_int(category)
    try:
        low, high = _fen_or_none(price_from), _fen_or_none(price_to)
    except ValueError:
        low = high = None
    cats = await service.category_and_descendants(session, me.scope, category_id) if category_id else None
    base_query = ProductQuery(q=q or None, category_ids=cats, kind=kind or None, price_from=low, price_to=high, sort=sort)
    query = ProductQuery(**{**_as_dict(base_query), "status": status or None})
    rows, total = await service.list_products(session, me.scope, query, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    counts: dict[str, int] = {}
    for st in ("", *STATUS_LABELS):
        _rows, counts[st] = await service.list_products(session, me.scope,
                                                        ProductQuery(**{**_as_dict(base_query), "status": st or None}),
                                                        limit=1)
    stats = await service.active_stats(session, me.scope, [p.id for p in rows])
    options = await _category_options(session, me)
    names = {int(v): label.strip("\u3000") for v, label in options}
    params = {"q": q, "category": category_id or "", "kind": kind, "price_from": price_from.strip(),
              "price_to": price_to.strip(), "sort": sort if sort != "newest" else ""}
    items = [{"p": p, "skus": stats.get(p.id, (0, None))[0], "category": names.get(p.category_id or 0, ""),
              "actions": _product_status_actions(p)} for p in rows]
    return console_page(request, me, "console/catalog/list.html", {
        "title": _("商品管理"), "items": items, "total": total, "page": page, "page_size": PAGE_SIZE,
        "pages": max(1, math.ceil(total / PAGE_SIZE)), "base_url": query_url("/admin/catalog", status=status, **params),
        "tab_url": query_url("/admin/catalog", **params), "counts": counts,
        "q": q, "category": str(category_id or ""), "status": status, "kind": kind, "price_from": price_from.strip(),
        "price_to": price_to.strip(), "sort": sort, "filtered": bool(q or category_id or kind or low is not None or high is not None),
        "category_options": options, "statuses": STATUS_LABELS, "status_colors": STATUS_COLORS, "kinds": KIND_LABELS,
        "card_types": CARD_LABELS, "sorts": SORT_LABELS, "can_write": me.can("catalog.write"),
        "here": str(request.url.path) + ("?" + request.url.query if request.url.query else ""),
    })


def _as_dict(q: ProductQuery) -> dict[str, Any]:
    return {f: getattr(q, f) for f in ("q", "category_ids", "status", "kind", "price_from", "price_to", "sort", "storefront")}


@router.post("/admin/catalog/{product_id}/status")
async def product_status(
    product_id: PathId, request: Request, session: UoW, me: Annotated[StaffPrincipal, require("catalog.write")],
    action: Annotated[str, Form(max_length=20)] = "",
    on_sale_at: Annotated[str, Form(max_length=40)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=500)] = "",
) -> Response:
    resp = RedirectResponse(safe_next(next_url, f"/admin/catalog/{product_id}"), status_code=303)
    if action not in ACTION_DONE:
        return flash(resp, _("未知的操作"), "error")
    when = _parse_local(on_sale_at, me.scope.timezone) if action == "schedule" else None
    if action == "schedule" and when is None:
        return flash(resp, _("请填写定时上架时间"), "error")
    _p, err = await attempt(session, lambda: service.change_status(session, me.scope, product_id, action, when))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(resp, err.message(), "error")
    return flash(resp, _(ACTION_DONE[action]))


# -- console: categories -------------------------------------------------------------------------------


async def _categories_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, values: dict[str, Any] | None = None,
                           errors: dict[str, str] | None = None, message: str = "", status_code: int = 200) -> HTMLResponse:
    cats = await service.list_categories(session, me.scope)
    ctx: dict[str, Any] = {
        "title": _("商品分类"), "categories": cats, "parent_options": [(str(c.id), "\u3000" * (c.depth - 1) + c.name)
                                                                   for c in cats if c.depth < service.MAX_DEPTH],
        "values": values or {"is_visible": True, "sort": "0"}, "errors": errors or {}, "can_write": me.can("catalog.write"),
        "max_depth": service.MAX_DEPTH,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/catalog/categories.html", ctx, status_code=status_code)


@router.get("/admin/catalog/categories")
async def categories(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("catalog.read")]) -> Response:
    return await _categories_page(request, session, me)


def _category_errors(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in exc.errors():
        name = str(e["loc"][0]) if e.get("loc") else ""
        out.setdefault(name, _(CATEGORY_FIELD_MESSAGES.get(name, "填写的内容有误")))
    return out


@router.post("/admin/catalog/categories/new")
async def category_create(
    request: Request, session: UoW, me: Annotated[StaffPrincipal, require("catalog.write")],
    name: Annotated[str, Form(max_length=200)] = "",
    parent_id: Annotated[str, Form(max_length=20)] = "",
    sort: Annotated[str, Form(max_length=20)] = "0",
    is_visible: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    values = {"name": name.strip(), "parent_id": parent_id, "sort": sort.strip(), "is_visible": bool(is_visible)}
    try:
        data = CategoryIn(name=values["name"], parent_id=to_int(parent_id), sort=sort.strip() or "0", is_visible=bool(is_visible))
    except ValidationError as exc:
        errors = _category_errors(exc)
        return await _categories_page(request, session, me, values=values, errors=errors, message=next(iter(errors.values())),
                                      status_code=422)
    cat, err = await attempt(session, lambda: service.create_category(session, me.scope, data))
    if err is not None or cat is None:
        assert err is not None
        return await _categories_page(request, session, me, values=values, message=err.message(), status_code=err.status,
                                      errors={f["field"]: err.message() for f in err.fields})
    return flash(RedirectResponse("/admin/catalog/categories", status_code=303), _("已添加分类 %(name)s") % {"name": cat.name})


@router.post("/admin/catalog/categories/{category_id}")
async def category_update(
    category_id: PathId, request: Request, session: UoW, me: Annotated[StaffPrincipal, require("catalog.write")],
    name: Annotated[str, Form(max_length=200)] = "",
    parent_id: Annotated[str, Form(max_length=20)] = "",
    sort: Annotated[str, Form(max_length=20)] = "0",
    is_visible: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    resp = RedirectResponse("/admin/catalog/categories", status_code=303)
    try:
        data = CategoryUpdate(name=name.strip(), parent_id=to_int(parent_id), sort=sort.strip() or "0",
                              is_visible=bool(is_visible))
    except ValidationError as exc:
        return flash(resp, next(iter(_category_errors(exc).values())), "error")
    cat, err = await attempt(session, lambda: service.update_category(session, me.scope, category_id, data))
    if err is not None or cat is None:
        assert err is not None
        if err.status == 404:
            raise err
        return flash(resp, err.message(), "error")
    return flash(resp, _("已保存分类 %(name)s") % {"name": cat.name})


@router.post("/admin/catalog/categories/{category_id}/delete")
async def category_delete(category_id: PathId, session: UoW,
                          me: Annotated[StaffPrincipal, require("catalog.write")]) -> Response:
    resp = RedirectResponse("/admin/catalog/categories", status_code=303)
    _r, err = await attempt(session, lambda: service.delete_category(session, me.scope, category_id))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(resp, err.message(), "error")
    return flash(resp, _("分类已删除"))


# -- console: import and export --------------------------------------------------------------------------


def _transfer_page(request: Request, me: StaffPrincipal, *, report: service.ImportReport | None = None,
                   message: str = "", status_code: int = 200) -> HTMLResponse:
    ctx: dict[str, Any] = {"title": _("导入导出"), "report": report, "columns": service.CSV_COLUMNS,
                           "can_write": me.can("catalog.write"), "max_rows": service.MAX_IMPORT_ROWS}
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/catalog/transfer.html", ctx, status_code=status_code)


@router.get("/admin/catalog/transfer")
async def transfer(request: Request, me: Annotated[StaffPrincipal, require("catalog.read")]) -> Response:
    return _transfer_page(request, me)


@router.get("/admin/catalog/export.csv")
async def export_csv(session: UoW, me: Annotated[StaffPrincipal, require("catalog.read")],
                     status: Annotated[str, Query(max_length=20)] = "") -> Response:
    query = ProductQuery(status=status if status in STATUS_LABELS else None)
    body = await service.export_csv(session, me.scope, query)
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="products.csv"', "Cache-Control": "no-store"})


@router.post("/admin/catalog/import")
async def import_csv(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("catalog.write")],
                     file: Annotated[UploadFile | None, File()] = None,
                     dry_run: Annotated[str, Form(max_length=5)] = "") -> Response:
    if file is None:
        return _transfer_page(request, me, message=_("请选择要导入的 CSV 文件"), status_code=422)
    data = await file.read(service.MAX_IMPORT_BYTES + 1)
    report, err = await attempt(session, lambda: service.import_csv(session, me.scope, data, dry_run=bool(dry_run)))
    if err is not None or report is None:
        assert err is not None
        return _transfer_page(request, me, message=err.message(), status_code=err.status)
    return _transfer_page(request, me, report=report, status_code=200)


# -- console: product editor ---------------------------------------------------------------------------


def _editor_state(product: Product | None, skus: list[Any]) -> dict[str, Any]:
    if product is None:
        return {"specs": [], "skus": [{"id": None, "spec_values": {}, "code": "", "price": "", "market_price": "",
                                        "cost_price": "", "weight_g": "", "barcode": "", "enabled": True}]}
    return {
        "specs": [{"name": s["name"], "values": list(s["values"])} for s in product.specs or []],
        "skus": [{"id": s.id, "spec_values": dict(s.spec_values or {}), "code": s.code, "price": yuan(s.price_fen),
                  "market_price": "" if s.market_price_fen is None else yuan(s.market_price_fen),
                  "cost_price": "" if s.cost_price_fen is None else yuan(s.cost_price_fen),
                  "weight_g": str(s.weight_g or ""), "barcode": s.barcode or "", "enabled": s.status == "active"}
                 for s in skus],
    }


async def _editor(request: Request, session: AsyncSession, me: StaffPrincipal, product: Product | None, *,
                  values: dict[str, Any] | None = None, matrix: dict[str, Any] | None = None, errors: list[str] | None = None,
                  field_errors: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    skus = await service.product_skus(session, me.scope, product.id) if product else []
    current = {
        "title": product.title if product else "", "subtitle": (product.subtitle or "") if product else "",
        "category_id": str(product.category_id or "") if product else "", "kind": product.kind if product else "physical",
        "insert_card_type": (product.insert_card_type or "") if product else "", "sort": str(product.sort) if product else "0",
        "description_html": product.description_html if product else "",
        "images": list(dict.fromkeys([u for u in [product.main_image, *(product.images or [])] if u])) if product else [],
    }
    current.update(values or {})
    state = matrix or _editor_state(product, skus)
    disabled = [s for s in skus if s.status != "active"]
    ctx: dict[str, Any] = {
        "title": product.title if product else _("新建商品"), "product": product, "values": current,
        "errors": errors or [], "field_errors": field_errors or {},
        "editor": {"specs": state["specs"], "skus": state["skus"], "images": current["images"],
                   "kind": current["kind"], "uploadUrl": "/api/admin/v1/catalog/images", "maxImages": 9,
                   "t": {"uploadFailed": _("上传失败，请重试"), "tooMany": _("最多 9 张图片"),
                         "specName": _("规格名，如 规格"), "specValue": _("规格值，如 50g"),
                         "noSpec": _("无规格"), "uploading": _("上传中…"),
                         "upload": "＋ " + _("上传图片")}},
        "category_options": await _category_options(session, me), "kinds": KIND_LABELS, "card_types": CARD_LABELS,
        "statuses": STATUS_LABELS, "status_colors": STATUS_COLORS,
        "actions": _product_status_actions(product) if product else [],
        "can_schedule": bool(product and any(s == product.status and a == "schedule" for (s, a) in service.TRANSITIONS)),
        "on_sale_at": _local_input(product.on_sale_at, me.scope.timezone) if product else "",
        "disabled_skus": disabled, "can_write": me.can("catalog.write"), "max_image_mb": MAX_IMAGE_BYTES // (1024 * 1024),
        "store_url": f"/m/{me.scope.code}/p/{product.id}" if product and product.status == "on_sale" else "",
    }
    if errors:
        ctx["flash"] = error_flash(errors[0])
    return console_page(request, me, "console/catalog/edit.html", ctx, status_code=status_code)


@router.get("/admin/catalog/new")
async def product_new(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("catalog.write")]) -> Response:
    return await _editor(request, session, me, None)


@router.get("/admin/catalog/{product_id}")
async def product_edit(product_id: PathId, request: Request, session: UoW,
                       me: Annotated[StaffPrincipal, require("catalog.read")]) -> Response:
    product = await service.get_product(session, me.scope, product_id)
    return await _editor(request, session, me, product)


class _FormProblem(Exception):
    def __init__(self, messages: list[str], fields: dict[str, str] | None = None) -> None:
        super().__init__(messages[0] if messages else "")
        self.messages = messages
        self.fields = fields or {}


def _matrix_from_form(raw: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(the editor state as posted, specs, SkuIn dicts). Rows switched off with no price are
    left out; prices are yuan text turned into fen."""
    try:
        state = json.loads(raw or "{}")
    except ValueError as exc:
        raise _FormProblem([_("规格数据有误，请刷新页面后重试")]) from exc
    if not isinstance(state, dict) or not isinstance(state.get("specs", []), list) or not isinstance(state.get("skus", []), list):
        raise _FormProblem([_("规格数据有误，请刷新页面后重试")])
    specs = [s for s in state.get("specs", []) if isinstance(s, dict)]
    rows = [r for r in state.get("skus", []) if isinstance(r, dict)]
    state = {"specs": specs, "skus": rows}
    problems: list[str] = []
    skus: list[dict[str, Any]] = []
    for n, row in enumerate(rows, start=1):
        raw_values = row.get("spec_values")
        values: dict[str, Any] = raw_values if isinstance(raw_values, dict) else {}
        label = " / ".join(str(v) for v in values.values()) or _("默认规格")
        enabled = bool(row.get("enabled", True))
        price_text = str(row.get("price") or "").strip()
        if not enabled and not price_text:
            continue
        sku: dict[str, Any] = {"spec_values": values, "enabled": enabled}
        if isinstance(row.get("id"), int):
            sku["id"] = row["id"]
        for key, target, required in (("price", "price_fen", True), ("market_price", "market_price_fen", False),
                                      ("cost_price", "cost_price_fen", False)):
            text = str(row.get(key) or "").strip()
            try:
                fen = _fen_or_none(text)
            except ValueError:
                problems.append(_("第 %(n)s 行（%(sku)s）：%(msg)s") % {"n": n, "sku": label, "msg": _(SKU_FIELD_MESSAGES[target])})
                continue
            if fen is None and required:
                problems.append(_("第 %(n)s 行（%(sku)s）：请填写售价") % {"n": n, "sku": label})
            sku[target] = fen
        weight = str(row.get("weight_g") or "").strip()
        if weight and not weight.isdigit():
            problems.append(_("第 %(n)s 行（%(sku)s）：%(msg)s") % {"n": n, "sku": label, "msg": _(SKU_FIELD_MESSAGES["weight_g"])})
        sku["weight_g"] = int(weight) if weight.isdigit() else 0
        sku["code"] = str(row.get("code") or "").strip() or None
        sku["barcode"] = str(row.get("barcode") or "").strip() or None
        skus.append(sku)
    if problems:
        raise _FormProblem(problems)
    return state, specs, skus


def _validation_messages(exc: ValidationError, skus: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        if len(loc) >= 2 and loc[0] == "skus" and loc[1].isdigit() and int(loc[1]) < len(skus):
            i = int(loc[1])
            label = " / ".join(str(v) for v in skus[i].get("spec_values", {}).values()) or _("默认规格")
            msg = _(SKU_FIELD_MESSAGES.get(loc[2] if len(loc) > 2 else "", "填写的内容有误"))
            out.append(_("第 %(n)s 行（%(sku)s）：%(msg)s") % {"n": i + 1, "sku": label, "msg": msg})
        else:
            out.append(_(PRODUCT_FIELD_MESSAGES.get(loc[0] if loc else "", "填写的内容有误")))
    return list(dict.fromkeys(out))


async def _save_product(request: Request, session: AsyncSession, me: StaffPrincipal, product_id: int | None) -> Response:
    form = await request.form()

    def text(name: str, limit: int) -> str:
        value = form.get(name)
        return value[:limit] if isinstance(value, str) else ""

    images = [v for v in form.getlist("images") if isinstance(v, str) and v.strip()][:20]
    values: dict[str, Any] = {"title": text("title", 300).strip(), "subtitle": text("subtitle", 600).strip(),
              "category_id": text("category_id", 20), "kind": text("kind", 20) or "physical",
              "insert_card_type": text("insert_card_type", 20), "sort": text("sort", 20).strip() or "0",
              "description_html": text("description_html", 200_000), "images": images}
    product = await service.get_product(session, me.scope, product_id) if product_id else None
    raw_matrix = text("matrix", 500_000)
    try:
        state, specs, skus = _matrix_from_form(raw_matrix)
    except _FormProblem as exc:
        try:
            kept = json.loads(raw_matrix or "{}")
            kept = kept if isinstance(kept, dict) and isinstance(kept.get("specs"), list) and isinstance(kept.get("skus"), list) else None
        except ValueError:
            kept = None
        return await _editor(request, session, me, product, values=values, matrix=kept, errors=exc.messages, status_code=422)
    kind = values["kind"] if values["kind"] in KINDS else "physical"
    body: dict[str, Any] = {
        "title": values["title"], "subtitle": values["subtitle"] or None, "category_id": to_int(values["category_id"]),
        "kind": kind, "insert_card_type": values["insert_card_type"] if kind == "insert_card" and values["insert_card_type"]
        in INSERT_CARD_TYPES else None, "specs": specs, "skus": skus, "description_html": values["description_html"],
        "images": images, "main_image": images[0] if images else None, "sort": values["sort"],
    }
    try:
        data: ProductIn | ProductUpdate = ProductUpdate.model_validate(body) if product else ProductIn.model_validate(body)
    except ValidationError as exc:
        return await _editor(request, session, me, product, values=values, matrix=state,
                             errors=_validation_messages(exc, skus), status_code=422)

    async def save() -> Product:
        if product is None:
            assert isinstance(data, ProductIn)
            return await service.create_product(session, me.scope, data)
        assert isinstance(data, ProductUpdate)
        return await service.update_product(session, me.scope, product.id, data)

    saved, err = await attempt(session, save)
    if err is not None or saved is None:
        assert err is not None
        if err.status == 404:
            raise err
        return await _editor(request, session, me, product, values=values, matrix=state, errors=[_sku_message(err, skus)],
                             status_code=err.status)
    resp = RedirectResponse(f"/admin/catalog/{saved.id}", status_code=303)
    return flash(resp, _("商品已保存") if product else _("商品已创建（草稿），上架后顾客才能看到"))


def _sku_message(err: DomainError, skus: list[dict[str, Any]]) -> str:
    field = err.fields[0]["field"] if err.fields else ""
    parts = field.split(".")
    if len(parts) >= 2 and parts[0] == "skus" and parts[1].isdigit() and int(parts[1]) < len(skus):
        i = int(parts[1])
        label = " / ".join(str(v) for v in skus[i].get("spec_values", {}).values()) or _("默认规格")
        return _("第 %(n)s 行（%(sku)s）：%(msg)s") % {"n": i + 1, "sku": label, "msg": err.message()}
    return err.message()


@router.post("/admin/catalog/new")
async def product_create(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("catalog.write")]) -> Response:
    return await _save_product(request, session, me, None)


@router.post("/admin/catalog/{product_id}")
async def product_update(product_id: PathId, request: Request, session: UoW,
                         me: Annotated[StaffPrincipal, require("catalog.write")]) -> Response:
    return await _save_product(request, session, me, product_id)


@router.post("/admin/catalog/{product_id}/images")
async def product_image_upload(product_id: PathId, request: Request, session: UoW,
                               me: Annotated[StaffPrincipal, require("catalog.write")],
                               file: Annotated[UploadFile | None, File()] = None) -> Response:
    """Upload without JavaScript: the image is stored and added to the product at once."""
    product = await service.get_product(session, me.scope, product_id)
    resp = RedirectResponse(f"/admin/catalog/{product.id}", status_code=303)
    if file is None:
        return flash(resp, _("请选择图片文件"), "error")
    data = await file.read(MAX_IMAGE_BYTES + 1)

    async def upload() -> None:
        if len(data) > MAX_IMAGE_BYTES:
            raise DomainError("file_too_large", f"图片不能超过 {MAX_IMAGE_BYTES // (1024 * 1024)} MB",
                              f"Images may be at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB", status=413)
        stored = await service.upload_image(session, runtime(request).media, me.scope, data, uploaded_by=me.staff_id)
        images = list(dict.fromkeys([u for u in [product.main_image, *(product.images or []), stored.url] if u]))
        await service.update_product(session, me.scope, product.id, ProductUpdate(images=images[:9]))

    _r, err = await attempt(session, upload)
    if err is not None:
        return flash(resp, err.message(), "error")
    return flash(resp, _("图片已上传"))


# -- storefront ------------------------------------------------------------------------------------------


def _store_page(request: Request, shopper: ShopperSession, template: str, context: dict[str, Any], *,
                active_tab: str = "category", status_code: int = 200) -> HTMLResponse:
    shop: Shop = shopper.shop
    customer = shopper.customer
    request.state.csrf_token = (shopper.csrf_token if customer and shopper.via == "cookie" else "") or ""
    ctx: dict[str, Any] = {
        "area": "store", "shop": shop, "tenant_name": shop.name, "tenant_code": shop.scope.code,
        "base": f"/m/{shop.scope.code}", "customer": customer, "active_tab": active_tab, "flash": take_flash(request),
    }
    ctx.update(context)
    resp = render(request, template, ctx, status_code=status_code)
    resp.headers["Cache-Control"] = "no-store"
    if ctx["flash"]:
        resp.delete_cookie(FLASH_COOKIE, path="/")
    return resp


STORE_SORTS = {"sort": "综合", "sales": "销量", "price_asc": "价格↑", "price_desc": "价格↓", "newest": "新品"}


@router.get("/m/{shop}/category")
@router.get("/m/{shop}/search")
async def store_category(
    request: Request, session: UoW, shopper: OptionalShopper,
    c: Annotated[str, Query(max_length=20)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    sort: Annotated[str, Query(max_length=20)] = "sort",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    scope = shopper.shop.scope
    q = "".join(ch for ch in q if ch.isprintable()).strip()
    sort = sort if sort in STORE_SORTS else "sort"
    tree = await service.store_category_tree(session, scope)
    by_id: dict[int, service.CategoryInfo] = {}

    def index(nodes: list[service.CategoryInfo], top: service.CategoryInfo | None) -> None:
        for n in nodes:
            by_id[n.id] = n
            tops[n.id] = top or n
            index(n.children, top or n)

    tops: dict[int, service.CategoryInfo] = {}
    index(tree, None)
    chosen = to_int(c)
    current = by_id.get(chosen) if chosen else None
    top = tops.get(current.id) if current else (tree[0] if tree and not q else None)
    focus = current or top
    cats = await service.category_and_descendants(session, scope, focus.id) if focus and not q else None
    query = ProductQuery(q=q or None, category_ids=cats, sort=sort, storefront=True)
    rows, total = await service.list_products(session, scope, query, offset=(page - 1) * STORE_PAGE_SIZE, limit=STORE_PAGE_SIZE)
    if not total and not q and not (await service.list_products(session, scope, ProductQuery(storefront=True), limit=1))[1]:
        # Nothing on sale yet: the shop says so honestly.
        return _store_page(request, shopper, "store/category.html", {})
    cards = await store_cards(session, scope, list(rows))
    base = f"/m/{scope.code}"
    return _store_page(request, shopper, "store/catalog/category.html", {
        "tree": tree, "top": top, "current": focus, "q": q, "sort": sort, "sorts": STORE_SORTS, "cards": cards,
        "total": total, "page": page, "has_more": page * STORE_PAGE_SIZE < total,
        "url": query_url(f"{base}/category", c=(focus.id if focus and not q else ""), q=q,
                         sort=sort if sort != "sort" else ""),
        "sort_url": query_url(f"{base}/category", c=(focus.id if focus and not q else ""), q=q),
    })


@router.get("/m/{shop}/p/{product_id}")
async def store_product(product_id: PathId, request: Request, session: UoW, shopper: OptionalShopper) -> Response:
    scope = shopper.shop.scope
    detail = await store_product_detail(session, scope, product_id)
    picker = {
        "specs": [{"name": s.name, "values": s.values} for s in detail.specs],
        "skus": [{"id": s.id, "values": s.spec_values, "price": s.price_fen, "market": s.market_price_fen,
                  "stock": s.stock, "available": s.available, "image": s.image_url} for s in detail.skus],
        "priceMin": detail.price_min_fen, "priceMax": detail.price_max_fen,
        "t": {"stock": _("库存 %(n)s 件"), "inStock": _("有货"), "soldOut": _("已售罄"), "choose": _("请选择 %(names)s"),
              "chosen": _("已选：%(text)s")},
    }
    return _store_page(request, shopper, "store/catalog/product.html", {
        "p": detail, "picker": picker, "kind_label": KIND_LABELS.get(detail.kind, ""), "gallery": detail.images,
    })


audit.describe(
    actions={
        "product.create": "新建商品", "product.update": "修改商品", "product.status": "商品上下架",
        "product.import": "导入商品", "category.create": "新建分类", "category.update": "修改分类",
        "category.delete": "删除分类", "media.upload": "上传图片",
    },
    objects={"product": "商品", "category": "商品分类", "media": "图片"},
)
