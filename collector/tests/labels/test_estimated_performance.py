"""Estimated performance in a running collector: before labels, then beside the realized one."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
from sklearn.metrics import accuracy_score, mean_absolute_error

import inferwatch
from inferwatch.capture import capture_outputs
from inferwatch.frame import Frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, total_rows, windows

CLASSES = ["no", "yes"]


def post_labels(client: httpx.Client, model: str, labels: dict[str, Any]) -> None:
    body = {"model": model, "labels": [{"prediction_id": k, "label": v} for k, v in labels.items()]}
    response = client.post("/v1/labels", json=body)
    assert response.status_code == 200, response.text


def detail_of(client: httpx.Client, model: str) -> dict[str, Any]:
    (window,) = windows(client, model)
    found: dict[str, Any] = client.get(f"/v1/models/{model}/windows/{window['id']}").json()
    return found


def _binary(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, the model's probabilities (twice too confident) and labels drawn from the
    truth: the collector has to calibrate them on the reference."""
    x = rng.normal(size=(rows, 2))
    truth = 1 / (1 + np.exp(-(1.2 * x[:, 0] - 0.8 * x[:, 1])))
    shown = 1 / (1 + np.exp(-2 * (1.2 * x[:, 0] - 0.8 * x[:, 1])))
    labels = np.where(rng.random(rows) < truth, "yes", "no")
    return x, np.column_stack([1 - shown, shown]), labels


def test_estimates_before_labels_then_realized_beside_them(make_collector, make_sender) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock, models={"churn": {"window": 60, "allowed_lateness": 0}})
    rng = np.random.default_rng(12)
    x, proba, labels = _binary(rng, 4000)
    inferwatch.set_reference(
        "churn",
        "1",
        {"x0": x[:, 0], "x1": x[:, 1]},
        predictions=proba,
        labels=labels,
        task="classification",
        classes=CLASSES,
        endpoint=collector.url,
    )
    x, proba, labels = _binary(rng, 1000)
    ids = [f"p{j}" for j in range(1000)]
    sender = make_sender(collector.url)
    for part in range(5):
        rows = slice(part * 200, (part + 1) * 200)
        inputs = Frame(200, (numeric("x", x[rows], names=["x0", "x1"]),))
        outputs = capture_outputs(proba[rows], rows=200, task="classification", classes=CLASSES)
        assert outputs.frame is not None
        sender.send("churn", "1", int((T0 + 1 + part) * 1e9), inputs, ids[rows], outputs.frame)
    sender.flush()
    predicted = np.where(proba[:, 1] > 0.5, "yes", "no")
    realized = accuracy_score(labels, predicted)

    with collector.client() as client:
        wait_for(lambda: total_rows(client, "churn") == 1000, what="rows")
        clock.advance_to(T0 + 61)
        detail = wait_for(
            lambda: (d := detail_of(client, "churn"))["closed"] and d["summary"] and d,
            timeout=60,
            what="the window to close",
        )
        summary = detail["summary"]
        assert summary["performance"]["labelled"] == 0
        assert summary["performance"]["accuracy"] is None
        estimated = summary["estimated_performance"]
        assert estimated["trusted"], estimated["reasons"]
        assert estimated["method"] == "cbpe" and estimated["calibration"] != "none"
        accuracy = estimated["metrics"]["accuracy"]
        assert accuracy["realized"] is None
        assert accuracy["lower"] <= accuracy["value"] <= accuracy["upper"]
        # Raw, the doubled scores promise ~0.84 accuracy; calibrated, the estimate is near the
        # ~0.76 the labels will give (sd of a 1,000-row window's accuracy: 0.013).
        assert abs(accuracy["value"] - realized) < 0.04
        raw_promise = float(np.maximum(proba[:, 0], proba[:, 1]).mean())
        assert raw_promise - realized > 0.05
        rows = [r for r in detail["results"] if r["detector"] == "estimated_performance"]
        assert {r["details"]["metric"] for r in rows} == {"accuracy", "f1_macro", "roc_auc"}
        assert all("estimated" in r["message"] for r in rows)
        assert all(r["details"]["estimated"] for r in rows)
        # The class mix is the reference's: nothing to re-weight.
        assert not any("re-weighted" in r["message"] for r in rows)

        post_labels(client, "churn", dict(zip(ids, labels.tolist(), strict=True)))
        detail = wait_for(
            lambda: (
                (d := detail_of(client, "churn"))["summary"]["performance"]["labelled"] == 1000
                and d
            ),
            timeout=60,
            what="re-evaluation with the labels",
        )
        summary = detail["summary"]
        assert summary["performance"]["accuracy"] == realized
        beside = summary["estimated_performance"]
        assert beside["labels_suffice"] is True
        assert beside["metrics"]["accuracy"]["realized"] == realized
        # The estimate is the same as before the labels: it never reads them.
        assert beside["metrics"]["accuracy"]["value"] == accuracy["value"]
        rows = [r for r in detail["results"] if r["detector"] == "estimated_performance"]
        assert all(r["decision"] == "ok" for r in rows)
        assert any("replaces the estimate" in r["message"] for r in rows)


def test_a_regressor_is_estimated_and_a_reference_without_labels_says_why(
    make_collector, make_sender
) -> None:
    clock = FakeClock(T0)
    models = {name: {"window": 60, "allowed_lateness": 0} for name in ("price", "bare")}
    collector = make_collector(clock, models=models)
    rng = np.random.default_rng(13)

    def draw(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = rng.normal(size=(rows, 3))
        y_hat = x @ np.array([1.0, -2.0, 0.5])
        return x, y_hat, y_hat + rng.normal(size=rows) * (0.5 + np.abs(x[:, 2]))

    x, y_hat, y = draw(3000)
    features = {f"x{j}": x[:, j] for j in range(3)}
    inferwatch.set_reference(
        "price", "1", features, predictions=y_hat, labels=y, endpoint=collector.url
    )
    inferwatch.set_reference("bare", "1", features, predictions=y_hat, endpoint=collector.url)
    x, y_hat, y = draw(600)
    sender = make_sender(collector.url)
    for model in ("price", "bare"):
        sender.send(
            model,
            "1",
            int((T0 + 1) * 1e9),
            Frame(600, (numeric("x", x, names=["x0", "x1", "x2"]),)),
            [f"{model}{j}" for j in range(600)],
            Frame(600, (numeric("prediction", y_hat),)),
            task="regression",
        )
    sender.flush()
    with collector.client() as client:
        wait_for(lambda: total_rows(client, "price") + total_rows(client, "bare") == 1200)
        clock.advance_to(T0 + 61)
        price = wait_for(
            lambda: (d := detail_of(client, "price"))["closed"] and d["summary"] and d,
            timeout=60,
            what="the price window to close",
        )
        estimated = price["summary"]["estimated_performance"]
        assert estimated["trusted"], estimated["reasons"]
        assert estimated["method"] == "dle"
        mae = estimated["metrics"]["mae"]
        assert abs(mae["value"] - mean_absolute_error(y, y_hat)) < 0.1
        bare = wait_for(
            lambda: (d := detail_of(client, "bare"))["closed"] and d["summary"] and d,
            timeout=60,
            what="the bare window to close",
        )
        untrusted = bare["summary"]["estimated_performance"]
        assert not untrusted["trusted"] and untrusted["metrics"] == {}
        assert "no labels" in untrusted["reasons"][0]
        (row,) = [r for r in bare["results"] if r["detector"] == "estimated_performance"]
        assert row["decision"] == "not_enough_data" and row["score"] is None


def _three_classes(
    rng: np.random.Generator, rows: int, priors: list[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian classes and the Bayes posterior under equal priors (the model's probabilities:
    calibrated on a balanced reference, not on a window whose class mix moved)."""
    means = 0.7 * np.array([[-1.2, 0.0], [0.0, 1.2], [1.2, 0.0]])
    y = rng.choice(3, rows, p=priors)
    x = means[y] + rng.normal(size=(rows, 2))
    likelihood = np.exp(-0.5 * ((x[:, None, :] - means[None]) ** 2).sum(axis=2))
    proba = likelihood / likelihood.sum(axis=1, keepdims=True)
    return x, proba, np.array(["a", "b", "c"])[y]


def test_a_label_shift_reweights_the_estimate_by_the_estimated_priors(
    make_collector, make_sender
) -> None:
    clock = FakeClock(T0)
    model = {"window": 60, "allowed_lateness": 0}
    collector = make_collector(clock, models={"mix": model})
    rng = np.random.default_rng(21)
    x, proba, labels = _three_classes(rng, 6000, [1 / 3, 1 / 3, 1 / 3])
    classes = ["a", "b", "c"]
    inferwatch.set_reference(
        "mix",
        "1",
        {"x0": x[:, 0], "x1": x[:, 1]},
        predictions=proba,
        labels=labels,
        task="classification",
        classes=classes,
        endpoint=collector.url,
    )
    x, proba, labels = _three_classes(rng, 1000, [0.05, 0.05, 0.9])
    ids = [f"m{j}" for j in range(1000)]
    sender = make_sender(collector.url)
    for part in range(5):
        rows = slice(part * 200, (part + 1) * 200)
        inputs = Frame(200, (numeric("x", x[rows], names=["x0", "x1"]),))
        outputs = capture_outputs(proba[rows], rows=200, task="classification", classes=classes)
        assert outputs.frame is not None
        sender.send("mix", "1", int((T0 + 1 + part) * 1e9), inputs, ids[rows], outputs.frame)
    sender.flush()
    realized = accuracy_score(labels, np.array(classes)[proba.argmax(axis=1)])
    with collector.client() as client:
        wait_for(lambda: total_rows(client, "mix") == 1000, what="rows")
        clock.advance_to(T0 + 61)
        detail = wait_for(
            lambda: (d := detail_of(client, "mix"))["closed"] and d["summary"] and d,
            timeout=60,
            what="the window to close",
        )
    rows = [r for r in detail["results"] if r["detector"] == "estimated_performance"]
    accuracy = next(r for r in rows if r["details"]["metric"] == "accuracy")
    assert "re-weighted for the label shift" in accuracy["message"], accuracy["message"]
    shift = accuracy["details"]["estimate"]["label_shift"]
    # BBSE's priors: class c near its 90%, and the weights that moved the probabilities.
    assert shift["classes"] == classes and shift["priors"][2] > 0.75
    assert shift["weights"][2] > 2.0 > 0.5 > shift["weights"][0]
    estimate = detail["summary"]["estimated_performance"]["metrics"]["accuracy"]["value"]
    assert abs(estimate - realized) < 0.03
