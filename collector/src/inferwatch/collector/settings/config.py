"""The collector's configuration: process settings plus per-model settings with defaults.

Everything has a default, so ``load_config(None)`` gives a working collector. A TOML file::

    [collector]
    db = "sqlite:///var/lib/inferwatch/collector.db"
    port = 4318
    public_url = "https://collector.example.com"   # for links in alert notifications
    api_keys = ["..."]

    [defaults]                 # every model, unless overridden below
    window = "1h"              # a number of seconds or "30s", "5m", "1h", "7d"
    allowed_lateness = "5m"

    [models.credit]
    window = "30s"
    reference = { policy = "rows", size = 1000 }
    detectors = { error_rate = { threshold = 0.02 } }

    [models.credit.alerts]     # see docs/alerts.md
    consecutive = 2
    webhooks = [{ url = "https://ops.example.com/inferwatch" }]
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from inferwatch.collector.settings.alerts import AlertPolicy
from inferwatch.collector.settings.parsing import (
    ConfigError,
    as_mapping,
    parse_duration,
    reject_unknown,
)
from inferwatch.collector.settings.threshold_table import ThresholdSettings

ReferencePolicyKind = Literal["rows", "windows", "none"]
Durability = Literal["full", "normal"]


@dataclass(frozen=True)
class ReferencePolicy:
    """How a reference is built when none was uploaded: from the first ``size`` rows or windows."""

    policy: ReferencePolicyKind = "rows"
    size: int = 1000

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], name: str) -> ReferencePolicy:
        reject_unknown(data, {"policy", "size"}, name)
        policy = data.get("policy", "rows")
        size = data.get("size", 1000)
        if policy not in ("rows", "windows", "none"):
            raise ConfigError(f"{name}.policy must be 'rows', 'windows' or 'none', got {policy!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConfigError(f"{name}.size must be a positive integer, got {size!r}")
        return cls(policy, size)


@dataclass(frozen=True)
class ModelConfig:
    """Settings of one model; the collector's ``defaults`` fill whatever a model leaves out."""

    window_seconds: float = 3600.0
    allowed_lateness_seconds: float = 300.0
    reference: ReferencePolicy = field(default_factory=ReferencePolicy)
    # Per-detector settings by detector name, e.g. {"error_rate": {"threshold": 0.02}};
    # {"enabled": false} turns a detector off.
    detectors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # When check results become alerts, and where they are delivered (docs/alerts.md).
    alerts: AlertPolicy = field(default_factory=AlertPolicy)

    def merged(self, data: Mapping[str, Any], name: str) -> ModelConfig:
        """A copy with the settings in ``data`` (TOML/JSON keys) applied on top."""
        reject_unknown(
            data, {"window", "allowed_lateness", "reference", "detectors", "alerts"}, name
        )
        changes: dict[str, Any] = {}
        if "window" in data:
            changes["window_seconds"] = parse_duration(data["window"], f"{name}.window")
            if changes["window_seconds"] < 1:
                raise ConfigError(f"{name}.window must be at least 1 second")
        if "allowed_lateness" in data:
            changes["allowed_lateness_seconds"] = parse_duration(
                data["allowed_lateness"], f"{name}.allowed_lateness"
            )
        if "reference" in data:
            changes["reference"] = ReferencePolicy.from_mapping(
                as_mapping(data["reference"], f"{name}.reference"), f"{name}.reference"
            )
        if "detectors" in data:
            detectors = dict(self.detectors)
            for detector, settings in as_mapping(data["detectors"], f"{name}.detectors").items():
                where = f"{name}.detectors.{detector}"
                settings = as_mapping(settings, where)
                _check_detector_settings(detector, settings, where)
                detectors[detector] = {**detectors.get(detector, {}), **settings}
            changes["detectors"] = detectors
        if "alerts" in data:
            changes["alerts"] = self.alerts.merged(
                as_mapping(data["alerts"], f"{name}.alerts"), f"{name}.alerts"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window_seconds,
            "allowed_lateness": self.allowed_lateness_seconds,
            "reference": {"policy": self.reference.policy, "size": self.reference.size},
            "detectors": {name: dict(settings) for name, settings in self.detectors.items()},
            "alerts": self.alerts.to_dict(),
        }


@dataclass(frozen=True)
class DatabaseURL:
    scheme: Literal["sqlite", "postgresql"]
    # A file path for SQLite; the whole URL for PostgreSQL.
    target: str


def parse_db_url(url: str) -> DatabaseURL:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://...``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise ConfigError(
                f"db must look like sqlite:///path/to/file.db (three slashes), got {url!r}"
            )
        return DatabaseURL("sqlite", unquote(parts.path[1:]))
    if parts.scheme in ("postgresql", "postgres"):
        return DatabaseURL("postgresql", url)
    raise ConfigError(f"db must be a sqlite:/// or postgresql:// URL, got {url!r}")


@dataclass(frozen=True)
class CollectorConfig:
    db: str = "sqlite:///inferwatch.db"
    host: str = "127.0.0.1"
    port: int = 4318
    # The URL people and webhooks reach this collector at, for links in alert notifications;
    # http://{host}:{port} when unset.
    public_url: str | None = None
    # Bearer tokens accepted on /v1 routes; empty means no authentication.
    api_keys: tuple[str, ...] = ()
    # A name for this process's share of window state, so replicas writing to one database
    # (and restarts of one replica) keep separate partial states that queries merge.
    instance_id: str = "default"
    # "full" fsyncs every group commit: an acknowledged batch survives power loss. "normal"
    # survives a process crash but may lose the last commits on power loss.
    durability: Durability = "full"
    max_body_bytes: int = 64 * 2**20
    # Rows waiting for the ingest worker; beyond this submit() answers 429.
    max_queue_rows: int = 500_000
    # Rows written in one group commit at most.
    max_commit_rows: int = 50_000
    # A span id seen within this horizon is a duplicate and is dropped.
    dedupe_horizon_seconds: float = 7 * 86400.0
    # Per-row predictions are kept this long for the label join; labels for older or unknown
    # ids wait this long for their prediction and are then counted as unmatched.
    prediction_retention_seconds: float = 30 * 86400.0
    # How often window state is checkpointed and raw batches dropped.
    checkpoint_interval_seconds: float = 2.0
    # How often the background task closes due windows and re-evaluates changed ones.
    tick_seconds: float = 1.0
    max_labels_per_request: int = 10_000
    defaults: ModelConfig = field(default_factory=ModelConfig)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)

    def model(self, name: str) -> ModelConfig:
        return self.models.get(name, self.defaults)

    @property
    def database(self) -> DatabaseURL:
        return parse_db_url(self.db)

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


_SCALARS: dict[str, type | tuple[type, ...]] = {
    "db": str,
    "host": str,
    "port": int,
    "public_url": str,
    "instance_id": str,
    "durability": str,
    "max_body_bytes": int,
    "max_queue_rows": int,
    "max_commit_rows": int,
    "dedupe_horizon_seconds": (int, float),
    "prediction_retention_seconds": (int, float),
    "checkpoint_interval_seconds": (int, float),
    "tick_seconds": (int, float),
    "max_labels_per_request": int,
}


def load_config(path: str | Path | None = None, **overrides: Any) -> CollectorConfig:
    """Read a TOML file (or nothing), then apply keyword overrides (None values are skipped).

    Overrides use CollectorConfig field names, e.g. ``load_config(None, db="sqlite:///x.db")``.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read the config file {str(path)!r}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{str(path)!r} is not valid TOML: {exc}") from None
    reject_unknown(data, {"collector", "defaults", "models"}, "config")
    settings: dict[str, Any] = dict(as_mapping(data.get("collector", {}), "collector"))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    config = _build(settings)
    defaults = ModelConfig().merged(as_mapping(data.get("defaults", {}), "defaults"), "defaults")
    models = {
        name: defaults.merged(as_mapping(section, f"models.{name}"), f"models.{name}")
        for name, section in as_mapping(data.get("models", {}), "models").items()
    }
    return dataclasses.replace(config, defaults=defaults, models=models)


def _build(settings: Mapping[str, Any]) -> CollectorConfig:
    reject_unknown(settings, {*_SCALARS, "api_keys"}, "collector")
    values: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "api_keys":
            keys = [value] if isinstance(value, str) else value
            if not isinstance(keys, list | tuple) or not all(
                isinstance(k, str) and k for k in keys
            ):
                raise ConfigError("collector.api_keys must be a list of non-empty strings")
            values[key] = tuple(keys)
            continue
        expected = _SCALARS[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ConfigError(f"collector.{key} has the wrong type: {value!r}")
        values[key] = value
    config = CollectorConfig(**values)
    config.database  # noqa: B018 -- validates the URL now rather than at startup
    if config.durability not in ("full", "normal"):
        raise ConfigError(
            f"collector.durability must be 'full' or 'normal', not {config.durability!r}"
        )
    if config.public_url is not None:
        parts = urlsplit(config.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                "collector.public_url must be an http(s) URL such as "
                f"https://collector.example.com, got {config.public_url!r}"
            )
    for key in ("port", "max_body_bytes", "max_queue_rows", "max_commit_rows"):
        if getattr(config, key) < (0 if key == "port" else 1):
            raise ConfigError(f"collector.{key} must be positive, got {getattr(config, key)!r}")
    return config


def _check_detector_settings(detector: str, settings: Mapping[str, Any], where: str) -> None:
    """A misspelt check or setting would otherwise be ignored without a word."""
    # Imported here: the checks import this module for ModelConfig.
    from inferwatch.collector.detect.evaluate import registered

    checks = registered()
    if detector not in checks:
        raise ConfigError(f"{where}: no check named {detector!r}; the checks are {sorted(checks)}")
    entry = checks[detector]
    reject_unknown(settings, set(entry.defaults), where)
    value = settings.get("threshold")
    if isinstance(value, Mapping) or (value is not None and entry.defaults["threshold"] is None):
        spec = ThresholdSettings.parse(value, f"{where}.threshold")
        if spec.mode == "reference" and entry.calibration is None:
            calibrated = sorted(name for name, c in checks.items() if c.calibration is not None)
            raise ConfigError(
                f"{where}.threshold: mode 'reference' needs a check that can score samples of "
                f"the reference; those are {', '.join(calibrated)} (use 'static' or 'history' "
                f"for {detector})"
            )
