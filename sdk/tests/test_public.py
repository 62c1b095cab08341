"""What ``import inferwatch`` offers, and the version a call without one is filed under."""

from __future__ import annotations

from sdk_frames import SpansOf

import inferwatch
from inferwatch import contract
from inferwatch_testkit.otlp import OTLPReceiver as Receiver

PUBLIC = [
    "CollectorError",
    "CollectorUnavailable",
    "LabelsRejected",
    "LabelsReport",
    "PredictionRecorder",
    "ReferenceRejected",
    "ReferenceReport",
    "RequestRejected",
    "Settings",
    "Stats",
    "alog_labels",
    "current_settings",
    "flush",
    "init",
    "is_initialized",
    "last_prediction_ids",
    "log_labels",
    "monitor",
    "set_reference",
    "shutdown",
    "stats",
]


def test_the_public_names_are_listed_and_resolve() -> None:
    assert sorted(inferwatch.__all__) == PUBLIC
    namespace: dict[str, object] = {}
    exec("from inferwatch import *", namespace)
    for name in PUBLIC:
        assert namespace[name] is getattr(inferwatch, name), name


def test_one_except_clause_catches_every_collector_error() -> None:
    for error in ("RequestRejected", "CollectorUnavailable", "LabelsRejected", "ReferenceRejected"):
        assert issubclass(getattr(inferwatch, error), inferwatch.CollectorError), error
    for refused in ("LabelsRejected", "ReferenceRejected"):
        assert issubclass(getattr(inferwatch, refused), inferwatch.RequestRejected), refused
    # Code that already catches connection failures keeps catching an unreachable collector.
    assert issubclass(inferwatch.CollectorUnavailable, ConnectionError)
    assert inferwatch.LabelsReport().requests == 0
    assert "upload_id" in inferwatch.ReferenceReport.__dataclass_fields__


def test_a_call_without_a_version_is_filed_under_the_default_version(
    live: Receiver, model: str, spans_of: SpansOf
) -> None:
    # The collector files a span without a version under this name too (contract.DEFAULT_VERSION).
    assert contract.DEFAULT_VERSION == "unversioned"

    @inferwatch.monitor(model=model)
    def predict(x: object) -> float:
        return 1.0

    @inferwatch.monitor(model=model, version="")
    def predict_empty(x: object) -> float:
        return 1.0

    predict({"a": 1.0})
    predict_empty({"a": 1.0})
    inferwatch.PredictionRecorder(model).record({"a": 1.0}, 2.0, start_ns=0)
    spans = spans_of(model, count=3)
    assert {s.attributes["ml.model.version"] for s in spans} == {contract.DEFAULT_VERSION}
    assert inferwatch.PredictionRecorder(model, "").version == contract.DEFAULT_VERSION


def test_the_retry_engine_is_a_public_module() -> None:
    from inferwatch import retry

    assert set(retry.__all__) == {
        "DEFAULT_BACKOFF",
        "DEFAULT_MAX_DELAY",
        "DEFAULT_MAX_RETRIES",
        "RETRYABLE_STATUS",
        "Attempts",
        "Outcome",
        "RetryPolicy",
        "asend",
        "parse_retry_after",
        "send",
    }
    assert all(hasattr(retry, name) for name in retry.__all__)
