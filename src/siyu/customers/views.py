"""Pages of the customers module: the H5 storefront shell (``/m/{shop}/...``: home, sign-in,
"我的", the address book under ``/m/{shop}/me/addresses``; the cart tab is served by
``siyu.orders.views_store``) and the console's customer list and detail (``/admin/customers``).

The JSON APIs (``customers/api.py``) serve mini programs and integrations; these pages call
the same services. Storefront forms are plain HTML posts so they work without JavaScript;
Alpine only adds the SMS-code button (countdown, sandbox hint).

CSRF: signed-in storefront forms carry ``_csrf`` (checked by the shopper dependency); the
sign-in forms are served before any session exists, so they are protected by checking that
the ``Origin`` header, when the browser sends one, names this site.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.customers import service
from siyu.customers.access import (
    CUSTOMER_COOKIE,
    CurrentShop,
    CurrentShopper,
    OptionalShopper,
    Shop,
    ShopperSession,
)
from siyu.customers.api import mini_program
from siyu.customers.schemas import (
    MAX_ADDRESSES,
    PROVINCES,
    AddressIn,
    AddressUpdate,
    BindPhone,
    ProfileUpdate,
    SmsLogin,
    WechatLogin,
)
from siyu.kit.errors import NotFound
from siyu.kit.i18n import gettext as _
from siyu.kit.security import mask_phone
from siyu.kit.sessions import revoke_session
from siyu.kit.types import PathId
from siyu.kit.web import UoW, clear_cookie, client_ip, runtime, set_session_cookie
from siyu.staff import service as staff_service
from siyu.staff.access import StaffPrincipal, require
from siyu.tenants import service as tenants_service
from siyu.web import i18n_shipping, i18n_store  # noqa: F401  (register the English of these pages)
from siyu.web.forms import (
    FLASH_COOKIE,
    attempt,
    check_origin,
    field_errors,
    first_error,
    safe_next,
    take_flash,
)
from siyu.web.page import console_page, flash
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
_CODE_IN_SMS = re.compile(r"(\d{4,8})")

IDENTITY_KINDS = {
    "phone": "手机号",
    "openid": "微信小程序",
    "unionid": "微信开放平台",
    "wecom_external": "企业微信",
}
REGISTERED_VIA = {"sms": "短信验证码", "wechat": "微信", "import": "导入"}
STATUSES = {"active": "正常", "blocked": "已停用", "merged": "已合并"}


# -- shared helpers ---------------------------------------------------------------------------


def _local(value: datetime | None, tz: str, fmt: str = "%Y-%m-%d") -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(tz)).strftime(fmt)


def _field_problem(exc: ValidationError, messages: dict[str, str]) -> tuple[str, dict[str, str]]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        name = str(err["loc"][0]) if err.get("loc") else ""
        if name in messages and name not in fields:
            fields[name] = _(messages[name])
    first = next(iter(fields.values()), _("提交的内容有误"))
    return first, fields


# -- storefront -------------------------------------------------------------------------------


def _sms_sandbox(request: Request) -> bool:
    return runtime(request).settings.reveal_sandbox_codes


def _wechat_sandbox(request: Request) -> bool:
    return runtime(request).settings.wechat_provider == "sandbox"


def _store_page(request: Request, shop: Shop, template: str, context: dict[str, Any] | None = None, *,
                shopper: ShopperSession | None = None, active_tab: str = "", status_code: int = 200) -> HTMLResponse:
    customer = shopper.customer if shopper else None
    request.state.csrf_token = (shopper.csrf_token if customer and shopper and shopper.via == "cookie" else "") or ""
    base = f"/m/{shop.scope.code}"
    ctx: dict[str, Any] = {
        "area": "store",
        "shop": shop,
        "tenant_name": shop.name,
        "tenant_code": shop.scope.code,
        "base": base,
        "customer": customer,
        "active_tab": active_tab,
        "flash": take_flash(request),
        "sms_sandbox": _sms_sandbox(request),
        "wechat_sandbox": _wechat_sandbox(request),
    }
    ctx.update(context or {})
    resp = render(request, template, ctx, status_code=status_code)
    resp.headers["Cache-Control"] = "no-store"
    if ctx["flash"]:
        resp.delete_cookie(FLASH_COOKIE, path="/")
    return resp


@router.get("/m")
@router.get("/m/")
async def storefront_root(request: Request, session: UoW) -> Response:
    code = await tenants_service.default_storefront_code(session)
    if code:
        return RedirectResponse(f"/m/{code}/", status_code=307)
    return render(request, "store/no_shop.html")


@router.get("/m/{shop}/")
async def home(request: Request, session: UoW, shopper: OptionalShopper) -> Response:
    from siyu.catalog import service as catalog_service

    shop = shopper.shop
    # On-sale products, in the merchant's order (the category tab and search live in
    # siyu.catalog.views at /m/{shop}/category).
    featured, _total = await catalog_service.list_products(
        session, shop.scope, catalog_service.ProductQuery(storefront=True, sort="sort"), limit=10)
    return _store_page(request, shop, "store/home.html", {
        "welcome_text": (shop.settings.get("welcome_text") or "").strip(),
        "service_phone": (shop.settings.get("service_phone") or "").strip(),
        "featured": featured,
    }, shopper=shopper, active_tab="home")


# sign-in ---------------------------------------------------------------------------------------


def _login_page(request: Request, shop: Shop, *, next_url: str, phone: str = "", error: str = "",
                fields: dict[str, str] | None = None, wechat_code: str = "", status_code: int = 200) -> HTMLResponse:
    return _store_page(request, shop, "store/login.html", {
        "next": next_url, "phone": phone, "error": error, "fields": fields or {}, "wechat_code": wechat_code,
    }, active_tab="me", status_code=status_code)


@router.get("/m/{shop}/login")
async def login_page(request: Request, shopper: OptionalShopper,
                     next: Annotated[str, Query(max_length=500)] = "") -> Response:
    me_url = f"/m/{shopper.shop.scope.code}/me"
    if shopper.customer is not None:
        return RedirectResponse(safe_next(next, me_url), status_code=303)
    return _login_page(request, shopper.shop, next_url=safe_next(next, ""))


@router.post("/m/{shop}/login")
async def login_submit(request: Request, session: UoW, shop: CurrentShop,
                       phone: Annotated[str, Form(max_length=30)] = "",
                       code: Annotated[str, Form(max_length=20)] = "",
                       next: Annotated[str, Form(max_length=500)] = "") -> Response:
    check_origin(request)
    next_url = safe_next(next, "")
    try:
        data = SmsLogin(phone=phone, code=code.strip())
    except ValidationError as exc:
        error, fields = _field_problem(exc, {"phone": "请输入正确的 11 位手机号", "code": "请输入短信验证码"})
        return _login_page(request, shop, next_url=next_url, phone=phone.strip(), error=error, fields=fields, status_code=422)
    rt = runtime(request)
    signed, err = await attempt(session, lambda: service.login_with_code(
        session, rt.kv, rt.secret_key, shop.scope, data.phone, data.code, days=rt.settings.session_days,
        ip=client_ip(request), user_agent=request.headers.get("user-agent")))
    if err is not None:
        return _login_page(request, shop, next_url=next_url, phone=data.phone, error=err.message(),
                           fields={"code": err.message()} if err.code.startswith("sms_code") else {}, status_code=err.status)
    assert signed is not None
    return _signed_in(request, shop, signed, next_url)


def _signed_in(request: Request, shop: Shop, signed: service.SignedIn, next_url: str) -> Response:
    resp = RedirectResponse(next_url or f"/m/{shop.scope.code}/me", status_code=303)
    set_session_cookie(resp, request, CUSTOMER_COOKIE, signed.token, runtime(request).settings.session_days)
    flash(resp, _("欢迎加入，已为您创建会员账号") if signed.created else _("登录成功"))
    return resp


@router.post("/m/{shop}/login/wechat")
async def login_wechat(request: Request, session: UoW, shop: CurrentShop,
                       code: Annotated[str, Form(max_length=200)] = "",
                       next: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Sandbox only: a browser cannot run ``wx.login``; the sandbox turns any code into a
    stable openid so the WeChat flow (and merging it with a phone) can be tried on H5."""
    check_origin(request)
    if not _wechat_sandbox(request):
        raise NotFound("page_not_found", "页面不存在", "No such page")
    next_url = safe_next(next, "")
    try:
        data = WechatLogin(code=code.strip())
    except ValidationError:
        return _login_page(request, shop, next_url=next_url, error=_("请填写沙箱微信身份标识"), wechat_code=code, status_code=422)
    rt = runtime(request)
    signed, err = await attempt(session, lambda: service.login_with_wechat(
        session, mini_program(request, shop.settings), shop.scope, data.code, days=rt.settings.session_days,
        ip=client_ip(request), user_agent=request.headers.get("user-agent")))
    if err is not None:
        return _login_page(request, shop, next_url=next_url, error=err.message(), wechat_code=data.code, status_code=err.status)
    assert signed is not None
    return _signed_in(request, shop, signed, next_url)


@router.get("/m/{shop}/sandbox-sms")
async def sandbox_sms(request: Request, session: UoW, shop: CurrentShop,
                      phone: Annotated[str, Query(max_length=30)] = "") -> Response:
    """The newest text sent to ``phone`` by this shop. Exists only with the sandbox SMS
    provider, which delivers nothing: this is how a tester reads the code."""
    if not _sms_sandbox(request):
        raise NotFound("page_not_found", "页面不存在", "No such page")
    phone = phone.strip().removeprefix("+86").strip()
    headers = {"Cache-Control": "no-store"}
    if not re.fullmatch(r"1[3-9]\d{9}", phone):
        return JSONResponse({"found": False}, headers=headers)
    rows, _total = await staff_service.sms_messages(session, shop.scope, phone=phone, limit=1)
    if not rows:
        return JSONResponse({"found": False}, headers=headers)
    msg = rows[0]
    m = _CODE_IN_SMS.search(msg.content)
    return JSONResponse({
        "found": True, "phone": mask_phone(msg.phone), "content": msg.content, "code": m.group(1) if m else None,
        "template": msg.template, "status": msg.status,
        "created_at": _local(msg.created_at, shop.scope.timezone, "%H:%M:%S"),
    }, headers=headers)


# 我的 ------------------------------------------------------------------------------------------


async def _me_page(request: Request, session: AsyncSession, me: ShopperSession, *, errors: dict[str, str] | None = None,
                   values: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    scope = me.shop.scope
    c = await service.get_customer(session, scope, me.customer.id)  # type: ignore[union-attr]
    identities = await service.identities_of(session, scope, c.id)
    linked = [
        {"kind": i.kind, "label": IDENTITY_KINDS.get(i.kind, i.kind),
         "value": mask_phone(i.value) if i.kind == "phone" else i.value[:10] + "…",
         "since": _local(i.created_at, scope.timezone)}
        for i in identities
    ]
    name = (c.nickname or "").strip() or _("会员")
    from siyu.orders.views_store import order_shortcuts

    order_links = await order_shortcuts(session, scope, c.id, f"/m/{scope.code}")
    return _store_page(request, me.shop, "store/me.html", {
        "order_links": order_links,
        "c": c,
        "display_name": name,
        "initial": name[:1].upper(),
        "masked_phone": mask_phone(c.phone),
        "member_since": _local(c.created_at, scope.timezone),
        "identities": linked,
        "has_wechat": any(i.kind in ("openid", "unionid") for i in identities),
        "errors": errors or {},
        "values": values or {},
    }, shopper=me, active_tab="me", status_code=status_code)


@router.get("/m/{shop}/me")
async def me_page(request: Request, session: UoW, me: CurrentShopper) -> Response:
    return await _me_page(request, session, me)


@router.post("/m/{shop}/me/nickname")
async def me_nickname(request: Request, session: UoW, me: CurrentShopper,
                      nickname: Annotated[str, Form(max_length=200)] = "") -> Response:
    try:
        data = ProfileUpdate(nickname=nickname)
    except ValidationError:
        return await _me_page(request, session, me, errors={"nickname": _("昵称需为 1–100 个字符")},
                              values={"nickname": nickname}, status_code=422)
    await service.update_nickname(session, me.shop.scope, me.customer.id, data.nickname)  # type: ignore[union-attr]
    return flash(RedirectResponse(f"/m/{me.shop.scope.code}/me", status_code=303), _("昵称已更新"))


@router.post("/m/{shop}/me/phone")
async def me_bind_phone(request: Request, session: UoW, me: CurrentShopper,
                        phone: Annotated[str, Form(max_length=30)] = "",
                        code: Annotated[str, Form(max_length=20)] = "") -> Response:
    values = {"phone": phone.strip()}
    try:
        data = BindPhone(phone=phone, code=code.strip())
    except ValidationError as exc:
        _msg, fields = _field_problem(exc, {"phone": "请输入正确的 11 位手机号", "code": "请输入短信验证码"})
        return await _me_page(request, session, me, errors={f"bind_{k}": v for k, v in fields.items()}, values=values,
                              status_code=422)
    rt = runtime(request)
    result, err = await attempt(session, lambda: service.bind_phone(
        session, rt.kv, rt.secret_key, me.shop.scope, me.customer.id, data.phone, data.code,  # type: ignore[union-attr]
        days=rt.settings.session_days))
    if err is not None:
        key = "bind_code" if err.code.startswith("sms_code") else "bind_phone"
        return await _me_page(request, session, me, errors={key: err.message()}, values=values, status_code=err.status)
    assert result is not None
    resp = RedirectResponse(f"/m/{me.shop.scope.code}/me", status_code=303)
    if result.session is not None:
        # This account was merged into the older one that owned the phone: continue as that one.
        set_session_cookie(resp, request, CUSTOMER_COOKIE, result.session.token, rt.settings.session_days)
    if result.merged_from:
        return flash(resp, _("手机号已绑定，并已与该手机号原有的会员账号合并"))
    return flash(resp, _("手机号已绑定"))


# 收货地址 ---------------------------------------------------------------------------------------

ADDRESS_FIELD_MESSAGES = {
    "receiver_name": "请填写收货人（最多 50 字）",
    "phone": "请输入正确的 11 位手机号",
    "province_code": "请选择省份",
    "city": "请填写城市（最多 40 字）",
    "district": "请填写区县（最多 40 字）",
    "detail": "请填写详细地址（2–200 字）",
    "postal_code": "邮政编码为 6 位数字，可不填",
}
AddressText = Annotated[str, Form(max_length=300)]


async def _addresses_page(request: Request, session: AsyncSession, me: ShopperSession, *, message: str = "",
                          status_code: int = 200) -> HTMLResponse:
    rows = await service.list_addresses(session, me.shop.scope, me.customer.id)  # type: ignore[union-attr]
    ctx: dict[str, Any] = {"addresses": rows, "max_addresses": MAX_ADDRESSES}
    if message:
        ctx["flash"] = {"kind": "error", "message": message}
    return _store_page(request, me.shop, "store/addresses.html", ctx, shopper=me, active_tab="me", status_code=status_code)


def _address_form(request: Request, me: ShopperSession, *, address_id: int | None, values: dict[str, Any],
                  errors: dict[str, str] | None = None, message: str = "", status_code: int = 200) -> HTMLResponse:
    ctx: dict[str, Any] = {"address_id": address_id, "values": values, "errors": errors or {}, "provinces": PROVINCES}
    if message:
        ctx["flash"] = {"kind": "error", "message": message}
    return _store_page(request, me.shop, "store/address_form.html", ctx, shopper=me, active_tab="me", status_code=status_code)


def _address_values(receiver_name: str, phone: str, province_code: str, city: str, district: str, detail: str,
                    postal_code: str, is_default: str) -> dict[str, Any]:
    return {"receiver_name": receiver_name.strip(), "phone": phone.strip(), "province_code": province_code.strip(),
            "city": city.strip(), "district": district.strip(), "detail": detail.strip(), "postal_code": postal_code.strip(),
            "is_default": is_default in ("1", "on", "true")}


@router.get("/m/{shop}/me/addresses")
async def addresses(request: Request, session: UoW, me: CurrentShopper) -> Response:
    return await _addresses_page(request, session, me)


@router.get("/m/{shop}/me/addresses/new")
async def address_new(request: Request, me: CurrentShopper) -> Response:
    return _address_form(request, me, address_id=None, values={"is_default": False})


@router.get("/m/{shop}/me/addresses/{address_id}")
async def address_edit(address_id: PathId, request: Request, session: UoW, me: CurrentShopper) -> Response:
    a = await service.get_address(session, me.shop.scope, me.customer.id, address_id)  # type: ignore[union-attr]
    values = {k: getattr(a, k) or "" for k in ("receiver_name", "phone", "province_code", "city", "district", "detail",
                                                 "postal_code")}
    values["is_default"] = a.is_default
    return _address_form(request, me, address_id=a.id, values=values)


async def _address_save(request: Request, session: AsyncSession, me: ShopperSession, address_id: int | None,
                        values: dict[str, Any]) -> Response:
    scope, cid = me.shop.scope, me.customer.id  # type: ignore[union-attr]
    try:
        data = AddressIn(**values)
    except ValidationError as exc:
        errors = field_errors(exc, ADDRESS_FIELD_MESSAGES)
        return _address_form(request, me, address_id=address_id, values=values, errors=errors, status_code=422,
                             message=first_error(errors))
    if address_id is None:
        _saved, err = await attempt(session, lambda: service.create_address(session, scope, cid, data))
    else:
        update = AddressUpdate(**data.model_dump())
        _saved, err = await attempt(session, lambda: service.update_address(session, scope, cid, address_id, update))
    if err is not None:
        if err.status == 404:
            raise err
        return _address_form(request, me, address_id=address_id, values=values, message=err.message(),
                             status_code=err.status)
    return flash(RedirectResponse(f"/m/{scope.code}/me/addresses", status_code=303), _("收货地址已保存"))


@router.post("/m/{shop}/me/addresses")
async def address_create(request: Request, session: UoW, me: CurrentShopper, receiver_name: AddressText = "",
                         phone: AddressText = "", province_code: AddressText = "", city: AddressText = "",
                         district: AddressText = "", detail: AddressText = "", postal_code: AddressText = "",
                         is_default: AddressText = "") -> Response:
    values = _address_values(receiver_name, phone, province_code, city, district, detail, postal_code, is_default)
    return await _address_save(request, session, me, None, values)


@router.post("/m/{shop}/me/addresses/{address_id}")
async def address_update(address_id: PathId, request: Request, session: UoW, me: CurrentShopper,
                         receiver_name: AddressText = "", phone: AddressText = "", province_code: AddressText = "",
                         city: AddressText = "", district: AddressText = "", detail: AddressText = "",
                         postal_code: AddressText = "", is_default: AddressText = "") -> Response:
    await service.get_address(session, me.shop.scope, me.customer.id, address_id)  # type: ignore[union-attr]
    values = _address_values(receiver_name, phone, province_code, city, district, detail, postal_code, is_default)
    return await _address_save(request, session, me, address_id, values)


@router.post("/m/{shop}/me/addresses/{address_id}/default")
async def address_default(address_id: PathId, session: UoW, me: CurrentShopper) -> Response:
    await service.set_default_address(session, me.shop.scope, me.customer.id, address_id)  # type: ignore[union-attr]
    return flash(RedirectResponse(f"/m/{me.shop.scope.code}/me/addresses", status_code=303), _("已设为默认地址"))


@router.post("/m/{shop}/me/addresses/{address_id}/delete")
async def address_delete(address_id: PathId, session: UoW, me: CurrentShopper) -> Response:
    await service.delete_address(session, me.shop.scope, me.customer.id, address_id)  # type: ignore[union-attr]
    return flash(RedirectResponse(f"/m/{me.shop.scope.code}/me/addresses", status_code=303), _("收货地址已删除"))


@router.post("/m/{shop}/logout")
async def logout(request: Request, session: UoW, me: CurrentShopper) -> Response:
    raw = request.cookies.get(CUSTOMER_COOKIE)
    if raw:
        await revoke_session(session, raw)
    resp = RedirectResponse(f"/m/{me.shop.scope.code}/", status_code=303)
    clear_cookie(resp, CUSTOMER_COOKIE)
    return flash(resp, _("已退出登录"))


# -- console ----------------------------------------------------------------------------------


@router.get("/admin/customers")
async def customer_list(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("customers.read")],
                        q: Annotated[str, Query(max_length=100)] = "",
                        status: Annotated[str, Query(max_length=20)] = "",
                        page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    q = q.strip()
    status = status if status in ("active", "blocked") else ""
    rows, total = await service.list_customers(session, me.scope, q=q or None, status=status or None,
                                               offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    full = me.can("customers.phone")
    items = [{"c": c, "phone": (c.phone if full else mask_phone(c.phone)) or ""} for c in rows]

    params = ([f"q={quote(q)}"] if q else []) + ([f"status={status}"] if status else [])
    base_url = "/admin/customers?" + "".join(p + "&" for p in params)
    return console_page(request, me, "console/customers/list.html", {
        "title": _("客户列表"), "items": items, "total": total, "page": page, "pages": pages, "q": q, "status": status,
        "page_size": PAGE_SIZE, "base_url": base_url,
        "full_phone": full, "statuses": STATUSES, "registered_via": REGISTERED_VIA,
    })


@router.get("/admin/customers/{customer_id}")
async def customer_detail(customer_id: PathId, request: Request, session: UoW,
                          me: Annotated[StaffPrincipal, require("customers.read")]) -> Response:
    c = await service.get_customer(session, me.scope, customer_id)
    full = me.can("customers.phone")
    identities = [
        {"kind": i.kind, "label": IDENTITY_KINDS.get(i.kind, i.kind),
         "value": (i.value if full else mask_phone(i.value)) if i.kind == "phone" else i.value,
         "app_id": i.app_id, "created_at": i.created_at}
        for i in await service.identities_of(session, me.scope, c.id)
    ]
    return console_page(request, me, "console/customers/detail.html", {
        "title": c.nickname or _("客户") + f" #{c.id}", "c": c, "identities": identities,
        "phone": (c.phone if full else mask_phone(c.phone)) or "", "full_phone": full,
        "can_write": me.can("customers.write"), "statuses": STATUSES, "registered_via": REGISTERED_VIA,
    })


@router.post("/admin/customers/{customer_id}/status")
async def customer_set_status(customer_id: PathId, session: UoW,
                              me: Annotated[StaffPrincipal, require("customers.write")],
                              status: Annotated[str, Form(max_length=20)] = "") -> Response:
    resp = RedirectResponse(f"/admin/customers/{customer_id}", status_code=303)
    if status not in ("active", "blocked"):
        return flash(resp, _("未知的客户状态"), "error")
    c, err = await attempt(session, lambda: service.set_status(session, me.scope, customer_id, status))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(resp, err.message(), "error")
    assert c is not None
    return flash(resp, _("已停用该客户，其登录会话已失效") if c.status == "blocked" else _("已恢复该客户"))
