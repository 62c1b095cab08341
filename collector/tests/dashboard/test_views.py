"""The dashboard's drift views in headless Chromium, against the API's own JSON: the feature list
and view, the histogram against the reference, deep links, the windows table, the time range
and the number formats. Screenshots go to .artifacts/dashboard/ (gitignored)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from .browser import Page
from .conftest import CHROMIUM, DRIFTED_FROM, MODEL

DRIFT_CHECKS = ("univariate_drift", "prediction_drift")
FAILING = ("alert", "warning", "error")
ALPHA = "\N{GREEK SMALL LETTER ALPHA}"


# The page's formats (format.js), written again here to check what it shows. JavaScript rounds
# half up, Python's format half to even: Decimal. toFixed rounds the double's exact value,
# Intl.NumberFormat (fmtScore) its shortest decimal text (0.82875, exactly 0.828749999...,
# is 0.8287 to toFixed and 0.8288 to Intl).


def fixed(x: float, decimals: int, *, shortest: bool = False) -> str:
    step = Decimal(1).scaleb(-decimals)
    exact = Decimal(repr(x)) if shortest else Decimal(x)
    return f"{exact.quantize(step, rounding=ROUND_HALF_UP):,}"


def fmt_p(p: float) -> str:
    if 0 < p < 1e-4:
        mantissa, exponent = f"{p:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return fixed(p, 4)


def fmt_score(x: float) -> str:
    if x == 0:
        return "0"
    digits = 3 - math.floor(math.log10(abs(x)))
    return fixed(x, max(digits, 0), shortest=True)


def fmt_pct(x: float) -> str:
    return f"{fixed(x * 100, 1)}%"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"headless Chromium not found at {CHROMIUM}: `apt-get install -y chromium`")
    with Page(CHROMIUM, tmp_path_factory.mktemp("profile")) as opened:
        opened.resize(1400, 1000)
        yield opened


def open_page(page: Page, url: str, ready: str) -> None:
    """A fresh load of ``url`` (a new hash alone would not reload), waited on until ``ready``."""
    page.goto("about:blank")
    page.wait_until("location.href === 'about:blank'")
    page.goto(url)
    page.wait_until(f"!!({ready})", 60)


def api(collector: Any, path: str, **params: Any) -> Any:
    with collector.client() as client:
        answer = client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()


def last_window(windows: list[dict[str, Any]]) -> dict[str, Any]:
    return max(windows, key=lambda w: w["start"])


def js(expression: str) -> str:
    return json.dumps(expression)


def test_feature_list_is_sorted_by_drift_and_shows_the_apis_numbers(drifted, page, artifacts):
    collector, windows = drifted
    open_page(
        page, f"{collector.url}/#model={MODEL}&version=1", "document.querySelector('.feature-row')"
    )
    rows = page.evaluate(
        "[...document.querySelectorAll('.feature-row')].map(r => "
        "[r.dataset.feature, [...r.cells].map(c => c.innerText)])"
    )
    focus = last_window(windows)
    tested = [r for r in focus["results"] if r["detector"] in DRIFT_CHECKS and r["feature"]]
    expected = sorted(tested, key=lambda r: (r["decision"] not in FAILING, r["p_value"]))
    assert [name for name, _ in rows] == [r["feature"] for r in expected]
    # The drifted feature leads; x0 is the only one.
    assert rows[0][0] == "x0" and "alert" in rows[0][1][1]
    for (_, cells), result in zip(rows, expected, strict=True):
        assert cells[3] == fmt_p(result["p_value"])
        assert cells[2].endswith(fmt_score(result["score"]))
        assert cells[4] == f"{ALPHA} {fmt_p(result['threshold'])}"
        assert cells[5] == fmt_score(result["details"]["effect_sizes"]["psi"])
    drifted_in = sum(
        any(r["feature"] == "x0" and r["decision"] == "alert" for r in w["results"])
        for w in windows
    )
    assert drifted_in == len(windows) - DRIFTED_FROM
    assert rows[0][1][6] == f"{drifted_in} of {len(windows)}"

    page.evaluate("document.querySelector('th[data-sort=name] button').click()")
    names = page.evaluate(
        "[...document.querySelectorAll('.feature-row')].map(r => r.dataset.feature)"
    )
    assert names == sorted(r["feature"] for r in tested)
    page.evaluate("document.querySelector('th[data-sort=psi] button').click()")
    by_psi = page.evaluate(
        "[...document.querySelectorAll('.feature-row')].map(r => r.dataset.feature)"
    )
    psi = {r["feature"]: r["details"]["effect_sizes"]["psi"] for r in tested}
    assert by_psi == sorted(psi, key=lambda f: -psi[f])
    page.screenshot(artifacts / "overview.png")


def test_a_feature_link_opens_its_view_with_thresholds_and_histogram(drifted, page, artifacts):
    collector, windows = drifted
    open_page(
        page,
        f"{collector.url}/#model={MODEL}&version=1&feature=x0",
        "document.querySelector('#feature-view .hist-win')",
    )
    # The link opened where it points: the feature's view at the top, under the bar.
    top = page.evaluate("document.getElementById('feature-view').getBoundingClientRect().top")
    assert page.evaluate("window.scrollY") > 0 and 0 <= top < 100
    page.screenshot(artifacts / "feature-x0.png", full_page=False)

    history = api(
        collector, f"/v1/models/{MODEL}/versions/1/feature-history", feature="x0", role="feature"
    )["windows"]
    assert [w["id"] for w in history] == [w["id"] for w in windows]
    latest = history[-1]["results"][0]
    assert latest["detector"] == "univariate_drift"

    def chart(name: str) -> dict[str, Any]:
        found: dict[str, Any] = page.evaluate(
            f"(() => {{ const c = document.querySelector('#feature-view [data-chart={name}]');"
            " return { latest: c.querySelector('.chart-latest').innerText,"
            " threshold: (c.querySelector('.threshold-label') || {}).textContent || null,"
            " ticks: [...c.querySelectorAll('.axis-y')].map(t => t.textContent),"
            " points: c.querySelectorAll('.hit').length }; })()"
        )
        return found

    p_chart = chart("p-value")
    assert p_chart["latest"] == fmt_p(latest["p_value"])
    assert p_chart["threshold"] == f"{ALPHA} {fmt_p(latest['threshold'])}"
    assert p_chart["ticks"][0] == "1" and all(t.startswith("1e-") for t in p_chart["ticks"][1:])
    assert p_chart["points"] == len(history)
    score_chart = chart("score")
    assert score_chart["latest"] == fmt_score(latest["score"])
    # A drift test's threshold is its significance level: none is drawn on the score's axis.
    assert score_chart["threshold"] is None
    mean_chart = chart("mean")
    assert mean_chart["latest"] == fmt_score(history[-1]["column"]["mean"])

    # The histogram: the newest window against the reference, one pair of bars per bin.
    reference = api(collector, f"/v1/models/{MODEL}/versions/1/reference")["summary"]["columns"]
    ref = next(c for c in reference if c["name"] == "x0" and c["role"] == "feature")

    def histogram_matches(window_id: int) -> None:
        detail = api(collector, f"/v1/models/{MODEL}/windows/{window_id}")
        column = next(c for c in detail["summary"]["columns"]["columns"] if c["name"] == "x0")
        drawn = page.evaluate(
            "(() => { const f = document.querySelector('#feature-view .histogram');"
            " return { title: f.querySelector('.chart-title').innerText,"
            " win: f.querySelectorAll('.hist-win').length,"
            " ref: f.querySelectorAll('.hist-ref').length,"
            " tips: [...f.querySelectorAll('.hit title')].map(t => t.textContent),"
            " x: [...f.querySelectorAll('.axis-x')].map(t => t.textContent),"
            " y: [...f.querySelectorAll('.axis-y')].map(t => t.textContent) }; })()"
        )
        counts, ref_counts = column["bin_counts"], ref["bin_counts"]
        assert drawn["title"] == f"x0 in window #{window_id} ({sum(counts)} rows)"
        assert drawn["win"] == drawn["ref"] == len(counts) == len(column["cuts"]) + 1
        for i, tip in enumerate(drawn["tips"]):
            share, ref_share = counts[i] / sum(counts), ref_counts[i] / sum(ref_counts)
            assert f"window #{window_id} {fmt_pct(share)} ({counts[i]:,} rows)" in tip
            assert f"reference {fmt_pct(ref_share)} ({ref_counts[i]:,} rows)" in tip
        assert drawn["tips"][0].startswith(f"< {fmt_score(column['cuts'][0])}:")
        assert drawn["tips"][-1].startswith(f"≥ {fmt_score(column['cuts'][-1])}:")
        # Axes: bin edges on x (numbers from the cuts), shares on y in one format.
        assert len(drawn["x"]) >= 5
        assert set(drawn["x"]) <= {fmt_score(c) for c in column["cuts"]}
        assert drawn["y"][0] == "0%" and all(re.fullmatch(r"\d+%", t) for t in drawn["y"])

    histogram_matches(history[-1]["id"])
    # Another window chosen: the bars are its own.
    first = history[0]["id"]
    page.evaluate(
        f"(() => {{ const s = document.querySelector('.hist-window'); s.value = '{first}';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    page.wait_until(
        "document.querySelector('#feature-view .histogram .chart-title').innerText"
        f".includes('window #{first} ')"
    )
    histogram_matches(first)
    page.screenshot(artifacts / "feature-x0-first-window.png", full_page=False)

    # A categorical column is drawn as one bar pair per category, named on the axis.
    open_page(
        page,
        f"{collector.url}/#model={MODEL}&version=1&feature=color",
        "document.querySelector('#feature-view .hist-win')",
    )
    names = page.evaluate(
        "[...document.querySelectorAll('#feature-view .histogram .axis-x')].map(t => t.textContent)"
    )
    assert sorted(names) == ["blue", "green", "red"]
    page.screenshot(artifacts / "feature-color.png", full_page=False)


def test_a_window_link_opens_at_the_window_and_reads_each_check_on_its_scale(
    drifted, page, artifacts
):
    collector, windows = drifted
    target = windows[DRIFTED_FROM]
    open_page(
        page,
        f"{collector.url}/#model={MODEL}&version=1&window={target['id']}",
        "document.querySelector('#window-detail .result')",
    )
    top = page.evaluate("document.getElementById('window-detail').getBoundingClientRect().top")
    assert page.evaluate("window.scrollY") > 0 and 0 <= top < 100
    page.screenshot(artifacts / "window-link.png", full_page=False)

    shown = page.evaluate(
        "[...document.querySelectorAll('#window-detail tr.result')].map(r => "
        "[r.dataset.check, r.dataset.feature || null, r.cells[3].innerText, r.cells[4].innerText])"
    )
    by_row = {(check, feature): (reading, score) for check, feature, reading, score in shown}
    results = {(r["detector"], r["feature"]): r for r in target["results"]}
    assert set(by_row) == set(results)

    drift = results[("univariate_drift", "x0")]
    assert drift["decision"] == "alert"
    reading, score = by_row[("univariate_drift", "x0")]
    assert reading == f"p {fmt_p(drift['p_value'])} < {ALPHA} {fmt_p(drift['threshold'])}"
    assert score == f"KS D {fmt_score(drift['score'])}"

    # The outlier check's threshold is a cut on one row's score, not on the share flagged: the
    # share is read against the expected rate, the decision by its p-value against alpha.
    outliers = results[("outliers", None)]
    assert outliers["decision"] == "alert"
    details = outliers["details"]
    reading, score = by_row[("outliers", None)]
    assert reading == (
        f"{fmt_pct(outliers['score'])} flagged vs expected {fmt_pct(details['expected_rate'])}; "
        f"p {fmt_p(outliers['p_value'])} < {ALPHA} {fmt_p(details['alpha'])}"
    )
    assert fmt_score(outliers["threshold"]) not in reading
    assert score == f"rows flagged {fmt_pct(outliers['score'])}"

    error = results[("error_rate", None)]
    assert by_row[("error_rate", None)][0] == (
        f"{fmt_pct(error['score'])} ≤ max {fmt_pct(error['threshold'])}"
    )


def test_windows_table_groups_findings_per_check_without_an_inner_scroll_box(drifted, page):
    collector, windows = drifted
    open_page(
        page, f"{collector.url}/#model={MODEL}&version=1", "document.querySelector('.window-row')"
    )
    rows = page.evaluate(
        "[...document.querySelectorAll('.window-row')].map(r => [Number(r.dataset.window), "
        "[...r.querySelectorAll('.finding-chip')]"
        ".map(c => [c.dataset.check, Number(c.dataset.count)])])"
    )
    assert len(rows) == len(windows)
    by_id = {w["id"]: w for w in windows}
    for window_id, chips in rows:
        failing = [r for r in by_id[window_id]["results"] if r["decision"] in FAILING]
        checks = [check for check, _ in chips]
        assert len(checks) == len(set(checks)) == len({r["detector"] for r in failing})
        for check, count in chips:
            assert count == sum(1 for r in failing if r["detector"] == check and r["feature"])
    assert any(chips for _, chips in rows)
    # Every row is in the page's own flow: no box scrolls inside the windows card.
    boxes = page.evaluate(
        "[...document.querySelectorAll('#windows, #windows *')].filter(e => "
        "['auto', 'scroll'].includes(getComputedStyle(e).overflowY)).length"
    )
    assert boxes == 0


def test_time_range_and_number_formats(drifted, page, artifacts):
    collector, windows = drifted
    open_page(
        page, f"{collector.url}/#model={MODEL}&version=1", "document.querySelector('.window-row')"
    )

    # One format per kind: the accuracy axis stops at 1 and its ticks share their decimals.
    ticks = page.evaluate(
        "[...document.querySelectorAll('[data-chart=accuracy] .axis-y')].map(t => t.textContent)"
    )
    assert float(ticks[-1]) <= 1.0 and len({len(t.split(".")[-1]) for t in ticks}) == 1
    metrics = api(collector, f"/v1/models/{MODEL}/metrics")
    lifetime = metrics["lifetime"]["versions"]["1"]["accuracy"]
    stats = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.stat')].map(s => "
        "[s.querySelector('dt').innerText, s.querySelector('dd').innerText]))"
    )
    assert stats["lifetime accuracy"] == fmt_score(lifetime)
    accuracy_cells = page.evaluate(
        "[...document.querySelectorAll('.window-row')].map(r => r.cells[7].innerText)"
    )
    newest_first = sorted(metrics["windows"], key=lambda w: w["start"], reverse=True)
    assert accuracy_cells == [fmt_score(w["performance"]["accuracy"]) for w in newest_first]
    error_ticks = page.evaluate(
        "[...document.querySelectorAll('[data-chart=error_rate] .axis-y')].map(t => t.textContent)"
    )
    assert all(t.endswith("%") for t in error_ticks)

    # The last hour, counted back from the end of the newest window.
    page.evaluate(
        "(() => { const s = document.getElementById('range'); s.value = '1h';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    last_end = datetime.fromisoformat(last_window(windows)["end"].replace("Z", "+00:00"))
    start = (last_end - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    in_range = api(collector, f"/v1/models/{MODEL}/windows", version="1", start=start)["windows"]
    assert 0 < len(in_range) < len(windows)
    page.wait_until(f"document.querySelectorAll('.window-row').length === {len(in_range)}")
    assert "range=1h" in page.evaluate("location.hash")
    bars = page.evaluate("document.querySelectorAll('[data-chart=rows] .hit').length")
    assert bars == len(in_range)
    page.screenshot(artifacts / "last-hour.png")
    # The range is part of the link.
    open_page(
        page,
        f"{collector.url}/#model={MODEL}&version=1&range=1h",
        f"document.querySelectorAll('.window-row').length === {len(in_range)}",
    )
    assert page.evaluate("document.getElementById('range').value") == "1h"


def test_a_count_axis_has_whole_ticks_each_written_once(drifted, page):
    # A model's first windows hold a few rows: an axis up to 2 rows read 0, 1, 1, 2, 2.
    collector, _ = drifted
    open_page(page, f"{collector.url}/#model={MODEL}&version=1", "document.querySelector('h2')")
    page.evaluate(
        "import('/dashboard/format.js').then(f => { window.countTicks = [2, 10, 1.2, 3000]"
        ".map(hi => { const t = f.axisTicks('count', 0, hi); return t.map(f.tickFormatter("
        "'count', t)); }); })"
    )
    labels = page.wait_until("window.countTicks")
    assert labels == [
        ["0", "1", "2"],
        ["0", "5", "10"],
        ["0", "1"],
        ["0", "1,000", "2,000", "3,000"],
    ]
