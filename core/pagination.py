"""Keyset pagination over an integer id: stable while rows are being appended."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Path, Query
from pydantic import BaseModel, Field

T = TypeVar("T")

MAX_LIMIT = 500
# Row ids are 32-bit integers on PostgreSQL; log sequence numbers are 64-bit.
MAX_ID = 2**31 - 1
MAX_SEQ = 2**63 - 1


class Page(BaseModel):
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)
    cursor: int | None = Field(
        default=None, ge=0, le=MAX_SEQ, description="next_cursor from the previous page"
    )


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")] = 50,
    cursor: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="next_cursor from the previous page")
    ] = None,
) -> Page:
    return Page(limit=limit, cursor=cursor)


def seq_page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")] = 50,
    cursor: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="next_cursor from the previous page")
    ] = None,
) -> Page:
    """Pages keyed by a log's sequence number (64-bit), not a row id."""
    return Page(limit=limit, cursor=cursor)


class Paged(BaseModel, Generic[T]):
    data: list[T]
    count: int
    next_cursor: int | None = Field(description="pass as cursor for the next page; null at the end")


PageDep = Annotated[Page, Depends(page_params)]
SeqPageDep = Annotated[Page, Depends(seq_page_params)]
# A row id in a path: 32-bit on PostgreSQL, so a larger number is simply not found (422 here).
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def next_cursor(rows: list[Any], page: Page, key: str = "id") -> int | None:
    """The cursor after a full page (rows ordered by ``key``); None when the page ran short."""
    return getattr(rows[-1], key) if len(rows) == page.limit and rows else None
