"""Provider ingest against a local Binance-shaped server: incremental fetches, symbols, jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from procrastinate.jobs import Job

from core.jobs import enqueue_ingest, list_jobs
from core.settings import Settings
from tests.providers.support import ReplayServer, Reply, Seen
from workers.provider_ingest import ingest_provider_bars, provider_config, sync_symbols
from workers.providers import ProviderError, get_provider
from workers.queue import create_app
from workers.retry import BackoffWithJitter
from workers.validation import NotOhlcvError

KLINES = "/api/v3/klines"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
T0_MS = 1_709_251_200_000


class Market:
    """A minute-bar history the fake Binance serves; bars can be added and revised."""

    def __init__(self, count: int) -> None:
        self.closes = {T0_MS + i * 60_000: 100.0 + i for i in range(count)}

    def handle(self, request: Seen) -> Reply:
        q = request.query
        if q["symbol"] != "BTCUSDT":
            return Reply({"code": -1121, "msg": "Invalid symbol."}, status=400)
        lo, hi, limit = int(q["startTime"]), int(q["endTime"]), int(q["limit"])
        rows = [self.kline(t) for t in sorted(self.closes) if lo <= t <= hi][:limit]
        return Reply(rows)

    def kline(self, open_ms: int) -> list[Any]:
        c = self.closes[open_ms]
        return [open_ms, f"{c}", f"{c + 2}", f"{c - 2}", f"{c}", "3.5", open_ms + 59_999]


def settings_for(fresh: Settings, replay: ReplayServer, **overrides: Any) -> Settings:
    return fresh.model_copy(update={"binance_base_url": replay.base_url, **overrides})


async def stored_closes(conn: asyncpg.Connection) -> dict[datetime, float]:
    rows = await conn.fetch(
        "SELECT b.ts, b.close FROM bars b JOIN symbols s ON s.id = b.symbol_id "
        "WHERE s.ticker = 'BTCUSDT' AND b.timeframe = 'M1'"
    )
    return {r["ts"]: r["close"] for r in rows}


@pytest.fixture
def replay(replay_server: ReplayServer) -> ReplayServer:
    replay_server.reset()
    return replay_server


async def test_incremental_fetch_starts_just_before_the_newest_bar_and_takes_revisions(
    conn: asyncpg.Connection, fresh: Settings, replay: ReplayServer
) -> None:
    market = Market(2_500)
    replay.route(KLINES, market.handle)
    settings = settings_for(fresh, replay)
    async with get_provider("binance", provider_config(settings, "binance")) as client:
        first = await ingest_provider_bars(
            conn,
            client,
            "btcusdt",
            "M1",
            start=T0,
            end=T0 + timedelta(minutes=2_499),
            batch_rows=1_000,
        )
        assert (first.rows_fetched, first.rows_written) == (2_500, 2_500)

        market.closes.update({T0_MS + i * 60_000: 100.0 + i for i in range(2_500, 2_600)})
        market.closes[T0_MS + 2_499 * 60_000] = 5_000.0  # the last stored bar was revised
        replay.requests.clear()
        second = await ingest_provider_bars(
            conn, client, "BTCUSDT", "M1", end=T0 + timedelta(minutes=2_599), overlap_bars=3
        )

    assert int(replay.seen(KLINES)[0].query["startTime"]) == T0_MS + 2_496 * 60_000
    assert second.start == T0 + timedelta(minutes=2_496)
    assert (second.rows_fetched, second.rows_written) == (104, 101)
    closes = await stored_closes(conn)
    assert len(closes) == 2_600
    assert closes[T0 + timedelta(minutes=2_499)] == 5_000.0
    assert await conn.fetchval("SELECT count(*) FROM symbols") == 1


async def test_listed_symbols_are_created_once_and_updated(
    conn: asyncpg.Connection, fresh: Settings, replay: ReplayServer
) -> None:
    def listing(name: str) -> Reply:
        symbol = {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC"}
        halted = {"symbol": "OLDUSDT", "status": "BREAK", "baseAsset": "OLD", "quoteAsset": "X"}
        return Reply({"symbols": [{**symbol, "quoteAsset": name}, halted]})

    replay.queue("/api/v3/exchangeInfo", listing("USDT"), listing("USDC"))
    replay.route(KLINES, Market(10).handle)
    settings = settings_for(fresh, replay)
    async with get_provider("binance", provider_config(settings, "binance")) as client:
        assert await sync_symbols(conn, client) == 1
        await ingest_provider_bars(
            conn, client, "BTCUSDT", "M1", start=T0, end=T0 + timedelta(minutes=9)
        )
        assert await sync_symbols(conn, client) == 1
    rows = await conn.fetch("SELECT ticker, name, exchange, currency, asset_class FROM symbols")
    assert [tuple(r) for r in rows] == [("BTCUSDT", "BTC/USDC", "BINANCE", "USDC", "crypto")]


async def test_a_job_runs_on_a_worker_and_its_record_is_listed(
    conn: asyncpg.Connection, fresh: Settings, replay: ReplayServer
) -> None:
    replay.route(KLINES, Market(1_500).handle)
    settings = settings_for(fresh, replay, ingest_batch_rows=400)
    good = await enqueue_ingest(
        settings, "Binance", ["btcusdt"], "m1", T0, T0 + timedelta(minutes=1_499)
    )
    bad = await enqueue_ingest(settings, "binance", ["NOPE"], "M1", T0, T0 + timedelta(hours=1))

    app = create_app(settings)
    async with app.open_async():
        await app.run_worker_async(
            wait=False, additional_context={"settings": settings}, install_signal_handlers=False
        )

    jobs = {j.id: j for j in await list_jobs(conn, None, 10, None)}
    assert set(jobs) == {good, bad}
    ok = jobs[good]
    assert (ok.task, ok.status, ok.attempts, ok.rows_written, ok.rows_rejected) == (
        "ingest:ingest_provider",
        "succeeded",
        1,
        1_500,
        0,
    )
    assert ok.args["tickers"] == ["BTCUSDT"] and ok.args["timeframe"] == "M1"
    assert ok.queued_at and ok.started_at and ok.finished_at
    assert ok.queued_at <= ok.started_at <= ok.finished_at
    failed = jobs[bad]
    # A 400 is not worth retrying: the job fails at once, with the provider's reason.
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.error is not None and "Invalid symbol" in failed.error
    assert [j.id for j in await list_jobs(conn, "FAILED", 10, None)] == [bad]
    assert [j.id for j in await list_jobs(conn, None, 1, bad + 1)] == [bad]
    assert await list_jobs(conn, None, 10, min(good, bad)) == []
    with pytest.raises(ValueError, match="unknown job status"):
        await list_jobs(conn, "lost", 10, None)


async def test_enqueue_refuses_bad_arguments(fresh: Settings) -> None:
    with pytest.raises(ValueError, match="unknown provider"):
        await enqueue_ingest(fresh, "yahoo", ["AAPL"], "D1", None, None)
    with pytest.raises(ValueError, match="unknown timeframe"):
        await enqueue_ingest(fresh, "binance", ["BTCUSDT"], "1m", None, None)
    with pytest.raises(ValueError, match="ticker"):
        await enqueue_ingest(fresh, "binance", [" "], "M1", None, None)
    with pytest.raises(ValueError, match="time zone"):
        await enqueue_ingest(fresh, "binance", ["BTCUSDT"], "M1", datetime(2024, 1, 1), None)


def test_retries_back_off_exponentially_with_jitter_and_skip_permanent_errors() -> None:
    strategy = BackoffWithJitter(max_attempts=4, base_seconds=2.0, max_seconds=10.0)
    for attempts, (low, high) in enumerate([(1, 2), (2, 4), (4, 8), (5, 10), (5, 10)]):
        delays = {strategy.delay(attempts) for _ in range(200)}
        assert low <= min(delays) and max(delays) <= high
        assert len(delays) > 100  # jittered, not a fixed schedule

    def job(attempts: int) -> Job:
        return Job(id=1, queue="default", lock=None, queueing_lock=None, task_name="t",
                   attempts=attempts)  # fmt: skip

    outage = ProviderError("binance", 503, "unavailable", transient=True)
    assert strategy.get_retry_decision(exception=outage, job=job(0)) is not None
    assert strategy.get_retry_decision(exception=outage, job=job(3)) is None  # 4th attempt
    assert strategy.get_retry_decision(exception=ConnectionError(), job=job(1)) is not None
    for permanent in (
        ProviderError("binance", 400, "Invalid symbol."),
        NotOhlcvError("not an OHLCV table"),
        FileNotFoundError("gone.csv"),
    ):
        assert strategy.get_retry_decision(exception=permanent, job=job(0)) is None
