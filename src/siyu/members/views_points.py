"""Pages of members: points.

* Console ``/admin/members/points`` (积分规则): the tenant's points figures, the rules form
  (earning, award rules, check-in, points at checkout, expiry and notices) and the latest
  entries of every member. ``members.read`` shows it, ``members.write`` saves.
* Console ``POST /admin/members/{customer_id}/points/adjust``: the manual adjustment form of
  the member detail page (``amount`` signed, or with ``direction=subtract``; ``reason``;
  ``next``, a page of that member to return to; ``members.write``; audited by the service),
  answered by a redirect back to the member with a flash message.
* Storefront ``/m/{shop}/member/points`` (我的积分): balance, points expiring soon, the
  check-in button with the streak, what points are worth, and the history (older entries
  through ``?before_id=``); ``POST .../checkin`` checks in.

Plain forms carrying ``_csrf``, answered by a 303 with a flash message or by the page again
with its errors; every service call runs in a savepoint (:func:`attempt`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, ShopperSession
from siyu.kit.context import current_language
from siyu.kit.errors import NotFound
from siyu.kit.i18n import gettext as _
from siyu.kit.security import mask_phone
from siyu.kit.types import MAX_ID, PathId
from siyu.kit.web import UoW
from siyu.members import points
from siyu.members.models import PointsEntry
from siyu.staff.access import StaffPrincipal, require
from siyu.web import i18n_members_points  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import attempt, error_flash, safe_next
from siyu.web.page import console_page, flash, store_page

router = APIRouter(include_in_schema=False)

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]
FormText = Annotated[str, Form(max_length=400)]

BASE = "/admin/members/points"
RECENT = 20
STORE_PAGE = 20
EXPIRY_MODES = {"yearly": "按自然年：次年年底清零", "rolling": "滚动有效期：获得后 N 天", "never": "永久有效"}
#: Form field → (min, max, message) for the whole-number fields of the rules form.
NUMBERS: dict[str, tuple[int, int, str]] = {
    "earn_per_yuan": (0, 1000, "需为 0–1000 的整数"),
    "checkin_points": (0, 100_000, "需为 0–100000 的整数"),
    "checkin_streak_days": (0, 365, "需为 0–365 的整数"),
    "checkin_streak_bonus": (0, 100_000, "需为 0–100000 的整数"),
    "points_per_yuan": (1, 100_000, "需为 1–100000 的整数"),
    "min_redeem_points": (0, 10_000_000, "需为 0–10000000 的整数"),
    "expiry_days": (1, 3650, "需为 1–3650 的整数"),
    "notice_days": (0, 90, "需为 0–90 的整数"),
}
AWARD_RANGE = (0, 10_000_000, "需为 0–10000000 的整数")
_PCT = re.compile(r"^(\d{1,3})(?:\.(\d{1,2}))?$")


def pct_to_bp(raw: str) -> int | None:
    """"30" → 3000, "25.5" → 2550 (0–100, at most two decimals); None when it is not that."""
    m = _PCT.match(raw.strip())
    if not m:
        return None
    bp = int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))
    return bp if bp <= 10000 else None


def _english() -> bool:
    return current_language().startswith("en")


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 9


def _local(value: Any, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d") if value else ""


def _entry_view(e: PointsEntry) -> dict[str, Any]:
    return {"e": e, "label": points.kind_label(e.kind, _english())}


# -- console ------------------------------------------------------------------------------------------------------


def _state(r: points.PointsRules) -> dict[str, str]:
    out = {k: str(v) for k, v in r.as_dict().items() if k not in ("awards", "max_share_bp", "redeem_enabled")}
    out["max_share_pct"] = points.bp_text(r.max_share_bp, 100)
    out["redeem_enabled"] = "1" if r.redeem_enabled else ""
    for rule in points.award_rules():
        out[f"award_{rule.name}"] = str(r.award_points(rule.name))
    return out


async def _names(session: AsyncSession, me: StaffPrincipal, ids: set[int]) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for cid in sorted(ids):
        try:
            c = await customers_service.get_customer(session, me.scope, cid)
        except NotFound:
            continue
        out[cid] = (c.nickname or _("顾客 %(id)s") % {"id": cid}, mask_phone(c.phone) or "")
    return out


async def _settings_page(request: Request, session: AsyncSession, me: StaffPrincipal, *,
                         state: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                         status_code: int = 200, message: str = "") -> HTMLResponse:
    r = await points.rules(session, me.scope)
    shown = _state(r)
    shown.update(state or {})
    recent = await points.recent_entries(session, me.scope, limit=RECENT)
    ctx: dict[str, Any] = {
        "title": _("积分规则"), "state": shown, "errors": errors or {}, "can_write": me.can("members.write"),
        "award_rules": [{"name": a.name, "label": a.label_en if _english() else a.label_zh} for a in points.award_rules()],
        "modes": EXPIRY_MODES, "totals": await points.totals(session, me.scope),
        "entries": [_entry_view(e) for e in recent], "names": await _names(session, me, {e.customer_id for e in recent}),
        "rules": r,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/points_settings.html", ctx, status_code=status_code)


@router.get(BASE)
async def settings_page(request: Request, session: UoW, me: Reader) -> Response:
    return await _settings_page(request, session, me)


def _parse(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, (lo, hi, msg) in NUMBERS.items():
        raw = form.get(name, "").strip()
        if _digits(raw) and lo <= int(raw) <= hi:
            values[name] = int(raw)
        else:
            errors[name] = _(msg)
    awards: dict[str, int] = {}
    for rule in points.award_rules():
        raw = form.get(f"award_{rule.name}", "").strip()
        lo, hi, msg = AWARD_RANGE
        if _digits(raw) and lo <= int(raw) <= hi:
            awards[rule.name] = int(raw)
        else:
            errors[f"award_{rule.name}"] = _(msg)
    share = pct_to_bp(form.get("max_share_pct", ""))
    if share is None:
        errors["max_share_pct"] = _("需为 0–100 的数字，最多两位小数")
    mode = form.get("expiry_mode", "")
    if mode not in EXPIRY_MODES:
        errors["expiry_mode"] = _("请选择积分有效期")
    if errors:
        return {}, errors
    return {**values, "max_share_bp": share, "awards": awards, "expiry_mode": mode,
            "redeem_enabled": bool(form.get("redeem_enabled"))}, {}


@router.post(BASE)
async def settings_save(request: Request, session: UoW, me: Writer) -> Response:
    raw = await request.form()
    form = {k: str(v)[:40] for k, v in raw.items() if isinstance(v, str) and k != "_csrf"}
    data, errors = _parse(form)
    if errors:
        return await _settings_page(request, session, me, state=form, errors=errors, status_code=422,
                                    message=_("请检查标红的项目"))
    saved, err = await attempt(session, lambda: points.save_rules(session, me.scope, points.PointsRulesIn(**data)))
    if err is not None or saved is None:
        assert err is not None
        return await _settings_page(request, session, me, state=form, status_code=err.status, message=err.message())
    return flash(RedirectResponse(BASE, status_code=303), _("已保存积分规则"))


@router.post("/admin/members/{customer_id}/points/adjust")
async def adjust(customer_id: PathId, session: UoW, me: Writer, amount: FormText = "", reason: FormText = "",
                 direction: FormText = "add", next: FormText = "") -> Response:
    home = f"/admin/members/{customer_id}"
    target = safe_next(next.strip(), home)
    # Back to this member's page (any of its tabs), never elsewhere.
    if target != home and not target.startswith((home + "?", home + "#")):
        target = home
    back = RedirectResponse(target if target != home else home + "#points", status_code=303)
    await customers_service.get_customer(session, me.scope, customer_id)  # another tenant's: 404
    text = amount.strip().lstrip("+")
    negative = text.startswith("-") or direction == "subtract"
    text = text.lstrip("-")
    if not _digits(text) or int(text) == 0:
        return flash(back, _("请填写要调整的积分数量（非 0 整数）"), "error")
    n = -int(text) if negative else int(text)
    entry, err = await attempt(session, lambda: points.adjust(session, me.scope, customer_id, n, reason=reason))
    if err is not None or entry is None:
        assert err is not None
        return flash(back, err.message(), "error")
    msg = _("已增加 %(n)s 积分") if n > 0 else _("已扣减 %(n)s 积分")
    return flash(back, msg % {"n": abs(n)})


# -- storefront ------------------------------------------------------------------------------------------------------




def _cid(shopper: ShopperSession) -> int:
    assert shopper.customer is not None  # CurrentShopper guarantees it
    return shopper.customer.id


@router.get("/m/{shop}/member/points")
async def store_points(request: Request, session: UoW, me: CurrentShopper,
                       before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    scope, cid = me.shop.scope, _cid(me)
    r = await points.rules(session, scope)
    bal = await points.balance(session, scope, cid, r=r)
    status = await points.checkin_status(session, scope, cid, r=r)
    rows = await points.history(session, scope, cid, limit=STORE_PAGE, before_id=before_id)
    return store_page(request, me, "store/members/points_home.html", {
        "bal": bal, "expiring_day": _local(bal.expiring_at, scope.timezone), "checkin": status, "rules": r,
        "entries": [_entry_view(e) for e in rows], "older": rows[-1].id if len(rows) == STORE_PAGE else None,
        "paged": before_id is not None, "yuan_points": r.points_per_yuan, "max_share_pct": points.bp_text(r.max_share_bp, 100),
    })


@router.post("/m/{shop}/member/points/checkin")
async def store_checkin(session: UoW, me: CurrentShopper) -> Response:
    back = RedirectResponse(f"/m/{me.shop.scope.code}/member/points", status_code=303)
    res, err = await attempt(session, lambda: points.checkin(session, me.shop.scope, _cid(me)))
    if err is not None or res is None:
        assert err is not None
        return flash(back, err.message(), "error")
    if not res.checked_in:
        return flash(back, _("今天已经签到过了，明天再来吧"))
    total = res.points + res.bonus
    if res.bonus:
        return flash(back, _("签到成功，连续 %(days)s 天，获得 %(n)s 积分（含连签奖励 %(bonus)s）")
                     % {"days": res.streak, "n": total, "bonus": res.bonus})
    return flash(back, _("签到成功，连续 %(days)s 天，获得 %(n)s 积分") % {"days": res.streak, "n": total})
