"""Every query of the shipping module."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import update

from siyu.kit import clock
from siyu.kit.tenancy import TenantRepository
from siyu.shipping.models import FreightTemplate


class FreightTemplates(TenantRepository[FreightTemplate]):
    model = FreightTemplate
    not_found_zh = "运费模板"
    not_found_en = "Freight template"
    not_found_code = "freight_template_not_found"

    async def all(self) -> Sequence[FreightTemplate]:
        return await self.list(self.select().order_by(FreightTemplate.is_default.desc(), FreightTemplate.id))

    async def by_ids(self, ids: Iterable[int]) -> dict[int, FreightTemplate]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        return {t.id: t for t in await self.list(self.select().where(FreightTemplate.id.in_(wanted)))}

    async def default(self) -> FreightTemplate | None:
        stmt = self.select().where(FreightTemplate.is_default.is_(True)).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def count_all(self) -> int:
        return await self.count(self.select(FreightTemplate.id))

    async def clear_default(self) -> None:
        """Unset the current default in its own statement, before another becomes default."""
        await self.session.execute(
            update(FreightTemplate)
            .where(FreightTemplate.tenant_id == self.tenant_id, FreightTemplate.is_default.is_(True))
            .values(is_default=False, updated_at=clock.now())
            .execution_options(synchronize_session="fetch")
        )
