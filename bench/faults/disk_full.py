"""Disk full: the collector's database on a tmpfs of 32 MiB that a filler file fills while a
monitored service sends (a smaller one, 8 MiB, fills again with the collector's own data within
the run once the filler is gone). Every write route (spans, labels, reference upload and
part, settings) must answer 503 with Retry-After while it is full, never 500; once the filler is
deleted each route is taken again, and every row answered 200 (the SDK's and the direct
requests') is stored.

Needs root (mount); the tmpfs is unmounted whatever happens."""

from __future__ import annotations

import contextlib
import datetime
import errno
import itertools
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import Frame, encode_frame, numeric

from .otlp import HEADERS, Requests
from .process import Collector, load
from .service import Services, summed

MODEL = "faults-disk"
REFERENCE = f"/v1/models/{MODEL}/versions/1/reference"
ROUTES = ("spans", "labels", "reference upload", "reference part", "settings")


@contextlib.contextmanager
def tmpfs(where: Path, mib: int) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """A file taking every free byte of ``folder``'s filesystem."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return filler


def run(folder: Path, rate: float = 100.0, full_for: float = 20.0, mib: int = 32) -> dict[str, Any]:
    with tmpfs(folder / "disk", mib) as disk:
        return _run(folder, disk, rate, full_for, mib)


def _run(folder: Path, disk: Path, rate: float, full_for: float, mib: int) -> dict[str, Any]:
    collector = Collector(folder, db=disk / "collector.db")
    started_load = load()
    collector.start_and_wait()
    services = Services(collector.url, MODEL, 1, rate, ["--queue", "200000", "--labels"])
    direct = Requests(MODEL, 1, 10, seed=7)
    client = httpx.Client(base_url=collector.url, timeout=60)
    answers: dict[str, Counter[int]] = {name: Counter() for name in ROUTES}
    accepted_rows = 0
    last_setting = None
    try:
        upload = client.post(f"{REFERENCE}/uploads").json()["upload_id"]
        routes = _routes(client, direct, upload)
        time.sleep(5.0)
        filler = fill(disk)
        # Until a span write is refused: a write SQLite can fit in pages it holds may still pass.
        full_at = time.monotonic()
        while True:
            response = routes["spans"]()
            answers["spans"][response.status_code] += 1
            if response.status_code == 200:
                accepted_rows += direct.rows
            if response.status_code == 503 or time.monotonic() - full_at > 60:
                break
            time.sleep(0.1)
        refused_after = time.monotonic() - full_at
        retry_after: set[str] = set()
        until = time.monotonic() + full_for
        while time.monotonic() < until:
            for name, request in routes.items():
                response = request()
                answers[name][response.status_code] += 1
                if response.status_code == 503:
                    retry_after.add(response.headers.get("Retry-After", "missing"))
                elif response.status_code == 200 and name == "spans":
                    accepted_rows += direct.rows
                if response.status_code == 200 and name == "settings":
                    last_setting = response.json()["allowed_lateness"]
            time.sleep(0.5)
        rss_full = collector.rss_mib()
        healthz_full = client.get("/healthz").status_code
        filler.unlink()
        freed = time.monotonic()
        recovered: dict[str, float] = {}
        for name, request in routes.items():
            while True:
                response = request()
                if response.status_code < 300:
                    recovered[name] = time.monotonic() - freed
                    if name == "spans":
                        accepted_rows += direct.rows
                    if name == "settings":
                        last_setting = response.json()["allowed_lateness"]
                    break
                if time.monotonic() - freed > 120:
                    recovered[name] = float("nan")
                    break
                time.sleep(0.1)
        time.sleep(10.0)
        reports = services.stop()
        time.sleep(2.0)
        stored = collector.stored_rows(MODEL)
        setting = client.get(f"/v1/models/{MODEL}/config").json()["allowed_lateness"]
    finally:
        client.close()
        collector.stop()
    service = summed(reports)
    return {
        "load": started_load,
        "rate": rate,
        "mib": mib,
        "full_for": full_for,
        "refused_after": refused_after,
        "answers": answers,
        "retry_after": sorted(retry_after),
        "healthz_full": healthz_full,
        "rss_full": rss_full,
        "recovered": recovered,
        "service": service,
        "accepted_direct_rows": accepted_rows,
        "stored": stored,
        "setting_after": setting,
        "setting_last_accepted": last_setting,
    }


def _routes(
    client: httpx.Client, spans: Requests, upload: str
) -> dict[str, Callable[[], httpx.Response]]:
    rng = np.random.default_rng(3)
    lateness = itertools.count(60)
    part = encode_frame(Frame(100, (numeric("x", rng.normal(size=(100, 10))),)))
    labels = {"model": MODEL, "labels": [{"prediction_id": "direct-1", "label": 1.0}]}
    return {
        "spans": lambda: client.post("/v1/traces", content=spans.next(), headers=HEADERS),
        "labels": lambda: client.post("/v1/labels", json=labels),
        "reference upload": lambda: client.post(f"{REFERENCE}/uploads"),
        "reference part": lambda: client.put(
            f"{REFERENCE}/uploads/{upload}/parts/0",
            content=part,
            headers={"content-type": FRAME_TYPE},
        ),
        # A new value each time, so that the one read at the end tells which write was kept.
        "settings": lambda: client.put(
            f"/v1/models/{MODEL}/config", json={"allowed_lateness": next(lateness)}
        ),
    }


def table(result: dict[str, Any]) -> str:
    service = result["service"]
    stats = service["stats"]
    sent = stats["spans_exported"] + result["accepted_direct_rows"]
    lines = [
        "### Disk full (`faults/disk_full.py`)",
        "",
        f"Run {datetime.date.today().isoformat()}, {os.cpu_count()} cores (shared), "
        f"{result['load']} at start. The collector's SQLite database on a tmpfs of "
        f"{result['mib']} MiB; a worker process calls an `@inferwatch.monitor` function "
        f"{result['rate']:g} times a second and posts its labels once a second; a filler file "
        f"then takes every free byte for {result['full_for']:g} s while each write route is "
        "tried every 0.5 s (the spans route with requests of its own, 10 rows each); then the "
        "filler is deleted. Goals: 503 + Retry-After on every route while full, no 500, each "
        "route taken again once there is room, every row answered 200 stored.",
        "",
        f"The first span write refused came {result['refused_after']:.1f} s after the disk "
        f"filled; /healthz answered {result['healthz_full']} while full; collector RSS then "
        f"{result['rss_full']:.0f} MiB; Retry-After values: {', '.join(result['retry_after'])} s.",
        "",
        "Once there is room, the SDK's flush at the end "
        f"{'finished' if service['flushed'] else '**did not finish**'}. Settings: each PUT "
        "changes `allowed_lateness`; the value read at the end is "
        f"{result['setting_after']} s, the last answered 200 "
        f"{result['setting_last_accepted']} s "
        f"({'met' if result['setting_after'] == result['setting_last_accepted'] else '**missed**'}"
        ").",
        "",
        "| route | answers while full (status: count) | no 500 | taken again after space "
        "returned (s) |",
        "|---|---|---|---:|",
    ]
    for name in ROUTES:
        counts = result["answers"][name]
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
        ok = not any(status >= 500 and status != 503 for status in counts)
        lines.append(
            f"| {name} | {shown} | {'met' if ok else '**missed**'} | "
            f"{result['recovered'][name]:.2f} |"
        )
    ok = result["stored"] == sent
    lines += [
        "",
        "| calls | caller errors | SDK spans recorded / exported / dropped / failed "
        "| direct rows answered 200 | labels sent / accepted / failed calls | rows stored "
        "| rows stored = rows answered 200 |",
        "|---:|---:|---|---:|---|---:|---|",
        f"| {service['calls']} | {service['errors']} | {stats['spans_recorded']} / "
        f"{stats['spans_exported']} / {stats['spans_dropped']} / {stats['spans_failed']} | "
        f"{result['accepted_direct_rows']} | {service['labels']['sent']} / "
        f"{service['labels']['accepted']} / {service['labels']['failed_calls']} | "
        f"{result['stored']} | {'met' if ok else '**missed**'} ({sent}) |",
    ]
    return "\n".join(lines) + "\n"
