"""Binance spot klines, and exchangeInfo for symbols; public endpoints, no key.

Formats: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints
(klines, exchangeInfo) and .../rest-api/limits (429 and 418 with Retry-After).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import ClassVar

import pandas as pd

from core.providers import PROVIDER_SPECS, ProviderSpec
from workers.providers.base import (
    MarketDataProvider,
    ProviderConfig,
    SymbolListing,
    epoch_ms,
    map_timeframe,
    utc_range,
)
from workers.providers.frames import clip_bars, rows_to_bars
from workers.providers.transport import HttpTransport

BASE_URL = "https://api.binance.com"
# The IP limit is 6,000 request weight a minute and klines weigh 2; staying far below it
# leaves room for other clients on the same address.
DEFAULT_REQUESTS_PER_MINUTE = 1_200.0
PAGE_LIMIT = 1_000

TIMEFRAMES: dict[str, str] = {
    "M1": "1m",
    "M5": "5m",
    "M15": "15m",
    "M30": "30m",
    "H1": "1h",
    "H4": "4h",
    "D1": "1d",
    "W1": "1w",
    "MN1": "1M",
}

# Kline arrays: [open time, open, high, low, close, volume, close time, quote volume, ...].
_FIELDS: dict[str, str | int] = {
    "time": 0,
    "open": 1,
    "high": 2,
    "low": 3,
    "close": 4,
    "volume": 5,
}


class BinanceProvider(MarketDataProvider):
    """Spot klines from Binance (volume in the base asset)."""

    spec: ClassVar[ProviderSpec] = PROVIDER_SPECS["binance"]
    name: ClassVar[str] = spec.name

    def __init__(self, config: ProviderConfig | None = None) -> None:
        self.config = (config or ProviderConfig()).with_defaults(
            base_url=BASE_URL, requests_per_minute=DEFAULT_REQUESTS_PER_MINUTE
        )
        self._http = HttpTransport(self.name, self.config)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def fetch_bars(
        self, ticker: str, timeframe: str, start: datetime, end: datetime
    ) -> AsyncIterator[pd.DataFrame]:
        """Yield bars with open time in [start, end], advancing startTime past each page."""
        interval = map_timeframe(self.name, TIMEFRAMES, timeframe)
        start, end = utc_range(start, end)
        cursor, end_ms = epoch_ms(start), epoch_ms(end)
        last: pd.Timestamp | None = None
        while cursor <= end_ms:
            reply = await self._http.get_json(
                "/api/v3/klines",
                {
                    "symbol": ticker,
                    "interval": interval,
                    "startTime": cursor,
                    "endTime": end_ms,
                    "limit": PAGE_LIMIT,
                },
            )
            rows = reply.array()
            raw = rows_to_bars(reply, rows, _FIELDS, "epoch_ms")
            page = clip_bars(raw, start, end, last)
            if not page.empty:
                last = page["time"].iloc[-1]
                yield page
            if len(rows) < PAGE_LIMIT:
                return
            newest = int(raw["time"].max().value // 1_000_000)
            if newest < cursor:
                # A full page entirely before the cursor would make this loop forever.
                raise reply.malformed(f"full page ends at {newest} ms, before startTime {cursor}")
            cursor = newest + 1

    async def list_symbols(self) -> list[SymbolListing]:
        """Spot symbols whose status is TRADING."""
        reply = await self._http.get_json("/api/v3/exchangeInfo")
        symbols = reply.object().get("symbols")
        if not isinstance(symbols, list):
            raise reply.malformed("no 'symbols' list")
        listings = []
        for i, item in enumerate(symbols):
            if not isinstance(item, dict):
                raise reply.malformed(f"symbol {i} is a {type(item).__name__}")
            symbol, status = item.get("symbol"), item.get("status")
            base, quote = item.get("baseAsset"), item.get("quoteAsset")
            if not all(isinstance(v, str) for v in (symbol, status, base, quote)):
                raise reply.malformed(f"symbol {i} lacks symbol, status, baseAsset or quoteAsset")
            if status != "TRADING":
                continue
            listings.append(
                SymbolListing(
                    ticker=str(symbol),
                    name=f"{base}/{quote}",
                    exchange="BINANCE",
                    asset_class="crypto",
                    currency=str(quote),
                    timezone="UTC",
                )
            )
        return listings
