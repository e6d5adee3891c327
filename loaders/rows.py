"""Plain records the loaders return: no ORM objects, no GraphQL types."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from core.intervals import Interval


@dataclass(frozen=True, slots=True)
class StoredSeries:
    """One stored timeframe of a symbol: its time range and data version."""

    timeframe: Interval
    first_ts: datetime
    last_ts: datetime
    version: int


@dataclass(frozen=True, slots=True)
class SymbolRow:
    """A row of `symbols` with the timeframes stored for it."""

    id: int
    ticker: str
    name: str
    exchange: str
    asset_class: str
    currency: str
    timezone: str
    active: bool
    created_at: datetime
    updated_at: datetime
    series: tuple[StoredSeries, ...]
    calendar: str = "24/7"  # exchange calendar code (core.calendars)

    def stored(self, timeframe: Interval) -> StoredSeries | None:
        """The stored series at exactly `timeframe`, if any."""
        for s in self.series:
            if s.timeframe == timeframe:
                return s
        return None

    def base_for(self, interval: Interval) -> StoredSeries | None:
        """The finest stored timeframe whose bars combine exactly into `interval` bars."""
        candidates = [s for s in self.series if s.timeframe.divides(interval)]
        if not candidates:
            return None
        return min(candidates, key=lambda s: s.timeframe.seconds)


class Prices(NamedTuple):
    """A bar's four prices."""

    open: float
    high: float
    low: float
    close: float


class BarRow(NamedTuple):
    """One bar, stored or resampled; `closed` is False for a bucket still forming.

    A named tuple, not a dataclass: pages hold thousands of these, and a tuple is built in a
    third of the time of a frozen dataclass and read through C attribute getters.
    """

    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool

    @property
    def time(self) -> datetime:
        """The bar start under the name the GraphQL Bar type reads."""
        return self[0]

    @property
    def filled(self) -> bool:
        """Whether this bar stands for a slot where nothing traded (graphql_api.bar_fill)."""
        return False

    @property
    def prices(self) -> Prices | None:
        """The bar's prices as one nullable value (null for a slot filled with `fill: NULL`)."""
        return Prices(self[1], self[2], self[3], self[4])


@dataclass(frozen=True, slots=True)
class BarPage:
    """Bars of one page in walk order, and whether more lay beyond the page."""

    rows: list[BarRow]
    has_more: bool


@dataclass(frozen=True, slots=True)
class SeriesColumns:
    """Bars as columns, for charts: lists, or numpy-backed `loaders.columns.Column`s as the
    series loader reads them (both read as sequences of Python values)."""

    interval: Interval
    ts: Sequence[datetime]
    open: Sequence[float]
    high: Sequence[float]
    low: Sequence[float]
    close: Sequence[float]
    volume: Sequence[float]
    closed: Sequence[bool]


@dataclass(frozen=True, slots=True)
class ActionRow:
    """A row of `corporate_actions`."""

    kind: str
    ex_date: date
    value: float
    currency: str
    source: str
    created_at: datetime
    updated_at: datetime
