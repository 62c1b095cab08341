"""NumericSummary against numpy on the same data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from inferwatch.collector.window.summaries import NumericSummary, validate_cuts

from .helpers import random_splits

CUTS = np.linspace(-2.0, 2.0, 19)


def _data(rng: np.random.Generator, rows: int) -> np.ndarray:
    x = rng.normal(0.3, 1.5, rows)
    x[rng.random(rows) < 0.07] = np.nan
    x[rng.random(rows) < 0.01] = np.inf
    x[rng.random(rows) < 0.01] = -np.inf
    x[:5] = CUTS[:5]  # values exactly on edges go to the bin they open
    return x


def test_update_matches_numpy() -> None:
    x = _data(np.random.default_rng(1), 5_000)
    summary = NumericSummary(CUTS)
    for start in range(0, x.size, 100):
        summary.update(x[start : start + 100])
    finite = x[np.isfinite(x)]
    assert summary.count == finite.size
    assert summary.missing == np.isnan(x).sum()
    assert summary.non_finite == np.isinf(x).sum()
    assert summary.total == x.size
    assert summary.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert summary.variance == pytest.approx(finite.var(), rel=1e-12)
    assert summary.std == pytest.approx(finite.std(), rel=1e-12)
    assert (summary.min, summary.max) == (finite.min(), finite.max())
    expected, _ = np.histogram(finite, bins=np.r_[-np.inf, CUTS, np.inf])
    assert summary.bin_counts is not None
    np.testing.assert_array_equal(summary.bin_counts, expected)


def test_merge_of_random_splits_equals_one_pass() -> None:
    rng = np.random.default_rng(2)
    x = _data(rng, 20_000)
    whole = NumericSummary(CUTS)
    whole.update(x)
    for parts in (2, 7, 31):
        pieces = []
        for part in random_splits(rng, x.size, parts):
            piece = NumericSummary(CUTS)
            piece.update(x[part])
            pieces.append(piece)
        rng.shuffle(pieces)  # merge order must not matter
        merged = pieces[0]
        for piece in pieces[1:]:
            merged.merge(piece)
        assert (merged.count, merged.missing, merged.non_finite) == (
            whole.count,
            whole.missing,
            whole.non_finite,
        )
        assert (merged.min, merged.max) == (whole.min, whole.max)
        np.testing.assert_array_equal(merged.bin_counts, whole.bin_counts)  # type: ignore[arg-type]
        assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
        assert merged.m2 == pytest.approx(whole.m2, rel=1e-12)


def test_variance_is_stable_far_from_zero() -> None:
    # Sum-of-squares formulas lose every digit here; Chan's merge keeps them.
    rng = np.random.default_rng(3)
    x = 1e9 + rng.normal(0.0, 1e-3, 10_000)
    summary = NumericSummary()
    for start in range(0, x.size, 37):
        summary.update(x[start : start + 37])
    assert summary.variance == pytest.approx(x.var(), rel=1e-6)
    naive = (x**2).mean() - x.mean() ** 2
    assert abs(naive - x.var()) > 1e-3 * x.var()  # the naive formula really does fail


def test_round_trip_through_json() -> None:
    summary = NumericSummary(CUTS)
    summary.update(_data(np.random.default_rng(4), 1_000))
    restored = NumericSummary.from_dict(json.loads(json.dumps(summary.to_dict(), allow_nan=False)))
    assert restored.to_dict() == summary.to_dict()
    restored.update(np.array([1.0, np.nan]))
    assert restored.count == summary.count + 1


def test_empty_and_all_missing() -> None:
    summary = NumericSummary(CUTS)
    summary.update(np.array([np.nan, np.inf]))
    assert (summary.count, summary.missing, summary.non_finite) == (0, 1, 1)
    assert summary.min is None and math.isnan(summary.variance)
    assert summary.bin_counts is not None and summary.bin_counts.sum() == 0
    json.dumps(summary.to_dict(), allow_nan=False)


def test_without_cuts_there_are_no_bins() -> None:
    summary = NumericSummary()
    summary.update(np.arange(10.0))
    assert summary.bin_counts is None and summary.to_dict()["bin_counts"] is None


def test_merge_rejects_different_cuts() -> None:
    a, b = NumericSummary(CUTS), NumericSummary(CUTS[1:])
    with pytest.raises(ValueError, match="different bin cuts"):
        a.merge(b)
    with pytest.raises(ValueError, match="different bin cuts"):
        a.merge(NumericSummary())


@pytest.mark.parametrize(
    ("cuts", "message"),
    [([1.0, 1.0], "strictly increasing"), ([0.0, np.inf], "finite"), ([[1.0]], "1-D")],
)
def test_invalid_cuts_are_refused(cuts: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_cuts(cuts)
