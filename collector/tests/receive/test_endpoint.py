"""POST /v1/traces over real HTTP to the receiver on uvicorn."""

from __future__ import annotations

import base64
import gzip
import json
import time
import zlib

import httpx
import numpy as np
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from inferwatch import contract
from inferwatch.collector.receive.batch import Overloaded
from inferwatch.frame import encode_frame

# A whole second a little before now: the receiver refuses spans far from its clock.
START_NS = (time.time_ns() // 10**9 - 60) * 10**9

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=10)


def test_protobuf_request_from_the_sdk_is_decoded_into_batches(receiver, make):
    spans = make.sdk_spans(
        [
            make.inferwatch_attributes(model="credit", version="3", rows=4, seed=1),
            make.inferwatch_attributes(model="fraud", version="7", rows=2, seed=2),
        ]
    )
    response = post(receiver.url, encode_spans(spans).SerializeToString(), PROTOBUF)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    credit, fraud = receiver.sink.batches
    assert (credit.model, credit.version, credit.task, credit.rows) == (
        "credit",
        "3",
        "classification",
        4,
    )
    assert (fraud.model, fraud.version, fraud.rows) == ("fraud", "7", 2)
    assert credit.ids == ("credit-1-0", "credit-1-1", "credit-1-2", "credit-1-3")
    features = credit.inputs.features()
    np.testing.assert_array_equal(
        np.column_stack([features["age"], features["income"], features["debt"]]),
        make.features(4, 1),
    )
    expected_outputs = ["yes" if v > 0 else "no" for v in make.features(4, 1)[:, 0]]
    assert credit.outputs.features(role="output")["prediction"].values() == expected_outputs
    assert credit.span_id == spans[0].context.span_id.to_bytes(8, "big")
    assert credit.trace_id == spans[0].context.trace_id.to_bytes(16, "big")
    assert (credit.start_ns, credit.end_ns) == (spans[0].start_time, spans[0].end_time)
    assert credit.error is None and credit.issues == () and credit.sample_rate == 1.0
    assert receiver.stats.spans_accepted == 2
    assert receiver.stats.bytes_received == len(encode_spans(spans).SerializeToString())


def test_failed_call_carries_the_exception_type(receiver, make):
    request = make.export_request(
        [make.inferwatch_attributes()], error=TimeoutError("model timed out")
    )
    response = post(receiver.url, request.SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    assert receiver.sink.batches[0].error == "TimeoutError"


def otlp_json_request(make) -> tuple[dict, np.ndarray]:
    """Hand-written OTLP JSON: hex ids, int64 as strings, enums as integers, unknown fields."""
    features = make.features(2, 5)
    frame = encode_frame(make.frame_of(features, ["age", "income", "debt"]))
    span = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "eee19b7ec3c1b174",
        "name": contract.SPAN_NAME,
        "kind": 2,
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": START_NS + 10**9,
        "attributes": [
            {"key": contract.ATTR_SCHEMA_VERSION, "value": {"intValue": "1"}},
            {"key": contract.ATTR_MODEL_NAME, "value": {"stringValue": "credit"}},
            {"key": contract.ATTR_MODEL_VERSION, "value": {"stringValue": "3"}},
            {"key": contract.ATTR_TASK, "value": {"stringValue": "regression"}},
            {"key": contract.ATTR_ROWS, "value": {"intValue": 2}},
            {"key": contract.ATTR_SAMPLE_RATE, "value": {"doubleValue": 0.25}},
            {
                "key": contract.ATTR_PREDICTION_IDS,
                "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}},
            },
            {
                "key": contract.ATTR_INPUT_FRAME,
                "value": {"bytesValue": base64.b64encode(frame).decode()},
            },
            {"key": "http.route", "value": {"stringValue": "/predict"}, "futureKey": 1},
        ],
        "status": {"code": 2, "message": "upstream timeout"},
        "droppedAttributesCount": 0,
        "aFieldFromTheFuture": {"nested": [1, 2, 3]},
    }
    other = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "0000000000000001",
        "name": "GET /healthz",
        "kind": 2,
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": str(START_NS + 1),
        "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}],
    }
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]
                },
                "scopeSpans": [{"scope": {"name": "inferwatch"}, "spans": [span, other]}],
                "schemaUrl": "https://opentelemetry.io/schemas/1.24.0",
            }
        ],
        "someNewTopLevelField": True,
    }
    return document, features


def test_otlp_json_is_decoded_with_hex_ids_and_string_int64(receiver, make):
    document, features = otlp_json_request(make)
    response = post(
        receiver.url,
        json.dumps(document).encode(),
        {"Content-Type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}
    (batch,) = receiver.sink.batches
    assert batch.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert batch.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert (batch.start_ns, batch.end_ns) == (START_NS, START_NS + 10**9)
    assert (batch.task, batch.sample_rate, batch.ids) == ("regression", 0.25, ("a", "b"))
    assert batch.error == "upstream timeout"
    assert batch.issues == ()
    decoded = batch.inputs.features()
    np.testing.assert_array_equal(decoded["income"], features[:, 1])
    assert (receiver.stats.spans_ignored, receiver.stats.spans_accepted) == (1, 1)


def test_gzip_body_is_inflated(receiver, make):
    body = make.export_request([make.inferwatch_attributes(rows=50)]).SerializeToString()
    compressed = gzip.compress(body)
    response = post(receiver.url, compressed, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert receiver.sink.batches[0].rows == 50
    assert receiver.stats.bytes_received == len(compressed)


def test_gzip_bomb_is_refused_with_413(receiver):
    # 32 MiB of zeros in a ~32 KB body: under the wire cap, far over the decompressed cap.
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    bomb = b"".join(deflate.compress(zeros) for _ in range(32)) + deflate.flush()
    assert len(bomb) < 1 << 20

    response = post(receiver.url, bomb, {**PROTOBUF, "Content-Encoding": "gzip"})

    assert response.status_code == 413
    message = Status.FromString(response.content).message
    assert "1,048,576 bytes" in message and "decompressed" in message
    assert receiver.sink.batches == []


def test_body_over_the_limit_is_refused_with_413(receiver):
    response = post(receiver.url, bytes(2 << 20), PROTOBUF)
    assert response.status_code == 413
    assert "1,048,576 bytes" in Status.FromString(response.content).message


def test_chunked_body_over_the_limit_is_refused_without_content_length(receiver):
    def chunks():
        for _ in range(40):
            yield bytes(64 << 10)

    response = httpx.post(receiver.url, content=chunks(), headers=PROTOBUF, timeout=10)
    assert response.status_code == 413
    assert receiver.stats.bad_requests == 1


def test_garbage_protobuf_is_a_400_with_a_status_body(receiver):
    response = post(receiver.url, b"\xff\xfe this is not protobuf", PROTOBUF)
    assert response.status_code == 400
    status = Status.FromString(response.content)
    assert status.code == 3  # INVALID_ARGUMENT
    assert status.message.startswith("The body is not a valid protobuf ExportTraceServiceRequest")


def test_garbage_json_is_a_400_answered_in_json(receiver):
    response = post(receiver.url, b"{not json", {"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("The body is not valid JSON")


def test_json_with_a_wrong_structure_names_the_place(receiver):
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]}).encode()
    response = post(receiver.url, body, {"Content-Type": "application/json"})
    assert response.status_code == 400
    assert (
        response.json()["message"] == "resourceSpans[0].scopeSpans[0].spans must be a JSON array."
    )


def test_corrupt_gzip_is_a_400(receiver, make):
    body = gzip.compress(make.export_request([make.inferwatch_attributes()]).SerializeToString())
    response = post(receiver.url, body[: len(body) // 2], {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "truncated" in Status.FromString(response.content).message


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({"Content-Type": "text/plain"}, "application/x-protobuf, application/json"),
        ({**PROTOBUF, "Content-Encoding": "br"}, "identity, gzip"),
    ],
)
def test_unsupported_type_or_encoding_is_a_415_listing_what_is_accepted(receiver, headers, needle):
    response = post(receiver.url, b"hello", headers)
    assert response.status_code == 415
    assert needle in response.content.decode(errors="replace")


def test_non_inferwatch_spans_are_ignored_and_counted(receiver, make):
    request = make.export_request(
        [{"http.route": "/predict"}, make.inferwatch_attributes(), {"db.system": "postgresql"}]
    )
    response = post(receiver.url, request.SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    assert len(receiver.sink.batches) == 1
    assert (receiver.stats.spans_received, receiver.stats.spans_ignored) == (3, 2)


def test_only_foreign_spans_never_reach_the_sink(receiver, make):
    request = make.export_request([{"http.route": "/"}])
    response = post(receiver.url, request.SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    assert receiver.sink.batches == [] and receiver.stats.spans_ignored == 1


def test_mixed_good_and_bad_spans_give_partial_success(receiver, make):
    good = make.inferwatch_attributes(model="credit")
    no_model = make.inferwatch_attributes(**{contract.ATTR_MODEL_NAME: None})
    future = make.inferwatch_attributes(**{contract.ATTR_SCHEMA_VERSION: 99})
    request = make.export_request([good, no_model, future, good])

    response = post(receiver.url, request.SerializeToString(), PROTOBUF)

    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "cannot be attributed to a model" in partial.error_message
    assert "this collector reads schema version 1" in partial.error_message
    assert [b.model for b in receiver.sink.batches] == ["credit", "credit"]
    assert receiver.stats.spans_rejected == 2


def test_partial_success_in_json(receiver, make):
    document, _ = otlp_json_request(make)
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"] = [a for a in span["attributes"] if a["key"] != contract.ATTR_MODEL_NAME]
    response = post(
        receiver.url, json.dumps(document).encode(), {"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert contract.ATTR_MODEL_NAME in partial["errorMessage"]


def test_ragged_and_undecodable_data_is_delivered_with_issues(receiver, make):
    ragged = make.inferwatch_attributes(rows=4, **{contract.ATTR_PREDICTION_IDS: ["a", "b", "c"]})
    bad_frame = make.inferwatch_attributes(
        rows=4, **{contract.ATTR_INPUT_FRAME: b"IWF1\x10garbage"}
    )
    request = make.export_request([ragged, bad_frame])

    response = post(receiver.url, request.SerializeToString(), PROTOBUF)

    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    first, second = receiver.sink.batches
    assert first.rows == 4 and first.inputs is not None
    assert len(first.issues) == 1 and "holds 3 ids for 4 rows" in first.issues[0]
    assert second.inputs is None and second.outputs is not None and second.rows == 4
    assert any("ml.input.frame could not be decoded" in issue for issue in second.issues)


def test_overloaded_sink_gives_429_with_retry_after(receiver, make):
    receiver.sink.fail_with = Overloaded(2.5, "ingest queue is full")
    receiver.sink.fail_times = 1
    request = make.export_request([make.inferwatch_attributes()])

    response = post(receiver.url, request.SerializeToString(), PROTOBUF)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert "ingest queue is full" in Status.FromString(response.content).message
    assert receiver.sink.batches == [] and receiver.stats.spans_accepted == 0
    assert receiver.stats.overloaded_responses == 1


def test_failing_sink_gives_a_retryable_503(receiver, make):
    receiver.sink.fail_with = RuntimeError("disk full")
    receiver.sink.fail_times = 1
    request = make.export_request([make.inferwatch_attributes()])
    response = post(receiver.url, request.SerializeToString(), PROTOBUF)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "disk full" not in response.content.decode(errors="replace")


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_otlp_http_exporter_gets_success(receiver, make, compression):
    spans = make.sdk_spans([make.inferwatch_attributes(seed=s) for s in range(3)])
    exporter = OTLPSpanExporter(endpoint=receiver.url, compression=compression, timeout=10)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert [b.ids[0] for b in receiver.sink.batches] == ["credit-0-0", "credit-1-0", "credit-2-0"]


def test_the_otlp_http_exporter_retries_after_429(receiver, make):
    receiver.sink.fail_with = Overloaded(0.1, "ingest queue is full")
    receiver.sink.fail_times = 1
    exporter = OTLPSpanExporter(endpoint=receiver.url, timeout=10)
    try:
        assert exporter.export(make.sdk_spans([make.inferwatch_attributes()])) is (
            SpanExportResult.SUCCESS
        )
    finally:
        exporter.shutdown()
    assert len(receiver.sink.batches) == 1
    assert receiver.stats.overloaded_responses == 1
