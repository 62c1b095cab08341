"""Values sent over real OTLP/HTTP to a real receiver come back exactly."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from sdk_frames import SpansOf, block, frame_at, numbers

import inferwatch
from inferwatch.frame import CategoricalColumn
from inferwatch_testkit.otlp import OTLPReceiver as Receiver


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_wide_rows_of_floats(
    receiver: Receiver, model: str, spans_of: SpansOf, compression: str
) -> None:
    # 100 KB of inputs: a frame the request sends as a chunk of its own (compressed or not).
    inferwatch.init(endpoint=receiver.url, compression=cast(Any, compression), flush_interval=0.05)
    rng = np.random.default_rng(7)
    images = rng.random((16, 784))
    images[3, 100] = np.nan
    proba = rng.dirichlet(np.ones(10), size=16)

    @inferwatch.monitor(model=model, task="classification", classes=list("abcdefghij"))
    def predict(x: np.ndarray) -> np.ndarray:
        return proba

    predict(images)
    (span,) = spans_of(model)
    assert span.headers.get("content-encoding") == (compression if compression == "gzip" else None)
    inputs = frame_at(span.attributes, "ml.input.frame")
    (column,) = inputs.columns
    np.testing.assert_array_equal(block(column).values, images)  # NaN in the same place
    outputs = frame_at(span.attributes, "ml.output.frame")
    features = outputs.features()
    expected = [list("abcdefghij")[i] for i in proba.argmax(axis=1)]
    prediction = features["prediction"]
    assert isinstance(prediction, CategoricalColumn) and prediction.values() == expected
    for j, name in enumerate("abcdefghij"):
        np.testing.assert_array_equal(features[f"proba[{name}]"], proba[:, j])
    assert len(span.attributes["ml.prediction.ids"]) == 16
    assert span.attributes["ml.batch.rows"] == 16


def test_more_than_128_named_features(live: Receiver, model: str, spans_of: SpansOf) -> None:
    names = [f"feature_{j}" for j in range(500)]
    x = np.random.default_rng(1).normal(size=(3, 500))

    @inferwatch.monitor(model=model, feature_names=names)
    def predict(x: np.ndarray) -> np.ndarray:
        return x.sum(axis=1)

    predict(x)
    (span,) = spans_of(model)
    inputs = frame_at(span.attributes, "ml.input.frame").features()
    assert list(inputs) == names
    for j, name in enumerate(names):
        np.testing.assert_array_equal(inputs[name], x[:, j])
    outputs = frame_at(span.attributes, "ml.output.frame").features()
    np.testing.assert_array_equal(outputs["prediction"], x.sum(axis=1))
    # Still a handful of span attributes, whatever the number of features.
    assert len(span.attributes) <= 10


def test_mixed_records_with_missing_values_and_numpy_scalars(
    live: Receiver, model: str, spans_of: SpansOf
) -> None:
    rows: list[dict[str, Any]] = [
        {"age": np.int32(41), "income": np.float32(1.5), "city": "Paris", "vip": np.bool_(True)},
        {"age": None, "income": float("nan"), "city": None, "vip": False},
        {"age": 30, "income": 2.25, "city": "Lyon", "vip": True, "extra": np.float64(9.0)},
    ]

    @inferwatch.monitor(model=model, task="classification")
    def predict(rows: list[dict[str, Any]]) -> list[str]:
        return ["yes", "no", "yes"]

    predict(rows)
    (span,) = spans_of(model)
    inputs = frame_at(span.attributes, "ml.input.frame").features()
    np.testing.assert_array_equal(inputs["age"], [41.0, np.nan, 30.0])
    np.testing.assert_array_equal(inputs["income"], [1.5, np.nan, 2.25])
    np.testing.assert_array_equal(inputs["vip"], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(inputs["extra"], [np.nan, np.nan, 9.0])
    city = inputs["city"]
    assert isinstance(city, CategoricalColumn) and city.values() == ["Paris", None, "Lyon"]
    prediction = frame_at(span.attributes, "ml.output.frame").features()["prediction"]
    assert isinstance(prediction, CategoricalColumn)
    assert prediction.values() == ["yes", "no", "yes"]


def test_dataframe_in_series_out(live: Receiver, model: str, spans_of: SpansOf) -> None:
    df = pd.DataFrame(
        {"request_id": ["r1", "r2"], "x": [1.0, 2.0], "color": pd.Categorical(["red", "blue"])}
    )

    @inferwatch.monitor(model=model, id_from="request_id", task="regression")
    def predict(df: pd.DataFrame) -> pd.Series:
        return df["x"] * 2

    predict(df)
    (span,) = spans_of(model)
    assert span.attributes["ml.prediction.ids"] == ["r1", "r2"]
    inputs = frame_at(span.attributes, "ml.input.frame").features()
    assert list(inputs) == ["x", "color"]
    np.testing.assert_array_equal(inputs["x"], [1.0, 2.0])
    outputs = frame_at(span.attributes, "ml.output.frame").features()
    np.testing.assert_array_equal(outputs["prediction"], [2.0, 4.0])


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_single_row_fast_path_over_the_wire(
    receiver: Receiver, model: str, spans_of: SpansOf, compression: str
) -> None:
    inferwatch.init(endpoint=receiver.url, compression=cast(Any, compression), flush_interval=0.05)
    rows = [{f"f{j}": float(i * 100 + j) for j in range(20)} for i in range(3)]

    @inferwatch.monitor(model=model, version="2", task="regression")
    def predict(row: dict[str, float]) -> float:
        return sum(row.values())

    for row in rows:  # the second and third calls take the cached-header path
        predict(row)
    spans = spans_of(model, 3)
    for row, span in zip(rows, spans, strict=True):
        inputs = frame_at(span.attributes, "ml.input.frame")
        assert {k: float(numbers(inputs, k)[0]) for k in inputs.features()} == row
        output = numbers(frame_at(span.attributes, "ml.output.frame"), "prediction")
        assert float(output[0]) == sum(row.values())


def test_inputs_changed_after_the_call_do_not_change_the_record(
    live: Receiver, model: str, spans_of: SpansOf
) -> None:
    # The span is built later by the export thread; what it carries was encoded during the call.
    x = np.ones((2, 3))
    row = {"a": 1.0, "b": 2.0}

    @inferwatch.monitor(model=model)
    def predict(x: object) -> float:
        return 0.0

    predict(x)
    predict(row)
    predict(row)  # the single-row fast path
    x[:] = 7.0
    row["a"] = 7.0
    spans = spans_of(model, 3)
    np.testing.assert_array_equal(
        block(frame_at(spans[0].attributes, "ml.input.frame").columns[0]).values, np.ones((2, 3))
    )
    for span in spans[1:]:
        assert float(numbers(frame_at(span.attributes, "ml.input.frame"), "a")[0]) == 1.0
