"""Where the endpoint and the API key come from: argument > init > environment > default."""

from __future__ import annotations

from typing import Any

import pytest

import inferwatch
from inferwatch.config import (
    DEFAULT_ENDPOINT,
    Settings,
    current_settings,
    resolve_api_key,
    resolve_endpoint,
)


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERWATCH_ENDPOINT", raising=False)
    monkeypatch.delenv("INFERWATCH_API_KEY", raising=False)
    assert current_settings() is None
    assert resolve_endpoint() == DEFAULT_ENDPOINT
    assert resolve_api_key() is None
    monkeypatch.setenv("INFERWATCH_ENDPOINT", "http://env:4318/")
    monkeypatch.setenv("INFERWATCH_API_KEY", "env-key")
    assert resolve_endpoint() == "http://env:4318"
    assert resolve_api_key() == "env-key"
    assert resolve_endpoint("http://arg:1") == "http://arg:1"
    assert resolve_api_key("arg-key") == "arg-key"


def test_init_settings_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERWATCH_ENDPOINT", "http://env:4318")
    monkeypatch.setenv("INFERWATCH_API_KEY", "env-key")
    settings = inferwatch.init(endpoint="http://init:4318/v1/traces", api_key="init-key")
    assert settings.endpoint == "http://init:4318"  # a copied OTLP URL still means the base
    assert settings.traces_url == "http://init:4318/v1/traces"
    assert current_settings() is settings
    assert resolve_endpoint() == "http://init:4318"
    assert resolve_api_key() == "init-key"
    assert resolve_endpoint("http://arg:1") == "http://arg:1"
    inferwatch.shutdown(timeout=1)
    assert current_settings() is None
    assert resolve_endpoint() == "http://env:4318"


def test_init_reads_the_environment_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERWATCH_ENDPOINT", "http://env:4318")
    monkeypatch.delenv("INFERWATCH_API_KEY", raising=False)
    inferwatch.init(endpoint="http://first:4318", api_key="first-key")
    second = inferwatch.init()
    assert second.endpoint == "http://env:4318"
    assert second.api_key is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("endpoint", "collector:4318", "http:// or https://"),
        ("sample_rate", 1.5, "between 0 and 1"),
        ("max_queue_spans", 0, "positive integer"),
        ("export_timeout", -1.0, "positive number of seconds"),
        ("compression", "zstd", "'gzip' or 'none'"),
    ],
)
def test_bad_settings_say_what_was_expected(field: str, value: object, message: str) -> None:
    fields: dict[str, Any] = {
        "endpoint": "http://x:1",
        "api_key": None,
        "service_name": "s",
        "sample_rate": 1.0,
    }
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        Settings(**fields)
    with pytest.raises(ValueError, match=message):
        inferwatch.init(**{k: v for k, v in fields.items() if k != "api_key"})
    assert not inferwatch.is_initialized()


def test_public_api_is_re_exported_in_one_place() -> None:
    for name in inferwatch.__all__:
        assert getattr(inferwatch, name) is not None
    for name in ("init", "monitor", "flush", "shutdown", "stats", "last_prediction_ids"):
        assert callable(getattr(inferwatch, name))
