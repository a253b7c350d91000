"""JSON endpoints of the members module, one router file per part:

* ``api_levels`` — levels, member prices, member list/detail/profile and the member centre summary;
* ``api_cards`` — paid membership card plans and purchases, birthday settings;
* ``api_points`` — points rules, balance and history, check-in, manual adjustments;
* ``api_mall`` — points-mall items and exchanges;
* ``api_wallet`` — recharge packages, recharges, balance and history, principal refunds, adjustments.
"""

from __future__ import annotations

from fastapi import APIRouter

from siyu.members import api_cards, api_levels, api_mall, api_points, api_wallet

#: Every router of this module; app.py includes them all.
routers: list[APIRouter] = [*api_levels.routers, *api_cards.routers, *api_points.routers, *api_mall.routers,
                            *api_wallet.routers]
