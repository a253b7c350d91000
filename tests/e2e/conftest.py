"""Browser tests: a real `siyu serve` process driven by Playwright in Debian's chromium.

The server runs on the same database as the rest of the run (SQLite file or PostgreSQL);
on the PostgreSQL run it also uses Redis, with a `siyu worker` process consuming the job
queue, which is the multi-process topology of a real deployment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_URL, REDIS_URL, _drop_pg_database, _fresh_pg_database, _pg_async

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
async def live_database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The server gets a database of its own: its background relay must not take the events
    that other tests publish and handle in this process."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('live-db') / 'live.db'}"
        return
    url, created = await _fresh_pg_database(_pg_async(PG_URL))
    yield url
    if created:
        await _drop_pg_database(_pg_async(PG_URL), created)


@pytest.fixture(scope="session")
def live_server(backend: str, live_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip("browser tests skipped: Debian's chromium is not installed at /usr/bin/chromium")
    database_url = live_database
    siyu = str(Path(sys.executable).with_name("siyu"))
    var = tmp_path_factory.mktemp("live-var")
    port = _free_port()
    env = {
        **os.environ,
        "SIYU_DATABASE_URL": database_url,
        "SIYU_VAR_DIR": str(var),
        "SIYU_SECRET_KEY": "e2e-secret-key-0123456789abcdef",
        "SIYU_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "SIYU_LOG_LEVEL": "WARNING",
        "SIYU_OUTBOX_POLL_SECONDS": "0.2",
        "SIYU_REDIS_URL": REDIS_URL if backend == "postgres" else "",
    }
    subprocess.run([siyu, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    subprocess.run([siyu, "demo", "--customers", "10", "--orders", "40"], env=env, check=True, capture_output=True, timeout=120)
    log = open(var / "server.log", "wb")  # noqa: SIM115 - closed below
    procs = [subprocess.Popen([siyu, "serve", "--no-migrate", "--port", str(port)], env=env, stdout=log, stderr=log)]
    if env["SIYU_REDIS_URL"]:
        procs.append(subprocess.Popen([siyu, "worker"], env=env, stdout=log, stderr=log))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or procs[0].poll() is not None:
            for p in procs:
                p.kill()
            log.close()
            raise RuntimeError("siyu serve did not start:\n" + (var / "server.log").read_text()[-4000:])
        time.sleep(0.1)
    yield base
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    log.close()


@pytest.fixture(scope="session")
async def browser(live_server: str) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    await b.close()
    await pw.stop()


@pytest.fixture
async def page(browser) -> AsyncIterator[object]:  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN")
    p = await context.new_page()
    p.set_default_timeout(15000)
    yield p
    await context.close()


@pytest.fixture
async def phone_page(browser) -> AsyncIterator[object]:  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport={"width": 375, "height": 812}, locale="zh-CN", is_mobile=True, has_touch=True)
    p = await context.new_page()
    p.set_default_timeout(15000)
    yield p
    await context.close()
