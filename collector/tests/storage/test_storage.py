"""The SQLite storage on a real file: the alert store behaves like the reference in-memory one
and keeps its state across reopening; the label join's per-batch layout and its pruning."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from inferwatch.collector.alerts import AlertEngine, AlertPolicy, MemoryAlertStore, WindowResults
from inferwatch.collector.detectors import Result
from inferwatch.collector.labels.join import labelled_pairs
from inferwatch.collector.settings import ConfigError
from inferwatch.collector.storage.base import IncomingBatch, LabelRecord, WindowKey
from inferwatch.collector.storage.sqlite import SQLiteStorage
from inferwatch.frame import Frame, categorical, encode_frame

MINUTE_MS = 60_000


def result(decision: str, score: float) -> Result:
    return Result(
        detector="error_rate",
        score=score,
        threshold=0.05,
        decision=decision,
        message=f"error rate {score}",
    )


# (window, decision, score): a warning run opens, a critical failure escalates, neutral
# windows change nothing, a pass resolves, a re-evaluated old window is judged in order.
SCRIPT = [
    (1, "alert", 0.1),
    (2, "not_enough_data", 0.0),
    (3, "alert", 0.1),
    (4, "alert", 0.5),
    (5, "ok", 0.0),
    (6, "alert", 0.1),
    (7, "alert", 0.1),
    (6, "ok", 0.0),
    (8, "ok", 0.0),
]


def test_sqlite_alert_store_matches_the_memory_store_across_reopening(tmp_path: Path) -> None:
    policy = AlertPolicy.model_validate(
        {"consecutive": 2, "critical": {"error_rate": {"above": 0.3}}}
    )
    clock = iter(range(1_000, 100_000, 1_000))
    memory = MemoryAlertStore()
    reference = AlertEngine(memory, policy, clock=lambda: next(clock) / 1000)
    path = tmp_path / "alerts.db"
    seen: list[list[tuple[str, str, str]]] = [[], []]
    for step, (window, decision, score) in enumerate(SCRIPT):
        results = WindowResults(
            window, window * MINUTE_MS, (window + 1) * MINUTE_MS, [result(decision, score)]
        )
        storage = SQLiteStorage(path)  # reopened every window: nothing may live in memory
        engine = AlertEngine(storage, policy, clock=lambda step=step: step + 1.0)
        expected = reference.process("m", "1", results)
        got = engine.process("m", "1", results)
        seen[0] += [(e.kind, e.alert.severity, e.alert.state) for e in expected]
        seen[1] += [(e.kind, e.alert.severity, e.alert.state) for e in got]
        assert [(e.kind, e.alert.id) for e in got] == [(e.kind, e.alert.id) for e in expected]
        mine = [(a.id, a.state, a.severity, a.evidence) for a in storage.alerts("m")]
        theirs = [(a.id, a.state, a.severity, a.evidence) for a in memory.alerts("m")]
        assert mine == theirs
        assert storage.alerts("m", "open") == [a for a in storage.alerts("m") if a.state == "open"]
        storage.close()
    assert (
        seen[0]
        == seen[1]
        == [
            ("opened", "warning", "open"),
            ("escalated", "critical", "open"),
            ("resolved", "critical", "resolved"),
            ("opened", "warning", "open"),
            ("resolved", "warning", "resolved"),
        ]
    )


def batch(key: bytes, window: WindowKey, ids: list[str], predicted: list[str]) -> IncomingBatch:
    outputs = Frame(len(ids), (categorical("prediction", predicted),))
    return IncomingBatch(key, window, len(ids), b"raw", ids, window.start_ms, encode_frame(outputs))


def test_label_join_reads_predictions_from_batches_and_prunes_old_ones(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "labels.db")
    old = WindowKey("m", "1", 0, MINUTE_MS)
    new = WindowKey("m", "1", 10 * MINUTE_MS, 11 * MINUTE_MS)
    outcome = storage.ingest(
        [
            batch(b"a", old, ["a0", "a1", "a2"], ["no", "yes", "no"]),
            batch(b"b", new, ["b0", "a1"], ["yes", "yes"]),  # a1 again: the first one counts
            batch(b"a", old, ["x"], ["no"]),  # a duplicate span: dropped
        ],
        now_ms=0,
    )
    assert outcome.stored[2] is None
    old_id, new_id = outcome.stored[0].window_id, outcome.stored[1].window_id  # type: ignore[union-attr]
    labels = [LabelRecord("a1", "yes", None), LabelRecord("b0", "no", None)]
    applied = storage.apply_labels("m", labels, now_ms=5_000)
    assert (applied.joined, applied.pending, applied.windows) == (2, 0, {old_id, new_id})
    again = storage.apply_labels("m", [LabelRecord("a1", "no", None)], now_ms=6_000)
    assert (again.joined, again.replaced, again.windows) == (1, 1, set())
    (pair,) = labelled_pairs(storage.labelled_batches(old_id))
    assert (pair.prediction_text, pair.label_text, pair.delay_ms) == ("yes", "no", 6_000)
    (pair,) = labelled_pairs(storage.labelled_batches(new_id))
    assert (pair.prediction_text, pair.label_text) == ("yes", "no")

    # A label that came first waits, and joins when its prediction is stored.
    early = storage.apply_labels("m", [LabelRecord("c0", "yes", None)], now_ms=7_000)
    assert early.pending == 1
    late = storage.ingest([batch(b"c", new, ["c0"], ["no"])], now_ms=8_000)
    assert (late.labels_joined, late.labelled_windows) == (1, {new_id})
    assert len(labelled_pairs(storage.labelled_batches(new_id))) == 2

    # Past the retention horizon the old window's predictions go; the new window keeps its own.
    pruned = storage.prune(
        now_ms=5 * MINUTE_MS, prediction_horizon_ms=3 * MINUTE_MS, dedupe_horizon_ms=10**9
    )
    assert pruned.predictions_deleted == 3  # a0, a1 (first seen there) and a2
    assert storage.labelled_batches(old_id) == []
    assert len(labelled_pairs(storage.labelled_batches(new_id))) == 2
    gone = storage.apply_labels("m", [LabelRecord("a0", "yes", None)], now_ms=9_000)
    assert (gone.joined, gone.pending) == (0, 1)
    storage.close()


def uuid7(ms: int, low: int) -> str:
    """Canonical UUIDv7 text: ``ms`` in the first 48 bits, ``low`` in the last 62."""
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | low))


def test_label_join_finds_uuid_ids_stored_by_range_or_one_by_one(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "uuids.db")
    old = WindowKey("m", "1", 0, MINUTE_MS)
    new = WindowKey("m", "1", 10 * MINUTE_MS, 11 * MINUTE_MS)
    # Ids one SDK call makes (one millisecond) are indexed by range, out of order or not; the
    # others id by id. The key of a UUID is its bytes, so the same UUID in capitals is another id.
    spans = {
        "a": (old, [uuid7(1000, 12), uuid7(1000, 10), uuid7(1000, 11)]),
        "b": (old, [uuid7(1000, 11), uuid7(1000, 20)]),  # 11 again: batch a's counts
        "c": (new, [uuid7(2000, 1), uuid7(2001, 1)]),  # two milliseconds
        "d": (new, ["order-7", uuid7(3000, 5)]),
        "e": (new, [uuid7(4000, 1).upper()]),
        "f": (new, [uuid7(5000, 9)]),
    }
    # A key made of the end of one key of batch g and the start of the next is not in it,
    # though it is of g's millisecond and within its range.
    ms = bytes.fromhex("a00102030405")
    g = [ms + b"\0\0" + ms + b"\0\3", ms + b"\0\5" + bytes(8)]
    straddling = str(uuid.UUID(bytes=g[0][8:] + g[1][:8]))
    spans["g"] = (new, [str(uuid.UUID(bytes=key)) for key in g])
    outcome = storage.ingest(
        [
            batch(name.encode(), window, ids, [f"{name}{row}" for row in range(len(ids))])
            for name, (window, ids) in spans.items()
        ],
        now_ms=0,
    )
    old_id, new_id = (outcome.stored[i].window_id for i in (0, 2))  # type: ignore[union-attr]
    expected = {
        pid: f"{name}{row}"
        for name, (_, ids) in reversed(spans.items())
        for row, pid in enumerate(ids)
    }
    labels = [LabelRecord(pid, "x", None) for pid in expected]
    unknown = [uuid7(4000, 1), uuid7(1000, 13), straddling]
    applied = storage.apply_labels("m", labels + [LabelRecord(p, "x", None) for p in unknown], 1)
    assert (applied.joined, applied.pending) == (len(expected), 3)
    joined = {
        pair.prediction_text
        for window in (old_id, new_id)
        for pair in labelled_pairs(storage.labelled_batches(window))
    }
    assert joined == set(expected.values()) and expected[uuid7(1000, 11)] == "a2"
    again = storage.apply_labels("m", [LabelRecord(uuid7(1000, 20), "y", None)], 2)
    assert (again.joined, again.replaced, again.windows) == (1, 1, set())

    pruned = storage.prune(
        now_ms=5 * MINUTE_MS, prediction_horizon_ms=3 * MINUTE_MS, dedupe_horizon_ms=10**9
    )
    assert pruned.predictions_deleted == 5  # batches a and b
    gone = storage.apply_labels("m", [LabelRecord(uuid7(1000, 11), "x", None)], 3)
    kept = storage.apply_labels("m", [LabelRecord(uuid7(2001, 1), "z", None)], 3)
    assert (gone.pending, kept.joined, kept.replaced) == (1, 1, 1)
    storage.close()


def test_a_database_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SQLiteStorage(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(ConfigError, match="storage schema 1"):
        SQLiteStorage(path)
