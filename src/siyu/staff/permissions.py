"""Every permission in Siyu, grouped as the role editor shows them, and the default roles.

Modules that are not built yet already have their permissions here so that roles created
today keep working when the module lands.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Permission:
    code: str
    zh: str
    en: str
    group: str


_GROUPS = {
    "settings": ("店铺设置", "Settings"),
    "staff": ("员工与权限", "Staff & roles"),
    "customers": ("客户", "Customers"),
    "catalog": ("商品", "Catalog"),
    "orders": ("订单", "Orders"),
    "marketing": ("营销", "Marketing"),
    "members": ("会员", "Members"),
    "scrm": ("私域运营", "Private-traffic CRM"),
    "distribution": ("分销与供应链", "Distribution & suppliers"),
    "finance": ("财务", "Finance"),
    "analytics": ("数据", "Analytics"),
}

PERMISSIONS: list[Permission] = [
    Permission("settings.read", "查看店铺设置", "View settings", "settings"),
    Permission("settings.write", "修改店铺设置", "Change settings", "settings"),
    Permission("stores.read", "查看门店", "View stores", "settings"),
    Permission("stores.write", "管理门店", "Manage stores", "settings"),
    Permission("sms.read", "查看短信记录", "View SMS outbox", "settings"),
    Permission("staff.read", "查看员工", "View staff", "staff"),
    Permission("staff.write", "管理员工", "Manage staff", "staff"),
    Permission("roles.write", "管理角色", "Manage roles", "staff"),
    Permission("tokens.manage", "管理 API 令牌", "Manage API tokens", "staff"),
    Permission("audit.read", "查看操作日志", "View audit log", "staff"),
    Permission("customers.read", "查看客户", "View customers", "customers"),
    Permission("customers.write", "编辑客户", "Edit customers", "customers"),
    Permission("customers.phone", "查看完整手机号", "See full phone numbers", "customers"),
    Permission("catalog.read", "查看商品", "View products", "catalog"),
    Permission("catalog.write", "管理商品与库存", "Manage products and stock", "catalog"),
    Permission("orders.read", "查看订单", "View orders", "orders"),
    Permission("orders.write", "处理订单与发货", "Process and ship orders", "orders"),
    Permission("aftersales.manage", "处理售后退款", "Handle after-sales and refunds", "orders"),
    Permission("marketing.read", "查看营销活动", "View campaigns", "marketing"),
    Permission("marketing.write", "管理营销活动", "Manage campaigns", "marketing"),
    Permission("members.read", "查看会员", "View members", "members"),
    Permission("members.write", "管理会员、积分与储值", "Manage members, points and stored value", "members"),
    Permission("scrm.read", "查看渠道、标签与人群", "View channels, tags and segments", "scrm"),
    Permission("scrm.write", "管理渠道、标签与人群", "Manage channels, tags and segments", "scrm"),
    Permission("scrm.followup", "客户跟进", "Follow up customers", "scrm"),
    Permission("distribution.read", "查看分销与供应商", "View distribution and suppliers", "distribution"),
    Permission("distribution.write", "管理分销与供应商", "Manage distribution and suppliers", "distribution"),
    Permission("finance.read", "查看财务", "View finance", "finance"),
    Permission("finance.write", "审核提现与结算", "Approve withdrawals and settlements", "finance"),
    Permission("analytics.read", "查看数据报表", "View reports", "analytics"),
]

ALL_CODES: frozenset[str] = frozenset(p.code for p in PERMISSIONS)
BY_CODE = {p.code: p for p in PERMISSIONS}


def grouped() -> list[tuple[str, str, str, list[Permission]]]:
    """(group code, zh, en, permissions) in display order."""
    out = []
    for g, (zh, en) in _GROUPS.items():
        out.append((g, zh, en, [p for p in PERMISSIONS if p.group == g]))
    return out


def _codes(*prefixes: str, extra: tuple[str, ...] = ()) -> list[str]:
    return sorted({p.code for p in PERMISSIONS if p.code.split(".")[0] in prefixes} | set(extra))


#: code → (zh name, en name, permissions). ``owner`` always has every permission and cannot
#: be edited, so a tenant can never lock itself out of its own console.
DEFAULT_ROLES: dict[str, tuple[str, str, list[str]]] = {
    "owner": ("店主", "Owner", sorted(ALL_CODES)),
    "admin": ("管理员", "Administrator", sorted(ALL_CODES)),
    "operator": (
        "运营",
        "Operator",
        _codes("catalog", "marketing", "members", "scrm", "customers", extra=("orders.read", "analytics.read", "stores.read", "settings.read")),
    ),
    "customer_service": (
        "客服",
        "Customer service",
        ["customers.read", "orders.read", "orders.write", "aftersales.manage", "scrm.read", "scrm.followup", "members.read", "sms.read"],
    ),
    "finance": ("财务", "Finance", _codes("finance", extra=("orders.read", "analytics.read", "audit.read", "distribution.read"))),
    "store_guide": ("导购", "Store guide", ["customers.read", "scrm.followup", "orders.read", "catalog.read", "stores.read"]),
}
