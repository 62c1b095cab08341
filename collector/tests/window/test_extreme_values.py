"""Summaries of any finite values: finite state that always serialises, and moments that agree
with exact arithmetic whatever the magnitude (and with numpy on ordinary data)."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.window.state import WindowState
from inferwatch.collector.window.summaries import NumericSummary, WindowSummary, moment_exponent
from inferwatch.frame import Frame, numeric

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
ANY = st.one_of(FINITE, FINITE, FINITE, st.sampled_from([math.nan, math.inf, -math.inf]))


def exact_moments(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation of finite values, computed exactly."""
    exact = [Fraction(v) for v in values]
    mean = sum(exact) / len(exact)
    m2 = sum((v - mean) ** 2 for v in exact)
    exponent = moment_exponent(min(values), max(values))
    return float(mean), math.ldexp(math.sqrt(m2 / len(exact) / 4**exponent), exponent)


def strict_round_trip(summary: NumericSummary) -> NumericSummary:
    return NumericSummary.from_dict(json.loads(json.dumps(summary.to_dict(), allow_nan=False)))


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY, min_size=1, max_size=60), st.data())
def test_any_values_give_finite_state_that_matches_exact_moments(values, data) -> None:
    cuts = sorted(data.draw(st.sets(FINITE, max_size=3)))
    parts = sorted(data.draw(st.sets(st.integers(1, len(values)), max_size=3)) - {len(values)})
    merged = NumericSummary(cuts)
    for start, end in zip([0, *parts], [*parts, len(values)], strict=True):
        part = NumericSummary(cuts)
        part.update(values[start:end])
        merged.merge(strict_round_trip(part))
    restored = strict_round_trip(merged)
    finite = [v for v in values if math.isfinite(v)]
    assert restored.count == len(finite) and sum(restored.bin_counts) == len(finite)
    assert restored.missing == sum(1 for v in values if v != v)
    if not finite:
        return
    mean, std = exact_moments(finite)
    peak = max(abs(min(finite)), abs(max(finite)))
    assert min(finite) <= restored.mean <= max(finite)
    assert math.isfinite(restored.std)
    # Relative to the largest value, and never tighter than the smallest float (subnormals).
    assert abs(restored.mean - mean) <= 1e-13 * len(finite) * peak + 5e-324
    assert abs(restored.std - std) <= 1e-7 * peak + 1e-9 * std


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(ANY, min_size=2, max_size=2), min_size=1, max_size=40))
def test_window_summaries_of_any_values_serialise_and_agree_with_one_column(rows) -> None:
    # Blocks of rows through the window summary's buffered path, against NumericSummary.update.
    x = np.array(rows, dtype=np.float64)
    window = WindowSummary()
    for start in range(0, len(x), 7):
        block = x[start : start + 7]
        window.update(Frame(len(block), (numeric("f", block, names=["a", "b"]),)))
    restored = WindowSummary.from_bytes(window.to_bytes())
    for j, name in enumerate(("a", "b")):
        alone = NumericSummary()
        alone.update(x[:, j])
        found = restored.numeric(name)
        assert found is not None and found.count == alone.count
        if alone.min is not None and alone.max is not None:
            peak = max(abs(alone.min), abs(alone.max))
            assert (found.min, found.max) == (alone.min, alone.max)
            assert abs(found.mean - alone.mean) <= 1e-13 * alone.count * peak + 5e-324
            assert abs(found.std - alone.std) <= 1e-7 * peak


def test_values_near_the_float_limit() -> None:
    summary = NumericSummary()
    summary.update([1e308, 1e308])
    assert (summary.mean, summary.m2, summary.std) == (1e308, 0.0, 0.0)
    summary.update([-1.7e308, 1.7e308])
    mean, std = exact_moments([1e308, 1e308, -1.7e308, 1.7e308])
    assert summary.mean == pytest.approx(mean, rel=1e-15)
    assert summary.std == pytest.approx(std, rel=1e-15)
    # Its sum of squares is beyond float64: shown as null, kept exactly in its own units.
    assert summary.m2 == math.inf and summary.variance == math.inf
    stored = summary.to_dict()
    assert stored["m2"] is None and math.isfinite(stored["m2_scaled"])
    assert strict_round_trip(summary).std == summary.std


@pytest.mark.parametrize("scale", [1.0, 1e-300, 1e-150, 1e100, 1e150, 1e200, 1e300])
def test_moments_agree_with_numpy_at_every_scale(scale: float) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(3.0, 2.0, size=(5_000, 3)) * scale
    window = WindowSummary()
    for start in range(0, len(x), 100):
        window.update(Frame(100, (numeric("f", x[start : start + 100], names=["a", "b", "c"]),)))
    # numpy on the same data, in units where its squares cannot overflow.
    unit = 2.0 ** math.frexp(scale)[1]
    for j, name in enumerate("abc"):
        found = WindowSummary.from_bytes(window.to_bytes()).numeric(name)
        assert found is not None
        assert found.mean == pytest.approx(float(np.mean(x[:, j])), rel=1e-12)
        assert found.std == pytest.approx(float(np.std(x[:, j] / unit)) * unit, rel=1e-12)


def test_ordinary_values_keep_the_stored_form_of_earlier_releases() -> None:
    summary = NumericSummary([0.0])
    summary.update([1.0, 2.0, 4.0])
    assert set(summary.to_dict()) == {
        "count",
        "missing",
        "non_finite",
        "mean",
        "m2",
        "min",
        "max",
        "cuts",
        "bin_counts",
    }
    assert summary.to_dict()["m2"] == pytest.approx(14 / 3)


def test_a_window_state_of_extreme_batches_serialises_and_shows_as_strict_json() -> None:
    frame = Frame(2, (numeric("x", np.array([1e308, 1e308])),))
    extreme = [
        PredictionBatch("m", "1", None, bytes(16), bytes(8), 0, 10**400, None, ("a", "b"), frame,
                        None),
        PredictionBatch("m", "1", None, bytes(16), bytes(8), 5, 1, None, ("c", "d"), frame, None,
                        5e-324),
    ]  # fmt: skip
    state = WindowState()
    state.add(extreme)
    again = WindowState.from_bytes(state.to_bytes())
    shown = json.loads(json.dumps(again.describe(), allow_nan=False))
    assert shown["rows"] == 4 and shown["latency"]["count"] == 1
    assert math.isfinite(shown["estimated_rows"])
    (column,) = shown["columns"]["columns"]
    assert (column["mean"], column["m2"]) == (1e308, 0.0)
