"""alibi-detect's TabularDrift on the windows bench_detectors.py wrote (bench/.venvs/alibi-detect).

Usage: python alibi_univariate.py DATA.npz
TabularDrift (numpy/scipy only: no torch or tensorflow backend is involved) is fitted once on the
reference; each window is one ``predict`` call: per feature ``scipy.stats.ks_2samp(method='asymp')``
on the reference and the window (scipy sorts the reference again on every call), Bonferroni
across features. No effect sizes. Prints one JSON document: per-window milliseconds (wall and
thread CPU) and the first window's per-feature KS statistics and p-values.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _windows import load, timed
from alibi_detect.cd import TabularDrift


def main(path: str) -> None:
    reference, windows, _ = load(path)
    detector = TabularDrift(reference, p_val=0.05, correction="bonferroni")
    wall, cpu, outputs = timed(lambda w: detector.predict(windows[w]), len(windows))
    first = outputs[0]["data"]
    print(
        json.dumps(
            {
                "wall_ms": wall,
                "cpu_ms": cpu,
                "statistic": [float(v) for v in first["distance"]],
                "p_value": [float(v) for v in first["p_val"]],
                "drift": [int(o["data"]["is_drift"]) for o in outputs],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
