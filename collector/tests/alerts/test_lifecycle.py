"""One alert per check with its features inside, acknowledgement, silences and stale versions,
over the in-memory store and a recording sink."""

from __future__ import annotations

import pytest

from inferwatch.collector.alerts import AlertEngine, AlertEvent, AlertPolicy, MemoryAlertStore
from inferwatch.collector.alerts.engine import AlertNotFound, AlertResolved
from inferwatch.collector.settings import ConfigError

from .helpers import MINUTE_MS, row, window
from .helpers import policy as alert_policy

MODEL, VERSION = "credit", "1"
HOUR_MS = 3_600_000


class Clock:
    def __init__(self, ms: int = 1_000_000) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def submit(self, event: AlertEvent, policy: AlertPolicy) -> None:
        self.events.append(event)

    def sent(self) -> list[str]:
        """What reached the webhooks: the kinds of the events not held back."""
        return [e.kind for e in self.events if e.notify]


def make(**settings: object) -> tuple[AlertEngine, MemoryAlertStore, RecordingSink, Clock]:
    store, sink, clock = MemoryAlertStore(), RecordingSink(), Clock()
    return AlertEngine(store, alert_policy(settings), sink, clock), store, sink, clock


def drift(window_id: int, *drifted: str, clean: tuple[str, ...] = ()) -> list:
    """univariate_drift's rows: its own (failing when a feature drifted), then one per feature;
    smaller p-values for features named first."""
    rows = [row("univariate_drift", "alert" if drifted else "ok", message="summary")]
    for rank, feature in enumerate(drifted):
        message = f"{feature} moved"
        rows.append(
            row("univariate_drift", "alert", feature, p_value=0.001 * (rank + 1), message=message)
        )
    rows += [row("univariate_drift", "ok", feature, p_value=0.5) for feature in clean]
    return rows


def test_one_alert_per_check_lists_its_features_and_follows_them_while_open() -> None:
    engine, store, sink, _ = make()
    results = drift(1, "age", "income", "debt", "tenure", clean=("zip",))
    events = engine.process(MODEL, VERSION, window(1, *results, row("error_rate", "ok")))
    assert [(e.kind, e.alert.check) for e in events] == [("opened", "univariate_drift")]
    (alert,) = store.find(MODEL)
    assert alert.features == ("age", "income", "debt", "tenure")
    assert alert.message == (
        "drift on 4 features: age, income, debt, tenure (strongest: age moved)"
    )
    assert [f.feature for f in alert.findings] == list(alert.features)
    assert alert.to_json()["features"] == ["age", "income", "debt", "tenure"]
    # A feature joins and two leave: the same alert, updated in place, without a notification.
    assert engine.process(MODEL, VERSION, window(2, *drift(2, "zip", "age", "debt"))) == []
    (same,) = store.find(MODEL)
    assert (same.id, same.state, same.last_window_id) == (alert.id, "open", 2)
    assert same.features == ("zip", "age", "debt")
    assert same.message.startswith("drift on 3 features: zip, age, debt")
    # Re-evaluated with other features, the same window updates it too.
    engine.process(MODEL, VERSION, window(2, *drift(2, "debt")))
    assert store.find(MODEL)[0].features == ("debt",)
    # Every feature passing resolves it, keeping what it was about.
    events = engine.process(MODEL, VERSION, window(3, *drift(3, clean=("debt", "age"))))
    assert [e.kind for e in events] == ["resolved"]
    resolved = store.find(MODEL)[0]
    assert (resolved.resolution, resolved.features) == ("passed", ("debt",))
    assert sink.sent() == ["opened", "resolved"]


def test_a_long_feature_list_is_cut_in_the_message_but_kept_in_the_findings() -> None:
    engine, store, _, _ = make()
    features = [f"x{i}" for i in range(12)]
    engine.process(MODEL, VERSION, window(1, *drift(1, *features)))
    (alert,) = store.find(MODEL)
    assert alert.message.startswith("drift on 12 features: x0, x1, x2, x3, x4 and 7 more")
    assert len(alert.findings) == 12


def test_an_acknowledged_alert_sends_no_reminders_but_still_resolves() -> None:
    engine, store, sink, clock = make(repeat_after="1h")
    engine.process(MODEL, VERSION, window(1, row("error_rate", "alert")))
    clock.ms += HOUR_MS
    # Still failing an hour after it was sent: a reminder.
    assert [
        e.kind for e in engine.process(MODEL, VERSION, window(2, row("error_rate", "alert")))
    ] == ["repeated"]
    clock.ms += HOUR_MS // 2
    assert engine.process(MODEL, VERSION, window(3, row("error_rate", "alert"))) == []
    (alert,) = store.find(MODEL)
    acknowledged = engine.acknowledge(alert.id or 0, by="dana")
    assert (acknowledged.acknowledged_by, acknowledged.acknowledged_ms) == ("dana", clock.ms)
    assert acknowledged.to_json()["acknowledged_by"] == "dana"
    # The first acknowledgement stands.
    clock.ms += 1
    assert engine.acknowledge(alert.id or 0) == acknowledged
    assert store.find(MODEL)[0].acknowledged_by == "dana"
    for window_id in range(4, 8):
        clock.ms += HOUR_MS
        assert engine.process(MODEL, VERSION, window(window_id, row("error_rate", "alert"))) == []
    engine.process(MODEL, VERSION, window(8, row("error_rate", "ok")))
    assert sink.sent() == ["opened", "repeated", "resolved"]
    with pytest.raises(AlertResolved):
        engine.acknowledge(alert.id or 0)
    with pytest.raises(AlertNotFound):
        engine.acknowledge(999)


def test_a_silenced_alert_notifies_nothing_until_its_silence_ends() -> None:
    engine, store, sink, clock = make()
    engine.process(MODEL, VERSION, window(1, row("ks", "warning")))
    (alert,) = store.find(MODEL)
    silenced = engine.silence(alert.id or 0, clock.ms + 2 * HOUR_MS)
    assert silenced.to_json()["silenced_until"] is not None
    # It escalates while silenced: logged (an event), not sent.
    events = engine.process(MODEL, VERSION, window(2, row("ks", "alert", severity="critical")))
    assert [(e.kind, e.notify) for e in events] == [("escalated", False)]
    assert engine.sweep({}) == []  # the silence has not ended
    clock.ms += 2 * HOUR_MS
    released = engine.sweep({(MODEL, VERSION): clock.ms})
    assert [(e.kind, e.notify, e.alert.severity) for e in released] == [
        ("escalated", True, "critical")
    ]
    assert engine.sweep({(MODEL, VERSION): clock.ms}) == []  # sent once
    assert store.find(MODEL)[0].silenced_until_ms is None  # the silence is over
    assert sink.sent() == ["opened", "escalated"]


def test_an_alert_opened_and_resolved_within_a_silence_is_never_sent() -> None:
    engine, store, sink, clock = make()
    engine.process(MODEL, VERSION, window(1, row("ks", "warning")))
    (first,) = store.find(MODEL)
    engine.process(MODEL, VERSION, window(2, row("ks", "ok")))
    # A silence set on an open alert holds back what it says; lifting it sends the news.
    engine.process(MODEL, VERSION, window(3, row("ks", "warning")))
    second = store.find(MODEL, "open")[0]
    engine.silence(second.id or 0, clock.ms + HOUR_MS)
    engine.process(MODEL, VERSION, window(4, row("ks", "alert", severity="critical")))
    engine.process(MODEL, VERSION, window(5, row("ks", "ok")))
    assert store.find(MODEL, "resolved")[-1].withheld is None
    assert sink.sent() == ["opened", "resolved", "opened"]
    clock.ms += HOUR_MS
    assert engine.sweep({}) == []
    with pytest.raises(AlertResolved):
        engine.silence(first.id or 0, clock.ms + HOUR_MS)


def test_lifting_a_silence_sends_what_it_held_back() -> None:
    engine, store, sink, clock = make()
    engine.process(MODEL, VERSION, window(1, row("ks", "warning")))
    (alert,) = store.find(MODEL)
    engine.silence(alert.id or 0, clock.ms + HOUR_MS)
    engine.process(MODEL, VERSION, window(2, row("ks", "alert", severity="critical")))
    lifted = engine.silence(alert.id or 0, None)
    assert (lifted.silenced_until_ms, lifted.withheld) == (None, None)
    assert sink.sent() == ["opened", "escalated"]


def test_a_version_without_traffic_resolves_as_stale_and_says_so() -> None:
    engine, store, sink, clock = make(stale_after="7d")
    engine.process(MODEL, VERSION, window(1, row("ks", "alert")))
    engine.process(MODEL, "2", window(1, row("ks", "alert")))
    last_window_end = 2 * MINUTE_MS
    traffic = {(MODEL, VERSION): last_window_end, (MODEL, "2"): last_window_end}
    clock.ms = last_window_end + 7 * 86_400_000 - 1
    assert engine.sweep(traffic) == []
    traffic[MODEL, "2"] = clock.ms  # version 2 still gets traffic
    clock.ms += 1
    events = engine.sweep(traffic)
    assert [(e.kind, e.alert.version, e.alert.resolution) for e in events] == [
        ("resolved", VERSION, "stale")
    ]
    assert "no traffic since 1970-01-01T00:02:00.000Z" in events[0].result.message
    assert [a.version for a in store.find(MODEL, "open")] == ["2"]
    assert sink.sent() == ["opened", "opened", "resolved"]
    # The run of failures went with it: traffic coming back starts afresh.
    assert store.load(MODEL, VERSION).checks["ks"].observations == ()


def test_stale_after_zero_never_resolves() -> None:
    engine, store, _, clock = make(stale_after=0)
    engine.process(MODEL, VERSION, window(1, row("ks", "alert")))
    clock.ms += 365 * 86_400_000
    assert engine.sweep({}) == []
    assert store.find(MODEL)[0].state == "open"


def test_a_silence_in_the_settings_covers_every_alert_of_its_check_and_version() -> None:
    # Until 1970-01-01T01:00Z (the clock starts at 1,000 s).
    until = "1970-01-01T01:00:00Z"
    engine, store, sink, clock = make(
        silences=[{"check": "ks", "version": VERSION, "until": until}]
    )
    engine.process(MODEL, VERSION, window(1, row("ks", "alert"), row("psi", "alert")))
    engine.process(MODEL, "2", window(1, row("ks", "alert")))
    # psi and version 2 are not covered; ks of version 1 is, and it waits for the silence's end.
    assert sorted((e.alert.check, e.alert.version) for e in sink.events if e.notify) == [
        ("ks", "2"),
        ("psi", VERSION),
    ]
    clock.ms = 3_600_000
    released = engine.sweep({})
    assert [(e.kind, e.alert.check, e.alert.version) for e in released] == [
        ("opened", "ks", VERSION)
    ]
    assert len(store.find(MODEL, "open")) == 3


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ({"check": "ks:age", "until": "2030-01-01T00:00:00Z"}, "names a check, not a feature"),
        ({"check": "ks", "until": "2030-01-01T00:00:00"}, "timezone"),
        ({"check": "ks"}, "until"),
    ],
)
def test_a_settings_silence_is_checked(rule: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        alert_policy({"silences": [rule]})
