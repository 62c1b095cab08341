"""A database that cannot take writes is answered 503 with Retry-After (retryable: it may take
them later), never 429, which means a full queue; writes go on once it can take them again.

The collector runs as a process whose file size limit (RLIMIT_FSIZE) is lowered to 0 while it
runs: every write to its files then fails with EFBIG, as on a full disk."""

from __future__ import annotations

import resource
from pathlib import Path

import httpx

from inferwatch_testkit import wait_for
from inferwatch_testkit.collector import start_collector_process

from .test_isolation import T0, otlp_request, otlp_span


def send(url: str, span_id: str) -> httpx.Response:
    request = otlp_request([otlp_span("0" * 32, span_id, int(T0 * 1e9))])
    return httpx.post(f"{url}/v1/traces", json=request, timeout=30)


def test_a_database_that_cannot_take_writes_is_answered_503_then_recovers(
    tmp_path: Path,
) -> None:
    collector = start_collector_process(
        f"sqlite:///{tmp_path / 'c.db'}", None, tmp_path / "collector.log", ready_timeout=120
    )
    pid = collector.process.pid
    try:
        assert send(collector.url, "01" * 8).status_code == 200
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
        refused = [send(collector.url, f"{n:016x}") for n in range(2, 5)]
        assert [r.status_code for r in refused] == [503] * 3, refused[0].text
        assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
        assert refused[0].json()["code"] == 14  # google.rpc UNAVAILABLE

        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
        again = wait_for(
            lambda: (r := send(collector.url, "02" * 8)).status_code == 200 and r,
            timeout=30,
            what="a write once the database takes them again",
        )
        assert again.status_code == 200
        rows = httpx.get(f"{collector.url}/v1/models/iso/windows", timeout=30).json()
        assert sum(w["rows"] for w in rows["windows"]) == 4
    finally:
        collector.kill()
