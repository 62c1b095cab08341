"""What a check is: a function run on every window, with its settings model and, optionally, a
way to score samples of the reference (for levels calibrated on it).

    from inferwatch.collector.detect import CheckSettings, Result, check

    class LatencySettings(CheckSettings):
        p95_ms: Number = 250.0

    @check("latency", LatencySettings)
    def latency(profile, window, settings: LatencySettings) -> list[Result]:
        ...

``check`` returns a ``CheckSpec``, which the plug-in registry finds through the
``inferwatch.checks`` entry points (or in a module the configuration lists under
``[collector] plugins``): nothing is registered in a process-wide table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from inferwatch.collector.detect.levels import Calibration
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors.result import Result
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import CheckSettings

S = TypeVar("S", bound=CheckSettings)
CheckFunction = Callable[[Profile | None, WindowView, S], list[Result]]


@dataclass(frozen=True)
class CheckSpec(Generic[S]):
    """A check: its name (the settings table ``[models.x.detectors.<name>]`` and the alert
    checks ``<name>`` and ``<name>:<feature>``), its function and its settings model.

    ``calibration`` lets its levels use ``mode = "reference"`` (``detect.levels``).
    """

    name: str
    run: CheckFunction[S]
    settings: type[S]
    calibration: Calibration | None = None

    def __call__(self, profile: Profile | None, window: WindowView, settings: S) -> list[Result]:
        return self.run(profile, window, settings)


def check(
    name: str, settings: type[S], *, calibration: Calibration | None = None
) -> Callable[[CheckFunction[S]], CheckSpec[S]]:
    """Decorator: the function becomes the check ``name`` with settings model ``settings``."""

    def declare(run: CheckFunction[S]) -> CheckSpec[S]:
        return CheckSpec(name, run, settings, calibration)

    return declare


def not_enough_data(check: str, message: str, **details: Any) -> list[Result]:
    """The one result of a check that cannot judge this window, saying why."""
    return [Result.not_enough_data(check, message, **details)]


def no_reference(check: str, model: str, version: str) -> list[Result]:
    return not_enough_data(
        check,
        f"no reference for {model} version {version} yet: upload one (inferwatch.set_reference) "
        "or let the model's reference policy build one from early traffic",
    )
