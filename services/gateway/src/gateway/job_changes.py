"""Which jobs changed, from whichever process changed them: one LISTEN per gateway process.

A trigger on `jobs` (migration 0006) NOTIFYs `job_changed` with the job's id when a change a
caller can see commits (status, logs, progress, last error), in the gateway or a worker. Each
gateway process keeps ONE dedicated asyncpg connection LISTENing (outside the pool) and wakes
the in-process waiters of that job: event streams (GET /jobs/{id}/events) and POST /generate
requests with `Prefer: wait`. A waiter holds no database connection and no task of its own
while it waits; it reads the job again (one statement, a pooled connection) when woken.

Notifications are hints, never the data: a waiter always re-reads. Those sent while the
listener was disconnected are lost, so after every (re)connect every waiter is woken to
re-read. While the database is down, waiters simply stay asleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import make_url

from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

CHANNEL = "job_changed"
# A connection that died without a FIN (a partition, a failover) is noticed by a ping.
PING_EVERY_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 5.0
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0


class Watch:
    """A waiter for one job's changes; `clear()` before reading the job, `wait()` after, so a
    change committed during the read is never missed."""

    __slots__ = ("_changes", "_event", "job_id")

    def __init__(self, changes: JobChanges, job_id: uuid.UUID) -> None:
        self._changes = changes
        self._event = asyncio.Event()
        self.job_id = job_id

    def clear(self) -> None:
        self._event.clear()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """True when woken (the job may have changed, or the process is closing), False when
        `seconds` passed first."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        return True

    @property
    def closing(self) -> bool:
        return self._changes.closing

    def close(self) -> None:
        """Stop watching (idempotent)."""
        self._changes.forget(self)


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (postgresql+asyncpg://...) as a plain libpq-style DSN for asyncpg."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class JobChanges:
    def __init__(self, settings: GatewaySettings, *, application_name: str) -> None:
        self._dsn = asyncpg_dsn(settings.gateway_listen_database_url or settings.database_url)
        self._connect_timeout = settings.db_connect_timeout_seconds
        self._application_name = application_name
        self._waiters: dict[uuid.UUID, set[Watch]] = {}
        self.closing = False
        self.connected = asyncio.Event()  # set while LISTENing (tests and logs)

    def watch(self, job_id: uuid.UUID) -> Watch:
        """Start watching a job; `close()` the watch when done (or use `watching`)."""
        watch = Watch(self, job_id)
        self._waiters.setdefault(job_id, set()).add(watch)
        if self.closing:
            watch.wake()
        return watch

    @contextlib.contextmanager
    def watching(self, job_id: uuid.UUID) -> Iterator[Watch]:
        watch = self.watch(job_id)
        try:
            yield watch
        finally:
            watch.close()

    def forget(self, watch: Watch) -> None:
        watchers = self._waiters.get(watch.job_id)
        if watchers is not None:
            watchers.discard(watch)
            if not watchers:
                del self._waiters[watch.job_id]

    @property
    def watched(self) -> int:
        """How many waiters there are (all jobs)."""
        return sum(len(w) for w in self._waiters.values())

    def changed(self, job_id: uuid.UUID) -> None:
        for watch in self._waiters.get(job_id, ()):
            watch.wake()

    def wake_all(self) -> None:
        for watchers in self._waiters.values():
            for watch in watchers:
                watch.wake()

    def close(self) -> None:
        """The process is shutting down: every waiter ends now (streams close, and the
        client resumes elsewhere with Last-Event-ID; sync waits answer what they have)."""
        self.closing = True
        self.wake_all()

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            job_id = uuid.UUID(str(payload))
        except ValueError:
            return
        self.changed(job_id)

    async def run(self) -> None:
        """LISTEN until cancelled, reconnecting after any loss (with backoff)."""
        delay = RECONNECT_MIN_SECONDS
        while True:
            try:
                await self._listen_once()
            except Exception as exc:
                if self.connected.is_set():  # it was up: a new outage begins
                    delay = RECONNECT_MIN_SECONDS
                expected = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
                log.log(
                    logging.WARNING if isinstance(exc, expected) else logging.ERROR,
                    "job change listener disconnected (%s: %s); reconnecting in %.1fs",
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=not isinstance(exc, expected),
                )
            finally:
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen_once(self) -> None:
        """Connect and LISTEN; raises when the connection is lost."""
        connection = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": self._application_name},
        )
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._notified)
            self.connected.set()
            log.info("listening for job changes")
            # What changed while nobody listened (or before the first connect) is unknown.
            self.wake_all()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PING_EVERY_SECONDS):
                        await lost.wait()
                if not lost.is_set():
                    async with asyncio.timeout(PING_TIMEOUT_SECONDS):
                        await connection.execute("SELECT 1")
            raise ConnectionResetError("the listening connection was closed")
        finally:
            connection.terminate()
