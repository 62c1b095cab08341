"""A scripted stand-in for the collector's API the SDK's clients call, on a real port.

It speaks docs/http-api.md for labels, reference uploads and the windows and alerts the report
reads (JSON errors, 413 above 10,000 labels, frames decoded with the real codec) and records
every request with its arrival time. Tests queue answers with ``script`` to make it throttle,
fail or hang; unscripted requests get the normal answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inferwatch.config import current_settings, set_current_settings
from inferwatch.frame import CONTENT_TYPE, Frame, FrameError, decode_frame
from inferwatch_testkit import closed_port, serve_asgi

MAX_LABELS = 10_000
REFERENCE = "/v1/models/{model}/versions/{version}/reference/uploads"


@dataclass
class Answer:
    """A scripted answer: a status with a JSON body and headers, after an optional delay."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    at: float  # time.monotonic() when the request arrived
    route: str
    path: str  # as sent, still percent-encoded
    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)
    status: int = 0


class FakeCollector:
    def __init__(self) -> None:
        self.url = ""
        self.reset()

    def reset(self) -> None:
        self.requests: list[Recorded] = []
        self.scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self.predictions: set[str] = set()  # ids a label joins to; others are pending
        self.labels: dict[str, Any] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.starts: list[dict[str, Any]] = []
        self.committed: dict[tuple[str, str], list[bytes]] = {}
        # Every part received, decoded, by part number.
        self.parts: dict[int, Frame] = {}
        # What GET .../windows and .../alerts answer for the model "credit" (others are 404);
        # GET /v1/models lists credit with version 3 and those of the windows.
        self.windows: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.api_key: str | None = None

    def script(
        self,
        route: str,
        status: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests to ``route`` ("labels", "start", "part", "commit",
        "windows", "alerts" or "models") with ``status`` and a JSON ``body``, after ``delay``
        seconds."""
        answer = Answer(status, body, headers or {}, delay)
        self.scripts[route].extend([answer] * times)

    def of(self, route: str) -> list[Recorded]:
        return [r for r in self.requests if r.route == route]

    async def _handle(self, route: str, request: Request) -> Response:
        body = await request.body()
        raw_path = request.scope["raw_path"].decode("latin-1")
        record = Recorded(
            time.monotonic(),
            route,
            raw_path,
            dict(request.headers),
            body,
            dict(request.query_params),
        )
        self.requests.append(record)
        response = await self._answer(route, request, body)
        record.status = response.status_code
        return response

    async def _answer(self, route: str, request: Request, body: bytes) -> Response:
        if self.api_key is not None and request.headers.get("authorization") != (
            f"Bearer {self.api_key}"
        ):
            return JSONResponse({"error": "missing or unknown API key"}, 401)
        if self.scripts[route]:
            answer = self.scripts[route].popleft()
            if answer.delay:
                await asyncio.sleep(answer.delay)
            return JSONResponse(answer.body, answer.status, headers=answer.headers)
        return getattr(self, f"_{route}")(request, body)

    def _labels(self, request: Request, body: bytes) -> Response:

        payload = json.loads(body)
        labels = payload["labels"]
        if len(labels) > MAX_LABELS:
            return JSONResponse(
                {"error": f"{len(labels)} labels in one request; the limit is {MAX_LABELS}"}, 413
            )
        counts = {"accepted": len(labels), "joined": 0, "pending": 0, "replaced": 0}
        for record in labels:
            pid = record["prediction_id"]
            counts["joined" if pid in self.predictions else "pending"] += 1
            counts["replaced"] += pid in self.labels
            self.labels[pid] = record["label"]
        return JSONResponse(counts)

    def _start(self, request: Request, body: bytes) -> Response:

        upload_id = f"u{len(self.uploads)}"
        self.uploads[upload_id] = {}
        self.starts.append(json.loads(body) if body else {})
        return JSONResponse({"upload_id": upload_id}, 201)

    def _part(self, request: Request, body: bytes) -> Response:
        if request.headers.get("content-type") != CONTENT_TYPE:
            return JSONResponse({"error": f"a part must be sent as {CONTENT_TYPE}"}, 415)
        try:
            frame = decode_frame(body)
        except FrameError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        upload_id = request.path_params["upload_id"]
        if upload_id not in self.uploads:
            return JSONResponse({"error": f"no upload {upload_id}"}, 404)
        self.uploads[upload_id][int(request.path_params["n"])] = body
        self.parts[int(request.path_params["n"])] = frame
        return JSONResponse({"rows": frame.rows})

    def _commit(self, request: Request, body: bytes) -> Response:
        params = request.path_params
        parts = self.uploads.pop(params["upload_id"], None)
        if parts is None:
            return JSONResponse({"error": f"no upload {params['upload_id']}"}, 404)
        ordered = [parts[n] for n in sorted(parts)]
        self.committed[(params["model"], params["version"])] = ordered
        frames = [decode_frame(p) for p in ordered]
        features = list(frames[0].features("feature")) if frames else []
        return JSONResponse(
            {
                "model": params["model"],
                "version": params["version"],
                "rows": sum(f.rows for f in frames),
                "features": features,
            }
        )

    def _windows(self, request: Request, body: bytes) -> Response:
        model = request.path_params["model"]
        if model != "credit":
            return JSONResponse({"error": f"no model named {model!r}"}, 404)
        return JSONResponse({"windows": self.windows})

    def _alerts(self, request: Request, body: bytes) -> Response:
        return JSONResponse({"alerts": self.alerts})

    def _models(self, request: Request, body: bytes) -> Response:
        versions = sorted({str(w["version"]) for w in self.windows} | {"3"})
        summaries = [{"version": v, "windows": 1, "rows": 1, "labelled": 0} for v in versions]
        return JSONResponse({"models": [{"model": "credit", "versions": summaries}]})

    def app(self) -> Starlette:
        def route(path: str, name: str, method: str) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._handle(name, request)

            return Route(path, endpoint, methods=[method])

        return Starlette(
            routes=[
                route("/v1/labels", "labels", "POST"),
                route(REFERENCE, "start", "POST"),
                route(REFERENCE + "/{upload_id}/parts/{n:int}", "part", "PUT"),
                route(REFERENCE + "/{upload_id}/commit", "commit", "POST"),
                route("/v1/models/{model}/windows", "windows", "GET"),
                route("/v1/models/{model}/alerts", "alerts", "GET"),
                route("/v1/models", "models", "GET"),
            ]
        )


@pytest.fixture(scope="session")
def _server() -> Iterator[FakeCollector]:
    fake = FakeCollector()
    with serve_asgi(fake.app()) as served:
        fake.url = served.url
        yield fake


@pytest.fixture
def collector(_server: FakeCollector) -> FakeCollector:
    _server.reset()
    return _server


@pytest.fixture
def closed_port_url() -> str:
    """The URL of a port nothing listens on: connections are refused at once."""
    return closed_port()


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Like a batch job that never called inferwatch.init, whatever the shell or an earlier
    # test configured.
    monkeypatch.delenv("INFERWATCH_ENDPOINT", raising=False)
    monkeypatch.delenv("INFERWATCH_API_KEY", raising=False)
    before = current_settings()
    set_current_settings(None)
    yield
    set_current_settings(before)
