"""Coupons as a reward: the one place members hands a coupon to a customer.

Level-only coupons, the birthday coupon and points-mall coupon items all grant coupons, but
coupons belong to the marketing module, which registers the function that issues one. Until
one is registered, :func:`grant_coupon` answers ``False`` and the console offers no coupon
choices (:func:`coupons_available`), so nothing is promised that cannot be given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit.tenancy import TenantScope

#: ``fn(session, scope, customer_id, coupon_id, *, source_key, reason) -> bool``: issue one
#: coupon of template ``coupon_id`` once per ``source_key`` (True when issued now or before).
CouponGranter = Callable[..., Awaitable[bool]]
#: ``fn(session, scope) -> [(coupon_id, name)]``: the templates the console may offer.
CouponLister = Callable[[AsyncSession, TenantScope], Awaitable[list[tuple[int, str]]]]

_granter: CouponGranter | None = None
_lister: CouponLister | None = None


def register_coupon_granter(grant: CouponGranter, lister: CouponLister) -> None:
    global _granter, _lister
    _granter, _lister = grant, lister


def unregister_coupon_granter() -> None:
    global _granter, _lister
    _granter, _lister = None, None


def coupons_available() -> bool:
    return _granter is not None


async def coupon_choices(session: AsyncSession, scope: TenantScope) -> list[tuple[int, str]]:
    return await _lister(session, scope) if _lister is not None else []


async def grant_coupon(session: AsyncSession, scope: TenantScope, customer_id: int, coupon_id: int, *,
                       source_key: str, reason: str, **extra: Any) -> bool:
    """Issue a coupon through the registered granter; ``False`` when there is none."""
    if _granter is None:
        return False
    return bool(await _granter(session, scope, customer_id, coupon_id, source_key=source_key, reason=reason, **extra))
