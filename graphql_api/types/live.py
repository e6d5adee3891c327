"""Subscriptions: live bars (with a `since` replay) and, for admins, ingest events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from typing import Annotated

import strawberry

from core.bar import BAR_FIELDS
from core.events import BarChange
from graphql_api.context import Info
from graphql_api.live.hub import LiveBar
from graphql_api.live.stream import bar_stream, event_stream, indicator_stream
from graphql_api.types.bars import Bar
from graphql_api.types.common import (
    Adjustment,
    AdjustmentArg,
    Alignment,
    AsOfArg,
    Interval,
    Session,
    adjust_of,
    choice,
)
from graphql_api.types.live_indicators import (
    IndicatorUpdate,
    LiveIndicator,
    followed,
    indicator_update,
)


@strawberry.type(
    description="A new or revised bar of a subscribed symbol, at the subscribed interval."
)
class BarUpdate:
    ticker: str = strawberry.field(description="Ticker of the symbol.")
    interval: Interval = strawberry.field(description="Interval of the bar (as subscribed).")
    bar: Bar = strawberry.field(
        description="The bar as stored now, resampled like `Symbol.bars`; `closed` is false "
        "while its interval has not been filled by stored bars yet."
    )
    version: float = strawberry.field(
        description="Data version of the stored series the bar was built from (an integer; "
        "a later state of the same bar has a larger one)."
    )
    replayed: bool = strawberry.field(
        description="True for bars sent by the `since` replay, false for live updates."
    )


@strawberry.type(description="One committed ingest batch of one symbol and timeframe.")
class IngestEvent:
    version: float = strawberry.field(
        description="The series' new data version (the change id, an integer)."
    )
    ticker: str = strawberry.field(description="Ticker of the symbol.")
    interval: Interval = strawberry.field(description="Timeframe the bars are stored at.")
    first_bar_time: datetime = strawberry.field(description="Start of the oldest bar written.")
    last_bar_time: datetime = strawberry.field(description="Start of the newest bar written.")
    rows: int = strawberry.field(description="Bars new or revised in the batch.")
    source: str = strawberry.field(description="What wrote the batch (a file, a provider, …).")


def _update(bar: LiveBar, ticker: str) -> BarUpdate:
    row = bar.row
    return BarUpdate(
        ticker=ticker,
        interval=Interval.of(bar.interval),
        bar=Bar(
            time=row.ts,
            **{f.graphql: getattr(row, f.name) for f in BAR_FIELDS},
            closed=row.closed,
        ),
        version=float(bar.version),
        replayed=bar.replayed,
    )


@strawberry.type(description="Live updates over WebSocket (graphql-transport-ws on /graphql).")
class Subscription:
    @strawberry.subscription(
        description="New and revised bars of the given symbols at `interval`, as they are "
        "ingested: a one-minute bar updates the forming five-minute bar. With `since`, the "
        "stored bars from the one holding that time on are sent first (`replayed`), then live "
        "updates, with no gap and no duplicate. One ingest batch sends at most its newest "
        "`LIVE_MAX_BARS_PER_CHANGE` bars per symbol. With `adjustment`, bars come adjusted, and "
        "a new or corrected corporate action re-sends the (newest) bars it adjusts; without "
        "`asOf`, the actions known on the day the subscription started apply. A client that "
        "falls behind is disconnected with close code 4008."
    )
    async def bar_updates(
        self,
        info: Info,
        tickers: Annotated[
            list[str], strawberry.argument(description="Tickers to watch (case-insensitive).")
        ],
        interval: Annotated[
            Interval, strawberry.argument(description="Interval of the bars sent.")
        ] = Interval.M1,
        since: Annotated[
            datetime | None,
            strawberry.argument(
                description="Replay stored bars from the bar holding this time (with a UTC "
                "offset) before going live."
            ),
        ] = None,
        session: Annotated[
            Session | None,
            strawberry.argument(
                description="Which hours count, as on `Symbol.bars` (null: the symbol's "
                "default session)."
            ),
        ] = None,
        alignment: Annotated[
            Alignment,
            strawberry.argument(description="Where buckets start, as on `Symbol.bars`."),
        ] = Alignment.SESSION,
        adjustment: AdjustmentArg = Adjustment.RAW,
        as_of: AsOfArg = None,
    ) -> AsyncGenerator[BarUpdate, None]:
        stream = bar_stream(
            info.context,
            tickers,
            interval.core,
            since,
            choice(session, alignment),
            adjust_of(adjustment, as_of),
        )
        async with aclosing(stream):
            async for bar, ticker in stream:
                yield _update(bar, ticker)

    @strawberry.subscription(
        description="Indicator values of the given symbols at `interval`, pushed as bars form, "
        "close or are revised; the arguments are those of `barUpdates` (a client switches "
        "between the two) and the indicators and parameters those of `Symbol.indicators`. "
        "First the newest bar's values (`replayed`; with `since`, those of every stored bar "
        "from the one holding that time on), then, for every committed change, the values of "
        "each bar it forms or closes, with no gap. Every value equals what `Symbol.indicators` "
        "returns for the same bar over the same stored bars: the server keeps, per symbol and "
        "interval (and session, alignment, adjustment), the longest warm-up of the indicators "
        "followed (the bars `Symbol.indicators` reads before `from`) before the newest bar, "
        "plus 64 bars, and computes each value over its own indicator's warm-up window, as "
        "the batch does; OBV, AD, SAR, Supertrend, cumulative VWAP and VWAP bands, and "
        "anchored VWAP keep the whole history (or the bars since "
        "the anchor), at most `LIVE_INDICATOR_MAX_BARS`. A revision of an older bar recomputes "
        "from it and re-sends it and every later bar with `recomputedFrom` set. At most "
        "`LIVE_MAX_BARS_PER_CHANGE` bars per change, as `barUpdates`. A client that falls "
        "behind is disconnected with close code 4008."
    )
    async def indicator_updates(
        self,
        info: Info,
        tickers: Annotated[
            list[str], strawberry.argument(description="Tickers to watch (case-insensitive).")
        ],
        indicators: Annotated[
            list[LiveIndicator],
            strawberry.argument(
                description="The indicators to follow, each with its parameters (at most "
                "`LIVE_MAX_INDICATORS_PER_SUBSCRIPTION`)."
            ),
        ],
        interval: Annotated[
            Interval, strawberry.argument(description="Interval of the bars computed on.")
        ] = Interval.M1,
        since: Annotated[
            datetime | None,
            strawberry.argument(
                description="Send the values of the stored bars from the bar holding this time "
                "(with a UTC offset) before going live, at most `LIVE_MAX_REPLAY_BARS`."
            ),
        ] = None,
        session: Annotated[
            Session | None,
            strawberry.argument(
                description="Which hours count, as on `Symbol.bars` (null: the symbol's "
                "default session)."
            ),
        ] = None,
        alignment: Annotated[
            Alignment,
            strawberry.argument(description="Where buckets start, as on `Symbol.bars`."),
        ] = Alignment.SESSION,
        adjustment: AdjustmentArg = Adjustment.RAW,
        as_of: AsOfArg = None,
    ) -> AsyncGenerator[IndicatorUpdate, None]:
        wanted = followed(indicators, info.context.settings.live_max_indicators_per_subscription)
        stream = indicator_stream(
            info.context,
            tickers,
            interval.core,
            list(dict.fromkeys(f.key for f in wanted)),
            since,
            choice(session, alignment),
            adjust_of(adjustment, as_of),
        )
        async with aclosing(stream):
            async for item, ticker in stream:
                yield indicator_update(item, ticker, wanted)

    @strawberry.subscription(
        description="Every committed ingest batch (symbol, timeframe, range, rows, version), "
        "as it commits; needs an `admin` key."
    )
    async def ingest_events(self, info: Info) -> AsyncGenerator[IngestEvent, None]:
        stream = event_stream(info.context)
        async with aclosing(stream):
            async for change, ticker in stream:
                yield _event(change, ticker)


def _event(change: BarChange, ticker: str) -> IngestEvent:
    return IngestEvent(
        version=float(change.id),
        ticker=ticker,
        interval=Interval(change.timeframe),
        first_bar_time=change.first_ts,
        last_bar_time=change.last_ts,
        rows=change.rows,
        source=change.source,
    )
