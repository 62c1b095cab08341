"""What every check returns for a window: one result row per finding, in one vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# One vocabulary for every check: detectors' richer verdicts (drift, outlier, critical) map to
# "alert", their warning level to "warning", and their passing verdicts to "ok".
Decision = Literal["ok", "warning", "alert", "not_enough_data", "error"]


@dataclass(frozen=True)
class Result:
    detector: str
    feature: str | None
    score: float | None
    p_value: float | None
    threshold: float | None
    decision: Decision
    message: str
    # Check-specific evidence (effect sizes, flagged prediction ids, metric values).
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
