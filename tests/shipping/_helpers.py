"""Helpers shared by the shipping tests."""

from __future__ import annotations

from typing import Any

from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope
from siyu.shipping import service
from siyu.shipping.schemas import FreightTemplateIn
from tests.conftest import TenantInfo

ADMIN = "/api/admin/v1/shipping"
TEMPLATES = f"{ADMIN}/freight-templates"


async def scope_of(runtime: Runtime, tenant: TenantInfo) -> TenantScope:
    from siyu.tenants import service as tenants_service

    async with runtime.db.uow(readonly=True) as s:
        return tenants_service.scope_of(await tenants_service.get_tenant(s, tenant.id))


def rule(first: int, first_fee: int, additional: int, additional_fee: int, provinces: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"first": first, "first_fee_fen": first_fee, "additional": additional,
                           "additional_fee_fen": additional_fee}
    if provinces is not None:
        out["provinces"] = provinces
    return out


async def make_template(runtime: Runtime, scope: TenantScope, **body: Any) -> int:
    async with runtime.db.uow() as s:
        t = await service.create_template(s, scope, FreightTemplateIn(**body))
        return t.id


def line(sku_id: int = 1, quantity: int = 1, weight_g: int = 0, goods_fen: int = 1000, *, ships: bool = True,
         template_id: int | None = None) -> service.FreightLine:
    return service.FreightLine(sku_id=sku_id, quantity=quantity, weight_g=weight_g, goods_fen=goods_fen,
                               requires_shipping=ships, template_id=template_id)


async def quote(runtime: Runtime, scope: TenantScope, lines: list[service.FreightLine], province: str = "11") -> service.FreightQuote:
    async with runtime.db.uow(readonly=True) as s:
        return await service.quote(s, scope, lines=lines, province_code=province)
