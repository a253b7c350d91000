"""SMS behind an adapter. Messages are rows first and sent after commit through the outbox,
so a rolled-back request never texts anyone and a provider outage never loses a message.

The default sandbox provider delivers nothing: it marks the row sent, which is where the
console's "SMS outbox" page and the tests read verification codes from.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from sqlalchemy import Index, String, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock, outbox
from siyu.kit.db import Base, BigID, IdMixin
from siyu.kit.security import mask_phone

log = logging.getLogger("siyu.sms")


class SmsMessage(IdMixin, Base):
    __tablename__ = "sms_messages"
    __table_args__ = (Index("ix_sms_tenant_time", "tenant_id", "created_at"),)

    tenant_id: Mapped[int] = mapped_column(BigID)
    phone: Mapped[str] = mapped_column(String(20), index=True)
    template: Mapped[str] = mapped_column(String(40))
    content: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="queued")  # queued | sent | failed
    provider_message_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SmsProvider(Protocol):
    name: str

    async def send(self, phone: str, template: str, content: str) -> str:
        """Deliver one message; return the provider's message id or raise."""


class SandboxSms:
    """Delivers nothing; the stored row is the message."""

    name = "sandbox"

    async def send(self, phone: str, template: str, content: str) -> str:
        log.info("sandbox sms", extra={"phone": mask_phone(phone), "template": template})
        return "sandbox"


_provider: SmsProvider = SandboxSms()


def set_provider(provider: SmsProvider) -> None:
    global _provider
    _provider = provider


def get_provider() -> SmsProvider:
    return _provider


def queue_sms(session: AsyncSession, *, tenant_id: int, phone: str, template: str, content: str) -> SmsMessage:
    msg = SmsMessage(tenant_id=tenant_id, phone=phone, template=template, content=content, provider=_provider.name)
    session.add(msg)
    return msg


async def queue_and_publish(
    session: AsyncSession, *, tenant_id: int, phone: str, template: str, content: str
) -> SmsMessage:
    msg = queue_sms(session, tenant_id=tenant_id, phone=phone, template=template, content=content)
    await session.flush()
    outbox.publish(session, "sms.send", {"message_id": msg.id}, tenant_id=tenant_id)
    return msg


@outbox.on("sms.send")
async def _deliver(session: AsyncSession, event: outbox.Event) -> None:
    msg = (
        await session.execute(select(SmsMessage).where(SmsMessage.id == event.payload["message_id"]))
    ).scalar_one_or_none()
    if msg is None or msg.status != "queued":
        return  # already delivered: the handler is idempotent
    provider_id = await _provider.send(msg.phone, msg.template, msg.content)
    await session.execute(
        update(SmsMessage)
        .where(SmsMessage.id == msg.id, SmsMessage.status == "queued")
        .values(status="sent", sent_at=clock.now(), provider_message_id=provider_id)
    )
