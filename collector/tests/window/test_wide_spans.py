"""A span of very many features costs time linear in its width: it does not hold up the requests
after it, and the collector answers health checks while it is folded."""

from __future__ import annotations

import threading

import httpx
import numpy as np

from inferwatch.frame import Frame, numeric
from inferwatch_testkit.collector import T0, mixed_frames, total_rows

WIDTH = 20_000


def test_a_span_of_20000_features_does_not_hold_up_ingest(make_collector, make_sender) -> None:
    # Above the default limit of 10,000 columns a frame (docs/otlp-ingest.md), raised here: what
    # is let in must still cost linear time.
    collector = make_collector(limits={"columns_per_frame": 2 * WIDTH})
    sender = make_sender(collector.url)
    start_ns = int(T0 * 1e9)
    values = np.random.default_rng(1).normal(size=(4, WIDTH))
    wide = Frame(4, (numeric("x", values, [f"f{i}" for i in range(WIDTH)]),))
    health: list[int] = []
    done = threading.Event()

    def check_health() -> None:
        while not done.is_set():
            health.append(httpx.get(f"{collector.url}/healthz", timeout=60).status_code)

    checker = threading.Thread(target=check_health)
    checker.start()
    try:
        sender.send("wide", "1", start_ns, wide, [f"w{i}" for i in range(4)])
        sender.flush()
        # Answered once the wide span's fold (a quadratic one took minutes) has made way.
        inputs, outputs = mixed_frames(np.random.default_rng(2), 3)
        sender.send("narrow", "1", start_ns, inputs, ["n0", "n1", "n2"], outputs)
        sender.flush()
    finally:
        done.set()
        checker.join()
    assert health and set(health) == {200}
    with collector.client() as client:
        assert total_rows(client, "narrow") == 3
        assert total_rows(client, "wide") == 4
        (window,) = client.get("/v1/models/wide/windows").json()["windows"]
        detail = client.get(f"/v1/models/wide/windows/{window['id']}").json()
    assert len(detail["summary"]["columns"]["columns"]) == WIDTH
