"""The demo's traffic: wines like the training data, then a covariate shift, then a label shift.

Rows are drawn like bootstrap samples of the training wines (a class is drawn, then a training
wine of that class) with a little noise (a tenth of each feature's sd), so that clean traffic has
the training distribution and an unchanged model stays as accurate as on its training data.
Every draw comes from a generator seeded by the window's number: a run replays the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

SEED = 20240501
NOISE_SDS = 0.1
# How far an injected outlier sits from the training mean, in training sds.
OUTLIER_SDS = 8.0


@dataclass(frozen=True)
class Phase:
    """A stretch of windows with one kind of traffic."""

    name: str
    windows: int
    description: str
    # Feature -> shift of its values, in training sds.
    shift: Mapping[str, float] = field(default_factory=dict)
    # Share of each class in the traffic; None keeps the training shares.
    class_shares: tuple[float, ...] | None = None
    # Rows pushed OUTLIER_SDS away on one feature, per window.
    outliers: int = 0


SCENARIO: tuple[Phase, ...] = (
    Phase("clean", 3, "wines like the training data"),
    Phase(
        "covariate shift",
        2,
        "alcohol +1.5 sd, color_intensity +1.5 sd, hue -1 sd; 12 outlier rows a window",
        shift={"alcohol": 1.5, "color_intensity": 1.5, "hue": -1.0},
        # 12 of 300 rows: with a reference of 178 wines the 1% row threshold is only known
        # roughly (it flags 0.1% to 3% of clean rows), so 8 would not be evidence of an
        # excess (beta-binomial p=0.09); 12 is (p=0.02 before the clean rows' own flags).
        outliers=12,
    ),
    Phase(
        "label shift",
        2,
        "cultivar mix 33/40/27% -> 10/20/70%",
        class_shares=(0.10, 0.20, 0.70),
    ),
)


@dataclass(frozen=True)
class Batch:
    """One request's rows, their true classes, and which rows are injected outliers."""

    features: np.ndarray
    labels: np.ndarray
    outlier: np.ndarray


class Traffic:
    """Draws request batches for each phase from the training data."""

    def __init__(
        self, features: np.ndarray, labels: np.ndarray, feature_names: tuple[str, ...]
    ) -> None:
        self.features = features
        self.labels = labels
        self.feature_names = feature_names
        self.classes = np.unique(labels)
        self.mean = features.mean(axis=0)
        self.sd = features.std(axis=0)
        self.training_shares = np.bincount(labels) / len(labels)
        self._by_class = [np.flatnonzero(labels == c) for c in self.classes]

    def window(self, phase: Phase, number: int, requests: int, rows: int) -> list[Batch]:
        """The ``requests`` batches of ``rows`` rows sent in the scenario's window ``number``."""
        rng = np.random.default_rng([SEED, number])
        total = requests * rows
        shares = np.asarray(phase.class_shares or self.training_shares, dtype=np.float64)
        classes = rng.choice(len(self.classes), size=total, p=shares / shares.sum())
        picks = np.array([rng.choice(self._by_class[c]) for c in classes])
        x = self.features[picks] + rng.normal(0.0, NOISE_SDS, size=(total, len(self.sd))) * self.sd
        for name, sds in phase.shift.items():
            j = self.feature_names.index(name)
            x[:, j] += sds * self.sd[j]
        outlier = np.zeros(total, dtype=bool)
        if phase.outliers:
            unshifted = [j for j, n in enumerate(self.feature_names) if n not in phase.shift]
            rows_hit = rng.choice(total, size=phase.outliers, replace=False)
            for row in rows_hit:
                j = int(rng.choice(unshifted))
                x[row, j] = self.mean[j] + OUTLIER_SDS * self.sd[j]
            outlier[rows_hit] = True
        y = self.classes[classes]
        return [
            Batch(x[i : i + rows], y[i : i + rows], outlier[i : i + rows])
            for i in range(0, total, rows)
        ]


def phase_of(number: int, scenario: tuple[Phase, ...] = SCENARIO) -> Phase:
    """The phase of the scenario's window ``number`` (0-based)."""
    for phase in scenario:
        if number < phase.windows:
            return phase
        number -= phase.windows
    raise IndexError("the scenario has no such window")


def total_windows(scenario: tuple[Phase, ...] = SCENARIO) -> int:
    return sum(phase.windows for phase in scenario)
