"""Console pages of the staff module: sign-in, 工作台, staff, roles, API tokens, audit log and
the SMS outbox (``/admin/...``).

The JSON API (``staff/api.py``) serves integrations; these pages call the same services.
Every form is a plain HTML post answered by a 303 redirect with a flash message; a form with
bad input is rendered again with its field errors and a 4xx status. Service calls run in a
savepoint (:func:`attempt`) so a domain error undoes only what that call wrote.

CSRF: signed-in forms carry ``_csrf`` (checked by ``CurrentStaff``); the sign-in form is
served before any session exists, so it is protected by checking that the ``Origin``
header, when the browser sends one, names this site (:func:`check_origin`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import audit, clock
from siyu.kit.i18n import gettext as _
from siyu.kit.security import mask_phone
from siyu.kit.sessions import lookup_session
from siyu.kit.tenancy import TenantScope
from siyu.kit.types import PathId
from siyu.kit.web import UoW, clear_cookie, runtime, set_session_cookie
from siyu.staff import service
from siyu.staff.access import (
    STAFF_COOKIE,
    CurrentStaff,
    StaffPrincipal,
    require,
    sign_in_staff,
    sign_out,
)
from siyu.staff.models import ApiToken, Role
from siyu.staff.permissions import grouped
from siyu.staff.schemas import (
    PasswordReset,
    RoleIn,
    RoleUpdate,
    StaffCreate,
    StaffUpdate,
    TokenCreate,
)
from siyu.tenants import service as tenants_service
from siyu.web import i18n_console  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import (
    FLASH_COOKIE,
    attempt,
    check_origin,
    domain_field_errors,
    error_flash,
    field_errors,
    first_error,
    query_url,
    safe_next,
    take_flash,
    to_int,
)
from siyu.web.nav import BUILT, COMING
from siyu.web.page import console_page, flash
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
AUDIT_PAGE_SIZE = 30

STAFF_STATUSES = {"active": "启用", "disabled": "已禁用"}
TOKEN_STATUSES = {"active": "有效", "expired": "已过期", "revoked": "已撤销"}
SMS_STATUSES = {"queued": "排队中", "sent": "已发送", "failed": "发送失败"}
SMS_TEMPLATES = {"verify_login": "登录验证码", "verify_bind": "绑定手机验证码"}
TOKEN_EXPIRY = [("30", "30 天"), ("90", "90 天"), ("180", "180 天"), ("365", "1 年"), ("", "永不过期")]

audit.describe(actions={
    "staff.create": "创建员工",
    "staff.update": "修改员工",
    "staff.reset_password": "重置员工密码",
    "role.create": "创建角色",
    "role.update": "修改角色",
    "role.delete": "删除角色",
    "token.create": "创建 API 令牌",
    "token.revoke": "撤销 API 令牌",
    "settings.update": "修改店铺设置",
    "store.create": "新建门店",
    "store.update": "修改门店",
    "customer.status": "修改客户状态",
    "customer.merge": "合并客户",
    "customer.identity_add": "客户绑定身份",
    "tenant.create": "开通商家",
    "tenant.suspend": "暂停商家",
    "tenant.resume": "恢复商家",
}, objects={"staff": "员工", "role": "角色", "api_token": "API 令牌", "store": "门店", "tenant": "店铺", "customer": "客户"})
ACTOR_KINDS = {"staff": "员工", "token": "API 令牌", "platform": "平台运营", "system": "系统", "customer": "客户"}
AUDIT_FIELDS = {
    "username": "用户名", "name": "名称", "phone": "手机号", "email": "邮箱", "role_id": "角色", "store_id": "门店",
    "status": "状态", "permissions": "权限", "description": "说明", "code": "编码", "address": "地址",
    "timezone": "时区", "contact_name": "联系人", "contact_phone": "联系电话", "service_phone": "客服电话",
    "welcome_text": "店铺欢迎语", "prefix": "前缀", "reason": "原因", "kind": "类型", "value": "标识",
    "merged_id": "被合并客户",
}

STAFF_FIELD_MESSAGES = {
    "username": "用户名需为 3–64 位字母、数字或 _ . @ -",
    "name": "请填写姓名（最多 100 字）",
    "password": "密码需为 8–128 位",
    "role_id": "请选择角色",
    "store_id": "请选择有效的门店",
    "phone": "请输入正确的 11 位手机号",
    "email": "邮箱格式不正确",
    "status": "状态无效",
}
ROLE_FIELD_MESSAGES = {
    "code": "编码需为 2–40 位小写字母、数字、_ 或 -，并以字母或数字开头",
    "name": "请填写角色名称（最多 100 字）",
    "description": "说明最多 200 字",
    "permissions": "权限无效",
}
TOKEN_FIELD_MESSAGES = {
    "name": "请填写令牌名称（最多 100 字）",
    "role_id": "请选择令牌使用的角色",
    "expires_in_days": "有效期无效",
}

#: The private-domain loop on the dashboard: step, English key, what happens, modules serving it.
LOOP_STEPS: list[tuple[str, str, str, list[str]]] = [
    ("引流", "acquire", "公域与线下流量经可追踪的渠道进入：门店二维码、包裹卡、短信链接、广告、直播间、海报。",
     ["scrm", "marketing"]),
    ("承接", "onboard", "访客成为可识别的客户：身份合并、打标签、分配给员工并及时欢迎。", ["customers", "scrm"]),
    ("互动", "engage", "内容、社群、一对一跟进、群发与直播，先交情后交易。", ["scrm", "live"]),
    ("转化", "convert", "商城、优惠券、限时折扣、拼团与个性化推荐。", ["catalog", "orders", "marketing"]),
    ("复购", "retain", "会员等级、积分、储值与生日礼遇，让会员持续回来。", ["members"]),
    ("裂变", "refer", "推荐有礼、分销员佣金与团长，让老客带来新客。", ["distribution", "marketing"]),
]


def _now_local(tz: str):
    return clock.now().astimezone(ZoneInfo(tz))


# -- sign-in ------------------------------------------------------------------------------------


def _login_form(request: Request, *, next_url: str, username: str = "", error: str = "",
                fields: dict[str, str] | None = None, status_code: int = 200,
                headers: dict[str, str] | None = None) -> HTMLResponse:
    message = take_flash(request)
    resp = render(request, "console/auth/login.html", {
        "heading": "登录商家后台", "subheading": "私域电商 · 商城与 SCRM 一体",
        "error": error, "fields": fields or {}, "username": username, "next": next_url, "message": message,
    }, status_code=status_code, headers=headers)
    resp.headers["Cache-Control"] = "no-store"
    if message:
        resp.delete_cookie(FLASH_COOKIE, path="/")
    return resp


@router.get("/admin/login")
async def login_page(request: Request, session: UoW, next: Annotated[str, Query(max_length=500)] = "") -> Response:
    next_url = safe_next(next)
    cookie = request.cookies.get(STAFF_COOKIE)
    if cookie:
        info = await lookup_session(session, cookie, "staff")
        found = await service.staff_for_session(session, info.principal_id) if info else None
        if found is not None:
            tenant = await tenants_service.get_tenant(session, found.staff.tenant_id)
            if tenant.status == "active":
                return RedirectResponse(next_url, status_code=303)
    return _login_form(request, next_url=next_url)


@router.post("/admin/login")
async def login_submit(request: Request, session: UoW,
                       username: Annotated[str, Form(max_length=200)] = "",
                       password: Annotated[str, Form(max_length=200)] = "",
                       next_url: Annotated[str, Form(alias="next", max_length=500)] = "") -> Response:
    check_origin(request)
    next_url = safe_next(next_url)
    username = username.strip()
    fields: dict[str, str] = {}
    if not username:
        fields["username"] = _("请输入用户名")
    if not password:
        fields["password"] = _("请输入密码")
    if fields:
        return _login_form(request, next_url=next_url, username=username, error=first_error(fields), fields=fields,
                           status_code=422)
    signed, err = await attempt(session, lambda: sign_in_staff(request, session, username, password))
    if err is not None or signed is None:
        assert err is not None
        return _login_form(request, next_url=next_url, username=username, error=err.message(),
                           status_code=err.status, headers=err.headers or None)
    resp = RedirectResponse(next_url, status_code=303)
    set_session_cookie(resp, request, STAFF_COOKIE, signed.token, signed.days)
    return flash(resp, _("欢迎回来，%(name)s") % {"name": signed.name})


@router.post("/admin/logout")
async def logout(request: Request, session: UoW, me: CurrentStaff) -> Response:
    resp = await sign_out(request, session, STAFF_COOKIE, RedirectResponse("/admin/login", status_code=303))
    return flash(resp, _("已退出登录"))


# -- 工作台 -------------------------------------------------------------------------------------


@router.get("/admin")
async def dashboard(request: Request, session: UoW, me: CurrentStaff) -> Response:
    from siyu.customers import service as customers_service

    stats: list[dict[str, Any]] = []
    if me.can("staff.read"):
        staff_total = (await service.list_staff(session, me.scope, limit=1))[1]
        staff_active = (await service.list_staff(session, me.scope, status="active", limit=1))[1]
        stats.append({"label": "员工总数", "value": staff_total, "unit": "人", "href": "/admin/staff",
                      "note": _("%(n)s 人启用中") % {"n": staff_active}})
    if me.can("stores.read"):
        stores_total = (await tenants_service.list_stores(session, me.scope, None, 0, 1))[1]
        stats.append({"label": "门店总数", "value": stores_total, "unit": "家", "href": "/admin/stores",
                      "note": _("线下门店与导购归属")})
    if me.can("customers.read"):
        customers_total = await customers_service.count_customers(session, me.scope)
        new_count = await customers_service.count_customers(session, me.scope, since=clock.now() - timedelta(days=7))
        stats.append({"label": "客户总数", "value": customers_total, "unit": "位", "href": "/admin/customers",
                      "note": _("已识别的私域客户")})
        stats.append({"label": "近 7 天新增客户", "value": new_count, "unit": "位",
                      "href": "/admin/customers", "note": _("按注册时间统计")})

    hour = _now_local(me.scope.timezone).hour
    greeting = "早上好" if 5 <= hour < 12 else ("下午好" if 12 <= hour < 18 else "晚上好")

    def module_link(code: str) -> dict[str, Any]:
        if code in BUILT:
            title, href, permission = BUILT[code]
            return {"title": title, "href": href if me.can(permission) else None, "coming": False}
        return {"title": COMING[code][0], "href": f"/admin/coming/{code}", "coming": True}

    loop = [{"step": step, "key": key, "description": desc, "modules": [module_link(c) for c in codes]}
            for step, key, desc, codes in LOOP_STEPS]

    quick = [
        (me.can("staff.write"), "添加员工", "/admin/staff/new", "🧑‍💼"),
        (me.can("stores.write"), "新建门店", "/admin/stores/new", "🏬"),
        (me.can("customers.read"), "查看客户", "/admin/customers", "👥"),
        (me.can("settings.read"), "店铺设置", "/admin/settings", "⚙️"),
        (me.can("roles.write"), "新建角色", "/admin/roles/new", "🔐"),
        (me.can("tokens.manage"), "创建 API 令牌", "/admin/tokens", "🔑"),
        (me.can("sms.read"), "短信记录", "/admin/sms", "✉️"),
        (me.can("audit.read"), "操作日志", "/admin/audit", "📜"),
    ]
    return console_page(request, me, "console/dashboard.html", {
        "title": _("工作台"), "greeting": greeting, "stats": stats, "loop": loop,
        "quick_links": [{"title": t, "href": h, "icon": i} for ok, t, h, i in quick if ok],
        "storefront_url": f"/m/{me.scope.code}/", "permission_count": len(me.permissions),
    })


# -- staff --------------------------------------------------------------------------------------


async def _roles_and_stores(session: AsyncSession, scope: TenantScope) -> tuple[Sequence[Role], list[Any]]:
    roles = await service.list_roles(session, scope)
    stores, _total = await tenants_service.list_stores(session, scope, None, 0, 500)
    return roles, list(stores)


def _role_options(roles: Iterable[Role]) -> list[tuple[str, str]]:
    return [(str(r.id), r.name) for r in roles]


def _store_options(stores: Iterable[Any]) -> list[tuple[str, str]]:
    return [(str(s.id), s.name + ("" if s.status == "open" else _("（已关闭）"))) for s in stores]


@router.get("/admin/staff")
async def staff_list(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("staff.read")],
                     q: Annotated[str, Query(max_length=100)] = "",
                     role: Annotated[str, Query(max_length=20)] = "",
                     store: Annotated[str, Query(max_length=20)] = "",
                     status: Annotated[str, Query(max_length=20)] = "",
                     page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    q = q.strip()
    role_id, store_id = to_int(role), to_int(store)
    status = status if status in STAFF_STATUSES else ""
    rows, total = await service.list_staff(session, me.scope, q=q or None, role_id=role_id, store_id=store_id,
                                           status=status or None, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    roles, stores = await _roles_and_stores(session, me.scope)
    role_names = {r.id: r.name for r in roles}
    store_names = {s.id: s.name for s in stores}
    items = [{"s": s, "phone": mask_phone(s.phone), "role": role_names.get(s.role_id, f"#{s.role_id}"),
              "store": store_names.get(s.store_id) if s.store_id else None, "is_me": s.id == me.staff_id}
             for s in rows]
    return console_page(request, me, "console/staff/list.html", {
        "title": _("员工"), "items": items, "total": total, "page": page, "page_size": PAGE_SIZE,
        "pages": max(1, math.ceil(total / PAGE_SIZE)),
        "base_url": query_url("/admin/staff", q=q, role=role_id, store=store_id, status=status),
        "q": q, "role": role_id, "store": store_id, "status": status, "filtered": bool(q or role_id or store_id or status),
        "role_options": _role_options(roles), "store_options": _store_options(stores),
        "statuses": STAFF_STATUSES, "can_write": me.can("staff.write"),
    })


async def _staff_new_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, values: dict[str, Any] | None = None,
                          errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    roles, stores = await _roles_and_stores(session, me.scope)
    ctx: dict[str, Any] = {
        "title": _("添加员工"), "values": values or {}, "errors": errors or {},
        "role_options": _role_options(roles), "store_options": _store_options(stores),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/staff/new.html", ctx, status_code=status_code)


@router.get("/admin/staff/new")
async def staff_new(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("staff.write")],
                    store: Annotated[str, Query(max_length=20)] = "") -> Response:
    return await _staff_new_page(request, session, me, values={"store_id": to_int(store)})


@router.post("/admin/staff/new")
async def staff_create(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("staff.write")],
                       username: Annotated[str, Form(max_length=200)] = "",
                       name: Annotated[str, Form(max_length=200)] = "",
                       password: Annotated[str, Form(max_length=200)] = "",
                       role_id: Annotated[str, Form(max_length=20)] = "",
                       store_id: Annotated[str, Form(max_length=20)] = "",
                       phone: Annotated[str, Form(max_length=30)] = "",
                       email: Annotated[str, Form(max_length=200)] = "") -> Response:
    values: dict[str, Any] = {"username": username.strip(), "name": name.strip(), "role_id": to_int(role_id),
                              "store_id": to_int(store_id), "phone": phone.strip(), "email": email.strip()}
    try:
        data = StaffCreate(username=values["username"], name=values["name"], password=password,
                           role_id=role_id.strip() or None, store_id=store_id.strip() or None,
                           phone=values["phone"] or None, email=values["email"] or None)
    except ValidationError as exc:
        errors = field_errors(exc, STAFF_FIELD_MESSAGES)
        return await _staff_new_page(request, session, me, values=values, errors=errors, status_code=422,
                                     message=first_error(errors))
    staff, err = await attempt(session, lambda: service.create_staff(session, me.scope, data, me.grantor))
    if err is not None or staff is None:
        assert err is not None
        errors = domain_field_errors(err, STAFF_FIELD_MESSAGES)
        return await _staff_new_page(request, session, me, values=values, errors=errors, status_code=err.status,
                                     message=err.message())
    resp = RedirectResponse(f"/admin/staff/{staff.id}", status_code=303)
    return flash(resp, _("已添加员工 %(name)s，请把用户名和初始密码告知本人") % {"name": staff.name})


async def _staff_edit_page(request: Request, session: AsyncSession, me: StaffPrincipal, staff_id: int, *,
                           values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                           pw_errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    s = await service.get_staff(session, me.scope, staff_id)
    roles, stores = await _roles_and_stores(session, me.scope)
    role = next((r for r in roles if r.id == s.role_id), None)
    store = next((st for st in stores if st.id == s.store_id), None)
    current = {"name": s.name, "role_id": s.role_id, "store_id": s.store_id, "email": s.email or "", "status": s.status,
               "phone": ""}
    current.update(values or {})
    ctx: dict[str, Any] = {
        "title": s.name, "s": s, "phone": mask_phone(s.phone), "role": role, "store": store,
        "values": current, "errors": errors or {}, "pw_errors": pw_errors or {},
        "role_options": _role_options(roles), "store_options": _store_options(stores),
        "statuses": STAFF_STATUSES, "can_write": me.can("staff.write"), "is_me": s.id == me.staff_id,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/staff/edit.html", ctx, status_code=status_code)


@router.get("/admin/staff/{staff_id}")
async def staff_edit(staff_id: PathId, request: Request, session: UoW,
                     me: Annotated[StaffPrincipal, require("staff.read")]) -> Response:
    return await _staff_edit_page(request, session, me, staff_id)


@router.post("/admin/staff/{staff_id}")
async def staff_update(staff_id: PathId, request: Request, session: UoW,
                       me: Annotated[StaffPrincipal, require("staff.write")],
                       name: Annotated[str, Form(max_length=200)] = "",
                       role_id: Annotated[str, Form(max_length=20)] = "",
                       store_id: Annotated[str, Form(max_length=20)] = "",
                       phone: Annotated[str, Form(max_length=30)] = "",
                       clear_phone: Annotated[str, Form(max_length=5)] = "",
                       email: Annotated[str, Form(max_length=200)] = "",
                       status: Annotated[str, Form(max_length=20)] = "") -> Response:
    values: dict[str, Any] = {"name": name.strip(), "role_id": to_int(role_id), "store_id": to_int(store_id),
                              "phone": phone.strip(), "email": email.strip(), "status": status}
    changes: dict[str, Any] = {"name": values["name"], "role_id": role_id.strip() or None,
                               "store_id": store_id.strip() or None, "email": values["email"] or None,
                               "status": status or None}
    if values["phone"]:
        changes["phone"] = values["phone"]
    elif clear_phone:
        changes["phone"] = None
    try:
        data = StaffUpdate(**changes)
        if data.role_id is None:
            raise ValueError("role")
    except (ValidationError, ValueError) as exc:
        errors = field_errors(exc, STAFF_FIELD_MESSAGES) if isinstance(exc, ValidationError) else {"role_id": _("请选择角色")}
        return await _staff_edit_page(request, session, me, staff_id, values=values, errors=errors, status_code=422,
                                      message=first_error(errors))
    staff, err = await attempt(session, lambda: service.update_staff(session, me.scope, staff_id, data, me.grantor))
    if err is not None or staff is None:
        assert err is not None
        if err.status == 404:
            raise err
        return await _staff_edit_page(request, session, me, staff_id, values=values,
                                      errors=domain_field_errors(err, STAFF_FIELD_MESSAGES), status_code=err.status,
                                      message=err.message())
    msg = _("已保存 %(name)s 的资料") % {"name": staff.name}
    if staff.status == "disabled":
        msg = _("已保存；%(name)s 已禁用，其登录会话已全部失效") % {"name": staff.name}
    return flash(RedirectResponse(f"/admin/staff/{staff_id}", status_code=303), msg)


@router.post("/admin/staff/{staff_id}/password")
async def staff_password(staff_id: PathId, request: Request, session: UoW,
                         me: Annotated[StaffPrincipal, require("staff.write")],
                         password: Annotated[str, Form(max_length=200)] = "",
                         password2: Annotated[str, Form(max_length=200)] = "") -> Response:
    try:
        data = PasswordReset(password=password)
    except ValidationError:
        errors = {"password": _("密码需为 8–128 位")}
        return await _staff_edit_page(request, session, me, staff_id, pw_errors=errors, status_code=422,
                                      message=errors["password"])
    if password2 != password:
        errors = {"password2": _("两次输入的密码不一致")}
        return await _staff_edit_page(request, session, me, staff_id, pw_errors=errors, status_code=422,
                                      message=errors["password2"])
    staff = await service.reset_password(session, me.scope, staff_id, data.password, me.grantor)
    if staff.id == me.staff_id:
        resp = RedirectResponse("/admin/login", status_code=303)
        clear_cookie(resp, STAFF_COOKIE)
        return flash(resp, _("密码已修改，请用新密码重新登录"))
    return flash(RedirectResponse(f"/admin/staff/{staff_id}", status_code=303),
                 _("已为 %(name)s 设置新密码，其已登录的设备均已退出") % {"name": staff.name})


# -- roles --------------------------------------------------------------------------------------


def _permission_groups(selected: Iterable[str]) -> list[dict[str, Any]]:
    chosen = set(selected)
    return [{"code": g, "title": zh, "permissions": [{"code": p.code, "title": p.zh, "checked": p.code in chosen} for p in perms],
             "checked": sum(1 for p in perms if p.code in chosen)}
            for g, zh, _en, perms in grouped()]


@router.get("/admin/roles")
async def role_list(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("staff.read")]) -> Response:
    roles = await service.list_roles(session, me.scope)
    items = []
    all_count = sum(len(perms) for *_rest, perms in grouped())
    for r in roles:
        _rows, staff_count = await service.list_staff(session, me.scope, role_id=r.id, limit=1)
        perms = service.effective_permissions(r)
        items.append({"r": r, "staff_count": staff_count, "perm_count": len(perms), "all": len(perms) >= all_count,
                      "groups": [zh for _g, zh, _en, ps in grouped() if any(p.code in perms for p in ps)]})
    return console_page(request, me, "console/roles/list.html", {
        "title": _("角色与权限"), "items": items, "can_write": me.can("roles.write"),
    })


def _role_page(request: Request, me: StaffPrincipal, *, role: Role | None, values: dict[str, Any],
               errors: dict[str, str] | None = None, status_code: int = 200, message: str = "",
               staff_count: int = 0) -> HTMLResponse:
    is_owner = role is not None and role.code == "owner"
    readonly = is_owner or not me.can("roles.write")
    selected = service.effective_permissions(role) if is_owner and role is not None else values.get("permissions", [])
    ctx: dict[str, Any] = {
        "title": role.name if role else _("新建角色"), "role": role, "values": values, "errors": errors or {},
        "groups": _permission_groups(selected), "readonly": readonly, "is_owner": is_owner,
        "can_write": me.can("roles.write"), "staff_count": staff_count,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/roles/edit.html", ctx, status_code=status_code)


@router.get("/admin/roles/new")
async def role_new(request: Request, me: Annotated[StaffPrincipal, require("roles.write")]) -> Response:
    return _role_page(request, me, role=None, values={"permissions": []})


@router.post("/admin/roles/new")
async def role_create(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("roles.write")],
                      code: Annotated[str, Form(max_length=100)] = "",
                      name: Annotated[str, Form(max_length=200)] = "",
                      description: Annotated[str, Form(max_length=400)] = "",
                      permissions: Annotated[list[str] | None, Form()] = None) -> Response:
    permissions = permissions or []
    values = {"code": code.strip(), "name": name.strip(), "description": description.strip(), "permissions": permissions}
    try:
        data = RoleIn(code=values["code"], name=values["name"], description=values["description"] or None,
                      permissions=permissions)
    except ValidationError as exc:
        errors = field_errors(exc, ROLE_FIELD_MESSAGES)
        return _role_page(request, me, role=None, values=values, errors=errors, status_code=422, message=first_error(errors))
    role, err = await attempt(session, lambda: service.create_role(session, me.scope, data, me.grantor))
    if err is not None or role is None:
        assert err is not None
        errors = {"code": err.message()} if err.code == "role_code_taken" else domain_field_errors(err, ROLE_FIELD_MESSAGES)
        return _role_page(request, me, role=None, values=values, errors=errors, status_code=err.status, message=err.message())
    return flash(RedirectResponse("/admin/roles", status_code=303), _("已创建角色 %(name)s") % {"name": role.name})


@router.get("/admin/roles/{role_id}")
async def role_edit(role_id: PathId, request: Request, session: UoW,
                    me: Annotated[StaffPrincipal, require("staff.read")]) -> Response:
    role = await service.get_role(session, me.scope, role_id)
    _rows, staff_count = await service.list_staff(session, me.scope, role_id=role.id, limit=1)
    return _role_page(request, me, role=role, staff_count=staff_count, values={
        "code": role.code, "name": role.name, "description": role.description or "", "permissions": list(role.permissions)})


@router.post("/admin/roles/{role_id}")
async def role_update(role_id: PathId, request: Request, session: UoW, me: Annotated[StaffPrincipal, require("roles.write")],
                      name: Annotated[str, Form(max_length=200)] = "",
                      description: Annotated[str, Form(max_length=400)] = "",
                      permissions: Annotated[list[str] | None, Form()] = None) -> Response:
    role = await service.get_role(session, me.scope, role_id)
    permissions = permissions or []
    values = {"code": role.code, "name": name.strip(), "description": description.strip(), "permissions": permissions}
    try:
        data = RoleUpdate(name=values["name"], description=values["description"] or None, permissions=permissions)
        if not data.name:
            raise ValueError("name")
    except (ValidationError, ValueError) as exc:
        errors = field_errors(exc, ROLE_FIELD_MESSAGES) if isinstance(exc, ValidationError) else {"name": _(ROLE_FIELD_MESSAGES["name"])}
        return _role_page(request, me, role=role, values=values, errors=errors, status_code=422, message=first_error(errors))
    updated, err = await attempt(session, lambda: service.update_role(session, me.scope, role_id, data, me.grantor))
    if err is not None or updated is None:
        assert err is not None
        return _role_page(request, me, role=role, values=values, errors=domain_field_errors(err, ROLE_FIELD_MESSAGES),
                          status_code=err.status, message=err.message())
    return flash(RedirectResponse(f"/admin/roles/{role_id}", status_code=303),
                 _("已保存角色 %(name)s；使用该角色的员工下次操作即按新权限生效") % {"name": updated.name})


@router.post("/admin/roles/{role_id}/delete")
async def role_delete(role_id: PathId, session: UoW, me: Annotated[StaffPrincipal, require("roles.write")]) -> Response:
    role = await service.get_role(session, me.scope, role_id)
    name = role.name
    _none, err = await attempt(session, lambda: service.delete_role(session, me.scope, role_id))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(RedirectResponse(f"/admin/roles/{role_id}", status_code=303), err.message(), "error")
    return flash(RedirectResponse("/admin/roles", status_code=303), _("已删除角色 %(name)s") % {"name": name})


# -- API tokens ---------------------------------------------------------------------------------


def _token_row(t: ApiToken, role_names: dict[int, str]) -> dict[str, Any]:
    now = clock.now()
    status = "revoked" if t.revoked_at else ("expired" if t.expires_at and t.expires_at <= now else "active")
    role = role_names.get(t.role_id, f"#{t.role_id}") if t.role_id is not None else _("（角色已删除）")
    return {"t": t, "status": status, "role": role}


async def _tokens_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, values: dict[str, Any] | None = None,
                       errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    roles = await service.list_roles(session, me.scope)
    role_names = {r.id: r.name for r in roles}
    tokens = await service.list_tokens(session, me.scope)
    ctx: dict[str, Any] = {
        "title": _("API 令牌"), "items": [_token_row(t, role_names) for t in tokens],
        "role_options": _role_options(r for r in roles if r.code != "owner"), "expiry_options": TOKEN_EXPIRY,
        "values": values or {"expires_in_days": "365"}, "errors": errors or {}, "statuses": TOKEN_STATUSES,
        "open_form": bool(errors or message),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/tokens/list.html", ctx, status_code=status_code)


@router.get("/admin/tokens")
async def token_list(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("tokens.manage")]) -> Response:
    return await _tokens_page(request, session, me)


@router.post("/admin/tokens")
async def token_create(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("tokens.manage")],
                       name: Annotated[str, Form(max_length=200)] = "",
                       role_id: Annotated[str, Form(max_length=20)] = "",
                       expires_in_days: Annotated[str, Form(max_length=10)] = "") -> Response:
    values = {"name": name.strip(), "role_id": to_int(role_id), "expires_in_days": expires_in_days.strip()}
    try:
        data = TokenCreate(name=values["name"], role_id=role_id.strip() or None,
                           expires_in_days=values["expires_in_days"] or None)
    except ValidationError as exc:
        errors = field_errors(exc, TOKEN_FIELD_MESSAGES)
        return await _tokens_page(request, session, me, values=values, errors=errors, status_code=422,
                                  message=first_error(errors))
    result, err = await attempt(session, lambda: service.create_token(session, me.scope, data, me.staff_id, me.grantor))
    if err is not None or result is None:
        assert err is not None
        return await _tokens_page(request, session, me, values=values, errors=domain_field_errors(err, TOKEN_FIELD_MESSAGES),
                                  status_code=err.status, message=err.message())
    token, raw = result
    role = await service.get_role(session, me.scope, data.role_id)
    resp = console_page(request, me, "console/tokens/created.html", {
        "title": _("令牌已创建"), "t": token, "raw": raw, "role": role,
    })
    resp.headers["Cache-Control"] = "no-store"
    return resp


@router.post("/admin/tokens/{token_id}/revoke")
async def token_revoke(token_id: PathId, request: Request, session: UoW,
                       me: Annotated[StaffPrincipal, require("tokens.manage")]) -> Response:
    token = await service.revoke_token(session, me.scope, token_id)
    if request.headers.get("hx-request"):
        roles = await service.list_roles(session, me.scope)
        request.state.csrf_token = me.csrf_token or ""
        return render(request, "console/tokens/_row.html", {
            "row": _token_row(token, {r.id: r.name for r in roles}), "statuses": TOKEN_STATUSES, "just_revoked": True,
        }, headers={"HX-Trigger": json.dumps({"siyu-toast": _("已撤销令牌 %(name)s") % {"name": token.name}})})
    return flash(RedirectResponse("/admin/tokens", status_code=303), _("已撤销令牌 %(name)s") % {"name": token.name})


# -- audit log ----------------------------------------------------------------------------------


def _show_value(key: str, value: Any, role_names: dict[int, str], store_names: dict[int, str], full_phone: bool) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("是") if value else _("否")
    if key == "role_id" and isinstance(value, int):
        return f"{_(role_names[value])} (#{value})" if value in role_names else f"#{value}"
    if key == "store_id" and isinstance(value, int):
        return f"{store_names[value]} (#{value})" if value in store_names else f"#{value}"
    if "phone" in key and isinstance(value, str) and len(value) == 11 and value.isdigit() and not full_phone:
        return mask_phone(value)
    if key == "status" and isinstance(value, str):
        labels = {**STAFF_STATUSES, "open": "营业中", "closed": "已关闭", "suspended": "已暂停", "blocked": "已停用"}
        return _(labels.get(value, value))
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _audit_diff(before: dict[str, Any] | None, after: dict[str, Any] | None, role_names: dict[int, str],
                store_names: dict[int, str], full_phone: bool) -> list[dict[str, Any]]:
    b, a = before or {}, after or {}
    keys = list(dict.fromkeys([*b.keys(), *a.keys()]))
    rows = []
    for k in keys:
        bv, av = b.get(k), a.get(k)
        row: dict[str, Any] = {
            "key": k, "label": AUDIT_FIELDS.get(k), "changed": before is not None and after is not None and bv != av,
            "before": _show_value(k, bv, role_names, store_names, full_phone) if before is not None and k in b else "",
            "after": _show_value(k, av, role_names, store_names, full_phone) if after is not None and k in a else "",
        }
        if isinstance(bv, list) and isinstance(av, list):
            row["added"] = [x for x in av if x not in bv]
            row["removed"] = [x for x in bv if x not in av]
        rows.append(row)
    return rows


@router.get("/admin/audit")
async def audit_list(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("audit.read")],
                     action: Annotated[str, Query(max_length=80)] = "",
                     actor: Annotated[str, Query(max_length=100)] = "",
                     object_type: Annotated[str, Query(max_length=40)] = "",
                     page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    action, actor, object_type = action.strip(), actor.strip(), object_type.strip()
    rows, total = await service.audit_entries(session, me.scope, action=action or None, actor=actor or None,
                                              object_type=object_type or None, offset=(page - 1) * AUDIT_PAGE_SIZE,
                                              limit=AUDIT_PAGE_SIZE)
    roles, stores = await _roles_and_stores(session, me.scope)
    role_names = {r.id: r.name for r in roles}
    store_names = {s.id: s.name for s in stores}
    full = me.can("customers.phone")
    items = [{"e": e, "action": audit.ACTION_LABELS.get(e.action), "object": audit.OBJECT_LABELS.get(e.object_type, e.object_type),
              "actor_kind": ACTOR_KINDS.get(e.actor_kind, e.actor_kind),
              "diff": _audit_diff(e.before, e.after, role_names, store_names, full)} for e in rows]
    return console_page(request, me, "console/audit/list.html", {
        "title": _("操作日志"), "items": items, "total": total, "page": page, "page_size": AUDIT_PAGE_SIZE,
        "base_url": query_url("/admin/audit", action=action, actor=actor, object_type=object_type),
        "action": action, "actor": actor, "object_type": object_type, "filtered": bool(action or actor or object_type),
        "action_options": sorted(audit.ACTION_LABELS.items()), "object_options": list(audit.OBJECT_LABELS.items()),
    })


# -- SMS outbox ---------------------------------------------------------------------------------


@router.get("/admin/sms")
async def sms_list(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("sms.read")],
                   phone: Annotated[str, Query(max_length=30)] = "",
                   page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    phone = phone.strip().replace(" ", "").removeprefix("+86")
    rows, total = await service.sms_messages(session, me.scope, phone=phone or None, offset=(page - 1) * PAGE_SIZE,
                                             limit=PAGE_SIZE)
    full = me.can("customers.phone")
    items = [{"m": m, "phone": m.phone if full else mask_phone(m.phone), "template": SMS_TEMPLATES.get(m.template)}
             for m in rows]
    return console_page(request, me, "console/sms/list.html", {
        "title": _("短信记录"), "items": items, "total": total, "page": page, "page_size": PAGE_SIZE,
        "base_url": query_url("/admin/sms", phone=phone), "phone": phone, "full_phone": full,
        "statuses": SMS_STATUSES, "sandbox": runtime(request).settings.sms_provider == "sandbox",
    })
