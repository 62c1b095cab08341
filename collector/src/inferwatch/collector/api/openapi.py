"""The OpenAPI 3.1 document served at /openapi.json, generated from the routes and their models.

FastAPI describes each route from its parameters and response model. Added here: the bodies the
API reads itself (documented with ``request_body``), the error responses (``refusals``; FastAPI's
422 is never answered, a refusal is a 400), and, when the collector has API keys, the bearer
scheme and its 401 on every /v1 route.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from inferwatch.collector.api.bodies import ErrorBody

TITLE = "inferwatch collector"
VERSION = "1"
_REF = "#/components/schemas/{model}"
_REASONS = {
    400: "The request is invalid; the error says what was wrong.",
    401: "An API key is required: Authorization: Bearer <key>.",
    404: "Not found; the error says what.",
    413: "The request is over a limit; the error says which.",
    415: "Wrong content type; the error says which is expected.",
    429: "Overloaded; retry after Retry-After seconds.",
    503: "Unavailable; retry after Retry-After seconds.",
}
_PROTECTED_PREFIX = "/v1/"


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def request_body(
    model: type[BaseModel], *, required: bool = True, description: str | None = None
) -> dict[str, Any]:
    """``openapi_extra`` of a route reading (common.json_body) a JSON body ``model`` describes."""
    body: dict[str, Any] = {
        "required": required,
        "content": {"application/json": {"schema": schema_ref(model)}},
    }
    if description:
        body["description"] = description
    return {"requestBody": body}


def refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses`` of a route that may answer ``codes`` with ``{"error": ...}``."""
    return {code: {"model": ErrorBody, "description": _REASONS[code]} for code in codes}


def openapi_document(
    app: FastAPI, documented: Sequence[type[BaseModel]], *, api_keys: bool
) -> dict[str, Any]:
    """The document; ``documented`` are models that routes reference but FastAPI does not see."""
    document = get_openapi(
        title=TITLE,
        version=VERSION,
        description="The collector's HTTP API (docs/http-api.md). Errors are "
        '`{"error": "<sentence>"}`, except OTLP ingest\'s, which are google.rpc.Status.',
        routes=app.routes,
    )
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _add_schemas(schemas, documented)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            if api_keys and path.startswith(_PROTECTED_PREFIX):
                operation["security"] = [{"bearer": []}]
                operation["responses"]["401"] = _error_response(401)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if api_keys:
        document["components"]["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "One of the collector's api_keys.",
            }
        }
    return document


def _add_schemas(schemas: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    for name, schema in top.get("$defs", {}).items():
        if schemas.setdefault(name, schema) != schema:
            # Two different shapes under one name would make one $ref lie.
            raise ValueError(f"two schemas are named {name}: rename one of the models")


def _error_response(code: int) -> dict[str, Any]:
    return {
        "description": _REASONS[code],
        "content": {"application/json": {"schema": schema_ref(ErrorBody)}},
    }
