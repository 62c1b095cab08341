"""The bytes of a prediction batch as kept in the durable journal until it is checkpointed.

A container of the codec (codec.JOURNALED_BATCH) of five parts: JSON metadata, the ids end to
end (UTF-8), each id's length in characters (uint32), the input frame and the output frame
(empty for a missing frame). Frames keep their own codec, so a batch round-trips
exactly. The ids are not JSON: joining them costs a small fraction of encoding a JSON array, on
the ingest path, while splitting them back is only needed to replay.
"""

from __future__ import annotations

import json
from itertools import accumulate

import numpy as np

from inferwatch.collector.codec import JOURNALED_BATCH
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.frame import Frame, decode_frame, encode_frame

_ID_LENGTHS = np.dtype("<u4")
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
    return JOURNALED_BATCH.encode(
        meta,
        # surrogatepass: ids from OTLP JSON may hold lone surrogates, which must round-trip too.
        "".join(ids).encode("utf-8", "surrogatepass"),
        np.fromiter(map(len, ids), _ID_LENGTHS, len(ids)).tobytes(),
        _frame_bytes(batch.inputs),
        outputs if outputs is not None else _frame_bytes(batch.outputs),
    )


def decode_batch(data: bytes | memoryview) -> PredictionBatch:
    """Read ``encode_batch()`` of this or an earlier release; ContainerError if it is not one."""
    meta_part, text_part, lengths_part, inputs_part, outputs_part = JOURNALED_BATCH.decode(
        data
    ).parts
    with JOURNALED_BATCH.reading():
        meta = json.loads(bytes(meta_part))
        text = bytes(text_part).decode("utf-8", "surrogatepass")
        if len(lengths_part) % _ID_LENGTHS.itemsize:
            raise JOURNALED_BATCH.corrupt(f"id lengths of {len(lengths_part)} bytes")
        ends = list(accumulate(np.frombuffer(lengths_part, _ID_LENGTHS).tolist()))
        if (ends[-1] if ends else 0) != len(text):
            raise JOURNALED_BATCH.corrupt("the id lengths do not add up to the ids")
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
            inputs=decode_frame(inputs_part) if len(inputs_part) else None,
            outputs=decode_frame(outputs_part) if len(outputs_part) else None,
            sample_rate=meta["sample_rate"],
            issues=tuple(meta["issues"]),
        )


def _frame_bytes(frame: Frame | None) -> bytes:
    return encode_frame(frame) if frame is not None else b""
