"""Optional OpenTelemetry tracing: a span per request, per root field, per loader batch, per SQL.

Off by default (TRACING_ENABLED). Needs the `tracing` extra (opentelemetry-api and -sdk);
the OTLP exporter needs `opentelemetry-exporter-otlp-proto-http` on top.

Never a per-field hook: an async resolve hook made a 5k-bar query ~10x slower (156 ms to 1.5 s).
Root fields are traced by wrapping only the root types' resolvers in the built schema, so
leaf fields run exactly as without tracing. Loader batches are spans around
`loaders.sql.fetch`; SQL statements are spans opened and closed by SQLAlchemy's cursor
events. Nothing here is imported from opentelemetry at module level: without the extra the
service runs and only enabling tracing fails (with a message naming the packages).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from core import reqstats
from core.errors import ConfigError
from core.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer
    from starlette.requests import Request
    from strawberry import Schema

#: Statement text kept on SQL spans (parameterised: no values in it, but some are long).
MAX_STATEMENT_CHARS = 2000
_NULL = contextlib.nullcontext(None)


def _provider_from_settings(settings: Settings) -> TracerProvider:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
    except ImportError:
        raise ConfigError(
            "TRACING_ENABLED needs OpenTelemetry: pip install 'market-graphql[tracing]'"
        ) from None
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.tracing_service_name}),
        sampler=ParentBasedTraceIdRatio(settings.tracing_sample_ratio),
    )
    exporter: Any
    if settings.tracing_exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError(
                "TRACING_EXPORTER=otlp needs: pip install opentelemetry-exporter-otlp-proto-http "
                "(or set TRACING_EXPORTER=console)"
            ) from None
        # Endpoint unset: the exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (default localhost).
        exporter = OTLPSpanExporter(endpoint=settings.tracing_endpoint)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Tracing:
    """The tracer of one app and the spans it opens."""

    def __init__(self, provider: Any, *, owns_provider: bool = False) -> None:
        from opentelemetry import trace

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("market_graphql")
        self._trace = trace
        self._owns_provider = owns_provider

    @classmethod
    def from_settings(cls, settings: Settings, provider: Any = None) -> Tracing | None:
        """Tracing per settings (None when off); `provider` overrides the configured exporter."""
        if provider is not None:
            return cls(provider)
        if not settings.tracing_enabled:
            return None
        return cls(_provider_from_settings(settings), owns_provider=True)

    @contextlib.contextmanager
    def request_span(self, request: Request) -> Iterator[Span]:
        """The span of one GraphQL request, continuing a `traceparent` sent by the caller."""
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind

        parent = extract(dict(request.headers))
        with self.tracer.start_as_current_span(
            "graphql.request",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.url.path},
            record_exception=False,  # errors are recorded by the request log, not as events
            set_status_on_exception=True,
        ) as span:
            yield span

    def finish_request(self, span: Span, stats: reqstats.RequestStats) -> None:
        """Name the request span after its operation and record its outcome."""
        from opentelemetry.trace import Status, StatusCode

        info = stats.info
        operation = getattr(info, "operation", None) if info is not None else None
        if operation is not None:
            op_type = operation.operation.value
            name = operation.name.value if operation.name else None
            span.update_name(f"{op_type} {name}" if name else op_type)
            span.set_attribute("graphql.operation.type", op_type)
            if name:
                span.set_attribute("graphql.operation.name", name)
        span.set_attribute("http.response.status_code", stats.status)
        span.set_attribute("market_graphql.request_id", stats.request_id)
        span.set_attribute("market_graphql.outcome", stats.outcome)
        span.set_attribute("market_graphql.sql_count", stats.sql_count)
        if stats.outcome == "error":
            span.set_status(Status(StatusCode.ERROR))

    def instrument_schema(self, schema: Schema) -> None:
        """Wrap the resolvers of the root types' fields (and only those) in spans."""
        gql = schema._schema
        for root in (gql.query_type, gql.mutation_type):
            if root is None:
                continue
            for name, field in root.fields.items():
                if field.resolve is not None:
                    field.resolve = self._root_resolver(field.resolve, f"{root.name}.{name}")

    def _root_resolver(self, resolve: Callable[..., Any], span_name: str) -> Callable[..., Any]:
        tracer = self.tracer
        trace = self._trace
        attributes = {"graphql.field.name": span_name.split(".", 1)[1]}

        async def finish_async(result: Any, span: Span) -> Any:
            # The coroutine's body runs here, with the span current: loader batches it
            # starts take it as their parent.
            with trace.use_span(span, end_on_exit=True):
                return await result

        def traced(source: Any, info: Any, **kwargs: Any) -> Any:
            span = tracer.start_span(span_name, attributes=attributes)
            try:
                with trace.use_span(span, end_on_exit=False):
                    result = resolve(source, info, **kwargs)
            except BaseException:
                span.end()
                raise
            if inspect.isawaitable(result):
                return finish_async(result, span)
            span.end()
            return result

        return traced

    def sql_start(self, statement: str) -> Span:
        """A span for one SQL statement, a child of the current span."""
        from opentelemetry.trace import SpanKind

        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        return self.tracer.start_span(
            verb,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "postgresql",
                "db.query.text": statement[:MAX_STATEMENT_CHARS],
            },
        )

    @staticmethod
    def sql_end(span: Span, error: BaseException | None = None) -> None:
        """Close a SQL span, marking it failed when the statement raised."""
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def shutdown(self) -> None:
        """Flush and stop the exporter of a provider built from settings."""
        if self._owns_provider:
            self.provider.shutdown()


def loader_span() -> contextlib.AbstractContextManager[Any]:
    """A span around one loader batch (`loaders.sql.fetch`); a shared no-op when not tracing."""
    stats = reqstats.CURRENT.get()
    tracer = stats.tracer if stats is not None else None
    if tracer is None:
        return _NULL
    # Named after the function that called fetch (a loader's batch function): code, so bounded.
    caller = sys._getframe(2).f_code.co_qualname
    return tracer.start_as_current_span(
        f"loader {caller}", attributes={"code.function.name": caller}
    )
