"""The HTTP surface: GraphQL endpoint, GraphiQL, health and readiness probes."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from graphql_api.app import create_app
from tests.conftest import GraphQL, migrated_settings

DONE_WHEN = '{ symbol(ticker: "AAPL") { name bars(first: 3) { edges { node { time close } } } } }'


def test_three_newest_daily_bars_of_aapl(gql: GraphQL) -> None:
    body = gql(DONE_WHEN)
    assert "errors" not in body
    symbol = body["data"]["symbol"]
    assert symbol["name"] == "Apple Inc."
    nodes = [e["node"] for e in symbol["bars"]["edges"]]
    # The last rows of bokeh-sampledata's AAPL series, newest first.
    assert nodes == [
        {"time": "2013-03-01T00:00:00+00:00", "close": 430.47},
        {"time": "2013-02-28T00:00:00+00:00", "close": 441.4},
        {"time": "2013-02-27T00:00:00+00:00", "close": 444.57},
    ]


def test_response_is_json(client: TestClient) -> None:
    response = client.post("/graphql", json={"query": '{ symbol(ticker: "IBM") { ticker } }'})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["data"] == {"symbol": {"ticker": "IBM"}}
    assert body["extensions"]["cost"] == 2


def test_get_query_works_for_api_clients(client: TestClient) -> None:
    response = client.get(
        "/graphql",
        params={"query": '{ symbol(ticker: "msft") { ticker } }'},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["symbol"]["ticker"] == "MSFT"


def test_browser_get_opens_graphiql(client: TestClient) -> None:
    response = client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ('{ symbol(ticker: "AAPL") { bars(first: 3 { edges { cursor } } } }', "Syntax Error"),
        ('{ symbol(ticker: "AAPL") { price } }', "Cannot query field 'price'"),
        ("{ symbols(first: -1) { edges { cursor } } }", "`first` must not be negative"),
        ('{ symbol(ticker: "AAPL") { bars(first: -1) { edges { cursor } } } }', "must not be neg"),
    ],
)
def test_bad_queries_get_clear_errors_not_500(
    client: TestClient, query: str, fragment: str
) -> None:
    response = client.post("/graphql", json={"query": query})
    assert response.status_code < 500
    errors = response.json()["errors"]
    assert any(fragment in e["message"] for e in errors), errors
    assert "Traceback" not in response.text


def test_bad_user_input_has_a_code(gql: GraphQL) -> None:
    body = gql('{ symbol(ticker: "AAPL") { bars(first: -1) { edges { cursor } } } }')
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT"}


def test_large_responses_are_gzipped(client: TestClient) -> None:
    query = '{ symbol(ticker: "AAPL") { bars(first: 500) { edges { node { time close } } } } }'
    response = client.post("/graphql", json={"query": query}, headers={"accept-encoding": "gzip"})
    assert response.headers.get("content-encoding") == "gzip"
    # httpx decodes transparently; the body still parses and holds every bar.
    assert len(response.json()["data"]["symbol"]["bars"]["edges"]) == 500
    small = client.post("/graphql", json={"query": '{ symbol(ticker: "IBM") { ticker } }'})
    assert small.headers.get("content-encoding") is None
    assert gzip.compress(b"x")  # gzip module usable: the middleware relies on it


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_ready(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


def test_readyz_unmigrated_database_is_503(make_database: Callable[[], str]) -> None:
    with TestClient(create_app(migrated_settings(make_database()))) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "at revision None" in body["checks"]["database"]


def test_readyz_unreachable_database_and_redis_is_503(settings: Settings) -> None:
    broken = migrated_settings(
        "postgresql://postgres@127.0.0.1:1/nowhere", redis_url="redis://127.0.0.1:1/0"
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"].startswith("unreachable")
    assert checks["redis"].startswith("unreachable")
