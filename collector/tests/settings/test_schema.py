"""The settings as one typed schema: every key and value is checked when the settings load (or
are put through the API), in words that name the setting; defaults are the detectors' own."""

from __future__ import annotations

import inspect
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

from inferwatch.collector import ConfigError, Registry, load_config
from inferwatch.collector.detect.checks.drift import ColumnDriftSettings, MultivariateSettings
from inferwatch.collector.detect.checks.outliers import OutlierSettings
from inferwatch.collector.detect.checks.performance import PerformanceSettings
from inferwatch.collector.detectors import (
    MMDDrift,
    OnlineOutlierDetector,
    OutlierDetector,
    PerformanceCheck,
    UnivariateDrift,
)
from inferwatch.collector.detectors.params import annotation_of
from inferwatch.collector.settings.collector import CollectorConfig

# (table of [models.m], the sentence the refusal must contain) -- each loaded fine before the
# schema and failed, or silently did nothing, only when a window was evaluated.
LATE_FAILURES = [
    (
        {"detectors": {"multivariate_drift": {"alpha": 5}}},
        "models.m.detectors.multivariate_drift.alpha must be between 0 and 1, got 5",
    ),
    (
        {"detectors": {"univariate_drift": {"correction": "hochberg"}}},
        "models.m.detectors.univariate_drift.correction must be one of 'bonferroni', 'holm', "
        "'bh' or 'none', got 'hochberg'",
    ),
    (
        {"detectors": {"performance": {"metrics": ["acuracy"]}}},
        "models.m.detectors.performance: no metric named 'acuracy'",
    ),
    (
        {"detectors": {"performance": {"min_coverage": 3}}},
        "models.m.detectors.performance.min_coverage must be in (0, 1], got 3",
    ),
    (
        {"alerts": {"checks": ["ks:*"]}},
        "models.m.alerts.checks: 'ks:*' names no check: there is no check 'ks'; the checks are "
        "correlation_drift, data_quality, error_rate",
    ),
    (
        {"alerts": {"critical": {"acuracy": {"below": 0.8}}}},
        "models.m.alerts.critical: 'acuracy' names no check",
    ),
    (
        {"allowed_lateness": float("inf")},
        "models.m.allowed_lateness must be a duration such as 30, '30s', '5m' or '1h'",
    ),
    (
        {
            "detectors": {
                "univariate_drift": {"threshold": {"mode": "static", "warning": float("nan")}}
            }
        },
        "models.m.detectors.univariate_drift.threshold.warning must be a finite number, got nan",
    ),
    (
        {"detectors": {"univariate_drift": {"alpah": 0.1}}},
        "models.m.detectors.univariate_drift has unknown setting(s) alpah; known: alpha, "
        "correction, enabled",
    ),
    (
        {"detectors": {"outliers": {"min_rate_ratio": True}}},
        "models.m.detectors.outliers.min_rate_ratio must be a number, got True",
    ),
]


@pytest.mark.parametrize(("table", "sentence"), LATE_FAILURES)
def test_a_bad_value_is_refused_when_the_settings_load(
    table: dict[str, Any], sentence: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(None, models={"m": table})
    assert sentence in str(refused.value)


def test_the_documented_alert_filter_names_every_feature_of_a_check(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(
        '[models.credit.alerts]\nchecks = ["error_rate", "univariate_drift:*"]\n'
        'critical = { "univariate_drift:*" = { above = 0.5 } }\n'
    )
    policy = load_config(path).model("credit").alerts
    assert policy.alerts_on("univariate_drift:income") and policy.alerts_on("error_rate")
    assert not policy.alerts_on("univariate_drift") and not policy.alerts_on("outliers")
    assert policy.critical_threshold("univariate_drift:age") is not None


def test_defaults_are_the_detectors_own() -> None:
    """A setting that is a detector's parameter has the detector's default and declared type."""
    mirrored = [
        (ColumnDriftSettings, UnivariateDrift, ColumnDriftSettings.model_fields),
        (MultivariateSettings, MMDDrift, ("alpha", "min_samples", "random_state")),
        (OutlierSettings, OutlierDetector, ("target_fpr", "alpha", "min_rate_ratio", "whiten")),
        (PerformanceSettings, PerformanceCheck, ("min_coverage", "min_labels")),
    ]
    checked = 0
    for model, detector, names in mirrored:
        signature = inspect.signature(detector)
        hints = typing.get_type_hints(model, include_extras=True)
        for name in names:
            if name not in signature.parameters:
                continue
            assert model.model_fields[name].default == signature.parameters[name].default, name
            assert hints[name] == annotation_of(detector, name), name
            checked += 1
    assert checked >= 12
    assert OutlierSettings().online_update == OnlineOutlierDetector().update


def test_every_check_has_a_settings_model_with_defaults_and_known_keys() -> None:
    registry = Registry.load()
    assert set(registry.check_names) >= {
        "error_rate",
        "data_quality",
        "schema",
        "label_coverage",
        "univariate_drift",
        "prediction_drift",
        "multivariate_drift",
        "label_drift",
        "outliers",
        "performance",
    }
    for name in registry.check_names:
        settings = registry.check_settings(name)()  # every key has a default
        assert settings.enabled
        with pytest.raises(ValueError, match="has unknown setting"):
            registry.check_settings(name).model_validate({"no_such_key": 1})


def test_a_config_change_through_the_api_is_checked_as_the_file_is(
    make_collector: Any,
) -> None:
    collector = make_collector()
    with collector.client() as client:
        for table, sentence in LATE_FAILURES:
            # As Python's json writes them: Infinity and NaN too (JSON has neither).
            body = json.dumps(table)
            response = client.put(
                "/v1/models/m/config", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, (table, response.text)
            assert sentence.replace("models.m.", "config.") in response.json()["error"]
        # Nothing of it was stored: the model runs on the defaults.
        config = client.get("/v1/models/m/config").json()
        assert config["detectors"]["multivariate_drift"]["alpha"] == 0.05
        assert config["alerts"]["checks"] is None


@pytest.mark.parametrize("bad", [0, -5, 2.5, "many", True])
def test_the_outbox_bound_is_a_positive_count(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(f"[collector]\nmax_pending_deliveries = {json.dumps(bad)}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "max_pending_deliveries" in str(refused.value)
    assert load_config(None).max_pending_deliveries == 10_000
    path.write_text("[collector]\nmax_pending_deliveries = 5\n")
    assert load_config(path).max_pending_deliveries == 5


def test_docs_collector_md_lists_every_collector_setting_with_its_default() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "collector.md").read_text()
    listing = tomllib.loads(doc.split("```toml\n", 1)[1].split("```", 1)[0])["collector"]
    fields = CollectorConfig.model_fields
    names = {field.alias or name: name for name, field in fields.items() if not field.exclude}
    # Tables of their own, and api_keys, the simple form of keys.
    listed = set(listing) - {"api_keys"}
    assert listed - set(names) == set(), "docs/collector.md lists settings that do not exist"
    missing = set(names) - listed - {"defaults", "models"}
    assert missing == set(), f"docs/collector.md's [collector] lacks {sorted(missing)}"
    defaults = CollectorConfig()
    for key, value in listing.items():
        # Numbers are the defaults; strings and lists are examples (a path, a URL, a module).
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert getattr(defaults, names[key]) == value, f"[collector] {key}"
    for key, value in listing["limits"].items():
        if isinstance(value, int | float):
            assert getattr(defaults.limits, key) == value, f"[collector.limits] {key}"
