"""A mergeable latency sketch: log-spaced buckets with a 1% relative error on every quantile.

Buckets are fixed (bucket i holds values in (gamma^(i-1), gamma^i]), so sketches of partial
windows from replicas or restarts merge exactly by adding counts. Memory is bounded by the range
of values: microseconds to hours is under 700 buckets.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
# Values at or below this (in ms) are counted as zero.
_MIN_VALUE = 1e-6


class LatencySketch:
    """Latencies in milliseconds; ``quantile(q)`` is within 1% of the true value."""

    __slots__ = ("buckets", "count", "max", "min", "sum", "zeros")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.zeros = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value_ms: float) -> None:
        """Count one latency; NaN and infinities (no span lasts forever) are not counted."""
        if not math.isfinite(value_ms):
            return
        self.count += 1
        self.sum += value_ms
        self.min = min(self.min, value_ms)
        self.max = max(self.max, value_ms)
        if value_ms <= _MIN_VALUE:
            self.zeros += 1
        else:
            self.buckets[math.ceil(math.log(value_ms) / _LOG_GAMMA)] += 1

    def merge(self, other: LatencySketch) -> None:
        self.buckets.update(other.buckets)
        self.zeros += other.zeros
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        if not 0 <= q <= 1:
            raise ValueError(f"q must be in [0, 1], got {q}")
        if self.count == 0:
            return None
        # The rank of the lower of the two middle values, as numpy's "lower" interpolation.
        rank = math.floor(q * (self.count - 1))
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen > rank:
                estimate = 2 * _GAMMA**index / (_GAMMA + 1)
                return min(max(estimate, self.min), self.max)
        return self.max

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "mean_ms": self.sum / self.count if self.count else None,
            "p50_ms": self.quantile(0.5),
            "p95_ms": self.quantile(0.95),
            "p99_ms": self.quantile(0.99),
            "max_ms": self.max if self.count else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "buckets": [[k, v] for k, v in sorted(self.buckets.items())],
            "zeros": self.zeros,
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencySketch:
        sketch = cls()
        sketch.buckets.update({int(k): int(v) for k, v in data["buckets"]})
        sketch.zeros = int(data["zeros"])
        sketch.count = int(data["count"])
        sketch.sum = float(data["sum"])
        if sketch.count:
            sketch.min = float(data["min"])
            sketch.max = float(data["max"])
        return sketch
