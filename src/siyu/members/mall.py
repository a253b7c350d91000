"""积分商城: members exchange points (or points + cash) for products or coupons.

Items
-----

A :class:`~siyu.members.models.PointsMallItem` is a product (one catalog SKU) or a coupon
(a template of the marketing module, offered only while a coupon granter is registered in
:mod:`siyu.members.rewards`). It costs ``points`` and ``cash_fen`` per unit, has its own
``stock`` (the units offered in the mall, apart from the warehouse stock of the SKU), a
per-member limit over the item's life (0: none), a lowest level rank and an on-sale flag.
Staff change stock only by a delta (:func:`adjust_stock`, a conditional update), so an
edit never overwrites units exchanged meanwhile.

Exchanging a product
--------------------

A product exchange is an ordinary order, so it is paid, shipped, cancelled and refunded
like one: :func:`exchange` calls :func:`siyu.orders.checkout.place` with one line and
``options={"mall_item_id": id}``.

* The pricing adjuster :func:`price_exchange` (step ``promotion``) takes the line down to
  ``cash_fen × quantity`` (offer 积分兑换, capped at what the line costs) and waives the
  freight (``data["free_shipping"]``): exchanges ship free. It refuses anything but exactly
  one line of the item's SKU, and checks on-sale, stock, level, the member's limit and
  points so the preview already says what is wrong.
* The placement hook :func:`take_for_order` runs inside the order's savepoint: it takes the
  item's stock (``stock >= q``) and the member's claim (``quantity + q <= limit``) by
  conditional updates, spends ``points × quantity`` through :func:`siyu.members.points.spend`
  (source ``order:<id>:mall``) and writes the :class:`PointsRedemption` (number = order
  number). Any shortfall is a 409 that undoes the whole order.
* Nothing left to pay (cash 0, or stored value covering it) → the order is paid at once.

Exchanging a coupon
-------------------

No order: in one savepoint the redemption row is inserted first (its number is derived
from the Idempotency-Key, so a retry finds it), then stock, claim and points are taken as
above (source ``mall:<redemption_no>``) and one coupon per unit is granted through
:func:`siyu.members.rewards.grant_coupon` (source ``mall:<redemption_no>:<n>``). A granter
that is missing or refuses undoes it all (409 ``mall_coupon_unavailable``). Coupons are
not returned.

After the exchange (outbox handlers, each idempotent)
------------------------------------------------------

* ``order.paid``: redemption ``pending_payment → completed``.
* ``order.cancelled``: redemption ``pending_payment → cancelled`` (the conditional move is
  the guard); then the points go back (:func:`siyu.members.points.give_back`, source
  ``order:<id>:mall:cancel``), and the stock and the member's claim are returned.
* ``after_sale.refunded``: the points of the refunded units go back (``points`` per unit ×
  units in the case, source ``after_sale:<case>:mall``); once every unit is refunded the
  redemption becomes ``refunded``. Stock and claim stay taken: the exchange happened.
* ``customer.merged``: the merged customer's claims add to the survivor's and the
  redemptions move to the survivor, so limits keep counting.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service as catalog_service
from siyu.kit import audit, clock, outbox
from siyu.kit.errors import Conflict, DomainError, NotFound, ValidationFailed
from siyu.kit.money import yuan
from siyu.kit.tenancy import TenantRepository, TenantScope
from siyu.kit.types import MAX_ID
from siyu.members import levels as levels_service
from siyu.members import points as points_service
from siyu.members import rewards
from siyu.members import service as members_service
from siyu.members.models import PointsMallClaim, PointsMallItem, PointsRedemption
from siyu.orders import checkout, pricing
from siyu.orders import service as orders_service
from siyu.orders.models import Order, OrderLine
from siyu.tenants import service as tenants_service

log = logging.getLogger("siyu.members.mall")

KINDS = ("product", "coupon")
KIND_ZH = {"product": "实物商品", "coupon": "优惠券"}
KIND_EN = {"product": "Product", "coupon": "Coupon"}
STATUSES = ("pending_payment", "completed", "cancelled", "refunded")
STATUS_ZH = {"pending_payment": "待付款", "completed": "已兑换", "cancelled": "已取消", "refunded": "已退款"}
STATUS_EN = {"pending_payment": "Awaiting payment", "completed": "Exchanged", "cancelled": "Cancelled",
             "refunded": "Refunded"}

OPTION = "mall_item_id"
OFFER_LABEL_ZH = "积分兑换"
OFFER_LABEL_EN = "Points exchange"
#: Bounds of what staff may set (points and cash per unit; stock; limits).
MAX_POINTS = 10_000_000
MAX_CASH_FEN = 10_000_000
MAX_STOCK = 1_000_000
MAX_LIMIT = 999
MAX_RANK = 99
MAX_SORT = 1_000_000
MAX_TITLE = 120
MAX_DESCRIPTION = 500
MAX_IMAGE = 500
#: Units in one exchange (an order line allows 999; a mall exchange is small).
MAX_QUANTITY = 99

audit.describe(
    actions={"members.mall.create": "新建积分商城商品", "members.mall.update": "修改积分商城商品",
             "members.mall.stock": "调整积分商城库存", "members.mall.delete": "删除积分商城商品"},
    objects={"points_mall_item": "积分商城商品"},
)


# -- errors -------------------------------------------------------------------------------------------


def item_not_found() -> NotFound:
    return NotFound("mall_item_not_found", "积分商城商品不存在", "Points-mall item not found")


def _redemption_not_found() -> NotFound:
    return NotFound("mall_redemption_not_found", "兑换记录不存在", "Exchange not found")


def _invalid(field: str, zh: str, en: str) -> ValidationFailed:
    return ValidationFailed("mall_item_invalid", zh, en, fields=[{"field": field, "message": en}])


def _off_sale() -> Conflict:
    return Conflict("mall_item_off_sale", "该商品已下架，暂不能兑换", "This item is not available for exchange")


def _sold_out(stock: int) -> Conflict:
    if stock <= 0:
        return Conflict("mall_sold_out", "该商品已兑完", "This item is sold out", extra={"available": 0})
    return Conflict("mall_sold_out", f"库存不足，仅剩 {stock} 件", f"Only {stock} left", extra={"available": stock})


def _limit_reached(limit: int, held: int) -> Conflict:
    left = max(0, limit - held)
    zh = f"每人限兑 {limit} 件，您已兑换 {held} 件" + (f"，最多还能兑换 {left} 件" if left else "")
    en = f"At most {limit} per member; you have exchanged {held}" + (f", so {left} more at most" if left else "")
    return Conflict("mall_limit_reached", zh, en, extra={"limit": limit, "held": held, "left": left})


def _coupon_unavailable() -> Conflict:
    return Conflict("mall_coupon_unavailable", "优惠券暂时无法发放，请稍后再试", "Coupons cannot be issued right now")


def _quantity_invalid() -> ValidationFailed:
    return ValidationFailed("mall_quantity_invalid", f"兑换数量需为 1–{MAX_QUANTITY}",
                            f"The quantity must be 1–{MAX_QUANTITY}",
                            fields=[{"field": "quantity", "message": f"1–{MAX_QUANTITY}"}])


def _insufficient_points(have: int, need: int) -> Conflict:
    return Conflict("insufficient_points", f"积分不足：需要 {need} 积分，当前 {have} 积分",
                    f"Not enough points: {need} needed, {have} available", extra={"available": have, "required": need})


def _key_reused() -> Conflict:
    return Conflict("idempotency_key_reused", "该 Idempotency-Key 已用于另一笔不同的兑换",
                    "This Idempotency-Key was already used with a different request")


# -- queries ------------------------------------------------------------------------------------------


class _Items(TenantRepository[PointsMallItem]):
    model = PointsMallItem
    not_found_zh = "积分商城商品"
    not_found_en = "Points-mall item"
    not_found_code = "mall_item_not_found"

    async def fresh(self, item_id: int) -> PointsMallItem | None:
        stmt = self.select().where(PointsMallItem.id == item_id).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def take_stock(self, item_id: int, qty: int) -> bool:
        res = await self.session.execute(
            update(PointsMallItem).where(PointsMallItem.tenant_id == self.tenant_id, PointsMallItem.id == item_id,
                                         PointsMallItem.on_sale.is_(True), PointsMallItem.stock >= qty)
            .values(stock=PointsMallItem.stock - qty, sold=PointsMallItem.sold + qty, updated_at=clock.now())
            .execution_options(synchronize_session=False))
        return int(res.rowcount) == 1  # type: ignore[attr-defined]

    async def return_stock(self, item_id: int, qty: int) -> bool:
        res = await self.session.execute(
            update(PointsMallItem).where(PointsMallItem.tenant_id == self.tenant_id, PointsMallItem.id == item_id,
                                         PointsMallItem.sold >= qty)
            .values(stock=PointsMallItem.stock + qty, sold=PointsMallItem.sold - qty, updated_at=clock.now())
            .execution_options(synchronize_session=False))
        return int(res.rowcount) == 1  # type: ignore[attr-defined]

    async def add_stock(self, item_id: int, delta: int) -> bool:
        res = await self.session.execute(
            update(PointsMallItem).where(PointsMallItem.tenant_id == self.tenant_id, PointsMallItem.id == item_id,
                                         PointsMallItem.stock + delta >= 0, PointsMallItem.stock + delta <= MAX_STOCK)
            .values(stock=PointsMallItem.stock + delta, updated_at=clock.now())
            .execution_options(synchronize_session=False))
        return int(res.rowcount) == 1  # type: ignore[attr-defined]


def _insert_ignore(session: AsyncSession, model: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model).on_conflict_do_nothing()


async def _claim(session: AsyncSession, scope: TenantScope, item: PointsMallItem, customer_id: int, qty: int) -> None:
    """Count ``qty`` more units against the member's limit (the row is made on first need;
    the conditional update is the guard)."""
    await session.execute(_insert_ignore(session, PointsMallClaim).values(
        tenant_id=scope.id, item_id=item.id, customer_id=customer_id, quantity=0))
    cond = [PointsMallClaim.tenant_id == scope.id, PointsMallClaim.item_id == item.id,
            PointsMallClaim.customer_id == customer_id]
    stmt = update(PointsMallClaim).where(*cond)
    if item.per_member_limit > 0:
        stmt = stmt.where(PointsMallClaim.quantity + qty <= item.per_member_limit)
    res = await session.execute(stmt.values(quantity=PointsMallClaim.quantity + qty)
                                .execution_options(synchronize_session=False))
    if int(res.rowcount) != 1:  # type: ignore[attr-defined]
        held = await claimed(session, scope, item.id, customer_id)
        raise _limit_reached(item.per_member_limit, held)


async def _unclaim(session: AsyncSession, scope: TenantScope, item_id: int, customer_id: int, qty: int) -> None:
    await session.execute(
        update(PointsMallClaim).where(PointsMallClaim.tenant_id == scope.id, PointsMallClaim.item_id == item_id,
                                      PointsMallClaim.customer_id == customer_id, PointsMallClaim.quantity >= qty)
        .values(quantity=PointsMallClaim.quantity - qty).execution_options(synchronize_session=False))


async def claimed(session: AsyncSession, scope: TenantScope, item_id: int, customer_id: int) -> int:
    """Units of the item the member holds (what counts against its limit)."""
    q = select(PointsMallClaim.quantity).where(PointsMallClaim.tenant_id == scope.id, PointsMallClaim.item_id == item_id,
                                               PointsMallClaim.customer_id == customer_id)
    return int((await session.execute(q)).scalar_one_or_none() or 0)


async def claims_of(session: AsyncSession, scope: TenantScope, customer_id: int,
                    item_ids: Sequence[int]) -> dict[int, int]:
    if not item_ids:
        return {}
    q = select(PointsMallClaim.item_id, PointsMallClaim.quantity).where(
        PointsMallClaim.tenant_id == scope.id, PointsMallClaim.customer_id == customer_id,
        PointsMallClaim.item_id.in_(list(item_ids)))
    return {int(i): int(n) for i, n in (await session.execute(q)).all()}


async def _move_redemption(session: AsyncSession, scope: TenantScope, redemption_id: int, from_status: str,
                           to_status: str) -> bool:
    res = await session.execute(
        update(PointsRedemption).where(PointsRedemption.tenant_id == scope.id, PointsRedemption.id == redemption_id,
                                       PointsRedemption.status == from_status)
        .values(status=to_status, updated_at=clock.now()).execution_options(synchronize_session=False))
    return int(res.rowcount) == 1  # type: ignore[attr-defined]


async def redemption_of_order(session: AsyncSession, scope: TenantScope, order_id: int) -> PointsRedemption | None:
    """The exchange an order was placed for (``None``: an ordinary order)."""
    q = (select(PointsRedemption).where(PointsRedemption.tenant_id == scope.id, PointsRedemption.order_id == order_id)
         .execution_options(populate_existing=True))
    return (await session.execute(q)).scalars().first()


# -- items: reads ---------------------------------------------------------------------------------------


async def get_item(session: AsyncSession, scope: TenantScope, item_id: int) -> PointsMallItem:
    """One item of this tenant (another tenant's is the same 404)."""
    item = await _Items(session, scope.id).fresh(item_id)
    if item is None:
        raise item_not_found()
    return item


async def list_items(session: AsyncSession, scope: TenantScope, *, on_sale: bool | None = None, kind: str | None = None,
                     q: str | None = None, offset: int = 0, limit: int = 20) -> tuple[list[PointsMallItem], int]:
    """Items in display order (``sort``, then newest)."""
    repo = _Items(session, scope.id)
    stmt = repo.select()
    if on_sale is not None:
        stmt = stmt.where(PointsMallItem.on_sale.is_(on_sale))
    if kind:
        stmt = stmt.where(PointsMallItem.kind == kind)
    text = (q or "").strip()
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(PointsMallItem.title.ilike(f"%{escaped}%", escape="\\"))
    total = await repo.count(stmt)
    rows = await repo.list(stmt.order_by(PointsMallItem.sort.asc(), PointsMallItem.id.desc()).offset(offset).limit(limit))
    return list(rows), total


async def counts_by_sale(session: AsyncSession, scope: TenantScope) -> dict[str, int]:
    """{"": all, "on": on sale, "off": off sale} for the console tabs."""
    rows = (await session.execute(select(PointsMallItem.on_sale, func.count()).where(
        PointsMallItem.tenant_id == scope.id).group_by(PointsMallItem.on_sale))).all()
    on = sum(int(n) for flag, n in rows if flag)
    off = sum(int(n) for flag, n in rows if not flag)
    return {"": on + off, "on": on, "off": off}


async def level_names(session: AsyncSession, scope: TenantScope) -> dict[int, str]:
    """rank → level name, for "金卡会员及以上" labels."""
    return {lv.rank: lv.name for lv in await levels_service.list_levels(session, scope)}


async def member_rank(session: AsyncSession, scope: TenantScope, customer_id: int) -> int:
    """The rank of the member's effective level (growth or a valid paid card)."""
    return (await levels_service.effective_level(session, scope, customer_id)).rank


async def points_balance(session: AsyncSession, scope: TenantScope, customer_id: int) -> int:
    """Points the member can spend now (lots past expiry do not count)."""
    return (await points_service.balance(session, scope, customer_id)).available


# -- items: writes ----------------------------------------------------------------------------------------

_FIELDS = ["kind", "sku_id", "coupon_id", "title", "image", "description", "points", "cash_fen", "stock",
           "per_member_limit", "min_level_rank", "on_sale", "sort"]


@dataclass(frozen=True, slots=True)
class ItemData:
    """What staff set on an item. ``stock`` is used only when the item is created; later
    changes go through :func:`adjust_stock`. Empty ``title`` / ``image`` of a product take
    the SKU's."""

    kind: str
    points: int
    title: str = ""
    sku_id: int | None = None
    coupon_id: int | None = None
    image: str | None = None
    description: str = ""
    cash_fen: int = 0
    stock: int = 0
    per_member_limit: int = 0
    min_level_rank: int = 0
    on_sale: bool = False
    sort: int = 0


def _int_in(field: str, value: Any, lo: int, hi: int, zh: str, en: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _invalid(field, f"{zh}需为 {lo}–{hi} 的整数", f"{en} must be a whole number from {lo} to {hi}")
    return value


def _text(field: str, value: Any, limit: int, zh: str, en: str, *, required: bool = False) -> str:
    text = " ".join(str(value or "").split()) if field != "description" else str(value or "").strip()
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 or 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069
           for c in text):
        raise _invalid(field, f"{zh}不能包含特殊字符", f"{en} must not contain control characters")
    if len(text) > limit:
        raise _invalid(field, f"{zh}最多 {limit} 个字", f"{en} is at most {limit} characters")
    if required and not text:
        raise _invalid(field, f"请填写{zh}", f"{en} is required")
    return text


async def _checked(session: AsyncSession, scope: TenantScope, data: ItemData) -> dict[str, Any]:
    """The item's column values after every check (422 ``mall_item_invalid`` naming the field)."""
    if data.kind not in KINDS:
        raise _invalid("kind", "类型需为实物商品或优惠券", "kind must be product or coupon")
    values: dict[str, Any] = {
        "kind": data.kind,
        "points": _int_in("points", data.points, 1, MAX_POINTS, "所需积分", "Points"),
        "cash_fen": _int_in("cash_fen", data.cash_fen, 0, MAX_CASH_FEN, "加价金额", "Cash"),
        "stock": _int_in("stock", data.stock, 0, MAX_STOCK, "库存", "Stock"),
        "per_member_limit": _int_in("per_member_limit", data.per_member_limit, 0, MAX_LIMIT, "每人限兑", "The limit"),
        "min_level_rank": _int_in("min_level_rank", data.min_level_rank, 0, MAX_RANK, "最低等级", "The lowest level"),
        "sort": _int_in("sort", data.sort, 0, MAX_SORT, "排序", "Sort"),
        "on_sale": bool(data.on_sale),
        "description": _text("description", data.description, MAX_DESCRIPTION, "商品说明", "The description"),
        "sku_id": None, "coupon_id": None,
    }
    title = _text("title", data.title, MAX_TITLE, "名称", "The title")
    image = _text("image", data.image, MAX_IMAGE, "图片地址", "The image")
    if image and not image.startswith(("https://", "http://", "/")):
        raise _invalid("image", "图片地址需以 https:// 或 / 开头", "The image must be an https:// URL or a path of this site")
    if data.kind == "product":
        if data.sku_id is None or isinstance(data.sku_id, bool) or not 0 < data.sku_id <= MAX_ID:
            raise _invalid("sku_id", "请选择要兑换的商品规格", "Choose the SKU to exchange")
        found = await catalog_service.skus_for_sale(session, scope, [data.sku_id])
        sku = found.get(data.sku_id)
        if sku is None:
            raise _invalid("sku_id", "商品规格不存在", "No such SKU")
        if values["cash_fen"] > sku.price_fen:
            raise _invalid("cash_fen", f"加价金额不能高于商品售价 ¥{yuan(sku.price_fen)}",
                           f"The cash part cannot exceed the SKU's price of ¥{yuan(sku.price_fen)}")
        values["sku_id"] = sku.sku_id
        title = title or (f"{sku.title} {sku.spec_text}".strip())[:MAX_TITLE]
        image = image or sku.image or ""
    else:
        if not rewards.coupons_available():
            raise Conflict("mall_coupon_unavailable", "尚未开通优惠券，不能添加优惠券类商品",
                           "Coupons are not available yet, so coupon items cannot be added")
        if data.coupon_id is None or isinstance(data.coupon_id, bool) or not 0 < data.coupon_id <= MAX_ID:
            raise _invalid("coupon_id", "请选择优惠券", "Choose a coupon")
        choices = dict(await rewards.coupon_choices(session, scope))
        if data.coupon_id not in choices:
            raise _invalid("coupon_id", "优惠券不存在或不可用", "No such coupon")
        values["coupon_id"] = data.coupon_id
        title = title or choices[data.coupon_id][:MAX_TITLE]
    if not title:
        raise _invalid("title", "请填写名称", "The title is required")
    values["title"] = title
    values["image"] = image or None
    return values


async def create_item(session: AsyncSession, scope: TenantScope, data: ItemData) -> PointsMallItem:
    """A new item (audited); ``data.stock`` is its first stock."""
    values = await _checked(session, scope, data)
    now = clock.now()
    item = PointsMallItem(tenant_id=scope.id, sold=0, created_at=now, updated_at=now, **values)
    session.add(item)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="members.mall.create", object_type="points_mall_item",
                 object_id=item.id, after=audit.snapshot(item, _FIELDS))
    return item


async def update_item(session: AsyncSession, scope: TenantScope, item_id: int, data: ItemData) -> PointsMallItem:
    """Change an item (not its stock: :func:`adjust_stock`). The kind cannot change once
    members have exchanged it, nor the SKU or coupon (their exchanges name it)."""
    item = await get_item(session, scope, item_id)
    values = await _checked(session, scope, data)
    values.pop("stock")
    if item.sold or await _has_redemptions(session, scope, item.id):
        for key in ("kind", "sku_id", "coupon_id"):
            if values[key] != getattr(item, key):
                raise Conflict("mall_item_in_use", "已有兑换记录的商品不能更换类型、商品或优惠券，请下架后新建",
                               "An item members have exchanged keeps its kind, SKU and coupon; take it off sale and "
                               "create a new one", extra={"field": key})
    before = audit.snapshot(item, _FIELDS)
    changed = {k: v for k, v in values.items() if getattr(item, k) != v}
    if not changed:
        return item
    await session.execute(update(PointsMallItem).where(PointsMallItem.tenant_id == scope.id, PointsMallItem.id == item.id)
                          .values(**changed, updated_at=clock.now()).execution_options(synchronize_session=False))
    item = await get_item(session, scope, item.id)
    audit.record(session, tenant_id=scope.id, action="members.mall.update", object_type="points_mall_item",
                 object_id=item.id, before={k: before[k] for k in changed}, after={k: getattr(item, k) for k in changed})
    return item


async def set_on_sale(session: AsyncSession, scope: TenantScope, item_id: int, on_sale: bool) -> PointsMallItem:
    """上架 / 下架. Putting a coupon item on sale needs a coupon granter."""
    item = await get_item(session, scope, item_id)
    if item.on_sale == on_sale:
        return item
    if on_sale and item.kind == "coupon" and not rewards.coupons_available():
        raise _coupon_unavailable()
    if (on_sale and item.kind == "product" and item.sku_id is not None
            and item.sku_id not in await catalog_service.skus_for_sale(session, scope, [item.sku_id])):
        raise Conflict("mall_item_sku_gone", "兑换的商品规格已不存在，不能上架", "The item's SKU no longer exists")
    await session.execute(update(PointsMallItem).where(PointsMallItem.tenant_id == scope.id, PointsMallItem.id == item.id)
                          .values(on_sale=on_sale, updated_at=clock.now()).execution_options(synchronize_session=False))
    audit.record(session, tenant_id=scope.id, action="members.mall.update", object_type="points_mall_item",
                 object_id=item.id, before={"on_sale": not on_sale}, after={"on_sale": on_sale})
    return await get_item(session, scope, item.id)


async def adjust_stock(session: AsyncSession, scope: TenantScope, item_id: int, delta: int) -> PointsMallItem:
    """Add (or, negative, remove) units of stock: ``stock + delta`` stays within 0–1,000,000
    whatever members exchange meanwhile (one conditional update)."""
    if isinstance(delta, bool) or not isinstance(delta, int) or not -MAX_STOCK <= delta <= MAX_STOCK or delta == 0:
        raise ValidationFailed("mall_stock_invalid", f"库存调整需为 ±1–{MAX_STOCK} 的整数",
                               f"The change must be a non-zero whole number within ±{MAX_STOCK}",
                               fields=[{"field": "delta", "message": f"non-zero, within ±{MAX_STOCK}"}])
    item = await get_item(session, scope, item_id)
    before = item.stock
    if not await _Items(session, scope.id).add_stock(item.id, delta):
        item = await get_item(session, scope, item.id)
        raise Conflict("mall_stock_invalid", f"调整后库存需在 0–{MAX_STOCK} 之间（当前 {item.stock}）",
                       f"Stock would leave 0–{MAX_STOCK} (now {item.stock})", extra={"stock": item.stock})
    item = await get_item(session, scope, item.id)
    audit.record(session, tenant_id=scope.id, action="members.mall.stock", object_type="points_mall_item",
                 object_id=item.id, before={"stock": before}, after={"stock": item.stock, "delta": delta})
    return item


async def _has_redemptions(session: AsyncSession, scope: TenantScope, item_id: int) -> bool:
    q = select(PointsRedemption.id).where(PointsRedemption.tenant_id == scope.id, PointsRedemption.item_id == item_id)
    return (await session.execute(q.limit(1))).first() is not None


async def delete_item(session: AsyncSession, scope: TenantScope, item_id: int) -> None:
    """Delete an item nobody has exchanged (one with exchanges is kept for their records: take it off sale)."""
    item = await get_item(session, scope, item_id)
    if item.sold or await _has_redemptions(session, scope, item.id):
        raise Conflict("mall_item_in_use", "已有兑换记录的商品不能删除，可以下架", "An item with exchanges cannot be deleted; take "
                       "it off sale instead")
    before = audit.snapshot(item, _FIELDS)
    await session.execute(delete(PointsMallClaim).where(PointsMallClaim.tenant_id == scope.id,
                                                        PointsMallClaim.item_id == item.id))
    await session.execute(delete(PointsMallItem).where(PointsMallItem.tenant_id == scope.id, PointsMallItem.id == item.id))
    audit.record(session, tenant_id=scope.id, action="members.mall.delete", object_type="points_mall_item",
                 object_id=item.id, before=before)


# -- eligibility ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Eligibility:
    """What a member may do with an item now (for the storefront; the exchange checks again)."""

    points: int
    held: int
    rank: int
    #: Units the member may still exchange (stock, limit and one exchange's maximum).
    max_quantity: int
    #: Why not ("" when the member can exchange at least one): off_sale | sold_out | level |
    #: limit | points | coupon.
    reason: str
    reason_zh: str
    reason_en: str

    @property
    def ok(self) -> bool:
        return not self.reason


async def eligibility(session: AsyncSession, scope: TenantScope, item: PointsMallItem, customer_id: int, *,
                      rank: int | None = None, points: int | None = None, held: int | None = None,
                      level_name: str | None = None) -> Eligibility:
    have = await points_balance(session, scope, customer_id) if points is None else points
    held = await claimed(session, scope, item.id, customer_id) if held is None else held
    rank = await member_rank(session, scope, customer_id) if rank is None else rank
    most = min(item.stock, MAX_QUANTITY, have // item.points if item.points else MAX_QUANTITY)
    if item.per_member_limit:
        most = min(most, max(0, item.per_member_limit - held))
    checks: list[tuple[bool, str, str, str]] = [
        (item.on_sale, "off_sale", "已下架", "Not available"),
        (item.kind != "coupon" or rewards.coupons_available(), "coupon", "暂不可兑换", "Not available now"),
        (item.stock > 0, "sold_out", "已兑完", "Sold out"),
        (rank >= item.min_level_rank, "level", f"仅限{level_name or f'等级 {item.min_level_rank}'}及以上会员",
         f"Members of {level_name or f'level {item.min_level_rank}'} and above only"),
        (not item.per_member_limit or held < item.per_member_limit, "limit", f"每人限兑 {item.per_member_limit} 件，已兑完",
         f"Limit of {item.per_member_limit} reached"),
        (have >= item.points, "points", "积分不足", "Not enough points"),
    ]
    for ok, code, zh, en in checks:
        if not ok:
            return Eligibility(have, held, rank, 0, code, zh, en)
    return Eligibility(have, held, rank, max(1, most), "", "", "")


async def _check_member(session: AsyncSession, scope: TenantScope, item: PointsMallItem, customer_id: int, qty: int) -> None:
    """Level, limit and points for ``qty`` units (the conditional updates decide in the end)."""
    if item.min_level_rank > 0 and await member_rank(session, scope, customer_id) < item.min_level_rank:
        name = (await level_names(session, scope)).get(item.min_level_rank) or f"等级 {item.min_level_rank}"
        raise Conflict("mall_level_required", f"该商品仅限{name}及以上会员兑换",
                       f"Only members of {name} and above can exchange this item",
                       extra={"min_level_rank": item.min_level_rank})
    if item.per_member_limit > 0:
        held = await claimed(session, scope, item.id, customer_id)
        if held + qty > item.per_member_limit:
            raise _limit_reached(item.per_member_limit, held)
    have = await points_balance(session, scope, customer_id)
    if have < item.points * qty:
        raise _insufficient_points(have, item.points * qty)


def _check_sellable(item: PointsMallItem, qty: int) -> None:
    if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QUANTITY:
        raise _quantity_invalid()
    if not item.on_sale:
        raise _off_sale()
    if item.stock < qty:
        raise _sold_out(item.stock)


async def _take(session: AsyncSession, scope: TenantScope, item: PointsMallItem, customer_id: int, qty: int) -> None:
    """Stock, then the member's claim, by conditional updates (item row before claim row)."""
    if not await _Items(session, scope.id).take_stock(item.id, qty):
        fresh = await _Items(session, scope.id).fresh(item.id)
        if fresh is None or not fresh.on_sale:
            raise _off_sale()
        raise _sold_out(fresh.stock)
    await _claim(session, scope, item, customer_id, qty)


# -- pricing and placement (product exchanges) --------------------------------------------------------------


async def price_exchange(session: AsyncSession, ctx: pricing.PricingContext) -> list[pricing.Offer]:
    """Pricing step ``promotion``: a points-mall order costs ``cash_fen × quantity`` and ships free."""
    raw = ctx.options.get(OPTION)
    if raw is None:
        return []
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= MAX_ID:
        raise ValidationFailed("mall_item_invalid", "积分商城商品编号有误", "mall_item_id must be an item id",
                               fields=[{"field": f"options.{OPTION}", "message": "an item id"}])
    item = await _Items(session, ctx.scope.id).fresh(raw)
    if item is None:
        raise item_not_found()
    if item.kind != "product" or item.sku_id is None:
        raise Conflict("mall_item_not_product", "优惠券类商品无需下单，请直接兑换", "A coupon item is exchanged without an order")
    if len(ctx.lines) != 1 or ctx.lines[0].sku_id != item.sku_id:
        raise ValidationFailed("mall_lines_invalid", "积分兑换订单只能包含兑换的这一件商品",
                               "A points-mall order holds exactly one line: the item's SKU",
                               fields=[{"field": "lines", "message": "exactly one line of the item's SKU"}])
    line = ctx.lines[0]
    _check_sellable(item, line.quantity)
    if ctx.customer_id is not None:
        await _check_member(session, ctx.scope, item, ctx.customer_id, line.quantity)
    cash = min(item.cash_fen * line.quantity, line.amount_fen)
    return [pricing.Offer(
        code=f"mall:{item.id}", label_zh=OFFER_LABEL_ZH, label_en=OFFER_LABEL_EN,
        line_fen={line.sku_id: line.amount_fen - cash},
        data={OPTION: item.id, "mall_points": item.points * line.quantity, "quantity": line.quantity, "cash_fen": cash,
              "free_shipping": True})]


def _mall_offer(quote: pricing.Quote) -> pricing.AppliedOffer | None:
    return next((o for o in quote.offers if o.step == "promotion" and o.data.get(OPTION)), None)


async def take_for_order(session: AsyncSession, scope: TenantScope, order: Order, quote: pricing.Quote,
                         order_lines: list[OrderLine]) -> None:
    """Placement hook: stock, limit and points of a points-mall order, and its redemption row."""
    offer = _mall_offer(quote)
    if offer is None:
        return
    item = await _Items(session, scope.id).fresh(int(offer.data[OPTION]))
    if item is None:
        raise item_not_found()
    qty = int(offer.data["quantity"])
    points = int(offer.data["mall_points"])
    await _take(session, scope, item, order.customer_id, qty)
    await points_service.spend(session, scope, order.customer_id, points, kind="redeem",
                               source_key=f"order:{order.id}:mall", note=f"积分兑换 {item.title}"[:200])
    now = clock.now()
    session.add(PointsRedemption(
        tenant_id=scope.id, redemption_no=order.order_no, customer_id=order.customer_id, item_id=item.id, quantity=qty,
        points=points, cash_fen=int(offer.data.get("cash_fen") or 0), status="pending_payment", order_id=order.id,
        title=item.title, created_at=now, updated_at=now))
    await session.flush()


pricing.register_adjuster("promotion", price_exchange)
checkout.register_placement_hook(take_for_order)


# -- exchanging -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchanged:
    redemption: PointsRedemption
    #: The order of a product exchange (``None`` for a coupon).
    order: Order | None
    #: False when an earlier request with the same Idempotency-Key made it.
    created: bool

    @property
    def needs_payment(self) -> bool:
        return self.order is not None and self.order.status == "pending_payment" and self.order.payable_fen > 0


def coupon_redemption_no(scope: TenantScope, customer_id: int, key: str | None) -> str:
    """``Q`` + 16 digits: from the Idempotency-Key (a retry finds the same row), else random."""
    if key is None:
        return f"Q{secrets.randbelow(10**16):016d}"
    digest = hashlib.sha256(f"{scope.id}:{customer_id}:{key}".encode()).digest()
    return f"Q{int.from_bytes(digest[:8], 'big') % 10**16:016d}"


async def exchange(session: AsyncSession, scope: TenantScope, *, customer_id: int, item_id: int, quantity: int = 1,
                   address_id: int | None = None, buyer_note: str | None = None, idempotency_key: str | None = None,
                   use_balance: bool = False, channel: str = "h5") -> Exchanged:
    """兑换: a product becomes an order (see the module docstring), a coupon is granted now.

    Repeating a request with the same ``idempotency_key`` returns what the first made."""
    key = checkout.check_idempotency_key(idempotency_key) if idempotency_key is not None else None
    item = await get_item(session, scope, item_id)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise _quantity_invalid()
    await members_service.ensure_member(session, scope, customer_id)
    if item.kind == "product":
        return await _exchange_product(session, scope, item, customer_id, quantity, address_id, buyer_note, key,
                                       use_balance, channel)
    return await _exchange_coupon(session, scope, item, customer_id, quantity, key)


async def _exchange_product(session: AsyncSession, scope: TenantScope, item: PointsMallItem, customer_id: int, qty: int,
                            address_id: int | None, buyer_note: str | None, key: str | None, use_balance: bool,
                            channel: str) -> Exchanged:
    assert item.sku_id is not None
    options: dict[str, Any] = {OPTION: item.id}
    if use_balance:
        options["use_balance"] = True
    placed = await checkout.place(session, scope, customer_id=customer_id, lines=[(item.sku_id, qty)],
                                  address_id=address_id, buyer_note=buyer_note, idempotency_key=key, channel=channel,
                                  options=options)
    order = placed.order
    redemption = await redemption_of_order(session, scope, order.id)
    if redemption is None:  # the key placed an ordinary order before
        raise _key_reused()
    if placed.created and order.status == "pending_payment" and order.payable_fen == 0:
        await orders_service.start_payment(session, scope, customer_id=customer_id, order_id=order.id)
        await _move_redemption(session, scope, redemption.id, "pending_payment", "completed")
        order = await orders_service.get_order(session, scope, order.id)
        redemption = await redemption_of_order(session, scope, order.id) or redemption
    return Exchanged(redemption, order, placed.created)


async def _exchange_coupon(session: AsyncSession, scope: TenantScope, item: PointsMallItem, customer_id: int, qty: int,
                           key: str | None) -> Exchanged:
    no = coupon_redemption_no(scope, customer_id, key)
    existing = await _redemption_by_no(session, scope, no)
    if existing is not None:
        return _same_coupon_request(existing, customer_id, item, qty)
    if not rewards.coupons_available() or item.coupon_id is None:
        raise _coupon_unavailable()
    _check_sellable(item, qty)
    await _check_member(session, scope, item, customer_id, qty)
    points = item.points * qty
    now = clock.now()
    async with session.begin_nested():
        inserted = (await session.execute(_insert_ignore(session, PointsRedemption).values(
            tenant_id=scope.id, redemption_no=no, customer_id=customer_id, item_id=item.id, quantity=qty, points=points,
            cash_fen=0, status="completed", order_id=None, title=item.title, created_at=now, updated_at=now,
        ).returning(PointsRedemption.id))).scalar_one_or_none()
        if inserted is None:  # a concurrent retry with the same key won
            winner = await _redemption_by_no(session, scope, no)
            if winner is None:
                raise Conflict("mall_exchange_busy", "兑换处理中，请稍后刷新查看", "The exchange is being processed; reload shortly")
            return _same_coupon_request(winner, customer_id, item, qty)
        await _take(session, scope, item, customer_id, qty)
        await points_service.spend(session, scope, customer_id, points, kind="redeem", source_key=f"mall:{no}",
                                   note=f"积分兑换 {item.title}"[:200])
        for n in range(1, qty + 1):
            ok = await rewards.grant_coupon(session, scope, customer_id, item.coupon_id, source_key=f"mall:{no}:{n}",
                                            reason=f"积分兑换 {item.title}"[:80])
            if not ok:
                raise _coupon_unavailable()
    redemption = await _redemption_by_no(session, scope, no)
    assert redemption is not None
    return Exchanged(redemption, None, True)


def _same_coupon_request(existing: PointsRedemption, customer_id: int, item: PointsMallItem, qty: int) -> Exchanged:
    if existing.customer_id != customer_id or existing.item_id != item.id or existing.quantity != qty:
        raise _key_reused()
    return Exchanged(existing, None, False)


async def _redemption_by_no(session: AsyncSession, scope: TenantScope, no: str) -> PointsRedemption | None:
    q = (select(PointsRedemption).where(PointsRedemption.tenant_id == scope.id, PointsRedemption.redemption_no == no)
         .execution_options(populate_existing=True))
    return (await session.execute(q)).scalar_one_or_none()


# -- exchange records ------------------------------------------------------------------------------------


async def get_redemption(session: AsyncSession, scope: TenantScope, redemption_id: int, *,
                         customer_id: int | None = None) -> PointsRedemption:
    """One exchange; with ``customer_id`` it must be that member's (404 otherwise)."""
    q = (select(PointsRedemption).where(PointsRedemption.tenant_id == scope.id, PointsRedemption.id == redemption_id)
         .execution_options(populate_existing=True))
    found = (await session.execute(q)).scalar_one_or_none()
    if found is None or (customer_id is not None and found.customer_id != customer_id):
        raise _redemption_not_found()
    return found


async def redemptions(session: AsyncSession, scope: TenantScope, customer_id: int, *, limit: int = 20,
                      before_id: int | None = None) -> list[PointsRedemption]:
    """A member's exchanges, newest first (``before_id`` pages on)."""
    q = select(PointsRedemption).where(PointsRedemption.tenant_id == scope.id, PointsRedemption.customer_id == customer_id)
    if before_id is not None:
        q = q.where(PointsRedemption.id < before_id)
    return list((await session.execute(q.order_by(PointsRedemption.id.desc()).limit(limit))).scalars())


async def list_redemptions(session: AsyncSession, scope: TenantScope, *, status: str | None = None,
                           item_id: int | None = None, customer_id: int | None = None, offset: int = 0,
                           limit: int = 20) -> tuple[list[PointsRedemption], int]:
    """Every exchange of the tenant, newest first, for the console."""
    q = select(PointsRedemption).where(PointsRedemption.tenant_id == scope.id)
    if status:
        q = q.where(PointsRedemption.status == status)
    if item_id is not None:
        q = q.where(PointsRedemption.item_id == item_id)
    if customer_id is not None:
        q = q.where(PointsRedemption.customer_id == customer_id)
    total = int((await session.execute(select(func.count()).select_from(q.subquery()))).scalar_one())
    rows = (await session.execute(q.order_by(PointsRedemption.id.desc()).offset(offset).limit(limit))).scalars()
    return list(rows), total


async def items_by_id(session: AsyncSession, scope: TenantScope, ids: Sequence[int]) -> dict[int, PointsMallItem]:
    if not ids:
        return {}
    rows = await _Items(session, scope.id).list(_Items(session, scope.id).select().where(PointsMallItem.id.in_(sorted(set(ids)))))
    return {r.id: r for r in rows}


def local_day(scope: TenantScope, value: Any) -> str:
    return value.astimezone(ZoneInfo(scope.timezone)).strftime("%Y-%m-%d") if value else ""


# -- events -------------------------------------------------------------------------------------------------


async def _scope(session: AsyncSession, tenant_id: Any) -> TenantScope | None:
    try:
        return tenants_service.scope_of(await tenants_service.get_tenant(session, int(tenant_id)))
    except (TypeError, ValueError, DomainError):
        return None


async def on_order_paid(session: AsyncSession, scope: TenantScope, order_id: int) -> bool:
    """The order of an exchange was paid: the exchange is complete (True when it moved now)."""
    redemption = await redemption_of_order(session, scope, order_id)
    if redemption is None:
        return False
    return await _move_redemption(session, scope, redemption.id, "pending_payment", "completed")


async def on_order_cancelled(session: AsyncSession, scope: TenantScope, order_id: int) -> bool:
    """The unpaid order of an exchange was cancelled: points, stock and the member's claim go
    back, once (the redemption's conditional move is the guard)."""
    redemption = await redemption_of_order(session, scope, order_id)
    if redemption is None or not await _move_redemption(session, scope, redemption.id, "pending_payment", "cancelled"):
        return False
    await points_service.give_back(session, scope, redemption.customer_id, spent_source_key=f"order:{order_id}:mall",
                                   amount=redemption.points, source_key=f"order:{order_id}:mall:cancel",
                                   kind="cancel_return", note=f"取消积分兑换 {redemption.title}"[:200])
    if not await _Items(session, scope.id).return_stock(redemption.item_id, redemption.quantity):
        log.warning("points-mall stock not returned", extra={"redemption_id": redemption.id})
    await _unclaim(session, scope, redemption.item_id, redemption.customer_id, redemption.quantity)
    return True


async def on_refunded(session: AsyncSession, scope: TenantScope, *, order_id: int, case_id: int,
                      lines: Sequence[dict[str, Any]]) -> int:
    """Units of an exchange's order were refunded: their points go back (``points`` per unit ×
    units; exact whatever the order of the cases). Returns the points given back now."""
    redemption = await redemption_of_order(session, scope, order_id)
    if redemption is None or redemption.quantity <= 0:
        return 0
    units = sum(int(ln.get("quantity") or 0) for ln in lines)
    if units <= 0:
        return 0
    per_unit = redemption.points // redemption.quantity
    amount = per_unit * min(units, redemption.quantity)
    entry = None
    if amount > 0:
        entry = await points_service.give_back(
            session, scope, redemption.customer_id, spent_source_key=f"order:{order_id}:mall", amount=amount,
            source_key=f"after_sale:{case_id}:mall", kind="refund_return", note=f"积分兑换退款 {redemption.title}"[:200])
    order_lines = await orders_service.order_lines(session, scope, order_id)
    if order_lines and all(ln.refunded_qty >= ln.quantity for ln in order_lines):
        await _move_redemption(session, scope, redemption.id, "completed", "refunded")
    return amount if entry is not None else 0


async def on_customer_merged(session: AsyncSession, scope: TenantScope, survivor_id: int, merged_id: int) -> None:
    """The merged customer's claims count for the survivor; its exchanges move with it."""
    if survivor_id == merged_id:
        return
    rows = (await session.execute(select(PointsMallClaim).where(
        PointsMallClaim.tenant_id == scope.id, PointsMallClaim.customer_id == merged_id)
        .order_by(PointsMallClaim.item_id))).scalars().all()
    for claim in rows:
        await session.execute(_insert_ignore(session, PointsMallClaim).values(
            tenant_id=scope.id, item_id=claim.item_id, customer_id=survivor_id, quantity=0))
        await session.execute(update(PointsMallClaim).where(
            PointsMallClaim.tenant_id == scope.id, PointsMallClaim.item_id == claim.item_id,
            PointsMallClaim.customer_id == survivor_id)
            .values(quantity=PointsMallClaim.quantity + claim.quantity).execution_options(synchronize_session=False))
        await session.execute(delete(PointsMallClaim).where(PointsMallClaim.id == claim.id))
    await session.execute(update(PointsRedemption).where(
        PointsRedemption.tenant_id == scope.id, PointsRedemption.customer_id == merged_id)
        .values(customer_id=survivor_id, updated_at=clock.now()).execution_options(synchronize_session=False))


@outbox.on("order.paid")
async def _order_paid(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    scope = await _scope(session, p.get("tenant_id") or event.tenant_id)
    if scope is not None and str(p.get("order_id", "")).isdigit():
        await on_order_paid(session, scope, int(p["order_id"]))


@outbox.on("order.cancelled")
async def _order_cancelled(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    scope = await _scope(session, p.get("tenant_id") or event.tenant_id)
    if scope is not None and str(p.get("order_id", "")).isdigit():
        await on_order_cancelled(session, scope, int(p["order_id"]))


@outbox.on("after_sale.refunded")
async def _after_sale_refunded(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    scope = await _scope(session, p.get("tenant_id") or event.tenant_id)
    if scope is None or not str(p.get("order_id", "")).isdigit() or not str(p.get("case_id", "")).isdigit():
        return
    lines = [ln for ln in p.get("lines") or [] if isinstance(ln, dict)]
    await on_refunded(session, scope, order_id=int(p["order_id"]), case_id=int(p["case_id"]), lines=lines)


@outbox.on("customer.merged")
async def _customer_merged(session: AsyncSession, event: outbox.Event) -> None:
    p = event.payload
    scope = await _scope(session, p.get("tenant_id") or event.tenant_id)
    if scope is None or not str(p.get("survivor_id", "")).isdigit() or not str(p.get("merged_id", "")).isdigit():
        return
    await on_customer_merged(session, scope, int(p["survivor_id"]), int(p["merged_id"]))
