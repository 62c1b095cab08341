"""``OutboxStore`` on SQLite: the alert deliveries waiting for a final answer."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from inferwatch.collector.alerts.outbox import Delivery
from inferwatch.collector.storage.sqlite.database import Database, marks

_FIELDS = (
    "idempotency_key, alert_id, event, url, body, timeout_seconds, max_retries, "
    "backoff_seconds, max_backoff_seconds, attempts, due_ms"
)
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
                f"INSERT INTO alert_outbox ({_FIELDS}) VALUES ({marks(11)})",
                [_fields(d) for d in deliveries],
            )
            (others,) = db.execute(
                f"SELECT COUNT(*) FROM alert_outbox WHERE {spared}", params
            ).fetchone()
            if others <= limit:
                return []
            dropped = [
                _delivery(row)
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
        return [_delivery(row) for row in rows]

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


def _fields(d: Delivery) -> tuple[Any, ...]:
    return (
        d.key,
        d.alert_id,
        d.event,
        d.url,
        d.body,
        d.timeout_seconds,
        d.max_retries,
        d.backoff_seconds,
        d.max_backoff_seconds,
        d.attempts,
        d.due_ms,
    )


def _delivery(row: tuple[Any, ...]) -> Delivery:
    (delivery_id, key, alert_id, event, url, body, timeout, retries, backoff, max_backoff) = row[
        :10
    ]
    attempts, due_ms = row[10:]
    return Delivery(
        key,
        alert_id,
        event,
        url,
        body,
        timeout,
        retries,
        backoff,
        max_backoff,
        attempts,
        due_ms,
        delivery_id,
    )
