"""The price of a cart, computed on the server only: one function for every page that shows one.

:func:`price` serves the product page (one SKU, no customer), the cart, the checkout
preview and order placement, so the amount a shopper sees is the amount the order takes.
Prices come from :func:`siyu.catalog.service.skus_for_sale`; nothing a client sends is a
price.

Steps
-----

1. **Lines.** Lines naming the same SKU are merged. Every line is checked at once: unknown
   SKUs (another tenant's included) and quantities outside 1–999 are one
   ``422 invalid_lines``; SKUs that exist but are not on sale are one ``409 sku_not_on_sale``.
   Both list every bad line in ``lines: [{sku_id, reason}]``.
2. **Adjusters**, in this fixed order (:data:`STEPS`):

   ``member``     member prices and member discounts (members module)
   ``promotion``  promotions: 满减, 限时折扣, bundles (marketing module)
   ``coupon``     the coupon the shopper picked (``options["coupon_id"]``)
   — freight is quoted here, on the goods after the discounts above —
   ``points``     points used as cash (``options["points"]``)
   ``balance``    stored value used as cash (``options["use_balance"]``)

   A step runs its adjusters in registration order; each sees the lines with the amounts
   left after every earlier offer (:class:`PricingContext`) and returns :class:`Offer` s.
   An offer either names per-line discounts (``line_fen``) or a total (``total_fen``) that
   is spread over its eligible lines (``sku_ids``, default all) by largest remainder
   weighted by what each line still costs. Discounts are capped at what a line still costs,
   so no line and no order ever goes below zero. An offer with ``applied=False`` takes
   nothing and is shown with its reason ("还差 ¥20 可减 ¥30").
3. **Freight** from :func:`siyu.shipping.service.quote` on the goods after the member,
   promotion and coupon steps. Points and balance come after the quote and pay for goods
   only, so spending points never changes the freight. Without a province the freight is 0
   with the reason "选择收货地址后计算运费". Each template group's fee is spread over the
   lines of that group by largest remainder weighted by their goods amount.

Per line ``paid_fen = subtotal_fen − discount_fen + freight_fen``; the order's totals are
the sums of the lines exactly, and ``payable_fen = goods_fen − discount_fen + freight_fen``.

An offer whose ``data`` says ``free_shipping`` (a member level's 包邮 benefit) waives the
freight quoted after it. ``points`` pay for goods only; ``balance`` (stored value is money)
may pay the freight too, so an order can be paid by balance alone. Points and balance are
ways of paying, not price cuts: the order keeps them apart (``Order.points_fen``,
``Order.balance_fen``) although the lines count them in ``discount_fen``.

Adjusters are registered by the modules that own the offers
(``register_adjuster("coupon", fn)``); none are registered by default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.catalog.service import SkuForSale
from siyu.kit.errors import Conflict, ValidationFailed
from siyu.kit.money import allocate
from siyu.kit.tenancy import TenantScope
from siyu.shipping import service as shipping_service

#: Adjuster steps in the order they run.
STEPS: tuple[str, ...] = ("member", "promotion", "coupon", "points", "balance")
#: Steps that run before freight is quoted (the rest pay for goods only).
STEPS_BEFORE_FREIGHT: frozenset[str] = frozenset({"member", "promotion", "coupon"})
#: Steps whose offers may also pay the freight (stored value is money; points are not).
STEPS_PAYING_FREIGHT: frozenset[str] = frozenset({"balance"})
#: Steps that are a way of paying rather than a price cut (kept apart on the order).
PAYMENT_STEPS: frozenset[str] = frozenset({"points", "balance"})
MAX_QUANTITY = 999
MAX_LINES = 99
NO_ADDRESS_ZH = "选择收货地址后计算运费"
NO_ADDRESS_EN = "Freight is calculated once you choose a delivery address"


@dataclass(frozen=True, slots=True)
class Offer:
    """One offer an adjuster found: applied (it takes money off) or not (shown with a reason).

    ``line_fen`` ({sku_id: fen}) discounts named lines; otherwise ``total_fen`` is spread
    over ``sku_ids`` (``None``: every line). Negative amounts count as zero.
    """

    code: str
    label_zh: str
    label_en: str
    applied: bool = True
    reason_zh: str = ""
    reason_en: str = ""
    total_fen: int = 0
    line_fen: dict[int, int] | None = None
    sku_ids: Sequence[int] | None = None
    #: Anything the owning module needs back when the order is placed (coupon id, points used...).
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ContextLine:
    sku: SkuForSale
    quantity: int
    subtotal_fen: int
    discount_fen: int = 0
    #: This line's share of the freight, once quoted.
    freight_fen: int = 0

    @property
    def sku_id(self) -> int:
        return self.sku.sku_id

    @property
    def amount_fen(self) -> int:
        """What the goods of the line still cost after the offers so far (freight apart)."""
        return self.subtotal_fen - self.discount_fen


@dataclass(slots=True)
class PricingContext:
    """What an adjuster sees. ``customer_id`` is ``None`` for a visitor (product page)."""

    scope: TenantScope
    customer_id: int | None
    step: str
    lines: list[ContextLine]
    options: dict[str, Any]
    offers: list[AppliedOffer]
    #: Set once freight is quoted (for the ``points`` and ``balance`` steps).
    freight_fen: int | None = None
    #: True when an order is being placed from this price (not a preview): an adjuster whose
    #: offer the shopper did not ask for may skip working out what it *could* offer.
    placing: bool = False

    @property
    def goods_fen(self) -> int:
        return sum(ln.subtotal_fen for ln in self.lines)

    @property
    def amount_fen(self) -> int:
        """What the goods still cost after the offers so far (freight apart)."""
        return sum(ln.amount_fen for ln in self.lines)

    @property
    def due_fen(self) -> int:
        """What is still to pay, freight included (0 before freight is quoted)."""
        return sum(ln.amount_fen + ln.freight_fen for ln in self.lines)


Adjuster = Callable[[AsyncSession, PricingContext], Awaitable[Sequence[Offer]]]
_adjusters: dict[str, list[Adjuster]] = {step: [] for step in STEPS}


def register_adjuster(step: str, fn: Adjuster) -> Adjuster:
    """Add ``fn`` to ``step``; registering the same function twice keeps one."""
    if step not in _adjusters:
        raise ValueError(f"unknown pricing step {step!r}; steps are {', '.join(STEPS)}")
    if fn not in _adjusters[step]:
        _adjusters[step].append(fn)
    return fn


def unregister_adjuster(step: str, fn: Adjuster) -> None:
    if fn in _adjusters.get(step, []):
        _adjusters[step].remove(fn)


@dataclass(slots=True)
class AppliedOffer:
    """An offer as it ended up: what it took in total and from each line."""

    step: str
    code: str
    label_zh: str
    label_en: str
    applied: bool
    reason_zh: str
    reason_en: str
    fen: int
    line_fen: dict[int, int]
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "code": self.code, "label_zh": self.label_zh, "label_en": self.label_en,
                "applied": self.applied, "reason_zh": self.reason_zh, "reason_en": self.reason_en, "fen": self.fen,
                "lines": {str(k): v for k, v in self.line_fen.items() if v}, "data": self.data}


@dataclass(slots=True)
class QuoteLine:
    sku: SkuForSale
    quantity: int
    unit_price_fen: int
    subtotal_fen: int
    discount_fen: int
    freight_fen: int
    paid_fen: int
    #: ``[{"code", "label", "fen"}]``: what each offer took from this line.
    discounts: list[dict[str, Any]]

    @property
    def sku_id(self) -> int:
        return self.sku.sku_id

    @property
    def requires_shipping(self) -> bool:
        return self.sku.requires_shipping


@dataclass(frozen=True, slots=True)
class FreightInfo:
    fen: int
    reason_zh: str
    reason_en: str
    #: False while no province is known (nothing was quoted).
    quoted: bool
    province_code: str | None


@dataclass(slots=True)
class Quote:
    lines: list[QuoteLine]
    goods_fen: int
    discount_fen: int
    freight_fen: int
    payable_fen: int
    offers: list[AppliedOffer]
    freight: FreightInfo

    @property
    def item_count(self) -> int:
        return sum(ln.quantity for ln in self.lines)

    @property
    def requires_shipping(self) -> bool:
        return any(ln.requires_shipping for ln in self.lines)

    def breakdown(self) -> dict[str, Any]:
        """The JSON kept on the order (``Order.pricing``) and shown on its page."""
        return {
            "goods_fen": self.goods_fen, "discount_fen": self.discount_fen, "freight_fen": self.freight_fen,
            "payable_fen": self.payable_fen,
            "offers": [o.as_dict() for o in self.offers],
            "freight": {"fen": self.freight.fen, "reason_zh": self.freight.reason_zh, "reason_en": self.freight.reason_en,
                        "quoted": self.freight.quoted, "province_code": self.freight.province_code},
        }


# -- line checks -----------------------------------------------------------------------------------


def merge_lines(lines: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge lines naming the same SKU (first appearance keeps its place); checks shape and quantity."""
    if not lines:
        raise ValidationFailed("invalid_lines", "请至少选择一件商品", "Choose at least one item",
                               fields=[{"field": "lines", "message": "at least one line is required"}])
    merged: dict[int, int] = {}
    bad: list[dict[str, Any]] = []
    for sku_id, qty in lines:
        if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QUANTITY:
            bad.append({"sku_id": sku_id, "reason": "bad_quantity", "quantity": qty})
            continue
        merged[sku_id] = merged.get(sku_id, 0) + qty
    bad += [{"sku_id": s, "reason": "bad_quantity", "quantity": q} for s, q in merged.items() if q > MAX_QUANTITY]
    if len(merged) > MAX_LINES:
        raise ValidationFailed("too_many_lines", f"一次最多购买 {MAX_LINES} 种商品", f"At most {MAX_LINES} different items at once",
                               fields=[{"field": "lines", "message": f"at most {MAX_LINES} lines"}])
    if bad:
        raise _invalid_lines(bad)
    return list(merged.items())


_REASON_ZH = {"bad_quantity": f"数量需为 1–{MAX_QUANTITY}", "not_found": "商品不存在", "not_on_sale": "商品已下架或不可购买"}
_REASON_EN = {"bad_quantity": f"quantity must be 1–{MAX_QUANTITY}", "not_found": "no such item",
              "not_on_sale": "not on sale"}


def _describe(bad: list[dict[str, Any]]) -> tuple[str, str]:
    zh = "；".join(f"SKU {b['sku_id']}：{_REASON_ZH[b['reason']]}" for b in bad)
    en = "; ".join(f"SKU {b['sku_id']}: {_REASON_EN[b['reason']]}" for b in bad)
    return zh, en


def _invalid_lines(bad: list[dict[str, Any]]) -> ValidationFailed:
    zh, en = _describe(bad)
    return ValidationFailed("invalid_lines", f"商品有误：{zh}", f"Some lines are invalid: {en}", extra={"lines": bad},
                            fields=[{"field": "lines", "message": en}])


async def load_skus(session: AsyncSession, scope: TenantScope, lines: Sequence[tuple[int, int]]) -> dict[int, SkuForSale]:
    """The SKUs of ``lines`` (merged and checked); refuses unknown and off-sale ones, all at once."""
    found = await catalog_service.skus_for_sale(session, scope, sorted({s for s, _q in lines}))
    missing = [{"sku_id": s, "reason": "not_found"} for s, _q in lines if s not in found]
    if missing:
        off = [{"sku_id": s, "reason": "not_on_sale"} for s, _q in lines if s in found and not found[s].on_sale]
        raise _invalid_lines(missing + off)
    off = [{"sku_id": s, "reason": "not_on_sale"} for s, _q in lines if not found[s].on_sale]
    if off:
        zh, en = _describe(off)
        raise Conflict("sku_not_on_sale", f"部分商品已不能购买：{zh}", f"Some items are no longer for sale: {en}",
                       extra={"lines": off})
    return found


# -- the engine (pure parts) --------------------------------------------------------------------------


def offer_amounts(lines: Sequence[ContextLine], offer: Offer, *, with_freight: bool = False) -> dict[int, int]:
    """{sku_id: fen} the offer takes from each line, capped at what each line still costs
    (its goods; with ``with_freight``, its freight too: stored value pays for everything)."""
    if not offer.applied:
        return {}
    left = {ln.sku_id: ln.amount_fen + (ln.freight_fen if with_freight else 0) for ln in lines}
    if offer.line_fen is not None:
        return {s: min(max(0, int(f)), left[s]) for s, f in offer.line_fen.items() if s in left and int(f) > 0}
    eligible = [ln for ln in lines if offer.sku_ids is None or ln.sku_id in set(offer.sku_ids)]
    pool = sum(left[ln.sku_id] for ln in eligible)
    total = min(max(0, int(offer.total_fen)), pool)
    if total == 0 or not eligible:
        return {}
    # Weighted by what each line still costs: a part never exceeds its weight when total <= pool.
    parts = allocate(total, [left[ln.sku_id] for ln in eligible])
    return {ln.sku_id: p for ln, p in zip(eligible, parts, strict=True) if p}


def apply_offer(lines: Sequence[ContextLine], step: str, offer: Offer) -> AppliedOffer:
    taken = offer_amounts(lines, offer, with_freight=step in STEPS_PAYING_FREIGHT)
    for ln in lines:
        ln.discount_fen += taken.get(ln.sku_id, 0)
    fen = sum(taken.values())
    return AppliedOffer(step=step, code=offer.code, label_zh=offer.label_zh, label_en=offer.label_en,
                        applied=offer.applied and fen > 0,
                        reason_zh=offer.reason_zh, reason_en=offer.reason_en, fen=fen, line_fen=taken,
                        data=dict(offer.data))


def spread_freight(lines: Sequence[ContextLine], charges: Sequence[tuple[Sequence[int], int]], total: int) -> dict[int, int]:
    """{sku_id: fen} of freight: each (sku_ids, fee) group over its lines by goods amount after
    discounts; whatever the groups do not account for goes over every shipping line."""
    out: dict[int, int] = {}
    shipping = [ln for ln in lines if ln.sku.requires_shipping]
    by_id = {ln.sku_id: ln for ln in shipping}
    spent = 0
    for sku_ids, fee in charges:
        group = [by_id[s] for s in sku_ids if s in by_id]
        if fee <= 0 or not group:
            continue
        for ln, part in zip(group, allocate(fee, [ln.amount_fen for ln in group]), strict=True):
            out[ln.sku_id] = out.get(ln.sku_id, 0) + part
        spent += fee
    rest = total - spent
    if rest and shipping:
        for ln, part in zip(shipping, allocate(rest, [ln.amount_fen for ln in shipping]), strict=True):
            out[ln.sku_id] = out.get(ln.sku_id, 0) + part
    return out


def build_quote(lines: Sequence[ContextLine], offers: list[AppliedOffer], freight: FreightInfo,
                freight_by_sku: dict[int, int]) -> Quote:
    out: list[QuoteLine] = []
    for ln in lines:
        per_offer = [{"code": o.code, "label": o.label_zh, "label_en": o.label_en, "fen": o.line_fen[ln.sku_id]}
                     for o in offers if o.line_fen.get(ln.sku_id)]
        f = freight_by_sku.get(ln.sku_id, 0)
        out.append(QuoteLine(sku=ln.sku, quantity=ln.quantity, unit_price_fen=ln.sku.price_fen, subtotal_fen=ln.subtotal_fen,
                             discount_fen=ln.discount_fen, freight_fen=f, paid_fen=ln.subtotal_fen - ln.discount_fen + f,
                             discounts=per_offer))
    goods = sum(q.subtotal_fen for q in out)
    discount = sum(q.discount_fen for q in out)
    freight_fen = sum(q.freight_fen for q in out)
    return Quote(lines=out, goods_fen=goods, discount_fen=discount, freight_fen=freight_fen,
                 payable_fen=goods - discount + freight_fen, offers=offers,
                 freight=FreightInfo(freight_fen, freight.reason_zh, freight.reason_en, freight.quoted, freight.province_code))


# -- the function ----------------------------------------------------------------------------------


async def _run_step(session: AsyncSession, ctx: PricingContext, step: str) -> None:
    ctx.step = step
    for fn in list(_adjusters[step]):
        for offer in await fn(session, ctx):
            ctx.offers.append(apply_offer(ctx.lines, step, offer))


async def _freight(session: AsyncSession, scope: TenantScope, lines: Sequence[ContextLine],
                   province_code: str | None) -> tuple[FreightInfo, dict[int, int]]:
    if not any(ln.sku.requires_shipping for ln in lines):
        return FreightInfo(0, "无需物流配送，免运费", "Nothing to ship: no freight", True, province_code), {}
    if not province_code:
        return FreightInfo(0, NO_ADDRESS_ZH, NO_ADDRESS_EN, False, None), {}
    fq = await shipping_service.quote(session, scope, province_code=province_code, lines=[
        shipping_service.FreightLine(sku_id=ln.sku_id, quantity=ln.quantity, weight_g=ln.sku.weight_g,
                                     goods_fen=ln.amount_fen, requires_shipping=ln.sku.requires_shipping)
        for ln in lines])
    charges = [(c.sku_ids, c.freight_fen) for c in fq.per_template]
    return (FreightInfo(fq.freight_fen, fq.reason_zh, fq.reason_en, True, province_code),
            spread_freight(lines, charges, fq.freight_fen))


async def price(session: AsyncSession, scope: TenantScope, *, customer_id: int | None, lines: Sequence[tuple[int, int]],
                province_code: str | None = None, options: dict[str, Any] | None = None,
                skus: dict[int, SkuForSale] | None = None, placing: bool = False) -> Quote:
    """The full price breakdown of ``lines`` (``(sku_id, quantity)`` pairs) for ``customer_id``.

    ``options`` pass through to the adjusters (``coupon_id``, ``points``...). ``skus`` may
    hand in SKUs already loaded with :func:`load_skus` (checkout does, to snapshot them).
    """
    merged = merge_lines(lines)
    found = skus if skus is not None else await load_skus(session, scope, merged)
    ctx_lines = [ContextLine(sku=found[s], quantity=q, subtotal_fen=found[s].price_fen * q) for s, q in merged]
    ctx = PricingContext(scope=scope, customer_id=customer_id, step=STEPS[0], lines=ctx_lines,
                         options=dict(options or {}), offers=[], placing=placing)
    for step in STEPS:
        if step in STEPS_BEFORE_FREIGHT:
            await _run_step(session, ctx, step)
    info, by_sku = await _freight(session, scope, ctx_lines, province_code)
    waiver = next((o for o in ctx.offers if o.data.get("free_shipping")), None)
    if waiver is not None and info.fen > 0:
        info = FreightInfo(0, f"{waiver.label_zh}包邮", f"Free shipping: {waiver.label_en}", True, province_code)
        by_sku = {}
    for ln in ctx_lines:
        ln.freight_fen = by_sku.get(ln.sku_id, 0)
    ctx.freight_fen = info.fen
    for step in STEPS:
        if step not in STEPS_BEFORE_FREIGHT:
            await _run_step(session, ctx, step)
    return build_quote(ctx_lines, ctx.offers, info, by_sku)
