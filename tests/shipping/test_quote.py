"""The freight quote orders call: every mode with worked examples, region rules against the
default rule, the free-shipping threshold per template, virtual lines, mixed templates, and
Hypothesis properties (never negative; per piece, never cheaper for more pieces)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.kit.errors import ValidationFailed
from siyu.shipping import service
from siyu.shipping.models import FreightTemplate
from tests.shipping._helpers import line, make_template, quote, rule, scope_of

# per piece: default — first 1 piece ¥10, each further started 2 pieces ¥5;
#            浙江 (33) — first 2 pieces ¥6, each further piece ¥3.
PER_PIECE: dict[str, Any] = {"name": "按件", "mode": "per_piece", "default_rule": rule(1, 1000, 2, 500),
                             "region_rules": [rule(2, 600, 1, 300, ["33"])]}
# per weight: default — first 1000 g ¥8, each further started 500 g ¥3;
#             新疆 (65) and 西藏 (54) — first 1000 g ¥20, each further started 1000 g ¥15.
PER_WEIGHT: dict[str, Any] = {"name": "按重", "mode": "per_weight", "default_rule": rule(1000, 800, 500, 300),
                              "region_rules": [rule(1000, 2000, 1000, 1500, ["65", "54"])]}


@pytest.mark.parametrize(("quantity", "province", "fee"), [
    (1, "11", 1000),   # the first piece
    (2, "11", 1500),   # 1 further piece starts a block of 2: + 500
    (3, "11", 1500),   # 2 further pieces: still one block
    (4, "11", 2000),   # 3 further pieces: two blocks
    (2, "33", 600),    # 浙江's region rule: 2 pieces are its first block
    (5, "33", 1500),   # 600 + 3 × 300
])
async def test_per_piece_blocks(runtime, tenant_factory, quantity: int, province: str, fee: int) -> None:  # type: ignore[no-untyped-def]
    scope = await scope_of(runtime, await tenant_factory())
    await make_template(runtime, scope, **PER_PIECE)
    q = await quote(runtime, scope, [line(quantity=quantity, goods_fen=100 * quantity)], province)
    assert q.freight_fen == fee and q.free_shipping is False
    [charge] = q.per_template
    assert charge.units == quantity and charge.freight_fen == fee and charge.mode == "per_piece"
    assert ("浙江省" in charge.reason_zh) == (province == "33")


@pytest.mark.parametrize(("lines", "province", "fee"), [
    ([(2, 700)], "11", 1100),            # 1400 g: 800 + one started 500 g block
    ([(3, 700)], "11", 1700),            # 2100 g: 800 + ceil(1100 / 500) = 3 blocks × 300
    ([(1, 1000)], "11", 800),            # exactly the first weight
    ([(1, 0)], "11", 800),               # a parcel of weightless goods still pays the first fee
    ([(2, 700), (1, 600)], "11", 1400),  # weights add up over lines: 2000 g → 800 + 2 × 300
    ([(3, 700)], "65", 5000),            # 新疆: 2100 g → 2000 + ceil(1100 / 1000) = 2 × 1500
    ([(1, 900)], "54", 2000),            # 西藏, within the first 1000 g
])
async def test_per_weight_blocks(runtime, tenant_factory, lines: list[tuple[int, int]], province: str, fee: int) -> None:  # type: ignore[no-untyped-def]
    scope = await scope_of(runtime, await tenant_factory())
    await make_template(runtime, scope, **PER_WEIGHT)
    q = await quote(runtime, scope, [line(sku_id=i + 1, quantity=n, weight_g=w) for i, (n, w) in enumerate(lines)], province)
    assert q.freight_fen == fee, q
    assert q.per_template[0].units == sum(n * w for n, w in lines)


async def test_flat_and_free_modes(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    scope = await scope_of(runtime, await tenant_factory())
    flat = await make_template(runtime, scope, name="统一 12 元", mode="flat", flat_fee_fen=1200)
    free = await make_template(runtime, scope, name="包邮", mode="free")
    for province in ("11", "65", "82"):
        q = await quote(runtime, scope, [line(quantity=7, weight_g=5000, template_id=flat)], province)
        assert q.freight_fen == 1200 and q.reason_zh == "统一运费 ¥12.00" and q.reason_en == "Flat fee ¥12.00"
        q = await quote(runtime, scope, [line(quantity=7, weight_g=5000, template_id=free)], province)
        assert q.freight_fen == 0 and q.free_shipping and q.reason_zh == "包邮"


async def test_the_threshold_frees_the_lines_of_its_template(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    scope = await scope_of(runtime, await tenant_factory())
    await make_template(runtime, scope, **PER_WEIGHT, free_threshold_fen=9900)
    # At the threshold: free. One fen below: charged.
    q = await quote(runtime, scope, [line(quantity=3, weight_g=700, goods_fen=5000), line(sku_id=2, goods_fen=4900)])
    assert q.freight_fen == 0 and q.free_shipping and q.reason_zh == "满 ¥99.00 包邮"
    assert q.reason_en == "Free shipping on orders of ¥99.00 or more"
    q = await quote(runtime, scope, [line(quantity=3, weight_g=700, goods_fen=5000), line(sku_id=2, goods_fen=4899)])
    assert q.freight_fen == 1700 and not q.free_shipping


async def test_virtual_lines_cost_nothing(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    scope = await scope_of(runtime, await tenant_factory())
    await make_template(runtime, scope, **PER_PIECE, free_threshold_fen=10000)
    q = await quote(runtime, scope, [line(quantity=3, goods_fen=50000, ships=False)])
    assert q.freight_fen == 0 and q.free_shipping and q.per_template == [] and q.reason_en == "Nothing to ship: no freight"
    # A virtual line neither adds pieces nor counts towards the threshold of the goods that ship.
    q = await quote(runtime, scope, [line(quantity=1, goods_fen=2000), line(sku_id=2, quantity=9, goods_fen=50000, ships=False)])
    assert q.freight_fen == 1000 and q.per_template[0].sku_ids == [1] and q.per_template[0].goods_fen == 2000


async def test_mixed_templates_charge_each_group_and_add_up(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    scope = await scope_of(runtime, await tenant_factory())
    default = await make_template(runtime, scope, **PER_PIECE, free_threshold_fen=10000)
    flat = await make_template(runtime, scope, name="统一 12 元", mode="flat", flat_fee_fen=1200, free_threshold_fen=10000)
    lines = [
        line(1, quantity=2, goods_fen=6000),                      # default template (None)
        line(2, quantity=1, goods_fen=8000, template_id=flat),    # flat
        line(3, quantity=1, goods_fen=3000, template_id=default),  # default, named explicitly
        line(4, quantity=1, goods_fen=500, template_id=999_999_999),  # unknown id → the default
    ]
    q = await quote(runtime, scope, lines)
    # The default group: 4 pieces, ¥95 of goods (under its ¥100 threshold) → 1000 + 2 × 500.
    # The flat group: ¥80 of goods, under its own threshold although the cart is ¥175 → 1200.
    by_id = {c.template_id: c for c in q.per_template}
    assert by_id[default].units == 4 and by_id[default].goods_fen == 9500 and by_id[default].freight_fen == 2000
    assert sorted(by_id[default].sku_ids) == [1, 3, 4]
    assert by_id[flat].freight_fen == 1200 and by_id[flat].sku_ids == [2]
    assert q.freight_fen == 3200 and q.reason_zh == "运费 ¥32.00"
    # The default group reaches its threshold: only the flat group still pays.
    q = await quote(runtime, scope, [*lines, line(5, quantity=1, goods_fen=500)])
    assert q.freight_fen == 1200


async def test_without_a_default_template_everything_ships_free(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    scope = await scope_of(runtime, await tenant_factory())
    q = await quote(runtime, scope, [line(quantity=5, weight_g=3000)])
    assert q.freight_fen == 0 and q.free_shipping and q.per_template[0].template_id is None
    assert q.reason_zh == "店铺未设置运费模板，包邮"


async def test_bad_input_is_refused(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    scope = await scope_of(runtime, await tenant_factory())
    with pytest.raises(ValidationFailed) as exc:
        await quote(runtime, scope, [line()], "99")
    assert exc.value.code == "unknown_province" and exc.value.status == 422
    with pytest.raises(ValidationFailed) as exc:
        await quote(runtime, scope, [line(quantity=0)])
    assert exc.value.code == "invalid_freight_line"


# -- properties -----------------------------------------------------------------------------------

_rules = st.builds(lambda f, ff, a, af: {"first": f, "first_fee_fen": ff, "additional": a, "additional_fee_fen": af},
                   st.integers(1, 5000), st.integers(0, 100_000), st.integers(1, 5000), st.integers(0, 100_000))


def _template(mode: str, default: dict[str, Any], region: dict[str, Any], threshold: int | None, flat: int) -> FreightTemplate:
    rules: dict[str, Any] = {"flat_fee_fen": flat} if mode == "flat" else {} if mode == "free" else \
        {"default": default, "regions": [{**region, "provinces": ["33", "44"]}]}
    return FreightTemplate(id=1, name="t", mode=mode, rules=rules, free_threshold_fen=threshold, is_default=True)


@settings(max_examples=300, deadline=None)
@given(mode=st.sampled_from(["free", "flat", "per_piece", "per_weight"]), default=_rules, region=_rules,
       threshold=st.none() | st.integers(0, 10**7), flat=st.integers(0, 100_000),
       lines=st.lists(st.tuples(st.integers(1, 500), st.integers(0, 50_000), st.integers(0, 10**6)), min_size=1, max_size=6),
       province=st.sampled_from(["11", "33", "44", "65"]))
def test_a_quote_is_never_negative(mode: str, default: dict[str, Any], region: dict[str, Any], threshold: int | None,
                                   flat: int, lines: list[tuple[int, int, int]], province: str) -> None:
    t = _template(mode, default, region, threshold, flat)
    charge = service.charge_group(t, [line(i, q, w, g) for i, (q, w, g) in enumerate(lines, 1)], province)
    assert charge.freight_fen >= 0 and charge.free_shipping == (charge.freight_fen == 0)
    if threshold is not None and charge.goods_fen >= threshold:
        assert charge.freight_fen == 0


@settings(max_examples=300, deadline=None)
@given(default=_rules, region=_rules, price=st.integers(0, 10_000), q1=st.integers(1, 300), q2=st.integers(1, 300),
       threshold=st.none() | st.integers(0, 10**7), province=st.sampled_from(["11", "33", "44", "65"]))
def test_per_piece_never_costs_less_for_more_pieces(default: dict[str, Any], region: dict[str, Any], price: int, q1: int,
                                                    q2: int, threshold: int | None, province: str) -> None:
    small, large = sorted((q1, q2))
    if threshold is not None and price * large >= threshold:
        return  # "under the threshold" is the property's domain
    t = _template("per_piece", default, region, threshold, 0)
    fee_small = service.charge_group(t, [line(1, small, 0, price * small)], province).freight_fen
    fee_large = service.charge_group(t, [line(1, large, 0, price * large)], province).freight_fen
    assert 0 <= fee_small <= fee_large
