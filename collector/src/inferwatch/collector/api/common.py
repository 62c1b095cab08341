"""What the API routes share: the running collector, ISO 8601 times, reading bodies with caps.

Bodies are read here rather than by FastAPI, which reads a whole body before anything can
refuse it: these stop at the route's limit (413 naming it) and answer 415 for another type.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from inferwatch.collector.api.errors import ApiError, validation_message
from inferwatch.collector.codec import json_safe
from inferwatch.collector.runtime.collector import Collector

JSON_TYPES = ("application/json",)
# Path parameters that are stored as SQLite integers (window ids, part numbers).
MAX_INTEGER = 2**63 - 1

M = TypeVar("M", bound=BaseModel)


class StoredJSON(JSONResponse):
    """JSON of what the database holds, which an earlier release may have let anything into:
    a lone surrogate (in a feature name, a category) is written as its JSON escape and a
    non-finite number as null, rather than failing the response."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(json_safe(content), ensure_ascii=False, separators=(",", ":"))
        # backslashreplace writes a lone surrogate as \udXXX: inside a JSON string, its escape.
        return text.encode("utf-8", "backslashreplace")


def collector(request: Request) -> Collector:
    runtime: Collector = request.app.state.collector
    return runtime


def parse_iso(value: str | None, name: str) -> int | None:
    """Milliseconds from an ISO 8601 time (no zone means UTC)."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, f"{name} must be an ISO 8601 time such as 2024-05-01T12:00:00Z, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The body, refusing (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"{what} is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int, what: str, *, optional: bool = False) -> Any:
    """A JSON body (415 for another content type, 400 when it does not parse)."""
    body = await read_body(request, limit, what)
    if optional and not body.strip():
        return None
    kind = content_type(request)
    if kind not in JSON_TYPES:
        raise ApiError(415, f"{what} must be sent as application/json, not {kind or 'no type'}")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, f"{what} is not valid JSON: {exc}") from None


def json_body(
    what: str, limit: int, *, optional: bool = False
) -> Callable[[Request], Awaitable[Any]]:
    """A FastAPI dependency giving the route its JSON body, read as ``read_json`` reads it.

    The route documents the body with ``api.openapi.request_body``.
    """

    async def body(request: Request) -> Any:
        return await read_json(request, limit, what, optional=optional)

    return body


def validated(model: type[M], data: Any) -> M:
    """``data`` as ``model``; 400 with a sentence naming the field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, validation_message(exc.errors())) from None
