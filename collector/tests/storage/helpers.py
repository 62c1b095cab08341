"""Records the storage tests write (batches with their ids and outputs, result rows), and the
severity a result row has from storage schema 5 on."""

from __future__ import annotations

import uuid
from typing import Any

from inferwatch.collector.detectors.result import Result
from inferwatch.collector.window.store import IncomingBatch, WindowKey
from inferwatch.frame import Frame, categorical, encode_frame

MINUTE_MS = 60_000


def window(start_minute: int, model: str = "m", version: str = "1") -> WindowKey:
    """The one-minute window starting ``start_minute`` minutes after the epoch."""
    return WindowKey(model, version, start_minute * MINUTE_MS, (start_minute + 1) * MINUTE_MS)


def batch(
    span_id: bytes,
    where: WindowKey,
    ids: list[str],
    predicted: list[str] | None = None,
    payload: bytes = b"raw",
    trace_id: bytes = b"trace",
) -> IncomingBatch:
    """A span of ``len(ids)`` rows whose output column ``prediction`` is ``predicted``."""
    predicted = predicted if predicted is not None else ["yes"] * len(ids)
    outputs = Frame(len(ids), (categorical("prediction", predicted),))
    return IncomingBatch(
        trace_id, span_id, where, len(ids), payload, ids, where.start_ms, encode_frame(outputs)
    )


def uuid7(ms: int, low: int) -> str:
    """Canonical UUIDv7 text: ``ms`` in the first 48 bits, ``low`` in the last 62."""
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | low))


def result(
    decision: str, score: float | None, detector: str = "error_rate", **fields: Any
) -> Result:
    return Result(
        detector=detector,
        score=score,
        threshold=0.05,
        decision=decision,
        message=f"{detector} {score}",
        **fields,
    )


def migrated(row: dict[str, Any]) -> dict[str, Any]:
    """A stored result row as schema 5 has it: with its own severity, or the one that its
    decision (and details.level) gives."""
    if "severity" in row:
        return row
    severity = None
    if row["decision"] == "warning":
        severity = "warning"
    elif row["decision"] == "alert":
        critical = (row.get("details") or {}).get("level") == "critical"
        severity = "critical" if critical else "warning"
    return {**row, "severity": severity}
