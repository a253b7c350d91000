"""English for the stored-value pages: the console's 储值 (``/admin/members/wallet/...``), the
storefront's 我的余额 (``/m/{shop}/member/wallet/...``) and the audit-log labels of stored
value (确认订单's 使用余额 / 使用积分 are in ``i18n_orders_store``).

Imported by ``siyu.members.views_wallet``. Chinese is the source text written in the
templates and views; this catalog only adds the English. Words another catalog already
translated keep that catalog's English (those are imported first and win), so one Chinese
word never reads two ways. Status and movement labels come from :mod:`siyu.members.wallet`.
"""

from __future__ import annotations

from siyu.kit import i18n
from siyu.kit.i18n import register
from siyu.members.wallet import (
    KIND_EN,
    KIND_ZH,
    RECHARGE_STATUS_EN,
    RECHARGE_STATUS_ZH,
    REFUND_STATUS_EN,
    REFUND_STATUS_ZH,
)
from siyu.web import i18n_console, i18n_orders_console, i18n_orders_store  # noqa: F401  (their words win)

_CATALOG = {
    # console: 储值
    "储值": "Stored value",
    "会员中心": "Members",
    "储值套餐": "Recharge packages",
    "新建储值套餐": "New recharge package",
    "编辑储值套餐": "Edit recharge package",
    "充值记录": "Recharges",
    "余额退款": "Balance refunds",
    "余额退款 %(no)s": "Balance refund %(no)s",
    "返回储值": "Back to stored value",
    "返回余额退款": "Back to balance refunds",
    "顾客预存金额（本金），购买套餐时另得赠送金；下单时可用余额支付商品和运费。本金可申请原路退回，赠送金不退。":
        "Members pay money in (principal) and get a bonus with a package; at checkout the balance pays for goods and "
        "freight. Principal can be refunded on request; the bonus cannot.",
    "在售套餐": "Packages on sale",
    "已到账充值": "Recharges credited",
    "待审核退款": "Refunds to review",
    "套餐名称": "Package name",
    "支付金额": "Amount paid",
    "赠送金额": "Bonus",
    "到账金额": "Credited",
    "排序": "Sort",
    "在售": "On sale",
    "已下架": "Off sale",
    "确定删除这个储值套餐吗？已有的充值记录不受影响。": "Delete this package? Recharges already made are not affected.",
    "还没有储值套餐": "No recharge packages yet",
    "充值": "Recharge",
    "开放储值充值": "Members may recharge",
    "允许顾客输入自定义金额（不享受赠送）": "Members may enter their own amount (no bonus)",
    "自定义金额最低（元）": "Lowest custom amount (¥)",
    "自定义金额最高（元）": "Highest custom amount (¥)",
    "充值单 30 分钟内未支付自动关闭；关闭后才到账的支付会原路退回。":
        "A recharge not paid within 30 minutes is closed; a payment that arrives after that is refunded.",
    "消费与退款": "Spending and refunds",
    "赠送金抵扣比例（%）": "Share paid by the bonus (%)",
    "每笔余额支付中由赠送金支付的比例，赠送金不足时由本金补足，本金不足时由赠送金补足。0 为先用本金，100 为先用赠送金":
        "The share of each balance payment taken from the bonus; when the bonus runs short the principal pays the rest, "
        "and the other way round. 0 spends principal first, 100 spends the bonus first",
    "允许顾客申请退还本金": "Members may ask for their principal back",
    "退款申请经审核同意后，本金按充值记录从新到旧原路退回；退款期间本金冻结，退款失败自动返还余额。赠送金不退。":
        "Once a request is approved, the principal goes back the way it was paid, newest recharge first; it is held "
        "meanwhile and returns to the balance if a refund fails. The bonus is never refunded.",
    "修改储值设置需要「管理会员」权限。": "Changing stored-value settings needs the “Manage members” permission.",
    "支付金额（元）": "Amount paid (¥)",
    "赠送金额（元）": "Bonus (¥)",
    "数字大的排在前面": "Higher numbers come first",
    "例如：充 1000 送 100": "e.g. Pay 1000 get 100",
    "在售（顾客可以购买）": "On sale (members can buy it)",
    "顾客支付「支付金额」，余额增加支付金额（本金）与赠送金额（赠送金）。修改套餐不影响已有的充值。":
        "The member pays the amount paid; the balance grows by it (principal) and by the bonus. Changing a package "
        "does not change recharges already made.",
    "充值单号": "Recharge no.",
    "已退本金": "Principal refunded",
    "手机号、昵称或顾客编号": "Phone, nickname or customer no.",
    "没有充值记录": "No recharges",
    "退款状态": "Refund status",
    "退款单号": "Refund no.",
    "退款金额": "Amount",
    "原因": "Reason",
    "申请时间": "Requested at",
    "处理": "Review",
    "没有余额退款申请": "No balance refund requests",
    "申请信息": "Request",
    "处理时间": "Decided at",
    "拒绝原因": "Reason for rejecting",
    "当前余额": "Balance now",
    "本金 %(p)s · 赠送金 %(b)s": "Principal %(p)s · bonus %(b)s",
    "冻结 %(h)s": "%(h)s held",
    "当前可退本金": "Principal refundable now",
    "原路退回": "Refunds to the payer",
    "退回金额": "Amount",
    "审核": "Review",
    "同意后，退款金额从本金中冻结，并按充值记录从新到旧原路退回顾客的支付账户；任何一笔退款失败，该笔金额自动返还到顾客余额。":
        "Approving holds the amount out of the principal and refunds it to the member's payment account through the "
        "recharges, newest first; any refund that fails returns its amount to the member's balance.",
    "同意退款": "Approve refund",
    "拒绝": "Reject",
    "已保存储值设置": "Stored-value settings saved",
    "已新建储值套餐": "Recharge package created",
    "已保存储值套餐": "Recharge package saved",
    "已删除储值套餐": "Recharge package deleted",
    "已同意退款，本金将原路退回": "Refund approved: the principal goes back the way it was paid",
    "已拒绝退款申请": "Refund request rejected",
    "请填写拒绝原因": "Give a reason for rejecting",
    "请填写调整金额（非 0，最多两位小数，最多 100000 元）": "Enter an amount (not 0, at most two decimals, at most ¥100,000)",
    "请选择调整本金或赠送金": "Choose principal or bonus",
    "请填写调整原因": "Give a reason",
    "这次调整已经提交过了": "This adjustment was already made",
    "已为%(bucket)s增加 %(amount)s": "%(bucket)s: added %(amount)s",
    "已从%(bucket)s扣减 %(amount)s": "%(bucket)s: took %(amount)s",
    "本金": "Principal",
    "赠送金": "Bonus",
    "请填写套餐名称（1–40 个字）": "Enter a package name (1–40 characters)",
    "请填写支付金额（0.01–100000 元）": "Enter the amount paid (¥0.01–100,000)",
    "赠送金额需为 0–100000 元": "The bonus must be ¥0–100,000",
    "排序需为 -9999–9999 的整数": "Sort must be a whole number from -9999 to 9999",
    "请填写最低充值金额（0.01–100000 元）": "Enter the lowest amount (¥0.01–100,000)",
    "请填写最高充值金额（0.01–100000 元），且不低于最低金额": "Enter the highest amount (¥0.01–100,000), not below the lowest",
    "赠送金抵扣比例需为 0–100 的整数": "The bonus share must be a whole number from 0 to 100",
    "退款中": "Refunding",
    "退款成功": "Refunded",
    "退款失败": "Refund failed",
    # storefront: 我的余额
    "我的余额": "My balance",
    "可用余额（元）": "Balance (¥)",
    "本金 %(amount)s": "Principal %(amount)s",
    "赠送金 %(amount)s": "Bonus %(amount)s",
    "退款中 %(amount)s": "%(amount)s being refunded",
    "去购物": "Shop",
    "退还本金": "Refund principal",
    "您有一笔 %(amount)s 的充值尚未支付": "You have an unpaid recharge of %(amount)s",
    "本店暂未开放储值充值": "This shop does not take recharges yet",
    "赠 %(amount)s，到账 %(total)s": "%(amount)s bonus, %(total)s in all",
    "其他金额（元）": "Other amount (¥)",
    "%(lo)s–%(hi)s 元": "¥%(lo)s–%(hi)s",
    "本店暂未推出储值套餐": "No recharge packages yet",
    "余额可在下单时抵扣商品和运费。赠送金不可退还；本金可申请原路退回。":
        "The balance pays for goods and freight at checkout. The bonus cannot be refunded; the principal can, "
        "back the way it was paid.",
    "余额明细": "Balance history",
    "本金 %(p)s，赠送金 %(b)s": "principal %(p)s, bonus %(b)s",
    "余额 %(amount)s": "Balance %(amount)s",
    "查看更早的记录": "Older records",
    "回到最新": "Back to the latest",
    "还没有余额记录": "No balance records yet",
    "请输入正确的充值金额（最多两位小数）": "Enter a valid amount (at most two decimals)",
    "请选择充值套餐": "Choose a package",
    "页面已过期，请重新选择充值金额": "The page has expired; choose the amount again",
    "充值成功": "Recharged",
    "%(amount)s 已存入您的余额，当前余额 %(total)s": "%(amount)s was added to your balance; it is now %(total)s",
    "充值单已关闭，如已付款将原路退回": "This recharge was closed; any payment made goes back the way it came",
    "充值信息": "Recharge",
    "返回我的余额": "Back to my balance",
    "申请退还本金": "Ask for the principal back",
    "赠送金（不可退）": "Bonus (not refundable)",
    "可退金额": "Refundable",
    "您有一笔 %(amount)s 的退款申请正在处理（%(status)s）": "Your request to refund %(amount)s is being handled (%(status)s)",
    "没有可退的储值本金": "There is no principal to refund",
    "本店暂不支持余额退款，请联系客服": "This shop does not refund balances; please contact us",
    "退款金额（元）": "Amount (¥)",
    "不填则退还全部可退金额": "Leave empty to refund all you can",
    "退款原因": "Reason",
    "提交申请": "Submit",
    "商家审核同意后，本金按充值记录原路退回您的支付账户。": "Once the shop approves, the principal goes back to the account you paid from.",
    "申请记录": "Requests",
    "请输入正确的退款金额（最多两位小数）": "Enter a valid amount (at most two decimals)",
    "原因最多 200 个字": "The reason is at most 200 characters",
    "退款申请已提交，商家审核后原路退回": "Request submitted; the money goes back once the shop approves",
    # audit log
    "修改储值套餐": "Edit recharge package",
    "删除储值套餐": "Delete recharge package",
    "调整储值余额": "Adjust stored value",
    "同意余额退款": "Approve balance refund",
    "拒绝余额退款": "Reject balance refund",
    "修改储值设置": "Change stored-value settings",
    "储值账户": "Stored value",
}
for _zh, _en in ((RECHARGE_STATUS_ZH, RECHARGE_STATUS_EN), (REFUND_STATUS_ZH, REFUND_STATUS_EN), (KIND_ZH, KIND_EN)):
    for _code, _text in _zh.items():
        _CATALOG.setdefault(_text, _en[_code])

# Words another catalog already translated keep their English there.
register({zh: en for zh, en in _CATALOG.items() if i18n.gettext(zh, "en") == zh})
