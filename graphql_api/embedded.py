"""An embedded PostgreSQL server from the `pgserver` wheel, for running with no DATABASE_URL."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs

log = logging.getLogger(__name__)


@contextmanager
def _quiet_pgserver() -> Iterator[None]:
    """Keep pgserver's chatter out of the service's output (its warnings and errors still show).

    Wraps the first import of pgserver, which is where the platformdirs warning is raised.
    """
    # pgserver logs each initdb / pg_ctl command line and its output at INFO on one logger:
    # a dozen lines before the service's first. LOG_LEVEL=DEBUG keeps them, to diagnose a
    # start that fails; a level set on that logger by the operator is left alone.
    pg_log = logging.getLogger("pgserver")
    if pg_log.level == logging.NOTSET and logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        pg_log.setLevel(logging.WARNING)
    # pgserver keeps a lock file in the user runtime dir, computed when it is imported; without
    # XDG_RUNTIME_DIR (cron, systemd services, containers) platformdirs warns and falls back
    # to /tmp, which is fine for a lock file. Older platformdirs have no such warning.
    category = getattr(platformdirs, "RuntimeDirWarning", None)
    with warnings.catch_warnings():
        if category is not None:
            # The warning is attributed to platformdirs' own module today; to its caller
            # (pgserver) should platformdirs' stacklevel change.
            warnings.filterwarnings(
                "ignore", category=category, module=r"(platformdirs|pgserver)\."
            )
        yield


def default_data_dir() -> Path:
    """The per-user folder where the embedded server keeps its data."""
    return platformdirs.user_data_path("market-graphql") / "pgdata"


class EmbeddedPostgres:
    """Owns one embedded server: stops a leftover from a crashed run, starts, and stops it."""

    def __init__(self, data_dir: Path | None = None, *, delete_on_stop: bool = False) -> None:
        self.data_dir = (data_dir or default_data_dir()).resolve()
        self.delete_on_stop = delete_on_stop
        self._server: Any = None

    def start(self) -> str:
        """Start the server and return a postgresql:// URL (Unix socket) for it."""
        with _quiet_pgserver():
            import pgserver

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.stop_leftover()
        self._server = pgserver.get_server(
            self.data_dir, cleanup_mode="delete" if self.delete_on_stop else "stop"
        )
        uri: str = self._server.get_uri()
        return uri

    def stop_leftover(self) -> bool:
        """Stop a server a killed owner left running on our folder; True if there was one."""
        with _quiet_pgserver():
            from pgserver import _commands
            from pgserver.utils import PostmasterInfo

        if not (self.data_dir / "PG_VERSION").exists():
            return False
        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        # pgserver counts owners in this file; a killed owner's pid would keep the server
        # alive forever after our own stop, so the count starts afresh.
        (self.data_dir / ".handle_pids.json").unlink(missing_ok=True)
        if info is None or not info.is_running():
            return False
        log.warning("stopping a leftover embedded PostgreSQL (pid %s)", info.pid)
        user = "pgserver" if os.geteuid() == 0 else None
        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user)
        return True

    def stop(self) -> None:
        """Stop the server (and delete its data when created with delete_on_stop)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
