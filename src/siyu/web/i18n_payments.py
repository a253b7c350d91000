"""English for the payments pages: the console's payments, notification log and payment
settings, and the sandbox cashier. Imported by ``siyu.payments.views``."""

from __future__ import annotations

from siyu.kit.i18n import gettext, register

register({
    # statuses, gateways, channels, causes, outcomes
    "待支付": "Awaiting payment",
    "支付成功": "Paid",
    "支付失败": "Payment failed",
    "已关闭": "Closed",
    "已退款": "Refunded",
    "退款中": "Refunding",
    "退款成功": "Refunded",
    "退款失败": "Refund failed",
    "沙箱支付": "Sandbox",
    "微信支付": "WeChat Pay",
    "沙箱收银台": "Sandbox cashier",
    "JSAPI（小程序 / 公众号）": "JSAPI (mini program / official account)",
    "H5": "H5",
    "Native 扫码": "Native (QR code)",
    "创建支付单": "Payment created",
    "支付通知": "Payment notifications",
    "渠道通知": "Gateway notification",
    "主动查询": "Queried at the gateway",
    "超时关闭": "Closed on timeout",
    "用户取消": "Cancelled by the payer",
    "改用其他支付方式": "Replaced by another payment method",
    "员工操作": "Staff action",
    "已处理": "Processed",
    "重复通知": "Duplicate",
    "已拒绝": "Rejected",
    "已忽略": "Ignored",
    "已启用": "Enabled",
    "未启用": "Disabled",

    # list
    "支付记录": "Payments",
    "通知日志": "Notification log",
    "支付设置": "Payment settings",
    "搜索": "Search",
    "支付单号、交易号、来源编号或描述": "Payment no., transaction id, source id or description",
    "状态": "Status",
    "全部": "All",
    "支付渠道": "Gateway",
    "创建日期从": "Created from",
    "至": "to",
    "筛选": "Filter",
    "清除筛选": "Clear filters",
    "支付单号": "Payment no.",
    "来源": "Source",
    "金额": "Amount",
    "支付方式": "Method",
    "创建时间": "Created",
    "支付时间": "Paid at",
    "没有符合条件的支付记录": "No payments match these filters",
    "还没有支付记录。顾客下单付款后，每一笔支付都会显示在这里": "No payments yet. Every payment your customers make will show up here",
    "金额以支付渠道确认的结果为准：支付通知经验签后才会改变状态，长时间未收到通知的支付单会自动向渠道查询。":
        "Amounts are what the gateway confirmed: a notification changes a payment only after its signature is verified, "
        "and payments whose notification is late are queried at the gateway automatically.",

    # detail
    "支付单 %(no)s": "Payment %(no)s",
    "返回支付记录": "Back to payments",
    "支付金额": "Amount paid",
    "可退金额": "Refundable",
    "支付信息": "Payment",
    "渠道交易号": "Gateway transaction id",
    "描述": "Description",
    "付款人 openid": "Payer openid",
    "支付截止": "Pay before",
    "最近查询": "Last queried",
    "时间线": "Timeline",
    "暂无记录": "Nothing yet",
    "申请退款": "Refund requested",
    "收到支付通知": "Notification received",
    "退款": "Refunds",
    "退款单号": "Refund no.",
    "原因": "Reason",
    "申请来源": "Requested by",
    "申请时间": "Requested",
    "到账时间": "Completed",
    "没有退款": "No refunds",
    "在通知日志中查看": "See in the notification log",
    "收到时间": "Received",
    "通知类型": "Event type",
    "单号": "Reference",
    "处理结果": "Outcome",
    "还没有收到这笔支付的通知": "No notification about this payment yet",

    # notification log
    "支付通知日志": "Payment notification log",
    "支付单号或退款单号": "Payment or refund no.",
    "详情": "Details",
    "报文": "Message",
    "通知 ID": "Notification id",
    "资源已加密，按原样保存": "the resource is encrypted and stored as received",
    "没有符合条件的通知": "No notifications match these filters",
    "还没有收到支付通知": "No payment notifications received yet",
    "每一条到达的通知都会记录：验签失败、时间戳过期、金额不符或单号未知的通知会被拒绝且不改变任何数据；重复的通知只会生效一次。无法归属到本店的伪造通知不会显示在这里。":
        "Every notification that arrives is recorded. Those with a bad signature, a stale timestamp, a wrong amount or an "
        "unknown order are rejected and change nothing; a repeated notification takes effect once. Forgeries that cannot "
        "be attributed to this shop are not shown here.",

    # settings
    "沙箱是一个模拟的支付渠道：顾客在沙箱收银台选择「确认支付」「支付失败」或「取消」，沙箱随后像真实渠道一样发送签名的异步通知。适合演示与联调，不产生真实扣款。":
        "The sandbox is a pretend payment gateway: on its cashier the customer chooses “Pay”, “Payment failed” or "
        "“Cancel”, and the sandbox then sends a signed asynchronous notification just like a real gateway. Use it for "
        "demos and integration; no money moves.",
    "当前为生产环境：启用沙箱后，任何人都可以不付款完成支付，请仅在演示店铺中启用。":
        "This is a production installation: with the sandbox on, anyone can complete a payment without paying. Enable it "
        "only for demo shops.",
    "停用沙箱支付": "Disable the sandbox",
    "启用沙箱支付": "Enable the sandbox",
    "已启用沙箱支付": "The sandbox gateway is enabled",
    "已停用沙箱支付": "The sandbox gateway is disabled",
    "通知地址": "Notification URL",
    "微信支付 APIv3": "WeChat Pay APIv3",
    "直连商户模式": "Direct merchant mode",
    "启用前还需填写：": "Still needed before enabling: ",
    "商户号": "Merchant id (mchid)",
    "AppID": "AppID",
    "与商户号绑定的小程序或公众号 AppID": "AppID of the mini program or official account bound to the merchant",
    "商户 API 证书序列号": "Merchant API certificate serial",
    "APIv3 密钥": "APIv3 key",
    "已设置，留空则保持不变": "Set; leave blank to keep it",
    "32 个字符，在商户平台「API 安全」中设置": "32 characters, set under “API security” in the merchant platform",
    "商户 API 私钥（apiclient_key.pem）": "Merchant API private key (apiclient_key.pem)",
    "已设置，留空则保持不变；出于安全考虑不会回显": "Set; leave blank to keep it. It is never shown again",
    "粘贴 -----BEGIN PRIVATE KEY----- 开头的完整内容": "Paste the whole file, starting with -----BEGIN PRIVATE KEY-----",
    "验签方式": "Signature verification",
    "微信支付用「微信支付公钥」或「平台证书」签名。两者可同时配置：通知按 Wechatpay-Serial 选择验签的公钥或证书，切换期间两种签名都能接受。":
        "WeChat Pay signs with its public key or with a platform certificate. Both can be configured: each notification "
        "is verified with the key its Wechatpay-Serial names, so both kinds are accepted during a switch.",
    "微信支付公钥 ID": "WeChat Pay public key id",
    "微信支付公钥": "WeChat Pay public key",
    "已设置，留空则保持不变；清空公钥 ID 即移除公钥": "Set; leave blank to keep it. Clear the public key id to remove it",
    "粘贴 -----BEGIN PUBLIC KEY----- 开头的完整内容": "Paste the whole key, starting with -----BEGIN PUBLIC KEY-----",
    "平台证书": "Platform certificates",
    "移除": "Remove",
    "有效期至 %(date)s": "valid until %(date)s",
    "还没有平台证书": "No platform certificate yet",
    "添加平台证书": "Add platform certificates",
    "粘贴一张或多张 -----BEGIN CERTIFICATE----- 证书；序列号从证书中读取":
        "Paste one or more -----BEGIN CERTIFICATE----- certificates; serials are read from them",
    "开通的支付方式": "Payment methods",
    "启用微信支付（新支付单可选择微信支付）": "Enable WeChat Pay (new payments may use it)",
    "支付通知地址（需为 https，在下单时自动传给微信支付）":
        "Notification URL (must be https; sent to WeChat Pay with every order)",
    "保存微信支付设置": "Save WeChat Pay settings",
    "从微信支付下载平台证书": "Download platform certificates from WeChat Pay",
    "平台证书模式下使用；需先保存商户号、序列号、私钥与 APIv3 密钥":
        "For the certificate mode; save the merchant id, serial, private key and APIv3 key first",
    "已保存微信支付设置": "WeChat Pay settings saved",
    "（未启用）": " (not enabled)",
    "已下载平台证书，当前共 %(n)s 张": "Platform certificates downloaded; %(n)s on file",
    "商户号为 6–20 位数字": "The merchant id is 6–20 digits",
    "AppID 格式不正确": "The AppID is not valid",
    "证书序列号应为十六进制字符": "The certificate serial is hexadecimal",
    "API 私钥无法解析，请粘贴 apiclient_key.pem 的完整内容": "The private key cannot be read; paste the whole apiclient_key.pem",
    "APIv3 密钥应为 32 个字符": "The APIv3 key has 32 characters",
    "平台证书无法解析，请粘贴完整的 PEM 证书": "A certificate cannot be read; paste whole PEM certificates",
    "要移除的证书序列号无效": "A certificate serial to remove is not valid",
    "公钥 ID 应以 PUB_KEY_ID_ 开头": "The public key id starts with PUB_KEY_ID_",
    "微信支付公钥无法解析，请粘贴完整的 PEM 公钥": "The public key cannot be read; paste the whole PEM key",
    "支付方式无效": "Unknown payment method",

    # audit log
    "修改支付设置": "Change payment settings",

    # sandbox cashier
    "模拟支付，不会扣款": "Simulated: no money moves",
    "确认支付": "Pay now",
    "取消": "Cancel",
    "已通知商户，订单状态将在几秒内更新。": "The merchant has been notified; the order updates within seconds.",
    "返回商户": "Back to the shop",
    "这是私域 Siyu 的沙箱支付渠道：选择结果后，沙箱会像真实支付渠道一样，向商户发送签名的异步通知。":
        "This is Siyu's sandbox gateway: after you choose, it sends the merchant a signed asynchronous notification "
        "just like a real payment provider.",
    "页面已过期，请刷新后重试": "The page has expired; reload and try again",
})

# Audit-log labels of payments.
register({k: v for k, v in {"修改支付设置": "Payment settings change", "支付渠道": "Payment gateway"}.items()
          if gettext(k, "en") == k})
