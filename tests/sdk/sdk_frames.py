"""Typed accessors for decoded frames in the SDK tests."""

from __future__ import annotations

import numpy as np
from inferwatch.frame import CategoricalColumn, Column, Frame, NumericBlock, decode_frame


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
