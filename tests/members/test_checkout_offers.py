"""The checkout page learns what points and balance could pay (unapplied offers with their
availability); placing an order that asks for neither does not work that out again, and the
order keeps only what was used."""

from __future__ import annotations

from siyu.kit.ledger import AccountSpec, credit, debit, post
from siyu.members import points
from siyu.orders import checkout
from tests.orders.conftest import OrderShop


async def test_preview_shows_what_could_pay_placement_keeps_only_what_did(order_shop: OrderShop) -> None:
    shop, buyer = order_shop, order_shop.buyer
    a = shop.skus[0]
    async with shop.runtime.db.uow() as s:
        await points.earn(s, shop.scope, buyer.customer_id, 5_000, kind="adjust", source_key="test:grant")
        w = AccountSpec(f"wallet.principal:{buyer.customer_id}", "liability", "储值本金", "customer", buyer.customer_id,
                        allow_negative=False)
        await post(s, shop.scope.id, source_key="test:topup", kind="test",
                   postings=[debit(AccountSpec("cash.gateway", "asset"), 3_000), credit(w, 3_000)])
    async with shop.runtime.db.uow(readonly=True) as s:
        q = await checkout.preview(s, shop.scope, customer_id=buyer.customer_id, lines=[(a, 1)],
                                   address_id=buyer.address_id)
    shown = {o.step: o for o in q.offers}
    assert not shown["points"].applied and shown["points"].data["available"] == 5_000
    assert not shown["balance"].applied and shown["balance"].data["available_fen"] == 3_000

    plain = await shop.place([(a, 1)])
    assert {o["step"] for o in plain.pricing["offers"]} & {"points", "balance"} == set()
    assert plain.points_used == 0 and plain.balance_fen == 0 and plain.payable_fen == q.payable_fen

    paid = await shop.place([(a, 1)], options={"points": 1_000, "use_balance": True})
    used = {o["step"]: o for o in paid.pricing["offers"] if o["applied"]}
    assert paid.points_used == used["points"]["data"]["points"] == 1_000
    assert paid.balance_fen == used["balance"]["fen"] == 3_000
    assert paid.payable_fen == q.payable_fen - paid.points_fen - 3_000
