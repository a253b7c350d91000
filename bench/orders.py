"""Checkout throughput: N concurrent shoppers placing 3-line orders over HTTP.

Usage::

    python bench/orders.py [--db sqlite|postgres] [--clients 32] [--seconds 20] [--workers 1] [--runs 3]

It prepares a fresh database (a temporary SQLite file, or a new PostgreSQL database on
``--pg-url``), seeds one shop with products, plenty of stock, a freight template and one
signed-in shopper with an address per client, starts ``siyu serve`` against it, lets each
client place orders back to back (``POST /api/store/v1/{shop}/orders`` with three random
SKUs and a fresh ``Idempotency-Key``) and prints orders per second and p50/p99 latency of
the successful requests after a warm-up. Every order is a real order: priced on the
server, stock reserved, fulfilment parts written, outbox event published (and relayed by
the server's own background loop, as in production).

Besides orders/s and latency it prints the CPU seconds the server processes spent per
order (from ``/proc``) and the load generator's own CPU per order: on a small machine the
two share the cores, so both bound the result. ``--runs`` repeats the whole measurement on
a fresh database and prints the median of each figure. ``--server-log`` keeps the server's
log (look for deadlocks or lock timeouts under load).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHOP = "benchshop"
PRODUCTS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fresh_pg(url: str) -> str:
    import asyncpg

    name = f"siyu_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = url.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def drop_pg(url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def seed(clients: int) -> tuple[list[int], list[tuple[str, int]]]:
    """Shop, products with stock, and one shopper (session token, address id) per client."""
    from siyu.catalog import service as catalog
    from siyu.catalog.schemas import ProductIn, SkuIn
    from siyu.config import get_settings
    from siyu.customers import service as customers
    from siyu.customers.schemas import AddressIn
    from siyu.inventory import service as inventory
    from siyu.kit.migrate import upgrade
    from siyu.kit.runtime import build_runtime
    from siyu.kit.sessions import create_session
    from siyu.shipping import service as shipping
    from siyu.shipping.schemas import FreightTemplateIn
    from siyu.tenants import service as tenants
    from siyu.tenants.schemas import TenantCreate

    settings = get_settings()
    await upgrade(settings.effective_database_url)
    rt = build_runtime(settings)
    try:
        async with rt.db.uow() as session:
            tenant = await tenants.create_tenant(session, TenantCreate(
                code=SHOP, name="压测茶铺", owner_username="bench", owner_password="bench-2026-pass",
                owner_name="压测", contact_name="压测", contact_phone="13800138000"))
            scope = tenants.scope_of(tenant)
            await shipping.create_template(session, scope, FreightTemplateIn.model_validate(
                {"name": "全国统一", "mode": "flat", "flat_fee_fen": 800, "free_threshold_fen": 9900}))
            sku_ids = []
            for i in range(PRODUCTS):
                p = await catalog.create_product(session, scope, ProductIn(
                    title=f"压测茶 {i + 1:02d}", skus=[SkuIn(price_fen=1000 + 137 * i, weight_g=250)]))
                await catalog.change_status(session, scope, p.id, "publish")
                for sku in await catalog.product_skus(session, scope, p.id):
                    await inventory.receive(session, scope, sku.id, None, 1_000_000)
                    sku_ids.append(sku.id)
            shoppers = []
            for i in range(clients):
                phone = f"139{i:08d}"
                customer = await customers.import_customer(session, scope, phone=phone, nickname=f"压测{i}")
                addr = await customers.create_address(session, scope, customer.id, AddressIn(
                    receiver_name="压测", phone=phone, province_code="33", city="杭州市", district="西湖区",
                    detail=f"龙井路 {i} 号"))
                token, _ = await create_session(session, kind="customer", principal_id=customer.id, tenant_id=scope.id,
                                                days=1)
                shoppers.append((token, addr.id))
        return sku_ids, shoppers
    finally:
        await rt.close()


async def load(port: int, sku_ids: list[int], shoppers: list[tuple[str, int]], seconds: float,
               warmup: float, on_measure: Any = None) -> dict[str, Any]:
    """Each shopper places orders back to back; latencies of requests that start and end
    inside the measured window count. ``on_measure(start: bool)`` marks the window."""
    import aiohttp

    url = f"http://127.0.0.1:{port}/api/store/v1/{SHOP}/orders"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds
    connector = aiohttp.TCPConnector(limit=len(shoppers) + 4)

    async def client(token: str, address_id: int, rng: random.Random) -> None:
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        async with aiohttp.ClientSession(connector=connector, connector_owner=False) as http:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                lines = ",".join(f'{{"sku_id":{s},"quantity":{rng.randint(1, 2)}}}' for s in rng.sample(sku_ids, 3))
                body = f'{{"lines":[{lines}],"address_id":{address_id}}}'
                async with http.post(url, data=body, headers={**headers, "idempotency-key": secrets.token_hex(12)}) as r:
                    await r.read()
                    t1 = time.perf_counter()
                    if t0 >= measure_from and t1 <= stop:
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                        if r.status == 201:
                            latencies.append(t1 - t0)

    async def window() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        if on_measure:
            on_measure(True)
        await asyncio.sleep(max(0.0, stop - time.perf_counter()))
        if on_measure:
            on_measure(False)

    rng = random.Random(7)
    await asyncio.gather(window(), *(client(tok, addr, random.Random(rng.random())) for tok, addr in shoppers))
    await connector.close()
    latencies.sort()
    n = len(latencies)
    return {
        "orders": n,
        "orders_per_s": n / seconds,
        "p50_ms": statistics.median(latencies) * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "statuses": statuses,
    }


def _cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and all its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not become ready within 60 s")


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    var = tempfile.mkdtemp(prefix="siyu-bench-orders-")
    env = {**os.environ, "SIYU_VAR_DIR": var, "SIYU_LOG_LEVEL": "WARNING", "SIYU_ENV": "development"}
    pg_name = None
    if args.db == "postgres":
        db_url = asyncio.run(fresh_pg(args.pg_url))
        pg_name = db_url.rsplit("/", 1)[1]
        env["SIYU_DATABASE_URL"] = db_url
        env["SIYU_DB_POOL_SIZE"] = str(args.pool_size)
    else:
        env.pop("SIYU_DATABASE_URL", None)
        os.environ.pop("SIYU_DATABASE_URL", None)
    os.environ.update(env)
    from siyu.config import get_settings

    get_settings.cache_clear()
    proc = None
    log = open(f"{args.server_log}.{run}" if args.server_log else os.devnull, "wb")  # noqa: SIM115
    try:
        t = time.perf_counter()
        sku_ids, shoppers = asyncio.run(seed(args.clients))
        print(f"run {run}: seeded {len(sku_ids)} SKUs and {len(shoppers)} shoppers in {time.perf_counter() - t:.1f} s")
        port = free_port()
        siyu = str(Path(sys.executable).with_name("siyu"))
        proc = subprocess.Popen([siyu, "serve", "--port", str(port), "--workers", str(args.workers)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        wait_ready(port, proc)
        marks: dict[str, float] = {}

        def on_measure(start: bool) -> None:
            key = "start" if start else "stop"
            marks[f"server_{key}"] = _cpu_seconds(proc.pid)
            marks[f"client_{key}"] = time.process_time()

        result = asyncio.run(load(port, sku_ids, shoppers, args.seconds, args.warmup, on_measure))
        n = max(result["orders"], 1)
        result["server_cpu_ms"] = (marks["server_stop"] - marks["server_start"]) / n * 1000
        result["client_cpu_ms"] = (marks["client_stop"] - marks["client_start"]) / n * 1000
        print(f"run {run}: orders={result['orders']} orders/s={result['orders_per_s']:.0f} "
              f"p50={result['p50_ms']:.1f} ms p99={result['p99_ms']:.1f} ms "
              f"server CPU/order={result['server_cpu_ms']:.2f} ms client CPU/order={result['client_cpu_ms']:.2f} ms "
              f"statuses={result['statuses']}")
        return result
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        if pg_name is not None:
            asyncio.run(drop_pg(args.pg_url, pg_name))
        shutil.rmtree(var, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--pg-url", default=os.environ.get("SIYU_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=1,
                    help="siyu serve worker processes (SQLite has one writer: 1 is usually best)")
    ap.add_argument("--pool-size", type=int, default=10, help="PostgreSQL connections per worker (SIYU_DB_POOL_SIZE)")
    ap.add_argument("--runs", type=int, default=1, help="repeat on a fresh database and report medians")
    ap.add_argument("--server-log", default="", help="keep the server log in FILE.<run>")
    args = ap.parse_args()

    try:
        import uvloop
    except ImportError:  # the load generator works without it, only a little hungrier
        uvloop = None
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(f"machine: {os.cpu_count()} CPUs {platform.machine()}, Python {platform.python_version()}, "
          f"database={args.db} workers={args.workers} clients={args.clients} seconds={args.seconds:g}")
    results = [one_run(args, run) for run in range(1, args.runs + 1)]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    print(f"median of {len(results)}: orders/s={med('orders_per_s'):.0f} p50={med('p50_ms'):.1f} ms "
          f"p99={med('p99_ms'):.1f} ms server CPU/order={med('server_cpu_ms'):.2f} ms "
          f"client CPU/order={med('client_cpu_ms'):.2f} ms")


if __name__ == "__main__":
    main()
