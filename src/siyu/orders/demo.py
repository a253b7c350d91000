"""Demo orders for ``siyu demo``: half a year of 青山茶社's trade, in every state.

The orders are not written as rows. Each one is placed, paid, shipped, received, cancelled
or refunded through the services a shopper, the staff, the sandbox gateway and the sweepers
use, with the clock set to when that step happened. So every table tells one story — stock
reservations and commits in the inventory ledger, sandbox payments with their signed
notifications, parcels, the order timeline with who did what, after-sales cases and their
refunds, audit entries, product sales counts — and a later change to any of those services
shows in the demo as well.

The steps of all orders run in time order (the ledger's running balances read forwards), in
units of work of about fifty orders. Outbox events raised by a step are handled inside the
same unit of work, as the relay would handle them after commit; a sandbox notification is
verified and applied as the notify endpoint would do it. Only the refunds of the cases left
「退款中」 stay in the outbox: they finish once the server runs.

Same ``rng`` state → the same customers, goods, times and outcomes. Numbers the services draw
from a secure source (order, case and payment numbers) differ between runs.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event as sa_event
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import clock, outbox
from siyu.kit.context import SYSTEM, Actor, actor_var
from siyu.kit.errors import DomainError
from siyu.kit.outbox import OutboxEvent
from siyu.kit.runtime import Runtime
from siyu.kit.tenancy import TenantScope

log = logging.getLogger("siyu.orders.demo")

#: How far back the demo's trade goes.
ORDER_DAYS = 180
#: Orders with an after-sales case that ran its course are at least this old, so the case fits.
CASE_DAYS = 27
BATCH = 50
REFUND_SUBMIT_TOPIC = "payments.refund.submit"

# -- the shape of the trade ----------------------------------------------------------------------------

#: Orders per hour of the day (Beijing time): lunch break and the evening are busiest.
HOUR_WEIGHTS = (2, 1, 0.5, 0.3, 0.2, 0.3, 0.8, 2, 3, 4, 5, 5, 6, 5, 4, 4, 4, 4.5, 5, 7, 9, 10, 8, 4.5)
#: Shopping festivals: 双11 above all, 618 and 双12.
PEAK_DAYS = {(11, 11): 7.0, (11, 10): 2.5, (11, 12): 2.0, (6, 18): 3.0, (6, 17): 1.6, (12, 12): 2.5, (12, 11): 1.4}

#: Orders still awaiting payment: placed in the last minutes, so a visitor can still pay them.
PENDING_SHARE = 0.005
#: Where an order of each state of current trade is placed (youngest, oldest): at least one of
#: each, so even a small demo shows every state.
RECENT_WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "pending": (timedelta(minutes=2), timedelta(minutes=12)),
    "paid": (timedelta(minutes=40), timedelta(days=2)),
    "partially_shipped": (timedelta(hours=8), timedelta(days=3)),
    "shipped": (timedelta(hours=20), timedelta(days=8)),
    "delivered": (timedelta(days=2, hours=12), timedelta(days=9)),
    "case_requested": (timedelta(days=4), timedelta(days=12)),
    "case_approved": (timedelta(days=4), timedelta(days=12)),
    "case_returning": (timedelta(days=5), timedelta(days=13)),
    "case_refunding": (timedelta(hours=3), timedelta(days=2)),
}
#: How an order ends, by its age (up to, fates with weights): young orders are still under way.
AGE_BANDS: tuple[tuple[timedelta | None, tuple[tuple[str, float], ...]], ...] = (
    (timedelta(days=2), (("paid", 50), ("partially_shipped", 8), ("shipped", 15), ("case_refunding", 3),
                         ("cancel_shopper", 7), ("cancel_timeout", 7), ("cancel_staff", 1), ("closed_unshipped", 3))),
    (timedelta(days=9), (("shipped", 25), ("delivered", 25), ("completed", 30), ("case_requested", 2), ("case_approved", 1.5),
                         ("case_returning", 1.5), ("cancel_shopper", 4), ("cancel_timeout", 4), ("cancel_staff", 1),
                         ("closed_unshipped", 3))),
    (timedelta(days=27), (("completed", 86), ("cancel_shopper", 4), ("cancel_timeout", 4), ("cancel_staff", 1),
                          ("closed_unshipped", 3), ("refund_after_receipt", 2))),
    (None, (("completed", 78), ("cancel_shopper", 4.5), ("cancel_timeout", 4.5), ("cancel_staff", 1.2),
            ("closed_unshipped", 2.5), ("closed_returned", 1.2), ("return_refunded", 3), ("refund_after_receipt", 2),
            ("case_rejected", 1), ("case_withdrawn", 1))),
)
#: Endings every demo shows at least once (an old completed order ends this way instead).
REQUIRED_HISTORY = ("cancel_shopper", "cancel_timeout", "cancel_staff", "closed_unshipped", "closed_returned",
                    "return_refunded", "refund_after_receipt", "case_rejected", "case_withdrawn")
#: Fates whose case needs the order to be old enough for the case to have run its course.
LONG_FATES = frozenset({"closed_returned", "return_refunded", "refund_after_receipt", "case_rejected", "case_withdrawn"})
#: Fates whose goods must all ship (returns, partial shipping, refunds of shipped units).
PHYSICAL_FATES = frozenset({"paid", "partially_shipped", "shipped", "delivered", "closed_returned", "return_refunded",
                            "refund_after_receipt", "case_rejected", "case_withdrawn", "case_requested",
                            "case_approved", "case_returning", "closed_unshipped", "case_refunding"})
#: Fates that refund part of an order and keep it open: at least two units, so part is left.
PARTIAL_FATES = frozenset({"return_refunded", "refund_after_receipt", "partially_shipped"})

BUYER_NOTES = ("请尽快发货，谢谢", "送人的，麻烦包装好一点", "不要放发票和价格单", "工作日白天不在家，请放快递柜",
               "麻烦多放两包试饮装", "老顾客了，要今年的新茶哦", "请用顺丰发货", "生日礼物，麻烦附张贺卡")
SELLER_NOTES = ("老客户，随单赠送试饮装", "已电话确认收货地址", "顾客要求顺丰发货", "礼品单，不放价格单",
                "顾客咨询过冲泡方法，已发图文说明")
SHOPPER_CANCEL_REASONS = ("不想要了", "地址填错了，重新下单", "商品选错了", "想换个规格", "暂时不需要了")
STAFF_CANCEL_REASONS = ("顾客来电要求取消", "重复下单，已与顾客确认", "顾客要求改为门店自提")
REJECT_REASONS = ("茶叶已开封，影响二次销售，不支持无理由退款", "经核实发货时商品完好，建议联系快递理赔",
                  "已超出无理由退货范围，可为您申请补偿优惠券")
#: (kind, reason, description) of cases shoppers open after receiving their parcel.
AFTER_RECEIPT_CASES: tuple[tuple[str, str, str | None], ...] = (
    ("refund_only", "商品破损", "快递外箱压坏，茶叶罐有明显凹陷"),
    ("refund_only", "少件漏发", "订单里的茶叶少发了一罐"),
    ("refund_only", "质量问题", "茶叶有受潮结块的情况"),
)
RETURN_CASES: tuple[tuple[str, str, str | None], ...] = (
    ("return_refund", "七天无理由退货", "口味不太适合，包装未拆"),
    ("return_refund", "质量问题", "茶汤浑浊，有异味"),
    ("return_refund", "发错货", "下单的是 100g，收到的是 50g"),
    ("return_refund", "与描述不符", "颜色和详情页图片差别较大"),
)
#: Refund requests staff turn down (the shopper changed their mind about opened tea).
REJECTED_CASES: tuple[tuple[str, str, str | None], ...] = (
    ("refund_only", "不想要了", None),
    ("refund_only", "与描述不符", "和想象中的口感不一样"),
)
UNSHIPPED_REASONS = ("拍错了/多拍了", "不想要了")
#: Carriers parcels go out with (code, weight) and how shoppers name them when sending goods back.
CARRIERS = (("SF", 40), ("ZTO", 20), ("YTO", 12), ("YD", 12), ("JD", 10), ("EMS", 6))
RETURN_CARRIERS = ("顺丰速运", "中通快递", "圆通速递", "韵达快递", "京东快递")
TRACKING_PREFIX = {"SF": "SF1", "ZTO": "78", "YTO": "YT", "YD": "43", "JD": "JDVA", "EMS": "98"}

# -- addresses -----------------------------------------------------------------------------------------

#: province code → (weight, [(city, postal code, districts, streets)]). Weights follow where a
#: Hangzhou tea brand's online buyers live: 江浙沪 and the big southern and northern cities.
ADDRESS_BOOK: dict[str, tuple[float, list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]]] = {
    "33": (18, [("杭州市", "310000", ("西湖区", "上城区", "拱墅区", "滨江区", "余杭区"),
                 ("文三路", "天目山路", "解放路", "江南大道", "文一西路")),
                ("宁波市", "315000", ("海曙区", "鄞州区"), ("中山西路", "天童南路")),
                ("温州市", "325000", ("鹿城区", "瓯海区"), ("人民西路", "温州大道")),
                ("绍兴市", "312000", ("越城区",), ("解放北路", "中兴中路"))]),
    "31": (14, [("上海市", "200000", ("静安区", "徐汇区", "浦东新区", "长宁区", "黄浦区"),
                 ("南京西路", "衡山路", "张杨路", "愚园路", "淮海中路"))]),
    "32": (11, [("南京市", "210000", ("鼓楼区", "玄武区", "建邺区"), ("中山北路", "珠江路", "江东中路")),
                ("苏州市", "215000", ("姑苏区", "工业园区"), ("干将西路", "星湖街")),
                ("无锡市", "214000", ("梁溪区", "滨湖区"), ("人民中路", "蠡湖大道"))]),
    "44": (12, [("广州市", "510000", ("天河区", "越秀区", "海珠区"), ("天河路", "中山五路", "江南大道中")),
                ("深圳市", "518000", ("南山区", "福田区"), ("科技园路", "深南大道")),
                ("佛山市", "528000", ("禅城区",), ("季华五路",)),
                ("东莞市", "523000", ("南城街道",), ("鸿福路",))]),
    "11": (8, [("北京市", "100000", ("朝阳区", "海淀区", "东城区", "丰台区"), ("建国路", "中关村大街", "安定门内大街", "丰台北路"))]),
    "35": (4, [("福州市", "350000", ("鼓楼区", "台江区"), ("五四路", "工业路")),
               ("厦门市", "361000", ("思明区", "湖里区"), ("厦禾路", "仙岳路"))]),
    "51": (4, [("成都市", "610000", ("锦江区", "武侯区", "高新区"), ("春熙路", "人民南路", "天府大道"))]),
    "37": (4, [("济南市", "250000", ("历下区", "市中区"), ("泉城路", "经十路")),
               ("青岛市", "266000", ("市南区", "崂山区"), ("香港中路", "海尔路"))]),
    "42": (3, [("武汉市", "430000", ("武昌区", "江汉区", "洪山区"), ("中北路", "建设大道", "珞喻路"))]),
    "34": (3, [("合肥市", "230000", ("蜀山区", "包河区"), ("长江西路", "徽州大道"))]),
    "43": (2, [("长沙市", "410000", ("岳麓区", "芙蓉区"), ("麓山南路", "五一大道"))]),
    "41": (2, [("郑州市", "450000", ("金水区", "二七区"), ("花园路", "大学路"))]),
    "12": (2, [("天津市", "300000", ("和平区", "南开区", "河西区"), ("南京路", "卫津路", "友谊路"))]),
    "50": (2, [("重庆市", "400000", ("渝中区", "江北区", "南岸区"), ("民权路", "建新北路", "南坪西路"))]),
    "61": (2, [("西安市", "710000", ("雁塔区", "碑林区"), ("小寨东路", "南大街"))]),
    "53": (1.5, [("昆明市", "650000", ("五华区", "盘龙区"), ("东风西路", "北京路"))]),
    "21": (1.5, [("沈阳市", "110000", ("和平区", "沈河区"), ("南京北街", "青年大街")),
                 ("大连市", "116000", ("中山区", "沙河口区"), ("人民路", "西安路"))]),
    "36": (1, [("南昌市", "330000", ("东湖区", "红谷滩区"), ("八一大道", "丰和中大道"))]),
    "45": (1, [("南宁市", "530000", ("青秀区",), ("民族大道",))]),
    "13": (1, [("石家庄市", "050000", ("长安区", "裕华区"), ("中山东路", "槐安东路"))]),
    "14": (0.6, [("太原市", "030000", ("小店区", "迎泽区"), ("长风街", "迎泽大街"))]),
    "23": (0.6, [("哈尔滨市", "150000", ("南岗区", "道里区"), ("西大直街", "中央大街"))]),
    "52": (0.6, [("贵阳市", "550000", ("云岩区",), ("中华北路",))]),
    "22": (0.5, [("长春市", "130000", ("朝阳区",), ("人民大街",))]),
    "46": (0.5, [("海口市", "570000", ("龙华区",), ("滨海大道",))]),
    "15": (0.3, [("呼和浩特市", "010000", ("赛罕区",), ("大学西街",))]),
    "62": (0.3, [("兰州市", "730000", ("城关区",), ("东岗西路",))]),
    "65": (0.3, [("乌鲁木齐市", "830000", ("天山区",), ("解放北路",))]),
    "81": (0.2, [("香港", "999077", ("九龙城区", "湾仔区"), ("太子道西", "轩尼诗道"))]),
    "54": (0.1, [("拉萨市", "850000", ("城关区",), ("北京中路",))]),
}
#: Days a parcel from Hangzhou travels: next door, the rest of the mainland, far away.
NEAR = frozenset({"31", "32", "33", "34"})
FAR = frozenset({"15", "46", "54", "62", "63", "64", "65", "71", "81", "82"})
COMPOUNDS = ("翠苑一区", "阳光花园", "锦绣华庭", "书香苑", "桂花园", "金色家园", "滨江花园", "世纪新城", "和平里小区",
             "梧桐苑", "嘉禾园", "枫林湾")
OFFICES = ("国际金融中心", "科技大厦", "创意产业园", "时代广场", "中心大厦")
GIVEN_NAMES = ("小雨", "思琪", "浩然", "子涵", "雅婷", "俊杰", "欣怡", "宇轩", "梓萱", "晨曦", "一鸣", "佳怡", "若曦",
               "嘉豪", "诗涵", "明轩", "静怡", "文博", "婉清", "天佑", "建国", "丽华", "秀英", "志强", "海燕", "晓东")
#: Demo nicknames that are not names (品茗, 茶友...): the receiver gets a real given name.
NOT_NAMES = frozenset({"茶友", "品茗", "清风", "明月"})


@contextlib.contextmanager
def historical(when: datetime) -> Iterator[None]:
    """Run a block as if it were ``when``; the clock comes back afterwards, also on errors.

    Flush inside the block: column defaults such as ``created_at`` are read at flush time."""
    before = clock.now() - datetime.now(UTC)
    _set_clock(when)
    try:
        yield
    finally:
        clock.reset()
        if abs(before) > timedelta(seconds=1):
            clock.travel(before)


def _set_clock(when: datetime) -> None:
    clock.reset()
    clock.travel(when - clock.now())


# -- what the plan is made of ---------------------------------------------------------------------------


@dataclass
class DemoCustomer:
    id: int
    created_at: datetime
    nickname: str | None
    phone: str | None
    #: How much more than an average customer this one buys (a few loyal customers buy a lot).
    weight: float = 1.0
    address_id: int | None = None
    address: dict[str, Any] | None = None


@dataclass(frozen=True)
class DemoGoods:
    sku_id: int
    product_id: int
    title: str
    ships: bool
    #: How often it is bought, relative to the others.
    popularity: float
    gift: bool = False
    teaware: bool = False


@dataclass
class PlannedOrder:
    n: int
    fate: str
    placed_at: datetime
    customer: DemoCustomer
    lines: list[tuple[int, int]]
    channel: str
    key: str
    note: str | None
    #: Per order, so an order's random choices (tracking numbers...) do not depend on the others.
    seed: int = 0
    order_id: int | None = None
    out_trade_no: str | None = None
    case_id: int | None = None
    failed: bool = False


@dataclass(order=True)
class Step:
    at: datetime
    seq: int
    order: PlannedOrder = field(compare=False)
    action: str = field(compare=False)
    args: dict[str, Any] = field(compare=False, default_factory=dict)


@dataclass(frozen=True)
class Timings:
    """The tenant's order settings the plan must respect."""

    pay_timeout: timedelta = timedelta(minutes=30)
    auto_confirm: timedelta = timedelta(days=10)


class _Weights:
    """Weights that change one at a time, with prefix sums and weighted picks in O(log n)
    (a Fenwick tree): so choosing among 100,000 customers stays cheap."""

    def __init__(self, weights: Sequence[float]) -> None:
        self.n = len(weights)
        self.values = [0.0] * self.n
        self.tree = [0.0] * (self.n + 1)
        for i, w in enumerate(weights):
            self.set(i, w)

    def set(self, i: int, w: float) -> None:
        delta, self.values[i] = w - self.values[i], w
        j = i + 1
        while j <= self.n:
            self.tree[j] += delta
            j += j & -j

    def total(self, k: int) -> float:
        """The sum of the first ``k`` weights."""
        out = 0.0
        while k > 0:
            out += self.tree[k]
            k -= k & -k
        return out

    def find(self, r: float) -> int:
        """The index whose weight covers ``r`` (0 <= r < total)."""
        pos, step = 0, 1 << self.n.bit_length()
        while step:
            nxt = pos + step
            if nxt <= self.n and self.tree[nxt] <= r:
                pos = nxt
                r -= self.tree[nxt]
            step >>= 1
        return pos


def _u(rng: random.Random, lo: timedelta, hi: timedelta) -> timedelta:
    return lo + (hi - lo) * rng.random()


class Planner:
    """Decides, without touching the database, which orders happen when and how they end."""

    def __init__(self, rng: random.Random, *, now: datetime, timezone: str, customers: Sequence[DemoCustomer],
                 goods: Sequence[DemoGoods], timings: Timings) -> None:
        self.rng = rng
        self.now = now
        self.tz = ZoneInfo(timezone)
        self.customers = sorted(customers, key=lambda c: (c.created_at, c.id))
        self.joined = [c.created_at for c in self.customers]
        self.bought = [0] * len(self.customers)
        self.tree = _Weights([c.weight for c in self.customers])
        self.goods = list(goods)
        self.by_sku = {g.sku_id: g for g in self.goods}
        self.timings = timings
        self.steps: list[Step] = []
        self._seq = 0
        today = now.astimezone(self.tz).date()
        self.days = [today - timedelta(days=i) for i in range(ORDER_DAYS + 1)]
        self.day_weights = [self._day_weight(d, i) for i, d in enumerate(self.days)]

    # -- when ------------------------------------------------------------------------------------

    @staticmethod
    def _day_weight(day: date, age: int) -> float:
        w = 0.6 + 0.9 * (1 - age / ORDER_DAYS)  # the shop grows: recent months are busier
        if day.weekday() >= 5:
            w *= 1.3
        if (day.month, day.day) in PEAK_DAYS:
            w *= PEAK_DAYS[(day.month, day.day)]
        elif day.month == 11 and day.day < 10:
            w *= 1.5  # 双11 presales and carts filling up
        return w

    def moment(self, youngest: timedelta, oldest: timedelta) -> datetime:
        """A time between ``oldest`` and ``youngest`` ago, weighted by day and hour."""
        lo, hi = self.now - oldest, self.now - youngest
        if oldest - youngest < timedelta(days=1):
            return lo + (hi - lo) * self.rng.random()
        idx = [i for i, d in enumerate(self.days) if lo.astimezone(self.tz).date() <= d <= hi.astimezone(self.tz).date()]
        weights = [self.day_weights[i] for i in idx]
        for _attempt in range(30):
            day = self.days[self.rng.choices(idx, weights)[0]]
            hour = self.rng.choices(range(24), HOUR_WEIGHTS)[0]
            at = datetime.combine(day, time(hour, self.rng.randrange(60), self.rng.randrange(60)), self.tz)
            if lo <= at <= hi:
                return at.astimezone(UTC)
        return lo + (hi - lo) * self.rng.random()

    def _working_hours(self, at: datetime, start: int = 9, end: int = 20) -> datetime:
        """Staff (and, from 8 to 23, shoppers) act between ``start`` and ``end`` o'clock: what
        falls at night waits for the next morning."""
        local = at.astimezone(self.tz)
        if start <= local.hour < end:
            return at
        day = local.date() if local.hour < start else local.date() + timedelta(days=1)
        opening = datetime.combine(day, time(start), self.tz)
        return (opening + _u(self.rng, timedelta(0), timedelta(hours=2, minutes=30))).astimezone(UTC)

    # -- who and what --------------------------------------------------------------------------------

    def customer(self, before: datetime) -> DemoCustomer:
        """A customer who had registered by then. New customers often buy within days of
        joining (what the welcome coupon is for); the rest come back by their loyalty, a
        little less often with every order they already placed."""
        cutoff = before - timedelta(minutes=10)
        k = bisect.bisect_right(self.joined, cutoff)
        if k == 0:
            return self.customers[0]
        recent = bisect.bisect_left(self.joined, cutoff - timedelta(days=14), 0, k)
        newcomers = [i for i in range(recent, k) if self.bought[i] == 0]
        if newcomers and self.rng.random() < 0.35:
            i = self.rng.choice(newcomers)
        else:
            i = self.tree.find(self.rng.random() * self.tree.total(k))
            i = min(i, k - 1)
        self.bought[i] += 1
        c = self.customers[i]
        self.tree.set(i, c.weight / (1 + 0.3 * self.bought[i]))
        return c

    def lines(self, at: datetime, *, physical: bool, min_units: int = 1, min_lines: int = 1) -> list[tuple[int, int]]:
        month = at.astimezone(self.tz).month
        pool = [g for g in self.goods if g.ships or not physical] or self.goods
        weights = [g.popularity * (3.0 if g.gift and month in (11, 12) else 1.0) for g in pool]
        count = max(min_lines, self.rng.choices((1, 2, 3, 4), (55, 28, 12, 5))[0])
        chosen: list[DemoGoods] = []
        for _attempt in range(40):
            if len(chosen) >= count:
                break
            g = self.rng.choices(pool, weights)[0]
            if all(g.product_id != c.product_id for c in chosen):
                chosen.append(g)
        out: list[tuple[int, int]] = []
        for g in chosen:
            if not g.ships:
                qty = 1
            elif g.gift or g.teaware:
                qty = self.rng.choices((1, 2), (88, 12))[0]
            else:
                qty = self.rng.choices((1, 2, 3, 4, 5), (68, 20, 8, 3, 1))[0]
            out.append((g.sku_id, qty))
        if sum(q for _s, q in out) < min_units:
            sku, qty = out[0]
            out[0] = (sku, qty + min_units - sum(q for _s, q in out))
        return out

    # -- the plan --------------------------------------------------------------------------------------

    def fates(self, count: int) -> list[tuple[str, datetime]]:
        """(fate, placed at) of ``count`` orders: most follow the shop's rhythm and end as orders
        of their age do; a few are placed where every state is sure to appear."""
        forced = ["pending"] * max(1, round(count * PENDING_SHARE)) + [f for f in RECENT_WINDOWS if f != "pending"]
        windows = dict(RECENT_WINDOWS)
        # Unpaid orders keep most of their pay window, however short the shop set it.
        windows["pending"] = (timedelta(minutes=1), min(RECENT_WINDOWS["pending"][1], self.timings.pay_timeout * 0.4))
        out = [(fate, self.moment(*windows[fate])) for fate in forced[:count]]
        for _ in range(count - len(out)):
            at = self.moment(timedelta(minutes=20), timedelta(days=ORDER_DAYS))
            age = self.now - at
            band = next(fates for upto, fates in AGE_BANDS if upto is None or age < upto)
            out.append((self.rng.choices([f for f, _w in band], [w for _f, w in band])[0], at))
        have = {fate for fate, _at in out}
        spare = [i for i, (fate, at) in enumerate(out) if fate == "completed" and self.now - at >= timedelta(days=CASE_DAYS)]
        for fate in REQUIRED_HISTORY:
            if fate not in have and spare:
                i = spare.pop(self.rng.randrange(len(spare)))
                out[i] = (fate, out[i][1])
        return out

    def plan(self, count: int) -> list[Step]:
        orders: list[PlannedOrder] = []
        # In time order, so a customer's first order comes before their repeat orders.
        picks = sorted(self.fates(count), key=lambda p: p[1])
        for n, (fate, placed) in enumerate(picks):
            who = self.customer(placed)
            if who.created_at > placed - timedelta(minutes=10):  # nobody had registered yet: the first customer's first days
                placed = min(who.created_at + _u(self.rng, timedelta(hours=1), timedelta(days=3)), self.now - timedelta(minutes=20))
            physical = fate in PHYSICAL_FATES
            lines = self.lines(placed, physical=physical, min_units=2 if fate in PARTIAL_FATES else 1,
                               min_lines=2 if fate == "partially_shipped" else 1)
            orders.append(PlannedOrder(
                n=n, fate=fate, placed_at=placed, customer=who, lines=lines,
                channel=self.rng.choices(("mini_program", "h5"), (62, 38))[0],
                key=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                note=self.rng.choice(BUYER_NOTES) if self.rng.random() < 0.08 else None,
                seed=self.rng.getrandbits(64),
            ))
        orders.sort(key=lambda o: (o.placed_at, o.n))
        for o in orders:
            self._steps_of(o)
        self.steps.sort()
        return self.steps

    def _add(self, o: PlannedOrder, at: datetime, action: str, **args: Any) -> None:
        self._seq += 1
        self.steps.append(Step(at, self._seq, o, action, args))

    def _ships(self, o: PlannedOrder) -> bool:
        return any(self.by_sku[s].ships for s, _q in o.lines)

    def _transit(self, o: PlannedOrder) -> timedelta:
        province = (o.customer.address or {}).get("province_code", "33")
        if province in NEAR:
            return _u(self.rng, timedelta(hours=20), timedelta(days=2))
        if province in FAR:
            return _u(self.rng, timedelta(days=3), timedelta(days=6))
        return _u(self.rng, timedelta(days=2), timedelta(days=3, hours=12))

    def _steps_of(self, o: PlannedOrder) -> None:
        """The steps of one order from its fate; times of recent orders are squeezed before now."""
        rng, p, fate = self.rng, o.placed_at, o.fate
        if o.customer.address is None:
            o.customer.address = self.address(o.customer)
        steps: list[tuple[datetime, str, dict[str, Any]]] = [(p, "place", {})]
        opened = p + _u(rng, timedelta(seconds=10), timedelta(seconds=100))
        paid = opened + _u(rng, timedelta(seconds=15), timedelta(minutes=3, seconds=20))

        def pay() -> None:
            steps.append((opened, "open_pay", {}))
            steps.append((paid, "pay", {}))

        def ship(partial: bool = False) -> datetime:
            at = self._working_hours(paid + _u(rng, timedelta(hours=2), timedelta(hours=30)))
            steps.append((at, "ship", {"partial": partial, "carrier": self._carrier()}))
            return at

        def cs(at: datetime) -> datetime:  # customer service answers between 9:00 and 22:00
            return self._working_hours(at, 9, 22)

        def received(shipped: datetime, *, auto_ok: bool = True) -> datetime:
            """Completion: the shopper confirms after the parcel arrives, or the deadline does it."""
            arrived = shipped + self._transit(o)
            auto = shipped + self.timings.auto_confirm + _u(rng, timedelta(seconds=5), timedelta(minutes=4, seconds=50))
            if auto_ok and rng.random() < 0.45 and auto < self.now - timedelta(minutes=5):
                steps.append((auto, "auto_confirm", {}))
                return auto
            at = self._working_hours(arrived + _u(rng, timedelta(hours=1), timedelta(days=3)), 8, 23)
            steps.append((at, "confirm", {}))
            return at

        def case(after: datetime, kind: str, reason: str, description: str | None, scope: str, *,
                 by: str = "customer") -> datetime:
            steps.append((after, "case_open", {"kind": kind, "reason": reason, "description": description,
                                               "scope": scope, "pick": rng.random(), "by": by}))
            return after

        if fate == "pending":
            if rng.random() < 0.5:
                steps.append((opened, "open_pay", {}))
        elif fate == "cancel_shopper":
            cancel_at = p + _u(rng, timedelta(minutes=2), timedelta(minutes=25))
            if rng.random() < 0.4:
                steps.append((opened, "open_pay", {}))
            steps.append((cancel_at, "cancel", {"by": "customer", "reason": rng.choice(SHOPPER_CANCEL_REASONS)}))
        elif fate == "cancel_staff":
            steps.append((p + _u(rng, timedelta(minutes=5), timedelta(minutes=25)), "cancel",
                          {"by": "staff", "reason": rng.choice(STAFF_CANCEL_REASONS)}))
        elif fate == "cancel_timeout":
            r = rng.random()
            if r < 0.7:
                steps.append((opened, "open_pay", {}))
            if r < 0.35:  # pressed 取消 on the cashier
                steps.append((opened + _u(rng, timedelta(seconds=20), timedelta(minutes=3)), "pay_cancel", {}))
            steps.append((p + self.timings.pay_timeout + _u(rng, timedelta(seconds=5), timedelta(seconds=30)), "timeout", {}))
        else:
            pay()
            if fate == "paid":
                pass
            elif fate == "case_refunding":
                opened_case = case(paid + _u(rng, timedelta(minutes=10), timedelta(hours=2)), "refund_only",
                                   rng.choice(UNSHIPPED_REASONS), None, "all")
                steps.append((cs(opened_case + _u(rng, timedelta(minutes=15), timedelta(hours=2))), "case_approve",
                              {"defer": True}))
            elif fate == "closed_unshipped":
                if rng.random() < 0.6:
                    opened_case = case(paid + _u(rng, timedelta(minutes=10), timedelta(hours=8)), "refund_only",
                                       rng.choice(UNSHIPPED_REASONS), None, "all")
                    steps.append((cs(opened_case + _u(rng, timedelta(minutes=20), timedelta(hours=6))), "case_approve", {}))
                else:
                    case(cs(paid + _u(rng, timedelta(hours=2), timedelta(hours=20))), "refund_only", "缺货无法发货", None,
                         "all", by="staff")
            elif self._ships(o):
                shipped = ship(partial=fate == "partially_shipped")
                if fate == "delivered":
                    steps.append((self._working_hours(shipped + self._transit(o)), "deliver", {}))
                elif fate in ("completed", "closed_returned", "return_refunded", "refund_after_receipt", "case_rejected",
                              "case_withdrawn", "case_requested", "case_approved", "case_returning"):
                    done = received(shipped, auto_ok=fate == "completed" or (
                        fate in LONG_FATES and self.now - p >= timedelta(days=CASE_DAYS)))
                    self._case_steps(o, steps, done, case, cs)
            if fate in ("paid", "shipped", "completed", "delivered") and rng.random() < 0.05:
                steps.append((cs(paid + _u(rng, timedelta(minutes=30), timedelta(hours=6))), "note",
                              {"text": rng.choice(SELLER_NOTES)}))
        self._fit(o, steps)

    def _case_steps(self, o: PlannedOrder, steps: list[tuple[datetime, str, dict[str, Any]]], done: datetime,
                    case: Callable[..., datetime], cs: Callable[[datetime], datetime]) -> None:
        rng, fate = self.rng, o.fate
        opened = self._working_hours(done + _u(rng, timedelta(hours=2), timedelta(days=4)), 8, 23)
        if fate in ("closed_returned", "return_refunded", "case_approved", "case_returning"):
            kind, reason, description = rng.choice(RETURN_CASES)
            case(opened, kind, reason, description, "all" if fate == "closed_returned" else "part")
            approved = cs(opened + _u(rng, timedelta(hours=1), timedelta(hours=20)))
            steps.append((approved, "case_approve", {}))
            if fate == "case_approved":
                return
            sent = self._working_hours(approved + _u(rng, timedelta(hours=4), timedelta(days=2)), 8, 23)
            steps.append((sent, "case_return", {"carrier": rng.choice(RETURN_CARRIERS)}))
            if fate == "case_returning":
                return
            steps.append((self._working_hours(sent + _u(rng, timedelta(days=2), timedelta(days=4))), "case_receive", {}))
        elif fate == "refund_after_receipt":
            kind, reason, description = rng.choice(AFTER_RECEIPT_CASES)
            case(opened, kind, reason, description, "unit")
            steps.append((cs(opened + _u(rng, timedelta(hours=1), timedelta(hours=20))), "case_approve", {}))
        elif fate == "case_rejected":
            kind, reason, description = rng.choice(REJECTED_CASES)
            case(opened, kind, reason, description, "part")
            steps.append((cs(opened + _u(rng, timedelta(hours=2), timedelta(hours=20))), "case_reject",
                          {"reason": rng.choice(REJECT_REASONS)}))
        elif fate == "case_withdrawn":
            case(opened, "return_refund", rng.choice(("拍错了/多拍了", "不想要了")), None, "part")
            steps.append((self._working_hours(opened + _u(rng, timedelta(minutes=20), timedelta(hours=20)), 8, 23),
                          "case_withdraw", {}))
        elif fate == "case_requested":
            kind, reason, description = rng.choice(AFTER_RECEIPT_CASES + RETURN_CASES)
            case(opened, kind, reason, description, "unit")

    def _fit(self, o: PlannedOrder, steps: list[tuple[datetime, str, dict[str, Any]]]) -> None:
        """Squeeze the steps of a recent order so the last one happened before now."""
        steps.sort(key=lambda s: s[0])
        latest = self.now - timedelta(minutes=1)
        last = steps[-1][0]
        if last > latest and len(steps) > 1:
            if any(s[1] in ("auto_confirm", "timeout") for s in steps):
                # Deadlines cannot be squeezed: what falls after now has simply not happened yet.
                steps = [s for s in steps if s[0] <= latest]
            else:
                p = o.placed_at
                # Each order's last step somewhere in the last hours, not all at the same moment.
                end = latest - _u(self.rng, timedelta(0), min(timedelta(hours=6), (latest - p) / 3))
                factor = (end - p) / (last - p)
                steps = [(p + (at - p) * factor, action, args) for at, action, args in steps]
        for at, action, args in steps:
            self._add(o, at, action, **args)

    def _carrier(self) -> str:
        return self.rng.choices([c for c, _w in CARRIERS], [w for _c, w in CARRIERS])[0]

    def address(self, c: DemoCustomer) -> dict[str, Any]:
        """A believable delivery address for a customer (the receiver is usually the customer)."""
        rng = self.rng
        codes = list(ADDRESS_BOOK)
        province = rng.choices(codes, [ADDRESS_BOOK[k][0] for k in codes])[0]
        city, postal, districts, streets = rng.choice(ADDRESS_BOOK[province][1])
        nickname = c.nickname or ""
        surname = nickname[:1] or rng.choice("王李张刘陈杨黄赵吴周")
        if rng.random() < 0.2 or len(nickname) < 2 or nickname[1:] in NOT_NAMES:
            name = surname + rng.choice(GIVEN_NAMES)
        else:
            name = nickname
        phone = c.phone if c.phone and rng.random() < 0.85 else rng.choice(("138", "139", "186", "188", "150")) + f"{rng.randrange(10**8):08d}"
        if rng.random() < 0.25:
            detail = f"{rng.choice(streets)} {rng.randint(1, 999)} 号 {rng.choice(OFFICES)} {rng.randint(2, 28)} 楼"
        else:
            detail = (f"{rng.choice(streets)} {rng.randint(1, 999)} 号 {rng.choice(COMPOUNDS)} {rng.randint(1, 24)} 幢 "
                      f"{rng.randint(1, 4)} 单元 {rng.randint(1, 28)}{rng.randint(1, 4):02d} 室")
        return {"receiver_name": name, "phone": phone, "province_code": province, "city": city,
                "district": rng.choice(districts), "detail": detail, "postal_code": postal}


# -- running the plan ------------------------------------------------------------------------------------


class _Runner:
    """Plays the steps through the services, one unit of work per batch of orders."""

    def __init__(self, rt: Runtime, scope: TenantScope, *, operator: Actor, service_desk: Actor,
                 central: int | None, replenish: set[int], thresholds: dict[int, int]) -> None:
        self.rt = rt
        self.scope = scope
        self.operator = operator
        self.service_desk = service_desk
        self.central = central
        self.replenish = replenish
        self.thresholds = thresholds
        self.queue: list[OutboxEvent] = []
        #: Units the central warehouse had available per SKU (at most; see :meth:`_stock`).
        self.seen: dict[int, int] = {}
        self.deferred: set[int] = set()
        #: Events handled in the current unit of work.
        self.done: list[int] = []
        self.receipts = 0
        self.failures: Counter[str] = Counter()
        self.session: AsyncSession | None = None

    def bind(self, session: AsyncSession) -> None:
        self.session = session
        self.queue.clear()
        self.done.clear()

        def collect(_session: Any, instance: Any) -> None:
            if isinstance(instance, OutboxEvent):
                self.queue.append(instance)

        sa_event.listen(session.sync_session, "transient_to_pending", collect)

    @property
    def s(self) -> AsyncSession:
        assert self.session is not None
        return self.session

    @staticmethod
    def _customer(o: PlannedOrder, scope: TenantScope) -> Actor:
        c = o.customer
        return Actor("customer", c.id, c.nickname or f"customer:{c.id}", scope.id)

    async def run(self, step: Step) -> None:
        o = step.order
        if o.failed or (step.action != "place" and o.order_id is None):
            return
        _set_clock(step.at)
        handler = getattr(self, f"_{step.action}")
        # No savepoint of our own: each service call is all or nothing already, and a step
        # that fails (which the plan avoids) only ends its order's story early.
        try:
            await handler(o, **step.args)
            await self._drain()
        except DomainError as exc:
            self.queue.clear()
            o.failed = True
            self.failures[step.action] += 1
            log.warning("demo order step failed", extra={"order": o.n, "fate": o.fate, "step": step.action,
                                                         "code": exc.code, "error": exc.message_en})

    @contextlib.contextmanager
    def acting(self, actor: Actor) -> Iterator[None]:
        token = actor_var.set(actor)
        try:
            yield
        finally:
            actor_var.reset(token)

    # -- outbox, in line ---------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Handle the events the step raised (and those they raise), as the relay would."""
        from siyu.payments import service as payments_service
        from siyu.payments.gateways import sandbox

        while self.queue:
            ev = self.queue.pop(0)
            if ev.id is None:
                await self.s.flush()
            if ev.topic == REFUND_SUBMIT_TOPIC and ev.payload.get("refund_id") in self.deferred:
                continue  # 退款中: the relay submits it once the server runs
            with self.acting(SYSTEM):
                if ev.topic == sandbox.NOTIFY_TOPIC:
                    # What the POST would deliver to /api/pay/notify/sandbox, signed the same way.
                    body = str(ev.payload["body"]).encode()
                    headers = sandbox.signed_headers(sandbox.sandbox_key(self.rt.secret_key), body)
                    result = await payments_service.handle_notification(self.s, "sandbox", headers, body)
                    if result.outcome == "rejected":
                        raise RuntimeError(f"the sandbox notification was rejected: {result.reason}")
                else:
                    event = outbox.Event(ev.id, ev.tenant_id, ev.topic, dict(ev.payload), 1)
                    for handler in outbox.handlers_for(ev.topic):
                        await handler(self.s, event)
            self.done.append(ev.id)
        await self.s.flush()  # before the clock moves on: defaults such as created_at are read at flush

    async def settle(self) -> None:
        """Mark the events handled in this unit of work done, as of when they were raised (the
        relay takes an event within moments of its commit)."""
        for i in range(0, len(self.done), 500):
            await self.s.execute(update(OutboxEvent)
                                 .where(OutboxEvent.id.in_(self.done[i:i + 500]), OutboxEvent.status == "pending")
                                 .values(status="done", attempts=1, done_at=OutboxEvent.available_at)
                                 .execution_options(synchronize_session=False))
        self.done.clear()

    # -- steps ------------------------------------------------------------------------------------

    async def _stock(self, o: PlannedOrder) -> None:
        """Buy in before the central warehouse runs low: a receipt when this order would take it
        near its low-stock line, so orders always ship from there."""
        from siyu.inventory import service as inventory_service

        if self.central is None:
            return
        wanted = [(s, q) for s, q in o.lines if s in self.replenish]
        # What we last saw, less what orders took since: never more than is really there
        # (cancellations and refunds only give back), so the level is read only near the line.
        unsure = [s for s, q in wanted if self.seen.get(s, 0) - q < self.thresholds.get(s, 20) + 5]
        if unsure:
            levels = await inventory_service.levels_for(self.s, self.scope, unsure)
            for sku in unsure:
                here = next((lv for lv in levels.get(sku, []) if lv.location_id == self.central), None)
                self.seen[sku] = (here.on_hand - here.reserved) if here else 0
        rng = random.Random(o.seed)
        with self.acting(self.operator):
            for sku, qty in wanted:
                floor = self.thresholds.get(sku, 20) + 5
                if self.seen[sku] - qty < floor:
                    batch = max(qty + floor, rng.choice((60, 80, 100, 120, 150, 200)))
                    batch = -(-batch // 10) * 10
                    await inventory_service.receive(self.s, self.scope, sku, self.central, batch, "采购入库",
                                                    source_key=f"demo-po-{o.n}-{sku}")
                    self.seen[sku] += batch
                    self.receipts += 1
                self.seen[sku] -= qty

    async def _place(self, o: PlannedOrder) -> None:
        from siyu.customers import service as customers_service
        from siyu.customers.schemas import AddressIn
        from siyu.orders import checkout

        c = o.customer
        with self.acting(self._customer(o, self.scope)):
            if c.address_id is None:
                addr = await customers_service.create_address(self.s, self.scope, c.id,
                                                              AddressIn(**(c.address or {}), is_default=True))
                c.address_id = addr.id
        await self._stock(o)
        with self.acting(self._customer(o, self.scope)):
            order = await checkout.place_order(self.s, self.scope, customer_id=c.id, lines=o.lines, address_id=c.address_id,
                                               buyer_note=o.note, idempotency_key=o.key, channel=o.channel)
        o.order_id = order.id

    async def _open_pay(self, o: PlannedOrder) -> None:
        from siyu.orders import service

        assert o.order_id is not None
        with self.acting(self._customer(o, self.scope)):
            start = await service.start_payment(self.s, self.scope, customer_id=o.customer.id, order_id=o.order_id,
                                                channel="sandbox", return_url=f"/m/{self.scope.code}/orders/{o.order_id}?paid=1")
        o.out_trade_no = start.payment.out_trade_no if start else None

    async def _pay(self, o: PlannedOrder) -> None:
        """The shopper presses 确认支付 on the sandbox cashier; its notification follows."""
        from siyu.payments.gateways import sandbox

        if o.out_trade_no is None:
            await self._open_pay(o)
        if o.out_trade_no is not None:
            await sandbox.choose_outcome(self.s, o.out_trade_no, "pay")

    async def _pay_cancel(self, o: PlannedOrder) -> None:
        from siyu.payments.gateways import sandbox

        if o.out_trade_no is not None:
            await sandbox.choose_outcome(self.s, o.out_trade_no, "cancel")

    async def _cancel(self, o: PlannedOrder, by: str, reason: str) -> None:
        from siyu.orders import service

        assert o.order_id is not None
        actor = self._customer(o, self.scope) if by == "customer" else self.service_desk
        with self.acting(actor):
            await service.cancel_order(self.s, self.scope, o.order_id, by=by,
                                       customer_id=o.customer.id if by == "customer" else None, reason=reason)

    async def _timeout(self, o: PlannedOrder) -> None:
        from siyu.orders import service

        with self.acting(SYSTEM):
            await service.cancel_overdue(self.s, now=clock.now())

    async def _ship(self, o: PlannedOrder, partial: bool, carrier: str) -> None:
        """One parcel per warehouse part; a partial shipment sends the first line (or part) only."""
        from siyu.orders import checkout, fulfilment

        assert o.order_id is not None
        rng = random.Random(o.seed + 1)
        if not partial:  # everything left, one parcel (orders ship from the central warehouse)
            with self.acting(self.operator):
                await fulfilment.ship(self.s, self.scope, o.order_id, carrier_code=carrier, tracking_no=_tracking(carrier, rng))
            return
        lines, parts, _items = await checkout.order_contents(self.s, self.scope, o.order_id)
        pending = [p for p in parts if p.kind != "virtual" and p.status in ("pending", "partially_shipped")]
        with self.acting(self.operator):
            if partial and len(pending) == 1:
                first = next(ln for ln in lines if ln.requires_shipping)
                await fulfilment.ship(self.s, self.scope, o.order_id, items=[(first.id, first.quantity)],
                                      carrier_code=carrier, tracking_no=_tracking(carrier, rng))
                return
            for part in pending[:1] if partial else pending:
                await fulfilment.ship(self.s, self.scope, o.order_id, fulfilment_id=part.id, carrier_code=carrier,
                                      tracking_no=_tracking(carrier, rng))

    async def _deliver(self, o: PlannedOrder) -> None:
        from siyu.orders import fulfilment

        assert o.order_id is not None
        with self.acting(self.operator):
            await fulfilment.mark_delivered(self.s, self.scope, o.order_id)

    async def _confirm(self, o: PlannedOrder) -> None:
        from siyu.orders import fulfilment

        assert o.order_id is not None
        with self.acting(self._customer(o, self.scope)):
            await fulfilment.confirm_receipt(self.s, self.scope, o.order_id, o.customer.id)

    async def _auto_confirm(self, o: PlannedOrder) -> None:
        from siyu.orders import fulfilment

        with self.acting(SYSTEM):
            await fulfilment.auto_confirm_due(self.s, now=clock.now())

    async def _note(self, o: PlannedOrder, text: str) -> None:
        from siyu.orders import service

        assert o.order_id is not None
        with self.acting(self.service_desk):
            await service.set_seller_note(self.s, self.scope, o.order_id, text)

    async def _case_open(self, o: PlannedOrder, kind: str, reason: str, description: str | None, scope: str,
                         pick: float, by: str) -> None:
        from siyu.orders import aftersales, service

        assert o.order_id is not None
        lines = [ln for ln in await service.order_lines(self.s, self.scope, o.order_id)
                 if ln.requires_shipping or kind == "refund_only"]
        if scope == "all":
            wanted = [(ln.id, ln.quantity - ln.refund_qty) for ln in lines if ln.quantity > ln.refund_qty]
        else:  # "part": one whole line of several, or all but one unit of the only line; "unit": one unit
            ln = lines[int(pick * len(lines)) % len(lines)]
            qty = ln.quantity if len(lines) > 1 else max(1, ln.quantity - 1)
            wanted = [(ln.id, 1 if scope == "unit" else qty)]
        staff = by == "staff"
        with self.acting(self.service_desk if staff else self._customer(o, self.scope)):
            case = await aftersales.open_case(self.s, self.scope, o.order_id, customer_id=None if staff else o.customer.id,
                                              kind=kind, lines=wanted, reason=reason, description=description)
        o.case_id = case.id

    async def _case_approve(self, o: PlannedOrder, defer: bool = False) -> None:
        from siyu.orders import aftersales

        assert o.case_id is not None
        with self.acting(self.service_desk):
            case = await aftersales.approve(self.s, self.scope, o.case_id)
        if defer and case.refund_id is not None:
            self.deferred.add(case.refund_id)

    async def _case_reject(self, o: PlannedOrder, reason: str) -> None:
        from siyu.orders import aftersales

        assert o.case_id is not None
        with self.acting(self.service_desk):
            await aftersales.reject(self.s, self.scope, o.case_id, reason)

    async def _case_withdraw(self, o: PlannedOrder) -> None:
        from siyu.orders import aftersales

        assert o.case_id is not None
        with self.acting(self._customer(o, self.scope)):
            await aftersales.withdraw(self.s, self.scope, o.case_id, customer_id=o.customer.id)

    async def _case_return(self, o: PlannedOrder, carrier: str) -> None:
        from siyu.orders import aftersales

        assert o.case_id is not None
        rng = random.Random(o.seed + 2)
        code = {"顺丰速运": "SF", "中通快递": "ZTO", "圆通速递": "YTO", "韵达快递": "YD", "京东快递": "JD"}.get(carrier, "SF")
        with self.acting(self._customer(o, self.scope)):
            await aftersales.submit_return(self.s, self.scope, o.case_id, customer_id=o.customer.id, carrier=carrier,
                                           tracking_no=_tracking(code, rng))

    async def _case_receive(self, o: PlannedOrder) -> None:
        from siyu.orders import aftersales

        assert o.case_id is not None
        with self.acting(self.service_desk):
            await aftersales.receive_return(self.s, self.scope, o.case_id)


def _tracking(carrier: str, rng: random.Random) -> str:
    prefix = TRACKING_PREFIX.get(carrier, "")
    return prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))


# -- entry point --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    customers: list[DemoCustomer]
    goods: list[DemoGoods]
    timings: Timings
    operator: Actor
    service_desk: Actor
    central: int | None
    replenish: set[int]
    thresholds: dict[int, int]
    sandbox: bool


async def _context(session: AsyncSession, scope: TenantScope, rng: random.Random, sku_ids: Sequence[int] | None) -> _Context:
    from siyu.catalog import service as catalog_service
    from siyu.catalog.repository import ProductQuery
    from siyu.customers import service as customers_service
    from siyu.inventory import service as inventory_service
    from siyu.orders import service
    from siyu.payments import service as payments_service
    from siyu.staff import service as staff_service

    customers: list[DemoCustomer] = []
    offset = 0
    while True:
        rows, total = await customers_service.list_customers(session, scope, status="active", offset=offset, limit=500)
        customers += [DemoCustomer(c.id, c.created_at, c.nickname, c.phone) for c in rows]
        offset += len(rows)
        if not rows or offset >= total:
            break
    customers.sort(key=lambda c: c.id)
    for c in customers:  # a few loyal customers buy much more often than the rest
        c.weight = min(6.0, rng.paretovariate(1.6))

    if sku_ids is None:
        products, _total = await catalog_service.list_products(session, scope, ProductQuery(storefront=True), limit=500)
        skus = await catalog_service.skus_of_products(session, scope, [p.id for p in products])
        sku_ids = [s.id for p in products for s in skus.get(p.id, []) if s.status == "active"]
    for_sale = await catalog_service.skus_for_sale(session, scope, sku_ids)
    paths = {c.id: c.path for c in await catalog_service.list_categories(session, scope)}
    categories: dict[int, str] = {}
    for pid in sorted({s.product_id for s in for_sale.values()}):
        categories[pid] = paths.get((await catalog_service.get_product(session, scope, pid)).category_id or 0, "")
    available = await inventory_service.available(session, scope, list(for_sale))
    levels = await inventory_service.levels_for(session, scope, list(for_sale))
    locations = [loc for loc in await inventory_service.list_locations(session, scope, status="active")
                 if loc.kind == "warehouse"]
    central = locations[0].id if locations else None
    # Goods the shop has let run out (or nearly) stay so: the demo sells what it keeps in stock.
    sellable = sorted(s for s, g in for_sale.items() if g.on_sale and available.get(s, 0) >= 20)
    thresholds = {s: next((lv.low_stock_threshold or 0 for lv in levels.get(s, []) if lv.location_id == central), 0) for s in sellable}

    ranked = sorted({for_sale[s].product_id for s in sellable})
    rng.shuffle(ranked)
    rank = {pid: i for i, pid in enumerate(ranked)}
    per_product: Counter[int] = Counter()
    goods: list[DemoGoods] = []
    for s in sellable:
        g = for_sale[s]
        path = categories.get(g.product_id, "")
        weight = 1 / (rank[g.product_id] + 1) ** 0.85 * (0.6 ** per_product[g.product_id])
        per_product[g.product_id] += 1
        if not g.requires_shipping:
            weight *= 0.35
        goods.append(DemoGoods(s, g.product_id, g.title, g.requires_shipping, weight, gift="礼盒" in path,
                               teaware="茶器" in path))

    settings = await service.order_settings(session, scope)
    roles = {r.id: r.code for r in await staff_service.list_roles(session, scope)}
    staff, _n = await staff_service.list_staff(session, scope, status="active", limit=100)
    by_role: dict[str, Actor] = {}
    for member in staff:
        by_role.setdefault(roles.get(member.role_id, ""), Actor("staff", member.id, member.name, scope.id))
    fallback = next(iter(by_role.values()), Actor("staff", None, "店长", scope.id))
    operator = by_role.get("operator") or by_role.get("owner") or fallback
    return _Context(
        customers=customers, goods=goods,
        timings=Timings(timedelta(minutes=settings.pay_timeout_minutes), timedelta(days=settings.auto_confirm_days)),
        operator=operator, service_desk=by_role.get("customer_service") or operator, central=central,
        replenish=set(sellable), thresholds=thresholds,
        sandbox="sandbox" in await payments_service.available_channels(session, scope),
    )


async def _has_orders(session: AsyncSession, scope: TenantScope) -> bool:
    from siyu.orders import service

    _rows, total = await service.list_orders(session, scope, limit=1)
    return total > 0


async def seed_orders(rt: Runtime, scope: TenantScope, rng: random.Random, *, count: int = 1000,
                      sku_ids: Sequence[int] | None = None, batch: int = BATCH,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """About ``count`` orders of the last six months for a tenant that has goods, stock and
    customers (see the module docstring). A tenant that already has orders is left alone.

    Every module must be loaded (:func:`siyu.app.load_modules`) so their outbox handlers run.
    Returns a summary: ``orders``, ``statuses`` and ``cases`` (counts), ``payable_until`` (the
    pay deadline of the orders still awaiting payment), ``receipts`` and ``failed`` steps."""
    if count <= 0:
        return {"orders": 0, "note": "no orders asked for"}
    async with rt.db.uow() as session:
        if await _has_orders(session, scope):
            return {"orders": 0, "note": "the shop already has orders; left as they are"}
        ctx = await _context(session, scope, rng, sku_ids)
    if not ctx.customers or not ctx.goods:
        return {"orders": 0, "note": "orders need customers and goods in stock"}
    if not ctx.sandbox:
        return {"orders": 0, "note": "orders are paid through the sandbox gateway, which is off here"}
    now = clock.now()
    steps = Planner(rng, now=now, timezone=scope.timezone, customers=ctx.customers, goods=ctx.goods,
                    timings=ctx.timings).plan(count)
    runner = _Runner(rt, scope, operator=ctx.operator, service_desk=ctx.service_desk, central=ctx.central,
                     replenish=ctx.replenish, thresholds=ctx.thresholds)
    placed = 0
    i = 0
    with historical(now):
        while i < len(steps):
            async with rt.db.uow() as session:
                runner.bind(session)
                in_batch = 0
                while i < len(steps) and not (steps[i].action == "place" and in_batch >= batch):
                    if steps[i].action == "place":
                        in_batch += 1
                    await runner.run(steps[i])
                    i += 1
                await runner.settle()
            placed += in_batch
            if progress is not None:
                progress(placed, count)
    return await summary(rt, scope, failed=sum(runner.failures.values()), receipts=runner.receipts)


async def summary(rt: Runtime, scope: TenantScope, **extra: Any) -> dict[str, Any]:
    """How many orders and cases the tenant has per status, and until when unpaid ones can be paid."""
    from siyu.orders import aftersales, service
    from siyu.orders.states import CASE_STATUSES, ORDER_STATUSES

    async with rt.db.uow(readonly=True) as session:
        statuses: dict[str, int] = {}
        for status in ORDER_STATUSES:
            _rows, statuses[status] = await service.list_orders(session, scope, service.OrderFilters(status=status), limit=1)
        cases: dict[str, int] = {}
        for status in CASE_STATUSES:
            _found, cases[status] = await aftersales.list_cases(session, scope, aftersales.CaseQuery(status=status), 0, 1)
        unpaid, _n = await service.list_orders(session, scope, service.OrderFilters(status="pending_payment"), limit=100)
    deadlines = [item.order.pay_deadline for item in unpaid if item.order.pay_deadline is not None]
    return {"orders": sum(statuses.values()), "statuses": statuses, "cases": cases,
            "payable_until": min(deadlines) if deadlines else None, **extra}


def describe(result: dict[str, Any], timezone: str) -> str:
    """One line for the CLI: how many orders in which states, and the pay deadline of the unpaid ones."""
    if not result.get("orders"):
        return str(result.get("note") or "no orders")
    from siyu.orders.states import CASE_STATUS_EN, ORDER_STATUS_EN

    parts = [f"{n} {ORDER_STATUS_EN[s].lower()}" for s, n in result["statuses"].items() if n]
    text = f"{result['orders']} over the last {ORDER_DAYS} days: " + ", ".join(parts)
    cases = {s: n for s, n in result.get("cases", {}).items() if n}
    if cases:
        text += "; after-sales: " + ", ".join(f"{n} {CASE_STATUS_EN[s].lower()}" for s, n in cases.items())
    until = result.get("payable_until")
    if until is not None:
        local = until.astimezone(ZoneInfo(timezone))
        text += f"; unpaid orders can be paid until {local:%Y-%m-%d %H:%M} ({timezone}), then they time out"
    return text
