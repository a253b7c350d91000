"""The demo freight template: by weight, 江浙沪 cheaper, remote provinces dearer, free from ¥99."""

from __future__ import annotations

from siyu.shipping.demo import seed_shipping
from tests.shipping._helpers import line, quote, scope_of


async def test_seed_shipping(runtime, tenant_factory) -> None:  # type: ignore[no-untyped-def]
    scope = await scope_of(runtime, await tenant_factory("青山茶社"))
    async with runtime.db.uow() as s:
        template = await seed_shipping(s, scope)
    assert template.is_default and template.mode == "per_weight"
    cart = [line(quantity=3, weight_g=500, goods_fen=6000)]  # 1.5 kg, ¥60
    fees = {p: (await quote(runtime, scope, cart, p)).freight_fen for p in ("33", "11", "65", "81")}
    assert fees == {"33": 700, "11": 1200, "65": 3000, "81": 5000}
    assert fees["33"] < fees["11"] < fees["65"]
    assert (await quote(runtime, scope, [line(quantity=3, weight_g=500, goods_fen=9900)], "65")).freight_fen == 0
