"""``OutboxStore`` on SQLite: the alert deliveries waiting for a final answer."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from inferwatch.collector.alerts.outbox import (
    STORED_COLUMNS,
    Delivery,
    stored_delivery,
    stored_values,
)
from inferwatch.collector.storage.sqlite.database import Database, marks

_FIELDS = ", ".join(STORED_COLUMNS)
_COLUMNS = f"id, {_FIELDS}"


class SQLiteOutbox:
    def __init__(self, database: Database) -> None:
        self._db = database

    def add(
        self, deliveries: Sequence[Delivery], limit: int, sparing: Collection[int] = ()
    ) -> list[Delivery]:
        spared, params = _not_in(sparing)
        with self._db.transaction() as db:
            db.executemany(
                f"INSERT INTO alert_outbox ({_FIELDS}) VALUES ({marks(len(STORED_COLUMNS))})",
                [stored_values(d) for d in deliveries],
            )
            (others,) = db.execute(
                f"SELECT COUNT(*) FROM alert_outbox WHERE {spared}", params
            ).fetchone()
            if others <= limit:
                return []
            dropped = [
                stored_delivery(row)
                for row in db.execute(
                    f"SELECT {_COLUMNS} FROM alert_outbox WHERE {spared} ORDER BY id LIMIT ?",
                    (*params, others - limit),
                )
            ]
            db.executemany("DELETE FROM alert_outbox WHERE id = ?", [(d.id,) for d in dropped])
        return dropped

    def pending(self, limit: int, excluding: Collection[int] = ()) -> list[Delivery]:
        spared, params = _not_in(excluding)
        rows = self._db.reader().execute(
            f"SELECT {_COLUMNS} FROM alert_outbox WHERE {spared} ORDER BY due_ms, id LIMIT ?",
            (*params, limit),
        )
        return [stored_delivery(row) for row in rows]

    def retry_at(self, delivery_id: int, attempts: int, due_ms: int) -> None:
        with self._db.transaction() as db:
            db.execute(
                "UPDATE alert_outbox SET attempts = ?, due_ms = ? WHERE id = ?",
                (attempts, due_ms, delivery_id),
            )

    def remove(self, delivery_id: int) -> bool:
        with self._db.transaction() as db:
            return db.execute("DELETE FROM alert_outbox WHERE id = ?", (delivery_id,)).rowcount > 0

    def count(self) -> int:
        (count,) = self._db.reader().execute("SELECT COUNT(*) FROM alert_outbox").fetchone()
        return int(count)


def _not_in(ids: Collection[int]) -> tuple[str, tuple[int, ...]]:
    if not ids:
        return "1 = 1", ()
    return f"id NOT IN ({marks(len(ids))})", tuple(ids)
