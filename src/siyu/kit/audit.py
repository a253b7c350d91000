"""The audit log: who changed what, when, with the values before and after.

Services call :func:`record` in the same transaction as the change, so an audit row exists
exactly when the change does. Secrets never enter it: keys named like passwords or tokens
are replaced before writing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.context import client_ip_var, current_actor, request_id_var
from siyu.kit.db import Base, BigID, IdMixin

_SECRET_KEYS = ("password", "token", "secret", "code_hash", "password_hash", "token_hash")


class AuditEntry(IdMixin, Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant_time", "tenant_id", "created_at"),)

    tenant_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    actor_name: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(80), index=True)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


#: Human names of audit actions and object types (zh-CN source text), filled by each module
#: with :func:`describe` so the audit viewer can show "新建商品" instead of "product.create".
ACTION_LABELS: dict[str, str] = {}
OBJECT_LABELS: dict[str, str] = {}


def describe(*, actions: dict[str, str] | None = None, objects: dict[str, str] | None = None) -> None:
    ACTION_LABELS.update(actions or {})
    OBJECT_LABELS.update(objects or {})


def _scrub(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    out: dict[str, Any] = {}
    for k, v in data.items():
        if any(s in k.lower() for s in _SECRET_KEYS):
            out[k] = "***"
        elif isinstance(v, datetime):
            out[k] = v.isoformat()
        elif isinstance(v, dict):
            out[k] = _scrub(v)
        else:
            out[k] = v
    return out


def record(
    session: AsyncSession,
    *,
    tenant_id: int | None,
    action: str,
    object_type: str,
    object_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    actor = current_actor()
    entry = AuditEntry(
        tenant_id=tenant_id,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_name=actor.name[:100],
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        before=_scrub(before),
        after=_scrub(after),
        ip=client_ip_var.get(),
        request_id=request_id_var.get(),
    )
    session.add(entry)
    return entry


def snapshot(obj: Any, fields: list[str]) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in fields}
