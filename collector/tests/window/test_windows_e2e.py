"""Spans through the real OTLP exporter into a real collector: windows, summaries, closing."""

from __future__ import annotations

from typing import Any

import numpy as np

from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, mixed_frames, windows


def test_window_summaries_match_numpy(make_collector, make_sender) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock, models={"credit": {"window": 60, "allowed_lateness": 10}})
    sender = make_sender(collector.url)
    rng = np.random.default_rng(7)
    sent: dict[int, dict[str, list[Any]]] = {0: {}, 1: {}}
    for i in range(24):
        offset = i * 5.0  # 0 .. 115 s: two windows of 60 s
        inputs, outputs = mixed_frames(rng, 50)
        duration = float(rng.uniform(1, 50))
        error = "ValueError" if i % 6 == 0 else None
        ids = [f"p{i}-{j}" for j in range(50)]
        sender.send(
            "credit",
            "1",
            int((T0 + offset) * 1e9),
            inputs,
            ids,
            outputs,
            duration_ms=duration,
            error=error,
        )
        window = sent[int(offset // 60)]
        window.setdefault("x0", []).extend(inputs.columns[0].values[:, 0].tolist())
        window.setdefault("color", []).extend(inputs.columns[1].values())
        window.setdefault("latency", []).append(duration)
        window.setdefault("errors", []).append(error is not None)
    sender.flush()
    with collector.client() as client:
        wait_for(lambda: sum(w["rows"] for w in windows(client, "credit")) == 1200, what="rows")
        clock.advance_to(T0 + 200)
        found = wait_for(
            lambda: len(w := [w for w in windows(client, "credit") if w["closed"]]) == 2 and w,
            what="both windows closed",
        )
        for index, window in enumerate(found):
            expected = sent[index]
            assert window["start"] == f"2023-11-14T22:{14 + index:02d}:00.000Z"
            assert window["rows"] == len(expected["x0"])
            detail = client.get(f"/v1/models/credit/windows/{window['id']}").json()
            summary = detail["summary"]
            assert summary["requests"] == len(expected["latency"])
            assert summary["errors"] == sum(expected["errors"])
            for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
                truth = np.quantile(expected["latency"], q, method="lower")
                assert abs(summary["latency"][key] - truth) <= 0.011 * truth
            columns = {c["name"]: c for c in summary["columns"]["columns"]}
            x0 = np.array(expected["x0"])
            assert columns["x0"]["count"] == x0.size
            np.testing.assert_allclose(columns["x0"]["mean"], x0.mean(), rtol=1e-12)
            np.testing.assert_allclose(columns["x0"]["m2"] / x0.size, x0.var(), rtol=1e-9)
            assert columns["x0"]["min"] == x0.min() and columns["x0"]["max"] == x0.max()
            colors, counts = np.unique(expected["color"], return_counts=True)
            expected_counts = dict(zip(colors.tolist(), counts.tolist(), strict=True))
            assert columns["color"]["counts"] == expected_counts
            error_rate = next(r for r in detail["results"] if r["detector"] == "error_rate")
            assert error_rate["score"] == sum(expected["errors"]) / len(expected["errors"])
            assert set(error_rate) == {
                "detector",
                "feature",
                "score",
                "p_value",
                "threshold",
                "severity",
                "decision",
                "message",
                "details",
            }
