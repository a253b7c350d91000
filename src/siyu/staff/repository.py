"""Queries of the staff module."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select

from siyu.kit.audit import AuditEntry
from siyu.kit.sms import SmsMessage
from siyu.kit.tenancy import Repository, TenantRepository
from siyu.staff.models import ApiToken, Role, Staff


class Roles(TenantRepository[Role]):
    model = Role
    not_found_zh = "角色"
    not_found_en = "Role"
    not_found_code = "role_not_found"

    async def by_code(self, code: str) -> Role | None:
        return (await self.session.execute(self.select().where(Role.code == code))).scalar_one_or_none()

    async def all(self) -> Sequence[Role]:
        return await self.list(self.select().order_by(Role.id))

    async def in_use(self, role_id: int) -> bool:
        staff = await self.session.execute(
            select(Staff.id).where(Staff.tenant_id == self.tenant_id, Staff.role_id == role_id).limit(1)
        )
        tokens = await self.session.execute(
            select(ApiToken.id)
            .where(ApiToken.tenant_id == self.tenant_id, ApiToken.role_id == role_id, ApiToken.revoked_at.is_(None))
            .limit(1)
        )
        return staff.first() is not None or tokens.first() is not None


class StaffRepo(TenantRepository[Staff]):
    model = Staff
    not_found_zh = "员工"
    not_found_en = "Staff member"
    not_found_code = "staff_not_found"

    async def search(
        self, q: str | None, role_id: int | None, store_id: int | None, status: str | None, offset: int, limit: int
    ) -> tuple[Sequence[Staff], int]:
        stmt = self.select()
        if q:
            like = f"%{q}%"
            stmt = stmt.where(or_(Staff.name.ilike(like), Staff.username.ilike(like), Staff.phone.ilike(like)))
        if role_id:
            stmt = stmt.where(Staff.role_id == role_id)
        if store_id:
            stmt = stmt.where(Staff.store_id == store_id)
        if status:
            stmt = stmt.where(Staff.status == status)
        total = await self.count(stmt)
        return await self.list(stmt.order_by(Staff.id).offset(offset).limit(limit)), total

    async def count_active_owners(self, owner_role_id: int) -> int:
        return await self.count(self.select().where(Staff.role_id == owner_role_id, Staff.status == "active"))


class StaffLogins(Repository):
    """Sign-in looks a user up by name before any tenant is known."""

    async def by_username(self, username: str) -> Staff | None:
        return (await self.session.execute(select(Staff).where(Staff.username == username))).scalar_one_or_none()

    async def get(self, staff_id: int) -> Staff | None:
        return await self.session.get(Staff, staff_id)

    async def role(self, role_id: int) -> Role | None:
        return await self.session.get(Role, role_id)

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        return (await self.session.execute(select(ApiToken).where(ApiToken.token_hash == token_hash))).scalar_one_or_none()


class Tokens(TenantRepository[ApiToken]):
    model = ApiToken
    not_found_zh = "API 令牌"
    not_found_en = "API token"
    not_found_code = "token_not_found"

    async def all(self) -> Sequence[ApiToken]:
        return await self.list(self.select().order_by(ApiToken.id.desc()))


class AuditLog(TenantRepository[AuditEntry]):
    model = AuditEntry

    async def search(
        self, action: str | None, actor: str | None, object_type: str | None, offset: int, limit: int
    ) -> tuple[Sequence[AuditEntry], int]:
        stmt = self.select()
        if action:
            stmt = stmt.where(AuditEntry.action.ilike(f"%{action}%"))
        if actor:
            stmt = stmt.where(AuditEntry.actor_name.ilike(f"%{actor}%"))
        if object_type:
            stmt = stmt.where(AuditEntry.object_type == object_type)
        total = await self.count(stmt)
        return await self.list(stmt.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)), total


class SmsOutbox(TenantRepository[SmsMessage]):
    model = SmsMessage

    async def search(self, phone: str | None, offset: int, limit: int) -> tuple[Sequence[SmsMessage], int]:
        stmt = self.select()
        if phone:
            stmt = stmt.where(SmsMessage.phone == phone)
        total = await self.count(stmt)
        return await self.list(stmt.order_by(SmsMessage.id.desc()).offset(offset).limit(limit)), total
