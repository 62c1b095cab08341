"""Window summaries and the row reservoir: what summarising costs the collector per batch.

Payload: 500 monitored calls, each 100 rows x 20 features (one numeric block with names, 2% NaN),
a numeric output and 100 prediction ids (UUIDs), as the receiver hands them over; a mixed variant
has 15 numeric and 5 categorical features (12 levels). Windows use 20 bins per numeric column
frozen by a Profile fitted on other rows. Baseline: a bare numpy pass over the same arrays
(np.add.reduce of each call's block), the least any summary pays. The collector's goal is
200,000 rows/s ingest overall on one core, so summarising must be well above it.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.window.reservoir import Reservoir
from inferwatch.collector.window.summaries import WindowSummary
from inferwatch.frame import Column, Frame, NumericBlock, categorical, numeric

ROWS = 100
FEATURES = 20
CALLS = 500
REPEATS = 7
GOAL_ROWS_PER_S = 200_000
RESULT = Path(__file__).resolve().parent / "results" / "summaries.md"

Call = tuple[Frame, Frame, list[str]]


def build(seed: int, categorical_features: int, calls: int = CALLS) -> list[Call]:
    rng = np.random.default_rng(seed)
    names = [f"f{j}" for j in range(FEATURES - categorical_features)]
    out = []
    for _ in range(calls):
        x = rng.normal(size=(ROWS, len(names)))
        x[rng.random(x.shape) < 0.02] = np.nan
        columns: list[Column] = [numeric("features", x, names)]
        for j in range(categorical_features):
            levels = rng.integers(0, 12, ROWS).tolist()
            columns.append(categorical(f"c{j}", [f"level{p}" for p in levels]))
        outputs = Frame(ROWS, (numeric("score", rng.random(ROWS), role="output"),))
        out.append((Frame(ROWS, tuple(columns)), outputs, [str(uuid.uuid4()) for _ in range(ROWS)]))
    return out


def reference(calls: list[Call]) -> list[Frame]:
    """The calls as reference parts: features and outputs in one frame."""
    return [Frame(i.rows, i.columns + o.columns) for i, o, _ in calls]


def part(seed: int, categorical_features: int, rows: int = 50_000) -> Frame:
    """One reference upload part: features and outputs of ``rows`` rows in one frame."""
    rng = np.random.default_rng(100 + seed)
    names = [f"f{j}" for j in range(FEATURES - categorical_features)]
    columns: list[Column] = [numeric("features", rng.normal(size=(rows, len(names))), names)]
    for j in range(categorical_features):
        levels = rng.integers(0, 12, rows).tolist()
        columns.append(categorical(f"c{j}", [f"level{p}" for p in levels]))
    columns.append(numeric("score", rng.random(rows), role="output"))
    return Frame(rows, tuple(columns))


def median_seconds(run: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(label: str, categorical_features: int) -> tuple[list[tuple[str, float]], list[str]]:
    calls = build(1, categorical_features)
    profile = Profile.fit(reference(build(2, categorical_features, 200)))
    blocks = [c[0].columns[0] for c in calls]
    assert all(isinstance(b, NumericBlock) for b in blocks)

    def bare() -> None:
        for block in blocks:
            np.add.reduce(block.values, axis=0)  # type: ignore[union-attr]

    def summarise() -> WindowSummary:
        summary = profile.new_window()
        for inputs, outputs, _ in calls:
            summary.update(inputs, outputs)
        summary.columns  # noqa: B018  (flushes the last buffered rows)
        return summary

    def sample(reservoir: Reservoir) -> Reservoir:
        for inputs, outputs, ids in calls:
            reservoir.add(inputs, outputs, ids)
        return reservoir

    def steady() -> Reservoir:
        reservoir = Reservoir(seed=0)
        sample(reservoir)  # outside the clock: fill the 10,000 slots
        reservoir.seen = 1_000_000  # a window already a million rows in
        start = time.perf_counter()
        sample(reservoir)
        steady.elapsed = time.perf_counter() - start  # type: ignore[attr-defined]
        return reservoir

    def both() -> None:
        summary, reservoir = profile.new_window(), Reservoir(seed=0)
        for inputs, outputs, ids in calls:
            summary.update(inputs, outputs)
            reservoir.add(inputs, outputs, ids)
        summary.columns  # noqa: B018

    steady_times = []
    for _ in range(REPEATS):
        steady()
        steady_times.append(steady.elapsed)  # type: ignore[attr-defined]
    timings = [
        (f"{label}: bare numpy pass (baseline)", median_seconds(bare)),
        (f"{label}: WindowSummary.update", median_seconds(summarise)),
        (
            f"{label}: Reservoir.add, first {CALLS * ROWS:,} rows",
            median_seconds(lambda: sample(Reservoir(seed=0))),
        ),
        (f"{label}: Reservoir.add, a million rows in", statistics.median(steady_times)),
        (f"{label}: both (a window's summarising cost)", median_seconds(both)),
    ]

    summary = summarise()
    full = Reservoir(seed=0)
    for _ in range(3):
        sample(full)
    other = Reservoir(seed=1)
    for _ in range(3):
        sample(other)
    summary_bytes, reservoir_bytes = summary.to_bytes(), full.to_bytes()

    def merge_summaries() -> None:
        WindowSummary.from_bytes(summary_bytes).merge(summary)

    def merge_reservoirs() -> None:
        Reservoir.from_bytes(reservoir_bytes).merge(other)

    parts = [part(seed, categorical_features) for seed in range(4)]  # 4 x 50,000 rows
    fit_seconds = median_seconds(lambda: Profile.fit(parts))
    notes = [
        f"| {label}: WindowSummary to_bytes / from_bytes | {len(summary_bytes):,} B | "
        f"{median_seconds(summary.to_bytes) * 1e3:.2f} / "
        f"{median_seconds(lambda: WindowSummary.from_bytes(summary_bytes)) * 1e3:.2f} ms |",
        f"| {label}: WindowSummary from_bytes + merge | | "
        f"{median_seconds(merge_summaries) * 1e3:.2f} ms |",
        f"| {label}: Reservoir (10,000 rows + ids) to_bytes / from_bytes | "
        f"{len(reservoir_bytes):,} B | {median_seconds(full.to_bytes) * 1e3:.2f} / "
        f"{median_seconds(lambda: Reservoir.from_bytes(reservoir_bytes)) * 1e3:.2f} ms |",
        f"| {label}: Reservoir from_bytes + merge (10,000 + 10,000 rows) | | "
        f"{median_seconds(merge_reservoirs) * 1e3:.2f} ms |",
        f"| {label}: Profile.fit, 200,000 rows in 4 parts (two passes) | "
        f"{len(Profile.fit(parts).to_bytes()):,} B | {fit_seconds * 1e3:.0f} ms "
        f"({200_000 / fit_seconds:,.0f} rows/s) |",
    ]
    return timings, notes


def main() -> None:
    lines = [
        "## Summaries: window summaries, reservoir, profile (`bench/bench_summaries.py`)",
        "",
        f"{CALLS} calls of {ROWS} rows x {FEATURES} features (2% NaN) + 1 output + ids; 20 bins "
        f"per numeric column; reservoir of 10,000 rows. One core, median of {REPEATS} passes. "
        f"Goal: well above {GOAL_ROWS_PER_S:,} rows/s (the whole collector's target).",
        "",
        "| path | rows/s | ms / 50,000 rows | time vs bare numpy pass |",
        "|---|---:|---:|---:|",
    ]
    notes: list[str] = []
    for label, categorical_features in (("20 numeric", 0), ("15 numeric + 5 categorical", 5)):
        timings, extra = measure(label, categorical_features)
        baseline = timings[0][1]
        for name, seconds in timings:
            rows = CALLS * ROWS
            lines.append(
                f"| {name} | {rows / seconds:,.0f} | {seconds * 1e3:.1f} | "
                f"{seconds / baseline:.1f}x |"
            )
            print(f"{name}: {rows / seconds:,.0f} rows/s", flush=True)
        notes.extend(extra)
    lines += ["", "| state | serialized size | time |", "|---|---:|---:|", *notes]
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
