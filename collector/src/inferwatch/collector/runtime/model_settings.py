"""Per-model settings: the config file's, with changes made through the API on top (stored)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from inferwatch.collector.plugins import Registry
from inferwatch.collector.settings import (
    CollectorConfig,
    ConfigError,
    ModelConfig,
    merge_tables,
    validate_model,
)

logger = logging.getLogger(__name__)


class ChangesStore(Protocol):
    """Where changes made through the API are kept (the collector's storage)."""

    def model_configs(self) -> dict[str, dict[str, Any]]: ...
    def put_model_config(self, model: str, settings: dict[str, Any]) -> None: ...


class ModelSettings:
    def __init__(self, config: CollectorConfig, registry: Registry, store: ChangesStore) -> None:
        self._config = config
        self._registry = registry
        self._store = store
        self._lock = threading.Lock()
        self._changes = store.model_configs()
        self._effective: dict[str, ModelConfig] = {}

    def __call__(self, model: str) -> ModelConfig:
        with self._lock:
            config = self._effective.get(model)
            if config is None:
                config = self._resolve(model)
                self._effective[model] = config
            return config

    def update(self, model: str, changes: dict[str, Any], *, may_import: bool) -> ModelConfig:
        """Validate ``changes`` (config-file keys), store them, and return the new settings.

        Raises ConfigError, naming the setting, when a value is invalid; CodeImportRefused,
        before importing anything, when ``changes`` name code to import and not ``may_import``.
        """
        catalog = self._registry if may_import else self._registry.without_new_imports()
        with self._lock:
            merged = merge_tables(self._changes.get(model, {}), changes)
            table = merge_tables(self._config.table(model), merged)
            config = validate_model(table, catalog, "config")
            self._store.put_model_config(model, merged)
            self._changes[model] = merged
            self._effective[model] = config
            return config

    def refresh(self) -> None:
        """Take the changes stored since (by another collector sharing the database)."""
        with self._lock:
            stored = self._store.model_configs()
            for model in set(stored) | set(self._changes):
                if stored.get(model) != self._changes.get(model):
                    self._effective.pop(model, None)
            self._changes = stored

    def _resolve(self, model: str) -> ModelConfig:
        changes = self._changes.get(model)
        if not changes:
            return self._config.model(model)
        try:
            table = merge_tables(self._config.table(model), changes)
            return validate_model(table, self._registry, f"models.{model}")
        except ConfigError as exc:
            # Stored changes the current plug-ins or file no longer accept (a plug-in removed,
            # say): the file's settings apply until the changes are put again.
            logger.warning("ignoring the stored settings changes of %s: %s", model, exc)
            return self._config.model(model)
