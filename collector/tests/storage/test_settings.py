"""The SettingsStore contract: model settings and detector state, replaced whole, kept across
restarts."""

from __future__ import annotations

from .conftest import Backend


def test_model_settings_round_trip_and_are_replaced_whole(backend: Backend) -> None:
    storage = backend.open()
    assert storage.settings.model_configs() == {}
    storage.settings.put_model_config("m", {"window": 30, "detectors": {"ks": {"alpha": 0.1}}})
    storage.settings.put_model_config("n", {"allowed_lateness": "5m"})
    storage.settings.put_model_config("m", {"detectors": {"ks": {"alpha": 0.2}}})
    storage = backend.reopen(storage)
    assert storage.settings.model_configs() == {
        "m": {"detectors": {"ks": {"alpha": 0.2}}},
        "n": {"allowed_lateness": "5m"},
    }


def test_detector_state_is_kept_per_model_version_and_check(backend: Backend) -> None:
    storage = backend.open()
    assert storage.settings.detector_state("m", "1", "outliers") is None
    storage.settings.put_detector_state("m", "1", "outliers", b"\x00first")
    storage.settings.put_detector_state("m", "1", "outliers", b"\x00\xffsecond")
    storage.settings.put_detector_state("m", "2", "outliers", b"v2")
    storage.settings.put_detector_state("m", "1", "other", b"other")
    storage = backend.reopen(storage)
    assert storage.settings.detector_state("m", "1", "outliers") == b"\x00\xffsecond"
    assert storage.settings.detector_state("m", "2", "outliers") == b"v2"
    assert storage.settings.detector_state("m", "1", "other") == b"other"
    assert storage.settings.detector_state("n", "1", "outliers") is None
