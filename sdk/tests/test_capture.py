"""Every input and output shape the SDK captures, through encode_frame / decode_frame."""

from __future__ import annotations

import sys
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sdk_frames import block

from inferwatch.capture import capture_inputs, capture_outputs, count_rows
from inferwatch.columns import Captured
from inferwatch.frame import CategoricalColumn, Frame, NumericBlock, decode_frame, encode_frame


def roundtrip(captured: Captured) -> Frame:
    assert captured.frame is not None, captured.problems
    return decode_frame(encode_frame(captured.frame))


def values(frame: Frame) -> dict[str, list[object]]:
    """Each column as a list; NaN as None, so that lists compare with ==."""
    out: dict[str, list[object]] = {}
    for name, column in frame.features().items():
        if isinstance(column, CategoricalColumn):
            out[name] = list(column.values())
        else:
            out[name] = [None if v != v else v for v in column.tolist()]
    return out


# -- inputs -----------------------------------------------------------------------------------


def test_dict_of_numbers_is_one_row_in_one_block() -> None:
    captured = capture_inputs({"age": 41, "income": 52_000.5, "ok": True, "nan": float("nan")})
    frame = roundtrip(captured)
    assert frame.rows == 1 and len(frame.columns) == 1 and captured.problems == ()
    assert values(frame) == {"age": [41.0], "income": [52000.5], "ok": [1.0], "nan": [None]}


def test_dict_with_strings_none_lists_and_numpy_scalars() -> None:
    row = {
        "city": "Lyon",
        "missing": None,
        "embedding": [0.5, 1.5, 2.5],
        "image": np.arange(4, dtype=np.uint8).reshape(2, 2),
        "i32": np.int32(7),
        "f16": np.float16(0.5),
        "flag": np.bool_(True),
    }
    frame = roundtrip(capture_inputs(row))
    assert values(frame) == {
        "missing": [None],
        "i32": [7.0],
        "f16": [0.5],
        "flag": [1.0],
        "city": ["Lyon"],
        "embedding[0]": [0.5],
        "embedding[1]": [1.5],
        "embedding[2]": [2.5],
        "image[0]": [0.0],
        "image[1]": [1.0],
        "image[2]": [2.0],
        "image[3]": [3.0],
    }


def test_list_of_dicts_takes_the_union_of_keys() -> None:
    rows = [{"a": 1, "b": "x"}, {"a": 2.5, "c": 3}, {"b": None, "c": float("nan")}]
    frame = roundtrip(capture_inputs(rows))
    assert frame.rows == 3
    assert values(frame) == {
        "a": [1.0, 2.5, None],
        "c": [None, 3.0, None],
        "b": ["x", None, None],
    }


def test_list_of_dicts_with_the_same_keys_is_one_block() -> None:
    rows = [{"a": i, "b": i * 0.5} for i in range(5)]
    frame = roundtrip(capture_inputs(rows))
    assert len(frame.columns) == 1
    np.testing.assert_array_equal(frame.columns[0].values, [[i, i * 0.5] for i in range(5)])


class RowMapping(dict):  # type: ignore[type-arg]
    """A row that is not exactly a dict: always captured by the general, row-by-row path."""


NAN = float("nan")


class FloatSubclass(float):
    """A float that marshal writes as something else (it takes exact built-in types only)."""


@pytest.mark.parametrize(
    ("rows", "exclude"),
    [
        ([{"a": 0.5 * i, "b": -1.25 * i, "c": 3.0} for i in range(50)], None),
        ([{"a": i, "b": 2 * i} for i in range(5)], None),  # ints only
        ([{"a": True, "b": False}, {"a": False, "b": True}], None),  # bools only
        ([{"a": 1, "b": 2.5, "c": True}, {"a": 2.5, "b": 7, "c": False}], None),
        ([{"a": 1.0, "b": None}, {"a": None, "b": 2.0}], None),  # missing values
        ([{"a": None}, {"a": None}], None),  # a column of missing values only
        ([{"a": NAN, "b": 1.0}, {"a": 2.0, "b": NAN}], None),
        ([{"a": np.float64(1.5), "b": np.float32(2.5), "c": np.int64(3)}] * 3, None),
        ([{"a": 1.0, "b": 2.0}, {"b": 3.0, "a": 4.0}], None),  # keys in another order
        ([{"a": 1.0, "b": 2.0}, {"a": 3.0, "c": 4.0}], None),  # same length, other keys
        ([{"a": 1.0, "b": 2.0}, {"a": 3.0}], None),  # a key missing
        ([{"a": 1.0, "b": "x"}, {"a": 3.0, "b": "y"}], None),  # strings
        ([{"a": 1.0, "b": "2.5"}, {"a": 3.0, "b": 4.0}], None),  # a number in a string
        ([{"a": 1.0, "b": [1.0, 2.0]}, {"a": 3.0, "b": [3.0, 4.0]}], None),  # sequences
        ([{"a": [1.0, 2.0], "b": [3.0, 4.0]}] * 2, None),  # sequences only
        ([{"a": 2**70, "b": 1.0}] * 2, None),  # an integer beyond int64
        ([{"a": 1.0, "b": complex(1, 2)}] * 2, None),
        ([{"a": 1.0, "b": np.int32(2)}] * 2, None),  # other numpy scalars
        ([{"a": 1.0, "": 2.0}] * 2, None),  # an empty name
        # What columns.float_block reads from marshal's bytes, and what it must leave alone.
        ([{"a": -(2**31), "b": 2**31 - 1, "c": 0.25}] * 3, None),  # int32's ends
        ([{"a": 2**31, "b": 1.0}] * 2, None),  # an int beyond 32 bits
        ([{"a": 2**40, "b": -(2**62)}] * 2, None),  # ints within int64 only
        ([{"a": 1.0, "b": 2}, {"a": 3, "b": 4.0}], None),  # kinds swap, rows of one length
        ([{"a": 1, "b": 2.0}, {"a": 1.5, "b": 3.0}], None),  # an int column turns float
        ([{"a": True, "b": 1.0}, {"a": 1, "b": 2.0}], None),  # a bool column turns int
        ([{"a": 1.0, "b": 2.0}] * 3 + [{"a": None, "b": 1.0}], None),  # None in the last row
        ([{"a": 1.0, "b": 2.0}] * 3 + [{"a": "x", "b": 1.0}], None),  # a string, last row
        ([{"a": float("inf"), "b": -0.0, "c": float("-inf")}] * 2, None),
        ([{"a": Decimal("1.5"), "b": 1.0}] * 2, None),  # marshal refuses it
        ([{"a": 1.0, "b": 2.0}, {"a": Decimal("1.5"), "b": 1.0}], None),
        ([{"a": FloatSubclass(1.5), "b": 1.0}] * 2, None),
        ([{"a": np.array(1.5), "b": 1.0}] * 2, None),  # a 0-d array: a number
        ([{"a": np.array([1.5]), "b": 1.0}] * 2, None),  # a 1-value array: a sequence
        ([{"a": (1.0,), "b": 2.0}] * 2, None),  # a tuple value
        ([{"a": b"12345678", "b": 2.0}] * 2, None),  # bytes
        ([{1: 1.0, 2: 2.0}] * 2, None),  # names that are not strings
        ([{"id": "r1", "a": 1.0, "b": 2.0}, {"id": "r2", "a": 3.0, "b": 4.0}], "id"),
        ([{"id": "r1", "a": 1.0}, {"a": 3.0, "b": 4.0}], "id"),  # the id field missing
        ([{"id": "r1"}, {"id": "r2"}], "id"),  # nothing but ids
        ([{"a": 1.0, "b": 2.0}] * 3, "id"),  # no id field at all
    ],
)
def test_list_of_dicts_the_fast_path_makes_the_general_paths_frame(
    rows: list[dict[object, object]], exclude: str | None
) -> None:
    fast = capture_inputs(rows, exclude=exclude)
    general = capture_inputs([RowMapping(row) for row in rows], exclude=exclude)
    assert fast.problems == general.problems
    if general.frame is None:
        assert fast.frame is None
    else:
        assert fast.frame is not None
        assert encode_frame(fast.frame) == encode_frame(general.frame)


def test_mixed_numbers_and_strings_become_categorical() -> None:
    frame = roundtrip(capture_inputs([{"zip": 75001}, {"zip": "2A004"}, {"zip": None}]))
    assert values(frame) == {"zip": ["75001", "2A004", None]}


def test_list_valued_fields_across_rows_become_a_wide_block() -> None:
    rows = [{"v": [1.0, 2.0], "k": 1}, {"v": None, "k": 2}]
    frame = roundtrip(capture_inputs(rows))
    assert values(frame) == {"k": [1.0, 2.0], "v[0]": [1.0, None], "v[1]": [2.0, None]}


def test_2d_array_without_names_is_block_x() -> None:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    frame = roundtrip(capture_inputs(x))
    (block,) = frame.columns
    assert isinstance(block, NumericBlock) and block.values.dtype == np.float32
    assert block.feature_names() == ("x[0]", "x[1]")
    np.testing.assert_array_equal(block.values, x)


def test_2d_array_with_feature_names() -> None:
    x = np.array([[1, 2, 3], [4, 5, 6]])
    frame = roundtrip(capture_inputs(x, feature_names=["a", "b", "c"]))
    assert values(frame) == {"a": [1.0, 4.0], "b": [2.0, 5.0], "c": [3.0, 6.0]}


def test_feature_names_of_the_wrong_length_are_reported_not_raised() -> None:
    captured = capture_inputs(np.zeros((2, 3)), feature_names=["a", "b"])
    assert block(roundtrip(captured).columns[0]).feature_names() == ("x[0]", "x[1]", "x[2]")
    assert "2 feature_names for 3 input columns" in captured.problems[0]


def test_1d_vector_is_one_row() -> None:
    for vector in ([1.0, 2.0, 3.0], np.array([1.0, 2.0, 3.0]), (1, 2, 3)):
        frame = roundtrip(capture_inputs(vector, feature_names=["a", "b", "c"]))
        assert frame.rows == 1 and values(frame) == {"a": [1.0], "b": [2.0], "c": [3.0]}


def test_list_of_lists_mixed_types_keeps_numbers_numeric() -> None:
    rows = [[1.5, "red", None], [2.5, "blue", 4]]
    frame = roundtrip(capture_inputs(rows))
    assert values(frame) == {"x[0]": [1.5, 2.5], "x[2]": [None, 4.0], "x[1]": ["red", "blue"]}


def test_images_are_flattened_per_row() -> None:
    images = np.random.default_rng(0).random((4, 28, 28))
    frame = roundtrip(capture_inputs(images))
    (column,) = frame.columns
    assert block(column).values.shape == (4, 784)
    np.testing.assert_array_equal(block(column).values, images.reshape(4, 784))


def test_dataframe_numeric_block_and_categoricals() -> None:
    df = pd.DataFrame(
        {
            "age": [30, 40],
            "score": [0.5, np.nan],
            "nullable": pd.array([1, None], dtype="Int64"),
            "city": ["Paris", None],
            "tier": pd.Categorical(["gold", "silver"]),
            "flag": [True, False],
        }
    )
    frame = roundtrip(capture_inputs(df))
    assert values(frame) == {
        "age": [30.0, 40.0],
        "score": [0.5, None],
        "nullable": [1.0, None],
        "flag": [1.0, 0.0],
        "city": ["Paris", None],
        "tier": ["gold", "silver"],
    }


def test_dataframe_of_numbers_only_is_converted_whole() -> None:
    df = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "x": [0.5, np.nan, 2.0],
            "nullable": pd.array([1, None, 3], dtype="Int64"),
            "flag": [True, False, True],
        }
    )
    frame = roundtrip(capture_inputs(df))
    assert values(frame) == {
        "n": [1.0, 2.0, 3.0],
        "x": [0.5, None, 2.0],
        "nullable": [1.0, None, 3.0],
        "flag": [1.0, 0.0, 1.0],
    }
    assert len(frame.columns) == 1
    excluded = roundtrip(capture_inputs(df, exclude="n"))
    assert list(excluded.features()) == ["x", "nullable", "flag"]


def test_dataframe_categories_stay_categorical_even_of_numbers() -> None:
    df = pd.DataFrame({"tier": pd.Categorical([1, 2, None]), "x": [1.0, 2.0, 3.0]})
    frame = roundtrip(capture_inputs(df))
    assert values(frame) == {"x": [1.0, 2.0, 3.0], "tier": ["1", "2", None]}
    assert isinstance(frame.features()["tier"], CategoricalColumn)


def test_dataframe_datetime_column_is_left_out_and_reported() -> None:
    df = pd.DataFrame({"a": [1.0], "when": [datetime(2024, 1, 1)]})
    captured = capture_inputs(df)
    assert values(roundtrip(captured)) == {"a": [1.0]}
    assert "'when' is a datetime64" in captured.problems[0]


def test_pandas_is_not_imported_for_non_dataframe_inputs() -> None:
    # The check is by type name, so capture works (and stays cheap) without pandas loaded.
    assert "pandas" in sys.modules  # this test module imported it
    import inferwatch.capture as capture

    assert "pandas" not in capture.__dict__
    with open(capture.__file__) as source:
        assert "import pandas" not in source.read()


def test_series_pd_na_and_array_like_inputs() -> None:
    series = pd.Series({"a": 1.0, "b": "x"})
    assert values(roundtrip(capture_inputs(series))) == {"a": [1.0], "b": ["x"]}
    mixed = pd.DataFrame({"c": pd.array(["u", pd.NA], dtype="string")})
    assert values(roundtrip(capture_inputs(mixed))) == {"c": ["u", None]}

    class Tensor:  # anything with __array__, as torch tensors have
        def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
            return np.array([[1.0, 2.0], [3.0, 4.0]])

    assert count_rows(Tensor()) == 2
    assert values(roundtrip(capture_inputs(Tensor()))) == {
        "x[0]": [1.0, 3.0],
        "x[1]": [2.0, 4.0],
    }


def test_scalar_and_string_inputs_are_one_row() -> None:
    assert values(roundtrip(capture_inputs(3.5))) == {"x": [3.5]}
    assert values(roundtrip(capture_inputs("hello"))) == {"x": ["hello"]}
    assert values(roundtrip(capture_inputs(np.float32(2.0)))) == {"x": [2.0]}
    assert values(roundtrip(capture_inputs(None))) == {"x": [None]}


def test_exclude_leaves_the_id_field_out() -> None:
    frame = roundtrip(capture_inputs([{"id": "a", "x": 1}, {"id": "b", "x": 2}], exclude="id"))
    assert values(frame) == {"x": [1.0, 2.0]}
    frame = roundtrip(capture_inputs(pd.DataFrame({"id": [1, 2], "x": [3, 4]}), exclude="id"))
    assert values(frame) == {"x": [3.0, 4.0]}


def test_missing_id_field_is_reported() -> None:
    captured = capture_inputs({"x": 1.0}, exclude="request_id")
    assert values(roundtrip(captured)) == {"x": [1.0]}
    assert "id_from field 'request_id' is missing" in captured.problems[0]


def test_unsupported_values_are_left_out_with_a_reason_not_a_value() -> None:
    secret = "s3cr3t-value"
    captured = capture_inputs({"ok": 1.0, "when": datetime(2024, 1, 1), "nested": {"a": secret}})
    assert values(roundtrip(captured)) == {"ok": [1.0]}
    assert "'when' holds a datetime value" in captured.problems
    assert all(secret not in problem for problem in captured.problems)


def test_ragged_rows_and_unknown_objects_give_no_frame() -> None:
    assert capture_inputs([[1, 2], [3]]).frame is None
    captured = capture_inputs(object())
    assert captured.frame is None and captured.problems == ("inputs of type object",)


def test_name_clash_between_a_key_and_a_wide_block_drops_one() -> None:
    captured = capture_inputs({"v[0]": 1.0, "v": [2.0, 3.0]})
    frame = roundtrip(captured)  # decode_frame rejects a repeated column: this must not
    assert values(frame) == {"v[0]": [1.0]}
    assert "'v' repeats a column name" in captured.problems[0]


def test_more_than_128_features() -> None:
    row = {f"f{j}": float(j) for j in range(300)}
    frame = roundtrip(capture_inputs(row))
    assert values(frame) == {f"f{j}": [float(j)] for j in range(300)}


@pytest.mark.parametrize(
    ("inputs", "rows"),
    [
        ({"a": 1}, 1),
        ([{"a": 1}, {"a": 2}], 2),
        ([1.0, 2.0], 1),
        ([[1.0], [2.0], [3.0]], 3),
        (np.zeros(5), 1),
        (np.zeros((4, 2)), 4),
        (np.zeros((3, 8, 8)), 3),
        (pd.DataFrame({"a": range(6)}), 6),
        ([], 0),
        (None, 1),
        ("text", 1),
    ],
)
def test_count_rows_matches_the_captured_frame(inputs: object, rows: int) -> None:
    assert count_rows(inputs) == rows
    captured = capture_inputs(inputs)
    assert captured.frame is not None and captured.frame.rows == rows


# -- outputs ----------------------------------------------------------------------------------


def test_scalar_outputs() -> None:
    assert values(roundtrip(capture_outputs(0.25, rows=1))) == {"prediction": [0.25]}
    assert values(roundtrip(capture_outputs(np.int64(2), rows=1))) == {"prediction": [2.0]}
    assert values(roundtrip(capture_outputs(True, rows=1))) == {"prediction": [1.0]}
    assert values(roundtrip(capture_outputs("cat", rows=1))) == {"prediction": ["cat"]}


def test_output_columns_have_the_output_role() -> None:
    frame = roundtrip(capture_outputs([1.0, 2.0], rows=2))
    assert all(column.role == "output" for column in frame.columns)


def test_1d_outputs_numeric_and_labels() -> None:
    assert values(roundtrip(capture_outputs(np.array([1, 0, 1]), rows=3))) == {
        "prediction": [1.0, 0.0, 1.0]
    }
    assert values(roundtrip(capture_outputs(["a", "b"], rows=2))) == {"prediction": ["a", "b"]}
    assert values(roundtrip(capture_outputs([1.5, None], rows=2))) == {"prediction": [1.5, None]}


def test_probabilities_named_by_classes_with_argmax_prediction() -> None:
    proba = np.array([[0.1, 0.9], [0.8, 0.2], [np.nan, np.nan]])
    frame = roundtrip(capture_outputs(proba, rows=3, task="classification", classes=["no", "yes"]))
    assert values(frame) == {
        "prediction": ["yes", "no", None],
        "proba[no]": [0.1, 0.8, None],
        "proba[yes]": [0.9, 0.2, None],
    }
    # The collector reads the first output column as the prediction.
    assert frame.columns[0].name == "prediction"


def test_probabilities_without_classes_predict_the_index() -> None:
    proba = np.array([[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]])
    frame = roundtrip(capture_outputs(proba, rows=2, task="classification"))
    assert values(frame)["prediction"] == [1.0, 0.0]
    assert values(frame)["proba[2]"] == [0.3, 0.1]


def test_numeric_classes_give_a_numeric_prediction() -> None:
    proba = np.array([[0.2, 0.8]])
    frame = roundtrip(capture_outputs(proba, rows=1, task="classification", classes=[3, 7]))
    assert values(frame)["prediction"] == [7.0]


def test_classes_of_the_wrong_length_are_reported() -> None:
    captured = capture_outputs(np.ones((2, 3)), rows=2, task="classification", classes=["a"])
    assert values(roundtrip(captured))["proba[0]"] == [1.0, 1.0]
    assert "3 columns but 1 classes" in captured.problems[0]


def test_one_row_probability_vector() -> None:
    frame = roundtrip(capture_outputs([0.3, 0.7], rows=1, task="classification"))
    assert values(frame) == {"prediction": [1.0], "proba[0]": [0.3], "proba[1]": [0.7]}


def test_multi_output_regression() -> None:
    y = np.array([[1.0, 10.0], [2.0, 20.0]])
    frame = roundtrip(capture_outputs(y, rows=2, task="regression"))
    assert values(frame) == {"prediction[0]": [1.0, 2.0], "prediction[1]": [10.0, 20.0]}


def test_dict_of_named_outputs() -> None:
    outputs = {"label": ["a", "b"], "score": np.array([0.1, 0.2]), "proba": [[0.9, 0.1], [0, 1]]}
    frame = roundtrip(capture_outputs(outputs, rows=2, classes=["a", "b"]))
    assert values(frame) == {
        "label": ["a", "b"],
        "score": [0.1, 0.2],
        "proba[a]": [0.9, 0.0],
        "proba[b]": [0.1, 1.0],
    }


def test_list_of_dict_outputs() -> None:
    frame = roundtrip(
        capture_outputs([{"label": "a", "p": 0.5}, {"label": "b", "p": 0.25}], rows=2)
    )
    assert values(frame) == {"label": ["a", "b"], "p": [0.5, 0.25]}


def test_dataframe_and_series_outputs() -> None:
    assert values(roundtrip(capture_outputs(pd.Series([1.0, 2.0]), rows=2))) == {
        "prediction": [1.0, 2.0]
    }
    frame = roundtrip(capture_outputs(pd.DataFrame({"y": [1, 2], "c": ["a", "b"]}), rows=2))
    assert values(frame) == {"y": [1.0, 2.0], "c": ["a", "b"]}


def test_outputs_whose_rows_do_not_match_the_inputs_are_reported() -> None:
    captured = capture_outputs([1.0, 2.0, 3.0], rows=2)
    assert captured.frame is None and captured.problems == ("3 outputs for 2 input rows",)


def test_uncapturable_outputs_are_reported() -> None:
    class Opaque:
        pass

    captured = capture_outputs(Opaque(), rows=1)
    assert captured.frame is None and captured.problems == ("outputs of type Opaque",)
    assert capture_outputs(None, rows=1) == Captured(None)
