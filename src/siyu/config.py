"""Settings read from ``SIYU_*`` environment variables.

A bad value must stop start-up with a message naming the variable, so :func:`load_settings`
turns pydantic's validation error into :class:`SettingsError` with one line per variable.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_VAR_DIR = Path("var")


class SettingsError(RuntimeError):
    """Raised when an environment variable holds a value Siyu cannot use."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIYU_", extra="ignore", env_file=None)

    env: Literal["development", "production", "test"] = "development"
    var_dir: Path = DEFAULT_VAR_DIR
    database_url: str = ""
    redis_url: str = ""
    secret_key: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    default_timezone: str = "Asia/Shanghai"
    default_language: Literal["zh-CN", "en"] = "zh-CN"
    jobs_broker: Literal["auto", "memory", "redis"] = "auto"
    run_jobs_in_web: bool = True
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    session_days: int = Field(default=7, ge=1, le=90)
    sms_code_ttl_seconds: int = Field(default=300, ge=60, le=3600)
    sms_provider: Literal["sandbox"] = "sandbox"
    sms_sandbox_reveal: bool | None = None
    wechat_provider: Literal["sandbox", "wechat"] = "sandbox"
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_lockout_seconds: int = Field(default=900, ge=10, le=86400)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    cookie_secure: bool | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, v: str) -> str:
        if v and not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://", "sqlite://", "postgresql://", "postgres://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                "(plain sqlite:// and postgresql:// are accepted and converted)"
            )
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, v: str) -> str:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// or rediss:// URL, or empty to run without Redis")
        return v

    @field_validator("public_base_url")
    @classmethod
    def _check_base(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http:// or https:// URL")
        return v.rstrip("/")

    @field_validator("default_timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Asia/Shanghai)") from exc
        return v

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, v: str) -> str:
        if v and len(v) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    # -- derived values -------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{(self.var_dir / 'siyu.db').as_posix()}"
        if url.startswith("sqlite://"):
            url = "sqlite+aiosqlite://" + url[len("sqlite://"):]
        elif url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url[len("postgresql://"):]
        elif url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url[len("postgres://"):]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_broker(self) -> str:
        if self.jobs_broker == "auto":
            return "redis" if self.redis_url else "memory"
        return self.jobs_broker

    @property
    def reveal_sandbox_codes(self) -> bool:
        """May pages show sandbox SMS codes to whoever asks? Never in production unless set,
        since it would let anyone sign in as any phone number."""
        if self.sms_provider != "sandbox":
            return False
        if self.sms_sandbox_reveal is not None:
            return self.sms_sandbox_reveal
        return self.env != "production"

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.public_base_url.startswith("https://")

    def resolved_secret_key(self) -> str:
        """The configured secret, or one kept in ``var/secret_key`` for the embedded default.

        Production must set ``SIYU_SECRET_KEY``; on one machine a generated file keeps sessions
        valid across restarts without any set-up.
        """
        if self.secret_key:
            return self.secret_key
        if self.env == "production":
            raise SettingsError("SIYU_SECRET_KEY: must be set when SIYU_ENV=production")
        path = self.var_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


def load_settings() -> Settings:
    """Read the environment; raise :class:`SettingsError` naming every bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "SIYU_" + "_".join(str(p) for p in err["loc"]).upper()
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{name}: {msg}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
