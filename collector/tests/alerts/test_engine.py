"""The alert state machine over the in-memory store (which keeps records as JSON text)."""

from __future__ import annotations

from typing import Any

import pytest

from inferwatch.collector.alerts import (
    Alert,
    AlertEngine,
    AlertEvent,
    AlertPolicy,
    CriticalThreshold,
    MemoryAlertStore,
)
from inferwatch.collector.settings import ConfigError

from .helpers import policy as alert_policy
from .helpers import row, window

MODEL, VERSION = "credit", "1"


class RecordingSink:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[AlertEvent] = []
        self.fail = fail

    def submit(self, event: AlertEvent, policy: AlertPolicy) -> None:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("sink is broken")


def make_engine(
    store: MemoryAlertStore | None = None, **settings: object
) -> tuple[AlertEngine, MemoryAlertStore]:
    store = store or MemoryAlertStore()
    return AlertEngine(store, alert_policy(settings), clock=lambda: 1000.0), store


def kinds(events: list[AlertEvent]) -> list[str]:
    return [e.kind for e in events]


def only_alert(store: MemoryAlertStore) -> Alert:
    alerts = store.find(MODEL)
    assert len(alerts) == 1, alerts
    return alerts[0]


def test_opens_after_n_consecutive_failures_not_before() -> None:
    engine, store = make_engine(consecutive=3)
    assert engine.process(MODEL, VERSION, window(1, row("ks", "alert", "income"))) == []
    assert engine.process(MODEL, VERSION, window(2, row("ks", "alert", "income"))) == []
    assert store.find(MODEL) == []
    events = engine.process(MODEL, VERSION, window(3, row("ks", "alert", "income")))
    assert kinds(events) == ["opened"]
    alert = only_alert(store)
    assert events[0].alert == alert
    assert (alert.check, alert.state, alert.severity) == ("ks", "open", "warning")
    assert alert.features == ("income",)
    assert alert.opened_ms == 1_000_000
    # Stored with its evidence: the three failing windows and their result rows.
    assert [e.window_id for e in alert.evidence] == [1, 2, 3]
    assert alert.evidence[0].result.decision == "alert"
    assert alert.evidence[0].result.score == 0.5
    assert alert.to_json()["evidence"][2]["window_start"] == "1970-01-01T00:03:00.000Z"


def test_by_default_two_failing_windows_open_an_alert_and_a_critical_one_opens_at_once() -> None:
    store = MemoryAlertStore()
    default = AlertPolicy.model_validate({"critical": {"error_rate": {"above": 0.3}}})
    engine = AlertEngine(store, default, clock=lambda: 1000.0)
    assert engine.process(MODEL, VERSION, window(1, row("ks", "alert", "income"))) == []
    events = engine.process(MODEL, VERSION, window(2, row("ks", "alert", "income")))
    assert kinds(events) == ["opened"]
    assert [e.window_id for e in events[0].alert.evidence] == [1, 2]
    # Past the critical threshold a single window is enough; under it, it waits like the rest.
    assert engine.process(MODEL, VERSION, window(3, row("error_rate", "alert", score=0.2))) == []
    events = engine.process(MODEL, "2", window(3, row("error_rate", "alert", score=0.5)))
    assert kinds(events) == ["opened"]
    assert (events[0].alert.severity, events[0].alert.version) == ("critical", "2")


def test_a_pass_breaks_the_run() -> None:
    engine, store = make_engine(consecutive=2)
    for window_id, decision in enumerate(["alert", "ok", "alert"], start=1):
        assert engine.process(MODEL, VERSION, window(window_id, row("ks", decision))) == []
    events = engine.process(MODEL, VERSION, window(4, row("ks", "alert")))
    assert kinds(events) == ["opened"]
    assert [e.window_id for e in only_alert(store).evidence] == [3, 4]


def test_resolves_when_the_check_passes_again() -> None:
    engine, store = make_engine()
    engine.process(MODEL, VERSION, window(1, row("error_rate", "alert")))
    events = engine.process(MODEL, VERSION, window(2, row("error_rate", "ok", score=0.01)))
    assert kinds(events) == ["resolved"]
    alert = only_alert(store)
    assert (alert.state, alert.resolved_ms) == ("resolved", 1_000_000)
    assert alert.evidence[-1].window_id == 2
    assert alert.evidence[-1].result.decision == "ok"
    # A pass with nothing open does nothing.
    assert engine.process(MODEL, VERSION, window(3, row("error_rate", "ok"))) == []


@pytest.mark.parametrize("neutral", ["not_enough_data", "error"])
def test_not_enough_data_neither_opens_resolves_nor_breaks_a_run(neutral: str) -> None:
    engine, store = make_engine(consecutive=2)
    engine.process(MODEL, VERSION, window(1, row("accuracy", "alert")))
    assert engine.process(MODEL, VERSION, window(2, row("accuracy", neutral, score=None))) == []
    assert kinds(engine.process(MODEL, VERSION, window(3, row("accuracy", "alert")))) == ["opened"]
    assert engine.process(MODEL, VERSION, window(4, row("accuracy", neutral, score=None))) == []
    assert only_alert(store).state == "open"
    assert kinds(engine.process(MODEL, VERSION, window(5, row("accuracy", "ok")))) == ["resolved"]


def test_a_check_failing_again_updates_its_alert_instead_of_opening_another() -> None:
    engine, store = make_engine()
    opened = engine.process(MODEL, VERSION, window(1, row("ks", "alert", "age")))
    for window_id in range(2, 6):
        failing = row("ks", "alert", "age", message=f"still drifting in {window_id}")
        assert engine.process(MODEL, VERSION, window(window_id, failing)) == []
    alert = only_alert(store)
    assert alert.id == opened[0].alert.id
    assert (alert.window_id, alert.last_window_id) == (1, 5)
    assert alert.message == "ks failing on 1 feature: age (strongest: still drifting in 5)"
    assert [e.window_id for e in alert.evidence] == [1]


def test_escalation_updates_the_open_alert() -> None:
    engine, store = make_engine()
    first = engine.process(MODEL, VERSION, window(1, row("psi", "warning", "income")))
    assert first[0].alert.severity == "warning"
    events = engine.process(
        MODEL, VERSION, window(2, row("psi", "alert", "income", severity="critical"))
    )
    assert kinds(events) == ["escalated"]
    alert = only_alert(store)
    assert (alert.id, alert.severity, alert.state) == (first[0].alert.id, "critical", "open")
    assert [e.window_id for e in alert.evidence] == [1, 2]
    # It does not step back down while open, and a new failure opens nothing.
    assert engine.process(MODEL, VERSION, window(3, row("psi", "warning", "income"))) == []
    assert only_alert(store).severity == "critical"


def test_a_declared_severity_or_a_configured_critical_threshold_makes_it_critical() -> None:
    engine, store = make_engine(critical={"error_rate": {"above": 0.2}, "ks:*": {"above": 0.5}})
    assert engine.process(MODEL, VERSION, window(1, row("error_rate", "alert", score=0.1)))
    assert only_alert(store).severity == "warning"
    events = engine.process(MODEL, VERSION, window(2, row("error_rate", "alert", score=0.25)))
    assert kinds(events) == ["escalated"]
    # The pattern covers every feature of ks and opens straight at critical.
    events = engine.process(MODEL, VERSION, window(3, row("ks", "alert", "age", score=0.7)))
    assert [(e.kind, e.alert.check, e.alert.severity) for e in events] == [
        ("opened", "ks", "critical")
    ]
    events = engine.process(
        MODEL, VERSION, window(4, row("mmd", "alert", score=0.1, severity="critical"))
    )
    assert events[0].alert.severity == "critical"
    # A declared critical severity does not wait for the run either, and later failures of
    # lower severity do not step it down.
    engine, store = make_engine(consecutive=2)
    critical = row("ks", "alert", severity="critical", message="ks is critical")
    events = engine.process(MODEL, VERSION, window(1, critical))
    assert [(e.kind, e.alert.severity, e.alert.message) for e in events] == [
        ("opened", "critical", "ks is critical")
    ]
    assert engine.process(MODEL, VERSION, window(2, row("ks", "alert"))) == []
    assert only_alert(store).severity == "critical"


class CountingStore(MemoryAlertStore):
    saves = 0

    def save(self, *args: Any, **kwargs: Any) -> list[Alert]:
        self.saves += 1
        return super().save(*args, **kwargs)


def test_reprocessing_the_same_window_is_idempotent() -> None:
    sink = RecordingSink()
    store = CountingStore()
    engine = AlertEngine(store, AlertPolicy(consecutive=2), sink)
    first = window(1, row("ks", "alert", "income"), row("error_rate", "alert"))
    engine.process(MODEL, VERSION, first)
    assert engine.process(MODEL, VERSION, first) == []
    second = window(2, row("ks", "alert", "income"), row("error_rate", "ok"))
    assert kinds(engine.process(MODEL, VERSION, second)) == ["opened"]
    saves = store.saves
    for _ in range(3):
        assert engine.process(MODEL, VERSION, first) == []
        assert engine.process(MODEL, VERSION, second) == []
    assert store.saves == saves  # the same results again are not even written
    assert len(store.find(MODEL)) == 1
    assert kinds(sink.events) == ["opened"]
    # After it resolves, the old failing windows coming again do not reopen it.
    assert kinds(engine.process(MODEL, VERSION, window(3, row("ks", "ok", "income")))) == [
        "resolved"
    ]
    assert engine.process(MODEL, VERSION, first) == []
    assert engine.process(MODEL, VERSION, second) == []
    assert [a.state for a in store.find(MODEL)] == ["resolved"]


def test_late_labels_reevaluating_an_old_window_take_their_place_in_order() -> None:
    engine, store = make_engine()
    engine.process(MODEL, VERSION, window(1, row("accuracy", "ok", score=0.9)))
    engine.process(MODEL, VERSION, window(2, row("accuracy", "not_enough_data", score=None)))
    engine.process(MODEL, VERSION, window(3, row("accuracy", "not_enough_data", score=None)))
    # Labels for window 2 arrive: it fails, and it is the latest decisive window.
    events = engine.process(MODEL, VERSION, window(2, row("accuracy", "alert", score=0.6)))
    assert [(e.kind, e.window_id) for e in events] == [("opened", 2)]
    # Then window 3's labels: it passes, so the check passes now.
    events = engine.process(MODEL, VERSION, window(3, row("accuracy", "ok", score=0.9)))
    assert kinds(events) == ["resolved"]
    # An older window failing after a newer pass opens nothing: the check passes now.
    assert engine.process(MODEL, VERSION, window(1, row("accuracy", "alert", score=0.5))) == []
    assert len(store.find(MODEL)) == 1


def test_an_older_window_passing_does_not_resolve_a_check_failing_now() -> None:
    engine, store = make_engine(consecutive=2)
    engine.process(MODEL, VERSION, window(1, row("ks", "alert")))
    assert kinds(engine.process(MODEL, VERSION, window(2, row("ks", "alert")))) == ["opened"]
    assert engine.process(MODEL, VERSION, window(1, row("ks", "ok"))) == []
    assert only_alert(store).state == "open"
    # ... but an older window turning critical escalates the open alert.
    events = engine.process(MODEL, VERSION, window(1, row("ks", "alert", severity="critical")))
    assert [(e.kind, e.window_id) for e in events] == [("escalated", 1)]


def test_state_survives_a_new_engine_over_the_same_store() -> None:
    store = MemoryAlertStore()
    policy = AlertPolicy(consecutive=2)
    AlertEngine(store, policy).process(MODEL, VERSION, window(1, row("ks", "alert", "age")))
    events = AlertEngine(store, policy).process(
        MODEL, VERSION, window(2, row("ks", "alert", "age"))
    )
    assert kinds(events) == ["opened"]
    opened = events[0].alert
    # What was stored comes back equal, evidence and all.
    assert store.load(MODEL, VERSION).open_alerts == {"ks": opened}
    assert Alert.from_dict(opened.to_dict()) == opened
    history = store.load(MODEL, VERSION).checks["ks"]
    assert [o.evidence.window_id for o in history.observations] == [1, 2]
    events = AlertEngine(store, policy).process(MODEL, VERSION, window(3, row("ks", "ok", "age")))
    assert [(e.kind, e.alert.id) for e in events] == [("resolved", opened.id)]
    assert store.load(MODEL, VERSION).open_alerts == {}


def test_versions_and_checks_are_separate() -> None:
    engine, store = make_engine()
    engine.process(MODEL, "1", window(1, row("ks", "alert", "age"), row("psi", "alert", "income")))
    engine.process(MODEL, "2", window(7, row("ks", "alert", "age")))
    assert sorted((a.version, a.check) for a in store.find(MODEL)) == [
        ("1", "ks"),
        ("1", "psi"),
        ("2", "ks"),
    ]
    events = engine.process(MODEL, "2", window(8, row("ks", "ok", "age")))
    assert [(e.alert.version, e.kind) for e in events] == [("2", "resolved")]
    assert len(store.find(MODEL, "open")) == 2


def test_only_configured_checks_alert() -> None:
    engine, _ = make_engine(checks=["ks:*", "error_rate"])
    results = window(
        1,
        row("ks", "ok"),  # the summary row: "ks" is not "ks:*", so its pass does not count
        row("ks", "alert", "income"),
        row("psi", "alert", "income"),
        row("error_rate", "alert"),
    )
    events = engine.process(MODEL, VERSION, results)
    assert sorted((e.alert.check, e.alert.features) for e in events) == [
        ("error_rate", ()),
        ("ks", ("income",)),
    ]


def test_the_worst_row_of_a_check_in_a_window_counts() -> None:
    engine, _ = make_engine()
    events = engine.process(
        MODEL,
        VERSION,
        window(1, row("ks", "ok"), row("ks", "alert", severity="critical"), row("ks", "alert")),
    )
    assert [(e.alert.severity, e.result.decision, e.result.severity) for e in events] == [
        ("critical", "alert", "critical")
    ]


def test_a_broken_sink_does_not_lose_the_alert() -> None:
    sink = RecordingSink(fail=True)
    store = MemoryAlertStore()
    engine = AlertEngine(store, AlertPolicy(consecutive=1), sink=sink)
    events = engine.process(MODEL, VERSION, window(1, row("ks", "alert")))
    assert kinds(events) == kinds(sink.events) == ["opened"]
    assert only_alert(store).state == "open"


def test_policy_settings_are_validated_with_the_setting_named() -> None:
    policy = alert_policy(
        {
            "consecutive": 3,
            "checks": ["accuracy"],
            "min_severity": "critical",
            "critical": {"accuracy": {"below": 0.7}},
            "retry": {"attempts": 2, "backoff": "100ms", "max_backoff": "2s"},
            "webhooks": [
                {"url": "https://hooks.example.com/services/T0/SECRET", "format": "slack"},
                {"url": "http://127.0.0.1:9/hook", "timeout": "2s"},
            ],
        },
        "models.credit.alerts",
    )
    assert policy.consecutive == 3 and policy.retry.backoff_seconds == 0.1
    assert policy.critical_threshold("accuracy") == CriticalThreshold(below=0.7)
    assert [w.format for w in policy.webhooks] == ["slack", "json"]
    assert policy.webhooks[1].timeout_seconds == 2.0
    # Webhook URLs are shown redacted, and the redacted form is refused if sent back.
    assert "SECRET" not in repr(policy) and "SECRET" not in str(policy.model_dump(mode="json"))
    with pytest.raises(ConfigError, match="redacted form"):
        alert_policy({"webhooks": policy.model_dump(mode="json")["webhooks"]}, "alerts")
    bad = {
        "consecutive": (0, "models.credit.alerts.consecutive must be at least 1, got 0"),
        "min_severity": ("info", "min_severity must be 'warning' or 'critical'"),
        "checks": ("ks", "checks must be a list"),
        "critical": ({"ks": {"over": 1}}, r"critical.ks has unknown setting\(s\) over"),
        "retry": ({"attempts": 0}, "retry.attempts must be at least 1"),
        "webhooks": ([{"url": "ftp://x/SECRET"}], r"webhooks\[0\].url must be an http\(s\) URL"),
        "colour": ("red", r"unknown setting\(s\) colour"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(ConfigError, match=message) as caught:
            alert_policy({key: value}, "models.credit.alerts")
        assert "SECRET" not in str(caught.value)
