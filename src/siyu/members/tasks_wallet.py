"""Jobs of stored value: unpaid recharges are closed at their deadline.

The deadline is a column (``Recharge.pay_deadline``) swept in batches, each batch its own
transaction; a recharge moves by conditional update, so two sweepers (or a payment arriving
at the same moment) never close one twice, and a restart loses nothing. The outbox handlers
(recharge payments, balance refunds, order cancellations and refunds, merged customers) live
in :mod:`siyu.members.wallet`.
"""

from __future__ import annotations

from siyu.kit.jobs import sweeper
from siyu.kit.runtime import Runtime
from siyu.members import wallet

BATCH = 200
#: Stop a pass after this many batches; the next pass carries on.
MAX_BATCHES = 20


@sweeper("members.wallet.close_unpaid", every_seconds=60)
async def close_unpaid_recharges(rt: Runtime) -> int:
    """Close recharges still unpaid after their deadline (their payment is closed first)."""
    total = 0
    for _ in range(MAX_BATCHES):
        async with rt.db.uow() as session:
            n = await wallet.close_overdue(session, limit=BATCH)
        total += n
        if n < BATCH:
            break
    return total
