"""``WindowStore`` on PostgreSQL: the journal (raw_batches), windows, window states, dedupe keys.

Several replicas may write one database. Each journals its own batches under its instance id
and checkpoints only those, so a replica's crash leaves its journal for its restart to replay.
Rows several transactions touch at once are taken in one order: windows are made in key order
and their counters locked in id order, so that concurrent ingests never deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from pydantic import TypeAdapter, ValidationError

from inferwatch.collector.detectors.result import STORED, Result
from inferwatch.collector.storage.postgres.database import Database
from inferwatch.collector.storage.postgres.labels import (
    Arrival,
    add_labelled,
    join_waiting,
    lock_models,
    lock_windows,
)
from inferwatch.collector.storage.postgres.prediction_index import (
    IndexRows,
    make_partitions,
    partition_day,
)
from inferwatch.collector.storage.sqlite.database import dedupe_key
from inferwatch.collector.window.store import (
    EvaluatedWindow,
    IncomingBatch,
    IngestOutcome,
    PastScore,
    Quarantine,
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
# Journaled batches read at a time.
_PAGE = 256


class PostgresWindowStore:
    def __init__(self, database: Database, instance: str) -> None:
        self._db = database
        # Whose journal this store writes, replays and checkpoints.
        self._instance = instance
        # Ids that never change once made, so ingest looks each up once.
        self._window_ids: dict[WindowKey, int] = {}
        self._model_keys: dict[str, int] = {}
        # Days whose prediction_ids partition exists.
        self._days: set[int] = set()

    def ingest(self, batches: Sequence[IncomingBatch], now_ms: int) -> IngestOutcome:
        if not batches:
            return IngestOutcome([])
        try:
            return self._ingest(batches, now_ms)
        except psycopg.errors.CheckViolation:
            # A day's partition this store made was dropped since (the retention prune, here
            # or at another replica): nothing was stored; make it again and store.
            self._days.clear()
            return self._ingest(batches, now_ms)

    def _ingest(self, batches: Sequence[IncomingBatch], now_ms: int) -> IngestOutcome:
        days = {partition_day(batch.window.end_ms) for batch in batches} - self._days
        if days:
            with self._db.transaction() as conn:
                make_partitions(conn, days)
            self._days |= days
        with self._forget_ids_on_error(), self._db.transaction() as conn:
            lock_models(conn, (batch.window.model for batch in batches), shared=True)
            keys = [dedupe_key(batch.trace_id, batch.span_id) for batch in batches]
            new = {
                bytes(key)
                for (key,) in conn.execute(
                    "INSERT INTO seen_spans (key, seen_ms) SELECT unnest(%b::bytea[]), %s "
                    "ON CONFLICT DO NOTHING RETURNING key",
                    (keys, now_ms),
                )
            }
            taken: list[tuple[int, IncomingBatch]] = []
            for position, (batch, key) in enumerate(zip(batches, keys, strict=True)):
                if key in new:
                    new.discard(key)  # the same span twice in one group: the first counts
                    taken.append((position, batch))
            stored: list[StoredBatch | None] = [None] * len(batches)
            if not taken:
                return IngestOutcome(stored)
            self._make_ids(conn, [batch for _, batch in taken])
            seqs = sorted(
                seq
                for (seq,) in conn.execute(
                    "SELECT nextval('batch_seq') FROM generate_series(1, %s)", (len(taken),)
                )
            )
            counts: dict[int, list[int]] = {}
            arrived: dict[str, list[Arrival]] = {}
            window_ids: list[int] = []
            model_keys: list[int] = []
            index = IndexRows()
            for seq, (position, batch) in zip(seqs, taken, strict=True):
                window_id = self._window_ids[batch.window]
                model_key = self._model_keys[batch.window.model]
                window_ids.append(window_id)
                model_keys.append(model_key)
                stored[position] = StoredBatch(seq, window_id, batch.payload)
                index.add(model_key, batch.prediction_ids, batch.window.end_ms, seq)
                totals = counts.setdefault(window_id, [0, 0])
                totals[0] += 1
                totals[1] += batch.rows
                arrived.setdefault(batch.window.model, []).append(
                    Arrival(window_id, seq, batch.prediction_ids)
                )
            batches_taken = [batch for _, batch in taken]
            payloads = [batch.payload for batch in batches_taken]
            conn.execute(
                "INSERT INTO raw_batches (seq, instance, window_id, payload) "
                "SELECT s, %s, w, p FROM unnest(%b::bigint[], %b::bigint[], %b::bytea[]) "
                "AS j (s, w, p)",
                (self._instance, seqs, window_ids, payloads),
            )
            conn.execute(
                "INSERT INTO prediction_batches (seq, model_key, window_id, ts_ms, outputs) "
                "SELECT * FROM unnest(%b::bigint[], %b::integer[], %b::bigint[], %b::bigint[], "
                "%b::bytea[])",
                (
                    seqs,
                    model_keys,
                    window_ids,
                    [batch.ts_ms for batch in batches_taken],
                    [batch.outputs for batch in batches_taken],
                ),
            )
            index.insert(conn)
            joined, labelled = join_waiting(conn, arrived)
            lock_windows(conn, sorted(set(counts) | set(labelled)))
            ordered = sorted(counts)
            # Marked whether open or closed, as labels are (see labels.add_labelled).
            conn.execute(
                "UPDATE windows w SET requests = w.requests + n.requests, rows = w.rows + n.rows, "
                "needs_eval = w.needs_eval + 1 FROM unnest(%b::bigint[], %b::bigint[], "
                "%b::bigint[]) AS n (id, requests, rows) WHERE w.id = n.id",
                (ordered, [counts[w][0] for w in ordered], [counts[w][1] for w in ordered]),
            )
            add_labelled(conn, labelled)
        return IngestOutcome(stored, set(labelled), joined)

    @contextmanager
    def _forget_ids_on_error(self) -> Iterator[None]:
        # A rolled-back transaction may have created windows or model keys that were cached.
        try:
            yield
        except BaseException:
            self._window_ids.clear()
            self._model_keys.clear()
            raise

    def _make_ids(self, conn: psycopg.Connection[Any], batches: Sequence[IncomingBatch]) -> None:
        """Look up (or make) the batches' windows and model keys, in key order."""
        for model in sorted({b.window.model for b in batches} - set(self._model_keys)):
            row = conn.execute(
                "INSERT INTO model_keys (model) VALUES (%s) ON CONFLICT DO NOTHING RETURNING key",
                (model,),
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT key FROM model_keys WHERE model = %s", (model,)
                ).fetchone()
            assert row is not None
            self._model_keys[model] = row[0]
        missing = {b.window for b in batches} - set(self._window_ids)
        for key in sorted(missing, key=lambda k: (k.model, k.version, k.start_ms, k.end_ms)):
            fields = (key.model, key.version, key.start_ms, key.end_ms)
            row = conn.execute(
                "INSERT INTO windows (model, version, start_ms, end_ms) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING id",
                fields,
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT id FROM windows WHERE model = %s AND version = %s AND start_ms = %s "
                    "AND end_ms = %s",
                    fields,
                ).fetchone()
            assert row is not None
            self._window_ids[key] = row[0]

    def pending_batches(self) -> Iterator[StoredBatch]:
        after = 0
        while True:
            with self._db.reader() as conn:
                rows = conn.execute(
                    "SELECT seq, window_id, payload FROM raw_batches WHERE instance = %s "
                    "AND seq > %s ORDER BY seq LIMIT %s",
                    (self._instance, after, _PAGE),
                ).fetchall()
            for seq, window_id, payload in rows:
                yield StoredBatch(seq, window_id, bytes(payload))
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def checkpoint(self, instance: str, states: Mapping[int, bytes], upto_seq: int) -> None:
        ordered = sorted(states)
        with self._db.transaction() as conn:
            if ordered:
                conn.execute(
                    "INSERT INTO window_states (window_id, instance, state) "
                    "SELECT w, %s, s FROM unnest(%b::bigint[], %b::bytea[]) AS n (w, s) "
                    "ON CONFLICT (window_id, instance) DO UPDATE SET state = excluded.state",
                    (instance, ordered, [states[w] for w in ordered]),
                )
            conn.execute(
                "DELETE FROM raw_batches WHERE instance = %s AND seq <= %s",
                (self._instance, upto_seq),
            )

    def quarantine(self, seq: int, reason: str, now_ms: int) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO quarantined_batches (seq, window_id, payload, reason, quarantined_ms) "
                "SELECT seq, window_id, payload, %s, %s FROM raw_batches WHERE seq = %s "
                "ON CONFLICT DO NOTHING",
                (reason, now_ms, seq),
            )
            conn.execute("DELETE FROM raw_batches WHERE seq = %s", (seq,))

    def quarantined(self) -> Quarantine:
        with self._db.reader() as conn:
            row = conn.execute(
                "SELECT COUNT(*), MIN(quarantined_ms) FROM quarantined_batches"
            ).fetchone()
        assert row is not None
        return Quarantine(int(row[0]), None if row[1] is None else int(row[1]))

    def states(self, window_id: int) -> dict[str, bytes]:
        with self._db.reader() as conn:
            rows = conn.execute(
                "SELECT instance, state FROM window_states WHERE window_id = %s", (window_id,)
            ).fetchall()
        return {instance: bytes(state) for instance, state in rows}

    def parts(self, window_id: int) -> WindowParts:
        # One snapshot: a replica's checkpoint stores its state and drops the journal rows it
        # covers in one transaction, so each batch is seen exactly once, in one or the other.
        with self._db.snapshot() as conn:
            states = conn.execute(
                "SELECT instance, state FROM window_states WHERE window_id = %s", (window_id,)
            ).fetchall()
            journal = conn.execute(
                "SELECT payload FROM raw_batches WHERE window_id = %s AND instance <> %s "
                "ORDER BY seq",
                (window_id, self._instance),
            ).fetchall()
            marks = conn.execute(
                "SELECT needs_eval FROM windows WHERE id = %s", (window_id,)
            ).fetchone()
        return WindowParts(
            {instance: bytes(state) for instance, state in states},
            [bytes(payload) for (payload,) in journal],
            marks[0] if marks else 0,
        )

    def get(self, model: str, window_id: int) -> WindowRecord | None:
        with self._db.reader() as conn:
            row = conn.execute(
                f"SELECT {_WINDOW_COLUMNS} FROM windows WHERE model = %s AND id = %s",
                (model, window_id),
            ).fetchone()
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
            ("model = %s", model),
            ("version = %s", version),
            ("end_ms > %s", start_ms),
            ("start_ms < %s", end_ms),
            ("closed = %s", closed),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        if needs_eval is not None:
            where.append("needs_eval > 0" if needs_eval else "needs_eval = 0")
        query = f"SELECT {_WINDOW_COLUMNS} FROM windows"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY start_ms DESC, id DESC" if newest else " ORDER BY start_ms, id"
        if limit is not None:
            query += " LIMIT %s"
            params.append(int(limit))
        with self._db.reader() as conn:
            rows = conn.execute(query, params).fetchall()
        found = [_window(row) for row in rows]
        return found[::-1] if newest else found

    def mark_for_evaluation(self, window_ids: set[int]) -> None:
        if not window_ids:
            return
        ordered = sorted(window_ids)
        with self._db.transaction() as conn:
            lock_windows(conn, ordered)
            conn.execute(
                "UPDATE windows SET needs_eval = needs_eval + 1 WHERE id = ANY(%b)", (ordered,)
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
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE windows SET results = %s, details = %s, evaluated_ms = %s, "
                "closed = closed OR %s, needs_eval = GREATEST(needs_eval - %s, 0) WHERE id = %s",
                (
                    _RESULTS.dump_json(list(results)).decode(),
                    json.dumps(details),
                    now_ms,
                    close,
                    marks_seen,
                    window_id,
                ),
            )

    def versions(self) -> list[VersionWindows]:
        with self._db.reader() as conn:
            rows = conn.execute(
                "SELECT model, version, COUNT(*), SUM(rows)::bigint, SUM(labelled)::bigint, "
                "MIN(start_ms), MAX(end_ms) FROM windows GROUP BY model, version "
                "ORDER BY model, version"
            ).fetchall()
        return [VersionWindows(*row) for row in rows]

    def latest_evaluated(self) -> list[EvaluatedWindow]:
        # Closing is an evaluation (save_evaluation): a closed window has its results.
        with self._db.reader() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (model, version) model, version, id, evaluated_ms "
                "FROM windows WHERE closed ORDER BY model, version, start_ms DESC, id DESC"
            ).fetchall()
        return [EvaluatedWindow(*row) for row in rows]

    def past_scores(
        self, model: str, version: str, detector: str, before_ms: int, windows: int
    ) -> list[PastScore]:
        # The rows are read here rather than by jsonb: stored results may hold \u0000.
        with self._db.reader() as conn:
            rows = conn.execute(
                "SELECT start_ms, results FROM windows WHERE model = %s AND version = %s "
                "AND end_ms <= %s AND results IS NOT NULL ORDER BY start_ms DESC LIMIT %s",
                (model, version, before_ms, windows),
            ).fetchall()
        scores: list[PastScore] = []
        for start_ms, results in rows:
            for row in json.loads(results):
                if row.get("detector") != detector or row.get("score") is None:
                    continue
                details = row.get("details")
                checked = details.get("check_decision") if isinstance(details, dict) else None
                scores.append(
                    PastScore(start_ms, row.get("feature"), row["score"], row["decision"], checked)
                )
        return scores

    def forget_dedupe_keys(self, before_ms: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM seen_spans WHERE seen_ms < %s", (before_ms,))


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
        return _RESULTS.validate_python(json.loads(stored), context=STORED)
