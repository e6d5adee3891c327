"""`serve --workers 2`: one /metrics that sums both worker processes (the real server)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from core.settings import Settings
from tests.clients.conftest import CLI, REPO, server_env, wait_healthy
from tests.scale.cluster import free_port

QUERY = "query Probe { symbols(first: 1) { nodes { ticker } } }"


@pytest.fixture
def two_workers(settings: Settings) -> Iterator[tuple[str, Path]]:
    """Base URL of `serve --workers 2` and its PROMETHEUS_MULTIPROC_DIR."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="mg-mp-") as tmp:
        shared = Path(tmp) / "metrics"
        shared.mkdir()
        (shared / "counter_1.db").write_bytes(b"stale")  # from an earlier run: must go
        log = Path(tmp) / "server.log"
        env = {**server_env(settings), "PROMETHEUS_MULTIPROC_DIR": str(shared)}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_healthy(base, process, log)
            yield base, shared
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def _requests_of(files: list[Path]) -> float:
    """Probe requests counted in these worker files (read the way the collector reads them)."""
    total = 0.0
    for metric in MultiProcessCollector.merge([str(f) for f in files], accumulate=True):
        for sample in metric.samples:
            if (
                sample.name == "market_graphql_request_duration_seconds_count"
                and sample.labels.get("operation") == "Probe"
            ):
                total += sample.value
    return total


def test_metrics_of_two_workers_are_summed(
    two_workers: tuple[str, Path], settings: Settings
) -> None:
    base, shared = two_workers
    assert not (shared / "counter_1.db").exists()
    sent = 0
    per_worker: dict[str, float] = {}
    deadline = time.monotonic() + 60
    # A new connection per request, so the kernel hands them to either worker; go on until
    # both have answered some (each worker writes its own histogram_<pid>.db).
    while time.monotonic() < deadline:
        for _ in range(10):
            with httpx.Client(base_url=base, timeout=10) as client:
                response = client.post("/graphql", json={"query": QUERY})
                assert response.status_code == 200, response.text
            sent += 1
        files = sorted(shared.glob("histogram_*.db"))
        per_worker = {f.name: _requests_of([f]) for f in files}
        if sum(1 for n in per_worker.values() if n > 0) >= 2:
            break
    assert sum(1 for n in per_worker.values() if n > 0) >= 2, per_worker
    assert sum(per_worker.values()) == sent

    # Every scrape, whichever worker answers it, reports the sum over both.
    pattern = re.compile(
        r'^market_graphql_request_duration_seconds_count\{operation="Probe",outcome="ok"\} (\S+)$',
        re.M,
    )
    for _ in range(6):
        with httpx.Client(base_url=base, timeout=10) as client:
            text = client.get("/metrics").text
        found = pattern.search(text)
        assert found is not None, text[:2000]
        assert float(found.group(1)) == sent
        # Readings of each worker's own pool are published into the shared files too.
        size = re.search(r"^market_graphql_db_pool_size (\S+)$", text, re.M)
        assert size is not None and float(size.group(1)) == 2 * settings.pool_size
