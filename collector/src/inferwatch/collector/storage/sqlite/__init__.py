"""The SQLite backend: one file in WAL mode (``database``), its schema as numbered migrations
(``schema``, ``migrations/*.sql``), and a module per aggregate implementing its store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from inferwatch.collector.settings import ConfigError
from inferwatch.collector.storage import Storage
from inferwatch.collector.storage.sqlite.alerts import SQLiteAlertStore
from inferwatch.collector.storage.sqlite.database import Database
from inferwatch.collector.storage.sqlite.labels import SQLiteLabelStore
from inferwatch.collector.storage.sqlite.outbox import SQLiteOutbox
from inferwatch.collector.storage.sqlite.references import SQLiteReferenceStore
from inferwatch.collector.storage.sqlite.schema import SCHEMA_VERSION, migrate
from inferwatch.collector.storage.sqlite.settings import SQLiteSettingsStore
from inferwatch.collector.storage.sqlite.windows import SQLiteWindowStore


def open_sqlite(path: str | Path, *, durability: str = "full") -> Storage:
    """The stores on the SQLite file at ``path`` (created if missing, migrated if older).

    Raises ConfigError, and leaves the file as it was, for a file it cannot bring forward or
    that is not a SQLite database at all.
    """
    try:
        database = Database(path, durability=durability)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot open {path} as a SQLite database: {exc}") from exc
    try:
        migrate(database)
    except BaseException:
        database.close()
        raise
    return Storage(
        windows=SQLiteWindowStore(database),
        labels=SQLiteLabelStore(database),
        references=SQLiteReferenceStore(database),
        settings=SQLiteSettingsStore(database),
        alerts=SQLiteAlertStore(database),
        outbox=SQLiteOutbox(database),
        closer=database.close,
    )


__all__ = ["SCHEMA_VERSION", "open_sqlite"]
