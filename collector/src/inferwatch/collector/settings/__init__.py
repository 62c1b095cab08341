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
from inferwatch.collector.settings.errors import CodeImportRefused, ConfigError
from inferwatch.collector.settings.keys import SCOPES, ApiKey, Scope, find_key, hash_key
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
    "SCOPES",
    "AlertPolicy",
    "ApiKey",
    "Catalog",
    "CheckSettings",
    "CodeImportRefused",
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
    "Scope",
    "StaticLevels",
    "ThresholdTable",
    "Webhook",
    "find_key",
    "hash_key",
    "merge_tables",
    "parse_db_url",
    "redact_url",
    "validate_model",
]
