"""Bars: the Bar type, its Relay connection, and the columnar series for charts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import strawberry

from core.bar import bar_field
from core.intervals import Interval as CoreInterval
from graphql_api.context import Info
from graphql_api.cursors import bar_cursor
from graphql_api.types.common import Interval, PageInfo
from loaders.bars import CountKey
from loaders.rows import BarRow


@strawberry.type(description="One OHLCV bar.")
class Bar:
    time: datetime = strawberry.field(description="Start of the bar (UTC).")
    # One attribute per core.bar value field (tests/foundation/test_bar.py checks they agree).
    open: float = strawberry.field(description=bar_field("open").description)
    high: float = strawberry.field(description=bar_field("high").description)
    low: float = strawberry.field(description=bar_field("low").description)
    close: float = strawberry.field(description=bar_field("close").description)
    volume: float = strawberry.field(description=bar_field("volume").description)
    closed: bool = strawberry.field(
        description="False while the bar is still forming: its end lies after the newest "
        "stored bar."
    )
    filled: bool = strawberry.field(
        default=False,
        description="True for a slot where nothing traded, added by `fill` (its prices are "
        "the previous close and its volume 0).",
    )


@strawberry.type(description="A bar and its cursor.")
class BarEdge:
    node: Bar = strawberry.field(description="The bar.")
    symbol_id: strawberry.Private[int]
    interval: strawberry.Private[CoreInterval]

    @strawberry.field(description="Opaque keyset cursor of this bar, for `after`/`before`.")
    def cursor(self) -> str:
        return bar_cursor(self.symbol_id, self.interval, self.node.time)


class RowEdge:
    """A lightweight stand-in for BarEdge around a loaded row (BarEdge.cursor works on it)."""

    __slots__ = ("interval", "node", "symbol_id")

    def __init__(self, node: BarRow, symbol_id: int, interval: CoreInterval) -> None:
        self.node = node
        self.symbol_id = symbol_id
        self.interval = interval


@strawberry.type(description="A page of bars (Relay connection), keyset-paginated.")
class BarConnection:
    edges: list[BarEdge] = strawberry.field(description="The bars of this page with cursors.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count_key: strawberry.Private[CountKey | None]
    #: With `fill`, counts slots instead of stored buckets.
    slot_count: strawberry.Private[Callable[[], int] | None] = None

    @strawberry.field(description="The bars of this page, without cursors.")
    def nodes(self) -> list[Bar]:
        return [e.node for e in self.edges]

    @strawberry.field(
        description="Number of bars in the requested time range (all pages); costs a count query."
    )
    async def total_count(self, info: Info) -> int:
        if self.slot_count is not None:
            return self.slot_count()
        if self.count_key is None:
            return 0
        return await info.context.loaders.bar_count.load(self.count_key)


@strawberry.type(description="Bars as parallel columns: the compact shape for drawing charts.")
class BarSeries:
    interval: Interval = strawberry.field(
        description="The interval the server used: coarser than requested when the range held "
        "more than `maxPoints` bars."
    )
    requested_interval: Interval = strawberry.field(description="The interval that was asked for.")
    time: list[datetime] = strawberry.field(description="Bar start times (UTC), oldest first.")
    open: list[float] = strawberry.field(description=bar_field("open").series_description)
    high: list[float] = strawberry.field(description=bar_field("high").series_description)
    low: list[float] = strawberry.field(description=bar_field("low").series_description)
    close: list[float] = strawberry.field(description=bar_field("close").series_description)
    volume: list[float] = strawberry.field(description=bar_field("volume").series_description)
    closed: list[bool] = strawberry.field(
        description="False for a bar still forming (only the newest can be)."
    )
    filled: list[bool] = strawberry.field(
        default_factory=list,
        description="True for each slot where nothing traded, added by `fill` (all false "
        "without it).",
    )


def empty_connection() -> BarConnection:
    """A connection with no bars (no stored timeframe can serve the interval)."""
    return BarConnection(
        edges=[],
        page_info=PageInfo(
            has_next_page=False, has_previous_page=False, start_cursor=None, end_cursor=None
        ),
        count_key=None,
    )
