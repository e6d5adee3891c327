"""Relay connections, one way for all of them: paging arguments, keyset pages, PageInfo.

Every connection pages by a key of its rows (ticker, bar start, job id) rather than an offset:
an offset cursor shifts when ingest appends rows between two pages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from core.errors import BadUserInput
from graphql_api.types.common import PageInfo

_Row = TypeVar("_Row")


@dataclass(frozen=True)
class PageArgs:
    """Validated Relay paging arguments: a page size and which end of the list it is taken from."""

    size: int
    from_end: bool  # True for last/before paging
    after: str | None
    before: str | None


def page_args(
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    *,
    default: int,
    maximum: int,
) -> PageArgs:
    """Validate first/after/last/before against the configured maximum page size."""
    if first is not None and last is not None:
        raise BadUserInput("pass either `first` or `last`, not both")
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise BadUserInput(f"`{name}` must not be negative, got {value}")
        if value is not None and value > maximum:
            raise BadUserInput(f"`{name}` must be at most {maximum}, got {value}")
    if last is not None:
        return PageArgs(last, True, after, before)
    return PageArgs(first if first is not None else min(default, maximum), False, after, before)


def probe(rows: Sequence[_Row], size: int) -> tuple[list[_Row], bool]:
    """A page fetched with `size + 1` rows: the page, and whether the extra row was there."""
    return list(rows[:size]), len(rows) > size


def page_info(
    page: PageArgs, more: bool, rows: Sequence[_Row], cursor: Callable[[_Row], str]
) -> PageInfo:
    """PageInfo of `rows` (in list order) when `more` rows lie beyond the end paged from."""
    if page.from_end:
        has_next, has_prev = page.before is not None, more
    else:
        has_next, has_prev = more, page.after is not None
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_prev,
        start_cursor=cursor(rows[0]) if rows else None,
        end_cursor=cursor(rows[-1]) if rows else None,
    )
