"""Exchange calendars: which calendar a symbol trades on, its sessions, and session buckets.

Sessions come from pandas-market-calendars (holidays, early closes, DST and, for US
equities, the 04:00-20:00 extended hours), never from tables written here. The same
sessions live in two places that must agree: the `trading_sessions` table, which the read
path's SQL joins to bucket and filter bars, and `Sessions`, numpy arrays the API uses for
what SQL does not answer (a bucket's session-aware end, the slots a gap fill produces).
Both are built by `session_frame`, so they cannot drift apart.

A trading day is split into parts, each bucketed from its own start and cut at its end:
pre-market [pre_open, open), regular [open, close), post-market [close, post_close). Under
`ALL` the hours outside them (and days without a session) form parts of their own, bounded
by local midnight, so every stored bar has exactly one bucket.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.intervals import Interval


class SessionKind(enum.Enum):
    """Which hours of a trading day a request covers."""

    REGULAR = "REGULAR"  # the regular session only (09:30-16:00 for NYSE)
    EXTENDED = "EXTENDED"  # pre-market, regular and post-market (04:00-20:00 for NYSE)
    ALL = "ALL"  # every stored bar, overnight and non-trading days included


class Alignment(enum.Enum):
    """Where buckets start."""

    SESSION = "SESSION"  # at the start of each session part, in the exchange's time zone
    UTC = "UTC"  # at UTC midnight multiples (the behaviour before sessions existed)


class Fill(enum.Enum):
    """What a bucket with no stored bars becomes."""

    NONE = "NONE"  # left out
    NULL = "NULL"  # present, with null prices (`prices`) and zero volume
    PREVIOUS = "PREVIOUS"  # present, all four prices equal to the previous close, zero volume


@dataclass(frozen=True)
class Buckets:
    """A request's choice of hours and alignment (the `session` and `alignment` arguments)."""

    kind: SessionKind | None = None  # None: the symbol's default (`default_session`)
    aligned: bool = True  # session-aligned buckets (False: the UTC grid)


#: What a request gets when it does not say (and what code paths without arguments use).
DEFAULT_BUCKETS = Buckets()


#: Our calendar codes -> pandas-market-calendars names. Any other name that library knows
#: (XLON, XTKS, CME_Equity, ...) is accepted as it is.
_ALIASES = {
    "XNYS": "NYSE",  # the library's NYSE calendar carries the 04:00/20:00 extended hours
    "XNAS": "NASDAQ",
    "24/7": "24/7",
    "FX": "24/5",
}

#: Calendar of a symbol whose source says nothing usable: every day, UTC midnight to midnight.
ALWAYS_OPEN = "24/7"

#: Years of sessions kept in `trading_sessions` and `Sessions` (the demo data starts in 2000).
FIRST_YEAR = 1990
YEARS_AHEAD = 2


def _library() -> object:
    import pandas_market_calendars as mcal  # a heavy import, needed only once per process

    return mcal


def library_name(code: str) -> str:
    """The pandas-market-calendars name of calendar `code`, or ValueError naming known ones."""
    name = _ALIASES.get(code, code)
    if name not in _known_names():
        raise ValueError(
            f"unknown calendar {code!r}; use one of {', '.join(sorted(_ALIASES))} or a "
            "pandas-market-calendars name (e.g. XLON, XTKS)"
        )
    return name


@lru_cache(maxsize=1)
def _known_names() -> frozenset[str]:
    return frozenset(_library().get_calendar_names())  # type: ignore[attr-defined]


def normalize_calendar(code: str) -> str:
    """`code` as stored: our alias spelling where one exists; ValueError when unknown."""
    code = code.strip()
    for alias in _ALIASES:
        if alias.lower() == code.lower():
            return alias
    library_name(code)
    return code


_EXCHANGE_CALENDARS = {
    "NYSE": "XNYS",
    "XNYS": "XNYS",
    "ARCA": "XNYS",
    "NYSEARCA": "XNYS",
    "AMEX": "XNYS",
    "NYSEAMERICAN": "XNYS",
    "BATS": "XNYS",
    "IEX": "XNYS",
    "NASDAQ": "XNAS",
    "XNAS": "XNAS",
    "OTC": "XNYS",
}


def default_calendar(asset_class: str, exchange: str = "") -> str:
    """The calendar of a symbol whose source gives none: by exchange, else by asset class.

    Crypto trades around the clock (24/7), currencies around the clock on weekdays (FX);
    an equity, ETF or index on an unknown venue is taken to be US-listed (XNYS), which is
    what the bundled providers list; anything else gets 24/7, the calendar that filters
    nothing.
    """
    venue = exchange.strip().upper()
    if venue in _EXCHANGE_CALENDARS:
        return _EXCHANGE_CALENDARS[venue]
    kind = asset_class.strip().lower()
    if kind in ("crypto", "cryptocurrency"):
        return "24/7"
    if kind in ("fx", "forex", "currency"):
        return "FX"
    if kind in ("equity", "us_equity", "etf", "stock", "index"):
        return "XNYS"
    return ALWAYS_OPEN


def default_session(calendar: str) -> SessionKind:
    """What users expect when they do not say: regular hours on an exchange, all of a 24h market."""
    return SessionKind.ALL if calendar in ("24/7", "FX") else SessionKind.REGULAR


def session_frame(code: str, start: date, end: date) -> pd.DataFrame:
    """Sessions of calendar `code` with dates in [start, end]: one row per trading day,
    columns day (date), pre_open, open, close, post_close (UTC timestamps)."""
    mcal = _library()
    cal = mcal.get_calendar(library_name(code))  # type: ignore[attr-defined]
    times = cal.regular_market_times
    extended = "pre" in times and "post" in times
    kw = {"start": "pre", "end": "post"} if extended else {}
    sched = cal.schedule(start.isoformat(), end.isoformat(), **kw)
    opens = sched["market_open"]
    closes = sched["market_close"]
    return pd.DataFrame(
        {
            "day": [d.date() for d in sched.index],
            "pre_open": sched["pre"] if extended else opens,
            "open": opens,
            "close": closes,
            "post_close": sched["post"] if extended else closes,
        }
    ).reset_index(drop=True)


def sessions_span() -> tuple[date, date]:
    """The date range of sessions kept for every calendar."""
    return date(FIRST_YEAR, 1, 1), date(datetime.now(UTC).year + YEARS_AHEAD, 12, 31)


def calendar_timezone(code: str) -> str:
    """IANA time zone of calendar `code` (its trading days are dates in this zone)."""
    return _tz_name(code)


@lru_cache(maxsize=64)
def _tz_name(code: str) -> str:
    cal = _library().get_calendar(library_name(code))  # type: ignore[attr-defined]
    return str(cal.tz.key if hasattr(cal.tz, "key") else cal.tz)


def _us(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


@dataclass(frozen=True)
class Part:
    """One bucketing part of a day: [start, end)."""

    start: datetime
    end: datetime


class Sessions:
    """One calendar's sessions as sorted numpy arrays (microseconds since the epoch)."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.tz = ZoneInfo(calendar_timezone(code))
        lo, hi = sessions_span()
        frame = session_frame(code, lo, hi)
        self.days = np.array([d.toordinal() for d in frame["day"]], dtype=np.int64)
        self.pre = _col(frame["pre_open"])
        self.open = _col(frame["open"])
        self.close = _col(frame["close"])
        self.post = _col(frame["post_close"])

    def _local_day(self, ts: datetime) -> date:
        return ts.astimezone(self.tz).date()

    def _midnight(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.tz).astimezone(UTC)

    def _session(self, day: date) -> int | None:
        i = int(np.searchsorted(self.days, day.toordinal()))
        return i if i < len(self.days) and self.days[i] == day.toordinal() else None

    def parts(self, day: date, kind: SessionKind) -> list[Part]:
        """The bucketing parts of local date `day` under `kind`, in time order."""
        i = self._session(day)
        if i is None:
            if kind != SessionKind.ALL:
                return []
            return [Part(self._midnight(day), self._midnight(day + timedelta(days=1)))]
        pre, op, cl, post = (
            _dt(self.pre[i]),
            _dt(self.open[i]),
            _dt(self.close[i]),
            _dt(self.post[i]),
        )
        if kind == SessionKind.REGULAR:
            return [Part(op, cl)]
        bounds = [pre, op, cl, post]
        if kind == SessionKind.ALL:
            bounds = [self._midnight(day), *bounds, self._midnight(day + timedelta(days=1))]
        return [Part(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    def part_of(self, ts: datetime, kind: SessionKind) -> Part | None:
        """The part holding instant `ts` (None when `kind` leaves it out)."""
        for part in self.parts(self._local_day(ts), kind):
            if part.start <= ts < part.end:
                return part
        return None

    def bucket_start(self, interval: Interval, kind: SessionKind, ts: datetime) -> datetime | None:
        """Start of the session-aligned intraday bucket holding instant `ts` (None when
        `kind` leaves `ts` out)."""
        part = self.part_of(ts, kind)
        if part is None:
            return None
        step = timedelta(seconds=interval.seconds)
        return part.start + ((ts - part.start) // step) * step

    def day_rows(self, interval: Interval, ts: datetime) -> tuple[datetime, datetime]:
        """Row bounds [lo, hi) of the D1/W1/MN1 bucket holding instant `ts`: local midnights
        around its trading date (week, month)."""
        day = self._local_day(ts)
        stamp = interval.bucket_start(datetime(day.year, day.month, day.day, tzinfo=UTC))
        end = interval.bucket_end(stamp)
        return self._midnight(stamp.date()), self._midnight(end.date())

    def bucket_end(self, interval: Interval, kind: SessionKind, start: datetime) -> datetime:
        """End (exclusive) of the session-aligned bucket starting at `start`."""
        if not interval.is_intraday:
            return self.day_bucket_end(interval, kind, start)
        part = self.part_of(start, kind) or self.part_of(start, SessionKind.ALL)
        nominal = start + timedelta(seconds=interval.seconds)
        return nominal if part is None else min(nominal, part.end)

    def day_bucket_end(self, interval: Interval, kind: SessionKind, start: datetime) -> datetime:
        """End of a D1/W1/MN1 bucket stamped `start` (00:00 UTC of its first date): the end
        of the last trading hours it covers, so it is forming until then."""
        first = start.astimezone(UTC).date()
        last = interval.bucket_end(start.astimezone(UTC)).date() - timedelta(days=1)
        end = None
        day = last
        while day >= first:
            parts = self.parts(day, kind)
            if parts:
                end = parts[-1].end
                break
            day -= timedelta(days=1)
        return end if end is not None else interval.bucket_end(start)

    def align_up(self, interval: Interval, kind: SessionKind, ts: datetime) -> datetime:
        """The first base-row instant of the session-aligned buckets starting at or after
        `ts`: the row bound that keeps exactly the buckets whose start is >= ts."""
        if not interval.is_intraday:
            return self.day_row_bound(interval, ts)
        step = timedelta(seconds=interval.seconds)
        day = self._local_day(ts) - timedelta(days=1)
        for _ in range(400):  # longer than any run of days without a session part
            for part in self.parts(day, kind):
                if part.end <= ts:
                    continue
                if part.start >= ts:
                    return part.start
                n = -(-(ts - part.start) // step)
                t = part.start + n * step
                if t < part.end:
                    return t
            day += timedelta(days=1)
        return ts

    def day_row_bound(self, interval: Interval, stamp: datetime) -> datetime:
        """Local midnight of the first trading date whose D1/W1/MN1 stamp is >= `stamp`:
        rows at or after it belong to buckets stamped at or after `stamp`."""
        utc = stamp.astimezone(UTC)
        first = interval.bucket_start(utc)
        if first < utc:
            first = interval.bucket_end(first)
        d = first.date()
        return self._midnight(d)

    def session_of(self, interval: Interval, start: datetime) -> tuple[datetime, datetime] | None:
        """Regular open and close of the trading session(s) the bar starting at `start`
        covers: the session of its local date (intraday), of its stamp's date (D1), or the
        first open and last close of its week or month; None when it covers no session."""
        if interval.is_intraday:
            first = last = self._session(self._local_day(start))
        else:
            stamp = start.astimezone(UTC)
            lo = int(np.searchsorted(self.days, stamp.date().toordinal()))
            end = interval.bucket_end(interval.bucket_start(stamp)).date().toordinal()
            hi = int(np.searchsorted(self.days, end)) - 1
            first, last = (lo, hi) if hi >= lo else (None, None)
        if first is None or last is None:
            return None
        return _dt(self.open[first]), _dt(self.close[last])

    def slots_before(
        self,
        interval: Interval,
        kind: SessionKind,
        lo: datetime,
        hi: datetime,
        aligned: bool,
        count: int,
    ) -> list[datetime]:
        """The newest `count` slots starting in [lo, hi), oldest first: walked back a week
        at a time from `hi`, so a page near the end of a long range costs what it returns."""
        out: list[datetime] = []
        end = hi
        while end > lo and len(out) < count:
            start = max(lo, end - timedelta(days=7))
            out = self.slots(interval, kind, start, end, aligned) + out
            end = start
        return out[-count:] if count else []

    def count_slots(
        self, interval: Interval, kind: SessionKind, lo: datetime, hi: datetime, aligned: bool
    ) -> int:
        """How many slots start in [lo, hi): session-aligned intraday slots by arithmetic on
        each whole day's parts (no list of them all), the rest listed."""
        if hi <= lo:
            return 0
        first = self._local_day(lo)
        last = self._local_day(hi - timedelta(microseconds=1))
        if not (aligned and interval.is_intraday) or last - first < timedelta(days=2):
            return len(self.slots(interval, kind, lo, hi, aligned))
        step = timedelta(seconds=interval.seconds)
        n = len(self.slots(interval, kind, lo, self._midnight(first + timedelta(days=1))))
        n += len(self.slots(interval, kind, self._midnight(last), hi))
        day = first + timedelta(days=1)
        while day < last:
            n += sum(-(-(p.end - p.start) // step) for p in self.parts(day, kind))
            day += timedelta(days=1)
        return n

    def slots(
        self,
        interval: Interval,
        kind: SessionKind,
        lo: datetime,
        hi: datetime,
        aligned: bool = True,
        cap: int | None = None,
    ) -> list[datetime]:
        """Starts of every bucket inside trading hours (`kind`) starting in [lo, hi), oldest
        first, at most `cap` of them: session-aligned buckets, or (`aligned=False`) the
        buckets of the UTC grid that overlap trading hours."""
        out: list[datetime] = []
        if hi <= lo:
            return out
        day = self._local_day(lo) - timedelta(days=1)
        end_day = self._local_day(hi) + timedelta(days=1)
        step = timedelta(seconds=interval.seconds)
        while day <= end_day and (cap is None or len(out) < cap):
            parts = self.parts(day, kind)
            if parts and not interval.is_intraday:
                # Aligned: stamped by trading date. UTC grid: the UTC days the hours touch.
                if aligned:
                    dates = [day]
                else:
                    dates = sorted(
                        {p.start.astimezone(UTC).date() for p in parts}
                        | {
                            (p.end - timedelta(microseconds=1)).astimezone(UTC).date()
                            for p in parts
                        }
                    )
                for d in dates:
                    stamp = interval.bucket_start(datetime(d.year, d.month, d.day, tzinfo=UTC))
                    if lo <= stamp < hi and (not out or out[-1] < stamp):
                        out.append(stamp)
            elif aligned:
                for part in parts:
                    t = part.start
                    while t < part.end:
                        if lo <= t < hi:
                            out.append(t)
                        t += step
            else:
                for part in parts:
                    t = interval.bucket_start(part.start)
                    while t < part.end:
                        if lo <= t < hi and (not out or out[-1] < t):
                            out.append(t)
                        t += step
            day += timedelta(days=1)
        return out if cap is None else out[:cap]


def _col(values: Iterable[object]) -> np.ndarray:
    return np.array([_us(_utc(v)) for v in values], dtype=np.int64)


@lru_cache(maxsize=32)
def sessions(code: str) -> Sessions:
    """The (process-wide, built once) sessions of calendar `code`."""
    return Sessions(code)


@lru_cache(maxsize=32)
def _span_frame(code: str) -> pd.DataFrame:
    return session_frame(code, *sessions_span())


@lru_cache(maxsize=32)
def session_rows(code: str) -> tuple[tuple[str, date, datetime, datetime, datetime, datetime], ...]:
    """Rows for `trading_sessions`: (calendar, day, pre_open, open, close, post_close)."""
    frame = _span_frame(code)
    cols = [_utc_column(frame[c]) for c in ("pre_open", "open", "close", "post_close")]
    return tuple((code, day, *times) for day, *times in zip(frame["day"], *cols, strict=True))


def _session_summary(code: str) -> tuple[int, date]:
    """How many sessions `session_rows` holds and the last one's day, without building the
    rows (what sync_sessions compares with the stored ones)."""
    days = _span_frame(code)["day"]
    return len(days), days.iloc[-1]


def _utc_column(column: pd.Series) -> list[datetime]:
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        # Whole-column conversion: one Timestamp per value (below) cost ~0.2 s a calendar.
        naive = pd.DatetimeIndex(column).tz_convert("UTC").tz_localize(None)
        return [t.replace(tzinfo=UTC) for t in naive.to_pydatetime()]
    return [_utc(t) for t in column]


def _utc(value: object) -> datetime:
    return pd.Timestamp(value).to_pydatetime().astimezone(UTC)  # type: ignore[arg-type]


async def sync_sessions(conn: object, codes: Iterable[str]) -> int:
    """Write the sessions of calendars `codes` into `trading_sessions` where missing or
    changed (a newer library may add a holiday); returns the rows written.

    `conn` is an asyncpg connection. Cheap when nothing changed: one count per calendar.
    """
    written = 0
    for code in sorted(set(codes)):
        count, last_day = _session_summary(code)
        async with conn.transaction():  # type: ignore[attr-defined]
            # Serialises writers (API processes and workers start together); the count is
            # read under the lock so a second writer sees the first one's rows.
            await conn.execute(  # type: ignore[attr-defined]
                "SELECT pg_advisory_xact_lock(hashtext('trading_sessions'))"
            )
            have = await conn.fetchrow(  # type: ignore[attr-defined]
                "SELECT count(*) AS n, max(day) AS last FROM trading_sessions WHERE calendar = $1",
                code,
            )
            if have["n"] == count and have["last"] == last_day:
                continue
            rows = session_rows(code)
            await conn.execute(  # type: ignore[attr-defined]
                "DELETE FROM trading_sessions WHERE calendar = $1", code
            )
            await conn.copy_records_to_table(  # type: ignore[attr-defined]
                "trading_sessions",
                records=rows,
                columns=["calendar", "day", "pre_open", "open", "close", "post_close"],
            )
        written += count
    return written


@dataclass(frozen=True)
class TradingHours:
    """A calendar's current weekly hours as session strings: `HHMM-HHMM` ranges in the
    calendar's time zone, comma-separated, then `:days` (1 = Sunday ... 7 = Saturday); an
    open before the close spans midnight (`1700-1600`), `0000-0000` is a whole day and
    `24x7` is always open. This is the format TradingView and Pine Script read."""

    timezone: str  # IANA; Etc/UTC for the UTC calendars
    regular: str
    extended: str | None  # pre-market open to post-market close; None without extended hours


#: pandas-market-calendars weekday names -> session-string day digits (1 = Sunday).
_DAY_DIGITS = {"Sun": "1", "Mon": "2", "Tue": "3", "Wed": "4", "Thu": "5", "Fri": "6", "Sat": "7"}


def _current(times: dict[str, tuple[tuple[object, ...], ...]], name: str) -> tuple[str, int]:
    """`HHMM` and day offset of the newest entry of a regular market time (entries are
    (since, time) or (since, time, day offset), oldest first)."""
    entry = times[name][-1]
    moment = entry[1]
    offset = int(entry[2]) if len(entry) > 2 else 0  # type: ignore[call-overload]
    return f"{moment.hour:02d}{moment.minute:02d}", offset  # type: ignore[attr-defined]


@lru_cache(maxsize=64)
def trading_hours(code: str) -> TradingHours:
    """The current regular (and extended) weekly hours of calendar `code`, derived from the
    calendar library's market times and week mask, not written per exchange."""
    cal = _library().get_calendar(library_name(code))  # type: ignore[attr-defined]
    times = dict(cal.regular_market_times)
    tz = _tz_name(code)
    timezone = "Etc/UTC" if tz in ("UTC", "Etc/UTC", "GMT") else tz
    weekmask = str(getattr(cal, "weekmask", "Mon Tue Wed Thu Fri"))
    digits = "".join(sorted(_DAY_DIGITS[d[:3]] for d in weekmask.split()))
    opens, open_offset = _current(times, "market_open")
    closes, close_offset = _current(times, "market_close")
    if opens == closes and close_offset - open_offset == 1:
        # Midnight to midnight: a whole day (every day of the week: always open).
        if digits == "1234567":
            return TradingHours(timezone, "24x7", None)
        return TradingHours(timezone, f"0000-0000:{digits}", None)
    regular = f"{opens}-{closes}"
    if "break_start" in times and "break_end" in times:
        pause, resume = _current(times, "break_start")[0], _current(times, "break_end")[0]
        if pause != resume:  # some calendars record a break of no length
            regular = f"{opens}-{pause},{resume}-{closes}"
    extended = None
    if "pre" in times and "post" in times:
        extended = f"{_current(times, 'pre')[0]}-{_current(times, 'post')[0]}:{digits}"
    return TradingHours(timezone, f"{regular}:{digits}", extended)
