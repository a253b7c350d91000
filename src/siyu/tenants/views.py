"""Console pages of the tenants module: shop settings and stores (``/admin/settings``,
``/admin/stores``) and the platform operator's console (``/platform``: sign-in, tenant list,
onboarding, suspend and resume).

Same conventions as ``staff/views.py``: plain forms, 303 after a successful post with a flash
message, the form again with field errors and a 4xx status otherwise.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit.i18n import gettext as _
from siyu.kit.security import mask_phone
from siyu.kit.sessions import lookup_session
from siyu.kit.types import PathId
from siyu.kit.web import UoW, set_session_cookie
from siyu.staff import service as staff_service
from siyu.staff.access import (
    PLATFORM_COOKIE,
    CurrentPlatform,
    StaffPrincipal,
    require,
    sign_in_platform,
    sign_out,
)
from siyu.tenants import service
from siyu.tenants.models import Tenant
from siyu.tenants.schemas import StoreIn, StoreUpdate, TenantCreate, TenantSettingsUpdate
from siyu.web import i18n_console  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import (
    attempt,
    check_origin,
    domain_field_errors,
    error_flash,
    field_errors,
    first_error,
    query_url,
    take_flash,
)
from siyu.web.page import console_page, flash, platform_page
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
FLASH_COOKIE = "siyu_flash"
STORE_STATUSES = {"open": "营业中", "closed": "已关闭"}
TENANT_STATUSES = {"active": "正常", "suspended": "已暂停"}
TENANT_EVENTS = {"created": "开通", "suspend": "暂停服务", "resume": "恢复服务"}

#: Time zones offered in the settings form (any IANA name already saved is kept as an option).
TIMEZONES = [
    ("Asia/Shanghai", "北京时间（Asia/Shanghai）"),
    ("Asia/Hong_Kong", "香港（Asia/Hong_Kong）"),
    ("Asia/Macau", "澳门（Asia/Macau）"),
    ("Asia/Taipei", "台北（Asia/Taipei）"),
    ("Asia/Singapore", "新加坡（Asia/Singapore）"),
    ("Asia/Kuala_Lumpur", "吉隆坡（Asia/Kuala_Lumpur）"),
    ("Asia/Bangkok", "曼谷（Asia/Bangkok）"),
    ("Asia/Tokyo", "东京（Asia/Tokyo）"),
    ("Asia/Seoul", "首尔（Asia/Seoul）"),
    ("Asia/Dubai", "迪拜（Asia/Dubai）"),
    ("Europe/London", "伦敦（Europe/London）"),
    ("Europe/Paris", "巴黎（Europe/Paris）"),
    ("America/New_York", "纽约（America/New_York）"),
    ("America/Los_Angeles", "洛杉矶（America/Los_Angeles）"),
    ("Australia/Sydney", "悉尼（Australia/Sydney）"),
    ("UTC", "协调世界时（UTC）"),
]

SETTINGS_FIELD_MESSAGES = {
    "name": "请填写店铺名称（最多 100 字）",
    "timezone": "请选择有效的时区",
    "contact_name": "联系人最多 200 字",
    "contact_phone": "请输入正确的 11 位手机号",
    "service_phone": "客服电话最多 200 字",
    "welcome_text": "欢迎语最多 200 字",
}
STORE_FIELD_MESSAGES = {
    "code": "编码需为 2–40 位小写字母、数字、_ 或 -，并以字母或数字开头",
    "name": "请填写门店名称（最多 100 字）",
    "address": "地址最多 200 字",
    "phone": "电话最多 200 字",
    "status": "状态无效",
}
TENANT_FIELD_MESSAGES = {
    "code": "编码需为 2–40 位小写字母、数字、_ 或 -，并以字母或数字开头",
    "name": "请填写商家名称（最多 100 字）",
    "owner_username": "用户名需为 3–64 位字母、数字或 _ . @ -",
    "owner_password": "密码需为 8–128 位",
    "owner_name": "请填写店主姓名（最多 100 字）",
    "contact_name": "联系人最多 200 字",
    "contact_phone": "请输入正确的 11 位手机号",
    "timezone": "请选择有效的时区",
}


def _timezone_options(current: str | None) -> list[tuple[str, str]]:
    options = list(TIMEZONES)
    if current and current not in {v for v, _label in options}:
        options.insert(0, (current, current))
    return options


# -- shop settings ------------------------------------------------------------------------------


async def _settings_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, values: dict[str, Any] | None = None,
                         errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    tenant = await service.get_tenant(session, me.scope.id)
    current = {k: v or "" for k, v in service.settings_view(tenant).items()}
    current.update(values or {})
    ctx: dict[str, Any] = {
        "title": _("店铺设置"), "tenant": tenant, "values": current, "errors": errors or {},
        "timezone_options": _timezone_options(current.get("timezone")), "can_write": me.can("settings.write"),
        "storefront_url": f"/m/{tenant.code}/",
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/settings/form.html", ctx, status_code=status_code)


@router.get("/admin/settings")
async def settings_form(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("settings.read")]) -> Response:
    return await _settings_page(request, session, me)


@router.post("/admin/settings")
async def settings_save(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("settings.write")],
                        name: Annotated[str, Form(max_length=300)] = "",
                        timezone: Annotated[str, Form(max_length=100)] = "",
                        contact_name: Annotated[str, Form(max_length=300)] = "",
                        contact_phone: Annotated[str, Form(max_length=30)] = "",
                        service_phone: Annotated[str, Form(max_length=300)] = "",
                        welcome_text: Annotated[str, Form(max_length=600)] = "") -> Response:
    values = {"name": name.strip(), "timezone": timezone.strip(), "contact_name": contact_name.strip(),
              "contact_phone": contact_phone.strip(), "service_phone": service_phone.strip(),
              "welcome_text": welcome_text.strip()}
    try:
        data = TenantSettingsUpdate(
            name=values["name"], timezone=values["timezone"] or None, contact_name=values["contact_name"] or None,
            contact_phone=values["contact_phone"] or None, service_phone=values["service_phone"] or None,
            welcome_text=values["welcome_text"] or None,
        )
    except ValidationError as exc:
        errors = field_errors(exc, SETTINGS_FIELD_MESSAGES)
        return await _settings_page(request, session, me, values=values, errors=errors, status_code=422,
                                    message=first_error(errors))
    _tenant, err = await attempt(session, lambda: service.update_settings(session, me.scope, data))
    if err is not None:
        return await _settings_page(request, session, me, values=values, status_code=err.status, message=err.message(),
                                    errors=domain_field_errors(err, SETTINGS_FIELD_MESSAGES))
    return flash(RedirectResponse("/admin/settings", status_code=303), _("店铺设置已保存"))


# -- stores -------------------------------------------------------------------------------------


@router.get("/admin/stores")
async def store_list(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("stores.read")],
                     q: Annotated[str, Query(max_length=100)] = "",
                     page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    q = q.strip()
    rows, total = await service.list_stores(session, me.scope, q or None, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    show_staff = me.can("staff.read")
    items = []
    for s in rows:
        count = None
        if show_staff:
            _staff, count = await staff_service.list_staff(session, me.scope, store_id=s.id, limit=1)
        items.append({"s": s, "staff_count": count})
    return console_page(request, me, "console/stores/list.html", {
        "title": _("门店"), "items": items, "total": total, "page": page, "page_size": PAGE_SIZE,
        "pages": max(1, math.ceil(total / PAGE_SIZE)), "base_url": query_url("/admin/stores", q=q), "q": q,
        "statuses": STORE_STATUSES, "can_write": me.can("stores.write"), "show_staff": show_staff,
    })


def _store_page(request: Request, me: StaffPrincipal, *, store: Any = None, values: dict[str, Any] | None = None,
                errors: dict[str, str] | None = None, staff: list[dict[str, Any]] | None = None, staff_total: int = 0,
                status_code: int = 200, message: str = "") -> HTMLResponse:
    ctx: dict[str, Any] = {
        "title": store.name if store else _("新建门店"), "store": store, "values": values or {"status": "open"},
        "errors": errors or {}, "statuses": STORE_STATUSES, "can_write": me.can("stores.write"),
        "staff": staff, "staff_total": staff_total, "can_add_staff": me.can("staff.write"),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/stores/form.html", ctx, status_code=status_code)


async def _store_edit_page(request: Request, session: AsyncSession, me: StaffPrincipal, store_id: int, *,
                           values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                           status_code: int = 200, message: str = "") -> HTMLResponse:
    store = await service.get_store(session, me.scope, store_id)
    current = {"code": store.code, "name": store.name, "address": store.address or "", "phone": store.phone or "",
               "status": store.status}
    current.update(values or {})
    staff, staff_total = None, 0
    if me.can("staff.read"):
        rows, staff_total = await staff_service.list_staff(session, me.scope, store_id=store.id, limit=50)
        names = {r.id: r.name for r in await staff_service.list_roles(session, me.scope)}
        staff = [{"s": s, "role": names.get(s.role_id, ""), "phone": mask_phone(s.phone)} for s in rows]
    return _store_page(request, me, store=store, values=current, errors=errors, staff=staff, staff_total=staff_total,
                       status_code=status_code, message=message)


@router.get("/admin/stores/new")
async def store_new(request: Request, me: Annotated[StaffPrincipal, require("stores.write")]) -> Response:
    return _store_page(request, me)


@router.post("/admin/stores/new")
async def store_create(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("stores.write")],
                       code: Annotated[str, Form(max_length=100)] = "",
                       name: Annotated[str, Form(max_length=300)] = "",
                       address: Annotated[str, Form(max_length=600)] = "",
                       phone: Annotated[str, Form(max_length=300)] = "",
                       status: Annotated[str, Form(max_length=20)] = "open") -> Response:
    values = {"code": code.strip(), "name": name.strip(), "address": address.strip(), "phone": phone.strip(),
              "status": status}
    try:
        data = StoreIn(code=values["code"], name=values["name"], address=values["address"] or None,
                       phone=values["phone"] or None, status=status or "open")
    except ValidationError as exc:
        errors = field_errors(exc, STORE_FIELD_MESSAGES)
        return _store_page(request, me, values=values, errors=errors, status_code=422, message=first_error(errors))
    store, err = await attempt(session, lambda: service.create_store(session, me.scope, data))
    if err is not None or store is None:
        assert err is not None
        errors = {"code": err.message()} if err.code == "store_code_taken" else {}
        return _store_page(request, me, values=values, errors=errors, status_code=err.status, message=err.message())
    return flash(RedirectResponse(f"/admin/stores/{store.id}", status_code=303), _("已新建门店 %(name)s") % {"name": store.name})


@router.get("/admin/stores/{store_id}")
async def store_edit(store_id: PathId, request: Request, session: UoW,
                     me: Annotated[StaffPrincipal, require("stores.read")]) -> Response:
    return await _store_edit_page(request, session, me, store_id)


@router.post("/admin/stores/{store_id}")
async def store_update(store_id: PathId, request: Request, session: UoW,
                       me: Annotated[StaffPrincipal, require("stores.write")],
                       name: Annotated[str, Form(max_length=300)] = "",
                       address: Annotated[str, Form(max_length=600)] = "",
                       phone: Annotated[str, Form(max_length=300)] = "",
                       status: Annotated[str, Form(max_length=20)] = "") -> Response:
    values = {"name": name.strip(), "address": address.strip(), "phone": phone.strip(), "status": status}
    try:
        data = StoreUpdate(name=values["name"], address=values["address"] or None, phone=values["phone"] or None,
                           status=status or None)
    except ValidationError as exc:
        errors = field_errors(exc, STORE_FIELD_MESSAGES)
        return await _store_edit_page(request, session, me, store_id, values=values, errors=errors, status_code=422,
                                      message=first_error(errors))
    store, err = await attempt(session, lambda: service.update_store(session, me.scope, store_id, data))
    if err is not None or store is None:
        assert err is not None
        if err.status == 404:
            raise err
        return await _store_edit_page(request, session, me, store_id, values=values, status_code=err.status,
                                      message=err.message())
    return flash(RedirectResponse(f"/admin/stores/{store_id}", status_code=303), _("门店 %(name)s 已保存") % {"name": store.name})


# -- platform console ---------------------------------------------------------------------------


def _platform_login_form(request: Request, *, username: str = "", error: str = "", fields: dict[str, str] | None = None,
                         status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    message = take_flash(request)
    resp = render(request, "platform/login.html", {
        "heading": "平台运营登录", "subheading": "商家开通、暂停与恢复", "error": error, "fields": fields or {},
        "username": username, "message": message,
    }, status_code=status_code, headers=headers)
    resp.headers["Cache-Control"] = "no-store"
    if message:
        resp.delete_cookie(FLASH_COOKIE, path="/")
    return resp


@router.get("/platform/login")
async def platform_login_page(request: Request, session: UoW) -> Response:
    cookie = request.cookies.get(PLATFORM_COOKIE)
    if cookie:
        info = await lookup_session(session, cookie, "platform")
        user = await service.platform_user(session, info.principal_id) if info else None
        if user is not None and user.status == "active":
            return RedirectResponse("/platform", status_code=303)
    return _platform_login_form(request)


@router.post("/platform/login")
async def platform_login_submit(request: Request, session: UoW,
                                username: Annotated[str, Form(max_length=200)] = "",
                                password: Annotated[str, Form(max_length=200)] = "") -> Response:
    check_origin(request)
    username = username.strip()
    fields: dict[str, str] = {}
    if not username:
        fields["username"] = _("请输入用户名")
    if not password:
        fields["password"] = _("请输入密码")
    if fields:
        return _platform_login_form(request, username=username, error=first_error(fields), fields=fields, status_code=422)
    signed, err = await attempt(session, lambda: sign_in_platform(request, session, username, password))
    if err is not None or signed is None:
        assert err is not None
        return _platform_login_form(request, username=username, error=err.message(), status_code=err.status,
                                    headers=err.headers or None)
    resp = RedirectResponse("/platform", status_code=303)
    set_session_cookie(resp, request, PLATFORM_COOKIE, signed.token, signed.days)
    return flash(resp, _("欢迎回来，%(name)s") % {"name": signed.name})


@router.post("/platform/logout")
async def platform_logout(request: Request, session: UoW, me: CurrentPlatform) -> Response:
    resp = await sign_out(request, session, PLATFORM_COOKIE, RedirectResponse("/platform/login", status_code=303))
    return flash(resp, _("已退出登录"))


@router.get("/platform")
async def tenant_list(request: Request, session: UoW, me: CurrentPlatform,
                      q: Annotated[str, Query(max_length=100)] = "",
                      status: Annotated[str, Query(max_length=20)] = "",
                      page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    q = q.strip()
    status = status if status in TENANT_STATUSES else ""
    rows, total = await service.list_tenants(session, q or None, status or None, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    _a, active = await service.list_tenants(session, None, "active", 0, 1)
    _s, suspended = await service.list_tenants(session, None, "suspended", 0, 1)
    return platform_page(request, me, "platform/tenants.html", {
        "title": _("商家管理"), "items": list(rows), "total": total, "page": page, "page_size": PAGE_SIZE,
        "base_url": query_url("/platform", q=q, status=status), "q": q, "status": status,
        "statuses": TENANT_STATUSES, "counts": {"all": active + suspended, "active": active, "suspended": suspended},
    })


def _tenant_new_page(request: Request, me: Any, *, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                     status_code: int = 200, message: str = "") -> HTMLResponse:
    ctx: dict[str, Any] = {
        "title": _("开通商家"), "values": values or {"timezone": "Asia/Shanghai", "owner_name": "店主"},
        "errors": errors or {}, "timezone_options": _timezone_options((values or {}).get("timezone")),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return platform_page(request, me, "platform/tenant_new.html", ctx, status_code=status_code)


@router.get("/platform/tenants/new")
async def tenant_new(request: Request, me: CurrentPlatform) -> Response:
    return _tenant_new_page(request, me)


@router.post("/platform/tenants/new")
async def tenant_create(request: Request, session: UoW, me: CurrentPlatform,
                        code: Annotated[str, Form(max_length=100)] = "",
                        name: Annotated[str, Form(max_length=300)] = "",
                        owner_username: Annotated[str, Form(max_length=200)] = "",
                        owner_password: Annotated[str, Form(max_length=200)] = "",
                        owner_name: Annotated[str, Form(max_length=300)] = "",
                        contact_name: Annotated[str, Form(max_length=300)] = "",
                        contact_phone: Annotated[str, Form(max_length=30)] = "",
                        timezone: Annotated[str, Form(max_length=100)] = "") -> Response:
    values = {"code": code.strip(), "name": name.strip(), "owner_username": owner_username.strip(),
              "owner_name": owner_name.strip(), "contact_name": contact_name.strip(),
              "contact_phone": contact_phone.strip(), "timezone": timezone.strip() or "Asia/Shanghai"}
    try:
        data = TenantCreate(code=values["code"], name=values["name"], owner_username=values["owner_username"],
                            owner_password=owner_password, owner_name=values["owner_name"] or "店主",
                            contact_name=values["contact_name"] or None, contact_phone=values["contact_phone"] or None,
                            timezone=values["timezone"])
    except ValidationError as exc:
        errors = field_errors(exc, TENANT_FIELD_MESSAGES)
        return _tenant_new_page(request, me, values=values, errors=errors, status_code=422, message=first_error(errors))
    tenant, err = await attempt(session, lambda: service.create_tenant(session, data))
    if err is not None or tenant is None:
        assert err is not None
        errors = domain_field_errors(err, TENANT_FIELD_MESSAGES)
        if err.code == "tenant_code_taken":
            errors["code"] = err.message()
        elif err.code == "username_taken":
            errors["owner_username"] = err.message()
        return _tenant_new_page(request, me, values=values, errors=errors, status_code=err.status, message=err.message())
    return flash(RedirectResponse(f"/platform/tenants/{tenant.id}", status_code=303),
                 _("已开通商家 %(name)s，店主可用 %(username)s 登录商家后台") % {"name": tenant.name,
                                                                      "username": data.owner_username})


async def _tenant_detail_page(request: Request, session: AsyncSession, me: Any, tenant: Tenant, *,
                              errors: dict[str, str] | None = None, status_code: int = 200, message: str = "",
                              reason: str = "") -> HTMLResponse:
    from siyu.customers import service as customers_service

    scope = service.scope_of(tenant)
    _st, staff_total = await staff_service.list_staff(session, scope, limit=1)
    _so, stores_total = await service.list_stores(session, scope, None, 0, 1)
    _cu, customers_total = await customers_service.list_customers(session, scope, limit=1)
    events = await service.tenant_events(session, tenant.id)
    ctx: dict[str, Any] = {
        "title": tenant.name, "tenant": tenant, "events": list(events), "event_kinds": TENANT_EVENTS,
        "statuses": TENANT_STATUSES, "counts": {"staff": staff_total, "stores": stores_total, "customers": customers_total},
        "contact_phone": tenant.contact_phone or "", "storefront_url": f"/m/{tenant.code}/",
        "errors": errors or {}, "reason": reason, "open_suspend": bool(errors),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return platform_page(request, me, "platform/tenant_detail.html", ctx, status_code=status_code)


@router.get("/platform/tenants/{tenant_id}")
async def tenant_detail(tenant_id: PathId, request: Request, session: UoW, me: CurrentPlatform) -> Response:
    return await _tenant_detail_page(request, session, me, await service.get_tenant(session, tenant_id))


async def _change_status(request: Request, session: AsyncSession, me: Any, tenant_id: int, action: str, reason: str) -> Response:
    tenant = await service.get_tenant(session, tenant_id)
    reason = reason.strip()
    if action == "suspend" and not reason:
        return await _tenant_detail_page(request, session, me, tenant, errors={"reason": _("请填写暂停原因，商家员工登录时会看到它")},
                                         status_code=422, message=_("请填写暂停原因，商家员工登录时会看到它"))
    if len(reason) > 200:
        return await _tenant_detail_page(request, session, me, tenant, errors={"reason": _("原因最多 200 字")}, reason=reason,
                                         status_code=422, message=_("原因最多 200 字"))
    updated, err = await attempt(session, lambda: service.change_status(session, tenant_id, action, reason))
    resp = RedirectResponse(f"/platform/tenants/{tenant_id}", status_code=303)
    if err is not None or updated is None:
        assert err is not None
        return flash(resp, err.message(), "error")
    if action == "suspend":
        return flash(resp, _("已暂停 %(name)s：其员工与店铺已无法访问") % {"name": updated.name})
    return flash(resp, _("已恢复 %(name)s 的服务") % {"name": updated.name})


@router.post("/platform/tenants/{tenant_id}/suspend")
async def tenant_suspend(tenant_id: PathId, request: Request, session: UoW, me: CurrentPlatform,
                         reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    return await _change_status(request, session, me, tenant_id, "suspend", reason)


@router.post("/platform/tenants/{tenant_id}/resume")
async def tenant_resume(tenant_id: PathId, request: Request, session: UoW, me: CurrentPlatform,
                        reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    return await _change_status(request, session, me, tenant_id, "resume", reason)

