"""The LabelStore contract: labels late, early (waiting, then joined by ingest), replaced,
pending and expired; predictions read from the batches; the retention prune."""

from __future__ import annotations

import uuid

from inferwatch.collector.labels.join import labelled_pairs
from inferwatch.collector.labels.reach import IdReach
from inferwatch.collector.labels.store import LabelRecord
from inferwatch.collector.storage import Storage

from .conftest import Backend
from .helpers import MINUTE_MS, batch, uuid7, window


def test_label_join_reads_predictions_from_batches_and_prunes_old_ones(storage: Storage) -> None:
    old, new = window(0), window(10)
    outcome = storage.windows.ingest(
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
    applied = storage.labels.apply("m", labels, now_ms=5_000)
    assert (applied.joined, applied.pending, applied.windows) == (2, 0, {old_id, new_id})
    again = storage.labels.apply("m", [LabelRecord("a1", "no", None)], now_ms=6_000)
    assert (again.joined, again.replaced, again.windows) == (1, 1, set())
    (pair,) = labelled_pairs(storage.labels.for_window(old_id))
    assert (pair.prediction_text, pair.label_text, pair.delay_ms) == ("yes", "no", 6_000)
    (pair,) = labelled_pairs(storage.labels.for_window(new_id))
    assert (pair.prediction_text, pair.label_text) == ("yes", "no")

    # A label that came first waits, and joins when its prediction is stored.
    early = storage.labels.apply("m", [LabelRecord("c0", "yes", None)], now_ms=7_000)
    assert early.pending == 1
    late = storage.windows.ingest([batch(b"c", new, ["c0"], ["no"])], now_ms=8_000)
    assert (late.labels_joined, late.labelled_windows) == (1, {new_id})
    assert len(labelled_pairs(storage.labels.for_window(new_id))) == 2

    # Past the retention horizon the old window's predictions go; the new window keeps its own.
    pruned = storage.labels.prune(cutoff_ms=2 * MINUTE_MS)
    assert pruned.predictions_deleted == 3  # a0, a1 (first seen there) and a2
    assert storage.labels.for_window(old_id) == []
    assert len(labelled_pairs(storage.labels.for_window(new_id))) == 2
    gone = storage.labels.apply("m", [LabelRecord("a0", "yes", None)], now_ms=9_000)
    assert (gone.joined, gone.pending) == (0, 1)


def test_label_join_finds_uuid_ids_stored_by_range_or_one_by_one(storage: Storage) -> None:
    old, new = window(0), window(10)
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
    outcome = storage.windows.ingest(
        [
            batch(name.encode(), where, ids, [f"{name}{row}" for row in range(len(ids))])
            for name, (where, ids) in spans.items()
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
    applied = storage.labels.apply("m", labels + [LabelRecord(p, "x", None) for p in unknown], 1)
    assert (applied.joined, applied.pending) == (len(expected), 3)
    joined = {
        pair.prediction_text
        for window_id in (old_id, new_id)
        for pair in labelled_pairs(storage.labels.for_window(window_id))
    }
    assert joined == set(expected.values()) and expected[uuid7(1000, 11)] == "a2"
    again = storage.labels.apply("m", [LabelRecord(uuid7(1000, 20), "y", None)], 2)
    assert (again.joined, again.replaced, again.windows) == (1, 1, set())

    pruned = storage.labels.prune(cutoff_ms=2 * MINUTE_MS)
    assert pruned.predictions_deleted == 5  # batches a and b
    gone = storage.labels.apply("m", [LabelRecord(uuid7(1000, 11), "x", None)], 3)
    kept = storage.labels.apply("m", [LabelRecord(uuid7(2001, 1), "z", None)], 3)
    assert (gone.pending, kept.joined, kept.replaced) == (1, 1, 1)


def test_label_join_finds_a_key_past_a_match_across_two_keys(storage: Storage) -> None:
    # The key of row 2 is also the end of row 0 and the start of row 1: its first match in the
    # batch's keys is across two keys, its row is further on.
    ms = bytes.fromhex("a00102030405")
    first, second = ms + b"\0\1" + ms + b"\0\2", ms + b"\0\3" + bytes(8)
    keys = [first, second, first[8:] + second[:8]]
    ids = [str(uuid.UUID(bytes=key)) for key in keys]
    outcome = storage.windows.ingest([batch(b"a", window(0), ids, ["r0", "r1", "r2"])], 0)
    (stored,) = outcome.stored
    assert stored is not None
    applied = storage.labels.apply("m", [LabelRecord(ids[2], "x", None)], 1)
    assert (applied.joined, applied.pending) == (1, 0)
    (pair,) = labelled_pairs(storage.labels.for_window(stored.window_id))
    assert pair.prediction_text == "r2"


def test_label_join_finds_ids_in_a_batch_too_long_to_cut_whole(storage: Storage) -> None:
    # 5,000 rows of one millisecond: past the rows whose keys the join cuts out in SQLite.
    ids = [uuid7(6000, 2 * row) for row in range(5000)]
    predicted = [f"r{row}" for row in range(5000)]
    outcome = storage.windows.ingest([batch(b"long", window(0), ids, predicted)], 0)
    (stored,) = outcome.stored
    assert stored is not None
    between = uuid7(6000, 2 * 4321 + 1)  # of the batch's millisecond and range, not in it
    labels = [LabelRecord(pid, "x", None) for pid in (ids[4321], ids[0], between)]
    applied = storage.labels.apply("m", labels, 1)
    assert (applied.joined, applied.pending) == (2, 1)
    pairs = labelled_pairs(storage.labels.for_window(stored.window_id))
    assert sorted(pair.prediction_text for pair in pairs) == ["r0", "r4321"]


def test_label_join_takes_the_first_prediction_across_windows_and_indexes(
    storage: Storage,
) -> None:
    early, late = window(10), window(0)
    ranged, listed = uuid7(1000, 1), uuid7(2000, 1)
    # Stored in this order: the first batch of each id is in the later window, and one is
    # indexed by range, the other id by id (a batch with a non-UUID id), each way round.
    outcome = storage.windows.ingest(
        [
            batch(b"a", early, [uuid7(1000, 0), ranged], ["a0", "a1"]),
            batch(b"b", early, ["order-1", listed], ["b0", "b1"]),
            batch(b"c", late, ["order-2", ranged], ["c0", "c1"]),
            batch(b"d", late, [listed, uuid7(2000, 2)], ["d0", "d1"]),
        ],
        now_ms=0,
    )
    early_id, late_id = (outcome.stored[i].window_id for i in (0, 2))  # type: ignore[union-attr]
    labels = [LabelRecord(pid, "x", None) for pid in (ranged, listed, "order-2")]
    # The same id twice in one request: the last counts, the first is replaced.
    labels += [LabelRecord("order-2", "y", None), LabelRecord("not-yet", "z", None)]
    applied = storage.labels.apply("m", labels, 1)
    assert (applied.accepted, applied.joined, applied.pending, applied.replaced) == (5, 3, 1, 1)
    assert applied.windows == {early_id, late_id}
    at_early = labelled_pairs(storage.labels.for_window(early_id))
    assert sorted((p.prediction_text, p.label_text) for p in at_early) == [
        ("a1", "x"),
        ("b1", "x"),
    ]
    ((text, label),) = (
        (p.prediction_text, p.label_text)
        for p in labelled_pairs(storage.labels.for_window(late_id))
    )
    assert (text, label) == ("c0", "y")
    arrived = storage.windows.ingest([batch(b"e", late, ["not-yet"], ["e0"])], 2)
    assert arrived.labels_joined == 1


def test_uuid7_labels_join_near_their_time_or_anywhere_else(storage: Storage) -> None:
    # Windows of a minute: an id of time t is looked for first in windows ending within
    # [t - 1 min, t + 2 min] (PostgreSQL: the partitions of those days), then everywhere.
    reach = IdReach(before_ms=MINUTE_MS, after_ms=2 * MINUTE_MS)
    day = 24 * 60  # minutes
    just_before_midnight = (4 * day - 1) * MINUTE_MS + 30_000  # day 3, 23:59:30
    seen_twice = (6 * day + 10) * MINUTE_MS + 1_000
    spans = {
        # Made on day 3, in the window ending at midnight: day 4's partition.
        "midnight": (window(4 * day - 1), [uuid7(just_before_midnight, 1)]),
        "old": (window(0), [uuid7(10_000, 1), uuid7(10_000, 2)]),
        "other": (window(2 * day), ["order-1", str(uuid.UUID(int=12345, version=4))]),
        # A UUIDv7 made 20 days after its window: not within reach, found by the fallback.
        "far": (window(day + 5), [uuid7(20 * day * MINUTE_MS, 1)]),
        # Within reach twice, in two windows: the first batch counts.
        "first": (window(6 * day + 10), [uuid7(seen_twice, 1), uuid7(seen_twice, 2)]),
        "again": (window(6 * day + 11), [uuid7(seen_twice, 2), uuid7(seen_twice, 3)]),
    }
    outcome = storage.windows.ingest(
        [
            batch(name.encode(), where, ids, [f"{name}{row}" for row in range(len(ids))])
            for name, (where, ids) in spans.items()
        ],
        now_ms=0,
    )
    window_ids = {s.window_id for s in outcome.stored if s is not None}
    expected = {
        pid: f"{name}{row}"
        for name, (_, ids) in reversed(spans.items())
        for row, pid in enumerate(ids)
    }
    assert expected[uuid7(seen_twice, 2)] == "first1"
    labels = [LabelRecord(pid, "x", None) for pid in expected]
    labels.append(LabelRecord(uuid7(just_before_midnight, 2), "x", None))  # not stored
    applied = storage.labels.apply("m", labels, 1, reach)
    assert (applied.joined, applied.pending, applied.windows) == (len(expected), 1, window_ids)
    joined = [
        pair.prediction_text
        for window_id in window_ids
        for pair in labelled_pairs(storage.labels.for_window(window_id))
    ]
    assert sorted(joined) == sorted(expected.values())


def test_labels_count_in_their_windows_and_mark_them(backend: Backend) -> None:
    storage = backend.open()
    outcome = storage.windows.ingest(
        [batch(b"a", window(0), ["a0", "a1"]), batch(b"b", window(1), ["b0"])], 0
    )
    first, second = (s.window_id for s in outcome.stored if s is not None)
    storage.windows.save_evaluation(first, [], {}, 0, close=True)

    applied = storage.labels.apply(
        "m", [LabelRecord("a0", "yes", None), LabelRecord("b0", "2", 2.0)], 1_000
    )
    assert applied.windows == {first, second}
    storage = backend.reopen(storage)
    closed, still_open = storage.windows.find("m")
    # Ingest marked both windows once; the closing evaluation of the first took off none.
    assert (closed.labelled, closed.needs_eval) == (1, 2)  # closed: evaluated again
    # Open: marked as well, so a label landing during the closing evaluation is not lost.
    assert (still_open.labelled, still_open.needs_eval) == (1, 2)
    # A replaced label changes no count; it is the label that counts afterwards.
    storage.labels.apply("m", [LabelRecord("b0", "3", 3.0)], 2_000)
    assert storage.windows.find("m")[1].labelled == 1
    (labelled,) = storage.labels.for_window(second)
    assert labelled.labels == [(0, "3", 3.0, 0)]  # labelled before its span began: no delay
    # Labels are per model: another model's label for the same id waits.
    elsewhere = storage.labels.apply("n", [LabelRecord("a0", "no", None)], 2_000)
    assert (elsewhere.joined, elsewhere.pending) == (0, 1)


def test_waiting_labels_join_replace_and_expire(backend: Backend) -> None:
    storage = backend.open()
    waiting = storage.labels.apply(
        "m",
        [LabelRecord(pid, "yes", None) for pid in ("e0", "e1", "e2", "e1")],
        now_ms=1_000,
    )
    assert (waiting.accepted, waiting.joined, waiting.pending, waiting.replaced) == (4, 0, 3, 1)
    # Sent again while waiting: replaced, still waiting.
    again = storage.labels.apply("m", [LabelRecord("e0", "no", None)], now_ms=5_000)
    assert (again.pending, again.replaced) == (1, 1)
    storage = backend.reopen(storage)
    assert storage.labels.counters("m") == {
        "accepted": 5,
        "replaced": 2,
        "expired": 0,
        "pending": 3,
    }

    joined = storage.windows.ingest([batch(b"a", window(0), ["x", "e0"], ["no", "yes"])], 6_000)
    (stored,) = joined.stored
    assert stored is not None
    assert (joined.labels_joined, joined.labelled_windows) == (1, {stored.window_id})
    (labelled,) = storage.labels.for_window(stored.window_id)
    assert labelled.labels == [(1, "no", None, 5_000)]  # the last label sent, delay from ts 0

    # e1 and e2 waited since 1,000: past a cutoff of 2,000 they expire.
    pruned = storage.labels.prune(cutoff_ms=2_000)
    assert pruned.labels_expired == {"m": 2}
    assert storage.labels.counters("m") == {
        "accepted": 5,
        "replaced": 2,
        "expired": 2,
        "pending": 0,
    }
    late = storage.windows.ingest([batch(b"b", window(0), ["e1"])], 7_000)
    assert late.labels_joined == 0
    assert storage.labels.counters("unknown") == {
        "accepted": 0,
        "replaced": 0,
        "expired": 0,
        "pending": 0,
    }
