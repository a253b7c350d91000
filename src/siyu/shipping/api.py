"""Admin API of freight templates (``/api/admin/v1/shipping/...``): list, create, replace,
make default, delete, and a quote to try the templates on a cart. Reading needs
``orders.read``, writing ``orders.write``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from siyu.kit.types import PathId
from siyu.kit.web import ADMIN_ERRORS, UoW
from siyu.shipping import service
from siyu.shipping.models import FreightTemplate
from siyu.shipping.schemas import (
    FreightQuoteOut,
    FreightTemplateIn,
    FreightTemplateOut,
    QuoteIn,
    TemplateChargeOut,
)
from siyu.staff.access import StaffPrincipal, require

admin = APIRouter(prefix="/api/admin/v1/shipping", tags=["admin: shipping"], responses=ADMIN_ERRORS)

#: Every router of this module; app.py includes them all.
routers: list[APIRouter] = [admin]

Reader = Annotated[StaffPrincipal, require("orders.read")]
Writer = Annotated[StaffPrincipal, require("orders.write")]


def template_out(t: FreightTemplate) -> FreightTemplateOut:
    return FreightTemplateOut(**service.template_view(t))


@admin.get("/freight-templates", response_model=list[FreightTemplateOut], summary="Every freight template, the default first")
async def list_templates(session: UoW, me: Reader) -> list[FreightTemplateOut]:
    return [template_out(t) for t in await service.list_templates(session, me.scope)]


@admin.post("/freight-templates", response_model=FreightTemplateOut, status_code=201,
            summary="Create a freight template (the first one becomes the default)")
async def create_template(body: FreightTemplateIn, session: UoW, me: Writer) -> FreightTemplateOut:
    return template_out(await service.create_template(session, me.scope, body))


@admin.get("/freight-templates/{template_id}", response_model=FreightTemplateOut, summary="One freight template")
async def get_template(template_id: PathId, session: UoW, me: Reader) -> FreightTemplateOut:
    return template_out(await service.get_template(session, me.scope, template_id))


@admin.put("/freight-templates/{template_id}", response_model=FreightTemplateOut,
           summary="Replace a freight template (un-marking the default is 409 default_template)")
async def update_template(template_id: PathId, body: FreightTemplateIn, session: UoW, me: Writer) -> FreightTemplateOut:
    return template_out(await service.update_template(session, me.scope, template_id, body))


@admin.post("/freight-templates/{template_id}/default", response_model=FreightTemplateOut,
            summary="Make a template the tenant's default")
async def set_default(template_id: PathId, session: UoW, me: Writer) -> FreightTemplateOut:
    return template_out(await service.set_default_template(session, me.scope, template_id))


@admin.delete("/freight-templates/{template_id}", status_code=204,
              summary="Delete a freight template (the default is 409 default_template)")
async def delete_template(template_id: PathId, session: UoW, me: Writer) -> Response:
    await service.delete_template(session, me.scope, template_id)
    return Response(status_code=204)


@admin.post("/quote", response_model=FreightQuoteOut, summary="Try the freight of a cart to a province (changes nothing)")
async def quote(body: QuoteIn, session: UoW, me: Reader) -> FreightQuoteOut:
    lines = [service.FreightLine(sku_id=ln.sku_id, quantity=ln.quantity, weight_g=ln.weight_g, goods_fen=ln.goods_fen,
                                 requires_shipping=ln.requires_shipping, template_id=ln.template_id) for ln in body.lines]
    q = await service.quote(session, me.scope, lines=lines, province_code=body.province_code)
    return FreightQuoteOut(
        freight_fen=q.freight_fen, free_shipping=q.free_shipping, reason_zh=q.reason_zh, reason_en=q.reason_en,
        per_template=[TemplateChargeOut(template_id=c.template_id, template_name=c.template_name, mode=c.mode,
                                        sku_ids=c.sku_ids, units=c.units, goods_fen=c.goods_fen, freight_fen=c.freight_fen,
                                        free_shipping=c.free_shipping, reason_zh=c.reason_zh, reason_en=c.reason_en)
                      for c in q.per_template],
    )
