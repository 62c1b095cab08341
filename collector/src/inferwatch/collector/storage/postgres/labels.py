"""``LabelStore`` on PostgreSQL, and the join of waiting labels that ingest runs in its
transaction.

A label is stored at its prediction's first (window, batch, row); one whose prediction is not
stored yet waits in pending_labels. Replicas may store a prediction and its label at the same
moment, each transaction blind to the other's: then the label would wait for a prediction that
is already there. So a label's transaction holds its model's label lock exclusively, and an
ingest holds the lock of each of its models shared: a label sees every prediction committed
before it, and an ingest every label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from inferwatch.collector.labels.reach import IdReach
from inferwatch.collector.labels.store import (
    LabelledBatch,
    LabelOutcome,
    LabelRecord,
    PruneOutcome,
)
from inferwatch.collector.storage.postgres.database import Database
from inferwatch.collector.storage.postgres.prediction_index import (
    DAY_MS,
    Spot,
    first_predictions,
    id_keys,
    partition_day,
    partitions,
)

# pg_advisory_xact_lock(LABEL_LOCK, hashtext(model)); see the module's docstring.
LABEL_LOCK = 0x1F3A0003
# Keys per ANY(...) array: one statement each.
CHUNK = 5000

_UPSERT_LABELS = (
    "INSERT INTO labels (window_id, batch, row, label_text, label_num, label_ms) "
    "SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::integer[], %b::text[], "
    "%b::double precision[], %b::bigint[]) "
    "ON CONFLICT (window_id, batch, row) DO UPDATE SET label_text = excluded.label_text, "
    "label_num = excluded.label_num, label_ms = excluded.label_ms"
)


@dataclass(frozen=True, slots=True)
class Arrival:
    """A stored batch's prediction ids, for joining labels that came first."""

    window_id: int
    seq: int
    prediction_ids: Sequence[str]


def lock_models(conn: psycopg.Connection[Any], models: Iterable[str], *, shared: bool) -> None:
    """Take the label locks of ``models`` for the transaction, in one order (no deadlock)."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    for model in sorted(set(models)):
        conn.execute(f"SELECT {function}(%s, hashtext(%s))", (LABEL_LOCK, model))


class PostgresLabelStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def apply(
        self,
        model: str,
        labels: Sequence[LabelRecord],
        now_ms: int,
        reach: IdReach | None = None,
    ) -> LabelOutcome:
        latest = {label.prediction_id: label for label in labels}
        replaced = len(labels) - len(latest)
        joined = pending = 0
        windows: Counter[int] = Counter()
        ids = list(latest)
        with self._db.transaction() as conn:
            lock_models(conn, [model], shared=False)
            known = conn.execute("SELECT key FROM model_keys WHERE model = %s", (model,)).fetchone()
            model_key = known[0] if known else None
            for i in range(0, len(ids), CHUNK):
                chunk = ids[i : i + CHUNK]
                keys = dict(zip(id_keys(chunk), chunk, strict=True))
                found: dict[bytes, tuple[Spot, bool]] = {}
                if model_key is not None:
                    found = first_predictions(conn, model_key, list(keys), reach)
                joining = [(spot, latest[keys[key]]) for key, (spot, _) in found.items()]
                _upsert_labels(
                    conn,
                    [(*spot, label.value_text, label.value_num, now_ms) for spot, label in joining],
                )
                for (window_id, _, _), labelled in found.values():
                    if labelled:
                        replaced += 1
                    else:
                        windows[window_id] += 1
                joined += len(found)
                waiting = [key for key in keys if key not in found]
                if not waiting:
                    continue
                (already,) = _one(
                    conn,
                    "SELECT COUNT(*) FROM pending_labels WHERE model = %s AND id_key = ANY(%b)",
                    (model, waiting),
                )
                replaced += already
                pending += len(waiting)
                conn.execute(
                    "INSERT INTO pending_labels (model, id_key, value_text, value_num, "
                    "received_ms) SELECT %s, * FROM unnest(%b::bytea[], %b::text[], "
                    "%b::double precision[], %b::bigint[]) ON CONFLICT (model, id_key) DO "
                    "UPDATE SET value_text = excluded.value_text, value_num = excluded.value_num, "
                    "received_ms = excluded.received_ms",
                    (
                        model,
                        waiting,
                        [latest[keys[key]].value_text for key in waiting],
                        [latest[keys[key]].value_num for key in waiting],
                        [now_ms] * len(waiting),
                    ),
                )
            add_labelled(conn, windows)
            _bump(conn, model, {"accepted": len(labels), "replaced": replaced})
        return LabelOutcome(len(labels), joined, pending, replaced, set(windows))

    def for_window(self, window_id: int) -> list[LabelledBatch]:
        by_batch: dict[int, tuple[bytes, list[tuple[int, str, float | None, int]]]] = {}
        with self._db.reader() as conn:
            rows = conn.execute(
                "SELECT l.batch, l.row, l.label_text, l.label_num, "
                "GREATEST(l.label_ms - b.ts_ms, 0), b.outputs FROM labels l "
                "JOIN prediction_batches b ON b.seq = l.batch "
                "WHERE l.window_id = %s ORDER BY l.batch, l.row",
                (window_id,),
            ).fetchall()
        for batch, row, text, num, delay, outputs in rows:
            entry = by_batch.get(batch)
            if entry is None:
                entry = by_batch[batch] = (bytes(outputs), [])
            entry[1].append((row, text, num, delay))
        return [LabelledBatch(outputs, labelled) for outputs, labelled in by_batch.values()]

    def counters(self, model: str) -> dict[str, int]:
        with self._db.reader() as conn:
            counters = dict(
                conn.execute(
                    "SELECT name, value FROM label_counters WHERE model = %s", (model,)
                ).fetchall()
            )
            (waiting,) = _one(
                conn, "SELECT COUNT(*) FROM pending_labels WHERE model = %s", (model,)
            )
        return {
            "accepted": counters.get("accepted", 0),
            "replaced": counters.get("replaced", 0),
            "expired": counters.get("expired", 0),
            "pending": waiting,
        }

    def prune(self, cutoff_ms: int) -> PruneOutcome:
        deleted = 0
        with self._db.transaction() as conn:
            expired = dict(
                conn.execute(
                    "SELECT model, COUNT(*) FROM pending_labels WHERE received_ms < %s "
                    "GROUP BY model",
                    (cutoff_ms,),
                ).fetchall()
            )
            for model, n in expired.items():
                _bump(conn, model, {"expired": n})
            conn.execute("DELETE FROM pending_labels WHERE received_ms < %s", (cutoff_ms,))
            # Days wholly before the cutoff go as tables; the day it cuts, row by row.
            for day, name in sorted(partitions(conn).items()):
                if (day + 1) * DAY_MS <= cutoff_ms:
                    table = psycopg.sql.Identifier(name)
                    (rows,) = _one(conn, psycopg.sql.SQL("SELECT COUNT(*) FROM {}").format(table))
                    conn.execute(psycopg.sql.SQL("DROP TABLE {}").format(table))
                    deleted += rows
            if partition_day(cutoff_ms) * DAY_MS < cutoff_ms:
                deleted += conn.execute(
                    "DELETE FROM prediction_ids WHERE window_end_ms < %s", (cutoff_ms,)
                ).rowcount
            old_windows = "SELECT id FROM windows WHERE end_ms < %s"
            conn.execute(f"DELETE FROM labels WHERE window_id IN ({old_windows})", (cutoff_ms,))
            conn.execute(
                f"DELETE FROM prediction_batches WHERE window_id IN ({old_windows})", (cutoff_ms,)
            )
        return PruneOutcome(deleted, expired)


def join_waiting(
    conn: psycopg.Connection[Any], arrived: Mapping[str, list[Arrival]]
) -> tuple[int, Counter[int]]:
    """Labels that arrived before their predictions meet them now (inside ingest's
    transaction, which holds the models' label locks): how many joined, and how many in each
    window (which the caller adds to the windows, with ``add_labelled``)."""
    joined = 0
    windows: Counter[int] = Counter()
    for model, arrivals in sorted(arrived.items()):
        if (
            conn.execute(
                "SELECT 1 FROM pending_labels WHERE model = %s LIMIT 1", (model,)
            ).fetchone()
            is None
        ):
            continue
        # Each id's first prediction among these batches (an earlier batch's would have met
        # its label then).
        where: dict[bytes, Spot] = {}
        for arrival in arrivals:
            for row, key in enumerate(id_keys(arrival.prediction_ids)):
                where.setdefault(key, (arrival.window_id, arrival.seq, row))
        keys = list(where)
        for i in range(0, len(keys), CHUNK):
            found = conn.execute(
                "DELETE FROM pending_labels WHERE model = %s AND id_key = ANY(%b) "
                "RETURNING id_key, value_text, value_num, received_ms",
                (model, keys[i : i + CHUNK]),
            ).fetchall()
            if not found:
                continue
            _upsert_labels(
                conn, [(*where[bytes(key)], text, num, ms) for key, text, num, ms in found]
            )
            joined += len(found)
            windows.update(where[bytes(key)][0] for key, *_ in found)
    return joined, windows


def add_labelled(conn: psycopg.Connection[Any], windows: Counter[int]) -> None:
    """Count new labels in their windows and mark them for evaluation (open windows too: see
    the SQLite backend's labels module), in id order so that transactions never deadlock."""
    if windows:
        ordered = sorted(windows)
        lock_windows(conn, ordered)
        conn.execute(
            "UPDATE windows w SET labelled = w.labelled + n.count, needs_eval = w.needs_eval + 1 "
            "FROM unnest(%b::bigint[], %b::bigint[]) AS n (id, count) WHERE w.id = n.id",
            (ordered, [windows[wid] for wid in ordered]),
        )


def lock_windows(conn: psycopg.Connection[Any], window_ids: Sequence[int]) -> None:
    """Lock these windows' rows for the transaction in id order: transactions that update
    several windows then never wait for each other in a cycle."""
    conn.execute(
        "SELECT id FROM windows WHERE id = ANY(%b) ORDER BY id FOR UPDATE", (sorted(window_ids),)
    ).fetchall()


def _upsert_labels(
    conn: psycopg.Connection[Any], rows: list[tuple[int, int, int, str, float | None, int]]
) -> None:
    if rows:
        conn.execute(_UPSERT_LABELS, [list(column) for column in zip(*rows, strict=True)])


def _bump(conn: psycopg.Connection[Any], model: str, counts: Mapping[str, int]) -> None:
    named = [(name, n) for name, n in sorted(counts.items()) if n]
    if named:
        conn.execute(
            "INSERT INTO label_counters (model, name, value) SELECT %s, * FROM "
            "unnest(%b::text[], %b::bigint[]) ON CONFLICT (model, name) "
            "DO UPDATE SET value = label_counters.value + excluded.value",
            (model, [name for name, _ in named], [n for _, n in named]),
        )


def _one(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row
