"""SMS one-time codes: expiry, wrong guesses, single use, and the send limits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from siyu.customers import service
from siyu.kit import clock
from tests.conftest import drain_outbox, unique_phone
from tests.customers._helpers import (
    clear_cooldown,
    latest_code,
    request_code,
    sms_code,
    sms_login,
    store_url,
)

ADMIN = "/api/admin/v1"


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    """Tests that travel in time always come back."""
    clock.reset()
    try:
        yield
    finally:
        clock.reset()


async def _login(client, tenant, phone: str, code: str):  # type: ignore[no-untyped-def]
    r = await client.post(store_url(tenant, "/auth/login/sms"), json={"phone": phone, "code": code})
    client.cookies.clear()
    return r


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_sign_in_with_a_code(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    r = await request_code(client, t, phone)
    assert r.status_code == 200
    assert r.json() == {"sent": True, "expires_in": runtime.settings.sms_code_ttl_seconds,
                        "resend_after": service.PHONE_COOLDOWN_SECONDS}
    code = await latest_code(runtime, t.id, phone)
    r = await _login(client, t, phone, code)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["new_customer"] is True and body["token"] and body["csrf_token"]
    r = await client.get(store_url(t, "/me"), headers={"authorization": f"Bearer {body['token']}"})
    assert r.status_code == 200
    me = r.json()
    assert me["id"] == body["customer_id"]
    assert me["phone"] == phone[:3] + "****" + phone[-4:]
    assert [i["kind"] for i in me["identities"]] == ["phone"]
    assert phone not in r.text


async def test_code_expires(client, runtime, tenant_factory, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    ttl = runtime.settings.sms_code_ttl_seconds
    phone = unique_phone()
    code = await sms_code(client, runtime, t, phone)
    clock.travel(timedelta(seconds=ttl + 1))
    r = await _login(client, t, phone, code)
    assert r.status_code == 400 and r.json()["code"] == "sms_code_expired"
    assert r.headers["content-type"].startswith("application/problem+json")

    # Just inside the window the code still works.
    clock.reset()
    phone2 = unique_phone()
    code2 = await sms_code(client, runtime, t, phone2)
    clock.travel(timedelta(seconds=ttl - 5))
    r = await _login(client, t, phone2, code2)
    assert r.status_code == 200, r.text


async def test_no_code_was_ever_sent(client, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    r = await _login(client, t, unique_phone(), "123456")
    assert r.status_code == 400 and r.json()["code"] == "sms_code_expired"


async def test_wrong_codes_count_down_then_lock(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    code = await sms_code(client, runtime, t, phone)
    lefts = []
    for _ in range(service.MAX_VERIFY_ATTEMPTS):
        r = await _login(client, t, phone, _wrong(code))
        assert r.status_code == 400 and r.json()["code"] == "sms_code_wrong"
        lefts.append(r.json()["attempts_left"])
    assert lefts == [4, 3, 2, 1, 0]
    # Even the right code is refused now; no customer was created along the way.
    r = await _login(client, t, phone, code)
    assert r.status_code == 400 and r.json()["code"] == "sms_code_attempts_exceeded"
    r = await _login(client, t, phone, _wrong(code))
    assert r.json()["code"] == "sms_code_attempts_exceeded"
    from siyu.customers.repository import customer_ids_with_identity

    async with runtime.db.uow(readonly=True) as s:
        assert await customer_ids_with_identity(s, t.id, "phone", [phone]) == {}

    # A fresh code starts a fresh count.
    await clear_cooldown(runtime, t, phone)
    code = await sms_code(client, runtime, t, phone)
    r = await _login(client, t, phone, code)
    assert r.status_code == 200, r.text


async def test_a_correct_code_resets_the_count(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    code = await sms_code(client, runtime, t, phone)
    for _ in range(service.MAX_VERIFY_ATTEMPTS - 1):
        await _login(client, t, phone, _wrong(code))
    assert (await _login(client, t, phone, code)).status_code == 200
    await clear_cooldown(runtime, t, phone)
    code = await sms_code(client, runtime, t, phone)
    r = await _login(client, t, phone, _wrong(code))
    assert r.json()["attempts_left"] == service.MAX_VERIFY_ATTEMPTS - 1


async def test_a_code_works_once(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    code = await sms_code(client, runtime, t, phone)
    first = await _login(client, t, phone, code)
    assert first.status_code == 200
    r = await _login(client, t, phone, code)
    assert r.status_code == 400 and r.json()["code"] == "sms_code_expired"


async def test_a_new_code_replaces_the_old_one(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    old = await sms_code(client, runtime, t, phone)
    await clear_cooldown(runtime, t, phone)
    new = await sms_code(client, runtime, t, phone)
    if old != new:  # one chance in a million they coincide
        r = await _login(client, t, phone, old)
        assert r.status_code == 400 and r.json()["code"] == "sms_code_wrong"
    assert (await _login(client, t, phone, new)).status_code == 200


async def test_codes_are_bound_to_their_purpose_and_shop(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    a, b = await tenant_factory(), await tenant_factory()
    phone = unique_phone()
    bind_code = await sms_code(client, runtime, a, phone, purpose="bind")
    r = await _login(client, a, phone, bind_code)
    assert r.status_code == 400 and r.json()["code"] == "sms_code_expired"  # no open login code
    await clear_cooldown(runtime, a, phone)
    login_code = await sms_code(client, runtime, a, phone)
    r = await _login(client, b, phone, login_code)
    assert r.status_code == 400, "a code sent by shop A signs nobody in at shop B"
    assert (await _login(client, a, phone, login_code)).status_code == 200


async def test_per_phone_cooldown(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t, other = await tenant_factory(), await tenant_factory()
    phone = unique_phone()
    assert (await request_code(client, t, phone)).status_code == 200
    r = await request_code(client, t, phone)
    assert r.status_code == 429 and r.json()["code"] == "sms_too_frequent"
    assert r.headers["content-type"].startswith("application/problem+json")
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= service.PHONE_COOLDOWN_SECONDS
    assert r.json()["retry_after"] == retry
    # The other purpose shares the window (it is the same phone being texted) ...
    assert (await request_code(client, t, phone, "bind")).status_code == 429
    # ... but another shop and another phone do not.
    assert (await request_code(client, other, phone)).status_code == 200
    assert (await request_code(client, t, unique_phone())).status_code == 200
    # Only one message went out to the phone at shop t.
    owner_sms = await _sms_rows(runtime, t.id, phone)
    assert owner_sms == 1


async def _sms_rows(runtime, tenant_id: int, phone: str) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from siyu.kit.sms import SmsMessage

    async with runtime.db.uow(readonly=True) as s:
        return int((await s.execute(select(func.count()).select_from(SmsMessage).where(
            SmsMessage.tenant_id == tenant_id, SmsMessage.phone == phone))).scalar_one())


async def test_daily_limit_per_phone(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    for i in range(service.PHONE_DAILY_LIMIT):
        await clear_cooldown(runtime, t, phone)
        r = await request_code(client, t, phone)
        assert r.status_code == 200, (i, r.text)
    await clear_cooldown(runtime, t, phone)
    r = await request_code(client, t, phone)
    assert r.status_code == 429 and r.json()["code"] == "sms_daily_limit"
    assert int(r.headers["retry-after"]) > service.PHONE_COOLDOWN_SECONDS
    assert await _sms_rows(runtime, t.id, phone) == service.PHONE_DAILY_LIMIT
    # The last code sent still signs in: the limit stops sending, not verifying.
    code = await latest_code(runtime, t.id, phone)
    assert (await _login(client, t, phone, code)).status_code == 200


async def test_per_address_limit(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    # The ASGI transport always reports 127.0.0.1; a fresh tenant gives a fresh window
    # (the key is per tenant and address), and the window is 30 an hour.
    t, other = await tenant_factory(), await tenant_factory()
    for i in range(service.IP_HOURLY_LIMIT):
        r = await request_code(client, t, unique_phone())
        assert r.status_code == 200, (i, r.text)
    fresh = unique_phone()
    r = await request_code(client, t, fresh)
    assert r.status_code == 429 and r.json()["code"] == "sms_ip_limited"
    assert int(r.headers["retry-after"]) >= 1
    assert await _sms_rows(runtime, t.id, fresh) == 0
    assert (await request_code(client, other, fresh)).status_code == 200


async def test_sms_outbox_in_the_console(client, runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    await request_code(client, t, phone)
    masked = phone[:3] + "****" + phone[-4:]

    owner = await login_as(t)
    r = await owner.get(f"{ADMIN}/sms-messages")
    assert r.status_code == 200
    (row,) = r.json()["items"]
    assert row["phone"] == phone and row["template"] == "verify_login" and row["status"] == "queued"

    service_desk = await login_as(t, "customer_service")  # sms.read without customers.phone
    r = await service_desk.get(f"{ADMIN}/sms-messages")
    assert r.status_code == 200
    (row,) = r.json()["items"]
    assert row["phone"] == masked and phone not in r.text
    # Filtering by the exact number works for a role that only sees it masked.
    assert (await service_desk.get(f"{ADMIN}/sms-messages", params={"phone": phone})).json()["total"] == 1
    assert (await service_desk.get(f"{ADMIN}/sms-messages", params={"phone": unique_phone()})).json()["total"] == 0

    guide = await login_as(t, "store_guide")
    r = await guide.get(f"{ADMIN}/sms-messages")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"

    # Delivery happens after commit, through the outbox.
    await drain_outbox(runtime)
    (row,) = (await owner.get(f"{ADMIN}/sms-messages")).json()["items"]
    assert row["status"] == "sent" and row["sent_at"]


async def test_sign_in_twice_with_the_same_phone(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    first = await sms_login(client, runtime, t, phone)
    await clear_cooldown(runtime, t, phone)
    second = await sms_login(client, runtime, t, phone)
    assert first.new_customer and not second.new_customer
    assert first.customer_id == second.customer_id
    assert first.token != second.token


async def test_blocked_customer_cannot_sign_in(client, runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    shopper = await sms_login(client, runtime, t, phone)
    owner = await login_as(t)
    r = await owner.post(f"{ADMIN}/customers/{shopper.customer_id}/status", json={"status": "blocked"})
    assert r.status_code == 200 and r.json()["status"] == "blocked"
    assert (await client.get(store_url(t, "/me"), headers=shopper.auth)).status_code == 401
    await clear_cooldown(runtime, t, phone)
    code = await sms_code(client, runtime, t, phone)
    r = await _login(client, t, phone, code)
    assert r.status_code == 403 and r.json()["code"] == "customer_blocked"


async def test_a_code_works_once_even_when_raced(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    t = await tenant_factory()
    phone = unique_phone()
    code = await sms_code(client, runtime, t, phone)

    async def attempt():  # type: ignore[no-untyped-def]
        return await client.post(store_url(t, "/auth/login/sms"), json={"phone": phone, "code": code})

    responses = await asyncio.gather(*(attempt() for _ in range(10)))
    client.cookies.clear()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 9, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 400} == {"sms_code_expired"}
    from siyu.customers.repository import customer_ids_with_identity

    async with runtime.db.uow(readonly=True) as s:
        assert len(await customer_ids_with_identity(s, t.id, "phone", [phone])) == 1
