"""Per-model settings: windows, the reference policy, each check's settings, alerting.

In the collector's TOML a model's table is ``[defaults]`` (every model) merged with
``[models.<name>]``, table by table; changes made through the API merge over both the same way::

    [models.credit]
    window = "30s"
    reference = { policy = "rows", size = 1000 }
    detectors = { error_rate = { threshold = 0.02 } }

Each check's table is validated by that check's own settings model (``CheckSettings``), so
every key and value is checked when the settings load or are put, not when a window closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SerializeAsAny, ValidationError, WithJsonSchema

from inferwatch.collector.detectors.params import Count, Rate, Table, describe
from inferwatch.collector.settings.alerts import AlertPolicy
from inferwatch.collector.settings.checks import CATALOG, Catalog, CheckSettings
from inferwatch.collector.settings.durations import Duration
from inferwatch.collector.settings.errors import ConfigError
from inferwatch.collector.settings.threshold_table import TAGGED, ReferenceLevels

# Window lengths and lateness beyond a leap year serve no monitoring purpose, and window bounds
# in milliseconds must stay far inside what storage keeps (64-bit integers).
MAX_DURATION_SECONDS = 366 * 86400.0


def _at_most_a_year(seconds: float) -> float:
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(
            f"must be at most 366 days ({MAX_DURATION_SECONDS:.0f} seconds), got {seconds!r}"
        )
    return seconds


def _at_least_a_second(seconds: float) -> float:
    if seconds < 1:
        raise ValueError(f"must be at least 1 second, got {seconds!r}")
    return _at_most_a_year(seconds)


class ReferencePolicy(Table):
    """How a reference is built when none was uploaded: from the first ``size`` rows or windows."""

    policy: Literal["rows", "windows", "none"] = "rows"
    size: Count = 1000


class ModelConfig(Table):
    """Settings of one model. ``detectors`` holds every loaded check's settings, defaults
    filled in, once validated against the plug-ins (``validate_model``)."""

    window_seconds: Annotated[Duration, AfterValidator(_at_least_a_second)] = Field(
        default=3600.0, alias="window"
    )
    allowed_lateness_seconds: Annotated[Duration, AfterValidator(_at_most_a_year)] = Field(
        default=300.0, alias="allowed_lateness"
    )
    reference: ReferencePolicy = ReferencePolicy()
    # The chance that any statistical check fails a window of a healthy model: Holm's
    # correction across the checks (detectors.family). None leaves each check at its own alpha.
    false_alarm_rate: Rate | None = 0.05
    # Serialised as each check's own model (the declared base would show only ``enabled``);
    # which keys a check takes depends on the plug-ins loaded, so the schema leaves them open.
    detectors: Annotated[
        dict[str, SerializeAsAny[CheckSettings]],
        WithJsonSchema(
            {
                "type": "object",
                "additionalProperties": {"type": "object"},
                "description": "Each check's settings by name (docs/collector.md); "
                "{'enabled': false} turns one off.",
            }
        ),
    ] = {}
    alerts: AlertPolicy = AlertPolicy()

    def check(self, name: str) -> CheckSettings:
        """Check ``name``'s settings; KeyError for a check the model was not validated with."""
        return self.detectors[name]

    def to_dict(self) -> dict[str, Any]:
        """As the API shows it (TOML keys, durations in seconds, webhook URLs redacted)."""
        return self.model_dump(mode="json")


def validate_model(data: Mapping[str, Any], catalog: Catalog, where: str) -> ModelConfig:
    """``data`` (a model's merged table) as settings, every value checked; ConfigError naming
    each setting at fault by its path from ``where`` (``models.credit``)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table (mapping), got {type(data).__name__}")
    problems: list[str] = []
    rest = {key: value for key, value in data.items() if key != "detectors"}
    checks = _validate_checks(data.get("detectors", {}), catalog, f"{where}.detectors", problems)
    try:
        config = ModelConfig.model_validate({**rest, "detectors": {}}, context={CATALOG: catalog})
    except ValidationError as exc:
        problems.insert(0, describe(exc, where))
        config = None
    if problems:
        raise ConfigError("; ".join(problems))
    assert config is not None
    return config.model_copy(update={"detectors": checks})


def _validate_checks(
    tables: object, catalog: Catalog, where: str, problems: list[str]
) -> dict[str, CheckSettings]:
    if not isinstance(tables, Mapping):
        problems.append(f"{where} must be a table (mapping), got {type(tables).__name__}")
        return {}
    unknown = sorted(str(name) for name in tables if name not in catalog.check_names)
    if unknown:
        problems.append(
            f"{where} has no check named {', '.join(map(repr, unknown))}; the checks are "
            + ", ".join(sorted(catalog.check_names))
        )
    checks: dict[str, CheckSettings] = {}
    for name in catalog.check_names:
        model = catalog.check_settings(name)
        try:
            settings = model.model_validate(tables.get(name, {}), context={CATALOG: catalog})
        except ValidationError as exc:
            problems.append(describe(exc, f"{where}.{name}", tagged=TAGGED))
            continue
        if isinstance(settings.levels, ReferenceLevels) and not catalog.calibrated(name):
            calibrated = sorted(n for n in catalog.check_names if catalog.calibrated(n))
            problems.append(
                f"{where}.{name}.threshold: mode 'reference' needs a check that can score "
                f"samples of the reference; those are {', '.join(calibrated)} (use 'static' "
                f"or 'history' for {name})"
            )
        checks[name] = settings
    return checks


def merge_tables(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` over ``base``, table by table: a check's settings merge, not replace."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_tables(merged[key], value)
        else:
            merged[key] = value
    return merged
