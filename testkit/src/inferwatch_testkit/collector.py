"""A real collector for tests: the app on uvicorn on a free 127.0.0.1 port, and a span sender
that goes through the OpenTelemetry SDK and its OTLP/HTTP exporter as an application's would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from inferwatch import contract
from inferwatch.collector import CollectorConfig, create_app
from inferwatch.frame import Frame, categorical, encode_frame, numeric
from inferwatch_testkit import RunningServer, free_port, serve_asgi, wait_for

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


@dataclass
class CollectorProcess:
    """A collector run as users run it (``python -m inferwatch collector``), to be killed."""

    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)


def start_collector_process(
    db: str, config_path: Path | None, log: Path, *, ready_timeout: float = 30.0
) -> CollectorProcess:
    """A collector process on a free port, once it answers /healthz; its output goes to ``log``."""
    port = free_port()
    args = [sys.executable, "-m", "inferwatch", "collector", "--db", db]
    args += ["--port", str(port), "--log-level", "warning"]
    if config_path is not None:
        args += ["--config", str(config_path)]
    process = subprocess.Popen(
        args, stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ}
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"collector exited with {process.returncode}: {log.read_text()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=ready_timeout, what="the collector process")
    return CollectorProcess(url, process)


def mixed_frames(
    rng: np.random.Generator, rows: int, classes: Sequence[str] = ("no", "yes")
) -> tuple[Frame, Frame]:
    """Inputs (two numeric features and a categorical one) and a predicted class."""
    x = rng.normal(size=(rows, 2))
    color = rng.choice(["red", "green", "blue"], size=rows)
    inputs = Frame(rows, (numeric("x", x, names=["x0", "x1"]), categorical("color", color)))
    predicted = [classes[int(v > 0)] for v in x[:, 0]]
    outputs = Frame(rows, (categorical("prediction", predicted),))
    return inputs, outputs


def windows(client: httpx.Client, model: str, **params: str) -> list[dict[str, Any]]:
    """GET /v1/models/{model}/windows, asserting a 200."""
    response = client.get(f"/v1/models/{model}/windows", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["windows"]
    return found


def total_rows(client: httpx.Client, model: str) -> int:
    return sum(w["rows"] for w in windows(client, model))
