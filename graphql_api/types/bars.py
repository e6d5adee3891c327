"""Bars: the Bar type, its Relay connection, and the columnar series for charts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import cast

import strawberry

from core.bar import bar_field
from core.calendars import sessions
from core.intervals import Interval as CoreInterval
from graphql_api.context import Info
from graphql_api.cursors import bar_cursor
from graphql_api.types.common import Interval, PageInfo
from loaders.bars import CountKey
from loaders.buckets import UTC_DAY_CALENDARS
from loaders.rows import BarRow, SeriesColumns


@strawberry.type(description="A bar's four prices.")
class BarPrices:
    open: float = strawberry.field(description=bar_field("open").description)
    high: float = strawberry.field(description=bar_field("high").description)
    low: float = strawberry.field(description=bar_field("low").description)
    close: float = strawberry.field(description=bar_field("close").description)


@strawberry.type(
    description="Price columns that may hold nulls: null where a slot was filled with "
    "`fill: NULL` (nothing traded); otherwise the series' own prices."
)
class SeriesPrices:
    open: list[float | None] = strawberry.field(description="Open prices, aligned with `time`.")
    high: list[float | None] = strawberry.field(description="High prices, aligned with `time`.")
    low: list[float | None] = strawberry.field(description="Low prices, aligned with `time`.")
    close: list[float | None] = strawberry.field(description="Close prices, aligned with `time`.")


def series_prices(cols: SeriesColumns, null_where: Sequence[bool] | None) -> SeriesPrices:
    """The nullable price columns of a series: None where `null_where` is true."""

    def column(values: Sequence[float]) -> list[float | None]:
        if null_where is None:
            # A list or a loaders.columns.Column (read as a list by GraphQL): shared, not
            # copied, since nothing changes either afterwards.
            return cast(list[float | None], values)
        return [None if gap else v for v, gap in zip(values, null_where, strict=True)]

    return SeriesPrices(
        open=column(cols.open),
        high=column(cols.high),
        low=column(cols.low),
        close=column(cols.close),
    )


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
    prices: BarPrices | None = strawberry.field(
        default=None,
        description="The four prices as one value: null for a slot filled with `fill: NULL`, "
        "where nothing traded (`open`…`close`, non-null for released clients, then repeat "
        "the previous close); otherwise equal to them.",
    )

    @strawberry.field(
        description="Regular open of the trading session this bar belongs to (a week's or "
        "month's first), from the symbol's exchange calendar: what a daily bar stamped "
        "00:00 UTC of its trading date really spans. Null on 24/7 and FX calendars, for a "
        "bar outside every session, and in `barUpdates`."
    )
    def session_open(self, info: Info) -> datetime | None:
        bounds = _session_bounds(self, info)
        return None if bounds is None else bounds[0]

    @strawberry.field(
        description="Regular close of the trading session this bar belongs to (a week's or "
        "month's last; early on a half day). Null where `sessionOpen` is."
    )
    def session_close(self, info: Info) -> datetime | None:
        bounds = _session_bounds(self, info)
        return None if bounds is None else bounds[1]


def _session_bounds(bar: object, info: Info) -> tuple[datetime, datetime] | None:
    """The session instants of a served bar row (graphql_api.context.bar_calendars)."""
    entry = info.context.bar_calendars.get(id(bar))
    if entry is None:
        return None
    calendar, interval = entry
    return sessions(calendar).session_of(interval, bar.ts)  # type: ignore[attr-defined]


def register_rows(
    info: Info, calendar: str, interval: CoreInterval, rows: Iterable[object]
) -> None:
    """Note the calendar of rows served from an exchange calendar, for `Bar.sessionOpen`."""
    if calendar in UTC_DAY_CALENDARS:
        return
    served = info.context.bar_calendars
    for row in rows:
        served[id(row)] = (calendar, interval)


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
    prices: SeriesPrices | None = strawberry.field(
        default=None,
        description="The price columns with null where a slot was filled with `fill: NULL` "
        "(the non-null columns above, kept for released clients, repeat the previous close "
        "there).",
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
