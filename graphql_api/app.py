"""The FastAPI application: GraphQL at /graphql, health and readiness probes."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.requests import HTTPConnection
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry import Schema
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from core import db, metrics
from core.cache import FieldCache
from core.calendars import sync_sessions
from core.logging_setup import configure_logging
from core.replicas import ReadRouter
from core.settings import Settings, load_settings
from graphql_api import http_protocol
from graphql_api.auth import KeyStore, Principal
from graphql_api.chart import mount_chart
from graphql_api.compression import SizedGZipMiddleware
from graphql_api.context import Context
from graphql_api.documents import DocumentCacheExtension
from graphql_api.documents import cache as document_cache
from graphql_api.download import router as download_router
from graphql_api.graphiql import EXAMPLE_QUERY, graphiql_html, mount_static
from graphql_api.http import GraphQLEndpoint
from graphql_api.live import LiveHub, create_hub
from graphql_api.live.ws import (
    ConnectionLimitMiddleware,
    LiveTransportWSHandler,
    SocketBufferMiddleware,
    allowed_origins,
    authenticate,
)
from graphql_api.ratelimit import RateLimiter
from graphql_api.schema import build_schema
from graphql_api.telemetry import Telemetry
from graphql_api.udf import router as udf_router
from loaders import Loaders

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class MarketRouter(GraphQLRouter[Context, None]):
    """Strawberry's router with orjson encoding (json.dumps is ~10x slower on large results)."""

    # Only WebSocket messages use the router's encoding (HTTP goes through GraphQLEndpoint):
    # text, since graphql-transport-ws clients reject binary frames.
    def encode_json(self, data: object) -> str:
        return orjson.dumps(data).decode()

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    graphql_transport_ws_handler_class = LiveTransportWSHandler

    async def on_ws_connect(self, context: Context) -> None:
        await authenticate(context)  # the key of `connection_init`; refusals close the socket

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return _graphiql()


async def _sync_calendars(engine: AsyncEngine) -> None:
    """Sessions of the calendars symbols use, written where missing (a database migrated
    from before calendars, or a newer calendar library). Best effort: a database that is
    down now is reported by /readyz, and ingest writes sessions for the symbols it creates."""
    try:
        async with asyncio.timeout(5.0), engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None  # an open asyncpg connection
            calendars = {r[0] for r in await driver.fetch("SELECT DISTINCT calendar FROM symbols")}
            await sync_sessions(driver, calendars)
            await conn.commit()
    except Exception as exc:
        # No traceback: an unreachable database is an operations matter, said once here.
        log.warning("could not write trading sessions at start-up: %r", exc)


async def _check_database(engine: AsyncEngine, head: str | None) -> str:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    revision = await db.current_revision(engine)
    return "ok" if revision == head else f"at revision {revision}, head is {head}"


async def _check_redis(url: str, deadline: float) -> str:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=deadline, socket_connect_timeout=deadline)
    try:
        await client.ping()
        return "ok"
    finally:
        await client.aclose()


#: Checks still running after their deadline, by name: one at a time per dependency, so a
#: frozen server polled every second does not pile up connection attempts.
_pending: dict[str, asyncio.Task[str]] = {}


async def _bounded(name: str, check: Coroutine[Any, Any, str], deadline: float) -> str:
    """The check's result, or a refusal once `deadline` passes.

    The check is not cancelled at the deadline: cancelling a pooled connection mid-call
    makes SQLAlchemy close it, and that close waits on the frozen server too (/readyz took
    2.9 s with a 0.8 s deadline). It finishes in the background, bounded by the driver's
    own deadlines, and its result is not needed.
    """
    running = _pending.get(name)
    if running is not None and not running.done():
        check.close()
        return "no answer (the previous check is still waiting)"
    task = asyncio.ensure_future(check)
    done, _ = await asyncio.wait({task}, timeout=deadline)
    if not done:
        _pending[name] = task
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return f"no answer within {deadline:g} s"
    _pending.pop(name, None)
    try:
        return task.result()
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


async def readiness(
    engine: AsyncEngine, settings: Settings, head: str | None, router: ReadRouter | None = None
) -> tuple[bool, dict[str, Any]]:
    """Whether the service can answer queries, and the body /readyz reports.

    Only the database decides readiness: without Redis, caches, rate limits and persisted
    queries degrade to this process's memory and queries are still answered, so a Redis
    outage must not pull every replica out of the load balancer. Checks run concurrently,
    each under its own deadline, so the answer comes within READINESS_TIMEOUT_SECONDS.
    Read replicas do not decide it either (the primary serves reads while they are out);
    their state and lag, from the router's last check, are reported under `replicas`.
    """
    deadline = settings.readiness_timeout_seconds
    names = ["database"]
    checks = [_bounded("database", _check_database(engine, head), deadline)]
    if settings.redis_url:
        names.append("redis")
        checks.append(_bounded("redis", _check_redis(settings.redis_url, deadline), deadline))
    results = dict(zip(names, await asyncio.gather(*checks), strict=True))
    for name, result in results.items():
        metrics.dependency_up.labels(name).set(1 if result == "ok" else 0)
    ready = results["database"] == "ok"
    degraded = sorted(name for name, result in results.items() if result != "ok")
    status = ("ready" if not degraded else "degraded") if ready else "unavailable"
    body: dict[str, Any] = {"status": status, "checks": results}
    if router is not None:
        body["replicas"] = router.status()
        degraded += [
            f"replica {name}" for name, r in body["replicas"].items() if r["status"] != "ok"
        ]
        if ready and degraded:
            body["status"] = "degraded"
    if ready and degraded:
        body["degraded"] = degraded
    return ready, body


def _schema_extensions(settings: Settings) -> list[Any]:
    # Only the parse and the schema's own validation, from the document cache: the limits
    # (depth, aliases, cost, introspection) are graphql_api.limits', checked by both
    # transports before Strawberry runs. Validation results then depend on the schema alone.
    rules_key = "schema"
    # A factory, not an instance: extension instances keep per-request state.
    return [lambda: DocumentCacheExtension(settings.max_tokens, settings.max_aliases, rules_key)]


@dataclass
class Services:
    """What the routes share for the app's lifetime: opened in the lifespan, closed with it."""

    settings: Settings
    head: str | None
    engine: AsyncEngine
    redis: Redis | None
    cache: FieldCache | None
    live: LiveHub
    telemetry: Telemetry
    router: ReadRouter | None = None
    endpoint: GraphQLEndpoint = field(init=False)

    @classmethod
    async def open(cls, settings: Settings, schemas: Schemas, telemetry: Telemetry) -> Services:
        engine = db.create_engine(settings)
        redis = None
        if settings.redis_url:
            from redis.asyncio import Redis

            # Short timeouts: a slow or absent Redis must not stall requests (they degrade).
            redis = Redis.from_url(
                settings.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25
            )
        cache = (
            FieldCache(settings.redis_url, timeout=settings.cache_timeout_seconds)
            if settings.cache_enabled
            else None
        )
        limiter = (
            RateLimiter(settings.rate_limit_cost_per_minute, 60.0, redis)
            if settings.rate_limit_cost_per_minute > 0
            else None
        )
        # Live updates read the primary: each read follows a change just committed there.
        live = create_hub(settings, engine)
        head = db.head_revision(settings)
        router = ReadRouter.create(settings, engine)
        services = cls(settings, head, engine, redis, cache, live, telemetry, router)
        telemetry.attach(engine, cache, router)
        services.endpoint = GraphQLEndpoint(
            schemas.served,
            settings,
            services.http_context,
            KeyStore(engine, settings.api_key_cache_seconds),
            limiter,
            cache,
            engine,
            schemas.reference,
            router=router,
        )
        if router is not None:
            await router.start()
        await live.start()
        await _sync_calendars(engine)
        return services

    async def close(self) -> None:
        await self.live.stop()
        if self.router is not None:
            await self.router.stop()
        if self.cache is not None:
            await self.cache.close()
        if self.redis is not None:
            await self.redis.aclose()
        self.telemetry.detach()
        await self.engine.dispose()

    async def http_context(self, request: Request, principal: Principal) -> Context:
        # The endpoint chose where this request reads (GraphQLEndpoint._route).
        read = getattr(request.state, "read_engine", None) or self.engine
        context = Context(self.settings, self.engine, Loaders.create(read, self.cache), read)
        context.request = request
        context.extras["principal"] = principal
        return context


@dataclass(frozen=True)
class Schemas:
    """The schema served, and the one without the fast path that checks it when configured."""

    served: Schema
    reference: Schema | None

    @classmethod
    def build(cls, settings: Settings) -> Schemas:
        served = build_schema(fast_path=settings.fast_path, extensions=_schema_extensions(settings))
        reference = (
            build_schema(fast_path=False, extensions=_schema_extensions(settings))
            if settings.verify_fast_path
            else None
        )
        return cls(served, reference)


def services_of(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services


async def _ws_context(connection: HTTPConnection) -> Context:
    """The router's context (WebSocket subscriptions); HTTP goes through `Services`."""
    services = services_of(connection)
    context = Context(services.settings, services.engine, Loaders.create(services.engine))
    # The subscribe path checks the limits the HTTP endpoint checks, with the same object.
    context.extras["limits"] = services.endpoint.limits
    return context


def _freeze_startup_objects() -> None:
    # Everything imported so far lives as long as the process: freezing it keeps the
    # collector from walking it again and again (it was up to 45% of a large request's
    # CPU), and a larger first generation runs it less often between requests.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


#: Seconds between full collections (see `_collect_periodically`).
FULL_COLLECTION_SECONDS = 60.0


async def _collect_periodically() -> None:
    """A full collection every minute.

    With the raised thresholds above, full collections became rare: under the soak test's
    steady load (benchmarks/soak.py) 20,000-24,000 unreachable objects a minute waited for
    one, and RSS crept up by ~1 MB/min. A full collection of the unfrozen heap takes ~2 ms.
    """
    while True:
        await asyncio.sleep(FULL_COLLECTION_SECONDS)
        gc.collect()


routes = APIRouter()


async def graphql_http(request: Request) -> Response:
    """GET and POST /graphql. A plain Starlette route (`create_app`), registered before the
    Strawberry router, which keeps the WebSocket transport: FastAPI's route wrapper
    (dependency solving, response validation) cost ~50 us a request and does nothing here."""
    if request.method == "GET" and _wants_html(request):
        return _graphiql()
    return await services_of(request).endpoint.handle(request)


@routes.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@routes.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    services = services_of(request)
    ready, body = await readiness(
        services.engine, services.settings, services.head, services.router
    )
    return JSONResponse(body, status_code=200 if ready else 503)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; connections open in the lifespan and close with it."""
    settings = settings or load_settings()
    document_cache.resize(settings.document_cache_bytes)
    http_protocol.configure(settings.max_header_bytes, settings.header_timeout_seconds)
    schemas = Schemas.build(settings)
    telemetry = Telemetry(settings)  # metrics registry of this app, request logs, traces
    telemetry.instrument_schema(schemas.served)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _freeze_startup_objects()
        app.state.services = await Services.open(settings, schemas, telemetry)
        collector = asyncio.create_task(_collect_periodically(), name="gc-collect")
        try:
            yield
        finally:
            collector.cancel()
            await app.state.services.close()

    app = FastAPI(title="market-graphql", lifespan=lifespan, docs_url=None, redoc_url=None)
    telemetry.mount(app)
    app.add_middleware(
        SizedGZipMiddleware,
        minimum_size=1000,
        level=settings.gzip_level,
        large_level=settings.gzip_large_level,
    )
    app.add_middleware(SocketBufferMiddleware, send_buffer=settings.live_socket_send_buffer)
    app.add_middleware(ConnectionLimitMiddleware, limit=settings.live_max_connections_per_ip)
    app.add_route("/graphql", graphql_http, methods=["GET", "POST"], include_in_schema=False)
    app.include_router(routes)
    app.include_router(udf_router)
    app.include_router(download_router)
    router = MarketRouter(
        schemas.served,
        context_getter=_ws_context,
        graphql_ide="graphiql",
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        max_subscriptions_per_connection=settings.live_max_subscriptions_per_connection,
        allowed_origins=allowed_origins(settings),
    )
    app.include_router(router, prefix="/graphql")
    mount_static(app)
    mount_chart(app)
    return app


def _graphiql() -> HTMLResponse:
    return HTMLResponse(graphiql_html(EXAMPLE_QUERY))  # assets served by this app, no CDN


def _wants_html(request: Request) -> bool:
    """A browser navigating to /graphql (no query in the URL) gets GraphiQL."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "query" not in request.query_params


def create_logged_app() -> FastAPI:
    """The app factory `market-graphql serve` gives uvicorn: logging first, in each process."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
