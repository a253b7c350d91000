"""Pages of levels and members.

Console (会员中心): 会员列表 (``/admin/members``: filters by level, phone or nickname,
registration days, birthday month and points), a member's page (``/admin/members/{id}``:
profile, level, growth, points, balance, with tabs for the growth, points and balance
ledgers and the card purchases; growth adjustment here, points and balance adjustments
posted to the points and wallet parts' own addresses), 会员等级 (``/admin/members/levels``:
the levels with their editor, the growth and review rules) and 会员价 (a per-SKU table of
member prices per level).

Storefront (``/m/{shop}/member``): the member centre — the level card with the progress to
the next level, points, balance, links to the points, mall, stored-value and card pages,
notices and the profile (the birthday can be set once) —, 等级权益 and 成长值明细.

Same conventions as the orders pages: plain forms carrying ``_csrf``, a 303 redirect with a
flash message after a successful post, the page again with its errors and a 4xx status
otherwise; service calls run in a savepoint (:func:`attempt`). Reading needs
``members.read``; every change ``members.write``.
"""

from __future__ import annotations

import math
import re
import secrets
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.catalog.repository import ProductQuery
from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.customers.models import Customer
from siyu.kit import clock
from siyu.kit.context import current_language
from siyu.kit.i18n import gettext as _
from siyu.kit.money import apply_rate
from siyu.kit.security import mask_phone
from siyu.kit.types import PathId
from siyu.kit.web import UoW
from siyu.members import api_levels, levels, rewards
from siyu.members.models import MemberCardPurchase, MemberNotice
from siyu.staff.access import StaffPrincipal, require
from siyu.web import i18n_members_levels  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import attempt, error_flash, query_url, to_int
from siyu.web.page import console_page, flash, store_page

router = APIRouter(include_in_schema=False)

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]
FormText = Annotated[str, Form(max_length=600)]

PAGE_SIZE = 20
HISTORY_SIZE = 20
BASE = "/admin/members"
LEVELS = "/admin/members/levels"
PRICES = "/admin/members/levels/prices"
#: ``{customer_id:int}`` / ``{level_id:int}``: only digits match, so ``/admin/members/points``
#: (and the other parts' pages) are not taken for a member.
MEMBER = BASE + "/{customer_id:int}"
LEVEL = LEVELS + "/{level_id:int}"
DETAIL_TABS = {"growth": "成长值", "points": "积分", "balance": "余额", "cards": "付费会员卡"}
GENDER_LABELS = {"unknown": "未知", "male": "男", "female": "女"}
POLICY_LABELS = {"never": "不降级", "monthly": "每月", "quarterly": "每季度", "yearly": "每年"}
GROWTH_KINDS = {"signup": "注册", "first_order": "首次下单", "checkin": "签到", "review": "评价", "order": "订单消费",
                "refund": "售后退款扣回", "adjust": "人工调整", "merge_in": "账号合并转入", "merge_out": "账号合并转出"}
CARD_STATUS = {"pending_payment": "待支付", "paid": "已支付", "closed": "已关闭", "refunded": "已退款"}
LEVEL_FIELD_MESSAGES = {
    "name": "请填写等级名称（1–20 个字符）",
    "rank": "等级序号需为 0–99 的整数",
    "growth_threshold": "成长值门槛需为 0–100,000,000 的整数",
    "price_rate": "会员折扣需为 1–10 之间的数字（最多两位小数），留空表示不打折",
    "points_multiplier": "积分倍数需为 1–10 之间的数字（最多两位小数）",
    "birthday_points": "生日积分需为 0–1,000,000 的整数",
    "birthday_coupon_id": "请选择可用的优惠券",
    "color": "颜色需为 #RRGGBB 格式",
    "description": "说明最多 200 个字符",
}
_RATE = re.compile(r"^\d{1,2}(\.\d{1,2})?$")


def _english() -> bool:
    return current_language().startswith("en")


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _text(value: str, limit: int = 100) -> str:
    return "".join(ch for ch in value if ch.isprintable()).strip()[:limit]


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def _int_in(value: str, lo: int, hi: int) -> int | None:
    v = value.strip().replace(",", "")
    neg = v.startswith("-")
    body = v[1:] if neg else v
    if not _digits(body) or len(body) > 12:
        return None
    n = -int(body) if neg else int(body)
    return n if lo <= n <= hi else None


def _tenths(value: str, lo: int, hi: int) -> int | None:
    """A number with at most two decimals in hundredths ("9.5" → 950), or None outside lo..hi."""
    v = value.strip()
    if not _RATE.match(v):
        return None
    whole, _sep, frac = v.partition(".")
    n = int(whole) * 100 + int((frac + "00")[:2])
    return n if lo <= n <= hi else None


def _yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    return f"{fen // 100}.{fen % 100:02d}"


def level_label(lv: levels.LevelView) -> str:
    """A level's name, with 付费 when it comes from a paid card."""
    return lv.name + (_("（付费）") if lv.via == "card" else "")


def benefit_words(lv: levels.LevelView) -> list[str]:
    return levels.benefits(lv, english=_english())


# -- console: the member list ---------------------------------------------------------------------------


@router.get(BASE)
async def member_list(request: Request, session: UoW, me: Reader,
                      level: Annotated[str, Query(max_length=20)] = "",
                      q: Annotated[str, Query(max_length=100)] = "",
                      date_from: Annotated[str, Query(max_length=10)] = "",
                      date_to: Annotated[str, Query(max_length=10)] = "",
                      birthday_month: Annotated[str, Query(max_length=2)] = "",
                      points_min: Annotated[str, Query(max_length=12)] = "",
                      points_max: Annotated[str, Query(max_length=12)] = "",
                      page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    all_levels = await levels.list_levels(session, me.scope)
    level_id = to_int(level)
    if level_id is not None and level_id not in {lv.id for lv in all_levels}:
        level_id = None
    d_from, d_to = _day(date_from), _day(date_to)
    month = _int_in(birthday_month, 1, 12)
    p_min, p_max = _int_in(points_min, 0, 10**12), _int_in(points_max, 0, 10**12)
    params = {"level": str(level_id or ""), "q": _text(q), "date_from": d_from.isoformat() if d_from else "",
              "date_to": d_to.isoformat() if d_to else "", "birthday_month": str(month or ""),
              "points_min": "" if p_min is None else str(p_min), "points_max": "" if p_max is None else str(p_max)}
    filters = levels.MemberFilters(level_id=level_id, q=params["q"] or None, registered_from=d_from, registered_to=d_to,
                                   birthday_month=month, points_min=p_min, points_max=p_max)
    rows, total = await levels.list_members(session, me.scope, filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    full = me.can("customers.phone")
    items = [{"m": r.member, "c": r.customer, "level": r.level, "level_name": level_label(r.level),
              "name": (r.customer.nickname if r.customer else None) or f"#{r.member.customer_id}",
              "phone": ((r.customer.phone if full else mask_phone(r.customer.phone)) if r.customer else "") or "",
              "merged": bool(r.customer and r.customer.status == "merged")} for r in rows]
    return console_page(request, me, "console/members/members_list.html", {
        "title": _("会员列表"), "items": items, "total": total, "page": page, "page_size": PAGE_SIZE,
        "pages": max(1, math.ceil(total / PAGE_SIZE)), "base_url": query_url(BASE, **params), **params,
        "filtered": any(params.values()), "levels": [lv for lv in all_levels if lv.id],
        "months": list(range(1, 13)), "full_phone": full,
    })


# -- console: one member ----------------------------------------------------------------------------------


async def _history(session: AsyncSession, me: StaffPrincipal, tab: str, customer_id: int,
                   before: int | None) -> tuple[list[dict[str, Any]], int | None]:
    """The rows of one ledger tab (newest first) and the id to page on from (None: the end)."""
    scope, en = me.scope, _english()
    rows: list[dict[str, Any]] = []
    if tab == "growth":
        for e in await levels.growth_history(session, scope, customer_id, limit=HISTORY_SIZE, before_id=before):
            rows.append({"id": e.id, "at": e.created_at, "label": _(GROWTH_KINDS.get(e.kind, e.kind)),
                         "amount": e.amount, "after": e.balance_after, "note": e.note, "money": False})
    elif tab == "points":
        points = _part("points")
        if points is None:
            return [], None
        for e in await points.history(session, scope, customer_id, limit=HISTORY_SIZE, before_id=before):
            label = points.kind_label(e.kind, en) if hasattr(points, "kind_label") else e.kind
            rows.append({"id": e.id, "at": e.created_at, "label": label, "amount": e.amount, "after": e.balance_after,
                         "note": e.note, "money": False})
    elif tab == "balance":
        wallet = _part("wallet")
        if wallet is None:
            return [], None
        for e in await wallet.history(session, scope, customer_id, limit=HISTORY_SIZE, before_id=before):
            label = e.label(en) if hasattr(e, "label") else e.kind
            note = " · ".join(x for x in (
                (_("本金 %(p)s，赠送 %(b)s") % {"p": _money(e.principal_fen), "b": _money(e.bonus_fen)})
                if e.principal_fen and e.bonus_fen else "", e.memo) if x)
            rows.append({"id": e.id, "at": e.created_at, "label": label, "amount": e.total_fen,
                         "after": getattr(e, "balance_after_fen", None), "note": note, "money": True})
    else:
        stmt = (select(MemberCardPurchase).where(MemberCardPurchase.tenant_id == scope.id,
                                                 MemberCardPurchase.customer_id == customer_id))
        if before is not None:
            stmt = stmt.where(MemberCardPurchase.id < before)
        for p in (await session.execute(stmt.order_by(MemberCardPurchase.id.desc()).limit(HISTORY_SIZE))).scalars():
            rows.append({"id": p.id, "at": p.created_at, "purchase": p, "status": _(CARD_STATUS.get(p.status, p.status))})
    more = rows[-1]["id"] if len(rows) == HISTORY_SIZE else None
    return rows, more


def _money(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


def _part(name: str) -> Any:
    """Another part's service module (points, wallet), or None while it is not installed."""
    import importlib

    try:
        return importlib.import_module(f"siyu.members.{name}")
    except ImportError:
        return None


async def _member_page(request: Request, session: AsyncSession, me: StaffPrincipal, customer_id: int, *,
                       tab: str = "growth", before: int | None = None, open_form: str = "",
                       values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                       status_code: int = 200, message: str = "") -> HTMLResponse:
    scope = me.scope
    customer: Customer = await customers_service.get_customer(session, scope, customer_id)
    ov = await levels.overview(session, scope, customer_id)
    m = ov.member
    tab = tab if tab in DETAIL_TABS else "growth"
    rows, more = await _history(session, me, tab, customer_id, before)
    balance = await api_levels.wallet_balance(session, scope, customer_id)
    full = me.can("customers.phone")
    merged_into = customer.merged_into_id if customer.status == "merged" else None
    can_write = me.can("members.write") and merged_into is None
    ctx: dict[str, Any] = {
        "title": (customer.nickname or _("会员")) + f" #{customer.id}", "customer": customer,
        "phone": ((customer.phone if full else mask_phone(customer.phone)) or "") if customer.phone else "",
        "ov": ov, "mem": m, "level_name": level_label(ov.level), "benefits": benefit_words(ov.level),
        "card_until": ov.level.card_expires_at, "balance": balance, "tab": tab,
        "tabs": [(k, v) for k, v in DETAIL_TABS.items() if k != "points" or _part("points") is not None],
        "rows": rows, "more_url": f"{BASE}/{customer_id}?tab={tab}&before={more}" if more else "",
        "can_write": can_write, "can_points": can_write and _part("points") is not None,
        "can_wallet": can_write and _part("wallet") is not None, "merged_into": merged_into,
        "genders": list(GENDER_LABELS.items()), "gender_label": _(GENDER_LABELS.get(m.gender if m else "unknown", "未知")),
        "open_form": open_form, "values": values or {}, "errors": errors or {}, "token": secrets.token_hex(8),
        "policy": ov.settings.review_policy, "customer_href": f"/admin/customers/{customer_id}"
        if me.can("customers.read") else "",
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/members_detail.html", ctx, status_code=status_code)


@router.get(MEMBER)
async def member_page(customer_id: PathId, request: Request, session: UoW, me: Reader,
                      tab: Annotated[str, Query(max_length=20)] = "growth",
                      before: Annotated[str, Query(max_length=20)] = "") -> Response:
    return await _member_page(request, session, me, customer_id, tab=tab, before=to_int(before))


def _to_member(customer_id: int, tab: str = "") -> RedirectResponse:
    return RedirectResponse(f"{BASE}/{customer_id}" + (f"?tab={tab}" if tab else ""), status_code=303)


@router.post(MEMBER + "/growth/adjust")
async def member_growth_adjust(customer_id: PathId, request: Request, session: UoW, me: Writer,
                               amount: FormText = "", reason: FormText = "", token: FormText = "") -> Response:
    await customers_service.get_customer(session, me.scope, customer_id)  # another tenant's: a 404 page
    values = {"amount": amount.strip(), "reason": reason.strip()[:100], "token": token.strip()[:64]}
    errors: dict[str, str] = {}
    n = _int_in(values["amount"], -levels.MAX_ADJUST, levels.MAX_ADJUST)
    if n is None or n == 0:
        errors["amount"] = _("调整数量需为非零整数，绝对值不超过 %(n)s") % {"n": f"{levels.MAX_ADJUST:,}"}
    if not values["reason"]:
        errors["reason"] = _("请填写调整原因")
    if errors:
        return await _member_page(request, session, me, customer_id, open_form="growth", values=values, errors=errors,
                                  status_code=422, message=next(iter(errors.values())))
    assert n is not None
    key = token.strip() if re.match(r"^[A-Za-z0-9_-]{1,64}$", token.strip()) else None
    entry, err = await attempt(session, lambda: levels.adjust_growth(session, me.scope, customer_id, n,
                                                                     reason=values["reason"], token=key))
    if err is not None or entry is None:
        assert err is not None
        if err.status == 404:
            raise err
        field = "reason" if err.code == "adjust_reason_invalid" else "amount"
        return await _member_page(request, session, me, customer_id, open_form="growth", values=values,
                                  errors={field: err.message()}, status_code=err.status, message=err.message())
    return flash(_to_member(customer_id), _("已调整成长值 %(n)s") % {"n": f"{n:+,}"})


@router.post(MEMBER + "/profile")
async def member_profile(customer_id: PathId, request: Request, session: UoW, me: Writer,
                         birthday: FormText = "", gender: FormText = "", region: FormText = "") -> Response:
    await customers_service.get_customer(session, me.scope, customer_id)
    values = {"birthday": birthday.strip(), "gender": gender.strip(), "region": region.strip()[:levels.MAX_REGION + 10]}
    errors: dict[str, str] = {}
    day = _day(values["birthday"])
    if values["birthday"] and day is None:
        errors["birthday"] = _("请选择正确的日期")
    if values["gender"] not in levels.GENDERS:
        errors["gender"] = _("请选择性别")
    if errors:
        return await _member_page(request, session, me, customer_id, open_form="profile", values=values, errors=errors,
                                  status_code=422, message=next(iter(errors.values())))
    saved, err = await attempt(session, lambda: levels.update_profile(
        session, me.scope, customer_id, birthday=day, gender=values["gender"], region=values["region"], by_staff=True))
    if err is not None or saved is None:
        assert err is not None
        if err.status == 404:
            raise err
        fields = {f["field"]: err.message() for f in err.fields if f.get("field") in values}
        return await _member_page(request, session, me, customer_id, open_form="profile", values=values,
                                  errors=fields or {"birthday": err.message()}, status_code=err.status,
                                  message=err.message())
    return flash(_to_member(customer_id), _("已保存会员资料"))


# -- console: levels and rules --------------------------------------------------------------------------------


async def _write_request(request: Request) -> None:
    """A GET that writes the tenant's default levels on first use: a write transaction."""
    request.state.needs_write = True


SETTING_FIELDS = ("growth_per_yuan", "signup", "first_order", "checkin", "review", "window_days")


async def _levels_page(request: Request, session: AsyncSession, me: StaffPrincipal, *,
                       values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                       status_code: int = 200, message: str = "") -> HTMLResponse:
    rows = await levels.ensure_levels(session, me.scope)
    views = [levels.LevelView.of(r) for r in rows]
    settings = await levels.growth_settings(session, me.scope)
    shown = {k: str(v) for k, v in settings.as_dict().items()}
    shown.update(values or {})
    from sqlalchemy import func

    from siyu.members.models import Member

    counts = dict((await session.execute(select(Member.level_id, func.count()).where(
        Member.tenant_id == me.scope.id).group_by(Member.level_id))).all())
    base = levels.base_level(views)
    counts[base.id] = counts.get(base.id, 0) + counts.pop(None, 0)
    ctx: dict[str, Any] = {
        "title": _("会员等级"), "levels": [{"lv": lv, "benefits": benefit_words(lv), "holders": counts.get(lv.id, 0),
                                          "is_base": lv.id == base.id} for lv in views],
        "values": shown, "errors": errors or {}, "can_write": me.can("members.write"),
        "policies": list(POLICY_LABELS.items()), "ranges": levels.SETTING_RANGES,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/levels_list.html", ctx, status_code=status_code)


@router.get(LEVELS, dependencies=[Depends(_write_request)])
async def levels_page(request: Request, session: UoW, me: Reader) -> Response:
    return await _levels_page(request, session, me)


@router.post(LEVELS + "/settings")
async def levels_settings(request: Request, session: UoW, me: Writer, growth_per_yuan: FormText = "",
                          signup: FormText = "", first_order: FormText = "", checkin: FormText = "",
                          review: FormText = "", review_policy: FormText = "", window_days: FormText = "") -> Response:
    raw = {"growth_per_yuan": growth_per_yuan, "signup": signup, "first_order": first_order, "checkin": checkin,
           "review": review, "window_days": window_days}
    values = {k: v.strip() for k, v in raw.items()}
    values["review_policy"] = review_policy.strip()
    numbers: dict[str, int] = {}
    errors: dict[str, str] = {}
    for name in SETTING_FIELDS:
        lo, hi = levels.SETTING_RANGES[name]
        n = _int_in(values[name], lo, hi)
        if n is None:
            errors[name] = _("需为 %(lo)s–%(hi)s 的整数") % {"lo": lo, "hi": f"{hi:,}"}
        else:
            numbers[name] = n
    if values["review_policy"] not in levels.REVIEW_POLICIES:
        errors["review_policy"] = _("请选择等级评定周期")
    if errors:
        return await _levels_page(request, session, me, values=values, errors=errors, status_code=422,
                                  message=next(iter(errors.values())))
    saved, err = await attempt(session, lambda: levels.update_growth_settings(
        session, me.scope, review_policy=values["review_policy"], **numbers))
    if err is not None or saved is None:
        assert err is not None
        return await _levels_page(request, session, me, values=values, status_code=err.status, message=err.message())
    return flash(RedirectResponse(LEVELS, status_code=303), _("已保存成长值与等级规则"))


def _level_values(row: Any | None) -> dict[str, Any]:
    if row is None:
        return {"name": "", "rank": "", "growth_threshold": "", "paid_only": False, "price_rate": "",
                "free_shipping": False, "points_multiplier": "1", "priority_shipping": False, "birthday_points": "0",
                "birthday_coupon_id": "", "color": "#8c8c8c", "description": ""}
    return {"name": row.name, "rank": str(row.rank), "growth_threshold": str(row.growth_threshold),
            "paid_only": row.paid_only, "price_rate": _rate_text(row.price_rate_bp), "free_shipping": row.free_shipping,
            "points_multiplier": levels.multiplier_text(row.points_multiplier_bp), "priority_shipping": row.priority_shipping,
            "birthday_points": str(row.birthday_points), "birthday_coupon_id": str(row.birthday_coupon_id or ""),
            "color": row.color, "description": row.description}


def _rate_text(rate_bp: int) -> str:
    """9500 → "9.5" (折); 10000 → "" (no discount)."""
    if rate_bp >= 10000:
        return ""
    return f"{rate_bp / 1000:.2f}".rstrip("0").rstrip(".")


async def _level_form(request: Request, session: AsyncSession, me: StaffPrincipal, *, level_id: int | None,
                      values: dict[str, Any], errors: dict[str, str] | None = None, status_code: int = 200,
                      message: str = "") -> HTMLResponse:
    views = [levels.LevelView.of(r) for r in await levels.ensure_levels(session, me.scope)]
    base = levels.base_level(views)
    ctx: dict[str, Any] = {
        "title": _("编辑会员等级") if level_id else _("新建会员等级"), "level_id": level_id, "values": values,
        "errors": errors or {}, "can_write": me.can("members.write"), "is_base": level_id == base.id,
        "coupons": await rewards.coupon_choices(session, me.scope) if rewards.coupons_available() else [],
        "others": [lv for lv in views if lv.id != level_id],
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/levels_form.html", ctx, status_code=status_code)


@router.get(LEVELS + "/new", dependencies=[Depends(_write_request)])
async def level_new(request: Request, session: UoW, me: Writer) -> Response:
    values = _level_values(None)
    rows = await levels.ensure_levels(session, me.scope)
    values["rank"] = str(max(r.rank for r in rows) + 1)
    return await _level_form(request, session, me, level_id=None, values=values)


@router.get(LEVEL)
async def level_edit(level_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    row = await levels.get_level(session, me.scope, level_id)
    return await _level_form(request, session, me, level_id=row.id, values=_level_values(row))


def _parse_level(form: dict[str, str]) -> tuple[levels.LevelData | None, dict[str, Any], dict[str, str]]:
    """The editor's fields → LevelData (or the errors), with what was typed."""
    values: dict[str, Any] = {k: form.get(k, "").strip() for k in (
        "name", "rank", "growth_threshold", "price_rate", "points_multiplier", "birthday_points", "birthday_coupon_id",
        "color", "description")}
    for flag in ("paid_only", "free_shipping", "priority_shipping"):
        values[flag] = form.get(flag, "") in ("1", "on", "true")
    errors: dict[str, str] = {}
    rank = _int_in(values["rank"], 0, levels.MAX_RANK)
    threshold = 0 if values["paid_only"] and not values["growth_threshold"] else _int_in(
        values["growth_threshold"] or "0", 0, levels.MAX_THRESHOLD)
    rate = 10000 if not values["price_rate"] else _tenths(values["price_rate"], 100, 1000)
    mult = _tenths(values["points_multiplier"] or "1", 100, 1000)
    bpoints = _int_in(values["birthday_points"] or "0", 0, 1_000_000)
    coupon = to_int(values["birthday_coupon_id"]) if values["birthday_coupon_id"] else None
    checks = {"name": bool(values["name"]) and len(values["name"]) <= 20, "rank": rank is not None,
              "growth_threshold": threshold is not None, "price_rate": rate is not None,
              "points_multiplier": mult is not None, "birthday_points": bpoints is not None,
              "birthday_coupon_id": not values["birthday_coupon_id"] or coupon is not None,
              "color": bool(re.match(r"^#[0-9a-fA-F]{6}$", values["color"])),
              "description": len(values["description"]) <= 200}
    for name, ok in checks.items():
        if not ok:
            errors[name] = _(LEVEL_FIELD_MESSAGES[name])
    if errors:
        return None, values, errors
    assert rank is not None and threshold is not None and rate is not None and mult is not None and bpoints is not None
    data = levels.LevelData(
        name=values["name"], rank=rank, growth_threshold=threshold, paid_only=values["paid_only"],
        price_rate_bp=rate if rate == 10000 else rate * 10, free_shipping=values["free_shipping"],
        points_multiplier_bp=mult * 100, priority_shipping=values["priority_shipping"], birthday_points=bpoints,
        birthday_coupon_id=coupon, color=values["color"], description=values["description"])
    return data, values, errors


#: Service field names → the editor's field names.
_FORM_FIELD = {"price_rate_bp": "price_rate", "points_multiplier_bp": "points_multiplier"}


async def _save_level(request: Request, session: AsyncSession, me: StaffPrincipal, level_id: int | None,
                      form: dict[str, str]) -> Response:
    data, values, errors = _parse_level(form)
    if data is None:
        return await _level_form(request, session, me, level_id=level_id, values=values, errors=errors, status_code=422,
                                 message=next(iter(errors.values())))
    if level_id is None:
        row, err = await attempt(session, lambda: levels.create_level(session, me.scope, data))
    else:
        row, err = await attempt(session, lambda: levels.update_level(session, me.scope, level_id, data))
    if err is not None or row is None:
        assert err is not None
        if err.status == 404:
            raise err
        fields = {_FORM_FIELD.get(f["field"], f["field"]): err.message() for f in err.fields}
        return await _level_form(request, session, me, level_id=level_id, values=values, errors=fields,
                                 status_code=err.status, message=err.message())
    return flash(RedirectResponse(LEVELS, status_code=303), _("已保存会员等级「%(name)s」") % {"name": row.name})


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v)[:600] for k, v in form.items() if isinstance(v, str)}


@router.post(LEVELS)
async def level_create(request: Request, session: UoW, me: Writer) -> Response:
    return await _save_level(request, session, me, None, await _form(request))


@router.post(LEVEL)
async def level_update(level_id: PathId, request: Request, session: UoW, me: Writer) -> Response:
    await levels.get_level(session, me.scope, level_id)
    return await _save_level(request, session, me, level_id, await _form(request))


@router.post(LEVEL + "/delete")
async def level_delete(level_id: PathId, session: UoW, me: Writer) -> Response:
    row = await levels.get_level(session, me.scope, level_id)
    name = row.name
    _done, err = await attempt(session, lambda: levels.delete_level(session, me.scope, level_id))
    if err is not None:
        return flash(RedirectResponse(LEVELS, status_code=303), err.message(), "error")
    return flash(RedirectResponse(LEVELS, status_code=303), _("已删除会员等级「%(name)s」") % {"name": name})


# -- console: member prices ------------------------------------------------------------------------------------


async def _prices_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, q: str = "", page: int = 1,
                       sku_id: int | None = None, values: dict[str, str] | None = None,
                       errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    scope = me.scope
    views = [levels.LevelView.of(r) for r in await levels.ensure_levels(session, scope)]
    sku_ids: list[int] = []
    if q:
        products, total = await catalog_service.list_products(session, scope, ProductQuery(q=q),
                                                               offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        by_product = await catalog_service.skus_of_products(session, scope, [p.id for p in products])
        for p in products:
            sku_ids += [s.id for s in by_product.get(p.id, [])]
    else:
        sku_ids, total = await levels.priced_skus(session, scope, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    if sku_id is not None and sku_id not in sku_ids:
        sku_ids.insert(0, sku_id)
    skus = await catalog_service.skus_for_sale(session, scope, sku_ids)
    prices = await levels.member_prices(session, scope, sku_ids)
    rows = []
    for sid in sku_ids:
        sku = skus.get(sid)
        if sku is None:
            continue
        mine = prices.get(sid, {})
        rows.append({"sku": sku, "cells": [
            {"level": lv, "name": f"price_{lv.id}",
             "value": (values or {}).get(f"price_{lv.id}", _yuan(mine.get(lv.id))) if sid == sku_id else _yuan(mine.get(lv.id)),
             "error": (errors or {}).get(f"price_{lv.id}", "") if sid == sku_id else "",
             "rate": apply_rate(sku.price_fen, lv.price_rate_bp) if lv.has_price_benefit else None}
            for lv in views]})
    ctx: dict[str, Any] = {
        "title": _("会员价"), "levels": views, "rows": rows, "q": q, "page": page, "page_size": PAGE_SIZE,
        "total": total, "base_url": query_url(PRICES, q=q), "can_write": me.can("members.write"),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/levels_prices.html", ctx, status_code=status_code)


@router.get(PRICES, dependencies=[Depends(_write_request)])
async def prices_page(request: Request, session: UoW, me: Reader, q: Annotated[str, Query(max_length=100)] = "",
                      page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    return await _prices_page(request, session, me, q=_text(q), page=page)


@router.post(PRICES + "/{sku_id:int}")
async def prices_save(sku_id: PathId, request: Request, session: UoW, me: Writer) -> Response:
    sku = await catalog_service.get_sku(session, me.scope, sku_id)  # another tenant's SKU: a 404 page
    form = await _form(request)
    q = _text(form.get("q", ""))
    views = [levels.LevelView.of(r) for r in await levels.ensure_levels(session, me.scope)]
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    prices: dict[int, int | None] = {}
    for lv in views:
        key = f"price_{lv.id}"
        raw = form.get(key, "").strip()
        values[key] = raw
        if not raw:
            prices[lv.id] = None
            continue
        try:
            fen = catalog_service.parse_yuan(raw)
        except ValueError:
            fen = -1
        if not 1 <= fen <= sku.price_fen:
            errors[key] = _("会员价需为 0.01 至售价 %(p)s 元") % {"p": _yuan(sku.price_fen)}
        else:
            prices[lv.id] = fen
    if errors:
        return await _prices_page(request, session, me, q=q, sku_id=sku_id, values=values, errors=errors,
                                  status_code=422, message=next(iter(errors.values())))
    saved, err = await attempt(session, lambda: levels.set_member_prices(session, me.scope, sku_id, prices))
    if err is not None or saved is None:
        assert err is not None
        return await _prices_page(request, session, me, q=q, sku_id=sku_id, values=values, status_code=err.status,
                                  message=err.message())
    back = query_url(PRICES, q=q).rstrip("?&")
    return flash(RedirectResponse(back, status_code=303), _("已保存「%(title)s」的会员价") % {"title": sku.title})


# -- storefront ------------------------------------------------------------------------------------------------




def _cid(shopper: ShopperSession) -> int:
    assert shopper.customer is not None  # CurrentShopper guarantees it
    return shopper.customer.id


async def _home(request: Request, session: AsyncSession, me: ShopperSession, *, values: dict[str, str] | None = None,
                errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    scope, cid = me.shop.scope, _cid(me)
    ov = await levels.overview(session, scope, cid)
    balance = await api_levels.wallet_balance(session, scope, cid)
    recent = (await session.execute(select(MemberNotice).where(
        MemberNotice.tenant_id == scope.id, MemberNotice.customer_id == cid)
        .order_by(MemberNotice.id.desc()).limit(5))).scalars().all()
    m = ov.member
    shown = {"birthday": m.birthday.isoformat() if m and m.birthday else "", "gender": m.gender if m else "unknown",
             "region": m.region if m else ""}
    shown.update(values or {})
    base = f"/m/{scope.code}"
    links = [("⭐", "积分", f"{base}/member/points", str(ov.points)),
             ("🎁", "积分商城", f"{base}/member/mall", ""),
             ("💳", "储值余额", f"{base}/member/wallet", _money(balance.total_fen)[1:] if balance else ""),
             ("💰", "充值", f"{base}/member/wallet#recharge", ""),
             ("👑", "付费会员", f"{base}/member/card", ""),
             ("📈", "成长值明细", f"{base}/member/growth", f"{ov.growth:,}")]
    ctx: dict[str, Any] = {
        "ov": ov, "level_name": level_label(ov.level), "benefits": benefit_words(ov.level), "balance": balance,
        "links": links, "notices": recent, "unread": sum(1 for n in recent if n.read_at is None),
        "values": shown, "errors": errors or {}, "birthday_locked": bool(m and m.birthday),
        "genders": list(GENDER_LABELS.items()), "today": clock.local_today(scope.timezone).isoformat(),
        "display_name": (me.customer.nickname if me.customer else "") or _("会员"),
    }
    if message:
        ctx["flash"] = error_flash(message)
    return store_page(request, me, "store/members/home.html", ctx, status_code=status_code)


@router.get("/m/{shop}/member")
async def store_home(request: Request, session: UoW, me: CurrentShopper) -> Response:
    return await _home(request, session, me)


@router.post("/m/{shop}/member/profile")
async def store_profile(request: Request, session: UoW, me: CurrentShopper, birthday: FormText = "",
                        gender: FormText = "", region: FormText = "") -> Response:
    values = {"birthday": birthday.strip(), "gender": gender.strip() or "unknown", "region": region.strip()[:80]}
    errors: dict[str, str] = {}
    day = _day(values["birthday"])
    if values["birthday"] and day is None:
        errors["birthday"] = _("请选择正确的日期")
    if values["gender"] not in levels.GENDERS:
        errors["gender"] = _("请选择性别")
    if errors:
        return await _home(request, session, me, values=values, errors=errors, status_code=422,
                           message=next(iter(errors.values())))
    saved, err = await attempt(session, lambda: levels.update_profile(
        session, me.shop.scope, _cid(me), birthday=day if day is not None else levels.UNSET, gender=values["gender"],
        region=values["region"]))
    if err is not None or saved is None:
        assert err is not None
        fields = {f["field"]: err.message() for f in err.fields if f.get("field") in values}
        if err.code == "birthday_locked":
            fields = {"birthday": err.message()}
        return await _home(request, session, me, values=values, errors=fields, status_code=err.status,
                           message=err.message())
    resp = RedirectResponse(f"/m/{me.shop.scope.code}/member#profile", status_code=303)
    return flash(resp, _("资料已保存"))


@router.post("/m/{shop}/member/notices/read")
async def store_notices_read(session: UoW, me: CurrentShopper) -> Response:
    await api_levels.mark_notices_read(session, me.shop.scope, _cid(me))
    return RedirectResponse(f"/m/{me.shop.scope.code}/member", status_code=303)


@router.get("/m/{shop}/member/levels")
async def store_levels(request: Request, session: UoW, me: CurrentShopper) -> Response:
    ov = await levels.overview(session, me.shop.scope, _cid(me))
    rows = [{"lv": lv, "benefits": benefit_words(lv), "mine": lv.id == ov.level.id and lv.rank == ov.level.rank}
            for lv in ov.levels]
    return store_page(request, me, "store/members/levels_benefits.html", {
        "ov": ov, "rows": rows, "level_name": level_label(ov.level), "policy": ov.settings.review_policy,
        "window_days": ov.settings.window_days, "growth_per_yuan": ov.settings.growth_per_yuan,
        "actions": [(label, ov.settings.action(key)) for key, label in (
            ("signup", "注册"), ("first_order", "首次下单"), ("checkin", "每日签到"), ("review", "评价"))
            if ov.settings.action(key) > 0],
    })


@router.get("/m/{shop}/member/growth")
async def store_growth(request: Request, session: UoW, me: CurrentShopper,
                       before: Annotated[str, Query(max_length=20)] = "") -> Response:
    scope, cid = me.shop.scope, _cid(me)
    ov = await levels.overview(session, scope, cid)
    rows = await levels.growth_history(session, scope, cid, limit=HISTORY_SIZE, before_id=to_int(before))
    more = rows[-1].id if len(rows) == HISTORY_SIZE else None
    return store_page(request, me, "store/members/levels_growth.html", {
        "ov": ov, "rows": [{"e": e, "label": _(GROWTH_KINDS.get(e.kind, e.kind))} for e in rows],
        "more_url": f"/m/{scope.code}/member/growth?before={more}" if more else "", "first_page": not before,
    })
