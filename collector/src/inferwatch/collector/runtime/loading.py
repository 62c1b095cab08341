"""Reading the collector's TOML file into settings, with the plug-ins it names.

Every section, key and value is checked here, not when a window closes: a check's settings by
that check's model, check names and alert filters against the checks loaded, metric specs by
importing them, webhook formats against the notifiers. A ConfigError names each setting at
fault (``models.credit.detectors.univariate_drift has unknown setting(s) alpah; known: alpha,
correction, ...``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inferwatch.collector.detectors.params import describe
from inferwatch.collector.plugins import Registry
from inferwatch.collector.settings import (
    CollectorConfig,
    ConfigError,
    merge_tables,
    validate_model,
)

SECTIONS = ("collector", "defaults", "models")


def load_config(
    path: str | Path | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    models: Mapping[str, Mapping[str, Any]] | None = None,
    registry: Registry | None = None,
    **overrides: Any,
) -> CollectorConfig:
    """A TOML file's settings (or the defaults), with changes on top.

    ``overrides`` are ``[collector]`` keys (None values are skipped), e.g. ``db=...``;
    ``defaults`` and ``models`` are tables merged over the file's ``[defaults]`` and
    ``[models.<name>]``. The plug-ins are those installed plus the file's ``plugins``, unless
    ``registry`` is given.
    """
    data = _read(path)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"config has unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}"
        )
    process = _table(data.get("collector", {}), "collector")
    process.update({key: value for key, value in overrides.items() if value is not None})
    for key in ("defaults", "models", "defaults_table", "model_tables"):
        if key in process:
            raise ConfigError(f"collector has unknown setting(s) {key}")
    try:
        config = CollectorConfig.model_validate(process)
    except ValidationError as exc:
        raise ConfigError(describe(exc, "collector")) from None
    catalog = registry if registry is not None else Registry.load(config.plugins)
    defaults_table = merge_tables(_table(data.get("defaults", {}), "defaults"), defaults or {})
    model_tables = {
        name: _table(table, f"models.{name}")
        for name, table in _table(data.get("models", {}), "models").items()
    }
    for name, table in (models or {}).items():
        model_tables[name] = merge_tables(model_tables.get(name, {}), table)
    resolved = {
        name: validate_model(merge_tables(defaults_table, table), catalog, f"models.{name}")
        for name, table in model_tables.items()
    }
    return config.model_copy(
        update={
            "defaults": validate_model(defaults_table, catalog, "defaults"),
            "models": resolved,
            "defaults_table": defaults_table,
            "model_tables": model_tables,
        }
    ).with_catalog(catalog)


def _read(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {exc}") from None


def _table(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a table (mapping), got {type(value).__name__}")
    return dict(value)
