"""The bulk download route (/download/bars): Arrow IPC, CSV and JSON against `Symbol.series`.

Expected values come from a GraphQL `series` request with the same arguments, never from the
route itself; Arrow streams are read with pyarrow and pandas as a client would.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from graphql_api.auth import Scope
from tests.api.helpers import app_client as unlimited_client
from tests.security.helpers import app_client, create_keys

ARROW = "application/vnd.apache.arrow.stream"
VALUES = ("open", "high", "low", "close", "volume")

SERIES = """query($t: String!, $i: Interval!, $from: DateTime, $to: DateTime, $n: Int!,
                 $session: Session, $alignment: Alignment! = SESSION,
                 $adjustment: Adjustment! = RAW, $asOf: Date) {
  symbol(ticker: $t) {
    series(interval: $i, from: $from, to: $to, maxPoints: $n, session: $session,
           alignment: $alignment, adjustment: $adjustment, asOf: $asOf) {
      interval time open high low close volume closed
    }
  }
}"""

#: Query-string names of the route -> GraphQL variables of SERIES.
_VARIABLES = {
    "interval": "i",
    "from": "from",
    "to": "to",
    "maxPoints": "n",
    "session": "session",
    "alignment": "alignment",
    "adjustment": "adjustment",
    "asOf": "asOf",
}


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[TestClient]:
    with unlimited_client(database_url) as client:
        yield client


def graphql_series(client: TestClient, ticker: str, params: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = {"t": ticker, "n": 100_000}
    variables.update({_VARIABLES[k]: v for k, v in params.items()})
    body = client.post("/graphql", json={"query": SERIES, "variables": variables}).json()
    assert "errors" not in body, body
    series: dict[str, Any] = body["data"]["symbol"]["series"]
    return series


def download(
    client: TestClient,
    accept: str | None = ARROW,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> Any:
    sent = dict(headers or {})
    if accept is not None:
        sent["accept"] = accept
    return client.get("/download/bars", params=params, headers=sent)


def read_arrow(content: bytes) -> pa.Table:
    return pa.ipc.open_stream(io.BytesIO(content)).read_all()


def assert_frame_matches(frame: pd.DataFrame, ticker: str, series: dict[str, Any]) -> None:
    """One ticker's rows of a downloaded frame equal `series` (floats exactly)."""
    rows = frame[frame["ticker"] == ticker]
    assert len(rows) == len(series["time"]) > 0
    assert set(rows["interval"].astype(str)) == {series["interval"]}
    expected_times = pd.to_datetime([datetime.fromisoformat(t) for t in series["time"]], utc=True)
    assert (pd.DatetimeIndex(rows["time"]) == expected_times).all()
    for name in VALUES:
        assert rows[name].tolist() == series[name], name
    assert rows["closed"].tolist() == series["closed"]


CASES = {
    # Several 24/7 symbols and a NYSE one, resampled from M1.
    "several symbols, M5": (["ACME", "GLOBX", "UMBRL"], {"interval": "M5"}),
    # Session-aligned H1 buckets of regular NYSE hours, in a window.
    "session-aligned": (
        ["UMBRL"],
        {
            "interval": "H1",
            "session": "REGULAR",
            "alignment": "SESSION",
            "from": "2024-01-01T00:00:00+00:00",
            "to": "2030-01-01T00:00:00+00:00",
        },
    ),
    # Split- and dividend-adjusted daily bars as known at a date.
    "adjusted": (
        ["AAPL", "GOOG"],
        {"interval": "W1", "adjustment": "ALL", "asOf": "2013-01-01"},
    ),
    "UTC grid, all hours": (
        ["UMBRL", "ACME"],
        {"interval": "M15", "alignment": "UTC", "session": "ALL"},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_arrow_stream_equals_graphql_series(api: TestClient, case: str) -> None:
    tickers, params = CASES[case]
    response = download(api, tickers=",".join(tickers), **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ARROW
    assert "content-encoding" not in response.headers  # Arrow is never gzipped
    table = read_arrow(response.content)
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    frame = table.to_pandas()
    assert list(dict.fromkeys(frame["ticker"].astype(str))) == tickers  # request order
    for ticker in tickers:
        assert_frame_matches(frame, ticker, graphql_series(api, ticker, params))


def test_pandas_reads_the_stream_directly(api: TestClient) -> None:
    response = download(api, tickers="ACME,GLOBX", interval="H1")
    assert response.status_code == 200
    with pa.ipc.open_stream(response.content) as reader:
        frame = reader.read_pandas()
    assert isinstance(frame["time"].dtype, pd.DatetimeTZDtype)
    assert_frame_matches(frame, "GLOBX", graphql_series(api, "GLOBX", {"interval": "H1"}))


def test_max_points_coarsens_like_series(api: TestClient) -> None:
    params = {"interval": "M1", "maxPoints": 500}
    table = read_arrow(download(api, tickers="ACME", **params).content)
    expected = graphql_series(api, "ACME", params)
    assert expected["interval"] != "M1"  # the range holds more than 500 minutes
    assert_frame_matches(table.to_pandas(), "ACME", expected)


def test_csv_and_json_carry_the_same_values(api: TestClient) -> None:
    params = {"interval": "H4", "tickers": "ACME,UMBRL"}
    csv = download(api, accept="text/csv", **params)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.BytesIO(csv.content))
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    as_json = download(api, accept="application/json", **params)
    assert as_json.headers["content-type"] == "application/json"
    items = orjson.loads(as_json.content)["series"]
    assert [i["ticker"] for i in items] == ["ACME", "UMBRL"]
    for item in items:
        series = graphql_series(api, item["ticker"], {"interval": "H4"})
        assert {k: item[k] for k in series} == series
        assert_frame_matches(frame, item["ticker"], series)


def test_format_parameter_overrides_accept_and_json_is_the_default(api: TestClient) -> None:
    response = download(
        api, accept="application/json", tickers="ACME", interval="D1", format="arrow"
    )
    assert response.headers["content-type"] == ARROW
    assert read_arrow(response.content).num_rows > 0
    default = download(api, accept=None, tickers="ACME", interval="D1")
    assert default.headers["content-type"] == "application/json"
    assert orjson.loads(default.content)["series"][0]["ticker"] == "ACME"
    weighted = download(api, accept=f"application/json;q=0.5, {ARROW}", tickers="ACME")
    assert weighted.headers["content-type"] == ARROW
    named = download(api, accept="*/*, text/csv", tickers="ACME")
    assert named.headers["content-type"].startswith("text/csv")


def test_unacceptable_media_type_is_406(api: TestClient) -> None:
    response = download(api, accept="image/png", tickers="ACME")
    assert response.status_code == 406
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "NOT_ACCEPTABLE" and ARROW in error["message"]


BAD = {
    "no tickers": ({}, "tickers"),
    "blank tickers": ({"tickers": " , "}, "tickers"),
    "bad interval": ({"tickers": "ACME", "interval": "M7"}, "interval"),
    "bad from": ({"tickers": "ACME", "from": "yesterday"}, "from"),
    "from after to": (
        {"tickers": "ACME", "from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
        "from",
    ),
    "maxPoints not a number": ({"tickers": "ACME", "maxPoints": "lots"}, "maxPoints"),
    "maxPoints too large": ({"tickers": "ACME", "maxPoints": 10**9}, "maxPoints"),
    "maxPoints zero": ({"tickers": "ACME", "maxPoints": 0}, "maxPoints"),
    "bad session": ({"tickers": "ACME", "session": "LUNCH"}, "session"),
    "bad adjustment": ({"tickers": "ACME", "adjustment": "SOME"}, "adjustment"),
    "bad asOf": ({"tickers": "ACME", "asOf": "2013-13-01"}, "asOf"),
    "bad format": ({"tickers": "ACME", "format": "xlsx"}, "format"),
    "unknown parameter": ({"tickers": "ACME", "symbol": "ACME"}, "symbol"),
    "too many tickers": ({"tickers": ",".join(f"T{i}" for i in range(501))}, "tickers"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_a_400_naming_the_parameter(api: TestClient, case: str) -> None:
    params, name = BAD[case]
    response = download(api, **params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "parameter": name}
    assert name in error["message"]


def test_unknown_tickers_are_named_in_a_404(api: TestClient) -> None:
    response = download(api, tickers="ACME,NOPE1,NOPE2")
    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["extensions"]["parameter"] == "tickers"
    assert "NOPE1" in error["message"] and "NOPE2" in error["message"]
    assert "ACME" not in error["message"]


def test_range_refused_by_series_is_a_400(api: TestClient) -> None:
    # An intraday range longer than the service allows, as `series` refuses it.
    response = download(
        api,
        tickers="ACME",
        interval="M1",
        **{"from": "1990-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_symbols_beyond_the_cost_limit_come_in_groups(database_url: str) -> None:
    """A cost limit that holds one symbol's document: every symbol still arrives, each group
    charged as its own request, with the values of `series`."""
    tickers = ["ACME", "GLOBX", "UMBRL", "COINX"]
    params = {"interval": "M5", "maxPoints": 5000}
    with unlimited_client(database_url, max_query_cost=60_000) as client:
        response = download(client, tickers=",".join(tickers), **params)
        assert response.status_code == 200, response.text
        frame = read_arrow(response.content).to_pandas()
        for ticker in tickers:
            assert_frame_matches(frame, ticker, graphql_series(client, ticker, params))


def test_a_single_symbol_over_the_cost_limit_is_refused(database_url: str) -> None:
    with unlimited_client(database_url, max_query_cost=1_000) as client:
        response = download(client, tickers="ACME", interval="M5", maxPoints=5000)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


def test_rate_limit_applies(database_url: str) -> None:
    with app_client(database_url, rate_limit_cost_per_minute=30_000) as client:
        first = download(client, tickers="ACME", interval="M5", maxPoints=2000)
        assert first.status_code == 200
        assert int(first.headers["ratelimit-remaining"]) < 30_000
        refused = [
            download(client, tickers="ACME", interval="M5", maxPoints=2000) for _ in range(3)
        ]
    assert refused[-1].status_code == 429
    assert refused[-1].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert "retry-after" in refused[-1].headers


def test_read_key_is_required_when_configured(database_url: str) -> None:
    keys = create_keys(database_url, reader=[Scope.READ], ingester=[Scope.INGEST])
    with app_client(database_url, require_read_key=True) as client:
        anonymous = download(client, tickers="ACME")
        assert anonymous.status_code == 401
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        wrong = download(
            client, tickers="ACME", headers={"authorization": f"Bearer {keys['ingester']}"}
        )
        assert wrong.status_code == 403
        bad = download(client, tickers="ACME", headers={"authorization": "Bearer mg_nope_nope"})
        assert bad.status_code == 401
        good = download(
            client, tickers="ACME", headers={"authorization": f"Bearer {keys['reader']}"}
        )
        assert good.status_code == 200
        assert read_arrow(good.content).num_rows > 0


def test_stream_holds_one_batch_per_symbol(api: TestClient) -> None:
    response = download(api, tickers="ACME,GLOBX", interval="H1")
    reader = pa.ipc.open_stream(response.content)
    batches = list(reader)
    assert len(batches) == 2
    assert [b.column(0).dictionary.to_pylist() for b in batches] == [["ACME"], ["GLOBX"]]
    assert all(np.all(np.diff(b.column(2).to_numpy().astype("int64")) > 0) for b in batches)


@pytest.mark.parametrize(
    "settings",
    [
        # Nothing reads the columns' JSON: the execution leaves it out (graphql_api/fastpath.py).
        {"cache_enabled": False, "verify_fast_path": False},
        # A response cache: the second download is answered from the cached JSON.
        {"cache_enabled": True, "verify_fast_path": False},
        # No fast path: the columns reach the route as lists in the result.
        {"fast_path": False, "verify_fast_path": False, "cache_enabled": False},
    ],
    ids=["without JSON", "response cache", "no fast path"],
)
def test_arrow_equals_series_whatever_the_execution_keeps(
    database_url: str, settings: dict[str, Any]
) -> None:
    params = {"interval": "M15", "session": "ALL"}
    with unlimited_client(database_url, **settings) as client:
        for _ in range(2):
            response = download(client, tickers="UMBRL,ACME", **params)
            assert response.status_code == 200, response.text
            frame = read_arrow(response.content).to_pandas()
            for ticker in ("UMBRL", "ACME"):
                assert_frame_matches(frame, ticker, graphql_series(client, ticker, params))


def test_from_and_to_compare_as_instants(api: TestClient) -> None:
    """An hour written at +05:00 and its end in UTC: a valid range, however the texts compare
    (the +05:00 text sorts after the UTC one)."""
    first = datetime.fromisoformat(graphql_series(api, "ACME", {"interval": "H1"})["time"][1])
    start = first.astimezone(timezone(timedelta(hours=5)))
    end = (first + timedelta(hours=1)).astimezone(UTC)
    assert start.isoformat() > end.isoformat()
    params = {"interval": "M1", "from": start.isoformat(), "to": end.isoformat()}
    response = download(api, tickers="ACME", **params)
    assert response.status_code == 200, response.text
    frame = read_arrow(response.content).to_pandas()
    assert_frame_matches(frame, "ACME", graphql_series(api, "ACME", params))


def test_a_group_refused_mid_stream_ends_the_body_without_its_end(database_url: str) -> None:
    """The rate budget holds the first group, not the second: the response has started, so
    it is cut short (no end-of-stream), never completed as a shorter valid stream."""
    from graphql_api.download import DownloadError

    limits = {"max_query_cost": 20_000, "rate_limit_cost_per_minute": 25_000}
    with app_client(database_url, **limits) as client, pytest.raises(DownloadError) as cut:
        download(client, tickers="ACME,GLOBX", interval="M5", maxPoints=2000)
    assert cut.value.status == 429
