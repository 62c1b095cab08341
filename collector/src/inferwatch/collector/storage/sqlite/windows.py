"""``WindowStore`` on SQLite: the journal (raw_batches), windows, window states, dedupe keys."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import TypeAdapter, ValidationError

from inferwatch.collector.detectors.result import STORED, Result
from inferwatch.collector.storage.sqlite.database import (
    Database,
    dedupe_key,
    unavailable_on_database_errors,
)
from inferwatch.collector.storage.sqlite.labels import Arrival, join_waiting
from inferwatch.collector.storage.sqlite.prediction_index import (
    KeptBatch,
    index_batches,
    stored_ids,
)
from inferwatch.collector.window.store import (
    EvaluatedWindow,
    IncomingBatch,
    IngestOutcome,
    PastScore,
    StoredBatch,
    VersionWindows,
    WindowKey,
    WindowParts,
    WindowRecord,
)

_RESULTS = TypeAdapter(list[Result])
_WINDOW_COLUMNS = (
    "id, model, version, start_ms, end_ms, closed, requests, rows, labelled, needs_eval, "
    "results, details, evaluated_ms"
)


class SQLiteWindowStore:
    def __init__(self, database: Database) -> None:
        self._db = database
        # Ids that never change once made, so ingest looks each up once.
        self._window_ids: dict[WindowKey, int] = {}
        self._model_keys: dict[str, int] = {}

    def ingest(self, batches: Sequence[IncomingBatch], now_ms: int) -> IngestOutcome:
        stored: list[StoredBatch | None] = []
        counts: dict[int, list[int]] = {}
        kept: list[KeptBatch] = []
        keys: list[Sequence[bytes | str] | None] = []
        arrived: dict[str, list[Arrival]] = {}
        with (
            unavailable_on_database_errors(),
            self._forget_ids_on_error(),
            self._db.transaction() as db,
        ):
            for batch in batches:
                cursor = db.execute(
                    "INSERT INTO seen_spans (key, seen_ms) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (dedupe_key(batch.trace_id, batch.span_id), now_ms),
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
                ids, listed = stored_ids(batch.prediction_ids)
                kept.append((seq, model_key, window_id, batch.ts_ms, ids, batch.outputs))
                keys.append(listed)
                stored.append(StoredBatch(seq, window_id, batch.payload))
                totals = counts.setdefault(window_id, [0, 0])
                totals[0] += 1
                totals[1] += batch.rows
                arrival = Arrival(window_id, seq, batch.prediction_ids)
                arrived.setdefault(batch.window.model, []).append(arrival)
            db.executemany(
                "INSERT INTO prediction_batches (seq, model_key, window_id, ts_ms, ids, outputs) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                kept,
            )
            db.executemany(
                # Marked whether open or closed, as labels are (see labels._add_labelled).
                "UPDATE windows SET requests = requests + ?, rows = rows + ?, "
                "needs_eval = needs_eval + 1 WHERE id = ?",
                [(n, rows, wid) for wid, (n, rows) in counts.items()],
            )
            index_batches(db, kept, keys)
            joined, windows = join_waiting(db, arrived)
        return IngestOutcome(stored, windows, joined)

    @contextmanager
    def _forget_ids_on_error(self) -> Iterator[None]:
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

    def pending_batches(self) -> Iterator[StoredBatch]:
        cursor = self._db.reader().execute(
            "SELECT seq, window_id, payload FROM raw_batches ORDER BY seq"
        )
        while rows := cursor.fetchmany(256):
            for seq, window_id, payload in rows:
                yield StoredBatch(seq, window_id, payload)

    def checkpoint(self, instance: str, states: Mapping[int, bytes], upto_seq: int) -> None:
        with self._db.transaction() as db:
            db.executemany(
                "INSERT INTO window_states (window_id, instance, state) VALUES (?, ?, ?) "
                "ON CONFLICT (window_id, instance) DO UPDATE SET state = excluded.state",
                [(wid, instance, state) for wid, state in states.items()],
            )
            db.execute("DELETE FROM raw_batches WHERE seq <= ?", (upto_seq,))
        self._db.checkpoint_wal()

    def quarantine(self, seq: int, reason: str, now_ms: int) -> None:
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO quarantined_batches (seq, window_id, payload, reason, quarantined_ms) "
                "SELECT seq, window_id, payload, ?, ? FROM raw_batches WHERE seq = ? "
                "ON CONFLICT DO NOTHING",
                (reason, now_ms, seq),
            )
            db.execute("DELETE FROM raw_batches WHERE seq = ?", (seq,))

    def quarantined(self) -> int:
        (count,) = self._db.reader().execute("SELECT COUNT(*) FROM quarantined_batches").fetchone()
        return int(count)

    def states(self, window_id: int) -> dict[str, bytes]:
        rows = self._db.reader().execute(
            "SELECT instance, state FROM window_states WHERE window_id = ?", (window_id,)
        )
        return {instance: bytes(state) for instance, state in rows}

    def parts(self, window_id: int) -> WindowParts:
        # One process writes a SQLite file: its journal is its own, folded into its memory.
        db = self._db.reader()
        db.execute("BEGIN")
        try:
            states = db.execute(
                "SELECT instance, state FROM window_states WHERE window_id = ?", (window_id,)
            ).fetchall()
            marks = db.execute(
                "SELECT needs_eval FROM windows WHERE id = ?", (window_id,)
            ).fetchone()
        finally:
            db.execute("COMMIT")
        return WindowParts(
            {instance: bytes(state) for instance, state in states}, [], marks[0] if marks else 0
        )

    def get(self, model: str, window_id: int) -> WindowRecord | None:
        row = (
            self._db.reader()
            .execute(
                f"SELECT {_WINDOW_COLUMNS} FROM windows WHERE model = ? AND id = ?",
                (model, window_id),
            )
            .fetchone()
        )
        return _window(row) if row else None

    def find(
        self,
        model: str | None = None,
        version: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        closed: bool | None = None,
        needs_eval: bool | None = None,
        limit: int | None = None,
        newest: bool = False,
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
        sql += " ORDER BY start_ms DESC, id DESC" if newest else " ORDER BY start_ms, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        found = [_window(row) for row in self._db.reader().execute(sql, params)]
        return found[::-1] if newest else found

    def mark_for_evaluation(self, window_ids: set[int]) -> None:
        with self._db.transaction() as db:
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
        with self._db.transaction() as db:
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

    def versions(self) -> list[VersionWindows]:
        rows = self._db.reader().execute(
            "SELECT model, version, COUNT(*), SUM(rows), SUM(labelled), MIN(start_ms), "
            "MAX(end_ms) FROM windows GROUP BY model, version ORDER BY model, version"
        )
        return [VersionWindows(*row) for row in rows]

    def latest_evaluated(self) -> list[EvaluatedWindow]:
        # Closing is an evaluation (save_evaluation): a closed window has its results.
        rows = self._db.reader().execute(
            "SELECT model, version, id, evaluated_ms FROM windows WHERE id IN (SELECT id FROM "
            "(SELECT id, ROW_NUMBER() OVER (PARTITION BY model, version ORDER BY start_ms DESC, "
            "id DESC) AS newest FROM windows WHERE closed = 1) WHERE newest = 1) "
            "ORDER BY model, version"
        )
        return [EvaluatedWindow(*row) for row in rows]

    def past_scores(
        self, model: str, version: str, detector: str, before_ms: int, windows: int
    ) -> list[PastScore]:
        rows = self._db.reader().execute(
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

    def forget_dedupe_keys(self, before_ms: int) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM seen_spans WHERE seen_ms < ?", (before_ms,))


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
        _results(results) if results else None,
        json.loads(details) if details else None,
        evaluated,
    )


def _results(stored: str) -> list[Result]:
    try:
        return _RESULTS.validate_json(stored, context=STORED)
    except ValidationError:
        # pydantic's JSON parser refuses the escape of a lone surrogate, which a feature name
        # could hold before names were checked at ingest; Python's reads it.
        return _RESULTS.validate_python(json.loads(stored), context=STORED)
