"""Console pages of freight templates (``/admin/shipping/freight-templates``): the list with
make-default and delete, and the editor whose rule rows are a small Alpine component.

Same conventions as the other console pages: plain forms carrying ``_csrf``, a 303 redirect
with a flash message after a successful post, the page again with field errors and a 4xx
status otherwise; service calls run in a savepoint (:func:`attempt`). Reading needs
``orders.read``, every post ``orders.write``. The console speaks yuan (``8.00``); the
service stores fen.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog.service import parse_yuan
from siyu.customers.schemas import PROVINCES
from siyu.kit import audit
from siyu.kit.errors import DomainError
from siyu.kit.i18n import gettext as _
from siyu.kit.money import yuan
from siyu.kit.types import PathId
from siyu.kit.web import UoW
from siyu.shipping import service
from siyu.shipping.models import FreightTemplate
from siyu.shipping.schemas import FreightTemplateIn
from siyu.staff.access import StaffPrincipal, require
from siyu.web import i18n_shipping  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import attempt, error_flash
from siyu.web.page import console_page, flash

router = APIRouter(include_in_schema=False)

Reader = Annotated[StaffPrincipal, require("orders.read")]
Writer = Annotated[StaffPrincipal, require("orders.write")]
BASE = "/admin/shipping/freight-templates"
MODES = {code: zh for code, (zh, _en) in service.MODE_NAMES.items()}
#: Form field → the message shown under it when the value is refused.
FIELD_MESSAGES = {
    "name": "请填写模板名称（最多 60 字）",
    "mode": "请选择计费方式",
    "flat_fee": "请填写运费，如 8 或 8.00",
    "free_threshold": "包邮门槛需为金额，如 99；不设门槛请留空",
    "rules": "运费规则有误：首件/首重与续件/续重需为不小于 1 的整数，费用为不小于 0 的金额",
}
_LOC_FIELD = {"name": "name", "mode": "mode", "flat_fee_fen": "flat_fee", "free_threshold_fen": "free_threshold",
              "default_rule": "rules", "region_rules": "rules"}


class FormProblem(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        super().__init__(next(iter(fields.values()), ""))


def _fen_text(fen: int | None) -> str:
    return "" if fen is None else yuan(fen)


def _rule_state(rule: dict[str, Any] | None, unit: int) -> dict[str, Any]:
    rule = rule or {"first": unit, "first_fee_fen": 0, "additional": unit, "additional_fee_fen": 0}
    return {"first": str(rule["first"]), "first_fee": _fen_text(rule["first_fee_fen"]), "additional": str(rule["additional"]),
            "additional_fee": _fen_text(rule["additional_fee_fen"])}


def editor_state(t: FreightTemplate | None) -> dict[str, Any]:
    """What the editor shows: fees in yuan, units as typed text."""
    if t is None:
        return {"name": "", "mode": "per_piece", "flat_fee": "", "free_threshold": "", "is_default": False,
                "rules": {"default": _rule_state(None, 1), "regions": []}}
    rules = t.rules or {}
    unit = 1000 if t.mode == "per_weight" else 1
    return {
        "name": t.name, "mode": t.mode, "flat_fee": _fen_text(rules.get("flat_fee_fen")),
        "free_threshold": _fen_text(t.free_threshold_fen), "is_default": t.is_default,
        "rules": {"default": _rule_state(rules.get("default"), unit),
                  "regions": [{"provinces": list(r["provinces"]), **_rule_state(r, unit)} for r in rules.get("regions", [])]},
    }


def _money(text: Any, field: str, *, required: bool) -> int | None:
    text = str(text or "").strip()
    if not text:
        if required:
            raise FormProblem({field: _(FIELD_MESSAGES[field])})
        return None
    try:
        return parse_yuan(text)
    except ValueError:
        raise FormProblem({field: _(FIELD_MESSAGES[field])}) from None


def _units(text: Any) -> int:
    text = str(text or "").strip()
    if not text.isdigit() or len(text) > 9:
        raise FormProblem({"rules": _(FIELD_MESSAGES["rules"])})
    return int(text)


def form_input(state: dict[str, Any]) -> FreightTemplateIn:
    """The editor's state → a checked :class:`FreightTemplateIn`, or :class:`FormProblem`
    naming every refused field at once."""
    errors: dict[str, str] = {}

    def money(text: Any, field: str, *, required: bool) -> int | None:
        try:
            return _money(text, field, required=required)
        except FormProblem as exc:
            errors.update({k: v for k, v in exc.fields.items() if k not in errors})
            return 0

    def units(text: Any) -> int:
        try:
            return _units(text)
        except FormProblem as exc:
            errors.update({k: v for k, v in exc.fields.items() if k not in errors})
            return 1

    def rule_in(row: dict[str, Any]) -> dict[str, Any]:
        return {"first": units(row.get("first")), "first_fee_fen": money(row.get("first_fee"), "rules", required=True),
                "additional": units(row.get("additional")),
                "additional_fee_fen": money(row.get("additional_fee"), "rules", required=True)}

    mode = state["mode"]
    body: dict[str, Any] = {"name": state["name"], "mode": mode, "is_default": state["is_default"],
                            "free_threshold_fen": money(state["free_threshold"], "free_threshold", required=False)}
    if mode == "flat":
        body["flat_fee_fen"] = money(state["flat_fee"], "flat_fee", required=True)
    if mode in ("per_piece", "per_weight"):
        rules = state["rules"]
        body["default_rule"] = rule_in(rules.get("default") or {})
        body["region_rules"] = [{"provinces": list(r.get("provinces") or []), **rule_in(r)} for r in rules.get("regions", [])]
    try:
        data = FreightTemplateIn(**body)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(x) for x in err.get("loc", ())]
            name = _LOC_FIELD.get(loc[0] if loc else "", "rules")
            if loc[:1] == ["region_rules"] and "provinces" in loc:
                errors.setdefault("rules", _("每条地区规则至少选择一个省份"))
            errors.setdefault(name, _(FIELD_MESSAGES[name]))
        raise FormProblem(errors) from None
    if errors:
        raise FormProblem(errors)
    return data


def _state_from_form(name: str, mode: str, flat_fee: str, free_threshold: str, is_default: str, rules: str) -> dict[str, Any]:
    try:
        parsed = json.loads(rules or "{}")
    except ValueError:
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    raw_default = parsed.get("default")
    default: dict[str, Any] = raw_default if isinstance(raw_default, dict) else {}
    raw_regions = parsed.get("regions")
    regions: list[dict[str, Any]] = [r for r in raw_regions if isinstance(r, dict)] if isinstance(raw_regions, list) else []
    clean_regions = []
    for r in regions[:40]:
        raw_provinces = r.get("provinces")
        provinces: list[Any] = raw_provinces if isinstance(raw_provinces, list) else []
        clean_regions.append({"provinces": [str(p)[:2] for p in provinces[:40]],
                              **{k: str(r.get(k) or "")[:20] for k in ("first", "first_fee", "additional", "additional_fee")}})
    return {
        "name": name.strip(), "mode": mode if mode in MODES else "per_piece", "flat_fee": flat_fee.strip(),
        "free_threshold": free_threshold.strip(), "is_default": is_default in ("1", "on", "true"),
        "rules": {"default": {k: str(default.get(k) or "")[:20] for k in ("first", "first_fee", "additional", "additional_fee")},
                  "regions": clean_regions},
    }


def summary(t: FreightTemplate) -> str:
    """One line describing a template's charges, in the page's language."""
    rules = t.rules or {}
    if t.mode == "free":
        text = _("全场包邮")
    elif t.mode == "flat":
        text = _("每单 ¥%(fee)s") % {"fee": yuan(int(rules.get("flat_fee_fen", 0)))}
    else:
        d = rules.get("default") or {}
        tpl = _("首 %(first)s 件 ¥%(ff)s，续 %(add)s 件 ¥%(af)s") if t.mode == "per_piece" else \
            _("首重 %(first)s 克 ¥%(ff)s，续重 %(add)s 克 ¥%(af)s")
        text = tpl % {"first": d.get("first"), "ff": yuan(int(d.get("first_fee_fen", 0))), "add": d.get("additional"),
                      "af": yuan(int(d.get("additional_fee_fen", 0)))}
        if rules.get("regions"):
            text += _("；另有 %(n)s 条地区规则") % {"n": len(rules["regions"])}
    if t.free_threshold_fen is not None:
        text += _("；满 ¥%(amount)s 包邮") % {"amount": yuan(t.free_threshold_fen)}
    return text


# -- pages ---------------------------------------------------------------------------------------


async def _list_page(request: Request, session: AsyncSession, me: StaffPrincipal, *, message: str = "",
                     status_code: int = 200) -> HTMLResponse:
    rows = await service.list_templates(session, me.scope)
    ctx: dict[str, Any] = {"title": _("运费模板"), "items": [{"t": t, "summary": summary(t)} for t in rows],
                           "modes": MODES, "can_write": me.can("orders.write")}
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/shipping/list.html", ctx, status_code=status_code)


@router.get(BASE)
async def template_list(request: Request, session: UoW, me: Reader) -> Response:
    return await _list_page(request, session, me)


def _editor(request: Request, me: StaffPrincipal, *, template: FreightTemplate | None, state: dict[str, Any],
            errors: dict[str, str] | None = None, status_code: int = 200, message: str = "") -> HTMLResponse:
    ctx: dict[str, Any] = {
        "title": template.name if template else _("新建运费模板"), "template": template, "state": state,
        "errors": errors or {}, "modes": MODES, "provinces": PROVINCES, "can_write": me.can("orders.write"),
        "action": f"{BASE}/{template.id}" if template else BASE,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/shipping/edit.html", ctx, status_code=status_code)


@router.get(BASE + "/new")
async def template_new(request: Request, me: Writer) -> Response:
    return _editor(request, me, template=None, state=editor_state(None))


@router.get(BASE + "/{template_id}")
async def template_edit(template_id: PathId, request: Request, session: UoW, me: Reader) -> Response:
    t = await service.get_template(session, me.scope, template_id)
    return _editor(request, me, template=t, state=editor_state(t))


Text = Annotated[str, Form(max_length=200)]


async def _save(request: Request, session: AsyncSession, me: StaffPrincipal, template: FreightTemplate | None,
                state: dict[str, Any]) -> Response:
    try:
        data = form_input(state)
    except FormProblem as exc:
        return _editor(request, me, template=template, state=state, errors=exc.fields, status_code=422,
                       message=str(exc))
    if template is None:
        saved, err = await attempt(session, lambda: service.create_template(session, me.scope, data))
    else:
        tid = template.id
        saved, err = await attempt(session, lambda: service.update_template(session, me.scope, tid, data))
    if err is not None or saved is None:
        assert err is not None
        return _editor(request, me, template=template, state=state, status_code=err.status, message=err.message(),
                       errors=_domain_errors(err))
    return flash(RedirectResponse(BASE, status_code=303), _("已保存运费模板 %(name)s") % {"name": saved.name})


def _domain_errors(err: DomainError) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in err.fields:
        name = _LOC_FIELD.get(str(f.get("field", "")).split(".")[0], "rules")
        out.setdefault(name, err.message())
    return out


@router.post(BASE)
async def template_create(request: Request, session: UoW, me: Writer, name: Text = "", mode: Text = "",
                          flat_fee: Text = "", free_threshold: Text = "", is_default: Text = "",
                          rules: Annotated[str, Form(max_length=20_000)] = "") -> Response:
    state = _state_from_form(name, mode, flat_fee, free_threshold, is_default, rules)
    return await _save(request, session, me, None, state)


@router.post(BASE + "/{template_id}")
async def template_update(template_id: PathId, request: Request, session: UoW, me: Writer, name: Text = "",
                          mode: Text = "", flat_fee: Text = "", free_threshold: Text = "", is_default: Text = "",
                          rules: Annotated[str, Form(max_length=20_000)] = "") -> Response:
    t = await service.get_template(session, me.scope, template_id)  # another tenant's id is a 404 page
    state = _state_from_form(name, mode, flat_fee, free_threshold, is_default, rules)
    return await _save(request, session, me, t, state)


@router.post(BASE + "/{template_id}/default")
async def template_default(template_id: PathId, session: UoW, me: Writer) -> Response:
    t = await service.set_default_template(session, me.scope, template_id)
    return flash(RedirectResponse(BASE, status_code=303), _("已将 %(name)s 设为默认运费模板") % {"name": t.name})


@router.post(BASE + "/{template_id}/delete")
async def template_delete(template_id: PathId, request: Request, session: UoW, me: Writer) -> Response:
    t = await service.get_template(session, me.scope, template_id)
    name = t.name
    _done, err = await attempt(session, lambda: service.delete_template(session, me.scope, template_id))
    if err is not None:
        return await _list_page(request, session, me, message=err.message(), status_code=err.status)
    return flash(RedirectResponse(BASE, status_code=303), _("已删除运费模板 %(name)s") % {"name": name})


audit.describe(
    actions={"shipping.template.create": "新建运费模板", "shipping.template.update": "修改运费模板",
             "shipping.template.default": "设为默认运费模板", "shipping.template.delete": "删除运费模板"},
    objects={"freight_template": "运费模板"},
)
