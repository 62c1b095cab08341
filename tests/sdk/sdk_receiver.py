"""A real OTLP/HTTP traces receiver for the SDK tests, on uvicorn on a free 127.0.0.1 port.

It decodes each ExportTraceServiceRequest with opentelemetry-proto and keeps the spans with
the headers of the request that carried them.
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
class Received:
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
    headers: dict[str, str]


@dataclass
class Receiver:
    url: str = ""
    spans: list[Received] = field(default_factory=list)
    bodies: list[tuple[dict[str, str], int]] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _stop: Callable[[], None] | None = None

    def add(self, spans: list[Received], headers: dict[str, str], size: int) -> None:
        with self._changed:
            self.spans.extend(spans)
            self.bodies.append((headers, size))
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The spans received once there are at least ``count`` (fewer at the deadline)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.spans) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return list(self.spans)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def decode(body: bytes, headers: dict[str, str]) -> list[Received]:
    request = ExportTraceServiceRequest.FromString(body)
    out = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    Received(
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
                        headers=headers,
                    )
                )
    return out


def start_receiver() -> Receiver:
    receiver = Receiver()

    async def traces(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        size = len(body)
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        receiver.add(decode(body, headers), headers, size)
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
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

    receiver.url = f"http://127.0.0.1:{port}"
    receiver._stop = stop
    return receiver


def closed_port() -> str:
    """The URL of a 127.0.0.1 port nothing listens on (connections are refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
