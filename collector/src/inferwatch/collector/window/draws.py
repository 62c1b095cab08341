"""The reservoir's uniform draws, made from the rows themselves.

A row's draw is a 64-bit hash of its values (numbers by their bits, categories by their text,
each with its column's role and name) and its position in the stream, mapped to [0, 1). So the
same traffic, sent to two models or replayed, is sampled alike and gets the same verdicts,
while rows that repeat a value at other positions still draw independently (a hash of the
values alone would keep or drop every copy of a frequent row together). Prediction ids are
left out: they differ between models for the same traffic.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import numpy as np

from inferwatch.frame import CategoricalColumn, Column, NumericBlock, Role

_MASK = (1 << 64) - 1
_MISSING = np.uint64(0x9E3779B97F4A7C15)
# Canonical bits for NaN: payloads of NaN differ between producers.
_NAN_BITS = np.float64(np.nan).view(np.uint64)


def row_draws(
    columns: Sequence[Column],
    roles: Sequence[Role],
    rows: np.ndarray,
    stream: np.ndarray,
    salt: int,
) -> np.ndarray:
    """Uniform draws in [0, 1) for the batch rows ``rows``, at stream positions ``stream``."""
    state = _mix(stream.astype(np.uint64) ^ np.uint64(_text_hash(f"salt:{salt}")))
    for column, role in zip(columns, roles, strict=True):
        if isinstance(column, NumericBlock):
            values = column.values[rows]
            # -0.0 + 0.0 is 0.0; NaN gets one bit pattern.
            bits = np.ascontiguousarray(values + 0.0, dtype=np.float64).view(np.uint64)
            bits = np.where(np.isnan(values), _NAN_BITS, bits)
            salts = np.array(
                [_text_hash(f"{role}:{column.name}:{j}") for j in range(column.width)],
                dtype=np.uint64,
            )
            # An odd multiplier per column keeps (a, b) and (b, a) apart.
            mixed = _mix(bits ^ salts) * (salts | np.uint64(1))
            combined = mixed.sum(axis=1, dtype=np.uint64)
        else:
            assert isinstance(column, CategoricalColumn)
            texts = [_text_hash(f"{role}:{column.name}={c}") for c in column.categories]
            lookup = np.array([*texts, int(_MISSING)], dtype=np.uint64)
            # Code -1 (missing) indexes the trailing entry.
            combined = lookup[column.codes[rows]]
        state = _mix(state ^ combined)
    return np.asarray((state >> np.uint64(11)).astype(np.float64) * 2.0**-53)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, elementwise (uint64 arithmetic wraps)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(z ^ (z >> np.uint64(31)))


@functools.lru_cache(maxsize=65_536)
def _text_hash(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK
