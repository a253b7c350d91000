"""Property: whatever order sign-ins and bindings happen in, identities stay consistent.

Random sequences of WeChat sign-ins (codes from a small alphabet with shared unionids),
phone sign-ins, phone bindings and WeChat bindings run against a fresh tenant, each in its
own unit of work. Afterwards:

* every identity belongs to exactly one customer, and that customer is not merged;
* merged customers have no identities, and following ``merged_into`` always ends at a
  customer that is not merged (no cycles);
* no identity that was ever attached got lost;
* a customer's ``phone`` is one of its own phone identities.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.customers import service
from siyu.customers.models import Customer
from siyu.customers.wechat import SandboxMiniProgram
from siyu.kit.errors import DomainError
from siyu.kit.tenancy import TenantScope
from tests.customers._helpers import identity_invariants

CODES = ["a", "b", "c", "a:u1", "b:u1", "c:u2", "d:u2", "b:u2", "e:u3"]
PHONES = ["13900000001", "13900000002", "13900000003"]

codes = st.sampled_from(CODES)
phones = st.sampled_from(PHONES)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("wx"), codes),
        st.tuples(st.just("sms"), phones),
        st.tuples(st.just("bind_phone"), st.integers(0, 7), phones),
        st.tuples(st.just("bind_wx"), st.integers(0, 7), codes),
    ),
    min_size=1,
    max_size=14,
)


def _wx_ids(code: str) -> set[tuple[str, str]]:
    # Mirrors the sandbox: the part before ':' seeds the openid, the part after the unionid.
    import hashlib

    open_seed, _, union_seed = code.partition(":")
    out = {("openid", "sbx_o_" + hashlib.sha256(open_seed.encode()).hexdigest()[:24])}
    if union_seed:
        out.add(("unionid", "sbx_u_" + hashlib.sha256(union_seed.encode()).hexdigest()[:24]))
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
async def test_identities_always_belong_to_one_live_customer(runtime, tenant_factory, steps) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    scope = TenantScope(id=t.id, code=t.code)
    wx = SandboxMiniProgram()
    seen: set[tuple[str, str]] = set()

    async def live_customers() -> list[int]:
        async with runtime.db.uow(readonly=True) as s:
            return list((await s.execute(select(Customer.id).where(
                Customer.tenant_id == t.id, Customer.status == "active").order_by(Customer.id))).scalars())

    for step in steps:
        kind = step[0]
        me = 0
        if kind.startswith("bind"):
            # Only a signed-in (hence active) customer can bind.
            live = await live_customers()
            if not live:
                continue
            me = live[step[1] % len(live)]
        try:
            async with runtime.db.uow() as s:
                if kind == "wx":
                    await service.login_with_wechat(s, wx, scope, step[1], days=7)
                    seen |= _wx_ids(step[1])
                elif kind == "sms":
                    await service._find_or_create(s, scope, [("phone", step[1], None)], registered_via="sms", phone=step[1])
                    seen.add(("phone", step[1]))
                elif kind == "bind_phone":
                    await service.attach_identity(s, scope, me, "phone", step[2])
                    seen.add(("phone", step[2]))
                else:
                    await service.bind_wechat(s, wx, scope, me, step[2], days=7)
                    seen |= _wx_ids(step[2])
        except DomainError as exc:
            # The only refusal this model can meet: a customer with one phone binding another
            # customer's different phone. Its transaction rolled back.
            assert exc.code == "phone_already_bound", exc

    owners = await identity_invariants(runtime, t.id)
    assert set(owners) == seen, "identities were lost or invented"
