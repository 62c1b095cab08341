"""The bytes of a prediction batch as kept in the durable journal until it is checkpointed.

Layout: ``b"IWJ1"`` | uint32 length + JSON metadata | uint32 length + input frame | uint32
length + output frame (length 0 for a missing frame). Frames keep their own codec, so a batch
round-trips exactly.
"""

from __future__ import annotations

import json
import struct

from inferwatch.collector.batch import PredictionBatch
from inferwatch.frame import Frame, decode_frame, encode_frame

_MAGIC = b"IWJ1"
_LENGTH = struct.Struct("<I")


def encode_batch(batch: PredictionBatch) -> bytes:
    meta = json.dumps(
        {
            "model": batch.model,
            "version": batch.version,
            "task": batch.task,
            "trace_id": batch.trace_id.hex(),
            "span_id": batch.span_id.hex(),
            "start_ns": batch.start_ns,
            "end_ns": batch.end_ns,
            "error": batch.error,
            "ids": batch.ids,
            "sample_rate": batch.sample_rate,
            "issues": batch.issues,
        },
        separators=(",", ":"),
    ).encode()
    parts = [meta, _frame_bytes(batch.inputs), _frame_bytes(batch.outputs)]
    return _MAGIC + b"".join(_LENGTH.pack(len(p)) + p for p in parts)


def decode_batch(data: bytes) -> PredictionBatch:
    if data[:4] != _MAGIC:
        raise ValueError("not a journaled batch (missing the IWJ1 signature)")
    view = memoryview(data)
    parts: list[memoryview] = []
    offset = 4
    for _ in range(3):
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        parts.append(view[offset : offset + length])
        offset += length
    meta = json.loads(bytes(parts[0]))
    return PredictionBatch(
        model=meta["model"],
        version=meta["version"],
        task=meta["task"],
        trace_id=bytes.fromhex(meta["trace_id"]),
        span_id=bytes.fromhex(meta["span_id"]),
        start_ns=meta["start_ns"],
        end_ns=meta["end_ns"],
        error=meta["error"],
        ids=tuple(meta["ids"]),
        inputs=decode_frame(parts[1]) if len(parts[1]) else None,
        outputs=decode_frame(parts[2]) if len(parts[2]) else None,
        sample_rate=meta["sample_rate"],
        issues=tuple(meta["issues"]),
    )


def _frame_bytes(frame: Frame | None) -> bytes:
    return encode_frame(frame) if frame is not None else b""
