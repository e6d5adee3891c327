"""Replica routing without a standby: an unreachable replica, and the failure classification."""

from __future__ import annotations

import time

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError

from core.replicas import is_replica_failure, parse_lsn, replica_name
from core.settings import Settings
from graphql_api.app import create_app
from tests.scale.cluster import free_port

QUERY = '{ symbol(ticker: "AAPL") { latestBar { close } } }'


def test_an_unreachable_replica_is_out_and_reads_go_to_the_primary(settings: Settings) -> None:
    port = free_port()  # nothing listens there
    cfg = settings.model_copy(
        update={
            "read_database_urls": f"postgresql://postgres@127.0.0.1:{port}/nowhere",
            "replica_check_seconds": 0.1,
            "db_connect_timeout_seconds": 1.0,
        }
    )
    started = time.monotonic()
    with TestClient(create_app(cfg)) as client:
        assert time.monotonic() - started < 5  # start-up does not wait for the replica
        router = client.app.state.services.router  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while router.replicas[0].reason == "not checked yet":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for headers in ({}, {"Min-Version": "1"}):
            body = client.post("/graphql", json={"query": QUERY}, headers=headers).json()
            assert "errors" not in body and body["data"]["symbol"]["latestBar"]["close"] > 0
        assert router.routed["replica"] == 0
        assert router.routed["primary_no_replica"] >= 2
        ready = client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "degraded"
        name = f"127.0.0.1:{port}/nowhere"
        assert body["replicas"][name]["status"].startswith("out: unreachable")
        assert f"replica {name}" in body["degraded"]
        metrics = client.get("/metrics").text
        assert f'market_graphql_replica_up{{replica="{name}"}} 0.0' in metrics
        assert 'market_graphql_read_routes_total{route="primary_no_replica"}' in metrics


def test_failures_worth_a_retry_on_the_primary() -> None:
    lost = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    assert is_replica_failure(lost)
    assert is_replica_failure(ConnectionRefusedError())
    assert is_replica_failure(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    assert is_replica_failure(asyncpg.exceptions.SerializationError("conflict with recovery"))
    # Wrapped the way SQLAlchemy raises it, the cause still counts.
    wrapped = DBAPIError("SELECT 1", None, Exception("wrapper"))
    wrapped.__cause__ = lost
    assert is_replica_failure(wrapped)
    # A statement timeout or a bad statement would fail on the primary too.
    assert not is_replica_failure(asyncpg.exceptions.QueryCanceledError("statement timeout"))
    assert not is_replica_failure(asyncpg.exceptions.UndefinedTableError("no such table"))
    assert not is_replica_failure(ValueError("bad input"))


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("0/16B3748", 0x16B3748), ("16/B374D848", (0x16 << 32) + 0xB374D848)],
)
def test_lsn(text: str, value: int) -> None:
    assert parse_lsn(text) == value


def test_replica_names_hide_passwords() -> None:
    from sqlalchemy.engine import make_url

    name = replica_name(make_url("postgresql://u:secret@db2:6543/market"))
    assert name == "db2:6543/market" and "secret" not in name
