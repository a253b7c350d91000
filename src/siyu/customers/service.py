"""Customer identity: SMS-code sign-in, WeChat sign-in, and merging identities.

One customer per tenant per identity: a phone, openid or unionid seen again finds the same
customer (a unique constraint makes this hold under concurrent first sign-ins). When a
signed-in customer adds an identity that already belongs to another customer, the two are
merged: the older record survives, the identities move to it, the other is marked
``merged`` and a ``customer.merged`` event tells other modules to re-point their rows.

Address book (收货地址), the contract orders call:

``await list_addresses(session, scope, customer_id)`` (default first, then newest),
``await get_address(session, scope, customer_id, address_id)`` (404 ``address_not_found``
for another customer's or tenant's address), ``await default_address(...)`` (or None), and
``create_address`` / ``update_address`` / ``delete_address`` / ``set_default_address``.

* A customer has at most :data:`~siyu.customers.schemas.MAX_ADDRESSES` (20) addresses; one
  more is 409 ``address_limit``.
* While a customer has addresses, exactly one is the default: the first address becomes
  the default, a new or edited address marked default takes it over, and deleting the
  default promotes the newest remaining address.
* The province is checked against the 34 provincial-level divisions (``province_code``);
  city and district are short free text, since full county-level region data is not
  available offline.
* Every address write first locks the customer row, so concurrent writes of one customer
  queue: the limit and the single default hold exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.customers.models import Customer, CustomerAddress, CustomerIdentity, SmsCode
from siyu.customers.repository import Addresses, Codes, Customers, Identities
from siyu.customers.schemas import MAX_ADDRESSES, PROVINCES, AddressIn, AddressUpdate
from siyu.customers.wechat import MiniProgramAuth
from siyu.kit import audit, clock, outbox, sms
from siyu.kit.errors import BadRequest, Conflict, NotFound, TooManyRequests
from siyu.kit.kv import KV
from siyu.kit.security import constant_time_equals, hmac_code, mask_phone, new_numeric_code
from siyu.kit.sessions import create_session, revoke_principal
from siyu.kit.tenancy import TenantScope

PHONE_COOLDOWN_SECONDS = 60
PHONE_DAILY_LIMIT = 10
IP_HOURLY_LIMIT = 30
MAX_VERIFY_ATTEMPTS = 5
PURPOSES = ("login", "bind")


@dataclass(frozen=True, slots=True)
class SignedIn:
    customer: Customer
    token: str
    csrf_token: str
    created: bool


def _limited(code: str, zh: str, en: str, retry: int) -> TooManyRequests:
    return TooManyRequests(code, zh, en, headers={"Retry-After": str(retry)}, extra={"retry_after": retry})


async def send_code(
    session: AsyncSession, kv: KV, secret: str, scope: TenantScope, shop_name: str, phone: str, purpose: str, ip: str,
    *, ttl_seconds: int,
) -> SmsCode:
    """Issue a one-time code by SMS, within per-phone and per-address limits."""
    ip_hit = await kv.hit(f"sms-ip:{scope.id}:{ip}", IP_HOURLY_LIMIT, 3600)
    if not ip_hit.allowed:
        raise _limited("sms_ip_limited", "当前网络获取验证码过于频繁，请稍后再试",
                       "Too many codes requested from this network; try again later", ip_hit.retry_after)
    minute = await kv.hit(f"sms-phone-min:{scope.id}:{phone}", 1, PHONE_COOLDOWN_SECONDS)
    if not minute.allowed:
        raise _limited("sms_too_frequent", f"验证码已发送，请 {minute.retry_after} 秒后再获取",
                       f"A code was just sent; wait {minute.retry_after} s before asking again", minute.retry_after)
    day = await kv.hit(f"sms-phone-day:{scope.id}:{phone}", PHONE_DAILY_LIMIT, 86400)
    if not day.allowed:
        raise _limited("sms_daily_limit", "该手机号今日获取验证码次数已达上限", "This number has reached today's code limit",
                       day.retry_after)
    codes = Codes(session, scope.id)
    await codes.expire_others(phone, purpose)
    code = new_numeric_code()
    row = codes.add(SmsCode(
        phone=phone, purpose=purpose, code_hash=hmac_code(secret, str(scope.id), phone, purpose, code),
        expires_at=clock.now() + timedelta(seconds=ttl_seconds),
    ))
    await kv.delete(f"sms-verify:{scope.id}:{phone}:{purpose}")
    minutes = max(1, ttl_seconds // 60)
    await sms.queue_and_publish(
        session, tenant_id=scope.id, phone=phone, template=f"verify_{purpose}",
        content=f"【{shop_name}】您的验证码是 {code}，{minutes} 分钟内有效。如非本人操作请忽略。",
    )
    await session.flush()
    return row


async def check_code(session: AsyncSession, kv: KV, secret: str, scope: TenantScope, phone: str, purpose: str, code: str) -> None:
    """Consume a valid code or raise. Wrong guesses are counted in KV so they survive the
    rollback of the failing request."""
    attempts_key = f"sms-verify:{scope.id}:{phone}:{purpose}"
    if await kv.get_int(attempts_key) >= MAX_VERIFY_ATTEMPTS:
        raise BadRequest("sms_code_attempts_exceeded", "验证码错误次数过多，请重新获取", "Too many wrong codes; request a new one")
    codes = Codes(session, scope.id)
    row = await codes.latest_open(phone, purpose)
    if row is None or row.expires_at <= clock.now():
        raise BadRequest("sms_code_expired", "验证码已过期或不存在，请重新获取", "The code has expired or was never sent; request a new one")
    expected = hmac_code(secret, str(scope.id), phone, purpose, code.strip())
    if not constant_time_equals(expected, row.code_hash):
        n = await kv.incr(attempts_key, 1, ttl_seconds=3600)
        left = max(0, MAX_VERIFY_ATTEMPTS - n)
        raise BadRequest("sms_code_wrong", f"验证码错误，还可尝试 {left} 次", f"Wrong code; {left} attempt(s) left",
                         extra={"attempts_left": left})
    if not await codes.consume(row.id):
        raise BadRequest("sms_code_expired", "验证码已被使用，请重新获取", "The code was already used; request a new one")
    await kv.delete(attempts_key)


async def _find_or_create(session: AsyncSession, scope: TenantScope, ids: list[tuple[str, str, str | None]],
                          *, registered_via: str, phone: str | None = None) -> tuple[Customer, bool]:
    """Find the customer owning any of ``ids`` (in order of preference), or create one.

    Two first sign-ins with the same identity may race; the unique constraint lets only one
    insert win and the loser, inside a savepoint, finds the winner's row instead.
    """
    identities = Identities(session, scope.id)
    customers = Customers(session, scope.id)
    for kind, value, _app in ids:
        found = await identities.find(kind, value)
        if found is not None:
            customer = await customers.get_or_404(found.customer_id)
            # Attach the other identities we learnt this time (e.g. a unionid on a new app).
            for k2, v2, app2 in ids:
                if await identities.find(k2, v2) is None:
                    await _attach_new(session, scope, customer, k2, v2, app2)
            return customer, False
    try:
        async with session.begin_nested():
            customer = customers.add(Customer(phone=phone, registered_via=registered_via, nickname=_default_nickname(phone)))
            await session.flush()
            for kind, value, app in ids:
                identities.add(CustomerIdentity(customer_id=customer.id, kind=kind, value=value, app_id=app))
            await session.flush()
    except IntegrityError:
        kind, value, _ = ids[0]
        found = await identities.find(kind, value)
        if found is None:
            raise
        return await customers.get_or_404(found.customer_id), False
    outbox.publish(session, "customer.registered", {"customer_id": customer.id, "via": registered_via}, tenant_id=scope.id)
    return customer, True


def _default_nickname(phone: str | None) -> str:
    return f"用户{phone[-4:]}" if phone else "微信用户"


async def _attach_new(session: AsyncSession, scope: TenantScope, customer: Customer, kind: str, value: str,
                      app: str | None) -> bool:
    """Attach an identity nobody holds. False when a concurrent request attached it first:
    the caller must then treat it as held by someone else (and merge), not as ours."""
    try:
        async with session.begin_nested():
            Identities(session, scope.id).add(CustomerIdentity(customer_id=customer.id, kind=kind, value=value, app_id=app))
            await session.flush()
    except IntegrityError:
        return False
    if kind == "phone" and not customer.phone:
        customer.phone = value
    return True


async def _start_session(session: AsyncSession, scope: TenantScope, customer: Customer, created: bool, *, days: int,
                         ip: str | None, user_agent: str | None) -> SignedIn:
    customer.last_login_at = clock.now()
    token, row = await create_session(session, kind="customer", principal_id=customer.id, tenant_id=scope.id, days=days,
                                      ip=ip, user_agent=user_agent)
    return SignedIn(customer, token, row.csrf_token, created)


async def login_with_code(session: AsyncSession, kv: KV, secret: str, scope: TenantScope, phone: str, code: str, *,
                          days: int, ip: str | None = None, user_agent: str | None = None) -> SignedIn:
    await check_code(session, kv, secret, scope, phone, "login", code)
    customer, created = await _find_or_create(session, scope, [("phone", phone, None)], registered_via="sms", phone=phone)
    if customer.status == "blocked":
        raise BadRequest("customer_blocked", "账号已被停用，请联系客服", "This account is disabled; contact customer service", status=403)
    return await _start_session(session, scope, customer, created, days=days, ip=ip, user_agent=user_agent)


async def login_with_wechat(session: AsyncSession, adapter: MiniProgramAuth, scope: TenantScope, code: str, *, days: int,
                            ip: str | None = None, user_agent: str | None = None) -> SignedIn:
    wx = await adapter.code_to_session(code)
    ids: list[tuple[str, str, str | None]] = []
    if wx.unionid:
        ids.append(("unionid", wx.unionid, None))
    ids.append(("openid", wx.openid, wx.app_id))
    customer, created = await _find_or_create(session, scope, ids, registered_via="wechat")
    if customer.status == "blocked":
        raise BadRequest("customer_blocked", "账号已被停用，请联系客服", "This account is disabled; contact customer service", status=403)
    return await _start_session(session, scope, customer, created, days=days, ip=ip, user_agent=user_agent)


@dataclass(frozen=True, slots=True)
class AttachResult:
    customer: Customer
    merged_from: int | None
    session: SignedIn | None  # a new session when the signed-in customer was merged away


async def attach_identity(session: AsyncSession, scope: TenantScope, customer_id: int, kind: str, value: str,
                          app_id: str | None = None, *, days: int = 7) -> AttachResult:
    """Give a signed-in customer another identity, merging with its current owner if any."""
    identities = Identities(session, scope.id)
    customers = Customers(session, scope.id)
    me = await customers.get_or_404(customer_id)
    existing = await identities.find(kind, value)
    if existing is None:
        if await _attach_new(session, scope, me, kind, value, app_id):
            audit.record(session, tenant_id=scope.id, action="customer.identity_add", object_type="customer", object_id=me.id,
                         after={"kind": kind, "value": mask_phone(value) if kind == "phone" else value})
            return AttachResult(me, None, None)
        # Attached concurrently by someone else: it now has an owner, so this is a merge.
        existing = await identities.find(kind, value)
        if existing is None:
            raise Conflict("identity_conflict", "账号信息正在更新，请稍后重试", "The account is being updated; try again")
    if existing.customer_id == me.id:
        return AttachResult(me, None, None)
    other = await customers.get_or_404(existing.customer_id)
    if kind == "phone" and me.phone and me.phone != value:
        raise Conflict("phone_already_bound", "当前账号已绑定其他手机号", "This account already has a different phone number")
    survivor, loser = (me, other) if me.id < other.id else (other, me)
    await merge_customers(session, scope, survivor, loser)
    new_session = None
    if loser.id == me.id:
        new_session = await _start_session(session, scope, survivor, False, days=days, ip=None, user_agent=None)
    return AttachResult(survivor, loser.id, new_session)


async def merge_customers(session: AsyncSession, scope: TenantScope, survivor: Customer, loser: Customer) -> None:
    # Lock in primary-key order so two merges touching the same pair cannot deadlock, and
    # re-read both rows under the lock: a concurrent merge may have changed them meanwhile.
    await Customers(session, scope.id).lock_fresh(sorted((survivor.id, loser.id)))
    if survivor.status == "merged" or loser.status == "merged":
        raise Conflict("merge_conflict", "账号正在合并，请稍后重试", "These accounts are being merged right now; try again")
    await Identities(session, scope.id).move(loser.id, survivor.id)
    if not survivor.phone and loser.phone:
        survivor.phone = loser.phone
    if (not survivor.nickname or survivor.nickname.startswith(("用户", "微信用户"))) and loser.nickname:
        survivor.nickname = loser.nickname
    loser.status = "merged"
    loser.merged_into_id = survivor.id
    loser.phone = None
    await revoke_principal(session, "customer", loser.id)
    outbox.publish(session, "customer.merged", {"survivor_id": survivor.id, "merged_id": loser.id}, tenant_id=scope.id)
    audit.record(session, tenant_id=scope.id, action="customer.merge", object_type="customer", object_id=survivor.id,
                 after={"merged_id": loser.id})
    await session.flush()


async def bind_phone(session: AsyncSession, kv: KV, secret: str, scope: TenantScope, customer_id: int, phone: str, code: str,
                     *, days: int) -> AttachResult:
    await check_code(session, kv, secret, scope, phone, "bind", code)
    return await attach_identity(session, scope, customer_id, "phone", phone, days=days)


async def bind_wechat(session: AsyncSession, adapter: MiniProgramAuth, scope: TenantScope, customer_id: int, code: str, *,
                      days: int) -> AttachResult:
    wx = await adapter.code_to_session(code)
    result = await attach_identity(session, scope, customer_id, "openid", wx.openid, wx.app_id, days=days)
    if wx.unionid:
        result2 = await attach_identity(session, scope, result.customer.id, "unionid", wx.unionid, days=days)
        return AttachResult(result2.customer, result.merged_from or result2.merged_from, result2.session or result.session)
    return result


# -- reads -----------------------------------------------------------------------------------


async def get_customer(session: AsyncSession, scope: TenantScope, customer_id: int) -> Customer:
    return await Customers(session, scope.id).get_or_404(customer_id)


async def active_customer(session: AsyncSession, scope: TenantScope, customer_id: int) -> Customer | None:
    c = await Customers(session, scope.id).get(customer_id)
    return c if c is not None and c.status == "active" else None


async def identities_of(session: AsyncSession, scope: TenantScope, customer_id: int) -> Sequence[CustomerIdentity]:
    return await Identities(session, scope.id).of_customer(customer_id)


async def list_customers(session: AsyncSession, scope: TenantScope, *, q: str | None = None, status: str | None = None,
                         offset: int = 0, limit: int = 20) -> tuple[Sequence[Customer], int]:
    return await Customers(session, scope.id).search(q, status, offset, limit)


async def count_customers(session: AsyncSession, scope: TenantScope, *, since: datetime | None = None) -> int:
    """Customers (not merged away), optionally only those registered since ``since``."""
    return await Customers(session, scope.id).count_since(since)


async def update_nickname(session: AsyncSession, scope: TenantScope, customer_id: int, nickname: str) -> Customer:
    c = await Customers(session, scope.id).get_or_404(customer_id)
    c.nickname = nickname
    return c


async def set_status(session: AsyncSession, scope: TenantScope, customer_id: int, status: str) -> Customer:
    c = await Customers(session, scope.id).get_or_404(customer_id)
    if c.status == "merged":
        raise Conflict("customer_merged", "该客户已合并到其他客户", "This customer was merged into another one")
    before = c.status
    c.status = status
    if status == "blocked":
        await revoke_principal(session, "customer", c.id)
    audit.record(session, tenant_id=scope.id, action="customer.status", object_type="customer", object_id=c.id,
                 before={"status": before}, after={"status": status})
    return c


async def import_customer(session: AsyncSession, scope: TenantScope, *, phone: str, nickname: str | None,
                          registered_via: str = "import", created_at=None, openid: str | None = None) -> Customer:
    """Create a customer from an existing list (migration from another system, demo data)."""
    ids: list[tuple[str, str, str | None]] = [("phone", phone, None)]
    if openid:
        ids.append(("openid", openid, "wx-sandbox"))
    customer, created = await _find_or_create(session, scope, ids, registered_via=registered_via, phone=phone)
    if created:
        if nickname:
            customer.nickname = nickname
        if created_at is not None:
            customer.created_at = created_at
    return customer


# -- address book ----------------------------------------------------------------------------------


def _address_not_found() -> NotFound:
    return NotFound("address_not_found", "收货地址不存在", "Address not found")


async def list_addresses(session: AsyncSession, scope: TenantScope, customer_id: int) -> Sequence[CustomerAddress]:
    return await Addresses(session, scope.id).of_customer(customer_id)


async def get_address(session: AsyncSession, scope: TenantScope, customer_id: int, address_id: int) -> CustomerAddress:
    """The customer's own address; another customer's (or tenant's) answers 404."""
    addr = await Addresses(session, scope.id).owned(customer_id, address_id)
    if addr is None:
        raise _address_not_found()
    return addr


async def default_address(session: AsyncSession, scope: TenantScope, customer_id: int) -> CustomerAddress | None:
    rows = await Addresses(session, scope.id).of_customer(customer_id)
    return rows[0] if rows and rows[0].is_default else None


async def _lock_customer(session: AsyncSession, scope: TenantScope, customer_id: int) -> None:
    if await Customers(session, scope.id).get(customer_id) is None:
        raise NotFound("customer_not_found", "客户不存在", "Customer not found")
    await Customers(session, scope.id).lock_fresh([customer_id])


async def create_address(session: AsyncSession, scope: TenantScope, customer_id: int, data: AddressIn) -> CustomerAddress:
    await _lock_customer(session, scope, customer_id)
    repo = Addresses(session, scope.id)
    count = await repo.count_of(customer_id)
    if count >= MAX_ADDRESSES:
        raise Conflict("address_limit", f"最多保存 {MAX_ADDRESSES} 个收货地址，请先删除不用的地址",
                       f"At most {MAX_ADDRESSES} addresses can be saved; delete one you no longer use first")
    make_default = data.is_default or count == 0
    if make_default:
        await repo.clear_default(customer_id)
    addr = repo.add(CustomerAddress(
        customer_id=customer_id, receiver_name=data.receiver_name, phone=data.phone, province_code=data.province_code,
        province=PROVINCES[data.province_code], city=data.city, district=data.district, detail=data.detail,
        postal_code=data.postal_code, is_default=make_default,
    ))
    await session.flush()
    return addr


async def update_address(session: AsyncSession, scope: TenantScope, customer_id: int, address_id: int,
                         data: AddressUpdate) -> CustomerAddress:
    await _lock_customer(session, scope, customer_id)
    addr = await get_address(session, scope, customer_id, address_id)
    sent = data.model_fields_set
    for name in ("receiver_name", "phone", "city", "district", "detail"):
        value = getattr(data, name)
        if value is not None:
            setattr(addr, name, value)
    if data.province_code is not None:
        addr.province_code = data.province_code
        addr.province = PROVINCES[data.province_code]
    if "postal_code" in sent:
        addr.postal_code = data.postal_code
    if data.is_default and not addr.is_default:
        await _make_default(session, scope, customer_id, addr)
    addr.updated_at = clock.now()
    await session.flush()
    return addr


async def _make_default(session: AsyncSession, scope: TenantScope, customer_id: int, addr: CustomerAddress) -> None:
    await Addresses(session, scope.id).clear_default(customer_id)
    addr.is_default = True
    addr.updated_at = clock.now()
    await session.flush()


async def set_default_address(session: AsyncSession, scope: TenantScope, customer_id: int, address_id: int) -> CustomerAddress:
    await _lock_customer(session, scope, customer_id)
    addr = await get_address(session, scope, customer_id, address_id)
    if not addr.is_default:
        await _make_default(session, scope, customer_id, addr)
    return addr


async def delete_address(session: AsyncSession, scope: TenantScope, customer_id: int, address_id: int) -> None:
    """Delete an address; when it was the default, the newest remaining one takes over."""
    await _lock_customer(session, scope, customer_id)
    addr = await get_address(session, scope, customer_id, address_id)
    was_default = addr.is_default
    await session.delete(addr)
    await session.flush()
    if was_default:
        newest = await Addresses(session, scope.id).newest(customer_id)
        if newest is not None:
            await _make_default(session, scope, customer_id, newest)
