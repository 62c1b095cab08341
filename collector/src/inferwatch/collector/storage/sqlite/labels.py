"""``LabelStore`` on SQLite, and the join of waiting labels that ingest runs in its transaction.

A label is stored at its prediction's first (window, batch, row), which the join finds from the
id (prediction_index): keyed so, a window's labels are read in one range and no second index is
written per label. A label whose prediction is not stored yet waits in pending_labels.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from inferwatch.collector.labels.reach import IdReach
from inferwatch.collector.labels.store import (
    LabelledBatch,
    LabelOutcome,
    LabelRecord,
    PruneOutcome,
)
from inferwatch.collector.storage.sqlite.database import CHUNK, Database, marks
from inferwatch.collector.storage.sqlite.prediction_index import (
    Spot,
    batch_keys,
    first_predictions,
)

_UPSERT_LABEL = (
    "INSERT INTO labels (window_id, batch, row, label_text, label_num, label_ms) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (window_id, batch, row) DO UPDATE "
    "SET label_text = excluded.label_text, label_num = excluded.label_num, "
    "label_ms = excluded.label_ms"
)


@dataclass(frozen=True, slots=True)
class Arrival:
    """A stored batch's prediction ids, for joining labels that came first."""

    window_id: int
    seq: int
    prediction_ids: Sequence[str]


class SQLiteLabelStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def apply(
        self,
        model: str,
        labels: Sequence[LabelRecord],
        now_ms: int,
        reach: IdReach | None = None,
    ) -> LabelOutcome:
        # One index over all retention: there is no partition that reach would spare.
        latest = {label.prediction_id: label for label in labels}
        replaced = len(labels) - len(latest)
        joined = pending = 0
        windows: Counter[int] = Counter()
        keys = list(latest)
        with self._db.transaction() as db:
            known = db.execute("SELECT key FROM model_keys WHERE model = ?", (model,)).fetchone()
            model_key = known[0] if known else None
            for i in range(0, len(keys), CHUNK):
                chunk = keys[i : i + CHUNK]
                found: dict[str, tuple[Spot, bool]] = {}
                if model_key is not None:
                    found = first_predictions(db, model_key, chunk)
                db.executemany(
                    _UPSERT_LABEL,
                    [
                        (*spot, latest[pid].value_text, latest[pid].value_num, now_ms)
                        for pid, (spot, _) in found.items()
                    ],
                )
                for (window_id, _, _), labelled in found.values():
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
                    f"WHERE model = ? AND prediction_id IN ({marks(len(waiting))})",
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
            _add_labelled(db, windows)
            _bump(db, model, {"accepted": len(labels), "replaced": replaced})
        return LabelOutcome(len(labels), joined, pending, replaced, set(windows))

    def for_window(self, window_id: int) -> list[LabelledBatch]:
        db = self._db.reader()
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
        for i in range(0, len(seqs), CHUNK):
            chunk = seqs[i : i + CHUNK]
            for seq, ts_ms, outputs in db.execute(
                "SELECT seq, ts_ms, outputs FROM prediction_batches "
                f"WHERE seq IN ({marks(len(chunk))})",
                chunk,
            ):
                rows = [(r, t, n, max(ms - ts_ms, 0)) for r, t, n, ms in by_batch[seq]]
                labelled.append(LabelledBatch(bytes(outputs), rows))
        return labelled

    def counters(self, model: str) -> dict[str, int]:
        db = self._db.reader()
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

    def prune(self, cutoff_ms: int) -> PruneOutcome:
        old_windows = "SELECT id FROM windows WHERE end_ms < ?"
        deleted = 0
        with self._db.transaction() as db:
            expired = dict(
                db.execute(
                    "SELECT model, COUNT(*) FROM pending_labels WHERE received_ms < ? "
                    "GROUP BY model",
                    (cutoff_ms,),
                ).fetchall()
            )
            for model, n in expired.items():
                _bump(db, model, {"expired": n})
            db.execute("DELETE FROM pending_labels WHERE received_ms < ?", (cutoff_ms,))
            old_ranges = (
                "FROM prediction_ranges WHERE batch IN "
                f"(SELECT seq FROM prediction_batches WHERE window_id IN ({old_windows}))"
            )
            (ranged,) = db.execute(
                "SELECT COALESCE(SUM(length(ids) / 16), 0) FROM prediction_batches "
                f"WHERE seq IN (SELECT batch {old_ranges})",
                (cutoff_ms,),
            ).fetchone()
            deleted += ranged
            db.execute(f"DELETE {old_ranges}", (cutoff_ms,))
            batches = db.execute(
                "SELECT seq, model_key, ids FROM prediction_batches "
                f"WHERE window_id IN ({old_windows}) "
                "AND seq NOT IN (SELECT batch FROM prediction_ranges)",
                (cutoff_ms,),
            )
            while chunk := batches.fetchmany(256):
                # An id's index row is this batch's only if the id was not seen earlier.
                deleted += db.executemany(
                    "DELETE FROM prediction_ids WHERE model_key = ? AND id_key = ? AND batch = ?",
                    (
                        (model_key, key, seq)
                        for seq, model_key, ids in chunk
                        for key in batch_keys(ids)
                    ),
                ).rowcount
            db.execute(f"DELETE FROM labels WHERE window_id IN ({old_windows})", (cutoff_ms,))
            db.execute(
                f"DELETE FROM prediction_batches WHERE window_id IN ({old_windows})", (cutoff_ms,)
            )
        return PruneOutcome(deleted, expired)


def join_waiting(
    db: sqlite3.Connection, arrived: Mapping[str, list[Arrival]]
) -> tuple[int, set[int]]:
    """Labels that arrived before their predictions meet them now (inside ingest's
    transaction): how many joined, and in which windows."""
    joined = 0
    windows: Counter[int] = Counter()
    for model, arrivals in arrived.items():
        if (
            db.execute("SELECT 1 FROM pending_labels WHERE model = ? LIMIT 1", (model,)).fetchone()
            is None
        ):
            continue
        # Each id's first prediction, as in prediction_ids.
        where: dict[str, Spot] = {}
        for arrival in arrivals:
            for row, pid in enumerate(arrival.prediction_ids):
                where.setdefault(pid, (arrival.window_id, arrival.seq, row))
        keys = list(where)
        for i in range(0, len(keys), CHUNK):
            chunk = keys[i : i + CHUNK]
            found = db.execute(
                "SELECT prediction_id, value_text, value_num, received_ms FROM pending_labels "
                f"WHERE model = ? AND prediction_id IN ({marks(len(chunk))})",
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
    _add_labelled(db, windows)
    return joined, set(windows)


def _add_labelled(db: sqlite3.Connection, windows: Counter[int]) -> None:
    """Count new labels in their windows and mark them for evaluation.

    Open windows too: a label landing while the closing evaluation runs (after it read the
    labels, before it stored its results and set ``closed``) is then still pending once the
    window is closed, since the closing evaluation only takes off the marks it saw before
    reading.
    """
    db.executemany(
        "UPDATE windows SET labelled = labelled + ?, needs_eval = needs_eval + 1 WHERE id = ?",
        [(n, wid) for wid, n in windows.items()],
    )


def _bump(db: sqlite3.Connection, model: str, counts: Mapping[str, int]) -> None:
    db.executemany(
        "INSERT INTO label_counters (model, name, value) VALUES (?, ?, ?) "
        "ON CONFLICT (model, name) DO UPDATE SET value = value + excluded.value",
        [(model, name, n) for name, n in counts.items() if n],
    )
