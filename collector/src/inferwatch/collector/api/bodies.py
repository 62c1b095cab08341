"""The API's request and response bodies as pydantic models: /openapi.json is generated from them.

One model per shape. A window is built once (``WindowCounts.from_record`` and its subclasses), a
result is the detectors' own ``Result``. Times are shown as ISO 8601 in UTC with milliseconds
(``2024-05-01T12:00:00.000Z``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictFloat,
    StrictInt,
    StrictStr,
)
from pydantic.json_schema import WithJsonSchema

from inferwatch.collector.alerts.model import Alert as AlertRecord
from inferwatch.collector.alerts.model import Evidence as EvidenceRecord
from inferwatch.collector.alerts.model import iso
from inferwatch.collector.detectors.metrics import Task
from inferwatch.collector.detectors.result import Result, Severity
from inferwatch.collector.labels.scoring import BUILTIN_METRICS
from inferwatch.collector.settings import ModelConfig
from inferwatch.collector.window.store import WindowRecord

# Times are held as the milliseconds the records carry and shown as ISO 8601.
Time = Annotated[
    int,
    PlainSerializer(iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
OptionalTime = Annotated[
    int | None,
    PlainSerializer(iso, return_type=str | None),
    WithJsonSchema({"type": ["string", "null"], "format": "date-time"}),
]
# JSON the collector computes and documents in prose (summaries, latency): an object.
Summary = dict[str, Any]


class ErrorBody(BaseModel):
    """Every refusal of the API (OTLP ingest answers a google.rpc.Status instead)."""

    error: str = Field(description="A sentence naming what was wrong and, for a limit, the limit.")


# Windows


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class Latency(BaseModel):
    """A window's request latency in milliseconds (null without requests)."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    max_ms: float | None = None

    @classmethod
    def of(cls, summary: object) -> Latency | None:
        """From a window's stored latency summary; None for one that is missing or not numbers
        (what a database holds never fails a read)."""
        if not isinstance(summary, dict):
            return None
        return cls(**{key: _number(summary.get(key)) for key in cls.model_fields})


class EstimatedMetric(BaseModel):
    """A metric estimated without labels, with its band."""

    value: float
    lower: float | None = Field(description="Lower end of the band.")
    upper: float | None = Field(description="Upper end of the band.")
    confidence: float | None = Field(description="The band's confidence (0.95 by default).")
    method: str | None = Field(description="cbpe (a classifier) or dle (a regressor).")


class MainMetric(BaseModel):
    """The one performance figure a list of windows shows."""

    name: str = Field(
        description="The first metric of the model's performance.metrics that applies to its "
        "task; without them accuracy for a classifier, mae for a regressor."
    )
    value: float | None = Field(
        description="Null while no labelled row is scored, or where the metric is undefined."
    )
    scored: int = Field(description="Labelled rows with a prediction: what it is computed on.")
    estimated: EstimatedMetric | None = Field(
        default=None,
        description="The same metric estimated from the window's predictions before its labels "
        "(the estimated_performance check); it stays beside value once labels land. Null when "
        "the metric is not estimated or the estimate is not trusted.",
    )


class WindowCounts(BaseModel):
    """What every view of a window shows: its span, traffic and labels."""

    id: int
    version: str
    start: Time
    end: Time
    closed: bool
    requests: int
    rows: int
    labelled: int
    label_coverage: float | None = Field(description="labelled / rows; null without rows")
    error_rate: float | None = Field(description="Failed requests / requests, once evaluated.")

    @classmethod
    def from_record(cls, record: WindowRecord, **more: Any) -> Self:
        details = record.details or {}
        return cls(
            id=record.id,
            version=record.version,
            start=record.start_ms,
            end=record.end_ms,
            closed=record.closed,
            requests=record.requests,
            rows=record.rows,
            labelled=record.labelled,
            label_coverage=record.labelled / record.rows if record.rows else None,
            error_rate=details.get("error_rate"),
            **more,
        )


class Window(WindowCounts):
    """A window with its check results (empty until it is evaluated), latency and main metric."""

    model: str
    evaluated_at: OptionalTime
    results: list[Result]
    latency: Latency | None = Field(description="Null until the window is evaluated.")
    main_metric: MainMetric | None = Field(description="Null until the window is evaluated.")

    @classmethod
    def from_record(
        cls, record: WindowRecord, *, main_metric: MainMetric | None = None, **more: Any
    ) -> Self:
        return super().from_record(
            record,
            model=record.model,
            evaluated_at=record.evaluated_ms,
            results=record.results or [],
            latency=Latency.of((record.details or {}).get("latency")),
            main_metric=main_metric,
            **more,
        )


class ClassPrior(BaseModel):
    """One class's prior in the reference and as BBSE estimates it in the window."""

    label: str
    reference: float = Field(description="The class's share of the reference's labels.")
    estimated: float = Field(description="Its estimated share of the window's rows.")
    ci_low: float
    ci_high: float
    weight: float = Field(description="w(y) = estimated / reference: the importance weight.")


class ShiftVerdict(BaseModel):
    """The window's ``shift_verdict`` result, read out."""

    verdict: Literal["label_shift", "covariate_shift", "both", "none"]
    decision: str = Field(description="The result's decision after the model's correction.")
    message: str = Field(description="The verdict and its evidence in one sentence.")
    p_value: float | None = Field(description="Of any shift: priors or features (Bonferroni).")
    priors_p_value: float | None = Field(
        description="The test of unchanged priors (chi-squared on the predicted classes)."
    )
    priors: list[ClassPrior]
    explained: list[str] = Field(description="Drifted features the class mix explains.")
    covariate_shift: list[str] = Field(description="Features drifted beyond the class mix.")

    @classmethod
    def of(cls, results: list[Result]) -> ShiftVerdict | None:
        row = next(
            (r for r in results if r.detector == "shift_verdict" and r.feature is None), None
        )
        verdict = None if row is None else row.details.get("verdict")
        if row is None or verdict is None:
            return None
        estimate = row.details.get("priors") or {}
        columns = ("classes", "reference_priors", "priors", "ci_low", "ci_high", "weights")
        priors = [
            ClassPrior(label=label, reference=q, estimated=p, ci_low=low, ci_high=high, weight=w)
            for label, q, p, low, high, w in zip(
                *(estimate.get(c) or [] for c in columns), strict=False
            )
        ]
        return cls(
            verdict=verdict,
            decision=row.decision.value,
            message=row.message,
            p_value=row.p_value,
            priors_p_value=estimate.get("p_value"),
            priors=priors,
            explained=list(row.details.get("explained") or []),
            covariate_shift=list(row.details.get("covariate_shift") or []),
        )


class WindowDetail(Window):
    summary: Summary | None = Field(
        description="Counts, latency, column summaries, data-quality issues, performance and "
        "label delay; the running state while the window is not evaluated yet; null when the "
        "window has no state here."
    )
    shift: ShiftVerdict | None = Field(
        default=None,
        description="The shift verdict (label shift, covariate shift, both or none) with the "
        "estimated class priors; null when the check did not give one (no reference with "
        "predictions and labels, not a classifier, not evaluated yet).",
    )


class WindowList(BaseModel):
    windows: list[Window] = Field(description="Oldest first; at most 10,000.")


class ColumnStats(BaseModel):
    """One column's summary in one window, without its bins: what a feature's history plots."""

    role: str = Field(description="feature, output or label.")
    kind: Literal["numeric", "categorical"]
    count: int = Field(description="Values seen (finite numbers; categories, other included).")
    missing: int = Field(description="Missing values (NaN, None) and, for numbers, infinities.")
    mean: float | None = Field(default=None, description="Numbers only.")
    sd: float | None = Field(
        default=None, description="Numbers only: the sample standard deviation."
    )
    min: float | None = None
    max: float | None = None
    categories: int | None = Field(
        default=None,
        description="Categorical only: distinct categories (an estimate past 256 others).",
    )
    unseen: int | None = Field(
        default=None,
        description="Categorical only: values of categories the reference does not have.",
    )


class FeatureWindow(BaseModel):
    """One window of a feature's history."""

    id: int
    start: Time
    end: Time
    closed: bool
    rows: int
    evaluated_at: OptionalTime
    results: list[Result] = Field(
        description="The window's result rows for this column (every check that has one: "
        "univariate_drift, prediction_drift, schema, ...); empty until it is evaluated."
    )
    column: ColumnStats | None = Field(
        description="The column's summary in the window; null until the window is evaluated "
        "or when the window has no such column."
    )


class FeatureHistory(BaseModel):
    model: str
    version: str
    feature: str
    windows: list[FeatureWindow] = Field(description="Oldest first; at most `limit`.")
    truncated: bool = Field(
        description="More windows matched than `limit`: the oldest `limit` are listed; ask "
        "again with a later `start`."
    )


# Performance


class Confusion(BaseModel):
    classes: list[str]
    matrix: list[list[int]] = Field(
        description="matrix[i][j]: rows labelled classes[i] predicted classes[j]."
    )


class LabelDelay(BaseModel):
    p50: float
    p95: float
    max: float


_METRICS = sorted({name for names in BUILTIN_METRICS.values() for name in names})


class Performance(BaseModel):
    """Only the keys that apply are present (the route leaves out what was not set); every
    other key is one of the model's own metrics."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "description": "A window's (or a lifetime's) performance from its labelled rows. "
            "Keys that do not apply are absent. A metric undefined on the rows (no labels, no "
            f"probabilities, one class) is null. Built-in metrics: {', '.join(_METRICS)}; any "
            "other key is a metric the model names in performance.metrics (docs/collector.md)."
        },
    )
    __pydantic_extra__: dict[str, float | None]

    task: Task | None = None
    windows: int | None = Field(None, description="Lifetime only: windows merged.")
    rows: int | None = None
    labelled: int | None = None
    coverage: float | None = Field(None, description="labelled / rows")
    scored: int | None = Field(
        None, description="Labelled rows with a prediction: what the metrics are on."
    )
    with_proba: int | None = Field(
        None, description="Scored rows with class probabilities: what log_loss and roc_auc use."
    )
    correct: int | None = None
    confusion: Confusion | None = None
    abs_error_sum: float | None = None
    sq_error_sum: float | None = None
    label_delay_seconds: LabelDelay | None = Field(None, description="Windows only.")


class WindowPerformance(WindowCounts):
    latency: Summary | None = Field(description="Request latency in ms: p50, p95, max.")
    performance: Performance


class Lifetime(BaseModel):
    all: Performance = Field(description="Every window of every version merged.")
    versions: dict[str, Performance]


class LabelCounters(BaseModel):
    accepted: int
    replaced: int
    expired: int
    pending: int


class ModelMetrics(BaseModel):
    model: str
    windows: list[WindowPerformance]
    lifetime: Lifetime
    labels: LabelCounters
    metric_errors: dict[str, str] | None = Field(
        None,
        description="Only when some of the model's own metrics could not be computed: why, by "
        "metric.",
    )


# Models


class VersionSummary(BaseModel):
    version: str
    windows: int
    rows: int
    labelled: int
    first: OptionalTime = Field(description="Start of the version's first window.")
    last: OptionalTime = Field(description="End of its last window.")


class ModelSummary(BaseModel):
    model: str
    versions: list[VersionSummary]


class ModelList(BaseModel):
    models: list[ModelSummary]


# Alerts


class Evidence(BaseModel):
    """One window's result row for the alert's check."""

    window_id: int
    window_start: Time
    window_end: Time
    result: Result

    @classmethod
    def from_record(cls, evidence: EvidenceRecord) -> Evidence:
        return cls(
            window_id=evidence.window_id,
            window_start=evidence.window_start_ms,
            window_end=evidence.window_end_ms,
            result=evidence.result,
        )


class Alert(BaseModel):
    """One incident of one check of one model version (docs/alerts.md)."""

    id: int
    model: str
    version: str
    check: str = Field(
        description="A check ('error_rate', 'univariate_drift'): its own row and its features'."
    )
    severity: Severity
    state: Literal["open", "resolved"]
    opened_at: Time
    resolved_at: OptionalTime
    updated_at: Time
    message: str
    window_id: int = Field(description="The window that opened it.")
    last_window_id: int = Field(description="The latest window seen failing.")
    evidence: list[Evidence] = Field(
        description="The windows that opened it, then what escalated and resolved it."
    )
    features: list[str] = Field(
        description="The features failing in the latest failing window, most significant first."
    )
    findings: list[Result] = Field(description="Those features' result rows.")
    resolution: Literal["passed", "stale", "merged"] | None = Field(
        description="Why it resolved: its check passed, its version had no traffic for "
        "alerts.stale_after, or (older per-feature alerts) it was merged into its check's alert."
    )
    acknowledged_at: OptionalTime
    acknowledged_by: str | None
    silenced_until: OptionalTime = Field(description="No notifications until then.")

    @classmethod
    def from_record(cls, alert: AlertRecord) -> Alert:
        assert alert.id is not None, "a stored alert has an id"
        return cls(
            id=alert.id,
            model=alert.model,
            version=alert.version,
            check=alert.check,
            severity=alert.severity,
            state=alert.state,
            opened_at=alert.opened_ms,
            resolved_at=alert.resolved_ms,
            updated_at=alert.updated_ms,
            message=alert.message,
            window_id=alert.window_id,
            last_window_id=alert.last_window_id,
            evidence=[Evidence.from_record(e) for e in alert.evidence],
            features=list(alert.features),
            findings=list(alert.findings),
            resolution=alert.resolution,
            acknowledged_at=alert.acknowledged_ms,
            acknowledged_by=alert.acknowledged_by,
            silenced_until=alert.silenced_until_ms,
        )


class AlertList(BaseModel):
    alerts: list[Alert] = Field(description="Oldest first.")


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(
        default=None, min_length=1, max_length=200, description="Who is taking care of it."
    )


class Silence(BaseModel):
    """One of ``for`` (a duration such as '2h', at most 90 days) or ``until`` (an ISO time)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    for_: StrictInt | StrictFloat | StrictStr | None = Field(
        default=None, alias="for", examples=["2h"], description="Seconds, or '30m', '2h', '1d'."
    )
    until: str | None = Field(default=None, max_length=64, examples=["2024-05-01T18:00:00Z"])


# Labels


class Label(BaseModel):
    prediction_id: str = Field(min_length=1)
    label: str | int | float | bool = Field(description="A class, or a number for regression.")


class LabelsRequest(BaseModel):
    model: str = Field(min_length=1)
    labels: list[Label] = Field(
        description="At most the collector's max_labels_per_request (10,000 by default; 413 "
        "above it)."
    )


class LabelOutcome(BaseModel):
    accepted: int
    joined: int = Field(description="Labels that met their prediction.")
    pending: int = Field(description="Labels waiting for their prediction.")
    replaced: int = Field(description="Ids labelled before (last write wins).")
    warnings: list[str] = Field(
        description="Sentences about labels that were accepted but may not be what was meant "
        "(a model the collector does not know); empty when there is nothing to say."
    )


# References


class UploadRequest(BaseModel):
    task: Task | None = Field(None, description="The model's task, when the frames do not say.")


class UploadCreated(BaseModel):
    upload_id: str


class PartStored(BaseModel):
    rows: int


class ReferenceCommitted(BaseModel):
    model: str
    version: str
    rows: int
    features: list[str]


class Reference(BaseModel):
    model: str
    version: str
    source: str = Field(description="'upload', or how the collector built it from traffic.")
    rows: int
    created_at: Time
    task: Task | None
    features: list[str]
    summary: Summary | None = Field(description="The reference's column summaries.")


# Settings: the settings schema's own models, so the document cannot drift from what loads.


class ModelSettings(ModelConfig):
    """A model's effective settings (the config file's keys), after defaults and changes;
    webhook URLs are shown redacted."""

    model: str


class ConfigChange(ModelConfig):
    """Some of a model's settings (the config file's keys); the others keep their values.
    Checked as the file is (docs/collector.md), with the same sentences."""


# Service


class LoopStallShown(BaseModel):
    at: Time = Field(description="When this collector handed the lead back.")
    seconds: float = Field(description="How long its event loop had not run by then.")
    epoch: int = Field(description="The lease epoch it gave up.")


class EvaluatingShown(BaseModel):
    model: str
    window_id: int
    since: Time = Field(description="When the evaluation began.")
    seconds: float = Field(description="How long it has run.")


class DeliveriesShown(BaseModel):
    queued: int = Field(
        description="Webhook deliveries waiting in the outbox (as this collector last saw it)."
    )
    delivered: int = Field(description="Deliveries this process got a 2xx answer for.")
    failed: int = Field(description="Deliveries given up on: retries exhausted, or a final 4xx.")
    dropped: int = Field(description="Deliveries pushed out of a full outbox.")
    retries: int = Field(description="Attempts that were retried.")


class Health(BaseModel):
    status: Literal["ok"]
    open_windows: int
    # Journaled batches set aside on a start because they could not be folded into window
    # state (docs/collector.md, "Crash recovery"), and when the oldest was; kept in the
    # database's quarantined_batches table.
    quarantined_batches: int
    oldest_quarantined_at: OptionalTime
    leads: bool = Field(
        description="Whether this collector evaluates windows and alerts (always, on SQLite; "
        "the one leader among replicas on PostgreSQL, docs/scaling.md)."
    )
    loop_stall: LoopStallShown | None = Field(
        description="The last time this collector's event loop stopped running for longer "
        "than loop_stall_seconds while it led, so that it handed the lead back; null if never."
    )
    alert_deliveries: DeliveriesShown = Field(
        description="Alert webhook deliveries since this process started (docs/alerts.md)."
    )
    evaluating: EvaluatingShown | None = Field(
        description="The window evaluation running now, null if none. One whose seconds keep "
        "growing is a check that does not return: every model's windows wait behind it."
    )


# Bodies the API reads itself (size caps, 415, its own validation), so FastAPI does not see them:
# their schemas are added to /openapi.json by api.openapi.
REQUEST_BODIES: tuple[type[BaseModel], ...] = (
    LabelsRequest,
    UploadRequest,
    ConfigChange,
    Acknowledgement,
    Silence,
)
