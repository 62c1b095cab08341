"""What a webhook receives for an alert event: generic JSON, or a Slack-compatible message."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from inferwatch.collector.alerts.model import AlertEvent
from inferwatch.collector.settings.alerts import WebhookFormat

# Slack refuses a section whose text is over 3,000 characters.
SLACK_TEXT_LIMIT = 3000


def payload(event: AlertEvent, format: WebhookFormat, base_url: str | None) -> dict[str, Any]:
    if format == "slack":
        return slack_payload(event, base_url)
    return json_payload(event, base_url)


def json_payload(event: AlertEvent, base_url: str | None) -> dict[str, Any]:
    """The event type, the alert as the API shows it, and the window that caused the event."""
    return {
        "event": event.kind,
        "alert": event.alert.to_json(),
        "window_id": event.window_id,
        "window_url": window_url(base_url, event.alert.model, event.window_id),
    }


def slack_payload(event: AlertEvent, base_url: str | None) -> dict[str, Any]:
    """``{"text", "blocks"}`` for a Slack incoming webhook: a sentence, the facts, a link."""
    alert = event.alert
    headline = describe(event)
    url = window_url(base_url, alert.model, event.window_id)
    link = f"<{url}|window {event.window_id}>" if url else f"window {event.window_id}"
    facts = {
        "Model": alert.model,
        "Version": alert.version,
        "Check": alert.check,
        "Severity": alert.severity,
    }
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(f"*{_escape(headline)}*")},
        {
            "type": "section",
            "fields": [_mrkdwn(f"*{name}*\n{_escape(value)}") for name, value in facts.items()],
        },
        {"type": "section", "text": _mrkdwn(_escape(alert.message))},
        {
            "type": "context",
            "elements": [_mrkdwn(f"Alert {alert.id} · {event.kind} by {link}")],
        },
    ]
    text = f"{_escape(headline)}: {_escape(alert.message)} ({link})"
    return {"text": _clip(text), "blocks": blocks}


def describe(event: AlertEvent) -> str:
    """A sentence a person can read in a notification."""
    alert = event.alert
    subject = f"{alert.check} on model {alert.model} version {alert.version}"
    if event.kind == "opened":
        return f"{alert.severity.capitalize()} alert opened: {subject}"
    if event.kind == "escalated":
        return f"Alert escalated to {alert.severity}: {subject}"
    return f"Alert resolved: {subject} passes again (it was {alert.severity})"


def window_url(base_url: str | None, model: str, window_id: int) -> str | None:
    """The collector's API URL of a window, when the collector's public URL is known."""
    if not base_url:
        return None
    return f"{base_url.rstrip('/')}/v1/models/{quote(model, safe='')}/windows/{window_id}"


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text)}


def _escape(text: str) -> str:
    """Slack reads &, < and > as markup; user text must not open links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str) -> str:
    return text if len(text) <= SLACK_TEXT_LIMIT else text[: SLACK_TEXT_LIMIT - 1] + "…"
