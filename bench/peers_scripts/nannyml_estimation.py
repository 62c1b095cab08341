"""NannyML's CBPE and DLE on the windows bench_estimation.py wrote (run in bench/.venvs/nannyml).

Usage: python nannyml_estimation.py DATA.npz
The .npz holds one scenario: ``kind`` ("classification" or "regression"), the reference's
``ref_scores`` / ``ref_pred`` / ``ref_y`` (and ``ref_X`` for regression), the windows' rows
``scores`` / ``pred`` (and ``X``) back to back, and ``window`` (rows a window). Prints one JSON
document: per metric, per window, NannyML's estimate and sampling error, and the seconds its fit
and estimate took.
"""

from __future__ import annotations

import json
import sys
import time

import nannyml as nml
import numpy as np
import pandas as pd


def frames(data: np.lib.npyio.NpzFile) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]:
    kind = str(data["kind"])
    if kind == "regression":
        names = [f"x{j}" for j in range(data["ref_X"].shape[1])]
        reference = pd.DataFrame(data["ref_X"], columns=names)
        analysis = pd.DataFrame(data["X"], columns=names)
        reference["y_pred"], reference["y_true"] = data["ref_pred"], data["ref_y"]
        analysis["y_pred"] = data["pred"]
        return reference, analysis, {"feature_column_names": names}
    classes = data["ref_scores"].shape[1]
    reference = pd.DataFrame({"y_true": data["ref_y"], "y_pred": data["ref_pred"]})
    analysis = pd.DataFrame({"y_pred": data["pred"]})
    if classes == 2:
        reference["p"], analysis["p"] = data["ref_scores"][:, 1], data["scores"][:, 1]
        return reference, analysis, {"y_pred_proba": "p", "problem_type": "classification_binary"}
    columns = {}
    for c in range(classes):
        reference[f"p{c}"], analysis[f"p{c}"] = data["ref_scores"][:, c], data["scores"][:, c]
        columns[c] = f"p{c}"
    return (
        reference,
        analysis,
        {"y_pred_proba": columns, "problem_type": "classification_multiclass"},
    )


def main(path: str) -> None:
    data = np.load(path, allow_pickle=False)
    reference, analysis, options = frames(data)
    window = int(data["window"])
    if str(data["kind"]) == "regression":
        metrics = ["mae", "rmse"]
        estimator = nml.DLE(
            y_pred="y_pred", y_true="y_true", metrics=metrics, chunk_size=window, **options
        )
    else:
        metrics = ["accuracy", "roc_auc"]
        estimator = nml.CBPE(
            y_pred="y_pred", y_true="y_true", metrics=metrics, chunk_size=window, **options
        )
    started = time.perf_counter()
    estimator.fit(reference)
    fitted = time.perf_counter()
    table = estimator.estimate(analysis).filter(period="analysis").to_df()
    done = time.perf_counter()
    out: dict[str, object] = {"fit_seconds": fitted - started, "estimate_seconds": done - fitted}
    for metric in metrics:
        out[metric] = {
            "value": table[(metric, "value")].astype(float).tolist(),
            "sampling_error": table[(metric, "sampling_error")].astype(float).tolist(),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
