"""The embedded default: `serve` with no DATABASE_URL, leftovers stopped, tests without a server."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from graphql_api.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_running_on(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(data_dir) in " ".join(cmdline):
            found.append(proc)
    return found


def _env_without_database(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(extra)
    return env


# What `serve` prints itself (graphql_api/cli.py), and the loggers that are the service's own:
# uvicorn's lifecycle lines go through our handler on purpose (log_config=None in cli.py).
_OWN_TEXT = re.compile(
    r"starting embedded PostgreSQL in .+ …|demo data: \d+ symbols, \d+ bars written"
    r"|GraphQL at http://\S+/graphql|embedded PostgreSQL stopped"
)
_OWN_LOGGERS = re.compile(r"(market_graphql|graphql_api|workers|uvicorn)(\.|$)")


def _foreign_lines(output: str) -> list[str]:
    """Lines that neither `serve` nor one of the service's loggers wrote."""
    foreign = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if not _OWN_TEXT.fullmatch(line):
                foreign.append(line)
            continue
        if not (isinstance(record, dict) and _OWN_LOGGERS.match(str(record.get("logger")))):
            foreign.append(line)
    return foreign


def test_serve_without_database_url_runs_embedded_with_demo_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    port = _free_port()
    # COLUMNS: off a terminal rich wraps `serve`'s own prints at 80 columns (the console in
    # graphql_api/cli.py has no soft_wrap), which would split the long data-folder line.
    env = _env_without_database(DATA_DIR=str(data_dir), LOG_FORMAT="json", COLUMNS="500")
    # Without XDG_RUNTIME_DIR (cron, containers) platformdirs warns when pgserver is imported.
    env.pop("XDG_RUNTIME_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphql_api", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/graphql",
                    json={
                        "query": '{ symbol(ticker: "AAPL") { bars(first: 3) { edges { node '
                        "{ time close } } } } }"
                    },
                    timeout=5,
                )
                body = response.json()
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert body is not None, proc.stdout.read() if proc.stdout else ""
        closes = [e["node"]["close"] for e in body["data"]["symbol"]["bars"]["edges"]]
        assert closes == [430.47, 441.4, 444.57]
        assert _postgres_running_on(data_dir)
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "embedded PostgreSQL stopped" in output
    # Only the service's own lines, from start-up to exit: pgserver's command lines and the
    # platformdirs warning it triggers were printed before the first of ours (issue 13, item 8).
    assert output.splitlines()[0].startswith("starting embedded PostgreSQL in "), output
    assert _foreign_lines(output) == []
    assert not _postgres_running_on(data_dir)


def test_leftover_server_of_a_killed_owner_is_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from graphql_api.embedded import EmbeddedPostgres; "
            f"EmbeddedPostgres(__import__('pathlib').Path({str(data_dir)!r})).start(); "
            "print('up', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    assert owner.stdout.readline().strip() == "up"
    owner.kill()  # SIGKILL: no atexit, the server is orphaned
    owner.wait()
    orphans = _postgres_running_on(data_dir)
    assert orphans

    server = EmbeddedPostgres(data_dir)
    assert server.stop_leftover() is True
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
    url = server.start()
    try:
        assert "host=" in url
    finally:
        server.stop()
    assert not _postgres_running_on(data_dir)


def test_suite_runs_on_embedded_server_when_none_is_reachable() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/foundation/test_http.py::test_three_newest_daily_bars_of_aapl",
        ],
        cwd=ROOT,
        env={**os.environ, "TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/postgres"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
