"""Values as strict JSON can hold them: the one sanitizer for results, summaries and evidence.

numpy scalars and arrays become Python numbers and lists, mapping keys become strings, tuples
lists, and NaN or an infinity becomes null: strict JSON has no such numbers, and a stored or
served document must parse anywhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with only JSON types inside (see the module's docstring)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return finite(float(value))
    return value


def finite(value: float | None) -> float | None:
    """A finite float, or None (for None, NaN and infinities)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
