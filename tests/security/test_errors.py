"""Error codes and masking: server faults are hidden and logged once; client mistakes are not."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from core import db
from graphql_api.auth import Scope
from tests.conftest import migrated_settings
from tests.security.helpers import (
    GRAPHQL_RESPONSE,
    app_client,
    codes,
    create_keys,
    demo_database,
    post,
)

SYMBOLS = "{ symbols(first: 3) { edges { node { ticker exchange } } } }"


@pytest.fixture(scope="module")
def broken_api(make_database: Callable[[], str]) -> Iterator[TestClient]:
    """An app over a database whose schema drifted: the resolvers' SQL fails for real."""
    url = make_database()
    db.upgrade(migrated_settings(url))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO symbols (ticker, name, exchange, asset_class, currency, timezone) "
            "VALUES ('ZZZ', 'Zed', 'X', 'equity', 'USD', 'UTC')"
        )
        conn.execute("ALTER TABLE symbols RENAME COLUMN exchange TO exchange_renamed")
    with app_client(url) as client:
        yield client


@pytest.fixture(scope="module")
def api(make_database: Callable[[], str]) -> Iterator[TestClient]:
    with app_client(demo_database(make_database)) as client:
        yield client


def _errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_unexpected_error_is_masked_and_logged_once(
    broken_api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = post(broken_api, SYMBOLS, headers={"x-request-id": "req-masked-1"})
    assert response.status_code == 200  # execution started: a field error, not a 5xx
    body = response.json()
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["message"] == "internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-masked-1"}
    assert error["path"] == ["symbols"]
    assert set(error) == {"message", "locations", "path", "extensions"}
    for leak in ("does not exist", "SELECT", "s.exchange", "bar_series", "Traceback", "asyncpg"):
        assert leak not in response.text, leak
    logged = _errors_logged(caplog)
    assert len(logged) == 1, [r.getMessage() for r in logged]
    record = logged[0]
    assert "req-masked-1" in record.getMessage()
    assert record.exc_info is not None  # the traceback goes to the log, not to the client
    assert "exchange" in str(record.exc_info[1])


def test_masked_error_gets_a_generated_request_id(broken_api: TestClient) -> None:
    response = post(broken_api, SYMBOLS)
    error = response.json()["errors"][0]
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]


def test_other_fields_survive_a_masked_error(broken_api: TestClient) -> None:
    body = post(broken_api, "{ __typename symbols(first: 1) { totalCount } }").json()
    # `symbols` is non-null, so its error nulls `data`; the error is still the masked one.
    assert codes(body) == ["INTERNAL_SERVER_ERROR"]


CLIENT_MISTAKES: list[Any] = [
    pytest.param("{ symbols(first: -1) { totalCount } }", None, "BAD_USER_INPUT", id="negative"),
    pytest.param(
        '{ symbols(first: 1, after: "garbage!") { totalCount } }',
        None,
        "BAD_USER_INPUT",
        id="bad-cursor",
    ),
    pytest.param(
        '{ symbol(ticker: "AAPL") { bars(from: "2010-01-01T00:00:00") { totalCount } } }',
        None,
        "BAD_USER_INPUT",
        id="naive-time",
    ),
    pytest.param(
        '{ symbol(ticker: "AAPL") { bars(first: 1, last: 1) { totalCount } } }',
        None,
        "BAD_USER_INPUT",
        id="first-and-last",
    ),
    pytest.param('{ node(id: "nonsense") { id } }', None, "BAD_USER_INPUT", id="bad-global-id"),
    # PostgreSQL cannot hold NUL in text: found by the fuzzer as an INTERNAL_SERVER_ERROR.
    pytest.param('{ symbol(ticker: "\\u0000") { ticker } }', None, "BAD_USER_INPUT", id="nul"),
    pytest.param(
        "query($s: String) { symbols(filter: {search: $s}) { totalCount } }",
        {"s": "A\x00"},
        "BAD_USER_INPUT",
        id="nul-variable",
    ),
    pytest.param("{ symbol(ticker: 1) { ticker } }", None, "GRAPHQL_VALIDATION_FAILED", id="type"),
    pytest.param("{ symbol { ticker }", None, "GRAPHQL_PARSE_FAILED", id="parse"),
    pytest.param(
        "query($n: Int) { symbols(first: $n) { totalCount } }",
        {"n": "many"},
        "GRAPHQL_VALIDATION_FAILED",
        id="variable",
    ),
]


@pytest.mark.parametrize(("query", "variables", "code"), CLIENT_MISTAKES)
def test_client_mistakes_have_codes_and_are_not_logged_as_errors(
    api: TestClient,
    caplog: pytest.LogCaptureFixture,
    query: str,
    variables: dict[str, Any] | None,
    code: str,
) -> None:
    caplog.set_level(logging.INFO)
    response = post(api, query, variables)
    assert response.status_code in (200, 400), response.text
    body = response.json()
    assert codes(body)[0] == code, body
    assert "INTERNAL_SERVER_ERROR" not in codes(body)
    assert not _errors_logged(caplog), [r.getMessage() for r in _errors_logged(caplog)]


def test_refusals_are_not_logged_as_errors(
    api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert post(api, "{ __typename }", token="mgk_nope_nope").status_code == 401
    assert api.post("/graphql", content=b"{", headers={"content-type": "application/json"})
    assert api.get("/graphql", params={"query": "mutation { x }"}).status_code == 405
    assert post(api, "mutation { x }").status_code == 401
    assert not _errors_logged(caplog)


def test_unknown_symbol_is_null_not_an_error(api: TestClient) -> None:
    body = post(api, '{ symbol(ticker: "NOPE") { ticker } }').json()
    assert body == {"data": {"symbol": None}, "extensions": {"cost": 2}}


def test_error_media_type_follows_accept(broken_api: TestClient) -> None:
    response = post(broken_api, SYMBOLS, accept=GRAPHQL_RESPONSE)
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2000-01-01T00:00:00", "2000-01-02T00:00:00Z"),  # naive start, aware end
        ("2000-01-01T00:00:00Z", "2000-01-02T00:00:00"),  # aware start, naive end
        ("2000-01-01T00:00:00", None),
    ],
)
def test_ingest_range_without_offset_is_bad_user_input(
    api: TestClient,
    make_database: Callable[[], str],
    caplog: pytest.LogCaptureFixture,
    start: str,
    end: str | None,
) -> None:
    # Found by the fuzzer: a naive bound next to an aware one was compared before being
    # checked, and the TypeError came back as INTERNAL_SERVER_ERROR.
    caplog.set_level(logging.INFO)
    token = create_keys(demo_database(make_database), ingest_range=[Scope.INGEST])["ingest_range"]
    mutation = (
        'mutation($f: DateTime, $t: DateTime) { requestIngest(provider: "binance", '
        'tickers: ["BTCUSDT"], from: $f, to: $t) { jobId } }'
    )
    response = post(api, mutation, {"f": start, "t": end}, token=token)
    assert response.status_code == 200
    body = response.json()
    assert codes(body) == ["BAD_USER_INPUT"], body
    message = body["errors"][0]["message"]
    naive = "`from`" if not start.endswith("Z") else "`to`"
    assert "UTC offset" in message and naive in message, message
    assert not _errors_logged(caplog)
