"""POST /v1/traces, OTLP/HTTP ingest, as a documented route.

The endpoint is receive.http's, unchanged: it reads, decodes and answers by itself (protobuf or
OTLP JSON in the request's type, google.rpc.Status on errors, Retry-After on 429 and 503). This
module only describes it; the JSON forms of its messages are modelled here for the schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from inferwatch.collector.api.openapi import schema_ref
from inferwatch.collector.receive.http import traces_endpoint
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


def traces_router(runtime: Collector, config: CollectorConfig) -> APIRouter:
    router = APIRouter()
    router.add_api_route(
        TRACES_PATH,
        traces_endpoint(
            runtime.pipeline,
            max_body_bytes=config.max_body_bytes,
            max_inflight_bytes=config.max_inflight_bytes,
            stats=runtime.receiver_stats,
        ),
        methods=["POST"],
        response_class=Response,
        summary="OTLP/HTTP traces (protobuf or OTLP JSON, optionally gzip).",
        description="Answers in the request's content type. 200 once the spans are durable; "
        "spans that are not inferwatch spans are ignored and counted (docs/otlp-ingest.md).",
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
