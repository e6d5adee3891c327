"""The provider interface: configuration, errors, symbol listings and the abstract client.

Bar pages follow one contract for every provider:

* columns `time` (datetime64[ns, UTC], the bar's start as the provider stamps it),
  `open`, `high`, `low`, `close`, `volume` (float64), sorted by `time`, unique `time`;
* only bars with `start <= time <= end` (both bounds inclusive, as every provider's own
  query parameters are), so consecutive ranges that share a bound both return that bar;
* empty pages are not yielded; a range without bars yields nothing.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import ClassVar, Self, TypeVar

import pandas as pd

from core.bar import BAR_FIELDS
from core.providers import ProviderSpec

#: The project's interval codes (core.intervals.Interval values), finest first.
TIMEFRAMES: tuple[str, ...] = ("M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1")

#: Columns of every bar page, in order: the bar's start, then core.bar's value columns.
BAR_COLUMNS: tuple[str, ...] = ("time", *(f.name for f in BAR_FIELDS))

T = TypeVar("T")


class ProviderError(Exception):
    """A provider request failed: says which provider, the HTTP status and what was wrong."""

    def __init__(
        self, provider: str, status: int | None, reason: str, *, transient: bool = False
    ) -> None:
        self.provider = provider
        self.status = status
        self.reason = reason
        # Lets a job runner tell "try again later" (throttling, outages) from "fix the config".
        self.transient = transient
        where = f"HTTP {status}" if status is not None else "no HTTP response"
        super().__init__(f"{provider}: {where}: {reason}")


@dataclass(frozen=True)
class SymbolListing:
    """One tradable instrument as a provider lists it."""

    ticker: str
    name: str
    exchange: str
    asset_class: str
    currency: str
    timezone: str


@dataclass(frozen=True)
class ProviderAction:
    """One corporate action as a provider publishes it, in the project's terms.

    kind SPLIT: `value` is new shares per old share (Polygon's split_to / split_from,
    Alpaca's new_rate / old_rate); kind DIVIDEND: `value` is the cash per share.
    """

    ticker: str
    kind: str
    ex_date: date
    value: float
    currency: str = "USD"


@dataclass(frozen=True)
class ProviderConfig:
    """Connection, credential and retry settings; None fields take the provider's defaults.

    `base_url` defaults to the provider's documented public market-data URL and
    `requests_per_minute` to its documented (free-tier) limit. `reference_base_url` is the
    host serving symbol listings when that differs from `base_url` (Alpaca's trading API);
    when None it follows `base_url` if that was set, else the documented default.
    """

    base_url: str | None = None
    api_key: str | None = None
    api_secret: str | None = None
    requests_per_minute: float | None = None
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    # A server asking for a longer pause than this (Binance IP bans last minutes to days)
    # fails the request as transient rather than parking a worker.
    max_retry_after_seconds: float = 120.0
    # Requests allowed back to back before the limiter starts spacing them.
    burst: int = 1
    reference_base_url: str | None = None

    def __post_init__(self) -> None:
        """Reject settings that would make the client misbehave silently."""
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.requests_per_minute is not None and self.requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive: {self.requests_per_minute}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, not {self.timeout_seconds}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")
        if self.backoff_initial_seconds < 0 or self.backoff_max_seconds < 0:
            raise ValueError("backoff seconds must not be negative")

    def with_defaults(
        self, *, base_url: str, requests_per_minute: float, reference_base_url: str | None = None
    ) -> ProviderConfig:
        """This config with its None fields filled from a provider's documented defaults."""
        reference = self.reference_base_url
        if reference is None:
            reference = self.base_url if self.base_url is not None else reference_base_url
        return dataclasses.replace(
            self,
            base_url=self.base_url if self.base_url is not None else base_url,
            requests_per_minute=(
                self.requests_per_minute
                if self.requests_per_minute is not None
                else requests_per_minute
            ),
            reference_base_url=reference if reference is not None else base_url,
        )

    def __repr__(self) -> str:
        """Like the dataclass repr, with credentials masked so they never reach a log."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for secret in ("api_key", "api_secret"):
            if fields[secret] is not None:
                fields[secret] = "***"
        inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"ProviderConfig({inner})"


class MarketDataProvider(ABC):
    """A market-data source: paged OHLCV bars and a symbol listing.

    Use as an async context manager (or call `aclose`) so its HTTP connections are released.
    """

    #: Registry name, e.g. "alpaca".
    name: ClassVar[str]
    #: Its declaration (name, description, settings): core/providers.py.
    spec: ClassVar[ProviderSpec]

    config: ProviderConfig

    @abstractmethod
    def fetch_bars(
        self, ticker: str, timeframe: str, start: datetime, end: datetime
    ) -> AsyncIterator[pd.DataFrame]:
        """Yield the bars of `ticker` with start time in [start, end], one page at a time."""

    @abstractmethod
    async def list_symbols(self) -> list[SymbolListing]:
        """Every active instrument the provider serves bars for."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the provider's HTTP connections."""

    async def fetch_actions(self, ticker: str, start: date, end: date) -> list[ProviderAction]:
        """Splits and cash dividends of `ticker` with an ex-date in [start, end], oldest
        first. Providers that publish none refuse (ProviderError, not transient)."""
        raise ProviderError(self.name, None, "does not publish corporate actions")

    async def __aenter__(self) -> Self:
        """Enter: nothing to open, connections are made on first use."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Exit: close connections."""
        await self.aclose()


def map_timeframe(provider: str, table: Mapping[str, T], timeframe: str) -> T:
    """A provider's spelling of a project timeframe code, or a ValueError naming both."""
    try:
        return table[timeframe]
    except KeyError:
        known = ", ".join(table)
        raise ValueError(
            f"{provider} cannot serve timeframe {timeframe!r}; it serves {known}"
        ) from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(moment: datetime) -> int:
    """Whole milliseconds since the Unix epoch (integer arithmetic: no float rounding)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def utc_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Both bounds converted to UTC; naive datetimes and start > end are ValueErrors."""
    for label, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time could be local or UTC; guessing would shift whole ranges by hours.
            raise ValueError(f"{label} must be timezone-aware, got naive {value.isoformat()}")
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    if start_utc > end_utc:
        raise ValueError(f"start {start_utc.isoformat()} is after end {end_utc.isoformat()}")
    return start_utc, end_utc
