"""A small OTLP/HTTP traces receiver for tests and the middleware benchmark.

It keeps every span it receives (inferwatch's and anyone else's, such as BentoML's request spans),
decoded with opentelemetry-proto; the collector proper ignores spans that are not inferwatch's,
which the trace-sharing test needs to see.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from inferwatch import contract
from inferwatch.frame import Frame, decode_frame
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    scope: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class SpanStore:
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self._changed:
            self.spans.extend(spans)
            self.requests += 1
            self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[ReceivedSpan], bool], count: int, timeout: float = 20.0
    ) -> list[ReceivedSpan]:
        """The spans matching ``predicate`` once there are at least ``count`` (or at timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [s for s in self.spans if predicate(s)]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self._changed.wait(remaining)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def decode(body: bytes) -> list[ReceivedSpan]:
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
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        resource=resource,
                    )
                )
    return out


def receiver_app(store: SpanStore) -> Starlette:
    async def traces(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if request.headers.get("content-type") != PROTOBUF:
            return Response("only protobuf is accepted here", status_code=415)
        store.add(decode(body))
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


def serve(app: Starlette) -> tuple[str, Callable[[], None]]:
    """Run ``app`` on uvicorn on a free 127.0.0.1 port; returns its URL and a stop function."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the OTLP receiver did not start within 10 s")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return f"http://127.0.0.1:{port}", stop


@dataclass
class Receiver:
    """A running receiver: its base URL (spans go to ``url + '/v1/traces'``) and its spans."""

    url: str
    store: SpanStore

    def predictions(self, model: str, count: int, timeout: float = 20.0) -> list[ReceivedSpan]:
        """Wait for ``count`` inferwatch spans of ``model``; returns those received."""
        return self.store.wait_for(
            lambda s: (
                s.name == contract.SPAN_NAME and s.attributes.get(contract.ATTR_MODEL_NAME) == model
            ),
            count,
            timeout,
        )

    def span_with_ids(self, ids: list[str], timeout: float = 20.0) -> ReceivedSpan:
        found = self.store.wait_for(
            lambda s: s.attributes.get(contract.ATTR_PREDICTION_IDS) == ids, 1, timeout
        )
        assert found, f"no span with prediction ids {ids} arrived within {timeout} s"
        return found[0]


def start_receiver() -> tuple[Receiver, Callable[[], None]]:
    """A running receiver and the function that stops it."""
    store = SpanStore()
    url, stop = serve(receiver_app(store))
    return Receiver(url, store), stop


def input_frame(span: ReceivedSpan) -> Frame:
    return decode_frame(span.attributes[contract.ATTR_INPUT_FRAME])


def output_frame(span: ReceivedSpan) -> Frame:
    return decode_frame(span.attributes[contract.ATTR_OUTPUT_FRAME])
