"""Admin API for tenant settings and stores; platform API for tenant lifecycle (商家管理)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from siyu.kit.pagination import Page, Pages
from siyu.kit.types import PathId, SearchText
from siyu.kit.web import ADMIN_ERRORS, UoW, set_session_cookie
from siyu.staff.access import (
    PLATFORM_COOKIE,
    CurrentPlatform,
    StaffPrincipal,
    require,
    sign_in_platform,
    sign_out,
)
from siyu.staff.schemas import LoginIn
from siyu.tenants import service
from siyu.tenants.schemas import (
    StoreIn,
    StoreOut,
    StoreUpdate,
    TenantCreate,
    TenantOut,
    TenantSettingsOut,
    TenantSettingsUpdate,
    TenantStatusChange,
)

admin = APIRouter(prefix="/api/admin/v1", tags=["admin: settings & stores"], responses=ADMIN_ERRORS)
platform = APIRouter(prefix="/api/platform/v1", tags=["platform: tenants"], responses=ADMIN_ERRORS)


@admin.get("/settings", response_model=TenantSettingsOut, summary="Shop settings")
async def get_settings(session: UoW, me: Annotated[StaffPrincipal, require("settings.read")]) -> TenantSettingsOut:
    return TenantSettingsOut(**service.settings_view(await service.get_tenant(session, me.scope.id)))


@admin.patch("/settings", response_model=TenantSettingsOut, summary="Change shop settings")
async def update_settings(body: TenantSettingsUpdate, session: UoW,
                          me: Annotated[StaffPrincipal, require("settings.write")]) -> TenantSettingsOut:
    return TenantSettingsOut(**service.settings_view(await service.update_settings(session, me.scope, body)))


@admin.get("/stores", response_model=Page[StoreOut], summary="List stores (门店)")
async def list_stores(session: UoW, pages: Pages, me: Annotated[StaffPrincipal, require("stores.read")],
                      q: SearchText = None) -> Page[StoreOut]:
    rows, total = await service.list_stores(session, me.scope, q, pages.offset, pages.page_size)
    return Page(items=[StoreOut.model_validate(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@admin.post("/stores", response_model=StoreOut, status_code=201, summary="Create a store")
async def create_store(body: StoreIn, session: UoW, me: Annotated[StaffPrincipal, require("stores.write")]) -> StoreOut:
    return StoreOut.model_validate(await service.create_store(session, me.scope, body))


@admin.get("/stores/{store_id}", response_model=StoreOut, summary="One store")
async def get_store(store_id: PathId, session: UoW, me: Annotated[StaffPrincipal, require("stores.read")]) -> StoreOut:
    return StoreOut.model_validate(await service.get_store(session, me.scope, store_id))


@admin.patch("/stores/{store_id}", response_model=StoreOut, summary="Change a store")
async def update_store(store_id: PathId, body: StoreUpdate, session: UoW,
                       me: Annotated[StaffPrincipal, require("stores.write")]) -> StoreOut:
    return StoreOut.model_validate(await service.update_store(session, me.scope, store_id, body))


# -- platform ---------------------------------------------------------------------------------


@platform.post("/auth/login", summary="Sign in as a platform operator")
async def platform_login(body: LoginIn, request: Request, response: Response, session: UoW) -> dict[str, str]:
    signed = await sign_in_platform(request, session, body.username, body.password)
    set_session_cookie(response, request, PLATFORM_COOKIE, signed.token, signed.days)
    return {"token": signed.token, "csrf_token": signed.csrf_token}


@platform.post("/auth/logout", status_code=204, summary="Sign out")
async def platform_logout(request: Request, session: UoW, me: CurrentPlatform) -> Response:
    return await sign_out(request, session, PLATFORM_COOKIE, Response(status_code=204))


@platform.get("/tenants", response_model=Page[TenantOut], summary="List tenants")
async def list_tenants(session: UoW, pages: Pages, me: CurrentPlatform,
                       q: SearchText = None,
                       status: Annotated[str | None, Query(pattern="^(active|suspended)$")] = None) -> Page[TenantOut]:
    rows, total = await service.list_tenants(session, q, status, pages.offset, pages.page_size)
    return Page(items=[TenantOut.model_validate(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@platform.post("/tenants", response_model=TenantOut, status_code=201, summary="Onboard a tenant with its owner account")
async def create_tenant(body: TenantCreate, session: UoW, me: CurrentPlatform) -> TenantOut:
    return TenantOut.model_validate(await service.create_tenant(session, body))


@platform.get("/tenants/{tenant_id}", response_model=TenantOut, summary="One tenant")
async def get_tenant(tenant_id: PathId, session: UoW, me: CurrentPlatform) -> TenantOut:
    return TenantOut.model_validate(await service.get_tenant(session, tenant_id))


@platform.post("/tenants/{tenant_id}/suspend", response_model=TenantOut, summary="Suspend a tenant (staff and shop cut off)")
async def suspend_tenant(tenant_id: PathId, body: TenantStatusChange, session: UoW, me: CurrentPlatform) -> TenantOut:
    return TenantOut.model_validate(await service.change_status(session, tenant_id, "suspend", body.reason))


@platform.post("/tenants/{tenant_id}/resume", response_model=TenantOut, summary="Resume a suspended tenant")
async def resume_tenant(tenant_id: PathId, body: TenantStatusChange, session: UoW, me: CurrentPlatform) -> TenantOut:
    return TenantOut.model_validate(await service.change_status(session, tenant_id, "resume", body.reason))
