"""Turning exceptions into responses: problem+json for APIs and htmx, pages for browsers.

Whatever goes wrong, a client gets a 4xx with a stable code for its own mistakes and a 500
problem (with the request id, never a traceback) for ours.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from siyu.kit.context import current_language
from siyu.kit.errors import PROBLEM_CONTENT_TYPE, DomainError, problem_body
from siyu.kit.i18n import gettext

log = logging.getLogger("siyu.errors")


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or request.headers.get("hx-request"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def problem(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


def _page(request: Request, status: int, title: str, message: str) -> Response:
    from siyu.web.templating import render

    home = "/admin" if request.url.path.startswith("/admin") else "/"
    if request.url.path.startswith("/m/"):
        parts = request.url.path.split("/")
        home = f"/m/{parts[2]}/" if len(parts) > 2 and parts[2] else "/m"
    return render(request, "error.html", {"status": status, "title": title, "message": message, "home_href": home},
                  status_code=status)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else ""
        field = ".".join(loc[1:]) if len(loc) > 1 else where
        out.append({"field": field, "in": where, "message": str(err.get("msg", "invalid")), "type": str(err.get("type", ""))})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        from siyu.staff.access import LoginRequired

        if isinstance(exc, LoginRequired) and not wants_json(request):
            return RedirectResponse(exc.login_url, status_code=303)
        if wants_json(request):
            return problem(exc.status, exc.to_problem(), exc.headers or None)
        return _page(request, exc.status, gettext("出错了"), exc.message())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        fields = _field_errors(exc)
        zh = "请求参数有误：" + "；".join(f"{f['field'] or f['in']}：{f['message']}" for f in fields[:5])
        en = "Invalid request: " + "; ".join(f"{f['field'] or f['in']}: {f['message']}" for f in fields[:5])
        msg = en if current_language().startswith("en") else zh
        if wants_json(request):
            return problem(422, problem_body(422, "validation_error", msg, fields))
        return _page(request, 422, gettext("提交的内容有误"), msg)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        zh = {404: "页面或接口不存在", 405: "不支持该请求方法"}.get(exc.status_code, str(exc.detail))
        en = {404: "No such page or endpoint", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
        msg = en if current_language().startswith("en") else zh
        headers = dict(exc.headers or {})
        if wants_json(request):
            return problem(exc.status_code, problem_body(exc.status_code, code, msg), headers or None)
        return _page(request, exc.status_code, gettext("出错了"), msg)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        log.warning("integrity error reached the edge", exc_info=exc)
        msg = "Conflicts with existing data" if current_language().startswith("en") else "与已有数据冲突，请检查后重试"
        return problem(409, problem_body(409, "conflict", msg))

    @app.exception_handler(DBAPIError)
    async def _dbapi(request: Request, exc: DBAPIError) -> Response:
        # SQLSTATE class 22 is "data exception" (a NUL byte, a number out of range...): the
        # client sent a value the database cannot store. Input types reject these first; this
        # is the net under them. Anything else is our failure.
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
        if isinstance(exc, DataError) or sqlstate.startswith("22"):
            log.warning("data error reached the edge", exc_info=exc)
            msg = "A value is out of range or malformed" if current_language().startswith("en") else "提交的内容超出范围或格式不正确"
            if wants_json(request):
                return problem(422, problem_body(422, "invalid_value", msg))
            return _page(request, 422, gettext("提交的内容有误"), msg)
        return await unexpected_error_response(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return await unexpected_error_response(request, exc)


async def unexpected_error_response(request: Request, exc: Exception) -> Response:
    """A 500 for our own failure: logged with its traceback, shown without it."""
    log.error("unhandled error", exc_info=exc)
    msg = "Something went wrong on our side" if current_language().startswith("en") else "服务器开小差了，请稍后再试"
    if wants_json(request):
        return problem(500, problem_body(500, "internal_error", msg))
    return _page(request, 500, gettext("出错了"), msg)
