"""Storefront API (sign-in, profile, identities) and admin API (customer list)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from siyu.customers import service
from siyu.customers.access import CUSTOMER_COOKIE, CurrentShop, CurrentShopper
from siyu.customers.schemas import (
    PROVINCES,
    AddressIn,
    AddressOut,
    AddressUpdate,
    BindPhone,
    BindResult,
    CustomerAdminOut,
    CustomerMe,
    CustomerStatusIn,
    IdentityOut,
    ProfileUpdate,
    ProvinceOut,
    SessionOut,
    SmsCodeRequest,
    SmsCodeSent,
    SmsLogin,
    WechatLogin,
)
from siyu.customers.wechat import MiniProgramAuth, SandboxMiniProgram, WeChatMiniProgram
from siyu.kit.errors import BadRequest
from siyu.kit.pagination import Page, Pages
from siyu.kit.security import mask_phone
from siyu.kit.sessions import revoke_session
from siyu.kit.types import PathId, SearchText
from siyu.kit.web import ADMIN_ERRORS, UoW, clear_cookie, client_ip, runtime, set_session_cookie
from siyu.staff.access import StaffPrincipal, require

store = APIRouter(prefix="/api/store/v1/{shop}", tags=["store: sign-in & profile"], responses=ADMIN_ERRORS)
admin = APIRouter(prefix="/api/admin/v1", tags=["admin: customers"], responses=ADMIN_ERRORS)


def mini_program(request: Request, shop_settings: dict) -> MiniProgramAuth:
    """The WeChat adapter for a shop: the sandbox unless the installation is set to ``wechat``."""
    rt = runtime(request)
    override = rt.extras.get("wechat_adapter")
    if override is not None:
        return override
    if rt.settings.wechat_provider == "sandbox":
        return SandboxMiniProgram()
    app_id, secret = shop_settings.get("wechat_mp_appid"), shop_settings.get("wechat_mp_secret")
    if not app_id or not secret:
        raise BadRequest("wechat_not_configured", "店铺尚未配置微信小程序", "This shop has not configured its WeChat mini program")
    return WeChatMiniProgram(app_id, secret)


def _session_out(signed, response: Response, request: Request) -> SessionOut:
    days = runtime(request).settings.session_days
    set_session_cookie(response, request, CUSTOMER_COOKIE, signed.token, days)
    return SessionOut(token=signed.token, csrf_token=signed.csrf_token, customer_id=signed.customer.id, new_customer=signed.created)


@store.post("/auth/sms-code", response_model=SmsCodeSent, summary="Send a one-time sign-in code by SMS")
async def send_code(body: SmsCodeRequest, request: Request, session: UoW, shop: CurrentShop) -> SmsCodeSent:
    rt = runtime(request)
    await service.send_code(session, rt.kv, rt.secret_key, shop.scope, shop.name, body.phone, body.purpose, client_ip(request),
                            ttl_seconds=rt.settings.sms_code_ttl_seconds)
    return SmsCodeSent(expires_in=rt.settings.sms_code_ttl_seconds, resend_after=service.PHONE_COOLDOWN_SECONDS)


@store.post("/auth/login/sms", response_model=SessionOut, summary="Sign in (or sign up) with phone and SMS code")
async def login_sms(body: SmsLogin, request: Request, response: Response, session: UoW, shop: CurrentShop) -> SessionOut:
    rt = runtime(request)
    signed = await service.login_with_code(session, rt.kv, rt.secret_key, shop.scope, body.phone, body.code,
                                           days=rt.settings.session_days, ip=client_ip(request),
                                           user_agent=request.headers.get("user-agent"))
    return _session_out(signed, response, request)


@store.post("/auth/login/wechat", response_model=SessionOut, summary="Sign in with a WeChat mini-program login code")
async def login_wechat(body: WechatLogin, request: Request, response: Response, session: UoW, shop: CurrentShop) -> SessionOut:
    rt = runtime(request)
    signed = await service.login_with_wechat(session, mini_program(request, shop.settings), shop.scope, body.code,
                                             days=rt.settings.session_days, ip=client_ip(request),
                                             user_agent=request.headers.get("user-agent"))
    return _session_out(signed, response, request)


@store.post("/auth/logout", status_code=204, summary="Sign out")
async def logout(request: Request, session: UoW, me: CurrentShopper) -> Response:
    auth = request.headers.get("authorization", "")
    raw = auth[7:].strip() if auth[:7].lower() == "bearer " else request.cookies.get(CUSTOMER_COOKIE)
    if raw:
        await revoke_session(session, raw)
    out = Response(status_code=204)
    clear_cookie(out, CUSTOMER_COOKIE)
    return out


async def _me(session, me) -> CustomerMe:
    c = me.customer
    ids = await service.identities_of(session, me.shop.scope, c.id)
    return CustomerMe(
        id=c.id, nickname=c.nickname, phone=mask_phone(c.phone) or None, avatar_url=c.avatar_url, created_at=c.created_at,
        identities=[IdentityOut(kind=i.kind, value=mask_phone(i.value) if i.kind == "phone" else i.value[:6] + "…") for i in ids],
    )


@store.get("/me", response_model=CustomerMe, summary="The signed-in shopper")
async def me(session: UoW, me: CurrentShopper) -> CustomerMe:
    return await _me(session, me)


@store.patch("/me", response_model=CustomerMe, summary="Change my nickname")
async def update_me(body: ProfileUpdate, session: UoW, me: CurrentShopper) -> CustomerMe:
    await service.update_nickname(session, me.shop.scope, me.customer.id, body.nickname)  # type: ignore[union-attr]
    return await _me(session, me)


def _bind_out(result, response: Response, request: Request) -> BindResult:
    sess = _session_out(result.session, response, request) if result.session else None
    return BindResult(customer_id=result.customer.id, merged_customer_id=result.merged_from, session=sess)


@store.post("/me/phone", response_model=BindResult, summary="Add a phone number (merges with an existing customer of that phone)")
async def bind_phone(body: BindPhone, request: Request, response: Response, session: UoW, me: CurrentShopper) -> BindResult:
    rt = runtime(request)
    result = await service.bind_phone(session, rt.kv, rt.secret_key, me.shop.scope, me.customer.id, body.phone, body.code,  # type: ignore[union-attr]
                                      days=rt.settings.session_days)
    return _bind_out(result, response, request)


@store.post("/me/wechat", response_model=BindResult, summary="Link a WeChat identity (merges when it belongs to another customer)")
async def bind_wechat(body: WechatLogin, request: Request, response: Response, session: UoW, me: CurrentShopper) -> BindResult:
    rt = runtime(request)
    result = await service.bind_wechat(session, mini_program(request, me.shop.settings), me.shop.scope, me.customer.id,  # type: ignore[union-attr]
                                       body.code, days=rt.settings.session_days)
    return _bind_out(result, response, request)


# -- address book ---------------------------------------------------------------------------------


@store.get("/regions/provinces", response_model=list[ProvinceOut],
           summary="The 34 provincial-level divisions and their 2-digit codes (for address forms)")
async def provinces(shop: CurrentShop) -> list[ProvinceOut]:
    return [ProvinceOut(code=code, name=name) for code, name in PROVINCES.items()]


@store.get("/me/addresses", response_model=list[AddressOut], summary="My addresses: the default first, then the newest")
async def list_addresses(session: UoW, me: CurrentShopper) -> list[AddressOut]:
    rows = await service.list_addresses(session, me.shop.scope, me.customer.id)  # type: ignore[union-attr]
    return [AddressOut.model_validate(a) for a in rows]


@store.post("/me/addresses", response_model=AddressOut, status_code=201,
            summary="Add an address (at most 20; the first becomes the default; 409 address_limit)")
async def create_address(body: AddressIn, session: UoW, me: CurrentShopper) -> AddressOut:
    addr = await service.create_address(session, me.shop.scope, me.customer.id, body)  # type: ignore[union-attr]
    return AddressOut.model_validate(addr)


@store.get("/me/addresses/{address_id}", response_model=AddressOut, summary="One of my addresses")
async def get_address(address_id: PathId, session: UoW, me: CurrentShopper) -> AddressOut:
    return AddressOut.model_validate(await service.get_address(session, me.shop.scope, me.customer.id, address_id))  # type: ignore[union-attr]


@store.patch("/me/addresses/{address_id}", response_model=AddressOut, summary="Change one of my addresses")
async def update_address(address_id: PathId, body: AddressUpdate, session: UoW, me: CurrentShopper) -> AddressOut:
    addr = await service.update_address(session, me.shop.scope, me.customer.id, address_id, body)  # type: ignore[union-attr]
    return AddressOut.model_validate(addr)


@store.post("/me/addresses/{address_id}/default", response_model=AddressOut, summary="Make an address my default")
async def set_default_address(address_id: PathId, session: UoW, me: CurrentShopper) -> AddressOut:
    addr = await service.set_default_address(session, me.shop.scope, me.customer.id, address_id)  # type: ignore[union-attr]
    return AddressOut.model_validate(addr)


@store.delete("/me/addresses/{address_id}", status_code=204,
              summary="Delete an address (deleting the default makes the newest remaining address the default)")
async def delete_address(address_id: PathId, session: UoW, me: CurrentShopper) -> Response:
    await service.delete_address(session, me.shop.scope, me.customer.id, address_id)  # type: ignore[union-attr]
    return Response(status_code=204)


# -- admin --------------------------------------------------------------------------------------


def _admin_out(c, full_phone: bool) -> CustomerAdminOut:
    return CustomerAdminOut(id=c.id, nickname=c.nickname, phone=c.phone if full_phone else (mask_phone(c.phone) or None),
                            status=c.status, registered_via=c.registered_via, created_at=c.created_at, last_login_at=c.last_login_at)


@admin.get("/customers", response_model=Page[CustomerAdminOut], summary="List customers")
async def list_customers(session: UoW, pages: Pages, me: Annotated[StaffPrincipal, require("customers.read")],
                         q: SearchText = None,
                         status: Annotated[str | None, Query(pattern="^(active|blocked)$")] = None) -> Page[CustomerAdminOut]:
    rows, total = await service.list_customers(session, me.scope, q=q, status=status, offset=pages.offset, limit=pages.page_size)
    full = me.can("customers.phone")
    return Page(items=[_admin_out(c, full) for c in rows], total=total, page=pages.page, page_size=pages.page_size)


@admin.get("/customers/{customer_id}", response_model=CustomerAdminOut, summary="One customer")
async def get_customer(customer_id: PathId, session: UoW, me: Annotated[StaffPrincipal, require("customers.read")]) -> CustomerAdminOut:
    return _admin_out(await service.get_customer(session, me.scope, customer_id), me.can("customers.phone"))


@admin.post("/customers/{customer_id}/status", response_model=CustomerAdminOut, summary="Block or unblock a customer")
async def set_status(customer_id: PathId, body: CustomerStatusIn, session: UoW,
                     me: Annotated[StaffPrincipal, require("customers.write")]) -> CustomerAdminOut:
    return _admin_out(await service.set_status(session, me.scope, customer_id, body.status), me.can("customers.phone"))
