"""The detector contract: ``fit(reference)`` once, ``run(window) -> DetectionResult``, a registry.

Every detector returns the same ``DetectionResult`` (inferwatch.collector.detectors.result): a
decision, a score, a p-value where there is one, the threshold it was compared with, per-feature
detail, per-row outputs for outlier detectors, and a sentence a person can act on; its
``results()`` are the collector's ``Result`` rows.

Installed detectors are found through the ``inferwatch.detectors`` entry point group;
``create(name, **params)`` builds one by name (the collector's plug-in registry adds those of
the plug-in modules its configuration lists).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from typing import Any, ClassVar, Self

from inferwatch.collector.detectors.params import validate_params
from inferwatch.collector.detectors.result import DetectionResult


class NotFittedError(RuntimeError):
    """``run`` was called before ``fit``."""


class Detector(ABC):
    """Parameters in ``__init__`` (stored as given, each annotated with its declared type from
    ``detectors.params``); ``fit(reference)`` once, which checks them first; ``run(window)`` per
    window. ``name`` is what settings and the ``inferwatch.detectors`` entry points call it."""

    name: ClassVar[str] = "detector"

    @abstractmethod
    def fit(self, reference: Any) -> Self:
        """Learn what normal looks like from the reference."""

    @abstractmethod
    def run(self, window: Any) -> DetectionResult:
        """Compare one window with the reference."""

    def get_params(self) -> dict[str, Any]:
        """The ``__init__`` parameters and their current values (scikit-learn style)."""
        signature = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name in signature.parameters
            if name != "self" and hasattr(self, name)
        }

    def _validate_params(self) -> None:
        """Check the parameters against their declared types; ValueError naming the first one
        out of bounds. ``fit`` calls it; a detector with rules across parameters extends it."""
        validate_params(type(self), self.get_params())

    def _check_fitted(self, *attributes: str) -> None:
        if any(getattr(self, a, None) is None for a in attributes):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(reference) first")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


# Where installed distributions declare their detectors (the collector's own included):
#   [project.entry-points."inferwatch.detectors"]
#   univariate_drift = "inferwatch.collector.detectors.univariate:UnivariateDrift"
ENTRY_POINTS = "inferwatch.detectors"


def registered() -> dict[str, type[Detector]]:
    """The installed detector classes by name (the ``inferwatch.detectors`` entry points)."""
    found: dict[str, type[Detector]] = {}
    for entry in entry_points(group=ENTRY_POINTS):
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Detector)) or cls.name != entry.name:
            raise TypeError(
                f"entry point {entry.name} = {entry.value!r} of {ENTRY_POINTS} must name a "
                f"Detector class whose name is {entry.name!r}"
            )
        found[entry.name] = cls
    return found


def create(name: str, **params: Any) -> Detector:
    """A new installed detector of ``name`` with ``params``; errors name what was wrong."""
    classes = registered()
    cls = classes.get(name)
    if cls is None:
        raise ValueError(f"no detector named {name!r}; registered: {sorted(classes)}")
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"detector {name!r} has no parameter(s) {unknown}; it takes {accepted}")
    return cls(**params)
