"""set_reference against a collector stand-in: parts decode to exactly the data given."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from inferwatch._http import CollectorUnavailable
from inferwatch.contract import DEFAULT_VERSION
from inferwatch.frame import CONTENT_TYPE, CategoricalColumn, Frame, decode_frame
from inferwatch.reference import (
    PART_BYTES_BUDGET,
    ReferenceRejected,
    ReferenceReport,
    reference_table,
    set_reference,
)

if TYPE_CHECKING:
    from conftest import FakeCollector

FAST = {"backoff": 0.01, "timeout": 5.0}


def stored_frames(
    collector: FakeCollector, model: str = "credit", version: str = "3"
) -> list[Frame]:
    return [decode_frame(part) for part in collector.committed[(model, version)]]


def column(frames: list[Frame], role: str, name: str) -> np.ndarray | list[str | None]:
    """One column over every part: floats as an array, categories as values."""
    pieces = [f.features(role)[name] for f in frames]  # type: ignore[arg-type]
    if isinstance(pieces[0], CategoricalColumn):
        return [v for p in pieces for v in p.values()]  # type: ignore[union-attr]
    return np.concatenate(pieces)  # type: ignore[arg-type]


def test_array_upload_in_parts_decodes_to_the_input(collector: FakeCollector) -> None:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(2_500, 4))
    features[5, 2] = np.nan
    proba = rng.dirichlet([1, 1, 1], size=2_500)
    labels = rng.integers(0, 3, size=2_500)
    calls: list[tuple[int, int]] = []

    report = set_reference(
        "credit",
        "3",
        features,
        proba,
        labels,
        task="classification",
        feature_names=["age", "income", "debt", "score"],
        chunk_rows=1_000,
        endpoint=collector.url,
        progress=lambda sent, total: calls.append((sent, total)),
        **FAST,
    )

    assert report == ReferenceReport(
        "credit", "3", 2_500, ("age", "income", "debt", "score"), parts=3, upload_id="u0"
    )
    assert calls == [(1_000, 2_500), (2_000, 2_500), (2_500, 2_500)]
    assert collector.starts == [{"task": "classification"}]
    parts = collector.of("part")
    assert [r.path.rsplit("/", 1)[1] for r in parts] == ["0", "1", "2"]
    assert {r.headers["content-type"] for r in parts} == {CONTENT_TYPE}
    frames = stored_frames(collector)
    assert [f.rows for f in frames] == [1_000, 1_000, 500]
    decoded = np.column_stack([column(frames, "feature", n) for n in report.features])
    np.testing.assert_array_equal(decoded, features)
    # Probabilities become what a classifier's call records: the predicted class and proba[j].
    assert list(frames[0].features("output")) == ["prediction", "proba[0]", "proba[1]", "proba[2]"]
    stacked_proba = np.column_stack([column(frames, "output", f"proba[{j}]") for j in range(3)])
    np.testing.assert_array_equal(stacked_proba, proba)
    np.testing.assert_array_equal(column(frames, "output", "prediction"), proba.argmax(axis=1))
    np.testing.assert_array_equal(column(frames, "label", "label").ravel(), labels)
    assert collector.of("commit")[0].path.endswith("/reference/uploads/u0/commit")


def test_dataframe_with_strings_categories_and_missing_values(collector: FakeCollector) -> None:
    frame = pd.DataFrame(
        {
            "age": pd.array([31, None, 45, 52, 28], dtype="Int64"),
            "income": [1.5, 2.0, np.nan, 4.25, 0.0],
            "city": ["Oslo", None, "Lima", "Oslo", "Pune"],
            "tier": pd.Categorical([1, 2, 2, None, 1]),
            "active": [True, False, True, True, False],
        }
    )
    predictions = pd.Series(["approve", "deny", "approve", "deny", "deny"])
    set_reference("credit", "3", frame, predictions, chunk_rows=2, endpoint=collector.url, **FAST)
    frames = stored_frames(collector)
    assert [f.rows for f in frames] == [2, 2, 1]
    np.testing.assert_array_equal(
        column(frames, "feature", "age").ravel(), [31, np.nan, 45, 52, 28]
    )
    np.testing.assert_array_equal(column(frames, "feature", "income").ravel(), frame["income"])
    np.testing.assert_array_equal(column(frames, "feature", "active").ravel(), [1, 0, 1, 1, 0])
    assert column(frames, "feature", "city") == ["Oslo", None, "Lima", "Oslo", "Pune"]
    # Each part's header lists only the categories its rows hold.
    assert [f.features("feature")["city"].categories for f in frames] == [  # type: ignore[union-attr]
        ("Oslo",),
        ("Oslo", "Lima"),
        ("Pune",),
    ]
    assert column(frames, "feature", "tier") == ["1", "2", "2", None, "1"]
    assert column(frames, "output", "prediction") == list(predictions)
    assert collector.starts == [{}]


def test_dict_of_columns_and_row_dicts_send_the_same_frames(collector: FakeCollector) -> None:
    columns = {"x": [1.0, 2.5, None], "kind": ["a", "b", "a"], "n": [1, 2, 3]}
    rows = [{"x": 1.0, "kind": "a", "n": 1}, {"x": 2.5, "kind": "b", "n": 2}, {"kind": "a", "n": 3}]
    first = set_reference("m", "1", columns, labels=[0.5, 1.5, 2.5], endpoint=collector.url)
    second = set_reference("m", "2", rows, labels=[0.5, 1.5, 2.5], endpoint=collector.url)
    # Numeric columns first, as a call's frame has them.
    assert first.features == second.features == ("x", "n", "kind")
    one, two = stored_frames(collector, "m", "1"), stored_frames(collector, "m", "2")
    for role, name in [("feature", "x"), ("feature", "n"), ("label", "label")]:
        np.testing.assert_array_equal(column(one, role, name), column(two, role, name))
    np.testing.assert_array_equal(column(one, "feature", "x").ravel(), [1.0, 2.5, np.nan])
    assert column(two, "feature", "kind") == ["a", "b", "a"]


def test_float32_is_kept_and_float64_is_not_copied() -> None:
    x32 = np.arange(12, dtype=np.float32).reshape(6, 2)
    table = reference_table(x32)
    assert table.columns[0].values.dtype == np.float32
    x64 = np.arange(12, dtype=np.float64).reshape(6, 2)
    assert np.shares_memory(reference_table(x64).columns[0].values, x64)
    _, frame = next(reference_table(x64).parts(4))
    assert frame.rows == 4 and np.shares_memory(frame.columns[0].values, x64)  # type: ignore[union-attr]


def test_wide_rows_get_smaller_parts() -> None:
    table = reference_table(np.zeros((10, 4_096)))
    assert table.rows_per_part(50_000) == PART_BYTES_BUDGET // (4_096 * 8)
    assert table.rows_per_part(100) == 100


def test_a_part_is_retried_after_503(collector: FakeCollector) -> None:
    collector.script("part", 503, {"error": "busy"}, {"Retry-After": "0.2"})
    features = np.arange(30.0).reshape(10, 3)
    report = set_reference("credit", "3", features, chunk_rows=4, endpoint=collector.url, **FAST)
    assert report.parts == 3
    parts = collector.of("part")
    assert [(r.path.rsplit("/", 1)[1], r.status) for r in parts] == [
        ("0", 503),
        ("0", 200),
        ("1", 200),
        ("2", 200),
    ]
    assert parts[0].body == parts[1].body
    assert parts[1].at - parts[0].at >= 0.18
    decoded = np.concatenate([f.columns[0].values for f in stored_frames(collector)])  # type: ignore[union-attr]
    np.testing.assert_array_equal(decoded, features)


def test_a_refused_part_names_the_step_and_stops(collector: FakeCollector) -> None:
    collector.script("part", 200, {"rows": 4})
    collector.script("part", 400, {"error": "column 'age' is numeric in part 0 but not here"})
    with pytest.raises(ReferenceRejected) as caught:
        set_reference("credit", "3", np.zeros((10, 2)), chunk_rows=4, endpoint=collector.url)
    error = caught.value
    assert error.status == 400 and error.step.startswith("part 1 (rows 4 to 7 of 10)")
    assert "column 'age' is numeric in part 0 but not here" in str(error)
    assert collector.of("commit") == [] and len(collector.of("part")) == 2


def test_start_refused_and_collector_down(collector: FakeCollector, closed_port_url: str) -> None:
    collector.api_key = "k"
    with pytest.raises(ReferenceRejected, match=r"start.*401.*API key"):
        set_reference("credit", "3", np.zeros((3, 1)), endpoint=collector.url, api_key="nope")
    with pytest.raises(CollectorUnavailable, match="3 attempts"):
        set_reference(
            "credit", "3", np.zeros((3, 1)), endpoint=closed_port_url, max_retries=2, backoff=0.01
        )


def test_model_and_version_are_quoted_in_the_path(collector: FakeCollector) -> None:
    set_reference("fraud eu", "2024-01?b#1", np.zeros((2, 1)), endpoint=collector.url)
    start = collector.of("start")[0]
    assert start.path == "/v1/models/fraud%20eu/versions/2024-01%3Fb%231/reference/uploads"
    assert json.loads(start.body or b"{}") == {}


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((np.zeros((3, 2, 2)),), {"feature_names": ["a", "b"]}, "feature_names needs a 2-D"),
        ((np.zeros(3),), {}, "must be a 2-D array"),
        ((np.zeros((0, 2)),), {}, "no rows"),
        ((np.zeros((3, 2)), [1, 2]), {}, "predictions has 2 rows but features has 3"),
        ((np.zeros((3, 2)), None, np.zeros((3, 2))), {}, r"labels must be 1-D, got shape \(3, 2\)"),
        ((np.zeros((3, 2)),), {"feature_names": ["a"]}, "feature_names must be 2 non-empty"),
        ((np.zeros((3, 2)),), {"feature_names": ["a", "a"]}, "a name twice"),
        (({"a": [1, 2], "b": [1, 2, 3]},), {}, "differ in length"),
        (({"a": [[1], {"x": 2}, 3]},), {}, "features cannot be .*'a' holds dict, list values"),
        (({"a": [{"x": 1}, {"x": 2}]},), {}, "features cannot be .*'a' holds dict values"),
        (([{"a": 1}, 5],), {}, r"features\[1\] is a int; expected a dict"),
        (({"": [1.0]},), {}, "a column with an empty name"),
        (({"a": 1.0},), {}, "column 'a' is a float, not a column"),
        ((pd.DataFrame({"t": pd.to_datetime(["2024-01-01"])}),), {}, "'t' is a datetime64"),
        ((np.zeros((3, 2)), [{"a": {"b": 1}}] * 3), {}, "predictions cannot be .*'a' holds"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"classes": ["a"]}, "2 columns but 1 classes"),
        ((np.zeros((3, 2)),), {"task": "ranking"}, "task must be one of"),
        ((np.zeros((3, 2)),), {"chunk_rows": 0}, "chunk_rows must be a positive integer"),
        ((pd.DataFrame({"a": [1]}),), {"feature_names": ["a"]}, "DataFrame names its own"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    collector: FakeCollector, args: tuple[object, ...], kwargs: dict[str, object], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        set_reference("credit", "3", *args, endpoint=collector.url, **kwargs)  # type: ignore[arg-type]
    assert collector.requests == []


def test_no_version_is_the_default_version(collector: FakeCollector) -> None:
    # The version a call monitored without one is filed under.
    for version in (None, ""):
        report = set_reference("credit", version, np.zeros((2, 1)), endpoint=collector.url)
        assert report.version == DEFAULT_VERSION == "unversioned"
    assert [r.path for r in collector.of("start")] == [
        "/v1/models/credit/versions/unversioned/reference/uploads"
    ] * 2
