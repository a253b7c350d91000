"""Repositories that cannot forget the tenant.

A :class:`TenantRepository` is constructed with a tenant id and adds ``tenant_id = :id`` to
every query it builds, so "another tenant's object is a 404" holds by construction rather
than by each query remembering a filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit.db import Base
from siyu.kit.errors import NotFound

M = TypeVar("M", bound=Base)


@dataclass(frozen=True, slots=True)
class TenantScope:
    """The tenant a request acts for: its id, code and time zone."""

    id: int
    code: str
    timezone: str = "Asia/Shanghai"


class MissingTenant(RuntimeError):
    """A tenant repository was built without a tenant: a programming error, never user input."""


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session


class TenantRepository(Repository, Generic[M]):
    model: ClassVar[type[Any]]
    not_found_zh: ClassVar[str] = "对象"
    not_found_en: ClassVar[str] = "Object"
    not_found_code: ClassVar[str] = "not_found"

    def __init__(self, session: AsyncSession, tenant_id: int) -> None:
        if not isinstance(tenant_id, int) or tenant_id <= 0:
            raise MissingTenant(f"{type(self).__name__} needs a tenant id, got {tenant_id!r}")
        super().__init__(session)
        self.tenant_id = tenant_id

    def select(self, *entities: Any) -> Select[Any]:
        stmt = select(*entities) if entities else select(self.model)
        return stmt.where(self.model.tenant_id == self.tenant_id)

    async def get(self, obj_id: int, *, for_update: bool = False) -> M | None:
        stmt = self.select().where(self.model.id == obj_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_or_404(self, obj_id: int, *, for_update: bool = False) -> M:
        obj = await self.get(obj_id, for_update=for_update)
        if obj is None:
            raise NotFound(self.not_found_code, f"{self.not_found_zh}不存在", f"{self.not_found_en} not found")
        return obj

    async def list(self, stmt: Select[Any]) -> Sequence[M]:
        return (await self.session.execute(stmt)).scalars().all()

    async def count(self, stmt: Select[Any]) -> int:
        sub = stmt.order_by(None).subquery()
        return int((await self.session.execute(select(func.count()).select_from(sub))).scalar_one())

    def add(self, obj: M) -> M:
        if getattr(obj, "tenant_id", None) is None:
            obj.tenant_id = self.tenant_id  # type: ignore[attr-defined]
        elif obj.tenant_id != self.tenant_id:  # type: ignore[attr-defined]
            raise MissingTenant("object belongs to another tenant")
        self.session.add(obj)
        return obj
