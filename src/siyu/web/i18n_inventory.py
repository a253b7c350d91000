"""English for the inventory console pages (``/admin/inventory/...``).

Imported by ``siyu.inventory.views``. Chinese is the source text written in the templates
and views; this catalog only adds the English. Words another catalog already translated
(保存, 状态, 筛选 ...) keep that catalog's English, so one Chinese word never reads two ways.
"""

from __future__ import annotations

from siyu.kit.i18n import gettext, register
from siyu.web import i18n_console  # noqa: F401  (the console's words win where both catalogs have them)

_CATALOG = {
    # tabs, titles
    "库存管理": "Inventory",
    "库存": "Stock",
    "出入库流水": "Stock ledger",
    "低库存预警": "Low stock",
    "盘点": "Stocktakes",
    "库存盘点": "Stocktakes",
    "仓库与门店": "Warehouses & stores",
    "仓库与门店库存点": "Stock locations",
    # levels page
    "库存调整": "Adjust stock",
    "入库": "Receive",
    "在库商品规格": "SKUs in stock",
    "在库总件数": "Units on hand",
    "其中已预占 %(n)s 件": "%(n)s of them reserved",
    "低库存": "Low stock",
    "缺货": "Out of stock",
    "库存充足": "In stock",
    "有货": "In stock",
    "还没有设置仓库或门店库存点。首次入库时会自动创建「默认仓库」，也可以先在「仓库与门店」中设置。":
        "No warehouse or store location yet. The first receipt creates a default warehouse; "
        "you can also set locations up first under Warehouses & stores.",
    "SKU 编号": "SKU id",
    "库存点": "Location",
    "全部库存点": "All locations",
    "库存状态": "Stock status",
    "商品规格": "SKU",
    "在库": "On hand",
    "已预占": "Reserved",
    "可售": "Available",
    "低库存预警值": "Low-stock threshold",
    "不预警": "No alert",
    "流水": "Ledger",
    "没有符合条件的库存记录": "No stock levels match these filters",
    "还没有库存记录。商品到货后点击「入库」登记数量": "No stock yet. When goods arrive, record them with Receive",
    "可售 = 在库 − 已预占。下单时预占库存，取消或超时未支付时释放，发货时出库；每一次变动都记入出入库流水。":
        "Available = on hand − reserved. Placing an order reserves stock, cancelling it or leaving it unpaid releases "
        "it, shipping takes it out; every change is written to the stock ledger.",
    "入库数量": "Quantity received",
    "默认库存点（优先级最高）": "Default location (highest priority)",
    "例如：采购单号、供应商": "E.g. purchase order number, supplier",
    "确认入库": "Receive",
    "调整数量": "Change",
    "增加填正数，减少填负数，如 -2；已被订单预占的件数不能调减":
        "A positive number adds, a negative one removes (e.g. -2); units reserved for orders cannot be removed",
    "调整原因": "Reason",
    "例如：运输破损、样品领用、盘盈": "E.g. damaged in transit, samples taken, surplus found",
    "确认调整": "Adjust",
    "已入库 %(qty)s 件，在库 %(on_hand)s 件": "Received %(qty)s units; %(on_hand)s on hand",
    "已调整库存 %(delta)s 件，在库 %(on_hand)s 件": "Adjusted by %(delta)s units; %(on_hand)s on hand",
    "预警值需为 0–100000000 的整数，留空表示不预警": "A threshold is a whole number from 0 to 100000000; leave it empty for no alert",
    "已设置低库存预警值为 %(n)s": "Low-stock threshold set to %(n)s",
    "已关闭该库存的低库存预警": "Low-stock alert switched off for this level",
    "%(name)s（停用）": "%(name)s (inactive)",
    # field messages
    "请输入有效的 SKU 编号": "Enter a valid SKU id",
    "请选择库存点": "Choose a location",
    "数量需为 1–100000000 的整数": "A quantity is a whole number from 1 to 100000000",
    "备注最多 200 字": "A note has up to 200 characters",
    "调整数量需为非零整数，如 -2 或 5": "The change is a non-zero whole number, such as -2 or 5",
    "请填写调整原因（最多 200 字）": "Give a reason (up to 200 characters)",
    "编码需为 2–40 位小写字母、数字、_ 或 -，并以字母或数字开头":
        "A code is 2–40 lowercase letters, digits, _ or -, starting with a letter or digit",
    "请填写名称（最多 100 字）": "Enter a name (up to 100 characters)",
    "类型无效": "Invalid type",
    "请选择门店": "Choose a store",
    "优先级需为 0–10000 的整数": "A priority is a whole number from 0 to 10000",
    "状态无效": "Invalid status",
    # movements
    "来源单号": "Source",
    "如 order:1024": "E.g. order:1024",
    "开始日期": "From",
    "结束日期": "To",
    "全部类型": "All types",
    "在库变动": "On hand ±",
    "预占变动": "Reserved ±",
    "变动后在库 / 预占": "After: on hand / reserved",
    "来源": "Source",
    "没有符合条件的出入库记录": "No movements match these filters",
    "还没有出入库记录": "No stock movements yet",
    "流水只增不改：每次入库、调整、盘点、预占、释放、发货出库和退货入库各记一条，更正也以新的一条记录。":
        "The ledger is append-only: every receipt, adjustment, stocktake, reservation, release, shipment and return "
        "adds one entry, and a correction is a new entry too.",
    "日期格式不正确，请使用 年-月-日": "Dates are written year-month-day",
    "调整": "Adjustment",
    "到货入库": "Received",
    "盘点差异": "Stocktake difference",
    "订单预占": "Reserved for order",
    "释放预占": "Reservation released",
    "发货出库": "Shipped",
    "退货入库": "Returned",
    "手工录入": "Manual",
    "订单库存": "Order",
    "售后退货": "After-sales",
    "盘点单": "Stocktake",
    # low stock
    "预警值": "Threshold",
    "去补货": "Restock",
    "没有低于预警值的库存。在「库存」页为商品设置低库存预警值后，低于该值时会出现在这里":
        "Nothing is below its threshold. Set low-stock thresholds on the Stock page; levels at or below them show up here",
    "可售数量降到预警值或以下时，系统会发出一次低库存提醒；补货回升后再次跌破时会再次提醒。":
        "When available units fall to the threshold or below, one low-stock alert is sent; after restocking, "
        "the next fall alerts again.",
    # locations
    "新建库存点": "New location",
    "库存按库存点分别记录：仓库，或开通了库存的门店。下单时按优先级从小到大选择发货库存点：能整单发出的优先，其次逐个商品选择，一个库存点不够时拆分到多个库存点。停用的库存点不参与销售。":
        "Stock is kept per location: a warehouse, or a store that holds stock. Orders are served by priority, lowest "
        "number first: a location that can ship the whole order wins, then each line is served by one location, and a "
        "line is split over several only when no single location has enough. Inactive locations do not sell.",
    "优先级": "Priority",
    "仓库": "Warehouse",
    "线下门店": "Store",
    "关联门店": "Store",
    "停用": "Inactive",
    "还没有库存点。首次入库时会自动创建「默认仓库」": "No locations yet. The first receipt creates a default warehouse",
    "例如：杭州中心仓": "E.g. Hangzhou central warehouse",
    "小写字母、数字、_ 或 -，如 hz-central；创建后不能修改": "Lowercase letters, digits, _ or -, e.g. hz-central; cannot change later",
    "数字越小越优先发货，如中心仓 10、门店 50": "Lower ships first, e.g. central warehouse 10, stores 50",
    "类型为门店时选择": "For store locations",
    "已新建库存点 %(name)s": "Location %(name)s created",
    "返回库存点列表": "Back to locations",
    "库存点信息": "Location",
    "数字越小越优先发货": "Lower ships first",
    "停用后该库存点的库存不再可售，已预占的订单仍可正常发货或取消。":
        "Once inactive, this location's stock is no longer sold; orders already reserved here can still ship or be cancelled.",
    "该库存点的库存": "Stock here",
    "查看全部": "View all",
    "该库存点还没有库存": "No stock at this location yet",
    "已保存库存点 %(name)s": "Location %(name)s saved",
    # stocktakes
    "新建盘点": "New stocktake",
    "单号": "No.",
    "创建人": "Created by",
    "生效时间": "Applied",
    "草稿": "Draft",
    "已生效": "Applied",
    "已取消": "Cancelled",
    "录入盘点数": "Enter counts",
    "还没有盘点单。定期盘点可以发现丢失、破损或登记错误，使系统库存与实物一致":
        "No stocktakes yet. Regular counts find losses, damage and booking mistakes, and keep the system in line with the shelves",
    "例如：6 月月末盘点": "E.g. end-of-June count",
    "已创建盘点单，请录入实盘数量": "Stocktake created; enter the counted units",
    "盘点单 #%(id)s": "Stocktake #%(id)s",
    "返回盘点列表": "Back to stocktakes",
    "系统在库": "System on hand",
    "实盘数量": "Counted",
    "其他 SKU 编号": "Another SKU id",
    "只需录入盘到的商品；留空的不参与本次盘点。生效时按当时的系统在库计算差异并记入流水，实盘数量不能少于已预占的件数。":
        "Enter only what you counted; empty rows are left out. Applying compares each count with the system's on-hand "
        "units at that moment and writes the differences to the ledger; a count cannot be below the units reserved.",
    "保存盘点数": "Save counts",
    "已录入 %(n)s 个商品规格": "%(n)s SKUs counted",
    "盘点生效": "Apply stocktake",
    "取消盘点": "Cancel stocktake",
    "生效时系统在库": "System on hand when applied",
    "差异": "Difference",
    "该盘点单没有盘点数": "This stocktake has no counts",
    "查看本次盘点记入的流水": "View the ledger entries of this stocktake",
    "SKU 编号无效：%(v)s": "Invalid SKU id: %(v)s",
    "实盘数量需为 0–100000000 的整数（SKU %(sku)s）": "A count is a whole number from 0 to 100000000 (SKU %(sku)s)",
    "没有需要保存的盘点数": "There are no counts to save",
    "已保存盘点数": "Counts saved",
    "盘点已生效，差异已记入出入库流水": "Stocktake applied; the differences are in the stock ledger",
    "已取消盘点单": "Stocktake cancelled",
}

register({zh: en for zh, en in _CATALOG.items() if gettext(zh, "en") == zh})

# Audit-log labels of inventory.
register({
    k: v for k, v in {
        "入库": "Receive stock", "库存调整": "Stock adjustment", "设置库存预警": "Low-stock threshold",
        "新建库存地点": "New stock location", "修改库存地点": "Edit stock location", "新建盘点": "New stocktake",
        "录入盘点数": "Stocktake counts", "应用盘点": "Apply stocktake", "取消盘点": "Cancel stocktake",
        "库存地点": "Stock location", "盘点": "Stocktake",
    }.items() if gettext(k, "en") == k
})
