"""Read replicas against a real streaming standby (tests/scale/cluster.py).

Which server answered is read from the connection itself: core/replicas.py records
`pg_is_in_recovery()` of every new connection in `conn.info`, and the tests collect it for
each statement the app runs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url

from core import db
from core.settings import Settings
from graphql_api.app import create_app
from tests.conftest import migrated_settings
from tests.scale.cluster import ClusterUnavailable, ReplicaPair, make_pair
from workers.writer import BarWriter

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
NEWEST = '{ symbol(ticker: "ACME") { bars(interval: M1, first: 1) { nodes { time close } } } }'


@pytest.fixture(scope="module")
def pair(pg_admin_url: str) -> Iterator[ReplicaPair]:
    url = make_url(pg_admin_url)
    try:
        made = make_pair((url.host or "127.0.0.1", url.port or 5432))
    except ClusterUnavailable as exc:
        pytest.skip(f"no streaming standby could be made here: {exc}")
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def primary_settings(pair: ReplicaPair) -> Settings:
    """A migrated database `market` on the primary (the standby replays it)."""
    with psycopg.connect(pair.primary_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS mg_replica_test WITH (FORCE)")
        conn.execute("CREATE DATABASE mg_replica_test")
    database = make_url(pair.primary_url).set(database="mg_replica_test")
    settings = migrated_settings(database.render_as_string(hide_password=False))
    db.upgrade(settings)
    return settings


@pytest.fixture
def settings(pair: ReplicaPair, primary_settings: Settings) -> Settings:
    """The app's settings: the standby as the one read replica, checked often, no cache."""
    return migrated_settings(
        str(primary_settings.database_url),
        read_database_urls=pair.standby_url("mg_replica_test"),
        replica_check_seconds=0.2,
        replica_wait_seconds=1.0,
        cache_enabled=False,  # every request reads PostgreSQL, so every one is routed
    )


def ingest(settings: Settings, minutes: range, close: float = 10.5) -> int:
    """Write ACME minute bars on the primary; returns the newest data version written."""

    async def run() -> int:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            writer = BarWriter(conn, "M1", source="replica-test")
            frame = pd.DataFrame(
                {
                    "ticker": "ACME",
                    "ts": [T0 + timedelta(minutes=m) for m in minutes],
                    "open": 10.0,
                    "high": max(11.0, close),
                    "low": 9.0,
                    "close": close,
                    "volume": 100.0,
                }
            )
            await writer.write(frame)
            return max(c.id for c in writer.totals.changes)
        finally:
            await conn.close()

    return asyncio.run(run())


def standby_has(pair: ReplicaPair, version: int) -> bool:
    try:
        conn = psycopg.connect(pair.standby_url("mg_replica_test"))
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            return False  # the standby has not replayed the database's creation yet
        raise
    with conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM bar_changes WHERE id = %s)", (version,))
        return bool(row.fetchone() == (True,))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Statements:
    """Records, per SQL statement the app runs, whether its connection is to a standby."""

    def __init__(self, client: TestClient) -> None:
        services = client.app.state.services  # type: ignore[attr-defined]
        self.engines = [services.engine, *(r.engine for r in services.router.replicas)]
        self.seen: list[tuple[bool | None, str]] = []
        self._lock = threading.Lock()
        for engine in self.engines:
            event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with self._lock:
            self.seen.append((conn.info.get("in_recovery"), statement))

    def take(self) -> list[tuple[bool | None, str]]:
        with self._lock:
            seen, self.seen = self.seen, []
        return seen

    def bar_reads(self) -> list[bool | None]:
        """Recovery state of the connections that ran statements reading `bars`."""
        return [standby for standby, sql in self.take() if "FROM bars" in sql]


def newest(client: TestClient, **headers: str) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": NEWEST}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    node: dict[str, Any] = body["data"]["symbol"]["bars"]["nodes"][0]
    return node


def router_of(client: TestClient) -> Any:
    return client.app.state.services.router  # type: ignore[attr-defined]


def test_reads_are_served_by_the_standby(pair: ReplicaPair, settings: Settings) -> None:
    version = ingest(settings, range(0, 10))
    wait_for(lambda: standby_has(pair, version), 10, "the standby to replay the ingest")
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: router_of(client).usable() != [], 5, "the replica in rotation")
        statements = Statements(client)
        assert newest(client)["time"].startswith("2024-03-04T14:39")
        reads = statements.bar_reads()
        assert reads, "the query read no bars"
        assert all(standby is True for standby in reads), reads
        # A mutation (and its own reads) stays on the primary: here an ingest request.
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready", ready
        (replica,) = ready["replicas"].values()
        assert replica["status"] == "ok" and replica["lagSeconds"] is not None


def test_min_version_waits_for_the_replica_or_reads_the_primary(
    pair: ReplicaPair, settings: Settings
) -> None:
    base = ingest(settings, range(0, 20))
    wait_for(lambda: standby_has(pair, base), 10, "the standby to replay the ingest")
    standby = pair.standby_url("mg_replica_test")
    with TestClient(create_app(settings)) as client:
        router = router_of(client)
        wait_for(lambda: router.usable() != [], 5, "the replica in rotation")
        statements = Statements(client)
        with psycopg.connect(standby, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
            try:
                version = ingest(settings, range(20, 21), close=42.0)
                # The replica is really behind: a read without Min-Version does not see it ...
                assert newest(client)["time"].startswith("2024-03-04T14:49")
                assert set(statements.bar_reads()) == {True}
                # ... one with it waits REPLICA_WAIT_SECONDS, then reads the primary.
                started = time.monotonic()
                bar = newest(client, **{"Min-Version": str(version)})
                waited = time.monotonic() - started
                assert bar["time"].startswith("2024-03-04T14:50") and bar["close"] == 42.0
                assert set(statements.bar_reads()) == {False}
                assert waited >= settings.replica_wait_seconds
                assert router.routed["primary_wait_expired"] >= 1
                # The lag is visible while replay is paused.
                wait_for(lambda: (router.replicas[0].lag_bytes or 0) > 0, 5, "a lag reading")
                metrics = client.get("/metrics").text
                lag = [
                    line
                    for line in metrics.splitlines()
                    if line.startswith("market_graphql_replica_lag_bytes{")
                ]
                assert lag and float(lag[0].split()[-1]) > 0, lag
            finally:
                conn.execute("SELECT pg_wal_replay_resume()")
        # Replay resumed: the same Min-Version read is now answered by the standby.
        replica_reads = router.routed["replica"]
        bar = newest(client, **{"Min-Version": str(version)})
        assert bar["close"] == 42.0
        assert set(statements.bar_reads()) == {True}
        assert router.routed["replica"] == replica_reads + 1
        # The version can come in the request's extensions too; a bad one is a 400.
        response = client.post(
            "/graphql", json={"query": NEWEST, "extensions": {"minVersion": float(version)}}
        )
        assert response.json()["data"]["symbol"]["bars"]["nodes"][0]["close"] == 42.0
        bad = client.post("/graphql", json={"query": NEWEST}, headers={"Min-Version": "soon"})
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_standby_that_stops_mid_load_costs_no_errors_and_comes_back(
    pair: ReplicaPair, settings: Settings
) -> None:
    version = ingest(settings, range(0, 30))
    wait_for(lambda: standby_has(pair, version), 10, "the standby to replay the ingest")
    with TestClient(create_app(settings)) as client:
        router = router_of(client)
        wait_for(lambda: router.usable() != [], 5, "the replica in rotation")
        statements = Statements(client)
        failures: list[str] = []
        answered = 0
        stop = threading.Event()

        def load() -> None:
            nonlocal answered
            while not stop.is_set():
                response = client.post("/graphql", json={"query": NEWEST})
                if response.status_code != 200 or "errors" in response.json():
                    failures.append(response.text)
                answered += 1

        threads = [threading.Thread(target=load) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            before = answered
            pair.standby.stop("fast")  # terminates the standby's sessions mid-query
            time.sleep(1.5)
            during = answered - before
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        reads = statements.bar_reads()
        assert failures == []
        assert during > 0 and answered > during
        assert True in reads and False in reads  # served by the standby, then the primary
        assert router.usable() == []
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded"
        assert next(iter(ready["replicas"].values()))["status"].startswith("out")

        pair.standby.start()
        wait_for(lambda: router.usable() != [], 20, "the replica back in rotation")
        statements.take()
        newest(client)
        assert set(statements.bar_reads()) == {True}
        assert client.get("/readyz").json()["status"] == "ready"
