"""inferwatch: monitor ML models in production.

    import inferwatch

    inferwatch.init(endpoint="http://collector:4318")

    @inferwatch.monitor(model="credit", version="3", task="classification")
    def predict(features): ...

Each monitored call becomes one OpenTelemetry span (docs/span-contract.md) exported to the
inferwatch collector by a pipeline of inferwatch's own, separate from the application's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pkgutil import extend_path
from typing import Literal

from inferwatch import config, export
from inferwatch._http import CollectorError, CollectorUnavailable, RequestRejected
from inferwatch.config import Compression, Settings, current_settings
from inferwatch.diagnostics import Stats, stats
from inferwatch.labels import LabelsRejected, LabelsReport, alog_labels, log_labels
from inferwatch.monitor import last_prediction_ids, monitor
from inferwatch.recorder import PredictionRecorder
from inferwatch.reference import ReferenceRejected, ReferenceReport, set_reference

# inferwatch.middleware and inferwatch.collector are distributions of their own, which may be
# installed in folders of their own (editable installs): this makes them portions of this package
# wherever they are. In place, so that the package's import spec lists them too (import-linter
# reads it).
__path__[:] = extend_path(__path__, __name__)

__all__ = [
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


def init(
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    sample_rate: float = 1.0,
    *,
    max_queue_spans: int = 2048,
    max_queue_bytes: int = 64 * 1024 * 1024,
    max_export_batch: int = 512,
    export_timeout: float = 10.0,
    flush_interval: float = 1.0,
    compression: Compression = "none",
    retry_backoff: float = 0.25,
    max_retry_delay: float = 0.5,
    redact: Mapping[str, Mapping[str, Literal["drop", "hash"]]] | None = None,
    redact_key: str | None = None,
) -> Settings:
    """Start exporting monitored calls; calling it again replaces the configuration.

    - ``endpoint``: the collector's base URL (else $INFERWATCH_ENDPOINT, else
      http://127.0.0.1:4318); spans go to ``{endpoint}/v1/traces``.
    - ``api_key``: sent as ``Authorization: Bearer <key>`` (else $INFERWATCH_API_KEY).
    - ``service_name``: the OpenTelemetry resource's service.name (else
      $INFERWATCH_SERVICE_NAME).
    - ``sample_rate``: the share of calls recorded, 0 to 1, decided per call whatever the
      application's own tracing samples.
    - ``max_queue_spans`` / ``max_queue_bytes``: bounds of the export queue; when either is
      reached new spans are dropped and counted (``stats().spans_dropped_queue_full``).
    - ``max_export_batch``: spans per export request; ``flush_interval``: seconds between
      exports; ``export_timeout``: seconds one export attempt may take; ``compression``:
      ``"none"`` (the default: packed float frames barely compress, and gzip would cost more
      CPU than the rest of the export) or ``"gzip"``, for a link where bytes cost more than CPU
      (docs/span-contract.md, "Compression").
    - ``retry_backoff`` / ``max_retry_delay``: a batch the collector did not take (down,
      restarting, overloaded) is kept and sent again after ``retry_backoff`` seconds, doubling
      up to ``max_retry_delay``: export resumes within about ``max_retry_delay`` of the
      collector's return, however long it was away. Calls made meanwhile queue up to the
      bounds above.
    - ``redact``: per model, features to drop or hash before anything leaves the process,
      e.g. ``{"credit": {"ssn": "drop", "email": "hash"}}`` (added to what each
      ``monitor(redact=...)`` says); ``redact_key``: the secret of the keyed hash (else
      $INFERWATCH_REDACT_KEY). See "Dropping or hashing features (PII)" in the README.

    Raises ValueError on a setting out of range. The previous pipeline, if any, is shut down
    (its queued spans get at most 2 s to export).
    """
    # Resolved afresh (argument > environment > default), not from the previous init.
    if endpoint is None:
        endpoint = os.environ.get(config.ENDPOINT_ENV) or config.DEFAULT_ENDPOINT
    if api_key is None:
        api_key = os.environ.get(config.API_KEY_ENV)
    settings = Settings(
        endpoint=config.resolve_endpoint(endpoint),
        api_key=api_key or None,
        service_name=config.resolve_service_name(service_name),
        sample_rate=float(sample_rate),
        max_queue_spans=max_queue_spans,
        max_queue_bytes=max_queue_bytes,
        max_export_batch=max_export_batch,
        export_timeout=float(export_timeout),
        flush_interval=float(flush_interval),
        compression=compression,
        retry_backoff=float(retry_backoff),
        max_retry_delay=float(max_retry_delay),
        redact=dict(redact or {}),
        redact_key=redact_key or None,
    )
    export.start(settings)
    config.set_current_settings(settings)
    return settings


def is_initialized() -> bool:
    """Whether ``init`` has been called (and ``shutdown`` not since)."""
    return export.configured()


def flush(timeout: float = 5.0) -> bool:
    """Export every span recorded so far; False if that did not finish within ``timeout`` s.

    Returns within ``timeout`` even when the collector is down.
    """
    pipeline = export.active()
    return pipeline.flush(timeout) if pipeline is not None else True


def shutdown(timeout: float = 5.0) -> bool:
    """Flush (within ``timeout`` s) and stop exporting; later calls are not recorded.

    Also runs at interpreter exit with a 2 s timeout. Returns whether everything was exported.
    """
    config.set_current_settings(None)
    return export.stop(timeout)
