"""Fixtures of the members tests: the orders module's shop (products, buyers, placing orders)
is the ground members stand on, so its fixture is shared here."""

from __future__ import annotations

from tests.orders.conftest import order_shop  # noqa: F401  (pytest finds the fixture by name)
