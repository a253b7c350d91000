"""Shared fixtures of the orders tests: a shop that sells, a signed-in buyer, orders on demand.

``order_shop`` is a fresh tenant with one stock location (``location_id``), two physical
SKUs on sale (``skus``; 100 units each, prices in ``prices``), one virtual SKU
(``virtual_sku``; 100 units) and a signed-in buyer with a default address in Zhejiang
(``buyer``). No freight template: everything ships free until a test calls
``flat_freight(fen)``.

Typical use::

    async def test_something(order_shop):
        order = await order_shop.place()                         # 1 × skus[0], via the service
        order = await order_shop.place([(order_shop.skus[1], 3)])
        r = await order_shop.place_api([(order_shop.skus[0], 2)])   # POST /orders, a fresh key
        other = await order_shop.new_buyer()                      # another customer with an address
        await order_shop.place(buyer=other)
        sku = await order_shop.make_sku(price_fen=990, stock=5)
        loc = await order_shop.add_location("二号仓", priority=200); await order_shop.receive(sku, 3, loc)
        fresh = await order_shop.order(order.id)                  # re-read (detached)

``place`` returns the :class:`~siyu.orders.models.Order` (detached, attributes loaded);
``place_api`` returns the ``httpx.Response`` of ``POST /api/store/v1/{shop}/orders``.
A second shop for isolation tests: ``await make_order_shop(runtime, client, tenant_factory)``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope
from siyu.orders.models import Order
from tests.conftest import TenantInfo, unique, unique_phone


@dataclass
class Buyer:
    customer_id: int
    token: str
    address_id: int | None

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@dataclass
class OrderShop:
    runtime: Runtime
    client: httpx.AsyncClient
    tenant: TenantInfo
    scope: TenantScope
    location_id: int
    skus: list[int]
    virtual_sku: int
    buyer: Buyer
    prices: dict[int, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """``/api/store/v1/{shop}{path}``."""
        return f"/api/store/v1/{self.tenant.code}{path}"

    async def new_buyer(self, *, province_code: str | None = "33") -> Buyer:
        """A new customer signed in by bearer token, with a default address (``None``: no address)."""
        return await make_buyer(self.runtime, self.scope, province_code=province_code)

    async def make_sku(self, *, price_fen: int = 5000, kind: str = "physical", stock: int = 100,
                       location_id: int | None = None, on_sale: bool = True, weight_g: int = 200,
                       title: str | None = None) -> int:
        """A new one-SKU product (published unless ``on_sale=False``) with ``stock`` units at ``location_id``
        (default: the shop's location)."""
        sku = await make_product(self.runtime, self.scope, price_fen=price_fen, kind=kind, on_sale=on_sale,
                                 weight_g=weight_g, title=title)
        self.prices[sku] = price_fen
        if stock:
            await self.receive(sku, stock, location_id or self.location_id)
        return sku

    async def add_location(self, name: str, *, priority: int = 200) -> int:
        from siyu.inventory import service as inventory_service
        from siyu.inventory.schemas import LocationIn

        async with self.runtime.db.uow() as s:
            loc = await inventory_service.create_location(s, self.scope, LocationIn(code=unique("loc"), name=name,
                                                                                    priority=priority))
            return loc.id

    async def receive(self, sku_id: int, qty: int, location_id: int | None = None) -> None:
        from siyu.inventory import service as inventory_service

        async with self.runtime.db.uow() as s:
            await inventory_service.receive(s, self.scope, sku_id, location_id or self.location_id, qty)

    async def flat_freight(self, fee_fen: int, *, free_threshold_fen: int | None = None) -> int:
        """Make a flat-fee freight template the shop's default; returns its id."""
        from siyu.shipping import service as shipping_service
        from siyu.shipping.schemas import FreightTemplateIn

        async with self.runtime.db.uow() as s:
            t = await shipping_service.create_template(s, self.scope, FreightTemplateIn(
                name=unique("运费"), mode="flat", flat_fee_fen=fee_fen, free_threshold_fen=free_threshold_fen,
                is_default=True))
            return t.id

    async def place(self, lines: Sequence[tuple[int, int]] | None = None, *, buyer: Buyer | None = None,
                    address_id: int | str | None = "default", key: str | None = None, buyer_note: str | None = None,
                    from_cart: bool = False, options: dict[str, Any] | None = None) -> Order:
        """Place an order through :func:`siyu.orders.checkout.place_order` in its own unit of work.

        ``lines`` default to one unit of ``skus[0]``; ``address_id="default"`` uses the buyer's address."""
        from siyu.kit.context import Actor, actor_var
        from siyu.orders import checkout

        who = buyer or self.buyer
        addr = who.address_id if address_id == "default" else address_id
        token = actor_var.set(Actor("customer", who.customer_id, f"customer:{who.customer_id}", self.scope.id))
        try:
            async with self.runtime.db.uow() as s:
                return await checkout.place_order(
                    s, self.scope, customer_id=who.customer_id, lines=None if from_cart else list(lines or [(self.skus[0], 1)]),
                    address_id=addr if isinstance(addr, int) else None, buyer_note=buyer_note, idempotency_key=key,
                    channel="h5", from_cart=from_cart, options=options)
        finally:
            actor_var.reset(token)

    async def place_api(self, lines: Sequence[tuple[int, int]] | None = None, *, buyer: Buyer | None = None,
                        key: str | None = None, **body: Any) -> httpx.Response:
        """``POST /orders`` as ``buyer`` with a fresh Idempotency-Key (or ``key``); ``body`` adds or overrides
        fields (``from_cart=True`` sends no lines)."""
        who = buyer or self.buyer
        payload: dict[str, Any] = {"address_id": who.address_id}
        if not body.get("from_cart"):
            payload["lines"] = [{"sku_id": s, "quantity": q} for s, q in (lines or [(self.skus[0], 1)])]
        payload.update(body)
        headers = {**who.headers, "Idempotency-Key": key or secrets.token_hex(8)}
        return await self.client.post(self.url("/orders"), json=payload, headers=headers)

    async def order(self, order_id: int) -> Order:
        """The order as stored now (detached)."""
        async with self.runtime.db.uow(readonly=True) as s:
            order = (await s.execute(select(Order).where(Order.id == order_id))).scalar_one()
            s.expunge(order)
            return order


async def make_product(runtime: Runtime, scope: TenantScope, *, price_fen: int = 5000, kind: str = "physical",
                       on_sale: bool = True, weight_g: int = 200, title: str | None = None) -> int:
    """A one-SKU product through the catalog service; returns the SKU id."""
    from siyu.catalog import service as catalog_service
    from siyu.catalog.schemas import ProductIn, SkuIn

    async with runtime.db.uow() as s:
        product = await catalog_service.create_product(s, scope, ProductIn(
            title=title or unique("商品"), kind=kind,
            skus=[SkuIn(price_fen=price_fen, weight_g=weight_g)]))
        if on_sale:
            await catalog_service.change_status(s, scope, product.id, "publish")
        skus = await catalog_service.product_skus(s, scope, product.id)
        return skus[0].id


async def make_buyer(runtime: Runtime, scope: TenantScope, *, province_code: str | None = "33") -> Buyer:
    """A customer with a bearer session and (unless ``province_code`` is None) a default address."""
    from siyu.customers import service as customers_service
    from siyu.customers.schemas import AddressIn
    from siyu.kit.sessions import create_session

    async with runtime.db.uow() as s:
        customer = await customers_service.import_customer(s, scope, phone=unique_phone(), nickname=unique("买家"),
                                                           registered_via="sms")
        await s.flush()
        token, _row = await create_session(s, kind="customer", principal_id=customer.id, tenant_id=scope.id, days=1)
        address_id = None
        if province_code is not None:
            addr = await customers_service.create_address(s, scope, customer.id, AddressIn(
                receiver_name="张三", phone=unique_phone(), province_code=province_code, city="杭州市", district="西湖区",
                detail="文三路 1 号", is_default=True))
            address_id = addr.id
        return Buyer(customer.id, token, address_id)


async def make_order_shop(runtime: Runtime, client: httpx.AsyncClient,
                          tenant_factory: Callable[..., Awaitable[TenantInfo]], name: str = "下单测试商家") -> OrderShop:
    from siyu.inventory import service as inventory_service
    from siyu.inventory.schemas import LocationIn
    from siyu.tenants import service as tenants_service

    t = await tenant_factory(name)
    async with runtime.db.uow() as s:
        scope = tenants_service.scope_of(await tenants_service.get_tenant(s, t.id))
        loc = await inventory_service.create_location(s, scope, LocationIn(code="main", name="主仓", priority=10))
        location_id = loc.id
    buyer = await make_buyer(runtime, scope)
    shop = OrderShop(runtime=runtime, client=client, tenant=t, scope=scope, location_id=location_id, skus=[],
                     virtual_sku=0, buyer=buyer)
    shop.skus = [await shop.make_sku(price_fen=12800, title="明前龙井"), await shop.make_sku(price_fen=3990, title="白茶饼")]
    shop.virtual_sku = await shop.make_sku(price_fen=5000, kind="virtual", title="品鉴课兑换券")
    return shop


@pytest.fixture
async def order_shop(runtime: Runtime, client: httpx.AsyncClient, tenant_factory: Any) -> OrderShop:
    """A shop ready to sell: see the module docstring."""
    return await make_order_shop(runtime, client, tenant_factory)
