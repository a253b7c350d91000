"""Jobs of the levels part: the level review (``Member.level_review_at`` is the deadline).

Importing this also imports :mod:`siyu.members.levels`, whose outbox handlers
(``order.paid``, ``after_sale.refunded``, ``customer.registered``, ``customer.merged``) and
member price step register on import. Each review batch is its own transaction; each member
is re-read under its row lock and its deadline moves on, so two sweepers, or a restart in
the middle of a pass, review a member once.
"""

from __future__ import annotations

from siyu.kit.jobs import sweeper
from siyu.kit.runtime import Runtime
from siyu.members import levels

BATCH = 200
#: Stop a pass after this many batches; the next pass carries on.
MAX_BATCHES = 50


@sweeper("members.level_review", every_seconds=300)
async def level_review(rt: Runtime) -> int:
    """Move members whose review is due to the level of their recent growth; returns how many were reviewed."""
    total = 0
    for _ in range(MAX_BATCHES):
        async with rt.db.uow() as session:
            n = await levels.review_due(session, limit=BATCH)
        total += n
        if n < BATCH:
            break
    return total
