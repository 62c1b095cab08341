"""Run inside the bench-only alibi-detect venv (bench/peers.py) by bench/bench_alibi.py.

Usage: python bench/peer_alibi.py TASKS.npz
Reads the arrays bench_alibi.py wrote, scores them with alibi-detect, prints one JSON document:
per outlier split the scores of the window's rows by alibi's two Mahalanobis detectors (the
public online one at its defaults, on the raw features and standardised by the reference; the
new-API one fitted on the reference) and their time (fit and score), and per drift window
MMDDrift's p-value and time.
Imports nothing of inferwatch: the peer's venv does not have it.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def online_scores(reference: np.ndarray, window: np.ndarray) -> list[float]:
    """The public ``alibi_detect.od.Mahalanobis``: online, 3 principal components by default."""
    from alibi_detect.od import Mahalanobis

    # Its documented use: the running statistics (and the threshold) from the reference, then
    # the window scored (each row also updates them, as the detector is online by design).
    detector = Mahalanobis()
    detector.infer_threshold(reference, threshold_perc=99)
    return [float(s) for s in detector.score(window)]


def fitted_scores(reference: np.ndarray, window: np.ndarray) -> list[float]:
    """The new-API Mahalanobis (pytorch backend; in 0.13.0 only as alibi_detect.od._mahalanobis,
    not exported): full covariance fitted on the reference, eigenvalues under 1e-6 dropped."""
    from alibi_detect.od._mahalanobis import Mahalanobis

    detector = Mahalanobis()
    detector.fit(reference)
    return [float(s) for s in detector.score(window)]


def main() -> int:
    import alibi_detect
    import torch
    from alibi_detect.cd import MMDDrift

    torch.set_num_threads(1)
    tasks = np.load(sys.argv[1])
    splits = int(tasks["outlier_splits"])
    outliers: dict[str, list[list[float]]] = {"online": [], "online_standardised": [], "fitted": []}
    outlier_seconds: dict[str, list[float]] = {name: [] for name in outliers}
    for i in range(splits):
        reference, window = tasks[f"outlier_reference_{i}"], tasks[f"outlier_window_{i}"]
        mean, sd = reference.mean(axis=0), reference.std(axis=0)
        for name, score, ref, win in (
            ("online", online_scores, reference, window),
            ("online_standardised", online_scores, (reference - mean) / sd, (window - mean) / sd),
            ("fitted", fitted_scores, reference, window),
        ):
            begin = time.perf_counter()
            outliers[name].append(score(ref, win))
            outlier_seconds[name].append(time.perf_counter() - begin)
    drift = []
    for r in range(int(tasks["drift_references"])):
        reference = tasks[f"drift_reference_{r}"].astype(np.float32)
        detector = MMDDrift(reference, backend="pytorch", p_val=0.05, n_permutations=100)
        for j in range(int(tasks["drift_windows"])):
            for kind in ("clean", "shifted"):
                window = tasks[f"drift_{kind}_{r}_{j}"].astype(np.float32)
                begin = time.perf_counter()
                found = detector.predict(window)
                drift.append(
                    {
                        "reference": r,
                        "window": j,
                        "kind": kind,
                        "p_value": float(found["data"]["p_val"]),
                        "seconds": time.perf_counter() - begin,
                    }
                )
    print(
        json.dumps(
            {
                "alibi_detect": alibi_detect.__version__,
                "torch": torch.__version__,
                "outliers": outliers,
                "outlier_seconds": outlier_seconds,
                "mmd": drift,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
