"""The machinery shared by input and output capture: classifying values and building columns.

A ColumnBuilder collects the columns of one frame and what had to be left out; problems name
columns and types only, never values.
"""

from __future__ import annotations

import marshal
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferwatch.frame import (
    CategoricalColumn,
    Column,
    Frame,
    NumericBlock,
    Role,
    categorical,
)

# The block holding every one-value numeric input feature (named columns, so the block's own
# name only shows in the frame header).
SCALARS_BLOCK = "features"

# Types taken as numbers at a glance (None: a missing number); other types are classified by
# value_kind.
NUMBER_TYPES = frozenset({int, float, bool, type(None), np.float64, np.float32, np.int64})
PLAIN_NUMBER_TYPES = frozenset({int, float, bool, np.float64, np.float32, np.int64})
NUMERIC_KINDS = frozenset("biuf")
# pandas' missing-value singletons, recognised by type name so that pandas is never imported.
MISSING_TYPE_NAMES = frozenset({"NAType", "NaTType"})
SEQUENCE_TYPES = (list, tuple, np.ndarray)


@dataclass(frozen=True, slots=True)
class Captured:
    frame: Frame | None
    problems: tuple[str, ...] = ()


def is_dataframe(value: object) -> bool:
    kind = type(value)
    return kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas")


def is_series(value: object) -> bool:
    kind = type(value)
    return kind.__name__ == "Series" and kind.__module__.startswith("pandas")


class ColumnBuilder:
    """Columns being collected for one frame, and what had to be left out."""

    def __init__(self, rows: int, role: Role) -> None:
        self.rows = rows
        self.role = role
        self.columns: list[Column] = []
        self.problems: list[str] = []
        # One-value numeric columns, merged into one block at the end (inputs only).
        self.scalar_names: list[str] = []
        self.scalar_values: list[np.ndarray] = []

    def numeric(self, name: str, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        if values.ndim == 1:
            values = values.reshape(-1, 1)
        elif values.ndim > 2:
            values = values.reshape(values.shape[0], -1)
        if values.shape[0] != self.rows:
            self.problems.append(f"{name!r} has {values.shape[0]} rows, expected {self.rows}")
            return
        if values.shape[1] == 0:
            self.problems.append(f"{name!r} is empty")
            return
        if values.dtype != np.float32:
            values = values.astype(np.float64, copy=False)
        self.columns.append(
            NumericBlock(name, values, tuple(names) if names is not None else None, self.role)
        )

    def scalar(self, name: str, values: np.ndarray) -> None:
        self.scalar_names.append(name)
        self.scalar_values.append(values)

    def one_number(self, name: str, values: np.ndarray) -> None:
        """A column of one number per row (1-D floats)."""
        if self.role == "feature":
            self.scalar(name, values)
        else:
            self.numeric(name, values)

    def categories(self, name: str, values: Sequence[object]) -> None:
        self.columns.append(categorical(name, values, self.role))

    def values(self, name: str, values: list[object]) -> None:
        """A column given as one Python value per row: numbers, strings, sequences, missing."""
        kinds = {value_kind(v) for v in values}
        kinds.discard("missing")
        if kinds <= {"number"}:
            self.one_number(name, np.array([to_float(v) for v in values], dtype=np.float64))
        elif kinds <= {"number", "text"}:
            # Mixed numbers and strings (or bools) are kept as categories; the collector's
            # data-quality checks see the mix.
            self.categories(name, [None if value_kind(v) == "missing" else v for v in values])
        elif kinds == {"sequence"}:
            self._sequences(name, values)
        else:
            types = sorted(
                {type(v).__name__ for v in values if value_kind(v) not in ("number", "text")}
            )
            self.problems.append(f"{name!r} holds {', '.join(types)} values")

    def _sequences(self, name: str, values: list[object]) -> None:
        arrays = [None if value_kind(v) == "missing" else np.asarray(v) for v in values]
        present = [a for a in arrays if a is not None]
        if any(a.dtype.kind not in NUMERIC_KINDS for a in present):
            self.problems.append(f"{name!r} holds sequences that are not all numbers")
            return
        widths = {a.size for a in present}
        if len(widths) != 1:
            self.problems.append(f"{name!r} holds sequences of different lengths {sorted(widths)}")
            return
        (width,) = widths
        block = np.full((len(values), width), np.nan)
        for i, a in enumerate(arrays):
            if a is not None:
                block[i] = a.ravel()
        self.numeric(name, block)

    def frame(self) -> Captured:
        columns = list(self.columns)
        if self.scalar_names:
            block = np.column_stack(self.scalar_values)
            columns.insert(0, NumericBlock(SCALARS_BLOCK, block, tuple(self.scalar_names)))
        return Captured(Frame(self.rows, _unique(columns, self.problems)), tuple(self.problems))


def _unique(columns: list[Column], problems: list[str]) -> tuple[Column, ...]:
    """The columns without name clashes (a frame must not hold a feature twice)."""
    if len(columns) == 1 and (
        isinstance(columns[0], CategoricalColumn)
        or columns[0].names is None
        or len(set(columns[0].names)) == columns[0].width
    ):
        return tuple(columns)
    seen: set[str] = set()
    kept: list[Column] = []
    for column in columns:
        names = column.feature_names() if isinstance(column, NumericBlock) else (column.name,)
        if seen.isdisjoint(names) and len(set(names)) == len(names):
            seen.update(names)
            kept.append(column)
        else:
            problems.append(f"{column.name!r} repeats a column name; left out")
    return tuple(kept)


def value_kind(value: object) -> str:
    kind = type(value)
    if kind in NUMBER_TYPES:
        return "missing" if value is None else "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, np.generic):
        if isinstance(value, np.number | np.bool_) and not isinstance(value, np.complexfloating):
            return "number"
        return "text" if isinstance(value, np.str_ | np.bytes_) else "other"
    if isinstance(value, SEQUENCE_TYPES):
        return "number" if isinstance(value, np.ndarray) and value.ndim == 0 else "sequence"
    if kind.__name__ in MISSING_TYPE_NAMES:
        return "missing"
    if isinstance(value, numbers.Real):
        return "number"
    return "other"


def to_float(value: object) -> float:
    if value is None:
        return float("nan")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def column_name(key: object) -> str | None:
    name = key if isinstance(key, str) else str(key)
    return name or None


def dataframe_columns(frame: Any, exclude: str | None, role: Role) -> Captured:
    builder = ColumnBuilder(len(frame), role)
    numeric_names: list[str] = []
    numeric_columns: list[Any] = []
    for key, dtype in zip(frame.columns.tolist(), frame.dtypes.tolist(), strict=True):
        name = column_name(key)
        if name is None:
            builder.problems.append("a column with an empty name")
        elif name == exclude:
            continue
        elif role == "feature" and _is_numbers(dtype):
            numeric_names.append(name)
            numeric_columns.append(key)
        else:
            add_series(builder, name, frame[key])
    if numeric_names:
        # A frame of numbers only is converted whole: selecting its columns would cost ~20x
        # more than converting them (a view when the frame holds one float64 block).
        numbers = frame if len(numeric_columns) == frame.shape[1] else frame[numeric_columns]
        block = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        builder.columns.insert(0, NumericBlock(SCALARS_BLOCK, block, tuple(numeric_names)))
    return builder.frame()


def add_series(builder: ColumnBuilder, name: str, series: Any) -> None:
    """One pandas column (a Series): numbers, categories, or values classified one by one."""
    dtype = series.dtype
    if _is_numbers(dtype):
        builder.one_number(name, series.to_numpy(dtype=np.float64, na_value=np.nan))
    elif _is_categories(dtype):
        # Declared categories stay categories, even when they are numbers.
        builder.categories(name, series.tolist())
    elif getattr(dtype, "kind", "O") in "mM":
        builder.problems.append(f"{name!r} is a {dtype} column")
    else:
        builder.values(name, series.tolist())


def _is_categories(dtype: object) -> bool:
    # By type name (pandas is never imported); dtype.name would cost ~10x more.
    return type(dtype).__name__ == "CategoricalDtype"


def _is_numbers(dtype: object) -> bool:
    return getattr(dtype, "kind", "O") in NUMERIC_KINDS and not _is_categories(dtype)


# -- rows of plain numbers, through marshal's bytes (issue 15) --------------------------------
#
# A batch of row dicts holds 20,000 Python objects for 1,000 rows of 20 features; converting them
# with ``np.array`` (which also finds out what they are) costs ~0.5 ms, and checking their types
# one by one as much again. ``marshal`` does both in one C pass at ~14 ns a value: it writes an
# exact float as the code ``g`` and its 8 bytes, an int that fits in 32 bits as ``i`` and 4 bytes,
# True and False as ``T`` and ``F``, and refuses (ValueError) an object that is not of an exact
# built-in type (a Decimal, a custom number); a subclass of float, a numpy scalar or an array
# comes out as another code. When every row is laid out as the first one is (the same codes at
# the same places, which numpy checks for all rows at once), the values are read in place.
# Version 2 of the format: it has binary floats and no back-references, so a value's bytes never
# depend on where else the same object appears.

# A marshalled list or tuple starts with its type code and its length (int32), then its items.
_MARSHAL_HEAD = 5
_M_FLOAT, _M_INT, _M_TRUE, _M_FALSE = b"g"[0], b"i"[0], b"T"[0], b"F"[0]
# The bytes a value takes, code included, by its code.
_MARSHAL_SIZES = {_M_FLOAT: 9, _M_INT: 5, _M_TRUE: 1, _M_FALSE: 1}
_MARSHAL_VERSION = 2


def float_block(rows: list[tuple[object, ...]], width: int) -> np.ndarray | None:
    """``rows`` (tuples of ``width`` values) as a (rows, width) float64 array, or None.

    Only when every value is an exact float, an int within 32 bits or a bool, and every column
    holds one kind of them in all rows (a column of bools may hold either): what ``np.array``
    would make of the same values, in other cases None (anything else is the caller's to
    convert).
    """
    count = len(rows)
    if not count or width < 1:
        return None
    try:
        blob = marshal.dumps(rows, _MARSHAL_VERSION)
    except ValueError:  # an object marshal does not write: not a plain number
        return None
    layout = _marshalled_layout(blob, width)
    if layout is None:
        return None
    offsets, codes, row_bytes = layout
    if len(blob) != _MARSHAL_HEAD + count * row_bytes:
        return None
    # Each row's own head ("(" and its length) and its values' codes are checked where the
    # first row has them: with each value's size given by its code, a row that passes is laid
    # out exactly as the first, so the next row starts where the first row's layout says.
    if all(code == _M_FLOAT for code in codes):
        return _marshalled_floats(blob, count, width, row_bytes)
    return _marshalled_mixed(blob, count, offsets, codes, row_bytes)


def _marshalled_floats(blob: bytes, count: int, width: int, row_bytes: int) -> np.ndarray | None:
    """Rows of floats only: the codes and the values are equally spaced, so each is one
    strided view over all the rows."""
    heads = np.ndarray((count, 1), "<u1", blob, _MARSHAL_HEAD, (row_bytes, 1))
    lengths = np.ndarray((count, 1), "<i4", blob, _MARSHAL_HEAD + 1, (row_bytes, 1))
    codes = np.ndarray((count, width), "<u1", blob, 2 * _MARSHAL_HEAD, (row_bytes, 9))
    if not ((heads == b"("[0]).all() and (lengths == width).all() and (codes == _M_FLOAT).all()):
        return None
    values = np.ndarray((count, width), "<f8", blob, 2 * _MARSHAL_HEAD + 1, (row_bytes, 9))
    return values.astype(np.float64)


def _marshalled_mixed(
    blob: bytes, count: int, offsets: list[int], codes: list[int], row_bytes: int
) -> np.ndarray | None:
    table = np.frombuffer(blob, dtype=np.uint8, offset=_MARSHAL_HEAD).reshape(count, row_bytes)
    if not (table[:, :_MARSHAL_HEAD] == table[0, :_MARSHAL_HEAD]).all():
        return None
    found = table[:, offsets]
    expected = np.array(codes, dtype=np.uint8)
    matches = found == expected
    bools = np.flatnonzero((expected == _M_TRUE) | (expected == _M_FALSE))
    if bools.size:
        either = found[:, bools]
        matches[:, bools] = (either == _M_TRUE) | (either == _M_FALSE)
    if not matches.all():
        return None
    block = np.empty((count, len(codes)), dtype=np.float64)
    for column, (offset, code) in enumerate(zip(offsets, codes, strict=True)):
        if code == _M_FLOAT:
            block[:, column] = np.ndarray(
                (count,), "<f8", blob, _MARSHAL_HEAD + offset + 1, (row_bytes,)
            )
        elif code == _M_INT:
            block[:, column] = np.ndarray(
                (count,), "<i4", blob, _MARSHAL_HEAD + offset + 1, (row_bytes,)
            )
        else:
            block[:, column] = found[:, column] == _M_TRUE
    return block


def _marshalled_layout(blob: bytes, width: int) -> tuple[list[int], list[int], int] | None:
    """The first row's layout: where each value's code is in the row, the codes, the row's
    length in bytes; None when a value is not a plain number."""
    first = _MARSHAL_HEAD  # the first row, after the list's own head
    if blob[first : first + _MARSHAL_HEAD] != b"(" + width.to_bytes(4, "little"):
        return None
    at = _MARSHAL_HEAD
    offsets: list[int] = []
    codes: list[int] = []
    for _ in range(width):
        if first + at >= len(blob):
            return None
        code = blob[first + at]
        size = _MARSHAL_SIZES.get(code)
        if size is None:
            return None
        offsets.append(at)
        codes.append(code)
        at += size
    return offsets, codes, at
