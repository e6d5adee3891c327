"""Subscription errors reach the client with the code HTTP gives for the same input (issue 13,
item 3): an `error` message for request errors, a `next` with errors (then `complete`) for
errors raised while the subscription runs; no traceback logged for client mistakes."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from graphql_api.app import create_app
from tests.conftest import migrated_settings
from tests.live.conftest import LiveEnv
from tests.live.support import BARS, ApiProcess, GqlWs, free_port, thread_server

#: The report: a NUL in a ticker, written in the document (the fast path serves it).
NUL_LITERAL = 'subscription { barUpdates(tickers: ["AC\\u0000ME"]) { ticker bar { close } } }'
#: The same behind a fragment: Strawberry executes it.
NUL_EXECUTED = (
    'subscription { barUpdates(tickers: ["AC\\u0000ME"]) { ...U } } '
    "fragment U on BarUpdate { ticker bar { close } }"
)
#: The same input over HTTP (subscriptions do not run there): a query naming that ticker.
NUL_HTTP = '{ symbol(ticker: "AC\\u0000ME") { ticker } }'
#: A query over HTTP taking the same kinds of variables as BARS.
HTTP_BARS = (
    "query Q($t: String!, $i: Interval!, $f: DateTime) { symbol(ticker: $t) "
    "{ bars(interval: $i, from: $f, first: 1) { edges { node { close } } } } }"
)


async def http(url: str, query: Any, variables: Any = None, name: Any = None) -> dict[str, Any]:
    """POST a GraphQL request to `url` (an API's base URL); the decoded body, any status."""
    body = {"query": query, "variables": variables, "operationName": name}
    async with httpx.AsyncClient(timeout=10) as client:
        result: dict[str, Any] = (await client.post(f"{url}/graphql", json=body)).json()
    return result


async def ws_outcome(
    client: GqlWs, op_id: str, payload: dict[str, Any]
) -> tuple[str, list[dict[str, Any]], list[str]]:
    """Send a raw subscribe payload; the first message's type, its errors, and the types of
    the messages that followed it until the operation ended."""
    client.queue(op_id)
    await client.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
    first = await client.next(op_id)
    payload_out = first.get("payload")
    errors = payload_out if isinstance(payload_out, list) else payload_out.get("errors", [])
    rest: list[str] = []
    if first["type"] == "next":
        rest.append((await client.next(op_id))["type"])
    return first["type"], errors, rest


def codes(errors: list[dict[str, Any]]) -> list[str]:
    """The `extensions.code` of each error."""
    return [e.get("extensions", {}).get("code") for e in errors]


def log_from(api: ApiProcess, offset: int) -> str:
    """What the API process logged since `offset` (bytes)."""
    with api.log_path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


async def test_a_nul_in_a_subscribed_ticker_is_bad_user_input_as_over_http(
    api_pair: tuple[ApiProcess, ApiProcess],
) -> None:
    """The report: only `complete` came back (no error), and a traceback was logged."""
    api = api_pair[0]
    (over_http,) = (await http(api.url, NUL_HTTP))["errors"]
    assert over_http["extensions"]["code"] == "BAD_USER_INPUT"
    offset = api.log_path.stat().st_size
    client = await GqlWs.open(api.ws_url)
    try:
        variables = {"tickers": ["AC\u0000ME"], "interval": "M1"}
        for op_id, payload in {
            "literal": {"query": NUL_LITERAL},
            "executed": {"query": NUL_EXECUTED},
            "variable": {"query": BARS, "variables": variables},
        }.items():
            kind, errors, rest = await ws_outcome(client, op_id, payload)
            assert (kind, rest) == ("next", ["complete"]), (op_id, kind, errors, rest)
            assert codes(errors) == ["BAD_USER_INPUT"], (op_id, errors)
            assert errors[0]["message"] == over_http["message"]
            assert "NUL" in errors[0]["message"] and "SELECT" not in errors[0]["message"]
    finally:
        await client.close()
    logged = log_from(api, offset)
    assert "Traceback" not in logged and "Exception in worker task" not in logged, logged


#: (WebSocket subscribe payload, the HTTP request with the same mistake, message type on WS).
SAME_MISTAKES: dict[str, tuple[dict[str, Any], tuple[Any, ...], str]] = {
    "syntax": (
        {"query": 'subscription { barUpdates(tickers: ["IBM"] { ticker } }'},
        ('{ symbol(ticker: "IBM" { ticker } }',),
        "error",
    ),
    "unknown field": (
        {"query": 'subscription { barUpdates(tickers: ["IBM"]) { nope } }'},
        ('{ symbol(ticker: "IBM") { nope } }',),
        "error",
    ),
    "bad enum variable": (
        {"query": BARS, "variables": {"tickers": ["IBM"], "interval": "H7"}},
        (HTTP_BARS, {"t": "IBM", "i": "H7"}),
        "error",
    ),
    "bad DateTime variable": (
        {"query": BARS, "variables": {"tickers": ["IBM"], "interval": "D1", "since": "soon"}},
        (HTTP_BARS, {"t": "IBM", "i": "D1", "f": "soon"}),
        "error",
    ),
    "wrong variable type": (
        {"query": BARS, "variables": {"tickers": [3], "interval": "D1"}},
        (HTTP_BARS, {"t": 3, "i": "D1"}),
        "error",
    ),
    "too many aliases": (
        {
            "query": 'subscription { barUpdates(tickers: ["IBM"]) { '
            + " ".join(f"a{i}: ticker" for i in range(40))
            + " } }"
        },
        ("{ " + " ".join(f"a{i}: __typename" for i in range(40)) + " }",),
        "error",
    ),
    "too many tokens": (
        {"query": 'subscription { barUpdates(tickers: ["IBM"]) { ' + "ticker " * 6000 + "} }"},
        ("{ " + "__typename " * 6000 + "}",),
        "error",
    ),
    "unknown operation name": (
        {"query": BARS, "variables": {"tickers": ["IBM"]}, "operationName": "Nope"},
        ("query Bars { __typename }", None, "Nope"),
        "error",
    ),
    "query not a string": ({"query": 42}, (42,), "error"),
    "variables not an object": ({"query": BARS, "variables": [1]}, (HTTP_BARS, [1]), "error"),
    "time without offset": (
        {
            "query": BARS,
            "variables": {"tickers": ["IBM"], "interval": "D1", "since": "2024-01-02T00:00:00"},
        },
        (HTTP_BARS, {"t": "IBM", "i": "D1", "f": "2024-01-02T00:00:00"}),
        "next",
    ),
}


@pytest.mark.parametrize("mistake", list(SAME_MISTAKES))
async def test_subscription_errors_carry_the_code_http_gives_for_the_same_mistake(
    api_pair: tuple[ApiProcess, ApiProcess], mistake: str
) -> None:
    payload, request, expected_kind = SAME_MISTAKES[mistake]
    api = api_pair[1]
    expected = codes((await http(api.url, *request))["errors"])
    assert expected and None not in expected
    offset = api.log_path.stat().st_size
    client = await GqlWs.open(api.ws_url)
    try:
        kind, errors, rest = await ws_outcome(client, "1", payload)
    finally:
        await client.close()
    assert codes(errors) == expected, errors
    assert kind == expected_kind
    assert rest == (["complete"] if kind == "next" else [])
    assert "Traceback" not in log_from(api, offset)


async def test_limits_of_subscriptions_are_bad_user_input_with_the_limit_named(
    api_pair: tuple[ApiProcess, ApiProcess],
) -> None:
    client = await GqlWs.open(api_pair[0].ws_url)
    try:
        six = {"tickers": ["AAPL", "FB", "GOOG", "IBM", "MSFT", "ACME"], "interval": "D1"}
        kind, errors, rest = await ws_outcome(client, "many", {"query": BARS, "variables": six})
        assert (kind, codes(errors), rest) == ("next", ["BAD_USER_INPUT"], ["complete"])
        assert errors[0]["message"] == "at most 5 tickers per subscription, got 6"
        unknown = {"tickers": ["IBM", "NOPE"], "interval": "D1"}
        kind, errors, rest = await ws_outcome(client, "unk", {"query": BARS, "variables": unknown})
        assert (kind, codes(errors), rest) == ("next", ["BAD_USER_INPUT"], ["complete"])
        assert errors[0]["message"] == "unknown tickers: NOPE"
        query = {"query": "{ __typename }"}
        kind, errors, rest = await ws_outcome(client, "q", query)
        assert (kind, codes(errors)) == ("error", ["BAD_REQUEST"])
        assert (
            errors[0]["message"] == "only subscriptions run over WebSocket; send queries over HTTP"
        )
        for i in range(3):  # the test servers allow three per connection
            await client.subscribe(f"ok{i}", BARS, {"tickers": ["IBM"], "interval": "D1"})
        kind, errors, _ = await ws_outcome(client, "4th", {"query": BARS, "variables": unknown})
        assert (kind, codes(errors)) == ("error", ["TOO_MANY_SUBSCRIPTIONS"])
        assert errors[0]["message"].startswith("Subscription limit reached: at most 3 ")
    finally:
        await client.close()


async def test_a_database_outage_reaches_subscribers_as_service_unavailable_as_over_http(
    live_env: LiveEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """An infrastructure failure is classified as over HTTP (graphql_api.error_format), not
    reported as an internal error nor logged with a traceback."""
    assert live_env.settings.database_url is not None
    nowhere = live_env.settings.sqlalchemy_url.set(host="127.0.0.1", port=free_port())
    settings = migrated_settings(nowhere.render_as_string(hide_password=False))
    app = create_app(settings)
    with thread_server(app) as url, caplog.at_level(logging.WARNING):
        base = url.replace("ws://", "http://").removesuffix("/graphql")
        over_http = await http(base, '{ symbol(ticker: "IBM") { ticker } }')
        client = await GqlWs.open(url)
        try:
            variables = {"tickers": ["IBM"], "interval": "D1"}
            fast = await ws_outcome(client, "fast", {"query": BARS, "variables": variables})
            executed = await ws_outcome(
                client,
                "executed",
                {
                    "query": 'subscription { barUpdates(tickers: ["IBM"]) { ... on BarUpdate '
                    "{ ticker } } }"
                },
            )
        finally:
            await client.close()
    assert codes(over_http["errors"]) == ["SERVICE_UNAVAILABLE"]
    for kind, errors, rest in (fast, executed):
        assert (kind, codes(errors), rest) == ("next", ["SERVICE_UNAVAILABLE"], ["complete"])
        assert errors[0]["message"] == over_http["errors"][0]["message"]
        assert errors[0]["extensions"]["requestId"]  # the id of the warning logged
    served = [r for r in caplog.records if r.name.startswith(("graphql_api", "strawberry"))]
    assert not [r for r in served if r.exc_info], [r.getMessage() for r in served]
