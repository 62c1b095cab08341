"""CBPE: estimated classification performance against the realized metrics, by scikit-learn.

Fixed seeds; 200 windows of 1,000 rows where a coverage is claimed, so a band that holds 80%
instead of 95% fails (binomial sd at 200 windows: 1.5 points).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import threadpoolctl
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from inferwatch.collector.detectors import (
    CBPE,
    Decision,
    Estimate,
    LabelShift,
    PriorEstimate,
    create,
)
from inferwatch.collector.detectors.calibration import calibrate
from inferwatch.collector.detectors.estimated_performance import (
    _drawn_labels,
    _expected_auc,
    _reweighted,
    _sampled_auc,
)

WINDOW = 1000
WINDOWS = 200


def _realized(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    predicted = proba.argmax(axis=1)
    binary = proba.shape[1] == 2
    return {
        "accuracy": accuracy_score(y, predicted),
        "f1_macro": f1_score(y, predicted, average="macro"),
        "precision_weighted": precision_score(y, predicted, average="weighted", zero_division=0),
        "roc_auc": roc_auc_score(y, proba[:, 1])
        if binary
        else roc_auc_score(y, proba, multi_class="ovr"),
    }


def _value(estimate: Estimate, name: str) -> float:
    value = estimate.value(name)
    assert value is not None, estimate.reasons
    return value


def _scenario(classes: int, forest: bool, seed: int) -> tuple[np.ndarray, ...]:
    """A model trained on 5,000 rows, its reference (5,000 rows) and 200 windows' rows."""
    X, y = make_classification(
        10_000 + WINDOWS * WINDOW, 10, n_informative=5, n_classes=classes, random_state=seed
    )
    model = (
        RandomForestClassifier(50, min_samples_leaf=5, random_state=0, n_jobs=1)
        if forest
        else LogisticRegression(max_iter=1000)
    ).fit(X[:5000], y[:5000])
    proba = model.predict_proba(X[5000:])
    return proba[:5000], y[5000:10_000], proba[5000:], y[10_000:]


@pytest.mark.parametrize(("classes", "forest"), [(2, True), (4, True), (2, False)])
def test_clean_windows_estimates_match_realized_and_bands_cover(classes: int, forest: bool) -> None:
    ref_proba, ref_y, proba, y = _scenario(classes, forest, seed=classes)
    cbpe = CBPE().fit(ref_proba, ref_y)
    errors: dict[str, list[float]] = {}
    covered: dict[str, list[bool]] = {}
    for w in range(WINDOWS):
        rows = slice(w * WINDOW, (w + 1) * WINDOW)
        estimate = cbpe.estimate(proba[rows])
        assert estimate.trusted, estimate.reasons
        for name, realized in _realized(y[rows], proba[rows]).items():
            found = estimate.metrics[name]
            assert found.value is not None
            errors.setdefault(name, []).append(found.value - realized)
            covered.setdefault(name, []).append(found.covers(realized))
    for name in errors:
        assert np.mean(np.abs(errors[name])) <= 0.02, name
        assert abs(np.mean(errors[name])) <= 0.01, name  # no bias
        assert np.mean(covered[name]) >= 0.90, (name, np.mean(covered[name]))


def test_reference_metrics_are_sklearns() -> None:
    ref_proba, ref_y, _, _ = _scenario(3, False, seed=3)
    cbpe = CBPE().fit(ref_proba, ref_y)
    predicted = ref_proba.argmax(axis=1)
    reference = cbpe.reference_metrics()
    assert reference["accuracy"] == pytest.approx(accuracy_score(ref_y, predicted))
    for average in ("macro", "weighted"):
        assert reference[f"precision_{average}"] == pytest.approx(
            precision_score(ref_y, predicted, average=average)
        )
        assert reference[f"recall_{average}"] == pytest.approx(
            recall_score(ref_y, predicted, average=average)
        )
        assert reference[f"f1_{average}"] == pytest.approx(
            f1_score(ref_y, predicted, average=average)
        )
    assert reference["roc_auc"] == pytest.approx(roc_auc_score(ref_y, ref_proba, multi_class="ovr"))


def test_the_band_is_the_realized_metric_of_labels_drawn_from_the_probabilities() -> None:
    """Each draw's AUC is sklearn's on the drawn labels; the expected AUC is the ratio of the
    pair sums, checked by brute force over every pair (ties included)."""
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(60), 1)  # ties
    proba = np.column_stack([1 - scores, scores])
    drawn = (rng.random((5, 60)) < scores).astype(np.int64)
    sampled = _sampled_auc(proba, drawn)
    for d in range(5):
        assert sampled[d] == pytest.approx(roc_auc_score(drawn[d], scores))
    p = scores
    wins = pairs = 0.0
    for i in range(60):
        for j in range(60):
            if i != j:
                weight = p[i] * (1 - p[j])
                pairs += weight
                wins += weight * (1.0 if scores[i] > scores[j] else 0.5 * (scores[i] == scores[j]))
    assert _expected_auc(proba, proba) == pytest.approx(wins / pairs)


def test_the_expected_confusion_matrix_sums_the_calibrated_probabilities() -> None:
    ref_proba, ref_y, proba, y = _scenario(3, False, seed=5)
    cbpe = CBPE(calibration="none").fit(ref_proba, ref_y)
    window = proba[:WINDOW]
    estimate = cbpe.estimate(window)
    expected = np.asarray(estimate.details["confusion"]["expected"])
    by_hand = np.zeros((3, 3))
    for row, predicted in zip(window, window.argmax(axis=1), strict=True):
        by_hand[:, predicted] += row
    np.testing.assert_allclose(expected, by_hand)
    assert expected.sum() == pytest.approx(WINDOW)
    realized = confusion_matrix(y[:WINDOW], window.argmax(axis=1))
    # The estimate is near the matrix the labels give (rows of ~330, sd ~15).
    assert np.abs(expected - realized).max() < 60


def test_label_shift_weights_move_the_expected_confusion_as_bayes_rule_does() -> None:
    ref_proba, ref_y, proba, _ = _scenario(3, False, seed=5)
    cbpe = CBPE(calibration="none").fit(ref_proba, ref_y)
    window = proba[:WINDOW]
    same = cbpe.estimate(window, class_weights={"0": 1.0, "1": 1.0, "2": 1.0})
    np.testing.assert_allclose(
        same.details["confusion"]["expected"],
        cbpe.estimate(window).details["confusion"]["expected"],
    )
    weights = np.array([0.5, 1.0, 3.0])
    moved = cbpe.estimate(window, class_weights={"0": 0.5, "1": 1.0, "2": 3.0})
    posterior = window * weights / (window * weights).sum(axis=1, keepdims=True)
    by_hand = np.zeros((3, 3))
    for row, predicted in zip(posterior, window.argmax(axis=1), strict=True):
        by_hand[:, predicted] += row
    np.testing.assert_allclose(moved.details["confusion"]["expected"], by_hand)
    assert moved.details["class_weights"] == weights.tolist()
    with pytest.raises(ValueError, match="class_weights"):
        cbpe.estimate(window, class_weights={"0": -1.0})


def _gaussian_classes(
    rng: np.random.Generator, rows: int, priors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping Gaussian classes scored by their posterior under equal priors: the
    reference's scores are exact, a window with other priors needs w(y) to be."""
    means = 0.7 * np.array([[-1.2, 0.0], [0.0, 1.2], [1.2, 0.0]])
    y = rng.choice(3, rows, p=priors)
    x = means[y] + rng.normal(size=(rows, 2))
    likelihood = np.exp(-0.5 * ((x[:, None, :] - means[None]) ** 2).sum(axis=2))
    return likelihood / likelihood.sum(axis=1, keepdims=True), y


def test_the_label_shift_band_carries_the_error_of_the_estimated_weights() -> None:
    """20 references of 1,000 rows, 3 label-shifted windows each (one class at 80%): BBSE's
    w(y) is off by its sampling error, common to a reference's windows. Drawing w(y) from
    BBSE's sampling distribution inside the band covers the realized accuracy (sklearn's);
    the band that takes w(y) as exact does not."""
    rng = np.random.default_rng(7)
    covered: dict[str, list[bool]] = {"drawn": [], "exact": []}
    for r in range(20):
        ref_proba, ref_y = _gaussian_classes(rng, 1000, np.full(3, 1 / 3))
        # The scores are the reference's exact posterior: nothing to calibrate.
        cbpe = CBPE(metrics=["accuracy"], calibration="none", n_samples=200).fit(ref_proba, ref_y)
        bbse = LabelShift().fit(ref_proba.argmax(axis=1), ref_y)
        for w in range(3):
            priors = np.full(3, 0.1)
            priors[(r + w) % 3] = 0.8
            proba, y = _gaussian_classes(rng, WINDOW, priors)
            realized = accuracy_score(y, proba.argmax(axis=1))
            shift = bbse.estimate(proba.argmax(axis=1))
            assert isinstance(shift, PriorEstimate) and bbse.shifted(shift)
            weights, draws = bbse.class_weights(shift, cbpe.n_samples, cbpe.random_state)
            for kind, drawn in (("drawn", draws), ("exact", None)):
                band = cbpe.estimate(proba, None, weights, drawn).metrics["accuracy"]
                assert band.lower is not None and band.upper is not None
                covered[kind].append(band.lower <= realized <= band.upper)
    assert np.mean(covered["drawn"]) >= 0.90, np.mean(covered["drawn"])
    assert np.mean(covered["exact"]) < 0.85, np.mean(covered["exact"])


def test_a_covariate_shift_that_lowers_confidence_is_followed() -> None:
    """Windows drawn from the rows the model is least sure of: accuracy drops well below the
    reference's, and the estimate follows it."""
    ref_proba, ref_y, proba, y = _scenario(2, True, seed=11)
    cbpe = CBPE(n_samples=200).fit(ref_proba, ref_y)
    confidence = proba.max(axis=1)
    hard = np.flatnonzero(confidence < np.quantile(confidence, 0.3))
    rng = np.random.default_rng(0)
    errors, covered, realized_all = [], [], []
    for _ in range(40):
        rows = rng.choice(hard, WINDOW, replace=False)
        estimate = cbpe.estimate(proba[rows])
        assert estimate.trusted, estimate.reasons
        realized = accuracy_score(y[rows], proba[rows].argmax(axis=1))
        realized_all.append(realized)
        errors.append(abs(_value(estimate, "accuracy") - realized))
        covered.append(estimate.metrics["accuracy"].covers(realized))
    reference = cbpe.reference_metrics()["accuracy"]
    assert reference is not None and reference - np.mean(realized_all) > 0.1
    assert np.mean(errors) <= 0.02
    assert np.mean(covered) >= 0.85
    result = cbpe.run(proba[rows])
    assert result.decision.failing  # 5% below the reference warns, 10% is critical
    assert "estimated accuracy" in result.message and "unlabelled rows" in result.message


def test_miscalibrated_scores_are_calibrated_or_said_untrustworthy() -> None:
    """Scores pushed towards 0 and 1 (p**3 / (p**3 + (1-p)**3)): raw, CBPE would promise a
    far better accuracy than the labels give."""
    rng = np.random.default_rng(3)
    truth = rng.beta(2, 2, size=6000 + WINDOW)
    y = (rng.random(truth.size) < truth).astype(np.int64)
    sharp = truth**3 / (truth**3 + (1 - truth) ** 3)
    scores = np.column_stack([1 - sharp, sharp])
    reference, window = slice(0, 6000), slice(6000, None)
    realized = accuracy_score(y[window], scores[window].argmax(axis=1))

    auto = CBPE().fit(scores[reference], y[reference])
    assert auto.calibration_ is not None and auto.calibration_.method != "none"
    estimate = auto.estimate(scores[window])
    assert estimate.trusted
    assert abs(_value(estimate, "accuracy") - realized) < 0.03

    raw = CBPE(calibration="none").fit(scores[reference], y[reference])
    result = raw.run(scores[window])
    assert result.decision is Decision.NOT_ENOUGH_DATA
    assert "miscalibrated" in result.message
    assert result.score is None  # no number printed
    # The untrusted number would have been far off: this is why it is withheld.
    untrusted = result.details["untrusted"]["accuracy"]["value"]
    assert untrusted - realized > 0.05


def test_scores_no_calibration_can_fix_are_flagged() -> None:
    """A linear model of four classes made of two clusters each: its scores misorder rows in
    ways no per-class monotone map repairs (isotonic out of fold: a bin 15% off), and
    estimates from them would be 2-5 points low. CBPE says so instead of estimating."""
    ref_proba, ref_y, proba, y = _scenario(4, False, seed=4)
    cbpe = CBPE().fit(ref_proba, ref_y)
    result = cbpe.run(proba[:WINDOW])
    assert result.decision is Decision.NOT_ENOUGH_DATA
    assert "miscalibrated" in result.message
    forced = CBPE(max_calibration_gap=1.0).fit(ref_proba, ref_y)
    errors = []
    for w in range(20):
        rows = slice(w * WINDOW, (w + 1) * WINDOW)
        realized = accuracy_score(y[rows], proba[rows].argmax(axis=1))
        errors.append(_value(forced.estimate(proba[rows]), "accuracy") - realized)
    assert np.mean(errors) < -0.01  # what the flag withheld was biased


def test_underconfident_scores_of_a_small_reference_are_calibrated() -> None:
    """100 rows of a model twelve points less confident than it is right: the per-bin tests
    lack the power to see it, accuracy's calibration in the large does not."""
    rng = np.random.default_rng(8)
    calibrated = 0
    for seed in range(10):
        truth = rng.uniform(0.9, 1.0, 100)
        y = (rng.random(100) < truth).astype(np.int64)
        shown = truth - 0.12
        calibrated += calibrate(np.column_stack([1 - shown, shown]), y, seed=seed).method != "none"
    assert calibrated >= 8


def test_calibrated_scores_are_kept_raw() -> None:
    rng = np.random.default_rng(1)
    kept = 0
    for seed in range(10):
        p = rng.beta(0.7, 0.7, size=3000)
        y = (rng.random(3000) < p).astype(np.int64)
        kept += calibrate(np.column_stack([1 - p, p]), y, seed=seed).method == "none"
    assert kept >= 8


def test_a_reference_without_labels_or_probabilities_gives_reasons_not_numbers() -> None:
    ref_proba, ref_y, proba, _ = _scenario(2, False, seed=2)
    no_labels = CBPE().fit(ref_proba, None).run(proba[:WINDOW])
    assert no_labels.decision is Decision.NOT_ENOUGH_DATA
    assert "no labels" in no_labels.message and no_labels.score is None
    no_scores = CBPE().fit(None, ref_y).run(proba[:WINDOW])
    assert "no class probabilities" in no_scores.message
    few = CBPE().fit(ref_proba[:50], ref_y[:50]).run(proba[:WINDOW])
    assert "50 labelled rows" in few.message


def test_a_window_outside_the_references_scores_is_not_trusted() -> None:
    """A reference whose scores avoid the middle: a window scored 0.45-0.55 would need the
    calibration where it has no rows."""
    rng = np.random.default_rng(4)
    p = np.concatenate([rng.uniform(0, 0.3, 3000), rng.uniform(0.7, 1, 3000)])
    y = (rng.random(p.size) < p).astype(np.int64)
    cbpe = CBPE().fit(np.column_stack([1 - p, p]), y)
    middle = rng.uniform(0.45, 0.55, WINDOW)
    estimate = cbpe.estimate(np.column_stack([1 - middle, middle]))
    assert not estimate.trusted
    assert "barely holds" in estimate.reasons[0]
    assert estimate.to_dict()["metrics"] == {}
    inside = rng.uniform(0.75, 0.95, WINDOW)
    assert cbpe.estimate(np.column_stack([1 - inside, inside])).trusted


def test_named_classes_predictions_and_validation() -> None:
    rng = np.random.default_rng(5)
    p = rng.random(2000)
    y = np.where(rng.random(2000) < p, "yes", "no")
    scores = np.column_stack([1 - p, p])
    cbpe = CBPE(classes=["no", "yes"]).fit(scores, y)
    # A threshold of its own: the predictions given are what is scored.
    predictions = np.where(p > 0.8, "yes", "no")
    shifted = cbpe.estimate(scores[:1000], predictions[:1000]).value("accuracy")
    default = cbpe.estimate(scores[:1000]).value("accuracy")
    assert shifted is not None and default is not None and shifted < default
    with pytest.raises(ValueError, match="cannot be estimated"):
        CBPE(metrics=["log_loss"]).fit(scores, y)
    with pytest.raises(ValueError, match="n_samples"):
        CBPE(n_samples=0).fit(scores, y)
    with pytest.raises(ValueError, match="classes="):
        CBPE().fit(np.column_stack([scores, scores]) / 2, y)
    assert isinstance(create("estimated_performance", n_samples=50), CBPE)
    # One-dimensional scores are a binary model's positive class.
    one_d = CBPE(classes=["no", "yes"]).fit(p, y).estimate(p[:1000]).value("accuracy")
    assert one_d == pytest.approx(default)


@pytest.mark.parametrize("classes", [2, 4, 10])
def test_labels_are_drawn_by_inverting_the_cumulative_reweighted_probabilities(
    classes: int,
) -> None:
    """The draws' labels are the inverse of ``np.cumsum`` of the re-weighted probabilities
    at the uniforms, exactly; rows of zero weight keep their probabilities."""
    rng = np.random.default_rng(classes)
    proba = rng.dirichlet(np.full(classes, 0.3), 2000)
    proba[:50] = np.eye(classes)[rng.integers(0, classes, 50)]
    uniforms = rng.random((7, proba.shape[0]))
    mixes = rng.uniform(0, 3, (7, 1, classes))
    mixes[0, 0, 0] = 0.0  # with one-hot rows of class 0: rows of zero weight
    for mix in (None, mixes[:1], mixes):
        weighted = _reweighted(proba[None], mix)
        expected = np.minimum(
            (uniforms[..., None] > np.cumsum(weighted, axis=-1)).sum(-1), classes - 1
        )
        np.testing.assert_array_equal(_drawn_labels(proba, mix, uniforms), expected)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_a_windows_estimate_pays_no_per_call_overheads(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The estimate on every window neither calls scikit-learn's predict per curve (its input
    validation cost five times the arithmetic, 510 calls a window of 10 classes) nor finds
    the BLAS and OpenMP libraries anew to cap their threads (3 ms a call)."""
    rng = np.random.default_rng(3)
    scores = rng.dirichlet(np.ones(4), 400)
    labels = np.array([rng.choice(4, p=p) for p in scores])
    cbpe = CBPE(calibration=method, bootstrap=5, n_samples=50).fit(scores, labels)  # type: ignore[arg-type]
    cbpe.estimate(scores[:100])
    calls: list[str] = []

    def counted(name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(*args, **kwargs)

        return call

    for owner, name in (
        (IsotonicRegression, "predict"),
        (LogisticRegression, "predict_proba"),
        (threadpoolctl.ThreadpoolController, "__init__"),
    ):
        monkeypatch.setattr(owner, name, counted(name, getattr(owner, name)))
    assert cbpe.estimate(scores[100:]).value("accuracy") is not None
    assert calls == []
