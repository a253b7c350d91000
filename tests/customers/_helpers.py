"""Storefront helpers shared by the customers, tenants and OpenAPI tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from siyu.kit.runtime import Runtime
from tests.conftest import TenantInfo


@dataclass
class Shopper:
    customer_id: int
    token: str
    new_customer: bool

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def store_url(tenant: TenantInfo | str, path: str) -> str:
    code = tenant if isinstance(tenant, str) else tenant.code
    return f"/api/store/v1/{code}{path}"


async def request_code(client: httpx.AsyncClient, tenant: TenantInfo, phone: str, purpose: str = "login") -> httpx.Response:
    return await client.post(store_url(tenant, "/auth/sms-code"), json={"phone": phone, "purpose": purpose})


async def clear_cooldown(runtime: Runtime, tenant: TenantInfo, phone: str) -> None:
    """Forget the one-a-minute send window of ``phone`` (the KV windows use a monotonic clock)."""
    await runtime.kv.delete(f"sms-phone-min:{tenant.id}:{phone}")


async def latest_code(runtime: Runtime, tenant_id: int, phone: str) -> str:
    """The code in the newest SMS to ``phone``.

    (``tests.conftest.latest_sms_code`` reads the row after its read-only unit of work has
    rolled back, which expires it; this reads the content inside the transaction.)
    """
    from sqlalchemy import select

    from siyu.kit.sms import SmsMessage

    async with runtime.db.uow(readonly=True) as s:
        content = (await s.execute(
            select(SmsMessage.content).where(SmsMessage.tenant_id == tenant_id, SmsMessage.phone == phone)
            .order_by(SmsMessage.id.desc()).limit(1)
        )).scalar_one()
    m = re.search(r"(\d{6})", content)
    assert m, content
    return m.group(1)


async def sms_code(client: httpx.AsyncClient, runtime: Runtime, tenant: TenantInfo, phone: str, purpose: str = "login") -> str:
    r = await request_code(client, tenant, phone, purpose)
    assert r.status_code == 200, r.text
    return await latest_code(runtime, tenant.id, phone)


def _shopper(r: httpx.Response) -> Shopper:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return Shopper(body["customer_id"], body["token"], body["new_customer"])


async def sms_login(client: httpx.AsyncClient, runtime: Runtime, tenant: TenantInfo, phone: str) -> Shopper:
    """Sign in (or up) at ``tenant``'s shop by SMS; the returned token is used as a bearer token."""
    code = await sms_code(client, runtime, tenant, phone)
    r = await client.post(store_url(tenant, "/auth/login/sms"), json={"phone": phone, "code": code})
    client.cookies.clear()  # later calls authenticate explicitly with the bearer token
    return _shopper(r)


async def wechat_login(client: httpx.AsyncClient, tenant: TenantInfo, code: str) -> Shopper:
    r = await client.post(store_url(tenant, "/auth/login/wechat"), json={"code": code})
    client.cookies.clear()
    return _shopper(r)


async def identity_invariants(runtime: Runtime, tenant_id: int) -> dict[tuple[str, str], int]:
    """Check the identity invariants of one tenant; return (kind, value) → owning customer id.

    * every identity is held once, by a customer that is not merged;
    * a merged customer holds no identity, and following ``merged_into`` ends at a live
      customer (no cycles);
    * a customer's ``phone`` is one of its own phone identities.
    """
    from sqlalchemy import select

    from siyu.customers.models import Customer, CustomerIdentity

    async with runtime.db.uow(readonly=True) as s:
        state = {cid: (status, phone, merged_into) for cid, status, phone, merged_into in (await s.execute(
            select(Customer.id, Customer.status, Customer.phone, Customer.merged_into_id)
            .where(Customer.tenant_id == tenant_id))).all()}
        rows = (await s.execute(select(CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id)
                                .where(CustomerIdentity.tenant_id == tenant_id))).all()
    owners: dict[tuple[str, str], int] = {}
    for kind, value, cid in rows:
        assert (kind, value) not in owners, f"{kind} {value} is held twice"
        owners[(kind, value)] = cid
        assert cid in state, (kind, value, cid)
        assert state[cid][0] != "merged", f"{kind} {value} belongs to merged customer {cid}"
    held = set(owners.values())
    for cid, (status, phone, merged_into) in state.items():
        if status == "merged":
            assert cid not in held, f"merged customer {cid} still holds identities"
            assert merged_into is not None and merged_into != cid
            hops, cur = 0, merged_into
            while state[cur][0] == "merged":
                cur = state[cur][2]
                hops += 1
                assert hops <= len(state), "merged_into has a cycle"
        else:
            assert merged_into is None, f"live customer {cid} says it was merged into {merged_into}"
        if phone is not None:
            assert owners.get(("phone", phone)) == cid, f"customer {cid} has phone {phone} held by {owners.get(('phone', phone))}"
    return owners
