"""What the window stage keeps in a database: the journal of batches on their way into windows,
the windows with their state and evaluations, and the span keys that catch duplicates.

The port that ingest, the window book and the window keeper use; ``inferwatch.collector.storage``
has the backends. Every write method is one transaction. Times are integer milliseconds since
the Unix epoch; window state is opaque bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from inferwatch.collector.detectors.result import Result


@dataclass(frozen=True, slots=True)
class WindowKey:
    model: str
    version: str
    start_ms: int
    end_ms: int


class StorageUnavailable(Exception):
    """The database cannot take writes now (disk full, read-only, locked, I/O error): nothing of
    the failed call was stored, and the same call may succeed later."""


@dataclass(frozen=True, slots=True)
class IncomingBatch:
    """A decoded span on its way to durable storage."""

    # A batch whose (trace id, span id) was seen within the horizon is dropped.
    trace_id: bytes
    span_id: bytes
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
class WindowParts:
    """What a database holds of one window's state, read at one moment."""

    # Each instance's checkpointed state.
    states: dict[str, bytes]
    # Stored batches of other instances (replicas) not yet in their checkpointed states, in
    # the order they were stored: folded in, they complete the window.
    journal: list[bytes]
    # The window's evaluation marks at that moment (0 for a window not stored).
    needs_eval: int


@dataclass(frozen=True, slots=True)
class VersionWindows:
    """A model version's windows, counted."""

    model: str
    version: str
    windows: int
    rows: int
    labelled: int
    first_ms: int  # the first window's start
    last_ms: int  # the last window's end


@dataclass(frozen=True, slots=True)
class EvaluatedWindow:
    """A closed window and when it was last evaluated: whether what was read of it is current."""

    model: str
    version: str
    id: int
    evaluated_ms: int


@dataclass(frozen=True, slots=True)
class PastScore:
    """One scored result row of an earlier window, as thresholds learnt from history read it."""

    window_start_ms: int
    feature: str | None
    score: float
    decision: str
    # The check's own decision when a threshold re-decided the row (details.check_decision).
    check_decision: str | None


class WindowStore(Protocol):
    """Ingest and windows. Implementations must be thread-safe."""

    def ingest(self, batches: Sequence[IncomingBatch], now_ms: int) -> IngestOutcome:
        """In one transaction, store each batch not seen before: its dedupe key, its journal
        row, its window's counts (a closed window is marked for evaluation) and its prediction
        ids for the label join, where labels that were waiting for them join. All of it is
        durable when this returns. Raises StorageUnavailable, having stored nothing, when the
        database cannot take writes now; anything else it raises is about the batches."""
        ...

    def pending_batches(self) -> Iterator[StoredBatch]:
        """Durable batches not yet covered by a checkpoint, in the order they were stored."""
        ...

    def checkpoint(self, instance: str, states: Mapping[int, bytes], upto_seq: int) -> None:
        """Store this instance's window states and drop stored batches up to ``upto_seq``."""
        ...

    def quarantine(self, seq: int, reason: str, now_ms: int) -> None:
        """Move a stored batch that cannot be folded into window state out of the journal, kept
        with ``reason`` (which names no raw value)."""
        ...

    def quarantined(self) -> int:
        """How many batches were quarantined."""
        ...

    def states(self, window_id: int) -> dict[str, bytes]:
        """Each instance's partial state of a window."""
        ...

    def parts(self, window_id: int) -> WindowParts:
        """Everything stored of a window's state, and its marks, as of one moment: what an
        evaluation reads, so that a batch committed later (by any replica) stays marked."""
        ...

    def get(self, model: str, window_id: int) -> WindowRecord | None: ...

    def find(
        self,
        model: str | None = None,
        version: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        closed: bool | None = None,
        needs_eval: bool | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[WindowRecord]:
        """Windows overlapping [start_ms, end_ms), oldest first (by start, then id); with
        ``newest``, ``limit`` keeps the latest of them rather than the earliest."""
        ...

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

    def versions(self) -> list[VersionWindows]:
        """Every model version that has windows, by model then version."""
        ...

    def latest_evaluated(self) -> list[EvaluatedWindow]:
        """Each model version's newest closed window (latest start, then id), by model then
        version: what the metrics exporters show (they ``get`` the windows they have not read
        at that ``evaluated_ms``)."""
        ...

    def past_scores(
        self, model: str, version: str, detector: str, before_ms: int, windows: int
    ) -> list[PastScore]:
        """The scored rows of ``detector`` in the version's last ``windows`` evaluated windows
        that ended by ``before_ms``, newest window first."""
        ...

    def forget_dedupe_keys(self, before_ms: int) -> None:
        """Forget the keys of spans stored before ``before_ms``: a span sent again after that
        is stored again."""
        ...
