"""Performance estimated before labels (CBPE, DLE) against the realized metrics, beside NannyML.

Usage: python bench/bench_estimation.py [--quick] [--only TEXT] (scenarios whose name has TEXT)
Scenarios with known truth, windows of 1,000 rows: clean windows and covariate shifts that move
the model's confidence (make_classification, a random forest, binary and 4 classes), label shifts
on sklearn's digits and wine (windows resampled from held-out rows with shifted class priors),
a miscalibrated model (Gaussian naive Bayes), and a heteroscedastic regressor with a shift into
its noisier rows. For each: the mean absolute error of the estimated accuracy and ROC AUC (MAE and
RMSE for the regressor) against the realized values (scikit-learn's), and the share of windows
whose realized value falls inside the 95% band. NannyML's CBPE and DLE (0.13.1, in a bench-only
venv) estimate the same windows in the same run; their band here is estimate +- 1.96 sampling
errors (NannyML draws +- 3 by default). Writes bench/results/estimation.md.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits, load_wine, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error, roc_auc_score
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from inferwatch.collector.detectors import CBPE, DLE, Estimate, LabelShift, PriorEstimate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import REQUIREMENTS, peer_python, run_peer
from run import machine

RESULTS = Path(__file__).resolve().parent / "results" / "estimation.md"
PEER_SCRIPT = Path(__file__).resolve().parent / "peers_scripts" / "nannyml_estimation.py"
WINDOW = 1000
Z95 = 1.959963984540054


@dataclass
class Scenario:
    """One model, its reference, and windows of rows back to back (with their truth)."""

    name: str
    kind: str  # "classification" or "regression"
    ref_scores: np.ndarray  # classification: probabilities; regression: features
    ref_pred: np.ndarray
    ref_y: np.ndarray
    scores: np.ndarray
    pred: np.ndarray
    y: np.ndarray
    note: str = ""
    cbpe: dict[str, Any] = field(default_factory=dict)
    # What the first and second halves of the windows are, when they differ.
    halves: tuple[str, str] | None = None

    @property
    def windows(self) -> int:
        return self.y.size // WINDOW


def _selected(
    pool: np.ndarray, weights: np.ndarray, windows: int, rng: np.random.Generator
) -> np.ndarray:
    """Window after window of row indices drawn from ``pool`` with ``weights`` (one row per
    window), without replacement within a window."""
    out = []
    for w in range(windows):
        p = weights[w] / weights[w].sum()
        out.append(rng.choice(pool, WINDOW, replace=False, p=p))
    return np.concatenate(out)


def covariate(classes: int, windows: int, seed: int, naive_bayes: bool = False) -> Scenario:
    """make_classification; windows either clean or drawn towards one end of the most
    important feature (exp(gamma * z) weights, gamma from -1.5 to 1.5 across the windows)."""
    X, y = make_classification(
        10_000 + 60_000, 10, n_informative=5, n_classes=classes, random_state=seed
    )
    model: Any = (
        GaussianNB()
        if naive_bayes
        else RandomForestClassifier(50, min_samples_leaf=5, random_state=0, n_jobs=1)
    )
    model.fit(X[:5000], y[:5000])
    proba = model.predict_proba(X)
    pool = np.arange(10_000, X.shape[0])
    clean = _selected(pool, np.ones((windows, pool.size)), windows, np.random.default_rng(seed))
    importance = np.abs(np.corrcoef(np.column_stack([X[:5000], y[:5000]]).T)[-1, :-1])
    z = X[pool, int(importance.argmax())]
    z = (z - z.mean()) / z.std()
    gammas = np.linspace(-1.5, 1.5, windows)
    shifted = _selected(pool, np.exp(np.outer(gammas, z)), windows, np.random.default_rng(seed))
    rows = np.concatenate([clean, shifted])
    what = "naive Bayes (miscalibrated)" if naive_bayes else "random forest"
    return Scenario(
        f"{classes} classes, {what}: {windows} clean + {windows} covariate-shifted windows",
        "classification",
        proba[5000:10_000],
        proba[5000:10_000].argmax(axis=1),
        y[5000:10_000],
        proba[rows],
        proba[rows].argmax(axis=1),
        y[rows],
        halves=("clean", "covariate shift"),
    )


def label_shift(data: str, windows: int, seed: int) -> Scenario:
    """A third of the rows train, a third are the reference, windows are resampled (with
    replacement: these sets are small) from the last third with shifted class priors: half of
    the windows with the reference's priors, half with two random classes 5x as frequent."""
    loaded = load_digits() if data == "digits" else load_wine()
    X, y = loaded.data, loaded.target
    order = np.random.default_rng(seed).permutation(y.size)
    train, ref, pool = np.array_split(order, 3)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    model.fit(X[train], y[train])
    proba = model.predict_proba(X)
    rng = np.random.default_rng(seed + 1)
    k = int(y.max()) + 1
    rows = []
    for w in range(windows):
        boost = np.ones(k)
        if w >= windows // 2:
            boost[rng.choice(k, 2, replace=False)] = 5.0
        weights = boost[y[pool]]
        rows.append(rng.choice(pool, WINDOW, replace=True, p=weights / weights.sum()))
    picked = np.concatenate(rows)
    return Scenario(
        f"{data}, label shift: {windows // 2} windows at the reference's priors + "
        f"{windows - windows // 2} with 2 classes x5",
        "classification",
        proba[ref],
        proba[ref].argmax(axis=1),
        y[ref],
        proba[picked],
        proba[picked].argmax(axis=1),
        y[picked],
        note=f"reference {ref.size} rows, windows resampled from {pool.size} held-out rows",
        cbpe={"min_reference": 50} if data == "wine" else {},
        halves=("reference priors", "label shift"),
    )


def regression(windows: int, seed: int) -> Scenario:
    """Noise growing with |x2|, which the linear model ignores; clean windows, then windows
    drawn towards large |x2| (weights exp(gamma * |x2|), gamma 0 to 1.5)."""
    rng = np.random.default_rng(seed)
    rows = 10_000 + 60_000
    X = rng.normal(size=(rows, 5))
    y = X @ [1.0, 2.0, 0.0, 0.0, 0.5] + np.sin(2 * X[:, 0])
    y = y + rng.normal(size=rows) * (0.5 + np.abs(X[:, 2]))
    model = LinearRegression().fit(X[:5000], y[:5000])
    pred = model.predict(X)
    pool = np.arange(10_000, rows)
    clean = _selected(pool, np.ones((windows, pool.size)), windows, rng)
    gammas = np.linspace(0.0, 1.5, windows)
    shifted = _selected(pool, np.exp(np.outer(gammas, np.abs(X[pool, 2]))), windows, rng)
    picked = np.concatenate([clean, shifted])
    return Scenario(
        f"regressor (heteroscedastic): {windows} clean + {windows} shifted into noisier rows",
        "regression",
        X[5000:10_000],
        pred[5000:10_000],
        y[5000:10_000],
        X[picked],
        pred[picked],
        y[picked],
        halves=("clean", "covariate shift"),
    )


def realized(scenario: Scenario, rows: slice) -> dict[str, float]:
    y, pred = scenario.y[rows], scenario.pred[rows]
    if scenario.kind == "regression":
        return {
            "mae": float(mean_absolute_error(y, pred)),
            "rmse": float(np.sqrt(mean_squared_error(y, pred))),
        }
    scores = scenario.scores[rows]
    classes = scenario.ref_scores.shape[1]
    present = np.unique(y).size == classes
    if classes == 2:
        auc = float(roc_auc_score(y, scores[:, 1]))
    elif present:
        auc = float(roc_auc_score(y, scores, multi_class="ovr"))
    else:
        auc = float("nan")
    return {"accuracy": float(accuracy_score(y, pred)), "roc_auc": auc}


Cells = list[dict[str, Any]]


def ours(
    scenario: Scenario,
) -> tuple[Cells, tuple[Cells, Cells] | None, float, float]:
    """Per window: trusted or not, and per metric (value, lower, upper); for a classifier also
    the estimates re-weighted by BBSE's w(y) where the collector's check re-weights them (the
    window's priors moved), with w(y) taken as exact and (as the check does) with its draws;
    fit and estimate s (of the plain estimates)."""
    started = time.perf_counter()
    if scenario.kind == "regression":
        dle = DLE().fit(scenario.ref_scores, scenario.ref_pred, scenario.ref_y)
        fitted = time.perf_counter()
        estimates = [
            dle.estimate(scenario.scores[_rows(w)], scenario.pred[_rows(w)])
            for w in range(scenario.windows)
        ]
        return _cells(estimates), None, fitted - started, time.perf_counter() - fitted
    cbpe = CBPE(**scenario.cbpe).fit(scenario.ref_scores, scenario.ref_y, scenario.ref_pred)
    fitted = time.perf_counter()
    estimates = [
        cbpe.estimate(scenario.scores[_rows(w)], scenario.pred[_rows(w)])
        for w in range(scenario.windows)
    ]
    done = time.perf_counter()
    return (
        _cells(estimates),
        (
            _cells(_reweighted(scenario, cbpe, estimates, exact_weights=True)),
            _cells(_reweighted(scenario, cbpe, estimates)),
        ),
        fitted - started,
        (done - fitted),
    )


def _reweighted(
    scenario: Scenario, cbpe: CBPE, plain: list[Estimate], exact_weights: bool = False
) -> list[Estimate]:
    """As detect/checks/estimated_performance.py does: BBSE fitted on the reference's predicted
    classes and labels; a window whose priors moved is estimated with w(y), its band with
    draws of w(y) from BBSE's sampling distribution (none: ``exact_weights``), others as they
    were."""
    shift = LabelShift().fit(scenario.ref_pred, scenario.ref_y)
    out = []
    for w, estimate in enumerate(plain):
        priors = shift.estimate(scenario.pred[_rows(w)])
        if isinstance(priors, PriorEstimate) and shift.shifted(priors):
            weights, draws = shift.class_weights(priors, cbpe.n_samples, cbpe.random_state)
            estimate = cbpe.estimate(
                scenario.scores[_rows(w)],
                scenario.pred[_rows(w)],
                weights,
                None if exact_weights else draws,
            )
        out.append(estimate)
    return out


def _cells(estimates: list[Estimate]) -> list[dict[str, Any]]:
    return [
        {
            "trusted": e.trusted,
            "reasons": list(e.reasons),
            **{n: (m.value, m.lower, m.upper) for n, m in e.metrics.items()},
        }
        for e in estimates
    ]


def _rows(w: int) -> slice:
    return slice(w * WINDOW, (w + 1) * WINDOW)


def theirs(python: Path | None, scenario: Scenario) -> dict[str, Any] | None:
    if python is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scenario.npz"
        arrays: dict[str, Any] = {
            "kind": np.array(scenario.kind),
            "window": np.array(WINDOW),
            "ref_pred": scenario.ref_pred,
            "ref_y": scenario.ref_y,
            "pred": scenario.pred,
        }
        if scenario.kind == "regression":
            arrays.update(ref_X=scenario.ref_scores, X=scenario.scores)
        else:
            arrays.update(ref_scores=scenario.ref_scores, scores=scenario.scores)
        np.savez(path, **arrays)
        try:
            found: dict[str, Any] = run_peer(python, PEER_SCRIPT, str(path))
        except RuntimeError as exc:
            print(f"NannyML failed on {scenario.name}: {exc}", file=sys.stderr)
            return None
        return found


def _own(cells: list[dict[str, Any]], metric: str) -> list[tuple[Any, Any, Any]]:
    return [e[metric] if e["trusted"] and metric in e else (None, None, None) for e in cells]


def summarise(
    truth: list[dict[str, float]], estimates: list[tuple[float | None, float | None, float | None]]
) -> tuple[float, float, int]:
    """Mean |estimate - realized|, band coverage, over the windows with an estimate and a
    defined realized value; and how many windows that is."""
    errors, covered = [], []
    for real, (value, lower, upper) in zip(truth, estimates, strict=True):
        if value is None or lower is None or upper is None or not np.isfinite(real):
            continue
        errors.append(abs(value - real))
        covered.append(lower <= real <= upper)
    if not errors:
        return float("nan"), float("nan"), 0
    return float(np.mean(errors)), float(np.mean(covered)), len(errors)


def main(quick: bool, only: str = "") -> None:
    windows = 20 if quick else 100
    load = os.getloadavg()[0]
    started = time.perf_counter()
    python = peer_python("nannyml", REQUIREMENTS["nannyml"])
    scenarios = [
        covariate(2, windows, seed=1),
        covariate(4, windows, seed=2),
        covariate(2, windows, seed=3, naive_bayes=True),
        label_shift("digits", windows, seed=4),
        label_shift("wine", windows, seed=5),
        regression(windows, seed=6),
    ]
    scenarios = [s for s in scenarios if only in s.name]
    lines = [
        "## Estimated performance before labels (CBPE, DLE)",
        "",
        f"`bench/bench_estimation.py`: windows of {WINDOW:,} rows, inferwatch's `CBPE` / `DLE` "
        "(defaults) beside NannyML's (0.13.1, defaults, `chunk_size` = the window) on the same "
        "windows in the same run. Error: mean |estimate - realized| (realized by scikit-learn); "
        "coverage: share of windows whose realized value lies in the 95% band (NannyML's: "
        "estimate +- 1.96 sampling errors; its plots draw +- 3). inferwatch's columns count "
        "only the windows it estimated; `refused` is how many it declined as untrustworthy.",
        f"Machine: {machine()}. Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average "
        f"{load:.2f} at the start.",
        "",
    ]
    if python is None:
        lines.append("NannyML could not be installed into bench/.venvs/nannyml: no comparison.")
    lines += [
        "| scenario | windows | metric | inferwatch error | inferwatch coverage | refused | "
        "NannyML error | NannyML coverage |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    timings = []
    reasons: dict[str, int] = {}
    weighted_lines = [
        "",
        "Re-weighted for the label shift (what the collector's check reports: CBPE with BBSE's "
        "w(y) on the windows whose estimated priors moved, the plain estimate on the others). "
        "`w exact`: the band takes w(y) as known; `w drawn` (the check's): each label draw of "
        "the band re-weights with its own draw of w(y) from BBSE's sampling distribution "
        "(parametric bootstrap of the reference's confusion and the window's predicted "
        "classes); the estimate is the same:",
        "",
        "| scenario | windows | metric | plain error | plain coverage | re-weighted error | "
        "coverage, w exact | coverage, w drawn | NannyML error | NannyML coverage |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario in scenarios:
        print(f"-- {scenario.name}", flush=True)
        truth = [realized(scenario, _rows(w)) for w in range(scenario.windows)]
        mine, reweighted, fit_s, estimate_s = ours(scenario)
        peer = theirs(python, scenario)
        for e in mine:
            for reason in e["reasons"]:
                key = re.sub(r"^\d+% ", "N% ", reason.split("(")[0].strip())
                reasons[key] = reasons.get(key, 0) + 1
        metrics = ["mae", "rmse"] if scenario.kind == "regression" else ["accuracy", "roc_auc"]
        for metric in metrics:
            real = [t[metric] for t in truth]
            own = _own(mine, metric)
            bands: list[tuple[float | None, float | None, float | None]] | None = None
            if peer is not None:
                values, sampling = peer[metric]["value"], peer[metric]["sampling_error"]
                bands = [
                    (v, v - Z95 * s, v + Z95 * s) if np.isfinite(v) else (None, None, None)
                    for v, s in zip(values, sampling, strict=True)
                ][: len(real)]
            half = scenario.windows // 2
            parts = [("all", slice(None))]
            if scenario.halves:
                parts += [
                    (scenario.halves[0], slice(None, half)),
                    (scenario.halves[1], slice(half, None)),
                ]
            for part, chosen in parts:
                error, coverage, _ = summarise(real[chosen], own[chosen])
                peer_cells = ["n/a", "n/a"]
                if bands is not None:
                    peer_error, peer_coverage, _ = summarise(real[chosen], bands[chosen])
                    peer_cells = [f"{peer_error:.4f}", f"{peer_coverage:.2f}"]
                mine_refused = sum(not e["trusted"] for e in mine[chosen])
                lines.append(
                    f"| {scenario.name} | {part} | {metric} | {error:.4f} | {coverage:.2f} | "
                    f"{mine_refused}/{len(mine[chosen])} | {' | '.join(peer_cells)} |"
                )
                if reweighted is not None and "label shift" in scenario.name:
                    exact, drawn = reweighted
                    _, exact_coverage, _ = summarise(real[chosen], _own(exact, metric)[chosen])
                    again, again_coverage, _ = summarise(real[chosen], _own(drawn, metric)[chosen])
                    weighted_lines.append(
                        f"| {scenario.name} | {part} | {metric} | {error:.4f} | {coverage:.2f} | "
                        f"{again:.4f} | {exact_coverage:.2f} | {again_coverage:.2f} | "
                        f"{' | '.join(peer_cells)} |"
                    )
        peer_time = (
            f"NannyML fit {peer['fit_seconds']:.2f} s, estimate {peer['estimate_seconds']:.2f} s"
            if peer
            else "NannyML n/a"
        )
        timings.append(
            f"- {scenario.name}: inferwatch fit {fit_s:.2f} s, estimate {estimate_s:.2f} s "
            f"({scenario.windows} windows); {peer_time}"
            + (f". {scenario.note}" if scenario.note else "")
        )
    if len(weighted_lines) > 6:
        lines += weighted_lines
    lines += ["", "Wall time (one thread each; NannyML's in its own process):", "", *timings]
    if reasons:
        lines += ["", "Why inferwatch refused windows (count of windows):", ""]
        lines += [f"- {reason}: {count}" for reason, count in sorted(reasons.items())]
    lines += ["", f"Whole run: {time.perf_counter() - started:.0f} s."]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with threadpool_limits(1):
        args = sys.argv[1:]
        main("--quick" in args, args[args.index("--only") + 1] if "--only" in args else "")
