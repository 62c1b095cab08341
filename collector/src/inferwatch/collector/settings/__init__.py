"""The collector's settings as one typed schema: its TOML file, per-model settings, and changes
made through the API, every key and value checked when loaded or put (docs/collector.md)."""

from inferwatch.collector.settings.alerts import (
    AlertPolicy,
    CriticalThreshold,
    RetryPolicy,
    Webhook,
    redact_url,
)
from inferwatch.collector.settings.checks import CATALOG, Catalog, CheckSettings
from inferwatch.collector.settings.collector import CollectorConfig, DatabaseURL, parse_db_url
from inferwatch.collector.settings.durations import Duration
from inferwatch.collector.settings.errors import ConfigError
from inferwatch.collector.settings.model import (
    ModelConfig,
    ReferencePolicy,
    merge_tables,
    validate_model,
)
from inferwatch.collector.settings.threshold_table import (
    HistoryLevels,
    ReferenceLevels,
    StaticLevels,
    ThresholdTable,
)

__all__ = [
    "CATALOG",
    "AlertPolicy",
    "Catalog",
    "CheckSettings",
    "CollectorConfig",
    "ConfigError",
    "CriticalThreshold",
    "DatabaseURL",
    "Duration",
    "HistoryLevels",
    "ModelConfig",
    "ReferenceLevels",
    "ReferencePolicy",
    "RetryPolicy",
    "StaticLevels",
    "ThresholdTable",
    "Webhook",
    "merge_tables",
    "parse_db_url",
    "redact_url",
    "validate_model",
]
