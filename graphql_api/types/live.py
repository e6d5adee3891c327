"""Subscriptions: live bars (with a `since` replay) and, for admins, ingest events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Any

import strawberry
from starlette.websockets import WebSocket

from graphql_api.auth import Scope
from graphql_api.context import Info
from graphql_api.errors import BadUserInput, Forbidden, Unauthenticated
from graphql_api.live.hub import SLOW_CONSUMER_CODE, BarSubscriber, LiveBar, _Subscriber
from graphql_api.live.reads import ReplayTooLong, base_for, read_replay
from graphql_api.live.ws import hub_of, principal_of
from graphql_api.types.bars import Bar
from graphql_api.types.common import Interval
from graphql_api.validation import aware
from workers.events import BarChange

#: Bars sent between two returns to the event loop.
YIELD_EVERY = 64


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
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
            closed=row.closed,
        ),
        version=float(bar.version),
        replayed=bar.replayed,
    )


def _check_read(info: Info) -> None:
    principal = principal_of(info)
    if info.context.settings.require_read_key and not (
        principal is not None and (principal.has(Scope.READ) or principal.has(Scope.INGEST))
    ):
        raise Unauthenticated("reads need an API key with the `read` scope")


async def _cut_off(info: Info, sub: _Subscriber[Any]) -> None:
    """Close the connection of a slow consumer, then wait to be cancelled with it."""
    sub.acknowledged = True
    await _close_slow(info, sub)
    # Returning would make Strawberry send `complete` on a closed socket; the handler
    # cancels this operation when the close completes.
    await asyncio.Event().wait()


@strawberry.type(description="Live updates over WebSocket (graphql-transport-ws on /graphql).")
class Subscription:
    @strawberry.subscription(
        description="New and revised bars of the given symbols at `interval`, as they are "
        "ingested: a one-minute bar updates the forming five-minute bar. With `since`, the "
        "stored bars from the one holding that time on are sent first (`replayed`), then live "
        "updates, with no gap and no duplicate. One ingest batch sends at most its newest "
        "`LIVE_MAX_BARS_PER_CHANGE` bars per symbol. A client that falls behind is "
        "disconnected with close code 4008."
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
    ) -> AsyncGenerator[BarUpdate, None]:
        _check_read(info)
        settings = info.context.settings
        wanted = list(dict.fromkeys(t.strip().upper() for t in tickers))
        if not wanted:
            raise BadUserInput("`tickers` must name at least one symbol")
        if len(wanted) > settings.live_max_symbols_per_subscription:
            raise BadUserInput(
                f"at most {settings.live_max_symbols_per_subscription} tickers per "
                f"subscription, got {len(wanted)}"
            )
        aware("since", since)
        rows = await info.context.loaders.symbol_by_ticker.load_many(wanted)
        unknown = [t for t, r in zip(wanted, rows, strict=True) if r is None]
        if unknown:
            raise BadUserInput(f"unknown tickers: {', '.join(unknown)}")
        symbols = {r.id: r.ticker for r in rows if r is not None}
        core = interval.core
        hub = hub_of(info.context.request)
        sub = await hub.open_bars(symbols, core, replaying=since is not None)
        sub.task = asyncio.current_task()
        sub.closer = lambda: _close_slow(info, sub)
        try:
            if since is not None:
                async for update in _replay(info, sub, [r for r in rows if r is not None], since):
                    yield update
            while not sub.overflowed:
                batch = await sub.next_batch()
                for n, bar in enumerate(batch or (), start=1):
                    if sub.overflowed:
                        break
                    if sub.fresh(bar):
                        yield _update(bar, sub.symbols[bar.symbol_id])
                    if n % YIELD_EVERY == 0:
                        # Sends to a writable socket never suspend: let other tasks run.
                        await asyncio.sleep(0)
            await _cut_off(info, sub)
        finally:
            hub.close_bars(sub)

    @strawberry.subscription(
        description="Every committed ingest batch (symbol, timeframe, range, rows, version), "
        "as it commits; needs an `admin` key."
    )
    async def ingest_events(self, info: Info) -> AsyncGenerator[IngestEvent, None]:
        principal = principal_of(info)
        if principal is None or not principal.authenticated:
            raise Unauthenticated("ingestEvents needs an API key with the `admin` scope")
        if not principal.has(Scope.ADMIN):
            raise Forbidden("this API key lacks the `admin` scope")
        hub = hub_of(info.context.request)
        sub = await hub.open_events()
        sub.task = asyncio.current_task()
        sub.closer = lambda: _close_slow(info, sub)
        try:
            while not sub.overflowed:
                for change in await sub.next_batch() or ():
                    yield await _event(info, change)
            await _cut_off(info, sub)
        finally:
            hub.close_events(sub)


async def _replay(
    info: Info, sub: BarSubscriber, rows: list[Any], since: datetime
) -> AsyncGenerator[BarUpdate, None]:
    """Stored bars after `since`, read after the live feed was joined; then switch to live."""
    settings = info.context.settings
    versions: dict[int, int] = {}
    for row in rows:
        base = base_for(frozenset(s.timeframe for s in row.series), sub.interval)
        if base is None:
            continue  # nothing stored can make these bars: live updates only
        try:
            read = await read_replay(
                info.context.engine,
                row.id,
                base,
                sub.interval,
                since,
                settings.live_max_replay_bars,
            )
        except ReplayTooLong as exc:
            raise BadUserInput(f"{row.ticker}: {exc}; move `since` closer or page `bars`") from None
        versions[row.id] = read.version
        for n, bar_row in enumerate(read.rows, start=1):
            bar = LiveBar(row.id, sub.interval, bar_row, read.version, replayed=True)
            if sub.overflowed:
                return
            if sub.fresh(bar):
                yield _update(bar, row.ticker)
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
    sub.end_replay(versions)


async def _close_slow(info: Info, sub: _Subscriber[Any]) -> None:
    websocket = info.context.request
    assert isinstance(websocket, WebSocket)
    reason = f"slow consumer: fell {sub.size} ingest batches behind"
    await websocket.close(code=SLOW_CONSUMER_CODE, reason=reason)


async def _event(info: Info, change: BarChange) -> IngestEvent:
    return IngestEvent(
        version=float(change.id),
        ticker=await hub_of(info.context.request).ticker(change.symbol_id),
        interval=Interval(change.timeframe),
        first_bar_time=change.first_ts,
        last_bar_time=change.last_ts,
        rows=change.rows,
        source=change.source,
    )
