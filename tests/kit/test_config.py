"""Settings from SIYU_* variables: a bad value stops start-up with a message naming it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from siyu.config import Settings, SettingsError, get_settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ambient SIYU_* setting leaks in, and nothing is written into the work tree."""
    for name in list(os.environ):
        if name.startswith("SIYU_") and not name.startswith("SIYU_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as info:
        load_settings()
    return str(info.value)


def test_defaults_load(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.env == "development"
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.effective_database_url.endswith("var/siyu.db")
    assert s.effective_broker == "memory"
    assert s.default_timezone == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SIYU_DATABASE_URL", "mysql://root@localhost/siyu"),
        ("SIYU_DATABASE_URL", "siyu.db"),
        ("SIYU_DEFAULT_TIMEZONE", "Mars/Olympus_Mons"),
        ("SIYU_DEFAULT_TIMEZONE", "../../etc/passwd"),
        ("SIYU_PUBLIC_BASE_URL", "shop.example.com"),
        ("SIYU_PUBLIC_BASE_URL", "ftp://shop.example.com"),
        ("SIYU_OUTBOX_POLL_SECONDS", "0"),
        ("SIYU_OUTBOX_POLL_SECONDS", "-1"),
        ("SIYU_OUTBOX_POLL_SECONDS", "61"),
        ("SIYU_OUTBOX_POLL_SECONDS", "soon"),
        ("SIYU_REDIS_URL", "localhost:6379"),
        ("SIYU_SECRET_KEY", "short"),
        ("SIYU_ENV", "staging"),
        ("SIYU_SESSION_DAYS", "0"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    message = _error(monkeypatch, **{variable: value})
    assert f"{variable}:" in message
    others = {"SIYU_DATABASE_URL", "SIYU_DEFAULT_TIMEZONE", "SIYU_PUBLIC_BASE_URL", "SIYU_OUTBOX_POLL_SECONDS"} - {variable}
    assert not any(o in message for o in others), "only the bad variable is blamed"


def test_every_bad_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(
        monkeypatch,
        SIYU_DATABASE_URL="oracle://x",
        SIYU_DEFAULT_TIMEZONE="Nowhere/Town",
        SIYU_PUBLIC_BASE_URL="example.com",
        SIYU_OUTBOX_POLL_SECONDS="0",
    )
    for name in ("SIYU_DATABASE_URL", "SIYU_DEFAULT_TIMEZONE", "SIYU_PUBLIC_BASE_URL", "SIYU_OUTBOX_POLL_SECONDS"):
        assert name in message
    assert "Nowhere/Town" in message, "the message shows the rejected time zone"


def test_good_values_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_DATABASE_URL", "postgres://u@db:5432/siyu")
    monkeypatch.setenv("SIYU_PUBLIC_BASE_URL", "https://shop.example.com/")
    monkeypatch.setenv("SIYU_DEFAULT_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("SIYU_OUTBOX_POLL_SECONDS", "0.25")
    monkeypatch.setenv("SIYU_REDIS_URL", "redis://cache:6379/0")
    s = load_settings()
    assert s.effective_database_url == "postgresql+asyncpg://u@db:5432/siyu"
    assert not s.is_sqlite
    assert s.public_base_url == "https://shop.example.com"
    assert s.secure_cookies is True
    assert s.outbox_poll_seconds == 0.25
    assert s.effective_broker == "redis"
    monkeypatch.setenv("SIYU_DATABASE_URL", "sqlite:///data/x.db")
    assert load_settings().effective_database_url == "sqlite+aiosqlite:///data/x.db"


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_DEFAULT_TIMEZONE", "Europe/Paris")
    first = get_settings()
    monkeypatch.setenv("SIYU_DEFAULT_TIMEZONE", "Asia/Tokyo")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().default_timezone == "Asia/Tokyo"


def test_production_without_secret_key_fails(tmp_path: Path) -> None:
    s = Settings(env="production", var_dir=tmp_path / "var")
    with pytest.raises(SettingsError, match="SIYU_SECRET_KEY"):
        s.resolved_secret_key()
    assert not (tmp_path / "var" / "secret_key").exists(), "production never falls back to a generated key"


def test_production_with_secret_key_uses_it(tmp_path: Path) -> None:
    key = "k" * 32
    assert Settings(env="production", secret_key=key, var_dir=tmp_path).resolved_secret_key() == key


def test_generated_secret_key_persists_in_var_dir(tmp_path: Path) -> None:
    var = tmp_path / "fresh" / "var"
    key = Settings(var_dir=var).resolved_secret_key()
    path = var / "secret_key"
    assert path.read_text().strip() == key
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the key file is private"
    assert Settings(var_dir=var).resolved_secret_key() == key, "a restart keeps the same key"
    assert Settings(var_dir=tmp_path / "other").resolved_secret_key() != key
