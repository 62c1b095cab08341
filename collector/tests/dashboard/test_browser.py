"""The dashboard in headless Chromium against a live collector."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from inferwatch_testkit import wait_for

from .browser import Page, dump_dom
from .conftest import ERROR_WINDOW, MODEL, T0, SpanSender, fill, frames


def _rows(dom: str, css_class: str) -> list[str]:
    """The opening tags of the table rows whose class list has ``css_class``."""
    return [tag for tag in re.findall(r"<tr [^>]*>", dom) if css_class in tag]


def test_page_shows_the_model_its_windows_and_a_window_detail(
    filled, chromium: str, tmp_path: Path
) -> None:
    collector, windows = filled
    failing = windows[ERROR_WINDOW]
    url = f"{collector.url}/#model={MODEL}&version=1&window={failing['id']}"
    dom = dump_dom(chromium, url, tmp_path / "profile")

    assert f'<span class="model-heading">{MODEL}</span>' in dom
    listed = _rows(dom, "window-row")
    assert sorted(int(re.search(r'data-window="(\d+)"', t)[1]) for t in listed) == sorted(
        w["id"] for w in windows
    )
    # Only the window where requests failed is highlighted.
    highlighted = _rows(dom, "has-findings")
    assert len(highlighted) == 1 and f'data-window="{failing["id"]}"' in highlighted[0]
    assert ">25.0%<" in dom  # 3 of its 12 requests failed

    # The detail: every result row, failures first, with the detector's own message.
    assert f"Window #{failing['id']}" in dom
    message = next(r["message"] for r in failing["results"] if r["detector"] == "error_rate")
    assert message in dom
    kinds = [re.search(r"result-(\w+)", tag)[1] for tag in _rows(dom, "result ")]
    api_kinds = [r["decision"] for r in failing["results"]]
    assert len(kinds) == len(api_kinds) and "not_enough_data" in api_kinds
    assert kinds == sorted(kinds, key=["alert", "error", "neutral", "ok"].index)
    assert kinds[:2] == ["alert", "neutral"]
    # Column summaries, drawn against the reference's bins.
    for column in ("x0", "x1", "color", "prediction"):
        assert f'<span class="column-name">{column}</span>' in dom
    assert 'class="mini-ref"' in dom and 'class="mini-win"' in dom
    # The alert opened by the failing window, with its message.
    assert "Alerts: 1 open" in dom and f"opened by window #{failing['id']}" in dom


def test_empty_collector_says_how_to_send_data(make_collector, chromium: str, tmp_path: Path):
    # No model configured either: a configured one is listed before its first prediction.
    collector = make_collector(models={})
    dom = dump_dom(chromium, f"{collector.url}/", tmp_path / "profile")
    assert "No models yet" in dom
    assert f'inferwatch.init(endpoint="{collector.url}")' in dom
    assert "@inferwatch.monitor(" in dom


def test_api_key_pasted_into_the_page_is_used_kept_and_data_refreshes(
    make_collector, chromium: str, tmp_path: Path
) -> None:
    key = "s3cret"
    collector = make_collector(api_keys=[key])
    fill(collector, headers={"Authorization": f"Bearer {key}"})
    with Page(chromium, tmp_path / "profile") as page:
        page.goto(f"{collector.url}/")
        page.wait_until("!document.getElementById('banner').hidden")
        assert "needs an API key" in page.text("#banner")
        assert MODEL not in page.text("#models")

        page.evaluate(
            f"document.getElementById('api-key').value = '{key}';"
            "document.getElementById('key-form').requestSubmit()"
        )
        page.wait_until(f"document.getElementById('models').innerText.includes('{MODEL}')")
        assert page.evaluate("document.getElementById('banner').hidden") is True
        assert page.evaluate("sessionStorage.getItem('inferwatch.apiKey')") == key
        # The field is cleared: the key is not left readable on the screen.
        assert page.evaluate("document.getElementById('api-key').value") == ""

        # The key outlives a reload of the tab.
        page.call("Page.reload")
        page.wait_until(f"document.getElementById('models').innerText.includes('{MODEL}')")

        # New data shows up without touching the page (auto-refresh every 5 s).
        sender = SpanSender(collector.url, {"Authorization": f"Bearer {key}"})
        inputs, outputs = frames(np.random.default_rng(3), 10)
        sender.send("fraud", "7", int(T0 * 1e9), inputs, [f"f{j}" for j in range(10)], outputs)
        sender.close()
        page.wait_until("document.getElementById('models').innerText.includes('fraud')", 20)

        # Forgetting the key locks the page again.
        page.evaluate("document.getElementById('key-forget').click()")
        page.wait_until("!document.getElementById('banner').hidden")
        assert page.evaluate("sessionStorage.getItem('inferwatch.apiKey')") is None


def test_alert_buttons_acknowledge_and_silence_through_the_api(
    make_collector, chromium: str, tmp_path: Path
) -> None:
    collector = make_collector()
    fill(collector)
    with collector.client() as client:
        (alert,) = client.get(f"/v1/models/{MODEL}/alerts", params={"state": "open"}).json()[
            "alerts"
        ]

    def shown() -> dict:
        with collector.client() as client:
            found: dict = client.get(f"/v1/alerts/{alert['id']}").json()
            return found

    with Page(chromium, tmp_path / "profile") as page:
        page.goto(f"{collector.url}/#model={MODEL}&version=1")
        page.wait_until("document.querySelector('.alert-acknowledge') !== null")
        page.evaluate("document.querySelector('.alert-acknowledge').click()")
        # The page shows it acknowledged, and the button is gone.
        page.wait_until(
            "document.querySelector('.alert-acknowledge') === null && "
            "document.querySelector('.alert-acknowledged') !== null"
        )
        assert shown()["acknowledged_at"] is not None

        page.evaluate("document.querySelector('.alert-silence[data-for=\"1h\"]').click()")
        page.wait_until("document.querySelector('.alert-silenced') !== null")
        assert "silenced until" in page.text(".alert-silenced")
        silenced = shown()["silenced_until"]
        assert silenced is not None and silenced > alert["opened_at"]

        page.evaluate("document.querySelector('.alert-unsilence').click()")
        page.wait_until("document.querySelector('.alert-silence') !== null")
        assert shown()["silenced_until"] is None


def test_a_model_whose_window_is_still_open_says_so(make_collector, chromium: str, tmp_path):
    # An hour's window (the default) that traffic is filling now ends in the future.
    collector = make_collector(models={}, limits={"max_clock_skew": "36500d"})
    sender = SpanSender(collector.url)
    inputs, outputs = frames(np.random.default_rng(0), 5)
    sender.send("live", "1", time.time_ns(), inputs, [f"live-{i}" for i in range(5)], outputs)
    sender.close()
    with collector.client() as client:
        wait_for(lambda: client.get("/v1/models").json()["models"], what="the model listed")
    dom = dump_dom(chromium, f"{collector.url}/#model=live", tmp_path / "profile")
    assert "1 version, a window open now" in dom and "in the future" not in dom
