"""Symbols: the Symbol node, its bars, and the symbol connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Annotated, cast

import numpy as np
import strawberry

from core.adjustments import Adjust
from core.bar import BAR_FIELDS
from core.calendars import Buckets, default_session, trading_hours
from core.calendars import Fill as CoreFill
from core.errors import BadUserInput
from core.intervals import MIN_TS
from graphql_api.bar_fill import clip, fill_page, fill_series
from graphql_api.bar_queries import (
    Rule,
    plan_bars,
    plan_indicators,
    plan_series,
    rule_for,
    stored_end,
)
from graphql_api.context import Info
from graphql_api.cursors import bar_cursor, symbol_cursor
from graphql_api.relay import page_args, page_info
from graphql_api.types.actions import CorporateAction
from graphql_api.types.bars import (
    Bar,
    BarConnection,
    BarEdge,
    BarSeries,
    RowEdge,
    SeriesPrices,
    empty_connection,
    register_rows,
    series_prices,
)
from graphql_api.types.common import (
    Adjustment,
    AdjustmentArg,
    Alignment,
    AsOfArg,
    BarOrder,
    Fill,
    Interval,
    Node,
    Session,
    adjust_of,
    choice,
    global_id,
)
from graphql_api.types.indicators import SIGNIFICANT_DIGITS, IndicatorSet
from graphql_api.types.sessions import TradingSession, trading_sessions
from loaders.actions import MAX_DATE, MIN_DATE, ActionsKey
from loaders.bars import BarKey, BarWindow
from loaders.columns import Column
from loaders.rows import StoredSeries, SymbolRow

_TINY = timedelta(microseconds=1)

SessionArg = Annotated[
    Session | None,
    strawberry.argument(
        description="Which hours count: REGULAR, EXTENDED or ALL. Default (null): REGULAR "
        "for symbols on an exchange calendar (what brokers and charts show), ALL for 24/7 "
        "and FX calendars (`Symbol.defaultSession`)."
    ),
]
AlignmentArg = Annotated[
    Alignment,
    strawberry.argument(
        description="Where buckets start: SESSION (default; at the session open in the "
        "exchange's time zone, what traders expect) or UTC (the UTC grid served before "
        "sessions existed)."
    ),
]
FillArg = Annotated[
    Fill,
    strawberry.argument(description="Empty slots of trading hours: NONE (default) or PREVIOUS."),
]


def _prev_close(
    info: Info, row: SymbolRow, base: StoredSeries, rule: Rule, adjust: Adjust | None
) -> Callable[[datetime], Awaitable[float | None]]:
    """The close of the newest bar before a bucket start (what PREVIOUS carries forward)."""
    b = rule.bucketing

    async def load(start: datetime) -> float | None:
        window = BarWindow(b.interval, base.timeframe, True, b, adjust)
        hi = rule.row_bound(start)
        # The walk goes back before the request's range: its calendar span must too (a key's
        # span covers its rows, so that equal keys, and cache keys, mean equal answers).
        back = rule_for(row, base, b.interval, Buckets(b.kind, b.aligned), None, hi)
        key = BarKey(row.id, MIN_TS, hi, stored_end(base), window, 1, base.version, back.span)
        page = await info.context.loaders.bar_page.load(key)
        return page.rows[0].close if page.rows else None

    return load


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

    @strawberry.field(
        description="Exchange calendar code (XNYS, XNAS, 24/7, FX, or a pandas-market-calendars "
        "name): its sessions, holidays, early closes and DST shape every bucket."
    )
    def calendar(self) -> str:
        return self.row.calendar

    @strawberry.field(
        description="The `session` used when a request gives none: REGULAR on exchange "
        "calendars, ALL on 24/7 and FX."
    )
    def default_session(self) -> Session:
        return Session(default_session(self.row.calendar).value)

    @strawberry.field(
        description="The trading sessions of the symbol's calendar with dates in [from, to): "
        "the open and close instants (and pre/post-market hours) behind session-aligned bars, "
        "holidays left out, half days closing early."
    )
    def sessions(
        self,
        from_: Annotated[
            date, strawberry.argument(name="from", description="First trading date (inclusive).")
        ],
        to: Annotated[date, strawberry.argument(description="Last trading date (exclusive).")],
    ) -> list[TradingSession]:
        return trading_sessions(self.row.calendar, from_, to)

    @strawberry.field(
        description="The calendar's current weekly hours as session strings (the format "
        "TradingView reads), for charting tools that shade or label sessions."
    )
    def trading_hours(self) -> TradingHours:
        hours = trading_hours(self.row.calendar)
        return TradingHours(timezone=hours.timezone, regular=hours.regular, extended=hours.extended)

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
        session: SessionArg = None,
        alignment: AlignmentArg = Alignment.SESSION,
        fill: FillArg = Fill.NONE,
        adjustment: AdjustmentArg = Adjustment.RAW,
        as_of: AsOfArg = None,
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
        newest_first = order == BarOrder.NEWEST_FIRST
        plan_adjust = adjust_of(adjustment, as_of)
        plan = plan_bars(
            self.row,
            core,
            from_,
            to,
            page,
            newest_first,
            choice(session, alignment),
            plan_adjust,
        )
        if plan is None:
            return empty_connection()
        loaded = await info.context.loaders.bar_page.load(plan.key)
        walked, has_more = loaded.rows, loaded.has_more
        slot_count = None
        if fill.core != CoreFill.NONE:
            base = self.row.base_for(core)
            assert base is not None  # plan_bars found it
            rule = plan.rule
            whole = clip(from_, to, rule.data_window(base))
            a_ts, b_ts = plan.after_ts, plan.before_ts
            older_than, newer_than = (a_ts, b_ts) if newest_first else (b_ts, a_ts)
            lo, hi = whole
            if older_than is not None:
                hi = min(hi, older_than)
            if newer_than is not None:
                lo = max(lo, newer_than + _TINY)
            walked, has_more = await fill_page(
                walked,
                has_more,
                plan.key.window.descending,
                page.size,
                (lo, hi),
                rule,
                _prev_close(info, self.row, base, rule, plan_adjust),
                null=fill.core == CoreFill.NULL,
            )
            slot_count = lambda: rule.count_slots(*whole)  # noqa: E731
        rows = walked[::-1] if plan.reverse else walked
        register_rows(info, self.row.calendar, core, rows)
        # Loaded rows stand in for Bar objects (same attribute names): building two
        # Strawberry objects per bar cost more than the rest of the request's Python work.
        symbol_id = self.row.id
        edges = cast(list[BarEdge], [RowEdge(r, symbol_id, core) for r in rows])
        return BarConnection(
            edges=edges,
            page_info=page_info(page, has_more, rows, lambda r: bar_cursor(symbol_id, core, r.ts)),
            count_key=plan.count_key,
            slot_count=slot_count,
        )

    @strawberry.field(description="The newest bar at `interval` (null when none is stored).")
    async def latest_bar(
        self,
        info: Info,
        interval: Annotated[
            Interval, strawberry.argument(description="Bar interval (default D1).")
        ] = Interval.D1,
        session: SessionArg = None,
        alignment: AlignmentArg = Alignment.SESSION,
        adjustment: AdjustmentArg = Adjustment.RAW,
        as_of: AsOfArg = None,
    ) -> Bar | None:
        core = interval.core
        base = self.row.base_for(core)
        if base is None:
            return None
        rule = rule_for(self.row, base, core, choice(session, alignment))
        lo, hi = rule.bounds(None, None)
        window = BarWindow(core, base.timeframe, True, rule.bucketing, adjust_of(adjustment, as_of))
        key = BarKey(self.row.id, lo, hi, stored_end(base), window, 1, base.version, rule.span)
        page = await info.context.loaders.bar_page.load(key)
        if not page.rows:
            return None
        register_rows(info, self.row.calendar, core, page.rows[:1])
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
        session: SessionArg = None,
        alignment: AlignmentArg = Alignment.SESSION,
        fill: FillArg = Fill.NONE,
        adjustment: AdjustmentArg = Adjustment.RAW,
        as_of: AsOfArg = None,
    ) -> BarSeries:
        adjust = adjust_of(adjustment, as_of)
        planned = await plan_series(
            self.row,
            interval.core,
            from_,
            to,
            max_points,
            info.context.settings,
            info.context.loaders.bucket_count.load,
            choice(session, alignment),
            fill.core != CoreFill.NONE,
            adjust,
            info.context.loaders.series.load,
        )
        if planned is None:
            return BarSeries(
                interval=interval,
                requested_interval=interval,
                time=[],
                **{f.graphql: [] for f in BAR_FIELDS},
                closed=[],
                filled=[],
                prices=SeriesPrices(open=[], high=[], low=[], close=[]),
            )
        key, rule = planned
        cols = await info.context.loaders.series.load(key)
        filled: Sequence[bool] = Column(np.zeros(len(cols.ts), dtype=np.bool_))
        if fill.core != CoreFill.NONE:
            base = self.row.base_for(key.base)
            assert base is not None  # plan_series found it
            window = clip(from_, to, rule.data_window(base))
            cols, filled = await fill_series(
                cols, window, rule, _prev_close(info, self.row, base, rule, adjust)
            )
        # Columns may be numpy-backed (loaders.columns.Column): graphql_api/fastpath.py writes
        # them as JSON in one call; the normal path reads them as lists.
        return BarSeries(
            interval=Interval.of(cols.interval),
            requested_interval=interval,
            time=cast(list[datetime], cols.ts),
            **{f.graphql: getattr(cols, f.name) for f in BAR_FIELDS},
            closed=cast(list[bool], cols.closed),
            filled=cast(list[bool], filled),
            prices=series_prices(cols, filled if fill.core == CoreFill.NULL else None),
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
        session: SessionArg = None,
        alignment: AlignmentArg = Alignment.SESSION,
        adjustment: AdjustmentArg = Adjustment.RAW,
        as_of: AsOfArg = None,
        significant_digits: Annotated[int | None, SIGNIFICANT_DIGITS] = None,
    ) -> IndicatorSet:
        core = interval.core
        base, lo, hi, rule = plan_indicators(
            self.row, core, from_, to, info.context.settings, choice(session, alignment)
        )
        return IndicatorSet(
            interval=interval,
            symbol_id=self.row.id,
            base=base,
            lo=lo,
            hi=hi,
            rule=rule,
            adjust=adjust_of(adjustment, as_of),
            digits=significant_digits,
        )

    @strawberry.field(
        description="Splits and cash dividends with an ex-date in [from, to), oldest first: "
        "the actions `adjustment` applies, for marking them on a chart."
    )
    async def corporate_actions(
        self,
        info: Info,
        from_: Annotated[
            date | None,
            strawberry.argument(name="from", description="Inclusive lower bound on ex-date."),
        ] = None,
        to: Annotated[
            date | None, strawberry.argument(description="Exclusive upper bound on ex-date.")
        ] = None,
    ) -> list[CorporateAction]:
        if from_ is not None and to is not None and to < from_:
            raise BadUserInput("`to` must not be before `from`")
        key = ActionsKey(self.row.id, from_ or MIN_DATE, to or MAX_DATE)
        rows = await info.context.loaders.corporate_actions.load(key)
        return [CorporateAction(row=r) for r in rows]


@strawberry.type(description="A calendar's weekly trading hours as session strings.")
class TradingHours:
    timezone: str = strawberry.field(
        description="IANA time zone the hours are in: the calendar's, Etc/UTC for 24/7 and FX "
        "(the zone session-aligned buckets follow)."
    )
    regular: str = strawberry.field(
        description="Regular hours: `HHMM-HHMM` ranges, comma-separated, then `:days` "
        "(1 = Sunday … 7 = Saturday), e.g. `0930-1600:23456`; an open after the close spans "
        "midnight, `0000-0000` is a whole day, `24x7` always open."
    )
    extended: str | None = strawberry.field(
        description="Pre-market open to post-market close in the same format (e.g. "
        "`0400-2000:23456`); null when the calendar has no extended hours."
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
