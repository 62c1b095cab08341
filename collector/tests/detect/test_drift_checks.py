"""The drift and outlier checks in a real collector: a reference uploaded with the SDK, spans sent
through the OTLP exporter, labels posted, and every finding read back from the query API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import inferwatch
from inferwatch.collector import ConfigError, Registry, load_config
from inferwatch.collector.detectors import OnlineOutlierDetector, OutlierDetector
from inferwatch.collector.storage.sqlite import open_sqlite
from inferwatch.frame import Frame, categorical, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import (
    T0,
    RunningCollector,
    SpanSender,
    start_collector,
    total_rows,
    windows,
)

MODEL = "wine"
FEATURES = ("alcohol", "acidity", "sugar", "density", "ph")
COLORS = ("red", "white", "rose")
COLOR_SHARES = (0.5, 0.4, 0.1)
WINDOW = 60
ROWS = 600
BATCH = 50
CHECKS = (
    "univariate_drift",
    "multivariate_drift",
    "correlation_drift",
    "prediction_drift",
    "outliers",
)
INJECTED = 8


def table(
    rng: np.random.Generator, rows: int, *, shift: float = 0.0, correlation: float = 0.0
) -> dict[str, Any]:
    """Standard normal features (``alcohol`` moved by ``shift`` sd; ``alcohol`` and ``acidity``
    correlated without changing either's distribution), a color, and the model's prediction."""
    x = rng.normal(size=(rows, len(FEATURES)))
    x[:, 1] = correlation * x[:, 0] + np.sqrt(1 - correlation**2) * x[:, 1]
    x[:, 0] += shift
    shares = (0.2, 0.3, 0.5) if shift else COLOR_SHARES
    columns: dict[str, Any] = {name: x[:, j] for j, name in enumerate(FEATURES)}
    columns["color"] = rng.choice(COLORS, size=rows, p=shares)
    columns["prediction"] = np.where(x[:, 0] > 0, "yes", "no")
    return columns


def frames(columns: dict[str, Any], start: int, stop: int) -> tuple[Frame, Frame]:
    rows = stop - start
    x = np.column_stack([columns[name][start:stop] for name in FEATURES])
    inputs = Frame(
        rows,
        (
            numeric("features", x, names=list(FEATURES)),
            categorical("color", columns["color"][start:stop]),
        ),
    )
    outputs = Frame(rows, (categorical("prediction", columns["prediction"][start:stop]),))
    return inputs, outputs


def send_window(
    sender: SpanSender, number: int, columns: dict[str, Any], prefix: str, model: str = MODEL
) -> list[str]:
    """The window's rows in batches of 50, all inside window ``number``; returns the ids."""
    ids = [f"{prefix}-{i}" for i in range(len(columns["prediction"]))]
    for batch, start in enumerate(range(0, len(ids), BATCH)):
        inputs, outputs = frames(columns, start, start + BATCH)
        when = T0 + number * WINDOW + 1 + batch * 0.5
        sender.send(model, "1", int(when * 1e9), inputs, ids[start : start + BATCH], outputs)
    return ids


def upload_reference(url: str, rng: np.random.Generator, model: str = MODEL) -> None:
    reference = table(rng, 4000)
    labels = np.where(rng.random(4000) < 0.9, reference["prediction"], "no")
    inferwatch.set_reference(
        model,
        "1",
        {name: reference[name] for name in (*FEATURES, "color")},
        predictions=reference["prediction"],
        labels=labels,
        task="classification",
        endpoint=url,
    )


def post_labels(client: httpx.Client, labels: dict[str, str], model: str = MODEL) -> None:
    body = {"model": model, "labels": [{"prediction_id": k, "label": v} for k, v in labels.items()]}
    response = client.post("/v1/labels", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["joined"] == len(labels)


def results_of(client: httpx.Client, window_id: int, model: str = MODEL) -> list[dict[str, Any]]:
    response = client.get(f"/v1/models/{model}/windows/{window_id}")
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def summary(results: list[dict[str, Any]], detector: str) -> dict[str, Any]:
    (row,) = [r for r in results if r["detector"] == detector and r["feature"] is None]
    return row


def drifted(results: list[dict[str, Any]]) -> set[str]:
    return {
        r["feature"]
        for r in results
        if r["detector"] == "univariate_drift" and r["feature"] and r["decision"] == "alert"
    }


@dataclass
class Scenario:
    """Four windows of one run: clean, clean with injected outliers, shifted, correlated."""

    windows: list[dict[str, Any]]
    results: list[list[dict[str, Any]]]
    injected: list[str]
    fits: dict[str, int]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """One collector for the read-only tests below (module scope: the run takes ~10 s)."""
    db = tmp_path_factory.mktemp("drift") / "collector.db"
    clock = FakeClock(T0)
    # The outliers check with its defaults: a whitened isolation forest.
    settings = {"window": WINDOW, "allowed_lateness": 5, "reference": {"policy": "none"}}
    config = load_config(None, db=f"sqlite:///{db}", tick_seconds=0.05, models={MODEL: settings})
    collector = start_collector(config, clock)
    fitted = collector.app.state.collector.fitted
    sender = SpanSender(collector.url)
    rng = np.random.default_rng(7)
    fits_before = {check: fitted.fits[check] for check in (*CHECKS, "label_drift")}
    try:
        upload_reference(collector.url, rng)
        clean = table(rng, ROWS)
        with_outliers = table(rng, ROWS)
        # Rows far off on two features at once: the most unusual rows of their window.
        injected_rows = rng.choice(ROWS, INJECTED, replace=False)
        with_outliers["sugar"][injected_rows] = 7.0 * rng.choice([-1.0, 1.0], INJECTED)
        with_outliers["density"][injected_rows] = -7.0 * rng.choice([-1.0, 1.0], INJECTED)
        shifted = table(rng, ROWS, shift=0.6)
        correlated = table(rng, ROWS, correlation=0.9)
        ids = [
            send_window(sender, n, columns, f"w{n}")
            for n, columns in enumerate((clean, with_outliers, shifted, correlated))
        ]
        sender.flush()
        with collector.client() as client:
            wait_for(lambda: total_rows(client, MODEL) == 4 * ROWS, what="every row")
            # Labels as the reference's in the clean window, all "yes" in the shifted one.
            post_labels(client, dict(zip(ids[0][:300], clean["prediction"][:300], strict=True)))
            post_labels(client, dict.fromkeys(ids[2][:300], "yes"))
            clock.advance_to(T0 + 4 * WINDOW + 10)
            found = wait_for(
                lambda: (
                    len(w := [x for x in windows(client, MODEL) if x["evaluated_at"]]) == 4 and w
                ),
                timeout=60,
                what="four evaluated windows",
            )
            found = sorted(found, key=lambda w: w["start"])
            results = [results_of(client, w["id"]) for w in found]
        fits = {check: fitted.fits[check] - before for check, before in fits_before.items()}
        yield Scenario(found, results, [ids[1][i] for i in injected_rows], fits)
    finally:
        sender.close()
        collector.stop()


def test_clean_windows_raise_no_drift(scenario: Scenario) -> None:
    for results in scenario.results[:2]:
        for detector in (
            "univariate_drift",
            "multivariate_drift",
            "correlation_drift",
            "prediction_drift",
        ):
            assert summary(results, detector)["decision"] == "ok", summary(results, detector)
        assert drifted(results) == set()
        # One row per reference feature (the columns uploaded), each tested.
        features = {r["feature"] for r in results if r["detector"] == "univariate_drift"}
        assert features == {*FEATURES, "color", None}
    # Five numeric features: too narrow for the reconstruction test, which says so.
    wide = summary(scenario.results[0], "reconstruction_drift")
    assert wide["decision"] == "not_enough_data" and "wide inputs" in wide["message"]
    assert wide["details"] == {"features": len(FEATURES)}
    label = summary(scenario.results[0], "label_drift")
    assert label["decision"] == "ok", label
    assert label["details"]["n_window"] == 300


def test_the_shifted_window_names_the_shifted_features(scenario: Scenario) -> None:
    results = scenario.results[2]
    assert drifted(results) == {"alcohol", "color"}
    top = summary(results, "univariate_drift")
    assert top["decision"] == "alert"
    assert "2 of 6 features drifted" in top["message"]
    assert "`alcohol`" in top["message"] and "`color`" in top["message"]
    alcohol = next(r for r in results if r["feature"] == "alcohol")
    assert alcohol["message"].startswith("feature `alcohol` drifted: KS D=")
    assert alcohol["details"]["effect_sizes"]["psi"] > 0.1
    # PSI from the exact bin counts over all 600 rows; KS from the row sample (here all rows).
    assert alcohol["details"]["counts"].endswith("exact bin counts of every row")
    assert alcohol["details"]["n_window"] == ROWS
    color = next(r for r in results if r["feature"] == "color")
    assert color["details"]["n_window"] == ROWS and color["details"]["test"] == "chi2"
    # The model's "yes" rate follows alcohol up; the posted labels are all "yes".
    assert summary(results, "prediction_drift")["decision"] == "alert"
    assert summary(results, "label_drift")["decision"] == "alert"
    assert summary(results, "multivariate_drift")["decision"] == "alert"


def test_a_correlation_change_is_caught_jointly_only(scenario: Scenario) -> None:
    results = scenario.results[3]
    assert drifted(results) == set()
    assert summary(results, "univariate_drift")["decision"] == "ok"
    joint = summary(results, "multivariate_drift")
    assert joint["decision"] == "alert", joint
    assert joint["p_value"] < 0.05 and joint["details"]["method"] == "mmd"
    # The correlation check names the pair, with both correlations.
    pair = summary(results, "correlation_drift")
    assert pair["decision"] == "alert", pair
    assert pair["details"]["pairs"] == len(FEATURES) * (len(FEATURES) - 1) // 2
    (moved,) = [r for r in results if r["detector"] == "correlation_drift" and r["feature"]]
    assert moved["feature"] == "alcohol ~ acidity" and moved["decision"] == "alert"
    assert abs(moved["details"]["reference_correlation"]) < 0.15
    assert moved["details"]["window_correlation"] > 0.8
    assert "alcohol ~ acidity" in pair["message"]


def test_injected_outliers_are_flagged_by_prediction_id(scenario: Scenario) -> None:
    found = summary(scenario.results[1], "outliers")
    assert found["decision"] == "alert"
    details = found["details"]
    assert details["scored_rows"] == details["window_rows"] == ROWS
    # Every injected row is flagged (recall 1), and they rank first: the forest is not as sharp
    # as a covariance model on normal data (Mahalanobis ranks all 8 first, the forest 7 of 8).
    flagged = details["flagged_ids"]
    assert set(scenario.injected) <= set(flagged)
    assert len(set(flagged[:INJECTED]) & set(scenario.injected)) >= INJECTED - 1
    assert details["flagged_total"] == len(flagged) <= INJECTED + 12
    top = {
        f for i, f in zip(flagged, details["top_features"], strict=True) if i in scenario.injected
    }
    assert top <= {"sugar", "density"}
    assert f"'{flagged[0]}'" in found["message"]
    clean = summary(scenario.results[0], "outliers")
    assert clean["decision"] == "ok"
    assert not set(clean["details"]["flagged_ids"]) & set(scenario.injected)


def test_each_reference_is_fitted_once(scenario: Scenario) -> None:
    assert scenario.fits == dict.fromkeys((*CHECKS, "label_drift"), 1)


def test_detector_settings_are_checked_by_name() -> None:
    with pytest.raises(ConfigError, match="alpah"):
        load_config(None, models={"m": {"detectors": {"univariate_drift": {"alpah": 0.1}}}})
    with pytest.raises(ConfigError, match="no check named 'mmd'"):
        load_config(None, models={"m": {"detectors": {"mmd": {}}}})
    config = load_config(
        None, models={"m": {"detectors": {"multivariate_drift": {"method": "classifier"}}}}
    )
    assert config.model("m").check("multivariate_drift").model_dump()["method"] == "classifier"
    # The defaults are the detector's own.
    defaults = Registry.load().checks["outliers"].settings()
    assert defaults.model_dump()["method"] == OutlierDetector().method == "residuals"
    assert defaults.model_dump()["target_fpr"] == OutlierDetector().target_fpr == 0.01


def test_the_online_detector_continues_after_a_restart(
    make_collector: Callable[..., RunningCollector], make_sender, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    settings = {
        "window": WINDOW,
        "allowed_lateness": 5,
        "reference": {"policy": "none"},
        "detectors": {
            "outliers": {"method": "online"},
            "multivariate_drift": {"method": "classifier"},
        },
    }
    rng = np.random.default_rng(5)

    def run_window(number: int) -> dict[str, Any]:
        collector = make_collector(clock, models={"online": settings})
        sender = make_sender(collector.url)
        if number == 0:
            upload_reference(collector.url, rng, "online")
        send_window(sender, number, table(rng, ROWS), f"o{number}", "online")
        sender.flush()
        with collector.client() as client:
            wait_for(lambda: total_rows(client, "online") == (number + 1) * ROWS, what="rows")
            clock.advance_to(T0 + (number + 1) * WINDOW + 10)
            evaluated = wait_for(
                lambda: (
                    len(w := [x for x in windows(client, "online") if x["evaluated_at"]])
                    == number + 1
                    and w
                ),
                what=f"window {number} evaluated",
            )
            latest = max(evaluated, key=lambda w: w["start"])
            results = results_of(client, latest["id"], "online")
        collector.stop()
        return {"results": results, "state": stored_state()}

    def stored_state() -> dict[str, Any]:
        storage = open_sqlite(tmp_path / "collector.db")
        try:
            data = storage.settings.detector_state("online", "1", "outliers")
        finally:
            storage.close()
        assert data is not None
        state: dict[str, Any] = json.loads(data)
        return state

    first = run_window(0)
    second = run_window(1)  # a new collector process state: only the database carries over
    for run, number in ((first, 0), (second, 1)):
        outliers = summary(run["results"], "outliers")
        assert outliers["details"]["online_state"] == "updated"
        assert outliers["details"]["method"] == "online"
        assert run["state"]["through_ms"] == int((T0 + (number + 1) * WINDOW) * 1000)
    inliers = ROWS - summary(second["results"], "outliers")["details"]["flagged_total"]
    before = OnlineOutlierDetector.from_dict(first["state"]["detector"])
    after = OnlineOutlierDetector.from_dict(second["state"]["detector"])
    # The restarted collector folded the second window's inliers into the stored running state.
    assert after.count_ == before.count_ + inliers
    joint = summary(second["results"], "multivariate_drift")
    assert joint["decision"] == "ok" and "held-out AUC" in joint["message"]

    # Late labels make the last window be evaluated again: scored, but not folded in twice.
    collector = make_collector(clock, models={"online": settings})
    with collector.client() as client:
        post_labels(client, {f"o1-{i}": "yes" for i in range(50)}, "online")

        def relabelled() -> list[dict[str, Any]] | None:
            latest = max(windows(client, "online"), key=lambda w: w["start"])
            if latest["labelled"] != 50:
                return None
            results = results_of(client, latest["id"], "online")
            return results if summary(results, "label_coverage")["score"] else None

        again = summary(wait_for(relabelled, what="the re-evaluation"), "outliers")
    collector.stop()
    assert again["details"]["online_state"] == "replayed"
    assert (
        again["details"]["flagged_ids"]
        == summary(second["results"], "outliers")["details"]["flagged_ids"]
    )
    assert stored_state() == second["state"]


def test_integer_classes_are_tested_as_categories(make_collector, make_sender) -> None:
    """A classifier whose outputs are class indices (``model.predict``): ``prediction_drift``
    compares the classes' shares (chi-squared), as the library does with integer classes, not
    the class numbers' distribution (KS)."""
    clock = FakeClock(T0)
    settings = {"window": WINDOW, "allowed_lateness": 5, "reference": {"policy": "none"}}
    collector = make_collector(clock, models={"digits": settings})
    rng = np.random.default_rng(4)
    reference = table(rng, 3000)
    classes = rng.choice(3, size=3000, p=(0.5, 0.3, 0.2))
    inferwatch.set_reference(
        "digits",
        "1",
        {name: reference[name] for name in FEATURES},
        predictions=classes,
        task="classification",
        endpoint=collector.url,
    )
    sender = make_sender(collector.url)
    shares = [(0.5, 0.3, 0.2), (0.3, 0.3, 0.4)]  # clean, then class 2 twice as frequent
    for number, p in enumerate(shares):
        x = rng.normal(size=(ROWS, len(FEATURES)))
        predicted = rng.choice(3, size=ROWS, p=p).astype(float)
        for start in range(0, ROWS, BATCH):
            inputs = Frame(BATCH, (numeric("features", x[start : start + BATCH], list(FEATURES)),))
            outputs = Frame(BATCH, (numeric("prediction", predicted[start : start + BATCH]),))
            ids = [f"d{number}-{start + i}" for i in range(BATCH)]
            when = T0 + number * WINDOW + 1 + start / ROWS
            sender.send("digits", "1", int(when * 1e9), inputs, ids, outputs)
    sender.flush()
    with collector.client() as client:
        wait_for(lambda: total_rows(client, "digits") == 2 * ROWS, what="rows")
        clock.advance_to(T0 + 2 * WINDOW + 10)
        found = wait_for(
            lambda: (
                len(w := [x for x in windows(client, "digits") if x["evaluated_at"]]) == 2 and w
            ),
            what="both windows' evaluations",
        )
        clean, shifted = (results_of(client, w["id"], "digits") for w in found)
    rows = []
    for results in (clean, shifted):
        (row,) = [
            r
            for r in results
            if r["detector"] == "prediction_drift" and r["feature"] == "prediction"
        ]
        rows.append(row)
        assert row["details"]["test"] == "chi2", row
        assert row["details"]["counts"] == "class counts of the row sample"
    assert rows[0]["decision"] == "ok" and rows[1]["decision"] == "alert"
    assert "`prediction`" in rows[1]["message"]


def test_the_same_traffic_to_two_models_gets_the_same_results(make_collector, make_sender) -> None:
    """A window of more rows than its reservoir keeps (10,000) is sampled by the rows' own
    values, not by a generator of each model's: two models (or replicas, or a re-evaluation)
    seeing the same traffic reach the same verdicts."""
    rows, batch = 12_000, 1_000
    clock = FakeClock(T0)
    settings = {"window": WINDOW, "allowed_lateness": 5, "reference": {"policy": "none"}}
    collector = make_collector(clock, models={"blue": settings, "green": settings})
    traffic = table(np.random.default_rng(8), rows, shift=0.05)
    sender = make_sender(collector.url)
    for model in ("blue", "green"):
        upload_reference(collector.url, np.random.default_rng(9), model)
        for start in range(0, rows, batch):
            inputs, outputs = frames(traffic, start, start + batch)
            ids = [f"{model}-{start + i}" for i in range(batch)]  # ids differ, as they would
            when = T0 + 1 + start / rows
            sender.send(model, "1", int(when * 1e9), inputs, ids, outputs)
    sender.flush()
    verdicts = []
    with collector.client() as client:
        for model in ("blue", "green"):
            wait_for(lambda m=model: total_rows(client, m) == rows, what=f"{model}'s rows")
        clock.advance_to(T0 + WINDOW + 10)
        for model in ("blue", "green"):
            (window,) = wait_for(
                lambda m=model: (w := windows(client, m)) and w[0]["evaluated_at"] and w,
                what=f"{model}'s evaluation",
            )
            results = results_of(client, window["id"], model)
            verdict = [
                (r["detector"], r["feature"] or "", r["score"], r["p_value"], r["decision"])
                for r in results
                if r["detector"] in CHECKS
            ]
            verdicts.append(sorted(verdict, key=lambda v: v[:2]))
    assert any(v[0] == "multivariate_drift" for v in verdicts[0])
    assert verdicts[0] == verdicts[1]
