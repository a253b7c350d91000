"""JSON endpoints of the payments module.

* ``/api/admin/v1/payments``: payments with their transitions and refunds, the gateway
  notification log (``finance.read``), gateway configuration (``settings.write``; secrets
  are write-only).
* ``/api/store/v1/{shop}/payments/{out_trade_no}``: a paying shopper's own payment.
* ``POST /api/pay/notify/{gateway}``: where gateways send notifications. The raw body is
  verified before anything parses it; the answer is what the gateway expects (204 when
  accepted, 4xx ``{code, message}`` when refused).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from siyu.customers.access import CurrentShopper
from siyu.kit.errors import PROBLEM_CONTENT_TYPE
from siyu.kit.pagination import Page, Pages
from siyu.kit.tenancy import TenantScope
from siyu.kit.types import FilterText, PathId, SearchText
from siyu.kit.web import ADMIN_ERRORS, UoW, problem_responses
from siyu.payments import service
from siyu.payments.schemas import (
    GatewaySettingsOut,
    NotificationOut,
    PaymentDetailOut,
    PaymentOut,
    RefundOut,
    SandboxConfigIn,
    SandboxSettingsOut,
    StorePaymentOut,
    TransitionOut,
    WechatConfigIn,
    WechatSettingsOut,
)
from siyu.staff.access import StaffPrincipal, require

admin = APIRouter(prefix="/api/admin/v1/payments", tags=["admin: payments"], responses=ADMIN_ERRORS)
store = APIRouter(prefix="/api/store/v1/{shop}", tags=["store: payments"], responses=ADMIN_ERRORS)
notify = APIRouter(prefix="/api/pay", tags=["payment gateways"])

#: Every router of this module; app.py includes them all.
routers: list[APIRouter] = [admin, store, notify]

StatusFilter = Annotated[str | None, Query(pattern="^(pending|succeeded|failed|closed)$")]
GatewayFilter = Annotated[str | None, Query(pattern="^(sandbox|wechat)$")]
OutcomeFilter = Annotated[str | None, Query(pattern="^(processed|duplicate|rejected|ignored)$")]
DateFilter = Annotated[date | None, Query(description="A day in the shop's time zone (YYYY-MM-DD)")]
OutTradeNo = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{6,32}$", description="out_trade_no")]
GatewayName = Annotated[str, Path(pattern=r"^[a-z]{2,20}$", description="sandbox | wechat")]


def day_bounds(scope: TenantScope, start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """[start 00:00, end+1 00:00) in the shop's time zone, as UTC-aware datetimes."""
    tz = ZoneInfo(scope.timezone)
    lo = datetime.combine(start, time.min, tz) if start else None
    hi = datetime.combine(end, time.min, tz) + timedelta(days=1) if end and end < date.max else None
    return lo, hi


# -- admin -------------------------------------------------------------------------------------------


@admin.get("", response_model=Page[PaymentOut], summary="List payments")
async def list_payments(
    session: UoW, pages: Pages, me: Annotated[StaffPrincipal, require("finance.read")],
    status: StatusFilter = None, gateway: GatewayFilter = None, source_type: FilterText = None, q: SearchText = None,
    created_from: DateFilter = None, created_to: DateFilter = None,
) -> Page[PaymentOut]:
    lo, hi = day_bounds(me.scope, created_from, created_to)
    rows, total = await service.list_payments(session, me.scope, status=status, gateway=gateway, source_type=source_type,
                                              q=q, created_from=lo, created_to=hi, offset=pages.offset, limit=pages.page_size)
    return Page(items=[PaymentOut.model_validate(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@admin.get("/notifications", response_model=Page[NotificationOut], summary="Gateway notifications received for this shop")
async def list_notifications(
    session: UoW, pages: Pages, me: Annotated[StaffPrincipal, require("finance.read")],
    gateway: GatewayFilter = None, outcome: OutcomeFilter = None, reference: FilterText = None,
) -> Page[NotificationOut]:
    rows, total = await service.list_notifications(session, me.scope, gateway=gateway, outcome=outcome, reference=reference,
                                                   offset=pages.offset, limit=pages.page_size)
    return Page(items=[NotificationOut.model_validate(r) for r in rows], total=total, page=pages.page,
                page_size=pages.page_size)


@admin.get("/gateways", response_model=GatewaySettingsOut, summary="Payment gateway settings (secrets are never returned)")
async def get_gateways(session: UoW, me: Annotated[StaffPrincipal, require("settings.write")]) -> GatewaySettingsOut:
    return GatewaySettingsOut.model_validate(await service.gateway_settings(session, me.scope))


@admin.put("/gateways/sandbox", response_model=SandboxSettingsOut, summary="Switch the sandbox gateway on or off")
async def put_sandbox(body: SandboxConfigIn, session: UoW,
                      me: Annotated[StaffPrincipal, require("settings.write")]) -> SandboxSettingsOut:
    return SandboxSettingsOut.model_validate(await service.set_sandbox_enabled(session, me.scope, body.enabled))


@admin.put("/gateways/wechat", response_model=WechatSettingsOut,
           summary="Set WeChat Pay credentials (fields left out keep their value; secrets are write-only)")
async def put_wechat(body: WechatConfigIn, session: UoW,
                     me: Annotated[StaffPrincipal, require("settings.write")]) -> WechatSettingsOut:
    return WechatSettingsOut.model_validate(await service.update_wechat_config(session, me.scope, body.changes()))


@admin.post("/gateways/wechat/certificates/download", response_model=WechatSettingsOut,
            summary="Download the WeChat Pay platform certificates into the settings")
async def download_certificates(session: UoW, me: Annotated[StaffPrincipal, require("settings.write")]) -> WechatSettingsOut:
    return WechatSettingsOut.model_validate(await service.refresh_wechat_certificates(session, me.scope))


@admin.get("/{payment_id}", response_model=PaymentDetailOut, summary="One payment with its transitions, refunds and notifications")
async def get_payment(payment_id: PathId, session: UoW,
                      me: Annotated[StaffPrincipal, require("finance.read")]) -> PaymentDetailOut:
    d = await service.payment_detail(session, me.scope, payment_id)
    return PaymentDetailOut(
        **PaymentOut.model_validate(d.payment).model_dump(),
        transitions=[TransitionOut.model_validate(t) for t in d.transitions],
        refunds=[RefundOut.model_validate(r) for r in d.refunds],
        notifications=[NotificationOut.model_validate(n) for n in d.notifications],
    )


# -- store ---------------------------------------------------------------------------------------------


@store.get("/payments/{out_trade_no}", response_model=StorePaymentOut, summary="The status of one of my payments")
async def my_payment(out_trade_no: OutTradeNo, session: UoW, shopper: CurrentShopper) -> StorePaymentOut:
    assert shopper.customer is not None
    p = await service.payment_for_customer(session, shopper.shop.scope, out_trade_no, shopper.customer.id)
    return StorePaymentOut(out_trade_no=p.out_trade_no, status=p.status, amount_fen=p.amount_fen, channel=p.channel,
                           source_type=p.source_type, source_id=p.source_id, expires_at=p.expires_at, paid_at=p.paid_at)


# -- gateway notifications ------------------------------------------------------------------------------


@notify.post("/notify/{gateway}", status_code=204, response_class=Response,
             summary="Gateway notification endpoint (signed; verified on the raw body)",
             responses=problem_responses(400, 401, 404, 413, 422))
async def gateway_notification(gateway: GatewayName, request: Request, session: UoW) -> Response:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > service.MAX_NOTIFICATION_BYTES:
            break  # no need to read the rest: it is refused as too large
        chunks.append(chunk)
    result = await service.handle_notification(session, gateway, request.headers, b"".join(chunks), body_size=size)
    if result.status_code < 300:
        return Response(status_code=204)
    return JSONResponse(result.body, status_code=result.status_code, media_type=PROBLEM_CONTENT_TYPE)
