"""Worker processes (``worker.py``) started and stopped from a scenario, their reports summed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

WORKER = Path(__file__).resolve().parent / "worker.py"


class Services:
    def __init__(
        self, endpoint: str, model: str, count: int, rate: float, extra: Sequence[str] = ()
    ) -> None:
        self.processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER),
                    endpoint,
                    model,
                    "--rate",
                    str(rate),
                    "--seed",
                    str(n),
                    *extra,
                ],
                stdout=subprocess.PIPE,
            )
            for n in range(count)
        ]

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM each, and read its report once it has flushed and shut down."""
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        reports = []
        for process in self.processes:
            out, _ = process.communicate(timeout=300)
            lines = out.decode().strip().splitlines()
            if process.returncode != 0 or not lines:
                raise RuntimeError(f"a worker failed with {process.returncode}")
            reports.append(json.loads(lines[-1]))
        return reports


def summed(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The workers' counters added up; the worst p99 of a caller."""
    stats: dict[str, int] = {}
    labels: dict[str, int] = {}
    for report in reports:
        for key, value in report["stats"].items():
            stats[key] = stats.get(key, 0) + value
        for key, value in report["labels"].items():
            labels[key] = labels.get(key, 0) + value
    return {
        "calls": sum(r["calls"] for r in reports),
        "errors": sum(r["errors"] for r in reports),
        "p99_ms": max(r["p99_ms"] for r in reports),
        "flushed": all(r["flushed"] for r in reports),
        "stats": stats,
        "labels": labels,
    }
