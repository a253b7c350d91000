"""Every query of the inventory module.

Counters change only through :meth:`Levels.apply`, one conditional ``UPDATE ... RETURNING``
that refuses to take a level below zero, below what is reserved, or above
:data:`~siyu.inventory.schemas.MAX_UNITS`. Rows that several writers touch are locked in
``(sku_id, location_id)`` order. Inserts that may race (a level's first use, a reservation's
source key, the default location) use ``INSERT ... ON CONFLICT DO NOTHING`` so the loser
learns it lost without an error that would abort a PostgreSQL transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, and_, bindparam, case, func, or_, select, update

from siyu.inventory.models import (
    StockLevel,
    StockLocation,
    StockMovement,
    StockReservation,
    StockReservationLine,
    Stocktake,
    StocktakeLine,
)
from siyu.inventory.schemas import MAX_UNITS
from siyu.kit import clock
from siyu.kit.db import UtcDateTime, dialect_insert
from siyu.kit.tenancy import TenantRepository

# Statements on every order's path are built once with bound parameters: building and
# fingerprinting a statement costs SQLAlchemy more CPU than SQLite takes to run it.
_CANDIDATES = (
    select(StockLevel.sku_id, StockLevel.location_id, StockLevel.on_hand, StockLevel.reserved, StockLocation.priority)
    .join(StockLocation, StockLocation.id == StockLevel.location_id)
    .where(StockLevel.tenant_id == bindparam("tenant_id"), StockLocation.tenant_id == bindparam("tenant_id"),
           StockLocation.status == "active", StockLevel.sku_id.in_(bindparam("sku_ids", expanding=True)))
    .order_by(StockLevel.sku_id, StockLevel.location_id)
    .with_for_update(of=StockLevel)
)


@lru_cache(maxsize=32)
def _reserve_many_stmt(n: int) -> Any:
    """``UPDATE`` adding ``q<i>`` to ``reserved`` of level ``(s<i>, l<i>)`` for i < n, each only if it fits."""
    pair = [and_(StockLevel.sku_id == bindparam(f"s{i}", type_=BigInteger),
                 StockLevel.location_id == bindparam(f"l{i}", type_=BigInteger)) for i in range(n)]
    qty = [bindparam(f"q{i}", type_=Integer) for i in range(n)]
    return (
        update(StockLevel)
        .where(StockLevel.tenant_id == bindparam("b_tenant"),
               or_(*[and_(pair[i], StockLevel.on_hand >= StockLevel.reserved + qty[i]) for i in range(n)]))
        .values(reserved=StockLevel.reserved + case(*[(pair[i], qty[i]) for i in range(n)]),
                updated_at=bindparam("b_now", type_=UtcDateTime()))
        .returning(StockLevel.sku_id, StockLevel.location_id, StockLevel.id, StockLevel.on_hand, StockLevel.reserved,
                   StockLevel.low_stock_threshold)
        .execution_options(synchronize_session=False)
    )


@lru_cache(maxsize=4)
def _claim_stmt(dialect: str) -> Any:
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(StockReservation)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(StockReservation)
    return (
        stmt
        .values(tenant_id=bindparam("b_tenant"), source_key=bindparam("b_key"), status="active",
                created_at=bindparam("b_now", type_=UtcDateTime()))
        .on_conflict_do_nothing(index_elements=["tenant_id", "source_key"])
        .returning(StockReservation.id)
    )


@dataclass(frozen=True, slots=True)
class LevelState:
    """A level's counters right after a change (from ``RETURNING``)."""

    id: int
    on_hand: int
    reserved: int
    threshold: int | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A level that may serve a reservation, with its location's priority."""

    sku_id: int
    location_id: int
    on_hand: int
    reserved: int
    priority: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Locations(TenantRepository[StockLocation]):
    model = StockLocation
    not_found_zh = "库存地点"
    not_found_en = "Stock location"
    not_found_code = "location_not_found"

    def ordered(self) -> Select[Any]:
        return self.select().order_by(StockLocation.priority, StockLocation.id)

    async def all(self, *, status: str | None = None, kind: str | None = None) -> Sequence[StockLocation]:
        stmt = self.ordered()
        if status:
            stmt = stmt.where(StockLocation.status == status)
        if kind:
            stmt = stmt.where(StockLocation.kind == kind)
        return await self.list(stmt)

    async def by_code(self, code: str) -> StockLocation | None:
        return (await self.session.execute(self.select().where(StockLocation.code == code))).scalar_one_or_none()

    async def by_store(self, store_id: int) -> StockLocation | None:
        stmt = self.select().where(StockLocation.store_id == store_id).order_by(StockLocation.id).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def first_active(self) -> StockLocation | None:
        stmt = self.ordered().where(StockLocation.status == "active").limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_ids(self, ids: Iterable[int]) -> dict[int, StockLocation]:
        ids = list(set(ids))
        if not ids:
            return {}
        return {loc.id: loc for loc in await self.list(self.select().where(StockLocation.id.in_(ids)))}

    async def insert_if_absent(self, *, code: str, name: str, kind: str, priority: int) -> None:
        stmt = dialect_insert(self.session, StockLocation).values(
            tenant_id=self.tenant_id, code=code, name=name, kind=kind, priority=priority, status="active",
            created_at=clock.now(),
        ).on_conflict_do_nothing(index_elements=["tenant_id", "code"])
        await self.session.execute(stmt)


class Levels(TenantRepository[StockLevel]):
    model = StockLevel
    not_found_zh = "库存记录"
    not_found_en = "Stock level"
    not_found_code = "level_not_found"

    async def ensure(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Create the missing (sku_id, location_id) levels at zero; existing ones are left alone."""
        rows = [{"tenant_id": self.tenant_id, "sku_id": s, "location_id": loc, "on_hand": 0, "reserved": 0,
                 "updated_at": clock.now()} for s, loc in sorted(set(pairs))]
        if not rows:
            return
        stmt = dialect_insert(self.session, StockLevel).values(rows).on_conflict_do_nothing(index_elements=["sku_id", "location_id"])
        await self.session.execute(stmt)

    async def pair(self, sku_id: int, location_id: int, *, for_update: bool = False) -> StockLevel | None:
        stmt = (self.select().where(StockLevel.sku_id == sku_id, StockLevel.location_id == location_id)
                .execution_options(populate_existing=True))
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def fresh(self, level_id: int) -> StockLevel | None:
        stmt = self.select().where(StockLevel.id == level_id).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def apply(self, sku_id: int, location_id: int, d_on_hand: int, d_reserved: int) -> LevelState | None:
        """Move the counters by the deltas if the result stays valid; None (nothing changed) otherwise.

        Valid means ``0 <= reserved' <= on_hand' <= MAX_UNITS``: a decrement of sellable stock
        reads ``on_hand - reserved >= k`` and a release ``reserved >= k``, checked by the
        database at the moment of the write, never from a value read earlier.
        """
        new_on_hand = StockLevel.on_hand + d_on_hand
        new_reserved = StockLevel.reserved + d_reserved
        conds = [
            StockLevel.tenant_id == self.tenant_id,
            StockLevel.sku_id == sku_id,
            StockLevel.location_id == location_id,
            new_on_hand >= new_reserved,
        ]
        if d_reserved < 0:
            conds.append(new_reserved >= 0)
        if d_on_hand > 0:
            conds.append(new_on_hand <= MAX_UNITS)
        stmt = (
            update(StockLevel)
            .where(and_(*conds))
            .values(on_hand=new_on_hand, reserved=new_reserved, updated_at=clock.now())
            .returning(StockLevel.id, StockLevel.on_hand, StockLevel.reserved, StockLevel.low_stock_threshold)
            .execution_options(synchronize_session=False)
        )
        row = (await self.session.execute(stmt)).first()
        return LevelState(row[0], row[1], row[2], row[3]) if row is not None else None

    async def reserve_many(self, amounts: dict[tuple[int, int], int]) -> dict[tuple[int, int], LevelState]:
        """:meth:`apply` with ``d_reserved=q`` for several levels in one ``UPDATE``: each row
        moves only if ``on_hand >= reserved + q`` holds for it. Returns the rows that moved;
        the caller treats a missing one as a refusal (and rolls back its savepoint). The
        rows must already be locked (:meth:`candidates`), so the statement takes no new
        row locks and its scan order cannot deadlock."""
        if not amounts:
            return {}
        params: dict[str, Any] = {"b_tenant": self.tenant_id, "b_now": clock.now()}
        for i, (s, loc) in enumerate(sorted(amounts)):
            params[f"s{i}"], params[f"l{i}"], params[f"q{i}"] = s, loc, amounts[(s, loc)]
        rows = (await self.session.execute(_reserve_many_stmt(len(amounts)), params)).all()
        return {(row[0], row[1]): LevelState(row[2], row[3], row[4], row[5]) for row in rows}

    async def set_threshold(self, level_id: int, threshold: int | None) -> None:
        await self.session.execute(
            update(StockLevel).where(StockLevel.tenant_id == self.tenant_id, StockLevel.id == level_id)
            .values(low_stock_threshold=threshold, updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )

    async def candidates(self, sku_ids: Sequence[int], location_ids: Sequence[int] | None = None) -> list[Candidate]:
        """Levels of these SKUs in active locations, locked in (sku_id, location_id) order."""
        stmt = _CANDIDATES
        if location_ids is not None:
            stmt = stmt.where(StockLevel.location_id.in_(sorted(set(location_ids))))
        rows = (await self.session.execute(stmt, {"tenant_id": self.tenant_id, "sku_ids": sorted(set(sku_ids))})).all()
        return [Candidate(*row) for row in rows]

    async def lock_pairs(self, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], StockLevel]:
        """Load (and on PostgreSQL lock) these levels in (sku_id, location_id) order."""
        pairs = sorted(set(pairs))
        if not pairs:
            return {}
        skus = sorted({s for s, _ in pairs})
        locs = sorted({loc for _, loc in pairs})
        stmt = (self.select().where(StockLevel.sku_id.in_(skus), StockLevel.location_id.in_(locs))
                .order_by(StockLevel.sku_id, StockLevel.location_id).with_for_update()
                .execution_options(populate_existing=True))
        wanted = set(pairs)
        return {(lv.sku_id, lv.location_id): lv for lv in await self.list(stmt) if (lv.sku_id, lv.location_id) in wanted}

    async def available(self, sku_ids: Sequence[int]) -> dict[int, int]:
        stmt = (
            select(StockLevel.sku_id, func.sum(StockLevel.on_hand - StockLevel.reserved))
            .join(StockLocation, StockLocation.id == StockLevel.location_id)
            .where(StockLevel.tenant_id == self.tenant_id, StockLocation.status == "active",
                   StockLevel.sku_id.in_(sorted(set(sku_ids))))
            .group_by(StockLevel.sku_id)
        )
        return {int(s): int(n or 0) for s, n in (await self.session.execute(stmt)).all()}

    def _joined(self) -> Any:
        return (
            select(StockLevel, StockLocation)
            .join(StockLocation, StockLocation.id == StockLevel.location_id)
            .where(StockLevel.tenant_id == self.tenant_id, StockLocation.tenant_id == self.tenant_id)
        )

    async def with_locations(self, sku_ids: Sequence[int]) -> list[tuple[StockLevel, StockLocation]]:
        stmt = (self._joined().where(StockLevel.sku_id.in_(sorted(set(sku_ids))))
                .order_by(StockLevel.sku_id, StockLocation.priority, StockLocation.id)
                .execution_options(populate_existing=True))
        return [(lv, loc) for lv, loc in (await self.session.execute(stmt)).all()]

    async def search(self, *, sku_id: int | None = None, location_id: int | None = None, stock: str | None = None,
                     offset: int = 0, limit: int = 20) -> tuple[list[tuple[StockLevel, StockLocation]], int]:
        """Levels with their location. ``stock``: ``low`` (available ≤ threshold, active
        locations only; most urgent first: fewest available, then furthest below the
        threshold), ``out`` (nothing available) or ``in`` (something available)."""
        stmt = self._joined()
        if sku_id:
            stmt = stmt.where(StockLevel.sku_id == sku_id)
        if location_id:
            stmt = stmt.where(StockLevel.location_id == location_id)
        available = StockLevel.on_hand - StockLevel.reserved
        if stock == "low":
            stmt = stmt.where(StockLevel.low_stock_threshold.is_not(None), available <= StockLevel.low_stock_threshold,
                              StockLocation.status == "active")
        elif stock == "out":
            stmt = stmt.where(available <= 0)
        elif stock == "in":
            stmt = stmt.where(available > 0)
        total = await self.count(stmt)
        if stock == "low":
            stmt = stmt.order_by(available, available - StockLevel.low_stock_threshold, StockLevel.sku_id, StockLevel.id)
        else:
            stmt = stmt.order_by(StockLevel.sku_id, StockLocation.priority, StockLevel.id)
        rows = (await self.session.execute(stmt.offset(offset).limit(limit).execution_options(populate_existing=True))).all()
        return [(lv, loc) for lv, loc in rows], total

    async def at_location(self, location_id: int) -> Sequence[StockLevel]:
        stmt = (self.select().where(StockLevel.location_id == location_id).order_by(StockLevel.sku_id)
                .execution_options(populate_existing=True))
        return await self.list(stmt)

    async def summary(self) -> dict[str, int]:
        available = StockLevel.on_hand - StockLevel.reserved
        active = and_(StockLevel.tenant_id == self.tenant_id, StockLocation.status == "active")
        base = select(func.count()).select_from(StockLevel).join(StockLocation, StockLocation.id == StockLevel.location_id)
        skus = select(func.count(func.distinct(StockLevel.sku_id))).join(
            StockLocation, StockLocation.id == StockLevel.location_id).where(active)
        on_hand = select(func.coalesce(func.sum(StockLevel.on_hand), 0), func.coalesce(func.sum(StockLevel.reserved), 0)).join(
            StockLocation, StockLocation.id == StockLevel.location_id).where(active)
        low = base.where(active, StockLevel.low_stock_threshold.is_not(None), available <= StockLevel.low_stock_threshold)
        out = base.where(active, available <= 0)
        s = self.session
        oh, rs = (await s.execute(on_hand)).one()
        return {
            "skus": int((await s.execute(skus)).scalar_one()),
            "on_hand": int(oh), "reserved": int(rs),
            "low": int((await s.execute(low)).scalar_one()),
            "out": int((await s.execute(out)).scalar_one()),
        }


class Movements(TenantRepository[StockMovement]):
    model = StockMovement

    async def by_key(self, source_key: str) -> StockMovement | None:
        stmt = self.select().where(StockMovement.source_key == source_key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_keys(self, keys: Sequence[str]) -> list[StockMovement]:
        if not keys:
            return []
        stmt = self.select().where(StockMovement.source_key.in_(list(keys))).order_by(StockMovement.id)
        return list(await self.list(stmt))

    async def search(self, *, sku_id: int | None = None, location_id: int | None = None, reason: str | None = None,
                     source: str | None = None, created_from: datetime | None = None, created_to: datetime | None = None,
                     offset: int = 0, limit: int = 20) -> tuple[Sequence[StockMovement], int]:
        stmt = self.select()
        if sku_id:
            stmt = stmt.where(StockMovement.sku_id == sku_id)
        if location_id:
            stmt = stmt.where(StockMovement.location_id == location_id)
        if reason:
            stmt = stmt.where(StockMovement.reason == reason)
        if source:
            stmt = stmt.where(StockMovement.source_id == source)
        if created_from:
            stmt = stmt.where(StockMovement.created_at >= created_from)
        if created_to:
            stmt = stmt.where(StockMovement.created_at < created_to)
        total = await self.count(stmt)
        return await self.list(stmt.order_by(StockMovement.id.desc()).offset(offset).limit(limit)), total

    async def sums(self, pairs: Sequence[tuple[int, int]] | None = None) -> dict[tuple[int, int], tuple[int, int]]:
        """(sku_id, location_id) → (sum of delta_on_hand, sum of delta_reserved): the ledger's view."""
        stmt = (select(StockMovement.sku_id, StockMovement.location_id, func.sum(StockMovement.delta_on_hand),
                       func.sum(StockMovement.delta_reserved))
                .where(StockMovement.tenant_id == self.tenant_id)
                .group_by(StockMovement.sku_id, StockMovement.location_id))
        if pairs:
            stmt = stmt.where(StockMovement.sku_id.in_(sorted({s for s, _ in pairs})))
        return {(int(s), int(loc)): (int(dh or 0), int(dr or 0)) for s, loc, dh, dr in (await self.session.execute(stmt)).all()}


class Reservations(TenantRepository[StockReservation]):
    model = StockReservation
    not_found_zh = "库存预占"
    not_found_en = "Reservation"
    not_found_code = "reservation_not_found"

    async def claim(self, source_key: str) -> int | None:
        """Insert the reservation row for this key; None if the key already has one.

        On PostgreSQL a concurrent claim of the same key waits for the first transaction and
        then does nothing (it committed) or inserts (it rolled back).
        """
        stmt = _claim_stmt(self.session.get_bind().dialect.name)
        row = (await self.session.execute(stmt, {"b_tenant": self.tenant_id, "b_key": source_key,
                                                 "b_now": clock.now()})).first()
        return int(row[0]) if row is not None else None

    async def by_key(self, source_key: str, *, for_update: bool = False) -> StockReservation | None:
        stmt = (self.select().where(StockReservation.source_key == source_key)
                .execution_options(populate_existing=True))
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lines(self, reservation_id: int) -> list[StockReservationLine]:
        stmt = (select(StockReservationLine)
                .where(StockReservationLine.tenant_id == self.tenant_id, StockReservationLine.reservation_id == reservation_id)
                .order_by(StockReservationLine.id).execution_options(populate_existing=True))
        return list((await self.session.execute(stmt)).scalars().all())

    async def lines_of(self, reservation_ids: Sequence[int]) -> dict[int, list[StockReservationLine]]:
        out: dict[int, list[StockReservationLine]] = {rid: [] for rid in reservation_ids}
        if not reservation_ids:
            return out
        stmt = (select(StockReservationLine)
                .where(StockReservationLine.tenant_id == self.tenant_id,
                       StockReservationLine.reservation_id.in_(list(reservation_ids)))
                .order_by(StockReservationLine.id))
        for line in (await self.session.execute(stmt)).scalars():
            out[line.reservation_id].append(line)
        return out

    def add_line(self, line: StockReservationLine) -> StockReservationLine:
        line.tenant_id = self.tenant_id
        self.session.add(line)
        return line

    async def transition(self, reservation_id: int, from_status: str, to_status: str) -> bool:
        res = await self.session.execute(
            update(StockReservation)
            .where(StockReservation.tenant_id == self.tenant_id, StockReservation.id == reservation_id,
                   StockReservation.status == from_status)
            .values(status=to_status, closed_at=clock.now() if to_status != "active" else None)
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    async def add_committed(self, line_id: int, qty: int) -> bool:
        res = await self.session.execute(
            update(StockReservationLine)
            .where(StockReservationLine.tenant_id == self.tenant_id, StockReservationLine.id == line_id,
                   StockReservationLine.committed + qty <= StockReservationLine.quantity)
            .values(committed=StockReservationLine.committed + qty)
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    async def shrink(self, line_id: int, qty: int) -> int | None:
        """Take ``qty`` units out of a line that are neither committed nor taken out already
        (a partial release); the line's new quantity, or None when it no longer holds them."""
        res = await self.session.execute(
            update(StockReservationLine)
            .where(StockReservationLine.tenant_id == self.tenant_id, StockReservationLine.id == line_id,
                   StockReservationLine.quantity - qty >= StockReservationLine.committed)
            .values(quantity=StockReservationLine.quantity - qty)
            .returning(StockReservationLine.quantity)
            .execution_options(synchronize_session=False)
        )
        row = res.first()
        return int(row[0]) if row is not None else None

    async def search(self, *, status: str | None = None, source_key: str | None = None, offset: int = 0,
                     limit: int = 20) -> tuple[Sequence[StockReservation], int]:
        stmt = self.select()
        if status:
            stmt = stmt.where(StockReservation.status == status)
        if source_key:
            stmt = stmt.where(StockReservation.source_key == source_key)
        total = await self.count(stmt)
        return await self.list(stmt.order_by(StockReservation.id.desc()).offset(offset).limit(limit)), total


class Stocktakes(TenantRepository[Stocktake]):
    model = Stocktake
    not_found_zh = "盘点单"
    not_found_en = "Stocktake"
    not_found_code = "stocktake_not_found"

    async def fresh(self, stocktake_id: int, *, for_update: bool = False) -> Stocktake | None:
        stmt = self.select().where(Stocktake.id == stocktake_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lines(self, stocktake_id: int) -> list[StocktakeLine]:
        stmt = (select(StocktakeLine)
                .where(StocktakeLine.tenant_id == self.tenant_id, StocktakeLine.stocktake_id == stocktake_id)
                .order_by(StocktakeLine.sku_id).execution_options(populate_existing=True))
        return list((await self.session.execute(stmt)).scalars().all())

    def add_line(self, line: StocktakeLine) -> StocktakeLine:
        line.tenant_id = self.tenant_id
        self.session.add(line)
        return line

    async def transition(self, stocktake_id: int, from_status: str, to_status: str) -> bool:
        values: dict[str, Any] = {"status": to_status}
        if to_status == "applied":
            values["applied_at"] = clock.now()
        res = await self.session.execute(
            update(Stocktake)
            .where(Stocktake.tenant_id == self.tenant_id, Stocktake.id == stocktake_id, Stocktake.status == from_status)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    async def search(self, *, status: str | None = None, location_id: int | None = None, offset: int = 0,
                     limit: int = 20) -> tuple[Sequence[Stocktake], int]:
        stmt = self.select()
        if status:
            stmt = stmt.where(Stocktake.status == status)
        if location_id:
            stmt = stmt.where(Stocktake.location_id == location_id)
        total = await self.count(stmt)
        return await self.list(stmt.order_by(Stocktake.id.desc()).offset(offset).limit(limit)), total
