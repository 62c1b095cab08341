"""The per-model figures pushed over OTLP/HTTP to a receiver that decodes them: the same points,
attributes and values as /metrics, and none of a model once its windows are gone."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import pytest

from inferwatch.collector import ConfigError, load_config
from inferwatch.collector.runtime.model_figures import FAMILIES
from inferwatch_testkit.otlp import OTLPReceiver, ReceivedPoint, start_otlp_receiver

from .conftest import Scenario
from .helpers import CHURN, WINE, Series, model_series, scrape


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with start_otlp_receiver() as running:
        yield running


def as_series(points: list[ReceivedPoint]) -> Series:
    """Points named as Prometheus names them (a counter with _total)."""
    series: Series = {}
    for point in points:
        name = point.metric + ("_total" if point.kind == "sum" else "")
        key = (name, tuple(sorted((k, str(v)) for k, v in point.attributes.items())))
        assert key not in series, f"{key} twice in one export"
        series[key] = point.value
    return series


def has_model(model: str) -> Callable[[list[ReceivedPoint]], bool]:
    return lambda points: any(p.attributes.get("model") == model for p in points)


def test_the_figures_are_pushed_as_metrics_shows_them(
    scenario: Scenario, receiver: OTLPReceiver
) -> None:
    # A URL without a path gets /v1/metrics.
    scenario.restart(metrics_endpoint=receiver.url, metrics_interval=0.2)
    try:
        points = receiver.wait_for_export(has_model(WINE), timeout=60)
        with scenario.collector.client() as client:
            scraped = model_series(scrape(client))
        assert as_series(points) == scraped
        assert {p.metric for p in points} == {family.name for family in FAMILIES}
        kinds = {family.name: family.kind for family in FAMILIES}
        for point in points:
            if kinds[point.metric] == "counter":
                assert (point.kind, point.monotonic, point.cumulative) == ("sum", True, True)
            else:
                assert point.kind == "gauge"
        window_end = next(p for p in points if p.metric.endswith("window_end_timestamp_seconds"))
        assert window_end.unit == "s"
        assert window_end.resource["service.name"] == "inferwatch-collector"

        with sqlite3.connect(scenario.db, timeout=30) as db:
            db.execute("DELETE FROM windows WHERE model = ?", (CHURN,))
        receiver.clear()
        gone = receiver.wait_for_export(lambda points: not has_model(CHURN)(points), timeout=60)
        assert has_model(WINE)(gone)
    finally:
        scenario.restart()


def test_the_endpoint_must_be_an_http_url() -> None:
    config = load_config(None, metrics_endpoint="https://otel.example.com:4318")
    assert config.metrics_endpoint == "https://otel.example.com:4318/v1/metrics"
    kept = load_config(None, metrics_endpoint="http://otel:4318/custom/v1/metrics")
    assert kept.metrics_endpoint == "http://otel:4318/custom/v1/metrics"
    with pytest.raises(ConfigError, match=r"metrics_endpoint.*http"):
        load_config(None, metrics_endpoint="otel:4318")
    with pytest.raises(ConfigError, match="metrics_max_features"):
        load_config(None, metrics_max_features=0)
