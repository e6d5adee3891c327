"""Binance klines and exchangeInfo against a replay server that pages like Binance does."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from tests.providers.support import ReplayServer, Reply, Seen, collect
from workers.providers import BinanceProvider, ProviderConfig, ProviderError

KLINES = "/api/v3/klines"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
T0_MS = 1_709_251_200_000


def kline(open_ms: int, interval_ms: int = 60_000) -> list[Any]:
    """Binance's kline array: numbers for times, strings for prices and volumes."""
    p = 60_000 + (open_ms - T0_MS) / 60_000
    return [
        open_ms,
        f"{p:.2f}",
        f"{p + 5:.2f}",
        f"{p - 5:.2f}",
        f"{p + 1:.2f}",
        "12.50000000",
        open_ms + interval_ms - 1,
        "750000.0",
        321,
        "6.2",
        "372000.0",
        "0",
    ]


def minute_dataset(count: int) -> Callable[[Seen], Reply]:
    """A klines handler over `count` minute bars from T0, honouring startTime/endTime/limit."""
    opens = [T0_MS + i * 60_000 for i in range(count)]

    def handle(request: Seen) -> Reply:
        q = request.query
        lo, hi, limit = int(q["startTime"]), int(q["endTime"]), int(q["limit"])
        rows = [kline(t) for t in opens if lo <= t <= hi][:limit]
        return Reply(rows)

    return handle


async def test_pages_by_start_time_and_returns_every_bar_once_in_order(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.route(KLINES, minute_dataset(2_500))
    end = T0 + timedelta(minutes=2_600)  # past the data: the last page comes back short
    async with BinanceProvider(fast_config()) as provider:
        pages = await collect(provider, "BTCUSDT", "M1", T0, end)

    assert [len(p) for p in pages] == [1_000, 1_000, 500]
    frame = pd.concat(pages, ignore_index=True)
    assert list(frame["time"]) == list(pd.date_range(T0, periods=2_500, freq="min", tz="UTC"))
    assert frame["open"].iloc[0] == 60_000.0 and frame["high"].iloc[-1] == 62_504.0
    assert (frame["volume"] == 12.5).all()

    seen = replay.seen(KLINES)
    assert [int(r.query["startTime"]) for r in seen] == [
        T0_MS,
        T0_MS + 999 * 60_000 + 1,
        T0_MS + 1_999 * 60_000 + 1,
    ]
    assert {r.query["symbol"] for r in seen} == {"BTCUSDT"}
    assert {r.query["interval"] for r in seen} == {"1m"}
    assert {r.query["limit"] for r in seen} == {"1000"}
    # A keyless public API: no credentials of any kind go out.
    assert not any(k.startswith(("x-mbx", "apca", "authorization")) for k in seen[0].headers)
    assert "apiKey" not in seen[0].query


async def test_stops_when_end_is_reached_even_if_the_page_was_full(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.route(KLINES, minute_dataset(5_000))
    end = T0 + timedelta(minutes=1_999)  # exactly two full pages, end inclusive
    async with BinanceProvider(fast_config()) as provider:
        pages = await collect(provider, "BTCUSDT", "M1", T0, end)
    assert sum(len(p) for p in pages) == 2_000
    assert pages[-1]["time"].iloc[-1] == end
    assert len(replay.seen(KLINES)) == 2


async def test_rate_limit_418_with_retry_after_is_waited_out(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(
        KLINES,
        Reply({"code": -1003, "msg": "IP banned"}, 418, headers={"Retry-After": "1"}),
        Reply([kline(T0_MS)]),
    )
    started = time.monotonic()
    async with BinanceProvider(fast_config()) as provider:
        (frame,) = await collect(provider, "BTCUSDT", "M1", T0, T0)
    seen = replay.seen(KLINES)
    assert len(seen) == 2
    assert seen[1].at - seen[0].at >= 0.95
    assert time.monotonic() - started >= 0.95
    assert frame["close"].tolist() == [60_001.0]


async def test_bad_symbol_fails_at_once_with_binance_message(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(KLINES, Reply({"code": -1121, "msg": "Invalid symbol."}, status=400))
    async with BinanceProvider(fast_config()) as provider:
        with pytest.raises(ProviderError, match=r"binance: HTTP 400: .*Invalid symbol\."):
            await collect(provider, "NOPE", "M1", T0, T0)
    assert len(replay.seen(KLINES)) == 1


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (Reply(body="Service Unavailable"), "not JSON"),
        (Reply({"symbol": "BTCUSDT"}), "JSON array"),
        (Reply([[T0_MS, "1", "2", "0.5"]]), "has no field 4"),
        (Reply([[str(T0_MS), "1", "2", "0.5", "1", "1"]]), "epoch milliseconds"),
        (Reply([[T0_MS, "1", "2", "0.5", "one", "1"]]), "field 4"),
        (Reply([{"openTime": T0_MS}]), "has no field 0"),
        (Reply(["not a row"]), "not an object or array"),
    ],
)
async def test_malformed_body_is_a_provider_error(
    replay: ReplayServer,
    fast_config: Callable[..., ProviderConfig],
    reply: Reply,
    detail: str,
) -> None:
    replay.queue(KLINES, reply)
    async with BinanceProvider(fast_config()) as provider:
        with pytest.raises(ProviderError) as info:
            await collect(provider, "BTCUSDT", "M1", T0, T0 + timedelta(hours=1))
    assert str(info.value).startswith("binance: HTTP 200: malformed body")
    assert detail in str(info.value)


async def test_full_page_that_does_not_advance_is_a_provider_error(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    # A server ignoring startTime would otherwise be polled forever.
    stale = [kline(T0_MS - (i + 1) * 60_000) for i in range(1_000)]
    replay.route(KLINES, lambda request: Reply(stale))
    async with BinanceProvider(fast_config()) as provider:
        with pytest.raises(ProviderError, match="before startTime"):
            await collect(provider, "BTCUSDT", "M1", T0, T0 + timedelta(days=1))


async def test_lists_trading_spot_symbols(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    info = {
        "timezone": "UTC",
        "serverTime": 1_709_251_200_000,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [
            {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT"},
            {"symbol": "LUNABTC", "status": "BREAK", "baseAsset": "LUNA", "quoteAsset": "BTC"},
            {"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC"},
        ],
    }
    replay.queue("/api/v3/exchangeInfo", Reply(info))
    async with BinanceProvider(fast_config()) as provider:
        listings = await provider.list_symbols()
    assert [(s.ticker, s.name, s.currency) for s in listings] == [
        ("BTCUSDT", "BTC/USDT", "USDT"),
        ("ETHBTC", "ETH/BTC", "BTC"),
    ]
    assert {(s.exchange, s.asset_class, s.timezone) for s in listings} == {
        ("BINANCE", "crypto", "UTC")
    }


async def test_exchange_info_without_symbols_is_a_provider_error(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue("/api/v3/exchangeInfo", Reply({"timezone": "UTC"}))
    async with BinanceProvider(fast_config()) as provider:
        with pytest.raises(ProviderError, match=r"binance: HTTP 200: malformed body.*'symbols'"):
            await provider.list_symbols()


@pytest.mark.parametrize(
    ("timeframe", "interval"),
    [("M15", "15m"), ("H1", "1h"), ("H4", "4h"), ("D1", "1d"), ("W1", "1w"), ("MN1", "1M")],
)
async def test_timeframes_map_to_binance_intervals(
    replay: ReplayServer,
    fast_config: Callable[..., ProviderConfig],
    timeframe: str,
    interval: str,
) -> None:
    replay.queue(KLINES, Reply([]))
    async with BinanceProvider(fast_config()) as provider:
        assert await collect(provider, "BTCUSDT", timeframe, T0, T0 + timedelta(days=60)) == []
    assert replay.seen(KLINES)[0].query["interval"] == interval
