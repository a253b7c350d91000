"""Every query of the catalog module.

Tenant-owned reads and writes go through :class:`~siyu.kit.tenancy.TenantRepository`
subclasses, which add ``tenant_id`` to every statement. :class:`DueSchedules` is the one
cross-tenant reader: the sweeper that publishes scheduled products for every tenant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, update

from siyu.catalog.models import Category, Product, Sku
from siyu.kit.storage import MediaFile
from siyu.kit.tenancy import Repository, TenantRepository


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards in ``text`` taken literally (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class ProductQuery:
    """Filters of a product list. ``category_ids`` already includes the descendants of the
    chosen category; ``storefront`` keeps only what shoppers may see (on sale, not a 包裹卡)."""

    q: str | None = None
    category_ids: frozenset[int] | None = None
    status: str | None = None
    kind: str | None = None
    price_from: int | None = None
    price_to: int | None = None
    sort: str = "newest"
    storefront: bool = False


_ORDER: dict[str, tuple[Any, ...]] = {
    "newest": (Product.id.desc(),),
    "sort": (Product.sort.asc(), Product.id.desc()),
    "price_asc": (Product.price_min_fen.asc(), Product.id.desc()),
    "price_desc": (Product.price_max_fen.desc(), Product.id.desc()),
    "sales": (Product.sales_count.desc(), Product.id.desc()),
}


# Read on every price and every order (skus_for_sale): built once, run with parameters.
_SKUS_BY_IDS = select(Sku).where(Sku.tenant_id == bindparam("tenant_id"), Sku.id.in_(bindparam("ids", expanding=True)))
_PRODUCTS_BY_IDS = select(Product).where(Product.tenant_id == bindparam("tenant_id"),
                                         Product.id.in_(bindparam("ids", expanding=True)))


class Categories(TenantRepository[Category]):
    model = Category
    not_found_zh = "商品分类"
    not_found_en = "Category"
    not_found_code = "category_not_found"

    async def all(self) -> Sequence[Category]:
        return await self.list(self.select().order_by(Category.sort, Category.id))

    async def product_counts(self) -> dict[int, int]:
        stmt = (select(Product.category_id, func.count()).where(Product.tenant_id == self.tenant_id,
                                                                  Product.category_id.is_not(None))
                .group_by(Product.category_id))
        return {int(cid): int(n) for cid, n in (await self.session.execute(stmt)).all() if cid is not None}

    async def has_children(self, category_id: int) -> bool:
        stmt = self.select(Category.id).where(Category.parent_id == category_id).limit(1)
        return (await self.session.execute(stmt)).first() is not None

    async def has_products(self, category_id: int) -> bool:
        stmt = (select(Product.id).where(Product.tenant_id == self.tenant_id, Product.category_id == category_id)
                .limit(1))
        return (await self.session.execute(stmt)).first() is not None


class Products(TenantRepository[Product]):
    model = Product
    not_found_zh = "商品"
    not_found_en = "Product"
    not_found_code = "product_not_found"

    def _filtered(self, f: ProductQuery) -> Any:
        stmt = self.select()
        if f.storefront:
            stmt = stmt.where(Product.status == "on_sale", Product.kind != "insert_card")
        if f.q:
            pattern = like_pattern(f.q)
            by_code = exists().where(Sku.product_id == Product.id, Sku.tenant_id == self.tenant_id,
                                     Sku.code.ilike(pattern, escape="\\"))
            stmt = stmt.where(or_(Product.title.ilike(pattern, escape="\\"), by_code))
        if f.category_ids is not None:
            stmt = stmt.where(Product.category_id.in_(sorted(f.category_ids)))
        if f.status:
            stmt = stmt.where(Product.status == f.status)
        if f.kind:
            stmt = stmt.where(Product.kind == f.kind)
        # A product matches a price range when any of its prices falls inside it.
        if f.price_from is not None:
            stmt = stmt.where(Product.price_max_fen >= f.price_from)
        if f.price_to is not None:
            stmt = stmt.where(Product.price_min_fen <= f.price_to)
        return stmt

    async def search(self, f: ProductQuery, offset: int, limit: int) -> tuple[Sequence[Product], int]:
        stmt = self._filtered(f)
        total = await self.count(stmt)
        rows = await self.list(stmt.order_by(*_ORDER.get(f.sort, _ORDER["newest"])).offset(offset).limit(limit))
        return rows, total

    async def by_ids(self, ids: Iterable[int]) -> dict[int, Product]:
        ids = sorted(set(ids))
        if not ids:
            return {}
        return {p.id: p for p in (await self.session.scalars(_PRODUCTS_BY_IDS, {"tenant_id": self.tenant_id, "ids": ids}))}

    async def transition(self, product_id: int, from_status: str, values: dict[str, Any]) -> bool:
        """Change a product only if it still has ``from_status`` (a racing change loses)."""
        res = await self.session.execute(
            update(Product)
            .where(Product.id == product_id, Product.tenant_id == self.tenant_id, Product.status == from_status)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def add_sales(self, product_id: int, quantity: int) -> bool:
        res = await self.session.execute(
            update(Product)
            .where(Product.id == product_id, Product.tenant_id == self.tenant_id,
                   Product.sales_count + quantity >= 0)
            .values(sales_count=Product.sales_count + quantity)
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def titles(self, titles: Iterable[str]) -> dict[str, int]:
        names = sorted(set(titles))
        if not names:
            return {}
        stmt = self.select(Product.title, Product.id).where(Product.title.in_(names)).order_by(Product.id)
        out: dict[str, int] = {}
        for title, pid in (await self.session.execute(stmt)).all():
            out.setdefault(title, pid)
        return out


class Skus(TenantRepository[Sku]):
    model = Sku
    not_found_zh = "商品规格"
    not_found_en = "SKU"
    not_found_code = "sku_not_found"

    async def of_product(self, product_id: int) -> list[Sku]:
        return list(await self.list(self.select().where(Sku.product_id == product_id).order_by(Sku.id)))

    async def of_products(self, product_ids: Iterable[int]) -> dict[int, list[Sku]]:
        ids = sorted(set(product_ids))
        out: dict[int, list[Sku]] = {pid: [] for pid in ids}
        if not ids:
            return out
        for sku in await self.list(self.select().where(Sku.product_id.in_(ids)).order_by(Sku.id)):
            out[sku.product_id].append(sku)
        return out

    async def by_ids(self, ids: Iterable[int]) -> dict[int, Sku]:
        ids = sorted(set(ids))
        if not ids:
            return {}
        return {s.id: s for s in (await self.session.scalars(_SKUS_BY_IDS, {"tenant_id": self.tenant_id, "ids": ids}))}

    async def by_codes(self, codes: Iterable[str]) -> dict[str, Sku]:
        wanted = sorted(set(codes))
        out: dict[str, Sku] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            for sku in await self.list(self.select().where(Sku.code.in_(chunk))):
                out[sku.code] = sku
        return out

    async def codes_with_prefix(self, prefix: str) -> set[str]:
        stmt = self.select(Sku.code).where(Sku.code.like(prefix.replace("_", "\\_") + "%", escape="\\"))
        return set((await self.session.execute(stmt)).scalars().all())

    async def active_stats(self, product_ids: Iterable[int]) -> dict[int, tuple[int, int | None]]:
        """product id → (active SKU count, 划线价 of its cheapest active SKU when above that price)."""
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        stmt = (self.select(Sku.product_id, Sku.price_fen, Sku.market_price_fen)
                .where(Sku.product_id.in_(ids), Sku.status == "active").order_by(Sku.product_id, Sku.price_fen, Sku.id))
        out: dict[int, tuple[int, int | None]] = {}
        for pid, price, market in (await self.session.execute(stmt)).all():
            count, cheapest = out.get(int(pid), (0, None))
            if count == 0:
                cheapest = int(market) if market is not None and market > price else None
            out[int(pid)] = (count + 1, cheapest)
        return out


class MediaFiles(TenantRepository[MediaFile]):
    model = MediaFile

    async def known_urls(self, urls: Iterable[str]) -> set[str]:
        wanted = sorted(set(urls))
        if not wanted:
            return set()
        stmt = self.select(MediaFile.url).where(MediaFile.url.in_(wanted))
        return set((await self.session.execute(stmt)).scalars().all())


class DueSchedules(Repository):
    """Scheduled products whose time has come, across every tenant (for the sweeper)."""

    async def due(self, now: datetime, limit: int) -> list[tuple[int, int]]:
        stmt = (select(Product.id, Product.tenant_id)
                .where(Product.status == "scheduled", Product.on_sale_at.is_not(None), Product.on_sale_at <= now)
                .order_by(Product.on_sale_at, Product.id).limit(limit))
        return [(int(pid), int(tid)) for pid, tid in (await self.session.execute(stmt)).all()]

    async def publish_if_due(self, product_id: int, now: datetime) -> bool:
        res = await self.session.execute(
            update(Product)
            .where(and_(Product.id == product_id, Product.status == "scheduled", Product.on_sale_at <= now))
            .values(status="on_sale", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]
