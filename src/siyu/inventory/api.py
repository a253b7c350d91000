"""Admin JSON API of the inventory module: ``/api/admin/v1/inventory/...``.

Reading needs ``catalog.read``; changing stock, locations, thresholds and stocktakes needs
``catalog.write``. Reservations are made by the order flow through the service, never
through this API; it only shows them. Receive and adjust take an idempotency key (the
``source_key`` field or an ``Idempotency-Key`` header): a retry posts nothing and returns
the first movement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query

from siyu.inventory import service
from siyu.inventory.models import StockReservation, StockReservationLine
from siyu.inventory.schemas import (
    AdjustIn,
    AvailabilityOut,
    CountsIn,
    LevelOut,
    LevelUpdate,
    LocationIn,
    LocationOut,
    LocationUpdate,
    MovementOut,
    MovementReason,
    ReceiveIn,
    ReservationLineOut,
    ReservationOut,
    StocktakeIn,
    StocktakeLineOut,
    StocktakeOut,
    StocktakeSummary,
    ThresholdIn,
)
from siyu.kit.errors import ValidationFailed
from siyu.kit.pagination import Page, Pages
from siyu.kit.types import MAX_ID, PathId
from siyu.kit.web import ADMIN_ERRORS, UoW
from siyu.staff.access import StaffPrincipal, require

router = APIRouter(prefix="/api/admin/v1/inventory", tags=["admin: inventory"], responses=ADMIN_ERRORS)

#: Every router of this module; app.py includes them all.
routers: list[APIRouter] = [router]

Reader = Annotated[StaffPrincipal, require("catalog.read")]
Writer = Annotated[StaffPrincipal, require("catalog.write")]
OptId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=64,
                                       description="Same as the body's source_key (the body wins when both are sent)")]


def _level_out(info: service.LevelInfo) -> LevelOut:
    return LevelOut(id=info.id, sku_id=info.sku_id, location_id=info.location_id, location_name=info.location_name,
                    location_status=info.location_status, on_hand=info.on_hand, reserved=info.reserved,
                    available=info.available, low_stock_threshold=info.low_stock_threshold, is_low=info.is_low,
                    updated_at=info.updated_at)


# -- locations -------------------------------------------------------------------------------------


@router.get("/locations", response_model=list[LocationOut], summary="List stock locations (warehouses and stores), in priority order")
async def list_locations(session: UoW, me: Reader,
                         status: Annotated[str | None, Query(pattern="^(active|inactive)$")] = None,
                         kind: Annotated[str | None, Query(pattern="^(warehouse|store)$")] = None) -> list[LocationOut]:
    return [LocationOut.model_validate(loc) for loc in await service.list_locations(session, me.scope, status=status, kind=kind)]


@router.post("/locations", response_model=LocationOut, status_code=201, summary="Create a stock location")
async def create_location(body: LocationIn, session: UoW, me: Writer) -> LocationOut:
    return LocationOut.model_validate(await service.create_location(session, me.scope, body))


@router.get("/locations/{location_id}", response_model=LocationOut, summary="One stock location")
async def get_location(location_id: PathId, session: UoW, me: Reader) -> LocationOut:
    return LocationOut.model_validate(await service.get_location(session, me.scope, location_id))


@router.patch("/locations/{location_id}", response_model=LocationOut,
              summary="Rename, reprioritise, activate or deactivate a stock location")
async def update_location(location_id: PathId, body: LocationUpdate, session: UoW, me: Writer) -> LocationOut:
    return LocationOut.model_validate(await service.update_location(session, me.scope, location_id, body))


# -- levels ----------------------------------------------------------------------------------------


@router.get("/levels", response_model=Page[LevelOut], summary="Stock levels per SKU and location, with filters")
async def list_levels(session: UoW, pages: Pages, me: Reader, sku_id: OptId = None, location_id: OptId = None,
                      stock: Annotated[str | None, Query(pattern="^(in|low|out)$",
                                                         description="in: something available; low: at or below the threshold; out: nothing available")] = None,
                      ) -> Page[LevelOut]:
    rows, total = await service.search_levels(session, me.scope, sku_id=sku_id, location_id=location_id, stock=stock,
                                              offset=pages.offset, limit=pages.page_size)
    return Page(items=[_level_out(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@router.get("/levels/{level_id}", response_model=LevelOut, summary="One stock level")
async def get_level(level_id: PathId, session: UoW, me: Reader) -> LevelOut:
    return _level_out(await service.get_level(session, me.scope, level_id))


@router.patch("/levels/{level_id}", response_model=LevelOut, summary="Set or clear a level's low-stock threshold")
async def update_level(level_id: PathId, body: LevelUpdate, session: UoW, me: Writer) -> LevelOut:
    await service.set_level_threshold(session, me.scope, level_id, body.low_stock_threshold)
    return _level_out(await service.get_level(session, me.scope, level_id))


@router.put("/thresholds", response_model=LevelOut, summary="Set a low-stock threshold by SKU and location")
async def put_threshold(body: ThresholdIn, session: UoW, me: Writer) -> LevelOut:
    level = await service.set_threshold(session, me.scope, body.sku_id, body.location_id, body.threshold)
    return _level_out(await service.get_level(session, me.scope, level.id))


@router.get("/available", response_model=list[AvailabilityOut], summary="Sellable units per SKU over all active locations")
async def get_available(session: UoW, me: Reader,
                        sku_id: Annotated[list[int], Query(min_length=1, max_length=200,
                                                           description="Repeat for several SKUs: ?sku_id=1&sku_id=2")]) -> list[AvailabilityOut]:
    if any(not 0 < s <= MAX_ID for s in sku_id):
        raise ValidationFailed("invalid_id", "SKU 编号无效", "sku_id must be a positive id",
                               fields=[{"field": "sku_id", "message": "must be a positive id"}])
    found = await service.available(session, me.scope, sku_id)
    return [AvailabilityOut(sku_id=s, available=n) for s, n in found.items()]


@router.get("/low-stock", response_model=Page[LevelOut], summary="Levels at or below their low-stock threshold, most urgent first")
async def list_low_stock(session: UoW, pages: Pages, me: Reader, location_id: OptId = None) -> Page[LevelOut]:
    rows, total = await service.search_levels(session, me.scope, location_id=location_id, stock="low",
                                              offset=pages.offset, limit=pages.page_size)
    return Page(items=[_level_out(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@router.post("/receive", response_model=MovementOut, status_code=201, summary="Receive goods into a location (on hand rises)")
async def receive(body: ReceiveIn, session: UoW, me: Writer, idempotency_key: IdemKey = None) -> MovementOut:
    mv = await service.receive(session, me.scope, body.sku_id, body.location_id, body.qty, body.note,
                               body.source_key or idempotency_key)
    return MovementOut.model_validate(mv)


@router.post("/adjust", response_model=MovementOut, status_code=201,
             summary="Correct on-hand units with a reason (a decrease may not touch reserved units)")
async def adjust(body: AdjustIn, session: UoW, me: Writer, idempotency_key: IdemKey = None) -> MovementOut:
    mv = await service.adjust(session, me.scope, body.sku_id, body.location_id, body.delta, body.reason,
                              body.source_key or idempotency_key)
    return MovementOut.model_validate(mv)


# -- ledger and reservations -----------------------------------------------------------------------


@router.get("/movements", response_model=Page[MovementOut], summary="The stock ledger, newest first, with filters")
async def list_movements(session: UoW, pages: Pages, me: Reader, sku_id: OptId = None, location_id: OptId = None,
                         reason: MovementReason | None = None,
                         source: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:@/#-]+$",
                                                             description="Source id, e.g. order:1234 or a stocktake id")] = None,
                         created_from: Annotated[datetime | None, Query(description="Inclusive, ISO 8601")] = None,
                         created_to: Annotated[datetime | None, Query(description="Exclusive, ISO 8601")] = None,
                         ) -> Page[MovementOut]:
    rows, total = await service.list_movements(session, me.scope, sku_id=sku_id, location_id=location_id, reason=reason,
                                               source=source, created_from=_aware(created_from), created_to=_aware(created_to),
                                               offset=pages.offset, limit=pages.page_size)
    return Page(items=[MovementOut.model_validate(m) for m in rows], total=total, page=pages.page, page_size=pages.page_size)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _reservation_out(res: StockReservation, lines: Sequence[StockReservationLine]) -> ReservationOut:
    return ReservationOut(id=res.id, source_key=res.source_key, status=res.status, created_at=res.created_at,
                          closed_at=res.closed_at, lines=[ReservationLineOut.model_validate(ln) for ln in lines])


@router.get("/reservations", response_model=Page[ReservationOut], summary="Stock reservations of orders, newest first")
async def list_reservations(session: UoW, pages: Pages, me: Reader,
                            status: Annotated[str | None, Query(pattern="^(active|released|committed)$")] = None,
                            source_key: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:@/#-]+$")] = None,
                            ) -> Page[ReservationOut]:
    rows, total = await service.list_reservations(session, me.scope, status=status, source_key=source_key,
                                                  offset=pages.offset, limit=pages.page_size)
    return Page(items=[_reservation_out(r, ln) for r, ln in rows], total=total, page=pages.page, page_size=pages.page_size)


@router.get("/reservations/{reservation_id}", response_model=ReservationOut, summary="One stock reservation with its lines")
async def get_reservation(reservation_id: PathId, session: UoW, me: Reader) -> ReservationOut:
    res, lines = await service.get_reservation(session, me.scope, reservation_id)
    return _reservation_out(res, lines)


# -- stocktakes ------------------------------------------------------------------------------------


async def _stocktake_out(session: UoW, me: StaffPrincipal, stocktake_id: int) -> StocktakeOut:
    st, lines = await service.get_stocktake(session, me.scope, stocktake_id)
    return StocktakeOut(id=st.id, location_id=st.location_id, status=st.status, note=st.note, created_by=st.created_by,
                        created_at=st.created_at, applied_at=st.applied_at,
                        lines=[StocktakeLineOut.model_validate(ln) for ln in lines])


@router.get("/stocktakes", response_model=Page[StocktakeSummary], summary="Stocktakes, newest first")
async def list_stocktakes(session: UoW, pages: Pages, me: Reader,
                          status: Annotated[str | None, Query(pattern="^(draft|applied|cancelled)$")] = None,
                          location_id: OptId = None) -> Page[StocktakeSummary]:
    rows, total = await service.list_stocktakes(session, me.scope, status=status, location_id=location_id,
                                                offset=pages.offset, limit=pages.page_size)
    return Page(items=[StocktakeSummary.model_validate(r) for r in rows], total=total, page=pages.page, page_size=pages.page_size)


@router.post("/stocktakes", response_model=StocktakeOut, status_code=201, summary="Start a stocktake of one location")
async def create_stocktake(body: StocktakeIn, session: UoW, me: Writer) -> StocktakeOut:
    st = await service.create_stocktake(session, me.scope, body.location_id, body.note)
    return await _stocktake_out(session, me, st.id)


@router.get("/stocktakes/{stocktake_id}", response_model=StocktakeOut, summary="One stocktake with its counts")
async def get_stocktake(stocktake_id: PathId, session: UoW, me: Reader) -> StocktakeOut:
    return await _stocktake_out(session, me, stocktake_id)


@router.put("/stocktakes/{stocktake_id}/counts", response_model=StocktakeOut,
            summary="Record counted units per SKU on a draft stocktake (counted: null removes a line)")
async def record_counts(stocktake_id: PathId, body: CountsIn, session: UoW, me: Writer) -> StocktakeOut:
    await service.record_counts(session, me.scope, stocktake_id, [(c.sku_id, c.counted) for c in body.counts])
    return await _stocktake_out(session, me, stocktake_id)


@router.post("/stocktakes/{stocktake_id}/apply", response_model=StocktakeOut,
             summary="Apply a stocktake: post the differences to the ledger, exactly once")
async def apply_stocktake(stocktake_id: PathId, session: UoW, me: Writer) -> StocktakeOut:
    await service.apply_stocktake(session, me.scope, stocktake_id)
    return await _stocktake_out(session, me, stocktake_id)


@router.post("/stocktakes/{stocktake_id}/cancel", response_model=StocktakeOut, summary="Cancel a draft stocktake")
async def cancel_stocktake(stocktake_id: PathId, session: UoW, me: Writer) -> StocktakeOut:
    await service.cancel_stocktake(session, me.scope, stocktake_id)
    return await _stocktake_out(session, me, stocktake_id)

