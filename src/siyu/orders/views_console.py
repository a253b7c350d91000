"""Console pages of the orders module (``/admin/orders/...``): the order list with status tabs,
filters, CSV export and bulk shipping; an order's detail with its shipping forms, cancel,
delivered, seller note and staff refund; the after-sales queue and a case's detail with
approve, reject, receive-the-return and retry-refund; the order settings.

Same conventions as the catalog and inventory pages: plain forms carrying ``_csrf``, a 303
redirect with a flash message after a successful post, the page again with its error and a
4xx status otherwise; every service call runs in a savepoint (:func:`attempt`). The pages
only read and call :mod:`siyu.orders.service`, :mod:`siyu.orders.fulfilment` and
:mod:`siyu.orders.aftersales`; those audit every staff write. Reading needs ``orders.read``;
shipping, cancelling, delivered and notes ``orders.write``; refunds and cases
``aftersales.manage``; saving settings ``settings.write``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.customers import service as customers_service
from siyu.inventory import service as inventory_service
from siyu.kit import clock
from siyu.kit.context import current_language
from siyu.kit.errors import DomainError
from siyu.kit.i18n import gettext as _
from siyu.kit.security import mask_phone
from siyu.kit.types import PathId, no_control
from siyu.kit.web import UoW
from siyu.orders import aftersales, fulfilment, service
from siyu.orders.models import AfterSale, Order, OrderLine, OrderTransition
from siyu.orders.states import CASE_STATUS_ZH, ORDER_STATUS_ZH
from siyu.payments import service as payments_service
from siyu.staff.access import StaffPrincipal, require
from siyu.web import i18n_orders_console  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import attempt, error_flash, query_url
from siyu.web.page import console_page, flash
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
#: A bulk-shipping file larger than this is refused before it is parsed.
MAX_BULK_BYTES = 2 * 1024 * 1024

#: One value of a repeated form field (a length limit on the list would cap the rows).
FormValue = Annotated[str, StringConstraints(max_length=30)]
Reader = Annotated[StaffPrincipal, require("orders.read")]
Writer = Annotated[StaffPrincipal, require("orders.write")]
CaseManager = Annotated[StaffPrincipal, require("aftersales.manage")]
SettingsWriter = Annotated[StaffPrincipal, require("settings.write")]

ORDER_TABS = ("pending_payment", "paid", "partially_shipped", "shipped", "delivered", "completed", "cancelled", "closed")
STATUS_COLORS = {"pending_payment": "orange", "paid": "blue", "partially_shipped": "teal", "shipped": "teal",
                 "delivered": "green", "completed": "green", "cancelled": "gray", "closed": "gray"}
CASE_TABS = ("requested", "approved", "returning", "refunding", "refunded", "rejected", "withdrawn")
CASE_COLORS = {"requested": "orange", "approved": "blue", "returning": "teal", "refunding": "blue", "refunded": "green",
               "rejected": "red", "withdrawn": "gray"}
PART_STATUSES = {"pending": "待发货", "partially_shipped": "部分发货", "shipped": "已发货", "cancelled": "已取消"}
SHIPMENT_STATUSES = {"in_transit": "运输中", "delivered": "已送达"}
PAYMENT_STATUSES = {"pending": "待支付", "succeeded": "支付成功", "failed": "支付失败", "closed": "已关闭"}
REFUND_STATUSES = {"pending": "退款中", "succeeded": "退款成功", "failed": "退款失败"}
CANCEL_REASONS = {"customer": "顾客要求取消", "stock": "商品缺货", "address": "收货信息有误", "duplicate": "重复下单",
                  "other": "其他"}

#: Timeline titles by action, for order entries and for after-sales entries; an action not
#: listed reads as the status it moved to.
ORDER_EVENTS = {
    "place": "顾客下单", "pay": "支付成功", "cancel": "订单取消", "deliver": "已送达", "confirm": "确认收货",
    "auto_confirm": "超时自动确认收货", "complete": "交易完成", "refund": "全额退款，订单关闭",
    "payment_refund": "重复或迟到的支付已原路退回",
}
CASE_EVENTS = {
    "open": "申请售后", "approve": "同意售后", "reject": "拒绝售后", "withdraw": "撤销售后", "submit_return": "顾客寄回商品",
    "receive_return": "确认收到退货", "refunded": "退款成功", "refund_failed": "退款失败", "retry_refund": "重新发起退款",
}
ACTORS = {"customer": "顾客", "staff": "员工", "system": "系统", "gateway": "支付渠道", "token": "API 令牌",
          "platform": "平台运营"}


def _refund_reasons() -> list[str]:
    """Every reason a staff refund may give, numbered in the form (the service takes the text)."""
    return list(dict.fromkeys(aftersales.reasons("refund_only", staff=True) + aftersales.reasons("return_refund", staff=True)))


# -- helpers -------------------------------------------------------------------------------------------


def _text(value: str, limit: int = 100) -> str:
    """A filter typed into a search box: printable, trimmed, at most ``limit`` characters."""
    return "".join(ch for ch in value if ch.isprintable()).strip()[:limit]


def _digits(value: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts ``²``, which ``int`` refuses)."""
    return value.isascii() and value.isdigit()


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def _english() -> bool:
    return current_language().startswith("en")


def _carriers() -> list[tuple[str, str]]:
    return [(c.code, c.name_en if _english() else c.name) for c in fulfilment.CARRIERS]


def _carrier_name(code: str, fallback: str) -> str:
    c = fulfilment.carrier_for(code)
    if c is None:
        return fallback
    return c.name_en if _english() else c.name


def _kinds() -> dict[str, str]:
    return dict(aftersales.KIND_ZH)


def _back_to(order_id: int, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/admin/orders/{order_id}{anchor}", status_code=303)


def _actor(t: Any) -> str:
    label = _(ACTORS.get(t.actor_type, t.actor_type))
    if t.actor_type in ("staff", "token", "platform") and t.actor_name:
        return f"{label} · {t.actor_name}"
    return label


def _summary(lines: Sequence[OrderLine]) -> tuple[str, str | None]:
    if not lines:
        return "—", None
    first = lines[0]
    title = first.title + (f" · {first.spec_text}" if first.spec_text else "")
    if len(lines) > 1:
        title = _("%(title)s 等 %(n)s 种商品") % {"title": title, "n": len(lines)}
    return title, next((ln.image for ln in lines if ln.image), None)


def _lines_param(line_ids: list[str] | None, qtys: list[str] | None) -> tuple[list[tuple[int, int]], dict[int, str], str]:
    """Paired ``line_id`` / ``qty`` fields → ([(line_id, qty) with qty > 0], what was typed, error)."""
    ids, values = line_ids or [], qtys or []
    typed: dict[int, str] = {}
    if len(ids) != len(values) or len(ids) > 200:
        return [], typed, _("提交的内容有误")
    out: list[tuple[int, int]] = []
    for raw_id, raw_qty in zip(ids, values, strict=True):
        raw_id, raw_qty = raw_id.strip(), raw_qty.strip()
        if not _digits(raw_id) or not 0 < int(raw_id) < 2**63:
            return [], typed, _("提交的内容有误")
        typed[int(raw_id)] = raw_qty
        if raw_qty == "":
            continue
        if not _digits(raw_qty) or len(raw_qty) > 6 or int(raw_qty) > 100_000:
            return [], typed, _("数量需为 0–100000 的整数")
        if int(raw_qty) > 0:
            out.append((int(raw_id), int(raw_qty)))
    return out, typed, ""


# -- order list ----------------------------------------------------------------------------------------


def _filters(status: str, no: str, customer: str, product: str, date_from: str, date_to: str) -> tuple[
        service.OrderFilters, dict[str, str]]:
    status = status if status in ORDER_TABS else ""
    d_from, d_to = _day(date_from), _day(date_to)
    params = {"no": _text(no, 24), "customer": _text(customer), "product": _text(product),
              "date_from": d_from.isoformat() if d_from else "", "date_to": d_to.isoformat() if d_to else ""}
    f = service.OrderFilters(status=status or None, created_from=d_from, created_to=d_to,
                             customer=params["customer"] or None, order_no=params["no"] or None,
                             product=params["product"] or None)
    return f, params


@router.get("/admin/orders")
async def order_list(request: Request, session: UoW, me: Reader,
                     status: Annotated[str, Query(max_length=20)] = "",
                     no: Annotated[str, Query(max_length=40)] = "",
                     customer: Annotated[str, Query(max_length=100)] = "",
                     product: Annotated[str, Query(max_length=100)] = "",
                     date_from: Annotated[str, Query(max_length=10)] = "",
                     date_to: Annotated[str, Query(max_length=10)] = "",
                     page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    filters, params = _filters(status, no, customer, product, date_from, date_to)
    status = filters.status or ""
    rows, total = await service.list_orders(session, me.scope, filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,
                                            with_customers=True)
    counts: dict[str, int] = {}
    for code in ("", *ORDER_TABS):
        counts[code] = total if code == status else (await service.list_orders(
            session, me.scope, service.OrderFilters(**{**_as_dict(filters), "status": code or None}), limit=0))[1]
    items = []
    for row in rows:
        summary, thumb = _summary(row.lines)
        items.append({"o": row.order, "customer": row.customer_name or f"#{row.order.customer_id}",
                      "phone": mask_phone(row.customer_phone), "summary": summary, "thumb": thumb})
    return console_page(request, me, "console/orders/list.html", {
        "title": _("订单管理"), "items": items, "total": total, "page": page, "page_size": PAGE_SIZE,
        "pages": max(1, math.ceil(total / PAGE_SIZE)), "base_url": query_url("/admin/orders", status=status, **params),
        "tab_url": query_url("/admin/orders", **params), "export_url": query_url("/admin/orders/export.csv", status=status,
                                                                                **params).rstrip("?&"),
        "counts": counts, "tabs": [(code, ORDER_STATUS_ZH[code]) for code in ORDER_TABS], "status": status, **params,
        "filtered": any(params.values()), "statuses": ORDER_STATUS_ZH, "status_colors": STATUS_COLORS,
        "can_write": me.can("orders.write"),
    })


def _as_dict(f: service.OrderFilters) -> dict[str, Any]:
    return {k: getattr(f, k) for k in ("status", "statuses", "created_from", "created_to", "customer_id", "customer",
                                       "order_no", "product")}


@router.get("/admin/orders/export.csv")
async def order_export(session: UoW, me: Reader,
                       status: Annotated[str, Query(max_length=20)] = "",
                       no: Annotated[str, Query(max_length=40)] = "",
                       customer: Annotated[str, Query(max_length=100)] = "",
                       product: Annotated[str, Query(max_length=100)] = "",
                       date_from: Annotated[str, Query(max_length=10)] = "",
                       date_to: Annotated[str, Query(max_length=10)] = "") -> Response:
    filters, _params = _filters(status, no, customer, product, date_from, date_to)
    body = await service.export_csv(session, me.scope, filters)
    day = clock.now().strftime("%Y%m%d")
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="orders-{day}.csv"', "Cache-Control": "no-store"})


# -- bulk shipping -------------------------------------------------------------------------------------


def _bulk_page(request: Request, me: StaffPrincipal, *, report: dict[str, Any] | None = None, message: str = "",
               status_code: int = 200) -> HTMLResponse:
    ctx: dict[str, Any] = {"title": _("批量发货"), "report": report, "carriers": _carriers(),
                           "max_rows": fulfilment.MAX_BULK_ROWS}
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/orders/bulk_ship.html", ctx, status_code=status_code)


@router.get("/admin/orders/bulk-ship")
async def bulk_ship_form(request: Request, me: Writer) -> Response:
    return _bulk_page(request, me)


@router.get("/admin/orders/bulk-ship/template.csv")
async def bulk_ship_template(me: Writer) -> Response:
    header = "order_no,carrier,tracking_no" if _english() else "订单号,物流公司,运单号"
    body = f"\ufeff{header}\r\n"
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="bulk-ship.csv"', "Cache-Control": "no-store"})


@router.post("/admin/orders/bulk-ship")
async def bulk_ship(request: Request, session: UoW, me: Writer,
                    file: Annotated[UploadFile | None, File()] = None) -> Response:
    if file is None:
        return _bulk_page(request, me, message=_("请选择要上传的 CSV 文件"), status_code=422)
    data = await file.read(MAX_BULK_BYTES + 1)
    if len(data) > MAX_BULK_BYTES:
        return _bulk_page(request, me, message=_("文件不能超过 2 MB"), status_code=413)
    result, err = await attempt(session, lambda: fulfilment.bulk_ship_csv(session, me.scope, data))
    if err is not None or result is None:
        assert err is not None
        return _bulk_page(request, me, message=err.message(), status_code=err.status)
    ids: dict[str, int] = {}
    for r in result.results:
        if r.result != "error" and r.order_no and r.order_no not in ids:
            try:
                ids[r.order_no] = (await service.order_by_no(session, me.scope, r.order_no)).id
            except DomainError:
                continue
    rows = [{"row": r.row, "order_no": r.order_no, "carrier": _carrier_name(r.carrier, r.carrier), "tracking_no": r.tracking_no,
             "ok": r.result != "error", "order_id": ids.get(r.order_no),
             "message": _("已发货") if r.result == "shipped" else (_("此前已用该运单号发货") if r.result == "already_shipped"
                                                                   else _(r.message or "发货失败"))}
            for r in result.results]
    report = {"rows": rows, "shipped": result.shipped + result.already_shipped, "failed": result.errors}
    return _bulk_page(request, me, report=report)


# -- order settings ------------------------------------------------------------------------------------

SETTING_FIELDS = ("pay_timeout_minutes", "auto_confirm_days", "after_sale_days")
SETTING_MESSAGES = {"pay_timeout_minutes": "需为 %(lo)s–%(hi)s 的整数", "auto_confirm_days": "需为 %(lo)s–%(hi)s 的整数",
                    "after_sale_days": "需为 %(lo)s–%(hi)s 的整数"}


def _range_error(name: str) -> str:
    lo, hi = service.SETTING_RANGES[name]
    return _(SETTING_MESSAGES[name]) % {"lo": lo, "hi": hi}


async def _settings_page(request: Request, session: AsyncSession, me: StaffPrincipal, *,
                         values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                         status_code: int = 200, message: str = "") -> HTMLResponse:
    current = await service.order_settings(session, me.scope)
    shown: dict[str, Any] = {k: str(getattr(current, k)) for k in SETTING_FIELDS}
    shown["return_address"] = current.return_address
    shown.update(values or {})
    ctx: dict[str, Any] = {
        "title": _("订单设置"), "values": shown, "errors": errors or {}, "can_write": me.can("settings.write"),
        "ranges": service.SETTING_RANGES, "return_address": await aftersales.return_address(session, me.scope),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/orders/settings.html", ctx, status_code=status_code)


@router.get("/admin/orders/settings")
async def settings_page(request: Request, session: UoW, me: Reader) -> Response:
    return await _settings_page(request, session, me)


@router.post("/admin/orders/settings")
async def settings_save(request: Request, session: UoW, me: SettingsWriter,
                        pay_timeout_minutes: Annotated[str, Form(max_length=20)] = "",
                        auto_confirm_days: Annotated[str, Form(max_length=20)] = "",
                        after_sale_days: Annotated[str, Form(max_length=20)] = "",
                        return_address: Annotated[str, Form(max_length=400)] = "") -> Response:
    values = {"pay_timeout_minutes": pay_timeout_minutes.strip(), "auto_confirm_days": auto_confirm_days.strip(),
              "after_sale_days": after_sale_days.strip()}
    numbers: dict[str, int] = {}
    errors: dict[str, str] = {}
    address = " ".join(return_address.split())
    if len(address) > service.RETURN_ADDRESS_MAX or any(ord(c) < 32 or ord(c) == 127 for c in address):
        errors["return_address"] = _("退货地址最多 %(n)s 个字符") % {"n": service.RETURN_ADDRESS_MAX}
    for name, raw in values.items():
        lo, hi = service.SETTING_RANGES[name]
        if _digits(raw) and len(raw) <= 6 and lo <= int(raw) <= hi:
            numbers[name] = int(raw)
        else:
            errors[name] = _range_error(name)
    if errors:
        return await _settings_page(request, session, me, values={**values, "return_address": address}, errors=errors,
                                    status_code=422, message=next(iter(errors.values())))
    saved, err = await attempt(session, lambda: service.update_order_settings(session, me.scope, **numbers,
                                                                                return_address=address))
    if err is not None or saved is None:
        assert err is not None
        errs = {f["field"]: _range_error(f["field"]) for f in err.fields if f.get("field") in SETTING_FIELDS}
        return await _settings_page(request, session, me, values=values, errors=errs, status_code=err.status,
                                    message=err.message())
    return flash(RedirectResponse("/admin/orders/settings", status_code=303), _("已保存订单设置"))


# -- dashboard figures ---------------------------------------------------------------------------------


@router.get("/admin/orders/summary")
async def dashboard_figures(request: Request, session: UoW, me: Reader) -> Response:
    """The order figures of the 工作台, loaded into it by htmx (so the dashboard's own view
    needs no knowledge of orders)."""
    today = clock.now().astimezone(ZoneInfo(me.scope.timezone)).date()
    _rows, today_count = await service.list_orders(session, me.scope, service.OrderFilters(created_from=today,
                                                                                          created_to=today), limit=0)
    _rows, to_ship = await service.list_orders(session, me.scope, service.OrderFilters(statuses=("paid", "partially_shipped")),
                                               limit=0)
    _cases, to_review = await aftersales.list_cases(session, me.scope, aftersales.CaseQuery(status="requested"), limit=0)
    return render(request, "console/orders/_dashboard.html", {
        "today_count": today_count, "to_ship": to_ship, "to_review": to_review,
    })


# -- after-sales queue ------------------------------------------------------------------------------------


async def _customer_names(session: AsyncSession, me: StaffPrincipal, ids: Sequence[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for cid in sorted(set(ids)):
        try:
            c = await customers_service.get_customer(session, me.scope, cid)
        except DomainError:
            out[cid] = f"#{cid}"
            continue
        out[cid] = c.nickname or mask_phone(c.phone) or f"#{cid}"
    return out


@router.get("/admin/orders/after-sales")
async def case_list(request: Request, session: UoW, me: Reader,
                    status: Annotated[str, Query(max_length=20)] = "",
                    kind: Annotated[str, Query(max_length=20)] = "",
                    q: Annotated[str, Query(max_length=40)] = "",
                    date_from: Annotated[str, Query(max_length=10)] = "",
                    date_to: Annotated[str, Query(max_length=10)] = "",
                    page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    status = status if status in CASE_TABS else ""
    kind = kind if kind in aftersales.KINDS else ""
    q = _text(q, 24)
    d_from, d_to = _day(date_from), _day(date_to)
    lo, hi = service.day_bounds(me.scope, d_from, d_to)
    base = aftersales.CaseQuery(kind=kind or None, q=q or None, created_from=lo, created_to=hi)
    rows, total = await aftersales.list_cases(session, me.scope, _case_query(base, status), (page - 1) * PAGE_SIZE, PAGE_SIZE)
    counts: dict[str, int] = {}
    for code in ("", *CASE_TABS):
        counts[code] = total if code == status else (await aftersales.list_cases(session, me.scope, _case_query(base, code),
                                                                                 limit=0))[1]
    names = await _customer_names(session, me, [r.case.customer_id for r in rows])
    params = {"kind": kind, "q": q, "date_from": d_from.isoformat() if d_from else "",
              "date_to": d_to.isoformat() if d_to else ""}
    items = [{"c": r.case, "order_no": r.order_no, "customer": names.get(r.case.customer_id, ""), "reason": _(r.case.reason)}
             for r in rows]
    return console_page(request, me, "console/orders/aftersales.html", {
        "title": _("售后"), "items": items, "total": total, "page": page, "page_size": PAGE_SIZE,
        "base_url": query_url("/admin/orders/after-sales", status=status, **params),
        "tab_url": query_url("/admin/orders/after-sales", **params), "counts": counts,
        "tabs": [(code, CASE_STATUS_ZH[code]) for code in CASE_TABS], "status": status, **params,
        "filtered": any(params.values()), "case_statuses": CASE_STATUS_ZH, "case_colors": CASE_COLORS,
        "case_kinds": _kinds(),
    })


def _case_query(base: aftersales.CaseQuery, status: str) -> aftersales.CaseQuery:
    return aftersales.CaseQuery(status=status or None, kind=base.kind, q=base.q, created_from=base.created_from,
                                created_to=base.created_to)


# -- after-sales case ------------------------------------------------------------------------------------

CASE_HINTS = {
    "requested": "顾客提交了售后申请，请审核：同意后仅退款的申请会立即退款，退货退款的申请等待顾客寄回商品。",
    "approved": "已同意，等待顾客寄回商品；收到退货后点「确认收货并退款」。",
    "returning": "顾客已寄回商品，请核对退货后点「确认收货并退款」。",
    "refunding": "退款已提交到支付渠道，到账后售后单自动完成。",
    "refunded": "退款已原路退回顾客。",
    "rejected": "已拒绝该申请，商品数量已退回订单。",
    "withdrawn": "顾客已撤销该申请。",
}


async def _case_page(request: Request, session: AsyncSession, me: StaffPrincipal, case_id: int, *,
                     open_form: str = "", values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                     status_code: int = 200, message: str = "") -> HTMLResponse:
    d = await aftersales.case_detail(session, me.scope, case_id)
    c, o = d.case, d.order
    names = await _customer_names(session, me, [c.customer_id])
    refund = None
    if c.refund_id is not None:
        refund, _err = await attempt(session, lambda: payments_service.get_refund(session, me.scope, c.refund_id or 0))
    hint = _(CASE_HINTS.get(c.status, ""))
    if c.status == "approved" and c.refund_id is not None:
        hint = _("上次退款没有成功，请点「重试退款」重新发起。")
    elif c.status == "approved" and c.kind == "refund_only":
        hint = _("已同意，退款将很快发起。")
    manage = me.can("aftersales.manage")
    timeline = [{"at": t.at, "title": _event_title(t.action, t.from_status, t.to_status, case=True),
                 "actor": _actor(t), "note": t.note, "css": "ev-case" if t.to_status not in ("rejected",) else "ev-rejected"}
                for t in d.timeline]
    ctx: dict[str, Any] = {
        "title": _("售后单 %(no)s") % {"no": c.case_no}, "c": c, "o": o, "customer": names.get(c.customer_id, ""),
        "lines": d.lines, "reason": _(c.reason), "hint": hint, "timeline": timeline, "refund": refund,
        "return_address": await aftersales.return_address(session, me.scope) if c.kind == "return_refund" else "",
        "can_approve": manage and "approve" in d.staff_actions, "can_reject": manage and "reject" in d.staff_actions,
        "can_receive": manage and "receive" in d.staff_actions,
        "can_retry": manage and "retry_refund" in d.staff_actions, "open_form": open_form, "values": values or {},
        "errors": errors or {}, "case_statuses": CASE_STATUS_ZH, "case_colors": CASE_COLORS, "case_kinds": _kinds(),
        "refund_statuses": REFUND_STATUSES, "statuses": ORDER_STATUS_ZH, "status_colors": STATUS_COLORS,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/orders/aftersale.html", ctx, status_code=status_code)


@router.get("/admin/orders/after-sales/{case_id}")
async def case_page(case_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    return await _case_page(request, session, me, case_id)


def _to_case(case_id: int) -> RedirectResponse:
    return RedirectResponse(f"/admin/orders/after-sales/{case_id}", status_code=303)


async def _case_action(request: Request, session: AsyncSession, me: StaffPrincipal, case_id: int, call: Any,
                       done: str) -> Response:
    await aftersales.case_detail(session, me.scope, case_id)  # another tenant's case is a 404 page
    case, err = await attempt(session, call)
    if err is not None or case is None:
        assert err is not None
        if err.status == 404:
            raise err
        return flash(_to_case(case_id), err.message(), "error")
    return flash(_to_case(case_id), done)


@router.post("/admin/orders/after-sales/{case_id}/approve")
async def case_approve(case_id: PathId, request: Request, session: UoW, me: CaseManager) -> Response:
    d = await aftersales.case_detail(session, me.scope, case_id)
    done = _("已同意，退款处理中") if d.case.kind == "refund_only" else _("已同意退货，等待顾客寄回商品")
    return await _case_action(request, session, me, case_id, lambda: aftersales.approve(session, me.scope, case_id), done)


@router.post("/admin/orders/after-sales/{case_id}/reject")
async def case_reject(case_id: PathId, request: Request, session: UoW, me: CaseManager,
                      reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    await aftersales.case_detail(session, me.scope, case_id)
    text = reason.strip()
    problem = ""
    if not text:
        problem = _("请填写拒绝原因")
    elif len(text) > 200:
        problem = _("拒绝原因最多 200 字")
    else:
        try:
            no_control(text)
        except ValueError:
            problem = _("拒绝原因含有不允许的字符")
    if problem:
        return await _case_page(request, session, me, case_id, open_form="reject", values={"reason": text},
                                errors={"reason": problem}, status_code=422, message=problem)
    case, err = await attempt(session, lambda: aftersales.reject(session, me.scope, case_id, text))
    if err is not None or case is None:
        assert err is not None
        return await _case_page(request, session, me, case_id, open_form="reject" if err.status == 422 else "",
                                values={"reason": text}, errors={"reason": err.message()} if err.status == 422 else {},
                                status_code=err.status, message=err.message())
    return flash(_to_case(case_id), _("已拒绝售后申请"))


@router.post("/admin/orders/after-sales/{case_id}/receive")
async def case_receive(case_id: PathId, request: Request, session: UoW, me: CaseManager) -> Response:
    return await _case_action(request, session, me, case_id, lambda: aftersales.receive_return(session, me.scope, case_id),
                              _("已确认收到退货，退款处理中"))


@router.post("/admin/orders/after-sales/{case_id}/retry-refund")
async def case_retry(case_id: PathId, request: Request, session: UoW, me: CaseManager) -> Response:
    return await _case_action(request, session, me, case_id, lambda: aftersales.retry_refund(session, me.scope, case_id),
                              _("已重新发起退款"))


# -- order detail ----------------------------------------------------------------------------------------


def _event_title(action: str, from_status: str, to_status: str, *, case: bool) -> str:
    if case:
        if action in CASE_EVENTS:
            return CASE_EVENTS[action]
        return _("售后单状态变为「%(s)s」") % {"s": _(CASE_STATUS_ZH.get(to_status, to_status))}
    if action == "ship":
        return "部分发货" if to_status == "partially_shipped" or from_status == to_status else "发货"
    if action == "deliver" and to_status == "delivered":
        return "已送达"
    if action in ORDER_EVENTS:
        return ORDER_EVENTS[action]
    if from_status == to_status:
        return action
    return _("订单状态变为「%(s)s」") % {"s": _(ORDER_STATUS_ZH.get(to_status, to_status))}


def _order_timeline(transitions: Sequence[OrderTransition], cases: Sequence[AfterSale]) -> list[dict[str, Any]]:
    case_nos = {c.id: c.case_no for c in cases}
    out = []
    for t in transitions:
        is_case = t.after_sale_id is not None
        css = "ev-case" if is_case else f"ev-{t.to_status}"
        out.append({"at": t.created_at, "title": _event_title(t.action, t.from_status, t.to_status, case=is_case),
                    "actor": _actor(t), "note": t.note, "css": css,
                    "case_no": case_nos.get(t.after_sale_id or 0) if is_case else None, "case_id": t.after_sale_id})
    return out


def _banner(o: Order, lines: Sequence[OrderLine], tz: str) -> dict[str, str]:
    """What the order waits for, in one line above the page."""
    def local(at: Any) -> str:
        return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if at else "—"

    left = sum(max(0, ln.quantity - ln.shipped_qty - ln.cancelled_qty) for ln in lines if ln.requires_shipping)
    if o.status == "pending_payment":
        return {"title": "等待顾客付款",
                "hint": _("顾客需在 %(t)s 前完成支付，超时订单自动取消并释放库存。") % {"t": local(o.pay_deadline)}}
    if o.status == "paid":
        return {"title": "待发货", "hint": _("顾客已付款，请尽快发货。")}
    if o.status == "partially_shipped":
        return {"title": "部分发货", "hint": _("还有 %(n)s 件商品待发货。") % {"n": left}}
    if o.status == "shipped":
        return {"title": "已发货", "hint": _("等待顾客确认收货；到 %(c)s 自动确认收货。") % {"c": local(o.auto_confirm_at)}}
    if o.status == "delivered":
        return {"title": "已送达",
                "hint": _("商品已送达，等待顾客确认收货；到 %(c)s 自动确认收货。") % {"c": local(o.auto_confirm_at)}}
    if o.status == "completed":
        return {"title": "交易完成", "hint": _("顾客已确认收货。")}
    if o.status == "cancelled":
        return {"title": "订单已取消", "hint": _(o.cancel_reason or "")}
    return {"title": "订单已关闭", "hint": _("订单款项已全部退回顾客。")}


async def _order_page(request: Request, session: AsyncSession, me: StaffPrincipal, order_id: int, *,
                      open_form: str = "", values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                      status_code: int = 200, message: str = "") -> HTMLResponse:
    d = await service.order_detail(session, me.scope, order_id)
    o = d.order
    by_line = {ln.id: ln for ln in d.lines}
    locations = {loc.id: loc.name for loc in await inventory_service.list_locations(session, me.scope)}
    parts = []
    for fv in d.fulfilments:
        f = fv.fulfilment
        rows: list[dict[str, Any]] = []
        for it in fv.items:
            line = by_line.get(it.order_line_id)
            if line is None:
                continue
            left = max(0, line.quantity - line.shipped_qty - line.cancelled_qty)
            rows.append({"line": line, "qty": it.quantity, "shipped": it.shipped_qty,
                         "shippable": max(0, min(it.quantity - it.shipped_qty, left))})
        parts.append({"f": f, "title": "虚拟商品" if f.kind == "virtual" else "包裹 %(n)s",
                      "location": (locations.get(f.location_id, "") if f.location_id else "") or
                                  (_("无需发货") if f.kind == "virtual" else "—"),
                      "rows": rows, "shippable": sum(r["shippable"] for r in rows)})
    shipments: list[dict[str, Any]] = [
        {"s": s, "carrier": _carrier_name(s.carrier_code, s.carrier_name),
         "goods": ", ".join(f"{i.get('title', '')}{' · ' + i['spec_text'] if i.get('spec_text') else ''} ×{i.get('qty')}"
                           for i in (s.items or []))}
        for s in d.shipments]
    payments = []
    for p in d.payments:
        pd = await payments_service.payment_detail(session, me.scope, p.id)
        payments.append({"p": p, "refunds": list(pd.refunds)})
    open_qty = {}
    for ln in d.lines:
        open_qty[ln.id] = max(0, ln.refund_qty - ln.refunded_qty)
    refundable = await aftersales.refundable_lines(session, me.scope, o)
    refund_lines = [{"l": r.line, "max_qty": max(r.refund_only_qty, r.return_refund_qty)} for r in refundable.lines
                    if max(r.refund_only_qty, r.return_refund_qty) > 0]
    can_write = me.can("orders.write")
    c = d.customer
    full_phone = me.can("customers.phone")
    customer = {"name": (c.nickname if c else None) or f"#{o.customer_id}",
                "phone": ((c.phone if full_phone else mask_phone(c.phone)) if c and c.phone else ""),
                "href": f"/admin/customers/{o.customer_id}" if me.can("customers.read") else ""}
    addr = o.address or {}
    address = {"receiver": addr.get("receiver_name") or "", "text": service.address_text(addr),
               "phone": addr.get("phone") if (full_phone or can_write) else mask_phone(addr.get("phone"))} if addr else {}
    ctx: dict[str, Any] = {
        "title": _("订单 %(no)s") % {"no": o.order_no}, "o": o, "banner": _banner(o, d.lines, me.scope.timezone), "customer": customer,
        "address": address, "lines": [{"l": ln, "open_qty": open_qty[ln.id]} for ln in d.lines], "parts": parts,
        "shipments": shipments, "payments": payments, "cases": d.after_sales,
        "timeline": _order_timeline(d.transitions, d.after_sales), "carriers": _carriers(),
        "refund_lines": refund_lines, "can_write": can_write,
        "can_cancel": can_write and "cancel" in d.actions, "can_deliver": can_write and "deliver" in d.actions,
        "can_note": can_write, "can_refund": me.can("aftersales.manage") and refundable.allowed and bool(refund_lines),
        "can_finance": me.can("finance.read"), "open_form": open_form, "values": values or {}, "errors": errors or {},
        "statuses": ORDER_STATUS_ZH, "status_colors": STATUS_COLORS, "part_statuses": PART_STATUSES,
        "shipment_statuses": SHIPMENT_STATUSES, "case_statuses": CASE_STATUS_ZH, "case_colors": CASE_COLORS,
        "case_kinds": _kinds(), "payment_statuses": PAYMENT_STATUSES, "refund_statuses": REFUND_STATUSES,
        "cancel_reasons": list(CANCEL_REASONS.items()),
        "refund_reasons": [(str(i), r) for i, r in enumerate(_refund_reasons(), start=1)],
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/orders/detail.html", ctx, status_code=status_code)


@router.get("/admin/orders/{order_id}")
async def order_page(order_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    return await _order_page(request, session, me, order_id)


@router.post("/admin/orders/{order_id}/ship")
async def order_ship(order_id: PathId, request: Request, session: UoW, me: Writer,
                     fulfilment_id: Annotated[str, Form(max_length=30)] = "",
                     carrier_code: Annotated[str, Form(max_length=40)] = "",
                     tracking_no: Annotated[str, Form(max_length=100)] = "",
                     line_id: Annotated[list[FormValue] | None, Form()] = None,
                     qty: Annotated[list[FormValue] | None, Form()] = None) -> Response:
    await service.get_order(session, me.scope, order_id)  # another tenant's order is a 404 page
    fid = int(fulfilment_id) if _digits(fulfilment_id.strip()) and 0 < int(fulfilment_id) < 2**63 else None
    items, typed, problem = _lines_param(line_id, qty)
    form = f"ship-{fid}" if fid else ""
    values: dict[str, Any] = {"carrier_code": carrier_code.strip(), "tracking_no": tracking_no.strip()[:40]}
    values.update({f"qty_{fid}_{lid}": v for lid, v in typed.items()})
    errors: dict[str, str] = {}
    if fid is None:
        problem = problem or _("提交的内容有误")
    if not problem and not values["carrier_code"]:
        errors["carrier_code"] = problem = _("请选择物流公司")
    if not problem and not values["tracking_no"]:
        errors["tracking_no"] = problem = _("请填写运单号")
    if not problem and line_id and not items:
        errors["items"] = problem = _("请填写本次发货的数量")
    if problem:
        errors = errors or {"items": problem}
        return await _order_page(request, session, me, order_id, open_form=form, values=values, errors=errors,
                                 status_code=422, message=problem)
    result, err = await attempt(session, lambda: fulfilment.ship(
        session, me.scope, order_id, fulfilment_id=fid, items=items or None, carrier_code=values["carrier_code"],
        tracking_no=values["tracking_no"]))
    if err is not None or result is None:
        assert err is not None
        if err.status == 404 and err.code == "order_not_found":
            raise err
        field = next((f["field"] for f in err.fields if f.get("field") in ("carrier_code", "tracking_no")), "items")
        return await _order_page(request, session, me, order_id, open_form=form, values=values,
                                 errors={field: _ship_error(err)}, status_code=err.status, message=_ship_error(err))
    s = result.shipment
    if not result.created:
        return flash(_back_to(order_id), _("该运单号已发过货：%(carrier)s %(no)s") % {
            "carrier": _carrier_name(s.carrier_code, s.carrier_name), "no": s.tracking_no})
    return flash(_back_to(order_id), _("已发货：%(carrier)s %(no)s") % {
        "carrier": _carrier_name(s.carrier_code, s.carrier_name), "no": s.tracking_no})


def _ship_error(err: DomainError) -> str:
    if err.code == "ship_exceeds_shippable":
        return _("发货数量超过待发货数量，请刷新后重试")
    return err.message()


@router.post("/admin/orders/{order_id}/cancel")
async def order_cancel(order_id: PathId, request: Request, session: UoW, me: Writer,
                       reason: Annotated[str, Form(max_length=100)] = "") -> Response:
    await service.get_order(session, me.scope, order_id)
    code = reason.strip()
    if code not in CANCEL_REASONS:
        msg = _("请选择取消原因")
        return await _order_page(request, session, me, order_id, open_form="cancel", values={"reason": code},
                                 errors={"reason": msg}, status_code=422, message=msg)
    order, err = await attempt(session, lambda: service.cancel_order(session, me.scope, order_id, by="staff",
                                                                     reason=CANCEL_REASONS[code]))
    if err is not None or order is None:
        assert err is not None
        return await _order_page(request, session, me, order_id, status_code=err.status, message=err.message())
    return flash(_back_to(order_id), _("订单已取消，预占的库存已释放"))


@router.post("/admin/orders/{order_id}/deliver")
async def order_deliver(order_id: PathId, request: Request, session: UoW, me: Writer) -> Response:
    await service.get_order(session, me.scope, order_id)
    order, err = await attempt(session, lambda: fulfilment.mark_delivered(session, me.scope, order_id))
    if err is not None or order is None:
        assert err is not None
        return flash(_back_to(order_id), err.message(), "error")
    return flash(_back_to(order_id), _("已标记为送达"))


@router.post("/admin/orders/{order_id}/note")
async def order_note(order_id: PathId, request: Request, session: UoW, me: Writer,
                     seller_note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    await service.get_order(session, me.scope, order_id)
    text = seller_note.strip()
    problem = ""
    if len(text) > service.MAX_NOTE:
        problem = _("备注最多 %(n)s 字") % {"n": service.MAX_NOTE}
    else:
        try:
            no_control(text)
        except ValueError:
            problem = _("备注含有不允许的字符")
    if problem:
        return await _order_page(request, session, me, order_id, values={"seller_note": text},
                                 errors={"seller_note": problem}, status_code=422, message=problem)
    order, err = await attempt(session, lambda: service.set_seller_note(session, me.scope, order_id, text or None))
    if err is not None or order is None:
        assert err is not None
        return await _order_page(request, session, me, order_id, values={"seller_note": text},
                                 errors={"seller_note": err.message()}, status_code=err.status, message=err.message())
    return flash(_back_to(order_id), _("已保存备注"))


@router.post("/admin/orders/{order_id}/refund")
async def order_refund(order_id: PathId, request: Request, session: UoW, me: CaseManager,
                       kind: Annotated[str, Form(max_length=20)] = "refund_only",
                       reason: Annotated[str, Form(max_length=100)] = "",
                       description: Annotated[str, Form(max_length=2000)] = "",
                       line_id: Annotated[list[FormValue] | None, Form()] = None,
                       qty: Annotated[list[FormValue] | None, Form()] = None) -> Response:
    await service.get_order(session, me.scope, order_id)
    items, typed, problem = _lines_param(line_id, qty)
    choices = _refund_reasons()
    number = reason.strip()
    text = choices[int(number) - 1] if _digits(number) and len(number) <= 4 and 0 < int(number) <= len(choices) else ""
    values: dict[str, Any] = {"kind": kind if kind in aftersales.KINDS else "refund_only", "reason": number,
                              "description": description.strip()[:500]}
    values.update({f"qty_{lid}": v for lid, v in typed.items()})
    errors: dict[str, str] = {}
    if problem:
        errors["lines"] = problem
    elif not items:
        errors["lines"] = problem = _("请填写要退款的商品件数")
    elif text not in aftersales.reasons(values["kind"], staff=True):
        errors["reason"] = problem = _("请选择退款原因") if not text else _("该原因不适用于所选的售后类型")
    if problem:
        return await _order_page(request, session, me, order_id, open_form="refund", values=values, errors=errors,
                                 status_code=422, message=problem)
    case, err = await attempt(session, lambda: aftersales.open_case(
        session, me.scope, order_id, kind=values["kind"], lines=items, reason=text,
        description=values["description"] or None))
    if err is not None or case is None:
        assert err is not None
        if err.status == 404 and err.code == "order_not_found":
            raise err
        field = next((f["field"] for f in err.fields if f.get("field") in ("kind", "reason", "description")), "lines")
        return await _order_page(request, session, me, order_id, open_form="refund", values=values,
                                 errors={field: err.message()}, status_code=err.status, message=err.message())
    return flash(_to_case(case.id), _("已发起售后单 %(no)s") % {"no": case.case_no})

