"""``inferwatch report`` before and after labels: a real collector estimates a classifier's
accuracy from its probabilities (its reference has probabilities and labels); the report shows
the estimate, marked, where a window has no label, and the realized accuracy where labels landed,
and ``--json`` has both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

import inferwatch
from inferwatch.capture import capture_outputs
from inferwatch.cli import main
from inferwatch.collector import load_config
from inferwatch.frame import Frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, RunningCollector, SpanSender, start_collector, windows

WINDOW = 60
ROWS = 600
BATCH = 100
CLASSES = ["no", "yes"]
MODEL = "loans"


@dataclass
class Scored:
    collector: RunningCollector
    # The realized accuracy of the labelled (second) window.
    realized: float


def draw(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, a calibrated classifier's probabilities and labels drawn from them."""
    x = rng.normal(size=(rows, 2))
    yes = 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))
    return x, np.column_stack([1 - yes, yes]), np.where(rng.random(rows) < yes, "yes", "no")


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scored]:
    """Window 0 without labels, window 1 with every label; both closed and evaluated."""
    db = tmp_path_factory.mktemp("report-estimate") / "collector.db"
    clock = FakeClock(T0)
    models = {MODEL: {"window": WINDOW, "allowed_lateness": 0}}
    config = load_config(None, db=f"sqlite:///{db}", tick_seconds=0.05, models=models)
    running = start_collector(config, clock)
    rng = np.random.default_rng(21)
    sender = SpanSender(running.url)
    try:
        x, proba, labels = draw(rng, 4000)
        inferwatch.set_reference(
            MODEL,
            "1",
            {"x0": x[:, 0], "x1": x[:, 1]},
            predictions=proba,
            labels=labels,
            task="classification",
            classes=CLASSES,
            endpoint=running.url,
        )
        truth: dict[str, str] = {}
        realized = 0.0
        for number in (0, 1):
            x, proba, labels = draw(rng, ROWS)
            ids = [f"w{number}-{i}" for i in range(ROWS)]
            for part, start in enumerate(range(0, ROWS, BATCH)):
                rows = slice(start, start + BATCH)
                outputs = capture_outputs(
                    proba[rows], rows=BATCH, task="classification", classes=CLASSES
                ).frame
                assert outputs is not None
                when = T0 + number * WINDOW + 1 + part
                inputs = Frame(BATCH, (numeric("x", x[rows], names=["x0", "x1"]),))
                sender.send(MODEL, "1", int(when * 1e9), inputs, ids[rows], outputs)
            if number == 1:
                truth = dict(zip(ids, labels.tolist(), strict=True))
                predicted = np.where(proba[:, 1] > 0.5, "yes", "no")
                realized = float(accuracy_score(labels, predicted))
        sender.flush()
        with running.client() as client:
            wait_for(
                lambda: sum(w["rows"] for w in windows(client, MODEL)) == 2 * ROWS,
                what="the rows",
            )
            body = {
                "model": MODEL,
                "labels": [{"prediction_id": k, "label": v} for k, v in truth.items()],
            }
            assert client.post("/v1/labels", json=body).is_success
            clock.advance_to(T0 + 2 * WINDOW + 1)
            wait_for(
                lambda: (
                    [
                        w["main_metric"] and w["main_metric"]["scored"]
                        for w in windows(client, MODEL)
                    ]
                    == [0, ROWS]
                ),
                timeout=60,
                what="both windows evaluated, the second with its labels",
            )
        yield Scored(running, realized)
    finally:
        sender.close()
        running.stop()


def report(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["report", "--endpoint", url, "--model", MODEL, *args])
    out = capsys.readouterr().out
    assert code == 0
    return out


@pytest.fixture(autouse=True)
def terminal_of_100_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")


def estimate_of(scored: Scored, window: dict[str, Any]) -> dict[str, Any]:
    """The window detail's estimated accuracy: what the list's main metric must repeat."""
    with scored.collector.client() as client:
        detail = client.get(f"/v1/models/{MODEL}/windows/{window['id']}").json()
    estimated = detail["summary"]["estimated_performance"]
    assert estimated["trusted"], estimated["reasons"]
    figure: dict[str, Any] = estimated["metrics"]["accuracy"]
    return {**figure, "confidence": estimated["confidence"], "method": estimated["method"]}


def test_json_has_the_estimate_beside_the_realized_value(scored: Scored, capsys) -> None:
    first, second = json.loads(report(scored.collector.url, capsys, "--json"))["windows"]
    for window, value in ((first, None), (second, pytest.approx(scored.realized))):
        main_metric = window["main_metric"]
        assert main_metric["name"] == "accuracy" and main_metric["value"] == value
        figure = estimate_of(scored, window)
        assert main_metric["estimated"] == {
            key: figure[key] for key in ("value", "lower", "upper", "confidence", "method")
        }
        assert main_metric["estimated"]["method"] == "cbpe"
        assert figure["lower"] < figure["value"] < figure["upper"]
    # The estimate of the labelled window stays as it was made, beside the realized value,
    # and is close to it (600 rows from calibrated probabilities: the sd is ~0.018).
    assert abs(second["main_metric"]["estimated"]["value"] - scored.realized) < 0.07


def test_the_table_marks_the_estimate_where_no_label_landed(scored: Scored, capsys) -> None:
    out = report(scored.collector.url, capsys)
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("start"))
    header = lines[at].split()
    first, second = (line.split() for line in lines[at + 2 : at + 4])
    assert lines[at + 4] == ""
    column = header.index("accuracy") - 2  # "p50 ms" and "p95 ms" are two words each
    with scored.collector.client() as client:
        listed = windows(client, MODEL)
    estimated = listed[0]["main_metric"]["estimated"]["value"]
    assert first[column : column + 2] == [f"~{estimated:.3f}", "est"]
    assert second[column] == f"{scored.realized:.3f}"
    assert "~... est: estimated from the predictions before their labels arrive" in out
    assert max(len(line) for line in lines) <= 100
    # With labels everywhere (only the second window), no estimate is shown and no note.
    only_labelled = report(scored.collector.url, capsys, "--last", "1")
    assert "~" not in only_labelled and "est:" not in only_labelled
