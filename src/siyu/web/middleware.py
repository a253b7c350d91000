"""Request context: request id, client address, language, access log and metrics.

Written as plain ASGI middleware (not ``BaseHTTPMiddleware``) so it adds no task hop per
request and context variables set here are visible to the endpoint.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from http.cookies import SimpleCookie
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from siyu.kit import metrics
from siyu.kit.context import SYSTEM, actor_var, client_ip_var, language_var, request_id_var
from siyu.kit.i18n import pick_language

log = logging.getLogger("siyu.access")
_RID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_QUIET = ("/healthz", "/readyz", "/metrics", "/static/")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, default_language: str = "zh-CN") -> None:
        self.app = app
        self.default_language = default_language

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = headers.get("x-request-id", "")
        if not _RID.match(rid):
            rid = uuid.uuid4().hex
        cookie_lang = None
        if "cookie" in headers:
            try:
                c: SimpleCookie = SimpleCookie()
                c.load(headers["cookie"])
                if "siyu_lang" in c:
                    cookie_lang = c["siyu_lang"].value
            except Exception:  # noqa: S110 - a malformed cookie header just means "no preference"
                pass
        lang = pick_language(cookie_lang, headers.get("accept-language"), self.default_language)
        client = scope.get("client")
        tokens = (
            request_id_var.set(rid),
            client_ip_var.set(client[0] if client else None),
            language_var.set(lang),
            actor_var.set(SYSTEM),
        )
        status_holder: dict[str, Any] = {"status": 500}
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["started"] = True
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*list(message["headers"]), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception as exc:
                if status_holder.get("started"):
                    raise
                # Render the 500 here, while the request id and language are still set, so the
                # response carries X-Request-ID (the key to the logged traceback).
                from starlette.requests import Request

                from siyu.web.errors import unexpected_error_response

                response = await unexpected_error_response(Request(scope), exc)
                await response(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            route_path = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static/") else "unmatched")
            method = scope["method"]
            status = status_holder["status"]
            metrics.http_requests.labels(method, route_path, str(status)).inc()
            metrics.http_latency.labels(method, route_path).observe(elapsed)
            if not scope["path"].startswith(_QUIET):
                log.info("request", extra={"method": method, "path": scope["path"], "status": status,
                                           "ms": round(elapsed * 1000, 1)})
            request_id_var.reset(tokens[0])
            client_ip_var.reset(tokens[1])
            language_var.reset(tokens[2])
            actor_var.reset(tokens[3])
