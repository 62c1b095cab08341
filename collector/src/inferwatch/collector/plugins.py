"""The plug-in registry the running collector owns: its checks, detectors, metrics and notifiers.

They are found in two places, each name once:

- the entry points of the installed distributions (the collector's own built-ins included)::

      [project.entry-points."inferwatch.checks"]
      latency = "my_company.checks:latency"        # a CheckSpec (detect.check)
      [project.entry-points."inferwatch.detectors"]
      my_detector = "my_company.detectors:MyDetector"   # a Detector class named so
      [project.entry-points."inferwatch.metrics"]
      profit = "my_company.metrics:profit"         # a Metric
      [project.entry-points."inferwatch.notifiers"]
      teams = "my_company.alerts:teams"            # a Notifier

- the modules the configuration lists (``[collector] plugins = ["my_company.checks"]``): every
  ``CheckSpec``, ``Detector`` subclass, ``Metric`` and ``Notifier`` defined at their top level.

Nothing is registered in a process-wide table: two collectors in one process (or two tests)
each have their own registry. It is also the catalog settings are validated against
(``settings.Catalog``): as itself for the config file and for an admin key, which may name a
``"module:function"`` metric to import; as ``without_new_imports()`` for anyone else, which takes
only the metrics already imported and raises ``CodeImportRefused`` before importing anything.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from inferwatch.collector.alerts.payloads import Notifier
from inferwatch.collector.detect.check import CheckSpec
from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.metrics import BUILTIN, Metric
from inferwatch.collector.settings import CheckSettings, CodeImportRefused, ConfigError

GROUPS = {
    "checks": "inferwatch.checks",
    "detectors": "inferwatch.detectors",
    "metrics": "inferwatch.metrics",
    "notifiers": "inferwatch.notifiers",
}
_KINDS: dict[str, type] = {
    "checks": CheckSpec,
    "detectors": Detector,
    "metrics": Metric,
    "notifiers": Notifier,
}


@dataclass(frozen=True)
class Registry:
    checks: Mapping[str, CheckSpec[Any]]
    detectors: Mapping[str, type[Detector]]
    metrics: Mapping[str, Metric]
    notifiers: Mapping[str, Notifier]
    # "package.module:function" metrics named in settings, resolved (imported) once.
    _functions: dict[str, Metric] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def load(cls, plugins: Sequence[str] = ()) -> Registry:
        """The installed plug-ins' entry points, then the listed modules'; ConfigError when one
        cannot be loaded or a name is taken twice."""
        found: dict[str, dict[str, Any]] = {kind: {} for kind in GROUPS}
        origins: dict[tuple[str, str], str] = {}
        for kind, group in GROUPS.items():
            for entry in entry_points(group=group):
                try:
                    value = entry.load()
                except Exception as exc:  # a plug-in may fail in any way while it loads
                    raise ConfigError(
                        f"the {group} entry point {entry.name} = {entry.value!r} cannot be "
                        f"loaded ({exc!r})"
                    ) from None
                origin = f"entry point {entry.name} = {entry.value!r}"
                _add(found, origins, kind, value, origin, entry.name)
        for module_name in plugins:
            module = _import(module_name)
            declared = list(_declared(module))
            if not declared:
                raise ConfigError(
                    f"collector.plugins: {module_name!r} defines no check, detector, metric or "
                    "notifier at its top level"
                )
            for kind, value in declared:
                _add(found, origins, kind, value, f"module {module_name}", None)
        metrics = {**BUILTIN, **found["metrics"]}
        return cls(found["checks"], found["detectors"], metrics, found["notifiers"])

    # -- what settings are validated against (settings.Catalog) ----------------------------

    @property
    def check_names(self) -> Sequence[str]:
        return sorted(self.checks)

    def check_settings(self, name: str) -> type[CheckSettings]:
        spec = self.checks.get(name)
        if spec is None:
            raise ValueError(f"no check named {name!r}; the checks are {self.check_names}")
        return spec.settings

    def calibrated(self, name: str) -> bool:
        spec = self.checks.get(name)
        return spec is not None and spec.calibration is not None

    def resolve_metric(self, spec: str) -> Metric:
        if spec in self.metrics:
            return self.metrics[spec]
        if ":" not in spec:
            raise ValueError(
                f"no metric named {spec!r}; the metrics are {sorted(self.metrics)}, or "
                "'package.module:function'"
            )
        with self._lock:
            if spec not in self._functions:
                self._functions[spec] = self._function_metric(spec)
            return self._functions[spec]

    def imported_metric(self, spec: str) -> Metric | None:
        """The ``"module:function"`` metric ``spec`` if it was imported already."""
        with self._lock:
            return self._functions.get(spec)

    def without_new_imports(self) -> NoNewImports:
        return NoNewImports(self)

    @property
    def notifier_names(self) -> Sequence[str]:
        return sorted(self.notifiers)

    # -- running -----------------------------------------------------------------------------

    def checks_in_order(self) -> list[CheckSpec[Any]]:
        """The checks, in the order a window's results list them (by name)."""
        return [self.checks[name] for name in self.check_names]

    def _function_metric(self, spec: str) -> Metric:
        module_name, _, function = spec.partition(":")
        if not module_name or not function.isidentifier():
            raise ValueError(f"metric {spec!r} must look like 'package.module:function'")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # the user's module may fail in any way while it loads
            raise ValueError(f"metric {spec!r}: cannot import {module_name!r} ({exc!r})") from None
        compute = getattr(module, function, None)
        if not callable(compute):
            raise ValueError(f"metric {spec!r}: {module_name} has no function {function!r}")
        # A builtin (sys.exit), a class or a function of another shape would be called with the
        # statistics only when a window closes: refused now, where the sender reads why.
        if not inspect.isfunction(compute) or not _takes_one_argument(compute):
            raise ValueError(
                f"metric {spec!r}: {module_name}.{function} is not a Python function taking one "
                "argument (the window's statistics)"
            )
        taken = self.metrics.get(function) or next(
            (m for s, m in self._functions.items() if m.name == function and s != spec), None
        )
        if taken is not None:
            raise ValueError(
                f"metric {spec!r}: the name {function!r} is taken by another metric; rename "
                "the function"
            )
        # Its bounds (min, max) say which way is worse, so the direction is never inferred.
        return Metric(function, None, True, compute)


@dataclass(frozen=True)
class NoNewImports:
    """The registry as the catalog of settings whose sender may not choose code to import."""

    registry: Registry

    @property
    def check_names(self) -> Sequence[str]:
        return self.registry.check_names

    def check_settings(self, name: str) -> type[CheckSettings]:
        return self.registry.check_settings(name)

    def calibrated(self, name: str) -> bool:
        return self.registry.calibrated(name)

    def resolve_metric(self, spec: str) -> Metric:
        if spec in self.registry.metrics:
            return self.registry.metrics[spec]
        known = self.registry.imported_metric(spec)
        if known is not None:
            return known
        if ":" in spec:
            raise CodeImportRefused(spec)
        return self.registry.resolve_metric(spec)  # ValueError naming the known metrics

    @property
    def notifier_names(self) -> Sequence[str]:
        return self.registry.notifier_names


def _takes_one_argument(function: Any) -> bool:
    try:
        inspect.signature(function).bind(None)
    except (TypeError, ValueError):
        return False
    return True


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # the user's module may fail in any way while it loads
        raise ConfigError(f"collector.plugins: cannot import {name!r} ({exc!r})") from None


def _declared(module: ModuleType) -> Iterable[tuple[str, Any]]:
    """The plug-ins at a module's top level. One it imports from elsewhere is the same object as
    where it comes from, so it is not counted twice."""
    for value in vars(module).values():
        if isinstance(value, CheckSpec | Metric | Notifier):
            yield _kind_of(value), value
        elif (
            inspect.isclass(value)
            and issubclass(value, Detector)
            and not inspect.isabstract(value)
            and "name" in vars(value)
        ):
            yield "detectors", value


def _kind_of(value: Any) -> str:
    for kind, cls in _KINDS.items():
        if isinstance(value, cls):
            return kind
    raise TypeError(f"not a plug-in: {value!r}")


def _add(
    found: dict[str, dict[str, Any]],
    origins: dict[tuple[str, str], str],
    kind: str,
    value: Any,
    origin: str,
    entry_name: str | None,
) -> None:
    expected = _KINDS[kind]
    valid = (
        issubclass(value, expected)
        if kind == "detectors" and inspect.isclass(value)
        else (isinstance(value, expected))
    )
    if not valid:
        raise ConfigError(f"{origin} of {GROUPS[kind]} is not a {expected.__name__}: {value!r}")
    name: str = value.name
    if entry_name is not None and entry_name != name:
        raise ConfigError(f"{origin} of {GROUPS[kind]} names {name!r}, not {entry_name!r}")
    known = found[kind].get(name)
    if known is not None and known is not value:
        raise ConfigError(
            f"two {kind} are named {name!r}: from {origins[(kind, name)]} and from {origin}"
        )
    found[kind][name] = value
    origins[(kind, name)] = origin
