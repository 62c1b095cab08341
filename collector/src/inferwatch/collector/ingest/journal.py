"""The bytes of a prediction batch as kept in the durable journal until it is checkpointed.

Layout: ``b"IWJ2"`` then five parts, each a uint32 length and its bytes: JSON metadata, the ids
end to end (UTF-8), each id's length in characters (uint32), the input frame and the output
frame (length 0 for a missing frame). Frames keep their own codec, so a batch round-trips
exactly. The ids are not JSON: joining them costs a small fraction of encoding a JSON array, on
the ingest path, while splitting them back is only needed to replay.
"""

from __future__ import annotations

import json
import struct
from itertools import accumulate

import numpy as np

from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.frame import Frame, decode_frame, encode_frame

_MAGIC = b"IWJ2"
_LENGTH = struct.Struct("<I")
_ID_LENGTHS = np.dtype("<u4")
_PARTS = 5
_META = json.JSONEncoder(separators=(",", ":"))


def encode_batch(batch: PredictionBatch, outputs: bytes | None = None) -> bytes:
    """``outputs``: the batch's output frame already encoded, so it is not encoded twice."""
    meta = _META.encode(
        {
            "model": batch.model,
            "version": batch.version,
            "task": batch.task,
            "trace_id": batch.trace_id.hex(),
            "span_id": batch.span_id.hex(),
            "start_ns": batch.start_ns,
            "end_ns": batch.end_ns,
            "error": batch.error,
            "sample_rate": batch.sample_rate,
            "issues": batch.issues,
        }
    ).encode()
    ids = batch.ids
    parts = (
        meta,
        # surrogatepass: ids from OTLP JSON may hold lone surrogates, which must round-trip too.
        "".join(ids).encode("utf-8", "surrogatepass"),
        np.fromiter(map(len, ids), _ID_LENGTHS, len(ids)).tobytes(),
        _frame_bytes(batch.inputs),
        outputs if outputs is not None else _frame_bytes(batch.outputs),
    )
    return _MAGIC + b"".join(_LENGTH.pack(len(p)) + p for p in parts)


def decode_batch(data: bytes) -> PredictionBatch:
    if data[:4] != _MAGIC:
        raise ValueError("not a journaled batch (missing the IWJ2 signature)")
    view = memoryview(data)
    parts: list[memoryview] = []
    offset = 4
    for _ in range(_PARTS):
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        parts.append(view[offset : offset + length])
        offset += length
    meta = json.loads(bytes(parts[0]))
    text = bytes(parts[1]).decode("utf-8", "surrogatepass")
    ends = list(accumulate(np.frombuffer(parts[2], _ID_LENGTHS).tolist()))
    ids = tuple(text[start:end] for start, end in zip([0, *ends], ends, strict=False))
    return PredictionBatch(
        model=meta["model"],
        version=meta["version"],
        task=meta["task"],
        trace_id=bytes.fromhex(meta["trace_id"]),
        span_id=bytes.fromhex(meta["span_id"]),
        start_ns=meta["start_ns"],
        end_ns=meta["end_ns"],
        error=meta["error"],
        ids=ids,
        inputs=decode_frame(parts[3]) if len(parts[3]) else None,
        outputs=decode_frame(parts[4]) if len(parts[4]) else None,
        sample_rate=meta["sample_rate"],
        issues=tuple(meta["issues"]),
    )


def _frame_bytes(frame: Frame | None) -> bytes:
    return encode_frame(frame) if frame is not None else b""
