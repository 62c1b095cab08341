"""Evidently's column drift on the windows bench_detectors.py wrote (bench/.venvs/evidently).

Usage: python evidently_univariate.py DATA.npz preset|tests
Evidently has no fit step: every run takes the reference and the window again. ``preset`` times
``Report([DataDriftPreset()]).run(window, reference)`` as a user calls it, the reference an
Evidently ``Dataset`` made once (with more than 1,000 reference rows the preset tests each
numeric column by the Wasserstein distance normed by the reference's sd, drift at 0.1, and it
renders its plotly widgets inside ``run``). ``tests`` times only the statistics: per column
Evidently's ``ks_stat_test`` (scipy's ks_2samp p-value) and ``wasserstein_stat_test`` on pandas
Series, no report. Prints one JSON document: per-window milliseconds (wall and thread CPU) and
the first window's per-column scores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pandas as pd
from _windows import load, timed
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests import ks_stat_test, wasserstein_stat_test
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset


def preset(reference: pd.DataFrame, frames: list[pd.DataFrame], names: list[str]) -> Any:
    definition = DataDefinition(numerical_columns=names)
    reference_data = Dataset.from_pandas(reference, data_definition=definition)
    report = Report([DataDriftPreset()])

    def run(w: int) -> dict[str, float]:
        current = Dataset.from_pandas(frames[w], data_definition=definition)
        snapshot = report.run(current_data=current, reference_data=reference_data)
        return {
            m["config"]["column"]: float(m["value"])
            for m in snapshot.dict()["metrics"]
            if m["config"]["type"].endswith("ValueDrift")
        }

    return run


def tests(reference: pd.DataFrame, frames: list[pd.DataFrame], names: list[str]) -> Any:
    def run(w: int) -> dict[str, list[float]]:
        out = {}
        for name in names:
            ref, cur = reference[name], frames[w][name]
            ks = ks_stat_test(ref, cur, ColumnType.Numerical, None)
            wasserstein = wasserstein_stat_test(ref, cur, ColumnType.Numerical, None)
            out[name] = [float(ks.drift_score), float(wasserstein.drift_score)]
        return out

    return run


def main(path: str, mode: str) -> None:
    reference, windows, names = load(path)
    frames = [pd.DataFrame(window, columns=names) for window in windows]
    make = {"preset": preset, "tests": tests}[mode]
    run = make(pd.DataFrame(reference, columns=names), frames, names)
    wall, cpu, outputs = timed(run, len(windows))
    print(json.dumps({"wall_ms": wall, "cpu_ms": cpu, "scores": outputs[0]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
