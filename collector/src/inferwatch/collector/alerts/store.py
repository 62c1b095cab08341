"""What alerting keeps in a database (the port ``AlertEngine`` and the alerts endpoint use;
``inferwatch.collector.storage`` has the backends), and an in-memory store.

A store keeps, per (model, version), each check's recent outcomes (``CheckHistory``) and the
alerts. The engine reads both with ``load`` and writes one window's changes with ``save``, in one
transaction, so a crash never leaves a streak counted without its alert or the reverse; inside
``together``, the webhook deliveries of the changes (``alerts.outbox``) are stored in that
transaction too, so a crash never leaves a change unannounced. Records
go through ``to_dict``/``from_dict`` (JSON-ready), which is what a SQL store puts in a column.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Protocol

from inferwatch.collector.alerts.model import Alert, CheckHistory


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    """What the engine needs of one (model, version)."""

    # The open alert of each check that has one.
    open_alerts: Mapping[str, Alert]
    checks: Mapping[str, CheckHistory]


class AlertStore(Protocol):
    """Alerts and each check's recent outcomes. Implementations must be thread-safe.

    A (model, version) has at most one open alert per check: saving a second one fails, and the
    transaction with it.
    """

    def load(self, model: str, version: str) -> AlertSnapshot: ...

    def together(self) -> AbstractContextManager[None]:
        """A block whose saves and outbox writes (this thread's) are one transaction: all are
        stored, or none (an exception ends it). Inside a block of the leader's fence, part of
        its transaction."""
        ...

    def save(
        self,
        model: str,
        version: str,
        checks: Mapping[str, CheckHistory],
        alerts: Sequence[Alert],
    ) -> list[Alert]:
        """In one transaction: replace these checks' histories, insert the alerts whose id is
        None and overwrite the others; return ``alerts`` in order, with their ids."""
        ...

    def find(self, model: str, state: str | None = None) -> list[Alert]:
        """The model's alerts, optionally only ``open`` or ``resolved`` ones, oldest first."""
        ...

    def get(self, alert_id: int) -> Alert | None: ...

    def open_alerts(self) -> list[Alert]:
        """Every model's open alerts, oldest first."""
        ...


class MemoryAlertStore:
    """An ``AlertStore`` in a dict; keeps records as JSON text, as a database would."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[tuple[str, str, str], str] = {}
        self._alerts: dict[int, str] = {}
        # (model, version, check) -> id of its open alert, so loading reads only those.
        self._open: dict[tuple[str, str, str], int] = {}

    def load(self, model: str, version: str) -> AlertSnapshot:
        with self._lock:
            checks = {
                check: CheckHistory.from_dict(json.loads(text))
                for (m, v, check), text in self._checks.items()
                if (m, v) == (model, version)
            }
            open_alerts = {
                check: Alert.from_dict(json.loads(self._alerts[alert_id]))
                for (m, v, check), alert_id in self._open.items()
                if (m, v) == (model, version)
            }
        return AlertSnapshot(open_alerts, checks)

    def together(self) -> AbstractContextManager[None]:
        # Nothing here outlives the process: there is no crash to be atomic across.
        return nullcontext()

    def save(
        self,
        model: str,
        version: str,
        checks: Mapping[str, CheckHistory],
        alerts: Sequence[Alert],
    ) -> list[Alert]:
        saved: list[Alert] = []
        with self._lock:
            # Written to copies, kept only if every alert fits: one transaction.
            stored_alerts, open_ids = dict(self._alerts), dict(self._open)
            for alert in alerts:
                alert_id = len(stored_alerts) + 1 if alert.id is None else alert.id
                stored = replace(alert, id=alert_id)
                stored_alerts[alert_id] = json.dumps(stored.to_dict())
                key = (model, version, stored.check)
                if stored.state == "open":
                    if open_ids.setdefault(key, alert_id) != alert_id:
                        raise ValueError(f"check {stored.check!r} has an open alert already")
                elif open_ids.get(key) == alert_id:
                    del open_ids[key]
                saved.append(stored)
            self._alerts, self._open = stored_alerts, open_ids
            for check, history in checks.items():
                self._checks[model, version, check] = json.dumps(history.to_dict())
        return saved

    def find(self, model: str, state: str | None = None) -> list[Alert]:
        with self._lock:
            alerts = [Alert.from_dict(json.loads(text)) for _, text in sorted(self._alerts.items())]
        return [a for a in alerts if a.model == model and state in (None, a.state)]

    def get(self, alert_id: int) -> Alert | None:
        with self._lock:
            text = self._alerts.get(alert_id)
        return None if text is None else Alert.from_dict(json.loads(text))

    def open_alerts(self) -> list[Alert]:
        with self._lock:
            texts = [self._alerts[i] for i in sorted(self._open.values())]
        return [Alert.from_dict(json.loads(text)) for text in texts]
