"""A collector process started as users start it, with ``--db postgresql://...``: it ingests OTLP
spans over HTTP, closes their windows, joins labels posted before and after their predictions,
and serves the API from PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.metrics import accuracy_score

from inferwatch_testkit import wait_for
from inferwatch_testkit.collector import (
    T0,
    SpanSender,
    mixed_frames,
    start_collector_process,
    total_rows,
    windows,
)
from inferwatch_testkit.postgres import TemporaryDatabase

from .helpers import uuid7


def post_labels(client: httpx.Client, labels: dict[str, str]) -> dict[str, int]:
    body = {"model": "pg", "labels": [{"prediction_id": k, "label": v} for k, v in labels.items()]}
    response = client.post("/v1/labels", json=body)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


def test_a_collector_process_on_postgresql(postgres: TemporaryDatabase, tmp_path: Path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(
        "[collector]\ntick_seconds = 0.2\ncheckpoint_interval_seconds = 0.5\n"
        '[models.pg]\nwindow = 60\nallowed_lateness = 1\nreference = { policy = "none" }\n'
    )
    rng = np.random.default_rng(5)
    predicted: dict[str, str] = {}
    # Each window's ids: spans alternate between the two.
    ids_by_window: list[list[str]] = [[], []]
    spans = []
    for i in range(8):
        inputs, outputs = mixed_frames(rng, 40)
        start = T0 + 60 * (i % 2) + i  # two windows, long past: they close at once
        # SDK-made ids (UUIDv7 of one millisecond) and an application's own.
        ids = [uuid7(int(start * 1000), j) if i % 2 else f"order-{i}-{j}" for j in range(40)]
        predicted.update(zip(ids, outputs.columns[0].values(), strict=True))
        ids_by_window[i % 2].extend(ids)
        spans.append((int(start * 1e9), inputs, ids, outputs))
    truth = {pid: str(rng.choice(["no", "yes"])) for pid in predicted}
    early, late = dict(list(truth.items())[:30]), dict(list(truth.items())[30:200])

    log = tmp_path / "collector.log"
    process = start_collector_process(postgres.new_schema(), config, log, ready_timeout=120)
    sender = SpanSender(process.url)
    try:
        with httpx.Client(base_url=process.url, timeout=30) as client:
            assert post_labels(client, early)["pending"] == 30
            for start_ns, inputs, ids, outputs in spans:
                sender.send("pg", "1", start_ns, inputs, ids, outputs)
            sender.flush()
            assert total_rows(client, "pg") == 320
            assert post_labels(client, late) == {
                "accepted": 170,
                "joined": 170,
                "pending": 0,
                "replaced": 0,
                "warnings": [],
            }

            def evaluated() -> list[dict[str, Any]] | None:
                found = windows(client, "pg")
                details = [client.get(f"/v1/models/pg/windows/{w['id']}").json() for w in found]
                done = all(
                    d["closed"] and d["summary"]["performance"]["labelled"] == d["labelled"]
                    for d in details
                )
                return details if done and sum(d["labelled"] for d in details) == 200 else None

            details = wait_for(evaluated, timeout=120, what="both windows closed with labels")
            assert [d["summary"]["rows"] for d in details] == [160, 160]
            for detail, ids in zip(details, ids_by_window, strict=True):
                labelled = [pid for pid in ids if pid in early or pid in late]
                assert detail["labelled"] == len(labelled)
                expected = accuracy_score(
                    [truth[p] for p in labelled], [predicted[p] for p in labelled]
                )
                assert detail["summary"]["performance"]["accuracy"] == expected
            models = client.get("/v1/models").json()["models"]
            assert [(m["model"], m["versions"][0]["rows"]) for m in models] == [("pg", 320)]
            assert client.get("/v1/models/pg/metrics").json()["labels"]["accepted"] == 200
            assert client.get("/v1/models/pg/alerts").status_code == 200
    finally:
        sender.close()
        process.kill()
    assert "Traceback" not in log.read_text()
