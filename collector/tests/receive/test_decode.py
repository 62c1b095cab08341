"""decode_export_request: bad data inside spans becomes issues, never a crash or a lost request."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import numpy as np
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from inferwatch import contract
from inferwatch.collector.receive import BadRequest, UnsupportedMediaType, decode_export_request
from inferwatch.collector.receive.otlp import UNVERSIONED

PROTOBUF = "application/x-protobuf"


def decode_one(make, **overrides: Any):
    request = make.export_request([make.inferwatch_attributes(**overrides)])
    decoded = decode_export_request(request.SerializeToString(), PROTOBUF)
    assert decoded.rejected == 0, decoded.errors
    (batch,) = decoded.batches
    return batch


def to_otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """protobuf's JSON mapping, turned into OTLP JSON (hex ids, integer enums)."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return document


def test_protobuf_and_otlp_json_decode_to_the_same_batches(make):
    request = make.export_request(
        [make.inferwatch_attributes(seed=s, rows=s + 1) for s in range(3)],
        error=ValueError("bad input"),
    )
    from_protobuf = decode_export_request(request.SerializeToString(), PROTOBUF)
    from_json = decode_export_request(
        json.dumps(to_otlp_json(request)).encode(), "application/json"
    )

    assert len(from_json.batches) == 3
    for a, b in zip(from_protobuf.batches, from_json.batches, strict=True):
        assert (a.trace_id, a.span_id, a.start_ns, a.end_ns, a.ids, a.error, a.issues) == (
            b.trace_id,
            b.span_id,
            b.start_ns,
            b.end_ns,
            b.ids,
            b.error,
            b.issues,
        )
        assert a.error == "ValueError"
        np.testing.assert_array_equal(a.inputs.columns[0].values, b.inputs.columns[0].values)
        assert a.outputs.columns[0].values() == b.outputs.columns[0].values()


def test_wrong_attribute_types_become_issues(make):
    batch = decode_one(
        make,
        **{
            contract.ATTR_MODEL_VERSION: 7,
            contract.ATTR_TASK: "ranking",
            contract.ATTR_SAMPLE_RATE: 1.5,
            contract.ATTR_ROWS: -1,
            contract.ATTR_OUTPUT_FRAME: "not bytes",
        },
    )
    assert (batch.version, batch.task, batch.sample_rate, batch.outputs) == ("7", None, 1.0, None)
    assert batch.inputs is not None and batch.rows == 4
    joined = " ".join(batch.issues)
    for needle in (
        "ml.model.version should be a string but is a number",
        "ml.task should be one of ('classification', 'regression') but is a string of 7 char",
        "inferwatch.sample_rate should be a number in (0, 1] but is a number",
        "ml.batch.rows should be a non-negative integer but is an integer",
        "ml.output.frame should be bytes (an inferwatch frame) but is a string of 9 characters",
    ):
        assert needle in joined
    assert len(batch.issues) == 5


def test_a_numeric_model_name_is_read_as_text(make):
    batch = decode_one(make, **{contract.ATTR_MODEL_NAME: 42})
    assert batch.model == "42" and "read as text" in batch.issues[0]


def test_missing_version_and_ids_get_defaults(make):
    batch = decode_one(
        make, **{contract.ATTR_MODEL_VERSION: None, contract.ATTR_PREDICTION_IDS: None}
    )
    prefix = batch.span_id.hex()
    assert batch.version == UNVERSIONED
    assert batch.ids == tuple(f"{prefix}-{i}" for i in range(4))
    assert "ml.prediction.ids is missing" in batch.issues[0]


def test_outputs_with_other_row_counts_are_dropped(make):
    three_rows = make.inferwatch_attributes(rows=3)[contract.ATTR_OUTPUT_FRAME]
    batch = decode_one(make, rows=4, **{contract.ATTR_OUTPUT_FRAME: three_rows})
    assert batch.outputs is None and batch.inputs.rows == 4 and batch.rows == 4
    assert "ml.output.frame has 3 rows but ml.input.frame has 4" in batch.issues[0]


def test_declared_rows_disagreeing_with_the_frames_is_an_issue(make):
    batch = decode_one(make, rows=4, **{contract.ATTR_ROWS: 5})
    assert batch.rows == 4
    assert batch.issues == ("ml.batch.rows says 5 rows but the frames hold 4.",)


def test_numeric_ids_are_read_as_text(make):
    batch = decode_one(make, rows=2, **{contract.ATTR_PREDICTION_IDS: [10, 11]})
    assert batch.ids == ("10", "11") and len(batch.issues) == 1


def test_capture_errors_are_reported(make):
    batch = decode_one(make, **{contract.ATTR_CAPTURE_ERROR: "output of type Foo not encodable"})
    assert batch.issues == (
        "The SDK could not capture part of the call: output of type Foo not encodable",
    )


def test_a_span_without_frames_still_counts_its_call(make):
    batch = decode_one(
        make,
        **{
            contract.ATTR_INPUT_FRAME: None,
            contract.ATTR_OUTPUT_FRAME: None,
            contract.ATTR_PREDICTION_IDS: None,
            contract.ATTR_ROWS: None,
        },
    )
    assert (batch.rows, batch.inputs, batch.outputs, batch.issues) == (0, None, None, ())


@pytest.mark.parametrize(
    ("schema", "shown"), [(2, "an integer"), ("1", "a string of 1 characters"), (True, "a boolean")]
)
def test_unsupported_schema_versions_are_rejected(make, schema, shown):
    request = make.export_request(
        [make.inferwatch_attributes(**{contract.ATTR_SCHEMA_VERSION: schema})]
    )
    decoded = decode_export_request(request.SerializeToString(), PROTOBUF)
    assert (decoded.batches, decoded.rejected) == ([], 1)
    assert f"= {shown}; this collector reads schema version 1." in decoded.errors[0]


def test_duplicate_spans_in_one_request_are_delivered_once(make):
    request = make.export_request([make.inferwatch_attributes()])
    scope_spans = request.resource_spans[0].scope_spans[0]
    scope_spans.spans.append(scope_spans.spans[0])
    decoded = decode_export_request(request.SerializeToString(), PROTOBUF)
    assert (len(decoded.batches), decoded.duplicates, decoded.received) == (1, 1, 2)


# The receiver refuses spans far from its clock.
NOW_NS = time.time_ns()


def json_span(attributes: list[dict[str, Any]], **fields: Any) -> bytes:
    span = {
        "traceId": "",
        "spanId": "00000000000000aa",
        "startTimeUnixNano": str(NOW_NS),
        "endTimeUnixNano": str(NOW_NS),
        "attributes": attributes,
        **fields,
    }
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    return json.dumps(document).encode()


def attr(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


BASE = [
    attr(contract.ATTR_SCHEMA_VERSION, {"intValue": 1}),
    attr(contract.ATTR_MODEL_NAME, {"stringValue": "m"}),
]


def test_json_value_forms(make):
    frame = make.inferwatch_attributes(rows=2)[contract.ATTR_INPUT_FRAME]
    urlsafe_unpadded = base64.urlsafe_b64encode(frame).decode().rstrip("=")
    body = json_span(
        [
            *BASE,
            attr(contract.ATTR_INPUT_FRAME, {"bytesValue": urlsafe_unpadded}),
            attr(contract.ATTR_SAMPLE_RATE, {"doubleValue": "0.5"}),
            attr(contract.ATTR_ROWS, {"intValue": "2"}),
        ],
        status={"code": "STATUS_CODE_ERROR"},
        startTimeUnixNano=NOW_NS - 12,
    )
    (batch,) = decode_export_request(body, "application/json").batches
    assert (batch.rows, batch.sample_rate, batch.error, batch.start_ns) == (
        2,
        0.5,
        "error",
        NOW_NS - 12,
    )
    assert batch.trace_id == b""
    assert len(batch.issues) == 1 and "ml.prediction.ids is missing" in batch.issues[0]


def test_json_values_of_the_wrong_form_become_issues():
    nested: dict[str, Any] = {"stringValue": "id"}
    for _ in range(40):
        nested = {"arrayValue": {"values": [nested]}}
    body = json_span(
        [
            *BASE,
            attr(contract.ATTR_INPUT_FRAME, {"bytesValue": "%%% not base64"}),
            attr(contract.ATTR_SAMPLE_RATE, {"doubleValue": "NaN"}),
            attr(contract.ATTR_ROWS, {"intValue": "two"}),
            attr(contract.ATTR_TASK, ["regression"]),
            attr(contract.ATTR_PREDICTION_IDS, nested),
        ]
    )
    (batch,) = decode_export_request(body, "application/json").batches
    joined = " ".join(batch.issues)
    assert (
        "ml.input.frame should be bytes (an inferwatch frame) but is a value that is not base64"
        in joined
    )
    assert "sample_rate should be a number in (0, 1] but is a number that is not finite" in joined
    assert (
        "ml.batch.rows should be a non-negative integer but is a value that is not an integer"
        in joined
    )
    assert "ml.task should be one of" in joined and "not an AnyValue object" in joined
    assert "ml.prediction.ids should be an array of strings" in joined


def test_json_span_with_a_bad_schema_value_is_rejected_not_fatal():
    attributes = [attr(contract.ATTR_SCHEMA_VERSION, {"intValue": "x"}), BASE[1]]
    decoded = decode_export_request(json_span(attributes), "application/json")
    assert decoded.rejected == 1
    assert "a value that is not an integer (intValue)" in decoded.errors[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "The body is not an OTLP JSON ExportTraceServiceRequest object."),
        (b'{"resourceSpans": {}}', "the request.resourceSpans must be a JSON array."),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [3]}]}]}', "spans[0] is not a JSON"),
        (json_span(BASE, spanId="xyz"), "spanId must be a hex string, got a string of 3 char"),
        (json_span(BASE, endTimeUnixNano="-5"), "endTimeUnixNano must be an integer or a decimal"),
        (json_span([{"value": {}}]), "attributes holds an entry without a string 'key'."),
        (b"[" * 100_000, "nests JSON too deeply"),
    ],
)
def test_json_envelope_errors_are_bad_requests(body, message):
    with pytest.raises(BadRequest) as info:
        decode_export_request(body, "application/json")
    assert message in str(info.value)


def test_unknown_content_type_is_unsupported():
    with pytest.raises(UnsupportedMediaType, match="application/x-protobuf, application/json"):
        decode_export_request(b"", "text/csv")


def test_empty_protobuf_request_is_empty():
    decoded = decode_export_request(b"", PROTOBUF)
    assert (decoded.batches, decoded.received) == ([], 0)


# Prediction ids are read from the serialized array when all are ASCII strings of one length;
# these shapes must come out exactly as sent, whichever way they are read.
_SEPARATOR_OF_10 = "\n\x0c\n\n"  # the tags and lengths before each 10-character id
ID_SHAPES = {
    "uuids": [f"0190a5c2-7e1f-7000-8000-{n:012x}" for n in range(4)],
    "one id": ["0190a5c2-7e1f-7000-8000-000000000000"],
    "empty strings": ["", "", "", ""],
    "mixed lengths": ["a", "bb", "ccc", "dddd"],
    "non-ASCII of one length": ["é" * 10, "a" * 10, "ü" * 10, "b" * 10],
    "the separator inside an id": ["ab" + _SEPARATOR_OF_10 + "cdef", *["x" * 10] * 3],
    # The first id's end and the next separator's start also make a separator: splitting cuts
    # there instead of at the separator, into as many pieces, of other lengths.
    "a separator across two elements": ["abcdefg\n\x0c\n", "y" * 10, "z" * 10, "w" * 10],
    "newlines and tabs": ["\n" * 10, "\t" * 10, "\n\t" * 5, " " * 10],
}


@pytest.mark.parametrize("ids", ID_SHAPES.values(), ids=ID_SHAPES.keys())
def test_prediction_ids_round_trip_exactly(make, ids):
    batch = decode_one(make, rows=len(ids), **{contract.ATTR_PREDICTION_IDS: ids})
    assert batch.ids == tuple(ids) and batch.issues == ()
