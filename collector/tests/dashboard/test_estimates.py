"""Estimated performance in the dashboard, in headless Chromium against the API's own JSON: the
windows table marks each window's estimate ("est") beside the realized value once labels land,
the accuracy chart draws the estimate, its band and the realized line, and a window's detail
gives the estimate with its band and the shift verdict's sentence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import inferwatch
from inferwatch.capture import capture_outputs
from inferwatch.collector import load_config
from inferwatch.frame import Frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import RunningCollector, SpanSender, start_collector, windows

from .browser import Page
from .conftest import CHROMIUM, T0
from .test_views import api, fmt_score, open_page

MODEL = "loans"
CLASSES = ["no", "yes"]
WINDOW = 60
ROWS = 800
BATCH = 100
# The class means: x | y is N(+-MEAN, 1) in both dimensions, the same in every window; a label
# shift changes only how often each class comes.
MEAN = 0.6
REFERENCE_YES = 0.5
# Window 2 is a label shift: four in five rows are "yes".
SHIFTED = 2
SHIFTED_YES = 0.8


def draw(
    rng: np.random.Generator, rows: int, yes_share: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, the Bayes classifier's probabilities under the reference's priors (what the
    model learnt) and the labels."""
    labels = np.where(rng.random(rows) < yes_share, "yes", "no")
    sign = np.where(labels == "yes", 1.0, -1.0)
    x = rng.normal(size=(rows, 2)) + MEAN * sign[:, None]
    yes = 1 / (1 + np.exp(-2 * MEAN * x.sum(axis=1)))
    return x, np.column_stack([1 - yes, yes]), labels


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    """Three windows: 0 clean and labelled, 1 clean without labels, 2 label-shifted without
    labels; all closed and evaluated."""
    db = tmp_path_factory.mktemp("estimates") / "collector.db"
    clock = FakeClock(T0)
    models = {MODEL: {"window": WINDOW, "allowed_lateness": 0}}
    config = load_config(
        None,
        db=f"sqlite:///{db}",
        tick_seconds=0.05,
        checkpoint_interval_seconds=0.2,
        models=models,
    )
    collector = start_collector(config, clock)
    rng = np.random.default_rng(31)
    sender = SpanSender(collector.url)
    try:
        x, proba, labels = draw(rng, 4000, REFERENCE_YES)
        inferwatch.set_reference(
            MODEL,
            "1",
            {"x0": x[:, 0], "x1": x[:, 1]},
            predictions=proba,
            labels=labels,
            task="classification",
            classes=CLASSES,
            endpoint=collector.url,
        )
        truth: dict[str, str] = {}
        for number in range(3):
            x, proba, labels = draw(rng, ROWS, SHIFTED_YES if number == SHIFTED else REFERENCE_YES)
            ids = [f"w{number}-{i}" for i in range(ROWS)]
            if number == 0:
                truth = dict(zip(ids, labels.tolist(), strict=True))
            for part, start in enumerate(range(0, ROWS, BATCH)):
                rows = slice(start, start + BATCH)
                outputs = capture_outputs(
                    proba[rows], rows=BATCH, task="classification", classes=CLASSES
                ).frame
                assert outputs is not None
                inputs = Frame(BATCH, (numeric("x", x[rows], names=["x0", "x1"]),))
                when = T0 + number * WINDOW + 1 + part
                sender.send(MODEL, "1", int(when * 1e9), inputs, ids[rows], outputs)
        sender.flush()
        with collector.client() as client:
            wait_for(
                lambda: sum(w["rows"] for w in windows(client, MODEL)) == 3 * ROWS, what="rows"
            )
            body = {
                "model": MODEL,
                "labels": [{"prediction_id": k, "label": v} for k, v in truth.items()],
            }
            assert client.post("/v1/labels", json=body).is_success
            clock.advance_to(T0 + 3 * WINDOW + 1)
            wait_for(
                lambda: (
                    [(w["main_metric"] or {}).get("scored") for w in windows(client, MODEL)]
                    == [ROWS, 0, 0]
                ),
                timeout=60,
                what="the windows evaluated, the first with its labels",
            )
        yield collector
    finally:
        sender.close()
        collector.stop()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"headless Chromium not found at {CHROMIUM}: `apt-get install -y chromium`")
    with Page(CHROMIUM, tmp_path_factory.mktemp("profile")) as opened:
        opened.resize(1400, 1000)
        yield opened


def listed(collector: RunningCollector) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api(collector, f"/v1/models/{MODEL}/windows")["windows"]
    return found


def test_the_windows_table_marks_estimates_beside_realized_values(scored, page, artifacts):
    shown = listed(scored)
    open_page(page, f"{scored.url}/#model={MODEL}&version=1", "document.querySelector('td.metric')")
    cells = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('tr.window-row')].map(r => "
        "[r.dataset.window, r.querySelector('td.metric').innerText]))"
    )
    header = page.evaluate("[...document.querySelectorAll('#windows th')].map(t => t.innerText)")
    assert "Accuracy" in header
    first, second, third = shown
    for window in shown:
        estimated = window["main_metric"]["estimated"]
        assert estimated is not None and estimated["method"] == "cbpe"
    # Labelled: the realized accuracy, then the estimate made before the labels, marked.
    realized = first["main_metric"]["value"]
    estimate = first["main_metric"]["estimated"]["value"]
    assert cells[str(first["id"])] == f"{fmt_score(realized)} ~{fmt_score(estimate)} est"
    # Unlabelled: the estimate alone, marked.
    for window in (second, third):
        value = window["main_metric"]["estimated"]["value"]
        assert cells[str(window["id"])] == f"~{fmt_score(value)} est"
    page.screenshot(artifacts / "estimates-overview.png")


def test_the_accuracy_chart_draws_the_estimate_its_band_and_the_realized_line(scored, page):
    shown = listed(scored)
    open_page(
        page,
        f"{scored.url}/#model={MODEL}&version=1",
        "document.querySelector('[data-chart=accuracy] .band-estimate')",
    )
    chart = "document.querySelector('[data-chart=accuracy]')"
    latest = page.evaluate(f"{chart}.querySelector('.chart-latest').innerText")
    newest = shown[-1]["main_metric"]["estimated"]["value"]
    realized = shown[0]["main_metric"]["value"]
    assert latest.split() == ["realized", fmt_score(realized), "estimated", fmt_score(newest)]
    # One band over the three windows' estimates, the estimate's line through them, the
    # realized line one point (the labelled window).
    assert page.evaluate(f"{chart}.querySelectorAll('path.band-estimate').length") == 1
    assert page.evaluate(f"{chart}.querySelectorAll('circle.s-est').length") == 3
    assert page.evaluate(f"{chart}.querySelectorAll('circle.s-perf').length") == 1
    tips = page.evaluate(f"[...{chart}.querySelectorAll('rect.hit title')].map(t => t.textContent)")
    for tip, window in zip(tips, shown, strict=True):
        estimated = window["main_metric"]["estimated"]
        band = f"({fmt_score(estimated['lower'])}\u2013{fmt_score(estimated['upper'])})"
        assert f"estimated {fmt_score(estimated['value'])} {band}" in tip


def test_the_window_detail_gives_the_estimate_and_the_shift_verdict(scored, page, artifacts):
    shifted = listed(scored)[SHIFTED]
    detail = api(scored, f"/v1/models/{MODEL}/windows/{shifted['id']}")
    open_page(
        page,
        f"{scored.url}/#model={MODEL}&version=1&window={shifted['id']}",
        "document.querySelector('#window-detail .estimate-fact')",
    )
    facts = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#window-detail .fact')].map(f => "
        "[f.querySelector('dt').innerText, f.querySelector('dd').innerText]))"
    )
    estimate = detail["summary"]["estimated_performance"]
    accuracy = estimate["metrics"]["accuracy"]
    band = f"{fmt_score(accuracy['lower'])}\u2013{fmt_score(accuracy['upper'])}"
    assert facts["estimated accuracy"] == (
        f"~{fmt_score(accuracy['value'])} est (95% band {band}; CBPE on "
        f"{estimate['rows']:,} unlabelled rows), no labels yet"
    )
    for metric in estimate["metrics"]:
        assert f"estimated {metric}" in facts
    # The shift verdict as the API says it: a label shift, BBSE's priors near four in five.
    shift = detail["shift"]
    assert shift["verdict"] == "label_shift", shift["message"]
    assert facts["shift verdict"] == shift["message"]
    yes = next(p for p in shift["priors"] if p["label"] == "yes")
    assert abs(yes["estimated"] - SHIFTED_YES) < 0.08
    page.screenshot(artifacts / "estimates-window.png")

    # The labelled window: the realized value beside the estimate, which labels replaced.
    labelled = listed(scored)[0]
    open_page(
        page,
        f"{scored.url}/#model={MODEL}&version=1&window={labelled['id']}",
        "document.querySelector('#window-detail .realized-beside')",
    )
    fact = page.text("#window-detail .estimate-fact[data-metric=accuracy]")
    realized = labelled["main_metric"]["value"]
    assert fact.endswith(f", realized {fmt_score(realized)} (replaces it)")
