"""GET routes over models, windows, alerts and performance."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from inferwatch.collector.api.common import ApiError, collector, iso, parse_iso
from inferwatch.collector.detect.checks.performance import NAME as PERFORMANCE
from inferwatch.collector.detect.checks.performance import PerformanceSettings
from inferwatch.collector.detectors.metrics import Task, evaluate
from inferwatch.collector.labels.scoring import BUILTIN_METRICS, lifetime, public, stored_stats
from inferwatch.collector.settings import ModelConfig
from inferwatch.collector.window.store import WindowRecord

MAX_WINDOWS = 10_000


def window_json(record: WindowRecord) -> dict[str, Any]:
    details = record.details or {}
    return {
        "id": record.id,
        "model": record.model,
        "version": record.version,
        "start": iso(record.start_ms),
        "end": iso(record.end_ms),
        "closed": record.closed,
        "requests": record.requests,
        "rows": record.rows,
        "labelled": record.labelled,
        "label_coverage": record.labelled / record.rows if record.rows else None,
        "error_rate": details.get("error_rate"),
        "evaluated_at": iso(record.evaluated_ms),
        "results": [r.model_dump(mode="json") for r in record.results or ()],
    }


async def list_models(request: Request) -> JSONResponse:
    runtime = collector(request)
    versions = await asyncio.to_thread(runtime.storage.windows.versions)
    models: dict[str, dict[str, Any]] = {}
    for version in versions:
        entry = models.setdefault(version.model, {"model": version.model, "versions": []})
        entry["versions"].append(
            {
                "version": version.version,
                "windows": version.windows,
                "rows": version.rows,
                "labelled": version.labelled,
                "first": iso(version.first_ms),
                "last": iso(version.last_ms),
            }
        )
    # Models whose settings were put through the API, traffic or not.
    for model in await asyncio.to_thread(runtime.storage.settings.model_configs):
        models.setdefault(model, {"model": model, "versions": []})
    return JSONResponse({"models": [models[name] for name in sorted(models)]})


async def list_windows(request: Request) -> JSONResponse:
    runtime = collector(request)
    params = request.query_params
    start = parse_iso(params.get("start"), "start")
    end = parse_iso(params.get("end"), "end")
    if start is not None and end is not None and start >= end:
        raise ApiError(400, "start must be before end")
    records = await asyncio.to_thread(
        runtime.storage.windows.find,
        request.path_params["model"],
        params.get("version") or None,
        start,
        end,
        limit=MAX_WINDOWS,
    )
    return JSONResponse({"windows": [window_json(r) for r in records]})


async def get_window(request: Request) -> JSONResponse:
    runtime = collector(request)
    model = request.path_params["model"]
    window_id = _window_id(request.path_params["window_id"])
    record = await asyncio.to_thread(runtime.storage.windows.get, model, window_id)
    if record is None:
        raise ApiError(404, f"model {model!r} has no window {window_id}")
    body = window_json(record)
    if record.details is not None:
        body["summary"] = {
            **record.details,
            "performance": public(record.details.get("performance") or {}),
        }
    else:
        # Not evaluated yet: show the running state.
        async with runtime.state_lock:
            await runtime.pipeline.settle()
            state = await asyncio.to_thread(runtime.book.merged, window_id)
        body["summary"] = state.describe() if state is not None else None
    return JSONResponse(body)


async def list_alerts(request: Request) -> JSONResponse:
    runtime = collector(request)
    state = request.query_params.get("state") or None
    if state not in (None, "open", "resolved"):
        raise ApiError(400, f"state must be 'open' or 'resolved', got {state!r}")
    alerts = await asyncio.to_thread(
        runtime.storage.alerts.find, request.path_params["model"], state
    )
    return JSONResponse({"alerts": [alert.to_json() for alert in alerts]})


async def model_metrics(request: Request) -> JSONResponse:
    """Performance and traffic per window, and lifetime performance per version and overall.

    Every performance shows the built-in metrics and the model's own (``performance.metrics``),
    each computed from the statistics the windows kept.
    """
    runtime = collector(request)
    model = request.path_params["model"]
    records = await asyncio.to_thread(runtime.storage.windows.find, model, limit=MAX_WINDOWS)
    # Merging thousands of windows' statistics takes a while: off the event loop.
    body = await asyncio.to_thread(_metrics_body, model, records, runtime.settings(model))
    body["labels"] = await asyncio.to_thread(runtime.storage.labels.counters, model)
    return JSONResponse(body)


def _metrics_body(model: str, records: list[WindowRecord], config: ModelConfig) -> dict[str, Any]:
    own = _OwnMetrics(config)
    windows: list[dict[str, Any]] = []
    by_version: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        details = record.details or {}
        performance = details.get("performance") or {}
        by_version.setdefault(record.version, []).append(performance)
        windows.append(
            {
                "id": record.id,
                "version": record.version,
                "start": iso(record.start_ms),
                "end": iso(record.end_ms),
                "closed": record.closed,
                "requests": record.requests,
                "rows": record.rows,
                "labelled": record.labelled,
                "label_coverage": record.labelled / record.rows if record.rows else None,
                "error_rate": details.get("error_rate"),
                "latency": details.get("latency"),
                "performance": own.shown(performance),
            }
        )
    versions = {version: lifetime(perfs) for version, perfs in by_version.items()}
    body: dict[str, Any] = {
        "model": model,
        "windows": windows,
        "lifetime": {
            "all": own.shown(lifetime(versions.values())),
            "versions": {version: own.shown(total) for version, total in versions.items()},
        },
    }
    if own.problems:
        body["metric_errors"] = own.problems
    return body


class _OwnMetrics:
    """The model's configured metrics that are not built in, added to each shown performance."""

    def __init__(self, config: ModelConfig) -> None:
        settings = config.detectors.get(PERFORMANCE)
        self._settings = settings if isinstance(settings, PerformanceSettings) else None
        # Metric name -> why it could not be computed (the user's function raised).
        self.problems: dict[str, str] = {}

    def shown(self, performance: dict[str, Any]) -> dict[str, Any]:
        out = public(performance)
        stats = stored_stats(performance) if self._settings is not None else None
        if stats is None or self._settings is None:
            return out
        task: Task = out.get("task", "classification")
        for metric in self._settings.metric_list(task):
            if metric.name in BUILTIN_METRICS[task] or metric.task not in (None, task):
                continue
            try:
                out.update(evaluate(stats, [metric]))
            except Exception as exc:  # the user's function may fail in any way
                self.problems.setdefault(metric.name, f"{metric.name} failed: {exc!r}")
        return out


def _window_id(text: str) -> int:
    if not text.isdigit():
        raise ApiError(400, f"a window id is a positive integer, got {text!r}")
    return int(text)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model}/windows", list_windows, methods=["GET"]),
    Route("/v1/models/{model}/windows/{window_id}", get_window, methods=["GET"]),
    Route("/v1/models/{model}/alerts", list_alerts, methods=["GET"]),
    Route("/v1/models/{model}/metrics", model_metrics, methods=["GET"]),
]
