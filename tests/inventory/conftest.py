"""Fixtures of the inventory tests: a fresh tenant with SKUs, and an open sign-in window."""

from __future__ import annotations

import pytest

from siyu.kit.runtime import Runtime
from tests.inventory._helpers import Shop, make_shop

# httpx's ASGI transport reports every client as 127.0.0.1, so the per-address sign-in cap
# (30 a minute, shared by the whole session) would otherwise throttle unrelated tests.
_LOGIN_IP_KEYS = ("login-ip:staff:127.0.0.1", "login-ip:platform:127.0.0.1")


@pytest.fixture(autouse=True)
async def _open_login_window(runtime: Runtime) -> None:
    await runtime.kv.delete(*_LOGIN_IP_KEYS)


@pytest.fixture
async def shop(runtime: Runtime, tenant_factory) -> Shop:  # type: ignore[no-untyped-def]
    """A new tenant with four SKUs and no stock locations yet."""
    return await make_shop(runtime, tenant_factory, skus=4)
