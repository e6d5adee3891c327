"""/chart and the TradingView datafeed in a real browser with no internet, against a live server.

The service runs under uvicorn over a demo database of this module's own (bars are ingested
here with the CLI, as an operator would); the browser is the headless Chromium of
tests/browser/support.py, which reaches 127.0.0.1 only. Expected bars come from the database
(SQL, resampled with pandas in tests/api/helpers.py), never from the page itself.

Artifacts (a screenshot of /chart, the first-candle timings) go to CHART_ARTIFACTS, or to a
temporary folder whose path the test prints. docs/chart.png is a copy of that screenshot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient

from graphql_api.app import create_app
from graphql_api.auth import Scope
from tests.api.helpers import base_bars, resample
from tests.browser.support import launch_browser, network, requested_urls, serve, wait
from tests.conftest import migrated_settings
from tests.security.helpers import create_keys, demo_database

ROOT = Path(__file__).resolve().parents[2]
NEW_YORK = ZoneInfo("America/New_York")
#: Seconds within which an ingested bar must show on the chart (issue 18).
LIVE_DEADLINE = 2.0
#: Page load to first candle, warm browser cache, demo data. The target is 300 ms; on this
#: shared 2-core machine the figure swings with other load, so the assertion is generous and
#: the measured figures are printed and written to the artifacts.
FIRST_CANDLE_LIMIT_MS = 1500.0

DATAFEED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8" /><title>datafeed test</title>
<script type="importmap">{"imports": {"graphql-ws": "/chart-static/vendor/graphql-ws.js"}}</script>
<script type="module">
import * as datafeed from "/test-datafeed/datafeed.js";
window.datafeedModule = datafeed;
</script></head><body></body></html>
"""


def with_datafeed(app: FastAPI) -> FastAPI:
    """The app plus clients/tradingview at /test-datafeed and a page that imports it."""
    app.mount(
        "/test-datafeed",
        StaticFiles(directory=ROOT / "clients" / "tradingview"),
        name="test-datafeed",
    )

    @app.get("/test-datafeed-page", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(DATAFEED_PAGE)

    # Mounts match in order: the page's route must come before the mount's prefix is tried.
    app.router.routes.insert(0, app.router.routes.pop())
    return app


@pytest.fixture(scope="module")
def url(make_database: Callable[[], str]) -> str:
    return demo_database(make_database)


@pytest.fixture(scope="module")
def service(url: str) -> Iterator[str]:
    with serve(with_datafeed(create_app(migrated_settings(url)))) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_browser() as driver:
        yield driver


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("CHART_ARTIFACTS") or tmp_path_factory.mktemp("chart"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nchart test artifacts: {folder}")
    return folder


def seconds(ts: pd.Timestamp) -> int:
    return int(ts.timestamp())


def state(driver: Any, expression: str) -> Any:
    """Evaluate `expression` with `s` bound to window.chartState."""
    return driver.execute_script(f"const s = window.chartState; return {expression};")


def ingest(url: str, tmp: Path, ticker: str, rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Write M1 bars with the CLI (`python -m graphql_api ingest`).

    Returns the monotonic times at which the CLI started and exited: the bars commit in
    between (the process starts Python and pandas first, ~2 s, and exits after the commit).
    """
    started = time.monotonic()
    path = tmp / f"{ticker}-{time.monotonic_ns()}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphql_api",
            "ingest",
            str(path),
            "--timeframe",
            "M1",
            "--ticker",
            ticker,
        ],
        env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return started, time.monotonic()


def write_to_candle_ms(driver: Any, url: str) -> float:
    """Milliseconds from the newest write's transaction (bar_changes.created_at, the same
    machine's clock) to the page receiving its bar: an upper bound of commit to candle."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(created_at) FROM bar_changes").fetchone()
    assert row is not None and row[0] is not None
    received = state(driver, "s.updates.at(-1).receivedAt")
    return round(received - row[0].timestamp() * 1000, 1)


def candle(bar: pd.Series, ts: pd.Timestamp) -> dict[str, Any]:
    return {
        "time": seconds(ts),
        "open": bar["open"],
        "high": bar["high"],
        "low": bar["low"],
        "close": bar["close"],
    }


def first_candle_ms(driver: Any, page: str) -> tuple[float, dict[str, float]]:
    driver.get(page)
    wait(driver, "the first candle", lambda d: state(d, "s && s.firstCandleMs"))
    return state(d := driver, "s.firstCandleMs"), state(d, "s.timings")


def test_chart_page(service: str, browser: Any, url: str, artifacts: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = f"{service}/chart?ticker=AAPL&interval=D1&indicators=sma,bbands,rsi,macd"
    network(browser)  # drop earlier events
    cold, _ = first_candle_ms(browser, page)
    wait(browser, "the chart's canvas", lambda d: d.find_elements(By.CSS_SELECTOR, "#chart canvas"))

    # The drawn candles are the newest 500 stored daily bars; the view ends at the newest.
    daily = base_bars(url, "AAPL", "D1")
    drawn = state(browser, "s.data()")
    assert len(drawn) == 500
    assert drawn == [candle(bar, ts) for ts, bar in daily.tail(500).iterrows()]
    last_ts = daily.index[-1]
    assert state(browser, "s.lastBar()")["volume"] == daily["volume"].iloc[-1]
    visible = state(browser, "s.visibleRange()")
    assert visible["to"] == seconds(last_ts)
    assert seconds(daily.index[-500]) <= visible["from"] < visible["to"]
    assert "AAPL" in browser.find_element(By.ID, "legend").text

    # Indicators drawn: SMA, three bands, RSI, MACD (two lines and a histogram).
    wait(browser, "the indicators", lambda d: state(d, "s.series.indicators.length") == 8)
    assert state(browser, "s.chart.panes().length") == 3
    screenshot = artifacts / "chart.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000

    # Load to first candle, warm: the page again, three times.
    warm = [first_candle_ms(browser, page) for _ in range(3)]
    figures = {
        "cold_first_candle_ms": cold,
        "warm_first_candle_ms": [ms for ms, _ in warm],
        "warm_median_ms": statistics.median(ms for ms, _ in warm),
        "warm_timings": [timings for _, timings in warm],
    }
    (artifacts / "first-candle.json").write_text(json.dumps(figures, indent=2))
    print(f"first candle: cold {cold:.0f} ms, warm {figures['warm_first_candle_ms']} ms")
    assert figures["warm_median_ms"] < FIRST_CANDLE_LIMIT_MS, figures

    # Scrolling back to the oldest loaded bar asks for the page before it, by cursor.
    wait(browser, "the first page", lambda d: state(d, "s.bars.length") == 500)
    cursor = state(browser, "s.olderCursor")
    assert cursor and state(browser, "s.hasOlder")
    browser.execute_script(
        "window.chartState.chart.timeScale().setVisibleLogicalRange({from: -20, to: 80});"
    )
    wait(browser, "the older page", lambda d: state(d, "s.bars.length") == 1000)
    older_requests = state(browser, "s.requests.filter(r => r.variables.before)")
    assert older_requests[0]["variables"]["before"] == cursor
    assert older_requests[0]["operation"] == "ChartBars" and older_requests[0]["status"] == 200
    drawn = state(browser, "s.data()")
    assert drawn == [candle(bar, ts) for ts, bar in daily.tail(1000).iterrows()]

    # Another symbol and interval from the controls: ACME (synthetic one-minute bars) at M5.
    symbol = browser.find_element(By.ID, "symbol")
    symbol.clear()
    symbol.send_keys("acme\n")
    Select(browser.find_element(By.ID, "interval")).select_by_value("M5")
    wait(
        browser,
        "ACME at M5",
        lambda d: state(
            d, "s.interval === 'M5' && s.ticker === 'ACME' && !s.loading && s.bars.length"
        ),
    )
    assert "ticker=ACME&interval=M5" in browser.current_url
    minutes = base_bars(url, "ACME", "M1")
    five = resample(minutes, "M5", "M1")
    assert state(browser, "s.data()") == [candle(bar, ts) for ts, bar in five.tail(500).iterrows()]
    # The subscription replays the newest loaded bar first: then it is live.
    wait(browser, "the live subscription", lambda d: state(d, "s.updates.length") >= 1)

    # A new one-minute bar starts a new five-minute candle...
    start = minutes.index[-1] + pd.Timedelta(minutes=1)
    assert start.minute % 5 == 0  # the demo data ends on a whole five-minute bucket
    before = state(browser, "s.bars.length")
    row = {
        "time": start.isoformat(),
        "open": 50.0,
        "high": 51.0,
        "low": 49.5,
        "close": 50.5,
        "volume": 1000,
    }
    started, exited = ingest(url, tmp_path, "ACME", [row])
    wait(browser, "the new candle", lambda d: state(d, "s.lastBar().time") == seconds(start))
    shown = time.monotonic()
    latency = shown - exited
    lags = [write_to_candle_ms(browser, url)]
    last = state(browser, "s.data().at(-1)")
    assert last == {"time": seconds(start), "open": 50.0, "high": 51.0, "low": 49.5, "close": 50.5}
    assert state(browser, "s.bars.length") == before + 1
    assert state(browser, "s.lastBar().closed") is False  # forming: four minutes to go
    # ...and the next minute grows it in place.
    row = {
        "time": (start + pd.Timedelta(minutes=1)).isoformat(),
        "open": 50.5,
        "high": 52.5,
        "low": 50.0,
        "close": 52.0,
        "volume": 500,
    }
    _, exited = ingest(url, tmp_path, "ACME", [row])
    wait(browser, "the candle to grow", lambda d: state(d, "s.lastBar().close") == 52.0)
    latency = max(latency, time.monotonic() - exited)
    lags.append(write_to_candle_ms(browser, url))
    last = state(browser, "s.data().at(-1)")
    assert last == {"time": seconds(start), "open": 50.0, "high": 52.5, "low": 49.5, "close": 52.0}
    assert state(browser, "s.lastBar().volume") == 1500
    assert state(browser, "s.bars.length") == before + 1
    # The change is usually on the chart before the CLI process has even exited; from the
    # CLI's start (interpreter and pandas start-up included) it is a few seconds.
    print(
        f"write to candle: {lags} ms; CLI exit to changed candle: {latency * 1000:.0f} ms at"
        f" most; CLI start to new candle: {(shown - started) * 1000:.0f} ms"
    )
    assert latency < LIVE_DEADLINE
    assert max(lags) < LIVE_DEADLINE * 1000

    # A revision of a minute inside an older five-minute candle replaces that candle in place.
    older = minutes.index[-30]
    revised_minutes = minutes.copy()
    revised_minutes.loc[older, "high"] = minutes["high"].max() + 10.0
    row = {"time": older.isoformat(), **revised_minutes.loc[older].to_dict()}
    bucket = older.floor("5min")
    want = candle(resample(revised_minutes, "M5", "M1").loc[bucket], bucket)
    count = state(browser, "s.bars.length")
    ingest(url, tmp_path, "ACME", [row])
    wait(
        browser,
        "the revised candle",
        lambda d: (
            state(d, f"s.data().find(c => c.time === {seconds(bucket)}).high") == want["high"]
        ),
    )
    assert state(browser, f"s.data().find(c => c.time === {seconds(bucket)})") == want
    assert state(browser, "s.bars.length") == count
    assert state(browser, "s.lastBar().close") == 52.0  # the forming bar is untouched

    # Nothing left the machine and nothing failed.
    events = network(browser)
    urls = requested_urls(events)
    local = ("data:", "blob:", "about:", "chrome:", "chrome-extension:", "chrome-untrusted:")
    ws_service = service.replace("http://", "ws://")
    outside = [u for u in urls if not u.startswith((f"{service}/", f"{ws_service}/", *local))]
    assert outside == [], outside
    assert any("/chart-static/vendor/lightweight-charts.mjs" in u for u in urls)
    failed = [
        (e["params"]["response"]["url"], e["params"]["response"]["status"])
        for e in events
        if e["method"] == "Network.responseReceived" and e["params"]["response"]["status"] >= 400
    ]
    assert failed == []
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    assert state(browser, "s.errors") == []


def test_chart_draws_a_query_from_graphiql(service: str, browser: Any, url: str) -> None:
    """The "chart this" link: /chart?query=… runs the query and draws what it returns."""
    from urllib.parse import urlencode

    query = """query Chart($t: String!) { symbol(ticker: $t) {
      series(interval: W1, from: "2010-01-01T00:00:00+00:00", to: "2011-01-01T00:00:00+00:00") {
        time open high low close volume }
      indicators(interval: W1, from: "2010-01-01T00:00:00+00:00", to: "2011-01-01T00:00:00+00:00") {
        sma(period: 10) { time value } rsi { time value } } } }"""
    browser.get(f"{service}/chart?" + urlencode({"query": query, "variables": '{"t": "IBM"}'}))
    wait(browser, "the query's candles", lambda d: state(d, "s && s.firstCandleMs"))
    weekly = resample(base_bars(url, "IBM", "D1"), "W1", "D1")
    weekly = weekly[(weekly.index >= "2010-01-01") & (weekly.index < "2011-01-01")]
    assert state(browser, "s.data()") == [candle(bar, ts) for ts, bar in weekly.iterrows()]
    assert state(browser, "s.series.indicators.length") == 2
    assert state(browser, "s.errors") == []


def graphql(service: str, document: str, variables: dict[str, Any]) -> Any:
    """The data of a query to the live service (the page's expected values come from here)."""
    response = httpx.post(
        f"{service}/graphql", json={"query": document, "variables": variables}, timeout=30
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


API_BARS = """query($t: String!, $i: Interval!, $from: DateTime, $to: DateTime, $last: Int,
  $session: Session, $adjustment: Adjustment!) { symbol(ticker: $t) {
  bars(interval: $i, from: $from, to: $to, last: $last, order: OLDEST_FIRST, session: $session,
       adjustment: $adjustment) { nodes { time open high low close } } } }"""


def api_candles(service: str, ticker: str, interval: str, **args: Any) -> list[dict[str, Any]]:
    data = graphql(service, API_BARS, {"t": ticker, "i": interval, "adjustment": "RAW", **args})
    return [
        {**{k: n[k] for k in ("open", "high", "low", "close")}, "time": iso_seconds(n["time"])}
        for n in data["symbol"]["bars"]["nodes"]
    ]


def iso_seconds(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


LOAD_OLDER_UNTIL = """
const done = arguments[arguments.length - 1];
const until = arguments[0];
(async () => {
  const s = window.chartState;
  for (let i = 0; i < 20 && s.bars[0].time > until && s.hasOlder; i += 1) {
    while (s.loading) await new Promise((r) => setTimeout(r, 20));
    await s.loadOlder();
  }
  return s.bars[0].time;
})().then(done, (error) => done(String(error)));
"""

SPLIT_DAY = int(datetime(2005, 2, 28, tzinfo=UTC).timestamp())
AROUND_SPLIT = ("2005-02-14T00:00:00+00:00", "2005-03-12T00:00:00+00:00")


def window_of(candles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lo, hi = (iso_seconds(t) for t in AROUND_SPLIT)
    return [c for c in candles if lo <= c["time"] < hi]


def test_chart_adjustment_and_corporate_action_markers(
    service: str, browser: Any, url: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.set_script_timeout(60)
    browser.get(f"{service}/chart?ticker=AAPL&interval=D1")
    wait(browser, "the first candles", lambda d: state(d, "s && s.firstCandleMs && !s.loading"))
    first = browser.execute_async_script(LOAD_OLDER_UNTIL, SPLIT_DAY - 30 * 86400)
    assert first < SPLIT_DAY - 30 * 86400
    span = {"from": AROUND_SPLIT[0], "to": AROUND_SPLIT[1]}
    raw = api_candles(service, "AAPL", "D1", **span)
    assert len(raw) == 19 and window_of(state(browser, "s.data()")) == raw
    # The split is a marker on its ex-date's candle; the dividends of 2012-2013 too.
    actions = graphql(
        service,
        'query { symbol(ticker: "AAPL") { corporateActions { kind exDate } } }',
        {},
    )["symbol"]["corporateActions"]
    markers = state(browser, "s.markers")
    split = [m for m in markers if m["time"] == SPLIT_DAY]
    assert len(split) == 1 and split[0]["kind"] == "SPLIT" and "2:1" in split[0]["text"]
    # Daily bars are stamped 00:00 UTC of their date: the crosshair shows that date.
    assert state(browser, f"s.formatTime({SPLIT_DAY})") == "2005-02-28"
    loaded_from = state(browser, "s.bars[0].time")
    in_range = [a for a in actions if iso_seconds(f"{a['exDate']}T00:00:00+00:00") >= loaded_from]
    assert sorted(m["exDate"] for m in markers) == sorted(a["exDate"] for a in in_range)
    assert len(state(browser, "s.markerPlugin.markers()")) == len(markers)

    # Adjusted: the candles become what bars(adjustment: ALL) answers, and the URL says so.
    Select(browser.find_element(By.ID, "adjustment")).select_by_value("ALL")
    wait(browser, "adjusted bars", lambda d: state(d, "s.adjustment === 'ALL' && !s.loading"))
    assert "adjustment=ALL" in browser.current_url
    browser.execute_async_script(LOAD_OLDER_UNTIL, SPLIT_DAY - 30 * 86400)
    adjusted = api_candles(service, "AAPL", "D1", adjustment="ALL", **span)
    drawn = window_of(state(browser, "s.data()"))
    assert drawn == adjusted and drawn != raw
    # The split halves the factor before its ex-date (the later dividends scale both alike).
    raw_by_time = {c["time"]: c for c in raw}
    on, prior = (
        (c for c in drawn if c["time"] == SPLIT_DAY),
        (c for c in reversed(drawn) if c["time"] < SPLIT_DAY),
    )
    day, day_before = next(on), next(prior)
    factor_after = day["close"] / raw_by_time[day["time"]]["close"]
    factor_before = day_before["close"] / raw_by_time[day_before["time"]]["close"]
    assert abs(factor_before / factor_after - 0.5) < 1e-9
    assert any(m["time"] == SPLIT_DAY for m in state(browser, "s.markers"))
    requests = state(browser, "s.requests.filter(r => r.operation === 'ChartBars')")
    assert requests[-1]["variables"]["adjustment"] == "ALL"
    # Indicators read the same adjusted bars.
    browser.execute_script("return window.chartState.setIndicators(['sma'])")
    wait(
        browser,
        "the indicator request",
        lambda d: state(d, "s.requests.some(r => r.operation === 'ChartIndicators')"),
    )
    indicator = state(browser, "s.requests.filter(r => r.operation === 'ChartIndicators').at(-1)")
    assert indicator["variables"]["adjustment"] == "ALL"

    # A reload of the address keeps the choice.
    browser.get(browser.current_url)
    wait(browser, "the first candles", lambda d: state(d, "s && s.firstCandleMs && !s.loading"))
    assert state(browser, "s.adjustment") == "ALL"
    assert (
        Select(browser.find_element(By.ID, "adjustment")).first_selected_option.get_attribute(
            "value"
        )
        == "ALL"
    )
    assert state(browser, "s.errors") == []


def test_chart_session_picker(service: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # UMBRL trades NYSE sessions with sparse pre- and post-market minutes.
    browser.get(f"{service}/chart?ticker=UMBRL&interval=H1")
    wait(browser, "the first candles", lambda d: state(d, "s && s.firstCandleMs && !s.loading"))
    picker = Select(browser.find_element(By.ID, "session"))
    assert picker.first_selected_option.text == "default (regular)"
    regular = api_candles(service, "UMBRL", "H1", last=500)
    assert state(browser, "s.data()") == regular
    # The axis and crosshair read New York time: the first bar of a session says 09:30.
    assert state(browser, "s.timezone") == "America/New_York"
    first_local = datetime.fromtimestamp(regular[0]["time"], tz=UTC).astimezone(NEW_YORK)
    assert state(browser, f"s.formatTime({regular[0]['time']})") == first_local.strftime(
        "%Y-%m-%d %H:%M"
    )
    assert first_local.strftime("%H:%M") == "09:30"
    assert api_candles(service, "UMBRL", "H1", last=500, session="REGULAR") == regular
    # Regular hours: every candle inside 09:30-16:00 New York.
    for candle_ in regular:
        local = datetime.fromtimestamp(candle_["time"], tz=UTC).astimezone(NEW_YORK)
        assert (9, 30) <= (local.hour, local.minute) < (16, 0)

    picker.select_by_value("EXTENDED")
    wait(browser, "extended bars", lambda d: state(d, "s.session === 'EXTENDED' && !s.loading"))
    assert "session=EXTENDED" in browser.current_url
    extended = api_candles(service, "UMBRL", "H1", last=500, session="EXTENDED")
    assert state(browser, "s.data()") == extended
    assert len(extended) > len(regular)
    hours = {datetime.fromtimestamp(c["time"], tz=UTC).astimezone(NEW_YORK).hour for c in extended}
    assert min(hours) == 4 and max(hours) == 19
    live = state(browser, "s.requests.filter(r => r.operation === 'ChartBars').at(-1)")
    assert live["variables"]["session"] == "EXTENDED"

    picker.select_by_value("REGULAR")
    wait(browser, "regular bars", lambda d: state(d, "s.session === 'REGULAR' && !s.loading"))
    assert state(browser, "s.data()") == regular
    assert "session=REGULAR" in browser.current_url
    assert state(browser, "s.errors") == []


DATAFEED_PAGES = """
const done = arguments[arguments.length - 1];
const [ticker, resolution, end, countBack] = arguments;
const feed = window.datafeedModule.createDatafeed({ url: "/graphql" });
const call = (method, ...args) => new Promise((resolve, reject) =>
  feed[method](...args, (...result) => resolve(result), reject));
(async () => {
  const [info] = await call("resolveSymbol", ticker);
  const pages = [];
  let to = end;
  for (let i = 0; i < 100; i += 1) {
    const params = countBack
      ? { from: to - 86400, to, countBack, firstDataRequest: i === 0 }
      : { from: to - 2 * 86400, to, firstDataRequest: i === 0 };
    const [bars, meta] = await new Promise((resolve, reject) =>
      feed.getBars(info, resolution, params, (b, m) => resolve([b, m]), reject));
    pages.push({ bars, meta, to });
    if (meta.noData && !meta.nextTime) break;
    to = bars.length ? bars[0].time / 1000 : params.from;
  }
  return { info, pages };
})().then(done, (error) => done({ error: String(error) }));
"""


def test_datafeed_pages_join_without_gaps_or_duplicates(
    service: str, browser: Any, url: str
) -> None:
    browser.get(f"{service}/test-datafeed-page")
    wait(
        browser, "the datafeed module", lambda d: d.execute_script("return !!window.datafeedModule")
    )
    browser.set_script_timeout(60)
    five = resample(base_bars(url, "GLOBX", "M1"), "M5", "M1")
    want = [int(ts.timestamp()) * 1000 for ts in five.index]
    end = int(datetime(2024, 3, 16, tzinfo=UTC).timestamp())
    for count_back in (300, 0):
        result = browser.execute_async_script(DATAFEED_PAGES, "GLOBX", "5", end, count_back)
        assert "error" not in result, result
        info = result["info"]
        assert info["ticker"] == "GLOBX" and info["has_intraday"] is True
        assert "5" in info["supported_resolutions"]
        pages = result["pages"]
        joined = [bar for page in reversed(pages) for bar in page["bars"]]
        times = [bar["time"] for bar in joined]
        assert times == want, f"countBack={count_back}: pages do not join"
        assert [bar["close"] for bar in joined] == five["close"].tolist()
        if count_back:
            assert all(len(p["bars"]) == 300 for p in pages[:-2])
        else:
            # Two-day windows over weekends are empty and point at the bar before them.
            empty = [p for p in pages if p["meta"]["noData"] and "nextTime" in p["meta"]]
            assert empty, "expected an empty window with nextTime"
            for p in empty:
                assert p["meta"]["nextTime"] * 1000 in want
                assert p["meta"]["nextTime"] < p["to"] - 2 * 86400


DATAFEED_SESSIONS = """
const done = arguments[arguments.length - 1];
const [from, to, splitFrom, splitTo] = arguments;
const feed = window.datafeedModule.createDatafeed({ url: "/graphql" });
const adjusted = window.datafeedModule.createDatafeed({ url: "/graphql", adjustment: "ALL" });
const resolve = (f, name) => new Promise((ok, fail) => f.resolveSymbol(name, ok, fail));
const bars = (f, info, resolution, params) =>
  new Promise((ok, fail) => f.getBars(info, resolution, params, (b) => ok(b), fail));
(async () => {
  const umbrl = await resolve(feed, "UMBRL");
  const coinx = await resolve(feed, "COINX");
  const range = { from, to, firstDataRequest: true };
  const regular = await bars(feed, umbrl, "60", range);
  const extended = await bars(feed, { ...umbrl, subsession_id: "extended" }, "60", range);
  const aapl = await resolve(feed, "AAPL");
  const split = { from: splitFrom, to: splitTo, firstDataRequest: true };
  const raw = await bars(feed, aapl, "1D", split);
  const adj = await bars(adjusted, aapl, "1D", split);
  const marks = await new Promise((ok) => feed.getMarks(aapl, splitFrom, splitTo, ok));
  const scale = await new Promise((ok) => feed.getTimescaleMarks(aapl, splitFrom, splitTo, ok));
  const hourly = await new Promise((ok) => feed.getMarks(aapl, splitFrom, splitTo, ok, "60"));
  const config = await new Promise((ok) => feed.onReady(ok));
  return { umbrl, coinx, regular, extended, raw, adj, marks, scale, hourly, config };
})().then(done, (error) => done({ error: String(error) }));
"""


def test_datafeed_sessions_adjustment_and_marks(service: str, browser: Any) -> None:
    browser.get(f"{service}/test-datafeed-page")
    wait(
        browser, "the datafeed module", lambda d: d.execute_script("return !!window.datafeedModule")
    )
    browser.set_script_timeout(60)
    lo, hi = "2024-11-04T00:00:00+00:00", "2024-11-09T00:00:00+00:00"
    split_lo, split_hi = AROUND_SPLIT
    result = browser.execute_async_script(
        DATAFEED_SESSIONS,
        iso_seconds(lo),
        iso_seconds(hi),
        iso_seconds(split_lo),
        iso_seconds(split_hi),
    )
    assert "error" not in result, result
    umbrl = result["umbrl"]
    assert umbrl["session"] == "0930-1600:23456" and umbrl["timezone"] == "America/New_York"
    assert umbrl["subsession_id"] == "regular"
    assert [s["id"] for s in umbrl["subsessions"]] == ["regular", "extended"]
    assert result["coinx"]["session"] == "24x7" and result["coinx"]["timezone"] == "Etc/UTC"
    assert "subsessions" not in result["coinx"]

    def as_seconds(bars: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**{k: b[k] for k in ("open", "high", "low", "close")}, "time": b["time"] // 1000}
            for b in bars
        ]

    window = {"from": lo, "to": hi, "last": 1000}
    assert as_seconds(result["regular"]) == api_candles(service, "UMBRL", "H1", **window)
    assert as_seconds(result["extended"]) == api_candles(
        service, "UMBRL", "H1", session="EXTENDED", **window
    )
    assert len(result["extended"]) > len(result["regular"])
    span = {"from": split_lo, "to": split_hi}
    assert as_seconds(result["raw"]) == api_candles(service, "AAPL", "D1", **span)
    assert as_seconds(result["adj"]) == api_candles(service, "AAPL", "D1", adjustment="ALL", **span)
    assert result["config"]["supports_marks"] is True
    assert [(m["time"], m["label"]) for m in result["marks"]] == [(SPLIT_DAY, "S")]
    assert result["marks"][0]["text"] == "Split 2:1, ex-date 2005-02-28"
    assert result["scale"][0]["tooltip"] == ["Split 2:1, ex-date 2005-02-28"]
    # On intraday bars the mark sits on the ex-date's session open, 09:30 New York (EST).
    assert [m["time"] for m in result["hourly"]] == [iso_seconds("2005-02-28T09:30:00-05:00")]


SUBSCRIBE = """
const [ticker, resolution] = arguments;
const feed = window.datafeedModule.createDatafeed({ url: "/graphql" });
window.feedTicks = [];
window.feedResets = 0;
feed.resolveSymbol(ticker, (info) => {
  feed.getBars(info, resolution, { from: 0, to: 2e9, countBack: 10, firstDataRequest: true },
    (bars) => {
      window.feedLast = bars.at(-1);
      feed.subscribeBars(info, resolution, (bar) => window.feedTicks.push(bar), "guid-1",
        () => { window.feedResets += 1; });
      window.feedSubscribed = true;
    }, () => {});
}, () => {});
"""


def test_datafeed_subscription_gets_the_forming_bar(
    service: str, browser: Any, url: str, tmp_path: Path
) -> None:
    browser.get(f"{service}/test-datafeed-page")
    wait(
        browser, "the datafeed module", lambda d: d.execute_script("return !!window.datafeedModule")
    )
    browser.execute_script(SUBSCRIBE, "INITECH", "5")
    wait(browser, "the subscription", lambda d: d.execute_script("return !!window.feedSubscribed"))
    minutes = base_bars(url, "INITECH", "M1")
    last_ms = browser.execute_script("return window.feedLast.time")
    assert last_ms == int(resample(minutes, "M5", "M1").index[-1].timestamp()) * 1000
    time.sleep(0.5)  # let the WebSocket subscribe before the bar is written
    start = minutes.index[-1] + pd.Timedelta(minutes=1)
    row = {
        "time": start.isoformat(),
        "open": 8.0,
        "high": 8.25,
        "low": 7.9,
        "close": 8.1,
        "volume": 300,
    }
    ingest(url, tmp_path, "INITECH", [row])
    wait(browser, "the forming bar", lambda d: d.execute_script("return window.feedTicks.length"))
    tick = browser.execute_script("return window.feedTicks.at(-1)")
    assert tick == {
        "time": int(start.timestamp()) * 1000,
        "open": 8.0,
        "high": 8.25,
        "low": 7.9,
        "close": 8.1,
        "volume": 300,
    }
    # A revision of an older bar asks the library to reload (onResetCacheNeeded).
    older = minutes.index[-30]
    revised = {
        "time": older.isoformat(),
        "open": 9.0,
        "high": 9.5,
        "low": 8.5,
        "close": 9.25,
        "volume": 10,
    }
    ingest(url, tmp_path, "INITECH", [revised])
    wait(browser, "a cache reset", lambda d: d.execute_script("return window.feedResets") >= 1)
    assert browser.execute_script("return window.feedTicks.length") == 1


def test_chart_page_references_only_vendored_files(client: TestClient) -> None:
    """Without a browser: every module the page names is served here, pinned and hash-checked."""
    page = client.get("/chart?ticker=AAPL")
    assert page.status_code == 200
    html = page.text
    import_map = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    assert set(import_map["imports"]) == {"lightweight-charts", "graphql-ws"}
    # The CSP allows the import map by its hash and scripts from this origin, nothing else.
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    raw_map = re.search(r'<script type="importmap">(.*?)</script>', html).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(raw_map.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}'" in csp
    assert "connect-src 'self'" in csp and "unsafe-eval" not in csp
    tagged = dict(re.findall(r'(?:src|href)="(/chart-static/[^"]+)" integrity="([^"]+)"', html))
    checked = {**import_map["integrity"], **tagged}
    assert len(checked) == 5  # chart.js, chart.css, the chart library, graphql-ws and its chunk
    for url, integrity in checked.items():
        response = client.get(url)
        assert response.status_code == 200, url
        digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url
        if "?v=" in url:
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "unpkg" not in html and "cdn" not in html.lower()
    versions = client.get("/chart-static/vendor/VERSIONS").text
    assert "lightweight-charts 5.2.1" in versions and "graphql-ws 6.4.2" in versions


def test_chart_asks_for_a_key_when_reads_need_one(url: str, browser: Any) -> None:
    """With REQUIRE_READ_KEY the page asks for a key, then reads and subscribes with it."""
    from selenium.webdriver.common.by import By

    token = create_keys(url, chart_reader=[Scope.READ])["chart_reader"]
    settings = migrated_settings(url, require_read_key=True, api_key_cache_seconds=0)
    with serve(create_app(settings)) as base:
        browser.get(f"{base}/chart?ticker=IBM&interval=W1")
        form = browser.find_element(By.ID, "key-form")
        wait(browser, "the key form", lambda d: form.is_displayed())
        assert state(browser, "s.bars.length") == 0
        browser.find_element(By.ID, "api-key").send_keys(token + "\n")
        wait(browser, "the candles", lambda d: state(d, "s.bars.length") > 0)
        assert not form.is_displayed()
        weekly = resample(base_bars(url, "IBM", "D1"), "W1", "D1")
        assert state(browser, "s.lastBar().time") == seconds(weekly.index[-1])
        # The WebSocket sent the key in connection_init: the replay of the newest bar arrives.
        wait(browser, "the live subscription", lambda d: state(d, "s.updates.length") >= 1)
