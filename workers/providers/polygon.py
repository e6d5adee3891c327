"""Polygon.io aggregate bars, and its reference ticker list for symbols.

Formats: https://polygon.io/docs/rest/stocks/aggregates/custom-bars (aggregates),
https://polygon.io/docs/rest/stocks/tickers/all-tickers (reference tickers),
https://polygon.io/docs/rest/stocks/corporate-actions/splits and
https://polygon.io/docs/rest/stocks/corporate-actions/dividends (corporate actions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import pandas as pd

from core.providers import PROVIDER_SPECS, ProviderSpec
from workers.providers.base import (
    MarketDataProvider,
    ProviderAction,
    ProviderConfig,
    ProviderError,
    SymbolListing,
    epoch_ms,
    map_timeframe,
    utc_range,
)
from workers.providers.frames import clip_bars, rows_to_bars
from workers.providers.transport import HttpTransport, JsonReply

BASE_URL = "https://api.polygon.io"
# The free (Basic) plan allows 5 requests a minute.
DEFAULT_REQUESTS_PER_MINUTE = 5.0
PAGE_LIMIT = 50_000
TICKERS_PAGE_LIMIT = 1_000
# "DELAYED" is what plans without real-time data get; the body is otherwise the same.
_OK_STATUSES = frozenset({"OK", "DELAYED"})

TIMEFRAMES: dict[str, tuple[int, str]] = {
    "M1": (1, "minute"),
    "M5": (5, "minute"),
    "M15": (15, "minute"),
    "M30": (30, "minute"),
    "H1": (1, "hour"),
    "H4": (4, "hour"),
    "D1": (1, "day"),
    "W1": (1, "week"),
    "MN1": (1, "month"),
}

_FIELDS = {"time": "t", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "v"}

# Polygon market -> (project asset class, timezone of its sessions).
_MARKETS: dict[str, tuple[str, str]] = {
    "stocks": ("equity", "America/New_York"),
    "otc": ("equity", "America/New_York"),
    "indices": ("index", "America/New_York"),
    "crypto": ("crypto", "UTC"),
    "fx": ("fx", "UTC"),
}


class PolygonProvider(MarketDataProvider):
    """Aggregate bars from Polygon; the API key travels as the apiKey query parameter."""

    spec: ClassVar[ProviderSpec] = PROVIDER_SPECS["polygon"]
    name: ClassVar[str] = spec.name

    def __init__(self, config: ProviderConfig | None = None, *, market: str = "stocks") -> None:
        self.config = (config or ProviderConfig()).with_defaults(
            base_url=BASE_URL, requests_per_minute=DEFAULT_REQUESTS_PER_MINUTE
        )
        self.market = market
        self._http = HttpTransport(self.name, self.config)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    def _key(self) -> str:
        """The API key, or an error before a request Polygon would refuse."""
        if self.config.api_key is None:
            raise ProviderError(self.name, None, "api_key is required")
        return self.config.api_key

    def _next_path(self, reply: JsonReply, next_url: object) -> str | None:
        """The path and query of `next_url`, to request against our own base URL.

        Only the path and cursor are taken from the body, so the API key is never sent to
        a host named by a response, and a proxy or replay base URL keeps working.
        """
        if next_url is None or next_url == "":
            return None
        if not isinstance(next_url, str):
            raise reply.malformed(f"next_url is a {type(next_url).__name__}")
        url = httpx.URL(next_url)
        query = url.query.decode("ascii", errors="replace")
        return url.path + (f"?{query}" if query else "")

    def _check_status(self, reply: JsonReply, body: dict[str, Any]) -> None:
        """Polygon reports some failures as a non-OK `status` inside a 200 body."""
        status = body.get("status")
        if not isinstance(status, str):
            raise reply.malformed("no string 'status'")
        if status not in _OK_STATUSES:
            detail = body.get("error") or body.get("message") or "no detail"
            raise ProviderError(self.name, reply.status, f"status {status}: {detail}")

    async def fetch_bars(
        self, ticker: str, timeframe: str, start: datetime, end: datetime
    ) -> AsyncIterator[pd.DataFrame]:
        """Yield bars with start time in [start, end], following next_url."""
        multiplier, timespan = map_timeframe(self.name, TIMEFRAMES, timeframe)
        start, end = utc_range(start, end)
        key = self._key()
        url: str | None = (
            f"/v2/aggs/ticker/{quote(ticker, safe='')}/range/{multiplier}/{timespan}"
            f"/{epoch_ms(start)}/{epoch_ms(end)}"
        )
        params: dict[str, str | int | float] = {
            # As printed: adjustments are applied at read time from corporate actions
            # (core/adjustments.py); adjusted bars stored here would be adjusted twice.
            "adjusted": "false",
            "sort": "asc",
            "limit": PAGE_LIMIT,
            "apiKey": key,
        }
        seen_urls: set[str] = set()
        last: pd.Timestamp | None = None
        while url is not None:
            seen_urls.add(url)
            reply = await self._http.get_json(url, params)
            body = reply.object()
            self._check_status(reply, body)
            # Polygon omits "results" entirely when the range has no bars.
            rows = body.get("results", [])
            page = clip_bars(rows_to_bars(reply, rows, _FIELDS, "epoch_ms"), start, end, last)
            if not page.empty:
                last = page["time"].iloc[-1]
                yield page
            url = self._next_path(reply, body.get("next_url"))
            if url in seen_urls:
                raise reply.malformed("next_url points back to a page already read")
            # next_url carries every other parameter; only the key must be added again.
            params = {"apiKey": key}

    async def list_symbols(self) -> list[SymbolListing]:
        """Active tickers of the configured market, following next_url."""
        key = self._key()
        base = (self.config.reference_base_url or BASE_URL).rstrip("/")
        url: str | None = "/v3/reference/tickers"
        params: dict[str, str | int | float] = {
            "market": self.market,
            "active": "true",
            "limit": TICKERS_PAGE_LIMIT,
            "apiKey": key,
        }
        listings: list[SymbolListing] = []
        seen_urls: set[str] = set()
        while url is not None:
            seen_urls.add(url)
            reply = await self._http.get_json(base + url, params)
            body = reply.object()
            self._check_status(reply, body)
            results = body.get("results", [])
            if not isinstance(results, list):
                raise reply.malformed(f"results is a {type(results).__name__}")
            listings.extend(self._listing(reply, i, item) for i, item in enumerate(results))
            url = self._next_path(reply, body.get("next_url"))
            if url in seen_urls:
                raise reply.malformed("next_url points back to a page already read")
            params = {"apiKey": key}
        return listings

    async def _reference_pages(
        self, path: str, params: dict[str, str | int | float]
    ) -> AsyncIterator[tuple[JsonReply, list[Any]]]:
        """The `results` of a reference endpoint, page by page, following next_url."""
        key = self._key()
        base = (self.config.reference_base_url or BASE_URL).rstrip("/")
        url: str | None = path
        params = {**params, "apiKey": key}
        seen_urls: set[str] = set()
        while url is not None:
            seen_urls.add(url)
            reply = await self._http.get_json(base + url, params)
            body = reply.object()
            self._check_status(reply, body)
            results = body.get("results", [])
            if not isinstance(results, list):
                raise reply.malformed(f"results is a {type(results).__name__}")
            yield reply, results
            url = self._next_path(reply, body.get("next_url"))
            if url in seen_urls:
                raise reply.malformed("next_url points back to a page already read")
            params = {"apiKey": key}

    async def fetch_actions(self, ticker: str, start: date, end: date) -> list[ProviderAction]:
        """Splits (split_to / split_from, by execution_date) and cash dividends (cash_amount,
        by ex_dividend_date) of `ticker` with an ex-date in [start, end]."""
        out: list[ProviderAction] = []
        window: dict[str, str | int | float] = {
            "ticker": ticker,
            "limit": TICKERS_PAGE_LIMIT,
            "order": "asc",
        }
        splits = {
            **window,
            "execution_date.gte": start.isoformat(),
            "execution_date.lte": end.isoformat(),
            "sort": "execution_date",
        }
        async for reply, results in self._reference_pages("/v3/reference/splits", splits):
            for i, item in enumerate(results):
                if not isinstance(item, dict):
                    raise reply.malformed(f"split {i} is a {type(item).__name__}")
                ex = item.get("execution_date")
                to, frm = _positive(item.get("split_to")), _positive(item.get("split_from"))
                if not isinstance(ex, str) or to is None or frm is None:
                    raise reply.malformed(f"split {i} lacks execution_date, split_to, split_from")
                out.append(ProviderAction(ticker, "SPLIT", _date(reply, ex), to / frm))
        dividends = {
            **window,
            "ex_dividend_date.gte": start.isoformat(),
            "ex_dividend_date.lte": end.isoformat(),
            "sort": "ex_dividend_date",
        }
        async for reply, results in self._reference_pages("/v3/reference/dividends", dividends):
            for i, item in enumerate(results):
                if not isinstance(item, dict):
                    raise reply.malformed(f"dividend {i} is a {type(item).__name__}")
                ex, amount = item.get("ex_dividend_date"), _positive(item.get("cash_amount"))
                if not isinstance(ex, str) or amount is None:
                    raise reply.malformed(f"dividend {i} lacks ex_dividend_date, cash_amount")
                currency = item.get("currency")
                out.append(
                    ProviderAction(
                        ticker,
                        "DIVIDEND",
                        _date(reply, ex),
                        amount,
                        currency.upper() if isinstance(currency, str) and currency else "USD",
                    )
                )
        out.sort(key=lambda a: (a.ex_date, a.kind))
        return out

    def _listing(self, reply: JsonReply, i: int, item: object) -> SymbolListing:
        """One reference ticker as a SymbolListing."""
        if not isinstance(item, dict) or not isinstance(item.get("ticker"), str):
            raise reply.malformed(f"ticker {i} lacks a string 'ticker'")
        market = item.get("market")
        asset_class, timezone = _MARKETS.get(market if isinstance(market, str) else "", ("", "UTC"))
        currency = item.get("currency_name")
        exchange = item.get("primary_exchange")
        name = item.get("name")
        return SymbolListing(
            ticker=item["ticker"],
            name=name if isinstance(name, str) else "",
            exchange=exchange if isinstance(exchange, str) else "",
            asset_class=asset_class or (market if isinstance(market, str) else ""),
            currency=currency.upper() if isinstance(currency, str) else "",
            timezone=timezone,
        )


def _positive(value: object) -> float | None:
    """A JSON number above zero as a float, else None (bools are not numbers here)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _date(reply: JsonReply, value: str) -> date:
    """An ISO date from a body, or a malformed-body error."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise reply.malformed(f"{value!r} is not an ISO date") from None
