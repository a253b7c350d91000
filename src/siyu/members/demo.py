"""Demo data of the members module: levels and benefits, points rules, a points mall, recharge
packages, paid cards, birthdays, check-ins and recharges — written through the members
services, before the demo orders (which then earn growth and points as real orders do).

Each part seeds its own (``demo_<part>.seed_demo``); this runs them in an order that builds
on itself (levels before the cards that grant them, points rules before anything earns).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit.tenancy import TenantScope

PARTS = ("levels", "points", "cards", "mall", "wallet")


async def seed_members(session: AsyncSession, scope: TenantScope, rng: random.Random,
                       customer_ids: Sequence[int]) -> dict[str, Any]:
    """Every part's demo data for ``customer_ids``; returns what each part made."""
    made: dict[str, Any] = {}
    for part in PARTS:
        module = importlib.import_module(f"siyu.members.demo_{part}")
        made[part] = await module.seed_demo(session, scope, rng, list(customer_ids))
        await session.flush()
    return made
