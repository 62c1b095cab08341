"""Reading a reference dataset from a file: CSV, Parquet or a NumPy .npy array.

Each reader returns a ``Dataset``: feature columns by name, plus the prediction and label columns
when asked for, ready for ``inferwatch.set_reference``. Numeric columns become float arrays (NaN
for missing values); any other column stays strings (None for missing values).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inferwatch.capture import ARRAY_BLOCK

SUFFIXES = (".csv", ".parquet", ".npy")
# Cells read as missing in a CSV file.
CSV_MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL"})

Column = np.ndarray


class DataFileError(ValueError):
    """The file cannot be read as a reference dataset; the message says why."""


@dataclass(frozen=True)
class Dataset:
    # Feature columns by name (1-D), or one 2-D array of all features (``.npy`` without names).
    features: dict[str, Column] | np.ndarray
    predictions: Column | None
    labels: Column | None
    rows: int


def read_dataset(
    path: str | Path,
    *,
    label_column: str | None = None,
    prediction_column: str | None = None,
    feature_names: list[str] | None = None,
) -> Dataset:
    """Read ``path`` by its extension. For ``.npy``, columns are given by 0-based index."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{str(path)!r} does not exist or is not a file.")
    readers: dict[str, Callable[[Path], dict[str, Column]]] = {
        ".csv": _read_csv,
        ".parquet": _read_parquet,
    }
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path, label_column, prediction_column, feature_names)
    if suffix not in readers:
        raise DataFileError(
            f"{path.name!r} has an unknown extension; expected one of {', '.join(SUFFIXES)}."
        )
    if feature_names is not None:
        raise DataFileError(
            "feature names come from the file's header; --feature-names is for .npy"
        )
    columns = readers[suffix](path)
    extra = {"label": label_column, "prediction": prediction_column}
    picked: dict[str, Column | None] = {}
    for role, name in extra.items():
        if name is None:
            picked[role] = None
        elif name not in columns:
            raise DataFileError(
                f"the {role} column {name!r} is not in {path.name}; its columns are "
                f"{', '.join(columns)}."
            )
        else:
            picked[role] = columns.pop(name)
    if not columns:
        raise DataFileError(f"{path.name} has no feature columns left.")
    rows = len(next(iter(columns.values())))
    return Dataset(columns, picked["prediction"], picked["label"], rows)


def _read_csv(path: Path) -> dict[str, Column]:
    # Two passes: the first finds which columns are numeric, the second fills arrays of the
    # right type, so memory holds the arrays rather than every cell as a string.
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise DataFileError(f"{path.name} is empty; expected a header row of column names.")
        if len(set(header)) != len(header) or not all(header):
            raise DataFileError(f"{path.name}: column names must be non-empty and distinct.")
        numeric = [True] * len(header)
        rows = 0
        for row in reader:
            if len(row) != len(header):
                raise DataFileError(
                    f"{path.name} line {reader.line_num} has {len(row)} fields; "
                    f"the header has {len(header)}."
                )
            for j, cell in enumerate(row):
                if numeric[j] and cell not in CSV_MISSING and not _is_number(cell):
                    numeric[j] = False
            rows += 1
    if rows == 0:
        raise DataFileError(f"{path.name} has a header but no rows.")
    floats = {j: np.empty(rows) for j, is_numeric in enumerate(numeric) if is_numeric}
    strings = {
        j: np.empty(rows, dtype=object) for j, is_numeric in enumerate(numeric) if not is_numeric
    }
    interned: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader)
        for i, row in enumerate(reader):
            for j, values in floats.items():
                cell = row[j]
                values[i] = math.nan if cell in CSV_MISSING else float(cell)
            for j, objects in strings.items():
                cell = row[j]
                objects[i] = None if cell in CSV_MISSING else interned.setdefault(cell, cell)
    return {name: floats[j] if j in floats else strings[j] for j, name in enumerate(header)}


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_parquet(path: Path) -> dict[str, Column]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError(
            "reading Parquet needs pyarrow: pip install pyarrow (or use CSV or .npy)."
        ) from None
    import pyarrow as pa

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(f"{path.name} is not a readable Parquet file: {exc}") from None
    columns: dict[str, Column] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            values: Any = column.cast(pa.float64()).to_numpy()  # nulls become NaN
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values = np.array(column.to_pylist(), dtype=object)
        else:
            raise DataFileError(
                f"{path.name}: column {name!r} has type {column.type}; "
                "expected numbers, booleans or strings."
            )
        columns[str(name)] = values
    if table.num_rows == 0:
        raise DataFileError(f"{path.name} has no rows.")
    return columns


def _read_npy(
    path: Path,
    label_column: str | None,
    prediction_column: str | None,
    feature_names: list[str] | None,
) -> Dataset:
    try:
        # Memory-mapped: set_reference reads it a part at a time.
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DataFileError(f"{path.name} is not a readable .npy array: {exc}") from None
    if array.ndim != 2 or array.dtype.kind not in "biuf":
        raise DataFileError(
            f"{path.name} holds a {array.ndim}-D {array.dtype} array; expected a 2-D numeric "
            "array of rows by columns."
        )
    width = array.shape[1]
    extra = {
        "label": _column_index(label_column, width, "label"),
        "prediction": _column_index(prediction_column, width, "prediction"),
    }
    if extra["label"] is not None and extra["label"] == extra["prediction"]:
        raise DataFileError("the label and prediction columns must differ.")
    kept = [j for j in range(width) if j not in extra.values()]
    if not kept:
        raise DataFileError(f"{path.name} has no feature columns left.")
    if feature_names is not None and len(feature_names) != len(kept):
        raise DataFileError(
            f"--feature-names lists {len(feature_names)} names for {len(kept)} feature columns."
        )
    predictions, labels = (
        array[:, extra[role]] if extra[role] is not None else None
        for role in ("prediction", "label")
    )
    features: dict[str, Column] | np.ndarray
    if feature_names is None and len(kept) == width:
        features = array
    else:
        # Named as @monitor names the columns of the feature array it is given: x[0], x[1], ...
        names = feature_names or [f"{ARRAY_BLOCK}[{k}]" for k in range(len(kept))]
        # Column views of the memory map, not copies.
        features = {name: array[:, j] for name, j in zip(names, kept, strict=True)}
    return Dataset(features, predictions, labels, int(array.shape[0]))


def _column_index(value: str | None, width: int, role: str) -> int | None:
    if value is None:
        return None
    try:
        index = int(value)
    except ValueError:
        index = -1
    if not 0 <= index < width:
        raise DataFileError(
            f"for a .npy file the {role} column is a 0-based column index below {width}, "
            f"got {value!r}."
        )
    return index
