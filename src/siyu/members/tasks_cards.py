"""Jobs of paid membership cards: closing purchases left unpaid at their deadline, and
telling members a week before their card ends.

Both are deadlines kept in rows (``member_card_purchases.pay_deadline``,
``members.card_expires_at``) swept in batches, each batch its own transaction. Closing is a
conditional status move and a notice is unique per card expiry, so a second sweeper, a
restart or a payment arriving at the same moment never applies anything twice. Importing
this module also registers the cards' outbox handlers (payments, merged customers).
"""

from __future__ import annotations

from siyu.kit.jobs import sweeper
from siyu.kit.runtime import Runtime
from siyu.members import cards

BATCH = 200
#: Stop a pass after this many batches; the next pass carries on.
MAX_BATCHES = 50


@sweeper("members.cards.close_unpaid", every_seconds=60)
async def close_unpaid(rt: Runtime) -> int:
    """Close card purchases still unpaid after their pay deadline."""
    total = 0
    for _ in range(MAX_BATCHES):
        async with rt.db.uow() as session:
            n = await cards.close_overdue(session, limit=BATCH)
        total += n
        if n < BATCH:
            break
    return total


@sweeper("members.cards.expiry_notice", every_seconds=3600)
async def expiry_notices(rt: Runtime) -> int:
    """A ``card_expiring`` notice to members whose card ends within a week (once per expiry)."""
    written, after = 0, 0
    for _ in range(MAX_BATCHES):
        async with rt.db.uow() as session:
            seen, n, after = await cards.notify_expiring(session, limit=BATCH, after_id=after)
        written += n
        if seen < BATCH:
            break
    return written
