"""Jobs of the orders module: the unpaid-order timeout and the automatic receipt confirmation.

Both deadlines are columns (``pay_deadline``, ``auto_confirm_at``) swept in batches, each
batch its own transaction. Each order moves by a conditional update, so a second sweeper (or
a shopper paying or confirming at the same moment) never applies a change twice; a restart
loses nothing, since the next pass finds whatever is still due.
"""

from __future__ import annotations

from siyu.kit.jobs import sweeper
from siyu.kit.runtime import Runtime
from siyu.orders import fulfilment, service

BATCH = 200
#: Stop a pass after this many batches; the next pass carries on.
MAX_BATCHES = 50


@sweeper("orders.cancel_unpaid", every_seconds=30)
async def cancel_unpaid(rt: Runtime) -> int:
    """Cancel orders still unpaid after their pay deadline and give their stock back."""
    total = 0
    for _ in range(MAX_BATCHES):
        async with rt.db.uow() as session:
            n = await service.cancel_overdue(session, limit=BATCH)
        total += n
        if n < BATCH:
            break
    return total


@sweeper("orders.auto_confirm", every_seconds=300)
async def auto_confirm(rt: Runtime) -> int:
    """Complete shipped orders whose shopper did not confirm receipt in time."""
    total = 0
    for _ in range(MAX_BATCHES):
        async with rt.db.uow() as session:
            n = await fulfilment.auto_confirm_due(session, limit=BATCH)
        total += n
        if n < BATCH:
            break
    return total
