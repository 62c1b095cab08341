"""The narrow interface between the collector and its database, and the records it moves.

Every write method is one transaction. Backends (SQLite now, PostgreSQL next) keep all their SQL
behind this Protocol; nothing outside ``inferwatch.collector.storage`` builds a query. Times are
integer milliseconds since the Unix epoch; window state and profiles are opaque bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from inferwatch.collector.alerts.model import Alert
from inferwatch.collector.alerts.store import AlertStore
from inferwatch.collector.detectors.result import Result


@dataclass(frozen=True, slots=True)
class WindowKey:
    model: str
    version: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class IncomingBatch:
    """A decoded span on its way to durable storage."""

    # trace id + span id: a batch whose dedupe key was seen within the horizon is dropped.
    dedupe_key: bytes
    window: WindowKey
    rows: int
    payload: bytes
    # Kept for the label join: one id per row, the span's start time, and the encoded output
    # frame (b"" when there is none) from which a labelled row's prediction is read.
    prediction_ids: Sequence[str]
    ts_ms: int
    outputs: bytes


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A durable batch not yet folded into checkpointed window state."""

    seq: int
    window_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    # One entry per incoming batch: the stored batch, or None for a duplicate.
    stored: list[StoredBatch | None]
    # Windows that gained labels because waiting labels met their predictions.
    labelled_windows: set[int] = field(default_factory=set)
    labels_joined: int = 0


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
class WindowRecord:
    id: int
    model: str
    version: str
    start_ms: int
    end_ms: int
    closed: bool
    requests: int
    rows: int
    labelled: int
    # Changes (late rows, new labels) since the window was last evaluated.
    needs_eval: int
    # Set when the window was evaluated: its check results, and the performance and summary
    # shown by the query API (JSON-ready).
    results: list[Result] | None = None
    details: dict[str, Any] | None = None
    evaluated_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PastScore:
    """One scored result row of an earlier window, as thresholds learnt from history read it."""

    window_start_ms: int
    feature: str | None
    score: float
    decision: str
    # The check's own decision when a threshold re-decided the row (details.check_decision).
    check_decision: str | None


@dataclass(frozen=True, slots=True)
class ReferenceRecord:
    model: str
    version: str
    source: str  # "upload" or "auto"
    rows: int
    created_ms: int
    profile: bytes
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UploadRecord:
    upload_id: str
    model: str
    version: str
    task: str | None
    created_ms: int


@dataclass(frozen=True, slots=True)
class PruneOutcome:
    predictions_deleted: int
    # Labels that waited past the retention horizon without meeting a prediction, per model.
    labels_expired: dict[str, int]


class Storage(AlertStore, Protocol):
    """What the collector needs from a database. Implementations must be thread-safe.

    It is also the alert engine's ``AlertStore`` (``load`` and ``save``).
    """

    def close(self) -> None: ...

    # Ingest and window state
    def ingest(self, batches: Sequence[IncomingBatch], now_ms: int) -> IngestOutcome: ...
    def pending_batches(self) -> Iterator[StoredBatch]:
        """Durable batches not yet covered by a checkpoint, in the order they were stored."""
        ...

    def checkpoint(self, instance: str, states: Mapping[int, bytes], upto_seq: int) -> None:
        """Store this instance's window states and drop stored batches up to ``upto_seq``."""
        ...

    def window_states(self, window_id: int) -> dict[str, bytes]:
        """Each instance's partial state of a window."""
        ...

    # Windows
    def window(self, model: str, window_id: int) -> WindowRecord | None: ...
    def windows(
        self,
        model: str | None = None,
        version: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        closed: bool | None = None,
        needs_eval: bool | None = None,
        limit: int | None = None,
    ) -> list[WindowRecord]: ...
    def mark_for_evaluation(self, window_ids: set[int]) -> None: ...
    def save_evaluation(
        self,
        window_id: int,
        results: Sequence[Result],
        details: dict[str, Any],
        now_ms: int,
        *,
        close: bool,
        marks_seen: int = 0,
    ) -> None:
        """Store a window's evaluation (and close it), taking ``marks_seen`` off needs_eval."""
        ...

    def models(self) -> list[dict[str, Any]]:
        """Each model with its versions, window count and last prediction time."""
        ...

    def past_scores(
        self, model: str, version: str, detector: str, before_ms: int, windows: int
    ) -> list[PastScore]:
        """The scored rows of ``detector`` in the version's last ``windows`` evaluated windows
        that ended by ``before_ms``, newest window first."""
        ...

    # Labels
    def apply_labels(
        self, model: str, labels: Sequence[LabelRecord], now_ms: int
    ) -> LabelOutcome: ...

    def labelled_batches(self, window_id: int) -> list[LabelledBatch]:
        """The window's labelled rows, grouped by the batch they came in."""
        ...

    def label_counters(self, model: str) -> dict[str, int]: ...
    def prune(
        self, now_ms: int, prediction_horizon_ms: int, dedupe_horizon_ms: int
    ) -> PruneOutcome: ...

    # References
    def create_upload(self, model: str, version: str, task: str | None, now_ms: int) -> str: ...
    def upload(self, upload_id: str) -> UploadRecord | None: ...
    def put_upload_part(self, upload_id: str, part: int, rows: int, data: bytes) -> None: ...
    def upload_parts(self, upload_id: str) -> Iterator[bytes]:
        """The parts' bytes in part order, one at a time (never all in memory)."""
        ...

    def delete_upload(self, upload_id: str) -> None: ...
    def put_reference(self, reference: ReferenceRecord) -> None: ...
    def reference(self, model: str, version: str) -> ReferenceRecord | None: ...

    # Per-model configuration set through the API
    def model_configs(self) -> dict[str, dict[str, Any]]: ...
    def put_model_config(self, model: str, settings: dict[str, Any]) -> None: ...

    # State a stateful check keeps between windows (an online detector's running statistics)
    def detector_state(self, model: str, version: str, name: str) -> bytes | None: ...
    def put_detector_state(self, model: str, version: str, name: str, state: bytes) -> None:
        """Replace the state check ``name`` keeps for the model version."""
        ...

    # Alerts (written by the alert engine through load/save)
    def alerts(self, model: str, state: str | None = None) -> list[Alert]:
        """The model's alerts, optionally only ``open`` or ``resolved`` ones, oldest first."""
        ...
