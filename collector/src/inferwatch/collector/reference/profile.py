"""The reference profile of a model version: computed once from the reference data, then used by
every window (bins, category sets) and every detector (the reference's summary and row sample).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from inferwatch.collector.codec import PROFILE
from inferwatch.collector.window.reservoir import DEFAULT_CAPACITY, Reservoir
from inferwatch.collector.window.summaries import (
    DEFAULT_MAX_CATEGORIES,
    CategoricalSummary,
    ColumnKey,
    NumericSummary,
    SummaryLayout,
    WindowSummary,
)
from inferwatch.frame import Frame, NumericBlock

DEFAULT_BINS = 20
DEFAULT_EDGE_SAMPLE = 100_000
# The sample the bin edges come from holds at most this many numeric cells (256 MiB of floats),
# so that a wide reference (embeddings, images) gets fewer sample rows instead of more memory.
EDGE_SAMPLE_CELLS = 2**25

Frames = Sequence[Frame] | Callable[[], Iterable[Frame]]
Kind = Literal["numeric", "categorical"]


@dataclass
class Profile:
    """A reference's layout (frozen bins and categories), its exact summary and a row sample."""

    layout: SummaryLayout
    summary: WindowSummary
    reservoir: Reservoir

    @property
    def rows(self) -> int:
        return self.summary.rows

    @property
    def kinds(self) -> dict[ColumnKey, Kind]:
        return {
            key: "numeric" if isinstance(s, NumericSummary) else "categorical"
            for key, s in self.summary.columns.items()
        }

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(name for role, name in self.summary.columns if role == "feature")

    @classmethod
    def fit(
        cls,
        frames: Frames,
        *,
        bins: int = DEFAULT_BINS,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        reservoir: int = DEFAULT_CAPACITY,
        edge_sample: int = DEFAULT_EDGE_SAMPLE,
        seed: int = 0,
    ) -> Profile:
        """Profile the reference rows in ``frames``, reading them twice, one frame at a time.

        ``frames`` is a list of frames, or a callable returning a fresh iterable of them (e.g.
        decoding stored upload parts). The first pass finds each column's kind and categories
        and keeps a uniform sample of ``edge_sample`` rows for the quantile bin edges; the second
        computes the exact summary over those bins and a ``reservoir``-row sample.
        """
        if bins < 2:
            raise ValueError(f"bins must be at least 2, got {bins}")
        if edge_sample < 1 or reservoir < 1:
            raise ValueError("edge_sample and reservoir must be at least 1 row")
        read = _reader(frames)
        scan = WindowSummary(max_categories=max_categories)
        sample: Reservoir | None = None
        for frame in read():
            if sample is None:
                width = sum(c.width for c in frame.columns if isinstance(c, NumericBlock))
                rows = min(edge_sample, max(reservoir, EDGE_SAMPLE_CELLS // max(width, 1)))
                sample = Reservoir(rows, seed=seed)
            scan.update(frame)
            sample.add(frame)
        if not scan.rows or sample is None:
            raise ValueError("the reference has no rows; a profile needs at least one")
        layout = _layout(scan, sample, bins, max_categories)
        summary = WindowSummary(layout, max_categories=max_categories)
        kept = Reservoir(reservoir, seed=seed + 1)
        for frame in read():
            summary.update(frame)
            kept.add(frame)
        if summary.rows != scan.rows:
            raise ValueError(
                f"the reference frames changed between passes ({scan.rows} then {summary.rows} "
                "rows); pass a list or a callable that returns the same frames each time"
            )
        return cls(layout, summary, kept)

    def new_window(self) -> WindowSummary:
        """An empty WindowSummary over this profile's bins and category sets (labels excluded:
        they reach windows through the label join, not through spans)."""
        return WindowSummary(
            self.layout.without_role("label"), max_categories=self.summary.max_categories
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the API: rows, features and the reference's summary."""
        return {"rows": self.rows, "features": list(self.features), **self.summary.to_dict()}

    def to_bytes(self) -> bytes:
        """The stored form (codec.PROFILE): the summary's blob, then the reservoir's."""
        return PROFILE.encode(self.summary.to_bytes(), self.reservoir.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Profile:
        """Read ``to_bytes()`` of this or an earlier release; ContainerError if it is not one."""
        summary_part, reservoir_part = PROFILE.decode(data).parts
        summary = WindowSummary.from_bytes(summary_part)
        return cls(summary.layout, summary, Reservoir.from_bytes(reservoir_part))


def _reader(frames: Frames) -> Callable[[], Iterable[Frame]]:
    if callable(frames):
        return frames
    if isinstance(frames, Sequence):
        return lambda: frames
    raise TypeError(
        "frames must be a list of frames or a callable returning a fresh iterable of them "
        f"(the profile reads them twice), got {type(frames).__name__}"
    )


def _layout(
    scan: WindowSummary, sample: Reservoir, bins: int, max_categories: int
) -> SummaryLayout:
    numeric: dict[ColumnKey, np.ndarray] = {}
    categorical: dict[ColumnKey, tuple[str, ...]] = {}
    columns: dict[ColumnKey, np.ndarray] = {}
    for role in {role for role, _ in scan.columns}:
        values, names = sample.numeric(role)
        columns.update({(role, name): values[:, j] for j, name in enumerate(names)})
    for key, summary in scan.columns.items():
        if isinstance(summary, CategoricalSummary):
            ranked = sorted(summary.counts.items(), key=lambda item: (-item[1], item[0]))
            categorical[key] = tuple(name for name, _ in ranked[:max_categories])
        else:
            numeric[key] = quantile_cuts(columns[key], bins)
    return SummaryLayout(numeric, categorical)


def quantile_cuts(values: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Inner bin edges splitting ``values`` into ``bins`` equally full bins.

    A column with at most ``bins`` distinct values gets one bin per value (cuts at the values
    themselves); elsewhere equal cuts (heavy ties) are merged, so bins may be fewer.
    """
    finite = values[np.isfinite(values)]
    distinct = np.unique(finite)
    if distinct.size <= bins:
        return distinct[1:].astype(np.float64)
    return np.unique(np.quantile(finite, np.arange(1, bins) / bins))
