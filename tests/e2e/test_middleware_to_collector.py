"""End to end with the real collector: the ids a client gets in X-Prediction-Ids join its labels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import inferwatch
from inferwatch.collector import load_config
from inferwatch.middleware import InferwatchMiddleware
from inferwatch_testkit.collector import start_collector


async def classify(request: Request) -> Response:
    rows = (await request.json())["input_data"]
    return JSONResponse([int(sum(row) > 10) for row in rows])


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[str, Starlette]]:
    running = start_collector(load_config(None, db=f"sqlite:///{tmp_path / 'collector.db'}"))
    yield running.url, running.app
    inferwatch.shutdown()
    running.stop()


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
