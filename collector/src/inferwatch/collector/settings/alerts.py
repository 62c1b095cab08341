"""Per-model alerting settings: which checks alert, after how many windows, and where to deliver.

In the collector's TOML::

    [models.credit.alerts]
    consecutive = 2                    # failing windows in a row before an alert opens
                                       # (the default; a critical failure opens at once)
    checks = ["error_rate", "univariate_drift:*"]   # omit for every check; "univariate_drift:*"
                                       # is each feature's row of univariate_drift (a check's
                                       # rows make one alert, its features' as findings)
    min_severity = "warning"           # webhooks get events of this severity and above
    repeat_after = "4h"                # remind of an open, unacknowledged alert (default never)
    stale_after = "7d"                 # resolve a version's alerts after this long without
                                       # traffic (the default; "0s" never)
    silences = [{ check = "univariate_drift", until = 2024-05-01T18:00:00Z }]  # version = "3"
    critical = { error_rate = { above = 0.2 }, "label_coverage" = { below = 0.1 } }
    retry = { attempts = 4, backoff = "0.5s", max_backoff = "30s" }
    webhooks = [
        { url = "https://hooks.slack.com/services/...", format = "slack", timeout = "5s" },
        { url = "https://ops.example.com/inferwatch" },   # format = "json" by default
    ]

Check names and patterns must name a real check, and a webhook format a real notifier, of the
plug-ins loaded (``checks.Catalog``): a typo would otherwise switch alerts off without a word.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from inferwatch import retry as retry_engine
from inferwatch.collector.detectors.params import Count, Number, Table
from inferwatch.collector.detectors.result import Severity
from inferwatch.collector.settings.checks import Catalog, catalog_of
from inferwatch.collector.settings.durations import Duration

REDACTED = "<redacted>"


def redact_url(url: str) -> str:
    """Scheme, host and port only: webhook paths and queries often carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}/{REDACTED}"


def check_matches(pattern: str, check: str) -> bool:
    """``"univariate_drift:*"`` matches every feature's row of ``univariate_drift``; any other
    pattern matches itself."""
    if pattern.endswith(":*"):
        return check.startswith(pattern[:-1])
    return pattern == check


def real_check(pattern: str, catalog: Catalog) -> str:
    """``pattern`` (``check``, ``check:feature`` or ``check:*``) if it names a loaded check."""
    name, colon, feature = pattern.partition(":")
    if not name or (colon and not feature):
        raise ValueError(
            f"{pattern!r} is not a check name, 'check:feature' or 'check:*' (e.g. "
            "'univariate_drift:*')"
        )
    if name not in catalog.check_names:
        raise ValueError(
            f"{pattern!r} names no check: there is no check {name!r}; the checks are "
            + ", ".join(sorted(catalog.check_names))
        )
    return pattern


def _positive(seconds: float) -> float:
    if not seconds > 0:
        raise ValueError(f"must be positive, got {seconds!r}")
    return seconds


# Webhooks retry every 5xx (a receiver's 500 is often passing) besides 429.
WEBHOOK_RETRY_STATUSES = frozenset({429, *range(500, 600)})


class RetryPolicy(Table):
    """How webhook deliveries retry: ``attempts`` tries in all; retry n (0 for the first) waits
    between half and all of ``backoff * 2**n`` seconds, or what the webhook's Retry-After asks,
    at most ``max_backoff``. The retry engine (``engine()``) does it."""

    attempts: Count = 4
    backoff_seconds: Duration = Field(default=0.5, alias="backoff")
    max_backoff_seconds: Duration = Field(default=30.0, alias="max_backoff")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_backoff_seconds < self.backoff_seconds:
            raise ValueError("needs max_backoff at least backoff")
        return self

    def engine(self) -> retry_engine.RetryPolicy:
        """These settings as a policy of the retry engine (inferwatch.retry) that sends."""
        return retry_engine.RetryPolicy(
            max_retries=self.attempts - 1,
            backoff=self.backoff_seconds,
            max_delay=self.max_backoff_seconds,
            retry_statuses=WEBHOOK_RETRY_STATUSES,
        )


class Webhook(Table):
    """Where alert events are POSTed, in the format of a notifier (``json`` or ``slack``)."""

    url: str
    format: str = "json"
    timeout_seconds: Annotated[Duration, AfterValidator(_positive)] = Field(
        default=5.0, alias="timeout"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL, got {redact_url(url)}")
        if parts.path.endswith(REDACTED):
            # Settings as shown by the API, sent back unchanged, must not break the webhook.
            raise ValueError("was given in its redacted form; give the full URL")
        return url

    @field_validator("format")
    @classmethod
    def _known_format(cls, format: str, info: ValidationInfo) -> str:
        catalog = catalog_of(info)
        names = catalog.notifier_names if catalog is not None else (format,)
        if format not in names:
            raise ValueError(
                f"must be one of {', '.join(map(repr, sorted(names)))}, got {format!r}"
            )
        return format

    @field_serializer("url")
    def _shown_redacted(self, url: str) -> str:
        # Settings are shown (the API, logs); the token-bearing URL is not.
        return redact_url(url)

    def __repr__(self) -> str:
        return (
            f"Webhook({redact_url(self.url)!r}, format={self.format!r}, "
            f"timeout_seconds={self.timeout_seconds!r})"
        )

    __str__ = __repr__


class CriticalThreshold(Table):
    """A failing check is critical when its score is above ``above`` or below ``below``."""

    above: Number | None = None
    below: Number | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if self.above is None and self.below is None:
            raise ValueError("needs 'above' or 'below'")
        return self

    def crossed(self, score: float | None) -> bool:
        if score is None:
            return False
        return (self.above is not None and score > self.above) or (
            self.below is not None and score < self.below
        )


STALE_AFTER_SECONDS = 7 * 86400.0


def _a_time(value: object) -> object:
    # pydantic would take a number as seconds since 1970: the schema (and TOML) say a time.
    if not isinstance(value, str | datetime):
        raise ValueError(f"must be a time such as 2026-12-01T12:00:00Z, got {value!r}")
    return value


class SilenceRule(Table):
    """No notifications about the model's alerts of ``check`` (a check's name, or ``*`` for
    every check) and ``version`` (every version when omitted) until ``until``."""

    check: str = "*"
    version: str | None = None
    until: Annotated[AwareDatetime, BeforeValidator(_a_time)]

    @field_validator("check")
    @classmethod
    def _real_check(cls, check: str, info: ValidationInfo) -> str:
        if ":" in check:
            raise ValueError(
                f"names a check, not a feature's row: alerts are per check, got {check!r}"
            )
        catalog = catalog_of(info)
        if check != "*" and catalog is not None:
            real_check(check, catalog)
        return check

    def covers(self, check: str, version: str, now_ms: int) -> bool:
        return (
            now_ms < self.until.timestamp() * 1000
            and self.check in ("*", check)
            and self.version in (None, version)
        )


class AlertPolicy(Table):
    """How one model's check results become alerts, and where they are delivered."""

    # Failing windows in a row (windows without enough data do not break a run) to open one;
    # a failure past a critical threshold opens at once. Two keeps a healthy model's false
    # alerts about one in 2,000 windows at the cost of one window's delay (docs/alerts.md).
    consecutive: Count = 2
    # Check names or "check:*" patterns that alert; None means every check.
    checks: tuple[str, ...] | None = None
    # By check name or "check:*" pattern; the exact name wins.
    critical: dict[str, CriticalThreshold] = {}
    # Webhooks receive events of this severity and above; the log receives every event.
    min_severity: Severity = Severity.WARNING
    webhooks: tuple[Webhook, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    # While an alert stays open, failing and unacknowledged, a reminder goes out this long
    # after the last notification about it; None: never.
    repeat_after_seconds: Annotated[Duration, AfterValidator(_positive)] | None = Field(
        default=None, alias="repeat_after"
    )
    # A version's open alerts resolve as stale once its last window ended this long ago; 0
    # turns it off.
    stale_after_seconds: Duration = Field(default=STALE_AFTER_SECONDS, alias="stale_after")
    # Silences of every alert of a check (or of all checks) set ahead, for maintenance.
    silences: tuple[SilenceRule, ...] = ()

    @field_validator("checks")
    @classmethod
    def _real_checks(cls, checks: tuple[str, ...] | None, info: ValidationInfo) -> Any:
        catalog = catalog_of(info)
        if checks is not None and catalog is not None:
            for pattern in checks:
                real_check(pattern, catalog)
        return checks

    @field_validator("critical")
    @classmethod
    def _real_critical_checks(
        cls, critical: dict[str, CriticalThreshold], info: ValidationInfo
    ) -> Any:
        catalog = catalog_of(info)
        if catalog is not None:
            for pattern in critical:
                real_check(pattern, catalog)
        return critical

    def alerts_on(self, check: str) -> bool:
        return self.checks is None or any(check_matches(p, check) for p in self.checks)

    def critical_threshold(self, check: str) -> CriticalThreshold | None:
        if check in self.critical:
            return self.critical[check]
        for pattern, threshold in self.critical.items():
            if check_matches(pattern, check):
                return threshold
        return None

    def silenced(self, check: str, version: str, now_ms: int) -> bool:
        return any(rule.covers(check, version, now_ms) for rule in self.silences)

    def delivers(self, severity: Severity) -> bool:
        return severity.rank >= self.min_severity.rank
