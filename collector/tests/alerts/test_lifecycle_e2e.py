"""The alert lifecycle in a real collector: a reference uploaded with the SDK, drifting windows
sent over OTLP, one alert for the drift check that follows its features, acknowledged and
silenced through the API, and a version that stops getting traffic resolving as stale; what
reaches a JSON and a Slack webhook (a stand-in receiver) at each step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

import inferwatch
from inferwatch.frame import Frame, categorical, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, RunningCollector, SpanSender, windows

from .conftest import WebhookReceiver

MODEL = "wine"
FEATURES = ("alcohol", "acidity", "sugar", "density", "ph")
WINDOW = 60
ROWS = 600
BATCH = 100


def table(rng: np.random.Generator, rows: int, shifted: tuple[str, ...] = ()) -> dict[str, Any]:
    """Standard normal features, those ``shifted`` moved by one sd, and a prediction."""
    columns: dict[str, Any] = {name: rng.normal(size=rows) for name in FEATURES}
    for name in shifted:
        columns[name] = columns[name] + 1.0
    columns["prediction"] = np.where(columns["acidity"] > 0, "yes", "no")
    return columns


def send_window(sender: SpanSender, number: int, columns: dict[str, Any]) -> None:
    for batch, start in enumerate(range(0, ROWS, BATCH)):
        stop = start + BATCH
        x = np.column_stack([columns[name][start:stop] for name in FEATURES])
        inputs = Frame(BATCH, (numeric("features", x, names=list(FEATURES)),))
        outputs = Frame(BATCH, (categorical("prediction", columns["prediction"][start:stop]),))
        ids = [f"w{number}-{i}" for i in range(start, stop)]
        when = T0 + number * WINDOW + 1 + batch
        sender.send(MODEL, "1", int(when * 1e9), inputs, ids, outputs)
    sender.flush()


def iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alerts(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get(f"/v1/models/{MODEL}/alerts")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["alerts"]
    return found


def test_one_drift_alert_acknowledged_silenced_and_resolved_as_stale(
    make_collector: Callable[..., RunningCollector],
    make_sender: Callable[..., SpanSender],
    receiver: WebhookReceiver,
) -> None:
    clock = FakeClock(T0)
    settings = {
        "window": WINDOW,
        "allowed_lateness": 5,
        "reference": {"policy": "none"},
        "alerts": {
            "consecutive": 1,
            # The drift check's own row and its features' (as the default, every check, has).
            "checks": ["univariate_drift", "univariate_drift:*"],
            "repeat_after": "30s",
            "stale_after": "1h",
            "webhooks": [
                {"url": receiver.url("/ops")},
                {"url": receiver.url("/slack"), "format": "slack"},
            ],
        },
    }
    collector = make_collector(clock, models={MODEL: settings})
    sender = make_sender(collector.url)
    rng = np.random.default_rng(11)
    reference = table(rng, 4000)
    inferwatch.set_reference(
        MODEL,
        "1",
        {name: reference[name] for name in FEATURES},
        predictions=reference["prediction"],
        endpoint=collector.url,
    )
    evaluated = 0

    def run(number: int, *shifted: str) -> None:
        nonlocal evaluated
        send_window(sender, number, table(rng, ROWS, shifted))
        with collector.client() as client:
            wait_for(
                lambda: sum(w["rows"] for w in windows(client, MODEL)) == (number + 1) * ROWS,
                what=f"window {number}'s rows",
            )
            clock.advance_to(T0 + (number + 1) * WINDOW + 6)
            evaluated += 1
            wait_for(
                lambda: len([w for w in windows(client, MODEL) if w["evaluated_at"]]) == evaluated,
                timeout=60,
                what=f"window {number} evaluated",
            )

    def sent() -> list[tuple[str, int, str | None]]:
        return [
            (r.body["event"], r.body["alert"]["id"], r.body["alert"]["resolution"])
            for r in receiver.requests("/ops")
        ]

    # Three features drift: one alert, naming them.
    run(0, "alcohol", "sugar", "ph")
    (opened,) = receiver.wait_for(1, "/ops")
    with collector.client() as client:
        (alert,) = alerts(client)
    assert alert["check"] == "univariate_drift" and alert["state"] == "open"
    assert sorted(alert["features"]) == ["alcohol", "ph", "sugar"]
    assert alert["message"].startswith("drift on 3 features: ")
    assert [f["feature"] for f in alert["findings"]] == alert["features"]
    assert opened.body["alert"] == alert
    slack = receiver.wait_for(1, "/slack")[0].body
    facts = " ".join(f["text"] for f in slack["blocks"][1]["fields"])
    assert "*Features*" in facts and "alcohol" in facts

    # Acknowledged: the next failing window, past repeat_after, sends no reminder.
    with collector.client() as client:
        response = client.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"by": "dana"})
        assert response.status_code == 200, response.text
        assert response.json()["acknowledged_by"] == "dana"
        assert response.json()["acknowledged_at"] == iso(clock())
    # Features leave and another joins: the same alert, updated in place.
    run(1, "alcohol", "density")
    with collector.client() as client:
        (current,) = alerts(client)
    assert current["id"] == alert["id"] and sorted(current["features"]) == ["alcohol", "density"]
    assert current["acknowledged_by"] == "dana"

    # Acknowledged alerts still resolve, and say so.
    run(2)
    receiver.wait_for(2, "/ops")
    assert sent() == [("opened", alert["id"], None), ("resolved", alert["id"], "passed")]

    # Silenced for two hours: it resolves in silence.
    run(3, "sugar")
    receiver.wait_for(3, "/ops")
    with collector.client() as client:
        second = alerts(client)[-1]
        response = client.post(f"/v1/alerts/{second['id']}/silence", json={"for": "2h"})
        assert response.status_code == 200, response.text
        assert response.json()["silenced_until"] == iso(clock() + 2 * 3600)
    run(4)
    with collector.client() as client:
        assert alerts(client)[-1]["state"] == "resolved"
    # A third alert is sent; the silenced one's resolution never was.
    run(5, "ph")
    receiver.wait_for(4, "/ops")
    with collector.client() as client:
        third = alerts(client)[-1]
    assert [event for event, _, _ in sent()] == ["opened", "resolved", "opened", "opened"]
    assert sent()[-1][1] == third["id"] != second["id"]

    # No more traffic: an hour after its last window, the open alert resolves as stale.
    clock.advance_to(clock() + 2 * 3600)
    receiver.wait_for(5, "/ops")
    assert sent()[-1] == ("resolved", third["id"], "stale")
    with collector.client() as client:
        assert alerts(client)[-1]["resolution"] == "stale"
    stale_slack = receiver.wait_for(5, "/slack")[-1].body
    assert stale_slack["text"].startswith("Alert resolved as stale: univariate_drift")
