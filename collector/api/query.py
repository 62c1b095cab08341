"""GET routes over models, windows, alerts and performance."""

from __future__ import annotations

import asyncio
from typing import Any

from inferwatch.collector.api.common import ApiError, collector, iso, parse_iso
from inferwatch.collector.performance import lifetime
from inferwatch.collector.storage.base import WindowRecord
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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
        "results": record.results or [],
    }


async def list_models(request: Request) -> JSONResponse:
    runtime = collector(request)
    models = await asyncio.to_thread(runtime.storage.models)
    for entry in models:
        for version in entry["versions"]:
            version["first"] = iso(version.pop("first_ms"))
            version["last"] = iso(version.pop("last_ms"))
    return JSONResponse({"models": models})


async def list_windows(request: Request) -> JSONResponse:
    runtime = collector(request)
    params = request.query_params
    start = parse_iso(params.get("start"), "start")
    end = parse_iso(params.get("end"), "end")
    if start is not None and end is not None and start >= end:
        raise ApiError(400, "start must be before end")
    records = await asyncio.to_thread(
        runtime.storage.windows,
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
    record = await asyncio.to_thread(runtime.storage.window, model, window_id)
    if record is None:
        raise ApiError(404, f"model {model!r} has no window {window_id}")
    body = window_json(record)
    if record.details is not None:
        body["summary"] = record.details
    else:
        # Not evaluated yet: show the running state.
        async with runtime.state_lock:
            state = await asyncio.to_thread(runtime.book.merged, window_id)
        body["summary"] = state.describe() if state is not None else None
    return JSONResponse(body)


async def list_alerts(request: Request) -> JSONResponse:
    runtime = collector(request)
    state = request.query_params.get("state") or None
    if state not in (None, "open", "resolved"):
        raise ApiError(400, f"state must be 'open' or 'resolved', got {state!r}")
    alerts = await asyncio.to_thread(runtime.storage.alerts, request.path_params["model"], state)
    return JSONResponse({"alerts": [alert.to_json() for alert in alerts]})


async def model_metrics(request: Request) -> JSONResponse:
    """Performance and traffic per window, and lifetime performance per version and overall."""
    runtime = collector(request)
    model = request.path_params["model"]
    records = await asyncio.to_thread(runtime.storage.windows, model, limit=MAX_WINDOWS)
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
                "performance": performance,
            }
        )
    counters = await asyncio.to_thread(runtime.storage.label_counters, model)
    return JSONResponse(
        {
            "model": model,
            "windows": windows,
            "lifetime": {
                "all": lifetime(p for perfs in by_version.values() for p in perfs),
                "versions": {version: lifetime(perfs) for version, perfs in by_version.items()},
            },
            "labels": counters,
        }
    )


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
