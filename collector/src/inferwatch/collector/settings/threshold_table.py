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

The threshold layer (``inferwatch.collector.detect.levels``) applies them.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from inferwatch.collector.detectors.params import AtLeastTwo, Int, Number, Table, within

Direction = Literal["above", "below"]


def _rate_below_half(value: float) -> float:
    if not 0 < value < 0.5:
        raise ValueError(f"must be a rate between 0 and 0.5, got {value!r}")
    return value


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"must be greater than 0, got {value!r}")
    return value


FalseAlarmRate = Annotated[Number, AfterValidator(_rate_below_half)]
Spread = Annotated[Number, AfterValidator(_positive)]


class StaticLevels(Table):
    mode: Literal["static"]
    warning: Number | None = None
    critical: Number | None = None
    direction: Direction = "above"

    @model_validator(mode="after")
    def _levels_in_order(self) -> Self:
        if self.warning is None and self.critical is None:
            raise ValueError("needs warning, critical or both (mode 'static')")
        if self.warning is not None and self.critical is not None:
            worse = (
                self.critical >= self.warning
                if self.direction == "above"
                else self.critical <= self.warning
            )
            if not worse:
                raise ValueError(
                    f"critical ({self.critical:g}) must be {self.direction} warning "
                    f"({self.warning:g}) when direction = {self.direction!r}"
                )
        return self


class ReferenceLevels(Table):
    mode: Literal["reference"]
    target_fpr: FalseAlarmRate = 0.05
    critical_fpr: FalseAlarmRate = 0.01
    n_bootstrap: Annotated[Int, within(20)] = 200

    @model_validator(mode="after")
    def _critical_is_rarer(self) -> Self:
        if self.critical_fpr > self.target_fpr:
            raise ValueError(
                f"critical_fpr ({self.critical_fpr:g}) must not exceed target_fpr "
                f"({self.target_fpr:g})"
            )
        return self


class HistoryLevels(Table):
    mode: Literal["history"]
    k_warning: Spread = 2.0
    k_critical: Spread = 3.0
    min_windows: AtLeastTwo = 5
    last: AtLeastTwo = 20
    direction: Direction = "above"

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        if self.k_warning > self.k_critical:
            raise ValueError(
                f"needs k_warning ({self.k_warning:g}) at most k_critical ({self.k_critical:g})"
            )
        if self.last < self.min_windows:
            raise ValueError(f"needs last ({self.last}) at least min_windows ({self.min_windows})")
        return self


ThresholdTable = Annotated[
    StaticLevels | ReferenceLevels | HistoryLevels, Field(discriminator="mode")
]
LEVEL_TABLES = (StaticLevels, ReferenceLevels, HistoryLevels)
# For error messages: the field holding a table, and the modes pydantic names in a path.
TAGGED = {"threshold": ("static", "reference", "history")}
