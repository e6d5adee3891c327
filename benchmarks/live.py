"""Live updates benchmark: latency from ingest commit to client receipt, and events/s sustained.

    .venv/bin/python benchmarks/live.py            # full run (about two minutes)
    .venv/bin/python benchmarks/live.py --quick    # smoke run (fewer events, shorter steps)

What it does:

1. Creates a database of its own on the server at `--database-url` (dropped at the end),
   migrates it, and stores `--symbols` symbols (LIVE0, LIVE1, …) with a session of
   one-minute bars each.
2. Starts `--api-processes` API processes as in production (`uvicorn graphql_api.app:create_app
   --factory`, REDIS_URL set: the Redis fan-out, one of them bridging PostgreSQL's
   notifications), waits for /readyz.
3. Opens `--subscribers` WebSocket clients (graphql-transport-ws, permessage-deflate as
   browsers negotiate it), spread round-robin over the processes, each subscribed to
   `barUpdates(tickers: [all the symbols], interval: M1)`; a warm-up commit must reach all.
4. A writer commits through `workers.upsert.upsert_bars` (the path of the ingest workers) one
   new bar of every symbol per transaction: one change event per symbol. A bar's commit time
   is taken when upsert_bars returns (COMMIT acknowledged); each client notes when the bar
   arrives (decoded). Latency = arrival - commit, over every (bar, client) pair.
5. Latency: `--rate` events/s for `--latency-seconds`: p50, p95, p99, max.
6. Events/s sustained: steps of increasing offered rate (`--steps`, events/s), `--step-seconds`
   each. A step keeps up when every client got every bar within 3 s of the step's last commit
   and the p95 latency stayed under 1 s; the figure is the highest written rate that kept up.
   Each step also shows its delivered rate (events / time from the first commit to the last
   client's last bar).

Writer, clients, API processes, PostgreSQL and Redis share this machine and its cores: the
clients' CPU time (100 sockets, inflating and decoding JSON) competes with the servers'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
import psycopg
from sqlalchemy.engine import make_url
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import db  # noqa: E402
from core.settings import load_settings  # noqa: E402
from workers.symbols import SymbolInfo, upsert_symbols  # noqa: E402
from workers.upsert import upsert_bars  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
FIRST_BAR = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
FIELDS = "ticker version replayed bar { time open high low close volume closed }"
QUERY = f"subscription($t: [String!]!) {{ barUpdates(tickers: $t, interval: M1) {{ {FIELDS} }} }}"
#: The same selection behind an inline fragment: executed by Strawberry for every message
#: instead of rendered once per bar (graphql_api.live.fast); `--strawberry` measures it.
QUERY_EXECUTED = QUERY.replace(f"{{ {FIELDS} }}", f"{{ ... on BarUpdate {{ {FIELDS} }} }}")
#: Production settings, except that no request limit gets in the way of one busy client.
SERVICE_ENV = {"RATE_LIMIT_COST_PER_MINUTE": "0", "LIVE_QUEUE_SIZE": "1024"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    """One API process under uvicorn."""

    def __init__(self, env: dict[str, str], log_dir: Path, n: int) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"api-{n}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "graphql_api.app:create_app",
                "--factory",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=log_dir,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ws_url = f"ws://127.0.0.1:{self.port}/graphql"

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Block until /readyz says ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API process exited; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"API process not ready; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)
        self._log.close()


@dataclass
class Client:
    """One subscriber: the arrival time of each bar (by bar time), as decoded."""

    ws: ClientConnection
    arrivals: dict[str, float] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        """Note the arrival of every bar until the connection ends."""
        async for raw in self.ws:
            now = time.monotonic()  # CLOCK_MONOTONIC: the writer process reads the same clock
            message = orjson.loads(raw)
            if message.get("type") == "next":
                update = message["payload"]["data"]["barUpdates"]
                self.arrivals[f"{update['ticker']} {update['bar']['time']}"] = now
            elif message.get("type") in ("error", "complete"):
                raise RuntimeError(f"subscription ended: {message}")


async def open_client(url: str, tickers: list[str], query: str) -> Client:
    """Connect, initialise and subscribe."""
    ws = await connect(url, subprotocols=[Subprotocol("graphql-transport-ws")], max_queue=None)
    await ws.send(orjson.dumps({"type": "connection_init", "payload": {}}).decode())
    ack = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
    assert ack["type"] == "connection_ack", ack
    payload = {"query": query, "variables": {"t": tickers}}
    await ws.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": payload}).decode())
    client = Client(ws)
    client.task = asyncio.create_task(client.read())
    return client


class Writer:
    """Commits one new bar of every symbol per transaction, as an ingest worker writes a
    batch: each commit is one change event per symbol."""

    def __init__(self, conn: asyncpg.Connection, symbols: dict[str, int]) -> None:
        self.conn = conn
        self.symbols = symbols
        self.next_ts = FIRST_BAR
        self.commits: dict[str, float] = {}  # "<ticker> <bar time>" -> commit time
        self.written = 0

    async def write(self) -> list[str]:
        """One transaction; the keys of its bars."""
        ts, self.next_ts = self.next_ts, self.next_ts + timedelta(minutes=1)
        price = 100.0 + (self.written % 50) / 10
        records: list[tuple[object, ...]] = [
            (sid, "M1", ts, price, price + 0.5, price - 0.5, price + 0.1, 10.0)
            for sid in self.symbols.values()
        ]
        await upsert_bars(self.conn, records, source="bench")
        now = time.monotonic()
        keys = [f"{ticker} {ts.isoformat()}" for ticker in self.symbols]
        for key in keys:
            self.commits[key] = now
        self.written += 1
        return keys

    async def run(self, events_per_second: float, seconds: float) -> list[str]:
        """Commit at `events_per_second` change events/s (as far as commits allow)."""
        rate = events_per_second / len(self.symbols)
        keys: list[str] = []
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            keys += await self.write()
            n += 1
        return keys


def writer_process(dsn: str, symbols: dict[str, int], pipe: Connection) -> None:
    """The writer in a process of its own: the clients' CPU time must not delay its commits."""

    async def serve() -> None:
        conn = await asyncpg.connect(dsn)
        writer = Writer(conn, symbols)
        loop = asyncio.get_running_loop()
        try:
            while True:
                command = await loop.run_in_executor(None, pipe.recv)
                if command[0] == "stop":
                    return
                keys = (
                    await writer.write()
                    if command[0] == "write"
                    else await writer.run(*command[1:])
                )
                pipe.send({k: writer.commits[k] for k in keys})
        finally:
            await conn.close()

    asyncio.run(serve())


class RemoteWriter:
    """Drives the writer process; `commits` maps each bar key to its commit time."""

    def __init__(self, dsn: str, symbols: dict[str, int]) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=writer_process, args=(dsn, symbols, child))
        self.process.start()
        self.commits: dict[str, float] = {}

    async def _call(self, *command: Any) -> list[str]:
        self.pipe.send(command)
        done: dict[str, float] = await asyncio.get_running_loop().run_in_executor(
            None, self.pipe.recv
        )
        self.commits.update(done)
        return sorted(done, key=done.__getitem__)

    async def write(self) -> list[str]:
        """One commit."""
        return await self._call("write")

    async def run(self, events_per_second: float, seconds: float) -> list[str]:
        """Commits at a rate for a while."""
        return await self._call("run", events_per_second, seconds)

    def stop(self) -> None:
        """End the process."""
        with contextlib.suppress(Exception):
            self.pipe.send(("stop",))
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()


async def wait_delivered(clients: list[Client], keys: list[str], within: float) -> bool:
    """Whether every client got every bar of `keys` within `within` seconds."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        if all(all(k in c.arrivals for k in keys) for c in clients):
            return True
        await asyncio.sleep(0.02)
    return False


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of processes (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@dataclass
class Step:
    """What one offered rate gave."""

    offered: float
    server_cpu_ms_per_1k: float  # API processes' CPU per 1,000 messages delivered
    client_cpu_ms_per_1k: float  # this process's (the subscribers') CPU per 1,000 messages
    written: int
    achieved_write_rate: float
    delivered_rate: float
    complete: bool
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def kept_up(self) -> bool:
        """Every bar reached every client, p95 under a second."""
        return self.complete and self.p95_ms < 1000


def latencies(clients: list[Client], commits: dict[str, float], keys: list[str]) -> np.ndarray:
    """Arrival minus commit (ms) of every (bar, client) pair that arrived."""
    values = [(c.arrivals[k] - commits[k]) * 1000 for k in keys for c in clients if k in c.arrivals]
    return np.asarray(values, dtype=float)


async def measure(
    writer: RemoteWriter, clients: list[Client], rate: float, seconds: float, pids: list[int]
) -> tuple[Step, np.ndarray]:
    """Run one offered rate (change events/s) and summarise it."""
    commits = writer.commits
    server_cpu, client_cpu = cpu_seconds(pids), time.process_time()
    first = time.monotonic()
    keys = await writer.run(rate, seconds)
    wrote = time.monotonic() - first
    complete = await wait_delivered(clients, keys, 3.0)
    server_cpu, client_cpu = cpu_seconds(pids) - server_cpu, time.process_time() - client_cpu
    messages = sum(1 for c in clients for k in keys if k in c.arrivals) / 1000
    lat = latencies(clients, commits, keys)
    last = max(
        (c.arrivals[k] for c in clients for k in keys if k in c.arrivals), default=float("nan")
    )
    pct = np.percentile(lat, [50, 95, 99]) if len(lat) else [float("nan")] * 3
    step = Step(
        offered=rate,
        server_cpu_ms_per_1k=server_cpu * 1000 / messages,
        client_cpu_ms_per_1k=client_cpu * 1000 / messages,
        written=len(keys),
        achieved_write_rate=len(keys) / wrote,
        delivered_rate=len(keys) / (last - commits[keys[0]]),
        complete=complete,
        p50_ms=float(pct[0]),
        p95_ms=float(pct[1]),
        p99_ms=float(pct[2]),
        max_ms=float(lat.max()) if len(lat) else float("nan"),
    )
    return step, lat


async def prepare(dsn: str, symbols: int) -> None:
    """LIVE0, LIVE1, … with one session of bars before FIRST_BAR each."""
    conn = await asyncpg.connect(dsn)
    try:
        tickers = [f"LIVE{i}" for i in range(symbols)]
        ids = await upsert_symbols(conn, [SymbolInfo(t, "Live benchmark symbol") for t in tickers])
        start = FIRST_BAR - timedelta(minutes=390)
        records: list[tuple[object, ...]] = [
            (ids[t], "M1", start + timedelta(minutes=i), 100.0, 100.5, 99.5, 100.1, 10.0)
            for t in tickers
            for i in range(390)
        ]
        await upsert_bars(conn, records, source="bench")
    finally:
        await conn.close()


async def bench(args: argparse.Namespace, dsn: str, apis: list[Api]) -> dict[str, Any]:
    """Open the subscribers, warm up, then measure latency and the offered rates."""
    clients: list[Client] = []
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT ticker, id FROM symbols WHERE ticker LIKE 'LIVE%'")
    finally:
        await conn.close()
    symbols = {r["ticker"]: r["id"] for r in sorted(rows)}
    tickers = list(symbols)
    writer = RemoteWriter(dsn, symbols)
    try:
        gate = asyncio.Semaphore(20)

        async def opened(i: int) -> Client:
            async with gate:
                query = QUERY_EXECUTED if args.strawberry else QUERY
                return await open_client(apis[i % len(apis)].ws_url, tickers, query)

        clients = list(await asyncio.gather(*(opened(i) for i in range(args.subscribers))))
        await asyncio.sleep(1.0)
        warm = await writer.write()
        if not await wait_delivered(clients, warm, 60):
            raise RuntimeError("the warm-up bars did not reach every subscriber")
        for _ in range(3):  # a few more, unmeasured, so first-use costs are paid
            await writer.write()
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)

        pids = [api.proc.pid for api in apis]
        latency_step, lat = await measure(writer, clients, args.rate, args.latency_seconds, pids)
        steps = []
        for rate in args.steps:
            step, _ = await measure(writer, clients, rate, args.step_seconds, pids)
            steps.append(step)
            await asyncio.sleep(1.0)
        return {"latency": latency_step, "latencies": lat, "steps": steps}
    finally:
        for c in clients:
            if c.task is not None:
                c.task.cancel()
            with contextlib.suppress(Exception):
                await c.ws.close()
        writer.stop()


def report(args: argparse.Namespace, result: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    lat: Step = result["latency"]
    steps: list[Step] = result["steps"]
    # What was sustained is a rate actually written (the writer may fall short of the offer).
    kept = [s.achieved_write_rate for s in steps if s.kept_up]
    lines = [
        f"python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{args.api_processes} API processes, {args.subscribers} subscribers, each watching "
        f"{args.symbols} symbols at M1; one writer committing one bar of every symbol per "
        "transaction; "
        + ("every message executed by Strawberry" if args.strawberry else "fast path"),
        "",
        f"Latency, ingest commit to client receipt: {lat.written} bars at {args.rate:g} events/s "
        f"x {args.subscribers} subscribers ({len(result['latencies'])} samples):",
        "",
        "| p50 | p95 | p99 | max | all delivered |",
        "|---:|---:|---:|---:|:---:|",
        f"| {lat.p50_ms:.1f} ms | {lat.p95_ms:.1f} ms | {lat.p99_ms:.1f} ms | "
        f"{lat.max_ms:.1f} ms | {'yes' if lat.complete else 'no'} |",
        "",
        f"Offered rates, {args.step_seconds:g} s each (an event is one symbol's new bar; "
        f"messages/s = events/s x {args.subscribers}):",
        "",
        "| offered events/s | written events/s | delivered events/s | messages/s | p50 | p95 "
        "| all delivered | kept up | server CPU / 1k msgs | clients CPU / 1k msgs |",
        "|---:|---:|---:|---:|---:|---:|:---:|:---:|---:|---:|",
    ]
    for s in steps:
        lines.append(
            f"| {s.offered:g} | {s.achieved_write_rate:.0f} | {s.delivered_rate:.0f} | "
            f"{s.delivered_rate * args.subscribers:,.0f} | {s.p50_ms:.0f} ms | "
            f"{s.p95_ms:.0f} ms | {'yes' if s.complete else 'no'} | "
            f"{'yes' if s.kept_up else 'no'} | {s.server_cpu_ms_per_1k:.0f} ms | "
            f"{s.client_cpu_ms_per_1k:.0f} ms |"
        )
    lines += [
        "",
        f"Sustained: {max(kept):.0f} events/s" if kept else "Sustained: no step kept up",
    ]
    return "\n".join(lines)


def main() -> None:
    """Set up database and servers, run, print the tables, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_ADMIN_URL", DEFAULT_ADMIN_URL)
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--api-processes", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument(
        "--symbols", type=int, default=4, help="symbols written per commit, all watched"
    )
    parser.add_argument("--rate", type=float, default=8.0, help="events/s of the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--steps", type=float, nargs="+", default=[20, 40, 80, 120, 160, 240, 320])
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument(
        "--strawberry",
        action="store_true",
        help="subscribe with a document the fast path leaves to Strawberry's execution",
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    args = parser.parse_args()
    if args.quick:
        args.latency_seconds, args.step_seconds, args.steps = 5.0, 3.0, [20, 80]

    name = f"mg_bench_live_{os.getpid()}_{secrets.token_hex(3)}"
    admin = args.database_url
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    apis: list[Api] = []
    try:
        settings = load_settings(database_url=url, redis_url=args.redis_url)
        db.upgrade(settings)
        asyncio.run(prepare(settings.asyncpg_dsn, args.symbols))
        log_dir = Path(tempfile.mkdtemp(prefix="mg-bench-live-"))
        env = {"DATABASE_URL": url, "REDIS_URL": args.redis_url, **SERVICE_ENV}
        apis = [Api(env, log_dir, n) for n in range(args.api_processes)]
        for api in apis:
            api.wait_ready()
        result = asyncio.run(bench(args, settings.asyncpg_dsn, apis))
        print(report(args, result))
        print(f"\n(API logs in {log_dir})")
    finally:
        for api in apis:
            api.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
