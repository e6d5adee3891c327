"""Ingest jobs over GraphQL: requestIngest queues a job, ingestJobs shows it, keys guard both."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from core import db
from graphql_api.app import create_app
from graphql_api.auth import Scope, create_key
from tests.conftest import migrated_settings

REQUEST = """mutation($t: [String!]!) { requestIngest(provider: "binance", tickers: $t,
  timeframe: M1, from: "2024-01-01T00:00:00Z", to: "2024-01-02T00:00:00Z") { jobId } }"""
JOBS = "{ ingestJobs(first: 10) { edges { node { jobId status provider tickers timeframe } } } }"


@pytest.fixture(scope="module")
def env(make_database: Callable[[], str]) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    settings = migrated_settings(make_database())
    db.upgrade(settings)
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.services.engine  # type: ignore[attr-defined]
        tokens = {
            scope.value: client.portal.call(create_key, engine, scope.value, [scope]).token  # type: ignore[union-attr]
            for scope in Scope
        }
        yield client, tokens, settings.asyncpg_dsn


def _post(client: TestClient, query: str, token: str | None = None, **variables: Any) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


def test_request_ingest_needs_an_ingest_key(env: tuple[TestClient, dict[str, str], str]) -> None:
    client, tokens, _ = env
    anonymous = _post(client, REQUEST, t=["BTCUSDT"])
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    reader = _post(client, REQUEST, tokens["read"], t=["BTCUSDT"])
    assert reader.status_code == 403
    assert reader.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_requested_job_is_listed_and_status_is_never_cached(
    env: tuple[TestClient, dict[str, str], str],
) -> None:
    client, tokens, dsn = env
    body = _post(client, REQUEST, tokens["ingest"], t=["btcusdt", "ETHUSDT"]).json()
    job_id = body["data"]["requestIngest"]["jobId"]
    listed = _post(client, JOBS, tokens["admin"]).json()["data"]["ingestJobs"]["edges"]
    job = next(e["node"] for e in listed if e["node"]["jobId"] == job_id)
    assert job == {
        "jobId": job_id,
        "status": "TODO",
        "provider": "binance",
        "tickers": ["BTCUSDT", "ETHUSDT"],
        "timeframe": "M1",
    }

    async def cancel() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "UPDATE procrastinate_jobs SET status = 'cancelled' WHERE id = $1", int(job_id)
            )
        finally:
            await conn.close()

    asyncio.run(cancel())
    listed = _post(client, JOBS, tokens["admin"]).json()["data"]["ingestJobs"]["edges"]
    assert next(e["node"] for e in listed if e["node"]["jobId"] == job_id)["status"] == "CANCELLED"


def test_job_listing_is_not_served_to_anonymous_from_cache(
    env: tuple[TestClient, dict[str, str], str],
) -> None:
    client, tokens, _ = env
    assert "errors" not in _post(client, JOBS, tokens["ingest"]).json()
    anonymous = _post(client, JOBS).json()
    assert anonymous["data"] is None
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("provider", "tickers", "fragment"),
    [
        ("nasdaq-feed", ["X"], "unknown provider"),
        ("binance", [], "at least one ticker"),
        # Found by schemathesis: NUL cannot be stored in jsonb, and was a 500.
        ("binance", ["BTCUSDT", "\ue939\u0000"], "unprintable characters"),
        ("binance", ["BTC\tUSDT"], "unprintable characters"),
        ("binance", ["X" * 33], "ticker too long"),
    ],
)
def test_bad_requests_are_bad_user_input(
    env: tuple[TestClient, dict[str, str], str], provider: str, tickers: list[str], fragment: str
) -> None:
    client, tokens, dsn = env

    async def queued() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM procrastinate_jobs"))
        finally:
            await conn.close()

    before = asyncio.run(queued())
    query = REQUEST.replace('"binance"', f'"{provider}"')
    response = _post(client, query, tokens["ingest"], t=tickers)
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in error["message"]
    assert asyncio.run(queued()) == before  # nothing half-queued


REQUEST_ANY = """mutation($p: String!, $t: [String!]!, $from: DateTime, $to: DateTime) {
  requestIngest(provider: $p, tickers: $t, timeframe: M1, from: $from, to: $to) { jobId } }"""


@pytest.mark.parametrize(
    ("arguments", "names"),
    [
        # Issue 13, item 6: these said "start needs a time zone" and "start is after end".
        ({"from": "2024-01-01T00:00:00"}, ["`from`"]),
        ({"to": "2024-01-02T00:00:00"}, ["`to`"]),
        ({"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, ["`from`", "`to`"]),
        ({"from": "0001-01-01T00:00:00Z"}, ["`from`"]),
        ({"p": "nasdaq-feed"}, ["`provider`"]),
        ({"t": []}, ["`tickers`"]),
        ({"t": [" "]}, ["`tickers`"]),
        ({"t": ["X" * 33]}, ["`tickers`"]),
        ({"t": ["X" * 100_000]}, ["`tickers`"]),
        ({"p": "P" * 100_000}, ["`provider`"]),
        ({"t": [f"T{i}" for i in range(501)]}, ["`tickers`"]),
    ],
)
def test_request_ingest_errors_name_the_schema_arguments(
    env: tuple[TestClient, dict[str, str], str], arguments: dict[str, Any], names: list[str]
) -> None:
    """Every refusal names the arguments as the schema spells them (`from`/`to`, not the
    worker's `start`/`end`), so a client can tell which of its arguments to fix."""
    client, tokens, _ = env
    variables = {"p": "binance", "t": ["BTCUSDT"], **arguments}
    response = _post(client, REQUEST_ANY, tokens["ingest"], **variables)
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    for name in names:
        assert name in error["message"], error["message"]
    assert not re.search(r"\b(start|end)\b", error["message"]), error["message"]
    assert len(error["message"]) < 200  # a huge argument is not echoed back whole


def test_ingest_jobs_errors_name_the_schema_arguments(
    env: tuple[TestClient, dict[str, str], str],
) -> None:
    client, tokens, _ = env
    query = "query($n: Int!, $a: String) { ingestJobs(first: $n, after: $a) { edges { cursor } } }"
    for variables, name in (({"n": 501}, "`first`"), ({"n": -1}, "`first`")):
        error = _post(client, query, tokens["ingest"], **variables).json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert name in error["message"], error["message"]
    error = _post(client, query, tokens["ingest"], n=1, a="garbage!").json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "cursor" in error["message"]
