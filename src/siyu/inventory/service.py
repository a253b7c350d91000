"""Inventory rules: stock levels, reservations and the movement ledger (being built).

Other modules call only the functions below. Contract:

* ``available(session, scope, sku_ids) -> dict[int, int]``: sellable units (on_hand -
  reserved, summed over active locations) for each SKU id; unknown ids map to 0.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit.tenancy import TenantScope


async def available(session: AsyncSession, scope: TenantScope, sku_ids: list[int]) -> dict[int, int]:
    raise NotImplementedError
