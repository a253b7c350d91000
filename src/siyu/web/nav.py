"""The console navigation: every module of the architecture, built or coming."""

from __future__ import annotations

from dataclasses import dataclass

from siyu.staff.access import StaffPrincipal


@dataclass(frozen=True)
class NavItem:
    title: str
    href: str
    icon: str = ""
    permission: str | None = None
    coming: bool = False
    active: bool = False


@dataclass(frozen=True)
class NavGroup:
    title: str
    items: list[NavItem]


#: Modules that are built: code → (title, console address, permission to open it).
BUILT: dict[str, tuple[str, str, str]] = {
    "customers": ("客户列表", "/admin/customers", "customers.read"),
    "catalog": ("商品管理", "/admin/catalog", "catalog.read"),
    "orders": ("订单管理", "/admin/orders", "orders.read"),
    "members": ("会员中心", "/admin/members", "members.read"),
}

#: Modules that are not built yet, with what they will do (shown on their "coming" page).
COMING: dict[str, tuple[str, str, str]] = {
    "marketing": ("营销中心", "Marketing", "优惠券、限时折扣、满减与秒杀。"),
    "scrm": ("私域运营", "Private-traffic CRM", "渠道活码、客户标签、人群分层与跟进。"),
    "live": ("直播", "Live", "直播间带货与实时互动。"),
    "distribution": ("分销与供应链", "Distribution", "分销员、团长、供应商入驻与分账。"),
    "finance": ("财务", "Finance", "复式记账、结算、分账与提现。"),
    "analytics": ("数据中心", "Analytics", "GMV、客单价、复购率、渠道获客成本与 LTV。"),
}


def console_nav(me: StaffPrincipal, path: str) -> list[NavGroup]:
    groups = [
        NavGroup("概览", [NavItem("工作台", "/admin", "🏠")]),
        NavGroup("经营", [
            NavItem("商品管理", "/admin/catalog", "📦", permission="catalog.read"),
            NavItem("库存", "/admin/inventory", "🏷️", permission="catalog.read"),
            NavItem("订单管理", "/admin/orders", "🧾", permission="orders.read"),
            NavItem("售后", "/admin/orders/after-sales", "↩️", permission="orders.read"),
            NavItem("营销中心", "/admin/coming/marketing", "🎯", coming=True),
            NavItem("直播", "/admin/coming/live", "📺", coming=True),
        ]),
        NavGroup("客户", [
            NavItem("客户列表", "/admin/customers", "👥", permission="customers.read"),
            NavItem("私域运营", "/admin/coming/scrm", "💬", coming=True),
            NavItem("会员中心", "/admin/members", "💳", permission="members.read"),
            NavItem("分销与供应链", "/admin/coming/distribution", "🤝", coming=True),
        ]),
        NavGroup("资金与数据", [
            NavItem("支付记录", "/admin/payments", "💳", permission="finance.read"),
            NavItem("财务", "/admin/coming/finance", "💰", coming=True),
            NavItem("数据中心", "/admin/coming/analytics", "📈", coming=True),
        ]),
        NavGroup("设置", [
            NavItem("店铺设置", "/admin/settings", "⚙️", permission="settings.read"),
            NavItem("门店", "/admin/stores", "🏬", permission="stores.read"),
            NavItem("运费模板", "/admin/shipping/freight-templates", "🚚", permission="orders.read"),
            NavItem("员工", "/admin/staff", "🧑‍💼", permission="staff.read"),
            NavItem("角色与权限", "/admin/roles", "🔐", permission="staff.read"),
            NavItem("API 令牌", "/admin/tokens", "🔑", permission="tokens.manage"),
            NavItem("操作日志", "/admin/audit", "📜", permission="audit.read"),
            NavItem("短信记录", "/admin/sms", "✉️", permission="sms.read"),
        ]),
    ]
    # The longest entry that the path falls under is the active one (/admin/orders/after-sales
    # is 售后, not 订单管理).
    under = [it.href for g in groups for it in g.items
             if path == it.href or (it.href != "/admin" and path.startswith(it.href.rstrip("/") + "/"))]
    current = max(under, key=len, default="")
    out = []
    for g in groups:
        items = []
        for it in g.items:
            if it.permission and not me.can(it.permission):
                continue
            items.append(NavItem(it.title, it.href, it.icon, it.permission, it.coming, it.href == current))
        if items:
            out.append(NavGroup(g.title, items))
    return out
