"""A span of huge but finite values, sent to a real collector: every window still checkpoints,
closes and is evaluated, and the database opens again in a new collector."""

from __future__ import annotations

import numpy as np

from inferwatch.frame import Frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, mixed_frames, windows

MODELS = {name: {"window": 60, "allowed_lateness": 0} for name in ("huge", "sane")}


def test_huge_values_do_not_stop_windows_or_poison_the_database(
    make_collector, make_sender
) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock, models=MODELS)
    sender = make_sender(collector.url)
    huge = np.array([[1e308, -1.7e308], [1e308, 1.7e308]])
    sender.send(
        "huge", "1", int(T0 * 1e9), Frame(2, (numeric("x", huge, names=["a", "b"]),)), ["h0", "h1"]
    )
    inputs, outputs = mixed_frames(np.random.default_rng(3), 40)
    sender.send("sane", "1", int(T0 * 1e9), inputs, [f"s{i}" for i in range(40)], outputs)
    sender.flush()
    with collector.client() as client:
        for model, rows in (("huge", 2), ("sane", 40)):
            wait_for(lambda m=model, r=rows: sum(w["rows"] for w in windows(client, m)) == r)
        clock.advance_to(T0 + 300)
        for model in MODELS:
            wait_for(
                lambda m=model: all(w["evaluated_at"] for w in windows(client, m)),
                what=f"the windows of {model} evaluated",
            )
        (window,) = windows(client, "huge")
        detail = client.get(f"/v1/models/huge/windows/{window['id']}")
        assert detail.status_code == 200, detail.text
        columns = {c["name"]: c for c in detail.json()["summary"]["columns"]["columns"]}
        assert columns["a"]["mean"] == 1e308 and columns["a"]["m2"] == 0.0
        assert columns["b"]["mean"] == 0.0 and columns["b"]["min"] == -1.7e308
        metrics = client.get("/metrics").text
    assert "inferwatch_journal_quarantined_batches 0.0" in metrics
    collector.stop()

    # A new collector on the same file: it replays and serves (main's could not start).
    restarted = make_collector(clock, models=MODELS)
    with restarted.client() as client:
        assert sum(w["rows"] for w in windows(client, "huge")) == 2
        assert sum(w["rows"] for w in windows(client, "sane")) == 40
