"""Decode an OTLP ExportTraceServiceRequest (protobuf or OTLP JSON) into PredictionBatches.

Two thin adapters walk the request, one per encoding, and hand each inferwatch span to one
interpreter as plain Python values. The request envelope must be valid OTLP (else BadRequest, the
whole request is refused) and within the per-request limits (else PayloadTooLarge, checked on the
wire before protobuf allocates anything). An inferwatch span is rejected alone when it cannot be
attributed to a model, when its times lie outside the window of now that ``IngestLimits`` allows,
or when it is over a per-span limit; every other problem becomes an entry of
``PredictionBatch.issues`` and the batch is delivered with whatever could be decoded.

No message this module writes holds a value the client sent (it may be a secret): only its type
and length.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from inferwatch import contract
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.receive.census import (
    Census,
    check_counts,
    count_json_tokens,
    count_protobuf,
)
from inferwatch.collector.receive.errors import BadRequest, UnsupportedMediaType
from inferwatch.collector.settings.limits import DEFAULT_LIMITS, IngestLimits
from inferwatch.frame import Frame, FrameError, FrameLimits, decode_frame

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)

# The version given to a span that names no model version (the SDK's default too).
UNVERSIONED = contract.DEFAULT_VERSION

_CONTRACT_KEYS = (
    contract.ATTR_SCHEMA_VERSION,
    contract.ATTR_MODEL_NAME,
    contract.ATTR_MODEL_VERSION,
    contract.ATTR_TASK,
    contract.ATTR_ROWS,
    contract.ATTR_PREDICTION_IDS,
    contract.ATTR_INPUT_FRAME,
    contract.ATTR_OUTPUT_FRAME,
    contract.ATTR_SAMPLE_RATE,
    contract.ATTR_CAPTURE_ERROR,
)
# OTLP's id lengths; an empty id is tolerated (some exporters leave it unset).
_TRACE_ID_BYTES = (0, 16)
_SPAN_ID_BYTES = (0, 8)
# More digits than a uint64 has cannot be a time.
_MAX_UINT_DIGITS = 20
_BEYOND_UINT64 = 2**64
_SURROGATE = re.compile("[\ud800-\udfff]")
_STATUS_ERROR = Status.STATUS_CODE_ERROR
_JSON_STATUS_ERROR = ("STATUS_CODE_ERROR", _STATUS_ERROR)


@dataclass(slots=True)
class DecodedTraces:
    """What one export request held."""

    batches: list[PredictionBatch] = field(default_factory=list)
    # Spans without inferwatch attributes (other instrumentation sharing the pipeline).
    ignored: int = 0
    # Inferwatch spans that could not be attributed to a model, or of an unknown schema version.
    rejected: int = 0
    # Inferwatch spans repeated within the request (same trace and span id); delivered once.
    duplicates: int = 0
    # One sentence per rejected span.
    errors: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.batches) + self.ignored + self.rejected + self.duplicates


def media_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return content_type.partition(";")[0].strip().lower()


def decode_export_request(
    body: bytes,
    content_type: str,
    limits: IngestLimits = DEFAULT_LIMITS,
    now_ns: int | None = None,
) -> DecodedTraces:
    """Decode an uncompressed request body received at ``now_ns`` (the clock's, by default).

    Raises BadRequest for an undecodable body, PayloadTooLarge for one over a per-request limit.
    """
    kind = media_type(content_type)
    if kind == PROTOBUF:
        spans = _protobuf_spans(body, limits)
    elif kind == JSON:
        spans = _json_spans(body, limits)
    else:
        raise UnsupportedMediaType(
            f"Content type {kind or '(none)'!r} is not supported; "
            f"send one of {', '.join(CONTENT_TYPES)}."
        )
    interpreter = _Interpreter(limits, time.time_ns() if now_ns is None else now_ns)
    decoded = DecodedTraces()
    seen: set[tuple[bytes, bytes]] = set()
    for span in spans:
        if span is None:
            decoded.ignored += 1
            continue
        if span.span_id:
            key = (span.trace_id, span.span_id)
            if key in seen:
                decoded.duplicates += 1
                continue
            seen.add(key)
        try:
            decoded.batches.append(interpreter.to_batch(span))
        except _Rejected as exc:
            decoded.rejected += 1
            decoded.errors.append(str(exc))
    return decoded


# -- the interpreter: one inferwatch span, as Python values, to a PredictionBatch ----------------


@dataclass(frozen=True, slots=True)
class _Span:
    trace_id: bytes
    span_id: bytes
    start_ns: int
    end_ns: int
    error: str | None
    # The contract attributes the span carries, as Python values (see _pb_value / _json_value).
    attributes: dict[str, Any]
    # How many attributes, events and links the span has (of any kind).
    attribute_count: int
    event_count: int
    link_count: int


@dataclass(frozen=True, slots=True)
class _BadValue:
    """An attribute value that could not be converted; ``reason`` completes 'the value ...'."""

    reason: str


class _Rejected(Exception):
    pass


class _Interpreter:
    """Turns spans into batches under ``limits``, at the time ``now_ns``."""

    def __init__(self, limits: IngestLimits, now_ns: int) -> None:
        self.limits = limits
        self.frame_limits: FrameLimits = limits.frame_limits()
        self.earliest_ns = now_ns - int(limits.max_span_age * 1e9)
        self.latest_ns = now_ns + int(limits.max_clock_skew * 1e9)

    def to_batch(self, span: _Span) -> PredictionBatch:
        attrs = span.attributes
        name = _span_name(span)
        schema = attrs.get(contract.ATTR_SCHEMA_VERSION)
        if type(schema) is not int or schema != contract.SCHEMA_VERSION:
            raise _Rejected(
                f"{name} has {contract.ATTR_SCHEMA_VERSION} = {_show(schema)}; "
                f"this collector reads schema version {contract.SCHEMA_VERSION}."
            )
        self._check_shape(span, name)
        self._check_times(span, name)
        issues: list[str] = []
        model = self._name(attrs, contract.ATTR_MODEL_NAME, name, issues)
        if not model:
            raise _Rejected(
                f"{name} has no usable {contract.ATTR_MODEL_NAME} "
                "(a non-empty string), so it cannot be attributed to a model."
            )
        version = self._name(attrs, contract.ATTR_MODEL_VERSION, name, issues) or UNVERSIONED
        task = _task(attrs, issues)
        declared_rows = _count(attrs, contract.ATTR_ROWS, issues)
        ids = self._ids(attrs, issues)
        rows_limit = self.limits.rows_per_span
        for what, count in (
            (contract.ATTR_ROWS, declared_rows),
            (contract.ATTR_PREDICTION_IDS, len(ids) if ids is not None else None),
        ):
            if count is not None and count > rows_limit:
                raise _Rejected(
                    f"{name} has {what} of {count:,} rows; the limit is "
                    f"rows_per_span = {rows_limit:,} ([collector.limits])."
                )
        inputs = self._frame(attrs, contract.ATTR_INPUT_FRAME, issues)
        outputs = self._frame(attrs, contract.ATTR_OUTPUT_FRAME, issues)

        outputs, ids = _align_rows(span, inputs, outputs, declared_rows, ids, issues)

        capture_error = attrs.get(contract.ATTR_CAPTURE_ERROR)
        if capture_error is not None:
            what = (
                self._message(capture_error)
                if isinstance(capture_error, str)
                else _show(capture_error)
            )
            issues.append(f"The SDK could not capture part of the call: {what}")
        return PredictionBatch(
            model=model,
            version=version,
            task=task,
            trace_id=span.trace_id,
            span_id=span.span_id,
            start_ns=span.start_ns,
            end_ns=span.end_ns,
            error=self._message(span.error) if span.error is not None else None,
            ids=ids,
            inputs=inputs,
            outputs=outputs,
            sample_rate=_sample_rate(attrs, issues),
            issues=tuple(issues),
        )

    def _check_shape(self, span: _Span, name: str) -> None:
        if len(span.trace_id) not in _TRACE_ID_BYTES or len(span.span_id) not in _SPAN_ID_BYTES:
            raise _Rejected(
                f"{name} has a trace id of {len(span.trace_id)} bytes and a span id of "
                f"{len(span.span_id)} bytes; OTLP ids are 16 and 8 bytes."
            )
        limits = self.limits
        for what, count, setting, limit in (
            ("attributes", span.attribute_count, "attributes_per_span", limits.attributes_per_span),
            ("events", span.event_count, "events_per_span", limits.events_per_span),
            ("links", span.link_count, "links_per_span", limits.links_per_span),
        ):
            if count > limit:
                raise _Rejected(
                    f"{name} has {count:,} {what}; the limit is {setting} = {limit:,} "
                    "([collector.limits])."
                )

    def _check_times(self, span: _Span, name: str) -> None:
        limits = self.limits
        if span.start_ns < self.earliest_ns:
            raise _Rejected(
                f"{name} started {_ago(span.start_ns, self.earliest_ns)} more than "
                f"max_span_age = {limits.max_span_age:g} s before now ([collector.limits]); "
                "it is too old to be counted in any window."
            )
        if max(span.start_ns, span.end_ns) > self.latest_ns:
            raise _Rejected(
                f"{name} {'ends' if span.start_ns <= self.latest_ns else 'starts'} more than "
                f"max_clock_skew = {limits.max_clock_skew:g} s after now ([collector.limits]); "
                "check the clock of the process that sent it."
            )
        if span.end_ns < span.start_ns:
            raise _Rejected(f"{name} ends before it starts.")

    def _name(self, attrs: dict[str, Any], key: str, name: str, issues: list[str]) -> str | None:
        """The model name or version: what a window is stored under, so it must be valid."""
        value = _text(attrs, key, issues)
        if value is None:
            return None
        limit = self.limits.text_chars
        if len(value) > limit:
            raise _Rejected(
                f"{name} has a {key} of {len(value):,} characters; the limit is "
                f"text_chars = {limit:,} ([collector.limits])."
            )
        if not _valid_unicode(value):
            raise _Rejected(f"{name} has a {key} that is not valid Unicode (a lone surrogate).")
        return value

    def _message(self, text: str) -> str:
        """Text the client wrote that is kept (an error type, a capture problem): shortened,
        lone surrogates replaced, so that storing and showing it can never fail."""
        limit = self.limits.text_chars
        if len(text) > limit:
            text = text[: limit - 3] + "..."
        if not _valid_unicode(text):
            text = _SURROGATE.sub("\ufffd", text)
        return text

    def _ids(self, attrs: dict[str, Any], issues: list[str]) -> tuple[str, ...] | None:
        ids = _ids(attrs, issues)
        if ids is None:
            return None
        limit = self.limits.text_chars
        if max(map(len, ids), default=0) > limit:
            issues.append(
                f"{contract.ATTR_PREDICTION_IDS} holds an id longer than text_chars = {limit:,} "
                "characters; ids were derived from the span id instead, so labels cannot be "
                "joined to these rows."
            )
            return None
        return ids

    def _frame(self, attrs: dict[str, Any], key: str, issues: list[str]) -> Frame | None:
        value = attrs.get(key)
        if value is None:
            return None
        if not isinstance(value, bytes):
            issues.append(_wrong_type(key, "bytes (an inferwatch frame)", value))
            return None
        try:
            return decode_frame(value, limits=self.frame_limits)
        except FrameError as exc:
            issues.append(f"{key} could not be decoded: {exc}.")
            return None


def _span_name(span: _Span) -> str:
    return f"Span {span.span_id.hex()}" if span.span_id else "A span without a span id"


def _ago(start_ns: int, earliest_ns: int) -> str:
    return "at the epoch," if start_ns == 0 else f"{(earliest_ns - start_ns) / 1e9:,.0f} s"


def _valid_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _align_rows(
    span: _Span,
    inputs: Frame | None,
    outputs: Frame | None,
    declared_rows: int | None,
    ids: tuple[str, ...] | None,
    issues: list[str],
) -> tuple[Frame | None, tuple[str, ...]]:
    """Make outputs and ids agree with the inputs' rows, or drop what cannot be matched."""
    if inputs is not None:
        rows = inputs.rows
    elif outputs is not None:
        rows = outputs.rows
    elif declared_rows is not None:
        rows = declared_rows
    else:
        rows = len(ids) if ids is not None else 0
    if outputs is not None and outputs.rows != rows:
        issues.append(
            f"{contract.ATTR_OUTPUT_FRAME} has {outputs.rows} rows but {contract.ATTR_INPUT_FRAME} "
            f"has {rows}; the outputs were dropped because their rows cannot be matched to inputs."
        )
        outputs = None
    if declared_rows is not None and declared_rows != rows:
        issues.append(f"{contract.ATTR_ROWS} says {declared_rows} rows but the frames hold {rows}.")
    if ids is None or len(ids) != rows:
        if ids is not None:
            issues.append(
                f"{contract.ATTR_PREDICTION_IDS} holds {len(ids)} ids for {rows} rows; ids were "
                "derived from the span id instead, so labels cannot be joined to these rows."
            )
        elif rows:
            issues.append(
                f"{contract.ATTR_PREDICTION_IDS} is missing; ids were derived from the span id, "
                "so labels cannot be joined to these rows."
            )
        prefix = span.span_id.hex()
        ids = tuple(f"{prefix}-{i}" for i in range(rows))

    return outputs, ids


def _show(value: object) -> str:
    """A value as messages may show it: its type and size, never the value itself (a value a
    client sent may be a secret, and these messages reach logs and the client)."""
    if value is None:
        return "(missing)"
    if isinstance(value, _BadValue):
        return f"a value that {value.reason}"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number" if math.isfinite(value) else "a number that is not finite"
    if isinstance(value, str):
        return f"a string of {len(value):,} characters"
    if isinstance(value, bytes):
        return f"{len(value):,} bytes"
    if isinstance(value, list):
        return f"an array of {len(value):,} values"
    if isinstance(value, dict):
        return f"a key-value list of {len(value):,} entries"
    return f"a {type(value).__name__}"


def _wrong_type(key: str, expected: str, value: object) -> str:
    return f"{key} should be {expected} but is {_show(value)}; it was ignored."


def _text(attrs: dict[str, Any], key: str, issues: list[str]) -> str | None:
    value = attrs.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        issues.append(f"{key} should be a string but is a number; it was read as text.")
        return str(value)
    issues.append(_wrong_type(key, "a string", value))
    return None


def _task(attrs: dict[str, Any], issues: list[str]) -> str | None:
    value = attrs.get(contract.ATTR_TASK)
    if value is None or value in contract.TASKS:
        return value
    issues.append(_wrong_type(contract.ATTR_TASK, f"one of {contract.TASKS}", value))
    return None


def _count(attrs: dict[str, Any], key: str, issues: list[str]) -> int | None:
    value = attrs.get(key)
    if value is None or (type(value) is int and value >= 0):
        return value
    issues.append(_wrong_type(key, "a non-negative integer", value))
    return None


def _sample_rate(attrs: dict[str, Any], issues: list[str]) -> float:
    value = attrs.get(contract.ATTR_SAMPLE_RATE)
    if value is None:
        return 1.0
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1:
        return float(value)
    issues.append(_wrong_type(contract.ATTR_SAMPLE_RATE, "a number in (0, 1]", value))
    return 1.0


def _ids(attrs: dict[str, Any], issues: list[str]) -> tuple[str, ...] | None:
    value = attrs.get(contract.ATTR_PREDICTION_IDS)
    if value is None:
        return None
    if not isinstance(value, list):
        issues.append(_wrong_type(contract.ATTR_PREDICTION_IDS, "an array of strings", value))
        return None
    if set(map(type, value)) <= {str}:
        return tuple(value)
    if all(isinstance(item, str | int) and not isinstance(item, bool) for item in value):
        issues.append(
            f"{contract.ATTR_PREDICTION_IDS} should be an array of strings; "
            "numbers were read as text."
        )
        return tuple(str(item) for item in value)
    issues.append(_wrong_type(contract.ATTR_PREDICTION_IDS, "an array of strings", value))
    return None


# -- protobuf -------------------------------------------------------------------------------------


def _protobuf_spans(body: bytes, limits: IngestLimits) -> Iterator[_Span | None]:
    count_protobuf(body, limits)
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError:
        raise BadRequest("The body is not a valid protobuf ExportTraceServiceRequest.") from None
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                values = {kv.key: kv.value for kv in span.attributes}
                if contract.ATTR_SCHEMA_VERSION not in values:
                    yield None
                    continue
                yield _Span(
                    span.trace_id,
                    span.span_id,
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                    _pb_error(span),
                    {key: _pb_value(values[key]) for key in _CONTRACT_KEYS if key in values},
                    len(span.attributes),
                    len(span.events),
                    len(span.links),
                )


def _pb_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        array = value.array_value
        texts = _uniform_ascii_strings(array.SerializeToString())
        if texts is not None:
            return texts
        items = array.values
        # Fast path for the ids array: a non-empty string_value can only come from a string
        # element (oneof), so when none is empty every element was a string.
        strings = [item.string_value for item in items]
        if all(strings):
            return strings
        return [_pb_value(item) for item in items]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    return None if which is None else getattr(value, which)


def _uniform_ascii_strings(wire: bytes) -> list[str] | None:
    """The values of a serialized ArrayValue when all are ASCII strings of one short length (the
    SDK's prediction ids); else None.

    Reading 100 ids one protobuf element at a time costs a message object an id; here one
    serialization and one split make them all. Each element is then the same 4 bytes (the tags
    and lengths of ``values`` and ``string_value``) followed by the string, so splitting on
    those bytes gives the strings, provided every piece has the one length: a piece of another
    length means the separator also occurred inside a string, and the slow path reads it.
    """
    if len(wire) < 4 or wire[0] != 0x0A or wire[2] != 0x0A:
        return None
    stride, size = wire[1] + 2, wire[3]
    if stride >= 0x80 + 2 or size != stride - 4 or len(wire) % stride or not wire.isascii():
        return None
    text = wire.decode("ascii")
    pieces = text.split(text[:4])
    if len(pieces) != len(wire) // stride + 1 or pieces[0] or set(map(len, pieces[1:])) != {size}:
        return None
    del pieces[0]
    return pieces


def _pb_error(span: Span) -> str | None:
    if span.status.code != _STATUS_ERROR:
        return None
    for event in span.events:
        if event.name == "exception":
            for kv in event.attributes:
                if kv.key == "exception.type" and kv.value.string_value:
                    return kv.value.string_value
    return span.status.message or "error"


# -- OTLP JSON ------------------------------------------------------------------------------------
# OTLP JSON differs from protobuf's JSON mapping: ids are hex, enums are integers, 64-bit integers
# may be strings, and unknown fields must be ignored. Walking the parsed JSON directly is simpler
# and faster than rewriting it for json_format.ParseDict (bench/results/receive.md).


def _json_spans(body: bytes, limits: IngestLimits) -> Iterator[_Span | None]:
    count_json_tokens(body, limits)
    try:
        document = json.loads(body)
    except RecursionError:
        raise BadRequest("The body nests JSON too deeply to be OTLP.") from None
    except ValueError as exc:
        raise BadRequest(f"The body is not valid JSON ({exc}).") from None
    if not isinstance(document, dict):
        raise BadRequest("The body is not an OTLP JSON ExportTraceServiceRequest object.")
    resources = _json_list(document, "resourceSpans", "the request")
    census = Census(resources=len(resources))
    check_counts(census, limits)
    scopes = []
    for r, resource_spans in enumerate(resources):
        where = f"resourceSpans[{r}]"
        for s, scope_spans in enumerate(_json_list(resource_spans, "scopeSpans", where)):
            scope_where = f"{where}.scopeSpans[{s}]"
            spans = _json_list(scope_spans, "spans", scope_where)
            census.scopes += 1
            census.spans += len(spans)
            scopes.append((scope_where, spans))
        check_counts(census, limits)
    for scope_where, spans in scopes:
        for n, span in enumerate(spans):
            yield _json_span(span, f"{scope_where}.spans[{n}]")


def _json_span(span: Any, where: str) -> _Span | None:
    if not isinstance(span, dict):
        raise BadRequest(f"{where} is not a JSON object.")
    attributes = _json_list(span, "attributes", where)
    values = _json_attributes(span, where)
    if contract.ATTR_SCHEMA_VERSION not in values:
        return None
    return _Span(
        _json_id(span, "traceId", where),
        _json_id(span, "spanId", where),
        _json_uint(span, "startTimeUnixNano", where),
        _json_uint(span, "endTimeUnixNano", where),
        _json_error(span, where),
        {key: _json_value(values[key]) for key in _CONTRACT_KEYS if key in values},
        len(attributes),
        len(_json_list(span, "events", where)),
        len(_json_list(span, "links", where)),
    )


def _json_list(parent: Any, key: str, where: str) -> list[Any]:
    if not isinstance(parent, dict):
        raise BadRequest(f"{where} is not a JSON object.")
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where}.{key} must be a JSON array.")
    return value


def _json_attributes(parent: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in _json_list(parent, "attributes", where):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise BadRequest(f"{where}.attributes holds an entry without a string 'key'.")
        out[kv["key"]] = kv.get("value")
    return out


def _json_id(span: dict[str, Any], key: str, where: str) -> bytes:
    value = span.get(key) or ""
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{where}.{key} must be a hex string, got {_show(value)}.") from None


def _json_uint(span: dict[str, Any], key: str, where: str) -> int:
    value = span.get(key, 0)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        # Past a uint64's digits the value is beyond any window of now (and int() of
        # thousands of digits refuses), so it stands for "too far" and the span is rejected.
        value = int(value) if len(value) <= _MAX_UINT_DIGITS else _BEYOND_UINT64
    if type(value) is int and value >= 0:
        return value
    raise BadRequest(f"{where}.{key} must be an integer or a decimal string, got {_show(value)}.")


def _json_error(span: dict[str, Any], where: str) -> str | None:
    status = span.get("status")
    if not isinstance(status, dict) or status.get("code") not in _JSON_STATUS_ERROR:
        return None
    for event in _json_list(span, "events", where):
        if isinstance(event, dict) and event.get("name") == "exception":
            exception_type = _json_value(_json_attributes(event, where).get("exception.type"))
            if isinstance(exception_type, str) and exception_type:
                return exception_type
    message = status.get("message")
    return message if isinstance(message, str) and message else "error"


def _json_value(value: Any, depth: int = 0) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        return _BadValue("is not an AnyValue object")
    for key, item in value.items():
        convert = _JSON_SCALARS.get(key)
        if convert is not None:
            return convert(item)
        if key in ("arrayValue", "kvlistValue"):
            if depth >= _MAX_JSON_DEPTH:
                return _BadValue(f"nests arrays deeper than {_MAX_JSON_DEPTH} levels")
            if key == "arrayValue":
                return _json_array(item, depth + 1)
            return _json_kvlist(item, depth + 1)
    return None


def _json_string(item: Any) -> Any:
    return item if isinstance(item, str) else _BadValue("is not a JSON string (stringValue)")


def _json_bool(item: Any) -> Any:
    return item if isinstance(item, bool) else _BadValue("is not true or false (boolValue)")


def _json_int(item: Any) -> Any:
    if type(item) is int:
        return item
    if isinstance(item, str) and len(item) <= _MAX_UINT_DIGITS + 1:
        try:
            return int(item)
        except ValueError:
            pass
    return _BadValue("is not an integer (intValue)")


_JSON_FLOAT_WORDS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _json_double(item: Any) -> Any:
    if isinstance(item, int | float) and not isinstance(item, bool):
        return float(item)
    if isinstance(item, str):
        word = _JSON_FLOAT_WORDS.get(item)
        if word is not None:
            return word
        try:
            return float(item)
        except ValueError:
            pass
    return _BadValue("is not a number (doubleValue)")


def _json_bytes(item: Any) -> Any:
    if isinstance(item, str):
        # Protobuf's JSON mapping accepts standard and URL-safe base64, padded or not.
        text = item.replace("-", "+").replace("_", "/")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            pass
    return _BadValue("is not base64 (bytesValue)")


def _json_array(item: Any, depth: int) -> Any:
    values = item.get("values", []) if isinstance(item, dict) else None
    if not isinstance(values, list):
        return _BadValue("is not an ArrayValue object (arrayValue)")
    return [_json_value(entry, depth) for entry in values]


def _json_kvlist(item: Any, depth: int) -> Any:
    values = item.get("values", []) if isinstance(item, dict) else None
    if not isinstance(values, list) or not all(
        isinstance(kv, dict) and isinstance(kv.get("key"), str) for kv in values
    ):
        return _BadValue("is not a KeyValueList object (kvlistValue)")
    return {kv["key"]: _json_value(kv.get("value"), depth) for kv in values}


_MAX_JSON_DEPTH = 16
_JSON_SCALARS: dict[str, Callable[[Any], Any]] = {
    "stringValue": _json_string,
    "boolValue": _json_bool,
    "intValue": _json_int,
    "doubleValue": _json_double,
    "bytesValue": _json_bytes,
}
