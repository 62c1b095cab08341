"""What a check sees of a window: its merged state, labels, performance, and the stores that
stateful checks and learned thresholds read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from inferwatch.collector.detect.fitted import FittedCache
from inferwatch.collector.window.state import WindowState
from inferwatch.collector.window.store import PastScore


class ScoreHistory(Protocol):
    """Stored results of earlier windows (the collector's ``WindowStore`` is one)."""

    def past_scores(
        self, model: str, version: str, detector: str, before_ms: int, windows: int
    ) -> list[PastScore]: ...


class DetectorStates(Protocol):
    """Durable state per (model, version) and check, as bytes the check reads and writes (the
    collector's ``SettingsStore`` is one)."""

    def detector_state(self, model: str, version: str, name: str) -> bytes | None: ...
    def put_detector_state(self, model: str, version: str, name: str, state: bytes) -> None: ...


@dataclass(frozen=True)
class WindowView:
    """What a check sees of a window: its merged state, labels and performance."""

    model: str
    version: str
    start_ms: int
    end_ms: int
    state: WindowState
    labelled: int
    performance: Mapping[str, Any]
    # When this evaluation runs (the collector's clock), for checks that wait on time such as
    # performance's label delay; None outside the collector.
    evaluated_ms: int | None = None
    # Where stateful checks keep state between windows (the online outlier detector's running
    # statistics); None where nothing persists.
    detector_states: DetectorStates | None = None
    # Earlier windows' stored results, for thresholds learnt from history; None where there
    # are none.
    history: ScoreHistory | None = None
    # Detectors fitted on references, reused across windows (the running collector's cache;
    # a fresh one where a check runs alone).
    fitted: FittedCache = field(default_factory=FittedCache)
