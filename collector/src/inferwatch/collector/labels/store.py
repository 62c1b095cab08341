"""What the label join keeps in a database: labels, where each prediction id is, and the labels
that wait for their prediction.

The port that the labels endpoint and the window keeper use; ``inferwatch.collector.storage`` has
the backends. The index of prediction ids is written by ``WindowStore.ingest``, in the same
transaction as the batches, which also joins the labels waiting for them. Every write method is
one transaction; times are integer milliseconds since the Unix epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from inferwatch.collector.labels.reach import IdReach


class LabelRecord(NamedTuple):
    # A tuple, not a frozen dataclass: one is built per posted label, and building a frozen
    # dataclass costs several times more (a measurable share of the label endpoint's time).
    prediction_id: str
    value_text: str
    value_num: float | None


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    accepted: int
    joined: int
    pending: int
    replaced: int
    # Windows whose labelled rows changed, to be re-evaluated.
    windows: set[int]


@dataclass(frozen=True, slots=True)
class LabelledBatch:
    """The labelled rows of one stored batch, with the output frame their predictions are in."""

    outputs: bytes  # the batch's encoded output frame, b"" without one
    # (row index in the batch, label text, label number, label delay in ms) per labelled row.
    labels: list[tuple[int, str, float | None, int]]


@dataclass(frozen=True, slots=True)
class PruneOutcome:
    predictions_deleted: int
    # Labels that waited past the retention horizon without meeting a prediction, per model.
    labels_expired: dict[str, int]


class LabelStore(Protocol):
    """Labels and the prediction-id index. Implementations must be thread-safe."""

    def apply(
        self,
        model: str,
        labels: Sequence[LabelRecord],
        now_ms: int,
        reach: IdReach | None = None,
    ) -> LabelOutcome:
        """Join each label to its prediction's first row (the last label of an id counts), or
        keep it waiting for the prediction; stored predictions' windows gain the labels.
        ``reach`` (the model's) says where a UUIDv7 id's prediction is expected: a storage may
        look there first, then everywhere."""
        ...

    def for_window(self, window_id: int) -> list[LabelledBatch]:
        """The window's labelled rows, grouped by the batch they came in."""
        ...

    def counters(self, model: str) -> dict[str, int]:
        """``accepted``, ``replaced`` and ``expired`` labels so far, and ``pending`` ones now."""
        ...

    def prune(self, cutoff_ms: int) -> PruneOutcome:
        """Forget the predictions (and their labels) of windows that ended before
        ``cutoff_ms``, and expire the labels that have waited since before it."""
        ...
