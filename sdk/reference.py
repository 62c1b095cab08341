"""Uploading a model version's reference data (training or validation set): ``set_reference``.

The data goes up in parts of ``chunk_rows`` rows, each a frame (see inferwatch.frame) whose
columns have the role feature, output (predictions) or label: start an upload, PUT every part
(retried; sending a part again replaces it), commit. A part is encoded only when it is sent, so a
million rows never become one request nor a second copy of the dataset in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from inferwatch import _http
from inferwatch.config import resolve_api_key, resolve_endpoint
from inferwatch.contract import TASKS, reference_uploads_path
from inferwatch.frame import (
    CONTENT_TYPE,
    CategoricalColumn,
    Frame,
    NumericBlock,
    Role,
    categorical,
    encode_frame,
)

DEFAULT_CHUNK_ROWS = 50_000
# The collector takes at most 64 MiB a part; the budget leaves room for headers and categories.
PART_BYTES_BUDGET = 48 * 2**20
DEFAULT_TIMEOUT = 60.0  # the commit computes the reference's summaries over every row
FEATURES_BLOCK = "features"
PREDICTION_COLUMN = "prediction"
LABEL_COLUMN = "label"

Progress = Callable[[int, int], object]


@dataclass(frozen=True, slots=True)
class ReferenceReport:
    """What the collector stored for the model version: ``rows`` rows of ``features``."""

    model: str
    version: str
    rows: int
    features: tuple[str, ...]
    parts: int
    upload_id: str


class ReferenceRejected(_http.RequestRejected):
    """The collector refused a step of a reference upload; ``step`` says which."""

    def __init__(self, status: int, message: str, *, step: str, url: str = "") -> None:
        super().__init__(status, message, what=f"the reference upload's {step}", url=url)
        self.step = step


def set_reference(
    model: str,
    version: str,
    features: Any,
    predictions: Any = None,
    labels: Any = None,
    *,
    task: str | None = None,
    feature_names: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    endpoint: str | None = None,
    api_key: str | None = None,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = _http.DEFAULT_MAX_RETRIES,
    backoff: float = _http.DEFAULT_BACKOFF,
) -> ReferenceReport:
    """Upload the reference data of ``model`` at ``version``, replacing any earlier one.

    ``features`` is a 2-D numpy array (name its columns with ``feature_names``), a dict of
    columns, a list of row dicts or a pandas DataFrame; numbers become numeric features and
    strings categorical ones. ``predictions`` (1-D, or 2-D class probabilities) and ``labels``
    (1-D) are optional and must have a row for each row of features. ``progress(rows_sent,
    total_rows)`` is called after each part. Raises ValueError for bad input,
    ReferenceRejected when the collector refuses a step and CollectorUnavailable when it
    cannot be reached through ``max_retries`` retries.
    """
    model, version = _name("model", model), _name("version", version)
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
    if not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    table = reference_table(features, predictions, labels, feature_names=feature_names)
    rows_per_part = table.rows_per_part(chunk_rows)
    policy = _http.RetryPolicy(max_retries=max_retries, backoff=backoff)
    url = resolve_endpoint(endpoint)
    path = reference_uploads_path(model, version)

    def attempts(step: str) -> _http.Attempts:
        def rejected(status: int, message: str) -> ReferenceRejected:
            return ReferenceRejected(status, message, step=step, url=url)

        return _http.Attempts(policy, f"the reference upload's {step}", url, rejected)

    with httpx.Client(**_http.client_options(url, resolve_api_key(api_key), timeout)) as client:
        start = client.build_request("POST", path, json={"task": task} if task else None)
        started = _http.json_object(_http.send(client, start, attempts("start")), "start")
        upload_id = started.get("upload_id")
        if not isinstance(upload_id, str) or not upload_id:
            raise _http.CollectorError(
                f"the collector at {url} started a reference upload without an upload_id: "
                f"{started!r:.200}"
            )
        upload_path = f"{path}/{upload_id}"
        parts = 0
        for part, (stop, frame) in enumerate(table.parts(rows_per_part)):
            step = f"part {part} (rows {stop - frame.rows} to {stop - 1} of {table.rows})"
            _put_part(client, f"{upload_path}/parts/{part}", frame, attempts(step))
            parts += 1
            if progress is not None:
                progress(stop, table.rows)
        commit = client.build_request("POST", f"{upload_path}/commit")
        summary = _http.json_object(_http.send(client, commit, attempts("commit")), "commit")
    rows, stored = summary.get("rows"), summary.get("features")
    return ReferenceReport(
        model=model,
        version=version,
        rows=rows if isinstance(rows, int) else table.rows,
        features=tuple(stored) if isinstance(stored, list) else table.feature_names(),
        parts=parts,
        upload_id=upload_id,
    )


def _put_part(client: httpx.Client, path: str, frame: Frame, attempts: _http.Attempts) -> None:
    body = _PartBody(encode_frame(frame))
    headers = {"Content-Type": CONTENT_TYPE, "Content-Length": str(len(body.data))}
    request = client.build_request("PUT", path, content=body, headers=headers)
    _http.send(client, request, attempts)
    body.data = b""


class _PartBody:
    """A part's bytes, for httpx to send (again on a retry) and for us to drop once stored.

    httpx keeps each response, its request and so the body in a reference cycle until the
    garbage collector runs; measured, that held ~10 parts in memory instead of one.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data


def _name(what: str, value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


# -- turning user data into columns that can be cut into parts without copying ----------------


@dataclass(frozen=True, slots=True)
class _Numeric:
    """A (rows, width) float array (a view of the user's data where possible)."""

    name: str
    values: np.ndarray
    names: tuple[str, ...] | None
    role: Role

    def part(self, start: int, stop: int) -> NumericBlock:
        return NumericBlock(self.name, self.values[start:stop], self.names, self.role)

    @property
    def row_bytes(self) -> int:
        return int(self.values.shape[1] * self.values.dtype.itemsize)

    def feature_names(self) -> tuple[str, ...]:
        return self.part(0, 0).feature_names()


@dataclass(frozen=True, slots=True)
class _Categorical:
    """Values coded per part, so a part's header lists only the categories it holds."""

    name: str
    values: np.ndarray  # 1-D object array; None marks a missing value
    role: Role

    def part(self, start: int, stop: int) -> CategoricalColumn:
        return categorical(self.name, self.values[start:stop], self.role)

    row_bytes = 4

    def feature_names(self) -> tuple[str, ...]:
        return (self.name,)


_Source = _Numeric | _Categorical


@dataclass(frozen=True, slots=True)
class ReferenceTable:
    """Reference data as columns of equal length, ready to be cut into frames."""

    rows: int
    columns: tuple[_Source, ...]

    def rows_per_part(self, chunk_rows: int) -> int:
        row_bytes = sum(c.row_bytes for c in self.columns)
        return max(1, min(chunk_rows, PART_BYTES_BUDGET // max(row_bytes, 1)))

    def parts(self, rows_per_part: int) -> Iterator[tuple[int, Frame]]:
        """(end row, frame) for each part, built lazily."""
        for start in range(0, self.rows, rows_per_part):
            stop = min(start + rows_per_part, self.rows)
            yield stop, Frame(stop - start, tuple(c.part(start, stop) for c in self.columns))

    def feature_names(self) -> tuple[str, ...]:
        return tuple(n for c in self.columns if c.role == "feature" for n in c.feature_names())


def reference_table(
    features: Any,
    predictions: Any = None,
    labels: Any = None,
    *,
    feature_names: Sequence[str] | None = None,
) -> ReferenceTable:
    """Validate the reference data into a ReferenceTable; ValueError says what was expected."""
    columns = _feature_columns(features, feature_names)
    rows = _common_rows(columns, "features")
    if rows == 0:
        raise ValueError("features has no rows; a reference needs at least one")
    for what, data, name, role in (
        ("predictions", predictions, PREDICTION_COLUMN, "output"),
        ("labels", labels, LABEL_COLUMN, "label"),
    ):
        if data is None:
            continue
        column = _column(name, data, role, what, allow_2d=role == "output")  # type: ignore[arg-type]
        length = _length(column)
        if length != rows:
            raise ValueError(f"{what} has {length} rows but features has {rows}; they must match")
        columns.append(column)
    return ReferenceTable(rows, tuple(columns))


def _feature_columns(features: Any, feature_names: Sequence[str] | None) -> list[_Source]:
    if _is_dataframe(features):
        if feature_names is not None:
            raise ValueError("feature_names is for arrays; a DataFrame names its own columns")
        return [
            _column(str(name), features[name], "feature", f"column {name!r}")
            for name in features.columns
        ]
    if isinstance(features, Mapping):
        if feature_names is not None:
            raise ValueError("feature_names is for arrays; a dict names its own columns")
        return [
            _column(_key(k), v, "feature", f"column {k!r}", allow_2d=True)
            for k, v in features.items()
        ]
    if isinstance(features, list | tuple) and features and isinstance(features[0], Mapping):
        if feature_names is not None:
            raise ValueError("feature_names is for arrays; row dicts name their own columns")
        return _row_dict_columns(features)
    array = _array(features, "features")
    if array.ndim != 2:
        raise ValueError(
            "features must be a 2-D array (rows, features), a dict of columns, a list of row "
            f"dicts or a pandas DataFrame; got a {array.ndim}-D {type(features).__name__}"
        )
    names = _feature_names(feature_names, array.shape[1])
    if _is_numeric(array):
        return [_Numeric(FEATURES_BLOCK, _floats(array), names, "feature")]
    # Mixed columns (strings among numbers): each column on its own.
    labels = names or tuple(f"{FEATURES_BLOCK}[{j}]" for j in range(array.shape[1]))
    return [
        _column(labels[j], array[:, j], "feature", f"column {labels[j]!r}")
        for j in range(array.shape[1])
    ]


def _row_dict_columns(rows: Sequence[Any]) -> list[_Source]:
    keys: dict[str, None] = {}
    for position, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"features[{position}] is a {type(row).__name__}; expected a dict")
        for key in row:
            keys[_key(key)] = None
    return [
        _column(key, [row.get(key) for row in rows], "feature", f"column {key!r}") for key in keys
    ]


def _column(name: str, data: Any, role: Role, what: str, *, allow_2d: bool = False) -> _Source:
    if _is_series(data):
        return _series_column(name, data, role, what)
    array = _array(data, what)
    if array.ndim == 2 and allow_2d and _is_numeric(array):
        return _Numeric(name, _floats(array), None, role)
    if array.ndim != 1:
        expected = "1-D (or 2-D numeric)" if allow_2d else "1-D"
        raise ValueError(f"{what} must be {expected}, got shape {array.shape}")
    if _is_numeric(array):
        return _Numeric(name, _floats(array).reshape(-1, 1), None, role)
    if array.dtype.kind in "US":
        return _Categorical(name, array.astype(object), role)
    if array.dtype.kind != "O":
        raise ValueError(f"{what} has dtype {array.dtype}; expected numbers or strings")
    return _object_column(name, array, role, what)


def _object_column(name: str, array: np.ndarray, role: Role, what: str) -> _Source:
    """Numbers (with None as missing) become numeric; strings or a mix become categorical."""
    numbers = True
    for value in array:
        if value is None or isinstance(value, str):
            numbers = numbers and value is None
            continue
        if isinstance(value, bool | int | float | np.number | np.bool_):
            continue
        raise ValueError(
            f"{what} holds a {type(value).__name__} ({value!r:.60}); expected numbers or strings"
        )
    if numbers:
        floats = np.array([np.nan if v is None else v for v in array], dtype=np.float64)
        return _Numeric(name, floats.reshape(-1, 1), None, role)
    return _Categorical(name, array, role)


def _series_column(name: str, series: Any, role: Role, what: str) -> _Source:
    import pandas as pd

    dtype = series.dtype
    is_category = isinstance(dtype, pd.CategoricalDtype)
    if not is_category and (
        pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype)
    ):
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return _Numeric(name, floats.reshape(-1, 1), None, role)
    values = series.astype(object).where(series.notna(), None).to_numpy()
    if is_category:
        # Declared categories stay categories even when they are numbers.
        return _Categorical(name, values, role)
    return _object_column(name, values, role, what)


def _array(data: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(data)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{what} is not a rectangular array of values: {exc}") from None


def _length(column: _Source) -> int:
    return int(column.values.shape[0])


def _common_rows(columns: list[_Source], what: str) -> int:
    if not columns:
        raise ValueError(f"{what} has no columns")
    lengths = {c.name: _length(c) for c in columns}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"the columns of {what} differ in length: {lengths}")
    return next(iter(lengths.values()))


def _feature_names(names: Sequence[str] | None, width: int) -> tuple[str, ...] | None:
    if names is None:
        return None
    names = tuple(names)
    if len(names) != width or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"feature_names must be {width} non-empty strings, one a column")
    if len(set(names)) != width:
        raise ValueError("feature_names has a name twice")
    return names


def _key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"feature names must be non-empty strings, got {key!r}")
    return key


def _is_numeric(array: np.ndarray) -> bool:
    return array.dtype.kind in "biuf"


def _floats(array: np.ndarray) -> np.ndarray:
    # float32 stays float32 (the frame carries it); other numbers become float64 (one copy).
    if array.dtype in (np.float32, np.float64):
        return array
    return array.astype(np.float64)


def _is_dataframe(value: object) -> bool:
    # Checked by module name so that pandas is imported only when the caller already has it.
    return type(value).__module__.startswith("pandas") and type(value).__name__ == "DataFrame"


def _is_series(value: object) -> bool:
    return type(value).__module__.startswith("pandas") and type(value).__name__ == "Series"
