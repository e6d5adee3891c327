"""A local replay server for provider tests: scripted responses on 127.0.0.1, requests recorded.

Self-sufficient on purpose: it needs no database and no fixture from a parent conftest.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from tests.providers.support import ReplayServer
from workers.providers import ProviderConfig


@pytest.fixture(scope="session")
def replay_server() -> Iterator[ReplayServer]:
    """A uvicorn server on a free 127.0.0.1 port, in a background thread, for the session."""
    app = ReplayServer()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    app.base_url = f"http://{host}:{port}"
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("replay server did not start")
        time.sleep(0.01)
    yield app
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def replay(replay_server: ReplayServer) -> ReplayServer:
    """The replay server with an empty script."""
    replay_server.reset()
    return replay_server


@pytest.fixture
def fast_config(replay: ReplayServer) -> Callable[..., ProviderConfig]:
    """Build a config aimed at the replay server, with test-sized timeouts and backoff."""

    def make(**overrides: Any) -> ProviderConfig:
        settings: dict[str, Any] = {
            "base_url": replay.base_url,
            "reference_base_url": replay.base_url,
            "api_key": "test-key-id",
            "api_secret": "test-secret",
            # High enough that the limiter never slows a test that is not about it.
            "requests_per_minute": 600_000.0,
            "timeout_seconds": 2.0,
            "max_attempts": 3,
            "backoff_initial_seconds": 0.01,
            "backoff_max_seconds": 0.05,
        }
        settings.update(overrides)
        return ProviderConfig(**settings)

    return make
