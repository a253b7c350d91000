"""Storefront pages of the orders module (``/m/{shop}/...``): 购物车, 确认订单, paying,
我的订单 with its detail, and after-sales (申请售后, the case page with the return parcel form,
the list).

Every page calls the services of :mod:`siyu.orders` (cart, checkout, service, fulfilment,
aftersales); nothing here decides a price, a status or an amount. Forms are plain HTML posts
carrying ``_csrf`` and answered by a 303 redirect with a flash message, or by the page again
with the error and a 4xx status, so everything works without JavaScript. htmx and Alpine
add: the cart updating in place, the pay countdown, and the order page refreshing itself
while a payment result is on its way.

Placing an order is idempotent: the checkout page carries a random key made when it was
rendered, so a double tap or a resubmitted form answers with the order the first submit
made (same key, same body → same order) and lands on its pay page.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, OptionalShopper, ShopperSession
from siyu.customers.models import CustomerAddress
from siyu.customers.schemas import PROVINCES, AddressIn
from siyu.inventory import service as inventory_service
from siyu.kit.context import current_language
from siyu.kit.errors import DomainError
from siyu.kit.i18n import gettext as _
from siyu.kit.types import PathId, no_control
from siyu.kit.web import UoW, client_ip
from siyu.orders import aftersales, cart, checkout, fulfilment, pricing, service
from siyu.orders.models import Order, OrderLine, OrderTransition
from siyu.orders.states import CASE_STATUS_ZH, ORDER_STATUS_ZH, PAID_STATUSES
from siyu.payments import service as payments_service
from siyu.web import i18n_orders_store  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import (
    attempt,
    field_errors,
    first_error,
    safe_next,
    to_int,
)
from siyu.web.page import redirect, store_page

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 10
#: How many lines an order shows in the list before "还有 N 种商品".
LIST_LINES = 3
#: The order page re-reads itself every 2 s this many times while a payment result is on its way.
MAX_POLLS = 30

#: 我的订单 tabs: key → (label, statuses; None = every order). ``after_sales`` is the case list.
ORDER_TABS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "all": ("全部", None),
    "pending_payment": ("待付款", ("pending_payment",)),
    "to_ship": ("待发货", ("paid", "partially_shipped")),
    "to_receive": ("待收货", ("shipped", "delivered")),
    "completed": ("已完成", ("completed",)),
    "after_sales": ("售后", ()),
}
#: Status words a shopper reads (the order's own state, said from the buyer's side).
SHOPPER_STATUS = {**ORDER_STATUS_ZH, "shipped": "待收货", "delivered": "待收货"}
STATUS_HINTS = {
    "paid": "商家正在备货，请耐心等待发货",
    "partially_shipped": "部分商品已发出，其余商品商家正在准备",
    "shipped": "商品已发出，收到后请确认收货",
    "delivered": "商品已送达，请确认收货",
    "completed": "交易已完成，感谢您的购买",
    "cancelled": "订单已取消",
    "closed": "订单已全额退款，交易关闭",
}
ORDER_ACTIONS = {
    "place": "提交订单", "pay": "支付成功", "cancel": "订单已取消", "ship": "商家已发货", "deliver": "商品已送达",
    "confirm": "确认收货", "auto_confirm": "超时自动确认收货", "complete": "交易完成", "payment_refund": "支付款已原路退回",
}
CASE_HINTS = {
    "requested": "商家会尽快处理您的申请",
    "approved": "商家已同意，请按下方地址寄回商品并填写物流单号",
    "returning": "商家收到退货后将为您退款",
    "refunding": "退款处理中，将原路退回您的支付账户",
    "refunded": "退款已原路退回",
    "rejected": "商家拒绝了这次申请",
    "withdrawn": "您已撤销这次申请",
}
#: Timeline words for the steps of a case (on the order's timeline and the case's own).
CASE_ACTIONS = {
    "open": "申请售后", "approve": "售后申请已同意", "reject": "售后申请被拒绝", "withdraw": "售后申请已撤销",
    "submit_return": "退货已寄出", "receive_return": "商家已收到退货", "retry_refund": "重新发起退款", "refunded": "退款成功",
    "refund_failed": "退款失败",
}
ADDRESS_FIELD_MESSAGES = {
    "receiver_name": "请填写收货人（最多 50 字）",
    "phone": "请输入正确的 11 位手机号",
    "province_code": "请选择省份",
    "city": "请填写城市（最多 40 字）",
    "district": "请填写区县（最多 40 字）",
    "detail": "请填写详细地址（2–200 字）",
}
MAX_NOTE = 200


# -- shared ---------------------------------------------------------------------------------------------


def _english() -> bool:
    return current_language().startswith("en")


def pgettext(context: str, text: str) -> str:
    """``text`` translated as used in ``context`` (``"button"``): the catalog has one English
    per Chinese word, and a word like 确认收货 is a button here but a timeline entry elsewhere."""
    if _english():
        found = _(f"{context}\x04{text}")
        if not found.startswith(f"{context}\x04"):
            return found
    return _(text)


def _page(request: Request, shopper: ShopperSession, template: str, context: dict[str, Any], *,
          active_tab: str = "me", status_code: int = 200) -> HTMLResponse:
    return store_page(request, shopper, template, context, active_tab=active_tab, status_code=status_code,
                      extra={"p_": pgettext})


def _base(shopper: ShopperSession) -> str:
    return f"/m/{shopper.shop.scope.code}"


def _cid(shopper: ShopperSession) -> int:
    assert shopper.customer is not None  # CurrentShopper guarantees it
    return shopper.customer.id


def _local_path(value: str, shopper: ShopperSession, fallback: str) -> str:
    """A page of this shop to return to; anything else falls back."""
    target = safe_next(value, fallback)
    return target if target.startswith(_base(shopper) + "/") else fallback


async def _write_request(request: Request) -> None:
    """A GET that writes (starting a payment): ask the unit of work for a write transaction."""
    request.state.needs_write = True


def _offer_view(o: pricing.AppliedOffer) -> dict[str, Any]:
    en = _english()
    return {"label": o.label_en if en else o.label_zh, "reason": o.reason_en if en else o.reason_zh, "fen": o.fen,
            "applied": o.applied, "step": o.step}


def _stored_offers(order: Order) -> list[dict[str, Any]]:
    en = _english()
    return [{"label": (o.get("label_en") if en else o.get("label_zh")) or o.get("code", ""), "fen": int(o.get("fen") or 0)}
            for o in (order.pricing or {}).get("offers", []) if o.get("applied") and o.get("fen")]


def _stored_freight_reason(order: Order) -> str:
    f = (order.pricing or {}).get("freight") or {}
    return str((f.get("reason_en") if _english() else f.get("reason_zh")) or "")


# -- 购物车 ------------------------------------------------------------------------------------------------


def _cart_item(ln: cart.CartLine) -> dict[str, Any]:
    sku, item = ln.sku, ln.item
    editable = ln.state in ("ok", "short")
    if ln.state == "short":
        reason = _("库存不足，仅剩 %(n)s 件") % {"n": ln.available}
    else:
        reason = (ln.state_en if _english() else ln.state_zh) if ln.state != "ok" else ""
    return {
        "id": item.id, "sku_id": item.sku_id, "product_id": sku.product_id if sku else None,
        "title": sku.title if sku else _("商品已失效"), "spec_text": sku.spec_text if sku else "",
        "image": sku.image if sku else None, "price_fen": sku.price_fen if sku else 0, "quantity": item.quantity,
        "selected": item.selected and ln.buyable, "available": ln.buyable, "editable": editable, "reason": reason,
        "max_qty": max(1, min(ln.available, cart.MAX_QUANTITY)) if editable else item.quantity,
    }


@router.get("/m/{shop}/cart")
async def cart_page(request: Request, session: UoW, shopper: OptionalShopper) -> Response:
    if shopper.customer is None:
        return _page(request, shopper, "store/orders/cart.html", {"items": [], "totals": {}}, active_tab="cart")
    view = await cart.view(session, shopper.shop.scope, shopper.customer.id)
    items = [_cart_item(ln) for ln in view.lines]
    q = view.quote
    totals = {
        "goods_fen": q.goods_fen if q else 0, "discount_fen": q.discount_fen if q else 0,
        "payable_fen": (q.goods_fen - q.discount_fen) if q else 0, "count": view.selected_count,
        "offers": [_offer_view(o) for o in q.offers if o.applied] if q else [],
    }
    buyable = [i for i in items if i["available"]]
    return _page(request, shopper, "store/orders/cart.html", {
        "items": items, "totals": totals, "all_selected": bool(buyable) and all(i["selected"] for i in buyable),
        "off_count": sum(1 for ln in view.lines if ln.state in ("off_sale", "gone", "out_of_stock")),
    }, active_tab="cart")


@router.post("/m/{shop}/cart/add")
async def cart_add(request: Request, session: UoW, shopper: OptionalShopper,
                   sku_id: Annotated[str, Form(max_length=20)] = "",
                   quantity: Annotated[str, Form(max_length=6)] = "1",
                   next: Annotated[str, Form(max_length=500)] = "") -> Response:
    """加入购物车 from the product page; back to that page with a message."""
    base = _base(shopper)
    back = _local_path(next, shopper, f"{base}/cart")
    if shopper.customer is None:
        return redirect(f"{base}/login?next={quote(back, safe='/')}", _("请先登录，再把商品加入购物车"), "error")
    sid, qty = to_int(sku_id), to_int(quantity)
    if sid is None:
        return redirect(back, _("请先选择商品规格"), "error")
    if qty is None:
        return redirect(back, _("请输入正确的购买数量"), "error")
    cid = shopper.customer.id
    _item, err = await attempt(session, lambda: cart.add_item(session, shopper.shop.scope, cid, sid, qty))
    if err is not None:
        return redirect(back, err.message(), "error")
    return redirect(back, _("已加入购物车"))


@router.post("/m/{shop}/cart/update")
async def cart_update(request: Request, session: UoW, me: CurrentShopper) -> Response:
    """The cart form: typed quantities, ticked boxes, and the button pressed (``op``)."""
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    form = await request.form()
    op = str(form.get("op") or "update")[:40]
    view = await cart.view(session, scope, cid)
    lines = {ln.item.id: ln for ln in view.lines}
    errors: list[str] = []

    async def run(call: Callable[[], Any]) -> bool:
        _r, err = await attempt(session, call)
        if err is not None:
            errors.append(err.message())
        return err is None

    quantities = {item_id: ln.item.quantity for item_id, ln in lines.items()}
    for item_id, ln in lines.items():
        typed = to_int(str(form.get(f"qty_{item_id}") or ""))
        if typed is not None and typed != ln.item.quantity and ln.state in ("ok", "short"):
            want = min(typed, cart.MAX_QUANTITY)
            if await run(partial(cart.update_item, session, scope, cid, item_id, quantity=want)):
                quantities[item_id] = want
    if form.get("selection"):
        ticked = {to_int(str(v)) for v in form.getlist("selected")}
        on = [i for i, ln in lines.items() if ln.buyable and i in ticked and not ln.item.selected]
        off = [i for i, ln in lines.items() if ln.buyable and i not in ticked and ln.item.selected]
        if on:
            await run(lambda: cart.select_items(session, scope, cid, on, True))
        if off:
            await run(lambda: cart.select_items(session, scope, cid, off, False))

    action, _sep, arg = op.partition(":")
    target = to_int(arg)
    message = ""
    if action in ("inc", "dec") and target in lines:
        ln = lines[target]
        now_qty = quantities[target]
        want = now_qty + 1 if action == "inc" else now_qty - 1
        if action == "inc" and want > max(ln.available, 1):
            errors.append(_("库存不足，仅剩 %(n)s 件") % {"n": ln.available})
        elif 1 <= want <= cart.MAX_QUANTITY:
            await run(lambda: cart.update_item(session, scope, cid, target, quantity=want))
    elif action == "remove" and target in lines:
        if await run(lambda: cart.remove_items(session, scope, cid, [target])):
            message = _("已从购物车删除")
    elif action == "clear_off":
        gone = [i for i, ln in lines.items() if ln.state in ("off_sale", "gone", "out_of_stock")]
        if gone and await run(lambda: cart.remove_items(session, scope, cid, gone)):
            message = _("已清除失效商品")
    elif action == "checkout" and not errors:
        if request.headers.get("hx-request"):
            # The cart updates in place through htmx; 确认订单 is a page of its own.
            return Response(status_code=204, headers={"HX-Redirect": f"{base}/checkout?from=cart"})
        return redirect(f"{base}/checkout?from=cart")
    if errors:
        return redirect(f"{base}/cart", errors[0], "error")
    return redirect(f"{base}/cart", message)


# -- 确认订单 ----------------------------------------------------------------------------------------------


@dataclass
class _Lines:
    """What is being bought: ``(sku_id, qty)`` pairs, and where they came from."""

    pairs: list[tuple[int, int]]
    from_cart: bool

    @property
    def tokens(self) -> list[str]:
        return [f"{s}:{q}" for s, q in self.pairs]


def _parse_tokens(values: Sequence[Any]) -> list[tuple[int, int]] | None:
    out: list[tuple[int, int]] = []
    for v in values:
        sku, _sep, qty = str(v).partition(":")
        s, q = to_int(sku), to_int(qty)
        if s is None or q is None:
            return None
        out.append((s, q))
    return out


def _checkout_url(base: str, lines: _Lines, address_id: int | None = None, options: dict[str, Any] | None = None) -> str:
    params: dict[str, Any] = {}
    if lines.from_cart:
        params["from"] = "cart"
    elif lines.pairs:
        params["sku_id"], params["qty"] = lines.pairs[0]
    if address_id:
        params["address_id"] = address_id
    opts = options or {}
    if opts.get("points"):
        params["points"] = opts["points"]
    if opts.get("use_balance"):
        params["use_balance"] = 1
    return f"{base}/checkout?{urlencode(params)}"


def _pay_options(points: str, use_balance: str) -> dict[str, Any]:
    """The checkout's 使用积分 / 使用余额 choices as pricing options (``points``: how many points
    the shopper agreed to use; ``use_balance``: pay what the balance covers)."""
    out: dict[str, Any] = {}
    n = to_int(points)
    if n is not None and n <= 10**12:
        out["points"] = n
    if use_balance.strip().lower() in ("1", "true", "on"):
        out["use_balance"] = True
    return out


#: Errors of a way of paying that no longer holds (points or balance spent meanwhile): the page
#: shows the new state without that choice.
_PAY_OPTION_ERRORS = frozenset({"insufficient_points", "insufficient_balance", "points_invalid"})


def _pay_with(q: pricing.Quote, base: str, lines: _Lines, address_id: int | None,
              options: dict[str, Any]) -> dict[str, Any]:
    """The 使用积分 and 使用余额 switches, from the points and balance offers of the quote."""
    out: dict[str, Any] = {}
    points = next((o for o in q.offers if o.step == "points"), None)
    if points is not None:
        d = points.data
        usable = int(d.get("max_points") or 0) > 0
        on = points.applied
        out["points"] = {
            "on": on, "usable": usable or on, "used": int(d.get("points") or 0), "fen": points.fen,
            "max_points": int(d.get("max_points") or 0), "max_fen": int(d.get("max_fen") or 0),
            "available": int(d.get("available") or 0), "reason": points.reason_en if _english() else points.reason_zh,
            "url": _checkout_url(base, lines, address_id, {**options, "points": None} if on
                                 else {**options, "points": int(d.get("max_points") or 0)}),
        }
    balance = next((o for o in q.offers if o.step == "balance"), None)
    if balance is not None:
        available = int(balance.data.get("available_fen") or 0)
        on = balance.applied
        out["balance"] = {
            "on": on, "usable": available > 0 or on, "fen": balance.fen, "available_fen": available,
            "url": _checkout_url(base, lines, address_id, {**options, "use_balance": not on}),
        }
    return out


def _problem_lines(err: DomainError) -> dict[int, str]:
    """sku_id → what is wrong with that line, from a checkout error's ``lines``."""
    out: dict[int, str] = {}
    for bad in err.extra.get("lines") or []:
        if not isinstance(bad, dict) or "sku_id" not in bad:
            continue
        sid = int(bad["sku_id"])
        if "available" in bad:
            n = int(bad.get("available") or 0)
            out[sid] = _("库存不足，仅剩 %(n)s 件") % {"n": n} if n > 0 else _("已售罄")
        elif bad.get("reason") == "not_on_sale":
            out[sid] = _("已下架")
        elif bad.get("reason") == "not_found":
            out[sid] = _("商品已失效")
        elif bad.get("reason") == "bad_quantity":
            out[sid] = _("购买数量有误")
    return out


async def _checkout_page(request: Request, session: AsyncSession, me: ShopperSession, lines: _Lines, *,
                         address_id: int | None, buyer_note: str = "", idempotency_key: str | None = None,
                         error: DomainError | None = None, message: str = "", status_code: int = 200,
                         options: dict[str, Any] | None = None) -> HTMLResponse:
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    options = dict(options or {})
    addresses = list(await customers_service.list_addresses(session, scope, cid))
    chosen: CustomerAddress | None = next((a for a in addresses if a.id == address_id), None)
    if chosen is None:
        chosen = next((a for a in addresses if a.is_default), addresses[0] if addresses else None)
    quote_view: dict[str, Any] | None = None
    line_views: list[dict[str, Any]] = []
    problems: dict[int, str] = {}
    if error is not None:
        problems = _problem_lines(error)
    pay_with: dict[str, Any] = {}
    if lines.pairs:
        q, err = await attempt(session, lambda: checkout.preview(
            session, scope, customer_id=cid, lines=lines.pairs, address_id=chosen.id if chosen else None,
            options=options))
        if err is not None and err.code in _PAY_OPTION_ERRORS and options:
            # The points or balance chosen are gone: show the page without them, and say why.
            options = {}
            message = message or err.message()
            q, err = await attempt(session, lambda: checkout.preview(
                session, scope, customer_id=cid, lines=lines.pairs, address_id=chosen.id if chosen else None))
        if err is not None:
            problems = {**_problem_lines(err), **problems}
            if error is None:
                error = err
                status_code = err.status if err.status < 500 else 409
        if q is not None:
            en = _english()
            paid_by = sum(o.fen for o in q.offers if o.applied and o.step in pricing.PAYMENT_STEPS)
            quote_view = {
                "goods_fen": q.goods_fen, "discount_fen": q.discount_fen - paid_by, "freight_fen": q.freight_fen,
                "payable_fen": q.payable_fen, "paid_by_fen": paid_by,
                # Points and balance not used are the switches below, not lines of the breakdown.
                "offers": [_offer_view(o) for o in q.offers if o.applied or o.step not in pricing.PAYMENT_STEPS],
                "freight_reason": q.freight.reason_en if en else q.freight.reason_zh,
                "requires_shipping": q.requires_shipping,
            }
            pay_with = _pay_with(q, base, lines, chosen.id if chosen and address_id else None, options)
            line_views = [{"sku_id": ln.sku_id, "product_id": ln.sku.product_id, "title": ln.sku.title,
                           "spec_text": ln.sku.spec_text, "image": ln.sku.image, "unit_price_fen": ln.unit_price_fen,
                           "quantity": ln.quantity} for ln in q.lines]
            stock = await inventory_service.available(session, scope, [ln.sku_id for ln in q.lines])
            for ln in q.lines:
                have = stock.get(ln.sku_id, 0)
                if have < ln.quantity and ln.sku_id not in problems:
                    problems[ln.sku_id] = _("库存不足，仅剩 %(n)s 件") % {"n": have} if have > 0 else _("已售罄")
        else:
            skus = await catalog_service.skus_for_sale(session, scope, [s for s, _q in lines.pairs])
            for s, n in lines.pairs:
                sku = skus.get(s)
                line_views.append({"sku_id": s, "product_id": sku.product_id if sku else None,
                                   "title": sku.title if sku else _("商品已失效"), "spec_text": sku.spec_text if sku else "",
                                   "image": sku.image if sku else None, "unit_price_fen": sku.price_fen if sku else 0,
                                   "quantity": n})
    for lv in line_views:
        lv["problem"] = problems.get(lv["sku_id"], "")
    colon = ": " if _english() else "："
    titled = [f"{lv['title']}{(' ' + lv['spec_text']) if lv['spec_text'] else ''}{colon}{lv['problem']}"
              for lv in line_views if lv["problem"]]
    first_product = line_views[0]["product_id"] if line_views else None
    back = f"{base}/cart" if lines.from_cart or not first_product else f"{base}/p/{first_product}"
    here = _checkout_url(base, lines, chosen.id if chosen else None, options)
    return _page(request, me, "store/orders/checkout.html", {
        "lines": line_views, "quote": quote_view, "address": chosen, "addresses": addresses,
        "choose_url": lambda aid: _checkout_url(base, lines, aid, options), "pay_with": pay_with,
        "points_option": options.get("points") or "", "balance_option": "1" if options.get("use_balance") else "",
        "add_address_url": f"{base}/checkout/address?next={quote(here, safe='')}",
        "line_tokens": lines.tokens, "from_cart": lines.from_cart,
        "idempotency_key": idempotency_key or secrets.token_urlsafe(24), "buyer_note": buyer_note,
        "error": message or (error.message() if error else ""), "problems": titled if error or message else [],
        "back_url": back,
    }, active_tab="cart", status_code=status_code)


@router.get("/m/{shop}/checkout")
async def checkout_page(request: Request, session: UoW, me: CurrentShopper,
                        from_: Annotated[str, Query(alias="from", max_length=10)] = "",
                        sku_id: Annotated[str, Query(max_length=20)] = "",
                        qty: Annotated[str, Query(max_length=6)] = "1",
                        address_id: Annotated[str, Query(max_length=20)] = "",
                        points: Annotated[str, Query(max_length=15)] = "",
                        use_balance: Annotated[str, Query(max_length=5)] = "") -> Response:
    """确认订单, "from the cart" (``?from=cart``: the ticked lines that can be bought) or
    "buy now" (``?sku_id=&qty=``); ``points`` / ``use_balance`` are the 使用积分 / 使用余额
    switches (members module)."""
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    if from_ == "cart":
        view = await cart.view(session, scope, cid)
        pairs = [(ln.item.sku_id, ln.item.quantity) for ln in reversed(view.lines) if ln.item.selected and ln.buyable]
        if not pairs:
            return redirect(f"{base}/cart", _("请先勾选要结算的商品"), "error")
        lines = _Lines(pairs, True)
    else:
        sid, n = to_int(sku_id), to_int(qty)
        if sid is None or n is None:
            return redirect(f"{base}/cart", _("请先选择要购买的商品"), "error")
        lines = _Lines([(sid, n)], False)
    return await _checkout_page(request, session, me, lines, address_id=to_int(address_id),
                                options=_pay_options(points, use_balance))


@router.post("/m/{shop}/checkout")
async def checkout_submit(request: Request, session: UoW, me: CurrentShopper) -> Response:
    """提交订单. Domain errors (no address, out of stock, off sale) re-render the page with
    the error, the same key and what the shopper typed, with the error's 4xx status."""
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    form = await request.form()
    pairs = _parse_tokens(form.getlist("line"))
    from_cart = bool(form.get("from_cart"))
    key = str(form.get("idempotency_key") or "")[:64]
    note = " ".join(str(form.get("buyer_note") or "").split())
    address_id = to_int(str(form.get("address_id") or ""))
    options = _pay_options(str(form.get("points") or "")[:15], str(form.get("use_balance") or "")[:5])
    if not pairs or not key:
        return redirect(f"{base}/cart", _("页面已过期，请重新结算"), "error")
    lines = _Lines(pairs, from_cart)
    message = ""
    try:
        no_control(note)
    except ValueError:
        message = _("订单备注不能包含特殊字符")
    if len(note) > MAX_NOTE:
        message = _("订单备注最多 %(n)s 个字") % {"n": MAX_NOTE}
    if message:
        return await _checkout_page(request, session, me, lines, address_id=address_id, buyer_note=note[:MAX_NOTE],
                                    idempotency_key=key, message=message, status_code=422, options=options)
    placed, err = await attempt(session, lambda: checkout.place(
        session, scope, customer_id=cid, lines=pairs, address_id=address_id, buyer_note=note or None,
        idempotency_key=key, channel="h5", options=options or None))
    if err is not None:
        if err.code == "idempotency_key_reused":
            # The same page submitted with other contents: a fresh page, a fresh key.
            return await _checkout_page(request, session, me, lines, address_id=address_id, buyer_note=note,
                                        message=_("订单内容已变化，请确认后重新提交"), status_code=409, options=options)
        if err.code in _PAY_OPTION_ERRORS:
            # Points or balance were spent meanwhile: the new total on a fresh page (fresh key).
            return await _checkout_page(request, session, me, lines, address_id=address_id, buyer_note=note,
                                        message=err.message(), status_code=409, options=options)
        return await _checkout_page(request, session, me, lines, address_id=address_id, buyer_note=note,
                                    idempotency_key=key, error=err, status_code=err.status if err.status < 500 else 409,
                                    options=options)
    assert placed is not None
    if placed.created and from_cart:
        await cart.remove_skus(session, scope, cid, [s for s, _q in pairs])
    return redirect(f"{base}/orders/{placed.order.id}/pay")


def _address_values(form: Any) -> dict[str, Any]:
    return {k: str(form.get(k) or "").strip()[:300] for k in
            ("receiver_name", "phone", "province_code", "city", "district", "detail")} | {
        "is_default": str(form.get("is_default") or "") in ("1", "on", "true")}


@router.get("/m/{shop}/checkout/address")
async def checkout_address(request: Request, me: CurrentShopper,
                           next: Annotated[str, Query(max_length=500)] = "") -> Response:
    """新增收货地址 from 确认订单: saved to the address book, then back to the checkout."""
    back = _local_path(next, me, f"{_base(me)}/cart")
    return _page(request, me, "store/orders/address_new.html", {
        "values": {"is_default": True}, "errors": {}, "provinces": PROVINCES, "next": back, "error": ""},
        active_tab="cart")


@router.post("/m/{shop}/checkout/address")
async def checkout_address_save(request: Request, session: UoW, me: CurrentShopper) -> Response:
    form = await request.form()
    back = _local_path(str(form.get("next") or ""), me, f"{_base(me)}/cart")
    values = _address_values(form)
    try:
        data = AddressIn(**values)
    except ValidationError as exc:
        errors = field_errors(exc, ADDRESS_FIELD_MESSAGES)
        return _page(request, me, "store/orders/address_new.html", {
            "values": values, "errors": errors, "provinces": PROVINCES, "next": back, "error": first_error(errors)},
            active_tab="cart", status_code=422)
    scope, cid = me.shop.scope, _cid(me)
    saved, err = await attempt(session, lambda: customers_service.create_address(session, scope, cid, data))
    if err is not None:
        return _page(request, me, "store/orders/address_new.html", {
            "values": values, "errors": {}, "provinces": PROVINCES, "next": back, "error": err.message()},
            active_tab="cart", status_code=err.status)
    assert saved is not None
    target = back
    path, _sep, query = back.partition("?")
    if path == f"{_base(me)}/checkout":
        # Use the new address on the checkout it came from.
        kept = [p for p in query.split("&") if p and not p.startswith("address_id=")]
        target = path + "?" + "&".join([*kept, f"address_id={saved.id}"])
    return redirect(target, _("收货地址已保存"))


# -- paying ---------------------------------------------------------------------------------------------


async def _start_payment(request: Request, session: AsyncSession, me: ShopperSession, order_id: int) -> Response:
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    here = f"{base}/orders/{order_id}"
    await service.customer_order(session, scope, cid, order_id)  # another shopper's order: 404
    channels = await payments_service.available_channels(session, scope)
    if "sandbox" in channels:
        channel, ip = "sandbox", None
    elif "h5" in channels:
        channel, ip = "h5", client_ip(request)
    else:
        return redirect(here, _("本店暂未开通在线支付，请联系客服"), "error")
    started, err = await attempt(session, lambda: service.start_payment(
        session, scope, customer_id=cid, order_id=order_id, channel=channel, return_url=f"{here}?paid=1",
        payer_client_ip=ip))
    if err is not None:
        if err.status == 404:
            raise err
        return redirect(here, err.message(), "error")
    if started is None:
        return redirect(here, _("支付成功"))
    if not started.pay_url:
        return redirect(here, _("当前支付方式需要在微信中完成"), "error")
    return RedirectResponse(started.pay_url, status_code=303)


@router.get("/m/{shop}/orders/{order_id}/pay", dependencies=[Depends(_write_request)])
async def pay_page(order_id: PathId, request: Request, session: UoW, me: CurrentShopper) -> Response:
    """Right after 提交订单: open the payment and go to the gateway's pay page."""
    return await _start_payment(request, session, me, order_id)


@router.post("/m/{shop}/orders/{order_id}/pay")
async def pay_submit(order_id: PathId, request: Request, session: UoW, me: CurrentShopper) -> Response:
    return await _start_payment(request, session, me, order_id)


# -- 我的订单 ----------------------------------------------------------------------------------------------


def _tab_list() -> list[tuple[str, str]]:
    return [(k, label) for k, (label, _s) in ORDER_TABS.items()]


def _actions(order: Order) -> frozenset[str]:
    return service.shopper_actions(order)


@router.get("/m/{shop}/orders")
async def order_list(request: Request, session: UoW, me: CurrentShopper,
                     tab: Annotated[str, Query(max_length=20)] = "all",
                     page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    if tab == "after_sales":
        return redirect(f"{base}/after-sales")
    tab = tab if tab in ORDER_TABS else "all"
    statuses = ORDER_TABS[tab][1]
    filters = service.OrderFilters(customer_id=cid, statuses=statuses)
    items, total = await service.list_orders(session, scope, filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    rows = []
    for it in items:
        acts = _actions(it.order)
        rows.append({"o": it.order, "status_label": SHOPPER_STATUS.get(it.order.status, it.order.status),
                     "lines": it.lines[:LIST_LINES], "more": max(0, len(it.lines) - LIST_LINES),
                     "can_pay": "pay" in acts, "can_confirm": "confirm" in acts})
    more = page * PAGE_SIZE < total
    more_url = f"{base}/orders?" + urlencode({**({"tab": tab} if tab != "all" else {}), "page": page + 1}) if more else ""
    return _page(request, me, "store/orders/list.html", {
        "tabs": _tab_list(), "current_tab": tab, "rows": rows, "total": total, "page": page, "more_url": more_url,
    })


def _timeline(transitions: Sequence[OrderTransition]) -> list[dict[str, Any]]:
    out = []
    for t in transitions:
        if t.after_sale_id is not None:
            label = CASE_ACTIONS.get(t.action) or CASE_STATUS_ZH.get(t.to_status, t.to_status)
        elif t.action in ORDER_ACTIONS:
            label = ORDER_ACTIONS[t.action]
        else:
            label = SHOPPER_STATUS.get(t.to_status, t.to_status) if t.from_status != t.to_status else t.action
        out.append({"at": t.created_at, "label": label, "note": t.note or ""})
    return list(reversed(out))


def _shipment_items(items: Sequence[Any], lines: dict[int, OrderLine]) -> list[tuple[str, int]]:
    out = []
    for it in items or []:
        if not isinstance(it, dict):
            continue
        ln = lines.get(int(it.get("line_id") or 0))
        if ln is not None:
            out.append((ln.title + (f"（{ln.spec_text}）" if ln.spec_text else ""), int(it.get("qty") or 0)))
    return out


def _payment_pending(payments: Sequence[Any]) -> bool:
    """Whether the newest payment of an order may still succeed (its result is on its way)."""
    latest = max(payments, key=lambda p: p.id, default=None)
    return latest is not None and latest.status in ("pending", "succeeded")


async def _after_sale_links(session: AsyncSession, me: ShopperSession, order: Order) -> dict[int, tuple[str, str]]:
    """order line id → where its 申请售后 (or its open case) is, for the lines that have one now."""
    base = _base(me)
    r = await aftersales.refundable_lines(session, me.shop.scope, order)
    out: dict[int, tuple[str, str]] = {}
    for rl in r.lines:
        if rl.open_case_id is not None:
            out[rl.line.id] = (f"{base}/after-sales/{rl.open_case_id}", "查看售后")
        elif r.allowed and (rl.refund_only_qty or rl.return_refund_qty):
            out[rl.line.id] = (f"{base}/orders/{order.id}/after-sales/new?line={rl.line.id}", "申请售后")
    return out


@router.get("/m/{shop}/orders/{order_id}")
async def order_page(order_id: PathId, request: Request, session: UoW, me: CurrentShopper,
                     paid: Annotated[str, Query(max_length=2)] = "",
                     n: Annotated[int, Query(ge=0, le=1000)] = 0) -> Response:
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    d = await service.order_detail(session, scope, order_id, customer_id=cid)
    o = d.order
    by_id = {ln.id: ln for ln in d.lines}
    links = await _after_sale_links(session, me, o) if o.status in PAID_STATUSES else {}
    lines = []
    for ln in d.lines:
        notes = []
        if ln.refunded_qty:
            notes.append(_("已退款 %(n)s 件") % {"n": ln.refunded_qty})
        elif ln.refund_qty:
            notes.append(_("售后中 %(n)s 件") % {"n": ln.refund_qty})
        if o.status == "partially_shipped" and ln.requires_shipping:
            notes.append(_("已发 %(a)s / %(b)s 件") % {"a": ln.shipped_qty, "b": ln.quantity - ln.cancelled_qty})
        url, label = links.get(ln.id, ("", ""))
        lines.append({"ln": ln, "after_sale_url": url, "after_sale_label": label, "note": " · ".join(notes)})
    polling = bool(paid) and o.status == "pending_payment" and n < MAX_POLLS and _payment_pending(d.payments)
    cases = [{"c": c, "status_label": CASE_STATUS_ZH.get(c.status, c.status), "kind_label": aftersales.KIND_ZH.get(c.kind, c.kind)}
             for c in d.after_sales]
    return _page(request, me, "store/orders/detail.html", {
        "o": o, "status_label": SHOPPER_STATUS.get(o.status, o.status), "status_hint": STATUS_HINTS.get(o.status, ""),
        "lines": lines, "offers": _stored_offers(o), "freight_reason": _stored_freight_reason(o),
        "shipments": [{"s": s, "contents": _shipment_items(s.items, by_id)} for s in d.shipments],
        "timeline": _timeline(d.transitions), "cases": cases,
        "can_pay": "pay" in d.actions, "can_cancel": "cancel" in d.actions, "can_confirm": "confirm" in d.actions,
        "deadline_iso": o.pay_deadline.isoformat() if o.pay_deadline else "",
        "poll_url": f"{base}/orders/{o.id}?paid=1&n={n + 1}" if polling else "",
    })


@router.post("/m/{shop}/orders/{order_id}/cancel")
async def order_cancel(order_id: PathId, session: UoW, me: CurrentShopper) -> Response:
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    _o, err = await attempt(session, lambda: service.cancel_order(session, scope, order_id, by="customer", customer_id=cid))
    if err is not None:
        if err.status == 404:
            raise err
        return redirect(f"{base}/orders/{order_id}", err.message(), "error")
    return redirect(f"{base}/orders/{order_id}", _("订单已取消"))


@router.post("/m/{shop}/orders/{order_id}/confirm")
async def order_confirm(order_id: PathId, session: UoW, me: CurrentShopper) -> Response:
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    _o, err = await attempt(session, lambda: fulfilment.confirm_receipt(session, scope, order_id, cid))
    if err is not None:
        if err.status == 404:
            raise err
        return redirect(f"{base}/orders/{order_id}", err.message(), "error")
    return redirect(f"{base}/orders/{order_id}", _("已确认收货，交易完成"))


# -- 售后 ---------------------------------------------------------------------------------------------------


def _case_form_rows(r: aftersales.Refundable, chosen: dict[int, int]) -> list[dict[str, Any]]:
    return [{"ln": rl.line, "refund_only_qty": rl.refund_only_qty, "return_refund_qty": rl.return_refund_qty,
             "max_qty": max(rl.refund_only_qty, rl.return_refund_qty), "max_fen": max(rl.refund_only_fen, rl.return_refund_fen),
             "chosen_qty": min(chosen.get(rl.line.id, 0), max(rl.refund_only_qty, rl.return_refund_qty)),
             "open_case_id": rl.open_case_id}
            for rl in r.lines if rl.refund_only_qty or rl.return_refund_qty or rl.open_case_id]


def _case_form(request: Request, me: ShopperSession, r: aftersales.Refundable, *, values: dict[str, Any],
               chosen: dict[int, int], errors: dict[str, str] | None = None, error: str = "",
               status_code: int = 200) -> HTMLResponse:
    kinds = [k for k in aftersales.KINDS if any(getattr(rl, f"{k}_qty") for rl in r.lines)]
    return _page(request, me, "store/orders/after_sale_new.html", {
        "o": r.order, "rows": _case_form_rows(r, chosen),
        "kinds": [(k, aftersales.KIND_ZH[k]) for k in kinds],
        "reasons": {k: list(aftersales.reasons(k)) for k in kinds},
        "all_reasons": list(dict.fromkeys(r for k in kinds for r in aftersales.reasons(k))),
        "values": values, "errors": errors or {}, "error": error,
    }, status_code=status_code)


@router.get("/m/{shop}/orders/{order_id}/after-sales/new")
async def after_sale_new(order_id: PathId, request: Request, session: UoW, me: CurrentShopper,
                         line: Annotated[str, Query(max_length=20)] = "") -> Response:
    """申请售后: kind, lines and quantities (what Part C says can still be asked for), reason, description."""
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    order = await service.customer_order(session, scope, cid, order_id)
    r = await aftersales.refundable_lines(session, scope, order)
    if not r.allowed or not any(rl.refund_only_qty or rl.return_refund_qty for rl in r.lines):
        why = (r.reason_en if _english() else r.reason_zh) or _("该订单暂时不能申请售后")
        return redirect(f"{base}/orders/{order_id}", why, "error")
    wanted = to_int(line)
    usable = [rl for rl in r.lines if rl.refund_only_qty or rl.return_refund_qty]
    chosen = {rl.line.id: max(rl.refund_only_qty, rl.return_refund_qty) for rl in usable
              if rl.line.id == wanted or (wanted is None and len(usable) == 1)}
    focus = next((rl for rl in usable if rl.line.id == wanted), None)
    kind = "return_refund" if focus is not None and focus.unshipped_qty == 0 and focus.return_refund_qty else "refund_only"
    if not any(rl.refund_only_qty for rl in usable):
        kind = "return_refund"
    return _case_form(request, me, r, values={"kind": kind, "reason": "", "description": ""}, chosen=chosen)


@router.post("/m/{shop}/orders/{order_id}/after-sales/new")
async def after_sale_create(order_id: PathId, request: Request, session: UoW, me: CurrentShopper) -> Response:
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    order = await service.customer_order(session, scope, cid, order_id)
    form = await request.form()
    kind = str(form.get("kind") or "")[:20]
    reason = str(form.get("reason") or "").strip()[:40]
    description = str(form.get("description") or "").strip()[:2000]
    values = {"kind": kind, "reason": reason, "description": description}
    chosen: dict[int, int] = {}
    for key, value in form.multi_items():
        if key.startswith("qty_") and (line_id := to_int(key[4:])) is not None:
            n = str(value).strip()
            chosen[line_id] = int(n) if n.isdigit() and len(n) <= 4 else 0
    picked = [(lid, q) for lid, q in chosen.items() if q > 0]
    errors: dict[str, str] = {}
    if kind not in aftersales.KINDS:
        errors["kind"] = _("请选择售后类型")
    if not picked:
        errors["lines"] = _("请至少选择一件商品")
    if not reason:
        errors["reason"] = _("请选择申请原因")
    if errors:
        r = await aftersales.refundable_lines(session, scope, order)
        return _case_form(request, me, r, values=values, chosen=chosen, errors=errors, error=first_error(errors),
                          status_code=422)
    case, err = await attempt(session, lambda: aftersales.open_case(
        session, scope, order_id, customer_id=cid, kind=kind, lines=picked, reason=reason, description=description or None))
    if err is not None:
        if err.status == 404:
            raise err
        r = await aftersales.refundable_lines(session, scope, order)
        fields = {f["field"]: err.message() for f in err.fields if f.get("field") in ("kind", "reason", "description", "lines")}
        return _case_form(request, me, r, values=values, chosen=chosen, errors=fields, error=err.message(),
                          status_code=err.status)
    assert case is not None
    return redirect(f"{base}/after-sales/{case.id}", _("售后申请已提交"))


def _carriers() -> list[tuple[str, str]]:
    return [(c.code, c.name_en if _english() else c.name) for c in fulfilment.CARRIERS]


async def _case_page(request: Request, session: AsyncSession, me: ShopperSession, case_id: int, *,
                     values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                     status_code: int = 200) -> HTMLResponse:
    d = await aftersales.case_detail(session, me.shop.scope, case_id, customer_id=_cid(me))
    c = d.case
    timeline = [{"at": t.at, "label": CASE_ACTIONS.get(t.action) or CASE_STATUS_ZH.get(t.to_status, t.to_status),
                 "note": t.note or ""} for t in reversed(d.timeline)]
    return _page(request, me, "store/orders/after_sale.html", {
        "c": c, "o": d.order, "status_label": CASE_STATUS_ZH.get(c.status, c.status), "status_hint": CASE_HINTS.get(c.status, ""),
        "kind_label": aftersales.KIND_ZH.get(c.kind, c.kind),
        "lines": [{"title": ln.title, "spec_text": ln.spec_text, "image": ln.image, "quantity": ln.quantity,
                   "refund_fen": ln.refund_fen, "unit_price_fen": ln.unit_price_fen} for ln in d.lines],
        "can_withdraw": "withdraw" in d.shopper_actions, "needs_return": "submit_return" in d.shopper_actions,
        "return_address": d.return_address or "", "carriers": _carriers(),
        "values": values or {"carrier": "", "tracking_no": ""}, "errors": errors or {}, "timeline": timeline,
    }, status_code=status_code)


@router.get("/m/{shop}/after-sales/{case_id}")
async def after_sale_page(case_id: PathId, request: Request, session: UoW, me: CurrentShopper) -> Response:
    return await _case_page(request, session, me, case_id)


@router.post("/m/{shop}/after-sales/{case_id}/return")
async def after_sale_return(case_id: PathId, request: Request, session: UoW, me: CurrentShopper,
                            carrier: Annotated[str, Form(max_length=40)] = "",
                            tracking_no: Annotated[str, Form(max_length=60)] = "") -> Response:
    """The return parcel: carrier and tracking number."""
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    values = {"carrier": carrier.strip(), "tracking_no": tracking_no.strip()}
    errors: dict[str, str] = {}
    if not values["carrier"]:
        errors["carrier"] = _("请选择物流公司")
    if not values["tracking_no"]:
        errors["tracking_no"] = _("请填写物流单号")
    known = fulfilment.carrier_for(values["carrier"])
    if values["carrier"] and known is None:
        errors["carrier"] = _("请选择物流公司")
    if not errors:
        # The case keeps the carrier's name, as the shop's staff read it.
        name = known.name if known else values["carrier"]
        _c, err = await attempt(session, lambda: aftersales.submit_return(
            session, scope, case_id, customer_id=cid, carrier=name, tracking_no=values["tracking_no"]))
        if err is None:
            return redirect(f"{base}/after-sales/{case_id}", _("物流信息已提交，商家收到退货后将为您退款"))
        if err.status == 404:
            raise err
        errors = {f["field"]: err.message() for f in err.fields if f.get("field") in ("carrier", "tracking_no")}
        if not errors:
            return redirect(f"{base}/after-sales/{case_id}", err.message(), "error")
        return await _case_page(request, session, me, case_id, values=values, errors=errors, status_code=err.status)
    return await _case_page(request, session, me, case_id, values=values, errors=errors, status_code=422)


@router.post("/m/{shop}/after-sales/{case_id}/withdraw")
async def after_sale_withdraw(case_id: PathId, session: UoW, me: CurrentShopper) -> Response:
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    _c, err = await attempt(session, lambda: aftersales.withdraw(session, scope, case_id, customer_id=cid))
    if err is not None:
        if err.status == 404:
            raise err
        return redirect(f"{base}/after-sales/{case_id}", err.message(), "error")
    return redirect(f"{base}/after-sales/{case_id}", _("售后申请已撤销"))


@router.get("/m/{shop}/after-sales")
async def after_sale_list(request: Request, session: UoW, me: CurrentShopper,
                          page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    scope, cid, base = me.shop.scope, _cid(me), _base(me)
    rows, total = await aftersales.customer_cases(session, scope, cid, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    orders: dict[int, dict[int, OrderLine]] = {}
    for row in rows:
        if row.case.order_id not in orders:
            orders[row.case.order_id] = {ln.id: ln for ln in await service.order_lines(session, scope, row.case.order_id)}
    items = []
    for row in rows:
        by_id = orders[row.case.order_id]
        lines = []
        for cl in row.lines:
            ol = by_id.get(cl.order_line_id)
            if ol is not None:
                lines.append({"title": ol.title, "spec_text": ol.spec_text, "image": ol.image,
                              "unit_price_fen": ol.unit_price_fen, "quantity": cl.quantity})
        items.append({"c": row.case, "order_no": row.order_no, "lines": lines[:LIST_LINES],
                      "status_label": CASE_STATUS_ZH.get(row.case.status, row.case.status),
                      "kind_label": aftersales.KIND_ZH.get(row.case.kind, row.case.kind)})
    more_url = f"{base}/after-sales?page={page + 1}" if page * PAGE_SIZE < total else ""
    return _page(request, me, "store/orders/after_sales.html", {
        "tabs": _tab_list(), "current_tab": "after_sales", "rows": items, "more_url": more_url})


# -- 我的 page shortcuts ----------------------------------------------------------------------------------


async def order_shortcuts(session: AsyncSession, scope: Any, customer_id: int, base: str) -> list[dict[str, Any]]:
    """The 待付款 / 待发货 / 待收货 / 售后 row of 我的, with counts."""
    out = []
    for key in ("pending_payment", "to_ship", "to_receive"):
        label, statuses = ORDER_TABS[key]
        _items, total = await service.list_orders(session, scope, service.OrderFilters(customer_id=customer_id,
                                                                                       statuses=statuses), limit=1)
        out.append({"key": key, "label": label, "count": total, "url": f"{base}/orders?tab={key}"})
    out.append({"key": "after_sales", "label": "售后", "count": await _open_case_count(session, scope, customer_id),
                "url": f"{base}/after-sales"})
    return out


async def _open_case_count(session: AsyncSession, scope: Any, customer_id: int) -> int:
    _rows, total = await aftersales.customer_cases(session, scope, customer_id, status="open", limit=1)
    return total

