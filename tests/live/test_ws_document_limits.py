"""A subscription meets the document limits of HTTP (graphql_api.limits) before it starts:
cost and introspection, which subscriptions once skipped, refused with the HTTP code."""

from __future__ import annotations

from typing import Any

from graphql_api.app import create_app
from tests.conftest import migrated_settings
from tests.live.conftest import LiveEnv
from tests.live.support import BARS, GqlWs, thread_server
from tests.live.test_ws_errors import codes, http, ws_outcome

IBM_DAILY = {"tickers": ["IBM"], "interval": "D1"}
#: barUpdates 1 + ticker, interval, version, replayed, bar 1 each + bar's seven fields.
BARS_COST = 13
#: `__schema` and `__type` exist only on the query root, so a subscription carries
#: introspection in another operation of its document (checked whole, as over HTTP).
INTROSPECTING = (
    'subscription S { barUpdates(tickers: ["IBM"], interval: D1) { ticker } } '
    "query Q { __schema { types { name } } }"
)


def _base(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://").removesuffix("/graphql")


async def _subscribe(url: str, payload: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    client = await GqlWs.open(url)
    try:
        kind, errors, _ = await ws_outcome(client, "1", payload)
    finally:
        await client.close()
    return kind, errors


async def test_a_subscription_over_max_query_cost_is_refused_as_over_http(
    live_env: LiveEnv,
) -> None:
    assert live_env.settings.database_url is not None
    limit = BARS_COST - 1
    app = create_app(migrated_settings(live_env.settings.database_url, max_query_cost=limit))
    with thread_server(app) as url:
        over_http = await http(_base(url), "{ symbols(first: 10) { edges { cursor } } }")
        kind, errors = await _subscribe(url, {"query": BARS, "variables": IBM_DAILY})
    assert codes(over_http["errors"]) == ["QUERY_TOO_COSTLY"]
    assert (kind, codes(errors)) == ("error", ["QUERY_TOO_COSTLY"])
    (error,) = errors
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": BARS_COST, "limit": limit}
    assert f"query cost {BARS_COST} exceeds the limit of {limit}" in error["message"]


async def test_introspection_in_a_subscription_is_refused_when_disabled_as_over_http(
    live_env: LiveEnv,
) -> None:
    assert live_env.settings.database_url is not None
    app = create_app(migrated_settings(live_env.settings.database_url, introspection="off"))
    with thread_server(app) as url:
        over_http = await http(
            _base(url), "query A { __typename } query Q { __schema { types { name } } }", None, "A"
        )
        kind, errors = await _subscribe(url, {"query": INTROSPECTING, "operationName": "S"})
        # The same subscription without introspection starts (no refusal, no error).
        client = await GqlWs.open(url)
        try:
            await client.subscribe("plain", BARS, IBM_DAILY)
            assert await client.quiet("plain") == []
        finally:
            await client.close()
    assert codes(over_http["errors"]) == ["FORBIDDEN"]
    assert (kind, codes(errors)) == ("error", ["FORBIDDEN"])
    assert errors[0]["message"] == over_http["errors"][0]["message"]
