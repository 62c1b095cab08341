"""The AlertStore contract: a backend behaves as the in-memory reference store across restarts,
keeps at most one open alert per check, and saves a window's changes all or nothing."""

from __future__ import annotations

import dataclasses

import pytest

from inferwatch.collector.alerts import (
    Alert,
    AlertEngine,
    AlertPolicy,
    CheckHistory,
    Evidence,
    MemoryAlertStore,
    Observation,
    WindowResults,
)
from inferwatch.collector.alerts.store import AlertStore

from .conftest import Backend
from .helpers import MINUTE_MS, result

# (window, decision, score): a warning run opens, a critical failure escalates, neutral
# windows change nothing, a pass resolves, a re-evaluated old window is judged in order.
SCRIPT = [
    (1, "alert", 0.1),
    (2, "not_enough_data", 0.0),
    (3, "alert", 0.1),
    (4, "alert", 0.5),
    (5, "ok", 0.0),
    (6, "alert", 0.1),
    (7, "alert", 0.1),
    (6, "ok", 0.0),
    (8, "ok", 0.0),
]


def test_the_alert_store_matches_the_memory_store_across_reopening(backend: Backend) -> None:
    policy = AlertPolicy.model_validate(
        {"consecutive": 2, "critical": {"error_rate": {"above": 0.3}}}
    )
    clock = iter(range(1_000, 100_000, 1_000))
    memory = MemoryAlertStore()
    reference = AlertEngine(memory, policy, clock=lambda: next(clock) / 1000)
    seen: list[list[tuple[str, str, str]]] = [[], []]
    for step, (window, decision, score) in enumerate(SCRIPT):
        results = WindowResults(
            window, window * MINUTE_MS, (window + 1) * MINUTE_MS, [result(decision, score)]
        )
        storage = backend.open()  # reopened every window: nothing may live in memory
        engine = AlertEngine(storage.alerts, policy, clock=lambda step=step: step + 1.0)
        expected = reference.process("m", "1", results)
        got = engine.process("m", "1", results)
        seen[0] += [(e.kind, e.alert.severity, e.alert.state) for e in expected]
        seen[1] += [(e.kind, e.alert.severity, e.alert.state) for e in got]
        assert [(e.kind, e.alert.id) for e in got] == [(e.kind, e.alert.id) for e in expected]
        mine = [(a.id, a.state, a.severity, a.evidence) for a in storage.alerts.find("m")]
        theirs = [(a.id, a.state, a.severity, a.evidence) for a in memory.find("m")]
        assert mine == theirs
        assert storage.alerts.find("m", "open") == [
            a for a in storage.alerts.find("m") if a.state == "open"
        ]
        storage.close()
    assert (
        seen[0]
        == seen[1]
        == [
            ("opened", "warning", "open"),
            ("escalated", "critical", "open"),
            ("resolved", "critical", "resolved"),
            ("opened", "warning", "open"),
            ("resolved", "warning", "resolved"),
        ]
    )


def _alert(check: str, version: str = "1") -> Alert:
    evidence = Evidence(1, 0, MINUTE_MS, result("alert", 0.2))
    return Alert(
        None,
        "m",
        version,
        check,
        "warning",
        "open",
        1_000,
        None,
        2_000,
        "failing",
        1,
        1,
        (evidence,),
    )


def _history(window_id: int) -> CheckHistory:
    evidence = Evidence(window_id, 0, MINUTE_MS, result("alert", 0.2))
    return CheckHistory((Observation(evidence, "warning"),))


@pytest.mark.parametrize("store", ["backend", "memory"])
def test_a_check_has_at_most_one_open_alert(store: str, backend: Backend) -> None:
    alerts: AlertStore = backend.open().alerts if store == "backend" else MemoryAlertStore()
    (first,) = alerts.save("m", "1", {"ks": _history(1)}, [_alert("ks")])
    assert first.id is not None
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error
        alerts.save("m", "1", {"ks": _history(2), "psi": _history(2)}, [_alert("ks")])
    # Nothing of the refused save was kept.
    snapshot = alerts.load("m", "1")
    assert snapshot.checks == {"ks": _history(1)} and list(snapshot.open_alerts) == ["ks"]
    assert [a.id for a in alerts.find("m")] == [first.id]
    # Resolving the open one and opening the next in one save is fine, in that order.
    resolved = dataclasses.replace(first, state="resolved", resolved_ms=3_000)
    saved = alerts.save("m", "1", {}, [resolved, _alert("ks")])
    assert [a.state for a in alerts.find("m")] == ["resolved", "open"]
    assert alerts.load("m", "1").open_alerts["ks"] == saved[1]
    # Another version, another model or another check is another alert.
    alerts.save("m", "2", {}, [_alert("ks", "2")])
    alerts.save("m", "1", {}, [_alert("psi")])
    assert len(alerts.find("m", "open")) == 3
    assert alerts.load("n", "1").open_alerts == {}


@pytest.mark.parametrize("store", ["backend", "memory"])
def test_an_alert_comes_back_whole_by_id_and_among_the_open_ones(
    store: str, backend: Backend
) -> None:
    """Findings, acknowledgement, silence and the rest survive a reopening, and every model's
    open alerts are listed."""

    def opened() -> AlertStore:
        return backend.open().alerts if store == "backend" else memory

    memory = MemoryAlertStore()
    finding = result("alert", 0.4, detector="univariate_drift", feature="income")
    full = dataclasses.replace(
        _alert("univariate_drift"),
        findings=(finding,),
        acknowledged_ms=5_000,
        acknowledged_by="dana",
        silenced_until_ms=9_000,
        withheld="escalated",
        notified_ms=4_000,
    )
    (saved,) = opened().save("m", "1", {}, [full])
    other = opened().save("n", "1", {}, [_alert("ks")])[0]
    resolved = dataclasses.replace(_alert("psi"), state="resolved", resolution="stale")
    opened().save("m", "1", {}, [resolved])
    again = opened()
    assert saved.id is not None
    shown = again.get(saved.id)
    assert shown == saved and shown is not None and shown.features == ("income",)
    assert again.get(10_000) is None
    assert [a.id for a in again.open_alerts()] == [saved.id, other.id]
    assert [a.resolution for a in again.find("m", "resolved")] == ["stale"]
