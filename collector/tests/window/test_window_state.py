"""WindowState: batches folded in together give the state they give one by one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.window.reservoir import Reservoir
from inferwatch.collector.window.state import WindowState
from inferwatch.collector.window.summaries import SummaryLayout, WindowSummary
from inferwatch.frame import Frame, categorical, numeric

from .helpers import mixed_frame

LAYOUT = SummaryLayout(
    {("feature", f"x{j}"): np.linspace(-2.0, 2.0, 7) for j in range(3)},
    {("feature", "color"): ("red", "green")},
)


def _batches(seed: int) -> list[PredictionBatch]:
    """Batches of varying size whose colors (so categories) differ, and one of other columns."""
    rng = np.random.default_rng(seed)
    palette = ["red", "green", "blue", "teal", None]
    batches = []
    for i in range(40):
        rows = int(rng.integers(1, 30))
        x = rng.normal(size=(rows, 3))
        x[rng.random(x.shape) < 0.1] = np.nan
        colors = [palette[c] for c in rng.integers(0, 5 if i % 2 else 2, rows)]
        frame = mixed_frame(x, colors, rng.random(rows))
        if i == 17:  # another schema in the middle: a run of its own
            frame = Frame(rows, (numeric("features", x, names=["x0", "x1", "x2"]),))
        inputs = Frame(rows, tuple(c for c in frame.columns if c.role != "output"))
        scores = tuple(c for c in frame.columns if c.role == "output")
        outputs = Frame(rows, scores) if scores else None
        ids = tuple(f"b{i}-{r}" for r in range(rows))
        span = i.to_bytes(8, "big")
        batches.append(
            PredictionBatch(
                "m", "1", None, bytes(16), span, i, i + 10**6, None, ids, inputs, outputs
            )
        )
    return batches


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    """A nested JSON-like value as {path: leaf}, for comparing numbers with a tolerance."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _leaves(item, f"{path}/{key}").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{path}/{i}").items()
        }
    return {path: value}


def _state() -> WindowState:
    return WindowState(summary=WindowSummary(LAYOUT), reservoir=Reservoir(capacity=60, seed=5))


def test_batches_folded_together_give_the_state_of_one_by_one() -> None:
    batches = _batches(3)
    together, one_by_one = _state(), _state()
    together.add(batches)
    for batch in batches:
        one_by_one.add([batch])

    # Equal but for rounding: rows are summarised in other chunks.
    assert _leaves(together.describe()) == pytest.approx(_leaves(one_by_one.describe()))
    assert together.summary.batches == one_by_one.summary.batches == len(batches)
    # The reservoir draws one uniform a row, so it keeps the very same rows.
    assert together.reservoir.ids == one_by_one.reservoir.ids
    assert together.reservoir.seen == sum(b.rows for b in batches)
    mine, names = together.reservoir.numeric()
    theirs, _ = one_by_one.reservoir.numeric()
    np.testing.assert_array_equal(mine, theirs)
    assert names == ("x0", "x1", "x2")
    colors = together.reservoir.categorical("color")
    same = one_by_one.reservoir.categorical("color")
    assert colors is not None and same is not None
    assert colors.values() == same.values()
    kept = {pid for pid in together.reservoir.ids if pid is not None}
    by_id = {pid: (b, r) for b in batches for r, pid in enumerate(b.ids)}
    for row, pid in enumerate(together.reservoir.ids):
        batch, at = by_id[pid]  # type: ignore[index]
        assert batch.inputs is not None
        np.testing.assert_array_equal(mine[row], batch.inputs.columns[0].values[at])
    assert len(kept) == 60


def test_categories_are_merged_across_joined_batches() -> None:
    def batch(i: int, colors: list[str | None]) -> PredictionBatch:
        frame = Frame(len(colors), (categorical("color", colors),))
        ids = tuple(f"{i}-{r}" for r in range(len(colors)))
        return PredictionBatch("m", "1", None, bytes(16), bytes(8), 0, 1, None, ids, frame, None)

    state = WindowState(reservoir=Reservoir(capacity=100, seed=1))
    state.add([batch(0, ["a", "b", None]), batch(1, ["c", "a"]), batch(2, [None, None])])
    color = state.summary.categorical("color")
    assert color is not None
    assert (color.counts, color.missing) == ({"a": 2, "b": 1, "c": 1}, 3)
    kept = state.reservoir.categorical("color")
    assert kept is not None and kept.values() == ["a", "b", None, "c", "a", None, None]
