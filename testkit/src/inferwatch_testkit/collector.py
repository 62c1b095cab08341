"""A real collector for tests: the app on uvicorn on a free 127.0.0.1 port, and a span sender
that goes through the OpenTelemetry SDK and its OTLP/HTTP exporter as an application's would."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from inferwatch import contract
from inferwatch.collector import CollectorConfig, create_app
from inferwatch.frame import Frame, encode_frame
from inferwatch_testkit import RunningServer, serve_asgi

# A multiple of 60 s: 2023-11-14T22:14:00Z, a start for tests on a FakeClock.
T0 = 1_700_000_040.0


@dataclass
class RunningCollector:
    url: str
    app: Any
    served: RunningServer
    # The clock the collector closes windows by (a FakeClock in most tests).
    clock: Callable[[], float] = time.time

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> None:
        self.served.stop()


def start_collector(
    config: CollectorConfig, clock: Callable[[], float] = time.time
) -> RunningCollector:
    """A collector app (with its lifespan: ingest worker and window task) on a free port."""
    app = create_app(config, clock=clock)
    served = serve_asgi(app, lifespan="on")
    return RunningCollector(served.url, app, served, clock)


class SpanSender:
    """Sends inferwatch spans with chosen times and frames through the real OTLP exporter."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": "test"}))
        self.exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=headers, timeout=30)
        self.provider.add_span_processor(
            BatchSpanProcessor(self.exporter, max_queue_size=100_000, schedule_delay_millis=50)
        )
        self.tracer = self.provider.get_tracer(contract.INSTRUMENTATION_SCOPE)

    def send(
        self,
        model: str,
        version: str,
        start_ns: int,
        inputs: Frame,
        ids: Sequence[str],
        outputs: Frame | None = None,
        *,
        duration_ms: float = 5.0,
        error: str | None = None,
        task: str = "classification",
    ) -> None:
        attributes: dict[str, Any] = {
            contract.ATTR_SCHEMA_VERSION: contract.SCHEMA_VERSION,
            contract.ATTR_MODEL_NAME: model,
            contract.ATTR_MODEL_VERSION: version,
            contract.ATTR_TASK: task,
            contract.ATTR_ROWS: inputs.rows,
            contract.ATTR_PREDICTION_IDS: list(ids),
            contract.ATTR_INPUT_FRAME: encode_frame(inputs),
        }
        if outputs is not None:
            attributes[contract.ATTR_OUTPUT_FRAME] = encode_frame(outputs)
        span = self.tracer.start_span(
            contract.SPAN_NAME, start_time=start_ns, attributes=attributes
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=start_ns + int(duration_ms * 1e6))

    def flush(self) -> None:
        assert self.provider.force_flush(60_000)

    def close(self) -> None:
        self.flush()
        self.provider.shutdown()
