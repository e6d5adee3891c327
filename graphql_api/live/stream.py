"""The streams behind the subscriptions, independent of how their items are rendered.

`bar_stream` validates, joins the hub, replays `since`, then follows live batches; it yields
(bar, ticker) pairs. The Strawberry resolver turns them into `BarUpdate` objects; the fast
path of graphql_api.live.fast renders them once for every identical subscription.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

from starlette.websockets import WebSocket

from core.adjustments import Adjust
from core.calendars import DEFAULT_BUCKETS, Buckets, default_session
from core.errors import BadUserInput, Forbidden, Unauthenticated
from core.events import BarChange
from core.intervals import MAX_TS, Interval
from graphql_api.auth import Principal, Scope
from graphql_api.context import Context
from graphql_api.live.hub import (
    SLOW_CONSUMER_CODE,
    BarSubscriber,
    Feed,
    LiveBar,
    _Subscriber,
    hub_of,
)
from graphql_api.live.indicators import (
    HistoryTooLong,
    IndicatorBar,
    SpecKey,
    close_indicators,
    open_indicators,
)
from graphql_api.live.reads import ReplayTooLong, base_for, read_replay
from graphql_api.validation import aware
from loaders.rows import SymbolRow

#: Bars sent between two returns to the event loop.
YIELD_EVERY = 64


def principal(context: Context) -> Principal | None:
    """The principal authenticated at `connection_init` (None before it)."""
    found: Principal | None = context.extras.get("principal")
    return found


def check_read(context: Context) -> None:
    """Reads need a read (or ingest) key when the settings say so."""
    who = principal(context)
    if context.settings.require_read_key and not (
        who is not None and (who.has(Scope.READ) or who.has(Scope.INGEST))
    ):
        raise Unauthenticated("reads need an API key with the `read` scope")


def feed_for(
    row: SymbolRow, interval: Interval, choice: Buckets, adjust: Adjust | None = None
) -> Feed:
    """How `row`'s bars at `interval` are bucketed (and adjusted) for a subscription that
    chose `choice` and `adjust`."""
    kind = choice.kind or default_session(row.calendar)
    return Feed(interval, kind, choice.aligned, row.calendar, adjust)


async def bar_stream(
    context: Context,
    tickers: list[str],
    interval: Interval,
    since: datetime | None,
    choice: Buckets = DEFAULT_BUCKETS,
    adjust: Adjust | None = None,
) -> AsyncGenerator[tuple[LiveBar, str], None]:
    """barUpdates: the replay after `since` (if given), then every live bar, deduplicated."""
    check_read(context)
    aware("since", since)
    rows = await symbol_rows(context, tickers)
    hub = hub_of(context.request)
    sub = await hub.open_bars(
        {r.id: r.ticker for r in rows},
        interval,
        replaying=since is not None,
        feeds={r.id: feed_for(r, interval, choice, adjust) for r in rows},
    )
    sub.task = asyncio.current_task()
    sub.closer = lambda: close_slow(context, sub)
    try:
        if since is not None:
            async for item in _replay(context, sub, rows, since):
                yield item
        while not sub.overflowed:
            batch = await sub.next_batch()
            for n, bar in enumerate(batch or (), start=1):
                if sub.overflowed:
                    break
                if sub.fresh(bar):
                    yield bar, sub.symbols[bar.symbol_id]
                if n % YIELD_EVERY == 0:
                    # Sends to a writable socket never suspend: let other tasks run.
                    await asyncio.sleep(0)
        await cut_off(context, sub)
    finally:
        hub.close_bars(sub)


async def symbol_rows(context: Context, tickers: list[str]) -> list[SymbolRow]:
    """The symbols of a subscription's `tickers` (BadUserInput: none, too many, unknown)."""
    settings = context.settings
    wanted = list(dict.fromkeys(t.strip().upper() for t in tickers))
    if not wanted:
        raise BadUserInput("`tickers` must name at least one symbol")
    if len(wanted) > settings.live_max_symbols_per_subscription:
        raise BadUserInput(
            f"at most {settings.live_max_symbols_per_subscription} tickers per "
            f"subscription, got {len(wanted)}"
        )
    found = await context.loaders.symbol_by_ticker.load_many(wanted)
    unknown = [t for t, r in zip(wanted, found, strict=True) if r is None]
    if unknown:
        raise BadUserInput(f"unknown tickers: {', '.join(unknown)}")
    return [r for r in found if r is not None]


async def indicator_stream(
    context: Context,
    tickers: list[str],
    interval: Interval,
    specs: list[SpecKey],
    since: datetime | None = None,
    choice: Buckets = DEFAULT_BUCKETS,
    adjust: Adjust | None = None,
) -> AsyncGenerator[tuple[IndicatorBar, str], None]:
    """indicatorUpdates: the values of the bars from `since` (else of the newest bar), then of
    every bar a committed change forms, closes or revises (graphql_api.live.indicators)."""
    check_read(context)
    aware("since", since)
    rows = await symbol_rows(context, tickers)
    hub = hub_of(context.request)
    try:
        sub = await open_indicators(
            hub,
            {r.id: r.ticker for r in rows},
            {r.id: feed_for(r, interval, choice, adjust) for r in rows},
            specs,
            since,
        )
    except HistoryTooLong as exc:
        raise BadUserInput(str(exc), argument="indicators") from None
    except ReplayTooLong as exc:
        raise BadUserInput(f"{exc}; move `since` closer or query `Symbol.indicators`") from None
    sub.task = asyncio.current_task()
    sub.closer = lambda: close_slow(context, sub)
    try:
        while not sub.overflowed:
            batch = await sub.next_batch()
            if sub.error is not None:
                raise BadUserInput(sub.error, argument="indicators")
            for n, item in enumerate(batch or (), start=1):
                if sub.overflowed:
                    break
                yield item, sub.symbols[item.symbol_id]
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        await cut_off(context, sub)
    finally:
        close_indicators(hub, sub)


async def _replay(
    context: Context, sub: BarSubscriber, rows: list[SymbolRow], since: datetime
) -> AsyncGenerator[tuple[LiveBar, str], None]:
    """Stored bars from `since` on, read after the live feed was joined; then switch to live."""
    versions: dict[int, int] = {}
    for row in rows:
        base = base_for(frozenset(s.timeframe for s in row.series), sub.interval)
        if base is None:
            continue  # nothing stored can make these bars: live updates only
        feed = sub.feeds[row.id]
        rule = feed.rule(base)
        try:
            read = await read_replay(
                context.engine,
                row.id,
                base,
                sub.interval,
                since,
                context.settings.live_max_replay_bars,
                rule,
                feed.span(rule, since, MAX_TS),
                feed.adjust,
            )
        except ReplayTooLong as exc:
            raise BadUserInput(f"{row.ticker}: {exc}; move `since` closer or page `bars`") from None
        versions[row.id] = read.version
        for n, bar_row in enumerate(read.rows, start=1):
            bar = LiveBar(row.id, sub.interval, bar_row, read.version, replayed=True)
            if sub.overflowed:
                return
            if sub.fresh(bar):
                yield bar, row.ticker
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
    sub.end_replay(versions)


async def event_stream(context: Context) -> AsyncGenerator[tuple[BarChange, str], None]:
    """ingestEvents: every committed change with its ticker (admin keys only)."""
    who = principal(context)
    if who is None or not who.authenticated:
        raise Unauthenticated("ingestEvents needs an API key with the `admin` scope")
    if not who.has(Scope.ADMIN):
        raise Forbidden("this API key lacks the `admin` scope")
    hub = hub_of(context.request)
    sub = await hub.open_events()
    sub.task = asyncio.current_task()
    sub.closer = lambda: close_slow(context, sub)
    try:
        while not sub.overflowed:
            for change in await sub.next_batch() or ():
                yield change, await hub.ticker(change.symbol_id)
        await cut_off(context, sub)
    finally:
        hub.close_events(sub)


async def close_slow(context: Context, sub: _Subscriber[Any]) -> None:
    """Close a slow consumer's connection with 4008 and a reason."""
    websocket = context.request
    assert isinstance(websocket, WebSocket)
    reason = f"slow consumer: fell {sub.size} ingest batches behind"
    await websocket.close(code=SLOW_CONSUMER_CODE, reason=reason)


async def cut_off(context: Context, sub: _Subscriber[Any]) -> None:
    """Close the connection of a slow consumer, then wait to be cancelled with it."""
    sub.acknowledged = True
    await close_slow(context, sub)
    # Returning would make the handler send `complete` on a closed socket; it cancels this
    # operation when the close completes.
    await asyncio.Event().wait()
