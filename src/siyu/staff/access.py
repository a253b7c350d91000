"""Who is calling the admin API or console, and may they do this?

A staff principal comes from a bearer API token (integrations) or the console session
cookie. Cookie-authenticated unsafe requests must carry the session's CSRF token, in the
``X-CSRF-Token`` header (htmx, fetch) or a ``_csrf`` form field (plain forms). The tenant's
status is checked on every request so a suspension takes effect immediately.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import clock
from siyu.kit.context import Actor, actor_var
from siyu.kit.errors import Forbidden, Unauthorized
from siyu.kit.security import constant_time_equals
from siyu.kit.sessions import create_session, lookup_session, revoke_session
from siyu.kit.tenancy import TenantScope
from siyu.kit.web import SAFE_METHODS, UoW, clear_cookie, client_ip, runtime
from siyu.staff import service
from siyu.staff.permissions import BY_CODE

STAFF_COOKIE = "siyu_staff"
PLATFORM_COOKIE = "siyu_platform"
#: Platform operator sessions are short: they can suspend any tenant.
PLATFORM_DAYS = 1


@dataclass(frozen=True, slots=True)
class StaffPrincipal:
    scope: TenantScope
    tenant_name: str
    staff_id: int | None
    name: str
    role_id: int
    role_code: str
    role_name: str
    permissions: frozenset[str]
    via: str  # session | token
    csrf_token: str | None = None
    token_id: int | None = None

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def grantor(self) -> service.Grantor:
        return service.Grantor(self.permissions, self.role_code == "owner")


@dataclass(frozen=True, slots=True)
class PlatformPrincipal:
    user_id: int
    name: str
    csrf_token: str


class LoginRequired(Unauthorized):
    """Raised to pages; the page error handler turns it into a redirect to sign-in."""

    def __init__(self, login_url: str) -> None:
        super().__init__("login_required", "请先登录", "Please sign in")
        self.login_url = login_url


def return_to(request: Request) -> str:
    """The page asked for, with its query, URL-encoded for a ``next=`` parameter."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return quote(path, safe="/")


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


async def verify_csrf(request: Request, expected: str | None) -> None:
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("_csrf")
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not constant_time_equals(sent, expected):
        raise Forbidden("csrf_failed", "页面已过期，请刷新后重试", "The page has expired (CSRF check failed); reload and try again")


async def _load_staff(request: Request, session: UoW) -> StaffPrincipal:
    from siyu.tenants import service as tenants_service

    rt = runtime(request)
    raw = _bearer(request)
    is_page = not request.url.path.startswith("/api/")
    if raw:
        auth = await service.authenticate_token(session, raw)
        if auth is None:
            raise Unauthorized("invalid_token", "API 令牌无效或已撤销", "The API token is invalid, expired or revoked")
        tenant = await tenants_service.get_tenant(session, auth.token.tenant_id)
        tenants_service.ensure_active(tenant)
        if auth.token.last_used_at is None or auth.token.last_used_at < clock.now() - timedelta(minutes=10):
            if request.method in SAFE_METHODS:
                # The request's own transaction is read-only; a short write of its own is safe.
                async with rt.db.uow() as w:
                    await service.touch_token(w, auth.token.id)
            else:
                # Already inside a write transaction: a second writer would wait on ourselves.
                await service.touch_token(session, auth.token.id)
        p = StaffPrincipal(
            scope=tenants_service.scope_of(tenant), tenant_name=tenant.name, staff_id=None, name=f"token:{auth.token.name}",
            role_id=auth.role.id, role_code=auth.role.code, role_name=auth.role.name,
            permissions=service.effective_permissions(auth.role), via="token", token_id=auth.token.id,
        )
        actor_var.set(Actor("token", auth.token.id, p.name, tenant.id))
        return p
    cookie = request.cookies.get(STAFF_COOKIE)
    info = await lookup_session(session, cookie, "staff") if cookie else None
    if info is None:
        if is_page:
            raise LoginRequired("/admin/login?next=" + return_to(request))
        raise Unauthorized("unauthorized", "请先登录", "Sign in or send a bearer API token")
    found = await service.staff_for_session(session, info.principal_id)
    if found is None:
        if is_page:
            raise LoginRequired("/admin/login")
        raise Unauthorized("unauthorized", "登录已失效，请重新登录", "Your session has ended; sign in again")
    tenant = await tenants_service.get_tenant(session, found.staff.tenant_id)
    tenants_service.ensure_active(tenant)
    await verify_csrf(request, info.csrf_token)
    p = StaffPrincipal(
        scope=tenants_service.scope_of(tenant), tenant_name=tenant.name, staff_id=found.staff.id, name=found.staff.name,
        role_id=found.role.id, role_code=found.role.code, role_name=found.role.name,
        permissions=service.effective_permissions(found.role), via="session", csrf_token=info.csrf_token,
    )
    actor_var.set(Actor("staff", found.staff.id, found.staff.name, tenant.id))
    return p


CurrentStaff = Annotated[StaffPrincipal, Depends(_load_staff)]


def require(permission: str):
    """Dependency: the caller is staff of an active tenant holding ``permission``."""
    if permission not in BY_CODE:
        raise ValueError(f"unknown permission {permission}")
    perm = BY_CODE[permission]

    async def _dep(principal: CurrentStaff) -> StaffPrincipal:
        if not principal.can(permission):
            raise Forbidden(
                "permission_denied",
                f"没有权限：{perm.zh}（{permission}）",
                f"Permission denied: {perm.en} ({permission})",
                extra={"permission": permission},
            )
        return principal

    _dep.__name__ = f"require_{permission.replace('.', '_')}"
    return Depends(_dep)


async def _load_platform(request: Request, session: UoW) -> PlatformPrincipal:
    from siyu.tenants import service as tenants_service

    is_page = not request.url.path.startswith("/api/")
    cookie = request.cookies.get(PLATFORM_COOKIE)
    info = await lookup_session(session, cookie, "platform") if cookie else None
    user = await tenants_service.platform_user(session, info.principal_id) if info else None
    if info is None or user is None or user.status != "active":
        if is_page:
            raise LoginRequired("/platform/login")
        raise Unauthorized("unauthorized", "请先以平台运营身份登录", "Sign in as a platform operator")
    await verify_csrf(request, info.csrf_token)
    actor_var.set(Actor("platform", user.id, user.name, None))
    return PlatformPrincipal(user.id, user.name, info.csrf_token)


CurrentPlatform = Annotated[PlatformPrincipal, Depends(_load_platform)]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new console or platform session: who, the cookie token and its CSRF token."""

    principal_id: int
    name: str
    tenant_id: int | None
    token: str
    csrf_token: str
    days: int


async def sign_in_staff(request: Request, session: AsyncSession, username: str, password: str) -> SignedIn:
    """Check the password (with lockout), the tenant's status, and open a session.

    The one sign-in path for the JSON API and the console form."""
    from siyu.tenants import service as tenants_service

    rt = runtime(request)
    s = rt.settings
    auth = await service.authenticate(session, rt.kv, username, password, client_ip(request),
                                      max_failures=s.login_max_failures, lockout_seconds=s.login_lockout_seconds)
    tenant = await tenants_service.get_tenant(session, auth.staff.tenant_id)
    tenants_service.ensure_active(tenant)
    token, row = await create_session(session, kind="staff", principal_id=auth.staff.id, tenant_id=tenant.id,
                                      days=s.session_days, ip=client_ip(request), user_agent=request.headers.get("user-agent"))
    actor_var.set(Actor("staff", auth.staff.id, auth.staff.name, tenant.id))
    return SignedIn(auth.staff.id, auth.staff.name, tenant.id, token, row.csrf_token, s.session_days)


async def sign_in_platform(request: Request, session: AsyncSession, username: str, password: str) -> SignedIn:
    from siyu.tenants import service as tenants_service

    rt = runtime(request)
    s = rt.settings
    user = await tenants_service.authenticate_platform(session, rt.kv, username, password, client_ip(request),
                                                       max_failures=s.login_max_failures,
                                                       lockout_seconds=s.login_lockout_seconds)
    token, row = await create_session(session, kind="platform", principal_id=user.id, tenant_id=None, days=PLATFORM_DAYS,
                                      ip=client_ip(request), user_agent=request.headers.get("user-agent"))
    actor_var.set(Actor("platform", user.id, user.name))
    return SignedIn(user.id, user.name, None, token, row.csrf_token, PLATFORM_DAYS)


async def sign_out(request: Request, session: AsyncSession, cookie_name: str, response: Response) -> Response:
    """Revoke the session named by the cookie and clear the cookie on ``response``."""
    cookie = request.cookies.get(cookie_name)
    if cookie:
        await revoke_session(session, cookie)
    clear_cookie(response, cookie_name)
    return response
