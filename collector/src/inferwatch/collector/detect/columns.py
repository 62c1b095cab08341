"""A reference's and a window's columns in the detector library's shapes.

Row samples (the reservoirs) become ``Dataset``s aligned to the reference's columns, with the
rows' prediction ids; exact per-column summaries become the counts the library tests on: frozen
bin counts for numbers, category counts for categories, over every row. A column the window
lacks, or has as the other kind (text for numbers), is all missing in the window's rows, so its
test says it had no values rather than the whole check failing (the schema check reports why).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inferwatch.collector.detectors import Dataset
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.window.reservoir import Reservoir
from inferwatch.collector.window.summaries import (
    OTHER,
    CategoricalSummary,
    NumericSummary,
    WindowSummary,
)
from inferwatch.frame import CategoricalColumn, Role

_CODES = np.int32


@dataclass(frozen=True)
class Columns:
    """The reference's columns of one role, by kind, in the reference's order."""

    role: Role
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @classmethod
    def of(cls, profile: Profile, role: Role) -> Columns:
        numeric: list[str] = []
        categorical: list[str] = []
        for (column_role, name), summary in profile.summary.columns.items():
            if column_role != role:
                continue
            (numeric if isinstance(summary, NumericSummary) else categorical).append(name)
        return cls(role, tuple(numeric), tuple(categorical))

    @property
    def names(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def __bool__(self) -> bool:
        return bool(self.numeric or self.categorical)

    def rows(self, reservoir: Reservoir) -> Dataset:
        """The reservoir's rows of these columns, with their prediction ids."""
        values, names = reservoir.numeric(self.role)
        position = {name: j for j, name in enumerate(names)}
        matrix = np.full((reservoir.size, len(self.numeric)), np.nan)
        for k, name in enumerate(self.numeric):
            j = position.get(name)
            if j is not None:
                matrix[:, k] = values[:, j]
        categorical = []
        for name in self.categorical:
            column = reservoir.categorical(name, self.role)
            if column is None:
                column = CategoricalColumn(name, np.full(reservoir.size, -1, _CODES), (), self.role)
            categorical.append(column)
        ids = np.empty(reservoir.size, dtype=object)
        ids[:] = reservoir.ids
        return Dataset(matrix, self.numeric, tuple(categorical), ids)

    def bins(self, summary: WindowSummary) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{column: (cuts, counts)} of the numeric columns binned over frozen cuts."""
        out = {}
        for name in self.numeric:
            numeric = summary.numeric(name, self.role)
            if numeric is not None and numeric.bin_counts is not None:
                assert numeric.cuts is not None
                out[name] = (numeric.cuts, numeric.bin_counts)
        return out

    def window_bins(
        self, summary: WindowSummary, reference: dict[str, tuple[np.ndarray, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """The window's exact bin counts of the columns binned over the reference's cuts.

        A window opened before its reference existed has no bins; its columns are counted from
        the row sample instead (by the library, over the reference's cuts).
        """
        out = {}
        for name, (cuts, _) in reference.items():
            numeric = summary.numeric(name, self.role)
            if (
                numeric is not None
                and numeric.bin_counts is not None
                and numeric.cuts is not None
                and numeric.cuts.shape == cuts.shape
                and bool((numeric.cuts == cuts).all())
            ):
                out[name] = numeric.bin_counts
        return out

    def category_counts(self, summary: WindowSummary) -> dict[str, dict[str, int]]:
        """{column: {category: count}} over every row; names past the tracking bound pool as
        ``__other__``."""
        out = {}
        for name in self.categorical:
            categorical = summary.categorical(name, self.role)
            if categorical is not None and categorical.count:
                out[name] = counts_of(categorical)
        return out


def counts_of(summary: CategoricalSummary) -> dict[str, int]:
    counts = {name: n for name, n in summary.counts.items() if n}
    if summary.other:
        counts[OTHER] = counts.get(OTHER, 0) + summary.other
    return counts
