"""One customer per identity: repeated sign-ins find the same customer, shared unionids
link mini-programs, binding an identity that belongs to someone else merges the two, and
concurrent first sign-ins create exactly one customer."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from siyu.customers import service
from siyu.customers.models import Customer, CustomerIdentity
from siyu.customers.wechat import SandboxMiniProgram
from siyu.kit.errors import DomainError
from siyu.kit.outbox import OutboxEvent
from siyu.kit.tenancy import TenantScope
from tests.conftest import TenantInfo, unique_phone
from tests.customers._helpers import (
    Shopper,
    clear_cooldown,
    identity_invariants,
    sms_code,
    sms_login,
    store_url,
    wechat_login,
)

ADMIN = "/api/admin/v1"


def _scope(t: TenantInfo) -> TenantScope:
    return TenantScope(id=t.id, code=t.code)


async def _identities(runtime, tenant_id: int) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id)
                                .where(CustomerIdentity.tenant_id == tenant_id).order_by(CustomerIdentity.id))).all()
    return [(k, v, c) for k, v, c in rows]


async def _customers(runtime, tenant_id: int) -> dict[int, tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(Customer.id, Customer.status, Customer.phone)
                                .where(Customer.tenant_id == tenant_id))).all()
    return {i: (st, ph) for i, st, ph in rows}


async def _events(runtime, tenant_id: int, topic: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    async with runtime.db.uow(readonly=True) as s:
        rows = (await s.execute(select(OutboxEvent.payload).where(OutboxEvent.tenant_id == tenant_id,
                                                                  OutboxEvent.topic == topic))).scalars().all()
    return [dict(p) for p in rows]


async def _me(client, t: TenantInfo, who: Shopper | str):  # type: ignore[no-untyped-def]
    token = who.token if isinstance(who, Shopper) else who
    return await client.get(store_url(t, "/me"), headers={"authorization": f"Bearer {token}"})


async def _bind_phone(client, runtime, t: TenantInfo, who: Shopper, phone: str):  # type: ignore[no-untyped-def]
    await clear_cooldown(runtime, t, phone)
    code = await sms_code(client, runtime, t, phone, purpose="bind")
    return await client.post(store_url(t, "/me/phone"), json={"phone": phone, "code": code}, headers=who.auth)


# -- finding the same customer again ----------------------------------------------------------


async def test_same_phone_finds_same_customer(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    a = await sms_login(client, runtime, t, phone)
    await clear_cooldown(runtime, t, phone)
    b = await sms_login(client, runtime, t, phone)
    assert a.customer_id == b.customer_id and a.new_customer and not b.new_customer
    assert await _identities(runtime, t.id) == [("phone", phone, a.customer_id)]
    assert len(await _events(runtime, t.id, "customer.registered")) == 1


async def test_same_wechat_code_finds_same_customer(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    a = await wechat_login(client, t, "alice")
    b = await wechat_login(client, t, "alice")
    assert a.customer_id == b.customer_id and a.new_customer and not b.new_customer
    ids = await _identities(runtime, t.id)
    assert [k for k, _v, _c in ids] == ["openid"]
    # Another person is another customer; the same person at another shop is another customer too.
    c = await wechat_login(client, t, "bob")
    assert c.customer_id != a.customer_id
    other = await tenant_factory()
    d = await wechat_login(client, other, "alice")
    assert d.new_customer and d.customer_id != a.customer_id


async def test_shared_unionid_links_two_mini_programs(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    a = await wechat_login(client, t, "alice:fam")
    b = await wechat_login(client, t, "bob:fam")
    assert a.customer_id == b.customer_id and not b.new_customer
    ids = await _identities(runtime, t.id)
    assert sorted(k for k, _v, _c in ids) == ["openid", "openid", "unionid"]
    assert {c for _k, _v, c in ids} == {a.customer_id}
    me = (await _me(client, t, b)).json()
    assert sorted(i["kind"] for i in me["identities"]) == ["openid", "openid", "unionid"]
    assert all(i["value"].endswith("…") for i in me["identities"]), "raw openids are not handed out"


# -- binding and merging ------------------------------------------------------------------------


async def test_binding_an_older_customers_phone_merges_into_it(client, runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    phone = unique_phone()
    older = await sms_login(client, runtime, t, phone)
    newer = await wechat_login(client, t, "carol:fam")
    assert newer.customer_id > older.customer_id

    r = await _bind_phone(client, runtime, t, newer, phone)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_id"] == older.customer_id
    assert body["merged_customer_id"] == newer.customer_id
    assert body["session"] and body["session"]["customer_id"] == older.customer_id
    new_token = body["session"]["token"]
    client.cookies.clear()

    # The merged-away session is over; the new one is the survivor's; the survivor's own still works.
    assert (await _me(client, t, newer)).status_code == 401
    me = (await _me(client, t, new_token)).json()
    assert me["id"] == older.customer_id
    assert sorted(i["kind"] for i in me["identities"]) == ["openid", "phone", "unionid"]
    assert (await _me(client, t, older)).json()["id"] == older.customer_id

    # Every identity now points at the survivor.
    assert {c for _k, _v, c in await _identities(runtime, t.id)} == {older.customer_id}
    customers = await _customers(runtime, t.id)
    assert customers[newer.customer_id] == ("merged", None)
    assert customers[older.customer_id] == ("active", phone)

    # Signing in again by either route lands on the survivor.
    again = await wechat_login(client, t, "carol:fam")
    assert again.customer_id == older.customer_id and not again.new_customer
    again = await wechat_login(client, t, "someone-else:fam")  # same unionid, new mini-program
    assert again.customer_id == older.customer_id

    # The console no longer lists the merged customer; asked directly it says it was merged.
    owner = await login_as(t)
    listed = (await owner.get(f"{ADMIN}/customers")).json()
    assert [c["id"] for c in listed["items"]] == [older.customer_id] and listed["total"] == 1
    merged = (await owner.get(f"{ADMIN}/customers/{newer.customer_id}")).json()
    assert merged["status"] == "merged"
    r = await owner.post(f"{ADMIN}/customers/{newer.customer_id}/status", json={"status": "active"})
    assert r.status_code == 409 and r.json()["code"] == "customer_merged"

    # Other modules hear about it through the outbox.
    assert await _events(runtime, t.id, "customer.merged") == [
        {"survivor_id": older.customer_id, "merged_id": newer.customer_id}]
    log = (await owner.get(f"{ADMIN}/audit-log", params={"action": "customer.merge"})).json()["items"]
    assert [(e["object_id"], e["after"]["merged_id"]) for e in log] == [(str(older.customer_id), newer.customer_id)]


async def test_binding_a_newer_customers_phone_keeps_me(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    older = await wechat_login(client, t, "dave")
    phone = unique_phone()
    newer = await sms_login(client, runtime, t, phone)
    r = await _bind_phone(client, runtime, t, older, phone)
    assert r.status_code == 200, r.text
    assert r.json() == {"customer_id": older.customer_id, "merged_customer_id": newer.customer_id, "session": None}
    assert (await _me(client, t, older)).json()["phone"] == phone[:3] + "****" + phone[-4:]
    assert (await _me(client, t, newer)).status_code == 401
    customers = await _customers(runtime, t.id)
    assert customers[older.customer_id] == ("active", phone) and customers[newer.customer_id][0] == "merged"


async def test_binding_an_unused_phone_just_attaches_it(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    me = await wechat_login(client, t, "erin")
    phone = unique_phone()
    r = await _bind_phone(client, runtime, t, me, phone)
    assert r.status_code == 200
    assert r.json() == {"customer_id": me.customer_id, "merged_customer_id": None, "session": None}
    assert (await _me(client, t, me)).status_code == 200
    assert await _events(runtime, t.id, "customer.merged") == []
    assert sorted(k for k, _v, _c in await _identities(runtime, t.id)) == ["openid", "phone"]
    await clear_cooldown(runtime, t, phone)
    again = await sms_login(client, runtime, t, phone)
    assert again.customer_id == me.customer_id and not again.new_customer
    # Binding it a second time changes nothing.
    r = await _bind_phone(client, runtime, t, me, phone)
    assert r.json()["merged_customer_id"] is None and r.json()["customer_id"] == me.customer_id


async def test_bind_needs_a_bind_code(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    me = await wechat_login(client, t, "frank")
    phone = unique_phone()
    code = await sms_code(client, runtime, t, phone)  # a sign-in code, not a bind code
    r = await client.post(store_url(t, "/me/phone"), json={"phone": phone, "code": code}, headers=me.auth)
    assert r.status_code == 400 and r.json()["code"] == "sms_code_expired"
    r = await client.post(store_url(t, "/me/phone"), json={"phone": phone, "code": code})
    assert r.status_code == 401
    assert [k for k, _v, _c in await _identities(runtime, t.id)] == ["openid"]


async def test_a_second_different_phone_that_is_taken_is_refused(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    mine, theirs = unique_phone(), unique_phone()
    me = await sms_login(client, runtime, t, mine)
    them = await sms_login(client, runtime, t, theirs)
    r = await _bind_phone(client, runtime, t, me, theirs)
    assert r.status_code == 409 and r.json()["code"] == "phone_already_bound"
    assert (await _me(client, t, them)).status_code == 200
    customers = await _customers(runtime, t.id)
    assert customers[me.customer_id] == ("active", mine) and customers[them.customer_id] == ("active", theirs)


async def test_binding_wechat_of_another_customer_merges(client, runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    wx = await wechat_login(client, t, "gina:fam")
    phone = unique_phone()
    ph = await sms_login(client, runtime, t, phone)
    r = await client.post(store_url(t, "/me/wechat"), json={"code": "gina:fam"}, headers=ph.auth)
    assert r.status_code == 200, r.text
    assert r.json()["customer_id"] == wx.customer_id and r.json()["merged_customer_id"] == ph.customer_id
    assert r.json()["session"] is not None
    client.cookies.clear()
    assert {c for _k, _v, c in await _identities(runtime, t.id)} == {wx.customer_id}
    assert (await _customers(runtime, t.id))[wx.customer_id] == ("active", phone)


# -- concurrency ---------------------------------------------------------------------------------


async def test_concurrent_first_wechat_sign_ins_make_one_customer(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    scope = _scope(t)

    async def sign_in(code: str) -> int:
        async with runtime.db.uow() as s:
            signed = await service.login_with_wechat(s, SandboxMiniProgram(), scope, code, days=7)
            return signed.customer.id

    for code in ("zed", "yan:family"):
        ids = await asyncio.gather(*(sign_in(code) for _ in range(20)))
        assert len(set(ids)) == 1, ids
    idents = await _identities(runtime, t.id)
    assert sorted(k for k, _v, _c in idents) == ["openid", "openid", "unionid"]
    customers = await _customers(runtime, t.id)
    assert len(customers) == 2, "losers of the race left no customer rows behind"
    assert len(await _events(runtime, t.id, "customer.registered")) == 2


async def test_concurrent_first_phone_sign_ins_make_one_customer(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    scope = _scope(t)
    phone = unique_phone()

    async def sign_in() -> tuple[int, bool]:
        async with runtime.db.uow() as s:
            customer, created = await service._find_or_create(s, scope, [("phone", phone, None)],
                                                              registered_via="sms", phone=phone)
            return customer.id, created

    results = await asyncio.gather(*(sign_in() for _ in range(20)))
    assert len({cid for cid, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await _identities(runtime, t.id) == [("phone", phone, results[0][0])]
    assert len(await _customers(runtime, t.id)) == 1


async def test_identity_counts_in_the_database(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    """The unique constraint is what makes the above hold: one row per (tenant, kind, value)."""
    from sqlalchemy.exc import IntegrityError

    t = await tenant_factory()
    scope = _scope(t)
    async with runtime.db.uow() as s:
        c, _ = await service._find_or_create(s, scope, [("openid", "dup", "wx")], registered_via="wechat")
        cid = c.id
    try:
        async with runtime.db.uow() as s:
            s.add(CustomerIdentity(tenant_id=t.id, customer_id=cid, kind="openid", value="dup", app_id="wx"))
            await s.flush()
        raise AssertionError("a duplicate identity row was accepted")
    except IntegrityError:
        pass
    async with runtime.db.uow(readonly=True) as s:
        n = (await s.execute(select(func.count()).select_from(CustomerIdentity)
                             .where(CustomerIdentity.tenant_id == t.id))).scalar_one()
    assert n == 1


async def _wechat_customers(runtime, scope: TenantScope, codes: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    ids = []
    for code in codes:
        async with runtime.db.uow() as s:
            ids.append((await service.login_with_wechat(s, SandboxMiniProgram(), scope, code, days=7)).customer.id)
    return ids


async def _attach_all(runtime, scope: TenantScope, ids: list[int], phone: str) -> list[tuple[int, int | None] | str]:  # type: ignore[no-untyped-def]
    async def bind(cid: int) -> tuple[int, int | None] | str:
        try:
            async with runtime.db.uow() as s:
                r = await service.attach_identity(s, scope, cid, "phone", phone)
                return r.customer.id, r.merged_from
        except DomainError as exc:
            return exc.code

    return list(await asyncio.gather(*(bind(cid) for cid in ids)))


async def test_concurrent_binds_of_one_fresh_phone(runtime, tenant_factory, backend, request) -> None:  # type: ignore[no-untyped-def]
    """Several customers bind the same, so far unknown, phone at once. Whoever wins, the
    phone ends up on exactly one live customer, no other customer claims it, and nobody
    is told "bound" who did not get it."""
    t = await tenant_factory()
    scope = _scope(t)
    ids = await _wechat_customers(runtime, scope, [f"racer{i}" for i in range(8)])
    phone = unique_phone()
    results = await _attach_all(runtime, scope, ids, phone)
    owners = await identity_invariants(runtime, t.id)
    owner = owners[("phone", phone)]
    customers = await _customers(runtime, t.id)
    for cid, res in zip(ids, results, strict=True):
        if isinstance(res, tuple):  # told "done": it holds the phone now, or was merged into who does
            assert res[0] == owner or customers[cid][0] == "merged", (cid, res, owner)


async def test_concurrent_binds_of_a_taken_phone_merge_consistently(runtime, tenant_factory, backend, request) -> None:  # type: ignore[no-untyped-def]
    """Two older customers bind a newer customer's phone at once: both want to merge the same
    customer into themselves. Exactly one may; the identities must stay consistent."""
    t = await tenant_factory()
    scope = _scope(t)
    ids = await _wechat_customers(runtime, scope, ["old1", "old2", "old3"])
    phone = unique_phone()
    async with runtime.db.uow() as s:
        newer, _ = await service._find_or_create(s, scope, [("phone", phone, None)], registered_via="sms", phone=phone)
        newer_id = newer.id
    await _attach_all(runtime, scope, ids, phone)
    owners = await identity_invariants(runtime, t.id)
    assert (await _customers(runtime, t.id))[newer_id][0] == "merged"
    assert owners[("phone", phone)] in ids
