"""Demo freight template of 青山茶社: by weight, cheaper to 江浙沪 (the shop is in Hangzhou),
dearer to remote provinces, free from ¥99."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit.tenancy import TenantScope
from siyu.shipping import service
from siyu.shipping.models import FreightTemplate
from siyu.shipping.schemas import ChargeRule, FreightTemplateIn, RegionRule

#: 江浙沪 (and 安徽, next door): 1 kg ¥5, each further kg ¥2.
NEAR = ["31", "32", "33", "34"]
#: Remote: 西藏, 新疆, 青海, 内蒙古, 宁夏, 甘肃, 海南 — 1 kg ¥18, each further kg ¥12.
REMOTE = ["54", "65", "63", "15", "64", "62", "46"]
#: Outside the mainland: 台湾, 香港, 澳门 — 1 kg ¥30, each further kg ¥20.
OFFSHORE = ["71", "81", "82"]


async def seed_shipping(session: AsyncSession, scope: TenantScope) -> FreightTemplate:
    """The tenant's default template (and a free one for gift cards to try on products)."""
    template = await service.create_template(session, scope, FreightTemplateIn(
        name="全国快递（满 99 包邮）", mode="per_weight",
        default_rule=ChargeRule(first=1000, first_fee_fen=800, additional=1000, additional_fee_fen=400),
        region_rules=[
            RegionRule(provinces=NEAR, first=1000, first_fee_fen=500, additional=1000, additional_fee_fen=200),
            RegionRule(provinces=REMOTE, first=1000, first_fee_fen=1800, additional=1000, additional_fee_fen=1200),
            RegionRule(provinces=OFFSHORE, first=1000, first_fee_fen=3000, additional=1000, additional_fee_fen=2000),
        ],
        free_threshold_fen=9900, is_default=True,
    ))
    await service.create_template(session, scope, FreightTemplateIn(name="礼盒包邮", mode="free"))
    return template
