"""The OutboxStore contract: a backend keeps deliveries across reopening as the in-memory outbox
does, bounds them oldest first (sparing those being sent), and stores them in the transaction
of the alert change they announce, or not at all."""

from __future__ import annotations

import dataclasses
import json

import pytest

from inferwatch.collector.alerts import AlertDispatcher, AlertEngine, AlertPolicy, WindowResults
from inferwatch.collector.alerts.notify import idempotency_key
from inferwatch.collector.alerts.outbox import Delivery, MemoryOutbox, OutboxStore

from .conftest import Backend
from .helpers import MINUTE_MS, result


def delivery(alert_id: int, due_ms: int = 0) -> Delivery:
    return Delivery(
        key=f"inferwatch-{alert_id}-opened-1-1000",
        alert_id=alert_id,
        event="opened",
        url=f"https://hooks.example/T0/{alert_id}?token=s\u00e9cret",
        body=json.dumps({"alert": {"id": alert_id}, "text": "nul \0 and \ufffe"}),
        timeout_seconds=2.5,
        max_retries=3,
        backoff_seconds=0.5,
        max_backoff_seconds=30.0,
        due_ms=due_ms,
    )


def stored(outbox: OutboxStore) -> list[Delivery]:
    return [dataclasses.replace(d, id=None) for d in outbox.pending(100)]


@pytest.mark.parametrize("store", ["backend", "memory"])
def test_deliveries_wait_until_removed_soonest_due_first_across_reopening(
    store: str, backend: Backend
) -> None:
    storage = backend.open()
    outbox: OutboxStore = storage.outbox if store == "backend" else MemoryOutbox()
    assert outbox.add([delivery(1, due_ms=30), delivery(2, due_ms=10)], limit=10) == []
    assert outbox.add([delivery(3, due_ms=20)], limit=10) == []
    if store == "backend":
        outbox = backend.reopen(storage).outbox
    assert stored(outbox) == [delivery(2, 10), delivery(3, 20), delivery(1, 30)]
    first, *_ = outbox.pending(100)
    assert first.id is not None
    outbox.retry_at(first.id, attempts=1, due_ms=40)
    assert [(d.alert_id, d.attempts) for d in outbox.pending(100)] == [(3, 0), (1, 0), (2, 1)]
    assert [d.alert_id for d in outbox.pending(1, excluding={outbox.pending(1)[0].id or 0})] == [1]
    assert outbox.remove(first.id) and not outbox.remove(first.id)
    assert outbox.count() == 2
    # A removed delivery's id is never given to a new one: a send in flight stays its own.
    outbox.add([delivery(4)], limit=10)
    assert first.id not in {d.id for d in outbox.pending(100)}


@pytest.mark.parametrize("store", ["backend", "memory"])
def test_past_the_limit_the_oldest_are_dropped_but_not_those_being_sent(
    store: str, backend: Backend
) -> None:
    outbox: OutboxStore = backend.open().outbox if store == "backend" else MemoryOutbox()
    outbox.add([delivery(1), delivery(2)], limit=2)
    sending = {d.id for d in outbox.pending(100) if d.alert_id == 1}
    dropped = outbox.add([delivery(3), delivery(4)], limit=2, sparing=sending)
    assert [d.alert_id for d in dropped] == [2]
    assert dropped[0] == dataclasses.replace(delivery(2), id=dropped[0].id)
    assert sorted(d.alert_id for d in outbox.pending(100)) == [1, 3, 4]
    dropped = outbox.add([delivery(5)], limit=2)
    assert [d.alert_id for d in dropped] == [1, 3]


def test_deliveries_are_stored_with_their_alert_change_or_not_at_all(backend: Backend) -> None:
    policy = AlertPolicy.model_validate(
        {"consecutive": 1, "webhooks": [{"url": "https://hooks.example/a"}, {"url": "http://b"}]}
    )
    storage = backend.open()
    # Not started: nothing is sent, the outbox keeps what is stored.
    dispatcher = AlertDispatcher(outbox=storage.outbox)
    engine = AlertEngine(storage.alerts, policy, dispatcher, clock=lambda: 5.0)
    failing = WindowResults(1, 0, MINUTE_MS, [result("alert", 0.2)])
    with pytest.raises(RuntimeError), storage.alerts.together():
        engine.process("m", "1", failing)
        raise RuntimeError("the leader's transaction was refused")
    assert storage.alerts.find("m") == [] and storage.outbox.count() == 0

    (event,) = engine.process("m", "1", failing)
    storage = backend.reopen(storage)
    (alert,) = storage.alerts.find("m")
    deliveries = storage.outbox.pending(10)
    assert sorted(d.url for d in deliveries) == ["http://b", "https://hooks.example/a"]
    for d in deliveries:
        assert (d.key, d.alert_id, d.event, d.attempts) == (
            idempotency_key(event),
            alert.id,
            "opened",
            0,
        )
        body = json.loads(d.body)
        assert (body["event"], body["alert"]["id"]) == ("opened", alert.id)
