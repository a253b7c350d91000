"""Rendering helpers for console pages (navigation, flash messages, tenant name)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from siyu.staff.access import PlatformPrincipal, StaffPrincipal
from siyu.web.forms import take_flash
from siyu.web.nav import console_nav
from siyu.web.templating import render


def console_page(request: Request, me: StaffPrincipal, template: str, context: dict[str, Any] | None = None,
                 status_code: int = 200) -> HTMLResponse:
    request.state.csrf_token = me.csrf_token or ""
    ctx: dict[str, Any] = {
        "area": "console",
        "tz": me.scope.timezone,
        "me": me,
        "nav": console_nav(me, request.url.path),
        "tenant_name": me.tenant_name,
        "staff_name": me.name,
        "role_name": me.role_name,
        "flash": pop_flash(request),
    }
    ctx.update(context or {})
    resp = render(request, template, ctx, status_code=status_code)
    if ctx["flash"]:
        resp.delete_cookie("siyu_flash", path="/")
    return resp


def platform_page(request: Request, me: PlatformPrincipal, template: str, context: dict[str, Any] | None = None,
                  status_code: int = 200) -> HTMLResponse:
    request.state.csrf_token = me.csrf_token
    from siyu.web.nav import NavGroup, NavItem

    nav = [NavGroup("平台运营", [NavItem("商家管理", "/platform", "🏢", active=True)])]
    ctx: dict[str, Any] = {"area": "platform", "me": me, "nav": nav, "tenant_name": "", "staff_name": me.name,
                           "role_name": "平台运营", "flash": pop_flash(request)}
    ctx.update(context or {})
    resp = render(request, template, ctx, status_code=status_code)
    if ctx["flash"]:
        resp.delete_cookie("siyu_flash", path="/")
    return resp


def pop_flash(request: Request) -> dict[str, str] | None:
    return take_flash(request)


def flash(response: Any, message: str, kind: str = "success") -> Any:
    from urllib.parse import quote

    response.set_cookie("siyu_flash", f"{kind}:{quote(message)}", max_age=30, path="/", httponly=True, samesite="lax")
    return response
