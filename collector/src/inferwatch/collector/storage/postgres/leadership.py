"""Which replica leads: the one holding a session-level advisory lock of the schema, on a
connection of its own. The same session holds the lock of the replica's instance id from its
start, so that two live collectors never share one (each would overwrite the other's state).

The lock goes with its session: a replica that stops, crashes or is killed loses its connection
and with it the lock, which another replica takes on its next try (each tick of its window
task). The session sets TCP keepalives, so that the server also lets go of a replica whose host
vanished, within about ``_IDLE_S + _INTERVAL_S * _COUNT`` seconds.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

from inferwatch.collector.settings import ConfigError

logger = logging.getLogger(__name__)

# pg_try_advisory_lock(LEADER_LOCK, hashtext(current_schema())).
LEADER_LOCK = 0x1F3A0004
# pg_try_advisory_lock(INSTANCE_LOCK, hashtext(current_schema() || '/' || instance id)).
INSTANCE_LOCK = 0x1F3A0005
_IDLE_S, _INTERVAL_S, _COUNT = 5, 2, 3
_CONNECT_TIMEOUT_S = 5


class InstanceTaken(ConfigError):
    """Another live collector has this instance id."""


class AdvisoryLeadership:
    def __init__(self, url: str, name: str, instance: str) -> None:
        """Raises ConfigError when another live collector has ``instance`` as its id."""
        self._url = url
        self._name = name
        self._instance = instance
        self._lock = threading.Lock()
        self._held = False
        try:
            self._conn: psycopg.Connection[Any] | None = self._connect()
        except psycopg.Error as exc:
            raise ConfigError(f"cannot open a session on the {name}: {exc}") from None

    def holds(self) -> bool:
        with self._lock:
            try:
                if self._conn is None:
                    # A new session: the instance lock went with the old one; take it again.
                    self._conn = self._connect()
                if self._held:
                    # Still connected means still held.
                    self._conn.execute("SELECT 1")
                    return True
                row = self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))",
                    (LEADER_LOCK,),
                ).fetchone()
                self._held = bool(row and row[0])
                if self._held:
                    logger.info("this collector now evaluates windows and alerts (the leader)")
                return self._held
            except InstanceTaken:
                logger.error("instance_id %r was taken by another collector", self._instance)
                return False
            except psycopg.Error as exc:
                if self._held:
                    logger.warning("lost the leader's connection to the %s: %s", self._name, exc)
                self._drop()
                return False

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
        for setting, value in (
            ("tcp_keepalives_idle", _IDLE_S),
            ("tcp_keepalives_interval", _INTERVAL_S),
            ("tcp_keepalives_count", _COUNT),
        ):
            conn.execute("SELECT set_config(%s, %s, false)", (setting, str(value)))
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
        self._held = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
