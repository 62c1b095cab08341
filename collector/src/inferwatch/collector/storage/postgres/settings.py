"""``SettingsStore`` on PostgreSQL: model settings put through the API, and detector state."""

from __future__ import annotations

import json
from typing import Any

from inferwatch.collector.storage.postgres.database import Database


class PostgresSettingsStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def model_configs(self) -> dict[str, dict[str, Any]]:
        with self._db.reader() as db:
            rows = db.execute("SELECT model, settings FROM model_configs").fetchall()
        return {model: json.loads(settings) for model, settings in rows}

    def put_model_config(self, model: str, settings: dict[str, Any]) -> None:
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO model_configs (model, settings) VALUES (%s, %s) "
                "ON CONFLICT (model) DO UPDATE SET settings = excluded.settings",
                (model, json.dumps(settings)),
            )

    def detector_state(self, model: str, version: str, name: str) -> bytes | None:
        with self._db.reader() as db:
            row = db.execute(
                "SELECT state FROM detector_states WHERE model = %s AND version = %s AND name = %s",
                (model, version, name),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def put_detector_state(self, model: str, version: str, name: str, state: bytes) -> None:
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO detector_states (model, version, name, state) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (model, version, name) DO UPDATE SET state = excluded.state",
                (model, version, name, state),
            )
