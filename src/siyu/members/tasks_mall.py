"""Jobs of the points mall: its outbox handlers live in :mod:`siyu.members.mall` (order paid,
cancelled and refunded; customers merged); importing this registers them in a worker.

The mall has no deadlines of its own: an exchange waiting for its cash part is an unpaid
order, which the orders module's timeout sweeper cancels (``order.cancelled`` then returns
the points, stock and the member's claim).
"""

from __future__ import annotations

from siyu.members import mall  # noqa: F401  (registers the handlers, the pricing step and the placement hook)
