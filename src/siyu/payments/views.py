"""Pages of the payments module.

Console (``/admin/payments``): the payment list with filters, a payment's detail with its
timeline (transitions, refunds, notifications), the notification log with outcomes, and the
gateway settings (sandbox switch; WeChat Pay credentials with secrets masked and write-only).

Sandbox cashier (``/pay/sandbox/{out_trade_no}``): the hosted pay page of the sandbox
gateway, mobile first, with 确认支付 / 支付失败 / 取消. It plays a page on the gateway's own
site, so it has no Siyu session: its forms carry a token only a page we served can know
(an HMAC of the order number with the sandbox key), and cross-site posts are refused by the
``Origin`` check.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from siyu.kit import audit
from siyu.kit.errors import DomainError, Forbidden
from siyu.kit.i18n import gettext as _
from siyu.kit.security import constant_time_equals
from siyu.kit.types import PathId
from siyu.kit.web import UoW, runtime
from siyu.payments import service
from siyu.payments.api import day_bounds
from siyu.payments.gateways import sandbox as sandbox_gw
from siyu.payments.models import GatewayNotification
from siyu.payments.schemas import WechatConfigIn
from siyu.staff.access import StaffPrincipal, require
from siyu.web import i18n_payments  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import attempt, check_origin, error_flash, field_errors, first_error, query_url
from siyu.web.page import console_page, flash
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

audit.describe(actions={"payments.gateway.update": "修改支付设置"}, objects={"payment_gateway": "支付渠道"})

PAGE_SIZE = 20
STATUSES = {"pending": "待支付", "succeeded": "支付成功", "failed": "支付失败", "closed": "已关闭"}
STATUS_COLORS = {"pending": "orange", "succeeded": "green", "failed": "red", "closed": "gray"}
REFUND_STATUSES = {"pending": "退款中", "succeeded": "退款成功", "failed": "退款失败"}
REFUND_COLORS = {"pending": "orange", "succeeded": "green", "failed": "red"}
GATEWAYS = {"sandbox": "沙箱支付", "wechat": "微信支付"}
CHANNELS = {"sandbox": "沙箱收银台", "jsapi": "JSAPI（小程序 / 公众号）", "h5": "H5", "native": "Native 扫码"}
OUTCOMES = {"processed": "已处理", "duplicate": "重复通知", "rejected": "已拒绝", "ignored": "已忽略"}
OUTCOME_COLORS = {"processed": "green", "duplicate": "gray", "rejected": "red", "ignored": "orange"}
CAUSES = {
    "created": "创建支付单", "notification": "渠道通知", "query": "主动查询", "timeout": "超时关闭", "user_cancel": "用户取消",
    "superseded": "改用其他支付方式", "staff": "员工操作",
}
SANDBOX_STATES = {"NOTPAY": "待支付", "SUCCESS": "支付成功", "PAYERROR": "支付失败", "CLOSED": "已关闭", "REFUND": "已退款"}
WECHAT_FIELD_MESSAGES = {
    "mchid": "商户号为 6–20 位数字",
    "appid": "AppID 格式不正确",
    "merchant_serial_no": "证书序列号应为十六进制字符",
    "private_key_pem": "API 私钥无法解析，请粘贴 apiclient_key.pem 的完整内容",
    "apiv3_key": "APIv3 密钥应为 32 个字符",
    "add_platform_certificates": "平台证书无法解析，请粘贴完整的 PEM 证书",
    "remove_platform_certificates": "要移除的证书序列号无效",
    "public_key_id": "公钥 ID 应以 PUB_KEY_ID_ 开头",
    "public_key_pem": "微信支付公钥无法解析，请粘贴完整的 PEM 公钥",
    "channels": "支付方式无效",
}


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


# -- payments list and detail ---------------------------------------------------------------------


@router.get("/admin/payments")
async def payment_list(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("finance.read")],
                       q: Annotated[str, Query(max_length=100)] = "",
                       status: Annotated[str, Query(max_length=20)] = "",
                       gateway: Annotated[str, Query(max_length=20)] = "",
                       date_from: Annotated[str, Query(max_length=10)] = "",
                       date_to: Annotated[str, Query(max_length=10)] = "",
                       page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    q = q.strip().replace("\x00", "")
    status = status if status in STATUSES else ""
    gateway = gateway if gateway in GATEWAYS else ""
    d_from, d_to = _day(date_from), _day(date_to)
    lo, hi = day_bounds(me.scope, d_from, d_to)
    rows, total = await service.list_payments(session, me.scope, status=status or None, gateway=gateway or None,
                                              q=q or None, created_from=lo, created_to=hi,
                                              offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    filtered = bool(q or status or gateway or d_from or d_to)
    return console_page(request, me, "console/payments/list.html", {
        "title": _("支付记录"), "items": rows, "total": total, "page": page, "page_size": PAGE_SIZE,
        "pages": max(1, math.ceil(total / PAGE_SIZE)),
        "base_url": query_url("/admin/payments", q=q, status=status, gateway=gateway,
                              date_from=d_from.isoformat() if d_from else "", date_to=d_to.isoformat() if d_to else ""),
        "q": q, "status": status, "gateway": gateway, "date_from": d_from.isoformat() if d_from else "",
        "date_to": d_to.isoformat() if d_to else "", "filtered": filtered,
        "statuses": STATUSES, "status_colors": STATUS_COLORS, "gateways": GATEWAYS, "channels": CHANNELS,
        "can_settings": me.can("settings.write"),
    })


@router.get("/admin/payments/notifications")
async def notification_list(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("finance.read")],
                            outcome: Annotated[str, Query(max_length=20)] = "",
                            gateway: Annotated[str, Query(max_length=20)] = "",
                            reference: Annotated[str, Query(max_length=64)] = "",
                            page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    outcome = outcome if outcome in OUTCOMES else ""
    gateway = gateway if gateway in GATEWAYS else ""
    reference = reference.strip().replace("\x00", "")
    rows, total = await service.list_notifications(session, me.scope, gateway=gateway or None, outcome=outcome or None,
                                                   reference=reference or None, offset=(page - 1) * PAGE_SIZE,
                                                   limit=PAGE_SIZE)
    return console_page(request, me, "console/payments/notifications.html", {
        "title": _("支付通知日志"), "items": [_note_row(n) for n in rows], "total": total, "page": page,
        "page_size": PAGE_SIZE, "base_url": query_url("/admin/payments/notifications", outcome=outcome, gateway=gateway,
                                                      reference=reference),
        "outcome": outcome, "gateway": gateway, "reference": reference, "filtered": bool(outcome or gateway or reference),
        "outcomes": OUTCOMES, "outcome_colors": OUTCOME_COLORS, "gateways": GATEWAYS,
    })


def _note_row(n: GatewayNotification) -> dict[str, Any]:
    return {"n": n, "summary": service.notification_summary(n)}


# -- settings -----------------------------------------------------------------------------------------


async def _settings_page(request: Request, session: Any, me: StaffPrincipal, *, values: dict[str, Any] | None = None,
                         errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    settings = await service.gateway_settings(session, me.scope)
    wechat = settings["wechat"]
    current = {"mchid": wechat["mchid"] or "", "appid": wechat["appid"] or "",
               "merchant_serial_no": wechat["merchant_serial_no"] or "", "public_key_id": wechat["public_key_id"] or "",
               "channels": wechat["channels"], "enabled": wechat["enabled"]}
    current.update(values or {})
    ctx: dict[str, Any] = {"title": _("支付设置"), "sandbox": settings["sandbox"], "wechat": wechat, "values": current,
                           "errors": errors or {}, "channels": {k: v for k, v in CHANNELS.items() if k != "sandbox"}}
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/payments/settings.html", ctx, status_code=status_code)


@router.get("/admin/payments/settings")
async def settings_page(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("settings.write")]) -> Response:
    return await _settings_page(request, session, me)


@router.post("/admin/payments/settings/sandbox")
async def settings_sandbox(session: UoW, me: Annotated[StaffPrincipal, require("settings.write")],
                           enabled: Annotated[str, Form(max_length=5)] = "") -> Response:
    on = enabled in ("1", "on", "true")
    await service.set_sandbox_enabled(session, me.scope, on)
    return flash(RedirectResponse("/admin/payments/settings", status_code=303),
                 _("已启用沙箱支付") if on else _("已停用沙箱支付"))


@router.post("/admin/payments/settings/wechat")
async def settings_wechat(request: Request, session: UoW, me: Annotated[StaffPrincipal, require("settings.write")],
                          enabled: Annotated[str, Form(max_length=5)] = "",
                          mchid: Annotated[str, Form(max_length=40)] = "",
                          appid: Annotated[str, Form(max_length=60)] = "",
                          merchant_serial_no: Annotated[str, Form(max_length=80)] = "",
                          private_key_pem: Annotated[str, Form(max_length=12000)] = "",
                          apiv3_key: Annotated[str, Form(max_length=64)] = "",
                          add_platform_certificates: Annotated[str, Form(max_length=40000)] = "",
                          remove_platform_certificates: Annotated[list[str] | None, Form()] = None,
                          public_key_id: Annotated[str, Form(max_length=120)] = "",
                          public_key_pem: Annotated[str, Form(max_length=12000)] = "",
                          channels: Annotated[list[str] | None, Form()] = None) -> Response:
    values: dict[str, Any] = {"mchid": mchid.strip(), "appid": appid.strip(), "merchant_serial_no": merchant_serial_no.strip(),
                              "public_key_id": public_key_id.strip(), "channels": channels or [],
                              "enabled": enabled in ("1", "on", "true")}
    data: dict[str, Any] = {"enabled": values["enabled"], "mchid": values["mchid"] or None, "appid": values["appid"] or None,
                            "merchant_serial_no": values["merchant_serial_no"] or None,
                            "public_key_id": values["public_key_id"], "channels": values["channels"]}
    if private_key_pem.strip():
        data["private_key_pem"] = private_key_pem.strip()
    if apiv3_key.strip():
        data["apiv3_key"] = apiv3_key.strip()
    if add_platform_certificates.strip():
        data["add_platform_certificates"] = [add_platform_certificates]
    if remove_platform_certificates:
        data["remove_platform_certificates"] = remove_platform_certificates[:10]
    if public_key_pem.strip():
        data["public_key_pem"] = public_key_pem.strip()
    elif not values["public_key_id"]:
        data["public_key_pem"] = ""
    try:
        body = WechatConfigIn(**data)
    except ValidationError as exc:
        errors = field_errors(exc, WECHAT_FIELD_MESSAGES)
        return await _settings_page(request, session, me, values=values, errors=errors, status_code=422,
                                    message=first_error(errors))
    result, err = await attempt(session, lambda: service.update_wechat_config(session, me.scope, body.changes()))
    if err is not None or result is None:
        assert err is not None
        errors = {f["field"]: err.message() for f in err.fields if f.get("field")}
        return await _settings_page(request, session, me, values=values, errors=errors, status_code=err.status,
                                    message=err.message())
    msg = _("已保存微信支付设置") + ("" if result["enabled"] else _("（未启用）"))
    return flash(RedirectResponse("/admin/payments/settings", status_code=303), msg)


@router.post("/admin/payments/settings/wechat/certificates")
async def settings_download_certs(request: Request, session: UoW,
                                  me: Annotated[StaffPrincipal, require("settings.write")]) -> Response:
    result, err = await attempt(session, lambda: service.refresh_wechat_certificates(session, me.scope))
    if err is not None or result is None:
        assert err is not None
        return flash(RedirectResponse("/admin/payments/settings", status_code=303), err.message(), "error")
    n = len(result["platform_certificates"])
    return flash(RedirectResponse("/admin/payments/settings", status_code=303),
                 _("已下载平台证书，当前共 %(n)s 张") % {"n": n})


@router.get("/admin/payments/{payment_id}")
async def payment_page(payment_id: PathId, request: Request, session: UoW,
                       me: Annotated[StaffPrincipal, require("finance.read")]) -> Response:
    d = await service.payment_detail(session, me.scope, payment_id)
    p = d.payment
    timeline: list[dict[str, Any]] = []
    for t in d.transitions:
        timeline.append({"at": t.created_at, "kind": "transition", "title": STATUSES.get(t.to_status, t.to_status),
                         "cause": CAUSES.get(t.cause, t.cause), "status": t.to_status})
    for r in d.refunds:
        timeline.append({"at": r.created_at, "kind": "refund", "title": _("申请退款"), "refund": r})
        if r.succeeded_at:
            timeline.append({"at": r.succeeded_at, "kind": "refund_done", "title": _("退款成功"), "refund": r})
    for n in d.notifications:
        timeline.append({"at": n.received_at, "kind": "notification", "title": _("收到支付通知"), "note": n})
    timeline.sort(key=lambda e: e["at"])
    return console_page(request, me, "console/payments/detail.html", {
        "title": _("支付单 %(no)s") % {"no": p.out_trade_no}, "p": p, "refunds": d.refunds, "notifications": d.notifications,
        "timeline": timeline, "statuses": STATUSES, "status_colors": STATUS_COLORS, "refund_statuses": REFUND_STATUSES,
        "refund_colors": REFUND_COLORS, "gateways": GATEWAYS, "channels": CHANNELS, "outcomes": OUTCOMES,
        "outcome_colors": OUTCOME_COLORS, "causes": CAUSES, "refundable": p.amount_fen - p.refunded_fen,
    })


# -- the sandbox cashier ------------------------------------------------------------------------------


def _cashier(request: Request, row: Any, *, error: str = "", status_code: int = 200) -> HTMLResponse:
    key = sandbox_gw.sandbox_key(runtime(request).secret_key)
    resp = render(request, "payments/sandbox_pay.html", {
        "o": row, "token": sandbox_gw.pay_token(key, row.out_trade_no), "state": SANDBOX_STATES.get(row.status, row.status),
        "error": error, "return_url": row.return_url,
    }, status_code=status_code)
    resp.headers["Cache-Control"] = "no-store"
    # Not "no-referrer": browsers then send "Origin: null" on the form post, which the
    # Origin check must refuse. "same-origin" still keeps the pay URL from other sites.
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


@router.get("/pay/sandbox/{out_trade_no}")
async def sandbox_pay_page(out_trade_no: Annotated[str, Path(max_length=32)], request: Request, session: UoW) -> Response:
    row = await sandbox_gw.pay_page_order(session, out_trade_no)
    return _cashier(request, row)


@router.post("/pay/sandbox/{out_trade_no}")
async def sandbox_pay_submit(out_trade_no: Annotated[str, Path(max_length=32)], request: Request, session: UoW,
                             outcome: Annotated[str, Form(max_length=10)] = "",
                             token: Annotated[str, Form(max_length=80)] = "") -> Response:
    check_origin(request)
    key = sandbox_gw.sandbox_key(runtime(request).secret_key)
    if not token or not constant_time_equals(token, sandbox_gw.pay_token(key, out_trade_no)):
        raise Forbidden("csrf_failed", "页面已过期，请刷新后重试", "The page has expired; reload and try again")
    row, err = await attempt(session, lambda: sandbox_gw.choose_outcome(session, out_trade_no, outcome))
    if err is not None or row is None:
        assert isinstance(err, DomainError)
        if err.status == 404:
            raise err
        current = await sandbox_gw.pay_page_order(session, out_trade_no)
        return _cashier(request, current, error=err.message(), status_code=err.status)
    return RedirectResponse(f"/pay/sandbox/{out_trade_no}", status_code=303)



audit.describe(actions={"payments.gateway.update": "修改支付设置"}, objects={"payment_gateway": "支付渠道"})
