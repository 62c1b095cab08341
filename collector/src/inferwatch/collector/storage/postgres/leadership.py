"""Which replica leads: the holder of the lease, the one row of ``leader_lease``, renewed by the
leader every ``RENEW_SECONDS`` on a session of its own, and fenced by its epoch.

A replica takes the lease when it has expired (``LEASE_SECONDS`` after its last renewal, by the
server's clock) or at once when the holder's leadership session is gone (it stopped, crashed or
was killed); each taking raises the epoch. The leader's evaluations and alert changes are
stored in ``fenced`` blocks: one transaction that first locks the lease row (FOR SHARE) and
checks that its epoch is still this replica's. Another replica's taking waits for such a
transaction to end, and one begun after a taking finds a newer epoch and stores nothing
(``LeadershipLost``). So a leader paused (SIGSTOP) or cut off for longer than the lease loses
the role within ``LEASE_SECONDS`` plus a tick of the others, and what it computed before it
lost it is refused when it goes on. A paused leader in the middle of a fenced transaction holds
the lease row's lock: the server ends its session after ``LEASE_SECONDS`` idle in it.

The renewal runs on a thread, so that a long evaluation (in a worker thread) does not cost the
lease; but so a leader whose event loop hangs (a blocking call on it, a deadlock) would keep
renewing without evaluating. So the loop beats (``beat``, every fraction of a second) and the
thread renews only while the last beat is younger than ``stall_seconds``: past it, the leader
hands the lease back, and another replica takes it on its next tick. A slow evaluation does not
stop the beats (it runs off the loop), so a slow but healthy leader keeps the role. Nor does a
paused process (SIGSTOP, the GIL held): the thread, silent too, counts the loop's silence from
when it runs again, and the lease answers for the pause.

The same session holds the advisory lock of the replica's instance id from its start, so that
two live collectors never share one (each would overwrite the other's state). It sets TCP
keepalives, so that the server also lets go of a replica whose host vanished, within about
``_IDLE_S + _INTERVAL_S * _COUNT`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from inferwatch.collector.settings import ConfigError
from inferwatch.collector.storage import LeadershipLost, LoopStall
from inferwatch.collector.storage.postgres.database import Database

logger = logging.getLogger(__name__)

# pg_try_advisory_lock(INSTANCE_LOCK, hashtext(current_schema() || '/' || instance id)).
INSTANCE_LOCK = 0x1F3A0005
# How long a lease lasts without a renewal, and how often the leader renews it.
LEASE_SECONDS = 10.0
RENEW_SECONDS = 2.0
# How long the event loop may go without a beat before its leader hands the lease back.
STALL_SECONDS = LEASE_SECONDS
_IDLE_S, _INTERVAL_S, _COUNT = 5, 2, 3
_CONNECT_TIMEOUT_S = 5
# A renewal round this much later than due means the renewal thread itself did not run.
_LATE_ROUND_S = 1.0
# A taking waits this long for the leader's fenced transaction in flight, then tries next tick.
_LOCK_TIMEOUT = "1s"

_RENEW = (
    "UPDATE leader_lease SET expires_at = clock_timestamp() + make_interval(secs => %s) "
    "WHERE id = 1 AND epoch = %s RETURNING epoch"
)
_TAKE = (
    "UPDATE leader_lease SET holder = %s, holder_pid = pg_backend_pid(), epoch = epoch + 1, "
    "expires_at = clock_timestamp() + make_interval(secs => %s) WHERE id = 1 AND "
    "(expires_at <= clock_timestamp() OR holder_pid IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM pg_stat_activity a WHERE a.pid = leader_lease.holder_pid)) RETURNING epoch"
)
_RELEASE = (
    "UPDATE leader_lease SET holder_pid = NULL, expires_at = '-infinity' "
    "WHERE id = 1 AND epoch = %s"
)
_FENCE = "SELECT 1 FROM leader_lease WHERE id = 1 AND epoch = %s FOR SHARE"


class InstanceTaken(ConfigError):
    """Another live collector has this instance id."""


class LeaseLeadership:
    def __init__(
        self,
        url: str,
        database: Database,
        instance: str,
        *,
        lease_seconds: float = LEASE_SECONDS,
        renew_seconds: float = RENEW_SECONDS,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        """Raises ConfigError when another live collector has ``instance`` as its id."""
        self._url = url
        self._database = database
        self._name = database.name
        self._instance = instance
        self._lease_s = lease_seconds
        self._renew_s = renew_seconds
        self._stall_s = stall_seconds
        self._lock = threading.Lock()
        # This replica's epoch while it holds the lease.
        self._epoch: int | None = None
        # time.monotonic() of the event loop's last beat; None until it first beats, so that
        # whoever holds the lease without a loop (a test, a tool) renews as before.
        self._last_beat: float | None = None
        self._last_stall: LoopStall | None = None
        # Since when the renewal thread has been running on time (_renew_while_held).
        self._watched_since = time.monotonic()
        self._closed = threading.Event()
        try:
            self._conn: psycopg.Connection[Any] | None = self._connect()
        except psycopg.Error as exc:
            raise ConfigError(f"cannot open a session on the {self._name}: {exc}") from None
        # A thread, not the window task, renews: a long tick of evaluations must not cost the
        # lease, while a paused process renews nothing.
        self._renewer = threading.Thread(
            target=self._renew_while_held, name="inferwatch-leader-lease", daemon=True
        )
        self._renewer.start()

    @property
    def epoch(self) -> int | None:
        with self._lock:
            return self._epoch

    def holds(self) -> bool:
        with self._lock:
            if self._epoch is None and self._stalled_for() is not None:
                # Called from the loop a moment ago, which has hung since: not a leader to be.
                return False
            return self._refresh()

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    @property
    def last_stall(self) -> LoopStall | None:
        return self._last_stall

    @contextmanager
    def fenced(self) -> Iterator[None]:
        epoch = self.epoch
        if epoch is None:
            raise LeadershipLost("this collector does not lead")

        def begin(conn: psycopg.Connection[Any]) -> None:
            if conn.execute(_FENCE, (epoch,)).fetchone() is None:
                raise LeadershipLost(f"another collector took the lead after epoch {epoch}")

        with self._database.together(begin, idle_timeout_s=self._lease_s):
            yield

    def _refresh(self) -> bool:
        """Renew the lease if held, else take it if free; whether held now."""
        try:
            if self._conn is None:
                # A new session: the instance lock went with the old one; take it again.
                self._conn = self._connect()
            if self._epoch is not None:
                row = self._conn.execute(_RENEW, (self._lease_s, self._epoch)).fetchone()
                if row is None:
                    logger.warning("another collector took the lead (after epoch %d)", self._epoch)
                    self._epoch = None
                return self._epoch is not None
            row = self._conn.execute(_TAKE, (self._instance, self._lease_s)).fetchone()
            if row is not None:
                self._epoch = int(row[0])
                logger.info(
                    "this collector now evaluates windows and alerts (the leader, epoch %d)",
                    self._epoch,
                )
            return self._epoch is not None
        except InstanceTaken:
            logger.error("instance_id %r was taken by another collector", self._instance)
            return False
        except psycopg.errors.LockNotAvailable:
            # A fenced transaction in flight holds the row: try again later. Held or not,
            # the epoch says, and the fence checks it.
            return self._epoch is not None
        except psycopg.Error as exc:
            if self._epoch is not None:
                logger.warning("lost the leader's connection to the %s: %s", self._name, exc)
            self._drop()
            return False

    def _renew_while_held(self) -> None:
        last_round = time.monotonic()
        while not self._closed.wait(self._renew_s):
            now = time.monotonic()
            if now - last_round > self._renew_s + _LATE_ROUND_S:
                # This thread did not run either: the whole process was paused (SIGSTOP, a
                # stalled VM) or the GIL held, which the lease answers for. The loop's silence
                # counts from now on.
                self._watched_since = now
            last_round = now
            with self._lock:
                if self._epoch is None:
                    continue
                stalled = self._stalled_for()
                if stalled is None:
                    self._refresh()
                else:
                    self._give_up(stalled)

    def _stalled_for(self) -> float | None:
        """How long the event loop has gone without a beat, when longer than the bound."""
        if self._last_beat is None:
            return None
        silent = time.monotonic() - max(self._last_beat, self._watched_since)
        return silent if silent > self._stall_s else None

    def _give_up(self, stalled_s: float) -> None:
        """Hand the lease back: the loop that would evaluate has not run for ``stalled_s``."""
        assert self._epoch is not None
        epoch, self._epoch = self._epoch, None
        self._last_stall = LoopStall(time.time(), stalled_s, epoch)
        logger.error(
            "the event loop has not run for %.1f s (more than loop_stall_seconds = %g: a "
            "blocking call or a deadlock on it): handed the lead (epoch %d) back, so that "
            "another collector evaluates windows and alerts",
            stalled_s,
            self._stall_s,
            epoch,
        )
        try:
            if self._conn is not None:
                self._conn.execute(_RELEASE, (epoch,))
        except psycopg.Error:
            # A fenced transaction in flight holds the row (or the session is gone): ending the
            # session lets the others take the lease at once all the same.
            self._drop()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
        for setting, value in (
            ("tcp_keepalives_idle", str(_IDLE_S)),
            ("tcp_keepalives_interval", str(_INTERVAL_S)),
            ("tcp_keepalives_count", str(_COUNT)),
            ("lock_timeout", _LOCK_TIMEOUT),
        ):
            conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(current_schema() || '/' || %s))",
            (INSTANCE_LOCK, self._instance),
        ).fetchone()
        if not (row and row[0]):
            conn.close()
            raise InstanceTaken(
                f"another collector runs with instance_id {self._instance!r} on the "
                f"{self._name}: give each replica its own (docs/scaling.md)"
            )
        return conn

    def _drop(self) -> None:
        self._epoch = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._epoch is not None and self._conn is not None:
                # Handed over at once rather than when the lease runs out.
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute(_RELEASE, (self._epoch,))
            self._drop()
