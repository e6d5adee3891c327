"""Overhead of metrics, request logs and tracing on GraphQL requests.

    .venv/bin/python benchmarks/observability.py --database-url postgresql://…/db_with_demo_data

Needs a migrated database holding the demo data (`market-graphql migrate && market-graphql
demo-data`: ACME has ~3,900 one-minute bars). For each configuration an app is built
in-process and driven through Starlette's TestClient (the same client cost for all), uncached
(CACHE_ENABLED=false, so each request runs its SQL and executes the query):

- off:     METRICS_ENABLED=false, LOG_REQUESTS=false, tracing off (no hook runs at all);
- off-again: the same, a second app: the difference between two identical apps is the noise;
- on:      metrics and one JSON log line per request (written to /dev/null, formatted);
- tracing: the above plus OpenTelemetry spans, exported by a no-op exporter.

Two queries: 1,000 ACME bars (six fields each), and a one-symbol query (where a fixed
per-request cost shows most). Configurations take turns request by request, so that load
from elsewhere on a shared machine falls on all of them alike. Printed: wall-clock p50 and
mean CPU time of this process per request (client and app; PostgreSQL excluded), which
load from other processes disturbs much less than wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient

from core import tracing
from core.logging_setup import JsonFormatter, RequestIdFilter
from core.settings import load_settings
from graphql_api.app import create_app

BARS = """query Bars { symbol(ticker: "ACME") {
  bars(interval: M1, first: 1000) { edges { node { time open high low close volume } } } } }"""
SMALL = 'query One { symbol(ticker: "ACME") { ticker name } }'

CONFIGS: dict[str, dict[str, Any]] = {
    "off": {"metrics_enabled": False, "log_requests": False},
    # The same again: how far two identical apps differ here (the noise floor).
    "off-again": {"metrics_enabled": False, "log_requests": False},
    "on": {"metrics_enabled": True, "log_requests": True},
    "tracing": {"metrics_enabled": True, "log_requests": True, "tracing_enabled": True},
}


@contextlib.contextmanager
def json_logs_to_devnull() -> Iterator[None]:
    """Request lines formatted as in production, written to /dev/null."""
    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestIdFilter())
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.removeHandler(handler)


def _noop_provider(_settings: Any) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Discard()))
    return provider


def micro(iterations: int = 20_000) -> None:
    """The hooks alone: µs per request (observe around a no-op handler) and per statement."""
    import asyncio
    from types import SimpleNamespace

    from starlette.requests import Request
    from starlette.responses import Response

    from core import reqstats
    from graphql_api.telemetry import Telemetry

    async def handler(request: Request) -> Response:
        reqstats.note_outcome(200, {"data": {}})
        return Response(b"{}")

    def request() -> Request:
        scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": []}
        req = Request(scope)
        req.state.request_id = "r"
        return req

    print(f"{'hooks alone, CPU':<34} {'µs/request':>10} {'µs/statement':>13}")
    for name, overrides in CONFIGS.items():
        settings = load_settings(database_url=None, slow_sql_ms=60_000, **overrides)
        telemetry = Telemetry(settings)

        async def run(t: Telemetry = telemetry) -> float:
            reqs = [request() for _ in range(iterations)]
            # CPU time of this thread: time the OS gave to other processes is not counted.
            started = time.thread_time()
            for req in reqs:
                if t.active:
                    await t.observe(req, handler)
                else:
                    await handler(req)
            return (time.thread_time() - started) / iterations

        per_request = asyncio.run(run())
        context = SimpleNamespace()
        token = reqstats.CURRENT.set(
            reqstats.RequestStats(tracer=telemetry.tracing.tracer if telemetry.tracing else None)
        )
        started = time.thread_time()
        for _ in range(iterations):
            if telemetry.active:
                telemetry._before_cursor(None, None, "SELECT 1", (), context, False)
                telemetry._after_cursor(None, None, "SELECT 1", (), context, False)
        per_statement = (time.thread_time() - started) / iterations
        reqstats.CURRENT.reset(token)
        telemetry.detach()
        print(f"{name:<34} {per_request * 1e6:>10.1f} {per_statement * 1e6:>13.1f}")


def main() -> None:
    """Time each configuration and print p50s and ratios to `off`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--requests", type=int, default=50, help="per configuration and query")
    parser.add_argument("--micro-only", action="store_true", help="only time the hooks")
    args = parser.parse_args()
    tracing._provider_from_settings = _noop_provider  # type: ignore[assignment]
    with json_logs_to_devnull():
        micro()
    if args.micro_only:
        return

    clients: dict[str, TestClient] = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(json_logs_to_devnull())
        for name, overrides in CONFIGS.items():
            settings = load_settings(
                database_url=args.database_url,
                redis_url=None,
                cache_enabled=False,
                rate_limit_cost_per_minute=0,
                slow_request_ms=60_000,
                slow_sql_ms=60_000,
                **overrides,
            )
            clients[name] = stack.enter_context(TestClient(create_app(settings)))
        timings: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        names = list(clients)
        for query_name, query in (("1000 bars", BARS), ("one symbol", SMALL)):
            for client in clients.values():  # warm-up: connections, parser cache
                for _ in range(5):
                    body = client.post("/graphql", json={"query": query}).json()
                    assert "errors" not in body, body
            for i in range(args.requests):
                # One request per configuration in turn, the order rotating: slow spells of a
                # shared machine fall on all configurations alike.
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    cpu_started, started = time.process_time(), time.perf_counter()
                    response = clients[name].post("/graphql", json={"query": query})
                    elapsed = time.perf_counter() - started
                    cpu.setdefault((query_name, name), []).append(time.process_time() - cpu_started)
                    assert response.status_code == 200
                    timings.setdefault((query_name, name), []).append(elapsed)
        edges = clients["off"].post("/graphql", json={"query": BARS}).json()
        print(f"bars per response: {len(edges['data']['symbol']['bars']['edges'])}")
    print(
        f"{'query':<12} {'config':<9} {'n':>4} {'p50 ms':>8} {'ratio':>6} "
        f"{'cpu ms':>7} {'ratio':>6}"
    )
    for query_name in ("1000 bars", "one symbol"):
        base = statistics.median(timings[(query_name, "off")])
        base_cpu = statistics.mean(cpu[(query_name, "off")])
        for name in CONFIGS:
            p50 = statistics.median(timings[(query_name, name)])
            mean_cpu = statistics.mean(cpu[(query_name, name)])
            print(
                f"{query_name:<12} {name:<9} {len(timings[(query_name, name)]):>4} "
                f"{p50 * 1000:>8.2f} {p50 / base:>6.3f} {mean_cpu * 1000:>7.2f} "
                f"{mean_cpu / base_cpu:>6.3f}"
            )


if __name__ == "__main__":
    main()
