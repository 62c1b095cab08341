"""``ReferenceStore`` on SQLite: uploads with their parts, and reference profiles."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from inferwatch.collector.reference.store import ReferenceRecord, UploadRecord
from inferwatch.collector.storage.sqlite.database import Database


class SQLiteReferenceStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def create_upload(self, model: str, version: str, task: str | None, now_ms: int) -> str:
        upload_id = uuid.uuid4().hex
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO uploads (upload_id, model, version, task, created_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (upload_id, model, version, task, now_ms),
            )
        return upload_id

    def upload(self, upload_id: str) -> UploadRecord | None:
        row = (
            self._db.reader()
            .execute(
                "SELECT upload_id, model, version, task, created_ms FROM uploads "
                "WHERE upload_id = ?",
                (upload_id,),
            )
            .fetchone()
        )
        return UploadRecord(*row) if row else None

    def put_part(self, upload_id: str, part: int, rows: int, data: bytes) -> None:
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO upload_parts (upload_id, part, rows, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (upload_id, part) DO UPDATE SET rows = excluded.rows, "
                "data = excluded.data",
                (upload_id, part, rows, data),
            )

    def parts(self, upload_id: str) -> Iterator[bytes]:
        db = self._db.reader()
        numbers = [
            part
            for (part,) in db.execute(
                "SELECT part FROM upload_parts WHERE upload_id = ? ORDER BY part", (upload_id,)
            )
        ]
        for part in numbers:
            row = db.execute(
                "SELECT data FROM upload_parts WHERE upload_id = ? AND part = ?",
                (upload_id, part),
            ).fetchone()
            if row is not None:
                yield bytes(row[0])

    def delete_upload(self, upload_id: str) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM upload_parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))

    def put(self, reference: ReferenceRecord) -> None:
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO reference_profiles (model, version, source, rows, created_ms, "
                "profile, details) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, version) "
                "DO UPDATE SET source = excluded.source, rows = excluded.rows, "
                "created_ms = excluded.created_ms, profile = excluded.profile, "
                "details = excluded.details",
                (
                    reference.model,
                    reference.version,
                    reference.source,
                    reference.rows,
                    reference.created_ms,
                    reference.profile,
                    json.dumps(reference.details),
                ),
            )

    def get(self, model: str, version: str) -> ReferenceRecord | None:
        row = (
            self._db.reader()
            .execute(
                "SELECT model, version, source, rows, created_ms, profile, details "
                "FROM reference_profiles WHERE model = ? AND version = ?",
                (model, version),
            )
            .fetchone()
        )
        if row is None:
            return None
        model_, version_, source, rows, created_ms, profile, details = row
        return ReferenceRecord(
            model_, version_, source, rows, created_ms, bytes(profile), json.loads(details)
        )
