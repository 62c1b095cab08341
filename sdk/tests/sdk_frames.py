"""Typed accessors for decoded frames in the SDK tests, and the type of the ``spans_of`` fixture."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inferwatch.frame import CategoricalColumn, Column, Frame, NumericBlock, decode_frame
from inferwatch_testkit.otlp import ReceivedSpan

# spans_of(model, count=1): that model's spans, once ``count`` have arrived.
SpansOf = Callable[..., list[ReceivedSpan]]


def frame_at(attributes: dict[str, object], key: str) -> Frame:
    value = attributes[key]
    assert isinstance(value, bytes), f"{key} is {type(value).__name__}, not bytes"
    return decode_frame(value)


def numbers(frame: Frame, name: str) -> np.ndarray:
    column = frame.features()[name]
    assert isinstance(column, np.ndarray), f"{name} is not numeric"
    return column


def labels(frame: Frame, name: str) -> list[str | None]:
    column = frame.features()[name]
    assert isinstance(column, CategoricalColumn), f"{name} is not categorical"
    return column.values()


def block(column: Column) -> NumericBlock:
    assert isinstance(column, NumericBlock), f"{column.name} is not a numeric block"
    return column
