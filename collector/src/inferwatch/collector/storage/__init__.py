"""The collector's database, as one store per aggregate; all SQL lives in this package.

Each stage owns the port it needs (ports and adapters): ``window.store.WindowStore`` (ingest and
windows), ``labels.store.LabelStore`` (labels and the prediction-id index),
``reference.store.ReferenceStore``, ``settings.store.SettingsStore`` (model settings and detector
state), ``alerts.store.AlertStore`` and ``alerts.outbox.OutboxStore`` (the webhook deliveries
stored with the alert changes). A backend implements the six on one database and hands them out
as a ``Storage``; ``open_storage`` picks the backend from the ``db`` URL: ``sqlite``
(one file) or ``postgres`` (one PostgreSQL database, which several replicas may share).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

from inferwatch.collector.alerts.outbox import OutboxStore
from inferwatch.collector.alerts.store import AlertStore
from inferwatch.collector.labels.store import LabelStore
from inferwatch.collector.reference.store import ReferenceStore
from inferwatch.collector.settings import CollectorConfig, ConfigError
from inferwatch.collector.settings.store import SettingsStore
from inferwatch.collector.window.store import WindowStore


class LeadershipLost(Exception):
    """The leader's writes were refused: another collector has taken the role since."""


@dataclass(frozen=True)
class LoopStall:
    """A time this collector's event loop stopped running while it led, and it handed the role
    back."""

    # Seconds since the epoch it handed the role back at.
    at: float
    # How long the loop had been silent then.
    seconds: float
    # The lease epoch it gave up.
    epoch: int


class Leadership(Protocol):
    """Which of the collectors sharing a database evaluates windows, alerts, fits references
    from windows and prunes: one at a time, so that no window is evaluated and no alert sent
    twice."""

    def holds(self) -> bool:
        """Whether this collector has the role now, taking it if it is free (blocking I/O)."""
        ...

    def beat(self) -> None:
        """The event loop is alive: it calls this every fraction of a second. A leader whose
        loop stops beating hands the role back rather than keep it without evaluating."""
        ...

    @property
    def last_stall(self) -> LoopStall | None:
        """The last time the role was handed back because the loop stopped beating."""
        ...

    def fenced(self) -> AbstractContextManager[None]:
        """A block whose writes (this thread's, through the stores) are stored together, and
        only while this collector still leads: else nothing of it is, and LeadershipLost is
        raised. Blocking I/O."""
        ...

    def close(self) -> None: ...


class SoleCollector:
    """The leadership of a database only one collector writes (a SQLite file): always held."""

    def holds(self) -> bool:
        return True

    def beat(self) -> None:
        pass

    @property
    def last_stall(self) -> LoopStall | None:
        return None

    def fenced(self) -> AbstractContextManager[None]:
        return nullcontext()

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Storage:
    """One database's stores. Each is thread-safe; ``close`` once every user is done."""

    windows: WindowStore
    labels: LabelStore
    references: ReferenceStore
    settings: SettingsStore
    alerts: AlertStore
    # The alert deliveries waiting to be sent, written inside ``alerts.together()`` blocks.
    outbox: OutboxStore
    # Releases the backend's connections.
    closer: Callable[[], None] = field(repr=False)
    leadership: Leadership = field(default_factory=SoleCollector, repr=False)

    def close(self) -> None:
        self.leadership.close()
        self.closer()


def open_storage(config: CollectorConfig) -> Storage:
    """The database named by ``config.db``, brought to this release's schema."""
    database = config.database
    if database.scheme == "sqlite":
        # Imported here: backends import this module (for Storage), and one may need a driver
        # that only its users install.
        from inferwatch.collector.storage.sqlite import open_sqlite

        return open_sqlite(database.target, durability=config.durability)
    try:
        from inferwatch.collector.storage.postgres import open_postgres
    except ImportError as exc:
        raise ConfigError(
            f"a postgresql:// db needs the PostgreSQL driver ({exc.name} is missing): "
            "pip install 'inferwatch-collector[postgres]'"
        ) from None
    return open_postgres(
        database.target,
        instance=config.instance_id,
        durability=config.durability,
        loop_stall_seconds=config.loop_stall_seconds,
    )


__all__ = ["Leadership", "LeadershipLost", "LoopStall", "SoleCollector", "Storage", "open_storage"]
