"""Jinja2 environment for the console and the storefront.

Templates live under ``web/templates/<area or module>/``. Every page gets ``_`` (translate),
``static`` (asset URL with a version tag so browsers refetch after an upgrade), ``lang`` and
the request's CSRF token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from siyu import __version__
from siyu.kit.context import current_language
from siyu.kit.i18n import LANGUAGES, gettext
from siyu.kit.security import mask_phone
from siyu.web import i18n_base  # noqa: F401  (registers English for the layouts)

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
env = templates.env
env.globals["_"] = gettext
env.globals["static"] = lambda path: f"/static/{path}?v={__version__}"
env.globals["LANGUAGES"] = LANGUAGES
env.filters["mask_phone"] = mask_phone


def _fen(value: int | None) -> str:
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    value = abs(int(value))
    return f"{sign}¥{value // 100:,}.{value % 100:02d}"


@pass_context
def _dt(ctx: Any, value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format a UTC datetime in the page's time zone (``tz`` in the context: the tenant's)."""
    if value is None:
        return ""
    return str(value.astimezone(ZoneInfo(str(ctx.get("tz") or "Asia/Shanghai"))).strftime(fmt))


env.filters["fen"] = _fen
env.filters["dt"] = _dt


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    ctx: dict[str, Any] = {
        "lang": current_language(),
        "csrf_token": getattr(request.state, "csrf_token", "") or "",
        "path": request.url.path,
    }
    if context:
        ctx.update(context)
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=headers)
