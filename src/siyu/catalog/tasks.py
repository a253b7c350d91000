"""Jobs of the catalog module: the sweeper that puts scheduled products on sale."""

from __future__ import annotations

from siyu.catalog import service
from siyu.kit.jobs import sweeper
from siyu.kit.runtime import Runtime

BATCH = 500


@sweeper("catalog.publish_scheduled", every_seconds=30)
async def publish_scheduled(rt: Runtime) -> int:
    """Publish every scheduled product whose on-sale time has passed, in batches, each batch
    its own transaction. Idempotent: a product is published by a conditional update, so a
    second sweeper (or a staff member unpublishing meanwhile) never publishes it twice."""
    total = 0
    while True:
        async with rt.db.uow() as session:
            n = await service.publish_due(session, limit=BATCH)
        total += n
        if n < BATCH:
            return total
