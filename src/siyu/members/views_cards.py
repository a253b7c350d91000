"""Pages of paid membership cards and birthday perks.

Console (会员中心 → 付费会员卡 / 生日礼): the plans with their editor, the purchases with
filters and a purchase's page with its refunds and the refund form; the birthday settings
with the levels' own gifts, this month's birthdays and the gifts given, plus 立即发放.
Storefront (``/m/{shop}/member/card``): my card, the plans on sale with buy/renew, my
purchases, a purchase's page that waits for the payment result.

Same conventions as the orders pages: plain forms carrying ``_csrf``, a 303 redirect with a
flash message after a successful post, the page again with its error and a 4xx status
otherwise; service calls run in a savepoint (:func:`attempt`). Nothing here decides an
amount or a status. Reading needs ``members.read``; every change ``members.write``.
Buying is idempotent: the card page carries a random key made when it was rendered, so a
double tap answers with the purchase the first tap made.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit import clock
from siyu.kit.context import current_language
from siyu.kit.errors import DomainError
from siyu.kit.i18n import gettext as _
from siyu.kit.security import mask_phone
from siyu.kit.types import PathId
from siyu.kit.web import UoW, client_ip
from siyu.members import birthday, cards, rewards
from siyu.members.models import MemberCardPlan, MemberCardPurchase
from siyu.payments import service as payments_service
from siyu.staff.access import StaffPrincipal, require
from siyu.web import i18n_members_cards  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import attempt, error_flash, query_url, to_int
from siyu.web.page import console_page, flash, redirect, store_page

router = APIRouter(include_in_schema=False)

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]
FormText = Annotated[str, Form(max_length=600)]

PAGE_SIZE = 20
STORE_PURCHASES = 10
#: The purchase page re-reads itself every 2 s this many times while a payment result is on its way.
MAX_POLLS = 30
BASE = "/admin/members/cards"
STATUS_COLORS = {"pending_payment": "orange", "paid": "green", "closed": "gray", "refunded": "red"}
REFUND_STATUS = {"pending": "退款中", "succeeded": "退款成功", "failed": "退款失败"}
REFUND_MODES = {"full": "全额退款", "prorata": "按未使用天数退款", "amount": "指定金额"}
MODES = {"day": "生日当天", "month": "生日当月（1 日起）"}
PLAN_FIELD_MESSAGES = {
    "name": "请填写会员卡名称（1–40 个字符）",
    "level_id": "请选择会员等级",
    "days": "有效天数需为 1–3660 的整数",
    "price": "请填写正确的售价（0.01–1,000,000 元）",
    "gift_points": "赠送积分需为 0–10000000 的整数",
    "description": "权益说明最多 500 个字符",
    "sort": "排序需为 0–99999 的整数",
}


def _english() -> bool:
    return current_language().startswith("en")


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _fen_text(fen: int | None) -> str:
    if fen is None:
        return ""
    return f"{fen // 100}.{fen % 100:02d}"


def _days_text(td_seconds: int) -> str:
    return str(math.ceil(td_seconds / 86400)) if td_seconds > 0 else "0"


async def _write_request(request: Request) -> None:
    """A GET that writes (starting a payment; the plan editor writing the tenant's default
    levels on first use): ask the unit of work for a write transaction."""
    request.state.needs_write = True


# -- console: plans ----------------------------------------------------------------------------------------


def _tabs_ctx(active: str) -> dict[str, Any]:
    return {"members_tab": active}


@router.get(BASE)
async def plan_list(request: Request, session: UoW, me: Reader) -> Response:
    plans = await cards.list_plans(session, me.scope)
    names = await cards.level_names(session, me.scope)
    counts = await cards.purchase_counts(session, me.scope)
    _rows, pending = await cards.list_purchases(session, me.scope, status="pending_payment", limit=0)
    _rows, paid = await cards.list_purchases(session, me.scope, status="paid", limit=0)
    return console_page(request, me, "console/members/cards_plans.html", {
        "title": _("付费会员卡"), **_tabs_ctx("cards"), "plans": plans, "level_names": names, "counts": counts,
        "can_write": me.can("members.write"), "pending": pending, "paid": paid,
    })


def _plan_state(plan: MemberCardPlan | None) -> dict[str, str]:
    if plan is None:
        return {"name": "", "level_id": "", "days": "365", "price": "", "gift_points": "0", "description": "",
                "on_sale": "1", "sort": "0"}
    return {"name": plan.name, "level_id": str(plan.level_id), "days": str(plan.days), "price": _fen_text(plan.price_fen),
            "gift_points": str(plan.gift_points), "description": plan.description, "on_sale": "1" if plan.on_sale else "",
            "sort": str(plan.sort)}


async def _editor(request: Request, session: AsyncSession, me: StaffPrincipal, *, plan: MemberCardPlan | None,
                  state: dict[str, str], errors: dict[str, str] | None = None, message: str = "",
                  status_code: int = 200) -> HTMLResponse:
    levels = await cards.level_choices(session, me.scope)
    ctx: dict[str, Any] = {
        "title": (_("编辑会员卡") if plan else _("新建会员卡")), **_tabs_ctx("cards"), "plan": plan, "state": state,
        "errors": errors or {}, "can_write": me.can("members.write"),
        "levels": [(str(lv.id), lv.name + (_("（仅付费获得）") if lv.paid_only else "")) for lv in levels],
        "action": f"{BASE}/{plan.id}" if plan else BASE,
        "paid_count": (await cards.purchase_counts(session, me.scope)).get(plan.id, 0) if plan else 0,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/cards_plan_edit.html", ctx, status_code=status_code)


def _parse_plan(state: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    name = " ".join(state["name"].split())
    if not name or len(name) > cards.MAX_NAME:
        errors["name"] = _(PLAN_FIELD_MESSAGES["name"])
    values["name"] = name
    level = to_int(state["level_id"])
    if level is None:
        errors["level_id"] = _(PLAN_FIELD_MESSAGES["level_id"])
    values["level_id"] = level
    for key, lo, hi in (("days", 1, cards.MAX_DAYS), ("gift_points", 0, cards.MAX_GIFT_POINTS),
                        ("sort", 0, cards.MAX_SORT)):
        raw = state[key].strip()
        if _digits(raw) and len(raw) <= 9 and lo <= int(raw) <= hi:
            values[key] = int(raw)
        else:
            errors[key] = _(PLAN_FIELD_MESSAGES[key])
    try:
        price = catalog_service.parse_yuan(state["price"])
        if not 1 <= price <= cards.MAX_PRICE_FEN:
            raise ValueError("out of range")
        values["price_fen"] = price
    except ValueError:
        errors["price"] = _(PLAN_FIELD_MESSAGES["price"])
    description = state["description"].strip()
    if len(description) > cards.MAX_DESCRIPTION:
        errors["description"] = _(PLAN_FIELD_MESSAGES["description"])
    values["description"] = description
    values["on_sale"] = bool(state["on_sale"])
    return values, errors


def _domain_errors(err: DomainError) -> dict[str, str]:
    names = {"price_fen": "price"}
    return {names.get(f["field"], f["field"]): err.message() for f in err.fields if f.get("field")}


def _form_state(name: str, level_id: str, days: str, price: str, gift_points: str, description: str, on_sale: str,
                sort: str) -> dict[str, str]:
    return {"name": name, "level_id": level_id, "days": days, "price": price, "gift_points": gift_points,
            "description": description, "on_sale": on_sale, "sort": sort}


@router.get(BASE + "/new", dependencies=[Depends(_write_request)])
async def plan_new(request: Request, session: UoW, me: Writer) -> Response:
    return await _editor(request, session, me, plan=None, state=_plan_state(None))


@router.post(BASE)
async def plan_create(request: Request, session: UoW, me: Writer, name: FormText = "", level_id: FormText = "",
                      days: FormText = "", price: FormText = "", gift_points: FormText = "", description: FormText = "",
                      on_sale: FormText = "", sort: FormText = "") -> Response:
    state = _form_state(name, level_id, days, price, gift_points, description, on_sale, sort)
    values, errors = _parse_plan(state)
    if errors:
        return await _editor(request, session, me, plan=None, state=state, errors=errors, status_code=422,
                             message=next(iter(errors.values())))
    plan, err = await attempt(session, lambda: cards.create_plan(session, me.scope, cards.PlanData(**values)))
    if err is not None or plan is None:
        assert err is not None
        return await _editor(request, session, me, plan=None, state=state, errors=_domain_errors(err),
                             status_code=err.status, message=err.message())
    return flash(RedirectResponse(BASE, status_code=303), _("已创建会员卡「%(name)s」") % {"name": plan.name})


# -- console: purchases (before /{plan_id}, which would swallow "purchases") --------------------------------


async def _names(session: AsyncSession, me: StaffPrincipal, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for cid in sorted(set(ids)):
        try:
            c = await customers_service.get_customer(session, me.scope, cid)
        except DomainError:
            out[cid] = (f"#{cid}", "")
            continue
        out[cid] = (c.nickname or f"#{cid}", mask_phone(c.phone))
    return out


@router.get(BASE + "/purchases")
async def purchase_list(request: Request, session: UoW, me: Reader,
                        status: Annotated[str, Query(max_length=20)] = "",
                        no: Annotated[str, Query(max_length=40)] = "",
                        plan: Annotated[str, Query(max_length=20)] = "",
                        customer: Annotated[str, Query(max_length=20)] = "",
                        page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    status = status if status in cards.PURCHASE_STATUSES else ""
    no = "".join(ch for ch in no if ch.isascii() and ch.isalnum())[:24]
    plan_id = to_int(plan)
    customer_id = to_int(customer)
    rows, total = await cards.list_purchases(session, me.scope, status=status or None, plan_id=plan_id,
                                             customer_id=customer_id, purchase_no=no or None,
                                             offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    people = await _names(session, me, [p.customer_id for p in rows])
    params = {"no": no, "plan": str(plan_id or ""), "customer": str(customer_id or "")}
    return console_page(request, me, "console/members/cards_purchases.html", {
        "title": _("会员卡购买记录"), **_tabs_ctx("cards"), "rows": [{"p": p, "who": people[p.customer_id]} for p in rows],
        "total": total, "page": page, "page_size": PAGE_SIZE, "status": status, **params,
        "plans": await cards.list_plans(session, me.scope),
        "base_url": query_url(BASE + "/purchases", status=status, **params),
        "tab_url": query_url(BASE + "/purchases", **params), "statuses": cards.STATUS_ZH,
        "status_colors": STATUS_COLORS, "filtered": any(params.values()),
    })


async def _purchase_page(request: Request, session: AsyncSession, me: StaffPrincipal, purchase_id: int, *,
                         values: dict[str, str] | None = None, errors: dict[str, str] | None = None, message: str = "",
                         status_code: int = 200) -> HTMLResponse:
    p = await cards.get_purchase(session, me.scope, purchase_id)
    refunds = await cards.purchase_refunds(session, me.scope, p)
    who = (await _names(session, me, [p.customer_id]))[p.customer_id]
    card = await cards.card_of(session, me.scope, p.customer_id)
    quote = cards.refund_quote(p) if p.status == "paid" else None
    payment = await payments_service.get_payment(session, me.scope, p.payment_id) if p.payment_id else None
    ctx: dict[str, Any] = {
        "title": _("会员卡购买 %(no)s") % {"no": p.purchase_no}, **_tabs_ctx("cards"), "p": p, "who": who,
        "card": card, "refunds": refunds, "refund_status": REFUND_STATUS, "payment": payment,
        "quote": quote, "unused_days": _days_text(int(quote.unused.total_seconds())) if quote else "0",
        "gift_points": await cards.gift_points_of(session, me.scope, p),
        "can_refund": me.can("members.write") and p.status == "paid",
        "can_retry": me.can("members.write") and cards.can_retry_refund(p, refunds),
        "modes": REFUND_MODES, "values": values or {"mode": "prorata", "amount": "", "reason": ""},
        "errors": errors or {}, "statuses": cards.STATUS_ZH, "status_colors": STATUS_COLORS,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/cards_purchase.html", ctx, status_code=status_code)


@router.get(BASE + "/purchases/{purchase_id}")
async def purchase_detail(purchase_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    return await _purchase_page(request, session, me, purchase_id)


@router.post(BASE + "/purchases/{purchase_id}/refund")
async def purchase_refund(purchase_id: PathId, request: Request, session: UoW, me: Writer, mode: FormText = "",
                          amount: FormText = "", reason: FormText = "") -> Response:
    values = {"mode": mode, "amount": amount, "reason": reason}
    await cards.get_purchase(session, me.scope, purchase_id)  # another tenant's: 404
    errors: dict[str, str] = {}
    amount_fen: int | None = None
    if mode not in cards.REFUND_MODES:
        errors["mode"] = _("请选择退款方式")
    elif mode == "amount":
        try:
            amount_fen = catalog_service.parse_yuan(amount)
        except ValueError:
            errors["amount"] = _("请填写正确的退款金额")
    text = " ".join(reason.split())
    if len(text) > cards.MAX_REASON:
        errors["reason"] = _("退款原因最多 %(n)s 个字符") % {"n": cards.MAX_REASON}
    if errors:
        return await _purchase_page(request, session, me, purchase_id, values=values, errors=errors, status_code=422,
                                    message=next(iter(errors.values())))
    _p, err = await attempt(session, lambda: cards.refund_purchase(session, me.scope, purchase_id, mode=mode,
                                                                   amount_fen=amount_fen, reason=text))
    if err is not None:
        names = {"amount_fen": "amount"}
        errs = {names.get(f["field"], f["field"]): err.message() for f in err.fields if f.get("field")}
        return await _purchase_page(request, session, me, purchase_id, values=values, errors=errs,
                                    status_code=err.status, message=err.message())
    return flash(RedirectResponse(f"{BASE}/purchases/{purchase_id}", status_code=303), _("已退款，会员卡有效期已相应缩短"))


@router.post(BASE + "/purchases/{purchase_id}/retry-refund")
async def purchase_retry_refund(purchase_id: PathId, request: Request, session: UoW, me: Writer) -> Response:
    _r, err = await attempt(session, lambda: cards.retry_refund(session, me.scope, purchase_id))
    if err is not None:
        if err.status == 404:
            raise err
        return await _purchase_page(request, session, me, purchase_id, status_code=err.status, message=err.message())
    return flash(RedirectResponse(f"{BASE}/purchases/{purchase_id}", status_code=303), _("已重新发起退款"))


# -- console: one plan ------------------------------------------------------------------------------------------


@router.get(BASE + "/{plan_id}", dependencies=[Depends(_write_request)])
async def plan_edit(plan_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    plan = await cards.get_plan(session, me.scope, plan_id)
    return await _editor(request, session, me, plan=plan, state=_plan_state(plan))


@router.post(BASE + "/{plan_id}")
async def plan_update(plan_id: PathId, request: Request, session: UoW, me: Writer, name: FormText = "",
                      level_id: FormText = "", days: FormText = "", price: FormText = "", gift_points: FormText = "",
                      description: FormText = "", on_sale: FormText = "", sort: FormText = "") -> Response:
    plan = await cards.get_plan(session, me.scope, plan_id)
    state = _form_state(name, level_id, days, price, gift_points, description, on_sale, sort)
    values, errors = _parse_plan(state)
    if errors:
        return await _editor(request, session, me, plan=plan, state=state, errors=errors, status_code=422,
                             message=next(iter(errors.values())))
    saved, err = await attempt(session, lambda: cards.update_plan(session, me.scope, plan_id, values))
    if err is not None or saved is None:
        assert err is not None
        plan = await cards.get_plan(session, me.scope, plan_id)
        return await _editor(request, session, me, plan=plan, state=state, errors=_domain_errors(err),
                             status_code=err.status, message=err.message())
    return flash(RedirectResponse(BASE, status_code=303), _("已保存会员卡「%(name)s」") % {"name": saved.name})


@router.post(BASE + "/{plan_id}/delete")
async def plan_delete(plan_id: PathId, session: UoW, me: Writer) -> Response:
    _x, err = await attempt(session, lambda: cards.delete_plan(session, me.scope, plan_id))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(RedirectResponse(BASE, status_code=303), err.message(), "error")
    return flash(RedirectResponse(BASE, status_code=303), _("已删除会员卡"))


# -- console: birthday ---------------------------------------------------------------------------------------------

BIRTHDAY = "/admin/members/birthday"


def _birthday_state(s: birthday.BirthdaySettings) -> dict[str, str]:
    return {"enabled": "1" if s.enabled else "", "mode": s.mode, "points": "" if s.points is None else str(s.points),
            "coupon_id": str(s.coupon_id or "")}


async def _birthday_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, page: int = 1,
                         state: dict[str, str] | None = None, errors: dict[str, str] | None = None, message: str = "",
                         status_code: int = 200) -> HTMLResponse:
    current = await birthday.birthday_settings(session, me.scope)
    today = clock.local_today(me.scope.timezone)
    grants, total = await birthday.list_grants(session, me.scope, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    people = await _names(session, me, [g.customer_id for g in grants])
    _rows, this_year = await birthday.list_grants(session, me.scope, year=today.year, limit=0)
    coupon_names = dict(await rewards.coupon_choices(session, me.scope))
    levels = await birthday.level_gifts(session, me.scope)
    ctx: dict[str, Any] = {
        "title": _("生日礼"), **_tabs_ctx("birthday"), "settings": current, "state": state or _birthday_state(current),
        "errors": errors or {}, "can_write": me.can("members.write"), "modes": MODES,
        "coupons_available": rewards.coupons_available(), "coupon_choices": list(coupon_names.items()),
        "coupon_names": coupon_names, "levels": levels, "level_names": {lv.level_id: lv.name for lv in levels},
        "month_count": await birthday.birthdays_in_month(session, me.scope, today.month), "month": today.month,
        "year": today.year, "this_year": this_year,
        "grants": [{"g": g, "who": people[g.customer_id]} for g in grants], "total": total, "page": page,
        "page_size": PAGE_SIZE, "base_url": BIRTHDAY + "?",
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/birthday_settings.html", ctx, status_code=status_code)


@router.get(BIRTHDAY)
async def birthday_page(request: Request, session: UoW, me: Reader,
                        page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    return await _birthday_page(request, session, me, page=page)


@router.post(BIRTHDAY)
async def birthday_save(request: Request, session: UoW, me: Writer, enabled: FormText = "", mode: FormText = "",
                        points: FormText = "", coupon_id: FormText = "") -> Response:
    state = {"enabled": enabled, "mode": mode, "points": points.strip(), "coupon_id": coupon_id.strip()}
    errors: dict[str, str] = {}
    if mode not in birthday.MODES:
        errors["mode"] = _("请选择发放时间")
    value: int | None = None
    if state["points"]:
        if _digits(state["points"]) and len(state["points"]) <= 7 and int(state["points"]) <= birthday.MAX_POINTS:
            value = int(state["points"])
        else:
            errors["points"] = _("生日积分需为 0–%(n)s 的整数") % {"n": birthday.MAX_POINTS}
    coupon = to_int(state["coupon_id"]) if state["coupon_id"] else None
    if state["coupon_id"] and coupon is None:
        errors["coupon_id"] = _("优惠券不可用")
    if errors:
        return await _birthday_page(request, session, me, state=state, errors=errors, status_code=422,
                                    message=next(iter(errors.values())))
    _s, err = await attempt(session, lambda: birthday.save_settings(session, me.scope, enabled=bool(enabled), mode=mode,
                                                                     points=value, coupon_id=coupon))
    if err is not None:
        errs = {f["field"]: err.message() for f in err.fields if f.get("field")}
        return await _birthday_page(request, session, me, state=state, errors=errs, status_code=err.status,
                                    message=err.message())
    return flash(RedirectResponse(BIRTHDAY, status_code=303), _("已保存生日礼设置"))


@router.post(BIRTHDAY + "/run")
async def birthday_run(session: UoW, me: Writer) -> Response:
    conf = await birthday.birthday_settings(session, me.scope)
    if not conf.enabled:
        return flash(RedirectResponse(BIRTHDAY, status_code=303), _("生日礼未开启"), "error")
    granted, after = 0, 0
    today = clock.local_today(me.scope.timezone)
    while True:
        result = await birthday.grant_due(session, me.scope, today=today, after_customer_id=after, limit=200)
        granted += result.granted
        after = result.last_customer_id
        if result.seen < 200:
            break
    return flash(RedirectResponse(BIRTHDAY, status_code=303), _("已为 %(n)s 位会员发放生日礼") % {"n": granted})


# -- storefront ------------------------------------------------------------------------------------------------------




def _cid(shopper: ShopperSession) -> int:
    assert shopper.customer is not None  # CurrentShopper guarantees it
    return shopper.customer.id




def _local_day(value: datetime | None, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d") if value else ""


@router.get("/m/{shop}/member/card")
async def store_card(request: Request, session: UoW, me: CurrentShopper) -> Response:
    scope, cid = me.shop.scope, _cid(me)
    card = await cards.card_of(session, scope, cid)
    names = await cards.level_names(session, scope)
    plans = []
    for p in await cards.list_plans(session, scope, on_sale_only=True):
        action = "buy" if not card.active else ("renew" if card.level_id == p.level_id else "blocked")
        plans.append({"p": p, "level": names.get(p.level_id, ""), "action": action})
    rows, total = await cards.list_purchases(session, scope, customer_id=cid, limit=STORE_PURCHASES)
    return store_page(request, me, "store/members/cards_home.html", {
        "card": card, "until": _local_day(card.expires_at, scope.timezone), "plans": plans, "purchases": rows,
        "more_purchases": max(0, total - len(rows)), "statuses": cards.STATUS_ZH, "key": secrets.token_hex(12),
    })


@router.post("/m/{shop}/member/card/buy")
async def store_buy(session: UoW, me: CurrentShopper, plan_id: FormText = "", key: FormText = "") -> Response:
    base = f"/m/{me.shop.scope.code}"
    plan = to_int(plan_id)
    if plan is None:
        return redirect(f"{base}/member/card", _("请选择会员卡"), "error")
    placed, err = await attempt(session, lambda: cards.create_purchase(
        session, me.shop.scope, customer_id=_cid(me), plan_id=plan, idempotency_key=key.strip() or secrets.token_hex(12)))
    if err is not None or placed is None:
        assert err is not None
        return redirect(f"{base}/member/card", err.message(), "error")
    p = placed.purchase
    if p.status == "pending_payment":
        return RedirectResponse(f"{base}/member/card/purchases/{p.id}/pay", status_code=303)
    return redirect(f"{base}/member/card/purchases/{p.id}")


async def _start_payment(request: Request, session: AsyncSession, me: ShopperSession, purchase_id: int) -> Response:
    scope, cid = me.shop.scope, _cid(me)
    here = f"/m/{scope.code}/member/card/purchases/{purchase_id}"
    await cards.customer_purchase(session, scope, cid, purchase_id)  # another member's: 404
    channels = await payments_service.available_channels(session, scope)
    if "sandbox" in channels:
        channel, ip = "sandbox", None
    elif "h5" in channels:
        channel, ip = "h5", client_ip(request)
    else:
        return redirect(here, _("本店暂未开通在线支付，请联系客服"), "error")
    started, err = await attempt(session, lambda: cards.start_payment(
        session, scope, customer_id=cid, purchase_id=purchase_id, channel=channel, return_url=f"{here}?paid=1",
        payer_client_ip=ip))
    if err is not None or started is None:
        assert err is not None
        if err.status == 404:
            raise err
        return redirect(here, err.message(), "error")
    if not started.pay_url:
        return redirect(here, _("当前支付方式需要在微信中完成"), "error")
    return RedirectResponse(started.pay_url, status_code=303)


@router.get("/m/{shop}/member/card/purchases/{purchase_id}/pay", dependencies=[Depends(_write_request)])
async def store_pay_page(purchase_id: PathId, request: Request, session: UoW, me: CurrentShopper) -> Response:
    """Right after 立即开通: open the payment and go to the gateway's pay page."""
    return await _start_payment(request, session, me, purchase_id)


@router.post("/m/{shop}/member/card/purchases/{purchase_id}/pay")
async def store_pay(purchase_id: PathId, request: Request, session: UoW, me: CurrentShopper) -> Response:
    return await _start_payment(request, session, me, purchase_id)


def _payment_pending(payments: Sequence[Any]) -> bool:
    latest = max(payments, key=lambda p: p.id, default=None)
    return latest is not None and latest.status in ("pending", "succeeded")


@router.get("/m/{shop}/member/card/purchases/{purchase_id}")
async def store_purchase(purchase_id: PathId, request: Request, session: UoW, me: CurrentShopper,
                         paid: Annotated[str, Query(max_length=2)] = "",
                         n: Annotated[int, Query(ge=0, le=1000)] = 0) -> Response:
    scope = me.shop.scope
    p: MemberCardPurchase = await cards.customer_purchase(session, scope, _cid(me), purchase_id)
    payments = await payments_service.payments_for_source(session, scope, cards.SOURCE_TYPE, str(p.id))
    polling = bool(paid) and p.status == "pending_payment" and n < MAX_POLLS and _payment_pending(payments)
    base = f"/m/{scope.code}"
    return store_page(request, me, "store/members/cards_purchase.html", {
        "p": p, "status_label": cards.STATUS_ZH.get(p.status, p.status), "can_pay": "pay" in cards.shopper_actions(p),
        "deadline_iso": p.pay_deadline.isoformat() if p.pay_deadline else "",
        "poll_url": f"{base}/member/card/purchases/{p.id}?paid=1&n={n + 1}" if polling else "",
        "starts": _local_day(p.starts_at, scope.timezone), "ends": _local_day(p.ends_at, scope.timezone),
    })
