"""Per-model settings: the config file's, with changes made through the API on top (stored)."""

from __future__ import annotations

import threading
from typing import Any

from inferwatch.collector.settings.config import CollectorConfig, ModelConfig
from inferwatch.collector.storage.base import Storage


class ModelSettings:
    def __init__(self, config: CollectorConfig, storage: Storage) -> None:
        self._config = config
        self._storage = storage
        self._lock = threading.Lock()
        self._changes = storage.model_configs()
        self._effective: dict[str, ModelConfig] = {}

    def __call__(self, model: str) -> ModelConfig:
        with self._lock:
            config = self._effective.get(model)
            if config is None:
                config = self._config.model(model)
                if model in self._changes:
                    config = config.merged(self._changes[model], f"models.{model}")
                self._effective[model] = config
            return config

    def update(self, model: str, changes: dict[str, Any]) -> ModelConfig:
        """Validate ``changes`` (config-file keys), store them, and return the new settings.

        Raises ConfigError, naming the setting, when a value is invalid.
        """
        with self._lock:
            merged_changes = _merge(self._changes.get(model, {}), changes)
            config = self._config.model(model).merged(merged_changes, "config")
            self._storage.put_model_config(model, merged_changes)
            self._changes[model] = merged_changes
            self._effective[model] = config
            return config


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` over ``old``, table by table (a detector's settings merge, not replace)."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
