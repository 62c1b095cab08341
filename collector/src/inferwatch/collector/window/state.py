"""Tumbling windows per (model, version): their mergeable state, and the in-memory book of them.

A window's state is bounded whatever the traffic: counters, a latency sketch, exact per-column
summaries and a uniform row reservoir. States merge, so partial windows (one per replica, or a
window continued after a restart) combine into the same numbers one process would have found.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from inferwatch.collector.codec import WINDOW_STATE, json_safe
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.window.latency import LatencySketch
from inferwatch.collector.window.reservoir import Reservoir
from inferwatch.collector.window.store import WindowKey, WindowStore
from inferwatch.collector.window.summaries import WindowSummary
from inferwatch.frame import CategoricalColumn, Column, Frame, NumericBlock

# Distinct data-quality messages kept per window; the rest are only counted.
_MAX_ISSUE_KINDS = 20
# Rows one batch can stand for: far beyond any traffic, far below float64's limit.
_MAX_ESTIMATE = 1e18


def window_key(model: str, version: str, ts_ns: int, length_seconds: float) -> WindowKey:
    """The window holding time ``ts_ns``: aligned to multiples of its length since the epoch."""
    length_ms = max(1, round(length_seconds * 1000))
    start_ms = (ts_ns // 1_000_000) // length_ms * length_ms
    return WindowKey(model, version, start_ms, start_ms + length_ms)


class FoldFailed(Exception):
    """Some windows' batches could not be folded into their state (the others were)."""

    def __init__(self, failures: dict[int, Exception]) -> None:
        super().__init__(f"folding into windows {sorted(failures)} failed")
        self.failures = failures


@dataclass
class WindowState:
    summary: WindowSummary = field(default_factory=WindowSummary)
    reservoir: Reservoir = field(default_factory=Reservoir)
    latency: LatencySketch = field(default_factory=LatencySketch)
    task: str | None = None
    requests: int = 0
    errors: int = 0
    rows: int = 0
    # Rows scaled by 1 / sample_rate: the traffic the model saw, not only what was captured.
    estimated_rows: float = 0.0
    batches_with_issues: int = 0
    issues: Counter[str] = field(default_factory=Counter)
    errors_by_type: Counter[str] = field(default_factory=Counter)

    def add(self, batches: Sequence[PredictionBatch]) -> None:
        """Fold in batches of this window, in the order they were stored.

        Consecutive batches with the same columns are summarised and sampled as one: numpy's
        per-call cost is then paid once for them rather than per batch, and the reservoir,
        drawing one uniform per row, keeps the same rows as batch by batch.
        """
        for batch in batches:
            self.task = self.task or batch.task
            self.requests += 1
            self.rows += batch.rows
            self.estimated_rows += _estimated_rows(batch)
            self.latency.add(_duration_ms(batch))
            if batch.error is not None:
                self.errors += 1
                _count_bounded(self.errors_by_type, [batch.error])
            if batch.issues:
                self.batches_with_issues += 1
                _count_bounded(self.issues, batch.issues)
        for run in _alike_runs(batches):
            inputs = _joined([batch.inputs for batch in run])
            outputs = _joined([batch.outputs for batch in run])
            ids = run[0].ids if len(run) == 1 else tuple(chain.from_iterable(b.ids for b in run))
            self.summary.update(inputs, outputs, batches=len(run))
            self.reservoir.add(inputs, outputs, ids)

    def merge(self, other: WindowState) -> None:
        self.task = self.task or other.task
        self.requests += other.requests
        self.errors += other.errors
        self.rows += other.rows
        self.estimated_rows += other.estimated_rows
        self.batches_with_issues += other.batches_with_issues
        _count_bounded(self.issues, other.issues)
        _count_bounded(self.errors_by_type, other.errors_by_type)
        self.latency.merge(other.latency)
        self.summary.merge(other.summary)
        self.reservoir.merge(other.reservoir)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def describe(self) -> dict[str, Any]:
        """The JSON-ready summary the query API shows."""
        return json_safe(
            {
                "task": self.task,
                "requests": self.requests,
                "errors": self.errors,
                "error_rate": self.error_rate,
                "errors_by_type": dict(self.errors_by_type),
                "rows": self.rows,
                "estimated_rows": self.estimated_rows,
                "latency": self.latency.summary(),
                "batches_with_issues": self.batches_with_issues,
                "issues": dict(self.issues),
                "columns": self.summary.to_dict(),
            }
        )

    def to_bytes(self) -> bytes:
        """The stored form (codec.WINDOW_STATE): the counters as JSON, then the summary's and
        the reservoir's own blobs."""
        header = json.dumps(
            {
                "task": self.task,
                "requests": self.requests,
                "errors": self.errors,
                "rows": self.rows,
                "estimated_rows": self.estimated_rows,
                "batches_with_issues": self.batches_with_issues,
                "issues": dict(self.issues),
                "errors_by_type": dict(self.errors_by_type),
                "latency": self.latency.to_dict(),
            }
        ).encode()
        return WINDOW_STATE.encode(header, self.summary.to_bytes(), self.reservoir.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> WindowState:
        """Read ``to_bytes()`` of this or an earlier release; ContainerError if it is not one."""
        header_part, summary_part, reservoir_part = WINDOW_STATE.decode(data).parts
        with WINDOW_STATE.reading():
            header = json.loads(bytes(header_part))
            return cls(
                summary=WindowSummary.from_bytes(summary_part),
                reservoir=Reservoir.from_bytes(reservoir_part),
                latency=LatencySketch.from_dict(header["latency"]),
                task=header["task"],
                requests=header["requests"],
                errors=header["errors"],
                rows=header["rows"],
                estimated_rows=header["estimated_rows"],
                batches_with_issues=header["batches_with_issues"],
                issues=Counter(header["issues"]),
                errors_by_type=Counter(header["errors_by_type"]),
            )


class WindowBook:
    """This instance's window states in memory, and which changed since the last checkpoint.

    Not thread-safe: the collector touches it under one lock (the ingest worker, checkpoints
    and evaluations take turns).
    """

    def __init__(
        self,
        store: WindowStore,
        instance: str,
        new_summary: Callable[[str, str], WindowSummary],
    ) -> None:
        self._store = store
        self._instance = instance
        # A new window's summary: over its version's reference bins and categories, if any.
        self._new_summary = new_summary
        self._states: dict[int, WindowState] = {}
        self._dirty: set[int] = set()
        # The last stored batch folded into the states: a checkpoint covers up to here.
        self.applied_seq = 0

    def __len__(self) -> int:
        return len(self._states)

    def apply(self, stored: Sequence[tuple[int, int, PredictionBatch]]) -> None:
        """Fold in stored batches, each as (window id, seq, batch), those of a window together.

        A window whose batches fail to fold does not stop the others: once every window is
        folded, FoldFailed names those that failed, and the batches count as applied all the
        same (they are durable, and folding them again would fail again).
        """
        by_window: dict[int, list[PredictionBatch]] = {}
        for window_id, _, batch in stored:
            by_window.setdefault(window_id, []).append(batch)
        failed: dict[int, Exception] = {}
        for window_id, batches in by_window.items():
            try:
                self._state(window_id, batches[0].model, batches[0].version).add(batches)
            except Exception as exc:
                failed[window_id] = exc
            self._dirty.add(window_id)
        self.applied_seq = max([self.applied_seq, *(seq for _, seq, _ in stored)])
        if failed:
            raise FoldFailed(failed)

    def try_alone(self, batch: PredictionBatch) -> None:
        """Fold ``batch`` into an empty state of its window's kind and drop it: raises what
        folding it would raise, without touching the book."""
        WindowState(summary=self._new_summary(batch.model, batch.version)).add([batch])

    def reset(self) -> None:
        """Forget every state in memory and what was applied (the stored states stay)."""
        self._states.clear()
        self._dirty.clear()
        self.applied_seq = 0

    def _state(self, window_id: int, model: str, version: str) -> WindowState:
        state = self._states.get(window_id)
        if state is None:
            stored = self._store.states(window_id).get(self._instance)
            if stored is not None:
                state = WindowState.from_bytes(stored)
            else:
                state = WindowState(summary=self._new_summary(model, version))
            self._states[window_id] = state
        return state

    def merged(
        self,
        window_id: int,
        stored: Mapping[str, bytes] | None = None,
        others: Sequence[PredictionBatch] = (),
    ) -> WindowState | None:
        """The whole window: this instance's state merged with other instances' stored parts
        (``stored``, read from the store when not given) and the batches of other instances
        not yet in them (``others``)."""
        parts = dict(self._store.states(window_id) if stored is None else stored)
        own = self._states.get(window_id)
        if own is not None:
            parts.pop(self._instance, None)
        states = [WindowState.from_bytes(data) for data in parts.values()]
        if own is not None:
            states.insert(0, WindowState.from_bytes(own.to_bytes()))
        if others:
            first = others[0]
            rest = WindowState(summary=self._new_summary(first.model, first.version))
            rest.add(others)
            states.append(rest)
        if not states:
            return None
        whole = states[0]
        for state in states[1:]:
            whole.merge(state)
        return whole

    def checkpoint(self) -> None:
        """Store the changed states and drop the raw batches they now cover."""
        states = {wid: self._states[wid].to_bytes() for wid in self._dirty}
        self._store.checkpoint(self._instance, states, self.applied_seq)
        self._dirty.clear()

    def evict(self, window_ids: Iterable[int] | None = None) -> None:
        """Forget clean states of windows that are closed, or every clean state (``None``):
        late data reloads them from their checkpoint."""
        for wid in list(self._states) if window_ids is None else window_ids:
            if wid not in self._dirty:
                self._states.pop(wid, None)


def _estimated_rows(batch: PredictionBatch) -> float:
    if not 0 < batch.sample_rate <= 1:
        return 0.0
    # A tiny sample rate must not make the estimate infinite.
    return min(batch.rows / batch.sample_rate, _MAX_ESTIMATE)


def _duration_ms(batch: PredictionBatch) -> float:
    try:
        return (batch.end_ns - batch.start_ns) / 1e6
    except OverflowError:  # times of a span beyond any clock: no latency to count
        return math.nan


def _alike_runs(batches: Sequence[PredictionBatch]) -> Iterator[list[PredictionBatch]]:
    """The batches cut into runs of consecutive batches with the same columns."""
    run: list[PredictionBatch] = []
    shape: tuple[Any, ...] = ()
    for batch in batches:
        current = _shape(batch)
        if run and current != shape:
            yield run
            run = []
        run.append(batch)
        shape = current
    if run:
        yield run


def _shape(batch: PredictionBatch) -> tuple[Any, ...]:
    """What must agree for batches to be joined: each frame's columns, but not categories."""
    return tuple(
        None
        if frame is None
        else tuple(
            (c.name, c.role, c.names, c.values.dtype.str, c.values.shape[1])
            if isinstance(c, NumericBlock)
            else (c.name, c.role)
            for c in frame.columns
        )
        for frame in (batch.inputs, batch.outputs)
    )


def _joined(frames: Sequence[Frame | None]) -> Frame | None:
    """Frames with the same columns (see ``_shape``) as one: rows end to end, categories merged."""
    first = frames[0]
    if first is None or len(frames) == 1:
        return first
    present = [frame for frame in frames if frame is not None]
    columns: list[Column] = []
    for index, column in enumerate(first.columns):
        parts = [frame.columns[index] for frame in present]
        if isinstance(column, NumericBlock):
            blocks = [part.values for part in parts if isinstance(part, NumericBlock)]
            joined = NumericBlock(column.name, np.concatenate(blocks), column.names, column.role)
            columns.append(joined)
        else:
            columns.append(_joined_categorical(column, parts))
    return Frame(sum(frame.rows for frame in present), tuple(columns))


def _joined_categorical(first: CategoricalColumn, parts: Sequence[Column]) -> CategoricalColumn:
    codes_of: dict[str, int] = {}
    recoded: list[np.ndarray] = []
    for part in parts:
        assert isinstance(part, CategoricalColumn)
        # The last entry maps a missing value (-1) to itself.
        mapping = np.array(
            [codes_of.setdefault(name, len(codes_of)) for name in part.categories] + [-1],
            dtype=part.codes.dtype,
        )
        recoded.append(mapping[part.codes])
    return CategoricalColumn(first.name, np.concatenate(recoded), tuple(codes_of), first.role)


def _count_bounded(counter: Counter[str], items: Iterable[str] | Counter[str]) -> None:
    pairs = items.items() if isinstance(items, Counter) else ((item, 1) for item in items)
    for item, n in pairs:
        if item in counter or len(counter) < _MAX_ISSUE_KINDS:
            counter[item] += n
