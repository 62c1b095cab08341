from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from inferwatch.collector.detectors import UnivariateDrift, reference_counts, univariate
from inferwatch.collector.detectors import stats as dstats


@pytest.mark.parametrize(
    "make",
    [
        lambda r: (r.normal(size=5000), r.normal(0.1, 1.2, size=700)),
        lambda r: (r.integers(0, 5, 3000).astype(float), r.integers(0, 6, 400).astype(float)),
        lambda r: (r.exponential(size=300), r.exponential(size=1500)),
    ],
)
def test_ks_and_wasserstein_match_scipy(rng: np.random.Generator, make) -> None:
    reference, window = make(rng)
    d, p, w1 = dstats.ks_and_wasserstein(dstats.SortedSample.of(reference), window)
    exact = stats.ks_2samp(reference, window, method="exact")
    assert d == pytest.approx(exact.statistic, abs=1e-12)
    assert p == pytest.approx(exact.pvalue, abs=0.015)
    assert w1 == pytest.approx(stats.wasserstein_distance(reference, window), rel=1e-9)


def test_chi_squared_matches_scipy_and_pools_sparse_buckets() -> None:
    reference = np.array([500, 300, 150, 45, 3, 2])
    window = np.array([40, 35, 20, 4, 1, 0])
    result = dstats.chi2_two_sample(reference, window)
    # Buckets 4-6 have expected window counts below 5: pooled into one before testing.
    pooled = np.array([[500, 300, 150, 50], [40, 35, 20, 5]])
    expected = stats.chi2_contingency(pooled, correction=False)
    assert result.merged == 3
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_unseen_categories_are_pooled_apart_from_rare_ones() -> None:
    reference = np.array([3000, 1500, 500, 10, 0, 0])
    window = np.array([480, 240, 50, 2, 20, 8])
    result = dstats.chi2_two_sample(reference, window)
    # Rare seen category (10 + 2) and the two unseen ones (20 + 8) become two buckets.
    table = np.array([[3000, 1500, 500, 10, 0], [480, 240, 50, 2, 28]])
    expected = stats.chi2_contingency(table, correction=False)
    assert result.merged == 3
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value < 1e-6


def test_psi_and_js_on_counts() -> None:
    p, q = np.array([40, 30, 20, 10]), np.array([25, 30, 20, 25])
    ps, qs = p / p.sum(), q / q.sum()
    assert dstats.psi(p, q) == pytest.approx(np.sum((qs - ps) * np.log(qs / ps)))
    assert dstats.js_distance(p, q) == pytest.approx(jensenshannon(ps, qs, base=2))


def test_corrections_match_definitions() -> None:
    p = np.array([0.001, 0.02, 0.03, 0.5])
    np.testing.assert_allclose(dstats.adjust_p_values(p, "bonferroni"), [0.004, 0.08, 0.12, 1.0])
    np.testing.assert_allclose(
        dstats.adjust_p_values(p, "bh"), stats.false_discovery_control(p, method="bh")
    )


@pytest.mark.parametrize("correction", ["bonferroni", "bh"])
def test_false_alarm_rate_on_unshifted_windows_stays_at_alpha(
    rng: np.random.Generator, correction: str
) -> None:
    windows, features, alpha = 300, 20, 0.05
    detector = UnivariateDrift(alpha=alpha, correction=correction).fit(
        rng.normal(size=(5000, features))
    )
    alarms = sum(
        detector.run(rng.normal(size=(300, features))).decision == "alert" for _ in range(windows)
    )
    # The rate is compatible with <= alpha: a one-sided binomial test does not reject it.
    assert stats.binomtest(alarms, windows, alpha, alternative="greater").pvalue > 0.05


def test_uncorrected_tests_do_alarm_too_often(rng: np.random.Generator) -> None:
    detector = UnivariateDrift(correction="none").fit(rng.normal(size=(5000, 20)))
    alarms = sum(detector.run(rng.normal(size=(300, 20))).decision == "alert" for _ in range(60))
    assert alarms / 60 > 0.3


def test_power_on_a_clear_shift_names_the_features(rng: np.random.Generator) -> None:
    detector = UnivariateDrift().fit(rng.normal(size=(5000, 20)))
    hits = 0
    for _ in range(20):
        window = rng.normal(size=(1000, 20))
        window[:, :3] += 0.5
        result = detector.run(window)
        hits += set(result.details["features_drifted"]) >= {"x0", "x1", "x2"}
    assert hits == 20
    assert "feature `x" in result.message and "mean +0." in result.message


def test_tiny_window_is_not_enough_data(rng: np.random.Generator) -> None:
    detector = UnivariateDrift(min_samples=100).fit(rng.normal(size=(2000, 3)))
    result = detector.run(rng.normal(size=(40, 3)) + 5)
    assert result.decision == "not_enough_data"
    assert all(f.decision == "not_enough_data" for f in result.features)
    assert "at least 100" in result.features[0].message


def test_big_window_negligible_shift_is_significant_but_not_flagged(
    rng: np.random.Generator,
) -> None:
    detector = UnivariateDrift().fit(rng.normal(size=(100_000, 1)))
    result = detector.run(rng.normal(0.03, 1.0, size=(200_000, 1)))
    feature = result.features[0]
    assert feature.adjusted_p_value is not None and feature.adjusted_p_value < 1e-6
    assert feature.effect_sizes["wasserstein_sd"] < 0.1 and feature.effect_sizes["psi"] < 0.1
    assert feature.decision == "ok" and result.decision == "ok"
    assert "significant but negligible" in feature.message
    # The same test at 0.3 sd passes the gate.
    assert detector.run(rng.normal(0.3, 1.0, size=(200_000, 1))).decision == "alert"


def test_categorical_drift_counts_unseen_categories(rng: np.random.Generator) -> None:
    reference = pd.DataFrame({"city": rng.choice(list("abcd"), 5000, p=[0.4, 0.3, 0.2, 0.1])})
    window = pd.DataFrame(
        {"city": rng.choice(list("abcdxyz"), 1000, p=[0.25, 0.3, 0.2, 0.15, 0.04, 0.03, 0.03])}
    )
    result = UnivariateDrift().fit(reference).run(window)
    city = result.feature("city")
    assert city.decision == "alert" and city.test == "chi2"
    assert city.details["unseen_categories"] == 3
    assert city.effect_sizes["unseen_share"] == pytest.approx(city.details["unseen_rows"] / 1000)
    assert "3 categories unseen in the reference" in city.message
    assert "`a` 4" in city.message  # names the category that moved most


def test_counts_path_gives_the_rows_path_numbers(rng: np.random.Generator) -> None:
    reference = {"x": rng.normal(size=4000), "c": rng.choice(list("abc"), 4000)}
    window = {
        "x": rng.normal(0.4, 1, size=800),
        "c": rng.choice(list("abc"), 800, p=[0.6, 0.2, 0.2]),
    }
    bins = reference_counts(reference, bins=10)
    cuts = bins["x"][0]
    ref_cats = {
        k: int(v) for k, v in zip(*np.unique(reference["c"], return_counts=True), strict=True)
    }
    win_cats = {k: int(v) for k, v in zip(*np.unique(window["c"], return_counts=True), strict=True)}
    window_bins = {"x": dstats.bin_counts(window["x"], cuts)}

    by_counts = UnivariateDrift().fit_counts(bins=bins, categories={"c": ref_cats})
    counted = by_counts.run_counts(bins=window_bins, categories={"c": win_cats})
    by_rows = UnivariateDrift().fit(reference).run(window)
    hybrid = UnivariateDrift().fit(reference, bins=bins).run(window, bins=window_bins)

    assert counted.feature("x").test == "binned_chi2" and by_rows.feature("x").test == "ks_mw"
    assert counted.feature("x").effect_sizes["psi"] == pytest.approx(
        by_rows.feature("x").effect_sizes["psi"]
    )
    assert counted.feature("c").statistic == pytest.approx(by_rows.feature("c").statistic)
    assert hybrid.feature("x").statistic == by_rows.feature("x").statistic
    assert {r.decision for r in (counted, by_rows, hybrid)} == {"alert"}


def test_counts_must_match_the_frozen_bins() -> None:
    detector = UnivariateDrift().fit_counts(bins={"x": (np.array([0.0, 1.0]), np.array([5, 5, 5]))})
    with pytest.raises(ValueError, match="no window counts for the reference's features"):
        detector.run_counts(bins={})
    with pytest.raises(ValueError, match="has 2 bin counts, the reference's bins need 3"):
        detector.run_counts(bins={"x": np.array([1, 2])})


def test_parameters_are_validated_at_fit() -> None:
    with pytest.raises(ValueError, match="correction must be one of"):
        UnivariateDrift(correction="hochberg").fit(np.zeros((200, 1)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        UnivariateDrift(alpha=5).fit(np.zeros((200, 1)))


def _mixed_columns(rng: np.random.Generator) -> tuple[dict, dict]:
    """Columns that take every branch of the one-pass test: continuous, tied with the reference
    (integers), tied within the window (rounded), missing values in the window or in the
    reference (so the columns differ in length), constant."""
    reference = {
        "normal": rng.normal(size=3000),
        "integers": rng.integers(0, 5, 3000).astype(float),
        "rounded": np.round(rng.normal(size=3000), 1),
        "gaps": rng.exponential(size=3000),
        "sparse_reference": np.where(rng.random(3000) < 0.2, np.nan, rng.normal(size=3000)),
        "constant": np.ones(3000),
    }
    window = {
        "normal": rng.normal(0.2, 1.1, size=600),
        "integers": rng.integers(0, 6, 600).astype(float),
        "rounded": np.round(rng.normal(size=600), 1),
        "gaps": np.where(rng.random(600) < 0.3, np.nan, rng.exponential(size=600)),
        "sparse_reference": rng.normal(size=600),
        "constant": np.ones(600),
    }
    window["gaps"][:5] = np.inf
    return reference, window


def test_columns_tested_in_one_pass_match_scipy_column_by_column(
    rng: np.random.Generator,
) -> None:
    reference, window = _mixed_columns(rng)
    detector = UnivariateDrift(bins=10).fit(reference)
    result = detector.run(window)
    for name in reference:
        r = reference[name][np.isfinite(reference[name])]
        w = window[name][np.isfinite(window[name])]
        found = result.feature(name)
        assert (found.n_reference, found.n_window) == (r.size, w.size)
        assert found.statistic == pytest.approx(stats.ks_2samp(r, w).statistic, abs=1e-12)
        ks_p = stats.ks_2samp(r, w, method="exact").pvalue
        assert found.details["ks_p_value"] == pytest.approx(ks_p, abs=0.015)
        # scipy's asymptotic Mann-Whitney with its tie correction; a constant column has no
        # ranks to compare (scipy: nan), the test says no evidence.
        mw = stats.mannwhitneyu(w, r, method="asymptotic", use_continuity=False)
        mw_p = mw.pvalue if np.isfinite(mw.pvalue) else 1.0
        assert found.details["mann_whitney_p_value"] == pytest.approx(mw_p, rel=1e-9, abs=1e-12)
        t = np.tan((0.5 - found.details["ks_p_value"]) * np.pi) + np.tan((0.5 - mw_p) * np.pi)
        assert found.p_value == pytest.approx(0.5 - np.arctan(t / 2) / np.pi, rel=1e-6, abs=1e-12)
        sizes = found.effect_sizes
        assert sizes["wasserstein"] == pytest.approx(
            stats.wasserstein_distance(r, w), rel=1e-9, abs=1e-12
        )
        cuts = dstats.quantile_cuts(reference[name], 10)
        r_bins, w_bins = dstats.bin_counts(r, cuts), dstats.bin_counts(w, cuts)
        assert sizes["psi"] == dstats.psi(r_bins, w_bins)
        assert sizes["js_distance"] == dstats.js_distance(r_bins, w_bins)
        if r.std() > 0:
            assert sizes["mean_shift_sd"] == pytest.approx((w.mean() - r.mean()) / r.std())
            assert sizes["sd_ratio"] == pytest.approx(w.std() / r.std())
    missing = np.mean(~np.isfinite(window["gaps"]))
    assert result.feature("gaps").details["missing_share"] == pytest.approx(missing)


def test_a_column_tested_with_others_gets_the_numbers_it_gets_alone(
    rng: np.random.Generator,
) -> None:
    reference, window = _mixed_columns(rng)
    together = UnivariateDrift().fit(reference).run(window)
    for name in reference:
        alone = UnivariateDrift().fit({name: reference[name]}).run({name: window[name]})
        mine = together.feature(name)
        assert mine.statistic == alone.features[0].statistic
        assert mine.p_value == alone.features[0].p_value
        np.testing.assert_equal(dict(mine.effect_sizes), dict(alone.features[0].effect_sizes))


def test_bin_counts_of_sorted_values_equal_bin_counts(rng: np.random.Generator) -> None:
    values = np.round(rng.normal(size=2000), 1)  # many values exactly on a cut
    cuts = dstats.quantile_cuts(values, 10)
    assert np.isin(cuts, values).all()
    np.testing.assert_array_equal(
        dstats.sorted_bin_counts(np.sort(values), cuts), dstats.bin_counts(values, cuts)
    )


def test_window_bins_given_for_rows_must_match_the_reference_bins(
    rng: np.random.Generator,
) -> None:
    detector = UnivariateDrift(bins=10).fit({"x": rng.normal(size=1000)})
    with pytest.raises(ValueError, match="feature 'x': the window has 3 bin counts"):
        detector.run({"x": rng.normal(size=300)}, bins={"x": np.array([100, 100, 100])})


def test_columns_split_into_several_passes_get_the_same_numbers(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = rng.normal(size=(2000, 6))
    window = rng.normal(size=(500, 6))
    detector = UnivariateDrift().fit(reference)
    whole = detector.run(window)
    monkeypatch.setattr(univariate, "TOGETHER_VALUES", 1200)  # two columns of 500 a pass
    split = detector.run(window)
    for a, b in zip(whole.features, split.features, strict=True):
        assert (a.feature, a.statistic, a.p_value) == (b.feature, b.statistic, b.p_value)
        assert a.effect_sizes == b.effect_sizes


def _three_shapes(rng: np.random.Generator, rows: int, shift_sd: float = 0.0) -> dict:
    """A normal, a lognormal and a bimodal feature, the bench's shapes, each moved by
    ``shift_sd`` of its own sd."""
    columns = {
        "normal": rng.normal(size=rows),
        "lognormal": rng.lognormal(0.0, 0.5, size=rows),
        "bimodal": np.where(rng.integers(0, 2, rows), 2.0, -2.0) + rng.normal(size=rows),
    }
    return {name: x + shift_sd * x.std() for name, x in columns.items()}


def test_a_small_mean_shift_is_found_far_more_often_than_by_ks_alone() -> None:
    # 0.1 sd on 1,000 rows against 10,000: a 3-standard-error move. At the level a feature gets
    # among 25 with five checks sharing 5% (0.01 / 25), KS alone misses it in most windows.
    rng = np.random.default_rng(11)
    detector = UnivariateDrift().fit(_three_shapes(rng, 10_000))
    level, windows = 0.01 / 25, 300
    found_by = {"combined": 0, "ks": 0}
    for _ in range(windows):
        features = detector.run(_three_shapes(rng, 1_000, 0.1)).features
        found_by["combined"] += any(f.p_value < level for f in features)
        found_by["ks"] += any(f.details["ks_p_value"] < level for f in features)
    ks = found_by["ks"] / windows
    combined = found_by["combined"] / windows
    assert ks < 0.75 and combined > 0.78 and combined - ks > 0.1, found_by


def test_clean_windows_fail_at_alpha() -> None:
    # Every trial a fresh reference and window from one distribution, so that the rate is the
    # test's own and not one reference's luck; a Clopper-Pearson 99% interval around alpha.
    rng = np.random.default_rng(12)
    trials, alpha = 2_000, 0.05
    below = {name: {0.05: 0, 0.01: 0} for name in ("normal", "lognormal", "bimodal")}
    failing = 0
    for _ in range(trials):
        detector = UnivariateDrift(alpha=alpha, min_wasserstein_sd=0.0).fit(
            _three_shapes(rng, 2_000)
        )
        result = detector.run(_three_shapes(rng, 500))
        failing += result.decision == "alert"
        for f in result.features:
            for level in (0.05, 0.01):
                below[f.feature][level] += f.p_value < level
    for name, counts in below.items():
        for level, count in counts.items():
            ci = stats.binomtest(count, trials, level).proportion_ci(0.99)
            assert ci.low <= level <= ci.high, (name, level, count)
    # Bonferroni over the 3 features: at most alpha, and not far below it.
    ci = stats.binomtest(failing, trials).proportion_ci(0.99)
    assert ci.low <= alpha and ci.high >= 0.03, failing
