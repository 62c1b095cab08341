"""From a captured HTTP exchange to a model call's inputs, outputs and client-supplied ids.

The defaults understand the JSON that BentoML 1.4 services (and most JSON model APIs) exchange.
A request body is an object of named parameters, or a bare list of rows:

- one parameter: its value is the input (``{"input_data": [[...], ...]}`` is a 2-D batch,
  ``{"x": {...}}`` one row, or rows when it holds two or more equal-length lists); a scalar
  parameter is a one-feature row;
- several parameters, all scalars: one row (``{"a": 1.0, "b": "red"}``);
- several parameters, all lists of one length: columns, turned into rows;
- a list: rows (dicts or lists) or a 1-D vector, passed on as they are.

A response body is passed on as its JSON value: a list, a scalar, or an object of named outputs.
Anything else (images, multipart, custom envelopes) needs ``to_inputs`` / ``to_outputs``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "CapturedRequest",
    "CapturedResponse",
    "InputsMapper",
    "MappingError",
    "OutputsMapper",
    "decode_headers",
    "default_inputs",
    "default_outputs",
    "ids_from_field",
    "ids_from_header",
    "rows_in_json",
]

_SCALARS = (str, int, float, bool, type(None))
# What is left of a JSON body once these are deleted (outside strings) is its structure:
# brackets, braces, commas, colons and quotes. They make up numbers, true, false, null and
# the whitespace between tokens.
_NOT_STRUCTURE = b" \t\r\n0123456789.+-eE" + b"truefalsn"
_CLOSING = {ord("["): ord("]"), ord("{"): ord("}")}


class MappingError(ValueError):
    """A captured body could not be turned into inputs or outputs; the message says why."""


def decode_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs as a dict keyed by lower-case name; repeated headers joined by ", "."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


class _Captured:
    """Common part of a captured request or response: headers and body, JSON on demand.

    Built from ASGI header pairs; ``headers`` (lower-case names to values) and ``json()`` are
    computed on first use, since most calls need neither or only one header.
    """

    def __init__(self, raw_headers: Sequence[tuple[bytes, bytes]], body: bytes) -> None:
        self.raw_headers = raw_headers
        self.body = body
        self._headers: dict[str, str] | None = None
        self._json: tuple[Any, str | None] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = decode_headers(self.raw_headers)
        return self._headers

    def header(self, name: str) -> str | None:
        """One header's value (repeated headers joined by ", "), or None."""
        key = name.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in self.raw_headers if k.lower() == key]
        return ", ".join(values) if values else None

    def json(self) -> Any:
        """The body parsed as JSON (parsed once); raises MappingError when it is not JSON."""
        if self._json is None:
            try:
                self._json = (json.loads(self.body), None)
            except (UnicodeDecodeError, ValueError):
                content_type = self.header("content-type") or "no content type"
                self._json = (None, f"body is not JSON ({len(self.body)} bytes, {content_type})")
        value, problem = self._json
        if problem is not None:
            raise MappingError(problem)
        return value


class CapturedRequest(_Captured):
    """What the middleware saw of a request: method, path, headers and complete body."""

    def __init__(
        self, method: str, path: str, raw_headers: Sequence[tuple[bytes, bytes]], body: bytes
    ) -> None:
        super().__init__(raw_headers, body)
        self.method = method
        self.path = path


class CapturedResponse(_Captured):
    """What the middleware saw of a response: status, headers and complete body."""

    def __init__(
        self, status: int, raw_headers: Sequence[tuple[bytes, bytes]], body: bytes
    ) -> None:
        super().__init__(raw_headers, body)
        self.status = status


InputsMapper = Callable[[CapturedRequest], object]
OutputsMapper = Callable[[CapturedResponse], object]


def default_inputs(request: CapturedRequest, id_field: str | None = None) -> object:
    """The model inputs in a JSON request body, following the rules in this module's docstring.

    ``id_field`` names a field that carries client ids rather than features; it is left out.
    """
    payload = request.json()
    if isinstance(payload, list):
        return _without_row_ids(payload, id_field)
    if not isinstance(payload, dict):
        raise MappingError(
            f"request JSON is a {type(payload).__name__}, expected an object or a list"
        )
    params = {k: v for k, v in payload.items() if k != id_field} if id_field else payload
    if not params:
        raise MappingError("request JSON object has no parameters")
    if len(params) == 1:
        ((name, value),) = params.items()
        if isinstance(value, list):
            return _without_row_ids(value, id_field)
        if isinstance(value, dict):
            # One list-valued field is an array feature of one row, not a column.
            return _columns_to_rows(value) if len(value) > 1 and _is_columnar(value) else value
        return {name: value}
    if all(isinstance(v, _SCALARS) for v in params.values()):
        return params
    if _is_columnar(params):
        return _columns_to_rows(params)
    raise MappingError(
        f"request JSON has {len(params)} parameters ({', '.join(sorted(params)[:5])}) that are "
        "neither all scalars nor equal-length columns; pass to_inputs= to say which are inputs"
    )


def default_outputs(response: CapturedResponse) -> object:
    """The model outputs in a JSON response body: a list, a scalar or named outputs, as is."""
    return response.json()


def rows_in_json(body: bytes) -> int | None:
    """The number of rows ``default_inputs`` finds in a JSON body, counted without parsing it.

    Only for a list of flat rows that look alike once their numbers and strings are blanked
    out (lists of scalars of one length, objects of scalars with strings in the same places),
    bare or as the body's one parameter: the common batch, whose parse is what a request would
    otherwise wait for. None for any other body, for a body with escaped strings, and for
    ``[]``, which cannot be told from a one-number vector. It reads the structure only: a body
    that is not valid JSON may still get a count.
    """
    if b"\\" in body:
        return None
    if b'"' in body:
        # Without escapes, every other quote opens a string: keep what lies outside them.
        parts = body.split(b'"')
        if len(parts) % 2 == 0:
            return None
        body = b'""'.join(parts[::2])
    skeleton = body.translate(None, _NOT_STRUCTURE)
    if skeleton.startswith(b'{"":[') and skeleton.endswith(b"]}"):
        skeleton = skeleton[4:-1]
    if len(skeleton) < 3 or skeleton[0] != ord("[") or skeleton[-1] != ord("]"):
        return None
    closing = _CLOSING.get(skeleton[1])
    if closing is None:
        return None
    end = skeleton.find(closing, 2)
    if end < 0:
        return None
    row = skeleton[1 : end + 1]
    if b"[" in row[1:] or b"{" in row[1:]:
        return None
    # Every row must have the first row's structure: comparing with that repeated checks the
    # rows are flat and alike, and that nothing else sits between them.
    count = len(skeleton) // (len(row) + 1)
    if skeleton != b"[" + b",".join([row] * count) + b"]":
        return None
    return count


def ids_from_header(request: CapturedRequest, name: str) -> list[str] | None:
    """Comma-separated ids from a request header, or None when the header is absent or empty."""
    raw = request.header(name)
    if not raw:
        return None
    ids = [part.strip() for part in raw.split(",")]
    return ids if all(ids) else None


def ids_from_field(request: CapturedRequest, field: str) -> list[str] | None:
    """Client ids in a JSON request: a top-level field (a list or one id) or a field of each row.

    Returns None when the body is not JSON or carries no such field.
    """
    try:
        payload = request.json()
    except MappingError:
        return None
    if isinstance(payload, dict):
        if field in payload:
            return _as_ids(payload[field])
        if len(payload) != 1:
            return None
        (payload,) = payload.values()
    if isinstance(payload, list) and payload and all(_row_has(r, field) for r in payload):
        return [str(row[field]) for row in payload]
    return None


def _row_has(row: object, field: str) -> bool:
    return isinstance(row, dict) and field in row


def _as_ids(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return [str(v) for v in value]
    if isinstance(value, str | int):
        return [str(value)]
    return None


def _is_columnar(params: Mapping[str, object]) -> bool:
    lengths = {len(v) if isinstance(v, list) else -1 for v in params.values()}
    return len(lengths) == 1 and -1 not in lengths and len(params) > 0


def _columns_to_rows(columns: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _without_row_ids(rows: list[Any], id_field: str | None) -> list[Any]:
    # Rows that carry their own id: the id is not a feature.
    if id_field and rows and all(_row_has(r, id_field) for r in rows):
        return [{k: v for k, v in row.items() if k != id_field} for row in rows]
    return rows
