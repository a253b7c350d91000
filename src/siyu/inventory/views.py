"""Console pages of the inventory module (``/admin/inventory/...``): stock levels with receive,
adjust and low-stock thresholds; stock locations; the movement ledger; the low-stock list;
stocktakes.

Same conventions as ``staff/views.py``: plain forms carrying ``_csrf``, a 303 redirect with
a flash message after a successful post, the page again with field errors and a 4xx status
otherwise; service calls run in a savepoint (:func:`attempt`). Reading needs
``catalog.read``, every post ``catalog.write``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import StringConstraints, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.inventory import service
from siyu.inventory.models import StockLocation
from siyu.inventory.schemas import AdjustIn, LocationIn, LocationUpdate, ReceiveIn, StocktakeIn
from siyu.kit import audit
from siyu.kit.i18n import gettext as _
from siyu.kit.types import PathId
from siyu.kit.web import UoW
from siyu.staff.access import StaffPrincipal, require
from siyu.tenants import service as tenants_service
from siyu.web import i18n_inventory  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import (
    attempt,
    domain_field_errors,
    error_flash,
    field_errors,
    first_error,
    query_url,
    safe_next,
    to_int,
)
from siyu.web.page import console_page, flash

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
MOVEMENT_PAGE_SIZE = 30

#: One value of a repeated form field (``Form(max_length=...)`` on a list would cap the
#: number of rows, not the length of each value).
FormValue = Annotated[str, StringConstraints(max_length=30)]
Reader = Annotated[StaffPrincipal, require("catalog.read")]
Writer = Annotated[StaffPrincipal, require("catalog.write")]

LOCATION_KINDS = {"warehouse": "仓库", "store": "线下门店"}
LOCATION_STATUSES = {"active": "启用", "inactive": "停用"}
STOCK_FILTERS = {"in": "有货", "low": "低库存", "out": "缺货"}
REASONS = {"receive": "到货入库", "adjust": "调整", "stocktake": "盘点差异", "reserve": "订单预占", "release": "释放预占",
           "commit": "发货出库", "return": "退货入库"}
SOURCE_TYPES = {"manual": "手工录入", "reservation": "订单库存", "restock": "售后退货", "stocktake": "盘点单"}
STOCKTAKE_STATUSES = {"draft": "草稿", "applied": "已生效", "cancelled": "已取消"}

RECEIVE_FIELD_MESSAGES = {
    "sku_id": "请输入有效的 SKU 编号",
    "location_id": "请选择库存点",
    "qty": "数量需为 1–100000000 的整数",
    "note": "备注最多 200 字",
}
ADJUST_FIELD_MESSAGES = {
    "sku_id": "请输入有效的 SKU 编号",
    "location_id": "请选择库存点",
    "delta": "调整数量需为非零整数，如 -2 或 5",
    "reason": "请填写调整原因（最多 200 字）",
}
LOCATION_FIELD_MESSAGES = {
    "code": "编码需为 2–40 位小写字母、数字、_ 或 -，并以字母或数字开头",
    "name": "请填写名称（最多 100 字）",
    "kind": "类型无效",
    "store_id": "请选择门店",
    "priority": "优先级需为 0–10000 的整数",
    "status": "状态无效",
}
STOCKTAKE_FIELD_MESSAGES = {"location_id": "请选择库存点", "note": "备注最多 200 字"}


def _tabs(active: str) -> list[dict[str, Any]]:
    items = [("levels", "库存", "/admin/inventory"), ("movements", "出入库流水", "/admin/inventory/movements"),
             ("low", "低库存预警", "/admin/inventory/low-stock"), ("stocktakes", "盘点", "/admin/inventory/stocktakes"),
             ("locations", "仓库与门店", "/admin/inventory/locations")]
    return [{"key": k, "title": t, "href": h, "active": k == active} for k, t, h in items]


def _location_options(locations: Sequence[StockLocation]) -> list[tuple[str, str]]:
    return [(str(loc.id), loc.name if loc.status == "active" else _("%(name)s（停用）") % {"name": loc.name})
            for loc in locations]


async def _labels(session: AsyncSession, me: StaffPrincipal, sku_ids: Sequence[int]) -> dict[int, str]:
    return await service.sku_labels(session, me.scope, sku_ids)


# -- stock levels ----------------------------------------------------------------------------------


async def _levels_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, sku: str = "", location: str = "",
                       stock: str = "", page: int = 1, open_form: str = "", values: dict[str, Any] | None = None,
                       errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    sku_id, location_id = to_int(sku), to_int(location)
    stock = stock if stock in STOCK_FILTERS else ""
    rows, total = await service.search_levels(session, me.scope, sku_id=sku_id, location_id=location_id, stock=stock or None,
                                              offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    locations = await service.list_locations(session, me.scope)
    labels = await _labels(session, me, [r.sku_id for r in rows])
    ctx: dict[str, Any] = {
        "title": _("库存管理"), "tabs": _tabs("levels"), "items": rows, "labels": labels, "total": total, "page": page,
        "page_size": PAGE_SIZE, "sku": sku_id or "", "location": location_id or "", "stock": stock,
        "filtered": bool(sku_id or location_id or stock),
        "base_url": query_url("/admin/inventory", sku=sku_id or "", location=location_id or "", stock=stock),
        "summary": await service.stock_summary(session, me.scope), "stock_filters": STOCK_FILTERS,
        "location_options": _location_options(locations), "has_locations": bool(locations),
        "can_write": me.can("catalog.write"), "open_form": open_form, "values": values or {}, "errors": errors or {},
        "back": request.url.path + ("?" + request.url.query if request.url.query else ""),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/inventory/levels.html", ctx, status_code=status_code)


@router.get("/admin/inventory")
async def levels(request: Request, session: UoW, me: Reader,
                 sku: Annotated[str, Query(max_length=20)] = "",
                 location: Annotated[str, Query(max_length=20)] = "",
                 stock: Annotated[str, Query(max_length=10)] = "",
                 page: Annotated[int, Query(ge=1, le=100_000)] = 1,
                 form: Annotated[str, Query(alias="open", max_length=10)] = "") -> Response:
    """``?open=receive`` or ``?open=adjust`` opens that form, prefilled with ``sku`` and ``location``."""
    form = form if form in ("receive", "adjust") and me.can("catalog.write") else ""
    return await _levels_page(request, session, me, sku=sku, location=location, stock=stock, page=page, open_form=form)


def _back(value: str) -> str:
    """Where a row action returns to: an inventory page of this console, nothing else."""
    target = safe_next(value, "/admin/inventory")
    return target if target.startswith("/admin/inventory") else "/admin/inventory"


@router.post("/admin/inventory/receive")
async def receive(request: Request, session: UoW, me: Writer,
                  sku_id: Annotated[str, Form(max_length=30)] = "",
                  location_id: Annotated[str, Form(max_length=30)] = "",
                  qty: Annotated[str, Form(max_length=30)] = "",
                  note: Annotated[str, Form(max_length=400)] = "") -> Response:
    values = {"sku_id": sku_id.strip(), "location_id": location_id.strip(), "qty": qty.strip(), "note": note.strip()}
    try:
        data = ReceiveIn(sku_id=values["sku_id"] or None, location_id=values["location_id"] or None,
                         qty=values["qty"] or None, note=values["note"] or None)
    except ValidationError as exc:
        errors = field_errors(exc, RECEIVE_FIELD_MESSAGES)
        return await _levels_page(request, session, me, open_form="receive", values=values, errors=errors, status_code=422,
                                  message=first_error(errors))
    mv, err = await attempt(session, lambda: service.receive(session, me.scope, data.sku_id, data.location_id, data.qty, data.note))
    if err is not None or mv is None:
        assert err is not None
        if err.status == 404 and err.code == "location_not_found":
            err.fields = [{"field": "location_id", "message": "not found"}]
        return await _levels_page(request, session, me, open_form="receive", values=values, status_code=err.status,
                                  errors=domain_field_errors(err, RECEIVE_FIELD_MESSAGES), message=err.message())
    return flash(RedirectResponse(f"/admin/inventory?sku={mv.sku_id}", status_code=303),
                 _("已入库 %(qty)s 件，在库 %(on_hand)s 件") % {"qty": data.qty, "on_hand": mv.on_hand_after})


@router.post("/admin/inventory/adjust")
async def adjust(request: Request, session: UoW, me: Writer,
                 sku_id: Annotated[str, Form(max_length=30)] = "",
                 location_id: Annotated[str, Form(max_length=30)] = "",
                 delta: Annotated[str, Form(max_length=30)] = "",
                 reason: Annotated[str, Form(max_length=400)] = "") -> Response:
    values = {"sku_id": sku_id.strip(), "location_id": location_id.strip(), "delta": delta.strip(), "reason": reason.strip()}
    try:
        data = AdjustIn(sku_id=values["sku_id"] or None, location_id=values["location_id"] or None,
                        delta=values["delta"].replace("＋", "+").replace("－", "-") or None,
                        reason=values["reason"])
    except ValidationError as exc:
        errors = field_errors(exc, ADJUST_FIELD_MESSAGES)
        return await _levels_page(request, session, me, open_form="adjust", values=values, errors=errors, status_code=422,
                                  message=first_error(errors))
    mv, err = await attempt(session, lambda: service.adjust(session, me.scope, data.sku_id, data.location_id, data.delta,
                                                            data.reason))
    if err is not None or mv is None:
        assert err is not None
        if err.code == "insufficient_stock":
            err.fields = [{"field": "delta", "message": "insufficient"}]
        return await _levels_page(request, session, me, open_form="adjust", values=values, status_code=err.status,
                                  errors=domain_field_errors(err, ADJUST_FIELD_MESSAGES), message=err.message())
    return flash(RedirectResponse(f"/admin/inventory?sku={mv.sku_id}", status_code=303),
                 _("已调整库存 %(delta)s 件，在库 %(on_hand)s 件") % {"delta": f"{data.delta:+d}", "on_hand": mv.on_hand_after})


@router.post("/admin/inventory/levels/{level_id}/threshold")
async def set_threshold(level_id: PathId, session: UoW, me: Writer,
                        threshold: Annotated[str, Form(max_length=30)] = "",
                        back: Annotated[str, Form(max_length=300)] = "") -> Response:
    target = _back(back)
    raw = threshold.strip()
    value: int | None = None
    if raw:
        if not raw.isdigit() or int(raw) > 100_000_000:
            return flash(RedirectResponse(target, status_code=303), _("预警值需为 0–100000000 的整数，留空表示不预警"), "error")
        value = int(raw)
    _level, err = await attempt(session, lambda: service.set_level_threshold(session, me.scope, level_id, value))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(RedirectResponse(target, status_code=303), err.message(), "error")
    msg = _("已设置低库存预警值为 %(n)s") % {"n": value} if value is not None else _("已关闭该库存的低库存预警")
    return flash(RedirectResponse(target, status_code=303), msg)


# -- low stock -------------------------------------------------------------------------------------


@router.get("/admin/inventory/low-stock")
async def low_stock(request: Request, session: UoW, me: Reader,
                    location: Annotated[str, Query(max_length=20)] = "",
                    page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    location_id = to_int(location)
    rows, total = await service.search_levels(session, me.scope, location_id=location_id, stock="low",
                                              offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    locations = await service.list_locations(session, me.scope)
    return console_page(request, me, "console/inventory/low_stock.html", {
        "title": _("低库存预警"), "tabs": _tabs("low"), "items": rows, "labels": await _labels(session, me, [r.sku_id for r in rows]),
        "total": total, "page": page, "page_size": PAGE_SIZE, "location": location_id or "",
        "location_options": _location_options(locations), "base_url": query_url("/admin/inventory/low-stock", location=location_id or ""),
        "can_write": me.can("catalog.write"),
    })


# -- movements -------------------------------------------------------------------------------------


def _day_start(value: str, tz: str) -> datetime | None:
    try:
        d = date.fromisoformat(value)
    except ValueError:
        return None
    return datetime.combine(d, time.min, tzinfo=ZoneInfo(tz))


@router.get("/admin/inventory/movements")
async def movements(request: Request, session: UoW, me: Reader,
                    sku: Annotated[str, Query(max_length=20)] = "",
                    location: Annotated[str, Query(max_length=20)] = "",
                    reason: Annotated[str, Query(max_length=20)] = "",
                    source: Annotated[str, Query(max_length=64)] = "",
                    date_from: Annotated[str, Query(max_length=10)] = "",
                    date_to: Annotated[str, Query(max_length=10)] = "",
                    page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    sku_id, location_id = to_int(sku), to_int(location)
    reason = reason if reason in REASONS else ""
    source = source.strip()
    if source and not all(ch.isalnum() or ch in "_.:@/#-" for ch in source):
        source = ""
    start = _day_start(date_from, me.scope.timezone) if date_from else None
    end = _day_start(date_to, me.scope.timezone) if date_to else None
    message = ""
    if (date_from and start is None) or (date_to and end is None):
        message = _("日期格式不正确，请使用 年-月-日")
    rows, total = await service.list_movements(session, me.scope, sku_id=sku_id, location_id=location_id,
                                               reason=reason or None, source=source or None, created_from=start,
                                               created_to=end + timedelta(days=1) if end else None,
                                               offset=(page - 1) * MOVEMENT_PAGE_SIZE, limit=MOVEMENT_PAGE_SIZE)
    locations = await service.list_locations(session, me.scope)
    names = {loc.id: loc.name for loc in locations}
    ctx: dict[str, Any] = {
        "title": _("出入库流水"), "tabs": _tabs("movements"), "items": rows, "total": total, "page": page,
        "page_size": MOVEMENT_PAGE_SIZE, "labels": await _labels(session, me, [m.sku_id for m in rows]),
        "location_names": names, "location_options": _location_options(locations), "reasons": REASONS,
        "source_types": SOURCE_TYPES, "sku": sku_id or "", "location": location_id or "", "reason": reason,
        "source": source, "date_from": date_from if start else "", "date_to": date_to if end else "",
        "filtered": bool(sku_id or location_id or reason or source or start or end),
        "base_url": query_url("/admin/inventory/movements", sku=sku_id or "", location=location_id or "", reason=reason,
                              source=source, date_from=date_from if start else "", date_to=date_to if end else ""),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/inventory/movements.html", ctx)


# -- locations -------------------------------------------------------------------------------------


async def _store_options(session: AsyncSession, me: StaffPrincipal) -> list[tuple[str, str]]:
    stores, _total = await tenants_service.list_stores(session, me.scope, None, 0, 200)
    return [(str(s.id), s.name) for s in stores]


async def _locations_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, values: dict[str, Any] | None = None,
                          errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    locations = await service.list_locations(session, me.scope)
    stores = await _store_options(session, me)
    ctx: dict[str, Any] = {
        "title": _("仓库与门店库存点"), "tabs": _tabs("locations"), "items": locations, "kinds": LOCATION_KINDS,
        "statuses": LOCATION_STATUSES, "store_names": dict(stores), "store_options": stores,
        "values": values or {"kind": "warehouse", "priority": "100", "status": "active"}, "errors": errors or {},
        "open_form": bool(errors or message), "can_write": me.can("catalog.write"),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/inventory/locations.html", ctx, status_code=status_code)


@router.get("/admin/inventory/locations")
async def locations(request: Request, session: UoW, me: Reader) -> Response:
    return await _locations_page(request, session, me)


@router.post("/admin/inventory/locations")
async def location_create(request: Request, session: UoW, me: Writer,
                          code: Annotated[str, Form(max_length=100)] = "",
                          name: Annotated[str, Form(max_length=300)] = "",
                          kind: Annotated[str, Form(max_length=20)] = "warehouse",
                          store_id: Annotated[str, Form(max_length=30)] = "",
                          priority: Annotated[str, Form(max_length=30)] = "",
                          status: Annotated[str, Form(max_length=20)] = "active") -> Response:
    values = {"code": code.strip(), "name": name.strip(), "kind": kind, "store_id": store_id.strip(),
              "priority": priority.strip(), "status": status}
    try:
        data = LocationIn(code=values["code"], name=values["name"], kind=kind,
                          store_id=(values["store_id"] or None) if kind == "store" else None,
                          priority=values["priority"] or 100, status=status)
    except ValidationError as exc:
        errors = field_errors(exc, LOCATION_FIELD_MESSAGES)
        return await _locations_page(request, session, me, values=values, errors=errors, status_code=422,
                                     message=first_error(errors))
    loc, err = await attempt(session, lambda: service.create_location(session, me.scope, data))
    if err is not None or loc is None:
        assert err is not None
        return await _locations_page(request, session, me, values=values, status_code=err.status, message=err.message(),
                                     errors=domain_field_errors(err, LOCATION_FIELD_MESSAGES))
    return flash(RedirectResponse("/admin/inventory/locations", status_code=303), _("已新建库存点 %(name)s") % {"name": loc.name})


async def _location_page(request: Request, session: AsyncSession, me: StaffPrincipal, location_id: int, *,
                         values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                         status_code: int = 200, message: str = "") -> HTMLResponse:
    loc = await service.get_location(session, me.scope, location_id)
    current = {"name": loc.name, "priority": str(loc.priority), "status": loc.status}
    current.update(values or {})
    rows, total = await service.search_levels(session, me.scope, location_id=loc.id, limit=50)
    stores = dict(await _store_options(session, me))
    ctx: dict[str, Any] = {
        "title": loc.name, "tabs": _tabs("locations"), "loc": loc, "values": current, "errors": errors or {},
        "kinds": LOCATION_KINDS, "statuses": LOCATION_STATUSES, "store_name": stores.get(str(loc.store_id), ""),
        "levels": rows, "levels_total": total, "labels": await _labels(session, me, [r.sku_id for r in rows]),
        "can_write": me.can("catalog.write"),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/inventory/location.html", ctx, status_code=status_code)


@router.get("/admin/inventory/locations/{location_id}")
async def location_edit(location_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    return await _location_page(request, session, me, location_id)


@router.post("/admin/inventory/locations/{location_id}")
async def location_update(location_id: PathId, request: Request, session: UoW, me: Writer,
                          name: Annotated[str, Form(max_length=300)] = "",
                          priority: Annotated[str, Form(max_length=30)] = "",
                          status: Annotated[str, Form(max_length=20)] = "") -> Response:
    await service.get_location(session, me.scope, location_id)  # another tenant's id is a 404 page
    values = {"name": name.strip(), "priority": priority.strip(), "status": status}
    try:
        data = LocationUpdate(name=values["name"], priority=values["priority"] or None,
                              status=status or None)
    except ValidationError as exc:
        errors = field_errors(exc, LOCATION_FIELD_MESSAGES)
        return await _location_page(request, session, me, location_id, values=values, errors=errors, status_code=422,
                                    message=first_error(errors))
    loc, err = await attempt(session, lambda: service.update_location(session, me.scope, location_id, data))
    if err is not None or loc is None:
        assert err is not None
        return await _location_page(request, session, me, location_id, values=values, status_code=err.status,
                                    message=err.message(), errors=domain_field_errors(err, LOCATION_FIELD_MESSAGES))
    return flash(RedirectResponse(f"/admin/inventory/locations/{location_id}", status_code=303),
                 _("已保存库存点 %(name)s") % {"name": loc.name})


# -- stocktakes ------------------------------------------------------------------------------------


async def _stocktakes_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, status: str = "", page: int = 1,
                           values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                           status_code: int = 200, message: str = "") -> HTMLResponse:
    status = status if status in STOCKTAKE_STATUSES else ""
    rows, total = await service.list_stocktakes(session, me.scope, status=status or None, offset=(page - 1) * PAGE_SIZE,
                                                limit=PAGE_SIZE)
    locations = await service.list_locations(session, me.scope)
    ctx: dict[str, Any] = {
        "title": _("库存盘点"), "tabs": _tabs("stocktakes"), "items": rows, "total": total, "page": page,
        "page_size": PAGE_SIZE, "status": status, "statuses": STOCKTAKE_STATUSES,
        "location_names": {loc.id: loc.name for loc in locations}, "location_options": _location_options(locations),
        "base_url": query_url("/admin/inventory/stocktakes", status=status), "values": values or {},
        "errors": errors or {}, "open_form": bool(errors or message), "can_write": me.can("catalog.write"),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/inventory/stocktakes.html", ctx, status_code=status_code)


@router.get("/admin/inventory/stocktakes")
async def stocktakes(request: Request, session: UoW, me: Reader,
                     status: Annotated[str, Query(max_length=20)] = "",
                     page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    return await _stocktakes_page(request, session, me, status=status, page=page)


@router.post("/admin/inventory/stocktakes")
async def stocktake_create(request: Request, session: UoW, me: Writer,
                           location_id: Annotated[str, Form(max_length=30)] = "",
                           note: Annotated[str, Form(max_length=400)] = "") -> Response:
    values = {"location_id": location_id.strip(), "note": note.strip()}
    try:
        data = StocktakeIn(location_id=values["location_id"] or None, note=values["note"] or None)
    except ValidationError as exc:
        errors = field_errors(exc, STOCKTAKE_FIELD_MESSAGES)
        return await _stocktakes_page(request, session, me, values=values, errors=errors, status_code=422,
                                      message=first_error(errors))
    st, err = await attempt(session, lambda: service.create_stocktake(session, me.scope, data.location_id, data.note))
    if err is not None or st is None:
        assert err is not None
        errors = {"location_id": err.message()} if err.code == "location_not_found" else {}
        return await _stocktakes_page(request, session, me, values=values, errors=errors, status_code=err.status,
                                      message=err.message())
    return flash(RedirectResponse(f"/admin/inventory/stocktakes/{st.id}", status_code=303),
                 _("已创建盘点单，请录入实盘数量"))


async def _stocktake_page(request: Request, session: AsyncSession, me: StaffPrincipal, stocktake_id: int, *,
                          entered: dict[int, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    st, lines = await service.get_stocktake(session, me.scope, stocktake_id)
    loc = await service.get_location(session, me.scope, st.location_id)
    counted = {ln.sku_id: ln for ln in lines}
    rows: list[dict[str, Any]] = []
    if st.status == "draft":
        on_hand = {lv.sku_id: lv for lv in (await service.search_levels(session, me.scope, location_id=loc.id, limit=500))[0]}
        for sku_id in sorted(set(on_hand) | set(counted) | set(entered or {})):
            lv = on_hand.get(sku_id)
            value = (entered or {}).get(sku_id, str(counted[sku_id].counted) if sku_id in counted else "")
            rows.append({"sku_id": sku_id, "on_hand": lv.on_hand if lv else 0, "reserved": lv.reserved if lv else 0,
                         "value": value, "counted": sku_id in counted})
    else:
        rows = [{"sku_id": ln.sku_id, "counted_n": ln.counted, "system": ln.system_on_hand, "delta": ln.delta} for ln in lines]
    ctx: dict[str, Any] = {
        "title": _("盘点单 #%(id)s") % {"id": st.id}, "tabs": _tabs("stocktakes"), "st": st, "loc": loc, "rows": rows,
        "labels": await _labels(session, me, [r["sku_id"] for r in rows]), "statuses": STOCKTAKE_STATUSES,
        "counted_total": len(lines), "can_write": me.can("catalog.write"), "blank_rows": range(3),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/inventory/stocktake.html", ctx, status_code=status_code)


@router.get("/admin/inventory/stocktakes/{stocktake_id}")
async def stocktake_detail(stocktake_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    return await _stocktake_page(request, session, me, stocktake_id)


@router.post("/admin/inventory/stocktakes/{stocktake_id}/counts")
async def stocktake_counts(stocktake_id: PathId, request: Request, session: UoW, me: Writer,
                           sku_id: Annotated[list[FormValue] | None, Form()] = None,
                           counted: Annotated[list[FormValue] | None, Form()] = None) -> Response:
    await service.get_stocktake(session, me.scope, stocktake_id)  # another tenant's id is a 404 page
    skus, values = sku_id or [], counted or []
    if len(skus) != len(values) or len(skus) > 500:
        return await _stocktake_page(request, session, me, stocktake_id, status_code=422, message=_("提交的内容有误"))
    counts: dict[int, int | None] = {}
    entered: dict[int, str] = {}
    for raw_sku, raw_count in zip(skus, values, strict=True):
        raw_sku, raw_count = raw_sku.strip(), raw_count.strip()
        if not raw_sku and not raw_count:
            continue
        sid = to_int(raw_sku)
        if sid is None:
            return await _stocktake_page(request, session, me, stocktake_id, entered=entered, status_code=422,
                                         message=_("SKU 编号无效：%(v)s") % {"v": raw_sku[:30] or "—"})
        entered[sid] = raw_count
        if raw_count == "":
            counts[sid] = None
        elif raw_count.isdigit() and int(raw_count) <= 100_000_000:
            counts[sid] = int(raw_count)
        else:
            return await _stocktake_page(request, session, me, stocktake_id, entered=entered, status_code=422,
                                         message=_("实盘数量需为 0–100000000 的整数（SKU %(sku)s）") % {"sku": sid})
    if not counts:
        return flash(RedirectResponse(f"/admin/inventory/stocktakes/{stocktake_id}", status_code=303),
                     _("没有需要保存的盘点数"), "error")
    _st, err = await attempt(session, lambda: service.record_counts(session, me.scope, stocktake_id, list(counts.items())))
    if err is not None:
        return await _stocktake_page(request, session, me, stocktake_id, entered=entered, status_code=err.status,
                                     message=err.message())
    return flash(RedirectResponse(f"/admin/inventory/stocktakes/{stocktake_id}", status_code=303), _("已保存盘点数"))


@router.post("/admin/inventory/stocktakes/{stocktake_id}/apply")
async def stocktake_apply(stocktake_id: PathId, session: UoW, me: Writer) -> Response:
    await service.get_stocktake(session, me.scope, stocktake_id)
    st, err = await attempt(session, lambda: service.apply_stocktake(session, me.scope, stocktake_id))
    target = RedirectResponse(f"/admin/inventory/stocktakes/{stocktake_id}", status_code=303)
    if err is not None or st is None:
        assert err is not None
        return flash(target, err.message(), "error")
    return flash(target, _("盘点已生效，差异已记入出入库流水"))


@router.post("/admin/inventory/stocktakes/{stocktake_id}/cancel")
async def stocktake_cancel(stocktake_id: PathId, session: UoW, me: Writer) -> Response:
    await service.get_stocktake(session, me.scope, stocktake_id)
    st, err = await attempt(session, lambda: service.cancel_stocktake(session, me.scope, stocktake_id))
    target = RedirectResponse(f"/admin/inventory/stocktakes/{stocktake_id}", status_code=303)
    if err is not None or st is None:
        assert err is not None
        return flash(target, err.message(), "error")
    return flash(target, _("已取消盘点单"))


audit.describe(
    actions={
        "inventory.receive": "入库", "inventory.adjust": "库存调整", "inventory.threshold": "设置库存预警",
        "inventory.location.create": "新建库存地点", "inventory.location.update": "修改库存地点",
        "inventory.stocktake.create": "新建盘点", "inventory.stocktake.count": "录入盘点数",
        "inventory.stocktake.apply": "应用盘点", "inventory.stocktake.cancel": "取消盘点",
    },
    objects={"stock_level": "库存", "stock_location": "库存地点", "stocktake": "盘点"},
)
