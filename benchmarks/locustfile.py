"""Load test: a realistic mix of chart-frontend and integrator traffic against /graphql.

The mix (weights per simulated user):

- chart series (4): `series` columns for a daily stock over a few years, or for a synthetic
  intraday symbol over a few days at M5/M15/H1; maxPoints 300-800;
- bar pages (3): `bars` at D1/H1/M15, 100-500 per page, following `endCursor` for 2-3 pages;
- latest bars (3): a watch-list of 3-8 tickers as aliased `latestBar` fields;
- indicators (2): SMA, EMA, RSI, MACD and Bollinger Bands over a date range;
- symbol pages (2): `symbols` pages of 3 with cursors (sometimes with a search filter).

Every response must be a 200 without `errors`; anything else counts as a failure.

Bounded run (documented figures in docs/benchmarks.md, section "Load (locust)"):

    createdb -h 127.0.0.1 -U postgres mg_load
    export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/mg_load
    market-graphql migrate && market-graphql demo-data
    # one process, pool 10 + 20 overflow, rate limit off (see below)
    RATE_LIMIT_COST_PER_MINUTE=0 market-graphql serve --port 8000 &
    locust -f benchmarks/locustfile.py --headless -u 50 -r 10 -t 60s \\
        --host http://127.0.0.1:8000 --only-summary

Afterwards the pool must be back to zero: no connection of the service busy or idle in a
transaction,

    psql -h 127.0.0.1 -U postgres -c "SELECT state, count(*) FROM pg_stat_activity
        WHERE application_name = 'market-graphql' GROUP BY state"

shows only `idle` connections (the pool's kept ones), none `active` or `idle in transaction`.

The rate limit must be off for this test: every simulated user comes from the same address,
so all 50 share one anonymous bucket (graphql_api/auth.py, `rate_key`), and together they
spend more than the default budget of 5,000,000 cost units per minute (graphql_api/ratelimit.py:
the bucket holds one minute's budget and refills at 83,333 units/s). By graphql_api/cost.py a
request of this mix costs ~3,000 units on average: a series of 300-800 points ~3,700 (each
column is a list of `maxPoints`), a bar page of 100-500 bars ~3,300 (the bar's seven fields,
its edge and cursor, per bar), the indicators query 10,007 (five indicators at the default
1,000 points, MACD and Bollinger Bands three columns each), latest bars and symbol pages 33-37.
At ~50 requests/s that is ~8.9 million units a minute (measured from the request log's `cost`,
2026-12-03), 1.8x the budget: a first 60 s run from a full bucket gets through (5 million in it
plus 5 million refilled), a second one started at once finds ~1 million left, and 429s begin
after ~15 s (393 of 2,927 requests here; 243 of 3,035 in issue 13). The limiter does what it
should; this file measures serving capacity, not one address's budget, hence the setting in
the recipe (with it: 0 failures in two back-to-back runs). To keep the limiter in the path,
give each user a key of its own instead (a budget per key). A 429 is reported as a failure of
its own below, so a run against a limited server says so.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from locust import FastHttpUser, between, task

DAILY = ("AAPL", "MSFT", "IBM", "GOOG")
INTRADAY = ("ACME", "GLOBX", "INITECH")
ALL = (*DAILY, "FB", *INTRADAY)
INTRADAY_START = datetime(2024, 3, 4, tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _daily_range() -> tuple[str, str]:
    start = datetime(random.randint(2005, 2010), random.randint(1, 12), 1, tzinfo=UTC)
    return _iso(start), _iso(start + timedelta(days=365 * random.randint(1, 3)))


def _intraday_range() -> tuple[str, str]:
    start = INTRADAY_START + timedelta(days=random.randint(0, 8))
    return _iso(start), _iso(start + timedelta(days=random.randint(1, 4)))


SERIES = """
query Chart($t: String!, $i: Interval!, $f: DateTime, $u: DateTime, $n: Int!) {
  symbol(ticker: $t) {
    series(interval: $i, from: $f, to: $u, maxPoints: $n) {
      interval time open high low close volume
    }
  }
}"""

BARS = """
query Bars($t: String!, $i: Interval!, $n: Int, $a: String) {
  symbol(ticker: $t) {
    bars(interval: $i, first: $n, after: $a) {
      edges { cursor node { time open high low close volume closed } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

SYMBOLS = """
query Symbols($n: Int, $a: String, $s: String) {
  symbols(first: $n, after: $a, filter: {search: $s}) {
    edges { cursor node { id ticker name exchange lastBarTime } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}"""

INDICATORS = """
query Indicators($t: String!, $i: Interval!, $f: DateTime, $u: DateTime) {
  symbol(ticker: $t) {
    indicators(interval: $i, from: $f, to: $u) {
      sma(period: 20) { time value }
      ema(period: 50) { value }
      rsi { value }
      macd { macd signal histogram }
      bbands { upper middle lower }
    }
  }
}"""


class MarketUser(FastHttpUser):
    """A chart frontend or integrator: a few requests, then a pause."""

    wait_time = between(0.5, 2.0)

    def _gql(self, name: str, query: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        with self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"accept": "application/graphql-response+json"},
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code == 429:
                response.failure("HTTP 429 rate-limited: start the server with the rate limit off")
                return None
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return None
            body = response.json()
            if body.get("errors"):
                response.failure(f"GraphQL errors: {body['errors'][:2]}")
                return None
            data: dict[str, Any] = body["data"]
            return data

    @task(4)
    def chart_series(self) -> None:
        if random.random() < 0.6:
            ticker, interval = random.choice(DAILY), random.choice(["D1", "W1"])
            start, end = _daily_range()
        else:
            ticker, interval = random.choice(INTRADAY), random.choice(["M5", "M15", "H1"])
            start, end = _intraday_range()
        variables = {"t": ticker, "i": interval, "f": start, "u": end}
        self._gql("series", SERIES, {**variables, "n": random.choice([300, 500, 800])})

    @task(3)
    def bar_pages(self) -> None:
        if random.random() < 0.5:
            ticker, interval = random.choice(DAILY), "D1"
        else:
            ticker, interval = random.choice(INTRADAY), random.choice(["M15", "H1"])
        size, after = random.choice([100, 200, 500]), None
        for _ in range(random.randint(2, 3)):
            data = self._gql("bars page", BARS, {"t": ticker, "i": interval, "n": size, "a": after})
            if data is None or data["symbol"] is None:
                return
            page = data["symbol"]["bars"]["pageInfo"]
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]

    @task(3)
    def latest_bars(self) -> None:
        tickers = random.sample(ALL, random.randint(3, 8))
        fields = " ".join(
            f'{t.lower()}: symbol(ticker: "{t}") {{ ticker latestBar {{ time close volume }} }}'
            for t in tickers
        )
        self._gql("latest bars", f"{{ {fields} }}", {})

    @task(2)
    def indicators(self) -> None:
        if random.random() < 0.6:
            ticker, interval, (start, end) = random.choice(DAILY), "D1", _daily_range()
        else:
            ticker, interval, (start, end) = random.choice(INTRADAY), "M15", _intraday_range()
        self._gql("indicators", INDICATORS, {"t": ticker, "i": interval, "f": start, "u": end})

    @task(2)
    def symbol_pages(self) -> None:
        search = random.choice([None, None, "A", "Syn", "Micro"])
        after = None
        for _ in range(4):
            data = self._gql("symbols page", SYMBOLS, {"n": 3, "a": after, "s": search})
            if data is None:
                return
            page = data["symbols"]["pageInfo"]
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]
