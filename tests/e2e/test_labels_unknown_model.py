"""Labels for a model the collector does not know: the collector accepts them (they may precede
the model's first prediction) but says so in its answer and counts them; ``log_labels`` returns
the warning and logs it once. A real collector on 127.0.0.1, spans over OTLP/HTTP."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np
import pytest

import inferwatch
from inferwatch.collector import load_config
from inferwatch_testkit import wait_for
from inferwatch_testkit.collector import (
    RunningCollector,
    SpanSender,
    mixed_frames,
    start_collector,
    total_rows,
)

KNOWN = "cancer"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    db = tmp_path_factory.mktemp("labels") / "collector.db"
    config = load_config(None, db=f"sqlite:///{db}", models={"configured": {"window": 60}})
    running = start_collector(config)
    sender = SpanSender(running.url)
    inputs, outputs = mixed_frames(np.random.default_rng(3), 4)
    sender.send(KNOWN, "1", time.time_ns(), inputs, [f"k{i}" for i in range(4)], outputs)
    sender.close()
    with running.client() as client:
        wait_for(lambda: total_rows(client, KNOWN) == 4, what="the known model's rows")
    try:
        yield running
    finally:
        running.stop()


def unknown_counter(running: RunningCollector) -> float:
    with running.client() as client:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("inferwatch_labels_unknown_model_total "):
                return float(line.split()[1])
    raise AssertionError("no inferwatch_labels_unknown_model_total in /metrics")


def test_labels_for_an_unknown_model_come_back_with_a_warning(
    collector: RunningCollector, caplog: pytest.LogCaptureFixture
) -> None:
    before = unknown_counter(collector)
    caplog.set_level(logging.WARNING, logger="inferwatch")
    labels = {f"u{i}": i % 2 for i in range(3)}
    # Two batches: the warning is kept, and logged, once.
    report = inferwatch.log_labels("cancr", labels, endpoint=collector.url, batch_size=2)
    assert (report.accepted, report.pending, report.requests) == (3, 3, 2)
    (warning,) = report.warnings
    assert warning.startswith("model 'cancr' is unknown: it has no predictions and no settings")
    assert "did you mean 'cancer'?" in warning
    assert "wait as pending" in warning
    logged = [r.getMessage() for r in caplog.records if r.name == "inferwatch"]
    assert logged == [f"inferwatch: the collector warned about these labels: {warning}"]
    assert unknown_counter(collector) == before + 3

    # Its pending labels do not make the model known.
    again = inferwatch.log_labels("cancr", {"u9": 1}, endpoint=collector.url)
    assert len(again.warnings) == 1
    assert unknown_counter(collector) == before + 4
    with collector.client() as client:
        body = {"model": "zzzz", "labels": [{"prediction_id": "z", "label": 1}]}
        answer = client.post("/v1/labels", json=body).json()
    assert answer["warnings"] == [
        "model 'zzzz' is unknown: it has no predictions and no settings here. Its labels wait "
        "as pending for predictions of that name, for 30 days (prediction_retention_seconds)."
    ]


@pytest.mark.parametrize("model", [KNOWN, "configured"])
def test_labels_for_a_model_with_windows_or_settings_have_no_warning(
    collector: RunningCollector, caplog: pytest.LogCaptureFixture, model: str
) -> None:
    before = unknown_counter(collector)
    caplog.set_level(logging.WARNING, logger="inferwatch")
    report = inferwatch.log_labels(model, {"k0": 1, "k1": 0}, endpoint=collector.url)
    assert report.accepted == 2 and report.warnings == ()
    assert [r for r in caplog.records if r.name == "inferwatch"] == []
    assert unknown_counter(collector) == before
    with collector.client() as client:
        body = {"model": model, "labels": [{"prediction_id": "k2", "label": 1}]}
        assert client.post("/v1/labels", json=body).json()["warnings"] == []


async def test_alog_labels_returns_the_warning_too(collector: RunningCollector) -> None:
    report = await inferwatch.alog_labels("cancr", {"a1": 1}, endpoint=collector.url)
    assert len(report.warnings) == 1 and "is unknown" in report.warnings[0]
