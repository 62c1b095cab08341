"""A real receiver on uvicorn (127.0.0.1, free port) with a sink that records what it is given,
and helpers that build OTLP requests with the real OpenTelemetry SDK."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue
from starlette.applications import Starlette
from starlette.routing import Route

from inferwatch import contract
from inferwatch.collector.receive import ReceiverStats, traces_endpoint
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.frame import Frame, categorical, encode_frame, numeric
from inferwatch_testkit import serve_asgi

# Small, so that the 413 paths are cheap to reach.
MAX_BODY_BYTES = 1 << 20


@dataclass
class RecordingSink:
    """Records every submitted batch; raises ``fail_with`` (then clears it) when set."""

    batches: list[PredictionBatch] = field(default_factory=list)
    fail_with: Exception | None = None
    fail_times: int = 0

    async def submit(self, batches: Sequence[PredictionBatch]) -> list[str]:
        if self.fail_with is not None and self.fail_times > 0:
            self.fail_times -= 1
            raise self.fail_with
        self.batches.extend(batches)
        return []


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
    with serve_asgi(app) as served:
        yield Receiver(served.url + contract.TRACES_PATH, sink, stats)


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
