"""Retries, timeouts, Retry-After and rate limiting, through real providers and HTTP."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.providers.support import ReplayServer, Reply, collect
from workers.providers import (
    AlpacaProvider,
    BinanceProvider,
    PolygonProvider,
    ProviderConfig,
    ProviderError,
)
from workers.providers.transport import backoff_seconds, parse_retry_after

KLINES = "/api/v3/klines"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
T0_MS = 1_709_251_200_000
ONE_BAR = [[T0_MS, "10", "11", "9", "10.5", "3", T0_MS + 59_999, "31", 4, "1", "10", "0"]]


async def one_bar(config: ProviderConfig) -> float:
    """Fetch the single scripted Binance bar and return its close."""
    async with BinanceProvider(config) as provider:
        (page,) = await collect(provider, "BTCUSDT", "M1", T0, T0)
    return float(page["close"].iloc[0])


async def test_429_with_retry_after_seconds_waits_then_succeeds(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(
        KLINES,
        Reply({"code": -1003, "msg": "Too many requests"}, 429, headers={"Retry-After": "1"}),
        Reply(ONE_BAR),
    )
    assert await one_bar(fast_config()) == 10.5
    first, second = replay.seen(KLINES)
    # Backoff alone would be ~0.01 s here: only Retry-After explains a one-second pause.
    assert second.at - first.at >= 0.95


async def test_429_with_retry_after_http_date_waits_until_then(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    replay.queue(
        "/v2/stocks/AAPL/bars",
        Reply({"message": "too many requests."}, 429, headers={"Retry-After": when}),
        Reply({"bars": [{"t": "2024-03-01T00:00:00Z", "o": 1, "h": 2, "l": 1, "c": 2, "v": 9}]}),
    )
    async with AlpacaProvider(fast_config()) as provider:
        (page,) = await collect(provider, "AAPL", "M1", T0, T0)
    assert page["volume"].tolist() == [9.0]
    first, second = replay.seen("/v2/stocks/AAPL/bars")
    # The date has one-second resolution, so the pause is between one and two seconds.
    assert 0.9 <= second.at - first.at <= 3.0


async def test_500_then_success_is_retried_with_backoff(
    replay: ReplayServer,
    fast_config: Callable[..., ProviderConfig],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="workers.providers.transport")
    replay.queue(KLINES, Reply(body="upstream exploded", status=500), Reply(ONE_BAR))
    config = fast_config(backoff_initial_seconds=0.2, backoff_max_seconds=0.5)
    assert await one_bar(config) == 10.5
    first, second = replay.seen(KLINES)
    # Equal jitter: at least half the 0.2 s first step.
    assert second.at - first.at >= 0.09
    (record,) = caplog.records
    assert "binance: HTTP 500" in record.getMessage()
    assert "attempt 1 of 3, retrying in" in record.getMessage()


async def test_timeout_then_success_is_retried(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(KLINES, Reply(ONE_BAR, delay=1.5), Reply(ONE_BAR))
    started = time.monotonic()
    assert await one_bar(fast_config(timeout_seconds=0.3)) == 10.5
    assert len(replay.seen(KLINES)) == 2
    # The client gave up on the slow answer instead of waiting it out.
    assert time.monotonic() - started < 1.4


async def test_timeouts_until_exhausted_say_so(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(KLINES, *[Reply(ONE_BAR, delay=0.6)] * 2)
    with pytest.raises(ProviderError) as info:
        await one_bar(fast_config(timeout_seconds=0.2, max_attempts=2))
    assert "gave up after 2 attempts" in str(info.value)
    assert "timed out after 0.2 s" in str(info.value)
    assert info.value.status is None and info.value.transient


async def test_exhausted_retries_raise_after_max_attempts(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.queue(KLINES, *[Reply(body="maintenance", status=503)] * 6)
    with pytest.raises(ProviderError) as info:
        await one_bar(fast_config(max_attempts=4))
    error = info.value
    assert len(replay.seen(KLINES)) == 4
    assert error.provider == "binance" and error.status == 503 and error.transient
    assert str(error).startswith("binance: HTTP 503: gave up after 4 attempts")
    assert "maintenance" in str(error)


async def test_connection_refused_is_retried_then_reported(
    fast_config: Callable[..., ProviderConfig],
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = fast_config(base_url=f"http://127.0.0.1:{port}", max_attempts=3)
    with pytest.raises(ProviderError, match=r"gave up after 3 attempts; last: connection failed"):
        await one_bar(config)


async def test_retry_after_beyond_the_cap_fails_at_once_as_transient(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    banned = Reply({"msg": "banned"}, 418, headers={"Retry-After": "7200"})
    replay.queue(KLINES, banned, Reply(ONE_BAR))
    with pytest.raises(ProviderError) as info:
        await one_bar(fast_config(max_retry_after_seconds=60))
    assert info.value.status == 418 and info.value.transient
    assert "retry after 7200 s" in str(info.value)
    assert len(replay.seen(KLINES)) == 1


async def test_rate_limiter_spaces_requests(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    replay.route(KLINES, lambda request: Reply(ONE_BAR))
    config = fast_config(requests_per_minute=600)  # one request per 0.1 s
    async with BinanceProvider(config) as provider:
        await asyncio.gather(*(collect(provider, "BTCUSDT", "M1", T0, T0) for _ in range(6)))
    arrivals = sorted(r.at for r in replay.seen(KLINES))
    assert len(arrivals) == 6
    # Five gaps of 0.1 s; the span (not each gap) is checked because a loaded machine can
    # delay one request in transit and bunch it with the next. Unlimited, it is ~10 ms.
    span = arrivals[-1] - arrivals[0]
    assert span >= 0.4, [round(b - a, 3) for a, b in itertools.pairwise(arrivals)]


async def test_clients_of_one_account_share_a_limiter(
    replay: ReplayServer, fast_config: Callable[..., ProviderConfig]
) -> None:
    # Two jobs in one worker, same key: together they must stay under the account's quota.
    path = "/v2/aggs/ticker/AAPL/range/1/minute/1709251200000/1709251200000"
    replay.route(path, lambda request: Reply({"status": "OK", "resultsCount": 0}))
    config = fast_config(requests_per_minute=300, api_key="shared-key")  # one per 0.2 s
    first, second = PolygonProvider(config), PolygonProvider(config)
    async with first, second:
        await asyncio.gather(*(collect(p, "AAPL", "M1", T0, T0) for p in (first, second, first)))
    arrivals = sorted(r.at for r in replay.seen(path))
    assert len(arrivals) == 3
    # Shared: two 0.2 s gaps. Separate limiters would let the second client go at once.
    assert arrivals[2] - arrivals[0] >= 0.3


def test_parse_retry_after_forms() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 3 ", now) == 3.0
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now) == 0.0  # already past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    for attempt, step in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (2000, 5.0)]:
        waits = [backoff_seconds(attempt, 0.5, 5.0) for _ in range(200)]
        assert all(step / 2 <= w <= step for w in waits), (attempt, min(waits), max(waits))
        assert len(set(waits)) > 1  # jittered, so workers that failed together spread out
