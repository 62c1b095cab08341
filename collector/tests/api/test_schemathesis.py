"""schemathesis against the /openapi.json a real collector serves, over every route.

The collector runs on 127.0.0.1 with real SQLite and holds real data (a closed window, labels, a
committed reference, an open upload); schemathesis_hooks.py aims half the generated requests at
them, so that answers holding stored rows are checked too, not only 404s. schemathesis runs as
its users run it (its CLI): boundary values and unsupported methods (coverage phase), then
generated requests, valid and invalid. Each answer is checked for: no server error; a documented
status, content type, body and headers; an invalid request refused; a 405 whose Allow is right.
Bounded for ``make test``: few examples per operation, deterministic generation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from inferwatch.collector import load_config
from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import Frame, categorical, encode_frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import (
    T0,
    RunningCollector,
    SpanSender,
    mixed_frames,
    start_collector,
    windows,
)

MODEL = "credit"
VERSION = "1"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
)
# The frame serializer, importable from this folder.
HOOKS = "schemathesis_hooks"
# Generated requests per operation, after the coverage phase's own; 16 operations. The run takes
# about 25 s on a loaded 2-core machine.
MAX_EXAMPLES = 5


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    db = tmp_path_factory.mktemp("schemathesis") / "collector.db"
    clock = FakeClock(T0)
    config = load_config(
        None,
        db=f"sqlite:///{db}",
        tick_seconds=0.05,
        checkpoint_interval_seconds=0.2,
        models={MODEL: {"window": 60, "allowed_lateness": 0}},
    )
    running = start_collector(config, clock)
    try:
        _fill(running, clock)
        yield running
    finally:
        running.stop()


def _fill(running: RunningCollector, clock: FakeClock) -> None:
    """A closed window with labels, and a committed reference, for MODEL version VERSION."""
    rng = np.random.default_rng(0)
    sender = SpanSender(running.url)
    try:
        ids = [f"p{i}" for i in range(20)]
        inputs, outputs = mixed_frames(rng, 20)
        sender.send(MODEL, VERSION, int(T0 * 1e9), inputs, ids, outputs)
        sender.flush()
    finally:
        sender.close()
    with running.client() as client:
        labels = [{"prediction_id": i, "label": "yes"} for i in ids]
        assert client.post("/v1/labels", json={"model": MODEL, "labels": labels}).is_success
        base = f"/v1/models/{MODEL}/versions/{VERSION}/reference"
        upload = client.post(f"{base}/uploads", json={"task": "classification"}).json()
        rows = 50
        frame = Frame(
            rows,
            (
                numeric("x", rng.normal(size=(rows, 2)), names=["x0", "x1"]),
                categorical("color", rng.choice(["red", "green"], size=rows)),
                categorical("prediction", rng.choice(["no", "yes"], size=rows), role="output"),
            ),
        )
        part = client.put(
            f"{base}/uploads/{upload['upload_id']}/parts/0",
            content=encode_frame(frame),
            headers={"content-type": FRAME_TYPE},
        )
        assert part.is_success, part.text
        assert client.post(f"{base}/uploads/{upload['upload_id']}/commit").is_success
        clock.advance_to(T0 + 61)
        wait_for(lambda: any(w["closed"] for w in windows(client, MODEL)), what="window close")


def test_every_route_conforms_to_its_schema(collector: RunningCollector, tmp_path: Path) -> None:
    """schemathesis's own run (its CLI, as a user would run it) over every operation: examples,
    boundary values and unsupported methods (coverage), then generated cases, positive and
    negative; every failure is listed in its output."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{collector.url}/openapi.json",
        f"--checks={','.join(CHECKS)}",
        "--phases=examples,coverage,fuzzing",
        f"--max-examples={MAX_EXAMPLES}",
        "--generation-deterministic",
        "--workers=1",
        "--continue-on-failure",
        "--request-timeout=30",
        "--no-color",
        f"--report-dir={tmp_path}",
    ]
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    with collector.client() as client:
        window_id = windows(client, MODEL)[0]["id"]
        upload = client.post(f"/v1/models/{MODEL}/versions/{VERSION}/reference/uploads").json()
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": path,
        "STORED_MODEL": MODEL,
        "STORED_VERSION": VERSION,
        "STORED_WINDOW_ID": str(window_id),
        "STORED_UPLOAD_ID": upload["upload_id"],
    }
    # In tmp_path: schemathesis keeps a cache folder in its working directory.
    run = subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300
    )
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
