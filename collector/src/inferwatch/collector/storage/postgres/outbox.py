"""``OutboxStore`` on PostgreSQL: the alert deliveries waiting for a final answer, shared by the
replicas (any stores, the leader sends)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from inferwatch.collector.alerts.outbox import (
    STORED_COLUMNS,
    Delivery,
    stored_delivery,
    stored_values,
)
from inferwatch.collector.storage.postgres.database import Database

_FIELDS = ", ".join(STORED_COLUMNS)
_COLUMNS = f"id, {_FIELDS}"
_MARKS = ", ".join(["%s"] * len(STORED_COLUMNS))


class PostgresOutbox:
    def __init__(self, database: Database) -> None:
        self._db = database

    def add(
        self, deliveries: Sequence[Delivery], limit: int, sparing: Collection[int] = ()
    ) -> list[Delivery]:
        spared = list(sparing)
        with self._db.transaction() as db:
            with db.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO alert_outbox ({_FIELDS}) VALUES ({_MARKS})",
                    [stored_values(d) for d in deliveries],
                )
            row = db.execute(
                "SELECT COUNT(*) FROM alert_outbox WHERE id <> ALL(%s)", (spared,)
            ).fetchone()
            assert row is not None
            if row[0] <= limit:
                return []
            rows = db.execute(
                f"DELETE FROM alert_outbox WHERE id IN (SELECT id FROM alert_outbox "
                f"WHERE id <> ALL(%s) ORDER BY id LIMIT %s) RETURNING {_COLUMNS}",
                (spared, row[0] - limit),
            ).fetchall()
        return sorted(map(stored_delivery, rows), key=lambda d: d.id or 0)

    def pending(self, limit: int, excluding: Collection[int] = ()) -> list[Delivery]:
        with self._db.reader() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM alert_outbox WHERE id <> ALL(%s) "
                "ORDER BY due_ms, id LIMIT %s",
                (list(excluding), limit),
            ).fetchall()
        return [stored_delivery(row) for row in rows]

    def retry_at(self, delivery_id: int, attempts: int, due_ms: int) -> None:
        with self._db.transaction() as db:
            db.execute(
                "UPDATE alert_outbox SET attempts = %s, due_ms = %s WHERE id = %s",
                (attempts, due_ms, delivery_id),
            )

    def remove(self, delivery_id: int) -> bool:
        with self._db.transaction() as db:
            return db.execute("DELETE FROM alert_outbox WHERE id = %s", (delivery_id,)).rowcount > 0

    def count(self) -> int:
        with self._db.reader() as db:
            row = db.execute("SELECT COUNT(*) FROM alert_outbox").fetchone()
        assert row is not None
        return int(row[0])
