"""CallEncoder's single-row fast path gives exactly the bytes of the general path."""

from __future__ import annotations

import numpy as np
from sdk_frames import numbers

from inferwatch.capture import capture_inputs, capture_outputs
from inferwatch.encoder import CallEncoder
from inferwatch.frame import decode_frame, encode_frame


def general(inputs: object, outputs: object) -> tuple[bytes, bytes]:
    frame_in = capture_inputs(inputs).frame
    frame_out = capture_outputs(outputs, rows=1).frame
    assert frame_in is not None and frame_out is not None
    return encode_frame(frame_in), encode_frame(frame_out)


def encoder() -> CallEncoder:
    return CallEncoder(feature_names=None, exclude=None, task=None, classes=None)


def test_repeated_rows_match_the_general_path() -> None:
    calls = encoder()
    rows = [
        {"a": 1.0, "b": 2, "c": None},
        {"a": 3.5, "b": True, "c": float("nan")},  # same keys: the cached header
        {"a": np.float64(4.0), "b": np.int64(5), "c": np.float32(0.1)},
    ]
    for i, row in enumerate(rows):
        encoded = calls.encode(row, float(i))
        assert encoded.rows == 1 and encoded.problems == []
        assert (encoded.inputs, encoded.outputs) == general(row, float(i))
    assert calls._row is not None  # the fast path was armed after the first call


def test_changed_keys_order_or_types_fall_back_to_the_general_path() -> None:
    calls = encoder()
    calls.encode({"a": 1.0, "b": 2.0}, 0.0)
    for row in ({"b": 2.0, "a": 1.0}, {"a": 1.0, "b": "two"}, {"a": 1.0}, {"a": 1.0, "b": [1, 2]}):
        encoded = calls.encode(row, 1)
        assert encoded.inputs is not None and encoded.inputs == general(row, 1)[0]
        assert decode_frame(encoded.inputs).rows == 1


def test_no_fast_path_when_an_id_field_is_excluded() -> None:
    calls = CallEncoder(feature_names=None, exclude="id", task=None, classes=None)
    for value in (1.0, 2.0):
        encoded = calls.encode({"id": 7, "x": value}, 0.5)
        assert encoded.inputs is not None
        frame = decode_frame(encoded.inputs)
        assert list(frame.features()) == ["x"]
        assert float(numbers(frame, "x")[0]) == value


def test_batch_inputs_and_scalar_outputs_that_do_not_match() -> None:
    encoded = encoder().encode(np.zeros((3, 2)), 1.0)
    assert encoded.rows == 3 and encoded.outputs is None
    assert encoded.problems == ["1 outputs for 3 input rows"]


def test_row_dicts_are_left_for_later_and_give_the_general_path_bytes() -> None:
    rows: list[dict[str, object]] = [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": None}]
    expected = capture_inputs([dict(r) for r in rows]).frame
    assert expected is not None
    encoded = encoder().encode(rows, np.array([0.5, 0.25]))
    assert encoded.rows == 2 and encoded.inputs is None and encoded.later is not None
    assert encoded.later_bytes == 2 * 2 * 8
    assert encoded.outputs == encode_frame(capture_outputs(np.array([0.5, 0.25]), rows=2).frame)  # type: ignore[arg-type]
    rows[0]["a"] = 3.0  # after the call: the copy taken during it is what is encoded
    rows.append({"a": 4.0, "b": "y"})
    assert encoded.later() == (encode_frame(expected), [])


def test_rows_that_are_not_all_dicts_are_encoded_during_the_call() -> None:
    encoded = encoder().encode([{"a": 1.0}, 5], np.array([0.5, 0.25]))
    assert encoded.later is None and encoded.inputs is None
    assert encoded.problems == ["inputs mix dicts with other values"]
