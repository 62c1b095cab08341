"""Profile.fit: streaming over reference parts, exact summaries, frozen bins and categories."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest

from inferwatch.collector.reference.profile import Profile, quantile_cuts
from inferwatch.frame import Frame, categorical, numeric

ROWS = 20_000
NAMES = ["a", "b", "c"]


def _reference(seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [rng.normal(5, 2, ROWS), rng.exponential(1.0, ROWS), rng.integers(0, 4, ROWS)]
    ).astype(float)
    x[rng.random(ROWS) < 0.02, 0] = np.nan
    colors = [["red", "green", "blue"][i] for i in rng.choice(3, ROWS, p=[0.6, 0.3, 0.1])]
    scores = rng.random(ROWS)
    labels = [str(int(s > 0.5)) for s in scores]
    return x, colors, scores, labels


def _parts(size: int, seed: int = 0) -> list[Frame]:
    x, colors, scores, labels = _reference(seed)
    return [
        Frame(
            len(x[s : s + size]),
            (
                numeric("features", x[s : s + size], names=NAMES),
                categorical("color", colors[s : s + size]),
                numeric("prediction", scores[s : s + size], role="output"),
                categorical("label", labels[s : s + size], role="label"),
            ),
        )
        for s in range(0, ROWS, size)
    ]


def test_fit_over_parts_equals_fit_over_the_whole() -> None:
    whole = Profile.fit(_parts(ROWS))
    parts = Profile.fit(_parts(997))
    assert whole.layout.matches(parts.layout)
    assert parts.rows == whole.rows == ROWS
    for key, summary in whole.summary.columns.items():
        other = parts.summary.columns[key]
        mine, theirs = summary.to_dict(), other.to_dict()
        for field in ("mean", "m2"):
            assert theirs.pop(field, 0) == pytest.approx(mine.pop(field, 0), rel=1e-12)
        assert theirs == mine
    np.testing.assert_array_equal(whole.reservoir.numeric()[0], parts.reservoir.numeric()[0])


def test_summary_is_exact_over_the_frozen_bins() -> None:
    x, colors, scores, labels = _reference()
    profile = Profile.fit(_parts(5_000), bins=10)
    for j, name in enumerate(NAMES):
        column = profile.summary.numeric(name)
        assert column is not None and column.cuts is not None
        values = x[:, j][np.isfinite(x[:, j])]
        expected, _ = np.histogram(values, bins=np.r_[-np.inf, column.cuts, np.inf])
        np.testing.assert_array_equal(column.bin_counts, expected)  # type: ignore[arg-type]
        assert column.mean == pytest.approx(values.mean(), rel=1e-12)
        assert column.missing == np.isnan(x[:, j]).sum()
    a = profile.summary.numeric("a")
    assert a is not None and a.bin_counts is not None
    # Continuous: equally full bins (edges are the sample's deciles).
    assert np.abs(a.bin_counts / a.count - 0.1).max() < 0.005
    c = profile.summary.numeric("c")
    assert c is not None and c.cuts is not None
    np.testing.assert_array_equal(c.cuts, [1.0, 2.0, 3.0])  # discrete: one bin per value
    color = profile.summary.categorical("color")
    assert color is not None and color.counts == dict(Counter(colors))
    assert profile.layout.categorical[("feature", "color")] == ("red", "green", "blue")
    label = profile.summary.categorical("label", role="label")
    assert label is not None and label.counts == dict(Counter(labels))
    prediction = profile.summary.numeric("prediction", role="output")
    assert prediction is not None and prediction.count == scores.size
    assert profile.features == ("a", "b", "c", "color")
    assert profile.kinds[("feature", "color")] == "categorical"


def test_edges_from_a_sample_when_the_reference_is_larger() -> None:
    x = _reference()[0]
    profile = Profile.fit(_parts(4_000), bins=10, edge_sample=2_000)
    b = profile.summary.numeric("b")
    assert b is not None and b.bin_counts is not None and b.cuts is not None
    assert b.bin_counts.sum() == b.count == ROWS  # counts stay exact over every row
    # Deciles from 2,000 sampled rows: each bin holds 10% +- a few points of the rows.
    assert np.abs(b.bin_counts / ROWS - 0.1).max() < 0.035
    true_deciles = np.quantile(x[:, 1], np.arange(1, 10) / 10)
    assert np.abs(b.cuts - true_deciles).max() < 0.15


def test_windows_from_the_profile_count_over_its_bins() -> None:
    profile = Profile.fit(_parts(5_000))
    window = profile.new_window()
    assert ("label", "label") not in window.columns
    for frame in _parts(1_000, seed=1):
        window.update(frame.select("feature"), frame.select("output"))
    a, reference = window.numeric("a"), profile.summary.numeric("a")
    assert a is not None and reference is not None
    assert a.bin_counts is not None and a.bin_counts.shape == reference.bin_counts.shape  # type: ignore[union-attr]
    assert window.new == {} and window.absent == {}
    other = profile.new_window()
    window.merge(other)  # windows of one profile merge


def _peak_memory_of_fit(parts: int, rows: int = 10_000, width: int = 10) -> tuple[int, Profile]:
    def frames() -> Iterator[Frame]:
        for part in range(parts):
            rng = np.random.default_rng(part)
            yield numeric_block(rng.normal(size=(rows, width)))

    tracemalloc.start()
    try:
        profile = Profile.fit(frames, edge_sample=10_000, reservoir=1_000)
        return tracemalloc.get_traced_memory()[1], profile
    finally:
        tracemalloc.stop()


def test_fit_streams_from_a_callable_without_holding_the_reference() -> None:
    small, _ = _peak_memory_of_fit(8)
    peak, profile = _peak_memory_of_fit(32)
    assert profile.rows == 320_000 and profile.to_dict()["rows"] == 320_000
    assert peak < 1.25 * small  # memory does not grow with the reference
    assert peak < 320_000 * 10 * 8 / 3  # and is well under the reference's own size


def numeric_block(values: np.ndarray) -> Frame:
    return Frame(len(values), (numeric("x", values),))


def test_round_trip() -> None:
    profile = Profile.fit(_parts(5_000), reservoir=500)
    restored = Profile.from_bytes(profile.to_bytes())
    assert restored.layout.matches(profile.layout)
    assert restored.summary.to_dict() == profile.summary.to_dict()
    assert restored.reservoir.size == 500 and restored.rows == ROWS


def test_quantile_cuts() -> None:
    assert quantile_cuts(np.array([3.0, 1.0, np.nan, 1.0, np.inf]), 5).tolist() == [3.0]
    assert quantile_cuts(np.array([np.nan]), 5).size == 0
    ties = np.r_[np.zeros(900), np.arange(100.0)]
    cuts = quantile_cuts(ties, 10)
    assert cuts.size < 9 and (np.diff(cuts) > 0).all()


def test_refusals() -> None:
    with pytest.raises(ValueError, match="no rows"):
        Profile.fit([])
    with pytest.raises(TypeError, match="reads them twice"):
        Profile.fit(iter(_parts(5_000)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bins must be at least 2"):
        Profile.fit(_parts(5_000), bins=1)
    with pytest.raises(ValueError, match="not a reference profile"):
        Profile.from_bytes(b"junk")
