"""alibi-detect side by side with inferwatch, on the same data in the same run.

Usage: python bench/bench_alibi.py [--quick]
alibi-detect runs in the bench-only venv bench/.venvs/alibi (bench/peers.py; alibi-detect 0.13.0
and the CPU build of torch 2.13.0, which its MMDDrift needs: it has no numpy backend), with
telemetry off; the arrays go to bench/peer_alibi.py in a file and its scores come back as JSON.

1. Outliers: breast_cancer (30 correlated, skewed features), 10 splits of a 350-row reference
   and the 219 held-out rows, 5% of them with 1-3 features moved 4-6 reference sds (the
   scenario of bench_detectors.py, same seeds). ROC AUC and precision at k (k = the moved rows)
   of alibi's Mahalanobis detectors at their defaults (the public, online one on raw and on
   reference-standardised features; the new-API one, fitted on the reference) against
   inferwatch's default `residuals` and its `mahalanobis`.
2. Drift: the correlation-pair scenario of bench_false_alarms.py (21 numeric features: normal,
   lognormal, bimodal; x2 ~ x3 correlation 0 -> 0.6, every marginal unchanged). References of
   2,000 rows (alibi's MMD holds the (n + m)^2 kernel matrix: 7.9 s a window at 2,000 + 1,000
   rows, 36 s at 5,000 + 1,000), windows of 1,000: alibi's `MMDDrift` (pytorch, 100
   permutations, features standardised by the reference) against inferwatch's
   `correlation_drift` and `mmd_drift` at their defaults.
Writes bench/results/alibi.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from bench_detectors import OUTLIER_SCENARIOS, _moved_rows
from peers import REQUIREMENTS, peer_python, run_peer
from scipy import stats
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from inferwatch.collector.detectors import CorrelationDrift, MMDDrift, OutlierDetector

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "alibi.md"
ALIBI = REQUIREMENTS["alibi"]
NUMERIC = 21


def draw(rows: int, rng: np.random.Generator, correlated: bool) -> np.ndarray:
    """bench_false_alarms.py's numeric features (7 normal, 7 lognormal, 7 bimodal); with
    ``correlated``, x3 = 0.6 x2 + 0.8 x3 (correlation 0.6, both still N(0, 1))."""
    x = np.empty((rows, NUMERIC))
    x[:, :7] = rng.normal(size=(rows, 7))
    x[:, 7:14] = rng.lognormal(0.0, 0.5, size=(rows, 7))
    modes = rng.integers(0, 2, size=(rows, 7))
    x[:, 14:] = np.where(modes, 2.0, -2.0) + rng.normal(size=(rows, 7))
    if correlated:
        x[:, 3] = 0.6 * x[:, 2] + 0.8 * x[:, 3]
    return x


def precision_at_k(truth: np.ndarray, scores: np.ndarray) -> float:
    return float(truth[np.argsort(-scores)[: truth.sum()]].mean())


def rate(found: list[bool]) -> str:
    count, trials = sum(found), len(found)
    ci = stats.binomtest(count, trials).proportion_ci(0.95)
    return f"{count / trials:.2f} ({ci.low:.2f}-{ci.high:.2f})"


def main() -> int:
    quick = "--quick" in sys.argv
    load = os.getloadavg()[0]
    started = time.perf_counter()
    python = peer_python("alibi", ALIBI)
    if python is None:
        RESULTS.write_text(
            "## alibi-detect side by side\n\nNot run: the bench-only venv could not be made "
            f"with {', '.join(ALIBI)} (see the bench's output).\n"
        )
        return 1
    x = load_breast_cancer().data
    scenario = OUTLIER_SCENARIOS[1]  # "1-3 of 30 features moved 4-6 sd, 5% of rows"
    splits = 10
    arrays: dict[str, np.ndarray] = {"outlier_splits": np.array(splits)}
    truths, ours = [], {"residuals": [], "mahalanobis": []}
    seconds: dict[str, list[float]] = {name: [] for name in ours}
    with threadpool_limits(1):
        for seed in range(splits):
            rng = np.random.default_rng(100 + seed)
            order = rng.permutation(len(x))
            reference, held_out = x[order[:350]], x[order[350:]]
            detectors = {m: OutlierDetector(method=m).fit(reference) for m in ours}
            window = held_out.copy()
            truths.append(_moved_rows(window, reference.std(axis=0), rng, scenario))
            for method, detector in detectors.items():
                begin = time.perf_counter()
                result = detector.run(window)
                seconds[method].append(time.perf_counter() - begin)
                assert result.rows is not None
                ours[method].append(result.rows.scores)
            arrays[f"outlier_reference_{seed}"] = reference
            arrays[f"outlier_window_{seed}"] = window
        references, windows = (1, 2) if quick else (4, 4)
        arrays["drift_references"] = np.array(references)
        arrays["drift_windows"] = np.array(windows)
        rng = np.random.default_rng(2026)
        drift: dict[str, dict[str, list[bool]]] = {
            name: {"clean": [], "shifted": []} for name in ("correlation_drift", "mmd_drift")
        }
        drift_seconds: dict[str, list[float]] = {name: [] for name in drift}
        for r in range(references):
            reference = draw(2000, rng, False)
            mean, sd = reference.mean(axis=0), reference.std(axis=0)
            arrays[f"drift_reference_{r}"] = (reference - mean) / sd
            fitted = {
                "correlation_drift": CorrelationDrift().fit(reference),
                "mmd_drift": MMDDrift().fit(reference),
            }
            for j in range(windows):
                for kind in ("clean", "shifted"):
                    window = draw(1000, rng, kind == "shifted")
                    arrays[f"drift_{kind}_{r}_{j}"] = (window - mean) / sd
                    for name, detector in fitted.items():
                        begin = time.perf_counter()
                        found = detector.run(window)
                        drift_seconds[name].append(time.perf_counter() - begin)
                        drift[name][kind].append(found.decision == "alert")
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks.npz"
        np.savez(tasks, **arrays)
        peer = run_peer(python, HERE / "peer_alibi.py", str(tasks))
    elapsed = time.perf_counter() - started

    def outlier_row(label: str, scores: list[np.ndarray], cost: str) -> str:
        aucs = [roc_auc_score(t, s) for t, s in zip(truths, scores, strict=True)]
        at_k = [precision_at_k(t, np.asarray(s)) for t, s in zip(truths, scores, strict=True)]
        return (
            f"| {label} | {np.mean(aucs):.3f} ({min(aucs):.3f}-{max(aucs):.3f}) | "
            f"{np.mean(at_k):.2f} ({min(at_k):.2f}-{max(at_k):.2f}) | {cost} |"
        )

    def ms(values: list[float]) -> str:
        return f"{np.median(values) * 1000:.1f} ms"

    alibi_mmd: dict[str, list[bool]] = {"clean": [], "shifted": []}
    for item in peer["mmd"]:
        alibi_mmd[item["kind"]].append(item["p_value"] < 0.05)
    lines = [
        "## alibi-detect side by side",
        "",
        f"`bench/bench_alibi.py`: alibi-detect {peer['alibi_detect']} (torch {peer['torch']}, "
        "CPU) in its bench-only venv, on the same arrays as inferwatch in the same run, one "
        f"thread each. Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
        f"load average {load:.2f} at the start; {elapsed:.0f} s.",
        "",
        f"Outliers: breast_cancer, {splits} splits (350 reference rows, the 219 held-out rows "
        f"as the window), {scenario} (bench_detectors.py's scenario and seeds). Mean over the "
        "splits (range); precision at k = share of moved rows among the k highest scores, k the "
        "moved count.",
        "",
        "| method | ROC AUC | precision at k | median time a window |",
        "| --- | ---: | ---: | ---: |",
        outlier_row(
            "inferwatch `residuals` (the default)", ours["residuals"], ms(seconds["residuals"])
        ),
        outlier_row("inferwatch `mahalanobis`", ours["mahalanobis"], ms(seconds["mahalanobis"])),
        outlier_row(
            "alibi-detect `od.Mahalanobis()` (public; online, 3 components), raw features",
            peer["outliers"]["online"],
            ms(peer["outlier_seconds"]["online"]) + " (fit and score)",
        ),
        outlier_row(
            "the same, features standardised by the reference",
            peer["outliers"]["online_standardised"],
            ms(peer["outlier_seconds"]["online_standardised"]) + " (fit and score)",
        ),
        outlier_row(
            "alibi-detect `od._mahalanobis.Mahalanobis()` (new API, pytorch; fitted)",
            peer["outliers"]["fitted"],
            ms(peer["outlier_seconds"]["fitted"]) + " (fit and score)",
        ),
        "",
        f"Drift: bench_false_alarms.py's 21 numeric features, {references} references of 2,000 "
        f"rows x {windows} clean and {windows} shifted windows of 1,000 rows (x2 ~ x3 "
        "correlation 0 -> 0.6, marginals unchanged); share of windows flagged at alpha 0.05 "
        "(95% Clopper-Pearson).",
        "",
        "| method | clean windows flagged | shifted windows flagged | median time a window |",
        "| --- | ---: | ---: | ---: |",
        f"| inferwatch `correlation_drift` | {rate(drift['correlation_drift']['clean'])} | "
        f"{rate(drift['correlation_drift']['shifted'])} | "
        f"{ms(drift_seconds['correlation_drift'])} |",
        f"| inferwatch `mmd_drift` (500 + 500 rows, 100 permutations) | "
        f"{rate(drift['mmd_drift']['clean'])} | {rate(drift['mmd_drift']['shifted'])} | "
        f"{ms(drift_seconds['mmd_drift'])} |",
        f"| alibi-detect `MMDDrift` (pytorch, 2,000 + 1,000 rows, 100 permutations) | "
        f"{rate(alibi_mmd['clean'])} | {rate(alibi_mmd['shifted'])} | "
        f"{ms([item['seconds'] for item in peer['mmd']])} |",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
