"""The journal keeps a batch exactly as it came, whatever its ids hold, and a journal that
cannot be replayed never keeps a collector from starting."""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from inferwatch.collector.ingest.journal import decode_batch, encode_batch
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.frame import Frame, categorical, encode_frame, numeric
from inferwatch_testkit import wait_for
from inferwatch_testkit.collector import (
    mixed_frames,
    total_rows,
    windows,
)


def test_batches_round_trip_with_any_ids() -> None:
    rng = np.random.default_rng(2)
    # Non-ASCII, empty, and a lone surrogate (which OTLP JSON's \ud800 escape can carry).
    ids = ("019b76da-a800-7000-8000-0064cdab8924", "é€😀", "", "a\ud800b", 'x,y"z')
    inputs = Frame(5, (numeric("f", rng.normal(size=(5, 3))), categorical("c", list("abaab"))))
    outputs = Frame(5, (numeric("score", rng.random(5), role="output"),))
    batch = PredictionBatch(
        "m", "v1", "regression", bytes(range(16)), bytes(8), 10, 20, "ValueError", ids, inputs,
        outputs, 0.5, ("an issue",),
    )  # fmt: skip
    for encoded_outputs in (None, encode_frame(outputs)):
        again = decode_batch(encode_batch(batch, encoded_outputs))
        assert replace(again, inputs=None, outputs=None) == replace(
            batch, inputs=None, outputs=None
        )
        assert again.inputs is not None and again.outputs is not None
        assert encode_frame(again.inputs) == encode_frame(inputs)
        assert encode_frame(again.outputs) == encode_frame(outputs)
    bare = PredictionBatch("m", "1", None, bytes(16), bytes(8), 0, 0, None, (), None, None)
    assert decode_batch(encode_batch(bare)) == bare


def test_a_journal_that_cannot_be_replayed_is_quarantined_and_the_collector_starts(
    make_collector, make_sender, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "collector.db"
    collector = make_collector(models={"m": {"window": 86400}})
    sender = make_sender(collector.url)
    rng = np.random.default_rng(4)
    now_ns = time.time_ns()
    for i in range(4):
        inputs, outputs = mixed_frames(rng, 10)
        sender.send("m", "1", now_ns + i, inputs, [f"ok{i}-{j}" for j in range(10)], outputs)
    sender.flush()
    with collector.client() as client:
        wait_for(lambda: total_rows(client, "m") == 40, what="40 rows stored")
        health = client.get("/healthz").json()
    collector.stop()
    assert (health["quarantined_batches"], health["oldest_quarantined_at"]) == (0, None)

    # As a crash would leave them: journaled batches after the checkpoint. One that this
    # release decodes but cannot fold (its frames disagree on their rows), one that is not a
    # journaled batch at all, then a good one.
    conn = sqlite3.connect(path)
    [(window_id,)] = conn.execute("SELECT id FROM windows").fetchall()
    inputs, outputs = mixed_frames(rng, 10)
    good = PredictionBatch(
        "m", "1", None, bytes(16), bytes(8), now_ns, now_ns + 1, None,
        tuple(f"late{j}" for j in range(10)), inputs, outputs,
    )  # fmt: skip
    ids = tuple(f"SECRET-ID-{j}" for j in range(3))
    unfoldable = PredictionBatch(
        "m", "1", None, bytes(16), bytes(8), now_ns, now_ns + 1, None, ids,
        Frame(3, (numeric("x", np.full(3, 7.25)),)),
        Frame(2, (categorical("prediction", ["SECRET-CLASS", "b"]),)),
    )  # fmt: skip
    for payload in (encode_batch(unfoldable), b"IWJB not a batch", encode_batch(good)):
        conn.execute(
            "INSERT INTO raw_batches (window_id, payload) VALUES (?, ?)", (window_id, payload)
        )
    conn.commit()
    conn.close()

    oldest = []
    for _ in range(2):  # and again, from the checkpoint the first start made
        before_ms = time.time() * 1000
        with caplog.at_level(logging.INFO):
            restarted = make_collector(models={"m": {"window": 86400}})
        with restarted.client() as client:
            (window,) = windows(client, "m")
            detail = client.get(f"/v1/models/m/windows/{window['id']}").json()
            metrics = client.get("/metrics").text
            health = client.get("/healthz").json()
        restarted.stop()
        # The four spans and the good batch after the bad ones, each counted once.
        assert (detail["summary"]["requests"], detail["summary"]["rows"]) == (5, 50)
        assert "inferwatch_journal_quarantined_batches 2.0" in metrics
        assert health["quarantined_batches"] == 2
        oldest.append(health["oldest_quarantined_at"])
        if len(oldest) == 1:
            quarantined_ms = datetime.fromisoformat(oldest[0]).timestamp() * 1000
            assert before_ms - 1 <= quarantined_ms <= time.time() * 1000 + 1
    # The second start quarantined nothing new: the oldest is still the first start's.
    assert oldest[0] == oldest[1] and oldest[0].endswith("Z")
    conn = sqlite3.connect(path)
    reasons = [r for (r,) in conn.execute("SELECT reason FROM quarantined_batches ORDER BY seq")]
    assert conn.execute("SELECT COUNT(*) FROM raw_batches").fetchone() == (0,)
    conn.close()
    assert reasons[0].startswith("ValueError") and reasons[1].startswith("ContainerError")
    assert caplog.text.count("could not be folded into window state") == 2
    assert "SECRET" not in caplog.text
