"""Symbols: the Symbol node, its bars, and the symbol connection."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, cast

import strawberry

from core.bar import BAR_FIELDS
from graphql_api.bar_queries import (
    bucket_range,
    plan_bars,
    plan_indicators,
    plan_series,
    stored_end,
)
from graphql_api.context import Info
from graphql_api.cursors import bar_cursor, symbol_cursor
from graphql_api.relay import page_args, page_info
from graphql_api.types.bars import (
    Bar,
    BarConnection,
    BarEdge,
    BarSeries,
    RowEdge,
    empty_connection,
)
from graphql_api.types.common import BarOrder, Interval, Node, global_id
from graphql_api.types.indicators import SIGNIFICANT_DIGITS, IndicatorSet
from loaders.bars import BarKey, BarWindow
from loaders.rows import SymbolRow


@strawberry.type(description="One timeframe at which a symbol's bars are stored.")
class StoredTimeframe:
    interval: Interval = strawberry.field(description="The stored base timeframe.")
    first_bar_time: datetime = strawberry.field(description="Start of the oldest stored bar.")
    last_bar_time: datetime = strawberry.field(description="Start of the newest stored bar.")


@strawberry.type(description="A tradable instrument and its market data.")
class Symbol(Node):
    row: strawberry.Private[SymbolRow]

    @classmethod
    def from_row(cls, row: SymbolRow) -> Symbol:
        """Wrap a loaded row."""
        return cls(id=global_id("Symbol", row.id), row=row)

    @strawberry.field(description="Ticker, upper case (e.g. AAPL, BTCUSDT).")
    def ticker(self) -> str:
        return self.row.ticker

    @strawberry.field(description="Full name of the instrument.")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="Exchange or venue code (e.g. NASDAQ).")
    def exchange(self) -> str:
        return self.row.exchange

    @strawberry.field(description="Asset class: equity, crypto, fx, future, index, …")
    def asset_class(self) -> str:
        return self.row.asset_class

    @strawberry.field(description="Currency prices are quoted in (ISO 4217 or a coin).")
    def currency(self) -> str:
        return self.row.currency

    @strawberry.field(description="IANA time zone of the exchange (e.g. America/New_York).")
    def timezone(self) -> str:
        return self.row.timezone

    @strawberry.field(description="Whether the symbol is still traded and refreshed.")
    def active(self) -> bool:
        return self.row.active

    @strawberry.field(description="When the symbol was first recorded.")
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field(description="When the symbol's reference data last changed.")
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @strawberry.field(description="The timeframes bars are stored at, finest first, with ranges.")
    def stored_timeframes(self) -> list[StoredTimeframe]:
        return [
            StoredTimeframe(
                interval=Interval.of(s.timeframe),
                first_bar_time=s.first_ts,
                last_bar_time=s.last_ts,
            )
            for s in self.row.series
        ]

    @strawberry.field(description="Start of the oldest stored bar at any timeframe (null if none).")
    def first_bar_time(self) -> datetime | None:
        return min((s.first_ts for s in self.row.series), default=None)

    @strawberry.field(description="Start of the newest stored bar at any timeframe (null if none).")
    def last_bar_time(self) -> datetime | None:
        return max((s.last_ts for s in self.row.series), default=None)

    @strawberry.field(
        description="Bars at any interval, keyset-paginated (Relay). Bars coarser than what is "
        "stored are resampled from the finest stored timeframe that divides the interval. "
        "`from`/`to` select bars whose start lies in [from, to)."
    )
    async def bars(
        self,
        info: Info,
        interval: Annotated[
            Interval, strawberry.argument(description="Bar interval (default D1).")
        ] = Interval.D1,
        from_: Annotated[
            datetime | None,
            strawberry.argument(
                name="from", description="Inclusive lower bound on bar start (with a UTC offset)."
            ),
        ] = None,
        to: Annotated[
            datetime | None,
            strawberry.argument(
                description="Exclusive upper bound on bar start (with a UTC offset)."
            ),
        ] = None,
        first: Annotated[
            int | None, strawberry.argument(description="Page size, from the start of the list.")
        ] = None,
        after: Annotated[
            str | None, strawberry.argument(description="Return bars after this cursor.")
        ] = None,
        last: Annotated[
            int | None, strawberry.argument(description="Page size, from the end of the list.")
        ] = None,
        before: Annotated[
            str | None, strawberry.argument(description="Return bars before this cursor.")
        ] = None,
        order: Annotated[
            BarOrder, strawberry.argument(description="NEWEST_FIRST (default) or OLDEST_FIRST.")
        ] = BarOrder.NEWEST_FIRST,
    ) -> BarConnection:
        settings = info.context.settings
        page = page_args(
            first,
            after,
            last,
            before,
            default=settings.default_page_size,
            maximum=settings.max_page_size_bars,
        )
        core = interval.core
        plan = plan_bars(self.row, core, from_, to, page, order == BarOrder.NEWEST_FIRST)
        if plan is None:
            return empty_connection()
        loaded = await info.context.loaders.bar_page.load(plan.key)
        rows = loaded.rows[::-1] if plan.reverse else loaded.rows
        # Loaded rows stand in for Bar objects (same attribute names): building two
        # Strawberry objects per bar cost more than the rest of the request's Python work.
        symbol_id = self.row.id
        edges = cast(list[BarEdge], [RowEdge(r, symbol_id, core) for r in rows])
        return BarConnection(
            edges=edges,
            page_info=page_info(
                page, loaded.has_more, rows, lambda r: bar_cursor(symbol_id, core, r.ts)
            ),
            count_key=plan.count_key,
        )

    @strawberry.field(description="The newest bar at `interval` (null when none is stored).")
    async def latest_bar(
        self,
        info: Info,
        interval: Annotated[
            Interval, strawberry.argument(description="Bar interval (default D1).")
        ] = Interval.D1,
    ) -> Bar | None:
        core = interval.core
        base = self.row.base_for(core)
        if base is None:
            return None
        lo, hi = bucket_range(core, base.timeframe == core, None, None)
        window = BarWindow(core, base.timeframe, True)
        key = BarKey(self.row.id, lo, hi, stored_end(base), window, 1, base.version)
        page = await info.context.loaders.bar_page.load(key)
        if not page.rows:
            return None
        return cast(Bar, page.rows[0])

    @strawberry.field(
        description="Bars in [from, to) as columns, oldest first. When the range holds more than "
        "`maxPoints` bars, the server answers at the finest coarser interval that fits."
    )
    async def series(
        self,
        info: Info,
        interval: Annotated[
            Interval, strawberry.argument(description="Bar interval (default D1).")
        ] = Interval.D1,
        from_: Annotated[
            datetime | None,
            strawberry.argument(name="from", description="Inclusive lower bound on bar start."),
        ] = None,
        to: Annotated[
            datetime | None, strawberry.argument(description="Exclusive upper bound on bar start.")
        ] = None,
        max_points: Annotated[
            int,
            strawberry.argument(
                description="Most bars to return (the interval is coarsened to fit)."
            ),
        ] = 1000,
    ) -> BarSeries:
        key = await plan_series(
            self.row,
            interval.core,
            from_,
            to,
            max_points,
            info.context.settings,
            info.context.loaders.bucket_count.load,
        )
        if key is None:
            return BarSeries(
                interval=interval,
                requested_interval=interval,
                time=[],
                **{f.graphql: [] for f in BAR_FIELDS},
                closed=[],
            )
        cols = await info.context.loaders.series.load(key)
        return BarSeries(
            interval=Interval.of(cols.interval),
            requested_interval=interval,
            time=cols.ts,
            **{f.graphql: getattr(cols, f.name) for f in BAR_FIELDS},
            closed=cols.closed,
        )

    @strawberry.field(
        description="Technical indicators over this symbol's bars at `interval` (resampled like "
        "`bars`), for bars starting in [from, to). Values equal a whole-history computation."
    )
    def indicators(
        self,
        info: Info,
        interval: Annotated[
            Interval, strawberry.argument(description="Bar interval (default D1).")
        ] = Interval.D1,
        from_: Annotated[
            datetime | None,
            strawberry.argument(name="from", description="Inclusive lower bound on bar start."),
        ] = None,
        to: Annotated[
            datetime | None,
            strawberry.argument(description="Exclusive upper bound on bar start."),
        ] = None,
        significant_digits: Annotated[int | None, SIGNIFICANT_DIGITS] = None,
    ) -> IndicatorSet:
        core = interval.core
        base, lo, hi = plan_indicators(self.row, core, from_, to, info.context.settings)
        return IndicatorSet(
            interval=interval,
            symbol_id=self.row.id,
            base=base,
            lo=lo,
            hi=hi,
            digits=significant_digits,
        )


@strawberry.type(description="A symbol and its cursor.")
class SymbolEdge:
    node: Symbol = strawberry.field(description="The symbol.")

    @strawberry.field(description="Opaque keyset cursor of this symbol, for `after`/`before`.")
    def cursor(self) -> str:
        return symbol_cursor(self.node.row.ticker)


@strawberry.input(description="Conditions on symbols; all given conditions must hold.")
class SymbolFilter:
    search: str | None = strawberry.field(
        default=None, description="A ticker prefix, or words that start words of the name."
    )
    exchange: str | None = strawberry.field(default=None, description="Exchange code, exactly.")
    asset_class: str | None = strawberry.field(default=None, description="Asset class, exactly.")
    active: bool | None = strawberry.field(default=None, description="Only (in)active symbols.")
    tickers: list[str] | None = strawberry.field(
        default=None, description="Only these tickers (case-insensitive)."
    )
