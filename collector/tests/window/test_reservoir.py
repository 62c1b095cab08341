"""Reservoir: uniform, row-aligned, mergeable, bounded."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from inferwatch.collector.window.reservoir import Reservoir
from inferwatch.frame import Frame, categorical, numeric

from .helpers import numeric_frame

ITEMS = 100
CAPACITY = 10
RUNS = 2_000
BATCHES = [7, 1, 30, 12, 50]  # uneven cuts of the 100-item stream


def _stream_frame(start: int, stop: int) -> Frame:
    return numeric_frame(np.arange(start, stop, dtype=float).reshape(-1, 1), ["item"])


def _offer(reservoir: Reservoir, start: int, stop: int) -> None:
    position = start
    for size in BATCHES * 3:
        if position >= stop:
            break
        end = min(stop, position + size)
        reservoir.add(_stream_frame(position, end))
        position = end


def _items(reservoir: Reservoir) -> np.ndarray:
    values, _ = reservoir.numeric()
    return values[:, 0].astype(int)


def _inclusions(samples: list[np.ndarray]) -> np.ndarray:
    return np.bincount(np.concatenate(samples), minlength=ITEMS)


def test_every_row_is_equally_likely_to_be_kept() -> None:
    samples = []
    for seed in range(RUNS):
        reservoir = Reservoir(CAPACITY, seed=seed)
        _offer(reservoir, 0, ITEMS)
        assert reservoir.size == CAPACITY and reservoir.seen == ITEMS
        samples.append(_items(reservoir))
    counts = _inclusions(samples)
    assert chisquare(counts).pvalue > 0.001
    # The same test does catch a biased sampler: the last rows of the stream over-kept.
    biased = [np.r_[s[:5], np.arange(ITEMS - 5, ITEMS)] for s in samples]
    assert chisquare(_inclusions(biased)).pvalue < 1e-6


def test_merge_is_a_uniform_sample_of_the_union() -> None:
    samples, naive = [], []
    for seed in range(RUNS):
        left, right = Reservoir(CAPACITY, seed=2 * seed), Reservoir(CAPACITY, seed=2 * seed + 1)
        _offer(left, 0, 23)  # uneven parts
        _offer(right, 23, ITEMS)
        naive.append(np.r_[_items(left)[:5], _items(right)[:5]])
        left.merge(right)
        assert left.size == CAPACITY and left.seen == ITEMS
        samples.append(_items(left))
    assert chisquare(_inclusions(samples)).pvalue > 0.001
    # Half from each side, ignoring how much each saw, is caught by the same test.
    assert chisquare(_inclusions(naive)).pvalue < 1e-6


def test_sample_does_not_depend_on_how_the_stream_was_cut() -> None:
    one, many = Reservoir(50, seed=9), Reservoir(50, seed=9)
    one.add(_stream_frame(0, 1_000))
    for start in range(0, 1_000, 33):
        many.add(_stream_frame(start, min(1_000, start + 33)))
    np.testing.assert_array_equal(np.sort(_items(one)), np.sort(_items(many)))


def test_rows_stay_aligned() -> None:
    rows = 3_000
    x = np.arange(rows * 3, dtype=float).reshape(rows, 3)
    colors = [f"c{i % 11}" for i in range(rows)]
    reservoir = Reservoir(200, seed=1)
    for s in range(0, rows, 64):
        e = min(rows, s + 64)
        inputs = Frame(
            e - s, (numeric("f", x[s:e], names=["a", "b", "c"]), categorical("k", colors[s:e]))
        )
        outputs = Frame(e - s, (numeric("p", -x[s:e, 0]),))
        reservoir.add(inputs, outputs, [f"id{i}" for i in range(s, e)])
    values, names = reservoir.numeric()
    assert names == ("a", "b", "c") and values.shape == (200, 3)
    row = (values[:, 0] // 3).astype(int)
    np.testing.assert_array_equal(values[:, 2], row * 3 + 2)
    assert reservoir.ids == tuple(f"id{r}" for r in row)
    color = reservoir.categorical("k")
    assert color is not None and color.values() == [colors[r] for r in row]
    predictions, _ = reservoir.numeric("output")
    np.testing.assert_array_equal(predictions[:, 0], -values[:, 0])
    frame = reservoir.to_frame()
    assert frame.rows == 200 and set(frame.features("feature")) == {"a", "b", "c", "k"}


def test_columns_that_come_and_go_are_missing_where_absent() -> None:
    reservoir = Reservoir(100, seed=0)
    reservoir.add(numeric_frame(np.ones((3, 1)), ["a"]))
    reservoir.add(Frame(2, (numeric("b", [2.0, 2.0]), categorical("a", ["x", "y"]))))
    values, names = reservoir.numeric()
    assert names == ("a", "b")
    np.testing.assert_array_equal(values[:, 0], [1, 1, 1, np.nan, np.nan])  # type mismatch
    np.testing.assert_array_equal(values[:, 1], [np.nan] * 3 + [2, 2])
    assert reservoir.categorical("a") is None and reservoir.ids == (None,) * 5


def test_round_trip_continues_the_same_stream() -> None:
    reservoir = Reservoir(64, seed=4)
    reservoir.add(
        Frame(
            500,
            (numeric("x", np.arange(500.0)), categorical("k", [str(i % 5) for i in range(500)])),
        ),
        ids=[str(i) for i in range(500)],
    )
    restored = Reservoir.from_bytes(reservoir.to_bytes())
    assert (restored.seen, restored.size, restored.ids) == (500, 64, reservoir.ids)
    np.testing.assert_array_equal(restored.numeric()[0], reservoir.numeric()[0])
    assert restored.categorical("k").values() == reservoir.categorical("k").values()  # type: ignore[union-attr]
    for r in (reservoir, restored):
        r.add(Frame(5_000, (numeric("x", np.arange(5_000.0)),)))
    np.testing.assert_array_equal(restored.numeric()[0], reservoir.numeric()[0])


def test_memory_is_bounded() -> None:
    reservoir = Reservoir(100, seed=0)
    for start in range(0, 200_000, 1_000):
        reservoir.add(
            Frame(1_000, (categorical("id", [str(i) for i in range(start, start + 1_000)]),))
        )
    assert reservoir.size == 100 and reservoir.seen == 200_000
    # The category dictionary is compacted: names of evicted rows do not pile up.
    assert len(reservoir._categories[0]) <= 4 * 100 + 1_000
    column = reservoir.categorical("id")
    assert column is not None and len(set(column.values())) == 100


def test_merge_of_huge_streams_uses_the_binomial_limit() -> None:
    left, right = Reservoir(10, seed=1), Reservoir(10, seed=2)
    left.add(_stream_frame(0, 20))
    right.add(_stream_frame(20, 40))
    left.seen, right.seen = 3 * 10**9, 10**9  # too large for numpy's hypergeometric
    left.merge(right)
    assert left.size == 10 and left.seen == 4 * 10**9


def test_refusals() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Reservoir(0)
    with pytest.raises(ValueError, match="capacities 10 and 20"):
        Reservoir(10).merge(Reservoir(20))
    with pytest.raises(ValueError, match="3 rows came with 2 prediction ids"):
        Reservoir(10).add(_stream_frame(0, 3), ids=["a", "b"])
    with pytest.raises(ValueError, match="not a reservoir"):
        Reservoir.from_bytes(b"nope")
    with pytest.raises(ValueError, match="corrupt"):
        Reservoir.from_bytes(Reservoir(5).to_bytes()[:-3])


def test_merge_keeps_the_columns_of_both_sides() -> None:
    left, right = Reservoir(10, seed=0), Reservoir(10, seed=1)
    left.add(Frame(2, (numeric("x", [1.0, 2.0]), categorical("k", ["p", None]))), ids=["a", "b"])
    right.add(Frame(1, (numeric("y", [9.0]),)), ids=["c"])
    left.merge(right)
    values, names = left.numeric()
    assert names == ("x", "y") and left.ids == ("a", "b", "c")
    np.testing.assert_array_equal(values, [[1, np.nan], [2, np.nan], [np.nan, 9]])
    assert left.categorical("k").values() == ["p", None, None]  # type: ignore[union-attr]


def test_the_same_rows_are_kept_wherever_they_are_sent() -> None:
    """Draws come from the rows, not from a generator of each reservoir: the same traffic to two
    models (different prediction ids) keeps the same rows, so their checks agree."""
    rng = np.random.default_rng(5)
    batches = [numeric_frame(rng.normal(size=(n, 3)), ["a", "b", "c"]) for n in (40, 25, 60, 75)]
    kept = []
    for model in ("blue", "green"):
        reservoir = Reservoir(50)
        for k, frame in enumerate(batches):
            reservoir.add(frame, ids=[f"{model}-{k}-{i}" for i in range(frame.rows)])
        kept.append(reservoir.numeric()[0])
    np.testing.assert_array_equal(kept[0], kept[1])
    # A salt (the reference profile's seed) gives another sample of the same rows.
    salted = Reservoir(50, seed=3)
    for frame in batches:
        salted.add(frame)
    assert not np.array_equal(salted.numeric()[0], kept[0])


def test_repeated_rows_are_kept_uniformly_by_position() -> None:
    """Rows with the same values still draw apart: a frequent row is not kept or dropped whole."""
    samples = []
    same = numeric_frame(np.ones((ITEMS, 1)), ["item"])
    for seed in range(RUNS):
        reservoir = Reservoir(CAPACITY, seed=seed)
        reservoir.add(same, ids=[str(i) for i in range(ITEMS)])
        samples.append(np.array([int(i) for i in reservoir.ids]))
    assert chisquare(_inclusions(samples)).pvalue > 0.001
