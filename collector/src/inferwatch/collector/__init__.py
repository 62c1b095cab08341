"""The inferwatch collector: receives prediction spans, windows them, detects, answers queries.

``create_app(load_config(path))`` is an ASGI app for uvicorn. Names are imported on first use,
so that the ``inferwatch`` command, which loads ``inferwatch.collector.server.cli`` to list its
``collector`` command, does not wait for scipy and scikit-learn to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inferwatch.collector.detect.evaluate import evaluate_window, register
    from inferwatch.collector.detect.view import WindowView
    from inferwatch.collector.detectors.result import Result
    from inferwatch.collector.server.app import create_app
    from inferwatch.collector.settings.config import (
        CollectorConfig,
        ConfigError,
        ModelConfig,
        ReferencePolicy,
        load_config,
    )
    from inferwatch.collector.storage import Storage, open_storage

_EXPORTS = {
    "create_app": "server.app",
    "CollectorConfig": "settings.config",
    "ConfigError": "settings.config",
    "ModelConfig": "settings.config",
    "ReferencePolicy": "settings.config",
    "load_config": "settings.config",
    "Result": "detectors.result",
    "WindowView": "detect.view",
    "evaluate_window": "detect.evaluate",
    "register": "detect.evaluate",
    "Storage": "storage",
    "open_storage": "storage",
}

__all__ = [
    "CollectorConfig",
    "ConfigError",
    "ModelConfig",
    "ReferencePolicy",
    "Result",
    "Storage",
    "WindowView",
    "create_app",
    "evaluate_window",
    "load_config",
    "open_storage",
    "register",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inferwatch.collector' has no attribute {name!r}")
    return getattr(importlib.import_module(f"inferwatch.collector.{module}"), name)
