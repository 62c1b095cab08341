"""The PostgreSQL backend: a connection pool (``database``), its schema as numbered migrations
(``schema``, ``migrations/*.sql``), and a module per aggregate implementing its store. Several
collector replicas may share one database (docs/scaling.md)."""

from __future__ import annotations

from inferwatch.collector.storage import Storage
from inferwatch.collector.storage.postgres.alerts import PostgresAlertStore
from inferwatch.collector.storage.postgres.database import Database
from inferwatch.collector.storage.postgres.labels import PostgresLabelStore
from inferwatch.collector.storage.postgres.leadership import STALL_SECONDS, LeaseLeadership
from inferwatch.collector.storage.postgres.outbox import PostgresOutbox
from inferwatch.collector.storage.postgres.references import PostgresReferenceStore
from inferwatch.collector.storage.postgres.schema import SCHEMA_VERSION, migrate
from inferwatch.collector.storage.postgres.settings import PostgresSettingsStore
from inferwatch.collector.storage.postgres.windows import PostgresWindowStore


def open_postgres(
    url: str,
    *,
    instance: str = "default",
    durability: str = "full",
    loop_stall_seconds: float = STALL_SECONDS,
) -> Storage:
    """The stores on the PostgreSQL database at ``url``, migrated if older; ``instance`` names
    this collector's journal and share of window state; the leader hands its role back once its
    event loop has not beaten for ``loop_stall_seconds``.

    Raises ConfigError, and leaves the database as it was, when the server cannot be reached,
    the database cannot be brought forward, or another live collector has ``instance``.
    """
    database = Database(url, durability=durability)
    try:
        migrate(database)
        leadership = LeaseLeadership(url, database, instance, stall_seconds=loop_stall_seconds)
    except BaseException:
        database.close()
        raise
    return Storage(
        windows=PostgresWindowStore(database, instance),
        labels=PostgresLabelStore(database),
        references=PostgresReferenceStore(database),
        settings=PostgresSettingsStore(database),
        alerts=PostgresAlertStore(database),
        outbox=PostgresOutbox(database),
        closer=database.close,
        leadership=leadership,
    )


__all__ = ["SCHEMA_VERSION", "open_postgres"]
