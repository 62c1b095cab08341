"""The ingest pipeline: the receiver's sink, making batches durable by group commit.

``submit`` enqueues batches and waits; one worker takes everything queued (up to
``max_commit_rows``), writes it in one transaction (dedupe by span id, the raw batch journal,
the batches' ids and outputs for the label join), and only then lets the waiting requests answer
200. It then folds the new batches into in-memory window state while it commits the next group,
so that the commit's disk writes overlap with Python work. Checkpoints store window state and
drop the journal they cover, in one transaction; on start the journal left by a crash is
replayed, so an acknowledged batch is never lost and, being deduplicated and journaled once,
never counted twice.

One batch never fails the others of its group: a batch that cannot be stored (its window or its
journal record cannot be made, or storage refuses it for what it holds) is refused for good,
alone, and its request is answered 200 with it in partial_success, since sending it again would
not help. Only a database that cannot take writes now fails the group, as retryable
(Unavailable: 503), and a full queue pushes back (Overloaded: 429).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

from inferwatch.collector.ingest.journal import decode_batch, encode_batch
from inferwatch.collector.receive.batch import Overloaded, PredictionBatch, Unavailable
from inferwatch.collector.reference.references import References
from inferwatch.collector.settings import CollectorConfig, ModelConfig
from inferwatch.collector.window.state import FoldFailed, WindowBook, window_key
from inferwatch.collector.window.store import (
    IncomingBatch,
    IngestOutcome,
    Quarantine,
    StorageUnavailable,
    WindowStore,
)
from inferwatch.frame import encode_frame

logger = logging.getLogger(__name__)

# What a client is asked to wait before retrying when the queue is full or storage failed.
RETRY_AFTER_FULL = 1.0
RETRY_AFTER_FAILURE = 5.0
# Journaled batches folded into window state at a time on start.
_REPLAY_CHUNK = 256
# Characters of a failure's message kept with a quarantined batch.
_MAX_REASON = 1000


class IngestMetrics(Protocol):
    """The Prometheus series ingest updates (the collector's ``CollectorMetrics`` has them)."""

    @property
    def batches(self) -> Counter: ...
    @property
    def rows(self) -> Counter: ...
    @property
    def overloaded(self) -> Counter: ...
    @property
    def queue_rows(self) -> Gauge: ...
    @property
    def commit_seconds(self) -> Histogram: ...
    @property
    def labels(self) -> Counter: ...
    @property
    def quarantined(self) -> Gauge: ...


@dataclass
class _Waiting:
    batches: Sequence[PredictionBatch]
    rows: int
    # The sentences for the batches refused for good, once the group is committed.
    done: asyncio.Future[list[str]]


@dataclass
class _Commit:
    """A committed group: the batches storage took (``outcome.stored`` is aligned with them;
    duplicates included) and, by position in the group, those refused for good."""

    batches: list[PredictionBatch]
    outcome: IngestOutcome
    refused: dict[int, str]


class IngestPipeline:
    """A ``BatchSink``: ``submit`` returns once its batches are durable."""

    def __init__(
        self,
        windows: WindowStore,
        book: WindowBook,
        references: References,
        config: CollectorConfig,
        config_for: Callable[[str], ModelConfig],
        metrics: IngestMetrics,
        state_lock: asyncio.Lock,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._windows = windows
        self._book = book
        self._references = references
        self._config = config
        self._config_for = config_for
        self._metrics = metrics
        self._state_lock = state_lock
        self._clock = clock
        self._queue: deque[_Waiting] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._accepting = False
        # The last committed group, until it is folded into window state.
        self._committed: tuple[list[PredictionBatch], IngestOutcome] | None = None
        # Replay: the last journaled batch given to the references.
        self._observed_seq = 0
        # The batches set aside as unfoldable (on a start, or when a fold failed): /healthz.
        self.quarantine = Quarantine()

    async def start(self) -> None:
        """Replay the journal a crash left behind, then start taking batches."""
        async with self._state_lock:
            replayed = await asyncio.to_thread(self._replay)
        if replayed:
            logger.info("replayed %d journaled batches", replayed)
        self._accepting = True
        self._worker = asyncio.create_task(self._run(), name="inferwatch-ingest")

    async def stop(self) -> None:
        """Refuse new batches, finish the queued ones, and checkpoint."""
        self._accepting = False
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
            self._worker = None
        try:
            await self.checkpoint()
        except Exception as exc:
            # A full disk, say: the batches stay in the journal, which the next start replays;
            # the rest of the shutdown (webhooks, storage) goes on.
            logger.error(
                "the last checkpoint failed (%s); the journal keeps its batches and the next "
                "start replays them",
                type(exc).__name__,
            )

    async def submit(self, batches: Sequence[PredictionBatch]) -> list[str]:
        if not batches:
            return []
        if not self._accepting:
            raise Unavailable(RETRY_AFTER_FAILURE, "the collector is shutting down")
        rows = sum(max(batch.rows, 1) for batch in batches)
        limit = self._config.max_queue_rows
        if self._queued_rows and self._queued_rows + rows > limit:
            self._metrics.overloaded.inc()
            raise Overloaded(
                RETRY_AFTER_FULL,
                f"the ingest queue holds {self._queued_rows} rows and its limit is {limit}; "
                "retry shortly",
            )
        done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(batches, rows, done))
        self._queued_rows += rows
        self._metrics.queue_rows.set(self._queued_rows)
        self._wakeup.set()
        # Shielded: a client that hangs up must not cancel a commit others share.
        return await asyncio.shield(done)

    async def checkpoint(self) -> None:
        async with self._state_lock:
            await asyncio.to_thread(self._book.checkpoint)

    async def settle(self) -> None:
        """Fold the committed batches not yet in window state into it (hold the state lock).

        Whoever reads window state calls this first (an evaluation, a query): a batch answered
        200 is then in what it reads. Without it, an evaluation between a commit and its fold
        would read the window without the batch yet take the batch's re-evaluation mark.
        """
        committed, self._committed = self._committed, None
        if committed is not None:
            await self._fold(*committed)

    async def _run(self) -> None:
        # A committed group is folded into window state while the next group commits: the
        # commit's disk writes and fsync run without the GIL, so the two overlap.
        while self._accepting or self._queue:
            if not self._queue:
                if self._committed is not None:
                    async with self._state_lock:
                        await self.settle()
                    continue
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            group = self._take_group()
            batches = [batch for waiting in group for batch in waiting.batches]
            async with self._state_lock:
                started = time.perf_counter()
                committing = asyncio.create_task(asyncio.to_thread(self._commit, batches))
                folding = asyncio.create_task(self.settle()) if self._committed else None
                try:
                    commit = await committing
                except Exception as exc:
                    self._release(group)
                    logger.exception("storing %d batches failed", len(batches))
                    failure = Unavailable(
                        RETRY_AFTER_FAILURE, f"the database cannot take writes: {exc}"
                    )
                    for waiting in group:
                        if not waiting.done.done():
                            waiting.done.set_exception(failure)
                else:
                    if folding is not None:
                        await folding
                        folding = None
                    self._committed = (commit.batches, commit.outcome)
                    self._release(group)
                    self._metrics.commit_seconds.observe(time.perf_counter() - started)
                    self._count(commit)
                    first = 0
                    for waiting in group:
                        positions = range(first, first + len(waiting.batches))
                        first += len(waiting.batches)
                        if not waiting.done.done():
                            refused = [commit.refused[i] for i in positions if i in commit.refused]
                            waiting.done.set_result(refused)
                if folding is not None:
                    await folding
        if self._committed is not None:
            async with self._state_lock:
                await self.settle()

    async def _fold(self, batches: list[PredictionBatch], outcome: IngestOutcome) -> None:
        """Fold committed batches into window state (the caller holds the state lock)."""
        try:
            await asyncio.to_thread(self._apply, batches, outcome)
        except Exception:
            # Ingest goes on: the batches are durable, and a bug here must not stop the
            # collector from acknowledging others.
            logger.exception("folding %d stored batches into window state failed", len(batches))

    def _take_group(self) -> list[_Waiting]:
        group = [self._queue.popleft()]
        rows = group[0].rows
        while self._queue and rows + self._queue[0].rows <= self._config.max_commit_rows:
            waiting = self._queue.popleft()
            group.append(waiting)
            rows += waiting.rows
        return group

    def _release(self, group: list[_Waiting]) -> None:
        # Rows count against the limit until committed, not only while queued.
        self._queued_rows -= sum(waiting.rows for waiting in group)
        self._metrics.queue_rows.set(self._queued_rows)

    def _commit(self, batches: list[PredictionBatch]) -> _Commit:
        """Store the group in one transaction; should storage refuse it for what a batch holds,
        store each batch alone, refusing for good those it refuses. StorageUnavailable (the
        database, not the batches) goes up: the group is then retried by its clients."""
        now_ms = int(self._clock() * 1000)
        refused: dict[int, str] = {}
        taken: list[tuple[int, IncomingBatch]] = []
        for position, batch in enumerate(batches):
            try:
                taken.append((position, self._incoming(batch)))
            except Exception as exc:
                refused[position] = _refusal(batch, exc)
        try:
            outcome = self._windows.ingest([incoming for _, incoming in taken], now_ms)
        except StorageUnavailable:
            raise
        except Exception:
            logger.warning(
                "storage refused a group of %d batches; storing them one by one", len(taken)
            )
            return self._commit_alone(batches, taken, refused, now_ms)
        kept = [batches[position] for position, _ in taken]
        return _Commit(kept, outcome, refused)

    def _commit_alone(
        self,
        batches: list[PredictionBatch],
        taken: list[tuple[int, IncomingBatch]],
        refused: dict[int, str],
        now_ms: int,
    ) -> _Commit:
        kept: list[PredictionBatch] = []
        outcomes: list[IngestOutcome] = []
        for position, incoming in taken:
            try:
                outcomes.append(self._windows.ingest([incoming], now_ms))
            except StorageUnavailable:
                # Those stored so far are durable; their clients' retries are duplicates.
                raise
            except Exception as exc:
                refused[position] = _refusal(batches[position], exc)
            else:
                kept.append(batches[position])
        outcome = IngestOutcome(
            [entry for one in outcomes for entry in one.stored],
            set().union(*(one.labelled_windows for one in outcomes)),
            sum(one.labels_joined for one in outcomes),
        )
        return _Commit(kept, outcome, refused)

    def _incoming(self, batch: PredictionBatch) -> IncomingBatch:
        window = window_key(
            batch.model, batch.version, batch.start_ns, self._config_for(batch.model).window_seconds
        )
        outputs = encode_frame(batch.outputs) if batch.outputs is not None else None
        # A frame whose rows do not line up with the ids cannot say what each row predicted.
        aligned = batch.outputs is not None and batch.outputs.rows == batch.rows
        kept = outputs if outputs is not None and aligned else b""
        return IncomingBatch(
            batch.trace_id,
            batch.span_id,
            window,
            batch.rows,
            encode_batch(batch, outputs),
            batch.ids,
            batch.start_ns // 1_000_000,
            kept,
        )

    def _count(self, commit: _Commit) -> None:
        batches, outcome = commit.batches, commit.outcome
        stored = [batch for batch, s in zip(batches, outcome.stored, strict=True) if s is not None]
        self._metrics.batches.labels("stored").inc(len(stored))
        self._metrics.batches.labels("duplicate").inc(len(batches) - len(stored))
        self._metrics.batches.labels("refused").inc(len(commit.refused))
        self._metrics.rows.inc(sum(batch.rows for batch in stored))
        self._metrics.labels.labels("joined").inc(outcome.labels_joined)

    def _apply(self, batches: list[PredictionBatch], outcome: IngestOutcome) -> None:
        stored = [
            (entry.window_id, entry.seq, batch)
            for batch, entry in zip(batches, outcome.stored, strict=True)
            if entry is not None
        ]
        left_out: set[int] = set()
        try:
            if stored:
                self._book.apply(stored)
        except FoldFailed as failed:
            # The other windows are folded; each failed one is folded again from its last
            # checkpoint without the batches that fail on their own.
            upto = max(seq for _, seq, _ in stored)
            for window_id, exc in failed.failures.items():
                logger.warning(
                    "folding batches into window %d failed (%s); folding it again batch by batch",
                    window_id,
                    type(exc).__name__,
                )
                left_out |= self._refold(window_id, upto)
        for _, seq, batch in stored:
            if seq not in left_out:
                self._references.observe(batch)

    def _refold(self, window_id: int, upto_seq: int) -> set[int]:
        """Fold a window whose fold failed again from its journal, up to ``upto_seq`` (later
        batches belong to a group not folded yet); quarantine the batches that cannot be
        folded, as a replay does. Returns their seqs."""
        journal: list[tuple[int, PredictionBatch]] = []
        left_out: dict[int, Exception] = {}
        try:
            for stored in self._windows.pending_batches():
                if stored.window_id != window_id or stored.seq > upto_seq:
                    continue
                try:
                    journal.append((stored.seq, decode_batch(stored.payload)))
                except Exception as exc:
                    left_out[stored.seq] = exc
            left_out |= self._book.refold(window_id, journal)
            for seq, cause in left_out.items():
                self._quarantine(seq, window_id, cause)
            self.quarantine = self._windows.quarantined()
            self._metrics.quarantined.set(self.quarantine.batches)
        except Exception as exc:
            # The window's state is its checkpoint's until its next batch; the batches are
            # durable, and a start replays what the journal still holds. The kind of failure
            # only: its message may quote a value.
            logger.error("folding window %d again failed (%s)", window_id, type(exc).__name__)
        return set(left_out)

    def _replay(self) -> int:
        """Fold the journal a crash left into window state, then checkpoint it.

        A batch that cannot be folded (corrupt, or a value an earlier release let through that
        breaks the fold) is quarantined rather than stopping the collector from starting: a
        database the collector wrote always opens again. The first pass folds batches many at
        a time; if one fails, the window states are dropped and the journal is folded again one
        batch at a time, each tried on an empty state first, so that the failing one is found
        and set aside without counting the others twice.
        """
        careful = False
        while True:
            try:
                replayed = self._replay_pass(careful)
            except _ReplayFailed as failed:
                self._book.reset()
                if failed.seq is not None:
                    self._quarantine(failed.seq, failed.window_id, failed.cause)
                careful = True
                continue
            self.quarantine = self._windows.quarantined()
            self._metrics.quarantined.set(self.quarantine.batches)
            return replayed

    def _replay_pass(self, careful: bool) -> int:
        count = 0
        chunk: list[tuple[int, int, PredictionBatch]] = []
        for stored in self._windows.pending_batches():
            try:
                batch = decode_batch(stored.payload)
                if careful:
                    self._book.try_alone(batch)
            except Exception as exc:
                self._quarantine(stored.seq, stored.window_id, exc)
                continue
            chunk.append((stored.window_id, stored.seq, batch))
            if len(chunk) == (1 if careful else _REPLAY_CHUNK):
                count += self._replay_chunk(chunk, careful)
                chunk = []
        if chunk:
            count += self._replay_chunk(chunk, careful)
        if count:
            try:
                self._book.checkpoint()
            except Exception:
                # The journal stays, and the collector serves: later checkpoints try again.
                logger.exception("checkpointing the replayed journal failed")
        return count

    def _replay_chunk(self, chunk: list[tuple[int, int, PredictionBatch]], careful: bool) -> int:
        try:
            self._book.apply(chunk)
            for _, seq, batch in chunk:
                # A pass after a failed one meets batches the references were given already.
                if seq > self._observed_seq:
                    self._references.observe(batch)
                    self._observed_seq = seq
        except Exception as exc:
            window_id, seq, _ = chunk[0]
            raise _ReplayFailed(seq if careful else None, window_id, exc) from exc
        return len(chunk)

    def _quarantine(self, seq: int, window_id: int, cause: Exception) -> None:
        """Set a journaled batch aside (on a start, or after a failed fold)."""
        # The log names the batch and the kind of failure, never a value from the batch; the
        # message, which may quote one, is kept only with the batch in the database.
        logger.error(
            "journaled batch %d (window %d) could not be folded into window state (%s); it is "
            "quarantined in the database (table quarantined_batches) and the collector goes on",
            seq,
            window_id,
            type(cause).__name__,
        )
        reason = f"{type(cause).__name__}: {cause}"[:_MAX_REASON]
        self._windows.quarantine(seq, reason, int(self._clock() * 1000))


class _ReplayFailed(Exception):
    """Folding replayed batches failed: ``seq`` is the culprit when it was folded alone."""

    def __init__(self, seq: int | None, window_id: int, cause: Exception) -> None:
        super().__init__(seq, window_id, cause)
        self.seq = seq
        self.window_id = window_id
        self.cause = cause


def _refusal(batch: PredictionBatch, exc: Exception) -> str:
    """The client's sentence for a batch refused for good (no value of the span in it)."""
    logger.warning(
        "refused span %s for good: it cannot be stored (%s)",
        batch.span_id.hex(),
        type(exc).__name__,
    )
    return (
        f"Span {batch.span_id.hex()} cannot be stored ({type(exc).__name__}: a value in it is "
        "out of what the collector can keep); sending it again will not help."
    )
