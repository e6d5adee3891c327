"""Bar intervals: their codes, lengths, and how bars are bucketed into them."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta


class Interval(enum.Enum):
    """A bar interval; the value is the code stored in `bars.timeframe`."""

    M1 = "M1"
    M5 = "M5"
    M15 = "M15"
    M30 = "M30"
    H1 = "H1"
    H4 = "H4"
    D1 = "D1"
    W1 = "W1"
    MN1 = "MN1"

    @property
    def seconds(self) -> int:
        """Nominal length in seconds (a month counts as 31 days, for range limits only)."""
        return _SECONDS[self]

    @property
    def is_fixed(self) -> bool:
        """True when every bucket has the same length (everything below a week is UTC-aligned)."""
        return self not in (Interval.W1, Interval.MN1)

    @property
    def is_intraday(self) -> bool:
        """True for intervals shorter than a day."""
        return self.seconds < 86_400

    def divides(self, coarser: Interval) -> bool:
        """Whether buckets of `coarser` are unions of whole buckets of this interval."""
        if self == coarser:
            return True
        if self.seconds > coarser.seconds:
            return False
        if coarser.is_fixed:
            return coarser.seconds % self.seconds == 0
        # Weeks and months start at midnight UTC, so any interval dividing a day divides them.
        return 86_400 % self.seconds == 0

    def bucket_start(self, ts: datetime) -> datetime:
        """The start of the bucket `ts` falls in (UTC, ISO weeks, calendar months)."""
        ts = ts.astimezone(UTC)  # weeks and months start at UTC midnight, whatever ts's offset
        if self == Interval.MN1:
            return ts.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if self == Interval.W1:
            day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
            return day - timedelta(days=day.weekday())
        epoch = int(ts.timestamp())
        return datetime.fromtimestamp(epoch - epoch % self.seconds, tz=ts.tzinfo)

    def bucket_end(self, start: datetime) -> datetime:
        """The end (exclusive) of the bucket starting at `start`."""
        if self == Interval.MN1:
            if start.month == 12:
                return start.replace(year=start.year + 1, month=1)
            return start.replace(month=start.month + 1)
        return start + timedelta(seconds=self.seconds)


_SECONDS = {
    Interval.M1: 60,
    Interval.M5: 300,
    Interval.M15: 900,
    Interval.M30: 1_800,
    Interval.H1: 3_600,
    Interval.H4: 14_400,
    Interval.D1: 86_400,
    Interval.W1: 7 * 86_400,
    Interval.MN1: 31 * 86_400,
}

#: Base timeframes bars may be stored at, finest first.
STORED_TIMEFRAMES: tuple[Interval, ...] = tuple(Interval)


#: Bounds of an open time range (no `from` or no `to`).
MIN_TS = datetime(1800, 1, 1, tzinfo=UTC)
MAX_TS = datetime(2500, 1, 1, tzinfo=UTC)


def align_up(interval: Interval, ts: datetime) -> datetime:
    """`ts` if it starts a bucket, else the start of the next bucket."""
    start = interval.bucket_start(ts)
    return start if start == ts else interval.bucket_end(start)


def after_bucket(interval: Interval, stored: bool, ts: datetime) -> datetime:
    """The inclusive lower bound of what lies strictly after the bar starting at `ts`."""
    return ts + timedelta(microseconds=1) if stored else interval.bucket_end(ts)


def parse_timeframe(value: str) -> str:
    """The interval code for `value` (case-insensitive), or ValueError listing the known ones."""
    code = value.strip().upper()
    if code not in {i.value for i in Interval}:
        raise ValueError(
            f"unknown timeframe {value!r}; known: {', '.join(i.value for i in Interval)}"
        )
    return code
