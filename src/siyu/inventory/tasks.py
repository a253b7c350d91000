"""Jobs of the inventory module.

``inventory.low_stock`` events are written by the service in the transaction whose change
took a level to its threshold or below (once per crossing). The handler here records the
alert in the log and the metrics; other modules (staff notifications, SCRM) may subscribe to
the same topic with :func:`siyu.kit.outbox.on`. Handlers must be idempotent: this one only
logs.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.inventory.service import LOW_STOCK_TOPIC
from siyu.kit import metrics, outbox

log = logging.getLogger("siyu.inventory")

low_stock_alerts = Counter("siyu_inventory_low_stock_alerts_total", "Stock levels that fell to their low-stock threshold",
                           registry=metrics.registry)


@outbox.on(LOW_STOCK_TOPIC)
async def announce_low_stock(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    log.warning(
        "low stock",
        extra={"tenant_id": event.tenant_id, "sku_id": p.get("sku_id"), "location_id": p.get("location_id"),
               "available": p.get("available"), "threshold": p.get("threshold")},
    )
    low_stock_alerts.inc()
