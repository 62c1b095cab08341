"""Reading settings from TOML/JSON tables: the error type and the checks every section shares.

Dependency-free, so both the collector's config and the components it configures (alerting)
can use it without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class ConfigError(ValueError):
    """A setting is invalid; the message names it and says what was expected."""


def parse_duration(value: object, name: str) -> float:
    """Seconds from a positive number or a string such as ``"30s"``, ``"5m"``, ``"1h"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a duration such as 30, '30s' or '1h', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ConfigError(f"{name} must be a duration such as 30, '30s' or '1h', got {value!r}")
    if seconds < 0 or seconds != seconds:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    return seconds


def as_mapping(value: object, name: str) -> Mapping[str, Any]:
    """``value`` when it is a table; otherwise a ConfigError naming the setting."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a table (mapping), got {type(value).__name__}")
    return value


def reject_unknown(data: Mapping[str, Any], known: set[str], name: str) -> None:
    """Refuse keys not in ``known``, listing the known ones (a typo should not pass silently)."""
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{name} has unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
