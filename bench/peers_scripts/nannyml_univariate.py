"""NannyML's UnivariateDriftCalculator on the windows bench_detectors.py wrote
(bench/.venvs/nannyml).

Usage: python nannyml_univariate.py DATA.npz METHOD[,METHOD...]
The calculator (continuous methods as given, e.g. ``kolmogorov_smirnov,jensen_shannon,wasserstein``)
is fitted once on the reference, which also computes its thresholds from the reference's own
chunks; each window is one ``calculate`` call on a DataFrame of that window with ``chunk_size`` the
window's rows, so one chunk a window. With 10,000+ reference rows NannyML estimates KS and
Wasserstein from a 10,000-bin histogram of the reference; no p-values (alerts are thresholds).
Prints one JSON document: per-window milliseconds (wall and thread CPU) and the first window's
per-feature values of each method.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nannyml as nml
import pandas as pd
from _windows import load, timed


def main(path: str, methods: str) -> None:
    reference, windows, names = load(path)
    continuous = methods.split(",")
    calculator = nml.UnivariateDriftCalculator(
        column_names=names, continuous_methods=continuous, chunk_size=windows.shape[1]
    )
    calculator.fit(pd.DataFrame(reference, columns=names))
    frames = [pd.DataFrame(window, columns=names) for window in windows]
    wall, cpu, outputs = timed(lambda w: calculator.calculate(frames[w]), len(windows))
    first = outputs[0].filter(period="analysis").to_df()
    values = {
        method: [float(first[(name, method, "value")].iloc[0]) for name in names]
        for method in continuous
    }
    chunks = {len(o.filter(period="analysis").to_df()) for o in outputs}
    print(json.dumps({"wall_ms": wall, "cpu_ms": cpu, "values": values, "chunks": sorted(chunks)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
