"""A check's settings, and what validating settings needs to know of the plug-ins.

Every check declares a ``CheckSettings`` model: its own keys of ``[models.x.detectors.<check>]``,
each typed with the constraints of ``inferwatch.collector.detectors.params`` and, where it is a
detector's parameter, defaulting to that detector's own default. A check that takes levels has
a ``threshold`` key that may hold a table (``threshold_table``).

Settings name checks, metrics and webhook formats; whether a name is real depends on the
plug-ins the collector loaded. The collector's plug-in registry
(``inferwatch.collector.plugins.Registry``) implements ``Catalog`` and is passed to validation
as its context: ``ModelConfig.model_validate(data, context={CATALOG: registry})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import ValidationInfo

from inferwatch.collector.detectors.metrics import Metric
from inferwatch.collector.detectors.params import Flag, Table
from inferwatch.collector.settings.threshold_table import (
    LEVEL_TABLES,
    HistoryLevels,
    ReferenceLevels,
    StaticLevels,
)

# The key of the catalog in a validation context.
CATALOG = "catalog"


class CheckSettings(Table):
    """The settings every check has; each check's model adds its own."""

    enabled: Flag = True

    @property
    def levels(self) -> StaticLevels | ReferenceLevels | HistoryLevels | None:
        """The check's threshold table, when its ``threshold`` is one."""
        value = getattr(self, "threshold", None)
        return value if isinstance(value, LEVEL_TABLES) else None

    def detector_settings(self) -> dict[str, Any]:
        """The settings that shape what the check fits on the reference: all but whether it
        runs and its levels (a fitted detector's cache key)."""
        return self.model_dump(exclude={"enabled", "threshold"})


class Catalog(Protocol):
    @property
    def check_names(self) -> Sequence[str]: ...

    def check_settings(self, name: str) -> type[CheckSettings]:
        """The settings model of check ``name``; ValueError naming the known checks."""
        ...

    def calibrated(self, name: str) -> bool:
        """Whether check ``name`` can score samples of the reference (levels mode 'reference')."""
        ...

    def resolve_metric(self, spec: str) -> Metric:
        """Metric ``spec``: built in, a plug-in's, or ``package.module:function`` (imported
        now); ValueError saying why it is not one."""
        ...

    @property
    def notifier_names(self) -> Sequence[str]: ...


def catalog_of(info: ValidationInfo) -> Catalog | None:
    """The catalog validation was given, if any. Settings read from a file or the API are always
    validated with one; settings built in code without one are trusted to name real plug-ins,
    except where a name decides the type (a check's settings table)."""
    catalog: Catalog | None = (info.context or {}).get(CATALOG)
    return catalog
