"""Inventory rules: stock locations, levels, reservations, stocktakes and the movement ledger.

Other modules call only the functions below (orders, after-sales, catalog, demo). Every
function takes the caller's session and never commits; a domain error leaves the caller's
transaction as it was (multi-step writes run in a savepoint).

Stock model
    A **level** is one SKU at one **location** (a warehouse or a store): ``on_hand`` is what
    is physically there, ``reserved`` is promised to orders not yet shipped, and
    ``available = on_hand - reserved`` is what can be sold. ``0 <= reserved <= on_hand``
    always. Only *active* locations count towards availability and serve reservations.
    Counters change only by a conditional ``UPDATE`` (``... WHERE on_hand - reserved >= :k``)
    and every change writes exactly one **movement** (the ledger) with a unique source key,
    so ``on_hand`` equals the sum of its movements' ``delta_on_hand`` and ``reserved`` the sum
    of ``delta_reserved``. A retry with a source key that was already posted posts nothing
    and returns the earlier result; the same key with different content is a
    ``409 source_key_reused``.

Contract
    Locations
        ``list_locations(session, scope, *, status=None, kind=None) -> list[StockLocation]``
        (priority order), ``get_location``, ``create_location(session, scope, LocationIn)``,
        ``update_location(session, scope, location_id, LocationUpdate)``,
        ``default_location(session, scope) -> StockLocation``: the active location with the
        lowest priority; a tenant without any gets a "默认仓库" (code ``default``) on first use.
    Levels and ledger
        ``receive(session, scope, sku_id, location_id, qty, note=None, source_key=None) -> StockMovement``
        ``adjust(session, scope, sku_id, location_id, delta, reason, source_key=None) -> StockMovement``
        (``location_id=None``: the default location; a decrease may not touch reserved units),
        ``set_threshold(session, scope, sku_id, location_id, threshold | None) -> StockLevel``,
        ``available(session, scope, sku_ids) -> dict[int, int]`` (every requested id is a key;
        unknown SKUs map to 0), ``levels_for(session, scope, sku_ids) -> dict[int, list[LevelInfo]]``
        (per location, priority order), ``low_stock(session, scope, *, location_id=None, limit=200)``.
    Reservations (one per business object, keyed by ``source_key`` such as ``"order:1234"``)
        ``reserve(session, scope, source_key, lines, preferred_location_ids=None, *, only_preferred=False)
        -> list[ReservedLine]``: ``lines`` are ``(sku_id, qty)`` pairs. All or nothing: when any
        line is short, one ``409 out_of_stock`` lists every short line
        (``lines: [{sku_id, requested, available}]``) and nothing changes. Location choice:
        (1) the first location, in preference order, that can serve *every* line in full (one
        parcel); else, per line, (2) the first location that can serve the whole line; else
        (3) the line is split over locations in preference order. Preference order is
        ``preferred_location_ids`` as given, then the other active locations by
        ``(priority, id)``; ``only_preferred=True`` uses the preferred ones only (store pickup).
        Level rows are locked and updated in ``(sku_id, location_id)`` order. Repeating a key
        returns the earlier lines (``409 reservation_key_reused`` if the lines differ,
        ``409 illegal_reservation_transition`` if it was released).
        ``release(session, scope, source_key, lines=None, *, ref=None) -> list[ReservedLine]``:
        ``lines=None`` gives back what is reserved and not yet committed; releasing twice, a
        committed reservation or an unknown key does nothing and returns ``[]``. With
        ``lines`` (``(sku_id, qty)`` pairs, spread over the SKU's locations from the last
        allocated, or ``ReservedLine`` items for an exact location) only those units go back,
        capped at what is still reserved and not committed (units refunded before they
        shipped); they leave the reservation, whose lines shrink. ``ref`` names the partial
        release (an after-sales case): repeating a ref returns the earlier result and posts
        nothing. A reservation left holding nothing becomes ``committed`` if any of it
        shipped, else ``released``.
        ``commit(session, scope, source_key, lines=None, *, ref=None) -> list[ReservedLine]``:
        shipment: ``on_hand`` and ``reserved`` both drop. ``lines=None`` commits everything
        left; otherwise ``(sku_id, qty)`` pairs (spread over that SKU's reserved locations in
        allocation order) or ``ReservedLine`` items (exact location). Partial commits are
        allowed; the reservation becomes ``committed`` when every unit is. ``ref`` names the
        shipment: repeating a ref returns the earlier result and posts nothing.
        ``restock(session, scope, source_key, lines, *, location_id=None, note=None) -> list[ReservedLine]``:
        goods that came back (after-sales): ``on_hand`` rises; ``(sku_id, qty)`` pairs go to
        ``location_id`` (or the default location), ``ReservedLine`` items to their own.
        Status moves only ``active → released`` or ``active → committed``
        (:data:`RESERVATION_TRANSITIONS`); anything else is ``409 illegal_reservation_transition``.
    Low stock
        A level with a threshold is *low* when ``available <= threshold``. A change that takes
        a level from above its threshold to at or below it publishes one outbox event
        ``inventory.low_stock`` ``{sku_id, location_id, level_id, available, threshold}``.
    Stocktakes
        ``create_stocktake``, ``record_counts(session, scope, stocktake_id, [(sku_id, counted | None)])``,
        ``apply_stocktake`` (posts one ``stocktake`` movement per difference against the
        on-hand count at that moment, exactly once), ``cancel_stocktake``; status
        ``draft → applied | cancelled`` (``409 illegal_stocktake_transition`` otherwise).
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.inventory.models import (
    StockLevel,
    StockLocation,
    StockMovement,
    StockReservation,
    StockReservationLine,
    Stocktake,
    StocktakeLine,
)
from siyu.inventory.repository import (
    Candidate,
    Levels,
    LevelState,
    Locations,
    Movements,
    Reservations,
    Stocktakes,
)
from siyu.inventory.schemas import (
    MAX_THRESHOLD,
    MAX_UNITS,
    SOURCE_KEY_PATTERN,
    LocationIn,
    LocationUpdate,
)
from siyu.kit import audit, clock, outbox
from siyu.kit.context import current_actor
from siyu.kit.errors import Conflict, NotFound, ValidationFailed
from siyu.kit.tenancy import TenantScope
from siyu.kit.types import MAX_ID

LOW_STOCK_TOPIC = "inventory.low_stock"
DEFAULT_LOCATION_CODE = "default"
DEFAULT_LOCATION_NAME = "默认仓库"
#: (status, action) → new status. Repeated releases and releases of committed reservations
#: are accepted as no-ops by :func:`release`; everything else not listed is refused.
RESERVATION_TRANSITIONS = {("active", "release"): "released", ("active", "commit"): "committed"}
STOCKTAKE_TRANSITIONS = {("draft", "apply"): "applied", ("draft", "cancel"): "cancelled"}
_LOCATION_FIELDS = ["code", "name", "kind", "store_id", "priority", "status"]
_KEY = re.compile(SOURCE_KEY_PATTERN)
_REF = re.compile(r"^[A-Za-z0-9_.:@/#-]{1,40}$")
_INSERT_RESERVATION_LINES = insert(StockReservationLine)
_INSERT_MOVEMENTS = insert(StockMovement)
_STATUS_ZH = {"active": "预占中", "released": "已释放", "committed": "已出库", "draft": "草稿", "applied": "已生效",
              "cancelled": "已取消"}


@dataclass(frozen=True, slots=True)
class ReservedLine:
    """Units of one SKU held (or committed, or returned) at one location."""

    sku_id: int
    location_id: int
    qty: int


@dataclass(frozen=True, slots=True)
class LevelInfo:
    id: int
    sku_id: int
    location_id: int
    location_name: str
    location_kind: str
    location_status: str
    store_id: int | None
    priority: int
    on_hand: int
    reserved: int
    low_stock_threshold: int | None
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def is_low(self) -> bool:
        return self.low_stock_threshold is not None and self.available <= self.low_stock_threshold


def _info(lv: StockLevel, loc: StockLocation) -> LevelInfo:
    return LevelInfo(lv.id, lv.sku_id, lv.location_id, loc.name, loc.kind, loc.status, loc.store_id, loc.priority,
                     lv.on_hand, lv.reserved, lv.low_stock_threshold, lv.updated_at)


# -- validation helpers --------------------------------------------------------------------------


def _bad(code: str, zh: str, en: str, field: str) -> ValidationFailed:
    return ValidationFailed(code, zh, en, fields=[{"field": field, "message": en}])


def _source_key(value: Any, field: str = "source_key") -> str:
    if not isinstance(value, str) or not _KEY.match(value.strip()):
        raise _bad("invalid_source_key", "来源标识需为 1–64 位字母、数字或 _ . : @ / # -",
                   "A source key is 1–64 of A-Z a-z 0-9 _ . : @ / # -", field)
    return value.strip()


def _id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise _bad("invalid_id", f"{field} 无效", f"{field} must be a positive id", field)
    return value


def _qty(value: Any, field: str = "qty") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_UNITS:
        raise _bad("invalid_quantity", f"数量需为 1–{MAX_UNITS} 的整数", f"Quantity must be a whole number from 1 to {MAX_UNITS}",
                   field)
    return value


def _note(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:200] or None


def _pairs(lines: Sequence[Any], field: str = "lines") -> dict[int, int]:
    """``(sku_id, qty)`` pairs → {sku_id: total qty}."""
    if not lines:
        raise _bad("invalid_lines", "至少需要一行商品", "At least one line is required", field)
    if len(lines) > 500:
        raise _bad("invalid_lines", "一次最多 500 行", "At most 500 lines at once", field)
    merged: dict[int, int] = defaultdict(int)
    for item in lines:
        try:
            sku_id, qty = item
        except (TypeError, ValueError):
            raise _bad("invalid_lines", "每行需为（SKU、数量）", "Each line is a (sku_id, qty) pair", field) from None
        merged[_id(sku_id, "sku_id")] += _qty(qty)
    for qty in merged.values():
        _qty(qty)
    return dict(sorted(merged.items()))


def _located(lines: Sequence[Any], default_location: int | None, field: str = "lines") -> tuple[dict[tuple[int, int], int], dict[int, int]]:
    """Lines that are ``ReservedLine`` (exact location) or ``(sku_id, qty)`` pairs.

    Returns ({(sku_id, location_id): qty} for located lines (pairs go to ``default_location``
    when it is given), {sku_id: qty} for pairs when it is not)."""
    if not lines:
        raise _bad("invalid_lines", "至少需要一行商品", "At least one line is required", field)
    if len(lines) > 500:
        raise _bad("invalid_lines", "一次最多 500 行", "At most 500 lines at once", field)
    located: dict[tuple[int, int], int] = defaultdict(int)
    loose: dict[int, int] = defaultdict(int)
    for item in lines:
        if isinstance(item, ReservedLine):
            located[(_id(item.sku_id, "sku_id"), _id(item.location_id, "location_id"))] += _qty(item.qty)
            continue
        try:
            sku_id, qty = item
        except (TypeError, ValueError):
            raise _bad("invalid_lines", "每行需为（SKU、数量）", "Each line is a (sku_id, qty) pair", field) from None
        if default_location is not None:
            located[(_id(sku_id, "sku_id"), default_location)] += _qty(qty)
        else:
            loose[_id(sku_id, "sku_id")] += _qty(qty)
    for qty in [*located.values(), *loose.values()]:
        _qty(qty)
    return dict(located), dict(loose)


# -- SKUs (through the catalog's read contract) -------------------------------------------------------


async def _catalog_skus(session: AsyncSession, scope: TenantScope, sku_ids: Sequence[int]) -> dict[int, Any]:
    """This tenant's SKUs among ``sku_ids`` (``catalog.service.skus_for_sale``: other
    tenants' and unknown ids are absent). Imported late: the catalog calls back into
    :func:`available` to show stock."""
    from siyu.catalog import service as catalog_service

    return dict(await catalog_service.skus_for_sale(session, scope, sorted(set(sku_ids))))


async def _check_skus(session: AsyncSession, scope: TenantScope, sku_ids: Sequence[int]) -> None:
    """Refuse SKU ids that are not this tenant's (``422 sku_not_found``)."""
    if not sku_ids:
        return
    known = await _catalog_skus(session, scope, sku_ids)
    missing = sorted(set(sku_ids) - set(known))
    if missing:
        raise ValidationFailed("sku_not_found", f"商品规格不存在：{', '.join(map(str, missing))}",
                               f"No such SKU: {', '.join(map(str, missing))}",
                               fields=[{"field": "sku_id", "message": "no such SKU"}], extra={"sku_ids": missing})


async def sku_labels(session: AsyncSession, scope: TenantScope, sku_ids: Sequence[int]) -> dict[int, str]:
    """Display names of this tenant's SKUs: "product · spec (code)"."""
    if not sku_ids:
        return {}
    out: dict[int, str] = {}
    for sku_id, sku in (await _catalog_skus(session, scope, sku_ids)).items():
        name = f"{sku.title} · {sku.spec_text}" if sku.spec_text else sku.title
        out[sku_id] = f"{name} ({sku.code})"
    return out


async def _ensure_levels(session: AsyncSession, scope: TenantScope, pairs: Sequence[tuple[int, int]]) -> None:
    try:
        async with session.begin_nested():
            await Levels(session, scope.id).ensure(pairs)
    except IntegrityError:
        skus = sorted({s for s, _ in pairs})
        raise ValidationFailed("sku_not_found", f"商品规格不存在：{', '.join(map(str, skus))}",
                               f"No such SKU: {', '.join(map(str, skus))}",
                               fields=[{"field": "sku_id", "message": "no such SKU"}], extra={"sku_ids": skus}) from None


# -- the ledger ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    sku_id: int
    location_id: int
    d_on_hand: int
    d_reserved: int
    reason: str
    source_type: str
    source_id: str
    source_key: str
    note: str | None = None


def _movement(scope: TenantScope, e: _Entry, state: LevelState) -> StockMovement:
    actor = current_actor()
    return StockMovement(
        tenant_id=scope.id, sku_id=e.sku_id, location_id=e.location_id, delta_on_hand=e.d_on_hand,
        delta_reserved=e.d_reserved, on_hand_after=state.on_hand, reserved_after=state.reserved, reason=e.reason,
        source_type=e.source_type, source_id=e.source_id[:64], source_key=e.source_key, note=e.note,
        actor_kind=actor.kind, actor_id=actor.id, actor_name=actor.name[:100], created_at=clock.now(),
    )


def _movement_row(scope: TenantScope, e: _Entry, state: LevelState) -> dict[str, Any]:
    """:func:`_movement` as the values of a bulk ``INSERT``."""
    actor = current_actor()
    return {
        "tenant_id": scope.id, "sku_id": e.sku_id, "location_id": e.location_id, "delta_on_hand": e.d_on_hand,
        "delta_reserved": e.d_reserved, "on_hand_after": state.on_hand, "reserved_after": state.reserved,
        "reason": e.reason, "source_type": e.source_type, "source_id": e.source_id[:64], "source_key": e.source_key,
        "note": e.note, "actor_kind": actor.kind, "actor_id": actor.id, "actor_name": actor.name[:100],
        "created_at": clock.now(),
    }


def _maybe_low(session: AsyncSession, scope: TenantScope, e: _Entry, state: LevelState) -> None:
    """Publish ``inventory.low_stock`` when this change crossed the threshold downwards."""
    if state.threshold is None:
        return
    after = state.on_hand - state.reserved
    before = after - (e.d_on_hand - e.d_reserved)
    if after <= state.threshold < before:
        outbox.publish(session, LOW_STOCK_TOPIC, {
            "tenant_id": scope.id, "sku_id": e.sku_id, "location_id": e.location_id, "level_id": state.id,
            "available": after, "threshold": state.threshold, "on_hand": state.on_hand, "reserved": state.reserved,
        }, tenant_id=scope.id)


async def _refusal(session: AsyncSession, scope: TenantScope, e: _Entry) -> Conflict:
    """Why :meth:`Levels.apply` changed nothing, as the error the caller should see."""
    level = await Levels(session, scope.id).pair(e.sku_id, e.location_id)
    on_hand, reserved = (level.on_hand, level.reserved) if level else (0, 0)
    detail = {"sku_id": e.sku_id, "location_id": e.location_id, "on_hand": on_hand, "reserved": reserved,
              "available": on_hand - reserved}
    if e.d_on_hand > 0 and on_hand + e.d_on_hand > MAX_UNITS:
        return Conflict("stock_limit_exceeded", f"单个库存记录最多 {MAX_UNITS} 件", f"A stock level holds at most {MAX_UNITS} units",
                        extra=detail)
    if e.d_reserved < 0 and reserved + e.d_reserved < 0:
        return Conflict("reservation_mismatch", "预占数量与库存记录不一致", "The reservation does not match the stock level",
                        extra=detail)
    return Conflict("insufficient_stock",
                    f"可用库存不足：SKU {e.sku_id} 可用 {on_hand - reserved} 件（在库 {on_hand}，已预占 {reserved}）",
                    f"Not enough available stock: SKU {e.sku_id} has {on_hand - reserved} available "
                    f"({on_hand} on hand, {reserved} reserved)", extra=detail)


def _same(earlier: Sequence[StockMovement], entries: Sequence[_Entry]) -> None:
    got = {(m.source_key, m.sku_id, m.location_id, m.delta_on_hand, m.delta_reserved) for m in earlier}
    want = {(e.source_key, e.sku_id, e.location_id, e.d_on_hand, e.d_reserved) for e in entries}
    if got != want:
        raise Conflict("source_key_reused", "该来源标识已用于另一笔库存变动", "This source key was already used for a different stock movement",
                       extra={"source_keys": sorted({m.source_key for m in earlier})})


async def _post(session: AsyncSession, scope: TenantScope, entries: Sequence[_Entry], *,
                ensure: bool = True) -> tuple[list[StockMovement], bool]:
    """Post movements exactly once per source key: (movements, whether they are new).

    If any of the keys was posted before, nothing is posted and the earlier movements come
    back (they must be the same facts). The level updates and ledger rows run in one
    savepoint: a refused update rolls all of them back, and a racing transaction that
    posted the same keys first turns our attempt into a replay instead of an error.
    """
    movements = Movements(session, scope.id)
    keys = [e.source_key for e in entries]
    earlier = await movements.by_keys(keys)
    if earlier:
        _same(earlier, entries)
        return earlier, False
    if ensure:
        await _ensure_levels(session, scope, [(e.sku_id, e.location_id) for e in entries])
    ordered = sorted(entries, key=lambda e: (e.sku_id, e.location_id))
    posted: list[tuple[_Entry, LevelState, StockMovement]] = []
    levels = Levels(session, scope.id)
    try:
        async with session.begin_nested():
            for e in ordered:
                state = await levels.apply(e.sku_id, e.location_id, e.d_on_hand, e.d_reserved)
                if state is None:
                    raise await _refusal(session, scope, e)
                mv = _movement(scope, e, state)
                session.add(mv)
                posted.append((e, state, mv))
            await session.flush()
    except IntegrityError:
        earlier = await movements.by_keys(keys)
        if not earlier:
            raise
        _same(earlier, entries)
        return earlier, False
    for e, state, _mv in posted:
        _maybe_low(session, scope, e, state)
    return [mv for _e, _s, mv in posted], True


def _manual_key(prefix: str, source_key: str | None) -> tuple[str, str]:
    """(ledger key, source id) of a manual movement: the caller's key, or a fresh one."""
    if source_key is None:
        ident = clock.now().strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(4)
        return f"{prefix}:{ident}", ident
    key = _source_key(source_key)
    return f"{prefix}:{key}", key


# -- locations -------------------------------------------------------------------------------------


async def list_locations(session: AsyncSession, scope: TenantScope, *, status: str | None = None,
                         kind: str | None = None) -> list[StockLocation]:
    return list(await Locations(session, scope.id).all(status=status, kind=kind))


async def get_location(session: AsyncSession, scope: TenantScope, location_id: int) -> StockLocation:
    return await Locations(session, scope.id).get_or_404(location_id)


async def locations_by_id(session: AsyncSession, scope: TenantScope, ids: Sequence[int]) -> dict[int, StockLocation]:
    return await Locations(session, scope.id).by_ids(ids)


async def _check_store(session: AsyncSession, scope: TenantScope, kind: str, store_id: int | None,
                       location_id: int | None = None) -> None:
    from siyu.tenants import service as tenants_service

    if kind == "warehouse":
        if store_id is not None:
            raise _bad("store_not_allowed", "仓库不关联门店", "A warehouse is not linked to a store", "store_id")
        return
    if store_id is None:
        raise _bad("store_required", "门店库存点需选择门店", "A store location needs a store", "store_id")
    if not await tenants_service.store_exists(session, scope, store_id):
        raise _bad("store_not_found", "门店不存在", "Store not found", "store_id")
    other = await Locations(session, scope.id).by_store(store_id)
    if other is not None and other.id != location_id:
        raise Conflict("store_location_exists", f"该门店已有库存点「{other.name}」", f"This store already has a stock location ({other.name})",
                       fields=[{"field": "store_id", "message": "already has a location"}])


async def create_location(session: AsyncSession, scope: TenantScope, data: LocationIn) -> StockLocation:
    repo = Locations(session, scope.id)
    if await repo.by_code(data.code):
        raise Conflict("location_code_taken", f"库存点编码 {data.code} 已存在", f"Location code {data.code} already exists",
                       fields=[{"field": "code", "message": "already taken"}])
    await _check_store(session, scope, data.kind, data.store_id)
    loc = repo.add(StockLocation(code=data.code, name=data.name, kind=data.kind, store_id=data.store_id,
                                 priority=data.priority, status=data.status, created_at=clock.now()))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="inventory.location.create", object_type="stock_location",
                 object_id=loc.id, after=audit.snapshot(loc, _LOCATION_FIELDS))
    return loc


async def update_location(session: AsyncSession, scope: TenantScope, location_id: int, data: LocationUpdate) -> StockLocation:
    loc = await Locations(session, scope.id).get_or_404(location_id)
    before = audit.snapshot(loc, _LOCATION_FIELDS)
    for k, v in data.model_dump(exclude_unset=True).items():
        if v is not None:
            setattr(loc, k, v)
    await session.flush()
    after = audit.snapshot(loc, _LOCATION_FIELDS)
    if after != before:
        audit.record(session, tenant_id=scope.id, action="inventory.location.update", object_type="stock_location",
                     object_id=loc.id, before=before, after=after)
    return loc


async def default_location(session: AsyncSession, scope: TenantScope) -> StockLocation:
    """The active location with the lowest priority. A tenant without any location gets a
    "默认仓库" (code ``default``) on first use; one whose locations are all inactive gets
    ``409 no_active_location`` rather than a new location nobody asked for."""
    repo = Locations(session, scope.id)
    loc = await repo.first_active()
    if loc is not None:
        return loc
    if not await repo.all():
        await repo.insert_if_absent(code=DEFAULT_LOCATION_CODE, name=DEFAULT_LOCATION_NAME, kind="warehouse", priority=100)
    # Read again rather than trusting earlier reads: a concurrent first use may have created
    # the default location between our statements (each sees the latest commits).
    loc = await repo.first_active()
    if loc is None:
        raise Conflict("no_active_location", "没有启用的库存点，请先启用一个仓库或门店库存点",
                       "There is no active stock location; activate a warehouse or store location first")
    return loc


async def _location_id(session: AsyncSession, scope: TenantScope, location_id: int | None) -> int:
    if location_id is None:
        return (await default_location(session, scope)).id
    return (await Locations(session, scope.id).get_or_404(_id(location_id, "location_id"))).id


# -- levels ----------------------------------------------------------------------------------------


async def receive(session: AsyncSession, scope: TenantScope, sku_id: int, location_id: int | None, qty: int,
                  note: str | None = None, source_key: str | None = None) -> StockMovement:
    """Goods arrived (purchase, transfer in, opening stock): ``on_hand`` rises by ``qty``."""
    sku_id, qty = _id(sku_id, "sku_id"), _qty(qty)
    loc_id = await _location_id(session, scope, location_id)
    await _check_skus(session, scope, [sku_id])
    key, ident = _manual_key("receive", source_key)
    (mv,), new = await _post(session, scope, [_Entry(sku_id, loc_id, qty, 0, "receive", "manual", ident, key, _note(note))])
    if new:
        audit.record(session, tenant_id=scope.id, action="inventory.receive", object_type="stock_level",
                     object_id=f"{sku_id}@{loc_id}", after={"sku_id": sku_id, "location_id": loc_id, "qty": qty,
                                                            "on_hand": mv.on_hand_after, "note": mv.note, "source_key": key})
    return mv


async def adjust(session: AsyncSession, scope: TenantScope, sku_id: int, location_id: int | None, delta: int, reason: str,
                 source_key: str | None = None) -> StockMovement:
    """Correct ``on_hand`` by ``delta`` (damage, loss, found goods) with a reason.

    A decrease may take only available units: reserved units belong to orders, so a
    decrease beyond ``on_hand - reserved`` is ``409 insufficient_stock``."""
    sku_id = _id(sku_id, "sku_id")
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0 or abs(delta) > MAX_UNITS:
        raise _bad("invalid_quantity", f"调整数量需为非零整数，绝对值不超过 {MAX_UNITS}",
                   f"The adjustment is a non-zero whole number of at most {MAX_UNITS} units", "delta")
    reason = (reason or "").strip()
    if not reason:
        raise _bad("reason_required", "请填写调整原因", "Give a reason for the adjustment", "reason")
    loc_id = await _location_id(session, scope, location_id)
    await _check_skus(session, scope, [sku_id])
    key, ident = _manual_key("adjust", source_key)
    (mv,), new = await _post(session, scope, [_Entry(sku_id, loc_id, delta, 0, "adjust", "manual", ident, key, reason[:200])])
    if new:
        audit.record(session, tenant_id=scope.id, action="inventory.adjust", object_type="stock_level",
                     object_id=f"{sku_id}@{loc_id}", after={"sku_id": sku_id, "location_id": loc_id, "delta": delta,
                                                            "on_hand": mv.on_hand_after, "reason": reason, "source_key": key})
    return mv


def _threshold(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_THRESHOLD:
        raise _bad("invalid_threshold", f"预警值需为 0–{MAX_THRESHOLD} 的整数", f"The threshold is a whole number from 0 to {MAX_THRESHOLD}",
                   "threshold")
    return value


async def set_threshold(session: AsyncSession, scope: TenantScope, sku_id: int, location_id: int | None,
                        threshold: int | None) -> StockLevel:
    """Alert when this level's available units fall to ``threshold`` or below (None: no alert)."""
    sku_id, threshold = _id(sku_id, "sku_id"), _threshold(threshold)
    loc_id = await _location_id(session, scope, location_id)
    await _check_skus(session, scope, [sku_id])
    await _ensure_levels(session, scope, [(sku_id, loc_id)])
    level = await Levels(session, scope.id).pair(sku_id, loc_id)
    assert level is not None
    return await _set_threshold(session, scope, level, threshold)


async def set_level_threshold(session: AsyncSession, scope: TenantScope, level_id: int, threshold: int | None) -> StockLevel:
    level = await Levels(session, scope.id).get_or_404(level_id)
    return await _set_threshold(session, scope, level, _threshold(threshold))


async def _set_threshold(session: AsyncSession, scope: TenantScope, level: StockLevel, threshold: int | None) -> StockLevel:
    repo = Levels(session, scope.id)
    before = level.low_stock_threshold
    if before != threshold:
        await repo.set_threshold(level.id, threshold)
        audit.record(session, tenant_id=scope.id, action="inventory.threshold", object_type="stock_level", object_id=level.id,
                     before={"sku_id": level.sku_id, "location_id": level.location_id, "low_stock_threshold": before},
                     after={"sku_id": level.sku_id, "location_id": level.location_id, "low_stock_threshold": threshold})
    fresh = await repo.fresh(level.id)
    assert fresh is not None
    return fresh


async def get_level(session: AsyncSession, scope: TenantScope, level_id: int) -> LevelInfo:
    level = await Levels(session, scope.id).get_or_404(level_id)
    loc = await Locations(session, scope.id).get_or_404(level.location_id)
    return _info(level, loc)


async def available(session: AsyncSession, scope: TenantScope, sku_ids: Sequence[int]) -> dict[int, int]:
    """Sellable units (on_hand - reserved over active locations) per SKU; unknown ids → 0."""
    ids = sorted({int(s) for s in sku_ids})
    if not ids:
        return {}
    found = await Levels(session, scope.id).available(ids)
    return {s: max(0, found.get(s, 0)) for s in ids}


async def levels_for(session: AsyncSession, scope: TenantScope, sku_ids: Sequence[int]) -> dict[int, list[LevelInfo]]:
    """Every level of these SKUs, per location in priority order (inactive locations included,
    marked by ``location_status``); every requested id is a key."""
    ids = sorted({int(s) for s in sku_ids})
    out: dict[int, list[LevelInfo]] = {s: [] for s in ids}
    if not ids:
        return out
    for lv, loc in await Levels(session, scope.id).with_locations(ids):
        out[lv.sku_id].append(_info(lv, loc))
    return out


async def search_levels(session: AsyncSession, scope: TenantScope, *, sku_id: int | None = None,
                        location_id: int | None = None, stock: str | None = None, offset: int = 0,
                        limit: int = 20) -> tuple[list[LevelInfo], int]:
    rows, total = await Levels(session, scope.id).search(sku_id=sku_id, location_id=location_id, stock=stock,
                                                         offset=offset, limit=limit)
    return [_info(lv, loc) for lv, loc in rows], total


async def low_stock(session: AsyncSession, scope: TenantScope, *, location_id: int | None = None,
                    limit: int = 200) -> list[LevelInfo]:
    """Levels at or below their threshold in active locations, most urgent first."""
    rows, _total = await search_levels(session, scope, location_id=location_id, stock="low", limit=limit)
    return rows


async def stock_summary(session: AsyncSession, scope: TenantScope) -> dict[str, int]:
    """Counts for the console header: SKUs stocked, units on hand and reserved, low and out levels."""
    return await Levels(session, scope.id).summary()


async def list_movements(session: AsyncSession, scope: TenantScope, *, sku_id: int | None = None,
                         location_id: int | None = None, reason: str | None = None, source: str | None = None,
                         created_from: datetime | None = None, created_to: datetime | None = None, offset: int = 0,
                         limit: int = 20) -> tuple[Sequence[StockMovement], int]:
    return await Movements(session, scope.id).search(sku_id=sku_id, location_id=location_id, reason=reason, source=source,
                                                     created_from=created_from, created_to=created_to, offset=offset,
                                                     limit=limit)


async def ledger_sums(session: AsyncSession, scope: TenantScope) -> dict[tuple[int, int], tuple[int, int]]:
    """(sku_id, location_id) → (Σ delta_on_hand, Σ delta_reserved): what the ledger says the
    counters must be (for reconciliation checks)."""
    return await Movements(session, scope.id).sums()


# -- reservations ----------------------------------------------------------------------------------


def _illegal(status: str, action: str) -> Conflict:
    zh_action = {"release": "释放", "commit": "出库", "reserve": "再次预占"}.get(action, action)
    return Conflict("illegal_reservation_transition",
                    f"预占状态为「{_STATUS_ZH.get(status, status)}」，不能{zh_action}",
                    f"A reservation in status '{status}' cannot {action}", extra={"current_status": status, "action": action})


def _out_of_stock(short: list[dict[str, int]]) -> Conflict:
    zh = "；".join(f"SKU {s['sku_id']} 需要 {s['requested']} 件，可用 {s['available']} 件" for s in short)
    en = "; ".join(f"SKU {s['sku_id']}: {s['requested']} requested, {s['available']} available" for s in short)
    return Conflict("out_of_stock", f"库存不足：{zh}", f"Out of stock: {en}", extra={"lines": short})


def _preference(preferred: Sequence[int] | None) -> Any:
    rank = {loc: i for i, loc in enumerate(dict.fromkeys(preferred or []))}

    def key(c: Candidate) -> tuple[int, int, int]:
        if c.location_id in rank:
            return (0, rank[c.location_id], 0)
        return (1, c.priority, c.location_id)

    return key, rank


def allocate(wanted: dict[int, int], candidates: Sequence[Candidate], preferred: Sequence[int] | None = None,
             only_preferred: bool = False) -> tuple[list[ReservedLine], list[dict[str, int]]]:
    """Choose locations for ``wanted`` ({sku_id: qty}) from ``candidates`` (pure; see the
    module docstring for the rule). Returns (plan in allocation order, short lines)."""
    key, rank = _preference(preferred)
    by_sku: dict[int, list[Candidate]] = defaultdict(list)
    for c in candidates:
        if c.available > 0 and (not only_preferred or c.location_id in rank):
            by_sku[c.sku_id].append(c)
    for opts in by_sku.values():
        opts.sort(key=key)
    short = [{"sku_id": s, "requested": q, "available": sum(c.available for c in by_sku.get(s, []))}
             for s, q in wanted.items() if sum(c.available for c in by_sku.get(s, [])) < q]
    if short:
        return [], short
    # (1) one location for the whole request
    per_loc: dict[int, dict[int, Candidate]] = defaultdict(dict)
    for opts in by_sku.values():
        for c in opts:
            per_loc[c.location_id][c.sku_id] = c
    whole = [cs for cs in per_loc.values() if all(s in cs and cs[s].available >= q for s, q in wanted.items())]
    if whole:
        best = min(whole, key=lambda cs: key(next(iter(cs.values()))))
        return [ReservedLine(s, best[s].location_id, q) for s, q in wanted.items()], []
    plan: list[ReservedLine] = []
    for s, q in wanted.items():
        opts = by_sku[s]
        # (2) one location for the line, else (3) split in preference order
        single = next((c for c in opts if c.available >= q), None)
        if single is not None:
            plan.append(ReservedLine(s, single.location_id, q))
            continue
        remaining = q
        for c in opts:
            take = min(c.available, remaining)
            plan.append(ReservedLine(s, c.location_id, take))
            remaining -= take
            if remaining == 0:
                break
    return plan, []


def _lines_of(res_lines: Sequence[StockReservationLine]) -> list[ReservedLine]:
    return [ReservedLine(line.sku_id, line.location_id, line.quantity) for line in res_lines]


async def _reserved_at_first(session: AsyncSession, scope: TenantScope, key: str,
                             lines: Sequence[ReservedLine]) -> dict[int, int]:
    """{sku_id: units} the reservation took when it was made. A partial release shrinks the
    lines, so the ledger's reserve movements, not the lines, say what was asked for."""
    keys = sorted({f"res:{key}:reserve:{line.sku_id}@{line.location_id}" for line in lines})
    totals: dict[int, int] = defaultdict(int)
    for m in await Movements(session, scope.id).by_keys(keys):
        totals[m.sku_id] += m.delta_reserved
    return dict(sorted(totals.items()))


async def reserve(session: AsyncSession, scope: TenantScope, source_key: str, lines: Sequence[tuple[int, int]],
                  preferred_location_ids: Sequence[int] | None = None, *, only_preferred: bool = False) -> list[ReservedLine]:
    """Hold stock for an order, all lines or none; idempotent per ``source_key``."""
    key = _source_key(source_key)
    wanted = _pairs(lines)
    preferred = [_id(loc, "preferred_location_ids") for loc in (preferred_location_ids or [])]
    repo = Reservations(session, scope.id)
    async with session.begin_nested():
        res_id = await repo.claim(key)
        if res_id is None:
            existing = await repo.by_key(key)
            assert existing is not None
            if existing.status == "released":
                raise _illegal(existing.status, "reserve")
            earlier = _lines_of(await repo.lines(existing.id))
            if await _reserved_at_first(session, scope, key, earlier) != wanted:
                raise Conflict("reservation_key_reused", "该来源标识已用于另一组商品的预占",
                               "This source key already reserved different lines", extra={"source_key": key})
            return earlier
        levels = Levels(session, scope.id)
        candidates = await levels.candidates(list(wanted), preferred if only_preferred else None)
        plan, short = allocate(wanted, candidates, preferred, only_preferred)
        if short:
            raise _out_of_stock(short)
        entries = [_Entry(line.sku_id, line.location_id, 0, line.qty, "reserve", "reservation", key,
                          f"res:{key}:reserve:{line.sku_id}@{line.location_id}") for line in plan]
        # One UPDATE for every level, one INSERT each for the lines and the ledger: a
        # reservation is on every order's critical path (see docs/performance.md).
        states = await levels.reserve_many({(e.sku_id, e.location_id): e.d_reserved for e in entries})
        refused = sorted({e.sku_id for e in entries if (e.sku_id, e.location_id) not in states})
        if refused:  # cannot happen while the rows are locked; refuse rather than oversell
            raise _out_of_stock([{"sku_id": s, "requested": wanted[s], "available": 0} for s in refused])
        await session.execute(_INSERT_RESERVATION_LINES, [
            {"tenant_id": scope.id, "reservation_id": res_id, "sku_id": line.sku_id, "location_id": line.location_id,
             "quantity": line.qty, "committed": 0} for line in plan])
        await session.execute(_INSERT_MOVEMENTS, [
            _movement_row(scope, e, states[(e.sku_id, e.location_id)]) for e in entries])
    for e in entries:
        _maybe_low(session, scope, e, states[(e.sku_id, e.location_id)])
    return plan


async def release(session: AsyncSession, scope: TenantScope, source_key: str, lines: Sequence[Any] | None = None, *,
                  ref: str | None = None) -> list[ReservedLine]:
    """Give back what a reservation still holds (order cancelled or timed out), or part of it.

    ``lines=None`` releases every unit not committed; ``[]`` comes back when there was
    nothing to do (unknown key, already released, fully committed). With ``lines`` only those
    units go back (see :func:`_release_part`). Returns the units released."""
    key = _source_key(source_key)
    if lines is not None:
        return await _release_part(session, scope, key, lines, ref)
    repo = Reservations(session, scope.id)
    res = await repo.by_key(key, for_update=True)
    if res is None or res.status != "active":
        return []
    async with session.begin_nested():
        if not await repo.transition(res.id, "active", RESERVATION_TRANSITIONS[("active", "release")]):
            return []
        out: list[ReservedLine] = []
        levels = Levels(session, scope.id)
        for line in sorted(await repo.lines(res.id), key=lambda ln: (ln.sku_id, ln.location_id, ln.id)):
            q = line.quantity - line.committed
            if q <= 0:
                continue
            e = _Entry(line.sku_id, line.location_id, 0, -q, "release", "reservation", key, f"res:{key}:release:{line.id}")
            state = await levels.apply(e.sku_id, e.location_id, 0, -q)
            if state is None:
                raise await _refusal(session, scope, e)
            session.add(_movement(scope, e, state))
            out.append(ReservedLine(line.sku_id, line.location_id, q))
        await session.flush()
    return out


def _release_plan(res_lines: Sequence[StockReservationLine], lines: Sequence[Any]) -> list[tuple[StockReservationLine, int]]:
    """Which reservation lines give back how many units: ``ReservedLine`` items at their own
    location, ``(sku_id, qty)`` pairs from the SKU's last-allocated locations first (the
    split-off parcels, so the main parcel stays whole). More than is still held is capped at
    what is held: units that shipped or were released already cannot go back."""
    located, loose = _located(lines, None)
    left = {line.id: line.quantity - line.committed for line in res_lines}
    take: dict[int, int] = defaultdict(int)

    def spread(match: Sequence[StockReservationLine], q: int) -> None:
        for ln in match:
            t = min(q, left[ln.id] - take[ln.id])
            if t > 0:
                take[ln.id] += t
                q -= t

    for (sku_id, loc_id), q in sorted(located.items()):
        spread([ln for ln in reversed(res_lines) if ln.sku_id == sku_id and ln.location_id == loc_id], q)
    for sku_id, q in sorted(loose.items()):
        spread([ln for ln in reversed(res_lines) if ln.sku_id == sku_id], q)
    return [(ln, take[ln.id]) for ln in res_lines if take.get(ln.id)]


async def _release_part(session: AsyncSession, scope: TenantScope, key: str, lines: Sequence[Any],
                        ref: str | None) -> list[ReservedLine]:
    """Partial release: some units of an order will never ship (refunded before shipping).

    The released units leave the reservation (its lines' ``quantity`` drops), so later
    commits and a final full release see only what is still promised. ``ref`` names the
    business fact (an after-sales case): a retry with the same ref posts nothing and returns
    the earlier result. A reservation left with nothing to ship ends ``committed`` if any of
    it shipped, else ``released``."""
    if ref is not None and (not isinstance(ref, str) or not _REF.match(ref)):
        raise _bad("invalid_ref", "释放标识需为 1–40 位字母、数字或 _ . : @ / # -", "A release ref is 1–40 of A-Z a-z 0-9 _ . : @ / # -",
                   "ref")
    _located(lines, None)  # validate before touching anything
    repo = Reservations(session, scope.id)
    res = await repo.by_key(key, for_update=True)
    if res is None:
        return []
    res_lines = await repo.lines(res.id)

    def mkey(line: StockReservationLine, after: int) -> str:
        return f"res:{key}:release:r:{ref}:{line.id}" if ref is not None else f"res:{key}:release:p:{line.id}:{after}"

    if ref is not None:
        earlier = await Movements(session, scope.id).by_keys([mkey(ln, 0) for ln in res_lines])
        if earlier:
            return [ReservedLine(m.sku_id, m.location_id, -m.delta_reserved) for m in earlier]
    if res.status != "active":
        return []
    plan = _release_plan(res_lines, lines)
    if not plan:
        return []
    out: list[ReservedLine] = []
    levels = Levels(session, scope.id)
    quantity = {ln.id: ln.quantity for ln in res_lines}
    async with session.begin_nested():
        for line, q in sorted(plan, key=lambda t: (t[0].sku_id, t[0].location_id, t[0].id)):
            after = await repo.shrink(line.id, q)
            state = await levels.apply(line.sku_id, line.location_id, 0, -q) if after is not None else None
            if after is None or state is None:
                raise Conflict("reservation_mismatch", "预占数量与库存记录不一致", "The reservation does not match the stock level",
                               extra={"sku_id": line.sku_id, "location_id": line.location_id})
            e = _Entry(line.sku_id, line.location_id, 0, -q, "release", "reservation", key, mkey(line, after))
            quantity[line.id] = after
            session.add(_movement(scope, e, state))
            out.append(ReservedLine(line.sku_id, line.location_id, q))
        if all(quantity[ln.id] <= ln.committed for ln in res_lines):
            shipped = any(ln.committed > 0 for ln in res_lines)
            await repo.transition(res.id, "active", RESERVATION_TRANSITIONS[("active", "commit" if shipped else "release")])
        await session.flush()
    return out


def _commit_plan(res_lines: Sequence[StockReservationLine], lines: Sequence[Any] | None) -> list[tuple[StockReservationLine, int]]:
    remaining = {line.id: line.quantity - line.committed for line in res_lines}
    if lines is None:
        return [(line, remaining[line.id]) for line in res_lines if remaining[line.id] > 0]
    located, loose = _located(lines, None)
    take: dict[int, int] = defaultdict(int)
    problems: list[dict[str, Any]] = []
    for (sku_id, loc_id), q in sorted(located.items()):
        match = [ln for ln in res_lines if ln.sku_id == sku_id and ln.location_id == loc_id]
        left = sum(remaining[ln.id] - take[ln.id] for ln in match)
        if q > left:
            problems.append({"sku_id": sku_id, "location_id": loc_id, "requested": q, "reserved": left})
            continue
        for ln in match:
            t = min(q, remaining[ln.id] - take[ln.id])
            take[ln.id] += t
            q -= t
    for sku_id, q in sorted(loose.items()):
        match = [ln for ln in res_lines if ln.sku_id == sku_id]
        left = sum(remaining[ln.id] - take[ln.id] for ln in match)
        if q > left:
            problems.append({"sku_id": sku_id, "requested": q, "reserved": left})
            continue
        for ln in match:
            t = min(q, remaining[ln.id] - take[ln.id])
            take[ln.id] += t
            q -= t
    if problems:
        raise Conflict("commit_exceeds_reservation", "出库数量超过预占中剩余的数量", "More units than the reservation still holds",
                       extra={"lines": problems})
    return [(ln, take[ln.id]) for ln in res_lines if take.get(ln.id)]


async def commit(session: AsyncSession, scope: TenantScope, source_key: str, lines: Sequence[Any] | None = None, *,
                 ref: str | None = None) -> list[ReservedLine]:
    """Ship reserved units: ``on_hand`` and ``reserved`` both drop (see the module docstring)."""
    key = _source_key(source_key)
    if ref is not None and (not isinstance(ref, str) or not _REF.match(ref)):
        raise _bad("invalid_ref", "发货标识需为 1–40 位字母、数字或 _ . : @ / # -", "A shipment ref is 1–40 of A-Z a-z 0-9 _ . : @ / # -",
                   "ref")
    repo = Reservations(session, scope.id)
    res = await repo.by_key(key, for_update=True)
    if res is None:
        raise NotFound("reservation_not_found", "库存预占不存在", "Reservation not found")
    res_lines = await repo.lines(res.id)

    def mkey(line: StockReservationLine, after: int) -> str:
        return f"res:{key}:commit:r:{ref}:{line.id}" if ref is not None else f"res:{key}:commit:{line.id}:{after}"

    if ref is not None:
        earlier = await Movements(session, scope.id).by_keys([mkey(ln, 0) for ln in res_lines])
        if earlier:
            return [ReservedLine(m.sku_id, m.location_id, -m.delta_on_hand) for m in earlier]
    if res.status == "committed" and lines is None:
        return []
    if (res.status, "commit") not in RESERVATION_TRANSITIONS:
        raise _illegal(res.status, "commit")
    plan = _commit_plan(res_lines, lines)
    out: list[ReservedLine] = []
    levels = Levels(session, scope.id)
    async with session.begin_nested():
        for line, q in sorted(plan, key=lambda t: (t[0].sku_id, t[0].location_id, t[0].id)):
            e = _Entry(line.sku_id, line.location_id, -q, -q, "commit", "reservation", key, mkey(line, line.committed + q))
            state = await levels.apply(e.sku_id, e.location_id, -q, -q)
            if state is None or not await repo.add_committed(line.id, q):
                raise Conflict("reservation_mismatch", "预占数量与库存记录不一致", "The reservation does not match the stock level",
                               extra={"sku_id": line.sku_id, "location_id": line.location_id})
            session.add(_movement(scope, e, state))
            out.append(ReservedLine(line.sku_id, line.location_id, q))
        done = {ln.id: ln.committed for ln in res_lines}
        for line, q in plan:
            done[line.id] += q
        if all(done[ln.id] >= ln.quantity for ln in res_lines):
            await repo.transition(res.id, "active", RESERVATION_TRANSITIONS[("active", "commit")])
        await session.flush()
    return out


async def restock(session: AsyncSession, scope: TenantScope, source_key: str, lines: Sequence[Any], *,
                  location_id: int | None = None, note: str | None = None) -> list[ReservedLine]:
    """Goods came back (after-sales return): ``on_hand`` rises; idempotent per ``source_key``."""
    key = _source_key(source_key)
    default = await _location_id(session, scope, location_id)
    located, _loose = _located(lines, default)
    locs = {loc for _s, loc in located}
    found = await Locations(session, scope.id).by_ids(locs)
    if locs - set(found):
        raise NotFound("location_not_found", "库存地点不存在", "Stock location not found")
    await _check_skus(session, scope, sorted({s for s, _l in located}))
    entries = [_Entry(s, loc, q, 0, "return", "restock", key, f"restock:{key}:{s}@{loc}", _note(note))
               for (s, loc), q in sorted(located.items())]
    movements, _new = await _post(session, scope, entries)
    return [ReservedLine(m.sku_id, m.location_id, m.delta_on_hand) for m in movements]


async def get_reservation(session: AsyncSession, scope: TenantScope, reservation_id: int) -> tuple[StockReservation, list[StockReservationLine]]:
    repo = Reservations(session, scope.id)
    res = await repo.get_or_404(reservation_id)
    return res, await repo.lines(res.id)


async def reservation_by_key(session: AsyncSession, scope: TenantScope, source_key: str) -> tuple[StockReservation, list[StockReservationLine]] | None:
    repo = Reservations(session, scope.id)
    res = await repo.by_key(_source_key(source_key))
    return (res, await repo.lines(res.id)) if res is not None else None


async def list_reservations(session: AsyncSession, scope: TenantScope, *, status: str | None = None,
                            source_key: str | None = None, offset: int = 0,
                            limit: int = 20) -> tuple[list[tuple[StockReservation, list[StockReservationLine]]], int]:
    repo = Reservations(session, scope.id)
    rows, total = await repo.search(status=status, source_key=source_key, offset=offset, limit=limit)
    lines = await repo.lines_of([r.id for r in rows])
    return [(r, lines[r.id]) for r in rows], total


# -- stocktakes ------------------------------------------------------------------------------------


def _illegal_stocktake(status: str, action: str) -> Conflict:
    zh_action = {"apply": "生效", "cancel": "取消", "count": "修改盘点数"}.get(action, action)
    return Conflict("illegal_stocktake_transition", f"盘点单状态为「{_STATUS_ZH.get(status, status)}」，不能{zh_action}",
                    f"A stocktake in status '{status}' cannot {action}", extra={"current_status": status, "action": action})


async def create_stocktake(session: AsyncSession, scope: TenantScope, location_id: int, note: str | None = None) -> Stocktake:
    loc = await Locations(session, scope.id).get_or_404(_id(location_id, "location_id"))
    st = Stocktakes(session, scope.id).add(Stocktake(location_id=loc.id, status="draft", note=_note(note),
                                                     created_by=current_actor().name[:100], created_at=clock.now()))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="inventory.stocktake.create", object_type="stocktake", object_id=st.id,
                 after={"location_id": loc.id, "note": st.note})
    return st


async def get_stocktake(session: AsyncSession, scope: TenantScope, stocktake_id: int) -> tuple[Stocktake, list[StocktakeLine]]:
    repo = Stocktakes(session, scope.id)
    st = await repo.fresh(stocktake_id)
    if st is None:
        raise NotFound("stocktake_not_found", "盘点单不存在", "Stocktake not found")
    return st, await repo.lines(st.id)


async def list_stocktakes(session: AsyncSession, scope: TenantScope, *, status: str | None = None,
                          location_id: int | None = None, offset: int = 0, limit: int = 20) -> tuple[Sequence[Stocktake], int]:
    return await Stocktakes(session, scope.id).search(status=status, location_id=location_id, offset=offset, limit=limit)


async def _draft(session: AsyncSession, scope: TenantScope, stocktake_id: int, action: str) -> Stocktake:
    st = await Stocktakes(session, scope.id).fresh(stocktake_id, for_update=True)
    if st is None:
        raise NotFound("stocktake_not_found", "盘点单不存在", "Stocktake not found")
    if st.status != "draft":
        raise _illegal_stocktake(st.status, action)
    return st


async def record_counts(session: AsyncSession, scope: TenantScope, stocktake_id: int,
                        counts: Sequence[tuple[int, int | None]]) -> Stocktake:
    """Set counted units per SKU on a draft stocktake; ``None`` removes the SKU's line."""
    if not counts or len(counts) > 500:
        raise _bad("invalid_lines", "每次需提交 1–500 行盘点数", "Send 1–500 counts at a time", "counts")
    wanted: dict[int, int | None] = {}
    for sku_id, counted in counts:
        sku_id = _id(sku_id, "sku_id")
        if counted is not None and (isinstance(counted, bool) or not isinstance(counted, int) or not 0 <= counted <= MAX_UNITS):
            raise _bad("invalid_quantity", f"盘点数需为 0–{MAX_UNITS} 的整数", f"A count is a whole number from 0 to {MAX_UNITS}",
                       "counted")
        wanted[sku_id] = counted
    st = await _draft(session, scope, stocktake_id, "count")
    await _check_skus(session, scope, [s for s, c in wanted.items() if c is not None])
    repo = Stocktakes(session, scope.id)
    existing = {line.sku_id: line for line in await repo.lines(st.id)}
    for sku_id, counted in sorted(wanted.items()):
        line = existing.get(sku_id)
        if counted is None:
            if line is not None:
                await session.delete(line)
        elif line is not None:
            line.counted = counted
        else:
            repo.add_line(StocktakeLine(stocktake_id=st.id, sku_id=sku_id, counted=counted))
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="inventory.stocktake.count", object_type="stocktake", object_id=st.id,
                 after={"counts": {str(s): c for s, c in sorted(wanted.items())}})
    return st


async def apply_stocktake(session: AsyncSession, scope: TenantScope, stocktake_id: int) -> Stocktake:
    """Post the differences between counted and on-hand units, exactly once.

    A count below what is reserved is refused (``409 stocktake_below_reserved``, listing the
    lines): release or ship those orders first. SKUs not counted are left as they are."""
    st = await _draft(session, scope, stocktake_id, "apply")
    repo = Stocktakes(session, scope.id)
    lines = await repo.lines(st.id)
    if not lines:
        raise Conflict("stocktake_empty", "盘点单还没有盘点数", "The stocktake has no counts yet")
    pairs = [(line.sku_id, st.location_id) for line in lines]
    levels = await Levels(session, scope.id).lock_pairs(pairs)
    below = [{"sku_id": ln.sku_id, "counted": ln.counted, "reserved": levels[(ln.sku_id, st.location_id)].reserved}
             for ln in lines if (ln.sku_id, st.location_id) in levels and ln.counted < levels[(ln.sku_id, st.location_id)].reserved]
    if below:
        raise Conflict("stocktake_below_reserved", "盘点数少于已预占的数量，请先处理相关订单",
                       "A count is below the units reserved for orders; ship or cancel those first", extra={"lines": below})
    if not await repo.transition(st.id, "draft", STOCKTAKE_TRANSITIONS[("draft", "apply")]):
        raise _illegal_stocktake("applied", "apply")
    entries = []
    for ln in lines:
        lv = levels.get((ln.sku_id, st.location_id))
        on_hand = lv.on_hand if lv is not None else 0
        ln.system_on_hand = on_hand
        ln.delta = ln.counted - on_hand
        if ln.delta:
            entries.append(_Entry(ln.sku_id, st.location_id, ln.delta, 0, "stocktake", "stocktake", str(st.id),
                                  f"stocktake:{st.id}:{ln.sku_id}", st.note))
    if entries:
        await _post(session, scope, entries)
    await session.flush()
    audit.record(session, tenant_id=scope.id, action="inventory.stocktake.apply", object_type="stocktake", object_id=st.id,
                 after={"location_id": st.location_id, "lines": len(lines), "differences": len(entries)})
    fresh = await repo.fresh(st.id)
    assert fresh is not None
    return fresh


async def cancel_stocktake(session: AsyncSession, scope: TenantScope, stocktake_id: int) -> Stocktake:
    st = await _draft(session, scope, stocktake_id, "cancel")
    repo = Stocktakes(session, scope.id)
    if not await repo.transition(st.id, "draft", STOCKTAKE_TRANSITIONS[("draft", "cancel")]):
        raise _illegal_stocktake("cancelled", "cancel")
    audit.record(session, tenant_id=scope.id, action="inventory.stocktake.cancel", object_type="stocktake", object_id=st.id)
    fresh = await repo.fresh(st.id)
    assert fresh is not None
    return fresh
