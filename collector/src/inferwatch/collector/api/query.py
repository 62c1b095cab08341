"""GET routes over models, windows, alerts and performance."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request

from inferwatch.collector.api import bodies
from inferwatch.collector.api.common import (
    MAX_INTEGER,
    Caller,
    Requires,
    StoredJSON,
    collector,
    needs,
    parse_iso,
)
from inferwatch.collector.api.errors import ApiError
from inferwatch.collector.api.main_metric import MainMetrics
from inferwatch.collector.api.openapi import refusals
from inferwatch.collector.codec import json_safe
from inferwatch.collector.detect.checks.estimated_performance import (
    DETAILS_KEY as ESTIMATED_PERFORMANCE,
)
from inferwatch.collector.detect.checks.performance import NAME as PERFORMANCE
from inferwatch.collector.detect.checks.performance import PerformanceSettings
from inferwatch.collector.detectors.metrics import Task, evaluate
from inferwatch.collector.labels.scoring import BUILTIN_METRICS, lifetime, public, stored_stats
from inferwatch.collector.settings import ModelConfig
from inferwatch.collector.window.store import WindowRecord

MAX_WINDOWS = 10_000
# Longer than any column name worth looking up: bounds what one request makes the route compare.
MAX_FEATURE_NAME = 1024
DEFAULT_HISTORY_WINDOWS = 1000

router = APIRouter(default_response_class=StoredJSON)
_TIME = "An ISO 8601 time such as 2024-05-01T12:00:00Z (no zone means UTC)."
WindowId = Annotated[int, Path(ge=0, le=MAX_INTEGER, description="A window's id.")]


@router.get("/v1/models", summary="Models and their versions (those the key may read).")
async def list_models(
    caller: Annotated[Caller, Depends(Requires("read"))], request: Request
) -> bodies.ModelList:
    runtime = collector(request)
    versions = await asyncio.to_thread(runtime.storage.windows.versions)
    models: dict[str, list[bodies.VersionSummary]] = {}
    for v in versions:
        models.setdefault(v.model, []).append(
            bodies.VersionSummary(
                version=v.version,
                windows=v.windows,
                rows=v.rows,
                labelled=v.labelled,
                first=v.first_ms,
                last=v.last_ms,
            )
        )
    # Models with settings (a table in the file, or put through the API), traffic or not.
    put = await asyncio.to_thread(runtime.storage.settings.model_configs)
    for model in [*runtime.config.models, *put]:
        models.setdefault(model, [])
    shown = sorted(m for m in models if caller.may_touch(m))
    return bodies.ModelList(
        models=[bodies.ModelSummary(model=m, versions=models[m]) for m in shown]
    )


@router.get(
    "/v1/models/{model}/windows",
    summary="Windows overlapping [start, end), oldest first.",
    responses=refusals(400),
    dependencies=needs("read"),
)
async def list_windows(
    request: Request,
    model: str,
    version: Annotated[str | None, Query(description="Only this version's windows.")] = None,
    start: Annotated[str | None, Query(description=_TIME)] = None,
    end: Annotated[str | None, Query(description=_TIME)] = None,
    last: Annotated[
        int | None,
        Query(ge=1, le=MAX_WINDOWS, description="Only the latest this many (still oldest first)."),
    ] = None,
) -> bodies.WindowList:
    start_ms = parse_iso(start, "start")
    end_ms = parse_iso(end, "end")
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise ApiError(400, "start must be before end")
    runtime = collector(request)
    records = await asyncio.to_thread(
        runtime.storage.windows.find,
        model,
        version or None,
        start_ms,
        end_ms,
        limit=last or MAX_WINDOWS,
        newest=last is not None,
    )
    # A metric of the model's own is computed per window: off the event loop.
    return await asyncio.to_thread(_window_list, records, MainMetrics(runtime.settings(model)))


def _window_list(records: list[WindowRecord], main: MainMetrics) -> bodies.WindowList:
    return bodies.WindowList(
        windows=[
            bodies.Window.from_record(r, main_metric=main.of(_performance(r), _estimate(r)))
            for r in records
        ]
    )


def _performance(record: WindowRecord) -> dict[str, Any]:
    return (record.details or {}).get("performance") or {}


def _estimate(record: WindowRecord) -> dict[str, Any] | None:
    estimate = (record.details or {}).get(ESTIMATED_PERFORMANCE)
    return estimate if isinstance(estimate, dict) else None


@router.get(
    "/v1/models/{model}/windows/{window_id}",
    summary="One window with its summaries and check results.",
    responses=refusals(400, 404),
    dependencies=needs("read"),
)
async def get_window(request: Request, model: str, window_id: WindowId) -> bodies.WindowDetail:
    runtime = collector(request)
    record = await asyncio.to_thread(runtime.storage.windows.get, model, window_id)
    if record is None:
        raise ApiError(404, f"model {model!r} has no window {window_id}")
    summary: dict[str, Any] | None
    if record.details is not None:
        summary = json_safe(
            {**record.details, "performance": public(record.details.get("performance") or {})}
        )
    else:
        # Not evaluated yet: show the running state.
        async with runtime.state_lock:
            await runtime.pipeline.settle()
            state = await asyncio.to_thread(runtime.book.merged, window_id)
        summary = state.describe() if state is not None else None
    shift = bodies.ShiftVerdict.of(record.results or [])
    main = await asyncio.to_thread(
        MainMetrics(runtime.settings(model)).of, _performance(record), _estimate(record)
    )
    return bodies.WindowDetail.from_record(record, main_metric=main, summary=summary, shift=shift)


@router.get(
    "/v1/models/{model}/versions/{version}/feature-history",
    summary="One column's check results and summary per window, oldest first.",
    responses=refusals(400),
    dependencies=needs("read"),
)
async def feature_history(
    request: Request,
    model: str,
    version: str,
    feature: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_FEATURE_NAME,
            description="The column's name, as the results and summaries name it.",
        ),
    ],
    role: Annotated[
        Literal["feature", "output", "label"] | None,
        Query(description="Which column summary to show when inputs and outputs share a name."),
    ] = None,
    start: Annotated[str | None, Query(description=_TIME)] = None,
    end: Annotated[str | None, Query(description=_TIME)] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_WINDOWS, description="At most this many windows (the oldest).")
    ] = DEFAULT_HISTORY_WINDOWS,
) -> bodies.FeatureHistory:
    """What the dashboard plots for one feature without fetching every window: the drift
    score, p-value and threshold of each window, and the column's count, missing, mean and
    spread there."""
    start_ms = parse_iso(start, "start")
    end_ms = parse_iso(end, "end")
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise ApiError(400, "start must be before end")
    records = await asyncio.to_thread(
        collector(request).storage.windows.find,
        model,
        version,
        start_ms,
        end_ms,
        limit=limit + 1,
    )
    return bodies.FeatureHistory(
        model=model,
        version=version,
        feature=feature,
        windows=[_feature_window(r, feature, role) for r in records[:limit]],
        truncated=len(records) > limit,
    )


def _feature_window(record: WindowRecord, feature: str, role: str | None) -> bodies.FeatureWindow:
    columns = ((record.details or {}).get("columns") or {}).get("columns") or []
    found = [c for c in columns if c.get("name") == feature and role in (None, c.get("role"))]
    # Inputs first: the drift of a feature is what its history is mostly read for.
    found.sort(key=lambda c: c.get("role") != "feature")
    return bodies.FeatureWindow(
        id=record.id,
        start=record.start_ms,
        end=record.end_ms,
        closed=record.closed,
        rows=record.rows,
        evaluated_at=record.evaluated_ms,
        results=[r for r in record.results or [] if r.feature == feature],
        column=_column_stats(found[0]) if found else None,
    )


def _column_stats(column: dict[str, Any]) -> bodies.ColumnStats:
    if column.get("kind") == "numeric":
        count = int(column.get("count") or 0)
        m2 = column.get("m2")
        sd = math.sqrt(m2 / (count - 1)) if count > 1 and isinstance(m2, int | float) else None
        return bodies.ColumnStats(
            role=str(column.get("role")),
            kind="numeric",
            count=count,
            missing=int(column.get("missing") or 0) + int(column.get("non_finite") or 0),
            mean=column.get("mean") if count else None,
            sd=sd,
            min=column.get("min"),
            max=column.get("max"),
        )
    counts: dict[str, int] = column.get("counts") or {}
    return bodies.ColumnStats(
        role=str(column.get("role")),
        kind="categorical",
        count=sum(counts.values()) + int(column.get("other") or 0),
        missing=int(column.get("missing") or 0),
        categories=len(counts) + int(column.get("other_distinct") or 0),
        unseen=int(column.get("unseen") or 0),
    )


@router.get(
    "/v1/models/{model}/alerts",
    summary="The model's alerts, oldest first; optionally only open or resolved ones.",
    responses=refusals(400),
    dependencies=needs("read"),
)
async def list_alerts(
    request: Request,
    model: str,
    state: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    version: Annotated[str | None, Query(description="Only this version's alerts.")] = None,
) -> bodies.AlertList:
    alerts = await asyncio.to_thread(collector(request).storage.alerts.find, model, state)
    return bodies.AlertList(
        alerts=[
            bodies.Alert.from_record(alert)
            for alert in alerts
            if not version or alert.version == version
        ]
    )


@router.get(
    "/v1/models/{model}/metrics",
    summary="Traffic and performance per window, and lifetime performance.",
    # A performance shows the keys that apply to it, and metric_errors only when there are some.
    response_model_exclude_unset=True,
    dependencies=needs("read"),
)
async def model_metrics(request: Request, model: str) -> bodies.ModelMetrics:
    """Performance and traffic per window, and lifetime performance per version and overall.

    Every performance shows the built-in metrics and the model's own (``performance.metrics``),
    each computed from the statistics the windows kept.
    """
    runtime = collector(request)
    records = await asyncio.to_thread(runtime.storage.windows.find, model, limit=MAX_WINDOWS)
    labels = await asyncio.to_thread(runtime.storage.labels.counters, model)
    # Merging thousands of windows' statistics takes a while: off the event loop.
    return await asyncio.to_thread(
        _metrics_body, model, records, runtime.settings(model), bodies.LabelCounters(**labels)
    )


def _metrics_body(
    model: str, records: list[WindowRecord], config: ModelConfig, labels: bodies.LabelCounters
) -> bodies.ModelMetrics:
    own = _OwnMetrics(config)
    windows: list[bodies.WindowPerformance] = []
    by_version: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        details = record.details or {}
        performance = details.get("performance") or {}
        by_version.setdefault(record.version, []).append(performance)
        windows.append(
            bodies.WindowPerformance.from_record(
                record, latency=details.get("latency"), performance=own.shown(performance)
            )
        )
    versions = {version: lifetime(perfs) for version, perfs in by_version.items()}
    return bodies.ModelMetrics(
        model=model,
        windows=windows,
        lifetime=bodies.Lifetime(
            all=own.shown(lifetime(versions.values())),
            versions={version: own.shown(total) for version, total in versions.items()},
        ),
        labels=labels,
        **({"metric_errors": own.problems} if own.problems else {}),
    )


class _OwnMetrics:
    """The model's configured metrics that are not built in, added to each shown performance."""

    def __init__(self, config: ModelConfig) -> None:
        settings = config.detectors.get(PERFORMANCE)
        self._settings = settings if isinstance(settings, PerformanceSettings) else None
        # Metric name -> why it could not be computed (the user's function raised).
        self.problems: dict[str, str] = {}

    def shown(self, performance: dict[str, Any]) -> bodies.Performance:
        out = public(performance)
        stats = stored_stats(performance) if self._settings is not None else None
        if stats is not None and self._settings is not None:
            task: Task = out.get("task", "classification")
            for metric in self._settings.metric_list(task):
                if metric.name in BUILTIN_METRICS[task] or metric.task not in (None, task):
                    continue
                try:
                    out.update(evaluate(stats, [metric]))
                except Exception as exc:  # the user's function may fail in any way
                    self.problems.setdefault(metric.name, f"{metric.name} failed: {exc!r}")
        return bodies.Performance.model_validate(out)
