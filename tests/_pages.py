"""Helpers for the tests of the server-rendered pages (console, platform console, storefront).

A :class:`Browser` is a cookie-carrying httpx client on the app that behaves like a browser
filling in the HTML forms: it reads the CSRF token from the page it last loaded (the
``<meta name="csrf-token">`` or a hidden ``_csrf`` input) and adds it to the forms it posts.
Every response goes through a hook that fails the test on any 5xx, so "no page ever answers
500" holds for every request these tests make.
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from siyu.kit.runtime import Runtime
from tests.conftest import TenantInfo, unique

BASE = "http://testserver"
SAME_ORIGIN = {"origin": BASE}
FOREIGN_ORIGIN = {"origin": "https://evil.example"}

_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
_INPUT_CSRF = re.compile(r'<input type="hidden" name="_csrf" value="([^"]*)"')
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
#: Chinese that legitimately stays on an English page: the brand mark and the name of the
#: language the switch button offers.
BRAND_CJK = {"私", "私域", "中文"}


def csrf_of(page: str) -> str:
    m = _META_CSRF.search(page) or _INPUT_CSRF.search(page)
    return m.group(1) if m else ""


def field_error(page: str, field: str) -> str:
    """The error text shown under form field ``field`` (``<p class="field-error" id="f-<field>-error">``)."""
    m = re.search(rf'<p class="field-error" id="(?:f-)?{re.escape(field)}-error"[^>]*>(.*?)</p>', page, re.S)
    return _html.unescape(m.group(1).strip()) if m else ""


def nav_of(page: str) -> str:
    """The navigation part of a console page (everything before ``<main``)."""
    return page.split("<main", 1)[0]


def chinese_left(page: str, *user_data: str) -> set[str]:
    """Runs of Chinese left in a page (title, text, attributes and inline scripts, whose
    strings a user may see too), once the brand and the given data (names the test chose, or
    defaults the product stored) are taken out. On an English page this should be empty."""
    body = _html.unescape(page)
    for value in sorted(user_data, key=len, reverse=True):
        if value:
            body = body.replace(value, " ")
    return {run for run in _CJK.findall(body) if run not in BRAND_CJK}




class Browser:
    """A browser-like client: cookies, the CSRF token of the last page, no 5xx tolerated."""

    def __init__(self, app: Any) -> None:
        self.c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE,
                                   event_hooks={"response": [self._no_server_error]})
        self.csrf = ""

    @staticmethod
    async def _no_server_error(r: httpx.Response) -> None:
        if r.status_code >= 500:
            await r.aread()
            raise AssertionError(f"{r.request.method} {r.request.url} answered {r.status_code}: {r.text[:800]}")

    @property
    def cookies(self) -> httpx.Cookies:
        return self.c.cookies

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        r = await self.c.get(url, **kw)
        if r.headers.get("content-type", "").startswith("text/html"):
            self.csrf = csrf_of(r.text) or self.csrf
        return r

    async def post(self, url: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kw: Any) -> httpx.Response:
        """Post a form; ``csrf=False`` leaves the ``_csrf`` field out (as a forged form would)."""
        form = dict(data or {})
        if csrf:
            form.setdefault("_csrf", self.csrf)
        r = await self.c.post(url, data=form, **kw)
        if r.headers.get("content-type", "").startswith("text/html"):
            self.csrf = csrf_of(r.text) or self.csrf
        return r

    async def follow(self, r: httpx.Response) -> httpx.Response:
        """GET the Location of a redirect, as a browser does after a 303."""
        assert r.status_code in (301, 302, 303, 307, 308), (r.status_code, r.text[:500])
        return await self.get(r.headers["location"])

    @contextmanager
    def language(self, lang: str) -> Iterator[None]:
        """Browse in ``lang`` (the ``siyu_lang`` cookie the language switch sets)."""
        self.c.cookies.set("siyu_lang", lang)
        try:
            yield
        finally:
            self.c.cookies.delete("siyu_lang")

    async def aclose(self) -> None:
        await self.c.aclose()


@asynccontextmanager
async def browsers(app: Any) -> AsyncIterator[Callable[[], Browser]]:
    """``async with browsers(app) as browser: b = browser()`` (each closed on the way out);
    test modules wrap it in their ``browser`` fixture."""
    opened: list[Browser] = []

    def make() -> Browser:
        b = Browser(app)
        opened.append(b)
        return b

    try:
        yield make
    finally:
        for b in opened:
            await b.aclose()


async def staff_sign_in(b: Browser, username: str, password: str, next_url: str = "") -> httpx.Response:
    """Sign in through the console's sign-in form; returns the page the redirect leads to."""
    r = await b.get("/admin/login" + (f"?next={next_url}" if next_url else ""))
    assert r.status_code == 200, r.text[:500]
    assert 'action="/admin/login"' in r.text
    r = await b.post("/admin/login", {"username": username, "password": password, "next": next_url},
                     csrf=False, headers=SAME_ORIGIN)
    assert r.status_code == 303, r.text[:800]
    page = await b.follow(r)
    assert page.status_code == 200, page.text[:500]
    assert b.csrf, "signed-in pages carry a CSRF token"
    return page


async def owner_browser(browser: Callable[[], Browser], tenant: TenantInfo) -> Browser:
    b = browser()
    await staff_sign_in(b, tenant.owner_username, tenant.owner_password)
    return b


async def make_staff(runtime: Runtime, tenant: TenantInfo, role: str, *, name: str | None = None,
                     store_id: int | None = None, phone: str | None = None) -> tuple[int, str, str]:
    """A staff member of ``role`` at ``tenant``, made through the service: (id, username, password)."""
    from siyu.staff import service as staff_service
    from siyu.staff.schemas import StaffCreate
    from siyu.tenants import service as tenants_service

    username, password = unique(f"{role[:6]}."), "staff-pass-123"
    async with runtime.db.uow() as s:
        t = await tenants_service.get_tenant(s, tenant.id)
        staff = await staff_service.create_staff(s, tenants_service.scope_of(t), StaffCreate(
            username=username, name=name or f"{role} staff", password=password, role_id=tenant.roles[role],
            store_id=store_id, phone=phone))
        return staff.id, username, password


async def make_store(runtime: Runtime, tenant: TenantInfo, name: str = "Riverside", code: str | None = None) -> int:
    from siyu.tenants import service as tenants_service
    from siyu.tenants.schemas import StoreIn

    async with runtime.db.uow() as s:
        t = await tenants_service.get_tenant(s, tenant.id)
        store = await tenants_service.create_store(s, tenants_service.scope_of(t), StoreIn(
            code=code or unique("st"), name=name, address="1 River Road", phone="0571-1234", status="open"))
        return store.id
