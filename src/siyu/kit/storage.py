"""Object storage behind an adapter: a local folder by default (served at ``/media``), an
S3-compatible bucket at scale. Uploads are checked by their actual bytes, not the name or
the client's content type, and by size.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from siyu.kit import clock
from siyu.kit.db import Base, BigID, IdMixin, TenantMixin
from siyu.kit.errors import DomainError, ValidationFailed

MAX_IMAGE_BYTES = 5 * 1024 * 1024
_SIGNATURES: list[tuple[bytes, int, str, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", "png"),
    (b"\xff\xd8\xff", 0, "image/jpeg", "jpg"),
    (b"GIF87a", 0, "image/gif", "gif"),
    (b"GIF89a", 0, "image/gif", "gif"),
    (b"WEBP", 8, "image/webp", "webp"),
]


class MediaFile(IdMixin, TenantMixin, Base):
    __tablename__ = "media_files"

    key: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column()
    sha256: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(30), default="product")
    uploaded_by: Mapped[int | None] = mapped_column(BigID, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


def sniff_image(data: bytes) -> tuple[str, str]:
    """(content type, extension) of a PNG, JPEG, GIF or WebP; a 4xx for anything else."""
    for magic, offset, ctype, ext in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic and (ext != "webp" or data[:4] == b"RIFF"):
            return ctype, ext
    raise ValidationFailed("unsupported_file_type", "只支持 PNG、JPEG、GIF 或 WebP 图片",
                           "Only PNG, JPEG, GIF or WebP images are accepted")


class Storage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store bytes under ``key``; return the public URL."""

    async def get(self, key: str) -> bytes: ...


class LocalStorage:
    def __init__(self, root: Path, base_url: str = "/media") -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if not str(p).startswith(str(self.root.resolve())):
            raise ValueError("key escapes the media folder")
        return p

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return f"{self.base_url}/{key}"

    async def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    url: str
    content_type: str
    size: int


async def save_image(session: AsyncSession, storage: Storage, *, tenant_id: int, data: bytes, purpose: str = "product",
                     uploaded_by: int | None = None, max_bytes: int = MAX_IMAGE_BYTES) -> Stored:
    if not data:
        raise ValidationFailed("empty_file", "文件为空", "The file is empty")
    if len(data) > max_bytes:
        raise DomainError("file_too_large", f"图片不能超过 {max_bytes // (1024 * 1024)} MB",
                          f"Images may be at most {max_bytes // (1024 * 1024)} MB", status=413)
    ctype, ext = sniff_image(data)
    digest = hashlib.sha256(data).hexdigest()
    key = f"t{tenant_id}/{purpose}/{digest[:2]}/{digest[:16]}-{secrets.token_hex(4)}.{ext}"
    url = await storage.put(key, data, ctype)
    row = MediaFile(tenant_id=tenant_id, key=key, url=url, content_type=ctype, size=len(data), sha256=digest,
                    purpose=purpose, uploaded_by=uploaded_by)
    session.add(row)
    await session.flush()
    return Stored(row.id, url, ctype, len(data))
