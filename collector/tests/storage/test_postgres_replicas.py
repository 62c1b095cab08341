"""Two collector processes on one PostgreSQL database, traffic split between them, the leader
killed and restarted mid-stream, against one SQLite collector fed the same data: the same
windows, results, label joins and alerts, each alert's webhooks sent once. And the leader
paused (SIGSTOP) with its session alive: the other takes over within the lease, and the paused
one, resumed, stores and sends nothing twice. And the leader's event loop blocked (by a check
plug-in) while its process runs: it hands the lead back within its stall bound, while a slow
check (in its worker thread) costs it nothing."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest

from inferwatch.collector.storage.postgres.leadership import LEASE_SECONDS, RENEW_SECONDS
from inferwatch_testkit import wait_for
from inferwatch_testkit.collector import (
    T0,
    CollectorProcess,
    SpanSender,
    mixed_frames,
    start_collector_process,
    windows,
)
from inferwatch_testkit.postgres import TemporaryDatabase
from inferwatch_testkit.webhooks import QuietHandler, http_server

from .helpers import uuid7

MODEL = "rep"
WINDOWS = 6
SPANS = 12  # error_rate needs at least 10 requests
ROWS = 5
FAILING = {2, 3}  # every span of these windows is an error
Hook = tuple[str, dict[str, Any], str | None]


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[Hook]]]:
    """A stand-in for an ops endpoint: its URL, and each POST as (path, body, idempotency
    key)."""
    received: list[Hook] = []
    lock = threading.Lock()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with lock:
                received.append((self.path, body, self.headers.get("idempotency-key")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    with http_server(Handler) as port:
        yield f"http://127.0.0.1:{port}", received


def config(
    tmp_path: Path, name: str, webhook: str, instance: str | None = None, collector: str = ""
) -> Path:
    path = tmp_path / f"{name}.toml"
    collector += f'instance_id = "{instance}"\n' if instance else ""
    path.write_text(
        # Predictions kept for ever: the spans are of 2023, and the prune must not race the
        # label joins differently in the two setups.
        f"[collector]\ntick_seconds = 0.2\ncheckpoint_interval_seconds = 0.5\n"
        f'prediction_retention_seconds = "36500d"\n{collector}'
        f'[models.{MODEL}]\nwindow = 60\nallowed_lateness = 1\nreference = {{ policy = "none" }}\n'
        # stale_after = 0: the spans are of 2023, which the stale sweep would call silent.
        f'alerts = {{ checks = ["error_rate"], stale_after = 0, '
        f'webhooks = [{{ url = "{webhook}" }}] }}\n'
    )
    return path


class Traffic:
    """The spans and labels of each window, made once, sent alike to both setups."""

    def __init__(self) -> None:
        rng = np.random.default_rng(17)
        self.spans: list[list[tuple[int, Any, list[str], Any]]] = []
        self.truth: list[dict[str, str]] = []
        for k in range(WINDOWS):
            spans, truth = [], {}
            for s in range(SPANS):
                inputs, outputs = mixed_frames(rng, ROWS)
                start = T0 + 60 * k + s
                ids = (
                    [uuid7(int(start * 1000), r) for r in range(ROWS)]
                    if s % 3
                    else [f"w{k}-s{s}-{r}" for r in range(ROWS)]
                )
                truth.update({pid: str(rng.choice(["no", "yes"])) for pid in ids})
                spans.append((int(start * 1e9), inputs, ids, outputs))
            self.spans.append(spans)
            self.truth.append(truth)


def send_window(traffic: Traffic, k: int, targets: list[str]) -> None:
    """Window ``k``: half its labels first (they wait), its spans split across ``targets``,
    then the other labels, each label to another target than its prediction's."""
    labels = list(traffic.truth[k].items())
    early, late = labels[::2], labels[1::2]
    post_labels(targets[-1], dict(early))
    senders = [SpanSender(url) for url in targets]
    for s, (start_ns, inputs, ids, outputs) in enumerate(traffic.spans[k]):
        error = "boom" if k in FAILING else None
        senders[s % len(senders)].send(MODEL, "1", start_ns, inputs, ids, outputs, error=error)
    for sender in senders:
        sender.close()
    post_labels(targets[0], dict(late))


def post_labels(url: str, labels: dict[str, str]) -> None:
    body = {"model": MODEL, "labels": [{"prediction_id": k, "label": v} for k, v in labels.items()]}
    response = httpx.post(f"{url}/v1/labels", json=body, timeout=30)
    assert response.status_code == 200, response.text


def settled(url: str, k: int) -> dict[str, Any] | None:
    """Window ``k`` once evaluated with all its rows and labels, else None."""
    with httpx.Client(base_url=url, timeout=30) as client:
        # Sent in order, so window k is the k-th, once there.
        found = windows(client, MODEL)
        if len(found) <= k or not found[k]["closed"]:
            return None
        detail: dict[str, Any] = client.get(f"/v1/models/{MODEL}/windows/{found[k]['id']}").json()
    summary = detail["summary"] or {}
    done = (
        summary.get("rows") == SPANS * ROWS
        and (summary.get("performance") or {}).get("labelled") == SPANS * ROWS
    )
    return detail if done else None


def leader_pid(url: str) -> int | None:
    """The server process of the leadership session of the lease's holder."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT holder_pid FROM leader_lease").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def shown(detail: dict[str, Any]) -> tuple[Any, ...]:
    """What two setups fed the same data must agree on about a window."""
    results = sorted(
        (r["detector"], r["feature"] or "", r["decision"], r["score"], r["threshold"])
        for r in detail["results"]
    )
    performance = detail["summary"]["performance"]
    return (
        detail["start"],
        detail["requests"],
        detail["rows"],
        detail["labelled"],
        performance["labelled"],
        performance.get("accuracy"),
        results,
    )


def alert_events(received: list[Hook], path: str) -> list[tuple[Any, ...]]:
    return [
        (body["event"], body["alert"]["id"], body["alert"]["check"], body["window_id"])
        for where, body, _ in received
        if where == path
    ]


def test_two_replicas_match_one_sqlite_collector(
    postgres: TemporaryDatabase, tmp_path: Path
) -> None:
    traffic = Traffic()
    url = postgres.new_schema()
    log = tmp_path / "collectors.log"
    with webhook_receiver() as (hooks, received):

        def start(name: str, db: str, instance: str | None = None) -> CollectorProcess:
            path = config(
                tmp_path, name, f"{hooks}/{'sqlite' if instance is None else 'pg'}", instance
            )
            return start_collector_process(db, path, log, ready_timeout=120)

        processes: list[CollectorProcess] = []
        try:
            with ThreadPoolExecutor(2) as pool:
                lone_future = pool.submit(start, "sqlite", f"sqlite:///{tmp_path / 'lone.db'}")
                a = start("a", url, "a")
                processes.append(a)
                lone = lone_future.result()
                processes.append(lone)
            first_leader = wait_for(lambda: leader_pid(url), what="replica a to lead")
            b = start("b", url, "b")
            processes.append(b)

            def both(k: int, replicas: list[str]) -> None:
                send_window(traffic, k, replicas)
                send_window(traffic, k, [lone.url])

            def wait_settled(k: int, replica: str) -> None:
                wait_for(lambda: settled(replica, k), timeout=120, what=f"window {k} on PG")
                wait_for(lambda: settled(lone.url, k), timeout=120, what=f"window {k} alone")

            both(0, [a.url, b.url])
            wait_settled(0, a.url)
            # A change made through one replica is what every replica runs by.
            change = {"detectors": {"error_rate": {"threshold": 0.5}}}
            for target in (b.url, lone.url):
                put = httpx.put(f"{target}/v1/models/{MODEL}/config", json=change, timeout=30)
                assert put.status_code == 200, put.text

            def threshold_on_a() -> bool:
                shown = httpx.get(f"{a.url}/v1/models/{MODEL}/config", timeout=30).json()
                return bool(shown["detectors"]["error_rate"]["threshold"] == 0.5)

            wait_for(threshold_on_a, what="replica a to take b's change")
            both(1, [a.url, b.url])
            wait_settled(1, b.url)

            # The leader is killed: the other replica takes over and evaluates alone.
            a.kill()
            processes.remove(a)
            wait_for(
                lambda: (pid := leader_pid(url)) is not None and pid != first_leader,
                what="replica b to take over",
            )
            both(2, [b.url])
            wait_settled(2, b.url)
            a = start("a", url, "a")
            processes.append(a)
            for k in range(3, WINDOWS):
                both(k, [a.url, b.url])
                wait_settled(k, a.url)

            for k in range(WINDOWS):
                pg, alone = settled(a.url, k), settled(lone.url, k)
                assert pg is not None and alone is not None
                assert shown(pg) == shown(alone), f"window {k}"
                via_b = settled(b.url, k)
                assert via_b is not None and shown(via_b) == shown(pg)

            def alerts(target: str) -> list[tuple[Any, ...]]:
                found = httpx.get(f"{target}/v1/models/{MODEL}/alerts", timeout=30).json()
                return [
                    (
                        x["check"],
                        x["state"],
                        x["severity"],
                        x["resolution"],
                        [(e["window_start"], e["result"]["score"]) for e in x["evidence"]],
                    )
                    for x in found["alerts"]
                ]

            assert alerts(a.url) == alerts(b.url) == alerts(lone.url)
            assert [x[:2] for x in alerts(lone.url)] == [("error_rate", "resolved")]
            expected = [("opened", "error_rate"), ("resolved", "error_rate")]

            def delivered(path: str) -> Callable[[], bool]:
                return lambda: len(alert_events(received, path)) >= len(expected)

            wait_for(delivered("/sqlite"), what="the lone collector's webhooks")
            wait_for(delivered("/pg"), what="the replicas' webhooks")
            pg_events, lone_events = (
                alert_events(received, "/pg"),
                alert_events(received, "/sqlite"),
            )
            # Once each, whichever replica evaluated.
            assert [(e[0], e[2]) for e in pg_events] == expected
            assert [(e[0], e[2]) for e in lone_events] == expected
        finally:
            for process in processes:
                process.kill()
    assert "Traceback" not in log.read_text()


def lease(url: str) -> tuple[str | None, int]:
    """The lease's holder (an instance id) and epoch."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT holder, epoch FROM leader_lease").fetchone()
    assert row is not None
    return row[0], int(row[1])


def closings(url: str) -> float:
    """How many windows this replica closed (evaluated on closing), from its /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith('inferwatch_window_evaluations_total{trigger="close"}'):
            return float(line.split()[-1])
    return 0.0


def test_a_paused_leader_is_taken_over_within_the_lease_and_stores_nothing_twice(
    postgres: TemporaryDatabase, tmp_path: Path
) -> None:
    traffic = Traffic()
    url = postgres.new_schema()
    log = tmp_path / "collectors.log"
    with webhook_receiver() as (hooks, received):

        def start(name: str) -> CollectorProcess:
            path = config(tmp_path, name, f"{hooks}/pg", name)
            return start_collector_process(url, path, log, ready_timeout=120)

        processes: list[CollectorProcess] = []
        a: CollectorProcess | None = None
        try:
            a = start("a")
            processes.append(a)
            wait_for(lambda: lease(url)[0] == "a", what="replica a to lead")
            b = start("b")
            processes.append(b)
            for k in (0, 1):
                send_window(traffic, k, [a.url, b.url])
                wait_for(lambda k=k: settled(b.url, k), timeout=120, what=f"window {k}")
            # Window 2 (failing) reaches both, and the leader is paused at once, likely in the
            # middle of evaluating it: its session stays open.
            send_window(traffic, 2, [a.url, b.url])
            a.process.send_signal(signal.SIGSTOP)
            paused = time.monotonic()
            wait_for(lambda: lease(url)[0] == "b", timeout=LEASE_SECONDS + 30, what="b to lead")
            takeover = time.monotonic() - paused
            # The lease, a tick, and the wait of a taking behind a fenced transaction.
            assert takeover <= LEASE_SECONDS + 4, takeover
            send_window(traffic, 3, [b.url])
            for k in (2, 3):
                wait_for(lambda k=k: settled(b.url, k), timeout=120, what=f"window {k} on b")
            wait_for(lambda: len(alert_events(received, "/pg")) >= 1, what="the opened alert")
            a.process.send_signal(signal.SIGCONT)
            for k in range(4, WINDOWS):
                send_window(traffic, k, [a.url, b.url])
                wait_for(lambda k=k: settled(a.url, k), timeout=120, what=f"window {k}")
            wait_for(lambda: len(alert_events(received, "/pg")) >= 2, what="the resolved alert")
            # The resumed replica found itself fenced off, and stays a follower.
            assert lease(url) == ("b", 2)
            wait_for(lambda: "another collector took the lead" in log.read_text(), what="a's log")

            # Each window was closed by one replica, once.
            assert closings(a.url) + closings(b.url) == WINDOWS
            found = httpx.get(f"{b.url}/v1/models/{MODEL}/alerts", timeout=30).json()["alerts"]
            assert [(x["check"], x["state"]) for x in found] == [("error_rate", "resolved")]
            # Let a late duplicate arrive, if one were coming, then count each webhook once.
            time.sleep(2 * LEASE_SECONDS / 5)
            events = alert_events(received, "/pg")
            assert [(e[0], e[2]) for e in events] == [
                ("opened", "error_rate"),
                ("resolved", "error_rate"),
            ]
            keys = [key for _, _, key in received]
            assert None not in keys and len(set(keys)) == len(keys)
        finally:
            if a is not None and a.process.poll() is None:
                a.process.send_signal(signal.SIGCONT)
            for process in processes:
                process.kill()
    assert "Traceback" not in log.read_text()


# A check that does what an order file says, in the process the order names, once: "sleep" in
# its worker thread (a slow check), or "block" the event loop itself until the hold file is
# gone (what a blocking call or a deadlock on the loop does).
STALL_PLUGIN = """
import asyncio, gc, json, os, time
from pathlib import Path
from inferwatch.collector.detect import CheckSettings, check

ORDER = Path(os.environ["IW_TEST_STALL_ORDER"])
HOLD = ORDER.with_suffix(".hold")


def hold_the_loop():
    while HOLD.exists():
        time.sleep(0.05)


@check("stall", CheckSettings)
def stall(profile, window, settings):
    try:
        order = json.loads(ORDER.read_text())
    except FileNotFoundError:
        return []
    if order["pid"] != os.getpid():
        return []
    if order["do"] == "sleep":
        time.sleep(order["seconds"])
    else:
        # Checks run in a worker thread, which has no handle on the loop: find it.
        (loop,) = [
            o for o in gc.get_objects()
            if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()
        ]
        loop.call_soon_threadsafe(hold_the_loop)
    ORDER.unlink()
    return []
"""
STALL_SECONDS = 1.5


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
    except httpx.TimeoutException:
        return False


def test_a_leader_whose_event_loop_hangs_hands_the_lead_back_but_a_slow_check_does_not(
    postgres: TemporaryDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traffic = Traffic()
    url = postgres.new_schema()
    log = tmp_path / "collectors.log"
    (tmp_path / "iw_stall_check.py").write_text(STALL_PLUGIN)
    order, hold = tmp_path / "stall.order", tmp_path / "stall.hold"
    monkeypatch.setenv("IW_TEST_STALL_ORDER", str(order))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    )
    with webhook_receiver() as (hooks, received):

        def start(name: str) -> CollectorProcess:
            extra = f'plugins = ["iw_stall_check"]\nloop_stall_seconds = {STALL_SECONDS}\n'
            path = config(tmp_path, name, f"{hooks}/pg", name, extra)
            return start_collector_process(url, path, log, ready_timeout=120)

        def give(process: CollectorProcess, do: str, seconds: float = 0) -> None:
            order.write_text(json.dumps({"pid": process.process.pid, "do": do, "seconds": seconds}))

        processes: list[CollectorProcess] = []
        try:
            with ThreadPoolExecutor(2) as pool:
                processes.extend(pool.map(start, ["a", "b"]))
            holder, epoch = wait_for(lambda: (found := lease(url))[0] and found, what="a leader")
            # a is the leader, whichever started first.
            a, b = processes if holder == "a" else processes[::-1]
            send_window(traffic, 0, [a.url, b.url])
            wait_for(lambda: settled(b.url, 0), timeout=120, what="window 0")

            # A check slower than the stall bound, twice over, runs off the loop: a keeps the
            # lead through it.
            give(a, "sleep", 2 * STALL_SECONDS + RENEW_SECONDS)
            send_window(traffic, 1, [a.url, b.url])
            wait_for(lambda: not order.exists(), timeout=60, what="the slow check on a")
            wait_for(lambda: settled(b.url, 1), timeout=120, what="window 1")
            assert lease(url) == (holder, epoch)

            # The next window blocks a's loop while a evaluates it (its spans go to b: a's
            # HTTP is on that loop too). a stops renewing and hands the lease back.
            hold.touch()
            give(a, "block")
            send_window(traffic, 2, [b.url])
            wait_for(lambda: not order.exists(), timeout=60, what="the loop block on a")
            blocked = time.monotonic()
            wait_for(lambda: lease(url)[0] != holder, timeout=LEASE_SECONDS + 30, what="b to lead")
            takeover = time.monotonic() - blocked
            # The bound, a renewal round, b's tick; well within the lease a would else keep.
            assert takeover <= STALL_SECONDS + RENEW_SECONDS + 2, takeover
            assert not answers(a.url), "a's loop should still be blocked"
            send_window(traffic, 3, [b.url])
            for k in (2, 3):
                wait_for(lambda k=k: settled(b.url, k), timeout=120, what=f"window {k} on b")

            hold.unlink()
            health = wait_for(
                lambda: answers(a.url) and httpx.get(f"{a.url}/healthz", timeout=5).json(),
                what="a to answer again",
            )
            assert health["loop_stall"]["epoch"] == epoch
            assert health["loop_stall"]["seconds"] > STALL_SECONDS
            wait_for(
                lambda: httpx.get(f"{a.url}/healthz", timeout=5).json()["leads"] is False,
                what="a to follow",
            )
            assert httpx.get(f"{b.url}/healthz", timeout=5).json()["leads"] is True
            assert "handed the lead (epoch" in log.read_text()
            send_window(traffic, 4, [a.url, b.url])
            wait_for(lambda: settled(a.url, 4), timeout=120, what="window 4")
            assert lease(url)[1] == epoch + 1
            # Each window was closed by one replica, once, and each webhook sent once.
            assert closings(a.url) + closings(b.url) == 5
            keys = [key for _, _, key in received]
            assert None not in keys and len(set(keys)) == len(keys)
            assert [e[0] for e in alert_events(received, "/pg")].count("opened") <= 1
        finally:
            hold.unlink(missing_ok=True)
            for process in processes:
                process.kill()
    assert "Traceback" not in log.read_text()
