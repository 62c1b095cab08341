"""The WindowStore contract: dedupe, stable window ids, the journal and checkpoints, window
states, evaluation marks, queries and the history thresholds read."""

from __future__ import annotations

from inferwatch.collector.storage import Storage
from inferwatch.collector.window.store import EvaluatedWindow, PastScore, StoredBatch

from .conftest import Backend
from .helpers import MINUTE_MS, batch, result, window


def test_a_span_seen_before_is_dropped_until_its_key_is_forgotten(backend: Backend) -> None:
    storage = backend.open()
    first = storage.windows.ingest(
        [
            batch(b"a", window(0), ["a0"]),
            batch(b"b", window(0), ["b0"]),
            batch(b"a", window(0), ["x"]),
        ],
        now_ms=1_000,
    )
    assert [s is not None for s in first.stored] == [True, True, False]
    storage = backend.reopen(storage)
    again = storage.windows.ingest([batch(b"a", window(0), ["a0"])], now_ms=2_000)
    assert again.stored == [None]
    (record,) = storage.windows.find("m")
    assert (record.requests, record.rows) == (2, 2)

    storage.windows.forget_dedupe_keys(before_ms=1_500)  # a and b were seen at 1,000
    later = storage.windows.ingest([batch(b"a", window(0), ["a0"])], now_ms=3_000)
    assert later.stored[0] is not None
    assert storage.windows.find("m")[0].requests == 3


def test_spans_whose_ids_run_together_alike_are_not_duplicates(backend: Backend) -> None:
    storage = backend.open()
    outcome = storage.windows.ingest(
        [
            batch(b"bbcc", window(0), ["first"], trace_id=b"aa"),
            batch(b"cc", window(0), ["second"], trace_id=b"aabb"),
            batch(b"", window(0), ["third"], trace_id=b"aabbcc"),
            batch(b"bbcc", window(0), ["retry of the first"], trace_id=b"aa"),
        ],
        now_ms=1_000,
    )
    assert [s is not None for s in outcome.stored] == [True, True, True, False]
    storage = backend.reopen(storage)
    again = storage.windows.ingest([batch(b"cc", window(0), ["second"], trace_id=b"aabb")], 2_000)
    assert again.stored == [None]


def test_window_ids_are_stable_across_restarts(backend: Backend) -> None:
    storage = backend.open()
    (stored,) = storage.windows.ingest([batch(b"a", window(0), ["a0", "a1"])], 0).stored
    assert stored is not None
    storage = backend.reopen(storage)
    outcome = storage.windows.ingest(
        [
            batch(b"b", window(0), ["b0"]),
            batch(b"c", window(1), ["c0"]),
            batch(b"d", window(0, version="2"), ["d0"]),
        ],
        0,
    )
    same, later, other_version = (s.window_id for s in outcome.stored if s is not None)
    assert same == stored.window_id
    assert len({same, later, other_version}) == 3
    record = storage.windows.get("m", same)
    assert record is not None
    assert (record.start_ms, record.end_ms, record.requests, record.rows) == (0, MINUTE_MS, 2, 3)
    # Each ingest that reached the window marks it, open or not.
    assert (record.closed, record.labelled, record.needs_eval, record.results) == (
        False,
        0,
        2,
        None,
    )
    assert storage.windows.get("other-model", same) is None
    assert storage.windows.get("m", 10_000) is None


def test_a_checkpoint_stores_states_and_drops_the_journal_it_covers(backend: Backend) -> None:
    storage = backend.open()
    outcome = storage.windows.ingest(
        [batch(bytes([k]), window(k % 2), [f"p{k}"], payload=b"batch %d" % k) for k in range(4)],
        0,
    )
    stored = [s for s in outcome.stored if s is not None]
    assert list(storage.windows.pending_batches()) == stored
    assert [s.payload for s in stored] == [b"batch 0", b"batch 1", b"batch 2", b"batch 3"]
    assert stored == sorted(stored, key=lambda s: s.seq)
    first, second = stored[0].window_id, stored[1].window_id

    storage.windows.checkpoint("a", {first: b"state a"}, upto_seq=stored[1].seq)
    storage.windows.checkpoint("b", {first: b"state b", second: b"b2"}, upto_seq=stored[1].seq)
    storage = backend.reopen(storage)
    assert list(storage.windows.pending_batches()) == stored[2:]
    assert storage.windows.states(first) == {"a": b"state a", "b": b"state b"}
    storage.windows.checkpoint("a", {first: b"state a, later"}, upto_seq=stored[3].seq)
    assert list(storage.windows.pending_batches()) == []
    assert storage.windows.states(first) == {"a": b"state a, later", "b": b"state b"}
    assert storage.windows.states(second) == {"b": b"b2"}
    assert storage.windows.states(12_345) == {}
    # Stored batches keep coming after the journal was emptied.
    (late,) = storage.windows.ingest([batch(b"late", window(0), ["q"])], 0).stored
    assert isinstance(late, StoredBatch) and late.seq > stored[3].seq
    assert list(storage.windows.pending_batches()) == [late]


def test_evaluation_marks_count_changes_since_the_last_evaluation(storage: Storage) -> None:
    (stored,) = storage.windows.ingest([batch(b"a", window(0), ["a0"])], 0).stored
    assert stored is not None
    wid = stored.window_id
    # Spans of an open window mark it too; the closing evaluation takes off the marks it saw
    # before reading the window, so what lands while it runs is evaluated again.
    storage.windows.ingest([batch(b"b", window(0), ["b0"])], 0)
    (open_record,) = storage.windows.find(closed=False, needs_eval=True)
    assert open_record.needs_eval == 2

    results = [result("ok", 0.0)]
    storage.windows.save_evaluation(
        wid, results, {"requests": 2}, 5_000, close=True, marks_seen=open_record.needs_eval
    )
    (record,) = storage.windows.find(closed=True)
    assert (record.closed, record.needs_eval, record.evaluated_ms) == (True, 0, 5_000)
    assert (record.results, record.details) == (results, {"requests": 2})

    storage.windows.ingest([batch(b"c", window(0), ["c0"])], 0)  # late: marks it
    storage.windows.mark_for_evaluation({wid})
    (marked,) = storage.windows.find(closed=True, needs_eval=True)
    assert marked.needs_eval == 2 and storage.windows.find(needs_eval=False) == []
    # An evaluation takes off the marks it saw; one that came meanwhile stays.
    storage.windows.mark_for_evaluation({wid})
    storage.windows.save_evaluation(wid, results, {}, 6_000, close=False, marks_seen=2)
    (still,) = storage.windows.find(needs_eval=True)
    assert (still.closed, still.needs_eval, still.evaluated_ms) == (True, 1, 6_000)
    storage.windows.save_evaluation(wid, results, {}, 7_000, close=False, marks_seen=5)
    assert storage.windows.find(needs_eval=True) == []


def test_windows_are_found_by_model_version_time_and_state(storage: Storage) -> None:
    keys = [window(2), window(0), window(1), window(0, version="2"), window(0, model="n")]
    outcome = storage.windows.ingest(
        [batch(bytes([k]), key, ["x"] * (k + 1)) for k, key in enumerate(keys)], 0
    )
    ids = [s.window_id for s in outcome.stored if s is not None]
    storage.windows.save_evaluation(ids[1], [], {}, 0, close=True)

    def found(**query: object) -> list[int]:
        return [record.id for record in storage.windows.find(**query)]  # type: ignore[arg-type]

    assert found() == [ids[1], ids[3], ids[4], ids[2], ids[0]]  # by start, then id
    assert found(model="m") == [ids[1], ids[3], ids[2], ids[0]]
    assert found(model="m", version="1") == [ids[1], ids[2], ids[0]]
    # Windows overlapping [start, end).
    assert found(model="m", version="1", start_ms=MINUTE_MS) == [ids[2], ids[0]]
    assert found(model="m", version="1", end_ms=MINUTE_MS) == [ids[1]]
    assert found(model="m", start_ms=MINUTE_MS // 2, end_ms=MINUTE_MS + 1) == [
        ids[1],
        ids[3],
        ids[2],
    ]
    assert found(closed=True) == [ids[1]]
    assert found(model="m", closed=False, limit=2) == [ids[3], ids[2]]

    versions = storage.windows.versions()
    assert [(v.model, v.version, v.windows, v.rows) for v in versions] == [
        ("m", "1", 3, 2 + 3 + 1),
        ("m", "2", 1, 4),
        ("n", "1", 1, 5),
    ]
    assert (versions[0].first_ms, versions[0].last_ms, versions[0].labelled) == (
        0,
        3 * MINUTE_MS,
        0,
    )


def test_past_scores_are_the_latest_windows_scored_rows_newest_first(storage: Storage) -> None:
    outcome = storage.windows.ingest([batch(bytes([k]), window(k), ["x"]) for k in range(5)], 0)
    for k, stored in enumerate(outcome.stored):
        assert stored is not None
        rerated = result("alert", 0.1 * k, "ks", feature="age", details={"check_decision": "ok"})
        rows = [result("ok", 0.5 * k, "ks"), rerated, result("ok", None)]
        storage.windows.save_evaluation(stored.window_id, rows, {}, 0, close=True)

    scores = storage.windows.past_scores("m", "1", "ks", before_ms=4 * MINUTE_MS, windows=2)
    assert scores == [
        PastScore(3 * MINUTE_MS, None, 1.5, "ok", None),
        PastScore(3 * MINUTE_MS, "age", 0.30000000000000004, "alert", "ok"),
        PastScore(2 * MINUTE_MS, None, 1.0, "ok", None),
        PastScore(2 * MINUTE_MS, "age", 0.2, "alert", "ok"),
    ]
    assert storage.windows.past_scores("m", "1", "error_rate", 10 * MINUTE_MS, 9) == []
    assert storage.windows.past_scores("m", "2", "ks", 10 * MINUTE_MS, 9) == []


def test_latest_evaluated_is_each_versions_newest_closed_window(storage: Storage) -> None:
    keys = [window(0), window(1), window(2), window(0, version="2"), window(5, model="n")]
    outcome = storage.windows.ingest(
        [batch(bytes([k]), key, ["x"] * (k + 1)) for k, key in enumerate(keys)], 0
    )
    ids = [s.window_id for s in outcome.stored if s is not None]
    # m/1: windows 0 and 1 closed, 2 still open; m/2 closed; n/1 evaluated but not closed.
    for wid in (ids[1], ids[0], ids[3]):
        storage.windows.save_evaluation(wid, [result("ok", 0.1)], {}, 7, close=True)
    storage.windows.save_evaluation(ids[4], [], {}, 7, close=False)

    latest = storage.windows.latest_evaluated()
    assert latest == [EvaluatedWindow("m", "1", ids[1], 7), EvaluatedWindow("m", "2", ids[3], 7)]
