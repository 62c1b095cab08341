"""The performance check end to end: spans with class probabilities through the real OTLP
exporter, labels through inferwatch.log_labels, metrics checked against sklearn per window and
over the lifetime, late labels, the coverage and label-delay gates, and user-defined metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn import metrics as skm

import inferwatch
from inferwatch.capture import capture_outputs
from inferwatch.collector import ConfigError, load_config
from inferwatch.frame import Frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, mixed_frames, total_rows, windows

MODEL = "credit"
WINDOW = 60
CLASSIFICATION = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
)


def start(make_collector: Callable[..., Any], performance: dict[str, Any], **models: Any) -> Any:
    clock = FakeClock(T0)
    settings = {"window": WINDOW, "allowed_lateness": 0, "detectors": {"performance": performance}}
    collector = make_collector(clock, models={MODEL: settings, **models})
    return clock, collector


def binary_outputs(rng: np.random.Generator, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(yes) at the middle of one of 1,000 bins, so the binned ROC AUC is exactly sklearn's."""
    latent = (y == "yes") + rng.normal(0, 0.8, y.size)
    p_yes = 1 / (1 + np.exp(-2 * (latent - 0.5)))
    p_yes = (np.clip(np.floor(p_yes * 1000), 0, 999) + 0.5) / 1000
    proba = np.column_stack([1 - p_yes, p_yes])
    return proba, np.where(p_yes > 0.5, "yes", "no")


def multiclass_outputs(rng: np.random.Generator, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(size=(y.size, 3))
    logits[np.arange(y.size), y] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return proba, proba.argmax(axis=1)


def send_window(
    sender: Any,
    index: int,
    rows: int,
    outputs: Callable[[slice], Frame],
    *,
    model: str = MODEL,
    task: str = "classification",
    calls: int = 3,
) -> list[str]:
    """Window ``index``'s rows as a few calls (spans), each with ``outputs(rows_slice)``; the
    rows' prediction ids."""
    rng = np.random.default_rng(index)
    ids = [f"{model}-w{index}-{j}" for j in range(rows)]
    edges = np.linspace(0, rows, calls + 1).astype(int)
    for call, (lo, hi) in enumerate(pairwise(edges.tolist())):
        inputs, _ = mixed_frames(rng, hi - lo)
        start_ns = int((T0 + index * WINDOW + call) * 1e9)
        sender.send(model, "1", start_ns, inputs, ids[lo:hi], outputs(slice(lo, hi)), task=task)
    return ids


def probabilities(proba: np.ndarray, classes: Sequence[Any] | None) -> Callable[[slice], Frame]:
    """What the SDK records for a classifier's predict_proba output on those rows."""

    def outputs(rows: slice) -> Frame:
        part = proba[rows]
        captured = capture_outputs(part, rows=len(part), task="classification", classes=classes)
        assert captured.frame is not None and not captured.problems
        return captured.frame

    return outputs


def values(y_hat: np.ndarray) -> Callable[[slice], Frame]:
    """What the SDK records for a regressor's output (named as the model's output column)."""
    return lambda rows: Frame(len(y_hat[rows]), (numeric("price", y_hat[rows]),))


def log_labels(url: str, labels: dict[str, Any], model: str = MODEL) -> None:
    plain = {pid: v.item() if isinstance(v, np.generic) else v for pid, v in labels.items()}
    report = inferwatch.log_labels(model, plain, endpoint=url)
    assert report.accepted == len(labels)


def evaluated(
    client: httpx.Client,
    model: str,
    done: Callable[[list[dict[str, Any]]], bool],
    what: str,
) -> list[dict[str, Any]]:
    """Every window of ``model``, once all are closed, evaluated and ``done`` holds."""

    def ready() -> list[dict[str, Any]] | None:
        listed = windows(client, model)
        if not listed or not all(w["closed"] and w["evaluated_at"] for w in listed):
            return None
        details = [client.get(f"/v1/models/{model}/windows/{w['id']}").json() for w in listed]
        return details if done(details) else None

    found: list[dict[str, Any]] = wait_for(ready, what=what)
    return found


def performance_results(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = [r for r in detail["results"] if r["detector"] == "performance"]
    assert all(r["feature"] is None for r in rows)
    return {r["details"]["metric"]: r for r in rows}


def labelled_count(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda details: all(d["summary"]["performance"]["labelled"] == n for d in details)


def classification_expected(
    y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: Sequence[Any]
) -> dict[str, float]:
    expected = {"accuracy": skm.accuracy_score(y, pred)}
    for average in ("macro", "weighted"):
        for name, fn in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            expected[f"{name}_{average}"] = fn(y, pred, average=average, zero_division=0)
    expected["log_loss"] = skm.log_loss(y, proba, labels=list(classes))
    expected["roc_auc"] = (
        skm.roc_auc_score(y, proba[:, 1])
        if len(classes) == 2
        else skm.roc_auc_score(y, proba, multi_class="ovr", labels=list(classes))
    )
    return expected


def assert_classification(
    performance: dict[str, Any],
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[Any],
    auc_tolerance: float,
) -> None:
    expected = classification_expected(y, pred, proba, classes)
    for name, value in expected.items():
        tolerance = auc_tolerance if name == "roc_auc" else 1e-12
        assert performance[name] == pytest.approx(value, abs=tolerance), name
    confusion = performance["confusion"]
    as_text = [str(v) for v in y], [str(v) for v in pred]
    np.testing.assert_array_equal(
        confusion["matrix"], skm.confusion_matrix(*as_text, labels=confusion["classes"])
    )
    assert performance["scored"] == performance["with_proba"] == y.size


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_classification_metrics_match_sklearn_per_window_and_over_the_lifetime(
    make_collector: Callable[..., Any], make_sender: Callable[..., Any], kind: str
) -> None:
    clock, collector = start(make_collector, {"metrics": list(CLASSIFICATION)})
    sender = make_sender(collector.url)
    rng = np.random.default_rng(11)
    n, labelled = 300, 240
    binary = kind == "binary"
    classes: list[Any] = ["no", "yes"] if binary else [0, 1, 2]
    sent = []
    for index in range(2):
        y = rng.choice(["no", "yes"], n) if binary else rng.integers(0, 3, n)
        proba, pred = binary_outputs(rng, y) if binary else multiclass_outputs(rng, y)
        ids = send_window(sender, index, n, probabilities(proba, classes if binary else None))
        sent.append((ids, y, pred, proba))
    sender.flush()

    with collector.client() as client:
        wait_for(lambda: total_rows(client, MODEL) == 2 * n, what="rows")
        for ids, y, _, _ in sent:
            log_labels(collector.url, dict(zip(ids[:labelled], y[:labelled], strict=True)))
        clock.advance_to(T0 + 2 * WINDOW + 1)
        details = evaluated(client, MODEL, labelled_count(labelled), "both windows evaluated")
        # ROC AUC comes from 1,000-bin histograms: exact on the binary case's bin-middle
        # scores, within the documented 2e-3 on the multiclass case's raw ones.
        auc_tolerance = 1e-12 if binary else 2e-3
        for detail, (_, y, pred, proba) in zip(details, sent, strict=True):
            performance = detail["summary"]["performance"]
            assert "stats" not in performance
            assert performance["coverage"] == labelled / n
            assert_classification(
                performance,
                y[:labelled],
                pred[:labelled],
                proba[:labelled],
                classes,
                auc_tolerance,
            )
            results = performance_results(detail)
            assert list(results) == list(CLASSIFICATION)
            for name, result in results.items():
                assert result["decision"] == "ok", result
                assert result["score"] == performance[name]
                assert result["details"]["value"] == performance[name]
                assert result["details"]["coverage"] == labelled / n
                assert (result["details"]["labelled"], result["details"]["rows"]) == (labelled, n)

        body = client.get(f"/v1/models/{MODEL}/metrics").json()
    lifetime = body["lifetime"]["all"]
    assert lifetime == body["lifetime"]["versions"]["1"]
    assert (lifetime["windows"], lifetime["rows"], lifetime["labelled"]) == (2, 2 * n, 2 * labelled)
    assert lifetime["coverage"] == labelled / n
    assert_classification(
        lifetime,
        np.concatenate([y[:labelled] for _, y, _, _ in sent]),
        np.concatenate([pred[:labelled] for _, _, pred, _ in sent]),
        np.concatenate([proba[:labelled] for _, _, _, proba in sent]),
        classes,
        auc_tolerance,
    )
    assert "stats" not in lifetime
    assert [w["performance"]["labelled"] for w in body["windows"]] == [labelled, labelled]


def test_regression_metrics_match_sklearn_per_window_and_over_the_lifetime(
    make_collector: Callable[..., Any], make_sender: Callable[..., Any]
) -> None:
    clock, collector = start(make_collector, {"metrics": ["mae", "rmse", "mape", "r2"]})
    sender = make_sender(collector.url)
    rng = np.random.default_rng(12)
    n = 200
    sent = []
    for index in range(2):
        y = 20 + rng.normal(0, 5, n) + 3 * index  # the second window's labels shift
        y_hat = y + rng.normal(0.5 * index, 2, n)
        ids = send_window(sender, index, n, values(y_hat), task="regression")
        sent.append((ids, y, y_hat))
    sender.flush()

    def expected(y: np.ndarray, y_hat: np.ndarray) -> dict[str, float]:
        return {
            "mae": skm.mean_absolute_error(y, y_hat),
            "rmse": float(np.sqrt(skm.mean_squared_error(y, y_hat))),
            "mape": skm.mean_absolute_percentage_error(y, y_hat),
            "r2": skm.r2_score(y, y_hat),
        }

    with collector.client() as client:
        wait_for(lambda: total_rows(client, MODEL) == 2 * n, what="rows")
        for ids, y, _ in sent:
            log_labels(collector.url, dict(zip(ids, y, strict=True)))
        clock.advance_to(T0 + 2 * WINDOW + 1)
        details = evaluated(client, MODEL, labelled_count(n), "both windows evaluated")
        for detail, (_, y, y_hat) in zip(details, sent, strict=True):
            performance = detail["summary"]["performance"]
            results = performance_results(detail)
            for name, value in expected(y, y_hat).items():
                assert performance[name] == pytest.approx(value, rel=1e-12), name
                assert results[name]["score"] == performance[name]
                assert results[name]["decision"] == "ok"
        lifetime = client.get(f"/v1/models/{MODEL}/metrics").json()["lifetime"]["all"]
    y_all = np.concatenate([y for _, y, _ in sent])
    y_hat_all = np.concatenate([y_hat for _, _, y_hat in sent])
    assert lifetime["task"] == "regression" and lifetime["scored"] == 2 * n
    for name, value in expected(y_all, y_hat_all).items():
        # R^2 over both windows uses the merged label variance, not the windows' average.
        assert lifetime[name] == pytest.approx(value, rel=1e-9), name


def test_late_labels_pass_the_coverage_gate_and_move_a_closed_windows_metrics(
    make_collector: Callable[..., Any], make_sender: Callable[..., Any]
) -> None:
    clock, collector = start(
        make_collector,
        {
            "metrics": ["accuracy", "f1_macro"],
            "min_coverage": 0.5,
            "min": {"accuracy": 0.8},
            "critical_min": {"accuracy": 0.6},
        },
    )
    sender = make_sender(collector.url)
    rng = np.random.default_rng(13)
    n = 200
    y = rng.choice(["no", "yes"], n)
    proba, pred = binary_outputs(rng, y)
    ids = send_window(sender, 0, n, probabilities(proba, ["no", "yes"]))
    sender.flush()
    # The labels are made up so that accuracy is known: right for the first 98 rows, wrong after.
    other = {"no": "yes", "yes": "no"}
    truth = [str(p) if j < 98 else other[str(p)] for j, p in enumerate(pred)]

    def window(client: httpx.Client, labelled: int) -> dict[str, Any]:
        (detail,) = evaluated(client, MODEL, labelled_count(labelled), f"{labelled} labels")
        return detail

    with collector.client() as client:
        wait_for(lambda: total_rows(client, MODEL) == n, what="rows")
        log_labels(collector.url, dict(zip(ids[:40], truth[:40], strict=True)))
        clock.advance_to(T0 + WINDOW + 1)
        results = performance_results(window(client, 40))
        for name, result in results.items():
            assert result["decision"] == "not_enough_data"
            assert result["score"] is None and result["details"]["ready"] is False
            assert result["details"]["coverage"] == 40 / n
            assert result["message"] == (
                f"{name}: waiting for labels (40 labels, 20% coverage; evaluated at 50% "
                "coverage with 30+ labels)"
            )

        # Days later: 100 more labels; the closed window is evaluated again, past the gate.
        clock.advance_to(T0 + 3 * 86400)
        log_labels(collector.url, dict(zip(ids[40:140], truth[40:140], strict=True)))
        detail = window(client, 140)
        results = performance_results(detail)
        accuracy = skm.accuracy_score(truth[:140], pred[:140])
        assert accuracy == 0.7
        assert results["accuracy"]["score"] == pytest.approx(accuracy, abs=1e-12)
        assert results["accuracy"]["decision"] == "warning"
        assert results["accuracy"]["threshold"] == 0.8
        assert results["accuracy"]["details"]["threshold"] == {
            "warning": 0.8,
            "critical": 0.6,
            "direction": "below",
            "source": "static",
        }
        assert results["f1_macro"]["score"] == pytest.approx(
            skm.f1_score(truth[:140], pred[:140], average="macro"), abs=1e-12
        )
        assert results["f1_macro"]["decision"] == "ok"
        assert results["accuracy"]["details"]["coverage"] == 140 / n

        # The rest, all wrong: below the critical level.
        log_labels(collector.url, dict(zip(ids[140:], truth[140:], strict=True)))
        results = performance_results(window(client, n))
        assert results["accuracy"]["score"] == pytest.approx(98 / n, abs=1e-12)
        assert results["accuracy"]["decision"] == "alert"
        assert results["accuracy"]["severity"] == "critical"
        lifetime = client.get(f"/v1/models/{MODEL}/metrics").json()["lifetime"]["all"]
        assert lifetime["accuracy"] == pytest.approx(98 / n, abs=1e-12)
        (alert,) = client.get(f"/v1/models/{MODEL}/alerts").json()["alerts"]
        assert alert["check"] == "performance" and alert["state"] == "open"


def test_a_sparsely_labelled_window_is_evaluated_once_its_label_delay_passed(
    make_collector: Callable[..., Any], make_sender: Callable[..., Any]
) -> None:
    clock, collector = start(
        make_collector,
        {"metrics": ["accuracy"], "min_coverage": 0.9, "max_label_delay": "2m"},
    )
    sender = make_sender(collector.url)
    rng = np.random.default_rng(14)
    n, labelled = 200, 60
    y = rng.choice(["no", "yes"], n)
    proba, pred = binary_outputs(rng, y)
    ids = send_window(sender, 0, n, probabilities(proba, ["no", "yes"]))
    sender.flush()
    with collector.client() as client:
        wait_for(lambda: total_rows(client, MODEL) == n, what="rows")
        log_labels(collector.url, dict(zip(ids[:labelled], y[:labelled], strict=True)))
        clock.advance_to(T0 + WINDOW + 1)
        (detail,) = evaluated(client, MODEL, labelled_count(labelled), "the window closed")
        result = performance_results(detail)["accuracy"]
        assert result["decision"] == "not_enough_data"
        assert result["message"] == (
            "accuracy: waiting for labels (60 labels, 30% coverage; evaluated at 90% coverage "
            "with 30+ labels or the window is 120 s old)"
        )
        first = detail["evaluated_at"]

        # No new labels: the delay alone lets the metric through.
        clock.advance_to(T0 + WINDOW + 121)
        (detail,) = evaluated(
            client,
            MODEL,
            lambda d: d[0]["evaluated_at"] != first,
            "the re-evaluation after the label delay",
        )
    result = performance_results(detail)["accuracy"]
    assert result["decision"] == "ok" and result["details"]["ready"] is True
    assert result["score"] == pytest.approx(
        skm.accuracy_score(y[:labelled], pred[:labelled]), abs=1e-12
    )
    assert result["details"]["coverage"] == labelled / n


PROFIT_MODULE = '''
def profit(stats):
    """100 per approved good customer ("yes" predicted and true), -400 per approved bad one."""
    if "yes" not in stats.classes:
        return None
    yes = stats.classes.index("yes")
    approved = stats.confusion[:, yes]
    return 100.0 * float(approved[yes]) - 400.0 * float(approved.sum() - approved[yes])
'''


def test_user_defined_metric_by_import_path_and_a_broken_one(
    make_collector: Callable[..., Any],
    make_sender: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "bizmetrics.py").write_text(PROFIT_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    # A metric that cannot be imported is refused when the settings load, naming it: it would
    # otherwise fail on every window.
    broken = {"detectors": {"performance": {"metrics": ["accuracy", "nosuchpackage.metrics:gain"]}}}
    with pytest.raises(ConfigError) as refused:
        load_config(None, models={"broken": broken})
    assert str(refused.value).startswith(
        "models.broken.detectors.performance: metric 'nosuchpackage.metrics:gain': cannot "
        "import 'nosuchpackage.metrics'"
    )
    clock, collector = start(
        make_collector, {"metrics": ["accuracy", "bizmetrics:profit"], "min": {"profit": 0}}
    )
    sender = make_sender(collector.url)
    rng = np.random.default_rng(15)
    n = 200
    y = rng.choice(["no", "yes"], n)
    proba, pred = binary_outputs(rng, y)
    ids = send_window(sender, 0, n, probabilities(proba, ["no", "yes"]))
    sender.flush()
    cm = skm.confusion_matrix(y, pred, labels=["no", "yes"])
    expected = 100.0 * cm[1, 1] - 400.0 * cm[0, 1]
    with collector.client() as client:
        wait_for(lambda: total_rows(client, MODEL) == n, what="rows")
        log_labels(collector.url, dict(zip(ids, y, strict=True)))
        clock.advance_to(T0 + WINDOW + 1)
        (detail,) = evaluated(client, MODEL, labelled_count(n), "the window evaluated")
        results = performance_results(detail)
        assert list(results) == ["accuracy", "profit"]
        assert results["profit"]["score"] == expected
        assert results["profit"]["decision"] == ("warning" if expected < 0 else "ok")
        body = client.get(f"/v1/models/{MODEL}/metrics").json()
        assert body["windows"][0]["performance"]["profit"] == expected
        assert body["lifetime"]["all"]["profit"] == expected
        assert "metric_errors" not in body
        # Through the API, without keys, naming code is refused before anything is imported
        # (docs/security.md), and nothing stored.
        changed = client.put("/v1/models/broken/config", json=broken)
        assert changed.status_code == 403, changed.text
        assert "names code to import" in changed.json()["error"]
