"""The WebSocket side of live updates: graphql-transport-ws with our keys and limits.

- `connection_init` carries the API key (`{"Authorization": "Bearer <key>"}`, any case of
  the name; the handshake's Authorization header also works). A bad key, or no key when
  reads need one, closes the socket with 4403 and a reason.
- Only subscriptions run over the socket: queries and mutations go over HTTP, where rate
  limits and ingest scopes are enforced. A subscription meets the HTTP endpoint's document
  limits (tokens, introspection, cost, depth, aliases: graphql_api.limits) before it starts,
  refused with the same code. Subscriptions are not rate limited: they are bounded by
  LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION and LIVE_MAX_CONNECTIONS_PER_IP instead.
- Origins are checked by Strawberry before the handshake is accepted (`allowed_origins`).
- One client address holds at most LIVE_MAX_CONNECTIONS_PER_IP sockets at once; the next
  are refused at the handshake with HTTP 429 (`ConnectionLimitMiddleware`).
- A key revoked while its socket is open closes the socket with 4403 within the revocation
  delay (graphql_api.live.keywatch).
- Every error reaches the client with the `extensions.code` the HTTP endpoint gives for the
  same input (`LiveTransportWSHandler`).
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from contextlib import aclosing
from typing import Any, cast

import orjson
from graphql import GraphQLError, GraphQLFormattedError, GraphQLSyntaxError, OperationType
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry import Schema
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    SubscribeMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType as StrawberryOperationType

from core.errors import Unauthenticated
from core.settings import Settings
from graphql_api.auth import Principal, Scope, anonymous
from graphql_api.context import Context
from graphql_api.error_format import format_error
from graphql_api.limits import LimitError, Limits
from graphql_api.live.hub import hub_of

#: Close code when the key lookup itself failed (the database is unreachable).
TRY_AGAIN_LATER = 1013
_PLURAL = {OperationType.QUERY: "queries", OperationType.MUTATION: "mutations"}


class Rejected(Exception):
    """Refuse a connection at `connection_init` with this close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def allowed_origins(settings: Settings) -> list[str]:
    """The configured WebSocket origins (besides same-origin, always allowed)."""
    return [o.strip() for o in settings.live_allowed_origins.split(",") if o.strip()]


async def authenticate(context: Context) -> None:
    """Resolve the key of `connection_init` into the context's principal, or reject."""
    websocket = context.request
    assert isinstance(websocket, WebSocket)
    params = context.connection_params if isinstance(context.connection_params, dict) else {}
    authorization = next(
        (v for k, v in params.items() if k.lower() == "authorization" and isinstance(v, str)),
        websocket.headers.get("authorization"),
    )
    client = websocket.client.host if websocket.client else "unknown"
    try:
        principal = await hub_of(websocket).keys.principal(authorization, client)
    except Unauthenticated as exc:
        raise Rejected(4403, f"Forbidden: {exc.message}") from None
    except Exception:
        raise Rejected(TRY_AGAIN_LATER, "API key lookup failed; try again later") from None
    settings = context.settings
    if settings.require_read_key and not (principal.has(Scope.READ) or principal.has(Scope.INGEST)):
        raise Rejected(4403, "Forbidden: reads need an API key with the `read` scope")
    context.extras["principal"] = principal


class LiveTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler with our rejections, subscriptions only, key
    revocation, and errors formatted as over HTTP.

    A request error (malformed subscribe payload, syntax, validation, variables, unknown
    operation) ends the operation with an `error` message; an error raised while the
    subscription runs (bad arguments, unknown tickers, the database down) is sent as a `next`
    carrying `errors`, then `complete` (graphql-transport-ws: `error` is for errors before
    execution). Both go through graphql_api.error_format as over HTTP, so the codes match,
    and nothing escapes an operation's task: client mistakes log no traceback, unexpected
    failures are logged once, masked, with the request id the client sees.
    """

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Authenticate (through the view's on_ws_connect); close with our code on refusal.

        A connection authenticated with a key is watched for the key's revocation.
        """
        try:
            await super().handle_connection_init(message)
        except Rejected as exc:
            await self.websocket.close(code=exc.code, reason=exc.reason)
            return
        principal = self.context.extras.get("principal")
        if (
            self.connection_acknowledged
            and isinstance(principal, Principal)
            and principal.key_id is not None
        ):
            watch = hub_of(self.context.request).key_watch
            self.context.extras["key_watch"] = watch.add(principal.key_id, self.close_revoked)

    async def close_revoked(self, code: int, reason: str) -> None:
        """Stop every operation (no more data for a revoked key), then close the socket."""
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        await self.websocket.close(code=code, reason=reason)

    async def shutdown(self) -> None:
        """Stop watching the connection's key, then end its operations as Strawberry does."""
        watched = self.context.extras.pop("key_watch", None)
        if watched is not None:
            hub_of(self.context.request).key_watch.discard(watched)
        await super().shutdown()

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Refuse operations past the limit, malformed payloads, unknown operations, queries
        and mutations here, each with a code (Strawberry's own refusals carry none)."""
        op_id = message.get("id")
        if self.connection_acknowledged and isinstance(op_id, str) and op_id not in self.operations:
            principal = self.context.extras.get("principal")
            if not isinstance(principal, Principal):
                principal = anonymous("unknown")
            refusal = _refusal(message, self.context.extras["limits"], principal)
            limit = self.max_subscriptions_per_connection
            if limit is not None and len(self.operations) >= limit:
                refusal = GraphQLError(
                    f"Subscription limit reached: at most {limit} per connection "
                    "(LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION); complete one first",
                    extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
                ).formatted
            if refusal is not None:
                error: ErrorMessage = {"id": op_id, "type": "error", "payload": [refusal]}
                await self.send_message(error)
                return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """barUpdates subscriptions the fast path can serve go there, the rest to Strawberry."""
        from graphql_api.live import fast

        assert isinstance(self.schema, Schema)
        # In masked errors and their log line, as the HTTP endpoint's x-request-id.
        request_id = uuid.uuid4().hex
        try:
            plan = fast.plan(
                self.schema,
                operation.query,
                operation.variables,
                operation.operation_name,
                self.context.settings.max_tokens,
            )
        except Exception as exc:
            await self._end_with_error(operation, [_coerce(exc)], request_id)
            return
        try:
            if plan is None:
                await self._execute(operation, request_id)
                return
            try:
                await fast.run(self.context, operation.id, plan)
            except fast.Gone:
                return  # the handler cleans up as the disconnect reaches it
            except Exception as exc:
                # As Strawberry reports an exception raised by a subscription's stream.
                payload = {"data": None, "errors": [format_error(_coerce(exc), request_id)]}
                await self._send(operation, "next", payload)
            await self._send(operation, "complete")
        except _Closed:
            return  # the connection is gone: nothing more can reach the client
        except Exception as exc:
            # Raised outside execution (an extension's parse or validation hook): a request
            # error, as the HTTP endpoint reports it.
            await self._end_with_error(operation, [_coerce(exc)], request_id)

    async def _execute(self, operation: Operation[Context, None], request_id: str) -> None:
        """Run the operation through Strawberry, formatting its errors as over HTTP."""
        assert isinstance(self.schema, Schema)
        results = await self.schema.stream(
            operation.query,
            variable_values=operation.variables,
            context_value=self.context,
            root_value=self.root_value,
            operation_name=operation.operation_name,
            allowed_operation_types=(StrawberryOperationType.SUBSCRIPTION,),
        )
        first = True
        async with aclosing(results):
            async for result in results:
                if first and isinstance(result, PreExecutionError):
                    await self._end_with_error(operation, list(result.errors or ()), request_id)
                    return
                if not isinstance(result, ExecutionResult):  # incremental delivery frames
                    error = GraphQLError(
                        "incremental delivery (@defer, @stream) is not supported over "
                        "graphql-transport-ws",
                        extensions={"code": "BAD_REQUEST"},
                    )
                    await self._end_with_error(operation, [error], request_id)
                    return
                first = False
                payload: dict[str, Any] = {"data": result.data}
                if result.errors:
                    payload["errors"] = [format_error(e, request_id) for e in result.errors]
                if result.extensions:
                    payload["extensions"] = result.extensions
                await self._send(operation, "next", payload)
        await self._send(operation, "complete")

    async def _end_with_error(
        self, operation: Operation[Context, None], errors: list[GraphQLError], request_id: str
    ) -> None:
        """End the operation with an `error` message carrying the HTTP endpoint's codes."""
        with contextlib.suppress(_Closed):
            payload = [request_error(e, request_id) for e in errors]
            await self._send(operation, "error", payload)

    async def _send(
        self, operation: Operation[Context, None], kind: str, payload: Any = None
    ) -> None:
        """Send one message of the operation; raises _Closed when the connection is gone."""
        message: Any = {"id": operation.id, "type": kind}
        if payload is not None:
            message["payload"] = payload
        try:
            await operation.send_operation_message(message)
        except (WebSocketDisconnect, WebSocketDisconnected, RuntimeError) as exc:
            # Starlette raises RuntimeError for a send after the socket was closed.
            raise _Closed from exc


class _Closed(Exception):
    """The connection closed under an operation."""


def _coerce(exc: Exception) -> GraphQLError:
    """An exception as a GraphQL error, its original kept for format_error to classify."""
    if isinstance(exc, GraphQLError):
        return exc
    return GraphQLError(str(exc), original_error=exc)


def request_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    """An error of a request that never ran, with the HTTP endpoint's code for it.

    graphql_api.http answers a document that does not parse with GRAPHQL_PARSE_FAILED and
    other errors before execution with GRAPHQL_VALIDATION_FAILED, unless they carry a code.
    """
    formatted = format_error(error, request_id)
    extensions = formatted.setdefault("extensions", {})
    if isinstance(error, GraphQLSyntaxError):
        extensions["code"] = "GRAPHQL_PARSE_FAILED"
    extensions.setdefault("code", "GRAPHQL_VALIDATION_FAILED")
    return formatted


def _refusal(
    message: SubscribeMessage, limits: Limits, principal: Principal
) -> GraphQLFormattedError | None:
    """Why a subscribe message cannot run, in the HTTP endpoint's words; None if it can.

    A payload of the wrong shape, an operation name that selects nothing, queries and
    mutations (they belong on HTTP, with its rate limits and ingest scopes), and documents
    over a limit (the endpoint's own `Limits`) are refused here. A document that does not
    parse is left to Strawberry, which reports it located; `request_error` formats it.
    """
    # The HTTP endpoint's own checks, so that the messages and codes are its own.
    from graphql_api.http import RequestError, _params_from, operation_of

    try:
        params = _params_from(message.get("payload"))
        if not params.query:
            raise RequestError(400, "no GraphQL query in the request", "BAD_REQUEST")
        try:
            entry = limits.parse(params.query)
        except GraphQLSyntaxError:
            return None
        operation = operation_of(entry.document, params.operation_name)
        if operation.operation != OperationType.SUBSCRIPTION:
            error = GraphQLError(
                f"only subscriptions run over WebSocket; send {_PLURAL[operation.operation]} "
                "over HTTP",
                extensions={"code": "BAD_REQUEST"},
            )
            return error.formatted
        limits.check(entry, operation, params.variables, principal)
    except RequestError as exc:
        error = GraphQLError(exc.message, extensions={**exc.extensions, "code": exc.code})
        return error.formatted
    except LimitError as exc:
        return cast(GraphQLFormattedError, exc.formatted)
    return None


class ConnectionLimitMiddleware:
    """At most `limit` WebSockets open at once per client address (0: no limit).

    One more is refused at the handshake, before anything of it is built (no Strawberry
    handler, no task): HTTP 429 with a GraphQL-style error body (the ASGI WebSocket denial
    response), or 403 on a server without that extension. The address is the ASGI client's:
    behind a proxy, uvicorn's --proxy-headers make it the real client's.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.open: dict[str, int] = {}  # open sockets per address (no entry at zero)
        self.refused = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = str(client[0]) if client else "unknown"
        count = self.open.get(host, 0)
        if count >= self.limit:
            self.refused += 1
            await self._refuse(scope, receive, send)
            return
        self.open[host] = count + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.open[host] - 1
            if left:
                self.open[host] = left
            else:
                del self.open[host]

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})  # uvicorn answers 403
            return
        message = (
            f"too many WebSocket connections from this address (at most {self.limit}, "
            "LIVE_MAX_CONNECTIONS_PER_IP); close some first"
        )
        body = orjson.dumps(
            {"errors": [{"message": message, "extensions": {"code": "TOO_MANY_CONNECTIONS"}}]}
        )
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "websocket.http.response.start", "status": 429, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})


class SocketBufferMiddleware:
    """Caps the kernel send buffer of WebSocket connections (best effort, uvicorn only).

    Linux autotunes a socket's send buffer up to 4 MB: a client that stops reading would hold
    that much kernel memory, and its sends would block (making it a slow consumer) only once
    it is full. A fixed buffer bounds both. Reached through the server's `send` (uvicorn's
    protocol object and its transport); anything else is left alone.
    """

    def __init__(self, app: Any, send_buffer: int) -> None:
        self.app = app
        self.send_buffer = send_buffer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and self.send_buffer > 0:
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        await self.app(scope, receive, send)


__all__ = [
    "ConnectionLimitMiddleware",
    "LiveTransportWSHandler",
    "Rejected",
    "SocketBufferMiddleware",
    "allowed_origins",
    "authenticate",
    "request_error",
]
