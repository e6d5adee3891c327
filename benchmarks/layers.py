"""What each layer of the request path costs: CPU time per request, in one run.

    .venv/bin/python benchmarks/layers.py [--requests 2000] [--rounds 5]

Creates its own database (dropped at the end) with the read benchmark's dataset (100 symbols
x 2,000 M1 bars, benchmarks/read_api.py), builds one app per configuration in this process,
and sends each the same small request straight through ASGI (no sockets, no HTTP parsing:
uvicorn's own share is measured apart, as the bare app's). The figure is this process's CPU
time per request (`time.process_time`: PostgreSQL's work is not in it, the driver's is),
median over rounds that alternate the configurations.

Layers, each adding to the one before:

1. bare: an ASGI callable answering a fixed body (the floor of any Python service here)
2. stack: the app's middleware and routing, answering /healthz
3. plan: /graphql with the kit's q3 (100 symbols) through its compiled plan, with request
   logging, metrics and tracing off
4. + metrics
5. + request log line (the default configuration)
6. + API key (the key is looked up once and then cached)
7. resolvers: the same request without compiled plans (Strawberry and the loaders)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.profile_read import scratch_dataset  # noqa: E402
from benchmarks.read_api import DEFAULT_ADMIN_URL  # noqa: E402
from core import db  # noqa: E402
from core.settings import Settings, load_settings  # noqa: E402

Q3 = """query SymbolsPage100($first: Int = 100, $after: String) {
  symbols(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id ticker name exchange assetClass currency active } }
  }
}"""

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})


def _scope(path: str, headers: list[tuple[bytes, bytes]], app: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST" if path == "/graphql" else "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "app": app,
    }


def caller(app: ASGI, path: str, body: bytes, key: str | None) -> Callable[[], Awaitable[int]]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))

    async def call() -> int:
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(_scope(path, headers, app), receive, send)
        return status

    return call


async def cpu_per_request(call: Callable[[], Awaitable[int]], n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        if await call() != 200:
            raise RuntimeError("request failed")
    return (time.process_time() - t0) / n * 1e6


async def measure(url: str, requests: int, rounds: int) -> None:
    from asgi_lifespan import LifespanManager

    from core.logging_setup import configure_logging
    from graphql_api.app import create_app
    from graphql_api.auth import Scope, create_key

    base: dict[str, Any] = {
        "database_url": url,
        "redis_url": None,
        "cache_enabled": False,
        "rate_limit_cost_per_minute": 0,
        "verify_fast_path": False,
    }
    quiet = {"log_requests": False, "metrics_enabled": False, "tracing_enabled": False}
    configs: list[tuple[str, dict[str, Any], str, bool]] = [
        ("2 stack (/healthz)", quiet, "/healthz", False),
        ("3 plan, no log/metrics", quiet, "/graphql", False),
        ("4 + metrics", {**quiet, "metrics_enabled": True}, "/graphql", False),
        ("5 + request log (default)", {}, "/graphql", False),
        ("6 + API key", {}, "/graphql", True),
        ("7 resolvers (no plan)", {"compiled_plans": False}, "/graphql", False),
    ]
    body = orjson.dumps({"query": Q3})
    settings = load_settings(**base)
    engine = db.create_engine(settings)
    key = await create_key(engine, "bench", [Scope.READ])
    await engine.dispose()
    # Request lines are formatted as in production (JSON, INFO) and written to /dev/null:
    # what a terminal costs is not the service's.
    sink = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 - /dev/null, open for the run
    configure_logging(settings.model_copy(update={"log_format": "json"}), sink)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    calls: dict[str, Callable[[], Awaitable[int]]] = {"1 bare ASGI": caller(bare, "/", b"", None)}
    managers = []
    for name, overrides, path, with_key in configs:
        app = create_app(Settings(**{**base, **overrides}))  # type: ignore[arg-type]
        manager = LifespanManager(app)
        await manager.__aenter__()
        managers.append(manager)
        calls[name] = caller(manager.app, path, body, key.token if with_key else None)
    try:
        for call in calls.values():
            await cpu_per_request(call, 50)  # warm: plans compiled, keys cached
        results: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                results[name].append(await cpu_per_request(call, requests))
        print("| layer | CPU µs per request | added by the layer |")
        print("| --- | ---: | ---: |")
        previous = None
        for name, values in results.items():
            med = statistics.median(values)
            added = "" if previous is None or name.startswith("7") else f"{med - previous:+.0f}"
            print(f"| {name} | {med:.0f} | {added} |")
            if not name.startswith("7"):
                previous = med
    finally:
        for manager in reversed(managers):
            await manager.__aexit__(None, None, None)


async def run(args: argparse.Namespace) -> None:
    async with scratch_dataset(args.database_url, "mg_layers", 100, 200) as (url, _):
        await measure(url, args.requests, args.rounds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--database-url", default=DEFAULT_ADMIN_URL, help="admin URL of the server")
    p.add_argument("--requests", type=int, default=2000, help="requests per round and layer")
    p.add_argument("--rounds", type=int, default=5)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
