"""Alerts end to end: real OTLP spans into a real collector, whose failing error-rate windows
open an alert that is stored, shown by the API and POSTed to webhooks, then resolved; the
alert and each check's run of failures survive restarts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest

from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, RunningCollector, mixed_frames, windows
from inferwatch_testkit.webhooks import QuietHandler, http_server

MODEL = "credit"
PUBLIC_URL = "https://collector.example.com"
SPANS_PER_WINDOW = 12  # error_rate needs at least 10 requests
ROWS_PER_SPAN = 5


@dataclass
class Webhooks:
    """A stand-in for Slack and an ops endpoint (outside the project): records each POST."""

    port: int = 0
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for where, body in self.received if where == path]


@pytest.fixture
def webhooks() -> Iterator[Webhooks]:
    hooks = Webhooks()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with hooks.lock:
                hooks.received.append((self.path, body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    with http_server(Handler) as port:
        hooks.port = port
        yield hooks


def run_window(
    collector: RunningCollector, make_sender: Any, clock: FakeClock, index: int, failing: bool
) -> dict[str, Any]:
    """Send window ``index``'s spans (half of them errors when ``failing``), let it close, and
    return it once evaluated."""
    sender = make_sender(collector.url)
    rng = np.random.default_rng(index)
    start = T0 + 60 * index
    for i in range(SPANS_PER_WINDOW):
        inputs, outputs = mixed_frames(rng, ROWS_PER_SPAN)
        ids = [f"w{index}-{i}-{j}" for j in range(ROWS_PER_SPAN)]
        error = "TimeoutError" if failing and i % 2 == 0 else None
        sender.send(MODEL, "1", int((start + 4 * i) * 1e9), inputs, ids, outputs, error=error)
    sender.flush()
    expected_rows = SPANS_PER_WINDOW * ROWS_PER_SPAN
    with collector.client() as client:

        def this_window() -> dict[str, Any] | None:
            found = [w for w in windows(client, MODEL) if w["start"] == iso(start)]
            return found[0] if found else None

        wait_for(lambda: (w := this_window()) and w["rows"] == expected_rows, what="the rows")
        clock.advance_to(start + 60 + 10)  # the window's end plus its allowed lateness
        window = wait_for(
            lambda: (w := this_window()) and w["closed"] and w["evaluated_at"] and w,
            what=f"window {index} evaluated",
        )
    error_rate = next(r for r in window["results"] if r["detector"] == "error_rate")
    assert error_rate["decision"] == ("alert" if failing else "ok"), error_rate
    result: dict[str, Any] = window
    return result


def iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alerts(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/models/{MODEL}/alerts", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["alerts"]
    return found


def metric(client: httpx.Client, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_failing_windows_open_an_alert_that_is_delivered_and_resolved_across_restarts(
    make_collector, make_sender, webhooks: Webhooks
) -> None:
    clock = FakeClock(T0)
    model_config = {
        "window": 60,
        "allowed_lateness": 10,
        "alerts": {
            "consecutive": 2,
            "checks": ["error_rate"],
            "webhooks": [
                {"url": webhooks.url("/ops?token=s3cret")},
                {"url": webhooks.url("/slack"), "format": "slack"},
            ],
        },
    }

    def start() -> RunningCollector:
        return make_collector(clock, models={MODEL: model_config}, public_url=PUBLIC_URL)

    # One failing window: not yet an alert (two in a row are needed).
    first = start()
    window0 = run_window(first, make_sender, clock, 0, failing=True)
    with first.client() as client:
        assert alerts(client) == []
        shown = client.get(f"/v1/models/{MODEL}/config").json()["alerts"]
        assert shown["consecutive"] == 2
        assert all("s3cret" not in hook["url"] for hook in shown["webhooks"])
    first.stop()

    # The run of failures survives the restart: the second failing window opens the alert.
    second = start()
    window1 = run_window(second, make_sender, clock, 1, failing=True)
    hook_path = "/ops?token=s3cret"
    wait_for(lambda: webhooks.bodies(hook_path) and webhooks.bodies("/slack"), what="webhooks")
    with second.client() as client:
        (alert,) = alerts(client, state="open")
        assert alerts(client, state="resolved") == []
    assert alert["check"] == "error_rate"
    assert (alert["model"], alert["version"]) == (MODEL, "1")
    assert (alert["severity"], alert["state"]) == ("warning", "open")
    assert alert["window_id"] == alert["last_window_id"] == window1["id"]  # the one that opened it
    assert alert["opened_at"] == iso(
        T0 + 60 + 70
    )  # the collector's clock and alert["resolved_at"] is None
    assert "6 of 12 requests failed" in alert["message"]
    assert [e["window_id"] for e in alert["evidence"]] == [window0["id"], window1["id"]]
    assert [e["window_start"] for e in alert["evidence"]] == [iso(T0), iso(T0 + 60)]
    for evidence in alert["evidence"]:
        assert evidence["result"]["decision"] == "alert"
        assert evidence["result"]["score"] == 0.5

    (event,) = webhooks.bodies(hook_path)
    assert event["event"] == "opened"
    assert event["alert"] == alert
    assert event["window_id"] == window1["id"]
    assert event["window_url"] == f"{PUBLIC_URL}/v1/models/{MODEL}/windows/{window1['id']}"
    (slack,) = webhooks.bodies("/slack")
    assert slack["text"].startswith("Warning alert opened: error_rate on model credit version 1")
    assert f"{PUBLIC_URL}/v1/models/{MODEL}/windows/{window1['id']}" in slack["text"]
    assert isinstance(slack["blocks"], list) and slack["blocks"]
    second.stop()

    # The open alert survives the restart, and the first clean window resolves it.
    third = start()
    with third.client() as client:
        assert [a["id"] for a in alerts(client, state="open")] == [alert["id"]]
    window2 = run_window(third, make_sender, clock, 2, failing=False)
    wait_for(lambda: len(webhooks.bodies(hook_path)) == 2, what="the resolved event")
    with third.client() as client:
        assert alerts(client, state="open") == []
        (resolved,) = alerts(client, state="resolved")
        assert resolved["id"] == alert["id"]
        assert resolved["resolved_at"] == iso(T0 + 120 + 70)
        assert resolved["opened_at"] == alert["opened_at"]
        assert resolved["evidence"][-1]["window_id"] == window2["id"]
        assert resolved["evidence"][-1]["result"]["decision"] == "ok"
        wait_for(
            lambda: metric(client, 'inferwatch_alert_deliveries_total{outcome="delivered"}') == 2,
            what="the delivery counter",
        )
        assert metric(client, 'inferwatch_alert_events_total{event="resolved"}') == 1
    event = webhooks.bodies(hook_path)[1]
    assert event["event"] == "resolved" and event["alert"] == resolved
    assert webhooks.bodies("/slack")[1]["text"].startswith("Alert resolved: error_rate")
