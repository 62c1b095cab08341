"""The settings ``inferwatch.init`` was given, and where the endpoint and API key come from.

Every client of the collector (the span exporter, the labels and reference clients, the CLI)
resolves its endpoint and key the same way: an explicit argument, else what ``init`` was given,
else the environment, else the default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from inferwatch.redact import Rules, check_rules

ENDPOINT_ENV = "INFERWATCH_ENDPOINT"
API_KEY_ENV = "INFERWATCH_API_KEY"
SERVICE_NAME_ENV = "INFERWATCH_SERVICE_NAME"
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_SERVICE_NAME = "inferwatch-model"

Compression = Literal["gzip", "none"]


@dataclass(frozen=True)
class Settings:
    """What ``inferwatch.init`` configured; see its docstring for each field."""

    endpoint: str
    api_key: str | None = field(repr=False)
    service_name: str
    sample_rate: float
    max_queue_spans: int = 2048
    max_queue_bytes: int = 64 * 1024 * 1024
    max_export_batch: int = 512
    export_timeout: float = 10.0
    flush_interval: float = 1.0
    compression: Compression = "none"
    retry_backoff: float = 0.25
    max_retry_delay: float = 0.5
    # Per model: features dropped or hashed before anything leaves the process (see
    # inferwatch.redact), on top of what each monitor() says; and the key hashing uses.
    redact: Mapping[str, Rules] = field(default_factory=dict, hash=False)
    redact_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(
                f"endpoint must be an http:// or https:// base URL, got {self.endpoint!r}"
            )
        if not (isinstance(self.sample_rate, int | float) and 0.0 <= self.sample_rate <= 1.0):
            raise ValueError(f"sample_rate must be between 0 and 1, got {self.sample_rate!r}")
        for name in ("max_queue_spans", "max_queue_bytes", "max_export_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("export_timeout", "flush_interval", "retry_backoff", "max_retry_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.redact, Mapping):
            raise TypeError(f"redact must map model names to rules, got {self.redact!r}")
        checked = {}
        for model, rules in self.redact.items():
            if not isinstance(model, str) or not model:
                raise ValueError(f"redact: model names must be non-empty strings, got {model!r}")
            checked[model] = check_rules(rules, f"redact[{model!r}]")
        object.__setattr__(self, "redact", checked)
        if self.compression not in ("gzip", "none"):
            raise ValueError(f"compression must be 'gzip' or 'none', got {self.compression!r}")

    @property
    def traces_url(self) -> str:
        from inferwatch.contract import TRACES_PATH

        return self.endpoint + TRACES_PATH


_current: Settings | None = None


def current_settings() -> Settings | None:
    """The settings of the last ``inferwatch.init``; None before it (or after ``shutdown``)."""
    return _current


def set_current_settings(settings: Settings | None) -> None:
    """Record what ``init`` configured (``inferwatch.init`` calls this; users do not)."""
    global _current
    _current = settings


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The collector's base URL: argument > init > $INFERWATCH_ENDPOINT > the default."""
    if endpoint is None:
        settings = _current
        endpoint = settings.endpoint if settings is not None else os.environ.get(ENDPOINT_ENV)
    endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
    # A URL copied from an OTLP exporter setting still means the collector's base.
    return endpoint.removesuffix("/v1/traces")


def resolve_api_key(api_key: str | None = None) -> str | None:
    """The collector's API key: argument > init > $INFERWATCH_API_KEY > none."""
    if api_key is not None:
        return api_key or None
    settings = _current
    if settings is not None and settings.api_key is not None:
        return settings.api_key
    return os.environ.get(API_KEY_ENV) or None


def resolve_service_name(service_name: str | None = None) -> str:
    return service_name or os.environ.get(SERVICE_NAME_ENV) or DEFAULT_SERVICE_NAME
