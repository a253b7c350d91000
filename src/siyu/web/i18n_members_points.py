"""English for the points pages: the console's 积分规则 (``/admin/members/points``) and the
manual adjustment of a member's points, the storefront's 我的积分 (``/m/{shop}/member/points``),
the names of the kinds of points entries, and the audit-log labels of points.

Imported by ``siyu.members.views_points``. Chinese is the source text written in the templates
and views; this catalog only adds the English. Words another catalog already translated keep
that catalog's English, so one Chinese word never reads two ways.
"""

from __future__ import annotations

from siyu.kit.i18n import gettext, register
from siyu.members.points import KIND_EN, KIND_ZH
from siyu.web import (
    i18n_console,  # noqa: F401  (the console's words win where both catalogs have them)
    i18n_orders_store,  # noqa: F401  (the storefront's order words too)
)

_CATALOG = {
    # the members tabs (shared partial; whichever part registers first)
    "会员中心": "Members",
    "积分规则": "Points rules",
    "积分商城": "Points mall",
    # console: figures
    "持有积分的会员": "Members holding points",
    "未使用积分": "Points outstanding",
    "约合 %(amount)s": "Worth about %(amount)s",
    "近 30 天发放": "Given, last 30 days",
    "近 30 天使用": "Used, last 30 days",
    # console: earning
    "获取积分": "Earning points",
    "每实付 1 元获得积分": "Points per yuan paid",
    "订单交易完成后发放，按商品实付金额（含储值支付，不含运费和积分抵扣）计算，乘以会员等级的积分倍数；0 为不发放":
        "Given when an order completes, on what its goods were paid (stored value included; freight and points "
        "excluded), times the member level's points multiplier; 0 gives none",
    "注册奖励": "Sign-up",
    "首单奖励": "First order",
    "评价奖励": "Review",
    "注册奖励在顾客注册时发放，首单奖励在第一笔订单交易完成时发放，每位顾客只发放一次；填 0 为不发放。":
        "The sign-up reward is given when a customer registers, the first-order reward when their first order "
        "completes, each once per customer; 0 gives none.",
    "每日签到": "Daily check-in",
    "每次签到积分": "Points per check-in",
    "连续签到天数": "Streak length (days)",
    "连签奖励积分": "Streak bonus points",
    "按店铺所在时区每天可签到一次；每连续签到满设定天数，额外获得连签奖励（0 为不奖励）。":
        "One check-in a day in the shop's time zone; every full streak of that many days in a row earns the bonus "
        "(0: no bonus).",
    # console: checkout
    "积分抵扣": "Points at checkout",
    "下单时可用积分抵扣现金": "Shoppers may pay with points at checkout",
    "多少积分抵 1 元": "Points that pay ¥1",
    "最多抵扣商品金额的 %": "At most this % of the goods",
    "满多少积分可用": "Usable from (points)",
    "抵扣上限按会员价、促销和优惠券之后的商品金额计算，积分不抵运费。订单取消或退款时，用掉的积分按比例退回。":
        "The cap is a share of the goods after member prices, promotions and coupons; points never pay freight. "
        "Cancelled or refunded orders give the points used back in proportion.",
    # console: expiry
    "积分有效期": "Points expiry",
    "有效期规则": "Expiry rule",
    "按自然年：次年年底清零": "By calendar year: expire at the end of the next year",
    "滚动有效期：获得后 N 天": "Rolling: N days after earning",
    "永久有效": "Never expire",
    "滚动有效期（天）": "Rolling validity (days)",
    "仅“滚动有效期”使用：获得当天起算": "Rolling expiry only: counted from the day earned",
    "到期前几天提醒": "Remind this many days before",
    "站内消息，顾客有手机号时另发短信；0 为不提醒": "A member notice, plus an SMS when the customer has a phone; 0: no reminder",
    "按自然年：当年获得的积分在次年 12 月 31 日 24 点过期。使用积分时先用最早过期的。修改有效期只影响之后获得的积分。":
        "By calendar year: points earned in a year expire at the end of 31 December of the next year. Points "
        "expiring first are used first. Changing the rule affects points earned from now on.",
    "修改积分规则需要「管理会员」权限。": "Changing the points rules needs the “Manage members” permission.",
    "请选择积分有效期": "Choose an expiry rule",
    "请检查标红的项目": "Check the fields marked in red",
    "已保存积分规则": "Points rules saved",
    "需为 0–1000 的整数": "A whole number from 0 to 1000",
    "需为 0–100000 的整数": "A whole number from 0 to 100000",
    "需为 0–365 的整数": "A whole number from 0 to 365",
    "需为 1–100000 的整数": "A whole number from 1 to 100000",
    "需为 0–100 的数字，最多两位小数": "A number from 0 to 100 with at most two decimals",
    "需为 0–10000000 的整数": "A whole number from 0 to 10000000",
    "需为 1–3650 的整数": "A whole number from 1 to 3650",
    "需为 0–90 的整数": "A whole number from 0 to 90",
    # console: entries
    "最新积分流水": "Latest points entries",
    "时间": "Time",
    "顾客": "Customer",
    "顾客 %(id)s": "Customer %(id)s",
    "类型": "Kind",
    "积分": "Points",
    "变动后": "Balance after",
    "说明": "Note",
    "还没有积分流水": "No points entries yet",
    # console: adjustments (member detail)
    "请填写要调整的积分数量（非 0 整数）": "Enter the points to adjust (a non-zero whole number)",
    "已增加 %(n)s 积分": "%(n)s points added",
    "已扣减 %(n)s 积分": "%(n)s points taken away",
    # storefront
    "我的积分": "My points",
    "可用积分": "Points available",
    "%(n)s 积分将于 %(date)s 过期": "%(n)s points expire on %(date)s",
    "下单抵现": "Pay with points",
    "签到": "Check in",
    "已签到": "Checked in",
    "今日已签到，已连续签到 %(n)s 天": "Checked in today; %(n)s days in a row",
    "已连续签到 %(n)s 天，": "%(n)s days in a row; ",
    "今天签到可得 %(n)s 积分": "check in today for %(n)s points",
    "今天已经签到过了，明天再来吧": "You have checked in today; come back tomorrow",
    "签到成功，连续 %(days)s 天，获得 %(n)s 积分": "Checked in: %(days)s days in a row, %(n)s points",
    "签到成功，连续 %(days)s 天，获得 %(n)s 积分（含连签奖励 %(bonus)s）":
        "Checked in: %(days)s days in a row, %(n)s points (streak bonus %(bonus)s included)",
    "积分说明": "About points",
    "交易完成后，每实付 1 元得 %(n)s 积分（会员等级越高倍数越高）":
        "Completed orders earn %(n)s points per yuan paid (higher levels earn more)",
    "下单时 %(n)s 积分抵 1 元，最多抵扣商品金额的 %(pct)s%%":
        "At checkout %(n)s points pay ¥1, up to %(pct)s%% of the goods",
    "当年获得的积分在次年 12 月 31 日过期，先用先到期的积分":
        "Points earned in a year expire on 31 December of the next year; those expiring first are used first",
    "积分自获得之日起 %(n)s 天内有效，先用先到期的积分":
        "Points are valid for %(n)s days from the day earned; those expiring first are used first",
    "积分长期有效": "Points never expire",
    "订单取消或退款时，用掉的积分退回，获得的积分按比例扣回":
        "A cancelled or refunded order gives back the points it used and takes back what it earned, in proportion",
    "积分明细": "Points history",
    "回到最新": "Back to the latest",
    "查看更早的记录": "Older entries",
    "还没有积分记录，签到或下单都能获得积分": "No points yet: check in or place an order to earn some",
    "返回": "Back",
    "保存设置": "Save settings",
}

register({zh: en for zh, en in _CATALOG.items() if gettext(zh, "en") == zh})
register({zh: KIND_EN[k] for k, zh in KIND_ZH.items() if gettext(zh, "en") == zh})

# Audit-log labels of points.
register({
    k: v for k, v in {"调整积分": "Adjust points", "修改积分规则": "Change points rules", "会员积分": "Member points",
                      "会员设置": "Member settings"}.items() if gettext(k, "en") == k
})
