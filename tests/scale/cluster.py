"""A primary and a streaming standby on free ports, from the PostgreSQL 15 binaries.

The standby is made with `pg_basebackup -R` (a base backup that writes `standby.signal` and
`primary_conninfo`), started on a port of its own and stopped by `stop()`. The primary is the
test server when it accepts replication connections from 127.0.0.1; otherwise (the Debian
default pg_hba.conf has no `replication` line for TCP) a second cluster of our own is made
with `initdb` on a free port, configured for replication, and used as the primary.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


class ClusterUnavailable(RuntimeError):
    """The binaries are missing or no cluster could be made to replicate (the reason why)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: run its programs as the `postgres` user then.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_postgres(cmd), capture_output=True, text=True, timeout=timeout, check=False
    )


def _own_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    return path


@dataclass
class Server:
    """One running PostgreSQL server of ours (data directory, port)."""

    data: Path
    port: int
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data.parent / f"{self.data.name}.log"

    def start(self) -> None:
        if os.geteuid() == 0:
            self.log.touch()
            shutil.chown(self.log, "postgres", "postgres")
        done = _run(
            [str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
             "start"]
        )  # fmt: skip
        if done.returncode != 0:
            raise ClusterUnavailable(
                f"pg_ctl start failed: {done.stderr or done.stdout}\n{self.tail_log()}"
            )

    def stop(self, mode: str = "fast") -> None:
        _run([str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def running(self) -> bool:
        return _run([str(BIN / "pg_ctl"), "-D", str(self.data), "status"]).returncode == 0

    def tail_log(self) -> str:
        try:
            return self.log.read_text()[-2000:]
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@dataclass
class ReplicaPair:
    """A primary (ours or the test server) and a standby streaming from it."""

    primary_url: str  # the primary's superuser URL (database `postgres`)
    standby: Server
    own_primary: Server | None
    root: Path
    why_own: str = ""

    def stop(self) -> None:
        """Stop both servers (when ours) and remove their files."""
        if self.standby.running():
            self.standby.stop("immediate")
        if self.own_primary is not None and self.own_primary.running():
            self.own_primary.stop("fast")
        shutil.rmtree(self.root, ignore_errors=True)

    def standby_url(self, database: str) -> str:
        return self.standby.url(database)

    def wait_streaming(self, timeout: float = 30.0) -> None:
        """Until the standby accepts connections (hot standby reached consistency)."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.standby.url(), connect_timeout=2) as conn:
                    if conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,):
                        return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"standby never came up:\n{self.standby.tail_log()}")
            time.sleep(0.2)


def _basebackup(host_port: tuple[str, int], target: Path) -> subprocess.CompletedProcess[str]:
    host, port = host_port
    return _run(
        [str(BIN / "pg_basebackup"), "-h", host, "-p", str(port), "-U", "postgres",
         "-D", str(target), "-R", "-X", "stream", "-c", "fast", "--no-sync"],
        timeout=300,
    )  # fmt: skip


def _configure(data: Path, port: int, extra: str = "") -> None:
    settings = (
        f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
        f"unix_socket_directories = '{data}'\nfsync = off\nhot_standby = on\n"
        "hot_standby_feedback = on\n" + extra
    )
    with (data / "postgresql.auto.conf").open("a") as f:
        f.write(settings)


def _own_primary(root: Path) -> Server:
    data = root / "primary"
    server = Server(data, free_port())
    done = _run(
        [str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]
    )  # fmt: skip
    if done.returncode != 0:
        raise ClusterUnavailable(f"initdb failed: {done.stderr}")
    _configure(
        data,
        server.port,
        "wal_level = replica\nmax_wal_senders = 5\nsynchronous_commit = on\n",
    )
    with (data / "pg_hba.conf").open("a") as f:
        f.write("host replication all 127.0.0.1/32 trust\n")
    server.start()
    return server


def make_pair(test_host_port: tuple[str, int] | None) -> ReplicaPair:
    """A standby of the test server if it replicates to us, else of a primary of our own."""
    if not (BIN / "pg_basebackup").exists():
        raise ClusterUnavailable(f"no PostgreSQL binaries at {BIN} (set PG_BIN)")
    root = _own_dir("mg-replica-")
    own: Server | None = None
    why_own = ""
    try:
        standby_data = root / "standby"
        primary_url = ""
        if test_host_port is not None:
            done = _basebackup(test_host_port, standby_data)
            if done.returncode == 0:
                primary_url = (
                    f"postgresql://postgres@{test_host_port[0]}:{test_host_port[1]}/postgres"
                )
            else:
                why_own = (done.stderr or done.stdout).strip().splitlines()[-1:]  # type: ignore[assignment]
                why_own = f"the test server does not replicate to us ({''.join(why_own)})"
                shutil.rmtree(standby_data, ignore_errors=True)
        if not primary_url:
            own = _own_primary(root)
            done = _basebackup(("127.0.0.1", own.port), standby_data)
            if done.returncode != 0:
                raise ClusterUnavailable(f"pg_basebackup failed: {done.stderr}")
            primary_url = own.url()
        standby = Server(standby_data, free_port())
        _configure(standby_data, standby.port)
        standby.start()
        pair = ReplicaPair(primary_url, standby, own, root, why_own)
        pair.wait_streaming()
        return pair
    except BaseException:
        for server in (Server(root / "standby", 0), own):
            if server is not None and server.running():
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
        raise
