"""``ReferenceStore`` on PostgreSQL: uploads with their parts, and reference profiles."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from inferwatch.collector.reference.store import ReferenceRecord, UploadRecord
from inferwatch.collector.storage.postgres.database import Database


class PostgresReferenceStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def create_upload(self, model: str, version: str, task: str | None, now_ms: int) -> str:
        upload_id = uuid.uuid4().hex
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO uploads (upload_id, model, version, task, created_ms) "
                "VALUES (%s, %s, %s, %s, %s)",
                (upload_id, model, version, task, now_ms),
            )
        return upload_id

    def upload(self, upload_id: str) -> UploadRecord | None:
        with self._db.reader() as db:
            row = db.execute(
                "SELECT upload_id, model, version, task, created_ms FROM uploads "
                "WHERE upload_id = %s",
                (upload_id,),
            ).fetchone()
        return UploadRecord(*row) if row else None

    def put_part(self, upload_id: str, part: int, rows: int, data: bytes) -> None:
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO upload_parts (upload_id, part, rows, data) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (upload_id, part) DO UPDATE SET rows = excluded.rows, "
                "data = excluded.data",
                (upload_id, part, rows, data),
            )

    def parts(self, upload_id: str) -> Iterator[bytes]:
        with self._db.reader() as db:
            numbers = [
                part
                for (part,) in db.execute(
                    "SELECT part FROM upload_parts WHERE upload_id = %s ORDER BY part",
                    (upload_id,),
                )
            ]
        for part in numbers:
            # A connection a part: the caller may take its time between parts.
            with self._db.reader() as db:
                row = db.execute(
                    "SELECT data FROM upload_parts WHERE upload_id = %s AND part = %s",
                    (upload_id, part),
                ).fetchone()
            if row is not None:
                yield bytes(row[0])

    def delete_upload(self, upload_id: str) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM upload_parts WHERE upload_id = %s", (upload_id,))
            db.execute("DELETE FROM uploads WHERE upload_id = %s", (upload_id,))

    def put(self, reference: ReferenceRecord) -> None:
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO reference_profiles (model, version, source, rows, created_ms, "
                "profile, details) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (model, version) DO UPDATE SET source = excluded.source, "
                "rows = excluded.rows, "
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
        with self._db.reader() as db:
            row = db.execute(
                "SELECT model, version, source, rows, created_ms, profile, details "
                "FROM reference_profiles WHERE model = %s AND version = %s",
                (model, version),
            ).fetchone()
        if row is None:
            return None
        model_, version_, source, rows, created_ms, profile, details = row
        return ReferenceRecord(
            model_, version_, source, rows, created_ms, bytes(profile), json.loads(details)
        )
