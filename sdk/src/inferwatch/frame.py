"""Frames: a batch of rows packed column by column into one binary value.

A frame is what the SDK puts in a span attribute (inputs and outputs of one call) and what a
reference upload sends. Packing the columns into one ``bytes`` value keeps a span to a handful of
attributes whatever the number of features (the OpenTelemetry SDK keeps 128 attributes a span by
default), carries numpy values exactly, and costs a small fraction of per-feature attribute arrays
to record and to encode.

Layout (version 1), all integers little-endian::

    b"IWF1" | uint32 header length | header (UTF-8 JSON) | buffers, each padded to 8 bytes

The header holds ``{"rows": n, "columns": [...]}``; each column is one of

- ``{"kind": "numeric", "name": s, "dtype": "<f8"|"<f4", "width": d, "names": [...]?}``: a
  (rows, d) row-major block of floats; NaN marks a missing value. ``names`` names each of the d
  columns; without it a block of width 1 is the feature ``name`` and a wider block holds the
  features ``name[0]`` ... ``name[d-1]`` (an image, an embedding).
- ``{"kind": "categorical", "name": s, "categories": [...]}``: rows int32 codes into
  ``categories``; -1 marks a missing value.

Either may carry ``"role"``: ``"feature"`` (default), ``"output"`` or ``"label"``; reference
uploads use it to send features, predictions and labels in one frame.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

MAGIC = b"IWF1"
CONTENT_TYPE = "application/vnd.inferwatch.frame"
_LENGTH = struct.Struct("<I")
_ALIGN = 8
_NUMERIC_DTYPES: dict[str, np.dtype[Any]] = {"<f8": np.dtype("<f8"), "<f4": np.dtype("<f4")}
_CODES_DTYPE = np.dtype("<i4")
ROLES = ("feature", "output", "label")
Role = Literal["feature", "output", "label"]


class FrameError(ValueError):
    """The bytes are not a valid frame; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class NumericBlock:
    """A (rows, width) block of floats; NaN marks a missing value."""

    name: str
    values: np.ndarray
    names: tuple[str, ...] | None = None
    role: Role = "feature"

    @property
    def width(self) -> int:
        return int(self.values.shape[1])

    def feature_names(self) -> tuple[str, ...]:
        if self.names is not None:
            return self.names
        if self.width == 1:
            return (self.name,)
        return tuple(f"{self.name}[{j}]" for j in range(self.width))


@dataclass(frozen=True, slots=True)
class CategoricalColumn:
    """One column of strings, as int32 codes into ``categories``; -1 marks a missing value."""

    name: str
    codes: np.ndarray
    categories: tuple[str, ...]
    role: Role = "feature"

    def values(self) -> list[str | None]:
        cats = self.categories
        return [cats[c] if c >= 0 else None for c in self.codes.tolist()]


Column = NumericBlock | CategoricalColumn


@dataclass(frozen=True, slots=True)
class Frame:
    rows: int
    columns: tuple[Column, ...]

    def features(self, role: Role | None = None) -> dict[str, np.ndarray | CategoricalColumn]:
        """Each feature by name: a 1-D float array, or a CategoricalColumn.

        Wide numeric blocks are split into their columns (views, no copy).
        """
        out: dict[str, np.ndarray | CategoricalColumn] = {}
        for column in self.columns:
            if role is not None and column.role != role:
                continue
            if isinstance(column, NumericBlock):
                for j, name in enumerate(column.feature_names()):
                    out[name] = column.values[:, j]
            else:
                out[column.name] = column
        return out

    def select(self, role: Role) -> Frame:
        return Frame(self.rows, tuple(c for c in self.columns if c.role == role))


def categorical(name: str, values: Iterable[object], role: Role = "feature") -> CategoricalColumn:
    """Build a categorical column from values; None and NaN become missing, others str()."""
    index: dict[str, int] = {}
    codes: list[int] = []
    for value in values:
        if value is None or (isinstance(value, float) and value != value):
            codes.append(-1)
            continue
        key = value if isinstance(value, str) else str(value)
        code = index.get(key)
        if code is None:
            code = index[key] = len(index)
        codes.append(code)
    return CategoricalColumn(name, np.asarray(codes, dtype=_CODES_DTYPE), tuple(index), role)


def encode_frame(frame: Frame) -> bytes:
    descriptors: list[tuple[Any, ...]] = []
    buffers: list[bytes] = []
    for column in frame.columns:
        if isinstance(column, NumericBlock):
            values = column.values
            if values.ndim != 2 or values.shape[0] != frame.rows:
                raise FrameError(
                    f"numeric block {column.name!r} has shape {values.shape}, "
                    f"expected ({frame.rows}, width)"
                )
            if values.dtype not in (np.float64, np.float32):
                values = values.astype(np.float64)
            dtype = "<f4" if values.dtype == np.float32 else "<f8"
            data = np.ascontiguousarray(values, dtype=_NUMERIC_DTYPES[dtype]).tobytes()
            descriptors.append(
                ("numeric", column.name, dtype, values.shape[1], column.names, column.role)
            )
        else:
            if column.codes.shape != (frame.rows,):
                raise FrameError(
                    f"categorical column {column.name!r} has {column.codes.shape[0]} rows, "
                    f"expected {frame.rows}"
                )
            data = np.ascontiguousarray(column.codes, dtype=_CODES_DTYPE).tobytes()
            descriptors.append(
                ("categorical", column.name, column.categories, 0, None, column.role)
            )
        buffers.append(data)
        pad = -len(data) % _ALIGN
        if pad:
            buffers.append(b"\0" * pad)
    return _header(frame.rows, tuple(descriptors)) + b"".join(buffers)


@lru_cache(maxsize=512)
def _header(rows: int, descriptors: tuple[tuple[Any, ...], ...]) -> bytes:
    # Cached: a model server sends the same schema call after call, and building the JSON
    # header would otherwise dominate the cost of encoding a one-row frame.
    columns: list[dict[str, Any]] = []
    for kind, name, extra, width, names, role in descriptors:
        entry: dict[str, Any] = {"kind": kind, "name": name}
        if kind == "numeric":
            entry["dtype"] = extra
            entry["width"] = width
            if names is not None:
                entry["names"] = list(names)
        else:
            entry["categories"] = list(extra)
        if role != "feature":
            entry["role"] = role
        columns.append(entry)
    header = json.dumps({"rows": rows, "columns": columns}, separators=(",", ":")).encode()
    header += b" " * (-(len(MAGIC) + _LENGTH.size + len(header)) % _ALIGN)
    return MAGIC + _LENGTH.pack(len(header)) + header


def decode_frame(data: bytes | bytearray | memoryview, *, max_rows: int | None = None) -> Frame:
    """Parse a frame, validating every length and code. Raises FrameError."""
    view = memoryview(data)
    start = len(MAGIC) + _LENGTH.size
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise _not_a_frame(bytes(view[: len(MAGIC)]))
    if len(view) < start:
        raise FrameError(f"truncated frame: {len(view)} bytes, less than its {start}-byte start")
    (header_length,) = _LENGTH.unpack_from(view, len(MAGIC))
    if start + header_length > len(view):
        raise FrameError(
            f"truncated frame: its header claims {header_length} bytes but only "
            f"{len(view) - start} follow"
        )
    try:
        header = json.loads(bytes(view[start : start + header_length]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"frame header is not valid JSON: {exc}") from None
    except RecursionError:
        raise FrameError("frame header is not a frame's: its JSON nests too deeply") from None
    if not isinstance(header, dict):
        raise FrameError("frame header must be a JSON object")
    rows = header.get("rows")
    specs = header.get("columns")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise FrameError(f"frame 'rows' must be a non-negative integer, got {rows!r}")
    if max_rows is not None and rows > max_rows:
        raise FrameError(f"frame has {rows} rows; the limit is {max_rows}")
    if not isinstance(specs, list):
        raise FrameError("frame 'columns' must be a list")
    offset = start + header_length
    columns: list[Column] = []
    seen: set[str] = set()
    for spec in specs:
        column, offset = _decode_column(spec, rows, view, offset)
        names = column.feature_names() if isinstance(column, NumericBlock) else (column.name,)
        for name in names:
            key = f"{column.role}:{name}"
            if key in seen:
                raise FrameError(f"frame has the column {name!r} twice")
            seen.add(key)
        columns.append(column)
    if offset != len(view):
        raise FrameError(f"frame has {len(view) - offset} bytes after its last column")
    return Frame(rows, tuple(columns))


def _not_a_frame(signature: bytes) -> FrameError:
    # Frames and the collector's stored containers all start with b"IW"; say which this is not.
    if signature[:3] == MAGIC[:3] and signature[3:].isdigit():
        return FrameError(
            f"an inferwatch frame of format version {signature[3:].decode()} ({signature!r}), "
            f"but this release of inferwatch reads version 1 ({MAGIC!r}): upgrade inferwatch"
        )
    if signature[:2] == MAGIC[:2] and len(signature) == len(MAGIC):
        return FrameError(
            f"not an inferwatch frame: {signature!r} is another inferwatch container's "
            f"signature (a frame starts with {MAGIC!r})"
        )
    if not signature:
        return FrameError("not an inferwatch frame: no bytes (missing the IWF1 signature)")
    return FrameError(f"not an inferwatch frame: it starts with {signature!r}, not {MAGIC!r}")


def _decode_column(spec: object, rows: int, view: memoryview, offset: int) -> tuple[Column, int]:
    if not isinstance(spec, dict):
        raise FrameError("each frame column must be a JSON object")
    name = spec.get("name")
    kind = spec.get("kind")
    role = spec.get("role", "feature")
    if not isinstance(name, str) or not name:
        raise FrameError(f"frame column name must be a non-empty string, got {name!r}")
    if role not in ROLES:
        raise FrameError(f"column {name!r}: role must be one of {ROLES}, got {role!r}")
    if kind == "numeric":
        dtype = _NUMERIC_DTYPES.get(spec.get("dtype"))  # type: ignore[arg-type]
        width = spec.get("width")
        names = spec.get("names")
        if dtype is None:
            raise FrameError(f"column {name!r}: dtype must be '<f8' or '<f4'")
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise FrameError(f"column {name!r}: width must be a positive integer")
        if names is not None and (
            not isinstance(names, list)
            or len(names) != width
            or not all(isinstance(n, str) and n for n in names)
        ):
            raise FrameError(f"column {name!r}: names must be {width} non-empty strings")
        nbytes = rows * width * dtype.itemsize
        buffer = _take(view, offset, nbytes, name)
        values = np.frombuffer(buffer, dtype=dtype).reshape(rows, width)
        column: Column = NumericBlock(name, values, tuple(names) if names else None, role)
    elif kind == "categorical":
        categories = spec.get("categories")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise FrameError(f"column {name!r}: categories must be a list of strings")
        nbytes = rows * _CODES_DTYPE.itemsize
        codes = np.frombuffer(_take(view, offset, nbytes, name), dtype=_CODES_DTYPE)
        if rows and (codes.min() < -1 or codes.max() >= len(categories)):
            raise FrameError(f"column {name!r}: a code is outside its {len(categories)} categories")
        column = CategoricalColumn(name, codes, tuple(categories), role)
    else:
        raise FrameError(f"column {name!r}: kind must be 'numeric' or 'categorical', got {kind!r}")
    return column, offset + nbytes + (-nbytes % _ALIGN)


def _take(view: memoryview, offset: int, nbytes: int, name: str) -> memoryview:
    if offset + nbytes > len(view):
        raise FrameError(
            f"column {name!r} needs {nbytes} bytes but only {len(view) - offset} remain"
        )
    return view[offset : offset + nbytes]


def numeric(
    name: str,
    values: Sequence[float] | np.ndarray,
    names: Sequence[str] | None = None,
    role: Role = "feature",
) -> NumericBlock:
    """Build a numeric block from a 1-D (one feature) or 2-D (rows, width) array-like."""
    array = np.asarray(values)
    if array.dtype != np.float32:
        array = array.astype(np.float64, copy=False)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    elif array.ndim != 2:
        raise FrameError(f"numeric block {name!r} must be 1-D or 2-D, got {array.ndim}-D")
    return NumericBlock(name, array, tuple(names) if names is not None else None, role)
