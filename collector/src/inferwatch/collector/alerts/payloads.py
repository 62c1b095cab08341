"""What a webhook receives for an alert event: one notifier per webhook ``format``.

The built-in ones are ``json`` (the event, the alert as the API shows it, a link) and ``slack``
(an incoming-webhook message). A notifier of one's own is a ``Notifier`` found through the
``inferwatch.notifiers`` entry points or in a plug-in module::

    teams = Notifier("teams", lambda event, base_url: {"text": describe(event)})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from inferwatch.collector.alerts.model import AlertEvent, iso

# Slack refuses a section whose text is over 3,000 characters.
SLACK_TEXT_LIMIT = 3000


@dataclass(frozen=True)
class Notifier:
    """A webhook format: ``payload(event, base_url)`` is the JSON body POSTed for an event
    (``base_url``: the collector's public URL, for links, when known)."""

    name: str
    payload: Callable[[AlertEvent, str | None], dict[str, Any]]


def json_payload(event: AlertEvent, base_url: str | None) -> dict[str, Any]:
    """The event type, the alert as the API shows it, the window that caused the event and
    the message of its result (``event_message``)."""
    return {
        "event": event.kind,
        "alert": event.alert.to_json(),
        "message": event_message(event),
        "window_id": event.window_id,
        "window_url": window_url(base_url, event.alert.model, event.window_id),
    }


def event_message(event: AlertEvent) -> str:
    """What the window behind the event showed: for a resolve, the passing result, not the
    alert's message (its last failure, which no longer holds)."""
    if event.kind == "resolved":
        return event.result.message or f"{event.alert.check} passed"
    return event.alert.message


def slack_payload(event: AlertEvent, base_url: str | None) -> dict[str, Any]:
    """``{"text", "blocks"}`` for a Slack incoming webhook: a sentence, the facts, a link."""
    alert = event.alert
    headline = describe(event)
    message = event_message(event)
    url = window_url(base_url, alert.model, event.window_id)
    link = f"<{url}|window {event.window_id}>" if url else f"window {event.window_id}"
    facts = {
        "Model": alert.model,
        "Version": alert.version,
        "Check": alert.check,
        "Severity": alert.severity,
    }
    if alert.features:
        facts["Features"] = ", ".join(alert.features)
    if alert.acknowledged_ms is not None:
        facts["Acknowledged"] = (
            f"by {alert.acknowledged_by or 'someone'} at {iso(alert.acknowledged_ms)}"
        )
    if alert.resolution == "stale":
        facts["Resolved"] = "stale: no traffic"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(f"*{_escape(headline)}*")},
        {
            "type": "section",
            "fields": [_mrkdwn(f"*{name}*\n{_escape(value)}") for name, value in facts.items()],
        },
        {"type": "section", "text": _mrkdwn(_escape(message))},
        {
            "type": "context",
            "elements": [_mrkdwn(f"Alert {alert.id} · {event.kind} by {link}")],
        },
    ]
    text = f"{_escape(headline)}: {_escape(message)} ({link})"
    return {"text": _clip(text), "blocks": blocks}


def describe(event: AlertEvent) -> str:
    """A sentence a person can read in a notification."""
    alert = event.alert
    subject = f"{alert.check} on model {alert.model} version {alert.version}"
    if event.kind == "opened":
        return f"{alert.severity.capitalize()} alert opened: {subject}"
    if event.kind == "escalated":
        return f"Alert escalated to {alert.severity}: {subject}"
    if event.kind == "repeated":
        return f"{alert.severity.capitalize()} alert still open: {subject}"
    if alert.resolution == "stale":
        return f"Alert resolved as stale: {subject} gets no traffic (it was {alert.severity})"
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


json_notifier = Notifier("json", json_payload)
slack_notifier = Notifier("slack", slack_payload)
# What a dispatcher sends with when it is given no notifiers (the collector gives it those of
# its plug-in registry, which finds these two through its entry points).
BUILTIN_NOTIFIERS = {n.name: n for n in (json_notifier, slack_notifier)}
