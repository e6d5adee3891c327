"""A key revoked while its WebSockets are open (issue 13, hostile inputs): the sockets are
closed with 4403 within the revocation delay (API_KEY_CACHE_SECONDS), by one batched check of
all open connections per period; other keys' and anonymous connections stay."""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from core import db
from graphql_api.app import create_app
from graphql_api.auth import Scope, create_key, revoke_key
from graphql_api.live.keywatch import REVOKED_CODE, REVOKED_REASON
from tests.conftest import migrated_settings
from tests.live.conftest import LiveEnv
from tests.live.support import BARS, GqlWs, eventually, thread_server

#: The revocation delay of this test's server (the default is 10 s).
CACHE_SECONDS = 1.0


async def test_a_key_revoked_while_its_websockets_are_open_closes_them_within_the_delay(
    live_env: LiveEnv,
) -> None:
    assert live_env.settings.database_url is not None
    settings = migrated_settings(
        live_env.settings.database_url, api_key_cache_seconds=CACHE_SECONDS
    )
    engine = db.create_engine(settings)
    doomed = await create_key(engine, "revoked while connected", [Scope.READ])
    kept = await create_key(engine, "still valid", [Scope.READ])
    app = create_app(settings)
    try:
        with thread_server(app) as url:
            streaming = await GqlWs.open(url, {"Authorization": f"Bearer {doomed.token}"})
            idle = await GqlWs.open(url, {"Authorization": f"Bearer {doomed.token}"})
            other = await GqlWs.open(url, {"Authorization": f"Bearer {kept.token}"})
            anonymous = await GqlWs.open(url)
            clients = [streaming, idle, other, anonymous]
            try:
                await streaming.subscribe("ibm", BARS, {"tickers": ["IBM"], "interval": "D1"})
                await asyncio.sleep(0.2)

                revoked_at = time.monotonic()
                assert await revoke_key(engine, doomed.prefix)
                for client in (streaming, idle):
                    await asyncio.wait_for(client.ws.wait_closed(), CACHE_SECONDS + 5)
                    assert client.ws.close_code == REVOKED_CODE
                    assert client.ws.close_reason == REVOKED_REASON
                closed_after = time.monotonic() - revoked_at
                assert closed_after < CACHE_SECONDS, f"closed {closed_after:.2f} s after"
                print(f"closed {closed_after:.3f} s after the revocation")
                watch = app.state.services.live.key_watch
                assert watch.revoked == 2 and watch.connections() == 1

                # One query per period for all open connections, not one per connection.
                for _ in range(2):
                    clients.append(await GqlWs.open(url, {"Authorization": f"Bearer {kept.token}"}))
                assert watch.connections() == 3  # the anonymous one has no key to watch
                checks, started = watch.checks, time.monotonic()
                await asyncio.sleep(4 * watch.period)
                periods = (time.monotonic() - started) / watch.period
                assert 1 <= watch.checks - checks <= periods + 1

                # The other key's connection and the anonymous one still work.
                for client in (other, anonymous):
                    assert client.ws.state is State.OPEN
                    await client.subscribe("x", BARS, {"tickers": ["NOPE"], "interval": "D1"})
                    message = await client.next("x")
                    assert message["payload"]["errors"][0]["message"] == "unknown tickers: NOPE"

                # Once the delay has passed, the revoked key cannot connect again.
                async def refused() -> bool:
                    try:
                        again = await GqlWs.open(url, {"Authorization": f"Bearer {doomed.token}"})
                    except ConnectionClosed as exc:
                        return exc.rcvd is not None and exc.rcvd.code == 4403
                    await again.close()
                    return False

                assert await eventually(refused, CACHE_SECONDS + 5)
            finally:
                for client in clients:
                    await client.close()

            async def unwatched() -> bool:
                return bool(watch.connections() == 0)

            assert await eventually(unwatched)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(("cache", "period"), [(10.0, 5.0), (1.0, 0.5), (0.0, 0.25)])
def test_keys_are_checked_twice_per_cache_lifetime(cache: float, period: float) -> None:
    from graphql_api.live.keywatch import check_period

    assert check_period(cache) == period
