"""Server-side sign-in sessions for staff, platform operators and customers.

The cookie holds a random token; the database holds its hash, the principal, a CSRF token
and the expiry. Any web replica can validate it, and signing out or disabling a user
revokes it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, BigID, IdMixin
from siyu.kit.security import hash_token, new_token


class AuthSession(IdMixin, Base):
    __tablename__ = "auth_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # staff | platform | customer
    principal_id: Mapped[int] = mapped_column(BigID, index=True)
    tenant_id: Mapped[int | None] = mapped_column(BigID, nullable=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: int
    kind: str
    principal_id: int
    tenant_id: int | None
    csrf_token: str


async def create_session(
    session: AsyncSession,
    *,
    kind: str,
    principal_id: int,
    tenant_id: int | None,
    days: int,
    ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[str, AuthSession]:
    token = new_token()
    row = AuthSession(
        token_hash=hash_token(token),
        kind=kind,
        principal_id=principal_id,
        tenant_id=tenant_id,
        csrf_token=new_token(),
        expires_at=clock.now() + timedelta(days=days),
        ip=ip,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(row)
    await session.flush()
    return token, row


async def lookup_session(session: AsyncSession, token: str, kind: str) -> SessionInfo | None:
    row = (
        await session.execute(select(AuthSession).where(AuthSession.token_hash == hash_token(token)))
    ).scalar_one_or_none()
    if row is None or row.kind != kind or row.revoked_at is not None or row.expires_at <= clock.now():
        return None
    return SessionInfo(row.id, row.kind, row.principal_id, row.tenant_id, row.csrf_token)


async def revoke_session(session: AsyncSession, token: str) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.token_hash == hash_token(token), AuthSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )


async def revoke_principal(session: AsyncSession, kind: str, principal_id: int) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.kind == kind, AuthSession.principal_id == principal_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
