"""The ``siyu`` command: help, migrate, createadmin, demo, and ``serve`` as a real process.

Every test gets its own SIYU_VAR_DIR (so its own embedded SQLite database) and a clean
environment without ambient SIYU_* settings. ``get_settings`` is cached, so the cache is
cleared around each test.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import get_settings
from siyu.kit.security import verify_password

runner = CliRunner()


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not (k.startswith("SIYU_") and not k.startswith("SIYU_TEST_"))}


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("SIYU_") and not name.startswith("SIYU_TEST_"):
            monkeypatch.delenv(name)
    var = tmp_path / "var"
    monkeypatch.setenv("SIYU_VAR_DIR", str(var))
    monkeypatch.setenv("SIYU_LOG_JSON", "false")
    get_settings.cache_clear()
    yield var
    get_settings.cache_clear()


def _db(var: Path) -> sqlite3.Connection:
    path = var / "siyu.db"
    assert path.exists()
    return sqlite3.connect(path)


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("serve", "worker", "migrate", "createadmin", "demo"):
        assert command in result.output


def test_migrate_creates_the_database_and_is_idempotent(var_dir: Path) -> None:
    first = runner.invoke(app, ["migrate"])
    assert first.exit_code == 0, first.output
    assert "migrated" in first.output
    with _db(var_dir) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"alembic_version", "outbox_events", "audit_log", "auth_sessions", "platform_users"} <= tables
    assert len(version) == 1
    assert (var_dir / "secret_key").exists(), "the embedded default generates its secret key"

    get_settings.cache_clear()
    second = runner.invoke(app, ["migrate"])
    assert second.exit_code == 0, second.output
    assert "already up to date" in second.output
    with _db(var_dir) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == version


def test_bad_setting_stops_migrate_with_exit_code_2(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_DEFAULT_TIMEZONE", "Atlantis/Capital")
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 2
    assert "SIYU_DEFAULT_TIMEZONE" in result.output
    assert "Traceback" not in result.output
    assert not (var_dir / "siyu.db").exists(), "nothing is created when the settings are bad"


def test_production_without_secret_key_exits_2(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_ENV", "production")
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 2
    assert "SIYU_SECRET_KEY" in result.output


def test_createadmin_creates_a_platform_operator(var_dir: Path) -> None:
    result = runner.invoke(app, ["createadmin", "--username", "ops.one", "--password", "ops-pass-123", "--name", "运营一"])
    assert result.exit_code == 0, result.output
    assert "ops.one" in result.output
    with _db(var_dir) as conn:
        rows = conn.execute("SELECT username, name, password_hash FROM platform_users WHERE username = 'ops.one'").fetchall()
    assert len(rows) == 1
    _username, name, password_hash = rows[0]
    assert name == "运营一"
    assert password_hash != "ops-pass-123"
    assert verify_password(password_hash, "ops-pass-123")

    get_settings.cache_clear()
    again = runner.invoke(app, ["createadmin", "--username", "ops.one", "--password", "other-pass-123"])
    assert again.exit_code == 1
    assert "already taken" in again.output
    with _db(var_dir) as conn:
        assert conn.execute("SELECT count(*) FROM platform_users WHERE username = 'ops.one'").fetchone() == (1,)


def test_createadmin_rejects_a_short_password(var_dir: Path) -> None:
    result = runner.invoke(app, ["createadmin", "--username", "ops.two", "--password", "short"])
    assert result.exit_code == 2
    assert "8 characters" in result.output


def test_demo_is_idempotent(var_dir: Path) -> None:
    first = runner.invoke(app, ["demo", "--customers", "5", "--orders", "20"])
    assert first.exit_code == 0, first.output
    assert "console" in first.output
    assert "orders: 20 over the last 180 days" in first.output

    def counts() -> tuple[int, int, int, int]:
        with _db(var_dir) as conn:
            tenants = conn.execute("SELECT count(*) FROM tenants WHERE code = 'qingshan'").fetchone()[0]
            customers = conn.execute(
                "SELECT count(*) FROM customers c JOIN tenants t ON t.id = c.tenant_id WHERE t.code = 'qingshan'"
            ).fetchone()[0]
            operators = conn.execute("SELECT count(*) FROM platform_users").fetchone()[0]
            orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        return tenants, customers, operators, orders

    after_first = counts()
    assert after_first == (1, 5, 1, 20)
    get_settings.cache_clear()
    second = runner.invoke(app, ["demo", "--customers", "5", "--orders", "20"])
    assert second.exit_code == 0, second.output
    assert "already present" in second.output
    assert counts() == after_first


def test_demo_refuses_too_many_orders(var_dir: Path) -> None:
    result = runner.invoke(app, ["demo", "--orders", "20001"])
    assert result.exit_code == 2
    assert not (var_dir / "siyu.db").exists()


def test_serve_refuses_an_unmigrated_database_without_starting(var_dir: Path) -> None:
    result = runner.invoke(app, ["serve", "--no-migrate", "--port", "1"])
    assert result.exit_code == 2
    assert "siyu migrate" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_healthz(tmp_path: Path) -> None:
    from siyu.kit.migrate import upgrade

    var = tmp_path / "var"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{var / 'siyu.db'}"))
    siyu = Path(sys.executable).parent / "siyu"
    assert siyu.exists(), f"the siyu script is missing next to {sys.executable}"
    env = {**_clean_environ(), "SIYU_VAR_DIR": str(var), "SIYU_LOG_JSON": "false", "SIYU_LOG_LEVEL": "WARNING"}
    port = _free_port()
    log = (tmp_path / "serve.log").open("w+b")
    proc = subprocess.Popen([str(siyu), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                status = r.status_code
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        log.flush()
        log.seek(0)
        output = log.read().decode(errors="replace")
        assert status == 200, f"siyu serve did not answer /healthz (exit code {proc.poll()}):\n{output}"
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.headers["x-request-id"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
