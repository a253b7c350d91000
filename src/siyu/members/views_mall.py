"""Pages of the points mall (积分商城).

Console (``/admin/members/mall``): the items with 全部/上架中/已下架 tabs and a search box,
上架/下架 from the list, the item form (new and edit; a product is picked from a product
search, a coupon from the templates the marketing module offers), stock in or out by a
delta, deleting an item nobody exchanged, and the exchange records. Reading needs
``members.read``; every change ``members.write`` (the service audits it).

Storefront (``/m/{shop}/member/mall``): the items on sale with my points and what stops me
from exchanging each, an item's page with quantity and delivery address, 立即兑换, and my
exchanges (``/member/mall/orders``) with links to their orders. A product exchange with a
cash part goes on to the order's pay page; anything else lands on my exchanges with a
message. Browsing needs no sign-in; exchanging does.

Same conventions as the orders pages: plain forms carrying ``_csrf``, 303 with a flash
message after a successful post, the page again with the error and its 4xx status
otherwise, every service call in a savepoint (:func:`siyu.web.forms.attempt`). The
exchange form carries a key made when the page was rendered, so a double tap exchanges once.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.customers import service as customers_service
from siyu.customers.access import CurrentShopper, OptionalShopper, ShopperSession
from siyu.kit.context import current_language
from siyu.kit.errors import DomainError
from siyu.kit.i18n import gettext as _
from siyu.kit.money import yuan
from siyu.kit.types import PathId
from siyu.kit.web import UoW
from siyu.members import mall, rewards
from siyu.members.models import PointsMallItem
from siyu.staff.access import StaffPrincipal, require
from siyu.web import i18n_members_mall  # noqa: F401  (registers the English of these pages)
from siyu.web.forms import attempt, error_flash, query_url, to_int
from siyu.web.page import console_page, flash, redirect, store_page

router = APIRouter(include_in_schema=False)

Reader = Annotated[StaffPrincipal, require("members.read")]
Writer = Annotated[StaffPrincipal, require("members.write")]
PAGE_SIZE = 20
STORE_PAGE = 20
TABS = {"": "全部", "on": "上架中", "off": "已下架"}
STATUS_COLORS = {"pending_payment": "orange", "completed": "green", "cancelled": "gray", "refunded": "gray"}
#: Form fields of the item form, in the order errors are reported.
FORM_FIELDS = ("kind", "sku_id", "coupon_id", "title", "image", "description", "points", "cash", "stock",
               "per_member_limit", "min_level_rank", "sort", "delta")


def _en() -> bool:
    return current_language().startswith("en")


def _text(value: str, limit: int = 100) -> str:
    return "".join(ch for ch in value if ch.isprintable()).strip()[:limit]


# -- console: the list ------------------------------------------------------------------------------------


async def _level_options(session: AsyncSession, me: StaffPrincipal) -> list[tuple[int, str]]:
    names = await mall.level_names(session, me.scope)
    out = [(0, _("所有会员"))]
    out += [(rank, _("%(name)s及以上") % {"name": name}) for rank, name in sorted(names.items()) if rank > 0]
    return out


@router.get("/admin/members/mall")
async def item_list(request: Request, session: UoW, me: Reader,
                    tab: Annotated[str, Query(max_length=10)] = "",
                    q: Annotated[str, Query(max_length=100)] = "",
                    page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    tab = tab if tab in TABS else ""
    q = _text(q)
    on_sale = {"on": True, "off": False}.get(tab)
    rows, total = await mall.list_items(session, me.scope, on_sale=on_sale, q=q or None, offset=(page - 1) * PAGE_SIZE,
                                        limit=PAGE_SIZE)
    counts = await mall.counts_by_sale(session, me.scope)
    names = await mall.level_names(session, me.scope)
    here = query_url("/admin/members/mall", tab=tab, q=q) + (f"page={page}" if page > 1 else "")
    return console_page(request, me, "console/members/mall_list.html", {
        "title": _("积分商城"), "items": rows, "total": total, "page": page, "page_size": PAGE_SIZE,
        "base_url": query_url("/admin/members/mall", tab=tab, q=q), "tab_url": query_url("/admin/members/mall", q=q),
        "tabs": TABS, "tab": tab, "counts": counts, "q": q, "kinds": mall.KIND_ZH, "level_names": names,
        "can_write": me.can("members.write"), "here": here.rstrip("?&"), "coupons_on": rewards.coupons_available(),
    })


@router.post("/admin/members/mall/{item_id}/status")
async def item_status(item_id: PathId, session: UoW, me: Writer,
                      on_sale: Annotated[str, Form(max_length=5)] = "",
                      next: Annotated[str, Form(max_length=500)] = "") -> Response:
    back = next if next.startswith("/admin/members/mall") and "//" not in next else f"/admin/members/mall/{item_id}"
    item, err = await attempt(session, lambda: mall.set_on_sale(session, me.scope, item_id, on_sale == "1"))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(RedirectResponse(back, status_code=303), err.message(), "error")
    assert item is not None
    return flash(RedirectResponse(back, status_code=303), _("已上架") if item.on_sale else _("已下架"))


# -- console: the item form ---------------------------------------------------------------------------------


def _values_of(item: PointsMallItem | None, kind: str) -> dict[str, Any]:
    if item is None:
        return {"kind": kind, "sku_id": "", "coupon_id": "", "title": "", "image": "", "description": "", "points": "",
                "cash": "0", "stock": "", "per_member_limit": "0", "min_level_rank": "0", "sort": "0", "on_sale": False}
    return {"kind": item.kind, "sku_id": str(item.sku_id or ""), "coupon_id": str(item.coupon_id or ""),
            "title": item.title, "image": item.image or "", "description": item.description, "points": str(item.points),
            "cash": yuan(item.cash_fen), "stock": str(item.stock), "per_member_limit": str(item.per_member_limit),
            "min_level_rank": str(item.min_level_rank), "sort": str(item.sort), "on_sale": item.on_sale}


async def _sku_options(session: AsyncSession, me: StaffPrincipal, q: str, current: int | None) -> list[tuple[int, str]]:
    """SKUs of the products matching ``q`` (newest first, 20 products), plus the current one."""
    products, _total = await catalog_service.list_products(session, me.scope, catalog_service.ProductQuery(q=q or None),
                                                           limit=20)
    by_product = await catalog_service.skus_of_products(session, me.scope, [p.id for p in products])
    ids = [s.id for p in products for s in by_product.get(p.id, []) if s.status == "active"]
    if current is not None and current not in ids:
        ids.insert(0, current)
    found = await catalog_service.skus_for_sale(session, me.scope, ids)
    out = []
    for sid in ids:
        sku = found.get(sid)
        if sku is None:
            continue
        label = f"{sku.title}{' · ' + sku.spec_text if sku.spec_text else ''} · ¥{yuan(sku.price_fen)}"
        if not sku.on_sale:
            label += " " + _("（未上架）")
        out.append((sid, label))
    return out


async def _form_page(request: Request, session: AsyncSession, me: StaffPrincipal, item: PointsMallItem | None, *,
                     values: dict[str, Any] | None = None, errors: dict[str, str] | None = None, kind: str = "product",
                     sku_q: str = "", message: str = "", status_code: int = 200) -> HTMLResponse:
    shown = _values_of(item, kind if kind in mall.KINDS else "product")
    shown.update(values or {})
    current_sku = to_int(str(shown.get("sku_id") or ""))
    coupons = await rewards.coupon_choices(session, me.scope) if rewards.coupons_available() else []
    held = bool(item and (item.sold or (await mall.list_redemptions(session, me.scope, item_id=item.id, limit=1))[1]))
    ctx: dict[str, Any] = {
        "title": item.title if item else _("新建积分商城商品"), "item": item, "values": shown, "errors": errors or {},
        "sku_options": await _sku_options(session, me, sku_q, current_sku) if shown["kind"] == "product" else [],
        "sku_q": sku_q, "coupon_options": coupons, "coupons_on": rewards.coupons_available(),
        "level_options": await _level_options(session, me), "kinds": mall.KIND_ZH, "can_write": me.can("members.write"),
        "locked": held, "action": f"/admin/members/mall/{item.id}" if item else "/admin/members/mall/new",
        "max_stock": mall.MAX_STOCK,
    }
    if message:
        ctx["flash"] = error_flash(message)
    return console_page(request, me, "console/members/mall_form.html", ctx, status_code=status_code)


def _parse(form: dict[str, str], *, creating: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Form text → the service's fields, or {field: message} for what cannot be read."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {"kind": form.get("kind", "")}

    def whole(name: str, lo: int, hi: int, message: str, *, required: bool = True) -> int:
        raw = form.get(name, "").strip()
        if not raw and not required:
            return 0
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not lo <= int(raw) <= hi:
            errors[name] = _(message) % {"lo": lo, "hi": hi}
            return 0
        return int(raw)

    out["points"] = whole("points", 1, mall.MAX_POINTS, "所需积分需为 %(lo)s–%(hi)s 的整数")
    if creating:
        out["stock"] = whole("stock", 0, mall.MAX_STOCK, "库存需为 %(lo)s–%(hi)s 的整数")
    out["per_member_limit"] = whole("per_member_limit", 0, mall.MAX_LIMIT, "每人限兑需为 %(lo)s–%(hi)s 的整数", required=False)
    out["min_level_rank"] = whole("min_level_rank", 0, mall.MAX_RANK, "请选择兑换等级", required=False)
    out["sort"] = whole("sort", 0, mall.MAX_SORT, "排序需为 %(lo)s–%(hi)s 的整数", required=False)
    cash = form.get("cash", "").strip() or "0"
    try:
        out["cash_fen"] = catalog_service.parse_yuan(cash)
    except ValueError:
        errors["cash"] = _("加价金额需为最多两位小数的金额")
        out["cash_fen"] = 0
    out["sku_id"] = to_int(form.get("sku_id", "")) if out["kind"] == "product" else None
    out["coupon_id"] = to_int(form.get("coupon_id", "")) if out["kind"] == "coupon" else None
    out["title"] = form.get("title", "")
    out["image"] = form.get("image", "") or None
    out["description"] = form.get("description", "")
    out["on_sale"] = form.get("on_sale", "") in ("1", "on", "true")
    return out, errors


_FIELD_OF = {"cash_fen": "cash"}


def _domain_errors(err: DomainError) -> dict[str, str]:
    out = {_FIELD_OF.get(f.get("field", ""), f.get("field", "")): err.message() for f in err.fields}
    if not out and err.extra.get("field"):
        out[str(err.extra["field"])] = err.message()
    return {k: v for k, v in out.items() if k in FORM_FIELDS}


async def _read_form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(form.get(k) or "")[:600] for k in (*FORM_FIELDS, "on_sale")}


@router.get("/admin/members/mall/new")
async def new_item(request: Request, session: UoW, me: Writer,
                   kind: Annotated[str, Query(max_length=10)] = "product",
                   sku_q: Annotated[str, Query(max_length=100)] = "") -> Response:
    return await _form_page(request, session, me, None, kind=kind, sku_q=_text(sku_q))


@router.post("/admin/members/mall/new")
async def create_item(request: Request, session: UoW, me: Writer) -> Response:
    form = await _read_form(request)
    data, errors = _parse(form, creating=True)
    if errors:
        return await _form_page(request, session, me, None, values=form | {"on_sale": data["on_sale"]}, errors=errors,
                                kind=data["kind"], message=next(iter(errors.values())), status_code=422)
    item, err = await attempt(session, lambda: mall.create_item(session, me.scope, mall.ItemData(**data)))
    if err is not None or item is None:
        assert err is not None
        return await _form_page(request, session, me, None, values=form | {"on_sale": data["on_sale"]},
                                errors=_domain_errors(err), kind=data["kind"], message=err.message(),
                                status_code=err.status)
    return flash(RedirectResponse(f"/admin/members/mall/{item.id}", status_code=303), _("已添加积分商城商品"))


@router.get("/admin/members/mall/redemptions")
async def redemption_list(request: Request, session: UoW, me: Reader,
                          status: Annotated[str, Query(max_length=20)] = "",
                          item_id: Annotated[str, Query(max_length=20)] = "",
                          customer_id: Annotated[str, Query(max_length=20)] = "",
                          page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    status = status if status in mall.STATUSES else ""
    iid, cid = to_int(item_id), to_int(customer_id)
    rows, total = await mall.list_redemptions(session, me.scope, status=status or None, item_id=iid, customer_id=cid,
                                              offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    names: dict[int, str] = {}
    for c in sorted({r.customer_id for r in rows}):
        try:
            customer = await customers_service.get_customer(session, me.scope, c)
            names[c] = customer.nickname or f"#{c}"
        except DomainError:
            names[c] = f"#{c}"
    item = None
    if iid is not None:
        item = (await mall.items_by_id(session, me.scope, [iid])).get(iid)
    params = {"item_id": str(iid or ""), "customer_id": str(cid or "")}
    return console_page(request, me, "console/members/mall_redemptions.html", {
        "title": _("兑换记录"), "rows": rows, "total": total, "page": page, "page_size": PAGE_SIZE,
        "base_url": query_url("/admin/members/mall/redemptions", status=status, **params),
        "tab_url": query_url("/admin/members/mall/redemptions", **params), "status": status,
        "statuses": mall.STATUS_ZH, "status_colors": STATUS_COLORS, "names": names, "item": item,
        "filtered": bool(iid or cid),
    })


@router.get("/admin/members/mall/{item_id}")
async def edit_item(item_id: PathId, request: Request, session: UoW, me: Reader,
                    sku_q: Annotated[str, Query(max_length=100)] = "") -> Response:
    item = await mall.get_item(session, me.scope, item_id)
    return await _form_page(request, session, me, item, kind=item.kind, sku_q=_text(sku_q))


@router.post("/admin/members/mall/{item_id}")
async def save_item(item_id: PathId, request: Request, session: UoW, me: Writer) -> Response:
    item = await mall.get_item(session, me.scope, item_id)
    form = await _read_form(request)
    data, errors = _parse(form, creating=False)
    if errors:
        return await _form_page(request, session, me, item, values=form | {"on_sale": data["on_sale"]}, errors=errors,
                                kind=data["kind"], message=next(iter(errors.values())), status_code=422)
    saved, err = await attempt(session, lambda: mall.update_item(session, me.scope, item_id,
                                                                 mall.ItemData(stock=item.stock, **data)))
    if err is not None or saved is None:
        assert err is not None
        return await _form_page(request, session, me, item, values=form | {"on_sale": data["on_sale"]},
                                errors=_domain_errors(err), kind=data["kind"], message=err.message(),
                                status_code=err.status)
    return flash(RedirectResponse(f"/admin/members/mall/{item_id}", status_code=303), _("已保存"))


@router.post("/admin/members/mall/{item_id}/stock")
async def item_stock(item_id: PathId, request: Request, session: UoW, me: Writer,
                     delta: Annotated[str, Form(max_length=20)] = "") -> Response:
    item = await mall.get_item(session, me.scope, item_id)
    raw = delta.strip().replace("＋", "+").replace("－", "-")
    digits = raw.lstrip("+-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 7 or raw.count("-") + raw.count("+") > 1 or int(digits) == 0:
        message = _("请输入要增加或减少的数量，如 50 或 -10")
        return await _form_page(request, session, me, item, errors={"delta": message}, message=message, status_code=422)
    n = int(raw)
    _saved, err = await attempt(session, lambda: mall.adjust_stock(session, me.scope, item_id, n))
    if err is not None:
        return await _form_page(request, session, me, item, errors={"delta": err.message()}, message=err.message(),
                                status_code=err.status)
    return flash(RedirectResponse(f"/admin/members/mall/{item_id}", status_code=303), _("库存已调整"))


@router.post("/admin/members/mall/{item_id}/delete")
async def item_delete(item_id: PathId, session: UoW, me: Writer) -> Response:
    _done, err = await attempt(session, lambda: mall.delete_item(session, me.scope, item_id))
    if err is not None:
        if err.status == 404:
            raise err
        return flash(RedirectResponse(f"/admin/members/mall/{item_id}", status_code=303), err.message(), "error")
    return flash(RedirectResponse("/admin/members/mall", status_code=303), _("已删除"))


# -- storefront ---------------------------------------------------------------------------------------------




def _base(shopper: ShopperSession) -> str:
    return f"/m/{shopper.shop.scope.code}"




async def _cards(session: AsyncSession, shopper: ShopperSession, items: list[PointsMallItem]) -> list[dict[str, Any]]:
    scope = shopper.shop.scope
    names = await mall.level_names(session, scope)
    out: list[dict[str, Any]] = []
    cid = shopper.customer.id if shopper.customer else None
    rank = await mall.member_rank(session, scope, cid) if cid else 0
    have = await mall.points_balance(session, scope, cid) if cid else 0
    held = await mall.claims_of(session, scope, cid, [i.id for i in items]) if cid else {}
    for i in items:
        level = names.get(i.min_level_rank) if i.min_level_rank else None
        e = (await mall.eligibility(session, scope, i, cid, rank=rank, points=have, held=held.get(i.id, 0), level_name=level)
             if cid else None)
        out.append({"item": i, "level": level, "ok": e.ok if e else None,
                    "why": (e.reason_en if _en() else e.reason_zh) if e else "", "held": e.held if e else 0,
                    "max_qty": e.max_quantity if e else 0})
    return out


@router.get("/m/{shop}/member/mall")
async def store_list(request: Request, session: UoW, shopper: OptionalShopper,
                     page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    scope = shopper.shop.scope
    rows, total = await mall.list_items(session, scope, on_sale=True, offset=(page - 1) * STORE_PAGE, limit=STORE_PAGE)
    have = await mall.points_balance(session, scope, shopper.customer.id) if shopper.customer else None
    more = f"{_base(shopper)}/member/mall?page={page + 1}" if page * STORE_PAGE < total else ""
    return store_page(request, shopper, "store/members/mall_list.html", {
        "cards": await _cards(session, shopper, rows), "points": have, "more_url": more, "total": total,
        "login_url": f"{_base(shopper)}/login?next={quote(_base(shopper) + '/member/mall', safe='')}",
    })


async def _item_page(request: Request, session: AsyncSession, shopper: ShopperSession, item_id: int, *,
                     quantity: int = 1, address_id: int | None = None, key: str | None = None,
                     error: DomainError | None = None, message: str = "", status_code: int = 200) -> HTMLResponse:
    scope, base = shopper.shop.scope, _base(shopper)
    item = await mall.get_item(session, scope, item_id)
    if not item.on_sale and error is None:
        raise mall.item_not_found()
    card = (await _cards(session, shopper, [item]))[0]
    sku = None
    if item.kind == "product" and item.sku_id is not None:
        sku = (await catalog_service.skus_for_sale(session, scope, [item.sku_id])).get(item.sku_id)
    addresses: list[Any] = []
    chosen = None
    here = f"{base}/member/mall/{item.id}"
    if shopper.customer is not None and sku is not None and sku.requires_shipping:
        addresses = list(await customers_service.list_addresses(session, scope, shopper.customer.id))
        chosen = next((a for a in addresses if a.id == address_id), None) or next(
            (a for a in addresses if a.is_default), addresses[0] if addresses else None)
    have = await mall.points_balance(session, scope, shopper.customer.id) if shopper.customer else None
    qty_choices = list(range(1, max(1, card["max_qty"]) + 1))
    return store_page(request, shopper, "store/members/mall_item.html", {
        "item": item, "card": card, "sku": sku, "points": have, "addresses": addresses, "address": chosen,
        "ships": bool(sku and sku.requires_shipping), "quantity": min(max(1, quantity), qty_choices[-1]),
        "qty_choices": qty_choices, "idempotency_key": key or secrets.token_urlsafe(24),
        "add_address_url": f"{base}/checkout/address?next={quote(here, safe='')}",
        "login_url": f"{base}/login?next={quote(here, safe='')}",
        "error": message or (error.message() if error else ""),
    }, status_code=status_code)


@router.get("/m/{shop}/member/mall/orders")
async def store_orders(request: Request, session: UoW, shopper: CurrentShopper,
                       before: Annotated[str, Query(max_length=20)] = "") -> Response:
    scope = shopper.shop.scope
    assert shopper.customer is not None
    rows = await mall.redemptions(session, scope, shopper.customer.id, limit=STORE_PAGE + 1, before_id=to_int(before))
    more = ""
    if len(rows) > STORE_PAGE:
        rows = rows[:STORE_PAGE]
        more = f"{_base(shopper)}/member/mall/orders?before={rows[-1].id}"
    items = await mall.items_by_id(session, scope, [r.item_id for r in rows])
    labels = mall.STATUS_EN if _en() else mall.STATUS_ZH
    return store_page(request, shopper, "store/members/mall_orders.html", {
        "rows": [{"r": r, "item": items.get(r.item_id), "status": labels.get(r.status, r.status)} for r in rows],
        "more_url": more, "points": await mall.points_balance(session, scope, shopper.customer.id),
    })


@router.get("/m/{shop}/member/mall/{item_id}")
async def store_item(item_id: PathId, request: Request, session: UoW, shopper: OptionalShopper,
                     address_id: Annotated[str, Query(max_length=20)] = "",
                     qty: Annotated[str, Query(max_length=4)] = "1") -> Response:
    return await _item_page(request, session, shopper, item_id, quantity=to_int(qty) or 1, address_id=to_int(address_id))


@router.post("/m/{shop}/member/mall/{item_id}/exchange")
async def store_exchange(item_id: PathId, request: Request, session: UoW, shopper: CurrentShopper) -> Response:
    scope, base = shopper.shop.scope, _base(shopper)
    assert shopper.customer is not None
    cid = shopper.customer.id
    form = await request.form()
    key = str(form.get("idempotency_key") or "")[:64]
    qty = to_int(str(form.get("quantity") or "1")[:4]) or 0
    address_id = to_int(str(form.get("address_id") or "")[:20])
    if not key:
        return redirect(f"{base}/member/mall/{item_id}", _("页面已过期，请重新兑换"), "error")
    done, err = await attempt(session, lambda: mall.exchange(session, scope, customer_id=cid, item_id=item_id,
                                                             quantity=qty, address_id=address_id, idempotency_key=key,
                                                             channel="h5"))
    if err is not None or done is None:
        assert err is not None
        if err.status == 404 and err.code == "mall_item_not_found":
            raise err
        fresh_key = None if err.code == "idempotency_key_reused" else key
        return await _item_page(request, session, shopper, item_id, quantity=max(qty, 1), address_id=address_id,
                                key=fresh_key, error=err, status_code=err.status if err.status < 500 else 409)
    if done.needs_payment and done.order is not None:
        return redirect(f"{base}/orders/{done.order.id}/pay")
    if done.order is not None:
        return redirect(f"{base}/member/mall/orders", _("兑换成功，商品将尽快为您发货"))
    return redirect(f"{base}/member/mall/orders", _("兑换成功，优惠券已发放到您的账户"))
