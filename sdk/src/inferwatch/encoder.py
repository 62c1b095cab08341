"""CallEncoder: one call's inputs and outputs to encoded frames, for the span.

The general path captures (inferwatch.capture) then encodes (inferwatch.frame). The common call
of a model server, one row given as a dict of numbers with the same keys as the call before,
skips both: the frame header of the previous call is reused and only the values are packed.
Both paths give the same bytes (tests/sdk/test_encoder.py checks it).

A batch given as a list of row dicts is the costly case: turning 1,000 rows of 20 Python values
into columns takes ~0.8 ms when they are plain numbers under the same keys (columns.float_block;
more for mixed rows), most of it reading the values out of 1,000 dicts. Its inputs are encoded
later, by the export thread, from a copy of the rows taken during the call (~0.15 ms): the rows
may be changed once the call has returned, and reading their values in the call (~0.3 ms,
before any conversion) would cost it twice what the copy does.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inferwatch.capture import PREDICTION, capture_inputs, capture_outputs, count_rows
from inferwatch.columns import PLAIN_NUMBER_TYPES
from inferwatch.frame import Frame, NumericBlock, encode_frame
from inferwatch.redact import Redactor

_FLOAT = struct.Struct("<d")


# Encodes inputs left for later: their frame (None if they could not be captured) and the
# problems met.
LaterInputs = Callable[[], tuple[bytes | None, list[str]]]


@dataclass(slots=True)
class Encoded:
    rows: int
    inputs: bytes | None
    outputs: bytes | None
    problems: list[str]
    # Set, instead of ``inputs``, for inputs that are encoded off the calling thread; with an
    # estimate of the bytes they will take.
    later: LaterInputs | None = None
    later_bytes: int = 0


class CallEncoder:
    """Encodes the calls of one recorder; safe to share between threads."""

    def __init__(
        self,
        *,
        feature_names: Sequence[str] | None,
        exclude: str | None,
        task: str | None,
        classes: Sequence[object] | None,
    ) -> None:
        self.feature_names = feature_names
        self.exclude = exclude
        self.task = task
        self.classes = classes
        # (keys, header, packer) of the last one-row dict of numbers: replaced as a whole, so
        # a thread never sees the keys of one call with the header of another.
        self._row: tuple[tuple[object, ...], bytes, struct.Struct] | None = None
        scalar = Frame(1, (NumericBlock(PREDICTION, np.zeros((1, 1)), None, "output"),))
        self._scalar_output_header = encode_frame(scalar)[: -_FLOAT.size]

    def encode(self, inputs: object, outputs: object, redactor: Redactor | None = None) -> Encoded:
        """``redactor`` drops or hashes named input features before they are encoded."""
        problems: list[str] = []
        records = _copy_of_records(inputs)
        later: LaterInputs | None = None
        later_bytes = 0
        redactor = redactor or None
        if records is not None:
            rows, input_bytes = len(records), None
            later = functools.partial(self._later_inputs, records, redactor)
            later_bytes = rows * len(records[0]) * _FLOAT.size
        else:
            # The fast path reuses a header of raw features: never with features to redact.
            input_bytes = self._row_inputs(inputs) if redactor is None else None
            if input_bytes is not None:
                rows = 1
            else:
                rows, input_bytes = self._inputs(inputs, problems, redactor)
        if type(outputs) in PLAIN_NUMBER_TYPES and rows == 1:
            output_bytes: bytes | None = self._scalar_output_header + _FLOAT.pack(outputs)
        else:
            output_bytes = self._outputs(outputs, rows, problems)
        return Encoded(rows, input_bytes, output_bytes, problems, later, later_bytes)

    def _later_inputs(
        self, records: list[dict[object, object]], redactor: Redactor | None
    ) -> tuple[bytes | None, list[str]]:
        problems: list[str] = []
        _, encoded = self._inputs(records, problems, redactor)
        return encoded, problems

    def _row_inputs(self, inputs: object) -> bytes | None:
        """The fast path: the frame bytes, or None when it does not apply."""
        cached = self._row
        if cached is None or type(inputs) is not dict or self.exclude is not None:
            return None
        keys, header, packer = cached
        values = inputs.values()
        # None (a missing value) takes the general path, which writes NaN.
        if tuple(inputs) != keys or not set(map(type, values)) <= PLAIN_NUMBER_TYPES:
            return None
        return header + packer.pack(*values)

    def _inputs(
        self, inputs: object, problems: list[str], redactor: Redactor | None = None
    ) -> tuple[int, bytes | None]:
        try:
            captured = capture_inputs(
                inputs, feature_names=self.feature_names, exclude=self.exclude
            )
        except Exception as exc:
            problems.append(f"inputs could not be captured ({type(exc).__name__})")
            return count_rows(inputs), None
        problems.extend(captured.problems)
        frame = captured.frame
        if frame is None:
            return count_rows(inputs), None
        if redactor is not None:
            frame = redactor.apply(frame, problems)
        encoded = _encode(frame, "inputs", problems)
        if (
            redactor is None
            and encoded is not None
            and type(inputs) is dict
            and _is_row_of_numbers(inputs, frame)
        ):
            width = len(inputs)
            header = encoded[: -width * _FLOAT.size]
            self._row = (tuple(inputs), header, struct.Struct(f"<{width}d"))
        return frame.rows, encoded

    def _outputs(self, outputs: object, rows: int, problems: list[str]) -> bytes | None:
        try:
            captured = capture_outputs(outputs, rows=rows, task=self.task, classes=self.classes)
        except Exception as exc:
            problems.append(f"outputs could not be captured ({type(exc).__name__})")
            return None
        problems.extend(captured.problems)
        return _encode(captured.frame, "outputs", problems) if captured.frame else None


def _copy_of_records(inputs: object) -> list[dict[object, object]] | None:
    """A copy of a batch of row dicts (each dict copied), or None for any other inputs."""
    if type(inputs) not in (list, tuple) or not inputs:
        return None
    try:
        return list(map(dict.copy, inputs))  # type: ignore[call-overload]
    except TypeError:  # a row that is not a dict: encoded now, which reports it
        return None


def _is_row_of_numbers(row: dict[object, object], frame: Frame) -> bool:
    # The frame the fast path reproduces: one float64 block holding every key, in order.
    if frame.rows != 1 or len(frame.columns) != 1:
        return False
    (block,) = frame.columns
    return (
        isinstance(block, NumericBlock)
        and block.values.dtype == np.float64
        and block.names == tuple(row)
        and set(map(type, row.values())) <= PLAIN_NUMBER_TYPES
    )


def _encode(frame: Frame, what: str, problems: list[str]) -> bytes | None:
    try:
        return encode_frame(frame)
    except Exception as exc:
        problems.append(f"{what} could not be encoded ({type(exc).__name__})")
        return None
