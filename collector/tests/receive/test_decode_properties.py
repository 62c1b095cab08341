"""Property-based tests of the OTLP decoder: whatever the body, it raises nothing but a
ReceiveError (400/413/415), and every batch it produces is one the pipeline can hold."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from inferwatch import contract
from inferwatch.collector.receive import ReceiveError, decode_export_request
from inferwatch.collector.receive.otlp import DecodedTraces
from inferwatch.collector.settings.limits import IngestLimits
from inferwatch.frame import CategoricalColumn, NumericBlock

from .helpers import pb_value

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
NOW_NS = time.time_ns()
# Small limits, so that examples reach them.
LIMITS = IngestLimits(
    spans_per_request=8,
    values_per_request=400,
    attributes_per_span=12,
    rows_per_span=16,
    text_chars=24,
    columns_per_frame=6,
    cells_per_frame=40,
    frame_text_chars=24,
    frame_header_bytes=2048,
)
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode(body: bytes, kind: str) -> DecodedTraces | None:
    try:
        return decode_export_request(body, kind, LIMITS, NOW_NS)
    except ReceiveError:
        return None


def check_invariants(decoded: DecodedTraces | None) -> None:
    if decoded is None:
        return
    earliest = NOW_NS - int(LIMITS.max_span_age * 1e9)
    latest = NOW_NS + int(LIMITS.max_clock_skew * 1e9)
    for batch in decoded.batches:
        assert len(batch.ids) == batch.rows <= LIMITS.rows_per_span
        assert earliest <= batch.start_ns <= batch.end_ns <= latest
        assert 0 < batch.sample_rate <= 1
        texts = [batch.model, batch.version, batch.task or "", batch.error or "", *batch.issues]
        for frame in (batch.inputs, batch.outputs):
            if frame is None:
                continue
            assert frame.rows == batch.rows
            features = 0
            for column in frame.columns:
                if isinstance(column, NumericBlock):
                    assert column.values.shape == (frame.rows, column.width)
                    features += column.width
                    texts.extend(column.feature_names())
                else:
                    assert isinstance(column, CategoricalColumn)
                    assert column.codes.shape == (frame.rows,)
                    features += 1
                    texts.extend([column.name, *column.categories])
            assert features <= LIMITS.columns_per_frame
            assert frame.rows * features <= LIMITS.cells_per_frame
        # Everything kept is valid Unicode (ids excepted: stored with surrogatepass).
        for text in texts:
            text.encode("utf-8")
    for error in decoded.errors:
        error.encode("utf-8")


# -- arbitrary bodies ---------------------------------------------------------------------------


@EXAMPLES
@given(st.binary(max_size=2048))
def test_arbitrary_protobuf_bodies(body):
    check_invariants(decode(body, PROTOBUF))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@EXAMPLES
@given(json_values)
def test_arbitrary_json_documents(document):
    check_invariants(decode(json.dumps(document).encode(), JSON))


# -- well-formed requests with arbitrary attribute values ----------------------------------------

scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=64)
)
attribute_values = scalars | st.lists(scalars, max_size=20)
CONTRACT_KEYS = st.sampled_from(
    [
        contract.ATTR_MODEL_NAME,
        contract.ATTR_MODEL_VERSION,
        contract.ATTR_TASK,
        contract.ATTR_ROWS,
        contract.ATTR_PREDICTION_IDS,
        contract.ATTR_INPUT_FRAME,
        contract.ATTR_OUTPUT_FRAME,
        contract.ATTR_SAMPLE_RATE,
        contract.ATTR_CAPTURE_ERROR,
        "other.key",
    ]
)
times = st.integers(min_value=0, max_value=2**64 - 1) | st.sampled_from([NOW_NS, NOW_NS - 1])


def frame_bytes(header: Any, tail: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return b"IWF1" + len(text).to_bytes(4, "little") + text + tail


column_specs = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["numeric", "categorical", "other"]),
        "name": st.text(max_size=30),
        "dtype": st.sampled_from(["<f8", "<f4", "<i8"]),
        "width": st.integers(min_value=-1, max_value=10**12),
        "categories": st.lists(st.text(max_size=30), max_size=4),
    },
    optional={"names": st.lists(st.text(max_size=4), max_size=3), "role": st.text(max_size=8)},
)
frames = st.builds(
    frame_bytes,
    st.fixed_dictionaries(
        {
            "rows": st.integers(min_value=-1, max_value=10**12),
            "columns": st.lists(column_specs, max_size=3),
        }
    ),
    st.binary(max_size=256),
)


spans = st.fixed_dictionaries(
    {
        "attributes": st.dictionaries(CONTRACT_KEYS, attribute_values | frames, max_size=10),
        "start": times,
        "end": times,
        "span_id": st.binary(min_size=8, max_size=8),
    }
)


def pb_request(drawn: list[dict[str, Any]]) -> bytes:
    out = []
    for span in drawn:
        attrs = {contract.ATTR_SCHEMA_VERSION: 1, **span["attributes"]}
        out.append(
            Span(
                trace_id=b"\x01" * 16,
                span_id=span["span_id"],
                start_time_unix_nano=span["start"],
                end_time_unix_nano=span["end"],
                attributes=[KeyValue(key=k, value=pb_value(v)) for k, v in attrs.items()],
            )
        )
    scope = ScopeSpans(spans=out)
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[scope])]
    ).SerializeToString()


def json_value(value: object) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value if value == value and abs(value) != float("inf") else "NaN"}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [json_value(v) for v in value]}}
    return {"stringValue": value}


def json_request(drawn: list[dict[str, Any]]) -> bytes:
    out = []
    for span in drawn:
        attrs = {contract.ATTR_SCHEMA_VERSION: 1, **span["attributes"]}
        out.append(
            {
                "traceId": "01" * 16,
                "spanId": span["span_id"].hex(),
                "startTimeUnixNano": str(span["start"]),
                "endTimeUnixNano": span["end"],
                "attributes": [{"key": k, "value": json_value(v)} for k, v in attrs.items()],
            }
        )
    # surrogates in st.text() survive json.dumps as \ud800 escapes, as a client could send them
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": out}]}]}).encode()


@EXAMPLES
@given(st.lists(spans, max_size=4))
def test_protobuf_requests_with_arbitrary_attribute_values(drawn):
    try:
        body = pb_request(drawn)
    except ValueError:  # a string protobuf refuses to encode (a lone surrogate)
        return
    check_invariants(decode(body, PROTOBUF))


@EXAMPLES
@given(st.lists(spans, max_size=4))
def test_json_requests_with_arbitrary_attribute_values(drawn):
    check_invariants(decode(json_request(drawn), JSON))
