"""Per-model alerting settings: which checks alert, after how many windows, and where to deliver.

In the collector's TOML (keys as in ``AlertPolicy.merged``)::

    [models.credit.alerts]
    consecutive = 2                    # failing windows in a row before an alert opens
    checks = ["error_rate", "ks:*"]    # omit for every check; "ks:*" is every feature of ks
    min_severity = "warning"           # webhooks get events of this severity and above
    critical = { error_rate = { above = 0.2 }, "label_coverage" = { below = 0.1 } }
    retry = { attempts = 4, backoff = "0.5s", max_backoff = "30s" }
    webhooks = [
        { url = "https://hooks.slack.com/services/...", format = "slack", timeout = "5s" },
        { url = "https://ops.example.com/inferwatch" },   # format = "json" by default
    ]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from inferwatch.collector.detectors.result import Severity
from inferwatch.collector.settings.parsing import (
    ConfigError,
    as_mapping,
    parse_duration,
    reject_unknown,
)

WebhookFormat = Literal["json", "slack"]
WEBHOOK_FORMATS: tuple[WebhookFormat, ...] = ("json", "slack")
REDACTED = "<redacted>"


def redact_url(url: str) -> str:
    """Scheme, host and port only: webhook paths and queries often carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/{REDACTED}"


def check_matches(pattern: str, check: str) -> bool:
    """``"ks:*"`` matches every feature's row of ``ks``; any other pattern matches itself."""
    if pattern.endswith(":*"):
        return check.startswith(pattern[:-1])
    return pattern == check


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, waiting ``backoff`` seconds, doubling up to ``max_backoff``."""

    attempts: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"attempts must be at least 1, got {self.attempts!r}")
        if self.max_backoff_seconds < self.backoff_seconds:
            raise ConfigError("max_backoff must not be less than backoff")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds before retry number ``retry`` (1 is the first); a server's Retry-After wins
        when longer, both capped at ``max_backoff``."""
        delay = self.backoff_seconds * 2 ** (retry - 1)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_backoff_seconds)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], name: str) -> RetryPolicy:
        reject_unknown(data, {"attempts", "backoff", "max_backoff"}, name)
        default = cls()
        attempts = data.get("attempts", default.attempts)
        if not isinstance(attempts, int) or isinstance(attempts, bool):
            raise ConfigError(f"{name}.attempts must be an integer, got {attempts!r}")
        try:
            return cls(
                attempts,
                parse_duration(data.get("backoff", default.backoff_seconds), f"{name}.backoff"),
                parse_duration(
                    data.get("max_backoff", default.max_backoff_seconds), f"{name}.max_backoff"
                ),
            )
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None


@dataclass(frozen=True, repr=False)
class Webhook:
    """Where alert events are POSTed: generic JSON or a Slack incoming-webhook payload."""

    url: str
    format: WebhookFormat = "json"
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"a webhook url must be an http(s) URL, got {redact_url(self.url)}")
        if parts.path.endswith(REDACTED):
            # Settings as shown by the API, sent back unchanged, must not break the webhook.
            raise ConfigError("a webhook url was given in its redacted form; give the full URL")
        if self.format not in WEBHOOK_FORMATS:
            raise ConfigError(f"a webhook format must be 'json' or 'slack', got {self.format!r}")
        if not self.timeout_seconds > 0:
            raise ConfigError(f"a webhook timeout must be positive, got {self.timeout_seconds!r}")

    def __repr__(self) -> str:
        return (
            f"Webhook({redact_url(self.url)!r}, format={self.format!r}, "
            f"timeout_seconds={self.timeout_seconds!r})"
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], name: str) -> Webhook:
        reject_unknown(data, {"url", "format", "timeout"}, name)
        url = data.get("url")
        if not isinstance(url, str):
            raise ConfigError(f"{name}.url must be an http(s) URL")
        timeout = parse_duration(data.get("timeout", 5.0), f"{name}.timeout")
        try:
            return cls(url, data.get("format", "json"), timeout)
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class CriticalThreshold:
    """A failing check is critical when its score is above ``above`` or below ``below``."""

    above: float | None = None
    below: float | None = None

    def crossed(self, score: float | None) -> bool:
        if score is None:
            return False
        return (self.above is not None and score > self.above) or (
            self.below is not None and score < self.below
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], name: str) -> CriticalThreshold:
        reject_unknown(data, {"above", "below"}, name)
        if not data:
            raise ConfigError(f"{name} needs 'above' or 'below'")
        bounds: dict[str, float] = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name}.{key} must be a number, got {value!r}")
            bounds[key] = float(value)
        return cls(**bounds)


@dataclass(frozen=True)
class AlertPolicy:
    """How one model's check results become alerts, and where they are delivered."""

    # Failing windows in a row (windows without enough data do not break a run) to open one.
    consecutive: int = 1
    # Check names or "detector:*" patterns that alert; None means every check.
    checks: tuple[str, ...] | None = None
    # By check name or "detector:*" pattern; the exact name wins.
    critical: Mapping[str, CriticalThreshold] = field(default_factory=dict)
    # Webhooks receive events of this severity and above; the log receives every event.
    min_severity: Severity = Severity.WARNING
    webhooks: tuple[Webhook, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.consecutive < 1:
            raise ConfigError(f"consecutive must be at least 1, got {self.consecutive!r}")
        if self.min_severity not in tuple(Severity):
            raise ConfigError(
                f"min_severity must be 'warning' or 'critical', got {self.min_severity!r}"
            )
        object.__setattr__(self, "min_severity", Severity(self.min_severity))

    def alerts_on(self, check: str) -> bool:
        return self.checks is None or any(check_matches(p, check) for p in self.checks)

    def critical_threshold(self, check: str) -> CriticalThreshold | None:
        if check in self.critical:
            return self.critical[check]
        for pattern, threshold in self.critical.items():
            if check_matches(pattern, check):
                return threshold
        return None

    def delivers(self, severity: Severity) -> bool:
        return severity.rank >= self.min_severity.rank

    def merged(self, data: Mapping[str, Any], name: str) -> AlertPolicy:
        """A copy with the settings in ``data`` (TOML/JSON keys) replacing this policy's."""
        known = {"consecutive", "checks", "critical", "min_severity", "webhooks", "retry"}
        reject_unknown(data, known, name)
        changes: dict[str, Any] = {}
        if "consecutive" in data:
            value = data["consecutive"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}.consecutive must be a positive integer, got {value!r}")
            changes["consecutive"] = value
        if "checks" in data:
            checks = data["checks"]
            if checks is not None and (
                not isinstance(checks, list | tuple)
                or not all(isinstance(c, str) and c for c in checks)
            ):
                raise ConfigError(f"{name}.checks must be a list of check names, got {checks!r}")
            changes["checks"] = None if checks is None else tuple(checks)
        if "critical" in data:
            changes["critical"] = {
                check: CriticalThreshold.from_mapping(
                    as_mapping(bounds, f"{name}.critical.{check}"), f"{name}.critical.{check}"
                )
                for check, bounds in as_mapping(data["critical"], f"{name}.critical").items()
            }
        if "min_severity" in data:
            severity = data["min_severity"]
            if severity not in tuple(Severity):
                raise ConfigError(
                    f"{name}.min_severity must be 'warning' or 'critical', got {severity!r}"
                )
            changes["min_severity"] = Severity(severity)
        if "webhooks" in data:
            hooks = data["webhooks"]
            if not isinstance(hooks, list | tuple):
                raise ConfigError(f"{name}.webhooks must be a list of tables with a url")
            changes["webhooks"] = tuple(
                Webhook.from_mapping(
                    as_mapping(h, f"{name}.webhooks[{i}]"), f"{name}.webhooks[{i}]"
                )
                for i, h in enumerate(hooks)
            )
        if "retry" in data:
            changes["retry"] = RetryPolicy.from_mapping(
                as_mapping(data["retry"], f"{name}.retry"), f"{name}.retry"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as config keys; webhook URLs are redacted, since this is shown."""
        return {
            "consecutive": self.consecutive,
            "checks": None if self.checks is None else list(self.checks),
            "critical": {
                check: {k: v for k, v in dataclasses.asdict(t).items() if v is not None}
                for check, t in self.critical.items()
            },
            "min_severity": self.min_severity.value,
            "webhooks": [
                {"url": redact_url(w.url), "format": w.format, "timeout": w.timeout_seconds}
                for w in self.webhooks
            ],
            "retry": {
                "attempts": self.retry.attempts,
                "backoff": self.retry.backoff_seconds,
                "max_backoff": self.retry.max_backoff_seconds,
            },
        }
