"""``Dataset``: the one input shape every detector works on, and ``as_dataset`` to build it.

Detectors accept a 2-D numpy array (with optional feature names), a pandas DataFrame (mixed
numeric and categorical columns), a dict of columns, an inferwatch ``Frame`` (the collector's
row reservoir) or a ``Dataset``. Numbers become one float64 matrix (NaN = missing); strings,
booleans and pandas categories become categorical columns coded like the frame codec's
``CategoricalColumn`` (int32 codes, -1 = missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferwatch.frame import CategoricalColumn, Frame, NumericBlock, Role, categorical

_CODES = np.dtype("<i4")


@dataclass(frozen=True)
class Dataset:
    """Rows of numeric features (one matrix) and categorical features (coded columns)."""

    numeric: np.ndarray  # (rows, n_numeric) float64, NaN = missing
    numeric_names: tuple[str, ...]
    categorical: tuple[CategoricalColumn, ...] = ()
    row_ids: np.ndarray | None = None  # 1-D object array, one id a row, or None
    # False for a bare array without feature_names: matched to a reference by position.
    named: bool = True

    @property
    def rows(self) -> int:
        return int(self.numeric.shape[0])

    @property
    def names(self) -> tuple[str, ...]:
        return self.numeric_names + tuple(c.name for c in self.categorical)

    @property
    def categorical_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categorical)

    def take(self, indices: np.ndarray) -> Dataset:
        """The rows at ``indices`` (repeats allowed: bootstrap samples), every column kept."""
        return Dataset(
            self.numeric[indices],
            self.numeric_names,
            tuple(
                CategoricalColumn(c.name, c.codes[indices], c.categories, c.role)
                for c in self.categorical
            ),
            None if self.row_ids is None else self.row_ids[indices],
            self.named,
        )

    def column(self, name: str) -> np.ndarray | CategoricalColumn:
        if name in self.numeric_names:
            return self.numeric[:, self.numeric_names.index(name)]
        for column in self.categorical:
            if column.name == name:
                return column
        raise KeyError(name)


def as_dataset(
    data: Any,
    *,
    feature_names: Sequence[str] | None = None,
    row_ids: Sequence[Any] | np.ndarray | None = None,
    role: Role = "feature",
    what: str = "data",
) -> Dataset:
    """Validate ``data`` into a Dataset; ValueError says what was expected.

    ``role`` picks the columns of a Frame (features, outputs or labels). ``what`` names the
    argument in error messages ("reference", "window").
    """
    if isinstance(data, Dataset):
        if feature_names is not None:
            raise ValueError(f"{what}: feature_names is for arrays; a Dataset names its columns")
        dataset = data
    elif isinstance(data, Frame):
        dataset = _from_frame(data, role, what)
    elif _is_dataframe(data):
        if feature_names is not None:
            raise ValueError(f"{what}: feature_names is for arrays; a DataFrame names its columns")
        dataset = _from_columns({str(k): data[k] for k in data.columns}, what)
    elif isinstance(data, Mapping):
        if feature_names is not None:
            raise ValueError(f"{what}: feature_names is for arrays; a dict names its columns")
        dataset = _from_columns(dict(data), what)
    else:
        dataset = _from_array(data, feature_names, what)
    if row_ids is not None:
        ids = np.asarray(row_ids, dtype=object)
        if ids.ndim != 1 or ids.shape[0] != dataset.rows:
            raise ValueError(
                f"{what}: row_ids must be 1-D with one id a row ({dataset.rows}), "
                f"got shape {ids.shape}"
            )
        dataset = Dataset(
            dataset.numeric, dataset.numeric_names, dataset.categorical, ids, dataset.named
        )
    return dataset


def _from_array(data: Any, names: Sequence[str] | None, what: str) -> Dataset:
    if isinstance(data, list | tuple) and data and isinstance(data[0], Mapping):
        raise ValueError(f"{what}: pass rows as a DataFrame or a dict of columns, not row dicts")
    array = np.asarray(data)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise ValueError(
            f"{what} must be a 2-D array (rows, features), a pandas DataFrame, a dict of columns "
            f"or a Frame; got a {array.ndim}-D {type(data).__name__}"
        )
    labels = _names(names, array.shape[1], what)
    if array.dtype.kind in "iuf":
        return Dataset(np.asarray(array, dtype=np.float64), labels, named=names is not None)
    return _from_columns({labels[j]: array[:, j] for j in range(array.shape[1])}, what)


def _names(names: Sequence[str] | None, width: int, what: str) -> tuple[str, ...]:
    if names is None:
        return tuple(f"x{j}" for j in range(width))
    labels = tuple(names)
    if len(labels) != width or not all(isinstance(n, str) and n for n in labels):
        raise ValueError(f"{what}: feature_names must be {width} non-empty strings, one a column")
    if len(set(labels)) != width:
        raise ValueError(f"{what}: feature_names has a name twice")
    return labels


def _from_columns(columns: dict[Any, Any], what: str) -> Dataset:
    if not columns:
        raise ValueError(f"{what} has no columns")
    numeric: list[np.ndarray] = []
    numeric_names: list[str] = []
    categoricals: list[CategoricalColumn] = []
    lengths: dict[str, int] = {}
    for key, values in columns.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{what}: column names must be non-empty strings, got {key!r}")
        kind, column = _column(key, values, what)
        lengths[key] = len(column) if kind == "numeric" else len(column.codes)  # type: ignore[arg-type, union-attr]
        if kind == "numeric":
            numeric.append(column)  # type: ignore[arg-type]
            numeric_names.append(key)
        else:
            categoricals.append(column)  # type: ignore[arg-type]
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{what}: columns differ in length: {lengths}")
    rows = next(iter(lengths.values()))
    matrix = np.column_stack(numeric) if numeric else np.empty((rows, 0))
    return Dataset(matrix, tuple(numeric_names), tuple(categoricals))


def _column(name: str, values: Any, what: str) -> tuple[str, np.ndarray | CategoricalColumn]:
    if isinstance(values, CategoricalColumn):
        return "categorical", values
    if _is_series(values):
        import pandas as pd

        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
            return "categorical", categorical(name, values.astype(object).tolist())
        if pd.api.types.is_numeric_dtype(dtype):
            return "numeric", values.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values.to_numpy(dtype=object)
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what}: column {name!r} must be 1-D, got shape {array.shape}")
    if array.dtype.kind in "iuf":
        return "numeric", array.astype(np.float64)
    if array.dtype.kind in "USb":
        return "categorical", categorical(name, array.tolist())
    if array.dtype.kind != "O":
        raise ValueError(
            f"{what}: column {name!r} has dtype {array.dtype}; expected numbers or text"
        )
    items = array.tolist()
    if all(v is None or (_is_number(v) and not isinstance(v, bool)) for v in items):
        return "numeric", np.array([np.nan if v is None else v for v in items], dtype=np.float64)
    for v in items:
        if not (v is None or isinstance(v, str | bool | np.bool_) or _is_number(v)):
            raise ValueError(
                f"{what}: column {name!r} holds a {type(v).__name__}; expected numbers or text"
            )
    return "categorical", categorical(name, items)


def _from_frame(frame: Frame, role: Role, what: str) -> Dataset:
    numeric: list[np.ndarray] = []
    names: list[str] = []
    categoricals: list[CategoricalColumn] = []
    for column in frame.columns:
        if column.role != role:
            continue
        if isinstance(column, NumericBlock):
            numeric.append(np.asarray(column.values, dtype=np.float64))
            names.extend(column.feature_names())
        else:
            categoricals.append(column)
    if not numeric and not categoricals:
        raise ValueError(f"{what}: the frame has no {role} columns")
    matrix = np.hstack(numeric) if numeric else np.empty((frame.rows, 0))
    return Dataset(matrix, tuple(names), tuple(categoricals))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.number)


def _is_dataframe(value: object) -> bool:
    # By module name, so pandas is imported only when the caller already uses it.
    return type(value).__module__.startswith("pandas") and type(value).__name__ == "DataFrame"


def _is_series(value: object) -> bool:
    return type(value).__module__.startswith("pandas") and type(value).__name__ == "Series"


def align(
    window: Dataset, reference_numeric: Sequence[str], reference_categorical: Sequence[str]
) -> Dataset:
    """``window`` restricted to the reference's features, in the reference's order.

    A bare numeric array (no feature names) as wide as an all-numeric reference is taken
    column by column in the reference's order. Raises ValueError naming the features the
    window lacks or has with another type.
    """
    if (
        not window.named
        and not reference_categorical
        and window.numeric.shape[1] == len(reference_numeric)
    ):
        return Dataset(window.numeric, tuple(reference_numeric), (), window.row_ids)
    numeric_missing = [n for n in reference_numeric if n not in window.numeric_names]
    categorical_missing = [n for n in reference_categorical if n not in window.categorical_names]
    if numeric_missing or categorical_missing:
        wrong_type = [
            n
            for n in (*numeric_missing, *categorical_missing)
            if n in window.numeric_names or n in window.categorical_names
        ]
        absent = [n for n in (*numeric_missing, *categorical_missing) if n not in wrong_type]
        parts = []
        if absent:
            parts.append(f"lacks the reference's features {absent}")
        if wrong_type:
            parts.append(f"has {wrong_type} with another type (numeric vs text) than the reference")
        hint = ""
        if not window.named:
            hint = (
                f"; it is an unnamed array of {window.numeric.shape[1]} columns: give it the "
                f"reference's {len(reference_numeric) + len(reference_categorical)} columns, "
                "or pass a DataFrame or dict of columns"
            )
        raise ValueError("the window " + " and ".join(parts) + hint)
    if tuple(reference_numeric) == window.numeric_names:
        matrix = window.numeric
    else:
        matrix = window.numeric[:, [window.numeric_names.index(n) for n in reference_numeric]]
    by_name = {c.name: c for c in window.categorical}
    return Dataset(
        matrix,
        tuple(reference_numeric),
        tuple(by_name[n] for n in reference_categorical),
        window.row_ids,
    )
