"""Model performance from labelled predictions: per window, and summed into a lifetime figure.

Each window stores additive sums (correct count, absolute and squared errors), so lifetime
performance is exact without keeping the rows, and recomputing one window after late labels
does not touch the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from inferwatch.collector.labels import LabelledPair


def window_performance(pairs: Sequence[LabelledPair], task: str | None) -> dict[str, Any]:
    """Sums and figures for one window; ``task`` picks accuracy or MAE/RMSE."""
    out: dict[str, Any] = {"labelled": len(pairs), "task": task or "classification"}
    if not pairs:
        return out
    if task == "regression":
        errors = np.array(
            [
                p.prediction_num - p.label_num
                for p in pairs
                if p.prediction_num is not None and p.label_num is not None
            ],
            dtype=float,
        )
        out["scored"] = int(errors.size)
        out["abs_error_sum"] = float(np.abs(errors).sum())
        out["sq_error_sum"] = float(np.square(errors).sum())
    else:
        out["scored"] = len(pairs)
        out["correct"] = sum(_same_class(p) for p in pairs)
    out.update(figures(out))
    delays = np.array([p.delay_ms for p in pairs], dtype=float) / 1000.0
    out["label_delay_seconds"] = {
        "p50": float(np.quantile(delays, 0.5)),
        "p95": float(np.quantile(delays, 0.95)),
        "max": float(delays.max()),
    }
    return out


def figures(sums: dict[str, Any]) -> dict[str, float | None]:
    """Accuracy, or MAE and RMSE, from the additive sums."""
    scored = sums.get("scored", 0)
    if "correct" in sums:
        return {"accuracy": sums["correct"] / scored if scored else None}
    if "abs_error_sum" in sums:
        return {
            "mae": sums["abs_error_sum"] / scored if scored else None,
            "rmse": math.sqrt(sums["sq_error_sum"] / scored) if scored else None,
        }
    return {}


def lifetime(performances: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Windows' sums added up."""
    total: dict[str, Any] = {"labelled": 0, "scored": 0}
    for perf in performances:
        for key in ("labelled", "scored", "correct", "abs_error_sum", "sq_error_sum"):
            if key in perf:
                total[key] = total.get(key, 0) + perf[key]
    total.update(figures(total))
    return total


def _same_class(pair: LabelledPair) -> bool:
    # sklearn's predict() returns numbers and labels may come as 1, "1" or True: compare as
    # numbers when both sides are numbers, as text otherwise.
    if pair.prediction_num is not None and pair.label_num is not None:
        return pair.prediction_num == pair.label_num
    return pair.prediction_text is not None and pair.prediction_text == pair.label_text
