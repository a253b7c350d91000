"""Helpers of the points tests: a tenant with members, reading the ledger back and checking
the invariants every points test relies on (balance = Σ entries = Σ lot remaining ≥ 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope
from siyu.members import points
from siyu.members.models import Member, PointsEntry, PointsLot, PointsLotUse
from tests.conftest import unique, unique_phone


@dataclass
class PointsShop:
    runtime: Runtime
    scope: TenantScope
    tenant_id: int

    async def customer(self, *, phone: str | None = "auto") -> int:
        from siyu.customers import service as customers_service

        async with self.runtime.db.uow() as s:
            c = await customers_service.import_customer(s, self.scope, phone=unique_phone() if phone == "auto" else phone,
                                                        nickname=unique("会员"), registered_via="sms")
            await s.flush()
            return c.id

    async def run(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """``fn(session, scope, *args, **kw)`` in its own unit of work."""
        async with self.runtime.db.uow() as s:
            return await fn(s, self.scope, *args, **kw)

    async def save_rules(self, **values: Any) -> points.PointsRules:
        async with self.runtime.db.uow() as s:
            current = (await points.rules(s, self.scope)).as_dict()
            current.update(values)
            return await points.save_rules(s, self.scope, points.PointsRulesIn(**current))

    async def state(self, customer_id: int) -> Ledger:
        return await ledger(self.runtime, self.scope, customer_id)


@dataclass
class Ledger:
    member_points: int
    entry_sum: int
    lot_sum: int
    entries: list[PointsEntry]
    lots: list[PointsLot]

    def check(self) -> None:
        assert self.member_points == self.entry_sum == self.lot_sum, (self.member_points, self.entry_sum, self.lot_sum)
        assert self.member_points >= 0
        assert all(0 <= lot.remaining <= lot.amount for lot in self.lots)
        running = 0
        for e in sorted(self.entries, key=lambda e: e.id):
            running += e.amount
            assert e.balance_after == running, (e.id, e.kind, e.balance_after, running)

    def remaining(self) -> dict[int, int]:
        return {lot.id: lot.remaining for lot in self.lots}


async def ledger(runtime: Runtime, scope: TenantScope, customer_id: int) -> Ledger:
    async with runtime.db.uow(readonly=True) as s:
        member = (await s.execute(select(Member.points).where(Member.tenant_id == scope.id,
                                                              Member.customer_id == customer_id))).scalar_one_or_none()
        entries = list((await s.execute(select(PointsEntry).where(
            PointsEntry.tenant_id == scope.id, PointsEntry.customer_id == customer_id).order_by(PointsEntry.id))).scalars())
        lots = list((await s.execute(select(PointsLot).where(
            PointsLot.tenant_id == scope.id, PointsLot.customer_id == customer_id).order_by(PointsLot.id))).scalars())
        for obj in (*entries, *lots):
            s.expunge(obj)
    return Ledger(int(member or 0), sum(e.amount for e in entries), sum(lot.remaining for lot in lots), entries, lots)


async def lot_uses(runtime: Runtime, scope: TenantScope, entry_id: int) -> dict[int, int]:
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(PointsLotUse.lot_id, func.sum(PointsLotUse.amount)).where(
            PointsLotUse.tenant_id == scope.id, PointsLotUse.entry_id == entry_id).group_by(PointsLotUse.lot_id))).all()
    return {int(a): int(b) for a, b in rows}


async def make_points_shop(runtime: Runtime, tenant_factory: Any) -> PointsShop:
    from siyu.tenants import service as tenants_service

    t = await tenant_factory("积分测试商家")
    async with runtime.db.uow() as s:
        scope = tenants_service.scope_of(await tenants_service.get_tenant(s, t.id))
    return PointsShop(runtime, scope, t.id)
