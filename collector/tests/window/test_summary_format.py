"""The stored window summary (format version 3: the numeric columns as arrays) keeps everything
``to_dict()`` shows, in the same column order, for any finite or non-finite values and any names;
a summary stored by the release before (version 2: JSON, zlib) reads as it did."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

from inferwatch.collector.codec import WINDOW_SUMMARY
from inferwatch.collector.window.summaries import SummaryLayout, WindowSummary
from inferwatch.frame import Frame, categorical, numeric

LAYOUT = SummaryLayout(
    {("feature", "a"): np.array([-1.0, 0.0, 1.0]), ("output", "score"): np.array([0.5])},
    {("feature", "color"): ("red", "green")},
)


def v2_blob(summary: WindowSummary) -> bytes:
    """As the release before stored it: ``to_dict()`` as JSON, zlib level 6, one part."""
    payload = zlib.compress(json.dumps(summary.to_dict(), separators=(",", ":")).encode(), 6)
    return struct.pack("<4sHHQ", b"IWSM", 2, 1, len(payload)) + payload


def summary_of_everything() -> WindowSummary:
    rng = np.random.default_rng(1)
    summary = WindowSummary(LAYOUT, max_categories=2)
    for _ in range(3):
        a = rng.normal(size=(5, 1))
        a[0, 0] = np.nan
        summary.update(
            Frame(
                5,
                (
                    categorical("color", rng.choice(["red", "blue", "pink", "grey"], 5)),
                    numeric("a", a, names=["a"]),
                    # Columns the layout does not know, between and after the layout's.
                    numeric("x", rng.normal(size=(5, 2)), names=["new\udc80name", "huge"]),
                    categorical("tag", ["t"] * 5),
                    numeric("void", np.full((5, 1), np.inf), names=["void"]),
                ),
            ),
            Frame(5, (numeric("score", rng.random(5)),)),
        )
    summary.update(Frame(1, (numeric("x", [[0.0, 1.7e308]], names=["new\udc80name", "huge"]),)))
    summary.update(Frame(2, (categorical("a", ["s", "t"]),)))  # a type mismatch
    return summary


def test_every_value_and_the_column_order_round_trip() -> None:
    summary = summary_of_everything()
    blob = summary.to_bytes()
    assert WINDOW_SUMMARY.decode(blob).version == 3
    restored = WindowSummary.from_bytes(blob)
    assert restored.to_dict() == summary.to_dict()
    assert list(restored.columns) == list(summary.columns)
    assert restored.layout.matches(summary.layout)
    huge, original = restored.numeric("huge"), summary.numeric("huge")
    assert huge is not None and original is not None and huge.m2 == original.m2
    void = restored.numeric("void")
    assert void is not None and (void.count, void.non_finite, void.min) == (0, 15, None)
    # Updates and merges go on from the restored summary as from the original.
    more = Frame(3, (numeric("a", np.ones((3, 1)), names=["a"]),))
    summary.update(more)
    restored.update(more)
    assert restored.to_dict() == summary.to_dict()
    restored.merge(WindowSummary.from_bytes(summary.to_bytes()))
    summary.merge(WindowSummary.from_bytes(summary.to_bytes()))
    assert restored.to_dict() == summary.to_dict()


@pytest.mark.parametrize("empty", [False, True])
def test_a_summary_stored_by_the_release_before_reads_as_it_did(empty: bool) -> None:
    summary = WindowSummary(LAYOUT) if empty else summary_of_everything()
    old = WindowSummary.from_bytes(v2_blob(summary))
    assert old.to_dict() == summary.to_dict()
    assert WindowSummary.from_bytes(old.to_bytes()).to_dict() == summary.to_dict()


def test_summaries_without_numeric_columns_round_trip() -> None:
    empty = WindowSummary()
    assert WindowSummary.from_bytes(empty.to_bytes()).to_dict() == empty.to_dict()
    labels_only = WindowSummary()
    labels_only.update(Frame(3, (categorical("c", ["a", "b", "a"]),)))
    restored = WindowSummary.from_bytes(labels_only.to_bytes())
    assert restored.to_dict() == labels_only.to_dict()


def test_arrays_that_do_not_fit_are_corrupt_never_misread() -> None:
    parts = list(WINDOW_SUMMARY.decode(summary_of_everything().to_bytes()).parts)
    lengths = np.frombuffer(zlib.decompress(parts[2]), "<u4").copy()
    lengths[0] += 1
    parts[2] = memoryview(zlib.compress(lengths.tobytes()))
    with pytest.raises(ValueError, match=r"corrupt window summary: .*name lengths"):
        WindowSummary.from_bytes(WINDOW_SUMMARY.encode(*parts))
    parts[2] = memoryview(b"not zlib")
    with pytest.raises(ValueError, match=r"corrupt window summary: .*does not inflate"):
        WindowSummary.from_bytes(WINDOW_SUMMARY.encode(*parts))
