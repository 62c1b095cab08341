"""Where a UUIDv7 id's window may end, from the model's window and lateness and max_clock_skew."""

from __future__ import annotations

from inferwatch.collector.labels.reach import IdReach, id_reach
from inferwatch.collector.settings.limits import IngestLimits
from inferwatch.collector.settings.model import ModelConfig


def test_an_ids_window_ends_within_its_length_and_the_margins_of_its_time() -> None:
    model = ModelConfig.model_validate({"window": "10m", "allowed_lateness": "1m"})
    limits = IngestLimits.model_validate({"max_clock_skew": "30s"})
    assert id_reach(model, limits) == IdReach(before_ms=90_000, after_ms=690_000)
