"""Helpers of the live-update tests: API processes under uvicorn, a graphql-transport-ws
client, and a writer of bars (the ingest path the workers use)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from workers.upsert import upsert_bars

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = Subprotocol("graphql-transport-ws")

BAR_FIELDS = "ticker interval version replayed bar { time open high low close volume closed }"
BARS = f"""
subscription Bars($tickers: [String!]!, $interval: Interval!, $since: DateTime) {{
  barUpdates(tickers: $tickers, interval: $interval, since: $since) {{ {BAR_FIELDS} }}
}}
"""
EVENTS = """
subscription { ingestEvents { version ticker interval firstBarTime lastBarTime rows source } }
"""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiProcess:
    """`uvicorn graphql_api.app:create_app` in a subprocess on a free port."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/graphql"
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "graphql_api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=log_dir,  # away from any .env in the repository
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until /healthz answers (or fail with the process's log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API process exited:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"API process not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """What the process wrote so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL)."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class GqlWs:
    """A graphql-transport-ws client over one WebSocket connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        payload: dict[str, Any] | None = None,
        *,
        read: bool = True,
        **kwargs: Any,
    ) -> GqlWs:
        """Connect, send connection_init, wait for the ack; `read` starts a reader task."""
        ws = await connect(url, subprotocols=[PROTOCOL], **kwargs)
        client = cls(ws)
        await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        if read:
            client._reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    self.queue(message["id"]).put_nowait(message)

    def queue(self, op_id: str) -> asyncio.Queue[dict[str, Any]]:
        """Messages received for one operation."""
        return self.messages.setdefault(op_id, asyncio.Queue())

    async def subscribe(
        self, op_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        """Start an operation."""
        self.queue(op_id)
        payload: dict[str, Any] = {"query": query, "variables": variables or {}}
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))

    async def complete(self, op_id: str) -> None:
        """Stop an operation."""
        await self.ws.send(json.dumps({"id": op_id, "type": "complete"}))

    async def next(self, op_id: str, wait: float = 10.0) -> dict[str, Any]:
        """The next message of an operation (next, error or complete), waiting `wait` s."""
        return await asyncio.wait_for(self.queue(op_id).get(), wait)

    async def updates(self, op_id: str, count: int, wait: float = 10.0) -> list[dict[str, Any]]:
        """The next `count` barUpdates payloads (failing on an error message)."""
        out = []
        for _ in range(count):
            message = await self.next(op_id, wait)
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            out.append(message["payload"]["data"]["barUpdates"])
        return out

    async def quiet(self, op_id: str, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Whatever arrives for an operation within `seconds` (to check nothing more does)."""
        await asyncio.sleep(seconds)
        q = self.queue(op_id)
        return [q.get_nowait() for _ in range(q.qsize())]

    async def close(self) -> None:
        """Close the connection."""
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


def minute_bar(
    symbol_id: int, ts: datetime, price: float, volume: float = 100.0
) -> tuple[object, ...]:
    """One M1 bar as a BAR_COLUMNS record."""
    return (symbol_id, "M1", ts, price, price + 1.0, price - 1.0, price + 0.5, volume)


async def write_bars(dsn: str, records: list[tuple[object, ...]], source: str = "test") -> int:
    """Write one batch in one transaction, as a worker does; returns its new version."""
    conn = await asyncpg.connect(dsn)
    try:
        changes = await upsert_bars(conn, records, source=source)
    finally:
        await conn.close()
    return max(c.id for c in changes)


def minutes(start: datetime, count: int) -> Iterator[datetime]:
    """`count` consecutive minute starts."""
    for i in range(count):
        yield start + timedelta(minutes=i)


def iso(ts: datetime) -> str:
    """A time as the API prints it."""
    return ts.isoformat()


async def eventually(condition: Any, wait: float = 10.0) -> bool:
    """Poll an async `condition` until it is true or `wait` seconds pass."""
    deadline = time.monotonic() + wait
    while True:
        if await condition():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def thread_server(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread of this process (its state stays inspectable)."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class StalledClient:
    """A graphql-transport-ws client that reads nothing until told: a consumer gone slow.

    A raw socket with a small receive buffer (and no library reading ahead into memory),
    so the server's sends block soon after the client stops reading.
    """

    def __init__(self, port: int) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.protocol = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{port}/graphql"), subprotocols=[PROTOCOL]
        )
        self.frames = 0

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        for data in self.protocol.data_to_send():
            if data:
                await loop.sock_sendall(self.sock, data)

    async def _read_some(self) -> bool:
        """Feed what arrived to the protocol; False at end of stream."""
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 65536), 10)
        if not data:
            self.protocol.receive_eof()
            return False
        self.protocol.receive_data(data)
        return True

    async def start(self, query: str, variables: dict[str, Any]) -> None:
        """Handshake, connection_init, wait for the ack, then subscribe."""
        from websockets.frames import Frame

        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        acked = False
        while not acked:
            await self._read_some()
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and b"connection_ack" in event.data:
                    acked = True
            if self.protocol.handshake_exc is not None:
                raise self.protocol.handshake_exc
            if self.protocol.state.name == "OPEN" and not acked:
                init = {"type": "connection_init", "payload": {}}
                self.protocol.send_text(json.dumps(init).encode())
                await self._flush()
        message = {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": query, "variables": variables},
        }
        self.protocol.send_text(json.dumps(message).encode())
        await self._flush()

    async def drain(self) -> tuple[int, str] | None:
        """Read everything until the server closes; its close (code, reason), if it sent one."""
        from websockets.frames import Frame, Opcode

        while True:
            alive = await self._read_some()
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                    self.frames += 1
            close = self.protocol.close_rcvd
            if close is not None:
                self.sock.close()
                return close.code, close.reason
            if not alive:
                self.sock.close()
                return None


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    """File descriptors a process holds open (sockets included)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


#: A WebSocket upgrade request for /graphql (the key is RFC 6455's example: any will do).
UPGRADE = (
    b"GET /graphql HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: graphql-transport-ws\r\n"
    b"\r\n"
)


async def raw_upgrade(
    port: int, wait: float = 30.0
) -> tuple[int, bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP connection and send a WebSocket upgrade: (status, body, reader, writer).

    The cheapest way to open many idle WebSockets: no client library state per socket. The
    body is read only for a refusal (it comes with a content-length); after a 101 the
    socket is left open and silent.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), wait)
    try:
        writer.write(UPGRADE)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
        status = int(head.split(b" ", 2)[1])
        body = b""
        if status != 101:
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                ),
                0,
            )
            body = await asyncio.wait_for(reader.readexactly(length), wait) if length else b""
    except BaseException:
        writer.close()
        raise
    return status, body, reader, writer
