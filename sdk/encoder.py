"""CallEncoder: one call's inputs and outputs to encoded frames, for the span.

The general path captures (inferwatch.capture) then encodes (inferwatch.frame). The common call
of a model server, one row given as a dict of numbers with the same keys as the call before,
skips both: the frame header of the previous call is reused and only the values are packed.
Both paths give the same bytes (tests/sdk/test_encoder.py checks it).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from inferwatch.capture import PREDICTION, capture_inputs, capture_outputs, count_rows
from inferwatch.columns import PLAIN_NUMBER_TYPES
from inferwatch.frame import Frame, NumericBlock, encode_frame

_FLOAT = struct.Struct("<d")


@dataclass(slots=True)
class Encoded:
    rows: int
    inputs: bytes | None
    outputs: bytes | None
    problems: list[str]


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

    def encode(self, inputs: object, outputs: object) -> Encoded:
        problems: list[str] = []
        input_bytes = self._row_inputs(inputs)
        if input_bytes is not None:
            rows = 1
        else:
            rows, input_bytes = self._inputs(inputs, problems)
        if type(outputs) in PLAIN_NUMBER_TYPES and rows == 1:
            output_bytes: bytes | None = self._scalar_output_header + _FLOAT.pack(outputs)
        else:
            output_bytes = self._outputs(outputs, rows, problems)
        return Encoded(rows, input_bytes, output_bytes, problems)

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

    def _inputs(self, inputs: object, problems: list[str]) -> tuple[int, bytes | None]:
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
        encoded = _encode(frame, "inputs", problems)
        if encoded is not None and type(inputs) is dict and _is_row_of_numbers(inputs, frame):
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
