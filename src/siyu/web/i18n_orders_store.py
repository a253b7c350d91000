"""English for the storefront's order pages: 购物车 (/m/{shop}/cart), 确认订单 (/checkout),
我的订单 and the order page (/orders), and after-sales (/after-sales), plus the order row of 我的.

Imported by ``siyu.orders.views_store``. Chinese is the source text written in the templates
and views; this catalog only adds the English. Words another catalog already translated keep
that translation, so one Chinese word never reads two ways. Status words, after-sales kinds
and reasons, and carrier names come from the tables of the orders module.
"""

from __future__ import annotations

from siyu.kit.i18n import gettext, register
from siyu.orders.aftersales import KIND_EN, KIND_ZH, REASON_EN
from siyu.orders.fulfilment import CARRIERS
from siyu.orders.states import CASE_STATUS_EN, CASE_STATUS_ZH, ORDER_STATUS_EN, ORDER_STATUS_ZH
from siyu.web import i18n_catalog, i18n_shipping, i18n_store  # noqa: F401  (their words win where both have them)

CATALOG: dict[str, str] = {
    # cart
    "购物车商品": "Items in your cart",
    "登录后可以查看购物车里的商品": "Sign in to see the items in your cart",
    "去挑几件喜欢的商品吧": "Go and pick a few things you like",
    "去逛逛": "Browse the shop",
    "共 %(n)s 种商品": "%(n)s item(s)",
    "清除失效商品": "Remove unavailable items",
    "选择 %(title)s": "Select %(title)s",
    "更新": "Update",
    "全选": "All",
    "合计": "Total",
    "已优惠 %(amount)s": "You save %(amount)s",
    "去结算": "Check out",
    "运费在确认订单时按收货地址计算": "Freight is calculated at checkout from your delivery address",
    "库存不足，仅剩 %(n)s 件": "Not enough stock: only %(n)s left",
    "商品已失效": "This item no longer exists",
    "已加入购物车": "Added to your cart",
    "已从购物车删除": "Removed from your cart",
    "已清除失效商品": "Unavailable items removed",
    "请先登录，再把商品加入购物车": "Sign in first, then add items to your cart",
    "请先选择商品规格": "Choose the options first",
    "请输入正确的购买数量": "Enter a valid quantity",
    "请先勾选要结算的商品": "Tick the items you want to check out first",
    "请先选择要购买的商品": "Choose what you want to buy first",
    # checkout
    "确认订单": "Confirm order",
    "更换收货地址": "Use another address",
    "添加收货地址": "Add a delivery address",
    "还没有收货地址，添加后才能下单": "You have no delivery address yet; add one to place the order",
    "价格明细": "Price details",
    "商品金额": "Goods",
    "优惠": "Discount",
    "运费": "Freight",
    "免运费": "Free",
    "实付": "To pay",
    "实付款": "To pay",
    "应付": "Amount due",
    "订单备注": "Note to the shop",
    "选填，给商家留言": "Optional message to the shop",
    "提交订单": "Place order",
    "购买数量有误": "Invalid quantity",
    "页面已过期，请重新结算": "This page has expired; please check out again",
    "订单备注不能包含特殊字符": "The note must not contain control characters",
    "订单备注最多 %(n)s 个字": "The note may be at most %(n)s characters",
    "订单内容已变化，请确认后重新提交": "The order changed; check it and place it again",
    "保存并使用": "Save and use",
    # paying
    "本店暂未开通在线支付，请联系客服": "This shop does not take online payments yet; please contact customer service",
    "当前支付方式需要在微信中完成": "This payment method has to be completed inside WeChat",
    "支付成功": "Payment received",
    "去支付": "Pay now",
    "剩余支付时间": "Time left to pay",
    "支付时间已到，订单即将自动取消": "Time to pay is up; the order will be cancelled shortly",
    "请在 %(time)s 前完成支付": "Please pay before %(time)s",
    "正在确认支付结果…": "Confirming your payment…",
    # my orders
    "订单分类": "Order tabs",
    "全部订单": "All orders",
    "待付款": "To pay",
    "待发货": "To ship",
    "待收货": "To receive",
    "售后": "After-sales",
    "订单 %(no)s": "Order %(no)s",
    "还有 %(n)s 种商品": "%(n)s more item(s)",
    "共 %(n)s 件，实付": "%(n)s piece(s), paid",
    "查看详情": "Details",
    "还没有相关订单": "No orders here yet",
    # order page
    "订单详情": "Order details",
    "商家正在备货，请耐心等待发货": "The shop is preparing your order",
    "部分商品已发出，其余商品商家正在准备": "Part of your order has shipped; the shop is preparing the rest",
    "商品已发出，收到后请确认收货": "Your order has shipped; confirm receipt when it arrives",
    "商品已送达，请确认收货": "Your order was delivered; please confirm receipt",
    "交易已完成，感谢您的购买": "Order completed. Thank you for shopping with us",
    "订单已取消": "Order cancelled",
    "订单已全额退款，交易关闭": "The order was refunded in full and is closed",
    "物流信息": "Shipping",
    "发货时间": "Shipped",
    "已签收": "Delivered",
    "已退款": "Refunded",
    "已退款 %(n)s 件": "%(n)s refunded",
    "售后中 %(n)s 件": "%(n)s in after-sales",
    "已发 %(a)s / %(b)s 件": "%(a)s of %(b)s shipped",
    "申请售后": "Request after-sales",
    "查看售后": "View after-sales",
    "售后记录": "After-sales",
    "订单信息": "Order information",
    "订单编号": "Order number",
    "下单时间": "Ordered",
    "支付时间": "Paid",
    "取消原因": "Cancel reason",
    "订单进度": "Order progress",
    "取消订单": "Cancel order",
    "确定取消这个订单吗？": "Cancel this order?",
    "确认收货": "Confirm receipt",
    "确认已经收到全部商品了吗？": "Have you received everything in this order?",
    "已确认收货，交易完成": "Receipt confirmed. Order completed",
    "商家已发货": "Shipped by the shop",
    "商品已送达": "Delivered",
    "超时自动确认收货": "Receipt confirmed automatically",
    "交易完成": "Order completed",
    "支付款已原路退回": "Payment refunded to the original account",
    # after-sales
    "售后详情": "After-sales details",
    "售后类型": "Type",
    "仅退款：未收到货或无需退回商品；退货退款：需要把商品寄回商家。":
        "Refund only: you did not receive the goods or need not send them back. Return and refund: send the goods "
        "back to the shop.",
    "选择商品与数量": "Items and quantities",
    "已有进行中的售后": "After-sales already in progress",
    "可申请 %(n)s 件": "Up to %(n)s",
    "最多退 %(amount)s": "refund up to %(amount)s",
    "申请原因": "Reason",
    "请选择申请原因": "Choose a reason",
    "问题描述（选填）": "Description (optional)",
    "问题描述": "Description",
    "请描述遇到的问题，方便商家尽快处理": "Describe the problem so the shop can help you quickly",
    "提交申请": "Submit request",
    "请选择售后类型": "Choose the type",
    "请至少选择一件商品": "Choose at least one item",
    "该订单暂时不能申请售后": "After-sales are not available for this order now",
    "售后申请已提交": "Your request was submitted",
    "商家会尽快处理您的申请": "The shop will handle your request soon",
    "商家已同意，请按下方地址寄回商品并填写物流单号":
        "The shop agreed. Send the goods to the address below and enter the tracking number",
    "商家收到退货后将为您退款": "You will be refunded once the shop receives the goods",
    "退款处理中，将原路退回您的支付账户": "Refund in progress, back to the account you paid with",
    "退款已原路退回": "Refunded to the account you paid with",
    "商家拒绝了这次申请": "The shop declined this request",
    "您已撤销这次申请": "You withdrew this request",
    "拒绝原因：%(reason)s": "Reason: %(reason)s",
    "寄回商品": "Send the goods back",
    "退货地址": "Return address",
    "请联系客服获取退货地址": "Contact customer service for the return address",
    "物流公司": "Carrier",
    "请选择物流公司": "Choose a carrier",
    "物流单号": "Tracking number",
    "请填写物流单号": "Enter the tracking number",
    "提交物流信息": "Submit shipping details",
    "物流信息已提交，商家收到退货后将为您退款": "Shipping details sent. You will be refunded once the shop receives the goods",
    "退货物流": "Return parcel",
    "售后商品": "Items",
    "退款 %(amount)s": "refund %(amount)s",
    "退款金额": "Refund",
    "售后编号": "Case number",
    "申请时间": "Requested",
    "处理进度": "Progress",
    "撤销申请": "Withdraw request",
    "确定撤销这个售后申请吗？": "Withdraw this after-sales request?",
    "售后申请已撤销": "Request withdrawn",
    "没有售后记录": "No after-sales requests",
    "在订单详情里可以为商品申请退款或退货": "You can ask for a refund or a return from an order's page",
    "售后申请已同意": "Request approved",
    "售后申请被拒绝": "Request declined",
    "退货已寄出": "Goods sent back",
    "商家已收到退货": "The shop received the goods",
    "重新发起退款": "Refund retried",
    "退款成功": "Refunded",
    "退款失败": "Refund failed",
}

register({zh: en for zh, en in CATALOG.items() if gettext(zh, "en") == zh})

# Words that other pages use as a status or a timeline entry, read here as what a button does
# (``pgettext("button", ...)`` in the views and ``p_("button", ...)`` in the templates).
register({
    "button\x04确认收货": "Confirm receipt",
    "button\x04申请售后": "Request after-sales",
    "button\x04去支付": "Pay now",
})

# Words from the module's own tables.
_TABLES: dict[str, str] = {
    **{ORDER_STATUS_ZH[k]: ORDER_STATUS_EN[k] for k in ORDER_STATUS_ZH},
    **{CASE_STATUS_ZH[k]: CASE_STATUS_EN[k] for k in CASE_STATUS_ZH},
    **{KIND_ZH[k]: KIND_EN[k] for k in KIND_ZH},
    **REASON_EN,
    **{c.name: c.name_en for c in CARRIERS},
}
register({zh: en for zh, en in _TABLES.items() if gettext(zh, "en") == zh})
