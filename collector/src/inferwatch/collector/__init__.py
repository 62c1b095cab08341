"""The inferwatch collector: receives prediction spans, windows them, detects, answers queries.

``create_app(load_config(path))`` is an ASGI app for uvicorn. Names are imported on first use,
so that the ``inferwatch`` command, which loads ``inferwatch.collector.server.cli`` to list its
``collector`` command, does not wait for scipy and scikit-learn to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inferwatch.collector.detect.check import CheckSpec, check
    from inferwatch.collector.detect.evaluate import evaluate_window
    from inferwatch.collector.detect.view import WindowView
    from inferwatch.collector.detectors.result import Result
    from inferwatch.collector.plugins import Registry
    from inferwatch.collector.runtime.loading import load_config
    from inferwatch.collector.server.app import create_app
    from inferwatch.collector.settings import (
        CheckSettings,
        CollectorConfig,
        ConfigError,
        ModelConfig,
        ReferencePolicy,
    )
    from inferwatch.collector.storage import Storage, open_storage

_EXPORTS = {
    "create_app": "server.app",
    "load_config": "runtime.loading",
    "CheckSettings": "settings",
    "CollectorConfig": "settings",
    "ConfigError": "settings",
    "ModelConfig": "settings",
    "ReferencePolicy": "settings",
    "CheckSpec": "detect.check",
    "check": "detect.check",
    "Registry": "plugins",
    "Result": "detectors.result",
    "WindowView": "detect.view",
    "evaluate_window": "detect.evaluate",
    "Storage": "storage",
    "open_storage": "storage",
}

__all__ = [
    "CheckSettings",
    "CheckSpec",
    "CollectorConfig",
    "ConfigError",
    "ModelConfig",
    "ReferencePolicy",
    "Registry",
    "Result",
    "Storage",
    "WindowView",
    "check",
    "create_app",
    "evaluate_window",
    "load_config",
    "open_storage",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inferwatch.collector' has no attribute {name!r}")
    return getattr(importlib.import_module(f"inferwatch.collector.{module}"), name)
