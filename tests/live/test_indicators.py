"""Live indicators (issue 19, item 4): every value `indicatorUpdates` pushes equals the batch
computation over the same stored bars, for every indicator of the registry; revisions
recompute from the revised bar; two API processes push the same values; bad arguments are
GraphQL errors naming `indicators`.

The symbols are made here on the NYSE calendar (XNYS). Their bars lie in the regular session
of December 2024 (New York = UTC-5: 14:30-21:00 UTC), so the default subscription (regular
hours, session-aligned buckets) has five-minute buckets on the UTC grid, and the reference
below can resample with plain floor division.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from graphql_api.app import create_app
from graphql_api.types.indicators import graphql_field_name
from indicators import INDICATORS
from tests.conftest import migrated_settings
from tests.live.conftest import LiveEnv
from tests.live.support import ApiProcess, GqlWs, eventually, thread_server, write_bars
from workers.upsert import upsert_bars

UPDATES = """
subscription Ind($tickers: [String!]!, $interval: Interval!, $indicators: [LiveIndicator!]!,
                 $since: DateTime) {
  indicatorUpdates(tickers: $tickers, interval: $interval, indicators: $indicators,
                   since: $since) {
    ticker interval time closed version replayed recomputedFrom
    values { label indicator output value }
  }
}
"""
MONDAY = datetime(2024, 12, 9, 14, 30, tzinfo=UTC)  # the session open
TUESDAY = datetime(2024, 12, 10, 14, 30, tzinfo=UTC)
SESSION_MINUTES = 390
FIVE = 5 * 60 * 1_000_000  # microseconds


def _params(name: str) -> dict[str, Any]:
    """Parameters for `name`: the defaults, and the replayed day's open as the anchor."""
    return {"anchor": TUESDAY.isoformat()} if name == "ANCHORED_VWAP" else {}


def every_indicator() -> list[dict[str, Any]]:
    """Every indicator of the registry at its defaults, as `indicators` items."""
    return [{"name": name, "params": _params(name)} for name in INDICATORS]


class Minutes:
    """The one-minute bars of one symbol as written, and the five-minute bars made of them."""

    def __init__(self, symbol_id: int, seed: int) -> None:
        self.symbol_id = symbol_id
        self.rng = np.random.default_rng(seed)
        self.price = 100.0
        self.rows: dict[datetime, tuple[float, float, float, float, float]] = {}

    def bar(self, ts: datetime) -> tuple[object, ...]:
        """A random walk's next minute (kept), as a BAR_COLUMNS record."""
        o = self.price
        c = max(1.0, o + float(self.rng.normal(0.0, 0.4)))
        h = max(o, c) + float(self.rng.uniform(0.0, 0.3))
        lo = min(o, c) - float(self.rng.uniform(0.0, 0.3))
        v = float(self.rng.integers(100, 5_000))
        self.price = c
        return self.record(ts, (o, h, lo, c, v))

    def record(
        self, ts: datetime, ohlcv: tuple[float, float, float, float, float]
    ) -> tuple[object, ...]:
        self.rows[ts] = ohlcv
        return (self.symbol_id, "M1", ts, *ohlcv)

    def five_minute(self) -> dict[str, np.ndarray]:
        """The five-minute bars of what was written (first/max/min/last/sum), oldest first."""
        ts = sorted(self.rows)
        micros = np.array([int(t.timestamp() * 1_000_000) for t in ts], dtype=np.int64)
        values = np.array([self.rows[t] for t in ts])
        buckets = micros // FIVE * FIVE
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        ends = np.r_[starts[1:], len(ts)]
        return {
            "time": buckets[starts],
            "open": values[starts, 0],
            "high": np.maximum.reduceat(values[:, 1], starts),
            "low": np.minimum.reduceat(values[:, 2], starts),
            "close": values[ends - 1, 3],
            "volume": np.add.reduceat(values[:, 4], starts),
        }


def reference(bars: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """An indicator over the whole history (the value `Symbol.indicators` promises)."""
    spec = INDICATORS[name]
    params = {"anchor": TUESDAY} if name == "ANCHORED_VWAP" else {}
    data = {**bars, "time": bars["time"] // 1000}
    return spec.compute(data, params)


def public_outputs(name: str) -> dict[str, str]:
    """GraphQL output name -> registry output name."""
    spec = INDICATORS[name]
    if spec.output_fields:
        return {public: output for output, public, _ in spec.output_fields}
    return {o: o for o in spec.outputs}


def assert_matches(update: dict[str, Any], bars: dict[str, np.ndarray]) -> int:
    """Every value of a pushed update equals the whole-history computation at its bar, with
    the indicator tests' tolerance and the same nulls; the number of values compared."""
    micros = int(datetime.fromisoformat(update["time"]).timestamp() * 1_000_000)
    (at,) = np.flatnonzero(bars["time"] == micros)
    cache: dict[str, dict[str, np.ndarray]] = {}
    for item in update["values"]:
        name = item["indicator"]
        ref = cache.setdefault(name, reference(bars, name))
        series = ref[public_outputs(name)[item["output"]]]
        want = series[at]
        label = f"{name}.{item['output']} at {update['time']}"
        if np.isnan(want):
            assert item["value"] is None, label
            continue
        assert item["value"] is not None, label
        tol = 1e-12 + 1e-9 * float(np.nanmax(np.abs(series)))
        assert abs(item["value"] - want) <= tol, (label, item["value"], want)
    return len(update["values"])


class Writer:
    """One connection writing batches as a worker does (a connection per batch costs more
    than the rest of a step)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def write(self, records: list[tuple[object, ...]]) -> int:
        """Write one batch in one transaction; its new version."""
        changes = await upsert_bars(self.conn, records, source="test")
        return max(c.id for c in changes)


async def new_symbol(dsn: str, ticker: str, calendar: str = "XNYS") -> int:
    """A symbol of our own (on the NYSE calendar unless told)."""
    conn = await asyncpg.connect(dsn)
    try:
        sid: int = await conn.fetchval(
            "INSERT INTO symbols (ticker, name, exchange, asset_class, currency, timezone, "
            "calendar) VALUES ($1, $2, 'NYSE', 'equity', 'USD', 'America/New_York', $3) "
            "RETURNING id",
            ticker,
            ticker,
            calendar,
        )
    finally:
        await conn.close()
    return sid


def session(day_open: datetime, count: int = SESSION_MINUTES) -> Iterator[datetime]:
    for i in range(count):
        yield day_open + timedelta(minutes=i)


async def next_update(client: GqlWs, op_id: str, wait: float = 20.0) -> dict[str, Any]:
    message = await client.next(op_id, wait)
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    update: dict[str, Any] = message["payload"]["data"]["indicatorUpdates"]
    return update


@dataclass(frozen=True)
class InProcess:
    """An API served in a thread of this process (its hub inspectable)."""

    url: str
    app: Any


@pytest.fixture(scope="module")
def served(live_env: LiveEnv) -> Iterator[InProcess]:
    """The API in a thread of this process, with the Redis fan-out as in production."""
    assert live_env.settings.database_url is not None
    settings = migrated_settings(
        live_env.settings.database_url,
        redis_url=live_env.redis_url,
        live_indicator_max_bars=500,
        live_max_replay_bars=500,
    )
    app = create_app(settings)
    with thread_server(app) as url:
        yield InProcess(url, app)


@pytest.fixture
def in_process(served: InProcess) -> str:
    """The WebSocket URL of `served`."""
    return served.url


async def test_a_replayed_session_pushes_the_batch_values_of_every_indicator(
    in_process: str, live_env: LiveEnv
) -> None:
    sid = await new_symbol(live_env.dsn, "LIVEIND")
    minutes = Minutes(sid, seed=19)
    # Monday's session as history, in one batch: the warm-up the live state starts from.
    await write_bars(live_env.dsn, [minutes.bar(t) for t in session(MONDAY)])
    client = await GqlWs.open(in_process)
    writer = Writer(await asyncpg.connect(live_env.dsn))
    try:
        variables = {"tickers": ["liveind"], "interval": "M5", "indicators": every_indicator()}
        await client.subscribe("1", UPDATES, variables)
        first = await next_update(client, "1", wait=60)
        assert first["replayed"] is True and first["closed"] is True
        assert first["time"] == (MONDAY + timedelta(minutes=385)).isoformat()
        compared = assert_matches(first, minutes.five_minute())
        forming = closing = 0
        # Tuesday, minute by minute; every seventh minute first arrives unfinished and is
        # then revised (a provider's forming one-minute bar).
        for i, ts in enumerate(session(TUESDAY)):
            records = [minutes.bar(ts)]
            if i % 7 == 3:
                o, h, lo, c, v = minutes.rows[ts]
                mid = (o + c) / 2
                partial = minutes.record(ts, (o, max(o, mid), min(o, mid), mid, v / 2))
                version = await writer.write([partial])
                update = await next_update(client, "1")
                assert update["version"] == version and update["closed"] is (i % 5 == 4)
                compared += assert_matches(update, minutes.five_minute())
                records = [minutes.record(ts, (o, h, lo, c, v))]
            version = await writer.write(records)
            update = await next_update(client, "1")
            assert update["version"] == version
            assert update["replayed"] is False and update["recomputedFrom"] is None
            assert (
                update["time"]
                == datetime.fromtimestamp(int(ts.timestamp()) // 300 * 300, UTC).isoformat()
            )
            assert update["closed"] is (i % 5 == 4)
            closing += update["closed"]
            forming += not update["closed"]
            compared += assert_matches(update, minutes.five_minute())
        assert closing == SESSION_MINUTES // 5 and forming == SESSION_MINUTES - closing
        outputs = sum(len(public_outputs(name)) for name in INDICATORS)
        assert compared == (1 + SESSION_MINUTES + len(range(3, SESSION_MINUTES, 7))) * outputs
        assert await client.quiet("1", 0.3) == []
    finally:
        await client.close()
        await writer.conn.close()
    # The closed values of the day equal what `Symbol.indicators` answers over HTTP.
    await assert_batch_equals_final(in_process, minutes)


async def assert_batch_equals_final(ws_url: str, minutes: Minutes) -> None:
    url = ws_url.replace("ws://", "http://")
    fields = []
    for name, spec in INDICATORS.items():
        args = f'(anchor: "{TUESDAY.isoformat()}")' if name == "ANCHORED_VWAP" else ""
        outputs = " ".join(public_outputs(name))
        fields.append(f"{graphql_field_name(spec)}{args} {{ {outputs} }}")
    query = (
        '{ symbol(ticker: "LIVEIND") { indicators(interval: M5, '
        f'from: "{TUESDAY.isoformat()}", to: "{(TUESDAY + timedelta(hours=7)).isoformat()}") '
        f"{{ time {' '.join(fields)} }} }} }}"
    )
    async with httpx.AsyncClient(timeout=60) as http:
        body = (await http.post(url, json={"query": query})).json()
    assert "errors" not in body, body
    got = body["data"]["symbol"]["indicators"]
    bars = minutes.five_minute()
    times = got["time"]
    assert len(times) == SESSION_MINUTES // 5
    for name, spec in INDICATORS.items():
        ref = reference(bars, name)
        for public, output in public_outputs(name).items():
            column = got[graphql_field_name(spec)][public]
            series = ref[output][-len(times) :]
            tol = 1e-12 + 1e-9 * float(np.nanmax(np.abs(ref[output])))
            for value, want in zip(column, series, strict=True):
                assert (value is None) == bool(np.isnan(want)), name
                if value is not None:
                    assert abs(value - want) <= tol, (name, public, value, want)


async def test_a_revision_recomputes_from_the_revised_bar_and_says_so(
    in_process: str, live_env: LiveEnv
) -> None:
    sid = await new_symbol(live_env.dsn, "LIVEREV")
    minutes = Minutes(sid, seed=7)
    await write_bars(live_env.dsn, [minutes.bar(t) for t in session(MONDAY)])
    client = await GqlWs.open(in_process)
    writer = Writer(await asyncpg.connect(live_env.dsn))
    windowed = [{"name": n} for n in ("SMA", "BBANDS", "WILLR", "MIDPRICE", "ICHIMOKU")]
    try:
        await client.subscribe(
            "all",
            UPDATES,
            {"tickers": ["LIVEREV"], "interval": "M5", "indicators": every_indicator()},
        )
        await client.subscribe(
            "m1", UPDATES, {"tickers": ["LIVEREV"], "interval": "M1", "indicators": windowed}
        )
        for op in ("all", "m1"):
            assert (await next_update(client, op, wait=60))["replayed"] is True
        # A new bar: the M1 group drops what its windows no longer need.
        await writer.write([minutes.bar(TUESDAY)])
        for op in ("all", "m1"):
            assert (await next_update(client, op))["recomputedFrom"] is None

        # A correction of Monday 20:31 (the 20:30 bucket, six buckets before the newest).
        fixed = MONDAY + timedelta(minutes=361)
        o, h, lo, c, v = minutes.rows[fixed]
        version = await writer.write([minutes.record(fixed, (o, h + 2.0, lo, c + 1.5, v * 3))])
        bucket = MONDAY + timedelta(minutes=360)
        want = [bucket + timedelta(minutes=5 * k) for k in range(6)] + [TUESDAY]
        updates = [await next_update(client, "all") for _ in want]
        assert [u["time"] for u in updates] == [t.isoformat() for t in want]
        bars = minutes.five_minute()
        for u in updates:
            assert u["recomputedFrom"] == bucket.isoformat() and u["version"] == version
            assert_matches(u, bars)
        # At one minute: that bar and every later one, recomputed from a history re-read
        # (the bars before it were dropped).
        want = [t for t in sorted(minutes.rows) if t >= fixed]
        updates = [await next_update(client, "m1") for _ in want]
        assert [u["time"] for u in updates] == [t.isoformat() for t in want]
        ones = one_minute(minutes)
        for u in updates:
            assert u["recomputedFrom"] == fixed.isoformat() and u["version"] == version
            assert_matches(u, ones)

        # An older correction, before what the M1 group keeps: re-read, recomputed from it.
        early = MONDAY + timedelta(minutes=40)
        o, h, lo, c, v = minutes.rows[early]
        await writer.write([minutes.record(early, (o, h, lo - 1.0, c - 0.5, v))])
        updates = [await next_update(client, "m1") for t in minutes.rows if t >= early]
        assert {u["recomputedFrom"] for u in updates} == {early.isoformat()}
        ones = one_minute(minutes)
        for u in updates:
            assert_matches(u, ones)
        assert await client.quiet("m1", 0.3) == []
    finally:
        await client.close()
        await writer.conn.close()


def one_minute(minutes: Minutes) -> dict[str, np.ndarray]:
    """The one-minute bars as written, oldest first."""
    ts = sorted(minutes.rows)
    values = np.array([minutes.rows[t] for t in ts])
    out = {name: values[:, i] for i, name in enumerate(("open", "high", "low", "close", "volume"))}
    return {"time": np.array([int(t.timestamp() * 1_000_000) for t in ts]), **out}


async def test_two_processes_serve_the_same_subscription_with_the_same_values(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    sid = await new_symbol(live_env.dsn, "LIVE2P")
    minutes = Minutes(sid, seed=2)
    await write_bars(live_env.dsn, [minutes.bar(t) for t in session(MONDAY)])
    clients = [await GqlWs.open(api.ws_url) for api in api_pair]
    writer = Writer(await asyncpg.connect(live_env.dsn))
    indicators = [{"name": n} for n in ("EMA", "MACD", "RSI", "OBV", "SAR", "VWAP", "KELTNER")]
    variables = {"tickers": ["LIVE2P"], "interval": "M5", "indicators": indicators}
    try:
        for c in clients:
            await c.subscribe("1", UPDATES, variables)
        snapshots = [await next_update(c, "1", wait=90) for c in clients]
        assert snapshots[0] == snapshots[1]
        for ts in session(TUESDAY, 12):
            version = await writer.write([minutes.bar(ts)])
            got = [await next_update(c, "1") for c in clients]
            assert got[0] == got[1]
            assert got[0]["version"] == version and got[0]["ticker"] == "LIVE2P"
            assert assert_matches(got[0], minutes.five_minute()) == 11  # outputs
    finally:
        for c in clients:
            await c.close()
        await writer.conn.close()


async def first_errors(
    client: GqlWs, op_id: str, variables: dict[str, Any]
) -> list[dict[str, Any]]:
    """The errors an indicatorUpdates subscription ends with."""
    await client.subscribe(op_id, UPDATES, variables)
    message = await client.next(op_id)
    payload = message["payload"]
    errors: list[dict[str, Any]] = payload if isinstance(payload, list) else payload["errors"]
    return errors


@pytest.mark.parametrize(
    ("indicators", "words"),
    [
        ([{"name": "RSI", "params": {"perod": 14}}], ["indicators[0] (RSI)", "'perod'", "period"]),
        ([{"name": "RSI", "params": {"period": 0}}], ["indicators[0] (RSI)", "period must be"]),
        (
            [{"name": "SMA"}, {"name": "MACD", "params": {"fast": 30, "slow": 10}}],
            ["indicators[1]"],
        ),
        ([{"name": "VWAP", "params": {"anchor": "WEEKLY"}}], ["anchor must be one of"]),
        ([{"name": "ANCHORED_VWAP"}], ["anchor is required"]),
        ([{"name": "ANCHORED_VWAP", "params": {"anchor": "yesterday"}}], ["anchor"]),
        ([{"name": "EMA", "params": 5}], ["`params` must be an object"]),
        ([{"name": "EMA"}, {"name": "EMA", "params": {"period": 9}}], ["label 'ema'"]),
        ([{"name": "SMA", "label": f"s{i}"} for i in range(61)], ["at most 60 indicators"]),
        ([], ["at least one indicator"]),
        ([{"name": "OBV"}], ["LIVE_INDICATOR_MAX_BARS"]),  # 780 bars of history > 500
    ],
)
async def test_bad_arguments_are_errors_naming_indicators(
    in_process: str, live_env: LiveEnv, indicators: list[dict[str, Any]], words: list[str]
) -> None:
    await ensure_symbol(live_env)
    client = await GqlWs.open(in_process)
    try:
        variables = {"tickers": ["LIVEERR"], "interval": "M1", "indicators": indicators}
        (error,) = await first_errors(client, "1", variables)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert error["extensions"]["argument"] == "indicators", error
        for word in words:
            assert word in error["message"], (word, error)
    finally:
        await client.close()


async def test_an_unknown_indicator_is_a_validation_error(in_process: str) -> None:
    client = await GqlWs.open(in_process)
    try:
        variables = {"tickers": ["ACME"], "interval": "M1", "indicators": [{"name": "NOPE"}]}
        (error,) = await first_errors(client, "1", variables)
        assert "NOPE" in error["message"] and "IndicatorName" in error["message"], error
    finally:
        await client.close()


_ERR_SYMBOL: list[int] = []


async def ensure_symbol(live_env: LiveEnv) -> None:
    """LIVEERR, with two sessions of minute bars (made once)."""
    if _ERR_SYMBOL:
        return
    sid = await new_symbol(live_env.dsn, "LIVEERR")
    minutes = Minutes(sid, seed=3)
    days = [*session(MONDAY), *session(TUESDAY)]
    await write_bars(live_env.dsn, [minutes.bar(t) for t in days])
    _ERR_SYMBOL.append(sid)


async def test_subscribers_of_a_symbol_and_interval_share_one_state_that_ends_with_them(
    served: InProcess, live_env: LiveEnv
) -> None:
    sid = await new_symbol(live_env.dsn, "LIVESHR")
    minutes = Minutes(sid, seed=5)
    await write_bars(live_env.dsn, [minutes.bar(t) for t in session(MONDAY, 60)])
    hub = served.app.state.services.live
    clients = [await GqlWs.open(served.url) for _ in range(3)]
    try:
        sets = ([{"name": "EMA"}, {"name": "RSI"}], [{"name": "RSI"}], [{"name": "SMA"}])
        for c, indicators in zip(clients, sets, strict=True):
            variables = {"tickers": ["LIVESHR"], "interval": "M5", "indicators": indicators}
            await c.subscribe("1", UPDATES, variables)
            await next_update(c, "1", wait=60)
        (group,) = [g for (s, _), g in hub.indicator_groups.items() if s == sid]
        assert len(group.subscribers) == 3
        assert {k[0]: n for k, n in group.specs.items()} == {"EMA": 1, "RSI": 2, "SMA": 1}
        version = await write_bars(live_env.dsn, [minutes.bar(MONDAY + timedelta(minutes=60))])
        got = [await next_update(c, "1") for c in clients]
        assert {u["version"] for u in got} == {version}
        rsi = [[v["value"] for v in u["values"] if v["indicator"] == "RSI"] for u in got[:2]]
        assert rsi[0] == rsi[1]
        await clients[0].complete("1")
        await clients[1].complete("1")

        async def only_sma() -> bool:
            return {k[0] for k in group.specs} == {"SMA"}

        assert await eventually(only_sma)
        await clients[2].complete("1")

        async def gone() -> bool:
            return not any(s == sid for s, _ in hub.indicator_groups) and not any(
                s == sid for s, _ in hub.groups
            )

        assert await eventually(gone)
    finally:
        for c in clients:
            await c.close()


async def test_since_sends_the_values_from_that_bar_then_goes_live(
    in_process: str, live_env: LiveEnv
) -> None:
    sid = await new_symbol(live_env.dsn, "LIVESNC")
    minutes = Minutes(sid, seed=11)
    await write_bars(live_env.dsn, [minutes.bar(t) for t in session(MONDAY)])
    client = await GqlWs.open(in_process)
    try:
        since = MONDAY + timedelta(hours=6, minutes=2)  # inside the 20:30 bucket
        variables = {
            "tickers": ["LIVESNC"],
            "interval": "M5",
            "indicators": every_indicator(),
            "since": since.isoformat(),
        }
        await client.subscribe("1", UPDATES, variables)
        replayed = [await next_update(client, "1", wait=60) for _ in range(6)]
        want = [MONDAY + timedelta(hours=6, minutes=5 * k) for k in range(6)]
        assert [u["time"] for u in replayed] == [t.isoformat() for t in want]
        bars = minutes.five_minute()
        for u in replayed:
            assert u["replayed"] is True and u["recomputedFrom"] is None
            assert_matches(u, bars)
        version = await write_bars(live_env.dsn, [minutes.bar(TUESDAY)])
        live = await next_update(client, "1")
        assert live["replayed"] is False and live["version"] == version
        assert live["time"] == TUESDAY.isoformat()
        assert_matches(live, minutes.five_minute())
        assert await client.quiet("1", 0.3) == []
    finally:
        await client.close()


async def test_a_since_too_far_back_is_refused(in_process: str, live_env: LiveEnv) -> None:
    await ensure_symbol(live_env)
    client = await GqlWs.open(in_process)
    try:
        variables = {
            "tickers": ["LIVEERR"],
            "interval": "M1",
            "indicators": [{"name": "SMA"}],
            "since": MONDAY.isoformat(),  # 780 bars, more than LIVE_MAX_REPLAY_BARS (500)
        }
        (error,) = await first_errors(client, "1", variables)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert "more than 500 M1 bars after `since`" in error["message"], error
    finally:
        await client.close()


async def test_a_whole_history_indicator_outgrowing_the_limit_ends_with_an_error(
    in_process: str, live_env: LiveEnv
) -> None:
    sid = await new_symbol(live_env.dsn, "LIVEBIG", "24/7")
    start = datetime(2024, 12, 2, tzinfo=UTC)
    five = [start + timedelta(minutes=5 * k) for k in range(500)]
    bars = [(sid, "M5", t, 10.0, 11.0, 9.0, 10.5, 100.0 + k) for k, t in enumerate(five)]
    await write_bars(live_env.dsn, bars[:499])
    client = await GqlWs.open(in_process)
    try:
        variables = {"tickers": ["LIVEBIG"], "interval": "M5", "indicators": [{"name": "OBV"}]}
        await client.subscribe("1", UPDATES, variables)
        assert (await next_update(client, "1", wait=60))["replayed"] is True
        await write_bars(live_env.dsn, bars[499:])  # 500 bars: still within the limit
        assert (await next_update(client, "1"))["time"] == five[499].isoformat()
        await write_bars(
            live_env.dsn, [(sid, "M5", five[-1] + timedelta(minutes=5), 10, 11, 9, 10, 1)]
        )
        message = await client.next("1")
        assert message["type"] == "next", message
        (error,) = message["payload"]["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert "LIVE_INDICATOR_MAX_BARS" in error["message"], error
        assert (await client.next("1"))["type"] == "complete"
    finally:
        await client.close()
