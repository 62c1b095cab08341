"""What every univariate peer script shares: the windows bench_detectors.py wrote, and the timing.

Imported by the peer scripts from their own folder (each runs in its peer's venv, which has
numpy but not inferwatch). The .npz holds ``reference`` (rows x features), ``windows`` (windows
x rows x features) and ``names``. ``timed`` calls ``run`` once on the first window to warm up
(as bench_detectors.py's own timings do), then once a window, and returns each call's wall and
thread-CPU milliseconds with what the call returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def load(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    data = np.load(path, allow_pickle=False)
    return data["reference"], data["windows"], [str(n) for n in data["names"]]


def timed(run: Callable[[int], Any], windows: int) -> tuple[list[float], list[float], list[Any]]:
    run(0)
    wall, cpu, outputs = [], [], []
    for w in range(windows):
        start, start_cpu = time.perf_counter(), time.thread_time()
        outputs.append(run(w))
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return wall, cpu, outputs
