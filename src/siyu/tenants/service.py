"""Tenant lifecycle (商家管理), stores and tenant settings.

A tenant moves between ``active`` and ``suspended`` only; suspending cuts its staff and
storefront off at the next request (the access layer checks status every time) without
deleting anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import audit, clock, loginguard
from siyu.kit.context import current_actor
from siyu.kit.errors import Conflict, DomainError, NotFound, Unauthorized, ValidationFailed
from siyu.kit.kv import KV
from siyu.kit.security import hash_password, verify_password
from siyu.kit.tenancy import TenantScope
from siyu.staff import service as staff_service
from siyu.tenants.models import PlatformUser, Store, Tenant, TenantEvent
from siyu.tenants.repository import PlatformUsers, Stores, TenantDirectory
from siyu.tenants.schemas import StoreIn, StoreUpdate, TenantCreate, TenantSettingsUpdate

TRANSITIONS = {("active", "suspend"): "suspended", ("suspended", "resume"): "active"}
SETTINGS_KEYS = ("service_phone", "welcome_text")


class TenantSuspended(DomainError):
    status = 403
    default_code = "tenant_suspended"


def _tenant_not_found() -> NotFound:
    return NotFound("tenant_not_found", "商家不存在", "Tenant not found")


def scope_of(t: Tenant) -> TenantScope:
    return TenantScope(id=t.id, code=t.code, timezone=t.timezone)


async def create_tenant(session: AsyncSession, data: TenantCreate) -> Tenant:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(data.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            "invalid_timezone", "时区无效", "Unknown time zone", fields=[{"field": "timezone", "message": "unknown time zone"}]
        ) from None
    directory = TenantDirectory(session)
    if await directory.by_code(data.code):
        raise Conflict("tenant_code_taken", f"商家编码 {data.code} 已被使用", f"Tenant code {data.code} is already taken")
    await staff_service.ensure_username_free(session, data.owner_username)
    tenant = Tenant(
        code=data.code,
        name=data.name,
        timezone=data.timezone,
        contact_name=data.contact_name,
        contact_phone=data.contact_phone,
        settings={},
    )
    session.add(tenant)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("tenant_code_taken", f"商家编码 {data.code} 已被使用", f"Tenant code {data.code} is already taken") from None
    await staff_service.bootstrap_tenant(
        session, tenant.id, owner_username=data.owner_username, owner_password=data.owner_password, owner_name=data.owner_name
    )
    session.add(TenantEvent(tenant_id=tenant.id, kind="created", actor_name=current_actor().name))
    audit.record(session, tenant_id=None, action="tenant.create", object_type="tenant", object_id=tenant.id,
                 after={"code": tenant.code, "name": tenant.name})
    return tenant


async def change_status(session: AsyncSession, tenant_id: int, action: str, reason: str) -> Tenant:
    tenant = await TenantDirectory(session).get(tenant_id)
    if tenant is None:
        raise _tenant_not_found()
    target = TRANSITIONS.get((tenant.status, action))
    if target is None:
        raise Conflict(
            "illegal_tenant_transition",
            f"商家当前状态为「{tenant.status}」，不能执行该操作",
            f"A tenant in status '{tenant.status}' cannot {action}",
        )
    before = tenant.status
    tenant.status = target
    tenant.suspended_reason = reason or None if target == "suspended" else None
    session.add(TenantEvent(tenant_id=tenant.id, kind=action, reason=reason or None, actor_name=current_actor().name))
    audit.record(session, tenant_id=None, action=f"tenant.{action}", object_type="tenant", object_id=tenant.id,
                 before={"status": before}, after={"status": target, "reason": reason})
    await session.flush()
    return tenant


async def get_tenant(session: AsyncSession, tenant_id: int) -> Tenant:
    tenant = await TenantDirectory(session).get(tenant_id)
    if tenant is None:
        raise _tenant_not_found()
    return tenant


async def list_tenants(session: AsyncSession, q: str | None, status: str | None, offset: int, limit: int) -> tuple[Sequence[Tenant], int]:
    return await TenantDirectory(session).search(q, status, offset, limit)


async def tenant_events(session: AsyncSession, tenant_id: int) -> Sequence[TenantEvent]:
    return await TenantDirectory(session).events(tenant_id)


def ensure_active(tenant: Tenant) -> None:
    if tenant.status != "active":
        raise TenantSuspended(
            "tenant_suspended",
            "该商家已被暂停服务，请联系平台运营" + (f"（{tenant.suspended_reason}）" if tenant.suspended_reason else ""),
            "This merchant's service is suspended; please contact the platform operator"
            + (f" ({tenant.suspended_reason})" if tenant.suspended_reason else ""),
        )


async def storefront_tenant(session: AsyncSession, code: str) -> Tenant:
    """The tenant a storefront address names; 404 if unknown, 403 if suspended."""
    tenant = await TenantDirectory(session).by_code(code)
    if tenant is None:
        raise NotFound("shop_not_found", "店铺不存在", "Shop not found")
    ensure_active(tenant)
    return tenant


async def default_storefront_code(session: AsyncSession) -> str | None:
    t = await TenantDirectory(session).first_tenant()
    return t.code if t else None


# -- settings ---------------------------------------------------------------------------


def settings_view(t: Tenant) -> dict[str, Any]:
    return {
        "name": t.name,
        "code": t.code,
        "timezone": t.timezone,
        "contact_name": t.contact_name,
        "contact_phone": t.contact_phone,
        **{k: (t.settings or {}).get(k) for k in SETTINGS_KEYS},
    }


async def update_settings(session: AsyncSession, scope: TenantScope, data: TenantSettingsUpdate) -> Tenant:
    tenant = await get_tenant(session, scope.id)
    before = settings_view(tenant)
    changes = data.model_dump(exclude_unset=True)
    if "timezone" in changes and changes["timezone"] is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(changes["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed("invalid_timezone", "时区无效", "Unknown time zone",
                                   fields=[{"field": "timezone", "message": "unknown time zone"}]) from None
    extra = dict(tenant.settings or {})
    for key, value in changes.items():
        if key in SETTINGS_KEYS:
            extra[key] = value
        elif value is not None or key in ("contact_name", "contact_phone"):
            setattr(tenant, key, value)
    tenant.settings = extra
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="settings.update", object_type="tenant", object_id=scope.id,
                 before=before, after=settings_view(tenant))
    return tenant


# -- stores -------------------------------------------------------------------------------

_STORE_FIELDS = ["code", "name", "address", "phone", "status"]


async def list_stores(session: AsyncSession, scope: TenantScope, q: str | None, offset: int, limit: int) -> tuple[Sequence[Store], int]:
    return await Stores(session, scope.id).search(q, offset, limit)


async def get_store(session: AsyncSession, scope: TenantScope, store_id: int) -> Store:
    return await Stores(session, scope.id).get_or_404(store_id)


async def create_store(session: AsyncSession, scope: TenantScope, data: StoreIn) -> Store:
    repo = Stores(session, scope.id)
    if await repo.by_code(data.code):
        raise Conflict("store_code_taken", f"门店编码 {data.code} 已存在", f"Store code {data.code} already exists")
    store = repo.add(Store(**data.model_dump()))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="store.create", object_type="store", object_id=store.id,
                 after=audit.snapshot(store, _STORE_FIELDS))
    return store


async def update_store(session: AsyncSession, scope: TenantScope, store_id: int, data: StoreUpdate) -> Store:
    store = await Stores(session, scope.id).get_or_404(store_id)
    before = audit.snapshot(store, _STORE_FIELDS)
    for k, v in data.model_dump(exclude_unset=True).items():
        if v is not None or k in ("address", "phone"):
            setattr(store, k, v)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="store.update", object_type="store", object_id=store.id,
                 before=before, after=audit.snapshot(store, _STORE_FIELDS))
    return store


async def store_exists(session: AsyncSession, scope: TenantScope, store_id: int) -> bool:
    return await Stores(session, scope.id).get(store_id) is not None


# -- platform operators -----------------------------------------------------------------


async def create_platform_user(session: AsyncSession, username: str, password: str, name: str) -> PlatformUser:
    repo = PlatformUsers(session)
    if await repo.by_username(username):
        raise Conflict("username_taken", "用户名已被使用", "Username is already taken")
    user = PlatformUser(username=username, password_hash=hash_password(password), name=name)
    session.add(user)
    await session.flush()
    return user


async def platform_user_by_username(session: AsyncSession, username: str) -> PlatformUser | None:
    return await PlatformUsers(session).by_username(username)


async def platform_user(session: AsyncSession, user_id: int) -> PlatformUser | None:
    return await PlatformUsers(session).get(user_id)


async def authenticate_platform(session: AsyncSession, kv: KV, username: str, password: str, ip: str, *,
                                max_failures: int, lockout_seconds: int) -> PlatformUser:
    await loginguard.check(kv, "platform", username, ip, max_failures=max_failures)
    user = await PlatformUsers(session).by_username(username)
    if not verify_password(user.password_hash if user else None, password) or user is None or user.status != "active":
        await loginguard.failed(kv, "platform", username, lockout_seconds=lockout_seconds)
        raise Unauthorized("invalid_credentials", "用户名或密码错误", "Wrong username or password")
    await loginguard.succeeded(kv, "platform", username)
    user.last_login_at = clock.now()
    return user
