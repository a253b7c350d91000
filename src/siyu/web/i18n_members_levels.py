"""English for the pages of member levels and members: the console's 会员列表, a member's page,
会员等级 with its editor and rules, 会员价; the storefront's member centre, 等级权益 and
成长值明细; the 优先发货 badge on orders; the audit-log labels of levels.

Imported by ``siyu.members.views_levels``. Chinese is the source text; words another catalog
already translated keep that catalog's English, so one Chinese word never reads two ways.
"""

from __future__ import annotations

from siyu.kit.i18n import gettext, register
from siyu.web import i18n_console  # noqa: F401  (the console's words win where both catalogs have them)

_CATALOG = {
    # sub-navigation of 会员中心 (every part's pages show it)
    "会员列表": "Members",
    "会员等级": "Levels",
    "等级": "Level",
    "付费会员卡": "Paid cards",
    "积分规则": "Points rules",
    "积分商城": "Points mall",
    "储值": "Stored value",
    "生日礼": "Birthday gifts",
    # shared words
    "成长值": "Growth",
    "积分": "Points",
    "余额": "Balance",
    "未知": "Unknown",
    "男": "Male",
    "女": "Female",
    "生日": "Birthday",
    "性别": "Gender",
    "地区": "Region",
    "会员价": "Member prices",
    "优先发货": "Priority shipping",
    "会员等级享受优先发货": "The member's level ships first",
    "（付费）": " (paid card)",
    # growth kinds
    "注册": "Sign-up",
    "首次下单": "First order",
    "签到": "Check-in",
    "每日签到": "Daily check-in",
    "评价": "Review",
    "订单消费": "Order paid",
    "售后退款扣回": "Taken back on refund",
    "人工调整": "Manual adjustment",
    "账号合并转入": "Merged in from another account",
    "账号合并转出": "Merged into another account",
    # review policies
    "不降级": "Never downgrade",
    "每月": "Monthly",
    "每季度": "Quarterly",
    "每年": "Yearly",
    # member list
    "注册日期从": "Registered from",
    "生日月份": "Birthday month",
    "%(n)s 月": "Month %(n)s",
    "积分从": "Points from",
    "没有符合条件的会员": "No members match these filters",
    "还没有会员。顾客注册后自动成为会员": "No members yet. Customers become members when they sign up",
    "已合并": "Merged",
    # member page
    "会员": "Member",
    "返回会员列表": "Back to members",
    "客户资料": "Customer profile",
    "该客户已合并到客户 #%(id)s，成长值、积分等已转入该客户。":
        "This customer was merged into customer #%(id)s; growth, points and the rest moved there.",
    "调整成长值": "Adjust growth",
    "调整积分": "Adjust points",
    "调整余额": "Adjust balance",
    "储值余额": "Stored value",
    "本金 %(p)s · 赠送 %(b)s": "Principal %(p)s · bonus %(b)s",
    "本金 %(p)s，赠送 %(b)s": "principal %(p)s, bonus %(b)s",
    "当前等级": "Current level",
    "付费会员卡有效期至 %(date)s": "Paid card valid until %(date)s",
    "成长等级": "Level by growth",
    "累计成长值": "Lifetime growth",
    "计入定级的成长值": "Growth that counts",
    "最近 %(n)s 天": "last %(n)s days",
    "下一等级": "Next level",
    "还差 %(n)s": "%(n)s to go",
    "等级变动时间": "Level changed",
    "下次评定": "Next review",
    "会员资料": "Member profile",
    "编辑": "Edit",
    "未填写": "Not given",
    "明细": "Statements",
    "购买单号": "Purchase no.",
    "会员卡": "Card",
    "有效期": "Valid",
    "还没有购买付费会员卡": "No paid cards bought yet",
    "类型": "Type",
    "变动": "Change",
    "变动后": "After",
    "说明": "Description",
    "还没有记录": "Nothing yet",
    "更早的记录": "Older entries",
    "正数增加、负数扣减；成长值不会低于 0。增加后达到门槛立即升级，扣减后不再满足当前等级时立即降级。":
        "A positive number adds, a negative one takes away; growth never goes below 0. Reaching a threshold "
        "upgrades at once; falling below the current level's threshold downgrades at once.",
    "调整数量": "Amount",
    "调整原因": "Reason",
    "确认调整": "Adjust",
    "编辑会员资料": "Edit member profile",
    "顾客只能自己填写一次生日，员工修改会记入操作日志。":
        "Shoppers can set their birthday once; changes by staff are written to the audit log.",
    "正数增加、负数扣减；积分不会低于 0。": "A positive number adds, a negative one takes away; points never go below 0.",
    "正数增加、负数扣减（元）；余额不会低于 0。本金可申请退款，赠送金不可退。":
        "A positive amount (yuan) adds, a negative one takes away; the balance never goes below 0. Principal can be "
        "refunded on request, bonus cannot.",
    "账户": "Account",
    "赠送金": "Bonus",
    "本金": "Principal",
    "调整金额（元）": "Amount (yuan)",
    "调整数量需为非零整数，绝对值不超过 %(n)s": "The amount must be a non-zero whole number within ±%(n)s",
    "请填写调整原因": "Give a reason",
    "已调整成长值 %(n)s": "Growth adjusted by %(n)s",
    "请选择正确的日期": "Choose a valid date",
    "请选择性别": "Choose a gender",
    "已保存会员资料": "Member profile saved",
    # levels
    "新建等级": "New level",
    "会员按成长值自动升级；成长值来自实际支付的金额（含储值）和注册、首单、签到、评价等行为。「仅付费获得」的等级只能通过付费会员卡获得。会员享受成长等级与有效付费会员卡等级中较高的一个。":
        "Members move up by growth, earned from money paid (stored value included) and from signing up, the first "
        "order, check-ins and reviews. Paid-only levels are reached only through a paid card. A member enjoys the "
        "higher of its growth level and a valid paid card's level.",
    "序号": "Rank",
    "等级名称": "Level name",
    "成长值门槛": "Growth threshold",
    "权益": "Benefits",
    "会员数": "Members",
    "初始等级": "Base level",
    "仅付费获得": "Paid only",
    "确定删除这个会员等级吗？": "Delete this level?",
    "成长值规则": "Growth rules",
    "每消费 1 元获得成长值": "Growth per yuan paid",
    "按订单实际支付金额（含储值支付，不含积分抵扣）计算，支付成功后到账；退款时按比例扣回":
        "Counted on what an order really paid (stored value included, points not) once it is paid; "
        "taken back in proportion on refunds",
    "等级评定": "Level review",
    "等级评定周期": "Review schedule",
    "统计最近天数": "Days of growth counted",
    "评定时只计算最近这些天获得的成长值": "A review counts only the growth earned in these last days",
    "成长值达到门槛时立即升级。选择评定周期后，每个周期开始时（按店铺时区的每月 1 日、每季度首日或每年 1 月 1 日）按最近天数内获得的成长值重新评定等级，不足的降级；选择「不降级」则等级只升不降（售后退款扣回成长值时除外）。":
        "Members move up as soon as their growth reaches a threshold. With a review schedule, at the start of each "
        "period (the 1st of the month, the first day of the quarter or 1 January, in the shop's time zone) levels are "
        "set again from the growth of the last days counted, and members below their level move down. With \"Never "
        "downgrade\" levels only go up (except when a refund takes growth back).",
    "保存规则": "Save rules",
    "需为 %(lo)s–%(hi)s 的整数": "Must be a whole number from %(lo)s to %(hi)s",
    "已保存成长值与等级规则": "Growth and level rules saved",
    "编辑会员等级": "Edit level",
    "新建会员等级": "New level",
    "返回会员等级": "Back to levels",
    "基本信息": "Basics",
    "等级序号": "Rank",
    "数字越大等级越高；初始等级的序号不能修改": "Higher numbers are higher levels; the base level's rank is fixed",
    "数字越大等级越高": "Higher numbers are higher levels",
    "颜色": "Colour",
    "仅付费获得（通过付费会员卡获得，不按成长值升级）": "Paid only (reached through a paid card, not by growth)",
    "初始等级的门槛为 0；门槛需随序号升高而增加。仅付费获得的等级不使用门槛。":
        "The base level's threshold is 0; thresholds rise with the rank. Paid-only levels have none.",
    "会员权益": "Member benefits",
    "会员折扣（折）": "Member rate (tenths of the price: 9.5 = 95%)",
    "例如 9.5 表示 9.5 折；留空不打折。设置了会员价的商品按会员价":
        "9.5 means members pay 95%; leave empty for no discount. Items with a member price use that price",
    "不打折": "No discount",
    "积分倍数": "Points multiplier",
    "消费获得积分乘以这个倍数，例如 1.5": "Points earned on purchases are multiplied by this, e.g. 1.5",
    "生日积分": "Birthday points",
    "包邮": "Free shipping",
    "优先发货（订单列表和详情中标记「优先发货」）": "Priority shipping (orders are marked \"Priority shipping\")",
    "生日优惠券": "Birthday coupon",
    "不赠送": "None",
    "营销中心上线优惠券后，可以为等级设置生日优惠券和专享券。":
        "Once the marketing centre offers coupons, levels can give a birthday coupon and exclusive coupons.",
    "其他等级": "Other levels",
    "请填写等级名称（1–20 个字符）": "Give a name of 1–20 characters",
    "等级序号需为 0–99 的整数": "The rank must be a whole number from 0 to 99",
    "成长值门槛需为 0–100,000,000 的整数": "The threshold must be a whole number from 0 to 100,000,000",
    "会员折扣需为 1–10 之间的数字（最多两位小数），留空表示不打折":
        "The discount must be a number from 1 to 10 (two decimals at most); leave empty for none",
    "积分倍数需为 1–10 之间的数字（最多两位小数）": "The multiplier must be a number from 1 to 10 (two decimals at most)",
    "生日积分需为 0–1,000,000 的整数": "Birthday points must be a whole number from 0 to 1,000,000",
    "请选择可用的优惠券": "Choose a coupon that can be given",
    "颜色需为 #RRGGBB 格式": "The colour must be #RRGGBB",
    "说明最多 200 个字符": "The description may be at most 200 characters",
    "已保存会员等级「%(name)s」": "Level \"%(name)s\" saved",
    "已删除会员等级「%(name)s」": "Level \"%(name)s\" deleted",
    # member prices
    "为商品规格按会员等级设置固定的会员价（元）。设置了会员价的商品，该等级的会员按会员价购买，不再享受等级折扣；留空则按等级折扣。":
        "Set fixed member prices (yuan) per SKU and level. Members of a level buy an item with a member price at that "
        "price instead of the level's discount; leave empty to use the discount.",
    "商品名称或编码": "Product name or code",
    "查找商品": "Find products",
    "已设置会员价的商品": "Items with member prices",
    "%(level)s 会员价": "%(level)s member price",
    "折后 %(p)s": "%(p)s after discount",
    "没有找到商品": "No products found",
    "还没有设置会员价。搜索商品后填写各等级的会员价": "No member prices yet. Find a product and fill in its prices per level",
    "会员价需为 0.01 至售价 %(p)s 元": "A member price must be 0.01 up to the price %(p)s yuan",
    "已保存「%(title)s」的会员价": "Member prices of \"%(title)s\" saved",
    "售价": "Price",
    # storefront
    "会员中心": "Member centre",
    "等级、积分与储值": "Level, points and stored value",
    "会员卡有效期至 %(date)s": "Card valid until %(date)s",
    "付费会员": "Paid membership",
    "升级进度": "Progress to the next level",
    "成长值 %(g)s，再获得 %(n)s 升级为%(level)s": "Growth %(g)s: %(n)s more to reach %(level)s",
    "成长值 %(g)s，已是最高等级": "Growth %(g)s: the top level",
    "查看等级权益": "Level benefits",
    "我的资产": "My assets",
    "余额（元）": "Balance (yuan)",
    "会员服务": "Member services",
    "充值": "Recharge",
    "成长值明细": "Growth history",
    "会员消息": "Member messages",
    "全部已读": "Mark all read",
    "我的资料": "My profile",
    "生日设置后不能修改，如需修改请联系客服": "The birthday cannot be changed once set; ask customer service to change it",
    "生日只能填写一次，生日当月可获得会员生日礼": "You can set your birthday once; members get a birthday gift",
    "例如：浙江 杭州": "e.g. Zhejiang Hangzhou",
    "保存资料": "Save profile",
    "资料已保存": "Profile saved",
    "等级权益": "Level benefits",
    "我的等级：%(name)s": "My level: %(name)s",
    "当前": "Current",
    "开通付费会员卡获得": "With a paid card",
    "成长值达到 %(n)s": "Growth of %(n)s",
    "注册即可获得": "On sign-up",
    "如何获得成长值": "How to earn growth",
    "购物每实付 1 元得 %(n)s 成长值（含余额支付），退款时扣回":
        "%(n)s growth per yuan paid (stored value included); taken back on refunds",
    "等级按最近 %(n)s 天获得的成长值定期评定，成长值不足时等级会调整":
        "Levels are reviewed regularly on the growth of the last %(n)s days and may go down",
    "查看成长值明细": "Growth history",
    "还没有成长值记录，购物、签到都能获得成长值": "No growth yet; shopping and check-ins earn growth",
    "返回": "Back",
}

register({zh: en for zh, en in _CATALOG.items() if gettext(zh, "en") == zh})

# Audit-log labels of levels.
register({
    k: v for k, v in {
        "新建会员等级": "Create member level", "修改会员等级": "Change member level", "删除会员等级": "Delete member level",
        "调整成长值": "Adjust growth", "修改会员资料": "Change member profile", "修改会员价": "Change member prices",
        "修改成长值与等级规则": "Change growth and level rules", "商品规格": "SKU", "会员设置": "Member settings",
    }.items() if gettext(k, "en") == k
})
