"""Alerting: evaluated windows' check results become alerts, delivered to the log and webhooks.

``AlertEngine`` is the state machine (one per collector), saving through an ``AlertStore``;
``AlertDispatcher`` is its sink, storing each event's webhook deliveries in an ``OutboxStore``
with the change and sending them from a background task.
"""

from inferwatch.collector.alerts.engine import AlertEngine, AlertSink
from inferwatch.collector.alerts.model import (
    Alert,
    AlertEvent,
    CheckHistory,
    Evidence,
    Observation,
    WindowResults,
)
from inferwatch.collector.alerts.notify import AlertDispatcher, DeliveryStats, log_event
from inferwatch.collector.alerts.outbox import Delivery, MemoryOutbox, OutboxStore
from inferwatch.collector.alerts.payloads import Notifier
from inferwatch.collector.alerts.store import AlertSnapshot, AlertStore, MemoryAlertStore
from inferwatch.collector.settings.alerts import (
    AlertPolicy,
    CriticalThreshold,
    RetryPolicy,
    Webhook,
    redact_url,
)

__all__ = [
    "Alert",
    "AlertDispatcher",
    "AlertEngine",
    "AlertEvent",
    "AlertPolicy",
    "AlertSink",
    "AlertSnapshot",
    "AlertStore",
    "CheckHistory",
    "CriticalThreshold",
    "Delivery",
    "DeliveryStats",
    "Evidence",
    "MemoryAlertStore",
    "MemoryOutbox",
    "Notifier",
    "Observation",
    "OutboxStore",
    "RetryPolicy",
    "Webhook",
    "WindowResults",
    "log_event",
    "redact_url",
]
