"""log_labels / alog_labels against a collector stand-in on a real port."""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest

from inferwatch._http import CollectorError, CollectorUnavailable
from inferwatch.config import Settings, set_current_settings
from inferwatch.labels import LabelsRejected, LabelsReport, alog_labels, log_labels

if TYPE_CHECKING:
    from conftest import FakeCollector

FAST = {"backoff": 0.01, "timeout": 5.0}


def sent_labels(collector: FakeCollector) -> list[list[dict[str, object]]]:
    return [json.loads(r.body)["labels"] for r in collector.of("labels")]


def test_counts_are_summed_over_batches(collector: FakeCollector) -> None:
    collector.predictions = {f"p{i}" for i in range(0, 12_000, 2)}
    collector.labels = {"p0": 0, "p1": 1, "p11999": 1}
    labels = {f"p{i}": i % 3 for i in range(12_000)}

    report = log_labels("credit", labels, endpoint=collector.url, **FAST)

    assert report == LabelsReport(
        accepted=12_000, joined=6_000, pending=6_000, replaced=3, requests=3
    )
    batches = sent_labels(collector)
    assert [len(b) for b in batches] == [5_000, 5_000, 2_000]
    assert [r["prediction_id"] for b in batches for r in b] == list(labels)
    assert collector.labels == labels
    assert {json.loads(r.body)["model"] for r in collector.of("labels")} == {"credit"}


def test_batch_size_and_pairs(collector: FakeCollector) -> None:
    pairs = [(f"id{i}", "yes" if i % 2 else "no") for i in range(25)]
    report = log_labels("m", pairs, endpoint=collector.url, batch_size=10, **FAST)
    assert report.requests == 3
    assert [len(b) for b in sent_labels(collector)] == [10, 10, 5]
    assert report.accepted == 25 and report.pending == 25


def test_label_types_reach_the_collector_as_json_types(collector: FakeCollector) -> None:
    labels = {
        "a": True,
        "b": np.bool_(False),
        "c": 3,
        "d": np.int64(7),
        "e": 0.25,
        "f": np.float32(1.5),
        "g": "fraud",
        "h": np.str_("ok"),
    }
    log_labels("m", labels, endpoint=collector.url, **FAST)
    sent = {r["prediction_id"]: r["label"] for r in sent_labels(collector)[0]}
    assert sent == {
        "a": True,
        "b": False,
        "c": 3,
        "d": 7,
        "e": 0.25,
        "f": 1.5,
        "g": "fraud",
        "h": "ok",
    }
    assert type(sent["b"]) is bool and type(sent["d"]) is int and type(sent["c"]) is int


def test_rejection_quotes_the_collector_and_names_the_batch(collector: FakeCollector) -> None:
    collector.script("labels", 200, {"accepted": 2, "joined": 1, "pending": 1, "replaced": 0})
    collector.script(
        "labels", 400, {"error": "label for 'x3' is a float but model m is a classifier"}
    )
    with pytest.raises(LabelsRejected) as caught:
        log_labels(
            "m", {f"x{i}": i for i in range(5)}, endpoint=collector.url, batch_size=2, **FAST
        )
    error = caught.value
    assert error.status == 400
    assert error.message == "label for 'x3' is a float but model m is a classifier"
    assert error.batch == 1
    assert error.report == LabelsReport(accepted=2, joined=1, pending=1, replaced=0, requests=1)
    text = str(error)
    assert "is a float but model m is a classifier" in text
    assert "batch 2 of 3 (labels 2 to 3, after 1 accepted batch) with HTTP 400" in text
    assert len(collector.of("labels")) == 2  # not retried, later batch not sent


def test_api_key_is_sent_and_401_is_not_retried(collector: FakeCollector) -> None:
    collector.api_key = "s3cret"
    assert log_labels("m", {"a": 1}, endpoint=collector.url, api_key="s3cret", **FAST).accepted == 1
    with pytest.raises(LabelsRejected) as caught:
        log_labels("m", {"a": 1}, endpoint=collector.url, api_key="wrong", **FAST)
    assert caught.value.status == 401 and "API key" in str(caught.value)
    assert "wrong" not in str(caught.value)
    assert [r.status for r in collector.of("labels")] == [200, 401]


def test_endpoint_and_key_from_environment(
    collector: FakeCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector.api_key = "from-env"
    monkeypatch.setenv("INFERWATCH_ENDPOINT", collector.url)
    monkeypatch.setenv("INFERWATCH_API_KEY", "from-env")
    assert log_labels("m", {"a": 1}, **FAST).accepted == 1


def test_endpoint_and_key_from_init_settings_beat_the_environment(
    collector: FakeCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector.api_key = "from-init"
    monkeypatch.setenv("INFERWATCH_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("INFERWATCH_API_KEY", "from-env")
    set_current_settings(
        Settings(endpoint=collector.url, api_key="from-init", service_name="s", sample_rate=1.0)
    )
    assert log_labels("m", {"a": 1}, **FAST).accepted == 1


def test_429_waits_for_retry_after_then_succeeds(collector: FakeCollector) -> None:
    collector.script("labels", 429, {"error": "slow down"}, {"Retry-After": "1"})
    report = log_labels("m", {"a": 1}, endpoint=collector.url, **FAST)
    assert report.accepted == 1
    first, second = collector.of("labels")
    assert (first.status, second.status) == (429, 200)
    # Backoff alone would have waited ~0.01 s; the collector asked for 1 s.
    assert 0.95 <= second.at - first.at < 3.0
    assert first.body == second.body


def test_503_then_200_retries_with_backoff(collector: FakeCollector) -> None:
    collector.script("labels", 503, {"error": "busy"})
    collector.script("labels", 502)
    report = log_labels("m", {"a": 1, "b": 2}, endpoint=collector.url, **FAST)
    assert report.accepted == 2
    assert [r.status for r in collector.of("labels")] == [503, 502, 200]


def test_5xx_after_retries_raises_unavailable(collector: FakeCollector) -> None:
    collector.script("labels", 503, {"error": "collector overloaded"}, times=3)
    with pytest.raises(CollectorUnavailable) as caught:
        log_labels("m", {"a": 1}, endpoint=collector.url, max_retries=2, **FAST)
    assert caught.value.status == 503
    assert "3 attempts" in str(caught.value) and "collector overloaded" in str(caught.value)
    assert len(collector.of("labels")) == 3


def test_closed_port_raises_connection_error_quickly(closed_port_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionError) as caught:
        log_labels("m", {"a": 1}, endpoint=closed_port_url, max_retries=3, backoff=0.01, timeout=2)
    assert time.monotonic() - started < 2
    assert isinstance(caught.value, CollectorUnavailable) and caught.value.status is None
    assert "4 attempts" in str(caught.value) and closed_port_url in str(caught.value)


def test_a_hanging_collector_times_out_then_raises(collector: FakeCollector) -> None:
    collector.script("labels", 200, {}, delay=2.0, times=2)
    started = time.monotonic()
    with pytest.raises(CollectorUnavailable, match="ReadTimeout"):
        log_labels("m", {"a": 1}, endpoint=collector.url, max_retries=1, backoff=0.01, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert len(collector.of("labels")) == 2


def test_no_labels_sends_nothing(collector: FakeCollector) -> None:
    assert log_labels("m", {}, endpoint=collector.url) == LabelsReport()
    assert collector.requests == []


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"a": math.nan}, "must be finite"),
        ({"a": np.float64("inf")}, "must be finite"),
        ({"a": [1, 2]}, r"class \(str, int or bool\) or a finite float, got list"),
        ({"a": {"x": 1}}, "got dict"),
        ({"a": None}, "got NoneType"),
        ({"a": np.array([1])}, "got ndarray"),
        ({"a": ""}, "empty string"),
        ({1: 1}, "prediction id must be a non-empty string.*got int"),
        ({"": 1}, "non-empty string"),
        ([("a", 1, 2)], r"labels\[0\] must be a \(prediction_id, label\) pair"),
        (["ab"], r"labels\[0\] must be a \(prediction_id, label\) pair"),
        ("a", "must be a mapping"),
        (42, "must be a mapping"),
    ],
)
def test_bad_labels_raise_before_anything_is_sent(
    collector: FakeCollector, labels: object, expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        log_labels("m", labels, endpoint=collector.url, **FAST)  # type: ignore[arg-type]
    assert collector.requests == []


def test_a_bad_label_late_in_the_input_stops_every_batch(collector: FakeCollector) -> None:
    labels = [(f"id{i}", 1) for i in range(30)] + [("late", math.nan)]
    with pytest.raises(ValueError, match="'late'"):
        log_labels("m", labels, endpoint=collector.url, batch_size=10, **FAST)
    assert collector.requests == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"batch_size": 10_001}, "from 1 to 10000"),
        ({"batch_size": 0}, "from 1 to 10000"),
        ({"max_retries": -1}, "max_retries"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_settings(collector: FakeCollector, kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        log_labels("m", {"a": 1}, endpoint=collector.url, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model must be a non-empty string"):
        log_labels("", {"a": 1}, endpoint=collector.url)


async def test_async_batches_and_retries(collector: FakeCollector) -> None:
    collector.predictions = {"p1"}
    collector.script("labels", 503, {"error": "busy"}, {"Retry-After": "0.3"})
    labels = {f"p{i}": float(i) for i in range(12_000)}
    report = await alog_labels("m", labels, endpoint=collector.url, **FAST)
    assert report == LabelsReport(accepted=12_000, joined=1, pending=11_999, replaced=0, requests=3)
    statuses = [r.status for r in collector.of("labels")]
    assert statuses == [503, 200, 200, 200]
    first, second = collector.of("labels")[:2]
    assert second.at - first.at >= 0.28
    assert [len(b) for b in sent_labels(collector)] == [5_000, 5_000, 5_000, 2_000]


async def test_async_rejection_and_closed_port(
    collector: FakeCollector, closed_port_url: str
) -> None:
    collector.script("labels", 413, {"error": "too many labels; the limit is 10000"})
    with pytest.raises(LabelsRejected, match="the limit is 10000"):
        await alog_labels("m", {"a": 1}, endpoint=collector.url, **FAST)
    with pytest.raises(CollectorUnavailable, match="2 attempts"):
        await alog_labels("m", {"a": 1}, endpoint=closed_port_url, max_retries=1, **FAST)


def test_a_success_without_counts_is_an_error(collector: FakeCollector) -> None:
    collector.script("labels", 200, {"ok": True})
    with pytest.raises(CollectorError, match="without the counts accepted, joined"):
        log_labels("m", {"a": 1}, endpoint=collector.url, **FAST)
