"""How far from a UUIDv7 prediction id's own time the window holding its prediction may end.

The SDK makes a prediction's UUIDv7 id when it records the call, on the clock that times the
span, and the span's window is the one holding the span's start: so the window ends after the
id's time less the call's duration, and at most a window length after it. The margins beyond
that (the model's allowed lateness and the ingest limit max_clock_skew) cover long calls and
ids made on another host's clock. A storage may look for the id near there first.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferwatch.collector.settings.limits import IngestLimits
from inferwatch.collector.settings.model import ModelConfig


@dataclass(frozen=True, slots=True)
class IdReach:
    """A UUIDv7 id of time t is expected in a window ending in [t - before_ms, t + after_ms]."""

    before_ms: int
    after_ms: int


def id_reach(model: ModelConfig, limits: IngestLimits) -> IdReach:
    slack_ms = round((model.allowed_lateness_seconds + limits.max_clock_skew) * 1000)
    return IdReach(before_ms=slack_ms, after_ms=round(model.window_seconds * 1000) + slack_ms)
