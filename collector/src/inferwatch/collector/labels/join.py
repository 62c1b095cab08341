"""The label join's two ends: the predicted value of each row, and labels as posted.

Predictions and labels are compared as numbers when both are numbers and as text otherwise,
so a class sent as 1, "1" or 1.0 matches, and True matches the text "True". A labelled row also
carries its class probabilities when the output frame has them, for log loss and ROC AUC.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from inferwatch.capture import PROBA
from inferwatch.collector.labels.store import LabelledBatch, LabelRecord
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
    # The row's class probabilities and the classes of their columns (one tuple shared by the
    # batch's rows); None when the output frame has no probabilities.
    proba: np.ndarray | None = field(default=None, compare=False)
    classes: tuple[str, ...] | None = None

    def class_pair(self) -> tuple[str, str] | None:
        """(label class, predicted class) as comparable text; None without a prediction."""
        if self.prediction_num is not None and self.label_num is not None:
            return number_text(self.label_num), number_text(self.prediction_num)
        if self.prediction_text is None:
            return None
        return self.label_text, self.prediction_text


def labelled_pairs(batches: Iterable[LabelledBatch]) -> list[LabelledPair]:
    """Each labelled row with its prediction, read from its batch's output frame.

    Predictions are only worked out here, for labelled rows, so ingest never pays for them.
    """
    pairs: list[LabelledPair] = []
    for batch in batches:
        outputs = decode_frame(batch.outputs) if batch.outputs else None
        values = predicted_values(outputs, outputs.rows if outputs is not None else 0)
        classes, proba = probabilities(outputs)
        for row, label_text, label_num, delay_ms in batch.labels:
            text, num = values[row] if row < len(values) else (None, None)
            row_proba = proba[row] if proba is not None and row < len(proba) else None
            pairs.append(
                LabelledPair(
                    text,
                    num,
                    label_text,
                    label_num,
                    delay_ms,
                    row_proba,
                    classes if row_proba is not None else None,
                )
            )
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
        return [(number_text(v), v) if v == v else (None, None) for v in values[:, 0].tolist()]
    names = column.names
    best = np.argmax(np.nan_to_num(values, nan=-np.inf), axis=1).tolist()
    if names is not None:
        return [(names[i], None) for i in best]
    return [(str(i), float(i)) for i in best]


def probabilities(outputs: Frame | None) -> tuple[tuple[str, ...], np.ndarray] | tuple[None, None]:
    """The classes and (rows x classes) probabilities of an output frame, if it has them.

    They are the SDK's ``proba`` block (columns ``proba[<class>]``, or unnamed ones for class
    indices), else a first output column that is a wider numeric block, as read by
    ``predicted_values``. Class names that are numbers are written as ``number_text`` writes
    numeric predictions and labels, so ``proba[1.0]`` is the class of prediction 1 and label 1.
    """
    if outputs is None or not outputs.columns:
        return None, None
    blocks = [c for c in outputs.columns if isinstance(c, NumericBlock) and c.name == PROBA]
    first = outputs.columns[0]
    if not blocks and isinstance(first, NumericBlock) and first.width > 1:
        blocks = [first]
    if not blocks or blocks[0].width < 2:
        return None, None
    block = blocks[0]
    prefix = f"{PROBA}["
    names = [
        n[len(prefix) : -1] if n.startswith(prefix) and n.endswith("]") else n
        for n in (block.names or [str(i) for i in range(block.width)])
    ]
    return tuple(_class_name(n) for n in names), block.values


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
    records = _plain_records(labels)
    if records is None:
        records = [_record(i, item) for i, item in enumerate(labels)]
    return model, records


_ID, _LABEL = itemgetter("prediction_id"), itemgetter("label")


def _plain_records(labels: list[Any]) -> list[LabelRecord] | None:
    """The common body, all labels of one kind (all strings, or all plain numbers) with
    their ids, checked and converted in C-level passes: ~3x faster than label by label. None
    when anything is off: ``_record`` then goes label by label, and names the first wrong one.
    """
    if not labels:
        return []
    if set(map(type, labels)) != {dict}:
        return None
    try:
        ids = list(map(_ID, labels))
        values = list(map(_LABEL, labels))
    except KeyError:
        return None
    if set(map(type, ids)) != {str} or not all(ids):
        return None
    kinds = set(map(type, values))
    if kinds == {str}:
        return list(map(LabelRecord._make, zip(ids, values, repeat(None), strict=False)))
    if not kinds <= {int, float}:  # bool is a type of its own: labelled by _record
        return None
    try:
        numbers = list(map(float, values))
    except OverflowError:
        return None
    if not all(map(math.isfinite, numbers)):
        return None
    return list(map(LabelRecord._make, zip(ids, map(number_text, numbers), numbers, strict=True)))


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
        return LabelRecord(prediction_id, number_text(float(value)), float(value))
    if isinstance(value, str):
        return LabelRecord(prediction_id, value, None)
    raise LabelsError(
        f"labels[{index}].label must be a string, integer, boolean or number, "
        f"got {type(value).__name__}"
    )


@functools.lru_cache(maxsize=4096)
def number_text(value: float) -> str:
    """A number as class text: ``1`` for 1.0, ``0.5`` for 0.5."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _class_name(name: str) -> str:
    try:
        value = float(name)
    except ValueError:
        return name
    return number_text(value) if math.isfinite(value) else name
