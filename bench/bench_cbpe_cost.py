"""CBPE's cost per window: this checkout's estimate beside the code it replaced, same run.

Usage: python bench/bench_cbpe_cost.py [--quick]
The baseline is CBPE and its calibration as of commit BASELINE (before the hot paths were
vectorised), loaded from git into this process. Both are fitted on the same reference (2,000
rows of a random forest's probabilities on make_classification, binary, 4 and 10 classes;
isotonic and sigmoid calibration, 50 bootstrap refits, 500 label draws) and estimate the same
window of 1,000 rows, without and with label-shift weights (BBSE's w(y) and 500 draws of it,
as the collector's check passes them), alternating, one BLAS thread. The median of the
repeats per window; the two estimates must be equal (values and bands), or the script fails.
The label-shift column also gives the time of the w(y) draws themselves
(``LabelShift.class_weights``), which the collector pays per window on top. NannyML's CBPE
(bench/.venvs/nannyml) estimates copies of the same window in the same run, for scale.
Writes bench/results/cbpe_cost.md.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from threadpoolctl import threadpool_limits

from inferwatch.collector.detectors import CBPE, LabelShift

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import REQUIREMENTS, peer_python, run_peer
from run import machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cbpe_cost.md"
BASELINE = "764383d"
MODULES = "collector/src/inferwatch/collector/detectors"
WINDOW = 1000
REFERENCE = 2000
PEER_SCRIPT = HERE / "peers_scripts" / "nannyml_estimation.py"
PEER_WINDOWS = 20


def baseline_cbpe() -> type:
    """CBPE as of BASELINE, importing its own calibration module of then."""
    folder = Path(tempfile.mkdtemp(prefix="cbpe_baseline_"))
    loaded: dict[str, ModuleType] = {}
    for name in ("calibration", "estimated_performance"):
        source = subprocess.run(
            ["git", "show", f"{BASELINE}:{MODULES}/{name}.py"],
            cwd=HERE.parent,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        source = source.replace(
            "from inferwatch.collector.detectors.calibration import",
            "from cbpe_baseline_calibration import",
        )
        path = folder / f"cbpe_baseline_{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"cbpe_baseline_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded[name] = module
    return loaded["estimated_performance"].CBPE  # type: ignore[no-any-return]


def scenario(classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reference (scores, labels) and a window whose class priors moved (BBSE re-weights)."""
    x, y = make_classification(
        12_000, 20, n_informative=10, n_classes=classes, n_clusters_per_class=1, random_state=7
    )
    model = RandomForestClassifier(50, random_state=0, n_jobs=1).fit(x[:4000], y[:4000])
    ref = slice(4000, 4000 + REFERENCE)
    pool = np.arange(4000 + REFERENCE, y.size)
    rng = np.random.default_rng(classes)
    weights = np.where(y[pool] == 0, 4.0, 1.0)  # class 0 four times as frequent
    rows = rng.choice(pool, WINDOW, replace=False, p=weights / weights.sum())
    return model.predict_proba(x[ref]), y[ref], model.predict_proba(x[rows])


def nannyml_ms(
    python: Path | None, ref_scores: np.ndarray, ref_y: np.ndarray, window: np.ndarray
) -> float | None:
    """NannyML's CBPE (accuracy and ROC AUC, its defaults otherwise) per window: its estimate
    of PEER_WINDOWS copies of the window, chunked by the window, in its own process."""
    if python is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scenario.npz"
        scores = np.tile(window, (PEER_WINDOWS, 1))
        np.savez(
            path,
            kind=np.array("classification"),
            window=np.array(WINDOW),
            ref_scores=ref_scores,
            ref_pred=ref_scores.argmax(axis=1),
            ref_y=ref_y,
            scores=scores,
            pred=scores.argmax(axis=1),
        )
        try:
            found = run_peer(python, PEER_SCRIPT, str(path))
        except RuntimeError as exc:
            print(f"NannyML failed: {exc}", file=sys.stderr)
            return None
    return float(found["estimate_seconds"]) * 1e3 / PEER_WINDOWS


def median_ms(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Each call's median time, the calls alternated within each repeat."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main(quick: bool) -> int:
    repeats = 3 if quick else 9
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    Before = baseline_cbpe()
    python = peer_python("nannyml", REQUIREMENTS["nannyml"])
    rows = []
    peer: dict[int, float | None] = {}
    with threadpool_limits(1):
        for classes in (2, 4, 10):
            ref_scores, ref_y, window = scenario(classes)
            peer[classes] = nannyml_ms(python, ref_scores, ref_y, window)
            shift = LabelShift().fit(ref_scores.argmax(axis=1), ref_y)
            prior = shift.estimate(window.argmax(axis=1))
            for method in ("isotonic", "sigmoid"):
                after = CBPE(calibration=method).fit(ref_scores, ref_y)
                before = Before(calibration=method).fit(ref_scores, ref_y)
                weights, draws = shift.class_weights(prior, after.n_samples, after.random_state)
                for label, args in (("none", ()), ("w(y) draws", (None, weights, draws))):
                    same = after.estimate(window, *args) == before.estimate(window, *args)
                    if not same:
                        print(f"estimates differ: {classes} classes, {method}, {label}")
                        return 1
                    found = median_ms(
                        {
                            "before": partial(before.estimate, window, *args),
                            "after": partial(after.estimate, window, *args),
                            "draws": partial(shift.class_weights, prior, 500, 0),
                        },
                        repeats,
                    )
                    rows.append((classes, method, label, found))
    load_end = os.getloadavg()[0]
    elapsed = time.perf_counter() - started
    lines = [
        "## CBPE cost per window",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}; load average {load_start:.2f} at "
        f"the start, {load_end:.2f} at the end; {elapsed:.0f} s. One window of {WINDOW:,} rows, "
        f"reference {REFERENCE:,} rows, 50 bootstrap refits, 500 label draws, one BLAS thread; "
        f"median of {repeats} runs, before and after alternated. Before: commit {BASELINE}'s "
        "CBPE and calibration (loaded from git); after: this checkout's. Their estimates were "
        "equal (values and bands) in every row. With label-shift weights, the w(y) draws "
        "(`LabelShift.class_weights`, 500 draws) are timed apart: the collector pays them too.",
        "",
        "| classes | calibration | label-shift weights | before (ms) | after (ms) | speed-up "
        "| w(y) draws (ms) |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for classes, method, label, found in rows:
        draws = f"{found['draws']:.1f}" if label != "none" else "-"
        lines.append(
            f"| {classes} | {method} | {label} | {found['before']:.1f} | {found['after']:.1f} "
            f"| {found['before'] / found['after']:.1f}x | {draws} |"
        )
    lines += [
        "",
        f"NannyML's CBPE (0.13.1, bench-only venv, one thread, accuracy and ROC AUC; its band "
        f"is analytic, no draws), per window over {PEER_WINDOWS} windows of the same rows, "
        "same run: "
        + "; ".join(
            f"{c} classes {'failed' if ms is None else f'{ms:.1f} ms'}" for c, ms in peer.items()
        )
        + ".",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main("--quick" in sys.argv[1:]))
