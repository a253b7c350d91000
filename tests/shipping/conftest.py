"""Fixtures of the shipping tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from siyu.kit.runtime import Runtime
from tests._pages import Browser, browsers

_LOGIN_IP_KEYS = ("login-ip:staff:127.0.0.1", "login-ip:platform:127.0.0.1")


@pytest.fixture(autouse=True)
async def _open_login_window(runtime: Runtime) -> None:
    # httpx's ASGI transport reports every client as 127.0.0.1; these tests sign in often.
    await runtime.kv.delete(*_LOGIN_IP_KEYS)


@pytest.fixture
async def browser(app) -> AsyncIterator[Callable[[], Browser]]:  # type: ignore[no-untyped-def]
    async with browsers(app) as make:
        yield make
