"""The label join's two ends: the predicted value of each row, and labels as posted.

Predictions and labels are compared as numbers when both are numbers and as text otherwise,
so a class sent as 1, "1" or 1.0 matches, and True matches the text "True".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from inferwatch.collector.storage.base import LabelledBatch, LabelRecord
from inferwatch.frame import CategoricalColumn, Frame, NumericBlock, decode_frame


class LabelsError(ValueError):
    """The request body is wrong; ``status`` is 400 or 413 and the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """One labelled row: its prediction and its label, as text and number, and the delay."""

    prediction_text: str | None
    prediction_num: float | None
    label_text: str
    label_num: float | None
    delay_ms: int


def labelled_pairs(batches: Iterable[LabelledBatch]) -> list[LabelledPair]:
    """Each labelled row with its prediction, read from its batch's output frame.

    Predictions are only worked out here, for labelled rows, so ingest never pays for them.
    """
    pairs: list[LabelledPair] = []
    for batch in batches:
        outputs = decode_frame(batch.outputs) if batch.outputs else None
        values = predicted_values(outputs, outputs.rows if outputs is not None else 0)
        for row, label_text, label_num, delay_ms in batch.labels:
            text, num = values[row] if row < len(values) else (None, None)
            pairs.append(LabelledPair(text, num, label_text, label_num, delay_ms))
    return pairs


def predicted_values(outputs: Frame | None, rows: int) -> list[tuple[str | None, float | None]]:
    """(text, number) of each row's prediction, from the first output column.

    A categorical column gives the class; a one-wide numeric block the value (a regression
    output or a numeric class); a wider block is read as class probabilities and gives the
    most probable class (its column name, or its index).
    """
    if outputs is None or not outputs.columns or outputs.rows != rows:
        return [(None, None)] * rows
    column = outputs.columns[0]
    if isinstance(column, CategoricalColumn):
        return [(value, None) for value in column.values()]
    assert isinstance(column, NumericBlock)
    values = column.values
    if column.width == 1:
        return [(_number_text(v), v) if v == v else (None, None) for v in values[:, 0].tolist()]
    names = column.names
    best = np.argmax(np.nan_to_num(values, nan=-np.inf), axis=1).tolist()
    if names is not None:
        return [(names[i], None) for i in best]
    return [(str(i), float(i)) for i in best]


def parse_labels(body: Any, max_labels: int) -> tuple[str, list[LabelRecord]]:
    """Validate a POST /v1/labels body: ``{"model": ..., "labels": [{prediction_id, label}]}``."""
    if not isinstance(body, dict):
        raise LabelsError('the body must be a JSON object {"model": ..., "labels": [...]}')
    model = body.get("model")
    labels = body.get("labels")
    if not isinstance(model, str) or not model:
        raise LabelsError(f"'model' must be a non-empty string, got {model!r}")
    if not isinstance(labels, list):
        raise LabelsError('\'labels\' must be a list of {"prediction_id": ..., "label": ...}')
    if len(labels) > max_labels:
        raise LabelsError(
            f"{len(labels)} labels in one request; the limit is {max_labels}, send them in "
            "several requests",
            status=413,
        )
    return model, [_record(i, item) for i, item in enumerate(labels)]


def _record(index: int, item: object) -> LabelRecord:
    if not isinstance(item, dict):
        raise LabelsError(f"labels[{index}] must be an object with prediction_id and label")
    prediction_id = item.get("prediction_id")
    if not isinstance(prediction_id, str) or not prediction_id:
        raise LabelsError(
            f"labels[{index}].prediction_id must be a non-empty string, got {prediction_id!r}"
        )
    if "label" not in item:
        raise LabelsError(f"labels[{index}] has no 'label'")
    value = item["label"]
    if isinstance(value, bool):
        return LabelRecord(prediction_id, str(value), float(value))
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise LabelsError(f"labels[{index}].label must be a finite number, got {value!r}")
        return LabelRecord(prediction_id, _number_text(float(value)), float(value))
    if isinstance(value, str):
        return LabelRecord(prediction_id, value, None)
    raise LabelsError(
        f"labels[{index}].label must be a string, integer, boolean or number, "
        f"got {type(value).__name__}"
    )


def _number_text(value: float) -> str:
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)
