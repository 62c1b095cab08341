"""Fixtures: a real collector (uvicorn on a free port, or a subprocess), and a span sender
built on the OpenTelemetry SDK and its OTLP/HTTP exporter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from inferwatch import contract
from inferwatch.collector.app import create_app
from inferwatch.collector.config import CollectorConfig, load_config
from inferwatch.frame import Frame, categorical, encode_frame, numeric
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode
from starlette.applications import Starlette
from testkit import free_port, wait_for


@dataclass
class RunningCollector:
    url: str
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_collector(
    config: CollectorConfig, clock: Callable[[], float] = time.time
) -> RunningCollector:
    port = free_port()
    app = create_app(config, clock=clock)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: server.started, what="uvicorn to start")
    return RunningCollector(url, app, server, thread)


@pytest.fixture
def make_collector(tmp_path: Path) -> Iterator[Callable[..., RunningCollector]]:
    started: list[RunningCollector] = []

    def make(clock: Callable[[], float] = time.time, **overrides: Any) -> RunningCollector:
        settings: dict[str, Any] = {
            "db": f"sqlite:///{tmp_path / 'collector.db'}",
            "tick_seconds": 0.05,
            "checkpoint_interval_seconds": 0.2,
        }
        settings.update(overrides)
        models = settings.pop("models", None)
        config = load_config(None, **settings)
        if models:
            import dataclasses

            config = dataclasses.replace(
                config,
                models={name: config.defaults.merged(m, name) for name, m in models.items()},
            )
        running = start_collector(config, clock)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


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
        self.provider.shutdown()


@pytest.fixture
def make_sender() -> Iterator[Callable[..., SpanSender]]:
    senders: list[SpanSender] = []

    def make(url: str, headers: dict[str, str] | None = None) -> SpanSender:
        sender = SpanSender(url, headers)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.close()


def make_frames(
    rng: np.random.Generator, rows: int, classes: Sequence[str] = ("no", "yes")
) -> tuple[Frame, Frame]:
    """Inputs (two numeric features and a categorical one) and a predicted class."""
    x = rng.normal(size=(rows, 2))
    color = rng.choice(["red", "green", "blue"], size=rows)
    inputs = Frame(rows, (numeric("x", x, names=["x0", "x1"]), categorical("color", color)))
    predicted = [classes[int(v > 0)] for v in x[:, 0]]
    outputs = Frame(rows, (categorical("prediction", predicted),))
    return inputs, outputs


@dataclass
class CollectorProcess:
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)


def start_collector_process(db: str, config_path: Path | None, log: Path) -> CollectorProcess:
    port = free_port()
    args = [sys.executable, "-m", "inferwatch.collector.cli", "collector", "--db", db]
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

    wait_for(ready, timeout=30, what="the collector process")
    return CollectorProcess(url, process)
