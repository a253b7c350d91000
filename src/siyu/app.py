"""ASGI application factory: routers, middleware, error handling and the lifespan that
starts and stops the runtime and the background loops."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from siyu import __version__
from siyu.config import Settings, get_settings
from siyu.kit import metrics
from siyu.kit.logs import configure_logging
from siyu.kit.runtime import Runtime, build_runtime, set_runtime
from siyu.web import errors
from siyu.web.middleware import RequestContextMiddleware
from siyu.web.templating import STATIC_DIR

DESCRIPTION = """
Siyu (私域) is a private-domain commerce platform: a social-commerce mall and an SCRM in one.

* **Admin API** `/api/admin/v1` — for staff and integrations. Authenticate with the console
  session cookie (plus `X-CSRF-Token` on writes) or `Authorization: Bearer sy_...` API tokens
  created in the console (设置 → API 令牌).
* **Store API** `/api/store/v1/{shop}` — for the H5 storefront and mini programs; `shop` is
  the tenant code. Sign in by SMS code or WeChat login and send the returned token as a
  bearer token.
* **Platform API** `/api/platform/v1` — for the platform operator (tenant onboarding).

Errors are `application/problem+json` with a stable `code`. Lists take `page` and
`page_size` (≤ 200) and return `{items, total, page, page_size}`. See `docs/api.md`.
"""


def create_app(runtime: Runtime | None = None, settings: Settings | None = None, *, background: bool | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else get_settings())
    own_runtime = runtime is None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or build_runtime(settings)
        app.state.runtime = rt
        set_runtime(rt)
        from siyu.kit import jobs

        loops = None
        run_bg = settings.run_jobs_in_web if background is None else background
        if run_bg:
            await jobs.broker.startup()
            loops = jobs.BackgroundLoops(rt, kick_to_broker=settings.effective_broker == "redis")
            loops.start()
        try:
            yield
        finally:
            if loops is not None:
                await loops.stop()
                await jobs.broker.shutdown()
            if own_runtime:
                await rt.close()
            set_runtime(None)

    if own_runtime:
        configure_logging(settings.log_level, settings.log_json)
    app = FastAPI(
        title="Siyu 私域 API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    if runtime is not None:
        app.state.runtime = runtime
    app.add_middleware(RequestContextMiddleware, default_language=settings.default_language)
    errors.install(app)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    media = settings.var_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    app.mount("/media", StaticFiles(directory=str(media)), name="media")
    _include_routers(app)
    _health(app)
    return app


#: Business modules, in the order their routers are included.
MODULES = ("staff", "tenants", "customers", "catalog", "inventory", "payments", "shipping", "orders", "members")


def load_modules() -> None:
    """Import every module so its outbox handlers and sweepers are registered.

    Web processes get this from building the app; ``siyu worker`` calls it directly. A
    process that missed a module would mark that module's events done without running them.
    """
    for module in MODULES:
        importlib.import_module(f"siyu.{module}.api")
        importlib.import_module(f"siyu.{module}.views")
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(f"siyu.{module}.tasks")
    import siyu.kit.sms  # noqa: F401


def _include_routers(app: FastAPI) -> None:
    load_modules()
    from siyu.customers import api as customers_api
    from siyu.customers import views as customers_views
    from siyu.staff import api as staff_api
    from siyu.staff import views as staff_views
    from siyu.tenants import api as tenants_api
    from siyu.tenants import views as tenants_views
    from siyu.web import views as web_views

    for router in (
        staff_api.router, tenants_api.admin, tenants_api.platform, customers_api.admin, customers_api.store,
        web_views.router, staff_views.router, tenants_views.router, customers_views.router,
    ):
        app.include_router(router)
    for module in MODULES[3:]:
        api = importlib.import_module(f"siyu.{module}.api")
        for router in api.routers:
            app.include_router(router)
        app.include_router(importlib.import_module(f"siyu.{module}.views").router)


def _health(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["operations"], summary="Readiness: database (and Redis when configured) answer")
    async def readyz(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        checks: dict[str, str] = {}
        try:
            async with rt.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        if rt.settings.redis_url:
            try:
                await rt.kv.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> Response:
        # Served from vendored assets: no CDN at run time.
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="Siyu 私域 API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return get_redoc_html(openapi_url="/openapi.json", title="Siyu 私域 API",
                              redoc_js_url="/static/vendor/redoc/redoc.standalone.js", with_google_fonts=False)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/admin", status_code=307)
