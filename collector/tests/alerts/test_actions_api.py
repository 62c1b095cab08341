"""The alert action routes of a real collector: what they accept, and each refusal named."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from inferwatch.collector.alerts import WindowResults
from inferwatch_testkit import FakeClock
from inferwatch_testkit.collector import T0, RunningCollector

from .helpers import MINUTE_MS, row

HOUR = 3600


@pytest.fixture
def running(make_collector: Callable[..., RunningCollector]) -> tuple[RunningCollector, int]:
    """A collector with one open alert (put in by its own alert engine) and one resolved."""
    collector = make_collector(FakeClock(T0), models={"credit": {"alerts": {"consecutive": 1}}})
    engine = collector.app.state.collector.alerts
    # Windows that ended just now, so that no alert of theirs is stale.
    for window_id, decision in ((1, "alert"), (2, "ok"), (3, "alert")):
        start_ms = int(T0 * 1000) - (4 - window_id) * MINUTE_MS
        results = [row("error_rate", decision)]
        engine.process(
            "credit", "1", WindowResults(window_id, start_ms, start_ms + MINUTE_MS, results)
        )
    return collector, 2


def test_get_acknowledge_silence_and_lift(running: tuple[RunningCollector, int]) -> None:
    collector, open_id = running
    with collector.client() as client:
        assert client.get(f"/v1/alerts/{open_id}").json()["state"] == "open"
        acknowledged = client.post(f"/v1/alerts/{open_id}/acknowledge")  # no body: anonymous
        assert acknowledged.status_code == 200, acknowledged.text
        assert acknowledged.json()["acknowledged_by"] is None
        assert acknowledged.json()["acknowledged_at"] == "2023-11-14T22:14:00.000Z"  # T0
        until = client.post(f"/v1/alerts/{open_id}/silence", json={"until": "2023-11-15T01:00Z"})
        assert until.status_code == 200, until.text
        assert until.json()["silenced_until"] == "2023-11-15T01:00:00.000Z"
        lifted = client.delete(f"/v1/alerts/{open_id}/silence")
        assert lifted.status_code == 200 and lifted.json()["silenced_until"] is None


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/v1/alerts/99/acknowledge", {}, 404, "there is no alert 99"),
        ("/v1/alerts/1/acknowledge", {}, 409, "alert 1 is resolved"),
        ("/v1/alerts/1/silence", {"for": "1h"}, 409, "only open alerts"),
        ("/v1/alerts/2/acknowledge", {"by": ""}, 400, "by"),
        ("/v1/alerts/2/acknowledge", {"by": "x" * 201}, 400, "by"),
        ("/v1/alerts/2/acknowledge", {"who": "dana"}, 400, "who"),
        ("/v1/alerts/2/acknowledge", ["dana"], 400, "request"),
        ("/v1/alerts/2/silence", {}, 400, 'one of "for"'),
        ("/v1/alerts/2/silence", {"for": "1h", "until": "2030-01-01T00:00Z"}, 400, 'one of "for"'),
        ("/v1/alerts/2/silence", {"for": "soon"}, 400, "for must be a duration"),
        ("/v1/alerts/2/silence", {"for": "0s"}, 400, "in the future"),
        ("/v1/alerts/2/silence", {"until": "2001-01-01T00:00Z"}, 400, "in the future"),
        ("/v1/alerts/2/silence", {"until": "tomorrow"}, 400, "ISO 8601"),
        ("/v1/alerts/2/silence", {"for": "91d"}, 400, "at most 90 days"),
        ("/v1/alerts/2/silence", {"for": 1e308}, 400, "at most 90 days"),
        ("/v1/alerts/2/silence", {"until": "9999-12-31T23:59:59Z"}, 400, "at most 90 days"),
        ("/v1/alerts/2/silence", {"for": True}, 400, "for"),
        ("/v1/alerts/0/silence", {"for": "1h"}, 400, "alert_id"),
    ],
)
def test_refusals_name_what_was_wrong(
    running: tuple[RunningCollector, int],
    path: str,
    body: object,
    status: int,
    says: str,
) -> None:
    collector, _ = running
    with collector.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["error"], response.json()


def test_bodies_are_bounded_and_typed(running: tuple[RunningCollector, int]) -> None:
    collector, open_id = running
    with collector.client() as client:
        big = client.post(
            f"/v1/alerts/{open_id}/silence",
            content=b"{" + b" " * 5000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413 and "4096 bytes" in big.json()["error"]
        text = client.post(
            f"/v1/alerts/{open_id}/silence",
            content=b"for=1h",
            headers={"content-type": "text/plain"},
        )
        assert text.status_code == 415


def test_a_model_silence_is_put_with_the_settings(running: tuple[RunningCollector, int]) -> None:
    collector, _ = running
    silence = {"check": "univariate_drift", "until": "2023-11-15T06:00:00Z"}
    with collector.client() as client:
        put = client.put("/v1/models/credit/config", json={"alerts": {"silences": [silence]}})
        assert put.status_code == 200, put.text
        (shown,) = put.json()["alerts"]["silences"]
        assert (shown["check"], shown["version"]) == ("univariate_drift", None)
        assert shown["until"].startswith("2023-11-15T06:00:00")
        typo = client.put(
            "/v1/models/credit/config",
            json={"alerts": {"silences": [{**silence, "check": "univariate_drfit"}]}},
        )
    assert typo.status_code == 400
    assert "there is no check 'univariate_drfit'" in typo.json()["error"]
