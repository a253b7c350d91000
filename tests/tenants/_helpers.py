"""Platform-operator helpers shared by the tenants and OpenAPI tests."""

from __future__ import annotations

from typing import Any

import httpx

from siyu.kit.runtime import Runtime
from tests.conftest import unique

PLATFORM = "/api/platform/v1"
PLATFORM_PASSWORD = "platform-pass-123"


class PlatformClient:
    """An httpx client signed in to the platform API (cookie + CSRF header on writes)."""

    def __init__(self, client: httpx.AsyncClient, csrf: str, user_id: int, username: str) -> None:
        self.c = client
        self.csrf = csrf
        self.user_id = user_id
        self.username = username

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.c.get(url, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        headers = {"x-csrf-token": self.csrf, **kw.pop("headers", {})}
        return await self.c.post(url, headers=headers, **kw)


async def make_platform_user(runtime: Runtime, password: str = PLATFORM_PASSWORD) -> tuple[int, str, str]:
    from siyu.tenants import service as tenants_service

    username = unique("ops.")
    async with runtime.db.uow() as s:
        user = await tenants_service.create_platform_user(s, username, password, "平台运营")
        return user.id, username, password


async def platform_login(app: Any, runtime: Runtime) -> PlatformClient:
    """Create a platform operator and sign in; the caller closes ``.c``."""
    user_id, username, password = await make_platform_user(runtime)
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    r = await c.post(f"{PLATFORM}/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return PlatformClient(c, r.json()["csrf_token"], user_id, username)
