"""Every input of the decoder is bounded before it is allocated, and each refusal names its limit.

A span over a per-span limit is rejected alone (partial_success), a frame over a frame limit is
dropped from its span as an issue, a request over a per-request limit is answered 413; never a
retryable answer, never an allocation of what was claimed.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
import tracemalloc
from typing import Any

import httpx
import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from pydantic import ValidationError

from inferwatch import contract
from inferwatch.collector import load_config
from inferwatch.collector.receive import PayloadTooLarge, decode_export_request
from inferwatch.collector.receive.census import count_protobuf
from inferwatch.collector.settings.limits import IngestLimits
from inferwatch.frame import Frame, encode_frame, numeric
from inferwatch_testkit.collector import start_collector

from .helpers import pb_value

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
NOW_NS = time.time_ns()
DAY_NS = 86400 * 10**9


def pb_span(attributes: dict[str, object], span_id: bytes = b"\x01" * 8, **fields: Any) -> Span:
    times = {"start_time_unix_nano": NOW_NS, "end_time_unix_nano": NOW_NS}
    return Span(
        trace_id=b"\x02" * 16,
        span_id=span_id,
        attributes=[KeyValue(key=k, value=pb_value(v)) for k, v in attributes.items()],
        **{**times, **fields},
    )


def pb_request(*spans: Span) -> bytes:
    scope = ScopeSpans(spans=spans)
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[scope])]
    ).SerializeToString()


def attributes(**overrides: object) -> dict[str, object]:
    """A minimal inferwatch span: schema version and model name."""
    base: dict[str, object] = {contract.ATTR_SCHEMA_VERSION: 1, contract.ATTR_MODEL_NAME: "m"}
    base.update(overrides)
    return base


def raw_frame(header: dict[str, Any], buffers: bytes = b"") -> bytes:
    """A frame with a header of our choosing (what a hostile client can send)."""
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return b"IWF1" + len(text).to_bytes(4, "little") + text + buffers


def json_request(*spans: dict[str, Any]) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}).encode()


def json_span(span_id: str = "00000000000000aa", **fields: Any) -> dict[str, Any]:
    model = fields.pop("model", "m")
    extra = fields.pop("attributes", [])
    return {
        "traceId": "",
        "spanId": span_id,
        "startTimeUnixNano": str(NOW_NS),
        "endTimeUnixNano": str(NOW_NS),
        "attributes": [
            {"key": contract.ATTR_SCHEMA_VERSION, "value": {"intValue": "1"}},
            {"key": contract.ATTR_MODEL_NAME, "value": {"stringValue": model}},
            *extra,
        ],
        **fields,
    }


def decode(body: bytes, kind: str = PROTOBUF):
    return decode_export_request(body, kind, now_ns=NOW_NS)


# -- rows, columns, cells: failure 1


def test_a_span_declaring_more_rows_than_the_limit_is_rejected_alone():
    good = pb_span(attributes(), span_id=b"\x0a" * 8)
    bad = pb_span(attributes(**{contract.ATTR_ROWS: 100_001}), span_id=b"\x0b" * 8)
    decoded = decode(pb_request(good, bad))
    assert [b.span_id for b in decoded.batches] == [b"\x0a" * 8]
    assert decoded.rejected == 1
    assert "rows_per_span = 100,000" in decoded.errors[0]


def test_a_span_declaring_a_billion_rows_allocates_nothing():
    body = pb_request(pb_span(attributes(**{contract.ATTR_ROWS: 10**9})))
    assert len(body) < 200
    tracemalloc.start()
    try:
        decoded = decode(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.rejected == 1 and "rows_per_span" in decoded.errors[0]
    assert peak < 1_000_000


def test_more_ids_than_the_row_limit_reject_the_span():
    ids = [f"id-{i}" for i in range(100_001)]
    decoded = decode(pb_request(pb_span(attributes(**{contract.ATTR_PREDICTION_IDS: ids}))))
    assert decoded.rejected == 1
    assert f"{contract.ATTR_PREDICTION_IDS} of 100,001 rows" in decoded.errors[0]


@pytest.mark.parametrize(
    ("header", "limit"),
    [
        ({"rows": 100_001, "columns": []}, "(rows)"),
        ({"rows": 10**9, "columns": []}, "(rows)"),
        (
            {
                "rows": 0,
                "columns": [{"kind": "numeric", "name": "x", "dtype": "<f8", "width": 10**12}],
            },
            "(columns)",
        ),
        (
            {"rows": 0, "columns": [{"kind": "categorical", "name": "c" * 2000, "categories": []}]},
            "(text_chars)",
        ),
    ],
)
def test_a_frame_claiming_too_much_is_dropped_as_an_issue(header, limit):
    frame = raw_frame(header)
    decoded = decode(pb_request(pb_span(attributes(**{contract.ATTR_INPUT_FRAME: frame}))))
    (batch,) = decoded.batches
    assert (batch.inputs, batch.rows) == (None, 0)
    assert limit in batch.issues[0] and "the limit is" in batch.issues[0]


def test_a_frame_of_more_cells_than_the_limit_is_dropped():
    # The default (10 million cells) takes 40 MB on the wire: a small limit shows the same.
    frame = encode_frame(Frame(3, (numeric("x", np.zeros((3, 4))),)))
    body = pb_request(pb_span(attributes(**{contract.ATTR_INPUT_FRAME: frame})))
    limits = IngestLimits(cells_per_frame=11)
    (batch,) = decode_export_request(body, PROTOBUF, limits, NOW_NS).batches
    assert batch.inputs is None and "(cells)" in batch.issues[0]
    (batch,) = decode_export_request(
        body, PROTOBUF, IngestLimits(cells_per_frame=12), NOW_NS
    ).batches
    assert batch.inputs is not None and batch.rows == 3


# -- counts per request: failure 2


def test_a_gzip_bomb_of_empty_resource_spans_is_a_413_naming_the_limit(receiver):
    # 500,000 empty ResourceSpans: 1 MB inflated from 1 KB of gzip.
    body = gzip.compress(b"\x0a\x00" * 500_000)
    response = httpx.post(
        receiver.url,
        content=body,
        headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert response.status_code == 413
    assert "resources_per_request = 10,000" in response.text
    assert receiver.sink.batches == []


# Empty values are walked one by one; equal short strings are counted at once.
@pytest.mark.parametrize("element", [AnyValue(), AnyValue(string_value="ab")])
def test_an_array_of_millions_of_values_is_refused_before_protobuf_decodes_it(element):
    value = AnyValue(array_value=ArrayValue(values=[element] * 2_000_001))
    span = pb_span(attributes())
    span.attributes.append(KeyValue(key="foreign", value=value))
    with pytest.raises(PayloadTooLarge, match=r"values_per_request = 2,000,000"):
        decode(pb_request(span))


def _values_walked(request: ExportTraceServiceRequest) -> int:
    """The census's count, made from a parsed request of one span: its ResourceSpans, ScopeSpans
    and Span, and every message an attribute holds (KeyValue, AnyValue, ArrayValue or
    KeyValueList, and theirs)."""

    def of(value: AnyValue) -> int:
        which = value.WhichOneof("value")
        if which == "array_value":
            return 2 + sum(of(item) for item in value.array_value.values)
        if which == "kvlist_value":
            return 2 + sum(1 + of(kv.value) for kv in value.kvlist_value.values)
        return 1

    (resource,) = request.resource_spans
    (scope,) = resource.scope_spans
    (span,) = scope.spans
    return 3 + sum(1 + of(kv.value) for kv in span.attributes)


# Arrays of one short string length are counted at once, from the elements' leading bytes;
# arrays that differ from that in one element, anywhere, are walked element by element.
ARRAYS = {
    "equal-length strings": ["abcd"] * 50,
    "equal-length bytes": [b"abcd"] * 50,
    "one longer string last": ["abcd"] * 49 + ["abcde"],
    "one bytes value among strings": ["abcd"] * 20 + [b"abcd"] + ["abcd"] * 29,
    "one integer among strings": ["abcd"] * 49 + [7],
    "one nested array": ["ab"] * 10 + [["ab", "cd"]] + ["ab"] * 10,
    # As many bytes as each string element: only its tag tells it apart.
    "one nested array of the strings' size": ["abcdefgh"] * 10 + [["abcd"]] + ["abcdefgh"] * 10,
    "strings of one element": ["a"],
}


@pytest.mark.parametrize("elements", ARRAYS.values(), ids=ARRAYS.keys())
def test_the_census_counts_each_value_of_an_array(elements):
    span = pb_span({"foreign": elements, "other": "x"})
    body = pb_request(span)
    census = count_protobuf(body, IngestLimits())
    assert census.values == _values_walked(ExportTraceServiceRequest.FromString(body))


def test_too_many_spans_in_one_request_is_a_413():
    spans = [Span() for _ in range(10_001)]
    with pytest.raises(PayloadTooLarge, match=r"spans_per_request = 10,000"):
        decode(pb_request(*spans))


def test_an_otlp_json_bomb_is_refused_before_it_is_parsed():
    body = b'{"resourceSpans":[' + b"{}," * 2_000_000 + b"{}]}"
    with pytest.raises(PayloadTooLarge, match="values_per_request"):
        decode(body, JSON)
    body = json.dumps({"resourceSpans": [{}] * 10_001}).encode()
    with pytest.raises(PayloadTooLarge, match=r"resources_per_request = 10,000"):
        decode(body, JSON)


def test_a_span_with_too_many_attributes_is_rejected_alone():
    crowded = pb_span(attributes(**{f"other.{i}": i for i in range(1_000)}), span_id=b"\x0b" * 8)
    decoded = decode(pb_request(pb_span(attributes()), crowded))
    assert (len(decoded.batches), decoded.rejected) == (1, 1)
    assert "attributes_per_span = 1,000" in decoded.errors[0]


# -- times: failure 3


@pytest.mark.parametrize(
    ("start", "end", "named"),
    [
        (2**63, 2**63, "max_clock_skew"),  # the year 2262
        (NOW_NS, NOW_NS + 2 * 3600 * 10**9, "max_clock_skew"),
        (1, 2, "max_span_age"),
        (NOW_NS - 3651 * DAY_NS, NOW_NS - 3651 * DAY_NS, "max_span_age"),
        (NOW_NS, NOW_NS - 1, "ends before it starts"),
    ],
    ids=["year 2262", "two hours ahead", "1970", "ten years old", "ends before it starts"],
)
def test_spans_outside_the_window_of_now_are_rejected_alone(start, end, named):
    odd = pb_span(
        attributes(), span_id=b"\x0b" * 8, start_time_unix_nano=start, end_time_unix_nano=end
    )
    decoded = decode(pb_request(pb_span(attributes()), odd))
    assert (len(decoded.batches), decoded.rejected) == (1, 1)
    assert named in decoded.errors[0]


def test_a_start_of_1e30_ns_in_otlp_json_is_a_rejected_span_not_a_retry(receiver):
    bad = json_span("00000000000000bb", startTimeUnixNano=str(10**30))
    year_33658 = json_span("00000000000000cc", startTimeUnixNano=str(10**21))
    body = json_request(json_span(), bad, year_33658)
    response = httpx.post(receiver.url, content=body, headers={"Content-Type": JSON}, timeout=10)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2" and "max_clock_skew" in partial["errorMessage"]
    assert [b.span_id.hex() for b in receiver.sink.batches] == ["00000000000000aa"]


def test_times_are_judged_by_the_clock_given():
    body = pb_request(pb_span(attributes()))
    later = NOW_NS + 2 * DAY_NS
    limits = IngestLimits(max_span_age="1d")
    assert decode_export_request(body, PROTOBUF, limits, later).rejected == 1
    assert decode_export_request(body, PROTOBUF, IngestLimits(max_span_age="3d"), later).batches


# -- Unicode: failure 4


@pytest.mark.parametrize("key", [contract.ATTR_MODEL_NAME, contract.ATTR_MODEL_VERSION])
def test_a_lone_surrogate_in_a_model_name_or_version_rejects_the_span(key):
    bad = json_span("00000000000000bb")
    bad["attributes"] = [a for a in bad["attributes"] if a["key"] != key]
    bad["attributes"].append({"key": key, "value": {"stringValue": "m\ud800"}})
    decoded = decode(json_request(json_span(), bad), JSON)
    assert [b.model for b in decoded.batches] == ["m"]
    assert decoded.rejected == 1 and "not valid Unicode" in decoded.errors[0]
    decoded.errors[0].encode("utf-8")


@pytest.mark.parametrize(
    "column",
    [
        {"kind": "categorical", "name": "colour", "categories": ["red", "\ud800"]},
        {"kind": "categorical", "name": "\udc80", "categories": []},
        {"kind": "numeric", "name": "x", "dtype": "<f8", "width": 1, "names": ["\ud800"]},
    ],
)
def test_a_lone_surrogate_in_a_frame_drops_the_frame_and_says_so(column):
    # The frame header is JSON inside a bytes attribute: protobuf carries the \ud800 escape.
    rows = 0
    frame = raw_frame({"rows": rows, "columns": [column]})
    decoded = decode(pb_request(pb_span(attributes(**{contract.ATTR_INPUT_FRAME: frame}))))
    (batch,) = decoded.batches
    assert batch.inputs is None
    assert "not valid Unicode" in batch.issues[0]
    " ".join(batch.issues).encode("utf-8")


def test_an_error_message_with_a_lone_surrogate_is_kept_valid():
    span = json_span(status={"code": 2, "message": "boom \ud800"})
    (batch,) = decode(json_request(span), JSON).batches
    assert batch.error == "boom \ufffd"


# -- numbers: failure 5


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -1.0, 0.0, 1e308])
def test_a_sample_rate_that_is_not_a_probability_is_an_issue(rate):
    span = pb_span(attributes(**{contract.ATTR_SAMPLE_RATE: rate}))
    (batch,) = decode(pb_request(span)).batches
    assert batch.sample_rate == 1.0 and "sample_rate" in batch.issues[0]


def test_huge_finite_feature_values_are_kept():
    frame = encode_frame(Frame(2, (numeric("x", [1e308, -1e308]),)))
    ids = {contract.ATTR_PREDICTION_IDS: ["a", "b"]}
    (batch,) = decode(
        pb_request(pb_span(attributes(**{contract.ATTR_INPUT_FRAME: frame}, **ids)))
    ).batches
    assert batch.issues == ()
    np.testing.assert_array_equal(batch.inputs.features()["x"], [1e308, -1e308])


# -- logs: failure 6


def test_rejected_spans_values_reach_neither_the_log_nor_the_client(receiver, caplog):
    secret = "SSN-123-45-6789"
    span = pb_span(attributes(**{contract.ATTR_SCHEMA_VERSION: secret}))
    with caplog.at_level(logging.INFO):
        response = httpx.post(
            receiver.url, content=pb_request(span), headers={"Content-Type": PROTOBUF}, timeout=10
        )
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert "a string of 15 characters" in partial.error_message
    assert secret not in partial.error_message
    assert caplog.records, "the rejection is logged"
    assert all(secret not in record.getMessage() for record in caplog.records)


# -- settings


def test_the_collector_applies_its_configured_limits(tmp_path):
    path = tmp_path / "collector.toml"
    db = tmp_path / "c.db"
    path.write_text(
        f'[collector]\ndb = "sqlite:///{db}"\n\n[collector.limits]\nrows_per_span = 2\n'
    )
    config = load_config(path)
    assert config.limits.rows_per_span == 2
    running = start_collector(config)
    try:
        body = pb_request(pb_span(attributes(**{contract.ATTR_ROWS: 3})))
        response = httpx.post(
            f"{running.url}{contract.TRACES_PATH}",
            content=body,
            headers={"Content-Type": PROTOBUF},
            timeout=10,
        )
    finally:
        running.stop()
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1 and "rows_per_span = 2" in partial.error_message


def test_a_frame_limit_cannot_be_raised_beyond_what_every_decoder_reads():
    with pytest.raises(ValidationError, match="rows_per_span"):
        IngestLimits(rows_per_span=2**30)
