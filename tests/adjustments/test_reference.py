"""`adjustment: ALL` closes against the bokeh-sampledata stocks file's `Adj Close` column.

The actions are derived from that column (tests/adjustments/reference.py, fixture
tests/fixtures/bokeh_adjustments.csv), ingested with `market-graphql actions`, and every
bar's adjusted close is compared with the file's: 3 splits (AAPL 2000-06-21 and 2005-02-28,
MSFT 2003-02-18, all 2-for-1) and 96 cash dividends (92 in the file's range, and for
AAPL, GOOG, IBM and MSFT one standing for what lies after its last bar) over 12,154 bars.

Every close must be within 1e-9 relative of the file's. The file's `Adj Close` carries 11 to
13 significant digits (e.g. AAPL's 4.186662803811 on 2000-03-01), and the derived stretch
factors average that last-digit rounding out; the measured maxima are printed (pytest -s):
about 5e-14 relative, 6e-12 absolute (docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.adjustments.reference import FIXTURE, derive_actions, stocks
from tests.api.helpers import app_client, data_of, fresh_database, gql_for, with_connection

SERIES = """query($t: String!, $a: Adjustment!) { symbol(ticker: $t) {
  series(interval: D1, maxPoints: 5000, adjustment: $a) { time close } } }"""


def test_fixture_is_the_derivation() -> None:
    fixture = pd.read_csv(FIXTURE)
    derived = derive_actions(stocks())
    assert list(fixture.columns) == list(derived.columns)
    assert fixture[["ticker", "kind", "ex_date"]].equals(derived[["ticker", "kind", "ex_date"]])
    np.testing.assert_allclose(fixture["value"], derived["value"], rtol=1e-15)
    assert (fixture["kind"] == "split").sum() == 3


@pytest.fixture(scope="module")
def client(make_database: Callable[[], str]) -> Iterator[TestClient]:
    url = fresh_database(make_database, demo=True)
    # The demo's own actions are replaced by the derived ones.
    with_connection(url, lambda conn: conn.execute("DELETE FROM corporate_actions"))
    done = subprocess.run(
        [sys.executable, "-m", "graphql_api", "actions", str(FIXTURE)],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "99 actions read, 99 accepted (99 new or changed), 0 rejected" in done.stderr
    with app_client(url) as c:
        yield c


def test_adjusted_closes_match_adj_close(client: TestClient) -> None:
    gql = gql_for(client)
    raw = stocks()
    worst_abs = worst_rel = 0.0
    bars = 0
    for ticker, g in raw.groupby("Ticker"):
        series = data_of(gql(SERIES, {"t": ticker, "a": "ALL"}))["symbol"]["series"]
        want = g.sort_values("Date")
        assert [t[:10] for t in series["time"]] == want["Date"].tolist()
        got = np.asarray(series["close"], dtype=float)
        ref = want["Adj Close"].to_numpy(float)
        err = np.abs(got - ref)
        assert (err <= 1e-9 * ref).all(), (ticker, want["Date"].to_numpy()[err > 1e-9 * ref][:5])
        worst_abs = max(worst_abs, float(err.max()))
        worst_rel = max(worst_rel, float((err / ref).max()))
        bars += len(got)
        raw_closes = data_of(gql(SERIES, {"t": ticker, "a": "RAW"}))["symbol"]["series"]["close"]
        assert raw_closes == want["Close"].tolist()  # RAW is the file's Close, untouched
    assert bars == 12_154
    print(f"\nreference: {bars} bars, max |error| {worst_abs:.3g}, max relative {worst_rel:.3g}")
