from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inferwatch.collector.detectors import UnivariateDrift, as_dataset
from inferwatch.collector.detectors.dataset import align
from inferwatch.frame import Frame, NumericBlock, categorical


def test_array_with_names_and_row_ids() -> None:
    data = as_dataset(
        np.arange(6).reshape(3, 2), feature_names=["a", "b"], row_ids=["r1", "r2", "r3"]
    )
    assert data.numeric_names == ("a", "b")
    assert data.numeric.dtype == np.float64
    assert data.row_ids is not None and data.row_ids.tolist() == ["r1", "r2", "r3"]


def test_dataframe_mixed_types() -> None:
    frame = pd.DataFrame(
        {
            "age": [30, 40, None],
            "city": ["paris", None, "rome"],
            "vip": [True, False, True],
            "tier": pd.Categorical([1, 2, 1]),
        }
    )
    data = as_dataset(frame)
    assert data.numeric_names == ("age",)
    assert np.isnan(data.numeric[2, 0])
    assert data.categorical_names == ("city", "vip", "tier")
    city = data.column("city")
    assert city.values() == ["paris", None, "rome"]  # type: ignore[union-attr]


def test_dict_and_frame_inputs_agree() -> None:
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    frame = Frame(2, (NumericBlock("x", values, ("a", "b")), categorical("c", ["u", "v"])))
    from_frame = as_dataset(frame)
    from_dict = as_dataset({"a": values[:, 0], "b": values[:, 1], "c": ["u", "v"]})
    np.testing.assert_array_equal(from_frame.numeric, from_dict.numeric)
    assert from_frame.names == from_dict.names == ("a", "b", "c")


@pytest.mark.parametrize(
    ("data", "kwargs", "expected"),
    [
        (np.zeros((2, 2, 2)), {}, "must be a 2-D array"),
        (np.zeros((2, 2)), {"feature_names": ["a"]}, "feature_names must be 2 non-empty strings"),
        ({"a": [1, 2], "b": [1, 2, 3]}, {}, "columns differ in length"),
        ({"a": [object(), 1]}, {}, "holds a object; expected numbers or text"),
        (np.zeros((3, 1)), {"row_ids": [1, 2]}, "row_ids must be 1-D with one id a row"),
    ],
)
def test_bad_input_says_what_was_expected(data: object, kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        as_dataset(data, **kwargs)


def test_window_missing_or_retyped_features_are_named() -> None:
    window = as_dataset({"a": [1.0], "b": ["x"]})
    with pytest.raises(ValueError, match=r"lacks the reference's features \['c'\]"):
        align(window, ["a", "c"], ["b"])
    with pytest.raises(ValueError, match=r"has \['b'\] with another type"):
        align(window, ["a", "b"], [])


def test_run_before_fit_is_explained() -> None:
    with pytest.raises(RuntimeError, match=r"call fit\(reference\) first"):
        UnivariateDrift().run(np.zeros((5, 1)))


def test_unnamed_window_array_is_matched_by_position() -> None:
    reference = as_dataset(np.zeros((2, 2)), feature_names=["a", "b"])
    window = align(as_dataset(np.array([[1.0, 2.0]])), reference.numeric_names, [])
    assert window.numeric_names == ("a", "b")
    with pytest.raises(ValueError, match="unnamed array of 3 columns: give it the reference's 2"):
        align(as_dataset(np.zeros((1, 3))), reference.numeric_names, [])
