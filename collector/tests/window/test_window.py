"""WindowSummary: frames in, per-column summaries checked against numpy, merges, data quality."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from inferwatch.collector.window.summaries import SummaryLayout, WindowSummary
from inferwatch.frame import Frame, categorical, numeric

from .helpers import mixed_frame, numeric_frame, random_splits

NAMES = [f"x{j}" for j in range(6)]
CUTS = {("feature", n): np.linspace(-2.0, 2.0, 9 + j) for j, n in enumerate(NAMES)}
LAYOUT = SummaryLayout(
    {**CUTS, ("output", "score"): np.array([0.25, 0.5, 0.75])},
    {("feature", "color"): ("red", "green")},
)
COLORS = ["red", "green", "blue", None]


def _batches(seed: int, rows: int, batch: int = 100) -> tuple[np.ndarray, list, np.ndarray, list]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(NAMES)))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.005] = np.inf
    colors = [COLORS[i] for i in rng.integers(0, 4, rows)]
    scores = rng.random(rows)
    frames = [
        mixed_frame(x[s : s + batch], colors[s : s + batch], scores[s : s + batch])
        for s in range(0, rows, batch)
    ]
    return x, colors, scores, frames


def _check_against_numpy(summary: WindowSummary, x: np.ndarray, colors: list, scores: np.ndarray):
    for j, name in enumerate(NAMES):
        column = summary.numeric(name)
        assert column is not None
        values = x[:, j]
        finite = values[np.isfinite(values)]
        assert (column.count, column.missing, column.non_finite) == (
            finite.size,
            np.isnan(values).sum(),
            np.isinf(values).sum(),
        )
        assert column.mean == pytest.approx(finite.mean(), rel=1e-12)
        assert column.variance == pytest.approx(finite.var(), rel=1e-12)
        assert (column.min, column.max) == (finite.min(), finite.max())
        expected, _ = np.histogram(finite, bins=np.r_[-np.inf, CUTS[("feature", name)], np.inf])
        np.testing.assert_array_equal(column.bin_counts, expected)  # type: ignore[arg-type]
    color = summary.categorical("color")
    assert color is not None
    assert color.counts == dict(Counter(c for c in colors if c is not None))
    assert (color.missing, color.unseen) == (colors.count(None), colors.count("blue"))
    score = summary.numeric("score", role="output")
    assert score is not None and score.count == scores.size
    expected, _ = np.histogram(scores, bins=[-np.inf, 0.25, 0.5, 0.75, np.inf])
    np.testing.assert_array_equal(score.bin_counts, expected)  # type: ignore[arg-type]


def test_frames_summarised_like_numpy() -> None:
    x, colors, scores, frames = _batches(1, 3_000)
    summary = WindowSummary(LAYOUT)
    for frame in frames:
        summary.update(frame)
    assert (summary.rows, summary.batches) == (3_000, 30)
    _check_against_numpy(summary, x, colors, scores)
    assert not (summary.type_mismatch or summary.absent or summary.new)


def test_large_batches_take_the_column_by_column_path() -> None:
    x, colors, scores, _ = _batches(2, 30_000)
    summary = WindowSummary(LAYOUT)
    summary.update(mixed_frame(x, colors, scores))
    _check_against_numpy(summary, x, colors, scores)


def test_inputs_and_outputs_frames_and_single_column_blocks() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, len(NAMES))).astype(np.float32)
    scores = rng.random(500)
    summary = WindowSummary(LAYOUT)
    for s in range(0, 500, 50):
        inputs = numeric_frame(x[s : s + 50], NAMES, split=True)
        outputs = Frame(50, (numeric("score", scores[s : s + 50]),))  # role set by the caller
        summary.update(inputs, outputs)
    column = summary.numeric("x2")
    assert column is not None and column.mean == pytest.approx(x[:, 2].astype(float).mean())
    score = summary.numeric("score", role="output")
    assert score is not None and score.count == 500
    assert summary.rows == 500 and summary.absent == {("feature", "color"): 500}


def test_merge_of_random_splits_equals_one_pass() -> None:
    x, colors, scores, frames = _batches(4, 4_000, batch=50)
    whole = WindowSummary(LAYOUT)
    for frame in frames:
        whole.update(frame)
    rng = np.random.default_rng(5)
    parts = []
    for part in random_splits(rng, len(frames), 5):
        piece = WindowSummary(LAYOUT)
        for frame in frames[part]:
            piece.update(frame)
        parts.append(WindowSummary.from_bytes(piece.to_bytes()))  # as stored by a replica
    merged = parts.pop()
    for piece in parts:
        merged.merge(piece)
    assert (merged.rows, merged.batches) == (whole.rows, whole.batches)
    _check_against_numpy(merged, x, colors, scores)


def test_round_trip_keeps_everything_and_updates_go_on() -> None:
    _, _, _, frames = _batches(6, 1_000)
    summary = WindowSummary(LAYOUT)
    for frame in frames[:5]:
        summary.update(frame)
    summary.update(Frame(2, (categorical("x0", ["a", "b"]), numeric("extra", [1.0, 2.0]))))
    restored = WindowSummary.from_bytes(summary.to_bytes())
    assert restored.to_dict() == summary.to_dict()
    assert restored.layout.matches(LAYOUT)
    for frame in frames[5:]:
        summary.update(frame)
        restored.update(frame)
    assert restored.to_dict() == summary.to_dict()


def test_type_mismatch_new_and_absent_columns() -> None:
    summary = WindowSummary(LAYOUT)
    summary.update(
        Frame(
            3,
            (
                categorical("x0", ["1.5", "a", None]),  # strings in a numeric feature
                numeric("color", [1.0, 2.0, 3.0]),  # numbers in a categorical one
                numeric("fresh", [1.0, 2.0, np.nan]),  # unknown to the reference
                categorical("kind", ["p", "q", "p"]),
            ),
        )
    )
    summary.update(Frame(2, (categorical("fresh", ["a", "b"]),)))
    assert summary.type_mismatch == {
        ("feature", "x0"): 3,
        ("feature", "color"): 3,
        ("feature", "fresh"): 2,
    }
    assert summary.new == {("feature", "fresh"): 5, ("feature", "kind"): 3}
    assert summary.absent[("feature", "x1")] == 5 and summary.absent[("feature", "x0")] == 2
    assert ("output", "score") not in summary.absent  # no outputs frame was given
    x0 = summary.numeric("x0")
    assert x0 is not None and x0.total == 0  # mismatched values are not summarised
    fresh = summary.numeric("fresh")
    assert fresh is not None and fresh.bin_counts is None and fresh.count == 2
    kind = summary.categorical("kind")
    assert kind is not None and kind.counts == {"p": 2, "q": 1}


def test_without_a_layout_nothing_is_new() -> None:
    summary = WindowSummary()
    summary.update(numeric_frame(np.ones((4, 2)), ["a", "b"]))
    assert summary.new == {} and summary.absent == {}
    a = summary.numeric("a")
    assert a is not None and a.count == 4 and a.bin_counts is None


def test_parts_that_saw_a_column_as_different_kinds() -> None:
    left, right = WindowSummary(), WindowSummary()
    left.update(Frame(2, (numeric("z", [1.0, 2.0]),)))
    right.update(Frame(3, (categorical("z", ["a", "b", None]),)))
    left.merge(right)
    z = left.numeric("z")
    assert z is not None and z.count == 2
    assert left.type_mismatch == {("feature", "z"): 3}


def test_size_does_not_grow_with_rows() -> None:
    rng = np.random.default_rng(7)
    sizes = []
    summary = WindowSummary(LAYOUT, max_categories=50)
    for rows in (1_000, 20_000, 100_000):
        while summary.rows < rows:
            x = rng.normal(size=(1_000, len(NAMES)))
            colors = [f"c{i}" for i in rng.integers(0, 10**6, 1_000)]  # unbounded cardinality
            summary.update(mixed_frame(x, colors, rng.random(1_000)))
        sizes.append(len(summary.to_bytes()))
    # Counts gain digits as they grow; nothing else does.
    assert sizes[2] < 1.25 * sizes[0]
    color = summary.categorical("color")
    assert color is not None and len(color.counts) <= 52


def test_refusals() -> None:
    summary = WindowSummary(LAYOUT)
    with pytest.raises(ValueError, match="inputs have 2 rows but its outputs 3"):
        summary.update(numeric_frame(np.ones((2, 1)), ["a"]), numeric_frame(np.ones((3, 1)), ["s"]))
    with pytest.raises(ValueError, match="different references"):
        summary.merge(WindowSummary())
    with pytest.raises(ValueError, match="not a window summary"):
        WindowSummary.from_bytes(b"nonsense")
    with pytest.raises(ValueError, match="corrupt"):
        WindowSummary.from_bytes(summary.to_bytes()[:-5])
    with pytest.raises(ValueError, match="both numeric and categorical"):
        SummaryLayout({("feature", "a"): np.zeros(1)}, {("feature", "a"): ("x",)})
