"""GraphQL over HTTP (graphql.github.io/graphql-over-http): media types, status codes, methods."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.security.helpers import GRAPHQL_RESPONSE, JSON, app_client, codes, demo_database, post

IBM = '{ symbol(ticker: "IBM") { ticker } }'
BY_TICKER = "query One($t: String!) { symbol(ticker: $t) { ticker } }"


@pytest.fixture(scope="module")
def api(make_database: Callable[[], str]) -> Iterator[TestClient]:
    with app_client(demo_database(make_database)) as client:
        yield client


def _media_type(response: Any) -> str:
    return str(response.headers["content-type"]).split(";")[0].strip()


# --- negotiation -------------------------------------------------------------------------


def test_graphql_response_json_when_the_client_accepts_it(api: TestClient) -> None:
    response = post(api, IBM, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 200
    assert _media_type(response) == GRAPHQL_RESPONSE
    assert response.json()["data"] == {"symbol": {"ticker": "IBM"}}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),  # no Accept header: the legacy default
        (JSON, JSON),
        ("*/*", JSON),
        (f"{JSON};q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.2, {JSON}", JSON),
        (f"{GRAPHQL_RESPONSE}, {JSON}", GRAPHQL_RESPONSE),  # equal weight: the spec's type
        (f"text/plain, {GRAPHQL_RESPONSE};q=0.1", GRAPHQL_RESPONSE),
    ],
)
def test_accept_negotiation(api: TestClient, accept: str | None, expected: str) -> None:
    headers = {} if accept is None else {"accept": accept}
    response = api.post("/graphql", json={"query": IBM}, headers=headers)
    assert response.status_code == 200
    assert _media_type(response) == expected


@pytest.mark.parametrize("accept", ["text/plain", "text/html", f"{GRAPHQL_RESPONSE};q=0"])
def test_nothing_acceptable_is_406(api: TestClient, accept: str) -> None:
    response = api.post("/graphql", json={"query": IBM}, headers={"accept": accept})
    assert response.status_code == 406
    body = response.json()
    assert "data" not in body
    assert codes(body) == ["NOT_ACCEPTABLE"]


# --- request errors: 4xx and no `data` for graphql-response+json, 200 for legacy ------------

REQUEST_ERRORS = [
    pytest.param(
        {"query": '{ symbol(ticker: "AAPL") { ticker '}, "GRAPHQL_PARSE_FAILED", id="parse"
    ),
    pytest.param(
        {"query": '{ symbol(ticker: "AAPL") { price } }'},
        "GRAPHQL_VALIDATION_FAILED",
        id="unknown-field",
    ),
    pytest.param(
        {"query": BY_TICKER, "variables": {"t": 42}},
        "GRAPHQL_VALIDATION_FAILED",
        id="variable-wrong-type",
    ),
    pytest.param(
        {"query": "query($n: Int) { symbols(first: $n) { totalCount } }", "variables": {"n": "x"}},
        "GRAPHQL_VALIDATION_FAILED",
        id="int-variable-as-string",
    ),
    pytest.param({"query": BY_TICKER}, "GRAPHQL_VALIDATION_FAILED", id="variable-missing"),
    pytest.param(
        {"query": BY_TICKER, "variables": {"t": None}},
        "GRAPHQL_VALIDATION_FAILED",
        id="variable-null-for-non-null",
    ),
]


@pytest.mark.parametrize(("body", "code"), REQUEST_ERRORS)
def test_request_errors_are_400_without_data(
    api: TestClient, body: dict[str, Any], code: str
) -> None:
    response = api.post("/graphql", json=body, headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 400, response.text
    assert _media_type(response) == GRAPHQL_RESPONSE
    payload = response.json()
    assert "data" not in payload  # execution never started
    assert payload["errors"], payload
    assert codes(payload)[0] == code
    assert all(e["message"] for e in payload["errors"])


@pytest.mark.parametrize(("body", "code"), REQUEST_ERRORS)
def test_request_errors_are_200_for_legacy_json_clients(
    api: TestClient, body: dict[str, Any], code: str
) -> None:
    response = api.post("/graphql", json=body, headers={"accept": JSON})
    assert response.status_code == 200, response.text
    assert _media_type(response) == JSON
    payload = response.json()
    assert "data" not in payload
    assert codes(payload)[0] == code


def test_field_errors_keep_200_and_data(api: TestClient) -> None:
    # Execution started: the spec wants 200 and a `data` entry even with errors.
    query = '{ a: symbol(ticker: "IBM") { ticker } b: symbols(first: -1) { totalCount } }'
    response = post(api, query)
    assert response.status_code == 200
    body = response.json()
    assert "data" in body
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["path"] == ["b"]


def test_syntax_error_has_a_location(api: TestClient) -> None:
    body = post(api, "{ symbol(ticker: ) { ticker } }").json()
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 18}]


# --- methods and content types ------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "mutation { x }",  # not even valid: 405 comes before validation
        "mutation M { requestIngest(ticker: 1) { id } }",
        "subscription { bars { close } }",
        "query Q { __typename } mutation M { x }",
    ],
)
def test_non_query_operation_over_get_is_405(api: TestClient, document: str) -> None:
    params = {"query": document}
    if "query Q" in document:
        params["operationName"] = "M"
    response = api.get("/graphql", params=params, headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    body = response.json()
    assert "data" not in body
    assert codes(body) == ["METHOD_NOT_ALLOWED"]


def test_query_of_a_mixed_document_runs_over_get(api: TestClient) -> None:
    response = api.get(
        "/graphql",
        params={"query": "query Q { __typename } mutation M { x }", "operationName": "Q"},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    # The selected operation is a query, so GET is fine; the document still fails validation.
    assert response.status_code == 400
    assert codes(response.json()) == ["GRAPHQL_VALIDATION_FAILED"]


def test_get_query_with_json_variables(api: TestClient) -> None:
    response = api.get(
        "/graphql",
        params={"query": BY_TICKER, "variables": json.dumps({"t": "msft"})},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert _media_type(response) == GRAPHQL_RESPONSE
    assert response.json()["data"] == {"symbol": {"ticker": "MSFT"}}


def test_get_with_operation_name_picks_the_operation(api: TestClient) -> None:
    document = 'query A { symbol(ticker: "AAPL") { ticker } } query B { __typename }'
    response = api.get("/graphql", params={"query": document, "operationName": "A"})
    assert response.json()["data"] == {"symbol": {"ticker": "AAPL"}}
    ambiguous = api.get("/graphql", params={"query": document})
    assert ambiguous.status_code == 400
    assert "operationName" in ambiguous.json()["errors"][0]["message"]


@pytest.mark.parametrize("variables", ["{not json", "[1, 2]", '"text"'])
def test_get_with_bad_variables_is_400(api: TestClient, variables: str) -> None:
    response = api.get("/graphql", params={"query": BY_TICKER, "variables": variables})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_REQUEST"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_post_without_json_content_type_is_415(api: TestClient, content_type: str | None) -> None:
    headers = {"accept": GRAPHQL_RESPONSE}
    if content_type is not None:
        headers["content-type"] = content_type
    response = api.post("/graphql", content=json.dumps({"query": IBM}).encode(), headers=headers)
    assert response.status_code == 415
    assert codes(response.json()) == ["UNSUPPORTED_MEDIA_TYPE"]


def test_json_content_type_with_charset_is_accepted(api: TestClient) -> None:
    response = api.post(
        "/graphql",
        content=json.dumps({"query": IBM}).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["symbol"]["ticker"] == "IBM"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"query": "{ __typename }"', "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b'[{"query": "{ __typename }"}, {"query": "{ __typename }"}]', "batched"),
        (b'"{ __typename }"', "JSON object"),
        (b'{"query": 42}', "`query` must be a string"),
        (b'{"query": "{ __typename }", "variables": [1]}', "`variables` must be an object"),
        (b'{"query": "{ __typename }", "operationName": 1}', "`operationName` must be a string"),
        (b"{}", "no GraphQL query"),
    ],
)
def test_malformed_bodies_are_400(api: TestClient, raw: bytes, fragment: str) -> None:
    for accept in (GRAPHQL_RESPONSE, JSON):
        response = api.post(
            "/graphql", content=raw, headers={"content-type": JSON, "accept": accept}
        )
        assert response.status_code == 400, (accept, response.text)
        body = response.json()
        assert "data" not in body
        assert codes(body) == ["BAD_REQUEST"]
        assert fragment in body["errors"][0]["message"]


# --- request ids -------------------------------------------------------------------------


def test_request_id_is_echoed(api: TestClient) -> None:
    response = post(api, IBM, headers={"x-request-id": "trace-abc-123"})
    assert response.headers["x-request-id"] == "trace-abc-123"


def test_request_id_is_generated_and_unique(api: TestClient) -> None:
    ids = {post(api, IBM).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"content": b"{", "headers": {"content-type": JSON}},
        {"content": b"{}", "headers": {"content-type": "text/plain"}},
        {"json": {"query": IBM}, "headers": {"accept": "text/plain"}},
    ],
)
def test_request_id_on_error_responses(api: TestClient, request_kwargs: dict[str, Any]) -> None:
    headers = {**request_kwargs.pop("headers"), "x-request-id": "err-1"}
    response = api.post("/graphql", headers=headers, **request_kwargs)
    assert response.status_code >= 400
    assert response.headers["x-request-id"] == "err-1"
