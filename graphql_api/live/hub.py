"""The per-process registry of live subscribers, and how bar changes reach them.

A change event (symbol, timeframe, first/last bar, version) arrives from the fan-out (see
graphql_api.live.fanout). For each interval some local subscriber watches on that symbol,
one `_Group` re-reads the touched buckets from PostgreSQL (the read API's resampling) once
and offers the same bars to all of its subscribers. A group handles its changes one at a
time, so its reads, and the versions they carry, never go backwards; changes that pile up
while a read runs are merged into one read.

Every subscriber has a bounded queue. One that falls behind by more than `live_queue_size`
batches is cut off: its backlog is dropped at once (memory stays bounded) and its
connection is closed with code 4008.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from core.adjustments import Adjust
from core.calendars import SessionKind, calendar_timezone
from core.events import BarChange
from core.intervals import Interval
from core.settings import Settings
from graphql_api.auth import KeyStore
from graphql_api.live.keywatch import KeyWatch, check_period
from graphql_api.live.reads import (
    base_for,
    changes_after,
    newest_change_ids,
    read_touched,
    tickers_of,
    touched_range,
)
from loaders.buckets import NO_SPAN, Bucketing, Span, bucketing, span
from loaders.rows import BarRow

log = logging.getLogger(__name__)

#: Close code and reason for a subscriber that could not keep up.
SLOW_CONSUMER_CODE = 4008
#: How long a cut-off subscription may take to notice before its task is cancelled.
SLOW_CONSUMER_GRACE = 5.0
#: Catch-up after a lost connection re-reads this many change ids before the newest seen:
#: ids are handed out before commit, so a lower id can commit after a higher one (of another
#: series). Re-reading is harmless (deduplicated by version), missing a change is not.
CATCH_UP_OVERLAP = 1_000
#: Bar times remembered per group and per subscriber for deduplication.
DEDUPE_MEMORY = 4_096

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Feed:
    """What a group sends for one symbol: the interval, and how its buckets are formed (the
    subscription's `session` and `alignment` on the symbol's calendar)."""

    interval: Interval
    kind: SessionKind = SessionKind.ALL
    aligned: bool = False
    calendar: str = "24/7"
    adjust: Adjust | None = None  # corporate actions applied (None: raw bars)

    def rule(self, base: Interval) -> Bucketing:
        """How bars of stored timeframe `base` become this feed's buckets."""
        return bucketing(self.calendar, base, self.interval, self.kind, self.aligned)

    def span(self, rule: Bucketing, lo: datetime, hi: datetime) -> Span:
        """The calendar days a read of base rows [lo, hi) can need."""
        if not rule.needs_calendar:
            return NO_SPAN
        return span(self.calendar, calendar_timezone(self.calendar), lo, hi)


@dataclass(frozen=True, slots=True)
class LiveBar:
    """One bar to send: as read at data version `version` of its base series."""

    symbol_id: int
    interval: Interval
    row: BarRow
    version: int
    replayed: bool = False


class Fanout(Protocol):
    """Delivers committed changes to the hub (`on_bar_change`, `on_event`, `catch_up`)."""

    async def start(self) -> None:
        """Connect; returns at once, connecting goes on in the background."""

    async def stop(self) -> None:
        """Disconnect and stop every background task."""

    async def watch_symbols(self, symbol_ids: Collection[int]) -> None:
        """Return once every change committed from now on for these symbols will arrive."""

    def unwatch_symbols(self, symbol_ids: Collection[int]) -> None:
        """Drop one watch of each symbol (the last one ends its delivery)."""

    async def watch_all(self) -> None:
        """Like watch_symbols, for every symbol's changes (delivered to `on_event`)."""

    def unwatch_all(self) -> None:
        """Drop one watch of all changes."""

    def stats(self) -> dict[str, Any]:
        """Counters for tests and debugging."""


class BarSink(Protocol):
    """What a group offers its bars to: a barUpdates subscriber, or the state of live
    indicators (graphql_api.live.indicators), which follows the same reads."""

    def offer(self, batch: list[LiveBar]) -> None:
        """Take a batch without waiting."""


class _Subscriber(Generic[T]):
    """A bounded queue of batches; overflowing it marks the subscriber slow."""

    def __init__(self, size: int, on_overflow: Callable[[_Subscriber[Any]], None]) -> None:
        self.size = size
        self.queue: asyncio.Queue[list[T] | None] = asyncio.Queue(size)
        self.overflowed = False
        self.task: asyncio.Task[Any] | None = None  # the operation streaming to the client
        self.closer: Callable[[], Awaitable[None]] | None = None  # closes its connection
        self.acknowledged = False  # the operation saw the overflow and closes the connection
        self._on_overflow = on_overflow

    def offer(self, batch: list[T]) -> None:
        """Queue a batch without waiting; a full queue cuts the subscriber off."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self._overflow()

    def _overflow(self) -> None:
        self.overflowed = True
        while not self.queue.empty():  # free the backlog now, not when the client goes
            self.queue.get_nowait()
        self.queue.put_nowait(None)  # wakes the operation if it waits for a batch
        self._on_overflow(self)

    async def next_batch(self) -> list[T] | None:
        """The next batch; None once the subscriber was cut off."""
        if self.overflowed:
            return None
        return await self.queue.get()


class BarSubscriber(_Subscriber[LiveBar]):
    """One barUpdates subscription: its symbols, interval, replay buffer and sent bars."""

    def __init__(
        self,
        symbols: dict[int, str],
        interval: Interval,
        size: int,
        replaying: bool,
        on_overflow: Callable[[_Subscriber[Any]], None],
        feeds: dict[int, Feed] | None = None,
    ) -> None:
        super().__init__(size, on_overflow)
        self.symbols = symbols
        self.interval = interval
        #: Per symbol, how its buckets are formed (the UTC grid unless the subscription chose).
        self.feeds = feeds or {sid: Feed(interval) for sid in symbols}
        # While the `since` replay runs, live batches wait here (bounded like the queue).
        self.buffer: list[list[LiveBar]] | None = [] if replaying else None
        self._sent: OrderedDict[tuple[int, datetime], int] = OrderedDict()

    def offer(self, batch: list[LiveBar]) -> None:
        """Queue a batch, or buffer it while the replay runs."""
        if self.overflowed:
            return
        if self.buffer is not None:
            if len(self.buffer) >= self.size:
                self.buffer = None
                self._overflow()
            else:
                self.buffer.append(batch)
            return
        super().offer(batch)

    def end_replay(self, versions: dict[int, int]) -> None:
        """Switch to live: queue the buffered batches newer than what the replay read."""
        buffered, self.buffer = self.buffer or [], None
        for batch in buffered:
            # A batch read at or below the replay's version shows no newer state than it.
            kept = [b for b in batch if b.version > versions.get(b.symbol_id, 0)]
            if kept:
                self.offer(kept)

    def fresh(self, bar: LiveBar) -> bool:
        """False for a bar already sent at this or a later version (the dedupe rule)."""
        key = (bar.symbol_id, bar.row.ts)
        sent = self._sent.get(key)
        if sent is not None and sent >= bar.version:
            return False
        self._sent[key] = bar.version
        self._sent.move_to_end(key)
        if len(self._sent) > DEDUPE_MEMORY:
            self._sent.popitem(last=False)
        return True


class EventSubscriber(_Subscriber[BarChange]):
    """One ingestEvents subscription."""


class _Group:
    """The local subscribers of one symbol at one interval, and the reads that serve them."""

    def __init__(self, hub: LiveHub, symbol_id: int, feed: Feed) -> None:
        self.hub = hub
        self.symbol_id = symbol_id
        self.feed = feed
        interval = self.interval = feed.interval
        self.subscribers: set[BarSink] = set()
        self.pending: list[BarChange] = []
        self.wake = asyncio.Event()
        self.emitted: OrderedDict[datetime, int] = OrderedDict()
        self.task = asyncio.create_task(self._run(), name=f"live-{symbol_id}-{interval.value}")

    def add(self, change: BarChange) -> None:
        """Queue a change for the next read (changes piling up are merged into one)."""
        self.pending.append(change)
        self.wake.set()

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            changes, self.pending = self.pending, []
            for base, lo, hi in _merged_ranges(changes, self.feed):
                try:
                    await self._refresh(base, lo, hi)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # A failed read loses this update for now; the next change re-reads.
                    log.warning("live read of symbol %s failed: %r", self.symbol_id, exc)

    async def _refresh(self, base: Interval, lo: datetime, hi: datetime) -> None:
        rule = self.feed.rule(base)
        read = await read_touched(
            self.hub.engine,
            self.symbol_id,
            base,
            self.interval,
            lo,
            hi,
            self.hub.settings.live_max_bars_per_change,
            rule,
            self.feed.span(rule, lo, hi),
            self.feed.adjust,
        )
        if base_for(read.stored, self.interval) != base:
            return  # a coarser stored series changed; this interval is built from a finer one
        self.hub.note_version(self.symbol_id, read.version)
        bars = [
            LiveBar(self.symbol_id, self.interval, row, read.version)
            for row in read.rows
            if self._fresh(row.ts, read.version)
        ]
        if bars:
            for subscriber in list(self.subscribers):
                subscriber.offer(bars)

    def _fresh(self, ts: datetime, version: int) -> bool:
        # Two changes handled after both committed read the same version: send it once.
        seen = self.emitted.get(ts)
        if seen is not None and seen >= version:
            return False
        self.emitted[ts] = version
        self.emitted.move_to_end(ts)
        if len(self.emitted) > DEDUPE_MEMORY:
            self.emitted.popitem(last=False)
        return True


def _merged_ranges(
    changes: list[BarChange], feed: Feed
) -> list[tuple[Interval, datetime, datetime]]:
    """Base-row ranges to re-read, overlapping or adjacent ones of a timeframe merged."""
    by_base: dict[Interval, list[tuple[datetime, datetime]]] = defaultdict(list)
    for c in changes:
        base = Interval(c.timeframe)
        rule = feed.rule(base)
        first, last = c.first_ts, c.last_ts
        by_base[base].append(
            touched_range(base, feed.interval, first, last, rule, feed.span(rule, first, last))
        )
    out: list[tuple[Interval, datetime, datetime]] = []
    for base, ranges in by_base.items():
        ranges.sort()
        lo, hi = ranges[0]
        for r_lo, r_hi in ranges[1:]:
            if r_lo <= hi:
                hi = max(hi, r_hi)
            else:
                out.append((base, lo, hi))
                lo, hi = r_lo, r_hi
        out.append((base, lo, hi))
    return out


class LiveHub:
    """Live subscribers of this process, the groups serving them, and the fan-out feeding it."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        fanout_factory: Callable[[LiveHub], Fanout],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.keys = KeyStore(engine, settings.api_key_cache_seconds)
        self.groups: dict[tuple[int, Feed], _Group] = {}
        self.intervals: dict[int, set[Feed]] = {}  # per symbol, the feeds some group serves
        self.events: set[EventSubscriber] = set()
        #: Live indicator state per (symbol, feed) (graphql_api.live.indicators), set up
        #: lazily by its first subscription and fed as a sink of the bars group.
        self.indicator_groups: dict[tuple[int, Feed], Any] = {}
        self.last_seen: dict[int, int] = {}  # newest change id seen per watched symbol
        self.slow_disconnects = 0
        self._tickers: dict[int, str] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.fanout = fanout_factory(self)
        # Open WebSockets authenticated with a key, re-checked for revocation.
        self.key_watch = KeyWatch(engine, check_period(settings.api_key_cache_seconds), self.spawn)

    async def start(self) -> None:
        """Start the fan-out (it connects in the background) and the key re-checks."""
        await self.fanout.start()
        self.spawn(self.key_watch.run())

    async def stop(self) -> None:
        """Stop the fan-out and every group and background task."""
        await self.fanout.stop()
        tasks = [g.task for g in self.groups.values()] + list(self._background)
        tasks += [g.task for g in self.indicator_groups.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self.groups.clear()
        self.indicator_groups.clear()

    # --- subscriptions -----------------------------------------------------------------

    async def open_bars(
        self,
        symbols: dict[int, str],
        interval: Interval,
        *,
        replaying: bool,
        feeds: dict[int, Feed] | None = None,
    ) -> BarSubscriber:
        """Register a barUpdates subscriber; changes committed after this returns reach it."""
        sub = BarSubscriber(
            symbols, interval, self.settings.live_queue_size, replaying, self._cut_off, feeds
        )
        for sid in symbols:
            self.attach(sid, sub.feeds[sid], sub)
        self._tickers.update(symbols)
        try:
            await self.watch(list(symbols))
        except BaseException:
            self.close_bars(sub, watched=False)
            raise
        return sub

    def close_bars(self, sub: BarSubscriber, *, watched: bool = True) -> None:
        """Unregister a barUpdates subscriber (its Redis channels go with the last one)."""
        for sid in sub.symbols:
            self.detach(sid, sub.feeds[sid], sub)
        if watched:
            self.fanout.unwatch_symbols(list(sub.symbols))

    def attach(self, symbol_id: int, feed: Feed, sink: BarSink) -> None:
        """Offer `sink` the bars of the group of (symbol, feed), creating the group."""
        group = self.groups.get((symbol_id, feed))
        if group is None:
            group = self.groups[(symbol_id, feed)] = _Group(self, symbol_id, feed)
        group.subscribers.add(sink)
        self.intervals.setdefault(symbol_id, set()).add(feed)

    def detach(self, symbol_id: int, feed: Feed, sink: BarSink) -> None:
        """Stop offering `sink` bars; the group ends with its last sink."""
        group = self.groups.get((symbol_id, feed))
        if group is None:
            return
        group.subscribers.discard(sink)
        if not group.subscribers:
            group.task.cancel()
            del self.groups[(symbol_id, feed)]
            intervals = self.intervals.get(symbol_id, set())
            intervals.discard(feed)
            if not intervals:
                self.intervals.pop(symbol_id, None)
                self.last_seen.pop(symbol_id, None)

    async def watch(self, symbol_ids: list[int]) -> None:
        """Return once every change committed from now on for these symbols will arrive
        (pair with `fanout.unwatch_symbols`)."""
        new = [sid for sid in symbol_ids if sid not in self.last_seen]
        if new:
            for sid, newest in (await newest_change_ids(self.engine, new)).items():
                self.last_seen.setdefault(sid, newest)
        await self.fanout.watch_symbols(symbol_ids)

    async def open_events(self) -> EventSubscriber:
        """Register an ingestEvents subscriber."""
        sub = EventSubscriber(self.settings.live_queue_size, self._cut_off)
        self.events.add(sub)
        try:
            await self.fanout.watch_all()
        except BaseException:
            self.events.discard(sub)
            raise
        return sub

    def close_events(self, sub: EventSubscriber) -> None:
        """Unregister an ingestEvents subscriber."""
        if sub in self.events:
            self.events.discard(sub)
            self.fanout.unwatch_all()

    def subscriber_count(self) -> int:
        """Local subscriptions (bar and indicator subscribers counted once per symbol and
        interval)."""
        bars = sum(
            1 for g in self.groups.values() for s in g.subscribers if isinstance(s, BarSubscriber)
        )
        indicators = sum(len(g.subscribers) for g in self.indicator_groups.values())
        return bars + indicators + len(self.events)

    # --- changes in ------------------------------------------------------------------------

    def on_bar_change(self, change: BarChange) -> None:
        """A committed change of a watched symbol: groups it concerns re-read their buckets."""
        sid = change.symbol_id
        if sid in self.last_seen and change.id > self.last_seen[sid]:
            self.last_seen[sid] = change.id
        try:
            timeframe = Interval(change.timeframe)
        except ValueError:
            return
        for feed in self.intervals.get(sid, ()):
            if timeframe.divides(feed.interval):
                self.groups[(sid, feed)].add(change)

    def on_event(self, change: BarChange) -> None:
        """A committed change, for the ingestEvents subscribers."""
        for sub in list(self.events):
            sub.offer([change])

    def note_version(self, symbol_id: int, version: int) -> None:
        """A read saw this version: changes up to it need no catch-up."""
        if symbol_id in self.last_seen and version > self.last_seen[symbol_id]:
            self.last_seen[symbol_id] = version

    async def catch_up(self) -> None:
        """After a lost connection: replay stored changes of watched symbols since the last seen."""
        after = {sid: max(0, v - CATCH_UP_OVERLAP) for sid, v in self.last_seen.items()}
        if not after:
            return
        changes = await changes_after(self.engine, after)
        for change in changes:
            self.on_bar_change(change)
        log.info("live catch-up: %d changes re-read for %d symbols", len(changes), len(after))

    async def ticker(self, symbol_id: int) -> str:
        """The ticker of a symbol id (remembered; tickers do not change)."""
        if symbol_id not in self._tickers:
            found = await tickers_of(self.engine, [symbol_id])
            if len(self._tickers) > 100_000:
                self._tickers.clear()
            self._tickers.update(found)
        return self._tickers.get(symbol_id, "")

    # --- slow consumers --------------------------------------------------------------------

    def _cut_off(self, sub: _Subscriber[Any]) -> None:
        self.slow_disconnects += 1
        log.warning("live subscriber fell %d batches behind: disconnecting it", sub.size)
        self.spawn(self._watchdog(sub))

    async def _watchdog(self, sub: _Subscriber[Any]) -> None:
        # The operation closes its connection when it next runs; one stuck sending to a
        # client that stopped reading never runs again, so it is cancelled instead.
        await asyncio.sleep(SLOW_CONSUMER_GRACE)
        if sub.acknowledged:
            return
        if sub.task is not None and not sub.task.done():
            sub.task.cancel()
        if sub.closer is not None:
            # Waits until the socket is writable again: bounded, and harmless if it never is.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sub.closer(), SLOW_CONSUMER_GRACE * 6)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a background task owned by the hub (kept referenced, cancelled on stop)."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def hub_of(request: Any) -> LiveHub:
    """The live hub of the application serving `request` (set in the app lifespan)."""
    hub: LiveHub = request.app.state.services.live
    return hub
