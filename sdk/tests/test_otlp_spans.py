"""The spans inferwatch writes itself parse as what the OpenTelemetry SDK and its OTLP encoder
make of the same call: same resource, scope, name, kind, times, attributes, status, events and
trace linkage (only the random ids differ)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import AttributeValue

from inferwatch import contract, ids
from inferwatch.export_queue import PendingSpan
from inferwatch.frame import Frame, encode_frame, numeric
from inferwatch.otlp_spans import SpanEncoder

RESOURCE = Resource.create({"service.name": "spans-test"})


class _Keep(SpanProcessor):
    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


def by_the_sdk(calls: list[PendingSpan]) -> ExportTraceServiceRequest:
    """What the OpenTelemetry SDK's span and OTLP encoder make of the calls (every call
    recorded, whatever its parent sampled)."""
    kept = _Keep()
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        resource=RESOURCE,
        span_limits=SpanLimits(max_span_attributes=64, max_attribute_length=None),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(kept)
    tracer = provider.get_tracer(contract.INSTRUMENTATION_SCOPE)
    for call in calls:
        span = tracer.start_span(
            contract.SPAN_NAME,
            context=call.parent,
            kind=SpanKind.INTERNAL,
            attributes=call.attributes,
            start_time=call.start_ns,
        )
        if call.error is not None:
            kind, message = call.error
            span.set_status(Status(StatusCode.ERROR, kind))
            span.add_event(
                "exception",
                {"exception.type": kind, "exception.message": message},
                timestamp=call.end_ns,
            )
        span.end(end_time=call.end_ns)
    return encode_spans(kept.ended)


def by_inferwatch(calls: list[PendingSpan]) -> ExportTraceServiceRequest:
    encoder = SpanEncoder(RESOURCE)
    return ExportTraceServiceRequest.FromString(
        b"".join(encoder.request([encoder.span(call) for call in calls]))
    )


def call(
    attributes: dict[str, AttributeValue],
    parent: context.Context | None = None,
    error: tuple[str, str] | None = None,
) -> PendingSpan:
    start = time.time_ns()
    return PendingSpan(attributes, start, start + 12_345, parent or context.Context(), error)


def assert_same(calls: list[PendingSpan]) -> ExportTraceServiceRequest:
    ours, theirs = by_inferwatch(calls), by_the_sdk(calls)
    ours_spans = ours.resource_spans[0].scope_spans[0].spans
    theirs_spans = theirs.resource_spans[0].scope_spans[0].spans
    assert len(ours_spans) == len(theirs_spans) == len(calls)
    for mine, other in zip(ours_spans, theirs_spans, strict=True):
        assert len(mine.trace_id) == 16 and len(mine.span_id) == 8
        assert mine.span_id != bytes(8) and mine.trace_id != bytes(16)
        other.span_id = mine.span_id
        if not other.parent_span_id:  # a root: its trace id is random too
            other.trace_id = mine.trace_id
    assert ours == theirs
    return ours


def row_attributes(rows: int, prediction_ids: list[str]) -> dict[str, AttributeValue]:
    x = np.random.default_rng(rows).normal(size=(rows, 20))
    return {
        contract.ATTR_SCHEMA_VERSION: contract.SCHEMA_VERSION,
        contract.ATTR_MODEL_NAME: "credit",
        contract.ATTR_MODEL_VERSION: "3",
        contract.ATTR_TASK: "classification",
        contract.ATTR_ROWS: rows,
        contract.ATTR_PREDICTION_IDS: prediction_ids,
        contract.ATTR_SAMPLE_RATE: 0.25,
        contract.ATTR_INPUT_FRAME: encode_frame(Frame(rows, (numeric("x", x),))),
        contract.ATTR_OUTPUT_FRAME: encode_frame(
            Frame(rows, (numeric("prediction", x[:, 0], role="output"),))
        ),
    }


def test_a_batch_of_calls_with_generated_ids_is_one_resource_and_scope() -> None:
    calls = [call(row_attributes(1, ids.new_ids(1))), call(row_attributes(1000, ids.new_ids(1000)))]
    request = assert_same(calls)
    assert len(request.resource_spans) == 1 and len(request.resource_spans[0].scope_spans) == 1
    ours = request.resource_spans[0].scope_spans[0].spans[1]
    (frame,) = (a.value.bytes_value for a in ours.attributes if a.key == contract.ATTR_INPUT_FRAME)
    assert frame == calls[1].attributes[contract.ATTR_INPUT_FRAME]


@pytest.mark.parametrize(
    "prediction_ids",
    [
        ["a", "bb", "ccc"],  # lengths differ
        ["é1", "é2"],  # not ASCII
        ["x" * 200, "y" * 200],  # too long for one-byte lengths
        ["", ""],
        [],
        # Checked on the joined text: what must not pass for strings of one length.
        ["abc", "a", "abcde"],  # lengths differ, the total as if they did not
        ["a\nb", "cde"],  # a newline in a value
        ["ab\x06\n\x04", "cdefg"],  # a separator's bytes inside a value
        ["k\n\x05\n\x03xyz", "0123456789"],  # a whole separator inside a value
        ["r" * 125, "s" * 125],  # the longest one-byte length
    ],
)
def test_prediction_ids_given_by_the_application(prediction_ids: list[str]) -> None:
    attributes = row_attributes(len(prediction_ids), prediction_ids)
    assert_same([call(attributes)])


def test_every_attribute_type_and_the_capture_error() -> None:
    attributes: dict[str, AttributeValue] = {
        **row_attributes(2, ["p1", "p2"]),
        "flag": True,
        "off": False,
        "zero": 0,
        "negative": -7,
        "big": 2**62,
        "nan": float("nan"),
        "empty": "",
        "numbers": [1.5, -2.0],
        "ints": [1, 2, 3],
        "bools": [True, False],
        contract.ATTR_CAPTURE_ERROR: "'when' holds a datetime value; ünïcode",
    }
    # The encoder caches scalar attributes: a second, different call must not reuse them.
    assert_same([call(attributes), call({**attributes, "flag": 1, "zero": 0.0, "nan": 1.0})])


def test_a_call_that_raised_has_an_error_status_and_an_exception_event() -> None:
    error = ("mymodule.ModelError", "the model could not score the row " * 40)
    assert_same([call(row_attributes(1, ids.new_ids(1)), error=error)])


def test_a_child_of_the_applications_local_span_keeps_its_trace_and_state() -> None:
    parent = SpanContext(
        trace_id=0x1234,
        span_id=0x5678,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
    )
    ctx = trace.set_span_in_context(NonRecordingSpan(parent))
    request = assert_same([call(row_attributes(1, ids.new_ids(1)), parent=ctx)])
    (span,) = request.resource_spans[0].scope_spans[0].spans
    assert span.trace_id == (0x1234).to_bytes(16, "big")
    assert span.parent_span_id == (0x5678).to_bytes(8, "big")
    assert span.trace_state == "vendor=v1,other=x"


def test_a_child_of_a_remote_parent_and_of_an_unsampled_one() -> None:
    remote = SpanContext(trace_id=7, span_id=9, is_remote=True)  # not sampled (BentoML's)
    ctx = trace.set_span_in_context(NonRecordingSpan(remote))
    request = assert_same([call(row_attributes(1, ids.new_ids(1)), parent=ctx)])
    (span,) = request.resource_spans[0].scope_spans[0].spans
    assert span.flags == 0x300


def test_an_invalid_active_span_makes_a_root() -> None:
    ctx = trace.set_span_in_context(trace.INVALID_SPAN)
    request = assert_same([call(row_attributes(1, ids.new_ids(1)), parent=ctx)])
    (span,) = request.resource_spans[0].scope_spans[0].spans
    assert span.parent_span_id == b""
