"""Field and response caching: same answers, never stale, degrades without Redis, single-flight."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import redis
from fastapi.testclient import TestClient

from core import db
from core.cache import FieldCache
from core.settings import Settings
from graphql_api.app import create_app
from tests.conftest import migrated_settings
from workers.demo import load_demo_data
from workers.upsert import upsert_bars

PAGE = """{ symbols(first: 8) { edges { node { ticker
    latestBar(interval: M1) { time close }
    bars(interval: M5, first: 20) { edges { cursor node { time open high low close volume } } }
    series(interval: H1, maxPoints: 500) { interval time close } } } } }"""
ACME_LATEST = '{ symbol(ticker: "ACME") { latestBar(interval: M1) { time close closed } } }'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def own_database(make_database: Callable[[], str]) -> Settings:
    """A database of this module's own, since these tests write bars."""
    settings = migrated_settings(make_database())
    db.upgrade(settings)

    async def load() -> None:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            await load_demo_data(conn)
        finally:
            await conn.close()

    asyncio.run(load())
    return settings


def _query(client: TestClient, query: str, **kw: Any) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query}, **kw)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


def _write_bar(dsn: str, ticker: str, ts: datetime, close: float) -> None:
    async def write() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            sid = await conn.fetchval("SELECT id FROM symbols WHERE ticker = $1", ticker)
            await upsert_bars(
                conn, [(sid, "M1", ts, close, close + 1, close - 1, close, 100.0)], source="test"
            )
        finally:
            await conn.close()

    asyncio.run(write())


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_hit_equals_miss_and_no_stale_read_after_ingest(
    own_database: Settings, redis_url: str, backend: str
) -> None:
    if backend == "redis":
        redis.Redis.from_url(redis_url).flushdb()
    settings = own_database.model_copy(
        update={"redis_url": redis_url if backend == "redis" else None}
    )
    with TestClient(create_app(settings)) as client:
        cache: FieldCache = client.app.state.services.cache  # type: ignore[attr-defined]
        miss = _query(client, PAGE)
        computed = cache.stats.computed
        assert computed > 0
        hit = _query(client, PAGE)
        assert hit == miss
        assert cache.stats.computed == computed  # answered from the cache

        before = _query(client, ACME_LATEST)["data"]["symbol"]["latestBar"]
        new_ts = (
            datetime(2024, 3, 15, 21, 0, tzinfo=UTC)
            if backend == "memory"
            else datetime(2024, 3, 15, 21, 1, tzinfo=UTC)
        )
        _write_bar(settings.asyncpg_dsn, "ACME", new_ts, 77.0 if backend == "memory" else 78.0)
        after = _query(client, ACME_LATEST)["data"]["symbol"]["latestBar"]
        assert after != before
        assert after["time"] == new_ts.isoformat()
        assert after["close"] == (77.0 if backend == "memory" else 78.0)
        # The bigger query also sees the new bar: nothing stale at any level.
        page = _query(client, PAGE)
        acme = next(
            e["node"] for e in page["data"]["symbols"]["edges"] if e["node"]["ticker"] == "ACME"
        )
        assert acme["latestBar"]["time"] == new_ts.isoformat()


def test_field_cache_hits_without_response_cache(own_database: Settings) -> None:
    """Two different documents needing the same bars share the loader-level entries."""
    with TestClient(create_app(own_database)) as client:
        cache: FieldCache = client.app.state.services.cache  # type: ignore[attr-defined]
        q1 = '{ symbol(ticker: "GLOBX") { bars(interval: M15, first: 50) { nodes { close } } } }'
        q2 = '{ symbol(ticker: "GLOBX") { bars(interval: M15, first: 50) { nodes { time } } } }'
        _query(client, q1)
        computed = cache.stats.computed
        _query(client, q2)
        assert cache.stats.computed == computed


@pytest.fixture
def private_redis() -> Iterator[tuple[int, Callable[[], subprocess.Popen[bytes]]]]:
    """A second Redis on its own port that the test may kill and restart."""
    port = _free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is needed for this test"
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        procs.append(proc)
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        return proc

    yield port, start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_redis_dying_mid_test_degrades_then_recovers(
    own_database: Settings,
    private_redis: tuple[int, Callable[[], subprocess.Popen[bytes]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After a failure the cache leaves Redis alone for RETRY_SECONDS; shortened for the test.
    monkeypatch.setattr("core.cache.RETRY_SECONDS", 0.3)
    port, start = private_redis
    server = start()
    settings = own_database.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    with TestClient(create_app(settings)) as client:
        cache: FieldCache = client.app.state.services.cache  # type: ignore[attr-defined]
        reference = _query(client, PAGE)
        server.kill()
        server.wait()
        started = time.monotonic()
        assert _query(client, PAGE) == reference  # served from PostgreSQL, no error
        assert time.monotonic() - started < 10
        assert cache.stats.errors > 0
        start()
        # The cache resumes by itself: a stale pooled connection may fail once more (and
        # back off again), so keep asking until answers come from Redis, within a deadline.
        hits = cache.stats.hits
        deadline = time.monotonic() + 15
        while cache.stats.hits == hits and time.monotonic() < deadline:
            time.sleep(0.35)
            assert _query(client, PAGE) == reference
        assert cache.stats.hits > hits


def test_concurrent_misses_compute_once_across_processes(redis_url: str) -> None:
    async def run() -> tuple[int, list[list[bytes]]]:
        # Two FieldCache objects stand for two API processes sharing one Redis.
        caches = [FieldCache(redis_url), FieldCache(redis_url)]
        calls = 0
        key = f"test-stampede-{time.time_ns()}"

        async def compute(indexes: list[int]) -> list[bytes]:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.2)  # a slow query
            return [b"value" for _ in indexes]

        results = await asyncio.gather(
            *(caches[i % 2].read_through([caches[0].key(key)], compute, [60.0]) for i in range(10))
        )
        for cache in caches:
            await cache.close()
        return calls, results

    calls, results = asyncio.run(run())
    assert calls == 1
    assert all(r == [b"value"] for r in results)


def test_cached_values_are_bytes_not_pickles(own_database: Settings, redis_url: str) -> None:
    client_redis = redis.Redis.from_url(redis_url)
    client_redis.flushdb()
    settings = own_database.model_copy(update={"redis_url": redis_url})
    with TestClient(create_app(settings)) as client:
        _query(client, PAGE)
    keys = [k for k in client_redis.keys("mg:1:*") if client_redis.type(k) == b"string"]
    assert any(b":bars:" in k for k in keys) and any(b":resp:" in k for k in keys)
    for key in keys:
        value = client_redis.get(key)
        assert value is not None
        assert not value.startswith(b"\x80"), key  # the pickle protocol marker
        json.loads(value.removeprefix(b"bytes:"))  # JSON text (orjson) behind cashews' tag


def test_etag_304_and_cache_control(client: TestClient) -> None:
    params = {"query": '{ symbol(ticker: "IBM") { latestBar { close } } }'}
    headers = {"accept": "application/graphql-response+json"}
    first = client.get("/graphql", params=params, headers=headers)
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public, max-age=")
    again = client.get("/graphql", params=params, headers={**headers, "if-none-match": tag})
    assert again.status_code == 304
    assert again.content == b""
    other = client.get("/graphql", params=params, headers={**headers, "if-none-match": 'W/"x"'})
    assert other.status_code == 200
    authorised = client.get("/graphql", params=params, headers={**headers, "authorization": ""})
    assert authorised.headers["cache-control"].startswith("public")
    post = client.post("/graphql", json=params)
    assert "etag" not in post.headers  # only GETs are HTTP-cacheable


def test_etag_changes_after_ingest(own_database: Settings) -> None:
    params = {"query": ACME_LATEST}
    with TestClient(create_app(own_database)) as client:
        tag = client.get("/graphql", params=params, headers={"accept": "application/json"}).headers[
            "etag"
        ]
        _write_bar(own_database.asyncpg_dsn, "ACME", datetime(2024, 3, 15, 21, 5, tzinfo=UTC), 9.0)
        response = client.get(
            "/graphql", params=params, headers={"accept": "application/json", "if-none-match": tag}
        )
        assert response.status_code == 200
        assert response.headers["etag"] != tag
        assert response.json()["data"]["symbol"]["latestBar"]["close"] == 9.0


def test_automatic_persisted_queries(client: TestClient) -> None:
    query = '{ symbol(ticker: "MSFT") { name } }'
    digest = hashlib.sha256(query.encode()).hexdigest()
    ext = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    miss = client.post("/graphql", json={"extensions": ext}).json()
    assert miss["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    registered = client.post("/graphql", json={"extensions": ext, "query": query}).json()
    assert registered["data"] == {"symbol": {"name": "Microsoft Corp."}}
    hit = client.get(
        "/graphql", params={"extensions": json.dumps(ext)}, headers={"accept": "application/json"}
    )
    assert hit.json()["data"] == {"symbol": {"name": "Microsoft Corp."}}
    wrong = client.post("/graphql", json={"extensions": ext, "query": "{ __typename }"})
    assert wrong.status_code == 400
    assert "does not match" in wrong.json()["errors"][0]["message"]


def test_registered_only_mode(own_database: Settings) -> None:
    settings = own_database.model_copy(update={"persisted_queries": "registered"})
    with TestClient(create_app(settings)) as client:
        response = client.post("/graphql", json={"query": "{ __typename }"})
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
