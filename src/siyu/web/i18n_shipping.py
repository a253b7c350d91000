"""English for the freight-template console pages (``/admin/shipping/...``) and the
storefront address book (``/m/{shop}/me/addresses``): the two halves of "freight and
addresses".

Imported by ``siyu.shipping.views`` and ``siyu.customers.views``. Chinese is the source text
written in the templates and views; this catalog only adds the English. Words another
catalog already translated keep that catalog's English, so one Chinese word never reads two
ways. Province names stay Chinese: they are what goes on the parcel.
"""

from __future__ import annotations

from siyu.kit.i18n import gettext, register
from siyu.web import i18n_console, i18n_store  # noqa: F401  (their words win where both catalogs have them)

_CATALOG = {
    # console: navigation, list
    "运费模板": "Freight templates",
    "新建运费模板": "New freight template",
    "下单时，需要物流配送的商品按运费模板计算运费；商品未指定模板时使用默认模板。满包邮门槛按同一模板下商品的金额计算。虚拟商品不收运费。":
        "At checkout, goods that ship are charged by their freight template; goods without one use the default "
        "template. A free-shipping threshold looks at the amount of the goods under the same template. Virtual goods "
        "are never charged freight.",
    "模板名称": "Template name",
    "计费方式": "Charged by",
    "运费规则": "Charges",
    "默认": "Default",
    "设为默认": "Make default",
    "删除": "Delete",
    "确定删除该运费模板吗？": "Delete this freight template?",
    "还没有运费模板，下单时全部包邮": "No freight templates yet: every order ships free",
    # modes and summaries
    "包邮": "Free shipping",
    "统一运费": "Flat fee",
    "按件计费": "Per piece",
    "按重量计费": "Per weight",
    "全场包邮": "Free shipping everywhere",
    "每单 ¥%(fee)s": "¥%(fee)s per order",
    "首 %(first)s 件 ¥%(ff)s，续 %(add)s 件 ¥%(af)s": "first %(first)s piece(s) ¥%(ff)s, each further %(add)s ¥%(af)s",
    "首重 %(first)s 克 ¥%(ff)s，续重 %(add)s 克 ¥%(af)s": "first %(first)s g ¥%(ff)s, each further %(add)s g ¥%(af)s",
    "；另有 %(n)s 条地区规则": "; %(n)s region rule(s)",
    "；满 ¥%(amount)s 包邮": "; free shipping from ¥%(amount)s",
    # editor
    "返回运费模板": "Back to freight templates",
    "例如：江浙沪包邮": "e.g. Free shipping to Jiangsu, Zhejiang and Shanghai",
    "每单运费（元）": "Fee per order (yuan)",
    "按重量计费时单位为克：1000 克 = 1 千克。每满一个续重单位（不足也按一个计）加收续重费用。":
        "Per weight counts grams: 1000 g = 1 kg. Each further started weight block adds the further fee.",
    "按件计费：首件数量内收首件费用，之后每增加一个续件单位（不足也按一个计）加收续件费用。":
        "Per piece: the first pieces cost the first fee; each further started block of pieces adds the further fee.",
    "默认地区": "Default region",
    "未单独设置的省份按此计费": "Provinces without a rule of their own",
    "首件/首重": "First pieces / grams",
    "首费（元）": "First fee (yuan)",
    "续件/续重": "Further pieces / grams",
    "续费（元）": "Further fee (yuan)",
    "地区规则 %(n)s": "Region rule %(n)s",
    "删除该地区规则": "Remove this region rule",
    "为指定地区设置运费": "Set charges for chosen provinces",
    "满额包邮（元）": "Free shipping from (yuan)",
    "同一模板下商品金额达到该金额时包邮；留空表示不设门槛":
        "Goods under this template ship free from this amount; leave blank for no threshold",
    "设为默认模板": "Make it the default template",
    # messages
    "请填写模板名称（最多 60 字）": "Enter a template name (at most 60 characters)",
    "请选择计费方式": "Choose how freight is charged",
    "请填写运费，如 8 或 8.00": "Enter the fee, e.g. 8 or 8.00",
    "包邮门槛需为金额，如 99；不设门槛请留空": "The threshold is an amount such as 99; leave blank for none",
    "运费规则有误：首件/首重与续件/续重需为不小于 1 的整数，费用为不小于 0 的金额":
        "Check the charges: pieces and grams are whole numbers of at least 1, fees are amounts of at least 0",
    "每条地区规则至少选择一个省份": "Choose at least one province for every region rule",
    "已保存运费模板 %(name)s": "Saved freight template %(name)s",
    "已将 %(name)s 设为默认运费模板": "%(name)s is now the default freight template",
    "已删除运费模板 %(name)s": "Deleted freight template %(name)s",
    # audit
    "修改运费模板": "Changed a freight template",
    "设为默认运费模板": "Made a freight template the default",
    "删除运费模板": "Deleted a freight template",
    # storefront: address book
    "收货地址": "Addresses",
    "返回": "Back",
    "编辑": "Edit",
    "确定删除该收货地址吗？": "Delete this address?",
    "还没有收货地址，添加一个吧": "No addresses yet. Add one",
    "新增收货地址": "Add an address",
    "编辑收货地址": "Edit address",
    "最多保存 %(n)s 个收货地址": "You can keep at most %(n)s addresses",
    "收货人": "Recipient",
    "省份": "Province",
    "请选择省份": "Choose a province",
    "城市": "City",
    "区县": "District",
    "详细地址": "Street address",
    "如：杭州市": "e.g. Hangzhou",
    "如：西湖区": "e.g. Xihu District",
    "街道、门牌号、楼栋与房间号": "Street, number, building and room",
    "邮政编码（选填）": "Postal code (optional)",
    "设为默认地址": "Make it my default address",
    "请填写收货人（最多 50 字）": "Enter the recipient (at most 50 characters)",
    "请填写城市（最多 40 字）": "Enter the city (at most 40 characters)",
    "请填写区县（最多 40 字）": "Enter the district (at most 40 characters)",
    "请填写详细地址（2–200 字）": "Enter the street address (2–200 characters)",
    "邮政编码为 6 位数字，可不填": "A postal code has 6 digits; it may be left out",
    "收货地址已保存": "Address saved",
    "已设为默认地址": "Default address changed",
    "收货地址已删除": "Address deleted",
}

# Keep translations other catalogs registered first (one Chinese word, one English reading).
register({zh: en for zh, en in _CATALOG.items() if gettext(zh, "en") == zh})
