"""The process-wide services one web or worker process needs: settings, database, KV.

Built once at start-up (by the app's lifespan or ``siyu worker``) and reachable from jobs,
which run outside any request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from siyu.config import Settings
from siyu.kit.db import Database
from siyu.kit.kv import KV, make_kv
from siyu.kit.storage import LocalStorage, Storage


@dataclass
class Runtime:
    settings: Settings
    db: Database
    kv: KV
    secret_key: str
    storage: Storage | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def media(self) -> Storage:
        """Where uploads go: the local ``var/media`` folder unless configured otherwise."""
        if self.storage is None:
            self.storage = LocalStorage(self.settings.var_dir / "media")
        return self.storage

    async def close(self) -> None:
        for value in list(self.extras.values()):
            closer = getattr(value, "aclose", None)
            if closer is not None:
                await closer()
        await self.kv.close()
        await self.db.dispose()


_current: Runtime | None = None


def build_runtime(settings: Settings) -> Runtime:
    db = Database(settings.effective_database_url, pool_size=settings.db_pool_size)
    return Runtime(settings=settings, db=db, kv=make_kv(settings.redis_url), secret_key=settings.resolved_secret_key())


def set_runtime(rt: Runtime | None) -> None:
    global _current
    _current = rt


def get_runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("Siyu runtime is not started")
    return _current
