"""Durations in settings: a number of seconds or a string such as ``"30s"``, ``"5m"``, ``"1h"``."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_FORMS = "a duration such as 30, '30s', '5m' or '1h'"


def seconds(value: Any) -> float:
    """Seconds from a number or a duration string; ValueError naming the expected forms."""
    if isinstance(value, bool):
        raise ValueError(f"must be {_FORMS}, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        number = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"must be {_FORMS}, got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"must be {_FORMS} (finite, not negative), got {value!r}")
    return number


# Seconds, however they were written; shown back as a number of seconds.
Duration = Annotated[
    float,
    BeforeValidator(seconds),
    PlainSerializer(float, return_type=float),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ],
            "description": "Seconds, or a duration such as '30s', '5m', '1h', '7d'.",
        },
        mode="validation",
    ),
]
