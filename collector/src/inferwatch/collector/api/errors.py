"""Every refusal as ``{"error": "<a sentence>"}``: the API's own, FastAPI's and Starlette's.

FastAPI answers a request that fails validation with 422 and pydantic's error list; this
collector answers 400 with one sentence naming the field and what it must be, as its hand-written
checks do. Unknown paths and methods keep their statuses (404, 405) with the same JSON shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# Values quoted in a message are cut to this many characters: a hostile input is not echoed whole.
_MAX_QUOTED = 80
# Where FastAPI says a value came from; the message names the field alone.
_SOURCES = {"body", "query", "path", "header", "cookie"}


class ApiError(Exception):
    """Answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def validation_message(errors: Sequence[Mapping[str, Any]], prefix: str = "") -> str:
    """One sentence for pydantic's (or FastAPI's) error list; the first error, and how many more.

    ``prefix`` names a body's fields (``"config"`` gives ``config.window``).
    """
    first = errors[0]
    message = _sentence(first, prefix)
    if len(errors) > 1:
        message += f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return message


def _sentence(error: Mapping[str, Any], prefix: str) -> str:
    where = _location(error.get("loc", ()), prefix) or "the request"
    kind = error.get("type", "")
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    got = _quoted(error.get("input"))
    if kind == "missing":
        return f"{where} is required"
    if kind == "extra_forbidden":
        return f"{where} is not a known field"
    if kind == "json_invalid":
        return f"the request body is not valid JSON: {ctx.get('error', 'it does not parse')}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace(" or ", ", ")
        return f"{where} must be one of {expected}, got {got}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{where} must be an integer, got {got}"
    if kind == "greater_than_equal":
        return f"{where} must be at least {ctx.get('ge')}, got {got}"
    if kind == "less_than_equal":
        return f"{where} must be at most {ctx.get('le')}, got {got}"
    if kind == "too_long":
        limit = ctx.get("max_length")
        return f"{where} has {ctx.get('actual_length')} items or characters; the limit is {limit}"
    if kind == "value_error":
        return str(ctx.get("error", error.get("msg", "")))
    text = str(error.get("msg", "is not valid"))
    return f"{where}: {text[:1].lower()}{text[1:]}, got {got}"


def _location(loc: Sequence[str | int], prefix: str) -> str:
    parts = list(loc)
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    text = ""
    for part in [prefix, *parts] if prefix else parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "":
            text += f".{part}" if text else str(part)
    return text


def _quoted(value: object) -> str:
    return _cut(repr(value))


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 3] + "..."


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, headers=exc.headers)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, validation_message(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed, no such static file)."""
    assert isinstance(exc, HTTPException)
    path = _cut(request.url.path)
    if exc.status_code == 404:
        message = f"nothing is served at {path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {path}; allowed: {allowed}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
