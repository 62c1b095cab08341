"""What the receiver hands to the pipeline: one monitored call, decoded from one span."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from inferwatch.frame import Frame


@dataclass(frozen=True, slots=True)
class PredictionBatch:
    model: str
    version: str
    task: str | None
    trace_id: bytes
    span_id: bytes
    start_ns: int
    end_ns: int
    # The exception type (or the span's status message) when the monitored call failed.
    error: str | None
    ids: tuple[str, ...]
    inputs: Frame | None
    outputs: Frame | None
    sample_rate: float = 1.0
    # Data-quality problems found while decoding this span (an undecodable frame, row counts
    # that disagree, ...). The batch is still delivered with whatever could be decoded.
    issues: tuple[str, ...] = field(default=())

    @property
    def rows(self) -> int:
        return len(self.ids)


class Overloaded(Exception):
    """The pipeline cannot take more now; the client should retry after ``retry_after`` s."""

    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Unavailable(Exception):
    """The pipeline cannot store batches now (storage failed, shutting down); the client
    should retry after ``retry_after`` s."""

    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class BatchSink(Protocol):
    async def submit(self, batches: Sequence[PredictionBatch]) -> Sequence[str]:
        """Return once every batch is durable or refused for good, with one sentence for each
        refused batch (one that could never be stored: retrying it cannot help); raise
        Overloaded to push back, Unavailable when nothing could be stored now."""
