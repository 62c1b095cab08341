"""End to end with the real collector: the ids a client gets in X-Prediction-Ids join its labels."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import inferwatch
import pytest
import uvicorn
from inferwatch.collector.app import create_app
from inferwatch.collector.config import load_config
from inferwatch.middleware import InferwatchMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from testkit import free_port


async def classify(request: Request) -> Response:
    rows = (await request.json())["input_data"]
    return JSONResponse([int(sum(row) > 10) for row in rows])


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[str, Starlette]]:
    config = load_config(None, db=f"sqlite:///{tmp_path / 'collector.db'}")
    app = create_app(config)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the collector did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", app
    inferwatch.shutdown()
    server.should_exit = True
    thread.join(30)


def test_labels_for_the_returned_ids_join_the_recorded_predictions(
    collector: tuple[str, Starlette],
) -> None:
    url, collector_app = collector
    inferwatch.shutdown()
    service = Starlette(routes=[Route("/classify", classify, methods=["POST"])])
    service.add_middleware(
        InferwatchMiddleware, model="e2e", version="1", task="classification", endpoint=url
    )
    batches = [[[1.0, 2.0], [9.0, 8.0]], [[0.5, 0.5]], [[7.0, 7.0], [1.0, 1.0], [2.0, 9.5]]]
    labels: dict[str, int] = {}
    with TestClient(service) as client:
        for rows in batches:
            response = client.post("/classify", json={"input_data": rows})
            ids = response.headers["x-prediction-ids"].split(",")
            assert len(ids) == len(rows)
            labels.update(zip(ids, response.json(), strict=True))

    assert inferwatch.flush(10), "the spans were not exported to the collector"
    stats = collector_app.state.collector.receiver_stats
    assert stats.spans_accepted == len(batches)
    report = inferwatch.log_labels("e2e", labels, endpoint=url)
    assert report.accepted == 6
    assert report.joined == 6, report
