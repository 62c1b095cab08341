"""Two-sample tests of a window against a re-weighted reference.

Each reference row carries a weight (in the shift verdict, w(y) of its label); with every weight
1 the tests are the usual ones, so the same code tests "the window against the reference" and
"the window against the reference re-weighted by the class mix". A weighted sample counts as
Kish's effective size, n_eff = (sum w)^2 / sum w^2, in the tests' sample sizes.

- numbers: the KS statistic between the weighted reference's and the window's ECDFs (exact; with
  integer weights it is ``scipy.stats.ks_2samp``'s on the rows repeated), its p-value from
  Smirnov's limit with Stephens' correction at n_eff; Wasserstein-1 between the two (equal to
  ``scipy.stats.wasserstein_distance`` with ``u_weights``); PSI over the reference's quantile bins.
- categories: the chi-squared test of homogeneity with the reference's weighted counts scaled to
  n_eff rows; PSI and total variation of the shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from inferwatch.collector.detectors import stats


def effective_size(weights: np.ndarray) -> float:
    """Kish's effective sample size of a weighted sample."""
    total = float(weights.sum())
    squares = float(np.square(weights).sum())
    return total * total / squares if squares > 0 else 0.0


@dataclass(frozen=True)
class NumericColumn:
    """A reference column sorted once, with each value's group (its label class)."""

    values: np.ndarray  # sorted, finite
    groups: np.ndarray  # group index of each sorted value
    cuts: np.ndarray  # inner quantile bin edges, for PSI
    bins: np.ndarray  # bin index of each sorted value
    sd: float

    @classmethod
    def of(cls, values: np.ndarray, groups: np.ndarray, bins: int) -> NumericColumn:
        finite = np.isfinite(values)
        order = np.argsort(values[finite], kind="stable")
        sorted_values = values[finite][order]
        cuts = stats.quantile_cuts(sorted_values, bins)
        return cls(
            sorted_values,
            groups[finite][order],
            cuts,
            np.searchsorted(cuts, sorted_values, side="right"),
            float(sorted_values.std()) if sorted_values.size else float("nan"),
        )


@dataclass(frozen=True)
class Comparison:
    """A window's column against the (weighted) reference's."""

    test: str  # "ks" or "chi2"
    statistic: float
    p_value: float
    effect_sizes: dict[str, float]
    n_reference: float  # effective
    n_window: int


def ks_weighted(
    reference: np.ndarray, weights: np.ndarray, window: np.ndarray
) -> tuple[float, float]:
    """(KS D, Wasserstein-1) between a sorted weighted reference and a window's values.

    Both ECDFs are right-continuous step functions, constant between consecutive points of the
    pooled sample, so D is the largest gap at those points and W1 the sum of gap x width.
    """
    w = np.sort(window)
    pooled = np.union1d(reference, w)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    f_reference = cumulative[np.searchsorted(reference, pooled, side="right")] / cumulative[-1]
    f_window = np.searchsorted(w, pooled, side="right") / w.size
    gap = np.abs(f_reference - f_window)
    return float(gap.max()), float(np.sum(gap[:-1] * np.diff(pooled)))


def ks_p_value(d: float, n_reference: float, n_window: float) -> float:
    """Smirnov's limit with Stephens' finite-sample correction, as ``stats.ks_and_wasserstein``."""
    en = n_reference * n_window / (n_reference + n_window)
    root = math.sqrt(en)
    return float(np.clip(special.kolmogorov((root + 0.12 + 0.11 / root) * d), 0.0, 1.0))


def compare_numeric(
    column: NumericColumn, group_weights: np.ndarray, window: np.ndarray
) -> Comparison | None:
    """The window's finite values against the reference weighted by its groups' weights; None
    when either side has no value (or every reference weight is 0)."""
    values = window[np.isfinite(window)]
    weights = group_weights[column.groups]
    if values.size == 0 or column.values.size == 0 or float(weights.sum()) <= 0:
        return None
    n_eff = effective_size(weights)
    d, w1 = ks_weighted(column.values, weights, values)
    reference_bins = np.bincount(column.bins, weights=weights, minlength=column.cuts.size + 1)
    window_bins = stats.bin_counts(values, column.cuts)
    sd = column.sd if column.sd > 0 else float("nan")
    return Comparison(
        "ks",
        d,
        ks_p_value(d, n_eff, values.size),
        {
            "psi": stats.psi(reference_bins, window_bins),
            "wasserstein": w1,
            "wasserstein_sd": w1 / sd if sd == sd else (0.0 if w1 == 0 else float("inf")),
            "mean_shift_sd": (
                float(values.mean()) - float(np.average(column.values, weights=weights))
            )
            / sd,
        },
        n_eff,
        int(values.size),
    )


@dataclass(frozen=True)
class CategoricalColumn:
    """A reference column's category codes (-1 = missing) and each row's group."""

    codes: np.ndarray
    groups: np.ndarray
    categories: tuple[str, ...]


def compare_categorical(
    column: CategoricalColumn, group_weights: np.ndarray, window: dict[str, int]
) -> Comparison | None:
    """The window's category counts against the reference's weighted counts (categories unseen
    in the reference kept apart, as ``stats.chi2_two_sample`` pools them)."""
    present = column.codes >= 0
    weights = group_weights[column.groups[present]]
    if float(weights.sum()) <= 0 or not sum(window.values()):
        return None
    n_eff = effective_size(weights)
    names = list(column.categories) + sorted(set(window) - set(column.categories))
    reference = np.zeros(len(names))
    reference[: len(column.categories)] = np.bincount(
        column.codes[present], weights=weights, minlength=len(column.categories)
    )
    counts = np.array([window.get(name, 0) for name in names], dtype=np.float64)
    scaled = reference / reference.sum() * n_eff
    chi = stats.chi2_two_sample(scaled, counts)
    return Comparison(
        "chi2",
        chi.statistic,
        chi.p_value,
        {
            "psi": stats.psi(reference, counts),
            "total_variation": stats.total_variation(reference, counts),
        },
        n_eff,
        int(counts.sum()),
    )
