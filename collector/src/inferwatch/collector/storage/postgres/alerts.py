"""``AlertStore`` on PostgreSQL: alerts (at most one open per check, by a unique index) and each
check's recent outcomes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import psycopg

from inferwatch.collector.alerts.model import Alert, CheckHistory, Evidence
from inferwatch.collector.alerts.store import AlertSnapshot
from inferwatch.collector.detectors.result import STORED, Result, Severity
from inferwatch.collector.storage.postgres.database import Database

_ALERT_FIELDS = (
    "model, version, check_name, severity, state, opened_ms, resolved_ms, updated_ms, message, "
    "window_id, last_window_id, evidence, findings, resolution, acknowledged_ms, acknowledged_by, "
    "silenced_until_ms, withheld, notified_ms"
)
_ALERT_COLUMNS = f"id, {_ALERT_FIELDS}"
# The longest a ``together`` block may wait between statements (a collector paused in it)
# before the server ends its session, and its locks with it.
_IDLE_TIMEOUT_S = 10.0
_MARKS = ", ".join(["%s"] * len(_ALERT_FIELDS.split(",")))
_ASSIGNMENTS = ", ".join(f"{name.strip()} = %s" for name in _ALERT_FIELDS.split(","))


class PostgresAlertStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def together(self) -> AbstractContextManager[None]:
        return self._db.together(_begin_nothing, idle_timeout_s=_IDLE_TIMEOUT_S)

    def load(self, model: str, version: str) -> AlertSnapshot:
        with self._db.reader() as db:
            histories = db.execute(
                "SELECT check_name, history FROM alert_checks WHERE model = %s AND version = %s",
                (model, version),
            ).fetchall()
            rows = db.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE model = %s AND version = %s "
                "AND state = 'open'",
                (model, version),
            ).fetchall()
        checks = {
            check: CheckHistory.from_dict(json.loads(history)) for check, history in histories
        }
        open_alerts = {alert.check: alert for alert in map(_alert, rows)}
        return AlertSnapshot(open_alerts, checks)

    def save(
        self,
        model: str,
        version: str,
        checks: Mapping[str, CheckHistory],
        alerts: Sequence[Alert],
    ) -> list[Alert]:
        saved: list[Alert] = []
        with self._db.transaction() as db, db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO alert_checks (model, version, check_name, history) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (model, version, check_name) "
                "DO UPDATE SET history = excluded.history",
                [
                    (model, version, check, json.dumps(history.to_dict()))
                    for check, history in sorted(checks.items())
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
                    row = db.execute(
                        f"INSERT INTO alerts ({_ALERT_FIELDS}) VALUES ({_MARKS}) RETURNING id",
                        fields,
                    ).fetchone()
                    assert row is not None
                    saved.append(replace(alert, id=row[0]))
                else:
                    db.execute(
                        f"UPDATE alerts SET {_ASSIGNMENTS} WHERE id = %s", (*fields, alert.id)
                    )
                    saved.append(alert)
        return saved

    def find(self, model: str, state: str | None = None) -> list[Alert]:
        sql = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE model = %s"
        params: list[Any] = [model]
        if state is not None:
            sql += " AND state = %s"
            params.append(state)
        with self._db.reader() as db:
            rows = db.execute(sql + " ORDER BY id", params).fetchall()
        return [_alert(row) for row in rows]

    def get(self, alert_id: int) -> Alert | None:
        with self._db.reader() as db:
            row = db.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = %s", (alert_id,)
            ).fetchone()
        return None if row is None else _alert(row)

    def open_alerts(self) -> list[Alert]:
        with self._db.reader() as db:
            rows = db.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE state = 'open' ORDER BY id"
            ).fetchall()
        return [_alert(row) for row in rows]


def _begin_nothing(conn: psycopg.Connection[Any]) -> None:
    pass


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
