"""Queries of the tenants module."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select

from siyu.kit.tenancy import Repository, TenantRepository
from siyu.tenants.models import PlatformUser, Store, Tenant, TenantEvent


class TenantDirectory(Repository):
    """Platform-level queries: tenants themselves are not tenant-owned rows."""

    async def get(self, tenant_id: int) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def by_code(self, code: str) -> Tenant | None:
        return (await self.session.execute(select(Tenant).where(Tenant.code == code))).scalar_one_or_none()

    async def search(self, q: str | None, status: str | None, offset: int, limit: int) -> tuple[Sequence[Tenant], int]:
        stmt = select(Tenant)
        if q:
            like = f"%{q}%"
            stmt = stmt.where(or_(Tenant.name.ilike(like), Tenant.code.ilike(like)))
        if status:
            stmt = stmt.where(Tenant.status == status)
        total = (await self.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
        rows = (await self.session.execute(stmt.order_by(Tenant.id.desc()).offset(offset).limit(limit))).scalars().all()
        return rows, int(total)

    async def events(self, tenant_id: int) -> Sequence[TenantEvent]:
        return (
            await self.session.execute(
                select(TenantEvent).where(TenantEvent.tenant_id == tenant_id).order_by(TenantEvent.id.desc())
            )
        ).scalars().all()

    async def only_tenant(self) -> Tenant | None:
        rows = (await self.session.execute(select(Tenant).order_by(Tenant.id).limit(2))).scalars().all()
        return rows[0] if len(rows) == 1 else None

    async def first_tenant(self) -> Tenant | None:
        return (await self.session.execute(select(Tenant).order_by(Tenant.id).limit(1))).scalar_one_or_none()


class PlatformUsers(Repository):
    async def by_username(self, username: str) -> PlatformUser | None:
        return (
            await self.session.execute(select(PlatformUser).where(PlatformUser.username == username))
        ).scalar_one_or_none()

    async def get(self, user_id: int) -> PlatformUser | None:
        return await self.session.get(PlatformUser, user_id)


class Stores(TenantRepository[Store]):
    model = Store
    not_found_zh = "门店"
    not_found_en = "Store"
    not_found_code = "store_not_found"

    async def by_code(self, code: str) -> Store | None:
        return (await self.session.execute(self.select().where(Store.code == code))).scalar_one_or_none()

    async def search(self, q: str | None, offset: int, limit: int) -> tuple[Sequence[Store], int]:
        stmt = self.select()
        if q:
            stmt = stmt.where(or_(Store.name.ilike(f"%{q}%"), Store.code.ilike(f"%{q}%")))
        total = await self.count(stmt)
        return await self.list(stmt.order_by(Store.id).offset(offset).limit(limit)), total
