"""Shared fixtures: every database test runs on SQLite and, when configured, PostgreSQL.

``backend`` is a session-scoped parameter, so pytest runs the whole suite once per backend.
The PostgreSQL run is skipped (and says so in the summary) unless SIYU_TEST_DATABASE_URL is
set; Redis-backed KV is used on the PostgreSQL run when SIYU_TEST_REDIS_URL is set, so that
run exercises the multi-process configuration end to end.

Tests isolate themselves by creating their own tenant (``tenant_factory``) rather than by
truncating tables: tenancy is the product's own isolation mechanism, and leaning on it keeps
the suite fast.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from siyu.config import Settings
from siyu.kit import outbox
from siyu.kit.context import SYSTEM, actor_var
from siyu.kit.kv import MemoryKV, RedisKV
from siyu.kit.migrate import upgrade
from siyu.kit.runtime import Runtime, set_runtime

PG_URL = os.environ.get("SIYU_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("SIYU_TEST_REDIS_URL", "")
SECRET = "test-secret-key-0123456789abcdef"


def _pg_async(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        "siyu backends: sqlite" + (" + postgresql" if PG_URL else " (postgresql skipped: SIYU_TEST_DATABASE_URL not set)"),
        "siyu kv: memory" + (" + redis" if REDIS_URL else " (redis skipped: SIYU_TEST_REDIS_URL not set)"),
    ]


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not PG_URL:
        pytest.skip("PostgreSQL backend skipped: set SIYU_TEST_DATABASE_URL to run it")
    return str(request.param)


async def _fresh_pg_database(url: str) -> tuple[str, str | None]:
    """A new, empty database for this run next to the configured one, so concurrent runs
    never share tables; falls back to resetting the configured database's public schema when
    the role may not create databases. Returns (url, name to drop afterwards)."""
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_{os.getpid()}_{secrets.token_hex(3)}"
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        return base.set(database=name).render_as_string(hide_password=False), name
    except Exception:
        async with engine.connect() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        return url, None
    finally:
        await engine.dispose()


async def _drop_pg_database(url: str, name: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "siyu-test.db"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade(url)
        yield url
        return
    url, created = await _fresh_pg_database(_pg_async(PG_URL))
    await upgrade(url)
    yield url
    if created:
        await _drop_pg_database(_pg_async(PG_URL), created)


@pytest.fixture(scope="session")
async def runtime(backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    from siyu.kit.db import Database

    use_redis = backend == "postgres" and bool(REDIS_URL)
    settings = Settings(
        env="test", database_url=database_url, redis_url=REDIS_URL if use_redis else "", secret_key=SECRET,
        var_dir=tmp_path_factory.mktemp("var"), log_json=False,
    )
    kv = RedisKV(REDIS_URL, prefix=f"siyu-test-{secrets.token_hex(4)}:") if use_redis else MemoryKV()
    rt = Runtime(settings=settings, db=Database(database_url, pool_size=20), kv=kv, secret_key=SECRET)
    set_runtime(rt)
    yield rt
    await rt.close()
    set_runtime(None)


@pytest.fixture(scope="session")
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    from siyu.app import create_app

    return create_app(runtime, background=False)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture(autouse=True)
def _reset_actor() -> None:
    actor_var.set(SYSTEM)


def cheap_password_hashing(monkeypatch: Any) -> None:
    """Hash passwords with argon2id at its cheapest for the tests.

    These tests sign in through the forms many times and create tenants and staff; at the
    production cost (~0.15 s per hash or check) hashing would be most of their run time.
    The hashing itself is the same code path, only with lower work factors; hashes made with
    the production factors still verify.
    """
    from argon2 import PasswordHasher

    from siyu.kit import security

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(security, "_hasher", cheap)
    monkeypatch.setattr(security, "_DUMMY_HASH", cheap.hash("siyu-dummy-password"))


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 1000}{next(_seq)}{secrets.token_hex(2)}"


def unique_phone() -> str:
    return "139" + f"{secrets.randbelow(10**8):08d}"


@dataclass
class TenantInfo:
    id: int
    code: str
    name: str
    owner_username: str
    owner_password: str
    roles: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def tenant_factory(runtime: Runtime):  # type: ignore[no-untyped-def]
    """Create a fresh tenant with its default roles and owner; returns :class:`TenantInfo`."""

    async def make(name: str = "测试商家") -> TenantInfo:
        from siyu.staff import service as staff_service
        from siyu.tenants import service as tenants_service
        from siyu.tenants.schemas import TenantCreate

        code = unique("t")
        owner = unique("owner")
        async with runtime.db.uow() as s:
            t = await tenants_service.create_tenant(s, TenantCreate(code=code, name=name, owner_username=owner,
                                                                     owner_password="owner-pass-123"))
            roles = {r.code: r.id for r in await staff_service.list_roles(s, tenants_service.scope_of(t))}
        return TenantInfo(t.id, code, name, owner, "owner-pass-123", roles)

    return make


class StaffClient:
    """An httpx client signed in to the console API as one staff member (cookie + CSRF)."""

    def __init__(self, client: httpx.AsyncClient, csrf: str, staff_id: int) -> None:
        self.c = client
        self.csrf = csrf
        self.staff_id = staff_id

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.c.get(url, **kw)

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"x-csrf-token": self.csrf, **kw.pop("headers", {})}
        return await self.c.request(method, url, headers=headers, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", url, **kw)

    async def patch(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kw)


@pytest.fixture
async def login_as(app, runtime: Runtime) -> AsyncIterator[Any]:  # type: ignore[no-untyped-def]
    """``await login_as(tenant, role="owner")`` → a :class:`StaffClient` for a new staff member of that role."""
    clients: list[httpx.AsyncClient] = []

    async def login(tenant: TenantInfo, role: str = "owner", username: str | None = None, password: str | None = None) -> StaffClient:
        if username is None:
            if role == "owner":
                username, password = tenant.owner_username, tenant.owner_password
            else:
                from siyu.staff import service as staff_service
                from siyu.staff.schemas import StaffCreate
                from siyu.tenants import service as tenants_service

                username, password = unique(f"{role[:6]}."), "staff-pass-123"
                async with runtime.db.uow() as s:
                    t = await tenants_service.get_tenant(s, tenant.id)
                    await staff_service.create_staff(s, tenants_service.scope_of(t), StaffCreate(
                        username=username, name=f"{role} 员工", password=password, role_id=tenant.roles[role]))
        # Each signed-in client gets its own loopback address, so the per-address sign-in limit
        # of one test never throttles another's.
        n = next(_seq)
        addr = f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{(n & 255) or 1}"
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(addr, 50000)), base_url="http://testserver")
        clients.append(c)
        r = await c.post("/api/admin/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return StaffClient(c, r.json()["csrf_token"], r.json()["staff_id"])

    yield login
    for c in clients:
        await c.aclose()


async def drain_outbox(runtime: Runtime) -> int:
    """Dispatch every due outbox event now (tests run without the background loop)."""
    total = 0
    relay = outbox.OutboxRelay(runtime.db)
    while n := await relay.run_once():
        total += n
    return total


async def latest_sms_code(runtime: Runtime, tenant_id: int, phone: str) -> str:
    from sqlalchemy import select

    from siyu.kit.sms import SmsMessage

    async with runtime.db.uow(readonly=True) as s:
        content = (await s.execute(
            select(SmsMessage.content).where(SmsMessage.tenant_id == tenant_id, SmsMessage.phone == phone)
            .order_by(SmsMessage.id.desc()).limit(1)
        )).scalar_one()
    m = re.search(r"(\d{6})", content)
    assert m, content
    return m.group(1)
