"""Product statuses: the transition table, illegal moves (409 with a stable code), and the
sweeper that publishes scheduled products once, however many sweepers run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import product as cartesian

import pytest

from siyu.catalog import service
from siyu.catalog.tasks import publish_scheduled
from siyu.kit import clock
from siyu.kit.jobs import registered_sweepers
from tests.catalog._helpers import ADMIN, create, matrix_body, single_body

ACTIONS = ("publish", "schedule", "unpublish")


def _iso(dt: datetime) -> str:
    return dt.isoformat()


async def _to(owner, pid: int, status: str) -> None:  # type: ignore[no-untyped-def]
    """Bring a fresh draft into ``status`` through legal moves."""
    steps = {"draft": [], "on_sale": ["publish"], "off_sale": ["publish", "unpublish"], "scheduled": ["schedule"]}[status]
    for action in steps:
        body = {"action": action}
        if action == "schedule":
            body["on_sale_at"] = _iso(clock.now() + timedelta(hours=2))
        r = await owner.post(f"{ADMIN}/products/{pid}/status", json=body)
        assert r.status_code == 200, r.text


async def test_every_status_and_action_follows_the_table(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    for status, action in cartesian(service.STATUSES, ACTIONS):
        p = await create(owner, single_body())
        await _to(owner, p["id"], status)
        body = {"action": action}
        if action == "schedule":
            body["on_sale_at"] = _iso(clock.now() + timedelta(days=1))
        r = await owner.post(f"{ADMIN}/products/{p['id']}/status", json=body)
        expected = service.TRANSITIONS.get((status, action))
        if expected is None:
            assert r.status_code == 409, (status, action, r.text)
            assert r.json()["code"] == "illegal_product_transition"
            assert r.json()["status"] == 409 and r.json()["product_status"] == status and r.json()["action"] == action
            assert (await owner.get(f"{ADMIN}/products/{p['id']}")).json()["status"] == status
        else:
            assert r.status_code == 200, (status, action, r.text)
            assert r.json()["status"] == expected


async def test_the_table_is_what_the_docs_say() -> None:
    assert service.TRANSITIONS == {
        ("draft", "publish"): "on_sale", ("draft", "schedule"): "scheduled",
        ("scheduled", "publish"): "on_sale", ("scheduled", "schedule"): "scheduled", ("scheduled", "unpublish"): "off_sale",
        ("on_sale", "unpublish"): "off_sale",
        ("off_sale", "publish"): "on_sale", ("off_sale", "schedule"): "scheduled",
    }


async def test_going_on_sale_needs_an_active_sku_and_a_future_time(tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    p = await create(owner, {"title": "全部停用", "skus": [{"price_fen": 100, "enabled": False}]})
    assert p["sku_count"] == 0 and p["price_min_fen"] == 0
    for body in ({"action": "publish"}, {"action": "schedule", "on_sale_at": _iso(clock.now() + timedelta(hours=1))}):
        r = await owner.post(f"{ADMIN}/products/{p['id']}/status", json=body)
        assert r.status_code == 409 and r.json()["code"] == "product_needs_sku"
    q = await create(owner, single_body())
    for when, code in ((clock.now() - timedelta(minutes=1), "on_sale_at_in_past"),
                       (clock.now() + timedelta(days=400), "on_sale_at_too_far")):
        r = await owner.post(f"{ADMIN}/products/{q['id']}/status", json={"action": "schedule", "on_sale_at": _iso(when)})
        assert r.status_code == 422 and r.json()["code"] == code
    r = await owner.post(f"{ADMIN}/products/{q['id']}/status", json={"action": "schedule"})
    assert r.status_code == 422
    r = await owner.post(f"{ADMIN}/products/{q['id']}/status", json={"action": "schedule", "on_sale_at": "2030-01-01T10:00:00"})
    assert r.status_code == 422  # a time without a zone is ambiguous
    r = await owner.post(f"{ADMIN}/products/{q['id']}/status", json={"action": "archive"})
    assert r.status_code == 422
    # An on-sale product cannot lose its last active SKU.
    await _to(owner, q["id"], "on_sale")
    r = await owner.patch(f"{ADMIN}/products/{q['id']}", json={"skus": [{"price_fen": 1, "enabled": False}]})
    assert r.status_code == 409 and r.json()["code"] == "product_needs_sku"
    assert (await owner.get(f"{ADMIN}/products/{q['id']}")).json()["sku_count"] == 1


async def test_the_sweeper_publishes_due_products_once(runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    assert "catalog.publish_scheduled" in {s.name for s in registered_sweepers()}
    owner = await login_as(await tenant_factory())
    soon = await create(owner, matrix_body())
    later = await create(owner, single_body())
    when = clock.now() + timedelta(minutes=30)
    for p, at in ((soon, when), (later, when + timedelta(days=2))):
        r = await owner.post(f"{ADMIN}/products/{p['id']}/status", json={"action": "schedule", "on_sale_at": _iso(at)})
        assert r.status_code == 200 and r.json()["status"] == "scheduled"
    assert datetime.fromisoformat(r.json()["on_sale_at"]).astimezone(UTC) == (when + timedelta(days=2)).astimezone(UTC)

    await publish_scheduled(runtime)  # not due yet
    assert (await owner.get(f"{ADMIN}/products/{soon['id']}")).json()["status"] == "scheduled"

    clock.travel(timedelta(minutes=31))
    # Two sweepers at once (two processes): each due product is published exactly once.
    counts = await asyncio.gather(publish_scheduled(runtime), publish_scheduled(runtime))
    assert sum(counts) >= 1
    assert (await owner.get(f"{ADMIN}/products/{soon['id']}")).json()["status"] == "on_sale"
    assert (await owner.get(f"{ADMIN}/products/{later['id']}")).json()["status"] == "scheduled"
    r = await owner.get("/api/admin/v1/audit-log", params={"action": "product.status"})
    published = [e for e in r.json()["items"] if e["object_id"] == str(soon["id"]) and e["after"]["status"] == "on_sale"]
    assert len(published) == 1 and published[0]["actor_kind"] == "system"
    assert await publish_scheduled(runtime) == 0 or True  # other tenants' products may be due too
    r = await owner.get("/api/admin/v1/audit-log", params={"action": "product.status"})
    assert len([e for e in r.json()["items"] if e["object_id"] == str(soon["id"]) and e["after"]["status"] == "on_sale"]) == 1

    # Unpublished before its time: the sweeper leaves it alone.
    r = await owner.post(f"{ADMIN}/products/{later['id']}/status", json={"action": "unpublish"})
    assert r.status_code == 200 and r.json()["status"] == "off_sale" and r.json()["on_sale_at"] is None
    clock.travel(timedelta(days=3))
    await publish_scheduled(runtime)
    assert (await owner.get(f"{ADMIN}/products/{later['id']}")).json()["status"] == "off_sale"


async def test_publish_due_is_a_conditional_update(runtime, tenant_factory, login_as) -> None:  # type: ignore[no-untyped-def]
    """Publishing the same due product from two transactions: one wins, the other does nothing."""
    owner = await login_as(await tenant_factory())
    p = await create(owner, single_body())
    r = await owner.post(f"{ADMIN}/products/{p['id']}/status",
                         json={"action": "schedule", "on_sale_at": _iso(clock.now() + timedelta(seconds=30))})
    assert r.status_code == 200
    clock.travel(timedelta(minutes=1))
    from siyu.catalog.repository import DueSchedules

    async with runtime.db.uow() as s:
        first = await DueSchedules(s).publish_if_due(p["id"], clock.now())
    async with runtime.db.uow() as s:
        second = await DueSchedules(s).publish_if_due(p["id"], clock.now())
    assert (first, second) == (True, False)


@pytest.mark.parametrize("status", ["draft", "off_sale"])
async def test_scheduling_again_moves_the_time(tenant_factory, login_as, status) -> None:  # type: ignore[no-untyped-def]
    owner = await login_as(await tenant_factory())
    p = await create(owner, single_body())
    await _to(owner, p["id"], status)
    for hours in (1, 5):
        at = clock.now() + timedelta(hours=hours)
        r = await owner.post(f"{ADMIN}/products/{p['id']}/status", json={"action": "schedule", "on_sale_at": _iso(at)})
        assert r.status_code == 200 and r.json()["status"] == "scheduled"
        assert datetime.fromisoformat(r.json()["on_sale_at"]).astimezone(UTC) == at.astimezone(UTC)
