"""The OpenAPI 3.1 description of the collector's HTTP API, served at /openapi.json.

Written by hand next to the routes; tests/collector check that every route is described.
"""

from __future__ import annotations

from typing import Any

from inferwatch.collector.labels.scoring import BUILTIN_METRICS
from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "The request is invalid; the error says what was wrong.",
        401: "An API key is required.",
        404: "Not found.",
        413: "The request is over a limit; the error says which.",
        415: "Wrong content type.",
        429: "Overloaded; retry after Retry-After seconds.",
        503: "Unavailable; retry after Retry-After seconds.",
    }
    return {str(code): _json(_ref("Error"), reasons[code]) for code in codes}


def _param(name: str, where: str = "path", description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "string"},
        "description": description,
    }


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}
_COUNTS = {
    "type": "object",
    "properties": {k: {"type": "integer"} for k in ("accepted", "joined", "pending", "replaced")},
}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    "Result": {
        "type": "object",
        "properties": {
            "detector": {"type": "string"},
            "feature": _STRING_OR_NULL,
            "score": _NUMBER_OR_NULL,
            "p_value": _NUMBER_OR_NULL,
            "threshold": _NUMBER_OR_NULL,
            "decision": {
                "type": "string",
                "enum": ["ok", "warning", "alert", "not_enough_data", "error"],
            },
            "severity": {"type": ["string", "null"], "enum": ["warning", "critical", None]},
            "message": {"type": "string"},
            "details": {"type": "object", "description": "check-specific evidence"},
        },
        "required": [
            "detector",
            "feature",
            "score",
            "p_value",
            "threshold",
            "decision",
            "severity",
            "message",
        ],
    },
    "Window": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "model": {"type": "string"},
            "version": {"type": "string"},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "closed": {"type": "boolean"},
            "requests": {"type": "integer"},
            "rows": {"type": "integer"},
            "labelled": {"type": "integer"},
            "label_coverage": _NUMBER_OR_NULL,
            "error_rate": _NUMBER_OR_NULL,
            "evaluated_at": {"type": ["string", "null"], "format": "date-time"},
            "results": {"type": "array", "items": _ref("Result")},
            "summary": {
                "type": ["object", "null"],
                "description": "Only on GET .../windows/{id}: counts, latency, column "
                "summaries, data-quality issues, performance and label delay.",
            },
        },
        "required": ["id", "model", "version", "start", "end", "rows", "labelled", "results"],
    },
    "Evidence": {
        "type": "object",
        "description": "One window's result row for the alert's check.",
        "properties": {
            "window_id": {"type": "integer"},
            "window_start": {"type": "string", "format": "date-time"},
            "window_end": {"type": "string", "format": "date-time"},
            "result": _ref("Result"),
        },
        "required": ["window_id", "window_start", "window_end", "result"],
    },
    "Alert": {
        "type": "object",
        "description": "See docs/alerts.md.",
        "properties": {
            "id": {"type": "integer"},
            "model": {"type": "string"},
            "version": {"type": "string"},
            "check": {
                "type": "string",
                "description": "A detector's row ('error_rate') or one feature's ('ks:income').",
            },
            "severity": {"type": "string", "enum": ["warning", "critical"]},
            "state": {"type": "string", "enum": ["open", "resolved"]},
            "opened_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "resolved_at": {"type": ["string", "null"], "format": "date-time"},
            "message": {"type": "string"},
            "window_id": {"type": "integer", "description": "The window that opened it."},
            "last_window_id": {
                "type": "integer",
                "description": "The latest window seen failing.",
            },
            "evidence": {
                "type": "array",
                "items": _ref("Evidence"),
                "description": "The windows that opened it, then what escalated and resolved it.",
            },
        },
        "required": [
            "id",
            "model",
            "version",
            "check",
            "severity",
            "state",
            "opened_at",
            "updated_at",
            "resolved_at",
            "message",
            "window_id",
            "last_window_id",
            "evidence",
        ],
    },
    "Performance": {
        "type": "object",
        "description": "A window's (or a lifetime's) performance from its labelled rows; a "
        "metric undefined on them (no labels, no probabilities, one class) is null. Besides "
        "the properties below, each metric the model names in performance.metrics that is "
        "not built in (docs/collector.md).",
        "properties": {
            "task": {"type": "string", "enum": ["classification", "regression"]},
            "windows": {"type": "integer", "description": "Lifetime only: windows merged."},
            "rows": {"type": "integer"},
            "labelled": {"type": "integer"},
            "coverage": {**_NUMBER_OR_NULL, "description": "labelled / rows"},
            "scored": {
                "type": "integer",
                "description": "Labelled rows with a prediction: what the metrics are on.",
            },
            "with_proba": {
                "type": "integer",
                "description": "Scored rows with class probabilities: what log_loss and "
                "roc_auc are on.",
            },
            "correct": {"type": "integer"},
            **{name: _NUMBER_OR_NULL for name in BUILTIN_METRICS["classification"]},
            "confusion": {
                "type": "object",
                "description": "matrix[i][j]: rows labelled classes[i] predicted classes[j].",
                "properties": {
                    "classes": {"type": "array", "items": {"type": "string"}},
                    "matrix": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "integer"}},
                    },
                },
            },
            "abs_error_sum": {"type": "number"},
            "sq_error_sum": {"type": "number"},
            **{name: _NUMBER_OR_NULL for name in BUILTIN_METRICS["regression"]},
            "label_delay_seconds": {
                "type": "object",
                "description": "Window only.",
                "properties": {k: {"type": "number"} for k in ("p50", "p95", "max")},
            },
        },
        "additionalProperties": _NUMBER_OR_NULL,
    },
    "ModelMetrics": {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "windows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "version": {"type": "string"},
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                        "closed": {"type": "boolean"},
                        "requests": {"type": "integer"},
                        "rows": {"type": "integer"},
                        "labelled": {"type": "integer"},
                        "label_coverage": _NUMBER_OR_NULL,
                        "error_rate": _NUMBER_OR_NULL,
                        "latency": {"type": ["object", "null"]},
                        "performance": _ref("Performance"),
                    },
                },
            },
            "lifetime": {
                "type": "object",
                "description": "The windows' statistics merged, over all versions and per version.",
                "properties": {
                    "all": _ref("Performance"),
                    "versions": {"type": "object", "additionalProperties": _ref("Performance")},
                },
            },
            "labels": {
                "type": "object",
                "properties": {
                    k: {"type": "integer"} for k in ("accepted", "replaced", "expired", "pending")
                },
            },
            "metric_errors": {
                "type": "object",
                "description": "Only when some of the model's own metrics could not be computed: "
                "why, by metric.",
                "additionalProperties": {"type": "string"},
            },
        },
        "required": ["model", "windows", "lifetime", "labels"],
    },
    "ModelConfig": {
        "type": "object",
        "properties": {
            "window": {"type": ["number", "string"], "description": "Seconds, or '30s', '1h'."},
            "allowed_lateness": {"type": ["number", "string"]},
            "reference": {
                "type": "object",
                "properties": {
                    "policy": {"type": "string", "enum": ["rows", "windows", "none"]},
                    "size": {"type": "integer", "minimum": 1},
                },
            },
            "detectors": {"type": "object", "additionalProperties": {"type": "object"}},
            "alerts": {
                "type": "object",
                "description": "When results become alerts and where they go (docs/alerts.md); "
                "webhook URLs are shown redacted.",
                "properties": {
                    "consecutive": {"type": "integer", "minimum": 1},
                    "checks": {"type": ["array", "null"], "items": {"type": "string"}},
                    "min_severity": {"type": "string", "enum": ["warning", "critical"]},
                    "critical": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "above": {"type": "number"},
                                "below": {"type": "number"},
                            },
                        },
                    },
                    "webhooks": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "url": {"type": "string"},
                                "format": {"type": "string", "enum": ["json", "slack"]},
                                "timeout": {"type": ["number", "string"]},
                            },
                            "required": ["url"],
                        },
                    },
                    "retry": {
                        "type": "object",
                        "properties": {
                            "attempts": {"type": "integer", "minimum": 1},
                            "backoff": {"type": ["number", "string"]},
                            "max_backoff": {"type": ["number", "string"]},
                        },
                    },
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
    "Labels": {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "labels": {
                "type": "array",
                "maxItems": 10_000,
                "items": {
                    "type": "object",
                    "properties": {
                        "prediction_id": {"type": "string"},
                        "label": {"type": ["string", "integer", "number", "boolean"]},
                    },
                    "required": ["prediction_id", "label"],
                },
            },
        },
        "required": ["model", "labels"],
    },
}

_MODEL = _param("model")
_VERSION = _param("version")
_UPLOAD = _param("upload_id")
_REFERENCE = "/v1/models/{model}/versions/{version}/reference"

_PATHS: dict[str, Any] = {
    "/v1/traces": {
        "post": {
            "summary": "OTLP/HTTP traces (protobuf or OTLP JSON, optionally gzip).",
            "requestBody": {
                "content": {"application/x-protobuf": {}, "application/json": {}},
                "required": True,
            },
            "responses": {
                "200": {"description": "ExportTraceServiceResponse; the spans are durable."},
                **_errors(400, 401, 413, 415, 429, 503),
            },
        }
    },
    "/v1/labels": {
        "post": {
            "summary": "Ground truth joined to predictions by prediction id.",
            "requestBody": {"content": {"application/json": {"schema": _ref("Labels")}}},
            "responses": {"200": _json(_COUNTS), **_errors(400, 401, 413, 415)},
        }
    },
    f"{_REFERENCE}/uploads": {
        "post": {
            "summary": "Start a reference upload.",
            "parameters": [_MODEL, _VERSION],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"task": {"enum": ["classification", "regression"]}},
                        }
                    }
                },
            },
            "responses": {
                "201": _json(
                    {"type": "object", "properties": {"upload_id": {"type": "string"}}},
                    "Created",
                ),
                **_errors(400, 401, 415),
            },
        }
    },
    f"{_REFERENCE}/uploads/{{upload_id}}/parts/{{part}}": {
        "put": {
            "summary": "Send (or replace) one part: a frame of at most 64 MiB.",
            "parameters": [_MODEL, _VERSION, _UPLOAD, _param("part")],
            "requestBody": {"required": True, "content": {FRAME_TYPE: {}}},
            "responses": {
                "200": _json({"type": "object", "properties": {"rows": {"type": "integer"}}}),
                **_errors(400, 401, 404, 413, 415),
            },
        }
    },
    f"{_REFERENCE}/uploads/{{upload_id}}/commit": {
        "post": {
            "summary": "Fit the reference over all parts; it replaces the version's reference.",
            "parameters": [_MODEL, _VERSION, _UPLOAD],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "model": {"type": "string"},
                            "version": {"type": "string"},
                            "rows": {"type": "integer"},
                            "features": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
                **_errors(400, 401, 404),
            },
        }
    },
    _REFERENCE: {
        "get": {
            "summary": "The stored reference summary.",
            "parameters": [_MODEL, _VERSION],
            "responses": {"200": _json({"type": "object"}), **_errors(401, 404)},
        }
    },
    "/v1/models": {
        "get": {
            "summary": "Models and their versions.",
            "responses": {"200": _json({"type": "object"}), **_errors(401)},
        }
    },
    "/v1/models/{model}/windows": {
        "get": {
            "summary": "Windows overlapping [start, end), oldest first.",
            "parameters": [
                _MODEL,
                _param("version", "query"),
                _param("start", "query", "ISO 8601"),
                _param("end", "query", "ISO 8601"),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"windows": {"type": "array", "items": _ref("Window")}},
                    }
                ),
                **_errors(400, 401),
            },
        }
    },
    "/v1/models/{model}/windows/{window_id}": {
        "get": {
            "summary": "One window with its summaries and detector results.",
            "parameters": [_MODEL, _param("window_id")],
            "responses": {"200": _json(_ref("Window")), **_errors(400, 401, 404)},
        }
    },
    "/v1/models/{model}/alerts": {
        "get": {
            "summary": "The model's alerts, oldest first; optionally only open or resolved ones.",
            "parameters": [_MODEL, _param("state", "query", "open or resolved")],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"alerts": {"type": "array", "items": _ref("Alert")}},
                    }
                ),
                **_errors(400, 401),
            },
        }
    },
    "/v1/models/{model}/metrics": {
        "get": {
            "summary": "Traffic and performance per window, and lifetime performance.",
            "parameters": [_MODEL],
            "responses": {"200": _json(_ref("ModelMetrics")), **_errors(401)},
        }
    },
    "/v1/models/{model}/config": {
        "get": {
            "summary": "The model's effective settings.",
            "parameters": [_MODEL],
            "responses": {"200": _json(_ref("ModelConfig")), **_errors(401)},
        },
        "put": {
            "summary": "Change some settings; the others keep their values.",
            "parameters": [_MODEL],
            "requestBody": {"content": {"application/json": {"schema": _ref("ModelConfig")}}},
            "responses": {"200": _json(_ref("ModelConfig")), **_errors(400, 401, 415)},
        },
    },
    "/": {
        "get": {
            "summary": "The dashboard (HTML); its assets are under /dashboard/.",
            "responses": {"200": {"description": "text/html"}},
        }
    },
    "/healthz": {"get": {"summary": "Liveness.", "responses": {"200": _json({"type": "object"})}}},
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics.",
            "responses": {"200": {"description": "text exposition format"}},
        }
    },
    "/openapi.json": {
        "get": {"summary": "This document.", "responses": {"200": _json({"type": "object"})}}
    },
}


def openapi_schema() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "inferwatch collector", "version": "1"},
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }
