"""Do more uvicorn processes serve more requests? `market-graphql serve --workers N` under wrk.

    DATABASE_URL=postgresql://…/db_with_demo_data python benchmarks/workers_per_core.py \
        [--workers 1 2] [--rounds 2] [--seconds 15] [--connections 32]

Needs `wrk` (Debian package `wrk`) and a database with the demo data (`market-graphql
demo-data`). Each round starts a fresh server per worker count, warms it up, then runs wrk
once per query; rounds alternate the worker counts so background load hits both alike.
Field and response caches are off and rate limiting is off, so every request parses,
validates, runs SQL and serializes. docs/scaling.md records the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

QUERIES = {
    "latest bar (small)": '{ symbol(ticker: "AAPL") { latestBar { time close } } }',
    "100 daily bars": '{ symbol(ticker: "AAPL") { bars(first: 100) '
    "{ nodes { time open high low close volume } } } }",
}

SERVE = (sys.executable, "-m", "graphql_api", "serve")

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = %s
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(server_pid: int, database: str) -> dict[str, dict[int, int]]:
    """utime+stime (clock ticks) of the server and its worker processes, and of the PostgreSQL
    backends serving `database`: CPU per request that background load does not change."""
    out: dict[str, dict[int, int]] = {"server": {}, "postgres": {}}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, ppid, ticks = int(entry.name), int(fields[1]), int(fields[11]) + int(fields[12])
        if pid == server_pid or ppid == server_pid:
            out["server"][pid] = ticks
        elif cmdline.startswith("postgres: ") and f" {database} " in cmdline:
            out["postgres"][pid] = ticks
    return out


def cpu_ms(before: dict[int, int], after: dict[int, int]) -> float:
    return sum(t - before.get(pid, 0) for pid, t in after.items()) * 1000 / TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(workers: int, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CACHE_ENABLED": "false",
        "RATE_LIMIT_COST_PER_MINUTE": "0",
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not become ready")


def run_wrk(url: str, query: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % json.dumps(json.dumps({"query": query})))
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout=10s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(script.name).unlink()
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not match:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    requests, errors, p50, p99, duration_us = (int(g) for g in match.groups())
    return {
        "rps": requests / (duration_us / 1e6),
        "errors": errors,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("set DATABASE_URL to a database with the demo data")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    database = httpx.URL(os.environ["DATABASE_URL"]).path.lstrip("/")
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for round_ in range(args.rounds):
        for workers in args.workers if round_ % 2 == 0 else list(reversed(args.workers)):
            port = free_port()
            process = start_server(workers, port)
            url = f"http://127.0.0.1:{port}/graphql"
            try:
                for query in QUERIES.values():  # warm-up: imports, prepared statements
                    run_wrk(url, query, 2, args.connections)
                for name, query in QUERIES.items():
                    load = os.getloadavg()[0]
                    before = cpu_ticks(process.pid, database)
                    figures = run_wrk(url, query, args.seconds, args.connections)
                    after = cpu_ticks(process.pid, database)
                    requests = figures["rps"] * args.seconds
                    figures["load"] = load
                    figures["server_cpu_ms"] = cpu_ms(before["server"], after["server"]) / requests
                    figures["pg_cpu_ms"] = cpu_ms(before["postgres"], after["postgres"]) / requests
                    figures["server_cores"] = figures["server_cpu_ms"] * figures["rps"] / 1000
                    results.setdefault((name, workers), []).append(figures)
                    print(
                        f"round {round_ + 1} workers={workers} {name}: {figures['rps']:.0f} req/s,"
                        f" p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms,"
                        f" errors {figures['errors']:.0f}; CPU per request: server"
                        f" {figures['server_cpu_ms']:.1f} ms,"
                        f" PostgreSQL {figures['pg_cpu_ms']:.1f} ms;"
                        f" server used {figures['server_cores']:.2f} cores; load avg {load:.1f}",
                        flush=True,
                    )
            finally:
                process.terminate()
                process.wait(timeout=30)

    print(f"\n{os.cpu_count()} CPUs; wrk -t2 -c{args.connections} -d{args.seconds}s; medians:")
    print(
        "| query | workers | req/s | p50 ms | p99 ms | errors | server CPU ms/req"
        " | PostgreSQL CPU ms/req | server cores used |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in QUERIES:
        for workers in args.workers:
            runs = results[(name, workers)]
            rps = statistics.median(r["rps"] for r in runs)
            p50 = statistics.median(r["p50_ms"] for r in runs)
            p99 = statistics.median(r["p99_ms"] for r in runs)
            errors = sum(r["errors"] for r in runs)
            server, pg, cores = (
                statistics.median(r[k] for r in runs)
                for k in ("server_cpu_ms", "pg_cpu_ms", "server_cores")
            )
            print(
                f"| {name} | {workers} | {rps:.0f} | {p50:.1f} | {p99:.1f} | {errors:.0f}"
                f" | {server:.1f} | {pg:.1f} | {cores:.2f} |"
            )


if __name__ == "__main__":
    main()
