"""A live server for the client tests: `market-graphql serve` (real uvicorn) on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
#: `market-graphql` as this interpreter runs it.
CLI = (sys.executable, "-m", "graphql_api")
#: Start-up is ~3 s on an idle machine; a loaded CI box can take far longer to import.
STARTUP_SECONDS = 120
#: The running server's log file, attached to the report of a failing test that used it.
_SERVER_LOG: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and "live_server" in getattr(item, "fixturenames", ()) and _SERVER_LOG:
        report.sections.append(("live server log", _SERVER_LOG[-1].read_text()[-8000:]))
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(settings: Settings) -> dict[str, str]:
    """The environment of a CLI process over `settings`' database, without Redis."""
    assert settings.database_url is not None
    return {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": ""}


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"no answer on /healthz in {STARTUP_SECONDS} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[str]:
    """Base URL of `python -m graphql_api serve` over the session's demo database."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="mg-clients-") as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=REPO,
                env=server_env(settings),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _SERVER_LOG.append(log)
            wait_healthy(base, process, log)
            yield base
        finally:
            _SERVER_LOG.remove(log)
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
