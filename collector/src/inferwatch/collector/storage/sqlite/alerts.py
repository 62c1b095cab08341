"""``AlertStore`` on SQLite: alerts (at most one open per check, by a unique index) and each
check's recent outcomes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from inferwatch.collector.alerts.model import Alert, CheckHistory, Evidence
from inferwatch.collector.alerts.store import AlertSnapshot
from inferwatch.collector.detectors.result import STORED, Result, Severity
from inferwatch.collector.storage.sqlite.database import Database, marks

_ALERT_FIELDS = (
    "model, version, check_name, severity, state, opened_ms, resolved_ms, updated_ms, message, "
    "window_id, last_window_id, evidence, findings, resolution, acknowledged_ms, acknowledged_by, "
    "silenced_until_ms, withheld, notified_ms"
)
_ALERT_COLUMNS = f"id, {_ALERT_FIELDS}"
_ASSIGNMENTS = ", ".join(f"{name.strip()} = ?" for name in _ALERT_FIELDS.split(","))


class SQLiteAlertStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def together(self) -> AbstractContextManager[None]:
        return self._db.together()

    def load(self, model: str, version: str) -> AlertSnapshot:
        db = self._db.reader()
        checks = {
            check: CheckHistory.from_dict(json.loads(history))
            for check, history in db.execute(
                "SELECT check_name, history FROM alert_checks WHERE model = ? AND version = ?",
                (model, version),
            )
        }
        open_alerts = {
            alert.check: alert
            for alert in map(
                _alert,
                db.execute(
                    f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE model = ? AND version = ? "
                    "AND state = 'open'",
                    (model, version),
                ),
            )
        }
        return AlertSnapshot(open_alerts, checks)

    def save(
        self,
        model: str,
        version: str,
        checks: Mapping[str, CheckHistory],
        alerts: Sequence[Alert],
    ) -> list[Alert]:
        saved: list[Alert] = []
        with self._db.transaction() as db:
            db.executemany(
                "INSERT INTO alert_checks (model, version, check_name, history) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (model, version, check_name) "
                "DO UPDATE SET history = excluded.history",
                [
                    (model, version, check, json.dumps(history.to_dict()))
                    for check, history in checks.items()
                ],
            )
            for alert in alerts:
                fields = (
                    alert.model,
                    alert.version,
                    alert.check,
                    alert.severity,
                    alert.state,
                    alert.opened_ms,
                    alert.resolved_ms,
                    alert.updated_ms,
                    alert.message,
                    alert.window_id,
                    alert.last_window_id,
                    json.dumps([e.to_dict() for e in alert.evidence]),
                    json.dumps([f.model_dump(mode="json") for f in alert.findings]),
                    alert.resolution,
                    alert.acknowledged_ms,
                    alert.acknowledged_by,
                    alert.silenced_until_ms,
                    alert.withheld,
                    alert.notified_ms,
                )
                if alert.id is None:
                    alert_id = db.execute(
                        f"INSERT INTO alerts ({_ALERT_FIELDS}) VALUES ({marks(len(fields))})",
                        fields,
                    ).lastrowid
                    assert alert_id is not None
                    saved.append(replace(alert, id=alert_id))
                else:
                    db.execute(
                        f"UPDATE alerts SET {_ASSIGNMENTS} WHERE id = ?", (*fields, alert.id)
                    )
                    saved.append(alert)
        return saved

    def find(self, model: str, state: str | None = None) -> list[Alert]:
        sql = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE model = ?"
        params: list[Any] = [model]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return [_alert(row) for row in self._db.reader().execute(sql + " ORDER BY id", params)]

    def get(self, alert_id: int) -> Alert | None:
        row = (
            self._db.reader()
            .execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
            .fetchone()
        )
        return None if row is None else _alert(row)

    def open_alerts(self) -> list[Alert]:
        rows = self._db.reader().execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE state = 'open' ORDER BY id"
        )
        return [_alert(row) for row in rows]


def _alert(row: tuple[Any, ...]) -> Alert:
    (aid, model, version, check, severity, state, opened, resolved, updated) = row[:9]
    message, window_id, last_window_id, evidence, findings = row[9:14]
    resolution, acknowledged_ms, acknowledged_by, silenced_until_ms, withheld, notified = row[14:]
    return Alert(
        aid,
        model,
        version,
        check,
        Severity(severity),
        state,
        opened,
        resolved,
        updated,
        message,
        window_id,
        last_window_id,
        tuple(Evidence.from_dict(e) for e in json.loads(evidence)),
        tuple(Result.model_validate(f, context=STORED) for f in json.loads(findings)),
        resolution,
        acknowledged_ms,
        acknowledged_by,
        silenced_until_ms,
        withheld,
        notified,
    )
