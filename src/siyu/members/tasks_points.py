"""Sweepers of the points part: lots past their expiry, and notices before they expire.

Both deadlines are columns of :class:`~siyu.members.models.PointsLot` (``expires_at``,
``notified_at``) swept in batches, each batch its own transaction, each member in its own
savepoint. Expiring a member's lots locks the member row and writes one ``expire`` entry per
expiry moment under a key naming its first lot, so a second sweeper, or a member spending at
that moment (spending expires what is due first), never expires a lot twice. A notice is
claimed by a conditional update of ``notified_at`` and written under a unique notice key:
once per lot, whoever runs. A restart loses nothing; the next pass finds what is still due.
"""

from __future__ import annotations

from siyu.kit.jobs import sweeper
from siyu.kit.runtime import Runtime
from siyu.members import points

BATCH = 200
#: Stop a pass after this many batches; the next pass carries on.
MAX_BATCHES = 50


@sweeper("members.points_expire", every_seconds=300)
async def expire_points(rt: Runtime) -> int:
    """Expire lots past ``expires_at`` (one ``expire`` entry per member and expiry moment)."""
    total = 0
    for _ in range(MAX_BATCHES):
        async with rt.db.uow() as session:
            n = await points.expire_batch(session, limit=BATCH)
        total += n
        if n < BATCH:
            break
    return total


@sweeper("members.points_notice", every_seconds=3600)
async def notify_expiring_points(rt: Runtime) -> int:
    """Tell members, once per lot, that points expire within their shop's ``notice_days``."""
    total = 0
    for _ in range(MAX_BATCHES):
        async with rt.db.uow() as session:
            n = await points.notice_batch(session, limit=BATCH)
        total += n
        if n == 0:
            break
    return total
