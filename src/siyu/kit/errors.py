"""Domain errors and their ``application/problem+json`` rendering.

Every error a client can cause carries a stable machine ``code`` plus a Chinese and an
English message, so integrators branch on the code and people read the message in their
language.
"""

from __future__ import annotations

from typing import Any

from siyu.kit.context import current_language, request_id_var

PROBLEM_CONTENT_TYPE = "application/problem+json"


class DomainError(Exception):
    status: int = 400
    default_code: str = "bad_request"

    def __init__(
        self,
        code: str | None = None,
        message_zh: str = "请求无法处理",
        message_en: str | None = None,
        *,
        status: int | None = None,
        fields: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message_zh = message_zh
        self.message_en = message_en or message_zh
        if status is not None:
            self.status = status
        self.fields = fields or []
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(f"{self.code}: {self.message_en}")

    def message(self, language: str | None = None) -> str:
        lang = language or current_language()
        return self.message_en if lang.startswith("en") else self.message_zh

    def to_problem(self, language: str | None = None) -> dict[str, Any]:
        return problem_body(self.status, self.code, self.message(language), self.fields, self.extra)


class BadRequest(DomainError):
    status = 400


class ValidationFailed(DomainError):
    status = 422
    default_code = "validation_error"


class Unauthorized(DomainError):
    status = 401
    default_code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    default_code = "forbidden"


class NotFound(DomainError):
    status = 404
    default_code = "not_found"


class Conflict(DomainError):
    status = 409
    default_code = "conflict"


class TooManyRequests(DomainError):
    status = 429
    default_code = "rate_limited"


class Locked(DomainError):
    status = 423
    default_code = "locked"


def not_found(what_zh: str, what_en: str, code: str = "not_found") -> NotFound:
    return NotFound(code, f"{what_zh}不存在", f"{what_en} not found")


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    423: "Locked",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_body(
    status: int,
    code: str,
    detail: str,
    fields: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://siyu.dev/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if fields:
        body["errors"] = fields
    if extra:
        body.update(extra)
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    return body
