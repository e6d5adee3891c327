"""API keys with scopes: bearer tokens, uniform refusals, read keys, mutations, introspection."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from typer.testing import CliRunner, Result

from graphql_api.auth import Scope
from graphql_api.cli import app as cli_app
from tests.security.helpers import (
    GRAPHQL_RESPONSE,
    JSON,
    app_client,
    codes,
    create_keys,
    demo_database,
    post,
    revoke,
)

ROOT = Path(__file__).resolve().parents[2]
READ = '{ symbol(ticker: "AAPL") { ticker } }'
MUTATION = 'mutation { requestIngest(provider: "binance", tickers: ["BTCUSDT"]) { jobId } }'
JOBS = "{ ingestJobs(first: 50) { edges { node { jobId provider tickers } } } }"
INTROSPECTION = "{ __schema { queryType { name } } }"
TYPE_QUERY = '{ __type(name: "Bar") { fields { name } } }'


@pytest.fixture(scope="module")
def url(make_database: Callable[[], str]) -> str:
    return demo_database(make_database)


@pytest.fixture(scope="module")
def tokens(url: str) -> dict[str, str]:
    made = create_keys(
        url,
        reader=[Scope.READ],
        ingester=[Scope.INGEST],
        admin=[Scope.ADMIN],
        revoked=[Scope.READ, Scope.INGEST],
    )
    assert revoke(url, made["revoked"])
    return made


@pytest.fixture(scope="module")
def open_api(url: str) -> Iterator[TestClient]:
    """Reads open to anyone (the default); keys resolved on every request."""
    with app_client(url, api_key_cache_seconds=0) as client:
        yield client


@pytest.fixture(scope="module")
def closed_api(url: str) -> Iterator[TestClient]:
    """Reads need a key."""
    with app_client(url, require_read_key=True, api_key_cache_seconds=0) as client:
        yield client


def test_bearer_key_is_accepted(open_api: TestClient, tokens: dict[str, str]) -> None:
    response = post(open_api, READ, token=tokens["reader"])
    assert response.status_code == 200
    assert response.json()["data"] == {"symbol": {"ticker": "AAPL"}}
    lower = open_api.post(
        "/graphql", json={"query": READ}, headers={"authorization": f"bearer {tokens['reader']}"}
    )
    assert lower.status_code == 200


def _wrong_tokens(tokens: dict[str, str]) -> dict[str, str]:
    prefix = tokens["reader"].split("_")[1]
    return {
        "unknown": f"mgk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32).replace('_', '-')}",
        "known-prefix-wrong-secret": f"mgk_{prefix}_{secrets.token_urlsafe(32).replace('_', '-')}",
        "revoked": tokens["revoked"],
        "malformed": "not-a-key",
        "malformed-parts": "mgk__",
        "sql-ish": "mgk_' OR 1=1 --_x",
        "truncated": tokens["reader"][:-1],
    }


@pytest.mark.parametrize(
    "kind",
    [
        "unknown",
        "known-prefix-wrong-secret",
        "revoked",
        "malformed",
        "malformed-parts",
        "sql-ish",
        "truncated",
    ],
)
def test_wrong_key_is_401_with_one_message(
    open_api: TestClient, tokens: dict[str, str], kind: str
) -> None:
    token = _wrong_tokens(tokens)[kind]
    response = post(open_api, READ, token=token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert "data" not in body
    # No hint whether the key (or its prefix) exists: the same body for every wrong key.
    assert body == {
        "errors": [{"message": "invalid API key", "extensions": {"code": "UNAUTHENTICATED"}}]
    }


def test_wrong_key_is_refused_even_where_reads_are_open(open_api: TestClient) -> None:
    # A client that sends a bad key must learn about it rather than be served anonymously.
    for accept in (GRAPHQL_RESPONSE, JSON):
        response = post(open_api, READ, token="mgk_0_0", accept=accept)
        assert response.status_code == 401
        assert codes(response.json()) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc"])
def test_other_authorization_schemes_are_401(open_api: TestClient, header: str) -> None:
    response = open_api.post("/graphql", json={"query": READ}, headers={"authorization": header})
    assert response.status_code == 401
    assert codes(response.json()) == ["UNAUTHENTICATED"]


def test_anonymous_reads_are_open_by_default(open_api: TestClient) -> None:
    response = post(open_api, READ)
    assert response.status_code == 200
    assert response.json()["data"]["symbol"]["ticker"] == "AAPL"


@pytest.mark.parametrize(
    ("who", "status"),
    [(None, 401), ("reader", 200), ("admin", 200), ("ingester", 403)],
)
def test_require_read_key(
    closed_api: TestClient, tokens: dict[str, str], who: str | None, status: int
) -> None:
    # `admin` holds every scope; an `ingest` key alone does not read market data (issue 13).
    response = post(closed_api, READ, token=tokens[who] if who else None)
    assert response.status_code == status, response.text
    body = response.json()
    if status == 200:
        assert body["data"] == {"symbol": {"ticker": "AAPL"}}
    else:
        assert "data" not in body
        assert codes(body) == ["UNAUTHENTICATED" if status == 401 else "FORBIDDEN"]
        assert "read" in body["errors"][0]["message"]
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_ingest_key_reads_only_its_jobs_when_reads_need_a_key(
    closed_api: TestClient, tokens: dict[str, str]
) -> None:
    jobs = post(
        closed_api, "{ ingestJobs(first: 1) { edges { cursor } } }", token=tokens["ingester"]
    )
    assert jobs.status_code == 200, jobs.text
    mixed = post(
        closed_api,
        '{ ingestJobs(first: 1) { edges { cursor } } symbol(ticker: "AAPL") { ticker } }',
        token=tokens["ingester"],
    )
    assert mixed.status_code == 403


def test_require_read_key_still_refuses_wrong_keys(closed_api: TestClient) -> None:
    response = post(closed_api, READ, token="mgk_abc_def")
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == "invalid API key"


@pytest.mark.parametrize("api_name", ["open_api", "closed_api"])
@pytest.mark.parametrize(
    ("who", "status", "code"),
    [(None, 401, "UNAUTHENTICATED"), ("reader", 403, "FORBIDDEN")],
)
def test_mutations_are_refused_without_ingest_scope(
    request: pytest.FixtureRequest,
    tokens: dict[str, str],
    api_name: str,
    who: str | None,
    status: int,
    code: str,
) -> None:
    api: TestClient = request.getfixturevalue(api_name)
    # Checked before validation: even a document naming no real field is refused the same way.
    for document in (MUTATION, "mutation { x }"):
        response = post(api, document, token=tokens[who] if who else None)
        assert response.status_code == status, response.text
        body = response.json()
        assert "data" not in body
        assert codes(body) == [code]
        assert "ingest" in body["errors"][0]["message"]
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("api_name", ["open_api", "closed_api"])
@pytest.mark.parametrize("who", ["ingester", "admin"])
def test_mutations_run_with_ingest_or_admin(
    request: pytest.FixtureRequest, tokens: dict[str, str], api_name: str, who: str
) -> None:
    api: TestClient = request.getfixturevalue(api_name)
    response = post(api, MUTATION, token=tokens[who])
    assert response.status_code == 200, response.text
    job_id = response.json()["data"]["requestIngest"]["jobId"]
    jobs = post(api, JOBS, token=tokens[who]).json()["data"]["ingestJobs"]["edges"]
    assert job_id in [j["node"]["jobId"] for j in jobs]
    # Past authorization, a bad document meets validation like any other.
    invalid = post(api, "mutation { x }", token=tokens[who])
    assert invalid.status_code == 400
    assert codes(invalid.json()) == ["GRAPHQL_VALIDATION_FAILED"]


@pytest.mark.parametrize(("who", "code"), [(None, "UNAUTHENTICATED"), ("reader", "FORBIDDEN")])
def test_ingest_jobs_are_hidden_from_readers(
    open_api: TestClient, tokens: dict[str, str], who: str | None, code: str
) -> None:
    # A query, so not refused over HTTP: the field itself answers with the code.
    response = post(open_api, JOBS, token=tokens[who] if who else None)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert codes(body) == [code]


def test_anonymous_ingest_setting_opens_mutations(url: str) -> None:
    with app_client(url, allow_anonymous_ingest=True) as api:
        response = post(api, "mutation { x }")
    assert response.status_code == 400  # validation, not 401
    assert codes(response.json()) == ["GRAPHQL_VALIDATION_FAILED"]


ALLOWED = {
    "on": {None, "reader", "admin"},
    "admin": {"admin"},
    "off": set(),
}


@pytest.mark.parametrize("mode", ["on", "admin", "off"])
def test_introspection_modes(url: str, tokens: dict[str, str], mode: str) -> None:
    with app_client(url, introspection=mode, api_key_cache_seconds=0) as api:
        for who in (None, "reader", "admin"):
            token = tokens[who] if who else None
            for document in (INTROSPECTION, TYPE_QUERY):
                response = post(api, document, token=token)
                if who in ALLOWED[mode]:
                    assert response.status_code == 200, (mode, who, response.text)
                    assert "errors" not in response.json()
                else:
                    assert response.status_code == 403, (mode, who, response.text)
                    body = response.json()
                    assert "data" not in body
                    assert codes(body) == ["FORBIDDEN"]
            # __typename is not introspection: it stays available in every mode.
            typename = post(api, "{ __typename }", token=token)
            assert typename.json()["data"] == {"__typename": "Query"}


def test_introspection_hidden_in_a_fragment_is_caught(url: str) -> None:
    document = "query { ...F } fragment F on Query { __schema { types { name } } }"
    with app_client(url, introspection="off") as api:
        response = post(api, document)
    assert response.status_code == 403


def test_secret_is_stored_only_as_a_hash(url: str, tokens: dict[str, str]) -> None:
    _, prefix, secret = tokens["reader"].split("_")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT api_keys::text, secret_hash FROM api_keys WHERE prefix = %s", (prefix,)
        ).fetchone()
    assert row is not None
    assert secret not in row[0]
    assert row[1] == hashlib.sha256(secret.encode()).hexdigest()


def test_revocation_takes_effect_after_the_cache_ttl(url: str) -> None:
    token = create_keys(url, short_lived=[Scope.READ])["short_lived"]
    with app_client(url, api_key_cache_seconds=1.0) as api:
        assert post(api, READ, token=token).status_code == 200
        started = time.monotonic()
        assert revoke(url, token)
        still = post(api, READ, token=token)
        if time.monotonic() - started < 0.9:
            assert still.status_code == 200  # remembered for api_key_cache_seconds
        time.sleep(1.1)
        assert post(api, READ, token=token).status_code == 401


def test_revocation_is_immediate_without_cache(open_api: TestClient, url: str) -> None:
    token = create_keys(url, revoke_now=[Scope.READ])["revoke_now"]
    assert post(open_api, READ, token=token).status_code == 200
    assert revoke(url, token)
    response = post(open_api, READ, token=token)
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == "invalid API key"


def _cli_subprocess(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "graphql_api", "keys", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _cli(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "250")  # rich truncates table cells to the terminal width
    monkeypatch.delenv("REDIS_URL", raising=False)
    return CliRunner().invoke(cli_app, ["keys", *args])


def test_cli_create_list_revoke(
    url: str, open_api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real console entry point once; the other commands in-process (each start costs seconds).
    created = _cli_subprocess(url, "create", "--name", "cli-integrator", "--scope", "read")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    _, prefix, secret = token.split("_")
    assert post(open_api, READ, token=token).status_code == 200

    listed = _cli(url, monkeypatch, "list")
    assert listed.exit_code == 0, listed.output
    assert prefix in listed.output
    assert "cli-integrator" in listed.output
    assert secret not in listed.output
    assert secret[:8] not in listed.output

    revoked = _cli(url, monkeypatch, "revoke", prefix)
    assert revoked.exit_code == 0, revoked.output
    assert post(open_api, READ, token=token).status_code == 401
    again = _cli(url, monkeypatch, "revoke", prefix)
    assert again.exit_code == 1  # no live key of that prefix any more

    bad_scope = _cli(url, monkeypatch, "create", "--name", "x", "--scope", "root")
    assert bad_scope.exit_code == 2


def _ws_init(api: TestClient, payload: dict[str, str]) -> tuple[str, int | None, str]:
    """Send `connection_init`; ('ack', None, '') or ('closed', code, reason)."""
    try:
        with api.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": payload})
            message = ws.receive_json()
            return str(message["type"]), None, ""
    except WebSocketDisconnect as closed:
        return "closed", closed.code, str(closed.reason)


def test_websocket_key_in_connection_init(closed_api: TestClient, tokens: dict[str, str]) -> None:
    assert _ws_init(closed_api, {"Authorization": f"Bearer {tokens['reader']}"})[0] == (
        "connection_ack"
    )
    refusals = {
        kind: _ws_init(closed_api, {"authorization": f"Bearer {token}"})
        for kind, token in _wrong_tokens(tokens).items()
    }
    # Unknown, revoked and malformed keys: one close code, one reason.
    assert set(refusals.values()) == {("closed", 4403, "Forbidden: invalid API key")}
    anonymous = _ws_init(closed_api, {})
    assert anonymous[:2] == ("closed", 4403)
    assert "read" in anonymous[2]
