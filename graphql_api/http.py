"""GraphQL over HTTP (graphql.github.io/graphql-over-http): the request/response protocol.

Strawberry's router answers `application/json` with 200 for every GraphQL error and always
writes `"data": null`; this endpoint follows the spec instead: media-type negotiation,
4xx for request errors with no `data` key, 405 for a mutation over GET, 415/406 for
unsupported media types. Per-request state lives on `request.state`, never on shared objects.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import ClientDisconnect
from strawberry import Schema
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType as StrawberryOperation

from core.cache import FieldCache
from core.errors import ApiError, Forbidden, Unauthenticated
from core.replicas import ReadRouter, run_read
from core.reqstats import note_outcome, note_request
from core.settings import Settings
from graphql_api.auth import KeyStore, Principal, Scope
from graphql_api.compiled import Decline, Plan, compile_plan
from graphql_api.documents import CachedDocument
from graphql_api.error_format import classify, format_error
from graphql_api.limits import LimitError, Limits
from graphql_api.persisted import PersistedQueries, PersistedQueryError
from graphql_api.ratelimit import Decision, RateLimiter
from graphql_api.response_cache import data_version, etag, matches
from graphql_api.telemetry import observe_request
from loaders.sql import fetch_row

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
#: Whole responses are keyed on the database-wide data version, which every ingest changes:
#: under steady ingest a response is dead within seconds, and an hour's lifetime kept ~1 GB
#: of dead responses in an unbounded Redis (benchmarks/soak.py). Five minutes still serves
#: the same query again and again while no ingest happens.
RESPONSE_TTL = 300.0
_DOCUMENT_ERRORS = frozenset({"GRAPHQL_PARSE_FAILED"})


class RequestError(Exception):
    """A request that cannot be executed; answered with `status` and a GraphQL error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extensions = extensions or {}


@dataclass
class Params:
    """The GraphQL request parameters."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


@dataclass
class Outcome:
    """What an endpoint run produced: a body to encode, or bytes (a cached body), or nothing."""

    body: dict[str, Any] | None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    #: Answered by a compiled plan (graphql_api/compiled.py), said in Server-Timing.
    compiled: bool = False


def accept_ranges(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header, lower-cased, with their weights (q; an
    unreadable q counts as 0), in the header's order."""
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((kind.lower(), q))
    return ranges


def _accepted_media_type(accept: str | None) -> str | None:
    """The response media type for an Accept header; None when nothing we serve is acceptable."""
    if not accept:
        return JSON  # the spec's legacy default
    best: tuple[float, str] | None = None
    for kind, q in accept_ranges(accept):
        if q <= 0:
            continue
        if kind == GRAPHQL_RESPONSE:
            candidate = (q + 0.001, GRAPHQL_RESPONSE)  # preferred at equal weight
        elif kind in (JSON, "application/*", "*/*"):
            candidate = (q, JSON)
        else:
            continue
        if best is None or candidate[0] > best[0]:
            best = candidate
    return best[1] if best else None


def _json_param(value: str | None, name: str) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise RequestError(400, f"`{name}` is not valid JSON", "BAD_REQUEST") from None
    if decoded is not None and not isinstance(decoded, dict):
        raise RequestError(400, f"`{name}` must be a JSON object", "BAD_REQUEST")
    return decoded


def _params_from(data: Any) -> Params:
    if isinstance(data, list):
        raise RequestError(400, "batched requests are not supported", "BAD_REQUEST")
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object", "BAD_REQUEST")
    query = data.get("query")
    if query is not None and not isinstance(query, str):
        raise RequestError(400, "`query` must be a string", "BAD_REQUEST")
    variables, op_name, extensions = (
        data.get("variables"),
        data.get("operationName"),
        data.get("extensions"),
    )
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "`variables` must be an object", "BAD_REQUEST")
    if op_name is not None and not isinstance(op_name, str):
        raise RequestError(400, "`operationName` must be a string", "BAD_REQUEST")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "`extensions` must be an object", "BAD_REQUEST")
    return Params(query, variables, op_name, extensions)


async def read_params(request: Request, settings: Settings) -> Params:
    """Parameters from a GET query string or a POST JSON body, within the size limits."""
    limit = settings.max_request_bytes
    if request.method == "GET":
        if len(request.scope.get("query_string", b"")) > limit:
            raise RequestError(
                414,
                f"the query string exceeds {limit} bytes (MAX_REQUEST_BYTES); send a POST",
                "REQUEST_TOO_LARGE",
                extensions={"limit": limit},
            )
        qp = request.query_params
        return _params_from(
            {
                "query": qp.get("query"),
                "variables": _json_param(qp.get("variables"), "variables"),
                "operationName": qp.get("operationName") or None,
                "extensions": _json_param(qp.get("extensions"), "extensions"),
            }
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise RequestError(
            415, "send the request as `content-type: application/json`", "UNSUPPORTED_MEDIA_TYPE"
        )
    body = await read_body(request, limit, settings.request_body_timeout_seconds)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestError(400, "the request body is not valid JSON", "BAD_REQUEST") from None
    return _params_from(data)


def _too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        f"the request body exceeds {limit} bytes (MAX_REQUEST_BYTES)",
        "REQUEST_TOO_LARGE",
        {"connection": "close"},
        extensions={"limit": limit},
    )


async def read_body(request: Request, limit: int, deadline: float) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` bytes or to arrive slower
    than `deadline` seconds in all (never buffered past the limit)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise RequestError(400, "invalid content-length", "BAD_REQUEST") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(
            408,
            f"the request body did not arrive within {deadline:g} s",
            "REQUEST_TIMEOUT",
            {"connection": "close"},
        ) from None
    except ClientDisconnect:
        raise RequestError(400, "the client went away mid-request", "BAD_REQUEST") from None
    return b"".join(chunks)


def operation_of(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    """The operation to run; a request error when it is ambiguous or missing."""
    operation = get_operation_ast(document, name)
    if operation is None:
        if name:
            raise RequestError(400, f"unknown operation named {name!r}", "BAD_REQUEST")
        raise RequestError(400, "operationName is required with several operations", "BAD_REQUEST")
    return operation


Hook = Callable[[Request, Params, "RequestInfo"], Awaitable[Outcome | None]]


@dataclass
class RequestInfo:
    """What the endpoint learned about a request before executing it."""

    request_id: str
    media_type: str
    principal: Principal
    entry: CachedDocument | None = None
    document: DocumentNode | None = None
    operation: OperationDefinitionNode | None = None
    cost: int = 0
    rate: Decision | None = None
    started: float = field(default_factory=time.perf_counter)


class GraphQLEndpoint:
    """Runs GraphQL requests over HTTP with authentication, cost limits and rate limiting."""

    def __init__(
        self,
        schema: Schema,
        settings: Settings,
        context_factory: Callable[[Request, Principal], Awaitable[Any]],
        keys: KeyStore,
        limiter: RateLimiter | None,
        cache: FieldCache | None = None,
        engine: AsyncEngine | None = None,
        reference_schema: Schema | None = None,
        limits: Limits | None = None,
        router: ReadRouter | None = None,
    ) -> None:
        self.schema = schema
        self.reference_schema = reference_schema
        self.settings = settings
        self.context_factory = context_factory
        self.keys = keys
        self.limiter = limiter
        self.cache = cache
        self.engine = engine
        self.router = router
        self.persisted = (
            PersistedQueries(cache, settings.persisted_queries)
            if cache is not None and settings.persisted_queries != "off"
            else None
        )
        self.limits = limits or Limits(schema, settings)

    async def handle(self, request: Request) -> Response:
        """Answer one GraphQL request, observed (metrics, one log line, a trace span)."""
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        return await observe_request(request, self._handle)

    async def _handle(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id: str = request.state.request_id
        media_type = _accepted_media_type(request.headers.get("accept"))
        if media_type is None:
            return self._respond(
                Outcome(
                    {
                        "errors": [
                            _error(
                                "accept application/graphql-response+json or application/json",
                                "NOT_ACCEPTABLE",
                            )
                        ]
                    },
                    406,
                ),
                JSON,
                request_id,
            )
        try:
            outcome = await self._run(request, request_id, media_type)
        except RequestError as exc:
            # Legacy `application/json` clients get document-level errors with 200 (the spec's
            # compatibility rule); everything else keeps its 4xx.
            legacy = media_type == JSON and exc.code in _DOCUMENT_ERRORS
            status = 200 if legacy else exc.status
            outcome = Outcome(
                {"errors": [_error(exc.message, exc.code, exc.extensions)]}, status, exc.headers
            )
        except LimitError as exc:
            status = exc.legacy_status if media_type == JSON else exc.status
            outcome = Outcome({"errors": [exc.formatted]}, status)
        return self._respond(outcome, media_type, request_id, started)

    def _respond(
        self, outcome: Outcome, media_type: str, request_id: str, started: float | None = None
    ) -> Response:
        note_outcome(outcome.status, outcome.body)
        headers = {"x-request-id": request_id, **outcome.headers}
        if started is not None:
            # Server-Timing lets clients and benchmarks see time spent here, network excluded.
            timing = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
            headers["server-timing"] = (
                timing + ', plan;desc="compiled"' if outcome.compiled else timing
            )
        if outcome.status == 304:
            return Response(status_code=304, headers=headers)
        content = outcome.raw if outcome.raw is not None else orjson.dumps(outcome.body)
        return Response(
            content,
            status_code=outcome.status,
            media_type=media_type,
            headers=headers,
        )

    async def _authenticate(self, request: Request) -> Principal:
        client = request.client.host if request.client else "unknown"
        try:
            return await self.keys.principal(request.headers.get("authorization"), client)
        except Unauthenticated as exc:
            raise RequestError(
                401, exc.message, exc.code, {"www-authenticate": 'Bearer realm="market-graphql"'}
            ) from None
        except Exception as exc:
            # The key lookup needs the database: down or timed out is a 503, not a 500.
            known = classify(exc)
            if known is None:
                raise
            log.warning("API key lookup failed: %s: %s", known[0], exc)
            raise RequestError(503, known[1], known[0], {"retry-after": "1"}) from None

    async def execute(self, request: Request, params: Params) -> Outcome:
        """Run a document this service composed itself (the UDF adapter, graphql_api/udf.py).

        The same path as a request to /graphql after its parameters are read: the caller's
        key, authorization, limits and cost, the rate limit and the response cache. Raises
        `RequestError` or `LimitError` where /graphql would answer with a 4xx. Persisted-query
        rules do not apply: they govern documents clients send, and this one is ours.
        """
        request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        request.state.request_id = request_id
        principal = await self._authenticate(request)
        return await self._run_params(
            request, request_id, GRAPHQL_RESPONSE, principal, params, composed=True
        )

    async def _run(self, request: Request, request_id: str, media_type: str) -> Outcome:
        principal = await self._authenticate(request)
        params = await read_params(request, self.settings)
        return await self._run_params(request, request_id, media_type, principal, params)

    async def _run_params(
        self,
        request: Request,
        request_id: str,
        media_type: str,
        principal: Principal,
        params: Params,
        *,
        composed: bool = False,
    ) -> Outcome:
        info = RequestInfo(request_id, media_type, principal)
        note_request(info)
        if self.persisted is not None and not composed:
            try:
                params.query = await self.persisted.resolve(
                    params.query, params.extensions, may_register=principal.has(Scope.ADMIN)
                )
            except PersistedQueryError as exc:
                raise RequestError(exc.status, exc.message, exc.code) from None
        if not params.query:
            raise RequestError(400, "no GraphQL query in the request", "BAD_REQUEST")
        try:
            entry = self.limits.parse(params.query)
        except GraphQLSyntaxError as exc:
            raise RequestError(
                400,
                exc.message,
                "GRAPHQL_PARSE_FAILED",
                extensions={"locations": [loc._asdict() for loc in exc.locations or []]},
            ) from None
        document = entry.document
        operation = operation_of(document, params.operation_name)
        info.entry, info.document, info.operation = entry, document, operation
        self._authorize(request, operation, principal, document)
        info.cost = self.limits.check(entry, operation, params.variables, principal)
        if self.limiter is not None:
            info.rate = await self.limiter.take(principal.rate_key, info.cost)
            if not info.rate.allowed:
                raise RequestError(
                    429,
                    f"rate limit exceeded; retry in {info.rate.retry_after} s",
                    "RATE_LIMITED",
                    _rate_headers(info.rate) | {"retry-after": str(info.rate.retry_after)},
                    extensions={"cost": info.cost, "retryAfter": info.rate.retry_after},
                )
        outcome = await self._execute(request, params, info)
        if info.rate is not None:
            outcome.headers.update(_rate_headers(info.rate))
        return outcome

    def _authorize(
        self,
        request: Request,
        operation: OperationDefinitionNode,
        principal: Principal,
        document: DocumentNode,
    ) -> None:
        op = operation.operation
        if request.method == "GET" and op != OperationType.QUERY:
            raise RequestError(
                405,
                f"{op.value}s are only accepted over POST",
                "METHOD_NOT_ALLOWED",
                {"allow": "POST"},
            )
        if op == OperationType.SUBSCRIPTION:
            raise RequestError(
                400,
                "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql",
                "BAD_REQUEST",
            )
        if op == OperationType.MUTATION and not (
            principal.has(Scope.INGEST) or self.settings.allow_anonymous_ingest
        ):
            if not principal.authenticated:
                raise RequestError(
                    401,
                    "mutations need an API key with the `ingest` or `admin` scope",
                    "UNAUTHENTICATED",
                    {"www-authenticate": 'Bearer realm="market-graphql"'},
                )
            raise RequestError(403, "this API key lacks the `ingest` scope", "FORBIDDEN")
        if (
            self.settings.require_read_key
            and op != OperationType.MUTATION
            and not principal.has(Scope.READ)
            and not (
                # An ingest key may follow its own jobs, and nothing else.
                principal.has(Scope.INGEST) and _root_fields(document, operation) <= INGEST_READABLE
            )
        ):
            if not principal.authenticated:
                raise RequestError(
                    401,
                    "reads need an API key with the `read` scope",
                    "UNAUTHENTICATED",
                    {"www-authenticate": 'Bearer realm="market-graphql"'},
                )
            raise RequestError(403, "this API key lacks the `read` scope", "FORBIDDEN")

    async def _route(
        self, request: Request, params: Params, info: RequestInfo
    ) -> AsyncEngine | None:
        """Choose the server this request reads from; the context factory finds it on
        `request.state.read_engine`. Mutations read the primary (their own writes)."""
        assert info.operation is not None
        engine = self.engine
        if self.router is not None and info.operation.operation == OperationType.QUERY:
            engine = await self.router.read_engine(min_version(request, params))
        request.state.read_engine = engine
        return engine

    async def _execute(self, request: Request, params: Params, info: RequestInfo) -> Outcome:
        assert params.query is not None and info.operation is not None
        engine = await self._route(request, params, info)
        if (
            self.cache is None
            or engine is None
            or info.operation.operation != OperationType.QUERY
            or not _root_fields(info.document, info.operation).isdisjoint(UNCACHEABLE)
        ):
            return await self._execute_uncached(request, params, info)
        try:
            # From the server the request reads: a version read on the primary with data
            # from a lagging replica would file old data under a new version.
            version = await run_read(engine, data_version)
        except Exception as exc:
            known = classify(exc)
            if known is None:
                raise
            raise RequestError(503, known[1], known[0], {"retry-after": "1"}) from None
        tag = etag(params.query, params.operation_name, params.variables, version, info.media_type)
        headers = {}
        if request.method == "GET":
            visibility = "private" if request.headers.get("authorization") else "public"
            headers = {
                "etag": tag,
                "cache-control": f"{visibility}, max-age={self.settings.http_cache_max_age}",
            }
            if matches(request.headers.get("if-none-match"), tag):
                return Outcome(None, 304, headers)
        key = self.cache.key("resp", tag.removeprefix("W/").strip('"'))
        (cached,) = await self.cache.get_many([key])
        if cached is not None:
            return Outcome(None, 200, headers, raw=cached)
        outcome = await self._execute_uncached(request, params, info)
        outcome.headers.update(headers)
        if outcome.status == 200 and outcome.body is not None and "errors" not in outcome.body:
            outcome.raw = orjson.dumps(outcome.body)
        if outcome.status == 200 and outcome.raw is not None:
            await self.cache.set_many({key: outcome.raw}, RESPONSE_TTL)
        return outcome

    async def _verify(
        self, request: Request, params: Params, info: RequestInfo, result: Any
    ) -> None:
        await _compare_paths(result, await self._reference(request, params, info))

    async def _reference(self, request: Request, params: Params, info: RequestInfo) -> Any:
        """The request's result on the reference schema (no fast path, no plan)."""
        assert self.reference_schema is not None
        context = await self.context_factory(request, info.principal)
        return await self.reference_schema.execute(
            params.query,
            variable_values=params.variables,
            context_value=context,
            operation_name=params.operation_name,
        )

    async def _execute_uncached(
        self, request: Request, params: Params, info: RequestInfo
    ) -> Outcome:
        if self.settings.compiled_plans:
            planned = await self._run_plan(request, params, info)
            if planned is not None:
                return planned
        context = await self.context_factory(request, info.principal)
        allowed = (
            {StrawberryOperation.QUERY}
            if request.method == "GET"
            else {StrawberryOperation.QUERY, StrawberryOperation.MUTATION}
        )
        result = await self.schema.execute(
            params.query,
            variable_values=params.variables,
            context_value=context,
            operation_name=params.operation_name,
            allowed_operation_types=allowed,
        )
        if (
            self.reference_schema is not None
            and info.operation is not None
            and info.operation.operation == OperationType.QUERY
        ):
            # Queries only: running a mutation a second time would repeat its side effects
            # (a second job queued, a different id: a false difference).
            await self._verify(request, params, info, result)
        errors = [format_error(e, info.request_id) for e in result.errors or []]
        request_error = isinstance(result, PreExecutionError) or (
            result.data is None
            and bool(result.errors)
            and all(not e.path for e in result.errors or [])
        )
        if request_error:
            for e in errors:
                e.setdefault("extensions", {})["code"] = e.get("extensions", {}).get(
                    "code", "GRAPHQL_VALIDATION_FAILED"
                )
            status = 400 if info.media_type == GRAPHQL_RESPONSE else 200
            return Outcome({"errors": errors}, status)
        body: dict[str, Any] = {"data": result.data}
        if errors:
            body["errors"] = errors
        body["extensions"] = {"cost": info.cost}
        return Outcome(body)

    def _plan(self, info: RequestInfo) -> Plan | None:
        """The operation's compiled plan, made on its first request (None: no plan fits)."""
        entry, operation = info.entry, info.operation
        if entry is None or operation is None or operation.operation != OperationType.QUERY:
            return None
        name = operation.name.value if operation.name else None
        if name in entry.plans:
            plan: Plan | None = entry.plans[name]
            return plan
        plan = compile_plan(self.schema._schema, entry.document, operation)
        entry.plans[name] = plan
        return plan

    async def _run_plan(
        self, request: Request, params: Params, info: RequestInfo
    ) -> Outcome | None:
        """The answer of the operation's compiled plan; None where the resolvers must answer
        (no plan, values outside it, a symbol it does not cover, or a failed statement,
        whose error the resolvers then report in their own way)."""
        plan = self._plan(info)
        if plan is None:
            return None
        try:
            sql, args = plan.statement(params.variables, self.settings)
        except Decline:
            return None
        if plan.declined(args):
            return None
        engine = getattr(request.state, "read_engine", None) or self.engine
        assert engine is not None
        try:
            row = await fetch_row(engine, sql, *args)
        except Exception as exc:
            log.debug("compiled plan failed, answering through the resolvers: %r", exc)
            return None
        data, ok = row
        if not ok:
            plan.note_declined(args)
            return None
        if self.reference_schema is not None:
            await self._verify_plan(request, params, info, data)
        body = b'{"data":' + data.encode() + b',"extensions":{"cost":%d}}' % info.cost
        return Outcome(None, raw=body, compiled=True)

    async def _verify_plan(
        self, request: Request, params: Params, info: RequestInfo, data: str
    ) -> None:
        """Fail loudly when the plan's data differs from the reference path's (parsed JSON:
        floats compare equal, number formatting does not count)."""
        reference = await self._reference(request, params, info)
        planned = orjson.loads(data)
        if reference.errors or planned != reference.data:
            raise AssertionError(
                "compiled plan and reference path differ:\n"
                f"plan:      {data[:2000]!r}\n"
                f"reference: {orjson.dumps(reference.data)[:2000]!r} "
                f"errors: {reference.errors!r}"
            )


#: The request header naming the data version a read must see (also `extensions.minVersion`).
MIN_VERSION_HEADER = "min-version"


def min_version(request: Request, params: Params) -> int | None:
    """The data version this read must see: the `Min-Version` header or `minVersion` in the
    request's `extensions` (a `version` of a live update or ingest event); None: any."""
    raw: object = request.headers.get(MIN_VERSION_HEADER)
    if raw is None and params.extensions:
        raw = params.extensions.get("minVersion")
    if raw is None:
        return None
    value: int | None = None
    if isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)  # live messages carry versions as Float
    if value is None or not 0 <= value < 2**63:
        raise RequestError(
            400,
            f"minVersion must be a non-negative integer (a data version), got {raw!r}",
            "BAD_USER_INPUT",
        )
    return value


#: Root query fields a key with only the `ingest` scope may read when reads need a key.
INGEST_READABLE = frozenset({"ingestJobs", "__typename"})
#: Root fields whose answers depend on who asks or change without a data version bump.
UNCACHEABLE = frozenset({"ingestJobs"})


def _root_fields(document: DocumentNode | None, operation: OperationDefinitionNode) -> set[str]:
    """Names of the root fields an operation selects (through fragments too)."""
    fragments = {
        d.name.value: d
        for d in (document.definitions if document else ())
        if isinstance(d, FragmentDefinitionNode)
    }
    names: set[str] = set()
    stack = [operation.selection_set]
    seen: set[str] = set()
    while stack:
        for sel in stack.pop().selections:
            if isinstance(sel, FieldNode):
                names.add(sel.name.value)
            elif isinstance(sel, InlineFragmentNode):
                stack.append(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                seen.add(sel.name.value)
                if sel.name.value in fragments:
                    stack.append(fragments[sel.name.value].selection_set)
    return names


async def _compare_paths(first: Any, second: Any) -> None:
    """Fail loudly when the two execution paths disagree in data or errors."""

    def shape(result: Any) -> bytes:
        errors = [dict(e.formatted) for e in result.errors or []]
        return orjson.dumps({"data": result.data, "errors": errors})

    if shape(first) != shape(second):
        raise AssertionError(
            "fast path and normal path differ:\n"
            f"fast:   {shape(first)[:2000]!r}\nnormal: {shape(second)[:2000]!r}"
        )


def _error(message: str, code: str, extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    ext = {"code": code, **(extensions or {})}
    locations = ext.pop("locations", None)
    error: dict[str, Any] = {"message": message}
    if locations:
        error["locations"] = locations
    error["extensions"] = ext
    return error


def _rate_headers(decision: Decision) -> dict[str, str]:
    return {
        "ratelimit-limit": str(decision.limit),
        "ratelimit-remaining": str(decision.remaining),
        "ratelimit-reset": str(decision.reset_seconds),
    }


__all__ = ["ApiError", "Forbidden", "GraphQLEndpoint", "GraphQLError", "RequestError"]
