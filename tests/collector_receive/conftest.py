"""A real receiver on uvicorn (127.0.0.1, free port) with a sink that records what it is given,
helpers that build OTLP requests with the real OpenTelemetry SDK, and a stand-in for the
collector's query and reference API for the command-line tests."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import uvicorn
from inferwatch import contract
from inferwatch.collector.batch import PredictionBatch
from inferwatch.collector.receive import ReceiverStats, traces_endpoint
from inferwatch.frame import Frame, categorical, decode_frame, encode_frame, numeric
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Small, so that the 413 paths are cheap to reach.
MAX_BODY_BYTES = 1 << 20


@dataclass
class RecordingSink:
    """Records every submitted batch; raises ``fail_with`` (then clears it) when set."""

    batches: list[PredictionBatch] = field(default_factory=list)
    fail_with: Exception | None = None
    fail_times: int = 0

    async def submit(self, batches: Sequence[PredictionBatch]) -> None:
        if self.fail_with is not None and self.fail_times > 0:
            self.fail_times -= 1
            raise self.fail_with
        self.batches.extend(batches)


@dataclass
class Receiver:
    url: str
    sink: RecordingSink
    stats: ReceiverStats

    def reset(self) -> None:
        self.sink.batches.clear()
        self.sink.fail_with = None
        self.sink.fail_times = 0
        for f in dataclasses.fields(self.stats):
            setattr(self.stats, f.name, 0)


@pytest.fixture(scope="module")
def _running_receiver() -> Iterator[Receiver]:
    sink = RecordingSink()
    stats = ReceiverStats()
    endpoint = traces_endpoint(sink, max_body_bytes=MAX_BODY_BYTES, stats=stats)
    app = Starlette(routes=[Route(contract.TRACES_PATH, endpoint, methods=["POST"])])
    url, stop = serve(app)
    yield Receiver(url + contract.TRACES_PATH, sink, stats)
    stop()


@pytest.fixture
def receiver(_running_receiver: Receiver) -> Receiver:
    _running_receiver.reset()
    return _running_receiver


class SpanFactory:
    """Builds contract attributes and OTLP requests with the real SDK (a fixture: test modules
    cannot import this file)."""

    @staticmethod
    def frame_of(features: np.ndarray, names: Sequence[str]) -> Frame:
        return Frame(features.shape[0], (numeric("x", features, names),))

    @staticmethod
    def output_frame(predictions: Sequence[str]) -> Frame:
        return Frame(len(predictions), (categorical("prediction", predictions, role="output"),))

    @staticmethod
    def features(rows: int, seed: int) -> np.ndarray:
        """The feature values ``inferwatch_attributes(rows=rows, seed=seed)`` carries."""
        return np.random.default_rng(seed).normal(size=(rows, 3))

    @staticmethod
    def inferwatch_attributes(
        *,
        model: str = "credit",
        version: str = "3",
        rows: int = 4,
        seed: int = 0,
        **overrides: AttributeValue | None,
    ) -> dict[str, AttributeValue]:
        """The attributes the SDK writes for one call of ``rows`` rows (3 numeric features)."""
        features = SpanFactory.features(rows, seed)
        attributes: dict[str, Any] = {
            contract.ATTR_SCHEMA_VERSION: contract.SCHEMA_VERSION,
            contract.ATTR_MODEL_NAME: model,
            contract.ATTR_MODEL_VERSION: version,
            contract.ATTR_TASK: "classification",
            contract.ATTR_ROWS: rows,
            contract.ATTR_PREDICTION_IDS: [f"{model}-{seed}-{i}" for i in range(rows)],
            contract.ATTR_INPUT_FRAME: encode_frame(
                SpanFactory.frame_of(features, ["age", "income", "debt"])
            ),
            contract.ATTR_OUTPUT_FRAME: encode_frame(
                SpanFactory.output_frame(["yes" if v > 0 else "no" for v in features[:, 0]])
            ),
        }
        attributes.update(overrides)
        return {k: v for k, v in attributes.items() if v is not None}

    @staticmethod
    def sdk_spans(
        spans: Sequence[Mapping[str, AttributeValue]], *, error: Exception | None = None
    ) -> list[ReadableSpan]:
        """Finished spans recorded by the real OpenTelemetry SDK, one per attribute mapping."""
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer(contract.INSTRUMENTATION_SCOPE)
        for attributes in spans:
            with tracer.start_as_current_span(contract.SPAN_NAME, record_exception=False) as span:
                span.set_attributes(dict(attributes))
                if error is not None:
                    span.record_exception(error)
                    span.set_status(StatusCode.ERROR, str(error))
        provider.shutdown()
        return list(exporter.get_finished_spans())

    @staticmethod
    def export_request(
        spans: Sequence[Mapping[str, AttributeValue]], *, error: Exception | None = None
    ) -> ExportTraceServiceRequest:
        return encode_spans(SpanFactory.sdk_spans(spans, error=error))


@pytest.fixture
def make() -> type[SpanFactory]:
    return SpanFactory


@dataclass
class FakeCollector:
    """A stand-in for the collector's query and reference-upload API (docs/http-api.md).

    ``windows`` and ``alerts`` are served as documented; reference parts are decoded with the
    real frame codec and kept in ``parts``; every request is recorded in ``requests``.
    """

    url: str = ""
    windows: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    parts: dict[int, Frame] = field(default_factory=dict)
    starts: list[dict[str, Any]] = field(default_factory=list)
    committed: bool = False
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


def _fake_collector_app(fake: FakeCollector) -> Starlette:
    def record(request: Request) -> None:
        fake.requests.append((request.method, request.url.path, dict(request.query_params)))

    async def windows(request: Request) -> Response:
        record(request)
        if request.path_params["model"] != "credit":
            return JSONResponse({"error": "no model named 'nope'"}, status_code=404)
        return JSONResponse({"windows": fake.windows})

    async def alerts(request: Request) -> Response:
        record(request)
        return JSONResponse({"alerts": fake.alerts})

    async def start(request: Request) -> Response:
        record(request)
        body = await request.body()
        fake.starts.append(json.loads(body) if body else {})
        return JSONResponse({"upload_id": "u1"}, status_code=201)

    async def part(request: Request) -> Response:
        record(request)
        frame = decode_frame(await request.body())
        fake.parts[int(request.path_params["n"])] = frame
        return JSONResponse({"rows": frame.rows})

    async def commit(request: Request) -> Response:
        record(request)
        fake.committed = True
        frames = [fake.parts[n] for n in sorted(fake.parts)]
        names = list(frames[0].features("feature")) if frames else []
        return JSONResponse(
            {
                "model": request.path_params["model"],
                "version": request.path_params["version"],
                "rows": sum(f.rows for f in frames),
                "features": names,
            }
        )

    uploads = "/v1/models/{model}/versions/{version}/reference/uploads"
    return Starlette(
        routes=[
            Route("/v1/models/{model}/windows", windows),
            Route("/v1/models/{model}/alerts", alerts),
            Route(uploads, start, methods=["POST"]),
            Route(uploads + "/{upload}/parts/{n}", part, methods=["PUT"]),
            Route(uploads + "/{upload}/commit", commit, methods=["POST"]),
        ]
    )


def serve(app: Starlette) -> tuple[str, Callable[[], None]]:
    """Run ``app`` on uvicorn on a free 127.0.0.1 port; returns its URL and a stop function."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture
def fake_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCollector]:
    monkeypatch.delenv("INFERWATCH_ENDPOINT", raising=False)
    monkeypatch.delenv("INFERWATCH_API_KEY", raising=False)
    fake = FakeCollector()
    fake.url, stop = serve(_fake_collector_app(fake))
    yield fake
    stop()
