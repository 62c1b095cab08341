"""Every refusal as ``{"error": "<a sentence>"}``: the API's own, FastAPI's and Starlette's.

FastAPI answers a request that fails validation with 422 and pydantic's error list; this
collector answers 400 with one sentence naming the field and what it must be, as its hand-written
checks do. Unknown paths and methods keep their statuses (404, 405) with the same JSON shape.

A store that fails for a while (database locked, disk full, an I/O error) is answered 503 with
Retry-After, which clients (the SDK included) retry; a value over the database's own limits is
a 413; anything else unforeseen a 500, still as ``{"error": ...}``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from inferwatch.collector.window.store import StorageUnavailable

# Values quoted in a message are cut to this many characters: a hostile input is not echoed whole.
_MAX_QUOTED = 80
# Where FastAPI says a value came from; the message names the field alone.
_SOURCES = {"body", "query", "path", "header", "cookie"}
# SQLite's primary result codes (sqlite.org/rescode.html) of failures that pass: another writer
# holds the database (BUSY, LOCKED), memory, I/O or space ran out (NOMEM, IOERR, FULL), the file
# cannot be opened or written for now (CANTOPEN, READONLY), the WAL lock protocol raced (PROTOCOL).
_SQLITE_BUSY = {5, 6}
_SQLITE_PASSING = {*_SQLITE_BUSY, 7, 8, 10, 13, 14, 15}
_SQLITE_TOOBIG = 18
# Seconds a client waits before retrying: another writer is usually done within one; disk
# space or I/O needs an operator and longer.
RETRY_AFTER_BUSY_S = 1
RETRY_AFTER_STORAGE_S = 5

logger = logging.getLogger(__name__)


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


async def _storage_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, sqlite3.Error)
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in _SQLITE_PASSING:
        logger.warning(
            "storage failed for %s %s, answered 503: %s",
            request.method,
            _cut(request.url.path),
            exc,
        )
        wait = RETRY_AFTER_BUSY_S if code in _SQLITE_BUSY else RETRY_AFTER_STORAGE_S
        return error_response(
            503,
            f"the collector could not store or read this now ({exc}); retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )
    if code == _SQLITE_TOOBIG:
        return error_response(413, "a value in the request is over the database's size limit")
    logger.error("storage failed for %s %s", request.method, _cut(request.url.path), exc_info=exc)
    return error_response(500, f"the collector's database failed: {exc}")


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    """A database server that cannot be reached or refuses for now (PostgreSQL's backend)."""
    logger.warning(
        "storage failed for %s %s, answered 503: %s", request.method, _cut(request.url.path), exc
    )
    wait = RETRY_AFTER_STORAGE_S
    return error_response(
        503,
        f"the collector could not store or read this now ({exc}); retry after {wait} s",
        headers={"Retry-After": str(wait)},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A fault of the collector's own; the traceback goes to the log (Starlette re-raises)."""
    return error_response(500, "the collector failed on this request; its log says why")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed, no such static file)."""
    assert isinstance(exc, HTTPException)
    path = _cut(request.url.path)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"nothing is served at {path}"
    elif exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
        message = f"{request.method} is not allowed on {path}; allowed: {headers['Allow']}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path. Starlette's 405 names only the
    first route matching the path, though GET and PUT of one path are two routes here."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(sqlite3.Error, _storage_error)
    app.add_exception_handler(StorageUnavailable, _storage_unavailable)
    app.add_exception_handler(Exception, _unexpected)
