"""Demo data: a believable tea brand (青山茶社) with stores, staff, goods, customers and half a
year of orders.

Run by ``siyu demo`` and the README's run command. Idempotent: a second run leaves the
existing demo tenant alone. Later modules add their campaigns here.

The shop opened (its staff, stock and freight rules) the day before its first demo order,
so the stock ledger and every timeline read forwards; the catalogue is dated today, since
one of its products is scheduled to go on sale next week.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit import clock
from siyu.kit.context import Actor, actor_var
from siyu.kit.runtime import Runtime, get_runtime, set_runtime
from siyu.kit.storage import Storage
from siyu.kit.tenancy import TenantScope

DEMO_TENANT = "qingshan"
DEMO_OWNER = ("demo", "demo-2026")
DEMO_PLATFORM = ("platform", "platform-2026")

STORES = [
    ("xihu", "西湖旗舰店", "杭州市西湖区龙井路 18 号", "0571-8796 1188"),
    ("nanjingxilu", "南京西路店", "上海市静安区南京西路 1266 号", "021-6288 3399"),
    ("tianhe", "天河体育中心店", "广州市天河区天河路 208 号", "020-3878 6655"),
]
STAFF = [
    ("yunying.chen", "陈运营", "operator", None),
    ("kefu.lin", "林客服", "customer_service", None),
    ("caiwu.zhou", "周财务", "finance", None),
    ("guide.wang", "王导购", "store_guide", "xihu"),
    ("guide.li", "李导购", "store_guide", "nanjingxilu"),
    ("guide.zhao", "赵导购", "store_guide", "tianhe"),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = ["小雨", "思琪", "浩然", "子涵", "雅婷", "俊杰", "欣怡", "宇轩", "梓萱", "晨曦", "一鸣", "佳怡", "若曦", "嘉豪", "诗涵", "明轩",
         "静怡", "文博", "婉清", "天佑", "茶友", "品茗", "清风", "明月"]


async def seed(rt: Runtime, *, customers: int = 200, orders: int = 1000, rng_seed: int = 2026,
               progress: Callable[[int, int], None] | None = None) -> dict[str, str]:
    from siyu.orders.demo import ORDER_DAYS, historical
    from siyu.staff import service as staff_service
    from siyu.staff.schemas import StaffCreate
    from siyu.tenants import service as tenants_service
    from siyu.tenants.schemas import StoreIn, TenantCreate, TenantSettingsUpdate

    try:
        get_runtime()
    except RuntimeError:
        set_runtime(rt)  # payments and storage find the runtime through it
    actor_var.set(Actor("system", None, "demo"))
    base = rt.settings.public_base_url
    info = {
        "console": f"{base}/admin  (sign in: {DEMO_OWNER[0]} / {DEMO_OWNER[1]})",
        "storefront": f"{base}/m/{DEMO_TENANT}/  (sign in with any mainland mobile number; the sandbox code is shown on the page and in 设置 → 短信记录)",
        "platform": f"{base}/platform  (sign in: {DEMO_PLATFORM[0]} / {DEMO_PLATFORM[1]})",
    }
    opening = clock.now() - timedelta(days=ORDER_DAYS + 1)
    async with rt.db.uow() as session:
        if await tenants_service.platform_user_by_username(session, DEMO_PLATFORM[0]) is None:
            await tenants_service.create_platform_user(session, DEMO_PLATFORM[0], DEMO_PLATFORM[1], "平台运营")
        existing, _ = await tenants_service.list_tenants(session, DEMO_TENANT, None, 0, 10)
        if any(t.code == DEMO_TENANT for t in existing):
            info["note"] = "demo tenant already present; left as it is"
            return info
        with historical(opening):
            tenant = await tenants_service.create_tenant(session, TenantCreate(
                code=DEMO_TENANT, name="青山茶社", owner_username=DEMO_OWNER[0], owner_password=DEMO_OWNER[1], owner_name="青山店主",
                contact_name="沈青山", contact_phone="13800138000",
            ))
            scope = tenants_service.scope_of(tenant)
            await tenants_service.update_settings(session, scope, TenantSettingsUpdate(
                service_phone="400-820-1688", welcome_text="一叶一世界 · 新茶上市，会员专享早鸟价",
            ))
            store_ids = {}
            for code, name, address, phone in STORES:
                store = await tenants_service.create_store(session, scope, StoreIn(code=code, name=name, address=address, phone=phone))
                store_ids[code] = store.id
            roles = {r.code: r.id for r in await staff_service.list_roles(session, scope)}
            for i, (username, name, role, store_code) in enumerate(STAFF):
                await staff_service.create_staff(session, scope, StaffCreate(
                    username=username, name=name, password="staff-2026", role_id=roles[role],  # noqa: S106 - public demo login
                    phone=f"1390000{i:04d}", store_id=store_ids.get(store_code) if store_code else None,
                ))
            await session.flush()
        rng = random.Random(rng_seed)
        sku_ids = await populate(session, scope, rng, customers=customers, storage=rt.media, opening=opening)
        # A second, small tenant shows that brands never see each other's data.
        await tenants_service.create_tenant(session, TenantCreate(
            code="yuebai", name="悦白护肤", owner_username="yuebai", owner_password="yuebai-2026", owner_name="悦白店主",  # noqa: S106
        ))
    if orders > 0:
        from siyu.app import load_modules
        from siyu.orders.demo import describe, seed_orders

        load_modules()  # every module's outbox handlers take part, as in a running server
        result = await seed_orders(rt, scope, rng, count=orders, sku_ids=sku_ids, progress=progress)
        info["orders"] = describe(result, scope.timezone)
    return info


async def populate(session: AsyncSession, scope: TenantScope, rng: random.Random, *, customers: int, storage: Storage,
                   opening: datetime) -> list[int]:
    """Goods, stock, freight rules and customers of a demo shop; returns the SKUs shoppers can buy.

    Stock and freight rules date from ``opening``; customers registered over the last 180 days."""
    from siyu.catalog.demo import seed_catalog
    from siyu.customers import service as customers_service
    from siyu.inventory.demo import seed_inventory
    from siyu.members.demo import seed_members
    from siyu.orders.demo import historical
    from siyu.shipping.demo import seed_shipping

    sku_ids = await seed_catalog(session, scope, rng, storage=storage)
    with historical(opening):
        await seed_inventory(session, scope, sku_ids, rng)
        await seed_shipping(session, scope)
        await session.flush()
    now = clock.now()
    used: set[str] = set()
    customer_ids: list[int] = []
    for i in range(customers):
        while True:
            phone = rng.choice(["138", "139", "150", "151", "158", "177", "186", "188", "199"]) + f"{rng.randrange(10**8):08d}"
            if phone not in used:
                used.add(phone)
                break
        nickname = rng.choice(SURNAMES) + rng.choice(GIVEN)
        created = now - timedelta(days=rng.randrange(0, 180), minutes=rng.randrange(0, 1440))
        customer = await customers_service.import_customer(
            session, scope, phone=phone, nickname=nickname, registered_via=rng.choice(["sms", "wechat", "import"]),
            created_at=created, openid=f"sbx_o_demo{i:05d}" if i % 3 == 0 else None,
        )
        customer_ids.append(customer.id)
    await session.flush()
    await seed_members(session, scope, rng, customer_ids)
    return sku_ids
