"""The outbox: each webhook POST of an alert event, kept in the database until it is answered.

A delivery is stored with the alert change it announces, in the same transaction
(``AlertStore.together``), with everything needed to send it: the webhook's URL and timeout, the
body as the notifier made it, the ``Idempotency-Key`` and the retry settings. The sender
(``AlertDispatcher``) takes the deliveries due, sends them, and removes each on a final answer,
or stores when to try again; so a collector killed with deliveries pending, or a leader that
fails over, leaves them for the next start or the next leader. ``MemoryOutbox`` keeps them in
a list, for a dispatcher without a database.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST of one alert event to one webhook. ``id`` is None until stored."""

    key: str  # the Idempotency-Key: the same for every attempt, from whichever collector
    alert_id: int
    event: str
    url: str
    body: str  # JSON text
    timeout_seconds: float
    # The retry engine's settings (inferwatch.retry.RetryPolicy) when it was stored.
    max_retries: int
    backoff_seconds: float
    max_backoff_seconds: float
    # Attempts made so far, and when the next one is due (ms since the epoch).
    attempts: int = 0
    due_ms: int = 0
    id: int | None = None


# The columns a database keeps a delivery in, after its id: Delivery's fields, in their order.
STORED_COLUMNS = (
    "idempotency_key",
    "alert_id",
    "event",
    "url",
    "body",
    "timeout_seconds",
    "max_retries",
    "backoff_seconds",
    "max_backoff_seconds",
    "attempts",
    "due_ms",
)


def stored_values(d: Delivery) -> tuple[Any, ...]:
    """The values of ``STORED_COLUMNS``."""
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


def stored_delivery(row: Sequence[Any]) -> Delivery:
    """The delivery of a row: its id, then ``STORED_COLUMNS``."""
    delivery_id, *values = row
    return replace(Delivery(*values), id=delivery_id)


class OutboxStore(Protocol):
    """Deliveries waiting for a final answer. Implementations must be thread-safe; inside an
    ``AlertStore.together`` block of the same database, ``add`` joins its transaction."""

    def add(
        self, deliveries: Sequence[Delivery], limit: int, sparing: Collection[int] = ()
    ) -> list[Delivery]:
        """Store ``deliveries``; then, while more than ``limit`` rows besides those of
        ``sparing`` (ids being sent) are stored, remove the oldest: return those removed."""
        ...

    def pending(self, limit: int, excluding: Collection[int] = ()) -> list[Delivery]:
        """Up to ``limit`` stored deliveries not in ``excluding``, the soonest due first."""
        ...

    def retry_at(self, delivery_id: int, attempts: int, due_ms: int) -> None:
        """Record an attempt that will be retried at ``due_ms``."""
        ...

    def remove(self, delivery_id: int) -> bool:
        """Forget a delivery that got its final answer; False if it was not stored (any more)."""
        ...

    def count(self) -> int: ...


class MemoryOutbox:
    """An ``OutboxStore`` in memory: what it holds goes with the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, Delivery] = {}
        self._next_id = 1

    def add(
        self, deliveries: Sequence[Delivery], limit: int, sparing: Collection[int] = ()
    ) -> list[Delivery]:
        with self._lock:
            for delivery in deliveries:
                self._rows[self._next_id] = replace(delivery, id=self._next_id)
                self._next_id += 1
            others = [i for i in self._rows if i not in sparing]
            return [self._rows.pop(i) for i in others[: max(0, len(others) - limit)]]

    def pending(self, limit: int, excluding: Collection[int] = ()) -> list[Delivery]:
        with self._lock:
            rows = [d for i, d in self._rows.items() if i not in excluding]
        rows.sort(key=lambda d: (d.due_ms, d.id or 0))
        return rows[:limit]

    def retry_at(self, delivery_id: int, attempts: int, due_ms: int) -> None:
        with self._lock:
            row = self._rows.get(delivery_id)
            if row is not None:
                self._rows[delivery_id] = replace(row, attempts=attempts, due_ms=due_ms)

    def remove(self, delivery_id: int) -> bool:
        with self._lock:
            return self._rows.pop(delivery_id, None) is not None

    def count(self) -> int:
        with self._lock:
            return len(self._rows)

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._rows)
            self._rows.clear()
        return cleared
