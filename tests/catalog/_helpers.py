"""Helpers shared by the catalog tests."""

from __future__ import annotations

import io
from typing import Any

from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope
from tests.conftest import StaffClient, TenantInfo, unique

ADMIN = "/api/admin/v1/catalog"


def store(shop: str | TenantInfo, path: str) -> str:
    code = shop if isinstance(shop, str) else shop.code
    return f"/api/store/v1/{code}/catalog{path}"


def png(color: tuple[int, int, int] = (40, 120, 90), size: tuple[int, int] = (8, 8)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def matrix_body(title: str | None = None, *, sizes: tuple[str, ...] = ("50g", "100g"),
                packs: tuple[str, ...] | None = ("罐装", "袋装"), base: int = 10000, **extra: Any) -> dict[str, Any]:
    """A product body whose SKUs are every 规格 × 包装 combination, priced base + 1000·i + 100·j."""
    specs = [{"name": "规格", "values": list(sizes)}]
    if packs:
        specs.append({"name": "包装", "values": list(packs)})
    skus = []
    for i, size in enumerate(sizes):
        for j, pack in enumerate(packs or (None,)):
            values = {"规格": size} if pack is None else {"规格": size, "包装": pack}
            skus.append({"spec_values": values, "price_fen": base + 1000 * i + 100 * j, "weight_g": 100 + i})
    body: dict[str, Any] = {"title": title or unique("龙井"), "specs": specs, "skus": skus}
    body.update(extra)
    return body


def single_body(title: str | None = None, price_fen: int = 5000, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title or unique("白茶"), "skus": [{"price_fen": price_fen}]}
    body.update(extra)
    return body


async def create(owner: StaffClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await owner.post(f"{ADMIN}/products", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def publish(owner: StaffClient, product_id: int) -> dict[str, Any]:
    r = await owner.post(f"{ADMIN}/products/{product_id}/status", json={"action": "publish"})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def scope_of(runtime: Runtime, tenant: TenantInfo) -> TenantScope:
    from siyu.tenants import service as tenants_service

    async with runtime.db.uow(readonly=True) as s:
        return tenants_service.scope_of(await tenants_service.get_tenant(s, tenant.id))
