"""JSON endpoints of the orders module, one router file per part:

* ``api_cart`` — the store API's cart, price preview and order placement;
* ``api_orders`` — orders for shoppers (list, detail, pay, cancel, confirm receipt) and for
  staff (list, filters, CSV export, detail with timeline, cancel, ship, bulk ship, settings);
* ``api_aftersales`` — after-sales cases for shoppers (request, return shipping, withdraw)
  and staff (queue, approve, reject, receive the return, refund).
"""

from __future__ import annotations

from fastapi import APIRouter

from siyu.orders import api_aftersales, api_cart, api_orders

#: Every router of this module; app.py includes them all.
routers: list[APIRouter] = [*api_cart.routers, *api_orders.routers, *api_aftersales.routers]
