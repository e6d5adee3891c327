"""Gap filling: a bar for every slot of trading hours, where nothing traded.

Slots come from the calendar (core.calendars.Sessions.slots), so a fill never puts a bar on
a holiday or overnight for equities, and only between the symbol's first and newest stored
bars (a stock that stopped trading does not grow bars up to today). Loaded pages and series
are merged with the slots after loading, so the cached data pages stay the data.

A page of N filled bars needs at most N stored buckets: every stored bucket is a slot, so
the N slots nearest the walk's start all lie between it and the N-th stored bucket read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from core.intervals import MAX_TS, MIN_TS
from graphql_api.bar_queries import Rule
from loaders.rows import BarRow, Prices, SeriesColumns

PrevClose = Callable[[datetime], Awaitable[float | None]]
_TINY = timedelta(microseconds=1)


class FilledRow(BarRow):
    """A slot with no stored bars (a BarRow with `filled` set)."""

    __slots__ = ()

    @property
    def filled(self) -> bool:
        """True: nothing traded in this bucket."""
        return True


class NullRow(FilledRow):
    """A slot filled with `fill: NULL`: no prices (its non-null legacy price fields carry the
    previous close, which released clients read as before)."""

    __slots__ = ()

    @property
    def prices(self) -> Prices | None:
        """None: nothing traded."""
        return None


def _filled(ts: datetime, close: float | None, null: bool = False) -> FilledRow:
    # All four prices equal the previous close; volume 0; a slot is never forming once a
    # later bar exists, and filled slots only lie before the newest stored bar. NULL differs
    # only in `prices` (None).
    c = close if close is not None else float("nan")
    return (NullRow if null else FilledRow)._make((ts, c, c, c, c, 0.0, True))


async def fill_page(
    rows: Sequence[BarRow],
    has_more: bool,
    descending: bool,
    limit: int,
    window: tuple[datetime, datetime],
    rule: Rule,
    prev_close: PrevClose,
    null: bool = False,
) -> tuple[list[BarRow], bool]:
    """The page with its empty slots filled, in walk order, and whether more follow."""
    lo, hi = window
    if has_more and rows:
        # Beyond the last stored bucket read lie more stored buckets: stop there.
        edge = rows[-1].ts
        if descending:
            lo = max(lo, edge)
        else:
            hi = min(hi, edge + _TINY)
    if descending:
        found = rule.slots_before(lo, hi, limit + 1)
        more = len(found) > limit or has_more
        chosen = found[::-1][:limit]
    else:
        found = rule.slots(lo, hi, limit + 1)
        more = len(found) > limit or has_more
        chosen = found[:limit]
    chosen.sort()
    by_ts = {r.ts: r for r in rows}
    out: list[BarRow] = []
    close: float | None = None
    for i, t in enumerate(chosen):
        row = by_ts.get(t)
        if row is not None:
            out.append(row)
            close = row.close
            continue
        if close is None and i == len(out):
            close = await prev_close(t)
        if close is None:
            continue  # no bar before it: nothing to carry forward
        out.append(_filled(t, close, null))
    if descending:
        out.reverse()
    return out, more


async def fill_series(
    cols: SeriesColumns,
    window: tuple[datetime, datetime],
    rule: Rule,
    prev_close: PrevClose,
) -> tuple[SeriesColumns, list[bool]]:
    """The series with a bar for every slot in `window` (PREVIOUS fill), and which bars
    were filled."""
    lo, hi = window
    found = rule.slots(lo, hi)
    index = {t: i for i, t in enumerate(cols.ts)}
    ts: list[datetime] = []
    o: list[float] = []
    h: list[float] = []
    lw: list[float] = []
    c: list[float] = []
    v: list[float] = []
    closed: list[bool] = []
    filled: list[bool] = []
    last: float | None = None
    merged = sorted(set(found) | set(cols.ts))
    for t in merged:
        i = index.get(t)
        if i is not None:
            ts.append(t)
            o.append(cols.open[i])
            h.append(cols.high[i])
            lw.append(cols.low[i])
            c.append(cols.close[i])
            v.append(cols.volume[i])
            closed.append(cols.closed[i])
            filled.append(False)
            last = cols.close[i]
            continue
        if last is None:
            last = await prev_close(t)
            if last is None:
                continue
        ts.append(t)
        o.append(last)
        h.append(last)
        lw.append(last)
        c.append(last)
        v.append(0.0)
        closed.append(True)
        filled.append(True)
    return SeriesColumns(cols.interval, ts, o, h, lw, c, v, closed), filled


def clip(
    lo: datetime | None, hi: datetime | None, window: tuple[datetime, datetime]
) -> tuple[datetime, datetime]:
    """`window` narrowed to [lo, hi) (bucket starts)."""
    a = max(lo or MIN_TS, window[0])
    b = min(hi or MAX_TS, window[1])
    return a, b
