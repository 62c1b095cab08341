"""The OTLP/protobuf bytes of inferwatch's spans, written directly from the recorded calls.

Through the OpenTelemetry SDK, each call would become a Span object (its attributes copied and
checked value by value: the 1,000 prediction ids of a batch one at a time) and its OTLP encoder
would then build one protobuf message per attribute value: ~50 µs of the export thread's CPU a
one-row call and ~2 ms a 1,000-row batch. An inferwatch span has a fixed shape
(docs/span-contract.md), so this module writes its protobuf fields itself: the constant parts
(resource, scope, name and kind, each model's name and version) are encoded once, a frame is
never copied (a request is a list of chunks: the frames as the model's thread made them, and
the small fields between them joined), a batch's prediction ids are written with one string
join, and one request carries a whole batch under a single resource and scope.

The bytes parse as the ExportTraceServiceRequest the OpenTelemetry SDK and its encoder make of
the same call, with the same trace linkage (sdk/tests/test_otlp_spans.py compares the two).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import get_current_span
from opentelemetry.util.types import AttributeValue

from inferwatch import contract
from inferwatch.export_queue import PendingSpan

_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
_SMALL_VARINTS = [bytes((i,)) for i in range(128)]
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

# Span.kind = SPAN_KIND_INTERNAL; Status.code = STATUS_CODE_ERROR.
_KIND_INTERNAL = 1
_STATUS_ERROR = 2
# Span.flags, as the OpenTelemetry encoder sets them: whether the parent is remote is known,
# and (second mask) it is.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
# A status message of its own when the call did not raise (UNSET), as the SDK's encoder sends.
_STATUS_UNSET = b"\x7a\x00"
# A part of a request at least this long is sent as it is; shorter ones are joined, so that a
# request is a few writes to the socket. Copying a large frame would cost more (allocating and
# faulting in its pages) than the write it saves.
_SEPARATE_BYTES = 64 * 1024
# Cached attribute encodings (a model's name and version, the sample rate...): cleared when
# full, so that distinct values (a capture error's text) cannot grow it without bound.
_CACHE_ENTRIES = 4096


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(payload)) + payload


def _any_value(value: object) -> bytes:
    """An AnyValue message (a oneof: every member is written, even a zero or empty one)."""
    if isinstance(value, str):
        return _length_delimited(1, value.encode("utf-8"))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"an integer attribute must fit in 64 bits, got {value}")
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _length_delimited(7, bytes(value))
    if isinstance(value, Sequence):
        return _length_delimited(5, _array_value(value))
    raise TypeError(f"an attribute cannot be a {type(value).__name__}")


def _array_value(values: Sequence[object]) -> bytes:
    """An ArrayValue message; a list of strings of one length (prediction ids) in one join."""
    joined = _joined_strings(values)
    if joined is not None:
        return joined
    return b"".join([_length_delimited(1, _any_value(value)) for value in values])


def _joined_strings(values: Sequence[Any]) -> bytes | None:
    """The ArrayValue of ASCII strings of one length, each 0x0a <len+2> 0x0a <len> <text>,
    written with one join; None for any other values.

    Checked on the joined text rather than value by value (a batch's 1,000 ids: ~20 µs, not
    ~60): a join refuses what is not a string, and when the text holds exactly two newlines
    a value, each at the place the length says, every value lies between two separators and
    has that length.
    """
    if not values or type(values[0]) is not str:
        return None
    length = len(values[0])
    if length >= 126:  # one-byte lengths only
        return None
    separator = f"\n{chr(length + 2)}\n{chr(length)}"
    try:
        joined = separator + separator.join(values)
    except TypeError:
        return None
    count = len(values)
    step = length + 4
    if len(joined) != count * step or not joined.isascii() or joined.count("\n") != 2 * count:
        return None
    encoded = joined.encode("ascii")
    newlines = b"\n" * count
    if encoded[::step] != newlines or encoded[2::step] != newlines:
        return None
    return encoded


def _key_value(key: str, value: object) -> bytes:
    """A KeyValue message."""
    return _length_delimited(1, key.encode("utf-8")) + _length_delimited(2, _any_value(value))


class SpanEncoder:
    """Encodes the recorded calls of one pipeline (its resource) as OTLP export requests.

    Only the export thread uses it.
    """

    def __init__(self, resource: Resource) -> None:
        attributes = b"".join(
            _length_delimited(1, _key_value(key, value))
            for key, value in resource.attributes.items()
        )
        # ResourceSpans.resource and ScopeSpans.scope (InstrumentationScope.name), ready to
        # prefix every request.
        self._resource = _length_delimited(1, attributes)
        self._scope = _length_delimited(
            1, _length_delimited(1, contract.INSTRUMENTATION_SCOPE.encode())
        )
        self._name_and_kind = _length_delimited(5, contract.SPAN_NAME.encode()) + (
            _tag(6, 0) + _varint(_KIND_INTERNAL)
        )
        self._flags_tag = _tag(16, 5)
        # Span.attributes entries of scalar values, by (key, type, value): True, 1 and 1.0 are
        # equal keys of a dict, but not the same attribute.
        self._scalars: dict[tuple[str, type, object], bytes] = {}

    def request(self, spans: Sequence[list[bytes]]) -> list[bytes]:
        """The ExportTraceServiceRequest of spans made by ``span`` (one resource, one scope),
        as chunks to send one after the other."""
        lengths = [sum(map(len, span)) for span in spans]
        heads = [b"\x12" + _varint(length) for length in lengths]
        scope_length = len(self._scope) + sum(map(len, heads)) + sum(lengths)
        scope_head = b"\x12" + _varint(scope_length)
        resource_length = len(self._resource) + len(scope_head) + scope_length
        chunks: list[bytes] = []
        run = [b"\x0a", _varint(resource_length), self._resource, scope_head, self._scope]
        for head, span in zip(heads, spans, strict=True):
            run.append(head)
            for part in span:
                if len(part) >= _SEPARATE_BYTES:
                    chunks += (b"".join(run), part)
                    run = []
                else:
                    run.append(part)
        if run:
            chunks.append(b"".join(run))
        return chunks

    def span(self, pending: PendingSpan) -> list[bytes]:
        """One call's Span message, for ``request``: its parts, a large frame on its own."""
        parent = get_current_span(pending.parent).get_span_context()
        span_id = _nonzero_bits(64).to_bytes(8, "big")
        if parent.is_valid:
            parts = [b"\x0a\x10", parent.trace_id.to_bytes(16, "big"), b"\x12\x08", span_id]
            if parent.trace_state:
                state = ",".join(f"{key}={value}" for key, value in parent.trace_state.items())
                parts.append(_length_delimited(3, state.encode()))
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
            flags = _HAS_IS_REMOTE | _IS_REMOTE if parent.is_remote else _HAS_IS_REMOTE
        else:
            trace_id = _nonzero_bits(128).to_bytes(16, "big")
            parts = [b"\x0a\x10", trace_id, b"\x12\x08", span_id]
            flags = _HAS_IS_REMOTE
        parts += (
            self._name_and_kind,
            b"\x39" + _FIXED64.pack(pending.start_ns),
            b"\x41" + _FIXED64.pack(pending.end_ns),
        )
        self._attributes(pending.attributes, parts)
        if pending.error is None:
            parts.append(_STATUS_UNSET)
        else:
            kind, message = pending.error
            event = b"\x09" + _FIXED64.pack(pending.end_ns) + _length_delimited(2, b"exception")
            event += _length_delimited(3, _key_value("exception.type", kind))
            event += _length_delimited(3, _key_value("exception.message", message))
            parts.append(_length_delimited(11, event))
            status = _length_delimited(2, kind.encode("utf-8")) + b"\x18" + _varint(_STATUS_ERROR)
            parts.append(_length_delimited(15, status))
        parts += (self._flags_tag, _FIXED32.pack(flags))
        if max(map(len, parts)) < _SEPARATE_BYTES:
            return [b"".join(parts)]
        return parts

    def _attributes(self, attributes: Mapping[str, AttributeValue], parts: list[bytes]) -> None:
        cache = self._scalars
        for key, value in attributes.items():
            if isinstance(value, str | int | float):
                cached = (key, type(value), value)
                entry = cache.get(cached)
                if entry is None:
                    if len(cache) >= _CACHE_ENTRIES:
                        cache.clear()
                    entry = cache[cached] = _length_delimited(9, _key_value(key, value))
                parts.append(entry)
            elif isinstance(value, bytes):
                # A frame: its bytes are joined as they are, not copied into each enclosing
                # message (KeyValue, AnyValue) in turn.
                key_field = _length_delimited(1, key.encode("utf-8"))
                value_head = b"\x3a" + _varint(len(value))
                any_length = len(value_head) + len(value)
                any_head = b"\x12" + _varint(any_length)
                entry_length = len(key_field) + len(any_head) + any_length
                parts += (
                    b"\x4a" + _varint(entry_length) + key_field + any_head + value_head,
                    value,
                )
            else:
                parts.append(_length_delimited(9, _key_value(key, value)))


def _nonzero_bits(bits: int) -> int:
    # An all-zero trace or span id is invalid (as OpenTelemetry's RandomIdGenerator: the module's
    # generator, which Python reseeds in a forked child).
    while True:
        value = random.getrandbits(bits)
        if value:
            return value
