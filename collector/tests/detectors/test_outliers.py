from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import mahalanobis
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from inferwatch.collector.detectors import (
    MahalanobisScorer,
    OnlineOutlierDetector,
    OutlierDetector,
    Whitening,
)

Cancer = tuple[np.ndarray, np.ndarray, tuple[str, ...]]


def _inject(
    x: np.ndarray, rng: np.random.Generator, count: int, features: int = 3, sds: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a few features pushed ``sds`` reference sds away: (window, is_outlier)."""
    window = x.copy()
    rows = rng.choice(len(x), count, replace=False)
    sd = x.std(axis=0)
    for row in rows:
        moved = rng.choice(x.shape[1], min(features, x.shape[1]), replace=False)
        window[row, moved] += sds * sd[moved] * rng.choice([-1, 1], moved.size)
    truth = np.zeros(len(x), dtype=bool)
    truth[rows] = True
    return window, truth


# The forest splits one column at a time: on the raw columns it barely saw rows that break the
# correlations of 30 features (ROC AUC 0.83-0.97, and few rows above its 1% threshold); on the
# reference-whitened columns (its default) it ranks them almost as well as a covariance model.
@pytest.mark.parametrize(
    ("method", "min_auc"),
    [("isolation_forest", 0.98), ("mahalanobis", 0.98), ("robust_mahalanobis", 0.98)],
)
def test_injected_outliers_in_breast_cancer(
    breast_cancer: Cancer, rng: np.random.Generator, method: str, min_auc: float
) -> None:
    x, _, names = breast_cancer
    order = rng.permutation(len(x))
    reference, held_out = x[order[:350]], x[order[350:]]
    detector = OutlierDetector(method=method).fit(reference, feature_names=names)
    window, truth = _inject(held_out, rng, 20, features=8, sds=4.0)
    ids = [f"req-{i}" for i in range(len(window))]
    result = detector.run(dict(zip(names, window.T, strict=True)), row_ids=ids)
    assert result.rows is not None
    assert roc_auc_score(truth, result.rows.scores) > min_auc
    flagged = set(result.rows.flagged_ids)
    assert flagged and flagged <= set(ids)
    np.testing.assert_array_equal(detector.score(window), result.rows.scores)
    json.dumps(result.to_dict(), allow_nan=False)
    assert result.decision == "alert"  # 20 of 219 is far above the 1% expected
    assert len(flagged & {ids[i] for i in np.flatnonzero(truth)}) >= 15
    assert (
        "most unusual: row 'req-" in result.message
        and "sd from the reference mean" in result.message
    )


def test_false_positive_rate_on_clean_data_is_near_target(rng: np.random.Generator) -> None:
    clean = rng.normal(size=(8000, 6)) @ rng.normal(size=(6, 6))
    detector = OutlierDetector(target_fpr=0.02).fit(clean[:4000])
    result = detector.run(clean[4000:])
    # Out-of-fold calibration: the rate on new clean rows is near the target, not far above.
    assert 0.01 <= result.score <= 0.035
    assert result.decision == "ok"
    # The flag count's null: beta-binomial, with q ~ Beta(k + 1, n - k) from the k of n
    # calibration scores above the threshold.
    calibration = detector.reference_scores_
    above = int(np.count_nonzero(calibration > detector.threshold_.value))
    flagged = int(result.rows.flags.sum())
    expected = stats.betabinom(4000, above + 1, calibration.size - above).sf(flagged - 1)
    assert result.p_value == pytest.approx(expected)


def test_false_alarm_rate_on_clean_windows_stays_at_alpha() -> None:
    """400 clean windows over 40 fits: alarms at most alpha, though each threshold is noisy.

    A 1% threshold set on 2,000 rows flags between about 0.6% and 1.5% of new rows depending
    on the draw; tested against the binomial at exactly 1%, these windows alarm about 12% of
    the time (checked below), which is why the null is the beta-binomial.
    """
    rng = np.random.default_rng(7)
    alarms = binomial_alarms = windows = 0
    for fit in range(40):
        mixing = rng.normal(size=(5, 5))
        detector = OutlierDetector("mahalanobis", min_rate_ratio=1.0, random_state=fit)
        detector.fit(rng.normal(size=(2000, 5)) @ mixing)
        for _ in range(10):
            result = detector.run(rng.normal(size=(2000, 5)) @ mixing)
            flagged = int(result.rows.flags.sum())
            alarms += result.decision == "alert"
            binomial_alarms += stats.binomtest(flagged, 2000, 0.01, "greater").pvalue < 0.05
            windows += 1
    assert stats.binomtest(alarms, windows, 0.05, alternative="greater").pvalue > 0.01, alarms
    assert binomial_alarms / windows > 0.08, binomial_alarms


def test_the_effect_size_gate_spares_a_large_window_a_negligible_excess() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(20_000, 4))
    window = rng.normal(size=(200_000, 4))
    detector = OutlierDetector("mahalanobis", prefit=False).fit(reference)
    threshold = detector.threshold_.value
    # 0.3% more rows pushed just over the threshold: significant on 200,000 rows, yet tiny.
    scores = -detector.estimator_.score_samples(window)
    below = np.flatnonzero(scores <= threshold)[:600]
    window[below] *= np.sqrt(threshold / scores[below])[:, None] * 1.01
    result = detector.run(window)
    assert result.p_value < 0.05 and result.details["rate_ratio"] < 1.5
    assert result.decision == "ok"
    assert "below the 1.5x effect-size gate" in result.message
    strict = OutlierDetector("mahalanobis", min_rate_ratio=1.0).fit(reference).run(window)
    assert strict.decision == "alert"


@pytest.mark.parametrize("method", ["isolation_forest", "mahalanobis"])
def test_flag_rate_on_clean_breast_cancer_rows_is_near_target(
    breast_cancer: Cancer, method: str
) -> None:
    x, _, _ = breast_cancer
    flagged = rows = 0
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(len(x))
        detector = OutlierDetector(method=method, random_state=seed).fit(x[order[:350]])
        result = detector.run(x[order[350:]])
        flagged += int(result.rows.flags.sum())
        rows += result.rows.flags.size
    # 1,095 clean held-out rows, target 1%: Binomial(1095, 0.01) lies in [3, 20] with 99.9%.
    assert 3 <= flagged <= 20, flagged


def test_mahalanobis_scores_match_scipy(rng: np.random.Generator) -> None:
    x = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 3))
    scorer = MahalanobisScorer().fit(x)
    inverse = np.linalg.inv(np.cov(x, rowvar=False, bias=True))
    expected = [mahalanobis(row, x.mean(axis=0), inverse) ** 2 for row in x[:5]]
    np.testing.assert_allclose(-scorer.score_samples(x[:5]), expected, rtol=1e-8)


def test_any_estimator_with_score_samples_and_a_prefit_one(rng: np.random.Generator) -> None:
    reference = rng.normal(size=(1000, 4))
    window, truth = _inject(rng.normal(size=(300, 4)), rng, 10)
    lof = OutlierDetector(method=LocalOutlierFactor(novelty=True)).fit(reference)
    assert roc_auc_score(truth, lof.run(window).rows.scores) > 0.9
    # A user's detector, already fitted elsewhere: the reference only sets the threshold.
    fitted = LocalOutlierFactor(novelty=True).fit(rng.normal(size=(1000, 4)))
    prefit = OutlierDetector(method=fitted, prefit=True).fit(reference)
    assert prefit.estimator_ is fitted
    assert roc_auc_score(truth, prefit.run(window).rows.scores) > 0.9
    with pytest.raises(TypeError, match="neither score_samples nor decision_function"):
        OutlierDetector(method=object()).fit(reference)


def test_online_detector_state_round_trip(rng: np.random.Generator) -> None:
    mixing = rng.normal(size=(5, 5))
    first = OnlineOutlierDetector().fit(rng.normal(size=(3000, 5)) @ mixing)
    stream = [rng.normal(size=(200, 5)) @ mixing for _ in range(3)]
    warm = first.run(stream[0])
    restored = OnlineOutlierDetector.from_dict(json.loads(json.dumps(first.to_dict())))
    # Only unflagged rows update the state (update="inliers").
    assert restored.count_ == first.count_ == 3000 + int((~warm.rows.flags).sum())
    for window in stream[1:]:
        a, b = first.run(window), restored.run(window)
        np.testing.assert_array_equal(a.rows.scores, b.rows.scores)
    np.testing.assert_array_equal(first.mean_, restored.mean_)
    np.testing.assert_array_equal(first.m2_, restored.m2_)
    assert restored.get_params() == first.get_params()


def test_online_running_moments_equal_batch_moments(rng: np.random.Generator) -> None:
    x = rng.normal(size=(1000, 4)) @ rng.normal(size=(4, 4)) + 3
    detector = OnlineOutlierDetector(update="all").fit(x[:400])
    detector.run(x[400:700])
    detector.run(x[700:])
    np.testing.assert_allclose(detector.mean_, x.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(detector.m2_ / (len(x) - 1), np.cov(x, rowvar=False), rtol=1e-8)


@pytest.mark.parametrize("method", ["mahalanobis", "zscore"])
def test_online_detector_catches_injected_outliers(rng: np.random.Generator, method: str) -> None:
    reference = rng.normal(size=(3000, 6))
    detector = OnlineOutlierDetector(method=method).fit(reference)
    window, truth = _inject(rng.normal(size=(500, 6)), rng, 25)
    result = detector.run(window, row_ids=np.arange(500) + 10_000)
    assert roc_auc_score(truth, result.rows.scores) > 0.95
    assert result.decision == "alert"
    assert set(result.rows.flagged_ids) & set((np.flatnonzero(truth) + 10_000).tolist())
    clean = detector.run(rng.normal(size=(2000, 6)))
    assert clean.score < 0.025


def test_whitening_lets_the_forest_see_broken_correlations(breast_cancer: Cancer) -> None:
    """Rows moved 5 sd on 5 of 30 correlated features, over 3 splits (bench/bench_detectors.py
    runs 10: ROC AUC 0.875 raw, 0.995 whitened; recall at 1% 0.01 raw, 0.93 whitened)."""
    x, _, _ = breast_cancer
    auc: dict[bool, list[float]] = {False: [], True: []}
    recall: dict[bool, list[float]] = {False: [], True: []}
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        order = rng.permutation(len(x))
        reference, held_out = x[order[:350]], x[order[350:]]
        window, truth = _inject(held_out, rng, 20, features=5, sds=5.0)
        for whiten in (False, True):
            forest = OutlierDetector(method="isolation_forest", whiten=whiten)
            result = forest.fit(reference).run(window)
            auc[whiten].append(roc_auc_score(truth, result.rows.scores))
            recall[whiten].append(float(result.rows.flags[truth].mean()))
    assert np.mean(auc[True]) > 0.97 and np.mean(auc[True]) - np.mean(auc[False]) > 0.05, auc
    assert np.mean(recall[True]) > 0.7 and np.mean(recall[False]) < 0.3, recall
    forest = OutlierDetector(method="isolation_forest").fit(x)
    assert forest.estimator_.steps[0][0] == "whitening"


def test_whitening_gives_unit_variance_and_keeps_exact_relations_visible(
    rng: np.random.Generator,
) -> None:
    x = rng.normal(size=(5000, 4)) @ rng.normal(size=(4, 4))
    x = np.column_stack([x, x[:, 0] + x[:, 1]])  # an exact relation: one direction of no variance
    whitening = Whitening().fit(x)
    covariance = np.cov(whitening.transform(x), rowvar=False)
    np.testing.assert_allclose(np.diag(covariance)[:4], 1.0, rtol=1e-9)
    np.testing.assert_allclose(covariance[:4, :4], np.eye(4), atol=1e-9)
    broken = x[:5].copy()
    broken[:, 4] += 0.1 * x[:, 4].std()
    assert np.abs(whitening.transform(broken)).max(axis=1).min() > 10
    assert np.abs(whitening.transform(x[:5])).max() < 10


def test_whiten_is_validated() -> None:
    with pytest.raises(ValueError, match="whiten must be true, false or 'auto'"):
        OutlierDetector(whiten="yes").fit(np.zeros((20, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot whiten"):
        OutlierDetector(prefit=True, whiten=True).fit(np.zeros((20, 2)))


def _move_a_few(
    x: np.ndarray, reference_sd: np.ndarray, rng: np.random.Generator, share: float
) -> tuple[np.ndarray, np.ndarray]:
    """``share`` of the rows with 1-3 features moved 4-6 reference sds, each its own way."""
    window = x.copy()
    count = round(share * len(x))
    rows = rng.choice(len(x), count, replace=False)
    for row in rows:
        moved = rng.choice(x.shape[1], rng.integers(1, 4), replace=False)
        window[row, moved] += (
            rng.uniform(4, 6, moved.size) * reference_sd[moved] * rng.choice([-1, 1], moved.size)
        )
    truth = np.zeros(len(x), dtype=bool)
    truth[rows] = True
    return window, truth


def test_the_default_finds_a_few_moved_features_like_an_expert(breast_cancer: Cancer) -> None:
    """1-3 of 30 correlated, skewed features moved 4-6 sd in 5 of 100 rows: the default method
    ranks them as issue 11 asks (ROC AUC >= 0.99, precision >= 0.85 among the top-k rows, k the
    true count), where the Mahalanobis distance and the isolation forest do not (0.995 / 0.84
    and 0.983 / 0.69 over 10 splits in bench/bench_detectors.py)."""
    x, _, names = breast_cancer
    auc: dict[str, list[float]] = {"residuals": [], "mahalanobis": []}
    precision: dict[str, list[float]] = {"residuals": [], "mahalanobis": []}
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        order = rng.permutation(len(x))
        reference, held_out = x[order[:350]], x[order[350:]]
        window, truth = _move_a_few(held_out, reference.std(axis=0), rng, 0.05)
        for method in auc:
            result = OutlierDetector(method=method).fit(reference).run(window)
            assert result.rows is not None
            top = np.argsort(-result.rows.scores)[: truth.sum()]
            auc[method].append(roc_auc_score(truth, result.rows.scores))
            precision[method].append(float(truth[top].mean()))
    assert OutlierDetector().method == "residuals"
    assert np.mean(auc["residuals"]) >= 0.99 and np.mean(precision["residuals"]) >= 0.85
    assert np.mean(precision["residuals"]) > np.mean(precision["mahalanobis"]), precision
    # The row's explanation names the moved feature against what the others predict.
    result = OutlierDetector().fit(reference, feature_names=names).run(window)
    assert "sd from what the other features predict" in result.message


def test_residuals_are_the_gaussian_conditional_ones(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each residual is a regression residual: the feature regressed on all the others (least
    squares on the reference), over the residual sd, as scikit-learn computes it (without the
    ridge for nearly collinear columns, which moves them a little)."""
    from sklearn.linear_model import LinearRegression

    from inferwatch.collector.detectors import ResidualScorer

    monkeypatch.setattr("inferwatch.collector.detectors.outliers._RIDGE", 0.0)
    # Correlated but well conditioned, so that the ridge for collinear columns does not show.
    mixing = np.eye(5) + 0.4 * rng.normal(size=(5, 5))
    reference = rng.normal(size=(4000, 5)) @ mixing
    window = rng.normal(size=(50, 5)) @ mixing
    scorer = ResidualScorer().fit(reference)
    z_ref, z_win = reference, window
    for j in range(5):
        others = np.delete(np.arange(5), j)
        fit = LinearRegression().fit(z_ref[:, others], z_ref[:, j])
        residual_sd = np.sqrt(np.mean((z_ref[:, j] - fit.predict(z_ref[:, others])) ** 2))
        expected = (z_win[:, j] - fit.predict(z_win[:, others])) / residual_sd
        np.testing.assert_allclose(scorer.residuals(window)[:, j], expected, rtol=1e-3, atol=1e-3)
    # Values far beyond the reference rank first instead of overflowing to NaN.
    extreme = window.copy()
    extreme[0, 0] = 1e308
    scores = -scorer.score_samples(extreme)
    assert np.isfinite(scores).all() and scores.argmax() == 0


def test_residuals_hold_the_target_rate_on_ill_conditioned_references() -> None:
    """Random mixings of 20 normals give covariances with condition numbers up to 1e9. With a
    ridge of 1e-6 one such reference flagged 1.7% of clean rows for a 1% target (its windows
    alarmed 6 times in 10); each of 20 references now flags close to the target."""
    rng = np.random.default_rng(4)
    rates = []
    for fit in range(20):
        mixing = rng.normal(size=(20, 20))
        detector = OutlierDetector(random_state=fit).fit(rng.normal(size=(5000, 20)) @ mixing)
        scores = detector.score(rng.normal(size=(20_000, 20)) @ mixing)
        rates.append(float(np.mean(scores > detector.threshold_.value)))
    # 20,000 rows: a rate's standard error is 0.07 points.
    assert max(rates) < 0.0135, rates
