"""Queries of the customers module."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update

from siyu.customers.models import Customer, CustomerAddress, CustomerIdentity, SmsCode
from siyu.kit import clock
from siyu.kit.tenancy import TenantRepository


class Customers(TenantRepository[Customer]):
    model = Customer
    not_found_zh = "客户"
    not_found_en = "Customer"
    not_found_code = "customer_not_found"

    async def search(self, q: str | None, status: str | None, offset: int, limit: int) -> tuple[Sequence[Customer], int]:
        stmt = self.select().where(Customer.status != "merged")
        if q:
            stmt = stmt.where(or_(Customer.nickname.ilike(f"%{q}%"), Customer.phone == q))
        if status:
            stmt = stmt.where(Customer.status == status)
        total = await self.count(stmt)
        return await self.list(stmt.order_by(Customer.id.desc()).offset(offset).limit(limit)), total


    async def lock_fresh(self, ids: list[int]) -> Sequence[Customer]:
        """SELECT ... FOR UPDATE in the given order, refreshing objects already in the session."""
        out = []
        for cid in ids:
            stmt = self.select().where(Customer.id == cid).with_for_update().execution_options(populate_existing=True)
            out.append((await self.session.execute(stmt)).scalar_one())
        return out

    async def count_since(self, since: datetime | None) -> int:
        stmt = self.select().where(Customer.status != "merged")
        if since is not None:
            stmt = stmt.where(Customer.created_at >= since)
        return await self.count(stmt)


class Identities(TenantRepository[CustomerIdentity]):
    model = CustomerIdentity

    async def find(self, kind: str, value: str) -> CustomerIdentity | None:
        return (
            await self.session.execute(self.select().where(CustomerIdentity.kind == kind, CustomerIdentity.value == value))
        ).scalar_one_or_none()

    async def of_customer(self, customer_id: int) -> Sequence[CustomerIdentity]:
        return await self.list(self.select().where(CustomerIdentity.customer_id == customer_id).order_by(CustomerIdentity.id))

    async def move(self, from_customer: int, to_customer: int) -> None:
        await self.session.execute(
            update(CustomerIdentity)
            .where(CustomerIdentity.tenant_id == self.tenant_id, CustomerIdentity.customer_id == from_customer)
            .values(customer_id=to_customer)
        )


class Codes(TenantRepository[SmsCode]):
    model = SmsCode

    async def latest_open(self, phone: str, purpose: str) -> SmsCode | None:
        stmt = (
            self.select()
            .where(SmsCode.phone == phone, SmsCode.purpose == purpose, SmsCode.consumed_at.is_(None))
            .order_by(SmsCode.id.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def consume(self, code_id: int) -> bool:
        res = await self.session.execute(
            update(SmsCode)
            .where(SmsCode.tenant_id == self.tenant_id, SmsCode.id == code_id, SmsCode.consumed_at.is_(None))
            .values(consumed_at=clock.now())
        )
        return res.rowcount == 1  # type: ignore[attr-defined]

    async def expire_others(self, phone: str, purpose: str) -> None:
        await self.session.execute(
            update(SmsCode)
            .where(SmsCode.tenant_id == self.tenant_id, SmsCode.phone == phone, SmsCode.purpose == purpose,
                   SmsCode.consumed_at.is_(None))
            .values(consumed_at=clock.now())
        )


class Addresses(TenantRepository[CustomerAddress]):
    model = CustomerAddress
    not_found_zh = "收货地址"
    not_found_en = "Address"
    not_found_code = "address_not_found"

    async def of_customer(self, customer_id: int) -> Sequence[CustomerAddress]:
        """The default first, then the newest."""
        stmt = (self.select().where(CustomerAddress.customer_id == customer_id)
                .order_by(CustomerAddress.is_default.desc(), CustomerAddress.id.desc()))
        return await self.list(stmt)

    async def owned(self, customer_id: int, address_id: int) -> CustomerAddress | None:
        stmt = self.select().where(CustomerAddress.id == address_id, CustomerAddress.customer_id == customer_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def count_of(self, customer_id: int) -> int:
        return await self.count(self.select(CustomerAddress.id).where(CustomerAddress.customer_id == customer_id))

    async def newest(self, customer_id: int) -> CustomerAddress | None:
        stmt = (self.select().where(CustomerAddress.customer_id == customer_id)
                .order_by(CustomerAddress.created_at.desc(), CustomerAddress.id.desc()).limit(1))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def clear_default(self, customer_id: int) -> None:
        """Unset the default first (its own statement), so the partial unique index never
        sees two defaults while another address becomes the default."""
        await self.session.execute(
            update(CustomerAddress)
            .where(CustomerAddress.tenant_id == self.tenant_id, CustomerAddress.customer_id == customer_id,
                   CustomerAddress.is_default.is_(True))
            .values(is_default=False, updated_at=clock.now())
            .execution_options(synchronize_session="fetch")
        )


async def customer_ids_with_identity(session, tenant_id: int, kind: str, values: list[str]) -> dict[str, int]:
    rows = await session.execute(
        select(CustomerIdentity.value, CustomerIdentity.customer_id).where(
            CustomerIdentity.tenant_id == tenant_id, CustomerIdentity.kind == kind, CustomerIdentity.value.in_(values)
        )
    )
    return dict(rows.all())
