"""The OpenAPI 3.1 document served at /openapi.json, generated from the routes and their models.

FastAPI describes each route from its parameters and response model. Added here: the bodies the
API reads itself (documented with ``request_body``), the error responses (``refusals``; FastAPI's
422 is never answered, a refusal is a 400), the scope each route needs (``x-inferwatch-scope``),
the 503 every /v1 route answers while its storage fails (api.errors), and, when the collector has
API keys, the bearer scheme and its 401 and 403 on every /v1 route.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from inferwatch.collector.api.bodies import ErrorBody
from inferwatch.collector.api.common import Requires

TITLE = "inferwatch collector"
VERSION = "1"
_REF = "#/components/schemas/{model}"
_REASONS = {
    400: "The request is invalid; the error says what was wrong.",
    401: "An API key is required: Authorization: Bearer <key>.",
    403: "The key lacks the scope or the model; or the request is not allowed without one. "
    "The error says which.",
    404: "Not found; the error says what.",
    409: "Conflicts with the resource's state; the error says how.",
    413: "The request is over a limit; the error says which.",
    415: "Wrong content type; the error says which is expected.",
    429: "Overloaded; retry after Retry-After seconds.",
    503: "Storage is unavailable for now (database locked, disk full); retry after Retry-After "
    "seconds.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
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
    return {code: _refusal(code) for code in codes}


def _refusal(code: int) -> dict[str, Any]:
    refusal: dict[str, Any] = {"model": ErrorBody, "description": _REASONS[code]}
    if code in (429, 503):
        refusal["headers"] = _RETRY_AFTER
    return refusal


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
    scopes = _scopes(app)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            operation["responses"].pop("422", None)
            scope = scopes.get((path, method))
            if scope is not None:
                operation["x-inferwatch-scope"] = scope
            if path.startswith(_PROTECTED_PREFIX):
                operation["responses"].setdefault("503", _error_response(503))
            if api_keys and path.startswith(_PROTECTED_PREFIX):
                operation["security"] = [{"bearer": []}]
                for code in (401, 403):
                    operation["responses"].setdefault(str(code), _error_response(code))
    # FastAPI's 422 models, and definitions a replaced schema left behind.
    used = _referenced(document["paths"], schemas)
    for unused in set(schemas) - used:
        del schemas[unused]
    if api_keys:
        document["components"]["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "One of the collector's keys (docs/security.md).",
            }
        }
    return document


def _scopes(app: FastAPI) -> dict[tuple[str, str], str]:
    """The scope each route requires (common.Requires), by (path, lower-case method)."""
    found: dict[tuple[str, str], str] = {}
    for context in iter_route_contexts(app.routes):
        route = context.route
        if isinstance(route, APIRoute) and context.path is not None:
            for dependency in route.dependant.dependencies:
                if isinstance(dependency.call, Requires):
                    for method in route.methods or ():
                        found[(context.path, method.lower())] = dependency.call.scope
    return found


def _add_schemas(schemas: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    """The request bodies' schemas beside the responses'. A model both read and answered
    (the settings' ``AlertPolicy``) may read more than it shows (durations as strings): its
    reading schema is then ``<Name>Input``, as FastAPI names its own."""
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    renamed = {
        _REF.format(model=name): _REF.format(model=f"{name}Input")
        for name, schema in defs.items()
        if schemas.get(name, schema) != schema
    }
    for name, schema in defs.items():
        name = f"{name}Input" if _REF.format(model=name) in renamed else name
        schema = _with_refs(schema, renamed)
        if schemas.setdefault(name, schema) != schema:
            # Two different shapes under one name would make one $ref lie.
            raise ValueError(f"two schemas are named {name}: rename one of the models")


def _referenced(paths: Any, schemas: dict[str, Any]) -> set[str]:
    """The names of the schemas ``paths`` reach, directly or through other schemas."""
    prefix = _REF.format(model="")
    found: set[str] = set()
    todo = [paths]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] not in found:
                found.add(ref[len(prefix) :])
                todo.append(schemas.get(ref[len(prefix) :]))
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return found


def _with_refs(schema: Any, renamed: dict[str, str]) -> Any:
    if isinstance(schema, dict):
        return {
            key: renamed.get(value, value) if key == "$ref" else _with_refs(value, renamed)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_with_refs(item, renamed) for item in schema]
    return schema


def _error_response(code: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _REASONS[code],
        "content": {"application/json": {"schema": schema_ref(ErrorBody)}},
    }
    if code in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response
