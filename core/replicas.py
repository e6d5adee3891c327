"""Read replicas: which server a read goes to, how far behind each replica is, and failover.

PostgreSQL streaming replicas (READ_DATABASE_URLS) serve API reads; the primary
(DATABASE_URL) serves writes and every read that must see a write. Consistency rides on the
data version the service already hands out: the id of a `bar_changes` row (the `version` of
live updates and ingest events, see core/events.py). That row is written in the same
transaction as its bars, and a standby replays transactions in commit order, so a replica
that holds row V holds the bars of that commit and of every commit before it. A read that
needs version V (`Min-Version`) asks each usable replica for row V by primary key, for up
to REPLICA_WAIT_SECONDS, then goes to the primary.

A replica is taken out of rotation when its health check or a read on it fails with a
connection error, or when it lags more than REPLICA_MAX_LAG_SECONDS; the monitor keeps
checking it every REPLICA_CHECK_SECONDS and puts it back when it answers and has caught up.
A read that fails on a replica mid-request is run again on the primary (`run_read`), so a
replica that goes away costs a retry, not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from core import db, metrics
from core.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Where a read went and why, the label values of the routing counter (core.metrics).
ROUTES = ("replica", "primary_no_replica", "primary_wait_expired", "primary_failover")

_LAG_SQL = """
SELECT pg_is_in_recovery(),
       pg_last_wal_replay_lsn()::text,
       CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
            THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
       END
"""
#: Versions remembered per replica as held (a bound on memory, not on correctness).
MAX_REMEMBERED_VERSIONS = 4096
_REACHED_SQL = "SELECT EXISTS (SELECT 1 FROM bar_changes WHERE id = $1)"


def parse_lsn(text: str | None) -> int | None:
    """A WAL position ('16/B374D848') as a byte offset."""
    if not text:
        return None
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def replica_name(url: URL) -> str:
    """A label for a replica: host, port and database, never the password."""
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def is_replica_failure(exc: BaseException) -> bool:
    """Whether a read failed because of the server or the connection, not the statement.

    Connection loss, a server shutting down or starting up, refused or timed-out connects,
    and a standby cancelling a statement for a conflict with recovery (SQLSTATE 40001):
    the same read on the primary can succeed. A statement timeout (57014) cannot.
    """
    import asyncpg

    for e in _chain(exc):
        if isinstance(e, asyncpg.exceptions.QueryCanceledError):
            return False
        if isinstance(
            e,
            OSError
            | TimeoutError
            | asyncpg.exceptions.PostgresConnectionError
            | asyncpg.exceptions.InterfaceError
            | asyncpg.exceptions.AdminShutdownError
            | asyncpg.exceptions.CannotConnectNowError
            | asyncpg.exceptions.CrashShutdownError
            | asyncpg.exceptions.SerializationError,
        ):
            return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend([e.__cause__, e.__context__, getattr(e, "orig", None)])


@dataclass
class Replica:
    """One replica: its engine and what the last check found."""

    name: str
    engine: AsyncEngine
    dsn: str = ""  # for the version probe (asyncpg.connect form)
    up: bool = False
    reason: str = "not checked yet"
    in_recovery: bool | None = None
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    checked_at: float = 0.0
    #: Versions this replica was seen to hold: it keeps holding them (until it is taken out,
    #: which may mean it was rebuilt), so a client that repeats a Min-Version costs no query.
    reached: set[int] = field(default_factory=set)
    #: One connection of its own for version lookups: a pooled one would cost a pre-ping
    #: round trip and SQLAlchemy's checkout on every lookup (+6 ms a request under load,
    #: benchmarks/replicas.py); lookups take a fraction of a millisecond, so one at a time.
    probe: Any = None
    probe_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def drop_probe(self) -> None:
        """Close the version probe's connection at once (it is dead or unwanted)."""
        probe, self.probe = self.probe, None
        if probe is not None:
            probe.terminate()

    def status(self) -> dict[str, Any]:
        """What /readyz shows for this replica."""
        return {
            "status": "ok" if self.up else f"out: {self.reason}",
            "lagSeconds": self.lag_seconds,
            "lagBytes": self.lag_bytes,
        }


@dataclass
class ReadRouter:
    """Chooses the engine of each read and keeps the replicas' health up to date."""

    settings: Settings
    primary: AsyncEngine
    replicas: list[Replica]
    #: Reads routed, by route (ROUTES); core.metrics exports them.
    routed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROUTES, 0))
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _monitor: asyncio.Task[None] | None = None

    @classmethod
    def create(cls, settings: Settings, primary: AsyncEngine) -> ReadRouter | None:
        """A router over READ_DATABASE_URLS; None when there are none."""
        urls = settings.read_urls
        if not urls:
            return None
        replicas = [
            Replica(
                replica_name(url),
                db.create_engine(settings, url=url),
                url.set(drivername="postgresql").render_as_string(hide_password=False),
            )
            for url in urls
        ]
        for engine in (primary, *(r.engine for r in replicas)):
            _remember_recovery(engine)
        return cls(settings, primary, replicas)

    async def start(self) -> None:
        """Start checking the replicas in the background; reads go to the primary until a
        replica passes its first check (an unreachable one must not delay start-up)."""
        self._monitor = asyncio.create_task(self._watch(), name="replica-monitor")
        for replica in self.replicas:
            _owners[id(replica.engine)] = (self, replica)

    async def stop(self) -> None:
        """Stop checking and close the replicas' pools."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for replica in self.replicas:
            _owners.pop(id(replica.engine), None)
            replica.drop_probe()
            await replica.engine.dispose()

    def count(self, route: str) -> None:
        """Count one read routed by `route` (here and in the Prometheus counter)."""
        self.routed[route] += 1
        metrics.read_routes.labels(route).inc()

    def usable(self) -> list[Replica]:
        """Replicas in rotation (up and within the lag bound)."""
        return [r for r in self.replicas if r.up]

    def pick(self) -> AsyncEngine:
        """The engine for a read that needs no particular version: replicas in turn."""
        usable = self.usable()
        if not usable:
            self.count("primary_no_replica")
            return self.primary
        self.count("replica")
        return usable[next(self._turn) % len(usable)].engine

    async def read_engine(self, min_version: int | None = None) -> AsyncEngine:
        """The engine for a read that must see data version `min_version` (None: any)."""
        if min_version is None or min_version <= 0:
            return self.pick()
        deadline = time.monotonic() + self.settings.replica_wait_seconds
        pause = 0.005
        while True:
            usable = self.usable()
            if not usable:
                self.count("primary_no_replica")
                return self.primary
            start = next(self._turn)
            for i in range(len(usable)):
                replica = usable[(start + i) % len(usable)]
                if await self._reached(replica, min_version):
                    self.count("replica")
                    return replica.engine
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # The whole REPLICA_WAIT_SECONDS, not up to one pause less (a test measures it).
                self.count("primary_wait_expired")
                return self.primary
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.05)

    async def _reached(self, replica: Replica, version: int) -> bool:
        if version in replica.reached:
            return True
        try:
            async with replica.probe_lock:
                if replica.probe is None or replica.probe.is_closed():
                    replica.probe = await self._connect_probe(replica)
                found = bool(
                    await replica.probe.fetchval(
                        _REACHED_SQL, version, timeout=self.settings.readiness_timeout_seconds
                    )
                )
        except Exception as exc:
            replica.drop_probe()
            if not is_replica_failure(exc):
                raise
            await self.take_out(replica, f"{type(exc).__name__} on a version check")
            return False
        if found:
            if len(replica.reached) >= MAX_REMEMBERED_VERSIONS:
                replica.reached.clear()
            replica.reached.add(version)
        return found

    async def _connect_probe(self, replica: Replica) -> Any:
        import asyncpg

        return await asyncpg.connect(
            replica.dsn,
            timeout=self.settings.db_connect_timeout_seconds,
            server_settings={"application_name": "market-graphql-probe", "timezone": "UTC"},
        )

    async def take_out(self, replica: Replica, reason: str) -> None:
        """Stop routing reads to `replica` until a check finds it healthy again."""
        if replica.up:
            log.warning("replica %s taken out of rotation: %s", replica.name, reason)
        replica.up = False
        replica.reason = reason
        replica.reached.clear()
        replica.drop_probe()
        # Its pooled connections are dead or about to be: new ones after it comes back.
        await replica.engine.dispose()

    async def check_all(self) -> None:
        """Read each replica's recovery state and lag, taking replicas out or back in."""
        primary_lsn: int | None = None
        try:
            async with asyncio.timeout(self.settings.readiness_timeout_seconds):
                async with self.primary.connect() as conn:
                    result = await conn.exec_driver_sql("SELECT pg_current_wal_lsn()::text")
                    primary_lsn = parse_lsn(result.scalar_one())
        except Exception as exc:
            log.debug("primary WAL position unreadable: %r", exc)
        await asyncio.gather(*(self._check(r, primary_lsn) for r in self.replicas))

    async def _check(self, replica: Replica, primary_lsn: int | None) -> None:
        try:
            async with asyncio.timeout(
                self.settings.db_connect_timeout_seconds + self.settings.readiness_timeout_seconds
            ):
                async with replica.engine.connect() as conn:
                    row: Any = (await conn.exec_driver_sql(_LAG_SQL)).one()
        except Exception as exc:
            replica.lag_seconds = replica.lag_bytes = None
            await self.take_out(replica, f"unreachable: {type(exc).__name__}")
            return
        replica.checked_at = time.monotonic()
        replica.in_recovery = bool(row[0])
        replica.lag_seconds = float(row[2] or 0.0) if row[0] else 0.0
        replayed = parse_lsn(row[1])
        replica.lag_bytes = (
            max(primary_lsn - replayed, 0)
            if primary_lsn is not None and replayed is not None
            else None
        )
        if replica.lag_seconds > self.settings.replica_max_lag_seconds:
            await self.take_out(replica, f"lagging {replica.lag_seconds:.1f} s")
            return
        if not replica.up:
            log.info("replica %s in rotation (lag %.3f s)", replica.name, replica.lag_seconds)
        replica.up = True
        replica.reason = ""

    async def _watch(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:  # a check must never end the monitor
                log.exception("replica check failed")
            await asyncio.sleep(self.settings.replica_check_seconds)

    def status(self) -> dict[str, dict[str, Any]]:
        """Each replica's state, for /readyz."""
        return {r.name: r.status() for r in self.replicas}


#: Replica engines by id, with their router: `run_read` looks up where to fail over to.
_owners: dict[int, tuple[ReadRouter, Replica]] = {}


async def run_read(engine: AsyncEngine, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """`work(engine)`; on a replica that is out or fails mid-read, `work(primary)` instead.

    Reads are idempotent, so running one again on the primary is safe; the primary holds
    everything a replica holds, so the answer is as new or newer.
    """
    owner = _owners.get(id(engine))
    if owner is None:
        return await work(engine)
    router, replica = owner
    if not replica.up:
        router.count("primary_failover")
        return await work(router.primary)
    try:
        return await work(engine)
    except Exception as exc:
        if not is_replica_failure(exc):
            raise
        await router.take_out(replica, f"{type(exc).__name__} during a read")
        router.count("primary_failover")
        return await work(router.primary)


def _remember_recovery(engine: AsyncEngine) -> None:
    """Record on each new connection whether its server is a standby (`conn.info`).

    Tests and logs read `info["in_recovery"]` to know which kind of server answered.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        record.info["in_recovery"] = dbapi_connection.run_async(
            lambda conn: conn.fetchval("SELECT pg_is_in_recovery()")
        )
