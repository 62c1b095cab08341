"""Uploading a model version's reference data (training or validation set): ``set_reference``.

The data goes up in parts of ``chunk_rows`` rows, each a frame (see inferwatch.frame) whose
columns have the role feature, output (predictions) or label: start an upload, PUT every part
(retried; sending a part again replaces it), commit. A part is encoded only when it is sent, so a
million rows never become one request nor a second copy of the dataset in memory.

Features and predictions are turned into columns by the code that captures a monitored call
(inferwatch.capture), so that the reference's columns have the very names and kinds of the
live ones: what capture would leave out of a call is refused here, with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from inferwatch import _http, retry
from inferwatch.capture import capture_columns, capture_inputs, capture_outputs
from inferwatch.columns import Captured, is_dataframe, is_series
from inferwatch.config import resolve_api_key, resolve_endpoint
from inferwatch.contract import DEFAULT_VERSION, TASKS, reference_uploads_path
from inferwatch.frame import (
    CONTENT_TYPE,
    CategoricalColumn,
    Column,
    Frame,
    NumericBlock,
    encode_frame,
)

DEFAULT_CHUNK_ROWS = 50_000
# The collector takes at most 64 MiB a part; the budget leaves room for headers and categories.
PART_BYTES_BUDGET = 48 * 2**20
DEFAULT_TIMEOUT = 60.0  # the commit computes the reference's summaries over every row
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
    version: str | None,
    features: Any,
    predictions: Any = None,
    labels: Any = None,
    *,
    task: str | None = None,
    feature_names: Sequence[str] | None = None,
    classes: Sequence[object] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    endpoint: str | None = None,
    api_key: str | None = None,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = retry.DEFAULT_MAX_RETRIES,
    backoff: float = retry.DEFAULT_BACKOFF,
) -> ReferenceReport:
    """Upload the reference data of ``model`` at ``version``, replacing any earlier one.

    ``version`` None or "" is ``DEFAULT_VERSION``, the version of calls monitored without one.
    ``features`` is a 2-D numpy array (name its columns with ``feature_names``), a dict of
    columns, a list of row dicts or a pandas DataFrame; numbers become numeric features and
    strings categorical ones, named as ``@monitor`` names the same data (an unnamed array's
    columns are ``x[0]``, ``x[1]``, ...). ``predictions`` (1-D, or 2-D class probabilities) and
    ``labels`` (1-D) are optional and must have a row for each row of features; with
    ``task="classification"`` (or ``classes``) 2-D probabilities become ``prediction`` (the
    most likely class) and ``proba[<class>]``, as in ``@monitor(task=..., classes=...)``.
    ``progress(rows_sent, total_rows)`` is called after each part. Raises ValueError for bad
    input, ReferenceRejected when the collector refuses a step and CollectorUnavailable when
    it cannot be reached through ``max_retries`` retries.
    """
    model = _name("model", model)
    version = _name("version", DEFAULT_VERSION if version in (None, "") else version)
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
    if not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    table = reference_table(
        features, predictions, labels, feature_names=feature_names, task=task, classes=classes
    )
    rows_per_part = table.rows_per_part(chunk_rows)
    policy = retry.RetryPolicy(max_retries=max_retries, backoff=backoff)
    url = resolve_endpoint(endpoint)
    path = reference_uploads_path(model, version)

    def attempts(step: str) -> _http.CollectorAttempts:
        def rejected(status: int, message: str) -> ReferenceRejected:
            return ReferenceRejected(status, message, step=step, url=url)

        return _http.CollectorAttempts(policy, f"the reference upload's {step}", url, rejected)

    with httpx.Client(**_http.client_options(url, resolve_api_key(api_key), timeout)) as client:
        start = client.build_request("POST", path, json={"task": task} if task else None)
        started = _http.json_object(retry.send(client, start, attempts("start")), "start")
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
        summary = _http.json_object(retry.send(client, commit, attempts("commit")), "commit")
    rows, stored = summary.get("rows"), summary.get("features")
    return ReferenceReport(
        model=model,
        version=version,
        rows=rows if isinstance(rows, int) else table.rows,
        features=tuple(stored) if isinstance(stored, list) else table.feature_names(),
        parts=parts,
        upload_id=upload_id,
    )


def _put_part(
    client: httpx.Client, path: str, frame: Frame, attempts: _http.CollectorAttempts
) -> None:
    body = _PartBody(encode_frame(frame))
    headers = {"Content-Type": CONTENT_TYPE, "Content-Length": str(len(body.data))}
    request = client.build_request("PUT", path, content=body, headers=headers)
    retry.send(client, request, attempts)
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
class ReferenceTable:
    """Reference data as columns of equal length, ready to be cut into frames.

    Numeric blocks are views of the user's data where possible; categorical columns are coded
    over every row and recoded per part, so a part's header lists only the categories it holds.
    """

    rows: int
    columns: tuple[Column, ...]

    def rows_per_part(self, chunk_rows: int) -> int:
        row_bytes = sum(_row_bytes(c) for c in self.columns)
        return max(1, min(chunk_rows, PART_BYTES_BUDGET // max(row_bytes, 1)))

    def parts(self, rows_per_part: int) -> Iterator[tuple[int, Frame]]:
        """(end row, frame) for each part, built lazily."""
        for start in range(0, self.rows, rows_per_part):
            stop = min(start + rows_per_part, self.rows)
            yield stop, Frame(stop - start, tuple(_part(c, start, stop) for c in self.columns))

    def feature_names(self) -> tuple[str, ...]:
        return tuple(Frame(self.rows, self.columns).features("feature"))


def _row_bytes(column: Column) -> int:
    if isinstance(column, NumericBlock):
        return int(column.width * column.values.dtype.itemsize)
    return int(column.codes.dtype.itemsize)


def _part(column: Column, start: int, stop: int) -> Column:
    if isinstance(column, NumericBlock):
        return NumericBlock(column.name, column.values[start:stop], column.names, column.role)
    codes = column.codes[start:stop]
    known = codes >= 0
    present = np.unique(codes[known])
    recode = np.full(len(column.categories), -1, dtype=np.int32)
    recode[present] = np.arange(len(present), dtype=np.int32)
    part_codes = np.full(codes.shape, -1, dtype=np.int32)
    part_codes[known] = recode[codes[known]]
    categories = tuple(column.categories[c] for c in present.tolist())
    return CategoricalColumn(column.name, part_codes, categories, column.role)


def reference_table(
    features: Any,
    predictions: Any = None,
    labels: Any = None,
    *,
    feature_names: Sequence[str] | None = None,
    task: str | None = None,
    classes: Sequence[object] | None = None,
) -> ReferenceTable:
    """Validate the reference data into a ReferenceTable; ValueError says what was expected."""
    inputs = _features(features, feature_names)
    rows = inputs.rows
    if rows == 0:
        raise ValueError("features has no rows; a reference needs at least one")
    columns = list(inputs.columns)
    if predictions is not None:
        _check_rows("predictions", predictions, rows)
        outputs = capture_outputs(predictions, rows=rows, task=task, classes=classes)
        columns.extend(_whole("predictions", outputs).columns)
    if labels is not None:
        _check_rows("labels", labels, rows)
        if not is_series(labels):
            labels = _array(labels, "labels")
            if labels.ndim != 1:
                raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
        columns.extend(_whole("labels", capture_columns({LABEL_COLUMN: labels}, "label")).columns)
    return ReferenceTable(rows, tuple(columns))


def _features(features: Any, feature_names: Sequence[str] | None) -> Frame:
    """The features as capture_inputs makes them of a call given the same data."""
    if is_dataframe(features) or isinstance(features, Mapping) or _are_row_dicts(features):
        if feature_names is not None:
            kind = "a DataFrame" if is_dataframe(features) else "a dict"
            raise ValueError(f"feature_names is for arrays; {kind} names its own columns")
        if isinstance(features, Mapping):
            return _whole("features", capture_columns(features))
        if not is_dataframe(features):
            for position, row in enumerate(features):
                if not isinstance(row, Mapping):
                    raise ValueError(
                        f"features[{position}] is a {type(row).__name__}; expected a dict"
                    )
        return _whole("features", capture_inputs(features))
    array = _array(features, "features")
    if array.ndim < 2:
        raise ValueError(
            "features must be a 2-D array (rows, features), a dict of columns, a list of row "
            f"dicts or a pandas DataFrame; got a {array.ndim}-D {type(features).__name__}"
        )
    if array.ndim > 2:
        # Images and other tensors: each row flattened to x[0], x[1], ..., as @monitor does.
        if feature_names is not None:
            raise ValueError(f"feature_names needs a 2-D array; got a {array.ndim}-D array")
        return _whole("features", capture_inputs(array))
    names = _feature_names(feature_names, array.shape[1])
    return _whole("features", capture_inputs(array, feature_names=names))


def _are_row_dicts(features: Any) -> bool:
    return (
        isinstance(features, list | tuple) and bool(features) and isinstance(features[0], Mapping)
    )


def _whole(what: str, captured: Captured) -> Frame:
    """The captured frame, if nothing had to be left out of it: a reference must be whole."""
    if captured.problems or captured.frame is None:
        reasons = "; ".join(captured.problems) or "nothing could be read"
        raise ValueError(f"{what} cannot be used as reference data: {reasons}")
    return captured.frame


def _check_rows(what: str, data: Any, rows: int) -> None:
    if isinstance(data, Mapping):
        return  # named outputs: capture checks each
    try:
        given = len(data)
    except TypeError:
        return  # not a sequence: capture says what it is
    if given != rows:
        raise ValueError(f"{what} has {given} rows but features has {rows}; they must match")


def _array(data: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(data)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{what} is not a rectangular array of values: {exc}") from None


def _feature_names(names: Sequence[str] | None, width: int) -> tuple[str, ...] | None:
    if names is None:
        return None
    names = tuple(names)
    if len(names) != width or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"feature_names must be {width} non-empty strings, one a column")
    if len(set(names)) != width:
        raise ValueError("feature_names has a name twice")
    return names
