"""A check's ``threshold`` table: warning and critical levels that re-decide its results.

In the collector's TOML::

    [models.credit.detectors.error_rate.threshold]
    mode = "static"              # fixed levels
    warning = 0.02
    critical = 0.1
    direction = "above"          # "below" for a score where lower is worse (label coverage)

    [models.credit.detectors.univariate_drift.threshold]
    mode = "reference"           # bootstrap windows of the live window's size from the reference
    target_fpr = 0.05            # clean windows cross the warning level this often
    critical_fpr = 0.01          # ... and the critical level this often
    n_bootstrap = 200

    [models.credit.detectors.outliers.threshold]
    mode = "history"             # mean +/- k sd of the check's scores in past windows
    k_warning = 2.0
    k_critical = 3.0
    min_windows = 5              # windows needed before the levels apply
    last = 20                    # the past windows learnt from
    direction = "above"

Dependency-free apart from the settings helpers, so the config can validate a table when it is
read and the threshold layer (``inferwatch.collector.detect.levels``) can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from inferwatch.collector.settings.parsing import ConfigError, as_mapping, reject_unknown

Mode = Literal["static", "reference", "history"]
Direction = Literal["above", "below"]
MODES: tuple[Mode, ...] = ("static", "reference", "history")
_KEYS: dict[str, set[str]] = {
    "static": {"mode", "warning", "critical", "direction"},
    "reference": {"mode", "target_fpr", "critical_fpr", "n_bootstrap"},
    "history": {"mode", "k_warning", "k_critical", "min_windows", "last", "direction"},
}


@dataclass(frozen=True)
class ThresholdSettings:
    mode: Mode
    direction: Direction = "above"
    # static
    warning: float | None = None
    critical: float | None = None
    # reference
    target_fpr: float = 0.05
    critical_fpr: float = 0.01
    n_bootstrap: int = 200
    # history
    k_warning: float = 2.0
    k_critical: float = 3.0
    min_windows: int = 5
    last: int = 20

    @classmethod
    def parse(cls, value: object, where: str) -> ThresholdSettings:
        """The table at ``where`` (``models.credit.detectors.x.threshold``), or a ConfigError
        naming the setting and what was expected."""
        data = as_mapping(value, where)
        mode = data.get("mode")
        if mode not in MODES:
            raise ConfigError(
                f"{where}.mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}"
            )
        reject_unknown(data, _KEYS[mode], f"{where} (mode {mode!r})")
        direction = data.get("direction", "above")
        if direction not in ("above", "below"):
            raise ConfigError(f"{where}.direction must be 'above' or 'below', got {direction!r}")
        if mode == "static":
            warning = _number(data, "warning", where)
            critical = _number(data, "critical", where)
            if warning is None and critical is None:
                raise ConfigError(f"{where}: a static threshold needs warning, critical or both")
            if warning is not None and critical is not None:
                worse = critical >= warning if direction == "above" else critical <= warning
                if not worse:
                    raise ConfigError(
                        f"{where}: critical ({critical}) must be {direction} warning ({warning}) "
                        f"when direction = {direction!r}"
                    )
            return cls(mode, direction, warning=warning, critical=critical)
        if mode == "reference":
            target = _rate(data, "target_fpr", cls.target_fpr, where)
            critical_fpr = _rate(data, "critical_fpr", cls.critical_fpr, where)
            if critical_fpr > target:
                raise ConfigError(
                    f"{where}: critical_fpr ({critical_fpr}) must not exceed target_fpr ({target})"
                )
            n_bootstrap = _whole(data, "n_bootstrap", cls.n_bootstrap, 20, where)
            return cls(mode, target_fpr=target, critical_fpr=critical_fpr, n_bootstrap=n_bootstrap)
        k_warning = _number(data, "k_warning", where)
        k_critical = _number(data, "k_critical", where)
        k_warning = cls.k_warning if k_warning is None else k_warning
        k_critical = cls.k_critical if k_critical is None else k_critical
        if not 0 < k_warning <= k_critical:
            raise ConfigError(
                f"{where}: need 0 < k_warning <= k_critical, got {k_warning} and {k_critical}"
            )
        min_windows = _whole(data, "min_windows", cls.min_windows, 2, where)
        last = _whole(data, "last", cls.last, 2, where)
        if last < min_windows:
            raise ConfigError(
                f"{where}: last ({last}) must be at least min_windows ({min_windows})"
            )
        return cls(
            mode,
            direction,
            k_warning=k_warning,
            k_critical=k_critical,
            min_windows=min_windows,
            last=last,
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings of this mode (a cache key, and what a result's details show)."""
        return {key: getattr(self, key) for key in sorted(_KEYS[self.mode])}


def _number(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key} must be a finite number, got {value!r}")
    return float(value)


def _rate(data: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = _number(data, key, where)
    if value is None:
        return default
    if not 0 < value < 0.5:
        raise ConfigError(f"{where}.{key} must be a rate between 0 and 0.5, got {value!r}")
    return value


def _whole(data: Mapping[str, Any], key: str, default: int, least: int, where: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{where}.{key} must be a whole number >= {least}, got {value!r}")
    return value
