"""Rendering helpers for console and storefront pages (navigation, flash messages, tenant name)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from siyu.customers.access import ShopperSession
from siyu.staff.access import PlatformPrincipal, StaffPrincipal
from siyu.web.forms import FLASH_COOKIE, take_flash
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


def store_page(request: Request, shopper: ShopperSession, template: str, context: dict[str, Any], *,
               active_tab: str = "me", status_code: int = 200, extra: dict[str, Any] | None = None) -> HTMLResponse:
    """A storefront page: the shop, the shopper and the flash message, never cached (it is
    the shopper's own). ``extra`` adds template helpers a module's pages share."""
    shop = shopper.shop
    customer = shopper.customer
    request.state.csrf_token = (shopper.csrf_token if customer and shopper.via == "cookie" else "") or ""
    ctx: dict[str, Any] = {
        "area": "store", "shop": shop, "tenant_name": shop.name, "tenant_code": shop.scope.code,
        "base": f"/m/{shop.scope.code}", "customer": customer, "active_tab": active_tab, "flash": take_flash(request),
        "tz": shop.scope.timezone, **(extra or {}),
    }
    ctx.update(context)
    resp = render(request, template, ctx, status_code=status_code)
    resp.headers["Cache-Control"] = "no-store"
    if ctx["flash"]:
        resp.delete_cookie(FLASH_COOKIE, path="/")
    return resp


def redirect(url: str, message: str = "", kind: str = "success") -> Response:
    """303 to ``url``, with a flash message when there is one (the answer to a form post)."""
    resp = RedirectResponse(url, status_code=303)
    return flash(resp, message, kind) if message else resp
