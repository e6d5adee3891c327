"""Many idle WebSockets from one address (issue 13, hostile inputs): at most
LIVE_MAX_CONNECTIONS_PER_IP are accepted, the rest refused at the handshake with 429, and the
server keeps answering with bounded memory."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.live.conftest import LiveEnv
from tests.live.support import ApiProcess, GqlWs, open_fds, raw_upgrade, rss_mb

#: Connection attempts of the flood. Each refused one costs the server about 1 ms of CPU;
#: the client keeps at most IN_FLIGHT handshakes going (the listen backlog is 2048).
ATTEMPTS = 10_000
IN_FLIGHT = 200
#: The RSS the flood may add to the server (accepted sockets included).
RSS_GROWTH_MB = 40.0


@pytest.fixture(scope="module")
def flood_api(live_env: LiveEnv) -> Iterator[ApiProcess]:
    """An API process of its own (the default per-address limit), so the flood's sockets
    and RSS are its alone."""
    assert live_env.settings.database_url is not None
    log_dir = Path(tempfile.mkdtemp(prefix="mg-flood-"))
    server = ApiProcess({"DATABASE_URL": live_env.settings.database_url}, log_dir, "api-flood")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


async def test_idle_websockets_past_the_per_address_limit_are_refused_with_429(
    flood_api: ApiProcess,
) -> None:
    limit = Settings.model_fields["live_max_connections_per_ip"].default
    assert limit == 100
    pid = flood_api.proc.pid
    async with httpx.AsyncClient(base_url=flood_api.url, timeout=10) as http:
        # Warm up (first query, first WebSocket) before the baseline is taken.
        assert (await http.post("/graphql", json={"query": "{ __typename }"})).status_code == 200
        warm = await GqlWs.open(flood_api.ws_url)
        await warm.close()
        await asyncio.sleep(0.2)
        rss_before, fds_before = rss_mb(pid), open_fds(pid)

        accepted: list[asyncio.StreamWriter] = []
        refusals: dict[int, int] = {}
        bodies: set[bytes] = set()
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def attempt() -> None:
            async with gate:
                status, body, _, writer = await raw_upgrade(flood_api.port)
            if status == 101:
                accepted.append(writer)  # kept open and silent: an idle WebSocket
                return
            refusals[status] = refusals.get(status, 0) + 1
            bodies.add(body)
            writer.close()

        probes: list[tuple[str, int, float]] = []
        peak_rss = rss_before
        flooding = True

        async def probe() -> None:
            # The server keeps answering its probe and a query while the flood goes on.
            nonlocal peak_rss
            while flooding:
                for path in ("/healthz", "/graphql"):
                    started = time.monotonic()
                    if path == "/healthz":
                        response = await http.get(path)
                    else:
                        query = '{ symbol(ticker: "IBM") { ticker } }'
                        response = await http.post(path, json={"query": query})
                    probes.append((path, response.status_code, time.monotonic() - started))
                peak_rss = max(peak_rss, rss_mb(pid))
                await asyncio.sleep(0.1)

        prober = asyncio.create_task(probe())
        started = time.monotonic()
        try:
            await asyncio.gather(*(attempt() for _ in range(ATTEMPTS)))
        finally:
            flooding = False
            await prober
        took = time.monotonic() - started
        peak_rss = max(peak_rss, rss_mb(pid))

        try:
            assert len(accepted) == limit, (len(accepted), refusals)
            assert refusals == {429: ATTEMPTS - limit}
            (body,) = bodies
            (error,) = json.loads(body)["errors"]
            assert error["extensions"]["code"] == "TOO_MANY_CONNECTIONS"
            assert f"at most {limit}" in error["message"]
            assert {path for path, _, _ in probes} == {"/healthz", "/graphql"}
            assert all(status == 200 for _, status, _ in probes), probes
            slowest = max(seconds for _, _, seconds in probes)
            assert slowest < 2.0, f"a probe took {slowest:.2f} s during the flood"
            assert peak_rss - rss_before < RSS_GROWTH_MB, (rss_before, peak_rss)
            # While the limit is reached, a WebSocket client of the library is refused too.
            with pytest.raises(Exception, match="429"):
                await GqlWs.open(flood_api.ws_url)
        finally:
            for writer in accepted:
                writer.close()
        print(
            f"{ATTEMPTS} attempts in {took:.1f} s: {len(accepted)} accepted, {refusals}; "
            f"RSS {rss_before:.0f} -> peak {peak_rss:.0f} MB; slowest probe {slowest:.3f} s"
        )

        # Once the idle sockets are gone the address may connect again, and the server holds
        # no more sockets than before the flood.
        async def reconnects() -> bool:
            try:
                client = await GqlWs.open(flood_api.ws_url)
            except Exception:
                return False
            await client.close()
            return True

        deadline = time.monotonic() + 10
        while not await reconnects():
            assert time.monotonic() < deadline, "the address stayed refused after closing"
            await asyncio.sleep(0.2)
        while open_fds(pid) > fds_before + 2:
            assert time.monotonic() < deadline, (open_fds(pid), fds_before)
            await asyncio.sleep(0.2)
