"""Helpers for server-rendered forms shared by the console and the storefront: safe
redirects, the Origin check on session-less forms, flash cookies, and running a service call
so that its domain error becomes a message next to the form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import unquote, urlencode, urlsplit

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit.errors import DomainError, Forbidden
from siyu.kit.i18n import gettext as _
from siyu.kit.types import MAX_ID
from siyu.kit.web import runtime

T = TypeVar("T")
FLASH_COOKIE = "siyu_flash"


def safe_next(value: str | None, fallback: str = "/admin") -> str:
    """A local path to go to after signing in; other sites, ``//host`` and odd paths fall back."""
    if (value and value.startswith("/") and not value.startswith("//") and "\\" not in value
            and len(value) <= 500 and not any(ord(ch) < 32 for ch in value)):
        return value
    return fallback


def check_origin(request: Request) -> None:
    """Cross-site form posts carry a foreign ``Origin``; refuse them on the session-less forms."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {request.headers.get("host", "").lower(), urlsplit(runtime(request).settings.public_base_url).netloc.lower()}
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    if not netloc or netloc not in allowed:
        raise Forbidden("origin_mismatch", "请求来源不受信任，请刷新页面后重试",
                        "The request came from another site; reload the page and try again")


def take_flash(request: Request) -> dict[str, str] | None:
    """Read the flash message set by :func:`siyu.web.page.flash` (the caller deletes the cookie)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or ":" not in raw:
        return None
    kind, _sep, message = raw.partition(":")
    return {"kind": kind if kind in ("success", "error") else "success", "message": unquote(message)[:300]}


async def attempt(session: AsyncSession, call: Callable[[], Awaitable[T]]) -> tuple[T | None, DomainError | None]:
    """Run a service call in a savepoint: a domain error rolls back only what the call wrote
    and comes back as a value, so the page can show it next to the form."""
    try:
        async with session.begin_nested():
            return await call(), None
    except DomainError as exc:
        return None, exc


def field_errors(exc: ValidationError, messages: dict[str, str]) -> dict[str, str]:
    """Pydantic errors → {field: translated message}, first error per field."""
    out: dict[str, str] = {}
    for err in exc.errors():
        name = str(err["loc"][0]) if err.get("loc") else ""
        if name and name not in out:
            out[name] = _(messages.get(name, "填写的内容有误"))
    return out


def domain_field_errors(err: DomainError, known: Iterable[str]) -> dict[str, str]:
    """A domain error's field details, keyed by the form fields this page has."""
    names = set(known)
    return {f["field"]: err.message() for f in err.fields if f.get("field") in names}


def first_error(fields: dict[str, str]) -> str:
    return next(iter(fields.values()), _("提交的内容有误"))


def to_int(value: str | None) -> int | None:
    """A form or query value as a positive id, or None (blank, not a number, out of range)."""
    value = (value or "").strip()
    if value.isdigit() and 0 < int(value) <= MAX_ID:
        return int(value)
    return None


def query_url(path: str, **params: Any) -> str:
    """``path?a=1&b=2&`` (blank parameters left out), ready for ``page=`` to be appended."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return path + "?" + (urlencode(kept) + "&" if kept else "")


def error_flash(message: str) -> dict[str, str]:
    return {"kind": "error", "message": message}
