"""The signed-in shopper of a storefront request.

Pages use the ``siyu_customer`` cookie (with CSRF on unsafe requests); the mini-program
and other API clients send the same session token as a bearer token. A session belongs to
one tenant: a token from shop A is not signed in at shop B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi import Path as PathParam

from siyu.customers import service
from siyu.customers.models import Customer
from siyu.kit.context import Actor, actor_var
from siyu.kit.errors import Unauthorized
from siyu.kit.sessions import lookup_session
from siyu.kit.tenancy import TenantScope
from siyu.kit.web import UoW
from siyu.staff.access import verify_csrf
from siyu.tenants import service as tenants_service

CUSTOMER_COOKIE = "siyu_customer"
ShopCode = Annotated[str, PathParam(min_length=2, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Shop (tenant) code")]


@dataclass(frozen=True, slots=True)
class Shop:
    scope: TenantScope
    name: str
    settings: dict


@dataclass(frozen=True, slots=True)
class ShopperSession:
    shop: Shop
    customer: Customer | None
    csrf_token: str | None
    via: str | None


async def _shop(shop: ShopCode, session: UoW) -> Shop:
    tenant = await tenants_service.storefront_tenant(session, shop)
    return Shop(tenants_service.scope_of(tenant), tenant.name, dict(tenant.settings or {}))


CurrentShop = Annotated[Shop, Depends(_shop)]


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() or None if auth[:7].lower() == "bearer " else None


async def _shopper(request: Request, shop: CurrentShop, session: UoW) -> ShopperSession:
    raw = _bearer(request)
    via = "token" if raw else "cookie"
    raw = raw or request.cookies.get(CUSTOMER_COOKIE)
    if not raw:
        return ShopperSession(shop, None, None, None)
    info = await lookup_session(session, raw, "customer")
    if info is None or info.tenant_id != shop.scope.id:
        return ShopperSession(shop, None, None, None)
    customer = await service.active_customer(session, shop.scope, info.principal_id)
    if customer is None:
        return ShopperSession(shop, None, None, None)
    if via == "cookie":
        await verify_csrf(request, info.csrf_token)
    actor_var.set(Actor("customer", customer.id, customer.nickname or f"customer:{customer.id}", shop.scope.id))
    return ShopperSession(shop, customer, info.csrf_token, via)


OptionalShopper = Annotated[ShopperSession, Depends(_shopper)]


async def _required(shopper: OptionalShopper, request: Request) -> ShopperSession:
    if shopper.customer is None:
        if not request.url.path.startswith("/api/"):
            from siyu.staff.access import LoginRequired, return_to

            raise LoginRequired(f"/m/{shopper.shop.scope.code}/login?next={return_to(request)}")
        raise Unauthorized("unauthorized", "请先登录", "Sign in first")
    return shopper


CurrentShopper = Annotated[ShopperSession, Depends(_required)]
