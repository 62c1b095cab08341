"""What settings keep in a database: model settings changed through the API, and the state a
stateful check keeps between windows (an online detector's running statistics).

``ModelSettings`` and the stateful checks use it through the narrow views they declare
(``runtime.model_settings.ChangesStore``, ``detect.view.DetectorStates``), which it satisfies;
``inferwatch.collector.storage`` has the backends. Every write method is one transaction.
"""

from __future__ import annotations

from typing import Any, Protocol


class SettingsStore(Protocol):
    """Model settings and detector state. Implementations must be thread-safe."""

    def model_configs(self) -> dict[str, dict[str, Any]]:
        """Each model's stored changes (config-file keys, JSON-ready)."""
        ...

    def put_model_config(self, model: str, settings: dict[str, Any]) -> None:
        """Replace the model's stored changes."""
        ...

    def detector_state(self, model: str, version: str, name: str) -> bytes | None: ...

    def put_detector_state(self, model: str, version: str, name: str, state: bytes) -> None:
        """Replace the state check ``name`` keeps for the model version."""
        ...
