"""FastAPI glue for the kit: the request-scoped unit of work and request facts.

The unit of work is a ``yield`` dependency with ``scope="function"``: it commits after the
endpoint returns but *before* the response is sent, so a client never sees success for a
transaction that then failed to commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from siyu.kit.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def _uow(request: Request) -> AsyncIterator[AsyncSession]:
    readonly = request.method in SAFE_METHODS and not getattr(request.state, "needs_write", False)
    async with runtime(request).db.uow(readonly=readonly) as session:
        yield session


async def _write_uow(request: Request) -> AsyncIterator[AsyncSession]:
    async with runtime(request).db.uow() as session:
        yield session


#: The request's unit of work: read-only for GET/HEAD, a write transaction otherwise.
UoW = Annotated[AsyncSession, Depends(_uow, scope="function")]
#: A write transaction even for GET (pages that record a visit, for example).
WriteUoW = Annotated[AsyncSession, Depends(_write_uow, scope="function")]
RuntimeDep = Annotated[Runtime, Depends(runtime)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def set_session_cookie(response: Response, request: Request, name: str, token: str, days: int) -> None:
    response.set_cookie(
        name, token, max_age=days * 86400, httponly=True, samesite="lax", path="/",
        secure=runtime(request).settings.secure_cookies,
    )


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/")


class ProblemModel(BaseModel):
    """``application/problem+json`` body of every error."""

    type: str
    title: str
    status: int
    code: str = Field(description="Stable machine-readable error code")
    detail: str = Field(description="Message in the request's language (zh-CN or en)")
    errors: list[dict[str, str]] | None = Field(default=None, description="Field errors: {field, message}")
    request_id: str | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {"model": ProblemModel, "content": {"application/problem+json": {}}, "description": "Problem"}
        for s in statuses
    }


ADMIN_ERRORS = problem_responses(400, 401, 403, 404, 409, 422, 429)
