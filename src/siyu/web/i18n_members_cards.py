"""English for the paid-card and birthday pages: the console's 付费会员卡 and 生日礼
(``/admin/members/cards``, ``/admin/members/birthday``) and the storefront's 付费会员
(``/m/{shop}/member/card``), plus the audit-log labels of both.

Imported by ``siyu.members.views_cards``. Chinese is the source text written in the templates
and views; this catalog only adds the English. Words another catalog already translated keep
that catalog's English, so one Chinese word never reads two ways. Purchase statuses come from
:mod:`siyu.members.cards` itself.
"""

from __future__ import annotations

from siyu.kit.i18n import gettext, register
from siyu.members.cards import STATUS_EN, STATUS_ZH
from siyu.web import (
    i18n_console,  # noqa: F401  (the console's words win where both catalogs have them)
    i18n_orders_store,  # noqa: F401  (the storefront's order words too)
)

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
    # console: plans
    "购买记录": "Purchases",
    "新建会员卡": "New card",
    "编辑会员卡": "Edit card",
    "付费会员卡让顾客花钱直接获得一个会员等级（例如只能付费获得的黑金会员），在有效期内享受该等级的全部权益。到期前续费从原到期日顺延；持有有效会员卡时不能购买其他等级的卡。":
        "A paid card lets a customer buy a level outright (for example a black-gold level that can only be bought) "
        "and enjoy all of its benefits while the card is valid. Renewing before the end extends the card from its "
        "current end date; while a card is valid, cards of other levels cannot be bought.",
    "在售会员卡": "Cards on sale",
    "已支付购买": "Paid purchases",
    "待支付": "Awaiting payment",
    "会员卡名称": "Card name",
    "有效天数": "Days valid",
    "售价": "Price",
    "赠送积分": "Gift points",
    "已售": "Sold",
    "%(n)s 天": "%(n)s days",
    "在售": "On sale",
    "已下架": "Off sale",
    "确定删除这张会员卡吗？": "Delete this card?",
    "还没有付费会员卡": "No paid cards yet",
    "返回付费会员卡": "Back to paid cards",
    "例如：黑金年卡": "e.g. Black-gold annual card",
    "请选择": "Choose",
    "售价（元）": "Price (yuan)",
    "从支付成功起计算；续费从原到期日顺延": "Counted from payment; a renewal extends from the current end date",
    "每次购买或续费到账一次；退款时按退款比例收回": "Given with each purchase or renewal; taken back in proportion on a refund",
    "权益说明": "Benefits",
    "展示给顾客，例如：全场 8.8 折、包邮、优先发货": "Shown to customers, e.g. 12% off everything, free shipping, priority shipping",
    "排序": "Sort",
    "数字小的排在前面": "Lower numbers come first",
    "在售（顾客可以购买和续费）": "On sale (customers can buy and renew it)",
    "已售出 %(n)s 次。修改售价、天数或等级只影响之后的购买，已购买的会员卡不变。":
        "Sold %(n)s times. Changing the price, days or level affects later purchases only; cards already bought stay as they are.",
    "（仅付费获得）": " (paid only)",
    "请填写会员卡名称（1–40 个字符）": "Enter a card name (1–40 characters)",
    "请选择会员等级": "Choose a level",
    "有效天数需为 1–3660 的整数": "Days must be a whole number from 1 to 3660",
    "请填写正确的售价（0.01–1,000,000 元）": "Enter a price from 0.01 to 1,000,000 yuan",
    "赠送积分需为 0–10000000 的整数": "Gift points must be a whole number from 0 to 10000000",
    "权益说明最多 500 个字符": "The benefits text is at most 500 characters",
    "排序需为 0–99999 的整数": "Sort must be a whole number from 0 to 99999",
    "已创建会员卡「%(name)s」": "Card “%(name)s” created",
    "已保存会员卡「%(name)s」": "Card “%(name)s” saved",
    "已删除会员卡": "Card deleted",
    # console: purchases
    "会员卡购买记录": "Card purchases",
    "购买状态": "Purchase status",
    "购买单号": "Purchase no.",
    "会员卡": "Card",
    "金额": "Amount",
    "有效期": "Valid",
    "没有符合条件的购买记录": "No purchases match these filters",
    "还没有人购买会员卡": "Nobody has bought a card yet",
    "返回购买记录": "Back to purchases",
    "会员卡购买 %(no)s": "Card purchase %(no)s",
    "购买信息": "Purchase",
    "支付截止": "Pay by",
    "支付单号": "Payment no.",
    "当前会员卡": "Card now",
    "有效期至 %(date)s": "Valid until %(date)s",
    "无有效会员卡": "No valid card",
    "该顾客的全部购买": "All of this customer's purchases",
    "退款单号": "Refund no.",
    "时间": "Time",
    "原因": "Reason",
    "重新发起退款": "Send the refund again",
    "退款后这笔购买未使用的时间从会员卡有效期中扣除（剩余约 %(days)s 天）；赠送积分按退款金额占售价的比例收回。款项原路退回。":
        "After a refund, the unused time of this purchase (about %(days)s days) comes off the card; gift points are "
        "taken back in the share the refund is of the price. The money goes back the way it was paid.",
    "退款方式": "Refund",
    "全额退款": "Full refund",
    "按未使用天数退款": "Unused days only",
    "指定金额": "An amount",
    "退款金额（元）": "Refund amount (yuan)",
    "仅在选择「指定金额」时填写": "Only for “An amount”",
    "退款原因": "Refund reason",
    "确定退款吗？会员卡有效期将相应缩短。": "Refund? The card will end earlier accordingly.",
    "确认退款": "Refund",
    "退款中": "Refunding",
    "退款成功": "Refunded",
    "退款失败": "Refund failed",
    "请选择退款方式": "Choose how to refund",
    "请填写正确的退款金额": "Enter a valid refund amount",
    "退款原因最多 %(n)s 个字符": "The reason is at most %(n)s characters",
    "已退款，会员卡有效期已相应缩短": "Refunded; the card ends earlier accordingly",
    "已重新发起退款": "The refund was sent again",
    # console: birthday
    "立即发放": "Give now",
    "已开启": "On",
    "未开启": "Off",
    "本月生日会员": "Birthdays this month",
    "%(year)s 年已发放": "Given in %(year)s",
    "发放设置": "Settings",
    "开启生日礼": "Give birthday gifts",
    "发放时间": "When",
    "等级": "Level",
    "生日当天": "On the birthday",
    "生日当月（1 日起）": "In the birthday month (from the 1st)",
    "生日积分": "Birthday points",
    "留空按会员等级设置的生日积分发放；填写数字则所有会员统一发放这么多积分":
        "Leave empty to give each level's own birthday points; a number gives every member that many",
    "生日优惠券": "Birthday coupon",
    "不发放": "None",
    "会员等级设置了生日优惠券时，以等级的为准。": "A level's own birthday coupon takes precedence.",
    "优惠券功能上线后可以在这里选择生日优惠券。": "Once coupons are available, a birthday coupon can be chosen here.",
    "每天按店铺所在时区发放，每位会员每年只发放一次；服务暂停耽误的生日会在两天内补发。":
        "Given daily in the shop's time zone, once per member a year; a birthday missed while the service was down "
        "is made up within two days.",
    "保存设置": "Save settings",
    "各等级生日礼": "Gifts by level",
    "还没有会员等级": "No levels yet",
    "在会员等级中修改": "Change them in Levels",
    "发放记录": "Gifts given",
    "年份": "Year",
    "积分": "Points",
    "优惠券": "Coupon",
    "还没有发放过生日礼": "No birthday gifts given yet",
    "请选择发放时间": "Choose when to give",
    "生日积分需为 0–%(n)s 的整数": "Birthday points must be a whole number from 0 to %(n)s",
    "优惠券不可用": "That coupon cannot be given",
    "已保存生日礼设置": "Birthday settings saved",
    "生日礼未开启": "Birthday gifts are off",
    "已为 %(n)s 位会员发放生日礼": "Birthday gifts given to %(n)s members",
    # storefront
    "付费会员": "Paid membership",
    "有效期至 %(date)s，还剩 %(n)s 天": "Valid until %(date)s, %(n)s days left",
    "开通付费会员": "Become a paid member",
    "您的会员卡已于 %(date)s 到期，续费即可恢复权益": "Your card ended on %(date)s; renew to get your benefits back",
    "付费即可升级会员等级，享受专属折扣和权益": "Pay to move up a level and enjoy its discounts and benefits",
    "赠 %(n)s 积分": "%(n)s bonus points",
    "到期后可购买": "After your card ends",
    "立即续费": "Renew",
    "立即开通": "Buy",
    "本店暂未推出付费会员卡": "This shop offers no paid cards yet",
    "另有 %(n)s 条更早的记录": "%(n)s older purchases",
    "会员卡订单": "Card purchase",
    "会员卡已生效，有效期 %(from)s 至 %(to)s": "Your card is active from %(from)s to %(to)s",
    "支付时间已到，订单即将关闭": "Time to pay is up; the purchase will close",
    "款项已原路退回，会员卡有效期已相应缩短": "The money went back the way it was paid; the card ends earlier accordingly",
    "订单已关闭": "Closed",
    "去支付": "Pay",
    "请选择会员卡": "Choose a card",
    "选择会员卡": "Cards",
}

register({zh: en for zh, en in _CATALOG.items() if gettext(zh, "en") == zh})
register({zh: STATUS_EN[k] for k, zh in STATUS_ZH.items() if gettext(zh, "en") == zh})

# Audit-log labels of cards and birthday perks.
register({
    k: v for k, v in {
        "新建付费会员卡": "New paid card", "修改付费会员卡": "Change paid card", "删除付费会员卡": "Delete paid card",
        "付费会员卡退款": "Refund a paid card", "付费会员卡重新退款": "Send a card refund again",
        "会员卡购买记录": "Card purchase", "修改生日礼设置": "Change birthday gift settings", "会员设置": "Member settings",
    }.items() if gettext(k, "en") == k
})
