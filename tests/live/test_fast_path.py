"""The fast path (one rendering per bar for identical subscriptions) sends what Strawberry's
execution sends: same data, same key order, same errors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from graphql_api.live.fast import plan
from graphql_api.schema import schema
from tests.live.conftest import LiveEnv
from tests.live.support import BAR_FIELDS, BARS, ApiProcess, GqlWs, minute_bar, write_bars

ARGS = "tickers: $tickers, interval: $interval, since: $since"
VARS = "$tickers: [String!]!, $interval: Interval!, $since: DateTime"
#: The same selection behind an inline fragment: not for the fast path, so Strawberry runs it.
EXECUTED = (
    f"subscription ({VARS}) {{ barUpdates({ARGS}) {{ ... on BarUpdate {{ {BAR_FIELDS} }} }} }}"
)
ALIASED = (
    f"subscription ({VARS}) {{ u: barUpdates({ARGS}) {{ __typename t: ticker v: version "
    "bar { __typename c: close time closed } } }"
)
ALIASED_EXECUTED = ALIASED.replace(
    "__typename t: ticker", "... on BarUpdate { __typename t: ticker"
).replace("time closed } }", "time closed } } }")


def test_which_documents_take_the_fast_path() -> None:
    variables = {"tickers": ["IBM"], "interval": "M5"}
    fast = plan(schema, BARS, variables, None)
    assert fast is not None and fast.tickers == ["IBM"] and fast.interval.value == "M5"
    assert plan(schema, ALIASED, variables, None) is not None
    assert plan(schema, EXECUTED, variables, None) is None
    assert plan(schema, ALIASED_EXECUTED, variables, None) is None
    assert plan(schema, BARS, {"tickers": 3}, None) is None  # bad variables: Strawberry reports


async def test_fast_and_executed_subscriptions_send_the_same_messages(
    api_pair: tuple[ApiProcess, ApiProcess], live_env: LiveEnv
) -> None:
    # Three connections: the test servers allow three subscriptions per connection.
    plain, aliased, errors = [await GqlWs.open(api_pair[0].ws_url) for _ in range(3)]
    try:
        variables = {"tickers": ["INITECH"], "interval": "M15"}
        await plain.subscribe("fast", BARS, variables)
        await plain.subscribe("executed", EXECUTED, variables)
        await aliased.subscribe("fast", ALIASED, variables)
        await aliased.subscribe("executed", ALIASED_EXECUTED, variables)
        await asyncio.sleep(0.3)
        ts = datetime(2024, 4, 8, 14, 31, tzinfo=UTC)
        await write_bars(live_env.dsn, [minute_bar(live_env.ids["INITECH"], ts, 20.0)])
        for client in (plain, aliased):
            fast, executed = await client.next("fast"), await client.next("executed")
            assert fast["type"] == executed["type"] == "next"
            assert json.dumps(fast["payload"]) == json.dumps(executed["payload"])
        assert fast["payload"]["data"]["u"]["bar"]["closed"] is False
        assert list(fast["payload"]["data"]["u"]) == ["__typename", "t", "v", "bar"]

        unknown = {"tickers": ["NOPE"], "interval": "M1"}
        await errors.subscribe("fast", BARS, unknown)
        await errors.subscribe("executed", EXECUTED, unknown)
        for kind in ("next", "complete"):
            a, b = await errors.next("fast"), await errors.next("executed")
            assert a["type"] == b["type"] == kind
            assert json.dumps(a.get("payload")) == json.dumps(b.get("payload"))
    finally:
        for client in (plain, aliased, errors):
            await client.close()
