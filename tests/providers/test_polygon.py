"""Polygon aggregates and reference tickers against the replay server, in Polygon's shapes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from tests.providers.support import ReplayServer, Reply, collect
from workers.providers import PolygonProvider, ProviderConfig, ProviderError

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
T0_MS = 1_704_205_800_000
END = T0 + timedelta(minutes=9)
END_MS = T0_MS + 9 * 60_000
AGGS = f"/v2/aggs/ticker/AAPL/range/1/minute/{T0_MS}/{END_MS}"
TICKERS = "/v3/reference/tickers"


def agg(i: int) -> dict[str, Any]:
    """Polygon's aggregate object for minute i after T0."""
    p = 180.0 + i
    t = T0_MS + i * 60_000
    return {"v": 5000 + i, "vw": p, "o": p, "c": p + 0.25, "h": p + 1, "l": p - 1, "t": t, "n": 3}


def body(results: list[dict[str, Any]] | None, next_url: str | None) -> dict[str, Any]:
    """An aggregates response body; results omitted when None, as Polygon does."""
    out: dict[str, Any] = {
        "ticker": "AAPL",
        "queryCount": 10,
        "resultsCount": len(results or []),
        "adjusted": False,
        "status": "OK",
        "request_id": "6a7e466379af0a71039d60cc78e72282",
    }
    if results is not None:
        out["results"] = results
    if next_url is not None:
        out["next_url"] = next_url
    return out


async def test_follows_next_url_with_the_key_and_returns_every_bar_once_in_order(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(
        AGGS,
        Reply(body([agg(i) for i in range(0, 4)], f"{replay.base_url}{AGGS}?cursor=YWJj%3D%3D")),
    )
    replay.queue(
        AGGS,
        Reply(body([agg(i) for i in range(4, 8)], f"{replay.base_url}{AGGS}?cursor=ZGVm")),
        Reply(body([agg(i) for i in range(8, 10)], None)),
    )
    async with PolygonProvider(fast_config(api_key="pk_live_123")) as provider:
        pages = await collect(provider, "AAPL", "M1", T0, END)

    frame = pd.concat(pages, ignore_index=True)
    assert list(frame["time"]) == list(pd.date_range(T0, periods=10, freq="min", tz="UTC"))
    assert frame["close"].tolist() == [180.25 + i for i in range(10)]

    seen = replay.seen(AGGS)
    assert [r.query.get("cursor") for r in seen] == [None, "YWJj==", "ZGVm"]
    assert [r.query["apiKey"] for r in seen] == ["pk_live_123"] * 3
    assert seen[0].query == {
        "adjusted": "false",  # stored raw; adjusted at read time (core/adjustments.py)
        "sort": "asc",
        "limit": "50000",
        "apiKey": "pk_live_123",
    }


async def test_next_url_on_another_host_is_read_from_our_base_url(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    # The key must never be sent to a host a response names; only the cursor is taken.
    replay.queue(
        AGGS,
        Reply(body([agg(0)], f"https://elsewhere.invalid{AGGS}?cursor=p2")),
        Reply(body([agg(1)], None)),
    )
    async with PolygonProvider(fast_config()) as provider:
        pages = await collect(provider, "AAPL", "M1", T0, END)
    assert sum(len(p) for p in pages) == 2
    assert replay.seen(AGGS)[1].query == {"cursor": "p2", "apiKey": "test-key-id"}


@pytest.mark.parametrize(
    ("timeframe", "segment"),
    [("M5", "5/minute"), ("H4", "4/hour"), ("D1", "1/day"), ("W1", "1/week"), ("MN1", "1/month")],
)
async def test_timeframes_map_to_multiplier_and_timespan(
    replay: ReplayServer,
    fast_config: Callable[..., ProviderConfig],
    timeframe: str,
    segment: str,
) -> None:
    path = f"/v2/aggs/ticker/AAPL/range/{segment}/{T0_MS}/{END_MS}"
    replay.queue(path, Reply(body(None, None)))
    async with PolygonProvider(fast_config()) as provider:
        assert await collect(provider, "AAPL", timeframe, T0, END) == []
    assert len(replay.seen(path)) == 1


async def test_bars_outside_the_range_are_dropped_and_end_is_inclusive(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    rows = [agg(-1), agg(0), agg(9), agg(10), agg(0)]
    replay.queue(AGGS, Reply(body(rows, None)))
    async with PolygonProvider(fast_config()) as provider:
        (frame,) = await collect(provider, "AAPL", "M1", T0, END)
    assert list(frame["time"]) == [T0, END]


async def test_error_status_in_body_is_a_provider_error(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(AGGS, Reply({"status": "ERROR", "request_id": "x", "error": "bad ticker"}))
    async with PolygonProvider(fast_config()) as provider:
        with pytest.raises(ProviderError, match="polygon: HTTP 200: status ERROR: bad ticker"):
            await collect(provider, "AAPL", "M1", T0, END)


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (Reply(body="Internal error page"), "not JSON"),
        (Reply({"results": [agg(0)]}), "'status'"),
        (Reply(body([{k: v for k, v in agg(0).items() if k != "c"}], None)), "'c'"),
        (Reply(body([{**agg(0), "t": "2024-01-02"}], None)), "epoch milliseconds"),
        (Reply(body([{**agg(0), "h": None}], None)), "'h'"),
        (Reply({**body(None, None), "results": "none"}), "list of bars"),
        (Reply(body([agg(0)], None) | {"next_url": 7}), "next_url"),
    ],
)
async def test_malformed_body_is_a_provider_error(
    replay: ReplayServer,
    fast_config: Callable[..., ProviderConfig],
    reply: Reply,
    detail: str,
) -> None:
    replay.queue(AGGS, reply)
    async with PolygonProvider(fast_config()) as provider:
        with pytest.raises(ProviderError) as info:
            await collect(provider, "AAPL", "M1", T0, END)
    assert str(info.value).startswith("polygon: HTTP 200: malformed body")
    assert detail in str(info.value)


async def test_next_url_loop_is_a_provider_error(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    loop = f"{replay.base_url}{AGGS}?cursor=same"
    replay.queue(AGGS, Reply(body([agg(0)], loop)), Reply(body([agg(1)], loop)))
    async with PolygonProvider(fast_config()) as provider:
        with pytest.raises(ProviderError, match="already read"):
            await collect(provider, "AAPL", "M1", T0, END)


async def test_missing_key_fails_before_any_request(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    async with PolygonProvider(fast_config(api_key=None)) as provider:
        with pytest.raises(ProviderError, match="polygon: no HTTP response: api_key is required"):
            await collect(provider, "AAPL", "M1", T0, END)
    assert replay.seen() == []


async def test_lists_reference_tickers_across_pages(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    first = {
        "results": [
            {
                "ticker": "AAPL",
                "name": "Apple Inc.",
                "market": "stocks",
                "locale": "us",
                "primary_exchange": "XNAS",
                "type": "CS",
                "active": True,
                "currency_name": "usd",
            }
        ],
        "status": "OK",
        "count": 1,
        "next_url": f"https://api.polygon.io{TICKERS}?cursor=page2",
    }
    second = {
        "results": [{"ticker": "X:BTCUSD", "name": "Bitcoin", "market": "crypto"}],
        "status": "OK",
        "count": 1,
    }
    replay.queue(TICKERS, Reply(first), Reply(second))
    async with PolygonProvider(fast_config()) as provider:
        listings = await provider.list_symbols()

    assert [(s.ticker, s.exchange, s.asset_class, s.currency, s.timezone) for s in listings] == [
        ("AAPL", "XNAS", "equity", "USD", "America/New_York"),
        ("X:BTCUSD", "", "crypto", "", "UTC"),
    ]
    seen = replay.seen(TICKERS)
    assert seen[0].query == {
        "market": "stocks",
        "active": "true",
        "limit": "1000",
        "apiKey": "test-key-id",
    }
    assert seen[1].query == {"cursor": "page2", "apiKey": "test-key-id"}


def test_defaults_are_the_documented_public_host_and_free_tier_rate() -> None:
    provider = PolygonProvider()
    assert provider.config.base_url == "https://api.polygon.io"
    assert provider.config.requests_per_minute == 5
