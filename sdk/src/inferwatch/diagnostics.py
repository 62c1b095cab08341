"""What the SDK counts about itself, and its rate-limited warnings.

Monitoring must never disturb the model, so the SDK swallows its own failures; these counters
(``inferwatch.stats()``) and at most one log line per kind of problem a minute are how they
show. Log lines name the model, the step and the exception type, never a feature value.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger("inferwatch")

LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class Stats:
    """A snapshot of the SDK's counters since the process started."""

    # Calls recorded as spans (sampled), and calls skipped by sampling.
    spans_recorded: int = 0
    spans_unsampled: int = 0
    # Every recorded span ends in exactly one of exported, dropped (by reason) or failed, and
    # is pending until then (queued, or in an export waiting to be retried):
    # spans_recorded == spans_exported + spans_dropped + spans_failed + spans_pending.
    spans_exported: int = 0
    # Dropped because the export queue was full (by count or bytes), because the SDK shut down
    # (or was re-initialised) before they could be exported, or because the collector refused
    # them (an answer retrying would not change, or rejected in a partial success).
    spans_dropped_queue_full: int = 0
    spans_dropped_shutdown: int = 0
    spans_dropped_rejected: int = 0
    # Spans the SDK itself could not build or send (a bug: see monitoring_errors).
    spans_failed: int = 0
    spans_pending: int = 0
    # Export attempts (and probes while the collector is down) that got no answer or "try
    # again later"; the batch is kept and sent again.
    export_failures: int = 0
    # Calls whose monitoring failed outright (nothing recorded, the call itself unaffected), and
    # calls recorded with part of their inputs or outputs left out (see the span's
    # inferwatch.capture_error).
    monitoring_errors: int = 0
    capture_errors: int = 0

    @property
    def spans_dropped(self) -> int:
        """Spans dropped for any reason."""
        return (
            self.spans_dropped_queue_full
            + self.spans_dropped_shutdown
            + (self.spans_dropped_rejected)
        )

    def as_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "spans_dropped": self.spans_dropped}


class Counters:
    """Thread-safe counters behind :class:`Stats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys((f.name for f in dataclasses.fields(Stats)), 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def add_each(self, names: tuple[str, ...], amount: int = 1) -> None:
        """Add to several counters at once (no snapshot sees one without the others)."""
        with self._lock:
            for name in names:
                self._values[name] += amount

    def move(self, amount: int, source: str, target: str) -> None:
        """Move ``amount`` from one counter to another at once: no snapshot sees it in both
        or in neither (the span accounting holds in every snapshot)."""
        with self._lock:
            self._values[source] -= amount
            self._values[target] += amount

    def snapshot(self) -> Stats:
        with self._lock:
            return Stats(**self._values)


class RateLimitedLog:
    """Logs the first occurrence of each kind of problem, then at most one line per interval
    saying how many were not logged."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        # kind -> (monotonic time of the last line, occurrences since)
        self._state: dict[str, tuple[float, int]] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._state.get(kind, (-self._interval - 1.0, 0))
            if now - last < self._interval:
                self._state[kind] = (last, suppressed + 1)
                return
            self._state[kind] = (now, 0)
        if suppressed:
            message += " (%d more since the last report)"
            args = (*args, suppressed)
        logger.warning(message, *args)


counters = Counters()
_log = RateLimitedLog()


def _new_locks_in_child() -> None:
    # A thread of the parent (the export thread, for one) may have held a lock at the fork; it
    # would never be released in the child.
    counters._lock = threading.Lock()
    _log._lock = threading.Lock()
    # The spans pending at the fork are the parent's to export and count (the child drops its
    # copy of the queue): the child's counters go on without them, and still add up.
    values = counters._values
    values["spans_recorded"] -= values["spans_pending"]
    values["spans_pending"] = 0


os.register_at_fork(after_in_child=_new_locks_in_child)


def stats() -> Stats:
    """The SDK's counters: spans recorded, exported, dropped, failed, and errors."""
    return counters.snapshot()


def monitoring_error(model: str, step: str, exc: BaseException) -> None:
    """Count and (rate-limited) log a failure of the SDK itself; the model call goes on."""
    counters.add("monitoring_errors")
    # The type only: an exception's message can quote the offending feature value.
    _log.warning(
        f"monitoring:{model}:{step}",
        "inferwatch: %s failed for model %r (%s); the call was not recorded, the prediction "
        "was unaffected. Counted in inferwatch.stats().monitoring_errors.",
        step,
        model,
        type(exc).__name__,
    )


def capture_error(model: str, reason: str) -> None:
    """Count and (rate-limited) log a call recorded without part of its data."""
    counters.add("capture_errors")
    _log.warning(
        f"capture:{model}",
        "inferwatch: part of a call to model %r could not be captured: %s. Counted in "
        "inferwatch.stats().capture_errors.",
        model,
        reason,
    )


def recorded(queued: bool) -> None:
    """A span recorded: pending in the export queue, or dropped at once (queue full)."""
    outcome = "spans_pending" if queued else "spans_dropped_queue_full"
    counters.add_each(("spans_recorded", outcome))


def settled(spans: int, outcome: str) -> None:
    """``spans`` pending spans reached ``outcome``: a counter named in :class:`Stats`."""
    counters.move(spans, "spans_pending", outcome)


def export_retry(pending: int, reason: str) -> None:
    counters.add("export_failures")
    _log.warning(
        "export",
        "inferwatch: the collector is unreachable or busy (%s); %d spans are kept and sent "
        "again shortly. Counted in inferwatch.stats().export_failures.",
        reason,
        pending,
    )


def export_refused(spans: int, reason: str) -> None:
    _log.warning(
        "refused",
        "inferwatch: the collector refused %d spans (%s); they were dropped. Counted in "
        "inferwatch.stats().spans_dropped_rejected.",
        spans,
        reason,
    )


def queue_full(what: str) -> None:
    _log.warning(
        "queue",
        "inferwatch: the export queue is full (%s); a span was dropped. Is the collector "
        "reachable? Counted in inferwatch.stats().spans_dropped_queue_full.",
        what,
    )
