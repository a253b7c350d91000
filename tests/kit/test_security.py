"""Passwords, tokens, server-side sessions and the login guard."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from siyu.kit import clock, loginguard
from siyu.kit.errors import Locked, TooManyRequests
from siyu.kit.runtime import Runtime
from siyu.kit.security import (
    constant_time_equals,
    hash_password,
    hash_token,
    hmac_code,
    mask_phone,
    needs_rehash,
    new_numeric_code,
    new_token,
    verify_password,
)
from siyu.kit.sessions import (
    AuthSession,
    create_session,
    lookup_session,
    revoke_principal,
    revoke_session,
)

# -- passwords and tokens -----------------------------------------------------------


def test_password_hash_verifies_only_the_right_password() -> None:
    h = hash_password("correct horse 1")
    assert h.startswith("$argon2id$")
    assert "correct horse" not in h
    assert verify_password(h, "correct horse 1")
    assert not verify_password(h, "correct horse 2")
    assert not verify_password(h, "")
    assert hash_password("correct horse 1") != h, "salted: the same password hashes differently"
    assert not needs_rehash(h)


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$argon2id$v=19$m=1,t=1,p=1$bad$bad"])
def test_missing_or_garbage_hash_never_verifies(stored: str | None) -> None:
    assert verify_password(stored, "siyu-dummy-password") is False
    assert verify_password(stored, "anything") is False


def test_tokens_are_random_and_stored_as_sha256() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    t = new_token("sy_")
    assert t.startswith("sy_") and len(t) >= 40
    assert hash_token(t) == hashlib.sha256(t.encode()).hexdigest()
    assert len(hash_token(t)) == 64
    assert hash_token(t) == hash_token(t)
    assert hash_token(t) != hash_token(t + "x")


def test_codes_hmac_and_masking() -> None:
    codes = [new_numeric_code() for _ in range(50)]
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert hmac_code("secret-a", "13800138000", "123456") != hmac_code("secret-b", "13800138000", "123456")
    assert hmac_code("s", "a", "bc") != hmac_code("s", "ab", "c"), "parts are separated, not concatenated"
    assert constant_time_equals("abc", "abc") and not constant_time_equals("abc", "abd")
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone(None) == ""
    assert "2345" not in mask_phone("123456")


# -- sessions ---------------------------------------------------------------------------


def _principal() -> int:
    return 10_000_000 + secrets.randbelow(10**9)


async def test_session_lookup_by_token_and_kind(backend: str, runtime: Runtime) -> None:
    pid = _principal()
    async with runtime.db.uow() as s:
        token, row = await create_session(s, kind="staff", principal_id=pid, tenant_id=42, days=7, ip="10.0.0.1",
                                          user_agent="x" * 500)
    assert row.token_hash == hash_token(token) != token
    assert len(row.user_agent or "") == 300
    async with runtime.db.uow(readonly=True) as s:
        info = await lookup_session(s, token, "staff")
        assert info is not None
        assert (info.principal_id, info.tenant_id, info.kind) == (pid, 42, "staff")
        assert info.csrf_token and info.csrf_token != token
        assert await lookup_session(s, token, "customer") is None, "a staff session is not a customer session"
        assert await lookup_session(s, token + "x", "staff") is None
        # only the hash is stored: the raw token appears in no column
        stored = (await s.execute(select(AuthSession).where(AuthSession.principal_id == pid))).scalar_one()
        assert token not in {stored.token_hash, stored.csrf_token}


async def test_session_expires(backend: str, runtime: Runtime) -> None:
    async with runtime.db.uow() as s:
        token, _ = await create_session(s, kind="customer", principal_id=_principal(), tenant_id=1, days=2)
    clock.travel(timedelta(days=2) - timedelta(minutes=1))
    async with runtime.db.uow(readonly=True) as s:
        assert await lookup_session(s, token, "customer") is not None
    clock.travel(timedelta(minutes=2))
    async with runtime.db.uow(readonly=True) as s:
        assert await lookup_session(s, token, "customer") is None


async def test_session_revocation(backend: str, runtime: Runtime) -> None:
    pid, other = _principal(), _principal()
    async with runtime.db.uow() as s:
        t1, _ = await create_session(s, kind="staff", principal_id=pid, tenant_id=1, days=7)
        t2, _ = await create_session(s, kind="staff", principal_id=pid, tenant_id=1, days=7)
        t3, _ = await create_session(s, kind="staff", principal_id=pid, tenant_id=1, days=7)
        t_other, _ = await create_session(s, kind="staff", principal_id=other, tenant_id=1, days=7)
        t_kind, _ = await create_session(s, kind="customer", principal_id=pid, tenant_id=1, days=7)
    async with runtime.db.uow() as s:
        await revoke_session(s, t1)
    async with runtime.db.uow(readonly=True) as s:
        assert await lookup_session(s, t1, "staff") is None
        assert await lookup_session(s, t2, "staff") is not None, "signing out one device keeps the others"
    async with runtime.db.uow() as s:
        await revoke_principal(s, "staff", pid)
    async with runtime.db.uow(readonly=True) as s:
        assert await lookup_session(s, t2, "staff") is None
        assert await lookup_session(s, t3, "staff") is None
        assert await lookup_session(s, t_other, "staff") is not None
        assert await lookup_session(s, t_kind, "customer") is not None, "only the given kind is revoked"
        first_revoked = (
            await s.execute(select(AuthSession.revoked_at).where(AuthSession.token_hash == hash_token(t1)))
        ).scalar_one()
    assert first_revoked is not None and first_revoked.tzinfo is not None
    clock.travel(timedelta(hours=1))
    async with runtime.db.uow() as s:
        await revoke_session(s, t1)  # revoking again keeps the original time
    async with runtime.db.uow(readonly=True) as s:
        again = (
            await s.execute(select(AuthSession.revoked_at).where(AuthSession.token_hash == hash_token(t1)))
        ).scalar_one()
    assert again == first_revoked


# -- login guard ----------------------------------------------------------------------


def _who() -> tuple[str, str, str]:
    tag = secrets.token_hex(4)
    return f"realm-{tag}", f"User.{tag}", f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{tag[:2]}"


async def test_lockout_after_max_failures_and_reset_on_success(backend: str, runtime: Runtime) -> None:
    kv = runtime.kv
    realm, user, ip = _who()
    for _ in range(2):  # two rounds: success resets the count completely
        for n in range(1, 4):
            await loginguard.check(kv, realm, user, ip, max_failures=3)
            assert await loginguard.failed(kv, realm, user, lockout_seconds=600) == n
        with pytest.raises(Locked) as info:
            await loginguard.check(kv, realm, user, ip, max_failures=3)
        err = info.value
        assert (err.status, err.code) == (423, "login_locked")
        assert 1 <= int(err.headers["Retry-After"]) <= 600
        assert err.extra["retry_after"] == int(err.headers["Retry-After"])
        with pytest.raises(Locked):  # the name is case-insensitive
            await loginguard.check(kv, realm, user.upper(), ip, max_failures=3)
        # another account, another realm, are not affected
        await loginguard.check(kv, realm, user + "2", ip, max_failures=3)
        await loginguard.check(kv, realm + "x", user, ip, max_failures=3)
        await loginguard.succeeded(kv, realm, user.lower())
        await loginguard.check(kv, realm, user, ip, max_failures=3)


async def test_failures_below_the_limit_do_not_lock(backend: str, runtime: Runtime) -> None:
    realm, user, ip = _who()
    for _ in range(4):
        await loginguard.failed(runtime.kv, realm, user, lockout_seconds=600)
    await loginguard.check(runtime.kv, realm, user, ip, max_failures=5)
    await loginguard.failed(runtime.kv, realm, user, lockout_seconds=600)
    with pytest.raises(Locked):
        await loginguard.check(runtime.kv, realm, user, ip, max_failures=5)


async def test_per_address_limit(backend: str, runtime: Runtime) -> None:
    kv = runtime.kv
    realm, _, ip = _who()
    for i in range(loginguard.IP_LIMIT_PER_MINUTE):
        await loginguard.check(kv, realm, f"name{i}", ip, max_failures=5)
    with pytest.raises(TooManyRequests) as info:
        await loginguard.check(kv, realm, "one-more", ip, max_failures=5)
    err = info.value
    assert (err.status, err.code) == (429, "login_rate_limited")
    assert 1 <= int(err.headers["Retry-After"]) <= 60
    assert err.extra["retry_after"] == int(err.headers["Retry-After"])
    await loginguard.check(kv, realm, "one-more", ip + "1", max_failures=5)  # another address is fine
