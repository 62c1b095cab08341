"""Values as strict JSON can hold them: the one sanitizer for results, summaries and evidence.

numpy scalars and arrays become Python numbers and lists, mapping keys become strings, tuples
lists, NaN or an infinity becomes null, and a lone surrogate in a string (OTLP JSON's ``\ud800``
can carry one into a feature name or a category) becomes the text of its escape: strict JSON has
no such numbers, UTF-8 no such characters, and a stored or served document must parse anywhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with only JSON types inside (see the module's docstring)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): json_safe(v) for k, v in value.items()}
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


def printable(text: str) -> str:
    """``text``, with each lone surrogate replaced by the text of its escape (``\\ud800``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
