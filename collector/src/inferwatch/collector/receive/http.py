"""The OTLP/HTTP traces endpoint (POST /v1/traces).

It answers 200 only once the sink has made every decoded batch durable (or refused it for good,
reported in partial_success); when the sink pushes back it answers 429 with Retry-After, when it
cannot store now, or the bodies in flight hold the in-flight budget, 503 with Retry-After; OTLP
exporters retry both. Responses use the request's content type: an ExportTraceServiceResponse on
success, a google.rpc.Status on error.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio.to_thread
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.code_pb2 import (
    INVALID_ARGUMENT,
    PERMISSION_DENIED,
    RESOURCE_EXHAUSTED,
    UNAUTHENTICATED,
    UNAVAILABLE,
)
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from starlette.requests import Request
from starlette.responses import Response

from inferwatch.collector.receive.batch import BatchSink, Overloaded, Unavailable
from inferwatch.collector.receive.body import InflightBudget, read_body
from inferwatch.collector.receive.errors import Busy, ReceiveError, UnsupportedMediaType
from inferwatch.collector.receive.otlp import (
    CONTENT_TYPES,
    JSON,
    DecodedTraces,
    decode_export_request,
    media_type,
)
from inferwatch.collector.settings.limits import DEFAULT_LIMITS, IngestLimits

DEFAULT_MAX_BODY_BYTES = 64 * 2**20
DEFAULT_MAX_INFLIGHT_BYTES = 256 * 2**20
# Bodies above this are decoded in a worker thread so that one big (or wide) request does not
# stall the event loop (health checks, other requests) for long; below it, decoding takes a few
# milliseconds at most, and the hop to a thread and back (which gains nothing under the GIL)
# cost more CPU a request than the decoding of a 10-span request itself under load
# (bench/notes/collector.md, issue 15).
_INLINE_DECODE_BYTES = 2**20
# How long a client should wait when the sink fails for a reason other than Overloaded.
_RETRY_AFTER_FAILURE_S = 5
# At most this many per-span messages go into partial_success.error_message.
_MAX_ERRORS_REPORTED = 5

_GRPC_CODES = {
    400: INVALID_ARGUMENT,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    413: INVALID_ARGUMENT,
    415: INVALID_ARGUMENT,
}

logger = logging.getLogger(__name__)


@dataclass
class ReceiverStats:
    """Plain counters, exposed by the collector as Prometheus metrics.

    ``spans_received`` counts every span decoded, retries included; the outcome counters
    (accepted, ignored, rejected, duplicate) count only requests answered 200.
    """

    requests: int = 0
    spans_received: int = 0
    spans_accepted: int = 0
    spans_ignored: int = 0
    spans_rejected: int = 0
    spans_duplicate: int = 0
    bytes_received: int = 0
    overloaded_responses: int = 0
    # Refused with 503 because other requests' bodies held the in-flight budget.
    busy_responses: int = 0
    # The sink raised something other than Overloaded (answered 503, retryable).
    sink_failures: int = 0
    bad_requests: int = 0


def traces_endpoint(
    sink: BatchSink,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
    stats: ReceiverStats | None = None,
    refuse_model: Callable[[Request, str], str | None] | None = None,
    limits: IngestLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.time,
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint for POST /v1/traces that hands decoded batches to ``sink``.

    Mount it with ``Route(TRACES_PATH, endpoint, methods=["POST"])``.

    ``max_body_bytes`` caps the body both on the wire and once decompressed (413 above it);
    ``max_inflight_bytes`` caps the bodies of all requests held at once (503 beyond it).
    ``limits`` bound what the body holds, and the span times allowed around ``clock()``.
    ``refuse_model(request, model)`` says why the request's sender may not write ``model``
    (None when it may): those spans are rejected, and the request answered 403 when no span is
    left.
    """
    counters = stats if stats is not None else ReceiverStats()
    budget = InflightBudget(max_inflight_bytes)

    async def receive_traces(request: Request) -> Response:
        counters.requests += 1
        kind = media_type(request.headers.get("content-type", ""))
        # Held until the answer: the decoded batches may still point into the body.
        with budget.hold() as holding:
            try:
                if kind not in CONTENT_TYPES:
                    raise UnsupportedMediaType(
                        f"Content type {kind or '(none)'!r} is not supported; "
                        f"send one of {', '.join(CONTENT_TYPES)}."
                    )
                body = await read_body(request, limit=max_body_bytes, holding=holding)
                counters.bytes_received += body.wire_bytes
                now_ns = int(clock() * 1e9)
                if len(body.data) > _INLINE_DECODE_BYTES:
                    decoded = await anyio.to_thread.run_sync(
                        decode_export_request, body.data, kind, limits, now_ns
                    )
                else:
                    decoded = decode_export_request(body.data, kind, limits, now_ns)
            except Busy as exc:
                counters.busy_responses += 1
                return _retry_later(503, str(exc), exc.retry_after, kind)
            except ReceiveError as exc:
                counters.bad_requests += 1
                return _status(exc.status_code, str(exc), kind)
            return await _store(request, decoded, kind)

    async def _store(request: Request, decoded: DecodedTraces, kind: str) -> Response:
        counters.spans_received += decoded.received
        if refuse_model is not None:
            decoded, refused_all = _without_refused(
                decoded, lambda model: refuse_model(request, model)
            )
            if refused_all:
                counters.bad_requests += 1
                return _status(403, decoded.errors[0], kind)
        refused: Sequence[str] = ()
        if decoded.batches:
            try:
                refused = await sink.submit(decoded.batches)
            except Overloaded as exc:
                counters.overloaded_responses += 1
                message = f"The collector is overloaded ({exc}); retry later."
                return _retry_later(429, message, exc.retry_after, kind)
            except Unavailable as exc:
                counters.sink_failures += 1
                message = f"The collector could not store the spans ({exc}); retry later."
                return _retry_later(503, message, exc.retry_after, kind)
            except Exception:
                logger.exception("storing %d prediction batches failed", len(decoded.batches))
                counters.sink_failures += 1
                return _retry_later(
                    503, "The collector could not store the spans.", _RETRY_AFTER_FAILURE_S, kind
                )
        rejected = decoded.rejected + len(refused)
        errors = [*decoded.errors, *refused]
        counters.spans_accepted += len(decoded.batches) - len(refused)
        counters.spans_ignored += decoded.ignored
        counters.spans_rejected += rejected
        counters.spans_duplicate += decoded.duplicates
        if rejected:
            logger.warning("rejected %d inferwatch spans: %s", rejected, errors[0])
        return _encode(200, _export_response(rejected, errors), kind)

    return receive_traces


def _without_refused(
    decoded: DecodedTraces, refusal: Callable[[str], str | None]
) -> tuple[DecodedTraces, bool]:
    """``decoded`` without the batches of the models ``refusal`` gives a reason for (those count
    as rejected, their reasons first among the errors), and whether every batch was refused."""
    reasons: dict[str, str | None] = {}
    kept = []
    refused: list[str] = []
    for batch in decoded.batches:
        if batch.model not in reasons:
            reasons[batch.model] = refusal(batch.model)
        reason = reasons[batch.model]
        if reason is None:
            kept.append(batch)
        else:
            refused.append(reason)
    admitted = DecodedTraces(
        batches=kept,
        ignored=decoded.ignored,
        rejected=decoded.rejected + len(refused),
        duplicates=decoded.duplicates,
        errors=refused + decoded.errors,
    )
    return admitted, bool(refused) and not kept


def refusal(status_code: int, message: str, content_type: str) -> Response:
    """An OTLP error (google.rpc.Status in the request's type) for 400, 401, 403, 413 or 415."""
    return _status(status_code, message, media_type(content_type))


def _export_response(rejected: int, errors: Sequence[str]) -> ExportTraceServiceResponse:
    if not rejected:
        return ExportTraceServiceResponse()
    shown = errors[:_MAX_ERRORS_REPORTED]
    message = " ".join(shown)
    if len(errors) > len(shown):
        message += f" ({len(errors) - len(shown)} more spans were rejected.)"
    return ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
    )


def _retry_later(status_code: int, message: str, retry_after: float, kind: str) -> Response:
    code = RESOURCE_EXHAUSTED if status_code == 429 else UNAVAILABLE
    response = _encode(status_code, Status(code=code, message=message), kind)
    response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def _status(status_code: int, message: str, kind: str) -> Response:
    return _encode(status_code, Status(code=_GRPC_CODES[status_code], message=message), kind)


def _encode(status_code: int, message: Message, kind: str) -> Response:
    if kind in CONTENT_TYPES and kind != JSON:
        return Response(message.SerializeToString(), status_code, media_type=kind)
    # OTLP JSON: lowerCamelCase keys, 64-bit integers as strings; what json_format produces for
    # messages without ids or enums.
    text = json_format.MessageToJson(message, indent=None)
    return Response(text, status_code, media_type=JSON)
