"""The birthday job: every 15 minutes, for every active tenant with birthday perks on, give
the members whose birthday is today (or this month) their gift, in the tenant's time zone.

Each tenant's batches are their own transactions. Running it twice, after a restart, or in
two workers at the same moment gives each member one gift a year: the guard is the unique
``member_birthday_grants (tenant, customer, year)`` row (see :mod:`siyu.members.birthday`),
not the sweeper lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date

from siyu.kit.db import Database
from siyu.kit.jobs import sweeper
from siyu.kit.runtime import Runtime
from siyu.members import birthday

log = logging.getLogger("siyu.members.birthday")

BATCH = 200
#: Stop a tenant's pass after this many batches; the next pass carries on.
MAX_BATCHES = 50
TENANT_PAGE = 200


async def _active_tenants(db: Database) -> list[int]:
    from siyu.tenants import service as tenants_service

    ids: list[int] = []
    offset = 0
    while True:
        async with db.uow(readonly=True) as s:
            rows, total = await tenants_service.list_tenants(s, None, "active", offset, TENANT_PAGE)
        ids.extend(t.id for t in rows)
        offset += TENANT_PAGE
        if offset >= total or not rows:
            return ids


async def run_birthday_pass(db: Database, *, tenant_ids: Iterable[int] | None = None, today: date | None = None) -> int:
    """Give every due member of the tenants (default: all active ones) their gift; returns
    how many were given. ``today`` overrides each tenant's local date (tests, catch-up)."""
    from siyu.tenants import service as tenants_service

    given = 0
    for tenant_id in list(tenant_ids) if tenant_ids is not None else await _active_tenants(db):
        after = 0
        try:
            # Most tenants have perks off: find out without taking the write lock.
            async with db.uow(readonly=True) as session:
                scope = tenants_service.scope_of(await tenants_service.get_tenant(session, tenant_id))
                if not (await birthday.birthday_settings(session, scope)).enabled:
                    continue
            for _ in range(MAX_BATCHES):
                async with db.uow() as session:
                    result = await birthday.grant_due(session, scope, today=today, after_customer_id=after, limit=BATCH)
                given += result.granted
                after = result.last_customer_id
                if result.seen < BATCH:
                    break
        except Exception:
            log.exception("birthday pass failed for a tenant", extra={"tenant_id": tenant_id})
    return given


@sweeper("members.birthday", every_seconds=900)
async def birthday_perks(rt: Runtime) -> int:
    """Birthday points and coupons of the day (or month), once per member per year."""
    return await run_birthday_pass(rt.db)
