"""The seam between windows and detectors: a registry of checks run when a window is evaluated.

A check is a function ``(profile, window, settings) -> list[Result]`` registered under a name
with its default settings; ``evaluate_window`` runs every registered check with the model's
settings for it (``{"enabled": false}`` skips one). A new detector registers itself, in a module
listed in ``CHECK_MODULES``, without touching the pipeline. Every check returns the same result
shape, whatever it measures. A check with a ``threshold`` default takes warning and critical
levels that re-decide its results (``inferwatch.collector.thresholds``); one that can score
samples of the reference registers a ``calibration`` for levels calibrated on it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from inferwatch.collector import thresholds
from inferwatch.collector.config import ModelConfig
from inferwatch.collector.profile import Profile
from inferwatch.collector.settings_parsing import ConfigError
from inferwatch.collector.windows import WindowState

logger = logging.getLogger(__name__)

# One vocabulary for every check: detectors' richer verdicts (drift, outlier, critical) map to
# "alert", their warning level to "warning", and their passing verdicts to "ok".
Decision = Literal["ok", "warning", "alert", "not_enough_data", "error"]

# Modules whose import registers checks.
CHECK_MODULES = (
    "inferwatch.collector.checks.quality",
    "inferwatch.collector.checks.drift",
    "inferwatch.collector.checks.outliers",
    "inferwatch.collector.checks.performance",
)


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


class DetectorStates(Protocol):
    """Durable state per (model, version) and check, as bytes the check reads and writes."""

    def detector_state(self, model: str, version: str, name: str) -> bytes | None: ...
    def put_detector_state(self, model: str, version: str, name: str, state: bytes) -> None: ...


@dataclass(frozen=True)
class WindowView:
    """What a check sees of a window: its merged state, labels and performance."""

    model: str
    version: str
    start_ms: int
    end_ms: int
    state: WindowState
    labelled: int
    performance: Mapping[str, Any]
    # When this evaluation runs (the collector's clock), for checks that wait on time such as
    # performance's label delay; None outside the collector.
    evaluated_ms: int | None = None
    # Where stateful checks keep state between windows (the online outlier detector's running
    # statistics); None where nothing persists.
    detector_states: DetectorStates | None = None
    # Earlier windows' stored results, for thresholds learnt from history; None where there
    # are none.
    history: thresholds.ScoreHistory | None = None


Check = Callable[[Profile | None, WindowView, Mapping[str, Any]], list[Result]]


@dataclass(frozen=True)
class RegisteredCheck:
    name: str
    check: Check
    defaults: Mapping[str, Any]
    calibration: thresholds.Calibration | None = None


_REGISTRY: dict[str, RegisteredCheck] = {}


def register(
    name: str, *, calibration: thresholds.Calibration | None = None, **defaults: Any
) -> Callable[[Check], Check]:
    """Decorator: run ``check`` on every window evaluation, with these default settings.

    ``threshold=None`` among the defaults lets the check take a ``threshold`` table (the check
    itself never sees it); ``calibration`` lets that table use ``mode = "reference"``.
    """

    def add(check: Check) -> Check:
        _REGISTRY[name] = RegisteredCheck(name, check, {"enabled": True, **defaults}, calibration)
        return check

    return add


def registered() -> Mapping[str, RegisteredCheck]:
    for module in CHECK_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


def evaluate_window(
    profile: Profile | None, window: WindowView, config: ModelConfig
) -> list[Result]:
    """Every enabled check's results; a check that fails yields one ``error`` result."""
    results: list[Result] = []
    for name, entry in registered().items():
        settings = {**entry.defaults, **config.detectors.get(name, {})}
        if not settings.get("enabled", True):
            continue
        try:
            spec, own = thresholds.split_settings(name, entry.defaults, settings)
            found = entry.check(profile, window, own)
            if spec is not None:
                found = thresholds.apply(name, spec, entry.calibration, profile, window, own, found)
            results.extend(found)
        except (thresholds.ThresholdError, ConfigError) as exc:
            results.append(Result(name, None, None, None, None, "error", str(exc)))
        except Exception as exc:
            logger.exception("check %s failed on a window of %s", name, window.model)
            results.append(
                Result(name, None, None, None, None, "error", f"the check failed: {exc!r}")
            )
    return results
