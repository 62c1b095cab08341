"""The ``reconstruction_drift`` check in a real collector: 64-pixel digits uploaded as the
reference with the SDK, clean and noisy windows sent as OTLP spans, the results read back from
the query API; and the check's settings and its answer on narrow inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

import inferwatch
from inferwatch.collector import Registry, load_config
from inferwatch.collector.detect.checks.drift import ReconstructionSettings
from inferwatch.collector.detectors import ReconstructionDrift
from inferwatch.frame import Frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, SpanSender, start_collector, total_rows, windows

MODEL = "digits"
WINDOW = 60
ROWS = 600
BATCH = 100
PIXELS = [f"p{j}" for j in range(64)]


def send_window(sender: SpanSender, number: int, images: np.ndarray) -> None:
    for batch, start in enumerate(range(0, len(images), BATCH)):
        part = images[start : start + BATCH]
        inputs = Frame(len(part), (numeric("pixels", part, names=PIXELS),))
        ids = [f"w{number}-{start + i}" for i in range(len(part))]
        when = T0 + number * WINDOW + 1 + batch * 0.5
        sender.send(MODEL, "1", int(when * 1e9), inputs, ids)


def results_of(client: httpx.Client, window_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/v1/models/{MODEL}/windows/{window_id}")
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def row(results: list[dict[str, Any]], detector: str) -> dict[str, Any]:
    (found,) = [r for r in results if r["detector"] == detector and r["feature"] is None]
    return found


@pytest.fixture(scope="module")
def digit_windows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[list[dict[str, Any]]]]:
    """Results of three windows: clean digits, noise on 10% of them, noise on all of them."""
    db = tmp_path_factory.mktemp("wide") / "collector.db"
    clock = FakeClock(T0)
    settings = {"window": WINDOW, "allowed_lateness": 5, "reference": {"policy": "none"}}
    config = load_config(None, db=f"sqlite:///{db}", tick_seconds=0.05, models={MODEL: settings})
    collector = start_collector(config, clock)
    sender = SpanSender(collector.url)
    rng = np.random.default_rng(3)
    x = load_digits().data / 16.0
    order = rng.permutation(len(x))
    reference, held_out = x[order[:-ROWS]], x[order[-ROWS:]]
    try:
        columns = {name: reference[:, j] for j, name in enumerate(PIXELS)}
        inferwatch.set_reference(MODEL, "1", columns, endpoint=collector.url)
        some = held_out.copy()
        hit = rng.choice(ROWS, ROWS // 10, replace=False)
        some[hit] = np.clip(some[hit] + rng.normal(0, 0.2, (hit.size, 64)), 0, 1)
        every = np.clip(held_out + rng.normal(0, 0.2, held_out.shape), 0, 1)
        for number, images in enumerate((held_out, some, every)):
            send_window(sender, number, images)
        sender.flush()
        with collector.client() as client:
            wait_for(lambda: total_rows(client, MODEL) == 3 * ROWS, what="every row")
            clock.advance_to(T0 + 3 * WINDOW + 10)
            found = wait_for(
                lambda: (
                    len(w := [x for x in windows(client, MODEL) if x["evaluated_at"]]) == 3 and w
                ),
                timeout=60,
                what="three evaluated windows",
            )
            yield [results_of(client, w["id"]) for w in sorted(found, key=lambda w: w["start"])]
    finally:
        sender.close()
        collector.stop()


def test_clean_digits_pass_and_noisy_digits_fail(digit_windows: list[list[dict[str, Any]]]) -> None:
    clean, some, every = (row(results, "reconstruction_drift") for results in digit_windows)
    assert clean["decision"] == "ok", clean
    assert clean["details"]["columns"] == 64 and clean["details"]["sampled_rows"] == ROWS
    # Half of the 1,197 reference rows fit the PCA, the other half is compared.
    assert clean["details"]["n_reference"] == 1197 - 1197 // 2
    assert 0.4 < clean["details"]["auc"] < 0.6
    for noisy in (some, every):
        assert noisy["decision"] == "alert", noisy
        assert "the rows' structure drifted" in noisy["message"]
    assert every["details"]["auc"] > 0.99
    # Its p-value joins the model-level correction across the checks.
    assert every["details"]["family"]["p_value"] <= 0.05
    assert clean["details"]["family"]["checks"] >= 4


def test_the_other_drift_checks_hold_on_clean_digits(
    digit_windows: list[list[dict[str, Any]]],
) -> None:
    clean = digit_windows[0]
    for detector in ("univariate_drift", "multivariate_drift", "correlation_drift", "outliers"):
        assert row(clean, detector)["decision"] == "ok", row(clean, detector)
    # Pixels that are nearly always blank are not paired (their correlations' null is not normal).
    assert row(clean, "correlation_drift")["details"]["features_paired"] < 64


def test_settings_default_to_the_detectors() -> None:
    settings = Registry.load().checks["reconstruction_drift"].settings()
    detector = ReconstructionDrift()
    dumped = settings.model_dump()
    for key in ("n_components", "alpha", "min_samples", "random_state"):
        assert dumped[key] == getattr(detector, key)
    assert dumped["min_features"] == 51 and dumped["enabled"] is True
    config = load_config(
        None, models={"m": {"detectors": {"reconstruction_drift": {"n_components": 12}}}}
    )
    chosen = config.model("m").check("reconstruction_drift")
    assert isinstance(chosen, ReconstructionSettings)
    assert chosen.detector().n_components == 12
