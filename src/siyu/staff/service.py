"""Staff accounts, roles and API tokens.

Rules worth knowing: the ``owner`` role always holds every permission and cannot be edited
or deleted; the last active owner cannot be disabled or demoted, so a tenant can never lock
itself out; disabling a staff member revokes their sessions at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import audit, clock, loginguard
from siyu.kit.errors import Conflict, Forbidden, Unauthorized, ValidationFailed
from siyu.kit.kv import KV
from siyu.kit.security import (
    hash_password,
    hash_token,
    mask_phone,
    needs_rehash,
    new_token,
    verify_password,
)
from siyu.kit.sessions import revoke_principal
from siyu.kit.tenancy import TenantScope
from siyu.staff.models import ApiToken, Role, Staff
from siyu.staff.permissions import ALL_CODES, DEFAULT_ROLES
from siyu.staff.repository import AuditLog, Roles, SmsOutbox, StaffLogins, StaffRepo, Tokens
from siyu.staff.schemas import RoleIn, RoleUpdate, StaffCreate, StaffUpdate, TokenCreate

TOKEN_PREFIX = "sy_"  # noqa: S105 - a public prefix that makes leaked tokens recognisable
_STAFF_FIELDS = ["username", "name", "phone", "email", "role_id", "store_id", "status"]


@dataclass(frozen=True, slots=True)
class Grantor:
    """Who is handing out access. Nobody may give a role, token or permission beyond their
    own, nor manage an account that holds more than they do; only an owner hands out or
    manages the owner role. Without this, anyone with ``staff.write`` could make themselves
    owner."""

    permissions: frozenset[str]
    is_owner: bool


SYSTEM_GRANTOR = Grantor(ALL_CODES, True)


def _beyond(grantor: Grantor, role: Role) -> list[str]:
    return sorted(effective_permissions(role) - grantor.permissions)


def ensure_may_grant(grantor: Grantor, role: Role) -> None:
    if role.code == "owner" and not grantor.is_owner:
        raise Forbidden("role_beyond_own", "只有店主可以授予店主角色", "Only an owner can give the owner role")
    missing = _beyond(grantor, role)
    if missing:
        raise Forbidden("role_beyond_own", f"不能授予超出自己权限范围的角色（{role.name}），缺少：{', '.join(missing)}",
                        f"You cannot give a role ({role.name}) with permissions you do not hold: {', '.join(missing)}",
                        extra={"missing": missing})


async def _ensure_may_manage(session: AsyncSession, scope: TenantScope, grantor: Grantor, staff: Staff) -> None:
    role = await Roles(session, scope.id).get(staff.role_id)
    if role is not None and ((role.code == "owner" and not grantor.is_owner) or _beyond(grantor, role)):
        raise Forbidden("staff_beyond_own", "不能管理权限高于自己的员工", "You cannot manage a staff member who holds more permissions than you")


@dataclass(frozen=True, slots=True)
class Authenticated:
    staff: Staff
    role: Role


async def ensure_username_free(session: AsyncSession, username: str) -> None:
    if await StaffLogins(session).by_username(username):
        raise Conflict("username_taken", f"用户名 {username} 已被使用", f"Username {username} is already taken",
                       fields=[{"field": "username", "message": "already taken"}])


async def bootstrap_tenant(session: AsyncSession, tenant_id: int, *, owner_username: str, owner_password: str, owner_name: str) -> Staff:
    """Create the default roles of a new tenant and its owner account."""
    roles = Roles(session, tenant_id)
    owner_role: Role | None = None
    for code, (zh, _en, perms) in DEFAULT_ROLES.items():
        role = roles.add(Role(code=code, name=zh, permissions=list(perms), is_system=True))
        if code == "owner":
            owner_role = role
    await session.flush()
    assert owner_role is not None
    staff = StaffRepo(session, tenant_id).add(
        Staff(username=owner_username, name=owner_name, password_hash=hash_password(owner_password), role_id=owner_role.id)
    )
    await session.flush()
    return staff


def effective_permissions(role: Role) -> frozenset[str]:
    if role.code == "owner":
        return ALL_CODES
    return frozenset(p for p in role.permissions if p in ALL_CODES)


# -- sign-in -------------------------------------------------------------------------------


async def authenticate(
    session: AsyncSession, kv: KV, username: str, password: str, ip: str, *, max_failures: int, lockout_seconds: int
) -> Authenticated:
    await loginguard.check(kv, "staff", username, ip, max_failures=max_failures)
    logins = StaffLogins(session)
    staff = await logins.by_username(username)
    ok = verify_password(staff.password_hash if staff else None, password)
    if not ok or staff is None or staff.status != "active":
        await loginguard.failed(kv, "staff", username, lockout_seconds=lockout_seconds)
        raise Unauthorized("invalid_credentials", "用户名或密码错误", "Wrong username or password")
    await loginguard.succeeded(kv, "staff", username)
    role = await logins.role(staff.role_id)
    assert role is not None
    staff.last_login_at = clock.now()
    if needs_rehash(staff.password_hash):
        staff.password_hash = hash_password(password)
    return Authenticated(staff, role)


async def staff_for_session(session: AsyncSession, staff_id: int) -> Authenticated | None:
    logins = StaffLogins(session)
    staff = await logins.get(staff_id)
    if staff is None or staff.status != "active":
        return None
    role = await logins.role(staff.role_id)
    return Authenticated(staff, role) if role else None


@dataclass(frozen=True, slots=True)
class TokenAuth:
    token: ApiToken
    role: Role


async def authenticate_token(session: AsyncSession, raw: str) -> TokenAuth | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    logins = StaffLogins(session)
    tok = await logins.token_by_hash(hash_token(raw))
    if tok is None or tok.revoked_at is not None or (tok.expires_at and tok.expires_at <= clock.now()):
        return None
    role = await logins.role(tok.role_id) if tok.role_id is not None else None
    return TokenAuth(tok, role) if role else None


# -- staff -----------------------------------------------------------------------------------


def staff_view(s: Staff) -> dict[str, object]:
    return {
        "id": s.id, "username": s.username, "name": s.name, "phone": mask_phone(s.phone), "email": s.email,
        "role_id": s.role_id, "store_id": s.store_id, "status": s.status, "created_at": s.created_at,
        "last_login_at": s.last_login_at,
    }


async def list_staff(session: AsyncSession, scope: TenantScope, *, q: str | None = None, role_id: int | None = None,
                     store_id: int | None = None, status: str | None = None, offset: int = 0, limit: int = 20) -> tuple[Sequence[Staff], int]:
    return await StaffRepo(session, scope.id).search(q, role_id, store_id, status, offset, limit)


async def get_staff(session: AsyncSession, scope: TenantScope, staff_id: int) -> Staff:
    return await StaffRepo(session, scope.id).get_or_404(staff_id)


async def _check_refs(session: AsyncSession, scope: TenantScope, role_id: int | None, store_id: int | None) -> Role | None:
    role = None
    if role_id is not None:
        role = await Roles(session, scope.id).get(role_id)
        if role is None:
            raise ValidationFailed("role_not_found", "角色不存在", "Role not found", fields=[{"field": "role_id", "message": "no such role"}])
    if store_id is not None:
        from siyu.tenants import service as tenants_service  # imported late: tenants imports staff

        if not await tenants_service.store_exists(session, scope, store_id):
            raise ValidationFailed("store_not_found", "门店不存在", "Store not found", fields=[{"field": "store_id", "message": "no such store"}])
    return role


async def create_staff(session: AsyncSession, scope: TenantScope, data: StaffCreate,
                       grantor: Grantor = SYSTEM_GRANTOR) -> Staff:
    role = await _check_refs(session, scope, data.role_id, data.store_id)
    assert role is not None
    ensure_may_grant(grantor, role)
    await ensure_username_free(session, data.username)
    staff = StaffRepo(session, scope.id).add(Staff(
        username=data.username, name=data.name, password_hash=hash_password(data.password), role_id=data.role_id,
        phone=data.phone, email=data.email, store_id=data.store_id,
    ))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="staff.create", object_type="staff", object_id=staff.id,
                 after=audit.snapshot(staff, _STAFF_FIELDS))
    return staff


async def _guard_last_owner(session: AsyncSession, scope: TenantScope, staff: Staff, new_role: int | None, new_status: str | None) -> None:
    owner = await Roles(session, scope.id).by_code("owner")
    if owner is None or staff.role_id != owner.id or staff.status != "active":
        return
    leaving = (new_role is not None and new_role != owner.id) or (new_status is not None and new_status != "active")
    if leaving and await StaffRepo(session, scope.id).count_active_owners(owner.id) <= 1:
        raise Conflict("last_owner", "至少需要保留一位启用状态的店主", "At least one active owner must remain")


async def update_staff(session: AsyncSession, scope: TenantScope, staff_id: int, data: StaffUpdate,
                       grantor: Grantor = SYSTEM_GRANTOR) -> Staff:
    staff = await StaffRepo(session, scope.id).get_or_404(staff_id)
    await _ensure_may_manage(session, scope, grantor, staff)
    changes = data.model_dump(exclude_unset=True)
    new_role = await _check_refs(session, scope, changes.get("role_id"), changes.get("store_id"))
    if new_role is not None and new_role.id != staff.role_id:
        ensure_may_grant(grantor, new_role)
    await _guard_last_owner(session, scope, staff, changes.get("role_id"), changes.get("status"))
    before = audit.snapshot(staff, _STAFF_FIELDS)
    for k, v in changes.items():
        if v is None and k in ("name", "role_id", "status"):
            continue
        setattr(staff, k, v)
    await session.flush()
    if staff.status != "active":
        await revoke_principal(session, "staff", staff.id)
    audit.record(session, tenant_id=scope.id, action="staff.update", object_type="staff", object_id=staff.id,
                 before=before, after=audit.snapshot(staff, _STAFF_FIELDS))
    return staff


async def reset_password(session: AsyncSession, scope: TenantScope, staff_id: int, password: str,
                         grantor: Grantor = SYSTEM_GRANTOR) -> Staff:
    staff = await StaffRepo(session, scope.id).get_or_404(staff_id)
    await _ensure_may_manage(session, scope, grantor, staff)
    staff.password_hash = hash_password(password)
    await revoke_principal(session, "staff", staff.id)
    audit.record(session, tenant_id=scope.id, action="staff.reset_password", object_type="staff", object_id=staff.id)
    return staff


# -- roles -----------------------------------------------------------------------------------


def _check_permissions(perms: list[str], grantor: Grantor) -> list[str]:
    unknown = sorted(set(perms) - ALL_CODES)
    if unknown:
        raise ValidationFailed("unknown_permission", f"未知权限：{', '.join(unknown)}", f"Unknown permission(s): {', '.join(unknown)}",
                               fields=[{"field": "permissions", "message": f"unknown: {', '.join(unknown)}"}])
    missing = sorted(set(perms) - grantor.permissions)
    if missing:
        raise Forbidden("permission_beyond_own", f"不能授予自己没有的权限：{', '.join(missing)}",
                        f"You cannot grant permissions you do not hold: {', '.join(missing)}", extra={"missing": missing})
    return sorted(set(perms))


async def list_roles(session: AsyncSession, scope: TenantScope) -> Sequence[Role]:
    return await Roles(session, scope.id).all()


async def get_role(session: AsyncSession, scope: TenantScope, role_id: int) -> Role:
    return await Roles(session, scope.id).get_or_404(role_id)


async def create_role(session: AsyncSession, scope: TenantScope, data: RoleIn, grantor: Grantor = SYSTEM_GRANTOR) -> Role:
    repo = Roles(session, scope.id)
    if await repo.by_code(data.code):
        raise Conflict("role_code_taken", f"角色编码 {data.code} 已存在", f"Role code {data.code} already exists")
    role = repo.add(Role(code=data.code, name=data.name, description=data.description,
                         permissions=_check_permissions(list(data.permissions), grantor), is_system=False))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="role.create", object_type="role", object_id=role.id,
                 after={"code": role.code, "name": role.name, "permissions": role.permissions})
    return role


async def update_role(session: AsyncSession, scope: TenantScope, role_id: int, data: RoleUpdate,
                      grantor: Grantor = SYSTEM_GRANTOR) -> Role:
    role = await Roles(session, scope.id).get_or_404(role_id)
    if role.code == "owner":
        raise Conflict("owner_role_locked", "店主角色拥有全部权限，不能修改", "The owner role always has every permission and cannot be edited")
    if _beyond(grantor, role):
        raise Forbidden("role_beyond_own", "不能修改权限超出自己范围的角色", "You cannot edit a role that holds permissions you do not")
    before = {"name": role.name, "description": role.description, "permissions": list(role.permissions)}
    if data.name is not None:
        role.name = data.name
    if "description" in data.model_fields_set:
        role.description = data.description
    if data.permissions is not None:
        role.permissions = _check_permissions(data.permissions, grantor)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="role.update", object_type="role", object_id=role.id,
                 before=before, after={"name": role.name, "description": role.description, "permissions": list(role.permissions)})
    return role


async def delete_role(session: AsyncSession, scope: TenantScope, role_id: int) -> None:
    repo = Roles(session, scope.id)
    role = await repo.get_or_404(role_id)
    if role.is_system:
        raise Conflict("system_role", "系统内置角色不能删除", "Built-in roles cannot be deleted")
    if await repo.in_use(role.id):
        raise Conflict("role_in_use", "仍有员工或令牌使用该角色，请先调整后再删除", "Staff or tokens still use this role")
    await session.delete(role)
    audit.record(session, tenant_id=scope.id, action="role.delete", object_type="role", object_id=role_id,
                 before={"code": role.code, "name": role.name})


# -- API tokens ------------------------------------------------------------------------------


async def list_tokens(session: AsyncSession, scope: TenantScope) -> Sequence[ApiToken]:
    return await Tokens(session, scope.id).all()


async def create_token(session: AsyncSession, scope: TenantScope, data: TokenCreate, created_by: int | None,
                       grantor: Grantor = SYSTEM_GRANTOR) -> tuple[ApiToken, str]:
    role = await Roles(session, scope.id).get(data.role_id)
    if role is None:
        raise ValidationFailed("role_not_found", "角色不存在", "Role not found", fields=[{"field": "role_id", "message": "no such role"}])
    ensure_may_grant(grantor, role)
    raw = new_token(TOKEN_PREFIX)
    tok = Tokens(session, scope.id).add(ApiToken(
        name=data.name, prefix=raw[:10], token_hash=hash_token(raw), role_id=data.role_id, created_by=created_by,
        expires_at=clock.now() + timedelta(days=data.expires_in_days) if data.expires_in_days else None,
    ))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="token.create", object_type="api_token", object_id=tok.id,
                 after={"name": tok.name, "role_id": tok.role_id, "prefix": tok.prefix})
    return tok, raw


async def revoke_token(session: AsyncSession, scope: TenantScope, token_id: int) -> ApiToken:
    tok = await Tokens(session, scope.id).get_or_404(token_id)
    if tok.revoked_at is None:
        tok.revoked_at = clock.now()
        audit.record(session, tenant_id=scope.id, action="token.revoke", object_type="api_token", object_id=tok.id,
                     after={"name": tok.name})
    return tok


async def touch_token(session: AsyncSession, token_id: int) -> None:
    tok = await session.get(ApiToken, token_id)
    if tok is not None:
        tok.last_used_at = clock.now()


# -- audit log and SMS outbox viewers ----------------------------------------------------------


async def audit_entries(session: AsyncSession, scope: TenantScope, *, action: str | None = None, actor: str | None = None,
                        object_type: str | None = None, offset: int = 0, limit: int = 50):
    return await AuditLog(session, scope.id).search(action, actor, object_type, offset, limit)


async def sms_messages(session: AsyncSession, scope: TenantScope, *, phone: str | None = None, offset: int = 0, limit: int = 50):
    return await SmsOutbox(session, scope.id).search(phone, offset, limit)
