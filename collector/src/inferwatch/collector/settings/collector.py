"""The collector's settings: the process's own (``[collector]``) and every model's.

Everything has a default, so a collector runs with no file at all. A TOML file::

    [collector]
    db = "sqlite:///var/lib/inferwatch/collector.db"
    port = 4318
    public_url = "https://collector.example.com"   # for links in alert notifications
    api_keys = ["..."]                              # or [[collector.keys]]: docs/security.md
    plugins = ["my_company.checks"]                 # modules with checks, detectors, metrics

    [defaults]                 # every model, unless overridden below
    window = "1h"              # a number of seconds or "30s", "5m", "1h", "7d"
    allowed_lateness = "5m"

    [models.credit]
    window = "30s"
    reference = { policy = "rows", size = 1000 }
    detectors = { error_rate = { threshold = 0.02 } }

    [models.credit.alerts]     # see docs/alerts.md
    consecutive = 2
    webhooks = [{ url = "https://ops.example.com/inferwatch" }]

``inferwatch.collector.load_config`` reads a file into these, with the plug-ins it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import AfterValidator, Field, PrivateAttr, field_validator, model_validator

from inferwatch.collector.detectors.params import Count, Flag, Int, Table, within
from inferwatch.collector.settings.checks import Catalog
from inferwatch.collector.settings.durations import Duration
from inferwatch.collector.settings.keys import ApiKey, check_unique, simple_keys
from inferwatch.collector.settings.limits import IngestLimits
from inferwatch.collector.settings.model import ModelConfig, merge_tables


@dataclass(frozen=True)
class DatabaseURL:
    scheme: Literal["sqlite", "postgresql"]
    # A file path for SQLite; the whole URL for PostgreSQL.
    target: str


def parse_db_url(url: str) -> DatabaseURL:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://...``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise ValueError(
                f"must look like sqlite:///path/to/file.db (three slashes), got {url!r}"
            )
        return DatabaseURL("sqlite", unquote(parts.path[1:]))
    if parts.scheme in ("postgresql", "postgres"):
        return DatabaseURL("postgresql", url)
    raise ValueError(f"must be a sqlite:/// or postgresql:// URL, got {url!r}")


def _positive(seconds: float) -> float:
    if not seconds > 0:
        raise ValueError(f"must be positive, got {seconds!r}")
    return seconds


def _at_least_a_second(seconds: float) -> float:
    # The event loop beats every 0.2 s: a bound near that would hand the lead back on any
    # hiccup.
    if not seconds >= 1:
        raise ValueError(f"must be at least 1 second, got {seconds!r}")
    return seconds


def _non_empty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


NonEmpty = Annotated[str, AfterValidator(_non_empty)]
Interval = Annotated[Duration, AfterValidator(_positive)]


class CollectorConfig(Table):
    db: str = "sqlite:///inferwatch.db"
    host: NonEmpty = "127.0.0.1"
    port: Annotated[Int, within(0, 65535)] = 4318
    # The URL people and webhooks reach this collector at, for links in alert notifications;
    # http://{host}:{port} when unset.
    public_url: str | None = None
    # The keys /v1 routes accept (settings.keys); none: no authentication, on loopback only
    # unless insecure_no_auth. ``api_keys = [...]``, the simple form, adds full-access keys.
    access_keys: Annotated[tuple[ApiKey, ...], AfterValidator(check_unique)] = Field(
        default=(), alias="keys"
    )
    insecure_no_auth: Flag = False
    # A name for this process's share of window state, so replicas writing to one database
    # (and restarts of one replica) keep separate partial states that queries merge.
    instance_id: NonEmpty = "default"
    # "full" fsyncs every group commit: an acknowledged batch survives power loss. "normal"
    # survives a process crash but may lose the last commits on power loss.
    durability: Literal["full", "normal"] = "full"
    max_body_bytes: Count = 64 * 2**20
    # Bytes of request bodies (decompressed) held at once by all requests being read, decoded
    # and stored; beyond it /v1/traces answers 503 with Retry-After. One request is always let
    # in, so a body within max_body_bytes never fails for good.
    max_inflight_bytes: Count = 256 * 2**20
    # Rows waiting for the ingest worker; beyond this submit() answers 429.
    max_queue_rows: Count = 500_000
    # Rows written in one group commit at most.
    max_commit_rows: Count = 50_000
    # A span id seen within this horizon is a duplicate and is dropped.
    dedupe_horizon_seconds: Duration = 7 * 86400.0
    # Per-row predictions are kept this long for the label join; labels for older or unknown
    # ids wait this long for their prediction and are then counted as unmatched.
    prediction_retention_seconds: Duration = 30 * 86400.0
    # How often window state is checkpointed and raw batches dropped.
    checkpoint_interval_seconds: Interval = 2.0
    # How often the background task closes due windows and re-evaluates changed ones.
    tick_seconds: Interval = 1.0
    # With replicas (PostgreSQL): the leader hands its role back once its event loop has not
    # run for this long (a blocking call or a deadlock on it), so that another evaluates.
    loop_stall_seconds: Annotated[Duration, AfterValidator(_at_least_a_second)] = 10.0
    max_labels_per_request: Count = 10_000
    # Alert webhook deliveries waiting for an answer in the database's outbox; past it the
    # oldest is dropped (counted in /metrics and logged).
    max_pending_deliveries: Count = 10_000
    # The per-model series of /metrics and of the OpenTelemetry export (docs/metrics.md) are
    # bounded: the models with the latest traffic, per model its versions with the latest
    # traffic, per version this many features (failing ones first, then by name).
    metrics_max_models: Annotated[Int, within(1)] = 1_000
    metrics_max_versions: Annotated[Int, within(1)] = 3
    metrics_max_features: Annotated[Int, within(1)] = 50
    # Where the per-model figures are pushed over OTLP/HTTP (e.g.
    # http://otel-collector:4318/v1/metrics); none: not pushed. A URL without a path gets
    # /v1/metrics. Headers come from OTEL_EXPORTER_OTLP_METRICS_HEADERS, as for any OTel SDK.
    metrics_endpoint: str | None = None
    metrics_interval: Interval = 60.0
    limits: IngestLimits = IngestLimits()
    # Modules whose checks, detectors, metrics and notifiers join those of the installed
    # distributions' entry points (docs/architecture.md).
    plugins: tuple[NonEmpty, ...] = ()
    defaults: ModelConfig = ModelConfig()
    models: dict[str, ModelConfig] = {}
    # The file's model tables as written ([defaults] and each [models.x]), which changes made
    # through the API are merged onto.
    defaults_table: dict[str, Any] = Field(default_factory=dict, exclude=True)
    model_tables: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)

    _catalog: Catalog | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _simple_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "api_keys" in data:
            data = dict(data)
            tables = data.get("keys", [])
            if not isinstance(tables, list | tuple):
                raise ValueError("keys must be a list of tables ([[collector.keys]])")
            data["keys"] = [*tables, *simple_keys(data.pop("api_keys"))]
        return data

    @field_validator("db")
    @classmethod
    def _known_database(cls, db: str) -> str:
        parse_db_url(db)
        return db

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"must be an http(s) URL such as https://collector.example.com, got {url!r}"
                )
        return url

    @field_validator("metrics_endpoint")
    @classmethod
    def _metrics_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"must be an http(s) URL such as http://otel-collector:4318/v1/metrics, got {url!r}"
            )
        if parts.path in ("", "/"):
            return urlunsplit(parts._replace(path="/v1/metrics"))
        return url

    def model(self, name: str) -> ModelConfig:
        return self.models.get(name, self.defaults)

    def table(self, name: str) -> dict[str, Any]:
        """Model ``name``'s table as the file gives it: its own over ``[defaults]``."""
        return merge_tables(self.defaults_table, self.model_tables.get(name, {}))

    @property
    def database(self) -> DatabaseURL:
        return parse_db_url(self.db)

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def catalog(self) -> Catalog | None:
        """The plug-ins the models' settings were validated against (set by the loader)."""
        return self._catalog

    def with_catalog(self, catalog: Catalog) -> CollectorConfig:
        copy = self.model_copy()
        copy._catalog = catalog
        return copy
