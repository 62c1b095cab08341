"""inferwatch end to end: a BentoML wine classifier drifts, and the collector says so.

    make demo                       # or: .venv/bin/python examples/demo.py
    make demo ARGS="--once --fast"  # shorter windows, and exit at the end

It starts the collector (SQLite, under .demo/) with short windows for the demo's model, starts
the BentoML service with inferwatch's middleware, uploads the training data as the reference,
then replays traffic through the service's HTTP API: clean windows, a covariate shift with a few
injected outliers, then a label shift. Labels follow a few seconds later (with the ids from the
X-Prediction-Ids header). As each window closes it prints what the collector found, read from
its query API: the accuracy estimated from the predicted probabilities before the labels, the
realized one as they land, the shift verdict, drift and outliers. At the end the collector (and
the service) keep running until Ctrl-C; ``--once`` stops them and exits instead.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import signal
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from demo_processes import (
    Servers,
    StartError,
    bentoml_argv,
    bentoml_env,
    collector_argv,
    pick_port,
    wait_ready,
)
from demo_replay import Replay, Schedule
from demo_traffic import SCENARIO, SEED, Traffic
from demo_watch import WIDTH, Watcher
from wine import CLASSES, FEATURES, MODEL_NAME, MODEL_VERSION, train, training_data

import inferwatch

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0
# The model is right on every clean wine; below this the collector raises an accuracy alert.
MIN_ACCURACY = 0.9
# The summary rows of the checks that alert (docs/alerts.md): a detector's name alone.
ALERT_CHECKS = [
    "error_rate",
    "performance",
    "univariate_drift",
    "multivariate_drift",
    "prediction_drift",
    "label_drift",
    "outliers",
    "shift_verdict",
    "estimated_performance",
]


@dataclass(frozen=True)
class Timing:
    """The demo's pace: window length, lateness, traffic and label delay."""

    window: float
    lateness: float
    requests: int
    rows: int
    label_delay: float
    label_share: float = 0.8

    @classmethod
    def for_run(cls, fast: bool, window: float | None) -> Timing:
        # Labels land a window after the window has closed (2 windows + lateness): its line
        # shows the accuracy estimated from the probabilities alone, then the realized one.
        base = cls(3.0, 1.5, 30, 10, 7.5) if fast else cls(10.0, 2.0, 30, 10, 22.0)
        if window is None:
            return base
        scale = window / base.window
        return cls(
            window,
            base.lateness * min(scale, 1.0),
            base.requests,
            base.rows,
            base.label_delay * scale,
        )


def collector_config(timing: Timing) -> str:
    """The collector's TOML: the demo model's short windows; the reference is uploaded."""
    return f"""\
[collector]
tick_seconds = 0.5

[models.{MODEL_NAME}]
window = {timing.window}
allowed_lateness = {timing.lateness}
reference = {{ policy = "none" }}

[models.{MODEL_NAME}.detectors]
performance = {{ min = {{ accuracy = {MIN_ACCURACY} }} }}

[models.{MODEL_NAME}.alerts]
# One alert per check (not one per feature or per row), so the terminal stays readable.
checks = {json.dumps(ALERT_CHECKS)}
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="demo.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--once", action="store_true", help="stop everything and exit at the end")
    parser.add_argument("--fast", action="store_true", help="3 s windows (the test suite's pace)")
    parser.add_argument("--window", type=float, help="window length in seconds (default 10)")
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".demo", help="database, config and logs (.demo/)"
    )
    parser.add_argument("--port", type=int, default=4318, help="collector port, if free")
    parser.add_argument("--service-port", type=int, default=3000, help="BentoML port, if free")
    args = parser.parse_args(argv)
    if args.window is not None and args.window < 2:
        parser.error("--window must be at least 2 seconds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Each line as it is printed, also through a pipe (make, tee, a test).
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    timing = Timing.for_run(args.fast, args.window)
    servers = Servers()
    # Ctrl-C and SIGTERM stop every server, then exit. SIGINT is set explicitly: a shell that
    # starts a program in the background hands it SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    try:
        collector_url, service_url = start_servers(servers, args, timing)
        upload_reference(collector_url)
        asyncio.run(run_scenario(collector_url, service_url, timing, args.workdir.resolve()))
        print(f"\nDemo finished in {time.monotonic() - began:.0f} s.")
        print(f"Collector API:  {collector_url}/v1/models/{MODEL_NAME}/windows")
        print(f"Dashboard:      {collector_url}/")
        print(f"Report:         inferwatch report --model {MODEL_NAME} --endpoint {collector_url}")
        print(f"BentoML:        {service_url}/classify")
        if not args.once:
            print("The collector and the service keep running; Ctrl-C stops them.")
            while True:
                signal.pause()
        return 0
    except StartError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    finally:
        # A second Ctrl-C must not leave servers behind half-stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if servers.started:
            print("Stopping the collector and the service...", file=sys.stderr)
        servers.stop_all()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # As a SIGINT: asyncio.run then cancels the scenario's tasks cleanly, as on Ctrl-C.
    signal.raise_signal(signal.SIGINT)


def start_servers(servers: Servers, args: argparse.Namespace, timing: Timing) -> tuple[str, str]:
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "collector.db"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)  # each run starts from an empty database
    config = workdir / "collector.toml"
    config.write_text(collector_config(timing))

    print("Starting the collector and the BentoML service (a first start takes a while)...")
    collector_port = pick_port(args.port, HOST)
    collector_url = f"http://{HOST}:{collector_port}"
    collector = servers.start(
        "the collector",
        collector_url,
        collector_argv(config, db, HOST, collector_port),
        workdir / "collector.log",
    )
    service_port = pick_port(args.service_port, HOST)
    service_url = f"http://{HOST}:{service_port}"
    service = servers.start(
        "the BentoML service",
        service_url,
        bentoml_argv("wine_service:WineClassifier", HOST, service_port),
        workdir / "bentoml.log",
        env=bentoml_env(workdir / "bentoml-home", collector_url),
    )
    print(f"  the collector: {collector_url}, database {db}")
    print(f"  the BentoML service: {service_url}")
    wait_ready(
        [(collector, "/healthz"), (service, "/readyz")],
        START_TIMEOUT_S,
        progress=lambda line: print(line, flush=True),
    )
    print(
        f"Both ready. Windows of {timing.window:g} s, allowed lateness {timing.lateness:g} s; "
        f"logs in {workdir}."
    )
    return collector_url, service_url


def upload_reference(collector_url: str) -> None:
    print("Training the wine classifier and uploading its training data as the reference...")
    features, labels = training_data()
    model = train()
    # The probabilities with the labels: the collector calibrates them on the reference and
    # estimates each window's accuracy from the service's probabilities before its labels.
    report = inferwatch.set_reference(
        MODEL_NAME,
        MODEL_VERSION,
        features,
        predictions=model.predict_proba(features),
        labels=labels,
        feature_names=FEATURES,
        task="classification",
        classes=CLASSES,
        endpoint=collector_url,
    )
    print(
        f"Uploaded the reference: {report.rows} training wines with labels and predicted "
        f"probabilities ({len(report.features)} features)."
    )


async def run_scenario(collector_url: str, service_url: str, timing: Timing, workdir: Path) -> None:
    features, labels = training_data()
    traffic = Traffic(features, labels, FEATURES)
    schedule = Schedule.starting_after(time.time(), timing.window, timing.requests, timing.rows)
    replay = Replay(
        service_url,
        traffic,
        schedule,
        label_delay=timing.label_delay,
        label_share=timing.label_share,
        # Not SEED: default_rng(SEED) draws what default_rng([SEED, 0]) does, the traffic's
        # generator of window 0, so which rows got labels followed their drawn classes.
        seed=SEED + 1,
    )
    print()
    replaying = (
        f"Replaying {schedule.windows} windows of {timing.requests * timing.rows} rows "
        f"through {service_url}/classify; {timing.label_share:.0%} of rows get their label "
        f"{timing.label_delay:g} s later."
    )
    print(textwrap.fill(replaying, WIDTH))
    for phase in SCENARIO:
        text = f"  {phase.windows} x {phase.name}: {phase.description}"
        print(textwrap.fill(text, WIDTH, subsequent_indent="      "))
    print()
    async with httpx.AsyncClient(base_url=collector_url, timeout=10.0) as client:
        watcher = Watcher(client, MODEL_NAME, schedule, replay.ledger)
        # A deadline on following: a window that never closes must not hang the demo.
        deadline = schedule.end(schedule.windows - 1) + timing.lateness + 30.0
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(replay.send_all())
            tasks.create_task(replay.post_labels(collector_url, MODEL_NAME))
            await watcher.follow(done=lambda: time.time() > deadline)
        if not await watcher.settle(timeout=timing.window + 30.0):
            print("(some labels had not been evaluated yet)")
        watcher.print_summary(await _details(watcher))
        print(_totals(replay))
    write_ledger(workdir / "ledger.json", replay, schedule)


def write_ledger(path: Path, replay: Replay, schedule: Schedule) -> None:
    """What was sent, window by window (ids, predictions, labels, injected outliers)."""
    windows = [
        {"number": n, "start": schedule.start(n), "end": schedule.end(n), **ledger.to_dict()}
        for n, ledger in enumerate(replay.ledger)
    ]
    body = {"model": MODEL_NAME, "version": MODEL_VERSION, "windows": windows}
    path.write_text(json.dumps(body))


async def _details(watcher: Watcher) -> dict[int, dict[str, Any]]:
    windows = await watcher.windows()
    return {n: dict(await watcher.window(w["id"])) for n, w in windows.items()}


def _totals(replay: Replay) -> str:
    rows = sum(ledger.rows for ledger in replay.ledger)
    labels = sum(ledger.labels_sent for ledger in replay.ledger)
    lost = sum(ledger.requests_failed + ledger.requests_skipped for ledger in replay.ledger)
    outliers = sum(len(ledger.outlier_ids) for ledger in replay.ledger)
    text = f"Sent {rows:,} rows, {labels:,} labels, {outliers} injected outliers"
    return text + (f"; {lost} requests failed or were skipped." if lost else ".")


if __name__ == "__main__":
    sys.exit(main())
