"""What the API routes share: the running collector, who the caller is and what it may do, ISO
8601 times, reading bodies with caps.

Every /v1 route declares the scope it needs with ``Depends(Requires(scope))``, first among its
dependencies, so a request without a key or the scope is refused before its body is read; the
route's ``{model}`` is checked against the key's models too (docs/security.md).

Bodies are read here rather than by FastAPI, which reads a whole body before anything can
refuse it: these stop at the route's limit (413 naming it) and answer 415 for another type.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from inferwatch.collector.api.errors import ApiError, validation_message
from inferwatch.collector.codec import json_safe
from inferwatch.collector.runtime.collector import Collector
from inferwatch.collector.settings import ApiKey, Scope, find_key

JSON_TYPES = ("application/json",)
# Nesting a JSON body may have: the deepest body the API reads (a config) is 5 levels deep;
# past this, parsing and validating recurse toward Python's stack limit.
MAX_JSON_DEPTH = 32
# Every number the API reads is used as a float (labels, thresholds, durations).
_MAX_FLOAT_INT = int(sys.float_info.max)
# For _plainly_within_bounds: an integer past a float's range has this many digits at least.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_NUMBER = b"0" * len(str(_MAX_FLOAT_INT))
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_TAKEN = b"\x01"
_NUMBERS = f"numbers must be within ±{sys.float_info.max:.3g}"
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


@dataclass(frozen=True)
class Caller:
    """Who sent a request: one of the configured keys, or anyone (None) when there are none."""

    key: ApiKey | None

    @property
    def may_name_code(self) -> bool:
        """Whether the caller may name code to import in settings: an admin key only."""
        return self.key is not None and self.key.has("admin")

    def may_touch(self, model: str) -> bool:
        return self.key is None or self.key.may_touch(model)

    def refusal(self, model: str) -> str | None:
        """Why the caller may not touch ``model``, or None if it may."""
        if self.key is None or self.key.may_touch(model):
            return None
        return (
            f"the API key {self.key.name!r} may not touch model {_cut(model)!r}; its models are "
            + ", ".join(map(repr, self.key.models or ()))
        )

    def check_model(self, model: str, refused: type[ApiError] = ApiError) -> None:
        reason = self.refusal(model)
        if reason is not None:
            raise refused(403, reason)


class Requires:
    """The dependency of a route needing ``scope``: the request's Caller, or 401/403 raised as
    ``refused`` (the OTLP route answers in its own format)."""

    def __init__(self, scope: Scope, refused: type[ApiError] = ApiError) -> None:
        self.scope = scope
        self.refused = refused

    async def __call__(self, request: Request) -> Caller:
        caller = authenticate(request, self.scope, self.refused)
        model = request.path_params.get("model")
        if isinstance(model, str):
            caller.check_model(model, self.refused)
        request.state.caller = caller
        return caller


def needs(scope: Scope) -> list[Any]:
    """A route's ``dependencies``: the request must come with a key having ``scope``."""
    return [Depends(Requires(scope))]


def authenticate(request: Request, scope: Scope, refused: type[ApiError] = ApiError) -> Caller:
    keys = collector(request).config.access_keys
    if not keys:
        return Caller(None)
    challenge = {"WWW-Authenticate": "Bearer"}
    token = _bearer_token(request)
    if token is None:
        raise refused(
            401, "this collector needs an API key: send Authorization: Bearer <key>", challenge
        )
    key = find_key(keys, token.encode("latin-1"))
    # Neither message quotes what was sent: it may be a real key sent to the wrong collector.
    if key is None:
        raise refused(401, "the API key sent is not one of this collector's keys", challenge)
    if not key.has(scope):
        raise refused(
            403,
            f"the API key {key.name!r} lacks the {scope!r} scope this route needs; its scopes "
            f"are {', '.join(sorted(key.scopes))}",
        )
    return Caller(key)


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    """A JSON body (415 for another content type, 400 when it does not parse or is out of
    bounds). An ``optional`` body may be empty, which reads as ``{}``."""
    body = await read_body(request, limit, what)
    if optional and not body.strip():
        return {}
    kind = content_type(request)
    if kind not in JSON_TYPES:
        raise ApiError(415, f"{what} must be sent as application/json, not {kind or 'no type'}")
    try:
        data = json.loads(body)
    except RecursionError:
        raise ApiError(400, _too_deep(what)) from None
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of over 4,300 digits
        raise ApiError(400, f"{what} is not valid JSON: {exc}") from None
    if not _plainly_within_bounds(body):
        _check_json(data, what)
    return data


def _plainly_within_bounds(body: bytes) -> bool:
    """Whether the raw body of parsed JSON shows, in a few passes in C, what ``_check_json``
    would find walking every node in Python (~2 µs a label of a POST /v1/labels): no string
    that is not Unicode text, no integer past a float's range, no nesting past MAX_JSON_DEPTH.
    False means only "walk to be sure": then ``_check_json`` decides, and words the refusal.

    Without a backslash there is no escape (no ``\\ud800``, no escaped quote), so every
    quote opens or closes a string and the brackets outside strings are the nesting; strict
    UTF-8 decoding refuses encoded surrogates; an integer past a float's range has at least
    309 digits. Bodies in UTF-16 or UTF-32 are walked.
    """
    # A NUL byte: UTF-16 or UTF-32 (which json.loads reads too), where a quote's byte may be
    # half of another character.
    if b"\\" in body or b"\0" in body or _LONG_NUMBER in body.translate(_DIGITS_AS_ZERO):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    # The quotes and brackets; then the brackets outside strings (every other piece between
    # quotes): the containers, balanced since the body parsed.
    containers = b"".join(body.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    # Each pass takes away the containers that hold no container (marked first, so that one
    # emptied in this pass is not taken too); MAX_JSON_DEPTH passes empty a body nested no
    # deeper.
    for _ in range(MAX_JSON_DEPTH):
        if not containers:
            return True
        marked = containers.replace(b"{}", _TAKEN).replace(b"[]", _TAKEN)
        containers = marked.translate(None, _TAKEN)
    return not containers


def _check_json(data: Any, what: str) -> None:
    """Refuse (400) nesting past MAX_JSON_DEPTH, strings that are not Unicode text, and integers
    past a float's range (a 400-digit integer). Non-finite floats (``1e400``, ``NaN``) are left
    to the routes, whose checks name the field.

    JSON's ``\\ud800`` escapes decode to lone surrogates, which no database or encoder stores.
    Iterative, so that the check itself does not recurse.
    """
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, str):
            _check_text(node, what)
        elif isinstance(node, int) and abs(node) > _MAX_FLOAT_INT:
            digits = len(str(abs(node)))
            raise ApiError(400, f"{what} holds an integer of {digits} digits; {_NUMBERS}")
        elif isinstance(node, list | dict):
            if depth > MAX_JSON_DEPTH:
                raise ApiError(400, _too_deep(what))
            if isinstance(node, dict):
                for key in node:
                    _check_text(key, what)
                todo.extend((value, depth + 1) for value in node.values())
            else:
                todo.extend((item, depth + 1) for item in node)


def _check_text(text: str, what: str) -> None:
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ApiError(
                400, f"{what} holds a string with a lone surrogate, which is not Unicode text"
            ) from None


def _too_deep(what: str) -> str:
    return f"{what} is nested more than {MAX_JSON_DEPTH} levels deep; the limit is {MAX_JSON_DEPTH}"


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
