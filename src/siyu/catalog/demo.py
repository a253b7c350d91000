"""Demo catalogue of 青山茶社: tea categories, about thirty products with specs, prices and
generated images, and the four kinds of 包裹卡 (package insert cards).

``await seed_catalog(session, scope, rng)`` creates everything in the caller's unit of work
through the catalog service (so it is validated and audited like a staff member's work)
and returns the ids of the SKUs a shopper can buy (active SKUs of on-sale products,
insert cards excluded): what demo orders should be made of. Images are drawn with Pillow
(a tinted card with a leaf, cup, box or card motif; no text, so no CJK font is needed) and
stored through :func:`siyu.kit.storage.save_image`.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.catalog import service
from siyu.catalog.schemas import CategoryIn, ProductIn
from siyu.kit import clock
from siyu.kit.storage import LocalStorage, Storage, save_image
from siyu.kit.tenancy import TenantScope

#: Top-level categories (name, colour of their product cards) in display order.
CATEGORIES: list[tuple[str, tuple[int, int, int]]] = [
    ("绿茶", (94, 140, 76)), ("红茶", (158, 70, 52)), ("乌龙茶", (160, 112, 48)), ("白茶", (170, 165, 140)),
    ("普洱", (110, 72, 50)), ("花草茶", (190, 110, 130)), ("茶器", (70, 110, 130)), ("礼盒", (170, 60, 60)),
]
SUB_CATEGORIES = {"茶器": ["茶壶", "茶杯", "茶具套装"]}

SIZE = "规格"
PACK = "包装"


@dataclass
class DemoProduct:
    title: str
    category: str
    specs: list[tuple[str, list[str]]]
    #: price in yuan of the first combination; later values of the first spec multiply it.
    base: int
    subtitle: str = ""
    kind: str = "physical"
    status: str = "on_sale"
    weight: int = 100
    motif: str = "leaf"
    notes: list[str] = field(default_factory=list)


def _tea(title: str, category: str, sizes: list[str], base: int, subtitle: str, *, packs: bool = False,
         status: str = "on_sale", notes: list[str] | None = None) -> DemoProduct:
    specs = [(SIZE, sizes)] + ([(PACK, ["罐装", "袋装"])] if packs else [])
    return DemoProduct(title, category, specs, base, subtitle, status=status, notes=notes or [])


PRODUCTS: list[DemoProduct] = [
    _tea("西湖龙井 明前特级", "绿茶", ["50g", "100g", "250g"], 128, "西湖产区 · 清明前头采，豆香馥郁", packs=True,
         notes=["产地：杭州西湖", "口感：鲜爽回甘，带炒豆香", "冲泡：80–85℃ 水，玻璃杯下投"]),
    _tea("洞庭碧螺春", "绿茶", ["50g", "100g"], 98, "苏州东山 · 花果香，卷曲如螺", packs=True),
    _tea("黄山毛峰", "绿茶", ["100g", "250g"], 88, "黄山高山茶园 · 兰香清幽"),
    _tea("安吉白茶", "绿茶", ["50g", "100g"], 108, "氨基酸含量高 · 鲜爽如汤"),
    _tea("信阳毛尖", "绿茶", ["100g", "250g"], 76, "细圆光直 · 栗香持久"),
    _tea("正山小种", "红茶", ["100g", "250g"], 86, "武夷桐木关 · 松烟桂圆香", packs=True),
    _tea("祁门红茶", "红茶", ["50g", "100g"], 78, "祁门香 · 世界三大高香红茶之一"),
    _tea("滇红金芽", "红茶", ["100g", "250g"], 118, "云南凤庆 · 金毫显露，蜜香甜润"),
    _tea("金骏眉", "红茶", ["50g", "100g"], 268, "全芽头制作 · 花果蜜香"),
    _tea("安溪铁观音 清香型", "乌龙茶", ["100g", "250g"], 96, "兰花香 · 七泡有余香", packs=True),
    _tea("武夷大红袍", "乌龙茶", ["50g", "100g", "250g"], 138, "岩骨花香 · 中火焙火"),
    _tea("凤凰单丛 蜜兰香", "乌龙茶", ["50g", "100g"], 128, "潮州凤凰山 · 蜜韵悠长"),
    _tea("冻顶乌龙", "乌龙茶", ["100g", "250g"], 108, "台湾南投 · 熟果香", status="draft"),
    _tea("福鼎白毫银针", "白茶", ["50g", "100g"], 198, "头春单芽 · 毫香蜜韵"),
    _tea("白牡丹 茶饼", "白茶", ["100g 小饼", "357g 饼"], 88, "一芽二叶 · 花香清甜"),
    _tea("寿眉 2019 年", "白茶", ["357g 饼"], 158, "陈放五年 · 枣香药香", status="off_sale"),
    _tea("宫廷普洱 熟茶", "普洱", ["100g 沱", "357g 饼"], 68, "勐海茶区 · 醇厚顺滑"),
    _tea("冰岛古树 生茶", "普洱", ["200g 饼", "357g 饼"], 398, "临沧冰岛 · 冰糖甜"),
    _tea("新会小青柑", "普洱", ["10 粒装", "30 粒装"], 58, "新会柑皮 + 宫廷普洱"),
    _tea("茉莉花茶 飘雪", "花草茶", ["50g", "100g"], 48, "七窨一提 · 花香鲜灵", packs=True),
    _tea("桂花乌龙", "花草茶", ["50g", "100g"], 56, "金桂窨制 · 甜香入水"),
    _tea("平阴玫瑰花茶", "花草茶", ["30g", "50g"], 39, "重瓣红玫瑰 · 低温烘干"),
    _tea("菊花枸杞茶", "花草茶", ["10 袋", "30 袋"], 29, "杭白菊 + 宁夏枸杞 · 三角茶包"),
    DemoProduct("宜兴紫砂壶 西施", "茶壶", [("容量", ["150ml", "220ml"])], 680, "原矿紫泥 · 全手工", weight=300, motif="cup"),
    DemoProduct("青瓷品茗杯", "茶杯", [("颜色", ["梅子青", "粉青"]), (SIZE, ["单只", "四只装"])], 68, "龙泉青瓷 · 釉色温润",
                weight=120, motif="cup"),
    DemoProduct("旅行茶具套装", "茶具套装", [("颜色", ["月白", "墨黑"])], 238, "一壶四杯 · 随身便携", weight=900, motif="cup"),
    DemoProduct("玻璃公道杯", "茶器", [], 45, "耐热高硼硅 · 300ml", weight=200, motif="cup", status="draft"),
    DemoProduct("春茶礼盒 龙井碧螺春", "礼盒", [(SIZE, ["标准装", "豪华装"])], 398, "两款名优绿茶 · 送长辈送客户",
                weight=1200, motif="box"),
    DemoProduct("中秋茶礼 团圆", "礼盒", [(SIZE, ["单盒", "双盒"])], 298, "红茶 + 白茶 + 茶点", weight=1500, motif="box",
                status="scheduled"),
    DemoProduct("青山茶社 储值卡", "礼盒", [("面额", ["200 元", "500 元"])], 200, "会员储值 · 全场通用", kind="voucher",
                weight=0, motif="card"),
    DemoProduct("茶艺体验课（90 分钟）", "礼盒", [("门店", ["西湖旗舰店", "南京西路店", "天河体育中心店"])], 168,
                "专业茶艺师一对一 · 含品鉴茶", kind="service", weight=0, motif="cup"),
]

#: 包裹卡: one per type, recorded as virtual SKUs so their stock is tracked.
INSERT_CARDS: list[tuple[str, str, str]] = [
    ("包裹卡 · 上新与物流提醒", "notice", "扫码关注，第一时间收到上新与发货提醒"),
    ("包裹卡 · 青山茶社品牌故事", "brand", "一叶一世界：茶园、制茶人与我们的故事"),
    ("包裹卡 · 好评返现 加企微领 5 元", "marketing", "晒图好评后添加茶顾问，领取 5 元红包"),
    ("包裹卡 · 春茶季限定", "trending", "春茶季热点：扫码参与明前茶品鉴"),
]


def _prices(p: DemoProduct, rng: random.Random) -> list[tuple[dict[str, str], int, int | None, int]]:
    """(spec values, price fen, market price fen, weight g) for every combination."""
    combos: list[dict[str, str]] = [{}]
    for name, values in p.specs:
        combos = [{**c, name: v} for c in combos for v in values]
    out = []
    for combo in combos:
        factor = 1.0
        if p.specs:
            first_name, first_values = p.specs[0]
            idx = first_values.index(combo[first_name])
            factor = [1.0, 1.85, 4.3][idx] if p.kind == "physical" and p.category not in ("茶器", "礼盒") else 1.0 + 0.6 * idx
            if p.kind == "voucher":
                factor = [1.0, 2.5][idx]
        if combo.get(PACK) == "袋装":
            factor *= 0.92
        yuan_price = max(1, round(p.base * factor))
        if p.kind == "physical" and yuan_price > 20:
            yuan_price = round(yuan_price / 10) * 10 - 2  # shelf prices end in 8: 128, 238, 568
        price = yuan_price * 100
        market = price + rng.choice([0, 0, 20, 40, 60]) * 100 if p.kind == "physical" else None
        weight = 0 if p.kind != "physical" else int(p.weight * (factor if p.category not in ("茶器", "礼盒") else 1))
        out.append((combo, price, market if market and market > price else None, weight))
    return out


# -- images ---------------------------------------------------------------------------------------------


def _tint(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    """Mix with white (f > 0) or black (f < 0)."""
    if f >= 0:
        return (int(c[0] + (255 - c[0]) * f), int(c[1] + (255 - c[1]) * f), int(c[2] + (255 - c[2]) * f))
    return (int(c[0] * (1 + f)), int(c[1] * (1 + f)), int(c[2] * (1 + f)))


def product_image(color: tuple[int, int, int], motif: str, rng: random.Random, size: int = 640) -> bytes:
    """A calm square card: a soft gradient, a halo and a motif (leaf, cup, box or card)."""
    from PIL import Image, ImageDraw, ImageFilter

    s = size * 2  # draw large, shrink for smooth edges
    gradient = Image.new("RGB", (1, 2))
    gradient.putpixel((0, 0), _tint(color, 0.88))
    gradient.putpixel((0, 1), _tint(color, 0.62))
    img = gradient.resize((s, s), Image.Resampling.BILINEAR)
    small = s // 8
    halo = Image.new("L", (small, small), 0)
    ImageDraw.Draw(halo).ellipse([small * 0.18, small * 0.16, small * 0.82, small * 0.80], fill=120)
    halo = halo.filter(ImageFilter.GaussianBlur(small // 20)).resize((s, s), Image.Resampling.BILINEAR)
    img.paste(_tint(color, 0.95), (0, 0), halo)
    draw = ImageDraw.Draw(img)
    main, dark = color, _tint(color, -0.35)
    cx, cy = s / 2, s / 2
    if motif == "leaf":
        angle = math.radians(rng.uniform(-40, -20))
        length, width = s * 0.30, s * 0.13
        pts = []
        for i in range(81):
            u = i / 80 * 2 - 1  # -1 … 1 along the leaf
            half = width * (1 - u * u) ** 0.9 * (1 + 0.15 * u)
            pts.append((u * length, half))
        outline = pts + [(x, -y) for x, y in reversed(pts)]
        rot = [(cx + x * math.cos(angle) - y * math.sin(angle), cy + x * math.sin(angle) + y * math.cos(angle)) for x, y in outline]
        draw.polygon(rot, fill=main)
        tip = (cx + length * math.cos(angle), cy + length * math.sin(angle))
        base = (cx - length * 1.25 * math.cos(angle), cy - length * 1.25 * math.sin(angle))
        draw.line([base, tip], fill=dark, width=max(4, s // 160))
        for k in (-0.5, -0.1, 0.3):
            px, py = cx + k * length * math.cos(angle), cy + k * length * math.sin(angle)
            for sign in (1, -1):
                a2 = angle + sign * math.radians(50)
                draw.line([(px, py), (px + width * 0.8 * math.cos(a2), py + width * 0.8 * math.sin(a2))],
                          fill=dark, width=max(3, s // 220))
    elif motif == "cup":
        w, h = s * 0.34, s * 0.24
        draw.ellipse([cx - w / 2 - s * 0.06, cy + h / 2 - s * 0.03, cx + w / 2 + s * 0.06, cy + h / 2 + s * 0.05], fill=dark)
        draw.rounded_rectangle([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], radius=int(s * 0.08), fill=main)
        draw.ellipse([cx + w / 2 - s * 0.03, cy - h * 0.25, cx + w / 2 + s * 0.11, cy + h * 0.25], outline=main, width=s // 45)
        for i in range(3):
            x = cx - w / 4 + i * w / 4
            draw.arc([x - s * 0.03, cy - h / 2 - s * 0.16, x + s * 0.03, cy - h / 2 - s * 0.02], 100, 260, fill=dark,
                     width=s // 120)
    elif motif == "box":
        w, h = s * 0.42, s * 0.32
        draw.rectangle([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], fill=main)
        draw.rectangle([cx - w / 2 - s * 0.02, cy - h / 2 - s * 0.06, cx + w / 2 + s * 0.02, cy - h / 2 + s * 0.02], fill=dark)
        gold = (214, 178, 94)
        draw.rectangle([cx - s * 0.025, cy - h / 2 - s * 0.06, cx + s * 0.025, cy + h / 2], fill=gold)
        draw.ellipse([cx - s * 0.09, cy - h / 2 - s * 0.13, cx - s * 0.01, cy - h / 2 - s * 0.05], outline=gold, width=s // 80)
        draw.ellipse([cx + s * 0.01, cy - h / 2 - s * 0.13, cx + s * 0.09, cy - h / 2 - s * 0.05], outline=gold, width=s // 80)
    else:  # card
        w, h = s * 0.50, s * 0.32
        draw.rounded_rectangle([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], radius=int(s * 0.03), fill=main)
        light = _tint(color, 0.7)
        draw.rectangle([cx - w / 2 + s * 0.04, cy - h / 2 + s * 0.05, cx - w / 2 + s * 0.14, cy - h / 2 + s * 0.12], fill=light)
        for i in range(3):
            y = cy + s * 0.02 + i * s * 0.04
            draw.line([(cx - w / 2 + s * 0.04, y), (cx + w / 2 - s * (0.04 + 0.08 * i), y)], fill=light, width=s // 110)
    out = img.resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue()


def _storage() -> Storage:
    from siyu.kit.runtime import get_runtime

    try:
        return get_runtime().media
    except RuntimeError:
        from siyu.config import get_settings

        return LocalStorage(get_settings().var_dir / "media")


# -- seeding ----------------------------------------------------------------------------------------------


def _description(p: DemoProduct) -> str:
    lines = "".join(f"<li>{n}</li>" for n in p.notes) if p.notes else ""
    body = f"<p>{p.subtitle}。</p>"
    if lines:
        body += f"<ul>{lines}</ul>"
    if p.kind == "physical" and p.category not in ("茶器", "礼盒"):
        body += "<h3>储存建议</h3><p>密封、避光、防潮、远离异味，开封后请尽快饮用。</p>"
    return body


async def seed_catalog(session: AsyncSession, scope: TenantScope, rng: random.Random,
                       storage: Storage | None = None) -> list[int]:
    """Create the demo catalogue for ``scope``; return the ids of the SKUs shoppers can buy."""
    storage = storage or _storage()
    colors = dict(CATEGORIES)
    cat_ids: dict[str, int] = {}
    for i, (name, _color) in enumerate(CATEGORIES):
        cat = await service.create_category(session, scope, CategoryIn(name=name, sort=(i + 1) * 10))
        cat_ids[name] = cat.id
        for j, child in enumerate(SUB_CATEGORIES.get(name, [])):
            sub = await service.create_category(session, scope, CategoryIn(name=child, parent_id=cat.id, sort=(j + 1) * 10))
            cat_ids[child] = sub.id
            colors[child] = _tint(colors[name], rng.uniform(-0.15, 0.1))

    async def image(color: tuple[int, int, int], motif: str) -> str:
        stored = await save_image(session, storage, tenant_id=scope.id, data=product_image(color, motif, rng), purpose="product")
        return stored.url

    sellable: list[int] = []
    for n, p in enumerate(PRODUCTS):
        color = colors[p.category]
        shade = _tint(color, rng.uniform(-0.12, 0.12))
        images = [await image(shade, p.motif)]
        if n % 3 == 0:
            images.append(await image(_tint(shade, 0.25), "leaf" if p.motif == "leaf" else p.motif))
        skus: list[dict[str, Any]] = [
            {"spec_values": combo, "price_fen": price, "market_price_fen": market, "cost_price_fen": price * rng.randint(35, 55) // 100,
             "weight_g": weight, "barcode": f"69{rng.randrange(10**10, 10**11)}" if p.kind == "physical" else None}
            for combo, price, market, weight in _prices(p, rng)
        ]
        product = await service.create_product(session, scope, ProductIn.model_validate({
            "title": p.title, "subtitle": p.subtitle, "category_id": cat_ids[p.category], "kind": p.kind,
            "specs": [{"name": name, "values": values} for name, values in p.specs], "skus": skus,
            "description_html": _description(p), "images": images, "sort": n,
        }))
        if p.status in ("on_sale", "off_sale"):
            await service.change_status(session, scope, product.id, "publish")
        if p.status == "off_sale":
            await service.change_status(session, scope, product.id, "unpublish")
        if p.status == "scheduled":
            await service.change_status(session, scope, product.id, "schedule", clock.now() + timedelta(days=7))
        if p.status == "on_sale":
            await service.record_sales(session, scope, {product.id: rng.randint(12, 860)})
            sellable.extend(s.id for s in await service.product_skus(session, scope, product.id) if s.status == "active")
    for title, card_type, subtitle in INSERT_CARDS:
        card = await service.create_product(session, scope, ProductIn.model_validate({
            "title": title, "subtitle": subtitle, "kind": "insert_card", "insert_card_type": card_type,
            "skus": [{"price_fen": 0, "cost_price_fen": rng.choice([15, 20, 30]), "weight_g": 5}],
            "images": [await image((60, 100, 90), "card")], "sort": 100,
            "description_html": f"<p>{subtitle}。随订单包裹寄出，扫码进入私域。</p>",
        }))
        await service.change_status(session, scope, card.id, "publish")
    return sellable
