"""Faults, for real (no mocks): PostgreSQL stopped and restarted, Redis absent or silent, a
statement cut by the timeout, clients that hang up mid-request or mid-response.
"""

from __future__ import annotations

import logging
import shutil
import socket
import struct
import time
from collections.abc import Callable, Iterator

import httpx
import orjson
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from graphql_api.app import create_app
from graphql_api.auth import Scope
from graphql_api.embedded import EmbeddedPostgres
from tests.conftest import migrated_settings
from tests.security.helpers import (
    app_client,
    app_connections,
    codes,
    create_keys,
    demo_database,
    embedded_demo_postgres,
    free_port,
    live_server,
    post,
    wait_until,
)

LATEST = '{ symbol(ticker: "AAPL") { ticker latestBar { time close } } }'
UNAVAILABLE = "the database is unavailable; retry shortly"


# --- PostgreSQL stopped mid-test, then started again on the same data directory ------------


@pytest.fixture(scope="module")
def second_postgres(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL of our own (pgserver wheel) with the demo data; the test stops it.

    Not `delete_on_stop`: the test stops and restarts it on the same data directory; the
    directory is removed here at the end.
    """
    data_dir = tmp_path_factory.mktemp("faults") / "pg"
    try:
        with embedded_demo_postgres(data_dir) as (server, url):
            yield server, url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code in (200, 503), response.text  # never a 500
    body = response.json()
    assert "SERVICE_UNAVAILABLE" in codes(body), body
    assert "INTERNAL_SERVER_ERROR" not in codes(body)
    assert any(e["message"] == UNAVAILABLE for e in body["errors"])
    if response.status_code == 200:  # a field error: execution had started
        assert body["data"] in (None, {"symbol": None})


def test_postgres_outage_and_recovery_without_restart(
    second_postgres: tuple[EmbeddedPostgres, str],
) -> None:
    server, url = second_postgres
    token = create_keys(url, outage=[Scope.READ])["outage"]
    auth = {"authorization": f"Bearer {token}"}
    with (
        TestClient(create_app(migrated_settings(url, api_key_cache_seconds=0))) as api,
        TestClient(
            create_app(migrated_settings(url, api_key_cache_seconds=0, cache_enabled=False))
        ) as uncached,
    ):
        baseline = post(api, LATEST).json()
        expected = baseline["data"]
        assert expected["symbol"]["latestBar"]["close"] == 430.47
        assert api.get("/readyz").status_code == 200

        server.stop()
        try:
            for client in (api, uncached):
                _assert_unavailable(post(client, LATEST))
                _assert_unavailable(post(client, '{ symbol(ticker: "MSFT") { ticker } }'))
                # A key cannot be checked without the database: still a 503, not a 500.
                keyed = post(client, LATEST, headers=auth)
                _assert_unavailable(keyed)
                ready = client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["database"].startswith("unreachable")
                assert client.get("/healthz").status_code == 200  # alive, not ready
        finally:
            assert server.start() == url  # same data directory, same socket

        for client in (api, uncached):
            assert wait_until(lambda c=client: c.get("/readyz").status_code == 200)
            assert post(client, LATEST).json() == baseline
            keyed = post(client, LATEST, headers=auth)
            assert keyed.status_code == 200
            assert keyed.json()["data"] == expected
            fresh = post(client, '{ symbol(ticker: "IBM") { latestBar { close } } }')
            assert fresh.json()["data"]["symbol"]["latestBar"]["close"] > 0


def test_postgres_on_a_closed_port() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    with TestClient(create_app(migrated_settings(url, cache_enabled=False))) as api:
        _assert_unavailable(post(api, LATEST))
        _assert_unavailable(post(api, LATEST, token="mgk_abc_def"))
        assert api.get("/readyz").status_code == 503


# --- Redis absent or silent: answers served without it ----------------------------------


@pytest.fixture(scope="module")
def url(make_database: Callable[[], str]) -> str:
    return demo_database(make_database)


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung Redis)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


QUERIES = [
    LATEST,
    '{ symbol(ticker: "ACME") { bars(interval: H1, first: 3) { nodes { time close } } } }',
    '{ symbol(ticker: "MSFT") { series(interval: W1, from: "2012-01-01T00:00:00Z", '
    'to: "2012-06-01T00:00:00Z", maxPoints: 50) { time close } } }',
    "{ symbols(first: 3) { edges { node { ticker } } pageInfo { endCursor } } }",
]


def test_redis_unreachable_serves_correct_answers(url: str) -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    with app_client(url) as reference:
        expected = [post(reference, q).json() for q in QUERIES]
    with app_client(url, redis_url=redis_url, rate_limit_cost_per_minute=5_000) as api:
        for _ in range(2):  # a second round would hit a cache, were there one
            for query, want in zip(QUERIES, expected, strict=True):
                response = post(api, query)
                assert response.status_code == 200, response.text
                assert response.json() == want
                assert "errors" not in response.json()
                # The rate limiter fell back to memory: the headers are still there.
                assert response.headers["ratelimit-limit"] == "5000"


@pytest.mark.parametrize("cache_enabled", [False, True], ids=["limiter-only", "limiter-and-cache"])
def test_hung_redis_is_not_waited_for_on_every_request(
    url: str, silent_redis: str, cache_enabled: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # A Redis that accepts connections and never answers costs a socket timeout per call;
    # after the first failure the service should stop waiting for it on every request.
    caplog.set_level(logging.WARNING, logger="graphql_api")
    with app_client(url, redis_url=silent_redis, cache_enabled=cache_enabled) as api:
        assert post(api, LATEST).status_code == 200  # may pay the timeouts once
        for ticker in ("IBM", "MSFT", "GOOG"):
            query = LATEST.replace("AAPL", ticker)
            started = time.perf_counter()
            response = post(api, query)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200
            assert "errors" not in response.json()
            assert response.json()["data"]["symbol"]["ticker"] == ticker
            assert elapsed < 0.75, f"{elapsed:.2f} s for one request with Redis hung"
    # The limiter tried Redis once, then backed off (one timeout, one warning).
    fallbacks = [r for r in caplog.records if "rate limiter falling back" in r.getMessage()]
    assert len(fallbacks) == 1, [r.getMessage() for r in fallbacks]


def test_rate_limit_without_redis_still_limits(url: str) -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    page = "{ symbols(first: 72) { edges { cursor } } }"  # cost 145: two fit in 300
    with app_client(url, redis_url=redis_url, rate_limit_cost_per_minute=300) as api:
        assert post(api, page).status_code == 200
        assert post(api, page).status_code == 200
        limited = post(api, page)
    assert limited.status_code == 429
    assert codes(limited.json()) == ["RATE_LIMITED"]


# --- a slow statement cut by statement_timeout ----------------------------------------


def test_slow_query_is_cut_by_the_statement_timeout(url: str) -> None:
    query = '{ symbol(ticker: "GOOG") { bars(first: 5) { nodes { time close } } } }'
    with app_client(url, statement_timeout_ms=300) as api:
        # Another session holds the bars: the read waits on the lock until the timeout.
        with psycopg.connect(url) as locker:
            locker.execute("LOCK TABLE bars IN ACCESS EXCLUSIVE MODE")
            started = time.perf_counter()
            response = post(api, query)
            elapsed = time.perf_counter() - started
            locker.rollback()
        assert response.status_code in (200, 503), response.text
        body = response.json()
        assert codes(body) == ["QUERY_TIMEOUT"], body
        error = body["errors"][0]
        assert "statement timeout" in error["message"]
        assert "requestId" in error["extensions"] or response.status_code == 503
        assert "canceling statement" not in response.text  # the server's text stays in the log
        assert 0.25 < elapsed < 5.0
        # The connection that timed out is healthy again: the same query now succeeds.
        again = post(api, query)
        assert again.status_code == 200
        assert len(again.json()["data"]["symbol"]["bars"]["nodes"]) == 5


# --- clients that disconnect mid-request or mid-response -------------------------------


def _raw_post(base: str, body: bytes, *, length: int | None = None) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (
        "POST /graphql HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {length if length is not None else len(body)}\r\n"
        "\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _reset(sock: socket.socket) -> None:
    """Close abruptly (RST), as a crashed client or a killed tab does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_client_disconnects_leak_no_connection(url: str, pg_admin_url: str) -> None:
    app: FastAPI = create_app(migrated_settings(url, pool_size=5, max_overflow=5))
    big = (
        '{ symbol(ticker: "%s") { bars(interval: M1, first: 3000) '
        "{ nodes { time close volume } } } }"
    )
    with live_server(app) as base:
        pool = app.state.services.engine.pool
        # 1. Mid-query: the requests wait on a lock while their clients hang up.
        with psycopg.connect(url) as locker:
            locker.execute("LOCK TABLE bars IN ACCESS EXCLUSIVE MODE")
            waiting = [
                _raw_post(base, orjson.dumps({"query": big % ticker}))
                for ticker in ("ACME", "GLOBX", "INITECH")
            ]
            assert wait_until(lambda: pool.checkedout() >= 3), pool.status()
            for sock in waiting:
                _reset(sock)
            locker.rollback()
        # 2. Mid-response: read the first bytes of a large answer, then hang up.
        for ticker in ("ACME", "GLOBX", "INITECH", "ACME"):
            sock = _raw_post(base, orjson.dumps({"query": big.replace("3000", "2999") % ticker}))
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
            _reset(sock)
        # 3. Mid-request: announce a large body, send part of it, hang up.
        for _ in range(3):
            sock = _raw_post(base, b'{"query": "' + b" " * 65_536, length=5_000_000)
            _reset(sock)

        assert wait_until(lambda: pool.checkedout() == 0, timeout=15), pool.status()

        def settled() -> bool:
            states = [state for state, _ in app_connections(pg_admin_url, url)]
            return not any(s in ("active", "idle in transaction") for s in states)

        assert wait_until(settled, timeout=15), app_connections(pg_admin_url, url)
        # The service still answers, and returns what it borrows.
        response = httpx.post(f"{base}/graphql", json={"query": LATEST}, timeout=10)
        assert response.json()["data"]["symbol"]["latestBar"]["close"] == 430.47
        assert wait_until(lambda: pool.checkedout() == 0), pool.status()
        assert len(app_connections(pg_admin_url, url)) <= 10  # within pool_size + max_overflow
