"""OpenTelemetry spans: request, root fields, loader batches and SQL; none per leaf field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core import reqstats, tracing
from tests.ops.conftest import LAG_TICKER
from tests.ops.test_metrics import count_statements, post

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

Open = Callable[..., TestClient]

QUERY = f"""query Traced {{
  symbol(ticker: "{LAG_TICKER}") {{
    ticker name
    bars(interval: M1, first: 5) {{ edges {{ cursor node {{ time open high low close volume }} }} }}
  }}
  symbols(first: 2) {{ edges {{ node {{ ticker exchange }} }} }}
}}"""
LEAF_FIELDS = {"ticker", "name", "time", "open", "high", "low", "close", "volume", "cursor"}


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Apps built with TRACING_ENABLED export to memory instead of OTLP."""
    memory = InMemorySpanExporter()

    def provider(settings: Any) -> TracerProvider:
        built = TracerProvider()
        built.add_span_processor(SimpleSpanProcessor(memory))
        return built

    monkeypatch.setattr(tracing, "_provider_from_settings", provider)
    yield memory
    memory.clear()


def _by_id(spans: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def _parent(span: ReadableSpan, index: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return index.get(span.parent.span_id) if span.parent is not None else None


def test_spans_for_request_root_fields_loader_batches_and_sql(
    app_client: Open, exporter: InMemorySpanExporter
) -> None:
    # The resolvers' spans: a compiled plan has no root fields or loaders to trace
    # (test_planned_request_is_one_sql_span_under_the_request).
    client = app_client(cache_enabled=False, tracing_enabled=True, compiled_plans=False)
    with count_statements(client) as statements:
        response = post(client, QUERY, headers={"x-request-id": "ops-trace-1"})
    assert response.status_code == 200 and "errors" not in response.json(), response.text

    spans = exporter.get_finished_spans()
    index = _by_id(spans)
    names = [s.name for s in spans]

    (request,) = [s for s in spans if s.name == "query Traced"]
    assert request.kind == SpanKind.SERVER and request.parent is None
    assert request.attributes is not None
    assert request.attributes["graphql.operation.name"] == "Traced"
    assert request.attributes["market_graphql.request_id"] == "ops-trace-1"
    assert request.attributes["http.response.status_code"] == 200

    roots = [s for s in spans if s.name.startswith("Query.")]
    assert sorted(s.name for s in roots) == ["Query.symbol", "Query.symbols"]
    assert all(_parent(s, index) is request for s in roots)

    loaders = [s for s in spans if s.name.startswith("loader ")]
    assert loaders, names
    parents = {s.name: _parent(s, index) for s in loaders}
    # A root field's span covers its resolver and the batches it awaits; batches of nested
    # fields (bars of the symbol) run after the root resolver returned: the request's children.
    assert parents["loader SymbolByTickerLoader.batch_load_fn"].name == "Query.symbol"
    assert parents["loader symbols_page"].name == "Query.symbols"
    bar_batches = [s for s in loaders if "Bar" in s.name]
    assert len(bar_batches) == 1 and _parent(bar_batches[0], index) is request

    sql = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert len(sql) == len(statements)
    assert all(s.name == "SELECT" for s in sql)
    assert all(s.attributes and s.attributes["db.system.name"] == "postgresql" for s in sql)
    # Each loader batch is one statement, its child.
    assert all(_parent(s, index) in loaders for s in sql)
    assert len(loaders) == len(sql)

    # No span per field below the root: no leaf or nested field name, and a bounded count.
    assert not [n for n in names if n.split(".")[-1] in LEAF_FIELDS]
    assert not [n for n in names if n.startswith(("Symbol.", "Bar", "SymbolConnection"))]
    assert len(spans) == 1 + len(roots) + len(loaders) + len(sql)
    assert len({s.context.trace_id for s in spans}) == 1


def test_planned_request_is_one_sql_span_under_the_request(
    app_client: Open, exporter: InMemorySpanExporter
) -> None:
    """A request answered by a compiled plan (graphql_api/compiled.py): the request's span
    and its one statement, which the plan runs on the driver with the statement events."""
    client = app_client(cache_enabled=False, tracing_enabled=True)
    query = "query Planned { symbols(first: 3) { nodes { ticker name } } }"
    with count_statements(client) as statements:
        response = post(client, query)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    assert 'plan;desc="compiled"' in response.headers["server-timing"]
    spans = exporter.get_finished_spans()
    index = _by_id(spans)
    (request,) = [s for s in spans if s.name == "query Planned"]
    sql = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert len(sql) == len(statements) == 1
    assert _parent(sql[0], index) is request
    assert len(spans) == 2


def test_caller_trace_context_is_continued(
    app_client: Open, exporter: InMemorySpanExporter
) -> None:
    client = app_client(cache_enabled=False, tracing_enabled=True)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    post(
        client,
        "query Continued { symbols(first: 1) { edges { cursor } } }",
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    (request,) = [s for s in exporter.get_finished_spans() if s.name == "query Continued"]
    assert format(request.context.trace_id, "032x") == trace_id
    assert request.parent is not None and format(request.parent.span_id, "016x") == (
        "00f067aa0ba902b7"
    )


def test_failed_requests_are_marked(app_client: Open, exporter: InMemorySpanExporter) -> None:
    client = app_client(cache_enabled=False, tracing_enabled=True, max_page_size_symbols=1)
    post(client, 'query Fails { nodes(ids: ["a", "b"]) { id } }')
    (request,) = [s for s in exporter.get_finished_spans() if s.name == "query Fails"]
    assert request.attributes is not None
    assert request.attributes["market_graphql.outcome"] == "error"
    assert request.status.status_code.name == "ERROR"


def test_no_spans_and_no_wrapping_when_off(
    app_client: Open, exporter: InMemorySpanExporter
) -> None:
    client = app_client(cache_enabled=False)
    post(client, "query Untraced { symbols(first: 1) { edges { cursor } } }")
    assert exporter.get_finished_spans() == ()
    # Outside a traced request the loader hook is one shared no-op.
    assert reqstats.current() is None
    assert tracing.loader_span() is tracing.loader_span()


def test_tracing_needs_an_exporter_package() -> None:
    from core.errors import ConfigError
    from core.settings import load_settings

    settings = load_settings(tracing_enabled=True, tracing_exporter="otlp")
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-http"):
            tracing.Tracing.from_settings(settings)
    console = tracing.Tracing.from_settings(
        load_settings(tracing_enabled=True, tracing_exporter="console")
    )
    assert console is not None
    console.shutdown()
    assert tracing.Tracing.from_settings(load_settings()) is None
