"""Invariants of the SKU matrix under random edits (Hypothesis): whatever sequence of spec and
SKU changes a merchant saves, no SKU is ever deleted, the active SKUs are exactly the rows
saved as enabled, each combination and each code appears once, ids survive for unchanged
combinations, and the cached price range matches the active SKUs."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.catalog import service
from siyu.catalog.schemas import ProductIn, ProductUpdate
from siyu.kit.errors import DomainError
from tests.catalog._helpers import scope_of

NAMES = ["规格", "包装", "颜色"]
VALUES = ["a", "b", "c", "d"]


@st.composite
def edits(draw: Any) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3))
    specs = [{"name": n, "values": draw(st.lists(st.sampled_from(VALUES), unique=True, min_size=1, max_size=3))} for n in names]
    combos = [dict(zip(names, vs, strict=True)) for vs in itertools.product(*[s["values"] for s in specs])]
    chosen = draw(st.lists(st.sampled_from(range(len(combos))), unique=True, min_size=1, max_size=len(combos)))
    skus = []
    for i in chosen:
        skus.append({"spec_values": combos[i], "price_fen": draw(st.integers(0, 10_000)),
                     "enabled": draw(st.booleans()),
                     "code": draw(st.sampled_from([None, None, f"C{i}", f"X{draw(st.integers(0, 3))}"]))})
    # Codes must be unique within one save; drop repeats.
    seen: set[str] = set()
    for s in skus:
        if s["code"] in seen:
            s["code"] = None
        if s["code"]:
            seen.add(s["code"])
    return {"specs": specs, "skus": skus}


def _vset(values: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(edits(), min_size=1, max_size=5))
async def test_matrix_invariants(runtime, tenant_factory, steps) -> None:  # type: ignore[no-untyped-def]
    t = await tenant_factory()
    scope = await scope_of(runtime, t)
    async with runtime.db.uow() as s:
        p = await service.create_product(s, scope, ProductIn.model_validate({"title": "性质测试", "skus": [{"price_fen": 1}]}))
        pid = p.id
    ever: dict[int, frozenset[tuple[str, str]]] = {}
    async with runtime.db.uow(readonly=True) as s:
        for sku in await service.product_skus(s, scope, pid):
            ever[sku.id] = _vset(sku.spec_values)
    for step in steps:
        async with runtime.db.uow(readonly=True) as s:
            before = {_vset(k.spec_values): k.id for k in await service.product_skus(s, scope, pid)}
        try:
            async with runtime.db.uow() as s:
                await service.update_product(s, scope, pid, ProductUpdate.model_validate(step))
        except DomainError as exc:
            # The only refusal a valid matrix can meet: a code still held by a disabled SKU.
            assert exc.code == "sku_code_taken", exc
            continue
        async with runtime.db.uow(readonly=True) as s:
            product = await service.get_product(s, scope, pid)
            skus = await service.product_skus(s, scope, pid)
        ids = {k.id for k in skus}
        assert set(ever) <= ids, "a SKU disappeared"
        for k in skus:
            ever.setdefault(k.id, _vset(k.spec_values))
        active = {_vset(k.spec_values): k for k in skus if k.status == "active"}
        wanted = {_vset(x["spec_values"]): x for x in step["skus"] if x["enabled"]}
        assert set(active) == set(wanted)
        for key, k in active.items():
            assert k.price_fen == wanted[key]["price_fen"]
            if wanted[key]["code"]:
                assert k.code == wanted[key]["code"]
        saved = {_vset(x["spec_values"]) for x in step["skus"]}
        by_vset = {_vset(k.spec_values): k.id for k in skus}
        assert len(by_vset) == len(skus), "two SKUs share a combination"
        for key in saved & set(before):
            assert by_vset[key] == before[key], "an unchanged combination changed its SKU"
        assert len({k.code for k in skus}) == len(skus)
        assert len({k.spec_key for k in skus}) == len(skus)
        assert len({_vset(k.spec_values) for k in skus if k.status == "active"}) == len(active)
        prices = [k.price_fen for k in active.values()]
        assert (product.price_min_fen, product.price_max_fen) == ((min(prices), max(prices)) if prices else (0, 0))
        assert [sp["name"] for sp in product.specs] == [sp["name"] for sp in step["specs"]]
        assert not any(k.code.startswith("~") for k in skus), "a temporary code leaked"
