"""JSON endpoints of stored value (储值).

* Store (``/api/store/v1/{shop}/member/wallet``, signed-in shopper): my balance (principal,
  bonus, what a refund request may take) and the packages on sale; my statement (keyset
  paging with ``before_id``); recharge (``POST /recharges`` with an ``Idempotency-Key`` header:
  201 new, 200 the same request again, 409 ``idempotency_key_reused`` for the key with another
  package or amount); pay a recharge (opens or reuses its payment); my recharges; ask for the
  principal back and see my requests. Another member's recharge or request is a 404.
* Admin (``/api/admin/v1/members/wallet``): settings, recharge packages CRUD, recharges,
  principal refund requests with approve / reject. ``/api/admin/v1/members/{customer_id}/wallet``:
  a member's balance and statement, and staff adjustments with a reason (audited).

Reading needs ``members.read``; every change ``members.write``. Amounts are fen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit.context import current_language
from siyu.kit.errors import BadRequest
from siyu.kit.pagination import Page, Pages
from siyu.kit.tenancy import TenantScope
from siyu.kit.types import MAX_ID, ObjectId, PathId, no_control
from siyu.kit.web import ADMIN_ERRORS, UoW, client_ip, problem_responses
from siyu.members import wallet
from siyu.members.models import BalanceRefund, BalanceRefundPart, Recharge, RechargePackage
from siyu.orders.schemas import PayIn
from siyu.staff.access import StaffPrincipal, require

store = APIRouter(prefix="/api/store/v1/{shop}/member/wallet", tags=["store: stored value"],
                  responses=problem_responses(400, 401, 403, 404, 409, 422))
admin = APIRouter(prefix="/api/admin/v1/members/wallet", tags=["admin: stored value"], responses=ADMIN_ERRORS)
admin_member = APIRouter(prefix="/api/admin/v1/members", tags=["admin: stored value"], responses=ADMIN_ERRORS)

#: Every router of this part; ``members.api`` gathers them.
routers: list[APIRouter] = [store, admin, admin_member]

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]

Fen = Annotated[int, Field(ge=1, le=wallet.MAX_AMOUNT_FEN, description="Fen")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=wallet.MAX_REASON), AfterValidator(no_control)]
PackageName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
                        AfterValidator(no_control)]
Sort = Annotated[int, Field(ge=-9999, le=9999, description="Higher first")]
RechargeStatus = Literal["pending_payment", "paid", "closed"]
RefundStatus = Literal["pending", "refunding", "refunded", "rejected", "failed"]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                       description="1–64 of A-Z a-z 0-9 _ -; repeat it to retry safely")]
BeforeId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="The id of the last row of the previous page")]
Limit = Annotated[int, Query(ge=1, le=100, description="Rows, at most 100")]


# -- inputs ----------------------------------------------------------------------------------------------------


class PackageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "充 1000 送 100", "pay_fen": 100000, "bonus_fen": 10000, "on_sale": True, "sort": 10}]})

    name: PackageName
    pay_fen: Fen = Field(description="What the member pays")
    bonus_fen: Annotated[int, Field(ge=0, le=wallet.MAX_AMOUNT_FEN)] = Field(default=0, description="Bonus added on top")
    on_sale: bool = True
    sort: Sort = 0


class PackagePatch(BaseModel):
    """Fields left out keep their value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"on_sale": False}, {"bonus_fen": 12000}]})

    name: PackageName | None = None
    pay_fen: Fen | None = None
    bonus_fen: Annotated[int, Field(ge=0, le=wallet.MAX_AMOUNT_FEN)] | None = None
    on_sale: bool | None = None
    sort: Sort | None = None


class SettingsIn(BaseModel):
    """Fields left out keep their value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"recharge_enabled": True, "custom_enabled": True, "custom_min_fen": 1000, "custom_max_fen": 2000000,
         "bonus_share_bp": 0, "refund_enabled": True}]})

    recharge_enabled: bool | None = Field(default=None, description="Members may recharge")
    custom_enabled: bool | None = Field(default=None, description="Members may type their own amount")
    custom_min_fen: Fen | None = None
    custom_max_fen: Fen | None = None
    bonus_share_bp: Annotated[int, Field(ge=0, le=10000)] | None = Field(
        default=None, description="Share of a spend drawn from the bonus while it lasts (basis points)")
    refund_enabled: bool | None = Field(default=None, description="Members may ask for their principal back")


class RechargeIn(BaseModel):
    """A package, or a custom amount (no bonus)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"package_id": 1}, {"amount_fen": 20000}]})

    package_id: ObjectId | None = None
    amount_fen: Fen | None = None

    @model_validator(mode="after")
    def _one(self) -> RechargeIn:
        if (self.package_id is None) == (self.amount_fen is None):
            raise ValueError("send either package_id or amount_fen")
        return self


class RefundRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "搬家了，不再来店里"},
                                                                             {"amount_fen": 50000, "reason": ""}]})

    amount_fen: Fen | None = Field(default=None, description="Principal to refund; left out: all that can go back")
    reason: Reason = ""


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "本金已用于订单，请核对后重新申请"}]})

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=wallet.MAX_REASON),
                      AfterValidator(no_control)]


class AdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount_fen": 5000, "bucket": "bonus", "reason": "门店活动补偿"},
        {"amount_fen": -2000, "bucket": "principal", "reason": "线下退款冲正"}]})

    amount_fen: Annotated[int, Field(ge=-wallet.MAX_AMOUNT_FEN, le=wallet.MAX_AMOUNT_FEN,
                                     description="> 0 adds, < 0 takes; not 0")]
    bucket: Literal["principal", "bonus"] = "bonus"
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=wallet.MAX_REASON),
                      AfterValidator(no_control)]


# -- outputs -----------------------------------------------------------------------------------------------------


class BalanceOut(BaseModel):
    principal_fen: int
    bonus_fen: int
    total_fen: int
    held_fen: int = Field(description="Principal held by a refund in progress (not spendable)")


class EntryOut(BaseModel):
    id: int = Field(description="Pass as before_id for the next page")
    kind: str
    label: str
    memo: str
    created_at: datetime
    principal_fen: int = Field(description="+ in, − out")
    bonus_fen: int
    total_fen: int
    balance_after_fen: int
    order_id: int | None


class PackageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    pay_fen: int
    bonus_fen: int
    on_sale: bool
    sort: int


class SettingsOut(BaseModel):
    recharge_enabled: bool
    custom_enabled: bool
    custom_min_fen: int
    custom_max_fen: int
    bonus_share_bp: int
    refund_enabled: bool


class RechargeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    recharge_no: str
    package_id: int | None
    pay_fen: int
    bonus_fen: int
    status: str
    status_label: str
    refunded_fen: int
    pay_deadline: datetime | None
    paid_at: datetime | None
    created_at: datetime
    payable: bool


class AdminRechargeOut(RechargeOut):
    customer_id: int
    payment_id: int | None


class RefundPartOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    recharge_id: int
    amount_fen: int
    refund_id: int | None
    status: str


class RefundOut(BaseModel):
    id: int
    refund_no: str
    amount_fen: int
    status: str
    status_label: str
    reason: str
    reject_reason: str
    created_at: datetime
    decided_at: datetime | None


class AdminRefundOut(RefundOut):
    customer_id: int
    decided_by: int | None
    parts: list[RefundPartOut]


class MyWalletOut(BaseModel):
    balance: BalanceOut
    refundable_fen: int = Field(description="Principal a refund request may take now")
    open_refund: RefundOut | None
    packages: list[PackageOut]
    settings: SettingsOut


class MemberWalletOut(BaseModel):
    customer_id: int
    balance: BalanceOut
    refundable_fen: int
    open_refund: RefundOut | None
    entries: list[EntryOut]


class AdjustOut(BaseModel):
    customer_id: int
    created: bool = Field(description="False when this Idempotency-Key already adjusted")
    journal_id: int
    balance: BalanceOut


class RechargePayOut(BaseModel):
    recharge_id: int
    out_trade_no: str
    amount_fen: int
    channel: str
    pay_url: str | None
    code_url: str | None
    pay_params: dict[str, str] | None
    expires_at: datetime | None
    reused: bool


# -- shaping -----------------------------------------------------------------------------------------------------


def _en() -> bool:
    return current_language().startswith("en")


def balance_out(b: wallet.WalletBalance) -> BalanceOut:
    return BalanceOut(principal_fen=b.principal_fen, bonus_fen=b.bonus_fen, total_fen=b.total_fen, held_fen=b.held_fen)


def entry_out(e: wallet.WalletEntry) -> EntryOut:
    return EntryOut(id=e.id, kind=e.kind, label=e.label(_en()), memo=e.memo, created_at=e.created_at,
                    principal_fen=e.principal_fen, bonus_fen=e.bonus_fen, total_fen=e.total_fen,
                    balance_after_fen=e.balance_after_fen, order_id=e.order_id)


def _recharge_fields(r: Recharge) -> dict[str, object]:
    labels = wallet.RECHARGE_STATUS_EN if _en() else wallet.RECHARGE_STATUS_ZH
    return {"id": r.id, "recharge_no": r.recharge_no, "package_id": r.package_id, "pay_fen": r.pay_fen,
            "bonus_fen": r.bonus_fen, "status": r.status, "status_label": labels.get(r.status, r.status),
            "refunded_fen": r.refunded_fen, "pay_deadline": r.pay_deadline, "paid_at": r.paid_at,
            "created_at": r.created_at, "payable": wallet.recharge_payable(r)}


def recharge_out(r: Recharge) -> RechargeOut:
    return RechargeOut(**_recharge_fields(r))


def _refund_fields(r: BalanceRefund) -> dict[str, object]:
    labels = wallet.REFUND_STATUS_EN if _en() else wallet.REFUND_STATUS_ZH
    return {"id": r.id, "refund_no": r.refund_no, "amount_fen": r.amount_fen, "status": r.status,
            "status_label": labels.get(r.status, r.status), "reason": r.reason, "reject_reason": r.reject_reason,
            "created_at": r.created_at, "decided_at": r.decided_at}


def refund_out(r: BalanceRefund) -> RefundOut:
    return RefundOut(**_refund_fields(r))


def admin_refund_out(r: BalanceRefund, parts: list[BalanceRefundPart]) -> AdminRefundOut:
    return AdminRefundOut(**_refund_fields(r), customer_id=r.customer_id, decided_by=r.decided_by,
                          parts=[RefundPartOut.model_validate(p) for p in parts])


def settings_out(s: wallet.WalletSettings) -> SettingsOut:
    return SettingsOut(**s.as_dict())


def package_out(p: RechargePackage) -> PackageOut:
    return PackageOut.model_validate(p)


def _me(shopper: ShopperSession) -> int:
    assert shopper.customer is not None
    return shopper.customer.id


async def _customer(session: AsyncSession, scope: TenantScope, customer_id: int) -> None:
    """Another tenant's (or no) customer is a 404."""
    await customers_service.get_customer(session, scope, customer_id)


# -- store -------------------------------------------------------------------------------------------------------


@store.get("", response_model=MyWalletOut, summary="My balance, what a refund may take, and the packages on sale")
async def my_wallet(shopper: CurrentShopper, session: UoW) -> MyWalletOut:
    scope = shopper.shop.scope
    s = await wallet.summary(session, scope, _me(shopper), limit=1)
    return MyWalletOut(balance=balance_out(s.balance), refundable_fen=s.refundable_fen,
                       open_refund=refund_out(s.open_refund) if s.open_refund else None,
                       packages=[package_out(p) for p in await wallet.list_packages(session, scope, on_sale_only=True)],
                       settings=settings_out(await wallet.wallet_settings(session, scope)))


@store.get("/history", response_model=list[EntryOut], summary="My statement, newest first (page on with before_id)")
async def my_history(shopper: CurrentShopper, session: UoW, before_id: BeforeId = None, limit: Limit = 20) -> list[EntryOut]:
    rows = await wallet.history(session, shopper.shop.scope, _me(shopper), limit=limit, before_id=before_id)
    return [entry_out(e) for e in rows]


@store.post("/recharges", response_model=RechargeOut, status_code=201,
            responses={200: {"model": RechargeOut, "description": "The recharge an earlier request with this "
                                                                  "Idempotency-Key made"}},
            summary="Recharge a package or an amount (Idempotency-Key header required): 201 new, 200 a repeat")
async def recharge(body: RechargeIn, shopper: CurrentShopper, session: UoW, response: Response,
                   idempotency_key: IdemKey = None) -> RechargeOut:
    if idempotency_key is None or not idempotency_key.strip():
        raise BadRequest("idempotency_key_required", "充值请求需带请求头 Idempotency-Key",
                         "A recharge needs an Idempotency-Key header")
    made = await wallet.create_recharge(session, shopper.shop.scope, _me(shopper), package_id=body.package_id,
                                        amount_fen=body.amount_fen, idempotency_key=idempotency_key)
    if not made.created:
        response.status_code = 200
    return recharge_out(made.recharge)


@store.get("/recharges", response_model=Page[RechargeOut], summary="My recharges, newest first")
async def my_recharges(shopper: CurrentShopper, session: UoW, pages: Pages,
                       status: Annotated[RechargeStatus | None, Query()] = None) -> Page[RechargeOut]:
    rows, total = await wallet.list_recharges(session, shopper.shop.scope, customer_id=_me(shopper), status=status,
                                              offset=pages.offset, limit=pages.page_size)
    return Page(items=[recharge_out(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@store.get("/recharges/{recharge_id}", response_model=RechargeOut, summary="One of my recharges")
async def my_recharge(recharge_id: PathId, shopper: CurrentShopper, session: UoW) -> RechargeOut:
    return recharge_out(await wallet.get_recharge(session, shopper.shop.scope, recharge_id, customer_id=_me(shopper)))


@store.post("/recharges/{recharge_id}/pay", response_model=RechargePayOut,
            summary="Pay an unpaid recharge: opens (or reuses) its payment; the amount is the recharge's")
async def pay_recharge(recharge_id: PathId, body: PayIn, request: Request, shopper: CurrentShopper,
                       session: UoW) -> RechargePayOut:
    scope = shopper.shop.scope
    me = _me(shopper)
    openid = None
    if body.channel == "jsapi":
        ids = await customers_service.identities_of(session, scope, me)
        openid = next((i.value for i in ids if i.kind == "openid"), None)
    start = await wallet.pay_recharge(session, scope, me, recharge_id, channel=body.channel, return_url=body.return_url,
                                      payer_openid=openid, payer_client_ip=client_ip(request))
    p = start.payment
    return RechargePayOut(recharge_id=recharge_id, out_trade_no=p.out_trade_no, amount_fen=p.amount_fen, channel=p.channel,
                          pay_url=start.pay_url, code_url=start.code_url, pay_params=start.pay_params,
                          expires_at=p.expires_at, reused=start.reused)


@store.post("/refunds", response_model=RefundOut, status_code=201,
            summary="Ask for my principal back (bonus is not refundable); one open request at a time")
async def request_refund(body: RefundRequestIn, shopper: CurrentShopper, session: UoW) -> RefundOut:
    r = await wallet.request_refund(session, shopper.shop.scope, _me(shopper), amount_fen=body.amount_fen,
                                    reason=body.reason)
    return refund_out(r)


@store.get("/refunds", response_model=Page[RefundOut], summary="My principal refund requests, newest first")
async def my_refunds(shopper: CurrentShopper, session: UoW, pages: Pages) -> Page[RefundOut]:
    rows, total = await wallet.list_refunds(session, shopper.shop.scope, customer_id=_me(shopper), offset=pages.offset,
                                            limit=pages.page_size)
    return Page(items=[refund_out(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


# -- admin: settings and packages --------------------------------------------------------------------------------


@admin.get("/settings", response_model=SettingsOut, summary="Stored-value settings")
async def get_settings(me: Reader, session: UoW) -> SettingsOut:
    return settings_out(await wallet.wallet_settings(session, me.scope))


@admin.put("/settings", response_model=SettingsOut, summary="Change stored-value settings (fields left out keep their value)")
async def put_settings(body: SettingsIn, me: Writer, session: UoW) -> SettingsOut:
    return settings_out(await wallet.update_settings(session, me.scope, **body.model_dump()))


@admin.get("/packages", response_model=list[PackageOut], summary="Recharge packages, in display order")
async def packages(me: Reader, session: UoW) -> list[PackageOut]:
    return [package_out(p) for p in await wallet.list_packages(session, me.scope)]


@admin.post("/packages", response_model=PackageOut, status_code=201, summary="Create a recharge package")
async def create_package(body: PackageIn, me: Writer, session: UoW) -> PackageOut:
    return package_out(await wallet.create_package(session, me.scope, **body.model_dump()))


@admin.get("/packages/{package_id}", response_model=PackageOut, summary="One recharge package")
async def get_package(package_id: PathId, me: Reader, session: UoW) -> PackageOut:
    return package_out(await wallet.get_package(session, me.scope, package_id))


@admin.patch("/packages/{package_id}", response_model=PackageOut,
             summary="Change a package (fields left out keep their value; recharges made keep theirs)")
async def update_package(package_id: PathId, body: PackagePatch, me: Writer, session: UoW) -> PackageOut:
    return package_out(await wallet.update_package(session, me.scope, package_id, **body.model_dump()))


@admin.delete("/packages/{package_id}", status_code=204, response_class=Response, summary="Delete a package")
async def delete_package(package_id: PathId, me: Writer, session: UoW) -> Response:
    await wallet.delete_package(session, me.scope, package_id)
    return Response(status_code=204)


# -- admin: recharges and refunds --------------------------------------------------------------------------------


@admin.get("/recharges", response_model=Page[AdminRechargeOut], summary="Recharges, newest first")
async def recharges(me: Reader, session: UoW, pages: Pages, status: Annotated[RechargeStatus | None, Query()] = None,
                    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Page[AdminRechargeOut]:
    rows, total = await wallet.list_recharges(session, me.scope, customer_id=customer_id, status=status,
                                              offset=pages.offset, limit=pages.page_size)
    return Page(items=[AdminRechargeOut(**_recharge_fields(r), customer_id=r.customer_id, payment_id=r.payment_id)
                       for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@admin.get("/refunds", response_model=Page[AdminRefundOut], summary="Principal refund requests, newest first")
async def refunds(me: Reader, session: UoW, pages: Pages, status: Annotated[RefundStatus | None, Query()] = None,
                  customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Page[AdminRefundOut]:
    rows, total = await wallet.list_refunds(session, me.scope, customer_id=customer_id, status=status,
                                            offset=pages.offset, limit=pages.page_size)
    items = [admin_refund_out(r, await wallet.refund_parts(session, me.scope, r.id)) for r in rows]
    return Page(items=items, total=total, page=pages.page, page_size=pages.page_size)


@admin.get("/refunds/{refund_id}", response_model=AdminRefundOut, summary="One refund request with its gateway refunds")
async def refund(refund_id: PathId, me: Reader, session: UoW) -> AdminRefundOut:
    r = await wallet.get_refund(session, me.scope, refund_id)
    return admin_refund_out(r, await wallet.refund_parts(session, me.scope, r.id))


@admin.post("/refunds/{refund_id}/approve", response_model=AdminRefundOut,
            summary="Approve: the principal is held and refunded through the member's recharges, newest first")
async def approve(refund_id: PathId, me: Writer, session: UoW) -> AdminRefundOut:
    r = await wallet.approve_refund(session, me.scope, refund_id)
    return admin_refund_out(r, await wallet.refund_parts(session, me.scope, r.id))


@admin.post("/refunds/{refund_id}/reject", response_model=AdminRefundOut, summary="Reject with a reason")
async def reject(refund_id: PathId, body: RejectIn, me: Writer, session: UoW) -> AdminRefundOut:
    r = await wallet.reject_refund(session, me.scope, refund_id, body.reason)
    return admin_refund_out(r, await wallet.refund_parts(session, me.scope, r.id))


# -- admin: one member -------------------------------------------------------------------------------------------


@admin_member.get("/{customer_id}/wallet", response_model=MemberWalletOut,
                  summary="A member's balance and statement (page on with before_id)")
async def member_wallet(customer_id: PathId, me: Reader, session: UoW, before_id: BeforeId = None,
                        limit: Limit = 20) -> MemberWalletOut:
    await _customer(session, me.scope, customer_id)
    s = await wallet.summary(session, me.scope, customer_id, limit=1)
    rows = await wallet.history(session, me.scope, customer_id, limit=limit, before_id=before_id)
    return MemberWalletOut(customer_id=customer_id, balance=balance_out(s.balance), refundable_fen=s.refundable_fen,
                           open_refund=refund_out(s.open_refund) if s.open_refund else None,
                           entries=[entry_out(e) for e in rows])


@admin_member.post("/{customer_id}/wallet/adjust", response_model=AdjustOut, status_code=201,
                   responses={200: {"model": AdjustOut, "description": "This Idempotency-Key already adjusted"}},
                   summary="Add to or take from a member's principal or bonus, with a reason (audited)")
async def adjust(customer_id: PathId, body: AdjustIn, me: Writer, session: UoW, response: Response,
                 idempotency_key: IdemKey = None) -> AdjustOut:
    await _customer(session, me.scope, customer_id)
    token = None
    if idempotency_key is not None and idempotency_key.strip():
        from siyu.orders import checkout

        token = f"{me.staff_id or 0}-{checkout.check_idempotency_key(idempotency_key.strip())}"[:64].ljust(8, "0")
    posted = await wallet.adjust(session, me.scope, customer_id, body.amount_fen, bucket=body.bucket, reason=body.reason,
                                 token=token)
    if not posted.created:
        response.status_code = 200
    return AdjustOut(customer_id=customer_id, created=posted.created, journal_id=posted.journal.id,
                     balance=balance_out(await wallet.balances(session, me.scope, customer_id)))
