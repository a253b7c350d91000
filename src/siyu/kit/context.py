"""Per-request facts (request id, client address, language, acting principal).

Kept in context variables so logs, the audit log and error bodies can read them without
threading the request object through every service call.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: ``kind`` is staff, platform, customer, token or system."""

    kind: str
    id: int | None
    name: str
    tenant_id: int | None = None


SYSTEM = Actor(kind="system", id=None, name="system")

request_id_var: ContextVar[str | None] = ContextVar("siyu_request_id", default=None)
client_ip_var: ContextVar[str | None] = ContextVar("siyu_client_ip", default=None)
language_var: ContextVar[str] = ContextVar("siyu_language", default="zh-CN")
actor_var: ContextVar[Actor] = ContextVar("siyu_actor", default=SYSTEM)


def current_actor() -> Actor:
    return actor_var.get()


def current_language() -> str:
    return language_var.get()
