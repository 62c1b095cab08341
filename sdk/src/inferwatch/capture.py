"""Turning a model's inputs and outputs into Frames (see inferwatch.frame).

What each shape becomes is described in docs/span-contract.md. Capturing never raises on odd
data: what cannot be captured is left out and described in ``Captured.problems`` (column names
and types only, never values), which the recorder puts in ``inferwatch.capture_error``.
pandas is never imported here: a DataFrame is recognised by its type's module and name.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from inferwatch.columns import (
    NUMBER_TYPES,
    NUMERIC_KINDS,
    PLAIN_NUMBER_TYPES,
    SCALARS_BLOCK,
    SEQUENCE_TYPES,
    Captured,
    ColumnBuilder,
    add_series,
    column_name,
    dataframe_columns,
    float_block,
    is_dataframe,
    is_series,
    to_float,
    value_kind,
)
from inferwatch.frame import CategoricalColumn, Frame, NumericBlock, Role

# Unnamed array inputs are the features x[0], x[1], ...; outputs are "prediction" and, for a
# classifier's probabilities, "proba[<class>]".
ARRAY_BLOCK = "x"
PREDICTION = "prediction"
PROBA = "proba"


# -- rows and fields ------------------------------------------------------------------------------


def count_rows(inputs: object) -> int:
    """How many rows (predictions) ``inputs`` holds; 1 when the shape says nothing else."""
    if type(inputs) is dict:
        return 1
    if isinstance(inputs, Mapping) or inputs is None or isinstance(inputs, str | bytes):
        return 1
    if isinstance(inputs, np.ndarray):
        return int(inputs.shape[0]) if inputs.ndim >= 2 else 1
    if isinstance(inputs, list | tuple):
        if not inputs:
            return 0
        return len(inputs) if _is_row(inputs[0]) else 1
    if is_dataframe(inputs):
        return len(inputs)  # type: ignore[arg-type]
    shape = getattr(inputs, "shape", None)
    if isinstance(shape, tuple):
        return shape[0] if len(shape) >= 2 and isinstance(shape[0], int) else 1
    if hasattr(inputs, "__array__"):
        return count_rows(np.asarray(inputs))
    return 1


def field_values(inputs: object, name: str) -> list[object] | None:
    """The value of field ``name`` in each row, or None when some row lacks it."""
    if isinstance(inputs, Mapping):
        return [inputs[name]] if name in inputs else None
    if isinstance(inputs, list | tuple) and inputs and isinstance(inputs[0], Mapping):
        if all(isinstance(row, Mapping) and name in row for row in inputs):
            return [row[name] for row in inputs]
        return None
    if is_dataframe(inputs) and name in inputs.columns:  # type: ignore[attr-defined]
        return list(inputs[name].tolist())  # type: ignore[index]
    return None


def _is_row(value: object) -> bool:
    return isinstance(value, Mapping | list | tuple | np.ndarray)


# -- inputs ---------------------------------------------------------------------------------------


def capture_inputs(
    inputs: object,
    *,
    feature_names: Sequence[str] | None = None,
    exclude: str | None = None,
) -> Captured:
    """The input frame of one call. ``exclude`` names a field that is not a feature (the ids)."""
    problems: list[str] = []
    if exclude is not None and field_values(inputs, exclude) is None:
        problems.append(f"the id_from field {exclude!r} is missing; ids were generated")
    if isinstance(inputs, Mapping):
        captured = _one_row(inputs, exclude)
    elif isinstance(inputs, list | tuple):
        captured = _sequence(inputs, feature_names, exclude)
    elif isinstance(inputs, np.ndarray):
        captured = _array(inputs, feature_names)
    elif is_dataframe(inputs):
        captured = dataframe_columns(inputs, exclude, "feature")
    elif is_series(inputs):
        captured = _one_row(dict(zip(inputs.index, inputs.tolist(), strict=True)), exclude)  # type: ignore[attr-defined]
    elif inputs is None or value_kind(inputs) in ("number", "text"):
        captured = _one_row({ARRAY_BLOCK: inputs}, None)
    elif hasattr(inputs, "__array__"):
        captured = _array(np.asarray(inputs), feature_names)
    else:
        captured = Captured(None, (f"inputs of type {type(inputs).__name__}",))
    if problems:
        return Captured(captured.frame, (*problems, *captured.problems))
    return captured


def capture_columns(columns: Mapping[Any, Any], role: Role = "feature") -> Captured:
    """A dict of columns (arrays, lists or Series, one value per row each): named and typed as
    the same values are when they come row by row, as a list of row dicts."""
    lengths: dict[str, int] = {}
    named: list[tuple[str, Any]] = []
    problems: list[str] = []
    for key, values in columns.items():
        name = column_name(key)
        if name is None:
            problems.append("a column with an empty name")
        elif not (is_series(values) or isinstance(values, SEQUENCE_TYPES)):
            problems.append(f"column {name!r} is a {type(values).__name__}, not a column")
        elif isinstance(values, np.ndarray) and values.ndim == 0:
            problems.append(f"column {name!r} is a single value, not a column")
        else:
            named.append((name, values))
            lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        return Captured(None, (*problems, f"the columns differ in length: {lengths}"))
    builder = ColumnBuilder(next(iter(lengths.values()), 0), role)
    builder.problems.extend(problems)
    for name, values in named:
        if is_series(values):
            add_series(builder, name, values)
        elif isinstance(values, np.ndarray) and values.dtype.kind in NUMERIC_KINDS:
            if values.ndim == 1:
                builder.one_number(name, values.astype(np.float64, copy=False))
            else:
                # One sequence a row, like a row dict's list value: the columns name[0], ...
                builder.numeric(name, values)
        elif isinstance(values, np.ndarray) and values.ndim > 1:
            builder.problems.append(f"{name!r} is a {values.ndim}-D array of {values.dtype}")
        else:
            builder.values(
                name, values.tolist() if isinstance(values, np.ndarray) else list(values)
            )
    return builder.frame()


def _one_row(row: Mapping[Any, object], exclude: str | None) -> Captured:
    values = list(row.values())
    if (
        values
        and set(map(type, values)) <= NUMBER_TYPES
        and set(map(type, row)) == {str}
        and "" not in row
        and (exclude is None or exclude not in row)
    ):
        # The common single prediction, all numbers: one block, built in a few C calls.
        block = np.array(values, dtype=np.float64).reshape(1, -1)
        return Captured(Frame(1, (NumericBlock(SCALARS_BLOCK, block, tuple(row)),)))
    builder = ColumnBuilder(1, "feature")
    for key, value in row.items():
        name = column_name(key)
        if name is None:
            builder.problems.append("a field with an empty name")
        elif name == exclude:
            continue
        elif value_kind(value) == "sequence":
            array = np.asarray(value)
            if array.dtype.kind in NUMERIC_KINDS:
                builder.numeric(name, array.reshape(1, -1))
            else:
                builder.problems.append(f"{name!r} holds a sequence that is not all numbers")
        elif value_kind(value) in ("number", "missing", "text"):
            builder.values(name, [value])
        else:
            builder.problems.append(f"{name!r} holds a {type(value).__name__} value")
    return builder.frame()


def _sequence(
    inputs: list[Any] | tuple[Any, ...], feature_names: Sequence[str] | None, exclude: str | None
) -> Captured:
    if not inputs:
        return Captured(Frame(0, ()))
    first = inputs[0]
    if isinstance(first, Mapping):
        return _records(inputs, exclude)
    if isinstance(first, SEQUENCE_TYPES):
        return _table(inputs, feature_names)
    # A flat sequence of values is one row.
    return _table([inputs], feature_names)


def _records(rows: Sequence[Any], exclude: str | None) -> Captured:
    """A list of dicts: one column per key seen in any row; a row without it is missing."""
    numbers = _records_of_numbers(rows, exclude)
    if numbers is not None:
        return numbers
    if not all(isinstance(row, Mapping) for row in rows):
        return Captured(None, ("inputs mix dicts with other values",))
    keys = list(rows[0])
    same_keys = all(len(row) == len(keys) and list(row) == keys for row in rows)
    if not same_keys:
        keys = list({key: None for row in rows for key in row})
    if exclude is not None and exclude in keys:
        keys.remove(exclude)
    names = [column_name(k) for k in keys]
    if not keys:
        table: list[Any] = [() for _ in rows]
    elif same_keys and len(keys) > 1:
        table = list(map(itemgetter(*keys), rows))
    else:
        table = [[row.get(k) for k in keys] for row in rows]
    problems = ["a field with an empty name"] if None in names else []
    return _table(table, names, prefix_problems=problems, flat=True)


def _records_of_numbers(rows: Sequence[Any], exclude: str | None) -> Captured | None:
    """The common batch, dicts of the same keys holding numbers only, in C-level passes over
    the values (no Python code a row): ~0.6 ms for 1,000 rows of 20 plain floats and ints
    (columns.float_block), ~1 ms with None or numpy scalars among them. None when the rows
    are anything else; the frame is the one the general path makes of them (test_capture
    checks it)."""
    if set(map(type, rows)) != {dict}:
        return None
    keys = list(rows[0])
    width = len(keys)
    if set(map(len, rows)) != {width} or set(map(type, keys)) != {str} or "" in keys:
        return None
    if exclude in keys:
        # Each row holds the id field too (the same lengths and the other keys make the same
        # key set); its values are ids, not features.
        if not all(map(dict.__contains__, rows, itertools.repeat(exclude))):
            return None
        keys.remove(exclude)
    if not keys:
        return None
    try:
        # KeyError when a row lacks a key of the first: with the same lengths, every row has
        # the same keys.
        picked = list(map(itemgetter(*keys), rows))
    except KeyError:
        return None
    if len(keys) > 1:
        numbers = float_block(picked, len(keys))
        if numbers is not None:
            # Floats, ints and bools, a kind a column: converted straight from marshal's bytes.
            plain = NumericBlock(ARRAY_BLOCK, numbers, tuple(keys))
            return Captured(Frame(len(rows), (plain,)))
        values = list(itertools.chain.from_iterable(picked))
    else:
        values = picked
    # One pass that both converts and classifies: numbers (and bools) give a numeric dtype;
    # a string makes it a string dtype (the general path makes that column categorical), a
    # None or any other object the object dtype, and sequences another shape or an error.
    try:
        array = np.array(values)
    except (ValueError, TypeError, OverflowError):
        return None
    name = ARRAY_BLOCK  # a table of numbers is captured as an array is
    if array.dtype == object:
        types = set(map(type, values))
        if not types <= NUMBER_TYPES:
            return None
        array = np.fromiter(values, dtype=np.float64, count=len(values))
        # With a missing value the general path goes column by column, into the block of
        # one-value columns: the same numbers under that block's name.
        name = SCALARS_BLOCK
    if array.dtype.kind not in NUMERIC_KINDS or array.shape != (len(values),):
        return None
    block = array.reshape(len(rows), len(keys))
    return Captured(Frame(len(rows), (NumericBlock(name, block, tuple(keys)),)))


def _table(
    rows: Sequence[Any],
    feature_names: Sequence[str | None] | None,
    prefix_problems: list[str] | None = None,
    flat: bool = False,
) -> Captured:
    """Rows of values (lists, tuples or arrays): one numeric block when all are numbers.

    ``flat``: each row's values are separate fields (a dict's), so a value that is itself a
    sequence makes its own wide block instead of the rows being flattened as images.
    """
    try:
        array = np.asarray(rows)
    except ValueError:
        array = None  # ragged
    if (
        array is not None
        and array.dtype.kind in NUMERIC_KINDS
        and array.ndim >= 2
        and (array.ndim == 2 or not flat)
    ):
        captured = _array(array, feature_names)
    else:
        captured = _object_table(rows, feature_names)
    if prefix_problems:
        return Captured(captured.frame, (*prefix_problems, *captured.problems))
    return captured


def _object_table(rows: Sequence[Any], feature_names: Sequence[str | None] | None) -> Captured:
    widths = {len(row) if isinstance(row, SEQUENCE_TYPES) else -1 for row in rows}
    if len(widths) != 1 or -1 in widths:
        return Captured(None, ("input rows have different lengths",))
    (width,) = widths
    names = _column_names(width, feature_names)
    builder = ColumnBuilder(len(rows), "feature")
    if names is None:
        builder.problems.append(_names_mismatch(width, feature_names))
        names = [f"{ARRAY_BLOCK}[{j}]" for j in range(width)]
    for j, name in enumerate(names):
        if name is not None:
            builder.values(name, [row[j] for row in rows])
    return builder.frame()


def _array(array: np.ndarray, feature_names: Sequence[str | None] | None) -> Captured:
    if array.ndim <= 1:
        array = array.reshape(1, -1)
    rows = int(array.shape[0])
    if array.dtype.kind not in NUMERIC_KINDS:
        if array.ndim == 2 and array.dtype.kind in "OUS":
            return _object_table(array.tolist(), feature_names)
        return Captured(None, (f"inputs are an array of dtype {array.dtype}",))
    builder = ColumnBuilder(rows, "feature")
    names: Sequence[str | None] | None = None
    if feature_names is not None and array.ndim == 2:
        names = _column_names(array.shape[1], feature_names)
        if names is None:
            builder.problems.append(_names_mismatch(array.shape[1], feature_names))
    if names is not None and None not in names:
        builder.numeric(ARRAY_BLOCK, array, names)  # type: ignore[arg-type]
    elif names is not None:
        keep = [j for j, n in enumerate(names) if n is not None]
        builder.numeric(ARRAY_BLOCK, array[:, keep], [names[j] for j in keep])  # type: ignore[misc]
    else:
        builder.numeric(ARRAY_BLOCK, array)
    return builder.frame()


def _column_names(
    width: int, feature_names: Sequence[str | None] | None
) -> list[str | None] | None:
    if feature_names is None:
        return [f"{ARRAY_BLOCK}[{j}]" for j in range(width)]
    if len(feature_names) != width:
        return None
    return [None if n is None else column_name(n) for n in feature_names]


def _names_mismatch(width: int, feature_names: Sequence[object] | None) -> str:
    given = len(feature_names) if feature_names is not None else 0
    return f"{given} feature_names for {width} input columns; columns named by index"


# -- outputs --------------------------------------------------------------------------------------


def capture_outputs(
    outputs: object,
    *,
    rows: int | None,
    task: str | None = None,
    classes: Sequence[object] | None = None,
) -> Captured:
    """The output frame of one call whose inputs had ``rows`` rows (None: unknown)."""
    if outputs is None:
        return Captured(None)
    if type(outputs) in PLAIN_NUMBER_TYPES and (rows is None or rows == 1):
        value = np.array([[outputs]], dtype=np.float64)
        return Captured(Frame(1, (NumericBlock(PREDICTION, value, None, "output"),)))
    classify = task == "classification" or (task is None and classes is not None)
    if isinstance(outputs, Mapping):
        return _named_outputs(outputs, rows, classes)
    if is_dataframe(outputs):
        return dataframe_columns(outputs, None, "output")
    if is_series(outputs):
        outputs = outputs.to_numpy()  # type: ignore[attr-defined]
    if isinstance(outputs, list | tuple) and outputs and isinstance(outputs[0], Mapping):
        return _output_records(outputs)
    array = _as_array(outputs)
    if array is None:
        return Captured(None, (f"outputs of type {type(outputs).__name__}",))
    return _output_array(array, rows, classify, classes)


def _as_array(value: object) -> np.ndarray | None:
    kind = value_kind(value)
    if kind in ("number", "text", "missing"):
        return np.array([value], dtype=object if kind == "text" else np.float64)
    if kind == "sequence" or hasattr(value, "__array__"):
        try:
            array = np.asarray(value)
        except ValueError:
            return None
        if array.dtype.kind == "U" and isinstance(value, list | tuple):
            # Mixed numbers and strings: numpy would have made strings of the numbers.
            array = np.array(value, dtype=object)
        return array
    return None


def _output_array(
    array: np.ndarray, rows: int | None, classify: bool, classes: Sequence[object] | None
) -> Captured:
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 1 and rows is not None and len(array) != rows:
        if rows != 1:
            return Captured(None, (f"{len(array)} outputs for {rows} input rows",))
        array = array.reshape(1, -1)  # one row with several outputs (or probabilities)
    n = int(array.shape[0])
    if rows is not None and n != rows:
        return Captured(None, (f"{n} output rows for {rows} input rows",))
    builder = ColumnBuilder(n, "output")
    if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
        if array.dtype.kind in NUMERIC_KINDS:
            builder.numeric(PREDICTION, array.reshape(-1))
        else:
            builder.values(PREDICTION, array.reshape(-1).tolist())
    elif array.dtype.kind not in NUMERIC_KINDS:
        builder.problems.append(f"outputs are a {array.ndim}-D array of dtype {array.dtype}")
    elif classify and array.ndim == 2:
        _probabilities(builder, array, classes)
    else:
        builder.numeric(PREDICTION, array)
    return builder.frame()


def _probabilities(
    builder: ColumnBuilder, proba: np.ndarray, classes: Sequence[object] | None
) -> None:
    width = proba.shape[1]
    if classes is not None and len(classes) != width:
        builder.problems.append(
            f"probabilities have {width} columns but {len(classes)} classes were given; "
            "named by index"
        )
        classes = None
    values = proba.astype(np.float64, copy=False)
    missing = np.isnan(values)
    best = np.argmax(np.where(missing, -np.inf, values), axis=1)
    unknown = missing.all(axis=1)
    if classes is None or all(value_kind(c) == "number" for c in classes):
        labels = (
            np.arange(width, dtype=np.float64)
            if classes is None
            else np.array([to_float(c) for c in classes])
        )
        predicted = labels[best]
        predicted[unknown] = np.nan
        builder.numeric(PREDICTION, predicted)
    else:
        codes = best.astype(np.int32)
        codes[unknown] = -1
        categories = tuple(str(c) for c in classes)
        builder.columns.append(CategoricalColumn(PREDICTION, codes, categories, "output"))
    names = None if classes is None else [f"{PROBA}[{c}]" for c in classes]
    builder.numeric(PROBA, proba, names)


def _named_outputs(
    outputs: Mapping[Any, object], rows: int | None, classes: Sequence[object] | None
) -> Captured:
    arrays: list[tuple[str, np.ndarray]] = []
    problems: list[str] = []
    for key, value in outputs.items():
        name = column_name(key)
        array = _as_array(value)
        if name is None or array is None:
            problems.append(f"output {name!r} of type {type(value).__name__}")
            continue
        if array.ndim == 0:
            array = array.reshape(1)
        arrays.append((name, array))
    if rows is None:
        rows = arrays[0][1].shape[0] if arrays else 0
    builder = ColumnBuilder(rows, "output")
    builder.problems.extend(problems)
    for name, array in arrays:
        if array.shape[0] != rows:
            if rows == 1 and array.ndim == 1 and array.dtype.kind in NUMERIC_KINDS:
                array = array.reshape(1, -1)
            else:
                builder.problems.append(f"output {name!r} has {array.shape[0]} rows, not {rows}")
                continue
        if array.dtype.kind in NUMERIC_KINDS:
            width = int(np.prod(array.shape[1:], dtype=np.int64)) if array.ndim > 1 else 1
            names = None
            if classes is not None and width == len(classes) and width > 1:
                names = [f"{name}[{c}]" for c in classes]
            builder.numeric(name, array, names)
        elif array.ndim == 1:
            builder.values(name, array.tolist())
        else:
            builder.problems.append(f"output {name!r} is a {array.ndim}-D array of {array.dtype}")
    return builder.frame()


def _output_records(records: Sequence[Any]) -> Captured:
    if not all(isinstance(row, Mapping) for row in records):
        return Captured(None, ("outputs mix dicts with other values",))
    keys = list({key: None for row in records for key in row})
    builder = ColumnBuilder(len(records), "output")
    for key in keys:
        name = column_name(key)
        if name is None:
            builder.problems.append("an output with an empty name")
            continue
        builder.values(name, [row.get(key) for row in records])
    return builder.frame()
