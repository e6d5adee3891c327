"""Alpaca Market Data v2 stock bars, and the trading API's asset list for symbols.

Formats: https://docs.alpaca.markets/reference/stockbars (bars),
https://docs.alpaca.markets/reference/get-v2-assets (assets) and
https://docs.alpaca.markets/reference/corporateactions-1 (corporate actions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import ClassVar
from urllib.parse import quote

import pandas as pd

from core.providers import PROVIDER_SPECS, ProviderSpec
from workers.providers.base import (
    MarketDataProvider,
    ProviderAction,
    ProviderConfig,
    ProviderError,
    SymbolListing,
    map_timeframe,
    utc_range,
)
from workers.providers.frames import clip_bars, rows_to_bars
from workers.providers.transport import HttpTransport, JsonReply

DATA_BASE_URL = "https://data.alpaca.markets"
TRADING_BASE_URL = "https://api.alpaca.markets"
# The free (Basic) plan allows 200 requests a minute.
DEFAULT_REQUESTS_PER_MINUTE = 200.0
PAGE_LIMIT = 10_000

TIMEFRAMES: dict[str, str] = {
    "M1": "1Min",
    "M5": "5Min",
    "M15": "15Min",
    "M30": "30Min",
    "H1": "1Hour",
    "H4": "4Hour",
    "D1": "1Day",
    "W1": "1Week",
    "MN1": "1Month",
}

_FIELDS = {"time": "t", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "v"}


def rfc3339(moment: datetime) -> str:
    """A UTC datetime as Alpaca's RFC 3339 query format (trailing Z)."""
    return moment.isoformat().replace("+00:00", "Z")


class AlpacaProvider(MarketDataProvider):
    """US stock bars from Alpaca; authenticates with the APCA-API-* key headers."""

    spec: ClassVar[ProviderSpec] = PROVIDER_SPECS["alpaca"]
    name: ClassVar[str] = spec.name

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        adjustment: str = "raw",
        feed: str | None = None,
    ) -> None:
        # "raw": stored bars stay as printed and the read API applies splits and dividends
        # from corporate actions (core/adjustments.py); Polygon is asked for adjusted=false
        # for the same reason. None for feed lets Alpaca pick the plan's best feed.
        self.config = (config or ProviderConfig()).with_defaults(
            base_url=DATA_BASE_URL,
            requests_per_minute=DEFAULT_REQUESTS_PER_MINUTE,
            reference_base_url=TRADING_BASE_URL,
        )
        self.adjustment = adjustment
        self.feed = feed
        headers = {}
        if self.config.api_key is not None:
            headers["APCA-API-KEY-ID"] = self.config.api_key
        if self.config.api_secret is not None:
            headers["APCA-API-SECRET-KEY"] = self.config.api_secret
        self._http = HttpTransport(self.name, self.config, headers)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    def _require_credentials(self) -> None:
        """Fail before a request that Alpaca would refuse with a less helpful 401."""
        if self.config.api_key is None or self.config.api_secret is None:
            raise ProviderError(self.name, None, "api_key and api_secret are required")

    async def fetch_bars(
        self, ticker: str, timeframe: str, start: datetime, end: datetime
    ) -> AsyncIterator[pd.DataFrame]:
        """Yield bars with start time in [start, end], following next_page_token."""
        interval = map_timeframe(self.name, TIMEFRAMES, timeframe)
        start, end = utc_range(start, end)
        self._require_credentials()
        path = f"/v2/stocks/{quote(ticker, safe='')}/bars"
        params: dict[str, str | int | float] = {
            "timeframe": interval,
            "start": rfc3339(start),
            "end": rfc3339(end),
            "limit": PAGE_LIMIT,
            "adjustment": self.adjustment,
        }
        if self.feed is not None:
            params["feed"] = self.feed
        last: pd.Timestamp | None = None
        token: str | None = None
        while True:
            if token is not None:
                params["page_token"] = token
            reply = await self._http.get_json(path, params)
            body = reply.object()
            if "bars" not in body:
                raise reply.malformed("no 'bars' key")
            # Alpaca sends "bars": null, not [], when the range has no bars.
            bars = body["bars"] if body["bars"] is not None else []
            page = clip_bars(rows_to_bars(reply, bars, _FIELDS, "iso8601"), start, end, last)
            if not page.empty:
                last = page["time"].iloc[-1]
                yield page
            next_token = body.get("next_page_token")
            if next_token is None or next_token == "":
                return
            if not isinstance(next_token, str):
                raise reply.malformed(f"next_page_token is a {type(next_token).__name__}")
            if next_token == token:
                raise reply.malformed("next_page_token repeats the previous one")
            token = next_token

    async def fetch_actions(self, ticker: str, start: date, end: date) -> list[ProviderAction]:
        """Forward and reverse splits (new_rate / old_rate) and cash dividends (rate) of
        `ticker` with an ex-date in [start, end], following next_page_token."""
        self._require_credentials()
        params: dict[str, str | int | float] = {
            "symbols": ticker,
            "types": "forward_split,reverse_split,cash_dividend",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "limit": 1000,
        }
        out: list[ProviderAction] = []
        token: str | None = None
        while True:
            if token is not None:
                params["page_token"] = token
            reply = await self._http.get_json("/v1/corporate-actions", params)
            body = reply.object()
            groups = body.get("corporate_actions")
            if not isinstance(groups, dict):
                raise reply.malformed("no 'corporate_actions' object")
            for group in ("forward_splits", "reverse_splits"):
                for i, item in enumerate(_items(reply, groups, group)):
                    new, old = _positive(item.get("new_rate")), _positive(item.get("old_rate"))
                    if new is None or old is None:
                        raise reply.malformed(f"{group} {i} lacks positive new_rate, old_rate")
                    ex = _ex_date(reply, item, group, i)
                    out.append(ProviderAction(ticker, "SPLIT", ex, new / old))
            for i, item in enumerate(_items(reply, groups, "cash_dividends")):
                rate = _positive(item.get("rate"))
                if rate is None:
                    raise reply.malformed(f"cash_dividends {i} lacks a positive rate")
                ex = _ex_date(reply, item, "cash_dividends", i)
                out.append(ProviderAction(ticker, "DIVIDEND", ex, rate))
            next_token = body.get("next_page_token")
            if next_token is None or next_token == "":
                break
            if not isinstance(next_token, str) or next_token == token:
                raise reply.malformed("bad or repeated next_page_token")
            token = next_token
        out.sort(key=lambda a: (a.ex_date, a.kind))
        return out

    async def list_symbols(self) -> list[SymbolListing]:
        """Active US equities from the trading API's asset list."""
        self._require_credentials()
        base = self.config.reference_base_url or TRADING_BASE_URL
        reply = await self._http.get_json(
            f"{base.rstrip('/')}/v2/assets", {"status": "active", "asset_class": "us_equity"}
        )
        listings = []
        for i, asset in enumerate(reply.array()):
            if not isinstance(asset, dict):
                raise reply.malformed(f"asset {i} is a {type(asset).__name__}")
            symbol, exchange = asset.get("symbol"), asset.get("exchange")
            if not isinstance(symbol, str) or not symbol or not isinstance(exchange, str):
                raise reply.malformed(f"asset {i} lacks a string symbol and exchange")
            name = asset.get("name")
            listings.append(
                SymbolListing(
                    ticker=symbol,
                    name=name if isinstance(name, str) else "",
                    exchange=exchange,
                    asset_class="equity",
                    currency="USD",
                    timezone="America/New_York",
                )
            )
        return listings


def _items(reply: JsonReply, groups: dict[str, object], name: str) -> list[dict[str, object]]:
    """One group of Alpaca's corporate actions (absent: none), as objects."""
    items = groups.get(name) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise reply.malformed(f"{name} is not a list of objects")
    return items


def _positive(value: object) -> float | None:
    """A JSON number above zero as a float, else None (bools are not numbers here)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _ex_date(reply: JsonReply, item: dict[str, object], group: str, i: int) -> date:
    """The item's ex_date, or a malformed-body error."""
    value = item.get("ex_date")
    try:
        return date.fromisoformat(value) if isinstance(value, str) else date.fromisoformat("")
    except ValueError:
        raise reply.malformed(f"{group} {i} has no ISO ex_date") from None
