"""The bodies of all requests held at once are bounded (max_inflight_bytes): beyond the bound a
request is answered 503 with Retry-After before any more of it is kept, and succeeds once the
bodies in flight are done. Real concurrent requests to a real collector."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import numpy as np

from inferwatch import contract
from inferwatch.frame import Frame, encode_frame, numeric
from inferwatch_testkit import wait_for

BODY_BYTES = 3 * 2**20
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def body(make, n: int) -> bytes:
    """One span of about BODY_BYTES, protobuf."""
    rows = BODY_BYTES // (8 * 10)
    values = np.random.default_rng(n).normal(size=(rows, 10))
    frame = encode_frame(Frame(rows, (numeric("x", values, [f"f{i}" for i in range(10)]),)))
    ids = [f"{n}-{i}" for i in range(rows)]
    attributes = make.inferwatch_attributes(model="inflight", rows=rows, seed=n)
    attributes.update({contract.ATTR_INPUT_FRAME: frame, contract.ATTR_PREDICTION_IDS: ids})
    attributes.pop(contract.ATTR_OUTPUT_FRAME)
    return make.export_request([attributes]).SerializeToString()


def test_bodies_beyond_the_inflight_limit_get_503_then_succeed(make_collector, make) -> None:
    collector = make_collector(max_body_bytes=4 * 2**20, max_inflight_bytes=5 * 2**20)
    stats = collector.app.state.collector.receiver_stats
    url = f"{collector.url}{contract.TRACES_PATH}"
    bodies = [body(make, n) for n in range(4)]
    release = threading.Event()
    answers: list[httpx.Response] = []

    def slow_body() -> Iterator[bytes]:
        half = len(bodies[0]) // 2
        yield bodies[0][:half]
        assert release.wait(60)
        yield bodies[0][half:]

    def send_slowly() -> None:
        headers = {**PROTOBUF, "Content-Length": str(len(bodies[0]))}
        answers.append(httpx.post(url, content=slow_body(), headers=headers, timeout=60))

    first = threading.Thread(target=send_slowly)
    first.start()
    try:
        wait_for(lambda: stats.requests == 1, what="the first request to be read")
        refused = [httpx.post(url, content=b, headers=PROTOBUF, timeout=60) for b in bodies[1:]]
    finally:
        release.set()
        first.join()
    assert [r.status_code for r in refused] == [503] * 3, refused[0].text
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert "max_inflight_bytes" in refused[0].text
    assert answers[0].status_code == 200
    # Once the first is done, the same bodies go through.
    again = [httpx.post(url, content=b, headers=PROTOBUF, timeout=60) for b in bodies[1:]]
    assert [r.status_code for r in again] == [200] * 3
    assert stats.busy_responses == 3


def test_one_body_over_the_inflight_limit_alone_succeeds(make_collector, make) -> None:
    # A body within max_body_bytes must never be refused for good, whatever the in-flight limit.
    collector = make_collector(max_body_bytes=4 * 2**20, max_inflight_bytes=2**20)
    response = httpx.post(
        f"{collector.url}{contract.TRACES_PATH}", content=body(make, 9), headers=PROTOBUF
    )
    assert response.status_code == 200, response.text
