"""Delivery to a real webhook receiver on 127.0.0.1: payloads, retries, timeouts, the queue bound,
and logs. Waits are on conditions (requests received, the dispatcher drained), never sleeps."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import time
from datetime import datetime

import pytest

from inferwatch.collector.alerts import (
    Alert,
    AlertDispatcher,
    AlertEngine,
    AlertEvent,
    AlertPolicy,
    MemoryAlertStore,
    RetryPolicy,
    Webhook,
)
from inferwatch.collector.alerts.payloads import slack_payload
from inferwatch.collector.detectors.result import Severity

from .conftest import WebhookReceiver
from .helpers import row, window

FAST_RETRY = RetryPolicy(attempts=4, backoff_seconds=0.01, max_backoff_seconds=0.05)


def make_event(
    alert_id: int, severity: Severity = "warning", message: str = "KS 0.3"
) -> AlertEvent:
    alert = Alert(
        alert_id,
        "credit",
        "1",
        "ks:income",
        severity,
        "open",
        0,
        None,
        0,
        message,
        1,
        1,
        (),
    )
    return AlertEvent("opened", alert, 1, row("ks", "alert", "income"))


async def wait_for(receiver: WebhookReceiver, count: int, path: str) -> list[dict]:
    received = await asyncio.to_thread(receiver.wait_for, count, path)
    return [r.body for r in received]


async def test_generic_and_slack_payloads_reach_their_webhooks(receiver: WebhookReceiver) -> None:
    policy = AlertPolicy(
        consecutive=1,
        webhooks=(
            Webhook(url=receiver.url("/generic")),
            Webhook(url=receiver.url("/slack"), format="slack"),
        ),
        retry=FAST_RETRY,
    )
    async with AlertDispatcher(base_url="http://collector.example:4318/") as dispatcher:
        engine = AlertEngine(MemoryAlertStore(), policy, dispatcher)
        failing = row("ks", "alert", "income", score=0.31, message="KS 0.31 > 0.1 on income")
        # The collector evaluates windows in a worker thread, so submit runs off the loop.
        await asyncio.to_thread(engine.process, "credit/eu", "3", window(12, failing))
        generic = (await wait_for(receiver, 1, "/generic"))[0]
        slack = (await wait_for(receiver, 1, "/slack"))[0]

        assert generic["event"] == "opened"
        alert = generic["alert"]
        assert {k: alert[k] for k in ("model", "version", "check", "severity", "state")} == {
            "model": "credit/eu",
            "version": "3",
            "check": "ks",
            "severity": "warning",
            "state": "open",
        }
        assert isinstance(alert["id"], int)
        assert (
            alert["message"]
            == "ks failing on 1 feature: income (strongest: KS 0.31 > 0.1 on income)"
        )
        assert alert["features"] == ["income"]
        assert [f["message"] for f in alert["findings"]] == ["KS 0.31 > 0.1 on income"]
        assert (alert["acknowledged_at"], alert["silenced_until"], alert["resolution"]) == (
            None,
            None,
            None,
        )
        assert datetime.fromisoformat(alert["opened_at"]).tzinfo is not None
        assert [(e["window_id"], e["result"]["score"]) for e in alert["evidence"]] == [(12, 0.31)]
        url = "http://collector.example:4318/v1/models/credit%2Feu/windows/12"
        assert generic["window_url"] == url

        text = slack["text"]
        for part in ("credit/eu", "version 3", "ks on", "Warning", "KS 0.31 &gt; 0.1", url):
            assert part in text, (part, text)
        assert [b["type"] for b in slack["blocks"]] == ["section", "section", "section", "context"]
        facts = " ".join(f["text"] for f in slack["blocks"][1]["fields"])
        assert all(v in facts for v in ("credit/eu", "3", "ks", "warning", "*Features*\nincome"))
        assert f"<{url}|window 12>" in slack["blocks"][3]["elements"][0]["text"]

        # The alert's message, which quotes the failing result it describes.
        assert generic["message"] == generic["alert"]["message"]
        assert "KS 0.31 > 0.1 on income" in generic["message"]

        passing = row("ks", "ok", "income", score=0.02, message="KS 0.02 <= 0.1 on income")
        await asyncio.to_thread(engine.process, "credit/eu", "3", window(13, passing))
        resolved = (await wait_for(receiver, 2, "/generic"))[1]
        assert (resolved["event"], resolved["alert"]["state"]) == ("resolved", "resolved")
        assert resolved["alert"]["id"] == alert["id"]
        # A resolve quotes the passing result it describes, not the last failure.
        assert resolved["message"] == "KS 0.02 <= 0.1 on income"
        resolved_slack = (await wait_for(receiver, 2, "/slack"))[1]
        assert "Alert resolved" in resolved_slack["text"]
        assert "KS 0.02 &lt;= 0.1 on income" in resolved_slack["text"]
        assert "0.31" not in resolved_slack["text"]
        assert "0.31" not in json.dumps(resolved_slack["blocks"])
        assert await dispatcher.drain(20)
        assert dispatcher.stats.delivered == 4


async def test_retries_server_errors_then_delivers(receiver: WebhookReceiver) -> None:
    receiver.plans["/flaky"] = [500, 503, 429]
    policy = AlertPolicy(
        consecutive=1, webhooks=(Webhook(url=receiver.url("/flaky")),), retry=FAST_RETRY
    )
    async with AlertDispatcher() as dispatcher:
        dispatcher.submit(make_event(1), policy)
        assert await dispatcher.drain(20)
        stats = dispatcher.stats
    assert (stats.delivered, stats.retries, stats.failed) == (1, 3, 0)
    bodies = [r.body for r in receiver.requests("/flaky")]
    assert len(bodies) == 4 and all(b == bodies[0] for b in bodies)


async def test_an_http_date_retry_after_is_honoured(receiver: WebhookReceiver) -> None:
    # HTTP dates have whole seconds: at least one second from now, up to two.
    when = math.floor(time.time()) + 2
    receiver.plans["/later"] = [503]
    receiver.retry_after["/later"] = email.utils.formatdate(when, usegmt=True)
    retry = RetryPolicy(attempts=2, backoff_seconds=0.01, max_backoff_seconds=30.0)
    policy = AlertPolicy(
        consecutive=1, webhooks=(Webhook(url=receiver.url("/later")),), retry=retry
    )
    async with AlertDispatcher() as dispatcher:
        dispatcher.submit(make_event(1), policy)
        assert await dispatcher.drain(20)
        stats = dispatcher.stats
    assert (stats.delivered, stats.retries, stats.failed) == (1, 1, 0)
    first, second = receiver.requests("/later")
    # Not after the 10 ms backoff: at the time the receiver asked for.
    assert first.at < when - 0.5 and second.at >= when - 0.05, (first.at, second.at, when)


async def test_retries_of_deliveries_that_failed_together_are_spread(
    receiver: WebhookReceiver,
) -> None:
    paths = [f"/together/{i}" for i in range(12)]
    for path in paths:
        receiver.plans[path] = [503]
    retry = RetryPolicy(attempts=2, backoff_seconds=0.4, max_backoff_seconds=30.0)
    webhooks = tuple(Webhook(url=receiver.url(path)) for path in paths)
    policy = AlertPolicy(consecutive=1, webhooks=webhooks, retry=retry)
    async with AlertDispatcher(concurrency=len(paths)) as dispatcher:
        dispatcher.submit(make_event(1), policy)
        assert await dispatcher.drain(20)
        assert dispatcher.stats.delivered == len(paths)
    gaps = []
    for path in paths:
        first, second = receiver.requests(path)
        gaps.append(second.at - first.at)
    # Each waits between half and all of the 0.4 s backoff, drawn on its own: without jitter
    # every one would wait the full 0.4 s and all would come back at once.
    assert min(gaps) >= 0.2 - 0.01, gaps
    assert min(gaps) < 0.35 and max(gaps) - min(gaps) > 0.05, gaps


async def test_gives_up_after_its_retries_or_on_a_final_answer(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.plans["/down"] = [500, 502, 503]
    receiver.plans["/gone"] = [404]
    retry = RetryPolicy(attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.05)
    policy = AlertPolicy(
        consecutive=1,
        webhooks=(Webhook(url=receiver.url("/down")), Webhook(url=receiver.url("/gone"))),
        retry=retry,
    )
    async with AlertDispatcher() as dispatcher:
        dispatcher.submit(make_event(1), policy)
        assert await dispatcher.drain(20)
        stats = dispatcher.stats
    assert (stats.delivered, stats.failed, stats.retries) == (0, 2, 2)
    assert len(receiver.requests("/down")) == 3 and len(receiver.requests("/gone")) == 1
    gave_up = sorted(r.getMessage() for r in caplog.records if "gave up" in r.getMessage())
    assert [m.rsplit(": ", 1)[1] for m in gave_up] == ["HTTP 404", "HTTP 503"]


async def test_a_hanging_receiver_never_blocks_the_caller(receiver: WebhookReceiver) -> None:
    receiver.hang.add("/hang")
    retry = RetryPolicy(attempts=2, backoff_seconds=0.01, max_backoff_seconds=0.05)
    policy = AlertPolicy(
        consecutive=1,
        webhooks=(Webhook(url=receiver.url("/hang"), timeout_seconds=0.5),),
        retry=retry,
    )
    results = window(1, *(row(f"ks{i}", "alert", "f") for i in range(4)))
    async with AlertDispatcher(concurrency=4) as dispatcher:
        engine = AlertEngine(MemoryAlertStore(), policy, dispatcher)
        started = time.perf_counter()
        events = engine.process("credit", "1", results)
        elapsed = time.perf_counter() - started
        # Generous, yet far below one webhook timeout (0.5 s) that a blocking send would take.
        assert elapsed < 0.25, elapsed
        assert len(events) == 4
        assert await dispatcher.drain(30)
        stats = dispatcher.stats
    assert (stats.failed, stats.retries, stats.delivered) == (4, 4, 0)
    assert len(receiver.requests("/hang")) == 8


async def test_a_closed_port_never_blocks_the_caller(dead_url: str) -> None:
    retry = RetryPolicy(attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.05)
    policy = AlertPolicy(
        consecutive=1, webhooks=(Webhook(url=dead_url, timeout_seconds=2.0),), retry=retry
    )
    async with AlertDispatcher() as dispatcher:
        started = time.perf_counter()
        for alert_id in range(10):
            dispatcher.submit(make_event(alert_id), policy)
        assert time.perf_counter() - started < 0.25
        assert await dispatcher.drain(30)
        stats = dispatcher.stats
    assert (stats.failed, stats.retries, stats.delivered) == (10, 20, 0)


async def test_a_full_queue_drops_the_oldest_and_counts(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.hang.add("/slow")
    policy = AlertPolicy(
        consecutive=1,
        webhooks=(Webhook(url=receiver.url("/slow"), timeout_seconds=30.0),),
        retry=RetryPolicy(attempts=1),
    )
    async with AlertDispatcher(queue_size=2, concurrency=1) as dispatcher:
        dispatcher.submit(make_event(1), policy)
        await wait_for(receiver, 1, "/slow")  # the only worker is now stuck on alert 1
        for alert_id in range(2, 7):
            dispatcher.submit(make_event(alert_id), policy)
        stats = dispatcher.stats
        assert (stats.queued, stats.dropped) == (2, 3)
        full = [r for r in caplog.records if "queue is full" in r.getMessage()]
        assert len(full) == 3 and "3 dropped so far" in full[-1].getMessage()
        receiver.release.set()
        assert await dispatcher.drain(20)
        assert dispatcher.stats.delivered == 3
    assert [r.body["alert"]["id"] for r in receiver.requests("/slow")] == [1, 5, 6]


async def test_shutdown_gives_the_queue_a_deadline_then_counts_what_is_left(
    receiver: WebhookReceiver,
) -> None:
    receiver.hang.add("/slow")
    policy = AlertPolicy(
        consecutive=1,
        webhooks=(Webhook(url=receiver.url("/slow"), timeout_seconds=30.0),),
        retry=RetryPolicy(attempts=1),
    )
    dispatcher = AlertDispatcher(concurrency=1)
    await dispatcher.start()
    for alert_id in range(3):
        dispatcher.submit(make_event(alert_id), policy)
    await wait_for(receiver, 1, "/slow")
    await dispatcher.aclose(timeout=0.2)
    stats = dispatcher.stats
    assert (stats.queued, stats.dropped, stats.delivered) == (0, 3, 0)


async def test_min_severity_filters_webhooks_but_not_the_log(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    policy = AlertPolicy(
        consecutive=1, min_severity="critical", webhooks=(Webhook(url=receiver.url("/hook")),)
    )
    async with AlertDispatcher() as dispatcher:
        dispatcher.submit(make_event(1, "warning"), policy)
        assert dispatcher.stats.queued == 0
        dispatcher.submit(make_event(2, "critical"), policy)
        assert await dispatcher.drain(20)
    assert [r.body["alert"]["id"] for r in receiver.requests("/hook")] == [2]
    logged = [r for r in caplog.records if r.name == "inferwatch.alerts"]
    assert [r.__dict__["alert_event"]["alert_id"] for r in logged] == [1, 2]


async def test_logs_one_line_per_event_without_secrets_or_data(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.plans["/broken/TOKEN456"] = [500, 500]
    policy = AlertPolicy(
        consecutive=1,
        webhooks=(
            Webhook(url=receiver.url("/services/T0/B0/TOKEN123?token=QSECRET"), format="slack"),
            Webhook(url=receiver.url("/broken/TOKEN456")),
        ),
        retry=RetryPolicy(attempts=2, backoff_seconds=0.01, max_backoff_seconds=0.05),
    )
    leaky = row("chi2", "alert", "email", message="new category 'alice@example.com' in email")
    async with AlertDispatcher() as dispatcher:
        engine = AlertEngine(MemoryAlertStore(), policy, dispatcher)
        engine.process("credit", "1", window(3, leaky))
        assert await dispatcher.drain(20)
        assert (dispatcher.stats.delivered, dispatcher.stats.failed) == (1, 1)
    # The receiver did get the message; the logs must not.
    assert "alice@example.com" in receiver.requests("/services/T0/B0/TOKEN123")[0].body["text"]
    lines = [r.getMessage() for r in caplog.records]
    for secret in ("TOKEN123", "QSECRET", "TOKEN456", "alice@example.com"):
        assert not any(secret in line for line in lines), secret
    events = [r for r in caplog.records if hasattr(r, "alert_event")]
    assert len(events) == 1 and events[0].levelno == logging.WARNING
    assert events[0].__dict__["alert_event"]["check"] == "chi2"
    assert '"window_id": 3' in events[0].getMessage()
    # httpx's own request lines are there, with the webhook redacted.
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert httpx_lines and all("<redacted>" in line for line in httpx_lines)


def test_slack_text_cannot_mention_or_link_and_has_no_link_without_a_base_url() -> None:
    body = slack_payload(make_event(1, message="<!channel> see <http://evil|here> & more"), None)
    assert "&lt;!channel&gt; see &lt;http://evil|here&gt; &amp; more" in body["text"]
    assert "<" not in body["text"] and "window 1" in body["text"]


async def test_events_held_in_a_block_are_sent_when_it_ends_and_dropped_when_it_fails(
    receiver: WebhookReceiver,
) -> None:
    policy = AlertPolicy(
        consecutive=1, webhooks=(Webhook(url=receiver.url("/held")),), retry=FAST_RETRY
    )
    async with AlertDispatcher() as dispatcher:

        def store_then_send(alert_id: int, stored: bool) -> None:
            # As the collector's leader does: the alert change, then its commit, may fail.
            with dispatcher.held():
                dispatcher.submit(make_event(alert_id), policy)
                if not stored:
                    raise RuntimeError("the transaction was refused")

        with pytest.raises(RuntimeError):
            await asyncio.to_thread(store_then_send, 1, False)
        await asyncio.to_thread(store_then_send, 2, True)
        assert await dispatcher.drain(20)
    assert [r.body["alert"]["id"] for r in receiver.requests("/held")] == [2]


async def test_a_dispatcher_that_may_not_send_stores_and_sends_once_it_may(
    receiver: WebhookReceiver,
) -> None:
    policy = AlertPolicy(
        consecutive=1, webhooks=(Webhook(url=receiver.url("/lead")),), retry=FAST_RETRY
    )
    leads = asyncio.Event()
    async with AlertDispatcher(may_send=leads.is_set) as dispatcher:
        dispatcher.submit(make_event(1), policy)
        # A follower's drain does not wait for what the leader sends.
        assert await dispatcher.drain(5)
        assert receiver.requests("/lead") == [] and dispatcher.stats.queued == 1
        leads.set()
        await wait_for(receiver, 1, "/lead")
        assert await dispatcher.drain(20)
        assert (dispatcher.stats.delivered, dispatcher.stats.queued) == (1, 0)
