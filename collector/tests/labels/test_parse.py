"""parse_labels: the all-at-once path gives what label by label gives, or leaves it to it."""

from __future__ import annotations

from typing import Any

import pytest

from inferwatch.collector.labels.join import LabelsError, _plain_records, _record, parse_labels


def one_by_one(labels: list[Any]) -> list[Any]:
    return [_record(i, item) for i, item in enumerate(labels)]


@pytest.mark.parametrize(
    "labels",
    [
        [{"prediction_id": f"p{i}", "label": i * 0.5} for i in range(20)],
        [{"prediction_id": f"p{i}", "label": i} for i in range(20)],  # integers
        [{"prediction_id": "a", "label": 1}, {"prediction_id": "b", "label": 2.5}],
        [{"prediction_id": "a", "label": "cat"}, {"prediction_id": "b", "label": "dog"}],
        [{"prediction_id": "a", "label": 1.0, "extra": "ignored"}],
        [{"prediction_id": "a", "label": 2**60}],
        [],
    ],
)
def test_the_same_records(labels: list[Any]) -> None:
    assert _plain_records(labels) == one_by_one(labels)
    assert parse_labels({"model": "m", "labels": labels}, 100)[1] == one_by_one(labels)


@pytest.mark.parametrize(
    ("labels", "phrase"),
    [
        ([{"prediction_id": "a", "label": True}], None),  # bools: label by label
        ([{"prediction_id": "a", "label": 1}, {"prediction_id": "b", "label": "x"}], None),
        ([{"prediction_id": "a", "label": float("nan")}], "finite"),
        ([{"prediction_id": "a", "label": float("inf")}], "finite"),
        ([{"prediction_id": "", "label": 1}], "non-empty string"),
        ([{"prediction_id": 7, "label": 1}], "non-empty string"),
        ([{"prediction_id": "a"}], "has no 'label'"),
        ([{"prediction_id": "a", "label": 1}, ["not", "a", "dict"]], "must be an object"),
        ([{"prediction_id": "a", "label": [1]}], "must be a string"),
        ([{"prediction_id": "a", "label": None}], "must be a string"),
    ],
)
def test_anything_else_goes_label_by_label(labels: list[Any], phrase: str | None) -> None:
    assert _plain_records(labels) is None
    body = {"model": "m", "labels": labels}
    if phrase is None:
        assert parse_labels(body, 100)[1] == one_by_one(labels)
    else:
        with pytest.raises(LabelsError, match=phrase):
            parse_labels(body, 100)
