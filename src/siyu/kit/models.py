"""Imports every module's tables so Alembic and ``create_all`` see the whole schema.

This is the one place in ``kit`` that names business modules, and only to collect their
table definitions; no behaviour flows from here.
"""

from __future__ import annotations

import siyu.catalog.models
import siyu.customers.models
import siyu.inventory.models
import siyu.kit.audit
import siyu.kit.ledger
import siyu.kit.outbox
import siyu.kit.sessions
import siyu.kit.sms
import siyu.kit.storage
import siyu.members.models
import siyu.orders.models
import siyu.payments.models
import siyu.shipping.models
import siyu.staff.models
import siyu.tenants.models  # noqa: F401
from siyu.kit.db import Base

metadata = Base.metadata
