"""English for the points-mall pages: the console's 积分商城 (``/admin/members/mall``) and the
storefront's (``/m/{shop}/member/mall``), plus the audit-log labels of the mall.

Imported by ``siyu.members.views_mall``. Chinese is the source text written in the templates
and views; this catalog only adds the English. Words another catalog already translated keep
that catalog's English, so one Chinese word never reads two ways. Status and kind labels come
from :mod:`siyu.members.mall` itself.
"""

from __future__ import annotations

from siyu.kit.i18n import gettext, register
from siyu.members.mall import KIND_EN, KIND_ZH, STATUS_EN, STATUS_ZH
from siyu.web import i18n_console  # noqa: F401  (the console's words win where both catalogs have them)

_CATALOG = {
    # the members tabs (shared partial; whichever part registers first)
    "会员中心": "Members",
    "会员列表": "Members",
    "会员等级": "Levels",
    "付费会员卡": "Paid cards",
    "积分规则": "Points rules",
    "积分商城": "Points mall",
    "储值": "Stored value",
    "生日礼": "Birthday gifts",
    # console: the list
    "兑换记录": "Exchanges",
    "添加兑换商品": "Add an item",
    "上架状态": "Availability",
    "全部": "All",
    "上架中": "On sale",
    "已下架": "Off sale",
    "搜索": "Search",
    "商品名称": "Product name",
    "筛选": "Filter",
    "清除筛选": "Clear filters",
    "商品": "Item",
    "类型": "Type",
    "兑换价": "Price",
    "库存": "Stock",
    "已兑换": "Exchanged",
    "兑换条件": "Who may exchange",
    "状态": "Status",
    "操作": "Actions",
    "%(n)s 积分": "%(n)s points",
    "%(name)s及以上": "%(name)s and above",
    "等级": "Level",
    "所有会员": "All members",
    "每人限兑 %(n)s 件": "At most %(n)s per member",
    "上架": "Put on sale",
    "下架": "Take off sale",
    "编辑": "Edit",
    "查看": "View",
    "没有符合条件的商品": "No items match",
    "积分商城还没有商品": "The points mall has no items yet",
    "会员用积分（或积分加现金）兑换商品或优惠券。实物兑换生成一笔订单，按订单发货、售后；兑换包邮。":
        "Members exchange points (or points plus cash) for products or coupons. A product exchange becomes an order "
        "that ships and refunds like any other; exchanges ship free.",
    "优惠券类商品在开通优惠券后可用。": "Coupon items become available once coupons are set up.",
    "已上架": "Put on sale",
    # console: the form
    "新建积分商城商品": "New points-mall item",
    "返回积分商城": "Back to the points mall",
    "库存与上下架": "Stock and availability",
    "剩余库存 %(stock)s 件，已兑换 %(sold)s 件": "%(stock)s in stock, %(sold)s exchanged",
    "增减库存": "Add or remove stock",
    "如 50 或 -10": "e.g. 50 or -10",
    "调整库存": "Adjust stock",
    "删除": "Delete",
    "确定删除这个兑换商品吗？": "Delete this item?",
    "库存按增减调整，不会覆盖调整时会员正在兑换的数量。":
        "Stock changes by the amount you enter, so units members exchange meanwhile are never overwritten.",
    "查找商品": "Find a product",
    "商品名称或 SKU 编码": "Product name or SKU code",
    "搜索后在下方「兑换商品」中选择规格。": "Then choose the SKU under Product below.",
    "兑换内容": "What members get",
    "已有会员兑换过这个商品，类型和兑换内容不能再修改。":
        "Members have exchanged this item, so its type, product and coupon can no longer change.",
    "实物商品": "Product",
    "优惠券": "Coupon",
    "优惠券（开通优惠券后可用）": "Coupon (once coupons are set up)",
    "兑换商品": "Product",
    "请选择商品规格": "Choose a SKU",
    "没有找到商品，请先在上方搜索。": "No products found; search above first.",
    "请选择优惠券": "Choose a coupon",
    "名称": "Title",
    "留空时使用商品或优惠券的名称": "Empty: the product's or coupon's name",
    "图片地址": "Image URL",
    "留空时使用商品主图": "Empty: the product's main image",
    "兑换说明": "Description",
    "兑换价与库存": "Price and stock",
    "所需积分（每件）": "Points per unit",
    "加价金额（元/件）": "Cash per unit (yuan)",
    "0 表示纯积分兑换；不能高于商品售价": "0: points only; at most the product's price",
    "兑换库存": "Stock",
    "积分商城可兑换的件数，独立于仓库库存": "Units offered in the points mall, apart from the warehouse stock",
    "兑换规则": "Rules",
    "每人限兑（件）": "Limit per member",
    "0 表示不限": "0: no limit",
    "兑换等级": "Level required",
    "排序": "Sort",
    "数字小的排在前面": "Smaller numbers come first",
    "上架（会员可在积分商城看到并兑换）": "On sale (members see it in the points mall and can exchange it)",
    "保存": "Save",
    "（未上架）": " (not on sale)",
    "所需积分需为 %(lo)s–%(hi)s 的整数": "Points must be a whole number from %(lo)s to %(hi)s",
    "库存需为 %(lo)s–%(hi)s 的整数": "Stock must be a whole number from %(lo)s to %(hi)s",
    "每人限兑需为 %(lo)s–%(hi)s 的整数": "The limit must be a whole number from %(lo)s to %(hi)s",
    "排序需为 %(lo)s–%(hi)s 的整数": "Sort must be a whole number from %(lo)s to %(hi)s",
    "请选择兑换等级": "Choose the level required",
    "加价金额需为最多两位小数的金额": "Cash must be an amount with at most two decimals",
    "已添加积分商城商品": "Item added to the points mall",
    "已保存": "Saved",
    "库存已调整": "Stock adjusted",
    "已删除": "Deleted",
    "请输入要增加或减少的数量，如 50 或 -10": "Enter the units to add or remove, e.g. 50 or -10",
    # console: exchanges
    "兑换状态": "Exchange status",
    "兑换单号": "Exchange no.",
    "兑换时间": "Exchanged at",
    "会员": "Member",
    "数量": "Qty",
    "积分": "Points",
    "现金": "Cash",
    "还没有兑换记录": "No exchanges yet",
    # storefront
    "返回": "Back",
    "我的积分": "My points",
    "登录后查看积分并兑换": "Sign in to see your points and exchange",
    "登录": "Sign in",
    "限兑 %(n)s 件": "Limit %(n)s",
    "剩 %(n)s 件": "%(n)s left",
    "可兑换": "Available to you",
    "加载更多": "Load more",
    "积分商城暂无可兑换的商品": "Nothing to exchange in the points mall yet",
    "去逛逛": "Go shopping",
    "商品详情": "Item",
    "商品价值": "Worth",
    "剩余": "Left",
    "%(n)s 件": "%(n)s",
    "每人限兑": "Limit per member",
    "（已兑 %(n)s 件）": " (you have %(n)s)",
    "%(name)s及以上会员": "Members of %(name)s and above",
    "运费": "Shipping",
    "兑换包邮": "Free shipping",
    "收货地址": "Delivery address",
    "新增收货地址": "Add an address",
    "添加收货地址": "Add a delivery address",
    "还没有收货地址，添加后才能兑换": "Add a delivery address to exchange",
    "兑换数量": "Quantity",
    "所需积分 = 每件积分 × 数量；加价部分在下一步支付。": "Points = points per unit × quantity; the cash part is paid next.",
    "所需积分 = 每件积分 × 数量。": "Points = points per unit × quantity.",
    "立即兑换": "Exchange now",
    "去兑换": "Exchange",
    "查看订单": "View order",
    "去积分商城看看": "Visit the points mall",
    "页面已过期，请重新兑换": "The page has expired; please exchange again",
    "兑换成功，商品将尽快为您发货": "Exchanged: your item will ship soon",
    "兑换成功，优惠券已发放到您的账户": "Exchanged: the coupon is in your account",
    # eligibility reasons (mall.eligibility)
    "已兑完": "Sold out",
    "暂不可兑换": "Not available now",
    "积分不足": "Not enough points",
}

register({zh: en for zh, en in _CATALOG.items() if gettext(zh, "en") == zh})
register({zh: KIND_EN[k] for k, zh in KIND_ZH.items() if gettext(zh, "en") == zh})
register({zh: STATUS_EN[k] for k, zh in STATUS_ZH.items() if gettext(zh, "en") == zh})

# Audit-log labels of the points mall.
register({
    k: v for k, v in {
        "新建积分商城商品": "New points-mall item", "修改积分商城商品": "Change points-mall item",
        "调整积分商城库存": "Adjust points-mall stock", "删除积分商城商品": "Delete points-mall item",
        "积分商城商品": "Points-mall item",
    }.items() if gettext(k, "en") == k
})
