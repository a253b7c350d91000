"""Fixtures of this test package."""

from __future__ import annotations

import pytest

from siyu.kit.runtime import Runtime

# httpx's ASGI transport reports every client as 127.0.0.1, so the per-address sign-in cap
# (30 a minute, shared by the whole session) would otherwise throttle unrelated tests.
_LOGIN_IP_KEYS = ("login-ip:staff:127.0.0.1", "login-ip:platform:127.0.0.1")


@pytest.fixture(autouse=True)
async def _open_login_window(runtime: Runtime) -> None:
    await runtime.kv.delete(*_LOGIN_IP_KEYS)
