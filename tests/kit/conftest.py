"""Fixtures for the kit tests: a fresh outbox topic per test and a clock that is always reset."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from siyu.kit import clock, outbox


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
def topic() -> Iterator[str]:
    """A topic no other test uses; its handlers are unregistered afterwards."""
    name = f"test.topic-{secrets.token_hex(6)}"
    yield name
    outbox._handlers.pop(name, None)
