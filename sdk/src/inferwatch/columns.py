"""The machinery shared by input and output capture: classifying values and building columns.

A ColumnBuilder collects the columns of one frame and what had to be left out; problems name
columns and types only, never values.
"""

from __future__ import annotations

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
