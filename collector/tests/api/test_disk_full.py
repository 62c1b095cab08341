"""A full disk: every write route (spans, labels, reference uploads and parts, settings) answers
503 with Retry-After, never 500 and never 200 for what was not stored; once space returns the
same requests are taken, and nothing answered 200 is lost.

The collector runs as a process whose file size limit (RLIMIT_FSIZE) is lowered to 0 while it
runs: every write to its files then fails with EFBIG, which SQLite reports as SQLITE_FULL, as on
a full disk (bench/bench_faults.py fills a real tmpfs for the same routes).
"""

from __future__ import annotations

import base64
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from inferwatch import contract
from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch_testkit import free_port, wait_for
from inferwatch_testkit.collector import T0, start_collector_process, total_rows

from .test_storage_failures import frame_part

REFERENCE = "/v1/models/iso/versions/1/reference"


def otlp_spans(rows: int) -> dict[str, object]:
    """One inferwatch span of ``rows`` rows in OTLP JSON."""
    frame = base64.b64encode(frame_part(rows)).decode()
    attributes = {
        contract.ATTR_SCHEMA_VERSION: {"intValue": str(contract.SCHEMA_VERSION)},
        contract.ATTR_MODEL_NAME: {"stringValue": "iso"},
        contract.ATTR_MODEL_VERSION: {"stringValue": "1"},
        contract.ATTR_ROWS: {"intValue": str(rows)},
        contract.ATTR_INPUT_FRAME: {"bytesValue": frame},
    }
    start_ns = int(T0 * 1e9)
    span = {
        "traceId": "0" * 32,
        "spanId": "0a" * 8,
        "name": contract.SPAN_NAME,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 1_000_000),
        "attributes": [{"key": k, "value": v} for k, v in attributes.items()],
    }
    scope = {"name": contract.INSTRUMENTATION_SCOPE}
    return {"resourceSpans": [{"scopeSpans": [{"scope": scope, "spans": [span]}]}]}


def write_routes(client: httpx.Client, upload: str) -> dict[str, Callable[[], httpx.Response]]:
    """Each write route, as a request that succeeds on a database with room."""
    spans = otlp_spans(2)
    labels = {"model": "iso", "labels": [{"prediction_id": "p1", "label": "yes"}]}
    part = frame_part(10)
    return {
        "spans": lambda: client.post("/v1/traces", json=spans),
        "labels": lambda: client.post("/v1/labels", json=labels),
        "reference upload": lambda: client.post(f"{REFERENCE}/uploads"),
        "reference part": lambda: client.put(
            f"{REFERENCE}/uploads/{upload}/parts/0",
            content=part,
            headers={"content-type": FRAME_TYPE},
        ),
        "settings": lambda: client.put("/v1/models/iso/config", json={"window": 120}),
    }


def test_every_write_route_answers_503_while_the_disk_is_full_then_recovers(
    tmp_path: Path,
) -> None:
    collector = start_collector_process(
        f"sqlite:///{tmp_path / 'c.db'}", None, tmp_path / "collector.log", ready_timeout=120
    )
    pid = collector.process.pid
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        with httpx.Client(base_url=collector.url, timeout=30) as client:
            upload = client.post(f"{REFERENCE}/uploads")
            assert upload.status_code == 201, upload.text
            routes = write_routes(client, upload.json()["upload_id"])

            resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
            for name, request in routes.items():
                response = request()
                assert response.status_code == 503, (name, response.status_code, response.text)
                assert int(response.headers["Retry-After"]) >= 1, name
            # The collector still answers what needs no write.
            health = client.get("/healthz")
            assert health.status_code == 200, health.text

            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
            for name, request in routes.items():
                # Retried as a client retries a 503, until the database takes writes again.
                response = wait_for(
                    lambda request=request: (r := request()).status_code < 300 and r,
                    timeout=30,
                    what=f"{name} taken once the disk has room",
                )
                assert response.status_code in (200, 201), (name, response.text)
            assert total_rows(client, "iso") == 2
            assert client.get("/v1/models/iso/config").json()["window"] == 120
    finally:
        collector.kill()


def test_a_collector_stopped_on_a_full_disk_says_so_and_loses_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    # No checkpoint before the stop: the spans are in the journal only.
    config = tmp_path / "collector.toml"
    config.write_text("[collector]\ncheckpoint_interval_seconds = 3600\n")
    port = free_port()
    # Its output to a pipe, which a file size limit does not stop.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferwatch",
            "collector",
            "--db",
            db,
            "--config",
            str(config),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url), timeout=120, what="the collector")
        assert httpx.post(f"{url}/v1/traces", json=otlp_spans(3), timeout=30).status_code == 200
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (0, hard))
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = output.decode(errors="replace")
    # Its last checkpoint could not be written: it says so, and shuts down the rest.
    assert "the last checkpoint failed" in text and "the next start replays" in text, text
    assert "Application shutdown failed" not in text, text
    again = start_collector_process(db, None, tmp_path / "collector.log", ready_timeout=120)
    try:
        with httpx.Client(base_url=again.url, timeout=30) as client:
            (window,) = client.get("/v1/models/iso/windows").json()["windows"]
            detail = client.get(f"/v1/models/iso/windows/{window['id']}").json()
        assert (detail["summary"]["requests"], detail["summary"]["rows"]) == (1, 3)
    finally:
        again.kill()


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
