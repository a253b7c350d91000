"""English for the console's order pages (``/admin/orders/...``): orders, shipping, after-sales
and order settings, plus the audit-log labels of the orders module.

Imported by ``siyu.orders.views_console``. Chinese is the source text written in the
templates and views; this catalog only adds the English. Words another catalog already
translated keep that catalog's English, so one Chinese word never reads two ways. Status,
case-kind and reason labels come from the orders module itself (``states``, ``aftersales``).
"""

from __future__ import annotations

from siyu.kit.i18n import gettext, register
from siyu.orders.aftersales import KIND_EN, KIND_ZH, REASON_EN
from siyu.orders.states import CASE_STATUS_EN, CASE_STATUS_ZH, ORDER_STATUS_EN, ORDER_STATUS_ZH
from siyu.web import i18n_console  # noqa: F401  (the console's words win where both catalogs have them)

_CATALOG = {
    # navigation, titles, page actions
    "售后": "After-sales",
    "订单设置": "Order settings",
    "导出 CSV": "Export CSV",
    "批量发货": "Bulk shipping",
    "返回订单列表": "Back to orders",
    "返回售后列表": "Back to after-sales",
    "订单 %(no)s": "Order %(no)s",
    "售后单 %(no)s": "After-sales case %(no)s",
    # order list
    "订单状态": "Order status",
    "订单号": "Order no.",
    "顾客": "Customer",
    "手机号或昵称": "Phone or nickname",
    "商品名称": "Product name",
    "下单日期从": "Ordered from",
    "下单时间": "Ordered at",
    "实付": "Paid",
    "共 %(n)s 件": "%(n)s items",
    "已退 %(amount)s": "%(amount)s refunded",
    "发货": "Ship",
    "详情": "Details",
    "没有符合条件的订单": "No orders match these filters",
    "还没有订单。顾客在店铺下单后会显示在这里": "No orders yet. Orders placed in the shop appear here",
    "手机号已脱敏显示。导出的 CSV 与当前筛选条件一致。":
        "Phone numbers are masked. The CSV export follows the filters shown.",
    "%(title)s 等 %(n)s 种商品": "%(title)s and %(n)s products in all",
    # bulk shipping
    "发货结果": "Shipping results",
    "全部成功": "All succeeded",
    "部分行有误": "Some rows failed",
    "成功 %(ok)s 行，失败 %(bad)s 行。失败的行没有发货，改正后可以只上传这些行。":
        "%(ok)s rows shipped, %(bad)s failed. Failed rows shipped nothing; fix them and upload only those rows.",
    "物流公司": "Carrier",
    "运单号": "Tracking no.",
    "结果": "Result",
    "上传发货文件": "Upload a shipping file",
    "UTF-8 或 GBK 编码，每行一个包裹，最多 %(n)s 行。": "UTF-8 or GBK, one parcel per row, at most %(n)s rows.",
    "上传并发货": "Upload and ship",
    "三列：订单号、物流公司、运单号。整单发出订单的全部待发货商品；同一订单重复上传同一运单号不会重复发货。":
        "Three columns: order_no, carrier, tracking_no. Each row ships everything still to ship in its order; "
        "uploading the same tracking number for the same order again ships nothing twice.",
    "下载模板": "Download template",
    "导出待发货订单": "Export orders to ship",
    "物流公司可填名称或编码：": "The carrier may be given by name or code: ",
    "请选择要上传的 CSV 文件": "Choose the CSV file to upload",
    "文件不能超过 2 MB": "The file may be at most 2 MB",
    "已发货": "Shipped",
    "此前已用该运单号发货": "Already shipped with this tracking number",
    "发货失败": "Not shipped",
    # order detail
    "标记送达": "Mark delivered",
    "退款": "Refund",
    "取消订单": "Cancel order",
    "支付时间": "Paid at",
    "支付截止": "Pay by",
    "发货时间": "Shipped at",
    "自动确认收货": "Auto-confirm at",
    "取消时间": "Cancelled at",
    "关闭时间": "Closed at",
    "顾客与收货信息": "Customer and delivery",
    "收货人": "Receiver",
    "收货地址": "Delivery address",
    "配送": "Delivery",
    "无需配送": "No delivery needed",
    "买家留言": "Buyer's note",
    "下单渠道": "Channel",
    "卖家备注": "Seller note",
    "备注（仅员工可见）": "Note (staff only)",
    "保存备注": "Save note",
    "单价": "Unit price",
    "数量": "Qty",
    "优惠": "Discount",
    "运费分摊": "Freight share",
    "已退款": "Refunded",
    "%(n)s 件不再发货": "%(n)s will not ship",
    "售后中 %(n)s 件": "%(n)s in after-sales",
    "商品金额": "Goods",
    "运费": "Freight",
    "应付": "Payable",
    "按库存点拆分的包裹": "Parcels, split by stock location",
    "包裹 %(n)s": "Parcel %(n)s",
    "虚拟商品": "Virtual goods",
    "无需发货": "Nothing to ship",
    "待发货": "To ship",
    "本次发货": "Ship now",
    "本次发货数量：%(title)s": "Units to ship now: %(title)s",
    "请选择": "Choose",
    "默认发出全部待发货商品；只发一部分时改小「本次发货」的数量，其余稍后再发。":
        "Everything still to ship goes in this parcel; to ship part of it, lower the quantities under Ship now and "
        "ship the rest later.",
    "物流信息": "Shipments",
    "操作人": "By",
    "运输中": "In transit",
    "已送达": "Delivered",
    "支付与退款": "Payments and refunds",
    "支付单号": "Payment no.",
    "金额": "Amount",
    "时间": "Time",
    "还没有支付记录": "No payments yet",
    "售后单号": "Case no.",
    "类型": "Type",
    "退款金额": "Refund",
    "申请时间": "Requested at",
    "没有售后": "No after-sales cases",
    "订单时间线": "Order timeline",
    "暂无记录": "Nothing yet",
    "取消后订单预占的库存会释放，顾客不能再支付这笔订单。":
        "Cancelling releases the stock the order reserved; the customer can no longer pay for it.",
    "取消原因": "Reason for cancelling",
    "不取消": "Keep the order",
    "确认取消": "Cancel the order",
    "发起退款": "Refund",
    "员工发起的售后单直接进入处理流程；退款金额按商品实付金额与件数精确计算。":
        "A case opened by staff is approved at once; the refund is worked out exactly from what each line paid "
        "and the units refunded.",
    "售后类型": "Type",
    "可退件数": "Refundable units",
    "退款件数": "Units to refund",
    "退款件数：%(title)s": "Units to refund: %(title)s",
    "退款原因": "Reason",
    "说明": "Notes",
    "提交退款": "Refund",
    "待支付": "Pending",
    "支付成功": "Paid",
    "支付失败": "Failed",
    "已关闭": "Closed",
    "退款中": "Refunding",
    "退款成功": "Refunded",
    "退款失败": "Refund failed",
    # part statuses
    "部分发货": "Partly shipped",
    "已取消": "Cancelled",
    # banners
    "等待顾客付款": "Awaiting payment",
    "顾客需在 %(t)s 前完成支付，超时订单自动取消并释放库存。":
        "The customer must pay by %(t)s; after that the order is cancelled and its stock released.",
    "顾客已付款，请尽快发货。": "The customer has paid; ship it soon.",
    "还有 %(n)s 件商品待发货。": "%(n)s units are still to ship.",
    "等待顾客确认收货；到 %(c)s 自动确认收货。": "Waiting for the customer to confirm receipt; confirmed automatically at %(c)s.",
    "商品已送达，等待顾客确认收货；到 %(c)s 自动确认收货。":
        "Delivered; waiting for the customer to confirm receipt, confirmed automatically at %(c)s.",
    "交易完成": "Completed",
    "顾客已确认收货。": "The customer confirmed receipt.",
    "订单已取消": "Order cancelled",
    "订单已关闭": "Order closed",
    "订单款项已全部退回顾客。": "Everything the customer paid went back to them.",
    # cancel reasons (stored as written; older ones from the services)
    "顾客要求取消": "The customer asked to cancel",
    "商品缺货": "Out of stock",
    "收货信息有误": "Wrong delivery details",
    "重复下单": "Duplicate order",
    "买家取消": "Cancelled by the buyer",
    "商家取消": "Cancelled by the shop",
    "超时未支付，系统自动取消": "Not paid in time; cancelled automatically",
    # timeline
    "顾客下单": "Order placed",
    "订单取消": "Order cancelled",
    "确认收货": "Receipt confirmed",
    "超时自动确认收货": "Receipt confirmed automatically",
    "全额退款，订单关闭": "Fully refunded; order closed",
    "重复或迟到的支付已原路退回": "A duplicate or late payment was refunded",
    "申请售后": "After-sales requested",
    "同意售后": "After-sales approved",
    "拒绝售后": "After-sales rejected",
    "撤销售后": "After-sales withdrawn",
    "顾客寄回商品": "Customer sent the goods back",
    "确认收到退货": "Return received",
    "重新发起退款": "Refund retried",
    "售后单状态变为「%(s)s」": "Case is now %(s)s",
    "订单状态变为「%(s)s」": "Order is now %(s)s",
    "系统": "System",
    "支付渠道": "Payment gateway",
    "API 令牌": "API token",
    "平台运营": "Platform",
    "员工": "Staff",
    # order forms
    "提交的内容有误": "The form has errors",
    "数量需为 0–100000 的整数": "A quantity is a whole number from 0 to 100000",
    "请选择物流公司": "Choose a carrier",
    "请填写运单号": "Enter the tracking number",
    "请填写本次发货的数量": "Enter the units to ship now",
    "该运单号已发过货：%(carrier)s %(no)s": "Already shipped with %(carrier)s %(no)s",
    "已发货：%(carrier)s %(no)s": "Shipped: %(carrier)s %(no)s",
    "发货数量超过待发货数量，请刷新后重试": "More units than are left to ship; reload and try again",
    "请选择取消原因": "Choose a reason for cancelling",
    "订单已取消，预占的库存已释放": "Order cancelled; its reserved stock was released",
    "已标记为送达": "Marked as delivered",
    "备注最多 %(n)s 字": "The note may be at most %(n)s characters",
    "备注含有不允许的字符": "The note contains characters that are not allowed",
    "已保存备注": "Note saved",
    "请填写要退款的商品件数": "Enter the units to refund",
    "请选择退款原因": "Choose a reason for the refund",
    "该原因不适用于所选的售后类型": "That reason does not fit the chosen type",
    "其中 %(n)s 件尚未发货，退款后不再发货": "%(n)s of them had not shipped and will not ship",
    "已发起售后单 %(no)s": "After-sales case %(no)s opened",
    # after-sales queue and case
    "售后状态": "Case status",
    "售后单号或订单号": "Case or order no.",
    "申请日期从": "Requested from",
    "原因": "Reason",
    "员工发起": "Opened by staff",
    "处理": "Handle",
    "没有符合条件的售后单": "No cases match these filters",
    "还没有售后申请": "No after-sales requests yet",
    "拒绝": "Reject",
    "同意退款": "Approve refund",
    "同意退货": "Approve return",
    "确认收货并退款": "Received, refund",
    "重试退款": "Retry refund",
    "申请信息": "Request",
    "发起方": "Opened by",
    "申请原因": "Reason",
    "问题描述": "Description",
    "完成时间": "Resolved at",
    "拒绝原因": "Reason for rejecting",
    "凭证图片": "Photo",
    "退货与退款": "Return and refund",
    "退货物流": "Return parcel",
    "顾客尚未寄回": "Not sent back yet",
    "退货地址": "Return address",
    "退款状态": "Refund status",
    "尚未退款": "Not refunded yet",
    "到账时间": "Refunded at",
    "售后商品": "Items",
    "购买数量": "Bought",
    "售后件数": "Units",
    "处理记录": "History",
    "顾客会看到这段说明": "The customer sees this explanation",
    "确认拒绝": "Reject",
    "顾客提交了售后申请，请审核：同意后仅退款的申请会立即退款，退货退款的申请等待顾客寄回商品。":
        "The customer asked for after-sales. Review it: approving a refund-only request refunds at once; a return "
        "request then waits for the goods to come back.",
    "已同意，等待顾客寄回商品；收到退货后点「确认收货并退款」。":
        "Approved; waiting for the customer to send the goods back. When they arrive, choose Received, refund.",
    "顾客已寄回商品，请核对退货后点「确认收货并退款」。":
        "The customer sent the goods back. Check them, then choose Received, refund.",
    "退款已提交到支付渠道，到账后售后单自动完成。":
        "The refund was sent to the payment gateway; the case completes when the money is back.",
    "退款已原路退回顾客。": "The money went back to the customer.",
    "已拒绝该申请，商品数量已退回订单。": "Rejected; the units went back to the order.",
    "顾客已撤销该申请。": "The customer withdrew the request.",
    "上次退款没有成功，请点「重试退款」重新发起。": "The last refund did not go through; choose Retry refund.",
    "已同意，退款将很快发起。": "Approved; the refund starts shortly.",
    "已同意，退款处理中": "Approved; refunding",
    "已同意退货，等待顾客寄回商品": "Return approved; waiting for the goods to come back",
    "请填写拒绝原因": "Give the reason for rejecting",
    "拒绝原因最多 200 字": "The reason may be at most 200 characters",
    "拒绝原因含有不允许的字符": "The reason contains characters that are not allowed",
    "已拒绝售后申请": "Request rejected",
    "已确认收到退货，退款处理中": "Return received; refunding",
    "已重新发起退款": "Refund sent again",
    # settings
    "交易时限": "Time limits",
    "待付款订单自动取消（分钟）": "Cancel unpaid orders after (minutes)",
    "下单后超过这个时间未支付，订单自动取消并释放库存（%(lo)s–%(hi)s）":
        "An order not paid within this time is cancelled and its stock released (%(lo)s–%(hi)s)",
    "自动确认收货（天）": "Confirm receipt automatically after (days)",
    "发货后超过这个天数，订单自动确认收货（%(lo)s–%(hi)s）":
        "This many days after shipping, receipt is confirmed automatically (%(lo)s–%(hi)s)",
    "售后申请期限（天）": "After-sales window (days)",
    "交易完成后多少天内顾客还可以申请售后（%(lo)s–%(hi)s）":
        "How many days after completion a customer may still ask for after-sales (%(lo)s–%(hi)s)",
    "修改只影响之后下单或发货的订单，已有订单保留原来的时限。":
        "Changes apply to orders placed or shipped from now on; existing orders keep their deadlines.",
    "顾客的退货退款申请获同意后，会在售后单中看到这个地址。":
        "When a return is approved, the customer sees this address on the case.",
    "保存设置": "Save settings",
    "收件人、电话和详细地址，例如：沈青山 0571-87961188 杭州市西湖区龙井路 18 号。留空时显示店铺名称。":
        "Receiver, phone and full address in one line, e.g. Shen Qingshan 0571-87961188, 18 Longjing Road, Xihu, Hangzhou. "
        "Empty: the shop name is shown.",
    "退货地址最多 %(n)s 个字符": "The return address is at most %(n)s characters",
    "修改订单设置需要「修改店铺设置」权限。": "Changing order settings needs the Change settings permission.",
    "需为 %(lo)s–%(hi)s 的整数": "A whole number from %(lo)s to %(hi)s",
    "已保存订单设置": "Order settings saved",
    # dashboard figures
    "今日订单": "Orders today",
    "单": "",
    "今天下单的订单，含未付款": "Placed today, paid or not",
    "已付款、还有商品未发出": "Paid, with goods still to ship",
    "待处理售后": "After-sales to review",
    "等待审核的售后申请": "Requests awaiting review",
}

register({zh: en for zh, en in _CATALOG.items() if gettext(zh, "en") == zh})
# Status, kind and reason labels of the orders module, as written by its services.
register({zh: ORDER_STATUS_EN[k] for k, zh in ORDER_STATUS_ZH.items() if gettext(zh, "en") == zh})
register({zh: CASE_STATUS_EN[k] for k, zh in CASE_STATUS_ZH.items() if gettext(zh, "en") == zh})
register({zh: KIND_EN[k] for k, zh in KIND_ZH.items() if gettext(zh, "en") == zh})
register({zh: en for zh, en in REASON_EN.items() if gettext(zh, "en") == zh})

# Audit-log labels of the orders module.
register({
    k: v for k, v in {
        "取消订单": "Cancel order", "订单发货": "Ship order", "标记送达": "Mark delivered", "修改卖家备注": "Seller note",
        "修改订单设置": "Order settings", "订单": "Order", "发起售后（商家）": "Open after-sales (shop)",
        "同意售后": "Approve after-sales", "拒绝售后": "Reject after-sales", "确认收到退货": "Return received",
        "重新发起退款": "Retry refund", "售后单": "After-sales case",
    }.items() if gettext(k, "en") == k
})
