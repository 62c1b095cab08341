"""The seam between windows and detectors: a registry of checks run when a window is evaluated.

A check is a function ``(profile, window, settings) -> list[Result]`` registered under a name
with its default settings; ``evaluate_window`` runs every registered check with the model's
settings for it (``{"enabled": false}`` skips one). A new detector registers itself, in a module
listed in ``CHECK_MODULES``, without touching the pipeline. Every check returns the same result
shape, whatever it measures. A check with a ``threshold`` default takes warning and critical
levels that re-decide its results (``inferwatch.collector.detect.levels``); one that can score
samples of the reference registers a ``calibration`` for levels calibrated on it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from inferwatch.collector.detect import levels as thresholds
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors.result import Result
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings.config import ModelConfig
from inferwatch.collector.settings.parsing import ConfigError

logger = logging.getLogger(__name__)

# Modules whose import registers checks.
CHECK_MODULES = (
    "inferwatch.collector.detect.checks.quality",
    "inferwatch.collector.detect.checks.drift",
    "inferwatch.collector.detect.checks.outliers",
    "inferwatch.collector.detect.checks.performance",
)


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


def not_enough_data(check: str, message: str, **details: Any) -> list[Result]:
    """The one result of a check that cannot judge this window, saying why."""
    return [Result.not_enough_data(check, message, **details)]


def no_reference(check: str, model: str, version: str) -> list[Result]:
    return not_enough_data(
        check,
        f"no reference for {model} version {version} yet: upload one (inferwatch.set_reference) "
        "or let the model's reference policy build one from early traffic",
    )


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
            results.append(Result.error(name, str(exc)))
        except Exception as exc:
            logger.exception("check %s failed on a window of %s", name, window.model)
            results.append(Result.error(name, f"the check failed: {exc!r}"))
    return results
