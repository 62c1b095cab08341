"""InferwatchMiddleware: records every monitored HTTP call of an ASGI app as a prediction span.

It wraps ``receive`` and ``send``: every message passes through at once and unchanged (except
the prediction-ids header added to the response start), while body chunks are copied up to a
cap. The response start waits only for the ids: for the usual batch, its rows are counted from
the body's brackets; other bodies are mapped to inputs then. Once the response is sent, the
copies are mapped to inputs and outputs and handed to
:class:`inferwatch.recorder.PredictionRecorder`. Nothing it does can fail the request: every
error is caught, counted in :attr:`InferwatchMiddleware.stats` and logged (rate-limited).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import inferwatch
from inferwatch import diagnostics
from inferwatch.middleware.ids import ID_LENGTH, new_ids_text
from inferwatch.middleware.mapping import (
    CapturedRequest,
    CapturedResponse,
    InputsMapper,
    MappingError,
    OutputsMapper,
    default_inputs,
    default_outputs,
    ids_from_field,
    ids_from_header,
    rows_in_json,
)
from inferwatch.middleware.routes import RouteFilter
from inferwatch.recorder import PredictionRecorder

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "InferwatchMiddleware",
    "MiddlewareStats",
    "ResponseStatusError",
    "stats",
]

# The ASGI interface, spelled out so that the middleware needs no web framework.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_ID_HEADER = "X-Prediction-Ids"
# Clients refuse responses whose headers exceed a limit (h11, used by httpx, stops at 16 KiB), so
# a batch with more ids than fit is answered without the header; its ids are still recorded.
MAX_ID_HEADER_BYTES = 8 * 1024
# Visible ASCII: what any client can read in a header value.
_HEADER_SAFE = re.compile(r"[!-~]+")

# Counters that are failures (also counted in inferwatch.stats().monitoring_errors), as opposed
# to calls skipped on purpose.
_FAILURES = frozenset({"mapping_errors", "internal_errors"})


class ResponseStatusError(Exception):
    """Stands for an error response (HTTP 4xx/5xx) in the recorded span."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the service answered HTTP {status}")
        self.status = status


@dataclass
class MiddlewareStats:
    """Counters for one middleware instance (one per worker process)."""

    # Requests on a monitored route, and the calls recorded from them.
    requests: int = 0
    recorded: int = 0
    # Calls not recorded because a body was bigger than max_body_bytes.
    request_too_large: int = 0
    response_too_large: int = 0
    # A body that the mapping (default or user-supplied) could not turn into inputs/outputs.
    mapping_errors: int = 0
    # Anything else that failed inside the middleware (ids, recorder, lazy init).
    internal_errors: int = 0
    # Responses sent without the ids header: the response started before the request body was
    # read to its end, the inputs could not be mapped, or the ids did not fit.
    ids_header_skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


# Every middleware built in this process: BentoML builds them itself, so users cannot hold one.
_instances: weakref.WeakSet[InferwatchMiddleware] = weakref.WeakSet()


def stats() -> MiddlewareStats:
    """The counters of every InferwatchMiddleware in this process (one worker), summed."""
    total = MiddlewareStats()
    for middleware in list(_instances):
        for field in dataclasses.fields(MiddlewareStats):
            name = field.name
            setattr(total, name, getattr(total, name) + getattr(middleware.stats, name))
    return total


class InferwatchMiddleware:
    """Pure ASGI middleware recording each monitored call (one span per HTTP request).

    BentoML: ``MyService.add_asgi_middleware(InferwatchMiddleware, model="iris", version="1")``;
    Starlette/FastAPI: ``app.add_middleware(InferwatchMiddleware, model="iris", version="1")``.

    Parameters
    ----------
    model, version, task, feature_names, classes:
        Passed to :class:`~inferwatch.recorder.PredictionRecorder`.
    redact:
        Input features to drop or hash before anything leaves the process, e.g.
        ``{"ssn": "drop", "email": "hash"}`` (see :mod:`inferwatch.redact`; the hash key is
        ``redact_key`` or $INFERWATCH_REDACT_KEY).
    routes:
        Paths to monitor (any method; an entry ending in ``*`` is a prefix). Default: every POST
        except BentoML's infrastructure and task-control endpoints; see
        :class:`~inferwatch.middleware.routes.RouteFilter`.
    max_body_bytes:
        Request or response bodies longer than this are not copied; the call is not recorded
        and counted in ``stats.request_too_large`` / ``stats.response_too_large``.
    to_inputs, to_outputs:
        Replace the default JSON mapping; each receives a CapturedRequest / CapturedResponse.
    id_header:
        Request header carrying client ids (comma-separated), and response header returning
        the call's prediction ids.
    id_field:
        A JSON request field carrying client ids (top level, or in each row); not a feature.
    endpoint, api_key, redact_key:
        When ``endpoint`` is given, ``inferwatch.init`` is called with these in each worker
        process on its first monitored request, unless the process already initialised the
        SDK itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        model: str,
        version: str = "",
        task: str | None = None,
        routes: Iterable[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        to_inputs: InputsMapper | None = None,
        to_outputs: OutputsMapper | None = None,
        id_header: str = DEFAULT_ID_HEADER,
        id_field: str | None = None,
        feature_names: Sequence[str] | None = None,
        classes: Sequence[object] | None = None,
        endpoint: str | None = None,
        api_key: str | None = None,
        redact: Mapping[str, Literal["drop", "hash"]] | None = None,
        redact_key: str | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
            raise TypeError(f"max_body_bytes must be an int, got {max_body_bytes!r}")
        if max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must be >= 0, got {max_body_bytes}")
        if not id_header or not isinstance(id_header, str):
            raise ValueError(f"id_header must be a header name, got {id_header!r}")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http:// or https:// URL, got {endpoint!r}")
        for name, mapper in (("to_inputs", to_inputs), ("to_outputs", to_outputs)):
            if mapper is not None and not callable(mapper):
                raise TypeError(f"{name} must be callable, got {type(mapper).__name__}")
        self.app = app
        self.stats = MiddlewareStats()
        self._routes = RouteFilter(routes)
        self._max_body_bytes = max_body_bytes
        self._to_inputs = to_inputs
        self._to_outputs = to_outputs or default_outputs
        self._id_header = id_header
        self._id_header_bytes = id_header.lower().encode("latin-1")
        self._id_field = id_field
        # With the default mapping and ids that come from no body field, the ids need only the
        # number of rows, which rows_in_json reads without parsing the body.
        self._counts_rows = to_inputs is None and id_field is None
        self.model = model
        # Holds settings only (and checks them now, when the app is built).
        self._recorder = PredictionRecorder(
            model, version, task, feature_names=feature_names, classes=classes, redact=redact
        )
        self._endpoint = endpoint
        self._api_key = api_key
        self._redact_key = redact_key
        # The SDK is initialised lazily in each process (see _ready): nothing here may start
        # threads or open connections, since servers build this object before or across forks.
        self._ready_pid = -1
        self._log = diagnostics.RateLimitedLog()
        _instances.add(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._routes.monitors(scope):
            await self.app(scope, receive, send)
            return
        self.stats.requests += 1
        call = _Call(self, scope, receive, send)
        try:
            await self.app(scope, call.receive, call.send)
        except Exception as exc:
            call.finish(exc)
            raise
        call.finish(None)

    # -- used by _Call -------------------------------------------------------------------------

    def _ready(self) -> PredictionRecorder:
        pid = os.getpid()
        if self._ready_pid != pid:
            if self._endpoint is not None and not inferwatch.is_initialized():
                inferwatch.init(
                    endpoint=self._endpoint, api_key=self._api_key, redact_key=self._redact_key
                )
            self._ready_pid = pid
        return self._recorder

    def _inputs(self, request: CapturedRequest) -> object:
        if self._to_inputs is not None:
            return self._to_inputs(request)
        return default_inputs(request, self._id_field)

    def _client_ids(self, request: CapturedRequest) -> list[str] | None:
        ids = ids_from_header(request, self._id_header)
        if ids is None and self._id_field is not None:
            ids = ids_from_field(request, self._id_field)
        return ids

    def _problem(self, counter: str, what: str, exc: BaseException | None = None) -> None:
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        if counter in _FAILURES:
            diagnostics.counters.add("monitoring_errors")
        # MappingError messages are ours and quote no value; another exception's message could
        # quote a feature value, so only its type is logged.
        reason = ""
        if isinstance(exc, MappingError):
            reason = f": {exc}"
        elif exc is not None:
            reason = f" ({type(exc).__name__})"
        self._log.warning(
            counter,
            "inferwatch middleware (model %r): %s%s. The request was served unchanged; counted "
            "in the middleware's stats.%s.",
            self.model,
            what,
            reason,
            counter,
        )


class _BodyCopy:
    """Chunks of a body as they pass, until they exceed the cap."""

    __slots__ = ("cap", "chunks", "overflowed", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflowed = False

    def add(self, chunk: bytes) -> None:
        if self.overflowed or not chunk:
            return
        self.size += len(chunk)
        if self.size > self.cap:
            self.overflowed = True
            self.chunks.clear()
        else:
            self.chunks.append(chunk if isinstance(chunk, bytes) else bytes(chunk))

    def value(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


class _Call:
    """The state of one monitored request, from the first receive to the recording."""

    __slots__ = (
        "_server_receive",
        "_server_send",
        "client_ids",
        "end_ns",
        "entered_ns",
        "ids",
        "ids_text",
        "ids_tried",
        "inputs",
        "inputs_mapped",
        "inputs_tried",
        "owner",
        "request",
        "request_body",
        "request_done",
        "response_body",
        "response_headers",
        "scope",
        "start_ns",
        "status",
    )

    def __init__(
        self, owner: InferwatchMiddleware, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.owner = owner
        self.scope = scope
        self._server_receive = receive
        self._server_send = send
        self.entered_ns = time.time_ns()
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.request_body = _BodyCopy(owner._max_body_bytes)
        self.response_body = _BodyCopy(owner._max_body_bytes)
        self.request_done = False
        self.status: int | None = None
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.inputs: object = None
        self.inputs_mapped = False
        self.inputs_tried = False
        self.ids: list[str] | None = None
        self.ids_text: str | None = None
        self.ids_tried = False
        self.client_ids = False
        self.request: CapturedRequest | None = None

    async def receive(self) -> Message:
        if self.start_ns is None:
            self.start_ns = time.time_ns()
        message = await self._server_receive()
        if message["type"] == "http.request" and not self.request_done:
            self.request_body.add(message.get("body", b""))
            self.request_done = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.response_headers = list(message.get("headers", ()))
            header = self._ids_header()
            if header is not None:
                # A new dict and list: Starlette sends a Response's own header list.
                message = {**message, "headers": [*self.response_headers, header]}
        elif kind == "http.response.body":
            self.response_body.add(message.get("body", b""))
            if not message.get("more_body", False):
                self.end_ns = time.time_ns()
        await self._server_send(message)

    def _ids_header(self) -> tuple[bytes, bytes] | None:
        try:
            self._prediction_ids()
        except Exception as exc:
            self.owner._problem("internal_errors", "computing prediction ids failed", exc)
            return None
        ids, value = self.ids, self.ids_text
        if value is None:
            if ids is None:
                self.owner.stats.ids_header_skipped += 1
                return None
            value = ",".join(ids)
        if not value:
            return None  # a call without rows has no ids
        if len(value) > MAX_ID_HEADER_BYTES or (
            # Ids from the client may hold what a header must not (CR/LF, non-ASCII, commas).
            ids is not None
            and self.client_ids
            and (value.count(",") != len(ids) - 1 or not _HEADER_SAFE.fullmatch(value))
        ):
            self.owner.stats.ids_header_skipped += 1
            return None
        return (self.owner._id_header_bytes, value.encode("ascii"))

    def _prediction_ids(self) -> None:
        """Sets the call's ids, once the request body is complete and, unless its rows can be
        counted without parsing it, its inputs could be mapped.

        A batch in the usual shape only has its rows counted: its ids must be in the response's
        headers, its inputs only in the span, so it is parsed after the response. Its new ids
        are kept as the header's text (``ids_text``) until they are recorded.
        """
        if not self.request_done or self.ids_tried or self.request_body.overflowed:
            return
        self.ids_tried = True
        owner = self.owner
        # An error status may answer a body that is not JSON: it is parsed to be sure.
        rows = None
        if owner._counts_rows and (self.status is None or self.status < 400):
            rows = rows_in_json(self.request_body.value())
        if rows is None:
            self._map_inputs()
            if not self.inputs_mapped:
                return
        given = owner._client_ids(self._request())
        self.client_ids = given is not None
        if rows is None:
            self.ids = owner._ready().prediction_ids(self.inputs, given)
        elif given is not None and len(given) == rows:
            self.ids = given
        elif rows * (ID_LENGTH + 1) - 1 <= MAX_ID_HEADER_BYTES:
            self.ids_text = new_ids_text(rows)
        # else: the ids would not fit the header; the recorder makes them after the response.

    def _request(self) -> CapturedRequest:
        # Built once: the default mapping and the id field both read its parsed JSON.
        if self.request is None:
            self.request = CapturedRequest(
                self.scope["method"],
                self.scope["path"],
                self.scope["headers"],
                self.request_body.value(),
            )
        return self.request

    def _map_inputs(self) -> None:
        self.inputs_tried = True
        try:
            self.inputs = self.owner._inputs(self._request())
            self.inputs_mapped = True
        except Exception as exc:
            self.owner._problem("mapping_errors", "mapping the request body to inputs failed", exc)

    def finish(self, error: Exception | None) -> None:
        """Record the call once the app is done with it; never raises."""
        owner = self.owner
        try:
            if self.request_body.overflowed:
                owner._problem("request_too_large", _too_large("request", owner._max_body_bytes))
                return
            if self.response_body.overflowed:
                owner._problem("response_too_large", _too_large("response", owner._max_body_bytes))
                return
            recorder = owner._ready()
            # Also maps the inputs when the response started before the request body ended.
            self._prediction_ids()
            if not self.inputs_tried and self.ids_tried:
                self._map_inputs()  # only the rows were counted, for the ids header
            if not self.inputs_mapped:
                return  # counted in mapping_errors, or the app never read the whole body
            if error is None and self.status is not None and self.status >= 400:
                error = ResponseStatusError(self.status)
            outputs: object = None
            if error is None:
                response = CapturedResponse(
                    self.status or 0,
                    self.response_headers,
                    self.response_body.value(),
                )
                try:
                    outputs = owner._to_outputs(response)
                except Exception as exc:
                    owner._problem(
                        "mapping_errors", "mapping the response body to outputs failed", exc
                    )
                    return
            ids = self.ids
            if ids is None and self.ids_text is not None:
                ids = self.ids_text.split(",")
            recorder.record(
                self.inputs,
                outputs,
                ids=ids,
                start_ns=self.start_ns or self.entered_ns,
                end_ns=self.end_ns or time.time_ns(),
                error=error,
            )
            owner.stats.recorded += 1
        except Exception as exc:
            owner._problem("internal_errors", "recording the call failed", exc)


def _too_large(what: str, cap: int) -> str:
    return f"a {what} body was longer than max_body_bytes={cap} and was not recorded"
