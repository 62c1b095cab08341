"""The per-model series of /metrics on a real collector fed known windows: each has the value the
JSON API gives, the same after a restart, bounded by the feature cap, gone with the model's
windows, and shown only to a key that may read the model."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import numpy as np

from inferwatch.collector.labels.scoring import BUILTIN_METRICS
from inferwatch.collector.runtime.model_figures import FAMILIES
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, RunningCollector, SpanSender, total_rows, windows

from .conftest import MODELS, Scenario
from .helpers import (
    CHURN,
    CREDIT,
    FEATURES,
    ROWS,
    WINDOW,
    WINE,
    Series,
    columns,
    get,
    model_series,
    scrape,
    send_window,
    value,
)


def latest(client: httpx.Client, model: str) -> dict[str, Any]:
    newest = max(windows(client, model), key=lambda w: w["start"])
    detail: dict[str, Any] = get(client, f"/v1/models/{model}/windows/{newest['id']}")
    return detail


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def assert_model_matches_api(series: Series, client: httpx.Client, model: str) -> None:
    window = latest(client, model)
    mv = {"model": model, "version": "1"}
    assert value(series, "inferwatch_model_window_end_timestamp_seconds", **mv) == seconds(
        window["end"]
    )
    assert value(series, "inferwatch_model_window_rows", **mv) == window["rows"] == ROWS
    assert value(series, "inferwatch_model_window_requests", **mv) == window["requests"]
    (listed,) = [m for m in get(client, "/v1/models")["models"] if m["model"] == model]
    (version,) = listed["versions"]
    assert value(series, "inferwatch_model_rows_total", **mv) == version["rows"]
    assert value(series, "inferwatch_model_labelled_rows_total", **mv) == version["labelled"]

    for result in window["results"]:
        per_metric = result["detector"] in ("performance", "estimated_performance")
        subject = result["feature"] or (result["details"].get("metric", "") if per_metric else "")
        row = {**mv, "check": result["detector"], "feature": subject}
        for name, key in (("score", "score"), ("p_value", "p_value"), ("threshold", "threshold")):
            if result[key] is None:
                assert ("inferwatch_model_check_" + name, tuple(sorted(row.items()))) not in series
            else:
                assert value(series, f"inferwatch_model_check_{name}", **row) == result[key]
        if result["decision"] in ("ok", "warning", "alert"):
            failing = float(result["decision"] != "ok")
            assert value(series, "inferwatch_model_check_failing", **row) == failing

    performance = get(client, f"/v1/models/{model}/metrics")["windows"][-1]
    assert performance["id"] == window["id"]
    shown = performance["performance"]
    for metric in BUILTIN_METRICS["classification"]:
        labels = {**mv, "metric": metric, "kind": "realized"}
        key = ("inferwatch_model_performance", tuple(sorted(labels.items())))
        if shown.get(metric) is None:
            assert key not in series
        else:
            assert series[key] == shown[metric]
    assert_estimate_matches_api(series, window, mv)
    assert value(series, "inferwatch_model_label_coverage_ratio", **mv) == window["label_coverage"]
    delay = shown.get("label_delay_seconds") or {}
    for stat in ("p50", "p95", "max"):
        labels = {**mv, "stat": stat}
        key = ("inferwatch_model_label_delay_seconds", tuple(sorted(labels.items())))
        assert series.get(key) == delay.get(stat)

    open_alerts = get(client, f"/v1/models/{model}/alerts", state="open")["alerts"]
    for severity in ("warning", "critical"):
        count = len([a for a in open_alerts if a["severity"] == severity])
        assert value(series, "inferwatch_model_alerts_open", **mv, severity=severity) == count


def assert_estimate_matches_api(series: Series, window: dict[str, Any], mv: dict[str, str]) -> None:
    """kind="estimated" and its band are the window detail's estimated_performance, metric by
    metric; none of them when the window has no trusted estimate."""
    estimate = (window["summary"] or {}).get("estimated_performance") or {}
    metrics = estimate.get("metrics", {}) if estimate.get("trusted") else {}
    shown = {
        dict(labels)["metric"]
        for name, labels in series
        if name.startswith("inferwatch_model_performance")
        and dict(labels).get("kind") == "estimated"
        and dict(labels)["model"] == mv["model"]
    }
    assert shown == set(metrics)
    for metric, figure in metrics.items():
        labels = {**mv, "metric": metric, "kind": "estimated"}
        assert value(series, "inferwatch_model_performance", **labels) == figure["value"]
        assert value(series, "inferwatch_model_performance_lower", **labels) == figure["lower"]
        assert value(series, "inferwatch_model_performance_upper", **labels) == figure["upper"]


def test_each_model_series_has_the_value_the_api_gives(scenario: Scenario) -> None:
    with scenario.collector.client() as client:
        series = scrape(client)
        for model in (WINE, CHURN, CREDIT):
            assert_model_matches_api(series, client, model)
        wine = {"model": WINE, "version": "1"}
        # What the shifted window shows: drift on the shifted features, an alert open for it,
        # realized accuracy of half the rows labelled "yes".
        drift = {**wine, "check": "univariate_drift"}
        assert value(series, "inferwatch_model_check_failing", **drift, feature="alcohol") == 1
        assert value(series, "inferwatch_model_check_failing", **drift, feature="sugar") == 0
        assert value(series, "inferwatch_model_check_p_value", **drift, feature="alcohol") < 1e-6
        assert value(series, "inferwatch_model_label_coverage_ratio", **wine) == 0.5
        accuracy = {**wine, "metric": "accuracy", "kind": "realized"}
        assert 0 < value(series, "inferwatch_model_performance", **accuracy) < 1
        delay = {**wine, "stat": "max"}
        assert value(series, "inferwatch_model_label_delay_seconds", **delay) == 80.0
        assert value(series, "inferwatch_model_alerts_open", **wine, severity="warning") >= 1
        outliers = get(client, f"/v1/models/{WINE}/windows/{latest(client, WINE)['id']}")
        (row,) = [r for r in outliers["results"] if r["detector"] == "outliers"]
        assert value(series, "inferwatch_model_outlier_ratio", **wine) == row["score"]
        expected = row["details"]["expected_rate"]
        assert value(series, "inferwatch_model_outlier_expected_ratio", **wine) == expected
        # Every family has samples: the scenario covers each.
        names = {name.removesuffix("_total") for name, _ in model_series(series)}
        assert names == {family.name for family in FAMILIES}
        # credit's window has no label yet: its accuracy is estimated (the band around it), not
        # realized; wine's reference has neither probabilities nor labels: no estimate.
        credit = {"model": CREDIT, "version": "1", "metric": "accuracy"}
        estimated = value(series, "inferwatch_model_performance", **credit, kind="estimated")
        lower = value(series, "inferwatch_model_performance_lower", **credit, kind="estimated")
        upper = value(series, "inferwatch_model_performance_upper", **credit, kind="estimated")
        assert 0.6 < lower < estimated < upper < 0.9
        realized = (
            "inferwatch_model_performance",
            tuple(sorted({**credit, "kind": "realized"}.items())),
        )
        assert realized not in series
        assert not any(
            dict(labels).get("kind") == "estimated" and ("model", WINE) in labels
            for _, labels in series
        )
        # churn has no reference: no outlier rate.
        key = ("inferwatch_model_outlier_ratio", (("model", CHURN), ("version", "1")))
        assert key not in series
    scenario.first = model_series(series)


def test_windows_open_follows_the_book_without_traffic(scenario: Scenario) -> None:
    """Checkpoints evict closed windows from memory; the gauge said 1 until the next ingest."""
    # The next checkpoint is due once the clock moves.
    scenario.clock.advance_to(scenario.clock() + 1)
    with scenario.collector.client() as client:
        wait_for(lambda: get(client, "/healthz")["open_windows"] == 0, what="windows evicted")
        assert value(scrape(client), "inferwatch_windows_open") == 0


def test_the_same_series_after_a_restart(scenario: Scenario) -> None:
    assert scenario.first is not None
    scenario.restart()
    with scenario.collector.client() as client:
        assert model_series(scrape(client)) == scenario.first


def test_the_feature_cap_keeps_failing_features_first(scenario: Scenario) -> None:
    scenario.restart(metrics_max_features=2)
    try:
        with scenario.collector.client() as client:
            series = scrape(client)
    finally:
        scenario.restart()
    wine = {"model": WINE, "version": "1"}
    shown = {
        dict(labels)["feature"]
        for name, labels in series
        if name == "inferwatch_model_check_score"
        and ("model", WINE) in labels
        and dict(labels)["check"] == "univariate_drift"
    }
    # Of alcohol, acidity, sugar, density, ph and color, the two that drifted (and the
    # check-level row, which is no feature).
    assert shown == {"alcohol", "color", ""}
    # The window has 7 features: the 5 numbers, color and the prediction (prediction_drift's).
    assert value(series, "inferwatch_model_features_omitted", **wine) == len(FEATURES) + 2 - 2


def test_a_window_evaluated_again_shows_its_new_figures(scenario: Scenario) -> None:
    """Late labels: the window is evaluated again, and the next scrape has its new coverage."""
    wine = {"model": WINE, "version": "1"}
    with scenario.collector.client() as client:
        assert value(scrape(client), "inferwatch_model_label_coverage_ratio", **wine) == 0.5
        labels = [{"prediction_id": i, "label": "no"} for i in scenario.unlabelled[:100]]
        response = client.post("/v1/labels", json={"model": WINE, "labels": labels})
        assert response.status_code == 200, response.text
        wait_for(lambda: latest(client, WINE)["label_coverage"] == 0.75, what="the labels")
        coverage = "inferwatch_model_label_coverage_ratio"
        wait_for(
            lambda: value(scrape(client), coverage, **wine) == 0.75,
            what="the window evaluated again",
        )
        assert_model_matches_api(scrape(client), client, WINE)


def test_a_deleted_models_series_are_gone(scenario: Scenario) -> None:
    with scenario.collector.client() as client:
        assert any(("model", CHURN) in labels for _, labels in scrape(client))
        # The collector has no route that deletes a model; its windows leaving the database
        # (by hand here) is what deleting would do, and the next scrape has none of it.
        with sqlite3.connect(scenario.db, timeout=30) as db:
            db.execute("DELETE FROM windows WHERE model = ?", (CHURN,))
        series = scrape(client)
        assert not [key for key in series if ("model", CHURN) in key[1]]
        assert value(series, "inferwatch_model_window_rows", model=WINE, version="1") == ROWS


def test_the_estimate_stays_beside_the_realized_value_as_labels_land(scenario: Scenario) -> None:
    """credit's labels arrive: the realized accuracy joins the estimate, which stays as it was
    (it never reads labels), both as the window detail shows them."""
    credit = {"model": CREDIT, "version": "1", "metric": "accuracy"}
    with scenario.collector.client() as client:
        before = value(scrape(client), "inferwatch_model_performance", **credit, kind="estimated")
        labels = [{"prediction_id": k, "label": v} for k, v in scenario.credit_labels.items()]
        response = client.post("/v1/labels", json={"model": CREDIT, "labels": labels})
        assert response.status_code == 200, response.text
        realized = (
            "inferwatch_model_performance",
            tuple(sorted({**credit, "kind": "realized"}.items())),
        )
        wait_for(lambda: realized in scrape(client), timeout=60, what="the realized accuracy")
        series = scrape(client)
        assert_model_matches_api(series, client, CREDIT)
        assert value(series, "inferwatch_model_performance", **credit, kind="estimated") == before
        window = latest(client, CREDIT)
        accuracy = window["summary"]["estimated_performance"]["metrics"]["accuracy"]
        assert (
            accuracy["realized"] == series[realized] == window["summary"]["performance"]["accuracy"]
        )
        # The series are the point here; the estimate's quality is measured elsewhere
        # (tests/detectors, bench). 400 rows: the realized accuracy's sd is ~0.02.
        assert abs(series[realized] - before) < 0.1


READER = "reader-key-for-wine"
KEYS = [
    {"name": "wine-dashboard", "key": READER, "scopes": ["read"], "models": [WINE]},
    {"name": "writer", "key": "writer-key-0000", "scopes": ["write"]},
    {"name": "ops", "key": "ops-key-00000000", "scopes": ["read"]},
]


def test_with_keys_model_series_need_a_key_that_may_read_the_model(
    make_collector: Callable[..., RunningCollector], make_sender: Callable[..., SpanSender]
) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock, keys=KEYS, models=MODELS)
    sender = make_sender(collector.url, {"authorization": "Bearer writer-key-0000"})
    rng = np.random.default_rng(5)
    for model in (WINE, CHURN):
        send_window(sender, model, 0, columns(rng, 100), model)
    sender.flush()
    reader = {"authorization": f"Bearer {READER}"}
    ops = {"authorization": "Bearer ops-key-00000000"}
    with collector.client(headers=ops) as client:
        for model in (WINE, CHURN):
            wait_for(lambda m=model: total_rows(client, m) == 100, what=f"{model}'s rows")
        clock.advance_to(T0 + WINDOW + 10)
        for model in (WINE, CHURN):
            wait_for(lambda m=model: windows(client, m)[0]["evaluated_at"], what="evaluated")
    with httpx.Client(base_url=collector.url, timeout=30) as anyone:
        # The collector's own series for anyone, as before; no model, check or feature name.
        series = scrape(anyone)
        assert value(series, "inferwatch_ingest_rows_total") == 200
        assert model_series(series) == {}
        for headers, seen in ((reader, {WINE}), (ops, {WINE, CHURN})):
            shown = model_series(scrape(anyone, **headers))
            assert {dict(labels)["model"] for _, labels in shown} == seen
        refused = anyone.get("/metrics", headers={"authorization": "Bearer not-a-key"})
        assert refused.status_code == 401, refused.text
        writer = anyone.get("/metrics", headers={"authorization": "Bearer writer-key-0000"})
        assert writer.status_code == 403, writer.text
