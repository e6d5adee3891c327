"""Alpaca stock bars and assets against the replay server, in Alpaca's documented shapes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from tests.providers.support import ReplayServer, Reply, collect
from workers.providers import AlpacaProvider, ProviderConfig, ProviderError

BARS = "/v2/stocks/AAPL/bars"
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def bar(i: int, price: float = 100.0) -> dict[str, Any]:
    """Alpaca's bar object for minute i after T0."""
    t = (T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    p = price + i
    return {"t": t, "o": p, "h": p + 1, "l": p - 1, "c": p + 0.5, "v": 1000 + i, "n": 7, "vw": p}


def page(bars: list[dict[str, Any]] | None, token: str | None) -> dict[str, Any]:
    """A bars response body."""
    return {"bars": bars, "symbol": "AAPL", "next_page_token": token}


async def test_follows_page_tokens_and_returns_every_bar_once_in_order(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(
        BARS,
        Reply(page([bar(i) for i in range(0, 4)], "tok-1")),
        Reply(page([bar(i) for i in range(4, 8)], "tok-2")),
        Reply(page([bar(i) for i in range(8, 10)], None)),
    )
    async with AlpacaProvider(fast_config()) as provider:
        pages = await collect(provider, "AAPL", "M1", T0, T0 + timedelta(minutes=9))

    assert [len(p) for p in pages] == [4, 4, 2]
    frame = pd.concat(pages, ignore_index=True)
    expected = pd.date_range(T0, periods=10, freq="min", tz="UTC")
    assert list(frame["time"]) == list(expected)
    assert frame["open"].tolist() == [100.0 + i for i in range(10)]
    assert frame["volume"].tolist() == [1000.0 + i for i in range(10)]

    seen = replay.seen(BARS)
    assert [r.query.get("page_token") for r in seen] == [None, "tok-1", "tok-2"]
    first = seen[0].query
    assert first["timeframe"] == "1Min"
    assert first["start"] == "2024-01-02T14:30:00Z"
    assert first["end"] == "2024-01-02T14:39:00Z"
    assert first["limit"] == "10000"
    assert first["adjustment"] == "raw"  # stored raw; adjusted at read time


async def test_sends_keys_in_the_documented_headers(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(BARS, Reply(page([bar(0)], None)))
    config = fast_config(api_key="AKID123", api_secret="s3cr3t")
    async with AlpacaProvider(config) as provider:
        await collect(provider, "AAPL", "M1", T0, T0)

    (request,) = replay.seen(BARS)
    assert request.headers["apca-api-key-id"] == "AKID123"
    assert request.headers["apca-api-secret-key"] == "s3cr3t"
    # Keys belong in headers only, never in a URL that ends up in logs.
    assert "s3cr3t" not in str(request.query)


async def test_null_bars_yield_nothing(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(BARS, Reply(page(None, None)))
    async with AlpacaProvider(fast_config()) as provider:
        assert await collect(provider, "AAPL", "D1", T0, T0 + timedelta(days=3)) == []
    assert replay.seen(BARS)[0].query["timeframe"] == "1Day"


async def test_deduplicates_and_keeps_bars_inside_the_inclusive_range(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    duplicate = bar(2, price=500.0)  # same time as bar(2), sent later: it wins
    rows = [bar(0), bar(1), bar(2), duplicate, bar(3), bar(4)]
    replay.queue(BARS, Reply(page(rows, None)))
    start, end = T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)
    async with AlpacaProvider(fast_config()) as provider:
        (frame,) = await collect(provider, "AAPL", "M1", start, end)

    assert list(frame["time"]) == [start, T0 + timedelta(minutes=2), end]
    assert frame["open"].tolist() == [101.0, 502.0, 103.0]


async def test_a_bar_repeated_across_pages_is_yielded_once(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(
        BARS,
        Reply(page([bar(0), bar(1)], "next")),
        Reply(page([bar(1), bar(2)], None)),
    )
    async with AlpacaProvider(fast_config()) as provider:
        pages = await collect(provider, "AAPL", "M1", T0, T0 + timedelta(minutes=5))
    times = pd.concat(pages)["time"]
    assert times.is_unique and len(times) == 3


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (Reply(body="<html>gateway</html>"), "not JSON"),
        (Reply({"symbol": "AAPL", "next_page_token": None}), "no 'bars' key"),
        (Reply(page([{"t": "2024-01-02T14:30:00Z", "o": 1, "h": 1, "l": 1, "v": 1}], None)), "'c'"),
        (Reply(page([{**bar(0), "o": "abc"}], None)), "'o'"),
        (Reply(page([{**bar(0), "v": True}], None)), "'v'"),
        (Reply(page([{**bar(0), "t": "yesterday"}], None)), "time"),
        (Reply(page([{**bar(0), "t": 1704205800}], None)), "RFC 3339"),
        (Reply({"bars": {"t": 1}, "next_page_token": None}), "list of bars"),
        (Reply([1, 2, 3]), "JSON object"),
        (Reply(page([bar(0)], 42)), "next_page_token"),  # type: ignore[arg-type]
    ],
)
async def test_malformed_body_is_a_provider_error(
    replay: ReplayServer,
    fast_config: Callable[..., ProviderConfig],
    reply: Reply,
    detail: str,
) -> None:
    replay.queue(BARS, reply)
    async with AlpacaProvider(fast_config()) as provider:
        with pytest.raises(ProviderError) as info:
            await collect(provider, "AAPL", "M1", T0, T0 + timedelta(minutes=5))
    error = info.value
    assert error.provider == "alpaca" and error.status == 200
    assert str(error).startswith("alpaca: HTTP 200: malformed body")
    assert detail in str(error)
    assert len(replay.seen(BARS)) == 1  # a broken body is not retried


async def test_unauthorized_fails_at_once_without_retrying(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(BARS, *[Reply({"message": "forbidden."}, status=401)] * 3)
    async with AlpacaProvider(fast_config(max_attempts=3)) as provider:
        with pytest.raises(ProviderError) as info:
            await collect(provider, "AAPL", "M1", T0, T0 + timedelta(minutes=5))
    assert info.value.status == 401
    assert not info.value.transient
    assert "alpaca: HTTP 401" in str(info.value) and "forbidden." in str(info.value)
    assert len(replay.seen(BARS)) == 1


@pytest.mark.parametrize("status", [403, 404, 422])
async def test_other_client_errors_fail_at_once(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig], status: int
) -> None:
    replay.queue(BARS, *[Reply({"message": "invalid timeframe"}, status=status)] * 2)
    async with AlpacaProvider(fast_config()) as provider:
        with pytest.raises(ProviderError, match=f"HTTP {status}.*invalid timeframe"):
            await collect(provider, "AAPL", "M1", T0, T0 + timedelta(minutes=5))
    assert len(replay.seen(BARS)) == 1


async def test_missing_credentials_fail_before_any_request(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    async with AlpacaProvider(fast_config(api_key=None)) as provider:
        with pytest.raises(ProviderError, match="api_key and api_secret are required"):
            await collect(provider, "AAPL", "M1", T0, T0 + timedelta(minutes=5))
    assert replay.seen() == []


async def test_lists_active_us_equities_from_the_trading_api(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    assets = [
        {
            "id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": "AAPL",
            "name": "Apple Inc. Common Stock",
            "status": "active",
            "tradable": True,
        },
        {"class": "us_equity", "exchange": "NYSE", "symbol": "IBM", "name": None},
    ]
    replay.queue("/v2/assets", Reply(assets))
    async with AlpacaProvider(fast_config()) as provider:
        listings = await provider.list_symbols()

    assert [(s.ticker, s.name, s.exchange) for s in listings] == [
        ("AAPL", "Apple Inc. Common Stock", "NASDAQ"),
        ("IBM", "", "NYSE"),
    ]
    assert {(s.asset_class, s.currency, s.timezone) for s in listings} == {
        ("equity", "USD", "America/New_York")
    }
    (request,) = replay.seen("/v2/assets")
    assert request.query == {"status": "active", "asset_class": "us_equity"}
    assert request.headers["apca-api-key-id"] == "test-key-id"


async def test_asset_without_symbol_is_a_provider_error(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue("/v2/assets", Reply([{"exchange": "NYSE"}]))
    async with AlpacaProvider(fast_config()) as provider:
        with pytest.raises(ProviderError, match=r"alpaca: HTTP 200: malformed body.*asset 0"):
            await provider.list_symbols()


def test_defaults_are_the_documented_public_hosts() -> None:
    provider = AlpacaProvider()
    assert provider.config.base_url == "https://data.alpaca.markets"
    assert provider.config.reference_base_url == "https://api.alpaca.markets"
    assert provider.config.requests_per_minute == 200
