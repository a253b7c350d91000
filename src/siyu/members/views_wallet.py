"""Pages of stored value (储值).

Console (``/admin/members/wallet``): the recharge packages (new, edit, take off sale, delete)
and the settings (recharges on or off, custom amounts and their range, the spending ratio,
principal refunds on or off); 充值记录 (recharges with their status); 余额退款 (the requests,
one request with the gateway refunds it made, approve and reject with a reason); and the
staff adjustment posted from a member's page (``/admin/members/{id}/wallet/adjust``).
Reading needs ``members.read``; every change ``members.write``.

Storefront (``/m/{shop}/member/wallet``): the balance (principal and bonus), 充值 with the
packages and a custom amount (→ the sandbox cashier → a page that waits for the credit),
the statement, and the principal refund request.

Same conventions as the orders pages: plain forms carrying ``_csrf``, a 303 redirect with a
flash message after a successful post, the page again with its error and a 4xx status
otherwise; every service call runs in a savepoint (:func:`attempt`). Recharging is
idempotent: the page carries a random key made when it was rendered, so a double tap answers
with the recharge the first tap made.
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit.context import current_language
from siyu.kit.errors import DomainError
from siyu.kit.i18n import gettext as _
from siyu.kit.money import yuan
from siyu.kit.security import mask_phone
from siyu.kit.types import PathId
from siyu.kit.web import UoW, client_ip
from siyu.members import wallet
from siyu.members.models import Recharge
from siyu.payments import service as payments_service
from siyu.staff.access import StaffPrincipal, require
from siyu.web import i18n_members_wallet  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import attempt, error_flash, query_url, safe_next
from siyu.web.page import console_page, flash, redirect, store_page

router = APIRouter(include_in_schema=False)

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]
FormText = Annotated[str, Form(max_length=600)]

BASE = "/admin/members/wallet"
PAGE_SIZE = 20
HISTORY_SIZE = 20
#: The recharge page re-reads itself every 2 s this many times while a payment result is on its way.
MAX_POLLS = 30
RECHARGE_COLORS = {"pending_payment": "orange", "paid": "green", "closed": "gray"}
REFUND_COLORS = {"pending": "orange", "refunding": "blue", "refunded": "green", "rejected": "gray", "failed": "red"}
PART_STATUS = {"pending": "退款中", "succeeded": "退款成功", "failed": "退款失败"}
BUCKET_LABELS = {"principal": "本金", "bonus": "赠送金"}
PACKAGE_FIELD_MESSAGES = {
    "name": "请填写套餐名称（1–40 个字）",
    "pay": "请填写支付金额（0.01–100000 元）",
    "bonus": "赠送金额需为 0–100000 元",
    "sort": "排序需为 -9999–9999 的整数",
}
SETTING_FIELD_MESSAGES = {
    "custom_min": "请填写最低充值金额（0.01–100000 元）",
    "custom_max": "请填写最高充值金额（0.01–100000 元），且不低于最低金额",
    "bonus_share": "赠送金抵扣比例需为 0–100 的整数",
}
_YUAN = re.compile(r"^-?\d{1,8}(?:\.\d{1,2})?$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


# -- helpers --------------------------------------------------------------------------------------------------


def _english() -> bool:
    return current_language().startswith("en")


def parse_fen(text: str, *, signed: bool = False) -> int | None:
    """``"12.5"`` → 1250 (``"-3"`` → -300 when ``signed``); None for anything else."""
    t = (text or "").strip().replace(",", "").removeprefix("¥").removeprefix("￥").strip()
    if t.startswith("+"):
        t = t[1:]
    if not _YUAN.match(t) or (t.startswith("-") and not signed):
        return None
    negative = t.startswith("-")
    whole, _sep, frac = t.lstrip("-").partition(".")
    fen = int(whole) * 100 + int((frac + "00")[:2])
    return -fen if negative else fen


def _fen_text(fen: int | None) -> str:
    if fen is None:
        return ""
    text = yuan(fen)
    return text[:-3] if text.endswith(".00") else text


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


async def _names(session: AsyncSession, me: StaffPrincipal, ids: list[int]) -> dict[int, tuple[str, str]]:
    """customer id → (nickname, masked phone)."""
    out: dict[int, tuple[str, str]] = {}
    for cid in sorted(set(ids)):
        try:
            c = await customers_service.get_customer(session, me.scope, cid)
        except DomainError:
            out[cid] = (f"#{cid}", "")
            continue
        out[cid] = (c.nickname or f"#{cid}", mask_phone(c.phone) or "")
    return out


async def _write_request(request: Request) -> None:
    """A GET that writes (opening a payment): ask the unit of work for a write transaction."""
    request.state.needs_write = True


# -- console: packages and settings ------------------------------------------------------------------------------


def _settings_values(s: wallet.WalletSettings) -> dict[str, Any]:
    return {"recharge_enabled": s.recharge_enabled, "custom_enabled": s.custom_enabled,
            "custom_min": _fen_text(s.custom_min_fen), "custom_max": _fen_text(s.custom_max_fen),
            "bonus_share": str(s.bonus_share_bp // 100) if s.bonus_share_bp % 100 == 0 else f"{s.bonus_share_bp / 100:g}",
            "refund_enabled": s.refund_enabled}


async def _home(request: Request, session: AsyncSession, me: StaffPrincipal, *, values: dict[str, Any] | None = None,
                errors: dict[str, str] | None = None, message: str = "", status_code: int = 200) -> HTMLResponse:
    scope = me.scope
    settings = await wallet.wallet_settings(session, scope)
    packages = await wallet.list_packages(session, scope)
    _recharges, paid = await wallet.list_recharges(session, scope, status="paid", limit=0)
    _refunds, pending = await wallet.list_refunds(session, scope, status="pending", limit=0)
    shown = _settings_values(settings)
    shown.update(values or {})
    ctx: dict[str, Any] = {
        "title": _("储值"), "packages": packages, "settings": settings, "values": shown, "errors": errors or {},
        "paid_count": paid, "pending_refunds": pending, "can_write": me.can("members.write"),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/wallet_home.html", ctx, status_code=status_code)


@router.get(BASE)
async def wallet_home(request: Request, session: UoW, me: Reader) -> Response:
    return await _home(request, session, me)


@router.post(BASE + "/settings")
async def settings_save(request: Request, session: UoW, me: Writer, recharge_enabled: FormText = "",
                        custom_enabled: FormText = "", custom_min: FormText = "", custom_max: FormText = "",
                        bonus_share: FormText = "", refund_enabled: FormText = "") -> Response:
    values: dict[str, Any] = {"recharge_enabled": bool(recharge_enabled), "custom_enabled": bool(custom_enabled),
                              "custom_min": custom_min.strip(), "custom_max": custom_max.strip(),
                              "bonus_share": bonus_share.strip(), "refund_enabled": bool(refund_enabled)}
    errors: dict[str, str] = {}
    lo, hi = parse_fen(custom_min), parse_fen(custom_max)
    if lo is None or not 1 <= lo <= wallet.MAX_AMOUNT_FEN:
        errors["custom_min"] = _(SETTING_FIELD_MESSAGES["custom_min"])
    if hi is None or not 1 <= hi <= wallet.MAX_AMOUNT_FEN or (lo is not None and hi < lo):
        errors["custom_max"] = _(SETTING_FIELD_MESSAGES["custom_max"])
    share = bonus_share.strip().rstrip("%").strip()
    if not _digits(share) or len(share) > 3 or int(share) > 100:
        errors["bonus_share"] = _(SETTING_FIELD_MESSAGES["bonus_share"])
    if errors:
        return await _home(request, session, me, values=values, errors=errors, message=next(iter(errors.values())),
                           status_code=422)
    _s, err = await attempt(session, lambda: wallet.update_settings(
        session, me.scope, recharge_enabled=values["recharge_enabled"], custom_enabled=values["custom_enabled"],
        custom_min_fen=lo, custom_max_fen=hi, bonus_share_bp=int(share) * 100, refund_enabled=values["refund_enabled"]))
    if err is not None:
        return await _home(request, session, me, values=values, message=err.message(), status_code=err.status)
    return flash(RedirectResponse(BASE, status_code=303), _("已保存储值设置"))


def _package_form(request: Request, me: StaffPrincipal, *, package: Any = None, values: dict[str, Any] | None = None,
                  errors: dict[str, str] | None = None, message: str = "", status_code: int = 200) -> HTMLResponse:
    if values is None:
        values = ({"name": package.name, "pay": _fen_text(package.pay_fen), "bonus": _fen_text(package.bonus_fen),
                   "sort": str(package.sort), "on_sale": package.on_sale} if package is not None
                  else {"name": "", "pay": "", "bonus": "0", "sort": "0", "on_sale": True})
    ctx: dict[str, Any] = {"title": _("编辑储值套餐") if package is not None else _("新建储值套餐"), "package": package,
                           "values": values, "errors": errors or {}, "can_write": me.can("members.write")}
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/wallet_package.html", ctx, status_code=status_code)


def _package_values(name: str, pay: str, bonus: str, sort: str, on_sale: str) -> tuple[dict[str, Any], dict[str, Any],
                                                                                       dict[str, str]]:
    clean_name, raw_sort = " ".join(name.split()), sort.strip() or "0"
    values: dict[str, Any] = {"name": clean_name, "pay": pay.strip(), "bonus": bonus.strip() or "0", "sort": raw_sort,
                              "on_sale": bool(on_sale)}
    errors: dict[str, str] = {}
    pay_fen, bonus_fen = parse_fen(pay), parse_fen(bonus.strip() or "0")
    if not 1 <= len(clean_name) <= 40:
        errors["name"] = _(PACKAGE_FIELD_MESSAGES["name"])
    if pay_fen is None or not 1 <= pay_fen <= wallet.MAX_AMOUNT_FEN:
        errors["pay"] = _(PACKAGE_FIELD_MESSAGES["pay"])
    if bonus_fen is None or not 0 <= bonus_fen <= wallet.MAX_AMOUNT_FEN:
        errors["bonus"] = _(PACKAGE_FIELD_MESSAGES["bonus"])
    sort_ok = _digits(raw_sort.lstrip("-")) and len(raw_sort) <= 5 and -9999 <= int(raw_sort) <= 9999
    if not sort_ok:
        errors["sort"] = _(PACKAGE_FIELD_MESSAGES["sort"])
    fields = {"name": clean_name, "pay_fen": pay_fen, "bonus_fen": bonus_fen,
              "sort": int(raw_sort) if sort_ok else 0, "on_sale": values["on_sale"]}
    return values, fields, errors


def _package_errors(err: DomainError) -> dict[str, str]:
    names = {"name": "name", "pay_fen": "pay", "bonus_fen": "bonus", "sort": "sort"}
    return {names[f["field"]]: err.message() for f in err.fields if f.get("field") in names}


@router.get(BASE + "/packages/new")
async def package_new(request: Request, me: Writer) -> Response:
    return _package_form(request, me)


@router.post(BASE + "/packages/new")
async def package_create(request: Request, session: UoW, me: Writer, name: FormText = "", pay: FormText = "",
                         bonus: FormText = "", sort: FormText = "", on_sale: FormText = "") -> Response:
    values, fields, errors = _package_values(name, pay, bonus, sort, on_sale)
    if errors:
        return _package_form(request, me, values=values, errors=errors, message=next(iter(errors.values())),
                             status_code=422)
    _p, err = await attempt(session, lambda: wallet.create_package(session, me.scope, **fields))
    if err is not None:
        return _package_form(request, me, values=values, errors=_package_errors(err), message=err.message(),
                             status_code=err.status)
    return flash(RedirectResponse(BASE, status_code=303), _("已新建储值套餐"))


@router.get(BASE + "/packages/{package_id:int}")
async def package_edit(package_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    return _package_form(request, me, package=await wallet.get_package(session, me.scope, package_id))


@router.post(BASE + "/packages/{package_id:int}")
async def package_save(package_id: PathId, request: Request, session: UoW, me: Writer, name: FormText = "",
                       pay: FormText = "", bonus: FormText = "", sort: FormText = "", on_sale: FormText = "") -> Response:
    package = await wallet.get_package(session, me.scope, package_id)
    values, fields, errors = _package_values(name, pay, bonus, sort, on_sale)
    if errors:
        return _package_form(request, me, package=package, values=values, errors=errors,
                             message=next(iter(errors.values())), status_code=422)
    _p, err = await attempt(session, lambda: wallet.update_package(session, me.scope, package_id, **fields))
    if err is not None:
        return _package_form(request, me, package=package, values=values, errors=_package_errors(err),
                             message=err.message(), status_code=err.status)
    return flash(RedirectResponse(BASE, status_code=303), _("已保存储值套餐"))


@router.post(BASE + "/packages/{package_id:int}/delete")
async def package_delete(package_id: PathId, session: UoW, me: Writer) -> Response:
    _r, err = await attempt(session, lambda: wallet.delete_package(session, me.scope, package_id))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(RedirectResponse(BASE, status_code=303), err.message(), "error")
    return flash(RedirectResponse(BASE, status_code=303), _("已删除储值套餐"))


# -- console: recharges ---------------------------------------------------------------------------------------------


async def _customer_filter(session: AsyncSession, me: StaffPrincipal, text: str) -> tuple[int | None, bool]:
    """A customer typed into the filter (an id, a phone or part of a nickname) → (id, found)."""
    text = "".join(ch for ch in text if ch.isprintable()).strip()[:40]
    if not text:
        return None, True
    if _digits(text) and len(text) < 11:
        return int(text), True
    rows, _total = await customers_service.list_customers(session, me.scope, q=text, limit=1)
    return (rows[0].id, True) if rows else (None, False)


@router.get(BASE + "/recharges")
async def recharges_page(request: Request, session: UoW, me: Reader,
                         status: Annotated[str, Query(max_length=20)] = "",
                         customer: Annotated[str, Query(max_length=40)] = "",
                         page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    status = status if status in wallet.RECHARGE_STATUS_ZH else ""
    cid, found = await _customer_filter(session, me, customer)
    rows: list[Recharge] = []
    total = 0
    if found:
        rows, total = await wallet.list_recharges(session, me.scope, customer_id=cid, status=status or None,
                                                  offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    names = await _names(session, me, [r.customer_id for r in rows])
    return console_page(request, me, "console/members/wallet_recharges.html", {
        "title": _("充值记录"), "rows": rows, "names": names, "total": total, "page": page, "page_size": PAGE_SIZE,
        "pages": max(1, math.ceil(total / PAGE_SIZE)), "status": status, "customer": customer.strip()[:40],
        "statuses": wallet.RECHARGE_STATUS_ZH, "colors": RECHARGE_COLORS,
        "base_url": query_url(BASE + "/recharges", status=status, customer=customer.strip()[:40]),
    })


# -- console: principal refunds -----------------------------------------------------------------------------------


@router.get(BASE + "/refunds")
async def refunds_page(request: Request, session: UoW, me: Reader,
                       status: Annotated[str, Query(max_length=20)] = "",
                       page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    status = status if status in wallet.REFUND_STATUS_ZH else ""
    rows, total = await wallet.list_refunds(session, me.scope, status=status or None, offset=(page - 1) * PAGE_SIZE,
                                            limit=PAGE_SIZE)
    counts = {code: (await wallet.list_refunds(session, me.scope, status=code or None, limit=0))[1]
              for code in ("", *wallet.REFUND_STATUS_ZH)}
    names = await _names(session, me, [r.customer_id for r in rows])
    return console_page(request, me, "console/members/wallet_refunds.html", {
        "title": _("余额退款"), "rows": rows, "names": names, "total": total, "page": page, "page_size": PAGE_SIZE,
        "status": status, "statuses": wallet.REFUND_STATUS_ZH, "colors": REFUND_COLORS, "counts": counts,
        "base_url": query_url(BASE + "/refunds", status=status),
    })


async def _refund_page(request: Request, session: AsyncSession, me: StaffPrincipal, refund_id: int, *,
                       reject_reason: str = "", error: str = "", status_code: int = 200) -> HTMLResponse:
    r = await wallet.get_refund(session, me.scope, refund_id)
    parts = await wallet.refund_parts(session, me.scope, r.id)
    recharges = {p.recharge_id: await wallet.get_recharge(session, me.scope, p.recharge_id) for p in parts}
    names = await _names(session, me, [r.customer_id])
    ctx: dict[str, Any] = {
        "title": _("余额退款 %(no)s") % {"no": r.refund_no}, "r": r, "parts": parts, "recharges": recharges,
        "name": names[r.customer_id], "balance": await wallet.balances(session, me.scope, r.customer_id),
        "refundable": await wallet.refundable_fen(session, me.scope, r.customer_id),
        "statuses": wallet.REFUND_STATUS_ZH, "colors": REFUND_COLORS, "part_statuses": PART_STATUS,
        "can_write": me.can("members.write"), "reject_reason": reject_reason, "reject_error": error,
    }
    if error:
        ctx["flash"] = error_flash(error)
    return console_page(request, me, "console/members/wallet_refund.html", ctx, status_code=status_code)


@router.get(BASE + "/refunds/{refund_id:int}")
async def refund_page(refund_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    return await _refund_page(request, session, me, refund_id)


@router.post(BASE + "/refunds/{refund_id:int}/approve")
async def refund_approve(refund_id: PathId, session: UoW, me: Writer) -> Response:
    back = RedirectResponse(f"{BASE}/refunds/{refund_id}", status_code=303)
    _r, err = await attempt(session, lambda: wallet.approve_refund(session, me.scope, refund_id))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(back, err.message(), "error")
    return flash(back, _("已同意退款，本金将原路退回"))


@router.post(BASE + "/refunds/{refund_id:int}/reject")
async def refund_reject(refund_id: PathId, request: Request, session: UoW, me: Writer, reason: FormText = "") -> Response:
    text = " ".join(reason.split())
    if not text:
        return await _refund_page(request, session, me, refund_id, error=_("请填写拒绝原因"), status_code=422)
    _r, err = await attempt(session, lambda: wallet.reject_refund(session, me.scope, refund_id, text))
    if err is not None:
        if err.status == 404:
            raise err
        return await _refund_page(request, session, me, refund_id, reject_reason=text, error=err.message(),
                                  status_code=err.status)
    return flash(RedirectResponse(f"{BASE}/refunds/{refund_id}", status_code=303), _("已拒绝退款申请"))


# -- console: a member's adjustment ---------------------------------------------------------------------------------


@router.post("/admin/members/{customer_id:int}/wallet/adjust")
async def adjust(customer_id: PathId, session: UoW, me: Writer, amount: FormText = "", reason: FormText = "",
                 bucket: FormText = "bonus", direction: FormText = "", token: FormText = "",
                 next: FormText = "") -> Response:
    """The 调整余额 dialog of a member's page: a signed amount in yuan (or a positive one with
    ``direction=subtract``), a bucket and a reason; back to ``next`` with the outcome."""
    await customers_service.get_customer(session, me.scope, customer_id)  # another tenant's: 404
    target = safe_next(next.strip(), f"/admin/members/{customer_id}")
    if not target.startswith("/admin/members/"):
        target = f"/admin/members/{customer_id}"
    back = RedirectResponse(target, status_code=303)
    fen = parse_fen(amount, signed=True)
    if fen is None or fen == 0 or abs(fen) > wallet.MAX_AMOUNT_FEN:
        return flash(back, _("请填写调整金额（非 0，最多两位小数，最多 100000 元）"), "error")
    if direction.strip() == "subtract" and fen > 0:
        fen = -fen
    if bucket not in wallet.BUCKETS:
        return flash(back, _("请选择调整本金或赠送金"), "error")
    if not " ".join(reason.split()):
        return flash(back, _("请填写调整原因"), "error")
    tok = token.strip() if _TOKEN.match(token.strip()) else None
    posted, err = await attempt(session, lambda: wallet.adjust(session, me.scope, customer_id, fen, bucket=bucket,
                                                                reason=reason, token=tok))
    if err is not None:
        return flash(back, err.message(), "error")
    assert posted is not None
    if not posted.created:
        return flash(back, _("这次调整已经提交过了"))
    words = _("已为%(bucket)s增加 %(amount)s") if fen > 0 else _("已从%(bucket)s扣减 %(amount)s")
    return flash(back, words % {"bucket": _(BUCKET_LABELS[bucket]), "amount": f"¥{yuan(abs(fen))}"})


# -- storefront -------------------------------------------------------------------------------------------------------




def _cid(shopper: ShopperSession) -> int:
    assert shopper.customer is not None  # CurrentShopper guarantees it
    return shopper.customer.id




def entry_rows(entries: list[wallet.WalletEntry]) -> list[dict[str, Any]]:
    """Statement rows for a page: label, signed amounts, the balance after, the order it names."""
    en = _english()
    return [{"id": e.id, "at": e.created_at, "label": e.label(en), "total_fen": e.total_fen,
             "principal_fen": e.principal_fen, "bonus_fen": e.bonus_fen, "after_fen": e.balance_after_fen,
             "order_id": e.order_id, "split": bool(e.principal_fen and e.bonus_fen)} for e in entries]


async def _wallet_page(request: Request, session: AsyncSession, me: ShopperSession, *, before: int | None = None,
                       amount: str = "", error: str = "", status_code: int = 200) -> HTMLResponse:
    scope, cid = me.shop.scope, _cid(me)
    s = await wallet.summary(session, scope, cid, limit=HISTORY_SIZE)
    entries = s.entries if before is None else await wallet.history(session, scope, cid, limit=HISTORY_SIZE,
                                                                     before_id=before)
    settings = await wallet.wallet_settings(session, scope)
    _pending, _count = await wallet.list_recharges(session, scope, customer_id=cid, status="pending_payment",
                                                          limit=1)
    return store_page(request, me, "store/members/wallet_home.html", {
        "summary": s, "entries": entry_rows(entries), "more_url": (
            f"/m/{scope.code}/member/wallet?before={entries[-1].id}#history" if len(entries) == HISTORY_SIZE else ""),
        "packages": await wallet.list_packages(session, scope, on_sale_only=True), "settings": settings,
        "key": secrets.token_urlsafe(18), "amount": amount, "error": error, "older": before is not None,
        "custom_range": (_fen_text(settings.custom_min_fen), _fen_text(settings.custom_max_fen)),
        "pending_recharge": _pending[0] if _pending and wallet.recharge_payable(_pending[0]) else None,
    }, status_code=status_code)


@router.get("/m/{shop}/member/wallet")
async def store_wallet(request: Request, session: UoW, me: CurrentShopper,
                       before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None) -> Response:
    return await _wallet_page(request, session, me, before=before)


async def _open_payment(request: Request, session: AsyncSession, me: ShopperSession, recharge_id: int) -> Response:
    """Open (or reuse) the recharge's payment and go to the gateway's pay page."""
    scope, cid = me.shop.scope, _cid(me)
    base = f"/m/{scope.code}/member/wallet"
    here = f"{base}/recharges/{recharge_id}"
    channels = await payments_service.available_channels(session, scope)
    if "sandbox" in channels:
        channel, ip = "sandbox", None
    elif "h5" in channels:
        channel, ip = "h5", client_ip(request)
    else:
        return redirect(here, _("本店暂未开通在线支付，请联系客服"), "error")
    started, err = await attempt(session, lambda: wallet.pay_recharge(
        session, scope, cid, recharge_id, channel=channel, return_url=f"{here}?paid=1", payer_client_ip=ip))
    if err is not None:
        if err.status == 404:
            raise err
        return redirect(here, err.message(), "error")
    assert started is not None
    if not started.pay_url:
        return redirect(here, _("当前支付方式需要在微信中完成"), "error")
    return RedirectResponse(started.pay_url, status_code=303)


@router.post("/m/{shop}/member/wallet/recharge")
async def store_recharge(request: Request, session: UoW, me: CurrentShopper, package_id: FormText = "",
                         amount: FormText = "", key: FormText = "") -> Response:
    """充值: a package (``package_id``) or a custom ``amount`` in yuan → the cashier."""
    scope, cid = me.shop.scope, _cid(me)
    pid = package_id.strip()
    fen: int | None = None
    if not pid:
        fen = parse_fen(amount)
        if fen is None or fen <= 0:
            return await _wallet_page(request, session, me, amount=amount.strip()[:12],
                                      error=_("请输入正确的充值金额（最多两位小数）"), status_code=422)
    elif not _digits(pid) or len(pid) > 18:
        return redirect(f"/m/{scope.code}/member/wallet#recharge", _("请选择充值套餐"), "error")
    idem = key.strip() if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key.strip()) else secrets.token_urlsafe(18)
    made, err = await attempt(session, lambda: wallet.create_recharge(
        session, scope, cid, package_id=int(pid) if pid else None, amount_fen=fen, idempotency_key=idem))
    if err is not None:
        if err.code == "idempotency_key_reused":
            return await _wallet_page(request, session, me, error=_("页面已过期，请重新选择充值金额"), status_code=409)
        return await _wallet_page(request, session, me, amount=amount.strip()[:12] if not pid else "",
                                  error=err.message(), status_code=err.status if err.status < 500 else 409)
    assert made is not None
    if not made.created and not wallet.recharge_payable(made.recharge):
        return redirect(f"/m/{scope.code}/member/wallet/recharges/{made.recharge.id}")
    return await _open_payment(request, session, me, made.recharge.id)


@router.get("/m/{shop}/member/wallet/recharges/{recharge_id:int}")
async def store_recharge_page(recharge_id: PathId, request: Request, session: UoW, me: CurrentShopper,
                              paid: Annotated[str, Query(max_length=2)] = "",
                              n: Annotated[int, Query(ge=0, le=1000)] = 0) -> Response:
    """One recharge: waits (re-reading itself) while the payment result is on its way."""
    scope = me.shop.scope
    r = await wallet.get_recharge(session, scope, recharge_id, customer_id=_cid(me))
    payments = await payments_service.payments_for_source(session, scope, wallet.SOURCE_TYPE, str(r.id))
    latest = max(payments, key=lambda p: p.id, default=None)
    waiting = r.status == "pending_payment" and latest is not None and latest.status in ("pending", "succeeded")
    polling = bool(paid) and waiting and n < MAX_POLLS
    return store_page(request, me, "store/members/wallet_recharge.html", {
        "r": r, "status_label": wallet.RECHARGE_STATUS_ZH.get(r.status, r.status), "payable": wallet.recharge_payable(r),
        "poll_url": f"/m/{scope.code}/member/wallet/recharges/{r.id}?paid=1&n={n + 1}" if polling else "",
        "balance": await wallet.balances(session, scope, _cid(me)),
    })


@router.get("/m/{shop}/member/wallet/recharges/{recharge_id:int}/pay", dependencies=[Depends(_write_request)])
async def store_recharge_pay(recharge_id: PathId, request: Request, session: UoW, me: CurrentShopper) -> Response:
    await wallet.get_recharge(session, me.shop.scope, recharge_id, customer_id=_cid(me))  # another member's: 404
    return await _open_payment(request, session, me, recharge_id)


@router.post("/m/{shop}/member/wallet/recharges/{recharge_id:int}/pay")
async def store_recharge_pay_post(recharge_id: PathId, request: Request, session: UoW, me: CurrentShopper) -> Response:
    await wallet.get_recharge(session, me.shop.scope, recharge_id, customer_id=_cid(me))
    return await _open_payment(request, session, me, recharge_id)


async def _refund_form(request: Request, session: AsyncSession, me: ShopperSession, *, amount: str = "", reason: str = "",
                       error: str = "", status_code: int = 200) -> HTMLResponse:
    scope, cid = me.shop.scope, _cid(me)
    requests, _total = await wallet.list_refunds(session, scope, customer_id=cid, limit=10)
    return store_page(request, me, "store/members/wallet_refund.html", {
        "balance": await wallet.balances(session, scope, cid), "refundable": await wallet.refundable_fen(session, scope, cid),
        "open": await wallet.open_refund(session, scope, cid), "settings": await wallet.wallet_settings(session, scope),
        "requests": requests, "statuses": wallet.REFUND_STATUS_ZH, "amount": amount, "reason": reason, "error": error,
    }, status_code=status_code)


@router.get("/m/{shop}/member/wallet/refund")
async def store_refund(request: Request, session: UoW, me: CurrentShopper) -> Response:
    return await _refund_form(request, session, me)


@router.post("/m/{shop}/member/wallet/refund")
async def store_refund_submit(request: Request, session: UoW, me: CurrentShopper, amount: FormText = "",
                              reason: FormText = "") -> Response:
    scope, cid = me.shop.scope, _cid(me)
    fen: int | None = None
    if amount.strip():
        fen = parse_fen(amount)
        if fen is None or fen <= 0:
            return await _refund_form(request, session, me, amount=amount.strip()[:12], reason=reason[:200],
                                      error=_("请输入正确的退款金额（最多两位小数）"), status_code=422)
    text = " ".join(reason.split())
    if len(text) > wallet.MAX_REASON:
        return await _refund_form(request, session, me, amount=amount.strip()[:12], reason=text[:200],
                                  error=_("原因最多 200 个字"), status_code=422)
    _r, err = await attempt(session, lambda: wallet.request_refund(session, scope, cid, amount_fen=fen, reason=text))
    if err is not None:
        return await _refund_form(request, session, me, amount=amount.strip()[:12], reason=text, error=err.message(),
                                  status_code=err.status if err.status < 500 else 409)
    return redirect(f"/m/{scope.code}/member/wallet/refund", _("退款申请已提交，商家审核后原路退回"))

