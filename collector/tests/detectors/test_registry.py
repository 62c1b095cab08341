from __future__ import annotations

import json

import numpy as np
import pytest

from inferwatch.collector.detectors import create, registered


def test_builtin_detectors_are_registered() -> None:
    names = set(registered())
    assert {
        "univariate_drift",
        "mmd_drift",
        "classifier_drift",
        "reconstruction_drift",
        "outliers",
        "online_outliers",
        "performance",
        "prediction_drift",
        "label_drift",
    } <= names


def test_each_installed_detector_has_the_name_of_its_entry_point() -> None:
    for name, cls in registered().items():
        assert cls.name == name
        assert create(name).get_params() == type(create(name))().get_params()


def test_parameters_are_checked_at_fit_against_their_declared_types() -> None:
    detector = create("univariate_drift", alpha=5, min_samples=0)  # stored as given
    assert detector.get_params()["alpha"] == 5
    with pytest.raises(ValueError, match="alpha must be between 0 and 1, got 5"):
        detector.fit(np.zeros((200, 2)))
    with pytest.raises(ValueError, match=r"n_permutations must be an integer, got 2\.5"):
        create("mmd_drift", n_permutations=2.5).fit(np.zeros((200, 2)))
    # numpy numbers are the numbers they hold.
    create("univariate_drift", min_samples=np.int64(50)).fit(np.zeros((200, 2)))


def test_create_names_unknown_detectors_and_parameters() -> None:
    with pytest.raises(ValueError, match="no detector named 'nope'; registered: "):
        create("nope")
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['alpah'\]"):
        create("univariate_drift", alpah=0.1)


def test_results_are_the_collectors_rows_and_are_json(rng: np.random.Generator) -> None:
    detector = create("univariate_drift").fit(rng.normal(size=(500, 3)))
    result = detector.run(rng.normal(size=(200, 3)) + np.array([0, 0, 1]))
    rows = [row.model_dump(mode="json") for row in result.results()]
    assert len(rows) == 4  # summary + one per feature
    for row in rows:
        assert set(row) == {
            "detector",
            "feature",
            "score",
            "p_value",
            "threshold",
            "decision",
            "severity",
            "message",
            "details",
        }
    assert rows[0]["feature"] is None and rows[3]["feature"] == "x2"
    assert rows[3]["decision"] == "alert" and rows[1]["decision"] == "ok"
    assert rows[3]["severity"] == "warning" and rows[1]["severity"] is None
    json.dumps(result.to_dict(), allow_nan=False)
