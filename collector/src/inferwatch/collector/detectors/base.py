"""The detector contract: ``fit(reference)`` once, ``run(window) -> DetectionResult``, a registry.

Every detector returns the same ``DetectionResult`` (inferwatch.collector.detectors.result): a
decision, a score, a p-value where there is one, the threshold it was compared with, per-feature
detail, per-row outputs for outlier detectors, and a sentence a person can act on; its
``results()`` are the collector's ``Result`` rows.

A detector class joins the registry with ``@register("name")``; ``create(name, **params)``
builds one from the collector's per-model settings without the pipeline knowing the class.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar

from inferwatch.collector.detectors.result import DetectionResult


class NotFittedError(RuntimeError):
    """``run`` was called before ``fit``."""


class Detector(ABC):
    """Parameters in ``__init__``; ``fit(reference)`` once; ``run(window)`` per window."""

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

    def _check_fitted(self, *attributes: str) -> None:
        if any(getattr(self, a, None) is None for a in attributes):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(reference) first")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


D = TypeVar("D", bound=type[Detector])
_REGISTRY: dict[str, type[Detector]] = {}


def register(name: str) -> Callable[[D], D]:
    """Class decorator: make the detector available to ``create(name, ...)``."""

    def add(cls: D) -> D:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a detector named {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def registered() -> dict[str, type[Detector]]:
    """Registered detector classes by name."""
    return dict(_REGISTRY)


def create(name: str, **params: Any) -> Detector:
    """A new detector of the registered ``name`` with ``params``; errors name what was wrong."""
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"no detector named {name!r}; registered: {sorted(_REGISTRY)}")
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"detector {name!r} has no parameter(s) {unknown}; it takes {accepted}")
    return cls(**params)
