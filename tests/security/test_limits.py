"""Query cost (from literals and variables), depth/alias/token limits, cost-weighted rate limits."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from graphql_api.app import create_app
from graphql_api.auth import Scope
from tests.conftest import migrated_settings
from tests.security.helpers import (
    GRAPHQL_RESPONSE,
    JSON,
    app_client,
    codes,
    create_keys,
    demo_database,
    post,
)

BARS_LITERAL = '{ symbol(ticker: "AAPL") { bars(first: 600) { edges { cursor } } } }'
BARS_VARIABLE = (
    'query Bars($n: Int) { symbol(ticker: "AAPL") { bars(first: $n) { edges { cursor } } } }'
)
BARS_LAST_VARIABLE = (
    'query Bars($n: Int) { symbol(ticker: "AAPL") { bars(last: $n) { edges { cursor } } } }'
)
BARS_DEFAULT_VARIABLE = (
    'query Bars($n: Int = 600) { symbol(ticker: "AAPL") { bars(first: $n) { edges { cursor } } } }'
)
LIMIT = 1000


@pytest.fixture(scope="module")
def url(make_database: Callable[[], str]) -> str:
    return demo_database(make_database)


@pytest.fixture(scope="module")
def priced(url: str) -> Iterator[TestClient]:
    """An app with a small cost limit (rate limiting effectively off)."""
    with app_client(url, max_query_cost=LIMIT) as client:
        yield client


# --- cost of accepted requests ----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "cost"),
    [
        ('{ symbol(ticker: "IBM") { ticker } }', None, 2),
        # symbols 1 + edges 5 + node 5 + ticker 5
        ("{ symbols(first: 5) { edges { node { ticker } } } }", None, 16),
        ("query($n: Int) { symbols(first: $n) { edges { node { ticker } } } }", {"n": 5}, 16),
        ("query($n: Int = 5) { symbols(first: $n) { edges { node { ticker } } } }", None, 16),
        # no size: the default page size (100)
        ("{ symbols { totalCount } }", None, 101),
        # symbol 1 + bars 1 + edges 300 + cursor 300
        ('{ symbol(ticker: "AAPL") { bars(first: 300) { edges { cursor } } } }', None, 602),
        (BARS_VARIABLE, {"n": 300}, 602),
        (BARS_LAST_VARIABLE, {"n": 300}, 602),
        # series: symbol 1 + series 1 + close 50 points
        ('{ symbol(ticker: "AAPL") { series(maxPoints: 50) { close } } }', None, 52),
        (
            'query($p: Int!) { symbol(ticker: "AAPL") { series(maxPoints: $p) { close } } }',
            {"p": 50},
            52,
        ),
        # fragments and inline fragments count like inline selections
        (
            "{ symbols(first: 5) { edges { node { ...T } } } } fragment T on Symbol { ticker }",
            None,
            16,
        ),
        # nodes 1 + ticker once per id
        ('{ nodes(ids: ["a", "b", "c"]) { ... on Symbol { ticker } } }', None, 4),
    ],
)
def test_cost_of_accepted_requests(
    priced: TestClient, query: str, variables: dict[str, Any] | None, cost: int
) -> None:
    response = post(priced, query, variables)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["extensions"]["cost"] == cost
    assert "data" in body


def test_cost_at_the_limit_is_accepted(url: str) -> None:
    with app_client(url, max_query_cost=602) as api:
        assert post(api, BARS_VARIABLE, {"n": 300}).status_code == 200
        refused = post(api, BARS_VARIABLE, {"n": 301})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["cost"] == 604


# --- costly requests are refused before execution ---------------------------------------


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param(BARS_LITERAL, None, id="first-literal"),
        pytest.param(BARS_VARIABLE, {"n": 600}, id="first-variable"),
        pytest.param(BARS_LAST_VARIABLE, {"n": 600}, id="last-variable"),
        pytest.param(BARS_DEFAULT_VARIABLE, None, id="first-variable-default"),
        pytest.param(BARS_DEFAULT_VARIABLE, {"n": 600}, id="default-overridden"),
    ],
)
def test_costly_query_is_refused_with_its_cost(
    priced: TestClient, query: str, variables: dict[str, Any] | None
) -> None:
    response = post(priced, query, variables)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = response.json()
    assert "data" not in body
    (error,) = body["errors"]
    # symbol 1 + bars 1 + edges 600 + cursor 600
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 1202, "limit": LIMIT}
    assert "1202" in error["message"]
    assert str(LIMIT) in error["message"]


def test_variable_default_is_overridden_by_the_request(priced: TestClient) -> None:
    response = post(priced, BARS_DEFAULT_VARIABLE, {"n": 3})
    assert response.status_code == 200
    assert response.json()["extensions"]["cost"] == 8


def test_costly_query_is_200_for_legacy_clients(priced: TestClient) -> None:
    response = post(priced, BARS_LITERAL, accept=JSON)
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert codes(body) == ["QUERY_TOO_COSTLY"]


def test_nested_lists_multiply(priced: TestClient) -> None:
    query = "{ symbols(first: 10) { edges { node { bars(first: 10) { edges { cursor } } } } } }"
    body = post(priced, query).json()
    # symbols 1 + edges 10 + node 10 + bars 10 + edges 100 + cursor 100
    assert body["extensions"]["cost"] == 231
    deeper = query.replace("bars(first: 10)", "bars(first: 100)")
    refused = post(priced, deeper).json()
    assert refused["errors"][0]["extensions"]["cost"] == 2031


def test_absurd_sizes_are_refused_not_crashed(priced: TestClient) -> None:
    huge = '{ symbol(ticker: "AAPL") { bars(first: 99999999999999999999999) { nodes { close } } } }'
    response = post(priced, huge)
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error["extensions"]["cost"] > LIMIT
    assert error["extensions"]["cost"] <= 2**53 - 1  # a JSON-safe integer


def test_fragment_bomb_is_refused_quickly(priced: TestClient) -> None:
    # Each fragment spreads the next one twice: 2**n selections from a few hundred tokens.
    n = 21
    fragments = [f"fragment F{i} on Symbol {{ ...F{i + 1} ...F{i + 1} }}" for i in range(n)]
    fragments.append(f"fragment F{n} on Symbol {{ ticker }}")
    query = '{ symbol(ticker: "AAPL") { ...F0 } }\n' + "\n".join(fragments)
    started = time.perf_counter()
    response = post(priced, query)
    elapsed = time.perf_counter() - started
    assert response.status_code == 400
    assert codes(response.json()) == ["QUERY_TOO_COSTLY"]
    assert response.json()["errors"][0]["extensions"]["cost"] == 1 + 2**n
    assert elapsed < 2.0, f"cost analysis took {elapsed:.1f} s"


# --- depth, aliases, tokens -----------------------------------------------------------------


@pytest.fixture(scope="module")
def shaped(url: str) -> Iterator[TestClient]:
    with app_client(url, max_query_depth=4, max_aliases=3, max_tokens=60) as client:
        yield client


def test_depth_limit(shaped: TestClient) -> None:
    ok = post(shaped, "{ symbols(first: 1) { edges { node { ticker } } } }")
    assert ok.status_code == 200, ok.text
    deep = "{ symbols(first: 1) { edges { node { bars(first: 1) { nodes { close } } } } } }"
    response = post(shaped, deep)
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "exceeds maximum operation depth of 4" in body["errors"][0]["message"]


def test_depth_limit_sees_through_fragments(shaped: TestClient) -> None:
    query = (
        "{ symbols(first: 1) { edges { ...E } } } "
        "fragment E on SymbolEdge { node { bars(first: 1) { nodes { close } } } }"
    )
    response = post(shaped, query)
    assert response.status_code == 400
    assert "maximum operation depth" in response.json()["errors"][0]["message"]


def test_alias_limit(shaped: TestClient) -> None:
    three = '{ a: symbol(ticker: "A") { ticker } b: __typename c: __typename }'
    assert post(shaped, three).status_code == 200
    four = "{ a: __typename b: __typename c: __typename d: __typename }"
    response = post(shaped, four)
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["message"] == "4 aliases found. Allowed: 3"


def test_token_limit(shaped: TestClient) -> None:
    query = "{ " + " ".join(["__typename"] * 70) + " }"
    response = post(shaped, query)
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert "more than 60 tokens" in body["errors"][0]["message"]


# --- rate limiting -----------------------------------------------------------------------

# Cost 145: two fit in a bucket of 300 and leave 10, which refills (5 units/s) to 145 only
# after 27 s, so a slow machine cannot turn the third request into a pass.
PAGE = "{ symbols(first: 72) { edges { cursor } } }"
PAGE_COST = 145


def _assert_limited(response: Any, capacity: int) -> None:
    assert response.status_code == 429, response.text
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60
    assert response.headers["ratelimit-limit"] == str(capacity)
    assert 0 <= int(response.headers["ratelimit-remaining"]) < PAGE_COST
    assert 0 < int(response.headers["ratelimit-reset"]) <= 60
    body = response.json()
    assert "data" not in body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] == retry
    assert error["extensions"]["cost"] == PAGE_COST


def _exhaust(api: TestClient, capacity: int, token: str | None = None) -> None:
    """Spend the bucket: 300 units allow two requests of cost 145, not a third."""
    first = post(api, PAGE, token=token)
    assert first.status_code == 200, first.text
    assert first.headers["ratelimit-limit"] == str(capacity)
    assert int(first.headers["ratelimit-remaining"]) == capacity - PAGE_COST
    assert post(api, PAGE, token=token).status_code == 200
    _assert_limited(post(api, PAGE, token=token), capacity)


def test_rate_limit_in_memory(url: str) -> None:
    tokens = create_keys(url, rl_one=[Scope.READ], rl_two=[Scope.READ])
    with app_client(url, rate_limit_cost_per_minute=300, redis_url=None) as api:
        _exhaust(api, 300)
        # Cheaper requests still fit in what is left (weighted by cost, not counted).
        cheap = post(api, "{ __typename }")
        assert cheap.status_code == 200
        # Keys have buckets of their own, apart from the client's address and each other.
        _exhaust(api, 300, tokens["rl_one"])
        assert post(api, PAGE, token=tokens["rl_two"]).status_code == 200
        _assert_limited(post(api, PAGE), 300)


def test_refused_requests_do_not_spend_tokens(url: str) -> None:
    with app_client(url, rate_limit_cost_per_minute=300, max_query_cost=200) as api:
        for _ in range(5):
            assert post(api, BARS_LITERAL).status_code == 400  # too costly: never charged
        assert post(api, PAGE).status_code == 200
        assert post(api, PAGE).status_code == 200


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)

    def flush() -> None:
        for key in client.scan_iter(match="mg:rl:*", count=1000):
            client.delete(key)

    flush()
    yield client
    flush()
    client.close()


def _client_at(url: str, address: str, **overrides: Any) -> TestClient:
    app = create_app(migrated_settings(url, **overrides))
    return TestClient(app, client=(address, 40000))


def test_rate_limit_over_redis_is_shared_between_processes(
    url: str, redis_url: str, redis_client: redis.Redis
) -> None:
    ip_a = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.1"
    ip_b = ip_a.removesuffix(".1") + ".2"
    token = create_keys(url, rl_redis=[Scope.READ])["rl_redis"]
    limits = {"rate_limit_cost_per_minute": 300, "redis_url": redis_url}
    with _client_at(url, ip_a, **limits) as first:
        _exhaust(first, 300)
        assert redis_client.exists(f"mg:rl:ip:{ip_a}")  # the bucket lives in Redis
        # A key's bucket is separate from the address it calls from.
        assert post(first, PAGE, token=token).status_code == 200
    # Another app instance (as another process would) sees the same buckets...
    with _client_at(url, ip_a, **limits) as second:
        _assert_limited(post(second, PAGE), 300)
    # ...and another address has its own.
    with _client_at(url, ip_b, **limits) as third:
        assert post(third, PAGE).status_code == 200
        assert post(third, PAGE).status_code == 200
        _assert_limited(post(third, PAGE), 300)
    ttl = redis_client.ttl(f"mg:rl:ip:{ip_b}")
    assert 0 < ttl <= 61  # buckets expire once they would be full again


def test_rate_limit_headers_on_accepted_requests(url: str, redis_url: str) -> None:
    with app_client(url, rate_limit_cost_per_minute=10_000, redis_url=redis_url) as api:
        response = post(api, "{ __typename }", headers={"x-request-id": secrets.token_hex(4)})
    assert response.status_code == 200
    assert response.headers["ratelimit-limit"] == "10000"
    assert int(response.headers["ratelimit-remaining"]) <= 9999
    assert "retry-after" not in response.headers


def test_rate_limit_off(url: str) -> None:
    with app_client(url, rate_limit_cost_per_minute=0) as api:
        for _ in range(3):
            response = post(api, PAGE)
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers
