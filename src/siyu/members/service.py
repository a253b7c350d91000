"""What every part of the members module shares: the member row of a customer and the
tenant's member settings.

A customer becomes a member on first need (sign-up, first order, first visit to the member
centre): :func:`ensure_member` inserts the row with ``ON CONFLICT DO NOTHING`` on
``(tenant_id, customer_id)``, so two first needs at once make one member.

Settings live in ``Tenant.settings["members"][section]`` (``levels``, ``points``,
``wallet``, ``birthday``), each section a small dict owned by the part that reads it;
:func:`save_section` writes one section with the tenant row locked and audits the change.

The parts (each its own file; see ``docs/members.md``):

* :mod:`siyu.members.levels`   levels, growth, member prices, the member price step, profiles
* :mod:`siyu.members.cards`    paid membership cards (付费会员)
* :mod:`siyu.members.points`   the points ledger with lots, earn rules, check-in, points at checkout, expiry
* :mod:`siyu.members.mall`     the points mall
* :mod:`siyu.members.wallet`   stored value: recharges, balance at checkout, principal refunds
* :mod:`siyu.members.birthday` birthday perks
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import audit, clock
from siyu.kit.db import dialect_insert
from siyu.kit.tenancy import TenantScope
from siyu.members.models import Member
from siyu.tenants import service as tenants_service

SETTINGS_KEY = "members"


async def get_member(session: AsyncSession, scope: TenantScope, customer_id: int, *,
                     for_update: bool = False) -> Member | None:
    stmt = select(Member).where(Member.tenant_id == scope.id, Member.customer_id == customer_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def ensure_member(session: AsyncSession, scope: TenantScope, customer_id: int, *,
                        registered_at: datetime | None = None) -> Member:
    """The member row of ``customer_id``, made now if it has none (level: the lowest)."""
    found = await get_member(session, scope, customer_id)
    if found is not None:
        return found
    now = clock.now()
    await session.execute(dialect_insert(session, Member).on_conflict_do_nothing().values(
        tenant_id=scope.id, customer_id=customer_id, growth=0, points=0, gender="unknown", region="",
        registered_at=registered_at or now, created_at=now, updated_at=now))
    found = await get_member(session, scope, customer_id)
    assert found is not None
    return found


async def section(session: AsyncSession, scope: TenantScope, name: str) -> dict[str, Any]:
    """One section of the tenant's member settings (empty when never saved)."""
    tenant = await tenants_service.get_tenant(session, scope.id)
    raw = (tenant.settings or {}).get(SETTINGS_KEY)
    value = raw.get(name) if isinstance(raw, dict) else None
    return dict(value) if isinstance(value, dict) else {}


async def save_section(session: AsyncSession, scope: TenantScope, name: str, value: dict[str, Any]) -> None:
    """Replace one section (the tenant row is locked: the settings dict is written back whole)."""
    tenant = await tenants_service.get_tenant(session, scope.id)
    await session.refresh(tenant, with_for_update=True)
    settings = dict(tenant.settings or {})
    members = dict(settings.get(SETTINGS_KEY) or {})
    before = members.get(name)
    if before == value:
        return
    members[name] = value
    settings[SETTINGS_KEY] = members
    tenant.settings = settings
    await session.flush()
    audit.record(session, tenant_id=scope.id, action=f"members.settings.{name}", object_type="member_settings",
                 object_id=scope.id, before=before if isinstance(before, dict) else None, after=value)


async def set_card(session: AsyncSession, scope: TenantScope, customer_id: int, *, level_id: int | None,
                   plan_id: int | None, expires_at: datetime | None) -> Member:
    """Record the paid card a member holds (``None`` everywhere: none). The effective level is
    the higher of the growth level and a card level that has not expired (levels decide)."""
    member = await ensure_member(session, scope, customer_id)
    member = await get_member(session, scope, customer_id, for_update=True) or member
    member.card_level_id = level_id
    member.card_plan_id = plan_id
    member.card_expires_at = expires_at
    member.updated_at = clock.now()
    await session.flush()
    return member
