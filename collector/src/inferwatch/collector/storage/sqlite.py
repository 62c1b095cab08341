"""The SQLite backend: one file in WAL mode, one serialized writer, a reader per thread.

Durability: ``durability="full"`` runs ``synchronous=FULL``, so a committed transaction (the
ingest worker's group commit) is on disk before the collector answers 200 and survives power
loss; ``"normal"`` skips that fsync, surviving a process crash but possibly losing the last
commits on power loss, for more throughput on slow disks.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import chain, count, repeat
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from inferwatch.collector.alerts.model import Alert, CheckHistory, Evidence
from inferwatch.collector.alerts.store import AlertSnapshot
from inferwatch.collector.detectors.result import STORED, Result, Severity
from inferwatch.collector.settings import ConfigError
from inferwatch.collector.storage.base import (
    IncomingBatch,
    IngestOutcome,
    LabelledBatch,
    LabelOutcome,
    LabelRecord,
    PastScore,
    PruneOutcome,
    ReferenceRecord,
    StoredBatch,
    UploadRecord,
    WindowKey,
    WindowRecord,
)

# Bumped whenever a table changes; an older file is refused rather than misread.
SCHEMA_VERSION = 4
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
CREATE TABLE IF NOT EXISTS model_keys (
    key INTEGER PRIMARY KEY,
    model TEXT NOT NULL UNIQUE
);
-- The label join keeps, per stored batch, its ids and output frame (one row per span); predicted
-- values are read from the frame only for rows that get a label. An id's key (id_key) is its 16
-- bytes when it is a canonical lower-case UUID (what the SDK makes), else its text; a batch's ids
-- are its keys end to end when all are UUIDs, else a JSON array of their text (BLOB affinity:
-- both kinds are stored as given). A batch of UUIDs of one millisecond (one SDK call makes them
-- so) is indexed by its millisecond (a UUIDv7's first 48 bits) and the range of its keys, one
-- prediction_ranges row: a label's key is looked for in the batches of its millisecond whose
-- range holds it. Other batches get one narrow
-- prediction_ids row per id, where an id seen before keeps its first prediction.
CREATE TABLE IF NOT EXISTS prediction_batches (
    seq INTEGER PRIMARY KEY,
    model_key INTEGER NOT NULL,
    window_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    ids BLOB NOT NULL,
    outputs BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS prediction_batches_by_window ON prediction_batches (window_id);
CREATE TABLE IF NOT EXISTS prediction_ranges (
    model_key INTEGER NOT NULL,
    ms INTEGER NOT NULL,
    first_key BLOB NOT NULL,
    last_key BLOB NOT NULL,
    batch INTEGER NOT NULL,
    PRIMARY KEY (model_key, ms, first_key, batch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS prediction_ids (
    model_key INTEGER NOT NULL,
    id_key BLOB NOT NULL,
    batch INTEGER NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (model_key, id_key)
) WITHOUT ROWID;
-- A label is stored at its prediction's first (window, batch, row), which the join finds from the
-- id: keyed so, a window's labels are read in one range and no second index is written per label.
CREATE TABLE IF NOT EXISTS labels (
    window_id INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    row INTEGER NOT NULL,
    label_text TEXT NOT NULL,
    label_num REAL,
    label_ms INTEGER NOT NULL,
    PRIMARY KEY (window_id, batch, row)
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS detector_states (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (model, version, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    check_name TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    message TEXT NOT NULL,
    window_id INTEGER NOT NULL,
    last_window_id INTEGER NOT NULL,
    evidence TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_model ON alerts (model, state);
-- At most one open alert per check, and the engine's load reads just these.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (model, version, check_name)
    WHERE state = 'open';
CREATE TABLE IF NOT EXISTS alert_checks (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    check_name TEXT NOT NULL,
    history TEXT NOT NULL,
    PRIMARY KEY (model, version, check_name)
) WITHOUT ROWID;
"""

_ALERT_FIELDS = (
    "model, version, check_name, severity, state, opened_ms, resolved_ms, updated_ms, message, "
    "window_id, last_window_id, evidence"
)
_ALERT_COLUMNS = f"id, {_ALERT_FIELDS}"
_UPSERT_LABEL = (
    "INSERT INTO labels (window_id, batch, row, label_text, label_num, label_ms) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (window_id, batch, row) DO UPDATE "
    "SET label_text = excluded.label_text, label_num = excluded.label_num, "
    "label_ms = excluded.label_ms"
)
_WINDOW_COLUMNS = (
    "id, model, version, start_ms, end_ms, closed, requests, rows, labelled, needs_eval, "
    "results, details, evaluated_ms"
)
# Rows per IN (...) list: far below SQLite's variable limit, large enough to be few queries.
_CHUNK = 5000
# Index rows for stored batches ?1 .. ?2 whose ids are a JSON array, read by SQLite itself.
_INDEX_TEXT = (
    "INSERT INTO prediction_ids (model_key, id_key, batch, row) "
    "SELECT b.model_key, j.value, b.seq, j.key FROM prediction_batches b, json_each(b.ids) j "
    "WHERE b.seq BETWEEN ? AND ? AND typeof(b.ids) = 'text' ORDER BY b.seq, j.key "
    "ON CONFLICT DO NOTHING"
)
_RESULTS = TypeAdapter(list[Result])
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_DASHES = (8, 13, 18, 23)


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
        # Copying the WAL into the database file would otherwise fall on the commit that
        # crosses 1000 pages, adding its writes and fsync to what acknowledged requests wait
        # for; ``checkpoint`` does it instead, from another connection.
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._check_schema_version()
        self._writer.executescript(_SCHEMA)
        self._writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._window_ids: dict[WindowKey, int] = {}
        self._model_keys: dict[str, int] = {}

    def _check_schema_version(self) -> None:
        (version,) = self._writer.execute("PRAGMA user_version").fetchone()
        (tables,) = self._writer.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'windows'"
        ).fetchone()
        if tables and version != SCHEMA_VERSION:
            self.close()
            raise ConfigError(
                f"the database {self.path} was written by another inferwatch release (storage "
                f"schema {version}; this one reads schema {SCHEMA_VERSION}); point db at a new "
                "file"
            )

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
        kept: list[tuple[int, int, int, int, bytes | str, bytes]] = []
        keys: list[Sequence[bytes | str] | None] = []
        arrived: dict[str, list[_Arrival]] = {}
        with self._write() as db, self._forget_keys_on_error():
            for batch in batches:
                cursor = db.execute(
                    "INSERT INTO seen_spans (key, seen_ms) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (batch.dedupe_key, now_ms),
                )
                if cursor.rowcount == 0:
                    stored.append(None)
                    continue
                window_id = self._window_id(db, batch.window)
                model_key = self._model_key(db, batch.window.model)
                seq = db.execute(
                    "INSERT INTO raw_batches (window_id, payload) VALUES (?, ?)",
                    (window_id, batch.payload),
                ).lastrowid
                assert seq is not None
                ids, listed = _stored_ids(batch.prediction_ids)
                kept.append((seq, model_key, window_id, batch.ts_ms, ids, batch.outputs))
                keys.append(listed)
                stored.append(StoredBatch(seq, window_id, batch.payload))
                totals = counts.setdefault(window_id, [0, 0])
                totals[0] += 1
                totals[1] += batch.rows
                arrival = _Arrival(window_id, seq, batch.prediction_ids)
                arrived.setdefault(batch.window.model, []).append(arrival)
            db.executemany(
                "INSERT INTO prediction_batches (seq, model_key, window_id, ts_ms, ids, outputs) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                kept,
            )
            db.executemany(
                "UPDATE windows SET requests = requests + ?, rows = rows + ?, "
                "needs_eval = needs_eval + closed WHERE id = ?",
                [(n, rows, wid) for wid, (n, rows) in counts.items()],
            )
            self._index(db, kept, keys)
            joined, windows = self._join_pending(db, arrived)
        return IngestOutcome(stored, windows, joined)

    @staticmethod
    def _index(
        db: sqlite3.Connection,
        kept: Sequence[tuple[int, int, int, int, bytes | str, bytes]],
        keys: Sequence[Sequence[bytes | str] | None],
    ) -> None:
        """Index the ids of the batches just stored (see the schema).

        A prediction_ranges row costs one insert a batch. Per-id rows of plain text ids are read
        from the stored JSON by SQLite (no Python work a row); the others are listed here, in
        the order the batches were stored, so that an id seen before keeps its first.
        """
        ranges: list[tuple[int, int, bytes, bytes, int]] = []
        per_id: list[tuple[int, int, bytes | str, Sequence[bytes | str] | None]] = []
        for (seq, model_key, _, _, ids, _), listed in zip(kept, keys, strict=True):
            if isinstance(ids, bytes):
                bounds = _key_range(ids)
                if bounds is not None:
                    ranges.append((model_key, _millisecond(bounds[0]), *bounds, seq))
                    continue
                listed = _keys(ids)
            per_id.append((seq, model_key, ids, listed))
        db.executemany(
            "INSERT INTO prediction_ranges (model_key, ms, first_key, last_key, batch) "
            "VALUES (?, ?, ?, ?, ?)",
            ranges,
        )
        if not per_id:
            return
        if all(listed is None for *_, listed in per_id):
            db.execute(_INDEX_TEXT, (per_id[0][0], per_id[-1][0]))
            return
        db.executemany(
            "INSERT INTO prediction_ids (model_key, id_key, batch, row) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            chain.from_iterable(
                zip(
                    repeat(model_key),
                    _keys(ids) if listed is None else listed,
                    repeat(seq),
                    count(),
                )
                for seq, model_key, ids, listed in per_id
            ),
        )

    @contextmanager
    def _forget_keys_on_error(self) -> Iterator[None]:
        # A rolled-back transaction may have created windows or model keys that were cached.
        try:
            yield
        except BaseException:
            self._window_ids.clear()
            self._model_keys.clear()
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

    def _model_key(self, db: sqlite3.Connection, model: str) -> int:
        """The small integer that stands for ``model`` in the per-prediction tables."""
        key = self._model_keys.get(model)
        if key is None:
            db.execute("INSERT INTO model_keys (model) VALUES (?) ON CONFLICT DO NOTHING", (model,))
            (key,) = db.execute("SELECT key FROM model_keys WHERE model = ?", (model,)).fetchone()
            self._model_keys[model] = key
        return key

    def _join_pending(
        self, db: sqlite3.Connection, arrived: Mapping[str, list[_Arrival]]
    ) -> tuple[int, set[int]]:
        """Labels that arrived before their predictions meet them now."""
        joined = 0
        windows: Counter[int] = Counter()
        for model, arrivals in arrived.items():
            if (
                db.execute(
                    "SELECT 1 FROM pending_labels WHERE model = ? LIMIT 1", (model,)
                ).fetchone()
                is None
            ):
                continue
            # Each id's first prediction, as in prediction_ids.
            where: dict[str, tuple[int, int, int]] = {}
            for arrival in arrivals:
                for row, pid in enumerate(arrival.prediction_ids):
                    where.setdefault(pid, (arrival.window_id, arrival.seq, row))
            keys = list(where)
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
                    _UPSERT_LABEL,
                    [(*where[pid], text, num, ms) for pid, text, num, ms in found],
                )
                db.executemany(
                    "DELETE FROM pending_labels WHERE model = ? AND prediction_id = ?",
                    [(model, pid) for pid, *_ in found],
                )
                joined += len(found)
                windows.update(where[pid][0] for pid, *_ in found)
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
        # PASSIVE: ingest commits go on meanwhile.
        self._reader().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

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
        results: Sequence[Result],
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
                    _RESULTS.dump_json(list(results)).decode(),
                    json.dumps(details),
                    now_ms,
                    int(close),
                    marks_seen,
                    window_id,
                ),
            )

    def past_scores(
        self, model: str, version: str, detector: str, before_ms: int, windows: int
    ) -> list[PastScore]:
        rows = self._reader().execute(
            "SELECT w.start_ms, json_extract(r.value, '$.feature'), "
            "json_extract(r.value, '$.score'), json_extract(r.value, '$.decision'), "
            "json_extract(r.value, '$.details.check_decision') "
            "FROM windows w, json_each(w.results) r WHERE w.id IN (SELECT id FROM windows "
            "WHERE model = ? AND version = ? AND end_ms <= ? AND results IS NOT NULL "
            "ORDER BY start_ms DESC LIMIT ?) AND json_extract(r.value, '$.detector') = ? "
            "AND json_extract(r.value, '$.score') IS NOT NULL ORDER BY w.start_ms DESC",
            (model, version, before_ms, windows, detector),
        )
        return [PastScore(*row) for row in rows]

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
            known = db.execute("SELECT key FROM model_keys WHERE model = ?", (model,)).fetchone()
            model_key = known[0] if known else None
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                found: dict[str, _Prediction] = {}
                if model_key is not None:
                    found = self._predictions(db, model_key, chunk)
                db.executemany(
                    _UPSERT_LABEL,
                    [
                        (
                            window_id,
                            batch,
                            row,
                            latest[pid].value_text,
                            latest[pid].value_num,
                            now_ms,
                        )
                        for pid, (window_id, batch, row, _) in found.items()
                    ],
                )
                for window_id, _, _, labelled in found.values():
                    if labelled:
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
    def _predictions(
        db: sqlite3.Connection, model_key: int, ids: Sequence[str]
    ) -> dict[str, _Prediction]:
        """Each id's first prediction, if stored: its window, batch, row, and whether it has a
        label already."""
        named = dict(zip(_id_keys(ids), ids, strict=True))
        # Keys one by one: text keys, and UUID keys if any batch had them listed (blobs sort
        # after text, so the first blob key says).
        listed: list[bytes | str] = [key for key in named if not isinstance(key, bytes)]
        if db.execute(
            "SELECT 1 FROM prediction_ids WHERE model_key = ? AND id_key >= x'' LIMIT 1",
            (model_key,),
        ).fetchone():
            listed = list(named)
        where: dict[bytes | str, tuple[int, int, int]] = {
            key: (window_id, batch, row)
            for key, window_id, batch, row in db.execute(
                "SELECT i.id_key, b.window_id, i.batch, i.row FROM prediction_ids i "
                "JOIN prediction_batches b ON b.seq = i.batch "
                f"WHERE i.model_key = ? AND i.id_key IN ({_marks(len(listed))})",
                (model_key, *listed),
            )
        }
        # UUID keys by range: the batches of their millisecond whose range holds them, then
        # where in those batches' keys they are.
        by_ms: dict[int, list[bytes]] = {}
        for key in named:
            if isinstance(key, bytes):
                by_ms.setdefault(_millisecond(key), []).append(key)
        for keys in by_ms.values():
            keys.sort()
        holding: dict[int, list[bytes]] = {}
        for ms, first, last, batch in db.execute(
            "SELECT ms, first_key, last_key, batch FROM prediction_ranges "
            f"WHERE model_key = ? AND ms IN ({_marks(len(by_ms))})",
            (model_key, *by_ms),
        ):
            keys = by_ms[ms]
            inside = keys[bisect_left(keys, first) : bisect_right(keys, last)]
            if inside:
                holding.setdefault(batch, []).extend(inside)
        for seq, window_id, packed in db.execute(
            "SELECT seq, window_id, ids FROM prediction_batches "
            f"WHERE seq IN ({_marks(len(holding))})",
            list(holding),
        ):
            for key, row in _rows_of(packed, holding[seq]).items():
                if key not in where or seq < where[key][1]:
                    where[key] = (window_id, seq, row)
        labelled = _labelled_rows(db, where.values())
        return {named[key]: (*spot, spot in labelled) for key, spot in where.items()}

    @staticmethod
    def _bump(db: sqlite3.Connection, model: str, counts: Mapping[str, int]) -> None:
        db.executemany(
            "INSERT INTO label_counters (model, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (model, name) DO UPDATE SET value = value + excluded.value",
            [(model, name, n) for name, n in counts.items() if n],
        )

    def labelled_batches(self, window_id: int) -> list[LabelledBatch]:
        db = self._reader()
        by_batch: dict[int, list[tuple[int, str, float | None, int]]] = {}
        for batch, row, text, num, label_ms in db.execute(
            "SELECT batch, row, label_text, label_num, label_ms FROM labels WHERE window_id = ? "
            "ORDER BY batch, row",
            (window_id,),
        ):
            # The delay is filled in below, once the batch's time is known.
            by_batch.setdefault(batch, []).append((row, text, num, label_ms))
        labelled: list[LabelledBatch] = []
        seqs = list(by_batch)
        for i in range(0, len(seqs), _CHUNK):
            chunk = seqs[i : i + _CHUNK]
            for seq, ts_ms, outputs in db.execute(
                "SELECT seq, ts_ms, outputs FROM prediction_batches "
                f"WHERE seq IN ({_marks(len(chunk))})",
                chunk,
            ):
                rows = [(r, t, n, max(ms - ts_ms, 0)) for r, t, n, ms in by_batch[seq]]
                labelled.append(LabelledBatch(bytes(outputs), rows))
        return labelled

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
        old_windows = "SELECT id FROM windows WHERE end_ms < ?"
        deleted = 0
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
            old_ranges = (
                "FROM prediction_ranges WHERE batch IN "
                f"(SELECT seq FROM prediction_batches WHERE window_id IN ({old_windows}))"
            )
            (ranged,) = db.execute(
                "SELECT COALESCE(SUM(length(ids) / 16), 0) FROM prediction_batches "
                f"WHERE seq IN (SELECT batch {old_ranges})",
                (cutoff,),
            ).fetchone()
            deleted += ranged
            db.execute(f"DELETE {old_ranges}", (cutoff,))
            batches = db.execute(
                "SELECT seq, model_key, ids FROM prediction_batches "
                f"WHERE window_id IN ({old_windows}) "
                "AND seq NOT IN (SELECT batch FROM prediction_ranges)",
                (cutoff,),
            )
            while chunk := batches.fetchmany(256):
                # An id's index row is this batch's only if the id was not seen earlier.
                deleted += db.executemany(
                    "DELETE FROM prediction_ids WHERE model_key = ? AND id_key = ? AND batch = ?",
                    ((model_key, key, seq) for seq, model_key, ids in chunk for key in _keys(ids)),
                ).rowcount
            db.execute(f"DELETE FROM labels WHERE window_id IN ({old_windows})", (cutoff,))
            db.execute(
                f"DELETE FROM prediction_batches WHERE window_id IN ({old_windows})", (cutoff,)
            )
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

    # Checks' state between windows

    def detector_state(self, model: str, version: str, name: str) -> bytes | None:
        row = (
            self._reader()
            .execute(
                "SELECT state FROM detector_states WHERE model = ? AND version = ? AND name = ?",
                (model, version, name),
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def put_detector_state(self, model: str, version: str, name: str, state: bytes) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO detector_states (model, version, name, state) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (model, version, name) DO UPDATE SET state = excluded.state",
                (model, version, name, state),
            )

    # Alerts: the alert engine's AlertStore

    def load(self, model: str, version: str) -> AlertSnapshot:
        db = self._reader()
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
        with self._write() as db:
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
                )
                if alert.id is None:
                    alert_id = db.execute(
                        f"INSERT INTO alerts ({_ALERT_FIELDS}) VALUES ({_marks(len(fields))})",
                        fields,
                    ).lastrowid
                    assert alert_id is not None
                    saved.append(replace(alert, id=alert_id))
                else:
                    db.execute(
                        "UPDATE alerts SET model = ?, version = ?, check_name = ?, severity = ?, "
                        "state = ?, opened_ms = ?, resolved_ms = ?, updated_ms = ?, message = ?, "
                        "window_id = ?, last_window_id = ?, evidence = ? WHERE id = ?",
                        (*fields, alert.id),
                    )
                    saved.append(alert)
        return saved

    def alerts(self, model: str, state: str | None = None) -> list[Alert]:
        sql = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE model = ?"
        params: list[Any] = [model]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return [_alert(row) for row in self._reader().execute(sql + " ORDER BY id", params)]


# An id's first prediction (window, batch, row), and whether it has a label already.
_Prediction = tuple[int, int, int, bool]


def _labelled_rows(
    db: sqlite3.Connection, spots: Iterable[tuple[int, int, int]]
) -> set[tuple[int, int, int]]:
    """Which of these (window, batch, row) have a label: the labels of their batches, read by
    the table's key, a range per window."""
    batches: dict[int, set[int]] = {}
    for window_id, batch, _ in spots:
        batches.setdefault(window_id, set()).add(batch)
    found: set[tuple[int, int, int]] = set()
    for window_id, seqs in batches.items():
        listed = sorted(seqs)
        for i in range(0, len(listed), _CHUNK):
            chunk = listed[i : i + _CHUNK]
            found.update(
                (window_id, batch, row)
                for batch, row in db.execute(
                    "SELECT batch, row FROM labels "
                    f"WHERE window_id = ? AND batch IN ({_marks(len(chunk))})",
                    (window_id, *chunk),
                )
            )
    return found


@dataclass(frozen=True, slots=True)
class _Arrival:
    """A stored batch's prediction ids, for joining labels that came first."""

    window_id: int
    seq: int
    prediction_ids: Sequence[str]


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


def _id_key(prediction_id: str) -> bytes | str:
    """The id's key in prediction_ids and prediction_ranges: 16 bytes for a canonical UUID,
    else its text."""
    if _UUID.fullmatch(prediction_id):
        return bytes.fromhex(prediction_id.replace("-", ""))
    return prediction_id


def _stored_ids(ids: Sequence[str]) -> tuple[bytes | str, Sequence[bytes | str] | None]:
    """A batch's ids as prediction_batches keeps them, and their keys if SQLite cannot cut them.

    All canonical UUIDs (what the SDK makes): their keys end to end. Otherwise a JSON array,
    from which SQLite reads the keys unless some id is a UUID (its key is its bytes) or holds a
    NUL (which json_each cuts short); then the keys are listed.
    """
    packed = _packed_uuids(ids)
    if packed is not None:
        return packed, None
    text = json.dumps(ids, separators=(",", ":"))
    if "\0" in "".join(ids) or 36 in set(map(len, ids)):
        return text, [_id_key(pid) for pid in ids]
    return text, None


def _packed_uuids(ids: Sequence[str]) -> bytes | None:
    """The ids' keys end to end if all are canonical UUIDs, worked out for all at once (a regular
    expression and a conversion an id cost several times more)."""
    n = len(ids)
    joined = "".join(ids)
    if not (
        len(joined) == 36 * n
        and set(map(len, ids)) <= {36}
        and joined.isascii()
        and joined.count("-") == 4 * n
        and joined == joined.lower()
        and all(joined[at::36] == "-" * n for at in _UUID_DASHES)
    ):
        return None
    try:
        packed = bytes.fromhex(joined.replace("-", ""))
    except ValueError:
        return None
    # fromhex skips whitespace, which would leave fewer bytes.
    return packed if len(packed) == 16 * n else None


def _id_keys(ids: Sequence[str]) -> list[bytes | str]:
    packed = _packed_uuids(ids)
    if packed is None:
        return [_id_key(pid) for pid in ids]
    return [packed[i : i + 16] for i in range(0, len(packed), 16)]


def _key_range(packed: bytes) -> tuple[bytes, bytes] | None:
    """The least and greatest of a batch's UUID keys, if all are of one millisecond."""
    if not packed:
        return None
    keys = [packed[at : at + 16] for at in range(0, len(packed), 16)]
    first, last = min(keys), max(keys)
    # Keys between two of one millisecond are of it too: a UUIDv7 begins with its time.
    return (first, last) if first[:6] == last[:6] else None


def _millisecond(key: bytes) -> int:
    """A UUIDv7's time: its first 48 bits."""
    return int.from_bytes(key[:6], "big")


def _rows_of(packed: bytes, keys: Sequence[bytes]) -> dict[bytes, int]:
    """The row of each of ``keys`` found among a batch's UUID keys."""
    if 8 * len(keys) < len(packed) // 16:
        # A few keys of a long batch: each looked for.
        found = {key: _row_of(packed, key) for key in keys}
        return {key: row for key, row in found.items() if row is not None}
    chunks = [packed[at : at + 16] for at in range(0, len(packed), 16)]
    # Reversed, so that a key there twice keeps its first row.
    rows = dict(zip(reversed(chunks), range(len(chunks) - 1, -1, -1), strict=True))
    return {key: rows[key] for key in keys if key in rows}


def _row_of(packed: bytes, key: bytes) -> int | None:
    """The row of ``key`` among a batch's UUID keys, or None."""
    at = packed.find(key)
    # A match across two keys is not one.
    while at > 0 and at % 16:
        at = packed.find(key, at + 1)
    return None if at < 0 else at // 16


def _keys(ids: bytes | str) -> list[bytes | str]:
    """The keys of a batch's ids as prediction_batches keeps them."""
    if isinstance(ids, bytes):
        return [ids[i : i + 16] for i in range(0, len(ids), 16)]
    return [_id_key(pid) for pid in json.loads(ids)]


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
        _RESULTS.validate_json(results, context=STORED) if results else None,
        json.loads(details) if details else None,
        evaluated,
    )


def _alert(row: tuple[Any, ...]) -> Alert:
    (aid, model, version, check, severity, state, opened, resolved, updated) = row[:9]
    message, window_id, last_window_id, evidence = row[9:]
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
    )
