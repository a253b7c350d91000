"""One paging convention for every list endpoint: ``?page=1&page_size=20``.

Responses are ``{"items": [...], "total": N, "page": p, "page_size": s}``. Filters are plain
query parameters named after the field they filter; ranges use ``_from`` / ``_to``.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

T = TypeVar("T")


class PageParams(BaseModel):
    page: int = 1
    page_size: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def page_params(
    page: Annotated[int, Query(ge=1, le=100_000, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(ge=1, le=200, description="Items per page (at most 200)")] = 20,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


Pages = Annotated[PageParams, Depends(page_params)]
