"""The demo orders: a shop seeded like 青山茶社 (the demo's goods, stock, freight and customers)
gets a small run of orders through the real services, and everything those services keep must
add up — statuses, after-sales cases, money, stock, payments, timelines and the outbox."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from siyu.catalog.models import Product
from siyu.config import Settings
from siyu.customers.models import Customer
from siyu.inventory import service as inventory_service
from siyu.inventory.models import StockLevel
from siyu.kit import clock
from siyu.kit.kv import MemoryKV
from siyu.kit.migrate import upgrade
from siyu.kit.outbox import OutboxEvent
from siyu.kit.runtime import Runtime, set_runtime
from siyu.kit.tenancy import TenantScope
from siyu.orders import demo as orders_demo
from siyu.orders import service
from siyu.orders.models import AfterSale, Order, OrderLine, OrderTransition, Shipment
from siyu.orders.states import CASE_STATUSES, ORDER_STATUSES
from siyu.payments.models import GatewayNotification, Payment, Refund
from tests.conftest import PG_URL, SECRET, _drop_pg_database, _fresh_pg_database, _pg_async, unique

ORDERS = 60
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class DemoShop:
    runtime: Runtime
    scope: TenantScope
    result: dict[str, Any]
    sales_before: dict[int, int]
    started: datetime
    #: The last outbox event before the orders were seeded.
    events_before: int


@pytest.fixture(scope="module")
async def demo_runtime(backend: str, runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    """A database of its own: the demo's parcels in transit and unpaid orders would otherwise
    fall due in the sweeps other tests run over every tenant."""
    from siyu.kit.db import Database

    created = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('demo-db') / 'demo.db'}"
    else:
        url, created = await _fresh_pg_database(_pg_async(PG_URL))
    await upgrade(url)
    settings = Settings(env="test", database_url=url, redis_url="", secret_key=SECRET,
                        var_dir=tmp_path_factory.mktemp("demo-var"), log_json=False)
    rt = Runtime(settings=settings, db=Database(url, pool_size=5), kv=MemoryKV(), secret_key=SECRET)
    set_runtime(rt)
    try:
        yield rt
    finally:
        set_runtime(runtime)
        await rt.close()
        if created:
            await _drop_pg_database(_pg_async(PG_URL), created)


@pytest.fixture(scope="module")
async def demo_shop(demo_runtime: Runtime) -> DemoShop:
    from siyu.app import load_modules
    from siyu.demo import populate
    from siyu.tenants import service as tenants_service
    from siyu.tenants.schemas import TenantCreate

    runtime = demo_runtime
    load_modules()
    started = clock.now()
    rng = random.Random(11)
    async with runtime.db.uow() as s:
        tenant = await tenants_service.create_tenant(s, TenantCreate(
            code=unique("demo"), name="演示茶社", owner_username=unique("owner"), owner_password="owner-pass-123"))
        scope = tenants_service.scope_of(tenant)
        sku_ids = await populate(s, scope, rng, customers=40, storage=runtime.media,
                                 opening=started - timedelta(days=orders_demo.ORDER_DAYS + 1))
    async with runtime.db.uow(readonly=True) as s:
        sales = dict((await s.execute(select(Product.id, Product.sales_count).where(Product.tenant_id == scope.id))).all())
        events = (await s.execute(select(func.max(OutboxEvent.id)))).scalar_one() or 0
    result = await orders_demo.seed_orders(runtime, scope, rng, count=ORDERS, sku_ids=sku_ids)
    return DemoShop(runtime, scope, result, sales, started, events)


async def _orders(runtime: Runtime, scope: TenantScope) -> list[Order]:
    async with runtime.db.uow(readonly=True) as s:
        return list((await s.execute(select(Order).where(Order.tenant_id == scope.id).order_by(Order.id))).scalars())


async def _lines(runtime: Runtime, scope: TenantScope) -> dict[int, list[OrderLine]]:
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OrderLine).where(OrderLine.tenant_id == scope.id).order_by(OrderLine.id))).scalars()
        out: dict[int, list[OrderLine]] = defaultdict(list)
        for ln in rows:
            out[ln.order_id].append(ln)
        return out


async def test_every_order_status_occurs(demo_shop: DemoShop) -> None:
    runtime = demo_shop.runtime
    assert demo_shop.result["failed"] == 0
    assert demo_shop.result["orders"] == ORDERS
    statuses = demo_shop.result["statuses"]
    assert set(statuses) == set(ORDER_STATUSES)
    assert all(statuses[s] >= 1 for s in ORDER_STATUSES), statuses
    assert statuses["completed"] > ORDERS // 2, "most of the trade is done"
    orders = await _orders(runtime, demo_shop.scope)
    assert len(orders) == ORDERS
    reasons = {o.cancel_reason for o in orders if o.status == "cancelled"}
    assert service.TIMEOUT_REASON in reasons and len(reasons) >= 3, "cancelled by the shopper, the staff and the timeout"


async def test_every_after_sales_status_occurs(demo_shop: DemoShop) -> None:
    runtime = demo_shop.runtime
    cases = demo_shop.result["cases"]
    assert set(cases) == set(CASE_STATUSES)
    assert all(cases[s] >= 1 for s in CASE_STATUSES), cases
    async with runtime.db.uow(readonly=True) as s:
        kinds = set((await s.execute(select(AfterSale.kind).where(AfterSale.tenant_id == demo_shop.scope.id))).scalars())
        opened_by = set((await s.execute(select(AfterSale.opened_by).where(AfterSale.tenant_id == demo_shop.scope.id))).scalars())
    assert kinds == {"refund_only", "return_refund"}
    assert "customer" in opened_by


async def test_money_adds_up(demo_shop: DemoShop) -> None:
    runtime = demo_shop.runtime
    orders = await _orders(runtime, demo_shop.scope)
    lines = await _lines(runtime, demo_shop.scope)
    async with runtime.db.uow(readonly=True) as s:
        payments = list((await s.execute(select(Payment).where(Payment.tenant_id == demo_shop.scope.id))).scalars())
        refunds = list((await s.execute(select(Refund).where(Refund.tenant_id == demo_shop.scope.id))).scalars())
    succeeded = {p.id: p for p in payments if p.status == "succeeded"}
    refunded_by_payment: dict[int, int] = defaultdict(int)
    for r in refunds:
        assert r.status in ("succeeded", "pending"), r.status
        if r.status == "succeeded":
            refunded_by_payment[r.payment_id] += r.amount_fen
    for o in orders:
        ls = lines[o.id]
        assert ls, o.id
        assert sum(ln.paid_fen for ln in ls) == o.payable_fen
        assert sum(ln.subtotal_fen for ln in ls) == o.goods_fen
        assert sum(ln.freight_fen for ln in ls) == o.freight_fen
        assert sum(ln.refunded_fen for ln in ls) == o.refunded_fen
        assert o.item_count == sum(ln.quantity for ln in ls)
        if o.status in ("pending_payment", "cancelled"):
            assert o.paid_fen == 0 and o.payment_id is None
            continue
        payment = succeeded[o.payment_id or 0]
        assert o.paid_fen == o.payable_fen == payment.amount_fen
        assert o.paid_at is not None and payment.paid_at is not None
        assert refunded_by_payment[payment.id] == o.refunded_fen
        if o.status == "closed":
            assert o.refunded_fen == o.paid_fen and o.closed_at is not None
        else:
            assert o.refunded_fen < o.paid_fen
    assert sum(1 for o in orders if o.status == "completed" and o.refunded_fen > 0) >= 1, "partial refunds keep orders open"


async def test_stock_ledger_matches_the_levels(demo_shop: DemoShop) -> None:
    runtime = demo_shop.runtime
    async with runtime.db.uow(readonly=True) as s:
        sums = await inventory_service.ledger_sums(s, demo_shop.scope)
        levels = {(lv.sku_id, lv.location_id): (lv.on_hand, lv.reserved) for lv in (await s.execute(
            select(StockLevel).where(StockLevel.tenant_id == demo_shop.scope.id))).scalars()}
    assert levels and all(on_hand >= reserved >= 0 for on_hand, reserved in levels.values())
    assert {k: v for k, v in sums.items() if v != (0, 0)} == {k: v for k, v in levels.items() if v != (0, 0)}
    orders = await _orders(runtime, demo_shop.scope)
    lines = await _lines(runtime, demo_shop.scope)
    async with runtime.db.uow(readonly=True) as s:
        for o in orders:
            found = await inventory_service.reservation_by_key(s, demo_shop.scope, f"order:{o.id}")
            assert found is not None
            reservation, res_lines = found
            held = sum(ln.quantity - ln.committed for ln in res_lines)
            if o.status in ("cancelled", "closed"):
                assert reservation.status == "released" or held == 0, (o.status, reservation.status)
            elif o.status in ("pending_payment", "paid") and not any(ln.cancelled_qty for ln in lines[o.id]):
                assert held == sum(ln.quantity - ln.shipped_qty for ln in lines[o.id])
            elif o.status in ("shipped", "delivered", "completed"):
                assert held == 0


async def test_orders_leave_the_rows_a_real_order_leaves(demo_shop: DemoShop) -> None:
    runtime = demo_shop.runtime
    scope = demo_shop.scope
    orders = await _orders(runtime, scope)
    lines = await _lines(runtime, scope)
    async with runtime.db.uow(readonly=True) as s:
        registered = dict((await s.execute(select(Customer.id, Customer.created_at).where(Customer.tenant_id == scope.id))).all())
        transitions: dict[int, list[OrderTransition]] = defaultdict(list)
        for t in (await s.execute(select(OrderTransition).where(OrderTransition.tenant_id == scope.id)
                                  .order_by(OrderTransition.id))).scalars():
            transitions[t.order_id].append(t)
        parcels: dict[int, list[Shipment]] = defaultdict(list)
        for p in (await s.execute(select(Shipment).where(Shipment.tenant_id == scope.id))).scalars():
            parcels[p.order_id].append(p)
        processed = (await s.execute(select(func.count()).select_from(GatewayNotification).where(
            GatewayNotification.tenant_id == scope.id, GatewayNotification.outcome == "processed"))).scalar_one()
    paid = [o for o in orders if o.paid_at is not None]
    assert processed >= len(paid), "every payment arrived as a verified sandbox notification"
    oldest = demo_shop.started - timedelta(days=orders_demo.ORDER_DAYS + 1)
    for o in orders:
        assert oldest <= o.created_at <= demo_shop.started
        assert o.created_at >= registered[o.customer_id], "nobody buys before registering"
        assert o.channel in ("mini_program", "h5")
        ships = any(ln.requires_shipping for ln in lines[o.id])
        assert bool(o.address.get("province") and o.address.get("detail")) == ships
        timeline = transitions[o.id]
        assert (timeline[0].from_status, timeline[0].to_status, timeline[0].action) == ("new", "pending_payment", "place")
        assert timeline[0].actor_type == "customer" and timeline[0].actor_id == o.customer_id
        times = [t.created_at for t in timeline]
        assert times == sorted(times) and times[0] >= o.created_at and times[-1] <= demo_shop.started
        moves = [t for t in timeline if t.after_sale_id is None and t.from_status != t.to_status]
        assert moves[-1].to_status == o.status
        if o.status in ("partially_shipped", "shipped", "delivered") or (o.status == "completed" and ships):
            assert parcels[o.id], o.status
            assert all(p.shipped_at >= (o.paid_at or o.created_at) for p in parcels[o.id])
        if o.status == "partially_shipped":
            assert any(ln.shipped_qty < ln.quantity for ln in lines[o.id])
        if o.status in ("shipped", "delivered"):
            assert o.auto_confirm_at is not None and o.auto_confirm_at > demo_shop.started
        if o.status == "completed":
            assert o.completed_at is not None and o.completed_at <= demo_shop.started
    staff_steps = [t for ts in transitions.values() for t in ts if t.action == "ship"]
    assert staff_steps and all(t.actor_type == "staff" for t in staff_steps)
    assert any(t.actor_type == "system" for ts in transitions.values() for t in ts), "sweepers cancel and confirm"
    assert any(t.actor_type == "gateway" for ts in transitions.values() for t in ts), "payments arrive from the gateway"


async def test_unpaid_orders_can_still_be_paid(demo_shop: DemoShop) -> None:
    runtime = demo_shop.runtime
    unpaid = [o for o in await _orders(runtime, demo_shop.scope) if o.status == "pending_payment"]
    assert unpaid
    now = clock.now()
    for o in unpaid:
        assert o.pay_deadline is not None and o.pay_deadline > now + service.MIN_PAY_WINDOW
        assert "pay" in service.shopper_actions(o, now)
    assert demo_shop.result["payable_until"] == min(o.pay_deadline for o in unpaid if o.pay_deadline)


async def test_only_refunds_in_flight_wait_in_the_outbox(demo_shop: DemoShop) -> None:
    runtime = demo_shop.runtime
    async with runtime.db.uow(readonly=True) as s:
        waiting = list((await s.execute(select(OutboxEvent).where(
            OutboxEvent.id > demo_shop.events_before, OutboxEvent.status != "done",
            (OutboxEvent.tenant_id == demo_shop.scope.id) | OutboxEvent.tenant_id.is_(None)))).scalars())
        refunding = list((await s.execute(select(AfterSale).where(
            AfterSale.tenant_id == demo_shop.scope.id, AfterSale.status == "refunding"))).scalars())
    assert [e.topic for e in waiting] == [orders_demo.REFUND_SUBMIT_TOPIC] * len(refunding)
    assert sorted(e.payload["refund_id"] for e in waiting) == sorted(c.refund_id for c in refunding)


async def test_sales_counts_follow_the_orders(demo_shop: DemoShop) -> None:
    runtime = demo_shop.runtime
    orders = {o.id: o for o in await _orders(runtime, demo_shop.scope)}
    lines = await _lines(runtime, demo_shop.scope)
    sold: dict[int, int] = defaultdict(int)
    for order_id, ls in lines.items():
        if orders[order_id].paid_at is not None:
            for ln in ls:
                sold[ln.product_id] += ln.quantity
    async with runtime.db.uow(readonly=True) as s:
        after = dict((await s.execute(select(Product.id, Product.sales_count).where(
            Product.tenant_id == demo_shop.scope.id))).all())
    assert sold
    assert {pid: after[pid] - demo_shop.sales_before.get(pid, 0) for pid in after if after[pid] != demo_shop.sales_before.get(pid, 0)} == dict(sold)


async def test_a_second_run_leaves_the_orders_alone(demo_shop: DemoShop) -> None:
    runtime = demo_shop.runtime
    before = len(await _orders(runtime, demo_shop.scope))
    again = await orders_demo.seed_orders(runtime, demo_shop.scope, random.Random(11), count=ORDERS)
    assert again["orders"] == 0 and "already has orders" in again["note"]
    assert len(await _orders(runtime, demo_shop.scope)) == before


def _planner(seed: int, now: datetime) -> orders_demo.Planner:
    customers = [orders_demo.DemoCustomer(i, now - timedelta(days=170 - i * 4), f"王{i}号", f"1380000{i:04d}", weight=1 + i % 3)
                 for i in range(1, 41)]
    goods = [orders_demo.DemoGoods(100 + i, 10 + i // 2, f"茶{i}", ships=i % 7 != 0, popularity=1 / (i + 1), gift=i == 5)
             for i in range(20)]
    return orders_demo.Planner(random.Random(seed), now=now, timezone="Asia/Shanghai", customers=customers, goods=goods,
                               timings=orders_demo.Timings())


def _shape(steps: list[orders_demo.Step]) -> list[tuple[Any, ...]]:
    return [(s.at, s.action, s.order.n, s.order.fate, s.order.customer.id, tuple(s.order.lines), s.order.key,
             tuple(sorted((k, str(v)) for k, v in s.args.items()))) for s in steps]


def test_the_plan_is_the_same_for_the_same_seed() -> None:
    now = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    first, second = _planner(3, now).plan(300), _planner(3, now).plan(300)
    assert _shape(first) == _shape(second)
    assert _shape(_planner(4, now).plan(300)) != _shape(first)


def test_the_plan_has_the_shape_of_a_shop() -> None:
    now = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    steps = _planner(5, now).plan(1000)
    placed = [s for s in steps if s.action == "place"]
    assert len(placed) == 1000
    assert all(now - timedelta(days=orders_demo.ORDER_DAYS + 1) <= s.at < now for s in steps)
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    by_order: dict[int, list[str]] = defaultdict(list)
    for s in steps:
        by_order[s.order.n].append(s.action)
    assert all(actions[0] == "place" for actions in by_order.values())
    # busier lately, on weekends and evenings, and on 双11
    last_month = sum(1 for s in placed if s.at > now - timedelta(days=30))
    first_month = sum(1 for s in placed if s.at < now - timedelta(days=150))
    assert last_month > first_month
    singles_day = sum(1 for s in placed if s.at.astimezone(SHANGHAI).date() == datetime(2026, 11, 11).date())
    assert singles_day > 1000 / orders_demo.ORDER_DAYS * 3
    evening = sum(1 for s in placed if 19 <= s.at.astimezone(SHANGHAI).hour <= 22)
    night = sum(1 for s in placed if 2 <= s.at.astimezone(SHANGHAI).hour <= 5)
    assert evening > 5 * night
    for s in placed:
        assert s.order.placed_at >= s.order.customer.created_at
        assert 1 <= len(s.order.lines) <= 4 and len({sku for sku, _q in s.order.lines}) == len(s.order.lines)
    popular = defaultdict(int)
    for s in placed:
        for sku, qty in s.order.lines:
            popular[sku] += qty
    assert popular[100] > popular[119], "popular goods sell more"


async def test_the_demo_seeds_its_shop_once(demo_runtime: Runtime) -> None:
    from siyu.demo import DEMO_TENANT, seed
    from siyu.tenants import service as tenants_service

    first = await seed(demo_runtime, customers=12, orders=25)
    assert first["orders"].startswith("25 over the last 180 days"), first
    assert "unpaid orders can be paid until" in first["orders"]
    second = await seed(demo_runtime, customers=12, orders=25)
    assert "already present" in second["note"] and "orders" not in second
    async with demo_runtime.db.uow(readonly=True) as s:
        found, _n = await tenants_service.list_tenants(s, DEMO_TENANT, None, 0, 10)
        tenant = next(t for t in found if t.code == DEMO_TENANT)
        orders = (await s.execute(select(func.count()).select_from(Order).where(Order.tenant_id == tenant.id))).scalar_one()
        first_order = (await s.execute(select(func.min(Order.created_at)).where(Order.tenant_id == tenant.id))).scalar_one()
    assert orders == 25
    assert tenant.created_at < first_order, "the shop opened before its first order"
