"""Pages of the members module: the console's 会员中心 under ``/admin/members`` and the
storefront's member centre under ``/m/{shop}/member``, one file per part."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.members import views_cards, views_levels, views_mall, views_points, views_wallet

router = APIRouter()
for _part in (views_levels, views_cards, views_points, views_mall, views_wallet):
    router.include_router(_part.router)
