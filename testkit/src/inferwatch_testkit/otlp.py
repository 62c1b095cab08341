"""An OTLP/HTTP receiver for tests: a real server on 127.0.0.1 that keeps every span and every
metric point.

It keeps everyone's spans (inferwatch's and others', such as BentoML's request spans), decoded
with opentelemetry-proto, with the headers and size of the request that carried them; and the
points of each metrics export request (``/v1/metrics``), decoded the same way.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inferwatch import contract
from inferwatch.frame import Frame, decode_frame
from inferwatch_testkit import RunningServer, serve_asgi

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    scope: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    attributes: dict[str, Any]
    resource: dict[str, Any]
    # The headers of the export request that carried the span.
    headers: dict[str, str]

    @property
    def inputs(self) -> Frame:
        return decode_frame(self.attributes[contract.ATTR_INPUT_FRAME])

    @property
    def outputs(self) -> Frame:
        return decode_frame(self.attributes[contract.ATTR_OUTPUT_FRAME])


@dataclass(frozen=True)
class ReceivedPoint:
    """One number data point of a gauge or a sum."""

    metric: str
    kind: str  # "gauge" or "sum"
    unit: str
    attributes: dict[str, Any]
    value: float
    time_ns: int
    # For a sum: monotonic, and cumulative (AGGREGATION_TEMPORALITY_CUMULATIVE) or delta.
    monotonic: bool = False
    cumulative: bool = False
    resource: dict[str, Any] = field(default_factory=dict)


@dataclass
class OTLPReceiver:
    """Spans and metric points received so far; ``url`` is the base URL (spans go to
    ``url + '/v1/traces'``, metrics to ``url + '/v1/metrics'``)."""

    url: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    # (headers, bytes on the wire) of each export request.
    bodies: list[tuple[dict[str, str], int]] = field(default_factory=list)
    # The decompressed protobuf body of each export request, to search for what must not be
    # in it (a redacted feature's value).
    payloads: list[bytes] = field(default_factory=list)
    # The points of each metrics export request, in the order they came.
    metric_exports: list[list[ReceivedPoint]] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _server: RunningServer | None = None

    @property
    def requests(self) -> int:
        return len(self.bodies)

    def add(
        self, spans: list[ReceivedSpan], headers: dict[str, str], size: int, payload: bytes = b""
    ) -> None:
        with self._changed:
            self.spans.extend(spans)
            self.bodies.append((headers, size))
            self.payloads.append(payload)
            self._changed.notify_all()

    def add_metrics(self, points: list[ReceivedPoint]) -> None:
        with self._changed:
            self.metric_exports.append(points)
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self.spans.clear()
            self.bodies.clear()
            self.payloads.clear()
            self.metric_exports.clear()

    def wait_for_export(
        self, predicate: Callable[[list[ReceivedPoint]], bool], timeout: float = 30.0
    ) -> list[ReceivedPoint]:
        """The first metrics export request (oldest first) whose points match ``predicate``;
        AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        with self._changed:
            seen = 0
            while True:
                for points in self.metric_exports[seen:]:
                    if predicate(points):
                        return points
                seen = len(self.metric_exports)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no matching metrics export within {timeout} s ({seen} received)"
                    )
                self._changed.wait(remaining)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[ReceivedSpan]:
        """Every span received, once there are at least ``count`` (fewer at the deadline)."""
        return self.wait_for_matching(lambda span: True, count, timeout)

    def wait_for_matching(
        self, predicate: Callable[[ReceivedSpan], bool], count: int, timeout: float = 20.0
    ) -> list[ReceivedSpan]:
        """The spans matching ``predicate``, once there are at least ``count`` (or at timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [s for s in self.spans if predicate(s)]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self._changed.wait(remaining)

    def predictions(self, model: str, count: int, timeout: float = 20.0) -> list[ReceivedSpan]:
        """Wait for ``count`` inferwatch spans of ``model``; returns those received."""
        return self.wait_for_matching(
            lambda s: (
                s.name == contract.SPAN_NAME and s.attributes.get(contract.ATTR_MODEL_NAME) == model
            ),
            count,
            timeout,
        )

    def span_with_ids(self, ids: list[str], timeout: float = 20.0) -> ReceivedSpan:
        found = self.wait_for_matching(
            lambda s: s.attributes.get(contract.ATTR_PREDICTION_IDS) == ids, 1, timeout
        )
        assert found, f"no span with prediction ids {ids} arrived within {timeout} s"
        return found[0]

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(10)
            self._server = None

    def __enter__(self) -> OTLPReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_otlp_receiver(port: int = 0) -> OTLPReceiver:
    """A receiver listening on a free 127.0.0.1 port (or on ``port``)."""
    receiver = OTLPReceiver()
    receiver._server = serve_asgi(receiver_app(receiver), port=port)
    receiver.url = receiver._server.url
    return receiver


METRICS_PATH = "/v1/metrics"


def receiver_app(receiver: OTLPReceiver) -> Starlette:
    """The receiver's ASGI app: POST /v1/traces and /v1/metrics, protobuf only (what the SDK
    sends)."""

    async def traces(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        size = len(body)
        if request.headers.get("content-type") != PROTOBUF:
            return Response("only protobuf is accepted here", status_code=415)
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        receiver.add(decode(body, headers), headers, size, body)
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)

    async def metrics(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-type") != PROTOBUF:
            return Response("only protobuf is accepted here", status_code=415)
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        receiver.add_metrics(decode_metrics(body))
        return Response(ExportMetricsServiceResponse().SerializeToString(), media_type=PROTOBUF)

    return Starlette(
        routes=[
            Route(contract.TRACES_PATH, traces, methods=["POST"]),
            Route(METRICS_PATH, metrics, methods=["POST"]),
        ]
    )


def decode_metrics(body: bytes) -> list[ReceivedPoint]:
    """The gauge and sum points of an uncompressed protobuf ExportMetricsServiceRequest."""
    request = ExportMetricsServiceRequest.FromString(body)
    out = []
    for resource_metrics in request.resource_metrics:
        resource = {a.key: _value(a.value) for a in resource_metrics.resource.attributes}
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind not in ("gauge", "sum"):
                    continue
                data = getattr(metric, kind)
                for point in data.data_points:
                    number = point.WhichOneof("value")
                    out.append(
                        ReceivedPoint(
                            metric=metric.name,
                            kind=kind,
                            unit=metric.unit,
                            attributes={a.key: _value(a.value) for a in point.attributes},
                            value=float(getattr(point, number)),
                            time_ns=point.time_unix_nano,
                            monotonic=kind == "sum" and data.is_monotonic,
                            # AGGREGATION_TEMPORALITY_CUMULATIVE
                            cumulative=kind == "sum" and data.aggregation_temporality == 2,
                            resource=resource,
                        )
                    )
    return out


def decode(body: bytes, headers: dict[str, str] | None = None) -> list[ReceivedSpan]:
    """The spans of an uncompressed protobuf ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest.FromString(body)
    out = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    ReceivedSpan(
                        name=span.name,
                        scope=scope_spans.scope.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                        status_message=span.status.message,
                        events=[
                            (e.name, {a.key: _value(a.value) for a in e.attributes})
                            for e in span.events
                        ],
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        resource=resource,
                        headers=headers or {},
                    )
                )
    return out


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None
