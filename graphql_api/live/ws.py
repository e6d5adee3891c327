"""The WebSocket side of live updates: graphql-transport-ws with our keys and limits.

- `connection_init` carries the API key (`{"Authorization": "Bearer <key>"}`, any case of
  the name; the handshake's Authorization header also works). A bad key, or no key when
  reads need one, closes the socket with 4403 and a reason.
- Only subscriptions run over the socket: queries and mutations go over HTTP, where cost
  limits, rate limits and ingest scopes are enforced.
- Origins are checked by Strawberry before the handshake is accepted (`allowed_origins`).
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast
from starlette.websockets import WebSocket
from strawberry import Schema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    NextMessage,
    SubscribeMessage,
)

from graphql_api.auth import Scope
from graphql_api.context import Context
from graphql_api.errors import Unauthenticated
from graphql_api.live.hub import LiveHub
from graphql_api.settings import Settings

#: Close code when the key lookup itself failed (the database is unreachable).
TRY_AGAIN_LATER = 1013


class Rejected(Exception):
    """Refuse a connection at `connection_init` with this close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def allowed_origins(settings: Settings) -> list[str]:
    """The configured WebSocket origins (besides same-origin, always allowed)."""
    return [o.strip() for o in settings.live_allowed_origins.split(",") if o.strip()]


def hub_of(request: Any) -> LiveHub:
    """The live hub of the application serving `request` (set in the app lifespan)."""
    hub: LiveHub = request.app.state.live
    return hub


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
    """Strawberry's graphql-transport-ws handler, with our rejections and subscriptions only."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Authenticate (through the view's on_ws_connect); close with our code on refusal."""
        try:
            await super().handle_connection_init(message)
        except Rejected as exc:
            await self.websocket.close(code=exc.code, reason=exc.reason)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Refuse queries and mutations here: they belong on HTTP, with its limits."""
        kind = _operation_kind(message)
        if (
            self.connection_acknowledged
            and message.get("id") not in self.operations
            and kind is not None
            and kind != OperationType.SUBSCRIPTION
        ):
            error = GraphQLError(
                f"only subscriptions run over WebSocket; send {kind.value}s over HTTP",
                extensions={"code": "BAD_REQUEST"},
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """barUpdates subscriptions the fast path can serve go there, the rest to Strawberry."""
        from graphql_api.live import fast

        assert isinstance(self.schema, Schema)
        plan = fast.plan(
            self.schema, operation.query, operation.variables, operation.operation_name
        )
        if plan is None:
            await super().run_operation(operation)
            return
        try:
            try:
                error = await fast.run(self.context, operation.id, plan)
            except fast.Gone:
                return  # the handler cleans up as the disconnect reaches it
            if error is not None:  # as Strawberry reports an error raised by a resolver
                next_message: NextMessage = {
                    "id": operation.id,
                    "type": "next",
                    "payload": {"data": None, "errors": [error]},  # type: ignore[list-item]
                }
                await operation.send_operation_message(next_message)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise


def _operation_kind(message: SubscribeMessage) -> OperationType | None:
    """The type of the operation a subscribe message runs; None when it does not parse."""
    from graphql_api.http import parse_cached

    try:
        payload = message["payload"]
        document = parse_cached(payload["query"])
    except Exception:
        return None  # Strawberry reports malformed messages and syntax errors itself
    operation = get_operation_ast(document, payload.get("operationName"))
    return operation.operation if operation is not None else None


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
    "LiveTransportWSHandler",
    "Rejected",
    "SocketBufferMiddleware",
    "allowed_origins",
    "authenticate",
    "hub_of",
]
