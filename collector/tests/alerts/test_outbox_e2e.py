"""Nothing accepted is lost: a collector process SIGKILLed while an alert's webhook is being
retried, restarted on the same SQLite file, delivers it, once, with the same Idempotency-Key.
And two replicas on one PostgreSQL database, the leader killed while it retries: the other takes
the lead and delivers it, once, with the same key."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import psycopg

from inferwatch_testkit import wait_for
from inferwatch_testkit.collector import (
    T0,
    CollectorProcess,
    SpanSender,
    mixed_frames,
    start_collector_process,
)
from inferwatch_testkit.postgres import TemporaryDatabase
from inferwatch_testkit.webhooks import Hit, flaky_receiver

MODEL = "hooked"
SPANS = 12  # error_rate needs at least 10 requests


def config(tmp_path: Path, webhook: str, collector: str = "", name: str = "collector") -> Path:
    """Every alert of ``MODEL``'s error rate to ``webhook``, retried up to 10 times."""
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"[collector]\ntick_seconds = 0.2\n{collector}"
        f'[models.{MODEL}]\nwindow = 60\nallowed_lateness = 1\nreference = {{ policy = "none" }}\n'
        # consecutive = 1: the one failing window opens the alert; stale_after = 0: the spans
        # are of 2023, which the stale sweep would call silent.
        f'alerts = {{ checks = ["error_rate"], consecutive = 1, stale_after = 0, '
        f'retry = {{ attempts = 10, backoff = "1s", max_backoff = "1s" }}, '
        f'webhooks = [{{ url = "{webhook}", timeout = "2s" }}] }}\n'
    )
    return path


def send_failing_window(url: str) -> None:
    rng = np.random.default_rng(3)
    sender = SpanSender(url)
    for s in range(SPANS):
        inputs, outputs = mixed_frames(rng, 3)
        ids = [f"s{s}-{r}" for r in range(3)]
        sender.send(MODEL, "1", int((T0 + s) * 1e9), inputs, ids, outputs, error="boom")
    sender.close()


def delivery_stats(url: str) -> dict[str, int]:
    shown: dict[str, int] = httpx.get(f"{url}/healthz", timeout=10).json()["alert_deliveries"]
    return shown


def test_a_delivery_pending_when_the_collector_is_killed_is_sent_once_after_a_restart(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'iw.db'}"
    log = tmp_path / "collector.log"
    with flaky_receiver(failures=2) as receiver:
        path = config(tmp_path, receiver.url("/hook/T0K3N"))
        first = start_collector_process(db, path, log)
        try:
            send_failing_window(first.url)
            wait_for(lambda: receiver.seen(), timeout=20, what="the first attempt")
        finally:
            # The first attempt got a 503: its retry waits a second, and the process dies.
            first.kill()
        assert [h.status for h in receiver.seen()] == [503]

        second = start_collector_process(db, path, log)
        try:
            wait_for(
                lambda: any(h.status == 200 for h in receiver.seen()),
                timeout=20,
                what="the delivery after the restart",
            )
            shown = wait_for(
                lambda: (d := delivery_stats(second.url))["delivered"] and d["queued"] == 0 and d,
                what="the outbox to empty",
            )
        finally:
            second.kill()
    # The restarted process made the second and the third attempt.
    assert_sent_once_after_a_retry(receiver.seen(), shown)
    text = log.read_text()
    assert "Traceback" not in text and "T0K3N" not in text


def assert_sent_once_after_a_retry(hits: list[Hit], shown: dict[str, int]) -> None:
    """Three attempts of one delivery (503, 503, 200) under one key; the last two, one of them
    a retry, made by the collector that ``shown`` (its delivery stats) describes."""
    assert [h.status for h in hits] == [503, 503, 200]
    (key,) = {h.key for h in hits}
    assert key is not None and key.startswith("inferwatch-")
    assert {(h.body["event"], h.body["alert"]["id"]) for h in hits} == {("opened", 1)}
    assert (shown["delivered"], shown["failed"], shown["retries"]) == (1, 0, 1)


def holder(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT holder FROM leader_lease WHERE holder_pid IS NOT NULL"
        ).fetchone()
    return None if row is None else str(row[0])


def test_the_new_leader_sends_what_the_killed_one_left_pending(
    postgres: TemporaryDatabase, tmp_path: Path
) -> None:
    url = postgres.new_schema()
    log = tmp_path / "collectors.log"
    with flaky_receiver(failures=2) as receiver:

        def start(name: str) -> CollectorProcess:
            path = config(tmp_path, receiver.url("/hook"), f'instance_id = "{name}"\n', name)
            return start_collector_process(url, path, log, ready_timeout=60)

        a = start("a")
        processes = [a]
        try:
            wait_for(lambda: holder(url) == "a", what="replica a to lead")
            b = start("b")
            processes.append(b)
            send_failing_window(b.url)
            wait_for(lambda: receiver.seen(), timeout=20, what="the leader's first attempt")
            # Its retry waits a second: the leader dies with the delivery in the outbox.
            a.kill()
            assert [h.status for h in receiver.seen()] == [503]
            wait_for(lambda: holder(url) == "b", what="replica b to take the lead")
            wait_for(
                lambda: any(h.status == 200 for h in receiver.seen()),
                timeout=20,
                what="the new leader's delivery",
            )
            shown = wait_for(
                lambda: (d := delivery_stats(b.url))["delivered"] and d["queued"] == 0 and d,
                what="the outbox to empty",
            )
        finally:
            for process in processes:
                process.kill()
    # The new leader made the second and the third attempt.
    assert_sent_once_after_a_retry(receiver.seen(), shown)
    assert "Traceback" not in log.read_text()
