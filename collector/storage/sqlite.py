"""The SQLite backend: one file in WAL mode, one serialized writer, a reader per thread.

Durability: ``durability="full"`` runs ``synchronous=FULL``, so a committed transaction (the
ingest worker's group commit) is on disk before the collector answers 200 and survives power
loss; ``"normal"`` skips that fsync, surviving a process crash but possibly losing the last
commits on power loss, for more throughput on slow disks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inferwatch.collector.storage.base import (
    AlertRecord,
    IncomingBatch,
    IngestOutcome,
    LabelledPair,
    LabelOutcome,
    LabelRecord,
    PruneOutcome,
    ReferenceRecord,
    StoredBatch,
    UploadRecord,
    WindowKey,
    WindowRecord,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    rows INTEGER NOT NULL DEFAULT 0,
    labelled INTEGER NOT NULL DEFAULT 0,
    needs_eval INTEGER NOT NULL DEFAULT 0,
    results TEXT,
    details TEXT,
    evaluated_ms INTEGER,
    UNIQUE (model, version, start_ms, end_ms)
);
CREATE INDEX IF NOT EXISTS windows_by_state ON windows (closed, end_ms);
CREATE TABLE IF NOT EXISTS window_states (
    window_id INTEGER NOT NULL,
    instance TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (window_id, instance)
);
CREATE TABLE IF NOT EXISTS raw_batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    window_id INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_spans (
    key BLOB PRIMARY KEY,
    seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS predictions (
    model TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    window_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    value_text TEXT,
    value_num REAL,
    label_text TEXT,
    label_num REAL,
    label_ms INTEGER,
    label_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (model, prediction_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_by_window ON predictions (window_id);
CREATE TABLE IF NOT EXISTS pending_labels (
    model TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    value_text TEXT NOT NULL,
    value_num REAL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (model, prediction_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS label_counters (
    model TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (model, name)
);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    task TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS upload_parts (
    upload_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (upload_id, part)
);
CREATE TABLE IF NOT EXISTS reference_profiles (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    rows INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    profile BLOB NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE TABLE IF NOT EXISTS model_configs (
    model TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    check_name TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    message TEXT NOT NULL,
    window_id INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_by_model ON alerts (model, state);
"""

_WINDOW_COLUMNS = (
    "id, model, version, start_ms, end_ms, closed, requests, rows, labelled, needs_eval, "
    "results, details, evaluated_ms"
)
# Rows per IN (...) list: far below SQLite's variable limit, large enough to be few queries.
_CHUNK = 5000


class SQLiteStorage:
    """``Storage`` on one SQLite file. Writes go through one connection under a lock."""

    def __init__(self, path: str | Path, *, durability: str = "full") -> None:
        self.path = str(path)
        self._synchronous = "FULL" if durability == "full" else "NORMAL"
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)
        self._window_ids: dict[WindowKey, int] = {}

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _write(self) -> _Transaction:
        return _Transaction(self._writer, self._write_lock)

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # Ingest and window state

    def ingest(self, batches: Sequence[IncomingBatch], now_ms: int) -> IngestOutcome:
        stored: list[StoredBatch | None] = []
        counts: dict[int, list[int]] = {}
        predictions: list[tuple[Any, ...]] = []
        with self._write() as db, self._forget_windows_on_error():
            for batch in batches:
                cursor = db.execute(
                    "INSERT INTO seen_spans (key, seen_ms) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (batch.dedupe_key, now_ms),
                )
                if cursor.rowcount == 0:
                    stored.append(None)
                    continue
                window_id = self._window_id(db, batch.window)
                seq = db.execute(
                    "INSERT INTO raw_batches (window_id, payload) VALUES (?, ?)",
                    (window_id, batch.payload),
                ).lastrowid
                assert seq is not None
                stored.append(StoredBatch(seq, window_id, batch.payload))
                count = counts.setdefault(window_id, [0, 0])
                count[0] += 1
                count[1] += batch.rows
                model = batch.window.model
                predictions.extend(
                    (model, p.prediction_id, window_id, p.ts_ms, p.value_text, p.value_num)
                    for p in batch.predictions
                )
            db.executemany(
                "UPDATE windows SET requests = requests + ?, rows = rows + ?, "
                "needs_eval = needs_eval + closed WHERE id = ?",
                [(n, rows, wid) for wid, (n, rows) in counts.items()],
            )
            db.executemany(
                "INSERT INTO predictions (model, prediction_id, window_id, ts_ms, value_text, "
                "value_num) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                predictions,
            )
            joined, windows = self._join_pending(db, predictions)
        return IngestOutcome(stored, windows, joined)

    @contextmanager
    def _forget_windows_on_error(self) -> Iterator[None]:
        # A rolled-back transaction may have created windows whose ids were cached.
        try:
            yield
        except BaseException:
            self._window_ids.clear()
            raise

    def _window_id(self, db: sqlite3.Connection, key: WindowKey) -> int:
        window_id = self._window_ids.get(key)
        if window_id is None:
            fields = (key.model, key.version, key.start_ms, key.end_ms)
            db.execute(
                "INSERT INTO windows (model, version, start_ms, end_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                fields,
            )
            (window_id,) = db.execute(
                "SELECT id FROM windows WHERE model = ? AND version = ? AND start_ms = ? "
                "AND end_ms = ?",
                fields,
            ).fetchone()
            self._window_ids[key] = window_id
        return window_id

    def _join_pending(
        self, db: sqlite3.Connection, predictions: list[tuple[Any, ...]]
    ) -> tuple[int, set[int]]:
        """Labels that arrived before their predictions meet them now."""
        by_model: dict[str, dict[str, int]] = {}
        for model, prediction_id, window_id, *_ in predictions:
            by_model.setdefault(model, {})[prediction_id] = window_id
        joined = 0
        windows: Counter[int] = Counter()
        for model, ids in by_model.items():
            if (
                db.execute(
                    "SELECT 1 FROM pending_labels WHERE model = ? LIMIT 1", (model,)
                ).fetchone()
                is None
            ):
                continue
            keys = list(ids)
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                found = db.execute(
                    "SELECT prediction_id, value_text, value_num, received_ms FROM pending_labels "
                    f"WHERE model = ? AND prediction_id IN ({_marks(len(chunk))})",
                    (model, *chunk),
                ).fetchall()
                if not found:
                    continue
                db.executemany(
                    "UPDATE predictions SET label_text = ?, label_num = ?, label_ms = ?, "
                    "label_count = label_count + 1 WHERE model = ? AND prediction_id = ?",
                    [(text, num, ms, model, pid) for pid, text, num, ms in found],
                )
                db.executemany(
                    "DELETE FROM pending_labels WHERE model = ? AND prediction_id = ?",
                    [(model, pid) for pid, *_ in found],
                )
                joined += len(found)
                windows.update(ids[pid] for pid, *_ in found)
        self._add_labelled(db, windows)
        return joined, set(windows)

    @staticmethod
    def _add_labelled(db: sqlite3.Connection, windows: Counter[int]) -> None:
        db.executemany(
            "UPDATE windows SET labelled = labelled + ?, needs_eval = needs_eval + closed "
            "WHERE id = ?",
            [(n, wid) for wid, n in windows.items()],
        )

    def pending_batches(self) -> Iterator[StoredBatch]:
        cursor = self._reader().execute(
            "SELECT seq, window_id, payload FROM raw_batches ORDER BY seq"
        )
        while rows := cursor.fetchmany(256):
            for seq, window_id, payload in rows:
                yield StoredBatch(seq, window_id, payload)

    def checkpoint(self, instance: str, states: Mapping[int, bytes], upto_seq: int) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO window_states (window_id, instance, state) VALUES (?, ?, ?) "
                "ON CONFLICT (window_id, instance) DO UPDATE SET state = excluded.state",
                [(wid, instance, state) for wid, state in states.items()],
            )
            db.execute("DELETE FROM raw_batches WHERE seq <= ?", (upto_seq,))

    def window_states(self, window_id: int) -> dict[str, bytes]:
        rows = self._reader().execute(
            "SELECT instance, state FROM window_states WHERE window_id = ?", (window_id,)
        )
        return {instance: bytes(state) for instance, state in rows}

    # Windows

    def window(self, model: str, window_id: int) -> WindowRecord | None:
        row = (
            self._reader()
            .execute(
                f"SELECT {_WINDOW_COLUMNS} FROM windows WHERE model = ? AND id = ?",
                (model, window_id),
            )
            .fetchone()
        )
        return _window(row) if row else None

    def windows(
        self,
        model: str | None = None,
        version: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        closed: bool | None = None,
        needs_eval: bool | None = None,
        limit: int | None = None,
    ) -> list[WindowRecord]:
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("model = ?", model),
            ("version = ?", version),
            ("end_ms > ?", start_ms),
            ("start_ms < ?", end_ms),
            ("closed = ?", None if closed is None else int(closed)),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        if needs_eval is not None:
            where.append("needs_eval > 0" if needs_eval else "needs_eval = 0")
        sql = f"SELECT {_WINDOW_COLUMNS} FROM windows"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_ms, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_window(row) for row in self._reader().execute(sql, params)]

    def mark_for_evaluation(self, window_ids: set[int]) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE windows SET needs_eval = needs_eval + 1 WHERE id = ?",
                [(wid,) for wid in window_ids],
            )

    def save_evaluation(
        self,
        window_id: int,
        results: list[dict[str, Any]],
        details: dict[str, Any],
        now_ms: int,
        *,
        close: bool,
        marks_seen: int = 0,
    ) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE windows SET results = ?, details = ?, evaluated_ms = ?, "
                "closed = MAX(closed, ?), needs_eval = MAX(needs_eval - ?, 0) WHERE id = ?",
                (
                    json.dumps(results),
                    json.dumps(details),
                    now_ms,
                    int(close),
                    marks_seen,
                    window_id,
                ),
            )

    def models(self) -> list[dict[str, Any]]:
        rows = self._reader().execute(
            "SELECT model, version, COUNT(*), SUM(rows), SUM(labelled), MIN(start_ms), "
            "MAX(end_ms) FROM windows GROUP BY model, version ORDER BY model, version"
        )
        models: dict[str, dict[str, Any]] = {}
        for model, version, windows, rows_, labelled, first, last in rows:
            entry = models.setdefault(model, {"model": model, "versions": []})
            entry["versions"].append(
                {
                    "version": version,
                    "windows": windows,
                    "rows": rows_,
                    "labelled": labelled,
                    "first_ms": first,
                    "last_ms": last,
                }
            )
        for model in self.model_configs():
            models.setdefault(model, {"model": model, "versions": []})
        return [models[name] for name in sorted(models)]

    # Labels

    def apply_labels(self, model: str, labels: Sequence[LabelRecord], now_ms: int) -> LabelOutcome:
        latest = {label.prediction_id: label for label in labels}
        replaced = len(labels) - len(latest)
        joined = pending = 0
        windows: Counter[int] = Counter()
        keys = list(latest)
        with self._write() as db:
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                found = {
                    pid: (window_id, count)
                    for pid, window_id, count in db.execute(
                        "SELECT prediction_id, window_id, label_count FROM predictions "
                        f"WHERE model = ? AND prediction_id IN ({_marks(len(chunk))})",
                        (model, *chunk),
                    )
                }
                db.executemany(
                    "UPDATE predictions SET label_text = ?, label_num = ?, label_ms = ?, "
                    "label_count = label_count + 1 WHERE model = ? AND prediction_id = ?",
                    [
                        (latest[pid].value_text, latest[pid].value_num, now_ms, model, pid)
                        for pid in found
                    ],
                )
                for window_id, count in found.values():
                    if count:
                        replaced += 1
                    else:
                        windows[window_id] += 1
                joined += len(found)
                waiting = [pid for pid in chunk if pid not in found]
                if not waiting:
                    continue
                (already,) = db.execute(
                    "SELECT COUNT(*) FROM pending_labels "
                    f"WHERE model = ? AND prediction_id IN ({_marks(len(waiting))})",
                    (model, *waiting),
                ).fetchone()
                replaced += already
                pending += len(waiting)
                db.executemany(
                    "INSERT INTO pending_labels (model, prediction_id, value_text, value_num, "
                    "received_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (model, prediction_id) DO "
                    "UPDATE SET value_text = excluded.value_text, value_num = excluded.value_num, "
                    "received_ms = excluded.received_ms",
                    [
                        (model, pid, latest[pid].value_text, latest[pid].value_num, now_ms)
                        for pid in waiting
                    ],
                )
            self._add_labelled(db, windows)
            self._bump(db, model, {"accepted": len(labels), "replaced": replaced})
        return LabelOutcome(len(labels), joined, pending, replaced, set(windows))

    @staticmethod
    def _bump(db: sqlite3.Connection, model: str, counts: Mapping[str, int]) -> None:
        db.executemany(
            "INSERT INTO label_counters (model, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (model, name) DO UPDATE SET value = value + excluded.value",
            [(model, name, n) for name, n in counts.items() if n],
        )

    def labelled_pairs(self, window_id: int) -> list[LabelledPair]:
        rows = self._reader().execute(
            "SELECT value_text, value_num, label_text, label_num, MAX(label_ms - ts_ms, 0) "
            "FROM predictions WHERE window_id = ? AND label_count > 0",
            (window_id,),
        )
        return [LabelledPair(*row) for row in rows]

    def label_counters(self, model: str) -> dict[str, int]:
        db = self._reader()
        counters = dict(
            db.execute("SELECT name, value FROM label_counters WHERE model = ?", (model,))
        )
        (waiting,) = db.execute(
            "SELECT COUNT(*) FROM pending_labels WHERE model = ?", (model,)
        ).fetchone()
        return {
            "accepted": counters.get("accepted", 0),
            "replaced": counters.get("replaced", 0),
            "expired": counters.get("expired", 0),
            "pending": waiting,
        }

    def prune(
        self, now_ms: int, prediction_horizon_ms: int, dedupe_horizon_ms: int
    ) -> PruneOutcome:
        cutoff = now_ms - prediction_horizon_ms
        with self._write() as db:
            expired = dict(
                db.execute(
                    "SELECT model, COUNT(*) FROM pending_labels WHERE received_ms < ? "
                    "GROUP BY model",
                    (cutoff,),
                ).fetchall()
            )
            for model, n in expired.items():
                self._bump(db, model, {"expired": n})
            db.execute("DELETE FROM pending_labels WHERE received_ms < ?", (cutoff,))
            deleted = db.execute(
                "DELETE FROM predictions WHERE window_id IN "
                "(SELECT id FROM windows WHERE end_ms < ?)",
                (cutoff,),
            ).rowcount
            db.execute("DELETE FROM seen_spans WHERE seen_ms < ?", (now_ms - dedupe_horizon_ms,))
        return PruneOutcome(deleted, expired)

    # References

    def create_upload(self, model: str, version: str, task: str | None, now_ms: int) -> str:
        upload_id = uuid.uuid4().hex
        with self._write() as db:
            db.execute(
                "INSERT INTO uploads (upload_id, model, version, task, created_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (upload_id, model, version, task, now_ms),
            )
        return upload_id

    def upload(self, upload_id: str) -> UploadRecord | None:
        row = (
            self._reader()
            .execute(
                "SELECT upload_id, model, version, task, created_ms FROM uploads "
                "WHERE upload_id = ?",
                (upload_id,),
            )
            .fetchone()
        )
        return UploadRecord(*row) if row else None

    def put_upload_part(self, upload_id: str, part: int, rows: int, data: bytes) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO upload_parts (upload_id, part, rows, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (upload_id, part) DO UPDATE SET rows = excluded.rows, "
                "data = excluded.data",
                (upload_id, part, rows, data),
            )

    def upload_parts(self, upload_id: str) -> Iterator[bytes]:
        db = self._reader()
        parts = [
            part
            for (part,) in db.execute(
                "SELECT part FROM upload_parts WHERE upload_id = ? ORDER BY part", (upload_id,)
            )
        ]
        for part in parts:
            row = db.execute(
                "SELECT data FROM upload_parts WHERE upload_id = ? AND part = ?",
                (upload_id, part),
            ).fetchone()
            if row is not None:
                yield bytes(row[0])

    def delete_upload(self, upload_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM upload_parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))

    def put_reference(self, reference: ReferenceRecord) -> None:
        with self._write() as db:
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

    def reference(self, model: str, version: str) -> ReferenceRecord | None:
        row = (
            self._reader()
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

    # Per-model configuration

    def model_configs(self) -> dict[str, dict[str, Any]]:
        rows = self._reader().execute("SELECT model, settings FROM model_configs")
        return {model: json.loads(settings) for model, settings in rows}

    def put_model_config(self, model: str, settings: dict[str, Any]) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO model_configs (model, settings) VALUES (?, ?) "
                "ON CONFLICT (model) DO UPDATE SET settings = excluded.settings",
                (model, json.dumps(settings)),
            )

    # Alerts

    def alerts(self, model: str, state: str | None = None) -> list[AlertRecord]:
        sql = (
            "SELECT id, model, version, check_name, severity, state, opened_ms, resolved_ms, "
            "message, window_id FROM alerts WHERE model = ?"
        )
        params: list[Any] = [model]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return [AlertRecord(*row) for row in self._reader().execute(sql + " ORDER BY id", params)]

    def open_alert(
        self,
        model: str,
        version: str,
        check: str,
        severity: str,
        message: str,
        now_ms: int,
        window_id: int | None = None,
    ) -> int:
        with self._write() as db:
            alert_id = db.execute(
                "INSERT INTO alerts (model, version, check_name, severity, state, opened_ms, "
                "message, window_id) VALUES (?, ?, ?, ?, 'open', ?, ?, ?)",
                (model, version, check, severity, now_ms, message, window_id),
            ).lastrowid
        assert alert_id is not None
        return alert_id

    def resolve_alert(self, alert_id: int, now_ms: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE alerts SET state = 'resolved', resolved_ms = ? WHERE id = ?",
                (now_ms, alert_id),
            )


class _Transaction:
    """``with`` block: the writer connection inside BEGIN IMMEDIATE ... COMMIT, under the lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self._lock.release()


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _window(row: tuple[Any, ...]) -> WindowRecord:
    (wid, model, version, start, end, closed, requests, rows, labelled, needs_eval) = row[:10]
    results, details, evaluated = row[10:]
    return WindowRecord(
        wid,
        model,
        version,
        start,
        end,
        bool(closed),
        requests,
        rows,
        labelled,
        needs_eval,
        json.loads(results) if results else None,
        json.loads(details) if details else None,
        evaluated,
    )
