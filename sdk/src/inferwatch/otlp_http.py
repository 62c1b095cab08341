"""One OTLP/HTTP export request per batch of spans, and what the collector's answer means.

The export thread (inferwatch.export_queue) owns retrying. A sender prepares a batch's request
once (compressed if so configured: retries must not cost the model's threads the GIL again and
again);
each call of what it prepared makes one attempt and says whether the spans were taken
(``Delivered``, with the count a partial success rejected), refused for good (``Refused``) or
may be sent again (``Retry``). It never sleeps and never logs: the OpenTelemetry exporter
retries inside ``export`` and writes "Transient error ... retrying" lines into the model
server's log for as long as the collector is down; inferwatch counts those in
``inferwatch.stats()`` and warns once a minute at most.
"""

from __future__ import annotations

import functools
import socket
import urllib.parse
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from inferwatch.retry import RETRYABLE_STATUS, parse_retry_after

PROTOBUF = "application/x-protobuf"
# zlib's window with a gzip header and trailer (Content-Encoding: gzip).
_GZIP_WBITS = 16 + zlib.MAX_WBITS
# A probe waits this long at most for a connection (a collector that is up accepts at once).
_PROBE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Delivered:
    """The collector answered 2xx; ``rejected`` of the spans it named as refused (OTLP partial
    success), the others are stored."""

    rejected: int = 0


@dataclass(frozen=True, slots=True)
class Refused:
    """The collector refused the request with an answer that retrying would not change."""

    reason: str


@dataclass(frozen=True, slots=True)
class Retry:
    """No answer (``answered`` False), or "try again later"; ``after`` is the server's
    Retry-After, if it gave one."""

    reason: str
    after: float | None = None
    answered: bool = True


Outcome = Delivered | Refused | Retry


# One attempt at sending a prepared batch; called again for each retry.
Attempt = Callable[[], Outcome]


class SpanSender(Protocol):
    def prepare(self, request: list[bytes]) -> Attempt:
        """What sends ``request`` (an ExportTraceServiceRequest's protobuf bytes, in chunks)
        once a call."""
        ...

    def reachable(self) -> bool:
        """Whether the collector accepts connections again: a probe far cheaper than an
        attempt (no request is built), for waiting out an outage."""
        ...

    def close(self) -> None: ...


class OTLPHTTPSender:
    """Posts protobuf ExportTraceServiceRequests to ``url`` over one keep-alive connection.

    Only the export thread uses it, and closes it when it ends.
    """

    def __init__(
        self, url: str, *, headers: dict[str, str], timeout: float, gzip_body: bool
    ) -> None:
        self.url = url
        self._gzip = gzip_body
        request_headers = {"Content-Type": PROTOBUF, **headers}
        if gzip_body:
            request_headers["Content-Encoding"] = "gzip"
        self._client = httpx.Client(headers=request_headers, timeout=timeout)
        parts = urllib.parse.urlsplit(url)
        default_port = 443 if parts.scheme == "https" else 80
        self._address = (parts.hostname or "127.0.0.1", parts.port or default_port)
        self._probe_timeout = min(timeout, _PROBE_TIMEOUT)

    def prepare(self, request: list[bytes]) -> Attempt:
        if self._gzip:
            # Off by default: frames of packed floats barely compress (4% of a 1,000 x 20
            # batch) and gzip would cost several times the rest of the export (bench/notes/sdk.md).
            compressor = zlib.compressobj(6, zlib.DEFLATED, _GZIP_WBITS)
            request = [*map(compressor.compress, request), compressor.flush()]
        # The chunks are written one after the other, never joined into one copy.
        length = {"Content-Length": str(sum(map(len, request)))}
        return functools.partial(self._post, request, length)

    def _post(self, body: list[bytes], length: dict[str, str]) -> Outcome:
        try:
            response = self._client.post(self.url, content=body, headers=length)
        except httpx.TransportError as exc:
            # Refused, reset, timed out: the collector is down or restarting.
            return Retry(type(exc).__name__, answered=False)
        status = response.status_code
        if response.is_success:
            return Delivered(_rejected_spans(response))
        if status in RETRYABLE_STATUS:
            return Retry(f"HTTP {status}", parse_retry_after(response.headers.get("retry-after")))
        return Refused(f"HTTP {status}")

    def reachable(self) -> bool:
        try:
            socket.create_connection(self._address, timeout=self._probe_timeout).close()
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._client.close()


def _rejected_spans(response: httpx.Response) -> int:
    if not response.headers.get("content-type", "").startswith(PROTOBUF) or not response.content:
        return 0
    try:
        answer = ExportTraceServiceResponse.FromString(response.content)
    except DecodeError:
        return 0
    return max(int(answer.partial_success.rejected_spans), 0)
