"""Fixtures: a real collector (uvicorn on a free port) fed through the OTLP exporter, and
headless Chromium. Adapted from tests/collector/conftest.py (copied: test folders do not import
each other)."""

from __future__ import annotations

import dataclasses
import shutil
import threading
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
from inferwatch.collector.config import load_config
from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import Frame, categorical, encode_frame, numeric
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode
from testkit import FakeClock, free_port, wait_for

# A multiple of 60 s: 2023-11-14T22:14:00Z.
T0 = 1_700_000_040.0
MODEL = "credit-risk"
# The last of three windows has a quarter of its requests failing: its alert stays open.
ERROR_WINDOW = 2
REQUESTS_PER_WINDOW = 12
ROWS_PER_REQUEST = 20
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class RunningCollector:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    clock: FakeClock

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_collector(db: Path, **overrides: Any) -> RunningCollector:
    clock = FakeClock(T0)
    config = load_config(
        None,
        db=f"sqlite:///{db}",
        tick_seconds=0.05,
        checkpoint_interval_seconds=0.2,
        **overrides,
    )
    # Performance never has enough labels here, so a window mixes failed, undecided and passed
    # results, and the page's ordering of them shows. The outlier rate test is off: at its 5%
    # level it fails one of these small clean windows by chance, and the page test wants the
    # failing window to be the only one with findings.
    settings = {
        "window": 60,
        "allowed_lateness": 0,
        "detectors": {"performance": {"min_labels": 10**6}, "outliers": {"enabled": False}},
    }
    model = config.defaults.merged(settings, MODEL)
    config = dataclasses.replace(config, models={MODEL: model})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, clock=clock),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn to start")
    return RunningCollector(f"http://127.0.0.1:{port}", server, thread, clock)


class SpanSender:
    """Sends inferwatch spans with chosen times through the real OTLP exporter."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": "test"}))
        exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=headers, timeout=30)
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
        self.tracer = self.provider.get_tracer(contract.INSTRUMENTATION_SCOPE)

    def send(
        self,
        model: str,
        version: str,
        start: float,
        inputs: Frame,
        ids: Sequence[str],
        outputs: Frame,
        *,
        error: str | None = None,
    ) -> None:
        attributes: dict[str, Any] = {
            contract.ATTR_SCHEMA_VERSION: contract.SCHEMA_VERSION,
            contract.ATTR_MODEL_NAME: model,
            contract.ATTR_MODEL_VERSION: version,
            contract.ATTR_TASK: "classification",
            contract.ATTR_ROWS: inputs.rows,
            contract.ATTR_PREDICTION_IDS: list(ids),
            contract.ATTR_INPUT_FRAME: encode_frame(inputs),
            contract.ATTR_OUTPUT_FRAME: encode_frame(outputs),
        }
        start_ns = int(start * 1e9)
        span = self.tracer.start_span(
            contract.SPAN_NAME, start_time=start_ns, attributes=attributes
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=start_ns + 5_000_000)

    def close(self) -> None:
        assert self.provider.force_flush(60_000)
        self.provider.shutdown()


def frames(rng: np.random.Generator, rows: int, shift: float = 0.0) -> tuple[Frame, Frame]:
    """Inputs (two numeric features and a categorical one) and a predicted class."""
    x = rng.normal(loc=shift, size=(rows, 2))
    color = rng.choice(["red", "green", "blue"], size=rows)
    inputs = Frame(rows, (numeric("x", x, names=["x0", "x1"]), categorical("color", color)))
    predicted = ["yes" if v > 0 else "no" for v in x[:, 0]]
    outputs = Frame(rows, (categorical("prediction", predicted, role="output"),))
    return inputs, outputs


def upload_reference(client: httpx.Client, rng: np.random.Generator, rows: int = 2000) -> None:
    base = f"/v1/models/{MODEL}/versions/1/reference"
    upload = client.post(f"{base}/uploads", json={"task": "classification"}).json()["upload_id"]
    inputs, outputs = frames(rng, rows)
    frame = Frame(rows, (*inputs.columns, *outputs.columns))
    part = client.put(
        f"{base}/uploads/{upload}/parts/0",
        content=encode_frame(frame),
        headers={"content-type": FRAME_TYPE},
    )
    assert part.status_code == 200, part.text
    assert client.post(f"{base}/uploads/{upload}/commit").status_code == 200


def fill(
    collector: RunningCollector, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Three windows of traffic (the last with failures), labels, a reference; all evaluated.

    Returns the windows as the API lists them.
    """
    rng = np.random.default_rng(11)
    sender = SpanSender(collector.url, headers)
    with collector.client(headers=headers) as client:
        upload_reference(client, rng)
        for window in range(3):
            for i in range(REQUESTS_PER_WINDOW):
                # No shift: the only finding is the failing window's error rate.
                inputs, outputs = frames(rng, ROWS_PER_REQUEST)
                ids = [f"w{window}-{i}-{j}" for j in range(ROWS_PER_REQUEST)]
                failed = window == ERROR_WINDOW and i < 3
                start = T0 + window * 60 + i * 4
                sender.send(
                    MODEL, "1", start, inputs, ids, outputs, error="ValueError" if failed else None
                )
                labels = [{"prediction_id": p, "label": "yes"} for p in ids[:15]]
                response = client.post("/v1/labels", json={"model": MODEL, "labels": labels})
                assert response.status_code == 200, response.text
        sender.close()
        expected_rows = 3 * REQUESTS_PER_WINDOW * ROWS_PER_REQUEST

        def listed() -> list[dict[str, Any]]:
            response = client.get(f"/v1/models/{MODEL}/windows")
            assert response.status_code == 200, response.text
            found: list[dict[str, Any]] = response.json()["windows"]
            return found

        wait_for(lambda: sum(w["rows"] for w in listed()) == expected_rows, what="all rows stored")
        collector.clock.advance_to(T0 + 3 * 60 + 1)
        evaluated = wait_for(
            lambda: (found := listed()) and all(w["evaluated_at"] for w in found) and found,
            what="the three windows evaluated",
        )
        wait_for(
            lambda: client.get(f"/v1/models/{MODEL}/alerts", params={"state": "open"}).json()[
                "alerts"
            ],
            what="the error-rate alert",
        )
        return evaluated


@pytest.fixture(scope="module")
def filled(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningCollector, list[Any]]]:
    """One collector with data, shared by a module's read-only tests."""
    collector = start_collector(tmp_path_factory.mktemp("filled") / "collector.db")
    try:
        yield collector, fill(collector)
    finally:
        collector.stop()


@pytest.fixture
def make_collector(tmp_path: Path) -> Iterator[Callable[..., RunningCollector]]:
    started: list[RunningCollector] = []

    def make(**overrides: Any) -> RunningCollector:
        collector = start_collector(tmp_path / f"collector{len(started)}.db", **overrides)
        started.append(collector)
        return collector

    yield make
    for collector in started:
        collector.stop()


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"headless Chromium not found at {CHROMIUM}: install it with "
            "`apt-get install -y chromium` to run the browser tests"
        )
    return CHROMIUM
