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
class FrameLimits:
    """What a frame's header may claim, checked before anything is allocated for it.

    Most claims are backed by bytes (a column's values must follow its header), but some are not:
    the rows of a frame without columns, the width of a block without rows, the names a wide block
    derives. The defaults are the ceilings every decoder applies (a journal replay, a stored
    reservoir, a reference part); the collector's receiver applies its own, lower ones
    (``[collector.limits]``), which can never exceed these, so that what it accepted always
    decodes again.
    """

    rows: int = 2**24
    # Features: a numeric block counts its width, a categorical column one.
    columns: int = 2**20
    # rows x columns.
    cells: int = 2**30
    header_bytes: int = 2**27
    # Characters of one column name, feature name or category.
    text_chars: int = 2**16


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


def decode_frame(
    data: bytes | bytearray | memoryview, *, limits: FrameLimits = FrameLimits()
) -> Frame:
    """Parse a frame, validating every length, code and string, within ``limits``.

    Raises FrameError; one that names a limit when a claim is beyond it.
    """
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
    if header_length > limits.header_bytes:
        raise FrameError(
            f"frame header is {header_length} bytes; the limit is {limits.header_bytes} "
            "(header_bytes)"
        )
    header_bytes = bytes(view[start : start + header_length])
    layout = _LAYOUTS.get((header_bytes, limits))
    if layout is not None:
        return _decode_laid_out(layout, view, start + header_length)
    try:
        header = json.loads(header_bytes)
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
    if rows > limits.rows:
        raise FrameError(f"frame has {rows} rows; the limit is {limits.rows} (rows)")
    if not isinstance(specs, list):
        raise FrameError("frame 'columns' must be a list")
    offset = start + header_length
    columns: list[Column] = []
    seen: set[str] = set()
    features = 0
    for spec in specs:
        column, offset = _decode_column(spec, rows, view, offset, limits)
        features += column.width if isinstance(column, NumericBlock) else 1
        if features > limits.columns:
            raise FrameError(
                f"frame has more than {limits.columns} columns; the limit is {limits.columns} "
                "(columns)"
            )
        if rows * features > limits.cells:
            raise FrameError(
                f"frame has more than {limits.cells} cells ({rows} rows x {features} columns "
                f"so far); the limit is {limits.cells} (cells)"
            )
        names = column.feature_names() if isinstance(column, NumericBlock) else (column.name,)
        for name in names:
            key = f"{column.role}:{name}"
            if key in seen:
                raise FrameError(f"frame has the column {name!r} twice")
            seen.add(key)
        columns.append(column)
    if offset != len(view):
        raise FrameError(f"frame has {len(view) - offset} bytes after its last column")
    frame = Frame(rows, tuple(columns))
    if header_length <= _MAX_LAID_OUT_HEADER:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        _LAYOUTS[(header_bytes, limits)] = _layout_of(frame)
    return frame


# A sender sends frames of a few layouts, each header again and again: a header seen valid
# (under the same limits) is not parsed and checked again, only the data it describes (issue
# 15: half the cost of decoding a frame). Bounded: small headers, a few of them.
_MAX_LAID_OUT_HEADER = 4096
_MAX_LAYOUTS = 128
# Per column: a numeric block's (name, role, dtype, width, names), or a categorical column's
# (name, role, categories).
_Layout = tuple[int, tuple[tuple[Any, ...], ...]]
_LAYOUTS: dict[tuple[bytes, FrameLimits], _Layout] = {}


def _layout_of(frame: Frame) -> _Layout:
    columns: list[tuple[Any, ...]] = []
    for column in frame.columns:
        if isinstance(column, NumericBlock):
            values = column.values
            columns.append((column.name, column.role, values.dtype, values.shape[1], column.names))
        else:
            columns.append((column.name, column.role, column.categories))
    return frame.rows, tuple(columns)


def _decode_laid_out(layout: _Layout, view: memoryview, offset: int) -> Frame:
    """A frame whose header is known valid: the checks of its data alone, in the same order
    as ``decode_frame`` makes them, so the same frame fails with the same error."""
    rows, specs = layout
    columns: list[Column] = []
    for spec in specs:
        if len(spec) == 5:
            name, role, dtype, width, names = spec
            nbytes = rows * width * dtype.itemsize
            values = np.frombuffer(_take(view, offset, nbytes, name), dtype=dtype)
            columns.append(NumericBlock(name, values.reshape(rows, width), names, role))
        else:
            name, role, categories = spec
            nbytes = rows * _CODES_DTYPE.itemsize
            codes = np.frombuffer(_take(view, offset, nbytes, name), dtype=_CODES_DTYPE)
            if rows and (codes.min() < -1 or codes.max() >= len(categories)):
                raise FrameError(
                    f"column {name!r}: a code is outside its {len(categories)} categories"
                )
            columns.append(CategoricalColumn(name, codes, categories, role))
        offset += nbytes + (-nbytes % _ALIGN)
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


def _decode_column(
    spec: object, rows: int, view: memoryview, offset: int, limits: FrameLimits
) -> tuple[Column, int]:
    if not isinstance(spec, dict):
        raise FrameError("each frame column must be a JSON object")
    name = spec.get("name")
    kind = spec.get("kind")
    role = spec.get("role", "feature")
    if not isinstance(name, str) or not name:
        raise FrameError(f"frame column name must be a non-empty string, got {_shown(name)}")
    # Column names are quoted in messages only once known to be short and valid Unicode.
    _check_text(name, "a column name", limits)
    if role not in ROLES:
        raise FrameError(f"column {name!r}: role must be one of {ROLES}, got {_shown(role)}")
    if kind == "numeric":
        dtype = _NUMERIC_DTYPES.get(spec.get("dtype"))  # type: ignore[arg-type]
        width = spec.get("width")
        names = spec.get("names")
        if dtype is None:
            raise FrameError(f"column {name!r}: dtype must be '<f8' or '<f4'")
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise FrameError(f"column {name!r}: width must be a positive integer")
        if width > limits.columns:
            raise FrameError(
                f"column {name!r} is {width} columns wide; the limit is {limits.columns} (columns)"
            )
        if names is not None and (
            not isinstance(names, list)
            or len(names) != width
            or not all(isinstance(n, str) and n for n in names)
        ):
            raise FrameError(f"column {name!r}: names must be {width} non-empty strings")
        for feature in names or ():
            _check_text(feature, f"a feature name of column {name!r}", limits)
        nbytes = rows * width * dtype.itemsize
        buffer = _take(view, offset, nbytes, name)
        values = np.frombuffer(buffer, dtype=dtype).reshape(rows, width)
        column: Column = NumericBlock(name, values, tuple(names) if names else None, role)
    elif kind == "categorical":
        categories = spec.get("categories")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise FrameError(f"column {name!r}: categories must be a list of strings")
        for category in categories:
            _check_text(category, f"a category of column {name!r}", limits)
        nbytes = rows * _CODES_DTYPE.itemsize
        codes = np.frombuffer(_take(view, offset, nbytes, name), dtype=_CODES_DTYPE)
        if rows and (codes.min() < -1 or codes.max() >= len(categories)):
            raise FrameError(f"column {name!r}: a code is outside its {len(categories)} categories")
        column = CategoricalColumn(name, codes, tuple(categories), role)
    else:
        raise FrameError(f"column {name!r}: kind must be 'numeric' or 'categorical', got {kind!r}")
    return column, offset + nbytes + (-nbytes % _ALIGN)


def _check_text(text: str, what: str, limits: FrameLimits) -> None:
    if len(text) > limits.text_chars:
        raise FrameError(
            f"{what} has {len(text)} characters; the limit is {limits.text_chars} (text_chars)"
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A JSON escape such as \ud800 decodes to a lone surrogate, which no store or JSON
            # answer can hold.
            raise FrameError(f"{what} is not valid Unicode (it holds a lone surrogate)") from None


def _shown(value: object) -> str:
    """What a message may say of a value it cannot trust: its type, and length."""
    if isinstance(value, str | list | dict):
        return f"a {type(value).__name__} of length {len(value)}"
    return type(value).__name__ if value is not None else "nothing"


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
