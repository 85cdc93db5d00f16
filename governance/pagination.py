"""Keyset pagination over an integer id: stable while rows are being appended."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

T = TypeVar("T")

MAX_LIMIT = 500


class Page(BaseModel):
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)
    cursor: int | None = Field(default=None, ge=0, description="next_cursor from the previous page")


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")] = 50,
    cursor: Annotated[
        int | None, Query(ge=0, description="next_cursor from the previous page")
    ] = None,
) -> Page:
    return Page(limit=limit, cursor=cursor)


class Paged(BaseModel, Generic[T]):
    data: list[T]
    count: int
    next_cursor: int | None = Field(description="pass as cursor for the next page; null at the end")


PageDep = Annotated[Page, Depends(page_params)]


def next_cursor(rows: list[Any], page: Page, key: str = "id") -> int | None:
    """The cursor after a full page (rows ordered by ``key``); None when the page ran short."""
    return getattr(rows[-1], key) if len(rows) == page.limit and rows else None
