"""运费模板: freight templates and the freight quote.

Services never commit; every staff write leaves an audit entry in the same transaction.

Templates
---------

A template has a **mode**:

``free``
    Never charges.
``flat``
    ``flat_fee_fen`` for the parcel, whatever it holds and wherever it goes.
``per_piece`` / ``per_weight``
    Metered by pieces (the sum of quantities) or grams (the sum of unit weight ×
    quantity). A **rule** ``{first, first_fee_fen, additional, additional_fee_fen}`` charges
    ``first_fee_fen`` for the first ``first`` units and ``additional_fee_fen`` for each
    further *started* block of ``additional`` units::

        fee = first_fee_fen + ceil(max(0, units - first) / additional) × additional_fee_fen

    Any parcel pays at least the first fee (a parcel of weightless goods too). **Region
    rules** name provinces by their 2-digit codes (the 34 provincial-level divisions, see
    :data:`siyu.customers.schemas.PROVINCES`); a province is in at most one region rule, and
    provinces in none use the **default rule**.

Any mode may have a **free-shipping threshold** ``free_threshold_fen``: when the goods
amount of the lines under the template is at or above it, those lines ship free.

Each tenant has at most one **default template**, and exactly one once it has any: the first
template becomes the default, making another the default takes the mark over, and the
default cannot be deleted or un-marked (409 ``default_template``: make another the default
first).

The quote (the contract orders call)
------------------------------------

``await quote(session, scope, lines=[FreightLine(...)], province_code="33") -> FreightQuote``

* Lines that need no shipping (virtual goods, vouchers, services) cost nothing and are left
  out of every group.
* The other lines group by template: a line's ``template_id``, or the tenant's default
  template for ``None`` (and for an id that no longer exists). Without a default template
  those lines ship free.
* Each group is charged by its template on its own — the threshold looks only at the goods
  amount of that group's lines — and the freight is the sum of the groups' fees.
* ``FreightLine.weight_g`` is the weight of one unit; ``goods_fen`` is the goods amount of
  the whole line (after whatever discounts the caller applies before freight).
* ``FreightQuote`` gives ``freight_fen``, ``free_shipping`` (nothing to pay for shipping),
  a reason in Chinese and English, and ``per_template``: one :class:`TemplateCharge` per
  group with its units, goods amount, fee and reason.
* An unknown province code is 422 ``unknown_province``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.customers.schemas import PROVINCES
from siyu.kit import audit
from siyu.kit.errors import Conflict, ValidationFailed
from siyu.kit.money import yuan
from siyu.kit.tenancy import TenantScope
from siyu.shipping.models import FreightTemplate
from siyu.shipping.repository import FreightTemplates
from siyu.shipping.schemas import ChargeRule, FreightTemplateIn, RegionRule

__all__ = [
    "MODE_NAMES", "FreightLine", "FreightQuote", "TemplateCharge", "charge_units", "create_template", "delete_template",
    "get_template", "list_templates", "quote", "set_default_template", "update_template",
]

#: Mode → (zh, en) for pages and reasons.
MODE_NAMES: dict[str, tuple[str, str]] = {
    "free": ("包邮", "Free shipping"),
    "flat": ("统一运费", "Flat fee"),
    "per_piece": ("按件计费", "Per piece"),
    "per_weight": ("按重量计费", "Per weight"),
}
_AUDIT_FIELDS = ["name", "mode", "rules", "free_threshold_fen", "is_default"]


# -- rules ---------------------------------------------------------------------------------------


def _invalid(code: str, zh: str, en: str, field_name: str) -> ValidationFailed:
    return ValidationFailed(code, zh, en, fields=[{"field": field_name, "message": en}])


def rules_of(data: FreightTemplateIn) -> dict[str, Any]:
    """The ``rules`` JSON of a template, checked: the rule its mode needs is there, provinces
    are known and each appears in at most one region rule."""
    if data.mode == "free":
        return {}
    if data.mode == "flat":
        if data.flat_fee_fen is None:
            raise _invalid("flat_fee_required", "统一运费模板需要填写运费", "A flat-fee template needs flat_fee_fen",
                           "flat_fee_fen")
        return {"flat_fee_fen": data.flat_fee_fen}
    if data.default_rule is None:
        raise _invalid("default_rule_required", "请填写默认运费规则（未单独设置的地区按它计费）",
                       "A metered template needs default_rule (it prices every province without a region rule)",
                       "default_rule")
    seen: dict[str, int] = {}
    for i, rule in enumerate(data.region_rules):
        for code in rule.provinces:
            if code not in PROVINCES:
                raise _invalid("unknown_province", f"未知的省份编码 {code}", f"Unknown province code {code}",
                               f"region_rules.{i}.provinces")
            if code in seen:
                raise _invalid("province_repeated", f"{PROVINCES[code]}出现在多条地区规则中，每个省份只能属于一条规则",
                               f"Province {code} appears in more than one region rule; each province belongs to one rule at most",
                               f"region_rules.{i}.provinces")
            seen[code] = i
    return {
        "default": data.default_rule.model_dump(),
        "regions": [r.model_dump() for r in data.region_rules],
    }


def charge_units(rule: dict[str, Any], units: int) -> int:
    """Fee of ``units`` under a metered rule: first block, then each started further block."""
    extra = max(0, units - int(rule["first"]))
    blocks = -(-extra // int(rule["additional"]))  # ceiling division
    return int(rule["first_fee_fen"]) + blocks * int(rule["additional_fee_fen"])


def rule_for(template: FreightTemplate, province_code: str) -> tuple[dict[str, Any], bool]:
    """(rule, from a region rule?) of a metered template for a province."""
    for rule in (template.rules or {}).get("regions", []):
        if province_code in rule.get("provinces", []):
            return rule, True
    return (template.rules or {})["default"], False


def template_view(t: FreightTemplate) -> dict[str, Any]:
    """A template's fields in the shape of :class:`~siyu.shipping.schemas.FreightTemplateOut`."""
    rules = t.rules or {}
    return {
        "id": t.id, "name": t.name, "mode": t.mode, "flat_fee_fen": rules.get("flat_fee_fen"),
        "default_rule": ChargeRule(**rules["default"]) if rules.get("default") else None,
        "region_rules": [RegionRule(**r) for r in rules.get("regions", [])],
        "free_threshold_fen": t.free_threshold_fen, "is_default": t.is_default,
        "created_at": t.created_at, "updated_at": t.updated_at,
    }


# -- CRUD ------------------------------------------------------------------------------------------


async def list_templates(session: AsyncSession, scope: TenantScope) -> Sequence[FreightTemplate]:
    """Every template, the default first."""
    return await FreightTemplates(session, scope.id).all()


async def get_template(session: AsyncSession, scope: TenantScope, template_id: int) -> FreightTemplate:
    return await FreightTemplates(session, scope.id).get_or_404(template_id)


async def default_template(session: AsyncSession, scope: TenantScope) -> FreightTemplate | None:
    return await FreightTemplates(session, scope.id).default()


async def create_template(session: AsyncSession, scope: TenantScope, data: FreightTemplateIn) -> FreightTemplate:
    repo = FreightTemplates(session, scope.id)
    rules = rules_of(data)
    make_default = data.is_default or await repo.count_all() == 0
    if make_default:
        await repo.clear_default()
    t = repo.add(FreightTemplate(name=data.name, mode=data.mode, rules=rules, free_threshold_fen=data.free_threshold_fen,
                                 is_default=make_default))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="shipping.template.create", object_type="freight_template",
                 object_id=t.id, after=audit.snapshot(t, _AUDIT_FIELDS))
    return t


def _default_required() -> Conflict:
    return Conflict("default_template", "默认运费模板不能删除或取消默认，请先把其他模板设为默认",
                    "The default template cannot be deleted or un-marked; make another template the default first")


async def update_template(session: AsyncSession, scope: TenantScope, template_id: int, data: FreightTemplateIn) -> FreightTemplate:
    """Replace a template's name, mode, rules and threshold (PUT semantics)."""
    repo = FreightTemplates(session, scope.id)
    t = await repo.get_or_404(template_id)
    rules = rules_of(data)
    if t.is_default and not data.is_default:
        raise _default_required()
    before = audit.snapshot(t, _AUDIT_FIELDS)
    if data.is_default and not t.is_default:
        await repo.clear_default()
        t.is_default = True
    t.name, t.mode, t.rules, t.free_threshold_fen = data.name, data.mode, rules, data.free_threshold_fen
    await session.flush()
    after = audit.snapshot(t, _AUDIT_FIELDS)
    if after != before:
        audit.record(session, tenant_id=scope.id, action="shipping.template.update", object_type="freight_template",
                     object_id=t.id, before=before, after=after)
    return t


async def set_default_template(session: AsyncSession, scope: TenantScope, template_id: int) -> FreightTemplate:
    repo = FreightTemplates(session, scope.id)
    t = await repo.get_or_404(template_id)
    if not t.is_default:
        await repo.clear_default()
        t.is_default = True
        await session.flush()
        audit.record(session, tenant_id=scope.id, action="shipping.template.default", object_type="freight_template",
                     object_id=t.id, after={"is_default": True, "name": t.name})
    return t


async def delete_template(session: AsyncSession, scope: TenantScope, template_id: int) -> None:
    repo = FreightTemplates(session, scope.id)
    t = await repo.get_or_404(template_id)
    if t.is_default:
        raise _default_required()
    before = audit.snapshot(t, _AUDIT_FIELDS)
    await session.delete(t)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="shipping.template.delete", object_type="freight_template",
                 object_id=template_id, before=before)


# -- quote -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FreightLine:
    sku_id: int
    quantity: int
    weight_g: int  # one unit
    goods_fen: int  # the whole line
    requires_shipping: bool = True
    template_id: int | None = None


@dataclass(frozen=True, slots=True)
class TemplateCharge:
    template_id: int | None
    template_name: str | None
    mode: str
    sku_ids: list[int]
    units: int
    goods_fen: int
    freight_fen: int
    free_shipping: bool
    reason_zh: str
    reason_en: str


@dataclass(frozen=True, slots=True)
class FreightQuote:
    freight_fen: int
    free_shipping: bool
    reason_zh: str
    reason_en: str
    per_template: list[TemplateCharge] = field(default_factory=list)


def _check_line(line: FreightLine) -> None:
    if line.quantity < 1 or line.weight_g < 0 or line.goods_fen < 0:
        raise ValidationFailed("invalid_freight_line", "商品数量、重量或金额无效", "A line has an invalid quantity, weight or amount",
                               fields=[{"field": "lines", "message": f"sku {line.sku_id}"}])


def charge_group(template: FreightTemplate | None, lines: Sequence[FreightLine], province_code: str) -> TemplateCharge:
    """The fee of the lines under one template (``None``: the tenant has no template)."""
    sku_ids = [ln.sku_id for ln in lines]
    goods = sum(ln.goods_fen for ln in lines)
    pieces = sum(ln.quantity for ln in lines)
    if template is None:
        return TemplateCharge(None, None, "free", sku_ids, pieces, goods, 0, True,
                              "店铺未设置运费模板，包邮", "No freight template set: free shipping")
    mode = template.mode
    units = sum(ln.quantity * ln.weight_g for ln in lines) if mode == "per_weight" else pieces

    def made(fee: int, zh: str, en: str) -> TemplateCharge:
        return TemplateCharge(template.id, template.name, mode, sku_ids, units, goods, fee, fee == 0, zh, en)

    threshold = template.free_threshold_fen
    if threshold is not None and goods >= threshold:
        return made(0, f"满 ¥{yuan(threshold)} 包邮", f"Free shipping on orders of ¥{yuan(threshold)} or more")
    if mode == "free":
        return made(0, "包邮", "Free shipping")
    if mode == "flat":
        fee = int((template.rules or {}).get("flat_fee_fen", 0))
        return made(fee, f"统一运费 ¥{yuan(fee)}", f"Flat fee ¥{yuan(fee)}")
    rule, regional = rule_for(template, province_code)
    fee = charge_units(rule, units)
    what_zh, what_en = ("件", "piece(s)") if mode == "per_piece" else ("克", "g")
    where_zh = PROVINCES.get(province_code, province_code) if regional else "默认地区"
    where_en = f"province {province_code}" if regional else "default region"
    return made(fee, f"{where_zh} {units} {what_zh}：运费 ¥{yuan(fee)}",
                f"{where_en}, {units} {what_en}: ¥{yuan(fee)}")


async def quote(session: AsyncSession, scope: TenantScope, *, lines: Sequence[FreightLine], province_code: str) -> FreightQuote:
    """The freight of a cart delivered to ``province_code`` (see the module docstring)."""
    if province_code not in PROVINCES:
        raise _invalid("unknown_province", f"未知的省份编码 {province_code}", f"Unknown province code {province_code}",
                       "province_code")
    for line in lines:
        _check_line(line)
    shipping = [ln for ln in lines if ln.requires_shipping]
    if not shipping:
        return FreightQuote(0, True, "无需物流配送，免运费", "Nothing to ship: no freight", [])
    repo = FreightTemplates(session, scope.id)
    found = await repo.by_ids(ln.template_id for ln in shipping if ln.template_id is not None)
    default = await repo.default()
    groups: dict[int | None, list[FreightLine]] = {}
    for ln in shipping:
        t = found.get(ln.template_id) if ln.template_id is not None else None
        t = t or default
        groups.setdefault(t.id if t else None, []).append(ln)
    by_id = {**found, **({default.id: default} if default else {})}
    charges = [charge_group(by_id.get(tid) if tid is not None else None, group, province_code)
               for tid, group in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))]
    total = sum(c.freight_fen for c in charges)
    if total == 0:
        zh, en = "包邮", "Free shipping"
    else:
        zh, en = f"运费 ¥{yuan(total)}", f"Freight ¥{yuan(total)}"
    if len(charges) == 1:
        zh, en = charges[0].reason_zh, charges[0].reason_en
    return FreightQuote(total, total == 0, zh, en, charges)
