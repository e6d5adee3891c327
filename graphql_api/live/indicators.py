"""Live indicators: for each (symbol, feed), the bars its subscribed indicators need, kept up
to date by the bars group's reads, and the newest values pushed to every subscriber.

An `IndicatorGroup` is one more sink of the hub's `_Group` for (symbol, feed): it gets the
same re-read buckets as barUpdates subscribers, so bar and indicator updates of every API
process come from the same change stream (graphql_api.live.fanout). It keeps a bounded tail
of bars, shared by all the indicators (and so all the subscribers) of the group:

- at the start (and whenever the tail cannot serve a request) it reads, with
  loaders.indicators.read_history, what `Symbol.indicators` reads for a range starting at the
  bar to compute: the warm-up of every indicator (registry `warmup_bars`), or the bars since
  the day's 00:00 UTC (session VWAP), since the anchor (anchored VWAP), or all of them (OBV,
  AD, SAR, Supertrend, cumulative VWAP);
- a batch of bars replaces the buckets it carries; every indicator is computed again over its
  own warm-up before the oldest bar of the batch (the same window shape as the batch read, so
  the values equal `Symbol.indicators` for the same bars within the indicator tests'
  tolerance), and the values of that bar and of every later one are pushed. A bar older than
  the newest one is a revision: those messages carry `recomputed_from`.

The tail keeps the longest warm-up plus `REVISION_MARGIN` bars; a revision older than that
re-reads the history. Indicators over the whole history (or since an anchor) keep it all, up
to `LIVE_INDICATOR_MAX_BARS`: a subscription needing more is refused, and one whose history
outgrows it while live is ended with an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from core.calendars import calendar_timezone
from core.intervals import Interval
from graphql_api.live.hub import Feed, LiveBar, LiveHub, _Subscriber
from graphql_api.live.reads import MAX_REPLAY_ROWS, ReplayTooLong, base_for, touched_range
from indicators import get_indicator
from loaders.bars import bucket_end
from loaders.buckets import NO_SPAN, Bucketing, Span, rows_per_bucket, span
from loaders.indicators import History, ParamsKey, read_history
from loaders.sql import fetch

log = logging.getLogger(__name__)

#: An indicator and its validated parameters (sorted): the unit of shared state.
SpecKey = tuple[str, ParamsKey]

#: Bars kept beyond the longest warm-up, so that revisions of recent bars need no re-read.
REVISION_MARGIN = 64
#: Above this many input points in one computation, compute off the event loop.
THREAD_THRESHOLD = 20_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ("time", "open", "high", "low", "close", "volume")


class HistoryTooLong(Exception):
    """An indicator needs more history than one live group may keep."""


@dataclass(frozen=True, slots=True)
class IndicatorBar:
    """The values of one bar for every indicator of a group, as computed at `version`."""

    symbol_id: int
    interval: Interval
    time: datetime
    closed: bool
    version: int
    #: True for values sent when the subscription starts (the newest bar's, or from `since`).
    replayed: bool
    #: The revised bar this update was recomputed from (None: a new or forming bar).
    recomputed_from: datetime | None
    values: Mapping[SpecKey, Mapping[str, float | None]]


class IndicatorSubscriber(_Subscriber[IndicatorBar]):
    """One indicatorUpdates subscription: its symbols, feeds and indicators."""

    def __init__(
        self,
        symbols: dict[int, str],
        feeds: dict[int, Feed],
        specs: list[SpecKey],
        size: int,
        on_overflow: Callable[[_Subscriber[Any]], None],
    ) -> None:
        super().__init__(size, on_overflow)
        self.symbols = symbols
        self.feeds = feeds
        self.specs = specs
        #: Why the subscription was ended by the server (its history outgrew the limit).
        self.error: str | None = None
        self.closed = False  # unregistered: a join still queued must not add it

    def fail(self, message: str) -> None:
        """End the subscription with an error (its backlog is dropped)."""
        if self.error is not None or self.overflowed:
            return
        self.error = message
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


@dataclass
class _Tail:
    """The bars kept for a group: columns (time in epoch microseconds), oldest first."""

    columns: dict[str, np.ndarray]
    floor: datetime  # every bar from here on is kept
    complete: bool  # nothing older is stored (the tail starts with the history)
    version: int
    newest_closed: bool
    base: Interval | None
    rule: Bucketing | None
    span: Span
    start: datetime | None = None  # where the values read for start (the `lo` of the read)

    @property
    def size(self) -> int:
        return len(self.columns["time"])


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _day_start(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _start_index(tail: _Tail, key: SpecKey, at: int) -> int | None:
    """Index of the first bar the indicator's value at bar `at` is computed from (the batch
    read's window), or None when the tail does not hold it."""
    spec = get_indicator(key[0])
    params = dict(key[1])
    times = tail.columns["time"]
    anchor = spec.anchor(params)
    at_time = _time(int(times[at])) if at < len(times) else tail.floor
    if anchor is not None or spec.warmup_to_session_start(params):
        floor = min(anchor, at_time) if anchor is not None else min(_day_start(at_time), at_time)
        if not tail.complete and floor < tail.floor:
            return None
        return int(np.searchsorted(times, _micros(floor)))
    warm = spec.warmup_bars(params)
    if warm is None:
        return 0 if tail.complete else None
    start = at - (warm + 1)
    if start < 0:
        return 0 if tail.complete else None
    return start


def _needs_everything(key: SpecKey) -> bool:
    spec = get_indicator(key[0])
    params = dict(key[1])
    return spec.anchor(params) is not None or (
        spec.warmup_bars(params) is None and not spec.warmup_to_session_start(params)
    )


def _compute(tail: _Tail, keys: list[SpecKey], at: int) -> dict[SpecKey, dict[str, np.ndarray]]:
    """Every indicator's outputs at bars `at`.. over its own window of the tail."""
    out = {}
    for key in keys:
        start = _start_index(tail, key, at)
        assert start is not None  # the caller made sure the tail covers every key
        data = {name: tail.columns[name][start:] for name in _COLUMNS}
        data["time"] = data["time"] // 1000  # VWAP takes epoch milliseconds
        spec = get_indicator(key[0])
        if len(data["time"]):
            outputs = spec.compute(data, dict(key[1]))
        else:
            outputs = {name: np.empty(0) for name in spec.outputs}
        out[key] = {name: arr[at - start :] for name, arr in outputs.items()}
    return out


class IndicatorGroup:
    """The indicators subscribed on one symbol at one feed, and the bars they need."""

    def __init__(self, hub: LiveHub, symbol_id: int, feed: Feed) -> None:
        self.hub = hub
        self.symbol_id = symbol_id
        self.feed = feed
        self.subscribers: set[IndicatorSubscriber] = set()
        self.specs: dict[SpecKey, int] = {}  # subscribers per indicator
        self.tail: _Tail | None = None
        self.pending: dict[datetime, LiveBar] = {}
        self.truncated = False  # a batch may have left out touched bars: re-read
        self.dropped_from: datetime | None = None  # the oldest bar of those dropped
        self.joins: list[tuple[IndicatorSubscriber, datetime | None, asyncio.Future[None]]] = []
        self.opening = 0  # subscriptions between creating or finding the group and joining it
        self.sent_version = 0  # the version every subscriber has been sent
        self.sent_newest: int | None = None  # the newest bar time sent (epoch microseconds)
        self.wake = asyncio.Event()
        self.task = asyncio.create_task(
            self._run(), name=f"live-ind-{symbol_id}-{feed.interval.value}"
        )

    # --- from the hub -----------------------------------------------------------------------

    def offer(self, batch: list[LiveBar]) -> None:
        """Bars re-read by the bars group (newest state per bar time kept until handled)."""
        if len(batch) >= self.hub.settings.live_max_bars_per_change:
            self.truncated = True  # the read kept only the newest buckets
        for bar in batch:
            seen = self.pending.get(bar.row.ts)
            if seen is None or seen.version <= bar.version:
                self.pending[bar.row.ts] = bar
        if len(self.pending) > self.hub.settings.live_max_bars_per_change:
            # Too many pile up: keep only where they start; the history is read again.
            oldest = min(self.pending)
            if self.dropped_from is None or oldest < self.dropped_from:
                self.dropped_from = oldest
            self.pending.clear()
            self.truncated = True
        self.wake.set()

    async def join(self, sub: IndicatorSubscriber, since: datetime | None = None) -> None:
        """Add a subscriber once the tail serves its indicators; its first messages are the
        values of the bars from the one holding `since` on (None: the newest bar).
        HistoryTooLong when that needs too much history, ReplayTooLong too many bars."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.joins.append((sub, since, future))
        self.wake.set()
        await future

    def leave(self, sub: IndicatorSubscriber) -> None:
        """Remove a subscriber (and the indicators only it asked for)."""
        if sub not in self.subscribers:
            return
        self.subscribers.discard(sub)
        for key in set(sub.specs):
            self.specs[key] -= 1
            if not self.specs[key]:
                del self.specs[key]

    # --- the group's task -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A failed read loses this update for now: the next one re-reads the history.
                log.warning("live indicators of symbol %s failed: %r", self.symbol_id, exc)
                self.tail = None

    async def _step(self) -> None:
        bars, self.pending = self.pending, {}
        truncated, self.truncated = self.truncated, False
        dropped, self.dropped_from = self.dropped_from, None
        joins, self.joins = self.joins, []
        # Without a tail (nothing joined yet, or a failed read) the next join reads one.
        if (bars or truncated) and (self.tail is not None or self.subscribers):
            try:
                await self._apply(sorted(bars.values(), key=lambda b: b.row.ts), truncated, dropped)
            except HistoryTooLong as exc:
                for sub in list(self.subscribers):
                    sub.fail(str(exc))
                    self.leave(sub)
            except Exception as exc:
                # This update is lost for now: the next change reads the history again.
                log.warning("live indicators of symbol %s failed: %r", self.symbol_id, exc)
                self.tail = None
        for sub, since, future in joins:
            try:
                await self._admit(sub, since)
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

    async def _admit(self, sub: IndicatorSubscriber, since: datetime | None) -> None:
        if sub.closed:
            return
        keys = list(dict.fromkeys(sub.specs))
        every = list(dict.fromkeys([*self.specs, *keys]))
        tail = self.tail
        newest = tail.size - 1 if tail is not None else -1
        if (
            since is not None
            or tail is None
            or any(_start_index(tail, k, max(newest, 0)) is None for k in keys)
        ):
            tail = await self._load(every, None, since)
            if not self.subscribers:
                self._sent(tail)
        for key in keys:
            self.specs[key] = self.specs.get(key, 0) + 1
        self.subscribers.add(sub)
        if tail.size:
            at = tail.size - 1
            if since is not None:
                start = tail.start or tail.floor
                at = min(at, int(np.searchsorted(tail.columns["time"], _micros(start))))
            values = await self._values(tail, keys, at)
            sub.offer(self._bars(tail, values, at, replayed=True, revised=None))
        self._trim(tail, list(self.specs))  # a `since` read may have kept more than needed

    async def _load(
        self, keys: list[SpecKey], lo: datetime | None, since: datetime | None = None
    ) -> _Tail:
        """Read the history the indicators need for values from `lo` (None: the newest bar;
        with `since`, the bar holding it) on, and make it the tail (its `floor` is then where
        the values start)."""
        stored = await fetch(
            self.hub.engine,
            "SELECT timeframe, first_ts, last_ts FROM bar_series WHERE symbol_id = $1",
            self.symbol_id,
        )
        series = {Interval(r[0]): (r[1], r[2]) for r in stored}
        base = base_for(frozenset(series), self.feed.interval)
        if base is None:
            # Nothing stored can make these bars yet: an empty, complete history.
            empty = {
                name: np.empty(0, dtype=np.int64 if name == "time" else float) for name in _COLUMNS
            }
            tail = _Tail(empty, _EPOCH, True, 0, False, None, None, NO_SPAN)
        else:
            first, last = series[base]
            rule = self.feed.rule(base)
            at = since if since is not None else last
            bucket = touched_range(
                base, self.feed.interval, at, at, rule, self._span(rule, min(first, at), last)
            )[0]
            start = lo if lo is not None else bucket
            sp = self._span(rule, min(first, start), max(last, start))
            if since is not None:
                await self._check_replay(base, start)
            history = await read_history(
                self.hub.engine, self.symbol_id, rule, sp, self.feed.adjust, start, keys
            )
            tail = self._tail(history, base, rule, sp)
            tail.start = start
        if any(_needs_everything(k) for k in keys) and tail.size > self._limit:
            raise HistoryTooLong(
                f"{tail.size} {self.feed.interval.value} bars of history are needed, more "
                f"than the {self._limit} a live indicator may keep (LIVE_INDICATOR_MAX_BARS); "
                "query `Symbol.indicators` instead"
            )
        self.tail = tail
        return tail

    async def _check_replay(self, base: Interval, start: datetime) -> None:
        """ReplayTooLong when more than `live_max_replay_bars` bars lie after `start` (counted
        in base rows, before anything is read: the history read keeps them all)."""
        limit = self.hub.settings.live_max_replay_bars
        rows = min((limit + 1) * rows_per_bucket(base, self.feed.interval), MAX_REPLAY_ROWS)
        found = await fetch(
            self.hub.engine,
            "SELECT count(*) FROM (SELECT 1 FROM bars WHERE symbol_id = $1 AND timeframe = $2 "
            "AND ts >= $3 LIMIT $4) r",
            self.symbol_id,
            base.value,
            start,
            rows,
        )
        if int(found[0][0]) >= rows:
            raise ReplayTooLong(f"more than {limit} {self.feed.interval.value} bars after `since`")

    @property
    def _limit(self) -> int:
        limit: int = self.hub.settings.live_indicator_max_bars
        return limit

    def _span(self, rule: Bucketing, first: datetime, last: datetime) -> Span:
        if not rule.needs_calendar:
            return NO_SPAN
        tz = calendar_timezone(self.feed.calendar)
        return span(self.feed.calendar, tz, first, last + timedelta(days=2))

    def _tail(self, history: History, base: Interval, rule: Bucketing, sp: Span) -> _Tail:
        times = history.columns["time"]
        closed = False
        if len(times) and history.newest_end is not None:
            closed = base == rule.interval or (
                bucket_end(rule, sp, _time(int(times[-1]))) <= history.newest_end
            )
        return _Tail(
            dict(history.columns),
            history.floor,
            history.complete,
            history.version,
            closed,
            base,
            rule,
            sp,
        )

    async def _apply(
        self, bars: list[LiveBar], truncated: bool, dropped: datetime | None = None
    ) -> None:
        tail = self.tail
        if tail is not None:
            # A history re-read for a new subscriber may already hold these bars; those its
            # other subscribers were not sent yet are sent (at the history's version).
            unsent = [b for b in bars if self.sent_version < b.version <= tail.version]
            bars = [b for b in bars if b.version > tail.version]
            if not bars and not unsent and not truncated:
                return  # already in the history read, and sent
        else:
            unsent = []
        keys = list(self.specs)
        times_given = [b.row.ts for b in [*bars, *unsent]] + ([dropped] if dropped else [])
        oldest = min(times_given) if times_given else None
        if truncated or tail is None or tail.base is None:
            tail = await self._load(keys, oldest)
        elif bars:
            self._merge(tail, bars)
            at = int(np.searchsorted(tail.columns["time"], _micros(bars[0].row.ts)))
            if any(_start_index(tail, k, at) is None for k in keys):
                tail = await self._load(keys, bars[0].row.ts)
        times = tail.columns["time"]
        at = int(np.searchsorted(times, _micros(oldest))) if oldest is not None else tail.size - 1
        if tail.size == 0 or at >= tail.size:
            return
        # Send at most the newest `live_max_bars_per_change` bars, as barUpdates does.
        at = max(at, tail.size - self.hub.settings.live_max_bars_per_change)
        revised = None
        if self.sent_newest is not None and int(times[at]) < self.sent_newest:
            revised = _time(int(times[at]))
        values = await self._values(tail, keys, at)
        batch = self._bars(tail, values, at, replayed=False, revised=revised)
        for sub in list(self.subscribers):
            sub.offer(batch)
        self._sent(tail)
        self._trim(tail, keys)

    def _sent(self, tail: _Tail) -> None:
        """Every subscriber has been sent the tail's state."""
        self.sent_version = tail.version
        self.sent_newest = int(tail.columns["time"][-1]) if tail.size else None

    def _merge(self, tail: _Tail, bars: list[LiveBar]) -> int:
        """Put the bars into the tail (replacing those of the same times); the index of the
        oldest one."""
        times = tail.columns["time"]
        new_times = np.array([_micros(b.row.ts) for b in bars], dtype=np.int64)
        keep = ~np.isin(times, new_times)
        order_times = np.concatenate([times[keep], new_times])
        order = np.argsort(order_times, kind="stable")
        columns = {"time": order_times[order]}
        for name in _COLUMNS[1:]:
            fresh = np.array([getattr(b.row, name) for b in bars], dtype=np.float64)
            columns[name] = np.concatenate([tail.columns[name][keep], fresh])[order]
        tail.columns = columns
        tail.version = max(tail.version, max(b.version for b in bars))
        newest = bars[-1]
        if int(columns["time"][-1]) == _micros(newest.row.ts):
            tail.newest_closed = newest.row.closed
        return int(np.searchsorted(columns["time"], new_times.min()))

    def _trim(self, tail: _Tail, keys: list[SpecKey]) -> None:
        """Drop the bars no indicator needs any more (keeping REVISION_MARGIN for revisions)."""
        if tail.size == 0:
            return
        newest = tail.size - 1
        margin_at = max(0, newest - REVISION_MARGIN)
        starts = [_start_index(tail, k, margin_at) for k in keys]
        if any(s is None for s in starts):
            return
        cut = min(s for s in starts if s is not None) if starts else margin_at
        if any(_needs_everything(k) for k in keys):
            if tail.size <= self._limit:
                return
            # The history outgrew what may be kept: end the subscriptions that need it all.
            for sub in list(self.subscribers):
                if any(_needs_everything(k) for k in sub.specs):
                    sub.fail(
                        f"the history of an indicator of this subscription outgrew the "
                        f"{self._limit} bars a live indicator may keep (LIVE_INDICATOR_MAX_BARS)"
                    )
                    self.leave(sub)
            return
        if cut <= 0:
            return
        tail.columns = {name: arr[cut:] for name, arr in tail.columns.items()}
        tail.floor = _time(int(tail.columns["time"][0]))
        tail.complete = False

    async def _values(
        self, tail: _Tail, keys: list[SpecKey], at: int
    ) -> dict[SpecKey, dict[str, np.ndarray]]:
        if tail.size * max(1, len(keys)) > THREAD_THRESHOLD:
            return await asyncio.to_thread(_compute, tail, keys, at)
        return _compute(tail, keys, at)

    def _bars(
        self,
        tail: _Tail,
        values: dict[SpecKey, dict[str, np.ndarray]],
        at: int,
        *,
        replayed: bool,
        revised: datetime | None,
    ) -> list[IndicatorBar]:
        times = tail.columns["time"]
        lists = {
            key: {name: arr.tolist() for name, arr in outputs.items()}
            for key, outputs in values.items()
        }
        out = []
        newest = tail.size - 1
        for i in range(at, tail.size):
            j = i - at
            per_bar = {
                key: {name: (None if v[j] != v[j] else v[j]) for name, v in outputs.items()}
                for key, outputs in lists.items()
            }
            out.append(
                IndicatorBar(
                    self.symbol_id,
                    self.feed.interval,
                    _time(int(times[i])),
                    i < newest or tail.newest_closed,
                    tail.version,
                    replayed,
                    revised,
                    per_bar,
                )
            )
        return out


async def open_indicators(
    hub: LiveHub,
    symbols: dict[int, str],
    feeds: dict[int, Feed],
    specs: list[SpecKey],
    since: datetime | None = None,
) -> IndicatorSubscriber:
    """Register an indicatorUpdates subscriber: once this returns, it has been sent the
    values from `since` (or the newest) and every change committed later reaches it
    (HistoryTooLong when an indicator needs more history than a group may keep,
    ReplayTooLong when more than `live_max_replay_bars` bars follow `since`)."""
    sub = IndicatorSubscriber(symbols, feeds, specs, hub.settings.live_queue_size, hub._cut_off)
    groups = []
    for sid in symbols:
        key = (sid, feeds[sid])
        group: IndicatorGroup | None = hub.indicator_groups.get(key)
        if group is None:
            group = hub.indicator_groups[key] = IndicatorGroup(hub, sid, feeds[sid])
            hub.attach(sid, feeds[sid], group)
        group.opening += 1
        groups.append(group)
    try:
        # Watch before the history is read, so that no change falls between the two.
        await hub.watch(list(symbols))
    except BaseException:
        for group in groups:
            group.opening -= 1
        close_indicators(hub, sub, watched=False)
        raise
    try:
        for group in groups:
            await group.join(sub, since)
    except BaseException:
        for group in groups:
            group.opening -= 1
        close_indicators(hub, sub)
        raise
    for group in groups:
        group.opening -= 1
    return sub


def close_indicators(hub: LiveHub, sub: IndicatorSubscriber, *, watched: bool = True) -> None:
    """Unregister an indicatorUpdates subscriber; a group goes with its last subscriber."""
    sub.closed = True
    for sid in sub.symbols:
        key = (sid, sub.feeds[sid])
        group: IndicatorGroup | None = hub.indicator_groups.get(key)
        if group is None:
            continue
        group.leave(sub)
        if not group.subscribers and not group.opening:
            group.task.cancel()
            del hub.indicator_groups[key]
            hub.detach(sid, key[1], group)
    if watched:
        hub.fanout.unwatch_symbols(list(sub.symbols))
