"""Soak test: a steady mix of queries, subscriptions and ingest; is memory flat over time?

    .venv/bin/python benchmarks/soak.py                  # 2 min warm-up + 10 min steady
    .venv/bin/python benchmarks/soak.py --quick          # smoke run (15 s + 45 s)
    .venv/bin/python benchmarks/soak.py --tracemalloc /tmp/soak-snaps   # what grows, where

What it does:

1. Creates a database of its own on the PostgreSQL at `--database-url` (dropped at the end),
   then runs the service's own CLI on it: `migrate`, `demo-data`, and `keys create` for a few
   read keys. Redis is `--redis-url`, a database index that must be empty at the start (the
   service's cache keys are not per database, so a shared index would mix two services); it
   is flushed at the end.
2. Starts `market-graphql serve` (as `python -m graphql_api serve`, this tree's code) on a free
   port of 127.0.0.1 in a session of its own, with REDIS_URL set and production defaults
   otherwise (rate limit on, caches on, request logs on, to a file); waits for /readyz.
3. Drives, for `--warmup` then `--duration` seconds, all to 127.0.0.1:
   - HTTP at a steady `--rate` requests/s (open loop: a request is started on schedule, or shed
     when `--concurrency` are already in flight, never queued): symbol pages (with a search,
     after a cursor), bar pages, bars after a cursor of an earlier page, series, indicators,
     aliased `latestBar` watch lists (a bounded pool of distinct texts, taken round-robin so
     that every text is seen during the warm-up), `node`, hostile or malformed requests
     (expected 4xx or errors, never a 5xx), and persisted queries over GET (APQ: hash only,
     registered by a POST on PERSISTED_QUERY_NOT_FOUND). Requests are anonymous or carry one
     of the read keys, so the rate limiter and the key cache hold several buckets and entries.
   - WebSockets (graphql-transport-ws): `--long-subscribers` subscriptions to `barUpdates` open
     for the whole run, and short ones opened every `--churn-every` seconds (at most
     `--churn-max` at once), held 2-12 s, then ended in one of three ways: `complete` then a
     close, a close without `complete`, or the TCP connection dropped without a close frame.
     A few subscribe with bad input (an unknown interval, an empty ticker list).
   - Ingest every `--ingest-every` seconds: a small CSV file (new one-minute bars of the three
     intraday symbols, and a revision of each one's previous bar) through
     `workers.file_ingest.ingest_file`, the code `market-graphql ingest` runs, so live updates
     flow and cached data versions move on.
4. Samples every `--sample-every` seconds: the server's RSS (VmRSS of its process and any
   children), its open file descriptors and threads, PostgreSQL connections to the database
   (pg_stat_activity, this script's own excluded) and how many are not idle, Redis memory and
   keys, and per interval: requests, 5xx, other unexpected outcomes, 429s, p50 and p99
   latency, subscriptions open, live messages received.
5. Prints the samples, the least-squares slopes over the steady part (RSS in MB/min, file
   descriptors and connections per minute) and the verdict: PASS when the RSS slope is under
   `--max-slope` MB/min and no request got a 5xx or failed in transport.

`--tracemalloc DIR` runs the server with a debug hook (this file's `traced_serve`, enabled by
the SOAK_TRACEMALLOC_DIR variable): from the end of the warm-up it traces allocations
(`--frames`, 8; much slower: the load sheds requests) and dumps into DIR, every
`--snapshot-every` seconds, a snapshot, the counts of live objects by type, RSS and pymalloc's
allocated blocks. At the end the growth between the first snapshot and the last is printed by
allocation site and by type. `--frames 0` leaves tracing off (the server keeps its speed) and
compares the counts only.

Everything shares this machine with PostgreSQL, Redis and the server: the driver's CPU time
competes with theirs, which is why the rate is bounded rather than flat out. Ctrl-C or SIGTERM
stops the server and drops the database; only a SIGKILL leaves them (`mg_soak_<pid>_<hex>`,
a server in a session of its own). The server's log and the ingest files stay in a temporary
directory, named at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import gc
import hashlib
import itertools
import json
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
DRIVER_APP_NAME = "mg-soak-driver"

DAILY = ("AAPL", "MSFT", "IBM", "GOOG")
INTRADAY = ("ACME", "GLOBX", "INITECH")
ALL = (*DAILY, "FB", *INTRADAY)
INTRADAY_START = datetime(2024, 3, 4, tzinfo=UTC)  # workers/demo.py: INTRADAY_FIRST_DAY
#: New ingest bars start after the demo's ten intraday sessions.
INGEST_START = datetime(2024, 3, 18, 14, 30, tzinfo=UTC)

SYMBOLS = """
query Symbols($n: Int, $a: String, $s: String) {
  symbols(first: $n, after: $a, filter: {search: $s}) {
    edges { cursor node { id ticker name exchange lastBarTime } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}"""

BARS = """
query Bars($t: String!, $i: Interval!, $n: Int, $a: String) {
  symbol(ticker: $t) {
    bars(interval: $i, first: $n, after: $a) {
      edges { cursor node { time open high low close volume closed } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

SERIES = """
query Chart($t: String!, $i: Interval!, $f: DateTime, $u: DateTime, $n: Int!) {
  symbol(ticker: $t) {
    series(interval: $i, from: $f, to: $u, maxPoints: $n) {
      interval time open high low close volume
    }
  }
}"""

INDICATORS = """
query Indicators($t: String!, $i: Interval!, $f: DateTime, $u: DateTime) {
  symbol(ticker: $t) {
    indicators(interval: $i, from: $f, to: $u) {
      sma(period: 20) { time value }
      rsi { value }
      macd { macd signal histogram }
    }
  }
}"""

NODE = "query Node($id: ID!) { node(id: $id) { id ... on Symbol { ticker name lastBarTime } } }"

#: Watch lists sent as variables: one text per list length.
LATEST_VARS = {
    k: "query Latest({}) {{ {} }}".format(
        ", ".join(f"$t{j}: String!" for j in range(k)),
        " ".join(
            f"s{j}: symbol(ticker: $t{j}) {{ ticker latestBar(interval: M1) {{ time close }} }}"
            for j in range(k)
        ),
    )
    for k in range(2, 7)
}

#: Persisted (APQ) documents sent over GET by hash, with their variables.
APQ_DOCS = {
    "bars": BARS,
    "latest3": LATEST_VARS[3],
    "symbol": "query One($t: String!) { symbol(ticker: $t) { ticker name firstBarTime } }",
}

#: Hostile or malformed requests: each must be refused with a 4xx or answered with errors.
BAD_REQUESTS: list[dict[str, Any]] = [
    {"query": "{ symbols(first: 3) { edges { node { ticker } }"},  # syntax error
    {"query": "{ nosuchfield }"},
    {"query": BARS, "variables": {"t": "AAPL", "i": "D7", "n": 5}},  # bad enum value
    {"query": BARS, "variables": {"t": "AAPL", "i": "D1", "n": -5}},
    {"query": BARS, "variables": {"t": "AAPL", "i": "D1", "n": 10, "a": "not-a-cursor"}},
    {"query": BARS, "variables": {"t": "AAPL", "i": "D1", "n": 10_000_000}},  # too costly
    {"query": NODE, "variables": {"id": "bm90IGFuIGlk"}},  # malformed node id
    {"query": NODE, "variables": {"id": "%%%"}},
    {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(200)) + " }"},  # aliases
    {"query": 'mutation { requestIngest(provider: "x", tickers: ["AAPL"]) { jobId } }'},
    {"query": "{ symbol(ticker: 5) { ticker } }"},
    {"variables": {"x": 1}},  # no query
]

#: A bounded pool of distinct query texts (watch lists written out, as a client building its
#: text would send them); taken round-robin so every text reaches the parse cache early.
DISTINCT_POOL = 100


def distinct_texts(n: int) -> list[str]:
    """`n` different watch-list queries, deterministic."""
    rng = random.Random(13)
    texts: set[str] = set()
    while len(texts) < n:
        tickers = rng.sample(ALL, rng.randint(2, 6))
        fields = " ".join(
            f'{t.lower()}: symbol(ticker: "{t}") {{ ticker latestBar {{ time close volume }} }}'
            for t in tickers
        )
        texts.add(f"{{ {fields} }}")
    return sorted(texts)


def iso(value: datetime) -> str:
    """RFC 3339 with Z."""
    return value.isoformat().replace("+00:00", "Z")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the server and its process tree -------------------------------------------------------


def children(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            parents[ppid].append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def proc_status(pid: int, name: str) -> int:
    """A numeric field of /proc/<pid>/status (VmRSS in kB, Threads), 0 if gone."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    """Open file descriptors of a process, 0 if gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Server:
    """`market-graphql serve` in a session of its own (a Ctrl-C here is not its Ctrl-C: this
    script stops it in order)."""

    def __init__(self, env: dict[str, str], log_path: Path, trace_dir: Path | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if trace_dir is not None:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--traced-serve", *args]
            env = {**env, "SOAK_TRACEMALLOC_DIR": str(trace_dir)}
        else:
            cmd = [sys.executable, "-m", "graphql_api", *args]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Block until /readyz says ready."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"server not ready; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def traced_serve(argv: list[str]) -> None:
    """The server with a debug hook for finding what grows, enabled only by
    SOAK_TRACEMALLOC_DIR. Tracing starts SOAK_TRACEMALLOC_START seconds after the process
    (the warm-up: what start-up and warm-up allocate is left out, and tracing everything
    from the start made this server four times as large and too slow for the load); then
    every SOAK_SNAPSHOT_EVERY seconds, after a full collection, it dumps a snapshot and the
    counts of live objects by type, numbered in order. With SOAK_TRACEMALLOC_FRAMES=0 only the
    counts (and pymalloc's allocated blocks) are dumped: no tracing, so the server keeps its
    speed, and growth that no Python object explains points below Python."""
    out = Path(os.environ["SOAK_TRACEMALLOC_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    every = float(os.environ.get("SOAK_SNAPSHOT_EVERY", "60"))
    start = float(os.environ.get("SOAK_TRACEMALLOC_START", "0"))
    frames = int(os.environ.get("SOAK_TRACEMALLOC_FRAMES", "8"))

    def dump() -> None:
        time.sleep(start)
        if frames > 0:
            tracemalloc.start(frames)
        for n in itertools.count():
            time.sleep(every)
            # What the collector finds unreachable (cycles) since the last dump, by type;
            # then freed. The service's own thresholds make full collections rare.
            gc.set_debug(gc.DEBUG_SAVEALL)
            found = gc.collect()
            gc.set_debug(0)
            garbage = collections.Counter(
                f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
            )
            gc.garbage.clear()
            gc.collect()
            counts = collections.Counter(
                f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
            )
            if frames > 0:
                snapshot = tracemalloc.take_snapshot()
                snapshot.dump(str(out / f"snap-{n:03d}.pickle"))
                del snapshot  # its traces are tuples: the next count must not include them
            meta = {
                "t": time.time(),
                "rss_kb": proc_status(os.getpid(), "VmRSS"),
                "blocks": sys.getallocatedblocks(),
                "counts": dict(counts.most_common(400)),
                "garbage": found,
                "garbage_types": dict(garbage.most_common(15)),
            }
            (out / f"snap-{n:03d}.json").write_text(json.dumps(meta))

    threading.Thread(target=dump, name="soak-tracemalloc", daemon=True).start()
    sys.path.insert(0, str(ROOT))
    from graphql_api.cli import main as cli_main

    sys.argv = ["market-graphql", *argv]
    cli_main()


# -- the load -------------------------------------------------------------------------------


@dataclass
class Interval:
    """What happened since the last sample."""

    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    server_errors: int = 0  # 5xx
    unexpected: int = 0  # transport failures, unexpected 4xx, errors on good requests
    limited: int = 0  # 429
    shed: int = 0  # not started: --concurrency already in flight
    live_messages: int = 0
    subscriptions: int = 0  # opened


@dataclass
class Totals:
    """The whole run."""

    by_shape: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: dict[str, str] = field(default_factory=dict)  # first of each failure kind
    ws_outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    ingested_bars: int = 0
    rejected_rows: int = 0
    ingests: int = 0


@dataclass
class Sample:
    """One row of the table."""

    t: float
    steady: bool
    rss_mb: float
    fds: int
    threads: int
    pg_total: int
    pg_busy: int
    redis_mb: float
    redis_keys: int
    requests: int
    server_errors: int
    unexpected: int
    limited: int
    shed: int
    p50_ms: float
    p99_ms: float
    ws_open: int
    subscriptions: int
    live_messages: int


class Soak:
    """The load generators and the sampler, sharing counters."""

    def __init__(
        self,
        args: argparse.Namespace,
        server: Server,
        dsn: str,
        db_name: str,
        keys: list[str],
        work_dir: Path,
    ) -> None:
        self.args = args
        self.server = server
        self.dsn = dsn
        self.db_name = db_name
        self.keys = keys
        self.work_dir = work_dir
        self.interval = Interval()
        self.totals = Totals()
        self.samples: list[Sample] = []
        self.in_flight = 0
        self.ws_open = 0
        self.rng = random.Random(args.seed)
        self.stop_at = 0.0
        self.bar_cursors: collections.deque[tuple[str, str, int, str]] = collections.deque(
            maxlen=200
        )
        self.symbol_cursors: collections.deque[tuple[str | None, str]] = collections.deque(
            maxlen=50
        )
        self.distinct = distinct_texts(DISTINCT_POOL)
        self.distinct_next = 0
        self.apq_hashes = {
            name: hashlib.sha256(text.encode()).hexdigest() for name, text in APQ_DOCS.items()
        }
        self.ws_url = server.url.replace("http://", "ws://") + "/graphql"
        self.ingest_time = INGEST_START  # the next new bar's time
        self.last_ws_error = ""

    # -- outcomes

    def note(self, shape: str, kind: str, detail: str = "") -> None:
        """Count an outcome; remember the first example of each failure kind."""
        self.totals.outcomes[kind] += 1
        if kind in ("5xx", "transport", "unexpected", "internal"):
            self.totals.examples.setdefault(f"{shape}: {kind}", detail[:300])
            if kind == "5xx":
                self.interval.server_errors += 1
            else:
                self.interval.unexpected += 1
        elif kind == "429":
            self.interval.limited += 1

    def headers(self) -> dict[str, str]:
        """Half spec clients, half plain JSON; a key or none."""
        accept = self.rng.choice(["application/graphql-response+json", "application/json"])
        h = {"accept": accept}
        key = self.rng.choice([None, *self.keys])
        if key is not None:
            h["authorization"] = f"Bearer {key}"
        return h

    async def send(
        self, client: Any, shape: str, method: str, payload: dict[str, Any], *, bad: bool = False
    ) -> dict[str, Any] | None:
        """One request, timed and classified; the response body when it was a good answer."""
        started = time.perf_counter()
        try:
            if method == "GET":
                params = {
                    k: (v if isinstance(v, str) else json.dumps(v)) for k, v in payload.items()
                }
                response = await client.get("/graphql", params=params, headers=self.headers())
            else:
                response = await client.post("/graphql", json=payload, headers=self.headers())
        except Exception as exc:  # a timeout or a reset: the server did not answer
            self.interval.latencies.append((time.perf_counter() - started) * 1000)
            self.interval.requests += 1
            self.note(shape, "transport", f"{type(exc).__name__}: {exc}")
            return None
        self.interval.latencies.append((time.perf_counter() - started) * 1000)
        self.interval.requests += 1
        self.totals.by_shape[shape] += 1
        status = response.status_code
        if status >= 500:
            self.note(shape, "5xx", f"{status} {response.text}")
            return None
        if status == 429:
            self.note(shape, "429")
            return None
        try:
            body = response.json()
        except ValueError:
            self.note(shape, "unexpected", f"{status} not JSON: {response.text}")
            return None
        errors = body.get("errors") or []
        codes = {(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)}
        if "INTERNAL_SERVER_ERROR" in codes:
            self.note(shape, "internal", f"{status} {response.text}")
            return None
        if bad:
            ok = 400 <= status < 500 or (status == 200 and errors)
            self.note(shape, "refused" if ok else "unexpected", f"{status} {response.text}")
            return None
        if status == 200 and not errors:
            self.note(shape, "ok")
            return dict(body.get("data") or {})
        if "PERSISTED_QUERY_NOT_FOUND" in codes:
            self.note(shape, "apq-miss")
            return {"__apq_miss": True}
        self.note(shape, "unexpected", f"{status} {response.text}")
        return None

    # -- request shapes

    async def symbols(self, client: Any) -> None:
        if self.symbol_cursors and self.rng.random() < 0.5:
            search, after = self.rng.choice(self.symbol_cursors)
        else:
            search, after = self.rng.choice([None, None, "A", "Syn", "Corp", "Micro"]), None
        n = self.rng.choice([2, 3, 5])
        data = await self.send(
            client,
            "symbols",
            "POST",
            {"query": SYMBOLS, "variables": {"n": n, "a": after, "s": search}},
        )
        if data and data.get("symbols"):
            page = data["symbols"]["pageInfo"]
            if page["hasNextPage"]:
                self.symbol_cursors.append((search, page["endCursor"]))

    def bar_target(self) -> tuple[str, str]:
        if self.rng.random() < 0.5:
            return self.rng.choice((*DAILY, "FB")), self.rng.choice(["D1", "W1"])
        return self.rng.choice(INTRADAY), self.rng.choice(["M1", "M5", "M15", "H1"])

    async def bars(self, client: Any, after: tuple[str, str, int, str] | None = None) -> None:
        if after is not None:
            ticker, interval, n, cursor = after
            shape = "bars after"
        else:
            (ticker, interval), n, cursor = (
                self.bar_target(),
                self.rng.choice([50, 100, 200, 500]),
                None,
            )
            shape = "bars"
        variables = {"t": ticker, "i": interval, "n": n, "a": cursor}
        data = await self.send(client, shape, "POST", {"query": BARS, "variables": variables})
        if data and data.get("symbol"):
            page = data["symbol"]["bars"]["pageInfo"]
            if page["hasNextPage"]:
                self.bar_cursors.append((ticker, interval, n, page["endCursor"]))

    async def bars_after(self, client: Any) -> None:
        if not self.bar_cursors:
            await self.bars(client)
            return
        # Popped from a random place: some cursors are followed at once, some much later.
        index = self.rng.randrange(len(self.bar_cursors))
        entry = self.bar_cursors[index]
        del self.bar_cursors[index]
        await self.bars(client, entry)

    def ranges(self) -> tuple[str, str, str]:
        if self.rng.random() < 0.6:
            start = datetime(self.rng.randint(2005, 2010), self.rng.randint(1, 12), 1, tzinfo=UTC)
            end = start + timedelta(days=365 * self.rng.randint(1, 3))
            return self.rng.choice(DAILY), iso(start), iso(end)
        start = INTRADAY_START + timedelta(days=self.rng.randint(0, 8))
        end = start + timedelta(days=self.rng.randint(1, 20))  # some reach the ingested bars
        return self.rng.choice(INTRADAY), iso(start), iso(end)

    async def series(self, client: Any) -> None:
        ticker, start, end = self.ranges()
        interval = (
            self.rng.choice(["D1", "W1"])
            if ticker in DAILY
            else self.rng.choice(["M5", "M15", "H1"])
        )
        n = self.rng.choice([200, 300, 500])
        variables = {"t": ticker, "i": interval, "f": start, "u": end, "n": n}
        await self.send(client, "series", "POST", {"query": SERIES, "variables": variables})

    async def indicators(self, client: Any) -> None:
        ticker, start, end = self.ranges()
        interval = "D1" if ticker in DAILY else "M15"
        variables = {"t": ticker, "i": interval, "f": start, "u": end}
        await self.send(client, "indicators", "POST", {"query": INDICATORS, "variables": variables})

    async def latest(self, client: Any) -> None:
        k = self.rng.randint(2, 6)
        tickers = self.rng.sample(ALL, k)
        variables = {f"t{j}": t for j, t in enumerate(tickers)}
        await self.send(client, "latest", "POST", {"query": LATEST_VARS[k], "variables": variables})

    async def distinct_text(self, client: Any) -> None:
        text = self.distinct[self.distinct_next % len(self.distinct)]
        self.distinct_next += 1
        await self.send(client, "distinct texts", "POST", {"query": text})

    async def node(self, client: Any) -> None:
        # Symbol ids are small integers (SERIAL); an unknown one is null, not an error.
        ident = base64.b64encode(f"Symbol:{self.rng.randint(1, 10)}".encode()).decode()
        await self.send(client, "node", "POST", {"query": NODE, "variables": {"id": ident}})

    async def bad(self, client: Any) -> None:
        await self.send(client, "bad input", "POST", self.rng.choice(BAD_REQUESTS), bad=True)

    async def apq_get(self, client: Any) -> None:
        name = self.rng.choice(sorted(APQ_DOCS))
        if name == "bars":
            ticker, interval = self.bar_target()
            variables: dict[str, Any] = {"t": ticker, "i": interval, "n": 20, "a": None}
        elif name == "latest3":
            variables = {f"t{j}": t for j, t in enumerate(self.rng.sample(ALL, 3))}
        else:
            variables = {"t": self.rng.choice(ALL)}
        ext = {"persistedQuery": {"version": 1, "sha256Hash": self.apq_hashes[name]}}
        payload = {"variables": variables, "extensions": ext}
        data = await self.send(client, "apq get", "GET", payload)
        if data is not None and data.get("__apq_miss"):
            # As Apollo clients do: register by POST with the text, then GET by hash again.
            await self.send(client, "apq register", "POST", {**payload, "query": APQ_DOCS[name]})
            await self.send(client, "apq get", "GET", payload)

    async def http_load(self) -> None:
        """Requests at a steady rate until stop_at; never more than --concurrency in flight."""
        import httpx

        shapes = [
            (self.symbols, 2),
            (self.bars, 3),
            (self.bars_after, 3),
            (self.series, 3),
            (self.indicators, 1),
            (self.latest, 3),
            (self.distinct_text, 1),
            (self.node, 1),
            (self.bad, 1),
            (self.apq_get, 2),
        ]
        funcs, weights = zip(*shapes, strict=True)
        limits = httpx.Limits(max_connections=self.args.concurrency, max_keepalive_connections=8)
        timeout = httpx.Timeout(30.0)
        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(
            base_url=self.server.url, limits=limits, timeout=timeout
        ) as client:

            async def run(func: Any) -> None:
                self.in_flight += 1
                try:
                    await func(client)
                finally:
                    self.in_flight -= 1

            start, n = time.monotonic(), 0
            while True:
                due = start + n / self.args.rate
                if due >= self.stop_at:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                n += 1
                if self.in_flight >= self.args.concurrency:
                    self.interval.shed += 1
                    continue
                func = self.rng.choices(funcs, weights)[0]
                task = asyncio.create_task(run(func))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(pending, timeout=35)

    # -- subscriptions

    async def subscribe(self, tickers: list[str], interval: str, since: str | None = None) -> Any:
        """A connection with one barUpdates subscription, acknowledged."""
        import orjson
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        ws = await connect(
            self.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=15
        )
        self.ws_open += 1
        try:
            key = self.rng.choice([None, *self.keys])
            init = {"Authorization": f"Bearer {key}"} if key else {}
            await ws.send(orjson.dumps({"type": "connection_init", "payload": init}).decode())
            ack = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            variables: dict[str, Any] = {"t": tickers}
            declared, args = "$t: [String!]!", f"tickers: $t, interval: {interval}"
            if since is not None:
                variables["s"] = since
                declared, args = f"{declared}, $s: DateTime", f"{args}, since: $s"
            query = (
                f"subscription({declared}) {{ barUpdates({args}) "
                "{ ticker version replayed bar { time open close volume closed } } }"
            )
            payload = {"query": query, "variables": variables}
            await ws.send(
                orjson.dumps({"id": "1", "type": "subscribe", "payload": payload}).decode()
            )
            self.interval.subscriptions += 1
            return ws
        except BaseException:
            self.ws_open -= 1
            with contextlib.suppress(Exception):
                await ws.close()
            raise

    async def read_until(self, ws: Any, deadline: float) -> str:
        """Count `next` messages until the deadline; how the subscription ended."""
        import orjson

        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "held"
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                return "held"
            except Exception as exc:
                return f"closed by server ({type(exc).__name__})"
            message = orjson.loads(raw)
            kind = message.get("type")
            if kind == "next":
                if message.get("payload", {}).get("errors"):
                    return "next with errors"
                self.interval.live_messages += 1
            elif kind == "ping":
                await ws.send('{"type":"pong"}')
            elif kind in ("error", "complete"):
                if kind == "error":
                    self.last_ws_error = str(message.get("payload"))[:300]
                return kind

    async def short_subscription(self, bad: bool) -> None:
        """Open, hold a few seconds, end in one of three ways."""
        try:
            if bad:
                tickers, interval = self.rng.choice([([], "M1"), (["ACME"], "M7")])
            else:
                tickers = self.rng.sample(INTRADAY, self.rng.randint(1, 3))
                interval = self.rng.choice(["M1", "M5", "M15"])
            since = (
                iso(self.ingest_time - timedelta(minutes=10)) if self.rng.random() < 0.2 else None
            )
            ws = await self.subscribe(tickers, interval, since)
        except Exception as exc:
            self.totals.ws_outcomes["open failed"] += 1
            self.totals.examples.setdefault("ws: open failed", f"{type(exc).__name__}: {exc}")
            self.interval.unexpected += 1
            return
        try:
            ended = await self.read_until(ws, time.monotonic() + self.rng.uniform(2, 12))
            if bad:
                # Refused before the stream starts (`error`) or by the resolver (`next` with
                # errors): either way the client is told; a bare `complete` says nothing.
                ok = ended in ("error", "next with errors")
                self.totals.ws_outcomes["bad input: " + ended] += 1
                if not ok:
                    self.interval.unexpected += 1
                return
            if ended != "held":
                self.totals.ws_outcomes[f"ended early: {ended}"] += 1
                self.totals.examples.setdefault("ws: ended early", self.last_ws_error)
                self.interval.unexpected += 1
                return
            how = self.rng.choices(["complete", "close", "drop"], [5, 3, 2])[0]
            self.totals.ws_outcomes[f"ended by client: {how}"] += 1
            if how == "complete":
                await ws.send('{"id": "1", "type": "complete"}')
                await asyncio.sleep(0.1)
            if how == "drop":
                ws.transport.abort()  # gone without a close frame, as a lost client
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
            self.ws_open -= 1

    async def churn(self) -> None:
        """Short subscriptions opened on a schedule, at most --churn-max at once."""
        running: set[asyncio.Task[None]] = set()
        n = 0
        while time.monotonic() + 2 < self.stop_at:
            if len(running) < self.args.churn_max:
                n += 1
                task = asyncio.create_task(self.short_subscription(bad=n % 10 == 0))
                running.add(task)
                task.add_done_callback(running.discard)
            await asyncio.sleep(self.args.churn_every)
        if running:
            await asyncio.wait(running, timeout=20)

    async def long_subscription(self, i: int) -> None:
        """One subscription for the whole run; reopened (and counted) if the server ends it."""
        tickers = list(INTRADAY) if i % 2 == 0 else [INTRADAY[i % 3]]
        interval = ["M1", "M5", "M15"][i % 3]
        while time.monotonic() < self.stop_at:
            try:
                ws = await self.subscribe(tickers, interval)
            except Exception as exc:
                self.totals.ws_outcomes["long: open failed"] += 1
                self.totals.examples.setdefault("ws long: open failed", repr(exc))
                self.interval.unexpected += 1
                await asyncio.sleep(2)
                continue
            try:
                ended = await self.read_until(ws, self.stop_at)
                if ended != "held":
                    self.totals.ws_outcomes[f"long: ended early: {ended}"] += 1
                    self.totals.examples.setdefault("ws long: ended early", self.last_ws_error)
                    self.interval.unexpected += 1
                    await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)
                self.ws_open -= 1

    # -- ingest

    async def ingest(self) -> None:
        """Small CSV files every --ingest-every seconds through the file-ingest path."""
        import asyncpg

        from workers.file_ingest import ingest_file

        conn = await asyncpg.connect(
            self.dsn, server_settings={"application_name": DRIVER_APP_NAME}
        )
        try:
            n = 0
            while time.monotonic() + 1 < self.stop_at:
                n += 1
                path = self.work_dir / f"ingest-{n % 4}.csv"
                lines = ["ticker,time,open,high,low,close,volume"]
                for k, ticker in enumerate(INTRADAY):
                    base = 100 + 10 * k + (n % 50) / 10
                    # The previous bar revised, then new bars.
                    times = [self.ingest_time - timedelta(minutes=1)] if n > 1 else []
                    times += [self.ingest_time + timedelta(minutes=j) for j in range(2)]
                    for j, ts in enumerate(times):
                        close = base + 0.1 * j + self.rng.random() / 100
                        lines.append(
                            f"{ticker},{iso(ts)},{base:.2f},{base + 0.5:.2f},{base - 0.5:.2f},"
                            f"{close:.4f},{1000 + n}"
                        )
                path.write_text("\n".join(lines) + "\n")
                report = await ingest_file(conn, path, timeframe="M1")
                self.ingest_time += timedelta(minutes=2)
                self.totals.ingests += 1
                self.totals.ingested_bars += report.rows_written
                self.totals.rejected_rows += report.rows_rejected
                await asyncio.sleep(self.args.ingest_every)
        finally:
            await conn.close()

    # -- sampling

    async def sample(self, t: float, admin: Any, redis: Any) -> Sample:
        tree = children(self.server.proc.pid)
        rss = sum(proc_status(p, "VmRSS") for p in tree) / 1024
        fds = sum(open_fds(p) for p in tree)
        threads = sum(proc_status(p, "Threads") for p in tree)
        row = await admin.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE state <> 'idle') AS busy "
            "FROM pg_stat_activity WHERE datname = $1 AND application_name <> $2",
            self.db_name,
            DRIVER_APP_NAME,
        )
        try:
            info = await redis.info("memory")
            redis_mb, redis_keys = info["used_memory"] / 2**20, int(await redis.dbsize())
        except Exception:
            redis_mb, redis_keys = float("nan"), -1
        iv, self.interval = self.interval, Interval()
        import numpy as np

        lat = np.percentile(iv.latencies, [50, 99]) if iv.latencies else [float("nan")] * 2
        return Sample(
            t=t,
            steady=t >= self.args.warmup,
            rss_mb=rss,
            fds=fds,
            threads=threads,
            pg_total=int(row["total"]),
            pg_busy=int(row["busy"]),
            redis_mb=redis_mb,
            redis_keys=redis_keys,
            requests=iv.requests,
            server_errors=iv.server_errors,
            unexpected=iv.unexpected,
            limited=iv.limited,
            shed=iv.shed,
            p50_ms=float(lat[0]),
            p99_ms=float(lat[1]),
            ws_open=self.ws_open,
            subscriptions=iv.subscriptions,
            live_messages=iv.live_messages,
        )

    async def sampler(self, start: float) -> None:
        import asyncpg
        from redis.asyncio import Redis

        admin = await asyncpg.connect(
            self.args.database_url, server_settings={"application_name": DRIVER_APP_NAME}
        )
        redis = Redis.from_url(self.args.redis_url)
        try:
            for k in itertools.count():
                due = start + k * self.args.sample_every
                if due > self.stop_at + 0.5:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                s = await self.sample(round(due - start), admin, redis)
                self.samples.append(s)
                print(row_text(s), flush=True)
                if self.server.proc.poll() is not None:
                    raise RuntimeError(f"the server exited; see {self.server.log_path}")
        finally:
            await admin.close()
            await redis.aclose()

    async def run(self) -> None:
        start = time.monotonic()
        self.stop_at = start + self.args.warmup + self.args.duration
        print(HEADER, flush=True)
        tasks = [
            asyncio.create_task(self.sampler(start)),
            asyncio.create_task(self.http_load()),
            asyncio.create_task(self.churn()),
            asyncio.create_task(self.ingest()),
            *(
                asyncio.create_task(self.long_subscription(i))
                for i in range(self.args.long_subscribers)
            ),
        ]
        try:
            # The first failure (the server gone, a broken driver) ends the run.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


HEADER = (
    "     t phase   RSS MB  fds thr  pg busy  redis MB  keys   reqs 5xx  unexp  429 shed"
    "   p50 ms  p99 ms  ws  subs  live"
)


def row_text(s: Sample) -> str:
    """One sample as a fixed-width line."""
    return (
        f"{s.t:6.0f} {'steady' if s.steady else 'warm  '} {s.rss_mb:7.1f} {s.fds:4d} "
        f"{s.threads:3d} {s.pg_total:3d} {s.pg_busy:4d} {s.redis_mb:9.2f} {s.redis_keys:5d} "
        f"{s.requests:6d} {s.server_errors:3d} {s.unexpected:6d} {s.limited:4d} {s.shed:4d} "
        f"{s.p50_ms:8.1f} {s.p99_ms:7.1f} {s.ws_open:3d} {s.subscriptions:5d} "
        f"{s.live_messages:5d}"
    )


def slope_per_minute(samples: list[Sample], value: str) -> float:
    """Least-squares slope of a sampled value against time, per minute."""
    import numpy as np

    if len(samples) < 2:
        return float("nan")
    t = np.array([s.t for s in samples]) / 60
    y = np.array([float(getattr(s, value)) for s in samples])
    return float(np.polyfit(t, y, 1)[0])


def summary(args: argparse.Namespace, soak: Soak) -> bool:
    """Slopes, totals and the verdict; True when it passed."""
    import numpy as np

    steady = [s for s in soak.samples if s.steady]
    everything = soak.samples
    rss_slope = slope_per_minute(steady, "rss_mb")
    fd_slope = slope_per_minute(steady, "fds")
    pg_slope = slope_per_minute(steady, "pg_total")
    requests = sum(s.requests for s in everything)
    server_errors = sum(s.server_errors for s in everything)
    outcomes = soak.totals.outcomes
    transport = outcomes["transport"]
    seconds = everything[-1].t if everything else 0
    print()
    if steady:
        first, last = steady[0], steady[-1]
        print(
            f"steady part: t = {first.t:.0f} .. {last.t:.0f} s ({len(steady)} samples); "
            f"RSS {first.rss_mb:.1f} -> {last.rss_mb:.1f} MB "
            f"(min {min(s.rss_mb for s in steady):.1f}, max {max(s.rss_mb for s in steady):.1f}); "
            f"RSS at the first sample {everything[0].rss_mb:.1f} MB"
        )
        print(
            f"slopes (least squares, steady part): RSS {rss_slope:+.3f} MB/min, "
            f"fds {fd_slope:+.3f}/min, PostgreSQL connections {pg_slope:+.3f}/min "
            f"(range {min(s.pg_total for s in steady)}..{max(s.pg_total for s in steady)}, "
            f"not idle at most {max(s.pg_busy for s in steady)}), "
            f"Redis memory {slope_per_minute(steady, 'redis_mb'):+.3f} MB/min "
            f"({first.redis_mb:.1f} -> {last.redis_mb:.1f} MB, "
            f"{first.redis_keys} -> {last.redis_keys} keys)"
        )
        lat_all = [s.p99_ms for s in steady if not np.isnan(s.p99_ms)]
        if lat_all:
            print(
                f"per-interval p50 median {np.median([s.p50_ms for s in steady]):.1f} ms, "
                f"p99 median {np.median(lat_all):.1f} ms, worst p99 {max(lat_all):.1f} ms"
            )
    rate = requests / seconds if seconds else float("nan")
    print(
        f"requests: {requests} in {seconds:.0f} s ({rate:.1f}/s offered {args.rate:g}/s), "
        f"shed {sum(s.shed for s in everything)}; outcomes: "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    )
    print("by shape: " + ", ".join(f"{k} {v}" for k, v in sorted(soak.totals.by_shape.items())))
    print(
        f"subscriptions opened {sum(s.subscriptions for s in everything)}, live messages "
        f"received {sum(s.live_messages for s in everything)}; "
        + ", ".join(f"{k} {v}" for k, v in sorted(soak.totals.ws_outcomes.items()))
    )
    print(
        f"ingest: {soak.totals.ingests} files, {soak.totals.ingested_bars} rows written, "
        f"{soak.totals.rejected_rows} rejected"
    )
    for kind, example in sorted(soak.totals.examples.items()):
        print(f"  first {kind}: {example}")
    checks = [
        (f"RSS slope {rss_slope:+.3f} MB/min < {args.max_slope:g}", rss_slope < args.max_slope),
        (f"5xx responses: {server_errors}", server_errors == 0),
        (f"transport failures: {transport}", transport == 0),
    ]
    passed = bool(steady) and all(ok for _, ok in checks)
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
    print(f"verdict: {'PASS' if passed else 'FAIL'}")
    return passed


def compare_snapshots(trace_dir: Path) -> None:
    """What grew between the first snapshot and the last (both taken after the warm-up): by
    allocation site when traced, and by type of live object."""
    metas = sorted(trace_dir.glob("snap-*.json"))
    if len(metas) < 2:
        print(f"debug hook: fewer than two snapshots in {trace_dir}")
        return
    first, last = metas[0], metas[-1]
    ma, mb = json.loads(first.read_text()), json.loads(last.read_text())
    minutes = (mb["t"] - ma["t"]) / 60
    print(
        f"\ndebug hook: {last.stem} against {first.stem} ({minutes:.1f} min): RSS "
        f"{ma['rss_kb'] / 1024:.1f} -> {mb['rss_kb'] / 1024:.1f} MB, pymalloc blocks "
        f"{ma['blocks']} -> {mb['blocks']} ({(mb['blocks'] - ma['blocks']) / minutes:+.0f}/min)"
    )
    if first.with_suffix(".pickle").exists() and last.with_suffix(".pickle").exists():
        ignore = [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
        ]
        a = tracemalloc.Snapshot.load(str(first.with_suffix(".pickle"))).filter_traces(ignore)
        b = tracemalloc.Snapshot.load(str(last.with_suffix(".pickle"))).filter_traces(ignore)
        total_a = sum(t.size for t in a.traces) / 2**20
        total_b = sum(t.size for t in b.traces) / 2**20
        print(f"traced {total_a:.1f} -> {total_b:.1f} MiB; by allocation site (net growth):")
        for stat in b.compare_to(a, "traceback")[:15]:
            if stat.size_diff <= 0:
                continue
            print(
                f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks "
                f"(now {stat.size / 1024:.1f} KiB)"
            )
            for line in stat.traceback.format(limit=8, most_recent_first=True):
                print(f"      {line}")
    later = [json.loads(m.read_text()) for m in metas[1:]]
    found = sum(m["garbage"] for m in later)
    types: collections.Counter[str] = collections.Counter()
    for m in later:
        types.update(m["garbage_types"])
    print(
        f"cyclic garbage found by the hook's collections: {found / minutes:,.0f} objects/min; "
        "most: " + ", ".join(f"{k} {v / minutes:,.0f}/min" for k, v in types.most_common(8))
    )
    ca, cb = ma["counts"], mb["counts"]
    grown = sorted(((cb[k] - ca.get(k, 0), k) for k in cb), reverse=True)[:20]
    print("live objects by type (growth):")
    for diff, name in grown:
        if diff > 0:
            print(f"  {diff:+8d} {name} (now {cb[name]})")


def redis_composition(client: Any, limit: int = 200_000) -> None:
    """What the Redis database holds at the end: keys by prefix, their TTLs and sizes (the
    first 50 of each prefix sampled)."""
    groups: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    for n, raw in enumerate(client.scan_iter(count=1000)):
        if n >= limit:
            break
        key = raw.decode(errors="replace")
        prefix = ":".join(key.split(":")[:3])
        g = groups[prefix]
        g[0] += 1
        if g[0] <= 50:
            g[1] += 1
            g[2] += max(0, int(client.ttl(raw)))
            g[3] += int(client.memory_usage(raw) or 0)
    if not groups:
        return
    print("Redis at the end, by key prefix (TTL and size averaged over up to 50 keys):")
    for prefix, (count, sampled, ttl, size) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        print(
            f"  {prefix:<16} {count:7d} keys, TTL ~{ttl / sampled:,.0f} s, "
            f"~{size / sampled / 1024:.1f} KiB each"
        )


# -- set-up and tear-down ------------------------------------------------------------------


def cli(env: dict[str, str], *args: str) -> str:
    """Run `market-graphql <args>` (this tree's) and return its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "graphql_api", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"market-graphql {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    """Set up, run, report, clean up (also on Ctrl-C)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_ADMIN_URL", DEFAULT_ADMIN_URL)
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument(
        "--warmup", type=float, default=120.0, help="seconds before the steady part"
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of the steady part")
    parser.add_argument("--rate", type=float, default=20.0, help="HTTP requests/s offered")
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP requests in flight, max")
    parser.add_argument("--long-subscribers", type=int, default=4)
    parser.add_argument("--churn-every", type=float, default=1.0, help="s between short ones")
    parser.add_argument("--churn-max", type=int, default=8, help="short subscriptions at once")
    parser.add_argument("--ingest-every", type=float, default=5.0, help="s between ingest files")
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=3, help="read keys besides anonymous")
    parser.add_argument("--max-slope", type=float, default=1.0, help="MB/min of RSS to pass")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the server (repeatable)",
    )
    parser.add_argument("--tracemalloc", type=Path, metavar="DIR", help="debug: see above")
    parser.add_argument("--snapshot-every", type=float, default=60.0)
    parser.add_argument(
        "--frames", type=int, default=8, help="tracemalloc frames; 0: object counts only"
    )
    parser.add_argument("--flush-redis", action="store_true", help="use a non-empty Redis db")
    parser.add_argument("--quick", action="store_true", help="15 s warm-up, 45 s steady")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.duration = 15.0, 45.0

    import psycopg
    import redis as redis_sync
    from sqlalchemy.engine import make_url

    redis_client = redis_sync.Redis.from_url(args.redis_url)
    if redis_client.dbsize() and not args.flush_redis:
        sys.exit(f"{args.redis_url} is not empty: pick another index or pass --flush-redis")
    redis_client.flushdb()

    # SIGTERM takes the same way out as Ctrl-C: through the finally clauses.
    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)

    name = f"mg_soak_{os.getpid()}_{secrets.token_hex(3)}"
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    work_dir = Path(tempfile.mkdtemp(prefix="mg-soak-"))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "REDIS_URL": args.redis_url,
        "LOG_FORMAT": "json",
    }
    for item in args.service_env:
        key, _, value = item.partition("=")
        env[key] = value
    server: Server | None = None
    passed = False
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        started = time.monotonic()
        cli(env, "migrate")
        cli(env, "demo-data")
        keys = [
            cli(env, "keys", "create", "--name", f"soak-{i}", "--scope", "read")
            .strip()
            .splitlines()[-1]
            for i in range(args.keys)
        ]
        print(
            f"set-up (database {name}, demo data, {len(keys)} keys): "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
        if args.tracemalloc is not None:
            args.tracemalloc.mkdir(parents=True, exist_ok=True)
            env["SOAK_SNAPSHOT_EVERY"] = str(args.snapshot_every)
            env["SOAK_TRACEMALLOC_FRAMES"] = str(args.frames)
            # Set-up before the load takes a few seconds: tracing starts within the warm-up's
            # last seconds rather than after them.
            env["SOAK_TRACEMALLOC_START"] = str(max(0.0, args.warmup - 5))
        server = Server(env, work_dir / "server.log", args.tracemalloc)
        server.wait_ready()
        print(
            f"python {platform.python_version()}, {os.cpu_count()} cores; server pid "
            f"{server.proc.pid} at {server.url}; {args.rate:g} req/s offered, "
            f"{args.long_subscribers} long subscriptions, a short one every "
            f"{args.churn_every:g} s (max {args.churn_max}), an ingest file every "
            f"{args.ingest_every:g} s; warm-up {args.warmup:g} s, steady {args.duration:g} s",
            flush=True,
        )
        settings_dsn = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        soak = Soak(args, server, settings_dsn, name, keys, work_dir)
        sys.path.insert(0, str(ROOT))
        try:
            asyncio.run(soak.run())
        finally:
            if soak.samples:
                passed = summary(args, soak)
        redis_composition(redis_client)
        if args.tracemalloc is not None:
            server.stop()
            compare_snapshots(args.tracemalloc)
        print(f"(server log: {server.log_path})")
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(Exception):
            redis_client.flushdb()
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--traced-serve":
        traced_serve(sys.argv[2:])
    else:
        main()
