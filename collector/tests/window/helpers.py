"""Helpers shared by the summary, reservoir and profile tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from inferwatch.frame import Frame, categorical, numeric


def numeric_frame(values: np.ndarray, names: Sequence[str], *, split: bool = False) -> Frame:
    """A frame of numeric features: one named block, or one width-1 block per feature."""
    if split:
        return Frame(len(values), tuple(numeric(n, values[:, j]) for j, n in enumerate(names)))
    return Frame(len(values), (numeric("features", values, names=names),))


def random_splits(rng: np.random.Generator, rows: int, parts: int) -> list[slice]:
    """``parts`` contiguous, non-empty slices covering ``range(rows)``, at random cut points."""
    cuts = np.sort(rng.choice(np.arange(1, rows), parts - 1, replace=False))
    bounds = [0, *cuts.tolist(), rows]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def mixed_frame(x: np.ndarray, colors: Sequence[str | None], scores: np.ndarray) -> Frame:
    """Numeric features x0..x{d-1}, a categorical ``color`` and an output ``score``."""
    names = [f"x{j}" for j in range(x.shape[1])]
    return Frame(
        len(x),
        (
            numeric("features", x, names=names),
            categorical("color", colors),
            numeric("score", scores, role="output"),
        ),
    )
