"""Labels joined to predictions: early, late, twice, after the window closed, never."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import numpy as np
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error

import inferwatch
from inferwatch.frame import Frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, mixed_frames, total_rows, windows
from inferwatch_testkit.postgres import TemporaryDatabase


def post_labels(client: httpx.Client, model: str, labels: dict[str, Any]) -> dict[str, int]:
    body = {"model": model, "labels": [{"prediction_id": k, "label": v} for k, v in labels.items()]}
    response = client.post("/v1/labels", json=body)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


def closed_detail(client: httpx.Client, model: str) -> dict[str, Any]:
    (window,) = wait_for(
        lambda: (w := windows(client, model)) and all(x["closed"] for x in w) and w,
        what="the window to close",
    )
    detail: dict[str, Any] = client.get(f"/v1/models/{model}/windows/{window['id']}").json()
    return detail


def test_labels_join_early_late_twice_and_after_close(make_collector, make_sender) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock, models={"churn": {"window": 60, "allowed_lateness": 10}})
    sender = make_sender(collector.url)
    rng = np.random.default_rng(3)
    predicted: dict[str, str] = {}
    batches = []
    for i in range(4):
        inputs, outputs = mixed_frames(rng, 50)
        ids = [f"c{i}-{j}" for j in range(50)]
        predicted.update(zip(ids, outputs.columns[0].values(), strict=True))
        batches.append((int((T0 + i) * 1e9), inputs, ids, outputs))
    truth = {pid: str(rng.choice(["no", "yes"])) for pid in predicted}
    early = dict(list(truth.items())[:10])

    with collector.client() as client:
        # Labels first: they wait for their predictions.
        assert post_labels(client, "churn", early) == {
            "accepted": 10,
            "joined": 0,
            "pending": 10,
            "replaced": 0,
            "warnings": [],  # a model with settings is known before its first prediction
        }
        for start_ns, inputs, ids, outputs in batches:
            sender.send("churn", "2", start_ns, inputs, ids, outputs)
        sender.flush()
        wait_for(lambda: total_rows(client, "churn") == 200, what="rows")
        wait_for(lambda: windows(client, "churn")[0]["labelled"] == 10, what="early labels join")

        clock.advance_to(T0 + 30)
        later = dict(list(truth.items())[10:110])
        assert post_labels(client, "churn", later) == {
            "accepted": 100,
            "joined": 100,
            "pending": 0,
            "replaced": 0,
            "warnings": [],  # a model with settings is known before its first prediction
        }
        # Twice: last write wins and is counted, coverage does not grow.
        flipped = next(iter(later))
        truth[flipped] = "yes" if truth[flipped] == "no" else "no"
        assert post_labels(client, "churn", {flipped: truth[flipped]})["replaced"] == 1

        clock.advance_to(T0 + 100)
        detail = closed_detail(client, "churn")
        assert detail["labelled"] == 110
        assert detail["label_coverage"] == 110 / 200
        labelled = list(truth)[:110]
        performance = detail["summary"]["performance"]
        expected = accuracy_score([truth[p] for p in labelled], [predicted[p] for p in labelled])
        assert performance["accuracy"] == expected
        coverage = next(r for r in detail["results"] if r["detector"] == "label_coverage")
        assert coverage["score"] == 110 / 200
        # Delays: 10 labels came before their predictions (0 s), 100 came ~29 s after.
        assert performance["label_delay_seconds"]["max"] == 30 - 0

        # Weeks later: the closed window takes the labels and is evaluated again.
        clock.advance_to(T0 + 14 * 86400)
        last = dict(list(truth.items())[110:160])
        assert post_labels(client, "churn", last)["joined"] == 50
        detail = wait_for(
            lambda: (
                (d := client.get(f"/v1/models/churn/windows/{detail['id']}").json())["summary"][
                    "performance"
                ]["labelled"]
                == 160
                and d
            ),
            what="re-evaluation after late labels",
        )
        labelled = list(truth)[:160]
        expected = accuracy_score([truth[p] for p in labelled], [predicted[p] for p in labelled])
        assert detail["summary"]["performance"]["accuracy"] == expected
        assert detail["labelled"] == 160

        metrics = client.get("/v1/models/churn/metrics").json()
        assert metrics["lifetime"]["all"]["accuracy"] == expected
        assert metrics["labels"]["replaced"] == 1
        assert metrics["labels"]["accepted"] == 161


def test_regression_performance_and_numeric_labels(make_collector, make_sender) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock, models={"price": {"window": 60, "allowed_lateness": 0}})
    sender = make_sender(collector.url)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 3))
    y_hat = x @ np.array([1.0, -2.0, 0.5])
    ids = [f"r{j}" for j in range(80)]
    sender.send(
        "price",
        "1",
        int(T0 * 1e9),
        Frame(80, (numeric("x", x),)),
        ids,
        Frame(80, (numeric("price", y_hat),)),
        task="regression",
    )
    sender.flush()
    y = y_hat + rng.normal(size=80)
    with collector.client() as client:
        wait_for(lambda: total_rows(client, "price") == 80, what="rows")
        post_labels(client, "price", {pid: float(v) for pid, v in zip(ids, y, strict=True)})
        clock.advance_to(T0 + 61)
        performance = closed_detail(client, "price")["summary"]["performance"]
    np.testing.assert_allclose(performance["mae"], mean_absolute_error(y, y_hat), rtol=1e-12)
    np.testing.assert_allclose(
        performance["rmse"], np.sqrt(mean_squared_error(y, y_hat)), rtol=1e-12
    )


def test_unknown_ids_expire_and_are_reported(make_collector) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock, prediction_retention_seconds=100)
    with collector.client() as client:
        counts = post_labels(client, "ghost", {f"u{j}": j % 2 for j in range(25)})
        assert counts["pending"] == 25
        clock.advance_to(T0 + 500)
        wait_for(
            lambda: client.get("/v1/models/ghost/metrics").json()["labels"]["expired"] == 25,
            what="expiry",
        )
        assert client.get("/v1/models/ghost/metrics").json()["labels"]["pending"] == 0
        assert 'inferwatch_labels_total{outcome="expired"} 25.0' in client.get("/metrics").text


def test_bad_label_requests_get_sentences(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        cases = [
            (
                {"content": b"{not json", "headers": {"content-type": "application/json"}},
                400,
                "JSON",
            ),
            (
                {"content": b"model=x", "headers": {"content-type": "text/plain"}},
                415,
                "application/json",
            ),
            ({"json": {"labels": []}}, 400, "'model'"),
            ({"json": {"model": "m", "labels": {}}}, 400, "'labels' must be a list"),
            ({"json": {"model": "m", "labels": [{"label": 1}]}}, 400, "labels[0].prediction_id"),
            ({"json": {"model": "m", "labels": [{"prediction_id": "a"}]}}, 400, "no 'label'"),
            (
                {"json": {"model": "m", "labels": [{"prediction_id": "a", "label": [1]}]}},
                400,
                "labels[0].label must be",
            ),
            (
                {"json": {"model": "m", "labels": [{"prediction_id": "a", "label": 1}] * 10_001}},
                413,
                "the limit is 10000",
            ),
        ]
        for request, status, phrase in cases:
            response = client.post("/v1/labels", **request)
            assert response.status_code == status, (request, response.text)
            assert phrase in response.json()["error"]
        # Nothing from the refused requests was kept.
        assert client.get("/v1/models/m/metrics").json()["labels"]["accepted"] == 0


def test_labels_posted_while_windows_close_all_reach_performance(
    make_collector, make_sender
) -> None:
    """A label can land while its window's closing evaluation runs (after it read the labels,
    before it stored its results): it must still reach a later evaluation, in every window.
    Labels stream in one a request while each window closes; a reference makes the
    evaluation do real work, so many land during one."""
    windows_count, rows, before_close = 6, 60, 10
    clock = FakeClock(T0)
    collector = make_collector(clock, models={"stream": {"window": 60, "allowed_lateness": 0}})
    rng = np.random.default_rng(11)
    reference, outputs = mixed_frames(rng, 2000)
    x = reference.columns[0].values
    inferwatch.set_reference(
        "stream",
        "1",
        {"x0": x[:, 0], "x1": x[:, 1], "color": reference.columns[1].values()},
        predictions=outputs.columns[0].values(),
        task="classification",
        endpoint=collector.url,
    )
    sender = make_sender(collector.url)
    with collector.client() as client:
        for w in range(windows_count):
            start = T0 + 60 * w
            inputs, outputs = mixed_frames(rng, rows)
            ids = [f"w{w}-{j}" for j in range(rows)]
            sender.send("stream", "1", int((start + 1) * 1e9), inputs, ids, outputs)
            sender.flush()
            wait_for(lambda w=w: total_rows(client, "stream") == rows * (w + 1), what="rows")
            post_labels(client, "stream", dict.fromkeys(ids[:before_close], "yes"))
            # The window closes on the collector's next tick, while the rest stream in.
            clock.advance_to(start + 61)
            for pid in ids[before_close:]:
                post_labels(client, "stream", {pid: "yes"})

        def performance_counts() -> list[tuple[int, int]]:
            found = []
            for window in windows(client, "stream"):
                detail = client.get(f"/v1/models/stream/windows/{window['id']}").json()
                performance = (detail.get("summary") or {}).get("performance") or {}
                found.append((detail["labelled"], performance.get("labelled", -1)))
            return found

        seen: list[list[tuple[int, int]]] = [[]]

        def settled() -> bool:
            seen[0] = performance_counts()
            closed = all(w["closed"] for w in windows(client, "stream"))
            return closed and seen[0] == [(rows, rows)] * windows_count

        try:
            wait_for(settled, timeout=20, what="every window's performance to count its labels")
        except AssertionError:
            lost = [(w, n, p) for w, (n, p) in enumerate(seen[0]) if p != n]
            message = f"(window, labelled, labels in its performance) never settled: {lost}"
            raise AssertionError(message) from None


def test_a_uuid7_label_joins_near_its_time_first_on_postgresql(
    make_collector, make_sender, postgres: TemporaryDatabase
) -> None:
    # The labels endpoint passes the model's reach: an id stored first in a window far from its
    # own time and then in one near it joins the near one (docs/scaling.md), as only the lookup
    # near the id's time would.
    clock = FakeClock(T0)
    collector = make_collector(clock, db=postgres.new_schema(), models={"m": {"window": 60}})
    sender = make_sender(collector.url)
    made_ms = int(T0 * 1000)
    reused = str(uuid.UUID(int=(made_ms << 80) | (0x7 << 76) | (0b10 << 62) | 1))
    inputs, outputs = mixed_frames(np.random.default_rng(0), 1)
    with collector.client() as client:
        for rows, start in enumerate((T0 - 5 * 86400, T0), start=1):
            sender.send("m", "1", int(start * 1e9), inputs, [reused], outputs)
            sender.flush()
            wait_for(lambda rows=rows: total_rows(client, "m") == rows, what="the span stored")
        assert post_labels(client, "m", {reused: "yes"})["joined"] == 1
        labelled = wait_for(
            lambda: [w for w in windows(client, "m") if w["labelled"]], what="the labelled window"
        )
        assert [w["start"] for w in labelled] == [max(w["start"] for w in windows(client, "m"))]
