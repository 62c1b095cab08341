"""Exact, mergeable summaries of the columns of a window.

A window's summary stays the same size whatever its traffic, and two summaries of parts of the
same window (a restart, another replica) merge into exactly the summary of the whole: counts are
integers that add, moments merge by Chan's parallel formula, and numeric histograms count over
bin edges frozen from the reference, so the bins of any two parts line up.
docs/windows-and-summaries.md describes the choices.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import numpy as np

from inferwatch.collector.codec import WINDOW_SUMMARY
from inferwatch.frame import CategoricalColumn, Column, Frame, NumericBlock, Role

OTHER = "__other__"
DEFAULT_MAX_CATEGORIES = 1000
ColumnKey = tuple[Role, str]  # (role, feature name): ("feature", "age"), ("output", "prediction")

# Distinct untracked categories are counted with a k-minimum-values sketch: exact below this many,
# an estimate with ~1/sqrt(k) = 6% relative error above it.
_KMV_SIZE = 256
_HASH_SPACE = float(2**64)
# Small batches are buffered up to this many rows (and cells) before being summarised together.
_BUFFER_ROWS = 1024
_BUFFER_CELLS = 2**15
# Large batches (a reference part) are summarised this many rows at a time, so that temporaries
# stay a few MiB whatever the part size.
_CHUNK_ROWS = 16_384
# Below this magnitude, squared deviations summed over any count of rows (under 2^63) stay far
# from float64's 2^1024, and moments are kept as they are. A summary that has seen a value at or
# above it keeps its sum of squares in units of 4^e, e its largest value's binary exponent, so
# that any finite input leaves finite state.
_UNSCALED_EXPONENT = 448
_UNSCALED_LIMIT = math.ldexp(1.0, _UNSCALED_EXPONENT)


def moment_exponent(low: float, high: float) -> int:
    """The binary exponent e of the units (2^e) in which a column of values in [low, high]
    keeps its moments: 0 for values below 2^448 in magnitude, else the largest's exponent."""
    if low > -_UNSCALED_LIMIT and high < _UNSCALED_LIMIT:
        return 0
    return math.frexp(max(-low, high))[1]


def _scaled(value: float, exponent: int) -> float:
    """``value * 2**exponent``, infinite where that is beyond float64."""
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return math.copysign(math.inf, value)


def _hash64(name: str) -> int:
    # Stable across processes and replicas (unlike hash()), so sketches from anywhere merge.
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def validate_cuts(cuts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Inner bin edges as a float64 array; ValueError unless 1-D, finite, strictly increasing."""
    array = np.asarray(cuts, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"bin cuts must be 1-D, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("bin cuts must be finite: the outer bins are already open-ended")
    if array.size > 1 and not (np.diff(array) > 0).all():
        raise ValueError("bin cuts must be strictly increasing")
    return array


class NumericSummary:
    """Count, missing, mean and variance, min/max and bin counts of one numeric column.

    ``cuts`` are the inner bin edges c_0 < ... < c_{B-2}, giving B bins (-inf, c_0), [c_0, c_1),
    ..., [c_{B-2}, inf): values outside the reference's range land in the open-ended outer bins.
    Only finite values are binned and enter the moments, so ``sum(bin_counts) == count``; NaN
    counts as ``missing`` and +-inf as ``non_finite``. Without cuts there are no bins.

    Any finite values give finite state: the mean lies between min and max, and the sum of
    squared deviations is kept in units of ``4 ** moment_exponent(min, max)`` (1 below 2^448),
    so that values near float64's limit neither overflow nor lose the others' precision.
    """

    __slots__ = (
        "_m2",
        "bin_counts",
        "count",
        "cuts",
        "max",
        "mean",
        "min",
        "missing",
        "non_finite",
    )

    def __init__(self, cuts: Sequence[float] | np.ndarray | None = None) -> None:
        self.cuts = None if cuts is None else validate_cuts(cuts)
        self.count = 0
        self.missing = 0
        self.non_finite = 0
        self.mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean, in units of 4^exponent
        self.min: float | None = None
        self.max: float | None = None
        self.bin_counts = None if self.cuts is None else np.zeros(self.cuts.size + 1, np.int64)

    def update(self, values: np.ndarray | Sequence[float]) -> None:
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        finite = np.isfinite(x)
        count = int(np.count_nonzero(finite))
        missing = int(np.count_nonzero(np.isnan(x)))
        self.missing += missing
        self.non_finite += x.size - count - missing
        if count == 0:
            return
        v = x if count == x.size else x[finite]
        low, high = float(v.min()), float(v.max())
        mean, m2 = _moments(v, moment_exponent(low, high), low, high)
        bins = None
        if self.cuts is not None:
            bins = np.bincount(
                np.searchsorted(self.cuts, v, side="right"), minlength=self.cuts.size + 1
            )
        self._absorb(count, mean, m2, low, high, bins)

    def merge(self, other: NumericSummary) -> None:
        if not _same_cuts(self.cuts, other.cuts):
            raise ValueError("numeric summaries with different bin cuts cannot merge")
        self.missing += other.missing
        self.non_finite += other.non_finite
        if other.count:
            assert other.min is not None and other.max is not None
            self._absorb(other.count, other.mean, other._m2, other.min, other.max, other.bin_counts)

    def _absorb(
        self,
        count: int,
        mean: float,
        m2: float,
        low: float,
        high: float,
        bins: np.ndarray | None,
    ) -> None:
        """Add ``count`` values of ``mean`` and ``m2`` (in units of their own exponent's)."""
        # Chan et al.'s pairwise update: stable where the textbook sum-of-squares is not.
        if self.count == 0:
            self.mean, self._m2, self.min, self.max = mean, m2, low, high
        else:
            assert self.min is not None and self.max is not None
            own_low, own_high = self.min, self.max
            self.min = min(own_low, low)
            self.max = max(own_high, high)
            total = self.count + count
            if self.min > -_UNSCALED_LIMIT and self.max < _UNSCALED_LIMIT:
                delta = mean - self.mean
                self.mean = min(max(self.mean + delta * count / total, self.min), self.max)
                self._m2 += m2 + delta * delta * (self.count * count / total)
            else:
                own = moment_exponent(own_low, own_high)
                theirs = moment_exponent(low, high)
                exponent = max(own, theirs)
                # In units of 2^exponent every mean is below 1, so nothing here overflows.
                mine, delta = math.ldexp(self.mean, -exponent), math.ldexp(mean, -exponent)
                delta -= mine
                self.mean = min(
                    max(math.ldexp(mine + delta * count / total, exponent), self.min), self.max
                )
                self._m2 = (
                    math.ldexp(self._m2, 2 * (own - exponent))
                    + math.ldexp(m2, 2 * (theirs - exponent))
                    + delta * delta * (self.count * count / total)
                )
        self.count += count
        if bins is not None and self.bin_counts is not None:
            self.bin_counts += bins

    @property
    def exponent(self) -> int:
        """The binary exponent of the units the moments are kept in (``moment_exponent``)."""
        return 0 if self.min is None or self.max is None else moment_exponent(self.min, self.max)

    @property
    def m2_units(self) -> float:
        """The sum of squared deviations in units of ``4 ** exponent``, as it is kept."""
        return self._m2

    @classmethod
    def restore(
        cls,
        cuts: np.ndarray | None,
        count: int,
        missing: int,
        non_finite: int,
        mean: float,
        m2_units: float,
        low: float | None,
        high: float | None,
        bin_counts: np.ndarray | None,
    ) -> NumericSummary:
        """A summary from its stored values, ``cuts`` already validated (``validate_cuts``) and
        ``bin_counts`` one longer: no checks, since a window of 100,000 columns reads them all."""
        summary = cls.__new__(cls)
        summary.cuts = cuts
        summary.count = count
        summary.missing = missing
        summary.non_finite = non_finite
        summary.mean = mean
        summary._m2 = m2_units
        summary.min = low
        summary.max = high
        summary.bin_counts = bin_counts
        return summary

    @property
    def m2(self) -> float:
        """The sum of squared deviations from the mean; inf when it is beyond float64."""
        return _scaled(self._m2, 2 * self.exponent)

    @property
    def variance(self) -> float:
        """Population variance (ddof=0) of the finite values; NaN when there are none, inf
        when it is beyond float64 (``std`` never is)."""
        return _scaled(self._m2 / self.count, 2 * self.exponent) if self.count else math.nan

    @property
    def std(self) -> float:
        if not self.count:
            return math.nan
        return math.ldexp(math.sqrt(self._m2 / self.count), self.exponent)

    @property
    def total(self) -> int:
        return self.count + self.missing + self.non_finite

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, all finite. ``m2`` is null when it is beyond float64; ``m2_scaled`` then
        holds it in units of ``4 ** moment_exponent(min, max)``."""
        m2 = self.m2
        data = {
            "count": self.count,
            "missing": self.missing,
            "non_finite": self.non_finite,
            "mean": self.mean,
            "m2": m2 if math.isfinite(m2) else None,
            "min": self.min,
            "max": self.max,
            "cuts": None if self.cuts is None else self.cuts.tolist(),
            "bin_counts": None if self.bin_counts is None else self.bin_counts.tolist(),
        }
        if not math.isfinite(m2):
            data["m2_scaled"] = self._m2
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSummary:
        summary = cls(data["cuts"])
        summary.count = int(data["count"])
        summary.missing = int(data["missing"])
        summary.non_finite = int(data["non_finite"])
        summary.mean = float(data["mean"])
        summary.min = None if data["min"] is None else float(data["min"])
        summary.max = None if data["max"] is None else float(data["max"])
        if data["m2"] is None:
            summary._m2 = float(data["m2_scaled"])
        else:
            summary._m2 = math.ldexp(float(data["m2"]), -2 * summary.exponent)
        if summary.bin_counts is not None:
            counts = np.asarray(data["bin_counts"], dtype=np.int64)
            if counts.shape != summary.bin_counts.shape:
                raise ValueError("bin_counts does not match the bin cuts")
            summary.bin_counts = counts
        return summary


def _moments(v: np.ndarray, exponent: int, low: float, high: float) -> tuple[float, float]:
    """Mean and sum of squared deviations (in units of 4^exponent) of the finite values ``v``."""
    if exponent:
        v = np.ldexp(v, -exponent)
    mean = float(v.sum()) / v.size
    deviations = v - mean
    m2 = float(deviations @ deviations)
    # Rounding can put a mean of near-equal values just outside them.
    return min(max(math.ldexp(mean, exponent), low), high), m2


def _same_cuts(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and bool((a == b).all())


class CategoricalSummary:
    """Counts per category of one categorical column, in bounded memory.

    Categories of the ``reference`` are always counted by name; at most ``max_categories`` other
    names are too, first come first served, and values of any further name add to ``other``
    (OTHER), whose distinct names ``other_distinct`` counts (exact up to 256, then an estimate).
    ``unseen`` counts values outside the reference (always 0 without one); ``missing`` None.
    """

    __slots__ = (
        "_extra",
        "_overflow_hashes",
        "_reference_set",
        "counts",
        "max_categories",
        "missing",
        "other",
        "reference",
        "unseen",
    )

    def __init__(
        self,
        reference: Sequence[str] | None = None,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
    ) -> None:
        if max_categories < 1:
            raise ValueError(f"max_categories must be at least 1, got {max_categories}")
        self.reference = None if reference is None else tuple(reference)
        self._reference_set = None if self.reference is None else frozenset(self.reference)
        self.max_categories = max_categories
        self.counts: dict[str, int] = {}
        self._extra = 0  # tracked names outside the reference
        self.missing = 0
        self.unseen = 0
        self.other = 0
        # The smallest hashes of untracked names, sorted: a k-minimum-values distinct sketch.
        self._overflow_hashes: list[int] = []

    def update(self, codes: np.ndarray, categories: Sequence[str]) -> None:
        """Fold in int codes into ``categories`` (-1 is missing), as a frame carries them."""
        codes = np.asarray(codes)
        if codes.size == 0:
            return
        tally = np.bincount(codes.astype(np.intp, copy=False) + 1, minlength=len(categories) + 1)
        counts, reference = self.counts, self._reference_set
        tallies = tally.tolist()
        self.missing += tallies[0]
        for name, count in zip(categories, tallies[1:], strict=False):
            if not count:
                continue
            if reference is not None and name not in reference:
                self.unseen += count
            if name in counts:
                counts[name] += count
            else:
                self._track(name, count)

    def add(self, name: str, count: int = 1) -> None:
        if self._reference_set is not None and name not in self._reference_set:
            self.unseen += count
        self._track(name, count)

    def _track(self, name: str, count: int) -> None:
        counts = self.counts
        if name in counts:
            counts[name] += count
        elif self._reference_set is not None and name in self._reference_set:
            counts[name] = count
        elif self._extra < self.max_categories:
            counts[name] = count
            self._extra += 1
        else:
            self.other += count
            self._note_overflow(_hash64(name))

    def _note_overflow(self, digest: int) -> None:
        hashes = self._overflow_hashes
        position = bisect.bisect_left(hashes, digest)
        if position < len(hashes) and hashes[position] == digest:
            return
        if len(hashes) < _KMV_SIZE:
            hashes.insert(position, digest)
        elif position < _KMV_SIZE:
            hashes.insert(position, digest)
            hashes.pop()

    def merge(self, other: CategoricalSummary) -> None:
        if self.reference != other.reference:
            raise ValueError(
                "categorical summaries with different reference categories cannot merge"
            )
        self.missing += other.missing
        self.unseen += other.unseen
        self.other += other.other
        # Larger counts first, so that when names overflow the merge keeps the frequent ones.
        for name, count in sorted(other.counts.items(), key=lambda item: (-item[1], item[0])):
            self._track(name, count)
        for digest in other._overflow_hashes:
            self._note_overflow(digest)

    @property
    def count(self) -> int:
        """Non-missing values."""
        return sum(self.counts.values()) + self.other

    @property
    def total(self) -> int:
        return self.count + self.missing

    @property
    def other_distinct(self) -> int:
        """Distinct names counted in ``other``: exact up to 256, a KMV estimate beyond."""
        hashes = self._overflow_hashes
        if len(hashes) < _KMV_SIZE:
            return len(hashes)
        return round((_KMV_SIZE - 1) * _HASH_SPACE / (hashes[-1] + 1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": None if self.reference is None else list(self.reference),
            "max_categories": self.max_categories,
            "counts": self.counts,
            "missing": self.missing,
            "unseen": self.unseen,
            "other": self.other,
            "other_distinct": self.other_distinct,
            "overflow_hashes": [format(h, "016x") for h in self._overflow_hashes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalSummary:
        summary = cls(data["reference"], int(data["max_categories"]))
        summary.counts = {str(k): int(v) for k, v in data["counts"].items()}
        known = summary._reference_set or frozenset()
        summary._extra = sum(1 for name in summary.counts if name not in known)
        summary.missing = int(data["missing"])
        summary.unseen = int(data["unseen"])
        summary.other = int(data["other"])
        summary._overflow_hashes = sorted(int(h, 16) for h in data["overflow_hashes"])
        return summary


Summary = NumericSummary | CategoricalSummary


@dataclass(frozen=True, eq=False)
class SummaryLayout:
    """What a reference freezes for windows: bin cuts per numeric column, categories per
    categorical column. Windows built from the same layout merge; others do not."""

    numeric: Mapping[ColumnKey, np.ndarray] = field(default_factory=dict)
    categorical: Mapping[ColumnKey, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        overlap = set(self.numeric) & set(self.categorical)
        if overlap:
            raise ValueError(f"columns both numeric and categorical in a layout: {sorted(overlap)}")

    def __len__(self) -> int:
        return len(self.numeric) + len(self.categorical)

    def __contains__(self, key: object) -> bool:
        return key in self.numeric or key in self.categorical

    def matches(self, other: SummaryLayout) -> bool:
        return (
            self.numeric.keys() == other.numeric.keys()
            and all(_same_cuts(cuts, other.numeric[key]) for key, cuts in self.numeric.items())
            and dict(self.categorical) == dict(other.categorical)
        )

    def without_role(self, role: Role) -> SummaryLayout:
        return SummaryLayout(
            {k: v for k, v in self.numeric.items() if k[0] != role},
            {k: v for k, v in self.categorical.items() if k[0] != role},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": [[r, n, cuts.tolist()] for (r, n), cuts in self.numeric.items()],
            "categorical": [[r, n, list(c)] for (r, n), c in self.categorical.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SummaryLayout:
        return cls(
            {(r, n): validate_cuts(cuts) for r, n, cuts in data["numeric"]},
            {(r, n): tuple(c) for r, n, c in data["categorical"]},
        )


class _NumericColumns:
    """The numeric columns of one frame schema, summarised a block of rows at a time.

    Batches of ~100 rows are copied into a buffer and summarised together once it is full, so
    numpy's per-call cost is paid per thousand rows rather than per batch; readers of a
    WindowSummary flush first, so nothing is ever seen half-counted.
    """

    def __init__(
        self, sources: list[tuple[int, np.ndarray | None, int]], summaries: list[NumericSummary]
    ) -> None:
        self.summaries = summaries
        width = len(summaries)
        # (column index, positions within its block or None for all, first buffer column, width)
        self.sources: list[tuple[int, np.ndarray | None, int, int]] = []
        start = 0
        for index, positions, columns in sources:
            self.sources.append((index, positions, start, columns))
            start += columns
        self.capacity = max(16, min(_BUFFER_ROWS, _BUFFER_CELLS // max(width, 1)))
        self.buffer: np.ndarray | None = None
        self.filled = 0
        binned = [j for j, summary in enumerate(summaries) if summary.cuts is not None]
        self.binned = None if len(binned) == width else np.asarray(binned, dtype=np.intp)
        sizes = [summaries[j].cuts.size for j in binned]  # type: ignore[union-attr]
        widest = max(sizes, default=0)
        # cuts[k] holds every binned column's k-th cut (+inf past its last): bin index = how
        # many cuts a value reaches, counted one cut at a time over the whole block, which
        # beats searchsorted's unpredictable branches by about 2x here.
        self.cuts = np.full((widest, len(binned)), np.inf)
        for column, j in enumerate(binned):
            self.cuts[: sizes[column], column] = summaries[j].cuts
        self.offsets = np.concatenate(([0], np.cumsum([n + 1 for n in sizes], dtype=np.intp)))
        self.count_dtype = np.uint8 if widest < 255 else np.intp

    def add(self, columns: Sequence[Column], rows: int) -> None:
        if rows > self.capacity:
            self.flush()
            x = self._matrix(columns)
            for start in range(0, rows, _CHUNK_ROWS):
                self._summarise(x[start : start + _CHUNK_ROWS].astype(np.float64, copy=False))
            return
        if self.filled + rows > self.capacity:
            self.flush()
        if self.buffer is None:
            self.buffer = np.empty((self.capacity, len(self.summaries)))
        end = self.filled + rows
        for index, positions, start, width in self.sources:
            block = columns[index]
            assert isinstance(block, NumericBlock)
            values = block.values if positions is None else block.values[:, positions]
            self.buffer[self.filled : end, start : start + width] = values
        self.filled = end

    def _matrix(self, columns: Sequence[Column]) -> np.ndarray:
        parts = []
        for index, positions, _, _ in self.sources:
            block = columns[index]
            assert isinstance(block, NumericBlock)
            parts.append(block.values if positions is None else block.values[:, positions])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def flush(self) -> None:
        if self.filled and self.buffer is not None:
            self._summarise(self.buffer[: self.filled])
            self.filled = 0

    def _summarise(self, x: np.ndarray) -> None:
        rows = x.shape[0]
        finite = np.isfinite(x)
        counts = np.count_nonzero(finite, axis=0)
        all_finite = int(counts.sum()) == x.size
        if all_finite:
            missing = np.zeros(x.shape[1], np.intp)
            lows, highs = x.min(axis=0), x.max(axis=0)
        else:
            missing = np.count_nonzero(np.isnan(x), axis=0)
            lows = np.where(finite, x, np.inf).min(axis=0)
            highs = np.where(finite, x, -np.inf).max(axis=0)
        values = x
        # max(-low, high) is the largest magnitude (-inf for a column without finite values).
        huge = np.flatnonzero(np.maximum(-lows, highs) >= _UNSCALED_LIMIT)
        if huge.size:
            # Moments of these columns in units of 2^e (see NumericSummary): rare, so a copy.
            exponents = np.array([moment_exponent(float(lows[j]), float(highs[j])) for j in huge])
            values = x.copy()
            values[:, huge] = np.ldexp(x[:, huge], -exponents)
        if all_finite:
            means = values.sum(axis=0) / rows
            deviations = values - means
        else:
            clean = np.where(finite, values, 0.0)
            means = clean.sum(axis=0) / np.maximum(counts, 1)
            deviations = np.where(finite, clean - means, 0.0)
        m2s = np.einsum("ij,ij->j", deviations, deviations)
        if huge.size:
            means[huge] = np.ldexp(means[huge], exponents)
        # Rounding can put a mean of near-equal values just outside them.
        np.minimum(np.maximum(means, lows, out=means), highs, out=means)
        bins = self._bin(x, finite, all_finite)
        for j, (summary, count, nan, mean, m2, low, high) in enumerate(
            zip(
                self.summaries,
                counts.tolist(),
                missing.tolist(),
                means.tolist(),
                m2s.tolist(),
                lows.tolist(),
                highs.tolist(),
                strict=True,
            )
        ):
            summary.missing += nan
            summary.non_finite += rows - count - nan
            if count:
                summary._absorb(count, mean, m2, low, high, bins.get(j))

    def _bin(self, x: np.ndarray, finite: np.ndarray, all_finite: bool) -> dict[int, np.ndarray]:
        if not self.cuts.shape[1]:
            return {}
        values = x if self.binned is None else x[:, self.binned]
        reached = np.zeros(values.shape, self.count_dtype)
        step = np.empty(values.shape, np.bool_)
        for cut in self.cuts:
            np.greater_equal(values, cut, out=step)
            np.add(reached, step.view(np.uint8), out=reached, casting="unsafe")
        total = int(self.offsets[-1])
        flat = reached + self.offsets[:-1]
        if not all_finite:
            binned_finite = finite if self.binned is None else finite[:, self.binned]
            flat = np.where(binned_finite, flat, total)  # non-finite: a discarded slot
        tally = np.bincount(flat.reshape(-1), minlength=total + 1)
        positions = range(len(self.summaries)) if self.binned is None else self.binned.tolist()
        return {
            j: tally[self.offsets[column] : self.offsets[column + 1]]
            for column, j in enumerate(positions)
        }


@dataclass(slots=True)
class _Plan:
    """How to fold batches of one frame schema into the summaries (built once per schema)."""

    numeric: _NumericColumns | None
    categorical: list[tuple[int, CategoricalSummary]]
    mismatched: list[ColumnKey]
    new: list[ColumnKey]
    absent: list[ColumnKey]


class WindowSummary:
    """Every column of one (model, version, window): exact, mergeable, of bounded size.

    Built from a ``layout`` (a Profile's bins and category sets), every layout column has a
    summary from the start. Columns the layout does not know get one of the kind they first
    arrive as, without bins (bins made from one part's data would not line up with another's),
    and their rows are counted in ``new`` when there is a layout. Rows of a column arriving as
    the other kind (strings for a numeric column, numbers for a categorical one) are counted in
    ``type_mismatch`` and not summarised; rows of a batch lacking a layout column in ``absent``.
    """

    def __init__(
        self,
        layout: SummaryLayout | None = None,
        *,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
    ) -> None:
        self.layout = layout if layout is not None else SummaryLayout()
        self.max_categories = max_categories
        self.rows = 0
        self.batches = 0
        self._columns: dict[ColumnKey, Summary] = {}
        self.type_mismatch: dict[ColumnKey, int] = {}
        self.absent: dict[ColumnKey, int] = {}
        self.new: dict[ColumnKey, int] = {}
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        for key, cuts in self.layout.numeric.items():
            self._columns[key] = NumericSummary(cuts)
        for key, categories in self.layout.categorical.items():
            self._columns[key] = CategoricalSummary(categories, max_categories)

    @property
    def columns(self) -> dict[ColumnKey, Summary]:
        """Every column's summary by (role, name), up to date."""
        self._flush()
        return self._columns

    def update(
        self, frame: Frame | None, outputs: Frame | None = None, *, batches: int = 1
    ) -> None:
        """Fold in one batch: ``frame`` columns keep their roles, ``outputs`` count as outputs.

        ``batches``: how many batches the rows came in, when several were joined into one.
        """
        rows = batch_rows(frame, outputs)
        if rows is None:
            return
        columns, roles = batch_columns(frame, outputs)
        signature = (
            frame is not None,
            outputs is not None,
            *(
                (type(c), c.name, r, _names(c), _width(c))
                for c, r in zip(columns, roles, strict=True)
            ),
        )
        plan = self._plans.get(signature)
        if plan is None:
            plan = self._plans[signature] = self._plan(columns, roles, frame, outputs)
        self.rows += rows
        self.batches += batches
        if rows:
            self._apply(plan, columns, rows)

    def _plan(
        self,
        columns: Sequence[Column],
        roles: Sequence[Role],
        frame: Frame | None,
        outputs: Frame | None,
    ) -> _Plan:
        sources: list[tuple[int, np.ndarray | None, int]] = []
        numeric: list[NumericSummary] = []
        categorical: list[tuple[int, CategoricalSummary]] = []
        mismatched: list[ColumnKey] = []
        new: list[ColumnKey] = []
        present: set[ColumnKey] = set()
        for index, (column, role) in enumerate(zip(columns, roles, strict=True)):
            if isinstance(column, NumericBlock):
                positions: list[int] = []
                for j, name in enumerate(column.feature_names()):
                    key = (role, name)
                    present.add(key)
                    summary = self._summary_for(key, numeric=True, new=new)
                    if isinstance(summary, NumericSummary):
                        positions.append(j)
                        numeric.append(summary)
                    else:
                        mismatched.append(key)
                if positions:
                    whole = positions == list(range(column.width))
                    picks = None if whole else np.asarray(positions, dtype=np.intp)
                    sources.append((index, picks, len(positions)))
            else:
                key = (role, column.name)
                present.add(key)
                summary = self._summary_for(key, numeric=False, new=new)
                if isinstance(summary, CategoricalSummary):
                    categorical.append((index, summary))
                else:
                    mismatched.append(key)
        checked = set(roles)
        if frame is not None:
            checked.add("feature")
        if outputs is not None:
            checked.add("output")
        absent = [
            key
            for key in self._columns
            if key in self.layout and key[0] in checked and key not in present
        ]
        return _Plan(
            _NumericColumns(sources, numeric) if numeric else None,
            categorical,
            mismatched,
            new,
            absent,
        )

    def _summary_for(self, key: ColumnKey, *, numeric: bool, new: list[ColumnKey]) -> Summary:
        summary = self._columns.get(key)
        if summary is None:
            summary = NumericSummary() if numeric else CategoricalSummary(None, self.max_categories)
            self._columns[key] = summary
        if len(self.layout) and key not in self.layout:
            new.append(key)
        return summary

    def _apply(self, plan: _Plan, columns: Sequence[Column], rows: int) -> None:
        for key in plan.mismatched:
            self.type_mismatch[key] = self.type_mismatch.get(key, 0) + rows
        for key in plan.new:
            self.new[key] = self.new.get(key, 0) + rows
        for key in plan.absent:
            self.absent[key] = self.absent.get(key, 0) + rows
        for index, summary in plan.categorical:
            column = columns[index]
            assert isinstance(column, CategoricalColumn)
            summary.update(column.codes, column.categories)
        if plan.numeric is not None:
            plan.numeric.add(columns, rows)

    def _flush(self) -> None:
        for plan in self._plans.values():
            if plan.numeric is not None:
                plan.numeric.flush()

    def merge(self, other: WindowSummary) -> None:
        """Add another part of the same window (same layout); exact."""
        if not self.layout.matches(other.layout):
            raise ValueError("window summaries built from different references cannot merge")
        self.rows += other.rows
        self.batches += other.batches
        mine = self.columns
        for key, summary in other.columns.items():
            own = mine.get(key)
            if own is None:
                mine[key] = _copy(summary)
            elif type(own) is type(summary):
                own.merge(summary)  # type: ignore[arg-type]
            else:
                # The parts first saw this column as different kinds: keep ours, count theirs.
                self.type_mismatch[key] = self.type_mismatch.get(key, 0) + summary.total
        for counts, theirs in (
            (self.type_mismatch, other.type_mismatch),
            (self.absent, other.absent),
            (self.new, other.new),
        ):
            for key, count in theirs.items():
                counts[key] = counts.get(key, 0) + count

    def numeric(self, name: str, role: Role = "feature") -> NumericSummary | None:
        summary = self.columns.get((role, name))
        return summary if isinstance(summary, NumericSummary) else None

    def categorical(self, name: str, role: Role = "feature") -> CategoricalSummary | None:
        summary = self.columns.get((role, name))
        return summary if isinstance(summary, CategoricalSummary) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: everything needed to restore the summary, and to show it."""
        columns = self.columns
        return {
            "rows": self.rows,
            "batches": self.batches,
            "max_categories": self.max_categories,
            "layout": [[r, n] for r, n in columns if (r, n) in self.layout],
            "columns": [
                {
                    "role": role,
                    "name": name,
                    "kind": "numeric" if isinstance(summary, NumericSummary) else "categorical",
                    **summary.to_dict(),
                }
                for (role, name), summary in columns.items()
            ],
            "type_mismatch": _key_counts(self.type_mismatch),
            "absent": _key_counts(self.absent),
            "new": _key_counts(self.new),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowSummary:
        columns: dict[ColumnKey, Summary] = {}
        for entry in data["columns"]:
            kind = entry["kind"]
            if kind not in ("numeric", "categorical"):
                raise ValueError(f"unknown summary kind {kind!r}")
            columns[(entry["role"], entry["name"])] = (
                NumericSummary.from_dict(entry)
                if kind == "numeric"
                else CategoricalSummary.from_dict(entry)
            )
        numeric: dict[ColumnKey, np.ndarray] = {}
        categorical: dict[ColumnKey, tuple[str, ...]] = {}
        for role, name in data["layout"]:
            summary = columns[(role, name)]
            if isinstance(summary, NumericSummary):
                numeric[(role, name)] = (
                    summary.cuts if summary.cuts is not None else np.empty(0, np.float64)
                )
            else:
                categorical[(role, name)] = summary.reference or ()
        return cls.restore(
            SummaryLayout(numeric, categorical),
            data["max_categories"],
            columns,
            rows=int(data["rows"]),
            batches=int(data["batches"]),
            type_mismatch=_from_key_counts(data["type_mismatch"]),
            absent=_from_key_counts(data["absent"]),
            new=_from_key_counts(data["new"]),
        )

    @classmethod
    def restore(
        cls,
        layout: SummaryLayout,
        max_categories: int,
        columns: dict[ColumnKey, Summary],
        *,
        rows: int,
        batches: int,
        type_mismatch: dict[ColumnKey, int],
        absent: dict[ColumnKey, int],
        new: dict[ColumnKey, int],
    ) -> WindowSummary:
        """A summary from its stored parts (``from_dict``, the stored form): ``columns`` hold
        the layout's, so they are not built from it first."""
        window = cls.__new__(cls)
        window.layout = layout
        window.max_categories = max_categories
        window._plans = {}
        window._columns = columns
        window.rows = rows
        window.batches = batches
        window.type_mismatch = type_mismatch
        window.absent = absent
        window.new = new
        return window

    def to_bytes(self) -> bytes:
        """The stored form (codec.WINDOW_SUMMARY, format version 3): the numeric columns as
        arrays, the rest as JSON, in ten parts.

        Version 2 kept ``to_dict()`` as zlib-compressed JSON: for a window of 100,000 binned
        columns, 60 MB of JSON and about 9 s to write, 6 s to read, mostly in single calls
        (``json.dumps``, ``json.loads``, ``zlib`` at level 6) that held the GIL or the state
        lock throughout, so that each checkpoint of such a window stalled the collector
        (bench/notes/faults.md). The parts: 0. JSON: the summary's counts (rows, batches, type
        mismatches, absent and new columns), the roles part 3 names, each categorical column's
        ``to_dict()`` with its position among the columns; then, each zlib-compressed at level
        1: 1. the numeric columns' names end to end (UTF-8), 2. their lengths (uint32), 3. each
        one's role (uint8), 4. flags (uint8: 1 in the layout, 2 binned); 5. count, missing,
        non-finite (int64, 3 x N); 6. mean, ``m2_units``, min, max (float64, 4 x N; min and max
        NaN without finite values); 7. each binned column's number of cuts (uint32), 8. the
        cuts end to end (float64), 9. the bin counts end to end (int64).
        """
        return _encode_v3(self)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> WindowSummary:
        """Read ``to_bytes()`` of this or an earlier release; ContainerError if it is not one."""
        decoded = WINDOW_SUMMARY.decode(data)
        if decoded.version >= 3:
            with WINDOW_SUMMARY.reading():
                return _decode_v3(decoded.parts)
        (compressed,) = decoded.parts
        try:
            payload = zlib.decompress(compressed)
        except zlib.error as exc:
            raise WINDOW_SUMMARY.corrupt(f"its JSON does not inflate ({exc})") from None
        with WINDOW_SUMMARY.reading():
            return cls.from_dict(json.loads(payload))


def batch_rows(frame: Frame | None, outputs: Frame | None) -> int | None:
    """Rows of a batch given as inputs and outputs frames; None when neither is given."""
    if frame is not None and outputs is not None and frame.rows != outputs.rows:
        raise ValueError(
            f"a batch's inputs have {frame.rows} rows but its outputs {outputs.rows}; "
            "they must match"
        )
    if frame is not None:
        return frame.rows
    return None if outputs is None else outputs.rows


def batch_columns(frame: Frame | None, outputs: Frame | None) -> tuple[list[Column], list[Role]]:
    columns: list[Column] = []
    roles: list[Role] = []
    if frame is not None:
        columns.extend(frame.columns)
        roles.extend(c.role for c in frame.columns)
    if outputs is not None:
        columns.extend(outputs.columns)
        roles.extend("output" for _ in outputs.columns)
    return columns, roles


def _names(column: Column) -> tuple[str, ...] | None:
    return column.names if isinstance(column, NumericBlock) else None


def _width(column: Column) -> int:
    return column.width if isinstance(column, NumericBlock) else 1


def _copy(summary: Summary) -> Summary:
    if isinstance(summary, NumericSummary):
        return NumericSummary.from_dict(summary.to_dict())
    return CategoricalSummary.from_dict(summary.to_dict())


def _key_counts(counts: Mapping[ColumnKey, int]) -> list[list[Any]]:
    return [[role, name, count] for (role, name), count in counts.items()]


def _from_key_counts(rows: Iterable[Sequence[Any]]) -> dict[ColumnKey, int]:
    return {(role, name): int(count) for role, name, count in rows}


_V3_LENGTH = np.dtype("<u4")
_V3_BYTE = np.dtype("u1")
_INT = np.dtype("<i8")
_FLOAT = np.dtype("<f8")
_IN_LAYOUT = 1
_BINNED = 2


def _encode_v3(summary: WindowSummary) -> bytes:
    """Format version 3 (see ``WindowSummary.to_bytes``)."""
    columns = summary.columns
    numeric: list[tuple[ColumnKey, NumericSummary]] = []
    categorical: list[dict[str, Any]] = []
    for position, (key, column) in enumerate(columns.items()):
        if isinstance(column, NumericSummary):
            numeric.append((key, column))
        else:
            entry = {
                "at": position,
                "role": key[0],
                "name": key[1],
                "layout": key in summary.layout,
            }
            categorical.append({**entry, **column.to_dict()})
    roles = sorted({role for (role, _), _ in numeric})
    role_index = {role: index for index, role in enumerate(roles)}
    names = [name for (_, name), _ in numeric]
    flags = np.fromiter(
        (
            (_IN_LAYOUT if key in summary.layout else 0) | (_BINNED if s.cuts is not None else 0)
            for key, s in numeric
        ),
        np.uint8,
        len(numeric),
    )
    counts = np.array(
        [[s.count for _, s in numeric], [s.missing for _, s in numeric],
         [s.non_finite for _, s in numeric]],
        dtype=_INT,
    ).reshape(3, len(numeric))  # fmt: skip
    nan = math.nan
    moments = np.array(
        [[s.mean for _, s in numeric], [s.m2_units for _, s in numeric],
         [nan if s.min is None else s.min for _, s in numeric],
         [nan if s.max is None else s.max for _, s in numeric]],
        dtype=_FLOAT,
    ).reshape(4, len(numeric))  # fmt: skip
    binned = [
        (s.cuts, s.bin_counts)
        for _, s in numeric
        if s.cuts is not None and s.bin_counts is not None
    ]
    header = {
        "rows": summary.rows,
        "batches": summary.batches,
        "max_categories": summary.max_categories,
        "type_mismatch": _key_counts(summary.type_mismatch),
        "absent": _key_counts(summary.absent),
        "new": _key_counts(summary.new),
        "roles": roles,
        "categorical": categorical,
    }
    arrays = (
        # surrogatepass: names from OTLP JSON may hold lone surrogates, which must round-trip.
        "".join(names).encode("utf-8", "surrogatepass"),
        np.fromiter(map(len, names), _V3_LENGTH, len(names)).tobytes(),
        np.fromiter((role_index[r] for (r, _), _ in numeric), np.uint8, len(numeric)).tobytes(),
        flags.tobytes(),
        counts.tobytes(),
        moments.tobytes(),
        np.fromiter((cuts.size for cuts, _ in binned), _V3_LENGTH, len(binned)).tobytes(),
        _joined([cuts for cuts, _ in binned], _FLOAT),
        _joined([bins for _, bins in binned], _INT),
    )
    return WINDOW_SUMMARY.encode(
        json.dumps(header, separators=(",", ":"), allow_nan=False).encode(),
        # zlib's fastest level, which runs without the GIL: bin counts of a window are mostly
        # zeros, and a window of 100,000 binned columns takes 4 MB rather than 38.
        *(zlib.compress(part, 1) for part in arrays),
    )


def _decode_v3(parts: tuple[memoryview, ...]) -> WindowSummary:
    """The summary of version 3's ``parts``; raises ValueError (or KeyError, TypeError) where
    they do not hold one, which the caller reports as a corrupt blob."""
    header = json.loads(bytes(parts[0]))
    text_part, lengths_part, roles_part, flags_part, *rest = map(_inflated, parts[1:])
    counts_part, moments_part, cut_sizes_part, cuts_part, bins_part = rest
    text = bytes(text_part).decode("utf-8", "surrogatepass")
    lengths = _array(lengths_part, _V3_LENGTH)
    n = lengths.size
    ends = list(accumulate(lengths.tolist()))
    if (ends[-1] if ends else 0) != len(text):
        raise ValueError("the name lengths do not add up to the names")
    names = [text[start:end] for start, end in zip([0, *ends], ends, strict=False)]
    roles = [str(role) for role in header["roles"]]
    role_of = _array(roles_part, _V3_BYTE, n).tolist()
    flags = _array(flags_part, _V3_BYTE, n)
    counts = _array(counts_part, _INT, 3 * n).reshape(3, n)
    moments = _array(moments_part, _FLOAT, 4 * n).reshape(4, n)
    binned = (flags & _BINNED).astype(bool)
    cut_sizes = _array(cut_sizes_part, _V3_LENGTH, int(binned.sum()))
    cuts = _array(cuts_part, _FLOAT, int(cut_sizes.sum()))
    bins = _array(bins_part, _INT, int(cut_sizes.sum()) + cut_sizes.size)
    _check_cuts(cuts, cut_sizes)
    if (counts < 0).any() or not np.isfinite(moments[:2]).all():
        raise ValueError("a numeric column holds a negative count or a non-finite moment")
    has_values = counts[0] > 0
    if np.isnan(moments[2:, has_values]).any():
        raise ValueError("a numeric column with values has no min or max")
    cut_ends = np.cumsum(cut_sizes).tolist()
    cut_starts = [0, *cut_ends[:-1]]
    ordered: dict[int, tuple[ColumnKey, Summary]] = {}
    for entry in header["categorical"]:
        key: ColumnKey = (entry["role"], entry["name"])
        ordered[int(entry["at"])] = (key, CategoricalSummary.from_dict(entry))
    columns: dict[ColumnKey, Summary] = {}
    in_layout: list[ColumnKey] = []
    values = zip(
        names, role_of, flags.tolist(), binned.tolist(), *counts.tolist(), *moments.tolist(),
        strict=True,
    )  # fmt: skip
    next_cut = 0
    position = 0
    for name, role, flag, has_bins, count, missing, non_finite, mean, m2, low, high in values:
        while position in ordered:
            key, categorical = ordered.pop(position)
            columns[key] = categorical
            position += 1
        column_cuts = column_bins = None
        if has_bins:
            start, end = cut_starts[next_cut], cut_ends[next_cut]
            column_cuts = cuts[start:end]
            column_bins = bins[start + next_cut : end + next_cut + 1].copy()
            next_cut += 1
        key = (roles[role], name)
        columns[key] = NumericSummary.restore(
            column_cuts, count, missing, non_finite, mean, m2,
            None if count == 0 else low, None if count == 0 else high, column_bins,
        )  # fmt: skip
        if flag & _IN_LAYOUT:
            in_layout.append(key)
        position += 1
    for at in sorted(ordered):
        key, categorical = ordered.pop(at)
        columns[key] = categorical
    if len(columns) != n + len(header["categorical"]):
        raise ValueError("two columns have the same role and name")
    for entry in header["categorical"]:
        if entry["layout"]:
            in_layout.append((entry["role"], entry["name"]))
    layout = _layout(columns, in_layout)
    return WindowSummary.restore(
        layout,
        int(header["max_categories"]),
        columns,
        rows=int(header["rows"]),
        batches=int(header["batches"]),
        type_mismatch=_from_key_counts(header["type_mismatch"]),
        absent=_from_key_counts(header["absent"]),
        new=_from_key_counts(header["new"]),
    )


def _layout(columns: dict[ColumnKey, Summary], keys: list[ColumnKey]) -> SummaryLayout:
    numeric: dict[ColumnKey, np.ndarray] = {}
    categorical: dict[ColumnKey, tuple[str, ...]] = {}
    for key in keys:
        summary = columns[key]
        if isinstance(summary, NumericSummary):
            numeric[key] = summary.cuts if summary.cuts is not None else np.empty(0, np.float64)
        else:
            categorical[key] = summary.reference or ()
    return SummaryLayout(numeric, categorical)


def _array(part: memoryview, dtype: np.dtype[Any], size: int | None = None) -> np.ndarray:
    if len(part) % dtype.itemsize:
        raise ValueError(f"a part of {len(part)} bytes is not an array of {dtype}")
    array = np.frombuffer(part, dtype)
    if size is not None and array.size != size:
        raise ValueError(f"{array.size} values where {size} are due")
    return array


def _inflated(part: memoryview) -> memoryview:
    try:
        return memoryview(zlib.decompress(part))
    except zlib.error as exc:
        raise ValueError(f"a part does not inflate ({exc})") from None


def _joined(arrays: list[Any], dtype: np.dtype[Any]) -> bytes:
    return np.concatenate(arrays).astype(dtype, copy=False).tobytes() if arrays else b""


def _check_cuts(cuts: np.ndarray, sizes: np.ndarray) -> None:
    """What ``validate_cuts`` asks of each column's cuts, for all of them at once."""
    if not np.isfinite(cuts).all():
        raise ValueError("bin cuts must be finite")
    rising = np.diff(cuts) > 0
    # Differences across two columns' cuts may go either way.
    boundaries = np.cumsum(sizes)[:-1] - 1
    rising[boundaries[(boundaries >= 0) & (boundaries < rising.size)]] = True
    if not rising.all():
        raise ValueError("bin cuts must be strictly increasing")
