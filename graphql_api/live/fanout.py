"""Getting committed bar changes to the hub of every API process.

Writers (ingest workers, the CLI, any process calling `workers.upsert`) announce each
committed batch with `pg_notify` inside their transaction (core.events), so an event
exists only once its bars are visible, whichever process wrote it. From there:

- Without Redis (`LocalFanout`), each API process LISTENs itself.
- With Redis (`RedisFanout`), exactly one API process per database, the holder of a
  session advisory lock, LISTENs and PUBLISHes each change to the Redis channel of its
  symbol (`Bridge`). If every process bridged, each event would be published once per
  process; if writers published, an event could go out before its commit, or be lost when a
  writer dies between commit and publish. The lock dies with its holder's connection and
  another process takes over, first re-publishing the changes of the last minute it may
  have missed (duplicates are harmless: subscribers deduplicate by version). Each API
  process keeps one Redis pub/sub connection, subscribed to the channels of the symbols its
  clients watch (PUBSUB NUMSUB counts processes, not clients), and to a pattern only while
  an ingestEvents subscription is open.

Payloads are core.events' versioned JSON (`{"v": 1, …}`, about 200 bytes); channel
names carry the payload version and a hash of the database, so deployments (and test runs)
sharing a Redis never see each other's events. After a lost connection the hub catches up
from `bar_changes` (LiveHub.catch_up).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Collection
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.errors import ServiceUnavailable
from core.events import PAYLOAD_VERSION, BarChange, add_listener
from core.settings import Settings
from graphql_api.live.hub import LiveHub

log = logging.getLogger(__name__)

#: Session advisory lock held by the bridging process ('live' in the high 32 bits keeps it
#: apart from the per-series write locks of workers.upsert).
BRIDGE_LOCK = (int.from_bytes(b"live") << 32) | 1
#: Seconds between leadership attempts, health checks and reconnection attempts.
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 15.0
HEALTH_SECONDS = 10.0
#: How long a new subscription waits for the fan-out to be connected.
READY_TIMEOUT = 5.0
#: A new bridge re-publishes changes this recent that its predecessor may have missed.
TAKEOVER_WINDOW_SECONDS = 60
TAKEOVER_OVERLAP = 1_000

_TAKEOVER = """
SELECT id, symbol_id, timeframe, first_ts, last_ts, rows, source FROM bar_changes
WHERE id > coalesce($1::bigint, (SELECT max(id) FROM bar_changes), 0) - $2
  AND created_at > now() - make_interval(secs => $3)
ORDER BY id LIMIT 10000
"""


def channel_prefix(settings: Settings) -> str:
    """`mg:live:v<payload version>:<database hash>`: the namespace of one deployment."""
    url = settings.sqlalchemy_url
    ident = f"{url.host}:{url.port}/{url.database}?{url.query}"
    return f"mg:live:v{PAYLOAD_VERSION}:{hashlib.sha1(ident.encode()).hexdigest()[:12]}"


def symbol_channel(settings: Settings, symbol_id: int) -> str:
    """The Redis channel carrying one symbol's changes."""
    return f"{channel_prefix(settings)}:bars:{symbol_id}"


class LocalFanout:
    """Without Redis: this process LISTENs to PostgreSQL itself."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.ready = asyncio.Event()
        self.refs: Counter[int] = Counter()
        self.all_refs = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.create_task(self._run(), name="live-listen")

    async def stop(self) -> None:
        """Stop listening."""
        await _cancel(self._task)

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.hub.settings.asyncpg_dsn)
                await add_listener(conn, self._deliver)
                self.ready.set()
                backoff.reset()
                await self.hub.catch_up()
                await _watch_health(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff.log("PostgreSQL listener lost", exc)
            finally:
                self.ready.clear()
                await _close(conn)
            await backoff.sleep()

    def _deliver(self, change: BarChange) -> None:
        self.hub.on_bar_change(change)
        self.hub.on_event(change)

    async def watch_symbols(self, symbol_ids: Collection[int]) -> None:
        """Every change is delivered once the listener is up."""
        self.refs.update(symbol_ids)
        await _wait_ready(self.ready)

    def unwatch_symbols(self, symbol_ids: Collection[int]) -> None:
        """Forget one watch of each symbol."""
        self.refs.subtract(symbol_ids)
        self.refs = +self.refs

    async def watch_all(self) -> None:
        """Every change is delivered once the listener is up."""
        self.all_refs += 1
        await _wait_ready(self.ready)

    def unwatch_all(self) -> None:
        """Forget one watch of all changes."""
        self.all_refs -= 1

    def stats(self) -> dict[str, Any]:
        """Watched symbols and whether the listener is up."""
        return {"mode": "local", "ready": self.ready.is_set(), "symbols": dict(self.refs)}


class Bridge:
    """pg_notify to Redis, run by one API process per database at a time (the lock holder)."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.prefix = channel_prefix(settings)
        self.leading = False
        self.published = 0

    async def run(self) -> None:
        """Try to lead; while leading, publish every committed change."""
        backoff = Backoff()
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.settings.asyncpg_dsn)
                while True:  # another process leads while it holds the lock
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", BRIDGE_LOCK):
                        break
                    await asyncio.sleep(RETRY_SECONDS)
                self.leading = True
                backoff.reset()
                log.info("live: this process bridges PostgreSQL notifications to Redis")
                await self._lead(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff.log("bridge lost", exc)
            finally:
                self.leading = False
                await _close(conn)  # closing the session releases the lock
            await backoff.sleep()

    async def _lead(self, conn: asyncpg.Connection) -> None:
        queue: asyncio.Queue[BarChange] = asyncio.Queue()
        # Listen before reading what was missed, so nothing falls between the two.
        await add_listener(conn, queue.put_nowait)
        last = await self.redis.get(f"{self.prefix}:bridge:last")
        missed = await conn.fetch(
            _TAKEOVER,
            int(last) if last is not None else None,
            TAKEOVER_OVERLAP,
            TAKEOVER_WINDOW_SECONDS,
        )
        if missed:
            await self._publish([BarChange(**dict(r)) for r in missed])
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), HEALTH_SECONDS)
            except TimeoutError:
                await asyncio.wait_for(conn.execute("SELECT 1"), HEALTH_SECONDS)
                continue
            batch = [first]
            while not queue.empty() and len(batch) < 1_000:
                batch.append(queue.get_nowait())
            await self._publish(batch)

    async def _publish(self, changes: list[BarChange]) -> None:
        # One round trip per burst of notifications.
        async with self.redis.pipeline(transaction=False) as pipe:
            for change in changes:
                pipe.publish(f"{self.prefix}:bars:{change.symbol_id}", change.to_payload())
            pipe.set(f"{self.prefix}:bridge:last", max(c.id for c in changes))
            await pipe.execute()
        self.published += len(changes)


class RedisFanout:
    """With Redis: one pub/sub connection per process, subscribed to the watched symbols."""

    def __init__(self, hub: LiveHub) -> None:
        settings = hub.settings
        assert settings.redis_url is not None
        self.hub = hub
        self.prefix = channel_prefix(settings)
        self.control = f"{self.prefix}:control"
        self.pattern = f"{self.prefix}:bars:*"
        self.redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        # Errors must surface: redis-py's own reconnect would re-subscribe silently, and a
        # reconnect is exactly when a catch-up is needed.
        self._sub_client = Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_connect_timeout=5,
            health_check_interval=int(HEALTH_SECONDS),
            retry=Retry(NoBackoff(), 0),
        )
        self.bridge = Bridge(settings, self.redis)
        self.ready = asyncio.Event()
        self.refs: Counter[int] = Counter()
        self.all_refs = 0
        self.subscribed: set[str] = set()
        self.pattern_on = False
        self._lock = asyncio.Lock()
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the pub/sub reader and the bridge candidate."""
        self._tasks = [
            asyncio.create_task(self._read(), name="live-redis"),
            asyncio.create_task(self.bridge.run(), name="live-bridge"),
        ]

    async def stop(self) -> None:
        """Stop both and close the Redis connections."""
        for task in self._tasks:
            await _cancel(task)
        await self.redis.aclose()
        await self._sub_client.aclose()

    def _channel(self, symbol_id: int) -> str:
        return f"{self.prefix}:bars:{symbol_id}"

    async def _read(self) -> None:
        backoff = Backoff()
        while True:
            pubsub = self._sub_client.pubsub()
            try:
                async with self._lock:
                    self._pubsub = pubsub
                    self.subscribed, self.pattern_on = set(), False
                    await self._apply(pubsub, reading=False)
                self.ready.set()
                backoff.reset()
                await self.hub.catch_up()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff.log("Redis subscription lost", exc)
            finally:
                self.ready.clear()
                self._pubsub = None
                for future in self._confirm.values():
                    if not future.done():
                        future.set_exception(ServiceUnavailable("live updates reconnecting"))
                self._confirm.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await backoff.sleep()

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("subscribe", "psubscribe"):
            future = self._confirm.pop(message["channel"], None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        if kind not in ("message", "pmessage") or message["channel"] == self.control:
            return
        try:
            change = BarChange.from_payload(message["data"])
        except (ValueError, KeyError, TypeError):
            return  # another payload version: a rolling upgrade's other half
        if kind == "message":
            self.hub.on_bar_change(change)
        else:
            self.hub.on_event(change)

    async def _apply(self, pubsub: Any, *, reading: bool) -> None:
        """Make the subscriptions match the watches; returns once Redis confirmed them."""
        want = {self.control} | {self._channel(s) for s, n in self.refs.items() if n > 0}
        add, drop = want - self.subscribed, self.subscribed - want
        names = sorted(add)
        if self.all_refs > 0 and not self.pattern_on:
            names.append(self.pattern)
        loop = asyncio.get_running_loop()
        futures = [self._confirm.setdefault(n, loop.create_future()) for n in names]
        # Recorded before sending: a cancellation past this point must not leave a channel
        # subscribed that no later call would unsubscribe.
        self.subscribed |= add
        if add:
            await pubsub.subscribe(*sorted(add))
        if self.all_refs > 0 and not self.pattern_on:
            self.pattern_on = True
            await pubsub.psubscribe(self.pattern)
        if futures and not reading:
            # Nobody reads yet (connecting): read the confirmations here.
            while not all(f.done() for f in futures):
                message = await pubsub.get_message(timeout=READY_TIMEOUT)
                if message is None:
                    raise ConnectionError("Redis did not confirm the subscriptions")
                self._handle(message)
        elif futures:
            await asyncio.wait_for(asyncio.gather(*futures), READY_TIMEOUT)
        if drop:
            await pubsub.unsubscribe(*sorted(drop))
            self.subscribed -= drop
        if self.pattern_on and self.all_refs <= 0:
            await pubsub.punsubscribe(self.pattern)
            self.pattern_on = False

    async def _sync(self) -> None:
        await _wait_ready(self.ready)
        async with self._lock:
            if self._pubsub is None:
                raise ServiceUnavailable("live updates are reconnecting; try again")
            try:
                await self._apply(self._pubsub, reading=True)
            except TimeoutError:
                raise ServiceUnavailable("Redis did not confirm the subscription") from None

    async def watch_symbols(self, symbol_ids: Collection[int]) -> None:
        """Subscribe to the channels of these symbols (once per process) and wait for Redis."""
        self.refs.update(symbol_ids)
        try:
            await self._sync()
        except BaseException:
            self.unwatch_symbols(symbol_ids)
            raise

    def unwatch_symbols(self, symbol_ids: Collection[int]) -> None:
        """Drop one watch of each symbol; unsubscribes (in the background) from unwatched ones."""
        self.refs.subtract(symbol_ids)
        self.refs = +self.refs
        self.hub.spawn(self._sync_quietly())

    async def watch_all(self) -> None:
        """Subscribe to every symbol's channel by pattern (once per process)."""
        self.all_refs += 1
        try:
            await self._sync()
        except BaseException:
            self.unwatch_all()
            raise

    def unwatch_all(self) -> None:
        """Drop one watch of all changes."""
        self.all_refs -= 1
        self.hub.spawn(self._sync_quietly())

    async def _sync_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self._sync()

    def stats(self) -> dict[str, Any]:
        """Subscribed channels, watches, and whether this process bridges."""
        return {
            "mode": "redis",
            "ready": self.ready.is_set(),
            "channels": sorted(self.subscribed - {self.control}),
            "pattern": self.pattern_on,
            "symbols": dict(self.refs),
            "bridging": self.bridge.leading,
            "published": self.bridge.published,
        }


class Backoff:
    """Retry delays doubling from RETRY_SECONDS to MAX_RETRY_SECONDS; one warning per streak."""

    def __init__(self) -> None:
        self.delay = RETRY_SECONDS
        self.failures = 0

    def reset(self) -> None:
        """A connection succeeded."""
        self.delay, self.failures = RETRY_SECONDS, 0

    def log(self, what: str, exc: Exception) -> None:
        """Warn on the first failure of a streak, then only now and then."""
        self.failures += 1
        if self.failures == 1 or self.failures % 20 == 0:
            log.warning("live: %s (%r); retrying (failure %d)", what, exc, self.failures)

    async def sleep(self) -> None:
        """Wait before the next attempt."""
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, MAX_RETRY_SECONDS)


async def _watch_health(conn: asyncpg.Connection) -> None:
    """Return (by raising) when the connection is lost; a query now and then finds out."""
    while True:
        await asyncio.sleep(HEALTH_SECONDS)
        await asyncio.wait_for(conn.execute("SELECT 1"), HEALTH_SECONDS)


async def _wait_ready(ready: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(ready.wait(), READY_TIMEOUT)
    except TimeoutError:
        raise ServiceUnavailable("live updates are not connected; try again") from None


#: How long stopping waits for a background task to end.
CANCEL_SECONDS = 3.0


async def _close(conn: asyncpg.Connection | None) -> None:
    if conn is not None and not conn.is_closed():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 5)


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        # Bounded: a client library that swallows the cancellation (a Redis read in progress)
        # must not hang the app's shutdown; the loop's own shutdown cancels it again.
        done, _ = await asyncio.wait({task}, timeout=CANCEL_SECONDS)
        if task in done:
            with contextlib.suppress(BaseException):
                task.result()
        else:
            log.warning("live: task %s did not stop within %s s", task.get_name(), CANCEL_SECONDS)
