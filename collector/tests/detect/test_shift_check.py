"""The ``shift_verdict`` check in a real collector: the wine reference uploaded with the SDK
(features, labels and the model's predictions), windows sent as OTLP spans, the verdict and the
grouped drift read back from the query API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import inferwatch
from inferwatch.collector import load_config
from inferwatch.frame import Frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, SpanSender, start_collector, total_rows, windows

MODEL = "wine"
WINDOW = 60
ROWS = 300
BATCH = 50
FEATURES = tuple(name.replace("/", "_") for name in load_wine().feature_names)
# The demo's phases: the cultivar mix 33/40/27% -> 10/20/70%, then three features moved.
MIX = (0.10, 0.20, 0.70)
COVARIATE = {"alcohol": 1.5, "color_intensity": 1.5, "hue": -1.0}


def draw(
    rng: np.random.Generator,
    x: np.ndarray,
    y: np.ndarray,
    shares: tuple[float, ...] | None = None,
    shift: dict[str, float] | None = None,
) -> np.ndarray:
    """As the demo draws traffic: a class, a wine of that class, a tenth of an sd of noise."""
    p = np.bincount(y) / y.size if shares is None else np.asarray(shares)
    classes = rng.choice(3, size=ROWS, p=p)
    picks = np.array([rng.choice(np.flatnonzero(y == c)) for c in classes])
    rows = x[picks] + rng.normal(0, 0.1, size=(ROWS, x.shape[1])) * x.std(axis=0)
    for name, sds in (shift or {}).items():
        j = FEATURES.index(name)
        rows[:, j] += sds * x[:, j].std()
    return rows


@dataclass
class Run:
    results: list[list[dict[str, Any]]]
    details: list[dict[str, Any]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    db = tmp_path_factory.mktemp("shift") / "collector.db"
    clock = FakeClock(T0)
    settings = {"window": WINDOW, "allowed_lateness": 5, "reference": {"policy": "none"}}
    config = load_config(None, db=f"sqlite:///{db}", tick_seconds=0.05, models={MODEL: settings})
    collector = start_collector(config, clock)
    sender = SpanSender(collector.url)
    data = load_wine()
    x, y = data.data, data.target
    model: Pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    rng = np.random.default_rng(17)
    try:
        inferwatch.set_reference(
            MODEL,
            "1",
            x,
            predictions=model.predict(x),
            labels=y,
            feature_names=FEATURES,
            task="classification",
            endpoint=collector.url,
        )
        phases = [draw(rng, x, y), draw(rng, x, y, MIX), draw(rng, x, y, shift=COVARIATE)]
        for number, rows in enumerate(phases):
            predicted = model.predict(rows).astype(np.float64)
            for batch, start in enumerate(range(0, ROWS, BATCH)):
                part = slice(start, start + BATCH)
                inputs = Frame(BATCH, (numeric("features", rows[part], names=list(FEATURES)),))
                outputs = Frame(BATCH, (numeric("prediction", predicted[part], role="output"),))
                ids = [f"w{number}-{i}" for i in range(start, start + BATCH)]
                when = T0 + number * WINDOW + 1 + batch * 0.5
                sender.send(MODEL, "1", int(when * 1e9), inputs, ids, outputs)
        sender.flush()
        with collector.client() as client:
            wait_for(lambda: total_rows(client, MODEL) == 3 * ROWS, timeout=60, what="every row")
            clock.advance_to(T0 + 3 * WINDOW + 10)
            found = wait_for(
                lambda: (
                    len(w := [v for v in windows(client, MODEL) if v["evaluated_at"]]) == 3 and w
                ),
                timeout=60,
                what="three evaluated windows",
            )
            details = []
            for window in sorted(found, key=lambda w: w["start"]):
                response = client.get(f"/v1/models/{MODEL}/windows/{window['id']}")
                assert response.status_code == 200, response.text
                details.append(response.json())
        yield Run([d["results"] for d in details], details)
    finally:
        sender.close()
        collector.stop()


def _verdict(results: list[dict[str, Any]]) -> dict[str, Any]:
    (row,) = [r for r in results if r["detector"] == "shift_verdict"]
    return row


def _failing(results: list[dict[str, Any]], detector: str) -> set[str | None]:
    return {
        r["feature"]
        for r in results
        if r["detector"] == detector and r["decision"] in ("alert", "warning")
    }


def test_a_clean_window_has_no_shift(run: Run) -> None:
    verdict = _verdict(run.results[0])
    assert verdict["decision"] == "ok" and verdict["details"]["verdict"] == "none"
    assert verdict["message"].startswith("no shift: class priors unchanged")
    shift = run.details[0]["shift"]
    assert shift["verdict"] == "none" and [p["label"] for p in shift["priors"]] == ["0", "1", "2"]
    assert sum(p["estimated"] for p in shift["priors"]) == pytest.approx(1.0)


def test_a_label_shift_is_one_finding_not_ten_drifted_features(run: Run) -> None:
    results = run.results[1]
    verdict = _verdict(results)
    assert verdict["decision"] == "alert", verdict
    assert verdict["details"]["verdict"] == "label_shift"
    assert verdict["message"].startswith("label shift: class `2` 27% -> ")
    assert "moved as that class mix predicts" in verdict["message"]
    # The per-feature drift is there, and grouped under the verdict instead of raised.
    grouped = [
        r for r in results if r["detector"] == "univariate_drift" and r["feature"] is not None
    ]
    explained = [r for r in grouped if r["details"].get("explained_by") == "shift_verdict"]
    assert len(explained) >= 5
    assert all(r["decision"] == "ok" for r in explained)
    assert all(r["message"].startswith("explained by the label shift") for r in explained)
    assert _failing(results, "univariate_drift") == set()
    shift = run.details[1]["shift"]
    assert shift["verdict"] == "label_shift" and shift["decision"] == "alert"
    assert set(shift["explained"]) == {r["feature"] for r in explained}
    prior = {p["label"]: p for p in shift["priors"]}
    assert (
        prior["2"]["ci_low"] <= 0.70 <= prior["2"]["ci_high"]
        or abs(prior["2"]["estimated"] - 0.70) < 0.08
    )
    assert prior["2"]["weight"] == pytest.approx(prior["2"]["estimated"] / prior["2"]["reference"])
    assert shift["priors_p_value"] < 1e-6


def test_a_covariate_shift_keeps_its_drifted_features(run: Run) -> None:
    results = run.results[2]
    verdict = _verdict(results)
    assert verdict["details"]["verdict"] == "covariate_shift", verdict["message"]
    assert set(verdict["details"]["covariate_shift"]) == set(COVARIATE)
    assert _failing(results, "univariate_drift") == {None, *COVARIATE}
    assert run.details[2]["shift"]["covariate_shift"] == verdict["details"]["covariate_shift"]
