"""Admin JSON API: sign-in, staff, roles, API tokens, audit log, SMS outbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from siyu.kit.context import current_language
from siyu.kit.pagination import Page, Pages
from siyu.kit.security import mask_phone
from siyu.kit.types import FilterText, PathId, SearchText
from siyu.kit.web import ADMIN_ERRORS, UoW, set_session_cookie
from siyu.staff import service
from siyu.staff.access import (
    STAFF_COOKIE,
    CurrentStaff,
    StaffPrincipal,
    require,
    sign_in_staff,
    sign_out,
)
from siyu.staff.permissions import PERMISSIONS
from siyu.staff.schemas import (
    AuditOut,
    LoginIn,
    LoginOut,
    MeOut,
    PasswordReset,
    PermissionOut,
    RoleIn,
    RoleOut,
    RoleUpdate,
    SmsOut,
    StaffCreate,
    StaffOut,
    StaffUpdate,
    TokenCreate,
    TokenCreated,
    TokenOut,
)

router = APIRouter(prefix="/api/admin/v1", tags=["admin: staff & access"], responses=ADMIN_ERRORS)


@router.post("/auth/login", response_model=LoginOut, summary="Sign in to the console")
async def login(body: LoginIn, request: Request, response: Response, session: UoW) -> LoginOut:
    signed = await sign_in_staff(request, session, body.username, body.password)
    set_session_cookie(response, request, STAFF_COOKIE, signed.token, signed.days)
    assert signed.tenant_id is not None
    return LoginOut(token=signed.token, csrf_token=signed.csrf_token, staff_id=signed.principal_id,
                    tenant_id=signed.tenant_id, name=signed.name)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out of the console")
async def logout(request: Request, session: UoW, me: CurrentStaff) -> Response:
    return await sign_out(request, session, STAFF_COOKIE, Response(status_code=204))


@router.get("/me", response_model=MeOut, summary="Who am I, and what may I do")
async def me(me: CurrentStaff) -> MeOut:
    return MeOut(staff_id=me.staff_id, name=me.name, tenant_id=me.scope.id, tenant_code=me.scope.code, role=me.role_code,
                 permissions=sorted(me.permissions), via=me.via)


# -- staff ---------------------------------------------------------------------------------


def _staff_out(s, me: StaffPrincipal) -> StaffOut:
    data = service.staff_view(s)
    return StaffOut.model_validate(data)


@router.get("/staff", response_model=Page[StaffOut], summary="List staff")
async def list_staff(
    session: UoW, pages: Pages, me: Annotated[StaffPrincipal, require("staff.read")],
    q: SearchText = None,
    role_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    store_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    status: Annotated[str | None, Query(pattern="^(active|disabled)$")] = None,
) -> Page[StaffOut]:
    rows, total = await service.list_staff(session, me.scope, q=q, role_id=role_id, store_id=store_id, status=status,
                                           offset=pages.offset, limit=pages.page_size)
    return Page(items=[_staff_out(r, me) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@router.post("/staff", response_model=StaffOut, status_code=201, summary="Create a staff account")
async def create_staff(body: StaffCreate, session: UoW, me: Annotated[StaffPrincipal, require("staff.write")]) -> StaffOut:
    return _staff_out(await service.create_staff(session, me.scope, body, me.grantor), me)


@router.get("/staff/{staff_id}", response_model=StaffOut, summary="One staff account")
async def get_staff(staff_id: PathId, session: UoW, me: Annotated[StaffPrincipal, require("staff.read")]) -> StaffOut:
    return _staff_out(await service.get_staff(session, me.scope, staff_id), me)


@router.patch("/staff/{staff_id}", response_model=StaffOut, summary="Change a staff account (role, store, status...)")
async def update_staff(staff_id: PathId, body: StaffUpdate, session: UoW,
                       me: Annotated[StaffPrincipal, require("staff.write")]) -> StaffOut:
    return _staff_out(await service.update_staff(session, me.scope, staff_id, body, me.grantor), me)


@router.post("/staff/{staff_id}/password", status_code=204, summary="Set a new password (signs the person out everywhere)")
async def reset_password(staff_id: PathId, body: PasswordReset, session: UoW,
                         me: Annotated[StaffPrincipal, require("staff.write")]) -> Response:
    await service.reset_password(session, me.scope, staff_id, body.password, me.grantor)
    return Response(status_code=204)


# -- roles ---------------------------------------------------------------------------------


@router.get("/permissions", response_model=list[PermissionOut], summary="Every permission a role can hold")
async def list_permissions(me: CurrentStaff) -> list[PermissionOut]:
    en = current_language().startswith("en")
    return [PermissionOut(code=p.code, name=p.en if en else p.zh, group=p.group) for p in PERMISSIONS]


@router.get("/roles", response_model=list[RoleOut], summary="List roles")
async def list_roles(session: UoW, me: Annotated[StaffPrincipal, require("staff.read")]) -> list[RoleOut]:
    return [RoleOut.model_validate(r) for r in await service.list_roles(session, me.scope)]


@router.post("/roles", response_model=RoleOut, status_code=201, summary="Create a role")
async def create_role(body: RoleIn, session: UoW, me: Annotated[StaffPrincipal, require("roles.write")]) -> RoleOut:
    return RoleOut.model_validate(await service.create_role(session, me.scope, body, me.grantor))


@router.get("/roles/{role_id}", response_model=RoleOut, summary="One role")
async def get_role(role_id: PathId, session: UoW, me: Annotated[StaffPrincipal, require("staff.read")]) -> RoleOut:
    return RoleOut.model_validate(await service.get_role(session, me.scope, role_id))


@router.patch("/roles/{role_id}", response_model=RoleOut, summary="Rename a role or change its permissions")
async def update_role(role_id: PathId, body: RoleUpdate, session: UoW,
                      me: Annotated[StaffPrincipal, require("roles.write")]) -> RoleOut:
    return RoleOut.model_validate(await service.update_role(session, me.scope, role_id, body, me.grantor))


@router.delete("/roles/{role_id}", status_code=204, summary="Delete an unused custom role")
async def delete_role(role_id: PathId, session: UoW, me: Annotated[StaffPrincipal, require("roles.write")]) -> Response:
    await service.delete_role(session, me.scope, role_id)
    return Response(status_code=204)


# -- API tokens ----------------------------------------------------------------------------


@router.get("/api-tokens", response_model=list[TokenOut], summary="List API tokens")
async def list_tokens(session: UoW, me: Annotated[StaffPrincipal, require("tokens.manage")]) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in await service.list_tokens(session, me.scope)]


@router.post("/api-tokens", response_model=TokenCreated, status_code=201, summary="Create an API token (shown once)")
async def create_token(body: TokenCreate, session: UoW, me: Annotated[StaffPrincipal, require("tokens.manage")]) -> TokenCreated:
    tok, raw = await service.create_token(session, me.scope, body, me.staff_id, me.grantor)
    return TokenCreated(**TokenOut.model_validate(tok).model_dump(), token=raw)


@router.post("/api-tokens/{token_id}/revoke", response_model=TokenOut, summary="Revoke an API token")
async def revoke_token(token_id: PathId, session: UoW, me: Annotated[StaffPrincipal, require("tokens.manage")]) -> TokenOut:
    return TokenOut.model_validate(await service.revoke_token(session, me.scope, token_id))


# -- audit log and SMS outbox ----------------------------------------------------------------


@router.get("/audit-log", response_model=Page[AuditOut], summary="Staff actions, newest first")
async def audit_log(
    session: UoW, pages: Pages, me: Annotated[StaffPrincipal, require("audit.read")],
    action: FilterText = None,
    actor: FilterText = None,
    object_type: FilterText = None,
) -> Page[AuditOut]:
    rows, total = await service.audit_entries(session, me.scope, action=action, actor=actor, object_type=object_type,
                                              offset=pages.offset, limit=pages.page_size)
    return Page(items=[AuditOut.model_validate(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@router.get("/sms-messages", response_model=Page[SmsOut], summary="SMS outbox (sandbox messages included)")
async def sms_messages(
    session: UoW, pages: Pages, me: Annotated[StaffPrincipal, require("sms.read")],
    phone: FilterText = None,
) -> Page[SmsOut]:
    rows, total = await service.sms_messages(session, me.scope, phone=phone, offset=pages.offset, limit=pages.page_size)
    full = me.can("customers.phone")
    items = [SmsOut(id=m.id, phone=m.phone if full else mask_phone(m.phone), template=m.template, content=m.content,
                    provider=m.provider, status=m.status, created_at=m.created_at, sent_at=m.sent_at) for m in rows]
    return Page(items=items, total=total, page=pages.page, page_size=pages.page_size)
