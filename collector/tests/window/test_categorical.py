"""CategoricalSummary: exact counts, bounded memory, merges."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from inferwatch.collector.window.summaries import CategoricalSummary
from inferwatch.frame import categorical


def _feed(summary: CategoricalSummary, values: list[str | None], batch: int = 50) -> None:
    for start in range(0, len(values), batch):
        column = categorical("c", values[start : start + batch])
        summary.update(column.codes, column.categories)


def _values(rng: np.random.Generator, rows: int, names: int) -> list[str | None]:
    picks = rng.zipf(1.5, rows) % names
    return [None if p == 0 else f"v{p}" for p in picks.tolist()]


def test_counts_match_counter() -> None:
    values = _values(np.random.default_rng(1), 5_000, 40)
    summary = CategoricalSummary()
    _feed(summary, values)
    expected = Counter(v for v in values if v is not None)
    assert summary.counts == dict(expected)
    assert summary.missing == values.count(None)
    assert summary.count == len(values) - values.count(None)
    assert (summary.other, summary.unseen) == (0, 0)


def test_unseen_counts_values_outside_the_reference() -> None:
    summary = CategoricalSummary(reference=["a", "b"])
    _feed(summary, ["a", "b", "c", "c", None, "d", "a"])
    assert summary.counts == {"a": 2, "b": 1, "c": 2, "d": 1}
    assert (summary.unseen, summary.missing) == (3, 1)


def test_overflow_is_bounded_and_counted() -> None:
    values = [f"id{i}" for i in range(5_000)] + ["id1"] * 10
    summary = CategoricalSummary(reference=["id4999"], max_categories=100)
    _feed(summary, values)
    # The reference category is tracked although it arrives after the budget is spent.
    assert summary.counts["id4999"] == 1
    assert len(summary.counts) == 101
    assert summary.count == len(values)
    assert summary.other == len(values) - sum(summary.counts.values())
    # 4,899 distinct names overflowed: a KMV estimate (k=256, ~6% relative error).
    assert summary.other_distinct == pytest.approx(4_899, rel=0.2)
    assert len(json.dumps(summary.to_dict())) < 12_000


def test_other_distinct_is_exact_when_small() -> None:
    summary = CategoricalSummary(max_categories=3)
    _feed(summary, [f"n{i}" for i in range(50)] * 3)
    assert (summary.other, summary.other_distinct) == (141, 47)


def test_merge_equals_one_pass() -> None:
    rng = np.random.default_rng(2)
    values = _values(rng, 6_000, 30)
    whole = CategoricalSummary(reference=["v1", "v2", "v3"])
    _feed(whole, values)
    parts = [CategoricalSummary(reference=["v1", "v2", "v3"]) for _ in range(4)]
    for i, part in enumerate(parts):
        _feed(part, values[i * 1_500 : (i + 1) * 1_500])
    merged = parts[3]
    for part in parts[:3]:
        merged.merge(part)
    assert merged.to_dict() == whole.to_dict()


def test_merge_with_overflow_keeps_totals_and_reference_counts_exact() -> None:
    values = [f"x{i % 700}" for i in range(7_000)] + ["ref"] * 5
    whole = CategoricalSummary(reference=["ref"], max_categories=50)
    _feed(whole, values)
    left, right = CategoricalSummary(["ref"], 50), CategoricalSummary(["ref"], 50)
    _feed(left, values[::2])
    _feed(right, values[1::2])
    left.merge(right)
    assert left.count == whole.count == len(values)
    assert left.counts["ref"] == whole.counts["ref"] == 5
    assert left.unseen == whole.unseen == 7_000
    assert len(left.counts) <= 51
    assert left.other_distinct == pytest.approx(650, rel=0.2)


def test_merge_rejects_another_reference() -> None:
    with pytest.raises(ValueError, match="different reference"):
        CategoricalSummary(["a"]).merge(CategoricalSummary(["b"]))


def test_round_trip_through_json() -> None:
    summary = CategoricalSummary(reference=["a"], max_categories=2)
    _feed(summary, ["a", "b", "c", "d", None, "e"])
    restored = CategoricalSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert restored.to_dict() == summary.to_dict()
    _feed(restored, ["f"])  # the budget stays spent after a restore
    assert restored.counts == summary.counts and restored.other == summary.other + 1
