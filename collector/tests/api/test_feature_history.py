"""GET /v1/models/{model}/versions/{version}/feature-history on a real collector: one column's
results and summary per window, as the windows route and the values sent give them."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import Frame, categorical, encode_frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, total_rows, windows

MODEL = "credit"
WINDOWS = 4
ROWS = 200
HISTORY = f"/v1/models/{MODEL}/versions/1/feature-history"


def columns(x: np.ndarray, color: list[str]) -> Frame:
    return Frame(
        len(color),
        (numeric("x", x, names=["x0", "x1"]), categorical("color", np.asarray(color))),
    )


def upload_reference(client: httpx.Client, rng: np.random.Generator) -> None:
    base = f"/v1/models/{MODEL}/versions/1/reference"
    upload = client.post(f"{base}/uploads", json={"task": "classification"}).json()["upload_id"]
    frame = columns(rng.normal(size=(2000, 2)), list(rng.choice(["red", "blue"], size=2000)))
    part = client.put(
        f"{base}/uploads/{upload}/parts/0",
        content=encode_frame(frame),
        headers={"content-type": FRAME_TYPE},
    )
    assert part.status_code == 200, part.text
    assert client.post(f"{base}/uploads/{upload}/commit").status_code == 200


@pytest.fixture
def history(make_collector, make_sender) -> tuple[httpx.Client, list[np.ndarray], Any]:
    """Four windows of x0 (the last shifted by 1.5 sd), their values and the collector."""
    clock = FakeClock(T0)
    collector = make_collector(clock, models={MODEL: {"window": 60, "allowed_lateness": 0}})
    rng = np.random.default_rng(5)
    client = collector.client()
    upload_reference(client, rng)
    sender = make_sender(collector.url)
    sent: list[np.ndarray] = []
    for window in range(WINDOWS):
        x = rng.normal(loc=1.5 if window == WINDOWS - 1 else 0.0, size=(ROWS, 2))
        # One missing value per window, which the mean and sd leave out.
        x[0, 0] = np.nan
        color = list(rng.choice(["red", "blue", "green"], size=ROWS))
        outputs = Frame(ROWS, (categorical("prediction", ["no"] * ROWS, role="output"),))
        ids = [f"{window}-{i}" for i in range(ROWS)]
        sender.send(MODEL, "1", int((T0 + 60 * window) * 1e9), columns(x, color), ids, outputs)
        sent.append(x[:, 0])
    sender.flush()
    wait_for(lambda: total_rows(client, MODEL) == WINDOWS * ROWS, what="the rows")
    clock.advance_to(T0 + 60 * WINDOWS + 1)
    wait_for(
        lambda: all(w["evaluated_at"] for w in windows(client, MODEL)),
        60,
        what="the windows evaluated",
    )
    try:
        yield client, sent, collector
    finally:
        client.close()


def test_history_gives_each_windows_rows_and_summary_of_the_column(history) -> None:
    client, sent, _ = history
    listed = windows(client, MODEL)
    answer = client.get(HISTORY, params={"feature": "x0"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["version"], body["feature"]) == (MODEL, "1", "x0")
    assert body["truncated"] is False
    assert [w["id"] for w in body["windows"]] == [w["id"] for w in listed]
    for point, window, values in zip(body["windows"], listed, sent, strict=True):
        # The same result rows as the windows route, for this column only.
        assert point["results"] == [r for r in window["results"] if r["feature"] == "x0"]
        assert {r["detector"] for r in point["results"]} == {"univariate_drift"}
        column = point["column"]
        finite = values[np.isfinite(values)]
        assert column["kind"] == "numeric" and column["role"] == "feature"
        assert (column["count"], column["missing"]) == (ROWS - 1, 1)
        assert column["mean"] == pytest.approx(np.mean(finite), rel=1e-12)
        assert column["sd"] == pytest.approx(np.std(finite, ddof=1), rel=1e-9)
        assert (column["min"], column["max"]) == (np.min(finite), np.max(finite))
    decisions = [w["results"][0]["decision"] for w in body["windows"]]
    assert decisions == ["ok"] * (WINDOWS - 1) + ["alert"]

    categorical_history = client.get(HISTORY, params={"feature": "color"}).json()["windows"]
    last = categorical_history[-1]["column"]
    # green is not in the reference: three categories, green's rows unseen.
    assert last["kind"] == "categorical" and last["categories"] == 3 and last["count"] == ROWS
    assert last["unseen"] > 0 and last["mean"] is None
    # An output column is found by its role; a name no column has gives empty rows.
    output = client.get(HISTORY, params={"feature": "prediction", "role": "output"}).json()
    assert output["windows"][0]["column"]["role"] == "output"
    assert output["windows"][0]["column"]["count"] == ROWS
    nothing = client.get(HISTORY, params={"feature": "nope"}).json()["windows"]
    assert len(nothing) == WINDOWS
    assert all(w["column"] is None and not w["results"] for w in nothing)


def test_history_is_bounded_by_limit_and_time(history) -> None:
    client, _, _ = history
    listed = windows(client, MODEL)
    two = client.get(HISTORY, params={"feature": "x0", "limit": 2}).json()
    assert [w["id"] for w in two["windows"]] == [w["id"] for w in listed[:2]]
    assert two["truncated"] is True
    later = client.get(HISTORY, params={"feature": "x0", "start": listed[2]["start"]}).json()
    assert [w["id"] for w in later["windows"]] == [w["id"] for w in listed[2:]]
    assert later["truncated"] is False
    other_version = client.get(
        f"/v1/models/{MODEL}/versions/2/feature-history", params={"feature": "x0"}
    )
    assert other_version.status_code == 200 and other_version.json()["windows"] == []

    refusals = {
        "limit must be at least 1": {"feature": "x0", "limit": 0},
        "limit must be at most 10000": {"feature": "x0", "limit": 10_001},
        "feature is required": {},
        "at most 1024 characters": {"feature": "x" * 1025},
        "start must be before end": {"feature": "x0", "start": "2024-01-02", "end": "2024-01-01"},
        "start must be an ISO 8601 time": {"feature": "x0", "start": "yesterday"},
        "role must be one of": {"feature": "x0", "role": "input"},
    }
    for sentence, params in refusals.items():
        answer = client.get(HISTORY, params=params)
        assert answer.status_code == 400, (params, answer.text)
        assert sentence in answer.json()["error"]
