"""Storage backends behind one narrow interface (``Storage``); all SQL lives in this package."""

from inferwatch.collector.settings import CollectorConfig, ConfigError
from inferwatch.collector.storage.base import Storage
from inferwatch.collector.storage.sqlite import SQLiteStorage


def open_storage(config: CollectorConfig) -> Storage:
    """The backend named by ``config.db``."""
    database = config.database
    if database.scheme == "sqlite":
        return SQLiteStorage(database.target, durability=config.durability)
    raise ConfigError(
        "the PostgreSQL backend is not available yet; use a sqlite:///path/to/file.db URL"
    )


__all__ = ["SQLiteStorage", "Storage", "open_storage"]
