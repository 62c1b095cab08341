"""Statistics shared by the detectors: corrections, distances on counts, fast two-sample tests.

The two-sample KS statistic, the Mann-Whitney rank-sum test and the Wasserstein-1 distance are
computed from a reference sorted once at fit time (scipy re-sorts the reference on every call),
for all of a window's columns in one pass (``SortedColumns``, ``ks_and_wasserstein_columns``,
``mann_whitney_columns``): per column only the binary search into its reference remains; tests
check them against ``scipy.stats.ks_2samp``, ``scipy.stats.mannwhitneyu`` and
``scipy.stats.wasserstein_distance``. ``cauchy_combination`` joins dependent p-values of one
feature (KS and Mann-Whitney) into one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

Correction = Literal["bonferroni", "holm", "bh", "none"]
CORRECTIONS = ("bonferroni", "holm", "bh", "none")
# Proportions are floored here before taking logs, so an empty bin or a category unseen in the
# reference gives a large but finite PSI (a share of 1% against none adds about 0.05).
PSI_FLOOR = 1e-4
# Pearson's rule of thumb: every expected count at least 5 for the chi-squared approximation.
MIN_EXPECTED = 5.0


def adjust_p_values(p_values: np.ndarray, method: Correction = "bonferroni") -> np.ndarray:
    """Family-wise (Bonferroni, Holm's step-down) or false-discovery-rate (Benjamini-Hochberg)
    adjusted p-values, in the order given."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * p.size, 1.0)
    if method == "holm":
        order = np.argsort(p, kind="stable")
        scaled = np.minimum(1.0, (p.size - np.arange(p.size)) * p[order])
        adjusted = np.empty_like(p)
        adjusted[order] = np.maximum.accumulate(scaled)
        return adjusted
    if method == "bh":
        return np.asarray(stats.false_discovery_control(p, method="bh"), dtype=np.float64)
    raise ValueError(f"correction must be one of {CORRECTIONS}, got {method!r}")


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """(k + 1) / (n + 1): k null statistics at least as large as the observed one, out of n.

    Counting the observed statistic as one of the permutations keeps the test exact and the
    p-value above zero.
    """
    null = np.asarray(null, dtype=np.float64)
    return float((np.count_nonzero(null >= observed) + 1) / (null.size + 1))


def shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=np.float64)


def psi(reference_counts: np.ndarray, window_counts: np.ndarray) -> float:
    """Population stability index over the same bins or categories."""
    return float(psi_rows(reference_counts, window_counts))


def psi_rows(reference_counts: np.ndarray, window_counts: np.ndarray) -> np.ndarray:
    """``psi`` of each pair of rows (bins along the last axis), in one pass."""
    p = np.maximum(_row_shares(reference_counts), PSI_FLOOR)
    q = np.maximum(_row_shares(window_counts), PSI_FLOOR)
    return np.asarray(np.sum((q - p) * np.log(q / p), axis=-1))


def _row_shares(counts: np.ndarray) -> np.ndarray:
    """``shares`` along the last axis: zeros where a row counts nothing."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    return np.where(total > 0, counts / np.where(total > 0, total, 1.0), 0.0)


def js_distance(reference_counts: np.ndarray, window_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, so between 0 and 1)."""
    return float(js_distance_rows(reference_counts, window_counts))


def js_distance_rows(reference_counts: np.ndarray, window_counts: np.ndarray) -> np.ndarray:
    """``js_distance`` of each pair of rows (bins along the last axis); 0 where either row
    counts nothing."""
    p = np.asarray(reference_counts, dtype=np.float64)
    q = np.asarray(window_counts, dtype=np.float64)
    if p.ndim == 1:
        if p.sum() == 0 or q.sum() == 0:
            return np.asarray(0.0)
        return np.asarray(jensenshannon(p, q, base=2))
    out = np.zeros(p.shape[0])
    counted = (p.sum(axis=1) > 0) & (q.sum(axis=1) > 0)
    if counted.any():
        out[counted] = jensenshannon(p[counted], q[counted], axis=1, base=2)
    return out


def total_variation(reference_counts: np.ndarray, window_counts: np.ndarray) -> float:
    """Half the L1 distance between the shares: the fraction of rows that changed bucket."""
    p = shares(np.asarray(reference_counts, dtype=np.float64))
    q = shares(np.asarray(window_counts, dtype=np.float64))
    return float(0.5 * np.abs(p - q).sum())


@dataclass(frozen=True)
class ChiSquared:
    statistic: float
    p_value: float
    dof: int
    merged: int  # sparse buckets pooled into one before testing


def chi2_two_sample(reference_counts: np.ndarray, window_counts: np.ndarray) -> ChiSquared:
    """Chi-squared test of homogeneity on the 2 x K table (reference, window) of counts.

    Both sides are samples, so this is the contingency test, not goodness of fit against the
    reference's shares. Buckets whose expected count is below 5 in either row are pooled, the
    reference's rare categories into one bucket and categories unseen in the reference into
    another (pooling them together would hide new categories among old rare ones). A pool
    still expected below 1 joins the smallest bucket (Cochran: every expected count >= 1).
    Fewer than two buckets left: no evidence, p = 1.
    """
    table = np.vstack([reference_counts, window_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    totals = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(totals == 0):
        return ChiSquared(0.0, 1.0, 0, 0)
    sparse = _expected_min(table, totals) < MIN_EXPECTED
    merged = int(sparse.sum())
    if merged:
        unseen = table[0] == 0
        pools = [table[:, group].sum(axis=1) for group in (sparse & ~unseen, sparse & unseen)]
        table = np.column_stack([table[:, ~sparse], *(p for p in pools if p.sum() > 0)])
        kept = int((~sparse).sum())
        for column in range(table.shape[1] - 1, kept - 1, -1):
            if _expected_min(table, totals)[column] < 1 and table.shape[1] > 2:
                others = np.delete(np.arange(table.shape[1]), column)
                smallest = others[np.argmin(table[:, others].sum(axis=0))]
                table[:, smallest] += table[:, column]
                table = np.delete(table, column, axis=1)
    if table.shape[1] < 2:
        return ChiSquared(0.0, 1.0, 0, merged)
    result = stats.chi2_contingency(table, correction=False)
    return ChiSquared(float(result.statistic), float(result.pvalue), int(result.dof), merged)


def _expected_min(table: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Per bucket, the smaller of its two expected counts under homogeneity."""
    return np.asarray(np.outer(totals, table.sum(axis=0)).min(axis=0) / totals.sum())


def quantile_cuts(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (fewer when values repeat).

    Same convention as the collector's summaries: B-1 cuts give B bins (-inf, c0), [c0, c1),
    ..., [c_last, inf); ``bin_counts`` puts a value in the bin ``searchsorted(cuts, x, 'right')``.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.empty(0)
    cuts = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    # A cut at the minimum would leave the first bin empty.
    return cuts[cuts > finite.min()]


def bin_counts(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(cuts, finite, side="right"), minlength=cuts.size + 1)


def sorted_bin_counts(ordered: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """``bin_counts`` of finite values already sorted: where each cut falls among them (a value
    belongs to bin k when k cuts are <= it, so bin k ends where the values reach cut k)."""
    ends = np.concatenate(([0], np.searchsorted(ordered, cuts, side="left"), [ordered.size]))
    return ends[1:] - ends[:-1]


@dataclass(frozen=True)
class SortedSample:
    """A numeric sample sorted once, with prefix sums for exact Wasserstein distances."""

    values: np.ndarray  # sorted, finite
    prefix: np.ndarray  # prefix[k] = sum of the k smallest values
    # Sum of t^3 - t over the sample's groups of t equal values: its share of the Mann-Whitney
    # tie correction (0 without repeats).
    tie_cubes: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> SortedSample:
        ordered = np.sort(values[np.isfinite(values)])
        return cls(ordered, np.concatenate([[0.0], np.cumsum(ordered)]), _tie_cubes(ordered))

    @property
    def size(self) -> int:
        return int(self.values.size)


@dataclass(frozen=True)
class SortedColumns:
    """Several sorted samples end to end, so that all of a window's columns are tested in one
    pass: the same numpy calls over a (columns, rows) array rather than again for each column."""

    samples: tuple[SortedSample, ...]
    values: np.ndarray  # every sample's values, end to end
    prefix: np.ndarray  # every sample's prefix sums, end to end (each one longer than its sample)
    starts: np.ndarray  # where sample i begins in ``values`` (in ``prefix``: starts[i] + i)
    sizes: np.ndarray
    tie_cubes: np.ndarray  # each sample's own

    @classmethod
    def of(cls, samples: Sequence[SortedSample]) -> SortedColumns:
        sizes = np.array([s.size for s in samples], dtype=np.int64)
        starts = np.cumsum(sizes) - sizes
        return cls(
            tuple(samples),
            np.concatenate([s.values for s in samples]) if samples else np.empty(0),
            np.concatenate([s.prefix for s in samples]) if samples else np.empty(0),
            starts,
            sizes,
            np.array([s.tie_cubes for s in samples], dtype=np.float64),
        )


def _tie_cubes(ordered: np.ndarray) -> float:
    if ordered.size < 2 or not np.any(ordered[1:] == ordered[:-1]):
        return 0.0
    _, counts = np.unique(ordered, return_counts=True)
    t = counts.astype(np.float64)
    return float(np.sum(t**3 - t))


def ks_and_wasserstein(reference: SortedSample, window: np.ndarray) -> tuple[float, float, float]:
    """(KS D, KS p-value, Wasserstein-1) between the reference and a window's finite values
    (``ks_and_wasserstein_columns`` for one column). ``window`` need not be sorted."""
    d, p, w1 = ks_and_wasserstein_columns(
        SortedColumns.of((reference,)), np.zeros(1, dtype=np.int64), np.sort(window)[None, :]
    )
    return float(d[0]), float(p[0]), float(w1[0])


@dataclass(frozen=True)
class Positions:
    """Where each value of a window's rows falls in its reference sample: ``left`` counts the
    reference values below it, ``right`` those at most it (the same array when no window value
    equals a reference value). Computed once, shared by KS, Mann-Whitney and Wasserstein."""

    left: np.ndarray
    right: np.ndarray

    @classmethod
    def of(cls, reference: SortedColumns, which: np.ndarray, windows: np.ndarray) -> Positions:
        count, n_w = windows.shape
        n_r = reference.sizes[which][:, None]
        start = reference.starts[which][:, None]
        left = np.empty((count, n_w), dtype=np.intp)
        for i, j in enumerate(which.tolist()):
            left[i] = np.searchsorted(reference.samples[j].values, windows[i], side="left")
        # Ties with the reference (discrete data) need the right-continuous count too.
        gathered = reference.values[start + np.minimum(left, n_r - 1)]
        tied = np.flatnonzero(np.any((gathered == windows) & (left < n_r), axis=1))
        right = left
        if tied.size:
            right = left.copy()
            for i in tied.tolist():
                values = reference.samples[which[i]].values
                right[i] = np.searchsorted(values, windows[i], side="right")
        return cls(left, right)


def ks_and_wasserstein_columns(
    reference: SortedColumns,
    which: np.ndarray,
    windows: np.ndarray,
    positions: Positions | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(KS D, KS p-value, Wasserstein-1) of each row of ``windows`` (sorted, finite, all of one
    length) against the reference sample ``which[i]``; every sample and row must be non-empty.

    D equals ``ks_2samp``'s statistic exactly: the ECDF difference is checked on both sides of
    every window point, which covers every jump of either ECDF. The p-value is Smirnov's limit
    with Stephens' finite-sample correction, kolmogorov((sqrt(en) + 0.12 + 0.11/sqrt(en)) D):
    within 0.015 of ks_2samp's exact p-value for windows of 100+ rows, and far cheaper than
    scipy's exact or ``kstwo`` computation.
    """
    w = windows
    n_w = w.shape[1]
    n_r = reference.sizes[which][:, None]
    positions = positions or Positions.of(reference, which, w)
    left = positions.left
    # The reference's ECDF just before each window point and at it (they differ at ties).
    before = left / n_r
    at = before if positions.right is left else positions.right / n_r
    # The window's own ECDF just before and at each point: a and b unless the window repeats a
    # value (then its ties counted).
    a = np.arange(n_w) / n_w
    b = np.arange(1, n_w + 1) / n_w
    own_before, own_at = np.broadcast_to(a, w.shape), np.broadcast_to(b, w.shape)
    repeats = np.flatnonzero(np.any(w[:, 1:] == w[:, :-1], axis=1))
    if repeats.size:
        w_left, w_right = np.empty(w.shape, np.intp), np.empty(w.shape, np.intp)
        w_left[:], w_right[:] = np.arange(n_w), np.arange(1, n_w + 1)
        for i in repeats.tolist():
            w_left[i] = np.searchsorted(w[i], w[i], side="left")
            w_right[i] = np.searchsorted(w[i], w[i], side="right")
        own_before, own_at = w_left / n_w, w_right / n_w
    d = np.maximum(np.max(np.abs(at - own_at), axis=1), np.max(np.abs(before - own_before), axis=1))
    en = n_r[:, 0] * n_w / (n_r[:, 0] + n_w)
    root = np.sqrt(en)
    p = np.clip(special.kolmogorov((root + 0.12 + 0.11 / root) * d), 0.0, 1.0)
    return d, p, _wasserstein(reference, which, w, left, before, a, b)


def mann_whitney(reference: SortedSample, window: np.ndarray) -> tuple[float, float]:
    """(z, two-sided p-value) of the Mann-Whitney rank-sum test (``mann_whitney_columns`` for
    one column). ``window`` need not be sorted."""
    z, p = mann_whitney_columns(
        SortedColumns.of((reference,)), np.zeros(1, dtype=np.int64), np.sort(window)[None, :]
    )
    return float(z[0]), float(p[0])


def mann_whitney_columns(
    reference: SortedColumns,
    which: np.ndarray,
    windows: np.ndarray,
    positions: Positions | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(z, two-sided p-value) of the Mann-Whitney test of each row of ``windows`` (sorted,
    finite, all of one length) against the reference sample ``which[i]``.

    z > 0 when the window's values are larger. U counts the (reference, window) pairs with the
    window's value larger, ties counted half; the p-value is the normal approximation with the
    tie-corrected variance and no continuity correction, as ``scipy.stats.mannwhitneyu(...,
    method="asymptotic", use_continuity=False)``. A location shift moves every rank, so this
    test finds it with more power than KS, which looks only at the largest gap between the
    distribution functions (Pitman efficiency about 1.5 times KS's on a normal).
    """
    w = windows
    n_w = w.shape[1]
    positions = positions or Positions.of(reference, which, w)
    left, right = positions.left, positions.right
    n_r = reference.sizes[which].astype(np.float64)
    u = (left.sum(axis=1) + right.sum(axis=1)) / 2.0
    ties = reference.tie_cubes[which].copy()
    shared = np.zeros(len(w), dtype=bool) if right is left else np.any(right > left, axis=1)
    repeats = np.any(w[:, 1:] == w[:, :-1], axis=1)
    for i in np.flatnonzero(shared | repeats).tolist():
        # A value's pooled group of t = r + k equal values replaces the reference's own r.
        _, first, k = np.unique(w[i], return_index=True, return_counts=True)
        r = (right[i, first] - left[i, first]).astype(np.float64)
        t = r + k
        ties[i] += float(np.sum(t**3 - t) - np.sum(r**3 - r))
    total = n_r + n_w
    variance = n_r * n_w / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    sd = np.sqrt(np.maximum(variance, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (u - n_r * n_w / 2.0) / np.where(sd > 0, sd, 1.0), 0.0)
    return z, special.erfc(np.abs(z) / math.sqrt(2.0))


def cauchy_combination(p_values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The Cauchy combination (Liu and Xie 2020) of p-values along ``axis``, equal weights.

    Each p-value becomes a standard Cauchy variable tan((1/2 - p) pi); their mean is again
    standard Cauchy when the tests are independent or perfectly dependent, and its tail stays
    so, asymptotically, whatever the dependence between the tests: the combined p-value is valid
    at the small levels a correction across features asks for. Near the smallest input it costs
    about a factor of the number of tests (two here), as a Bonferroni of the minimum would, and
    less when several tests agree.
    """
    p = np.clip(np.asarray(p_values, dtype=np.float64), 1e-300, 1.0 - 1e-16)
    # tan((1/2 - p) pi) = 1 / tan(p pi): exact for the tiny p-values that matter.
    t = np.mean(1.0 / np.tan(p * np.pi), axis=axis)
    with np.errstate(divide="ignore"):
        return np.where(t > 0, np.arctan(1.0 / t) / np.pi, 0.5 - np.arctan(t) / np.pi)


def _wasserstein(
    reference: SortedColumns,
    which: np.ndarray,
    w: np.ndarray,
    left: np.ndarray,
    before: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
) -> np.ndarray:
    """Exact W1 = integral over u of |Q_ref(u) - Q_win(u)| of each row, from the reference's
    prefix sums (``left``: each window value's count of smaller reference values, ``before``
    the same as a share; ``a``, ``b``: i / n_w and (i + 1) / n_w).

    Q_win is constant (= w_i) on ((i-1)/n_w, i/n_w]; over such an interval the integral of
    |Q_ref - w_i| splits at c = F_ref(w_i-) where Q_ref crosses w_i; the integral of Q_ref is
    the piecewise linear G(u) with G(k/n_r) = prefix[k] / n_r.
    """
    n_w = w.shape[1]
    n_r = reference.sizes[which][:, None]
    start = reference.starts[which][:, None]
    prefix_start = start + which[:, None]
    g_grid = _integral_on_grid(reference, start, prefix_start, n_r, n_w)  # G(i / n_w)
    g_a, g_b = g_grid[:, :-1], g_grid[:, 1:]
    # G at the crossing is a knot of G, unless the crossing lies outside [a, b].
    g_c = np.where(
        before <= a,
        g_a,
        np.where(before >= b, g_b, reference.prefix[prefix_start + left] / n_r),
    )
    c = np.clip(before, a, b)
    below = w * (c - a) - (g_c - g_a)
    above = (g_b - g_c) - w * (b - c)
    return np.asarray(np.sum(below + above, axis=1))


def _integral_on_grid(
    reference: SortedColumns,
    start: np.ndarray,
    prefix_start: np.ndarray,
    n_r: np.ndarray,
    n_w: int,
) -> np.ndarray:
    """G(i / n_w) for i = 0..n_w, a row per column: the integral of its reference's quantile
    function."""
    # Samples of one size (the usual case) share their grid of knots: one row, broadcast.
    sizes = n_r[:1] if np.all(n_r == n_r[0]) else n_r
    scaled = np.arange(n_w + 1) * sizes  # u * n_r * n_w, exact in integers
    k = scaled // n_w
    frac = (scaled - k * n_w) / n_w
    k_safe = np.minimum(k, sizes - 1)
    return (reference.prefix[prefix_start + k] + frac * reference.values[start + k_safe]) / n_r


def format_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "p=n/a"
    if p < 1e-6:
        return "p<1e-6"
    if p < 1e-3:
        return f"p={p:.1e}"
    return f"p={p:.3f}"
