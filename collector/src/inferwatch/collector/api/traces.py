"""POST /v1/traces, OTLP/HTTP ingest, as a documented route.

The endpoint is receive.http's, unchanged: it reads, decodes and answers by itself (protobuf or
OTLP JSON in the request's type, google.rpc.Status on errors, Retry-After on 429 and 503). This
module describes it, with the JSON forms of its messages modelled for the schema, and guards it:
the write scope is needed (401/403 as google.rpc.Status too), and spans of models outside the
key's are rejected (partial_success), the whole request 403 when none is left.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.requests import Request

from inferwatch.collector.api.common import Caller, Requires
from inferwatch.collector.api.errors import ApiError
from inferwatch.collector.api.openapi import schema_ref
from inferwatch.collector.receive.http import refusal, traces_endpoint
from inferwatch.collector.receive.otlp import JSON, PROTOBUF
from inferwatch.collector.runtime.collector import Collector
from inferwatch.collector.settings import CollectorConfig
from inferwatch.contract import TRACES_PATH


class PartialSuccess(BaseModel):
    rejectedSpans: str = Field(description="An int64, as OTLP JSON writes it.")
    errorMessage: str = ""


class ExportTraceServiceResponse(BaseModel):
    """OTLP JSON; ``{}`` when every span was accepted (or ignored: not an inferwatch span)."""

    partialSuccess: PartialSuccess | None = None


class RpcStatus(BaseModel):
    """google.rpc.Status, OTLP's error body."""

    code: int = Field(description="3 invalid argument, 8 resource exhausted, 14 unavailable.")
    message: str
    details: list[dict[str, Any]] = []


WIRE_MESSAGES: tuple[type[BaseModel], ...] = (ExportTraceServiceResponse, RpcStatus)
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _answer(description: str, message: type[BaseModel]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROTOBUF: _BINARY, JSON: {"schema": schema_ref(message)}},
    }


def _retry(description: str) -> dict[str, Any]:
    answer = _answer(description, RpcStatus)
    answer["headers"] = {
        "Retry-After": {"description": "Seconds.", "schema": {"type": "integer", "minimum": 1}}
    }
    return answer


class OtlpRefusal(ApiError):
    """An API refusal of the OTLP route, answered as OTLP answers (``otlp_refusal``)."""


async def otlp_refusal(request: Request, exc: Exception) -> Response:
    """The exception handler of OtlpRefusal: a google.rpc.Status in the request's type."""
    assert isinstance(exc, OtlpRefusal)
    response = refusal(exc.status, exc.message, request.headers.get("content-type", ""))
    response.headers.update(exc.headers or {})
    return response


def _model_refusal(request: Request, model: str) -> str | None:
    caller: Caller = request.state.caller
    return caller.refusal(model)


# The route's refusals when the collector has keys: OTLP's, not the API's {"error": ...}.
KEY_REFUSALS = {
    "401": _answer("An API key is required: Authorization: Bearer <key>.", RpcStatus),
    "403": _answer("The key lacks the write scope, or no span is of its models.", RpcStatus),
}


def traces_router(runtime: Collector, config: CollectorConfig) -> APIRouter:
    router = APIRouter()
    router.add_api_route(
        TRACES_PATH,
        traces_endpoint(
            runtime.pipeline,
            max_body_bytes=config.max_body_bytes,
            max_inflight_bytes=config.max_inflight_bytes,
            stats=runtime.receiver_stats,
            refuse_model=_model_refusal,
            limits=config.limits,
            clock=runtime.clock,
        ),
        methods=["POST"],
        dependencies=[Depends(Requires("write", refused=OtlpRefusal))],
        response_class=Response,
        summary="OTLP/HTTP traces (protobuf or OTLP JSON, optionally gzip).",
        description="Answers in the request's content type. 200 once the spans are durable; "
        "spans that are not inferwatch spans are ignored and counted (docs/otlp-ingest.md), "
        "spans of models the key may not write are rejected (partial_success).",
        responses={
            200: _answer("ExportTraceServiceResponse.", ExportTraceServiceResponse),
            400: _answer("The body does not decode; google.rpc.Status.", RpcStatus),
            413: _answer("The body (or its decompressed size) is over the limit.", RpcStatus),
            415: _answer("Neither protobuf nor OTLP JSON.", RpcStatus),
            429: _retry("The ingest queue is full; retry after Retry-After seconds."),
            503: _retry(
                "The spans could not be stored now, or other requests' bodies hold the "
                "in-flight limit; retry after Retry-After seconds."
            ),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "ExportTraceServiceRequest; Content-Encoding: gzip is accepted.",
                "content": {
                    PROTOBUF: _BINARY,
                    JSON: {"schema": {"type": "object", "description": "OTLP JSON."}},
                },
            }
        },
    )
    return router
